"""What the symbolic composer plays: the parameters (`MusicParams`), what a description may say
(`MusicChoice`, the rule parser's and the LLM's answer), and the style and mood tables that fill in
whatever the description leaves open.

Instruments are General MIDI program numbers (0 = Acoustic Grand Piano ... 127), one per role:
  chords  the comping part (block chords, strums, arpeggios, ostinato)
  pad     sustained chords under everything (None: no pad)
  bass    the bass line (for solo piano: the left hand)
  melody  the tune, built from the chord tones (None: no melody)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

KEYS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MODES = ("major", "minor", "dorian", "mixolydian", "lydian", "phrygian")
ROLES = ("chords", "pad", "bass", "melody")

Key = Literal["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
Mode = Literal["major", "minor", "dorian", "mixolydian", "lydian", "phrygian"]
StyleName = Literal["ambient", "piano", "jazz", "lofi", "pop", "rock", "electronic", "orchestral", "cinematic", "folk"]
MoodName = Literal["calm", "upbeat", "sad", "tense", "epic", "dreamy", "romantic", "mysterious", "playful", "neutral"]
Program = Optional[int]
Degree = Annotated[int, Field(ge=1, le=7)]  # a scale degree: 1 the tonic chord, 5 the dominant...


class Instruments(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chords: int = Field(ge=0, le=127)
    pad: Program = Field(default=None, ge=0, le=127)
    bass: Program = Field(default=None, ge=0, le=127)
    melody: Program = Field(default=None, ge=0, le=127)


class MusicParams(BaseModel):
    """Everything the arranger needs; every field bounded, so any value that validates plays."""

    model_config = ConfigDict(extra="forbid")
    style: StyleName
    mood: MoodName
    tempo_bpm: float = Field(ge=30, le=300)  # a loop's tempo is fitted to its length, hence the wide range
    key: Key
    mode: Mode
    energy: float = Field(ge=0, le=1)  # dynamics and density: 0 sparse and soft, 1 busy and loud
    instruments: Instruments
    drums: bool
    loop: bool = False
    swing: float = Field(default=0.0, ge=0, le=0.4)  # 0 straight eighths, 0.33 triplet feel
    progression: list[Degree] = Field(min_length=1, max_length=8)  # one chord each (a bar, or two)
    reverb: float = Field(default=0.2, ge=0, le=0.8)  # wet share of the room


class MusicChoice(BaseModel):
    """What a description says (rules or LLM); None leaves the choice to the style and mood tables."""

    model_config = ConfigDict(extra="ignore")
    style: Optional[StyleName] = Field(default=None, description="the genre; null if the description names none")
    mood: Optional[MoodName] = Field(default=None, description="the feeling; null if none is said")
    tempo_bpm: Optional[float] = Field(default=None, ge=40, le=220, description="beats per minute, only if said")
    key: Optional[Key] = Field(default=None, description="tonic, only if said")
    mode: Optional[Mode] = None
    energy: Optional[float] = Field(default=None, ge=0, le=1, description="0 very soft/sparse .. 1 loud/busy")
    tempo_shift: float = Field(default=0.0, ge=-1, le=1, description="-1 much slower .. 1 much faster than usual")
    energy_shift: float = Field(default=0.0, ge=-1, le=1, description="-1 much softer .. 1 much more intense")
    instruments: list[str] = Field(default_factory=list, description="instrument words from the list given")
    drums: Optional[bool] = Field(default=None, description="true/false only if drums are asked for or refused")
    melody: Optional[bool] = Field(default=None, description="false if asked for no melody / background only")
    loop: bool = False
    trio: bool = False  # a jazz trio: piano, bass, drums; the piano plays the tune


@dataclass(frozen=True)
class Style:
    name: str
    words: tuple[str, ...]  # description words naming it (longest phrases first when matched)
    tempo: tuple[int, int]  # usual bpm range: mood picks a point in it
    energy: float
    modes: tuple[str, ...]  # the modes it plays in, most typical first
    keys: tuple[str, ...]  # keys it sits well in (guitars like E, A, D, G...)
    chords: int
    pad: int | None
    bass: int | None
    melody: int | None
    comp: tuple[str, str]  # comping pattern for A and B sections (patterns.COMP)
    bass_line: tuple[str, str]  # patterns.BASS
    melody_rhythm: str  # patterns.MELODY_RHYTHMS
    progressions: dict[str, tuple[tuple[int, ...], ...]]  # "major" / "minor" family -> degree lists
    drums: str | None = None  # patterns.DRUMS groove; None: none unless asked (then "soft")
    kit: int = 0  # GM drum kit (bank 128 preset): 0 standard, 8 room, 16 power, 24 electronic, 25 808, 32 jazz
    drums_from: float = 0.0  # drums by default only at or above this energy
    chord_ext: str = "triad"  # triad | seventh | ninth | add9 | power
    bars_per_chord: int = 1
    swing: float = 0.0
    harmonic_v: bool = False  # minor keys: a major V (raised leading tone) at cadences
    cadence: int = 5  # the chord before the final tonic
    reverb: tuple[float, float] = (0.2, 1.6)  # wet share, RT60 seconds
    humanize: float = 0.008  # timing jitter (s): a sequenced style stays on the grid (0)
    lofi: bool = False  # dull top, tape saturation, vinyl crackle
    ritardando: float = 0.12  # slow-down over the last two bars of a piece with an ending
    mood_melody: dict[str, int | None] = field(default_factory=dict)  # mood -> melody program
    register: tuple[int, int] = (52, 74)  # the chords' voicing range (MIDI notes)
    mix: dict[str, float] = field(default_factory=dict)  # role -> level (dB) over MIX's
    half_diminished: bool = False  # keeps m7b5 chords (jazz); other styles swap them for a neighbour
    staccato: bool = False  # the chords part plays short notes (ostinato, stabs): releases cut short


# How loud each part sits in the mix (dB, relative; render.py measures each stem and puts it there),
# and its share of the reverb: a dry bass and kick keep the low end clear.
MIX = {"melody": -1.0, "chords": -2.0, "pad": -7.0, "bass": -5.0, "drums": -3.0}
SENDS = {"melody": 1.0, "chords": 0.8, "pad": 1.0, "bass": 0.1, "drums": 0.35}


_MAJ = ((1, 5, 6, 4), (1, 6, 4, 5), (1, 4, 6, 5), (6, 4, 1, 5), (1, 4, 1, 5))
_MIN = ((1, 6, 3, 7), (1, 4, 6, 5), (1, 7, 6, 7), (1, 6, 7, 1), (1, 4, 7, 3))

STYLES: dict[str, Style] = {s.name: s for s in [
    Style("ambient", ("ambient", "atmospheric", "atmosphere", "drone", "meditation", "meditative", "spa", "new age",
                      "soundscape"),
          tempo=(60, 84), energy=0.2, modes=("major", "lydian", "minor", "dorian"),
          keys=("C", "D", "E", "F", "G", "A", "Bb"),
          chords=46, pad=89, bass=89, melody=11,  # harp, warm pad (also the low drone), vibraphone
          comp=("ambient_arp", "ambient_arp2"), bass_line=("sustain", "sustain"), melody_rhythm="sparse",
          chord_ext="add9", bars_per_chord=2, cadence=4, reverb=(0.45, 3.5), ritardando=0.08, register=(55, 76),
          mix={"pad": -2.0, "chords": -4.0, "melody": -3.0, "bass": -6.0},
          progressions={"major": ((1, 4), (1, 5, 6, 4), (1, 6, 4, 4), (4, 1, 5, 1)),
                        "minor": ((1, 6), (1, 7, 6, 7), (1, 6, 3, 7), (1, 4, 6, 7))}),
    Style("piano", ("solo piano", "piano solo", "piano piece", "piano ballad"),
          tempo=(64, 100), energy=0.35, modes=("major", "minor", "dorian", "lydian"), keys=KEYS,
          chords=0, pad=None, bass=0, melody=1,  # broken chords, the left hand, a brighter piano for the tune
          comp=("piano_arp", "piano_arp_b"), bass_line=("lh_root", "lh_root_fifth"), melody_rhythm="lyrical",
          reverb=(0.25, 2.0), register=(46, 62), mix={"chords": -1.0, "bass": -5.0, "melody": 0.0},
          progressions={"major": _MAJ, "minor": _MIN}),
    Style("jazz", ("jazz", "jazzy", "swing", "bebop", "bossa", "lounge", "trio", "cocktail", "big band"),
          tempo=(100, 160), energy=0.5, modes=("major", "minor", "dorian"), keys=("C", "F", "Bb", "Eb", "G", "D"),
          chords=0, pad=None, bass=32, melody=1, mood_melody={"sad": 65, "romantic": 65},  # alto sax ballads
          comp=("charleston", "jazz_comp"), bass_line=("walking", "walking"), melody_rhythm="swing",
          drums="jazz", kit=32, chord_ext="seventh", swing=0.3, harmonic_v=True, half_diminished=True,
          reverb=(0.18, 1.3), register=(50, 71), mix={"bass": -6.0, "drums": -5.0, "chords": -2.0, "melody": 0.0},
          progressions={"major": ((2, 5, 1, 6), (1, 6, 2, 5), (3, 6, 2, 5), (1, 4, 3, 6, 2, 5, 1, 1)),
                        "minor": ((2, 5, 1, 1), (1, 4, 2, 5), (1, 6, 2, 5))}),
    Style("lofi", ("lo-fi", "lofi", "lo fi", "hip hop", "hip-hop", "hiphop", "chillhop", "boom bap", "study beat",
                   "beats to study", "trip hop"),
          tempo=(70, 90), energy=0.4, modes=("major", "dorian", "minor"), keys=("C", "D", "Eb", "F", "G", "A", "Bb"),
          chords=4, pad=None, bass=33, melody=11,  # electric piano, finger bass, vibraphone
          comp=("lofi_hold", "lofi_push"), bass_line=("lofi", "lofi_b"), melody_rhythm="laid_back",
          drums="lofi", kit=8, chord_ext="ninth", swing=0.2, cadence=4, reverb=(0.15, 1.0), lofi=True,
          ritardando=0.0, mix={"drums": -1.5, "chords": -1.0, "bass": -4.5, "melody": -3.0},
          progressions={"major": ((4, 3, 2, 1), (2, 5, 1, 6), (1, 6, 2, 5), (4, 5, 3, 6)),
                        "minor": ((1, 4, 1, 4), (1, 4, 7, 3), (2, 5, 1, 1), (6, 5, 1, 1))}),
    Style("pop", ("pop", "corporate", "commercial", "advert", "vlog", "youtube", "indie pop"),
          tempo=(96, 124), energy=0.65, modes=("major", "minor", "mixolydian"),
          keys=("C", "D", "E", "F", "G", "A", "Bb"),
          chords=0, pad=89, bass=33, melody=12,  # piano eighths, a soft pad, marimba
          comp=("pop_8ths", "pop_push"), bass_line=("pop8", "pop_synco"), melody_rhythm="pop",
          drums="pop", kit=0, drums_from=0.35, reverb=(0.18, 1.4),
          mix={"chords": -2.0, "drums": -2.0, "melody": -1.5, "pad": -8.0},
          progressions={"major": _MAJ, "minor": ((1, 6, 3, 7), (6, 4, 1, 5), (1, 7, 6, 7))}),
    Style("rock", ("rock", "indie rock", "punk", "grunge", "metal", "garage", "power chords", "distorted"),
          tempo=(100, 140), energy=0.8, modes=("major", "mixolydian", "minor", "dorian"),
          keys=("E", "A", "D", "G", "C"),
          chords=29, pad=None, bass=34, melody=27,  # overdriven power chords, picked bass, clean lead
          comp=("rock_8ths", "rock_drive"), bass_line=("rock8", "rock8"), melody_rhythm="pop",
          drums="rock", kit=16, chord_ext="power", cadence=4, reverb=(0.14, 1.1), register=(40, 62), staccato=True,
          mix={"chords": 0.0, "drums": -1.0, "bass": -4.5, "melody": -3.0},
          progressions={"major": ((1, 5, 6, 4), (1, 4, 5, 4), (1, 7, 4, 1), (6, 4, 1, 5)),
                        "minor": ((1, 6, 7, 1), (1, 7, 6, 7), (1, 4, 6, 5), (1, 6, 3, 7))}),
    Style("electronic", ("electronic", "electronica", "edm", "dance", "house", "techno", "trance", "synthwave",
                         "electro", "club", "synth pop", "synthpop"),
          tempo=(118, 130), energy=0.75, modes=("minor", "major", "dorian", "phrygian"),
          keys=("C", "D", "E", "F", "G", "A"),
          chords=90, pad=95, bass=38, melody=80,  # poly synth arpeggios and stabs, sweep pad, synth bass, square lead
          comp=("edm_arp", "edm_stabs"), bass_line=("octave8", "offbeat8"), melody_rhythm="electronic",
          drums="electronic", kit=24, drums_from=0.2, chord_ext="seventh", humanize=0.0, cadence=4,
          reverb=(0.22, 1.6), ritardando=0.0, register=(57, 76), staccato=True,
          mix={"drums": -1.0, "bass": -3.5, "chords": -4.0, "melody": -4.0, "pad": -6.0},
          progressions={"major": ((1, 5, 6, 4), (6, 4, 1, 5), (4, 5, 6, 6), (1, 3, 4, 5)),
                        "minor": ((1, 6, 3, 7), (1, 6, 7, 7), (6, 7, 1, 1), (1, 4, 6, 7))}),
    Style("orchestral", ("orchestral", "orchestra", "symphonic", "classical", "chamber", "string quartet"),
          tempo=(70, 112), energy=0.5, modes=("major", "minor", "lydian", "dorian"),
          keys=("C", "D", "Eb", "F", "G", "A", "Bb"),
          chords=46, pad=48, bass=43, melody=73,  # harp, strings, contrabass, flute
          mood_melody={"epic": 60, "sad": 40, "tense": 42},  # horns, violin, cello
          comp=("orch_arp", "orch_arp_b"), bass_line=("root_half", "root_quarter"), melody_rhythm="lyrical",
          harmonic_v=True, reverb=(0.32, 2.4), ritardando=0.16,
          mix={"pad": -3.0, "chords": -4.0, "melody": -1.0, "bass": -6.0},
          progressions={"major": ((1, 4, 5, 1), (1, 6, 4, 5), (1, 5, 6, 3, 4, 1, 4, 5), (1, 6, 2, 5)),
                        "minor": ((1, 4, 5, 1), (1, 6, 4, 5), (1, 7, 6, 5), (1, 4, 7, 3))}),
    Style("cinematic", ("cinematic", "film", "movie", "trailer", "soundtrack", "score", "documentary", "dramatic"),
          tempo=(70, 120), energy=0.6, modes=("minor", "major", "dorian", "phrygian", "lydian"),
          keys=("C", "D", "E", "F", "G", "A"),
          chords=48, pad=49, bass=43, melody=60,  # string ostinato, slow strings, contrabass, horns
          mood_melody={"sad": 0, "calm": 0, "dreamy": 0, "romantic": 0, "mysterious": 73},  # piano, flute
          comp=("ostinato", "ostinato_b"), bass_line=("sustain", "root_half"), melody_rhythm="sparse",
          drums="cinematic", kit=0, drums_from=0.55, harmonic_v=True, reverb=(0.35, 2.8), ritardando=0.18,
          register=(45, 67), staccato=True, mix={"pad": -3.0, "chords": -2.0, "melody": -2.0, "bass": -5.0},
          progressions={"major": ((1, 5, 6, 4), (4, 1, 5, 6), (1, 3, 6, 4), (6, 4, 1, 5)),
                        "minor": ((1, 6, 3, 7), (1, 6, 4, 5), (1, 7, 6, 7), (6, 7, 1, 1), (1, 3, 7, 4))}),
    Style("folk", ("folk", "acoustic", "country", "singer-songwriter", "campfire", "americana", "bluegrass",
                   "fingerpicking", "unplugged"),
          tempo=(80, 120), energy=0.45, modes=("major", "mixolydian", "minor", "dorian"),
          keys=("C", "D", "E", "G", "A"),
          chords=25, pad=None, bass=32, melody=73,  # steel-string guitar, upright bass, flute
          comp=("travis", "strum"), bass_line=("root_fifth", "root_fifth"), melody_rhythm="lyrical",
          drums="folk", kit=8, drums_from=0.5, reverb=(0.2, 1.4), register=(50, 71),
          mix={"chords": -1.0, "melody": -2.5, "bass": -6.0, "drums": -6.0},
          progressions={"major": ((1, 4, 1, 5), (1, 5, 6, 4), (1, 4, 6, 5), (6, 4, 1, 5), (1, 1, 4, 5)),
                        "minor": ((1, 7, 6, 7), (1, 6, 7, 1), (1, 4, 7, 3))}),
]}

# Modal colour: progressions that make the mode audible (used instead of the style's major/minor sets).
MODE_PROGRESSIONS = {
    "dorian": ((1, 4, 1, 4), (1, 2, 4, 1), (1, 7, 4, 1)),
    "mixolydian": ((1, 7, 4, 1), (1, 7, 1, 4), (1, 5, 7, 4)),
    "lydian": ((1, 2, 1, 2), (1, 2, 5, 1), (1, 2, 6, 5)),
    "phrygian": ((1, 2, 1, 2), (1, 2, 7, 1), (1, 2, 1, 7)),
}


@dataclass(frozen=True)
class Mood:
    name: str
    words: tuple[str, ...]
    tempo: float  # where in the style's tempo range: 0 its slow end, 1 its fast end
    modes: tuple[str, ...]  # the modes it asks for, first preferred (within those the style plays in)
    energy: float
    default_style: str  # when the description names no style


MOODS: dict[str, Mood] = {m.name: m for m in [
    Mood("calm", ("calm", "relaxed", "relaxing", "peaceful", "soft", "gentle", "soothing", "serene", "tranquil",
                  "chill", "chilled", "mellow", "quiet", "laid-back", "laid back", "easy", "warm", "cozy", "cosy"),
         0.2, ("major", "lydian"), 0.3, "piano"),
    Mood("upbeat", ("upbeat", "happy", "energetic", "cheerful", "joyful", "bright", "fun", "positive", "uplifting",
                    "lively", "bouncy", "optimistic", "motivational", "inspiring", "driving", "exciting", "sunny"),
         0.8, ("major", "mixolydian"), 0.8, "pop"),
    Mood("sad", ("sad", "melancholic", "melancholy", "sorrowful", "somber", "sombre", "emotional", "tearful",
                 "lonely", "wistful", "mournful", "grief", "heartbreak", "heartbroken", "nostalgic", "bittersweet"),
         0.15, ("minor", "dorian"), 0.3, "piano"),
    Mood("tense", ("tense", "tension", "suspense", "suspenseful", "dark", "ominous", "scary", "horror", "thriller",
                   "anxious", "menacing", "creepy", "sinister", "urgent", "danger", "dangerous"),
         0.55, ("minor", "phrygian"), 0.6, "cinematic"),
    Mood("epic", ("epic", "heroic", "triumphant", "powerful", "grand", "majestic", "bold", "adventure", "battle",
                  "victory", "glorious", "anthem", "anthemic"),
         0.65, ("minor", "major"), 0.9, "cinematic"),
    Mood("dreamy", ("dreamy", "ethereal", "floating", "spacey", "spacious", "magical", "wonder", "hazy", "airy"),
         0.25, ("lydian", "major"), 0.25, "ambient"),
    Mood("romantic", ("romantic", "love", "tender", "intimate", "sentimental", "wedding"),
         0.35, ("major",), 0.4, "piano"),
    Mood("mysterious", ("mysterious", "mystery", "curious", "enigmatic", "secret", "noir", "investigation"),
         0.4, ("dorian", "minor", "phrygian"), 0.4, "ambient"),
    Mood("playful", ("playful", "quirky", "whimsical", "cute", "funny", "light-hearted", "lighthearted", "silly",
                     "childlike", "kids", "cartoon"), 0.7, ("major", "mixolydian"), 0.6, "pop"),
    Mood("neutral", (), 0.5, (), 0.5, "piano"),
]}

# Instrument words -> (GM program, the roles it prefers, in order).
INSTRUMENTS: dict[str, tuple[int, tuple[str, ...]]] = {
    "grand piano": (0, ("chords", "melody")), "piano": (0, ("chords", "melody")),
    "bright piano": (1, ("melody", "chords")),
    "electric piano": (4, ("chords", "melody")), "rhodes": (4, ("chords", "melody")), "wurlitzer": (4, ("chords",)),
    "nylon guitar": (24, ("chords",)), "classical guitar": (24, ("chords",)), "ukulele": (24, ("chords",)),
    "acoustic guitar": (25, ("chords",)), "electric guitar": (27, ("chords", "melody")),
    "jazz guitar": (26, ("chords", "melody")), "distorted guitar": (29, ("chords",)), "guitar": (25, ("chords",)),
    "strings": (48, ("pad", "chords")), "string": (48, ("pad", "chords")), "violin": (40, ("melody",)),
    "fiddle": (110, ("melody",)), "viola": (41, ("melody",)), "cello": (42, ("melody", "bass")),
    "upright bass": (32, ("bass",)), "double bass": (32, ("bass",)), "synth bass": (38, ("bass",)),
    "bass guitar": (33, ("bass",)), "bass": (33, ("bass",)),
    "synth": (90, ("chords", "pad")), "synthesizer": (90, ("chords", "pad")),
    "flute": (73, ("melody",)), "clarinet": (71, ("melody",)), "oboe": (68, ("melody",)),
    "saxophone": (65, ("melody",)), "sax": (65, ("melody",)), "trumpet": (56, ("melody",)),
    "french horn": (60, ("melody", "pad")), "horns": (60, ("melody", "pad")), "horn": (60, ("melody", "pad")),
    "brass": (61, ("pad", "melody")), "vibraphone": (11, ("melody", "chords")), "vibes": (11, ("melody", "chords")),
    "marimba": (12, ("melody", "chords")), "xylophone": (13, ("melody",)), "glockenspiel": (9, ("melody",)),
    "bells": (9, ("melody",)), "celesta": (8, ("melody",)), "music box": (10, ("melody",)),
    "harp": (46, ("chords", "melody")), "choir": (52, ("pad",)), "voices": (53, ("pad",)),
    "organ": (16, ("chords", "pad")), "accordion": (21, ("chords", "melody")), "harmonica": (22, ("melody",)),
    "banjo": (105, ("chords",)), "kalimba": (108, ("melody",)), "pizzicato": (45, ("chords",)),
    "whistle": (78, ("melody",)), "pan flute": (75, ("melody",)), "sitar": (104, ("melody",)),
    "synth pad": (89, ("pad",)), "pads": (89, ("pad",)), "pad": (89, ("pad",)),
}

# A description naming instruments but no genre: the style those instruments suggest (first named wins).
INSTRUMENT_STYLES = {
    "piano": "piano", "grand piano": "piano", "electric piano": "lofi", "rhodes": "lofi", "guitar": "folk",
    "acoustic guitar": "folk", "nylon guitar": "folk", "classical guitar": "folk", "ukulele": "folk", "banjo": "folk",
    "distorted guitar": "rock", "electric guitar": "rock", "strings": "orchestral", "string": "orchestral",
    "violin": "orchestral", "cello": "orchestral", "flute": "orchestral", "harp": "orchestral", "horns": "cinematic",
    "french horn": "cinematic", "choir": "cinematic", "synth": "electronic", "synthesizer": "electronic",
    "synth bass": "electronic", "pad": "ambient", "pads": "ambient", "synth pad": "ambient", "sax": "jazz",
    "saxophone": "jazz", "trumpet": "jazz", "vibraphone": "jazz", "upright bass": "jazz", "double bass": "jazz",
}
