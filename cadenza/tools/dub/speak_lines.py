"""speak_lines: each dubbing line synthesized, fitted to its slot, and placed at its absolute start.

The fitting order is fit.py's (natural, share of the gap, speed-up with pitch kept, a shorter
rendering from the LLM at most twice, then a faded trim with a warning). Each line is placed at
round(start * rate) on one timeline, so rounding never accumulates. A per-line cache (cache.py)
keeps every synthesized and fitted line: a re-run after one edited line synthesizes that line alone,
and the result says which lines were synthesized and which came from the cache.
"""

from __future__ import annotations

import contextlib
import inspect
import wave
from typing import Annotated

import numpy as np
from pydantic import BaseModel, Field

from ...errors import CadenzaError, InputError
from ...media import Audio, Data
from ..base import ToolContext, tool
from ..speech import tts_transformers
from ..speech.languages import code, name as language_name
from ..speech.pcm import resample
from ..speech.segments import MAX_SECONDS, Segment
from ..speech.speak import TTS_BACKENDS, Speed, VoiceName, fallback_voice, sentence_chunks, voice_backend
from ..types import Range
from . import shorten as _shorten
from .cache import LineCache, line_key
from .fit import MAX_SPEEDUP, MIN_SPEED, fit_to_slot, place, seconds
from .report import LineReport, dub_lines_json, parse_dub_lines

LINE_VERSION = "1"  # bump when the audio of a line changes for the same inputs (part of every line's key)
TOOL_VERSION = "2"  # bump when the step's outputs change (2: the report file)
MAX_SHORTEN_TRIES = 2
JOIN_S = 0.12  # the pause between two sentences of one line


class DubbedSpeech(BaseModel):
    """What `speak_lines` returns: the speech track, and what was done to each line."""

    speech: Audio = Field(description="the dubbed speech, each line at its slot's start (WAV)")
    lines: list[LineReport] = Field(description="per line: slot, texts, lengths, speed, action, warnings")
    synthesized: list[int] = Field(description="indices of the lines synthesized in this run")
    cached: list[int] = Field(description="indices of the lines taken from the per-line cache")
    segments: list[Segment] = Field(description="what was spoken, timed by each line's slot (for subtitles)")
    report: Data = Field(description="dub_lines.json: the lines as a person reviews and edits them (--lines)")


class _Voices:
    """The voices a run needs, opened on first use (a run that is all cache hits loads no model)."""

    def __init__(self, ctx: ToolContext, stack: contextlib.ExitStack, language: str, fallback: bool):
        self.ctx, self.stack, self.lang, self.fallback = ctx, stack, language, fallback
        self.backend = ctx.backend or speak_lines.get_backend().name
        self.open: dict[str | None, object] = {}
        self.noted: set[str] = set()

    def resolve(self, voice: str | None) -> tuple[str, str | None, object]:
        """(backend, voice, module) that will speak this language: when the voice lacks it, the
        same choice `speak` makes (the multilingual voice where it speaks the language well, else
        espeak-ng), noted once."""
        backend = voice_backend(voice, self.backend)  # a voice named is spoken by the backend that has it
        module = TTS_BACKENDS[backend]
        langs = module.languages(voice) if module is not tts_transformers else None
        if langs is None or self.lang in langs:
            return backend, voice, module
        other = fallback_voice(module, voice, backend, self.lang) if self.fallback else None
        if other is None:
            raise InputError(f"speak_lines: voice '{voice or module.DEFAULT_VOICE}' ({backend}) has no "
                             f"{language_name(self.lang)} ({self.lang}); it speaks {', '.join(sorted(langs))}")
        module, voice, backend, note = other
        if note not in self.noted:
            self.noted.add(note)
            self.ctx.note(note)
        return backend, voice, module

    def get(self, voice: str | None):
        backend, voice, module = self.resolve(voice)
        if (backend, voice) not in self.open:
            takes_language = "language" in inspect.signature(module.open_voice).parameters
            opener = module.open_voice(self.ctx, voice, self.lang) if takes_language \
                else module.open_voice(self.ctx, voice)
            self.open[(backend, voice)] = self.stack.enter_context(opener)
        return backend, self.open[(backend, voice)]


def _synth(ctx: ToolContext, backend: str, v, text: str, pace: float) -> tuple[np.ndarray, int]:
    parts = []
    for chunk in sentence_chunks(text):
        ctx.check_cancelled()
        x = ctx.runtime.call(lambda c=chunk: v.synth(c, pace), f"{backend} speech")
        x = resample(np.asarray(x, np.float32).reshape(-1), getattr(v.model, "rate", v.rate), v.rate)
        if parts:
            parts.append(np.zeros(int(v.rate * JOIN_S), np.float32))
        parts.append(x)
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), v.rate


@tool(backends=[m.BACKEND for m in TTS_BACKENDS.values()], version=TOOL_VERSION, plannable=False)  # dubbing building block
def speak_lines(lines: list[Segment], language: str, ctx: ToolContext, voice: VoiceName | None = None,
                speed: Speed = 1.0, max_speedup: Annotated[float, Range(1, 2)] = MAX_SPEEDUP,
                share_of_gap: Annotated[float, Range(0, 1)] = 0.5, min_speed: Annotated[float, Range(0.5, 1)] = MIN_SPEED,
                duration: Annotated[float, Range(0, MAX_SECONDS)] | None = None,
                source_lines: list[Segment] | None = None, voices: list[str | None] | None = None,
                speeds: list[Annotated[float, Range(0, 2)]] | None = None,
                shorten: bool = True, fallback: bool = True, edits: str | None = None) -> DubbedSpeech:
    """Dub timed lines: speak each, fit it to its slot (gap, speed-up with pitch kept, a shorter rendering, a faded trim) and place it at its start time.

    Args:
        lines: the (translated) lines; each one's start and end are its slot
        language: the lines' language, e.g. 'de'
        voice: the voice for every line (a backend voice name)
        speed: the voice's pace as it synthesizes (1.0 normal)
        max_speedup: a line is never sped up beyond this factor to fit (pitch kept)
        share_of_gap: at most this share of the silence before the next line may be used
        min_speed: a speed set for a line is never below this (a short line is never slowed)
        duration: the track's length in seconds (default: to the end of the last line)
        source_lines: the source-language lines, for the report
        voices: per line, a voice name or None for `voice`
        speeds: per line, a fixed speed factor, or 0 to fit automatically
        shorten: ask the configured LLM for a shorter rendering when a line is too long even at max_speedup
        fallback: speak languages the chosen voice lacks with espeak-ng when it is installed
        edits: the text of an edited dub_lines.json of an earlier run: its translations, and any voice or
            speed set per line, replace the lines' (it must match source_lines, or lines when not given)
    """
    if edits is not None and edits.strip():
        edited = parse_dub_lines(edits, source_lines or lines)
        lines, voices, speeds = edited.lines, voices or edited.voices, speeds or edited.speeds
    n = len(lines)
    for what, given in (("source_lines", source_lines), ("voices", voices), ("speeds", speeds)):
        if given is not None and len(given) != n:
            raise InputError(f"speak_lines: {len(given)} {what} for {n} lines")
    if voices and any(v and ("/" in v or "\\" in v or v.endswith(".onnx")) for v in voices):
        raise InputError("speak_lines: per-line voices must be voice names, not paths (give a path as `voice`)")
    lang = code(language)
    why_no_llm = _shorten.llm_unavailable() if shorten else "shortening is turned off"
    cache = LineCache()
    reports, placed, synthesized, cached = [], [], [], []
    rate: int | None = None
    with contextlib.ExitStack() as stack:
        pool = _Voices(ctx, stack, lang, fallback)
        for i, line in enumerate(lines):
            ctx.check_cancelled()
            text = " ".join(line.text.split())
            slot = line.end - line.start
            after = lines[i + 1].start if i + 1 < n else duration
            gap = max(0.0, after - line.end) if after is not None else 0.0
            chosen = (voices[i] if voices else None) or voice
            fixed = speeds[i] if speeds and speeds[i] else None  # 0: fit automatically
            report = LineReport(index=i, start=line.start, end=line.end, translation=text,
                                source_text=source_lines[i].text if source_lines else None,
                                voice=voices[i] if voices else None, speed=fixed)
            if not text:
                report.action = "empty"
                reports.append(report)
                continue
            backend, voice_name, module = pool.resolve(chosen)
            voice_name = voice_name or getattr(module, "DEFAULT_VOICE", "") or ""
            base = dict(backend=backend, voice=voice_name, language=lang, pace=float(speed), version=LINE_VERSION)
            fit_key = line_key(kind="fit", text=text, slot=slot, gap=gap, share=float(share_of_gap),
                               max_speedup=float(max_speedup), min_speed=float(min_speed),
                               fixed=None if fixed is None else float(fixed), shorten=why_no_llm is None, **base)
            hit = cache.get_fit(fit_key)
            if hit is not None:
                x, r, meta = hit
                report = report.model_copy(update={**meta, "cached": True})
                cached.append(i)
            else:
                did_synth = [False]

                def raw(t: str) -> tuple[np.ndarray, int]:
                    key = line_key(kind="raw", text=t, **base)
                    got = cache.get_audio("raw", key)
                    if got is None:
                        b, v = pool.get(chosen)
                        got = _synth(ctx, b, v, t, speed)
                        cache.put_audio("raw", key, *got)
                        did_synth[0] = True
                    return got

                x, r, meta = _fit_line(text, raw, r_slot=slot, gap=gap, lang=lang, why_no_llm=why_no_llm,
                                       share_of_gap=share_of_gap, max_speedup=max_speedup, min_speed=min_speed,
                                       fixed=fixed)
                meta["voice_used"] = voice_name
                cache.put_fit(fit_key, x, r, meta)
                report = report.model_copy(update=meta)
                (synthesized if did_synth[0] else cached).append(i)
            if rate is None:
                rate = r
            if r != rate:
                x = resample(x, r, rate)
            placed.append((line.start, x))
            reports.append(report)
    rate = rate or 24000
    track = place(placed, rate, duration)
    if not placed:  # a clip with no speech (or every line blanked): a silent track, so the dub still ends well
        ctx.note("speak_lines: no line has text to speak (no speech in the source?): the speech track is silent")
        track = np.zeros(max(track.size, rate), np.float32)
    path = ctx.output_path(".wav")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.clip(np.rint(track * 32767), -32768, 32767).astype("<i2").tobytes())
    shown = ", ".join(map(str, synthesized[:20])) + (", ..." if len(synthesized) > 20 else "")
    ctx.note(f"speak_lines: {len(synthesized)} of {n} lines synthesized" + (f" (lines {shown})" if synthesized else "")
             + f", {len(cached)} from the line cache")
    trimmed = [r.index for r in reports if r.action == "trim"]
    if trimmed:
        ctx.note(f"speak_lines: {len(trimmed)} line(s) too long for their slot were cut: {trimmed[:20]}")
    spoken = [Segment(start=r.start, end=r.end, text=r.spoken_text or r.translation) for r in reports if
              (r.spoken_text or r.translation).strip()]
    report_path = ctx.output_path(".json")
    report_path.write_text(dub_lines_json(reports, lang), encoding="utf-8")
    return DubbedSpeech(speech=Audio.from_path(path), lines=reports, synthesized=synthesized, cached=cached,
                        segments=spoken, report=Data.from_path(report_path))


def _fit_line(text: str, raw, *, r_slot: float, gap: float, lang: str, why_no_llm: str | None, share_of_gap: float,
              max_speedup: float, min_speed: float, fixed: float | None) -> tuple[np.ndarray, int, dict]:
    """One line through the fitting order; returns (samples, rate, the report's fields)."""
    x, rate = raw(text)
    args = dict(share_of_gap=share_of_gap, max_speedup=max_speedup, min_speed=min_speed, fixed_speed=fixed)
    can_shorten = why_no_llm is None and fixed is None
    fit = fit_to_slot(x, rate, r_slot, gap, allow_trim=not can_shorten, **args)
    spoken, tries, notes = text, 0, []
    while fit.action == "too_long":
        budget = r_slot + share_of_gap * gap
        if tries >= MAX_SHORTEN_TRIES or not can_shorten:
            fit = fit_to_slot(x, rate, r_slot, gap, **args)
            break
        tries += 1
        target = max(1, int(len(spoken) * budget * max_speedup / max(fit.natural_seconds, 1e-3) * 0.9))
        try:
            new = _shorten.shorter(spoken, target, lang)
        except CadenzaError as e:  # the LLM failed: say so, and go on to the trim
            notes.append(f"could not ask for a shorter rendering: {str(e).splitlines()[0]}")
            can_shorten = False
            continue
        if new is None:
            notes.append(f"shorter rendering {tries}: the LLM gave nothing shorter")
            continue
        spoken = new
        x, rate = raw(spoken)
        fit = fit_to_slot(x, rate, r_slot, gap, allow_trim=tries >= MAX_SHORTEN_TRIES, **args)
    if fit.action == "trim" and why_no_llm is not None and fixed is None:
        notes.append(f"not shortened: {why_no_llm}")
    action = fit.action
    if spoken != text and action in ("natural", "gap", "speedup"):
        action = "shorten"
    meta = dict(spoken_text=spoken, synthesized_seconds=round(fit.natural_seconds, 3),
                fitted_seconds=round(seconds(fit.samples, rate), 3), speed_factor=round(fit.speed, 3),
                action=action, warnings=notes + fit.warnings)
    if spoken != text:
        meta["warnings"].insert(0, f"spoken shorter ({tries} tries): {spoken!r}")
    return fit.samples, rate, meta
