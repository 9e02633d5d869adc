"""Dubbing lines snapped to the source's sound: a line's slot starts when the original voice does.

Whisper's word times are not where the voice is: a line's first word is often stamped before the speaker
starts (measured on benchmarks/dub.py's clips: the first line always at 0.0 s when the speech starts at
0.65 s, others 20-710 ms early, some up to 206 ms late; on tests/test_dub.py's espeak-ng clip once 566 ms
late), and a last word's end can run past the voice (up to 0.53 s there, 1.1 s on the espeak-ng clip).
The dub follows the slot exactly, so the new voice would start before the speaker's lips move.

Here each line's start is moved to the onset of the original sound near Whisper's time, measured on a
short-window loudness envelope of the source track (RMS in 10 ms windows every 5 ms, in dB):

- the line's speech level is the 90th percentile of the envelope over its slot;
- the search window runs from `BEFORE_S` before Whisper's start to `AFTER_S` after it, never past the
  line's first word's end, nor before the previous line's end (lines stay ordered and apart);
- the noise floor is the 10th percentile of the envelope in that window; the high threshold (speech)
  is `HI_DB` under the speech level, the low one (any sound) `LO_DB` under it, or `FLOOR_DB` over the
  floor when the floor is louder;
- the anchor is the first confirmed speech from Whisper's start on (over the high threshold, and over
  the low one for `HOLD_S`): the voice itself when Whisper is early, a point inside the sound it belongs
  to when Whisper is late;
- from the anchor the onset walks back to where that sound rose above the low threshold, across quiet
  dips shorter than `PAUSE_S` (the pauses inside a sentence);
- and it counts only when it is CLEAR: the floor at least `CONTRAST_DB` under the speech level, and a
  quiet stretch before the onset of a whole `PAUSE_S` (or `QUIET_S` up to the previous line's end).
  Otherwise the line keeps Whisper's time.

Why so conservative: loudness alone cannot tell a voice from music, traffic or a second speaker. Under
background music (or noise) less than `CONTRAST_DB` under the voice the floor is the music, the check
fails and the line keeps Whisper's start (no worse than before); sound that already runs when the
look-back begins leaves no quiet stretch, and the line keeps Whisper's time too. Only a voice that
rises out of clear quiet moves. What this cannot tell: a noise or breath less than `PAUSE_S` before the
voice counts as its start (the line then starts that much early, as Whisper's often did).

A line's end is tightened the same way, and only when the sound is clearly over before Whisper's end:
after the last confirmed-speech point of the line, the envelope stays under the low threshold for at
least `END_QUIET_S` up to Whisper's end. The end then becomes the sound's offset plus `END_PAD_S` (never
before the last word's start). An end is never moved later: a longer slot would give the translation
room the original voice did not take. A tighter end costs room (speak_lines lets a line run on into
part of the silence after it), which is why only a clearly idle tail is cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..speech.segments import Segment, Word

RATE = 16000  # the source is read at this rate (load_mono's default, as transcribe reads it)
WIN_S, HOP_S = 0.010, 0.005  # the loudness window and its step
BEFORE_S, AFTER_S = 1.0, 1.0  # the onset is looked for this far before and after Whisper's start
HI_DB = 15.0  # confirmed speech: at most this far under the line's speech level
LO_DB = 40.0  # where the sound begins: at most this far under the speech level ...
FLOOR_DB = 6.0  # ... and at least this far over the noise floor
CONTRAST_DB = 25.0  # a clear onset needs a floor at least this far under the speech level
HOLD_S = 0.030  # confirmed speech stays above the low threshold this long
QUIET_S = 0.080  # a clear onset has this much quiet right before it (inside the window)
PAUSE_S = 0.25  # walking back to where a voice began, a pause shorter than this before a loud piece is inside it
GAP_S = 0.03  # ... and one this short before a soft piece (a stop's closure before its burst)
SPREAD_DB = 15.0  # the background: the window's frames within this of its floor
MIN_SPEECH_DB = -55.0  # a line quieter than this (dBFS) is not judged
END_QUIET_S = 0.25  # an end is tightened only when the sound was over at least this long before it
END_PAD_S = 0.05  # a tightened end lies this far after the sound's offset


@dataclass
class Snapped:
    """Lines after snapping, and what moved (seconds: new - Whisper's)."""

    lines: list[Segment]
    start_shifts: list[float | None]  # None: no clear onset, Whisper's start kept
    end_shifts: list[float | None]  # None: the end kept


def envelope(x: np.ndarray, rate: int = RATE) -> np.ndarray:
    """The loudness of `x` in dB (RMS of `WIN_S` windows every `HOP_S`; -120 for digital silence).
    Frame k covers samples [k*hop, k*hop + win)."""
    hop, win = max(1, int(round(HOP_S * rate))), max(1, int(round(WIN_S * rate)))
    x = np.asarray(x, np.float32).reshape(-1)
    n = len(x) // hop
    if n == 0:
        return np.zeros(0, np.float32)
    blocks = np.empty(n, np.float64)
    step = hop * 4096  # in chunks: an hour of sound is 58 M samples
    for a in range(0, n * hop, step):
        b = min(n * hop, a + step)
        blocks[a // hop:b // hop] = np.square(x[a:b].astype(np.float64)).reshape(-1, hop).sum(axis=1)
    per = win // hop
    power = np.convolve(blocks, np.ones(per), "full")[per - 1:per - 1 + n] / (per * hop) if per > 1 \
        else blocks / hop  # window k: blocks k .. k+per-1
    return (10 * np.log10(power + 1e-12)).astype(np.float32)


def _frames(t: float) -> int:
    return int(round(t / HOP_S))


def _level(env: np.ndarray, a: float, b: float, q: float) -> float | None:
    seg = env[max(0, _frames(a)):max(0, _frames(b))]
    return float(np.percentile(seg, q)) if seg.size else None


def _thresholds(env: np.ndarray, speech: float, a: float, b: float) -> tuple[float, float] | None:
    """(high, low) thresholds for the window [a, b), or None when the background there is too loud to
    tell. The background is the loudness of the window's quiet frames (within `SPREAD_DB` of its floor,
    the 10th percentile) at their 90th percentile: the peaks of steady noise or music, not its dips."""
    seg = env[max(0, _frames(a)):max(0, _frames(b))]
    if seg.size == 0 or speech < MIN_SPEECH_DB:
        return None
    floor = float(np.percentile(seg, 10))
    background = float(np.percentile(seg[seg < floor + SPREAD_DB], 90))
    if speech - background < CONTRAST_DB:
        return None
    return speech - HI_DB, max(speech - LO_DB, background + FLOOR_DB)


def onset(env: np.ndarray, speech: float, lo: float, at: float, hi: float, hard_lo: bool) -> float | None:
    """The clear onset (seconds) of the sound that Whisper's start `at` belongs to, looked for in [lo, hi),
    or None (see the module docstring). `hard_lo`: `lo` is the previous line's end or the track's start
    (nothing of this line lies before it), not just the limit of the look-back."""
    th = _thresholds(env, speech, lo, hi)
    if th is None:
        return None
    high, low = th
    a, b = max(0, _frames(lo)), min(len(env), _frames(hi))
    hold, quiet, pause, gap = (max(1, _frames(t)) for t in (HOLD_S, QUIET_S, PAUSE_S, GAP_S))
    # the anchor: the first confirmed speech from Whisper's start on (the voice itself when Whisper is
    # early; when it is late, a point inside the sound it belongs to)
    k = next((k for k in range(max(a, _frames(at)), b)
              if env[k] >= high and k + hold <= len(env) and env[k:k + hold].min() >= low), None)
    if k is None:
        return None
    j = k
    while j > a and env[j - 1] >= low:  # back to where that sound rose above the low threshold
        j -= 1
    while j > a:  # and on over earlier pieces of it: speech-loud ones up to PAUSE_S before, soft ones GAP_S
        back = np.flatnonzero(env[max(a, j - pause):j] >= low)
        if back.size == 0:
            break
        m = max(a, j - pause) + int(back[-1])
        p = m
        while p > a and env[p - 1] >= low:
            p -= 1
        if j - 1 - m > gap and env[p:m + 1].max() < high:
            break  # a soft sound (a noise, a breath, a drum) apart from the voice: not its start
        j = p
    # a clear onset has quiet right before it: a whole PAUSE_S of it, or at least QUIET_S up to a hard
    # bound (else the sound may have begun before the look-back, or something else sounds just before)
    q = j
    while q > a and env[q - 1] < low:
        q -= 1
    if j - q >= pause or (hard_lo and q == a and j - q >= quiet):
        return j * HOP_S
    return None


def offset(env: np.ndarray, speech: float, lo: float, end: float) -> float | None:
    """Where the sound of a line that Whisper ends at `end` clearly stops (seconds), or None. `lo`:
    the last word's start (the offset is never before it)."""
    th = _thresholds(env, speech, lo, end)
    if th is None:
        return None
    high, low = th
    a, b = max(0, _frames(lo)), min(len(env), _frames(end))
    loud = np.flatnonzero(env[a:b] >= high)
    if loud.size == 0:
        return None
    q = a + int(loud[-1])
    while q < b and env[q] >= low:  # the tail of the last loud sound, down to the low threshold
        q += 1
    # frame q is the first quiet window; the sound ends where it begins, plus a window's length
    t = q * HOP_S + WIN_S
    if end - t < END_QUIET_S or (b > q and env[q:b].max() >= low):
        return None
    return t


def snap_lines(lines: list[Segment], x: np.ndarray, rate: int = RATE) -> Snapped:
    """`lines` with each start moved to the source's clear sound onset near it and each end tightened
    to a clear offset (see the module docstring); a line without a clear one keeps Whisper's time.
    Lines stay in order, never overlap, and every start stays before its first word's end."""
    env = envelope(x, rate)
    out: list[Segment] = []
    starts: list[float | None] = []
    ends: list[float | None] = []
    prev_end = 0.0
    for ln in lines:
        words = list(ln.words or [])
        first_end = words[0].end if words else ln.end
        last_start = words[-1].start if words else ln.start
        speech = _level(env, ln.start, max(ln.end, ln.start + 0.1), 90)
        start, end = ln.start, ln.end
        got = None
        if speech is not None:
            lo = max(prev_end, ln.start - BEFORE_S, 0.0)
            hi = min(ln.start + AFTER_S, first_end, ln.end)
            got = onset(env, speech, lo, ln.start, hi, hard_lo=lo > ln.start - BEFORE_S) if hi > lo else None
            if got is not None and not (prev_end <= got < min(first_end, ln.end)):
                got = None
        if got is not None:
            start = round(got, 3)
        starts.append(None if got is None else round(start - ln.start, 3))
        cut = None
        if speech is not None:
            cut = offset(env, speech, max(last_start, start), ln.end)
            if cut is not None:
                cut = min(ln.end, cut + END_PAD_S)
                if cut <= max(start, last_start) or cut >= ln.end:
                    cut = None
        if cut is not None:
            end = round(cut, 3)
        ends.append(None if cut is None else round(end - ln.end, 3))
        if words:
            w0 = words[0]
            words[0] = Word(start=start, end=max(w0.end, start), text=w0.text)
            wl = words[-1]
            words[-1] = Word(start=min(wl.start, end), end=min(max(wl.end, wl.start), end), text=wl.text)
        out.append(Segment(start=start, end=end, text=ln.text, words=words or None))
        prev_end = end
    return Snapped(out, starts, ends)
