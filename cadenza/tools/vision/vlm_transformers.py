"""PLACEHOLDER being written: a vision-language or captioning model through transformers' Auto classes."""

from __future__ import annotations

from ..base import Backend, ToolContext
from .common import Caption, CaptionRequest

BACKEND = Backend("transformers", "a vision-language or captioning model through transformers, on GPU",
                  requires=("transformers", "torch"), device="gpu", gpu_memory_gb=4.0, extra="gpu-vision",
                  check=lambda: "not written yet")


def caption(ctx: ToolContext, request: CaptionRequest) -> list[Caption]:
    raise NotImplementedError
