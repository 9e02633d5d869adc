"""The model runtime: the one place tools get their models from.

- A model is loaded once per process (per key, device and dtype) and reused.
- The device is chosen automatically (CUDA when present, else CPU) and can be
  overridden (`CADENZA_DEVICE`, or `ModelRuntime(device=...)`).
- GPU models are kept under a memory budget: loading one that does not fit
  evicts the least recently used models that are not in use.
- On CUDA out-of-memory the runtime frees everything else, retries once, then
  fails with a clear `GPUOutOfMemoryError`.

Usage inside a tool:

    with ctx.runtime.use("whisper:base", load_whisper, memory_gb=1.0) as model:
        result = model.transcribe(...)

`load_whisper(device, dtype)` builds the model; the runtime decides both.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import glob
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .errors import GPUOutOfMemoryError


@functools.cache  # a failed import is not remembered by Python: without this every step re-scans sys.path
def torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


@functools.cache
def cuda_available() -> bool:
    # On Linux without the NVIDIA driver's device nodes there is no CUDA: say so without importing
    # torch, which costs seconds at every command's start.
    if sys.platform.startswith("linux") and not glob.glob("/dev/nvidia*"):
        return False
    torch = torch_or_none()
    return bool(torch is not None and torch.cuda.is_available())


def is_oom(err: BaseException) -> bool:
    torch = torch_or_none()
    if torch is not None and isinstance(err, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    return isinstance(err, (RuntimeError, MemoryError)) and "out of memory" in str(err).lower()


@dataclass
class LoadedModel:
    key: str
    model: Any
    device: str
    dtype: str
    memory_gb: float
    last_used: float = field(default_factory=time.monotonic)
    in_use: int = 0


class ModelRuntime:
    def __init__(self, device: str | None = None, dtype: str = "auto", gpu_budget_gb: float | None = None):
        self._device = device or os.environ.get("CADENZA_DEVICE") or None
        self.dtype = os.environ.get("CADENZA_DTYPE", dtype)
        budget = gpu_budget_gb if gpu_budget_gb is not None else os.environ.get("CADENZA_GPU_BUDGET_GB")
        self._budget = float(budget) if budget is not None else None
        self._models: dict[tuple[str, str, str], LoadedModel] = {}
        self._lock = threading.RLock()
        self.evictions: list[str] = []  # keys, in eviction order: for doctor, tests and logs

    # -- choices ---------------------------------------------------------
    @property
    def device(self) -> str:
        return self._device or ("cuda" if cuda_available() else "cpu")

    @device.setter
    def device(self, value: str | None) -> None:
        self._device = value

    def resolve_dtype(self, device: str, dtype: str | None = None) -> str:
        d = dtype or self.dtype
        if d != "auto":
            return d
        return "float16" if device.startswith("cuda") else "float32"

    @property
    def gpu_budget_gb(self) -> float:
        if self._budget is not None:
            return self._budget
        torch = torch_or_none()
        if torch is not None and torch.cuda.is_available():
            return torch.cuda.get_device_properties(0).total_memory / 2**30 * 0.9
        return 0.0

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return sorted(self._models.values(), key=lambda m: m.last_used)

    def gpu_used_gb(self) -> float:
        return sum(m.memory_gb for m in self._models.values() if _on_gpu(m.device))

    # -- loading and use -------------------------------------------------
    @contextlib.contextmanager
    def use(self, key: str, loader: Callable[[str, str], Any], *, memory_gb: float = 0.0,
            device: str | None = None, dtype: str | None = None) -> Iterator[Any]:
        """Yield the model for `key`, loading it if needed; it cannot be evicted while in use."""
        entry = self._acquire(key, loader, memory_gb, device, dtype)
        try:
            yield entry.model
        finally:
            with self._lock:
                entry.in_use -= 1
                entry.last_used = time.monotonic()

    def call(self, fn: Callable[[], Any], what: str = "model call") -> Any:
        """Run inference; on CUDA out-of-memory free idle models, retry once, then fail clearly."""
        try:
            return fn()
        except Exception as e:
            if not is_oom(e):
                raise
            self.evict_idle()
            try:
                return fn()
            except Exception as e2:
                if is_oom(e2):
                    raise GPUOutOfMemoryError(f"GPU out of memory in {what} even after freeing other models") from e2
                raise

    def _acquire(self, key, loader, memory_gb, device, dtype) -> LoadedModel:
        dev = device or self.device
        dt = self.resolve_dtype(dev, dtype)
        k = (key, dev, dt)
        with self._lock:
            entry = self._models.get(k)
            if entry is None:
                if _on_gpu(dev):
                    self._make_room(memory_gb)
                model = self._load(loader, key, dev, dt)
                entry = LoadedModel(key, model, dev, dt, memory_gb)
                self._models[k] = entry
            entry.in_use += 1
            entry.last_used = time.monotonic()
            return entry

    def _load(self, loader, key, dev, dt):
        try:
            return loader(dev, dt)
        except Exception as e:
            if not is_oom(e):
                raise
            self.evict_idle()
            try:
                return loader(dev, dt)
            except Exception as e2:
                if is_oom(e2):
                    raise GPUOutOfMemoryError(
                        f"GPU out of memory loading {key} on {dev} even after freeing other models; "
                        f"try CADENZA_DEVICE=cpu or a smaller model") from e2
                raise

    def _make_room(self, need_gb: float) -> None:
        budget = self.gpu_budget_gb
        if budget <= 0:
            return
        for entry in self.loaded():  # oldest first
            if self.gpu_used_gb() + need_gb <= budget:
                return
            if entry.in_use == 0 and _on_gpu(entry.device):
                self._evict(entry)

    def evict_idle(self) -> None:
        """Drop every model that is not in use (and give the memory back to CUDA)."""
        with self._lock:
            for entry in self.loaded():
                if entry.in_use == 0:
                    self._evict(entry)

    def _evict(self, entry: LoadedModel) -> None:
        self._models.pop((entry.key, entry.device, entry.dtype), None)
        self.evictions.append(entry.key)
        entry.model = None
        gc.collect()
        torch = torch_or_none()
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()


def _on_gpu(device: str) -> bool:
    return not device.startswith("cpu")


_default: ModelRuntime | None = None


def get_runtime() -> ModelRuntime:
    """The process-wide runtime shared by every tool."""
    global _default
    if _default is None:
        _default = ModelRuntime()
        atexit.register(_close_models_at_exit)
    return _default


def _close_models_at_exit() -> None:
    """Native models (llama.cpp) free themselves in __del__, which fails once the interpreter has
    torn down their modules; close them while everything is still there."""
    for entry in (_default.loaded() if _default is not None else []):
        close = getattr(entry.model, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # exiting anyway: never turn a clean exit into a traceback
                pass
