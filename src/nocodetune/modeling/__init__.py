"""Which weights make a job's model, and putting them together.

`lineage` (light) finds a job's chain of parents and the output each left; `assemble`
(heavy: torch, transformers, peft) loads the base and applies the chain. Training's
start point, held-out sampling, the model server and export all use `assemble`, so a
job's model is the same model wherever it is used.
"""
