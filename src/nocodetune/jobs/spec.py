"""`JobSpec`: what a user asks for when creating a job, whatever the face (CLI, REST, UI).

It holds the request only (names and overrides); `jobs.create` turns it into a
`ResolvedJob`. Keeping one input type means the three faces cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nocodetune.config.overrides import deep_merge, dotted_to_nested


class JobSpec(BaseModel):
    """A request to create (or validate) a job."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Job name; becomes the folder jobs/<name>.")
    base: str | None = Field(None, description="Base job in archive/ (default: the parent's base, else lora_train).")
    parent: str | None = Field(None, description="Existing job whose outputs this job continues from.")
    dataset: str | None = Field(None, description="Dataset as name@version (name alone: latest version).")
    description: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict, description="Config sections to change, nested: {training: {learning_rate: 2e-4}}.")
    set: dict[str, Any] = Field(default_factory=dict, description="Dotted settings, applied after overrides: {'training.learning_rate': 2e-4}.")

    def config_overrides(self) -> dict[str, Any]:
        """overrides ← set ← dataset/description, as one nested dict (what job.yaml records)."""
        merged = deep_merge(self.overrides, dotted_to_nested(self.set))
        if self.dataset is not None:
            merged = deep_merge(merged, {"dataset": {"ref": self.dataset}})
        if self.description is not None:
            merged["description"] = self.description
        return merged

    def job_yaml(self) -> dict[str, Any]:
        """The job.yaml content: base, parent, then the overrides as asked."""
        head: dict[str, Any] = {}
        if self.base is not None:
            head["base"] = self.base
        if self.parent is not None:
            head["parent"] = self.parent
        return {**head, **self.config_overrides()}
