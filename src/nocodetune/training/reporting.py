"""Where training metrics go besides `events.jsonl`: TensorBoard and Weights & Biases, only when asked.

- TensorBoard (`training.report_to: [tensorboard]`): event files under the job's
  `logs/tensorboard/`, written locally; open them with `tensorboard --logdir <job>/logs/tensorboard`.
- W&B (`training.report_to: [wandb]`): never by default. `settings.apply_network_policy`
  sets `WANDB_MODE=disabled` unless the environment says otherwise, so W&B reports only
  when the user has configured it (`WANDB_MODE=online` with `WANDB_API_KEY` or `wandb
  login`, or `WANDB_MODE=offline`) and installed `wandb`. Asked for but not configured,
  the run fails at once naming `training.report_to`, rather than silently not reporting.

Light: no torch import until the TensorBoard callback is built.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nocodetune.errors import ConfigError
from nocodetune.records.schema import JobConfig


def wandb_problem(env: Mapping[str, str] | None = None) -> str | None:
    """Why W&B cannot report from this process (None: it can)."""
    env = os.environ if env is None else env
    if importlib.util.find_spec("wandb") is None:
        return "the wandb package is not installed (pip install wandb)"
    if env.get("WANDB_MODE", "").strip().lower() in ("", "disabled"):
        return "W&B is not configured: set WANDB_MODE=online (with WANDB_API_KEY or `wandb login`) or WANDB_MODE=offline where the job runs"
    return None


def check_reporting(config: JobConfig) -> None:
    """Refuse a job that asks for W&B on a machine where it is not set up (before anything heavy loads)."""
    if "wandb" not in config.training.report_to:
        return
    problem = wandb_problem()
    if problem is not None:
        raise ConfigError(f"training.report_to lists wandb, but {problem}", field="training.report_to",
                          hint="configure W&B in the environment of the training process, or remove wandb from training.report_to")
    if os.environ.get("WANDB_DISABLED", "").lower() in ("true", "1", "yes"):
        del os.environ["WANDB_DISABLED"]  # the network policy's default; the user has configured WANDB_MODE


def report_to(config: JobConfig) -> list[str] | str:
    """The Trainer's `report_to`: W&B when asked (and checked by `check_reporting`); TensorBoard goes through
    `tensorboard_callback` so its folder is the job's, not the Trainer's output folder."""
    return ["wandb"] if "wandb" in config.training.report_to else "none"


def tensorboard_callback(folder: Path) -> Any:
    """transformers' TensorBoardCallback writing into `folder` (rank 0 only, created when training starts)."""
    from transformers.integrations import TensorBoardCallback

    folder.mkdir(parents=True, exist_ok=True)
    callback = TensorBoardCallback()
    callback.logging_dir = str(folder)
    return callback
