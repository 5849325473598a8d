"""The inference engine and the OpenAI-compatible app (heavy imports stay inside)."""
