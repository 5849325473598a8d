"""Chat templates and tool calls: render a conversation, find a template's tool-call format,
and turn generated text back into OpenAI `tool_calls`.

A model can call tools only if its chat template renders the `tools` list; how it writes a
call is the template's (and its training's) convention. Two conventions are recognised from
the template text, each matching an xgrammar structural tag that constrains the calls:

- `hermes` (Qwen 2.5/3, Hermes, SmolLM3 and many fine-tunes): `<tool_call>{"name": ...,
  "arguments": {...}}</tool_call>`; xgrammar tag `qwen_3`.
- `llama` (Llama 3.1/3.2): a bare `{"name": ..., "parameters": {...}}` object; tag `llama`.

A template that renders tools in another way is refused by name rather than guessed at.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class ToolFormat:
    name: str  # hermes | llama
    structural_tag: str  # xgrammar's model key
    reasoning: bool  # the template knows <think> blocks


@lru_cache(maxsize=16)
def _template_variables(template: str) -> frozenset[str]:
    import jinja2
    from jinja2 import meta

    return frozenset(meta.find_undeclared_variables(jinja2.Environment().parse(template)))


def renders_tools(template: str | None) -> bool:
    """Whether the chat template reads the `tools` variable at all."""
    if not template:
        return False
    try:
        return "tools" in _template_variables(template)
    except Exception:  # noqa: BLE001 - a template jinja2 cannot parse renders nothing we know of
        return False


def tool_format(template: str | None) -> ToolFormat | None:
    """The tool-call convention of a template that renders tools, or None if unrecognised."""
    if not renders_tools(template):
        return None
    assert template is not None
    if "<tool_call>" in template:
        return ToolFormat("hermes", "qwen_3", reasoning="<think>" in template)
    if "<|python_tag|>" in template or ('"parameters": ' in template and "<|start_header_id|>" in template):
        return ToolFormat("llama", "llama", reasoning=False)
    return None


_MESSAGE_NAME = re.compile(r"""message\s*(\.\s*name\b|\[\s*['"]name['"]\s*\])""")


def reads_message_names(template: str | None) -> bool:
    return bool(template and _MESSAGE_NAME.search(template))


def renders_tool_calls(template: str | None) -> bool:
    return bool(template and "tool_calls" in template)


def render_chat(template: str, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None, special_tokens: dict[str, str]) -> str:
    """The prompt text of a conversation: transformers' own renderer, so a template renders
    here exactly as `tokenizer.apply_chat_template` renders it, for both backends."""
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(
        conversations=[messages], tools=tools, chat_template=template, add_generation_prompt=True, **special_tokens
    )
    return rendered[0]


def history_tool_calls(tool_calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Assistant tool calls of the conversation as templates expect them: arguments as a
    mapping (OpenAI sends a JSON string; templates write `arguments | tojson`)."""
    out = []
    for call in tool_calls:
        function = dict(call.get("function") or {})
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            try:
                function["arguments"] = json.loads(arguments)
            except json.JSONDecodeError:
                pass
        out.append({**call, "function": function})
    return out


@dataclass
class ParsedCall:
    name: str
    arguments: str  # a JSON text, as OpenAI returns it


def parse_tool_calls(fmt: ToolFormat, text: str) -> tuple[str | None, list[ParsedCall]]:
    """(remaining content or None, calls) found in generated text."""
    calls: list[ParsedCall] = []
    if fmt.name == "hermes":
        kept: list[str] = []
        last = 0
        for match in re.finditer(r"<tool_call>\s*(.*?)\s*</tool_call>", text, re.S):
            call = _call(match.group(1), "arguments")
            if call is None:
                continue
            kept.append(text[last : match.start()])
            last = match.end()
            calls.append(call)
        kept.append(text[last:])
        content = "".join(kept).strip()
        return (content or None), calls
    decoder = json.JSONDecoder()
    pieces: list[str] = []
    i = 0
    while i < len(text):
        start = text.find('{"name"', i)
        if start < 0:
            break
        try:
            obj, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            pieces.append(text[i : start + 1])
            i = start + 1
            continue
        call = _call(json.dumps(obj), "parameters")
        if call is None:
            pieces.append(text[i:end])
        else:
            pieces.append(text[i:start])
            calls.append(call)
        i = end
    pieces.append(text[i:])
    content = re.sub(r"^[\s;]+|[\s;]+$", "", "".join(pieces))
    return (content or None), calls


def _call(raw: str, arguments_key: str) -> ParsedCall | None:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    arguments = obj.get(arguments_key, obj.get("arguments", {}))
    return ParsedCall(name=obj["name"], arguments=json.dumps(arguments))


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"
