"""What the Hugging Face music backends (musicgen, stable_audio, audioldm) share: finding a model
offline, checking a request, seeding, progress and cancellation, and joining audio windows.

Models are a folder saved with `save_pretrained` or a hub id already in the local Hugging Face
cache; nothing here downloads. numpy only at import time: torch is imported inside the functions.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ...errors import InputError
from ..base import ToolContext
from ..hf_hub import Progress, cached, hf_cache

__all__ = ["hf_cache", "cached", "present", "pick_model", "model_check", "check_seconds", "new_seed", "seeded",
           "torch_dtype", "Resident", "Progress", "resample", "fit_channels", "append_crossfaded", "limit"]


@dataclass
class Resident:
    """A loaded pipeline as the runtime keeps it, with a lock: a diffusers pipeline keeps per-call
    state (its scheduler's steps), so two steps sharing the resident model take turns."""

    pipe: Any
    lock: threading.Lock = field(default_factory=threading.Lock)


def present(name: str) -> bool:
    """True when `name` is a folder here or a hub id with a snapshot in the local cache."""
    return Path(name).expanduser().is_dir() or ("/" in name and cached(name))


def pick_model(env: str, repos: list[str]) -> str | None:
    """The model the env var names, else the first of `repos` (largest first) in the local cache."""
    chosen = os.environ.get(env)
    if chosen:
        return chosen
    return next((r for r in repos if cached(r)), None)


def model_check(what: str, env: str, name: str | None, example: str) -> str | None:
    """None when `name` can load offline, else one line saying what to set or put where."""
    if name is None:
        return (f"no {what} model here: set {env} to a saved model folder or put {example} "
                f"in the Hugging Face cache ({hf_cache()})")
    if not present(name):
        return f"{what} model '{name}' is neither a folder nor cached in {hf_cache()} (nothing is downloaded)"
    return None


def check_seconds(seconds: float, most: float, backend: str) -> None:
    if not seconds > 0:
        raise InputError(f"{backend}: the duration must be more than 0 seconds, not {seconds}")
    if seconds > most + 1e-6:
        raise InputError(f"{backend} makes at most {most:g} s in one call, not {seconds:g} s")


def new_seed(seed: int | None) -> int:
    """The request's seed, or a fresh one (reported in the result's settings, so a result can be remade)."""
    return int(seed) if seed is not None else random.randrange(2**31)


@contextlib.contextmanager
def seeded(seed: int, device: str) -> Iterator[None]:
    """Seed torch's CPU (and this CUDA device's) generator for the block and restore them afterwards,
    so a seeded call neither depends on nor disturbs other users of the global generator."""
    import torch

    cuda = device.startswith("cuda") and torch.cuda.is_available()
    index = torch.device(device).index if cuda else None
    devices = [index if index is not None else torch.cuda.current_device()] if cuda else []
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        torch.manual_seed(seed)
        yield


def torch_dtype(dtype: str):
    import torch

    return getattr(torch, dtype)


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Band-limited resampling along axis 0 (FFT method; the ends are reflected first so the
    spectrum's wrap-around does not smear one end into the other). float32 out."""
    x = np.asarray(x, np.float32)
    if src == dst or len(x) == 0:
        return x
    n = len(x)
    pad = min(n - 1, max(64, src // 20))
    padded = np.pad(x, [(pad, pad)] + [(0, 0)] * (x.ndim - 1), mode="reflect") if pad > 0 else x
    m = int(round(len(padded) * dst / src))
    spec = np.fft.rfft(padded, axis=0)
    keep = min(spec.shape[0], m // 2 + 1)
    out_spec = np.zeros((m // 2 + 1,) + spec.shape[1:], dtype=spec.dtype)
    out_spec[:keep] = spec[:keep]
    y = np.fft.irfft(out_spec, n=m, axis=0) * (m / len(padded))
    start = int(round(pad * dst / src))
    return y[start:start + int(round(n * dst / src))].astype(np.float32)


def fit_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """(n,) or (n, c) audio as (n, channels): mono is copied to every channel, more channels are averaged."""
    x = np.asarray(x, np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.shape[1] == channels:
        return x
    mono = x.mean(axis=1, keepdims=True)
    return np.repeat(mono, channels, axis=1)


def append_crossfaded(out: np.ndarray, overlap: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Join a window to what was made so far. `overlap` is the window's own rendering of the last
    len(overlap) samples of `out` (the model re-decoded its audio prompt): the join fades from `out`
    to it over that stretch, then `new` follows with no gap or shift in time. The fade is linear (equal
    gain): both sides render the same music, so an equal-power fade would bulge by 3 dB."""
    n = min(len(overlap), len(out))
    if n:
        t = np.linspace(0.0, 1.0, n, dtype=np.float32)
        fade_in, fade_out = t, 1.0 - t
        if out.ndim == 2:
            fade_in, fade_out = fade_in[:, None], fade_out[:, None]
        out = out.copy()
        out[-n:] = out[-n:] * fade_out + overlap[-n:] * fade_in
    return np.concatenate([out, new], axis=0)


def limit(x: np.ndarray) -> np.ndarray:
    """float32 within -1..1: scaled down (not clipped) when a peak goes over."""
    x = np.nan_to_num(np.asarray(x, np.float32))
    peak = float(np.abs(x).max()) if x.size else 0.0
    return x / peak if peak > 1.0 else x
