"""The Ray runner through the real `cadenza` command line in its own process: Ctrl-C (a real
SIGINT) stops a run's and a batch's Ray tasks and records the cancel; and a second Ray node that
really cannot see the workspace (started in its own mount namespace) is refused before anything
runs."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from tests.test_cli import write
from tests.test_ray import assert_stopped

ROOT = Path(__file__).resolve().parents[1]

# The CLI in a process of its own, with the test tools of test_ray.py registered as a plugin's
# would be (the Ray workers import them from the same module).
LAUNCH = """\
    import sys
    sys.path.insert(0, {root!r})
    from cadenza import cli
    from cadenza.tools.registry import default_registry
    from tests.test_ray import join_text, stubborn

    for t in (stubborn, join_text):
        default_registry().register(t)
    sys.exit(cli.main(sys.argv[1:]))
    """

WF = """\
    inputs:
      folder: {type: text}
    steps:
      - {id: s, tool: stubborn, args: {seconds: 60, folder: $folder}}
      - {id: after, tool: join_text, args: {parts: [$s]}}
    outputs: {joined: $after}
    """


def start_cli(tmp_path: Path, *args) -> subprocess.Popen:
    launch = write(tmp_path / "launch.py", textwrap.dedent(LAUNCH.format(root=str(ROOT))))
    env = {**os.environ, "CADENZA_CACHE_DIR": str(tmp_path / ".cache"), "CADENZA_RAY_CPUS": "2"}
    return subprocess.Popen([sys.executable, str(launch), *map(str, args)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(paths: list[Path], p: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not any(f.exists() for f in paths):
        if p.poll() is not None or time.monotonic() > deadline:
            p.kill()
            raise AssertionError(f"no step started: {p.communicate()[1][-2000:]}")
        time.sleep(0.1)


def test_ctrl_c_in_the_cli_cancels_the_ray_tasks_of_a_run_and_of_a_batch(tmp_path):
    wf = write(tmp_path / "wf.yaml", WF)
    marks = tmp_path / "marks"
    marks.mkdir()
    p = start_cli(tmp_path, "workflow", "run", wf, "--input", f"folder={marks}", "--runner", "ray", "--out", "o")
    wait_for([marks / "heartbeat"], p)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["status"] == "cancelled"
    assert {s["id"]: s["status"] for s in run["steps"]} == {"s": "cancelled", "after": "cancelled"}
    assert_stopped(marks)  # the worker's task ended: it no longer beats, and never finished

    rows = [tmp_path / f"row{i}" for i in range(2)]
    for f in rows:
        f.mkdir()
    table = write(tmp_path / "rows.jsonl", "".join(json.dumps({"folder": str(f)}) + "\n" for f in rows))
    p = start_cli(tmp_path, "workflow", "run", wf, "--batch", table, "--runner", "ray", "--out", "b")
    wait_for([f / "heartbeat" for f in rows], p)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err[-2000:]
    summary = json.loads((tmp_path / "b" / "batch.json").read_text())
    assert summary["counts"] == {"cancelled": 2}
    for f in rows:
        if (f / "heartbeat").exists():
            assert_stopped(f)


def _can_hide_folders() -> bool:
    """A mount namespace of our own (root, or unprivileged user namespaces) lets a process see a
    folder as empty, as a node whose disk does not hold the workspace would."""
    if not shutil.which("unshare") or not shutil.which("ray"):
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow  # two Ray nodes and three CLI processes: about 40 s alone, over 100 s on a busy machine
@pytest.mark.skipif(not _can_hide_folders(), reason="needs unshare --mount (root or user namespaces)")
def test_a_cluster_by_address_runs_and_a_node_that_cannot_see_the_workspace_is_refused(tmp_path):
    """A real Ray cluster on this machine, joined by address. With the head alone, a run through
    Ray Client (ray://HOST:PORT) succeeds. Then a second node joins from a mount namespace where the
    shared folder is an empty tmpfs, as on a machine that does not mount it: the CLI (ray:auto)
    must refuse the run in one line before anything runs."""
    from tests.media_factory import tone

    shared = tmp_path / "shared"
    shared.mkdir()
    write(shared / "wf.yaml", "steps:\n  - {id: f, tool: fade_audio, args: {audio: s.wav, fade_in: 0.1}}\n")
    tone(shared / "s.wav", seconds=0.3)
    port, client_port = _free_port(), _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    ray = shutil.which("ray")
    # --block: each `ray start` stays up and takes its node down when stopped, so the test stops
    # only the nodes it started (not another Ray on this machine, as `ray stop` would)
    nodes = [subprocess.Popen([ray, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                               f"--ray-client-server-port={client_port}", "--disable-usage-stats", "--block"], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        _wait_for_nodes(1, port, env)
        r = subprocess.run([sys.executable, "-m", "cadenza.cli", "workflow", "run", "wf.yaml", "--runner",
                            f"ray://127.0.0.1:{client_port}", "--out", "ok", "--json"], cwd=shared,
                           capture_output=True, text=True, env=_without_pythonpath(env), timeout=180)
        assert r.returncode == 0, r.stderr[-3000:]
        faded = json.loads(r.stdout)["outputs"]["f"]
        assert Path(faded["path"]).parent == shared / "ok" and faded["duration"] > 0.25
        assert json.loads((shared / "ok" / "run.json").read_text())["status"] == "succeeded"

        nodes.append(subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             f'mount -t tmpfs none "{shared}" && exec "{ray}" start --address=127.0.0.1:{port} --num-cpus=1 '
             f'--disable-usage-stats --block'], env=env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_for_nodes(2, port, env)
        r = subprocess.run([sys.executable, "-m", "cadenza.cli", "workflow", "run", "wf.yaml", "--runner", "ray:auto",
                            "--out", "o"], cwd=shared,
                           capture_output=True, text=True, env={**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}, timeout=180)
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert r.returncode == 2 and len(errors) == 1, (r.returncode, r.stderr[-3000:])
        assert "is not visible from Ray node" in errors[0] and "storage every node mounts" in errors[0]
        assert not (shared / "o").exists()  # nothing ran, and the folder it made is gone again
    finally:
        for node in reversed(nodes):
            _stop(node)
        # `ray start` notes its cluster for later `ray.init("auto")` calls; `ray stop` would remove the
        # note, stopping the nodes by signal does not
        note = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        if note.exists() and note.read_text().strip().endswith(f":{port}"):
            note.unlink()


def _stop(node: subprocess.Popen) -> None:
    try:
        os.killpg(node.pid, signal.SIGTERM)
        node.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(node.pid, signal.SIGKILL)
        node.wait(timeout=10)
    except ProcessLookupError:
        pass


def _without_pythonpath(env: dict) -> dict:
    """The client's environment without PYTHONPATH (the nodes have it already): with it, Ray Client
    would ask the head for a runtime_env, whose agent can still be starting on a fresh cluster
    ("Initialization failure from server")."""
    return {k: v for k, v in env.items() if k != "PYTHONPATH"}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_nodes(n: int, port: int, env: dict) -> None:
    check = f"import ray; ray.init(address='127.0.0.1:{port}'); print(len([x for x in ray.nodes() if x['Alive']]))"
    deadline = time.monotonic() + 60
    while True:
        r = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env, timeout=120)
        if r.stdout.strip() == str(n):
            return
        assert time.monotonic() < deadline, r.stderr[-2000:]
        time.sleep(1)
