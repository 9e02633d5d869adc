"""compose_music and generate_sound as a user meets them: through the CLI and a plan, with the
embedded offline composer (no model, no network). The composer itself: test_music_composer.py; the
GPU backends with tiny random models: test_music_heavy_musicgen.py and
test_music_heavy_diffusers.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import media_factory as mf

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT / "examples" / "media"


def cadenza(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CADENZA_CACHE_DIR": str(Path(cwd) / ".cache")}
    for var in ("CADENZA_MUSICGEN_MODEL", "CADENZA_STABLE_AUDIO_MODEL", "CADENZA_AUDIOLDM_MODEL"):
        env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "cadenza.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def compose(*args, cwd):
    argv = []
    for a in args:
        argv += ["--arg", a]
    return cadenza("tools", "run", "compose_music", *argv, "--out", "out", "--json", cwd=cwd)


def one_error(r) -> str:
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    return errors[0]


def test_narration_over_calm_piano_fits_the_bed_to_the_narration(tmp_path):
    """The worked example's plan: the music is as long as the narration ($narration.duration), the
    composer says what it chose, and the score comes as MIDI beside the audio."""
    plan = {"inputs": {"narration": {"type": "audio"}},
            "steps": [{"id": "bed", "tool": "compose_music", "args": {"description": "calm piano",
                                                                       "duration": "$narration.duration"}},
                      {"id": "mix", "tool": "mix_audio", "args": {"tracks": ["$narration", "$bed.audio"],
                                                                  "gains_db": [0, -8], "duck_under": 0}}]}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    r = cadenza("workflow", "run", "plan.json", "--input", f"narration={MEDIA / 'narration.wav'}", "--out", "out",
                "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    bed = next(s for s in run["steps"] if s["id"] == "bed")
    narration, _ = mf.decode(MEDIA / "narration.wav")
    music, rate = mf.decode(bed["outputs"]["audio"]["path"])
    want = bed["args"]["duration"]
    assert music.shape[1] == 2 and abs(len(music) / rate - want) <= 0.010  # stereo, exact within 10 ms
    assert bed["outputs"]["midi"]["path"].endswith(".mid") and Path(bed["outputs"]["midi"]["path"]).exists()
    settings = bed["outputs"]["settings"]
    assert settings["style"] == "piano" and settings["parsed_by"] == "rules" and 40 <= settings["tempo_bpm"] <= 100
    assert -17.5 <= mf.loudness(music, rate) <= -14.5


@pytest.mark.parametrize("args, words", [
    (("description=calm piano", "duration=0"), "must be more than 0"),
    (("description=calm piano", "duration=-5"), "must be more than 0"),
    (("description=calm piano", "duration=601"), "at most 600"),
    (("description=   ", "duration=5"), "the description is empty"),
    (("description=calm piano", "duration=5", "seed=twelve"), "'seed'"),
])
def test_bad_arguments_are_one_line_input_errors(tmp_path, args, words):
    assert words in one_error(compose(*args, cwd=tmp_path))


def test_a_corrupt_or_silent_melody_is_named_in_one_line(tmp_path):
    mf.corrupt_file(tmp_path / "tune.wav")
    assert "tune.wav" in one_error(compose("description=calm piano", "duration=5", f"melody={tmp_path / 'tune.wav'}",
                                           cwd=tmp_path))
    mf.silence(tmp_path / "hush.wav", seconds=2.0)
    err = one_error(compose("description=calm piano", "duration=5", f"melody={tmp_path / 'hush.wav'}", cwd=tmp_path))
    assert "hush.wav is silent" in err
    mf.tone(tmp_path / "tune2.wav", seconds=2.0)
    err = one_error(compose("description=calm piano", "duration=5", f"melody={tmp_path / 'tune2.wav'}", cwd=tmp_path))
    assert "offline composer cannot follow a melody" in err and "MusicGen" in err


def test_a_description_with_no_known_style_gets_the_default_style_and_a_note(tmp_path):
    r = compose("description=a bouncy tune about my cat", "duration=6", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    notes = [n for ns in doc["notes"].values() for n in ns]
    assert any("no style" in n for n in notes), notes
    assert doc["outputs"]["settings"]["style_from"] == "default"


def test_same_description_duration_and_seed_give_bit_identical_files(tmp_path):
    a = compose("description=lo-fi hip hop", "duration=8", "seed=3", cwd=tmp_path)
    b = cadenza("tools", "run", "compose_music", "--arg", "description=lo-fi hip hop", "--arg", "duration=8",
                "--arg", "seed=3", "--out", "out2", "--json", "--no-cache", cwd=tmp_path)
    c = compose("description=lo-fi hip hop", "duration=8", "seed=4", cwd=tmp_path)
    paths = [json.loads(r.stdout)["outputs"]["audio"]["path"] for r in (a, b, c)]
    data = [Path(p).read_bytes() for p in paths]
    assert data[0] == data[1] and data[0] != data[2]


def test_generate_sound_without_a_model_says_what_to_install(tmp_path):
    r = cadenza("tools", "run", "generate_sound", "--arg", "description=rain on a tin roof", "--arg", "duration=5",
                "--out", "out", cwd=tmp_path)
    err = one_error(r)
    assert "stable-audio" in err and "audioldm2" in err and "CADENZA_STABLE_AUDIO_MODEL" in err
    assert not list((tmp_path / "out").glob("*.wav"))  # never a made-up sound
