"""Audio editing tools on pydub (mixing, joining, cutting, fades, loudness, time-stretch, format)."""

from __future__ import annotations

from fractions import Fraction
from typing import Annotated, Literal

import numpy as np

from ...errors import InputError
from ...media import Audio
from ..base import Backend, ToolContext, tool
from ..types import Range
from .io import FORMATS, load_segment, output_suffix, samples_of, save_segment, segment_from_samples

PYDUB = [Backend("pydub", "pydub for editing, PyAV (bundled FFmpeg) for decoding and encoding",
                 requires=("pydub", "av"))]
AudioFormat = Literal["wav", "flac", "mp3", "ogg", "m4a"]

# The ranges of the number arguments: wide enough for any real edit, narrow enough that a typo
# (a gain of 1000 dB, a negative length) is refused before anything runs.
MAX_SECONDS = 86400  # times and lengths: up to a day of audio
GainDb = Annotated[float, Range(-96, 24)]  # -96 dB is silence in 16-bit audio; +24 dB lifts a very quiet take
Milliseconds = Annotated[int, Range(0, 60000)]  # crossfades and gaps: up to a minute


def _save(seg, ctx: ToolContext, suffix: str) -> Audio:
    return Audio.from_path(save_segment(seg, ctx.output_path(suffix)))


@tool(backends=PYDUB)
def mix_audio(tracks: list[Audio], ctx: ToolContext, gains_db: list[GainDb] | None = None,
              duck_under: Annotated[int, Range(0)] | None = None, duck_db: Annotated[float, Range(0, 60)] = 12.0,
              length: Literal["longest", "first"] = "longest",
              format: AudioFormat | None = None) -> Audio:
    """Overlay audio tracks into one, each with its own gain, optionally ducking the others under speech.

    Args:
        tracks: the tracks to overlay, all starting at time zero
        gains_db: gain per track in dB (same order as tracks); missing entries mean 0
        duck_under: index of the speech track; the other tracks are lowered by duck_db wherever it is active
        duck_db: how far, in dB, the other tracks are lowered under speech
        length: 'longest' keeps the longest track's length, 'first' cuts to the first track
        format: output format (default: the first track's format)
    """
    if not tracks:
        raise InputError("mix_audio needs at least one track")
    if gains_db and len(gains_db) > len(tracks):
        raise InputError(f"mix_audio: {len(gains_db)} gains for {len(tracks)} tracks")
    if duck_under is not None and not 0 <= duck_under < len(tracks):
        raise InputError(f"mix_audio: duck_under={duck_under} is not a track index (0..{len(tracks) - 1})")
    mixed = mix_segments([load_segment(t) for t in tracks], ctx, gains_db, duck_under, duck_db, length)
    return _save(mixed, ctx, output_suffix(tracks[0], format))


def mix_segments(segs: list, ctx: ToolContext, gains_db: list[float] | None = None, duck_under: int | None = None,
                 duck_db: float = 12.0, length: str = "longest", hold: list[tuple[float, float]] | None = None):
    """mix_audio on loaded pydub segments (checked arguments); the mix, as a segment. `hold`: spans
    (start, end seconds) where the others stay ducked even while the speech track is quiet."""
    gains = list(gains_db or []) + [0.0] * (len(segs) - len(gains_db or []))
    rate = max(s.frame_rate for s in segs)
    channels = max(s.channels for s in segs)
    segs = [s.set_frame_rate(rate).set_channels(channels).apply_gain(g) for s, g in zip(segs, gains)]
    arrays = [samples_of(s).astype(np.float32) for s in segs]
    n = len(arrays[0]) if length == "first" else max(len(a) for a in arrays)
    if duck_under is not None:
        env = _duck_envelope(arrays[duck_under], rate, n, duck_db)
        if hold:
            env = np.minimum(env, _span_envelope(hold, rate, n, duck_db))
        arrays = [a if i == duck_under else _apply(a, env) for i, a in enumerate(arrays)]
    mix = np.zeros((n, channels), np.float32)
    for a in arrays:
        m = min(n, len(a))
        mix[:m] += a[:m]
    peak = np.abs(mix).max() if mix.size else 0
    if peak > 32767:  # never clip: scale the sum down instead (worth a note from a tenth of a dB)
        mix *= 32767 / peak
        if peak > 32767 * 10 ** (0.1 / 20):
            ctx.note(f"mix peaked {20 * np.log10(peak / 32767):.1f} dB over full scale; scaled down to avoid clipping")
    return segment_from_samples(mix, rate)


def _duck_envelope(voice: np.ndarray, rate: int, n: int, duck_db: float) -> np.ndarray:
    """Per-sample gain for the background: 1 where the voice is quiet, lower under speech,
    with a 50 ms attack and 300 ms release so the music does not pump."""
    win = max(1, int(rate * 0.05))
    mono = np.abs(voice).mean(axis=1)
    frames = int(np.ceil(len(mono) / win))
    padded = np.zeros(frames * win, np.float32)
    padded[:len(mono)] = mono
    rms = np.sqrt((padded.reshape(frames, win) ** 2).mean(axis=1))
    active = rms > max(32767 * 10 ** (-40 / 20), rms.max() * 10 ** (-30 / 20)) if frames else rms
    hold = int(np.ceil(0.3 / 0.05))  # release: stay ducked 300 ms after speech stops
    kept = active.copy()
    for i in np.flatnonzero(active):
        kept[i:i + hold + 1] = True
    low = 10 ** (-abs(duck_db) / 20)
    target = np.where(kept, low, 1.0).astype(np.float32)
    per_sample = np.repeat(target, win)[:n]
    if len(per_sample) < n:
        per_sample = np.concatenate([per_sample, np.ones(n - len(per_sample), np.float32)])
    ramp = max(1, int(rate * 0.05))
    # pad with the edge values, not zeros, so the smoothing does not dip at the ends
    padded_env = np.pad(per_sample, (ramp // 2, ramp - 1 - ramp // 2), mode="edge")
    return np.convolve(padded_env, np.ones(ramp, np.float32) / ramp, mode="valid")


def _span_envelope(spans: list[tuple[float, float]], rate: int, n: int, duck_db: float) -> np.ndarray:
    """Per-sample gain: lowered by duck_db inside each span, 1 outside, with 50 ms ramps."""
    target = np.ones(n, np.float32)
    for a, b in spans:
        target[max(0, int(a * rate)):max(0, min(n, int(b * rate)))] = 10 ** (-abs(duck_db) / 20)
    ramp = max(1, int(rate * 0.05))
    padded = np.pad(target, (ramp // 2, ramp - 1 - ramp // 2), mode="edge")
    return np.convolve(padded, np.ones(ramp, np.float32) / ramp, mode="valid")


def _apply(a: np.ndarray, env: np.ndarray) -> np.ndarray:
    m = min(len(a), len(env))
    out = a.copy()
    out[:m] *= env[:m, None]
    return out


@tool(backends=PYDUB)
def concat_audio(clips: list[Audio], ctx: ToolContext, crossfade_ms: Milliseconds = 0, gap_ms: Milliseconds = 0,
                 format: AudioFormat | None = None) -> Audio:
    """Join audio clips one after another.

    Args:
        clips: the clips, in order
        crossfade_ms: overlap between neighbours, in milliseconds
        gap_ms: silence between neighbours, in milliseconds (ignored when crossfading)
        format: output format (default: the first clip's format)
    """
    if not clips:
        raise InputError("concat_audio needs at least one clip")
    from pydub import AudioSegment

    segs = [load_segment(c) for c in clips]
    rate, channels = max(s.frame_rate for s in segs), max(s.channels for s in segs)
    out = segs[0].set_frame_rate(rate).set_channels(channels)
    for s in segs[1:]:
        s = s.set_frame_rate(rate).set_channels(channels)
        if crossfade_ms > 0:
            out = out.append(s, crossfade=min(crossfade_ms, len(out), len(s)))
        else:
            if gap_ms > 0:
                out += AudioSegment.silent(gap_ms, frame_rate=rate).set_channels(channels)
            out += s
    return _save(out, ctx, output_suffix(clips[0], format))


@tool(backends=PYDUB)
def trim_audio(audio: Audio, ctx: ToolContext, start: Annotated[float, Range(0, MAX_SECONDS)] = 0.0,
               end: Annotated[float, Range(-MAX_SECONDS, MAX_SECONDS)] | None = None) -> Audio:
    """Cut audio to the part between two times.

    Args:
        audio: the audio to cut
        start: start time in seconds
        end: end time in seconds (default: the end); a negative value counts back from the end
    """
    seg = load_segment(audio)
    total = len(seg) / 1000
    stop = total if end is None else (total + end if end < 0 else end)
    if start < 0 or start >= total:
        raise InputError(f"trim_audio: start={start}s is outside the audio (0..{total:.2f}s)")
    if stop <= start:
        raise InputError(f"trim_audio: end={end}s is not after start={start}s")
    first, last = round(start * seg.frame_rate), round(min(stop, total) * seg.frame_rate)
    return _save(seg.get_sample_slice(first, last), ctx, output_suffix(audio, None))


@tool(backends=PYDUB)
def fade_audio(audio: Audio, ctx: ToolContext, fade_in: Annotated[float, Range(0, 3600)] = 0.0,
               fade_out: Annotated[float, Range(0, 3600)] = 0.0) -> Audio:
    """Fade audio in at the start and out at the end.

    Args:
        audio: the audio
        fade_in: fade-in length in seconds
        fade_out: fade-out length in seconds
    """
    seg = load_segment(audio)
    if fade_in:
        seg = seg.fade_in(min(int(fade_in * 1000), len(seg)))
    if fade_out:
        seg = seg.fade_out(min(int(fade_out * 1000), len(seg)))
    return _save(seg, ctx, output_suffix(audio, None))


@tool(backends=PYDUB)
def normalize_audio(audio: Audio, ctx: ToolContext, target_lufs: Annotated[float, Range(-60, 0)] = -16.0,
                    peak_db: Annotated[float, Range(-60, 0)] = -1.0) -> Audio:
    """Bring audio to a target loudness (ITU-R BS.1770 integrated LUFS), without letting peaks clip.

    Args:
        audio: the audio
        target_lufs: target integrated loudness; -16 suits speech and podcasts, -14 streaming music
        peak_db: the sample peak is kept at or under this level, in dBFS
    """
    import pyloudnorm

    seg = load_segment(audio)
    x = samples_of(seg).astype(np.float64) / 32768
    meter = pyloudnorm.Meter(seg.frame_rate, block_size=min(0.4, len(x) / seg.frame_rate))
    loudness = meter.integrated_loudness(x)
    if not np.isfinite(loudness):
        ctx.note("audio is silent; loudness left unchanged")
        return _save(seg, ctx, output_suffix(audio, None))
    gain = 10 ** ((target_lufs - loudness) / 20)
    y = x * gain
    peak = np.abs(y).max()
    limit = 10 ** (peak_db / 20)
    if peak > limit:
        y *= limit / peak
        ctx.note(f"peak limited: reached {target_lufs - 20 * np.log10(peak / limit):.1f} LUFS, not {target_lufs}")
    return _save(segment_from_samples(y * 32768, seg.frame_rate), ctx, output_suffix(audio, None))


@tool(backends=PYDUB)
def fit_audio(audio: Audio, duration: Annotated[float, Range(0, MAX_SECONDS, exclusive_lo=True)], ctx: ToolContext) -> Audio:
    """Time-stretch audio to a target duration without changing its pitch (FFmpeg's atempo).

    Args:
        audio: the audio
        duration: the target duration in seconds
    """
    seg = load_segment(audio)
    current = len(seg.raw_data) / (2 * seg.channels) / seg.frame_rate
    tempo = current / duration
    if not 1 / 16 <= tempo <= 16:
        raise InputError(f"fit_audio: stretching {current:.2f}s to {duration:.2f}s (x{1 / tempo:.2f}) is beyond 16x")
    y = _atempo(samples_of(seg), seg.frame_rate, seg.channels, tempo)
    want = int(round(duration * seg.frame_rate))
    y = y[:want] if len(y) >= want else np.concatenate([y, np.zeros((want - len(y), seg.channels), y.dtype)])
    return _save(segment_from_samples(y, seg.frame_rate), ctx, output_suffix(audio, None))


def _atempo(samples: np.ndarray, rate: int, channels: int, tempo: float) -> np.ndarray:
    import av

    layout = "stereo" if channels == 2 else "mono"
    graph = av.filter.Graph()
    nodes = [graph.add_abuffer(format="s16", sample_rate=rate, layout=layout, time_base=Fraction(1, rate))]
    factors = []
    while tempo > 2.0:  # one atempo stays clean within 0.5..2, so chain them
        factors.append(2.0)
        tempo /= 2.0
    while tempo < 0.5:
        factors.append(0.5)
        tempo /= 0.5
    factors.append(tempo)
    nodes += [graph.add("atempo", f"{f:.6f}") for f in factors]
    nodes.append(graph.add("abuffersink"))
    graph.link_nodes(*nodes).configure()
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples).reshape(1, -1), format="s16", layout=layout)
    frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
    graph.push(frame)
    graph.push(None)
    out = []
    while True:
        try:
            f = graph.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            break
        out.append(f.to_ndarray().reshape(-1, channels))
    return np.concatenate(out) if out else np.zeros((0, channels), np.int16)


@tool(backends=PYDUB)
def convert_audio(audio: Audio, format: AudioFormat, ctx: ToolContext,
                  sample_rate: Annotated[int, Range(8000, 192000)] | None = None,
                  channels: Literal[1, 2] | None = None) -> Audio:
    """Convert audio to another format, sample rate or channel count.

    Args:
        audio: the audio
        format: target format: wav, flac, mp3, ogg (Opus) or m4a (AAC)
        sample_rate: target sample rate in Hz (default: keep)
        channels: 1 for mono, 2 for stereo (default: keep)
    """
    if format not in FORMATS:
        raise InputError(f"convert_audio: unknown format '{format}'")
    if format == "ogg" and sample_rate not in (None, 48000):
        raise InputError(f"convert_audio: ogg (Opus) is always 48000 Hz; sample_rate {sample_rate} is not possible")
    seg = load_segment(audio)
    if sample_rate:
        seg = seg.set_frame_rate(sample_rate)
    if channels:
        seg = seg.set_channels(channels)
    return _save(seg, ctx, "." + format)


EDIT_TOOLS = [mix_audio, concat_audio, trim_audio, fade_audio, normalize_audio, fit_audio, convert_audio]
