"""`cadenza dub` end to end: a short generated clip of English speech dubbed into Spanish, in-process,
with the translator scripted; and the CLI's language checks in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import media_factory as mf
from cadenza import cli
from cadenza.llm.testing import ScriptedChatModel
from speech_util import call
from cadenza.tools.audio.video import replace_audio
from cadenza.tools.speech.transcribe import transcribe
from cadenza.tools.speech.translate import translation_llm

ROOT = Path(__file__).resolve().parent.parent
SENTENCES = ["Good morning.", "The train is late today.", "Thank you very much."]
SPANISH = {"Good morning.": "Buenos días.", "The train is late today.": "El tren llega tarde hoy.",
           "Thank you very much.": "Muchas gracias."}
MARGIN_S = 0.03  # speak_lines keeps this much of a line's leading near-silence (fit.strip_silence)


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CADENZA_CACHE_DIR": str(Path(cwd) / ".cache")}
    return subprocess.run([sys.executable, "-m", "cadenza.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def _translator(messages):
    """A scripted LLM: translate's lines by the table (whatever Whisper heard, matched loosely); a
    shorter rendering asked by speak_lines: the line as it is."""
    data = json.loads(messages[-1].content)
    if "line" in data:
        return json.dumps({"text": data["line"]})
    return json.dumps({"lines": [_spanish(line) for line in data["lines"]]})


def _spanish(line: str) -> str:
    """Each known sentence the line holds, in Spanish (Whisper may join two into one line)."""
    key = "".join(c for c in line.lower() if c.isalpha())
    found = [es for en, es in SPANISH.items() if "".join(c for c in en.lower() if c.isalpha()) in key]
    return " ".join(found) or line


def _speech(folder: Path) -> tuple[np.ndarray, int, list[float]]:
    """The three English sentences (espeak-ng), each after 2.0 s of silence, 0.8 s after the last:
    (samples, rate, each sentence's true onset in seconds: its first sample above -50 dB)."""
    rate, parts, onsets, pos = None, [], [], 0
    for i, s in enumerate(SENTENCES):
        x, rate = mf.decode(mf.espeak_speech(folder / f"s{i}.wav", s))
        x = x.mean(axis=1) if x.ndim == 2 else x
        pos += int(2.0 * rate)
        onsets.append((pos + np.flatnonzero(np.abs(x) > 10 ** (-50 / 20))[0]) / rate)
        parts += [np.zeros(int(2.0 * rate)), x]
        pos += len(x)
    parts.append(np.zeros(int(0.8 * rate)))
    return np.concatenate(parts), rate, onsets


def _clip(path: Path) -> list[float]:
    """A video whose sound is three short English sentences with pauses (espeak-ng), at `path`.
    Returns each sentence's true onset (seconds)."""
    speech, rate, onsets = _speech(path.parent)
    mf.write_audio(path.parent / "speech.wav", speech, rate)
    mf.make_video(path.parent / "mute.mp4", seconds=len(speech) / rate, with_audio=False)
    out = replace_audio(video=str(path.parent / "mute.mp4"), audio=str(path.parent / "speech.wav"))
    os.replace(out.path, path)
    return onsets


def _onset(x: np.ndarray, rate: int, t0: float, t1: float) -> float | None:
    """The first time in [t0, t1) where the track is above -50 dB (speak_lines' idea of silence)."""
    a, b = int(round(t0 * rate)), min(len(x), int(round(t1 * rate)))
    loud = np.flatnonzero(np.abs(x[a:b]) > 10 ** (-50 / 20))
    return (a + loud[0]) / rate if loud.size else None


def _subtitle_streams(path):
    import av

    with av.open(str(path)) as c:
        return [(s.codec_context.name, s.metadata.get("language")) for s in c.streams.subtitles]


def _wer(reference: str, hypothesis: str) -> float:
    """Word error rate over lowercased words, accents kept (jiwer)."""
    import re

    import jiwer

    norm = lambda t: " ".join(re.findall(r"[\w']+", t.lower()))  # noqa: E731
    return jiwer.wer(norm(reference), norm(hypothesis))


def _audio_streams(path):
    import av

    with av.open(str(path)) as c:
        return [(s.codec_context.name, s.metadata.get("language")) for s in c.streams.audio]


def test_dub_a_clip_into_spanish(workdir, monkeypatch):
    monkeypatch.setenv("CADENZA_CACHE_DIR", str(workdir / ".cache"))
    true_onsets = _clip(workdir / "clip.mp4")
    llm = ScriptedChatModel([_translator] * 20)
    with translation_llm(llm):
        code = cli.main(["dub", "clip.mp4", "--to", "es", "--out", "out", "--json"])
    assert code == 0
    assert llm.calls, "the translator was never asked"
    out = workdir / "out"
    video = next(out.glob("*.mp4"))
    assert _audio_streams(video) == [("aac", "spa"), ("aac", "eng")]  # the dub, then the original sound
    srt = next(out.glob("*.srt")).read_text(encoding="utf-8")
    cues = [b.splitlines() for b in srt.strip().split("\n\n")]
    assert cues and all(c[0].isdigit() and " --> " in c[1] and c[2:] for c in cues)
    assert any("Buenos días" in " ".join(c[2:]) for c in cues)
    assert next(out.glob("*.vtt")).read_text(encoding="utf-8").startswith("WEBVTT")

    report = json.loads((out / "dub_lines.json").read_text(encoding="utf-8"))
    assert report["language"] == "es" and len(report["lines"]) >= 2  # Whisper may join the first two
    assert " ".join(ln["translation"] for ln in report["lines"]) == " ".join(SPANISH.values())
    lines = report["lines"]
    # each line starts when the original voice does (dub_lines snaps Whisper's early first-word times
    # to the sound's onset): within 60 ms of the true onset of its first sentence
    firsts = [min(true_onsets, key=lambda t: abs(t - ln["start"])) for ln in lines]
    assert firsts[0] == true_onsets[0] and firsts == sorted(set(firsts)), (firsts, true_onsets)
    for ln, t in zip(lines, firsts):
        assert abs(ln["start"] - t) <= 0.06, ([ln["start"] for ln in lines], true_onsets)
    speech_file = next(p for p in out.glob("*.wav") if "speech" in p.name)
    x, rate = mf.decode(speech_file)
    x = x.mean(axis=1) if x.ndim == 2 else x
    for i, ln in enumerate(lines):
        end = lines[i + 1]["start"] if i + 1 < len(lines) else len(x) / rate
        onset = _onset(x, rate, ln["start"], end)
        assert onset is not None, f"line {i} is silent"
        # the line's sound begins at its slot's start, within 20 ms past the kept edge margin (a voice
        # with no leading silence of its own, espeak-ng, starts right at it)
        assert -0.001 <= onset - ln["start"] <= MARGIN_S + 0.020, (i, onset, ln["start"])
        assert ln["source_text"] and ln["action"] in ("natural", "gap", "speedup", "shorten")

    # the video's first sound track carries the dubbed speech (over the ducked original)
    y, y_rate = mf.decode(video)
    y = y.mean(axis=1) if y.ndim == 2 else y
    assert y_rate == rate
    a, b = int(lines[0]["start"] * rate), int((lines[0]["start"] + lines[0]["fitted_seconds"]) * rate)
    ref, pad = x[a:b], 4096  # AAC may shift the track by its encoder delay: search a few thousand samples
    seg = y[max(0, a - pad):b + pad]
    corr = np.correlate(seg, ref, "valid") / (np.linalg.norm(ref) * np.sqrt(np.convolve(seg ** 2, np.ones(len(ref)), "valid")) + 1e-9)
    assert corr.max() > 0.8, corr.max()

    # the subtitles ride along as a soft track, tagged with the new language
    assert _subtitle_streams(video) == [("mov_text", "spa")]
    # the dubbed speech says the translation: Whisper hears it back
    heard, _ = call(transcribe, media=str(speech_file), language="es")
    said = " ".join(ln["spoken_text"] for ln in lines)
    assert _wer(said, heard["text"]) <= 0.25, (said, heard["text"])

    # other choices re-run only what they change: the original kept at full level, subtitles burned in
    llm = ScriptedChatModel([_translator] * 20)
    with translation_llm(llm):
        code = cli.main(["dub", "clip.mp4", "--to", "es", "--out", "out2", "--json", "--background", "keep",
                         "--subtitles", "burn"])
    assert code == 0 and not llm.calls
    run = json.loads((workdir / "out2" / "run.json").read_text(encoding="utf-8"))
    status = {st["id"]: st["status"] for st in run["steps"]}
    assert all(status[i] == "cached" for i in ("sound", "words", "lines", "tr", "speech", "srt", "vtt"))
    assert status["mix"] == status["dubbed"] == "succeeded"
    burned = next((workdir / "out2").glob("dubbed-*.mp4"))
    assert _subtitle_streams(burned) == [] and _audio_streams(burned) == [("aac", "spa"), ("aac", "eng")]


def test_dub_list_languages_and_bad_codes(tmp_path):
    r = _cli("dub", "--list-languages", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["translator"] and "en" in doc["languages"] and doc["languages"]["en"]["voices"]
    r = _cli("dub", "clip.mp4", "--to", "xx", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "'xx'" in errors[0] and "supported: en" in errors[0]
    r = _cli("dub", "clip.mp4", "--to", "es", "--from", "klingon", "--json", cwd=tmp_path)
    assert r.returncode == 2 and json.loads(r.stdout)["exit_code"] == 2 and "klingon" in r.stderr


def test_dub_is_a_validated_workflow_tool(tmp_path):
    from cadenza.tools.registry import default_registry

    assert default_registry().get("dub").signature_line() == (
        "dub(video: video, to: text, from?: text, voice?: text, background?: text, subtitles_mode?: text, "
        "edits?: text) -> video: video, subtitles: subtitles, subtitles_vtt: subtitles, speech: audio, "
        "report: data, lines: list[LineReport]")
    assert default_registry().get("dub_audio").signature_line() == (
        "dub_audio(audio: audio, to: text, from?: text, voice?: text, background?: text, edits?: text) -> "
        "audio: audio, subtitles: subtitles, subtitles_vtt: subtitles, speech: audio, report: data, "
        "lines: list[LineReport]")
    r = _cli("workflow", "validate", str(ROOT / "cadenza" / "workflows" / "dub.yaml"), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["inputs"] == ["video", "to", "from", "voice", "background", "subtitles_mode", "edits"]


def test_the_audio_workflow_is_the_video_one_without_the_picture():
    """dub_audio.yaml repeats dub.yaml's steps from `words` to `vtt` (a user copies one file, not two):
    the same tools with the same arguments, the sound input renamed."""
    import yaml

    video = yaml.safe_load((ROOT / "cadenza" / "workflows" / "dub.yaml").read_text())
    audio = yaml.safe_load((ROOT / "cadenza" / "workflows" / "dub_audio.yaml").read_text())
    shared = [st for st in video["steps"] if st["id"] not in ("sound", "dubbed")]
    as_audio = json.loads(json.dumps(shared).replace('"$sound"', '"$audio"'))
    assert as_audio == audio["steps"]
    assert {k: v for k, v in video["inputs"].items() if k not in ("video", "subtitles_mode")} == \
        {k: v for k, v in audio["inputs"].items() if k != "audio"}


def test_an_edited_line_is_the_only_one_spoken_again(workdir, monkeypatch):
    """Edit one translation in dub_lines.json, re-run with --lines: only that line is synthesized
    again (the run's record says so), every step before the voice comes from the cache, and the
    subtitles carry the edit."""
    monkeypatch.setenv("CADENZA_CACHE_DIR", str(workdir / ".cache"))
    _clip(workdir / "clip.mp4")
    with translation_llm(ScriptedChatModel([_translator] * 20)):
        assert cli.main(["dub", "clip.mp4", "--to", "es", "--out", "out", "--json"]) == 0
    report = json.loads((workdir / "out" / "dub_lines.json").read_text(encoding="utf-8"))
    last = len(report["lines"]) - 1
    report["lines"][last]["translation"] = "Mil gracias."
    (workdir / "out" / "dub_lines.json").write_text(json.dumps(report), encoding="utf-8")

    llm = ScriptedChatModel([_translator] * 20)
    with translation_llm(llm):
        assert cli.main(["dub", "clip.mp4", "--to", "es", "--out", "out", "--lines", "out/dub_lines.json",
                         "--json"]) == 0
    assert not llm.calls  # the translations came from the cache and the file, not the LLM
    run = json.loads((workdir / "out" / "run.json").read_text(encoding="utf-8"))
    steps = {s["id"]: s for s in run["steps"]}
    assert all(steps[i]["status"] == "cached" for i in ("sound", "words", "lines", "tr"))
    assert steps["speech"]["status"] == "succeeded"
    assert steps["speech"]["outputs"]["synthesized"] == [last]
    assert steps["speech"]["outputs"]["cached"] == list(range(last))
    assert "Mil gracias." in max((workdir / "out").glob("srt-*.srt"), key=lambda p: p.stat().st_mtime).read_text()
    edited = json.loads((workdir / "out" / "dub_lines.json").read_text(encoding="utf-8"))
    assert edited["lines"][last]["translation"] == "Mil gracias."


def test_a_line_file_that_does_not_match_is_bad_input(workdir, monkeypatch):
    monkeypatch.setenv("CADENZA_CACHE_DIR", str(workdir / ".cache"))
    _clip(workdir / "clip.mp4")
    (workdir / "other.json").write_text(json.dumps({"lines": [{"start": 0, "end": 1, "translation": "Hola."}]}))
    with translation_llm(ScriptedChatModel([_translator] * 20)):
        code = cli.main(["dub", "clip.mp4", "--to", "es", "--out", "out", "--lines", "other.json"])
    assert code == 2


def _speech_wav(folder: Path) -> Path:
    """The three English sentences with pauses, as a WAV (what _clip puts on its video)."""
    speech, rate, _ = _speech(folder)
    return mf.write_audio(folder / "speech.wav", speech, rate)


def test_a_podcast_is_dubbed_into_a_sound_file(workdir, monkeypatch):
    """A sound file in (mp3), dubbed sound out in the same format, with subtitles and dub_lines.json;
    --background drop leaves the new voice alone."""
    monkeypatch.setenv("CADENZA_CACHE_DIR", str(workdir / ".cache"))
    wav = _speech_wav(workdir)
    from cadenza.tools.audio.edit import convert_audio

    mp3 = convert_audio(audio=str(wav), format="mp3")
    os.replace(mp3.path, workdir / "podcast.mp3")
    with translation_llm(ScriptedChatModel([_translator] * 20)):
        code = cli.main(["dub", "podcast.mp3", "--to", "es", "--out", "out", "--json", "--background", "drop"])
    assert code == 0
    out = workdir / "out"
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["plan"]["name"] == "dub_audio"
    dubbed = next(out.glob("mix-*.mp3"))
    src, rate = mf.decode(workdir / "podcast.mp3")
    got, got_rate = mf.decode(dubbed)
    assert abs(len(got) / got_rate - len(src) / rate) < 0.06  # mp3 frames pad the ends a little
    report = json.loads((out / "dub_lines.json").read_text(encoding="utf-8"))
    assert " ".join(ln["translation"] for ln in report["lines"]) == " ".join(SPANISH.values())
    assert "Buenos días" in next(out.glob("*.srt")).read_text(encoding="utf-8")
    # dropped background: before the first line there is silence, not the English voice
    first = report["lines"][0]["start"]
    assert np.abs(got[: int((first - 0.1) * got_rate)]).max() < 1e-3
    r = _cli("dub", "podcast.mp3", "--to", "es", "--subtitles", "burn", cwd=workdir)
    assert r.returncode == 2 and "--subtitles burn needs a video" in r.stderr


def test_a_video_without_speech_gets_empty_subtitles_and_a_note(workdir, monkeypatch):
    """Music only: the dub ends well (the video, its sound kept, empty subtitles), and says why."""
    monkeypatch.setenv("CADENZA_CACHE_DIR", str(workdir / ".cache"))
    mf.make_video(workdir / "music.mp4", seconds=3.0, with_audio=True, freq=220.0)
    llm = ScriptedChatModel([])
    with translation_llm(llm):
        code = cli.main(["dub", "music.mp4", "--to", "es", "--out", "out", "--json"])
    assert code == 0 and not llm.calls
    out = workdir / "out"
    video = next(out.glob("dubbed-*.mp4"))
    assert len(_audio_streams(video)) == 2
    assert next(out.glob("srt-*.srt")).read_text() == ""
    assert json.loads((out / "dub_lines.json").read_text(encoding="utf-8"))["lines"] == []
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    notes = [n for st in run["steps"] for n in st.get("notes", [])]
    assert any("no speech" in n for n in notes) and any("speech track is silent" in n for n in notes)


@pytest.mark.parametrize("case", ["no_sound", "empty", "corrupt", "missing"])
def test_bad_videos_are_one_line_input_errors(tmp_path, case):
    """Exit 2, one `error:` line naming the file, no traceback; an earlier output in --out is kept."""
    video = tmp_path / "clip.mp4"
    if case == "no_sound":
        mf.make_video(video, seconds=1.0, with_audio=False)
    elif case == "empty":
        mf.empty_file(video)
    elif case == "corrupt":
        mf.corrupt_file(video, header=b"\x00\x00\x00\x18ftypmp42")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "earlier.txt").write_text("keep me")
    r = _cli("dub", "clip.mp4", "--to", "es", "--out", "out", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "clip.mp4" in errors[0] and "Traceback" not in r.stderr, r.stderr
    if case == "no_sound":
        assert "no audio track" in errors[0]
    assert (tmp_path / "out" / "earlier.txt").read_text() == "keep me"


def test_a_failed_dub_resumes_from_the_cache_and_another_voice_speaks_again(workdir, monkeypatch):
    """The translator fails: exit 1, the steps before it are kept. The same command then goes on from
    the cache; another --voice re-runs the voice and what follows it, nothing before."""
    from cadenza.errors import LLMError

    monkeypatch.setenv("CADENZA_CACHE_DIR", str(workdir / ".cache"))
    _clip(workdir / "clip.mp4")

    def down(messages):
        raise LLMError("the translation server went away")

    with translation_llm(ScriptedChatModel([down] * 20)):
        assert cli.main(["dub", "clip.mp4", "--to", "es", "--out", "out", "--json"]) == 1
    steps = lambda: {s["id"]: s["status"] for s in json.loads((workdir / "out" / "run.json").read_text())["steps"]}  # noqa: E731
    first = steps()
    assert all(first[i] == "succeeded" for i in ("sound", "words", "lines")) and first["tr"] == "failed"
    with translation_llm(ScriptedChatModel([_translator] * 20)):
        assert cli.main(["dub", "clip.mp4", "--to", "es", "--out", "out", "--json"]) == 0
    again = steps()
    assert all(again[i] == "cached" for i in ("sound", "words", "lines")) and again["tr"] == "succeeded"
    llm = ScriptedChatModel([_translator] * 20)
    with translation_llm(llm):
        assert cli.main(["dub", "clip.mp4", "--to", "es", "--out", "out", "--json", "--voice", "es"]) == 0
    voiced = steps()
    assert not llm.calls and all(voiced[i] == "cached" for i in ("sound", "words", "lines", "tr"))
    assert voiced["speech"] == voiced["mix"] == voiced["dubbed"] == "succeeded"
    report = json.loads((workdir / "out" / "dub_lines.json").read_text(encoding="utf-8"))
    assert {ln["voice_used"] for ln in report["lines"]} == {"es"}  # espeak-ng's Spanish voice, as asked
