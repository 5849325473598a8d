"""`ollama`: the job's GGUF plus a Modelfile, ready for `ollama create NAME -f Modelfile`.

The Modelfile has FROM (the GGUF beside it), TEMPLATE (the chat template translated to
Go's text/template by `export.chat_template`, checked against the Jinja original before
anything is written), one `PARAMETER stop` per token that ends a turn, and SYSTEM when the
job trained with a system prompt (Ollama sends it as the first system message of a chat
that has none, as training did).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nocodetune.errors import ConfigError
from nocodetune.export.chat_template import (
    ChatShape,
    TranslationError,
    tokenizer_renderer,
    translate,
)
from nocodetune.export.common import ExportResult, Progress, model_card, no_progress
from nocodetune.export.gguf import write_job_gguf
from nocodetune.records.job import read_resolved
from nocodetune.workspace import JobPaths

MODELFILE = "Modelfile"


def ollama_name(job: str) -> str:
    """A model name Ollama accepts: lower case letters, digits, '.', '_' and '-'."""
    return re.sub(r"[^a-z0-9._-]", "-", job.lower()).strip("-._") or "model"


def stop_strings(tokenizer: Any, shape: ChatShape | None) -> list[str]:
    """Texts at which generation stops: the EOS token, and special tokens that end a turn or open the next one."""
    special = {str(t) for t in tokenizer.all_special_tokens} | {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    stops: list[str] = []
    if tokenizer.eos_token:
        stops.append(str(tokenizer.eos_token))
    if shape is not None:
        for piece in (shape.assistant_suffix, shape.user_prefix):
            for token in sorted((t for t in special if t and t in piece), key=piece.find):
                if token not in stops:
                    stops.append(token)
    return stops


def _quoted(text: str, what: str) -> str:
    if '"""' in text:
        raise ConfigError(f"the {what} contains three double quotes in a row, which a Modelfile cannot hold", field="format")
    return f'"""{text}"""'


def modelfile(gguf_file: str, tokenizer: Any, system_prompt: str | None) -> tuple[str, list[str], str]:
    """(Modelfile text, warnings, TEMPLATE) for a GGUF and its tokenizer."""
    warnings: list[str] = []
    shape: ChatShape | None = None
    if tokenizer.chat_template:
        try:
            template, shape = translate(tokenizer_renderer(tokenizer))
        except TranslationError as exc:
            raise ConfigError(f"cannot write an Ollama TEMPLATE: {exc}", field="format", hint="export --format gguf and give Ollama a TEMPLATE by hand") from None
        if not shape.supports_system:
            if system_prompt:
                raise ConfigError(
                    "cannot write an Ollama TEMPLATE: the job trained with a system prompt, but its chat template does not write a system message on its own",
                    field="format", hint="export --format gguf and give Ollama a TEMPLATE by hand",
                )
            warnings.append("the chat template has no system messages of its own, so the TEMPLATE drops them")
        elif shape.system_prefix is None:
            warnings.append("the chat template refuses a system message after the first; the TEMPLATE writes one without its prefix")
        if shape.trims_content:
            warnings.append("the chat template trims white space around message contents and the TEMPLATE cannot: they differ for a message that starts or ends with white space")
    else:
        template = "{{ .Prompt }}"
        warnings.append("the model has no chat template: the TEMPLATE passes the prompt through unchanged")
    lines = [
        f"# Written by NoCodeTune. Import: ollama create NAME -f {MODELFILE}",
        f"FROM ./{gguf_file}",
        f"TEMPLATE {_quoted(template, 'TEMPLATE')}",
    ]
    if system_prompt:
        lines.append(f"SYSTEM {_quoted(system_prompt, 'system prompt')}")
    for stop in stop_strings(tokenizer, shape):
        if '"' in stop or "\n" in stop:
            warnings.append(f"stop token {stop!r} cannot be written as a Modelfile parameter; it is left out")
            continue
        lines.append(f'PARAMETER stop "{stop}"')
    return "\n".join(lines) + "\n", warnings, template


def export_ollama(paths: JobPaths, stage: Path, quant: str, progress: Progress = no_progress) -> ExportResult:
    resolved = read_resolved(paths)
    system_prompt = resolved.config.dataset.system_prompt
    written: dict[str, Any] = {}

    def before_convert(tokenizer: Any, gguf_file: str) -> None:
        # the TEMPLATE is translated and checked before minutes go into the GGUF
        written["modelfile"], written["warnings"], _ = modelfile(gguf_file, tokenizer, system_prompt)

    result, _ = write_job_gguf(paths, stage, quant, progress, before_convert=before_convert)
    name = ollama_name(paths.name)
    (stage / MODELFILE).write_text(written["modelfile"], encoding="utf-8")
    command = f"ollama create {name} -f {MODELFILE}"
    usage = f"From this folder:\n\n```\n{command}\nollama run {name}\n```\n"
    (stage / "README.md").write_text(model_card(paths, result.weights, kind=f"Ollama model ({quant})", usage=usage), encoding="utf-8")
    result.details.update({"modelfile": MODELFILE, "ollama_name": name, "command": command})
    result.warnings.extend(written["warnings"])
    return result
