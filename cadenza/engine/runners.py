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
