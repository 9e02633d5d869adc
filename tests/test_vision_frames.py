"""extract_frame, extract_frames and detect_scenes on videos built here with PyAV: solid-colour scenes
with a single keyframe (so a frame in the middle is only reached by seeking and decoding forward)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import media_factory as mf
from cadenza.errors import InputError, MediaError
from cadenza.media import Image, load_image
from cadenza.tools.vision.frames import extract_frame, extract_frames
from cadenza.tools.vision.scenes import detect_scenes, scene_spans
from media_factory import assert_one_line_naming

pytestmark = pytest.mark.usefixtures("workdir")

FPS = 25
RED, GREEN, BLUE, WHITE = (220, 30, 30), (40, 120, 40), (30, 40, 220), (250, 250, 250)  # far apart in HSV


def _write(path, colours_per_frame, width=64, height=48) -> Path:
    """An H.264 .mp4 with one frame per entry (an RGB tuple or an HxWx3 array), 25 fps, one keyframe."""
    import av

    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS, options={"x264-params": "keyint=1000:min-keyint=1000:scenecut=0",
                                                          "preset": "ultrafast"})
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        for i, c in enumerate(colours_per_frame):
            img = c if isinstance(c, np.ndarray) else np.broadcast_to(np.array(c, np.uint8), (height, width, 3))
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img, dtype=np.uint8), format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return Path(path)


def three_scenes(path="scenes.mp4") -> Path:
    return _write(path, [RED] * 50 + [GREEN] * 50 + [BLUE] * 50)


def _colour(img: Image) -> np.ndarray:
    return np.asarray(load_image(img.path)).reshape(-1, 3).mean(axis=0)


def _is(img: Image, rgb) -> bool:
    return bool(np.abs(_colour(img) - np.array(rgb)).max() < 20)


def test_test_video_has_one_keyframe():
    import av

    three_scenes()
    with av.open("scenes.mp4") as c:
        keys = [p for p in c.demux(c.streams.video[0]) if p.size and p.is_keyframe]
    assert len(keys) == 1  # so frames after 0 s are reached by decoding forward from the seek


@pytest.mark.parametrize("t,rgb", [(0.0, RED), (3.1, GREEN), (5.0, BLUE), (5.99, BLUE)])
def test_extract_frame_at_time(t, rgb):
    three_scenes()
    img = extract_frame(video="scenes.mp4", time=t)
    assert isinstance(img, Image) and img.path.suffix == ".png" and (img.width, img.height) == (64, 48)
    assert _is(img, rgb), _colour(img)


def test_extract_frame_jpeg():
    three_scenes()
    img = extract_frame(video="scenes.mp4", time=1.0, format="jpeg")
    assert img.path.suffix == ".jpg" and _is(img, RED)


def test_extract_frame_past_the_end():
    three_scenes()
    with pytest.raises(InputError) as e:
        extract_frame(video="scenes.mp4", time=7.5)
    assert_one_line_naming(e.value, "scenes.mp4")
    assert "6 s long" in str(e.value)


def test_extract_frame_negative_time_refused():
    three_scenes()
    with pytest.raises(InputError):
        extract_frame(video="scenes.mp4", time=-1.0)


@pytest.mark.parametrize("every", [1.0, 5.0])  # 1.0: one pass decoding forward; 5.0: a seek per frame
def test_extract_frames_every(every):
    three_scenes()
    out = extract_frames(video="scenes.mp4", every=every)
    want = [i * every for i in range(int(6 / every + 0.999))]
    assert out["times"] == pytest.approx(want, abs=1e-3)
    assert len(out["images"]) == len(want)
    for img, t in zip(out["images"], out["times"]):
        assert _is(img, [RED, GREEN, BLUE][int(t // 2)]), (t, _colour(img))


def test_extract_frames_max_frames_spreads_evenly():
    three_scenes()
    out = extract_frames(video="scenes.mp4", every=0.5, max_frames=3)
    assert out["times"] == pytest.approx([0.0, 3.0, 5.52], abs=1e-3)  # of 0, 0.5 .. 5.5; 5.5 falls between frames
    assert [_is(i, c) for i, c in zip(out["images"], [RED, GREEN, BLUE])] == [True] * 3


def test_extract_frames_scenes():
    three_scenes()
    out = extract_frames(video="scenes.mp4", scenes=True)
    assert out["times"] == pytest.approx([1.0, 3.0, 5.0], abs=0.05)
    assert [_is(i, c) for i, c in zip(out["images"], [RED, GREEN, BLUE])] == [True] * 3


@pytest.mark.parametrize("kwargs", [{}, {"every": 1.0, "scenes": True}])
def test_extract_frames_needs_exactly_one_mode(kwargs):
    three_scenes()
    with pytest.raises(InputError) as e:
        extract_frames(video="scenes.mp4", **kwargs)
    assert "exactly one" in str(e.value) and "\n" not in str(e.value)


def test_detect_scenes_finds_the_cuts():
    three_scenes()
    out = detect_scenes(video="scenes.mp4")
    starts, ends = out["starts"], out["ends"]
    assert len(starts) == 3  # precision and recall 1.0: two cuts, no others
    assert starts[0] == 0.0
    assert starts[1:] == pytest.approx([2.0, 4.0], abs=1 / FPS + 1e-6)  # within a frame
    assert ends[:-1] == starts[1:]
    assert ends[-1] == pytest.approx(6.0, abs=0.05)


def test_no_cut_in_a_slow_fade():
    yy, xx = np.mgrid[0:48, 0:64]
    frames = []
    for i in range(150):
        k = i / 149
        frames.append(np.stack([xx * 2 + 40 * k, yy * 3 + 20, np.full_like(xx, 40 + 180 * k)], -1)
                      .clip(0, 255).astype(np.uint8))
    _write("fade.mp4", frames)
    assert scene_spans("fade.mp4") == [(0.0, pytest.approx(6.0, abs=0.05))]


def test_min_scene_seconds_merges_a_flash():
    _write("flash.mp4", [RED] * 50 + [WHITE] * 5 + [BLUE] * 45)  # a 0.2 s white flash at 2 s
    assert len(scene_spans("flash.mp4", min_scene_seconds=0.0)) == 3
    spans = scene_spans("flash.mp4", min_scene_seconds=0.6)
    assert len(spans) == 2 and spans[1][0] == pytest.approx(2.0, abs=1 / FPS + 1e-6)


@pytest.mark.parametrize("tool", [extract_frame, extract_frames, detect_scenes], ids=lambda t: t.name)
@pytest.mark.parametrize("kind", ["corrupt", "empty", "audio"])
def test_bad_videos(tool, kind):
    if kind == "corrupt":
        name = mf.corrupt_file("bad.mp4").name
    elif kind == "empty":
        name = mf.empty_file("empty.mp4").name
    else:
        name = mf.tone("sound.wav", seconds=1.0).name
    kwargs = {"every": 1.0} if tool is extract_frames else {}
    with pytest.raises(MediaError) as e:
        tool(video=name, **kwargs)
    assert_one_line_naming(e.value, name)
