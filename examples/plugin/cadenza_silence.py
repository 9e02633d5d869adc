"""An example Cadenza plugin: `strip_silence` cuts leading and trailing silence from audio.

Installed, it is found through the `cadenza.tools` entry point declared in
pyproject.toml, which points at this module's `register_tools` hook.
"""

from __future__ import annotations

import numpy as np

import cadenza
from cadenza import Audio, Backend, InputError, ToolContext
from cadenza.tools.audio.io import load_segment, output_suffix, samples_of, save_segment, segment_from_samples

__version__ = "0.1.0"

BACKENDS = [Backend("pydub", "pydub for the samples, PyAV (bundled FFmpeg) for decoding and encoding",
                    requires=("pydub", "av"))]

FULL_SCALE = 32768  # int16 samples


@cadenza.tool(backends=BACKENDS)
def strip_silence(audio: Audio, ctx: ToolContext, threshold_db: float = -40.0, keep_ms: int = 100) -> Audio:
    """Remove the silence at the start and end of audio, keeping a short margin.

    Args:
        audio: the audio to trim
        threshold_db: samples quieter than this, in dB relative to full scale, count as silence
        keep_ms: milliseconds of the silence to keep before the first and after the last sound
    """
    if threshold_db > 0:
        raise InputError(f"strip_silence: threshold_db must be at most 0 dBFS, got {threshold_db}")
    if keep_ms < 0:
        raise InputError(f"strip_silence: keep_ms must not be negative, got {keep_ms}")
    seg = load_segment(audio)
    samples = samples_of(seg)
    level = np.abs(samples.astype(np.int32)).max(axis=1)  # loudest channel, per frame
    loud = np.flatnonzero(level > FULL_SCALE * 10 ** (threshold_db / 20))
    suffix = output_suffix(audio, None)
    if loud.size == 0:
        ctx.note(f"strip_silence: audio is silent throughout (nothing above {threshold_db} dBFS); left unchanged")
        return Audio.from_path(save_segment(seg, ctx.output_path(suffix)))
    margin = int(round(seg.frame_rate * keep_ms / 1000))
    start = max(0, int(loud[0]) - margin)
    stop = min(len(samples), int(loud[-1]) + 1 + margin)
    cut = samples[start:stop]
    removed = (len(samples) - len(cut)) / seg.frame_rate
    if removed > 0:
        ctx.note(f"strip_silence: removed {start / seg.frame_rate:.2f}s at the start and "
                 f"{(len(samples) - stop) / seg.frame_rate:.2f}s at the end")
    return Audio.from_path(save_segment(segment_from_samples(cut, seg.frame_rate), ctx.output_path(suffix)))


@cadenza.hookimpl
def register_tools(register):
    register(strip_silence)
