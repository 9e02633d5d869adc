"""Running a plan for the command line: one run with its outputs printed, or one run per row of a
--batch table with a summary at the end.

Split from cli.py, which builds the parser and turns each command's flags into a plan: `tools run`,
`workflow run` and `dub` hand their plan to this module, and `run` and `chat` take their --runner
from it, so how a run is shown and what it exits with is said once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .errors import CadenzaError, printable
from .workspace import Workspace


def execute_plan(args, plan, inputs: dict[str, Any], ws: "Workspace", finish=None) -> int:
    """Run `plan` and print its outputs (one JSON object with --json). `finish(result)`, when given,
    runs after the run, a failed one too (so what it keeps is never lost), and returns the outputs
    to show in place of the run's."""
    from .engine.executor import Executor
    from .progress import ProgressDisplay
    from .runtime import get_runtime

    if args.device:
        get_runtime().device = args.device
    with ProgressDisplay(enabled=not args.json or sys.stderr.isatty()) as progress:
        ex = Executor(on_event=progress.on_event, cache=not args.no_cache, timeout=args.timeout,
                      runner=runner_factory(args))
        try:
            result = ex.run(plan, inputs, ws)
        except CadenzaError:  # refused before any step ran: no empty output folder is left behind
            ws.discard_if_unused()
            raise
        finally:
            ex.close()
    from .media import to_jsonable

    if finish is not None:
        result.outputs = finish(result)

    if args.json:
        doc = {"status": result.status, "outputs": to_jsonable(result.outputs),
               "steps": {r.id: r.status for r in result.steps.values()},
               "notes": {r.id: r.notes for r in result.steps.values() if r.notes},
               "errors": result.errors(), "run_json": str(result.run_json)}
        if result.errors():
            doc.update(error=result.errors()[0], exit_code=result.exit_code)
        print(json.dumps(doc, default=str))
    else:
        for r in result.steps.values():  # what a tool chose or could not do (a fallback voice, a cut line)
            for n in r.notes:
                print(printable(f"note: step '{r.id}': {n}"), file=sys.stderr)
        for name, value in result.outputs.items():
            print(printable(f"{name}: {show_value(value)}"))
        print(printable(f"run record: {result.run_json}"), file=sys.stderr)
    for err in result.errors():
        print(f"error: {printable(err)}", file=sys.stderr)
    if result.record_problem:
        print(f"warning: {printable(result.record_problem)}", file=sys.stderr)
    return result.exit_code


def runner_factory(args):
    """What --runner (or CADENZA_RUNNER, or the config file) asks for, made when the run starts."""
    from .engine.runners import make_runner, runner_spec

    spec = runner_spec(getattr(args, "runner", None))  # a bad config file or value: said now
    return lambda: make_runner(spec)


def execute_batch(args, plan, defaults: dict[str, Any], roots: list[Path], finish=None) -> int:
    """One run per row of --batch; one line per finished row on stderr, the summary table at the end."""
    from .engine.batch import batch_exit_code, count, read_table, run_batch
    from .engine.executor import Executor
    from .runtime import get_runtime

    if args.device:
        get_runtime().device = args.device
    rows = read_table(args.batch, plan, defaults)  # a missing or unknown column, no rows: exit 2 before any run
    ex = Executor(cache=not args.no_cache, timeout=args.timeout, runner=runner_factory(args))

    def on_row(r) -> None:
        if not args.json:
            extra = f": {r.error}" if r.error else ""
            print(printable(f"row {r.row}: {r.status} ({r.seconds:.1f}s){extra}"), file=sys.stderr)

    try:
        results = run_batch(ex, plan, rows, args.out, defaults=defaults, roots=roots, on_row=on_row, finish=finish)
    finally:
        ex.close()
    code = batch_exit_code(results)
    summary = Path(args.out).resolve()
    if args.json:
        print(json.dumps({"status": "succeeded" if code == 0 else "cancelled" if code == 130 else "failed",
                          "counts": count(results), "rows": [vars(r) for r in results],
                          "summary_csv": str(summary / "batch.csv"), "summary_json": str(summary / "batch.json")},
                         default=str))
    else:
        counts = ", ".join(f"{n} {s}" for s, n in count(results).items())
        print(printable(f"{len(results)} rows: {counts}; summary: {summary / 'batch.csv'}"))
    return code


def show_value(value: Any) -> str:
    from .media import Media, to_jsonable

    if isinstance(value, Media):
        return str(value.path)
    if isinstance(value, list) and all(isinstance(v, Media) for v in value):
        return " ".join(str(v.path) for v in value)
    # structured values (scenes, segments, a report) as JSON, not as Python's repr of them
    return json.dumps(to_jsonable(value), default=str, ensure_ascii=False) if not isinstance(value, str) else value
