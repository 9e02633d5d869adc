"""File-backed media references: what tools take and return.

A media value is a path plus what we know about it (mime type, duration, sample
rate, size). Bytes never travel through Cadenza: an LLM sees `str(media)`, a
short description such as `<audio speech-3fa2c1.wav 12.3s 24kHz mono>`.
Probing uses PyAV, whose wheels bundle the FFmpeg libraries.

Every decoder opens a user's file with `open_media`, never `av.open(path)`:

- Only plain containers are read (`READABLE_FORMATS`, given to FFmpeg as `format_whitelist` and
  checked again after opening) and only through the `file` protocol. Demuxers that open other
  files or URLs (HLS and other playlists, ffconcat, image sequences, DASH ...) are refused, so a
  playlist cannot pull in a file outside the run's allowed roots, nor a URL.
- We open the file and FFmpeg gets that open file (`/proc/self/fd/N` on Linux, a Python file
  object elsewhere), never a path to look up again. The workspace checks a path and hands
  over its real, symlink-free form; each open walks that path a component at a time with
  `O_NOFOLLOW` (relative to the folder opened before it), so a folder swapped for a symlink
  between the check and the open makes the open fail instead of reading the link's target.
  Copying inputs into the run's folder would cost a copy of every (possibly large) video, and
  keeping one descriptor open from the check to the last decode would tie files to plan values;
  the no-follow walk costs a few system calls per open and needs no state.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import os
import stat
import threading
from pathlib import Path
from typing import Any, ClassVar, Iterator

from pydantic import BaseModel, ConfigDict

from .errors import MediaError

AUDIO_EXTS = {".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aiff", ".aif", ".wma"}
VIDEO_EXTS = {".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
SUBTITLE_EXTS = {".srt", ".vtt"}
DATA_EXTS = {".json"}
MIDI_EXTS = {".mid", ".midi"}


class Media(BaseModel):
    """A reference to a media file. Subclasses fix the kind."""

    model_config = ConfigDict(frozen=True)
    kind: ClassVar[str] = "file"
    may_be_empty: ClassVar[bool] = False  # an empty file is corrupt, except where it means "nothing" (no cues)

    path: Path
    mime: str | None = None
    size_bytes: int | None = None
    duration: float | None = None  # seconds
    sample_rate: int | None = None
    channels: int | None = None
    width: int | None = None
    height: int | None = None
    mode: str | None = None  # a picture's Pillow mode (RGB, RGBA, L, P ...)
    frames: int | None = None  # a picture's frames (an animated GIF has several; tools use the first)

    @classmethod
    def from_path(cls, path: str | os.PathLike, *, probe: bool = True) -> "Media":
        """Describe the file at `path`; raise MediaError if it is missing or unreadable. Audio,
        video and images are probed through `open_media`: no symlink on `path` is followed, so
        give the real path (`Workspace.resolve_input` returns it)."""
        p = Path(path)
        if not p.exists():
            raise MediaError(f"{cls.kind} file not found: {p}")
        if not p.is_file():
            raise MediaError(f"not a file: {p}")
        size = p.stat().st_size
        if size == 0 and not cls.may_be_empty:
            raise MediaError(f"{cls.kind} file is empty: {p}")
        info: dict[str, Any] = {"size_bytes": size, "mime": mimetypes.guess_type(p.name)[0]}
        if probe and cls.kind == "image":
            info.update(probe_image(p))
        elif probe and cls.kind in PROBED_KINDS:
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
    """An SRT or WebVTT file (an empty SRT file is valid: no cues, e.g. for a clip with no speech)."""

    kind: ClassVar[str] = "subtitles"
    may_be_empty: ClassVar[bool] = True


class Data(Media):
    """A JSON document a tool writes for people and later runs to read (dub_lines.json)."""

    kind: ClassVar[str] = "data"


class Midi(Media):
    """A Standard MIDI File: a score a person opens in a DAW (the offline composer writes one)."""

    kind: ClassVar[str] = "midi"


MEDIA_TYPES: dict[str, type[Media]] = {"audio": Audio, "video": Video, "image": Image, "subtitles": Subtitles,
                                       "data": Data, "midi": Midi}
PROBED_KINDS = ("audio", "video", "image")

# What a plan may read off a media value: `$narration.duration` is a number (compose music as long
# as the narration). Per kind, the field and its type tag.
MEDIA_FIELDS: dict[str, dict[str, str]] = {
    "audio": {"duration": "number", "sample_rate": "integer", "channels": "integer"},
    "video": {"duration": "number", "sample_rate": "integer", "channels": "integer", "width": "integer",
              "height": "integer"},
    "image": {"width": "integer", "height": "integer"},
}


def media_field_tag(kinds: list[str], field: str) -> str | None:
    """The type tag of `field` on a value of any of these kinds; None when one of them lacks it."""
    tags = {MEDIA_FIELDS.get(k, {}).get(field) for k in kinds}
    return tags.pop() if len(tags) == 1 and None not in tags else None


def media_field(value: Any, field: str, ref: str) -> Any:
    """`value.field` for a media value (`ref` names it in the error when the file does not say)."""
    from .errors import InputError

    got = getattr(value, field, None) if isinstance(value, Media) and field in MEDIA_FIELDS.get(value.kind, {}) else None
    if got is None:
        raise InputError(f"{ref}: {getattr(value, 'path', value)} has no known {field}")
    return got


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
    if ext in DATA_EXTS:
        return "data"
    if ext in MIDI_EXTS:
        return "midi"
    return "file"


def _probe(path: Path, kind: str) -> dict[str, Any]:
    import av  # imported here: `import cadenza` stays fast

    try:
        with open_media(path, f"{kind} file {path}") as container:
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


# FFmpeg's names for the demuxers of the plain containers Cadenza reads; none of them opens another
# file. Pictures come through the one-picture `*_pipe` demuxers (and gif): `image2`, the image
# sequence reader, is left out, as it expands a pattern into other files.
READABLE_FORMATS = (
    "wav", "w64", "aiff", "mp3", "flac", "ogg", "aac", "asf", "caf", "wv",  # aac: raw ADTS; asf: wma
    "mov", "matroska", "avi", "mpegts", "mpeg", "mpegvideo",  # mp4/m4a/mov, mkv/webm, .ts, .mpg
    "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif",
)
_OPEN_OPTIONS = {"format_whitelist": ",".join(READABLE_FORMATS), "protocol_whitelist": "file",
                 "enable_drefs": "0"}  # mov: never follow a reference to another file (FFmpeg's default too)

# Files that make FFmpeg open others, named for the message (the whitelist above is the guard)
_REFERENCING_EXTS = {".m3u8": "HLS playlist", ".m3u": "M3U playlist", ".ffconcat": "ffconcat list",
                     ".concat": "concat list", ".pls": "PLS playlist", ".mpd": "DASH manifest",
                     ".xspf": "XSPF playlist", ".smil": "SMIL playlist"}
_PROC_FD = os.path.isdir("/proc/self/fd")  # Linux: hand FFmpeg our open file by its /proc name
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


@contextlib.contextmanager
def open_media(path: str | os.PathLike, label: str | None = None) -> Iterator[Any]:
    """An `av` input container on a user's media file, opened safely (see the module docstring).

    `label` names the file in errors (default: the path). Raises MediaError, one line, for a
    symlink on the path, a file that is not a regular one, a playlist or other container that
    opens other files, and a format not in READABLE_FORMATS; FFmpeg's other errors pass through."""
    import av

    label = label or str(path)
    fd = open_nofollow(Path(path), label)
    source = None
    try:
        what = _opens_others(Path(path).name, os.read(fd, 4096))
        if what:
            raise MediaError(f"cannot read {label}: {what}: a container that opens other files is not accepted")
        os.lseek(fd, 0, os.SEEK_SET)
        if _PROC_FD:  # FFmpeg opens the same file anew through the link; no path is looked up
            target: Any = f"/proc/self/fd/{fd}"
        else:
            source = target = os.fdopen(fd, "rb")
            fd = -1
        try:
            container = av.open(target, container_options=_OPEN_OPTIONS)
        except av.error.ArgumentError:  # FFmpeg's answer to a format not on the whitelist
            raise MediaError(f"cannot read {label}: not an audio, video or image format Cadenza reads") from None
    except BaseException:
        if source is not None:
            source.close()
        raise
    finally:
        if fd >= 0:
            os.close(fd)
    try:
        found = container.format.name
        if not set(found.split(",")) & set(READABLE_FORMATS):
            raise MediaError(f"cannot read {label}: its format ({found}) is not one Cadenza reads")
        yield container
    finally:
        container.close()
        if source is not None:
            source.close()


def open_nofollow(path: Path, label: str) -> int:
    """A read-only descriptor for the regular file at `path`, opened one component at a time
    without following a symlink anywhere on the way (where the system allows: not on Windows)."""
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | _CLOEXEC
    if not (_NOFOLLOW and os.open in os.supports_dir_fd):
        fd = os.open(path, flags)
    else:
        parts = path.parts
        here = parts[0] if path.is_absolute() else "."
        names = parts[1:] if path.is_absolute() else parts
        if not names:
            raise MediaError(f"cannot read {label}: not a file")
        fd = os.open(here, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
        for i, name in enumerate(names):
            last = i == len(names) - 1
            want = flags | os.O_NONBLOCK if last else os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC
            try:
                nxt = os.open(name, want | _NOFOLLOW, dir_fd=fd)
            except OSError as e:
                link = _is_link(name, fd)
                os.close(fd)
                if link:
                    where = os.path.join(here, *names[: i + 1])
                    raise MediaError(f"cannot read {label}: {where} is a symbolic link (not followed: "
                                     f"media are opened by the real path that was checked)") from None
                raise MediaError(f"cannot read {label}: {e.strerror or e}") from None
            os.close(fd)
            fd = nxt
        os.set_blocking(fd, True)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise MediaError(f"cannot read {label}: not a regular file")
    return fd


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _opens_others(name: str, head: bytes) -> str | None:
    """What kind of file-that-opens-others this is, by its first bytes or its name; None for media."""
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    ext = Path(name).suffix.lower()
    if head.startswith(b"#EXTM3U"):
        return "HLS playlist" if b"#EXT-X-" in head or ext == ".m3u8" else "M3U playlist"
    if head.startswith(b"ffconcat version"):
        return "ffconcat list"
    if head.startswith(b"[playlist]"):
        return "PLS playlist"
    if head.startswith(b"<"):
        low = head.lower()
        for tag, what in ((b"<mpd", "DASH manifest"), (b"<smil", "SMIL playlist"), (b"<playlist", "XSPF playlist")):
            if tag in low:
                return what
    return _REFERENCING_EXTS.get(ext)


_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()
HASH_CACHE_MAX = 4096  # a server hashes new paths (each run's files) for ever: the oldest are forgotten


def hash_file(path: str | os.PathLike) -> str:
    """sha256 of a file as it is now (never remembered: for checking a file that may have changed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, remembered by (path, size, mtime) so re-runs do not re-read."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    digest = hash_file(p)
    with _hash_lock:
        _hash_cache[key] = digest
        while len(_hash_cache) > HASH_CACHE_MAX:
            del _hash_cache[next(iter(_hash_cache))]  # dicts keep insertion order: the oldest first
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


# -- pictures, with Pillow -------------------------------------------------------------------
# Pictures are read with Pillow (EXIF orientation, modes, animation frames, and a guard against
# decompression bombs), from the file open_nofollow opened (no symlink followed on the checked path):
# - Orientation: the EXIF Orientation tag is applied (a phone's portrait photo comes upright), and
#   the probed width and height are the upright ones.
# - Animated GIF, WebP or multi-page TIFF: the first frame, with a note.
# - MAX_PIXELS: a larger picture is refused in one line before it is decoded (Pillow's own bomb check
#   stops at 2 x 89 million pixels after allocating); 50 million pixels is 8660 x 5773, larger than any
#   phone camera writes.

MAX_PIXELS = 50_000_000
_SWAPS = {5, 6, 7, 8}  # EXIF orientations that turn the picture by 90 degrees


def _open(path: Path, label: str):
    from PIL import Image as PILImage, UnidentifiedImageError

    fd = open_nofollow(path, label)
    f = os.fdopen(fd, "rb")
    try:
        img = PILImage.open(f)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        f.close()
        raise MediaError(f"cannot read {label}: not a picture Pillow can read ({_reason(e)})") from None
    except BaseException:
        f.close()
        raise
    return img, f


def _reason(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def probe_image(path: Path) -> dict[str, Any]:
    """width, height (upright), mode and frames of a picture, without decoding its pixels."""
    label = f"image file {path}"
    img, f = _open(path, label)
    with f, img:
        w, h = img.size
        if w <= 0 or h <= 0:
            raise MediaError(f"cannot read {label}: it has no pixels ({w}x{h})")
        if w * h > MAX_PIXELS:
            raise MediaError(f"{label} is {w}x{h}, {w * h / 1e6:.0f} million pixels: more than the "
                             f"{MAX_PIXELS / 1e6:.0f} million an image tool reads (scale it down first)")
        try:  # a PNG keeps EXIF after the pixels: reading it decodes the file, so a truncated one fails here
            orientation = img.getexif().get(0x0112, 1) if hasattr(img, "getexif") else 1
        except (OSError, ValueError, SyntaxError) as e:
            raise MediaError(f"cannot read {label}: {_reason(e)}") from None
        if orientation in _SWAPS:
            w, h = h, w
        return {"width": w, "height": h, "mode": img.mode, "frames": getattr(img, "n_frames", 1)}


def load_image(path: str | os.PathLike, notes: list[str] | None = None, label: str | None = None):
    """The picture at `path` decoded, upright, first frame, in RGB or RGBA (alpha kept). A truncated
    or corrupt file is one MediaError line naming it; `notes` gets a line for a dropped animation."""
    from PIL import Image as PILImage, ImageOps

    path = Path(path)
    label = label or f"image {path.name}"
    img, f = _open(path, label)
    with f, img:
        if img.size[0] * img.size[1] > MAX_PIXELS:
            raise MediaError(f"{label} is {img.size[0]}x{img.size[1]}: more than the "
                             f"{MAX_PIXELS / 1e6:.0f} million pixels an image tool reads")
        frames = getattr(img, "n_frames", 1)
        if frames > 1 and notes is not None:
            notes.append(f"{path.name} has {frames} frames (animation or pages): the first one is used")
        try:
            img.seek(0)
            img.load()
            upright = ImageOps.exif_transpose(img)
        except (OSError, ValueError, SyntaxError, PILImage.DecompressionBombError) as e:
            raise MediaError(f"cannot read {label}: {_reason(e)}") from None
        has_alpha = upright.mode in ("RGBA", "LA", "PA") or (upright.mode == "P" and "transparency" in upright.info)
        return upright.convert("RGBA" if has_alpha else "RGB")


# The suffix a file of each readable format is stored under, by kind (a stored file's kind is read off
# its suffix): pictures, then sound alone, then video (a container with a picture stream).
_IMAGE_FORMAT_EXTS = {"png_pipe": ".png", "jpeg_pipe": ".jpg", "webp_pipe": ".webp", "bmp_pipe": ".bmp",
                      "tiff_pipe": ".tiff", "gif": ".gif"}
_AUDIO_FORMAT_EXTS = {"wav": ".wav", "aiff": ".aiff", "mp3": ".mp3", "flac": ".flac", "ogg": ".ogg", "aac": ".aac",
                      "asf": ".wma", "mov": ".m4a", "matroska": ".ogg", "mpegts": ".aac"}
_VIDEO_FORMAT_EXTS = {"mov": ".mp4", "matroska": ".mkv", "avi": ".avi", "mpegts": ".ts", "mpeg": ".mpg",
                      "mpegvideo": ".mpg"}


def sniff_media(path: str | os.PathLike) -> tuple[str, str]:
    """(kind, suffix) of a media file judged by its content alone, never its name: what a server
    stores an upload under. Raises MediaError, one line, for anything that is not an audio, video or
    image file Cadenza reads."""
    import av

    label = "the uploaded file"
    try:
        with open_media(path, label) as container:
            names = container.format.name.split(",")
            has_video = any(True for _ in container.streams.video)
            has_audio = any(True for _ in container.streams.audio)
    except MediaError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise MediaError(f"{label} is not an audio, video or image file Cadenza reads") from None
    for kind, table, wanted in (("image", _IMAGE_FORMAT_EXTS, has_video), ("audio", _AUDIO_FORMAT_EXTS,
                                                                           has_audio and not has_video),
                                ("video", _VIDEO_FORMAT_EXTS, has_video)):
        ext = next((table[n] for n in names if n in table), None)
        if wanted and ext:
            return kind, ext
    raise MediaError(f"{label} holds no audio or picture Cadenza reads (format {','.join(names)})")
