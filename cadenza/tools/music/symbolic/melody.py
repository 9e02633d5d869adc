"""The tune: phrases built from a rhythmic motif that repeats and varies, with chord tones on the strong
beats and scale steps (passing notes) between them, shaped by an arch contour.

A phrase covers one pass of the progression (one chord per bar here: a chord lasting two bars is listed
twice). Bars whose rhythm repeats the motif also repeat its melodic shape, moved onto the new chord
(a sequence), which is what makes a tune recognisable rather than a random walk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .harmony import Chord, scale_pcs
from .params import MusicParams, Style
from .parts import Hit
from .patterns import MELODY_RHYTHMS


@dataclass
class MelodyNote:
    beat: float  # from the phrase start
    beats: float
    pitch: int
    velocity: float  # 0..1, scaled later by the section's dynamics


def bar_scale(scale: list[int], chord: Chord) -> list[int]:
    """The key's scale, with a chord's chromatic tones (the raised leading tone of a minor key's major V)
    taking the place of the scale notes they clash with."""
    pcs = chord.pcs
    return [(s + 1) % 12 if (s + 1) % 12 in pcs and (s + 1) % 12 not in scale else s for s in scale]


def _pitches(scale: list[int], lo: int, hi: int) -> list[int]:
    return [p for p in range(lo, hi + 1) if p % 12 in scale]


def _strong(onset: float, beats: float) -> bool:
    return (onset % 2 == 0) or beats >= 1.5


def _pick(rng: np.random.Generator, cands: list[int], costs: list[float], temperature: float = 0.6) -> int:
    c = np.asarray(costs, dtype=np.float64)
    w = np.exp(-(c - c.min()) / temperature)
    return cands[int(rng.choice(len(cands), p=w / w.sum()))]


class PhraseWriter:
    def __init__(self, scale: list[int], lo: int, hi: int, rhythm: str, rng: np.random.Generator):
        self.scale, self.lo, self.hi, self.rng = scale, lo, hi, rng
        self.vocab = MELODY_RHYTHMS[rhythm]

    def rhythms(self, bars: int) -> list[tuple]:
        """Per bar: a motif pair (a b), repeated; the pair before the cadence answers with a new bar."""
        pick = self.rng.integers
        bank, cad = self.vocab["bars"], self.vocab["cadence"]
        a = bank[int(pick(len(bank)))]
        b = a if self.rng.random() < 0.5 else bank[int(pick(len(bank)))]
        c = bank[int(pick(len(bank)))]
        end = cad[int(pick(len(cad)))]
        out = []
        for i in range(bars):
            if i == bars - 1 and bars > 1:
                out.append(end)
            elif bars >= 4 and i >= bars - 3:
                out.append((a, c)[i % 2])
            else:
                out.append((a, b)[i % 2])
        return out

    def phrase(self, chords: list[Chord], center: float, start: int | None = None) -> list[MelodyNote]:
        """One phrase over these bar chords, ending on the last chord's root (home after I, a half close
        after V); `start` continues from the previous note's pitch."""
        rhythms = self.rhythms(len(chords))
        notes: list[MelodyNote] = []
        prev = start if start is not None else int(center)
        total = 4.0 * len(chords)
        motif: dict[tuple, list[int]] = {}  # a rhythm's first use: its shape in scale steps
        for bar, (chord, rhythm) in enumerate(zip(chords, rhythms)):
            scale = bar_scale(self.scale, chord)
            pool = _pitches(scale, self.lo, self.hi)
            last_bar = bar == len(chords) - 1
            shape = motif.get(rhythm) if not last_bar else None
            pitches: list[int] = []
            for k, (onset, beats) in enumerate(rhythm):
                t = bar * 4 + onset
                target = center + 4.0 * np.sin(np.pi * min(1.0, t / total))  # rise, then fall home
                strong = _strong(onset, beats)
                final = last_bar and k == len(rhythm) - 1
                if final:
                    cands = [p for p in pool if p % 12 == chord.root] or pool
                    pitch = min(cands, key=lambda p: (abs(p - prev), p))
                elif shape is not None and k > 0 and pitches:
                    pitch = self._follow(pool, pitches[0], shape[k] - shape[0], chord if strong else None)
                else:
                    cands = [p for p in pool if p % 12 in chord.pcs] if strong or k == 0 else pool
                    pitch = _pick(self.rng, cands, [self._cost(p, prev, target, notes) for p in cands])
                pitches.append(pitch)
                vel = (1.0 if onset == 0 else 0.9 if onset % 1 == 0 else 0.8) - (0.06 if beats >= 2 else 0)
                notes.append(MelodyNote(t, beats, pitch, vel))
                prev = pitch
            if rhythm not in motif:
                motif[rhythm] = [self._index(p, scale) for p in pitches]
        return notes

    def vary(self, notes: list[MelodyNote], chords: list[Chord], center: float) -> list[MelodyNote]:
        """The same phrase with its second half written anew: an answer to the first half."""
        half = 4.0 * (len(chords) // 2)
        if half == 0:
            return list(notes)
        keep = [n for n in notes if n.beat < half]
        prev = keep[-1].pitch if keep else None
        rest = self.phrase(chords[len(chords) // 2:], center, start=prev)
        return keep + [MelodyNote(n.beat + half, n.beats, n.pitch, n.velocity) for n in rest]

    def _cost(self, p: int, prev: int, target: float, notes: list[MelodyNote]) -> float:
        step = abs(p - prev)
        cost = {0: 1.2, 1: 0.2, 2: 0.0, 3: 0.5, 4: 0.7, 5: 1.0}.get(step, 1.5 + 0.5 * (step - 5))
        cost += 0.25 * abs(p - target)
        if len(notes) >= 2:
            last_leap = notes[-1].pitch - notes[-2].pitch
            if abs(last_leap) > 4 and np.sign(p - prev) == np.sign(last_leap):
                cost += 2.5  # after a leap, turn back by step
            if p == prev == notes[-2].pitch:
                cost += 3.0
        return cost

    def _index(self, p: int, scale: list[int]) -> int:
        """Diatonic index: 7 per octave."""
        order = sorted(scale)
        pc = p % 12
        pos = max(i for i, s in enumerate(order) if s <= pc) if pc >= order[0] else -1
        return (p // 12) * 7 + pos

    def _follow(self, pool: list[int], first: int, steps: int, chord: Chord | None) -> int:
        """The note `steps` scale steps from `first`; on a strong beat, the nearest chord tone to it."""
        scale = sorted({p % 12 for p in pool})
        idx = self._index(first, scale) + steps
        octave, pos = divmod(idx, 7)
        pitch = octave * 12 + scale[pos % len(scale)]
        while pitch > self.hi:
            pitch -= 12
        while pitch < self.lo:
            pitch += 12
        if chord is not None:
            tones = [p for p in pool if p % 12 in chord.pcs]
            if tones:
                pitch = min(tones, key=lambda p: (abs(p - pitch), p))
        return pitch


# Where a melody sits for an instrument (MIDI notes): by GM program, else by its family of eight.
PROGRAM_RANGES = {11: (60, 81), 12: (60, 81), 40: (64, 88), 41: (57, 79), 42: (48, 69), 60: (53, 74)}
FAMILY_RANGES = {0: (64, 84), 1: (67, 91), 3: (57, 79), 7: (57, 77), 8: (60, 82), 9: (67, 89), 10: (60, 81),
                 11: (60, 79)}


def melody_range(program: int) -> tuple[int, int]:
    return PROGRAM_RANGES.get(program) or FAMILY_RANGES.get(program // 8, (60, 84))


def tune_range(params: MusicParams, style: Style) -> tuple[int, int]:
    """The melody's range, kept above the comping (well above when one instrument plays both, like a
    pianist's two hands), so the tune is never buried in the chords."""
    lo, hi = melody_range(params.instruments.melody)
    lo = max(lo, style.register[1] + (7 if params.instruments.melody == params.instruments.chords else -2))
    return lo, max(hi, lo + 15)


def write_melody(params: MusicParams, style: Style, sections: list, chords: list[Chord],
                 rng: np.random.Generator) -> list[Hit]:
    """The tune over the sections after the intro: each section letter (A, B) gets a phrase and its answer,
    which come back whenever that letter does, so the piece has a theme rather than endless new notes."""
    lo, hi = tune_range(params, style)
    scale = scale_pcs(params.key, params.mode)
    writer = PhraseWriter(scale, lo, hi, style.melody_rhythm, rng)
    cache: dict[str, tuple] = {}  # letter -> (chord names, phrase, its answer)
    out: list[Hit] = []
    prev = None
    for sec in sections:
        if sec.name == "intro" or sec.breakdown:
            continue
        letter = sec.name[0]
        center = lo + 0.4 * (hi - lo) + (3 if letter == "B" else 0)
        length = max(1, min(8, len(sec.progression) * style.bars_per_chord))
        for p in range(math.ceil(sec.bars / length)):
            first = sec.start + p * length
            cs = chords[first:min(first + length, sec.start + sec.bars)]
            names = [c.name for c in cs]
            if letter in cache and cache[letter][0] == names:
                notes = cache[letter][1 + p % 2]  # the phrase and its answer, alternating
            elif letter in cache and cache[letter][0][:len(names) // 2] == names[:len(names) // 2] \
                    and len(cache[letter][0]) == len(names):
                notes = writer.vary(cache[letter][1], cs, center)  # same opening, a new close (a new cadence)
            else:
                notes = writer.phrase(cs, center, start=prev)
                if len(cs) == length:
                    cache[letter] = (names, notes, writer.vary(notes, cs, center))
            out += [Hit(first * 4.0 + n.beat, first * 4.0 + n.beat + n.beats, n.pitch, n.velocity) for n in notes]
            prev = notes[-1].pitch if notes else prev
    return out
