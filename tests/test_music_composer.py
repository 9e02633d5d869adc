"""The offline symbolic composer (compose_music's 'composer' backend), end to end with the real
renderer: pretty_midi's General MIDI SoundFont through tinysoundfont. No mocks; every render is short."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pretty_midi")
pytest.importorskip("tinysoundfont")

import pretty_midi  # noqa: E402

from cadenza.errors import CancelledError  # noqa: E402
from cadenza.llm.testing import ScriptedChatModel  # noqa: E402
from cadenza.tools.base import ToolContext  # noqa: E402
from cadenza.tools.music import composer  # noqa: E402
from cadenza.tools.music.common import MusicRequest  # noqa: E402
from cadenza.tools.music.symbolic.describe import composer_llm, configured_llm, parse_rules  # noqa: E402
from cadenza.workspace import Workspace  # noqa: E402
from media_factory import loudness  # noqa: E402

RATE = 44100


@pytest.fixture(autouse=True)
def no_configured_llm(monkeypatch, tmp_path):
    """The default offline call: no LLM chosen anywhere, so the rules read the description."""
    for var in ("CADENZA_LLM", "CADENZA_MUSIC_LLM", "CADENZA_SOUNDFONT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CADENZA_CONFIG", str(tmp_path / "no-config.toml"))


def make(description: str, seconds: float = 10.0, seed: int | None = 0, **kw):
    """(result, notes) of one composer call."""
    ctx = ToolContext(workspace=Workspace.for_run(".", {}), step_id="compose", backend="composer")
    result = composer.compose(ctx, MusicRequest(description=description, seconds=seconds, seed=seed, **kw))
    return result, ctx.notes


def midi_of(result) -> pretty_midi.PrettyMIDI:
    return pretty_midi.PrettyMIDI(io.BytesIO(result.midi))


def band_spectrum(x: np.ndarray, rate: int = RATE) -> np.ndarray:
    """Mean log power in 24 log-spaced bands, 60 Hz to 12 kHz, relative to the total."""
    mono = x.mean(axis=1)
    frames = mono[: len(mono) // 4096 * 4096].reshape(-1, 4096) * np.hanning(4096)
    power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(axis=0)
    freqs = np.fft.rfftfreq(4096, 1 / rate)
    edges = np.geomspace(60, 12000, 25)
    bands = np.array([power[(freqs >= a) & (freqs < b)].sum() for a, b in zip(edges, edges[1:])])
    return 10 * np.log10(bands / bands.sum() + 1e-12)


def test_thirty_seconds_of_calm_piano_fast_exact_stereo_and_loud_enough(workdir):
    make("warm up", 1.0)  # imports and the SoundFont read once, as in a running tool
    t = time.perf_counter()
    result, notes = make("calm piano", 30.0)
    took = time.perf_counter() - t
    x = result.samples
    assert took < 3.0, f"30 s took {took:.2f} s"
    assert x.dtype == np.float32 and x.shape == (30 * RATE, 2) and result.rate == RATE
    assert np.abs(x).max() <= 10 ** (-1 / 20) + 1e-6  # peaks under -1 dBFS
    assert -17.5 < loudness(x.astype(np.float64), RATE) < -15.0
    assert np.sqrt(np.mean(x[: 5 * RATE] ** 2)) > 1e-3  # sound from the start (the intro), not a silent lead-in
    s = result.settings
    assert s["style"] == "piano" and s["mood"] == "calm" and s["parsed_by"] == "rules" and not s["drums"]
    assert [sec["name"] for sec in s["sections"]][0] == "intro" and s["sections"][-1]["name"] == "ending"
    json.dumps(s)  # the settings go into run.json as they are
    pm = midi_of(result)
    assert {i.name for i in pm.instruments} >= {"chords", "melody"} and all(not i.is_drum for i in pm.instruments)
    assert abs(pm.get_end_time() - 30.0) < 0.6  # the final chord rings to the end
    assert notes == []


def test_a_minute_has_a_form_whose_theme_comes_back(workdir):
    result, _ = make("upbeat pop", 60.0, seed=1)
    sections = result.settings["sections"]
    names = [sec["name"] for sec in sections]
    assert names[:3] == ["intro", "A", "B"] and "A2" in names and names[-1] == "ending"
    pm = midi_of(result)
    tune = next(i for i in pm.instruments if i.name == "melody").notes
    drums = next(i for i in pm.instruments if i.is_drum).notes

    def part(notes, name):
        sec = next(sec for sec in sections if sec["name"] == name)
        return [n for n in notes if sec["start"] - 0.05 <= n.start < sec["end"] - 0.05], sec

    (a, sec_a), (a2, sec_a2) = part(tune, "A"), part(tune, "A2")
    assert not part(tune, "intro")[0] and len(a) > 8  # the tune enters after the intro
    assert [n.pitch for n in a] == [n.pitch for n in a2]  # the theme returns
    offsets = np.array([n.start - sec_a["start"] for n in a]) - [n.start - sec_a2["start"] for n in a2]
    assert np.abs(offsets).max() < 0.04  # the same rhythm, give or take a player's timing
    (hits_a, sec_a), (hits_b, sec_b) = part(drums, "A"), part(drums, "B")
    assert len(hits_b) / sec_b["bars"] > len(hits_a) / sec_a["bars"]  # B grooves harder


def test_same_description_duration_and_seed_are_bit_identical(workdir):
    a, _ = make("upbeat jazz trio", 8.0, seed=7)
    b, _ = make("upbeat jazz trio", 8.0, seed=7)
    c, _ = make("upbeat jazz trio", 8.0, seed=8)
    assert np.array_equal(a.samples, b.samples) and a.midi == b.midi
    assert not np.array_equal(a.samples, c.samples)
    assert a.settings["seed"] == 7


FIVE = ["calm ambient pad", "upbeat jazz trio", "sad cinematic strings", "energetic electronic dance",
        "lo-fi hip hop beat"]


def test_five_descriptions_five_different_pieces(workdir):
    results = {d: make(d, 12.0)[0] for d in FIVE}
    settings = {d: r.settings for d, r in results.items()}
    assert [s["style"] for s in settings.values()] == ["ambient", "jazz", "cinematic", "electronic", "lofi"]
    assert len({s["tempo_bpm"] for s in settings.values()}) == 5
    assert len({(s["key"], s["mode"]) for s in settings.values()}) >= 4
    assert len({json.dumps(s["instruments"], sort_keys=True) for s in settings.values()}) == 5
    tempo = {d: s["tempo_bpm"] for d, s in settings.items()}
    assert tempo["calm ambient pad"] < 90 < tempo["energetic electronic dance"]
    assert tempo["sad cinematic strings"] < tempo["upbeat jazz trio"]
    spectra = {d: band_spectrum(r.samples) for d, r in results.items()}
    for i, a in enumerate(FIVE):
        for b in FIVE[i + 1:]:
            gap = float(np.mean(np.abs(spectra[a] - spectra[b])))
            assert gap > 1.5, f"{a!r} and {b!r} sound alike (mean band difference {gap:.2f} dB)"


@pytest.mark.parametrize("description,drums", [
    ("calm ambient pad", False), ("sad cinematic strings", False), ("gentle orchestral", False), ("calm piano", False),
    ("upbeat jazz trio", True), ("energetic electronic dance", True), ("lo-fi hip hop beat", True),
    ("upbeat rock", True), ("ambient with soft drums", True), ("upbeat pop without drums", False)])
def test_drums_only_where_the_style_has_them(workdir, description, drums):
    result, _ = make(description, 6.0)
    pm = midi_of(result)
    hits = sum(len(i.notes) for i in pm.instruments if i.is_drum)
    assert result.settings["drums"] is drums
    assert (hits > 0) is drums, f"{description!r}: {hits} drum hits"


def test_loop_flows_from_its_end_into_its_start(workdir):
    result, _ = make("calm piano loop", 20.0, seed=3)
    x = result.samples
    assert x.shape == (20 * RATE, 2)
    s = result.settings
    assert s["loop"] and [sec["name"] for sec in s["sections"]] in (["A"], ["A", "B"])
    # the tempo was fitted so whole bars fill the loop exactly
    assert s["bars"] * 4 * 60 / s["tempo_bpm"] == pytest.approx(20.0, abs=1e-6)
    pm = midi_of(result)
    starts = [n.start for i in pm.instruments for n in i.notes]
    assert min(starts) < 0.05 and max(n.end for i in pm.instruments for n in i.notes) > 19.5  # no intro, no ending
    # the seam: the step from the last sample to the first is an ordinary step, and neither side fades out
    steps = np.abs(np.diff(x, axis=0)).max(axis=1)
    assert np.abs(x[0] - x[-1]).max() <= np.percentile(steps, 99.9)
    k = int(0.05 * RATE)
    whole = np.sqrt(np.mean(x ** 2))
    assert np.sqrt(np.mean(x[-k:] ** 2)) > whole / 10 and np.sqrt(np.mean(x[:k] ** 2)) > whole / 10
    # played twice in a row, the join is as smooth as the music around it
    twice = np.concatenate([x[-RATE:], x[:RATE]])
    assert np.abs(np.diff(twice, axis=0)).max() <= np.abs(np.diff(x, axis=0)).max() + 1e-6


def test_a_loop_sounds_like_one_period_of_it_playing_for_ever(workdir):
    """The loop equals the middle of three periods rendered one after the other: whatever rings past its end
    (releases, the room) is already at its start."""
    import copy

    from cadenza.tools.music.symbolic.arrange import arrange
    from cadenza.tools.music.symbolic.describe import describe
    from cadenza.tools.music.symbolic.params import MIX, SENDS, STYLES
    from cadenza.tools.music.symbolic.render import render

    seconds = 8.0
    params, _, _ = describe("calm piano loop", 0)
    piece, style = arrange(params, seconds, 0), STYLES[params.style]
    kw = dict(reverb=params.reverb, rt60=style.reverb[1], mix={**MIX, **style.mix}, sends=SENDS)
    loop, _ = render(piece.midi, seconds, loop=True, **kw)
    thrice = copy.deepcopy(piece.midi)
    for inst in thrice.instruments:
        inst.notes += [pretty_midi.Note(n.velocity, n.pitch, n.start + k * seconds, n.end + k * seconds)
                       for k in (1, 2) for n in inst.notes]
    straight, _ = render(thrice, 3 * seconds, loop=False, fade_out=0, **kw)
    middle = straight[len(loop):2 * len(loop)]
    gain = np.sum(middle * loop) / np.sum(middle * middle)  # each render is normalised on its own
    assert np.sqrt(np.mean((gain * middle - loop) ** 2)) < 0.01 * np.sqrt(np.mean(loop ** 2))


def test_a_soundfont_given_as_the_model_plays_the_score(workdir, tmp_path):
    import shutil

    font = tmp_path / "MyGM.sf2"
    shutil.copy(Path(pretty_midi.__file__).parent / "TimGM6mb.sf2", font)
    result, notes = make("calm piano", 2.0, model=str(font))
    assert result.settings["soundfont"] == "MyGM.sf2" and notes == []
    result, notes = make("calm piano", 2.0, model="facebook/musicgen-small")
    assert result.settings["soundfont"] == "TimGM6mb.sf2" and "ignored" in notes[0]


def test_no_known_style_plays_a_default_with_a_note(workdir):
    result, notes = make("something for the end of a long day", 4.0)
    s = result.settings
    assert s["style"] in ("piano", "ambient", "pop", "cinematic") and s["style_from"] == "default"
    assert any("no style" in n for n in notes) and s["notes"] == notes
    assert np.abs(result.samples).max() > 0.1


def test_explicit_key_and_tempo_are_respected(workdir):
    result, _ = make("orchestral in D minor at 90 bpm", 8.0)
    s = result.settings
    assert (s["key"], s["mode"], s["tempo_bpm"]) == ("D", "minor", 90.0)
    pm = midi_of(result)
    assert pm.key_signature_changes[0].key_number == 2 + 12  # D minor
    assert pm.get_tempo_changes()[1][0] == pytest.approx(90.0, abs=0.01)
    # the harmony is in D minor: most notes are D natural minor (or its raised leading tone C#)
    pcs = np.array([n.pitch % 12 for i in pm.instruments if not i.is_drum for n in i.notes])
    assert np.isin(pcs, [2, 4, 5, 7, 9, 10, 0, 1]).mean() > 0.97


@pytest.mark.parametrize("text,expected", [
    ("calm piano", dict(style=None, mood="calm", instruments=["piano"])),
    ("upbeat jazz trio", dict(style="jazz", mood="upbeat", trio=True)),
    ("lo-fi hip hop beat", dict(style="lofi", drums=True)),
    ("sad cinematic strings, no drums", dict(style="cinematic", mood="sad", drums=False, instruments=["strings"])),
    ("energetic electronic dance at 124 bpm", dict(style="electronic", mood="upbeat", tempo_bpm=124.0)),
    ("tense music in F# minor", dict(mood="tense", key="F#", mode="minor")),
    ("a folk song in the key of Bb", dict(style="folk", key="Bb", mode=None)),
    ("slow piano in a minor key", dict(key=None, mode="minor")),
    ("Am ambient drone", dict(style="ambient", key="A", mode="minor")),
    ("epic orchestral loop with horns", dict(style="orchestral", mood="epic", loop=True, instruments=["horns"])),
    ("relaxed acoustic guitar and flute", dict(style="folk", mood="calm", instruments=["acoustic guitar", "flute"])),
    ("very fast rock without melody", dict(style="rock", melody=False)),
])
def test_rules_read_the_description(text, expected):
    choice = parse_rules(text)
    for field, value in expected.items():
        assert getattr(choice, field) == value, (text, field, getattr(choice, field))
    if "slow" in text:
        assert choice.tempo_shift < 0
    if "fast" in text:
        assert choice.tempo_shift > 0


def test_an_llm_is_asked_only_when_one_was_chosen(monkeypatch, tmp_path):
    assert configured_llm() is None  # nothing configured: the rules, and no model is loaded
    monkeypatch.setenv("CADENZA_LLM", "ollama:qwen2.5")
    assert configured_llm() == "ollama:qwen2.5"
    monkeypatch.setenv("CADENZA_LLM", "local")  # the planner's embedded model: not for a few words of music
    assert configured_llm() is None
    monkeypatch.setenv("CADENZA_MUSIC_LLM", "local-small")  # unless asked for by name
    assert configured_llm() == "local-small"
    monkeypatch.setenv("CADENZA_MUSIC_LLM", "rules")
    assert configured_llm() is None
    monkeypatch.delenv("CADENZA_MUSIC_LLM")
    monkeypatch.delenv("CADENZA_LLM")
    config = tmp_path / "config.toml"
    config.write_text('llm = "openai:gpt-4o-mini"\nmusic_llm = "off"\n')
    monkeypatch.setenv("CADENZA_CONFIG", str(config))
    assert configured_llm() is None
    with composer_llm("local-small"):
        assert configured_llm() == "local-small"


GOOD = {"style": "jazz", "mood": "sad", "energy": 0.3, "tempo_shift": -0.5, "instruments": ["saxophone"], "drums": True,
        "melody": None}


def test_the_configured_llm_chooses_the_parameters(workdir):
    def answer(messages):
        assert "rainy night" in messages[-1].content and "lofi" in messages[0].content
        return json.dumps(GOOD)

    with ScriptedChatModel([answer]) as llm, composer_llm(llm):
        result, notes = make("a rainy night in a smoky bar at 70 bpm, loop", 6.0)
    s = result.settings
    assert s["parsed_by"] == "llm" and notes == []
    assert (s["style"], s["mood"], s["instruments"]["melody"], s["drums"]) == ("jazz", "sad", 65, True)
    assert s["loop"] and s["bars"] * 240 / s["tempo_bpm"] == pytest.approx(6.0)  # 'loop' read by the rules
    assert abs(s["tempo_bpm"] - 70) / 70 < 0.2  # the stated tempo, fitted to whole bars
    assert set(s["llm_decided"]) == {"style", "mood", "instruments", "tempo_shift", "drums", "energy"}


def test_the_descriptions_own_words_win_over_the_llm(workdir):
    with ScriptedChatModel([{**GOOD, "style": "ambient", "energy": 1.0}]) as llm, composer_llm(llm):
        result, _ = make("upbeat rock in E major", 4.0)
    s = result.settings
    assert (s["style"], s["mood"], s["key"], s["mode"]) == ("rock", "upbeat", "E", "major")
    assert s["instruments"]["melody"] == 65 and s["drums"]  # what the words left open: the LLM's saxophone
    assert s["llm_decided"] == ["instruments", "tempo_shift", "drums", "energy"]


@pytest.mark.parametrize("reply", ["I would suggest some gentle jazz.", {**GOOD, "style": "polka"},
                                   {**GOOD, "energy": 7}, {**GOOD, "instruments": ["theremin"]}])
def test_an_unusable_llm_answer_falls_back_to_the_rules(workdir, reply):
    with ScriptedChatModel([reply]) as llm, composer_llm(llm):
        result, notes = make("upbeat electronic", 3.0)
    assert result.settings["parsed_by"] == "rules" and result.settings["style"] == "electronic"
    assert any("LLM" in n and "rules" in n for n in notes)


def test_melody_and_continuation_are_noted_and_ignored(workdir):
    hum = np.zeros(RATE, np.float32)
    result, notes = make("calm piano", 2.0, melody=hum, melody_rate=RATE, continuation=np.zeros((RATE, 2), np.float32),
                         continuation_rate=RATE)
    assert result.samples.shape == (2 * RATE, 2)
    assert any("melody" in n for n in notes) and any("continu" in n for n in notes)


@pytest.mark.parametrize("seconds,loop", [(0.3, False), (1.0, False), (2.5, False), (0.3, True), (1.7, True),
                                          (7.77, True)])
def test_any_length_exactly(workdir, seconds, loop):
    result, _ = make("upbeat pop" + (" loop" if loop else ""), seconds)
    assert result.samples.shape == (round(seconds * RATE), 2)
    assert np.isfinite(result.samples).all() and np.abs(result.samples).max() > 0.01


def test_cancelled_stops(workdir):
    ctx = ToolContext(workspace=Workspace.for_run(".", {}), step_id="compose", backend="composer")
    ctx.cancelled.set()
    with pytest.raises(CancelledError):
        composer.compose(ctx, MusicRequest(description="calm piano", seconds=30.0, seed=0))


def test_through_the_tool(workdir):
    from speech_util import call

    from cadenza.tools.music import compose_music

    out, notes = call(compose_music, backend="composer", description="acoustic folk", duration=5.0, seed=2)
    assert out["audio"].duration == pytest.approx(5.0, abs=0.01) and out["audio"].channels == 2
    assert out["midi"] is not None and out["settings"]["style"] == "folk"


@pytest.mark.slow
def test_two_minutes_in_a_few_seconds(workdir):
    make("warm up", 1.0)
    t = time.perf_counter()
    result, _ = make("epic orchestral", 120.0)
    assert time.perf_counter() - t < 6.0 and result.samples.shape == (120 * RATE, 2)
    sections = result.settings["sections"]
    assert {sec["name"][0] for sec in sections} >= {"i", "A", "B", "e"}
    rest = next(sec for sec in sections if sec.get("breakdown"))  # a long piece breathes
    tune = next(i for i in midi_of(result).instruments if i.name == "melody").notes
    assert not [n for n in tune if rest["start"] <= n.start < rest["end"] - 0.05]
