"""Workflows are tools: a workflow file registered as a tool, typed by its inputs and outputs.

    subtitle(media: audio|video, language?: text) -> transcript: text, subtitles: subtitles

Its arguments are the workflow's `inputs` (type tags as annotations, defaults, descriptions); its
outputs are the workflow's `outputs` (the leaf steps when it names none), typed by the steps that
produce them. Those steps' tools are looked up lazily in the registry the tool is registered in,
so a workflow may call the tools of a plugin loaded after it, or other workflows.

Running it runs its plan with an `Executor` into `<out>/.cadenza/sub/<step id>/` (its own
`run.json` is there), with the step's allowed roots plus the workflow's own folder (for the
assets it names; inside the sub-run only), the same runtime and step cache, and the step's cancel
event (a cancel or timeout of the step stops the sub-run). The files it returns are moved into the
step's scratch, so the outer step names them by content like any tool's. A failed inner step fails
the step with one line naming it (`workflow 'subtitle': step 'words' (transcribe): ...`), an input
error if the inner failure was bad input.

The tool's version holds a hash of the file's text and the versions of the tools it calls, so
editing the workflow, or a workflow it calls, misses the cache. A workflow that calls itself,
directly or through others, is refused by validation (engine/validate.py).

Where workflow tools come from: the package (`cadenza/workflows/*.yaml`, the plugin
`cadenza.engine.builtin_workflows`), a plugin (`workflow_tools(folder)` in its hook), and the
folders the user names (`CADENZA_WORKFLOWS`, `workflow_dirs` in the config file; the plugin
`cadenza.engine.user_workflows`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from pathlib import Path
from typing import Any, Iterator

from pydantic import create_model

from ..errors import CancelledError, InputError, ToolError, WorkflowError, one_line
from ..media import Media
from ..tools.args import tag_annotation
from ..tools.base import Backend, Param, Tool, ToolContext, _camel
from ..tools.registry import Registry, default_registry
from ..tools.types import schema_annotation
from ..workspace import Workspace
from .executor import Executor
from .plan import NAME_PATTERN, Plan, parse_ref, step_dependencies
from .workflow import anchor_paths, parse_workflow

WORKFLOW_SUFFIXES = (".yaml", ".yml")
BUILTIN_WORKFLOWS_DIR = Path(__file__).resolve().parents[1] / "workflows"

# What each thread is working out right now (a workflow's output types, its version): a workflow
# that calls itself would otherwise recurse forever before validation could say so.
_busy = threading.local()


@contextlib.contextmanager
def _entering(key: tuple) -> Iterator[bool]:
    """True when `key` is not already being worked out in this thread (then it is, until the end)."""
    busy: set = _busy.__dict__.setdefault("keys", set())
    if key in busy:
        yield False
        return
    busy.add(key)
    try:
        yield True
    finally:
        busy.discard(key)


class WorkflowTool(Tool):
    """A workflow file as a tool. `sub_plan` is its plan (validation checks it through the step)."""

    isolation = "thread"
    runs_on_driver = True  # it schedules its sub-plan's steps; they are the remote tasks

    def __init__(self, path: str | os.PathLike, registry: Registry | None = None):
        self.path = Path(path).resolve()
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise WorkflowError(f"workflow file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise WorkflowError(f"cannot read workflow file {path}: {e}") from None
        self.sub_plan: Plan = parse_workflow(text, str(path))
        self.folder = self.path.parent
        self.text_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        name = self.sub_plan.name or re.sub(r"\W", "_", self.path.stem)
        if not re.match(NAME_PATTERN, name):
            raise WorkflowError(f"{path}: name '{name}' cannot be a tool name (letters, digits and _, "
                                f"not starting with a digit)")
        self.name = name
        self.description = " ".join((self.sub_plan.description or f"Runs the workflow {self.path.name}.").split())
        self.cacheable = True
        self.backends = [Backend("workflow", "runs the workflow's steps, each with its own tool's backend",
                                 check=self._why_not_usable)]
        self._registry = registry
        self._setup_done = True
        self._setup_lock = threading.Lock()
        self._ctx_param = None
        self.params = {}
        for n, spec in self.sub_plan.inputs.items():
            ann = tag_annotation(spec.type)
            required = spec.is_required
            self.params[n] = Param(n, ann, spec.type, required, None if required else spec.default, spec.description)
        self.input_model = create_model(
            f"{_camel(self.name)}Input",
            **{p.name: (schema_annotation(p.annotation), ... if p.required else p.default)
               for p in self.params.values()},
        )
        ids = {s.id for s in self.sub_plan.steps}
        used = {d for s in self.sub_plan.steps for d in step_dependencies(s, ids)}
        self.named_outputs: dict[str, str] = dict(self.sub_plan.outputs) or {
            s.id: f"${s.id}" for s in self.sub_plan.steps if s.id not in used}  # as the executor does
        if len(self.named_outputs) == 1:
            self.output_name = next(iter(self.named_outputs))
        self._typed: tuple | None = None

    # -- the registry it calls into ----------------------------------------------------------
    def bind_registry(self, registry: Registry) -> None:
        if self._registry is None:  # the first registry it joins; a copy of it elsewhere keeps it
            self._registry = registry

    @property
    def registry(self) -> Registry:
        return self._registry if self._registry is not None else default_registry()

    def _why_not_usable(self) -> str | None:
        missing = sorted({s.tool for s in self.sub_plan.steps if s.tool not in self.registry})
        return f"it calls the unknown tool{'s' if len(missing) > 1 else ''} {', '.join(missing)}" if missing else None

    # -- outputs, typed by the steps that produce them ---------------------------------------
    def _types(self) -> tuple[dict[str, str], dict[str, Any], str | None, Any]:
        """(output tags, output annotations, whole-output tag, return annotation). An output whose
        producer is unknown, or that is being worked out already (a workflow calling itself), is
        `any`, and the answer is not kept: validation reports the cause."""
        if self._typed is not None:
            return self._typed
        complete = True
        tags: dict[str, str] = {}
        anns: dict[str, Any] = {}
        with _entering(("types", id(self))) as fresh:
            for n, ref_text in self.named_outputs.items():
                found = self._ref_type(ref_text) if fresh else None
                if found is None:
                    complete = False
                    found = ("any", Any)
                tags[n], anns[n] = found
        if len(tags) == 1:
            typed = (tags, anns, None, next(iter(anns.values())))
        else:
            model = create_model(f"{_camel(self.name)}Outputs", **{n: (a, ...) for n, a in anns.items()})
            typed = (tags, anns, model.__name__, model)
        if complete:
            self._typed = typed
        return typed

    def _ref_type(self, ref_text: str) -> tuple[str, Any] | None:
        ref = parse_ref(ref_text)
        if ref is None:
            return None
        plan = self.sub_plan
        if ref.source in plan.inputs:
            spec = plan.inputs[ref.source]
            return (spec.type, tag_annotation(spec.type)) if ref.field is None else None
        step = next((s for s in plan.steps if s.id == ref.source), None)
        if step is None or step.tool not in self.registry:
            return None
        t = self.registry.get(step.tool)
        if ref.field is not None:
            return (t.outputs[ref.field], t.output_annotations[ref.field]) if ref.field in t.outputs else None
        if len(t.outputs) == 1:
            (only,) = t.outputs
            return t.outputs[only], t.output_annotations[only]
        return t.whole_output_tag, t.return_annotation

    @property
    def outputs(self) -> dict[str, str]:  # type: ignore[override]
        return self._types()[0]

    @property
    def output_annotations(self) -> dict[str, Any]:  # type: ignore[override]
        return self._types()[1]

    @property
    def whole_output_tag(self) -> str | None:  # type: ignore[override]
        return self._types()[2]

    @property
    def return_annotation(self) -> Any:  # type: ignore[override]
        return self._types()[3]

    @property
    def version(self) -> str:  # type: ignore[override]
        """A hash of the workflow's text and of the versions of the tools it calls (workflows
        included, so editing one it calls changes this one too)."""
        h = hashlib.sha256(self.text_sha256.encode())
        with _entering(("version", id(self))) as fresh:
            if fresh:
                for name in sorted({s.tool for s in self.sub_plan.steps}):
                    if name in self.registry:
                        h.update(f"\n{name}={self.registry.get(name).version}".encode())
        return "wf-" + h.hexdigest()[:12]

    def spec(self) -> dict:
        return {**super().spec(), "workflow": str(self.path)}

    # -- running -------------------------------------------------------------------------
    def invoke(self, kwargs: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        ctx.check_cancelled()
        registry = self.registry
        plan = anchor_paths(self.sub_plan, self.folder, registry)  # its assets: under its own folder
        sub_dir = ctx.workspace.out_dir / ".cadenza" / "sub" / ctx.step_id
        ws = Workspace(sub_dir, allowed=[*ctx.workspace.allowed_roots(), self.folder], base_dir=ctx.workspace.base_dir)
        ex = Executor(registry, cache=ctx.cache, runtime=ctx.runtime,
                      runner=ctx.runner.nested if ctx.runner is not None else None)
        try:
            result = ex.run(plan, kwargs, ws, record={"workflow": str(self.path), "step": ctx.step_id},
                            cancel=ctx.cancelled)
        except CancelledError:
            raise
        except InputError as e:  # its plan or its inputs, refused before anything ran
            raise InputError(f"workflow '{self.name}': {one_line(e)}") from None
        finally:
            ex.close()
        for rec in result.steps.values():
            for note in rec.notes:
                ctx.note(f"workflow '{self.name}' step '{rec.id}': {note}")
        if not result.ok:
            errors = result.errors()
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            what = errors[0] if errors else f"the run {result.status}"
            error = InputError if result.exit_code == 2 else ToolError
            raise error(f"workflow '{self.name}': {what}{more}")
        missing = [n for n in self.named_outputs if n not in result.outputs]
        if missing:
            raise ToolError(f"workflow '{self.name}' gave no output '{missing[0]}'")
        moved: dict[Path, Path] = {}
        return {n: self._take(result.outputs[n], ws, ctx, moved) for n in self.named_outputs}

    def _take(self, value: Any, ws: Workspace, ctx: ToolContext, moved: dict[Path, Path]) -> Any:
        """A sub-run's output file moved into the step's scratch (the outer step then names it by
        content, as it does any tool's output); a file from elsewhere (an input passed through)
        stays where it is and is copied by the outer step."""
        if isinstance(value, list):
            return [self._take(v, ws, ctx, moved) for v in value]
        if not isinstance(value, Media):
            return value
        src = value.path.resolve()
        if src.parent != ws.out_dir:
            return value
        if src not in moved:
            dst = ctx.output_path(src.suffix)
            os.replace(src, dst)
            moved[src] = dst
        return value.model_copy(update={"path": moved[src]})


def workflow_tools(folder: str | os.PathLike) -> list[WorkflowTool]:
    """A tool for each workflow file (`*.yaml`, `*.yml`) in `folder`, in name order. A plugin ships
    its workflows this way:

        @cadenza.hookimpl
        def register_tools(register):
            for t in workflow_tools(Path(__file__).parent / "workflows"):
                register(t)
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise WorkflowError(f"workflow folder {folder} is not a folder")
    return [WorkflowTool(p) for p in sorted(folder.iterdir())
            if p.suffix.lower() in WORKFLOW_SUFFIXES and p.is_file()]


__all__ = ["WorkflowTool", "workflow_tools", "BUILTIN_WORKFLOWS_DIR"]


def workflow_file(name_or_path: str | os.PathLike, registry: Registry | None = None) -> Path:
    """The file of a workflow given by its path, or by the name of a built-in or user workflow
    (`describe_video`, `dub`) when no file of that name is here: `cadenza workflow run describe_video`."""
    path = Path(name_or_path)
    if path.exists() or path.suffix.lower() in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    registry = registry or default_registry()
    tool = registry.get(str(name_or_path)) if str(name_or_path) in registry else None
    if isinstance(tool, WorkflowTool):
        return tool.path
    known = ", ".join(sorted(t.name for t in registry if isinstance(t, WorkflowTool)))
    raise WorkflowError(f"workflow file not found: {path} (nor is it a workflow's name; the workflows here: "
                        f"{known or 'none'})")
