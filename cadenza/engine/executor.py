"""The executor: runs a validated plan as a DAG.

- Independent steps run concurrently (through a `StepRunner`, a thread pool by default).
- Steps whose backend needs the GPU are serialized per device.
- Each step has a timeout and bounded retries for `TransientError`.
- A failed step skips its dependents; independent branches still finish; files
  already produced stay where they are.
- Ctrl-C cancels cleanly: running steps are told to stop, run.json says so.
- Every run writes `run.json` atomically in its output folder.
- Step results are cached by tool, backend, version, arguments and input content.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import (CadenzaError, CancelledError, InputError, StepTimeoutError, TransientError, one_line)
from ..media import to_jsonable
from ..runtime import ModelRuntime, get_runtime
from ..tools.args import convert_args, convert_value, tag_annotation
from ..tools.base import Tool, ToolContext
from ..tools.registry import Registry, default_registry
from ..workspace import Workspace
from .cache import StepCache, cache_key
from ..tools.types import is_media_tag
from .plan import Plan, Step, iter_refs, parse_ref, step_dependencies, unescape
from .runners import StepRunner, ThreadRunner
from .validate import check_plan

RUN_JSON_INTERVAL_S = 0.5  # how often run.json is refreshed while steps succeed


@dataclass
class Event:
    """A progress event, handed to the `on_event` callback from the scheduling thread."""

    kind: str  # run_started | step_started | step_finished | step_cached | step_failed | step_skipped | run_finished
    step_id: str | None = None
    tool: str | None = None
    seconds: float | None = None
    error: str | None = None
    status: str | None = None
    total: int = 0


@dataclass
class StepRecord:
    id: str
    tool: str
    status: str = "pending"  # pending running succeeded cached failed skipped cancelled
    backend: str | None = None
    args: Any = None
    outputs: Any = None
    error: str | None = None
    error_kind: str | None = None  # "input" (bad input, exit 2) or "runtime" (exit 1)
    traceback: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    seconds: float | None = None
    attempts: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    status: str  # succeeded | failed | cancelled
    steps: dict[str, StepRecord]
    outputs: dict[str, Any]
    out_dir: Path
    run_json: Path
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def errors(self) -> list[str]:
        return [f"step '{r.id}' ({r.tool}): {r.error}" for r in self.steps.values() if r.status == "failed"]

    @property
    def exit_code(self) -> int:
        if self.ok:
            return 0
        if self.status == "cancelled":
            return 130
        failed = [r for r in self.steps.values() if r.status == "failed"]
        return 2 if failed and all(r.error_kind == "input" for r in failed) else 1


@dataclass
class _Outcome:
    outputs: dict[str, Any]
    args: dict[str, Any]
    backend: str
    attempts: int
    cached: bool
    notes: list[str]


class Executor:
    def __init__(self, registry: Registry | None = None, *, runner: Callable[[], StepRunner] | None = None,
                 cache: StepCache | bool | None = True, on_event: Callable[[Event], None] | None = None,
                 timeout: float | None = None, retries: int = 2, retry_backoff: float = 0.5,
                 runtime: ModelRuntime | None = None):
        self.registry = registry or default_registry()
        self.runner_factory = runner or ThreadRunner
        self.cache = StepCache() if cache is True else (cache or None)
        self.on_event = on_event
        self.timeout = timeout
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.runtime = runtime or get_runtime()
        self._runner: StepRunner | None = None

    def runner(self) -> StepRunner:
        """One runner (thread pool) for the executor's life: starting threads per run is slow."""
        if self._runner is None:
            self._runner = self.runner_factory()
        return self._runner

    def close(self) -> None:
        if self._runner is not None:
            self._runner.shutdown(wait=False)
            self._runner = None

    def run(self, plan: Plan, inputs: dict[str, Any] | None, workspace: Workspace,
            record: dict[str, Any] | None = None) -> RunResult:
        """Validate, check the inputs (nothing runs if either fails), then execute.
        `record` is extra data for run.json (the agent's request and planning history)."""
        check_plan(plan, self.registry)
        values = resolve_inputs(plan, inputs or {}, workspace)
        self.check_literal_files(plan, workspace)
        return _Run(self, plan, values, workspace, record or {}).execute()

    def check_literal_files(self, plan: Plan, ws: Workspace) -> None:
        """Files named literally in the plan must exist, be allowed and decode, before anything runs."""
        for step in plan.steps:
            tool = self.registry.get(step.tool)
            for name, value in step.args.items():
                p = tool.params.get(name)
                if p is not None and is_media_tag(p.tag) and not any(True for _ in iter_refs(value)):
                    convert_value(p.annotation, value, ws, f"step '{step.id}' argument '{name}'")


def resolve_inputs(plan: Plan, given: dict[str, Any], ws: Workspace) -> dict[str, Any]:
    """Workflow input values, converted and checked (files exist, are allowed, decode)."""
    unknown = set(given) - set(plan.inputs)
    if unknown:
        raise InputError(f"unknown input '{sorted(unknown)[0]}' (the plan takes: {', '.join(plan.inputs) or 'none'})")
    values = {}
    for name, spec in plan.inputs.items():
        if name in given:
            raw = given[name]
        elif spec.default is not None:
            raw = spec.default
        elif spec.is_required:
            raise InputError(f"missing input '{name}' ({spec.type})")
        else:
            continue
        values[name] = convert_value(tag_annotation(spec.type), raw, ws, f"input '{name}'")
    return values


class _Run:
    """The state of one execution; lives for one `Executor.run` call."""

    def __init__(self, ex: Executor, plan: Plan, values: dict[str, Any], ws: Workspace, record: dict[str, Any]):
        self.ex, self.plan, self.values, self.ws, self.record = ex, plan, values, ws, record
        self.steps = {s.id: s for s in plan.steps}
        self.tools = {s.id: ex.registry.get(s.tool) for s in plan.steps}
        ids = set(self.steps)
        self.deps = {s.id: step_dependencies(s, ids) for s in plan.steps}
        self.dependents: dict[str, list[str]] = {i: [] for i in ids}
        for i, ds in self.deps.items():
            for d in ds:
                self.dependents[d].append(i)
        self.waiting = {i: len(ds) for i, ds in self.deps.items()}
        self.records = {s.id: StepRecord(s.id, s.tool) for s in plan.steps}
        self.results: dict[str, dict[str, Any]] = {}
        self.ready = [s.id for s in plan.steps if not self.deps[s.id]]
        self.running: dict[Future, str] = {}
        self.abandoned: dict[Future, str | None] = {}  # timed-out futures -> device they still hold
        self.busy_devices: set[str] = set()
        self.step_device: dict[str, str | None] = {}
        self.deadlines: dict[str, float] = {}
        self.cancel_events = {i: threading.Event() for i in ids}
        self.run_json = ws.out_dir / "run.json"
        self.started = time.time()
        self.status = "running"
        self._last_write = 0.0

    # -- main loop -------------------------------------------------------------------
    def execute(self) -> RunResult:
        self.write_run_json(force=True)
        self.emit(Event("run_started", total=len(self.steps)))
        runner = self.ex.runner()
        try:
            while self.ready or self.running:
                self.launch_ready(runner)
                self.write_run_json()  # after launching: the refresh never delays a ready step
                if not self.running and not self.abandoned:
                    break
                done, _ = wait(list(self.running) + list(self.abandoned), timeout=self.next_deadline(),
                               return_when=FIRST_COMPLETED)
                for f in done:
                    self.finish(f)
                self.expire_deadlines()
            self.status = "failed" if any(r.status == "failed" for r in self.records.values()) else "succeeded"
        except KeyboardInterrupt:
            self.cancel_all()
            self.status = "cancelled"
            self.ex.close()  # drop queued work; running threads see their cancel event
        outputs = self.collect_outputs()
        self.write_run_json(force=True, outputs=outputs)
        self.emit(Event("run_finished", status=self.status, seconds=time.time() - self.started))
        result = RunResult(self.status, self.records, outputs, self.ws.out_dir, self.run_json, time.time() - self.started)
        if self.status == "cancelled":
            raise CancelledError(f"run cancelled; finished outputs kept in {self.ws.out_dir}")
        return result

    def launch_ready(self, runner: StepRunner) -> None:
        still_waiting = []
        for sid in self.ready:
            step, tool = self.steps[sid], self.tools[sid]
            rec = self.records[sid]
            try:
                backend = tool.get_backend(step.backend)
            except CadenzaError as e:
                self.fail(sid, e)
                continue
            device = self.ex.runtime.device if backend.heavy else None
            if device is not None and device in self.busy_devices:
                still_waiting.append(sid)  # one heavy step per device at a time
                continue
            if device is not None:
                self.busy_devices.add(device)
            self.step_device[sid] = device
            raw_args = {k: self.resolve(v) for k, v in step.args.items()}
            rec.status, rec.backend, rec.started_at = "running", backend.name, time.time()
            timeout = step.timeout or self.ex.timeout
            if timeout:
                self.deadlines[sid] = time.monotonic() + timeout
            self.emit(Event("step_started", sid, tool.name))
            fut = runner.submit(lambda s=step, t=tool, b=backend.name, a=raw_args: self.run_step(s, t, b, a))
            self.running[fut] = sid
        self.ready = still_waiting

    def next_deadline(self) -> float | None:
        live = [self.deadlines[s] for s in self.running.values() if s in self.deadlines]
        return max(0.0, min(live) - time.monotonic()) if live else None

    # -- one step, in a worker thread ------------------------------------------------
    def run_step(self, step: Step, tool: Tool, backend: str, raw_args: dict[str, Any]) -> _Outcome:
        ctx = ToolContext(self.ws, step.id, backend, self.ex.runtime, self.cancel_events[step.id])
        args = convert_args(tool, raw_args, self.ws, where=f"step '{step.id}'")
        cache = self.ex.cache if tool.cacheable else None
        key = cache_key(tool.name, backend, tool.version, args) if cache else None
        stems = {n: step.id if len(tool.outputs) == 1 else f"{step.id}-{n}" for n in tool.outputs}
        if cache:
            hit = cache.get(key, tool.output_annotations, self.ws.out_dir, stems)
            if hit is not None:
                return _Outcome(hit, args, backend, 0, True, [])
        retries = step.retries if step.retries is not None else self.ex.retries
        attempt = 0
        while True:
            attempt += 1
            try:
                outputs = tool.invoke(dict(args), ctx)
                break
            except TransientError:
                if attempt > retries or ctx.cancelled.is_set():
                    raise
                time.sleep(self.ex.retry_backoff * 2 ** (attempt - 1))
        outputs = {n: self.ws.finalize_value(v, stems[n]) for n, v in outputs.items()}
        if cache:
            cache.put(key, outputs)
        return _Outcome(outputs, args, backend, attempt, False, ctx.notes)

    # -- bookkeeping, in the scheduling thread -----------------------------------------
    def finish(self, fut: Future) -> None:
        if fut in self.abandoned:
            device = self.abandoned.pop(fut)
            self.busy_devices.discard(device)
            return
        sid = self.running.pop(fut)
        self.busy_devices.discard(self.step_device.get(sid))
        self.deadlines.pop(sid, None)
        rec = self.records[sid]
        try:
            out = fut.result()
        except BaseException as e:  # noqa: BLE001 - a step's failure is data, not a crash
            self.fail(sid, e)
            return
        rec.finished_at = time.time()
        rec.seconds = rec.finished_at - rec.started_at
        rec.status = "cached" if out.cached else "succeeded"
        rec.attempts, rec.notes = out.attempts, out.notes
        rec.args, rec.outputs = to_jsonable(out.args), to_jsonable(out.outputs)
        self.results[sid] = out.outputs
        self.emit(Event("step_cached" if out.cached else "step_finished", sid, rec.tool, rec.seconds))
        for d in self.dependents[sid]:
            self.waiting[d] -= 1
            if self.waiting[d] == 0 and self.records[d].status == "pending":
                self.ready.append(d)

    def fail(self, sid: str, err: BaseException) -> None:
        rec = self.records[sid]
        rec.status = "failed"
        rec.finished_at = time.time()
        rec.seconds = rec.finished_at - rec.started_at if rec.started_at else 0.0
        rec.error_kind = "input" if isinstance(err, InputError) else "runtime"
        if isinstance(err, CadenzaError):
            rec.error = one_line(err)
        else:  # a bug in a tool: keep the traceback for whoever debugs it
            rec.error = f"{type(err).__name__}: {one_line(err)}"
            rec.traceback = "".join(traceback.format_exception(err))
        self.emit(Event("step_failed", sid, rec.tool, rec.seconds, error=rec.error))
        self.skip_dependents(sid, f"skipped: step '{sid}' failed")
        self.write_run_json(force=True)

    def skip_dependents(self, sid: str, why: str) -> None:
        for d in self.dependents[sid]:
            rec = self.records[d]
            if rec.status == "pending":
                rec.status, rec.error = "skipped", why
                self.emit(Event("step_skipped", d, rec.tool, error=why))
                self.skip_dependents(d, why)
        self.ready = [r for r in self.ready if self.records[r].status == "pending"]

    def expire_deadlines(self) -> None:
        now = time.monotonic()
        for fut, sid in list(self.running.items()):
            if sid in self.deadlines and now >= self.deadlines[sid]:
                del self.running[fut]
                self.cancel_events[sid].set()  # a cooperative tool stops; others are left to finish unseen
                self.abandoned[fut] = self.step_device.get(sid)
                timeout = self.steps[sid].timeout or self.ex.timeout
                self.fail(sid, StepTimeoutError(f"step '{sid}' timed out after {timeout:g}s"))

    def cancel_all(self) -> None:
        for ev in self.cancel_events.values():
            ev.set()
        for sid in list(self.running.values()):
            rec = self.records[sid]
            rec.status, rec.error = "cancelled", "cancelled by user"
        for rec in self.records.values():
            if rec.status == "pending":
                rec.status, rec.error = "cancelled", "not started: run cancelled"

    # -- values ----------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        ref = parse_ref(value)
        if ref is not None:
            if ref.source in self.values:
                return self.values[ref.source]
            outs = self.results[ref.source]
            if ref.field is None:
                if len(outs) == 1:
                    return next(iter(outs.values()))
                return _whole(self.tools[ref.source], outs)
            return outs[ref.field]
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return unescape(value)

    def collect_outputs(self) -> dict[str, Any]:
        named = self.plan.outputs or _leaf_outputs(self.plan, self.dependents)
        out = {}
        for name, ref_text in named.items():
            ref = parse_ref(ref_text)
            if ref.source in self.values or ref.source in self.results:
                out[name] = self.resolve(ref_text)
        return out

    # -- reporting ---------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        if self.ex.on_event is not None:
            self.ex.on_event(event)

    def write_run_json(self, force: bool = False, outputs: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < RUN_JSON_INTERVAL_S:
            return
        self._last_write = now
        doc = {
            "cadenza_run": 1,
            "status": self.status,
            "started_at": self.started,
            "seconds": round(time.time() - self.started, 4),
            "out_dir": str(self.ws.out_dir),
            "plan": self.plan.model_dump(mode="json", exclude_none=True),
            "inputs": to_jsonable(self.values),
            "steps": [dict(vars(r)) for r in self.records.values()],  # shallow: asdict deep-copies
            "outputs": to_jsonable(outputs) if outputs is not None else None,
            **self.record,
        }
        # Compact while running (indent=2 falls back to the slow pure-Python encoder); pretty at the end.
        final = outputs is not None
        atomic_write_text(self.run_json, json.dumps(doc, indent=2 if final else None, default=str))


def _whole(tool: Tool, outs: dict[str, Any]) -> Any:
    model = tool.return_annotation
    return model(**outs) if tool.whole_output_tag else outs


def _leaf_outputs(plan: Plan, dependents: dict[str, list[str]]) -> dict[str, str]:
    return {s.id: f"${s.id}" for s in plan.steps if not dependents[s.id]}


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


__all__ = ["Executor", "Event", "RunResult", "StepRecord", "resolve_inputs", "atomic_write_text"]
