"""compose_music: music from a description, exactly as long as asked, stereo and loudness-normalised.

Backends, best first on a GPU: MusicGen (transformers), Stable Audio Open (diffusers); and the
embedded offline composer (a symbolic arranger rendered with a General MIDI SoundFont), which is the
one that runs on a laptop CPU with nothing downloaded, and also gives the score as a MIDI file.
`audiocraft` is not a backend: it pins torch 2.1 and cannot be installed beside ours; the transformers
port of MusicGen is.

The tool checks what every backend needs checked (the description, the duration against the
backend's own maximum, a melody or audio to continue that decodes and is not silent), hands the
backend a `MusicRequest`, and writes what it gets back through output.py.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, Field

from ...errors import InputError
from ...media import Audio, Midi
from ..audio.io import decode_pcm
from ..base import ToolContext, tool
from ..speech.pcm import is_silent
from ..types import PathOrName, Range
from . import composer, musicgen, stable_audio
from .common import MusicRequest, MusicResult
from .output import exact_length, normalise, to_stereo, write_wav

COMPOSE_BACKENDS = {m.BACKEND.name: m for m in (musicgen, stable_audio, composer)}
MAX_SECONDS = 600.0  # the most any backend makes in one call; each has its own MAX_SECONDS, checked too
Seed = Annotated[int, Range(0, 2**31 - 1)]


class Composition(BaseModel):
    """What `compose_music` returns."""

    audio: Audio = Field(description="the music: a stereo WAV, exactly `duration` seconds, at -16 LUFS")
    midi: Midi | None = Field(None, description="the score as a Standard MIDI File (offline composer only)")
    settings: dict[str, Any] = Field(description="what was chosen: style, tempo, key, instruments (composer), or the model")


@tool(backends=[m.BACKEND for m in COMPOSE_BACKENDS.values()], version="1")
def compose_music(description: str, duration: Annotated[float, Range(0, MAX_SECONDS, exclusive_lo=True)],
                  ctx: ToolContext, seed: Seed = 0, melody: Audio | None = None, continue_from: Audio | None = None,
                  model: PathOrName | None = None) -> Composition:
    """Compose music from a description (style, mood, instruments, tempo), exactly `duration` seconds long, in stereo.

    Args:
        description: what the music is like, e.g. 'calm piano', 'upbeat jazz intro at 120 bpm', 'epic orchestral loop'
        duration: its length in seconds; "$narration.duration" fits it to an earlier file
        seed: the same description, duration and seed give the same music
        melody: a melody to follow (the MusicGen melody model)
        continue_from: music to continue from its end (MusicGen)
        model: a model name or folder for MusicGen or Stable Audio (default: the one configured or cached); for the offline composer a .sf2 SoundFont
    """
    text = " ".join((description or "").split())
    if not text:
        raise InputError("compose_music: the description is empty (say what the music is like, e.g. 'calm piano')")
    backend = ctx.backend or compose_music.get_backend().name
    module = COMPOSE_BACKENDS[backend]
    if duration > module.MAX_SECONDS:
        raise InputError(f"compose_music: {duration:g} s is longer than the {backend} backend makes "
                         f"(at most {module.MAX_SECONDS:g} s)")
    request = MusicRequest(description=text, seconds=float(duration), seed=int(seed), model=model)
    if melody is not None:
        request.melody, request.melody_rate = _decode(melody, "melody", mono=True)
    if continue_from is not None:
        request.continuation, request.continuation_rate = _decode(continue_from, "continue_from", mono=False)
    if module is composer and (melody is not None or continue_from is not None):
        what = "follow a melody" if melody is not None else "continue a piece of audio"
        raise InputError(f"compose_music: the offline composer cannot {what}; MusicGen can (pip install "
                         f"'cadenza[gpu-music]' and set CADENZA_MUSICGEN_MODEL to a MusicGen model folder)")
    result: MusicResult = module.compose(ctx, request)
    return _write(result, request, ctx)


def _decode(media: Audio, what: str, mono: bool) -> tuple[np.ndarray, int]:
    """A melody or the audio to continue, as float32 samples; one line naming the file when it is silent."""
    x, rate, channels = decode_pcm(media.path, fmt="flt", layout="mono" if mono else None, name=media.path.name)
    x = x.reshape(-1, channels) if not mono else x
    if x.size == 0 or is_silent(x if mono else x.mean(axis=1), rate):
        raise InputError(f"compose_music: {what} {media.path.name} is silent: there is nothing to follow")
    return x.astype(np.float32), rate


def _write(result: MusicResult, request: MusicRequest, ctx: ToolContext) -> Composition:
    notes: list[str] = []
    x = exact_length(to_stereo(result.samples), result.rate, request.seconds)
    x = normalise(x, result.rate, notes)
    for n in notes:
        ctx.note(n)
    audio = Audio.from_path(write_wav(ctx.output_path(".wav"), x, result.rate))
    midi = None
    if result.midi:
        path = ctx.output_path(".mid")
        path.write_bytes(result.midi)
        midi = Midi.from_path(path)
    return Composition(audio=audio, midi=midi, settings=dict(result.settings))
