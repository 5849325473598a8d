"""`/v1/fine_tuning/jobs` with the real SDK, on the test trainer (the API is what is tested here)."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from nocodetune import db
from nocodetune.api.openai import OpenAIOptions
from nocodetune.config.inherit import resolve_config
from nocodetune.records.job import read_resolved
from nocodetune.workspace import Workspace
from tests.jobs.conftest import wait_for
from tests.openai.conftest import (
    chat_lines,
    check,
    dpo_lines,
    in_process_preflight,
    openai_api,
    sdk,
    trainer_command,
    wait_status,
    write_jsonl,
)


def upload(client: openai.OpenAI, path: Path) -> str:
    with open(path, "rb") as fh:
        return client.files.create(file=fh, purpose="fine-tune").id


def test_a_supervised_job_runs_and_reads_like_an_openai_job(oa_ws: Workspace, tmp_path: Path, tiny_model_dir: Path) -> None:
    base_lr = resolve_config(oa_ws, base="lora_train").config.training.learning_rate
    with openai_api(oa_ws) as (url, _, _):
        client = sdk(url)
        file_id = upload(client, write_jsonl(tmp_path / "sums.jsonl", chat_lines()))
        job = check(client.fine_tuning.jobs.create(
            model=str(tiny_model_dir), training_file=file_id, suffix="sums", seed=7, metadata={"team": "blue"},
            hyperparameters={"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5},
        ))  # fmt: skip
        assert job.id.startswith("ftjob-") and job.status == "validating_files" and job.fine_tuned_model is None
        assert (job.model, job.training_file, job.seed, job.metadata) == (str(tiny_model_dir), file_id, 7, {"team": "blue"})
        assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size, job.hyperparameters.learning_rate_multiplier) == (2, 4, 0.5)
        assert job.method.type == "supervised" and job.method.supervised.hyperparameters.n_epochs == 2

        # an ordinary NoCodeTune job, named by its id, with what the request asked
        resolved = read_resolved(oa_ws.job(job.id))
        config = resolved.config
        assert resolved.lineage.base == "lora_train" and resolved.lineage.parent is None and config.objective == "sft"
        assert [f"{d.name}@{d.version}" for d in resolved.datasets] == ["sums@1"] and config.model.source == str(tiny_model_dir)
        assert (config.training.num_train_epochs, config.training.per_device_train_batch_size, config.training.gradient_accumulation_steps) == (2, 4, 1)
        assert config.training.learning_rate == pytest.approx(base_lr * 0.5) and config.training.seed == 7
        assert httpx.get(f"{url}/api/jobs/{job.id}").json()["base"] == "lora_train"

        done = check(wait_status(client, job.id, {"succeeded", "failed"}))
        assert done.status == "succeeded", done.error
        assert done.fine_tuned_model == f"ft:{tiny_model_dir.name}:sums:{job.id.removeprefix('ftjob-')}"
        assert done.trained_tokens == 37 * 4 and done.finished_at >= done.created_at  # the trainer's finished metrics (tokens_seen)
        assert httpx.get(f"{url}/api/jobs/{job.id}").json()["status"] == "succeeded"

        events = [check(e) for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
        assert [e.created_at for e in events] == sorted((e.created_at for e in events), reverse=True)  # newest first
        assert events[-1].message == f"Created fine-tuning job: {job.id}" and events[0].message == "The job has successfully completed"
        messages = [e.message for e in events]
        assert "Files validated, moving job to queued state" in messages and "Fine-tuning job started" in messages
        metrics = [e.data for e in events if e.type == "metrics"]
        assert [m["step"] for m in metrics] == [4, 3, 2, 1]
        assert metrics[-1]["train_loss"] == pytest.approx(2.0) and metrics[0]["valid_loss"] == pytest.approx(1.25)
        assert "valid_loss" not in metrics[1]  # only steps that were evaluated carry one
        paged = list(client.fine_tuning.jobs.list_events(job.id, limit=3))  # the SDK follows `after` page by page
        assert [e.id for e in paged] == [e.id for e in events]

        checkpoints = [check(c) for c in client.fine_tuning.jobs.checkpoints.list(job.id).data]
        assert [c.step_number for c in checkpoints] == [4]
        assert checkpoints[0].fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-4"
        assert checkpoints[0].fine_tuning_job_id == job.id
        assert (checkpoints[0].metrics.train_loss, checkpoints[0].metrics.valid_loss) == (pytest.approx(0.5), pytest.approx(1.25))

        models = [check(m).id for m in client.models.list()]
        assert done.fine_tuned_model in models and check(client.models.retrieve(done.fine_tuned_model)).owned_by == "user"


def test_jobs_list_newest_first_page_by_page_and_filter_by_metadata(oa_ws: Workspace, tmp_path: Path, tiny_model_dir: Path) -> None:
    with openai_api(oa_ws) as (url, _, _):
        client = sdk(url)
        file_id = upload(client, write_jsonl(tmp_path / "sums.jsonl", chat_lines()))
        ids = [
            client.fine_tuning.jobs.create(model=str(tiny_model_dir), training_file=file_id, metadata={"team": "red" if i == 1 else "blue"}).id
            for i in range(3)
        ]
        first = client.fine_tuning.jobs.list(limit=2)
        assert [j.id for j in first.data] == ids[::-1][:2] and first.has_more is True
        assert [check(j).id for j in client.fine_tuning.jobs.list(limit=2)] == ids[::-1]  # all pages
        assert [j.id for j in client.fine_tuning.jobs.list(metadata={"team": "red"})] == [ids[1]]
        with pytest.raises(openai.BadRequestError) as err:
            client.fine_tuning.jobs.list(after="ftjob-000000000000000000000000")
        assert err.value.body["param"] == "after"  # type: ignore[index]
        for job_id in ids:
            wait_status(client, job_id, {"succeeded"})


def test_a_dpo_job_is_a_dpo_job(oa_ws: Workspace, tmp_path: Path, tiny_model_dir: Path) -> None:
    with openai_api(oa_ws) as (url, _, _):
        client = sdk(url)
        prefs = upload(client, write_jsonl(tmp_path / "prefs.jsonl", dpo_lines()))
        chat = upload(client, write_jsonl(tmp_path / "chat.jsonl", chat_lines()))
        job = check(client.fine_tuning.jobs.create(
            model=str(tiny_model_dir), training_file=prefs, method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.25, "n_epochs": 1}}},
        ))  # fmt: skip
        assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.25 and job.method.dpo.hyperparameters.n_epochs == 1
        config = read_resolved(oa_ws.job(job.id)).config
        assert config.objective == "dpo" and config.preference.beta == 0.25 and config.training.num_train_epochs == 1
        assert wait_status(client, job.id, {"succeeded", "failed"}).status == "succeeded"
        with pytest.raises(openai.BadRequestError) as err:  # chat lines cannot train a preference objective, nor pairs a supervised one
            client.fine_tuning.jobs.create(model=str(tiny_model_dir), training_file=chat, method={"type": "dpo"})
        assert err.value.body["param"] == "training_file"  # type: ignore[index]
        with pytest.raises(openai.BadRequestError) as err:
            client.fine_tuning.jobs.create(model=str(tiny_model_dir), training_file=prefs)
        assert err.value.body["param"] == "training_file"  # type: ignore[index]


def _bad_creates(model: str, file_id: str) -> list[tuple[dict[str, Any], str]]:
    ok = {"model": model, "training_file": file_id}
    return [
        ({**ok, "hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs"),
        ({**ok, "hyperparameters": {"n_epochs": 2.5}}, "hyperparameters.n_epochs"),
        ({**ok, "hyperparameters": {"batch_size": 1000}}, "hyperparameters.batch_size"),
        ({**ok, "hyperparameters": {"learning_rate_multiplier": -1}}, "hyperparameters.learning_rate_multiplier"),
        ({**ok, "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": "many"}}}}, "method.supervised.hyperparameters.n_epochs"),
        ({**ok, "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 5}}}}, "method.dpo.hyperparameters.beta"),
        ({**ok, "method": {"type": "reinforcement"}}, "method.type"),
        ({**ok, "seed": -1}, "seed"),
        ({**ok, "suffix": "a:b"}, "suffix"),
        ({**ok, "validation_file": file_id}, "validation_file"),
        ({**ok, "unknown_field": 1}, "unknown_field"),
        ({**ok, "model": "no-such-model"}, "model"),
        ({**ok, "training_file": "file-000000000000000000000000"}, "training_file"),
    ]


def test_bad_requests_get_openai_400s_that_the_sdk_does_not_retry(oa_ws: Workspace, tmp_path: Path, tiny_model_dir: Path) -> None:
    with openai_api(oa_ws) as (url, _, counts):
        client = sdk(url)  # default retries
        file_id = upload(client, write_jsonl(tmp_path / "sums.jsonl", chat_lines()))
        jobs_before = sorted(p.name for p in oa_ws.jobs.iterdir())
        for body, param in _bad_creates(str(tiny_model_dir), file_id):
            seen = counts[("POST", "/v1/fine_tuning/jobs")]
            with pytest.raises(openai.BadRequestError) as err:
                client.post("/fine_tuning/jobs", body=body, cast_to=object)
            assert counts[("POST", "/v1/fine_tuning/jobs")] == seen + 1, f"retried: {body}"
            assert err.value.response.headers["x-should-retry"] == "false"
            assert err.value.body["param"] == param, (body, err.value.body)  # type: ignore[index]
            assert err.value.body["type"] == "invalid_request_error" and err.value.body["message"], body  # type: ignore[index]
        assert sorted(p.name for p in oa_ws.jobs.iterdir()) == jobs_before  # nothing was created

        with pytest.raises(openai.NotFoundError):
            client.fine_tuning.jobs.retrieve("ftjob-000000000000000000000000")
        with pytest.raises(openai.NotFoundError):
            client.fine_tuning.jobs.retrieve("demo")  # an ordinary NoCodeTune job has no OpenAI id


def test_cancel_pause_and_resume(oa_ws: Workspace, tmp_path: Path, tiny_model_dir: Path) -> None:
    with openai_api(oa_ws, command=trainer_command("--steps", "400", "--sleep", "0.05")) as (url, _, counts):
        client = sdk(url)
        file_id = upload(client, write_jsonl(tmp_path / "sums.jsonl", chat_lines()))
        job = client.fine_tuning.jobs.create(model=str(tiny_model_dir), training_file=file_id)
        wait_status(client, job.id, {"running"})
        wait_for(lambda: any(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(job.id).data))

        assert client.fine_tuning.jobs.pause(job.id).status in ("running", "paused")
        paused = check(wait_status(client, job.id, {"paused"}))
        assert paused.status == "paused" and httpx.get(f"{url}/api/jobs/{job.id}").json()["status"] == "paused"
        paused_at = [e.message for e in client.fine_tuning.jobs.list_events(job.id).data if "paused at step" in e.message]
        assert len(paused_at) == 1
        step = int(paused_at[0].rsplit(" ", 1)[1])

        assert client.fine_tuning.jobs.resume(job.id).status in ("queued", "running")
        wait_for(lambda: any(e.message.startswith("Fine-tuning job resumed") for e in client.fine_tuning.jobs.list_events(job.id).data))
        resumed_steps = [e.data["step"] for e in client.fine_tuning.jobs.list_events(job.id, limit=1000).data if e.type == "metrics"]
        wait_for(lambda: max(e.data["step"] for e in client.fine_tuning.jobs.list_events(job.id).data if e.type == "metrics") > step)
        assert min(resumed_steps) == 1  # the first run's metrics stay listed

        client.fine_tuning.jobs.cancel(job.id)
        cancelled = check(wait_status(client, job.id, {"cancelled"}))
        assert cancelled.finished_at is not None and cancelled.fine_tuned_model is None
        seen = counts[("POST", f"/v1/fine_tuning/jobs/{job.id}/cancel")]
        with pytest.raises(openai.BadRequestError) as err:
            client.fine_tuning.jobs.cancel(job.id)
        assert counts[("POST", f"/v1/fine_tuning/jobs/{job.id}/cancel")] == seen + 1
        assert err.value.body["code"] == "invalid_job_state"  # type: ignore[index]
        with pytest.raises(openai.BadRequestError):
            client.fine_tuning.jobs.resume(job.id)


def test_a_job_cancelled_while_its_files_are_validated_never_runs(oa_ws: Workspace, tmp_path: Path, tiny_model_dir: Path) -> None:
    release, entered = threading.Event(), threading.Event()

    def slow_validate(*args: Any) -> Any:
        entered.set()
        release.wait(30)
        return in_process_preflight(*args)

    with openai_api(oa_ws, options=OpenAIOptions(validate=slow_validate)) as (url, _, _):
        client = sdk(url)
        file_id = upload(client, write_jsonl(tmp_path / "sums.jsonl", chat_lines()))
        job = client.fine_tuning.jobs.create(model=str(tiny_model_dir), training_file=file_id)
        assert entered.wait(30)
        assert client.fine_tuning.jobs.retrieve(job.id).status == "validating_files"
        with pytest.raises(openai.BadRequestError):
            client.fine_tuning.jobs.pause(job.id)  # only queued or running jobs pause
        assert check(client.fine_tuning.jobs.cancel(job.id)).status == "cancelled"
        release.set()
        wait_for(lambda: "Files validated, moving job to queued state" in [e.message for e in client.fine_tuning.jobs.list_events(job.id).data])
        assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
        detail = httpx.get(f"{url}/api/jobs/{job.id}").json()
        assert detail["status"] == "cancelled" and detail["runs"] == []


def test_a_job_whose_validation_fails_fails_with_an_openai_error(oa_ws: Workspace, tmp_path: Path, tiny_model_dir: Path) -> None:
    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    shutil.copy(tiny_model_dir / "config.json", no_tokenizer / "config.json")
    with openai_api(oa_ws) as (url, _, _):
        client = sdk(url)
        file_id = upload(client, write_jsonl(tmp_path / "sums.jsonl", chat_lines()))
        job = client.fine_tuning.jobs.create(model=str(no_tokenizer), training_file=file_id)
        assert job.status == "validating_files"
        failed = check(wait_status(client, job.id, {"failed", "queued", "running", "succeeded"}))
        assert failed.status == "failed" and failed.error.param == "model" and failed.error.code == "invalid_job_config"
        assert "tokenizer" in failed.error.message
        errors = [e for e in client.fine_tuning.jobs.list_events(job.id).data if e.level == "error"]
        assert len(errors) == 1 and "tokenizer" in errors[0].message
        detail = httpx.get(f"{url}/api/jobs/{job.id}").json()
        assert detail["status"] == "failed" and detail["runs"] == []


def test_ids_and_outcomes_survive_a_lost_registry(oa_ws: Workspace, tmp_path: Path, tiny_model_dir: Path) -> None:
    with openai_api(oa_ws) as (url, _, _):
        client = sdk(url)
        file_id = upload(client, write_jsonl(tmp_path / "sums.jsonl", chat_lines()))
        job_id = client.fine_tuning.jobs.create(model=str(tiny_model_dir), training_file=file_id, suffix="keep").id
        before = check(wait_status(client, job_id, {"succeeded"})).to_dict()
    db.dispose_all()
    oa_ws.db_path.unlink()  # the registry is an index: rebuilt from the records
    with openai_api(oa_ws) as (url, _, _):
        client = sdk(url)
        after = client.fine_tuning.jobs.retrieve(job_id).to_dict()
        assert after == before
        assert client.files.retrieve(file_id).id == file_id and [j.id for j in client.fine_tuning.jobs.list()] == [job_id]


def test_the_token_covers_v1(oa_ws: Workspace) -> None:
    with openai_api(oa_ws, api_token="s3cret") as (url, _, _):
        with pytest.raises(openai.AuthenticationError) as err:
            sdk(url, api_key="wrong").files.list()
        assert err.value.body["code"] == "invalid_api_key"  # type: ignore[index]
        assert sdk(url, api_key="s3cret").files.list().data == []
        assert json.loads(httpx.get(f"{url}/v1/models").text)["error"]["code"] == "invalid_api_key"
