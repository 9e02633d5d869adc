"""make_subtitles: valid SRT/WebVTT, at most 42 characters a line and 2 lines a cue."""

import json
import re
import subprocess
import sys

import pytest

from cadenza.errors import InputError
from cadenza.tools.speech.subtitles import make_subtitles, timestamp

LONG = ("Subtitles must stay readable, so a long sentence like this one, which goes on and on about "
        "nothing in particular, is wrapped into lines and split into several cues with their own times.")
SEGMENTS = [{"start": 0.0, "end": 6.0, "text": LONG}, {"start": 6.5, "end": 7.25, "text": "Short one."},
            {"start": 3725.5, "end": 3727.0, "text": "An hour later."}]
TS = r"(\d\d):(\d\d):(\d\d)[,.](\d\d\d)"


def seconds(m) -> float:
    h, mi, s, ms = map(int, m)
    return h * 3600 + mi * 60 + s + ms / 1000


def parse(text: str, sep: str):
    cues = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        if lines[0] == "WEBVTT":
            continue
        if sep == ",":
            assert lines[0].isdigit()
            lines = lines[1:]
        m = re.fullmatch(f"{TS} --> {TS}".replace("[,.]", re.escape(sep)), lines[0])
        assert m, lines[0]
        cues.append((seconds(m.groups()[:4]), seconds(m.groups()[4:]), lines[1:]))
    return cues


@pytest.mark.parametrize("fmt,sep", [("srt", ","), ("vtt", ".")])
def test_cues_are_wrapped_timed_and_ordered(fmt, sep, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = make_subtitles(segments=SEGMENTS, format=fmt)
    text = out.path.read_text()
    assert out.path.suffix == "." + fmt and out.kind == "subtitles"
    if fmt == "vtt":
        assert text.startswith("WEBVTT\n\n")
    cues = parse(text, sep)
    assert len(cues) >= 4  # the long segment needed several cues
    for start, end, lines in cues:
        assert start <= end and 1 <= len(lines) <= 2 and all(len(line) <= 42 for line in lines)
    assert all(a[1] <= b[0] for a, b in zip(cues, cues[1:]))  # no overlap, in order
    assert cues[0][0] == 0.0 and cues[-1] == (3725.5, 3727.0, ["An hour later."])
    words = " ".join(" ".join(l) for _, _, l in cues)
    assert words == " ".join(s["text"] for s in SEGMENTS)  # nothing lost or reordered
    long_cues = [c for c in cues if c[1] <= 6.0]
    assert long_cues[-1][1] == 6.0


def test_timestamps_and_bad_arguments(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert timestamp(3725.5, ",") == "01:02:05,500" and timestamp(0.0004, ".") == "00:00:00.000"
    with pytest.raises(InputError, match="segment ends"):
        make_subtitles(segments=[{"start": 2, "end": 1, "text": "x"}])
    with pytest.raises(InputError, match=r"argument 'max_chars': must be between 10 and 200 \(got 3\)"):
        make_subtitles(segments=SEGMENTS, max_chars=3)


def test_cli_runs_make_subtitles(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cadenza.cli", "tools", "run", "make_subtitles",
                        "--arg", f"segments={json.dumps(SEGMENTS)}", "--arg", "format=vtt", "--out", "o", "--json"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**__import__("os").environ, "CADENZA_CACHE_DIR": str(tmp_path / "c")})
    assert r.returncode == 0, r.stderr
    path = json.loads(r.stdout)["outputs"]["result"]["path"]
    assert path.endswith(".vtt") and open(path).read().startswith("WEBVTT")
