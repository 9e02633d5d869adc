"""A run's results stay true under stress: cancellation and timeouts discard the stopped step's
result (never in the output folder or the cache) and the process exits at once; tools that
cannot check for cancellation run in a killable worker process; the cache keeps independent,
checked copies; a full disk fails the step clearly and leaves a whole run.json; one run at a
time per output folder; run.json holds a step's final state before its event is reported."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cadenza import Audio, InputError, Registry, ToolContext, Workspace, tool
from cadenza.engine.cache import StepCache
from cadenza.engine.executor import Executor
from cadenza.engine.outdir import RecordWriter
from cadenza.engine.plan import Plan, Step
from cadenza.errors import CancelledError
from tests.isolated_tools import isolated_bad_input, isolated_wav, stuck_in_native_code
from tests.media_factory import tone

ROOT = Path(__file__).resolve().parents[1]


# -- tools ------------------------------------------------------------------------------
@tool
def make_wav(seconds: float, ctx: ToolContext, freq: float = 330.0) -> Audio:
    path = ctx.output_path(".wav")
    tone(path, freq=freq, seconds=seconds)
    return Audio.from_path(path)


@tool(cacheable=False)
def noop(x: int = 0) -> int:
    return x


@tool(cacheable=False)
def fails(x: int = 0) -> int:
    raise RuntimeError("fails on purpose")


@tool(cacheable=False)
def disk_full(ctx: ToolContext) -> Audio:
    path = ctx.output_path(".wav")
    path.write_bytes(b"RIFF partial")
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


REG = Registry([make_wav, noop, fails, stuck_in_native_code, isolated_wav, isolated_bad_input, disk_full])


def plan(*steps: dict) -> Plan:
    return Plan(steps=[Step(**s) for s in steps])


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in ("run.json", "run.lock"))


# -- the CLI under Ctrl-C and timeouts ---------------------------------------------------
CLI_SCRIPT = """\
import sys, time
sys.path.insert(0, {root!r})
from cadenza import Audio, ToolContext, tool
from cadenza.tools import registry
from tests.media_factory import tone

@tool(cacheable=True)
def stubborn(seconds: float, after: Audio, ctx: ToolContext) -> Audio:
    print("started", flush=True)
    time.sleep(seconds)          # never checks ctx.cancelled, like a long call into C
    path = ctx.output_path(".wav")
    tone(path, seconds=0.2)
    print("wrote", path, flush=True)
    return Audio.from_path(path)

@tool(cacheable=True)
def quick(freq: float, ctx: ToolContext) -> Audio:
    path = ctx.output_path(".wav")
    tone(path, freq=freq, seconds=0.2)
    return Audio.from_path(path)

reg = registry.default_registry()
reg.register(stubborn)
reg.register(quick)
from cadenza import cli
sys.exit(cli.main(sys.argv[1:]))
"""

WORKFLOW = """\
steps:
  - id: fast
    tool: quick
    args: {freq: 440}
  - id: slow
    tool: stubborn
    args: {seconds: SECONDS, after: $fast}
"""


def start_cli(tmp_path: Path, seconds: float, *extra: str) -> subprocess.Popen:
    (tmp_path / "drive.py").write_text(CLI_SCRIPT.format(root=str(ROOT)))
    (tmp_path / "wf.yaml").write_text(WORKFLOW.replace("SECONDS", str(seconds)))
    env = {**os.environ, "CADENZA_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.Popen([sys.executable, str(tmp_path / "drive.py"), "workflow", "run", str(tmp_path / "wf.yaml"),
                             "--out", str(tmp_path / "out"), *extra], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_nothing_of(step: str, tmp_path: Path) -> None:
    """No output file of `step` in the output folder or its scratch, and no cache entry of it."""
    out = tmp_path / "out"
    assert not [p for p in files_in(out) if p.name.startswith(f"{step}-")], files_in(out)
    stored = [json.loads(p.read_text()) for p in (tmp_path / "cache").rglob("outputs.json")]
    assert all(not rec["outputs"]["result"]["__media__"]["path"].startswith(f"{step}-") for rec in stored), stored


def test_ctrl_c_discards_the_running_step_and_exits_at_once(tmp_path):
    p = start_cli(tmp_path, seconds=4)
    assert p.stdout.readline().strip() == "started"
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    time.sleep(0.1)
    p.send_signal(signal.SIGINT)  # impatient: a second Ctrl-C
    out, err = p.communicate(timeout=30)
    took = time.monotonic() - t0
    assert p.returncode == 130, err
    assert took < 2.0, f"exited {took:.1f}s after Ctrl-C"
    assert "Traceback" not in err and "wrote" not in out
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "cancelled"
    assert {s["id"]: s["status"] for s in run["steps"]} == {"fast": "succeeded", "slow": "cancelled"}
    fast = next(s for s in run["steps"] if s["id"] == "fast")
    assert Path(fast["outputs"]["result"]["path"]).exists()  # run.json is true to the files on disk
    time.sleep(4.5)  # had the step lived on, it would have written by now
    assert_nothing_of("slow", tmp_path)


def test_a_timed_out_step_is_discarded_and_the_process_does_not_wait_for_it(tmp_path):
    p = start_cli(tmp_path, 5, "--timeout", "1")
    assert p.stdout.readline().strip() == "started"
    t0 = time.monotonic()
    out, err = p.communicate(timeout=30)
    took = time.monotonic() - t0
    assert p.returncode == 1, err
    assert "timed out after 1s" in err and "Traceback" not in err and "wrote" not in out
    assert took < 3.0, f"the process ran {took:.1f}s after the step started, for a 1 s timeout (the step wanted 5 s)"
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    steps = {s["id"]: s for s in run["steps"]}
    assert steps["slow"]["status"] == "failed" and steps["fast"]["status"] == "succeeded"
    time.sleep(5)
    assert_nothing_of("slow", tmp_path)


def test_in_process_a_timed_out_thread_never_writes_its_result(tmp_path):
    @tool
    def slow_writer(seconds: float, ctx: ToolContext) -> Audio:
        time.sleep(seconds)
        path = ctx.output_path(".wav")
        tone(path, seconds=0.2)
        return Audio.from_path(path)

    cache = StepCache(tmp_path / "cache")
    ex = Executor(Registry([slow_writer]), cache=cache)
    t0 = time.monotonic()
    r = ex.run(plan({"id": "w", "tool": "slow_writer", "args": {"seconds": 1.5}, "timeout": 0.3}), {},
               Workspace(tmp_path / "out"))
    assert time.monotonic() - t0 < 1.0 and r.steps["w"].status == "failed"
    time.sleep(2.0)  # the thread has finished by now and found its step stopped
    assert files_in(tmp_path / "out") == [] and not list((tmp_path / "cache").rglob("outputs.json"))


# -- a tool that cannot check runs in a worker process that is killed ---------------------
def test_a_process_isolated_step_is_killed_on_timeout(tmp_path):
    marker = tmp_path / "pid"
    t0 = time.monotonic()
    r = Executor(REG, cache=False).run(
        plan({"id": "s", "tool": "stuck_in_native_code", "args": {"seconds": 60, "marker": str(marker)}, "timeout": 8}),
        {}, Workspace(tmp_path / "out"))
    assert r.steps["s"].status == "failed" and "timed out after 8s" in r.steps["s"].error
    pid = int(marker.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the worker process still runs")
    assert time.monotonic() - t0 < 12  # 8 s of timeout, then the kill: not the 60 s it wanted
    assert files_in(tmp_path / "out") == []  # its scratch file went with it


def test_a_process_isolated_step_returns_outputs_notes_and_errors(tmp_path):
    ex = Executor(REG, cache=False)
    r = ex.run(plan({"id": "w", "tool": "isolated_wav", "args": {"freq": 500}},
                    {"id": "b", "tool": "isolated_bad_input", "args": {"x": 3}}), {}, Workspace(tmp_path / "out"))
    wav = r.steps["w"]
    assert wav.status == "succeeded" and Path(wav.outputs["result"]["path"]).parent == (tmp_path / "out").resolve()
    assert wav.notes and wav.notes[0] != f"made in process {os.getpid()}"
    bad = r.steps["b"]
    assert bad.status == "failed" and bad.error_kind == "input" and bad.error == "isolated_bad_input: 3 is not a good number"
    assert r.exit_code == 2


# -- the cache ---------------------------------------------------------------------------
def cached_run(tmp_path: Path, out: str = "out", notes: bool = False):
    ex = Executor(REG, cache=StepCache(tmp_path / "cache"))
    return ex.run(plan({"id": "w", "tool": "make_wav", "args": {"seconds": 0.5}}), {}, Workspace(tmp_path / out))


def test_outputs_are_independent_copies_of_the_cache_entry(tmp_path):
    first = Path(cached_run(tmp_path).steps["w"].outputs["result"]["path"])
    (entry_file,) = [p for p in (tmp_path / "cache").rglob("w-*.wav")]
    assert os.stat(first).st_ino != os.stat(entry_file).st_ino
    original = entry_file.read_bytes()
    with open(first, "r+b") as f:  # an editor saving over the output in place
        f.seek(100)
        f.write(b"\x7f" * 64)
    assert entry_file.read_bytes() == original
    again = cached_run(tmp_path, out="out2")
    assert again.steps["w"].status == "cached"
    assert Path(again.steps["w"].outputs["result"]["path"]).read_bytes() == original


def test_a_damaged_cache_entry_is_a_miss_and_is_removed_with_a_note(tmp_path):
    cached_run(tmp_path)
    (entry_file,) = [p for p in (tmp_path / "cache").rglob("w-*.wav")]
    entry = entry_file.parent
    with open(entry_file, "r+b") as f:
        f.truncate(200)
    r = cached_run(tmp_path, out="out2")
    step = r.steps["w"]
    assert step.status == "succeeded"  # made again, not restored truncated
    assert any("cache entry" in n and "was removed" in n for n in step.notes), step.notes
    assert Path(step.outputs["result"]["path"]).stat().st_size > 200
    assert (entry / "outputs.json").exists()  # the fresh result was stored again, whole
    record = json.loads((entry / "outputs.json").read_text())
    assert record["files"][entry_file.name][0] == entry_file.stat().st_size


@pytest.mark.parametrize("bad_name", ["../../../../etc/hostname", "/etc/hostname", "..", "outputs.json"])
def test_a_cache_record_cannot_bring_in_a_file_from_outside_its_entry(tmp_path, bad_name):
    cached_run(tmp_path)
    (record_path,) = (tmp_path / "cache").rglob("outputs.json")
    record = json.loads(record_path.read_text())
    good = record["outputs"]["result"]["__media__"]["path"]
    record["outputs"]["result"]["__media__"]["path"] = bad_name
    record["files"][bad_name] = record["files"].pop(good)
    record_path.write_text(json.dumps(record))
    r = cached_run(tmp_path, out="out2")
    assert r.steps["w"].status == "succeeded"  # a miss: made again
    assert any("outside the entry" in n or "not a plain file" in n for n in r.steps["w"].notes), r.steps["w"].notes
    assert all(p.name.startswith("w-") for p in files_in(tmp_path / "out2"))


# -- a full disk --------------------------------------------------------------------------
def test_a_write_error_fails_the_step_clearly_and_cleans_its_scratch(tmp_path):
    r = Executor(REG, cache=False).run(plan({"id": "full", "tool": "disk_full"},
                                            {"id": "fine", "tool": "make_wav", "args": {"seconds": 0.2}}),
                                       {}, Workspace(tmp_path / "out"))
    assert r.steps["fine"].status == "succeeded"
    err = r.steps["full"].error
    assert r.steps["full"].status == "failed" and err.startswith("disk full: could not write ") and "scratch" in err
    assert not list((tmp_path / "out" / ".cadenza" / "scratch").glob("full-*"))
    doc = json.loads(r.run_json.read_text())
    assert {s["id"]: s["status"] for s in doc["steps"]} == {"full": "failed", "fine": "succeeded"}


def test_run_json_keeps_its_last_good_copy_when_it_cannot_be_written(tmp_path, monkeypatch):
    from cadenza.engine import outdir

    path = tmp_path / "run.json"
    writer = RecordWriter(path)
    assert writer.write({"status": "running", "n": 1})
    calls = []

    def full(p, text):
        calls.append(p)
        raise OSError(errno.ENOSPC, "No space left on device", str(p))

    monkeypatch.setattr(outdir, "atomic_write_text", full)
    assert not writer.write({"status": "succeeded", "n": 2})
    assert len(calls) == 2 and not writer.reserve.exists()  # the reserve was given up, then one more try
    assert json.loads(path.read_text()) == {"status": "running", "n": 1}
    assert writer.problem == f"could not update {path}: disk full"
    assert not list(tmp_path.glob(".run.json.*.tmp"))


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (needs root and mount): a real full disk."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_real_full_disk(small_disk, tmp_path):
    (small_disk / "filler").write_bytes(b"\0" * 300_000)
    r = Executor(REG, cache=StepCache(tmp_path / "cache")).run(
        plan({"id": "big", "tool": "make_wav", "args": {"seconds": 30}},  # ~1.3 MB: cannot fit
             {"id": "small", "tool": "make_wav", "args": {"seconds": 0.2, "freq": 500}}),
        {}, Workspace(small_disk / "out"))
    assert r.steps["small"].status == "succeeded"
    assert r.steps["big"].status == "failed" and "disk full" in r.steps["big"].error and "big-" in r.steps["big"].error
    doc = json.loads(r.run_json.read_text())  # whole, and true
    assert doc["status"] == "failed" and {s["id"]: s["status"] for s in doc["steps"]} == {"big": "failed", "small": "succeeded"}
    assert not list((small_disk / "out" / ".cadenza" / "scratch").glob("*"))
    assert not list((small_disk / "out").glob(".*.tmp"))


# -- one run per output folder ---------------------------------------------------------------
def test_a_second_run_into_the_same_folder_is_refused(tmp_path):
    @tool(cacheable=False)
    def hold(ctx: ToolContext) -> int:
        started.set()
        release.wait(10)
        return 1

    started, release = threading.Event(), threading.Event()
    ex = Executor(Registry([hold, noop]), cache=False)
    first = threading.Thread(target=ex.run, args=(plan({"id": "h", "tool": "hold"}), {}, Workspace(tmp_path / "out")))
    first.start()
    try:
        assert started.wait(10)
        with pytest.raises(InputError, match=r"output folder .*out is in use by another run \(pid \d+\)"):
            Executor(Registry([noop]), cache=False).run(plan({"id": "n", "tool": "noop"}), {}, Workspace(tmp_path / "out"))
    finally:
        release.set()
        first.join()
    doc = json.loads((tmp_path / "out" / "run.json").read_text())
    assert [s["id"] for s in doc["steps"]] == ["h"]  # the first run's record is its own
    r = Executor(Registry([noop]), cache=False).run(plan({"id": "n", "tool": "noop"}), {}, Workspace(tmp_path / "out"))
    assert r.ok  # free again


@pytest.mark.parametrize("case", ["file", "under_a_file"])
def test_an_output_folder_that_cannot_be_one_is_bad_input(tmp_path, case):
    (tmp_path / "a.wav").write_bytes(b"")
    tone(tmp_path / "in.wav", seconds=0.3)
    (tmp_path / "taken").write_text("a file")
    out = "taken" if case == "file" else "taken/out"
    r = subprocess.run([sys.executable, "-m", "cadenza.cli", "tools", "run", "fade_audio", "--arg", "audio=in.wav",
                        "--out", out], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "CADENZA_CACHE_DIR": str(tmp_path / "c")})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert "output folder" in line and ("is a file" in line if case == "file" else "which is a file" in line)


def test_a_read_only_output_folder_is_bad_input(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        tone(tmp_path / "in.wav", seconds=0.3)
        r = subprocess.run([sys.executable, "-m", "cadenza.cli", "tools", "run", "fade_audio", "--arg", "audio=in.wav",
                            "--out", "ro"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "CADENZA_CACHE_DIR": str(tmp_path / "c")})
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "error: output folder" in r.stderr and "Read-only file system" in r.stderr


# -- run.json and events ------------------------------------------------------------------
def test_run_json_holds_each_final_state_before_its_event(tmp_path):
    seen = []

    def on_event(e):
        if e.kind in ("step_finished", "step_failed", "step_skipped"):
            doc = json.loads((tmp_path / "out" / "run.json").read_text())
            seen.append((e.step_id, {s["id"]: s["status"] for s in doc["steps"]}[e.step_id], e.kind))

    Executor(REG, cache=False, on_event=on_event).run(
        plan({"id": "a", "tool": "noop"}, {"id": "b", "tool": "fails"}, {"id": "c", "tool": "noop", "args": {"x": "$b"}}),
        {}, Workspace(tmp_path / "out"))
    assert sorted(seen) == [("a", "succeeded", "step_finished"), ("b", "failed", "step_failed"),
                            ("c", "skipped", "step_skipped")]


def test_a_long_chain_runs_and_fails_without_recursion(tmp_path):
    steps = [{"id": "s0", "tool": "fails"}] + [{"id": f"s{i}", "tool": "noop", "args": {"x": f"$s{i - 1}"}}
                                                for i in range(1, 2500)]
    r = Executor(REG, cache=False).run(plan(*steps), {}, Workspace(tmp_path / "out"))
    assert r.steps["s0"].status == "failed" and r.steps["s2499"].status == "skipped"
    steps[0] = {"id": "s0", "tool": "noop", "args": {"x": 7}}
    r = Executor(REG, cache=False).run(plan(*steps), {}, Workspace(tmp_path / "out2"))
    assert r.ok and r.outputs == {"s2499": 7}


def test_cancelled_run_in_process_raises_and_records(tmp_path):
    """Ctrl-C in the thread that runs the executor (the in-process form of the CLI test above)."""
    @tool(cacheable=False)
    def interrupt(ctx: ToolContext) -> int:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
        return 1

    with pytest.raises(CancelledError):
        Executor(Registry([interrupt]), cache=False).run(plan({"id": "i", "tool": "interrupt"}), {},
                                                         Workspace(tmp_path / "out"))
    doc = json.loads((tmp_path / "out" / "run.json").read_text())
    assert doc["status"] == "cancelled" and doc["steps"][0]["status"] == "cancelled"
