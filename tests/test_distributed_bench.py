"""benchmarks/distributed.py --quick runs and reports what it says it measures (slow: it starts its own Ray)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_distributed_benchmark_quick_mode():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "distributed.py"), "--quick", "--json"],
                       capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert doc["overhead"]["ray_ms_per_step"] > 0 and doc["overhead"]["threads_ms_per_step"] > 0
    for name, failed in (("batch", 0), ("batch_one_failing", 1)):
        for runner in ("threads", "ray"):
            b = doc[name][runner]
            assert (b["succeeded"], b["failed"]) == (doc[name]["rows"] - failed, failed)
            assert b["ratio_to_ideal"] > 0.9  # nothing beats work / cores
    assert doc["resident"]["loads"] == doc["resident"]["workers"] < doc["resident"]["calls"]
