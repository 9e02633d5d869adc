"""Rhythm patterns, one 4/4 bar each, in beats (0..4). A style names one pattern per part for its A
sections and one for its B sections (params.Style.comp, .bass_line, .drums, .melody_rhythm).

COMP hits are (beat, beats, notes, velocity) where notes is
  "all"          the whole voicing at once (a block chord)
  "up" / "down"  the voicing strummed or rolled, low-to-high or high-to-low
  an int i       one note of the arpeggio: the voicing, then the voicing an octave up (i wraps around)
A pattern with ring=True lets each note sound to the end of the bar (a sustain pedal, open strings).

BASS hits are (beat, beats, tone, velocity): R root, 5 fifth, 8 octave, 3 third, A a step that leads
into the next chord's root; "walking" is built note by note (parts.walking_bar).

DRUMS grooves are 16-step grids per General MIDI drum note; a step's character is its velocity:
X accent, x normal, o soft, g ghost, . rest. "fill" replaces the last 8 steps of a section's last bar.
"""

from __future__ import annotations

STEP_VELOCITY = {"X": 1.0, "x": 0.82, "o": 0.6, "g": 0.38}


def _eighths(notes, vels, dur=0.5):
    return tuple((i * 0.5, dur, n, v) for i, (n, v) in enumerate(zip(notes, vels)))


def _sixteenths(notes, vels, dur=0.22):
    return tuple((i * 0.25, dur, n, v) for i, (n, v) in enumerate(zip(notes, vels)))


_ACCENT8 = (0.9, 0.55, 0.7, 0.55, 0.82, 0.55, 0.7, 0.6)

COMP: dict[str, dict] = {
    "held": {"hits": ((0, 4, "all", 1.0),)},
    "ambient_arp": {"hits": ((0, 1, 0, 0.8), (1.5, 1, 2, 0.6), (3, 1, 3, 0.65)), "ring": True},
    "ambient_arp2": {"hits": ((0, 1, 1, 0.75), (1, 1, 2, 0.55), (2, 1, 4, 0.6), (3, 1, 3, 0.5)), "ring": True},
    "piano_arp": {"hits": _eighths((0, 1, 2, 3, 4, 3, 2, 1), (0.85, 0.55, 0.65, 0.55, 0.75, 0.55, 0.62, 0.5)),
                  "ring": True},
    "piano_arp_b": {"hits": _eighths((0, 2, 3, 4, 5, 4, 3, 2), (0.9, 0.6, 0.7, 0.6, 0.8, 0.6, 0.68, 0.55)),
                    "ring": True},
    "charleston": {"hits": ((0, 0.75, "all", 0.85), (1.5, 0.5, "all", 0.7))},
    "jazz_comp": {"hits": ((1, 0.5, "all", 0.7), (2.5, 1.0, "all", 0.8), (3.5, 0.5, "all", 0.55))},
    "lofi_hold": {"hits": ((0, 3.5, "up", 0.8), (3.5, 0.5, "all", 0.5))},
    "lofi_push": {"hits": ((0, 2, "up", 0.75), (2.5, 1.5, "up", 0.7))},
    "pop_8ths": {"hits": _eighths(("all",) * 8, _ACCENT8, dur=0.45)},
    "pop_push": {"hits": ((0, 1.5, "all", 0.9), (1.5, 1.0, "all", 0.75), (2.5, 1.5, "all", 0.82))},
    "strum": {"hits": ((0, 1, "down", 0.9), (1, 0.5, "down", 0.7), (1.5, 0.5, "up", 0.55), (2.5, 0.5, "up", 0.55),
                       (3, 0.5, "down", 0.75), (3.5, 0.5, "up", 0.55)), "ring": True},
    "travis": {"hits": _eighths((0, 3, 1, 2, 0, 3, 1, 4), (0.8, 0.55, 0.7, 0.55, 0.78, 0.55, 0.7, 0.6)),
               "ring": True},
    "rock_8ths": {"hits": _eighths(("all",) * 8, (0.95, 0.65, 0.75, 0.65, 0.9, 0.65, 0.75, 0.7), dur=0.42)},
    "rock_drive": {"hits": ((0, 1.5, "all", 0.95), (1.5, 1.0, "all", 0.8), (2.5, 1.5, "all", 0.88))},
    "edm_arp": {"hits": _sixteenths((0, 1, 2, 3, 4, 3, 2, 1) * 2, (0.85, 0.5, 0.6, 0.5) * 4)},
    "edm_stabs": {"hits": ((0.5, 0.3, "all", 0.8), (1.5, 0.3, "all", 0.75), (2.5, 0.3, "all", 0.8),
                           (3.5, 0.3, "all", 0.75), (3.75, 0.2, "all", 0.5))},
    "orch_arp": {"hits": _eighths((0, 1, 2, 3, 4, 3, 2, 1), (0.75, 0.5, 0.6, 0.5, 0.7, 0.5, 0.6, 0.5)), "ring": True},
    "orch_arp_b": {"hits": _eighths((0, 2, 1, 3, 2, 4, 3, 5), (0.8, 0.55, 0.62, 0.55, 0.75, 0.55, 0.62, 0.55)),
                   "ring": True},
    # 3+3+2 accents: the driving string figure of film scores
    "ostinato": {"hits": _eighths((0, 1, 2, 0, 1, 2, 0, 1), (0.95, 0.55, 0.6, 0.88, 0.55, 0.6, 0.85, 0.6), dur=0.4)},
    "ostinato_b": {"hits": _sixteenths((0, 0, 2, 0, 1, 0, 2, 0, 0, 0, 2, 0, 1, 0, 3, 0),
                                       (0.95, 0.45, 0.6, 0.45, 0.8, 0.45, 0.6, 0.45) * 2, dur=0.22)},
}

BASS: dict[str, tuple] = {
    "sustain": ((0, 4, "R", 0.8),),
    "lh_root": ((0, 4, "R", 0.8), (2, 2, "5", 0.55)),
    "lh_root_fifth": ((0, 4, "R", 0.8), (1, 3, "5", 0.5), (2, 2, "8", 0.55), (3, 1, "5", 0.5)),
    "root_half": ((0, 2, "R", 0.8), (2, 2, "5", 0.7)),
    "root_quarter": ((0, 1, "R", 0.8), (1, 1, "5", 0.65), (2, 1, "8", 0.7), (3, 1, "5", 0.65)),
    "root_fifth": ((0, 1.5, "R", 0.8), (2, 1.5, "5", 0.7)),
    "lofi": ((0, 1.5, "R", 0.85), (2.5, 0.75, "5", 0.7), (3.5, 0.5, "A", 0.6)),
    "lofi_b": ((0, 1, "R", 0.85), (1.5, 0.5, "R", 0.6), (2.5, 1, "3", 0.7), (3.5, 0.5, "A", 0.6)),
    "pop8": _eighths(("R",) * 8, (0.85, 0.6, 0.7, 0.6, 0.8, 0.6, 0.7, 0.65), dur=0.45),
    "pop_synco": ((0, 1, "R", 0.85), (1.5, 0.5, "R", 0.65), (2, 1, "5", 0.75), (3, 0.5, "8", 0.6),
                  (3.5, 0.5, "A", 0.6)),
    "rock8": _eighths(("R",) * 8, (0.9, 0.65, 0.75, 0.65, 0.88, 0.65, 0.75, 0.7), dur=0.42),
    "octave8": _eighths(("R", "8") * 4, (0.9, 0.7) * 4, dur=0.35),
    "offbeat8": ((0, 0.3, "R", 0.7), (0.5, 0.4, "R", 0.9), (1.5, 0.4, "R", 0.9), (2.5, 0.4, "8", 0.9),
                 (3.5, 0.4, "R", 0.9)),
    "walking": (),
}

_H8 = "x.o.x.o.x.o.x.o."
DRUMS: dict[str, dict[str, dict[int, str]]] = {
    "rock": {"A": {36: "x.......x.x.....", 38: "....X.......X...", 42: _H8},
             "B": {36: "x.....x.x.x.....", 38: "....X.......X...", 51: _H8, 46: "..............o."},
             "intro": {42: _H8},
             "fill": {38: "xxoo....", 50: "....xo..", 45: "......xX", 36: "x.....x."}},
    "pop": {"A": {36: "x.....x.x.......", 38: "....x.......x...", 42: _H8},
            "B": {36: "x.....x.x.x.....", 38: "....x.......x...", 39: "....o.......o...", 42: _H8,
                  46: "..............o."},
            "intro": {42: "o.o.o.o.o.o.o.o."},
            "fill": {38: "o.o.xxxX", 36: "x......."}},
    "jazz": {"A": {51: "x...x.o.x...x.o.", 44: "....x.......x...", 36: "g...g...g...g..."},
             "B": {51: "x...x.o.x...x.o.", 44: "....x.......x...", 36: "g...g...g...g...", 38: "......g.......g."},
             "intro": {51: "x...x.o.x...x.o.", 44: "....x.......x..."},
             "fill": {38: "..o.o.x.", 36: "x......."}},
    "lofi": {"A": {36: "x......x..x.....", 38: "....x.......x...", 42: _H8},
             "B": {36: "x......x..x..x..", 38: "....x.......x..g", 42: "x.o.x.oox.o.x.o."},
             "intro": {42: "o.g.o.g.o.g.o.g."},
             "fill": {38: "o...x.g.", 36: "..x....."}},
    "electronic": {"A": {36: "x...x...x...x...", 39: "....x.......x...", 42: "..x...x...x...x."},
                   "B": {36: "x...x...x...x...", 39: "....x.......x...", 46: "..x...x...x...x.",
                         42: "g.g.g.g.g.g.g.g."},
                   "intro": {36: "x...x...x...x...", 42: "..o...o...o...o."},
                   "fill": {38: "x.x.xxxX", 36: "x...x..."}},
    "cinematic": {"A": {36: "X.......x.......", 41: "..x...x...x...x."},
                  "B": {36: "X.....x.X.......", 41: "x.x.x.x.x.x.x.x.", 43: "......x.......x.", 38: "....x.......x..."},
                  "intro": {36: "X..............."},
                  "fill": {43: "xxoo....", 41: "....xxxX"}},
    "folk": {"A": {36: "x.......x.......", 54: "....x.......x...", 70: "o.o.o.o.o.o.o.o."},
             "B": {36: "x.....x.x.......", 37: "....x.......x...", 70: "o.o.o.o.o.o.o.o.", 54: "....x.......x..."},
             "intro": {70: "o.o.o.o.o.o.o.o."},
             "fill": {54: "x.x.x.x."}},
    "soft": {"A": {36: "x.......x.......", 70: "o.o.o.o.o.o.o.o.", 37: "....o.......o..."},
             "B": {36: "x.....x.x.......", 70: "o.o.o.o.o.o.o.o.", 37: "....x.......x..."},
             "intro": {70: "g.g.g.g.g.g.g.g."},
             "fill": {37: "o.o.x.x."}},
}
CRASH = 49  # marks a section's first downbeat (styles with an accent cymbal)

# Melody rhythms: bars of (onset, beats); "cadence" bars end a phrase.
MELODY_RHYTHMS: dict[str, dict[str, tuple]] = {
    "sparse": {"bars": (((0, 3),), ((0, 2), (2, 2)), ((1, 3),), ((0, 1.5), (1.5, 2.5)), ((2, 2),)),
               "cadence": (((0, 4),), ((0, 2), (2, 2)))},
    "lyrical": {"bars": (((0, 1.5), (1.5, 0.5), (2, 2)), ((0, 1), (1, 1), (2, 2)), ((0, 2), (2, 1), (3, 1)),
                         ((0.5, 0.5), (1, 1), (2, 1.5), (3.5, 0.5)), ((0, 1), (1, 0.5), (1.5, 0.5), (2, 2))),
                "cadence": (((0, 4),), ((0, 1), (1, 3)), ((0, 2), (2, 2)))},
    "swing": {"bars": (((0, 1), (1.5, 0.5), (2, 0.5), (2.5, 1.5)), ((0.5, 0.5), (1, 0.5), (1.5, 0.5), (2, 1), (3, 1)),
                       ((0, 1.5), (2, 0.5), (2.5, 0.5), (3, 1)), ((0, 0.5), (0.5, 0.5), (1, 0.5), (1.5, 0.5), (2, 2))),
              "cadence": (((0, 3),), ((0.5, 0.5), (1, 3)))},
    "laid_back": {"bars": (((0.5, 1), (2, 0.5), (2.5, 1.5)), ((0, 1.5), (3, 1)), ((0.5, 0.5), (1, 1), (2.5, 1.5)),
                           ((0, 3),)),
                  "cadence": (((0, 4),), ((0.5, 3.5),))},
    "pop": {"bars": (((0, 0.5), (0.5, 0.5), (1, 1), (2, 0.5), (2.5, 1.5)),
                     ((0, 1), (1, 0.5), (1.5, 1), (2.5, 0.5), (3, 1)),
                     ((0.5, 0.5), (1, 0.5), (1.5, 0.5), (2, 2)), ((0, 1.5), (1.5, 1.5), (3, 1))),
            "cadence": (((0, 2), (2, 2)), ((0, 4),), ((0, 1), (1, 3)))},
    "electronic": {"bars": (((0, 0.75), (0.75, 0.75), (1.5, 0.5), (2, 0.5), (2.5, 1.5)),
                            ((0, 0.5), (0.75, 0.75), (1.5, 0.5), (2.5, 0.5), (3, 1)), ((0, 1.5), (1.5, 1.5), (3, 1)),
                            ((0.5, 0.5), (1, 0.5), (1.5, 0.5), (2, 0.75), (2.75, 1.25))),
                   "cadence": (((0, 3),), ((0, 0.75), (0.75, 3.25)))},
}
