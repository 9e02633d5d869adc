"""The Ray runner on a real local Ray (2 CPUs, no dashboard), against the thread runner: the same
outputs and run.json for a DAG with branches, failures that skip only dependents, Cadenza errors
coming back as themselves, timeouts and cancellation that stop the Ray task, retries, the cache,
a batch with a bad row, and the workspace check."""

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from cadenza import Audio, Backend, Registry, ToolContext, TransientError, Workspace, tool
from cadenza.engine.batch import read_table, run_batch
from cadenza.engine.cache import StepCache
from cadenza.engine.executor import Executor
from cadenza.engine.plan import Plan
from cadenza.engine.runners import ThreadRunner
from cadenza.errors import CancelledError, InputError, MediaError, ToolError


@tool(cacheable=False)
def rendezvous(label: str, folder: str) -> str:
    """Writes its mark (with its pid), then waits for the other branch's: both must run at once."""
    Path(folder, label).write_text(str(os.getpid()))
    other = Path(folder, "b" if label == "a" else "a")
    end = time.monotonic() + 20
    while not other.exists():
        if time.monotonic() > end:
            raise ToolError(f"branch {label} ran alone")
        time.sleep(0.02)
    return label


@tool(cacheable=False)
def join_text(parts: list[str]) -> str:
    return "+".join(parts)


@tool
def make_tone(text: str, count_in: str, ctx: ToolContext) -> Audio:
    """A WAV whose pitch depends on the text; each real call (not a cache hit) appends to count_in."""
    from tests.media_factory import tone

    with open(count_in, "a") as f:
        f.write("x")
    path = ctx.output_path(".wav")
    tone(path, freq=200 + 10 * len(text), seconds=0.2)
    return Audio.from_path(path)


@tool(cacheable=False)
def boom(label: str) -> str:
    raise RuntimeError(f"boom in {label}")


@tool(cacheable=False)
def bad_media(label: str) -> str:
    raise MediaError(f"{label}: not a sound file")


@tool(cacheable=False)
def stubborn(seconds: float, folder: str) -> str:
    """Never checks for a cancel: only stopping its Ray task ends it early. Beats a heartbeat file."""
    beat = Path(folder, "heartbeat")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        beat.write_text(str(time.time()))
        time.sleep(0.05)
    Path(folder, "finished").write_text("yes")
    return "done"


@tool(cacheable=False)
def flaky_file(folder: str, fail_times: int = 2) -> str:
    log = Path(folder, "attempts")
    with open(log, "a") as f:
        f.write("x")
    if len(log.read_text()) <= fail_times:
        raise TransientError("device busy")
    return "ok"


@tool(cacheable=False)
def size_of(sound: Audio, label: str) -> str:
    return f"{label}:{Path(sound.path).stat().st_size > 0}"


@tool(cacheable=False, backends=[Backend("fake-gpu", device="gpu", gpu_memory_gb=4)])
def gpu_step(label: str) -> str:
    return label


REG = Registry([rendezvous, join_text, make_tone, boom, bad_media, stubborn, flaky_file, size_of, gpu_step])


@pytest.fixture(scope="module")
def ray_runner():
    import ray

    from cadenza.engine.ray_runner import RayRunner

    started = not ray.is_initialized()
    if started:  # the workers import this test module (its tools) from the same paths as this process
        path = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path}})
    runner = RayRunner()
    yield runner
    runner.shutdown(wait=False)
    if started:
        ray.shutdown()


def plan_of(doc: dict) -> Plan:
    return Plan.model_validate(doc)


DAG = {
    "inputs": {"folder": {"type": "text"}, "count_in": {"type": "text"}},
    "steps": [
        {"id": "a", "tool": "rendezvous", "args": {"label": "a", "folder": "$folder"}},
        {"id": "b", "tool": "rendezvous", "args": {"label": "b", "folder": "$folder"}},
        {"id": "wa", "tool": "make_tone", "args": {"text": "$a", "count_in": "$count_in"}},
        {"id": "j", "tool": "join_text", "args": {"parts": ["$a", "$b"]}},
    ],
    "outputs": {"joined": "$j", "sound": "$wa"},
}


def run_dag(runner, tmp_path: Path, name: str, cache=False):
    folder = tmp_path / f"{name}-marks"
    folder.mkdir()
    ex = Executor(REG, runner=runner, cache=cache)
    result = ex.run(plan_of(DAG), {"folder": str(folder), "count_in": str(tmp_path / f"{name}-count")},
                    Workspace(tmp_path / name))
    ex.close()
    return result, folder


def comparable(run_json: Path) -> dict:
    """run.json less what differs between any two runs (times, folders, pids)."""
    doc = json.loads(run_json.read_text())
    steps = [(s["id"], s["tool"], s["status"], s["attempts"], s["error"]) for s in doc["steps"]]
    return {"status": doc["status"], "steps": steps, "joined": doc["outputs"]["joined"],
            "sound": Path(doc["outputs"]["sound"]["path"]).name, "plan": doc["plan"]}


def test_dag_with_branches_on_ray_matches_threads(ray_runner, tmp_path):
    threads, t_marks = run_dag(ThreadRunner, tmp_path, "threads")
    ray_result, r_marks = run_dag(ray_runner, tmp_path, "ray")
    assert threads.ok and ray_result.ok, (threads.errors(), ray_result.errors())
    assert ray_result.outputs["joined"] == threads.outputs["joined"] == "a+b"
    assert comparable(ray_result.run_json) == comparable(threads.run_json)
    # same content-named file, written by a worker and committed into the output folder by the driver
    assert ray_result.outputs["sound"].path.read_bytes() == threads.outputs["sound"].path.read_bytes()
    assert ray_result.outputs["sound"].path.parent == (tmp_path / "ray").resolve()
    assert not list((tmp_path / "ray" / ".cadenza" / "scratch").glob("*"))
    # the branches met each other (so ran at once), in Ray worker processes, not in this one
    pids = {int((r_marks / x).read_text()) for x in "ab"}
    assert os.getpid() not in pids
    assert {int((t_marks / x).read_text()) for x in "ab"} == {os.getpid()}


def test_a_failing_step_skips_only_its_dependents_and_errors_come_back_as_themselves(ray_runner, tmp_path):
    plan = plan_of({"inputs": {"count_in": {"type": "text"}}, "steps": [
        {"id": "x", "tool": "boom", "args": {"label": "x"}},
        {"id": "after_x", "tool": "join_text", "args": {"parts": ["$x"]}},
        {"id": "m", "tool": "bad_media", "args": {"label": "m"}},
        {"id": "free", "tool": "make_tone", "args": {"text": "free", "count_in": "$count_in"}}]})
    records = {}
    for name, runner in (("threads", ThreadRunner), ("ray", ray_runner)):
        ex = Executor(REG, runner=runner, cache=False)
        result = ex.run(plan, {"count_in": str(tmp_path / "n")}, Workspace(tmp_path / name))
        records[name] = {r.id: (r.status, r.error, r.error_kind) for r in result.steps.values()}
        assert result.status == "failed" and result.exit_code == 1
    assert records["ray"] == records["threads"]
    assert records["ray"]["x"] == ("failed", "RuntimeError: boom in x", "runtime")
    assert records["ray"]["after_x"][0] == "skipped"
    assert records["ray"]["m"] == ("failed", "m: not a sound file", "input")  # a MediaError, unpickled
    assert records["ray"]["free"][0] == "succeeded"


def test_a_timeout_stops_the_ray_task(ray_runner, tmp_path):
    plan = plan_of({"inputs": {"folder": {"type": "text"}}, "steps": [
        {"id": "s", "tool": "stubborn", "args": {"seconds": 30, "folder": "$folder"}, "timeout": 1.5}]})
    t0 = time.monotonic()
    result = Executor(REG, runner=ray_runner, cache=False).run(plan, {"folder": str(tmp_path)},
                                                               Workspace(tmp_path / "out"))
    assert time.monotonic() - t0 < 10
    assert result.steps["s"].status == "failed" and "timed out after 1.5s" in result.steps["s"].error
    assert_stopped(tmp_path)


def assert_stopped(folder: Path) -> None:
    """The heartbeat stops within the cancel grace (the task was interrupted or its worker killed)."""
    deadline = time.monotonic() + 8
    while True:
        before = (folder / "heartbeat").read_text()
        time.sleep(0.5)
        if (folder / "heartbeat").read_text() == before:
            break
        assert time.monotonic() < deadline, "the Ray task kept running"
    assert not (folder / "finished").exists()


def test_cancelling_a_run_cancels_its_ray_tasks(ray_runner, tmp_path):
    plan = plan_of({"inputs": {"folder": {"type": "text"}}, "steps": [
        {"id": "s", "tool": "stubborn", "args": {"seconds": 30, "folder": "$folder"}}]})
    cancel = threading.Event()
    outcome = {}

    def go():
        try:
            Executor(REG, runner=ray_runner, cache=False).run(plan, {"folder": str(tmp_path)},
                                                              Workspace(tmp_path / "out"), cancel=cancel)
        except CancelledError as e:
            outcome["error"] = e

    t = threading.Thread(target=go)
    t.start()
    deadline = time.monotonic() + 20
    while not (tmp_path / "heartbeat").exists():
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    cancel.set()  # what Ctrl-C does to a run
    t.join(10)
    assert isinstance(outcome.get("error"), CancelledError)
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "cancelled"
    assert_stopped(tmp_path)


def test_transient_errors_are_retried_and_the_cache_serves_a_second_run(ray_runner, tmp_path):
    plan = plan_of({"inputs": {"folder": {"type": "text"}}, "steps": [
        {"id": "f", "tool": "flaky_file", "args": {"folder": "$folder"}}]})
    ex = Executor(REG, runner=ray_runner, cache=False, retry_backoff=0.01)
    result = ex.run(plan, {"folder": str(tmp_path)}, Workspace(tmp_path / "out"))
    assert result.ok and result.steps["f"].attempts == 3
    cache = StepCache(tmp_path / "cache")
    plan = plan_of({"inputs": {"count_in": {"type": "text"}}, "steps": [
        {"id": "t", "tool": "make_tone", "args": {"text": "hi", "count_in": "$count_in"}}]})
    ex = Executor(REG, runner=ray_runner, cache=cache)
    first = ex.run(plan, {"count_in": str(tmp_path / "calls")}, Workspace(tmp_path / "c1"))
    second = ex.run(plan, {"count_in": str(tmp_path / "calls")}, Workspace(tmp_path / "c2"))
    assert first.steps["t"].status == "succeeded" and second.steps["t"].status == "cached"
    assert (tmp_path / "calls").read_text() == "x"  # the tool ran once, on a worker


def test_a_batch_of_four_rows_with_one_bad_row(ray_runner, tmp_path):
    from tests.media_factory import tone

    for i in (1, 2, 4):
        tone(tmp_path / f"s{i}.wav", seconds=0.2)
    table = tmp_path / "rows.csv"
    table.write_text("sound,label\n" + "".join(f"s{i}.wav,r{i}\n" for i in (1, 2, 3, 4)))  # s3.wav is missing
    plan = plan_of({"inputs": {"sound": {"type": "audio"}, "label": {"type": "text"}}, "steps": [
        {"id": "n", "tool": "size_of", "args": {"sound": "$sound", "label": "$label"}}]})
    rows = read_table(table, plan)
    ex = Executor(REG, runner=ray_runner, cache=StepCache(tmp_path / "cache"))
    results = run_batch(ex, plan, rows, tmp_path / "out")
    assert [r.status for r in results] == ["succeeded", "succeeded", "failed", "succeeded"]
    assert results[0].outputs == {"n": "r1:True"} and results[3].outputs == {"n": "r4:True"}
    assert "s3.wav" in results[2].error
    summary = json.loads((tmp_path / "out" / "batch.json").read_text())
    assert summary["counts"] == {"succeeded": 3, "failed": 1}
    assert (tmp_path / "out" / "batch.csv").read_text().splitlines()[0] == "row,status,outputs,seconds,error,out_dir"
    again = run_batch(ex, plan, rows, tmp_path / "out")  # done rows are not run again; the bad one still fails
    assert [r.status for r in again] == ["done", "done", "failed", "done"]


def test_gpu_steps_ask_ray_for_a_share_of_a_gpu(ray_runner):
    backend = gpu_step.backends[0]
    assert ray_runner.resources(backend) == {"num_cpus": 1}  # this cluster has no GPU: a CPU worker
    assert ray_runner.resources(rendezvous.backends[0]) == {"num_cpus": 1}
    gpu = object.__new__(type(ray_runner))
    gpu.__dict__.update(ray_runner.__dict__, cluster_gpus=8.0, gpu_memory_gb=16.0)
    assert gpu.resources(backend) == {"num_cpus": 1, "num_gpus": 0.25}
    gpu.gpu_memory_gb = 0.0  # memory of the GPUs unknown: a whole one
    assert gpu.resources(backend) == {"num_cpus": 1, "num_gpus": 1.0}


def test_a_workspace_the_workers_cannot_see_is_refused_before_anything_runs(ray_runner, tmp_path, monkeypatch):
    from cadenza.engine import ray_runner as rr

    ray_runner.check_workspace(Workspace(tmp_path / "seen"))  # a real probe, read back by a real task
    # The driver writes the probe where no worker looks (another machine's disk): the real probe
    # task on the real node then finds nothing.
    monkeypatch.setattr(rr, "_write_probe", lambda path, token: None)
    plan = plan_of({"steps": [{"id": "j", "tool": "join_text", "args": {"parts": ["x"]}}]})
    with pytest.raises(InputError, match=r"not visible from Ray node .*storage every node mounts"):
        Executor(REG, runner=ray_runner, cache=False).run(plan, {}, Workspace(tmp_path / "unseen"))
    assert not (tmp_path / "unseen" / "run.json").exists()


def test_an_unreachable_cluster_is_one_input_error():
    from cadenza.engine.runners import make_runner

    t0 = time.monotonic()
    with pytest.raises(InputError, match=r"Ray cluster ray://127\.0\.0\.1:1 is not reachable"):
        make_runner("ray://127.0.0.1:1")
    assert time.monotonic() - t0 < 6
    with pytest.raises(InputError, match="unknown runner 'rya'"):
        make_runner("rya")


def test_the_runner_comes_from_the_flag_then_the_environment_then_the_config_file(tmp_path, monkeypatch):
    from cadenza.engine.ray_runner import RayRunner
    from cadenza.engine.runners import SequentialRunner, make_runner, runner_spec

    config = tmp_path / "config.toml"
    config.write_text('runner = "ray:auto"\n')
    monkeypatch.setenv("CADENZA_CONFIG", str(config))
    monkeypatch.delenv("CADENZA_RUNNER", raising=False)
    assert runner_spec(None) == "ray:auto"
    monkeypatch.setenv("CADENZA_RUNNER", "sequential")
    assert runner_spec(None) == "sequential" and isinstance(make_runner(None), SequentialRunner)
    assert runner_spec("threads") == "threads"
    config.write_text("runner = 3\n")
    monkeypatch.delenv("CADENZA_RUNNER")
    with pytest.raises(InputError, match="runner must be text"):
        runner_spec(None)
    assert RayRunner.places_devices  # with Ray the cluster, not the executor, keeps GPU steps apart


def test_executor_takes_a_runner_by_name(ray_runner):
    from cadenza.engine.ray_runner import RayRunner

    ex = Executor(REG, runner="ray")  # joins the Ray this process already runs
    assert isinstance(ex.runner(), RayRunner)
    ex.close()


@tool(cacheable=False)
def whose_pid(label: str) -> str:
    return f"{label}:{os.getpid()}"


def test_a_workflow_tool_stays_in_the_driver_and_sends_its_steps_to_ray(ray_runner, tmp_path):
    from cadenza.engine.workflow_tool import WorkflowTool

    (tmp_path / "inner.yaml").write_text(
        "name: inner\ndescription: where its step ran\ninputs: {label: {type: text}}\n"
        "steps:\n  - {id: p, tool: whose_pid, args: {label: $label}}\noutputs: {where: $p}\n")
    reg = Registry([whose_pid])
    reg.register(WorkflowTool(tmp_path / "inner.yaml", registry=reg))
    plan = plan_of({"steps": [{"id": "w", "tool": "inner", "args": {"label": "x"}}]})
    result = Executor(reg, runner=ray_runner, cache=False).run(plan, {}, Workspace(tmp_path / "out"))
    assert result.ok, result.errors()
    label, pid = result.outputs["w"].split(":")
    assert label == "x" and int(pid) != os.getpid()  # the inner step was a Ray task


def test_cancelling_a_batch_cancels_every_open_row_and_still_writes_the_summary(ray_runner, tmp_path):
    plan = plan_of({"inputs": {"folder": {"type": "text"}}, "steps": [
        {"id": "s", "tool": "stubborn", "args": {"seconds": 30, "folder": "$folder"}}]})
    folders = [tmp_path / f"f{i}" for i in range(3)]
    for f in folders:
        f.mkdir()
    cancel = threading.Event()
    ex = Executor(REG, runner=ray_runner, cache=False)
    out = {}
    t = threading.Thread(target=lambda: out.update(r=run_batch(ex, plan, [{"folder": str(f)} for f in folders],
                                                               tmp_path / "out", cancel=cancel)))
    t.start()
    deadline = time.monotonic() + 20
    while not any((f / "heartbeat").exists() for f in folders):
        assert time.monotonic() < deadline, "no row started"
        time.sleep(0.05)
    cancel.set()  # what Ctrl-C in `cadenza workflow run --batch` does
    t.join(15)
    assert [r.status for r in out["r"]] == ["cancelled"] * 3
    assert json.loads((tmp_path / "out" / "batch.json").read_text())["counts"] == {"cancelled": 3}
    for f in folders:
        if (f / "heartbeat").exists():
            assert_stopped(f)
