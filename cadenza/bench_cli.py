"""`cadenza bench plan` and `cadenza bench calibrate`: the planner scored on TaskBench-format cases,
and the tool weights and step-check threshold measured on a pool of worked examples.

Split from cli.py, which keeps the parser; `_read_tool_bias` lives here beside `calibrate`, which
writes the file it reads, and cli.py's agent commands import it for --tool-bias.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .errors import CadenzaError, InputError, printable


def cmd_bench_plan(args) -> int:
    from .agent.examples import ExamplePool
    from .agent.planner import Planner
    from .agent.taskbench import bench_plan, catalog_registry, read_cases
    from .llm.chat import get_chat_model

    registry = catalog_registry(args.tools)
    cases = read_cases(args.cases)[args.offset:]
    if args.limit is not None:
        cases = cases[:args.limit]
    examples = ExamplePool.from_file(args.examples, registry) if args.examples else ExamplePool([])
    planner = Planner(get_chat_model(args.llm), registry, examples, n_examples=args.n_examples, top_k=args.top_k,
                      retrieve_above=args.retrieve_above, example_style=args.example_style, stepwise=args.stepwise,
                      max_repairs=args.max_repairs, anchors=args.anchors, step_check=args.step_check,
                      tool_bias=_read_tool_bias(args.tool_bias, registry) if args.tool_bias else None)
    done, on_case = _case_log(args.log, len(cases), args.json)
    if cases:  # load the models and evaluate the fixed prompt prefix once, outside the timings
        planner.exclude_from_anchors({str(c.get("id")) for c in cases})
        try:
            planner.plan("Warm-up: summarize the text 'hello'.")
        except CadenzaError:
            pass
    scores = bench_plan(planner, cases, on_case, done)
    scores["llm"] = args.llm or "local"
    print(json.dumps(scores))
    return 0


def cmd_bench_calibrate(args) -> int:
    from .agent.examples import ExamplePool
    from .agent.planner import Planner
    from .agent.taskbench import calibrate, catalog_registry, read_cases
    from .llm.chat import get_chat_model

    registry = catalog_registry(args.tools)
    cases = read_cases(args.examples)
    planner = Planner(get_chat_model(args.llm), registry, ExamplePool.from_file(args.examples, registry))
    done, on_case = _case_log(args.log, len(cases), args.json)
    bias, threshold, scores = calibrate(planner, cases, on_case, done)
    if args.out:
        Path(args.out).write_text(json.dumps(bias, indent=1) + "\n")
    print(json.dumps({"tool_bias": bias, "step_check": threshold, "pool": scores}))
    return 0


def _read_tool_bias(path: str, registry) -> dict[str, float]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read tool weights {path}: {getattr(e, 'strerror', None) or e}") from None
    if not isinstance(data, dict) or not all(isinstance(v, (int, float)) for v in data.values()):
        raise InputError(f"tool weights {path}: expected a JSON object {{tool: number}}")
    unknown = sorted(set(data) - {t.name for t in registry})
    if unknown:
        raise InputError(f"tool weights {path}: no tool '{unknown[0]}' in the catalog")
    return {str(k): float(v) for k, v in data.items()}


def _case_log(path: str | None, total: int, quiet: bool):
    """Rows already in the log (keyed by case id), and a callback that appends new ones and reports progress."""
    done = {}
    if path and Path(path).exists():
        for line in Path(path).read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[str(row["id"])] = row
    log = open(path, "a") if path else None

    def on_case(i, row):
        if log:
            log.write(json.dumps(row) + "\n")
            log.flush()
        if not quiet:
            print(printable(f"{i + 1}/{total} {'ok ' if row['valid'] else 'BAD'} {row['seconds']:5.1f}s "
                            f"pred={row['pred']} gold={row['gold']}"), file=sys.stderr)

    return done, on_case
