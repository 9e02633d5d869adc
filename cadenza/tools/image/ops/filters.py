"""Filters: blur, sharpen, denoise, vignette.

Sizes scale with the picture (a blur of 'strength 1' looks the same on a thumbnail and on a 4K photo);
`radius` in pixels overrides when someone says "blur by 5 px".
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image as PILImage
from pydantic import BaseModel, ConfigDict, Field

from .registry import operation
from .util import fast_blur, short_side, to_array, to_image


class BlurParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strength: float = Field(1.0, ge=0.1, le=10.0, description="1: a clear blur (0.6% of the shorter side); 0.5 light, 3 strong")
    radius: float | None = Field(None, ge=0.3, le=300.0, description="Gaussian radius (sigma) in pixels, instead of strength")


@operation("blur", BlurParams, "filter", "Gaussian blur of the whole picture")
def blur(image: PILImage.Image, strength: float, radius: float | None) -> PILImage.Image:
    sigma = radius if radius is not None else 0.006 * short_side(image) * strength
    return to_image(fast_blur(to_array(image), max(0.3, sigma)))


class SharpenParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: float = Field(1.0, ge=0.1, le=5.0, description="how much edge contrast to add: 0.5 subtle, 1 clear, 2 strong")
    radius: float | None = Field(None, ge=0.3, le=20.0, description="detail size in pixels (default: 1 px per 500 px of the shorter side)")


@operation("sharpen", SharpenParams, "filter", "unsharp mask: crisper edges and detail")
def sharpen(image: PILImage.Image, amount: float, radius: float | None) -> PILImage.Image:
    arr = to_array(image)
    sigma = radius if radius is not None else max(1.0, short_side(image) / 500)
    return to_image(cv2.addWeighted(arr, 1 + amount, cv2.GaussianBlur(arr, (0, 0), sigma), -amount, 0))


class DenoiseParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strength: float = Field(1.0, ge=0.2, le=4.0, description="1: ordinary camera noise; 2-4: heavy grain (loses fine detail)")


@operation("denoise", DenoiseParams, "filter", "remove noise and grain, keeping edges")
def denoise(image: PILImage.Image, strength: float) -> PILImage.Image:
    # Non-local means on the brightness channel only (the full colour version takes a second on 1024 px):
    # the eye sees detail in brightness; colour noise is smoothed on a half-size copy, where it is cheap.
    ycc = cv2.cvtColor(to_array(image), cv2.COLOR_RGB2YCrCb)
    # a 5x5 search window: 80 ms of CPU on 1024 px (7x7 costs twice that for a slightly cleaner result)
    y = cv2.fastNlMeansDenoising(np.ascontiguousarray(ycc[..., 0]), None, h=6.0 * strength,
                                 templateWindowSize=5, searchWindowSize=5)
    h, w = y.shape
    chroma = cv2.resize(ycc[..., 1:], (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    chroma = cv2.resize(cv2.GaussianBlur(chroma, (0, 0), 1.0 + strength), (w, h), interpolation=cv2.INTER_LINEAR)
    return to_image(cv2.cvtColor(np.dstack([y, chroma]), cv2.COLOR_YCrCb2RGB))


class VignetteParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: float = Field(0.5, ge=0.05, le=1.0, description="how dark the corners get: 0.3 subtle, 0.5 clear, 1 black")


def vignette_mask(size: tuple[int, int], amount: float) -> np.ndarray:
    """float32 (h, w): 1 in the middle, 1 - amount in the corners, a smooth ellipse between."""
    w, h = size
    sw, sh = max(2, w // 8), max(2, h // 8)  # smooth: compute small, scale up
    y, x = np.ogrid[-1:1:sh * 1j, -1:1:sw * 1j]
    r = np.sqrt(x * x + y * y) / np.sqrt(2.0)  # 0 centre, 1 corners
    t = np.clip((r - 0.3) / 0.7, 0.0, 1.0)
    small = (1.0 - amount * t * t * (3 - 2 * t)).astype(np.float32)  # smoothstep falloff
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@operation("vignette", VignetteParams, "filter", "darken the corners and edges softly")
def vignette(image: PILImage.Image, amount: float) -> PILImage.Image:
    arr = to_array(image)
    mask = vignette_mask(image.size, amount)
    return to_image(np.clip(arr * mask[..., None] + 0.5, 0, 255).astype(np.uint8))
