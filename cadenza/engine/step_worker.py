"""One step in a worker: its arguments converted, the cache asked, the tool called (in the worker's
thread, in a killable process, or as a task of a remote runner) with retries, and its outputs committed.

Split from executor.py, which schedules a plan's steps from one thread and keeps the run's record;
everything here runs in the worker a runner gives the step. The two sides share one thing, the
commit: a step's outputs go into the output folder and the cache only under the run's commit lock,
and only if its cancel event is not set, so each step is either committed or discarded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import CancelledError, ToolError, TransientError
from ..tools.args import convert_args
from ..tools.base import Tool, ToolContext
from ..workspace import Workspace
from .cache import cache_key
from .isolation import run_in_process
from .outdir import is_disk_full
from .plan import Step
from .runners import StepRunner

if TYPE_CHECKING:  # only for annotations: the executor imports this module
    from .executor import Executor


@dataclass
class StepOutcome:
    """What a step left behind: handed from its worker to the scheduling thread."""

    outputs: dict[str, Any]
    args: dict[str, Any]
    backend: str
    attempts: int
    cached: bool
    notes: list[str]


class StepWorker:
    """Runs the steps of one run, each in whichever worker the runner calls it from."""

    def __init__(self, ex: Executor, ws: Workspace, runner: StepRunner, cancel_events: dict[str, threading.Event],
                 commit_lock: threading.Lock, committed: dict[str, StepOutcome]):
        self.ex, self.ws, self.runner = ex, ws, runner
        self.cancel_events = cancel_events  # one a step; set when it is cancelled or times out
        self.commit_lock = commit_lock  # the run's: cancelling takes it too
        self.committed = committed  # step id -> its committed outcome, read by the scheduling thread

    def run_step(self, step: Step, tool: Tool, backend: str, raw_args: dict[str, Any]) -> StepOutcome:
        runner = self.runner  # this run's, even if the executor dropped it on a cancel meanwhile
        ctx = ToolContext(self.ws, step.id, backend, self.ex.runtime, self.cancel_events[step.id],
                          cache=self.ex.cache, runner=runner if hasattr(runner, "invoke") else None)
        try:
            return self._run_step(step, tool, backend, raw_args, ctx)
        except BaseException as e:
            ctx.discard_scratch()  # a failed, cancelled or timed-out step leaves nothing half-written
            if is_disk_full(e):  # name the file: the error's own, else the last one the step was writing
                where = getattr(e, "filename", None) or (ctx.scratch[-1] if ctx.scratch else self.ws.out_dir)
                raise ToolError(f"disk full: could not write {where}") from e
            raise

    def _run_step(self, step: Step, tool: Tool, backend: str, raw_args: dict[str, Any],
                  ctx: ToolContext) -> StepOutcome:
        args = convert_args(tool, raw_args, self.ws, where=f"step '{step.id}'")
        cache = self.ex.cache if tool.cacheable else None
        key = cache_key(tool.name, backend, tool.version, args) if cache else None
        stems = {n: step.id if len(tool.outputs) == 1 else f"{step.id}-{n}" for n in tool.outputs}
        if cache:
            with self.commit_lock:
                ctx.check_cancelled()
                hit = cache.get(key, tool.output_annotations, self.ws.out_dir, stems, notes=ctx.notes)
                if hit is not None:
                    self.committed[step.id] = StepOutcome(hit, args, backend, 0, True, ctx.notes)
                    return self.committed[step.id]
        retries = step.retries if step.retries is not None else self.ex.retries
        attempt = 0
        while True:
            attempt += 1
            try:
                outputs = self.call_tool(tool, args, ctx)
                break
            except TransientError:
                if attempt > retries or ctx.cancelled.is_set():
                    raise
                ctx.discard_scratch()
                ctx.cancelled.wait(self.ex.retry_backoff * 2 ** (attempt - 1))  # a cancel ends the wait
        with self.commit_lock:
            if ctx.cancelled.is_set():  # cancelled or timed out while it ran: its result is not kept
                raise CancelledError(f"step '{step.id}' was stopped; its result was discarded")
            outputs = {n: self.ws.finalize_value(v, stems[n]) for n, v in outputs.items()}
            self.committed[step.id] = StepOutcome(outputs, args, backend, attempt, False, ctx.notes)
        if cache:
            cache.put(key, outputs)
        return self.committed[step.id]

    def call_tool(self, tool: Tool, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        """In this thread, in a killable process, or as a task of a remote runner (Ray); a tool
        that only runs other steps (a workflow) stays here and hands them to the same runner."""
        if ctx.runner is not None and not tool.runs_on_driver:
            return ctx.runner.invoke(tool, dict(args), ctx, tool.get_backend(ctx.backend))
        if tool.isolation == "process":
            return run_in_process(tool, dict(args), ctx)
        return tool.invoke(dict(args), ctx)
