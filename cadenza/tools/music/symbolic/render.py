"""PrettyMIDI -> float32 stereo samples at 44.1 kHz through a General MIDI SoundFont (tinysoundfont): each
part rendered alone and mixed at its own level, a room (convolution reverb with a synthetic impulse
response), exactly the asked length, the loudness normalised.

The SoundFont: one chosen by the caller, else $CADENZA_SOUNDFONT (any .sf2/.sf3, e.g. a fuller GM font
such as FluidR3_GM), else the TimGM6mb.sf2 that pretty_midi ships. The synth is driven event by event at
exact sample positions (not through tinysoundfont's float-time sequencer), so the same MIDI gives
bit-identical audio.

The mix does not trust the SoundFont's levels (TimGM6mb's contrabass is 20 dB louder than its piano):
each stem's loudness is measured and set to its role's place in the mix.

Loops: everything that rings past the end (releases, the reverb tail) is added back onto the start, so
the last sample flows into the first exactly as if the loop were playing for ever.
"""

from __future__ import annotations

import functools
import os
import struct
from pathlib import Path
from typing import Callable

import numpy as np
import pretty_midi

RATE = 44100
TARGET_LUFS = -16.0
PEAK_DBFS = -1.0
LIMIT_DB = 4.0  # the most the peak limiter takes off
TAIL_SECONDS = 4.0  # rendered past a loop's end, then wrapped onto its start
SHORT_RELEASE = 0.35  # seconds: the longest release of a part marked short


def soundfont(chosen: str | os.PathLike | None = None) -> tuple[Path, str | None]:
    """(path, note): the chosen file, else $CADENZA_SOUNDFONT, else pretty_midi's TimGM6mb.sf2; the note
    says when a named SoundFont was not a file."""
    bundled = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    for name, value in (("the SoundFont", chosen), ("CADENZA_SOUNDFONT", os.environ.get("CADENZA_SOUNDFONT"))):
        if value:
            path = Path(value).expanduser()
            if path.is_file():
                return path, None
            return bundled, f"{name} {value} is not a file: used the bundled TimGM6mb.sf2"
    return bundled, None


@functools.lru_cache(maxsize=2)
def _font_bytes(path: str, mtime: float) -> bytes:
    return Path(path).read_bytes()


@functools.lru_cache(maxsize=2)
def _short_release(path: str, mtime: float, seconds: float = SHORT_RELEASE) -> bytes:
    """The SoundFont with every instrument's release cut to at most `seconds`: for parts of short notes
    (a string ostinato, synth stabs), which would otherwise ring on for two seconds each into a blur,
    and cost a voice all that time. Only the igen chunk's releaseVolEnv generators (38) change."""
    data = bytearray(_font_bytes(path, mtime))
    cap = int(round(1200 * np.log2(seconds)))  # timecents

    def chunks(start: int, end: int):
        pos = start
        while pos + 8 <= end:
            cid, size = bytes(data[pos:pos + 4]), struct.unpack_from("<I", data, pos + 4)[0]
            yield cid, pos + 8, size
            pos += 8 + size + (size & 1)

    for cid, off, size in chunks(12, len(data)):
        if cid == b"LIST" and data[off:off + 4] == b"pdta":
            for sub, soff, ssize in chunks(off + 4, off + size):
                if sub == b"igen":  # 4-byte records: generator number, amount
                    gens = np.frombuffer(data, dtype=[("oper", "<u2"), ("amount", "<i2")], count=ssize // 4,
                                         offset=soff)
                    gens["amount"][(gens["oper"] == 38) & (gens["amount"] > cap)] = cap
    return bytes(data)


class Synth:
    """One tinysoundfont synth, reused stem after stem (all sound is stopped between stems)."""

    def __init__(self, rate: int, font: Path):
        import tinysoundfont

        self.rate, self.font = rate, font
        self.synth = tinysoundfont.Synth(samplerate=rate, gain=-6)
        self.sfid = self.synth.sfload(_font_bytes(str(font), font.stat().st_mtime), max_voices=384)
        self.sfid_short: int | None = None

    def stem(self, inst: pretty_midi.Instrument, channel: int, n: int, check: Callable[[], None] | None = None,
             short: bool = False) -> np.ndarray:
        """n frames of one instrument, dry, float32 (n, 2), every event at its exact frame; `short`: with the
        releases cut short."""
        synth, rate = self.synth, self.rate
        synth.sounds_off()
        sfid = self.sfid
        if short:
            if self.sfid_short is None:
                font = self.font
                self.sfid_short = synth.sfload(_short_release(str(font), font.stat().st_mtime), max_voices=384)
            sfid = self.sfid_short
        # a SoundFont without this preset: the first of its family, else the first preset (a GM font has them)
        for preset in dict.fromkeys((inst.program, 0 if inst.is_drum else inst.program // 8 * 8, 0)):
            try:
                synth.program_select(channel, sfid, 128 if inst.is_drum else 0, preset, inst.is_drum)
                break
            except RuntimeError:
                continue
        # controllers first, then note-offs, then note-ons at the same frame
        events = [(int(round(c.time * rate)), 0, c.number, c.value) for c in inst.control_changes]
        for note in inst.notes:
            events.append((int(round(note.start * rate)), 2, note.pitch, note.velocity))
            events.append((int(round(note.end * rate)), 1, note.pitch, 0))
        events.sort()
        out = np.zeros((n, 2), dtype=np.float32)
        buf = memoryview(out).cast("B")
        pos, since_check = 0, 0
        for frame, kind, a, b in events:
            frame = min(frame, n)
            if frame > pos:
                synth.generate_simple(frame - pos, buffer=buf[pos * 8:frame * 8])
                since_check += frame - pos
                pos = frame
                if check is not None and since_check > 4 * rate:
                    check()
                    since_check = 0
            if kind == 2:
                synth.noteon(channel, a, b)
            elif kind == 1:
                synth.noteoff(channel, a)
            else:
                synth.control_change(channel, a, b)
        if pos < n:
            synth.generate_simple(n - pos, buffer=buf[pos * 8:n * 8])
        return out


def level_db(x: np.ndarray, rate: int) -> float | None:
    """A quick loudness of a stem (dB): mono, K-weighted as in BS.1770 (the ear's lesser weight for lows),
    mean power over its 0.4 s blocks that are not near silence. None for silence."""
    import pyloudnorm
    from scipy.signal import lfilter

    step = 4  # a quarter of the rate is plenty to weigh a level (folding keeps the power)
    fs = rate / step
    y = (x[::step, 0].astype(np.float64) + x[::step, 1]) * 0.5
    for f in (pyloudnorm.IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, fs, "high_shelf"),
              pyloudnorm.IIRfilter(0.0, 0.5, 38.0, fs, "high_pass")):
        y = lfilter(f.b, f.a, y)
    block = max(1, int(0.4 * fs))
    k = len(y) // block
    power = (y[:k * block] ** 2).reshape(k, block).mean(axis=1) if k else np.array([np.mean(y ** 2)])
    power = power[power > 1e-9]
    if power.size == 0:
        return None
    power = power[power > power.mean() * 0.1]  # gate: 10 dB under the mean, like BS.1770
    return float(10 * np.log10(power.mean()))


@functools.lru_cache(maxsize=8)
def room(rate: int, rt60: float) -> np.ndarray:
    """A stereo impulse response: decorrelated noise decaying 60 dB in rt60 seconds, highs dying faster,
    no lows (a clean bass), a short pre-delay. Unit energy per channel; always the same noise."""
    from scipy.signal import butter, sosfilt

    m = int(rate * min(rt60, 6.0))  # -60 dB by then
    t = np.arange(m) / rate
    noise = np.random.default_rng(20240611).standard_normal((m, 2))
    dark = sosfilt(butter(2, 3000, "low", fs=rate, output="sos"), noise, axis=0)
    bright = noise - dark
    ir = dark * (10 ** (-3 * t / rt60))[:, None] + bright * (10 ** (-3 * t / (0.4 * rt60)))[:, None]
    ir = sosfilt(butter(2, 180, "high", fs=rate, output="sos"), ir, axis=0)
    ir *= np.minimum(1.0, t / 0.01)[:, None]  # a soft onset: no click
    ir = np.concatenate([np.zeros((int(0.015 * rate), 2)), ir])
    return (ir / np.sqrt((ir ** 2).sum(axis=0))).astype(np.float32)


def render(midi: pretty_midi.PrettyMIDI, seconds: float, *, loop: bool, reverb: float, rt60: float,
           mix: dict[str, float], sends: dict[str, float], short: tuple[str, ...] = (), lofi: bool = False,
           fade_out: float = 0.05, seed: int = 0, rate: int = RATE, font: str | os.PathLike | None = None,
           check: Callable[[], None] | None = None) -> tuple[np.ndarray, dict]:
    """Exactly round(seconds * rate) frames of float32 stereo, loudness-normalised; and what was done.

    Each instrument (named by its role) is rendered alone, measured, and mixed in at mix[role] dB relative
    to the others, whatever the SoundFont's own levels; sends[role] is its share of the reverb; the roles in
    `short` play with their releases cut short."""
    from scipy.signal import butter, sosfilt

    n = max(1, int(round(seconds * rate)))
    font, note = soundfont(font)
    frames = n + (int(TAIL_SECONDS * rate) if loop else 0)
    synth = Synth(rate, font)
    out = np.zeros((frames, 2), np.float32)
    send = np.zeros(frames, np.float32)  # mono into the room
    gains: dict[str, float] = {}
    melodic = iter(c for c in range(16) if c != 9)
    for inst in midi.instruments:
        channel = 9 if inst.is_drum else next(melodic)
        stem = synth.stem(inst, channel, frames, check, short=inst.name in short)
        level = level_db(stem, rate)
        if level is None:
            continue
        gain_db = mix.get(inst.name, -6.0) - 6.0 - level  # every stem to its place, well under full scale
        gains[inst.name] = round(gain_db, 2)
        stem *= np.float32(10 ** (gain_db / 20))
        out += stem
        send += np.float32(0.5 * sends.get(inst.name, 0.5)) * (stem[:, 0] + stem[:, 1])
        del stem
    if lofi:  # a dull, warm top; linear, so it may come before the room and the wrap
        sos = butter(2, 4500, "low", fs=rate, output="sos")
        out = sosfilt(sos, out, axis=0).astype(np.float32)
        send = sosfilt(sos, send).astype(np.float32)
    wet = np.zeros((0, 2), np.float32)
    if reverb > 0 and gains:
        wet = convolve(send, room(rate, rt60))  # (frames + len(ir) - 1, 2)
        wet *= np.float32(reverb)
        out += wet[:frames]
    del send
    if loop:  # everything that rings past the end comes round onto the start
        _wrap_add(out[:n], out[n:], n)
        _wrap_add(out[:n], wet[frames:], frames)
    del wet
    out = out[:n]
    if lofi:
        out = _vinyl(out, rate, seed)
    if not loop and fade_out > 0:
        k = min(n, int(fade_out * rate))
        out[n - k:] *= (0.5 + 0.5 * np.cos(np.linspace(0, np.pi, k)))[:, None].astype(np.float32)
    out, lufs = normalise(out, rate, loop)
    top = max(gains.values(), default=0.0)
    info = {"soundfont": font.name, "sample_rate": rate, "loudness_lufs": lufs,
            "mix_db": {k: round(v - top, 2) for k, v in gains.items()}}  # each part's gain, the loudest 0
    if note:
        info["note"] = note
    return out, info


def convolve(x: np.ndarray, ir: np.ndarray, block: int = 1 << 18) -> np.ndarray:
    """Mono x through the stereo impulse response ir, by FFT overlap-add a block at a time, in float32:
    scipy's oaconvolve holds the whole signal in float64 and complex, 3 to 4 times the memory."""
    from scipy import fft

    m = len(ir)
    size = fft.next_fast_len(block + m - 1, real=True)
    spectrum = fft.rfft(ir, size, axis=0)
    out = np.zeros((len(x) + m - 1, 2), np.float32)
    for start in range(0, len(x), block):
        chunk = x[start:start + block]
        y = fft.irfft(fft.rfft(chunk, size)[:, None] * spectrum, size, axis=0)[:len(chunk) + m - 1]
        out[start:start + len(y)] += y
    return out


def _wrap_add(dst: np.ndarray, src: np.ndarray, start: int) -> None:
    """Add `src`, which begins at absolute frame `start`, onto the loop `dst`, wrapping round its length."""
    n, pos, i = len(dst), start % len(dst), 0
    while i < len(src):
        k = min(n - pos, len(src) - i)
        dst[pos:pos + k] += src[i:i + k]
        i, pos = i + k, 0


def bake_mix(midi: pretty_midi.PrettyMIDI, gains_db: dict[str, float]) -> None:
    """Write the mix into the MIDI file as channel volumes (CC7), so it plays balanced elsewhere too
    (General MIDI: volume gain = 40 log10(value / 127) dB; the loudest part gets 127)."""
    if not gains_db:
        return
    top = max(gains_db.values())
    for inst in midi.instruments:
        if inst.name in gains_db:
            value = max(1, int(round(127 * 10 ** ((gains_db[inst.name] - top) / 40))))
            for cc in inst.control_changes:
                if cc.number == 7:
                    cc.value = value


def _vinyl(x: np.ndarray, rate: int, seed: int) -> np.ndarray:
    """Tape warmth (a soft saturation) and a faint vinyl crackle, from a seeded generator."""
    level = float(np.sqrt(np.mean(x ** 2))) or 1e-3
    peak = float(np.abs(x).max()) or 1.0
    y = (np.tanh(1.5 * x / peak) / np.tanh(1.5) * peak).astype(np.float32)
    rng = np.random.default_rng([seed, 99])
    n = len(x)
    clicks = np.zeros((n, 2), np.float32)
    where = rng.integers(0, n, size=max(1, int(6 * n / rate)))
    clicks[where] = (rng.standard_normal((len(where), 1)) * level * 0.6).astype(np.float32)
    hiss = rng.standard_normal((n, 2)).astype(np.float32) * np.float32(level * 0.012)
    return y + clicks + hiss


def normalise(x: np.ndarray, rate: int, loop: bool = False) -> tuple[np.ndarray, float | None]:
    """In place, to TARGET_LUFS integrated loudness with peaks under PEAK_DBFS: the few peaks above are
    limited (at most LIMIT_DB of gain reduction; music with sharper peaks ends up quieter instead)."""
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak < 1e-7:
        return x, None
    loud = _loudness(x, rate)
    gain = 10 ** ((TARGET_LUFS - loud) / 20)
    ceiling = 10 ** ((PEAK_DBFS - 0.3) / 20)  # a margin for the tool's own, exact, normalisation
    gain = min(gain, ceiling * 10 ** (LIMIT_DB / 20) / peak)
    x *= np.float32(gain)
    if peak * gain > ceiling:
        limit(x, rate, ceiling, loop)
    return x, round(float(loud + 20 * np.log10(gain)), 2)  # the limiter's few peaks hardly change it


def _loudness(x: np.ndarray, rate: int) -> float:
    if len(x) > 120 * rate:  # every other sample is close enough, in half the memory (the tool measures again)
        x, rate = x[::2], rate // 2
    if len(x) >= int(0.4 * rate):
        import pyloudnorm

        loud = pyloudnorm.Meter(rate).integrated_loudness(x.astype(np.float64))
    else:  # too short to gate: an RMS estimate
        loud = 20 * np.log10(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) + 1e-12) - 0.7
    return float(loud) if np.isfinite(loud) else 20 * np.log10(float(np.abs(x).max()) + 1e-12) - 12


def limit(x: np.ndarray, rate: int, ceiling: float, loop: bool) -> np.ndarray:
    """A look-ahead peak limiter, in place: the gain each peak needs, held 20 ms around it and smoothed over
    10 ms, so it never exceeds the ceiling and never pumps. Circular for a loop (its end limits its start).
    Worked a few seconds at a time, skipping the stretches that need nothing."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    n, hold, smooth = len(x), int(0.02 * rate), int(0.01 * rate)
    pad, step = hold + smooth + 1, 8 * rate
    peak = np.maximum(np.abs(x[:, 0]), np.abs(x[:, 1]))
    for start in range(0, n, step):
        stop = min(n, start + step)
        idx = np.arange(start - pad, stop + pad)
        idx = idx % n if loop else np.clip(idx, 0, n - 1)
        near = peak[idx]
        if near.max() <= ceiling:
            continue
        need = np.minimum(1.0, ceiling / np.maximum(near, 1e-9)).astype(np.float32)
        g = uniform_filter1d(minimum_filter1d(need, 2 * hold + 1), 2 * smooth + 1)  # an average of gains <= need
        x[start:stop] *= np.minimum(g, need)[pad:pad + stop - start, None]
    return x
