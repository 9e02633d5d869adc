"""What every transformers or diffusers backend (speech, music, images) needs to find a model
offline and to count its steps: the local Hugging Face hub cache (nothing is ever downloaded), and a
step counter that checks for cancellation at each token or denoising step."""

from __future__ import annotations

import os
from pathlib import Path

from .base import ToolContext


def hf_cache() -> Path:
    """The Hugging Face hub cache folder (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home) / "hub"


def cached(repo: str) -> bool:
    """True when the hub id has a snapshot in the local cache."""
    snap = hf_cache() / f"models--{repo.replace('/', '--')}" / "snapshots"
    return snap.is_dir() and any(snap.iterdir())


class Progress:
    """Counts model steps: each step first checks for cancellation (a cancelled step stops at its
    next token or denoising step) and then tells the context's progress hook, when it has one
    (`ctx.progress(done, total)`)."""

    def __init__(self, ctx: ToolContext, total: int):
        self.ctx, self.total, self.done = ctx, max(int(total), 1), 0
        hook = getattr(ctx, "progress", None)
        self._hook = hook if callable(hook) else None

    def step(self, n: int = 1) -> None:
        self.ctx.check_cancelled()
        self.done += n
        if self._hook is not None:
            self._hook(min(self.done, self.total), self.total)
