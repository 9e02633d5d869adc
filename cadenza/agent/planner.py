"""The planner: a request (and the user's files) in, a validated Plan out.

1. Show worked examples: those most similar to the request (MiniLM, offline), just before it;
   with a mid-sized catalog also a fixed few that together use every tool, in the system prompt
   (llama.cpp evaluates it once, and the embedded model keeps it on disk). See example_counts.
2. With a large catalog (over 50 tools), retrieve the relevant tools first (similar tools plus
   the tools the chosen examples use), so a small model sees a short list. Up to 50 tools go
   whole into the fixed system prompt: on TaskBench (40 tools, 112 cases) that beat retrieving
   8 on e-F1 (30.8 vs 25.6) and valid plans (90 vs 86 %) at equal n-F1, and llama.cpp
   evaluates the fixed prefix once (MiniLM's top 8 hold only 70 % of the right tools).
3. Ask the LLM for JSON constrained to the plan schema (tool names are an enum, each
   tool's arguments are its own), wherever the backend supports it. The embedded model writes
   step by step under a grammar that also type-checks references (stepwise.py).
4. Validate with the core validator; on problems, give them back to the LLM (bounded).
5. Optionally (`step_check`, embedded LLM), ask the LLM afresh whether the request needs each
   step, and drop those it doubts (step_check.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from ..engine.plan import Plan, iter_refs
from ..engine.validate import validate_plan
from ..errors import InputError, LLMError, PlanError
from ..llm.chat import complete_json
from ..media import Media
from ..prompts import load_prompt, render
from ..tools.base import Tool
from ..tools.registry import Registry
from ..tools.types import is_media_tag, list_item
from .embed import Embedder, default_embedder
from .examples import Example, ExamplePool, cover_examples
from .step_check import drop_steps, low_scored, step_scores
from .stepwise import inputs_for_grammar, plan_stepwise


def check_request(request: str) -> str:
    """The request, stripped; an empty one is bad input."""
    request = (request or "").strip()
    if not request:
        raise InputError("empty request: say what you want done")
    return request


@dataclass
class PlanOutcome:
    plan: Plan | None  # None: no tool can serve the request (see `reason`)
    reason: str | None = None
    attempts: int = 1
    seconds: float = 0.0
    problems: list[list[str]] = field(default_factory=list)  # per failed attempt
    tools_shown: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    step_scores: dict[str, float] = field(default_factory=dict)  # tool -> step-check log-odds (step_check.py)
    dropped: list[str] = field(default_factory=list)  # step ids the step check took out
    unchecked: Plan | None = None  # the plan before the step check dropped steps
    check_seconds: float = 0.0


class Planner:
    def __init__(self, llm, registry: Registry, examples: ExamplePool | None = None, *, n_examples: int | None = None,
                 retrieve_above: int = 50, top_k: int = 8, max_repairs: int = 2, embedder: Embedder | None = None,
                 example_style: str = "turns", stepwise: bool = True, anchors: int | None = None,
                 anchors_above: int = 20, tool_bias: dict[str, float] | None = None,
                 step_check: float | None = None):
        self.llm = llm
        self.registry = registry
        self.embedder = embedder or (examples.embedder if examples else default_embedder())
        self.examples = examples if examples is not None else ExamplePool.builtin()
        self.n_examples = n_examples  # None: chosen by catalog size (example_counts)
        self.retrieve_above = retrieve_above
        self.top_k = top_k
        self.max_repairs = max_repairs
        self.example_style = example_style  # "turns" (chat turns) or "inline" (listed in the request)
        self.stepwise = stepwise  # the embedded LLM writes step by step, references type-checked (stepwise.py)
        self.system = load_prompt("plan_system.md")
        self.anchors = anchors  # None: chosen by catalog size (example_counts)
        self.anchors_above = anchors_above
        self._anchor_block: str | None = None
        self._anchor_exclude: set[str] = set()
        # Embedded LLM only: tool t's probability at the tool-name choice is weighed by exp(tool_bias[t]),
        # to correct the tools a small model over- or under-uses (taskbench.calibrate measures them).
        self.tool_bias = tool_bias
        # Embedded LLM only: after a plan of 2+ steps, drop the steps whose "did the request ask for
        # this?" log-odds fall below this threshold (step_check.py; -inf scores them and drops none).
        self.step_check = step_check

    def example_counts(self) -> tuple[int, int]:
        """(fixed examples in the system prompt, similar examples per request), by catalog size.

        - Up to 20 tools: no fixed examples, the 3 most similar. Cadenza's 13 tools, each built-in
          example left out in turn: node F1 78.7 vs 69.8 with fixed ones on 19 examples, 77.2 vs 76.7 on 43.
        - 21-50 tools: 12 fixed examples that together use every tool (evaluated once with the
          catalog) and the 1 most similar (each costs ~150-250 prompt tokens, ~3 s on 2 cores).
          TaskBench's 40 tools, 60 cases: node F1 69.5 in 9.9 s a plan, 3 similar 69.4 in 15.2 s.
        - Over 50 tools the catalog is retrieved per request, so nothing is fixed: 3 similar."""
        n = len(self.catalog_tools())
        if n > self.retrieve_above:
            return 0, max(self.n_examples or 3, 3)
        fixed = self.anchors if self.anchors is not None else (12 if n > self.anchors_above else 0)
        similar = self.n_examples if self.n_examples is not None else (1 if fixed else 3)
        return fixed, similar

    # -- prompt pieces -------------------------------------------------------------
    def catalog_tools(self) -> list[Tool]:
        """The tools the LLM may choose from: every registered tool but workflow building blocks."""
        return [t for t in self.registry if t.plannable]

    def choose_tools(self, request: str, examples: list[Example]) -> list[Tool]:
        tools = self.catalog_tools()
        if len(tools) <= self.retrieve_above:
            return tools
        scores = self.embedder.similarity([request], [f"{t.name}: {t.description}" for t in tools])[0]
        ranked = [tools[i] for i in sorted(range(len(tools)), key=lambda i: -scores[i])]
        chosen = {t.name for t in ranked[:self.top_k]}
        chosen |= {name for e in examples for name in e.tools() if name in self.registry}
        return [t for t in tools if t.name in chosen]

    def messages(self, request: str, files: dict[str, Media], exclude: set[str] = frozenset(),
                 history: list | None = None, followup: list | None = None) -> tuple[list, list[Tool], list[Example]]:
        """System prompt, worked examples as earlier turns, the conversation so far, then the request.

        A small catalog goes whole into the system prompt, which stays the same from request to
        request, so llama.cpp reuses its evaluated prefix; a large one is cut down per request and
        shown beside it."""
        k = self.example_counts()[1]
        examples = self.examples.select(request, k, exclude)
        tools = self.choose_tools(request, examples)
        retrieved = len(tools) < len(self.catalog_tools())
        system = self.system if retrieved else f"{self.system}\n\nTools:\n{catalog(tools)}{self.anchor_block()}"
        msgs: list = [SystemMessage(system)]
        shown = []
        for e in examples:
            plan_text = json.dumps(e.plan, separators=(",", ":"))
            if self.example_style == "inline":
                shown.append(f"Request: {e.request}\nPlan: {plan_text}")
            else:
                msgs.append(HumanMessage(f"Files: {e.files_line()}\nRequest: {e.request}"))
                msgs.append(AIMessage(plan_text))
        msgs.extend(history or [])
        tools_part = f"Tools:\n{catalog(tools)}\n" if retrieved else ""
        examples_part = ("Examples of good plans for other requests:\n" + "\n\n".join(reversed(shown)) + "\n\n"
                         if shown else "")
        msgs.append(HumanMessage(tools_part + examples_part + render(load_prompt("plan_request.md"),
                                                                     files=files_line_for(files), request=request)))
        msgs.extend(followup or [])
        return msgs, tools, examples

    def exclude_from_anchors(self, ids: set[str]) -> None:
        """Never show these examples as fixed ones (a benchmark's own cases)."""
        if set(ids) != self._anchor_exclude:  # the same set again keeps the block (and llama.cpp's evaluated prefix)
            self._anchor_exclude, self._anchor_block = set(ids), None

    def anchor_block(self) -> str:
        """Fixed worked examples chosen once to cover the catalog's tools (greedy set cover), shown in
        the system prompt: llama.cpp evaluates them once, not per request."""
        if self._anchor_block is None:
            chosen = cover_examples([e for e in self.examples.examples if e.id not in self._anchor_exclude],
                                    {t.name for t in self.catalog_tools()}, self.example_counts()[0])
            self._anchor_block = "".join(
                f"\n\nExample request: {e.request}\n"
                + (f"Files: {e.files_line()}\n" if e.files else "")
                + f"Plan: {json.dumps(e.plan, separators=(',', ':'))}" for e in chosen)
        return self._anchor_block

    # -- planning -------------------------------------------------------------------
    def plan(self, request: str, files: dict[str, Media] | None = None, *, exclude: set[str] = frozenset(),
             history: list | None = None, followup: list | None = None) -> PlanOutcome:
        request = check_request(request)
        files = files or {}
        start = time.monotonic()
        msgs, tools, examples = self.messages(request, files, exclude, history, followup)
        schema = llm_plan_schema(tools)
        outcome = PlanOutcome(None, tools_shown=[t.name for t in tools], examples=[e.id for e in examples])
        for attempt in range(1, self.max_repairs + 2):
            outcome.attempts = attempt
            plan = None
            try:
                data, raw = self.ask(msgs, tools, files, schema, request)
                outcome.raw.append(raw)
                plan = to_plan(data, files)
                problems = validate_plan(plan, self.registry)
            except LLMError as e:
                if attempt > self.max_repairs:
                    raise
                raw, problems = e.raw or "", [str(e)]
            if not problems:
                outcome.seconds = time.monotonic() - start
                if not plan.steps:
                    outcome.reason = str(data.get("reason") or "no listed tool can do this")
                    return outcome
                outcome.plan = self.check_steps(request, plan, outcome)
                outcome.seconds = time.monotonic() - start
                return outcome
            outcome.problems.append(problems)
            msgs = msgs + [AIMessage(raw or "{}"),
                           HumanMessage(render(load_prompt("plan_repair.md"), problems="\n".join(f"- {p}" for p in problems)))]
        outcome.seconds = time.monotonic() - start
        raise PlanError([f"the LLM's plan still fails after {self.max_repairs} repairs: {outcome.problems[-1][0]}"]
                        + outcome.problems[-1][1:], last_plan=plan)

    def check_steps(self, request: str, plan: Plan, outcome: PlanOutcome) -> Plan:
        """The plan without the steps the step check finds the request did not ask for (embedded LLM)."""
        if self.step_check is None or len(plan.steps) < 2 or not getattr(self.llm, "raw_decoding", False):
            return plan
        start = time.monotonic()
        outcome.step_scores = step_scores(self.llm, request, [s.tool for s in plan.steps], self.registry)
        checked, outcome.dropped = drop_steps(plan, low_scored(outcome.step_scores, self.step_check), self.registry)
        outcome.unchecked = plan if outcome.dropped else None
        outcome.check_seconds = time.monotonic() - start
        return checked

    def ask(self, msgs: list, tools: list[Tool], files: dict[str, Media], schema: dict,
            request: str) -> tuple[dict, str]:
        if self.stepwise and getattr(self.llm, "raw_decoding", False):
            # a step's JSON is a few dozen tokens plus what it copies from the request (~3.5 chars a token)
            return plan_stepwise(self.llm, msgs, tools, inputs_for_grammar(files), step_tokens=64 + len(request) // 3,
                                  tool_bias=self.tool_bias)
        return complete_json(self.llm, msgs, schema)


def catalog(tools: list[Tool]) -> str:
    """One line a tool: `name(arg: type, opt?: type) -> type: description` (first sentence)."""
    lines = []
    for t in tools:
        lines.append(f"- {t.signature_line()}: {t.summary()}")
    return "\n".join(lines)


def files_line_for(files: dict[str, Media]) -> str:
    return ", ".join(f"${n} {m.describe()}" for n, m in files.items()) or "none"


def to_plan(data: dict, files: dict[str, Media]) -> Plan:
    """The LLM's JSON as a Plan whose inputs are the user's files."""
    steps = data.get("steps")
    if not isinstance(steps, list):
        raise LLMError("the LLM's reply has no 'steps' list")
    try:
        return Plan.model_validate({"inputs": {n: {"type": m.kind} for n, m in files.items()}, "steps": steps})
    except Exception as e:  # pydantic: a step without id/tool, a bad id
        raise LLMError(f"the LLM's plan is malformed: {str(e).splitlines()[0]}") from None


def llm_plan_schema(tools: list[Tool]) -> dict:
    """JSON Schema the LLM's reply is constrained to: each step is one of the tools, with its own arguments."""
    variants = []
    for t in tools:
        props = {n: _arg_schema(p.tag) for n, p in t.params.items()}
        variants.append({"type": "object", "properties": {
            "id": {"type": "string", "pattern": "^s[0-9]{1,2}$"},
            "tool": {"const": t.name},
            "args": {"type": "object", "properties": props, "required": [n for n, p in t.params.items() if p.required],
                     "additionalProperties": False}},
            "required": ["id", "tool", "args"], "additionalProperties": False})
    step = {"anyOf": variants} if variants else {"type": "object"}
    return {"type": "object", "properties": {"steps": {"type": "array", "items": step, "maxItems": 12},
                                             "reason": {"type": "string"}},
            "required": ["steps"], "additionalProperties": False}


def _arg_schema(tag: str) -> dict:
    item = list_item(tag)
    if item is not None:
        return {"type": "array", "items": _arg_schema(item)}
    if is_media_tag(tag) or tag in ("text", "any"):
        return {"type": "string"}
    if tag in ("number", "integer"):  # a literal, or a "$step" reference
        return {"anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^\$[A-Za-z_][A-Za-z0-9_.]*$"}]}
    if tag == "boolean":
        return {"type": "boolean"}
    return {}


def plan_edges(plan: Plan) -> list[tuple[str, str]]:
    """(source tool, target tool) for every reference between steps: what TaskBench's e-F1 counts."""
    by_id = {s.id: s.tool for s in plan.steps}
    edges = []
    for s in plan.steps:
        for v in s.args.values():
            for r in iter_refs(v):
                if r.source in by_id:
                    edges.append((by_id[r.source], s.tool))
    return edges


