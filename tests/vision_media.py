"""Test videos for caption_video with known answers: shots of different background colours, each with a
moving shape (circle, square, triangle, bar), on-screen text appearing and going at known times, and an
optional speech track. Used by tests/test_vision_video.py and benchmarks/vision.py.

Frames are rendered with numpy (the background and its text once per text state, the shape pasted at its
place for each frame) and encoded one at a time with PyAV, so a 10-minute 720p clip is written without
holding it in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FONTS = ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "LiberationSans-Bold.ttf", "NotoSans-Bold.ttf")


@dataclass
class Shot:
    seconds: float
    background: tuple[int, int, int]
    shape: str = "circle"  # circle, square, triangle, bar
    colour: tuple[int, int, int] = (250, 250, 250)
    text: str | None = None  # shown in the lower third, dark on a light box
    text_at: float = 0.0  # seconds into the shot when the text appears
    text_for: float | None = None  # seconds it stays (None: to the shot's end)
    later: list[tuple[str, float, float | None]] = field(default_factory=list)  # more (text, at, for), same place

    def captions(self) -> list[tuple[str, float, float | None]]:
        return ([(self.text, self.text_at, self.text_for)] if self.text else []) + list(self.later)


@dataclass
class Clip:
    path: Path
    duration: float
    cuts: list[float]  # the start of every shot after the first (seconds)
    texts: list[tuple[str, float, float]]  # (text, appears, goes) in seconds
    shots: list[Shot] = field(default_factory=list)


# each far from the next in HSV (the last from the first too), so every shot change is a cut at the default
# threshold: red, blue, yellow, purple, green, black, orange, white
PALETTE = [(200, 40, 40), (30, 80, 220), (240, 210, 40), (110, 40, 170), (60, 200, 60), (20, 20, 20),
           (200, 110, 30), (240, 240, 240)]
SHAPES = ("circle", "square", "triangle", "bar")
WORDS = ["WELCOME HOME", "CHAPTER ONE", "THE HARBOUR", "OPEN DAILY", "NIGHT MARKET", "FRESH BREAD",
         "RIVER WALK", "THE END", "NEXT STOP", "OLD TOWN", "GARDEN PARTY", "LAST TRAIN"]


def _font(size: int):
    from PIL import ImageFont

    for name in FONTS:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _sprite(shape: str, size: int, colour) -> tuple[np.ndarray, np.ndarray]:
    """(rgb, mask) of a shape `size` pixels tall."""
    from PIL import Image, ImageDraw

    w = size * 2 if shape == "bar" else size
    mask = Image.new("L", (w, size), 0)
    d = ImageDraw.Draw(mask)
    if shape == "circle":
        d.ellipse((0, 0, size - 1, size - 1), fill=255)
    elif shape == "triangle":
        d.polygon([(size // 2, 0), (size - 1, size - 1), (0, size - 1)], fill=255)
    elif shape == "bar":
        d.rectangle((0, size // 3, w - 1, 2 * size // 3), fill=255)
    else:
        d.rectangle((0, 0, size - 1, size - 1), fill=255)
    m = np.asarray(mask) > 127
    return np.broadcast_to(np.array(colour, np.uint8), (size, w, 3)), m


def _background(shot: Shot, width: int, height: int, text: str | None) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), shot.background)
    if text:
        d = ImageDraw.Draw(img)
        font = _font(max(12, height // 9))
        x0, y0, x1, y1 = d.textbbox((0, 0), text, font=font)
        tw, th = x1 - x0, y1 - y0
        x, y = (width - tw) // 2, int(height * 0.72)
        pad = max(4, th // 3)
        d.rectangle((x - pad, y - pad, x + tw + pad, y + th + pad), fill=(245, 245, 235))
        d.text((x - x0, y - y0), text, font=font, fill=(15, 15, 15))
    return np.asarray(img)


def layout(shots: list[Shot], fps: int = 25) -> tuple[list[float], list[tuple[str, float, float]], float]:
    """(cuts, texts, duration) of `shots` as make_clip places them (on whole frames)."""
    cuts, texts, t0 = [], [], 0
    for i, s in enumerate(shots):
        n = round(s.seconds * fps)
        if i:
            cuts.append(t0 / fps)
        for text, at, span in s.captions():
            a, b = _frames(at, span, n, fps)
            texts.append((text, (t0 + a) / fps, (t0 + b) / fps))
        t0 += n
    return cuts, texts, t0 / fps


def _frames(at: float, span: float | None, n: int, fps: int) -> tuple[int, int]:
    """First and past-last frame of a text shown from `at` for `span` seconds in a shot of `n` frames."""
    a = round(at * fps)
    return a, n if span is None else min(n, a + round(span * fps))


def make_clip(path, shots: list[Shot], width: int = 320, height: int = 180, fps: int = 25,
              speech: Path | None = None, keyint: int = 250, crf: int = 28) -> Clip:
    """Write an H.264 .mp4 of `shots` (with an AAC track of the WAV `speech`, cut or padded with silence
    to the picture's length) and return what is in it."""
    import av

    from media_factory import _push_audio, to_int16

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cuts, texts, duration = layout(shots, fps)
    size = height // 4
    step = max(1, width // 320)  # pixels a frame the shape moves
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={
            "preset": "ultrafast", "crf": str(crf), "x264-params": f"keyint={keyint}:min-keyint={min(keyint, 25)}"})
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=22050, layout="mono") if speech is not None else None
        i = 0
        for s in shots:
            n = round(s.seconds * fps)
            shown = [(text, *_frames(at, span, n, fps)) for text, at, span in s.captions()]
            backgrounds = {text: _background(s, width, height, text) for text in [None] + [x[0] for x in shown]}
            rgb, mask = _sprite(s.shape, size, s.colour)
            for k in range(n):
                text = next((x for x, a, b in shown if a <= k < b), None)
                img = backgrounds[text].copy()
                span = width - rgb.shape[1]
                x = (k * step) % (2 * span)
                x = x if x < span else 2 * span - x  # back and forth
                y = height // 8
                region = img[y:y + size, x:x + rgb.shape[1]]
                region[mask] = rgb[mask]
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = i
                i += 1
                out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        if audio is not None:
            samples = _read_wav(speech, 22050)
            want = int(round(duration * 22050))
            samples = np.pad(samples, (0, max(0, want - len(samples))))[:want]
            _push_audio(out, audio, to_int16(samples), 22050, "mono")
    return Clip(path=path, duration=duration, cuts=cuts, texts=texts, shots=list(shots))


def make_panning_clip(path, text: str, seconds: float = 4.0, width: int = 320, height: int = 180,
                      fps: int = 25) -> Path:
    """An H.264 .mp4 of smooth stripes panning a pixel a frame behind a fixed title box: one frame to the
    next changes little (no cut), but half a second on the stripes have moved all over the picture."""
    import av
    from PIL import Image, ImageDraw

    path = Path(path)
    x = np.arange(width)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "23"})
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        for i in range(round(seconds * fps)):
            wave = (110 + 60 * np.sin(2 * np.pi * (x + i) / 80)).astype(np.uint8)
            stripes = np.stack([wave, wave // 2 + 40, 255 - wave], -1)[None].repeat(height, 0)
            img = Image.fromarray(np.ascontiguousarray(stripes))
            d = ImageDraw.Draw(img)
            d.rectangle((width // 5, int(height * 0.67), width - width // 5, int(height * 0.89)), fill=(245, 245, 235))
            d.text((width // 5 + 15, int(height * 0.71)), text, font=_font(max(12, height // 9)), fill=(15, 15, 15))
            frame = av.VideoFrame.from_ndarray(np.asarray(img), format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return path


def _read_wav(path: Path, rate: int) -> np.ndarray:
    import wave

    with wave.open(str(path), "rb") as w:
        r, ch, n = w.getframerate(), w.getnchannels(), w.getnframes()
        x = np.frombuffer(w.readframes(n), "<i2").astype(np.float64) / 32768
    x = x.reshape(-1, ch).mean(axis=1)
    if r != rate:
        m = int(round(len(x) * rate / r))
        x = np.interp(np.arange(m) * (r / rate), np.arange(len(x)), x)
    return x


def standard_shots(seconds: float, shot_seconds: tuple[float, ...] = (3.0, 4.0, 2.5, 5.0, 3.5),
                   text_every: int = 1) -> list[Shot]:
    """Shots cycling through PALETTE and SHAPES with lengths cycling through `shot_seconds`, until `seconds`;
    every `text_every`-th shot shows one of WORDS from 0.8 s into it for most of the shot."""
    shots, t, i = [], 0.0, 0
    while t < seconds - 1e-9:
        length = min(shot_seconds[i % len(shot_seconds)], seconds - t)
        if seconds - t - length < 1.0:  # no scene shorter than a second at the end
            length = seconds - t
        text = WORDS[(i // text_every) % len(WORDS)] if i % text_every == 0 and length >= 2.0 else None
        bg = PALETTE[i % len(PALETTE)]
        fg = (20, 20, 20) if sum(bg) > 450 else (250, 250, 250)
        shots.append(Shot(length, bg, SHAPES[i % len(SHAPES)], fg, text, text_at=0.8,
                          text_for=max(1.0, length - 1.6)))
        t += length
        i += 1
    return shots
