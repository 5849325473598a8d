"""/v1/embeddings: mean-pooled last hidden states of the served model, L2-normalised."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving.conftest import build, live_server, need_llamacpp
from tests.serving.test_openai_sdk import client

TEXTS = ["The quick brown fox jumps over the lazy dog.", "great product, works well", "March 5, 2021"]


def _reference(model_dir: Path, ids: list[int]) -> list[float]:
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        hidden = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
    return torch.nn.functional.normalize(hidden.mean(0), dim=-1).tolist()


def test_embeddings_are_the_normalised_mean_of_the_last_hidden_states(any_server: tuple[str, Any], tiny_model_dir: Path) -> None:
    url, app = any_server
    vocab = app.state.backend.vocab
    reply = client(url).embeddings.create(model="tiny", input=TEXTS)  # the SDK asks for base64 and decodes it
    assert [d.index for d in reply.data] == [0, 1, 2]
    assert reply.usage.prompt_tokens == reply.usage.total_tokens == sum(len(vocab.encode(t)) for t in TEXTS)
    for text, item in zip(TEXTS, reply.data):
        assert len(item.embedding) == 32
        assert math.fsum(x * x for x in item.embedding) == pytest.approx(1.0, abs=1e-5)
        assert item.embedding == pytest.approx(_reference(tiny_model_dir, vocab.encode(text)), abs=1e-3)  # llama.cpp: float noise ~1e-4
    as_floats = httpx.post(f"{url}/v1/embeddings", json={"model": "tiny", "input": TEXTS[0], "encoding_format": "float"}).json()
    assert as_floats["object"] == "list" and as_floats["data"][0]["object"] == "embedding"
    assert as_floats["data"][0]["embedding"] == pytest.approx(reply.data[0].embedding, abs=1e-6)
    by_tokens = client(url).embeddings.create(model="tiny", input=[vocab.encode(TEXTS[1])], encoding_format="float")
    assert by_tokens.data[0].embedding == pytest.approx(reply.data[1].embedding, abs=1e-5)


def test_bad_embedding_inputs_name_the_field(tiny_server: tuple[str, Any]) -> None:
    url, app = tiny_server
    window = app.state.backend.embed_window
    for body, param in (
        ({"model": "tiny", "input": ""}, "input"),
        ({"model": "tiny", "input": ["ok", ""]}, "input.1"),
        ({"model": "tiny", "input": [[5] * (window + 1)]}, "input"),
        ({"model": "tiny", "input": "hi", "dimensions": 16}, "dimensions"),
    ):
        r = httpx.post(f"{url}/v1/embeddings", json=body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, (body, r.text)
    assert httpx.post(f"{url}/v1/embeddings", json={"model": "tiny", "input": "hi", "dimensions": 32}).status_code == 200


def _cosine(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b))  # both are unit vectors


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["transformers", "llama.cpp"])
def test_a_paraphrase_is_closer_than_an_unrelated_sentence(backend: str) -> None:
    """On the real default model, served by each backend."""
    if backend == "llama.cpp":
        need_llamacpp()
    options = {"backend": backend} if backend == "llama.cpp" else {"backend": "transformers", "precision": "auto"}
    with live_server(build(model="default", name="default", **options)) as url:
        pairs = [
            ("The cat is sleeping on the sofa.", "A cat naps on the couch.", "Interest rates rose by half a percent this quarter."),
            ("How do I reset my password?", "I forgot my password, how can I change it?", "The recipe needs two cups of flour."),
            ("The train to Paris leaves at noon.", "At 12 o'clock the Paris train departs.", "Photosynthesis turns light into chemical energy."),
        ]
        sdk = client(url)
        for sentence, paraphrase, unrelated in pairs:
            a, b, c = (d.embedding for d in sdk.embeddings.create(model="default", input=[sentence, paraphrase, unrelated]).data)
            assert _cosine(a, b) > _cosine(a, c), (sentence, _cosine(a, b), _cosine(a, c))
