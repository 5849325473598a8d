"""Constrained decoding with xgrammar, for both backends.

Why xgrammar: it is installed, compiles a JSON schema, plain JSON or a model's tool-call
format (its "structural tags" know Hermes/Qwen `<tool_call>` and Llama 3 JSON calls) into a
grammar whose token masks are mostly precomputed, and a per-request `GrammarMatcher` fills a
bitmask in microseconds. Because both backends sample in our own engine (serving.engine),
the same mask applies to transformers logits and to llama.cpp logits: one library, one code
path. (llama.cpp's GBNF grammars would only serve the llama.cpp backend and its own sampler;
llguidance is equally capable for JSON schemas but is not installed and has no tool-format
catalogue. docs/serving.md has the comparison.)

Compilation runs off the event loop (`asyncio.to_thread`) and is cached per schema.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from nocodetune.serving.fields import FieldRefusal

# A grammar allows at most this many whitespace characters in a row between JSON tokens:
# free whitespace lets a weak model wander in blanks until max_tokens.
_MAX_WHITESPACE = 2
# xgrammar 0.2.9 writes length-bounded JSON strings (minLength/maxLength) with the character
# class below, which lets raw control characters (U+0000-U+001F) into a string: invalid JSON
# that json.loads refuses. Its unbounded strings use the right class; bounded ones are fixed
# to it in the grammar text before compiling.
_LOOSE_STRING_CHAR = r'[^\"\\\r\n]'
_STRICT_STRING_CHAR = r'[^\0-\x1f\"\\]'
_CACHE_SIZE = 64


class Constraints:
    """Compiles and caches grammars for one vocabulary."""

    def __init__(self, vocab: Any) -> None:
        self._vocab = vocab
        self._compiler: Any = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Any] = OrderedDict()

    def _get_compiler(self) -> Any:
        with self._lock:
            if self._compiler is None:
                import xgrammar as xgr

                self._compiler = xgr.GrammarCompiler(self._vocab.grammar_vocab(), max_threads=1, cache_enabled=True)
            return self._compiler

    def _compile(self, key: str, build: Any) -> Any:
        """Compile `build()` (an xgrammar Grammar) once per key, strings made strict JSON."""
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        import xgrammar as xgr

        grammar = build()
        text = str(grammar)
        if _LOOSE_STRING_CHAR in text:
            grammar = xgr.Grammar.from_ebnf(text.replace(_LOOSE_STRING_CHAR, _STRICT_STRING_CHAR))
        compiled = self._get_compiler().compile_grammar(grammar)
        with self._lock:
            self._cache[key] = compiled
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return compiled

    def json_schema(self, schema: dict[str, Any], *, strict: bool = True) -> Any:
        import xgrammar as xgr

        text = json.dumps(schema, sort_keys=True)
        return self._compile(
            f"schema:{strict}:{text}",
            lambda: xgr.Grammar.from_json_schema(text, any_whitespace=True, max_whitespace_cnt=_MAX_WHITESPACE, strict_mode=strict),
        )

    def response_format(self, response_format: dict[str, Any]) -> Any:
        """The compiled grammar for an OpenAI `response_format`, or None for `text`."""
        kind = response_format.get("type")
        if kind == "text":
            return None
        if kind == "json_object":
            return self.json_schema({"type": "object"}, strict=False)
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise FieldRefusal("response_format.json_schema", "response_format.json_schema must be an object with a name and a schema", code="invalid_value")
        schema = spec.get("schema", {})
        if not isinstance(schema, dict):
            raise FieldRefusal("response_format.json_schema.schema", "response_format.json_schema.schema must be a JSON schema object", code="invalid_value")
        try:
            return self.json_schema(schema)
        except Exception as exc:  # noqa: BLE001 - xgrammar raises RuntimeError/ValueError for schemas it cannot compile
            raise FieldRefusal(
                "response_format.json_schema.schema", f"this JSON schema cannot be used for constrained decoding: {exc}", code="invalid_value"
            ) from exc

    def tool_calls(self, tool_format: str, tools: list[dict[str, Any]], tool_choice: Any, *, parallel: bool, reasoning: bool) -> Any:
        """The grammar of a model's tool-call syntax (xgrammar structural tag `tool_format`):
        free text with constrained calls (`auto`), at least one call (`required`) or exactly
        the named one; every call's arguments match that tool's parameters schema."""
        import xgrammar as xgr

        choice = tool_choice if tool_choice is not None else "auto"
        key = json.dumps(["tools", tool_format, tools, choice, parallel, reasoning], sort_keys=True)
        try:
            tag = xgr.get_model_structural_tag(
                tool_format,
                tools=tools,
                tool_choice=choice,
                reasoning="auto" if reasoning else "disabled",
                max_whitespace_cnt=_MAX_WHITESPACE,
                parallel_tool_calls=parallel,
            )
            return self._compile(key, lambda: xgr.Grammar.from_structural_tag(tag))
        except (ValueError, RuntimeError) as exc:
            param = "tool_choice" if "choice" in str(exc) or "not found" in str(exc) else "tools"
            raise FieldRefusal(param, f"{param}: {exc}", code="invalid_value") from exc
