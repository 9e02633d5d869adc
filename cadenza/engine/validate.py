"""Static validation: everything that can be checked before a plan runs.

Every tool exists, required arguments are present, no unknown arguments,
references point to existing inputs, steps and outputs, there is no cycle,
literals fit their schema, and types agree along every edge. Each problem names
the step and the argument. `check_plan` raises one PlanError listing them all.

A step whose tool runs a plan of its own (a workflow tool: it has a `sub_plan`) is checked
through it: a workflow that calls itself, directly or through other workflows, is refused
(`workflow 'a' calls itself (a -> b -> a)`), and the problems of its own plan are the step's.
"""

from __future__ import annotations

from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import ValidationError

from ..errors import PlanError, UnknownToolError
from ..tools.args import item_label, value_problem
from ..tools.base import Tool, is_list_annotation, list_item_annotation
from ..tools.registry import Registry
from ..media import MEDIA_FIELDS, media_field_tag
from ..tools.types import accepts, adapter, list_item, schema_annotation, split_union
from .plan import Plan, Ref, is_bad_ref, iter_refs, parse_ref, step_dependencies, unescape

KNOWN_INPUT_TYPES = {"audio", "video", "image", "subtitles", "data", "midi", "text", "number", "integer", "boolean", "any", "object"}


def _fields_hint(tag: str) -> str:
    """What can be read off a media value of this tag (`; a audio has: duration, ...`), or ''."""
    kinds = [k for k in split_union(tag) if k in MEDIA_FIELDS]
    if not kinds:
        return ""
    return f"; of its {kinds[0]}, a plan may read: {', '.join('.' + f for f in MEDIA_FIELDS[kinds[0]])}"


def check_plan(plan: Plan, registry: Registry) -> Plan:
    problems = validate_plan(plan, registry)
    if problems:
        raise PlanError(problems)
    return plan


def validate_plan(plan: Plan, registry: Registry) -> list[str]:
    problems: list[str] = []
    tools: dict[str, Tool] = {}
    step_ids: set[str] = set()

    for name, spec in plan.inputs.items():
        base = list_item(spec.type) or spec.type
        if any(t not in KNOWN_INPUT_TYPES for t in base.split("|")):
            problems.append(f"input '{name}': unknown type '{spec.type}'")

    for step in plan.steps:
        if step.id in step_ids:
            problems.append(f"step '{step.id}': duplicate step id")
        elif step.id in plan.inputs:
            problems.append(f"step '{step.id}': id clashes with the input of the same name")
        step_ids.add(step.id)
        try:
            tools[step.id] = registry.get(step.tool)
        except UnknownToolError as e:
            problems.append(f"step '{step.id}': {e}")

    def ref_tag(ref: Ref, where: str) -> str | None:
        """Type tag of a reference, or None after recording why it is wrong."""
        if ref.source in plan.inputs:
            tag = plan.inputs[ref.source].type
            if ref.field:
                field_tag = media_field_tag(split_union(tag), ref.field)
                if field_tag is None:
                    problems.append(f"{where}: input '{ref.source}' has no field '{ref.field}'{_fields_hint(tag)}")
                return field_tag
            return tag
        if ref.source not in step_ids:
            problems.append(f"{where}: '{ref}' refers to no input or step")
            return None
        src = tools.get(ref.source)
        if src is None:
            return None  # unknown tool: already reported
        tag = src.output_tag(ref.field)
        if tag is None and ref.field and len(src.outputs) == 1:  # `$s1.duration` of a step's one media output
            tag = media_field_tag(split_union(src.output_tag(None) or ""), ref.field)
        if tag is None:
            problems.append(f"{where}: step '{ref.source}' ({src.name}) has no output '{ref.field}' "
                            f"(it has: {', '.join(src.outputs)}){_fields_hint(src.output_tag(None) or '')}")
        return tag

    for step in plan.steps:
        t = tools.get(step.id)
        if t is None:
            continue
        if step.backend and step.backend not in {b.name for b in t.backends}:
            problems.append(f"step '{step.id}': tool '{t.name}' has no backend '{step.backend}'")
        for name in step.args:
            if name not in t.params:
                problems.append(f"step '{step.id}': unknown argument '{name}' for tool '{t.name}' "
                                f"(expected: {', '.join(t.params) or 'none'})")
        for name, p in t.params.items():
            where = f"step '{step.id}' argument '{name}'"
            if name not in step.args:
                if p.required:
                    problems.append(f"{where}: missing (required {p.tag})")
                continue
            value = step.args[name]
            for r in iter_refs(value):
                if r.source == step.id:
                    problems.append(f"{where}: step refers to itself")
            _check_value(p.annotation, p.tag, value, where, ref_tag, problems)
        if isinstance(getattr(t, "sub_plan", None), Plan):
            problems.extend(_workflow_problems(step.id, t, registry))

    problems.extend(_cycle_problems(plan, step_ids))

    for name, value in plan.outputs.items():
        ref = parse_ref(value)
        if ref is None:
            problems.append(f"output '{name}': '{value}' is not a $reference")
        else:
            ref_tag(ref, f"output '{name}'")
    return problems


def _callees(t: Tool, registry: Registry) -> list[Tool]:
    """The workflow tools that the plan of workflow tool `t` calls (once each, in step order)."""
    seen: dict[str, Tool] = {}
    for s in t.sub_plan.steps:
        if s.tool in registry and s.tool not in seen:
            callee = registry.get(s.tool)
            if isinstance(getattr(callee, "sub_plan", None), Plan):
                seen[s.tool] = callee
    return list(seen.values())


def self_call_chain(t: Tool, registry: Registry) -> list[str] | None:
    """The names from workflow tool `t` to the first workflow met again on the way (`['a', 'b', 'a']`),
    or None when no workflow reachable from `t` calls itself. Depth-first on an explicit stack."""
    path, on_path, done = [t.name], {t.name}, set()
    pending = [iter(_callees(t, registry))]
    while pending:
        nxt = next(pending[-1], None)
        if nxt is None:
            name = path.pop()
            on_path.discard(name)
            done.add(name)
            pending.pop()
        elif nxt.name in on_path:
            return path + [nxt.name]
        elif nxt.name not in done:
            path.append(nxt.name)
            on_path.add(nxt.name)
            pending.append(iter(_callees(nxt, registry)))
    return None


def _workflow_problems(step_id: str, t: Tool, registry: Registry) -> list[str]:
    """A workflow tool's step: refused if the workflow calls itself, else its own plan's problems."""
    chain = self_call_chain(t, registry)
    if chain is not None:
        return [f"step '{step_id}': workflow '{chain[-1]}' calls itself ({' -> '.join(chain)})"]
    return [f"step '{step_id}': workflow '{t.name}': {p}" for p in validate_plan(t.sub_plan, registry)]


def _check_value(ann: Any, tag: str, value: Any, where: str, ref_tag, problems: list[str]) -> None:
    ref = parse_ref(value)
    if ref is not None:
        got = ref_tag(ref, where)
        if got is None:
            return
        item = list_item(tag)
        if accepts(tag, got) or (item is not None and accepts(item, got)):  # one item feeds a list
            return
        problems.append(f"{where}: expects {tag} but '{ref}' gives {got}")
        return
    if is_bad_ref(value):
        problems.append(f"{where}: '{value}' is not a valid reference (use $name or $step.output)")
        return
    list_ann = _list_annotation(ann)
    if isinstance(value, list) and list_ann is not None:
        item_ann = list_item_annotation(list_ann)
        for i, v in enumerate(value):
            _check_value(item_ann, list_item(tag) or "any", v, item_label(where, i), ref_tag, problems)
        return
    if any(True for _ in iter_refs(value)):
        return  # references nested in a dict: checked when resolved
    try:
        adapter(schema_annotation(ann)).validate_python(unescape(value))
    except ValidationError as e:
        problems.append(value_problem(ann, value, e, where))


def _list_annotation(ann: Any) -> Any:
    """`list[X]` for `list[X]` and `list[X] | None`, else None: a list literal is checked item by
    item, so a bad item is named even when another item is a reference."""
    if is_list_annotation(ann):
        return ann
    members = [a for a in get_args(ann) if a is not type(None)] if get_origin(ann) in (Union, UnionType) else []
    return members[0] if len(members) == 1 and is_list_annotation(members[0]) else None


def _cycle_problems(plan: Plan, step_ids: set[str]) -> list[str]:
    """The first cycle, by depth-first search on an explicit stack: a long chain of steps is
    deeper than Python's recursion limit."""
    deps = {s.id: sorted(step_dependencies(s, step_ids)) for s in plan.steps}
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for s in plan.steps:
        if s.id in state:
            continue
        state[s.id] = 1
        path, pending = [s.id], [iter(deps.get(s.id, ()))]  # the path, and each node's deps left to visit
        while pending:
            d = next(pending[-1], None)
            if d is None:
                state[path.pop()] = 2
                pending.pop()
            elif state.get(d) == 1:
                cycle = path[path.index(d):] + [d]
                return [f"step '{cycle[0]}': cycle {' -> '.join(reversed(cycle))}"]
            elif d not in state:
                state[d] = 1
                path.append(d)
                pending.append(iter(deps.get(d, ())))
    return []
