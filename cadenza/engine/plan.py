"""The plan format, shared by LLM plans and hand-written YAML workflows.

    inputs:  {speech: {type: audio}, gain: {type: number, default: -6}}
    steps:
      - id: quiet
        tool: normalize_audio
        args: {audio: $speech, target_lufs: -20}
      - id: mix
        tool: mix_audio
        args: {tracks: [$quiet, $music], gains_db: [0, $gain]}
    outputs: {mix: $mix}

An argument is a literal, or a reference: `$NAME` is a workflow input or the
output of step NAME, `$STEP.OUTPUT` one named output of a multi-output step.
Input names and step ids share one namespace. `$$` starts a literal `$`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_REF = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?$")


class InputSpec(BaseModel):
    """A workflow input: its type tag (audio, video, image, text, number, integer, boolean, list[...])."""

    model_config = ConfigDict(extra="forbid")
    type: str = "text"
    description: str = ""
    default: Any = None
    required: bool | None = None  # default: required unless a default is given

    @property
    def is_required(self) -> bool:
        return self.required if self.required is not None else self.default is None


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=NAME_PATTERN, description="unique step name; later steps refer to it as $id")
    tool: str = Field(description="name of a registered tool")
    args: dict[str, Any] = Field(default_factory=dict, description="literals or $references")
    backend: str | None = Field(None, description="force one backend of the tool")
    timeout: float | None = Field(None, gt=0, description="seconds before the step is failed")
    retries: int | None = Field(None, ge=0, le=10, description="extra attempts after a transient error")


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    description: str | None = None
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    steps: list[Step]
    outputs: dict[str, str] = Field(default_factory=dict, description="name -> $reference")

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, exclude_none=True)


def plan_json_schema() -> dict:
    """The published JSON Schema of the plan format (docs/plan.schema.json)."""
    schema = Plan.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Cadenza plan"
    return schema


@dataclass(frozen=True)
class Ref:
    source: str  # input name or step id
    field: str | None = None  # output name, None for the whole/only output

    def __str__(self) -> str:
        return f"${self.source}" + (f".{self.field}" if self.field else "")


def parse_ref(value: Any) -> Ref | None:
    """A Ref when `value` is a `$reference` string, else None (literal)."""
    if isinstance(value, str) and value.startswith("$") and not value.startswith("$$"):
        m = _REF.match(value)
        if m:
            return Ref(m.group(1), m.group(2))
    return None


def is_bad_ref(value: Any) -> bool:
    """A string that starts like a reference but is not one (e.g. '$1x' or '$a.b.c')."""
    return isinstance(value, str) and value.startswith("$") and not value.startswith("$$") and parse_ref(value) is None


def unescape(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("$$"):
        return value[1:]
    return value


def iter_refs(value: Any):
    """Every reference inside an argument value (lists and dicts included), in order; on an
    explicit stack, so no nesting depth hits the recursion limit."""
    stack = [value]
    while stack:
        v = stack.pop()
        ref = parse_ref(v)
        if ref is not None:
            yield ref
        elif isinstance(v, list):
            stack.extend(reversed(v))
        elif isinstance(v, dict):
            stack.extend(reversed(list(v.values())))


def step_dependencies(step: Step, step_ids: set[str]) -> set[str]:
    return {r.source for v in step.args.values() for r in iter_refs(v) if r.source in step_ids}
