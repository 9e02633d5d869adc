"""TaskBench support: catalog-only tools from its tools.json, and the planning benchmark.

Metrics as TaskBench computes them (see shared/bench/README.md): per case, the set of
tool names (underscores read as spaces) and the set of `source -> target` pairs;
n-F1 and e-F1 are micro F1 over all cases, in percent.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError, LLMError, PlanError, ToolError
from ..media import Audio, Image, Video
from ..tools.base import Backend, FunctionTool, Tool
from ..tools.registry import Registry
from .planner import plan_edges
from .step_check import low_scored

TYPES = {"text": str, "url": str, "image": Image, "audio": Audio, "video": Video}


def catalog_tool(node: dict) -> Tool:
    """A tool that has a name, description and typed inputs/outputs, and cannot run."""
    names, params = [], []
    for t in node.get("input-type", []):
        base = t.lower()
        name = base if base not in names else f"{base}{names.count(base) + 1}"
        names.append(base)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=TYPES.get(base, str)))
    out = TYPES.get((node.get("output-type") or ["text"])[0].lower(), str)

    def never_run(**kwargs: Any) -> Any:
        raise ToolError(f"'{node['id']}' is a catalog-only tool (TaskBench): it plans, it does not run")

    never_run.__signature__ = inspect.Signature(params, return_annotation=out)
    never_run.__annotations__ = {p.name: p.annotation for p in params} | {"return": out}
    return FunctionTool(never_run, name=node["id"], description=node.get("desc", ""), cacheable=False,
                        backends=[Backend("catalog", "described only; never executed")])


def catalog_registry(tools_json: str | Path) -> Registry:
    try:
        data = json.loads(Path(tools_json).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read tool catalog {tools_json}: {e}") from None
    nodes = data["nodes"] if isinstance(data, dict) else data
    return Registry([catalog_tool(n) for n in nodes])


def read_cases(path: str | Path) -> list[dict]:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise InputError(f"cannot read cases file {path}: {e.strerror or e}") from None
    cases = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                cases.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise InputError(f"{path} line {n}: not JSON ({e.msg})") from None
    return cases


def _norm(name: str) -> str:
    return name.replace("_", " ")


def gold_sets(case: dict) -> tuple[set[str], set[tuple[str, str]]]:
    nodes = {_norm(n["task"]) for n in case["task_nodes"]}
    edges = {(_norm(l["source"]), _norm(l["target"])) for l in case.get("task_links", [])}
    return nodes, edges


def f1(tp: int, n_pred: int, n_gold: int) -> float:
    if n_pred == 0 or n_gold == 0:
        return 0.0
    p, r = tp / n_pred, tp / n_gold
    return 0.0 if p + r == 0 else 200 * p * r / (p + r)


def plan_case(planner, case: dict) -> dict:
    """Plan one case; the row a log keeps: predicted and gold tool sets and edges, validity, time."""
    gn, ge = gold_sets(case)
    start = time.monotonic()
    plan, attempts, err, valid, out = None, None, None, False, None
    try:
        out = planner.plan(case["instruction"], exclude={str(case.get("id"))})
        plan, attempts, valid = out.plan, out.attempts, out.plan is not None
    except (PlanError, ToolError) as e:
        # As TaskBench does, the prediction is scored even when it is not a valid plan (its tools and
        # links still count); valid_rate says how often the plan would actually run.
        err, plan = str(e), e.last_plan if isinstance(e, PlanError) else None
    except LLMError as e:  # no parsable reply at all: an empty prediction
        err = str(e)
    def predicted(plan) -> dict:  # what TaskBench scores of a plan: its tool names and links
        return {"pred": sorted({_norm(s.tool) for s in plan.steps}) if plan else [],
                "pred_edges": sorted({(_norm(a), _norm(b)) for a, b in plan_edges(plan)}) if plan else []}

    row = {"id": case.get("id"), "type": case.get("type"), "valid": valid, **predicted(plan), "gold": sorted(gn),
           "gold_edges": sorted(ge), "seconds": round(time.monotonic() - start, 2), "attempts": attempts, "error": err}
    if out is not None and out.step_scores:  # the step check ran: its scores, its time, the plan before it
        row["step_scores"] = {_norm(t): round(v, 3) for t, v in out.step_scores.items()}
        row["check_seconds"] = round(out.check_seconds, 2)
        if out.unchecked is not None:
            row["unchecked"] = predicted(out.unchecked)
    return row


def score(rows: list[dict]) -> dict:
    """n_f1, e_f1 (percent, micro over cases), valid_rate, seconds_per_plan, n."""
    tp_n = pred_n = gold_n = tp_e = pred_e = gold_e = 0
    for r in rows:
        pn, gn = set(r["pred"]), set(r["gold"])
        pe = {tuple(e) for e in r["pred_edges"]}
        ge = {tuple(e) for e in r["gold_edges"]}
        tp_n, pred_n, gold_n = tp_n + len(pn & gn), pred_n + len(pn), gold_n + len(gn)
        tp_e, pred_e, gold_e = tp_e + len(pe & ge), pred_e + len(pe), gold_e + len(ge)
    n = len(rows)
    return {"n_f1": round(f1(tp_n, pred_n, gold_n), 2), "e_f1": round(f1(tp_e, pred_e, gold_e), 2),
            "valid_rate": round(sum(r["valid"] for r in rows) / n, 4) if n else 0.0,
            "seconds_per_plan": round(sum(r["seconds"] for r in rows) / n, 2) if n else 0.0, "n": n}


def bench_plan(planner, cases: list[dict], on_case: Callable[[int, dict], None] | None = None,
               done: dict[str, dict] | None = None) -> dict:
    """Plan every case (reusing rows in `done`, keyed by case id, from an earlier interrupted run).
    A scored case is never an example, fixed or chosen."""
    planner.exclude_from_anchors({str(c.get("id")) for c in cases})
    return score(plan_rows(planner, cases, on_case, done))


def plan_rows(planner, cases: list[dict], on_case: Callable[[int, dict], None] | None = None,
              done: dict[str, dict] | None = None, leave_each_out: bool = False) -> list[dict]:
    """plan_case for every case not already in `done` (keyed by case id); `leave_each_out` also
    keeps each case out of the fixed examples while it is planned."""
    rows = []
    for i, case in enumerate(cases):
        row = (done or {}).get(str(case.get("id")))
        if row is None:
            if leave_each_out:
                planner.exclude_from_anchors({str(case.get("id"))})
            row = plan_case(planner, case)
            if on_case:
                on_case(i, row)
        rows.append(row)
    return rows


def calibrate(planner, cases: list[dict], on_case: Callable[[int, dict], None] | None = None,
              done: dict[str, dict] | None = None) -> tuple[dict[str, float], float | None, dict]:
    """Per-tool weights for `Planner(tool_bias=...)` and a threshold for `Planner(step_check=...)`,
    measured on a pool of worked examples: each case is planned with itself left out (of the fixed
    and the chosen examples). A tool the LLM used more often than the gold plans gets a negative
    weight, one it missed a positive one; the threshold is the one under which dropping steps
    scores best on the pool (None when the LLM gives no step scores: only the embedded one does).
    Returns (weights, threshold, the pool's scores). Tune on the example pool, never on the scored cases."""
    if planner.step_check is None:
        planner.step_check = -math.inf  # score every step, drop none
    rows = plan_rows(planner, cases, on_case, done, leave_each_out=True)
    return tool_bias_from_rows(rows, [t.name for t in planner.registry]), step_check_from_rows(rows), score(rows)


def step_check_from_rows(rows: list[dict]) -> float | None:
    """The step-check threshold under which the rows' node F1 is best (ties: the lower, which drops less)."""
    scores = sorted({v for r in rows for v in (r.get("step_scores") or {}).values()})
    if not scores:
        return None
    cuts = [scores[0] - 1] + [(a + b) / 2 for a, b in zip(scores, scores[1:])] + [scores[-1] + 1]
    return round(max(cuts, key=lambda c: (checked_f1(rows, c), -c)), 3)


def checked_f1(rows: list[dict], threshold: float) -> float:
    """Node F1 of the rows if the steps scored below `threshold` had been dropped (never all), by
    the rule the planner's step check follows."""
    tp = n_pred = n_gold = 0
    for r in rows:
        pred, gold, checked = set(r["pred"]), set(r["gold"]), r.get("step_scores") or {}
        pred -= low_scored({t: checked.get(t, math.inf) for t in pred}, threshold)  # an unscored tool stays
        tp, n_pred, n_gold = tp + len(pred & gold), n_pred + len(pred), n_gold + len(gold)
    return f1(tp, n_pred, n_gold)


def tool_bias_from_rows(rows: list[dict], tools: list[str], limit: float = 2.0) -> dict[str, float]:
    """log((gold uses + 1) / (predicted uses + 1)) per tool (counted once a case), within +-limit."""
    pred = Counter(t for r in rows for t in set(r["pred"]))
    gold = Counter(t for r in rows for t in set(r["gold"]))
    return {t: round(max(-limit, min(limit, math.log((gold[_norm(t)] + 1) / (pred[_norm(t)] + 1)))), 3) for t in tools}
