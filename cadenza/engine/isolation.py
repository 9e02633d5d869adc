"""Steps in a killable worker process, for tools whose work cannot stop when asked.

A thread cannot be interrupted: a tool running in one stops only at its next
`ctx.check_cancelled()`. Cadenza's own tools check in their loops (decoding and
encoding frame by frame, speech sentence by sentence, transcription segment by
segment, translation batch by batch), so they run in threads and keep their models
resident. A tool that declares `isolation="process"` (a plugin calling a long native
function or a subprocess) runs here instead: in a fresh `spawn` process that is
killed when the step is cancelled or times out. It pays a process start (about a
second) and loads its models in that process, so it is for work that needs it.

The child finds the tool again by module and name (a tool is a module-level object),
works in the same output folder with the same allowed roots, and sends back its
outputs or its error (every Cadenza error pickles). Its scratch files carry its pid,
so a killed child's leftovers are removed by name.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import pickle
from pathlib import Path
from typing import Any

from ..errors import CancelledError, ToolError
from ..tools.base import Tool, ToolContext
from ..workspace import Workspace

POLL_S = 0.05  # how often the parent looks for a cancel while the child works
_MP = multiprocessing.get_context("spawn")  # fork would copy locks held by other threads


def tool_reference(tool: Tool) -> tuple[str, str]:
    """(module, attribute) under which the child finds the same tool."""
    fn = getattr(tool, "fn", None)
    module = fn.__module__ if fn is not None else type(tool).__module__
    for attr, value in vars(importlib.import_module(module)).items():
        if value is tool:
            return module, attr
    raise ToolError(f"tool '{tool.name}' runs in a worker process, so it must be a module-level object "
                    f"(not found in {module})")


def run_in_process(tool: Tool, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """`tool.invoke(args, ctx)` in a worker process; kill it if `ctx.cancelled` is set."""
    ref = tool_reference(tool)
    ws = ctx.workspace
    spec = (str(ws.out_dir), [str(p) for p in ws.allowed_roots()], str(ws.base_dir))
    receive, send = _MP.Pipe(duplex=False)
    child = _MP.Process(target=_child_main, args=(send, ref, args, spec, ctx.step_id, ctx.backend), daemon=True,
                        name=f"cadenza-step-{ctx.step_id}")
    child.start()
    send.close()
    try:
        while not receive.poll(POLL_S):
            if ctx.cancelled.is_set():
                _stop(child, ws)
                raise CancelledError(f"step '{ctx.step_id}' cancelled (its worker process was stopped)")
            if not child.is_alive() and not receive.poll(0):
                raise ToolError(f"tool '{tool.name}': its worker process ended without a result "
                                f"(exit code {child.exitcode})")
        kind, payload, notes = receive.recv()
    except EOFError:
        raise ToolError(f"tool '{tool.name}': its worker process ended without a result "
                        f"(exit code {child.exitcode})") from None
    finally:
        receive.close()
        child.join(timeout=5)
        if child.is_alive():
            _stop(child, ws)
    ctx.notes.extend(notes)
    if kind == "error":
        raise payload
    return payload


def _stop(child, ws: Workspace) -> None:
    child.kill()
    child.join(timeout=5)
    for leftover in ws.scratch_dir.glob(f"*-{child.pid}-*"):  # its scratch names carry its pid
        leftover.unlink(missing_ok=True)


def _child_main(send, ref: tuple[str, str], args: dict[str, Any], spec: tuple[str, list[str], str], step_id: str,
                backend: str) -> None:
    out_dir, roots, base_dir = spec
    ctx = ToolContext(Workspace(out_dir, allowed=[Path(r) for r in roots], base_dir=base_dir), step_id, backend)
    try:
        tool = getattr(importlib.import_module(ref[0]), ref[1])
        result: tuple = ("ok", tool.invoke(args, ctx), ctx.notes)
    except BaseException as e:  # noqa: BLE001 - the parent decides what an error means
        ctx.discard_scratch()
        result = ("error", _portable(e), ctx.notes)
    send.send(result)
    send.close()
    os._exit(0)  # skip interpreter teardown: the parent has what it needs


def _portable(err: BaseException) -> BaseException:
    """The error itself if it pickles, else a ToolError carrying its type and first line."""
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:  # noqa: BLE001 - anything unpicklable becomes a plain ToolError
        text = (str(err).strip().splitlines() or [""])[0]
        return ToolError(f"{type(err).__name__}: {text}")
