"""Rows → examples → tokens and trained-token masks, checked on real label ids.

Everything here is the one path validate and training share (data.examples, data.tokens).
"""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from nocodetune.data.examples import build_examples, detect_format, split_examples
from nocodetune.data.tokens import IGNORE, assistant_spans, tokenize_example, training_steps
from nocodetune.errors import DataError
from nocodetune.records.schema import DatasetSection


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def _one(row, section=None):
    found = build_examples([row], section or DatasetSection())
    assert not found.refused, found.refused
    return found.format, found.examples[0]


def _trained_pieces(tokenizer, out) -> list[str]:
    """Each contiguous run of trained tokens, decoded."""
    pieces, current = [], []
    for token, label in zip(out.input_ids, out.labels):
        if label != IGNORE:
            assert label == token  # a trained label is the token itself
            current.append(token)
        elif current:
            pieces.append(tokenizer.decode(current))
            current = []
    if current:
        pieces.append(tokenizer.decode(current))
    return pieces


@pytest.mark.parametrize(
    ("columns", "mapping", "fmt", "expected"),
    [
        (["prompt", "completion"], {}, "auto", ("prompt_completion", {"prompt": "prompt", "completion": "completion"})),
        (["Question", "Answer"], {}, "auto", ("prompt_completion", {"prompt": "Question", "completion": "Answer"})),
        (["instruction", "input", "output"], {}, "auto", ("alpaca", {"instruction": "instruction", "input": "input", "output": "output"})),
        (["input", "output"], {}, "auto", ("prompt_completion", {"prompt": "input", "completion": "output"})),
        (["messages", "id"], {}, "auto", ("messages", {"messages": "messages"})),
        (["conversations"], {}, "auto", ("messages", {"messages": "conversations"})),
        (["id", "text"], {}, "auto", ("text", {"text": "text"})),
        (["q", "a"], {"prompt": "q", "completion": "a"}, "auto", ("prompt_completion", {"prompt": "q", "completion": "a"})),
        (["body", "prompt", "completion"], {"text": "body"}, "auto", ("text", {"text": "body"})),
        (["text", "prompt", "completion"], {}, "text", ("text", {"text": "text"})),
        (["prompt", "chosen", "rejected"], {}, "auto", ("preference", {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"})),
        (
            ["input", "preferred_output", "non_preferred_output"],
            {},
            "auto",
            ("preference", {"prompt": "input", "chosen": "preferred_output", "rejected": "non_preferred_output"}),
        ),
    ],
)
def test_detect_format(columns, mapping, fmt, expected):
    assert detect_format(columns, mapping, fmt) == expected


def test_detect_format_names_the_missing_mapping():
    with pytest.raises(DataError) as err:
        detect_format(["q", "a"], {"prompt": "question"})
    assert err.value.field == "dataset.columns.prompt" and "'question'" in err.value.message and "q, a" in (err.value.hint or "")
    with pytest.raises(DataError) as err:
        detect_format(["q", "a"])
    assert err.value.field == "dataset.columns" and "q, a" in err.value.message
    with pytest.raises(DataError) as err:
        detect_format(["prompt", "completion"], fmt="alpaca")
    assert err.value.field == "dataset.columns.instruction"


@pytest.mark.parametrize(
    "row, answer",
    [
        ({"prompt": "Convert March 5, 2021", "completion": "2021-03-05"}, "2021-03-05"),
        ({"instruction": "Convert the date", "input": "March 5, 2021", "output": "2021-03-05"}, "2021-03-05"),
        ({"messages": [{"role": "user", "content": "Convert March 5, 2021"}, {"role": "assistant", "content": "2021-03-05"}]}, "2021-03-05"),
        ({"conversations": [{"from": "human", "value": "Convert March 5, 2021"}, {"from": "gpt", "value": "2021-03-05"}]}, "2021-03-05"),
        ({"messages": json.dumps([{"role": "user", "content": "Convert March 5, 2021"}, {"role": "bot", "content": "2021-03-05"}])}, "2021-03-05"),
    ],
)
def test_only_the_answer_is_trained(tokenizer, row, answer):
    _, example = _one(row)
    out = tokenize_example(example, tokenizer, max_length=256)
    assert _trained_pieces(tokenizer, out) == [answer + "<|im_end|>\n"]
    start = next(i for i, label in enumerate(out.labels) if label != IGNORE)
    prompt_text = tokenizer.decode(out.input_ids[:start])
    assert prompt_text.endswith("<|im_start|>assistant\n") and "March 5, 2021" in prompt_text
    assert len(out.labels) == len(out.input_ids)


def test_every_assistant_turn_of_a_conversation_is_trained(tokenizer):
    msgs = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "first"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "second"},
        {"role": "user", "content": "three"},
        {"role": "assistant", "content": "third"},
    ]
    _, example = _one({"messages": msgs}, DatasetSection(system_prompt="Be brief."))
    assert example["messages"][0] == {"role": "system", "content": "Be brief."}
    out = tokenize_example(example, tokenizer, max_length=512)
    assert _trained_pieces(tokenizer, out) == ["first<|im_end|>\n", "second<|im_end|>\n", "third<|im_end|>\n"]
    untrained = tokenizer.decode([t for t, label in zip(out.input_ids, out.labels) if label == IGNORE])
    assert "Be brief." in untrained and "one" in untrained and "three" in untrained and "first" not in untrained


def test_a_template_that_rewrites_earlier_turns_is_refused_by_name(tokenizer):
    rewriting = (
        "{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}<|im_start|>assistant\n...<|im_end|>\n"
        "{% else %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    tok = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    tok.chat_template = rewriting
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]
    with pytest.raises(DataError) as err:
        assistant_spans(tok, msgs)
    assert "chat template" in err.value.message and "prefixes" in err.value.message


def test_completion_only_loss_off_trains_everything(tokenizer):
    _, example = _one({"prompt": "Q", "completion": "A"})
    out = tokenize_example(example, tokenizer, max_length=256, completion_only_loss=False)
    assert out.labels == out.input_ids


def test_text_format_trains_all_tokens_and_ends_with_eos(tokenizer):
    fmt, example = _one({"text": "The quick brown fox."})
    assert fmt == "text"
    out = tokenize_example(example, tokenizer, max_length=256)
    assert out.labels == out.input_ids and out.input_ids[-1] == tokenizer.eos_token_id


def test_truncation_keeps_labels_aligned_and_reports_the_full_length(tokenizer):
    _, example = _one({"prompt": "Convert", "completion": "2021-03-05 " * 20})
    out = tokenize_example(example, tokenizer, max_length=16)
    assert len(out.input_ids) == len(out.labels) == 16 and out.full_length > 16


@pytest.mark.parametrize(
    "row, expected",
    [
        ({"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"}, ("What is 2+2?", "4", "5")),
        (
            {
                "prompt": [{"role": "user", "content": "What is 2+2?"}],
                "chosen": [{"role": "assistant", "content": "4"}],
                "rejected": [{"role": "assistant", "content": "5"}],
            },
            ("What is 2+2?", "4", "5"),
        ),
        (  # OpenAI's DPO fine-tuning JSONL
            {
                "input": {"messages": [{"role": "user", "content": "What is 2+2?"}], "tools": [], "parallel_tool_calls": True},
                "preferred_output": [{"role": "assistant", "content": "4"}],
                "non_preferred_output": [{"role": "assistant", "content": "5"}],
            },
            ("What is 2+2?", "4", "5"),
        ),
    ],
)
def test_preference_pairs_in_every_shape(row, expected):
    fmt, example = _one(row)
    assert fmt == "preference"
    assert (example["prompt"][-1]["content"], example["chosen"][0]["content"], example["rejected"][0]["content"]) == expected
    assert example["chosen"][0]["role"] == example["rejected"][0]["role"] == "assistant"


@pytest.mark.parametrize(
    "row, message",
    [
        ({"prompt": "a", "completion": None}, "empty 'completion'"),
        ({"prompt": "  ", "completion": "b"}, "empty 'prompt'"),
        ({"messages": "not json"}, "not a JSON list"),
        ({"messages": {"role": "user"}}, "non-empty list"),
        ({"messages": [{"role": "narrator", "content": "x"}, {"role": "assistant", "content": "y"}]}, "role 'narrator'"),
        ({"messages": [{"role": "user", "content": "x"}]}, "does not end with an assistant message"),
        ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": ""}]}, "empty assistant message"),
        ({"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}, {"role": "assistant", "content": "z"}]}, "start with a user"),
        ({"prompt": "p", "chosen": "same", "rejected": " same "}, "same answer"),
        ({"prompt": "p", "chosen": "", "rejected": "r"}, "empty 'chosen'"),
    ],
)
def test_unusable_rows_are_refused_naming_the_row_and_column(row, message):
    good = {k: v for k, v in row.items()}
    found = build_examples([row], DatasetSection())
    [problem] = found.refused
    assert problem.row == 1 and message in problem.message, problem.message
    assert problem.field.startswith("dataset.columns")
    assert not found.examples and good == row  # the row itself is left alone


def test_refusals_are_summarised_once_for_validate_and_training():
    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": ""}, {"prompt": "", "completion": "d"}, {"prompt": "e", "completion": ""}]
    found = build_examples(rows, DatasetSection())
    assert found.rows == [1]
    summary = found.refusal_summary()
    assert summary.startswith("3 of 4 rows cannot be trained on") and "empty 'completion': rows 2, 4" in summary and "empty 'prompt': rows 3" in summary
    with pytest.raises(DataError) as err:
        found.raise_if_refused("data@1")
    assert err.value.message == summary and err.value.row == 2 and err.value.file == "data@1"


def test_split_is_fixed_by_seed():
    examples = [{"text": str(i)} for i in range(50)]
    a = split_examples(examples, 0.2, seed=1)
    b = split_examples(examples, 0.2, seed=1)
    c = split_examples(examples, 0.2, seed=2)
    assert a == b and a != c
    assert len(a[1]) == 10 and len(a[0]) == 40
    assert split_examples(examples[:3], 0.01, seed=1)[1] and not split_examples(examples[:1], 0.5, seed=1)[1]


@pytest.mark.parametrize(
    "n, batch, accum, epochs, world, expected",
    [(8, 2, 2, 3, 1, (2, 6)), (9, 2, 2, 1, 1, (3, 3)), (13, 3, 2, 1.5, 1, (3, 5)), (1, 8, 1, 1, 1, (1, 1)), (20, 2, 1, 1, 4, (3, 3))],
)
def test_training_steps_count_like_the_trainer(n, batch, accum, epochs, world, expected):
    assert training_steps(n, batch_size=batch, grad_accum=accum, epochs=epochs, max_steps=-1, world_size=world) == expected
    assert training_steps(n, batch_size=batch, grad_accum=accum, epochs=epochs, max_steps=7, world_size=world)[1] == 7
