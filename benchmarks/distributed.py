"""Distributed benchmark: the Ray runner against the thread runner on this machine (issue 20).

    PYTHONPATH=. python benchmarks/distributed.py           # readable lines on stderr, then one JSON line
    PYTHONPATH=. python benchmarks/distributed.py --json    # only the JSON object
    PYTHONPATH=. python benchmarks/distributed.py --quick   # small counts (a smoke test)

A local Ray is started with one CPU per core (no dashboard). Figures:

- overhead: a chain of CHAIN steps of a tool that does nothing, run by each runner; wall time per
  step (ms), Ray's minus the threads'. A chain runs one step at a time, so this is latency: what
  one step pays to become a Ray task (submit, schedule, ship arguments, return, commit).
- batch: ROWS rows of a workflow with two independent CPU-bound branches (pure Python, about
  WORK_MS each, holding the GIL as much Python work in a tool would) and a join; every row into its
  own folder, all at once, through `run_batch`, with threads and with Ray. Total work = the CPU
  time the branches measured themselves (time.thread_time) in Ray's worker processes; ideal = total
  work / cores. (The same loops measure more CPU in threads: passing the GIL around costs some.)
  The step cache is off (each row would otherwise be new anyway; it keeps the file work out).
- batch_one_failing: the same batch where one row's branch raises: that row failed, the others
  succeeded, and the wall time.
- resident: one tool that loads a "model" (LOAD_S of sleep) through the worker's ModelRuntime, called
  CALLS times one after another on Ray: how many loads happened and in how many worker processes
  (models stay loaded in a long-lived Ray worker, so loads == workers used, not calls).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cadenza import Registry, ToolContext, Workspace, tool  # noqa: E402
from cadenza.engine.plan import Plan  # noqa: E402

CHAIN, ROWS, WORK_MS, CALLS, LOAD_S = 40, 40, 100, 8, 0.5


@tool(cacheable=False)
def noop(x: str) -> str:
    return x


@tool(cacheable=False)
def burn(label: str, turns: int, fail: bool = False) -> str:
    """Pure-Python work: `turns` loop turns (WORK_MS of one core, as calibrate() measured)."""
    if fail:
        raise RuntimeError(f"row {label} fails on purpose")
    cpu = time.thread_time()  # this thread's own CPU time: the work, whatever else competes for the core
    acc = 0
    for i in range(turns):
        acc += i * i % 7
    return f"{time.thread_time() - cpu:.6f}"


@tool(cacheable=False)
def pair(a: str, b: str) -> str:
    return a + "|" + b


@tool(cacheable=False)
def with_model(i: int, ctx: ToolContext) -> str:
    def load(device, dtype):
        time.sleep(LOAD_S)
        return {"pid": os.getpid(), "loaded_at": time.time()}

    with ctx.runtime.use("bench-model", load) as model:
        return json.dumps({"pid": os.getpid(), "loaded_at": model["loaded_at"]})


REG = Registry([noop, burn, pair, with_model])


def calibrate() -> float:
    """Loop turns per ms of one core: the best of 5 (least disturbed by other work)."""
    best = math.inf
    for _ in range(5):
        n, t0 = 200_000, time.thread_time()
        acc = 0
        for i in range(n):
            acc += i * i % 7
        best = min(best, time.thread_time() - t0)
    return n / (best * 1000)


def chain_plan(n: int) -> Plan:
    steps = [{"id": "s0", "tool": "noop", "args": {"x": "go"}}]
    steps += [{"id": f"s{i}", "tool": "noop", "args": {"x": f"$s{i - 1}"}} for i in range(1, n)]
    return Plan.model_validate({"steps": steps})


def row_plan(turns: int) -> Plan:
    return Plan.model_validate({
        "inputs": {"label": {"type": "text"}, "fail": {"type": "boolean", "default": False}},
        "steps": [{"id": "a", "tool": "burn", "args": {"label": "$label", "turns": turns, "fail": "$fail"}},
                  {"id": "b", "tool": "burn", "args": {"label": "$label", "turns": turns}},
                  {"id": "j", "tool": "pair", "args": {"a": "$a", "b": "$b"}}]})


def overhead(make_runner, tmp: Path, n: int) -> float:
    from cadenza.engine.executor import Executor

    ex = Executor(REG, runner=make_runner, cache=False)
    ex.run(chain_plan(4), {}, Workspace(tmp / "warm"))  # a warm runner: threads started, workers up
    t0 = time.perf_counter()
    result = ex.run(chain_plan(n), {}, Workspace(tmp / "chain"))
    wall = time.perf_counter() - t0
    ex.close()
    assert result.ok, result.errors()
    return wall / n * 1000


def batch(make_runner, tmp: Path, rows: int, failing: int | None, turns: int) -> dict:
    from cadenza.engine.batch import run_batch
    from cadenza.engine.executor import Executor

    plan = row_plan(turns)
    table = [{"label": f"r{i}", "fail": i == failing} for i in range(1, rows + 1)]
    ex = Executor(REG, runner=make_runner, cache=False)
    run_batch(ex, plan, [{"label": f"w{i}"} for i in range(4)], tmp / "warm")  # every worker up and importing done
    t0 = time.perf_counter()
    results = run_batch(ex, plan, table, tmp / "batch")
    wall = time.perf_counter() - t0
    ex.close()
    statuses = [r.status for r in results]
    # the CPU time the branches measured themselves (a failing row's other branch is not counted)
    cpu = sum(float(x) for r in results if r.status == "succeeded" for x in r.outputs["j"].split("|"))
    return {"wall_s": round(wall, 3), "branch_cpu_s": round(cpu, 3), "succeeded": statuses.count("succeeded"),
            "failed": statuses.count("failed"),
            "failed_row": next((r.row for r in results if r.status == "failed"), None)}


def resident(runner, tmp: Path, calls: int) -> dict:
    from cadenza.engine.executor import Executor

    ex = Executor(REG, runner=runner, cache=False)
    seen = []
    for i in range(calls):  # one after another: a worker is free again each time
        plan = Plan.model_validate({"steps": [{"id": "m", "tool": "with_model", "args": {"i": i}}]})
        t0 = time.perf_counter()
        result = ex.run(plan, {}, Workspace(tmp / f"m{i}"))
        seen.append((json.loads(result.outputs["m"]), time.perf_counter() - t0))
    loads = {(s["pid"], s["loaded_at"]) for s, _ in seen}
    return {"calls": calls, "loads": len(loads), "workers": len({s["pid"] for s, _ in seen}),
            "first_call_s": round(seen[0][1], 3), "median_later_call_s": round(sorted(t for _, t in seen[1:])[len(seen[1:]) // 2], 3)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    chain, rows, calls = (10, 8, 4) if args.quick else (CHAIN, ROWS, CALLS)

    def say(text: str) -> None:
        if not args.json:
            print(text, file=sys.stderr, flush=True)

    import ray

    from cadenza.engine.ray_runner import RayRunner, connect, disconnect
    from cadenza.engine.runners import ThreadRunner

    turns = int(WORK_MS * calibrate())
    cores = os.cpu_count() or 1
    t0 = time.perf_counter()
    connect(None, num_cpus=cores)
    ray_start = time.perf_counter() - t0
    say(f"local Ray started in {ray_start:.1f}s ({cores} CPUs)")
    runner = RayRunner()
    out: dict = {"machine": {"cores": cores, "python": platform.python_version(), "ray": ray.__version__},
                 "ray_start_s": round(ray_start, 2), "work_ms_per_branch": WORK_MS}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t_ms, r_ms = overhead(ThreadRunner, tmp / "ot", chain), overhead(runner, tmp / "or", chain)
        out["overhead"] = {"steps": chain, "threads_ms_per_step": round(t_ms, 2), "ray_ms_per_step": round(r_ms, 2),
                           "ray_extra_ms_per_step": round(r_ms - t_ms, 2)}
        say(f"per step: threads {t_ms:.2f} ms, Ray {r_ms:.2f} ms")
        for name, failing in (("batch", None), ("batch_one_failing", rows // 2)):
            out[name] = {"rows": rows, "threads": batch(ThreadRunner, tmp / f"{name}-t", rows, failing, turns),
                         "ray": batch(runner, tmp / f"{name}-r", rows, failing, turns)}
            # total work: what the branches measured in Ray's worker processes (with threads the same
            # loops measure more: passing the GIL around costs CPU too); ideal = work / cores
            work = out[name]["ray"]["branch_cpu_s"]
            out[name].update(work_s=work, ideal_s=round(work / cores, 3))
            for k in ("threads", "ray"):
                b = out[name][k]
                b["ratio_to_ideal"] = round(b["wall_s"] / (work / cores), 2)
                say(f"{name} ({k}): {b['wall_s']}s for {work}s of work, ideal {out[name]['ideal_s']}s, "
                    f"x{b['ratio_to_ideal']}; {b['succeeded']} succeeded, {b['failed']} failed")
        out["resident"] = resident(runner, tmp / "res", calls)
        say(f"resident models: {out['resident']}")
    runner.shutdown(wait=False)
    disconnect()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    if __package__ is None and "benchmarks.distributed" not in sys.modules:
        # Run as a module so the tools are `benchmarks.distributed.*`: Ray workers import them by that name
        import importlib

        sys.exit(importlib.import_module("benchmarks.distributed").main())
