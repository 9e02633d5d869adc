"""The executor: runs a validated plan as a DAG.

- Independent steps run concurrently (through a `StepRunner`, a thread pool by default).
- Steps whose backend needs the GPU are serialized per device.
- Each step has a timeout and bounded retries for `TransientError`.
- A failed step skips its dependents; independent branches still finish; files
  already produced stay where they are.
- Ctrl-C cancels cleanly: running steps are told to stop (a thread at its next
  `ctx.check_cancelled()`, a process-isolated tool by killing its worker), run.json says so.
- A cancelled or timed-out step's result is discarded, never written to the output
  folder or the cache: a step commits its outputs under a lock that cancelling also
  takes, so each step is either committed (and recorded as such) or discarded.
- Every run holds a lock on its output folder and writes `run.json` atomically there;
  when someone listens to events, a step's final state is on disk before its event is reported.
- Step results are cached by tool, backend, version, arguments and input content.
- With a remote runner (Ray: engine/ray_runner.py) only the tool call leaves this process: the
  cache, retries, timeouts and the commit above run here as with threads.

This module schedules the steps, from one thread, and keeps run.json; what a worker does with one
step (the cache, the call, retries, the commit) is in step_worker.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import CadenzaError, CancelledError, InputError, StepTimeoutError, one_line
from ..media import media_field, to_jsonable
from ..runtime import ModelRuntime, get_runtime
from ..tools.args import convert_value, tag_annotation
from ..tools.base import Tool
from ..tools.registry import Registry, default_registry
from ..tools.types import is_media_tag, local_path
from ..workspace import Workspace
from .cache import StepCache
from .outdir import RecordWriter, RunLock
from .plan import Plan, iter_refs, parse_ref, step_dependencies, unescape
from .runners import StepRunner, ThreadRunner, make_runner
from .step_worker import StepOutcome, StepWorker
from .validate import check_plan

RUN_JSON_INTERVAL_S = 0.5  # how often run.json is refreshed while steps succeed
CANCEL_POLL_S = 0.05  # how often a run that can be stopped from outside (a sub-run) looks


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
    record_problem: str | None = None  # run.json could not be updated (a full disk): why

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def errors(self) -> list[str]:
        """One line a failed step: "step 'n' (normalize_audio): ..." (a message that already starts
        with the step, as an argument's does, is not given the step twice)."""
        out = []
        for r in self.steps.values():
            if r.status == "failed":
                head = f"step '{r.id}'"
                rest = r.error[len(head):] if (r.error or "").startswith(head + " ") else f": {r.error}"
                out.append(f"{head} ({r.tool}){rest}")
        return out

    @property
    def exit_code(self) -> int:
        if self.ok:
            return 0
        if self.status == "cancelled":
            return 130
        failed = [r for r in self.steps.values() if r.status == "failed"]
        return 2 if failed and all(r.error_kind == "input" for r in failed) else 1


class Executor:
    def __init__(self, registry: Registry | None = None, *,
                 runner: Callable[[], StepRunner] | StepRunner | str | None = None,
                 cache: StepCache | bool | None = True, on_event: Callable[[Event], None] | None = None,
                 timeout: float | None = None, retries: int = 2, retry_backoff: float = 0.5,
                 runtime: ModelRuntime | None = None):
        self.registry = registry or default_registry()
        if isinstance(runner, str):  # "threads", "ray", "ray://HOST:PORT": connect now, before any run
            runner = make_runner(runner)
        # A runner handed in (not a factory, such as a class) may serve other executors: not ours to shut
        self._owns_runner = isinstance(runner, type) or not hasattr(runner, "submit")
        self.runner_factory = (lambda r=runner: r) if not self._owns_runner else (runner or ThreadRunner)
        self.cache = StepCache() if cache is True else (cache or None)
        self.on_event = on_event
        self.timeout = timeout
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.runtime = runtime or get_runtime()
        self._runner: StepRunner | None = None
        self._runner_lock = threading.Lock()  # runs of a batch share one executor, hence one runner

    def runner(self) -> StepRunner:
        """One runner (thread pool) for the executor's life: starting threads per run is slow."""
        with self._runner_lock:
            if self._runner is None:
                self._runner = self.runner_factory()
            return self._runner

    def close(self) -> None:
        if self._runner is not None:
            if self._owns_runner:
                self._runner.shutdown(wait=False)
            self._runner = None

    def run(self, plan: Plan, inputs: dict[str, Any] | None, workspace: Workspace,
            record: dict[str, Any] | None = None, cancel: threading.Event | None = None) -> RunResult:
        """Validate, check the inputs (nothing runs if either fails), take the output folder's
        lock (a second run into it is refused), then execute. `record` is extra data for
        run.json (the agent's request and planning history). `cancel`, when set, stops the run as
        Ctrl-C does (a sub-run inside a step that is cancelled or times out)."""
        check_plan(plan, self.registry)
        values = resolve_inputs(plan, inputs or {}, workspace)
        self.check_literal_files(plan, workspace)
        check_workspace = getattr(self.runner(), "check_workspace", None)
        if check_workspace is not None:  # a cluster's nodes must see the files: said before anything runs
            check_workspace(workspace, _input_files(values))
        lock = RunLock(workspace.out_dir).acquire()
        try:
            return _Run(self, plan, values, workspace, record or {}, cancel).execute()
        finally:
            lock.release()

    def check_literal_files(self, plan: Plan, ws: Workspace) -> None:
        """Files named literally in the plan (media, and models or voices given by path) must exist, be
        allowed and decode, before anything runs."""
        for step in plan.steps:
            tool = self.registry.get(step.tool)
            for name, value in step.args.items():
                p = tool.params.get(name)
                if p is not None and (is_media_tag(p.tag) or local_path(p.annotation)) \
                        and not any(True for _ in iter_refs(value)):
                    convert_value(p.annotation, _unescaped(value), ws, f"step '{step.id}' argument '{name}'")


def _input_files(values: dict[str, Any]) -> list[Path]:
    """The files among a run's input values (media and paths), which a remote worker must see too."""
    out = []
    for v in values.values():
        for x in v if isinstance(v, list) else [v]:
            p = getattr(x, "path", x)
            if isinstance(p, Path) or (isinstance(p, str) and os.path.isabs(p) and os.path.exists(p)):
                out.append(Path(p))
    return out


def _unescaped(value: Any) -> Any:
    """A literal as the tool will get it (`$$x` is the text `$x`), lists included."""
    return [_unescaped(v) for v in value] if isinstance(value, list) else unescape(value)


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

    def __init__(self, ex: Executor, plan: Plan, values: dict[str, Any], ws: Workspace, record: dict[str, Any],
                 cancel: threading.Event | None = None):
        self.ex, self.plan, self.values, self.ws, self.record = ex, plan, values, ws, record
        self.cancel = cancel
        self.worker: StepWorker | None = None  # set when execution starts (it needs the runner)
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
        # A step's outputs go into the output folder and the cache only under this lock, and only
        # if its cancel event is not set; cancelling sets the events under the same lock. So a step
        # is either committed (in `committed`, its files on disk) or its result is discarded.
        self.commit_lock = threading.Lock()
        self.committed: dict[str, StepOutcome] = {}
        self.events: list[Event] = []  # reported once run.json holds the state they report
        self.run_json = ws.out_dir / "run.json"
        self.writer = RecordWriter(self.run_json, steps=len(plan.steps))
        self.started = time.time()
        self.status = "running"
        self._last_write = 0.0
        self._static: str | None = None  # plan, inputs and record, serialized once
        self._step_cache: dict[str, tuple[tuple, str]] = {}  # step id -> (what it was made from, its JSON)

    # -- main loop -------------------------------------------------------------------
    def execute(self) -> RunResult:
        self.write_run_json(force=True)
        self.emit(Event("run_started", total=len(self.steps)))
        runner = self.ex.runner()
        self.worker = StepWorker(self.ex, self.ws, runner, self.cancel_events, self.commit_lock, self.committed)
        try:
            while self.ready or self.running:
                self.launch_ready(runner)
                self.report()  # after launching: the refresh never delays a ready step
                if not self.running and not self.abandoned:
                    break
                done, _ = wait(list(self.running) + list(self.abandoned), timeout=self.wait_timeout(),
                               return_when=FIRST_COMPLETED)
                for f in done:
                    self.finish(f)
                self.expire_deadlines()
                self.report()
                if self.cancel is not None and self.cancel.is_set():
                    raise KeyboardInterrupt  # stopped from outside: the same path as Ctrl-C
            if self.cancel is not None and self.cancel.is_set():
                raise KeyboardInterrupt
            self.status = "failed" if any(r.status == "failed" for r in self.records.values()) else "succeeded"
        except KeyboardInterrupt:
            with _sigint_ignored():  # a second Ctrl-C must not cut the record short
                self.cancel_all()
                self.status = "cancelled"
                self.ex.close()  # drop queued work; running steps see their cancel event
                return self.conclude()
        return self.conclude()

    def conclude(self) -> RunResult:
        """The final record, then the events not yet reported, then the result."""
        outputs = self.collect_outputs()
        self.write_run_json(force=True, outputs=outputs)
        self.writer.close()
        events, self.events = self.events, []
        self.flush_events(events)
        self.emit(Event("run_finished", status=self.status, seconds=time.time() - self.started))
        left = [f for f in list(self.running) + list(self.abandoned) if not f.done()]
        _LEFT_RUNNING.update(left)  # work no thread can stop: the CLI exits without waiting for it
        result = RunResult(self.status, self.records, outputs, self.ws.out_dir, self.run_json, time.time() - self.started,
                           record_problem=self.writer.problem)
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
            places = getattr(runner, "places_devices", False)  # Ray places GPU steps itself
            device = self.ex.runtime.device if backend.heavy and not places else None
            if device is not None and device in self.busy_devices:
                still_waiting.append(sid)  # one heavy step per device at a time
                continue
            try:
                raw_args = {k: self.resolve(v) for k, v in step.args.items()}
            except CadenzaError as e:  # `$a.duration` of a file whose length is not known
                self.fail(sid, e)
                continue
            if device is not None:
                self.busy_devices.add(device)
            self.step_device[sid] = device
            rec.status, rec.backend, rec.started_at = "running", backend.name, time.time()
            timeout = step.timeout or self.ex.timeout
            if timeout:
                self.deadlines[sid] = time.monotonic() + timeout
            self.events.append(Event("step_started", sid, tool.name))
            fut = runner.submit(lambda s=step, t=tool, b=backend.name, a=raw_args: self.worker.run_step(s, t, b, a))
            self.running[fut] = sid
        self.ready = still_waiting

    def next_deadline(self) -> float | None:
        live = [self.deadlines[s] for s in self.running.values() if s in self.deadlines]
        return max(0.0, min(live) - time.monotonic()) if live else None

    def wait_timeout(self) -> float | None:
        """How long to wait for a step: until the next deadline, and at most CANCEL_POLL_S when the
        run can be stopped from outside."""
        t = self.next_deadline()
        return t if self.cancel is None else min(t if t is not None else CANCEL_POLL_S, CANCEL_POLL_S)

    # -- bookkeeping, in the scheduling thread -----------------------------------------
    def finish(self, fut: Future) -> None:
        if fut in self.abandoned:
            device = self.abandoned.pop(fut)
            self.busy_devices.discard(device)
            return
        sid = self.running.pop(fut)
        self.busy_devices.discard(self.step_device.get(sid))
        self.deadlines.pop(sid, None)
        try:
            out = fut.result()
        except BaseException as e:  # noqa: BLE001 - a step's failure is data, not a crash
            self.fail(sid, e)
            return
        self.succeed(sid, out)
        for d in self.dependents[sid]:
            self.waiting[d] -= 1
            if self.waiting[d] == 0 and self.records[d].status == "pending":
                self.ready.append(d)

    def succeed(self, sid: str, out: StepOutcome) -> None:
        rec = self.records[sid]
        rec.finished_at = time.time()
        rec.seconds = rec.finished_at - rec.started_at
        rec.status = "cached" if out.cached else "succeeded"
        rec.attempts, rec.notes = out.attempts, out.notes
        rec.args, rec.outputs = to_jsonable(out.args), to_jsonable(out.outputs)
        self.results[sid] = out.outputs
        self.events.append(Event("step_cached" if out.cached else "step_finished", sid, rec.tool, rec.seconds))

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
        self.events.append(Event("step_failed", sid, rec.tool, rec.seconds, error=rec.error))
        self.skip_dependents(sid, f"skipped: step '{sid}' failed")
        self._last_write = 0.0  # a failure is worth recording at once

    def skip_dependents(self, sid: str, why: str) -> None:
        todo = list(self.dependents[sid])  # a worklist, not recursion: chains may be thousands long
        while todo:
            d = todo.pop()
            rec = self.records[d]
            if rec.status == "pending":
                rec.status, rec.error = "skipped", why
                self.events.append(Event("step_skipped", d, rec.tool, error=why))
                todo.extend(self.dependents[d])
        self.ready = [r for r in self.ready if self.records[r].status == "pending"]

    def expire_deadlines(self) -> None:
        now = time.monotonic()
        for fut, sid in list(self.running.items()):
            if sid in self.deadlines and now >= self.deadlines[sid]:
                with self.commit_lock:
                    if sid in self.committed:  # it finished in time; its future is just completing
                        self.deadlines.pop(sid)
                        continue
                    self.cancel_events[sid].set()  # a thread stops at its next check; a worker process is killed
                del self.running[fut]
                self.abandoned[fut] = self.step_device.get(sid)
                timeout = self.steps[sid].timeout or self.ex.timeout
                self.fail(sid, StepTimeoutError(f"step '{sid}' timed out after {timeout:g}s"))

    def cancel_all(self) -> None:
        with self.commit_lock:  # from here on no step can commit
            for ev in self.cancel_events.values():
                ev.set()
        for sid, rec in self.records.items():  # by record: Ctrl-C may land between a submit and its bookkeeping
            if rec.status == "running":
                if sid in self.committed:  # its files are already in place: say so
                    self.succeed(sid, self.committed[sid])
                else:
                    rec.status, rec.error = "cancelled", "cancelled by user"
            elif rec.status == "pending":
                rec.status, rec.error = "cancelled", "not started: run cancelled"

    # -- values ----------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        ref = parse_ref(value)
        if ref is not None:
            if ref.source in self.values:
                value = self.values[ref.source]
                return value if ref.field is None else media_field(value, ref.field, str(ref))
            if ref.source in self.plan.inputs:  # an optional input with no default, not given: None
                return None
            outs = self.results[ref.source]
            if ref.field is None:
                if len(outs) == 1:
                    return next(iter(outs.values()))
                return _whole(self.tools[ref.source], outs)
            if ref.field not in outs and len(outs) == 1:  # `$s1.duration`: read off the step's one media output
                return media_field(next(iter(outs.values())), ref.field, str(ref))
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
    def report(self) -> None:
        """Write run.json, then report the events it now holds. A step's final state is on disk
        before its event goes out; with no one listening, or for events that report no final
        state (a step started), the file is refreshed at most every RUN_JSON_INTERVAL_S."""
        if not self.events:
            return
        events, self.events = self.events, []
        final = self.ex.on_event is not None and any(e.kind in _FINAL_EVENTS for e in events)
        self.write_run_json(force=final)
        self.flush_events(events)

    def flush_events(self, events: list[Event]) -> None:
        for e in events:
            self.emit(e)

    def emit(self, event: Event) -> None:
        if self.ex.on_event is not None:
            self.ex.on_event(event)

    def write_run_json(self, force: bool = False, outputs: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < RUN_JSON_INTERVAL_S:
            return
        self._last_write = now
        head = {"cadenza_run": 1, "status": self.status, "started_at": self.started,
                "seconds": round(time.time() - self.started, 4), "out_dir": str(self.ws.out_dir)}
        if outputs is not None:  # the final record: whole, pretty
            doc = {**head, "plan": self.plan.model_dump(mode="json", exclude_none=True),
                   "inputs": to_jsonable(self.values), "steps": [dict(vars(r)) for r in self.records.values()],
                   "outputs": to_jsonable(outputs), **self.record}
            if self.writer.problem:
                doc["record_problem"] = self.writer.problem
            self.writer.write(doc, pretty=True)
            return
        # While running: compact, and built from pieces kept between writes (the plan and inputs
        # once, each step again only when it changed), so a long chain does not pay O(steps) each time.
        if self._static is None:
            self._static = json.dumps({"plan": self.plan.model_dump(mode="json", exclude_none=True),
                                       "inputs": to_jsonable(self.values), **self.record}, default=str)[1:-1]
        steps = ",".join(self._step_json(r) for r in self.records.values())
        extra = f', "record_problem": {json.dumps(self.writer.problem)}' if self.writer.problem else ""
        self.writer.write_text(f'{json.dumps(head)[:-1]}, {self._static}, "steps": [{steps}], "outputs": null{extra}}}')

    def _step_json(self, rec: StepRecord) -> str:
        mark = (rec.status, rec.started_at, rec.finished_at, rec.attempts, len(rec.notes))
        cached = self._step_cache.get(rec.id)
        if cached is None or cached[0] != mark:
            cached = (mark, json.dumps(vars(rec), default=str))
            self._step_cache[rec.id] = cached
        return cached[1]


_FINAL_EVENTS = ("step_finished", "step_cached", "step_failed", "step_skipped")


# Futures of steps a run left running (cancelled or timed out inside code that cannot be
# stopped): the CLI exits without waiting for them (work_left_running).
_LEFT_RUNNING: set[Future] = set()


def work_left_running() -> bool:
    """True when a cancelled or timed-out step is still running in a thread of this process."""
    return any(not f.done() for f in _LEFT_RUNNING)


@contextlib.contextmanager
def _sigint_ignored():
    """Ignore Ctrl-C while the record of a cancelled run is written (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _whole(tool: Tool, outs: dict[str, Any]) -> Any:
    model = tool.return_annotation
    return model(**outs) if tool.whole_output_tag else outs


def _leaf_outputs(plan: Plan, dependents: dict[str, list[str]]) -> dict[str, str]:
    return {s.id: f"${s.id}" for s in plan.steps if not dependents[s.id]}


__all__ = ["Executor", "Event", "RunResult", "StepRecord", "resolve_inputs", "work_left_running"]
