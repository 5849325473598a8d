"""Translate a model's Jinja chat template into an Ollama TEMPLATE (Go text/template).

A general Jinja → Go translator does not exist (Jinja templates are programs). Chat
templates of instruction models are almost always "wrappers": each message is written as
a role prefix, its content and a role suffix, the first message may be preceded by a
head (BOS, a default system prompt), and a generation prompt opens the answer. This module
finds those pieces by rendering the template with marker contents (`probe`), writes a
Go template that emits the same pieces (`go_template`), and then checks the translation by
rendering both on several conversations and comparing the text (`check_translation`).
A template that is not a wrapper fails that check and is refused, by name, rather than
translated wrongly.

The Go side is rendered the way Ollama calls it (`ollama_values`): all messages in
`.Messages` (`.Role`, `.Content`), and the system messages joined into `.System`. Ollama
adds a Modelfile's SYSTEM as a first system message when a conversation has none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nocodetune.export.gotemplate import TemplateError, go_string, render

Message = dict[str, str]
Renderer = Callable[[list[Message], bool], str]  # (messages, add_generation_prompt) -> text

_U1, _U2, _A1, _S1 = "NCTuserONE", "NCTuserTWO", "NCTassistantONE", "NCTsystemONE"


class TranslationError(ValueError):
    """The chat template cannot be expressed as an Ollama TEMPLATE (the reason says why)."""


@dataclass
class ChatShape:
    """The pieces of a wrapper chat template."""

    head: str  # before the first message when it is not a system message (BOS, a default system prompt)
    first_system_prefix: str  # before the content of a first system message (BOS included)
    system_prefix: str | None  # before a later system message's content; None when the template refuses one there
    system_suffix: str
    user_prefix: str
    user_suffix: str
    assistant_prefix: str
    assistant_suffix: str
    generation_prompt: str
    supports_system: bool = True
    trims_content: bool = False  # the template strips white space around contents (Go's templates cannot)


def _between(text: str, left: str, right: str | None) -> str:
    start = text.index(left) + len(left)
    return text[start:] if right is None else text[start : text.index(right, start)]


def _strip_prefix(text: str, prefix: str, what: str) -> str:
    if not text.startswith(prefix):
        raise TranslationError(f"the chat template writes {what} differently from message to message")
    return text[len(prefix) :]


def _strip_suffix(text: str, suffix: str, what: str) -> str:
    if suffix and not text.endswith(suffix):
        raise TranslationError(f"the chat template writes {what} differently from message to message")
    return text[: len(text) - len(suffix)] if suffix else text


def probe(render_chat: Renderer) -> ChatShape:
    """The pieces of the template, found by rendering marker conversations."""
    try:
        one = render_chat([{"role": "user", "content": _U1}], False)
        one_gen = render_chat([{"role": "user", "content": _U1}], True)
        pair = render_chat([{"role": "user", "content": _U1}, {"role": "assistant", "content": _A1}], False)
        turns = render_chat(
            [{"role": "user", "content": _U1}, {"role": "assistant", "content": _A1}, {"role": "user", "content": _U2}], False
        )
    except Exception as exc:  # a template that cannot render a plain conversation cannot be translated
        raise TranslationError(f"the chat template fails on a plain user/assistant conversation: {exc}") from exc
    for text in (one, pair, turns):
        if any(marker not in text for marker in ((_U1,) if text is one else (_U1, _A1))):
            raise TranslationError("the chat template does not write message contents as they are")
    if not one_gen.startswith(one):
        raise TranslationError("the generation prompt is not added at the end of the conversation")
    generation_prompt = one_gen[len(one) :]
    user_suffix = _between(turns, _U2, None)
    assistant_suffix = _between(pair, _A1, None)
    assistant_prefix = _strip_prefix(_between(turns, _U1, _A1), user_suffix, "the end of a user message")
    user_prefix = _strip_prefix(_between(turns, _A1, _U2), assistant_suffix, "the end of an assistant message")
    head = _strip_suffix(turns[: turns.index(_U1)], user_prefix, "the start of a user message")

    supports_system, first_system_prefix, system_suffix, system_prefix = True, "", "", None
    try:
        with_system = render_chat([{"role": "system", "content": _S1}, {"role": "user", "content": _U1}], False)
    except Exception:  # noqa: BLE001 - some templates refuse system messages (the TEMPLATE then has none)
        supports_system = False
    if supports_system:
        try:
            first_system_prefix = with_system[: with_system.index(_S1)]
            system_suffix = _strip_suffix(_between(with_system, _S1, _U1), user_prefix, "the start of a user message")
        except (ValueError, TranslationError):  # dropped, or folded into the user message (not a wrapper)
            supports_system = False
    if supports_system:
        try:
            later = render_chat([{"role": "user", "content": _U1}, {"role": "system", "content": _S1}, {"role": "user", "content": _U2}], False)
            system_prefix = _strip_prefix(_between(later, _U1, _S1), user_suffix, "the end of a user message")
        except Exception:  # noqa: BLE001 - a system message after the first is refused by many templates
            system_prefix = None
    trims = False
    try:
        trims = f" {_U1} " not in render_chat([{"role": "user", "content": f" {_U1} "}], False)
    except Exception:  # noqa: BLE001 - rendered fine without spaces; treat as not trimming
        trims = False
    return ChatShape(
        head=head, first_system_prefix=first_system_prefix, system_prefix=system_prefix, system_suffix=system_suffix,
        user_prefix=user_prefix, user_suffix=user_suffix, assistant_prefix=assistant_prefix, assistant_suffix=assistant_suffix,
        generation_prompt=generation_prompt, supports_system=supports_system, trims_content=trims,
    )


def _lit(text: str | None) -> str:
    """A piece of text as a Go string action (empty text writes nothing)."""
    return f"{{{{ {go_string(text)} }}}}" if text else ""


def go_template(shape: ChatShape) -> str:
    """The Ollama TEMPLATE writing `shape`'s pieces around each message.

    Every literal piece is a Go string constant inside an action, so the template's own
    line breaks and `{{-` trim markers never touch the model's text.
    """
    system_branch = ""
    if shape.supports_system:
        if shape.system_prefix == shape.first_system_prefix:
            prefix = _lit(shape.system_prefix)  # the same wherever the system message is
        else:
            later = f"{{{{ else }}}}{_lit(shape.system_prefix)}" if shape.system_prefix is not None else ""
            prefix = f"{{{{ if eq $i 0 }}}}{_lit(shape.first_system_prefix)}{later}{{{{ end }}}}"
        system_branch = (
            '{{- if eq .Role "system" }}'
            f"{prefix}{{{{ .Content }}}}{_lit(shape.system_suffix)}\n"
            "{{- else }}\n"
        )
    lines = [
        "{{- range $i, $_ := .Messages }}",
        "{{- $last := eq (len (slice $.Messages $i)) 1 }}",
        system_branch.rstrip("\n") if system_branch else "",
        f"{{{{- if eq $i 0 }}}}{_lit(shape.head)}{{{{ end }}}}" if shape.head else "",
        f'{{{{- if eq .Role "user" }}}}{_lit(shape.user_prefix)}{{{{ .Content }}}}{_lit(shape.user_suffix)}',
        f'{{{{- else if eq .Role "assistant" }}}}{_lit(shape.assistant_prefix)}{{{{ .Content }}}}{_lit(shape.assistant_suffix)}',
        "{{- end }}",
        "{{- end }}" if system_branch else "",
        f'{{{{- if and $last (ne .Role "assistant") }}}}{_lit(shape.generation_prompt)}{{{{ end }}}}' if shape.generation_prompt else "",
        "{{- end }}",
    ]
    return "\n".join(line for line in lines if line)


def ollama_values(messages: list[Message]) -> dict[str, object]:
    """What Ollama passes a TEMPLATE for a chat: `.Messages` and the system messages joined into `.System`."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    return {"Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages], "System": system}


# Conversations both renderings must agree on: one and two turns, with and without a system
# prompt, contents with line breaks, braces and non-ASCII text.
CHECK_CONVERSATIONS: list[list[Message]] = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You answer in French."}, {"role": "user", "content": "Say hi."}],
    [
        {"role": "user", "content": "Convert to ISO: March 5, 2021"},
        {"role": "assistant", "content": "2021-03-05"},
        {"role": "user", "content": "And July 14, 1999?\nJust the date."},
    ],
    [
        {"role": "system", "content": "Be brief.\nNo {{ templates }} here."},
        {"role": "user", "content": "Two plus two?"},
        {"role": "assistant", "content": "Four."},
        {"role": "user", "content": "Und auf Deutsch? «vier»"},
    ],
    [{"role": "user", "content": "Finish this"}, {"role": "assistant", "content": "Sure"}],
]


def compare(render_chat: Renderer, template: str, messages: list[Message]) -> tuple[str, str]:
    """(Jinja text, Go text) of one conversation; the generation prompt follows a last non-assistant message, as in Ollama."""
    wants_answer = messages[-1]["role"] != "assistant"
    return render_chat(messages, wants_answer), render(template, ollama_values(messages))


def check_translation(render_chat: Renderer, template: str, shape: ChatShape) -> None:
    """Raise TranslationError unless both renderings agree on every check conversation it supports."""
    for messages in CHECK_CONVERSATIONS:
        if not shape.supports_system and any(m["role"] == "system" for m in messages):
            continue
        try:
            jinja_text, go_text = compare(render_chat, template, messages)
        except TemplateError as exc:
            raise TranslationError(f"the translated TEMPLATE does not render: {exc}") from exc
        except Exception as exc:  # the Jinja side refusing a plain conversation
            raise TranslationError(f"the chat template fails on a {len(messages)}-message conversation: {exc}") from exc
        if jinja_text != go_text:
            at = next((i for i, (a, b) in enumerate(zip(jinja_text, go_text)) if a != b), min(len(jinja_text), len(go_text)))
            raise TranslationError(
                f"the chat template is not a per-message wrapper that a TEMPLATE can reproduce "
                f"(a {len(messages)}-message conversation differs at character {at}: {jinja_text[at:at + 30]!r} vs {go_text[at:at + 30]!r})"
            )


def translate(render_chat: Renderer) -> tuple[str, ChatShape]:
    """The checked Ollama TEMPLATE for a chat template, and its pieces."""
    shape = probe(render_chat)
    template = go_template(shape)
    check_translation(render_chat, template, shape)
    return template, shape


def tokenizer_renderer(tokenizer: object) -> Renderer:
    """The tokenizer's own chat template as a Renderer (transformers' Jinja environment)."""

    def render_chat(messages: list[Message], add_generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)  # type: ignore[attr-defined]

    return render_chat
