"""What the music tools hand a backend and get back: one request type and one result type, so each
backend module (composer, musicgen, stable_audio, audioldm) is a plain function behind a `Backend`.

A compose backend module exports:

    BACKEND: Backend            # name, requirements, device, check
    MAX_SECONDS: float          # the longest music it makes in one call (the tool refuses more)
    def compose(ctx: ToolContext, request: MusicRequest) -> MusicResult

A sound-effect backend (generate_sound) exports BACKEND, MAX_SECONDS and
`generate_sound(ctx, request) -> MusicResult` (request.melody and request.continuation are None).

The tool (compose.py, sound.py) checks the arguments, decodes the melody or the audio to continue,
and afterwards fits the result to the exact duration, normalises its loudness and writes the files:
a backend only makes samples (and, the symbolic composer, MIDI).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class MusicRequest:
    description: str  # what to make, in the user's words ("calm piano", "rain on a tin roof")
    seconds: float  # how long, > 0 and at most the backend's MAX_SECONDS
    seed: int | None = None  # same request and seed: the same audio (bit-identical for the composer)
    melody: np.ndarray | None = None  # float32 mono samples of a melody to follow (MusicGen melody)
    melody_rate: int | None = None
    continuation: np.ndarray | None = None  # float32 (n, channels) audio to continue from its end
    continuation_rate: int | None = None
    model: str | None = None  # a model id or folder for the heavy backends (None: the default)


@dataclass
class MusicResult:
    samples: np.ndarray  # float32, shape (n, 2) (stereo) or (n,) (mono: the tool makes it stereo), in -1..1
    rate: int
    midi: bytes | None = None  # a Standard MIDI File (the symbolic composer), else None
    settings: dict[str, Any] = field(default_factory=dict)  # what was chosen: tempo, key, style... or the model
