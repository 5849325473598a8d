"""Shared CLI plumbing: the console, the workspace option, and error rendering."""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from datetime import datetime, timezone
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from nocodetune.errors import NocodetuneError
from nocodetune.workspace import Workspace

console = Console()
err_console = Console(stderr=True)


def workspace_from(ctx: typer.Context, *, must_exist: bool = True) -> Workspace:
    """The workspace chosen by --workspace / NOCODETUNE_WORKSPACE / cwd (see Workspace.locate)."""
    root = ctx.find_root()
    explicit: Path | None = (root.obj or {}).get("workspace") if root.obj else None
    ws = Workspace.locate(explicit)
    return ws.require() if must_exist else ws


def print_error(exc: NocodetuneError) -> None:
    """A user error: its message (naming the field, file or row) and hint, no traceback."""
    err_console.print(f"[bold red]Error:[/] {escape(str(exc))}")


def crash_dir() -> Path:
    """Where tracebacks of unexpected errors go: the cache folder, else the system temp folder."""
    from nocodetune.settings import get_settings

    for folder in (Path(get_settings().cache_dir) / "errors", Path(tempfile.gettempdir()) / "nocodetune-errors"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return folder
        except OSError:
            continue
    return Path(tempfile.gettempdir())


def report_unexpected(exc: BaseException) -> Path | None:
    """A bug (any exception that is not a NocodetuneError): one line on stderr, the traceback in a file.

    NOCODETUNE_TRACEBACK=1 prints the traceback instead (for developers).
    """
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if os.environ.get("NOCODETUNE_TRACEBACK") == "1":
        sys.stderr.write(text)
        return None
    path: Path | None = crash_dir() / f"{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    try:
        assert path is not None
        path.write_text(f"nocodetune {' '.join(sys.argv[1:])}\n\n{text}", encoding="utf-8")
    except OSError:
        path = None
    what = str(exc).splitlines()[0][:200] if str(exc) else ""
    where = f"the traceback is in {path}" if path else "the traceback could not be saved; rerun with NOCODETUNE_TRACEBACK=1 to see it"
    err_console.print(
        f"[bold red]Error:[/] unexpected {escape(type(exc).__name__)}{': ' + escape(what) if what else ''} "
        f"(a bug in NoCodeTune: {escape(where)})",
        soft_wrap=True,
    )
    return path
