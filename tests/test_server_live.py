"""The HTTP API against a real uvicorn process on a free loopback port: server-sent events (a late
client, a client that leaves mid-stream), a client that leaves mid-upload, a restart in the middle
of a run (interrupted, then resumed from the cache), and the README's curl example as written."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.media_factory import tone
from tests.serve_helper import ROOT, LiveServer, free_port
from tests.server_tools import gated_workflow


def test_server(data: Path, cache: Path, port: int | None = None) -> LiveServer:
    port = port or free_port()
    return LiveServer([sys.executable, "-m", "tests.server_tools", str(data), str(port)], port,
                      {"CADENZA_CACHE_DIR": str(cache)}, cwd=ROOT)


test_server.__test__ = False  # a helper, not a test


@pytest.fixture()
def sound(tmp_path) -> Path:
    return tone(tmp_path / "tone.wav", freq=330, seconds=1.0)


def upload(url: str, path: Path) -> str:
    with open(path, "rb") as f:
        r = httpx.post(url + "/uploads", files={"file": ("x", f)}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def wait_status(url: str, run_id: str, want: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = httpx.get(f"{url}/runs/{run_id}", timeout=10).json()
        if doc["status"] in want:
            return doc
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} is {doc['status']}, not {want}")


def sse(url: str, run_id: str, stop_after: int | None = None) -> list[dict]:
    """The events of a run's stream; with `stop_after`, leave after that many (mid-stream)."""
    got = []
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                got.append(json.loads(line[6:]))
                if stop_after is not None and len(got) >= stop_after:
                    break
    return got


def test_events_stream_live_to_a_late_client_and_survive_one_that_leaves(tmp_path, sound):
    gate = tmp_path / "gate"
    server = test_server(tmp_path / "data", tmp_path / "cache")
    try:
        sid = upload(server.url, sound)
        run_id = httpx.post(server.url + "/runs", json={"workflow_yaml": gated_workflow(gate),
                                                         "inputs": {"sound": sid}}).json()["id"]
        first = sse(server.url, run_id, stop_after=2)  # leaves mid-stream while the run waits at the gate
        assert [e["kind"] for e in first] == ["run_queued", "execution_started"]
        assert httpx.get(server.url + "/tools").status_code == 200  # the server goes on
        gate.touch()
        events = sse(server.url, run_id)  # a late client: every event from the start, to the end
        kinds = [e["kind"] for e in events]
        assert kinds[:2] == ["run_queued", "execution_started"] and kinds[-1] == "run_finished"
        steps = {(e["step"], e["kind"]) for e in events if "step" in e}
        assert {("level", "step_started"), ("level", "step_finished"), ("wait", "step_finished")} <= steps
        assert [e["seq"] for e in events] == list(range(len(events)))
        assert events[-1]["status"] == "succeeded"
        with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", headers={"Last-Event-ID": "3"}) as r:
            resumed = [json.loads(x[6:]) for x in r.iter_lines() if x.startswith("data: ")]
        assert resumed == events[4:]
    finally:
        server.stop()


def test_a_client_that_leaves_mid_upload_leaves_nothing(tmp_path, sound):
    data = tmp_path / "data"
    server = test_server(data, tmp_path / "cache")
    try:
        body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.wav\"\r\n\r\n"
                + sound.read_bytes()[:20000])
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(b"POST /uploads HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                      b"Content-Length: 400000\r\n\r\n" + body)
            time.sleep(0.5)  # the server has begun writing the part
        deadline = time.monotonic() + 10
        while list((data / "tmp").glob("*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not list((data / "tmp").glob("*")) and not list((data / "uploads").iterdir())
        assert upload(server.url, sound)  # and it goes on serving
    finally:
        server.stop()


def test_a_restart_keeps_runs_and_an_interrupted_one_resumes_from_the_cache(tmp_path, sound):
    data, cache, gate = tmp_path / "data", tmp_path / "cache", tmp_path / "gate"
    port = free_port()
    server = test_server(data, cache, port)
    try:
        sid = upload(server.url, sound)
        run_id = httpx.post(server.url + "/runs", json={"workflow_yaml": gated_workflow(gate),
                                                         "inputs": {"sound": sid}}).json()["id"]
        deadline = time.monotonic() + 30
        while not any(e.get("step") == "wait" for e in _read_events(data, run_id)):
            assert time.monotonic() < deadline, "the run never reached its second step"
            time.sleep(0.1)
    finally:
        server.stop(signal.SIGKILL)  # no chance to tidy up
    server = test_server(data, cache, port)
    try:
        runs = httpx.get(server.url + "/runs").json()["runs"]
        assert [(r["id"], r["status"]) for r in runs] == [(run_id, "interrupted")]
        assert (data / "uploads" / sid).is_dir()  # uploads kept
        assert sse(server.url, run_id)[-1]["kind"] == "run_interrupted"  # a stream of an interrupted run ends
        gate.touch()
        assert httpx.post(f"{server.url}/runs/{run_id}/resume").status_code == 202
        run = wait_status(server.url, run_id, {"succeeded", "failed"})
        assert run["status"] == "succeeded" and run["attempts"] == 2, run
        record = httpx.get(f"{server.url}/runs/{run_id}/run.json").json()
        assert [(s["id"], s["status"]) for s in record["steps"]] == [("level", "cached"), ("wait", "succeeded")]
        assert httpx.get(server.url + run["outputs"]["result"]["url"]).content[:4] == b"RIFF"
        kinds = [e["kind"] for e in sse(server.url, run_id)]
        assert kinds.count("run_queued") == 2 and "run_interrupted" in kinds and kinds[-1] == "run_finished"
    finally:
        server.stop()
    server = test_server(data, cache, port)  # a finished run is listed as it was
    try:
        assert httpx.get(f"{server.url}/runs/{run_id}").json()["status"] == "succeeded"
    finally:
        server.stop()


def _read_events(data: Path, run_id: str) -> list[dict]:
    path = data / "runs" / run_id / "events.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def test_readme_curl_example_runs_as_written(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Serving"):]
    serve_block, block = re.findall(r"```bash\n(.*?)```", section, re.S)[:2]
    assert serve_block.startswith("cadenza serve") and block.startswith("RUN=$(curl")
    port = free_port()
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    argv = [sys.executable, "-m", "cadenza.cli", "serve", "--port", str(port), "--data", str(tmp_path / "data")]
    server = LiveServer(argv, port, {"CADENZA_CACHE_DIR": str(tmp_path / "cache")}, cwd=tmp_path)
    try:
        script = block.replace("localhost:8000", f"localhost:{port}")
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        out = tmp_path / "narration.wav"
        assert out.read_bytes()[:4] == b"RIFF"
    finally:
        server.stop()
