"""Dubbing: lines from segments, fitting to slots, placement, the per-line cache, dub_lines.json.

Pure-function tests use tones; speak_lines runs the real embedded English voice (hibari)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cadenza.errors import InputError
from cadenza.llm.testing import ScriptedChatModel
from cadenza.tools.dub import dub_lines, load_dub_lines, speak_lines
from cadenza.tools.dub.fit import fit_to_slot, place, seconds
from cadenza.tools.dub.lines import group_lines
from cadenza.tools.dub.report import read_dub_lines, write_dub_lines
from cadenza.tools.speech.pcm import load_mono
from cadenza.tools.speech.segments import Segment, Word
from cadenza.tools.speech.translate import translation_llm
from speech_util import call

RATE = 24000


def timed(text: str, start: float, step: float = 0.3, pauses: dict[int, float] | None = None) -> Segment:
    """A segment whose words last `step` seconds each, with extra silence before word i of `pauses`."""
    words, t = [], start
    for i, w in enumerate(text.split()):
        t += (pauses or {}).get(i, 0.0)
        words.append(Word(start=t, end=t + step * 0.9, text=" " + w))
        t += step
    return Segment(start=start, end=words[-1].end, text=text, words=words)


def tone(secs: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(secs * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


# -- grouping ---------------------------------------------------------------------------------

def test_lines_end_at_sentence_ends_and_join_close_sentences():
    segs = [timed("Hello there. How are", 0.0), timed("you today? I am", 1.8), timed("fine.", 3.6),
            timed("Much later now.", 9.0)]
    lines = group_lines(segs)
    assert [ln.text for ln in lines] == ["Hello there. How are you today? I am fine.", "Much later now."]
    assert lines[0].start == 0.0 and lines[0].end == pytest.approx(3.6 + 0.27)
    assert lines[1].start == 9.0  # a pause over max_pause starts a new line
    apart = group_lines(segs, max_chars=20)
    assert [ln.text for ln in apart] == ["Hello there.", "How are you today?", "I am fine.", "Much later now."]


def test_a_long_sentence_splits_at_its_longest_pause_and_every_line_is_within_bounds():
    text = ("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
            "seventeen eighteen nineteen twenty.")
    seg = timed(text, 2.0, pauses={7: 0.2, 13: 0.8})  # the longest pause is before 'fourteen'
    lines = group_lines([seg], max_chars=120, max_seconds=5.0)
    assert lines[0].text.endswith("thirteen") and lines[1].text.startswith("fourteen")
    for ln in lines:
        assert len(ln.text) <= 120 and ln.end - ln.start <= 5.0
    out, _ = call(dub_lines, segments=[seg.model_dump()], max_chars=40, max_seconds=12)
    assert all(len(ln.text) <= 40 for ln in out["lines"]) and len(out["lines"]) >= 4
    assert " ".join(ln.text for ln in out["lines"]) == " ".join(text.split())


def test_without_word_times_a_long_sentence_splits_at_a_comma():
    seg = Segment(start=0, end=10, text="We walked along the harbour for a long while, and then the rain came down hard on us.")
    lines = group_lines([seg], max_chars=60)
    assert [ln.text for ln in lines] == ["We walked along the harbour for a long while,",
                                         "and then the rain came down hard on us."]
    assert lines[0].start == 0 and lines[1].end == pytest.approx(10) and lines[0].end <= lines[1].start


# -- fitting and placement (tones) -------------------------------------------------------------

def test_a_short_line_keeps_its_natural_speed():
    fit = fit_to_slot(tone(1.0), RATE, slot=2.0, gap=1.0)
    assert fit.action == "natural" and fit.speed == 1.0 and seconds(fit.samples, RATE) == pytest.approx(1.0, abs=0.01)
    fixed = fit_to_slot(tone(1.0), RATE, slot=2.0, gap=0, fixed_speed=0.6, min_speed=0.9)
    assert fixed.speed == 0.9 and fixed.warnings  # a set speed is never below min_speed


def test_a_line_uses_its_share_of_the_gap_then_speeds_up_but_never_beyond_the_maximum():
    gap = fit_to_slot(tone(2.4), RATE, slot=2.0, gap=1.0, share_of_gap=0.5)
    assert gap.action == "gap" and gap.speed == 1.0
    fast = fit_to_slot(tone(2.8), RATE, slot=2.0, gap=0.4, share_of_gap=0.5)
    assert fast.action == "speedup" and 1.0 < fast.speed <= 1.3 and not fast.warnings
    assert seconds(fast.samples, RATE) <= 2.2 + 1 / RATE
    assert fast.speed == pytest.approx(2.8 / 2.2, abs=0.02)


def test_an_impossible_line_is_sped_up_to_the_maximum_then_trimmed_with_a_fade_and_a_warning():
    fit = fit_to_slot(tone(5.0), RATE, slot=2.0, gap=0.0, max_speedup=1.3)
    assert fit.action == "trim" and fit.speed == 1.3
    assert seconds(fit.samples, RATE) == pytest.approx(2.0, abs=1 / RATE)
    assert "cut off the end" in fit.warnings[0]
    assert abs(fit.samples[-1]) < 1e-3 and np.abs(fit.samples[-int(0.05 * RATE):]).max() <= 0.5
    held = fit_to_slot(tone(5.0), RATE, slot=2.0, gap=0.0, allow_trim=False)
    assert held.action == "too_long"


def test_every_line_is_placed_at_its_absolute_start_sample():
    starts = [i * 0.1 + 1 / 3 + i * 1e-5 for i in range(300)]  # no error may accumulate over many lines
    clicks = [(s, np.ones(10, np.float32)) for s in starts]
    track = place(clicks, RATE, length_s=40.0)
    assert len(track) == 40 * RATE
    onsets = np.flatnonzero(np.diff(np.concatenate([[0], track])) > 0.5)
    assert list(onsets) == [int(round(s * RATE)) for s in starts]


# -- speak_lines (hibari) --------------------------------------------------------------------

LINES = [{"start": 0.5, "end": 2.5, "text": "Good morning."},
         {"start": 3.0, "end": 3.6, "text": "The lighthouse keeper climbed all the stairs again tonight."},
         {"start": 5.0, "end": 7.5, "text": "It was late."}]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CADENZA_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def onset_ok(track: np.ndarray, start: float, prev_end: int) -> bool:
    """Silence right up to the line's start sample, sound within 60 ms after it."""
    a = int(round(start * RATE))
    return not track[prev_end:a].any() and np.abs(track[a:a + int(0.06 * RATE)]).max() > 0.002


def test_speak_lines_fits_places_and_reports_each_line(cache):
    out, notes = call(speak_lines, backend="hibari", lines=LINES, language="en", duration=8.0, shorten=False,
                      source_lines=[{**ln, "text": f"src {i}"} for i, ln in enumerate(LINES)])
    rep = out["lines"]
    assert out["synthesized"] == [0, 1, 2] and out["cached"] == []
    assert "3 of 3 lines synthesized (lines 0, 1, 2), 0 from the line cache" in notes[0]
    assert rep[0].action == "natural" and rep[0].speed_factor == 1.0 and rep[0].source_text == "src 0"
    assert rep[1].action == "trim" and rep[1].speed_factor == 1.3
    assert "not shortened: shortening is turned off" in rep[1].warnings
    assert rep[1].fitted_seconds <= 0.6 + 0.5 * 1.4 + 1e-3
    track = load_mono(out["speech"].path, RATE)
    assert len(track) == 8 * RATE
    prev = 0
    for ln, r in zip(LINES, rep):
        assert onset_ok(track, ln["start"], prev)
        prev = int(round(ln["start"] * RATE)) + int(round(r.fitted_seconds * RATE))


def test_editing_one_line_synthesizes_that_line_alone(cache, tmp_path):
    first, _ = call(speak_lines, lines=LINES, language="en", shorten=False)
    again, notes = call(speak_lines, lines=LINES, language="en", shorten=False)
    assert again["synthesized"] == [] and again["cached"] == [0, 1, 2]
    assert "0 of 3 lines synthesized, 3 from the line cache" in notes[0]
    assert np.array_equal(load_mono(again["speech"].path), load_mono(first["speech"].path))
    # the round trip through dub_lines.json: the user edits line 2's text and sets line 0's speed
    source = [Segment(**ln) for ln in LINES]
    path = write_dub_lines(tmp_path / "dub_lines.json", first["lines"], "en")
    data = json.loads(path.read_text())
    assert data["lines"][1]["action"] == "trim" and data["lines"][1]["warnings"]
    assert set(data["lines"][0]) >= {"source_text", "translation", "start", "end", "synthesized_seconds",
                                     "speed_factor", "action", "warnings", "voice", "speed"}
    data["lines"][2]["translation"] = "It was very late."
    data["lines"][0]["speed"] = 1.1
    path.write_text(json.dumps(data))
    edited = read_dub_lines(path, source)
    assert [s.text for s in edited.lines] == ["Good morning.", LINES[1]["text"], "It was very late."]
    assert edited.speeds == [1.1, 0.0, 0.0] and edited.voices == [None, None, None]
    out, _ = call(speak_lines, lines=[s.model_dump() for s in edited.lines], language="en", shorten=False,
                  speeds=edited.speeds, voices=edited.voices)
    assert out["synthesized"] == [2] and out["cached"] == [0, 1]  # line 0 is refitted from its cached speech
    assert out["lines"][0].action == "fixed" and out["lines"][0].speed_factor == 1.1


def test_a_too_long_line_asks_for_a_shorter_rendering_at_most_twice(cache):
    long = [{"start": 0.0, "end": 1.0, "text": "The lighthouse keeper climbed all of the stairs once again tonight."}]
    with ScriptedChatModel(['{"text": "The keeper climbed."}']) as llm, translation_llm(llm):
        out, _ = call(speak_lines, lines=long, language="en")
    r = out["lines"][0]
    assert r.action == "shorten" and r.spoken_text == "The keeper climbed." and r.fitted_seconds <= 1.0 + 1e-3
    assert "at most" in llm.calls[0][0].content
    still = '{"text": "The lighthouse keeper climbed the stairs again tonight."}'
    with ScriptedChatModel([still, '{"text": "The lighthouse keeper climbed stairs again tonight."}']) as llm, \
            translation_llm(llm):
        out, _ = call(speak_lines, lines=[{**long[0], "end": 0.5}], language="en")
    r = out["lines"][0]
    assert len(llm.calls) == 2 and r.action == "trim" and any("cut off" in w for w in r.warnings)


# -- dub_lines.json --------------------------------------------------------------------------

def test_an_edited_file_that_does_not_match_the_source_is_one_line_input_error(tmp_path):
    source = [Segment(start=0, end=1, text="a"), Segment(start=2, end=3, text="b")]
    lines = [{"index": i, "start": s.start, "end": s.end, "translation": s.text.upper()} for i, s in enumerate(source)]
    path = tmp_path / "dub_lines.json"
    path.write_text(json.dumps({"lines": lines[:1]}))
    with pytest.raises(InputError, match="has 1 lines but the source has 2"):
        read_dub_lines(path, source)
    lines[1]["start"] = 2.02
    path.write_text(json.dumps({"lines": lines}))
    with pytest.raises(InputError, match=r"line 1 starts at 2.02s but the source line starts at 2.000s") as e:
        read_dub_lines(path, source)
    assert "\n" not in str(e.value)
    lines[1]["source_text"] = "b"  # the same words in a slot that moved (an older run's timing): the same line
    assert read_dub_lines(_write(path, lines), source).lines[1].start == 2.0
    lines[1]["source_text"] = "c"  # other words: another video
    with pytest.raises(InputError, match=r"line 1 starts at 2.02s"):
        read_dub_lines(_write(path, lines), source)
    lines[1]["start"], lines[1]["source_text"] = 3.5, "b"  # no overlap with the slot: not the same line
    with pytest.raises(InputError, match=r"line 1 starts at 3.5s"):
        read_dub_lines(_write(path, lines), source)
    del lines[1]["source_text"]
    lines[1]["start"] = 2.005  # within 10 ms: the same slot
    lines[1]["speed"] = 9
    path.write_text(json.dumps({"lines": lines}))
    with pytest.raises(InputError, match="line 1: \"speed\" must be a number from 0.5 to 2"):
        read_dub_lines(path, source)
    path.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_dub_lines(path, source)
    del lines[1]["speed"]
    path.write_text(json.dumps({"lines": lines}))
    out, _ = call(load_dub_lines, file=str(path), source_lines=[s.model_dump() for s in source])
    assert [s.text for s in out["lines"]] == ["A", "B"] and out["lines"][1].start == 2.0


# -- a clip with no speech, and the report file ------------------------------------------------

def test_no_lines_give_a_silent_track_a_note_and_an_empty_report(cache):
    out, notes = call(speak_lines, lines=[], language="es", duration=2.5)
    track = load_mono(out["speech"].path, RATE)
    assert len(track) == int(2.5 * RATE) and not track.any()
    assert any("no line has text to speak" in n for n in notes)
    assert out["lines"] == [] and out["segments"] == []
    report = json.loads(out["report"].path.read_text(encoding="utf-8"))
    assert report["language"] == "es" and report["lines"] == []


def test_the_report_file_is_the_lines_as_dub_lines_json(cache):
    out, _ = call(speak_lines, backend="hibari", lines=LINES[:1], language="en", shorten=False)
    report = json.loads(out["report"].path.read_text(encoding="utf-8"))
    assert out["report"].kind == "data" and report["format"] == "cadenza-dub-lines/1"
    assert [ln["translation"] for ln in report["lines"]] == [LINES[0]["text"]]
    assert report["lines"][0]["fitted_seconds"] == out["lines"][0].fitted_seconds


def test_translating_no_segments_is_an_empty_translation_not_an_error():
    from cadenza.tools.speech.translate import translate

    with ScriptedChatModel([]) as llm, translation_llm(llm):
        out, notes = call(translate, segments=[], target_language="es")
    assert out["segments"] == [] and out["text"] == "" and not llm.calls
    assert any("no segments to translate" in n for n in notes)


def test_subtitles_of_no_segments_are_valid_empty_files():
    from cadenza.tools.speech.subtitles import make_subtitles

    srt, _ = call(make_subtitles, segments=[], format="srt")
    vtt, _ = call(make_subtitles, segments=[], format="vtt")
    assert srt["result"].path.read_text() == "" and vtt["result"].path.read_text().startswith("WEBVTT")


# -- dub_mix: the new speech over the original sound --------------------------------------------

@pytest.mark.parametrize("background", ["duck", "keep", "drop"])
def test_dub_mix_ducks_keeps_or_drops_the_original(tmp_path, background):
    import media_factory as mf
    from cadenza.tools.dub import dub_mix

    rate = 16000
    original = mf.tone(tmp_path / "music.wav", freq=220, seconds=4.0, rate=rate, amp=0.2)
    t = np.arange(rate) / rate
    voice = np.zeros(3 * rate)
    voice[rate:2 * rate] = 0.3 * np.sin(2 * np.pi * 1000 * t)  # the new voice speaks from 1 s to 2 s
    speech = mf.write_audio(tmp_path / "speech.wav", voice, rate)
    out, _ = call(dub_mix, original=str(original), speech=str(speech), background=background)
    x, got_rate = mf.decode(out["result"])
    x = x.mean(axis=1) if x.ndim == 2 else x
    assert got_rate == rate and abs(len(x) / rate - 4.0) < 0.01  # the original's length: it fits the picture
    under = mf.amplitude_at(x, rate, 220, 1.3, 1.7)  # the original while the voice speaks
    alone = mf.amplitude_at(x, rate, 220, 2.8, 3.8)  # the original after the voice (past the release)
    assert mf.amplitude_at(x, rate, 1000, 1.3, 1.7) > 0.1  # the new voice is always there
    if background == "duck":
        assert mf.db(under / alone) == pytest.approx(-15, abs=1.5)
    elif background == "keep":
        assert mf.db(under / alone) == pytest.approx(0, abs=0.5)
    else:
        assert under < 1e-3 and alone < 1e-3


def test_dub_mix_keeps_the_original_down_over_a_whole_line(tmp_path):
    """A dubbed line shorter than its slot: the original stays ducked to the slot's end, so its speech
    does not come back between the dubbed words."""
    import media_factory as mf
    from cadenza.tools.dub import dub_mix

    rate = 16000
    original = mf.tone(tmp_path / "talk.wav", freq=220, seconds=5.0, rate=rate, amp=0.2)
    voice = np.zeros(5 * rate)
    voice[rate:int(1.5 * rate)] = 0.3 * np.sin(2 * np.pi * 1000 * np.arange(int(0.5 * rate)) / rate)
    speech = mf.write_audio(tmp_path / "speech.wav", voice, rate)
    slot = [{"start": 1.0, "end": 3.0, "text": "Hola."}]
    held, _ = call(dub_mix, original=str(original), speech=str(speech), slots=slot)
    free, _ = call(dub_mix, original=str(original), speech=str(speech))
    x, _ = mf.decode(held["result"])
    y, _ = mf.decode(free["result"])
    late = lambda a: mf.amplitude_at(a, rate, 220, 2.3, 2.9)  # noqa: E731  (after the voice, inside the slot)
    after = lambda a: mf.amplitude_at(a, rate, 220, 3.6, 4.6)  # noqa: E731
    assert mf.db(late(x) / after(x)) == pytest.approx(-15, abs=1.5)
    assert mf.db(late(y) / after(y)) == pytest.approx(0, abs=1.0)


def _write(path, lines):
    path.write_text(json.dumps({"lines": lines}))
    return path
