"""dub_mix: the dubbed speech laid over the source's own sound, which is ducked under the new voice,
kept as it is, or dropped. The result has the source's length, so it lines up with the picture."""

from __future__ import annotations

from typing import Annotated, Literal

from ...media import Audio
from ..audio.edit import PYDUB, AudioFormat, _save, mix_segments
from ..audio.io import load_segment, output_suffix
from ..base import ToolContext, tool
from ..speech.segments import Segment
from ..types import Range

Background = Literal["duck", "keep", "drop"]


@tool(backends=PYDUB, plannable=False, version="2")  # a building block of the dubbing workflows; mix_audio is the general tool
def dub_mix(original: Audio, speech: Audio, ctx: ToolContext, background: Background = "duck",
            duck_db: Annotated[float, Range(0, 60)] = 15.0, slots: list[Segment] | None = None,
            format: AudioFormat | None = None) -> Audio:
    """Lay dubbed speech over the original sound: ducked under the new voice, kept at full level, or dropped.

    Args:
        original: the source's own sound (its speech, music and effects)
        speech: the dubbed speech, timed to the original
        background: 'duck' lowers the original wherever the new voice speaks, 'keep' leaves it as it is,
            'drop' leaves the new speech alone (silence elsewhere)
        duck_db: how far, in dB, the original is lowered under the new voice ('duck')
        slots: the dubbed lines: the original stays lowered over each whole line, not only where the new
            voice sounds (a dubbed line shorter than its slot would let the original speech back in)
        format: output format (default: the original's)
    """
    from pydub import AudioSegment

    base = load_segment(original)
    if background == "drop":  # silence of the original's length and layout: the track still fits the picture
        base = AudioSegment.silent(len(base), frame_rate=base.frame_rate).set_channels(base.channels)
    mixed = mix_segments([base, load_segment(speech)], ctx, duck_under=1 if background == "duck" else None,
                         duck_db=duck_db, length="first", hold=[(s.start, s.end) for s in slots or []])
    return _save(mixed, ctx, output_suffix(original, format))
