"""Fitting one synthesized line to its slot, and placing lines on one timeline (pure numpy).

The order, each step bounded and recorded (`speak_lines` runs it; step 3 needs an LLM):

1. a line that fits its slot is left at its natural speed (never slowed: a short line is
   followed by silence, and a set speed is never taken below `min_speed`);
2. it may run on into the silence before the next line, at most `share_of_gap` of it;
3. it is sped up with its pitch kept (FFmpeg atempo), never beyond `max_speedup`;
4. (speak_lines) the translator is asked for a shorter rendering, synthesized again;
5. only then the tail is cut with a 50 ms fade, and a warning says how much was lost.

Every length is measured on the real samples after each change, not estimated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..audio.edit import _atempo

MAX_SPEEDUP = 1.3  # the documented default ceiling: faster than this sounds rushed
MIN_SPEED = 0.9
FADE_S = 0.05  # the fade on a trimmed tail
SLACK_S = 0.03  # a tail over the budget by at most this much is faded off without a warning
SILENCE_DB = -50.0  # leading and trailing audio quieter than this is not speech


@dataclass
class Fit:
    """One line fitted: its samples and what was done."""

    samples: np.ndarray  # float32 mono
    natural_seconds: float  # as synthesized (after stripping edge silence)
    speed: float = 1.0  # the tempo factor applied (1.0 natural, 1.2 a fifth faster)
    action: str = "natural"  # natural | gap | speedup | fixed | trim
    warnings: list[str] = field(default_factory=list)


def seconds(x: np.ndarray, rate: int) -> float:
    return len(x) / rate


def strip_silence(x: np.ndarray, rate: int, margin_s: float = 0.03) -> np.ndarray:
    """`x` without the near-silence at its ends (a margin kept): TTS pads its output, which costs slot time."""
    x = np.asarray(x, np.float32).reshape(-1)
    loud = np.flatnonzero(np.abs(x) > 10 ** (SILENCE_DB / 20))
    if loud.size == 0:
        return x[:0]
    m = int(rate * margin_s)
    return x[max(0, loud[0] - m):min(len(x), loud[-1] + 1 + m)]


def tempo(x: np.ndarray, rate: int, factor: float) -> np.ndarray:
    """`x` played `factor` times as fast with its pitch kept (FFmpeg atempo, as fit_audio)."""
    if abs(factor - 1.0) < 1e-4 or x.size == 0:
        return x
    pcm = np.clip(np.rint(x * 32767), -32768, 32767).astype(np.int16).reshape(-1, 1)
    return (_atempo(pcm, rate, 1, factor).reshape(-1).astype(np.float32)) / 32767


def trim(x: np.ndarray, rate: int, limit_s: float, fade_s: float = FADE_S) -> np.ndarray:
    """The first `limit_s` seconds of `x`, the last `fade_s` of them faded out."""
    n = max(0, int(limit_s * rate))
    if len(x) <= n:
        return x
    y = x[:n].copy()
    f = min(len(y), int(fade_s * rate))
    if f:
        y[-f:] *= np.linspace(1.0, 0.0, f, dtype=np.float32)
    return y


def fit_to_slot(x: np.ndarray, rate: int, slot: float, gap: float, *, share_of_gap: float = 0.5,
                max_speedup: float = MAX_SPEEDUP, min_speed: float = MIN_SPEED, fixed_speed: float | None = None,
                allow_trim: bool = True) -> Fit:
    """Fit speech `x` into `slot` seconds plus at most `share_of_gap` of the `gap` after it.

    With `fixed_speed` (a speed set by hand) that factor is applied as it is (kept within
    `min_speed`..4). With `allow_trim=False` a line still too long after the speed-up comes back
    untrimmed with action 'too_long', so the caller can try a shorter text first."""
    x = strip_silence(x, rate)
    natural = seconds(x, rate)
    budget = slot + max(0.0, share_of_gap) * max(0.0, gap)
    if fixed_speed is not None:
        factor = min(4.0, max(min_speed, fixed_speed))
        fit = Fit(tempo(x, rate, factor), natural, factor, "fixed")
        if factor != fixed_speed:
            fit.warnings.append(f"speed {fixed_speed:g} kept within {min_speed:g}..4: used {factor:g}")
        return _cut(fit, rate, budget, "the speed set for it")
    if natural <= slot:
        return Fit(x, natural)
    if natural <= budget:
        return Fit(x, natural, action="gap")
    factor = natural / budget
    if factor <= max_speedup:
        y = tempo(x, rate, factor)
        real = seconds(y, rate)
        if real > budget + SLACK_S and factor < max_speedup:  # atempo came out long: measured, so correct it
            factor = min(max_speedup, factor * real / budget)
            y = tempo(x, rate, factor)
        return _cut(Fit(y, natural, factor, "speedup"), rate, budget, "")
    fit = Fit(tempo(x, rate, max_speedup), natural, max_speedup, "speedup")
    if seconds(fit.samples, rate) <= budget + SLACK_S:
        return _cut(fit, rate, budget, "")
    if not allow_trim:
        fit.action = "too_long"
        return fit
    return _cut(fit, rate, budget, f"{max_speedup:g}x (the most allowed)")


def _cut(fit: Fit, rate: int, budget: float, why: str) -> Fit:
    """Trim the fitted samples to the budget: silently within SLACK_S, else with a warning."""
    over = seconds(fit.samples, rate) - budget
    if over <= 0:
        return fit
    fit.samples = trim(fit.samples, rate, budget)
    if over > SLACK_S:
        if fit.action != "fixed":
            fit.action = "trim"
        fit.warnings.append(f"{over:.2f}s cut off the end with a fade: too long for its slot"
                            + (f" even at {why}" if why else ""))
    return fit


def place(lines: list[tuple[float, np.ndarray]], rate: int, length_s: float | None = None) -> np.ndarray:
    """One float32 track with each (start seconds, samples) added at its absolute start sample, so
    rounding never accumulates from line to line. The track lasts `length_s`, or to the last sound."""
    starts = [int(round(s * rate)) for s, _ in lines]
    end = max((a + len(x) for a, (_, x) in zip(starts, lines)), default=0)
    n = int(round(length_s * rate)) if length_s is not None else end
    track = np.zeros(max(n, 0), np.float32)
    for a, (_, x) in zip(starts, lines):
        m = min(len(x), len(track) - a)
        if m > 0:
            track[a:a + m] += x[:m]
    return track
