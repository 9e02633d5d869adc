"""caption_video on clips made here (tests/vision_media.py): shots of known colours and shapes, text shown at
known times, a spoken sound track; captioned offline (EfficientNet-Lite0, RapidOCR, faster-whisper tiny.en).
Bad inputs through the CLI. The frame picker and the batching are checked alone with stand-ins."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

import media_factory as mf
import vision_media as vm
from cadenza.tools.vision.common import Caption
from cadenza.tools.vision.scenes import scene_spans

cv = importlib.import_module("cadenza.tools.vision.caption_video")  # the package's name is the tool's
ROOT = Path(__file__).resolve().parent.parent
FPS = 25
SENTENCE = "The quick brown fox jumps over the lazy dog. Boats leave the harbour at noon."
SHOTS = [vm.Shot(3.0, (200, 40, 40), "circle", text="WELCOME HOME", text_at=0.8, text_for=1.6),
         vm.Shot(4.0, (30, 110, 200), "square", text="CHAPTER ONE", text_at=1.1, text_for=2.0),
         vm.Shot(2.5, (40, 150, 70), "triangle"),
         vm.Shot(5.0, (230, 200, 40), "bar", (20, 20, 20), text="OPEN DAILY", text_at=1.3, text_for=1.5,
                 later=[("CLOSED SUNDAY", 2.8, None)]),  # a caption replaced in the same place, as subtitles are
         vm.Shot(3.5, (120, 50, 160), "circle", text="THE END", text_at=0.4, text_for=2.5)]


def run_tool(tool, workdir: Path, **kwargs):
    """(outputs, notes) of a tool run in-process the way the executor runs it."""
    from cadenza.tools.args import convert_args
    from cadenza.tools.base import ToolContext
    from cadenza.workspace import Workspace

    ws = Workspace.for_run(tempfile.mkdtemp(dir=workdir), kwargs)
    ctx = ToolContext(workspace=ws, step_id=tool.name, backend=tool.get_backend().name)
    return tool.invoke(convert_args(tool, kwargs, ws, where=tool.name), ctx), ctx.notes


@pytest.fixture(scope="module", autouse=True)
def no_llm(tmp_path_factory):
    """The template writes the summary unless a test chooses an LLM; no config file of the user's."""
    with pytest.MonkeyPatch.context() as mp:
        for var in ("CADENZA_LLM", "CADENZA_VISION_LLM", "CADENZA_VISION_MODEL"):
            mp.delenv(var, raising=False)
        mp.setenv("CADENZA_CONFIG", str(tmp_path_factory.mktemp("cfg") / "no-config.toml"))
        yield


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("clip")
    speech = mf.spoken(d / "speech.wav", SENTENCE)
    return vm.make_clip(d / "clip.mp4", SHOTS, speech=speech)


@pytest.fixture(scope="module")
def captioned(clip, tmp_path_factory):
    out, notes = run_tool(cv.caption_video, tmp_path_factory.mktemp("run"), video=str(clip.path), srt=True)
    return out, notes


def test_scenes_start_at_the_cuts(clip, captioned):
    out, _ = captioned
    starts = [s.start for s in out["scenes"]]
    assert len(starts) == len(clip.cuts) + 1 and starts[0] == 0.0
    assert starts[1:] == pytest.approx(clip.cuts, abs=1 / FPS + 1e-6)
    assert [s.end for s in out["scenes"]][:-1] == starts[1:]
    assert out["scenes"][-1].end == pytest.approx(clip.duration, abs=0.05)
    # the same cuts as detect_scenes finds decoding the file on its own
    assert [(s.start, s.end) for s in out["scenes"]] == scene_spans(clip.path)


def test_each_text_is_found_with_its_time(clip, captioned):
    out, _ = captioned
    segs = out["screen_text"]
    for text, appears, goes in clip.texts:
        found = [s for s in segs if s.text == text]
        assert len(found) == 1, (text, segs)
        assert appears - 0.05 <= found[0].start <= appears + 1.0, (text, found[0])
        assert found[0].end <= goes + 1.0 and found[0].end > found[0].start
    assert out["text"].splitlines() == [t for t, _, _ in clip.texts]  # in order of appearance
    assert len(segs) == len(clip.texts)  # nothing read off the shapes
    for scene, shot in zip(out["scenes"], SHOTS):
        assert scene.text == [t for t, _, _ in shot.captions()], scene


def test_the_transcript_holds_the_spoken_words(captioned):
    out, _ = captioned
    said = re.sub(r"[^a-z ]", "", out["transcript"].lower())
    for word in ("quick", "brown", "fox", "lazy", "dog", "boats", "noon"):
        assert word in said, out["transcript"]
    assert out["speech"] and out["speech"][0].start < 1.5 and out["speech"][-1].end <= 18.1


def test_one_description_per_scene_at_its_times(captioned):
    out, _ = captioned
    scenes, descs = out["scenes"], out["descriptions"]
    assert len(descs) == len(scenes)
    for s, d in zip(scenes, descs):
        assert (d.start, d.end) == (s.start, s.end) and d.text == s.description and d.text
        assert s.frame_times and all(s.start <= t < s.end for t in s.frame_times)
        assert abs(s.frame_times[0] - (s.start + s.end) / 2) <= 0.5  # the middle frame
    # the offline describer names the background colour of each shot, and the text on it
    for s, word in zip(scenes, ("red", "blue", "green", "yellow", "purple")):
        assert word in s.description, s.description
    assert "WELCOME HOME" in scenes[0].description
    summary = out["summary"]
    assert "5 scenes" in summary and "0:18" in summary and "WELCOME HOME" in summary and "quick" in summary.lower()


def _cues(text: str) -> list[tuple[float, float, str]]:
    def sec(ts):
        h, m, rest = ts.split(":")
        s, ms = rest.split(",")
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    out = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        a, b = lines[1].split(" --> ")
        out.append((sec(a), sec(b), " ".join(lines[2:])))
    return out


def test_srt_of_the_descriptions(captioned):
    out, _ = captioned
    sub = out["subtitles"]
    assert sub is not None and sub.path.suffix == ".srt"
    cues = _cues(sub.path.read_text(encoding="utf-8"))
    assert cues[0][0] == 0.0 and cues[-1][1] == pytest.approx(out["scenes"][-1].end, abs=0.002)
    assert all(a < b for a, b, _ in cues) and all(x[1] <= y[0] + 1e-9 for x, y in zip(cues, cues[1:]))
    for s in out["scenes"]:  # each scene's cues cover it and say its description
        mine = [c for c in cues if s.start - 1e-3 <= c[0] < s.end]
        assert " ".join(c[2] for c in mine) == " ".join(s.description.split())


def test_no_sound_track_long_scene(tmp_path):
    shots = [vm.Shot(8.0, (30, 110, 200), "circle"), vm.Shot(2.0, (200, 40, 40), "square")]
    clip = vm.make_clip(tmp_path / "silent.mp4", shots)
    out, notes = run_tool(cv.caption_video, tmp_path, video=str(clip.path), every=3.0)
    assert out["transcript"] is None and out["speech"] == []
    assert any("no sound track" in n and "silent.mp4" in n for n in notes), notes
    assert out["subtitles"] is None and out["screen_text"] == [] and out["text"] == ""
    long, short = out["scenes"]
    times = long.frame_times  # middles of 0-3, 3-6, 6-8 s: every moment within 3 s of a captioned frame
    assert times == pytest.approx([1.5, 4.5, 7.0], abs=0.25)
    assert short.frame_times == pytest.approx([9.0], abs=0.25)
    assert "No speech" not in out["summary"] and "2 scenes" in out["summary"]


def test_an_unknown_language_is_refused_before_any_work(clip, tmp_path):
    from cadenza.errors import InputError

    with pytest.raises(InputError) as e:
        run_tool(cv.caption_video, tmp_path, video=str(clip.path), language="klingon")
    assert "klingon" in str(e.value) and "\n" not in str(e.value)


# -- the parts alone -------------------------------------------------------------------------------------
class _Frame:
    width, height = 1280, 720

    def reformat(self, width, height, format):
        return SimpleNamespace(to_image=lambda: SimpleNamespace(size=(width, height)))


def test_picker_holds_few_frames_and_picks_middles():
    got = []
    picker = cv.FramePicker(every=10.0, emit=lambda scene, t, img: got.append((scene, round(t, 2), img.size)))
    most = 0
    for i in range(int(95 * FPS)):  # one 95 s scene, then a cut at 95 s and a 3 s scene
        picker.offer(_Frame(), i / FPS)
        most = max(most, len(picker.cands))
    picker.cut(95.0)
    for i in range(int(95 * FPS), int(98 * FPS)):
        picker.offer(_Frame(), i / FPS)
    picker.finish(98.0)
    assert most <= cv._MAX_CANDIDATES
    assert [s for s, _, _ in got] == [0] * 10 + [1]
    times = [t for _, t, _ in got]
    assert times == pytest.approx([5 + 10 * k for k in range(9)] + [92.5, 96.5], abs=0.45)
    assert got[0][2] == (640, 360)  # kept downscaled


def test_short_tail_of_a_long_scene_is_left_out():
    got = []
    picker = cv.FramePicker(every=4.0, emit=lambda scene, t, img: got.append(round(t, 2)))
    for i in range(int(9 * FPS)):
        picker.offer(_Frame(), i / FPS)
    picker.finish(9.0)  # 0-4, 4-8, and 8-9 is under half a stretch
    assert got == pytest.approx([2.0, 6.0], abs=0.3)


def test_subtitles_replaced_in_place_and_a_short_word_are_each_read():
    """720p frames with outlined subtitle-size text (28 px): lines replaced where they stand, then a short word
    whose outlined letters touch (one edge mark, not a moving shape's curve)."""
    import av
    import numpy as np
    from PIL import Image as PILImage, ImageDraw

    from cadenza.tools.vision.screen_text import ScreenText

    def frame(text):
        img = PILImage.new("RGB", (1280, 720), (90, 120, 150))
        if text:
            d = ImageDraw.Draw(img)
            font = vm._font(28)
            x0, _, x1, _ = d.textbbox((0, 0), text, font=font)
            d.text(((1280 - (x1 - x0)) // 2, 640), text, font=font, fill=(255, 255, 255), stroke_width=2,
                   stroke_fill=(0, 0, 0))
        return av.VideoFrame.from_ndarray(np.asarray(img), format="rgb24")

    reader = ScreenText(None, 0.5)
    shown = ["See you tomorrow", "See you tomorrow", "See you tonight", "See you tonight", "Good night, Sam",
             None, "Bye", "Bye"]
    for i, text in enumerate(shown):
        reader.sample(frame(text), i * 0.5)
    assert [(x, a, b) for x, a, _, b in reader.segments(4.0)] == [
        ("See you tomorrow", 0.0, 1.0), ("See you tonight", 1.0, 2.0), ("Good night, Sam", 2.0, 2.5),
        ("Bye", 3.0, 4.0)]
    assert reader.reads == 4  # each line read once: the repeats and the blank were not read again


def test_a_frame_the_text_reader_read_whole_is_not_read_again_when_captioned(tmp_path, monkeypatch):
    """Panning stripes behind a title: each 0.5 s sample has changed all over and is read whole, and the frames
    captioned (1 s and 3 s with every=2) are such samples. Their text goes with them to the offline describer:
    each frame is read once, and the descriptions are those of a run where the describer reads them again."""
    import collections
    import hashlib

    from cadenza.tools.vision import describe_offline as offline
    from cadenza.tools.vision.screen_text import ScreenText

    clip = vm.make_panning_clip(tmp_path / "pan.mp4", "HARBOUR TOUR")
    reads = collections.Counter()
    read_text = offline.read_text

    def counted(engine, rgb, *args, **kwargs):  # a picture read, by its pixels (a frame or a part of one)
        reads[rgb.shape, hashlib.sha1(rgb.tobytes()).hexdigest()] += 1
        return read_text(engine, rgb, *args, **kwargs)

    def caption():
        reads.clear()
        out, _ = run_tool(cv.caption_video, tmp_path, video=str(clip), every=2.0, transcribe=False)
        return [(s.start, s.end, s.frame_times, s.description) for s in out["scenes"]]

    monkeypatch.setattr(offline, "read_text", counted)
    shared = caption()
    once = sum(reads.values())
    assert max(reads.values()) == 1  # each frame read at most once
    assert [t for *_, times, _ in shared for t in times] == [1.0, 3.0] and "HARBOUR TOUR" in shared[0][3]

    sample = ScreenText.sample

    def not_handed_on(self, frame, t):  # the reader reads as before; the describer reads every frame itself
        sample(self, frame, t)

    monkeypatch.setattr(ScreenText, "sample", not_handed_on)
    assert caption() == shared
    assert max(reads.values()) == 2 and sum(reads.values()) == once + 2  # the two captioned frames, read twice


def test_batches_group_the_frames_of_a_scene(monkeypatch):
    requests = []

    def caption(ctx, request):
        requests.append((len(request.images), request.scene, request.question))
        return [Caption(text=f"frame {i}") for i in range(len(request.images))]

    fake = SimpleNamespace(BACKEND=SimpleNamespace(name="transformers"), caption=caption)
    monkeypatch.setitem(cv.CAPTION_BACKENDS, "transformers", fake)
    ctx = SimpleNamespace(check_cancelled=lambda: None)
    cap = cv.Captioner(ctx, "transformers", "what is shown?", None)
    for scene, t in [(0, 1.0), (1, 3.0), (1, 13.0), (1, 23.0), (2, 30.0), (3, 31.0), (4, 33.0), (4, 40.0)]:
        cap.add(scene, t, object())
    assert requests == [(3, True, "what is shown?"), (2, True, "what is shown?"), (3, False, "what is shown?")]
    cap.add(5, 50.0, object())
    cap.flush()
    assert requests[-1] == (1, True, "what is shown?")
    assert [t for t, _ in cap.results] == sorted(t for t, _ in cap.results) and len(cap.results) == 9


def test_a_named_model_goes_to_the_transformers_backend_scene_by_scene(tmp_path, monkeypatch):
    """A tiny random-weight Idefics3 (SmolVLM's architecture, which takes several frames at once) built as
    test_vision_vlm.py does: the frames of each scene go in one request with scene=True. Wiring only."""
    pytest.importorskip("transformers")
    from test_vision_vlm import build_idefics3

    vlm = cv.CAPTION_BACKENDS["transformers"]
    requests = []
    real = vlm.caption

    def spy(ctx, request):
        requests.append((len(request.images), request.scene, request.model))
        return real(ctx, request)

    monkeypatch.setattr(vlm, "caption", spy)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = build_idefics3(tmp_path / "tiny-idefics3")
    shots = [vm.Shot(3.0, (200, 40, 40), "circle"), vm.Shot(3.0, (30, 80, 220), "square")]
    clip = vm.make_clip(tmp_path / "two.mp4", shots)
    out, _ = run_tool(cv.caption_video, tmp_path, video=str(clip.path), every=1.0, model=str(model))
    assert [len(s.frame_times) for s in out["scenes"]] == [3, 3]
    assert requests == [(3, True, str(model)), (3, True, str(model))]
    said = [(s.start, s.end, s.description) for s in out["scenes"] if s.description]  # random weights may say nothing
    assert [(d.start, d.end, d.text) for d in out["descriptions"]] == said


def test_the_llm_writes_the_summary_when_chosen():
    import json

    from cadenza.llm.testing import ScriptedChatModel
    from cadenza.tools.vision.common import SceneCaption
    from cadenza.tools.vision.compose import vision_llm

    scenes = [SceneCaption(start=0, end=3, description="A drawing of a ball (0.41), mostly red.", text=["HELLO"]),
              SceneCaption(start=3, end=65, description="A drawing, mostly blue.")]
    seen, notes = {}, []
    ctx = SimpleNamespace(note=notes.append)

    def reply(messages):
        seen["user"] = messages[-1].content
        return json.dumps({"text": "A red scene that says HELLO, then a long blue one."})

    with ScriptedChatModel([reply]) as llm, vision_llm(llm):
        summary = cv._summary(ctx, 65.0, scenes, ["HELLO"], "Hi there.")
    assert summary == "A red scene that says HELLO, then a long blue one."
    facts = json.loads(seen["user"].removeprefix("Facts: "))
    assert facts["descriptions"] == ["0:00-0:03: A drawing of a ball, mostly red.",
                                     "0:03-1:05: A drawing, mostly blue."]
    assert facts["on_screen_text"] == ["HELLO"] and facts["speech"] == "Hi there." and facts["length"] == "1:05"
    with ScriptedChatModel(['{"text": ""}']) as llm, vision_llm(llm):  # an unusable answer: the template
        assert cv._summary(ctx, 65.0, scenes, ["HELLO"], None) == cv.summarise(65.0, scenes, ["HELLO"], None)
    assert len(notes) == 1 and "template summary used" in notes[0]
    template = cv.summarise(65.0, scenes, ["HELLO"], "Hi there.")
    assert template.startswith("A 1:05 video in 2 scenes.") and template.endswith('the words "Hi there."')
    assert "(0.41)" not in template and "'HELLO'" in template


# -- bad input through the CLI ---------------------------------------------------------------------------
def cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CADENZA_CACHE_DIR": str(Path(cwd) / ".cache"),
           "CADENZA_CONFIG": str(Path(cwd) / "no-config.toml")}
    return subprocess.run([sys.executable, "-m", "cadenza.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def _zero_frames(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()
        out.mux(vs.encode(None))
    return path


def _truncated(path: Path, tmp: Path) -> Path:
    clip = vm.make_clip(tmp / ("whole" + path.suffix), vm.standard_shots(6.0))
    data = clip.path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("kind", ["corrupt", "truncated-mp4", "truncated-mkv", "empty", "no-frames", "audio"])
def test_bad_videos_fail_in_one_line(kind, tmp_path):
    name = {"corrupt": "bad.mp4", "truncated-mp4": "cut.mp4", "truncated-mkv": "cut.mkv", "empty": "empty.mp4",
            "no-frames": "none.mp4", "audio": "sound.wav"}[kind]
    path = tmp_path / name
    if kind == "corrupt":
        mf.corrupt_file(path)
    elif kind.startswith("truncated"):
        _truncated(path, tmp_path)
    elif kind == "empty":
        mf.empty_file(path)
    elif kind == "no-frames":
        _zero_frames(path)
    else:
        mf.tone(path, seconds=1.0)
    r = cli("tools", "run", "caption_video", "--arg", f"video={path}", "--out", "out", cwd=tmp_path)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert name in errors[0], errors[0]
