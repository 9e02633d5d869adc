"""The allowed roots hold against the media themselves, path-valued tool arguments and a swap race.

1. A playlist or list file (HLS, ffconcat) given as media would make FFmpeg open the files or
   URLs it names: only plain containers are opened (media.open_media), through `file` only.
2. A model or voice given by path (`LocalPath` arguments) is checked like a media input, plus
   the model folders the user configured.
3. A folder swapped for a symlink between the check and the open is not followed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cadenza import Workspace
from cadenza.errors import InputError, MediaError, PathNotAllowedError
from cadenza.media import READABLE_FORMATS, Audio, open_media
from cadenza.tools.args import convert_value
from cadenza.tools.audio.io import load_segment
from cadenza.tools.speech.speak import speak
from cadenza.tools.speech.transcribe import transcribe
from tests.media_factory import assert_one_line_naming, make_video, tone, write_audio

MODEL_VARS = ("CADENZA_FASTER_WHISPER_MODEL", "CADENZA_OPENAI_WHISPER_MODEL", "CADENZA_HF_ASR_MODEL",
              "CADENZA_HF_TTS_MODEL", "CADENZA_MODELS_DIR")


@pytest.fixture(autouse=True)
def no_user_models(tmp_path, monkeypatch):
    """No config file and no model variables of the machine running the tests."""
    monkeypatch.setenv("CADENZA_CONFIG", str(tmp_path / "no-config.toml"))
    for var in MODEL_VARS:
        monkeypatch.delenv(var, raising=False)


def cadenza(*args, cwd):
    env = {**os.environ, "CADENZA_CACHE_DIR": str(Path(cwd) / ".cache")}
    return subprocess.run([sys.executable, "-m", "cadenza.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


def error_line(r) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def encode(path: Path, fmt: str, codec: str, rate: int = 44100) -> Path:
    """One second of a 440 Hz tone in a container and codec of our choosing (.ts, .aac, .aiff)."""
    import av

    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=rate,
                                      frame_size=stream.codec_context.frame_size or 1024)
        samples = (0.3 * 32767 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        for f in resampler.resample(frame) + resampler.resample(None):
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))
    return path


# -- 1. containers that open other files -----------------------------------------------------------

def hls(*entries: str) -> str:
    body = "".join(f"#EXTINF:1.0,\n{e}\n" for e in entries)
    return f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n{body}#EXT-X-ENDLIST\n"


@pytest.fixture
def outside(tmp_path):
    """A folder outside every allowed root, holding media a playlist could pull in."""
    d = tmp_path / "outside"
    d.mkdir()
    tone(d / "secret.wav", freq=880, seconds=1.0)
    encode(d / "seg.ts", "mpegts", "aac")
    encode(d / "seg.aac", "adts", "aac")
    return d


TRICKS = {  # file name -> (content, with {out} for the outside folder; what the error calls it)
    "abs-ts.m3u8": (hls("{out}/seg.ts"), "HLS playlist"),
    "abs-aac.m3u8": (hls("{out}/seg.aac"), "HLS playlist"),
    "via-link.m3u8": (hls("lnk/seg.ts"), "HLS playlist"),  # relative, through a symlinked folder
    "url.m3u8": (hls("http://127.0.0.1:9/seg.ts"), "HLS playlist"),
    "list.ffconcat": ("ffconcat version 1.0\nfile lnk/secret.wav\n", "ffconcat list"),
    "disguised.wav": ("ffconcat version 1.0\nfile lnk/secret.wav\n", "ffconcat list"),  # FFmpeg probes content
}


def plant(tmp_path, outside, *names) -> Path:
    """proj/ with the playlists `names` and lnk -> outside/."""
    proj = tmp_path / "proj"
    proj.mkdir()
    os.symlink(outside, proj / "lnk")
    for name in names:
        (proj / name).write_text(TRICKS[name][0].format(out=outside))
    return proj


@pytest.mark.parametrize("name", TRICKS)
def test_a_file_that_opens_other_files_is_bad_input(name, tmp_path, outside):
    proj = plant(tmp_path, outside, name)
    ws = Workspace(tmp_path / "out", allowed=[proj / name])  # the playlist itself is the user's
    with pytest.raises(MediaError) as e:
        convert_value(Audio, str(proj / name), ws, "input 'a'")
    assert e.value.exit_code == 2
    assert_one_line_naming(e.value, name)
    assert TRICKS[name][1] in str(e.value) and "opens other files" in str(e.value)


def test_the_cli_refuses_them_with_exit_2(tmp_path, outside):
    proj = plant(tmp_path, outside, "abs-ts.m3u8", "list.ffconcat")
    for name in ("abs-ts.m3u8", "list.ffconcat"):
        r = cadenza("tools", "run", "fade_audio", "--arg", f"audio={name}", "--arg", "fade_in=0.1", "--out", "o",
                    cwd=proj)
        assert r.returncode == 2, (r.stdout, r.stderr)
        line = error_line(r)
        assert name in line and TRICKS[name][1] in line and "opens other files" in line, line
        assert not list((proj / "o").glob("*.wav"))  # nothing was decoded from outside


@pytest.mark.parametrize("name", ["abs-ts.m3u8", "via-link.m3u8", "list.ffconcat", "disguised.wav"])
def test_ffmpeg_refuses_them_even_unrecognised(name, tmp_path, outside, monkeypatch):
    """The names in the message come from a sniff; FFmpeg's format whitelist is the guard itself
    (an HLS playlist opened as /proc/self/fd/N has lost the name FFmpeg would know it by)."""
    import av

    import cadenza.media

    monkeypatch.setattr(cadenza.media, "_opens_others", lambda name, head: None)
    proj = plant(tmp_path, outside, name)
    with pytest.raises((MediaError, av.error.InvalidDataError)) as e:
        with open_media(proj / name) as c:
            next(c.decode(audio=0))
    assert isinstance(e.value, av.error.InvalidDataError) or "not an audio, video or image format" in str(e.value)


def _picture(path: Path, fmt: str, codec: str, pix: str) -> Path:
    import av

    with av.open(str(path), "w", format=fmt) as out:
        s = out.add_stream(codec, rate=1)
        s.width, s.height, s.pix_fmt = 32, 32, pix
        frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 90, np.uint8), format="rgb24").reformat(format=pix)
        for p in list(s.encode(frame)) + list(s.encode(None)):
            out.mux(p)
    return path


def test_ordinary_formats_still_open(tmp_path):
    x = 0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)
    files = [write_audio(tmp_path / f"a.{ext}", x, 16000) for ext in ("wav", "flac", "mp3", "ogg", "opus", "m4a")]
    files += [encode(tmp_path / "a.aac", "adts", "aac"), encode(tmp_path / "a.aiff", "aiff", "pcm_s16be"),
              encode(tmp_path / "a.ts", "mpegts", "aac")]
    files += [make_video(tmp_path / f"v.{ext}", seconds=0.4) for ext in ("mp4", "mkv", "mov", "avi")]
    files += [_picture(tmp_path / f"i.{ext}", "image2", codec, pix) for ext, codec, pix in [
        ("png", "png", "rgb24"), ("jpg", "mjpeg", "yuvj420p"), ("webp", "libwebp", "yuv420p"),
        ("bmp", "bmp", "bgr24"), ("tiff", "tiff", "rgb24")]]
    files.append(_picture(tmp_path / "i.gif", "gif", "gif", "rgb8"))
    for f in files:
        with open_media(f) as c:
            assert set(c.format.name.split(",")) & set(READABLE_FORMATS), (f.name, c.format.name)
            assert c.streams.audio or c.streams.video


# -- 2. path-valued tool arguments -----------------------------------------------------------------

def _wf(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def elsewhere(tmp_path):
    d = tmp_path / "elsewhere"
    (d / "whisper").mkdir(parents=True)
    (d / "whisper" / "model.bin").write_bytes(b"not a model")
    (d / "v.onnx").write_bytes(b"not a voice")
    (d / "v.onnx.json").write_text(json.dumps({"language": {"code": "en_US"}, "audio": {"sample_rate": 22050}}))
    return d


def test_model_and_voice_paths_outside_the_roots_are_refused_before_running(tmp_path, elsewhere):
    proj = tmp_path / "proj"
    proj.mkdir()
    tone(proj / "a.wav", seconds=0.5)
    wf = _wf(proj / "speak.yaml", f"steps:\n  - {{id: s, tool: speak, backend: piper, "
                                  f"args: {{text: hello, voice: {elsewhere / 'v.onnx'}}}}}\n")
    r = cadenza("workflow", "run", wf, "--out", "o", cwd=proj)
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = error_line(r)
    assert "argument 'voice'" in line and "path not allowed" in line and "v.onnx" in line, line
    wf = _wf(proj / "asr.yaml", f"inputs: {{a: {{type: audio}}}}\nsteps:\n  - {{id: t, tool: transcribe, "
                                f"args: {{media: $a, model: {elsewhere / 'whisper'}}}}}\n")
    r = cadenza("workflow", "run", wf, "--input", "a=a.wav", "--out", "o", cwd=proj)
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = error_line(r)
    assert "argument 'model'" in line and "path not allowed" in line and "whisper" in line, line
    assert not (proj / "o" / "run.json").exists()  # refused before anything ran


def _model(value, ws, tool=transcribe, arg="model"):
    return convert_value(tool.params[arg].annotation, value, ws, f"tool '{tool.name}' argument '{arg}'")


def test_path_arguments_are_checked_names_pass(tmp_path, elsewhere, monkeypatch):
    proj = tmp_path / "proj"
    (proj / "models" / "mine").mkdir(parents=True)
    monkeypatch.chdir(proj)
    ws = Workspace(tmp_path / "out", allowed=[proj])
    for name in ("base", "tiny.en", "openai/whisper-tiny"):  # a name, a hub id: the backend looks it up
        assert _model(name, ws) == name
    assert _model(None, ws) is None
    assert _model("models/mine", ws) == str(proj / "models" / "mine")  # a path comes back real
    os.symlink(proj / "models" / "mine", proj / "alias")
    assert _model("./alias", ws) == str((proj / "models" / "mine").resolve())
    with pytest.raises(PathNotAllowedError, match="argument 'model'.*path not allowed.*whisper.*outside") as e:
        _model(str(elsewhere / "whisper"), ws)
    assert_one_line_naming(e.value, "whisper")
    os.symlink(elsewhere / "whisper", proj / "sneaky")
    with pytest.raises(PathNotAllowedError, match="sneaky.*symlink escapes"):
        _model("sneaky", ws)  # no separator, but it exists: a path
    with pytest.raises(InputError, match="no such file or folder: /nowhere/model"):
        _model("/nowhere/model", ws)
    with pytest.raises(PathNotAllowedError, match="argument 'voice'.*v.onnx"):
        _model(str(elsewhere / "v.onnx"), ws, speak, "voice")
    # a voice inside whose .json sidecar is a link out is refused; a plain sidecar beside it is fine
    (proj / "v.onnx").write_bytes(b"x")
    os.symlink(elsewhere / "v.onnx.json", proj / "v.onnx.json")
    with pytest.raises(PathNotAllowedError, match="v.onnx.json.*symlink escapes"):
        _model("./v.onnx", ws, speak, "voice")
    (proj / "v.onnx.json").unlink()
    (proj / "v.onnx.json").write_text("{}")
    assert _model("./v.onnx", ws, speak, "voice") == str(proj / "v.onnx")


def test_model_folders_the_user_configured_are_allowed(tmp_path, elsewhere, monkeypatch):
    ws = Workspace(tmp_path / "out")
    target = str(elsewhere / "whisper")
    with pytest.raises(PathNotAllowedError):
        _model(target, ws)
    monkeypatch.setenv("CADENZA_HF_ASR_MODEL", target)
    assert _model(target, ws) == target
    monkeypatch.delenv("CADENZA_HF_ASR_MODEL")
    monkeypatch.setenv("CADENZA_MODELS_DIR", str(elsewhere))
    assert _model(str(elsewhere / "v.onnx"), ws, speak, "voice") == str(elsewhere / "v.onnx")
    monkeypatch.delenv("CADENZA_MODELS_DIR")
    config = tmp_path / "config.toml"
    config.write_text(f'model_dirs = ["{elsewhere}"]\n')
    monkeypatch.setenv("CADENZA_CONFIG", str(config))
    assert _model(target, ws) == target
    config.write_text("model_dirs = 3\n")
    with pytest.raises(InputError, match="model_dirs must be a list"):
        _model(target, ws)


# -- 3. a folder swapped for a symlink between the check and the open ------------------------------

@pytest.fixture
def swap(tmp_path, monkeypatch):
    """proj/sub/a.wav (440 Hz) is checked; right after the check, proj/sub becomes a symlink to
    outside/, whose a.wav (880 Hz) is what a path-following open would read."""
    proj, outside = tmp_path / "proj", tmp_path / "outside"
    tone(proj / "sub" / "a.wav", freq=440, seconds=0.5)
    tone(outside / "a.wav", freq=880, seconds=0.5)

    def swap_now():
        os.rename(proj / "sub", proj / "sub-checked")
        os.symlink(outside, proj / "sub")

    return proj, swap_now


def test_folder_swapped_after_the_check_is_not_followed(tmp_path, swap, monkeypatch):
    proj, swap_now = swap
    checked = Workspace.resolve_input

    def check_then_swap(self, value, kind="input"):  # the hook between the check and the open
        real = checked(self, value, kind)
        swap_now()
        return real

    monkeypatch.setattr(Workspace, "resolve_input", check_then_swap)
    ws = Workspace(tmp_path / "out", allowed=[proj])
    with pytest.raises(MediaError, match=r"input 'a'.*a\.wav.*sub is a symbolic link") as e:
        convert_value(Audio, str(proj / "sub" / "a.wav"), ws, "input 'a'")
    assert_one_line_naming(e.value, "a.wav")


def test_folder_swapped_before_the_tool_decodes_is_not_followed(tmp_path, swap):
    proj, swap_now = swap
    ws = Workspace(tmp_path / "out", allowed=[proj], base_dir=tmp_path)
    audio = convert_value(Audio, "proj/sub/a.wav", ws, "input 'a'")
    assert audio.path == proj / "sub" / "a.wav"
    swap_now()  # after probing, before the tool's decode
    with pytest.raises(MediaError, match="sub is a symbolic link"):
        load_segment(audio)
    # a file (the last component) swapped for a link is refused the same way
    (proj / "sub").unlink()
    os.rename(proj / "sub-checked", proj / "sub")
    os.rename(proj / "sub" / "a.wav", proj / "sub" / "a-checked.wav")
    os.symlink(tmp_path / "outside" / "a.wav", proj / "sub" / "a.wav")
    with pytest.raises(MediaError, match="a.wav is a symbolic link"):
        load_segment(audio)
