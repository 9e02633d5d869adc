"""Helpers for the speech tests: call a tool with a chosen backend and see its notes; word error rate."""

from __future__ import annotations

import re
import tempfile

from cadenza.tools.args import convert_args
from cadenza.tools.base import ToolContext
from cadenza.workspace import Workspace


def call(tool, backend: str | None = None, **kwargs):
    """(outputs dict, notes) of one direct tool call on `backend` (default: the best one here)."""
    ws = Workspace.for_run(tempfile.mkdtemp(prefix="cadenza-speech-"), kwargs)
    ctx = ToolContext(workspace=ws, step_id=tool.name, backend=tool.get_backend(backend).name)
    outs = tool.invoke(convert_args(tool, kwargs, ws, where=f"tool '{tool.name}'"), ctx)
    return outs, ctx.notes


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate by edit distance over normalised words."""
    r, h = words(reference), words(hypothesis)
    d = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        prev, d[0] = d[0], i
        for j, hw in enumerate(h, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (rw != hw))
    return d[len(h)] / max(1, len(r))
