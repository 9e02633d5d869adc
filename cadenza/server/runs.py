"""The runs a server holds: their folders, a bounded queue, the workers, restart and resume.

    DATA/runs/<id>/state.json       what was asked, the status, the outputs (rewritten atomically)
    DATA/runs/<id>/events.jsonl     the progress events (events.py)
    DATA/runs/<id>/inputs/          the run's own copies of its input files
    DATA/runs/<id>/workflow/        an uploaded workflow file (a built-in one is named, not copied)
    DATA/runs/<id>/outputs/         the output folder: the files produced and run.json

A submission is checked before it is queued (the workflow validates, the inputs exist, are
allowed and decode), so a bad one is refused at once (422) and leaves no folder. That checking and
the copying of its files happen outside the store's lock, with a place in the queue held for the
run, so submissions are prepared side by side; under the lock a run only takes its place and is
queued (a full queue is refused before any work, and a prepared run is never refused). Each worker
thread runs one run at a time with its own `Executor`, so the steps of different runs run
concurrently; models are shared through the process's one runtime and its GPU budget.
On start, a run that was queued or running when the server stopped is marked `interrupted`;
resuming runs it again in the same folder, and the steps that finished come from the step cache.
`rerun` is a new run of a workflow run with some values changed (a dubbing review's edited lines),
its files linked from the old run's folder. A run's event log also holds `planning` (a request
goes to the LLM) and `plan` (the steps, once validated), so a page shows the plan before it runs.

In memory: an open run (queued or running) whole, with its event log and cancel event; a finished
run only as its line of the run list (`Entry`: id, kind, status, workflow, the request's first
CLIP characters, times, error; ~0.3 KB), so a server that has served many runs does not hold their
records (benchmarks/serve.py). A finished run's record is read from its state.json when asked for;
resuming it makes it an open run again.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..agent.agent import Agent
from ..agent.examples import ExamplePool
from ..engine.executor import Event, Executor, RunResult, resolve_inputs
from ..engine.outdir import atomic_write_text
from ..engine.plan import Plan
from ..engine.validate import check_plan
from ..engine.workflow import anchor_paths, media_inputs, parse_input_value, parse_workflow, prepare_workflow
from ..engine.workflow_tool import WorkflowTool
from ..errors import CadenzaError, CancelledError, InputError, one_line
from ..llm.chat import get_chat_model
from ..media import to_jsonable
from ..tools.registry import Registry
from ..tools.types import is_media_tag
from ..workspace import Workspace
from .events import EventLog
from .security import ApiError, checked_id, checked_name, new_id
from .uploads import UploadStore

ACTIVE = ("queued", "running")
RESUMABLE = ("interrupted", "failed", "cancelled")
SUMMARY = ("id", "kind", "status", "workflow", "request", "created_at", "started_at", "finished_at", "error")
CLIP = 300  # characters of a finished run's request and error kept in memory; a longer one is read from disk


class Entry(NamedTuple):
    """A finished run in the run list: the fields of `Run.summary`, the texts cut at CLIP characters."""

    id: str
    kind: str
    status: str
    workflow: str | None
    request: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    clipped: bool  # the request or the error is longer than what is kept

    def summary(self) -> dict[str, Any]:
        return dict(zip(SUMMARY, self))


@dataclass
class Run:
    id: str
    kind: str  # "workflow" or "request"
    created_at: float
    status: str = "queued"  # queued running succeeded failed cancelled interrupted
    workflow: str | None = None  # a built-in or user workflow's name; None for an uploaded file
    request: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)  # media as {"file": name in inputs/}
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    answer: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0

    def summary(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SUMMARY}

    def entry(self) -> Entry:
        def clip(text: str | None) -> str | None:
            return text[:CLIP] if text else text
        long = len(self.request or "") > CLIP or len(self.error or "") > CLIP
        return Entry(self.id, sys.intern(self.kind), sys.intern(self.status),
                     sys.intern(self.workflow) if self.workflow else None, clip(self.request), self.created_at,
                     self.started_at, self.finished_at, clip(self.error), long)


class RunStore:
    def __init__(self, data_dir: Path, registry: Registry, *, llm: Any = None, workers: int = 2,
                 max_queued: int = 16, cache: bool = True):
        self.data = data_dir
        self.runs_dir = data_dir / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.uploads = UploadStore(data_dir / "uploads")
        self.registry = registry
        self.llm = llm
        self.max_queued = max_queued
        self.cache = cache
        self._open: dict[str, Run] = {}  # queued or running: whole, with their logs and cancel events
        self._done: dict[str, Entry] = {}  # finished: the run list's line alone (the record is on disk)
        self._logs: dict[str, EventLog] = {}
        self._cancels: dict[str, threading.Event] = {}
        # a run moves between _open and _done under the lock, its state.json written first; re-entrant:
        # cancel and close finish runs while they hold it
        self._lock = threading.RLock()
        self._llm_lock = threading.Lock()  # making the chat model (maybe loading it) holds up no one else
        self._reserved = 0  # places in the queue held for submissions being prepared
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._examples: ExamplePool | None = None
        self._stopping = False
        self._recover()
        self._workers = [threading.Thread(target=self._work, name=f"cadenza-serve-{i}", daemon=True)
                         for i in range(max(1, workers))]
        for w in self._workers:
            w.start()

    # -- reading ---------------------------------------------------------------------------
    def get(self, run_id: str) -> Run:
        """An open run is the store's own object; a finished one is read from its state.json (a copy)."""
        rid = checked_id(run_id, "run")
        run = self._open.get(rid)
        if run is not None:
            return run
        with self._lock:  # it may be moving between _open and _done just now
            run = self._open.get(rid)
            done = rid in self._done
        if run is None and done:
            run = self._load(self.runs_dir / rid / "state.json")
        if run is None:
            raise ApiError(404, f"no run '{run_id}'")
        return run

    def list(self) -> list[dict[str, Any]]:
        """Every run's summary, newest first."""
        with self._lock:
            runs = [r.summary() for r in self._open.values()]
            done = list(self._done.values())
        for entry in done:
            whole = self._load(self.runs_dir / entry.id / "state.json") if entry.clipped else None
            runs.append(whole.summary() if whole is not None else entry.summary())
        runs.sort(key=lambda r: r["created_at"], reverse=True)
        return runs

    def events(self, run_id: str) -> EventLog:
        rid = checked_id(run_id, "run")
        with self._lock:  # an open run's own log, which its worker appends to; a finished one's read from disk
            log = self._logs.get(rid)
            if log is None and rid in self._done:
                log = EventLog(self.runs_dir / rid / "events.jsonl")
        if log is None:
            raise ApiError(404, f"no run '{run_id}'")
        return log

    def folder(self, run: Run) -> Path:
        return self.runs_dir / run.id

    def out_dir(self, run: Run) -> Path:
        return self.folder(run) / "outputs"

    # -- submitting ------------------------------------------------------------------------
    def submit_workflow(self, *, name: str | None, yaml_text: str | None, inputs: dict[str, Any],
                        typed_as_text: set[str] = frozenset()) -> Run:
        """Queue a workflow run. Media inputs are upload ids; `typed_as_text` names inputs that came
        as form text, read by their declared type (as the CLI reads --input)."""
        if (name is None) == (yaml_text is None):
            raise ApiError(422, "give a workflow by 'workflow' (a name) or by an uploaded file, not both or neither")
        plan = None
        if name is not None:
            self.workflow_path(name)  # an unknown name is refused before anything is made
        else:  # parsed once (a parse is ~1.7 of a submission's ~6.5 ms of CPU here; benchmarks/RESULTS.md)
            plan = check_plan(parse_workflow(yaml_text, "the uploaded workflow"), self.registry)
        run = Run(new_id(), "workflow", time.time(), workflow=name)
        return self._admit(run, lambda folder: self._prepare_workflow(run, folder, yaml_text, plan, inputs, typed_as_text))

    def submit_request(self, request: str, files: dict[str, Any]) -> Run:
        if not isinstance(request, str) or not request.strip():
            raise ApiError(422, "'request' must be a non-empty text")
        run = Run(new_id(), "request", time.time(), request=request)

        def prepare(folder: Path) -> None:
            for name, upload_id in files.items():
                checked_name(name, "file name")
                run.inputs[name] = {"file": self.uploads.copy_into(upload_id, folder / "inputs", name).name}
            paths = self._input_values(run)
            Workspace.for_run(self.out_dir(run), paths)  # the files are readable media before the run is queued
        return self._admit(run, prepare)

    def _admit(self, run: Run, prepare) -> Run:
        """Hold a place in the queue, prepare the run's folder (the slow part: parsing, copying, decoding)
        outside the lock, then queue it: under the lock only the place and the queue (~1 ms: its
        state.json and first event are written there, so a worker's later writes come after them)."""
        with self._lock:
            self._check_room()  # a full queue refuses before any work is done
            self._reserved += 1
        folder, held = self.folder(run), True
        try:
            folder.mkdir()
            try:
                prepare(folder)
                log = EventLog(folder / "events.jsonl")
                with self._lock:
                    self._reserved -= 1  # the place held becomes the run's: never refused once prepared
                    held = False
                    if self._stopping:  # no worker would take it
                        raise ApiError(503, "the server is stopping; try again later", {"Retry-After": "5"})
                    run.created_at = time.time()  # when it joined the queue: the run list's order is the queue's
                    self._open[run.id] = run
                    self._logs[run.id] = log
                    self._cancels[run.id] = threading.Event()
                    self._queue_run(run)
            except BaseException:
                if run.id not in self._open:
                    shutil.rmtree(folder, ignore_errors=True)
                raise
        finally:
            if held:
                with self._lock:
                    self._reserved -= 1
        return run

    def _check_room(self) -> None:
        queued = sum(r.status == "queued" for r in self._open.values()) + self._reserved
        if queued >= self.max_queued:
            raise ApiError(429, f"the queue is full ({self.max_queued} runs waiting); try again later",
                           {"Retry-After": "5"})

    def _queue_run(self, run: Run) -> None:
        run.status, run.error, run.finished_at = "queued", None, None
        self._save(run)
        self._logs[run.id].add("run_queued", status="queued")
        self._queue.put(run.id)

    def workflow_path(self, name: str) -> Path:
        tool = self.registry.get(name) if name in self.registry else None
        if not isinstance(tool, WorkflowTool):
            known = ", ".join(sorted(t.name for t in self.registry if isinstance(t, WorkflowTool)))
            raise ApiError(422, f"no workflow '{name[:60]}' (known: {known or 'none'})")
        return tool.path

    def _prepare_workflow(self, run: Run, folder: Path, yaml_text: str | None, parsed: Plan | None,
                          given: dict[str, Any], typed_as_text: set[str]) -> None:
        if yaml_text is not None:
            (folder / "workflow").mkdir()
            (folder / "workflow" / "workflow.yaml").write_text(yaml_text, encoding="utf-8")
        # the uploaded workflow as `_plan` reads it from that file (prepare_workflow), without parsing it again
        plan = self._plan(run) if parsed is None else anchor_paths(parsed, (folder / "workflow").resolve(), self.registry)
        for name, value in given.items():
            checked_name(name, "input")
            spec = plan.inputs.get(name)
            if spec is None:
                raise InputError(f"unknown input '{name}' (the workflow takes: {', '.join(plan.inputs) or 'none'})")
            if is_media_tag(spec.type):  # files come by upload id, never by path
                if isinstance(value, list):
                    run.inputs[name] = [{"file": self.uploads.copy_into(u, folder / "inputs", f"{name}-{i}").name}
                                        for i, u in enumerate(value)]
                else:
                    run.inputs[name] = {"file": self.uploads.copy_into(value, folder / "inputs", name).name}
            elif name in typed_as_text and isinstance(value, str):
                run.inputs[name] = parse_input_value(value, spec.type, f"input '{name}'")
            else:
                run.inputs[name] = value
        values = self._input_values(run)
        ws = self._workspace(run, plan, values)
        resolve_inputs(plan, values, ws)  # input files exist, are allowed and decode
        Executor(self.registry, cache=False).check_literal_files(plan, ws)  # and so do files the workflow names

    # -- the plan and inputs of a run ----------------------------------------------------------
    def _plan(self, run: Run) -> Plan:
        if run.workflow is not None:
            return prepare_workflow(self.workflow_path(run.workflow), self.registry)
        return prepare_workflow(self.folder(run) / "workflow" / "workflow.yaml", self.registry)

    def _input_values(self, run: Run) -> dict[str, Any]:
        """The inputs as the executor takes them: a media input is the path of the run's copy."""
        def value(v: Any) -> Any:
            if isinstance(v, list):
                return [value(x) for x in v]
            if isinstance(v, dict) and set(v) == {"file"}:
                return str(self.folder(run) / "inputs" / Path(v["file"]).name)
            return v
        return {n: value(v) for n, v in run.inputs.items()}

    def _workspace(self, run: Run, plan: Plan, values: dict[str, Any]) -> Workspace:
        roots = [self.workflow_path(run.workflow).parent if run.workflow else self.folder(run) / "workflow"]
        return Workspace.for_run(self.out_dir(run), media_inputs(plan, values), roots=roots)

    # -- cancel and resume -------------------------------------------------------------------
    def cancel(self, run_id: str) -> Run:
        run = self.get(run_id)
        with self._lock:
            run = self._open.get(run.id, run)  # a finished run is a copy read from disk: 409 below
            if run.status == "queued":  # the worker skips it
                self._finish(run, "cancelled", error="cancelled before it started")
            elif run.status == "running":
                if (event := self._cancels.get(run.id)) is not None:  # None: it finished just now
                    event.set()
            else:
                raise ApiError(409, f"run '{run.id}' is already {run.status}")
        return run

    def resume(self, run_id: str) -> Run:
        run = self.get(run_id)
        with self._lock:
            if run.id in self._open:  # queued or running (a run leaves _open only once finished)
                run = self._open[run.id]
            elif run.id in self._done:  # read again under the lock: a resume just before this one is seen
                run = self._load(self.folder(run) / "state.json") or run
            if run.status not in RESUMABLE:
                raise ApiError(409, f"run '{run.id}' is {run.status}; only an interrupted, failed or cancelled run resumes")
            self._check_room()
            self._open[run.id] = run  # open before it leaves _done: `get` finds it in one or the other
            self._done.pop(run.id, None)
            self._logs[run.id] = EventLog(self.folder(run) / "events.jsonl")
            self._cancels[run.id] = threading.Event()
            self._queue_run(run)
        return run

    def rerun(self, run_id: str, changes: dict[str, Any]) -> Run:
        """A new run of a workflow run's workflow with the same inputs, `changes` (values, not files)
        replacing some: a dubbing review's edited lines. Unchanged steps come from the step cache."""
        old = self.get(run_id)
        if old.kind != "workflow":
            raise ApiError(422, f"run '{old.id}' is a request; only a workflow run runs again with changes")
        yaml_text = None
        if old.workflow is None:
            yaml_text = (self.folder(old) / "workflow" / "workflow.yaml").read_text(encoding="utf-8")
        run = Run(new_id(), "workflow", time.time(), workflow=old.workflow)

        def prepare(folder: Path) -> None:
            if yaml_text is not None:
                (folder / "workflow").mkdir()
                (folder / "workflow" / "workflow.yaml").write_text(yaml_text, encoding="utf-8")
            plan = self._plan(run)
            (folder / "inputs").mkdir()
            for name in changes:
                spec = plan.inputs.get(checked_name(name, "input"))
                if spec is None or is_media_tag(spec.type):
                    raise ApiError(422, f"input '{name}': only a value the workflow takes may change, not a file")
            for name, value in old.inputs.items():
                if name in changes:
                    continue
                for ref in value if isinstance(value, list) else [value]:
                    if isinstance(ref, dict) and set(ref) == {"file"}:  # the same file, linked where it can be
                        _link_or_copy(self.folder(old) / "inputs" / Path(ref["file"]).name,
                                      folder / "inputs" / Path(ref["file"]).name)
                run.inputs[name] = value
            run.inputs.update(changes)
            values = self._input_values(run)
            resolve_inputs(plan, values, self._workspace(run, plan, values))
        return self._admit(run, prepare)

    # -- running -----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            run_id = self._queue.get()
            if run_id is None:
                return
            with self._lock:
                run = self._open.get(run_id)
                if run is None or run.status != "queued" or self._stopping:  # cancelled, or queued twice by a resume
                    continue
                run.status, run.started_at, run.attempts = "running", time.time(), run.attempts + 1
                self._save(run)
            self._execute(run)

    def _execute(self, run: Run) -> None:
        log, cancel = self._logs[run.id], self._cancels.setdefault(run.id, threading.Event())

        def on_event(e: Event) -> None:  # the executor's run_started/finished are one attempt's, not the run's
            kind = {"run_started": "execution_started", "run_finished": "execution_finished"}.get(e.kind, e.kind)
            log.add(kind, step=e.step_id, tool=e.tool, status=e.status, error=e.error, total=e.total or None,
                    seconds=round(e.seconds, 4) if e.seconds is not None else None)
            if e.kind == "run_started":  # run.json holds the plan by now: a page shows it before any step ends
                steps = (self._previous_record(run).get("plan") or {}).get("steps")
                if steps:
                    log.add("plan", steps=[{k: s.get(k) for k in ("id", "tool", "args")} for s in steps])

        try:
            result = self._run_workflow(run, on_event, cancel) if run.kind == "workflow" \
                else self._run_request(run, on_event, cancel)
        except CancelledError:
            self._finish(run, "interrupted" if self._stopping else "cancelled", error="cancelled")
            return
        except CadenzaError as e:
            self._finish(run, "failed", error=one_line(e))
            return
        except Exception as e:  # a bug: the run fails in one line, the server keeps serving
            self._finish(run, "failed", error=f"internal error: {type(e).__name__}: {one_line(e)}")
            return
        if result is None:  # the planner found no way to do it
            self._finish(run, "failed", error=(run.answer or "no plan").splitlines()[0])
            return
        run.outputs = to_jsonable(result.outputs)
        errors = result.errors()
        self._finish(run, result.status, error=errors[0] if errors else None)

    def _run_workflow(self, run: Run, on_event, cancel: threading.Event) -> RunResult:
        plan = self._plan(run)
        values = self._input_values(run)
        return self._executor_run(plan, values, self._workspace(run, plan, values), on_event, cancel)

    def _run_request(self, run: Run, on_event, cancel: threading.Event) -> RunResult | None:
        files = self._input_values(run)
        record = self._previous_record(run)
        if record.get("plan") and record.get("agent"):  # resumed after planning: the same plan, no new LLM call
            plan = Plan.model_validate(record["plan"])
            values = {n: p for n, p in files.items() if n in plan.inputs}
            ws = Workspace.for_run(self.out_dir(run), files)
            return self._executor_run(plan, values, ws, on_event, cancel, record={"agent": record["agent"]})
        self._logs[run.id].add("planning")
        with self._llm_lock:  # one chat model for every run: its own lock keeps two runs from decoding at once
            if self._examples is None:
                self._examples = ExamplePool.builtin()
            if self.llm is None or isinstance(self.llm, str):
                self.llm = get_chat_model(self.llm)
        agent = Agent(llm=self.llm, tools=self.registry, examples=self._examples, out_dir=self.out_dir(run),
                      cache=self.cache, on_event=on_event)
        try:
            result = agent.run(run.request, files, cancel=cancel)
        finally:
            agent.executor.close()
        run.answer = result.answer.replace(f"{self.out_dir(run)}{os.sep}", "")  # output names, not the server's paths
        return result.run

    def _executor_run(self, plan, values, ws, on_event, cancel, record=None) -> RunResult:
        ex = Executor(self.registry, cache=self.cache, on_event=on_event)
        try:
            return ex.run(plan, values, ws, record=record, cancel=cancel)
        finally:
            ex.close()

    def _previous_record(self, run: Run) -> dict[str, Any]:
        try:
            return json.loads((self.out_dir(run) / "run.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}

    def _finish(self, run: Run, status: str, error: str | None = None) -> None:
        """Record the end, then keep only the run list's line: the record, the log and the cancel event
        are let go (a resume makes them anew). Under the lock, so a resume sees the run open or finished."""
        with self._lock:
            run.status, run.error, run.finished_at = status, error, time.time()
            self._save(run)
            seconds = run.finished_at - run.started_at if run.started_at else None
            self._logs.pop(run.id).add("run_finished", status=status, error=error,
                                       seconds=round(seconds, 4) if seconds is not None else None)
            self._cancels.pop(run.id, None)
            self._done[run.id] = run.entry()  # in _done before it leaves _open: `get` finds it in one or the other
            del self._open[run.id]

    # -- on disk -----------------------------------------------------------------------------
    def _save(self, run: Run) -> None:
        atomic_write_text(self.folder(run) / "state.json", json.dumps(asdict(run), default=str))

    @staticmethod
    def _load(state: Path) -> Run | None:
        try:
            return Run(**json.loads(state.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None  # not a run this server wrote, or its folder was removed by hand

    def _recover(self) -> None:
        """Runs of an earlier server: listed again; one left queued or running is now interrupted."""
        for state in self.runs_dir.glob("*/state.json"):
            run = self._load(state)
            if run is None or run.id != state.parent.name:
                continue
            if run.status in ACTIVE:
                run.status, run.error = "interrupted", "the server stopped during this run; resume it"
                self._save(run)
                EventLog(state.parent / "events.jsonl").add("run_interrupted", status="interrupted")
            self._done[run.id] = run.entry()

    def close(self, timeout: float = 10.0) -> None:
        """Stop: running runs are cancelled and marked interrupted (resumable), queued ones too."""
        with self._lock:
            self._stopping = True
            for run in list(self._open.values()):  # finishing one moves it out of _open
                if run.status == "running" and (event := self._cancels.get(run.id)) is not None:
                    event.set()
                elif run.status == "queued":
                    self._finish(run, "interrupted", error="the server stopped before this run started; resume it")
        for _ in self._workers:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for w in self._workers:
            w.join(max(0.0, deadline - time.monotonic()))


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        dst.hardlink_to(src)
    except OSError:
        shutil.copyfile(src, dst)


__all__ = ["Entry", "Run", "RunStore"]
