"""images_to_video: pictures (one or many) made into an MP4 video, optionally over a sound track.

What an edited picture becomes when a request wants a video ("put the edited photo over the
narration as a video"). Each picture is fitted inside the frame with its aspect ratio kept (black
bars, never stretched or cropped); `motion="zoom"` adds a slow push-in (Ken Burns), `crossfade`
blends one picture into the next. Frames are made and encoded one at a time, so memory holds two
pictures whatever the length. H.264 (yuv420p, so every player opens it) and AAC audio.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np

from ...errors import InputError, MediaError
from ...media import Audio, Image, Video, load_image
from ..audio.io import load_segment, samples_of, write_audio_stream
from ..base import Backend, ToolContext, tool
from ..types import Range

PYAV = [Backend("pyav", "PyAV (bundled FFmpeg: H.264 and AAC) and Pillow", requires=("av", "PIL"))]

MAX_SIDE = 1920  # the output's long side at most (the first picture's size otherwise)
DEFAULT_SECONDS = 5.0  # per picture, without a sound track to fill
ZOOM = 0.08  # how far the push-in goes over one picture's time


def _frame_size(first, width: int | None, height: int | None) -> tuple[int, int]:
    w0, h0 = first.size
    if width and height:
        w, h = width, height
    elif width:
        w, h = width, round(width * h0 / w0)
    elif height:
        w, h = round(height * w0 / h0), height
    else:
        scale = min(1.0, MAX_SIDE / max(w0, h0))
        w, h = round(w0 * scale), round(h0 * scale)
    return max(2, w - w % 2), max(2, h - h % 2)  # yuv420p needs even sides


def _fit(img, size: tuple[int, int], zoom: float = 1.0) -> np.ndarray:
    """`img` scaled by `zoom` past the largest size that fits inside `size` (aspect kept), centred on black."""
    from PIL import Image as PILImage

    W, H = size
    scale = min(W / img.width, H / img.height) * zoom
    w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
    scaled = img.resize((w, h), PILImage.Resampling.BILINEAR)
    canvas = PILImage.new("RGB", size)
    canvas.paste(scaled, ((W - w) // 2, (H - h) // 2))  # a zoomed picture overflows evenly: its centre stays
    return np.asarray(canvas)


@tool(backends=PYAV)
def images_to_video(images: list[Image], ctx: ToolContext, audio: Audio | None = None,
                    seconds: Annotated[float, Range(0.1, 3600)] | None = None,
                    fps: Annotated[int, Range(1, 60)] = 25,
                    width: Annotated[int, Range(16, 7680)] | None = None,
                    height: Annotated[int, Range(16, 4320)] | None = None,
                    motion: Literal["none", "zoom"] = "none",
                    crossfade: Annotated[float, Range(0, 5)] = 0.5) -> Video:
    """Make a video (MP4) from one or more pictures shown in turn, optionally over a sound track (a slideshow).

    Args:
        images: the pictures, in order (one picture is fine)
        audio: a sound track; without `seconds`, the pictures share its length
        seconds: how long each picture is shown (default: the sound's length shared out, else 5 s)
        fps: frames per second
        width: the video's width (default: the first picture's, at most 1920 on the long side)
        height: the video's height
        motion: none, or zoom: a slow push-in on each picture
        crossfade: seconds over which one picture blends into the next
    """
    import av

    if not images:
        raise InputError("images_to_video: no pictures given")
    seg = load_segment(audio) if audio is not None else None
    sound_seconds = len(seg) / 1000 if seg is not None else None
    if seconds is None:
        seconds = sound_seconds / len(images) if sound_seconds else DEFAULT_SECONDS
        seconds = max(seconds, 1.0 / fps)
    total = seconds * len(images)
    if sound_seconds is not None and sound_seconds > total + 0.05:
        ctx.note(f"images_to_video: the sound is {sound_seconds:.1f} s, the pictures {total:.1f} s: the sound is cut")
    first = load_image(images[0].path).convert("RGB")
    size = _frame_size(first, width, height)
    per = max(1, round(seconds * fps))
    fade = min(round(crossfade * fps), per // 2)
    out_path: Path = ctx.output_path(".mp4")
    try:
        with av.open(str(out_path), "w") as out:
            vs = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "20"})
            vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
            a_out = None
            if seg is not None:
                seg = seg[:round(per * len(images) / fps * 1000)]
                layout = "stereo" if seg.channels == 2 else "mono"
                a_out = out.add_stream("aac", rate=seg.frame_rate, layout=layout)
            n = 0
            current = first
            for i in range(len(images)):
                nxt = load_image(images[i + 1].path).convert("RGB") if i + 1 < len(images) else None
                for k in range(per):
                    if k % 25 == 0:
                        ctx.check_cancelled()
                    z = 1.0 + ZOOM * k / per if motion == "zoom" else 1.0
                    frame = _fit(current, size, z)
                    if nxt is not None and k >= per - fade:  # blend towards the next picture's first frame
                        a = (k - (per - fade) + 1) / (fade + 1)
                        frame = (frame * (1 - a) + _fit(nxt, size) * a).astype(np.uint8)
                    vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                    vf.pts = n
                    n += 1
                    out.mux(vs.encode(vf))
                current = nxt
            out.mux(vs.encode(None))
            if a_out is not None:
                write_audio_stream(out, a_out, samples_of(seg), seg.frame_rate, layout)
    except av.error.FFmpegError as e:
        raise MediaError(f"cannot write video {out_path.name}: {getattr(e, 'strerror', None) or e}") from e
    return Video.from_path(out_path)


SLIDESHOW_TOOLS = [images_to_video]
