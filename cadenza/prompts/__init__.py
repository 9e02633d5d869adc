"""Prompt templates for the planner, kept as plain files beside this module, and how they are filled."""

from __future__ import annotations

import re
from importlib import resources

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def load_prompt(name: str) -> str:
    """The text of `cadenza/prompts/<name>` (e.g. 'plan_system.md')."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def render(template: str, **values: str) -> str:
    """`template` with each `{name}` replaced by its value, in one pass (a value that holds
    `{tool}` stays as it is). A placeholder without a value is an error, never left in the prompt."""
    missing = sorted({m for m in _PLACEHOLDER.findall(template) if m not in values})
    if missing:
        raise ValueError(f"prompt placeholder {{{missing[0]}}} has no value (given: {', '.join(sorted(values)) or 'none'})")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template).strip()
