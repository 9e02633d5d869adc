"""Audio in and out through PyAV, whose wheels bundle FFmpeg: nothing to install by hand.

pydub does the editing, but its own file loading shells out to ffmpeg/ffprobe
binaries; we decode and encode with PyAV instead and hand pydub raw PCM.
"""

from __future__ import annotations

import errno
from fractions import Fraction
from pathlib import Path

import warnings

import numpy as np

with warnings.catch_warnings():  # pydub warns when no ffmpeg binary is on PATH; we never use one
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment

from ...errors import InputError, MediaError
from ...media import Media, open_media
from ..base import check_cancelled

# Output formats: extension -> (container format, audio codec)
FORMATS = {
    "wav": ("wav", "pcm_s16le"),
    "flac": ("flac", "flac"),
    "mp3": ("mp3", "libmp3lame"),
    "ogg": ("ogg", "libopus"),
    "opus": ("ogg", "libopus"),
    "m4a": ("mp4", "aac"),
}


# numpy dtype of each packed PyAV sample format decode_pcm produces
_PCM_DTYPES = {"s16": np.int16, "flt": np.float32}


def decode_pcm(path: Path, *, fmt: str, layout: str | None = None, rate: int | None = None,
               name: str | None = None, no_audio_hint: str = "") -> tuple[np.ndarray, int, int]:
    """Decode the first audio stream of `path` to interleaved PCM: (samples, rate, channels).

    `fmt` is "s16" or "flt"; `layout` ("mono"/"stereo") and `rate` default to the source's
    own (more than two channels are mixed to stereo). Any decode failure becomes one
    MediaError line naming the file as `name` (default: the full path).
    """
    import av

    name = str(path) if name is None else name
    chunks: list[np.ndarray] = []
    try:
        with open_media(path, f"audio {name}") as container:
            if not container.streams.audio:
                raise MediaError(f"no audio track in {name}{no_audio_hint}")
            stream = container.streams.audio[0]
            if layout is None:
                layout = "stereo" if min(stream.codec_context.channels or 1, 2) == 2 else "mono"
            rate = rate or stream.codec_context.sample_rate
            resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
            for i, frame in enumerate(container.decode(stream)):
                if i % 64 == 0:
                    check_cancelled()  # a long file stops decoding when its step is cancelled
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))  # flush
    except MediaError:
        raise
    # ValueError covers UnicodeDecodeError from PyAV reading a garbled header
    except (av.error.FFmpegError, ValueError) as e:
        raise MediaError(f"cannot decode audio {name}: {av_reason(e)}") from e
    samples = np.concatenate(chunks) if chunks else np.zeros(0, _PCM_DTYPES[fmt])
    return samples, rate, 2 if layout == "stereo" else 1


def load_segment(audio: Media | str | Path) -> AudioSegment:
    """Decode any audio (or the audio track of a video) to a 16-bit pydub segment."""
    path = Path(audio.path if isinstance(audio, Media) else audio)
    samples, rate, channels = decode_pcm(path, fmt="s16")
    if not samples.size:
        raise MediaError(f"audio file has no samples: {path}")
    return AudioSegment(data=samples.tobytes(), sample_width=2, frame_rate=rate, channels=channels)


def save_segment(seg: AudioSegment, path: Path) -> Path:
    """Encode a segment to `path`; the extension picks the format."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise MediaError(f"unsupported audio format '{fmt}' (use one of: {', '.join(FORMATS)})")
    seg = seg.set_sample_width(2)
    if fmt == "wav":  # pydub writes WAV itself, no FFmpeg involved
        seg.export(str(path), format="wav")
        return path
    container_fmt, codec = FORMATS[fmt]
    rate = 48000 if codec == "libopus" else seg.frame_rate
    if codec == "libopus" and seg.frame_rate != rate:
        seg = seg.set_frame_rate(rate)
    encode_pcm(path, container_fmt, codec, samples_of(seg), seg.frame_rate, seg.channels)
    return path


def encode_pcm(path: Path, container_fmt: str, codec: str, samples: np.ndarray, rate: int, channels: int) -> None:
    """Encode interleaved int16 samples (shape [n, channels]) with an FFmpeg encoder."""
    import av

    layout = "stereo" if channels == 2 else "mono"
    try:
        with av.open(str(path), "w", format=container_fmt) as out:
            stream = out.add_stream(codec, rate=rate, layout=layout)
            write_audio_stream(out, stream, samples, rate, layout)
    except (av.error.FFmpegError, ValueError) as e:  # the encoder refused these settings
        path.unlink(missing_ok=True)
        if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT):  # not the settings: the disk
            raise OSError(e.errno, "No space left on device", str(path)) from None
        raise InputError(f"the {codec} encoder cannot write {path.suffix.lstrip('.')} at {rate} Hz "
                         f"{layout}: {av_reason(e)}") from None


def write_audio_stream(out, stream, samples: np.ndarray, rate: int, layout: str) -> None:
    """Push int16 samples through `stream`'s encoder into the open container `out`."""
    import av

    ctx = stream.codec_context
    resampler = av.AudioResampler(format=ctx.format.name, layout=layout, rate=ctx.sample_rate,
                                  frame_size=ctx.frame_size or 1024)
    block = 48000
    pts = 0
    for start in range(0, len(samples), block):
        check_cancelled()
        chunk = np.ascontiguousarray(samples[start:start + block]).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout=layout)
        frame.sample_rate = rate
        frame.pts = pts
        frame.time_base = Fraction(1, rate)
        pts += chunk.shape[1] // (2 if layout == "stereo" else 1)
        for f in resampler.resample(frame):
            out.mux(stream.encode(f))
    for f in resampler.resample(None):
        out.mux(stream.encode(f))
    out.mux(stream.encode(None))


def samples_of(seg: AudioSegment) -> np.ndarray:
    """int16 samples as an array of shape [n, channels]."""
    arr = np.frombuffer(seg.raw_data, dtype=np.int16)
    return arr.reshape(-1, seg.channels)


def segment_from_samples(samples: np.ndarray, rate: int) -> AudioSegment:
    samples = np.clip(np.rint(samples), -32768, 32767).astype(np.int16)
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    return AudioSegment(data=samples.tobytes(), sample_width=2, frame_rate=rate, channels=channels)


def output_suffix(source: Media, fmt: str | None) -> str:
    """Keep the input's format unless one is asked for; fall back to WAV."""
    if fmt:
        return "." + fmt.lower().lstrip(".")
    ext = source.path.suffix.lower().lstrip(".")
    return "." + (ext if ext in FORMATS else "wav")


def av_reason(e: Exception) -> str:
    """FFmpeg's own words, without PyAV's errno prefix."""
    return getattr(e, "strerror", None) or str(e).splitlines()[0]
