"""dub_lines.json: what a dubbing run did, line by line, and the user's edits read back.

Every run writes it (`write_dub_lines`). Its lines look like:

    {"index": 3, "start": 12.48, "end": 15.02,          # the slot, in source seconds
     "source_text": "It was late.", "translation": "Es war spät.",
     "voice": null, "speed": null,                       # edit: a voice, a fixed speed (null: the run's)
     "voice_used": "heart", "spoken_text": "Es war spät.",
     "synthesized_seconds": 2.71, "fitted_seconds": 2.54, "speed_factor": 1.07,
     "action": "speedup", "warnings": []}

A user edits `translation`, `voice` or `speed` and runs again with `--lines dub_lines.json`:
`read_dub_lines` (and the `load_dub_lines` tool) check the file still belongs to the source
(same number of lines, each slot within 10 ms) and give back the lines with the edits; the
per-line cache then re-synthesizes the changed lines only. The other fields are results:
editing them changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field

from ...errors import InputError
from ..base import tool
from ..speech.segments import Segment
from ..types import LocalPath

FORMAT = "cadenza-dub-lines/1"
SLOT_TOLERANCE = 0.010  # seconds


class LineReport(BaseModel):
    """One dubbed line: its slot, texts, and how it was fitted."""

    index: int
    start: float = Field(description="slot start, seconds")
    end: float = Field(description="slot end, seconds")
    source_text: str | None = None
    translation: str = Field(description="the line's text as given (what the user edits)")
    voice: str | None = Field(None, description="voice set for this line; None: the run's voice")
    speed: float | None = Field(None, description="speed set for this line; None: fitted automatically")
    voice_used: str = ""
    spoken_text: str = Field("", description="what was spoken: the translation, or a shorter rendering of it")
    synthesized_seconds: float = Field(0.0, description="length as synthesized, edge silence removed")
    fitted_seconds: float = Field(0.0, description="length placed on the track")
    speed_factor: float = Field(1.0, description="tempo applied, pitch kept (1.0 natural)")
    action: str = Field("natural", description="natural | gap | speedup | shorten | trim | fixed | empty")
    warnings: list[str] = Field(default_factory=list)
    cached: bool = Field(False, description="taken from the per-line cache")


class EditedLines(BaseModel):
    """What `load_dub_lines` returns: the lines to speak, with each line's voice and speed."""

    lines: list[Segment] = Field(description="the (edited) translations, timed with the source slots")
    voices: list[str | None] = Field(description="per line: a voice, or None for the run's voice")
    speeds: list[float] = Field(description="per line: a fixed speed factor, or 0 to fit automatically")


def dub_lines_json(reports: list[LineReport], language: str | None = None) -> str:
    data: dict[str, Any] = {"format": FORMAT, "language": language,
                            "lines": [r.model_dump(exclude={"cached"}) for r in reports]}
    return json.dumps(data, ensure_ascii=False, indent=1) + "\n"


def write_dub_lines(path: str | Path, reports: list[LineReport], language: str | None = None) -> Path:
    path = Path(path)
    path.write_text(dub_lines_json(reports, language), encoding="utf-8")
    return path


def _fail(name: str, why: str) -> InputError:
    return InputError(f"{name}: {why}")


def read_dub_lines(path: str | Path, source: list[Segment]) -> EditedLines:
    """The edited lines of a dub_lines.json, checked against the `source` lines (one InputError line
    naming the first mismatch: count, slot, or a bad field)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise _fail(path.name, f"cannot read it: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise _fail(path.name, f"not valid JSON: {str(e).splitlines()[0]}") from None
    return parse_dub_lines(text, source, path.name)


def parse_dub_lines(text: str, source: list[Segment], name: str = "dub_lines.json") -> EditedLines:
    """`read_dub_lines` on the file's text (what the `dub` workflow passes on, so the step cache
    keys on the edits themselves, not on the file's name)."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise _fail(name, f"not valid JSON: {str(e).splitlines()[0]}") from None
    lines = data.get("lines") if isinstance(data, dict) else None
    if not isinstance(lines, list):
        raise _fail(name, "not a dub_lines.json (no \"lines\" list)")
    if len(lines) != len(source):
        raise _fail(name, f"has {len(lines)} lines but the source has {len(source)}: "
                          f"it belongs to another video or other settings")
    out, voices, speeds = [], [], []
    for i, (line, src) in enumerate(zip(lines, source)):
        where = f"line {i}"
        if not isinstance(line, dict):
            raise _fail(name, f"{where} is not an object")
        for key, want in (("start", src.start), ("end", src.end)):
            got = line.get(key)
            if not isinstance(got, (int, float)) or isinstance(got, bool):
                raise _fail(name, f"{where}: \"{key}\" must be a number of seconds, not {got!r}")
            if abs(got - want) > SLOT_TOLERANCE and not _same_words_moved(line, src):
                raise _fail(name, f"{where} {key}s at {got!r}s but the source line {key}s at {want:.3f}s "
                                  f"(slots must match within 10 ms)")
        text = line.get("translation")
        if not isinstance(text, str):
            raise _fail(name, f"{where}: \"translation\" must be a string")
        voice = line.get("voice")
        if voice is not None and (not isinstance(voice, str) or not voice.strip()):
            raise _fail(name, f"{where}: \"voice\" must be a voice name or null")
        speed = line.get("speed")
        if speed is not None and (isinstance(speed, bool) or not isinstance(speed, (int, float))
                                  or not 0.5 <= speed <= 2.0):
            raise _fail(name, f"{where}: \"speed\" must be a number from 0.5 to 2 or null, not {speed!r}")
        out.append(Segment(start=src.start, end=src.end, text=" ".join(text.split())))
        voices.append(voice.strip() if voice else None)
        speeds.append(float(speed) if speed is not None else 0.0)
    return EditedLines(lines=out, voices=voices, speeds=speeds)


def _same_words_moved(line: dict, src: Segment) -> bool:
    """The same source line with its slot moved a little: its source_text is the line's words and the
    two slots overlap. A file written before line starts were snapped to the voice's onset (they
    moved by up to ~0.75 s) still applies to the same video."""
    said = line.get("source_text")
    start, end = line.get("start"), line.get("end")
    return (isinstance(said, str) and " ".join(said.split()) == " ".join(src.text.split())
            and isinstance(start, (int, float)) and isinstance(end, (int, float))
            and start < src.end and src.start < end)


@tool(version="1", plannable=False)  # a building block of the dubbing workflow
def load_dub_lines(file: Annotated[str, LocalPath()], source_lines: list[Segment]) -> EditedLines:
    """Read an edited dub_lines.json back: its translations, and any voice or speed set per line.

    Args:
        file: the dub_lines.json of an earlier run, edited
        source_lines: the source's dubbing lines (dub_lines' output); the file must have as many, with the same slots
    """
    return read_dub_lines(file, source_lines)
