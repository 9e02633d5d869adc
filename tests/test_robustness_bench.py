"""benchmarks/robustness.py: its JSON shape, and that its canaries catch an escape and a lost file.

The self-test cases (behind --self-test, never in the real catalogue) escape on purpose: `cat` of the
canary audio file, an HTTP request to the canary server, a listing of the canary model folder, and the
deletion of an output from an earlier run. One real case runs beside them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "robustness.py"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the canaries use Linux inotify")


def _bench(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TMPDIR=str(tmp_path))
    return subprocess.run([sys.executable, str(BENCH), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_self_test_cases_are_caught_and_json_has_its_shape(tmp_path):
    real = "missing-args/fade_audio/no-args"
    proc = _bench("--self-test", "--only", "selftest/", "--only", real, "--json", "--quiet", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(proc.stdout.strip().splitlines()) == 1
    doc = json.loads(proc.stdout)

    for key in ("tried", "clean", "not_clean", "escapes", "lost", "slowest_s", "slowest_case", "by_group", "seconds"):
        assert key in doc, key
    assert doc["tried"] == 5
    assert doc["by_group"]["selftest"]["tried"] == 4
    assert doc["by_group"]["missing-args"]["tried"] == 1
    assert sum(g["tried"] for g in doc["by_group"].values()) == doc["tried"]
    assert sum(g["clean"] for g in doc["by_group"].values()) == doc["clean"]
    assert doc["clean"] + len(doc["not_clean"]) == doc["tried"]
    for row in doc["not_clean"]:
        assert {"case", "exit", "stderr_head"} <= set(row)
    assert isinstance(doc["slowest_s"], float) and doc["slowest_s"] > 0
    assert doc["slowest_case"] in {real} | {f"selftest/{n}" for n in
                                            ("cat-canary", "http-canary", "list-canary-folder", "delete-earlier-output")}

    escaped = {(e["case"], e["kind"]) for e in doc["escapes"]}
    assert ("selftest/cat-canary", "file") in escaped
    assert ("selftest/http-canary", "http") in escaped
    assert ("selftest/list-canary-folder", "file") in escaped
    cat = [e for e in doc["escapes"] if e["case"] == "selftest/cat-canary"]
    assert any(e["path"].endswith("canary.wav") and e["event"].startswith("open") for e in cat)
    # a case that touches nothing outside its folder is not blamed for the others' escapes
    assert not [e for e in doc["escapes"] if e["case"] in (real, "selftest/delete-earlier-output")]

    assert [x["case"] for x in doc["lost"]] == ["selftest/delete-earlier-output"]
    assert not list(tmp_path.glob("cadenza-robustness-*")), "the temporary folders are removed"


def test_catalogue_covers_every_group_and_keeps_self_tests_out(tmp_path):
    proc = _bench("--list", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = proc.stdout.split("\n")[:-1]
    assert len(names) >= 200 and len(names) == len(set(names))
    groups = {n.split("/")[0] for n in names}
    assert groups >= {"media", "numbers", "symlink", "playlist", "path-args", "yaml", "missing-args", "out",
                      "dollar", "names", "data-lost"}
    assert "selftest" not in groups
    for must in ("path-args/speak/voice/abs-onnx", "path-args/transcribe/model/abs-folder",
                 "playlist/fade_audio/audio/hls-http", "yaml/alias-bomb-arg", "yaml/deep-list-arg",
                 "yaml/chain-1200-validate", "numbers/trim_audio/end/nan", "media/extract_audio/video/wrong-kind"):
        assert must in names, must
