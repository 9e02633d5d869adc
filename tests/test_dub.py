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
from cadenza.tools.audio.video import replace_audio
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


def _clip(path: Path) -> Path:
    """A video whose sound is three short English sentences with pauses (espeak-ng)."""
    rate, parts = None, []
    for i, s in enumerate(SENTENCES):
        x, rate = mf.decode(mf.espeak_speech(path.parent / f"s{i}.wav", s))
        parts += [np.zeros(int(2.0 * rate)), x.mean(axis=1) if x.ndim == 2 else x]
    parts.append(np.zeros(int(0.8 * rate)))
    speech = np.concatenate(parts)
    mf.write_audio(path.parent / "speech.wav", speech, rate)
    mf.make_video(path.parent / "mute.mp4", seconds=len(speech) / rate, with_audio=False)
    out = replace_audio(video=str(path.parent / "mute.mp4"), audio=str(path.parent / "speech.wav"))
    os.replace(out.path, path)
    return path


def _onset(x: np.ndarray, rate: int, t0: float, t1: float) -> float | None:
    """The first time in [t0, t1) where the track is above -50 dB (speak_lines' idea of silence)."""
    a, b = int(round(t0 * rate)), min(len(x), int(round(t1 * rate)))
    loud = np.flatnonzero(np.abs(x[a:b]) > 10 ** (-50 / 20))
    return (a + loud[0]) / rate if loud.size else None


def _audio_streams(path):
    import av

    with av.open(str(path)) as c:
        return [(s.codec_context.name, s.metadata.get("language")) for s in c.streams.audio]


def test_dub_a_clip_into_spanish(workdir, monkeypatch):
    monkeypatch.setenv("CADENZA_CACHE_DIR", str(workdir / ".cache"))
    _clip(workdir / "clip.mp4")
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
    speech_file = next(p for p in out.glob("*.wav") if "speech" in p.name)
    x, rate = mf.decode(speech_file)
    x = x.mean(axis=1) if x.ndim == 2 else x
    lines = report["lines"]
    for i, ln in enumerate(lines):
        end = lines[i + 1]["start"] if i + 1 < len(lines) else len(x) / rate
        onset = _onset(x, rate, ln["start"], end)
        assert onset is not None, f"line {i} is silent"
        # the line's sound begins at its slot's start (plus the kept edge margin), within 20 ms
        assert abs(onset - MARGIN_S - ln["start"]) <= 0.020, (i, onset, ln["start"])
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
        "dub(video: video, to: text, from?: text, voice?: text, edits?: text) -> video: video, subtitles: subtitles, "
        "subtitles_vtt: subtitles, speech: audio, lines: list[LineReport]")
    r = _cli("workflow", "validate", str(ROOT / "cadenza" / "workflows" / "dub.yaml"), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["inputs"] == ["video", "to", "from", "voice", "edits"]


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
