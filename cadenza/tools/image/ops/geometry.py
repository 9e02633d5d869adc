"""Geometry: resize, crop (a box, an aspect ratio such as 'square' or '16:9', centred on the face), rotate, flip.

These work on RGB and RGBA alike (alpha moves with the pixels). They are the only operations that change
the image's size or framing, so a mask given for the edit no longer applies after one of them.
"""

from __future__ import annotations

import math
import re
from typing import Callable, Literal

import cv2
from PIL import Image as PILImage, ImageOps
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ....errors import InputError
from .registry import operation
from .util import check_color, detect_faces, parse_color, resize_to, to_array, to_image

MAX_PIXELS = 100_000_000  # an output larger than this is a typo, not a wish (and gigabytes of memory)


class ResizeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int | None = Field(None, ge=1, le=16384, description="width in pixels; alone: height follows the aspect")
    height: int | None = Field(None, ge=1, le=16384, description="height in pixels; alone: width follows the aspect")
    long_side: int | None = Field(None, ge=1, le=16384, description="the longer side in pixels, the aspect kept ('resize to 800 px')")
    scale: float | None = Field(None, ge=0.01, le=8.0, description="factor for both sides (0.5 halves)")
    fit: Literal["crop", "pad", "stretch"] = Field(
        "crop", description="when width and height are both given and the aspect differs: 'crop' fills the size and "
                            "cuts the overflow (centred), 'pad' shows all with bars, 'stretch' distorts")

    @model_validator(mode="after")
    def _one(self) -> "ResizeParams":
        given = [self.width is not None or self.height is not None, self.long_side is not None, self.scale is not None]
        if sum(given) != 1:
            raise ValueError("give width and/or height, or long_side, or scale (one of them)")
        return self


@operation("resize", ResizeParams, "geometry",
           "scale to a width and/or height, a longer side in pixels, or by a factor; one side alone keeps the aspect ratio")
def resize(image: PILImage.Image, width: int | None, height: int | None, long_side: int | None,
           scale: float | None, fit: str) -> PILImage.Image:
    w, h = image.size
    if long_side:
        scale = long_side / max(w, h)
    if width and height:
        if width * height > MAX_PIXELS:
            raise InputError(f"resize: {width}x{height} is over the limit of {MAX_PIXELS // 1_000_000} megapixels")
        if fit != "stretch" and abs(width / height - w / h) > 0.01:
            return _fit(image, (width, height), fit)
        size = (width, height)
    elif width:
        size = (width, max(1, round(h * width / w)))
    elif height:
        size = (max(1, round(w * height / h)), height)
    else:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))  # type: ignore[operator]
    if size[0] * size[1] > MAX_PIXELS:
        raise InputError(f"resize: {size[0]}x{size[1]} is over the limit of {MAX_PIXELS // 1_000_000} megapixels")
    return to_image(resize_to(to_array(image), size))


def _fit(image: PILImage.Image, size: tuple[int, int], fit: str) -> PILImage.Image:
    """To exactly `size` without distortion: cover and cut (crop) or contain and add bars (pad)."""
    w, h = image.size
    k = (max if fit == "crop" else min)(size[0] / w, size[1] / h)
    inner = (max(1, round(w * k)), max(1, round(h * k)))
    scaled = to_image(resize_to(to_array(image), inner))
    if fit == "crop":
        x, y = (inner[0] - size[0]) // 2, (inner[1] - size[1]) // 2
        return scaled.crop((x, y, x + size[0], y + size[1]))
    canvas = PILImage.new(image.mode, size, (0, 0, 0, 0) if image.mode == "RGBA" else (0, 0, 0))
    canvas.paste(scaled, ((size[0] - inner[0]) // 2, (size[1] - inner[1]) // 2))
    return canvas


_ASPECT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[:x/]\s*(\d+(?:\.\d+)?)\s*$")


def aspect_ratio(text: str) -> float:
    """'square' -> 1, '16:9' -> 1.78, '4x5' -> 0.8, '1.5' -> 1.5 (width / height)."""
    t = text.strip().lower()
    if t in ("square", "1:1"):
        return 1.0
    m = _ASPECT.match(t)
    try:
        ratio = float(m.group(1)) / float(m.group(2)) if m else float(t)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"aspect {text!r} is not 'square', 'W:H' or a number") from None
    if not 0.05 <= ratio <= 20:
        raise ValueError(f"aspect {text!r} is out of range (1:20 .. 20:1)")
    return ratio


class CropParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    aspect: str | None = Field(None, max_length=16, description="'square', 'W:H' such as '16:9', '4:5', '9:16'; the largest such box is kept")
    box: list[float] | None = Field(None, min_length=4, max_length=4,
                                    description="[left, top, right, bottom] as fractions 0..1 of the width and height")
    anchor: Literal["center", "face", "top", "bottom", "left", "right"] = Field(
        "center", description="where the kept box sits; 'face': centred on the largest face (head and shoulders when no aspect is given)")
    zoom: float = Field(1.0, ge=1.0, le=10.0, description="keep 1/zoom of the box's width and height")
    margin: float = Field(0.0, ge=0.0, le=0.45, description="trim this fraction of the width/height off each side")
    margin_px: int | None = Field(None, ge=1, le=10000, description="trim this many pixels off each side, instead of margin")

    @field_validator("aspect")
    @classmethod
    def _aspect(cls, v: str | None) -> str | None:
        if v is not None:
            aspect_ratio(v)
        return v

    @field_validator("box")
    @classmethod
    def _box(cls, v: list[float] | None) -> list[float] | None:
        if v is not None:
            left, top, right, bottom = v
            if not (0 <= left < right <= 1 and 0 <= top < bottom <= 1):
                raise ValueError("box must be [left, top, right, bottom] with 0 <= left < right <= 1 and 0 <= top < bottom <= 1")
        return v

    @model_validator(mode="after")
    def _something(self) -> "CropParams":
        if self.aspect is None and self.box is None and self.margin == 0 and self.margin_px is None and self.zoom == 1 \
                and self.anchor != "face":
            raise ValueError("say how to crop: aspect, box, margin, zoom or anchor 'face'")
        return self


@operation("crop", CropParams, "geometry",
           "cut to a box, an aspect ratio ('square', '16:9'), a margin or a zoom; anchor 'face' centres on the face",
           needs=("note",))
def crop(image: PILImage.Image, aspect: str | None, box: list[float] | None, anchor: str, zoom: float,
         margin: float, margin_px: int | None, note: Callable[[str], None]) -> PILImage.Image:
    w, h = image.size
    left, top, right, bottom = (box[0] * w, box[1] * h, box[2] * w, box[3] * h) if box else (0.0, 0.0, float(w), float(h))
    mx, my = (margin_px, margin_px) if margin_px else (margin * (right - left), margin * (bottom - top))
    if 2 * mx >= right - left or 2 * my >= bottom - top:
        raise InputError(f"crop: a margin of {round(mx)} px leaves nothing of a {w}x{h} picture")
    left, right, top, bottom = left + mx, right - mx, top + my, bottom - my
    rw, rh = right - left, bottom - top
    face = None
    if anchor == "face":
        faces = detect_faces(to_array(image.convert("RGB")))
        # the largest face inside the region; its centre is where the crop goes
        face = next((f for f in faces if left <= f[0] + f[2] / 2 <= right and top <= f[1] + f[3] / 2 <= bottom), None)
        if face is None:
            note("crop: no face found: the crop is centred on the image instead")
    ratio = aspect_ratio(aspect) if aspect else rw / rh
    cw, ch = (rw, rw / ratio) if rw / rh <= ratio else (rh * ratio, rh)
    if face is not None and aspect is None and zoom == 1:
        ch = min(ch, 3.0 * face[3])  # head and shoulders (the cascade's box is about the face), the picture's aspect
        cw = ch * ratio
        if cw >= rw - 1 and ch >= rh - 1:
            note("crop: the face already fills the picture: nothing cut")
    cw, ch = max(1.0, cw / zoom), max(1.0, ch / zoom)
    if face is not None:
        cx, cy = face[0] + face[2] / 2, face[1] + face[3] / 2 + 0.1 * ch  # face a little above the middle
    else:
        cx = {"left": left + cw / 2, "right": right - cw / 2}.get(anchor, (left + right) / 2)
        cy = {"top": top + ch / 2, "bottom": bottom - ch / 2}.get(anchor, (top + bottom) / 2)
    x0 = min(max(cx - cw / 2, left), right - cw)  # slid back inside the region
    y0 = min(max(cy - ch / 2, top), bottom - ch)
    x0i, y0i = int(round(x0)), int(round(y0))
    return image.crop((x0i, y0i, max(x0i + 1, int(round(x0 + cw))), max(y0i + 1, int(round(y0 + ch)))))


class RotateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    degrees: float = Field(ge=-360, le=360, description="clockwise; negative turns counter-clockwise")
    expand: bool = Field(False, description="other angles than 90/180/270: grow the canvas to show the whole "
                                            "picture (corners filled) instead of zooming in to keep the size")
    fill: str = Field("black", max_length=32, description="the corners' colour when expand is true (RGBA: transparent)")

    @field_validator("fill")
    @classmethod
    def _fill(cls, v: str) -> str:
        return check_color(v)

    @model_validator(mode="after")
    def _turns(self) -> "RotateParams":
        if abs(self.degrees) % 360 < 1e-6:
            raise ValueError("rotating by 0 or 360 degrees changes nothing")
        return self


@operation("rotate", RotateParams, "geometry",
           "rotate clockwise by degrees; 90/180/270 exactly, other angles zoom in to keep the size unless expand")
def rotate(image: PILImage.Image, degrees: float, expand: bool, fill: str) -> PILImage.Image:
    turn = degrees % 360
    exact = {90: PILImage.Transpose.ROTATE_270, 180: PILImage.Transpose.ROTATE_180, 270: PILImage.Transpose.ROTATE_90}
    for angle, transpose in exact.items():
        if abs(turn - angle) < 1e-6:
            return image.transpose(transpose)  # lossless, and fast
    if expand:
        color = (0, 0, 0, 0) if image.mode == "RGBA" else parse_color(fill)
        return image.rotate(-degrees, resample=PILImage.Resampling.BICUBIC, expand=True, fillcolor=color)
    # zoom just enough that the rotated picture covers the whole frame: no empty corners, same size
    w, h = image.size
    theta = math.radians(turn)
    c, s = abs(math.cos(theta)), abs(math.sin(theta))
    fit = min(w / (w * c + h * s), h / (w * s + h * c))
    matrix = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), -degrees, 1.0 / fit)
    arr = cv2.warpAffine(to_array(image), matrix, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return to_image(arr)


class FlipParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    direction: Literal["horizontal", "vertical"] = Field("horizontal", description="horizontal: mirror left-right")


@operation("flip", FlipParams, "geometry", "mirror left-right (horizontal) or upside down (vertical)")
def flip(image: PILImage.Image, direction: str) -> PILImage.Image:
    return ImageOps.mirror(image) if direction == "horizontal" else ImageOps.flip(image)
