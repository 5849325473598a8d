"""The Go text/template renderer follows Go's semantics for what Ollama TEMPLATEs use.

Expected outputs are what Go's text/template prints for the same template and data (Go's
documented rules: trim markers, `and`/`or` returning an operand, variable scope, `else if`).
Go itself is not installed here, so these are checked by hand against the Go docs; the
ChatML case is the shape of Ollama's published chatml template.
"""

from __future__ import annotations

import pytest

from nocodetune.export.gotemplate import TemplateError, go_string, render

MESSAGES = {"Messages": [{"Role": "user", "Content": "Hi"}, {"Role": "assistant", "Content": "Hello"}, {"Role": "user", "Content": "Bye"}], "System": ""}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("a  {{- 1 }}  b", "a1  b"),
        ("a  {{ 1 -}}  b", "a  1b"),
        ("a \n\t{{- 1 -}} \n b", "a1b"),
        ('{{ " x " }}', " x "),  # trim markers never touch a string constant
        ("{{-3}}", "-3"),  # a minus sign without a space is a number
        ("x{{/* a comment */}}y", "xy"),
        ("x {{- /* trimmed comment */ -}} y", "xy"),
        ("{{ and 1 2 }}|{{ and 0 2 }}|{{ or 0 \"\" }}|{{ or 0 \"a\" }}", "2|0||a"),
        ("{{ not 0 }} {{ not \"x\" }}", "true false"),
        ('{{ eq "a" "b" "a" }} {{ ne 1 2 }} {{ lt 1 2 }}', "true true true"),
        ("{{ if 0 }}a{{ else if \"\" }}b{{ else }}c{{ end }}", "c"),
        ("{{ if 0 }}a{{ else if 1 }}b{{ else }}c{{ end }}", "b"),
        ("{{ range .L }}[{{ . }}]{{ else }}none{{ end }}", "[1][2]"),
        ("{{ range .E }}[{{ . }}]{{ else }}none{{ end }}", "none"),
        ("{{ range $i, $v := .L }}{{ $i }}={{ $v }};{{ end }}", "0=1;1=2;"),
        ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", "2"),
        ("{{ len .L }} {{ index .L 1 }} {{ len (slice .L 1) }}", "2 2 1"),
        ('{{ "a\\n\\"b\\"" }}', 'a\n"b"'),
        ("{{ .L | len }}", "2"),
        ("{{ with .S }}[{{ . }}]{{ end }}{{ with .E }}x{{ else }}empty{{ end }}", "[s]empty"),
    ],
)
def test_go_semantics(template: str, expected: str) -> None:
    assert render(template, {"L": [1, 2], "E": [], "S": "s"}) == expected


def test_ollamas_chatml_template_shape() -> None:
    template = "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
    assert render(template, MESSAGES) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
    )


def test_last_message_idiom_and_chained_fields() -> None:
    template = (
        "{{- range $i, $_ := .Messages }}{{- $last := eq (len (slice $.Messages $i)) 1 }}"
        "{{ .Role }}{{ if $last }}!{{ end }} {{ end }}|{{ (index .Messages 0).Content }}"
    )
    assert render(template, MESSAGES) == "user assistant user! |Hi"


@pytest.mark.parametrize(
    "template",
    [
        "{{ printf \"%d\" 1 }}",  # not implemented: refused, not guessed
        "{{ template \"x\" }}",
        "{{ if true }}no end",
        "{{ end }}",
        "{{ $y }}",
        "{{ if true }}{{ $z := 1 }}{{ end }}{{ $z }}",  # a variable ends with its block
        "{{ .Missing }}",
        '{{ eq "a" 1 }}',  # Go: incompatible types for comparison
        "{{ index .L 5 }}",
    ],
)
def test_what_it_cannot_render_is_refused(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, {"L": [1, 2]})


def test_go_string_round_trips_through_the_renderer() -> None:
    text = 'tabs\tquotes " backslash \\ newline\n unicode «é» {{ braces }}'
    assert render("{{ " + go_string(text) + " }}", {}) == text
