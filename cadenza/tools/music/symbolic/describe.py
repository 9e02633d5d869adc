"""Description -> MusicParams, in two steps: what the description says (a MusicChoice, from the rule parser
or the configured LLM), then `resolve`, which fills everything left open from the style and mood tables
with seeded choices (key, progression, the exact tempo).

The rule parser reads genre words ("lo-fi", "orchestral"), mood words and their synonyms ("relaxed",
"melancholic", "suspense"), instruments ("piano", "strings", "synth"), "slow"/"fast", "soft"/"intense",
"no drums", "no melody", "loop", and explicit values: "120 bpm", "in D minor", "key of Bb".

An LLM is asked only when one was chosen on purpose (configured_llm says when); it reads what is vague
("music for a smoky bar" -> jazz, saxophone) through a JSON schema, and the description's own words still
win over it (merge). Any failure or invalid answer falls back to the rules, with a note.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

import numpy as np

from ....llm.chat import ToolLLM
from .harmony import MINOR_FAMILY, key_name
from .params import (INSTRUMENT_STYLES, INSTRUMENTS, MODE_PROGRESSIONS, MODES, MOODS, STYLES, Instruments,
                     MusicChoice, MusicParams)

_NEG = r"(?:no|without|minus|not|zero)\s+(?:\w+\s+)?"
_TEMPO = (("very slow", -0.9), ("slowly", -0.5), ("slower", -0.5), ("slow", -0.5), ("downtempo", -0.5),
          ("very fast", 0.9), ("faster", 0.5), ("fast", 0.5), ("quick", 0.4), ("uptempo", 0.5), ("up-tempo", 0.5),
          ("rapid", 0.6), ("mid-tempo", 0.0), ("midtempo", 0.0))
_ENERGY = (("very soft", -0.25), ("soft", -0.1), ("quiet", -0.12), ("sparse", -0.15), ("minimal", -0.15),
           ("subtle", -0.12), ("background", -0.08), ("understated", -0.12), ("gentle", -0.08),
           ("loud", 0.15), ("intense", 0.15), ("big", 0.1), ("full", 0.08), ("busy", 0.12), ("powerful", 0.12),
           ("driving", 0.12), ("aggressive", 0.2), ("high energy", 0.2), ("high-energy", 0.2), ("low energy", -0.2))


def _find(text: str, phrase: str) -> int:
    """Position of `phrase` as whole words in text, or -1."""
    m = re.search(r"(?<![\w-])" + re.escape(phrase) + r"(?![\w-])", text)
    return m.start() if m else -1


def _first(text: str, table: dict) -> tuple[str | None, str | None]:
    """The entry whose word comes first in the text (longer words win at the same place): (name, word)."""
    best = None
    for name, entry in table.items():
        for w in entry.words:
            i = _find(text, w)
            if i >= 0 and (best is None or (i, -len(w)) < best[0]):
                best = ((i, -len(w)), name, w)
    return (best[1], best[2]) if best else (None, None)


def _negated(text: str, phrase: str) -> bool:
    return re.search(r"(?<![\w-])" + _NEG + re.escape(phrase) + r"(?![\w-])", text) is not None


_QUALITY = r"(major|minor|maj|min|m|dorian|mixolydian|lydian|phrygian)"
_ACC = r"(#|♯|b|♭|-sharp|-flat| sharp| flat)"


def _key(raw: str) -> tuple[str, str | None] | None:
    """(tonic, mode or None) from "in D minor", "key of Bb", "F# major", "Am"; None when no key is named.
    A lower-case letter needs a mode word ("in d minor"), and "in a minor key" names only a mode."""
    for m in re.finditer(r"\b(?:in|key of|key:?)\s+([A-Ga-g])" + _ACC + r"?(?:\s*" + _QUALITY + r")?(?![\w#])(\s+key)?",
                         raw):
        letter, acc, quality, key_word = m.groups()
        if letter.islower() and (not quality or letter == "a" and not acc and key_word):
            continue
        return _tonic(letter, acc), _mode(quality)
    m = re.search(r"(?<![\w-])([A-G])" + _ACC + r"?\s*" + _QUALITY + r"(?![\w#])", raw)
    return (_tonic(m.group(1), m.group(2)), _mode(m.group(3))) if m else None


def _tonic(letter: str, acc: str | None) -> str:
    sign = {"#": "#", "♯": "#", "-sharp": "#", " sharp": "#", "b": "b", "♭": "b", "-flat": "b", " flat": "b"}
    return key_name(letter.upper() + sign.get(acc or "", ""))


def _mode(quality: str | None) -> str | None:
    q = (quality or "").lower()
    return {"maj": "major", "min": "minor", "m": "minor"}.get(q, q) or None


def _clip1(x: float) -> float:
    return float(min(1.0, max(-1.0, x)))


def parse_rules(description: str) -> MusicChoice:
    """What the description says, read by rules; anything it does not say stays None."""
    raw = " ".join(description.split())
    text = raw.lower().replace("–", "-").replace("♯", "#").replace("♭", "b")
    style, _ = _first(text, STYLES)
    mood, _ = _first(text, {k: v for k, v in MOODS.items() if v.words})
    c = MusicChoice(style=style, mood=mood)
    m = re.search(r"(\d{2,3}(?:\.\d+)?)\s*(?:bpm|beats per minute|beats a minute)\b", text) or \
        re.search(r"\b(?:tempo|bpm)\s*(?:of|at|=|:)?\s*(\d{2,3}(?:\.\d+)?)\b", text)
    if m:
        c.tempo_bpm = min(220.0, max(40.0, float(m.group(1))))
    found_key = _key(raw)
    if found_key:
        c.key, c.mode = found_key
    if c.mode is None:
        for mode in MODES:
            if _find(text, mode) >= 0 or (mode in ("major", "minor") and _find(text, mode + "-key") >= 0):
                c.mode = mode
                break
    c.tempo_shift = next((v for w, v in _TEMPO if _find(text, w) >= 0), 0.0)
    c.energy_shift = _clip1(sum(v for w, v in _ENERGY if _find(text, w) >= 0 and not _negated(text, w)))
    spans: list[tuple[int, int]] = []
    found = []
    for word in sorted(INSTRUMENTS, key=len, reverse=True):  # "synth bass" before "synth" and "bass"
        for m in re.finditer(r"(?<![\w-])" + re.escape(word) + r"s?(?![\w-])", text):
            if any(a <= m.start() < b for a, b in spans) or _negated(text, word):
                continue
            spans.append((m.start(), m.end()))
            found.append((m.start(), word))
    c.instruments = [w for _, w in sorted(found)]
    if any(_negated(text, w) for w in ("drums", "drum", "percussion", "beat", "beats")) or _find(text, "drumless") >= 0:
        c.drums = False
    elif any(_find(text, w) >= 0 for w in ("drums", "drum", "percussion", "beat", "beats", "groove")):
        c.drums = True
    if any(_negated(text, w) for w in ("melody", "lead", "tune")) or \
            any(_find(text, w) >= 0 for w in ("chords only", "just chords", "only chords", "accompaniment only")):
        c.melody = False
    c.loop = re.search(r"(?<![\w-])(?:loop|loops|looping|loopable|looped|seamless)(?![\w-])", text) is not None
    c.trio = _find(text, "trio") >= 0
    return c


def resolve(choice: MusicChoice, seed: int, salt: int = 0) -> tuple[MusicParams, dict, list[str]]:
    """Fill in what the choice leaves open: (params, where the style came from etc., notes). `salt` (the
    description's checksum) keeps different descriptions from drawing the same key for the same seed."""
    rng = np.random.default_rng([seed, salt, 7])
    notes: list[str] = []
    mood = MOODS[choice.mood or "neutral"]
    style_name, origin = choice.style, "description"
    if style_name is None:
        style_name = next((INSTRUMENT_STYLES[w] for w in choice.instruments if w in INSTRUMENT_STYLES), None)
        origin = "instruments"
    if style_name is None:
        style_name, origin = mood.default_style, "default"
        notes.append(f"composer: the description names no style I know: played as '{style_name}' (the default "
                     f"for a {mood.name} mood; styles: {', '.join(STYLES)})")
    style = STYLES[style_name]
    # the mood's modes that the style plays in (the first most often), else the style's own
    modes = [m for m in mood.modes if m in style.modes] or list(style.modes[:2])
    weights = np.array([2.0] + [1.0] * (len(modes) - 1))
    mode = choice.mode or str(modes[int(rng.choice(len(modes), p=weights / weights.sum()))])
    key = choice.key or style.keys[int(rng.integers(len(style.keys)))]
    energy = choice.energy
    if energy is None:
        energy = style.energy if mood.name == "neutral" else 0.5 * (mood.energy + style.energy)
        energy += choice.energy_shift
    energy = float(np.clip(energy, 0.05, 1.0))
    lo, hi = style.tempo
    position = mood.tempo + 0.5 * choice.tempo_shift + rng.uniform(-0.08, 0.08)
    tempo = choice.tempo_bpm or round(lo + float(np.clip(position, -0.35, 1.35)) * (hi - lo))
    tempo = float(np.clip(tempo, 40, 220))
    roles = {"chords": style.chords, "pad": style.pad, "bass": style.bass,
             "melody": style.mood_melody.get(mood.name, style.melody)}
    taken: set[str] = set()
    for word in choice.instruments:
        if word not in INSTRUMENTS:
            notes.append(f"composer: instrument '{word}' unknown: ignored")
            continue
        program, prefs = INSTRUMENTS[word]
        role = next((r for r in prefs if r not in taken), None)
        if role is not None and program not in [roles[r] for r in taken]:
            roles[role] = program
            taken.add(role)
    drums = choice.drums if choice.drums is not None else style.drums is not None and energy >= style.drums_from
    if choice.trio:  # piano, bass and drums: the piano also plays the tune
        roles["pad"], roles["melody"], drums = None, roles["chords"], True if choice.drums is None else drums
    if choice.melody is False:
        roles["melody"] = None
    bank = MODE_PROGRESSIONS.get(mode) or style.progressions["minor" if mode in MINOR_FAMILY else "major"]
    progression = list(bank[int(rng.integers(len(bank)))])
    params = MusicParams(style=style_name, mood=mood.name, tempo_bpm=tempo, key=key, mode=mode, energy=round(energy, 3),
                         instruments=Instruments(**roles), drums=bool(drums), loop=choice.loop, swing=style.swing,
                         progression=progression, reverb=style.reverb[0])
    return params, {"style_from": origin}, notes


# -- the LLM path -------------------------------------------------------------------------------------

# The LLM that reads descriptions, or None for the rules. The rule: an LLM is asked only when one was
# chosen on purpose, so the default offline call stays fast and loads no model:
#   1. composer_llm(model) is active;
#   2. CADENZA_MUSIC_LLM (or `music_llm` in the config file) names one ("rules" or "off": never);
#   3. CADENZA_LLM (or `llm` in the config file) names a provider model (openai:..., ollama:...): the LLM
#      the user picked for everything.
# Otherwise the rules: the embedded models ('local', 'local-small') are asked only when named in 2. Loading
# 1.5B parameters for a few words takes seconds, and the rules read a description better than they do.
DESCRIPTION_LLM = ToolLLM("CADENZA_MUSIC_LLM", "music_llm")
composer_llm = DESCRIPTION_LLM.using  # with composer_llm(model): ... (tests, notebooks)
configured_llm = DESCRIPTION_LLM.choice  # a model or a spec, or None for the rules


SYSTEM = ("You choose the parameters of a music composer from a description of the music wanted. Answer with one "
          "JSON object only. style: the closest of {styles} (null only if none fits at all). mood: the closest of "
          "{moods}. energy: 0 very soft and sparse .. 1 loud and busy. tempo_shift: -1 much slower .. 1 much faster "
          "than usual for the style, 0 if not said. instruments: only instruments the description names, as words "
          "from this list, else []: {instruments}. drums: true or false only when drums are asked for or refused, "
          "else null. melody: false only when no melody is wanted, else null.\n"
          "Examples:\n"
          "gentle background for a cooking video -> {{\"style\": \"folk\", \"mood\": \"calm\", \"energy\": 0.35, "
          "\"tempo_shift\": 0, \"instruments\": [], \"drums\": null, \"melody\": null}}\n"
          "big trailer music with pounding drums -> {{\"style\": \"cinematic\", \"mood\": \"epic\", \"energy\": 0.9, "
          "\"tempo_shift\": 0, \"instruments\": [], \"drums\": true, \"melody\": null}}\n"
          "a slow nostalgic cello piece -> {{\"style\": \"orchestral\", \"mood\": \"sad\", \"energy\": 0.3, "
          "\"tempo_shift\": -0.5, \"instruments\": [\"cello\"], \"drums\": null, \"melody\": null}}")
# What the LLM interprets; tempo, key, mode, 'loop' and 'trio' are stated in words the rules read exactly, and
# a small model asked for them invents them.
LLM_FIELDS = ("style", "mood", "energy", "tempo_shift", "instruments", "drums", "melody")
EXPLICIT = ("tempo_bpm", "key", "mode")


def llm_schema() -> dict:
    """The answer's JSON schema: plain types, enums and nulls (what llama.cpp grammars and OpenAI's strict mode
    both take); the bounds are checked afterwards by MusicChoice."""
    def maybe(schema: dict, field: str) -> dict:
        return {"anyOf": [schema, {"type": "null"}], "description": MusicChoice.model_fields[field].description}

    props = {
        "style": maybe({"type": "string", "enum": list(STYLES)}, "style"),
        "mood": maybe({"type": "string", "enum": list(MOODS)}, "mood"),
        "energy": maybe({"type": "number"}, "energy"),
        "tempo_shift": {"type": "number", "description": MusicChoice.model_fields["tempo_shift"].description},
        "instruments": {"type": "array", "items": {"type": "string", "enum": sorted(INSTRUMENTS)}, "maxItems": 4},
        "drums": maybe({"type": "boolean"}, "drums"),
        "melody": maybe({"type": "boolean"}, "melody"),
    }
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def ask_llm(model: Any, description: str) -> MusicChoice:
    """The LLM's reading of the description; raises (LLMError, LLMConfigError, ValidationError) when unusable."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from ....llm.chat import complete_json, get_chat_model

    chat = get_chat_model(model)
    system = SYSTEM.format(styles=", ".join(STYLES), moods=", ".join(k for k in MOODS if k != "neutral"),
                           instruments=", ".join(sorted(INSTRUMENTS)))
    data, _ = complete_json(chat, [SystemMessage(system), HumanMessage(description)], llm_schema())
    unknown = [w for w in data.get("instruments") or [] if w not in INSTRUMENTS]
    if unknown:
        raise ValueError(f"unknown instruments {unknown}")
    return MusicChoice.model_validate({k: v for k, v in data.items() if k in LLM_FIELDS})


def merge(rules: MusicChoice, llm: MusicChoice) -> tuple[MusicChoice, list[str]]:
    """The LLM's reading, except where the description's own words (read by the rules) say otherwise: a
    genre, a mood, instruments, drums, a tempo, a key named outright win. The LLM's energy moves the
    tables' energy by at most 0.15 (a small model's 0-or-1 answers would swing it). Returns the choice and
    the fields the LLM decided."""
    update: dict[str, Any] = {f: getattr(rules, f) for f in ("style", "mood", "drums", "melody", *EXPLICIT)
                              if getattr(rules, f) is not None}
    if rules.instruments:
        update["instruments"] = rules.instruments
    if rules.tempo_shift:
        update["tempo_shift"] = rules.tempo_shift
    shift = rules.energy_shift or (0.3 * (llm.energy - 0.5) if llm.energy is not None else 0.0)
    update.update(energy=None, energy_shift=shift, loop=rules.loop, trio=rules.trio)
    decided = [f for f in ("style", "mood", "instruments", "tempo_shift", "drums", "melody")
               if f not in update and getattr(llm, f) not in (None, [], 0.0)]
    if llm.energy is not None and not rules.energy_shift:
        decided.append("energy")
    return llm.model_copy(update=update), decided


def describe(description: str, seed: int) -> tuple[MusicParams, dict, list[str]]:
    """(params, how they were chosen, notes): the configured LLM's reading merged with the rules' (see merge),
    or the rules' alone."""
    rules = parse_rules(description)
    model = configured_llm()
    choice, info, notes = rules, {"parsed_by": "rules"}, []
    if model is not None:
        try:
            llm = ask_llm(model, description)
        except (AssertionError, KeyboardInterrupt):  # a test model's broken script is the test's failure
            raise
        except Exception as e:  # an invalid answer, a provider error, a missing model: the rules still work
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            notes.append(f"composer: the LLM's answer was not usable ({why[:160]}): parameters chosen by rules")
        else:
            choice, decided = merge(rules, llm)
            info = {"parsed_by": "llm", "llm_decided": decided}
    params, more, notes2 = resolve(choice, seed, zlib.crc32(description.encode("utf-8")))
    return params, {**info, **more}, notes + notes2
