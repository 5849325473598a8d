"""Load on the dataset routes of a live API: concurrent uploads plus polling, then a count of lost versions.

Starts the API (`serve_api`, all route groups unless --routes data) on a free 127.0.0.1 port
over a fresh workspace — or drives one already running with --url — and for --duration
seconds runs --uploaders clients that each upload a new small file after another (CSV,
JSONL chat, a cp1254 CSV, a UTF-16 TSV; a few dataset names, so uploads race for version
numbers) and --pollers clients that list datasets, fetch one and preview a version. Then:

- errors: responses that are not 2xx, and requests that failed;
- lost versions: uploads answered 201 whose version is missing from the final listing, or
  holds other bytes (two uploads given one number), or whose rows read back wrong;
- requests/s and latency percentiles (p50, p95, p99) per kind and overall.

The last line is machine-readable:

    errors=<n> lost=<n> uploads=<n> requests_per_s=<x> p95_ms=<y>

Targets: 0 errors and 0 lost. The figures depend on the machine and its load (printed).
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import hashlib
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from nocodetune.servers.ports import free_port

NAMES = ["reviews", "chats", "turkish", "sheets", "notes"]


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    stored: list[tuple[str, int, str, int]] = field(default_factory=list)  # (name, version, sha256, rows) of each 201

    def record(self, kind: str, started: float) -> None:
        self.latencies[kind].append(time.perf_counter() - started)


def make_file(uploader: int, n: int) -> tuple[str, str, bytes, int]:
    """(dataset name, file name, bytes, rows) of a new file; each call gives new bytes."""
    token = f"{uploader}-{n}-{random.getrandbits(32)}"
    rows = random.randint(3, 40)
    kind = (uploader + n) % 4
    if kind == 0:
        text = "review,label\n" + "".join(f'"text {token} row {i}, with a comma",{i % 2}\n' for i in range(rows))
        return NAMES[uploader % len(NAMES)], "reviews.csv", text.encode(), rows
    if kind == 1:
        lines = "".join(
            f'{{"messages": [{{"role": "user", "content": "q {token} {i}"}}, {{"role": "assistant", "content": "a {i}"}}]}}\n' for i in range(rows)
        )
        return NAMES[uploader % len(NAMES)], "chat.jsonl", lines.encode(), rows
    if kind == 2:
        text = "text,label\n" + "".join(f"şeker ığdır {token} {i},{i}\n" for i in range(rows))
        return NAMES[uploader % len(NAMES)], "turkish.csv", text.encode("cp1254"), rows
    text = "text\tlabel\r\n" + "".join(f"Grüße {token} {i}\t{i}\r\n" for i in range(rows))
    return NAMES[uploader % len(NAMES)], "sheet.tsv", codecs.BOM_UTF16_LE + text.encode("utf-16-le"), rows


async def uploader(http: httpx.AsyncClient, url: str, index: int, stop: float, stats: Stats) -> None:
    n = 0
    while time.perf_counter() < stop:
        name, filename, body, rows = make_file(index, n)
        n += 1
        started = time.perf_counter()
        try:
            response = await http.post(f"{url}/api/files", files={"file": (filename, body)}, data={"name": name})
        except httpx.HTTPError as exc:
            stats.errors.append(f"upload {name}: {type(exc).__name__}: {exc!r} after {time.perf_counter() - started:.1f} s")
            continue
        stats.record("upload", started)
        if response.status_code != 201:
            stats.errors.append(f"upload {name}: {response.status_code} {response.text[:200]}")
            continue
        meta = response.json()
        if meta["sha256"] != hashlib.sha256(body).hexdigest() or meta["rows"] != rows:
            stats.errors.append(f"upload {name}: answered {meta['sha256'][:12]} / {meta['rows']} rows for other bytes")
        stats.stored.append((name, meta["version"], meta["sha256"], rows))


async def poller(http: httpx.AsyncClient, url: str, stop: float, stats: Stats) -> None:
    while time.perf_counter() < stop:
        for kind, path in (("list", "/api/files"), ("get", f"/api/files/{random.choice(NAMES)}")):
            started = time.perf_counter()
            try:
                response = await http.get(f"{url}{path}")
            except httpx.HTTPError as exc:
                stats.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                continue
            stats.record(kind, started)
            if response.status_code == 404 and kind == "get":
                continue  # nothing uploaded under that name yet
            if response.status_code != 200:
                stats.errors.append(f"{kind} {path}: {response.status_code} {response.text[:200]}")
        if stats.stored:
            name, version, _, rows = random.choice(stats.stored)
            started = time.perf_counter()
            try:
                response = await http.get(f"{url}/api/files/{name}/versions/{version}/preview", params={"limit": 5})
            except httpx.HTTPError as exc:
                stats.errors.append(f"preview: {type(exc).__name__}: {exc}")
                continue
            stats.record("preview", started)
            if response.status_code != 200 or response.json()["total"] != rows:
                stats.errors.append(f"preview {name}@{version}: {response.status_code} {response.text[:200]}")


def lost_versions(url: str, stats: Stats) -> list[str]:
    """Acknowledged uploads the final listing does not hold as acknowledged."""
    listing = httpx.get(f"{url}/api/files", timeout=60).json()
    held = {(d["name"], v["version"]): v for d in listing for v in d["versions"]}
    lost = []
    claimed: dict[tuple[str, int], str] = {}
    for name, version, sha256, rows in stats.stored:
        meta = held.get((name, version))
        if meta is None:
            lost.append(f"{name}@{version}: missing")
        elif meta["sha256"] != sha256 or meta["rows"] != rows:
            lost.append(f"{name}@{version}: holds other bytes than the upload answered with")
        if claimed.setdefault((name, version), sha256) != sha256:
            lost.append(f"{name}@{version}: given to two different uploads")
    return lost


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def start_api(routes: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    workspace = Path(tempfile.mkdtemp(prefix="nocodetune-load-")) / "ws"
    port = free_port()
    code = (
        "import sys; from nocodetune.workspace import Workspace; from nocodetune.api.app import ROUTE_GROUPS, serve_api; "
        "ws = Workspace(sys.argv[1]); ws.create_layout(); serve_api(ws, '127.0.0.1', int(sys.argv[2]), ROUTE_GROUPS[sys.argv[3]], log_level='warning')"
    )
    env = {k: v for k, v in os.environ.items() if k != "NOCODETUNE_API_TOKEN"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", code, str(workspace), str(port), routes], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the API exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    sys.exit("the API did not become healthy")


async def run(url: str, uploaders: int, pollers: int, duration: float) -> tuple[Stats, float]:
    stats = Stats()
    # idle connections are dropped by the client after 2 s, before uvicorn's 5 s keep-alive timeout closes them
    # under it (a request sent on a connection the server is closing fails with ReadError: the client's race, not the API's)
    limits = httpx.Limits(max_connections=uploaders + pollers + 10, max_keepalive_connections=uploaders + pollers + 10, keepalive_expiry=2.0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        started = time.perf_counter()
        stop = started + duration
        await asyncio.gather(*(uploader(http, url, i, stop, stats) for i in range(uploaders)), *(poller(http, url, stop, stats) for _ in range(pollers)))
        elapsed = time.perf_counter() - started
    return stats, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="an API already running (default: start one on a fresh workspace)")
    parser.add_argument("--routes", default="api", choices=["api", "data"], help="route groups of the API started here")
    parser.add_argument("--uploaders", type=int, default=50)
    parser.add_argument("--pollers", type=int, default=10)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    random.seed(args.seed)

    proc = None
    log = Path(tempfile.mkdtemp(prefix="nocodetune-load-log-")) / "api.log"
    url = args.url
    if url is None:
        proc, url = start_api(args.routes, log)
    try:
        load_before = os.getloadavg()[0]
        print(f"API {url}; {args.uploaders} uploaders + {args.pollers} pollers for {args.duration:.0f} s; cpus={os.cpu_count()} load={load_before:.2f}")
        stats, elapsed = asyncio.run(run(url, args.uploaders, args.pollers, args.duration))
        lost = lost_versions(url, stats)
        everything = [x for values in stats.latencies.values() for x in values]
        for kind, values in sorted(stats.latencies.items()):
            print(
                f"{kind:8s} n={len(values):6d}  per_s={len(values) / elapsed:7.1f}  p50_ms={percentile(values, 50) * 1000:7.1f}"
                f"  p95_ms={percentile(values, 95) * 1000:7.1f}  p99_ms={percentile(values, 99) * 1000:7.1f}"
            )
        for message in (stats.errors + lost)[:20]:
            print("  !", message)
        print(f"load after={os.getloadavg()[0]:.2f}; versions stored={len(stats.stored)}")
        print(
            f"errors={len(stats.errors)} lost={len(lost)} uploads={len(stats.stored)} requests_per_s={len(everything) / elapsed:.1f}"
            f" p95_ms={percentile(everything, 95) * 1000:.0f}"
        )
        if stats.errors or lost:
            sys.exit(1)
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
