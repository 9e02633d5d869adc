"""TTS backend: espeak-ng, robotic but with about a hundred languages. Used by itself, and as the
fallback for languages the neural voices do not speak.

Two ways to run the same engine: the libespeak-ng that the `espeakng-loader` wheel bundles with its
data (cadenza[speech]; driven through ctypes, no system install), else the `espeak-ng` program."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import re
import shutil
import subprocess
import threading
import wave
from typing import Iterator

import numpy as np

from ...errors import InputError, ToolError
from ..base import Backend, ToolContext
from .languages import code
from .tts_hibari import Voice

_AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: samples go to the callback, espeak_Synth returns when done
_INITIALIZE_DONT_EXIT = 0x8000  # report a bad data path instead of exiting the process
_CHARS_UTF8, _ENDPAUSE = 1, 0x1000  # espeak_Synth flags (the program adds the end pause too)
_RATE = 1  # espeak_PARAMETER espeakRATE, words a minute
_POS_CHARACTER = 1  # espeak_POSITION_TYPE (start at character 0)
_PHONEMES_IPA_TIED = 0x02 | 0x80 | (ord("^") << 8)  # espeak_TextToPhonemes: IPA, '^' tying multi-letter phonemes
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _VoiceInfo(ctypes.Structure):  # espeak_VOICE
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_void_p), ("identifier", ctypes.c_char_p),
                ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte),
                ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


class _Library:
    """libespeak-ng in this process. Its state is global (one voice, one callback), so every
    synthesis holds a lock."""

    def __init__(self, path: str, data: str):
        lib = ctypes.CDLL(path)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_VoiceInfo))
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), _INITIALIZE_DONT_EXIT)
        if self.rate <= 0:
            raise OSError(f"espeak_Initialize failed with the data at {data}")
        self.lib, self.lock, self.chunks = lib, threading.Lock(), []
        self.callback = _CALLBACK(self._collect)  # kept on self: the library holds only a raw pointer
        lib.espeak_SetSynthCallback(self.callback)
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p

    def _collect(self, wav, n, events) -> int:
        if n > 0 and wav:
            self.chunks.append(ctypes.string_at(wav, 2 * n))
        return 0  # go on

    def voice_languages(self) -> list[list[tuple[str, int]]]:
        """Each voice's (language, priority) pairs, its own language first, as `espeak-ng --voices`
        lists them (variants and mbrola voices left out)."""
        out, voices = [], self.lib.espeak_ListVoices(None)
        for i in range(10_000):
            if not voices[i]:
                break
            p, langs = voices[i].contents.languages, []  # (priority byte, NUL-terminated name) pairs, then 0
            while p and (prio := ctypes.string_at(p, 1)[0]) != 0:
                name = ctypes.string_at(p + 1)
                langs.append((name.decode(), prio))
                p += len(name) + 2
            if langs:
                out.append(langs)
        return out

    def _set_voice(self, voice: str) -> None:
        """Select a voice by name, else by the language it is listed under ('fr-fr' is the language
        of the voice named 'French (France)', file 'roa/fr', which SetVoiceByName does not find by
        'fr-fr'). Call with the lock held."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) == 0:
            return
        voices = self.lib.espeak_ListVoices(None)
        for i in range(10_000):
            if not voices[i]:
                break
            info = voices[i].contents
            first = ctypes.string_at(info.languages + 1).decode() if info.languages else ""
            if first.lower() == voice.lower() and self.lib.espeak_SetVoiceByName(info.identifier) == 0:
                return
        raise ToolError(f"espeak-ng has no voice {voice!r}")

    def phonemes(self, text: str, voice: str) -> str:
        """`text` in IPA as `voice` pronounces it, with '^' tying the letters of one phoneme
        ('t^ʃ'), stress marks kept; clauses joined by spaces, punctuation dropped."""
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        ptr, out = ctypes.c_void_p(ctypes.addressof(buf)), []
        with self.lock:
            self._set_voice(voice)
            while ptr.value:  # one clause per call; the library moves ptr on, to NULL at the end
                ps = self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, _PHONEMES_IPA_TIED)
                if ps:
                    out.append(ps.decode("utf-8", errors="replace").strip())
        return " ".join(p for p in out if p)

    def synth(self, text: str, voice: str, wpm: int) -> np.ndarray:
        data = text.encode("utf-8")
        with self.lock:
            self.chunks = []
            self._set_voice(voice)
            self.lib.espeak_SetParameter(_RATE, wpm, 0)
            err = self.lib.espeak_Synth(ctypes.create_string_buffer(data), len(data) + 1, 0, _POS_CHARACTER, 0,
                                        _CHARS_UTF8 | _ENDPAUSE, None, None)
            pcm, self.chunks = b"".join(self.chunks), []
        if err != 0:
            raise ToolError(f"espeak-ng failed (espeak_Synth error {err:#x})")
        return np.frombuffer(pcm, "<i2").astype(np.float32) / 32768


@functools.cache
def _library() -> _Library | None:
    try:
        import espeakng_loader

        return _Library(espeakng_loader.get_library_path(), espeakng_loader.get_data_path())
    except (ImportError, OSError, RuntimeError, AttributeError):
        return None


def _check() -> str | None:
    # The bundled library first: the same engine and data version on every machine, and no process
    # per sentence; the program only where the wheel is not installed (or cannot load here).
    if _library() is not None or shutil.which("espeak-ng"):
        return None
    return "needs espeakng-loader (pip install 'cadenza[speech]') or the espeak-ng program"


BACKEND = Backend("espeak-ng", "espeak-ng: formant synthesis, robotic, about a hundred languages", check=_check)


@functools.cache
def _voice_list() -> list[list[tuple[str, int]]]:
    """espeak-ng's voices, each as its (language, priority) pairs, the voice's own language first."""
    lib = _library()
    if lib is not None:
        return lib.voice_languages()
    if not shutil.which("espeak-ng"):
        return []
    out = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, timeout=30).stdout
    voices = []
    for line in out.splitlines()[1:]:  # "Pty Language Age/Gender VoiceName File Other Languages"
        cols = line.split()
        if len(cols) >= 4 and cols[0].isdigit():
            others = re.findall(r"\((\S+) (\d+)\)", line)
            voices.append([(cols[1], int(cols[0]))] + [(lang, int(prio)) for lang, prio in others])
    return voices


@functools.cache
def _voice_table() -> dict[str, str]:
    """espeak-ng's voices: {language code as espeak names it: voice name}."""
    return {langs[0][0].lower(): langs[0][0] for langs in _voice_list()}


@functools.cache
def _other_languages() -> dict[str, str]:
    """{a language a voice also speaks: the voice that ranks it best}, e.g. 'fr' -> 'fr-fr', 'zh' -> 'cmn'."""
    best: dict[str, tuple[int, str]] = {}
    for langs in _voice_list():
        for lang, prio in langs[1:]:
            if lang.lower() not in best or prio < best[lang.lower()][0]:
                best[lang.lower()] = (prio, langs[0][0])
    return {lang: voice for lang, (_, voice) in best.items()}


def available() -> bool:
    return _check() is None


def phonemes(text: str, language: str) -> str:
    """`text` as IPA phonemes in `language`'s espeak-ng voice (the bundled library only: the
    multilingual neural voice reads these)."""
    lib, voice = _library(), espeak_voice(language)
    if lib is None:
        raise ToolError("espeak-ng phonemes need espeakng-loader (pip install 'cadenza[speech]')")
    if voice is None:
        raise InputError(f"espeak-ng has no voice for {language!r}")
    return lib.phonemes(text, voice)


def voices() -> list[str]:
    return sorted(_voice_table()) if available() else []


def espeak_voice(language: str) -> str | None:
    """The espeak-ng voice for a language ('de' -> 'de', 'en' -> 'en-us', 'fr' -> 'fr-fr'), or None."""
    table, others = _voice_table(), _other_languages()
    lang = language.lower().replace("_", "-")
    for cand in (lang, code(lang), "en-us" if code(lang) == "en" else None):
        if cand and cand in table:
            return table[cand]
    for cand in (lang, code(lang)):
        if cand in others:
            return others[cand]
    return None


def languages(voice: str | None) -> set[str]:
    return {code(v) for v in _voice_table()}


def synthesize(text: str, voice: str, speed: float = 1.0) -> tuple[np.ndarray, int]:
    """`text` spoken by the espeak-ng voice `voice` at `speed` (1.0 = 160 words a minute):
    float samples in [-1, 1) and their rate (22050 Hz)."""
    wpm = int(round(160 * speed))
    lib = _library()
    if lib is not None:
        return lib.synth(text, voice, wpm), lib.rate
    if not shutil.which("espeak-ng"):
        raise ToolError(f"espeak-ng: {_check()}")
    # text through stdin: no argument-length limit, and nothing read as an option
    r = subprocess.run(["espeak-ng", "--stdout", "-v", voice, "-s", str(wpm), "--stdin"],
                       input=text.encode("utf-8"), capture_output=True, timeout=600)
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace").strip().splitlines()
        raise ToolError(f"espeak-ng failed: {err[0] if err else f'exit status {r.returncode}'}")
    with wave.open(io.BytesIO(r.stdout)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768, w.getframerate()


class _Espeak:
    rate = 22050

    def __init__(self, voice: str):
        self.voice = voice

    def __call__(self, text: str, speed: float = 1.0, seed: int = 0) -> np.ndarray:
        samples, self.rate = synthesize(text, self.voice, speed)
        return samples


@contextlib.contextmanager
def open_voice(ctx: ToolContext, voice: str | None, language: str = "en") -> Iterator[Voice]:
    name = voice or espeak_voice(language)
    if name is None or name.lower() not in _voice_table():
        raise InputError(f"speak: espeak-ng has no voice for {voice or language!r}")
    yield Voice(name, _Espeak.rate, {code(name)}, _Espeak(name))
