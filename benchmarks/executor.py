"""Executor benchmark: parallelism, per-step overhead and cached re-runs.

    python benchmarks/executor.py          # readable lines, then one JSON line
    python benchmarks/executor.py --json   # only the JSON object

Figures (targets in `TARGETS`):

- critical_path_ratio: on DAGs of synthetic tools with known durations (they
  sleep), wall time of a parallel run / the critical path (longest path sum of
  durations). The worst DAG is reported, with per-DAG figures beside it.
- speedup_vs_sequential: the same DAGs run one step at a time
  (`SequentialRunner`) in the same process: total sequential wall time / total
  parallel wall time over all DAGs (per DAG beside it, with the ideal: sum of
  durations / critical path).
- overhead_ms_per_step: wall time of a 1000-step plan of no-op tools (chains and
  independent steps), cache off, divided by 1000, in ms. The same with the
  cache on (every step a miss that stores an entry) as
  overhead_ms_per_step_cached_store, and a re-run that hits every entry as
  overhead_ms_per_step_cache_hit.
- cached_rerun_fraction: a 10-step workflow whose steps sleep 0.1 s and write a
  WAV file, run twice with one StepCache into two output folders: time of the
  unchanged re-run / time of the first run.

Everything is written under a temporary folder (the step cache included, never
the user's cache) that is removed at the end. Takes about 20-30 s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import wave
from pathlib import Path

from cadenza import Audio, Registry, ToolContext, Workspace, tool
from cadenza.engine.cache import StepCache
from cadenza.engine.executor import Executor
from cadenza.engine.plan import Plan, Step
from cadenza.engine.runners import SequentialRunner, ThreadRunner

TARGETS = {
    "critical_path_ratio": 1.10,  # at most
    "overhead_ms_per_step": 2.0,  # below
    "cached_rerun_fraction": 0.05,  # below
}

# -- synthetic tools ---------------------------------------------------------------


@tool(cacheable=False)
def sleep_step(seconds: float, deps: list[float] = []) -> float:  # noqa: B006 - never mutated
    """Sleep `seconds`, return them (plus what the steps it waited for returned)."""
    time.sleep(seconds)
    return seconds + sum(deps)


@tool(cacheable=False)
def noop(x: float = 0.0) -> float:
    """Return x: the cheapest possible step."""
    return x


@tool(cacheable=True)
def noop_cached(x: float = 0.0) -> float:
    """Return x, cacheable: measures the cache's per-step cost."""
    return x


def _write_wav(path: Path, seed: str) -> None:
    frames = hashlib.sha256(seed.encode()).digest() * 50  # 0.1 s of noise, 8 kHz, 16-bit mono
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames)


@tool(cacheable=True)
def slow_source(seed: int, ctx: ToolContext) -> Audio:
    """Take 0.1 s, write a short WAV."""
    time.sleep(0.1)
    path = ctx.output_path(".wav")
    _write_wav(path, f"source {seed}")
    return path


@tool(cacheable=True)
def slow_process(audio: Audio, seed: int, ctx: ToolContext) -> Audio:
    """Take 0.1 s, read the input's bytes, write a new short WAV."""
    time.sleep(0.1)
    salt = hashlib.sha256(audio.path.read_bytes()).hexdigest()
    path = ctx.output_path(".wav")
    _write_wav(path, f"{salt} {seed}")
    return path


REGISTRY = Registry([sleep_step, noop, noop_cached, slow_source, slow_process])

# -- DAGs with known durations -------------------------------------------------------

# id -> (seconds, [dependencies])
DAGS: dict[str, dict[str, tuple[float, list[str]]]] = {}


def _branches() -> dict[str, tuple[float, list[str]]]:
    """Four branches of 2-5 steps, different lengths, fanning in to a join."""
    lengths = {"a": [0.10, 0.20, 0.15], "b": [0.05, 0.05, 0.10, 0.10, 0.05], "c": [0.30, 0.20],
               "d": [0.10, 0.10, 0.10, 0.10]}
    dag: dict[str, tuple[float, list[str]]] = {}
    tails = []
    for name, secs in lengths.items():
        prev = None
        for i, s in enumerate(secs):
            sid = f"{name}{i}"
            dag[sid] = (s, [prev] if prev else [])
            prev = sid
        tails.append(prev)
    dag["join"] = (0.05, tails)
    return dag


def _diamond() -> dict[str, tuple[float, list[str]]]:
    return {"top": (0.10, []), "left": (0.20, ["top"]), "right": (0.10, ["top"]),
            "bottom": (0.10, ["left", "right"])}


def _fan_out_in() -> dict[str, tuple[float, list[str]]]:
    """A source, eight parallel steps of mixed length, a join, then a two-step tail."""
    dag: dict[str, tuple[float, list[str]]] = {"src": (0.05, [])}
    mids = []
    for i, s in enumerate([0.1, 0.3, 0.2, 0.05, 0.15, 0.25, 0.1, 0.2]):
        dag[f"m{i}"] = (s, ["src"])
        mids.append(f"m{i}")
    dag["join"] = (0.05, mids)
    dag["t0"] = (0.1, ["join"])
    dag["t1"] = (0.05, ["t0"])
    return dag


def _two_diamonds() -> dict[str, tuple[float, list[str]]]:
    """Two diamonds in series, sharing no step, with a side branch off the first."""
    return {"a": (0.05, []), "b1": (0.15, ["a"]), "c1": (0.10, ["a"]), "d1": (0.05, ["b1", "c1"]),
            "side0": (0.20, ["a"]), "side1": (0.20, ["side0"]),
            "b2": (0.10, ["d1"]), "c2": (0.20, ["d1"]), "d2": (0.05, ["b2", "c2", "side1"])}


DAGS = {"branches": _branches(), "diamond": _diamond(), "fan_out_in": _fan_out_in(),
        "two_diamonds": _two_diamonds()}


def critical_path(dag: dict[str, tuple[float, list[str]]]) -> float:
    finish: dict[str, float] = {}

    def end(sid: str) -> float:
        if sid not in finish:
            secs, deps = dag[sid]
            finish[sid] = secs + max((end(d) for d in deps), default=0.0)
        return finish[sid]

    return max(end(s) for s in dag)


def dag_plan(dag: dict[str, tuple[float, list[str]]]) -> Plan:
    steps = []
    for sid, (secs, deps) in dag.items():
        args: dict = {"seconds": secs}
        if deps:
            args["deps"] = [f"${d}" for d in deps]
        steps.append(Step(id=sid, tool="sleep_step", args=args))
    return Plan(steps=steps)


def timed_run(ex: Executor, plan: Plan, out_dir: Path) -> float:
    ws = Workspace(out_dir)
    t0 = time.perf_counter()
    result = ex.run(plan, {}, ws)
    wall = time.perf_counter() - t0
    if not result.ok:
        raise SystemExit(f"benchmark plan failed: {result.errors()}")
    return wall


def bench_dags(tmp: Path, repeats: int, log) -> dict:
    parallel = Executor(REGISTRY, cache=False, runner=ThreadRunner)
    sequential = Executor(REGISTRY, cache=False, runner=SequentialRunner)
    per_dag = {}
    n = 0
    for name, dag in DAGS.items():
        plan = dag_plan(dag)
        cp = critical_path(dag)
        total = sum(s for s, _ in dag.values())
        par, seq = [], []
        for _ in range(repeats):
            n += 1
            par.append(timed_run(parallel, plan, tmp / f"dag-{n}-par"))
            seq.append(timed_run(sequential, plan, tmp / f"dag-{n}-seq"))
        p, s = statistics.median(par), statistics.median(seq)
        per_dag[name] = {
            "steps": len(dag), "critical_path_s": round(cp, 4), "sum_of_durations_s": round(total, 4),
            "parallel_s": round(p, 4), "sequential_s": round(s, 4),
            "critical_path_ratio": round(p / cp, 4), "worst_ratio": round(max(par) / cp, 4),
            "slack_ms": round((p - cp) * 1000, 2),
            "speedup_vs_sequential": round(s / p, 3), "ideal_speedup": round(total / cp, 3),
        }
        log(f"  {name:13s} {len(dag):2d} steps  critical path {cp:.3f}s  parallel {p:.3f}s "
            f"(x{p / cp:.3f})  sequential {s:.3f}s  speedup {s / p:.2f} (ideal {total / cp:.2f})")
    return per_dag


# -- per-step overhead ----------------------------------------------------------------


def overhead_plan(tool_name: str, chains: int = 90, length: int = 10, independent: int = 100) -> Plan:
    steps = []
    for c in range(chains):
        for j in range(length):
            args = {"x": f"$c{c}_{j - 1}"} if j else {"x": float(c)}
            steps.append(Step(id=f"c{c}_{j}", tool=tool_name, args=args))
    for i in range(independent):
        steps.append(Step(id=f"i{i}", tool=tool_name, args={"x": float(i)}))
    return Plan(steps=steps)


def bench_overhead(tmp: Path, repeats: int, log) -> dict:
    plan = overhead_plan("noop")
    n_steps = len(plan.steps)
    ex = Executor(REGISTRY, cache=False)
    seq = Executor(REGISTRY, cache=False, runner=SequentialRunner)
    walls = [timed_run(ex, plan, tmp / f"noop-{i}") for i in range(repeats)]
    seq_walls = [timed_run(seq, plan, tmp / f"noop-seq-{i}") for i in range(repeats)]

    cplan = overhead_plan("noop_cached")
    store, hit = [], []
    for i in range(repeats):
        cache = StepCache(tmp / f"cache-overhead-{i}")  # fresh: every step a miss, then stored
        cex = Executor(REGISTRY, cache=cache)
        store.append(timed_run(cex, cplan, tmp / f"cstore-{i}"))
        hit.append(timed_run(cex, cplan, tmp / f"chit-{i}"))

    def ms(xs):
        return round(statistics.median(xs) / n_steps * 1000, 4)

    out = {"steps": n_steps, "shape": "90 chains of 10 + 100 independent no-op steps",
           "overhead_ms_per_step": ms(walls), "overhead_ms_per_step_sequential_runner": ms(seq_walls),
           "overhead_ms_per_step_cached_store": ms(store), "overhead_ms_per_step_cache_hit": ms(hit),
           "runs_s": [round(w, 4) for w in walls]}
    log(f"  {n_steps} no-op steps: {out['overhead_ms_per_step']:.3f} ms/step (threads), "
        f"{out['overhead_ms_per_step_sequential_runner']:.3f} ms/step (sequential runner), "
        f"cache store {out['overhead_ms_per_step_cached_store']:.3f}, cache hit {out['overhead_ms_per_step_cache_hit']:.3f}")
    return out


# -- cached re-run ------------------------------------------------------------------------


def cached_plan() -> Plan:
    """Ten steps: two sources, two chains of four, each 0.1 s and one WAV."""
    steps = []
    for b in range(2):
        steps.append(Step(id=f"src{b}", tool="slow_source", args={"seed": b}))
        prev = f"src{b}"
        for j in range(4):
            sid = f"p{b}_{j}"
            steps.append(Step(id=sid, tool="slow_process", args={"audio": f"${prev}", "seed": j}))
            prev = sid
    return Plan(steps=steps)


def bench_cached(tmp: Path, repeats: int, log) -> dict:
    plan = cached_plan()
    firsts, reruns = [], []
    for i in range(repeats):
        cache = StepCache(tmp / f"cache-rerun-{i}")
        ex = Executor(REGISTRY, cache=cache)
        firsts.append(timed_run(ex, plan, tmp / f"rerun-{i}-first"))
        out2 = tmp / f"rerun-{i}-second"
        reruns.append(timed_run(ex, plan, out2))
        run = json.loads((out2 / "run.json").read_text())
        statuses = {s["status"] for s in run["steps"]}
        if statuses != {"cached"}:
            raise SystemExit(f"re-run was not fully cached: {statuses}")
        names = {s["id"]: Path(s["outputs"]["result"]["path"]) for s in run["steps"]}
        if any(p.parent != out2 or not p.name.startswith(f"{sid}-") or not p.exists() for sid, p in names.items()):
            raise SystemExit(f"re-run did not restore every output file: {names}")
    f, r = statistics.median(firsts), statistics.median(reruns)
    out = {"steps": len(plan.steps), "first_run_s": round(f, 4), "rerun_s": round(r, 4),
           "cached_rerun_fraction": round(r / f, 4)}
    log(f"  {len(plan.steps)} steps of 0.1 s: first run {f:.3f}s, unchanged re-run {r * 1000:.1f} ms "
        f"({r / f:.4f} of the first)")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    ap.add_argument("--repeats", type=int, default=3, help="runs per figure (the median is reported)")
    opts = ap.parse_args()
    log = (lambda *a: None) if opts.json else (lambda *a: print(*a, flush=True))

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cadenza-bench-executor-") as d:
        tmp = Path(d)
        # Warm up imports (PyAV, pydantic adapters) so the first timed run is not charged for them.
        timed_run(Executor(REGISTRY, cache=StepCache(tmp / "cache-warm")), cached_plan(), tmp / "warm")
        timed_run(Executor(REGISTRY, cache=False), dag_plan(_diamond()), tmp / "warm-dag")

        log("DAGs of sleeping steps (median of %d):" % opts.repeats)
        dags = bench_dags(tmp, opts.repeats, log)
        log("Per-step overhead:")
        overhead = bench_overhead(tmp, opts.repeats, log)
        log("Cached re-run:")
        cached = bench_cached(tmp, opts.repeats, log)

    cp_ratio = max(v["critical_path_ratio"] for v in dags.values())
    # All DAGs together: total sequential time / total parallel time (per-DAG figures beside it).
    speedup = round(sum(v["sequential_s"] for v in dags.values()) / sum(v["parallel_s"] for v in dags.values()), 3)
    ideal = round(sum(v["sum_of_durations_s"] for v in dags.values()) / sum(v["critical_path_s"] for v in dags.values()), 3)
    result = {
        "benchmark": "executor",
        "critical_path_ratio": cp_ratio,
        "critical_path_ratio_per_dag": {k: v["critical_path_ratio"] for k, v in dags.items()},
        "speedup_vs_sequential": speedup,
        "speedup_vs_sequential_ideal": ideal,
        "speedup_vs_sequential_per_dag": {k: v["speedup_vs_sequential"] for k, v in dags.items()},
        "overhead_ms_per_step": overhead["overhead_ms_per_step"],
        "overhead_ms_per_step_sequential_runner": overhead["overhead_ms_per_step_sequential_runner"],
        "overhead_ms_per_step_cached_store": overhead["overhead_ms_per_step_cached_store"],
        "overhead_ms_per_step_cache_hit": overhead["overhead_ms_per_step_cache_hit"],
        "cached_rerun_fraction": cached["cached_rerun_fraction"],
        "targets": {"critical_path_ratio": f"<= {TARGETS['critical_path_ratio']}",
                    "overhead_ms_per_step": f"< {TARGETS['overhead_ms_per_step']}",
                    "cached_rerun_fraction": f"< {TARGETS['cached_rerun_fraction']}"},
        "pass": {
            "critical_path_ratio": cp_ratio <= TARGETS["critical_path_ratio"],
            "overhead_ms_per_step": overhead["overhead_ms_per_step"] < TARGETS["overhead_ms_per_step"],
            "cached_rerun_fraction": cached["cached_rerun_fraction"] < TARGETS["cached_rerun_fraction"],
        },
        "details": {"dags": dags, "overhead": overhead, "cached_rerun": cached},
        "repeats": opts.repeats,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "seconds": round(time.perf_counter() - started, 2),
    }
    result["pass"]["all"] = all(result["pass"].values())
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
