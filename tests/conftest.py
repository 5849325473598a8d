"""Shared fixtures. Every test runs offline, in a fresh workspace under tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before anything imports Hugging Face libraries: no hub, no telemetry.
for _k, _v in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ[_k] = _v
os.environ.pop("NOCODETUNE_WORKSPACE", None)
os.environ.pop("NOCODETUNE_ALLOW_HUB_DOWNLOADS", None)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One converted-model cache per test session (GGUF conversion happens once)."""
    path = tmp_path_factory.mktemp("nocodetune-cache")
    os.environ["NOCODETUNE_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
    monkeypatch.setenv("NOCODETUNE_CACHE_DIR", str(cache_dir))
    monkeypatch.delenv("NOCODETUNE_WORKSPACE", raising=False)
    monkeypatch.delenv("NOCODETUNE_DATABASE_URL", raising=False)
    monkeypatch.delenv("NOCODETUNE_API_TOKEN", raising=False)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with a tiny BPE tokenizer and a ChatML template, saved as an HF folder."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def workspace_dir(tmp_path: Path) -> Path:
    """A path for a new workspace (not yet initialised)."""
    return tmp_path / "ModelTrainingWorkspace"
