"""Exports of a grandchild LoRA chain trained on the tiny model: each format answers like the job.

The chain (`first` → `second` → `third`, see conftest) is trained once for real. Every
test compares the exported model with the job's own model (`modeling.assemble`, what
training sampled with and what the model server serves), token for token, after
loading the export the way its users would (transformers, peft, a GGUF reader).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from nocodetune.errors import ConfigError, NocodetuneError
from nocodetune.jobs.exports import create_export, run_here
from nocodetune.records.exports import (
    ExportRecord,
    ExportRequest,
    export_dir,
    exports_dir,
)
from nocodetune.workspace import Workspace
from tests.export.conftest import PROMPTS, SYSTEM_PROMPT, after_samples, greedy


def export(ws: Workspace, job: str, **request: Any) -> ExportRecord:
    record = run_here(ws, job, create_export(ws, job, ExportRequest(**request)).id)
    assert record.status == "succeeded", record.error
    return record


def job_model(ws: Workspace, job: str) -> Any:
    from nocodetune.modeling.assemble import assemble

    return assemble(ws.job(job))


def test_merged_grandchild_answers_like_the_job(chain_ws: Workspace, tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nocodetune.training.evaluation import generate

    events_before = chain_ws.job("third").events.read_bytes()
    record = export(chain_ws, "third", format="merged")
    folder = Path(record.folder)
    assert folder == export_dir(chain_ws.job("third"), record.id) / "model"
    names = {f.path for f in record.files}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "generation_config.json", "nocodetune_weights.json", "README.md"} <= names
    assert all(len(f.sha256 or "") == 64 and f.size > 0 for f in record.files)

    weights = json.loads((folder / "nocodetune_weights.json").read_text())
    assert [(layer["job"], layer["kind"]) for layer in weights["layers"]] == [("first", "adapter"), ("second", "adapter"), ("third", "adapter")]
    assert len(weights["base"]["sha256"]) == 64 and weights["base"]["name"] == str(tiny_model_dir)
    card = (folder / "README.md").read_text()
    data_sha = json.loads(chain_ws.job("third").resolved_json.read_text())["datasets"][0]["sha256"]
    assert all(f"job `{j}`" in card for j in ("first", "second", "third")) and data_sha in card and "train_loss" in card

    model = AutoModelForCausalLM.from_pretrained(str(folder))
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    # the job's own after-training samples (batched as training batched them, with the system prompt it trained with)
    samples = after_samples(chain_ws, "third")
    prompts = [[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": s["prompt"]}] for s in samples]
    assert generate(model, tokenizer, prompts, max_new_tokens=12) == [s["output"] for s in samples]
    built = job_model(chain_ws, "third")
    exported = greedy(model, tokenizer, PROMPTS)
    assert exported == greedy(built.model, built.tokenizer, PROMPTS)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    assert exported != greedy(base, tokenizer, PROMPTS)  # the three trainings are in there

    # the export has its own record and events; the job's are untouched
    assert chain_ws.job("third").events.read_bytes() == events_before
    from nocodetune.jobs.service import JobService

    assert JobService(chain_ws).get("third").status == "succeeded"
    events = [json.loads(line)["type"] for line in (folder.parent / "events.jsonl").read_text().splitlines()]
    assert events[0] == "started" and events[-1] == "finished" and "progress" in events


def test_adapter_export_loads_with_peft_from_another_folder_and_cache(chain_ws: Workspace, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nocodetune.model_source import resolve_model, weights_sha256
    from nocodetune.modeling.assemble import assemble_folder
    from nocodetune.records.schema import ModelSection

    record = export(chain_ws, "first", format="adapter")
    elsewhere = tmp_path / "another" / "layout" / "dates-adapter"
    shutil.copytree(record.folder, elsewhere)
    monkeypatch.setenv("NOCODETUNE_CACHE_DIR", str(tmp_path / "moved-cache"))

    config_text = (elsewhere / "adapter_config.json").read_text()
    assert json.loads(config_text)["base_model_name_or_path"] == str(tiny_model_dir)  # a local base's identity is its path
    assert str(chain_ws.root) not in config_text  # nothing points back into the workspace
    weights = json.loads((elsewhere / "nocodetune_weights.json").read_text())
    assert weights["base"]["sha256"] == weights_sha256(resolve_model(ModelSection(source=str(tiny_model_dir))))
    assert [layer["job"] for layer in weights["layers"]] == ["first"]

    built = job_model(chain_ws, "first")
    expected = greedy(built.model, built.tokenizer, PROMPTS)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    model = PeftModel.from_pretrained(base, str(elsewhere))
    tokenizer = AutoTokenizer.from_pretrained(str(elsewhere))
    assert greedy(model, tokenizer, PROMPTS) == expected
    portable = assemble_folder(elsewhere)  # what `server start model --model PATH` loads
    assert greedy(portable.model, portable.tokenizer, PROMPTS) == expected


def test_adapter_export_of_a_chain_is_refused_with_the_reason_and_writes_nothing(chain_ws: Workspace) -> None:
    before = sorted(p.name for p in exports_dir(chain_ws.job("third")).glob("*")) if exports_dir(chain_ws.job("third")).is_dir() else []
    with pytest.raises(ConfigError) as err:
        create_export(chain_ws, "third", ExportRequest(format="adapter"))
    assert "3 adapters (first, second, third)" in err.value.message and "merged" in (err.value.hint or "")
    after = sorted(p.name for p in exports_dir(chain_ws.job("third")).glob("*")) if exports_dir(chain_ws.job("third")).is_dir() else []
    assert after == before


def _gguf_model(record: ExportRecord) -> tuple[Any, Any, Path]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(record.folder)
    file = record.details["gguf_file"]
    return AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=file), AutoTokenizer.from_pretrained(str(folder), gguf_file=file), folder / file


def test_gguf_f16_round_trips_through_transformers_token_for_token(chain_ws: Workspace) -> None:
    from gguf import GGUFReader

    record = export(chain_ws, "third", format="gguf", quant="f16")
    assert record.details["tensor_types"] == "F16: 15, F32: 5"  # 2 layers × 7 matrices + the tied embedding; the 5 norms stay F32
    model, tokenizer, file = _gguf_model(record)
    built = job_model(chain_ws, "third")
    for prompt in PROMPTS:  # the GGUF's vocabulary reproduces the job's tokenizer
        text = built.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        assert tokenizer(text)["input_ids"] == built.tokenizer(text)["input_ids"]
    assert tokenizer.chat_template == built.tokenizer.chat_template
    assert (tokenizer.eos_token, tokenizer.bos_token) == (built.tokenizer.eos_token, built.tokenizer.bos_token)
    assert greedy(model, tokenizer, PROMPTS) == greedy(built.model, built.tokenizer, PROMPTS)

    fields = GGUFReader(str(file)).fields
    assert fields["nocodetune.job"].contents() == "third"
    assert fields["tokenizer.ggml.eos_token_id"].contents() == built.tokenizer.eos_token_id
    assert [s.split(":")[0] for s in fields["nocodetune.layers"].contents()] == ["first", "second", "third"]


def test_gguf_q8_0_agrees_on_most_prompts(chain_ws: Workspace) -> None:
    record = export(chain_ws, "third", format="gguf")  # q8_0 is the default
    assert record.details["quant"] == "q8_0" and "Q8_0" in record.details["tensor_types"]
    model, tokenizer, _ = _gguf_model(record)
    built = job_model(chain_ws, "third")
    same = sum(a == b for a, b in zip(greedy(model, tokenizer, PROMPTS), greedy(built.model, built.tokenizer, PROMPTS)))
    print(f"q8_0 agreement on the tiny model: {same}/{len(PROMPTS)}")
    assert same >= len(PROMPTS) // 2


def test_llama_cpp_reads_the_gguf_as_the_job_computes(chain_ws: Workspace) -> None:
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python (optional extra nocodetune[llamacpp]) is not installed")
    import numpy as np
    import torch

    record = export(chain_ws, "third", format="gguf", quant="f32")
    built = job_model(chain_ws, "third")
    llm = llama_cpp.Llama(model_path=str(Path(record.folder) / record.details["gguf_file"]), n_ctx=256, logits_all=True, verbose=False)
    try:
        for prompt in PROMPTS[:4]:
            text = built.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
            ids = built.tokenizer(text)["input_ids"]
            assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids
            llm.reset()
            llm.eval(ids)
            theirs = np.array(llm.scores[len(ids) - 1])
            with torch.no_grad():
                ours = built.model(torch.tensor([ids])).logits[0, -1].numpy()
            assert np.abs(theirs - ours).max() < 1e-3  # Q/K permutation, norms, rope: llama.cpp computes the same model
    finally:
        llm.close()


def test_ollama_export_has_a_modelfile_whose_template_renders_the_chat_template(chain_ws: Workspace) -> None:
    from nocodetune.export.chat_template import ollama_values
    from nocodetune.export.gotemplate import render

    record = export(chain_ws, "first", format="ollama", quant="q8_0")
    folder = Path(record.folder)
    text = (folder / "Modelfile").read_text()
    assert f"FROM ./{record.details['gguf_file']}\n" in text and (folder / record.details["gguf_file"]).is_file()
    assert f'SYSTEM """{SYSTEM_PROMPT}"""' in text  # `first` trained with a system prompt
    assert 'PARAMETER stop "<|im_end|>"' in text and 'PARAMETER stop "<|im_start|>"' in text
    assert record.details["command"] == "ollama create first -f Modelfile"
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]

    tokenizer = job_model(chain_ws, "first").tokenizer
    # two turns; Ollama puts the Modelfile's SYSTEM first when a chat has no system message
    chat = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "Convert to ISO: March 5, 2021"},
        {"role": "assistant", "content": "2021-03-05"},
        {"role": "user", "content": "Convert to ISO: July 14, 1999"},
    ]
    expected = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert render(template, ollama_values(chat)) == expected


def test_hub_export_uploads_the_merged_folder_without_the_network(chain_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nocodetune.export import hub

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no token file of this machine's user
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="NOCODETUNE_ALLOW_HUB_UPLOADS"):
        create_export(chain_ws, "first", ExportRequest(format="hub", repo="someone/dates"))
    monkeypatch.setenv("NOCODETUNE_ALLOW_HUB_UPLOADS", "1")
    with pytest.raises(ConfigError, match="no Hugging Face token"):
        create_export(chain_ws, "first", ExportRequest(format="hub", repo="someone/dates"))
    with pytest.raises(ConfigError, match="repository id"):
        create_export(chain_ws, "first", ExportRequest(format="hub", repo="not a repo"))

    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    uploads: list[dict[str, Any]] = []

    def fake_upload(folder: Path, repo: str, *, token: str, private: bool) -> str:
        uploads.append({"repo": repo, "token": token, "private": private, "files": sorted(p.name for p in folder.iterdir()), "folder": folder})
        return f"https://huggingface.co/{repo}/commit/0123abc"

    monkeypatch.setattr(hub, "upload_folder", fake_upload)
    record = export(chain_ws, "first", format="hub", repo="someone/dates")
    assert len(uploads) == 1 and uploads[0]["repo"] == "someone/dates" and uploads[0]["token"] == "hf_not_a_real_token" and uploads[0]["private"]
    assert uploads[0]["folder"] == Path(record.folder)  # the complete folder, after its rename
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "nocodetune_weights.json"} <= set(uploads[0]["files"])
    assert record.details["url"] == "https://huggingface.co/someone/dates/commit/0123abc"


def test_a_failed_export_fails_only_itself(chain_ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from nocodetune.export import merged
    from nocodetune.jobs.service import JobService

    paths = chain_ws.job("second")
    events_before = paths.events.read_bytes()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("No space left on device")

    monkeypatch.setattr(merged, "export_merged", broken)
    record = run_here(chain_ws, "second", create_export(chain_ws, "second", ExportRequest(format="merged")).id)
    assert record.status == "failed" and "No space left on device" in (record.error or "")
    folder = export_dir(paths, record.id)
    assert not Path(record.folder).exists() and [p.name for p in folder.iterdir() if p.name.startswith(".model")] == []  # nothing half-written
    assert json.loads(folder.joinpath("events.jsonl").read_text().splitlines()[-1])["type"] == "failed"
    assert paths.events.read_bytes() == events_before
    assert JobService(chain_ws).get("second").status == "succeeded"


def test_export_to_a_chosen_folder_and_never_over_files(chain_ws: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "deliveries" / "first-merged"
    record = export(chain_ws, "first", format="merged", out=str(out))
    assert Path(record.folder) == out.resolve() and (out / "model.safetensors").is_file()
    with pytest.raises(NocodetuneError, match="already exists"):
        create_export(chain_ws, "first", ExportRequest(format="merged", out=str(out)))
    with pytest.raises(NocodetuneError, match="inside the job's outputs"):
        create_export(chain_ws, "first", ExportRequest(format="merged", out=str(chain_ws.job("first").outputs / "exported")))


def test_the_model_server_loads_every_export_as_the_job(chain_ws: Workspace) -> None:
    """`server start model --model PATH` goes through `serving.loader.load_model`: a folder, an adapter, a .gguf file."""
    from nocodetune.records.schema import ModelSection
    from nocodetune.serving.loader import load_model

    built = job_model(chain_ws, "first")
    expected = greedy(built.model, built.tokenizer, PROMPTS[:6])
    merged = export(chain_ws, "first", format="merged")
    adapter = export(chain_ws, "first", format="adapter")
    gguf = export(chain_ws, "first", format="gguf", quant="f32")
    for source in (merged.folder, adapter.folder, str(Path(gguf.folder) / gguf.details["gguf_file"])):
        loaded = load_model(ModelSection(source=source), device="cpu")
        assert greedy(loaded.model, loaded.tokenizer, PROMPTS[:6]) == expected, source
