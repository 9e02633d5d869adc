"""Small synthetic media files for tests: tones, speech-like bursts, silence, videos, broken files;
and measurements of what a tool wrote (decode, rms, dominant_freq ...).

Everything is generated in a few milliseconds with numpy; WAV files are written with the
standard library's `wave`, other containers (mp3, flac, m4a, mp4 ...) with PyAV, which bundles
FFmpeg. Each function writes `path` and returns it as a `Path`.
"""

from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = [
    "tone", "speech_like", "bursts", "silence", "noise", "write_audio", "make_video",
    "corrupt_file", "empty_file", "to_int16", "spoken", "espeak_speech",
    "decode", "rms", "db", "amplitude_at", "dominant_freq", "loudness", "assert_one_line_naming",
]

# container format, audio codec for the non-WAV audio formats write_audio understands
_AUDIO_FORMATS = {
    ".flac": ("flac", "flac"),
    ".mp3": ("mp3", "libmp3lame"),
    ".ogg": ("ogg", "libopus"),
    ".opus": ("ogg", "libopus"),
    ".m4a": ("mp4", "aac"),
}


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] (shape [n] or [n, ch]) to int16, shape [n, ch]."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    return np.clip(np.rint(x * 32767), -32768, 32767).astype(np.int16)


def write_audio(path, samples: np.ndarray, rate: int) -> Path:
    """Write float samples in [-1, 1] (shape [n] or [n, channels]); the suffix picks the format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = to_int16(samples)
    channels = data.shape[1]
    suffix = path.suffix.lower()
    if suffix == ".wav":
        with wave.open(str(path), "wb") as w:
            w.setnchannels(channels)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(data.tobytes())
        return path
    if suffix not in _AUDIO_FORMATS:
        raise ValueError(f"write_audio: unsupported suffix {suffix}")
    import av

    container_fmt, codec = _AUDIO_FORMATS[suffix]
    if codec == "libopus" and rate != 48000:  # Opus only takes a few rates: resample simply
        n_out = int(round(len(data) * 48000 / rate))
        t_in = np.arange(len(data)) / rate
        t_out = np.arange(n_out) / 48000
        data = np.stack([np.interp(t_out, t_in, data[:, c]) for c in range(channels)], axis=1)
        data = np.clip(np.rint(data), -32768, 32767).astype(np.int16)
        rate = 48000
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), "w", format=container_fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        _push_audio(out, stream, data, rate, layout)
    return path


def _push_audio(out, stream, data: np.ndarray, rate: int, layout: str) -> None:
    """Encode int16 samples [n, ch] through `stream` into the open container `out`."""
    import av

    ctx = stream.codec_context
    resampler = av.AudioResampler(format=ctx.format.name, layout=layout, rate=ctx.sample_rate,
                                  frame_size=ctx.frame_size or 1024)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data).reshape(1, -1), format="s16", layout=layout)
    frame.sample_rate = rate
    frame.pts = 0
    frame.time_base = Fraction(1, rate)
    for f in resampler.resample(frame):
        out.mux(stream.encode(f))
    for f in resampler.resample(None):
        out.mux(stream.encode(f))
    out.mux(stream.encode(None))


def _sine(freq: float, seconds: float, rate: int, amp: float) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def _channels(x: np.ndarray, channels: int) -> np.ndarray:
    return np.repeat(x[:, None], channels, axis=1) if channels > 1 else x[:, None]


def tone(path, freq: float = 440.0, seconds: float = 2.0, rate: int = 22050, amp: float = 0.3,
         channels: int = 1) -> Path:
    """A steady sine tone."""
    return write_audio(path, _channels(_sine(freq, seconds, rate, amp), channels), rate)


def speech_like(path, seconds: float = 3.0, rate: int = 16000, on: float = 0.5, off: float = 0.5,
                amp: float = 0.5, freq: float = 220.0, channels: int = 1) -> Path:
    """On/off bursts standing in for speech: `on` seconds of a harmonic tone, `off` seconds of
    silence, repeated, starting with a burst. `bursts(seconds, on, off)` gives the burst times."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    voice = sum(np.sin(2 * np.pi * freq * k * t) / k for k in (1, 2, 3))
    voice = voice / np.abs(voice).max() * amp
    gate = ((t % (on + off)) < on).astype(np.float64)
    return write_audio(path, _channels(voice * gate, channels), rate)


def bursts(seconds: float = 3.0, on: float = 0.5, off: float = 0.5) -> list[tuple[float, float]]:
    """The (start, end) times of the bursts `speech_like` writes with the same arguments."""
    out, start = [], 0.0
    while start < seconds - 1e-9:
        out.append((start, min(start + on, seconds)))
        start += on + off
    return out


def noise(path, seconds: float = 2.0, rate: int = 22050, amp: float = 0.1, channels: int = 1,
          seed: int = 0) -> Path:
    """White noise (uniform), reproducible by seed."""
    rng = np.random.default_rng(seed)
    return write_audio(path, rng.uniform(-amp, amp, size=(int(round(seconds * rate)), channels)), rate)


def silence(path, seconds: float = 1.0, rate: int = 22050, channels: int = 1) -> Path:
    """Digital silence (all-zero samples)."""
    return write_audio(path, np.zeros((int(round(seconds * rate)), channels)), rate)


def make_video(path, seconds: float = 2.0, with_audio: bool = True, fps: int = 25, width: int = 64,
               height: int = 48, rate: int = 22050, freq: float = 440.0,
               audio_seconds: float | None = None, codec: str | None = None) -> Path:
    """A tiny MPEG-4 video (moving gradient, `fps` frames a second) with, optionally, an AAC
    sine-tone sound track of `audio_seconds` (default: as long as the picture). A .webm file gets
    VP9 and Opus (48 kHz) instead, the codecs WebM allows; `codec` names another video encoder
    (e.g. libx264, whose B-frames give .mkv packets without a dts)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_frames = int(round(seconds * fps))
    webm = path.suffix.lower() == ".webm"
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec or ("libvpx-vp9" if webm else "mpeg4"), rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        audio = None
        if with_audio:
            audio = out.add_stream("libopus", rate=48000, layout="mono") if webm else \
                out.add_stream("aac", rate=rate, layout="mono")
        yy, xx = np.mgrid[0:height, 0:width]
        for i in range(n_frames):
            img = np.stack([(xx * 4 + i * 8) % 256, (yy * 5) % 256, np.full_like(xx, (i * 10) % 256)], axis=-1)
            frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
            frame.pts = i
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
        if audio is not None:
            a_len = seconds if audio_seconds is None else audio_seconds
            _push_audio(out, audio, to_int16(_sine(freq, a_len, rate, 0.3)), rate, "mono")
    return path


def corrupt_file(path, header: bytes | None = None) -> Path:
    """A file with a media extension but garbage content (a broken RIFF header for .wav)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    head = header if header is not None else (
        b"RIFF\x24\x00\x00\x00WAVEjunk" if path.suffix.lower() == ".wav" else b"")
    path.write_bytes(head + rng.integers(0, 256, size=2048, dtype=np.uint8).tobytes())
    return path


def empty_file(path) -> Path:
    """A zero-byte file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def spoken(path, text: str, rate: int = 16000, speed: float = 1.0) -> Path:
    """Clean synthetic speech of `text` by the embedded TTS (hibari-tts, 24 kHz), resampled to `rate`."""
    from hibari import Hibari

    audio = Hibari()(text, speed=speed, seed=0)
    if rate != 24000:
        n = int(round(len(audio) * rate / 24000))
        audio = np.interp(np.arange(n) * (24000 / rate), np.arange(len(audio)), audio)
    return write_audio(path, audio, rate)


def espeak_speech(path, text: str, voice: str = "en-us", wpm: int = 150) -> Path:
    """Robotic speech by cadenza's espeak-ng backend (any of its languages; the library bundled by
    espeakng-loader, or the espeak-ng program), as a 22.05 kHz WAV."""
    from cadenza.tools.speech import tts_espeak

    audio, rate = tts_espeak.synthesize(text, voice, speed=wpm / 160)
    return write_audio(path, audio, rate)


# -- measuring a tool's output ---------------------------------------------------

def decode(media) -> tuple[np.ndarray, int]:
    """Float samples in [-1, 1), shape [n, channels], and the sample rate."""
    from cadenza.tools.audio.io import load_segment, samples_of

    seg = load_segment(media)
    return samples_of(seg).astype(np.float64) / 32768, seg.frame_rate


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def db(ratio: float) -> float:
    return 20 * np.log10(ratio)


def amplitude_at(x: np.ndarray, rate: int, freq: float, t0: float = 0.0, t1: float | None = None) -> float:
    """Amplitude of the `freq` sinusoid in x[t0:t1] (mono mix), Hann-windowed projection."""
    mono = x.mean(axis=1) if x.ndim == 2 else x
    a, b = int(t0 * rate), len(mono) if t1 is None else int(t1 * rate)
    seg = mono[a:b]
    w = np.hanning(len(seg))
    t = np.arange(len(seg)) / rate
    return float(2 * np.abs(np.sum(seg * w * np.exp(-2j * np.pi * freq * t))) / np.sum(w))


def dominant_freq(x: np.ndarray, rate: int) -> float:
    mono = x.mean(axis=1) if x.ndim == 2 else x
    n = 1 << int(np.ceil(np.log2(len(mono) * 4)))
    spec = np.abs(np.fft.rfft(mono * np.hanning(len(mono)), n))
    k = int(np.argmax(spec[1:])) + 1
    if 1 <= k < len(spec) - 1:  # parabolic interpolation between bins
        l, c, r = np.log(spec[k - 1:k + 2] + 1e-12)
        k = k + 0.5 * (l - r) / (l - 2 * c + r)
    return k * rate / n


def loudness(x: np.ndarray, rate: int) -> float:
    import warnings

    import pyloudnorm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pyloudnorm.Meter(rate).integrated_loudness(x)


def assert_one_line_naming(err: BaseException, name: str) -> None:
    msg = str(err)
    assert "\n" not in msg.strip(), msg
    assert name in msg, f"message does not name {name}: {msg}"
