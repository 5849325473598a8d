"""UI pages (placeholder until its owner fills it in)."""

from __future__ import annotations

from fastapi import FastAPI


def mount(app: FastAPI) -> None:
    pass
