"""Each dataset format becomes input_ids/labels with only the answer trained (checked on label ids)."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from nocodetune.records.schema import DatasetSection
from nocodetune.errors import DataError
from nocodetune.training.examples import build_examples, split_examples
from nocodetune.training.tokenize import IGNORE, tokenize_example


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def _trained_text(tokenizer, out) -> str:
    return tokenizer.decode([t for t, l in zip(out["input_ids"], out["labels"]) if l != IGNORE])


def _masked_prefix(out) -> int:
    return next(i for i, l in enumerate(out["labels"]) if l != IGNORE)


@pytest.mark.parametrize(
    "fmt, row, answer",
    [
        ("prompt_completion", {"prompt": "Convert March 5, 2021", "completion": "2021-03-05"}, "2021-03-05"),
        ("alpaca", {"instruction": "Convert the date", "input": "March 5, 2021", "output": "2021-03-05"}, "2021-03-05"),
        (
            "messages",
            {"messages": [{"role": "user", "content": "Convert March 5, 2021"}, {"role": "assistant", "content": "2021-03-05"}]},
            "2021-03-05",
        ),
    ],
)
def test_only_the_answer_is_trained(tokenizer, fmt, row, answer):
    _, _, [example] = build_examples([row], DatasetSection(format="auto"), "data.jsonl")
    out = tokenize_example(example, tokenizer, max_length=256, completion_only_loss=True)
    start = _masked_prefix(out)
    # Everything before the answer (system/user turns and the assistant header) is -100 ...
    prompt_text = tokenizer.decode(out["input_ids"][:start])
    assert prompt_text.endswith("<|im_start|>assistant\n")
    assert "March 5, 2021" in prompt_text
    # ... and exactly the answer plus the end-of-turn token are trained.
    assert _trained_text(tokenizer, out).startswith(answer + "<|im_end|>")
    assert out["labels"][start:] == out["input_ids"][start:]
    assert len(out["labels"]) == len(out["input_ids"])


def test_completion_only_loss_off_trains_everything(tokenizer):
    _, _, [example] = build_examples([{"prompt": "Q", "completion": "A"}], DatasetSection(), "d.jsonl")
    out = tokenize_example(example, tokenizer, max_length=256, completion_only_loss=False)
    assert out["labels"] == out["input_ids"]


def test_text_format_trains_all_tokens_and_ends_with_eos(tokenizer):
    fmt, _, [example] = build_examples([{"text": "The quick brown fox."}], DatasetSection(), "d.jsonl")
    assert fmt == "text"
    out = tokenize_example(example, tokenizer, max_length=256, completion_only_loss=True)
    assert out["labels"] == out["input_ids"]
    assert out["input_ids"][-1] == tokenizer.eos_token_id


def test_multi_turn_keeps_earlier_turns_as_context(tokenizer):
    msgs = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "first"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "second"},
    ]
    _, _, [example] = build_examples([{"messages": msgs}], DatasetSection(system_prompt="Be brief."), "d.jsonl")
    assert example["prompt"][0] == {"role": "system", "content": "Be brief."}
    out = tokenize_example(example, tokenizer, max_length=256, completion_only_loss=True)
    assert _trained_text(tokenizer, out).startswith("second<|im_end|>")
    assert "first" in tokenizer.decode(out["input_ids"][: _masked_prefix(out)])


def test_explicit_column_mapping(tokenizer):
    section = DatasetSection.model_validate({"format": "prompt_completion", "columns": {"prompt": "q", "completion": "a"}})
    _, cols, [example] = build_examples([{"q": "Q?", "a": "yes"}], section, "d.jsonl")
    assert cols == {"prompt": "q", "completion": "a"}
    assert example["completion"][0]["content"] == "yes"


def test_missing_column_names_the_field_and_columns():
    section = DatasetSection.model_validate({"format": "prompt_completion", "columns": {"prompt": "question"}})
    with pytest.raises(DataError) as err:
        build_examples([{"prompt": "x", "completion": "y"}], section, "d.jsonl")
    assert err.value.field == "dataset.columns.prompt"
    assert "question" in err.value.message and "completion" in err.value.hint  # says which columns exist


def test_empty_value_names_the_row():
    with pytest.raises(DataError) as err:
        build_examples([{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": None}], DatasetSection(), "d.jsonl")
    assert err.value.row == 2


def test_truncation_keeps_start_and_labels_aligned(tokenizer):
    _, _, [example] = build_examples([{"prompt": "Convert", "completion": "2021-03-05 " * 20}], DatasetSection(), "d.jsonl")
    out = tokenize_example(example, tokenizer, max_length=16, completion_only_loss=True)
    assert len(out["input_ids"]) == len(out["labels"]) == 16


def test_split_is_fixed_by_seed():
    examples = [{"text": str(i)} for i in range(50)]
    a = split_examples(examples, 0.2, seed=1)
    b = split_examples(examples, 0.2, seed=1)
    c = split_examples(examples, 0.2, seed=2)
    assert a == b and a != c
    assert len(a[1]) == 10 and len(a[0]) == 40
