"""End-to-end checks of the audio tools that work on videos: extract_audio and replace_audio.

Every test generates its own short media (tests/media_factory.py), calls the tool directly
(outputs go to a temporary workspace) and decodes what came out.
"""

from __future__ import annotations

import numpy as np
import pytest

import media_factory as mf
from cadenza.errors import MediaError
from cadenza.media import Audio, Video
from cadenza.tools.audio.video import extract_audio, replace_audio
from media_factory import amplitude_at, assert_one_line_naming, decode, dominant_freq, rms

pytestmark = pytest.mark.usefixtures("workdir")  # each test in its own folder (conftest.py)


# -- extract_audio ---------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_extract_audio_from_video(fmt):
    mf.make_video("v.mp4", seconds=2.0, with_audio=True, freq=440)
    video = Video.from_path("v.mp4")
    out = extract_audio(video="v.mp4", format=fmt)
    assert isinstance(out, Audio) and out.path.suffix == "." + fmt
    x, rate = decode(out)
    assert len(x) / rate == pytest.approx(video.duration, abs=0.05)
    assert dominant_freq(x, rate) == pytest.approx(440, rel=0.01)
    assert rms(x[int(0.2 * rate):int(1.8 * rate)]) == pytest.approx(0.3 / np.sqrt(2), rel=0.1)


def test_extract_audio_from_silent_video():
    mf.make_video("mute.mp4", seconds=1.0, with_audio=False)
    with pytest.raises(MediaError) as e:
        extract_audio(video="mute.mp4")
    assert "no audio track" in str(e.value)
    assert_one_line_naming(e.value, "mute.mp4")


# -- replace_audio ---------------------------------------------------------------------

def _video_info(path) -> dict:
    import av

    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        packets = [bytes(p) for p in c.demux(vs) if p.size]
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        frames = [f for f in c.decode(vs)]
        n_audio = len(c.streams.audio)
    return {"frames": len(frames), "size": (frames[0].width, frames[0].height),
            "packets": packets, "n_audio": n_audio}


@pytest.mark.parametrize("audio_seconds", [3.5, 0.8], ids=["longer-cut", "shorter-padded"])
def test_replace_audio(audio_seconds):
    mf.make_video("v.mp4", seconds=2.0, with_audio=True, freq=440)
    mf.tone("new.wav", 1000, seconds=audio_seconds, rate=22050, amp=0.4)
    before = _video_info("v.mp4")
    assert before["frames"] == 50

    out = replace_audio(video="v.mp4", audio="new.wav")
    assert isinstance(out, Video) and out.path.suffix == ".mp4"
    after = _video_info(out.path)
    assert after["frames"] == before["frames"]
    assert after["size"] == (64, 48)
    assert after["packets"] == before["packets"]  # the picture is copied, not re-encoded
    assert after["n_audio"] == 1

    x, rate = decode(out)
    assert len(x) / rate == pytest.approx(2.0, abs=0.05)
    assert dominant_freq(x[int(0.1 * rate):int(0.7 * rate)], rate) == pytest.approx(1000, rel=0.01)
    assert amplitude_at(x, rate, 440, 0.1, 0.7) < 0.01  # the old sound track is gone
    if audio_seconds < 2.0:  # padded with silence after the new audio ends
        assert rms(x[int(1.0 * rate):int(1.9 * rate)]) < 1e-3
    else:
        assert rms(x[int(1.0 * rate):int(1.9 * rate)]) == pytest.approx(0.4 / np.sqrt(2), rel=0.1)


def test_replace_audio_fits_the_picture_not_the_old_sound_track():
    mf.make_video("v.mp4", seconds=2.0, with_audio=True, audio_seconds=3.0)  # old audio overhangs by 1 s
    mf.tone("new.wav", 1000, seconds=5.0, rate=22050)
    out = replace_audio(video="v.mp4", audio="new.wav")
    assert _video_info(out.path)["frames"] == 50
    x, rate = decode(out)
    assert len(x) / rate == pytest.approx(2.0, abs=0.05)


def test_replace_audio_on_video_without_sound():
    mf.make_video("mute.mp4", seconds=1.0, with_audio=False)
    mf.tone("new.wav", 440, seconds=1.0, rate=16000)
    out = replace_audio(video="mute.mp4", audio="new.wav")
    info = _video_info(out.path)
    assert info["frames"] == 25 and info["n_audio"] == 1
    x, rate = decode(out)
    assert len(x) / rate == pytest.approx(1.0, abs=0.05)


# -- bad input -------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["missing", "corrupt", "empty"])
def test_bad_video_input(kind):
    mf.tone("ok.wav", seconds=0.5)
    name = {"missing": "gone.mp4", "corrupt": "bad.mp4", "empty": "nothing.mp4"}[kind]
    if kind == "corrupt":
        mf.corrupt_file(name)
    elif kind == "empty":
        mf.empty_file(name)
    for call in (lambda: extract_audio(video=name), lambda: replace_audio(video=name, audio="ok.wav")):
        with pytest.raises(MediaError) as e:
            call()
        assert_one_line_naming(e.value, name)


def test_replace_audio_with_bad_audio():
    mf.make_video("v.mp4", seconds=1.0)
    mf.corrupt_file("bad.wav")
    with pytest.raises(MediaError) as e:
        replace_audio(video="v.mp4", audio="bad.wav")
    assert_one_line_naming(e.value, "bad.wav")


def _streams(path):
    """(kind, codec, language tag, packet count) for each stream of a file."""
    import av

    with av.open(str(path)) as c:
        info = [[s.type, s.codec_context.name, s.metadata.get("language"), 0] for s in c.streams]
        for packet in c.demux():
            if packet.dts is not None:
                info[packet.stream.index][3] += 1
    return [tuple(i) for i in info]


def test_replace_audio_keeps_the_original_as_a_second_tagged_track():
    mf.make_video("v.mp4", seconds=2.0, with_audio=True, freq=440)
    mf.tone("new.wav", freq=880, seconds=2.0)
    out = replace_audio(video="v.mp4", audio="new.wav", keep_original=True, language="es",
                        original_language="English")
    before, after = _streams("v.mp4"), _streams(out.path)
    assert [s[0] for s in after] == ["video", "audio", "audio"]
    video_in = next(s for s in before if s[0] == "video")
    assert after[0][1] == video_in[1] and after[0][3] == video_in[3]  # the picture copied, packet for packet
    assert after[1][2] == "spa" and after[2][2] == "eng"
    audio_in = next(s for s in before if s[0] == "audio")
    assert after[2][1] == audio_in[1] and after[2][3] == audio_in[3]  # the original sound copied too
    x, rate = decode(out)  # the first audio track is the new one
    assert dominant_freq(x, rate) == pytest.approx(880, rel=0.02)


def test_replace_audio_tags_only_languages_it_knows():
    mf.make_video("v.mp4", seconds=1.0, with_audio=True)
    mf.tone("new.wav", seconds=1.0)
    out = replace_audio(video="v.mp4", audio="new.wav", language="deu", original_language="xx")
    after = _streams(out.path)
    assert [s[0] for s in after] == ["video", "audio"] and after[1][2] == "deu"
