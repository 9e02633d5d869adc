"""place_descriptions: scene descriptions placed in the pauses of the dialogue, for an audio-description
track (the `describe_video` workflow speaks them with speak_lines and mixes them under the sound).

1. The gaps are the complement of the speech within [0, duration], each shortened by `margin` on a
   side that touches speech (none at the video's ends: there is nothing to keep clear of there).
2. Descriptions are taken in scene order. Each starts at the earliest free moment at or after its
   scene's start with at least `min_gap` seconds free after it inside one gap: a gap that starts
   inside the scene (or runs into it) first, else the nearest one after, at most LATE_S after the
   scene's end; a description never starts before its scene (it would describe a picture not yet
   shown). None found: it is dropped with a note.
3. Each description may use its gap up to where the next placed description starts. Its text is
   fitted to that span at `words_per_second`: whole sentences kept first, then the first sentence cut
   at a clause mark, then at a word; never empty.
4. Its slot (the Segment's start and end, as speak_lines reads them) is as long as the fitted text
   needs at that pace plus SLACK, within the span, so the original sound is ducked only while a
   description is spoken and the cue shows only then.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BaseModel, Field

from ..base import ToolContext, tool
from ..speech.segments import MAX_SECONDS, Segment
from ..types import Range

LATE_S = 3.0  # a description spoken later than this after its scene has ended describes the wrong picture
SLACK = 1.25  # a slot is this much longer than the text needs at words_per_second (a slower voice)
_EPS = 1e-6
_SENTENCE = re.compile(r"(?<=[.!?…])\s+|(?<=[.!?…][\"”’»)\]])\s+")
_CLAUSE = re.compile(r"[,;:–—]$")


class DescriptionLines(BaseModel):
    """What `place_descriptions` returns: the descriptions as timed lines, in time order."""

    lines: list[Segment] = Field(description="each placed description; start and end are the slot it is spoken in")
    scenes: list[int] = Field(description="per line, the index of the description (scene) it came from")
    shortened: list[int] = Field(description="indices of the lines whose text was shortened to fit their gap")
    dropped: list[str] = Field(description="a note per description left out (no pause in the dialogue near its scene)")
    gaps: list[Segment] = Field(description="the pauses in the dialogue descriptions may take (text empty)")


def dialogue_gaps(speech: list[Segment], duration: float, margin: float) -> list[tuple[float, float]]:
    """The pauses in `speech` within [0, duration], kept `margin` clear of speech on each side."""
    spoken: list[list[float]] = []
    for s in sorted((s for s in speech if s.end > s.start), key=lambda s: s.start):
        if spoken and s.start <= spoken[-1][1]:
            spoken[-1][1] = max(spoken[-1][1], s.end)
        else:
            spoken.append([s.start, s.end])
    gaps, t = [], 0.0
    for a, b in spoken:
        lo = t + margin if t > 0 else 0.0
        gaps.append((lo, a - margin))
        t = max(t, b)
    gaps.append((t + margin if t > 0 else 0.0, duration))
    return [(a, min(b, duration)) for a, b in gaps if min(b, duration) - a > _EPS]


def words_of(text: str) -> list[str]:
    return text.split()


def fit_text(text: str, max_words: int) -> tuple[str, bool]:
    """`text` in at most `max_words` words (at least one): whole sentences from the start, else the
    first sentence up to a clause mark, else its first words. Returns (text, shortened)."""
    text = " ".join(text.split())
    max_words = max(1, max_words)
    if len(words_of(text)) <= max_words:
        return text, False
    kept: list[str] = []
    for sentence in _SENTENCE.split(text):
        if len(words_of(" ".join(kept + [sentence]))) > max_words:
            break
        kept.append(sentence)
    if kept:
        return " ".join(kept), True
    first = words_of(_SENTENCE.split(text)[0])[:max_words]
    # the longest run of whole clauses that fits; else as many words as fit
    cut = max((i for i, w in enumerate(first, 1) if _CLAUSE.search(w)), default=0)
    head = first[:cut] if cut else first
    return _closed(" ".join(head)), True


def _closed(text: str) -> str:
    """A cut text ended as a sentence (the voice then falls at its end): trailing marks dropped, a period added."""
    text = text.rstrip(" ,;:–—-")
    return text if text.endswith((".", "!", "?", "…")) else text + "."


@tool(plannable=False, version="1")  # a building block of the describe_video workflow
def place_descriptions(descriptions: list[Segment], speech: list[Segment], ctx: ToolContext,
                       duration: Annotated[float, Range(0, MAX_SECONDS)] | None = None,
                       min_gap: Annotated[float, Range(0.2, 30)] = 1.2,
                       words_per_second: Annotated[float, Range(0.5, 6)] = 2.5,
                       margin: Annotated[float, Range(0, 2)] = 0.25) -> DescriptionLines:
    """Place scene descriptions in the pauses of the dialogue, each shortened to fit its pause, for an audio-description track.

    Args:
        descriptions: each scene's description, timed by its scene (caption_video's descriptions)
        speech: the dialogue, as timed segments (transcribe's segments, caption_video's speech)
        duration: the video's length in seconds (default: the end of the last description or speech)
        min_gap: a description needs a pause of at least this many seconds; one with none near its scene is dropped
        words_per_second: the speaking pace the text is fitted to its pause at
        margin: seconds kept clear of the dialogue before and after each description
    """
    end = max([s.end for s in descriptions] + [s.end for s in speech] + [0.0])
    if duration is None:
        duration = end
    gaps = dialogue_gaps(speech, duration, margin)
    placed: list[tuple[float, int, tuple[float, float]]] = []  # (start, description index, its gap)
    taken: list[tuple[float, float]] = []  # reserved [start, start + min_gap] of each placed description
    dropped: list[str] = []
    for i, d in enumerate(descriptions):
        ctx.check_cancelled()
        text = " ".join(d.text.split())
        where = f"description {i} ({d.start:.1f}-{d.end:.1f} s)"
        if not text:
            dropped.append(f"{where}: empty, nothing to say")
            continue
        found = _earliest(gaps, taken, d.start, min(d.end, duration) + LATE_S, min_gap)
        if found is None:
            dropped.append(f"{where}: no pause in the dialogue of at least {min_gap:g} s near its scene: "
                           f"'{_brief(text)}' left out")
            continue
        t, gap = found
        taken.append((t, t + min_gap))
        placed.append((t, i, gap))
    placed.sort()
    lines, scenes, shortened = [], [], []
    for k, (t, i, gap) in enumerate(placed):
        nxt = [p[0] for p in placed[k + 1:] if p[2] == gap]
        span_end = min([gap[1]] + nxt)
        text, cut = fit_text(descriptions[i].text, int((span_end - t) * words_per_second + _EPS))
        need = max(min_gap, len(words_of(text)) / words_per_second * SLACK)
        lines.append(Segment(start=_up(t), end=_down(min(span_end, t + need)), text=text))
        scenes.append(i)
        if cut:
            shortened.append(len(lines) - 1)
    for note in dropped:
        ctx.note(f"place_descriptions: {note}")
    if shortened:
        ctx.note(f"place_descriptions: {len(shortened)} of {len(lines)} descriptions shortened to fit their pause")
    return DescriptionLines(lines=lines, scenes=scenes, shortened=shortened, dropped=dropped,
                            gaps=[Segment(start=_up(a), end=_down(b), text="") for a, b in gaps])


def _earliest(gaps: list[tuple[float, float]], taken: list[tuple[float, float]], start: float, latest: float,
              min_gap: float) -> tuple[float, tuple[float, float]] | None:
    """(t, gap): the earliest t >= start, before `latest`, with [t, t + min_gap] inside one gap and
    clear of every taken interval."""
    for gap in gaps:
        free = [(max(gap[0], start), gap[1])]
        for a, b in sorted(taken):  # cut the taken intervals out of this gap
            free = [piece for lo, hi in free for piece in ((lo, min(hi, a)), (max(lo, b), hi))
                    if piece[1] - piece[0] > _EPS]
        for lo, hi in free:
            if lo >= latest:
                return None
            if hi - lo >= min_gap - _EPS:
                return lo, gap
    return None


def _up(t: float) -> float:
    """`t` to the millisecond, rounded into the span it starts (never before a scene or a pause)."""
    return math.ceil(t * 1000 - 1e-6) / 1000


def _down(t: float) -> float:
    return math.floor(t * 1000 + 1e-6) / 1000


def _brief(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[:n - 1].rstrip() + "…"
