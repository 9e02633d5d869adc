"""strip_silence: trims leading and trailing silence, keeps a margin, leaves silent audio alone."""

from pathlib import Path

import numpy as np
import pytest

from cadenza import Audio, InputError, ToolContext, Workspace
from cadenza.tools.audio.io import load_segment, samples_of, save_segment, segment_from_samples
from cadenza_silence import register_tools, strip_silence

RATE = 16000


def padded_tone(path: Path, tone_s: float = 1.0, pad_s: float = 1.0, channels: int = 1) -> Path:
    """A 440 Hz tone at half scale with `pad_s` seconds of digital silence on each side."""
    t = np.arange(int(tone_s * RATE)) / RATE
    tone = 0.5 * 32767 * np.sin(2 * np.pi * 440 * t)
    pad = np.zeros(int(pad_s * RATE))
    mono = np.concatenate([pad, tone, pad])
    samples = np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono
    return save_segment(segment_from_samples(samples, RATE), path)


def frames(audio: Audio) -> np.ndarray:
    return samples_of(load_segment(audio))


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # direct tool calls may read files under the working directory
    return tmp_path


def test_strips_both_ends_and_keeps_the_margin(in_tmp):
    src = padded_tone(in_tmp / "take.wav")
    out = strip_silence(audio=str(src))
    assert isinstance(out, Audio) and out.path.exists()
    assert out.path.suffix == ".wav"
    assert out.duration == pytest.approx(1.0 + 2 * 0.1, abs=0.01)
    x = frames(out)
    margin = int(0.1 * RATE)
    assert not x[:margin - 1].any() and not x[-margin:].any()  # the margins are the original silence
    assert np.abs(x[margin + 10:-margin - 10]).max() > 16000  # the tone is all there


def test_margin_and_threshold_are_honoured(in_tmp):
    src = padded_tone(in_tmp / "take.wav", tone_s=0.5, pad_s=0.75)
    assert strip_silence(audio=str(src), keep_ms=0).duration == pytest.approx(0.5, abs=0.01)
    assert strip_silence(audio=str(src), keep_ms=250).duration == pytest.approx(1.0, abs=0.01)
    # a margin longer than the silence keeps the whole file
    assert strip_silence(audio=str(src), keep_ms=5000).duration == pytest.approx(2.0, abs=0.01)
    # a tone at -6 dBFS is all "silence" when the threshold is above it
    assert strip_silence(audio=str(src), threshold_db=-3.0).duration == pytest.approx(2.0, abs=0.01)


def test_stereo_with_sound_on_one_channel(in_tmp):
    src = padded_tone(in_tmp / "stereo.wav", channels=2)
    seg = load_segment(src)
    x = samples_of(seg).copy()
    x[:, 1] = 0  # right channel silent: the left one alone decides what is sound
    save_segment(segment_from_samples(x, RATE), src)
    out = strip_silence(audio=str(src), keep_ms=50)
    assert out.channels == 2 and frames(out).shape[1] == 2
    assert out.duration == pytest.approx(1.1, abs=0.01)


def test_silent_audio_is_left_unchanged_with_a_note(tmp_path):
    src = save_segment(segment_from_samples(np.zeros(RATE * 2), RATE), tmp_path / "quiet.wav")
    ctx = ToolContext(workspace=Workspace(tmp_path / "out", allowed=[src]), step_id="strip")
    out = strip_silence.invoke({"audio": Audio.from_path(src)}, ctx)["result"]
    assert out.duration == pytest.approx(2.0, abs=0.01)
    assert len(frames(out)) == 2 * RATE
    assert any("silent" in n for n in ctx.notes)


def test_rejects_bad_arguments(in_tmp):
    src = padded_tone(in_tmp / "take.wav")
    with pytest.raises(InputError, match="threshold_db"):
        strip_silence(audio=str(src), threshold_db=6.0)
    with pytest.raises(InputError, match="keep_ms"):
        strip_silence(audio=str(src), keep_ms=-1)


def test_schema_and_registration_hook():
    assert strip_silence.name == "strip_silence"
    assert set(strip_silence.params) == {"audio", "threshold_db", "keep_ms"}
    assert strip_silence.params["audio"].tag == "audio"
    assert strip_silence.outputs == {"result": "audio"}
    assert [b.name for b in strip_silence.backends] == ["pydub"]
    assert strip_silence.get_backend().name == "pydub"
    found = []
    register_tools(register=found.append)
    assert found == [strip_silence]
