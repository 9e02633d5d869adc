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

Limits, checked on the YAML events before the document is built (one pass, no recursion):
mappings and lists may nest at most `MAX_DEPTH` (64) levels deep, aliases included, and
its aliases may expand to at most `MAX_NODES` (100,000) nodes in all, so an alias bomb is
refused at once. The CLI reads `--arg`/`--input` values through the same loader.

Literal relative paths in a workflow (`args: {clips: [intro.wav, $speech]}`, an input's
default) are the workflow folder's files: `prepare_workflow` makes them absolute.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import ValidationError

from ..errors import InputError, WorkflowError
from ..tools.registry import Registry, default_registry
from ..tools.types import is_media_tag, list_item, split_union
from ..workspace import Workspace
from .executor import Event, Executor, RunResult
from .plan import Plan, is_bad_ref, parse_ref, unescape

MAX_DEPTH = 64  # nested mappings and lists; a plan needs about six
MAX_NODES = 100_000  # scalars, mappings and lists that aliases repeat, in all


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
        data = safe_load_yaml(text, source, WorkflowError)
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


def safe_load_yaml(text: str, source: str = "<yaml>", error: type[InputError] = InputError) -> Any:
    """`yaml.safe_load`, refusing (with `error`) nesting beyond MAX_DEPTH and aliases that expand
    beyond MAX_NODES; a syntax error is raised as `yaml.YAMLError`."""
    check_yaml_limits(text, source, error)
    return yaml.safe_load(text)


def check_yaml_limits(text: str, source: str = "<yaml>", error: type[InputError] = InputError) -> None:
    """One pass over the parser's events (the composer recurses, the parser does not). Each open
    collection remembers where it began; an anchored node's expanded size and height are known
    when it closes, and an alias adds them where it stands."""
    # libyaml parses ~20x faster; on any error rescan with the pure-Python parser, whose
    # verdict (and message) is the one yaml.safe_load gives
    fast = [yaml.CSafeLoader] if getattr(yaml, "__with_libyaml__", False) else []
    for loader in [*fast, yaml.SafeLoader]:
        try:
            _scan_limits(yaml.parse(text, Loader=loader), source, error)
            return
        except yaml.YAMLError:
            if loader is yaml.SafeLoader:
                raise


def _scan_limits(events, source: str, error: type[InputError]) -> None:
    nodes = expanded = 0  # nodes written; nodes that aliases repeat
    open_: list[list] = []  # per open collection: [anchor, nodes before it, its depth, deepest depth below]
    done: dict[str, tuple[int, int]] = {}  # anchor -> (expanded nodes, height in collections)

    def where(ev) -> str:
        m = ev.start_mark
        return f"{source} line {m.line + 1}, column {m.column + 1}" if m else source

    def add(ev, size: int, height: int) -> None:
        nonlocal nodes
        nodes += size
        reach = len(open_) + height
        if reach > MAX_DEPTH:
            raise error(f"{where(ev)}: YAML nested deeper than {MAX_DEPTH} levels; refused")
        if open_:
            open_[-1][3] = max(open_[-1][3], reach)

    for ev in events:
        if isinstance(ev, yaml.ScalarEvent):
            add(ev, 1, 0)
            if ev.anchor:
                done[ev.anchor] = (1, 0)
        elif isinstance(ev, yaml.AliasEvent):
            if any(f[0] == ev.anchor for f in open_):
                raise error(f"{where(ev)}: alias *{ev.anchor} refers to a node that contains it; refused")
            size, height = done.get(ev.anchor, (1, 0))  # an undefined alias: the composer says so
            expanded += size
            if expanded > MAX_NODES:
                raise error(f"{where(ev)}: YAML aliases expand to more than {MAX_NODES:,} nodes; refused")
            add(ev, size, height)
        elif isinstance(ev, yaml.CollectionStartEvent):
            add(ev, 1, 1)
            open_.append([ev.anchor, nodes - 1, len(open_) + 1, len(open_) + 1])
        elif isinstance(ev, yaml.CollectionEndEvent) and open_:
            anchor, before, depth, deepest = open_.pop()
            if anchor:
                done[anchor] = (nodes - before, deepest - depth + 1)
            if open_:
                open_[-1][3] = max(open_[-1][3], deepest)


def parse_input_value(raw: str, tag: str, where: str) -> Any:
    """A value typed as text (a command-line `--input`, a form field) read by its declared type:
    text and media stay as typed ("no" is not False, "1e3" is a file name); numbers, booleans and
    [lists] are parsed as YAML under the limits above."""
    base = tag[5:-1] if tag.startswith("list[") else tag
    if any(k in base.split("|") for k in ("text", "audio", "video", "image")):
        return raw
    try:
        return safe_load_yaml(raw, where)
    except yaml.YAMLError:
        return raw


def path_tag(tag: str) -> bool:
    """Whether a parameter's values are file paths: media, or `pathlib.Path`."""
    return is_media_tag(tag) or "Path" in split_union(list_item(tag) or tag)


def prepare_workflow(path: str | os.PathLike, registry: Registry | None = None) -> Plan:
    """A workflow read for running: relative literal paths in it (media and path arguments,
    media inputs' defaults) made absolute under the workflow's folder, not the current one."""
    plan = load_workflow(path)
    return anchor_paths(plan, Path(path).resolve().parent, registry or default_registry())


def anchor_paths(plan: Plan, folder: Path, registry: Registry) -> Plan:
    def fix(value: Any) -> Any:
        if isinstance(value, list):
            return [fix(v) for v in value]  # a list of files
        if not isinstance(value, str) or parse_ref(value) is not None or is_bad_ref(value):
            return value
        literal = unescape(value)
        if not literal or Path(literal).expanduser().is_absolute():
            return value
        return str(folder / literal)

    steps = []
    for step in plan.steps:
        tool = registry.get(step.tool) if step.tool in registry else None  # unknown: validation says so
        params = tool.params if tool else {}
        args = {n: fix(v) if n in params and path_tag(params[n].tag) else v for n, v in step.args.items()}
        steps.append(step.model_copy(update={"args": args}) if args != step.args else step)
    inputs = {n: spec.model_copy(update={"default": fix(spec.default)}) if path_tag(spec.type) else spec
              for n, spec in plan.inputs.items()}
    return plan.model_copy(update={"steps": steps, "inputs": inputs})


def run_workflow(path: str | os.PathLike, inputs: dict[str, Any], out_dir: str | os.PathLike, *,
                 registry: Registry | None = None, on_event: Callable[[Event], None] | None = None,
                 cache: Any = True, **executor_options: Any) -> RunResult:
    """Run a workflow file. Input files (and the workflow's own folder, for assets it names)
    become the run's allowed roots."""
    plan = prepare_workflow(path, registry)
    ws = Workspace.for_run(out_dir, media_inputs(plan, inputs), roots=[Path(path).resolve().parent])
    ex = Executor(registry, on_event=on_event, cache=cache, **executor_options)
    return ex.run(plan, inputs, ws)


def media_inputs(plan: Plan, inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs whose declared type is media: the files the user names, which become allowed roots."""
    return {n: v for n, v in inputs.items() if n in plan.inputs and is_media_tag(plan.inputs[n].type)}
