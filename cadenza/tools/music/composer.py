"""The embedded offline composer: compose_music's backend that needs no model and no GPU.

A description becomes parameters (symbolic/describe.py: the rules, or the configured LLM through
structured output), the parameters an arrangement (symbolic/arrange.py: form, chords, bass, melody,
drums, dynamics; an intro and an ending, or a seamless loop when the description says 'loop'), the
arrangement a Standard MIDI File and, through a General MIDI SoundFont (symbolic/render.py:
tinysoundfont with pretty_midi's TimGM6mb.sf2; a fuller GM font from the request's `model` when it is
a .sf2/.sf3 file, or from $CADENZA_SOUNDFONT), stereo audio at 44.1 kHz: exactly round(seconds * 44100)
samples, at -16 LUFS with peaks under -1 dBFS (a look-ahead limiter takes the few peaks above).

Same description, seconds and seed: bit-identical samples and MIDI (every random choice is a numpy
Generator seeded from the seed; the synth is driven at exact sample positions). 30 s takes 0.3-0.6 s
on one CPU core.

It does not follow a melody or continue audio (MusicGen does): those requests are noted and ignored.
"""

from __future__ import annotations

import io

from ..base import Backend, ToolContext
from .common import MusicRequest, MusicResult

BACKEND = Backend("composer", "symbolic composer rendered with a General MIDI SoundFont (offline, CPU, also MIDI)",
                  requires=("pretty_midi", "tinysoundfont"), extra="music")
# Ten minutes: as long as a bed is likely to run; it takes 7-16 s and under 1 GB of memory (the float32
# stereo buffers of the mix, the room and one part at a time).
MAX_SECONDS = 600.0


def compose(ctx: ToolContext, request: MusicRequest) -> MusicResult:
    # imported here: without the `music` extra the tool is still listed, and says what to install
    import pretty_midi

    from .symbolic.arrange import arrange
    from .symbolic.describe import describe
    from .symbolic.params import MIX, SENDS, STYLES
    from .symbolic.render import RATE, bake_mix, render

    if request.melody is not None:
        ctx.note("composer: following a melody needs MusicGen's melody model: the melody was ignored")
    if request.continuation is not None:
        ctx.note("composer: continuing audio needs MusicGen: the music starts afresh")
    font = None
    if request.model and str(request.model).lower().endswith((".sf2", ".sf3")):
        font = request.model  # a General MIDI SoundFont to play the score with
    elif request.model:
        ctx.note(f"composer: model '{request.model}' is for MusicGen or Stable Audio: ignored "
                 f"(the composer takes a .sf2/.sf3 SoundFont here)")
    seed = int(request.seed or 0) % 2**32
    params, info, notes = describe(request.description, seed)
    ctx.check_cancelled()
    piece = arrange(params, request.seconds, seed)
    ctx.check_cancelled()
    style = STYLES[params.style]
    ending = next((s for s in piece.sections if s["name"] == "ending"), None)
    hold = request.seconds - ending["start"] if ending else request.seconds
    samples, rendered = render(piece.midi, request.seconds, loop=params.loop, reverb=params.reverb,
                               rt60=style.reverb[1], mix={**MIX, **style.mix}, sends=SENDS,
                               short=("chords",) if style.staccato else (), lofi=style.lofi,
                               fade_out=min(2.0, max(0.05, 0.6 * hold)), seed=seed, font=font,
                               check=ctx.check_cancelled)
    bake_mix(piece.midi, rendered["mix_db"])
    if rendered.get("note"):
        notes.append("composer: " + rendered.pop("note"))
    buf = io.BytesIO()
    piece.midi.write(buf)
    settings = params.model_dump()
    settings.update(
        tempo_bpm=piece.tempo_bpm,  # a loop's tempo is fitted so whole bars fill it exactly
        instrument_names={role: pretty_midi.program_to_instrument_name(p)
                          for role, p in params.instruments.model_dump().items() if p is not None},
        drum_kit=style.kit if params.drums else None, seed=seed, bars=piece.bars, sections=piece.sections,
        notes=list(notes), **info, **rendered)
    for n in notes:
        ctx.note(n)
    return MusicResult(samples=samples, rate=RATE, midi=buf.getvalue(), settings=settings)
