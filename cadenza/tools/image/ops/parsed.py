"""What reading an instruction gives, by rules (parse.py) or by the LLM (llm.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Parsed:
    ops: list[dict[str, Any]]  # [{"op": name, "params": {...}}], params as read (defaults filled later)
    unknown: list[str] = field(default_factory=list)  # parts of the instruction no operation serves
    parser: str = "rules"  # "rules" or "llm"
    notes: list[str] = field(default_factory=list)
