"""Still frames out of a video, with PyAV: one at a time, every N seconds, or one per scene.

Frames are found by seeking, never by decoding the whole file into memory: `container.seek` goes
to the nearest keyframe before the time and decoding runs forward to the first frame at or after
it (the last frame when the time falls after it, up to the video's end). `extract_frames` with
`every` seeks for each frame when the frames are more than `SEEK_GAP` seconds apart, else decodes
forward once through the file; either way no more than one decoded frame is held, and each chosen
frame is written out as soon as it is found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel

from ...errors import InputError, MediaError
from ...media import Image, Video, open_media
from ..base import Backend, ToolContext, tool
from ..types import Range
from .scenes import _first_line, frame_time, scene_spans, stream_offset

PYAV = [Backend("pyav", "PyAV (bundled FFmpeg) for decoding, Pillow for writing the pictures",
                requires=("av", "PIL"))]

SEEK_GAP = 3.0  # seconds: frames further apart than this are each found by a seek
ImageFormat = Literal["png", "jpeg"]
_EPS = 1e-4  # seconds: a frame this close before the time counts as at it
_CHECK_EVERY = 25


class Frames(BaseModel):
    """Pictures taken from a video and the time (seconds) of each one's frame."""

    images: list[Image]
    times: list[float]


def _save(frame, ctx: ToolContext, fmt: str) -> Image:
    img = frame.to_image()  # RGB
    path: Path = ctx.output_path(".png" if fmt == "png" else ".jpg")
    if fmt == "png":
        img.save(path, format="PNG")
    else:
        img.convert("RGB").save(path, format="JPEG", quality=92)
    return Image.from_path(path)


def _label(video: Video) -> str:
    return f"video {video.path.name}"


def _check_time(video: Video, time: float) -> None:
    if video.duration is not None and time > video.duration + _EPS:
        raise InputError(f"time {time:g} s is past the end of {_label(video)}, which is "
                         f"{video.duration:g} s long")


def _open_stream(container, label: str):
    if not container.streams.video:
        raise MediaError(f"no video track in {label}")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _seek_frame(container, stream, offset: float, time: float, label: str):
    """The first frame at or after `time` (seconds from the stream's start), found by seeking to the
    keyframe before it; the last frame when none follows. Seeks further back when a demuxer lands
    after the time. None when the stream has no frame at all."""
    back = 0.0
    while True:
        target = max(0.0, time - back)
        container.seek(int((target + offset) / stream.time_base), stream=stream, backward=True, any_frame=False)
        last = None
        for frame in container.decode(stream):
            t = frame_time(frame, offset)
            if t is None:
                continue
            if last is None and t > time + _EPS and target > 0:
                break  # the demuxer landed after the time: seek further back
            if t >= time - _EPS:
                return frame, t
            last = (frame, t)
        else:
            return last  # the time is after the last frame, which shows then (None: no frame at all)
        back = max(1.0, back * 4)


@tool(backends=PYAV)
def extract_frame(video: Video, ctx: ToolContext, time: Annotated[float, Range(0, 86400)] = 0.0,
                  format: ImageFormat = "png") -> Image:
    """Take one still picture out of a video: the frame shown at a given time.

    Args:
        video: the video
        time: when, in seconds from the start
        format: the picture's file format
    """
    import av

    _check_time(video, time)
    label = _label(video)
    try:
        with open_media(video.path, label) as container:
            stream = _open_stream(container, label)
            found = _seek_frame(container, stream, stream_offset(stream), time, label)
            if found is None:
                raise MediaError(f"cannot read {label}: no frame could be decoded")
            return _save(found[0], ctx, format)
    except MediaError:
        raise
    except (av.error.FFmpegError, ValueError) as e:
        raise MediaError(f"cannot decode {label}: {getattr(e, 'strerror', None) or _first_line(e)}") from e


@tool(backends=PYAV)
def extract_frames(video: Video, ctx: ToolContext, every: Annotated[float, Range(0.1, 3600)] | None = None,
                   scenes: bool = False, max_frames: Annotated[int, Range(1, 1000)] = 100,
                   format: ImageFormat = "png") -> Frames:
    """Take still pictures out of a video: one every few seconds, or one from the middle of each scene.

    Give exactly one of `every` and `scenes`. When there would be more than `max_frames` pictures,
    `max_frames` of them are taken, spread evenly over the video.

    Args:
        video: the video
        every: take a picture every this many seconds, starting at 0
        scenes: take the middle frame of each scene (shot), found as detect_scenes does
        max_frames: the most pictures to take
        format: the pictures' file format
    """
    import av

    if (every is None) == (not scenes):
        raise InputError("extract_frames: give exactly one of 'every' (seconds between pictures) and "
                         f"'scenes' (one picture per scene), not {'both' if scenes else 'neither'}")
    label = _label(video)
    duration = video.duration
    if scenes:
        spans = scene_spans(video.path, check=ctx.check_cancelled, label=label)
        times = [round((a + b) / 2, 3) for a, b in spans]
        duration = duration or (spans[-1][1] if spans else None)
    else:
        if duration is None:
            raise MediaError(f"cannot read {label}: its length is not known")
        n = int(duration / every + 1e-9) + 1
        times = [round(i * every, 6) for i in range(n) if i * every < duration - _EPS or i == 0]
    if len(times) > max_frames:
        ctx.note(f"{len(times)} frames asked of {video.path.name}: {max_frames} taken, spread evenly")
        times = _spread(times, max_frames)
    try:
        with open_media(video.path, label) as container:
            stream = _open_stream(container, label)
            offset = stream_offset(stream)
            gap = min((b - a for a, b in zip(times, times[1:])), default=0.0)
            if len(times) == 1 or gap > SEEK_GAP:
                picked = _by_seeking(container, stream, offset, times, ctx, format, label)
            else:
                picked = _by_decoding(container, stream, offset, times, ctx, format)
    except (MediaError, InputError):
        raise
    except (av.error.FFmpegError, ValueError) as e:
        raise MediaError(f"cannot decode {label}: {getattr(e, 'strerror', None) or _first_line(e)}") from e
    if not picked:
        raise MediaError(f"cannot read {label}: no frame could be decoded")
    return Frames(images=[img for img, _ in picked], times=[t for _, t in picked])


def _spread(times: list[float], m: int) -> list[float]:
    if m == 1:
        return [times[0]]
    n = len(times)
    return [times[round(i * (n - 1) / (m - 1))] for i in range(m)]


def _by_seeking(container, stream, offset, times, ctx, fmt, label) -> list[tuple[Image, float]]:
    out = []
    for t in times:
        ctx.check_cancelled()
        found = _seek_frame(container, stream, offset, t, label)
        if found is not None:
            out.append((_save(found[0], ctx, fmt), round(found[1], 3)))
    return out


def _by_decoding(container, stream, offset, times, ctx, fmt) -> list[tuple[Image, float]]:
    """One pass forward: each time gets the first frame at or after it (the last frame for times
    after it). Only the frame being looked at is held."""
    out: list[tuple[Image, float]] = []
    i, n = 0, 0
    last = None
    for frame in container.decode(stream):
        n += 1
        if n % _CHECK_EVERY == 0:
            ctx.check_cancelled()
        t = frame_time(frame, offset)
        if t is None:
            continue
        saved = None
        while i < len(times) and t >= times[i] - _EPS:
            saved = saved or _save(frame, ctx, fmt)
            out.append((saved, round(t, 3)))
            i += 1
        if i >= len(times):
            return out
        last = (frame, t)
    if last is not None and i < len(times):  # times after the last frame: it shows until the end
        img = _save(last[0], ctx, fmt)
        out.extend((img, round(last[1], 3)) for _ in times[i:])
    return out


VISION_FRAME_TOOLS = [extract_frame, extract_frames]
