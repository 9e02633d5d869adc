"""Dubbing lines snapped to the source's sound (onsets.py): on synthetic tracks whose voice onsets are
known, with Whisper-like word times stamped early and late; and the fallback under background sound."""

from __future__ import annotations

import numpy as np
import pytest

from cadenza.tools.dub import dub_lines
from cadenza.tools.dub.onsets import RATE, envelope, snap_lines
from cadenza.tools.speech.segments import Segment, Word
from speech_util import call

# (true onset, true end) of each utterance, and Whisper's (start, first word end, last word start, end)
TRUE = [(0.65, 2.05), (3.40, 4.60), (6.10, 7.50)]
WHISPER = [(0.00, 0.95, 1.70, 2.05), (2.95, 3.70, 4.20, 5.40), (6.30, 6.70, 7.10, 7.60)]


def utterance(seconds: float, rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    """Speech-like sound: a soft fricative (filtered noise, 25 dB under the vowels) for 60 ms, then
    voiced syllables (a 120 Hz harmonic series, 4 syllables a second, short dips between them)."""
    n, fric = int(seconds * rate), int(0.06 * rate)
    t = np.arange(n) / rate
    voiced = sum(np.sin(2 * np.pi * 120 * h * t) / h for h in range(1, 12))
    syll = 0.55 + 0.45 * np.abs(np.sin(2 * np.pi * 2.0 * t))  # 4 loudness peaks a second, never silent
    x = 0.25 * voiced * syll
    x[:fric] = 0.0
    noise = rng.standard_normal(fric)
    noise = np.convolve(noise, [1, -1], "same")  # brighter, as an 's'
    x[:fric] = noise / np.sqrt(np.mean(noise ** 2)) * np.sqrt(np.mean(x[fric:] ** 2)) * 10 ** (-25 / 20)
    ramp = int(0.01 * rate)
    x[-ramp:] *= np.linspace(1, 0, ramp)
    return x.astype(np.float32)


def track(background_db: float | None = None, seconds: float = 8.5, seed: int = 1) -> np.ndarray:
    """The utterances of TRUE on silence, or over `background_db` (dB under the voice) of a music-like
    bed: chords with a beat, on the whole track."""
    rng = np.random.default_rng(seed)
    x = np.zeros(int(seconds * RATE), np.float32)
    for a, b in TRUE:
        u = utterance(b - a, rng)
        x[int(a * RATE):int(a * RATE) + len(u)] += u
    if background_db is not None:
        t = np.arange(len(x)) / RATE
        bed = sum(np.sin(2 * np.pi * f * t) for f in (196.0, 246.9, 293.7, 392.0))
        bed *= 0.6 + 0.4 * (np.sin(2 * np.pi * 2 * t) > 0)  # a beat
        voice_rms = np.sqrt(np.mean(utterance(1.0, rng)[2000:] ** 2))
        x += (bed / np.sqrt(np.mean(bed ** 2)) * voice_rms * 10 ** (-background_db / 20)).astype(np.float32)
    return x


def whisper_lines() -> list[Segment]:
    """Lines as dub_lines groups them, with Whisper's times: first early by 0.65 s, second early by
    0.45 s and its end 0.8 s past the voice, third 0.2 s late."""
    out = []
    for i, (s, fe, ls, e) in enumerate(WHISPER):
        words = [Word(start=s, end=fe, text=f"first{i}"), Word(start=fe + 0.05, end=ls - 0.05, text="middle"),
                 Word(start=ls, end=e, text=f"last{i}.")]
        out.append(Segment(start=s, end=e, text=" ".join(w.text for w in words), words=words))
    return out


def test_starts_snap_to_the_voice_onset_within_30_ms():
    snapped = snap_lines(whisper_lines(), track())
    for ln, (a, _) in zip(snapped.lines, TRUE):
        assert abs(ln.start - a) <= 0.03, (ln.start, a)
        assert ln.words[0].start == ln.start and ln.words[0].end >= ln.start
    assert all(d is not None for d in snapped.start_shifts)
    # lines stay ordered and apart
    for prev, nxt in zip(snapped.lines, snapped.lines[1:]):
        assert prev.start < prev.end <= nxt.start < nxt.end


def test_an_end_clearly_past_the_voice_is_pulled_in_and_a_close_one_is_kept():
    snapped = snap_lines(whisper_lines(), track())
    # line 1: Whisper ends 0.8 s after the voice: pulled in to just after it (never before it)
    assert TRUE[1][1] <= snapped.lines[1].end <= TRUE[1][1] + 0.1, snapped.lines[1].end
    assert snapped.lines[1].words[-1].end == snapped.lines[1].end
    # lines 0 and 2: Whisper's end is at the voice's end or 0.1 s past it: kept
    assert snapped.end_shifts[0] is None and snapped.lines[0].end == WHISPER[0][3]
    assert snapped.end_shifts[2] is None and snapped.lines[2].end == WHISPER[2][3]


def test_a_quiet_noise_floor_still_snaps():
    x = track() + (np.random.default_rng(5).standard_normal(int(8.5 * RATE)) * 10 ** (-55 / 20)).astype(np.float32)
    snapped = snap_lines(whisper_lines(), x)
    for ln, (a, _) in zip(snapped.lines, TRUE):
        assert abs(ln.start - a) <= 0.03, (ln.start, a)


def test_quiet_music_far_under_the_voice_still_snaps():
    snapped = snap_lines(whisper_lines(), track(40))
    for ln, (a, _) in zip(snapped.lines, TRUE):
        assert abs(ln.start - a) <= 0.03, (ln.start, a)


@pytest.mark.parametrize("background_db", [10, 20, 25])
def test_under_music_no_clear_onset_keeps_whisper_times(background_db):
    """Music 10-25 dB under the voice: loudness cannot tell where the voice begins, so nothing moves."""
    lines = whisper_lines()
    snapped = snap_lines(lines, track(background_db))
    assert [ln.start for ln in snapped.lines] == [ln.start for ln in lines]
    assert [ln.end for ln in snapped.lines] == [ln.end for ln in lines]
    assert snapped.start_shifts == [None] * 3 and snapped.end_shifts == [None] * 3


def test_a_start_never_passes_its_first_word_end_nor_the_previous_line():
    x = track()
    lines = whisper_lines()
    # the first word ends before the voice begins: no onset inside the window, Whisper's start kept
    w = lines[0].words
    lines[0] = Segment(start=0.0, end=lines[0].end, text=lines[0].text,
                       words=[Word(start=0.0, end=0.4, text=w[0].text), *w[1:]])
    # the third line stamped late, right after the second's end: its start may not go before it
    lines[1] = Segment(start=lines[1].start, end=6.2, text=lines[1].text,
                       words=[*lines[1].words[:-1], Word(start=5.8, end=6.2, text="last1.")])
    lines[2] = Segment(start=6.25, end=lines[2].end, text=lines[2].text,
                       words=[Word(start=6.25, end=6.7, text="first2"), *lines[2].words[1:]])
    snapped = snap_lines(lines, x)
    assert snapped.lines[0].start == 0.0 and snapped.start_shifts[0] is None
    assert snapped.lines[2].start >= snapped.lines[1].end
    for prev, nxt in zip(snapped.lines, snapped.lines[1:]):
        assert prev.end <= nxt.start


def test_a_late_start_walks_back_to_the_voice_and_a_word_before_it():
    """Whisper 0.4 s late: the start goes back to the voice's onset. Whisper late by a whole word (a
    loud piece 0.15 s before the line's sound): back to that word's onset."""
    lines = whisper_lines()
    late = 3.40 + 0.4
    lines[1] = Segment(start=late, end=lines[1].end, text=lines[1].text,
                       words=[Word(start=late, end=4.0, text="first1"), *lines[1].words[1:]])
    snapped = snap_lines(lines, track())
    assert abs(snapped.lines[1].start - 3.40) <= 0.03, snapped.lines[1].start
    x = track()
    x[int(5.75 * RATE):int(5.75 * RATE) + int(0.2 * RATE)] += utterance(0.2, np.random.default_rng(3))
    snapped = snap_lines(whisper_lines(), x)
    assert abs(snapped.lines[2].start - 5.75) <= 0.03, snapped.lines[2].start


def test_sound_already_there_when_the_window_opens_is_not_an_onset():
    """A voice that started over a second before Whisper's time: the look-back opens on sound, so the
    onset is not clear and the line keeps its start."""
    lines = whisper_lines()
    lines[2] = Segment(start=7.2, end=lines[2].end, text=lines[2].text,
                       words=[Word(start=7.2, end=7.4, text="first2"), Word(start=7.45, end=7.6, text="last2.")])
    snapped = snap_lines(lines, track())
    assert snapped.lines[2].start == 7.2 and snapped.start_shifts[2] is None


def test_a_click_just_before_the_voice_leaves_the_start_alone():
    """A soft click 0.15 s before the voice: is it the speaker? Loudness cannot say, so Whisper's time
    is kept for that line (the others still snap)."""
    x = track()
    a = int((3.40 - 0.15) * RATE)
    x[a:a + int(0.02 * RATE)] += 0.01 * np.random.default_rng(4).standard_normal(int(0.02 * RATE)).astype(np.float32)
    snapped = snap_lines(whisper_lines(), x)
    assert snapped.lines[1].start == WHISPER[1][0] and snapped.start_shifts[1] is None
    assert abs(snapped.lines[0].start - 0.65) <= 0.03 and abs(snapped.lines[2].start - 6.10) <= 0.03


def test_the_envelope_frames_and_silence():
    x = np.zeros(RATE, np.float32)
    x[RATE // 2:] = 0.5
    env = envelope(x)
    assert len(env) == 200 and env[0] == pytest.approx(-120, abs=1)
    # frame k covers samples [80k, 80k + 160): frame 99 is half sound, so an onset reads up to 10 ms early
    assert env[98] == pytest.approx(-120, abs=1) and env[99] == pytest.approx(10 * np.log10(0.25 / 2), abs=0.1)
    assert env[100] == pytest.approx(20 * np.log10(0.5), abs=0.1)


def test_the_tool_snaps_when_given_the_sound(tmp_path):
    import media_factory as mf

    wav = mf.write_audio(tmp_path / "voice.wav", track(), RATE)
    segs = [s.model_dump() for s in whisper_lines()]
    plain, _ = call(dub_lines, segments=segs, max_pause=0.5)
    assert [ln.start for ln in plain["lines"]] == [w[0] for w in WHISPER]
    out, notes = call(dub_lines, segments=segs, max_pause=0.5, audio=str(wav))
    assert [abs(ln.start - a) <= 0.03 for ln, (a, _) in zip(out["lines"], TRUE)] == [True] * 3
    assert any("3 of 3 line starts moved" in n for n in notes), notes
