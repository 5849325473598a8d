"""`GET /api/jobs/{name}/events` as Server-Sent Events.

Each event is sent with `id:` = the byte offset just after its line in events.jsonl, so a
client that reconnects (Last-Event-ID, or ?after=) misses nothing and sees nothing twice.
The stream ends once the job is no longer queued or running and everything was sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi.concurrency import run_in_threadpool

from nocodetune.records.events import Event, read_events_with_offsets
from nocodetune.jobs.service import JobService
from nocodetune.jobs.status import ACTIVE

HEARTBEAT_S = 15.0


def format_sse(event: Event, offset: int) -> str:
    return f"id: {offset}\nevent: {event.type}\ndata: {json.dumps(event.data(), default=str)}\n\n"


async def stream_events(service: JobService, name: str, after: int, poll_s: float = 0.5) -> AsyncIterator[str]:
    path = service.ws.job(name).events
    offset = after
    idle = 0.0
    yield "retry: 2000\n\n"
    while True:
        batch = await run_in_threadpool(read_events_with_offsets, path, offset)
        for event, end in batch:
            offset = end
            yield format_sse(event, end)
        if not batch:
            status = (await run_in_threadpool(service.get, name)).status
            if status not in ACTIVE:
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
