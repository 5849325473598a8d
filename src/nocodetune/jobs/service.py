"""Job lifecycle service (owner: jobs/API work). Interface fixed here so faces can code to it."""

from __future__ import annotations

from typing import Callable

from nocodetune.events import Event
from nocodetune.workspace import Workspace


class JobService:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def run_foreground(self, name: str, on_event: Callable[[Event], None] | None = None) -> str:
        """Run the job in a child process, holding its lock; call on_event per event; return final status."""
        raise NotImplementedError
