"""Tools that run in a worker process (isolation="process"), for tests/test_run_safety.py.

They live in their own small module because the worker imports the module again: importing a
test module (and pytest with it) would make the worker slow to start."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cadenza import Audio, InputError, ToolContext, tool
from tests.media_factory import tone


@tool(cacheable=False, isolation="process")
def stuck_in_native_code(seconds: float, marker: str, ctx: ToolContext) -> Audio:
    """Writes its pid, then sleeps without ever checking for cancellation (as a long C call would)."""
    path = ctx.output_path(".wav")
    tone(path, seconds=0.2)
    Path(marker).write_text(str(os.getpid()))
    time.sleep(seconds)
    return Audio.from_path(path)


@tool(cacheable=False, isolation="process")
def isolated_wav(freq: float, ctx: ToolContext) -> Audio:
    ctx.note(f"made in process {os.getpid()}")
    path = ctx.output_path(".wav")
    tone(path, freq=freq, seconds=0.3)
    return Audio.from_path(path)


@tool(cacheable=False, isolation="process")
def isolated_bad_input(x: int) -> int:
    raise InputError(f"isolated_bad_input: {x} is not a good number")
