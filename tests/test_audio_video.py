"""End-to-end checks of the tools that work on videos: extract_audio, replace_audio and add_subtitles.

Every test generates its own short media (tests/media_factory.py), calls the tool directly
(outputs go to a temporary workspace) and decodes what came out.
"""

from __future__ import annotations

import numpy as np
import pytest

import media_factory as mf
from cadenza.errors import CancelledError, MediaError
from cadenza.media import Audio, Subtitles, Video
from cadenza.tools.audio.subtitle_track import Cue, parse_cues
from cadenza.tools.audio.video import add_subtitles, extract_audio, replace_audio
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


# -- subtitles: add_subtitles, and replace_audio's subtitles ---------------------------------

SRT = ("\ufeff1\r\n00:00:00,400 --> 00:00:01,200\r\nHello there\r\n\r\n"
       "2\r\n00:00:01,500 --> 00:00:01,900\r\nsecond line\r\nof two\r\n")
VTT = ("WEBVTT - made by hand\nKind: captions\n\nNOTE a comment\nover two lines\n\nSTYLE\n::cue { color: red }\n\n"
       "intro\n00:00.400 --> 00:01.200 align:start position:10%\nHello there\n\n"
       "00:00:01.500 --> 00:00:01.900\nsecond line\nof two\n")
CUES = [(0.4, 1.2, "Hello there"), (1.5, 1.9, "second line\nof two")]


def _subtitle_tracks(path) -> list[tuple[str, str | None, list[tuple[float, float, str]]]]:
    """(codec, language tag, [(start, end, text)]) for each subtitle stream, decoded with PyAV.
    MP4's empty gap-filler samples between cues are left out."""
    import av

    with av.open(str(path)) as c:
        tracks = {s.index: (s.codec_context.name, s.metadata.get("language"), []) for s in c.streams.subtitles}
        for packet in c.demux(*c.streams.subtitles):
            if packet.dts is None:
                continue
            text = "".join(sub.dialogue.decode() for sub in packet.stream.decode(packet))
            if text:
                tracks[packet.stream.index][2].append(
                    (float(packet.pts * packet.time_base), float((packet.pts + packet.duration) * packet.time_base), text))
    return list(tracks.values())


def _same_cues(got, want=CUES) -> bool:
    return len(got) == len(want) and all(
        abs(a - a2) < 0.002 and abs(b - b2) < 0.002 and t == t2 for (a, b, t), (a2, b2, t2) in zip(got, want))


@pytest.mark.parametrize("suffix,subs,codecs", [(".mp4", "s.srt", {"mov_text"}), (".mkv", "s.srt", {"subrip", "srt"}),
                                                (".webm", "s.vtt", {"webvtt"})])
def test_add_subtitles_as_a_track(suffix, subs, codecs):
    mf.make_video("v" + suffix, seconds=2.0, with_audio=True)
    open(subs, "w", newline="").write(SRT if subs.endswith(".srt") else VTT)
    out = add_subtitles(video="v" + suffix, subtitles=subs, language="Spanish")
    assert out.path.suffix == suffix
    before, after = _streams("v" + suffix), _streams(out.path)
    assert after[:2] == before  # the picture and the sound copied, packet for packet
    assert [s[0] for s in after] == ["video", "audio", "subtitle"]
    [(codec, tag, cues)] = _subtitle_tracks(out.path)
    assert codec in codecs and tag == "spa"
    assert _same_cues(cues), cues


def test_parse_cues_tolerates_what_subtitle_files_hold():
    assert parse_cues(VTT, "s.vtt") == parse_cues(SRT, "s.srt") == [Cue(*c) for c in CUES]
    text = "3\n00:00:05,000 --> 00:00:06,000\nlater\n\n1\n0:00:01,5 --> 0:00:02,25\n<i>first</i>\n\nmore of it\n"
    assert parse_cues(text, "x.srt") == [Cue(1.5, 2.25, "<i>first</i>\nmore of it"), Cue(5.0, 6.0, "later")]
    assert parse_cues("", "x.srt") == parse_cues("WEBVTT\n\n", "x.vtt") == []


def av_open(path):
    import av

    return av.open(str(path))


def _frames(path) -> list[tuple[float, np.ndarray]]:
    import av

    with av.open(str(path)) as c:
        return [(f.time, f.to_ndarray(format="rgb24").astype(np.int16)) for f in c.decode(video=0)]


def _audio_packets(path) -> list[bytes]:
    import av

    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(audio=0) if p.dts is not None]


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])  # MPEG-4 Part 2 and VP9, each encoded again as it was
def test_add_subtitles_burned_into_the_picture(suffix):
    video = mf.make_video("v" + suffix, seconds=2.0, width=160, height=120, with_audio=True)
    open("s.srt", "w").write("1\n00:00:00,400 --> 00:00:01,200\nHELLO WORLD, a line too long for this picture\n")
    out = add_subtitles(video=video, subtitles="s.srt", burn=True)
    streams = _streams(out.path)
    assert [s[0] for s in streams] == ["video", "audio"]  # no subtitle track: the text is in the picture
    assert streams[0][1] == _streams(video)[0][1]
    assert _audio_packets(out.path) == _audio_packets(video)  # the sound copied untouched
    before, after = _frames(video), _frames(out.path)
    assert len(after) == len(before) == 50
    assert [t for t, _ in after] == pytest.approx([t for t, _ in before])
    assert after[0][1].shape == (120, 160, 3)
    with av_open(video) as c_in, av_open(out.path) as c_out:
        v_in, v_out = c_in.streams.video[0], c_out.streams.video[0]
        assert v_out.average_rate == v_in.average_rate and v_out.codec_context.pix_fmt == "yuv420p"
    for (t, a), (_, b) in zip(before, after):
        diff = np.abs(a - b)
        lower, upper = diff[84:].mean(), diff[:60].mean()
        if 0.4 <= t < 1.2:
            assert lower > 15 and upper < 4, (t, lower, upper)  # text near the bottom, nothing above it
        else:
            assert lower < 4 and upper < 4, (t, lower, upper)  # outside the cue: re-encoding noise only (~2)


def test_replace_audio_with_a_subtitle_track():
    mf.make_video("v.mp4", seconds=2.0, with_audio=True, freq=440)
    mf.tone("new.wav", freq=880, seconds=2.0)
    open("s.srt", "w").write(SRT)
    out = replace_audio(video="v.mp4", audio="new.wav", keep_original=True, language="es", subtitles="s.srt")
    before, after = _streams("v.mp4"), _streams(out.path)
    assert [s[0] for s in after] == ["video", "audio", "audio", "subtitle"]
    assert after[0] == before[0]  # the picture copied
    assert after[1][2] == "spa"
    [(codec, tag, cues)] = _subtitle_tracks(out.path)
    assert codec == "mov_text" and tag == "spa" and _same_cues(cues)
    x, rate = decode(out)
    assert dominant_freq(x, rate) == pytest.approx(880, rel=0.02)


@pytest.mark.parametrize("mode", ["burn", "none"])
def test_replace_audio_burns_or_leaves_out_subtitles(mode):
    mf.make_video("v.mp4", seconds=1.0, with_audio=True, width=96, height=64)
    mf.tone("new.wav", seconds=1.0)
    open("s.srt", "w").write("1\n00:00:00,000 --> 00:00:00,500\nHI\n")
    out = replace_audio(video="v.mp4", audio="new.wav", subtitles="s.srt", subtitles_mode=mode)
    before, after = _streams("v.mp4"), _streams(out.path)
    assert [s[0] for s in after] == ["video", "audio"] and after[0][3] == before[0][3]
    same_picture = _video_info(out.path)["packets"] == _video_info("v.mp4")["packets"]
    assert same_picture == (mode == "none")  # burned: re-encoded; none: copied


def test_remuxing_keeps_packets_without_a_dts():
    """H.264 with B-frames in Matroska: the first packets (the key frame among them) have no dts.
    They are not the demuxer's flush packet and must be copied, or nothing decodes."""
    mf.make_video("v.mkv", seconds=1.0, with_audio=True, codec="libx264")
    mf.tone("new.wav", seconds=1.0)
    open("s.srt", "w").write(SRT)
    for out in (replace_audio(video="v.mkv", audio="new.wav"), add_subtitles(video="v.mkv", subtitles="s.srt")):
        info = _video_info(out.path)
        assert info["frames"] == 25 and info["packets"] == _video_info("v.mkv")["packets"]


def test_add_subtitles_keeps_the_tracks_a_video_has():
    mf.make_video("v.mkv", seconds=2.0, with_audio=True)
    open("s.srt", "w").write(SRT)
    open("de.vtt", "w").write("WEBVTT\n\n00:00.100 --> 00:00.300\nHallo\n")
    first = add_subtitles(video="v.mkv", subtitles="s.srt", language="es")
    second = add_subtitles(video=first, subtitles="de.vtt", language="de")
    tracks = _subtitle_tracks(second.path)
    assert [t[1] for t in tracks] == ["spa", "deu"]
    assert _same_cues(tracks[0][2]) and _same_cues(tracks[1][2], [(0.1, 0.3, "Hallo")])


def test_add_subtitles_to_a_container_without_subtitle_tracks_writes_mkv():
    mf.make_video("v.avi", seconds=1.0, with_audio=False)
    open("s.srt", "w").write(SRT)
    out = add_subtitles(video="v.avi", subtitles="s.srt")
    assert out.path.suffix == ".mkv"
    [(codec, tag, cues)] = _subtitle_tracks(out.path)
    assert codec in {"subrip", "srt"} and tag is None and _same_cues(cues)


@pytest.mark.parametrize("content", ["", "WEBVTT\n\nNOTE nothing said\n"], ids=["empty-srt", "vtt-no-cues"])
@pytest.mark.parametrize("burn", [False, True])
def test_add_subtitles_with_no_cues_copies_the_video(content, burn):
    """A video with no speech gets empty subtitles: the result is the video as it was, no subtitle track."""
    mf.make_video("v.mp4", seconds=1.0, with_audio=True)
    name = "none.srt" if not content else "none.vtt"
    open(name, "w").write(content)
    out = add_subtitles(video="v.mp4", subtitles=name, burn=burn)
    assert _streams(out.path) == _streams("v.mp4")
    assert _video_info(out.path)["packets"] == _video_info("v.mp4")["packets"]


@pytest.mark.parametrize("content", [
    "just some text\nwith no timing\n",
    "1\n00:00:01,000 --> 00:00:0x,000\nbad time\n",
    "1\n00:00:02,000 --> 00:00:01,000\nends before it starts\n",
    None,  # random bytes
], ids=["no-timing", "bad-time", "backwards", "garbage"])
def test_malformed_subtitles(content):
    mf.make_video("v.mp4", seconds=1.0, with_audio=True)
    mf.tone("new.wav", seconds=1.0)
    if content is None:
        mf.corrupt_file("bad.srt")
    else:
        open("bad.srt", "w").write(content)
    for call in (lambda: add_subtitles(video="v.mp4", subtitles="bad.srt"),
                 lambda: replace_audio(video="v.mp4", audio="new.wav", subtitles="bad.srt")):
        with pytest.raises(MediaError) as e:
            call()
        assert_one_line_naming(e.value, "bad.srt")


def test_add_subtitles_stops_when_the_step_is_cancelled(tmp_path):
    from cadenza.tools.base import ToolContext
    from cadenza.workspace import Workspace

    mf.make_video("v.mp4", seconds=1.0)
    open("s.srt", "w").write(SRT)
    ctx = ToolContext(workspace=Workspace.for_run(tmp_path / "out", {"v": "v.mp4", "s": "s.srt"}), step_id="s")
    ctx.cancelled.set()
    with pytest.raises(CancelledError):
        add_subtitles.fn(video=Video.from_path("v.mp4"), subtitles=Subtitles.from_path("s.srt"), ctx=ctx, burn=True)
