"""Export a trained job's model where it will be used: one module per format.

`merged` (one Hugging Face folder), `adapter` (a portable LoRA adapter), `gguf` (llama.cpp,
LM Studio), `ollama` (GGUF + Modelfile), `hub` (the merged folder pushed to the Hugging
Face Hub). `preflight` refuses what cannot be exported before any weights load (light:
the API imports it); `runner` runs one export into a staging folder and renames it into
place; `chat_template` and `gotemplate` translate and check Ollama TEMPLATEs.
"""
