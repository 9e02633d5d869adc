"""Step check: the embedded LLM asks itself, step by step, whether the request asked for each step.

A small model writing a plan adds steps nobody asked for (a Text Simplifier after a summary, a
Keyword Extractor before a search), and once it has written them it defends them: asked in the
planning context, "is this step needed?" separates needed from unneeded steps barely better than
chance (ROC AUC 0.60 after the plan, 0.68 before it). Asked afresh, with only the request and the
one step's tool and description, the same model separates them well (TaskBench, 229 steps: 0.85).
So after a plan of two or more steps, each step gets a score: the log-odds of "yes" over "no" as
the answer's first token. Steps below a threshold are dropped, their consumers rewired to the
dropped step's own input of the type they accept; a drop that would leave the plan invalid is
not made. The threshold is measured on the example pool (`cadenza bench calibrate`), never on the
cases scored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..engine.plan import Plan, iter_refs, parse_ref
from ..engine.validate import validate_plan
from ..prompts import load_prompt, render
from ..tools.base import first_sentence
from ..tools.registry import Registry
from ..tools.types import accepts

_SYSTEM = "You check a plan of tool calls against the user's request. Answer yes or no."


def step_scores(model, request: str, tools: Iterable[str], registry: Registry) -> dict[str, float]:
    """Tool name -> log-odds that the request needs it (yes over no), by the embedded LLM.

    Each tool is asked about once, in a prompt that holds only the request and that tool: the
    prompts differ only in their last line, so llama.cpp evaluates the request once for them all
    (~1 s for the head, ~0.3 s a tool on 2 cores). Naming the plan's other tools in the prompt as
    well cost a tool-list evaluation per question and separated needed from unneeded steps no
    better (TaskBench, 229 steps: ROC AUC 0.835 with the list, 0.853 without)."""
    from ..llm.local import chat_prompt

    template = load_prompt("step_check.md")
    scores: dict[str, float] = {}
    with model.raw_session([]) as (llama, _):
        yes = [_first_token(llama, w) for w in ("yes", "Yes")]
        no = [_first_token(llama, w) for w in ("no", "No")]
        for name in sorted(set(tools)):
            question = render(template, request=request, tool=name,
                              description=first_sentence(registry.get(name).description))
            prompt = chat_prompt(llama, [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": question}])
            first: list = []

            def capture(input_ids, logits):
                if not first:
                    first.append(logits.copy())
                return logits

            llama.create_completion(prompt, max_tokens=1, temperature=0.0, logits_processor=[capture])
            logits = first[0]
            scores[name] = _logsumexp([logits[t] for t in yes]) - _logsumexp([logits[t] for t in no])
    return scores


def low_scored(scores: dict[str, float], threshold: float) -> set[str]:
    """The tools scored below `threshold`, never all of them: if every one is low, the one the
    check likes best stays."""
    low = {t for t, s in scores.items() if s < threshold}
    if scores and low == set(scores):
        low.discard(max(scores, key=scores.get))
    return low


def drop_steps(plan: Plan, tools: set[str], registry: Registry) -> tuple[Plan, list[str]]:
    """The plan without the steps of these tools (their consumers take the dropped step's input
    instead), and the ids dropped. Each drop is kept only if the plan still validates; at least
    one step always stays."""
    dropped = []
    for step in list(plan.steps):
        if step.tool not in tools or len(plan.steps) <= 1:
            continue
        candidate = _without(plan, step.id, registry)
        if candidate is not None and not validate_plan(candidate, registry):
            plan = candidate
            dropped.append(step.id)
    return plan, dropped


def _without(plan: Plan, step_id: str, registry: Registry) -> Plan | None:
    gone = plan.step(step_id)
    gone_tool = registry.get(gone.tool)
    # what the dropped step was given, with its type: a reference's source type, or the parameter's own
    given = []
    for param, value in gone.args.items():
        ref = parse_ref(value)
        tag = _ref_tag(plan, ref, registry) if ref else gone_tool.params[param].tag if param in gone_tool.params else None
        if tag:
            given.append((value, tag))
    steps = []
    for s in plan.steps:
        if s.id == step_id:
            continue
        tool = registry.get(s.tool)
        args = {}
        for param, value in s.args.items():
            if any(r.source == step_id for r in iter_refs(value)):
                want = tool.params[param].tag if param in tool.params else "any"
                fit = next((v for v, tag in given if accepts(want, tag)), None)
                if fit is None or isinstance(value, list):
                    return None  # nothing of the right type to pass on: keep the step
                value = fit
            args[param] = value
        steps.append(s.model_copy(update={"args": args}))
    outputs = {k: v for k, v in plan.outputs.items() if not any(r.source == step_id for r in iter_refs(v))}
    return plan.model_copy(update={"steps": steps, "outputs": outputs})


def _ref_tag(plan: Plan, ref, registry: Registry) -> str | None:
    if ref.source in plan.inputs:
        return plan.inputs[ref.source].type
    try:
        tool = registry.get(plan.step(ref.source).tool)
    except KeyError:
        return None
    return tool.output_tag(ref.field)


def _first_token(llama, word: str) -> int:
    return llama.tokenize(word.encode(), add_bos=False, special=False)[0]


def _logsumexp(xs) -> float:
    m = max(float(x) for x in xs)
    return m + math.log(sum(math.exp(float(x) - m) for x in xs))
