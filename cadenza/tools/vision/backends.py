"""The captioning backends, by name, best first (a GPU model, then the offline describer): the one
list caption_image and caption_video choose from. Each module exports BACKEND and
`caption(ctx, CaptionRequest) -> list[Caption]` (common.py)."""

from __future__ import annotations

from . import describe_offline, vlm_transformers

CAPTION_BACKENDS = {m.BACKEND.name: m for m in (vlm_transformers, describe_offline)}
