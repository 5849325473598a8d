"""Refusals come before any work: each names its cause, and nothing is loaded or written."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest

from nocodetune.errors import ConfigError, ConflictError
from nocodetune.export.preflight import check_request, quant_refusal, tokenizer_refusal
from nocodetune.records.exports import ExportRequest, exports_dir
from nocodetune.workspace import JobPaths, Workspace
from tests.training.conftest import make_job, prompt_completion_rows


def _full_fine_tune_of(tmp_path: Path, model_type: str) -> JobPaths:
    """A job whose trained output is a config.json and nothing else: loading it would fail."""
    base = tmp_path / f"{model_type}-base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"model_type": model_type}))
    job = make_job(tmp_path / "jobs", f"{model_type}_job", prompt_completion_rows(4), base, config={"method": "full"})
    (job / "outputs" / "model").mkdir(parents=True)
    (job / "outputs" / "model" / "config.json").write_text(json.dumps({"model_type": model_type}))
    return JobPaths(job)


@pytest.mark.parametrize("fmt", ["gguf", "ollama"])
def test_an_unsupported_architecture_is_refused_by_name_before_loading_anything(tmp_path: Path, fmt: str) -> None:
    paths = _full_fine_tune_of(tmp_path, "gpt2")
    with pytest.raises(ConfigError) as err:
        check_request(paths, ExportRequest(format=fmt))  # type: ignore[arg-type]
    assert "'gpt2' architecture" in err.value.message and "llama" in err.value.message
    assert check_request(paths, ExportRequest(format="merged")).format == "merged"  # merged needs no mapping


def test_q4_k_is_refused_because_the_gguf_library_has_no_quantiser(tmp_path: Path) -> None:
    paths = _full_fine_tune_of(tmp_path, "llama")
    reason = quant_refusal("q4_k")
    assert reason is not None and "Q4_K" in reason and version("gguf") in reason
    with pytest.raises(ConfigError, match="cannot write --quant q4_k"):
        check_request(paths, ExportRequest(format="gguf", quant="q4_k"))
    assert all(quant_refusal(q) is None for q in ("f32", "f16", "bf16", "q8_0", "q4_0"))


def test_a_job_without_a_trained_model_has_nothing_to_export(tmp_path: Path, tiny_model_dir: Path) -> None:
    from nocodetune.errors import NotFoundError

    paths = JobPaths(make_job(tmp_path / "jobs", "untrained", prompt_completion_rows(4), tiny_model_dir))
    with pytest.raises(NotFoundError, match="no trained model yet"):
        check_request(paths, ExportRequest(format="merged"))


def test_adapter_of_a_full_fine_tune_is_refused(tmp_path: Path) -> None:
    paths = _full_fine_tune_of(tmp_path, "llama")
    with pytest.raises(ConfigError, match="full fine-tune"):
        check_request(paths, ExportRequest(format="adapter"))


def test_sentencepiece_tokenizers_are_named_as_unsupported() -> None:
    assert tokenizer_refusal({"model": {"type": "Unigram"}}) is not None
    assert "SentencePiece" in (tokenizer_refusal({"model": {"type": "BPE"}, "pre_tokenizer": {"type": "Metaspace"}}) or "")
    assert tokenizer_refusal({"model": {"type": "BPE"}, "pre_tokenizer": {"type": "ByteLevel"}}) is None


def test_unknown_format_and_quant_are_refused_by_the_request_model() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        ExportRequest(format="onnx")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ExportRequest(format="gguf", quant="q3_k")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="quant applies to the gguf and ollama formats"):
        ExportRequest(format="merged", quant="q8_0")
    with pytest.raises(ValidationError, match="repo applies to the hub format"):
        ExportRequest(format="gguf", repo="me/model")


def test_only_a_succeeded_job_is_exported_and_a_refusal_writes_nothing(chain_ws: Workspace, tiny_model_dir: Path) -> None:
    from nocodetune.jobs.create import create_job
    from nocodetune.jobs.exports import create_export
    from nocodetune.jobs.spec import JobSpec

    create_job(chain_ws, JobSpec(name="never_run", dataset="dates", set={"model.source": str(tiny_model_dir)}))
    with pytest.raises(ConflictError, match="is created; only a succeeded job"):
        create_export(chain_ws, "never_run", ExportRequest(format="merged"))
    assert not exports_dir(chain_ws.job("never_run")).exists()
