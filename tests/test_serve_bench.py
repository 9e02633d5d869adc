"""benchmarks/serve.py --quick: a real `cadenza serve` under a small load, one JSON object with every figure,
no run lost or duplicated (about 10 s)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="memory is read from /proc")


def test_quick_mode_runs_and_reports_every_figure(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "serve.py"), "--quick", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(proc.stdout.strip().splitlines()) == 1
    doc = json.loads(proc.stdout)
    assert doc["tools"]["requests"] > 0 and doc["tools"]["not_200"] == 0 and doc["tools"]["rps"] > 0
    burst = doc["burst"]
    assert burst["runs"] == 10 and burst["check"] == {"listed": 10, "folders": 10, "ok": True, "problems": []}
    assert 0 < burst["submit_p50_ms"] <= burst["submit_p99_ms"] and burst["all_finished_s"] > 0
    memory = doc["memory"]
    assert memory["runs_first"] == 10 and memory["runs_last"] == 30 and memory["waves_ok"] and memory["rss_mb_last"] > 0
    assert doc["runs_done"] == 30
    assert not list(tmp_path.glob("cadenza-serve-bench-*")), "the temporary folder is removed"
