"""What every music backend's samples go through before they are a file: stereo, exactly the asked
length, loudness-normalised, 16-bit WAV. Deterministic (same samples in, same bytes out)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

TARGET_LUFS = -16.0  # streaming loudness; a bed under speech is lowered further by mix_audio / dub_mix
PEAK_DB = -1.0  # true-peak headroom for lossy encoders downstream
EDGE_FADE_S = 0.01  # a cut end gets this fade, so it never clicks


def to_stereo(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.ndim == 1:
        return np.repeat(x[:, None], 2, axis=1)
    if x.shape[1] == 1:
        return np.repeat(x, 2, axis=1)
    return x[:, :2]


def exact_length(x: np.ndarray, rate: int, seconds: float, fade: bool = True) -> np.ndarray:
    """`x` cut (with a short fade-out) or padded with silence to round(seconds * rate) samples."""
    n = int(round(seconds * rate))
    if len(x) >= n:
        y = x[:n].copy()
        if fade and len(x) > n:
            k = min(n, int(EDGE_FADE_S * rate))
            y[n - k:] *= np.linspace(1.0, 0.0, k, dtype=np.float32)[:, None]
        return y
    return np.concatenate([x, np.zeros((n - len(x), x.shape[1]), np.float32)])


def normalise(x: np.ndarray, rate: int, notes: list[str]) -> np.ndarray:
    """To TARGET_LUFS (ITU-R BS.1770), peaks held under PEAK_DB; silence is left as it is."""
    import pyloudnorm

    if len(x) < int(0.4 * rate) or not np.abs(x).max() > 0:
        return x
    loud = pyloudnorm.Meter(rate).integrated_loudness(x.astype(np.float64))
    if not np.isfinite(loud):
        return x
    y = x * np.float32(10 ** ((TARGET_LUFS - loud) / 20))
    peak, limit = float(np.abs(y).max()), 10 ** (PEAK_DB / 20)
    if peak > limit:
        y *= np.float32(limit / peak)
        notes.append(f"peak limited: {TARGET_LUFS - 20 * np.log10(peak / limit):.1f} LUFS, not {TARGET_LUFS}")
    return y


def write_wav(path: Path, x: np.ndarray, rate: int) -> Path:
    pcm = np.clip(np.rint(x * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path
