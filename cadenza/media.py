"""File-backed media references: what tools take and return.

A media value is a path plus what we know about it (mime type, duration, sample
rate, size). Bytes never travel through Cadenza: an LLM sees `str(media)`, a
short description such as `<audio speech-3fa2c1.wav 12.3s 24kHz mono>`.
Probing uses PyAV, whose wheels bundle the FFmpeg libraries.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from .errors import MediaError

AUDIO_EXTS = {".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aiff", ".aif", ".wma"}
VIDEO_EXTS = {".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
SUBTITLE_EXTS = {".srt", ".vtt"}


class Media(BaseModel):
    """A reference to a media file. Subclasses fix the kind."""

    model_config = ConfigDict(frozen=True)
    kind: ClassVar[str] = "file"

    path: Path
    mime: str | None = None
    size_bytes: int | None = None
    duration: float | None = None  # seconds
    sample_rate: int | None = None
    channels: int | None = None
    width: int | None = None
    height: int | None = None

    @classmethod
    def from_path(cls, path: str | os.PathLike, *, probe: bool = True) -> "Media":
        """Describe the file at `path`; raise MediaError if it is missing or unreadable."""
        p = Path(path)
        if not p.exists():
            raise MediaError(f"{cls.kind} file not found: {p}")
        if not p.is_file():
            raise MediaError(f"not a file: {p}")
        size = p.stat().st_size
        if size == 0:
            raise MediaError(f"{cls.kind} file is empty: {p}")
        info: dict[str, Any] = {"size_bytes": size, "mime": mimetypes.guess_type(p.name)[0]}
        if probe and cls.kind in PROBED_KINDS:
            info.update(_probe(p, cls.kind))
        return cls(path=p, **info)

    def describe(self) -> str:
        """Short text for a prompt or a progress line; never the bytes."""
        bits = [self.kind, self.path.name]
        if self.duration is not None:
            bits.append(f"{self.duration:.1f}s")
        if self.sample_rate:
            bits.append(f"{self.sample_rate / 1000:g}kHz")
        if self.channels:
            bits.append({1: "mono", 2: "stereo"}.get(self.channels, f"{self.channels}ch"))
        if self.width and self.height:
            bits.append(f"{self.width}x{self.height}")
        return "<" + " ".join(bits) + ">"

    def __str__(self) -> str:
        return self.describe()

    def content_hash(self) -> str:
        return file_sha256(self.path)


class Audio(Media):
    kind: ClassVar[str] = "audio"


class Video(Media):
    kind: ClassVar[str] = "video"


class Image(Media):
    kind: ClassVar[str] = "image"


class Subtitles(Media):
    """An SRT or WebVTT file."""

    kind: ClassVar[str] = "subtitles"


MEDIA_TYPES: dict[str, type[Media]] = {"audio": Audio, "video": Video, "image": Image, "subtitles": Subtitles}
PROBED_KINDS = ("audio", "video", "image")


def guess_kind(path: str | os.PathLike) -> str:
    """Kind of a file from its extension ('file' when unknown)."""
    ext = Path(path).suffix.lower()
    if ext in AUDIO_EXTS:
        return "audio"
    if ext in VIDEO_EXTS:
        return "video"
    if ext in IMAGE_EXTS:
        return "image"
    if ext in SUBTITLE_EXTS:
        return "subtitles"
    return "file"


def _probe(path: Path, kind: str) -> dict[str, Any]:
    import av  # imported here: `import cadenza` stays fast

    try:
        with av.open(str(path)) as container:
            audio = next(iter(container.streams.audio), None)
            video = next(iter(container.streams.video), None)
            duration = container.duration / 1_000_000 if container.duration else None
            info: dict[str, Any] = {}
            if kind == "audio":
                if audio is None:
                    raise MediaError(f"no audio track in {path}")
                info["sample_rate"] = audio.codec_context.sample_rate
                info["channels"] = audio.codec_context.channels
                if duration is None and audio.duration is not None and audio.time_base:
                    duration = float(audio.duration * audio.time_base)
                if duration is None:
                    # Raw streams (e.g. some wav/adts) carry no duration: count samples.
                    duration = sum(f.samples for f in container.decode(audio)) / info["sample_rate"]
                if duration is not None and duration <= 0:
                    raise MediaError(f"audio file has no samples: {path}")
            elif kind in ("video", "image"):
                if video is None:
                    raise MediaError(f"no {'picture' if kind == 'image' else 'video track'} in {path}")
                info["width"] = video.codec_context.width
                info["height"] = video.codec_context.height
                if kind == "video" and audio is not None:
                    info["sample_rate"] = audio.codec_context.sample_rate
                    info["channels"] = audio.codec_context.channels
            if kind != "image":
                info["duration"] = round(duration, 3) if duration is not None else None
            return info
    except MediaError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise MediaError(f"cannot read {kind} file {path}: {getattr(e, 'strerror', None) or _first_line(e)}") from e


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, remembered by (path, size, mtime) so re-runs do not re-read."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _hash_lock:
        _hash_cache[key] = digest
    return digest


def to_jsonable(value: Any) -> Any:
    """Values as JSON: media become {"kind", "path", ...}, pydantic models become dicts."""
    if isinstance(value, Media):
        return {"kind": value.kind, **value.model_dump(mode="json", exclude_none=True)}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
