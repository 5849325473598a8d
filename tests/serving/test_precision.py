"""CPU precisions of the transformers backend: each one serves, batches and reports itself."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from nocodetune.serving.hf import CPU_DEFAULT_PRECISION
from tests.serving.conftest import build, chat_ids, greedy_reference, live_server, served
from tests.serving.test_openai_sdk import client


@pytest.mark.parametrize("precision", ["auto", "bf16", "int8"])
def test_each_precision_answers_like_its_own_model_alone(tiny_model_dir: Path, precision: str) -> None:
    app = build(model=str(tiny_model_dir), name="tiny", precision=precision)
    model, tokenizer = served(app)
    with live_server(app) as url:
        health = httpx.get(f"{url}/health").json()
        assert health["backend"] == "transformers"
        assert health["precision"] == (CPU_DEFAULT_PRECISION if precision == "auto" else precision)
        reply = client(url).chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Convert the date"}], max_tokens=10, temperature=0)
    assert reply.choices[0].message.content == greedy_reference(model, tokenizer, chat_ids(tokenizer, "Convert the date"), 10)


def test_int8_is_refused_on_a_gpu() -> None:
    from nocodetune.errors import ConfigError
    from nocodetune.serving.hf import resolve_precision

    with pytest.raises(ConfigError) as err:
        resolve_precision("int8", "cuda")
    assert err.value.field == "precision"
    assert resolve_precision("auto", "cuda") is None  # the loader's GPU choice stands
    assert resolve_precision("auto", "cpu") == CPU_DEFAULT_PRECISION
