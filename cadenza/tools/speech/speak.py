"""speak: text to speech. Long texts are spoken a sentence chunk at a time and streamed to the
WAV file, so memory stays flat however long the text; joins get short fades and a pause."""

from __future__ import annotations

import re
from typing import Annotated, Iterator

from ...errors import InputError
from ...media import Audio
from ..base import ToolContext, tool
from ..types import LocalPath, Range
from . import tts_espeak, tts_hibari, tts_kokoro, tts_piper, tts_transformers
from .languages import code, name as language_name
from .pcm import WavWriter, resample

TTS_BACKENDS = {"hibari": tts_hibari, "piper": tts_piper, "transformers": tts_transformers,
                "kokoro": tts_kokoro, "espeak-ng": tts_espeak}
VoiceName = Annotated[str, LocalPath(sidecars=(".json",))]  # a name, or a voice file (piper: v.onnx and v.onnx.json)
Speed = Annotated[float, Range(0.25, 4)]  # pace: a quarter to four times normal; beyond, speech is unintelligible
MAX_CHUNK = 300  # characters: a sentence longer than this is cut at clause marks, then at spaces

_SENTENCE = re.compile(r"[^.!?…\n]+(?:[.!?…]+[\"”’)\]]*|\n|$)")


def sentence_chunks(text: str, limit: int = MAX_CHUNK) -> Iterator[str]:
    """Sentences, in order, none longer than `limit` characters (lazily: the text may be huge)."""
    for m in _SENTENCE.finditer(text):
        s = " ".join(m.group(0).split())
        if not s:
            continue
        while len(s) > limit:
            cut = max(s.rfind(p, 0, limit) for p in (", ", "; ", ": ", " – ", " — "))
            cut = cut + 1 if cut > limit // 3 else s.rfind(" ", 0, limit)
            if cut <= 0:
                cut = limit
            yield s[:cut].strip()
            s = s[cut:].strip()
        if s:
            yield s


def voices_for_language(language: str) -> list[tuple[str, str, str]]:
    """The voices that can speak `language` here, best first: (backend, voice, quality note).
    Only backends usable on this machine; the multilingual voice only where it measured well."""
    lang = code(language)
    out = []
    for backend, module in (("hibari", tts_hibari), ("piper", tts_piper)):
        if module.BACKEND.unavailable_reason() is None and lang in module.languages(None):
            out.append((backend, module.DEFAULT_VOICE, "natural neural voice (English)"))
    if tts_kokoro.BACKEND.unavailable_reason() is None and lang in tts_kokoro.languages(None):
        wer = tts_kokoro.good_languages()[lang]
        out.append(("kokoro", tts_kokoro.DEFAULT_VOICE, f"neural multilingual voice, Japanese accent "
                                                        f"(Whisper reads it back at {wer:.0%} WER)"))
    if tts_espeak.available() and tts_espeak.espeak_voice(lang):
        out.append(("espeak-ng", tts_espeak.espeak_voice(lang), "robotic formant voice, intelligible"))
    return out


def voice_backend(voice: str | None, backend: str) -> str:
    """The backend that has `voice`: `backend` when it has it (or no voice is named, or the voice is a
    file, or the backend takes model names), else the first usable backend with a voice of that name,
    so `voice: jm_kumo` is spoken by kokoro and `voice: es` by espeak-ng whichever backend was best."""
    if not voice or "/" in voice or "\\" in voice or voice.endswith(".onnx") or backend == "transformers":
        return backend

    def has(name: str) -> bool:
        module = TTS_BACKENDS[name]
        return (module is not tts_transformers and module.BACKEND.unavailable_reason() is None
                and voice in module.voices())

    if has(backend):
        return backend
    return next((name for name in TTS_BACKENDS if name != backend and has(name)), backend)


def fallback_voice(module, voice: str | None, backend: str, lang: str):
    """For a language the chosen voice cannot speak: (module, voice, backend, note) of the multilingual
    voice where it speaks the language well, else of espeak-ng; the note says which voice and why.
    None when neither can speak it. (speak and the dubbing tools share this choice.)"""
    langs = module.languages(voice)
    lacks = (f"{backend} '{voice or module.DEFAULT_VOICE}' speaks "
             f"{'/'.join(language_name(x) for x in sorted(langs)) or 'none of it'} only")
    mine = voice if voice in tts_kokoro.VOICES else None  # a kokoro voice asked for by name is kept
    if module is not tts_kokoro and tts_kokoro.BACKEND.unavailable_reason() is None \
            and lang in tts_kokoro.languages(mine):
        return tts_kokoro, mine, "kokoro", (f"spoke {language_name(lang)} with kokoro voice "
                                            f"'{mine or tts_kokoro.DEFAULT_VOICE}' (multilingual; {lacks})")
    if tts_espeak.available() and tts_espeak.espeak_voice(lang):
        why = tts_kokoro.BACKEND.unavailable_reason()
        measured = tts_kokoro.measured_wer(lang, mine)
        kokoro = ("" if module is tts_kokoro else
                  f"; the multilingual kokoro voice is not installed ({why})" if why else
                  f"; the multilingual kokoro voice '{mine or tts_kokoro.DEFAULT_VOICE}' speaks it badly "
                  f"({measured:.0%} WER)" if measured is not None else
                  "; the multilingual kokoro voice does not speak it")
        return tts_espeak, None, "espeak-ng", (f"spoke {language_name(lang)} with espeak-ng voice "
                                               f"'{tts_espeak.espeak_voice(lang)}' (robotic; {lacks}{kokoro})")
    return None


@tool(backends=[m.BACKEND for m in TTS_BACKENDS.values()], version="2")
def speak(text: str, ctx: ToolContext, voice: VoiceName | None = None, speed: Speed = 1.0, language: str = "en",
          fallback: bool = True) -> Audio:
    """Read text aloud (text to speech) into a WAV file.

    Args:
        text: what to say; any length (it is spoken sentence by sentence)
        voice: a voice of the backend (hibari: 'heart'; piper: 'joe'; kokoro: 'jm_kumo'; espeak-ng: a language voice)
        speed: 1.0 is normal pace, 0.5 slower, 2.0 faster
        language: the text's language, e.g. 'en' or 'de'
        fallback: speak languages the chosen voice lacks with the multilingual voice, else espeak-ng
    """
    if not text or not text.strip():
        raise InputError("speak: the text is empty")
    lang = code(language)
    backend = voice_backend(voice, ctx.backend or speak.get_backend().name)
    module = TTS_BACKENDS[backend]
    if backend != "espeak-ng":
        langs = module.languages(voice) if module is not tts_transformers else None
        if langs is not None and lang not in langs:
            who = f"voice '{voice or module.DEFAULT_VOICE}' ({backend})"
            chosen = fallback_voice(module, voice, backend, lang) if fallback else None
            if chosen is None:
                raise InputError(f"speak: {who} has no {language_name(lang)} ({lang}); it speaks "
                                 f"{', '.join(sorted(langs))}" + ("" if tts_espeak.available() else
                                                                  " (pip install 'cadenza[speech]' for a robotic espeak-ng fallback)"))
            module, voice, backend, note = chosen
            ctx.note(note)
    opener = module.open_voice(ctx, voice, lang) if module in (tts_espeak, tts_transformers, tts_kokoro) \
        else module.open_voice(ctx, voice)
    path = ctx.output_path(".wav")
    with opener as v:
        if v.languages is not None and lang not in v.languages:
            raise InputError(f"speak: voice '{v.name}' ({backend}) has no {language_name(lang)} ({lang}); it speaks "
                             f"{', '.join(sorted(v.languages))}")
        with WavWriter(path, v.rate) as out:
            for chunk in sentence_chunks(text):
                ctx.check_cancelled()
                samples = ctx.runtime.call(lambda c=chunk: v.synth(c, speed), f"{backend} speech")
                rate = getattr(v.model, "rate", v.rate)  # espeak-ng reports its rate per call
                out.write(resample(samples, rate, v.rate))
    if out.samples == 0:
        path.unlink(missing_ok=True)
        raise InputError("speak: the text has nothing speakable in it")
    return Audio.from_path(path)
