"""Scene detection: where a video cuts from one shot to the next, with PyAV and numpy.

The measure is PySceneDetect's ContentDetector: each frame is turned to HSV (hue 0-180 as OpenCV
keeps it, saturation and value 0-255) and the mean absolute difference of each channel between
consecutive frames is averaged over the three channels; a value at or above `threshold` (27 by
default, as there) is a cut, unless the scene it would end is shorter than `min_scene_seconds`
(the later cut is dropped, so a short flash joins the scene after it).

Why our own on PyAV rather than PySceneDetect: PySceneDetect reads video through OpenCV's video IO
(a second FFmpeg build and a second decoder to install), which opens files by path; here the file
is opened like every other input with `open_media` (no symlink followed, plain containers only),
decoded by the same PyAV, and memory stays bounded: each compared frame is scaled to 64 pixels wide
before it is kept, and only the previous one is kept.

Speed: frames are decoded with the stream's threads (`thread_type="AUTO"`), but at most about
10 frames a second are scaled and compared (frames closer than 0.1 s to the last compared one are
skipped by their time). When a cut is found between two compared frames, the few frames decoded
between them (held unscaled, at most `_MAX_HELD`) are compared too, so the cut is placed on the
exact frame.

`SceneDetector` is the same finder fed one frame at a time (caption_video decodes once for scenes,
text and captions); `scene_spans` drives it over a file.

Scenes: `Scenes.starts[i]` and `Scenes.ends[i]` (seconds) are scene i's start (the time of its
first frame) and end (the next scene's start; the video's end for the last one).
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from pathlib import Path
from typing import Annotated, Callable

import numpy as np
from pydantic import BaseModel

from ...errors import MediaError
from ...media import Video, open_media
from ..base import Backend, ToolContext, check_cancelled, tool
from ..types import Range

PYAV = [Backend("pyav", "PyAV (bundled FFmpeg) for decoding, numpy for the frame differences",
                requires=("av", "numpy"))]

SAMPLE_STEP = 0.1  # seconds between compared frames: at most ~10 a second
SMALL_WIDTH = 64  # compared frames are scaled to this width
_MAX_HELD = 12  # frames held between two compared ones to place a cut exactly
_CHECK_EVERY = 25  # decoded frames between cancellation checks


class Scenes(BaseModel):
    """The scenes of a video, in order: scene i runs from starts[i] to ends[i] (seconds)."""

    starts: list[float]
    ends: list[float]


def small_hsv(frame, width: int = SMALL_WIDTH) -> np.ndarray:
    """A decoded frame scaled to `width` pixels wide, as float HSV (H 0-180, S and V 0-255)."""
    height = max(1, round(width * frame.height / max(1, frame.width)))
    rgb = frame.reformat(width=width, height=height, format="rgb24").to_ndarray().astype(np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    mn = rgb.min(axis=-1)
    c = v - mn
    s = np.where(v > 0, 255.0 * c / np.maximum(v, 1e-6), 0.0)
    safe = np.maximum(c, 1e-6)
    h = np.where(v == r, (g - b) / safe % 6.0, np.where(v == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    h = np.where(c > 0, h * 30.0, 0.0)  # 60 degrees per sector, halved as OpenCV stores hue
    return np.stack([h, s, v], axis=-1)


def content_change(a: np.ndarray, b: np.ndarray) -> float:
    """ContentDetector's score between two small HSV frames: the mean of the per-channel mean
    absolute differences (0-255 scale)."""
    return float(np.abs(a - b).reshape(-1, 3).mean(axis=0).mean())


def frame_time(frame, offset: float) -> float | None:
    """A decoded frame's time in seconds from the stream's start (None without a timestamp)."""
    t = frame.time
    return None if t is None else t - offset


def stream_offset(stream) -> float:
    """The stream's start time in seconds (frame times are counted from it)."""
    if stream.start_time is not None and stream.time_base:
        return float(stream.start_time * stream.time_base)
    return 0.0


class SceneDetector:
    """The cut finder fed one decoded frame at a time, so a caller decoding a video for other reasons
    (caption_video) finds the scenes in the same pass. `feed` returns the time of a cut it has just
    accepted (at or before the frame fed: the exact frame is placed among the held ones), else None;
    a scene that a returned cut ends is final."""

    def __init__(self, threshold: float = 27.0, min_scene_seconds: float = 0.6):
        self.threshold, self.min_scene_seconds = threshold, min_scene_seconds
        self.cuts: list[float] = []
        self.last_time = 0.0
        self._prev: np.ndarray | None = None
        self._prev_t = 0.0
        self._held: list = []  # (time, frame) decoded since the last compared frame

    @property
    def started(self) -> bool:
        return self._prev is not None

    def next_time(self) -> float:
        """The time to give a frame without a timestamp."""
        return self._prev_t + SAMPLE_STEP if self._prev is not None else 0.0

    def feed(self, frame, t: float) -> float | None:
        self.last_time = max(self.last_time, t)
        if self._prev is not None and t < self._prev_t + SAMPLE_STEP - 1e-6:
            if len(self._held) < _MAX_HELD:
                self._held.append((t, frame))
            return None
        cur = small_hsv(frame)
        found = None
        if self._prev is not None and content_change(self._prev, cur) >= self.threshold:
            cut = _place_cut(self._prev, self._held, t, cur)
            if cut - (self.cuts[-1] if self.cuts else 0.0) >= self.min_scene_seconds:
                self.cuts.append(cut)
                found = cut
        self._prev, self._prev_t, self._held = cur, t, []
        return found

    def spans(self, end: float) -> list[tuple[float, float]]:
        """(start, end) of each scene, the last one ending at `end` (the video's end)."""
        bounds = [0.0, *self.cuts, end]
        return [(round(a, 3), round(b, 3)) for a, b in zip(bounds, bounds[1:]) if b > a]


def scene_spans(path: str | os.PathLike, threshold: float = 27.0, min_scene_seconds: float = 0.6,
                check: Callable[[], None] | None = None, label: str | None = None) -> list[tuple[float, float]]:
    """The (start, end) seconds of each scene of the video at `path` (see the module docstring).
    `check` is called every few frames and may raise to stop (default: the running step's cancel
    check). Raises MediaError (one line, naming the file) for a file that cannot be decoded."""
    import av

    check = check or check_cancelled
    path = Path(path)
    label = label or f"video {path.name}"
    detector = SceneDetector(threshold, min_scene_seconds)
    try:
        with open_media(path, label) as container:
            if not container.streams.video:
                raise MediaError(f"no video track in {label}")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            offset = stream_offset(stream)
            n = 0
            for frame in container.decode(stream):
                n += 1
                if n % _CHECK_EVERY == 0:
                    check()
                t = frame_time(frame, offset)
                detector.feed(frame, detector.next_time() if t is None else t)
            if not detector.started:
                raise MediaError(f"cannot read {label}: no frame could be decoded")
            end = video_end(container, stream, detector.last_time)
    except MediaError:
        raise
    except (av.error.FFmpegError, ValueError) as e:
        raise MediaError(f"cannot decode {label}: {getattr(e, 'strerror', None) or _first_line(e)}") from e
    return detector.spans(end)


def _place_cut(prev: np.ndarray, held: list, t: float, cur: np.ndarray) -> float:
    """The time of the first frame of the new scene: of the frames between the two compared ones,
    the one after the largest change."""
    if not held:
        return t
    best_t, best, last = t, -1.0, prev
    for ht, hf in [*held, (t, None)]:
        small = cur if hf is None else small_hsv(hf)
        score = content_change(last, small)
        if score > best:
            best_t, best = ht, score
        last = small
    return best_t


def video_end(container, stream, last_time: float) -> float:
    """The end of the picture: the stream's or the container's duration, else past the last frame."""
    frame_dur = 1 / float(stream.average_rate) if stream.average_rate else 0.0
    if stream.duration and stream.time_base:
        return max(float(stream.duration * stream.time_base), last_time + frame_dur * 0.5)
    if container.duration:
        return max(container.duration / 1_000_000, last_time)
    return last_time + frame_dur


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim if sys.platform.startswith("linux") else None
    except (OSError, AttributeError):  # not glibc
        return None


def trim_heap() -> None:
    """Hand freed heap pages back to the system (glibc; elsewhere nothing), for long streaming passes. glibc
    raises its mmap threshold each time a big block is freed, after which the OCR's and the decoder's buffers
    of varying sizes come from the heap and leave holes in it: measured, caption_video's peak on a 10-minute
    720p clip was 10-15 % above its peak on a 1-minute one. Trimming every 30 s of video keeps the holes out of
    the resident memory (a fixed mmap threshold did too, at 20-40 % more CPU)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


@tool(backends=PYAV)
def detect_scenes(video: Video, ctx: ToolContext,
                  threshold: Annotated[float, Range(1, 100)] = 27.0,
                  min_scene_seconds: Annotated[float, Range(0, 60)] = 0.6) -> Scenes:
    """Find the cuts of a video: the start and end time of each scene (shot), by how much the picture changes between frames.

    Args:
        video: the video
        threshold: how large a change between two frames is a cut (mean HSV difference, 0-255 scale); lower finds more cuts
        min_scene_seconds: the shortest scene kept; a cut closer than this to the previous one is ignored (a flash joins the next scene)
    """
    spans = scene_spans(video.path, threshold, min_scene_seconds, check=ctx.check_cancelled,
                        label=f"video {video.path.name}")
    if len(spans) == 1:
        ctx.note(f"no cut found in {video.path.name}: one scene")
    return Scenes(starts=[a for a, _ in spans], ends=[b for _, b in spans])


VISION_SCENE_TOOLS = [detect_scenes]
