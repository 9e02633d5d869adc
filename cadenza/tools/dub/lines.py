"""dub_lines: timed transcript segments grouped into dubbing lines.

A dubbing line is what the voice says in one go and what is fitted to one slot. Lines end at
sentence ends (Whisper's segments do not: they cut mid-sentence and join sentences), short
sentences close together share a line, and no line is longer than `max_chars` characters or
`max_seconds` seconds: a sentence over either bound is split at the longest pause between its
words (word timestamps), a comma or other clause mark weighing in, until every piece fits.
Segments without word timestamps are split into words with times spread by characters, so
their only split points are clause marks (then the middle).

Given the source sound (`audio`), each line's start is then moved to where the original voice clearly
begins near Whisper's first-word time, and an end that clearly runs past the voice is pulled in
(onsets.py; a line without a clear onset, as under loud music, keeps Whisper's times).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, Field

from ...errors import InputError
from ...media import Audio
from ..base import ToolContext, tool
from ..types import Range
from ..speech.segments import Segment, Word

_SENTENCE_END = re.compile(r"[.!?…。！？]+[\"”’»)\]]*$")
_CLAUSE_END = re.compile(r"[,;:，、；：]$|^[–—-]$")
CLAUSE_BONUS = 0.15  # seconds: a clause mark counts as this much extra pause when choosing a split


class DubLines(BaseModel):
    """What `dub_lines` returns: the lines, each a segment whose start and end are its slot."""

    lines: list[Segment] = Field(description="dubbing lines in order; start and end are each line's slot")


def _words_of(seg: Segment) -> list[Word]:
    """The segment's words: its own timestamps, else its text split at spaces, times spread by characters."""
    if seg.words:
        words = [Word(start=w.start, end=max(w.end, w.start), text=w.text.strip()) for w in seg.words if w.text.strip()]
        if words:
            return words
    tokens = seg.text.split()
    if not tokens:
        return []
    total = sum(len(t) for t in tokens) + len(tokens) - 1  # characters, spaces counted
    span, pos, out = seg.end - seg.start, 0, []
    for t in tokens:
        a = seg.start + span * pos / total
        pos += len(t)
        out.append(Word(start=a, end=seg.start + span * pos / total, text=t))
        pos += 1
    return out


def _text(words: list[Word]) -> str:
    return " ".join(w.text for w in words)


def _too_long(words: list[Word], max_chars: int, max_seconds: float) -> bool:
    return len(_text(words)) > max_chars or words[-1].end - words[0].start > max_seconds


def _split(words: list[Word], max_chars: int, max_seconds: float) -> list[list[Word]]:
    """Pieces of one sentence, each within the bounds (a single word over them stays whole)."""
    if len(words) < 2 or not _too_long(words, max_chars, max_seconds):
        return [words]
    n, total = len(words), len(_text(words))
    best, best_score = 1, float("-inf")
    for i in range(1, n):  # a cut between words[i-1] and words[i]
        left = len(_text(words[:i]))
        pause = max(0.0, words[i].start - words[i - 1].end)
        score = pause + (CLAUSE_BONUS if _CLAUSE_END.search(words[i - 1].text) else 0.0)
        score -= 0.01 * abs(left / total - 0.5)  # ties go to the middle
        if min(left, total - left) < total / 5:  # a stub piece is a last resort
            score -= 100.0
        if score > best_score:
            best, best_score = i, score
    return _split(words[:best], max_chars, max_seconds) + _split(words[best:], max_chars, max_seconds)


def group_lines(segments: list[Segment], max_chars: int = 180, max_seconds: float = 12.0,
                max_pause: float = 1.0) -> list[Segment]:
    """Dubbing lines from timed segments (a pure function; `dub_lines` is the tool).

    Lines end at sentence ends, and at any pause longer than `max_pause`; consecutive sentences share a line while the line stays within
    `max_chars` and `max_seconds` and the silence between them is at most `max_pause` seconds
    (a longer pause starts a new line, so the voice waits for it). Each line's start and end
    are those of its first and last word: its slot."""
    if max_chars < 1 or max_seconds <= 0:
        raise InputError("dub_lines: max_chars and max_seconds must be positive")
    words = [w for s in sorted(segments, key=lambda s: s.start) for w in _words_of(s)]
    sentences, cur = [], []
    for i, w in enumerate(words):
        cur.append(w)
        # a sentence ends at its mark, or at a pause longer than max_pause (an unpunctuated
        # transcript, as Whisper gives for some voices, must not run one line over its silences)
        if _SENTENCE_END.search(w.text) or (i + 1 < len(words) and words[i + 1].start - w.end > max_pause):
            sentences.append(cur)
            cur = []
    if cur:
        sentences.append(cur)
    pieces = [p for s in sentences for p in _split(s, max_chars, max_seconds)]
    lines: list[list[Word]] = []
    for p in pieces:
        if lines:
            last = lines[-1]
            joined = last + p
            if (p[0].start - last[-1].end <= max_pause and _SENTENCE_END.search(last[-1].text)
                    and not _too_long(joined, max_chars, max_seconds)):
                lines[-1] = joined
                continue
        lines.append(list(p))
    return [Segment(start=ln[0].start, end=max(ln[-1].end, ln[0].start), text=_text(ln), words=ln) for ln in lines]


@tool(version="2", plannable=False)  # a building block of the dubbing workflow (2: `audio`, the snapping)
def dub_lines(segments: list[Segment], ctx: ToolContext, max_chars: Annotated[int, Range(20, 2000)] = 180,
              max_seconds: Annotated[float, Range(1, 120)] = 12.0,
              max_pause: Annotated[float, Range(0, 30)] = 1.0, audio: Audio | None = None) -> DubLines:
    """Group timed transcript segments into dubbing lines that end at sentence ends, each within a length bound.

    Args:
        segments: timed segments, e.g. a transcript's (with word timestamps a long sentence splits at its longest pause)
        max_chars: no line has more characters than this
        max_seconds: no line lasts longer than this, in seconds
        max_pause: sentences further apart than this, in seconds, are never joined into one line
        audio: the sound the segments were transcribed from: each line's start is moved to where the voice
            clearly begins near it, and an end that clearly runs past the voice is pulled in (no clear
            onset, as under loud music: the transcript's time is kept)
    """
    lines = group_lines(segments, max_chars, max_seconds, max_pause)
    if audio is None or not lines:
        return DubLines(lines=lines)
    from ..speech.pcm import load_mono
    from .onsets import RATE, snap_lines

    snapped = snap_lines(lines, load_mono(audio, RATE), RATE)
    moved = [d for d in snapped.start_shifts if d is not None]
    cut = [d for d in snapped.end_shifts if d is not None]
    if moved or cut:
        ctx.note(f"dub_lines: {len(moved)} of {len(lines)} line starts moved to the voice's onset"
                 + (f" ({min(moved) * 1000:+.0f} to {max(moved) * 1000:+.0f} ms)" if moved else "")
                 + f", {len(cut)} ends pulled in to where the voice stops"
                 + (f" (up to {-min(cut) * 1000:.0f} ms)" if cut else ""))
    else:
        ctx.note("dub_lines: no clear voice onset near any line (background sound?): the transcript's times are kept")
    return DubLines(lines=snapped.lines)
