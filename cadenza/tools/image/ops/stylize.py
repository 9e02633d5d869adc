"""Styles: cartoon, pencil sketch, oil painting, watercolour.

The smoothing these need (bilateral, edge-preserving filters) costs 5-10x more per pixel than a blur, so it
runs on a copy at most 512 px wide and is scaled back; edges and lines are drawn at full size, where they
must stay sharp. Everything is deterministic: the same picture gives the same result.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
from PIL import Image as PILImage
from pydantic import BaseModel, ConfigDict, Field

from .registry import operation
from .util import downscale, short_side, to_array, to_image

WORK_SIDE = 512  # the smoothing's working size (long side)


def _odd(n: float) -> int:
    n = max(3, int(round(n)))
    return n if n % 2 else n + 1


class CartoonParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    levels: int = Field(8, ge=2, le=32, description="colour levels per channel: fewer is flatter")
    edges: float = Field(1.0, ge=0.0, le=3.0, description="outline thickness: 0 none, 1 normal, 2 bold")


@operation("cartoon", CartoonParams, "stylize", "flat colours with dark outlines, like a comic")
def cartoon(image: PILImage.Image, levels: int, edges: float) -> PILImage.Image:
    arr = to_array(image)
    h, w = arr.shape[:2]
    small = downscale(arr, WORK_SIDE)
    for _ in range(3):  # repeated small bilateral passes flatten regions better than one big one
        small = cv2.bilateralFilter(small, 7, 50, 7)
    smooth = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    step = 256.0 / levels
    table = np.clip((np.floor(np.arange(256) / step) + 0.5) * step, 0, 255).astype(np.uint8)
    flat = cv2.LUT(smooth, table)
    if edges <= 0:
        return to_image(flat)
    gray = cv2.medianBlur(cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY), 7)
    block = _odd(short_side(image) / 80)
    lines = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block, 4)
    if edges > 1:
        lines = cv2.erode(lines, np.ones((2, 2), np.uint8), iterations=int(round(edges - 1)) or 1)
    elif edges < 1:  # thinner: keep only the strongest lines
        lines = cv2.morphologyEx(lines, cv2.MORPH_CLOSE, np.ones((2, 2), np.uint8))
    return to_image(cv2.bitwise_and(flat, flat, mask=lines))


class SketchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    color: bool = Field(False, description="keep the colours (coloured pencil) instead of graphite grey")
    strength: float = Field(1.0, ge=0.3, le=3.0, description="stroke width and darkness: 0.5 fine, 2 heavy")


@operation("sketch", SketchParams, "stylize", "pencil sketch (graphite, or coloured pencil with color=true)")
def sketch(image: PILImage.Image, color: bool, strength: float) -> PILImage.Image:
    arr = to_array(image)
    gray = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
    # colour dodge of the picture by its blurred negative: flat areas go white, edges leave pencil lines
    inverted_blur = cv2.GaussianBlur(255 - gray, (0, 0), max(1.0, short_side(image) * 0.008 * strength))
    lines = cv2.divide(gray, 255 - inverted_blur, scale=256)
    # the dodge alone gives faint grey strokes: a curve darkens them, the white paper stays white
    lines = cv2.LUT(lines, (255.0 * (np.arange(256) / 255.0) ** (2.2 * strength)).astype(np.uint8))
    if color:
        return to_image(cv2.multiply(arr, cv2.cvtColor(lines, cv2.COLOR_GRAY2RGB), scale=1 / 255))
    return to_image(cv2.cvtColor(lines, cv2.COLOR_GRAY2RGB))


class OilParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    brush: float = Field(1.0, ge=0.5, le=3.0, description="brush size: 0.5 fine, 1 normal, 2 broad strokes")


def _relief(gray: np.ndarray, depth: float) -> np.ndarray:
    """Light from the top left over the paint's brightness: a factor around 1 that gives strokes relief."""
    g = gray.astype(np.float32)
    dx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    dy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    return 1.0 - depth * np.tanh((dx + dy) / 255.0)


@operation("oil", OilParams, "stylize", "oil painting: smoothed colour patches with visible brush relief")
def oil(image: PILImage.Image, brush: float) -> PILImage.Image:
    arr = to_array(image)
    h, w = arr.shape[:2]
    side = int(WORK_SIDE / brush)  # broader brush: paint on a smaller canvas
    small = downscale(arr, side)
    small = cv2.edgePreservingFilter(small, flags=cv2.RECURS_FILTER, sigma_s=30, sigma_r=0.45)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    small = cv2.morphologyEx(cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel), cv2.MORPH_OPEN, kernel)  # dabs
    small = cv2.medianBlur(small, 3)
    paint = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    texture = _relief(cv2.GaussianBlur(_canvas(w, h), (0, 0), 1.2 * brush), 0.10)
    shade = _relief(cv2.cvtColor(paint, cv2.COLOR_RGB2GRAY), 0.25) * texture
    return to_image(np.clip(paint * shade[..., None], 0, 255).astype(np.uint8))


@functools.lru_cache(maxsize=4)
def _canvas(w: int, h: int) -> np.ndarray:
    """A fixed random grain (the same every call: results are reproducible)."""
    rng = np.random.default_rng(1234)
    return rng.integers(0, 256, (h, w), dtype=np.uint8)


class WatercolorParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strength: float = Field(1.0, ge=0.3, le=2.0, description="how washed and soft: 0.5 light, 1 normal, 2 loose")


@operation("watercolor", WatercolorParams, "stylize", "watercolour: soft washes, pale paper, darker pigment edges")
def watercolor(image: PILImage.Image, strength: float) -> PILImage.Image:
    arr = to_array(image)
    h, w = arr.shape[:2]
    small = downscale(arr, int(WORK_SIDE * 0.75 / strength))
    small = cv2.edgePreservingFilter(small, flags=cv2.RECURS_FILTER, sigma_s=40, sigma_r=0.5)
    small = cv2.edgePreservingFilter(small, flags=cv2.RECURS_FILTER, sigma_s=20, sigma_r=0.3)
    wash = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    # pigment gathers at the borders of each wash: darken where the wash's colour changes
    gray = cv2.cvtColor(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), cv2.COLOR_RGB2GRAY)
    edge = cv2.GaussianBlur(np.abs(cv2.Laplacian(gray, cv2.CV_32F, ksize=3)), (0, 0), 1.0)
    edge = np.clip(edge / 40.0, 0.0, 1.0)
    paper = 1.0 + 0.05 * (cv2.GaussianBlur(_canvas(w, h), (0, 0), 2.0).astype(np.float32) - 128.0) / 128.0
    pale = 255.0 - (255.0 - wash) * 0.85  # the white paper shows through thin paint
    out = pale * ((1.0 - 0.35 * edge) * paper)[..., None]
    return to_image(np.clip(out, 0, 255).astype(np.uint8))
