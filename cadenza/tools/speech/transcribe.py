"""transcribe: speech in audio or video to text, language and timed segments.

Backends, best first (on a machine without CUDA the GPU ones go last):
transformers (a Whisper pipeline, chunked and batched), openai-whisper, faster-whisper (embedded).
"""

from __future__ import annotations

from typing import Literal

from ...errors import InputError
from ...media import Audio, Video
from ..base import ToolContext, tool
from ..types import PathOrName
from . import asr_faster_whisper, asr_openai_whisper, asr_transformers
from .languages import WHISPER_CODES, whisper_code
from .pcm import ASR_RATE, is_silent, load_mono
from .segments import Transcript

ASR_BACKENDS = {m.BACKEND.name: m for m in (asr_transformers, asr_openai_whisper, asr_faster_whisper)}


@tool(backends=[m.BACKEND for m in ASR_BACKENDS.values()], version="1")
def transcribe(media: Audio | Video, ctx: ToolContext, language: str | None = None,
               task: Literal["transcribe", "translate"] = "transcribe", word_timestamps: bool = False,
               model: PathOrName | None = None) -> Transcript:
    """Transcribe speech in audio or video to text with timed segments (Whisper); 'translate' gives English text.

    Args:
        media: the audio, or a video whose sound track is read
        language: the spoken language as an ISO code such as 'en' or 'de' (default: detect it)
        task: 'transcribe' keeps the spoken language; 'translate' turns speech in any language into English text
        word_timestamps: also time each word
        model: a model for the backend (a name such as 'base', or a path); default: the best one installed
    """
    language = _whisper_language(language)
    audio = load_mono(media, ASR_RATE)
    if is_silent(audio):
        ctx.note(f"no speech: {media.path.name} is silent or empty; the transcript is empty")
        return Transcript(text="", language=language or "unknown", segments=[])
    backend = ASR_BACKENDS[ctx.backend or transcribe.get_backend().name]
    lang, segments = backend.transcribe(audio, ctx, model=model, language=language, task=task,
                                        word_timestamps=word_timestamps)
    segments = [s for s in segments if s.text]
    if not segments:
        ctx.note(f"no speech recognised in {media.path.name}")
    if task == "translate":  # the text is English now; say what was spoken
        ctx.note(f"translated from spoken {lang} to English")
        lang = "en"
    return Transcript(text=" ".join(s.text for s in segments), language=lang, segments=segments)


def _whisper_language(language: str | None) -> str | None:
    """The language as the backends take it (a Whisper code), None to detect it; an unknown one
    is bad input, refused before any model loads."""
    if language is None or not language.strip():
        return None
    found = whisper_code(language)
    if found is None:
        raise InputError(f"transcribe: unknown language {language!r}; Whisper knows: {', '.join(WHISPER_CODES)}")
    return found
