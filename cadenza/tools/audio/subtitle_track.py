"""Subtitles on a video, with PyAV and Pillow: read SRT/WebVTT cues, mux them as a selectable
track (the picture copied) or draw them into the picture (re-encoded).

Used by `add_subtitles` and `replace_audio` (video.py), which open the files; everything here
works on open containers, so both tools share one remux loop.
"""

from __future__ import annotations

import html
import os
import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ...errors import MediaError
from ...media import open_nofollow
from ..base import ToolContext
from ..fonts import first_font

# Text subtitle codec per output container; containers not listed (.avi, .mpg, .ts) hold none.
SUBTITLE_CODEC = {".mp4": "mov_text", ".mov": "mov_text", ".m4v": "mov_text", ".mkv": "subrip", ".webm": "webvtt"}
_MS = Fraction(1, 1000)
_MAX_BYTES = 32 << 20  # hours of cues take a few MB


@dataclass(frozen=True)
class Cue:
    start: float  # seconds
    end: float
    text: str  # lines joined by '\n', markup as in the file


# -- reading SRT / WebVTT ----------------------------------------------------------------

_TIMING = re.compile(r"^\s*(\S+)\s*-->\s*(\S+)")  # VTT cue settings may follow the end time
_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d{1,3}))?")
_HEADERS = ("WEBVTT", "NOTE", "STYLE", "REGION")  # WebVTT blocks that are not cues


def read_cues(path: Path) -> list[Cue]:
    """The cues of an SRT or WebVTT file, by start time; MediaError (one line naming it) if malformed."""
    fd = open_nofollow(path, f"subtitles {path.name}")  # as media are opened: no symlink followed
    with os.fdopen(fd, "rb") as f:
        raw = f.read(_MAX_BYTES + 1)
    if len(raw) > _MAX_BYTES:
        raise MediaError(f"cannot read subtitles {path.name}: over {_MAX_BYTES >> 20} MB, not a subtitle file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:  # old SRT files are often Windows-1252
        text = raw.decode("cp1252", errors="replace")
    return parse_cues(text, path.name)


def parse_cues(text: str, name: str) -> list[Cue]:
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cues: list[Cue] = []
    block: list[tuple[int, str]] = []
    for n, line in enumerate([*lines, ""], 1):
        if line.strip():
            block.append((n, line.rstrip()))
        elif block:
            _read_block(block, cues, name)
            block = []
    return sorted(cues, key=lambda c: (c.start, c.end))


def _read_block(block: list[tuple[int, str]], cues: list[Cue], name: str) -> None:
    at = next((i for i, (_, line) in enumerate(block[:2]) if "-->" in line), None)  # an id line may come first
    if at is None:
        if block[0][1].split(" ")[0].split("\t")[0] in _HEADERS:
            return
        if not cues:
            raise MediaError(f"cannot read subtitles {name}: line {block[0][0]}: "
                             f"no cue timing ('00:00:01,000 --> 00:00:02,500') where a cue should start")
        last = cues.pop()  # a blank line inside a cue's text: the text goes on
        cues.append(Cue(last.start, last.end, last.text + "\n" + "\n".join(t for _, t in block)))
        return
    n, timing = block[at]
    m = _TIMING.match(timing)
    if not m:
        raise MediaError(f"cannot read subtitles {name}: line {n}: bad cue timing {timing[:40]!r}")
    start, end = _seconds(m.group(1), name, n), _seconds(m.group(2), name, n)
    if end < start:
        raise MediaError(f"cannot read subtitles {name}: line {n}: the cue ends before it starts")
    body = "\n".join(t.strip() for _, t in block[at + 1:]).strip()
    if body and end > start:
        cues.append(Cue(start, end, body))


def _seconds(token: str, name: str, n: int) -> float:
    m = _TIME.fullmatch(token)
    if not m:
        raise MediaError(f"cannot read subtitles {name}: line {n}: bad time {token[:20]!r}")
    h, mi, s, frac = m.groups()
    return int(h or 0) * 3600 + int(mi) * 60 + int(s) + int((frac or "0").ljust(3, "0")) / 1000


def plain(text: str) -> str:
    """Cue text without markup: SRT/VTT tags (<i>, <c.x>, <00:01.000>), ASS overrides ({\\an8}), entities."""
    return html.unescape(re.sub(r"<[^>]*>|\{\\[^}]*\}", "", text)).strip()


def flatten(cues: list[Cue]) -> list[Cue]:
    """Non-overlapping cues in whole milliseconds: where cues overlap, one cue shows both texts.
    MP4's mov_text needs rising time stamps, and a burned frame shows one text."""
    times = sorted({round(t * 1000) for c in cues for t in (c.start, c.end)})
    out: list[Cue] = []
    active: list[Cue] = []
    i = 0
    for a, b in zip(times, times[1:]):
        while i < len(cues) and round(cues[i].start * 1000) <= a:
            active.append(cues[i])
            i += 1
        active = [c for c in active if round(c.end * 1000) > a]
        if not active:
            continue
        text = "\n".join(c.text for c in active)
        if out and round(out[-1].end * 1000) == a and out[-1].text == text:
            out[-1] = Cue(out[-1].start, b / 1000, text)
        else:
            out.append(Cue(a / 1000, b / 1000, text))
    return out


# -- a selectable track ------------------------------------------------------------------

def add_cue_track(vout: Any, suffix: str, cues: list[Cue], tag: str | None) -> None:
    """Add a subtitle stream to the output container and mux one packet per cue (all of them
    now: the muxer interleaves them with the picture). `add_mux_stream`, as PyAV's text
    subtitle encoders do not open from `add_stream`."""
    import av

    codec = SUBTITLE_CODEC[suffix]
    stream = vout.add_mux_stream(codec)
    stream.time_base = _MS
    if tag:
        stream.metadata["language"] = tag
    for cue in flatten(cues):
        data = (plain(cue.text) if codec == "mov_text" else re.sub(r"\{\\[^}]*\}", "", cue.text)).encode("utf-8")
        if codec == "mov_text":  # a tx3g sample: 16-bit big-endian length, then the text
            data = len(data[:65535]).to_bytes(2, "big") + data[:65535]
        packet = av.Packet(data)
        packet.pts = packet.dts = round(cue.start * 1000)
        packet.duration = round(cue.end * 1000) - packet.pts
        packet.time_base = _MS
        packet.stream = stream
        vout.mux(packet)


# -- burned into the picture -------------------------------------------------------------

class Burner:
    """Decodes the input's picture, draws the cue showing at each frame and encodes it again."""

    def __init__(self, vin_stream: Any, vout: Any, suffix: str, cues: list[Cue], ctx: ToolContext, label: str):
        self.source, self.vout, self.ctx = vin_stream, vout, ctx
        self.cues = [Cue(c.start, c.end, plain(c.text)) for c in flatten(cues)]
        self.starts = [c.start for c in self.cues]
        cc = vin_stream.codec_context
        self.width, self.height = cc.width, cc.height
        rate = vin_stream.average_rate or vin_stream.guessed_rate or Fraction(25)
        name, options = _encoder(vin_stream, vout, suffix, rate, label)
        self.stream = vout.add_stream(name, rate=rate, options=options)
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.width, self.height, "yuv420p"
        self.stream.time_base = self.stream.codec_context.time_base = vin_stream.time_base  # keep time stamps
        if name not in _QUALITY and (vin_stream.bit_rate or cc.bit_rate):
            self.stream.codec_context.bit_rate = vin_stream.bit_rate or cc.bit_rate
        self.stream.codec_context.thread_type = "AUTO"
        self.size = max(10, round(self.height * 0.05))  # ~5% of the picture's height
        self.font, self.ascii_only = first_font(self.size, _FONTS)
        if self.ascii_only and any(not c.text.isascii() for c in self.cues):
            ctx.note("no system font found (e.g. DejaVu Sans): burned-in text drawn with Pillow's "
                     "ASCII-only font, accents dropped")
        self.frames = 0
        self._band: tuple[str, Any, int] | None = None

    def feed(self, packet: Any) -> None:
        """Decode a packet (the demuxer's last, empty one flushes the decoder) and encode its frames."""
        import av

        for frame in packet.decode():
            self.frames += 1
            if self.frames % 10 == 0:
                self.ctx.check_cancelled()
            text = self._text_at(frame.time)
            if text:
                out = self._draw(frame, text)
            else:
                out = frame if frame.format.name == "yuv420p" else frame.reformat(format="yuv420p")
                out.pict_type = av.video.frame.PictureType.NONE  # the encoder picks its own frame types
            self.vout.mux(self.stream.encode(out))

    def finish(self) -> None:
        self.vout.mux(self.stream.encode(None))

    def _text_at(self, t: float | None) -> str | None:
        i = bisect_right(self.starts, t) - 1 if t is not None else -1
        return self.cues[i].text if i >= 0 and t < self.cues[i].end else None

    def _draw(self, frame: Any, text: str) -> Any:
        import av

        if self._band is None or self._band[0] != text:  # a cue lasts many frames: draw its text once
            self._band = (text, *self._render(text))
        _, band, top = self._band
        img = frame.to_image()
        img.paste(band, (0, top), band)
        out = av.VideoFrame.from_image(img).reformat(format="yuv420p")
        out.pts, out.time_base = frame.pts, frame.time_base
        return out

    def _render(self, text: str) -> tuple[Any, int]:
        """White text with a dark outline, centred near the bottom, wrapped to the picture's width:
        a transparent band image and where its top goes."""
        from PIL import Image, ImageDraw

        if self.ascii_only:  # 'adiós' -> 'adios' rather than a box for the missing letter
            text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
        stroke = max(1, self.size // 8)
        lines = [w for line in text.split("\n") for w in self._wrap(line, self.width * 0.92 - 2 * stroke)]
        ascent, descent = self.font.getmetrics()
        line_h = ascent + descent + stroke
        band = Image.new("RGBA", (self.width, line_h * len(lines) + 2 * stroke), (0, 0, 0, 0))
        draw = ImageDraw.Draw(band)
        for k, line in enumerate(lines):
            x = (self.width - self.font.getlength(line)) / 2
            draw.text((x, stroke + k * line_h), line, font=self.font, fill=(255, 255, 255, 255),
                      stroke_width=stroke, stroke_fill=(0, 0, 0, 255))
        top = max(0, self.height - round(self.height * 0.05) - band.height)
        return band, top

    def _wrap(self, line: str, width: float) -> list[str]:
        out, cur = [], ""
        for word in line.split():
            while self.font.getlength(word) > width and len(word) > 1:  # cut a word wider than the picture
                cut = max(1, next((k for k in range(len(word), 0, -1) if self.font.getlength(word[:k]) <= width), 1))
                if cur:
                    out.append(cur)
                    cur = ""
                out.append(word[:cut])
                word = word[cut:]
            if cur and self.font.getlength(cur + " " + word) > width:
                out.append(cur)
                cur = word
            else:
                cur = f"{cur} {word}" if cur else word
        return [*out, cur] if cur else out


# Pillow's built-in font needs no system font but has ASCII letters only; a common system font
# (accented letters, Cyrillic, Greek) is preferred where one is installed.
_FONTS = ("DejaVuSans.ttf", "NotoSans-Regular.ttf", "LiberationSans-Regular.ttf", "Arial.ttf", "arial.ttf")




# Encoder options for a quality close to the source's; other encoders get the source's bit rate.
_QUALITY = {"libx264": {"crf": "18", "preset": "veryfast"},
            "libx265": {"crf": "20", "preset": "fast", "x265-params": "log-level=error"},
            "libvpx-vp9": {"crf": "30", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}}


def _encoder(vin_stream: Any, vout: Any, suffix: str, rate: Fraction, label: str) -> tuple[str, dict[str, str]]:
    """The input's own codec when PyAV can encode it into this container, else libx264 (libvpx-vp9
    for webm). Each is tried on a scratch encoder first: some reject the size or the time base."""
    import av

    names = ["libvpx-vp9" if suffix == ".webm" else "libx264"]
    try:
        names.insert(0, av.Codec(vin_stream.codec_context.name, "w").name)  # h264 -> libx264
    except ValueError:  # no encoder for it in this build
        pass
    for name in dict.fromkeys(names):
        if name not in vout.supported_codecs:
            continue
        try:
            cc = av.CodecContext.create(name, "w")
            cc.width, cc.height, cc.pix_fmt = vin_stream.codec_context.width, vin_stream.codec_context.height, "yuv420p"
            cc.time_base, cc.framerate = vin_stream.time_base, rate
            cc.options = dict(_QUALITY.get(name, {}))
            cc.open()
        except av.error.FFmpegError:
            continue
        return name, dict(_QUALITY.get(name, {}))
    raise MediaError(f"cannot burn subtitles into {label}: no video encoder for a {suffix} file "
                     f"takes its picture ({vin_stream.codec_context.name})")


# -- the remux loop ------------------------------------------------------------------------

def copy_stream(vout: Any, stream: Any) -> Any:
    """An output stream for an input stream's packets, with its language and title (a template
    copies the codec parameters, not the tags)."""
    out = vout.add_stream_from_template(stream)
    for key in ("language", "title"):
        if stream.metadata.get(key):
            out.metadata[key] = stream.metadata[key]
    return out


def remux(vin: Any, vout: Any, copied: dict[int, Any], ctx: ToolContext, burner: Burner | None = None) -> None:
    """Copy the packets of the input streams in `copied` (input index -> output stream) untouched;
    with a burner, its source stream's packets go through it instead."""
    streams = [vin.streams[i] for i in copied] + ([burner.source] if burner else [])
    for n, packet in enumerate(vin.demux(*streams)):
        if n % 100 == 0:
            ctx.check_cancelled()
        if burner is not None and packet.stream.index == burner.source.index:
            burner.feed(packet)
        elif packet.size:  # empty: the demuxer's flush packet (a real one may lack a dts: B-frames in .mkv)
            packet.stream = copied[packet.stream.index]
            vout.mux(packet)
    if burner is not None:
        burner.finish()
