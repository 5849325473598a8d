"""`--set` parsing and the config error messages users read."""

from __future__ import annotations

import pytest

from nocodetune.config.overrides import deep_merge, dotted_to_nested, parse_set_args, parse_value, validate_config
from nocodetune.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2e-4", 2e-4),
        ("1.5", 1.5),
        ("16", 16),
        ("-1", -1),
        ("true", True),
        ("False", False),
        ("[q_proj, v_proj]", ["q_proj", "v_proj"]),
        ("null", None),
        ("all-linear", "all-linear"),
        ("hello world", "hello world"),
        ("reviews@2", "reviews@2"),
    ],
)
def test_set_values_parse_like_yaml(text: str, expected: object) -> None:
    value = parse_value(text)
    assert value == expected and type(value) is type(expected)


def test_set_args_become_nested_sections() -> None:
    flat = parse_set_args(["training.learning_rate=2e-4", "lora.r=8", "method=full", "dataset.columns.prompt=question"])
    assert dotted_to_nested(flat) == {
        "training": {"learning_rate": 2e-4},
        "lora": {"r": 8},
        "method": "full",
        "dataset": {"columns": {"prompt": "question"}},
    }


def test_set_without_equals_is_refused() -> None:
    with pytest.raises(ConfigError, match="key=value"):
        parse_set_args(["training.learning_rate"])


def test_value_and_section_under_the_same_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="training is a value"):
        dotted_to_nested({"training": 1, "training.learning_rate": 2})


def test_deep_merge_merges_dicts_and_replaces_lists() -> None:
    base = {"lora": {"r": 16, "target_modules": ["q", "k", "v"]}, "method": "lora"}
    out = deep_merge(base, {"lora": {"target_modules": ["o"]}})
    assert out == {"lora": {"r": 16, "target_modules": ["o"]}, "method": "lora"}
    assert base["lora"]["target_modules"] == ["q", "k", "v"]  # inputs are not modified


def test_unknown_key_suggests_the_closest_valid_one() -> None:
    with pytest.raises(ConfigError) as err:
        validate_config({"training": {"learnin_rate": 1e-4}})
    assert err.value.field == "training.learnin_rate"
    assert "did you mean training.learning_rate?" in err.value.message


def test_unknown_section_suggests_the_closest_section() -> None:
    with pytest.raises(ConfigError) as err:
        validate_config({"trainig": {"learning_rate": 1e-4}})
    assert err.value.field == "trainig"
    assert "did you mean training?" in err.value.message


def test_unknown_key_without_a_close_match_lists_valid_keys() -> None:
    with pytest.raises(ConfigError) as err:
        validate_config({"lora": {"zzzz": 1}})
    assert "unknown key lora.zzzz" in err.value.message
    assert err.value.hint and "alpha" in err.value.hint and "target_modules" in err.value.hint


def test_bad_value_names_the_full_path_and_the_value() -> None:
    with pytest.raises(ConfigError) as err:
        validate_config({"training": {"learning_rate": "fast"}})
    assert err.value.field == "training.learning_rate"
    assert "training.learning_rate = 'fast'" in err.value.message


def test_bad_choice_names_the_allowed_values() -> None:
    with pytest.raises(ConfigError) as err:
        validate_config({"method": "adapter"})
    assert err.value.field == "method"
    assert "'adapter'" in err.value.message and "'lora'" in err.value.message


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        validate_config({"training": {"max_length": "long", "packing": "maybe"}, "lora": {"r": 0}})
    for key in ("training.max_length", "training.packing", "lora.r"):
        assert key in err.value.message
