"""The speech of a video for caption_video: the transcribe tool run on the sound track a minute at a time, after
the picture pass (run beside it, the two peaks of memory added up where they met: the 10-minute clip's peak
was 20 % above the 1-minute one's; and on 2 cores faster-whisper's own threads already use both).

Why in pieces: transcribe holds the whole sound track as samples and faster-whisper computes the features of
all of it at once, so its peak memory grows with the length (measured: 430 MB for 1 minute, 825 MB for 10).
Here the sound is decoded as a stream, resampled to 16 kHz mono and written as WAV pieces of about
`PIECE_SECONDS`, each cut at the quietest 0.2 s of its last `SEARCH_SECONDS` (so a cut seldom splits a word);
each piece is transcribed and deleted, its segments shifted by its start. Whisper reads 30 s windows
independently here (transcribe runs it with condition_on_previous_text off), so pieces lose next to nothing.
The language found in the first piece with speech is given to the later ones.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import wave
from pathlib import Path
from typing import Iterator

import numpy as np

from ...errors import MediaError
from ...media import Audio, Video, open_media
from ..base import ToolContext
from ..speech.segments import Segment, Transcript
from .scenes import trim_heap

RATE = 16000
PIECE_SECONDS = 60.0
SEARCH_SECONDS = 6.0
_WINDOW, _HOP = 0.2, 0.05  # seconds: the loudness window and its step when looking for a quiet cut


def quiet_cut(x: np.ndarray, lo: int, hi: int) -> int:
    """The sample in [lo, hi) in the middle of the quietest `_WINDOW` (RMS)."""
    win, hop = int(_WINDOW * RATE), int(_HOP * RATE)
    best, at = None, hi
    for a in range(max(0, lo), max(lo + 1, hi - win), hop):
        e = float(np.mean(np.square(x[a:a + win].astype(np.float32))))
        if best is None or e < best:
            best, at = e, a + win // 2
    return at


def pieces(video: Video, folder: Path, check) -> Iterator[tuple[Path, float]]:
    """(WAV path, start in seconds) of each piece of the sound track, written as the sound is decoded."""
    import av

    label = f"the sound track of video {video.path.name}"
    buf: list[np.ndarray] = []
    held, start, n = 0, 0, 0
    piece, search = int(PIECE_SECONDS * RATE), int(SEARCH_SECONDS * RATE)

    def write(x: np.ndarray, at: int) -> tuple[Path, float]:
        path = folder / f"piece-{at}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(x.astype("<i2").tobytes())
        return path, at / RATE

    try:
        with open_media(video.path, label) as container:
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            frames = container.decode(stream)
            for frame in frames:
                n += 1
                if n % 50 == 0:
                    check()
                for out in resampler.resample(frame):
                    buf.append(out.to_ndarray().reshape(-1))
                    held += buf[-1].size
                if held >= piece + search:
                    x = np.concatenate(buf)
                    cut = quiet_cut(x, piece - search, piece)
                    yield write(x[:cut], start)
                    start += cut
                    buf, held = [x[cut:]], x.size - cut
            for out in resampler.resample(None):
                buf.append(out.to_ndarray().reshape(-1))
    except MediaError:
        raise
    except (av.error.FFmpegError, ValueError) as e:
        raise MediaError(f"cannot decode {label}: {getattr(e, 'strerror', None) or str(e).splitlines()[0]}") from e
    x = np.concatenate(buf) if buf else np.zeros(0, np.int16)
    if x.size >= int(0.1 * RATE) or start == 0:
        yield write(x, start)


def voiced(s: Segment) -> tuple[float, float]:
    """A segment's span from its first word's start to its last word's end (its own bounds without words)."""
    if s.words:
        return min(w.start for w in s.words), max(max(w.end for w in s.words), min(w.start for w in s.words))
    return s.start, s.end


def transcribe_video(video: Video, ctx: ToolContext, language: str | None) -> Transcript:
    """The speech of `video`'s sound track, a piece at a time (see the module docstring). Raises
    BackendUnavailableError when no speech recogniser is installed, before any decoding."""
    from ..speech.transcribe import transcribe

    # the pieces' notes (about temporary files) are not the user's: a list of our own
    sub = dataclasses.replace(ctx, backend=transcribe.get_backend().name, notes=[])
    folder = Path(tempfile.mkdtemp(prefix="cadenza-speech-"))
    segments: list[Segment] = []
    found = None
    try:
        for path, start in pieces(video, folder, ctx.check_cancelled):
            # word times: a segment's own bounds run up to a second or two past the voice, and the pauses
            # between them are where audio description speaks
            got = transcribe.fn(media=Audio.from_path(path), ctx=sub, language=language, word_timestamps=True)
            path.unlink(missing_ok=True)
            trim_heap()  # the recogniser's buffers of the piece, handed back
            if got.segments:
                found = found or got.language
                language = language or got.language  # the later pieces in the language found
            segments += [Segment(start=round(a + start, 3), end=round(b + start, 3), text=s.text)
                         for s in got.segments for a, b in [voiced(s)]]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if not segments:
        ctx.note(f"no speech recognised in {video.path.name}")
    return Transcript(text=" ".join(s.text for s in segments), language=found or language or "unknown",
                      segments=segments)
