"""`python -m nocodetune.serving`: run an OpenAI-compatible model server in this process.

The server manager spawns this; users normally run `nocodetune server start model`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nocodetune.settings import apply_network_policy


def main(argv: list[str] | None = None) -> int:
    apply_network_policy()  # before any Hugging Face import
    from pydantic import ValidationError

    from nocodetune.errors import NocodetuneError
    from nocodetune.serving.runner import ServeOptions, serve

    parser = argparse.ArgumentParser(prog="python -m nocodetune.serving", description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--job-dir", type=Path, help="job folder whose outputs are served")
    source.add_argument("--model", help="'default', a model folder, a .gguf file or a cached hub id")
    parser.add_argument("--name", help="model id clients use (default: job or model name)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-queue", type=int, default=64)
    parser.add_argument("--default-max-tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, help="CPU threads for torch and llama.cpp (default: half the CPUs)")
    parser.add_argument("--backend", choices=["auto", "transformers", "llama.cpp"], help="default: NOCODETUNE_SERVE_BACKEND or auto")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "int8"], help="transformers weights (default: NOCODETUNE_SERVE_PRECISION or auto)")
    parser.add_argument("--kv-tokens", type=int, help="llama.cpp: KV cache cells shared by all requests (default 16384)")
    args = parser.parse_args(argv)
    try:
        serve(ServeOptions(**{k: v for k, v in vars(args).items() if v is not None}))
    except (NocodetuneError, ValidationError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
