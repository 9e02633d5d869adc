"""TTS backend: hibari-tts, the embedded default (onnxruntime, 24 kHz, English).

The voice "heart" ships in the package; the others download on first use, which this machine
cannot do, so a voice that is not already cached is reported as missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from ...errors import BackendUnavailableError, InputError
from ..base import Backend, ToolContext

BACKEND = Backend("hibari", "hibari-tts: small, fast English voices on onnxruntime (24 kHz)",
                  requires=("hibari", "onnxruntime"), extra="speech")
DEFAULT_VOICE = "heart"


@dataclass
class Voice:
    """What speak needs from any backend: a name, a rate, the languages, and text -> samples."""

    name: str
    rate: int
    languages: set[str] | None  # ISO 639-1 codes; None: whatever the model was trained on, unknown
    model: Any

    def synth(self, text: str, speed: float) -> np.ndarray:
        return self.model(text, speed=speed, seed=0)  # a fixed seed: the same text gives the same file


def voices() -> list[str]:
    if importlib.util.find_spec("hibari") is None:
        return []
    from hibari.voices import VOICES

    return list(VOICES)


def languages(voice: str | None) -> set[str]:
    return {"en"}


@contextlib.contextmanager
def open_voice(ctx: ToolContext, voice: str | None) -> Iterator[Voice]:
    from hibari import Hibari
    from hibari.voices import VOICES, cache_dir

    name = voice or DEFAULT_VOICE
    if name not in VOICES:
        raise InputError(f"speak: hibari has no voice '{name}' (it has: {', '.join(VOICES)})")
    if name != DEFAULT_VOICE and not os.path.exists(os.path.join(cache_dir(), VOICES[name]["file"])):
        raise BackendUnavailableError(f"speak: hibari voice '{name}' is not downloaded here, and this machine "
                                      f"cannot fetch it (use voice '{DEFAULT_VOICE}')")
    threads = max(1, min(4, os.cpu_count() or 1))
    with ctx.runtime.use(f"hibari:{name}", lambda d, t: Hibari(voice=name, threads=threads)) as model:
        yield Voice(name, model.sample_rate, {"en"}, model)
