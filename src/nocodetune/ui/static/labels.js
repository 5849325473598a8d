/* Words a person reads instead of config keys: a label for every setting, labels for
   choices, and the one place that turns an API message into UI wording (setting keys
   become their labels, command-line advice is dropped in favour of UI guidance). */
"use strict";

const NCT_LABELS = (() => {
  // Every setting of the job schema. A key missing here falls back to its words, capitalised.
  const FIELD = {
    description: "Description",
    method: "Training method",
    objective: "What to learn",
    "model.source": "Model",
    "model.gguf_file": "GGUF file inside the model folder",
    "model.revision": "Model revision",
    "model.dtype": "Weights precision",
    "model.trust_remote_code": "Run code shipped with the model",
    "model.attn_implementation": "Attention kernel",
    "dataset.ref": "Dataset",
    "dataset.format": "Data layout",
    "dataset.columns": "Columns",
    "dataset.columns.text": "Text column",
    "dataset.columns.prompt": "Prompt column",
    "dataset.columns.completion": "Answer column",
    "dataset.columns.instruction": "Instruction column",
    "dataset.columns.input": "Input column",
    "dataset.columns.output": "Output column",
    "dataset.columns.messages": "Conversation column",
    "dataset.columns.chosen": "Preferred answer column",
    "dataset.columns.rejected": "Rejected answer column",
    "dataset.system_prompt": "System prompt",
    "dataset.max_rows": "Use only the first rows",
    "training.learning_rate": "Learning rate",
    "training.num_train_epochs": "Epochs",
    "training.max_steps": "Stop after steps",
    "training.per_device_train_batch_size": "Batch size",
    "training.per_device_eval_batch_size": "Evaluation batch size",
    "training.gradient_accumulation_steps": "Gradient accumulation",
    "training.warmup_ratio": "Warm-up share",
    "training.lr_scheduler_type": "Learning-rate schedule",
    "training.weight_decay": "Weight decay",
    "training.max_grad_norm": "Gradient clipping",
    "training.optim": "Optimizer",
    "training.seed": "Random seed",
    "training.max_length": "Longest example (tokens)",
    "training.packing": "Pack short examples together",
    "training.group_by_length": "Group examples by length",
    "training.eval_split": "Held out for evaluation",
    "training.logging_steps": "Log every … steps",
    "training.eval_steps": "Evaluate every … steps",
    "training.save_steps": "Checkpoint every … steps",
    "training.save_total_limit": "Checkpoints kept",
    "training.gradient_checkpointing": "Save memory (slower)",
    "training.bf16": "bfloat16 mixed precision",
    "training.fp16": "float16 mixed precision",
    "training.completion_only_loss": "Learn only the answers",
    "training.early_stopping_patience": "Stop early after … evaluations without progress",
    "training.report_to": "Also log to",
    "lora.r": "LoRA rank",
    "lora.alpha": "LoRA alpha",
    "lora.dropout": "LoRA dropout",
    "lora.target_modules": "Layers with adapters",
    "lora.bias": "Train biases",
    "lora.modules_to_save": "Layers trained in full",
    "output.merge_adapter": "Also save a merged model",
    "output.num_samples": "Sample answers before and after",
    "output.sample_max_new_tokens": "Longest sample answer (tokens)",
    "evaluation.heldout_metric": "Score held-out answers",
    "evaluation.heldout_max_examples": "Held-out examples scored",
    "evaluation.max_new_tokens": "Longest scored answer (tokens)",
    "preference.beta": "Preference strength (beta)",
    "preference.loss_type": "Preference loss",
    "preference.label_smoothing": "Label noise allowance",
    "resources.num_processes": "Training processes",
    "resources.num_nodes": "Machines",
    "resources.strategy": "How processes share work",
    "resources.deepspeed_stage": "DeepSpeed stage",
    "resources.executor": "Run on",
    "resources.ray_address": "Ray cluster address",
  };
  const SECTION = { general: "General", model: "Model", dataset: "Data", training: "Training", lora: "LoRA adapter", output: "Outputs",
    evaluation: "Evaluation", preference: "Preference tuning", resources: "Where it runs" };
  // Choices, by value; a value missing here is shown as written.
  const CHOICE = {
    full: "Full fine-tuning (all weights)", lora: "LoRA (small adapter, fast)", qlora: "QLoRA (4-bit, needs an NVIDIA GPU)",
    sft: "Learn the answers (SFT)", dpo: "Prefer the chosen answer (DPO)", orpo: "Prefer the chosen answer, in one step (ORPO)",
    auto: "Automatic", float32: "float32 (exact)", bfloat16: "bfloat16", float16: "float16",
    eager: "Eager", sdpa: "SDPA", flash_attention_2: "FlashAttention 2",
    text: "Plain text", prompt_completion: "Prompt and answer", alpaca: "Instruction, input, output", messages: "Conversations",
    preference: "Preferred and rejected answers",
    linear: "Linear", cosine: "Cosine", cosine_with_restarts: "Cosine with restarts", polynomial: "Polynomial", constant: "Constant",
    constant_with_warmup: "Constant after warm-up", inverse_sqrt: "Inverse square root",
    none: "None", all: "All", lora_only: "Only LoRA's", exact_match: "Exact match", contains: "Contains the expected answer",
    sigmoid: "Sigmoid (original DPO)", hinge: "Hinge", ipo: "IPO", robust: "Robust (noisy labels)",
    ddp: "DDP", fsdp: "FSDP", deepspeed: "DeepSpeed", local: "This machine", ray: "A Ray cluster",
    tensorboard: "TensorBoard", wandb: "Weights & Biases", true: "Yes", false: "No",
  };

  // Last parts of keys that name one setting only (snake_case names people would otherwise read raw).
  const BARE = {};
  const lastParts = Object.keys(FIELD).map((k) => k.split(".").pop());
  for (const [k, label] of Object.entries(FIELD)) {
    const last = k.split(".").pop();
    if (last.includes("_") && lastParts.filter((x) => x === last).length === 1) BARE[last] = label.replace(/\s*\(.*\)$/, "");
  }
  const BASES = { lora_train: "LoRA: small adapter, fast", full_train: "Full fine-tuning: all weights", qlora_train: "QLoRA: 4-bit, needs an NVIDIA GPU" };
  const base = (name) => BASES[name] || words(name);

  const words = (key) => {
    const last = String(key).split(".").pop().replace(/_/g, " ");
    return last.charAt(0).toUpperCase() + last.slice(1);
  };
  const field = (path) => FIELD[path] || words(path);
  const section = (name) => SECTION[name] || words(name);
  const choice = (value) => (value === null || value === undefined ? "Not set" : CHOICE[String(value)] || String(value));

  // Command-line advice has no place in the browser: these mark it.
  const CLI = /(`[^`]*`)|(\bnocodetune\s)|(--[a-z][\w-]*)|(\bpip install\b)|(huggingface-cli)|(NOCODETUNE_[A-Z_]+)|(\bCOL\b)/;
  const isCli = (text) => CLI.test(String(text || ""));

  /** The text without the bracketed groups (nested ones included) that hold a command. */
  function dropCliGroups(t) {
    let out = ""; let depth = 0; let start = -1;
    for (let i = 0; i < t.length; i++) {
      if (t[i] === "(") { if (depth === 0) start = i; depth++; }
      else if (t[i] === ")" && depth > 0) {
        depth--;
        if (depth === 0) {
          const group = t.slice(start, i + 1);
          if (!isCli(group)) out += group;
          else out = out.replace(/\s+$/, "");
          start = -1;
        }
      } else if (depth === 0) out += t[i];
    }
    return depth > 0 ? out + t.slice(start) : out;
  }

  /** A clause up to the command it holds, without the dangling "with"/"run" before it. */
  function cutCli(clause) {
    const m = CLI.exec(clause);
    if (!m) return clause;
    let kept = clause.slice(0, m.index);
    const connectors = /\s*(\b(with|using|by|run|use|try|via|to|or|and|e\.g\.|for example|first|it|one|set|pass|add|the data|name the columns)\b|[:,;—-])\s*$/i;
    while (connectors.test(kept)) kept = kept.replace(connectors, "");
    const colon = kept.lastIndexOf(":");
    if (colon >= 0 && kept.slice(colon + 1).trim().split(/\s+/).filter(Boolean).length < 3) kept = kept.slice(0, colon);
    return kept.trim().length >= 8 ? kept.trim() : "";
  }

  /** A message with setting keys replaced by their labels and command-line parts removed. */
  function humanize(text) {
    let t = String(text || "");
    // "(pip install x)" and other parenthesised commands go first, then clauses that still hold a command.
    t = dropCliGroups(t);
    t = t.split(/(?<=;)\s+|(?<=\.)\s+(?=[A-Z])/).map(cutCli).filter(Boolean).join(" ").replace(/[;:,]\s*$/, "");
    // Longest keys first, so training.max_length never becomes "Longest…" + ".max_length".
    for (const key of Object.keys(FIELD).sort((a, b) => b.length - a.length)) {
      if (!key.includes(".")) continue;
      const label = FIELD[key].replace(/\s*\(.*\)$/, "");
      t = t.replace(new RegExp(`${key.replace(/\./g, "\\.")}=(\\S+)`, "g"), `“${label}” of $1`).split(key).join(`“${label}”`);
    }
    // Bare setting names ("ignored when max_steps > 0") too, where the name is unambiguous.
    for (const [name, label] of Object.entries(BARE)) t = t.replace(new RegExp(`\\b${name}\\b`, "g"), `“${label}”`);
    return t.trim();
  }

  return { FIELD, field, section, choice, humanize, isCli, words, base };
})();
