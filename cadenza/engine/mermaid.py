"""A plan as a Mermaid flowchart: inputs, steps with their tools, and the data on each edge."""

from __future__ import annotations

from ..tools.registry import Registry
from .plan import Plan, iter_refs


def to_mermaid(plan: Plan, registry: Registry) -> str:
    lines = ["flowchart LR"]
    for name, spec in plan.inputs.items():
        lines.append(f'    in_{name}[/"{_esc(name)}<br/>{spec.type}"/]')
    for s in plan.steps:
        lines.append(f'    {s.id}["{s.id}<br/><b>{_esc(s.tool)}</b>"]')
    tools = {s.id: registry.get(s.tool) for s in plan.steps if s.tool in registry}
    for s in plan.steps:
        for arg, value in s.args.items():
            for ref in iter_refs(value):
                if ref.source in plan.inputs:
                    src, data = f"in_{ref.source}", plan.inputs[ref.source].type
                else:
                    src = ref.source
                    t = tools.get(ref.source)
                    data = (t.output_tag(ref.field) or t.output_tag()) if t else "?"
                lines.append(f'    {src} -->|"{_esc(arg)}: {_esc(str(data))}"| {s.id}')
    return "\n".join(lines)


def _esc(text: str) -> str:
    return text.replace('"', "#quot;").replace("[", "#91;").replace("]", "#93;")
