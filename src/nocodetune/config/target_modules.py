"""`lora.target_modules` against the model's real module names, and translation between families.

peft matches a target name against module names by suffix (`q_proj` matches
`model.layers.0.self_attn.q_proj`) and fails at run time, deep in training, when a name
matches nothing. Validate checks every name here first. Jobs written for another model
family (the original NoCodeTune's jobs name GPT-NeoX's `query_key_value`) are translated
by role: the fused attention projection of one family is the q/k/v projections of another.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, Field

# Module leaf names by the role they play, across the common decoder families.
ROLES: dict[str, tuple[str, ...]] = {
    "attention_qkv": ("query_key_value", "c_attn", "Wqkv", "qkv_proj", "W_pack", "qkv"),
    "attention_q": ("q_proj", "query", "q"),
    "attention_k": ("k_proj", "key", "k"),
    "attention_v": ("v_proj", "value", "v"),
    "attention_out": ("o_proj", "dense", "out_proj", "wo", "attn_out"),
    "mlp_in": ("gate_proj", "up_proj", "dense_h_to_4h", "c_fc", "fc1", "w1", "w3", "gate_up_proj", "fc_in"),
    "mlp_out": ("down_proj", "dense_4h_to_h", "fc2", "w2", "fc_out"),
}
_ATTENTION_PARTS = ("attention_q", "attention_k", "attention_v")


class Translation(BaseModel):
    targets: list[str] = Field(description="The target names to use for this model.")
    notes: list[str] = Field(default_factory=list, description="What was renamed, and why.")
    unknown: list[str] = Field(default_factory=list, description="Names that match nothing and have no known equivalent.")


def leaf_names(module_names: Iterable[str]) -> list[str]:
    """Distinct last components of dotted module names, in first-seen order."""
    return list(dict.fromkeys(name.rsplit(".", 1)[-1] for name in module_names))


def matches(target: str, module_names: Sequence[str]) -> bool:
    """peft's rule for one name of a target list: the whole name, or a dotted suffix of it."""
    return any(name == target or name.endswith("." + target) for name in module_names)


def unmatched(targets: str | Sequence[str], module_names: Sequence[str]) -> list[str]:
    """The target names that select no module ('all-linear' selects the linear layers; a string is a regex)."""
    if isinstance(targets, str):
        if targets == "all-linear":
            return []
        return [] if any(re.fullmatch(targets, name) for name in module_names) else [targets]
    return [t for t in targets if not matches(t, module_names)]


def _role(name: str) -> str | None:
    return next((role for role, names in ROLES.items() if name in names), None)


def translate(targets: Sequence[str], module_names: Sequence[str]) -> Translation:
    """Rename targets the model does not have to the names of the same role in this model."""
    leaves = leaf_names(module_names)
    by_role: dict[str, list[str]] = {}
    for leaf in leaves:
        role = _role(leaf)
        if role is not None:
            by_role.setdefault(role, []).append(leaf)
    out = Translation(targets=[])
    for target in targets:
        if matches(target, module_names):
            out.targets.append(target)
            continue
        role = _role(target)
        if role == "attention_qkv" and all(part in by_role for part in _ATTENTION_PARTS):
            found = [by_role[part][0] for part in _ATTENTION_PARTS]
        elif role in _ATTENTION_PARTS and "attention_qkv" in by_role:
            found = by_role["attention_qkv"][:1]
        else:
            found = by_role.get(role or "", [])
        if not found:
            out.unknown.append(target)
            continue
        out.notes.append(f"lora.target_modules: {target!r} is named {', '.join(repr(f) for f in found)} in this model")
        out.targets.extend(f for f in found if f not in out.targets)
    return out


def describe_modules(module_names: Sequence[str]) -> str:
    """The model's linear module leaf names, for an error message."""
    return ", ".join(leaf_names(module_names)) or "none found"
