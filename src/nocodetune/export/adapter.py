"""`adapter`: the job's LoRA adapter as a folder that works on any machine holding the base.

`adapter_config.json` (peft's file) names the base by its public identity (the embedded
model's name, or a hub id) instead of this machine's cache folder, and
`nocodetune_weights.json` beside it records the base's weights hash, so whoever loads it
can check they hold the very base it was trained on. (The hash is not written into
adapter_config.json itself: peft warns about keys it does not know.) Refused, by the
checks, when the job's model is more than its base plus this one adapter.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from nocodetune.export.common import ExportResult, Progress, model_card, no_progress
from nocodetune.export.preflight import check_single_adapter
from nocodetune.model_source import identity, resolve_model
from nocodetune.records.job import read_resolved
from nocodetune.records.weights import WeightsRecord, read_weights, write_weights
from nocodetune.workspace import JobPaths

USAGE = """
Load it with peft on top of its base model (named in `adapter_config.json`; the base's
weights hash is in `nocodetune_weights.json`):

```python
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

base = AutoModelForCausalLM.from_pretrained("BASE")  # the model adapter_config.json names
model = PeftModel.from_pretrained(base, "PATH")
tokenizer = AutoTokenizer.from_pretrained("PATH")
```

Or serve it: `nocodetune server start model --model PATH` finds the base by its name.
"""


def export_adapter(paths: JobPaths, stage: Path, progress: Progress = no_progress) -> ExportResult:
    from nocodetune.modeling.assemble import adapter_layer, name_base_in_adapter_config

    resolved = read_resolved(paths)
    folder = check_single_adapter(paths, resolved)
    progress("copying", 0.2, f"copying the adapter from {folder}")
    stage.mkdir(parents=True, exist_ok=True)
    for item in sorted(folder.iterdir()):
        if item.is_file() and item.name != "README.md":
            shutil.copy2(item, stage / item.name)
    record = read_weights(folder)
    if record is None or record.base.sha256 is None:  # trained before weights records carried the base hash
        progress("hashing", 0.5, "hashing the base model's weights")
        base = identity(resolve_model(resolved.config.model), with_hash=True)
        record = WeightsRecord(base=base, layers=[adapter_layer(paths.name, folder)], job=paths.name)
        write_weights(stage, record)
    name_base_in_adapter_config(stage, record.base.name)
    (stage / "README.md").write_text(model_card(paths, record, kind="LoRA adapter", usage=USAGE.replace("BASE", record.base.name)), encoding="utf-8")
    return ExportResult(weights=record, details={"base": record.base.name, "base_sha256": record.base.sha256 or ""})
