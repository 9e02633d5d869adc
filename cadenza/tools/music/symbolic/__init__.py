"""The symbolic composer behind compose_music's offline backend (cadenza/tools/music/composer.py):

    params.py    MusicParams, the style, mood and instrument tables
    describe.py  description -> MusicParams (rules, or the configured LLM with structured output)
    harmony.py   scales, diatonic chords, voice leading
    patterns.py  comping, bass, drum and melody rhythms per style
    parts.py     one bar of each accompanying part
    melody.py    phrases from motifs over the chords
    arrange.py   MusicParams + seconds + seed -> pretty_midi.PrettyMIDI (form, timing, dynamics)
    render.py    PrettyMIDI -> stereo float32 through a General MIDI SoundFont (tinysoundfont)
"""
