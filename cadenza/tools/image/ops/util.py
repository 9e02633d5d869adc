"""Helpers the operations share: numpy <-> Pillow, alpha, colours, positions, fonts, faces, fast blur.

Arrays are RGB uint8 (never BGR): every OpenCV call that cares about channel order is given the RGB flag.
"""

from __future__ import annotations

import functools
from typing import Any, Literal, get_args

import cv2
import numpy as np
from PIL import Image as PILImage, ImageColor

from ...fonts import first_font

Position = Literal["top-left", "top", "top-right", "left", "center", "right", "bottom-left", "bottom", "bottom-right"]
POSITIONS: tuple[str, ...] = get_args(Position)


def to_array(image: PILImage.Image) -> np.ndarray:
    """RGB (or RGBA) uint8, C-contiguous: what OpenCV wants."""
    return np.ascontiguousarray(np.asarray(image))


def to_image(arr: np.ndarray) -> PILImage.Image:
    return PILImage.fromarray(np.ascontiguousarray(arr))


def split_alpha(image: PILImage.Image) -> tuple[PILImage.Image, PILImage.Image | None]:
    if image.mode == "RGBA":
        return image.convert("RGB"), image.getchannel("A")
    return (image if image.mode == "RGB" else image.convert("RGB")), None


def with_alpha(rgb: PILImage.Image, alpha: PILImage.Image | None) -> PILImage.Image:
    if alpha is None:
        return rgb
    out = rgb.convert("RGBA")
    out.putalpha(alpha)
    return out


def short_side(image: PILImage.Image) -> int:
    return min(image.size)


# Words people use for colours that CSS spells as one word or not at all.
COLOR_ALIASES = {"grey": "gray", "light grey": "lightgray", "dark grey": "darkgray", "off white": "whitesmoke",
                  "off-white": "whitesmoke", "sky blue": "skyblue", "navy blue": "navy", "light blue": "lightblue",
                  "dark blue": "darkblue", "light green": "lightgreen", "dark green": "darkgreen",
                  "dark red": "darkred", "light pink": "lightpink", "hot pink": "hotpink", "light gray": "lightgray",
                  "dark gray": "darkgray", "transparent": "transparent"}


def parse_color(value: str) -> tuple[int, int, int]:
    """A colour name (CSS names, 'light blue', 'grey') or '#rrggbb'/'#rgb' -> (r, g, b); ValueError if unknown."""
    text = " ".join(str(value).strip().lower().split())
    text = COLOR_ALIASES.get(text, text)
    if text == "transparent":
        raise ValueError("'transparent' is not a colour here: use remove_background for a transparent background")
    try:
        rgb = ImageColor.getrgb(text.replace(" ", ""))
    except ValueError:
        raise ValueError(f"unknown colour {value!r} (use a colour name such as 'white' or a hex code such as '#ff8800')") from None
    return tuple(int(c) for c in rgb[:3])  # type: ignore[return-value]


def check_color(value: str) -> str:
    """Pydantic validator body: the colour as given, once known to parse."""
    parse_color(value)
    return value


def place(position: str, size: tuple[int, int], frame: tuple[int, int], margin: int) -> tuple[int, int]:
    """Top-left corner of a box of `size` put at `position` inside `frame`, `margin` pixels from the edges."""
    (w, h), (fw, fh) = size, frame
    x = {"left": margin, "right": fw - w - margin}.get(_horizontal(position), (fw - w) // 2)
    y = {"top": margin, "bottom": fh - h - margin}.get(_vertical(position), (fh - h) // 2)
    return int(x), int(y)


def _horizontal(position: str) -> str:
    return "left" if "left" in position else "right" if "right" in position else "center"


def _vertical(position: str) -> str:
    return "top" if "top" in position else "bottom" if "bottom" in position else "center"


# Pillow's built-in font needs no system font but has ASCII letters only; a common system font
# (accents, Cyrillic, Greek) is preferred where one is installed (tools/fonts.py).
_FONTS = ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "NotoSans-Bold.ttf", "NotoSans-Regular.ttf",
          "LiberationSans-Bold.ttf", "LiberationSans-Regular.ttf", "Arial Bold.ttf", "arialbd.ttf", "Arial.ttf",
          "arial.ttf")


def load_font(size: int) -> tuple[Any, bool]:
    """(font, whether it is Pillow's ASCII-only default): bold preferred, for text over a picture."""
    return first_font(size, _FONTS)


@functools.lru_cache(maxsize=1)
def _face_cascade() -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    if cascade.empty():  # a broken OpenCV install: better an error than "no face" on every photo
        raise RuntimeError("OpenCV's face model (haarcascade_frontalface_default.xml) could not be loaded")
    return cascade


def detect_faces(rgb: np.ndarray, max_side: int = 400) -> list[tuple[int, int, int, int]]:
    """Frontal faces as (x, y, w, h) in the array's pixels, largest first. The Haar cascade runs on a copy
    at most `max_side` pixels long (20-30 ms instead of 200); faces under 6% of that side are missed."""
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    gray = cv2.cvtColor(rgb[..., :3], cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    found = _face_cascade().detectMultiScale(gray, scaleFactor=1.15, minNeighbors=5, minSize=(24, 24))
    boxes = [tuple(int(round(v / scale)) for v in box) for box in (found if len(found) else [])]
    return sorted(boxes, key=lambda b: -b[2] * b[3])  # type: ignore[return-value]


def fast_blur(arr: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of `sigma` pixels. Past a few pixels the blur is done on a reduced copy and scaled back:
    the result is smooth anyway, and a 20 px blur costs 3 ms instead of 100."""
    if sigma <= 0:
        return arr
    if sigma <= 6:
        return cv2.GaussianBlur(arr, (0, 0), sigma)
    h, w = arr.shape[:2]
    f = sigma / 3.0
    small = cv2.resize(arr, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 3.0)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def downscale(arr: np.ndarray, max_side: int) -> np.ndarray:
    h, w = arr.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return arr
    return cv2.resize(arr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def resize_to(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """To (width, height): area averaging down, bicubic up."""
    h, w = arr.shape[:2]
    if (w, h) == tuple(size):
        return arr
    interp = cv2.INTER_AREA if size[0] * size[1] < w * h else cv2.INTER_CUBIC
    return cv2.resize(arr, size, interpolation=interp)


def blend(a: np.ndarray, b: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """a where alpha is 1, b where 0; alpha float32 (h, w) in 0..1."""
    out = b.astype(np.float32)
    out += (a.astype(np.float32) - out) * alpha[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
