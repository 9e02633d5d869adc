"""Step-by-step constrained decoding for the embedded LLM: references are type-checked as they are written.

One JSON-schema grammar for a whole plan cannot know which earlier step gives an image, so a
small model happily feeds an image step into a video argument, and the repair loop that follows
costs more than the plan. Here the embedded model writes the plan one step at a time; before
each step the grammar is rebuilt from the steps so far, so an argument may reference only an
earlier step or a user file whose type it accepts (a literal is still allowed, but it cannot
start with `$`). Plans come out valid by construction: no unknown or forward references, no
self-references, no type mismatches, every required argument present.

llama.cpp keeps the evaluated prompt between calls, so each step evaluates only its new tokens.
The grammar is GBNF written here (compact JSON), not JSON Schema, because a literal string that
may not start with `$` has no JSON-Schema spelling llama.cpp's converter gets right.
"""

from __future__ import annotations

import ctypes
import json
import math
import re
from typing import Any

from ..errors import LLMError
from ..tools.base import Tool
from ..media import MEDIA_FIELDS, media_field_tag
from ..tools.types import accepts, is_media_tag, list_item, split_union

MAX_STEPS = 12

# JSON pieces, compact (the worked examples are compact, so a greedy model writes compact JSON anyway).
_BASE = r'''
char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])
string ::= "\"" char* "\""
literal ::= "\"" ([^"$\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])) char* "\""
number ::= "-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?
boolean ::= "true" | "false"
value ::= string | number | boolean | "null" | array | object
array ::= "[" (value ("," value)*)? "]"
object ::= "{" (string ":" value ("," string ":" value)*)? "}"
'''


def gbnf_literal(text: str) -> str:
    """`text` as a GBNF string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def ref_options(known: dict[str, Tool | str]) -> list[tuple[str, str]]:
    """(`$reference`, type tag) for every user file and earlier step; a step with several outputs
    offers the whole and each field."""
    out = []
    for name, src in known.items():
        if isinstance(src, str):  # a user file: its type tag
            out.append((f"${name}", src))
            out.extend(_media_fields(name, src))
            continue
        out.append((f"${name}", src.output_tag()))
        if len(src.outputs) > 1:
            out.extend((f"${name}.{field}", tag) for field, tag in src.outputs.items())
        else:
            out.extend(_media_fields(name, src.output_tag() or ""))
    return out


def _media_fields(name: str, tag: str) -> list[tuple[str, str]]:
    """`$name.duration` (a number) and the other fields a plan may read off a media value of this tag."""
    kinds = split_union(tag)
    fields = {f for k in kinds for f in MEDIA_FIELDS.get(k, {})}
    return [(f"${name}.{f}", t) for f in sorted(fields) if (t := media_field_tag(kinds, f)) is not None]


class StepGrammar:
    """The GBNF for step number `k`, cut where the tokenizer cuts: each call starts after `{"id` and
    ends with `,{"id` (more to come) or `]}` (done), so no prompt ends inside a token the model
    would have written whole. The first call also writes the opening, or an empty plan with its reason."""

    def __init__(self, k: int, tools: list[Tool], known: dict[str, Tool | str], last: bool = False):
        self.refs = ref_options(known)
        self.rules: dict[str, str] = {}
        variants = [self._tool_rule(i, t) for i, t in enumerate(tools)]
        step = f'"\\":\\"s{k}\\",\\"tool\\":" ({" | ".join(variants)}) "}}"'
        end = '"]}"' if last else '(",{\\"id" | "]}")'
        root = f"{step} {end}"
        if k == 1:  # the opening; or no tool can serve the request, and why
            root = f'"{{\\"steps\\":[{{\\"id" {root} | "{{\\"steps\\":[],\\"reason\\":" string "}}"'
        self.rules["root"] = root

    def text(self) -> str:
        return "\n".join(f"{n} ::= {r}" for n, r in self.rules.items()) + _BASE

    def _tool_rule(self, i: int, tool: Tool) -> str:
        name = f"tool{i}"
        args = [(f'{gbnf_literal(json.dumps(p.name) + ":")} {self._value_rule(p.tag)}', p.required)
                for p in tool.params.values()]
        required = [a for a, req in args if req]
        optional = [a for a, req in args if not req]
        body = ' "," '.join(required)
        if optional:
            chain = self._optional_chain(name, optional)
            body = f'{body} ("," {chain})?' if body else f"({chain})?"
        self.rules[name] = f'{gbnf_literal(json.dumps(tool.name) + ",")} "\\"args\\":{{" {body} "}}"'
        return name

    def _optional_chain(self, prefix: str, opts: list[str]) -> str:
        """Any in-order subset of the optional arguments, comma-separated (as llama.cpp's own
        JSON-schema converter does it)."""
        alts = []
        for j, opt in enumerate(opts):
            rest = opts[j + 1:]
            alts.append(f'{opt} ("," {self._optional_chain(f"{prefix}o{j}", rest)})?' if rest else opt)
        name = f"{prefix}-opt"
        self.rules[name] = " | ".join(alts)
        return name

    def _value_rule(self, tag: str) -> str:
        """Rule for an argument of type `tag`: a reference whose type it accepts, or a literal."""
        name = "v-" + "".join(c if c.isalnum() else "-" for c in tag)
        if name in self.rules:
            return name
        item = list_item(tag)
        refs = [r for r, t in self.refs if accepts(tag, t) or (item is not None and accepts(item, t))]
        alts = [gbnf_literal(json.dumps(r)) for r in refs]
        self.rules[name] = ""  # reserve the name (a list's item rule may recurse into it)
        if item is not None:
            alts.append(f'"[" ({self._value_rule(item)} ("," {self._value_rule(item)})*)? "]"')
        elif is_media_tag(tag) or tag == "text":
            alts.append("literal")
        elif tag in ("number", "integer"):
            alts.append("number")
        elif tag == "boolean":
            alts.append("boolean")
        else:
            alts.append("literal | number | boolean | array | object")
        self.rules[name] = " | ".join(alts)
        return name


class ToolNameBias:
    """A llama.cpp logits processor that weighs the tool-name choice: tool t's probability is
    multiplied by exp(bias[t]). A name takes several tokens, so each token is shifted by how the
    mean weight of the names it still allows changes (exact when the names part at one token)."""

    def __init__(self, llama, bias: dict[str, float]):
        self.llama = llama
        self.weights = {json.dumps(name) + ",": math.exp(b) for name, b in bias.items()}  # as the grammar writes it
        self.n_prompt: int | None = None
        self.token_text: dict[int, str] = {}

    def _text(self, tokens) -> str:
        return "".join(self._piece(int(t)) for t in tokens)

    def _piece(self, t: int) -> str:
        if t not in self.token_text:
            self.token_text[t] = self.llama.detokenize([t]).decode("utf-8", errors="replace")
        return self.token_text[t]

    def _log_weight(self, prefix: str) -> float | None:
        ws = [w for s, w in self.weights.items() if s.startswith(prefix) or prefix.startswith(s)]
        return math.log(sum(ws) / len(ws)) if ws else None

    def __call__(self, input_ids, scores):
        if self.n_prompt is None:
            self.n_prompt = len(input_ids)
        text = self._text(input_ids[self.n_prompt:])
        at = text.rfind('"tool":')
        if at < 0:
            return scores
        partial = text[at + 7:]
        if '",' in partial:
            return scores  # the name is written
        base = self._log_weight(partial)
        if base is None:
            return scores
        import numpy as np

        top = min(64, len(scores))  # the grammar keeps the choice among the likeliest tokens
        for t in np.argpartition(scores, -top)[-top:]:
            w = self._log_weight(partial + self._piece(int(t)))
            if w is not None:
                scores[t] += w - base
        return scores


class GreedyGrammar:
    """A llama.cpp logits processor that applies a GBNF grammar to greedy decoding, checking the
    model's own best token first and the whole vocabulary only when the grammar rejects it.

    llama-cpp-python's grammar sampler checks all 151k tokens of the vocabulary at every step
    (~17 ms a token on 2 cores, a tenth of a plan's time); mostly the model's first choice is
    allowed anyway, and then it is also the best allowed token, so the result is the same
    (llama.cpp's own common sampler does this). Use it as the last processor, with no `grammar=`
    and temperature 0; one instance per completion (it follows the grammar through the tokens
    written so far)."""

    def __init__(self, llama, grammar: str):
        import llama_cpp

        self._lib = llama_cpp
        self.sampler = llama_cpp.llama_sampler_init_grammar(llama._model.vocab, grammar.encode(), b"root")
        if not self.sampler:
            raise LLMError("the embedded LLM's plan grammar does not parse")
        self.seen: int | None = None  # tokens in the context when the grammar last caught up
        self.rejected = 0  # times the model's best token was not allowed (the whole vocabulary was checked)

    def __del__(self):
        if getattr(self, "sampler", None):
            self._lib.llama_sampler_free(self.sampler)

    def __call__(self, input_ids, scores):
        import numpy as np

        lib = self._lib
        if self.seen is not None:  # the tokens written since the last call
            for token in input_ids[self.seen:]:
                lib.llama_sampler_accept(self.sampler, int(token))
        self.seen = len(input_ids)
        best = int(np.argmax(scores))
        one = (lib.llama_token_data * 1)(lib.llama_token_data(best, float(scores[best]), 0.0))
        lib.llama_sampler_apply(self.sampler, ctypes.byref(lib.llama_token_data_array(one, 1, -1, False)))
        if one[0].logit != -math.inf:
            return scores
        self.rejected += 1
        data = np.zeros(len(scores), dtype=np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True))
        data["id"] = np.arange(len(scores))
        data["logit"] = scores
        array = lib.llama_token_data_array(data.ctypes.data_as(ctypes.POINTER(lib.llama_token_data)), len(scores), -1, False)
        lib.llama_sampler_apply(self.sampler, ctypes.byref(array))
        return data["logit"]


def plan_stepwise(model, messages: list, tools: list[Tool], inputs: dict[str, str], *,
                  step_tokens: int | None = None, max_steps: int = MAX_STEPS,
                  tool_bias: dict[str, float] | None = None) -> tuple[dict, str]:
    """The plan as {"steps": [...]} (or {"steps": [], "reason": ...}) and its raw text, written by
    the embedded LLM one step at a time under a grammar that knows the steps so far.

    `step_tokens` caps each step: a step copies at most the request's own text, and a small model
    that falls into repeating itself inside a literal should be stopped early, not at max_tokens."""
    from llama_cpp import LogitsProcessorList

    by_name = {t.name: t for t in tools}
    weights = {t.name: tool_bias.get(t.name, 0.0) for t in tools} if tool_bias else None
    known: dict[str, Tool | str] = dict(inputs)
    text = ""
    with model.raw_session(messages) as (llama, prompt):
        for k in range(1, max_steps + 1):
            grammar = StepGrammar(k, tools, known, last=k == max_steps)
            try:
                # new processors per call: each reads only what this call writes
                processors = [ToolNameBias(llama, weights)] if weights else []
                out = llama.create_completion(prompt + text, max_tokens=min(model.max_tokens, step_tokens or 1 << 30),
                                              temperature=0.0, seed=model.seed,
                                              logits_processor=LogitsProcessorList(processors + [GreedyGrammar(llama, grammar.text())]))
            except ValueError as e:  # llama.cpp: the prompt no longer fits the context
                raise LLMError(f"the embedded LLM failed: {str(e).splitlines()[0]}") from None
            piece = out["choices"][0]["text"]
            text += piece
            tool = _TOOL.search(piece)
            if not piece.endswith(',{"id') or tool is None:
                break  # done, an empty plan, or cut off by max_tokens (reported below)
            known[f"s{k}"] = by_name[json.loads(tool.group(1))]
    try:
        return json.loads(text), text
    except json.JSONDecodeError:
        raise LLMError(f"the LLM's plan was cut off after {len(text)} characters (got: ...{text[-60:]!r})",
                       raw=text) from None


_TOOL = re.compile(r'"tool":("(?:[^"\\]|\\.)*")')


def inputs_for_grammar(files: dict[str, Any]) -> dict[str, str]:
    """User files as reference targets: name -> type tag (their media kind)."""
    return {name: getattr(m, "kind", "any") for name, m in files.items()}
