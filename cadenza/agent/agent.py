"""The controller: plan, validate, execute, respond.

    agent = Agent()                                   # the embedded offline LLM
    result = agent.run("read my notes over calm piano", files=["notes.wav", "piano.wav"])
    print(result.answer)

Tool outputs are data: transcripts and other text never go back into a planning
prompt, so they cannot add steps or change the plan. The only thing fed back after
execution is a failed step's error message, for one bounded replan.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from langchain_core.messages import AIMessage, HumanMessage

from ..engine.executor import Event, Executor, RunResult
from ..engine.plan import Plan
from ..engine.validate import check_plan
from ..errors import InputError, PlanError
from ..llm.chat import get_chat_model
from ..media import MEDIA_TYPES, Media, guess_kind
from ..prompts import load_prompt, render
from ..tools.base import Tool
from ..tools.registry import Registry, default_registry
from ..workspace import Workspace
from .examples import ExamplePool
from .planner import Planner, PlanOutcome, check_request


@dataclass
class AgentResult:
    request: str
    answer: str
    plan: Plan | None
    run: RunResult | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    planning: list[PlanOutcome] = field(default_factory=list)
    replans: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.plan is not None and self.run is not None and self.run.ok

    @property
    def exit_code(self) -> int:
        if self.plan is None:
            return 1  # nothing could be done
        return self.run.exit_code if self.run else 1


class Agent:
    def __init__(self, llm: Any = None, tools: Registry | list[Tool] | None = None,
                 examples: ExamplePool | str | Path | None = None, *, out_dir: str | os.PathLike = "cadenza-out",
                 cache: Any = True, max_replans: int = 1, on_event: Callable[[Event], None] | None = None,
                 runner: Any = None, **planner_options: Any):
        self.registry = tools if isinstance(tools, Registry) else (Registry(tools) if tools else default_registry())
        self._llm_spec = llm
        self._llm = None
        self._planner: Planner | None = None
        pool = ExamplePool.builtin()
        if isinstance(examples, ExamplePool):
            pool = examples
        elif examples is not None:
            pool = pool + ExamplePool.from_file(examples, self.registry)
        self.examples = pool
        self.planner_options = planner_options
        self.out_dir = Path(out_dir)
        self.executor = Executor(self.registry, cache=cache, on_event=on_event, runner=runner)  # None: threads
        self.max_replans = max_replans
        self.history: list = []  # chat turns: requests and the plans made for them
        self.media: dict[str, Media] = {}  # every file given or produced so far in the conversation
        self.turns = 0

    @property
    def llm(self):
        if self._llm is None:
            self._llm = get_chat_model(self._llm_spec)
        return self._llm

    @property
    def planner(self) -> Planner:
        """Built once, on first use (it loads the LLM): it keeps its fixed-example block between requests."""
        if self._planner is None:
            self._planner = Planner(self.llm, self.registry, self.examples, **self.planner_options)
        return self._planner

    # -- the stages ---------------------------------------------------------------
    def plan(self, request: str, files: list[str | os.PathLike] | dict[str, str] = ()) -> Plan:
        """A validated plan for the request (nothing runs). Raises PlanError when none can be made."""
        check_request(request)
        outcome = self.planner.plan(request, self._files(files, Workspace.for_run(self.out_dir)))
        if outcome.plan is None:
            raise PlanError([f"no tool can serve this request: {outcome.reason}"])
        return outcome.plan

    def run(self, request: str, files: list[str | os.PathLike] | dict[str, str] = (),
            out_dir: str | os.PathLike | None = None, cancel: threading.Event | None = None) -> AgentResult:
        """Plan, validate, execute and answer. `cancel`, when set, stops the run as Ctrl-C does
        (a server's cancel request)."""
        check_request(request)
        out = Path(out_dir or self.out_dir)
        ws = Workspace.for_run(out, {})
        named = self._files(files, ws)
        return self._run(request, named, ws, history=[], cancel=cancel)

    def chat(self, message: str, files: list[str | os.PathLike] | dict[str, str] = ()) -> AgentResult:
        """One conversation turn: earlier files and outputs stay available ("make the music quieter")."""
        check_request(message)
        ws = Workspace.for_run(self.out_dir, {})
        for m in self.media.values():
            ws.allow(m.path)
        named = {**self.media, **self._files(files, ws)}
        result = self._run(message, named, ws, history=self.history)
        self.history += [HumanMessage(f"Request: {message}"),
                         AIMessage(result.plan.to_json() if result.plan else json.dumps({"steps": []}))]
        if result.run is not None:
            produced = {k: v for k, v in result.outputs.items() if isinstance(v, Media)}
            self.turns += 1
            for k, v in produced.items():  # "turn1_s1": never the same name as a step of the next plan
                self.media[_free_name(f"turn{self.turns}_{k}", self.media)] = v
            if produced:  # the newest output answers to "$last" in the next turn
                self.media["last"] = list(produced.values())[-1]
        self.media.update({k: v for k, v in named.items() if k not in self.media})
        return result

    def _run(self, request: str, files: dict[str, Media], ws: Workspace, history: list,
             cancel: threading.Event | None = None) -> AgentResult:
        outcome = self.planner.plan(request, files, history=history)
        if outcome.plan is None:
            return AgentResult(request, f"I can't do that with the tools I have: {outcome.reason}.", None,
                               planning=[outcome])
        plan = outcome.plan
        values = {n: m.path for n, m in files.items() if n in plan.inputs}
        meta = {"request": request, "llm": _llm_name(self.llm), "planning": _planning_record(outcome), "replans": []}
        result = self.executor.run(plan, values, ws, record={"agent": meta}, cancel=cancel)
        replans: list[dict] = []
        while not result.ok and result.status != "cancelled" and len(replans) < self.max_replans:
            failed = next(r for r in result.steps.values() if r.status == "failed")
            prompt = render(load_prompt("plan_replan.md"), step=failed.id, tool=failed.tool, error=str(failed.error),
                            succeeded=", ".join(r.id for r in result.steps.values() if r.status in ("succeeded", "cached")) or "none")
            retry = self.planner.plan(request, files, history=history,
                                      followup=[AIMessage(plan.to_json()), HumanMessage(prompt)])
            entry = {"failed_step": failed.id, "error": failed.error,
                     "new_plan": retry.plan.model_dump(mode="json", exclude_none=True) if retry.plan else None}
            replans.append(entry)
            if retry.plan is None:
                break
            plan = retry.plan
            meta["replans"] = replans
            values = {n: m.path for n, m in files.items() if n in plan.inputs}
            result = self.executor.run(plan, values, ws, record={"agent": meta}, cancel=cancel)  # succeeded steps come from cache
        return AgentResult(request, answer(plan, result), plan, result, result.outputs, [outcome], replans)

    def _files(self, files, ws: Workspace) -> dict[str, Media]:
        """The user's files as named, probed media: {"narration": <audio narration.wav 8.0s>}."""
        items = files.items() if isinstance(files, dict) else ((None, f) for f in files)
        named: dict[str, Media] = {}
        for name, f in items:
            real = ws.allow(f) if Path(f).exists() else None
            if real is None:
                raise InputError(f"file not found: {f}")
            kind = guess_kind(real)
            if kind not in MEDIA_TYPES:
                raise InputError(f"unsupported file type: {f} (audio, video or image files)")
            key = _free_name(name or _name_for(Path(f)), named)
            named[key] = MEDIA_TYPES[kind].from_path(real)
        return named

    def check(self, plan: Plan) -> Plan:
        return check_plan(plan, self.registry)


def answer(plan: Plan, result: RunResult) -> str:
    """A short reply naming the files produced. Text outputs are quoted as data, never obeyed."""
    lines = []
    if result.ok:
        lines.append(f"Done in {len(plan.steps)} step{'s' if len(plan.steps) != 1 else ''}.")
    else:
        for e in result.errors():
            lines.append(f"Failed: {e}")
    for name, value in result.outputs.items():
        if isinstance(value, Media):
            lines.append(f"- {name}: {value.path} {value.describe()}")
        elif isinstance(value, list) and value and all(isinstance(v, Media) for v in value):
            lines.append(f"- {name}: " + ", ".join(str(v.path) for v in value))
        elif value is not None:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            lines.append(f"- {name}: \"{text[:300]}{'…' if len(text) > 300 else ''}\"")
    if not result.ok:
        kept = [o for o in result.outputs.values() if isinstance(o, Media)]
        if kept:
            lines.append(f"Files already produced were kept in {result.out_dir}.")
    return "\n".join(lines)


def _name_for(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", path.stem).strip("_") or "file"
    return name if not name[0].isdigit() else f"f_{name}"


def _free_name(name: str, taken: dict) -> str:
    if name not in taken:
        return name
    i = 2
    while f"{name}_{i}" in taken:
        i += 1
    return f"{name}_{i}"


def _llm_name(llm) -> str:
    return getattr(llm, "name_", None) or getattr(llm, "model_name", None) or getattr(llm, "model", None) or type(llm).__name__


def _planning_record(o: PlanOutcome) -> dict:
    record = {"attempts": o.attempts, "seconds": round(o.seconds, 3), "problems": o.problems,
              "tools_shown": o.tools_shown, "examples": o.examples}
    if o.step_scores:  # the step check ran: what it thought of each tool, and which steps it dropped
        record["step_check"] = {"scores": {t: round(v, 3) for t, v in o.step_scores.items()}, "dropped": o.dropped}
    return record
