"""Model-server throughput and greedy agreement for each CPU serving option, against fp32.

For the embedded default model (SmolLM2-135M-Instruct) unless --model, starts one
`python -m nocodetune.serving` per option (all at once, idle between their turns) and
measures over HTTP:

- single-stream tokens/s (one client, streamed chat requests one after another),
- 8-client aggregate tokens/s (eight clients at once: continuous batching),
- greedy agreement with fp32: the share of a fixed prompt set whose greedy completion is
  token for token the same as the fp32 server's (compared by token bytes from logprobs,
  so detokenisation differences between backends do not count).

Options: transformers in fp32 (the baseline), bf16 weights, int8 dynamic quantisation of
the linear layers, and llama.cpp on GGUF files: the embedded Q4_1 file and, written with
the `gguf` library from the same weights, q8_0 and f16 files. Throughput is measured in
rounds that take every option in turn; each ratio compares an option with the fp32 figure of
its own round, and medians over the rounds are reported, so load that drifts on a shared
machine hurts less. The last line is machine-readable:

    option=<name> single=<tok/s> agg8=<tok/s> single_x=<ratio> agg8_x=<ratio> agree=<share> ...

Run it on a quiet machine (check `uptime`) and say how loaded it was.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
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

AGREEMENT_PROMPTS = [
    "What is the capital of France?",
    "Name three colors.",
    "Write a haiku about the sea.",
    "Hi",
    "Translate 'cat' to French.",
    "What is 12 times 7?",
    "Give me a synonym for happy.",
    "Why do we sleep?",
    "Describe a cat in one sentence.",
    "What is photosynthesis?",
    "Suggest a name for a pet fish.",
    "How many days are in a leap year?",
    "What does a baker do?",
    "Write one sentence about autumn.",
    "What is the opposite of cold?",
    "Name a planet in our solar system.",
    "How do you make tea?",
    "What is the largest ocean?",
    "Give an example of a mammal.",
    "What color is the sky on a clear day?",
]


@dataclass
class Option:
    name: str
    args: list[str]


def start_server(model: str, extra: list[str], port: int, log: Path, threads: int | None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "nocodetune.serving", "--model", model, "--port", str(port), "--name", "bench", *extra]
    if threads:
        command += ["--threads", str(threads)]
    with open(log, "wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"model server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            r = httpx.get(f"{url}/health", timeout=2)
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit("model server did not become healthy")


async def one_request(http: httpx.AsyncClient, url: str, prompt: str, max_tokens: int, seed: int) -> int:
    """Completion tokens of one streamed chat request (temperature 0.8, seeded)."""
    body = {
        "model": "bench",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0.8,
        "seed": seed,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    tokens = 0
    async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
    return tokens


async def throughput(url: str, clients: int, requests_each: int, max_tokens: int) -> float:
    """Aggregate generated tokens/s with `clients` concurrent clients."""
    async with httpx.AsyncClient(timeout=900) as http:

        async def client(i: int) -> int:
            return sum([await one_request(http, url, PROMPTS[(i + r) % len(PROMPTS)], max_tokens, seed=i * 100 + r) for r in range(requests_each)])

        started = time.perf_counter()
        tokens = await asyncio.gather(*(client(i) for i in range(clients)))
        return sum(tokens) / (time.perf_counter() - started)


async def greedy_tokens(url: str, max_tokens: int) -> list[list[bytes]]:
    """The greedy completion of every agreement prompt, as token bytes (8 requests at a time)."""
    async with httpx.AsyncClient(timeout=900) as http:
        limit = asyncio.Semaphore(8)

        async def ask(prompt: str) -> list[bytes]:
            body = {"model": "bench", "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "temperature": 0, "logprobs": True}
            async with limit:
                r = await http.post(f"{url}/v1/chat/completions", json=body)
            r.raise_for_status()
            return [bytes(e["bytes"]) for e in r.json()["choices"][0]["logprobs"]["content"]]

        return list(await asyncio.gather(*(ask(p) for p in AGREEMENT_PROMPTS)))


def requantize(source: Path, out: Path, qtype: str) -> Path:
    """The same weights as `source`, every 2-D tensor re-encoded as f16 or q8_0 (gguf's writer and quantisers)."""
    import gguf
    import numpy as np

    target = {"f16": gguf.GGMLQuantizationType.F16, "q8_0": gguf.GGMLQuantizationType.Q8_0}[qtype]
    file_type = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[qtype]
    reader = gguf.GGUFReader(str(source))
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(str(out), arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name in ("general.architecture", "general.file_type"):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), vtype, sub)
    writer.add_file_type(file_type)
    for tensor in reader.tensors:
        shape = [int(x) for x in reversed(tensor.shape)]  # GGUF lists dimensions fastest first
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(shape).astype(np.float32)
        if values.ndim < 2:
            writer.add_tensor(tensor.name, values)
        elif target == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(tensor.name, values.astype(np.float16))
        else:
            writer.add_tensor(tensor.name, gguf.quants.quantize(values, target), raw_dtype=target)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="'default' or a model folder (transformers options)")
    parser.add_argument("--gguf", help="GGUF of the same weights for the llama.cpp options (default: the embedded model's file)")
    parser.add_argument("--options", default="fp32,bf16,int8,llama.cpp-file,llama.cpp-q8_0,llama.cpp-f16")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--requests-per-client", type=int, default=2)
    parser.add_argument("--single-requests", type=int, default=3)
    parser.add_argument("--agreement-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, help="--threads of each server (default: the server's own default)")
    parser.add_argument("--rounds", type=int, default=2, help="measurement rounds over all options (medians are reported)")
    args = parser.parse_args()

    gguf_file = Path(args.gguf) if args.gguf else None
    if gguf_file is None and args.model == "default":
        from nocodetune.model_source import default_gguf_path

        gguf_file = default_gguf_path()
    work = Path(tempfile.mkdtemp(prefix="nocodetune-bench-"))
    options: list[Option] = []
    for name in args.options.split(","):
        if name in ("fp32", "bf16", "int8"):
            options.append(Option(name, ["--backend", "transformers", "--precision", name]))
        elif name.startswith("llama.cpp-"):
            if gguf_file is None:
                sys.exit("llama.cpp options need --gguf (or the embedded default model)")
            quant = name.removeprefix("llama.cpp-")
            path = gguf_file if quant == "file" else requantize(gguf_file, work / f"{gguf_file.stem}.{quant}.gguf", quant)
            options.append(Option(name, ["--backend", "llama.cpp", "--model", str(path)]))
        else:
            sys.exit(f"unknown option {name!r}")
    if options[0].name != "fp32":
        sys.exit("the first option must be fp32: it is the baseline")

    started_at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{started_at}; {machine()}; load before {os.getloadavg()[0]:.2f}", flush=True)
    servers: dict[str, tuple[subprocess.Popen[bytes], str, dict]] = {}
    try:
        for option in options:  # all servers up at once: the rounds below interleave the options
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            log = work / f"{option.name}.log"
            extra, model = option.args, args.model
            if "--model" in extra:  # a GGUF option names its own file
                i = extra.index("--model")
                model, extra = extra[i + 1], extra[:i] + extra[i + 2 :]
            proc = start_server(model, extra, port, log, args.threads)
            health = wait_healthy(url, proc, log)
            servers[option.name] = (proc, url, health)
            asyncio.run(throughput(url, 1, 1, 8))  # warm-up
        agreement: dict[str, float] = {}
        reference = asyncio.run(greedy_tokens(servers["fp32"][1], args.agreement_tokens))
        for name, (_, url, _) in servers.items():
            tokens = reference if name == "fp32" else asyncio.run(greedy_tokens(url, args.agreement_tokens))
            agreement[name] = sum(a == b for a, b in zip(tokens, reference)) / len(reference)
        # Each round measures every option once, fp32 first; a ratio compares an option with the
        # fp32 figure of its own round, so load that drifts between rounds cancels out.
        rounds: list[dict[str, tuple[float, float, float]]] = []
        for r in range(args.rounds):
            measured: dict[str, tuple[float, float, float]] = {}
            for name, (_, url, _) in servers.items():
                single = asyncio.run(throughput(url, 1, args.single_requests, args.max_tokens))
                agg8 = asyncio.run(throughput(url, 8, args.requests_per_client, args.max_tokens))
                measured[name] = (single, agg8, os.getloadavg()[0])
                base = measured["fp32"]
                print(
                    f"round {r + 1} {name:16s} single={single:6.1f} tok/s ({single / base[0]:4.2f}x)  "
                    f"agg8={agg8:6.1f} tok/s ({agg8 / base[1]:4.2f}x)  load={os.getloadavg()[0]:.2f}",
                    flush=True,
                )
            rounds.append(measured)
    finally:
        for proc, _, _ in servers.values():
            stop_server(proc)

    print(f"\nload after {os.getloadavg()[0]:.2f}; medians over {len(rounds)} rounds (ratios per round against that round's fp32):")
    summary = []
    for name, (_, _, health) in servers.items():
        single = statistics.median(m[name][0] for m in rounds)
        agg8 = statistics.median(m[name][1] for m in rounds)
        single_x = statistics.median(m[name][0] / m["fp32"][0] for m in rounds)
        agg8_x = statistics.median(m[name][1] / m["fp32"][1] for m in rounds)
        print(
            f"| {name} | {health.get('backend')} | {health.get('precision')} | {single:.1f} | {single_x:.2f}x | {agg8:.1f} | {agg8_x:.2f}x | {agreement[name]:.0%} |"
        )
        summary.append(f"option={name} single={single:.1f} agg8={agg8:.1f} single_x={single_x:.2f} agg8_x={agg8_x:.2f} agree={agreement[name]:.2f}")
    print(" ".join(summary))


if __name__ == "__main__":
    main()
