"""End-to-end checks of the built-in audio editing tools, measured on the decoded output with numpy.

Every test generates its own short media (tests/media_factory.py), calls the tool directly
(outputs go to a temporary workspace) and decodes what came out. The video tools
(extract_audio, replace_audio) are in test_audio_video.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import media_factory as mf
from cadenza.errors import InputError, MediaError
from cadenza.media import Audio
from cadenza.tools.audio.edit import (concat_audio, convert_audio, fade_audio, fit_audio, mix_audio,
                                      normalize_audio, trim_audio)
from media_factory import amplitude_at, assert_one_line_naming, db, decode, dominant_freq, loudness, rms

pytestmark = pytest.mark.usefixtures("workdir")  # each test in its own folder (conftest.py)


# -- mix_audio --------------------------------------------------------------------

def test_mix_length_is_longest_track():
    mf.tone("a.wav", 440, seconds=1.0, rate=22050)
    mf.tone("b.wav", 1000, seconds=2.0, rate=22050)
    out = mix_audio(tracks=["a.wav", "b.wav"])
    assert isinstance(out, Audio)
    x, rate = decode(out)
    assert rate == 22050
    assert len(x) == 2 * 22050
    assert out.duration == pytest.approx(2.0, abs=0.01)
    # the short track stops after 1 s, the long one goes on
    assert amplitude_at(x, rate, 440, 0.1, 0.9) == pytest.approx(0.3, rel=0.02)
    assert amplitude_at(x, rate, 440, 1.1, 1.9) < 0.003
    assert amplitude_at(x, rate, 1000, 1.1, 1.9) == pytest.approx(0.3, rel=0.02)


def test_mix_length_first_cuts_to_first_track():
    mf.tone("a.wav", 440, seconds=1.0)
    mf.tone("b.wav", 1000, seconds=2.0)
    out = mix_audio(tracks=["a.wav", "b.wav"], length="first")
    x, rate = decode(out)
    assert len(x) == rate * 1


@pytest.mark.parametrize("gain_b", [-6.0, -12.0, 4.0])
def test_mix_per_track_gain(gain_b):
    mf.tone("a.wav", 440, seconds=2.0, amp=0.2)
    mf.tone("b.wav", 1000, seconds=2.0, amp=0.2)
    x, rate = decode(mix_audio(tracks=["a.wav", "b.wav"], gains_db=[0, gain_b]))
    a = amplitude_at(x, rate, 440)
    b = amplitude_at(x, rate, 1000)
    assert db(a / 0.2) == pytest.approx(0.0, abs=0.5)
    assert db(b / 0.2) == pytest.approx(gain_b, abs=0.5)
    assert db(b / a) == pytest.approx(gain_b, abs=0.5)


def test_mix_missing_gains_mean_zero_db():
    mf.tone("a.wav", 440, seconds=1.0, amp=0.2)
    mf.tone("b.wav", 1000, seconds=1.0, amp=0.2)
    x, rate = decode(mix_audio(tracks=["a.wav", "b.wav"], gains_db=[-6]))
    assert db(amplitude_at(x, rate, 440) / 0.2) == pytest.approx(-6, abs=0.5)
    assert db(amplitude_at(x, rate, 1000) / 0.2) == pytest.approx(0, abs=0.5)


def test_mix_mixed_rates_and_channels():
    mf.tone("mono16k.wav", 440, seconds=1.0, rate=16000, channels=1)
    mf.tone("stereo22k.wav", 1000, seconds=1.5, rate=22050, channels=2)
    out = mix_audio(tracks=["mono16k.wav", "stereo22k.wav"])
    x, rate = decode(out)
    assert (rate, x.shape[1]) == (22050, 2)
    assert len(x) / rate == pytest.approx(1.5, abs=0.01)
    assert amplitude_at(x, rate, 440, 0.1, 0.9) == pytest.approx(0.3, rel=0.05)
    assert amplitude_at(x, rate, 1000, 0.1, 0.9) == pytest.approx(0.3, rel=0.05)


def test_mix_ducks_background_under_speech():
    # speech bursts at 0-0.5 s and 1.5-2.0 s; the background is a steady 1 kHz tone
    mf.speech_like("voice.wav", seconds=3.0, rate=16000, on=0.5, off=1.0, freq=200)
    mf.tone("music.wav", 1000, seconds=3.0, rate=22050, amp=0.3)
    x, rate = decode(mix_audio(tracks=["voice.wav", "music.wav"], duck_under=0, duck_db=12))
    assert len(x) / rate == pytest.approx(3.0, abs=0.01)
    during = [amplitude_at(x, rate, 1000, 0.1, 0.45), amplitude_at(x, rate, 1000, 1.6, 1.95)]
    outside = [amplitude_at(x, rate, 1000, 0.95, 1.4), amplitude_at(x, rate, 1000, 2.5, 2.95)]
    for o in outside:  # away from speech the background keeps its level
        assert db(o / 0.3) == pytest.approx(0.0, abs=0.5)
    for d in during:  # under speech it is duck_db lower
        assert db(d / 0.3) == pytest.approx(-12.0, abs=1.0)
    # the speech itself is not ducked
    assert amplitude_at(x, rate, 200, 0.1, 0.45) > 0.2


def test_mix_duck_db_sets_depth():
    mf.speech_like("voice.wav", seconds=2.0, rate=16000, on=0.5, off=1.5, freq=200)
    mf.tone("music.wav", 1000, seconds=2.0, rate=16000, amp=0.3)
    x, rate = decode(mix_audio(tracks=["voice.wav", "music.wav"], duck_under=0, duck_db=20))
    assert db(amplitude_at(x, rate, 1000, 0.1, 0.45) / 0.3) == pytest.approx(-20.0, abs=1.0)
    assert db(amplitude_at(x, rate, 1000, 1.2, 1.9) / 0.3) == pytest.approx(0.0, abs=0.5)


def test_mix_ducking_leaves_background_edges_alone():
    mf.speech_like("voice.wav", seconds=2.0, rate=16000, on=0.3, off=1.7, freq=200)  # speech only at 0-0.3 s
    mf.tone("music.wav", 1000, seconds=2.0, rate=16000, amp=0.3)
    ref, _ = decode("music.wav")
    x, rate = decode(mix_audio(tracks=["voice.wav", "music.wav"], duck_under=0, duck_db=12))
    tail = slice(len(x) - int(0.02 * rate), len(x))  # last 20 ms: no speech within 1.5 s
    assert db(rms(x[tail]) / rms(ref[tail])) == pytest.approx(0.0, abs=0.5)


def test_mix_two_loud_tracks_do_not_clip():
    mf.tone("a.wav", 440, seconds=1.0, amp=0.9)
    mf.tone("b.wav", 440, seconds=1.0, amp=0.9)  # in phase: the plain sum would reach 1.8
    x, rate = decode(mix_audio(tracks=["a.wav", "b.wav"]))
    peak = np.abs(x).max()
    assert 0.95 <= peak <= 1.0
    # scaled, not clipped: still a clean sine (a clipped one has flat tops)
    assert np.mean(np.abs(x) >= 0.999 * peak) < 0.05  # a pure sine: ~3%; clipped at 1.8x: ~60%
    t = np.arange(len(x)) / rate
    fit = peak * np.sin(2 * np.pi * 440 * t)
    assert rms(x[:, 0] - fit) < 0.01


def test_mix_bad_duck_under_index():
    mf.tone("a.wav", seconds=0.5)
    mf.tone("b.wav", seconds=0.5)
    with pytest.raises(InputError, match=r"duck_under=5 is not a track index \(0\.\.1\)"):
        mix_audio(tracks=["a.wav", "b.wav"], duck_under=5)
    with pytest.raises(InputError, match=r"argument 'duck_under': must be at least 0 \(got -1\)"):
        mix_audio(tracks=["a.wav", "b.wav"], duck_under=-1)


def test_mix_too_many_gains():
    mf.tone("a.wav", seconds=0.5)
    mf.tone("b.wav", seconds=0.5)
    with pytest.raises(InputError, match=r"3 gains for 2 tracks"):
        mix_audio(tracks=["a.wav", "b.wav"], gains_db=[0, -3, -6])


def test_mix_no_tracks():
    with pytest.raises(InputError, match="at least one track"):
        mix_audio(tracks=[])


# -- concat_audio -------------------------------------------------------------------

def test_concat_durations_add_and_order_kept():
    mf.tone("a.wav", 440, seconds=1.0, rate=16000)
    mf.tone("b.wav", 1000, seconds=1.5, rate=16000)
    out = concat_audio(clips=["a.wav", "b.wav"])
    x, rate = decode(out)
    assert len(x) / rate == pytest.approx(2.5, abs=0.01)
    assert out.duration == pytest.approx(2.5, abs=0.01)
    assert amplitude_at(x, rate, 440, 0.1, 0.9) == pytest.approx(0.3, rel=0.02)
    assert amplitude_at(x, rate, 1000, 0.1, 0.9) < 0.003
    assert amplitude_at(x, rate, 1000, 1.2, 2.4) == pytest.approx(0.3, rel=0.02)


def test_concat_gap_adds_silence():
    mf.tone("a.wav", 440, seconds=1.0, rate=16000)
    mf.tone("b.wav", 1000, seconds=1.0, rate=16000)
    mf.tone("c.wav", 660, seconds=0.5, rate=16000)
    x, rate = decode(concat_audio(clips=["a.wav", "b.wav", "c.wav"], gap_ms=250))
    assert len(x) / rate == pytest.approx(1.0 + 0.25 + 1.0 + 0.25 + 0.5, abs=0.01)
    gap = x[int(1.01 * rate):int(1.24 * rate)]
    assert np.abs(gap).max() == 0


def test_concat_crossfade_shortens():
    mf.tone("a.wav", 440, seconds=1.0, rate=16000)
    mf.tone("b.wav", 1000, seconds=1.5, rate=16000)
    x, rate = decode(concat_audio(clips=["a.wav", "b.wav"], crossfade_ms=300))
    assert len(x) / rate == pytest.approx(2.2, abs=0.01)
    assert amplitude_at(x, rate, 440, 0.1, 0.6) == pytest.approx(0.3, rel=0.02)
    assert amplitude_at(x, rate, 1000, 1.1, 2.1) == pytest.approx(0.3, rel=0.02)


def test_concat_mixed_rates_and_channels():
    mf.tone("a.wav", 440, seconds=1.0, rate=16000, channels=1)
    mf.tone("b.wav", 1000, seconds=1.0, rate=22050, channels=2)
    mf.tone("c.flac", 660, seconds=0.5, rate=22050, channels=1)
    out = concat_audio(clips=["a.wav", "b.wav", "c.flac"])
    x, rate = decode(out)
    assert (rate, x.shape[1]) == (22050, 2)
    assert out.path.suffix == ".wav"  # the first clip's format
    assert len(x) / rate == pytest.approx(2.5, abs=0.01)
    assert dominant_freq(x[int(0.1 * rate):int(0.9 * rate)], rate) == pytest.approx(440, rel=0.01)
    assert dominant_freq(x[int(1.1 * rate):int(1.9 * rate)], rate) == pytest.approx(1000, rel=0.01)
    assert dominant_freq(x[int(2.05 * rate):int(2.45 * rate)], rate) == pytest.approx(660, rel=0.01)


# -- trim_audio ----------------------------------------------------------------------

def _ramp_wav(path: str, seconds: float = 3.0, rate: int = 16000) -> np.ndarray:
    """A signal whose every sample is different, so a cut can be located exactly."""
    n = int(seconds * rate)
    x = (np.arange(n) % 20000 - 10000) / 32767 * 0.9
    mf.write_audio(path, x, rate)
    return decode(path)[0]


def test_trim_start_and_end_exact_samples():
    orig = _ramp_wav("r.wav")
    out = trim_audio(audio="r.wav", start=0.5, end=1.5)
    x, rate = decode(out)
    assert out.duration == pytest.approx(1.0, abs=0.005)
    np.testing.assert_array_equal(x, orig[int(0.5 * rate):int(1.5 * rate)])


def test_trim_negative_end_counts_from_the_end():
    orig = _ramp_wav("r.wav")
    x, rate = decode(trim_audio(audio="r.wav", start=1.0, end=-0.5))
    np.testing.assert_array_equal(x, orig[int(1.0 * rate):int(2.5 * rate)])


def test_trim_start_only_and_end_past_the_end():
    orig = _ramp_wav("r.wav")
    x, rate = decode(trim_audio(audio="r.wav", start=2.0))
    np.testing.assert_array_equal(x, orig[2 * rate:])
    x, rate = decode(trim_audio(audio="r.wav", start=2.0, end=10.0))
    np.testing.assert_array_equal(x, orig[2 * rate:])


def test_trim_cut_points_are_not_truncated():
    orig = _ramp_wav("r.wav")
    x, rate = decode(trim_audio(audio="r.wav", start=1.0, end=2.01))
    assert len(x) == int(round(1.01 * rate))
    np.testing.assert_array_equal(x, orig[rate:int(round(2.01 * rate))])


def test_trim_bad_ranges():
    mf.tone("t.wav", seconds=2.0)
    with pytest.raises(InputError, match=r"start=5.0s is outside the audio"):
        trim_audio(audio="t.wav", start=5.0)
    with pytest.raises(InputError, match=r"start=2.0s is outside"):
        trim_audio(audio="t.wav", start=2.0)
    with pytest.raises(InputError, match=r"argument 'start': must be between 0 and 86400 \(got -1.0\)"):
        trim_audio(audio="t.wav", start=-1.0)
    with pytest.raises(InputError, match=r"end=0.5s is not after start=1.0s"):
        trim_audio(audio="t.wav", start=1.0, end=0.5)
    with pytest.raises(InputError, match=r"end=-1.5s is not after start=1.0s"):
        trim_audio(audio="t.wav", start=1.0, end=-1.5)


# -- fade_audio -------------------------------------------------------------------------

def test_fade_in_and_out():
    mf.tone("t.wav", 440, seconds=2.0, rate=16000, amp=0.5)
    orig, _ = decode("t.wav")
    x, rate = decode(fade_audio(audio="t.wav", fade_in=0.5, fade_out=0.5))
    assert len(x) == len(orig)
    ms = rate // 1000
    assert np.abs(x[:5 * ms]).max() < 0.01  # starts from (near) silence
    assert np.abs(x[-5 * ms:]).max() < 0.01  # ends in (near) silence
    np.testing.assert_allclose(x[int(0.55 * rate):int(1.45 * rate)],
                               orig[int(0.55 * rate):int(1.45 * rate)], atol=2 / 32768)
    # the fade-in rises steadily, reaching about half level halfway
    env = [rms(x[i:i + 50 * ms]) for i in range(0, int(0.5 * rate) - 50 * ms + 1, 50 * ms)]
    assert all(b > a for a, b in zip(env, env[1:]))
    assert rms(x[int(0.23 * rate):int(0.27 * rate)]) / rms(orig) == pytest.approx(0.5, abs=0.1)


def test_fade_in_only_leaves_the_end():
    mf.tone("t.wav", 440, seconds=1.0, rate=16000, amp=0.5)
    orig, _ = decode("t.wav")
    x, rate = decode(fade_audio(audio="t.wav", fade_in=0.2))
    assert np.abs(x[:80]).max() < 0.02  # 5 ms into a 200 ms fade: <= 2.5% of 0.5
    np.testing.assert_allclose(x[int(0.25 * rate):], orig[int(0.25 * rate):], atol=2 / 32768)


def test_fade_negative_length():
    mf.tone("t.wav", seconds=0.5)
    with pytest.raises(InputError, match=r"argument 'fade_in': must be between 0 and 3600 \(got -1\)"):
        fade_audio(audio="t.wav", fade_in=-1)


# -- normalize_audio --------------------------------------------------------------------

@pytest.mark.parametrize("amp,channels", [(0.01, 1), (0.9, 2)], ids=["quiet-mono", "loud-stereo"])
@pytest.mark.parametrize("target", [-16.0, -23.0])
def test_normalize_reaches_target_loudness(amp, channels, target):
    mf.noise("in.wav", seconds=2.0, rate=22050, amp=amp, channels=channels)
    before = loudness(*decode("in.wav"))
    out = normalize_audio(audio="in.wav", target_lufs=target)
    x, rate = decode(out)
    assert x.shape[1] == channels and len(x) == 2 * 22050
    assert abs(before - target) > 5  # the input really was off target
    assert loudness(x, rate) == pytest.approx(target, abs=0.5)
    assert np.abs(x).max() <= 10 ** (-1 / 20) + 1e-4


def test_normalize_keeps_format_and_speech_bursts():
    mf.speech_like("v.flac", seconds=2.0, rate=16000, amp=0.05)
    out = normalize_audio(audio="v.flac", target_lufs=-16)
    assert out.path.suffix == ".flac"
    assert loudness(*decode(out)) == pytest.approx(-16, abs=0.5)


def test_normalize_peak_limit_wins_over_target():
    mf.tone("t.wav", 440, seconds=2.0, amp=0.1)
    x, rate = decode(normalize_audio(audio="t.wav", target_lufs=-3.0, peak_db=-6.0))
    assert db(np.abs(x).max()) == pytest.approx(-6.0, abs=0.1)
    assert loudness(x, rate) < -3.0


def test_normalize_silence_unchanged():
    mf.silence("s.wav", seconds=1.0, rate=16000)
    out = normalize_audio(audio="s.wav", target_lufs=-16)
    x, rate = decode(out)
    assert rate == 16000 and len(x) == 16000
    assert np.all(x == 0)


# -- fit_audio --------------------------------------------------------------------------

@pytest.mark.parametrize("target", [3.1, 1.3, 0.6, 6.0], ids=["stretch", "squeeze", "squeeze-x3", "stretch-x3"])
def test_fit_duration_and_pitch(target):
    mf.tone("t.wav", 440, seconds=2.0, rate=16000, amp=0.3)
    out = fit_audio(audio="t.wav", duration=target)
    x, rate = decode(out)
    assert rate == 16000
    assert len(x) / rate == pytest.approx(target, abs=0.01)
    assert out.duration == pytest.approx(target, abs=0.01)
    assert dominant_freq(x, rate) == pytest.approx(440, rel=0.02)
    # the tone fills the whole output: no silence padded at the end, same level throughout
    tail = x[-int(0.1 * rate):]
    assert rms(tail) > 0.5 * rms(x)
    assert rms(x) == pytest.approx(0.3 / np.sqrt(2), rel=0.15)


def test_fit_stereo():
    mf.tone("t.wav", 440, seconds=1.0, rate=22050, channels=2)
    x, rate = decode(fit_audio(audio="t.wav", duration=1.5))
    assert x.shape[1] == 2
    assert len(x) / rate == pytest.approx(1.5, abs=0.01)
    assert dominant_freq(x, rate) == pytest.approx(440, rel=0.02)


def test_fit_bad_durations():
    mf.tone("t.wav", seconds=1.0)
    with pytest.raises(InputError, match=r"argument 'duration': must be more than 0 and at most 86400 \(got 0\)"):
        fit_audio(audio="t.wav", duration=0)
    with pytest.raises(InputError, match="beyond 16x"):
        fit_audio(audio="t.wav", duration=30)


# -- convert_audio ----------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "ogg", "m4a"])
@pytest.mark.parametrize("src_channels,channels", [(2, 1), (1, 2)], ids=["to-mono", "to-stereo"])
def test_convert_formats(fmt, src_channels, channels):
    mf.tone("in.wav", 440, seconds=1.5, rate=22050, channels=src_channels)
    rate_wanted = 48000 if fmt == "ogg" else 16000  # Ogg is Opus here, which decodes at 48 kHz
    out = convert_audio(audio="in.wav", format=fmt, sample_rate=rate_wanted, channels=channels)
    assert out.path.suffix == "." + fmt
    assert (out.sample_rate, out.channels) == (rate_wanted, channels)
    x, rate = decode(out)
    assert (rate, x.shape[1]) == (rate_wanted, channels)
    assert len(x) / rate == pytest.approx(1.5, abs=0.06)
    assert dominant_freq(x, rate) == pytest.approx(440, rel=0.01)
    assert rms(x[int(0.2 * rate):int(1.2 * rate)]) == pytest.approx(0.3 / np.sqrt(2), rel=0.1)


def test_convert_ogg_honours_or_rejects_sample_rate():
    mf.tone("in.wav", 440, seconds=1.0, rate=22050)
    try:
        out = convert_audio(audio="in.wav", format="ogg", sample_rate=16000)
    except InputError:
        return  # a clear refusal is fine too
    assert out.sample_rate == 16000


@pytest.mark.parametrize("fmt,rate", [("mp3", 96000), ("m4a", 4000)])
def test_convert_rate_the_codec_cannot_take(fmt, rate):
    mf.tone("in.wav", 440, seconds=0.5, rate=22050)
    with pytest.raises(InputError) as e:
        convert_audio(audio="in.wav", format=fmt, sample_rate=rate)
    assert str(rate) in str(e.value)


def test_convert_keeps_rate_and_channels_by_default():
    mf.tone("in.wav", 440, seconds=1.0, rate=22050, channels=2)
    out = convert_audio(audio="in.wav", format="flac")
    x, rate = decode(out)
    orig, _ = decode("in.wav")
    assert (rate, x.shape[1]) == (22050, 2)
    np.testing.assert_array_equal(x, orig)  # FLAC is lossless


def test_convert_bad_arguments():
    mf.tone("in.wav", seconds=0.5)
    with pytest.raises(InputError, match=r"argument 'sample_rate': must be between 8000 and 192000 \(got 100\)"):
        convert_audio(audio="in.wav", format="wav", sample_rate=100)
    with pytest.raises(InputError):
        convert_audio(audio="in.wav", format="aiff")


# -- bad input -------------------------------------------------------------------------

def _bad_files() -> dict[str, str]:
    mf.corrupt_file("corrupt.wav")
    mf.empty_file("empty.wav")
    mf.write_audio("headeronly.wav", np.zeros((0, 1)), 16000)  # a valid header, no samples
    return {"missing": "missing.wav", "corrupt": "corrupt.wav", "empty": "empty.wav",
            "no-samples": "headeronly.wav"}


CALLS = {
    "mix_audio": lambda p: mix_audio(tracks=[p]),
    "concat_audio": lambda p: concat_audio(clips=["ok.wav", p]),
    "trim_audio": lambda p: trim_audio(audio=p, start=0.1),
    "fade_audio": lambda p: fade_audio(audio=p, fade_in=0.1),
    "normalize_audio": lambda p: normalize_audio(audio=p),
    "fit_audio": lambda p: fit_audio(audio=p, duration=1.0),
    "convert_audio": lambda p: convert_audio(audio=p, format="mp3"),
}


@pytest.mark.parametrize("kind", ["missing", "corrupt", "empty", "no-samples"])
@pytest.mark.parametrize("call", list(CALLS))
def test_bad_audio_input(kind, call):
    mf.tone("ok.wav", seconds=0.5)
    name = _bad_files()[kind]
    with pytest.raises(MediaError) as e:
        CALLS[call](name)
    assert isinstance(e.value, InputError)
    assert_one_line_naming(e.value, name)


def test_audio_tool_on_a_video_file_uses_its_sound_track():
    mf.make_video("v.mp4", seconds=2.0, with_audio=True, freq=440)
    x, rate = decode(trim_audio(audio="v.mp4", start=0.5, end=1.5))
    assert len(x) / rate == pytest.approx(1.0, abs=0.01)
    assert dominant_freq(x, rate) == pytest.approx(440, rel=0.01)


def test_direct_call_may_read_the_file_the_caller_passes_from_anywhere(tmp_path_factory):
    # path safety for plans is tested in test_workspace_runtime and test_cli; a direct call is the
    # caller's own choice of file, as on the command line
    outside = mf.tone(tmp_path_factory.mktemp("elsewhere") / "t.wav", seconds=0.5)
    out = trim_audio(audio=str(outside), start=0.1)
    assert out.duration == pytest.approx(0.4, abs=0.01)
