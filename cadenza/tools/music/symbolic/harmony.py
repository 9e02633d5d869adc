"""Scales, diatonic chords and voice leading.

Chords are built by stacking thirds inside the mode's scale, so a degree list like (1, 4, 5) gives
the right qualities in every mode (Dorian's IV is major, Mixolydian's VII is a flat-seven major...).
"""

from __future__ import annotations

from dataclasses import dataclass

from .params import KEYS

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
}
MINOR_FAMILY = ("minor", "dorian", "phrygian")
_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII")
_ALIASES = {"Db": "C#", "D#": "Eb", "Gb": "F#", "G#": "Ab", "A#": "Bb", "Cb": "B", "Fb": "E", "E#": "F", "B#": "C"}


def key_pc(name: str) -> int:
    """Pitch class of a tonic name ('C', 'F#', 'Bb', 'db'...)."""
    n = name.strip()
    n = n[:1].upper() + n[1:].lower().replace("♯", "#").replace("♭", "b")
    return KEYS.index(_ALIASES.get(n, n))


def key_name(name: str) -> str:
    return KEYS[key_pc(name)]


@dataclass(frozen=True)
class Chord:
    degree: int  # 1..7 in the key's scale
    root: int  # pitch class 0..11
    tones: tuple[int, ...]  # semitones above the root, in stacking order (0, 3rd, 5th[, 7th, 9th])
    name: str  # "Am7"
    roman: str  # "vi7"

    @property
    def pcs(self) -> list[int]:
        return [(self.root + t) % 12 for t in self.tones]

    def is_diminished(self) -> bool:
        return len(self.tones) >= 3 and self.tones[1] == 3 and self.tones[2] == 6


def scale_pcs(key: str, mode: str) -> list[int]:
    tonic = key_pc(key)
    return [(tonic + s) % 12 for s in SCALES[mode]]


def build_chord(degree: int, key: str, mode: str, ext: str = "triad", leading_tone: bool = False) -> Chord:
    """The diatonic chord on `degree`; ext adds tones: seventh, ninth, add9, or 'power' (root and fifth).
    leading_tone raises the seventh scale step (a major V in a minor key)."""
    scale = list(SCALES[mode])
    if leading_tone and scale[6] == 10:
        scale[6] = 11
    i = degree - 1
    count = {"triad": 3, "power": 3, "add9": 3, "seventh": 4, "ninth": 5}[ext]
    stack = [scale[(i + 2 * k) % 7] + 12 * ((i + 2 * k) // 7) for k in range(count)]
    if ext == "add9":
        stack.append(scale[(i + 1) % 7] + 12 * ((i + 1) // 7) + 12)
    tones = tuple(s - stack[0] for s in stack)
    if len(tones) > 3 and tones[-1] == 13:  # a flat ninth grates: leave it out
        tones = tones[:-1]
    if ext == "power":
        tones = (0, 7, 12)
    root = (key_pc(key) + stack[0]) % 12
    return Chord(degree, root, tones, KEYS[root] + _quality(tones), _roman(degree, scale, tones))


def _quality(t: tuple[int, ...]) -> str:
    if t == (0, 7, 12):
        return "5"
    third, fifth = t[1], t[2]
    q = {(4, 7): "", (3, 7): "m", (3, 6): "dim", (4, 8): "aug"}.get((third, fifth), "")
    if len(t) >= 4 and t[3] in (10, 11):
        q = {"": "maj7" if t[3] == 11 else "7", "m": "m7" if t[3] == 10 else "m(maj7)", "dim": "m7b5"}.get(q, q + "7")
        if len(t) >= 5:
            q = q.replace("7", "9")
    elif len(t) >= 4:
        q += "add9"
    return q


def _roman(degree: int, scale: list[int], t: tuple[int, ...]) -> str:
    base = _ROMAN[degree - 1]
    shift = scale[degree - 1] - SCALES["major"][degree - 1]  # against the major scale: bIII, #IV...
    flat = "b" if shift < 0 else "#" if shift > 0 else ""
    minor = t != (0, 7, 12) and t[1] == 3
    q = _quality(t)
    suffix = q[1:] if q.startswith("m") and not q.startswith("maj") else q
    suffix = suffix.replace("dim", "°")
    return flat + (base.lower() if minor else base) + suffix


def fix_diminished(degrees: list[int], key: str, mode: str) -> list[int]:
    """Replace diminished triads (weak as a bed's harmony) by the chord a third below, which shares two notes
    (vii° -> V in major, ii° -> bVII in minor)."""
    out = []
    for d in degrees:
        if build_chord(d, key, mode).is_diminished():
            d = (d - 3) % 7 + 1
        out.append(d)
    return out


def voice(pcs: list[int], prev: list[int] | None, lo: int, hi: int) -> list[int]:
    """A close-position voicing of these pitch classes within [lo, hi], moving as little as possible from the
    previous voicing (smooth voice leading); without one, the voicing nearest the middle of the range."""
    pcs = list(dict.fromkeys(pcs))  # unique, order kept
    cands = []
    for r in range(len(pcs)):
        order = pcs[r:] + pcs[:r]
        for base in range(lo, lo + 12):
            if base % 12 != order[0]:
                continue
            notes = [base]
            for pc in order[1:]:
                n = notes[-1] + 1
                while n % 12 != pc:
                    n += 1
                notes.append(n)
            if notes[-1] <= hi:
                cands.append(notes)
            if notes[-1] + 12 <= hi:
                cands.append([n + 12 for n in notes])
    if not cands:  # a range too narrow for the chord: squeeze it in by octaves
        return sorted({lo + (pc - lo) % 12 for pc in pcs})
    if prev:
        def cost(c):
            moves = sum(min(abs(a - b) for b in prev) for a in c) + sum(min(abs(a - b) for a in c) for b in prev)
            return moves + 0.5 * abs(c[-1] - prev[-1])  # keep the top voice steady: it is what the ear follows
    else:
        mid = (lo + hi) / 2

        def cost(c):
            return abs(sum(c) / len(c) - mid)
    return min(cands, key=cost)


def spread(notes: list[int]) -> list[int]:
    """Open a close voicing (drop the second-highest note an octave): wider, for pads and strings."""
    if len(notes) < 3:
        return notes
    out = notes[:-2] + [notes[-1]]
    return sorted(out + [notes[-2] - 12])


def nearest(pc: int, target: float, lo: int, hi: int) -> int:
    """The pitch of pitch class pc in [lo, hi] closest to target."""
    options = [n for n in range(lo, hi + 1) if n % 12 == pc % 12]
    if not options:
        return lo + (pc - lo) % 12
    return min(options, key=lambda n: (abs(n - target), n))
