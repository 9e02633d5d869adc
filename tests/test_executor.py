"""The executor: DAG concurrency, GPU serialization, failure isolation, retries, timeouts,
run.json, and the step cache."""

import json
import threading
import time

import pytest

from cadenza import Audio, Backend, Registry, ToolContext, TransientError, Workspace, tool
from cadenza.engine.cache import StepCache
from cadenza.engine.executor import Executor
from cadenza.engine.plan import Plan, Step
from cadenza.engine.runners import SequentialRunner
from cadenza.errors import MediaError, PlanError

barrier = threading.Barrier(2, timeout=10)
gpu_active = {"now": 0, "max": 0}
gpu_lock = threading.Lock()
calls = {"flaky": 0, "write": 0}


@tool(cacheable=False)
def meet(label: str) -> str:
    """Both 'meet' steps must be running at the same time to pass the barrier."""
    barrier.wait()
    return label


@tool(cacheable=False, backends=[Backend("fake-gpu", device="gpu")])
def gpu_work(label: str, seconds: float = 0.05) -> str:
    """Pretend GPU work: counts how many run at once."""
    with gpu_lock:
        gpu_active["now"] += 1
        gpu_active["max"] = max(gpu_active["max"], gpu_active["now"])
    time.sleep(seconds)
    with gpu_lock:
        gpu_active["now"] -= 1
    return label


@tool(cacheable=False)
def join(parts: list[str]) -> str:
    return "+".join(parts)


@tool(cacheable=False)
def boom(label: str) -> str:
    raise RuntimeError(f"boom in {label}")


@tool(cacheable=False)
def flaky(label: str, fail_times: int = 2) -> str:
    calls["flaky"] += 1
    if calls["flaky"] <= fail_times:
        raise TransientError("device busy")
    return label


@tool(cacheable=False)
def sleepy(seconds: float, ctx: ToolContext) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ctx.check_cancelled()
        time.sleep(0.01)
    return "woke"


@tool
def write_text(text: str, ctx: ToolContext) -> Audio:
    """Writes a real WAV whose content depends on the text (cacheable)."""
    calls["write"] += 1
    from tests.media_factory import tone

    path = ctx.output_path(".wav")
    tone(path, freq=200 + 10 * len(text), seconds=0.2)
    return Audio.from_path(path)


REG = Registry([meet, gpu_work, join, boom, flaky, sleepy, write_text])


def run(steps, tmp_path, inputs=None, plan_inputs=None, outputs=None, **kw):
    out = kw.pop("out", "out")
    ex = Executor(REG, cache=kw.pop("cache", False), **kw)
    p = Plan(steps=[Step(**s) for s in steps], inputs=plan_inputs or {}, outputs=outputs or {})
    return ex.run(p, inputs or {}, Workspace(tmp_path / out))


def test_independent_steps_run_concurrently_and_join(tmp_path):
    events = []
    r = run([{"id": "a", "tool": "meet", "args": {"label": "A"}},
             {"id": "b", "tool": "meet", "args": {"label": "B"}},
             {"id": "j", "tool": "join", "args": {"parts": ["$a", "$b"]}}], tmp_path, on_event=events.append)
    assert r.ok and r.outputs == {"j": "A+B"}
    kinds = [e.kind for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.count("step_started") == 3 and kinds.count("step_finished") == 3
    assert all(e.seconds is not None for e in events if e.kind == "step_finished")


def test_gpu_steps_are_serialized_per_device(tmp_path):
    gpu_active.update(now=0, max=0)
    r = run([{"id": f"g{i}", "tool": "gpu_work", "args": {"label": str(i)}} for i in range(4)], tmp_path)
    assert r.ok and gpu_active["max"] == 1


def test_failure_skips_dependents_but_independent_branch_finishes(tmp_path):
    r = run([{"id": "ok", "tool": "write_text", "args": {"text": "kept"}},
             {"id": "bad", "tool": "boom", "args": {"label": "x"}},
             {"id": "after", "tool": "join", "args": {"parts": ["$bad"]}},
             {"id": "after2", "tool": "join", "args": {"parts": ["$after"]}}], tmp_path)
    assert r.status == "failed" and r.exit_code == 1
    st = {k: v.status for k, v in r.steps.items()}
    assert st == {"ok": "succeeded", "bad": "failed", "after": "skipped", "after2": "skipped"}
    assert r.steps["bad"].error == "RuntimeError: boom in x"
    assert "boom in x" in r.steps["bad"].traceback
    assert r.outputs["ok"].path.exists()  # what was produced stays on disk
    doc = json.loads(r.run_json.read_text())
    assert doc["status"] == "failed"
    assert {s["id"]: s["status"] for s in doc["steps"]} == st
    assert doc["outputs"]["ok"]["path"] == str(r.outputs["ok"].path)


def test_transient_errors_are_retried_with_a_bound(tmp_path):
    calls["flaky"] = 0
    r = run([{"id": "f", "tool": "flaky", "args": {"label": "ok"}}], tmp_path, retries=2, retry_backoff=0.01)
    assert r.ok and r.steps["f"].attempts == 3
    calls["flaky"] = 0
    r = run([{"id": "f", "tool": "flaky", "args": {"label": "ok", "fail_times": 5}}], tmp_path, retries=2,
            retry_backoff=0.01, out="out2")
    assert r.status == "failed" and r.steps["f"].error == "device busy" and calls["flaky"] == 3


def test_step_timeout_fails_the_step_and_cancels_it(tmp_path):
    r = run([{"id": "slow", "tool": "sleepy", "args": {"seconds": 30}, "timeout": 0.2},
             {"id": "quick", "tool": "join", "args": {"parts": ["x"]}}], tmp_path)
    assert r.steps["slow"].status == "failed"
    assert r.steps["slow"].error == "step 'slow' timed out after 0.2s"
    assert r.steps["quick"].status == "succeeded"


def test_missing_input_file_fails_before_anything_runs(tmp_path):
    with pytest.raises(MediaError, match="audio file not found: nowhere.wav"):
        run([{"id": "w", "tool": "write_text", "args": {"text": "$t"}}], tmp_path,
            inputs={"a": "nowhere.wav", "t": "x"}, plan_inputs={"a": {"type": "audio"}, "t": {"type": "text"}})
    assert not (tmp_path / "out" / "run.json").exists()


def test_invalid_plan_runs_nothing(tmp_path):
    calls["write"] = 0
    with pytest.raises(PlanError, match="unknown tool"):
        run([{"id": "w", "tool": "write_text", "args": {"text": "x"}}, {"id": "z", "tool": "zzz"}], tmp_path)
    assert calls["write"] == 0


def test_outputs_get_content_derived_names_and_run_json_is_complete(tmp_path):
    r = run([{"id": "w", "tool": "write_text", "args": {"text": "hello"}}], tmp_path)
    path = r.outputs["w"].path
    assert path.parent == tmp_path / "out" and path.name.startswith("w-") and len(path.stem) == 14
    doc = json.loads(r.run_json.read_text())
    step = doc["steps"][0]
    assert step["backend"] == "python" and step["args"] == {"text": "hello"} and step["status"] == "succeeded"
    assert step["outputs"]["result"]["path"] == str(path) and step["seconds"] >= 0
    assert doc["plan"]["steps"][0]["tool"] == "write_text"
    assert not list((tmp_path / "out").glob(".run.json*.tmp"))  # atomic write leaves no temp file


def test_cache_reuses_unchanged_steps_and_reruns_changed_ones(tmp_path):
    cache = StepCache(tmp_path / "cache")
    calls["write"] = 0
    steps = [{"id": "a", "tool": "write_text", "args": {"text": "one"}},
             {"id": "b", "tool": "write_text", "args": {"text": "$t"}}]
    pin = {"t": {"type": "text"}}
    r1 = run(steps, tmp_path, inputs={"t": "two"}, plan_inputs=pin, cache=cache, out="r1")
    assert calls["write"] == 2
    r2 = run(steps, tmp_path, inputs={"t": "two"}, plan_inputs=pin, cache=cache, out="r2")
    assert calls["write"] == 2 and all(s.status == "cached" for s in r2.steps.values())
    assert r2.outputs["b"].path.read_bytes() == r1.outputs["b"].path.read_bytes()
    assert r2.outputs["b"].path.parent == tmp_path / "r2"
    r3 = run(steps, tmp_path, inputs={"t": "three"}, plan_inputs=pin, cache=cache, out="r3")
    assert calls["write"] == 3
    assert r3.steps["a"].status == "cached" and r3.steps["b"].status == "succeeded"


def test_cache_key_follows_input_file_content(tmp_path):
    from cadenza.engine.cache import cache_key
    from tests.media_factory import tone

    tone(tmp_path / "x.wav", freq=300, seconds=0.3)
    k1 = cache_key("t", "b", "1", {"audio": Audio.from_path(tmp_path / "x.wav")})
    (tmp_path / "x.wav").rename(tmp_path / "y.wav")
    k2 = cache_key("t", "b", "1", {"audio": Audio.from_path(tmp_path / "y.wav")})
    tone(tmp_path / "y.wav", freq=301, seconds=0.3)
    k3 = cache_key("t", "b", "1", {"audio": Audio.from_path(tmp_path / "y.wav")})
    assert k1 == k2 != k3
    assert cache_key("t", "b", "2", {"audio": Audio.from_path(tmp_path / "y.wav")}) != k3  # tool version


def test_sequential_runner_gives_same_results(tmp_path):
    r = run([{"id": "a", "tool": "join", "args": {"parts": ["x"]}},
             {"id": "b", "tool": "join", "args": {"parts": ["$a", "y"]}}], tmp_path, runner=SequentialRunner)
    assert r.ok and r.outputs == {"b": "x+y"}


def test_cache_hit_is_named_after_its_own_step(tmp_path):
    cache = StepCache(tmp_path / "cache")
    steps = [{"id": "first", "tool": "write_text", "args": {"text": "same"}},
             {"id": "second", "tool": "write_text", "args": {"text": "same"}}]
    r = run(steps, tmp_path, cache=cache, runner=SequentialRunner)
    assert r.outputs["first"].path.name.startswith("first-")
    assert r.outputs["second"].path.name.startswith("second-")  # same key, its own name
    assert r.outputs["first"].path.read_bytes() == r.outputs["second"].path.read_bytes()


def test_a_step_gets_the_duration_of_an_earlier_media_value(tmp_path):
    """`$a.duration` resolves to the number the file was probed with; a file whose length is not
    known fails that step in one line (the rest of the run goes on)."""
    import media_factory as mf
    from cadenza.tools.audio.edit import fit_audio

    seen = []

    @tool
    def how_long(seconds: float) -> str:
        """Say how long."""
        seen.append(seconds)
        return f"{seconds:.2f}"

    tone = mf.tone(tmp_path / "tone.wav", seconds=1.5)
    reg = Registry([how_long, fit_audio])
    p = Plan(inputs={"music": {"type": "audio"}},
             steps=[Step(id="fit", tool="fit_audio", args={"audio": "$music", "duration": 2.5}),
                    Step(id="a", tool="how_long", args={"seconds": "$music.duration"}),
                    Step(id="b", tool="how_long", args={"seconds": "$fit.duration"})])
    result = Executor(registry=reg, runner=SequentialRunner, cache=False).run(
        p, {"music": str(tone)}, Workspace.for_run(tmp_path / "out", {"music": str(tone)}))
    assert result.ok and sorted(seen) == [pytest.approx(1.5, abs=0.01), pytest.approx(2.5, abs=0.01)]
