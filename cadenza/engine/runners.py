"""How a step is run: the one seam between scheduling and execution.

The executor hands a runner a zero-argument callable and gets back a
`concurrent.futures.Future`. A local thread pool is the default; a distributed
engine (Ray, Dask) fits behind the same two methods.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Protocol


class StepRunner(Protocol):
    def submit(self, fn: Callable[[], Any]) -> Future: ...

    def shutdown(self, wait: bool) -> None: ...


class ThreadRunner:
    """Threads suit tools that wait on files, FFmpeg, ONNX or torch, which release the GIL."""

    def __init__(self, max_workers: int | None = None):
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 8)
        self._pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="cadenza-step")

    def submit(self, fn: Callable[[], Any]) -> Future:
        return self._pool.submit(fn)

    def shutdown(self, wait: bool) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)


class SequentialRunner:
    """Runs each step to completion on submit: one at a time, for debugging and baselines."""

    def submit(self, fn: Callable[[], Any]) -> Future:
        f: Future = Future()
        try:
            f.set_result(fn())
        except BaseException as e:  # the future carries it, as a pool would
            f.set_exception(e)
        return f

    def shutdown(self, wait: bool) -> None:
        pass


RUNNER_CHOICES = "threads, sequential, ray (a local Ray), ray:auto or ray://HOST:PORT (a cluster)"


def runner_spec(given: str | None = None) -> str:
    """The runner asked for: `given` (--runner), else CADENZA_RUNNER, else `runner = "..."` in the
    config file, else threads."""
    from ..paths import load_config

    spec = given or os.environ.get("CADENZA_RUNNER") or load_config().get("runner") or "threads"
    if not isinstance(spec, str):
        from ..errors import InputError
        raise InputError(f"runner must be text ({RUNNER_CHOICES}), not {spec!r}")
    spec = spec.strip()
    if spec not in ("threads", "sequential", "ray", "ray:auto") and not spec.startswith("ray://"):
        from ..errors import InputError
        raise InputError(f"unknown runner {spec!r} (one of: {RUNNER_CHOICES})")
    return spec


def make_runner(spec: str | None = None) -> StepRunner:
    """A runner for a spec (see runner_spec); a Ray one connects now, so a bad address is an
    InputError before anything runs."""
    from ..errors import InputError

    spec = runner_spec(spec)
    if spec == "threads":
        return ThreadRunner()
    if spec == "sequential":
        return SequentialRunner()
    if spec == "ray" or spec == "ray:auto" or spec.startswith("ray://"):
        from .ray_runner import RayRunner  # Ray is an optional extra: imported only when asked for

        return RayRunner(None if spec == "ray" else "auto" if spec == "ray:auto" else spec)
    raise InputError(f"unknown runner {spec!r} (one of: {RUNNER_CHOICES})")
