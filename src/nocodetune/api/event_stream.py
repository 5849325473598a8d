"""Events files as Server-Sent Events: a job's (`GET /api/jobs/{name}/events`) and an export's.

Each event is sent with `id:` = the byte offset just after its line in events.jsonl, so a
client that reconnects (Last-Event-ID, or ?after=) misses nothing and sees nothing twice.
The stream ends once its job or export is no longer active and everything was sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi.concurrency import run_in_threadpool

from nocodetune.records.events import Event, read_events_with_offsets
from nocodetune.jobs.service import JobService
from nocodetune.jobs.status import ACTIVE

HEARTBEAT_S = 15.0


def format_sse(event: Event, offset: int) -> str:
    return f"id: {offset}\nevent: {event.type}\ndata: {json.dumps(event.data(), default=str)}\n\n"


async def stream_file(path: Path, after: int, still_active: Callable[[], bool], poll_s: float = 0.5) -> AsyncIterator[str]:
    """An events.jsonl file as SSE from byte `after` on, until `still_active()` turns false and all was sent."""
    offset = after
    idle = 0.0
    yield "retry: 2000\n\n"
    while True:
        batch = await run_in_threadpool(read_events_with_offsets, path, offset)
        for event, end in batch:
            offset = end
            yield format_sse(event, end)
        if not batch:
            if not await run_in_threadpool(still_active):
                # one last look: the final event may have landed after our read
                tail = await run_in_threadpool(read_events_with_offsets, path, offset)
                for event, end in tail:
                    yield format_sse(event, end)
                return
            idle += poll_s
            if idle >= HEARTBEAT_S:
                idle = 0.0
                yield ": keep-alive\n\n"
        else:
            idle = 0.0
        await asyncio.sleep(poll_s)


def stream_events(service: JobService, name: str, after: int, poll_s: float = 0.5) -> AsyncIterator[str]:
    """A job's events, until the job is no longer queued or running."""
    return stream_file(service.ws.job(name).events, after, lambda: service.get(name).status in ACTIVE, poll_s)
