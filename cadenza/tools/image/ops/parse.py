"""Instruction -> operations: `parse_instruction` asks the configured LLM (llm.py) when there is one and
falls back to `parse_rules`, which reads the words itself.

The rules: quoted text is set aside (it is written, never read as a command), the instruction is split
into clauses on ',', ';', '.', 'and', 'then', 'plus', and each clause is matched against the rules (rules.py),
in priority order (a clause about the background is not also a blur). Operations come out in the order
the instruction names them. A clause no rule matches is "not understood"; words left over in a clause
that did match ("make the *sky* bluer") are reported too, so a partial reading is never silent.
Clauses that refuse something ("don't crop", "keep the size") ask for nothing and are dropped.
"""

from __future__ import annotations

import re
from typing import Any

from .parsed import Parsed
from .rules import BIG, COLOR_RE, DOWN, FILLER, NEGATION, QUALIFIERS, RULES, SMALL, UP, I, State




# -- driving the rules ----------------------------------------------------------------------------------

_QUOTED = re.compile(r"(?:(?<=^)|(?<=[\s:(]))([\"'])(.+?)\1(?=$|[\s,.;:!?)])")
_SPLIT = re.compile(r"\s*(?:[,;!]|\.(?!\d)|\band then\b|\bthen\b|\band also\b|\balso\b|\bplus\b|\band\b|&)\s*", I)


def _prepare(instruction: str) -> tuple[str, list[str]]:
    """Quotes set aside as QUOTE<n>, spelling variants merged; case is kept (the rules ignore it)."""
    text = instruction.translate(str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "«": '"', "»": '"'}))
    quotes: list[str] = []

    def keep(m: re.Match) -> str:
        quotes.append(m.group(2))
        return f" QUOTE{len(quotes) - 1} "
    text = _QUOTED.sub(keep, text)
    for pat, repl in ((r"\bb\s*&\s*w\b|\bb/w\b|\bblack[- ]?(?:and|&|n)[- ]?white\b", "blackandwhite"),
                      (r"\bcolour", "color"), (r"\bgrey", "gray"), (r"\bcentre", "center"), (r"°", " degrees"),
                      (r"\b(\d+)\s*(?:x|×|by)\s*(\d+)\b", r"\1x\2"), (r"\bpixels?\b", "px"),
                      (r"\bsalt and pepper\b", "salt-and-pepper"), (r"\bhead and shoulders\b", "head-shoulders")):
        text = re.sub(pat, repl, text, flags=I)
    return " ".join(text.split()), quotes


def _leftovers(clause: str, spans: list[tuple[int, int]], qualifiers: bool = True) -> list[str]:
    """Words of the clause no rule used, less filler (and, with `qualifiers`, the words that only qualify an
    operation: amounts, directions, positions, colours): what was not understood."""
    words = []
    for w in re.finditer(r"[A-Za-z][A-Za-z'-]*", clause):
        if any(a <= w.start() < b for a, b in spans):
            continue
        word = w.group(0).lower()
        if word in FILLER or word.startswith("quote") and re.fullmatch(r"QUOTE\d+", w.group(0)):
            continue
        if qualifiers and (word in QUALIFIERS or COLOR_RE.fullmatch(word)
                           or re.fullmatch(UP + "|" + DOWN + "|" + SMALL + "|" + BIG, word, I)):
            continue
        words.append(w.group(0))
    return words


def _read(clause: str, state: State) -> tuple[list[dict], list[tuple[int, int]]]:
    """The clause's operations (in the order its words come) and the spans of it the rules used."""
    found: list[tuple[int, dict]] = []
    spans: list[tuple[int, int]] = []
    for pattern, build in RULES:
        for m in pattern.finditer(clause):
            if any(a < m.end() and m.start() < b for a, b in spans):
                continue
            got = build(m, clause, state)
            if got:
                found.extend((m.start(), o) for o in got)
                # these read the whole clause (positions, colours, sizes): nothing in it is left for others
                whole = got[0]["op"] in ("text", "composite", "replace_background", "crop", "resize", "border", "rotate")
                # otherwise the rule used all its words ("gaussian blur")
                spans.extend([(0, len(clause))] if whole else [(x.start(), x.end()) for x in pattern.finditer(clause)
                                                                 if not any(a < x.end() and x.start() < b for a, b in spans)])
                break
    return [o for _, o in sorted(found, key=lambda f: f[0])], spans


def parse_rules(instruction: str) -> Parsed:
    """The operations the instruction asks for, read by rules (no LLM)."""
    text, quotes = _prepare(instruction)
    state = State(quotes=quotes)
    ops: list[dict] = []
    unknown: list[str] = []
    notes: list[str] = []
    prev: tuple[str, int] | None = None  # the last clause that gave operations, and where its ops start
    for clause in (c.strip() for c in _SPLIT.split(text)):
        if not clause or not _leftovers(clause, [], qualifiers=False) and not re.search(r"\d", clause):
            continue  # "please", "it": nothing asked
        if NEGATION.match(clause):
            continue  # "don't crop it", "keep the colours": nothing to do
        found, spans = _read(clause, state)
        if not found and prev and not _leftovers(clause, []):
            # only qualifiers ("..., 30% wide", "..., in red"): they belong to the clause before
            joined = f"{prev[0]} {clause}"
            again, _ = _read(joined, state)
            if again:
                ops[prev[1]:] = again
                prev = (joined, prev[1])
                continue
        if not found:
            unknown.append(_restore(clause, quotes))
            continue
        prev = (clause, len(ops))
        ops.extend(found)
        rest = _leftovers(clause, spans)
        if rest:
            notes.append(f"edit_image (classic): in {_restore(clause, quotes)!r}, {' '.join(rest)!r} was not understood "
                         f"(the operation applies to the whole picture)")
    return Parsed(ops=_merge(ops), unknown=unknown, parser="rules", notes=notes)


def _restore(clause: str, quotes: list[str]) -> str:
    """The clause as the user wrote it (near enough): quotes back, merged spellings undone."""
    clause = clause.replace("blackandwhite", "black and white").replace("head-shoulders", "head and shoulders")
    return re.sub(r"QUOTE(\d+)", lambda m: f'"{quotes[int(m.group(1))]}"', clause)


def _merge(ops: list[dict]) -> list[dict]:
    """'crop it to 16:9, centred on the face' and 'resize to 800 wide and 600 tall' are one operation each."""
    out: list[dict] = []
    for o in ops:
        prev = out[-1] if out else None
        if prev and prev["op"] == o["op"] and o["op"] in ("crop", "resize") and not set(prev["params"]) & set(o["params"]) \
                and (o["op"] == "crop" or set(prev["params"]) | set(o["params"]) <= {"width", "height"}):
            prev["params"].update(o["params"])
        else:
            out.append(o)
    return out


def parse_instruction(instruction: str) -> Parsed:
    """The configured LLM's reading when one is configured (llm.py decides), else the rules'.
    An LLM answer that is not usable falls back to the rules, with a note."""
    from .llm import configured_llm, read_with_llm

    rules = parse_rules(instruction)
    model = configured_llm()
    if model is None:
        return rules
    try:
        llm = read_with_llm(model, instruction)
    except (AssertionError, KeyboardInterrupt):  # a test model's broken script is the test's failure
        raise
    except Exception as e:  # an invalid answer, a provider error, a missing model: the rules still work
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        rules.notes.insert(0, f"edit_image (classic): the LLM's answer was not usable ({why[:160]}): read by rules")
        return rules
    if not llm.ops and rules.ops:
        rules.notes.insert(0, "edit_image (classic): the LLM found no operation in the instruction; the rules did")
        return rules
    if not llm.ops and not llm.unknown and rules.unknown:  # an empty answer is no verdict on what is unknown
        return rules
    return llm
