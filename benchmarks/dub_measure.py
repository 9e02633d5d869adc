"""The dubbing benchmark's measurements: text scores (WER after normalising, chrF), each line's onset on
the dubbed speech track against its start, and what Whisper hears in the dub. benchmarks/dub.py says
how each figure is defined.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from dub_clip import SILENCE_DB, read_wav, run_tool

MARGIN_S = 0.03  # fit.strip_silence keeps this much before a line's first loud sample


# -- text scoring -------------------------------------------------------------------------------
def normalise(text: str, lang: str) -> str:
    """Lowercase, numbers as words in `lang`, punctuation dropped, accented letters kept."""
    from num2words import num2words

    def number(m: re.Match) -> str:
        s = m.group().replace(",", ".")
        try:
            return " " + num2words(float(s) if "." in s else int(s), lang=lang) + " "
        except (NotImplementedError, OverflowError, ValueError):
            return " " + s + " "

    text = text.lower().replace("’", "'").replace("‘", "'")
    text = re.sub(r"\d+(?:[.,]\d+)?", number, text)
    text = re.sub(r"[-–—]", " ", text)
    text = re.sub(r"[^\w' ]+", " ", text)  # \w is Unicode: á, é, ñ, ü stay
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)  # quotes, not apostrophes inside words
    return " ".join(text.split())


def wer(ref: str, hyp: str, lang: str) -> float:
    import jiwer

    r, h = normalise(ref, lang), normalise(hyp, lang)
    if not r:
        return 0.0 if not h else 1.0
    return round(jiwer.wer(r, h or "-"), 4)


def chrf(hyp: str, ref: str) -> float:
    import sacrebleu

    return round(sacrebleu.corpus_chrf([hyp], [[ref]]).score, 2)


# -- the dubbed speech track ------------------------------------------------------------------
def onset(x: np.ndarray, rate: int, t0: float, t1: float) -> float | None:
    """The first time in [t0, t1) where the track is above -50 dB (as tests/test_dub.py's _onset)."""
    a, b = int(round(t0 * rate)), min(len(x), int(round(t1 * rate)))
    loud = np.flatnonzero(np.abs(x[a:b]) > 10 ** (SILENCE_DB / 20))
    return float((a + loud[0]) / rate) if loud.size else None


def line_figures(lines: list[dict], speech_wav: Path) -> dict:
    """Timing and fitting figures of one run: offsets measured on the speech track, the rest from the report."""
    x, rate = read_wav(speech_wav)
    offsets, after_start, test_way = [], [], []
    for i, ln in enumerate(lines):
        if ln.get("action") == "empty":
            continue
        end = lines[i + 1]["start"] if i + 1 < len(lines) else len(x) / rate
        t = onset(x, rate, ln["start"], end)
        if t is None:
            offsets.append(None)
            continue
        after_start.append(round((t - ln["start"]) * 1000, 1))
        test_way.append(round(abs(t - ln["start"] - MARGIN_S) * 1000, 1))
        late = max(0.0, t - ln["start"] - MARGIN_S)  # later than the kept margin explains
        early = 0.0  # sound in the 20 ms before the start, where the previous line (by its report) is over
        prev = lines[i - 1] if i else None
        if prev is None or prev["start"] + prev.get("fitted_seconds", 0.0) < ln["start"] - 0.025:
            e = onset(x, rate, max(0.0, ln["start"] - 0.02), ln["start"])
            early = ln["start"] - e if e is not None else 0.0
        offsets.append(round((late if late >= early else -early) * 1000, 1))
    measured = [abs(o) for o in offsets if o is not None]
    rewrites = [ln["index"] for ln in lines if (ln.get("spoken_text") or ln["translation"]) != ln["translation"]]
    trims = [ln["index"] for ln in lines if ln.get("action") == "trim"]
    asked = 0  # LLM calls for shorter renderings, from each line's warnings
    for ln in lines:
        tries = [int(m) for w in ln.get("warnings", []) for m in re.findall(r"spoken shorter \((\d+) tries\)", w)]
        tries += [int(m) for w in ln.get("warnings", []) for m in re.findall(r"^shorter rendering (\d+):", w)]
        asked += max(tries, default=0)
    actions: dict[str, int] = {}
    for ln in lines:
        actions[ln.get("action", "?")] = actions.get(ln.get("action", "?"), 0) + 1
    return {"lines": len(lines), "max_start_offset_ms": max(measured) if measured else None,
            "start_offsets_ms": offsets, "onset_after_start_ms": after_start,
            "max_offset_ms_test_convention": max(test_way) if test_way else None,
            "silent_lines": sum(o is None for o in offsets),
            "max_speed_factor": max((ln.get("speed_factor", 1.0) for ln in lines), default=None),
            "rewrites": len(rewrites), "trims": len(trims),
            "needed_rewrite_or_trim": len(set(rewrites) | set(trims)), "shorten_llm_calls": asked,
            "actions": actions,
            "warnings": [f"line {ln['index']}: {w}" for ln in lines for w in ln.get("warnings", [])][:20]}


def hear(media: Path, lang: str, workdir: Path) -> str:
    from cadenza.tools.speech import transcribe

    return run_tool(transcribe, "faster-whisper", workdir, media=str(media), language=lang, model="base")["text"]


def speech_scores(lines: list[dict], speech_wav: Path, lang: str, workdir: Path, video: Path | None = None) -> dict:
    spoken = " ".join((ln.get("spoken_text") or ln["translation"]) for ln in lines if ln.get("action") != "empty")
    translated = " ".join(ln["translation"] for ln in lines)
    heard = hear(speech_wav, lang, workdir)
    out = {"dubbed_wer": wer(spoken, heard, lang), "dubbed_wer_vs_translation": wer(translated, heard, lang),
           "heard": heard}
    if video is not None:
        heard_mix = hear(video, lang, workdir)
        out.update(dubbed_wer_mix=wer(spoken, heard_mix, lang), heard_mix=heard_mix)
    return out
