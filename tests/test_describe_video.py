"""Audio description: place_descriptions (scene descriptions in the pauses of the dialogue), replace_audio's
second track (the original first, a title, the description marks), and the `describe_video` workflow end
to end through the CLI on a generated clip of coloured scenes with speech in between."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import media_factory as mf
from cadenza.tools.audio.subtitle_track import read_cues
from cadenza.tools.audio.video import extract_audio, replace_audio
from cadenza.tools.vision.audio_description import fit_text, place_descriptions
from speech_util import call

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "cadenza" / "workflows" / "describe_video.yaml"


def seg(start, end, text=""):
    return {"start": start, "end": end, "text": text}


def place(descriptions, speech, **kw):
    out, notes = call(place_descriptions, descriptions=descriptions, speech=speech, **kw)
    return out, notes


def _inside(a: float, b: float, spans, tol: float = 1e-6) -> bool:
    return any(lo - tol <= a and b <= hi + tol for lo, hi in spans)


def _check_invariants(out, descriptions, speech, duration, margin=0.25, min_gap=1.2):
    """What must hold for any input: lines in time order, never overlapping one another or the
    dialogue (kept `margin` clear), inside [0, duration], none before its scene, none empty; every
    description is either placed or dropped with a note."""
    lines, gaps = out["lines"], [(g.start, g.end) for g in out["gaps"]]
    for k, ln in enumerate(lines):
        assert ln.text.strip() and ln.end > ln.start, ln
        assert 0 <= ln.start and ln.end <= duration + 1e-6
        assert _inside(ln.start, ln.end, gaps), (ln, gaps)
        assert ln.end - ln.start >= min_gap - 2e-3  # times to the millisecond, inward
        for s in speech:
            assert ln.end <= s["start"] - margin + 1e-3 or ln.start >= s["end"] + margin - 1e-3, (ln, s)
        if k:
            assert lines[k - 1].end <= ln.start + 1e-9
        assert ln.start >= descriptions[out["scenes"][k]]["start"] - 1e-9
    assert len(set(out["scenes"])) == len(lines) and len(lines) + len(out["dropped"]) == len(descriptions)


# -- place_descriptions ------------------------------------------------------------------------------

def test_descriptions_go_into_the_pauses_of_the_dialogue():
    speech = [seg(1.0, 3.0, "Hello there."), seg(6.0, 8.0, "How are you?")]
    descriptions = [seg(0, 4, "A red room."), seg(4, 9, "A green field."), seg(9, 12, "A blue sky.")]
    out, notes = place(descriptions, speech, duration=12.0)
    # pauses less 0.25 s beside speech (none at the ends of the video)
    assert [(g.start, g.end) for g in out["gaps"]] == [(0.0, 0.75), (3.25, 5.75), (8.25, 12.0)]
    got = [(ln.start, ln.end, ln.text) for ln in out["lines"]]
    # the first pause is too short; the red room's scene has a pause from 3.25, the green field's
    # description follows it in the same pause (from where the first has room for min_gap), the blue
    # sky's starts with its scene: a description never starts before its scene
    assert got == [(3.25, 4.45, "A red room."), (4.45, 5.75, "A green field."), (9.0, 10.5, "A blue sky.")]
    assert out["scenes"] == [0, 1, 2] and out["shortened"] == [] and out["dropped"] == [] and not notes
    _check_invariants(out, descriptions, speech, 12.0)


def test_a_long_description_is_shortened_to_its_pause():
    speech = [seg(2.6, 10.0, "Blah."), seg(13.65, 20.0, "Blah.")]
    long_one = "A man walks in. He sits down, and opens a newspaper while the rain falls."
    clause = "He sits down at the kitchen table, opens a letter and reads it slowly."
    out, notes = place([seg(0, 5, long_one), seg(5, 20, clause)], speech, duration=20.0)
    # 2.35 s at 2.5 words a second: 5 words; the first sentence (4) is kept whole
    # 3.15 s: 7 words; no whole sentence fits: cut at the comma
    assert [ln.text for ln in out["lines"]] == ["A man walks in.", "He sits down at the kitchen table."]
    assert out["shortened"] == [0, 1] and any("2 of 2 descriptions shortened" in n for n in notes)
    # a slower pace leaves fewer words: cut at a word, closed as a sentence, never empty
    out, _ = place([seg(5, 20, clause)], speech, duration=20.0, words_per_second=1.0)
    assert out["lines"][0].text == "He sits down."
    assert fit_text(clause, 0) == ("He.", True) and fit_text("One two.", 5) == ("One two.", False)
    _check_invariants(out, [seg(5, 20, clause)], speech, 20.0)


def test_a_description_with_no_pause_near_its_scene_is_dropped_with_a_note():
    speech = [seg(0.5, 4.8, "Talk."), seg(5.5, 14.0, "More talk.")]
    descriptions = [seg(0, 5, "A dark hallway."), seg(5, 8, "A door opens."), seg(8, 15, "Snow falls.")]
    out, notes = place(descriptions, speech, duration=16.0)
    # scene 0's pauses are 0.25 s and 0.2 s; scene 1's only pause (14.25-16) starts 6.25 s after it
    # ends, too late to describe it; scene 2's starts inside it
    assert [(ln.start, ln.text) for ln in out["lines"]] == [(14.25, "Snow falls.")]
    assert out["scenes"] == [2] and len(out["dropped"]) == 2
    assert "description 0 (0.0-5.0 s)" in out["dropped"][0] and "A dark hallway." in out["dropped"][0]
    assert "description 1 (5.0-8.0 s)" in out["dropped"][1]
    assert sum("no pause in the dialogue" in n for n in notes) == 2
    _check_invariants(out, descriptions, speech, 16.0)
    # a larger min_gap drops what a smaller one keeps
    out, _ = place(descriptions, speech, duration=16.0, min_gap=2.0)
    assert out["lines"] == [] and len(out["dropped"]) == 3


def test_no_speech_at_all_puts_each_description_at_its_scene():
    descriptions = [seg(0, 3, "A red screen."), seg(3, 7, "A green screen fades in slowly."), seg(7, 9, "Blue.")]
    out, notes = place(descriptions, [], duration=9.0)
    assert [(ln.start, ln.text) for ln in out["lines"]] == [(d["start"], d["text"]) for d in descriptions]
    assert [ln.end for ln in out["lines"]] == [1.5, 6.0, 8.2]  # words / 2.5 * 1.25, at least min_gap
    assert [(g.start, g.end) for g in out["gaps"]] == [(0.0, 9.0)] and not notes
    # no duration given: to the end of the last description
    assert place(descriptions, [])[0]["gaps"][0].end == 9.0


def test_speech_everywhere_drops_every_description():
    speech = [seg(0, 4, "a"), seg(4.5, 8, "b"), seg(8.3, 10, "c")]
    descriptions = [seg(0, 5, "One."), seg(5, 10, "Two.")]
    out, notes = place(descriptions, speech, duration=10.0)
    assert out["lines"] == [] and len(out["dropped"]) == 2 and len(notes) == 2
    assert out["gaps"] == []  # 0.5 s and 0.3 s between the lines, less the margins: no pause at all
    out, notes = place([], [], duration=5.0)  # nothing to place: nothing, quietly
    assert out["lines"] == [] and not notes


def test_random_scenes_and_dialogue_keep_the_rules():
    rng = random.Random(7)
    for _ in range(200):
        duration = rng.uniform(5, 60)
        cuts = sorted(rng.uniform(0, duration) for _ in range(rng.randint(0, 6)))
        bounds = [0.0, *cuts, duration]
        words = "a red car drives past the old station, and it rains. then night falls.".split()
        descriptions = [seg(a, b, " ".join(words[:rng.randint(0, len(words))])) for a, b in zip(bounds, bounds[1:])]
        speech, t = [], rng.uniform(0, 3)
        while t < duration:
            d = rng.uniform(0.3, 6)
            speech.append(seg(t, min(duration, t + d), "x"))
            t += d + rng.uniform(0, 4)
        rng.shuffle(speech)  # any order in, overlapping or not
        out, _ = place(descriptions, speech, duration=duration)
        _check_invariants(out, descriptions, speech, duration)


# -- replace_audio: a second track for the description ---------------------------------------------

def _streams(path):
    """Per audio track: (title, language or None, default?, marked for the visually impaired?).
    MP4 keeps a title as 'name' and an untagged language as 'und'."""
    import av

    flag = av.stream.Disposition
    with av.open(str(path)) as c:
        return [(s.metadata.get("title") or s.metadata.get("name"),
                 None if s.metadata.get("language", "und") == "und" else s.metadata["language"],
                 bool(s.disposition & flag.default), bool(s.disposition & flag.visual_impaired))
                for s in c.streams.audio]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_replace_audio_keeps_the_original_first_and_titles_the_new_track(workdir, suffix):
    mf.make_video(f"v{suffix}", seconds=2.0, freq=440)
    mf.tone("ad.wav", freq=880, seconds=2.0)
    out = replace_audio(video=f"v{suffix}", audio="ad.wav", keep_original=True, original_first=True,
                        title="Audio description", audio_description=True, language="en", original_language="en")
    assert _streams(out.path) == [(None, "eng", True, False), ("Audio description", "eng", False, True)]
    # the original stays first, as it was; the new sound is the second track
    import av

    got = []
    for k in (0, 1):
        with av.open(str(out.path)) as c:
            got.append(np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(c.streams.audio[k])]))
    rate = 22050
    assert mf.dominant_freq(got[0][:rate], rate) == pytest.approx(440, rel=0.01)
    assert mf.dominant_freq(got[1][:rate], rate) == pytest.approx(880, rel=0.01)
    with av.open(f"v{suffix}") as a, av.open(str(out.path)) as b:  # copied packet for packet
        assert [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size] == \
            [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]
    # the default order is unchanged: the new track first, the original second, nothing marked
    plain = replace_audio(video=f"v{suffix}", audio="ad.wav", keep_original=True)
    assert [s[0] for s in _streams(plain.path)] == [None, None]
    assert [s[3] for s in _streams(plain.path)] == [False, False]


def test_a_silent_video_gets_the_description_track_alone(workdir):
    mf.make_video("mute.mp4", seconds=2.0, with_audio=False)
    sound, notes = call(extract_audio, video="mute.mp4", missing="silence")
    x, rate = mf.decode(sound["result"])
    assert len(x) / rate == pytest.approx(2.0, abs=0.05) and not np.any(x)
    assert any("mute.mp4 has no sound track" in n for n in notes)
    mf.tone("ad.wav", freq=880, seconds=2.0)
    out, notes = call(replace_audio, video="mute.mp4", audio="ad.wav", keep_original=True, original_first=True,
                      title="Audio description", audio_description=True)
    assert _streams(out["result"].path) == [("Audio description", None, True, True)]
    assert any("no sound of its own" in n for n in notes)


# -- the describe_video workflow, end to end --------------------------------------------------------

SCENES = [((200, 30, 30), 0.0), ((30, 160, 60), 5.0), ((40, 60, 210), 10.0)]  # colour, start (s)
CLIP_S = 15.0
SENTENCES = [(0.3, "Good morning."), (5.3, "The train is late today."), (10.3, "Thank you very much.")]
BED_HZ, BED_AMP = 220.0, 0.03  # a quiet tone under everything, as music would be


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "CADENZA_CACHE_DIR": str(Path(cwd) / ".cache")}
    return subprocess.run([sys.executable, "-m", "cadenza.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def _scene_video(path: Path, seconds: float, scenes=SCENES, fps: int = 10, size=(160, 120)) -> Path:
    """A silent video of solid-colour scenes, each with a white square in another place."""
    import av

    w, h = size
    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        for i in range(int(round(seconds * fps))):
            k = max(j for j, (_, t) in enumerate(scenes) if t <= i / fps)
            img = np.empty((h, w, 3), np.uint8)
            img[:] = scenes[k][0]
            x0 = 20 + 40 * k
            img[40:80, x0:x0 + 40] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return path


def _speech_clip(folder: Path) -> tuple[Path, list[tuple[float, float]]]:
    """The scenes with three English sentences (espeak-ng) over a quiet tone, and where each sentence's
    sound is (measured on its samples)."""
    rate = 22050
    t = np.arange(int(CLIP_S * rate)) / rate
    track = BED_AMP * np.sin(2 * np.pi * BED_HZ * t)
    spoken = []
    for i, (start, text) in enumerate(SENTENCES):
        x, r = mf.decode(mf.espeak_speech(folder / f"s{i}.wav", text))
        assert r == rate
        x = x.mean(axis=1) if x.ndim == 2 else x
        loud = np.flatnonzero(np.abs(x) > 0.01)
        a = int(start * rate)
        track[a:a + len(x)] += x
        spoken.append((start + loud[0] / rate, start + loud[-1] / rate))
    mf.write_audio(folder / "sound.wav", track, rate)
    _scene_video(folder / "mute.mp4", CLIP_S)
    out = replace_audio(video=str(folder / "mute.mp4"), audio=str(folder / "sound.wav"))
    os.replace(out.path, folder / "clip.mp4")
    return folder / "clip.mp4", spoken


def _tracks(path) -> list[np.ndarray]:
    """Each audio track of a video, decoded to mono float samples."""
    import av

    out = []
    with av.open(str(path)) as c:
        n = len(c.streams.audio)
    for k in range(n):
        with av.open(str(path)) as c:
            s = c.streams.audio[k]
            rate = s.rate
            frames = [f.to_ndarray() for f in c.decode(s)]
        x = np.concatenate([f.mean(axis=0) if f.ndim == 2 and f.shape[0] < 8 else f.reshape(-1) for f in frames])
        out.append((x.astype(np.float64), rate))
    return out


def _window_rms(x: np.ndarray, rate: int, a: float, b: float) -> float:
    return mf.rms(x[int(a * rate):int(b * rate)])


def test_describe_video_is_a_validated_workflow_tool_the_planner_sees(tmp_path):
    from cadenza.agent.examples import ExamplePool
    from cadenza.agent.planner import Planner
    from cadenza.llm.testing import ScriptedChatModel
    from cadenza.tools.registry import default_registry

    reg = default_registry()
    assert reg.get("describe_video").signature_line() == (
        "describe_video(video: video, language?: text, voice?: text) -> video: video, descriptions_vtt: subtitles, "
        "description_audio: audio, description_speech: audio, captions: VideoCaptions")
    shown = {t.name for t in Planner(ScriptedChatModel([]), reg, ExamplePool([])).catalog_tools()}
    assert "describe_video" in shown and "place_descriptions" in reg and "place_descriptions" not in shown
    r = _cli("workflow", "validate", str(WORKFLOW), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["inputs"] == ["video", "language", "voice"]


def _run_workflow(cwd: Path, video: str):
    r = _cli("workflow", "run", str(WORKFLOW), "--input", f"video={video}", "--out", "out", "--json", cwd=cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    run = json.loads((cwd / "out" / "run.json").read_text(encoding="utf-8"))
    steps = {s["id"]: s for s in run["steps"]}
    return steps, [n for s in run["steps"] for n in s.get("notes", [])]


def test_describe_video_adds_a_described_track_and_webvtt(tmp_path):
    clip, spoken = _speech_clip(tmp_path)
    steps, notes = _run_workflow(tmp_path, "clip.mp4")
    out = tmp_path / "out"
    video = next(out.glob("described-*.mp4"))
    assert _streams(video) == [(None, "eng", True, False), ("Audio description", "eng", False, True)]
    # the original sound is the first track, packet for packet
    import av

    with av.open(str(clip)) as a, av.open(str(video)) as b:
        assert [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size] == \
            [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]

    # WebVTT cues: each inside a pause, clear of the speech as it sounds (not only as Whisper heard it)
    vtt = next(out.glob("vtt-*.vtt"))
    assert vtt.read_text(encoding="utf-8").startswith("WEBVTT")
    cues = read_cues(vtt)
    lines = steps["place"]["outputs"]["lines"]
    assert len(cues) >= 2 and lines, (cues, notes)
    for c in cues:
        assert any(ln["start"] - 1e-3 <= c.start and c.end <= ln["end"] + 1e-3 for ln in lines)
        for a, b in spoken:
            assert c.end <= a + 0.05 or c.start >= b - 0.05, (c, spoken)

    # the description track: louder than the original where a description is spoken, the same as
    # the original during the dialogue
    (orig, o_rate), (desc, d_rate) = _tracks(video)
    louder = [_window_rms(desc, d_rate, ln["start"], ln["end"]) / _window_rms(orig, o_rate, ln["start"], ln["end"])
              for ln in lines]
    assert all(r > 3.0 for r in louder), louder
    for a, b in spoken:
        ratio = _window_rms(desc, d_rate, a + 0.1, b - 0.1) / _window_rms(orig, o_rate, a + 0.1, b - 0.1)
        assert 0.8 < ratio < 1.25, (a, b, ratio)
    # the descriptions are what caption_video said of each scene, shortened at most
    described = steps["cap"]["outputs"]["descriptions"]
    for ln, k in zip(lines, steps["place"]["outputs"]["scenes"]):
        said, whole = _words(ln["text"]), _words(described[k]["text"])
        assert said and said == whole[:len(said)], (ln, described[k])


def _words(text: str) -> list[str]:
    return [w.strip(".,;:!?") for w in text.split()]


def test_describe_video_of_a_silent_video_gives_the_description_track_alone(tmp_path):
    _scene_video(tmp_path / "mute.mp4", 8.0, scenes=SCENES[:2])
    steps, notes = _run_workflow(tmp_path, "mute.mp4")
    video = next((tmp_path / "out").glob("described-*.mp4"))
    assert [s[0] for s in _streams(video)] == ["Audio description"]
    assert any("has no sound track" in n for n in notes) and any("no sound of its own" in n for n in notes)
    lines = steps["place"]["outputs"]["lines"]
    assert [ln["start"] for ln in lines][:1] == [0.0]  # no dialogue: the first scene is described at once
    ((desc, rate),) = _tracks(video)
    assert all(_window_rms(desc, rate, ln["start"], ln["end"]) > 0.01 for ln in lines)
