"""Prompt templates for the planner, kept as plain files beside this module."""

from __future__ import annotations

from importlib import resources


def load_prompt(name: str) -> str:
    """The text of `cadenza/prompts/<name>` (e.g. 'plan_system.md')."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
