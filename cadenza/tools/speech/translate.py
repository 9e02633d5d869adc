"""translate: text or timed segments into another language, through the configured LLM.

Segments keep their start and end times (only their text is translated), so subtitles and
dubbing built from the translation line up with the original. The LLM sees numbered lines in
small batches and must return exactly as many lines: a long text is translated a batch at a
time, never in one prompt.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any, Iterator

from langchain_core.messages import HumanMessage, SystemMessage

from ...errors import InputError, LLMError
from ...llm.chat import LOCAL_SPECS, complete_json, get_chat_model, resolve_spec
from ..base import Backend, ToolContext, tool
from .languages import code, name as language_name
from .segments import Segment, Translation

MAX_LINES = 12  # lines per LLM call
MAX_CHARS = 900  # characters per LLM call: the reply must fit the local model's output budget

_override: list[Any] = []


@contextlib.contextmanager
def translation_llm(model: Any) -> Iterator[None]:
    """Use this LangChain chat model (or spec) for translate inside the block (tests, notebooks)."""
    _override.append(model)
    try:
        yield
    finally:
        _override.pop()


def _llm():
    return get_chat_model(_override[-1] if _override else None)


def _llm_check() -> str | None:
    if _override:
        return None
    try:
        spec = resolve_spec()
    except Exception as e:  # a broken config file
        return str(e).splitlines()[0]
    if spec in LOCAL_SPECS:
        import importlib.util

        if importlib.util.find_spec("llama_cpp") is None:
            return "needs the embedded LLM: pip install 'cadenza[llm]' (or set CADENZA_LLM)"
    return None


LLM_BACKEND = Backend("llm", "the configured LLM (cadenza.llm; embedded default offline)", check=_llm_check)

SYSTEM = ("You are a professional translator. Translate each line of the JSON list from {src} into {dst}. "
          "Return JSON {{\"lines\": [...]}} with exactly {n} strings, line i translating input line i. "
          "Translate everything, keep names and numbers, add no notes.")


def _schema(n: int) -> dict:
    return {"type": "object", "required": ["lines"], "additionalProperties": False,
            "properties": {"lines": {"type": "array", "items": {"type": "string"}, "minItems": n, "maxItems": n}}}


def batches(lines: list[str]) -> Iterator[list[int]]:
    """Indices of the non-empty lines, grouped into batches of bounded size."""
    cur, size = [], 0
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        if cur and (len(cur) >= MAX_LINES or size + len(line) > MAX_CHARS):
            yield cur
            cur, size = [], 0
        cur.append(i)
        size += len(line)
    if cur:
        yield cur


def translate_lines(lines: list[str], target: str, source: str | None, ctx: ToolContext | None = None) -> list[str]:
    """Each line translated; empty lines stay empty. Batches that come back with the wrong
    number of lines are asked again once, then line by line."""
    model = _llm()
    out = [line if line.strip() else "" for line in lines]
    src = language_name(source) if source else "the source language"
    dst = language_name(target)

    def ask(texts: list[str], constrained: bool = True) -> list[str] | None:
        msgs = [SystemMessage(SYSTEM.format(src=src, dst=dst, n=len(texts))),
                HumanMessage(json.dumps({"lines": texts}, ensure_ascii=False))]
        try:
            data, _ = complete_json(model, msgs, _schema(len(texts)), constrained=constrained)
        except LLMError:
            if constrained:
                raise
            return None  # not JSON: ask again under the schema's grammar
        got = data.get("lines") if isinstance(data, dict) else None
        if isinstance(got, list) and len(got) == len(texts) and all(isinstance(x, str) for x in got):
            return [" ".join(x.split()) for x in got]
        return None

    for idx in batches(lines):
        if ctx is not None:
            ctx.check_cancelled()
        texts = [lines[i] for i in idx]
        got = ask(texts, constrained=False) or ask(texts)  # plain first: twice as fast on llama.cpp
        if got is None:
            got = []
            for t in texts:  # one at a time: a count mismatch is then impossible
                one = ask([t])
                if one is None:
                    raise LLMError(f"translate: the LLM did not return a translation for {t[:40]!r}")
                got.extend(one)
        for i, t in zip(idx, got):
            out[i] = t
    return out


_SENT = re.compile(r"[^.!?…]+(?:[.!?…]+[\"”’)\]]*|$)")


def split_text(text: str) -> tuple[list[str], list[str]]:
    """Sentences, and what joins each to the next (' ' or a paragraph break), so layout survives."""
    sentences, joins = [], []
    for para in re.split(r"\n\s*\n", text.strip()):
        parts = [" ".join(m.group(0).split()) for m in _SENT.finditer(para)]
        parts = [p for p in parts if p]
        for i, p in enumerate(parts):
            sentences.append(p)
            joins.append(" " if i < len(parts) - 1 else "\n\n")
    if joins:
        joins[-1] = ""
    return sentences, joins


@tool(backends=[LLM_BACKEND], version="1")
def translate(target_language: str, ctx: ToolContext, text: str | None = None,
              segments: list[Segment] | None = None, source_language: str | None = None) -> Translation:
    """Translate text, or timed segments (keeping each segment's start and end), into another language.

    Args:
        target_language: the language to translate into, e.g. 'de' or 'French'
        text: plain text to translate (give this or segments)
        segments: timed segments, e.g. a transcript's; their times are kept so subtitles and dubbing line up
        source_language: the language of the input (default: let the LLM tell)
    """
    if segments is not None and not segments and (text is None or not text.strip()):
        # a transcript of a clip with no speech: nothing to translate is not an error
        ctx.note("translate: no segments to translate (no speech?): the translation is empty")
        return Translation(text="", language=code(target_language), segments=[])
    if (text is None or not text.strip()) and not segments:
        raise InputError("translate: give text or segments to translate (both are empty)")
    if text and text.strip() and segments:
        raise InputError("translate: give text or segments, not both")
    target = code(target_language)
    source = code(source_language) if source_language else None
    if source == target:
        ctx.note(f"source and target are both {language_name(target)}: returned unchanged")
        if segments:
            return Translation(text=" ".join(s.text for s in segments), language=target, segments=segments)
        return Translation(text=text or "", language=target, segments=[])
    if segments:
        new = translate_lines([s.text for s in segments], target, source, ctx)
        # words belonged to the original language: they no longer apply
        out = [Segment(start=s.start, end=s.end, text=t) for s, t in zip(segments, new)]
        return Translation(text=" ".join(s.text for s in out if s.text), language=target, segments=out)
    sentences, joins = split_text(text or "")
    new = translate_lines(sentences, target, source, ctx)
    return Translation(text="".join(s + j for s, j in zip(new, joins)), language=target, segments=[])
