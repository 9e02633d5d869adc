"""Colour: brightness, contrast, saturation, exposure, warmth, grayscale, sepia, auto contrast.

All are lookup tables or one OpenCV call on the whole array (a few ms on a 1024 px photo); Pillow's
ImageEnhance does the same work several times slower. Amounts follow Pillow's meaning: the factor is
1 + amount (0.2: 20% more, -1: none).
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image as PILImage
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .registry import operation
from .util import downscale, to_array, to_image


class _Amount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: float = Field(ge=-1.0, le=1.0, description="0.2: 20% more; -0.2: 20% less")

    @field_validator("amount")
    @classmethod
    def _nonzero(cls, v: float) -> float:
        if abs(v) < 1e-3:
            raise ValueError("an amount of 0 changes nothing")
        return v


class BrightnessParams(_Amount):
    pass


class ContrastParams(_Amount):
    pass


class SaturationParams(_Amount):
    amount: float = Field(ge=-1.0, le=1.0, description="0.3: 30% more vivid; -1: no colour at all")


class WarmthParams(_Amount):
    amount: float = Field(ge=-1.0, le=1.0, description="positive: warmer (more red/yellow); negative: cooler (bluer)")


def _lut(arr: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Apply a 256-entry table (one for all channels, or (256, 3) one per channel)."""
    table = np.clip(np.rint(table), 0, 255).astype(np.uint8)
    if table.ndim == 2:
        table = table.reshape(1, 256, 3)
    return cv2.LUT(arr, table)


_LEVELS = np.arange(256, dtype=np.float32)


@operation("brightness", BrightnessParams, "color", "brighter (amount > 0) or darker (amount < 0)")
def brightness(image: PILImage.Image, amount: float) -> PILImage.Image:
    return to_image(_lut(to_array(image), _LEVELS * (1 + amount)))


def _gray(arr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)


@operation("contrast", ContrastParams, "color", "more (amount > 0) or less (amount < 0) contrast around the mean")
def contrast(image: PILImage.Image, amount: float) -> PILImage.Image:
    arr = to_array(image)
    mean = float(_gray(downscale(arr, 256)).mean())  # the mean of a small copy is the same to a level
    return to_image(_lut(arr, mean + (_LEVELS - mean) * (1 + amount)))


@operation("saturation", SaturationParams, "color", "more vivid (amount > 0) or muted (amount < 0) colours")
def saturation(image: PILImage.Image, amount: float) -> PILImage.Image:
    arr = to_array(image)
    gray = cv2.cvtColor(_gray(arr), cv2.COLOR_GRAY2RGB)
    return to_image(cv2.addWeighted(arr, 1 + amount, gray, -amount, 0))  # saturates at 0 and 255


class ExposureParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stops: float = Field(ge=-4.0, le=4.0, description="photographic stops: +1 doubles the light, -1 halves it")

    @field_validator("stops")
    @classmethod
    def _nonzero(cls, v: float) -> float:
        if abs(v) < 1e-3:
            raise ValueError("0 stops changes nothing")
        return v


def _to_linear(v: np.ndarray) -> np.ndarray:
    v = v / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _to_srgb(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0.0, 1.0)
    return 255.0 * np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


@operation("exposure", ExposureParams, "color", "more or less light in photographic stops (in linear light, like a camera)")
def exposure(image: PILImage.Image, stops: float) -> PILImage.Image:
    return to_image(_lut(to_array(image), _to_srgb(_to_linear(_LEVELS) * 2.0 ** stops)))


@operation("warmth", WarmthParams, "color", "warmer (amount > 0: more red/yellow) or cooler (amount < 0: bluer)")
def warmth(image: PILImage.Image, amount: float) -> PILImage.Image:
    a = 0.25 * amount  # amount 1: red up 25%, blue down 25%
    table = np.stack([_LEVELS * (1 + a), _LEVELS * (1 + 0.3 * a), _LEVELS * (1 - a)], axis=1)
    return to_image(_lut(to_array(image), table))


class _Strength(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: float = Field(1.0, ge=0.05, le=1.0, description="1: fully; 0.5: half-way between the original and the effect")


class GrayscaleParams(_Strength):
    pass


class SepiaParams(_Strength):
    pass


@operation("grayscale", GrayscaleParams, "color", "black and white (amount < 1: partly)")
def grayscale(image: PILImage.Image, amount: float) -> PILImage.Image:
    arr = to_array(image)
    gray = cv2.cvtColor(_gray(arr), cv2.COLOR_GRAY2RGB)
    return to_image(gray if amount >= 1 else cv2.addWeighted(gray, amount, arr, 1 - amount, 0))


_SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32)


@operation("sepia", SepiaParams, "color", "old-photo brown tone (amount < 1: partly)")
def sepia(image: PILImage.Image, amount: float) -> PILImage.Image:
    arr = to_array(image)
    toned = cv2.transform(arr, _SEPIA)  # saturating: bright areas go cream, not wrapped
    return to_image(toned if amount >= 1 else cv2.addWeighted(toned, amount, arr, 1 - amount, 0))


class AutoContrastParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cutoff: float = Field(1.0, ge=0.0, le=10.0, description="percent of the darkest and brightest pixels to clip")


@operation("auto_contrast", AutoContrastParams, "color",
           "stretch the levels so the darkest pixels are black and the brightest white (keeps hues)")
def auto_contrast(image: PILImage.Image, cutoff: float) -> PILImage.Image:
    arr = to_array(image)
    lo, hi = np.percentile(_gray(downscale(arr, 512)), [cutoff, 100 - cutoff])
    if hi - lo < 2:  # a flat picture: stretching would only amplify noise
        return image.copy()
    return to_image(_lut(arr, (_LEVELS - lo) * (255.0 / (hi - lo))))
