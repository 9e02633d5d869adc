"""ASR backend: openai-whisper (PyTorch), fp16 on GPU.

`whisper.load_model(name_or_path)`: a checkpoint file, or a model name found in whisper's
download folder (~/.cache/whisper). Nothing is downloaded here: a name that is not cached
is an error that says so. The model comes from the `model` argument, else
CADENZA_OPENAI_WHISPER_MODEL, else the largest cached checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...errors import BackendUnavailableError, InputError
from ..base import Backend, ToolContext
from .segments import Segment, Word

ORDER = ["large-v3-turbo", "turbo", "large-v3", "large-v2", "large", "medium", "medium.en", "small", "small.en",
         "base", "base.en", "tiny", "tiny.en"]


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "whisper"


def default_model() -> str | None:
    env = os.environ.get("CADENZA_OPENAI_WHISPER_MODEL")
    if env:
        return env
    for name in ORDER:
        if (cache_dir() / f"{name}.pt").exists():
            return name
    return None


def checkpoint_file(name: str) -> Path | None:
    """The .pt file `name` means (a path, or a model name cached in ~/.cache/whisper), if it exists."""
    for p in (Path(name).expanduser(), cache_dir() / f"{name}.pt"):
        if p.is_file():
            return p
    return None


def _check() -> str | None:
    model = default_model()
    if model is None:
        return "has no checkpoint here (set CADENZA_OPENAI_WHISPER_MODEL to a .pt file, or cache one in ~/.cache/whisper)"
    if checkpoint_file(model) is None:  # CADENZA_OPENAI_WHISPER_MODEL names something that is not here
        return f"checkpoint '{model}' is neither a file nor cached in {cache_dir()}"
    return None


BACKEND = Backend("openai-whisper", "OpenAI's Whisper in PyTorch, fp16 on GPU", requires=("whisper", "torch"),
                  device="gpu", gpu_memory_gb=2.0, extra="whisper", check=_check)


def _resolve(model: str | None) -> str:
    name = model or default_model()
    if name is None:
        raise BackendUnavailableError(f"openai-whisper {_check()}")
    found = checkpoint_file(name)
    if found is not None:
        return name if found == cache_dir() / f"{name}.pt" else str(found)  # whisper finds a cached name itself
    raise BackendUnavailableError(f"openai-whisper model '{name}' is neither a checkpoint file nor cached in "
                                  f"{cache_dir()} (this machine cannot download it)")


def transcribe(audio: np.ndarray, ctx: ToolContext, *, model: str | None, language: str | None,
               task: str, word_timestamps: bool) -> tuple[str, list[Segment]]:
    import whisper

    name = _resolve(model)

    def load(device: str, dtype: str):
        return whisper.load_model(name, device=device, download_root=str(cache_dir()))

    with ctx.runtime.use(f"openai-whisper:{name}", load, memory_gb=BACKEND.gpu_memory_gb) as m:
        fp16 = str(next(m.parameters()).device).startswith("cuda") and ctx.runtime.resolve_dtype(ctx.device) == "float16"
        lang = language.split("-")[0].lower() if language else None
        if not m.is_multilingual and (task == "translate" or (lang and lang != "en")):
            raise InputError(f"transcribe: this openai-whisper model is English-only; it cannot "
                             f"{'translate' if task == 'translate' else f'transcribe language {language!r}'}")
        result = ctx.runtime.call(lambda: m.transcribe(
            audio, task=task, language=lang, word_timestamps=word_timestamps, fp16=fp16, verbose=None,
            condition_on_previous_text=False), "openai-whisper transcription")
    segments = []
    for s in result["segments"]:
        words = [Word(start=float(w["start"]), end=float(max(w["end"], w["start"])), text=w["word"].strip())
                 for w in s.get("words", [])] if word_timestamps else None
        segments.append(Segment(start=float(s["start"]), end=float(max(s["end"], s["start"])),
                                text=s["text"].strip(), words=words))
    return result.get("language") or lang or "en", segments
