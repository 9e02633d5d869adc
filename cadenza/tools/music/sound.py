"""generate_sound: a sound effect or an ambience from a description. Heavy backends only (Stable
Audio Open, AudioLDM 2): with neither here it is a one-line error saying what to install, never a
made-up sound; the offline composer makes music, not effects."""

from __future__ import annotations

from typing import Annotated

from ...errors import InputError
from ...media import Audio
from ..base import ToolContext, tool
from ..types import PathOrName, Range
from . import audioldm, stable_audio
from .common import MusicRequest
from .compose import Seed
from .output import exact_length, normalise, to_stereo, write_wav

SOUND_BACKENDS = {m.BACKEND.name: m for m in (stable_audio, audioldm)}
MAX_SECONDS = 60.0


@tool(backends=[m.BACKEND for m in SOUND_BACKENDS.values()], version="1")
def generate_sound(description: str, duration: Annotated[float, Range(0, MAX_SECONDS, exclusive_lo=True)],
                   ctx: ToolContext, seed: Seed = 0, model: PathOrName | None = None) -> Audio:
    """Generate a sound effect or ambience from a description (rain on a roof, a door slam, city traffic).

    Args:
        description: the sound, e.g. 'heavy rain on a tin roof' or 'footsteps on gravel'
        duration: its length in seconds
        seed: the same description, duration and seed give the same sound
        model: a model name or folder (default: the one configured or cached)
    """
    text = " ".join((description or "").split())
    if not text:
        raise InputError("generate_sound: the description is empty (say what it should sound like)")
    backend = ctx.backend or generate_sound.get_backend().name
    module = SOUND_BACKENDS[backend]
    if duration > module.MAX_SECONDS:
        raise InputError(f"generate_sound: {duration:g} s is longer than the {backend} backend makes "
                         f"(at most {module.MAX_SECONDS:g} s)")
    result = module.generate_sound(ctx, MusicRequest(description=text, seconds=float(duration), seed=int(seed),
                                                     model=model))
    notes: list[str] = []
    x = normalise(exact_length(to_stereo(result.samples), result.rate, float(duration)), result.rate, notes)
    for n in notes:
        ctx.note(n)
    return Audio.from_path(write_wav(ctx.output_path(".wav"), x, result.rate))
