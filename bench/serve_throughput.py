"""Aggregate generation throughput of the model server under 1, 4 and 8 concurrent clients.

Starts `python -m nocodetune.serving` (the embedded default model unless --model), drives it
with streaming OpenAI-style chat requests over HTTP, and prints tokens/s per concurrency
level, the 8-vs-1 ratio (continuous batching should make it well above 1) and time to first
token. The last line is machine-readable:

    ratio_8_vs_1=<x> ttft_p50_ms=<a> ttft_p95_ms=<b>

TTFT percentiles are over every measured request at every level.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from nocodetune.servers.ports import free_port

PROMPTS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle works, step by step.",
    "Describe your ideal weekend in detail.",
    "Write a letter to a friend about learning to cook.",
    "List ten facts about the ocean and explain each.",
    "Tell me about the history of the printing press.",
    "Describe a walk through a busy market.",
    "Explain why the sky is blue to a child.",
]


def start_server(model: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "nocodetune.serving", "--model", model, "--port", str(port), "--name", "bench"]
    with open(log, "wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"model server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit("model server did not become healthy")


async def one_request(http: httpx.AsyncClient, url: str, prompt: str, max_tokens: int, seed: int) -> tuple[int, float]:
    """(completion tokens, seconds to the first content token) of one streamed chat request."""
    body = {
        "model": "bench",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0.8,
        "seed": seed,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    ttft: float | None = None
    tokens = 0
    async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            if ttft is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                ttft = time.perf_counter() - started
    return tokens, ttft if ttft is not None else time.perf_counter() - started


async def run_level(url: str, clients: int, requests_each: int, max_tokens: int) -> tuple[float, list[float]]:
    """Aggregate tokens/s with `clients` concurrent clients, and every request's TTFT."""
    async with httpx.AsyncClient(timeout=600) as http:

        async def client(i: int) -> list[tuple[int, float]]:
            return [await one_request(http, url, PROMPTS[(i + r) % len(PROMPTS)], max_tokens, seed=i * 100 + r) for r in range(requests_each)]

        started = time.perf_counter()
        results = await asyncio.gather(*(client(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    flat = [r for per_client in results for r in per_client]
    return sum(t for t, _ in flat) / elapsed, [ttft for _, ttft in flat]


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--requests-per-client", type=int, default=2)
    parser.add_argument("--levels", default="1,4,8")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp(prefix="nocodetune-bench-")) / "server.log"
    proc = start_server(args.model, port, log)
    try:
        t0 = time.perf_counter()
        wait_healthy(url, proc, log)
        print(f"model {args.model} ready in {time.perf_counter() - t0:.1f} s; cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}")
        asyncio.run(run_level(url, 1, 1, 8))  # warm-up
        throughput: dict[int, float] = {}
        ttfts: list[float] = []
        for clients in levels:
            tps, level_ttfts = asyncio.run(run_level(url, clients, args.requests_per_client, args.max_tokens))
            throughput[clients] = tps
            ttfts += level_ttfts
            print(
                f"clients={clients:2d}  tokens/s={tps:7.1f}  ttft_p50_ms={percentile(level_ttfts, 50) * 1000:7.0f}"
                f"  ttft_p95_ms={percentile(level_ttfts, 95) * 1000:7.0f}"
            )
        ratio = throughput[max(levels)] / throughput[min(levels)]
        print(f"ratio_{max(levels)}_vs_{min(levels)}={ratio:.2f} ttft_p50_ms={percentile(ttfts, 50) * 1000:.0f} ttft_p95_ms={percentile(ttfts, 95) * 1000:.0f}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
