"""A renderer for the subset of Go's text/template that Ollama Modelfile TEMPLATEs use.

Ollama renders a Modelfile's TEMPLATE with Go's text/template, which is not available in
Python. The Ollama export checks the TEMPLATE it writes by rendering it here and comparing
with the model's own Jinja chat template, so this follows Go's semantics for what it
supports and refuses anything else (an unknown function, a construct it does not parse)
instead of guessing:

- text and actions `{{ ... }}`, with Go's trim markers (`{{- ` trims the white space
  before the action, ` -}}` the white space after it) and comments `{{/* ... */}}`;
- `if` / `else if` / `else` / `end`, `range` (with `$i, $e :=` and an `else` branch),
  `with`; variables (`$x := pipeline`, `$x = pipeline`, `$` the data), scoped to the
  enclosing block as in Go;
- operands: fields `.A.B`, `$x.A`, `(pipeline).A`, string literals (Go escapes), numbers,
  `true`, `false`, `nil`; pipelines with `|`;
- functions: and, or (both short-circuit, returning an operand as Go does), not, eq, ne,
  lt, le, gt, ge, len, index, slice, print.

Values: strings, numbers, booleans, None (Go's nil), lists, and dicts (fields are keys).
Truth is Go's: false, 0, "", nil, an empty list or dict are false.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_SPACE = " \t\r\n"


class TemplateError(ValueError):
    """The template uses something this renderer does not implement, or is malformed."""


# -- lexing ---------------------------------------------------------------------------


@dataclass
class _Action:
    body: str


def _split(source: str) -> list[str | _Action]:
    """Text and actions, with trim markers applied to the neighbouring text."""
    parts: list[str | _Action] = []
    pos = 0
    trim_next = False
    while True:
        start = source.find("{{", pos)
        text = source[pos:] if start < 0 else source[pos:start]
        if trim_next:
            text = text.lstrip(_SPACE)
        if start < 0:
            parts.append(text)
            return parts
        inner_start = start + 2
        if source.startswith("-", inner_start) and inner_start + 1 < len(source) and source[inner_start + 1] in _SPACE:
            text = text.rstrip(_SPACE)
            inner_start += 2
        parts.append(text)
        end = _find_close(source, inner_start)
        inner_end = end
        trim_next = False
        if end - 2 >= inner_start and source[end - 1] == "-" and source[end - 2] in _SPACE:
            inner_end = end - 2
            trim_next = True
        parts.append(_Action(source[inner_start:inner_end]))
        pos = end + 2


def _find_close(source: str, pos: int) -> int:
    """Index of the `}}` closing an action, skipping string literals and comments."""
    i = pos
    while i < len(source):
        c = source[i]
        if source.startswith("/*", i):
            close = source.find("*/", i + 2)
            if close < 0:
                raise TemplateError("unclosed comment")
            i = close + 2
            continue
        if c == '"':
            i += 1
            while i < len(source) and source[i] != '"':
                i += 2 if source[i] == "\\" else 1
            i += 1
            continue
        if c == "`":
            close = source.find("`", i + 1)
            if close < 0:
                raise TemplateError("unclosed raw string")
            i = close + 1
            continue
        if source.startswith("}}", i):
            return i
        i += 1
    raise TemplateError("unclosed action")


_TOKEN_RE = re.compile(
    r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*")
    |(?P<raw>`[^`]*`)
    |(?P<decl>:=)
    |(?P<assign>=)
    |(?P<var>\$[A-Za-z0-9_]*)
    |(?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
    |(?P<dot>\.)
    |(?P<num>-?\d+(?:\.\d+)?)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<punct>[()|,])
    )""",
    re.VERBOSE,
)


def _tokens(body: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    body = body.strip(_SPACE)
    while pos < len(body):
        m = _TOKEN_RE.match(body, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"cannot read {body[pos:pos + 20]!r} in action {{{{{body}}}}}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
        # a field chained right after a variable or a closing parenthesis: $x.Role, (index ...).Role
        if kind in ("var",) or (kind == "punct" and m.group(kind) == ")"):
            chained = re.match(r"(?:\.[A-Za-z_][A-Za-z0-9_]*)+", body[pos:])
            if chained:
                out.append(("chain", chained.group(0)))
                pos += chained.end()
    return out


def _unquote(token: str) -> str:
    if token.startswith("`"):
        return token[1:-1]
    try:
        return json.loads(token)  # Go's escapes that a template string uses are JSON's (\n \t \" \\ \uXXXX)
    except ValueError as exc:
        raise TemplateError(f"unsupported string literal {token}") from exc


# -- parsing --------------------------------------------------------------------------


@dataclass
class _Pipeline:
    decl: list[str]
    assign: bool  # `=` (assign to an existing variable) rather than `:=`
    commands: list[list[tuple[str, Any]]]


@dataclass
class _Node:
    kind: str  # text | action | if | range | with
    text: str = ""
    pipe: _Pipeline | None = None
    body: list[_Node] = field(default_factory=list)
    otherwise: list[_Node] = field(default_factory=list)


def _parse_pipeline(tokens: list[tuple[str, str]]) -> _Pipeline:
    decl: list[str] = []
    assign = False
    for i, (kind, _) in enumerate(tokens):
        if kind in ("decl", "assign"):
            names = [v for k, v in tokens[:i] if k == "var"]
            if not names or any(k not in ("var", "punct") for k, _ in tokens[:i]):
                raise TemplateError("bad variable declaration")
            decl, assign, tokens = names, kind == "assign", tokens[i + 1 :]
            break
    commands: list[list[tuple[str, Any]]] = [[]]
    depth = 0
    group: list[tuple[str, str]] = []
    for kind, value in tokens:
        if depth:
            if kind == "punct" and value == "(":
                depth += 1
            elif kind == "punct" and value == ")":
                depth -= 1
                if depth == 0:
                    commands[-1].append(("paren", _parse_pipeline(group)))
                    group = []
                    continue
            group.append((kind, value))
            continue
        if kind == "punct" and value == "(":
            depth = 1
        elif kind == "punct" and value == "|":
            commands.append([])
        elif kind == "punct" and value == ")":
            raise TemplateError("unbalanced ')'")
        elif kind == "chain":
            if not commands[-1]:
                raise TemplateError("field chain without an operand")
            commands[-1][-1] = ("chained", (commands[-1][-1], value))
        else:
            commands[-1].append((kind, value))
    if depth:
        raise TemplateError("unbalanced '('")
    if any(not c for c in commands):
        raise TemplateError("empty command in pipeline")
    return _Pipeline(decl, assign, commands)


def parse(source: str) -> list[_Node]:
    parts = _split(source)
    root: list[_Node] = []
    stack: list[tuple[_Node, list[_Node]]] = []  # (control node, the list being filled)
    current = root
    for part in parts:
        if isinstance(part, str):
            if part:
                current.append(_Node("text", text=part))
            continue
        body = part.body.strip(_SPACE)
        if body.startswith("/*"):
            continue
        words = body.split(None, 1)
        head = words[0] if words else ""
        rest = words[1] if len(words) > 1 else ""
        if head in ("if", "range", "with"):
            node = _Node(head, pipe=_parse_pipeline(_tokens(rest)))
            current.append(node)
            stack.append((node, current))
            current = node.body
        elif head == "else":
            if not stack:
                raise TemplateError("{{else}} outside a block")
            node, _ = stack[-1]
            if current is node.otherwise:
                raise TemplateError("two {{else}} in one block")
            current = node.otherwise
            if rest.startswith(("if ", "with ")):
                kind, expr = rest.split(None, 1)
                inner = _Node(kind, pipe=_parse_pipeline(_tokens(expr)))
                current.append(inner)
                inner.text = "chained-else"  # closed by the outer block's {{end}}
                stack.append((inner, current))
                current = inner.body
            elif rest:
                raise TemplateError(f"unsupported {{{{else {rest}}}}}")
        elif head == "end":
            if not stack:
                raise TemplateError("{{end}} without a block")
            node, current = stack.pop()
            while node.text == "chained-else":  # `else if` blocks end with their outer if
                node, current = stack.pop()
        elif head in ("define", "template", "block", "break", "continue"):
            raise TemplateError(f"{{{{{head}}}}} is not supported by this renderer")
        else:
            current.append(_Node("action", pipe=_parse_pipeline(_tokens(body))))
    if stack:
        raise TemplateError("a block is missing its {{end}}")
    return root


# -- evaluation -----------------------------------------------------------------------


def truth(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, (str, list, tuple, dict)):
        return len(value) > 0
    return True


def _field(value: Any, chain: str) -> Any:
    for name in chain.strip(".").split("."):
        if isinstance(value, dict):
            if name not in value:
                raise TemplateError(f"no field {name!r}")
            value = value[name]
        else:
            raise TemplateError(f"cannot take field {name!r} of {type(value).__name__}")
    return value


def _to_text(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _compare(name: str, a: Any, b: Any) -> bool:
    if type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        raise TemplateError(f"{name}: incompatible types for comparison")
    return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[name]


class _Scope:
    def __init__(self, data: Any) -> None:
        self.frames: list[dict[str, Any]] = [{"$": data}]

    def get(self, name: str) -> Any:
        for frame in reversed(self.frames):
            if name in frame:
                return frame[name]
        raise TemplateError(f"undefined variable {name}")

    def set(self, name: str, value: Any) -> None:
        for frame in reversed(self.frames):
            if name in frame:
                frame[name] = value
                return
        raise TemplateError(f"undefined variable {name}")


class _Renderer:
    def __init__(self, data: Any) -> None:
        self.scope = _Scope(data)
        self.out: list[str] = []

    def nodes(self, nodes: list[_Node], dot: Any) -> None:
        for node in nodes:
            if node.kind == "text":
                self.out.append(node.text)
            elif node.kind == "action":
                assert node.pipe is not None
                value = self.pipeline(node.pipe, dot)
                if not node.pipe.decl:
                    self.out.append(_to_text(value))
            elif node.kind in ("if", "with"):
                self.scope.frames.append({})
                assert node.pipe is not None
                value = self.pipeline(node.pipe, dot)
                if truth(value):
                    self.nodes(node.body, value if node.kind == "with" else dot)
                else:
                    self.nodes(node.otherwise, dot)
                self.scope.frames.pop()
            elif node.kind == "range":
                self.range(node, dot)

    def range(self, node: _Node, dot: Any) -> None:
        assert node.pipe is not None
        names = node.pipe.decl
        value = self.pipeline(_Pipeline([], False, node.pipe.commands), dot)
        items = list(value.items()) if isinstance(value, dict) else list(enumerate(value or []))
        if not items:
            self.nodes(node.otherwise, dot)
            return
        for key, item in items:
            frame: dict[str, Any] = {}
            if len(names) == 1:
                frame[names[0]] = item
            elif len(names) == 2:
                frame[names[0]], frame[names[1]] = key, item
            self.scope.frames.append(frame)
            self.nodes(node.body, item)
            self.scope.frames.pop()

    def pipeline(self, pipe: _Pipeline, dot: Any) -> Any:
        value: Any = None
        for i, command in enumerate(pipe.commands):
            value = self.command(command, dot, piped=(value,) if i else ())
        if pipe.decl:
            if pipe.assign:
                self.scope.set(pipe.decl[0], value)
            else:
                self.scope.frames[-1][pipe.decl[0]] = value
        return value

    def operand(self, token: tuple[str, Any], dot: Any) -> Any:
        kind, value = token
        if kind == "str":
            return _unquote(value)
        if kind == "raw":
            return value[1:-1]
        if kind == "num":
            return float(value) if "." in value else int(value)
        if kind == "dot":
            return dot
        if kind == "field":
            return _field(dot, value)
        if kind == "var":
            return self.scope.get(value)
        if kind == "paren":
            return self.pipeline(value, dot)
        if kind == "chained":
            base, chain = value
            return _field(self.operand(base, dot), chain)
        if kind == "ident":
            if value in ("true", "false"):
                return value == "true"
            if value == "nil":
                return None
            return self.call(value, [], dot)
        raise TemplateError(f"unexpected {value!r}")

    def command(self, command: list[tuple[str, Any]], dot: Any, piped: tuple[Any, ...]) -> Any:
        head = command[0]
        if head[0] == "ident" and head[1] not in ("true", "false", "nil"):
            return self.call(head[1], command[1:], dot, piped)
        if len(command) > 1 or piped:
            raise TemplateError(f"{head[1]!r} is not a function and takes no arguments")
        return self.operand(head, dot)

    def call(self, name: str, args: list[tuple[str, Any]], dot: Any, piped: tuple[Any, ...] = ()) -> Any:
        if name in ("and", "or"):
            values = [*((lambda a=a: self.operand(a, dot)) for a in args), *((lambda p=p: p) for p in piped)]
            if not values:
                raise TemplateError(f"{name} needs arguments")
            result: Any = None
            for get in values:
                result = get()
                if truth(result) != (name == "and"):
                    return result
            return result
        values = [self.operand(a, dot) for a in args] + list(piped)
        if name == "not":
            return not truth(values[0])
        if name in ("eq", "ne"):
            if len(values) < 2:
                raise TemplateError(f"{name} needs two arguments")
            for other in values[1:]:
                if None not in (values[0], other) and isinstance(values[0], str) != isinstance(other, str):
                    raise TemplateError(f"{name}: incompatible types for comparison")
            equal = any(values[0] == v for v in values[1:]) if name == "eq" else values[0] == values[1]
            return equal if name == "eq" else not equal
        if name in ("lt", "le", "gt", "ge"):
            return _compare(name, values[0], values[1])
        if name == "len":
            return len(values[0])
        if name == "index":
            item = values[0]
            for key in values[1:]:
                try:
                    item = item[key]
                except (IndexError, KeyError, TypeError) as exc:
                    raise TemplateError(f"index out of range: {key}") from exc
            return item
        if name == "slice":
            seq = values[0]
            bounds = values[1:]
            if len(bounds) > 2:
                raise TemplateError("slice with three indices is not supported")
            lo = bounds[0] if bounds else 0
            hi = bounds[1] if len(bounds) > 1 else len(seq)
            if not 0 <= lo <= hi <= len(seq):
                raise TemplateError(f"slice index out of range: {lo}:{hi}")
            return seq[lo:hi]
        if name == "print":
            text = ""
            for i, v in enumerate(values):
                if i and not isinstance(v, str) and not isinstance(values[i - 1], str):
                    text += " "  # fmt.Sprint adds spaces between operands when neither is a string
                text += _to_text(v)
            return text
        raise TemplateError(f"function {name!r} is not supported by this renderer")


def render(source: str, data: Any) -> str:
    """`source` rendered with `data` as Go's text/template would (for the supported subset)."""
    renderer = _Renderer(data)
    renderer.nodes(parse(source), data)
    return "".join(renderer.out)


def go_string(text: str) -> str:
    """`text` as a Go interpreted string literal (JSON's escapes are a subset of Go's)."""
    return json.dumps(text, ensure_ascii=False)
