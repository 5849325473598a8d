"""Each implemented request field does what OpenAI documents, on both backends: logprobs,
top_logprobs, n, best_of, logit_bias, response_format json_schema, tools and tool_choice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from tests.serving.conftest import TOOL_TEMPLATE, build, live_server, need_llamacpp
from tests.serving.test_openai_sdk import client

ASK = [{"role": "user", "content": "Convert the date March 5"}]
NO_SPECIAL = {"0": -100, "1": -100, "2": -100}  # the tiny vocabulary's special tokens: no text, so keep them out


def _reference_logprobs(model_dir: Path, prompt: list[int], tokens: list[int]) -> Any:
    """log-softmax of a plain forward pass over prompt + tokens, at each generated position."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        logits = model(torch.tensor([prompt + tokens])).logits[0, len(prompt) - 1 : -1].float()
    return torch.log_softmax(logits, -1)


def _ids_by_bytes(vocab: Any, size: int) -> dict[bytes, int]:
    out: dict[bytes, int] = {}
    for token in range(size):
        out.setdefault(vocab.token_bytes(token), token)
    return out


def _chat_prompt_ids(app: Any, model_dir: Path, messages: list[dict[str, str]]) -> list[int]:
    from transformers import AutoTokenizer

    text = AutoTokenizer.from_pretrained(model_dir).apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return app.state.backend.vocab.encode(text)


def test_chat_logprobs_are_the_models_own(any_server: tuple[str, Any], tiny_model_dir: Path) -> None:
    """Sampled tokens' logprobs (and the top alternatives) equal a separate forward pass's."""
    url, app = any_server
    backend = app.state.backend
    reply = client(url).chat.completions.create(model="tiny", messages=ASK, max_tokens=12, temperature=1.2, seed=5, logprobs=True, top_logprobs=3)
    choice = reply.choices[0]
    entries = choice.logprobs.content
    assert len(entries) == reply.usage.completion_tokens - (1 if choice.finish_reason == "stop" else 0)  # the EOS token brings no text
    ids = _ids_by_bytes(backend.vocab, backend.vocab_size)
    tokens = [ids[bytes(e.bytes)] for e in entries]
    prompt = _chat_prompt_ids(app, tiny_model_dir, ASK)
    assert reply.usage.prompt_tokens == len(prompt)
    reference = _reference_logprobs(tiny_model_dir, prompt, tokens)
    got = [e.logprob for e in entries]
    want = [float(reference[i, t]) for i, t in enumerate(tokens)]
    assert got == pytest.approx(want, abs=2e-3)
    assert sum(got) == pytest.approx(sum(want), abs=1e-2)
    for i, entry in enumerate(entries):
        top = [t.logprob for t in entry.top_logprobs]
        assert len(top) == 3 and top == sorted(top, reverse=True)
        assert top == pytest.approx(reference[i].topk(3).values.tolist(), abs=2e-3)


def test_completion_logprobs_shape_and_logit_bias(any_server: tuple[str, Any]) -> None:
    url, _ = any_server
    reply = client(url).completions.create(model="tiny", prompt="March 5", max_tokens=8, temperature=0, logprobs=2, logit_bias=NO_SPECIAL)
    choice = reply.choices[0]
    lp = choice.logprobs
    assert "".join(lp.tokens) == choice.text
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == reply.usage.completion_tokens
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
    for token, value, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert len(top) == 2 and top[token] == pytest.approx(value)  # greedy: the chosen token is the most likely
    with pytest.raises(openai.BadRequestError) as err:
        client(url).completions.create(model="tiny", prompt="March", max_tokens=2, logit_bias={"99999": 5})
    assert err.value.body["param"] == "logit_bias"


def test_logit_bias_forces_and_forbids_tokens(any_server: tuple[str, Any]) -> None:
    url, app = any_server
    vocab = app.state.backend.vocab
    forced = vocab.encode(" fox")[0]
    reply = client(url).completions.create(model="tiny", prompt="The", max_tokens=4, temperature=1.0, seed=1, logit_bias={str(forced): 100})
    assert reply.choices[0].text == vocab.decode([forced] * 4)


def test_streamed_logprobs_equal_the_whole_answers(any_server: tuple[str, Any]) -> None:
    url, _ = any_server
    ask = dict(model="tiny", messages=ASK, max_tokens=10, temperature=0, logprobs=True, top_logprobs=1, logit_bias=NO_SPECIAL)
    whole = client(url).chat.completions.create(**ask).choices[0].logprobs.content
    streamed = [e for chunk in client(url).chat.completions.create(stream=True, **ask) if chunk.choices and chunk.choices[0].logprobs for e in chunk.choices[0].logprobs.content]
    assert [(e.token, round(e.logprob, 4)) for e in streamed] == [(e.token, round(e.logprob, 4)) for e in whole]


def test_n_gives_n_seeded_choices_streamed_or_not(any_server: tuple[str, Any]) -> None:
    url, _ = any_server
    ask = dict(model="tiny", messages=ASK, max_tokens=8, temperature=1.3, seed=11, n=3)
    reply = client(url).chat.completions.create(**ask)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    texts = [c.message.content for c in reply.choices]
    assert len(set(texts)) > 1  # choice i samples with seed + i
    assert [c.message.content for c in client(url).chat.completions.create(**ask).choices] == texts
    assert reply.usage.completion_tokens <= 3 * 8 and reply.usage.prompt_tokens > 0
    streamed: dict[int, str] = {}
    finishes: dict[int, list[str]] = {}
    for chunk in client(url).chat.completions.create(stream=True, **ask):
        for c in chunk.choices:
            streamed[c.index] = streamed.get(c.index, "") + (c.delta.content or "")
            if c.finish_reason:
                finishes.setdefault(c.index, []).append(c.finish_reason)
    assert [streamed[i] for i in range(3)] == texts
    assert all(len(finishes[i]) == 1 for i in range(3))


def test_best_of_returns_the_most_likely_candidate(any_server: tuple[str, Any]) -> None:
    url, _ = any_server
    ask = dict(model="tiny", prompt="The quick", max_tokens=6, temperature=1.0, seed=21)
    candidates = client(url).completions.create(n=3, logprobs=0, **ask).choices
    best = max(candidates, key=lambda c: sum(c.logprobs.token_logprobs))
    chosen = client(url).completions.create(n=1, best_of=3, **ask).choices
    assert [c.text for c in chosen] == [best.text]
    assert chosen[0].logprobs is None  # not asked for


PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3},
        "ok": {"type": "boolean"},
        "home": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8}}, "required": ["city"], "additionalProperties": False},
    },
    "required": ["name", "age", "tags", "ok", "home"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("temperature", [0.0, 0.8, 1.5])
def test_json_schema_outputs_always_parse_and_validate(any_server: tuple[str, Any], temperature: float) -> None:
    url, _ = any_server
    prompts = ["Describe a person as JSON", "quick brown fox", "terrible, broke after a day"]
    for k, prompt in enumerate(prompts):
        reply = client(url).chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": prompt}],
            max_tokens=200,
            temperature=temperature,
            seed=k,
            n=2,
            response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}},
        )
        for choice in reply.choices:
            assert choice.finish_reason == "stop", choice.message.content
            jsonschema.validate(json.loads(choice.message.content), PERSON)  # json.loads is strict: no raw control characters


def test_an_unusable_schema_is_a_400(tiny_server: tuple[str, Any]) -> None:
    url, _ = tiny_server
    with pytest.raises(openai.BadRequestError) as err:
        client(url).chat.completions.create(
            model="tiny", messages=ASK, response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}
        )
    assert err.value.body["param"] == "response_format.json_schema.schema"


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 10}, "unit": {"enum": ["c", "f"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"enum": ["utc", "cet"]}}, "required": ["zone"], "additionalProperties": False},
    },
}
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, CLOCK)}


@pytest.fixture(scope="module", params=["transformers", "llama.cpp"])
def tool_server(request: pytest.FixtureRequest, tool_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    if request.param == "llama.cpp":
        need_llamacpp()
        from tests.serving.tiny_gguf import write_tiny_gguf

        model = str(write_tiny_gguf(tool_model_dir, tmp_path_factory.mktemp("tools-gguf") / "tiny.gguf", chat_template=TOOL_TEMPLATE))
    else:
        model = str(tool_model_dir)
    with live_server(build(model=model, name="tiny")) as url:
        yield url


def _check_calls(choice: Any) -> list[str]:
    names = []
    for call in choice.message.tool_calls:
        assert call.type == "function" and call.id.startswith("call_")
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
        names.append(call.function.name)
    return names


def test_required_tool_calls_parse_and_match_their_schemas(tool_server: str) -> None:
    for temperature in (0.0, 1.0):
        reply = client(tool_server).chat.completions.create(
            model="tiny", messages=ASK, tools=[WEATHER, CLOCK], tool_choice="required", parallel_tool_calls=False, temperature=temperature, seed=3, n=2, max_tokens=120
        )
        for choice in reply.choices:
            assert choice.finish_reason == "tool_calls", choice.message
            assert len(_check_calls(choice)) == 1  # parallel_tool_calls=false: one call


def test_a_named_tool_choice_calls_that_tool(tool_server: str) -> None:
    reply = client(tool_server).chat.completions.create(
        model="tiny", messages=ASK, tools=[WEATHER, CLOCK], tool_choice={"type": "function", "function": {"name": "get_time"}}, temperature=1.0, seed=4, max_tokens=120
    )
    assert _check_calls(reply.choices[0]) == ["get_time"]
    allowed = {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "get_weather"}}]}}
    reply = client(tool_server).chat.completions.create(
        model="tiny", messages=ASK, tools=[WEATHER, CLOCK], tool_choice=allowed, parallel_tool_calls=False, temperature=1.0, seed=5, max_tokens=120
    )
    assert _check_calls(reply.choices[0]) == ["get_weather"]


def test_streamed_tool_calls_parse(tool_server: str) -> None:
    chunks = list(
        client(tool_server).chat.completions.create(
            model="tiny", messages=ASK, tools=[WEATHER], tool_choice="required", parallel_tool_calls=False, temperature=0.7, seed=9, max_tokens=120, stream=True
        )
    )
    calls = [call for c in chunks if c.choices and c.choices[0].delta.tool_calls for call in c.choices[0].delta.tool_calls]
    assert len(calls) == 1 and calls[0].function.name == "get_weather"
    jsonschema.validate(json.loads(calls[0].function.arguments), SCHEMAS["get_weather"])
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_tool_choice_none_and_a_tool_conversation(tool_server: str) -> None:
    sdk = client(tool_server)
    plain = sdk.chat.completions.create(model="tiny", messages=ASK, tools=[WEATHER], tool_choice="none", max_tokens=6, temperature=0)
    assert plain.choices[0].message.tool_calls is None and plain.choices[0].finish_reason in ("stop", "length")
    history = [
        *ASK,
        {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo", "unit": "c"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "-3"},
    ]
    follow_up = sdk.chat.completions.create(model="tiny", messages=history, tools=[WEATHER], max_tokens=6, temperature=0)
    assert follow_up.choices[0].finish_reason in ("stop", "length", "tool_calls")
    with pytest.raises(openai.BadRequestError) as err:
        sdk.chat.completions.create(model="tiny", messages=ASK, tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}})
    assert err.value.body["param"] == "tool_choice"


def test_presence_and_frequency_penalties_stop_repeats(any_server: tuple[str, Any]) -> None:
    """The tiny model's greedy text repeats tokens; a penalty of 2 on used tokens outweighs its
    flat logits, so no token comes twice."""
    url, _ = any_server
    ask = dict(model="tiny", messages=ASK, max_tokens=16, temperature=0, logprobs=True, logit_bias=NO_SPECIAL)

    def tokens(**penalty: float) -> list[bytes]:
        return [bytes(e.bytes) for e in client(url).chat.completions.create(**ask, **penalty).choices[0].logprobs.content]

    plain = tokens()
    assert len(set(plain)) < len(plain), "precondition: the unpenalised greedy text repeats a token"
    for penalty in ({"presence_penalty": 2.0}, {"frequency_penalty": 2.0}):
        penalised = tokens(**penalty)
        assert len(penalised) == 16 and len(set(penalised)) == len(penalised), (penalty, penalised)
