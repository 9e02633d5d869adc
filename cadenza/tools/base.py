"""The tool API: `@tool` for typed functions, `Tool` for classes that load models.

A tool's name, description and input/output schema come from its signature
and docstring (Google-style `Args:` lines describe the parameters). Media types
(`Audio`, `Image`, `Video`) are first-class: a plan passes them as paths, the
tool receives probed `Media` objects and returns new files it wrote through
`ctx.output_path()`.
"""

from __future__ import annotations

import contextvars
import importlib.util
import inspect
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, get_args, get_origin, get_type_hints

from pydantic import BaseModel, create_model

from ..errors import CancelledError, InputError, ToolError
from ..media import MEDIA_TYPES, Media
from ..runtime import ModelRuntime, cuda_available, get_runtime
from ..workspace import Workspace
from .args import convert_args
from .types import schema_annotation, type_tag


@dataclass(frozen=True)
class Backend:
    """One way of running a tool. `device='gpu'` wants CUDA and falls back to CPU without it."""

    name: str
    description: str = ""
    requires: tuple[str, ...] = ()  # importable modules this backend needs
    device: Literal["cpu", "gpu"] = "cpu"
    gpu_memory_gb: float = 0.0  # approximate need, for the runtime's budget
    extra: str | None = None  # the pip extra that installs it, for error messages
    check: Callable[[], str | None] | None = None  # extra check, returns why not usable

    def unavailable_reason(self) -> str | None:
        """None when usable here, else one line saying why not."""
        for mod in self.requires:
            if importlib.util.find_spec(mod.split(".")[0]) is None:
                hint = f" (pip install 'cadenza[{self.extra}]')" if self.extra else ""
                return f"needs the Python package '{mod}'{hint}"
        if self.check is not None:
            return self.check()
        return None

    @property
    def heavy(self) -> bool:
        return self.device == "gpu"


@dataclass
class Param:
    name: str
    annotation: Any
    tag: str
    required: bool
    default: Any = None
    description: str = ""


@dataclass
class ToolContext:
    """What a running tool may use besides its arguments."""

    workspace: Workspace
    step_id: str = "call"
    backend: str = ""
    runtime: ModelRuntime = field(default_factory=get_runtime)
    cancelled: threading.Event = field(default_factory=threading.Event)
    notes: list[str] = field(default_factory=list)
    scratch: list[Path] = field(default_factory=list)  # every path output_path handed out
    cache: Any = None  # the run's step cache (engine.cache.StepCache) or None: for a tool that runs a sub-plan
    runner: Any = None  # a remote runner (Ray) the run's steps go to, for a tool that runs a sub-plan

    def output_path(self, suffix: str, name: str | None = None) -> Path:
        """Where to write an output file; it is renamed by content when the step ends."""
        path = self.workspace.scratch_path(name or self.step_id, suffix)
        self.scratch.append(path)
        return path

    def discard_scratch(self) -> None:
        """Remove what the step wrote to its scratch paths (a failed, cancelled or timed-out step
        leaves nothing behind); files already moved to their lasting names are not touched."""
        for path in self.scratch:
            try:
                path.unlink(missing_ok=True)
            except OSError:  # a folder a tool made, or already gone: nothing of ours to keep
                pass

    def note(self, message: str) -> None:
        """A remark for run.json and the CLI (e.g. 'audio is silent, left unchanged')."""
        self.notes.append(message)

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise CancelledError(f"step '{self.step_id}' cancelled")

    @property
    def device(self) -> str:
        return self.runtime.device


# The context of the step this thread is running, so shared loops (decoding, encoding) can stop
# when the step is cancelled without every helper taking a ctx argument.
_current_ctx: contextvars.ContextVar[ToolContext | None] = contextvars.ContextVar("cadenza_tool_ctx", default=None)


def check_cancelled() -> None:
    """Raise CancelledError if the step running in this thread was cancelled (or timed out)."""
    ctx = _current_ctx.get()
    if ctx is not None:
        ctx.check_cancelled()


DEFAULT_BACKEND = Backend("python", "plain Python, runs anywhere")


class Tool:
    """Base class. Subclasses set `name`, `description`, `backends` and define `forward`."""

    name: str = ""
    description: str = ""
    version: str = "1"  # bump when outputs change for the same inputs (part of the cache key)
    backends: list[Backend] = [DEFAULT_BACKEND]
    cacheable: bool = True  # False for tools with side effects or randomness
    output_name: str = "result"  # the output's name when forward returns one value
    # "thread" (default): the step runs in a thread and stops at its next ctx.check_cancelled();
    # "process": it runs in a worker process that is killed on cancel or timeout (engine/isolation.py),
    # for work that cannot check (a long call into native code, a subprocess).
    isolation: Literal["thread", "process"] = "thread"
    # True for a tool that only schedules other steps (a workflow): with a remote runner it stays
    # in the driver and hands its steps to the same runner, rather than becoming one remote task.
    runs_on_driver: bool = False
    # False for building blocks of hand-written workflows (the dubbing line tools): the planner's
    # catalog leaves them out and offers the workflow that chains them; plans may still use them.
    plannable: bool = True

    def __init__(self) -> None:
        self._setup_done = False
        self._setup_lock = threading.Lock()
        if not self.name:
            self.name = re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()
        if not self.description and type(self).__doc__:
            self.description = parse_docstring(inspect.getdoc(type(self)) or "")[0]
        self._analyse(self.forward, skip_self=False)

    # -- what subclasses write ----------------------------------------------
    def setup(self) -> None:
        """Load what the tool needs, once, lazily (before its first run)."""

    def forward(self, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def bind_registry(self, registry: Any) -> None:
        """Called by the registry the tool is registered in. A tool that calls other tools (a workflow)
        looks them up there; others ignore it."""

    # -- signature analysis ---------------------------------------------------
    def _analyse(self, fn: Callable, skip_self: bool) -> None:
        hints = get_type_hints(fn, include_extras=True)
        doc_desc, arg_docs = parse_docstring(inspect.getdoc(fn) or "")
        if not self.description:
            self.description = doc_desc
        self.params: dict[str, Param] = {}
        self._ctx_param: str | None = None
        for p in inspect.signature(fn).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or (skip_self and p.name == "self"):
                continue
            ann = hints.get(p.name, Any)
            if ann is ToolContext:
                self._ctx_param = p.name
                continue
            required = p.default is inspect.Parameter.empty
            self.params[p.name] = Param(p.name, ann, type_tag(ann), required,
                                        None if required else p.default, arg_docs.get(p.name, ""))
        ret = hints.get("return", Any)
        self.return_annotation = ret
        if isinstance(ret, type) and issubclass(ret, BaseModel) and not issubclass(ret, Media):
            self.outputs = {n: type_tag(f.annotation) for n, f in ret.model_fields.items()}
            self.output_annotations = {n: f.annotation for n, f in ret.model_fields.items()}
            self.whole_output_tag: str | None = ret.__name__
        else:
            self.outputs = {self.output_name: type_tag(ret)}
            self.output_annotations = {self.output_name: ret}
            self.whole_output_tag = None
        self.input_model = create_model(
            f"{_camel(self.name or fn.__name__)}Input",
            **{p.name: (schema_annotation(p.annotation), ... if p.required else p.default) for p in self.params.values()},
        )

    # -- schema -------------------------------------------------------------------
    def input_schema(self) -> dict:
        schema = self.input_model.model_json_schema()
        for name, p in self.params.items():
            if p.description:
                schema["properties"][name]["description"] = p.description
        return schema

    def summary(self) -> str:
        """The description's first sentence, without its period: one line in a catalog or a table."""
        return first_sentence(self.description).rstrip(".")

    def output_tag(self, field: str | None = None) -> str | None:
        """Type tag of `$step.field`, or of the whole output `$step` (its only output's type, or the
        model class of several); None for a field the tool does not have."""
        if field is not None:
            return self.outputs.get(field)
        return next(iter(self.outputs.values())) if len(self.outputs) == 1 else self.whole_output_tag

    def output_schema(self) -> dict:
        return {n: {"type": t} for n, t in self.outputs.items()}

    def spec(self) -> dict:
        """Everything a person or an LLM needs to call the tool (used by `tools show`)."""
        return {
            "name": self.name,
            "description": self.description,
            "version": self.version,
            "inputs": {n: {"type": p.tag, "required": p.required,
                           **({} if p.required else {"default": p.default}),
                           **({"description": p.description} if p.description else {})}
                       for n, p in self.params.items()},
            "outputs": self.outputs,
            "input_schema": self.input_schema(),
            "backends": [{"name": b.name, "device": b.device, "description": b.description,
                          "available": b.unavailable_reason() is None,
                          "why_not": b.unavailable_reason()} for b in self.backends],
        }

    def signature_line(self) -> str:
        """`mix_audio(tracks: list[audio], gains_db?: list[number]) -> audio`: for catalogs."""
        args = ", ".join(f"{n}{'' if p.required else '?'}: {p.tag}" for n, p in self.params.items())
        outs = ", ".join(f"{n}: {t}" for n, t in self.outputs.items())
        return f"{self.name}({args}) -> {outs if len(self.outputs) > 1 else next(iter(self.outputs.values()))}"

    # -- backends -----------------------------------------------------------
    def get_backend(self, name: str | None = None) -> Backend:
        """The named backend, or the best usable one (the first in the list that can run here)."""
        if name:
            for b in self.backends:
                if b.name == name:
                    why = b.unavailable_reason()
                    if why:
                        from ..errors import BackendUnavailableError

                        raise BackendUnavailableError(f"backend '{name}' of tool '{self.name}' is not usable here: {why}")
                    return b
            known = ", ".join(b.name for b in self.backends)
            raise InputError(f"tool '{self.name}' has no backend '{name}' (it has: {known})")
        reasons = []
        # GPU backends first only when CUDA is here; asking imports torch (seconds), so only ask when
        # the tool has a GPU backend at all
        heavy = any(b.heavy for b in self.backends)
        ordered = self.backends if heavy and cuda_available() else sorted(self.backends, key=lambda b: b.heavy)
        for b in ordered:
            why = b.unavailable_reason()
            if why is None:
                return b
            reasons.append(f"{b.name}: {why}")
        from ..errors import BackendUnavailableError

        raise BackendUnavailableError(f"no backend of tool '{self.name}' can run here ({'; '.join(reasons)})")

    # -- running --------------------------------------------------------------
    def ensure_setup(self) -> None:
        with self._setup_lock:
            if not self._setup_done:
                self.setup()
                self._setup_done = True

    def invoke(self, kwargs: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        """Run with already-converted arguments; returns {output name: value}."""
        self.ensure_setup()
        if self._ctx_param:
            kwargs = {**kwargs, self._ctx_param: ctx}
        token = _current_ctx.set(ctx)
        try:
            result = self._call_forward(kwargs)
        finally:
            _current_ctx.reset(token)
        return self._split_outputs(result, ctx)

    def _call_forward(self, kwargs: dict[str, Any]) -> Any:
        return self.forward(**kwargs)

    def _split_outputs(self, result: Any, ctx: ToolContext) -> dict[str, Any]:
        if self.whole_output_tag is not None:
            if not isinstance(result, BaseModel):
                raise ToolError(f"tool '{self.name}' returned {type(result).__name__}, expected {self.whole_output_tag}")
            values = {n: getattr(result, n) for n in self.outputs}
        else:
            values = {self.output_name: result}
        out = {}
        for n, v in values.items():
            kind = self.outputs[n]
            if v is None and self.whole_output_tag is not None and not type(result).model_fields[n].is_required():
                out[n] = None  # an optional output this backend does not make (a composer's MIDI)
                continue
            if kind in MEDIA_TYPES and not isinstance(v, Media):
                if not isinstance(v, (str, Path)):
                    raise ToolError(f"tool '{self.name}' output '{n}' should be a {kind} file, got {type(v).__name__}")
                v = MEDIA_TYPES[kind].from_path(v)
            out[n] = v
        return out

    def __call__(self, **kwargs: Any) -> Any:
        """Call the tool directly (outside a plan); outputs go to a temporary folder.

        Media arguments may be paths or Media objects; the files passed are the only
        ones the call may read. Outputs stay in a new temporary folder. Returns the
        single output, or a dict of outputs for multi-output tools.
        """
        # Files passed in are the caller's own (allowed roots), as on the command line.
        ws = Workspace.for_run(tempfile.mkdtemp(prefix=f"cadenza-{self.name}-"), kwargs)
        ctx = ToolContext(workspace=ws, step_id=self.name, backend=self.get_backend().name)
        args = convert_args(self, kwargs, ws, where=f"tool '{self.name}'")
        outs = {n: ws.finalize_value(v, self.name) for n, v in self.invoke(args, ctx).items()}
        return outs[self.output_name] if self.whole_output_tag is None else outs

    def to_langchain(self):
        """This tool as a LangChain `StructuredTool` (needs langchain-core)."""
        from .langchain import to_structured_tool

        return to_structured_tool(self)

    def __repr__(self) -> str:
        return f"<tool {self.signature_line()}>"


class FunctionTool(Tool):
    """A tool made from a plain function by `@tool`."""

    def __init__(self, fn: Callable, name: str | None = None, description: str | None = None,
                 backends: list[Backend] | None = None, version: str = "1", cacheable: bool = True,
                 output_name: str = "result", isolation: Literal["thread", "process"] = "thread",
                 plannable: bool = True):
        if isolation not in ("thread", "process"):
            raise ValueError(f"tool '{name or fn.__name__}': isolation must be 'thread' or 'process', not {isolation!r}")
        self.fn = fn
        self.name = name or fn.__name__
        self.description = description or ""
        self.version = version
        self.cacheable = cacheable
        self.output_name = output_name
        self.isolation = isolation
        self.plannable = plannable
        if backends is not None:
            self.backends = backends
        self._setup_done = True
        self._setup_lock = threading.Lock()
        self._analyse(fn, skip_self=False)
        self.__doc__ = fn.__doc__

    def forward(self, **kwargs: Any) -> Any:
        return self.fn(**kwargs)


def tool(fn: Callable | None = None, **options: Any):
    """Make a tool from a typed function: `@tool` or `@tool(name=..., backends=[...])`."""
    if fn is not None:
        return FunctionTool(fn, **options)
    return lambda f: FunctionTool(f, **options)


def first_sentence(text: str) -> str:
    """A description's first sentence, with its period (a one-sentence text is kept whole): a long
    description costs prompt tokens."""
    head = text.split(". ")[0]
    return head if head == text else head + "."


_ARG_LINE = re.compile(r"^\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its description and {arg: description}."""
    desc_lines, args, current, in_args = [], {}, None, False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
            continue
        if in_args and stripped in ("Returns:", "Raises:", "Example:", "Examples:"):
            in_args = False
            current = None
            continue
        if in_args:
            m = _ARG_LINE.match(line)
            if m and not line.startswith("        "):
                current = m.group(1)
                args[current] = m.group(2).strip()
            elif current and stripped:
                args[current] += " " + stripped
        elif stripped.endswith(":") and stripped in ("Returns:", "Raises:"):
            in_args = None
        elif in_args is False:
            desc_lines.append(line)
    return " ".join(" ".join(desc_lines).split()), args


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]", name) if part) or "Tool"


def is_list_annotation(ann: Any) -> bool:
    return get_origin(ann) in (list,) or ann is list


def list_item_annotation(ann: Any) -> Any:
    args = get_args(ann)
    return args[0] if args else Any
