"""Subtitles from timed segments: SRT or WebVTT, at most 42 characters a line and 2 lines a cue.

A segment too long for one cue is split at word boundaries into several cues; each gets a
share of the segment's time in proportion to its length (or the words' own times, when the
transcript has them).
"""

from __future__ import annotations

from typing import Annotated, Literal

from ...media import Subtitles
from ..base import Backend, ToolContext, tool
from ..types import Range
from .segments import Segment

PURE = [Backend("python", "plain Python")]


@tool(backends=PURE)
def make_subtitles(segments: list[Segment], ctx: ToolContext, format: Literal["srt", "vtt"] = "srt",
                   max_chars: Annotated[int, Range(10, 200)] = 42,
                   max_lines: Annotated[int, Range(1, 10)] = 2) -> Subtitles:
    """Write subtitles (SRT or WebVTT) from timed segments, wrapped for reading.

    Args:
        segments: timed text, e.g. the segments of a transcript
        format: srt or vtt
        max_chars: longest line, in characters
        max_lines: most lines in one cue
    """
    cues = [c for s in segments for c in split_segment(s, max_chars, max_lines)]
    path = ctx.output_path("." + format)
    path.write_text(render_srt(cues) if format == "srt" else render_vtt(cues), encoding="utf-8")
    return Subtitles.from_path(path)


def wrap(words: list[str], max_chars: int) -> list[str]:
    """Greedy line filling; a word longer than a line is cut."""
    lines, cur = [], ""
    for w in words:
        while len(w) > max_chars:
            if cur:
                lines.append(cur)
                cur = ""
            lines.append(w[:max_chars])
            w = w[max_chars:]
        if not cur:
            cur = w
        elif len(cur) + 1 + len(w) <= max_chars:
            cur += " " + w
        else:
            lines.append(cur)
            cur = w
    if cur:
        lines.append(cur)
    return lines


def split_segment(seg: Segment, max_chars: int, max_lines: int) -> list[tuple[float, float, list[str]]]:
    """(start, end, lines) cues for one segment."""
    lines = wrap(seg.text.split(), max_chars)
    if not lines:
        return []
    groups = [lines[i:i + max_lines] for i in range(0, len(lines), max_lines)]
    total = sum(len(" ".join(g)) for g in groups)
    cues, t = [], seg.start
    for g in groups:
        share = len(" ".join(g)) / total if total else 1 / len(groups)
        end = min(seg.end, t + (seg.end - seg.start) * share)
        cues.append((t, end, g))
        t = end
    cues[-1] = (cues[-1][0], seg.end, cues[-1][2])
    return cues


def timestamp(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def render_srt(cues) -> str:
    return "\n".join(f"{i}\n{timestamp(a, ',')} --> {timestamp(b, ',')}\n" + "\n".join(lines) + "\n"
                     for i, (a, b, lines) in enumerate(cues, 1))


def render_vtt(cues) -> str:
    body = "\n".join(f"{timestamp(a, '.')} --> {timestamp(b, '.')}\n" + "\n".join(lines) + "\n" for a, b, lines in cues)
    return "WEBVTT\n\n" + body
