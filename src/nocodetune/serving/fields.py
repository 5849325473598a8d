"""Which request fields each backend honours: the one table the app checks and the docs print.

Every field of the OpenAI chat, completions and embeddings requests (openai SDK 3.x) has a
rule per backend: implemented, implemented for some values only, recorded (an identifier
that changes no output, written to the server log), or refused. A field that is not in the
table at all (a newer SDK's option, a typo) is refused too: the server never answers 200
while quietly dropping something the client asked for. `null` means "not given", as in
OpenAI's API.

Some refusals depend on the model rather than the backend (tools need a chat template that
renders them, message names a template that reads them); the app checks those and names
the field the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["implemented", "partial", "recorded", "refused"]
Endpoint = Literal["chat", "completions", "embeddings", "message"]


class FieldRefusal(Exception):
    """A request field this backend does not honour; the app answers 400 naming `param`."""

    def __init__(self, param: str, message: str, *, code: str = "unsupported_parameter") -> None:
        super().__init__(message)
        self.param, self.message, self.code = param, message, code


@dataclass(frozen=True)
class Rule:
    status: Status
    note: str
    accepts: Callable[[Any], bool] | None = None  # for "partial": the values that are honoured


FieldTable = Mapping[str, Mapping[str, Rule]]


def _yes(note: str) -> Rule:
    return Rule("implemented", note)


def _only(note: str, accepts: Callable[[Any], bool]) -> Rule:
    return Rule("partial", note, accepts)


def _no(note: str) -> Rule:
    return Rule("refused", note)


def _recorded(note: str) -> Rule:
    return Rule("recorded", note)


def _rf_ok(v: Any) -> bool:
    return isinstance(v, dict) and v.get("type") in ("text", "json_object", "json_schema")


def _stream_options_ok(v: Any) -> bool:
    return isinstance(v, dict) and set(v) <= {"include_usage", "include_obfuscation"} and not v.get("include_obfuscation")


def _function_tools_only(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(t, dict) and t.get("type") == "function" for t in v)


def _tool_choice_ok(v: Any) -> bool:
    return v in ("none", "auto", "required") or (isinstance(v, dict) and v.get("type") in ("function", "allowed_tools"))


_SAMPLING: dict[str, Rule] = {
    "model": _yes("must name the served model (404 otherwise)"),
    "temperature": _yes("0 is greedy"),
    "top_p": _yes("nucleus sampling"),
    "seed": _yes("same seed, same request → same output; choice i of n uses seed + i"),
    "stop": _yes("up to 4 strings; the text stops before the first one"),
    "stream": _yes("server-sent events, closed by `data: [DONE]`"),
    "stream_options": _only("`include_usage` is implemented; `include_obfuscation: true` is refused", _stream_options_ok),
    "frequency_penalty": _yes("OpenAI's definition, over the tokens generated so far"),
    "presence_penalty": _yes("OpenAI's definition, over the tokens generated so far"),
    "logit_bias": _yes("token id → bias in [-100, 100], added to the logits"),
    "n": _yes("choices sampled in the same batch (at most 16)"),
    "user": _recorded("an end-user id: written to the server log, no effect on the output"),
    "max_tokens": _yes("capped by the context window (400 beyond it)"),
}

_CHAT: dict[str, Rule] = {
    **_SAMPLING,
    "messages": _yes("rendered by the model's chat template"),
    "max_completion_tokens": _yes("same as max_tokens"),
    "logprobs": _yes("logprobs of the model's distribution for each sampled token"),
    "top_logprobs": _yes("0–20 alternatives per token; needs logprobs: true"),
    "response_format": _only(
        "`text`, `json_object` and `json_schema` (constrained decoding with xgrammar: the output always parses and matches the schema "
        "unless max_tokens cuts it, finish_reason `length`)",
        _rf_ok,
    ),
    "tools": _only("`function` tools, rendered by the chat template; 400 when the template has no tool support or an unknown tool-call format", _function_tools_only),
    "tool_choice": _only("`none`, `auto`, `required`, a named function and `allowed_tools`; calls are constrained to the tools' schemas", _tool_choice_ok),
    "parallel_tool_calls": _yes("false: at most one tool call"),
    "safety_identifier": _recorded("an end-user id: written to the server log, no effect on the output"),
    "store": _only("only false: this server stores no completions", lambda v: v is False),
    "service_tier": _only("only `auto` and `default`: there is one tier", lambda v: v in ("auto", "default")),
    "modalities": _only('only `["text"]`', lambda v: v == ["text"]),
    "metadata": _no("only meaningful with store: true, which is refused"),
    "audio": _no("text models only"),
    "prediction": _no("predicted outputs (speculative decoding) are not implemented"),
    "reasoning_effort": _no("no reasoning-effort control for these models"),
    "verbosity": _no("no verbosity control for these models"),
    "web_search_options": _no("no web access"),
    "functions": _no("deprecated by OpenAI: send `tools`"),
    "function_call": _no("deprecated by OpenAI: send `tool_choice`"),
    "moderation": _no("no moderation model"),
    "prompt_cache_key": _no("no prompt cache to route by"),
    "prompt_cache_options": _no("no prompt cache"),
    "prompt_cache_retention": _no("no prompt cache"),
}

_COMPLETIONS: dict[str, Rule] = {
    **_SAMPLING,
    "max_tokens": _yes("default 16, as OpenAI's; capped by the context window"),
    "prompt": _yes("a string, a list of strings, a token list or a list of token lists"),
    "echo": _yes("the prompt is prepended to the text (not together with logprobs: prompt logprobs are not computed)"),
    "logprobs": _yes("0–5: the sampled token's logprob plus that many alternatives"),
    "best_of": _yes("samples best_of candidates and returns the n with the highest total logprob (not with stream)"),
    "suffix": _no("insertion (fill-in-the-middle) is not implemented"),
}

_EMBEDDINGS: dict[str, Rule] = {
    "model": _yes("must name the served model"),
    "input": _yes("a string, a list of strings, a token list or a list of token lists"),
    "encoding_format": _only("`float` and `base64` (little-endian float32)", lambda v: v in ("float", "base64")),
    "dimensions": _only("only the model's own hidden size (checked against the model): truncating a non-Matryoshka embedding is meaningless", lambda v: isinstance(v, int)),
    "user": _recorded("an end-user id: written to the server log, no effect on the output"),
}

_MESSAGE: dict[str, Rule] = {
    "role": _yes("system, developer (as system), user, assistant, tool"),
    "content": _yes("a string or text parts; other part types (images, audio, files) are refused"),
    "name": _yes("passed to the chat template; 400 when the template does not read message names"),
    "tool_calls": _yes("assistant tool calls, rendered by the template; 400 when the template does not render them"),
    "tool_call_id": _yes("passed to the chat template with the tool's answer"),
    "refusal": _no("assistant refusals are not rendered by chat templates"),
    "audio": _no("text models only"),
    "function_call": _no("deprecated by OpenAI: send tool_calls"),
}

TRANSFORMERS_FIELDS: FieldTable = {"chat": _CHAT, "completions": _COMPLETIONS, "embeddings": _EMBEDDINGS, "message": _MESSAGE}

# The llama.cpp backend runs the same scheduler, sampler, logprobs and grammar code over
# llama_decode (serving.llamacpp), so it honours the same fields; its embeddings come from a
# second llama.cpp context on the same weights with mean pooling.
LLAMACPP_FIELDS: FieldTable = {
    "chat": dict(_CHAT),
    "completions": dict(_COMPLETIONS),
    "embeddings": {**_EMBEDDINGS, "input": _yes("as transformers; pooled by llama.cpp (mean), then L2-normalised")},
    "message": dict(_MESSAGE),
}

BACKEND_FIELDS: dict[str, FieldTable] = {"transformers": TRANSFORMERS_FIELDS, "llama.cpp": LLAMACPP_FIELDS}


def check_fields(table: FieldTable, endpoint: Endpoint, payload: Mapping[str, Any], *, backend: str, prefix: str = "") -> None:
    """Raise `FieldRefusal` for the first field of `payload` this backend does not honour."""
    rules = table[endpoint]
    for key, value in payload.items():
        param = f"{prefix}{key}"
        rule = rules.get(key)
        if rule is None:
            raise FieldRefusal(param, f"unknown field {param!r}: the {backend} backend does not support it (see docs/serving.md)", code="unknown_parameter")
        if value is None:
            continue
        if rule.status == "refused":
            raise FieldRefusal(param, f"{param} is not supported by the {backend} backend: {rule.note}")
        if rule.status == "partial" and rule.accepts is not None and not rule.accepts(value):
            raise FieldRefusal(param, f"{param}={_short(value)} is not supported by the {backend} backend: {rule.note}", code="unsupported_value")


def _short(value: Any) -> str:
    import json

    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_MARK = {"implemented": "yes", "partial": "some values", "recorded": "recorded", "refused": "**400**"}


def fields_markdown() -> str:
    """The per-backend tables of docs/serving.md (a test keeps the docs equal to this)."""
    names = list(BACKEND_FIELDS)
    out: list[str] = []
    titles = {"chat": "POST /v1/chat/completions", "completions": "POST /v1/completions", "embeddings": "POST /v1/embeddings", "message": "each of `messages`"}
    for endpoint, title in titles.items():
        out.append(f"#### {title}\n")
        out.append("| field | " + " | ".join(names) + " | how |")
        out.append("|---|" + "---|" * len(names) + "---|")
        keys = sorted({k for t in BACKEND_FIELDS.values() for k in t[endpoint]})  # type: ignore[index]
        for key in keys:
            rules = [BACKEND_FIELDS[n][endpoint].get(key) for n in names]  # type: ignore[index]
            marks = [_MARK[r.status] if r else "**400**" for r in rules]
            notes = {r.note for r in rules if r}
            out.append(f"| `{key}` | " + " | ".join(marks) + " | " + " / ".join(sorted(notes)) + " |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
