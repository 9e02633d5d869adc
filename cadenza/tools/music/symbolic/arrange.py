"""MusicParams + seconds + seed -> a PrettyMIDI: the form (intro, A/B sections with variation, a final
chord after a ritardando, or a seamless loop), the chord of every bar, and every part placed in time
with swing, dynamics and a little human timing. Deterministic: every random choice comes from a
numpy Generator seeded with (seed, purpose).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np
import pretty_midi

from .harmony import MINOR_FAMILY, Chord, build_chord, fix_diminished, key_pc, nearest, scale_pcs
from .melody import tune_range, write_melody
from .params import STYLES, MusicParams, Style
from .parts import Hit, bass_bar, bass_range, bass_root, chord_voicing, comp_bar, drum_bar, pad_voicing

ROLES = ("chords", "pad", "bass", "melody", "drums")
# Velocity mostly sets the timbre (each part's level is set in the mix): soft enough for a bed, firm enough
# that SoundFont instruments do not sound muffled.
ROLE_VELOCITY = {"chords": 0.85, "pad": 0.75, "bass": 0.9, "melody": 0.95, "drums": 0.9}
ROLE_PAN = {"chords": 40, "pad": 64, "bass": 64, "melody": 86, "drums": 64}  # MIDI CC10: 0 left, 127 right
GENTLE_BASS = ("sustain", "lh_root", "lh_root_fifth", "root_half")  # bass lines that may play in an intro
NO_CRASH = ("lofi", "folk", "soft", "jazz")


@dataclass
class Section:
    name: str  # intro, A, B, A', ...
    start: int  # first bar
    bars: int
    level: float  # dynamics, 0..1
    variant: int  # 0: the style's A patterns, 1: its B patterns
    progression: tuple[int, ...]
    breakdown: bool = False  # drums down to time-keeping, no melody


@dataclass
class Timing:
    """Beats to seconds: constant tempo with swung off-beats, slowing linearly from `ritard_from`."""

    bpm: float
    beats: float  # the body (before the final chord; a loop: all of it)
    ritard_from: float
    ritard: float  # how much slower at the end (0.12: 12 %)
    swing: float

    def sec(self, b: float) -> float:
        whole = math.floor(b)
        f = b - whole
        mid = 0.5 + self.swing / 2  # where the swung off-beat eighth lands
        f = f * mid / 0.5 if f <= 0.5 else mid + (f - 0.5) * (1 - mid) / 0.5
        b = whole + f
        spb = 60.0 / self.bpm
        span = self.beats - self.ritard_from
        if b <= self.ritard_from or span <= 0 or not self.ritard:
            return b * spb
        x = min(b, self.beats) - self.ritard_from
        s = self.ritard_from * spb + spb * (x + self.ritard * x * x / (2 * span))
        return s + max(0.0, b - self.beats) * spb * (1 + self.ritard)


@dataclass
class Arrangement:
    midi: pretty_midi.PrettyMIDI
    tempo_bpm: float
    bars: int
    sections: list[dict] = field(default_factory=list)  # name, start, end (s), bars, chords


def plan_timing(params: MusicParams, style: Style, seconds: float) -> Timing:
    bpm = params.tempo_bpm
    if params.loop:  # whole bars (whole beats for a loop shorter than a bar), the tempo fitted to the length
        beats = max(1, round(seconds * bpm / 60))
        if beats >= 4:
            beats = 4 * loop_bars(seconds * bpm / 240, len(params.progression) * style.bars_per_chord)
        return Timing(beats * 60.0 / seconds, beats, beats, 0.0, params.swing)
    spb = 60.0 / bpm
    hold = min(seconds, max(2.0, 2 * spb) + 0.3 * style.reverb[1])  # the final chord rings at least this long
    r = style.ritardando

    def body(n: int) -> float:
        return n * 4 * spb + min(2, n) * 4 * spb * r / 2

    bars = max(0, int((seconds - hold) / (4 * spb)))
    while bars > 0 and body(bars) > seconds - hold:
        bars -= 1
    slow = min(2, bars)
    return Timing(bpm, bars * 4, (bars - slow) * 4, r if slow else 0.0, params.swing)


def loop_bars(bars: float, phrase: int) -> int:
    """Whole phrases if the tempo need change by at most 15 % for them, else half phrases, pairs of bars, bars:
    a loop that ends where its progression ends comes round naturally."""
    for unit in dict.fromkeys((phrase, phrase // 2, 2, 1)):
        n = max(unit, round(bars / unit) * unit) if unit else 0
        if unit and abs(n / bars - 1) <= 0.15:
            return n
    return max(1, round(bars))


def plan_form(params: MusicParams, style: Style, bars: int, prog_a: tuple, prog_b: tuple) -> list[Section]:
    """Sections of whole phrases (one pass of the progression each): an intro (not in a loop), then A A B B
    A A ... (A B A for three phrases). The third time a letter comes round it is a breakdown (softer, the
    drums down to time-keeping, no tune), so that long pieces breathe."""
    phrase = max(1, min(8, len(prog_a) * style.bars_per_chord))
    intro = 0 if params.loop or bars < 6 else 1 if bars < 10 else 2 if bars < 24 or style.bars_per_chord == 1 else 4
    sections = [Section("intro", 0, intro, 0.6, 0, prog_a)] if intro else []
    phrases = math.ceil((bars - intro) / phrase)
    letters = "ABA" if phrases == 3 else ("AABB" * math.ceil(phrases / 4))[:phrases]
    levels = {"A": (0.75, 0.85, 0.88), "B": (0.92, 1.0, 1.0)}
    bar, i = intro, 0
    while i < phrases:
        j = i
        while j < phrases and letters[j] == letters[i]:
            j += 1
        letter = letters[i]
        seen = sum(s.name[0] == letter for s in sections)
        breakdown = seen % 3 == 2
        sections.append(Section(letter + (str(seen + 1) if seen else ""), bar, min(phrase * (j - i), bars - bar),
                                0.7 if breakdown else levels[letter][min(seen, 2)], 0 if letter == "A" else 1,
                                prog_a if letter == "A" else prog_b, breakdown))
        bar, i = bar + sections[-1].bars, j
    return sections


def choose_progressions(params: MusicParams, style: Style, rng: np.random.Generator) -> tuple[tuple, tuple]:
    """A: the given progression; B: another of the style's set (or A from its middle) for contrast."""
    from .params import MODE_PROGRESSIONS

    family = "minor" if params.mode in MINOR_FAMILY else "major"
    bank = MODE_PROGRESSIONS.get(params.mode) or style.progressions[family]
    a = tuple(params.progression)
    others = [p for p in bank if tuple(p) != a]
    b = tuple(others[int(rng.integers(len(others)))]) if others else a[len(a) // 2:] + a[:len(a) // 2]
    if not style.half_diminished:  # jazz keeps its iiø7
        a = tuple(fix_diminished(list(a), params.key, params.mode))
        b = tuple(fix_diminished(list(b), params.key, params.mode))
    return a, b


def bar_chords(params: MusicParams, style: Style, sections: list[Section], bars: int) -> list[Chord]:
    degrees = []
    for s in sections:
        for i in range(s.bars):
            degrees.append(s.progression[(i // style.bars_per_chord) % len(s.progression)])
    if degrees and (params.loop and degrees[-1] == 1 or not params.loop and degrees[-1] not in (4, 5, 7)):
        degrees[-1] = style.cadence  # lead home: into the final chord, or back to the loop's start
    minor = params.mode == "minor" and style.harmonic_v
    out = []
    for i, d in enumerate(degrees):
        nxt = degrees[i + 1] if i + 1 < len(degrees) else 1
        out.append(build_chord(d, params.key, params.mode, style.chord_ext, leading_tone=minor and d == 5 and nxt == 1))
    return out


@dataclass
class Band:
    """The accompaniment as it is built bar by bar, and where each part ended (for the final chord)."""

    hits: dict[str, list[Hit]] = field(default_factory=lambda: {r: [] for r in ROLES})
    levels: list[float] = field(default_factory=list)  # each bar's dynamics
    voicing: list[int] | None = None
    pad: list[int] | None = None
    bass: int | None = None  # the last bass root


def arrange(params: MusicParams, seconds: float, seed: int) -> Arrangement:
    style = STYLES[params.style]
    salt = zlib.crc32(params.model_dump_json().encode())  # other parameters, other choices for the same seed
    rng = {k: np.random.default_rng([seed, salt, i]) for i, k in enumerate(("form", "bass", "melody", "human"))}
    timing = plan_timing(params, style, seconds)
    nbars = math.ceil(timing.beats / 4)
    prog_a, prog_b = choose_progressions(params, style, rng["form"])
    sections = plan_form(params, style, nbars, prog_a, prog_b)
    chords = bar_chords(params, style, sections, nbars)
    final = build_chord(1, params.key, params.mode, "triad" if style.chord_ext == "add9" else style.chord_ext)
    band = accompany(params, style, sections, chords, final, timing, rng["bass"])
    if params.instruments.melody is not None:
        band.hits["melody"] = write_melody(params, style, sections, chords, rng["melody"])
    ending = None if params.loop else timing.sec(timing.beats)
    last = final_chord(params, final, band) if ending is not None else {}
    midi = to_midi(params, style, band, last, timing, seconds, ending, rng["human"])
    spans = [dict(name=s.name, start=round(timing.sec(s.start * 4), 3),
                  end=round(timing.sec((s.start + s.bars) * 4), 3), bars=s.bars,
                  chords=_changes(chords[s.start:s.start + s.bars]), **({"breakdown": True} if s.breakdown else {}))
             for s in sections]
    if ending is not None:
        spans.append(dict(name="ending", start=round(ending, 3), end=round(seconds, 3), bars=0, chords=[final.name]))
    return Arrangement(midi, round(timing.bpm, 3), nbars, spans)


def accompany(params: MusicParams, style: Style, sections: list[Section], chords: list[Chord], final: Chord,
              timing: Timing, rng: np.random.Generator) -> Band:
    """Comping, pad, bass and drums, bar by bar; the intro leaves out all but the gentlest parts."""
    inst, band, nbars = params.instruments, Band(), len(chords)
    scale = scale_pcs(params.key, params.mode)
    rootless = inst.bass is not None and style.chord_ext in ("seventh", "ninth")
    b_lo, b_hi = bass_range(inst.bass if inst.bass is not None else 33)
    for s_i, sec in enumerate(sections):
        more = s_i + 1 < len(sections) or params.loop  # something follows: a fill leads into it
        for i in range(sec.bars):
            bar = sec.start + i
            start, beats = bar * 4.0, min(4.0, timing.beats - bar * 4.0)
            chord = chords[bar]
            nxt = chords[bar + 1] if bar + 1 < nbars else (chords[0] if params.loop else final)
            band.levels.append(sec.level)
            band.voicing = chord_voicing(chord, band.voicing, style.register, rootless)
            pattern = style.comp[sec.variant if params.energy >= 0.3 and not sec.breakdown else 0]
            band.hits["chords"] += comp_bar(pattern, band.voicing, start, beats)
            if inst.pad is not None and (i % style.bars_per_chord == 0 or i == 0):
                band.pad = pad_voicing(chord, band.pad)
                end = min(start + (style.bars_per_chord - i % style.bars_per_chord) * 4.0, (sec.start + sec.bars) * 4.0,
                          timing.beats)
                band.hits["pad"] += [Hit(start, end, n, 0.85) for n in band.pad]
            if inst.bass is not None and (sec.name != "intro" or style.bass_line[0] in GENTLE_BASS):
                line = style.bass_line[sec.variant]
                band.hits["bass"] += bass_bar(line, chord, nxt, band.bass, rng, start, beats, scale, b_lo, b_hi)
                band.bass = bass_root(chord, band.bass, b_lo, b_hi)
            if params.drums and (sec.name != "intro" or params.energy >= 0.5):
                groove = style.drums or "soft"
                part = "intro" if sec.name == "intro" or sec.breakdown else "AB"[sec.variant]
                fill = more and i == sec.bars - 1 and sec.bars > 1 and beats == 4
                crash = i == 0 and part != "intro" and groove not in NO_CRASH
                band.hits["drums"] += drum_bar(groove, part, start, beats, fill=fill, crash=crash)
    return band


def to_midi(params: MusicParams, style: Style, band: Band, last: dict, timing: Timing, seconds: float,
            ending: float | None, human: np.random.Generator) -> pretty_midi.PrettyMIDI:
    """Every part placed in seconds: swing and ritardando (Timing), dynamics (velocity by section, swells into
    louder ones), a little human timing; a loop's notes stop at its end (their tails wrap round in render)."""
    inst, levels = params.instruments, band.levels
    midi = pretty_midi.PrettyMIDI(initial_tempo=timing.bpm, resolution=960)
    midi.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
    midi.key_signature_changes.append(
        pretty_midi.KeySignature(key_pc(params.key) + (12 if params.mode in MINOR_FAMILY else 0), 0.0))

    def level_at(b: float) -> float:
        bar = min(int(b // 4), len(levels) - 1) if levels else 0
        lv = levels[bar] if levels else 0.8
        if bar + 1 < len(levels) and levels[bar + 1] > lv:  # a swell into a louder section
            lv += (levels[bar + 1] - lv) * ((b - bar * 4) / 4)
        return lv

    gain = 0.72 + 0.38 * params.energy
    end_at = seconds - (min(0.5, 0.3 * (seconds - ending)) if ending is not None else 0.0)
    limit = seconds if params.loop else end_at
    for role in ROLES:
        program = style.kit if role == "drums" else getattr(inst, role)
        if (role == "drums" and not params.drums) or program is None:
            continue
        track = pretty_midi.Instrument(program, is_drum=role == "drums", name=role)
        track.control_changes += [pretty_midi.ControlChange(7, 100, 0.0),  # the mix: set after rendering
                                  pretty_midi.ControlChange(10, ROLE_PAN[role], 0.0)]
        jitter = style.humanize * (0.5 if role == "drums" else 1.0)
        late = 0.02 if style.lofi and role == "chords" else 0.0  # lo-fi chords sit behind the beat
        for h in band.hits[role]:
            dt = float(np.clip(human.normal(0, jitter), -2 * jitter, 2 * jitter)) if jitter else 0.0
            vel = 127 * ROLE_VELOCITY[role] * h.velocity * level_at(h.start) * gain * (1 + human.normal(0, 0.04))
            _add(track, h.pitch, vel, max(0.0, timing.sec(h.start) + dt + late), timing.sec(h.end) + dt + late, limit)
        for pitch, vel in last.get(role, []):
            _add(track, pitch, 127 * ROLE_VELOCITY[role] * vel * gain * (levels[-1] if levels else 0.8),
                 ending, end_at, end_at)
        if role == "pad":
            track.control_changes += _swell(timing, level_at, params.loop)
        _tidy(track)
        if track.notes:
            midi.instruments.append(track)
    return midi


def final_chord(params: MusicParams, final: Chord, band: Band) -> dict[str, list[tuple[int, float]]]:
    """The last chord, every part together, softer than the music before it (a resolution, not a last
    swell): (pitch, velocity) per role."""
    style = STYLES[params.style]
    rootless = params.instruments.bass is not None and style.chord_ext in ("seventh", "ninth")
    b_lo, b_hi = bass_range(params.instruments.bass if params.instruments.bass is not None else 33)
    out = {"chords": [(n, 0.6) for n in chord_voicing(final, band.voicing, style.register, rootless)],
           "bass": [(bass_root(final, band.bass, b_lo, b_hi), 0.7)]}
    if params.instruments.pad is not None:
        out["pad"] = [(n, 0.7) for n in pad_voicing(final, band.pad)]
    if params.instruments.melody is not None:
        lo, hi = tune_range(params, style)
        tune = band.hits["melody"]
        out["melody"] = [(nearest(final.root, tune[-1].pitch if tune else (lo + hi) // 2, lo, hi), 0.65)]
    if params.drums:
        out["drums"] = [(36, 0.9)] + ([] if (style.drums or "soft") in NO_CRASH else [(49, 0.8)])
    return out


def _add(track: pretty_midi.Instrument, pitch: int, vel: float, start: float, end: float, limit: float) -> None:
    end = min(end, limit)
    if start < limit and end - start > 0.01 and 0 <= pitch <= 127:
        track.notes.append(pretty_midi.Note(int(np.clip(round(vel), 8, 127)), int(pitch), float(start), float(end)))


def _tidy(track: pretty_midi.Instrument) -> None:
    """No overlapping notes of the same pitch (a synth's note-off would cut the later one short)."""
    notes = sorted(track.notes, key=lambda n: (n.pitch, n.start, n.end))
    kept = []
    for a, b in zip(notes, notes[1:] + [None]):
        if b is not None and b.pitch == a.pitch and b.start < a.end:
            a.end = b.start
        if a.end - a.start > 0.01:
            kept.append(a)
    track.notes = sorted(kept, key=lambda n: (n.start, n.pitch))


def _swell(timing: Timing, level_at, loop: bool) -> list[pretty_midi.ControlChange]:
    """The pad's expression (CC11) follows the dynamics beat by beat: it fades in, swells into sections."""
    out, last = [], None
    for b in range(int(timing.beats) + 1):
        v = 0.55 + 0.45 * level_at(float(b))
        if not loop and b < 4:
            v *= 0.6 + 0.1 * b  # the opening fade-in
        value = int(round(127 * min(1.0, v)))
        if value != last:
            out.append(pretty_midi.ControlChange(11, value, float(timing.sec(b))))
            last = value
    return out


def _changes(chords: list[Chord]) -> list[str]:
    out: list[str] = []
    for c in chords:
        if not out or out[-1] != c.name:
            out.append(c.name)
    return out
