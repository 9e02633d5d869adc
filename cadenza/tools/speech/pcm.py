"""Audio for speech models: decode anything PyAV reads (audio, or a video's sound track) to
16 kHz mono float32, and write synthesized speech to WAV a chunk at a time."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from ...media import Media
from ..audio.io import decode_pcm

ASR_RATE = 16000  # every Whisper variant takes 16 kHz mono


def load_mono(media: Media | str | Path, rate: int = ASR_RATE) -> np.ndarray:
    """Decode to float32 mono at `rate`. Raises MediaError for a corrupt file or no audio track."""
    path = Path(media.path if isinstance(media, Media) else media)
    samples, _, _ = decode_pcm(path, fmt="flt", layout="mono", rate=rate, name=path.name,
                               no_audio_hint=": nothing to transcribe")
    return samples  # may be empty: not an error here, transcribe reports it as silence


def is_silent(x: np.ndarray, rate: int = ASR_RATE, floor_db: float = -60.0) -> bool:
    """True when no 30 ms frame rises above `floor_db` dBFS (Whisper invents words in silence)."""
    if x.size == 0:
        return True
    win = max(1, int(rate * 0.03))
    n = len(x) // win
    if n == 0:
        return float(np.sqrt(np.mean(x ** 2))) < 10 ** (floor_db / 20)
    rms = np.sqrt((x[: n * win].reshape(n, win) ** 2).mean(axis=1))
    return float(rms.max()) < 10 ** (floor_db / 20)


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Linear resampling: enough to feed synthesized speech to an ASR model at 16 kHz."""
    if src == dst or x.size == 0:
        return x.astype(np.float32, copy=False)
    n = int(round(len(x) * dst / src))
    return np.interp(np.arange(n) * (src / dst), np.arange(len(x)), x).astype(np.float32)


class WavWriter:
    """16-bit mono WAV written chunk by chunk, so a long text never sits in memory as audio.

    Each chunk gets short fades at both ends and a pause before it, so sentence joins do
    not click (a hard cut between two waveforms is an audible step)."""

    def __init__(self, path: Path, rate: int, fade_ms: float = 8.0, gap_ms: float = 120.0):
        self.path, self.rate = path, rate
        self._w = wave.open(str(path), "wb")
        self._w.setnchannels(1)
        self._w.setsampwidth(2)
        self._w.setframerate(rate)
        self.fade = max(1, int(rate * fade_ms / 1000))
        self.gap = np.zeros(int(rate * gap_ms / 1000), np.int16)
        self.samples = 0

    def write(self, chunk: np.ndarray) -> None:
        x = np.asarray(chunk, np.float32).reshape(-1)
        if x.size == 0:
            return
        x = x.copy()
        n = min(self.fade, len(x) // 2)
        if n:
            ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
            x[:n] *= ramp
            x[-n:] *= ramp[::-1]
        pcm = np.clip(np.rint(x * 32767), -32768, 32767).astype("<i2")
        if self.samples:
            self._w.writeframes(self.gap.tobytes())
            self.samples += len(self.gap)
        self._w.writeframes(pcm.tobytes())
        self.samples += len(pcm)

    def close(self) -> None:
        self._w.close()

    def __enter__(self) -> "WavWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def seconds(self) -> float:
        return self.samples / self.rate
