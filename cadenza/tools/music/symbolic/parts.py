"""One bar of each accompanying part: comping, pad, bass line, drums. Times are in beats from the piece's
start; velocities 0..1 (the arranger scales them by the section's dynamics)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .harmony import Chord, nearest, spread, voice
from .patterns import BASS, COMP, CRASH, DRUMS, STEP_VELOCITY

STRUM = 0.03  # beats between strings of a strum (about 20 ms)


@dataclass
class Hit:
    start: float  # beats
    end: float
    pitch: int
    velocity: float


def chord_voicing(chord: Chord, prev: list[int] | None, register: tuple[int, int], rootless: bool) -> list[int]:
    """The comping voicing: power chords as root-fifth-octave, jazz-style rootless voicings when a bass plays
    the root, otherwise close position led smoothly from the previous chord."""
    lo, hi = register
    if chord.tones == (0, 7, 12):
        root = nearest(chord.root, (prev[0] if prev else (lo + hi) / 2 - 6), lo, hi - 12)
        return [root, root + 7, root + 12]
    pcs = chord.pcs
    if len(pcs) == 5:  # ninth chords: the fifth adds nothing but mud
        pcs = pcs[:2] + pcs[3:]
    if rootless and len(pcs) >= 4:
        pcs = pcs[1:]
    return voice(pcs, prev, lo, hi)


def pad_voicing(chord: Chord, prev: list[int] | None, lo: int = 48, hi: int = 74) -> list[int]:
    pcs = chord.pcs[:4] if chord.tones != (0, 7, 12) else chord.pcs[:2]
    return spread(voice(pcs, [n + 12 for n in prev] if prev else None, lo + 12, hi)) if len(pcs) >= 3 \
        else voice(pcs, prev, lo, hi)


def comp_bar(pattern: str, notes: list[int], start: float, beats: float) -> list[Hit]:
    spec = COMP[pattern]
    arp = notes + [n + 12 for n in notes]
    out: list[Hit] = []
    for onset, dur, which, vel in spec["hits"]:
        if onset >= beats:
            continue
        end = start + (beats if spec.get("ring") else min(onset + dur, beats))
        t = start + onset
        if which == "all":
            out += [Hit(t, end, n, vel) for n in notes]
        elif which in ("up", "down"):
            order = notes if which == "up" else notes[::-1]
            out += [Hit(t + i * STRUM, end, n, vel * (1 - 0.05 * i)) for i, n in enumerate(order)]
        else:
            out.append(Hit(t, end, arp[which % len(arp)], vel))
    return out


def bass_range(program: int) -> tuple[int, int]:
    if 32 <= program <= 39:
        return 33, 52  # A1..E3: lower notes rumble more than they sing on a small SoundFont
    if program <= 7:  # a piano's left hand
        return 36, 55
    if program in (42, 43, 48, 49):
        return 31, 50
    return 36, 52


def bass_root(chord: Chord, prev: int | None, lo: int, hi: int) -> int:
    """The root nearest the previous one, drawn a little towards the middle of the range (no slow drift)."""
    middle = (lo + hi) / 2 - 1
    return nearest(chord.root, middle if prev is None else 0.7 * prev + 0.3 * middle, lo, hi)


def bass_bar(pattern: str, chord: Chord, nxt: Chord, prev: int | None, rng: np.random.Generator,
             start: float, beats: float, scale: list[int], lo: int, hi: int) -> list[Hit]:
    """A bar of the bass line; the root sits in the octave nearest the previous root (no jumps)."""
    root = bass_root(chord, prev, lo, hi)
    if pattern == "walking":
        return walking_bar(chord, nxt, root, rng, start, beats, scale, lo, hi)
    fifth = root + 7 if root + 7 <= hi + 5 else root - 5
    third = root + chord.tones[1] if chord.tones != (0, 7, 12) else root + 7
    target = bass_root(nxt, root, lo, hi)  # what the next bar plays
    approach = target - 1 if target > root else target + 1 if target < root else root + 7
    tones = {"R": root, "5": fifth, "8": root + 12, "3": third, "A": approach}
    return [Hit(start + on, start + min(on + dur, beats), tones[t], vel)
            for on, dur, t, vel in BASS[pattern] if on < beats]


def walking_bar(chord: Chord, nxt: Chord, root: int, rng: np.random.Generator, start: float, beats: float,
                scale: list[int], lo: int, hi: int) -> list[Hit]:
    """Four quarter notes: root, a chord tone on the way, a scale step, a half step into the next root
    (the root the next bar will play: the one nearest this one)."""
    target = bass_root(nxt, root, lo, hi)  # what the next bar plays
    if target != root:
        direction = 1 if target > root else -1
    else:  # the same root again: out and back
        direction = 1 if (root + 7 <= hi and rng.random() < 0.6) else -1
    tones = [p for p in range(lo, hi + 1) if p % 12 in chord.pcs and p != root]
    second = min(tones, key=lambda p: (abs(p - (root + direction * 4)), p)) if tones else root + 7
    fourth = target - direction if target != root else root + direction
    steps = [p for p in range(lo, hi + 1) if p % 12 in scale and p not in (second, fourth)]
    third = min(steps, key=lambda p: (abs(p - (second + fourth) / 2), p)) if steps else second
    line = [root, second, third, fourth]
    vels = (0.88, 0.72, 0.8, 0.72)
    return [Hit(start + i, start + i + 0.95, p, v) for i, (p, v) in enumerate(zip(line, vels)) if i < beats]


def drum_bar(groove: str, part: str, start: float, beats: float, fill: bool, crash: bool) -> list[Hit]:
    grids = dict(DRUMS[groove][part])
    hits: list[Hit] = []
    if fill:  # the groove's first half, then the fill
        grids = {n: g[:8] + "." * 8 for n, g in grids.items()}
        for note, g8 in DRUMS[groove]["fill"].items():
            grids[note] = grids.get(note, "." * 16)[:8] + g8
    for note, grid in sorted(grids.items()):
        for step, ch in enumerate(grid):
            if ch != "." and step / 4 < beats:
                hits.append(Hit(start + step / 4, start + step / 4 + 0.25, note, STEP_VELOCITY[ch]))
    if crash:
        hits.append(Hit(start, start + 1.0, CRASH, 0.85))
    return hits
