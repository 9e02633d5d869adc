"""Workflows: hand-written plans in YAML, run by the same executor as LLM plans.

    name: narrate
    inputs:
      speech: {type: audio}
      music: {type: audio}
    steps:
      - id: mix
        tool: mix_audio
        args: {tracks: [$speech, $music], gains_db: [0, -8], duck_under: 0}
    outputs:
      narration: $mix
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import ValidationError

from ..errors import WorkflowError
from ..tools.registry import Registry
from ..workspace import Workspace
from .executor import Event, Executor, RunResult
from .plan import Plan


def load_workflow(path: str | os.PathLike) -> Plan:
    """Read a workflow file; a YAML or shape error names the file, line and field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowError(f"workflow file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise WorkflowError(f"cannot read workflow file {p}: {e}") from None
    return parse_workflow(text, str(p))


def parse_workflow(text: str, source: str = "<workflow>") -> Plan:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise WorkflowError(f"YAML syntax error in {source}{where}: {problem}") from None
    if not isinstance(data, dict):
        raise WorkflowError(f"{source}: a workflow is a mapping with 'inputs', 'steps' and 'outputs'")
    try:
        return Plan.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise WorkflowError(f"{source}: {loc}: {err['msg'].lower()}") from None


def run_workflow(path: str | os.PathLike, inputs: dict[str, Any], out_dir: str | os.PathLike, *,
                 registry: Registry | None = None, on_event: Callable[[Event], None] | None = None,
                 cache: Any = True, **executor_options: Any) -> RunResult:
    """Run a workflow file. Input files (and the workflow's own folder, for assets it names)
    become the run's allowed roots."""
    plan = load_workflow(path)
    ws = Workspace.for_run(out_dir, inputs, roots=[Path(path).resolve().parent])
    ex = Executor(registry, on_event=on_event, cache=cache, **executor_options)
    return ex.run(plan, inputs, ws)
