"""Batch runs: one workflow, one run per row of a table (CSV or JSONL), all rows at once.

Every row is an ordinary run into its own folder (OUT/row-0001, ...) through one shared executor,
so one runner (threads or Ray) gets the steps of every row and independent steps of different
rows overlap. A row that fails, for bad input or while running, is that row's status; the others
go on. A row whose folder already holds a succeeded run of the same workflow and values is
`done` and not run again; a row run again (changed, or failed before) still gets its unchanged
steps from the step cache. The summary (row, status, outputs, seconds, error) is written as
batch.csv and batch.json in OUT.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import CadenzaError, CancelledError, InputError, one_line
from ..media import to_jsonable
from ..tools.types import is_media_tag
from ..workspace import Workspace, make_out_dir
from .outdir import atomic_write_text
from .plan import Plan

MAX_ROWS_AT_ONCE = 64  # rows whose runs are open together; their steps share the runner's slots


@dataclass
class RowResult:
    row: int  # 1-based, as a person counts the table's rows
    status: str  # succeeded | failed | cancelled | done (already done by an earlier batch run)
    outputs: dict[str, Any]
    seconds: float
    error: str | None
    out_dir: str


def read_table(path: str | Path, plan: Plan, defaults: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows of a CSV (text values, read by the input's type later) or JSONL table; its columns
    must be the workflow's inputs, and every required input without a default (or a value in
    `defaults`) a column. Relative media paths start at the table's folder."""
    p = Path(path)
    defaults = defaults or {}
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"batch table {path}: cannot be read ({getattr(e, 'strerror', None) or e})") from None
    if p.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        columns = [c.strip() for c in reader.fieldnames or []]
        rows = [{c.strip(): v for c, v in r.items() if c is not None and v not in (None, "")} for r in reader]
    elif p.suffix.lower() in (".jsonl", ".ndjson"):
        rows, columns = [], []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"batch table {path} line {n}: not JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"batch table {path} line {n}: expected an object of input values")
            rows.append(row)
            columns += [c for c in row if c not in columns]
    else:
        raise InputError(f"batch table {path}: expected a .csv or .jsonl file")
    if not rows:
        raise InputError(f"batch table {path} is empty (no rows)")
    unknown = [c for c in columns if c not in plan.inputs]
    if unknown:
        raise InputError(f"batch table {path}: unknown column '{unknown[0]}' "
                         f"(the workflow's inputs: {', '.join(plan.inputs) or 'none'})")
    for name, spec in plan.inputs.items():
        if spec.is_required and spec.default is None and name not in columns and name not in defaults:
            raise InputError(f"batch table {path}: missing column '{name}' (a required {spec.type} input)")
    base = p.resolve().parent
    for row in rows:
        for name, value in row.items():
            if is_media_tag(plan.inputs[name].type):
                row[name] = [_anchor(v, base) for v in value] if isinstance(value, list) else _anchor(value, base)
    return rows


def _anchor(value: Any, base: Path) -> Any:
    relative = isinstance(value, str) and value and not Path(value).expanduser().is_absolute()
    return os.path.normpath(base / value) if relative else value


def run_batch(executor, plan: Plan, rows: list[dict[str, Any]], out: str | Path, *, defaults: dict[str, Any] | None = None,
              roots: list[Path] = (), cancel: threading.Event | None = None,
              on_row: Callable[[RowResult], None] | None = None,
              finish: Callable[[Any, Workspace], dict[str, Any]] | None = None) -> list[RowResult]:
    """Run every row (see the module's text); returns the rows' results in table order and writes
    the summary. Ctrl-C in the calling thread cancels every open row's run. `finish(result, ws)`,
    when given, runs after each row's run (a failed one too) and returns the outputs to show, as
    for a single run (dubbing copies its dub_lines.json into the row's folder)."""
    from .workflow import media_inputs, parse_input_value

    runner = executor.runner()  # one runner for every row, made (connected) before any row or folder
    out_dir = make_out_dir(out)
    check = getattr(runner, "check_workspace", None)
    if check is not None:  # once for the batch's folder: the rows' folders are inside it
        check(Workspace(out_dir))
    cancel = cancel or threading.Event()
    fingerprint = hashlib.sha256(json.dumps(plan.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
    results: list[RowResult | None] = [None] * len(rows)

    def one(i: int, row: dict[str, Any]) -> RowResult:
        row_dir = out_dir / f"row-{i:04d}"
        started = time.monotonic()
        if cancel.is_set():  # a row whose turn came after Ctrl-C
            return RowResult(i, "cancelled", {}, 0.0, "not started: batch cancelled", str(row_dir))
        given = {**(defaults or {}), **row}
        marker = {"workflow": fingerprint, "inputs": to_jsonable(given)}
        done = _already_done(row_dir, marker)
        if done is not None:
            return RowResult(i, "done", done, 0.0, None, str(row_dir))
        try:
            inputs = {k: parse_input_value(v, plan.inputs[k].type, f"row {i} column '{k}'")
                      if isinstance(v, str) else v for k, v in given.items()}
            ws = Workspace.for_run(row_dir, media_inputs(plan, inputs), roots=list(roots))
            result = executor.run(plan, inputs, ws, record={"batch_row": i}, cancel=cancel)
            shown = finish(result, ws) if finish is not None else result.outputs
        except CancelledError:
            return RowResult(i, "cancelled", {}, time.monotonic() - started, "cancelled", str(row_dir))
        except CadenzaError as e:  # this row's input (a missing file): this row fails, the others go on
            return RowResult(i, "failed", {}, time.monotonic() - started, one_line(e), str(row_dir))
        except Exception as e:  # noqa: BLE001 - a bug in one row must not take the batch down
            if cancel.is_set():
                return RowResult(i, "cancelled", {}, time.monotonic() - started, "cancelled", str(row_dir))
            return RowResult(i, "failed", {}, time.monotonic() - started, f"{type(e).__name__}: {one_line(e)}",
                             str(row_dir))
        if result.ok:  # what a re-run of the batch finds: this row is done, with these outputs
            (row_dir / ".cadenza").mkdir(parents=True, exist_ok=True)
            atomic_write_text(row_dir / ".cadenza" / "batch_row.json",
                              json.dumps({**marker, "outputs": to_jsonable(shown)}, sort_keys=True, default=str))
        errors = result.errors()
        return RowResult(i, result.status, to_jsonable(shown), round(result.seconds, 3),
                         errors[0] if errors else None, str(row_dir))

    pool = ThreadPoolExecutor(min(len(rows), MAX_ROWS_AT_ONCE), thread_name_prefix="cadenza-row")
    futures = {pool.submit(one, i, row): i for i, row in enumerate(rows, 1)}
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2)  # short waits: Ctrl-C reaches this thread
            for f in done:
                results[futures[f] - 1] = f.result()
                if on_row is not None:
                    on_row(results[futures[f] - 1])
    except KeyboardInterrupt:
        cancel.set()  # every open run stops as on Ctrl-C; rows not started are cancelled
        for f, i in futures.items():
            if f.cancel():
                results[i - 1] = RowResult(i, "cancelled", {}, 0.0, "not started: batch cancelled",
                                           str(out_dir / f"row-{i:04d}"))
        for f, i in futures.items():
            if results[i - 1] is None:
                results[i - 1] = f.result()
    finally:
        pool.shutdown(wait=True)
        write_summary(out_dir, [r for r in results if r is not None])
    return results  # type: ignore[return-value]


def _already_done(row_dir: Path, marker: dict[str, Any]) -> dict[str, Any] | None:
    """The outputs of this row's earlier run, if it succeeded with the same workflow and values and
    its output files are still there; else None."""
    try:
        done = json.loads((row_dir / ".cadenza" / "batch_row.json").read_text())
        run = json.loads((row_dir / "run.json").read_text())
    except (OSError, ValueError):
        return None
    same = {k: done.get(k) for k in marker} == json.loads(json.dumps(marker, sort_keys=True))
    if not same or run.get("status") != "succeeded":
        return None
    outputs = done.get("outputs", run.get("outputs") or {})
    files = [v["path"] if isinstance(v, dict) else v for v in _walk(outputs)
             if (isinstance(v, dict) and "path" in v) or (isinstance(v, str) and os.path.isabs(v))]
    return outputs if all(Path(f).exists() for f in files) else None


def _walk(value: Any):
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def write_summary(out_dir: Path, results: list[RowResult]) -> tuple[Path, Path]:
    """batch.json (the rows as objects) and batch.csv (outputs as JSON text), replaced whole."""
    rows = [{**asdict(r), "seconds": round(r.seconds, 3)} for r in results]
    atomic_write_text(out_dir / "batch.json", json.dumps({"rows": rows, "counts": count(results)}, indent=2,
                                                          default=str))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["row", "status", "outputs", "seconds", "error", "out_dir"])
    for r in rows:
        w.writerow([r["row"], r["status"], json.dumps(r["outputs"], default=str), r["seconds"], r["error"] or "",
                    r["out_dir"]])
    atomic_write_text(out_dir / "batch.csv", buf.getvalue())
    return out_dir / "batch.csv", out_dir / "batch.json"


def count(results: list[RowResult]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in results:
        out[r.status] = out.get(r.status, 0) + 1
    return out


def batch_exit_code(results: list[RowResult]) -> int:
    statuses = {r.status for r in results}
    if "cancelled" in statuses:
        return 130
    return 0 if statuses <= {"succeeded", "done"} else 1
