"""Steps as Ray tasks: a `StepRunner` for a local Ray or an existing cluster.

What travels. The executor's per-step closure holds the run's locks, events and cache, so it
never leaves the driver: `submit(fn)` runs it in a driver thread, as `ThreadRunner` does, and
only the tool call itself, `invoke(tool, args, ctx)`, becomes a Ray task. The task gets the tool
by reference (module and attribute, found again by import on the worker, so the worker's own
instance keeps its models loaded), or by value (cloudpickle) when it is not a module-level
object; the converted arguments; and the workspace as paths (output folder, allowed roots, base
folder), from which the worker rebuilds a `ToolContext` with its own process's `ModelRuntime`.
The cache lookup, the retries of `TransientError`, the timeout and the commit of outputs stay in
the driver thread, unchanged: a cluster changes where a tool runs, not what a step means.

Files: the workspace must be on storage every node mounts; `check_workspace` proves it with a
probe file read back by one task pinned to each node, before anything runs.

Cancelling (a timeout, Ctrl-C): the driver thread sees the step's cancel event, asks Ray to
interrupt the task (a KeyboardInterrupt in the worker, whose scratch files are then removed) and,
if it has not ended after CANCEL_GRACE_S, to kill its worker process.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from ..errors import CancelledError, InputError, ToolError, TransientError, one_line
from ..tools.base import Tool, ToolContext
from ..workspace import Workspace
from .isolation import _portable

POLL_S = 0.05  # how often a waiting driver thread looks for a cancel
CANCEL_GRACE_S = 2.0  # an interrupted task that has not ended by then loses its worker process
GPU_STEP = 0.05  # fractional GPU requests are rounded up to this
CLIENT_ATTEMPTS = 3  # connections tried through Ray Client (ray://) before giving up


def ray_module():
    try:
        import ray
    except ImportError:
        raise InputError("the Ray runner needs Ray: pip install 'cadenza[ray]'") from None
    return ray


_JOINED: list[str] = []  # the address this process's connect() joined ("local" for a Ray it started)


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start a local Ray (address None) or join a cluster ('auto', 'ray://HOST:PORT'); once per
    process. An unreachable address is one InputError, raised before anything runs."""
    ray = ray_module()
    if address and address.startswith("ray://"):  # Ray's own client would retry for a long while
        host, _, port = address[len("ray://"):].rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except (OSError, ValueError) as e:
            raise InputError(f"Ray cluster {address} is not reachable: {getattr(e, 'strerror', None) or e}") from None
    if ray.is_initialized():
        if _JOINED and _JOINED[0] != (address or "local"):
            raise InputError(f"this process already uses Ray at {_JOINED[0]}; cannot also use {address or 'a local Ray'}")
        return
    env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
    if address is None:  # a local Ray: its workers import what this process imports, from the same places
        env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))}
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if env:
        kwargs["runtime_env"] = {"env_vars": env}
    if address is None:
        kwargs["num_cpus"] = num_cpus or (int(os.environ["CADENZA_RAY_CPUS"]) if os.environ.get("CADENZA_RAY_CPUS")
                                          else None)
    for attempt in range(CLIENT_ATTEMPTS):
        try:
            ray.init(address=address or "local", **kwargs)  # 'local': a new Ray, never one `ray start` left here
            break
        except (ConnectionError, RuntimeError, ValueError) as e:
            # Ray Client's per-client server sometimes dies as it starts on a busy head ("Initialization
            # failure from server"); a second connection usually gets one that lives
            if "Initialization failure" in str(e) and attempt + 1 < CLIENT_ATTEMPTS:
                time.sleep(2.0)
                continue
            raise InputError(f"cannot connect to Ray cluster {address or 'local'}: {one_line(e)}") from None
    _JOINED[:] = [address or "local"]


class RayRunner:
    """Each step's tool call is a Ray task asking for one CPU, or for a (fractional) GPU when its
    backend needs one and the cluster has GPUs."""

    places_devices = True  # Ray places GPU steps: the executor does not serialize them per device

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None, max_waiting: int | None = None,
                 gpu_memory_gb: float | None = None):
        connect(address, num_cpus)
        self.ray = ray_module()
        self.address = address
        resources = self.ray.cluster_resources()
        self.cluster_gpus = float(resources.get("GPU", 0))
        # Driver threads only wait on tasks: enough for every slot of the cluster to be busy.
        self.max_waiting = max_waiting or max(32, int(resources.get("CPU", 1) + self.cluster_gpus) * 2)
        env = os.environ.get("CADENZA_RAY_GPU_MEMORY_GB")
        self.gpu_memory_gb = gpu_memory_gb if gpu_memory_gb is not None else float(env) if env else 0.0
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._in_flight: set = set()
        self._checked: set[Path] = set()  # output folders probed (their sub-folders need no probe)
        self._seen_dirs: set[Path] = set()  # folders of input files every node saw

    # -- the StepRunner seam ---------------------------------------------------------
    def submit(self, fn: Callable[[], Any]) -> Future:
        with self._lock:
            if self._pool is None:  # again after a shutdown: one runner may serve several runs
                self._pool = ThreadPoolExecutor(self.max_waiting, thread_name_prefix="cadenza-ray")
            return self._pool.submit(fn)

    def shutdown(self, wait: bool) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            refs = list(self._in_flight)
        for ref in refs:  # queued or running tasks of this runner stop too
            self.ray.cancel(ref, force=False)
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)

    # -- one tool call as a Ray task ---------------------------------------------------
    def resources(self, backend) -> dict[str, float]:
        """One CPU; a GPU step a GPU, or the share of one its `gpu_memory_gb` needs when the GPUs'
        memory is known (CADENZA_RAY_GPU_MEMORY_GB). On a cluster without GPUs it runs on a CPU,
        as a heavy backend does on a machine without CUDA."""
        if backend is None or not backend.heavy or self.cluster_gpus <= 0:
            return {"num_cpus": 1}
        share = 1.0
        if backend.gpu_memory_gb and self.gpu_memory_gb:  # rounded first: 4/16/0.05 must be 5, not 5.000001
            steps = math.ceil(round(backend.gpu_memory_gb / self.gpu_memory_gb / GPU_STEP, 6))
            share = min(1.0, round(steps * GPU_STEP, 4))
        return {"num_cpus": 1, "num_gpus": share}

    def invoke(self, tool: Tool, args: dict[str, Any], ctx: ToolContext, backend=None) -> dict[str, Any]:
        ray = self.ray
        ctx.check_cancelled()
        ws = ctx.workspace
        spec = (str(ws.out_dir), [str(p) for p in ws.allowed_roots()], str(ws.base_dir))
        task = _remote_functions()["run_tool"].options(**self.resources(backend))
        try:
            ref = task.remote(_shipment(tool), args, spec, ctx.step_id, ctx.backend)
        except TypeError as e:  # Ray's "could not serialize": a tool (or argument) made in a function that holds a lock
            raise ToolError(f"tool '{tool.name}' cannot be sent to a Ray worker (make it a module-level object): "
                            f"{one_line(e)}") from None
        with self._lock:
            self._in_flight.add(ref)
        done = threading.Event()  # set by Ray's completion callback: waiting costs no call into Ray
        ref.future().add_done_callback(lambda _: done.set())
        try:
            while not done.wait(POLL_S):
                if ctx.cancelled.is_set():
                    self._stop(ref)
                    raise CancelledError(f"step '{ctx.step_id}' cancelled (its Ray task was stopped)")
            try:
                kind, payload, notes = ray.get(ref)
            except ray.exceptions.TaskCancelledError:
                raise CancelledError(f"step '{ctx.step_id}' cancelled (its Ray task was stopped)") from None
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                    ray.exceptions.ObjectLostError) as e:  # a lost node or worker: worth another try
                raise TransientError(f"tool '{tool.name}': its Ray worker was lost ({type(e).__name__})") from None
            except ray.exceptions.RayError as e:
                raise ToolError(f"tool '{tool.name}': Ray task failed: {one_line(e)}") from None
        finally:
            with self._lock:
                self._in_flight.discard(ref)
        ctx.notes.extend(notes)
        if kind == "error":
            raise payload
        return payload

    def _stop(self, ref) -> None:
        ray = self.ray
        ray.cancel(ref, force=False)
        if not ray.wait([ref], timeout=CANCEL_GRACE_S)[0]:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - it ended between the wait and the kill
                pass

    # -- files -------------------------------------------------------------------------
    def check_workspace(self, ws: Workspace, files: list[Path] = ()) -> None:
        """Every alive node must read a probe file written in the output folder (and see the input
        `files`); else one InputError naming the node and the path it cannot see."""
        root = ws.out_dir
        # an input in a folder already seen, or under an output folder already probed, is not probed again
        files = [f for f in files if Path(f).parent not in self._seen_dirs and not self._seen(Path(f))]
        if self._seen(root) and not files:  # a row's or a sub-run's folder inside one already probed
            return
        ray = self.ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe_dir = root / ".cadenza"
        probe_dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(8)
        probe = probe_dir / f"probe-{token}"
        _write_probe(probe, token)
        try:
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            probe_task = _remote_functions()["probe"]
            refs = [(n.get("NodeManagerAddress", "?"), probe_task.options(
                num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                str(probe), token, [str(f) for f in files])) for n in nodes]
            for node, ref in refs:
                try:
                    missing = ray.get(ref, timeout=60)
                except ray.exceptions.RayError as e:
                    raise InputError(f"cannot check the workspace on Ray node {node}: {one_line(e)}") from None
                if missing:
                    raise InputError(f"{missing} is not visible from Ray node {node}: put the workspace and inputs "
                                     f"on storage every node mounts (the same path everywhere)")
        finally:
            probe.unlink(missing_ok=True)
        self._checked.add(root)
        self._seen_dirs.update(Path(f).parent for f in files)


    def _seen(self, path: Path) -> bool:
        return any(path == c or c in path.parents for c in self._checked)

    def nested(self) -> "RayRunner":
        """The same cluster with driver threads of its own, for a sub-run inside a step (a workflow
        tool): its waiting threads must not queue behind the step that waits for them."""
        child = object.__new__(RayRunner)
        child.__dict__.update(self.__dict__)
        child._pool, child._lock, child._in_flight = None, threading.Lock(), set()
        child._checked, child._seen_dirs = self._checked, self._seen_dirs  # what one run proved holds for both
        return child


def disconnect() -> None:
    """Leave Ray (stop the local one this process started) if connect() joined it."""
    ray = sys.modules.get("ray")
    if _JOINED and ray is not None and ray.is_initialized():
        ray.shutdown()
    _JOINED.clear()


def _shipment(tool: Tool) -> tuple[str, Any]:
    from .isolation import tool_reference

    try:
        ref = tool_reference(tool)
    except ToolError:  # not a module-level object (a tool made in a function): by value
        return "value", tool
    return ("value", tool) if ref[0] == "__main__" else ("ref", ref)  # a worker's __main__ is not ours


_REMOTE: dict[str, Any] = {}


def _remote_functions() -> dict[str, Any]:
    """The task functions, made once Ray is imported (Ray is an optional extra)."""
    if not _REMOTE:
        ray = ray_module()
        _REMOTE["run_tool"] = ray.remote(max_retries=0)(_run_tool)  # Cadenza retries: only TransientError
        _REMOTE["probe"] = ray.remote(max_retries=0)(_probe)
    return _REMOTE


def _run_tool(ship: tuple[str, Any], args: dict[str, Any], spec: tuple[str, list[str], str], step_id: str,
              backend: str) -> tuple:
    """On the worker: the tool's call with a context rebuilt from paths. The worker process's
    runtime (get_runtime()) keeps models loaded between tasks; errors travel as data."""
    import importlib

    out_dir, roots, base_dir = spec
    ctx = ToolContext(Workspace(out_dir, allowed=[Path(r) for r in roots], base_dir=base_dir), step_id, backend)
    try:
        kind, what = ship
        tool = getattr(importlib.import_module(what[0]), what[1]) if kind == "ref" else what
        return "ok", tool.invoke(args, ctx), ctx.notes
    except BaseException as e:  # noqa: BLE001 - KeyboardInterrupt too: Ray's cancel; the driver decides
        ctx.discard_scratch()
        return "error", _portable(e), ctx.notes


def _write_probe(path: Path, token: str) -> None:
    path.write_text(token)


def _probe(path: str, token: str, files: list[str]) -> str | None:
    """On one node: the first path it cannot see, or None."""
    try:
        if Path(path).read_text() != token:
            return str(Path(path).parent.parent)
    except OSError:
        return str(Path(path).parent.parent)
    return next((f for f in files if not os.path.exists(f)), None)
