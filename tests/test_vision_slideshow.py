"""images_to_video: pictures made into an MP4 (aspect kept, crossfade, zoom), over a sound track or not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

import media_factory as mf
from cadenza.errors import InputError
from cadenza.media import Image
from cadenza.tools.vision.frames import extract_frame
from cadenza.tools.vision.slideshow import images_to_video

pytestmark = pytest.mark.usefixtures("workdir")


def picture(path, size, colour) -> Image:
    PILImage.new("RGB", size, colour).save(path)
    return Image.from_path(path)


def mean_rgb(img: Image, box=None) -> np.ndarray:
    with PILImage.open(img.path) as im:
        a = np.asarray(im.convert("RGB"), dtype=float)
    if box:
        x0, y0, x1, y1 = box
        a = a[y0:y1, x0:x1]
    return a.reshape(-1, 3).mean(axis=0)


def test_two_pictures_share_the_sound_and_keep_their_aspect():
    import av

    red = picture("red.png", (320, 200), (220, 20, 20))
    tall_blue = picture("blue.png", (100, 200), (20, 20, 220))
    sound = mf.tone("tone.wav", seconds=2.0)
    video = images_to_video(images=[red, tall_blue], audio=sound, fps=10, crossfade=0.2)
    with av.open(str(video.path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.codec_context.width, v.codec_context.height) == (320, 200)
        assert a.codec_context.name == "aac"
        frames = sum(1 for _ in c.decode(v))
    assert frames == 20  # 1 s per picture at 10 fps
    assert abs(video.duration - 2.0) < 0.15
    first = extract_frame(video=video, time=0.2)
    assert mean_rgb(first)[0] > 180  # red fills the frame
    last = extract_frame(video=video, time=1.9)
    centre, side = mean_rgb(last, (140, 0, 180, 200)), mean_rgb(last, (0, 0, 60, 200))
    assert centre[2] > 180 and side.max() < 30  # the tall picture sits between black bars, not stretched


def test_crossfade_blends_and_zoom_pushes_in():
    red = picture("red.png", (160, 120), (220, 20, 20))
    blue = picture("blue.png", (160, 120), (20, 20, 220))
    video = images_to_video(images=[red, blue], seconds=1.0, fps=10, crossfade=0.5)
    mid = mean_rgb(extract_frame(video=video, time=0.75))
    assert 60 < mid[0] < 200 and 60 < mid[2] < 200  # between the two

    small = picture("dot.png", (160, 120), (0, 0, 0))
    with PILImage.open(small.path) as im:
        im = im.convert("RGB")
        im.paste((255, 255, 255), (70, 50, 90, 70))  # a 20 px white square in the middle
        im.save(small.path)
    zoomed = images_to_video(images=[small], seconds=2.0, fps=10, motion="zoom")
    def white(t):
        with PILImage.open(extract_frame(video=zoomed, time=t).path) as f:
            return int((np.asarray(f.convert("L")) > 128).sum())
    assert white(1.9) > white(0.0) * 1.1  # the square grew


def test_no_pictures_is_one_clear_error():
    with pytest.raises(InputError, match="no pictures"):
        images_to_video(images=[])
