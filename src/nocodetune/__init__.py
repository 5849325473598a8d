"""NoCodeTune: self-hosted, no-code fine-tuning of language models."""

__version__ = "0.1.0"
