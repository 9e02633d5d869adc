"""Worked examples for the planner: the pool, how examples are chosen, and TaskBench cases as examples.

Cadenza ships a pool for its own tools (`cadenza/prompts/examples.jsonl`); a user adds more
in the same JSONL (`{"request", "files", "plan"}`) or as TaskBench cases, whose `<node-k>`
arguments become references.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..prompts import load_prompt
from ..tools.registry import Registry
from .embed import Embedder, default_embedder


@dataclass
class Example:
    id: str
    request: str
    plan: dict  # {"steps": [...], "reason"?: str}
    files: dict[str, str] = field(default_factory=dict)  # name -> kind

    def tools(self) -> list[str]:
        return [s["tool"] for s in self.plan.get("steps", [])]

    def files_line(self) -> str:
        return ", ".join(f"${n} ({k})" for n, k in self.files.items()) or "none"


class ExamplePool:
    """Worked examples the planner may show the LLM; the most similar ones are chosen per request."""

    def __init__(self, examples: list[Example], embedder: Embedder | None = None):
        self.examples = examples
        self.embedder = embedder or default_embedder()

    @classmethod
    def builtin(cls) -> "ExamplePool":
        return cls(load_examples_text(load_prompt("examples.jsonl")))

    @classmethod
    def from_file(cls, path: str | Path, registry: Registry | None = None) -> "ExamplePool":
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise InputError(f"cannot read examples file {path}: {e.strerror or e}") from None
        return cls(load_examples_text(text, registry, source=str(path)))

    def __add__(self, other: "ExamplePool") -> "ExamplePool":
        return ExamplePool(self.examples + other.examples, self.embedder)

    def select(self, request: str, k: int, exclude: set[str] = frozenset()) -> list[Example]:
        pool = [e for e in self.examples if e.id not in exclude]
        if not pool or k <= 0:
            return []
        scores = self.embedder.similarity([request], [e.request for e in pool])[0]
        best = sorted(range(len(pool)), key=lambda i: -scores[i])[:k]
        return [pool[i] for i in reversed(best)]  # most similar last, nearest the request


def load_examples_text(text: str, registry: Registry | None = None, source: str = "examples") -> list[Example]:
    """Examples in Cadenza's format ({"request", "plan"}) or TaskBench's ({"instruction", "task_nodes"})."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{source} line {n}: not JSON ({e.msg})") from None
        if "task_nodes" in d:
            out.append(taskbench_example(d, registry))
        elif "request" in d and "plan" in d:
            out.append(Example(str(d.get("id", n)), d["request"], d["plan"], d.get("files", {})))
        else:
            raise InputError(f"{source} line {n}: an example needs 'request' and 'plan' (or TaskBench fields)")
    return out


def taskbench_example(case: dict, registry: Registry | None) -> Example:
    """A TaskBench case as a worked example: `<node-k>` arguments become references, wired
    along the case's own task_links (its node numbering is not consistent)."""
    nodes = case["task_nodes"]
    ids = [f"s{i + 1}" for i in range(len(nodes))]
    steps = []
    for i, node in enumerate(nodes):
        sources = [ids[j] for j, other in enumerate(nodes[:i])
                   if any(l["source"] == other["task"] and l["target"] == node["task"] for l in case.get("task_links", []))]
        tool = registry.get(node["task"]) if registry is not None and node["task"] in registry else None
        names = list(tool.params) if tool else [f"arg{k + 1}" for k in range(len(node["arguments"]))]
        args = {}
        for k, a in enumerate(node["arguments"]):
            if isinstance(a, str) and a.startswith("<node-"):
                a = "$" + (sources.pop(0) if sources else _node_ref(a, i, ids))
            if k < len(names):
                args[names[k]] = a if isinstance(a, str) else json.dumps(a)
        steps.append({"id": ids[i], "tool": node["task"], "args": args})
    return Example(str(case.get("id")), case["instruction"], {"steps": steps})


def _node_ref(token: str, i: int, ids: list[str]) -> str:
    """`<node-k>` without a matching link: TaskBench counts from 0 or from 1, so take the
    earlier step that k can name."""
    try:
        k = int(token[6:-1])
    except ValueError:
        return ids[i - 1] if i else ids[0]
    return ids[k] if k < i else ids[max(0, min(k - 1, i - 1))]


def cover_examples(examples: list[Example], tools: set[str], limit: int) -> list[Example]:
    """Up to `limit` examples that together use as many of `tools` as possible (greedy; ties go to
    the shorter example)."""
    chosen, left = [], set(tools)
    while left and len(chosen) < limit:
        best = max(examples, key=lambda e: (len(left & set(e.tools())), -len(e.request)), default=None)
        if best is None or not left & set(best.tools()):
            break
        chosen.append(best)
        left -= set(best.tools())
    return chosen
