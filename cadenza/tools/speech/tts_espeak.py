"""TTS backend: espeak-ng (Debian package), robotic but with about a hundred languages.
Used by itself, and as the fallback for languages the neural voices do not speak."""

from __future__ import annotations

import contextlib
import functools
import io
import shutil
import subprocess
import wave
from typing import Iterator

import numpy as np

from ...errors import InputError, ToolError
from ..base import Backend, ToolContext
from .languages import code
from .tts_hibari import Voice


def _check() -> str | None:
    return None if shutil.which("espeak-ng") else "needs the espeak-ng program (apt-get install espeak-ng)"


BACKEND = Backend("espeak-ng", "espeak-ng: formant synthesis, robotic, about a hundred languages", check=_check)


@functools.cache
def _voice_table() -> dict[str, str]:
    """espeak-ng's voices: {language code as espeak names it: voice name}."""
    out = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, timeout=30).stdout
    table = {}
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 4:
            table[cols[1].lower()] = cols[1]
    return table


def available() -> bool:
    return _check() is None


def voices() -> list[str]:
    return sorted(_voice_table()) if available() else []


def espeak_voice(language: str) -> str | None:
    """The espeak-ng voice for a language ('de' -> 'de', 'en' -> 'en-us'), or None."""
    table = _voice_table()
    lang = language.lower().replace("_", "-")
    for cand in (lang, code(lang), "en-us" if code(lang) == "en" else None):
        if cand and cand in table:
            return table[cand]
    return None


def languages(voice: str | None) -> set[str]:
    return {code(v) for v in _voice_table()}


class _Espeak:
    rate = 22050

    def __init__(self, voice: str):
        self.voice = voice

    def __call__(self, text: str, speed: float = 1.0, seed: int = 0) -> np.ndarray:
        # text through stdin: no argument-length limit, and nothing read as an option
        r = subprocess.run(["espeak-ng", "--stdout", "-v", self.voice, "-s", str(int(round(160 * speed))), "--stdin"],
                           input=text.encode("utf-8"), capture_output=True, timeout=600)
        if r.returncode != 0:
            raise ToolError(f"espeak-ng failed: {r.stderr.decode(errors='replace').strip().splitlines()[0:1]}")
        with wave.open(io.BytesIO(r.stdout)) as w:
            self.rate = w.getframerate()
            return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768


@contextlib.contextmanager
def open_voice(ctx: ToolContext, voice: str | None, language: str = "en") -> Iterator[Voice]:
    name = voice or espeak_voice(language)
    if name is None or name.lower() not in _voice_table():
        raise InputError(f"speak: espeak-ng has no voice for {voice or language!r}")
    yield Voice(name, _Espeak.rate, {code(name)}, _Espeak(name))
