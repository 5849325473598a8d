"""The whole OpenAI flow with the real SDK: upload → create → poll → events → checkpoints → chat.

The fast variant trains with the test trainer, which leaves a real LoRA adapter on the tiny
model, and runs everything else for real: the pre-flight in its child process, the model
server started by the API through the server manager, the relay (streaming included) and
the idle stop. The slow variant trains the embedded default model with the real trainer.
"""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from nocodetune.api.openai import OpenAIOptions
from nocodetune.servers import manager
from nocodetune.workspace import Workspace
from tests.jobs.conftest import wait_for
from tests.openai.conftest import (
    REAL_TRAINER,
    chat_lines,
    check,
    openai_api,
    sdk,
    trainer_command,
    wait_status,
    write_jsonl,
)


def _model_servers(ws: Workspace, job_id: str) -> list[str]:
    return [s.id for s in manager.list_servers(ws, check_health=False) if s.kind == "model" and s.job == job_id]


def test_fast_end_to_end_on_the_tiny_model(oa_ws: Workspace, tmp_path: Path, tiny_model_dir: Path, tiny_adapter: Path) -> None:
    from tests.serving.conftest import chat_ids, greedy_reference

    path = write_jsonl(tmp_path / "sums.jsonl", chat_lines())
    options = OpenAIOptions(model_idle_s=3)  # the real pre-flight, in its child process
    with openai_api(oa_ws, command=trainer_command("--adapter", str(tiny_adapter)), options=options) as (url, _, _):
        client = sdk(url)
        file = client.files.create(file=path.open("rb"), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model=str(tiny_model_dir), training_file=file.id, hyperparameters={"n_epochs": 1}, suffix="e2e")
        done = check(wait_status(client, job.id, {"succeeded", "failed", "cancelled"}, timeout=300))
        assert done.status == "succeeded", done.error
        assert any(e.type == "metrics" and e.data.get("train_loss") for e in client.fine_tuning.jobs.list_events(job.id, limit=50).data)
        assert [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id).data] == [4]

        ask = {"model": done.fine_tuned_model, "messages": [{"role": "user", "content": "What is 2 plus 2?"}], "max_tokens": 8, "temperature": 0}
        reply = client.chat.completions.create(**ask)  # starts the job's model server
        assert _model_servers(oa_ws, job.id), "the model server should show in `server list`"
        assert reply.model == done.fine_tuned_model and reply.choices[0].message.role == "assistant"

        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
        tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(tiny_adapter)).eval()
        assert reply.choices[0].message.content == greedy_reference(tuned, tokenizer, chat_ids(tokenizer, "What is 2 plus 2?"), 8)

        chunks = list(client.chat.completions.create(**ask, stream=True))
        assert {c.model for c in chunks} == {done.fine_tuned_model}
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == reply.choices[0].message.content
        assert done.fine_tuned_model in [m.id for m in client.models.list()]

        with pytest.raises(openai.NotFoundError) as err:
            client.chat.completions.create(**{**ask, "model": "ft:nothing::000000000000000000000000"})
        assert err.value.body["code"] == "model_not_found"  # type: ignore[index]

        wait_for(lambda: not _model_servers(oa_ws, job.id), timeout=120)  # stopped once idle (test_pool: and started again when asked)


@pytest.mark.slow  # the real trainer on the embedded default model: minutes on 2 CPU cores
def test_end_to_end_on_the_default_model(oa_ws: Workspace, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "sums.jsonl", chat_lines(12))
    with openai_api(oa_ws, command=REAL_TRAINER, options=OpenAIOptions(model_idle_s=60)) as (url, _, counts):
        client = sdk(url)
        file = client.files.create(file=path.open("rb"), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model="SmolLM2-135M-Instruct", training_file=file.id, hyperparameters={"n_epochs": 1})
        done = check(wait_status(client, job.id, {"succeeded", "failed", "cancelled"}, timeout=1800))
        assert done.status == "succeeded", done.error
        assert done.fine_tuned_model.startswith("ft:SmolLM2-135M-Instruct::") and done.trained_tokens and done.trained_tokens > 0
        metrics = [e.data for e in client.fine_tuning.jobs.list_events(job.id, limit=200).data if e.type == "metrics"]
        assert metrics and all(m["train_loss"] > 0 for m in metrics if "train_loss" in m)
        assert any("valid_loss" in m for m in metrics)
        checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
        assert checkpoints and checkpoints[0].metrics.train_loss is not None
        reply = client.chat.completions.create(model=done.fine_tuned_model, messages=[{"role": "user", "content": "What is 3 plus 3?"}], max_tokens=8)
        assert reply.choices[0].message.content and reply.model == done.fine_tuned_model

        # a second job: pause, resume, cancel on the real trainer
        second = client.fine_tuning.jobs.create(model="SmolLM2-135M-Instruct", training_file=file.id, hyperparameters={"n_epochs": 20, "batch_size": 1})
        wait_for(lambda: any(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(second.id).data), timeout=900)
        client.fine_tuning.jobs.pause(second.id)
        assert wait_status(client, second.id, {"paused", "failed"}, timeout=600).status == "paused"
        client.fine_tuning.jobs.resume(second.id)
        wait_for(lambda: any(e.message.startswith("Fine-tuning job resumed") for e in client.fine_tuning.jobs.list_events(second.id).data), timeout=600)
        client.fine_tuning.jobs.cancel(second.id)
        assert wait_status(client, second.id, {"cancelled", "failed"}, timeout=600).status == "cancelled"

        for bad in ({"hyperparameters": {"n_epochs": 0}}, {"validation_file": file.id}):
            seen = counts[("POST", "/v1/fine_tuning/jobs")]
            with pytest.raises(openai.BadRequestError):
                client.fine_tuning.jobs.create(model="SmolLM2-135M-Instruct", training_file=file.id, **bad)  # type: ignore[arg-type]
            assert counts[("POST", "/v1/fine_tuning/jobs")] == seen + 1
