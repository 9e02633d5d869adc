"""TaskBench support: catalog-only tools from its tools.json, and the planning benchmark.

Metrics as TaskBench computes them (see shared/bench/README.md): per case, the set of
tool names (underscores read as spaces) and the set of `source -> target` pairs;
n-F1 and e-F1 are micro F1 over all cases, in percent.
"""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError, PlanError, ToolError
from ..media import Audio, Image, Video
from ..tools.base import Backend, FunctionTool, Tool
from ..tools.registry import Registry

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


def bench_plan(planner, cases: list[dict], on_case: Callable[[int, dict], None] | None = None) -> dict:
    """Plan every case; return n_f1, e_f1 (percent), valid_rate, seconds_per_plan, n."""
    from .planner import plan_edges

    tp_n = pred_n = gold_n = tp_e = pred_e = gold_e = valid = 0
    seconds = 0.0
    for i, case in enumerate(cases):
        gn, ge = gold_sets(case)
        start = time.monotonic()
        try:
            out = planner.plan(case["instruction"], exclude={str(case.get("id"))})
            plan = out.plan
        except (PlanError, ToolError) as e:  # no valid plan: counts as empty, and not valid
            plan, out = None, None
            err = str(e)
        else:
            err = None
        took = time.monotonic() - start
        seconds += took
        pn = {_norm(s.tool) for s in plan.steps} if plan else set()
        pe = {(_norm(a), _norm(b)) for a, b in plan_edges(plan)} if plan else set()
        valid += plan is not None
        tp_n += len(pn & gn)
        pred_n += len(pn)
        gold_n += len(gn)
        tp_e += len(pe & ge)
        pred_e += len(pe)
        gold_e += len(ge)
        if on_case:
            on_case(i, {"id": case.get("id"), "valid": plan is not None, "pred": sorted(pn), "gold": sorted(gn),
                        "seconds": round(took, 2), "attempts": out.attempts if out else None, "error": err})
    n = len(cases)
    return {"n_f1": round(f1(tp_n, pred_n, gold_n), 2), "e_f1": round(f1(tp_e, pred_e, gold_e), 2),
            "valid_rate": round(valid / n, 4) if n else 0.0, "seconds_per_plan": round(seconds / n, 2) if n else 0.0,
            "n": n}
