"""Shared CLI plumbing: the console, the workspace option, and error rendering."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from nocodetune.workspace import Workspace

console = Console()
err_console = Console(stderr=True)


def workspace_from(ctx: typer.Context, *, must_exist: bool = True) -> Workspace:
    """The workspace chosen by --workspace / NOCODETUNE_WORKSPACE / cwd (see Workspace.locate)."""
    root = ctx.find_root()
    explicit: Path | None = (root.obj or {}).get("workspace") if root.obj else None
    ws = Workspace.locate(explicit)
    return ws.require() if must_exist else ws
