"""TTS backend: a transformers VITS model (MMS-TTS, one language per model), on GPU when present.

The model is `voice` when it names a folder or a cached hub id, else CADENZA_HF_TTS_MODEL, else
the cached facebook/mms-tts-<iso3> model for the language. Loaded with `local_files_only=True`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from ...errors import BackendUnavailableError
from ..base import Backend, ToolContext
from .asr_transformers import cached, hf_cache
from .languages import code, iso3
from .tts_hibari import Voice


def _check() -> str | None:
    env = os.environ.get("CADENZA_HF_TTS_MODEL")
    if env:
        return None if Path(env).expanduser().is_dir() or cached(env) else (
            f"model '{env}' is neither a folder nor cached in {hf_cache()}")
    if hf_cache().is_dir() and any(hf_cache().glob("models--facebook--mms-tts-*")):
        return None
    return "has no VITS model here (set CADENZA_HF_TTS_MODEL to a saved model folder or a cached hub id)"


BACKEND = Backend("transformers", "a transformers VITS model (MMS-TTS), on GPU when present",
                  requires=("transformers", "torch"), device="gpu", gpu_memory_gb=0.5, extra="gpu-speech",
                  check=_check)


def resolve(voice: str | None, language: str) -> str:
    if voice and (Path(voice).expanduser().is_dir() or cached(voice)):
        return str(Path(voice).expanduser()) if Path(voice).expanduser().is_dir() else voice
    if os.environ.get("CADENZA_HF_TTS_MODEL"):
        return os.environ["CADENZA_HF_TTS_MODEL"]
    mms = f"facebook/mms-tts-{iso3(language) or code(language)}"
    if cached(mms):
        return mms
    raise BackendUnavailableError(f"speak: no transformers TTS model for language {language!r} here "
                                  f"({mms} is not cached; set CADENZA_HF_TTS_MODEL)")


class _Vits:
    def __init__(self, name: str, device: str, dtype: str):
        import torch
        from transformers import AutoTokenizer, VitsModel

        try:
            self.tok = AutoTokenizer.from_pretrained(name, local_files_only=True)
            self.model = VitsModel.from_pretrained(name, local_files_only=True).to(device)
        except OSError as e:
            raise BackendUnavailableError(f"transformers TTS model '{name}' cannot be loaded offline: "
                                          f"{str(e).splitlines()[0]}") from None
        self.model.eval()
        # VITS's flows are sensitive to precision: keep float32 (the model is small anyway)
        self.device, self.torch = device, torch
        self.rate = int(self.model.config.sampling_rate)
        lang = getattr(self.tok, "language", None)
        self.languages = {code(lang)} if lang else None

    def __call__(self, text: str, speed: float = 1.0, seed: int = 0) -> np.ndarray:
        torch = self.torch
        inputs = self.tok(text, return_tensors="pt").to(self.device)
        if inputs["input_ids"].shape[-1] == 0:
            return np.zeros(0, np.float32)
        self.model.config.speaking_rate = speed
        torch.manual_seed(seed)  # VITS samples noise: a fixed seed makes the output repeatable
        with torch.inference_mode():
            wav = self.model(**inputs).waveform[0]
        return wav.float().cpu().numpy()


@contextlib.contextmanager
def open_voice(ctx: ToolContext, voice: str | None, language: str = "en") -> Iterator[Voice]:
    name = resolve(voice, language)
    with ctx.runtime.use(f"transformers-tts:{name}", lambda d, t: _Vits(name, d, t),
                         memory_gb=BACKEND.gpu_memory_gb) as m:
        yield Voice(Path(name).name, m.rate, m.languages, m)
