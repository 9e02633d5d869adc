"""Background: blur it, remove it (alpha), or replace it with a colour or the second image.

Telling subject from background without a neural network (mediapipe cannot be installed beside numpy 2,
and no segmentation weights ship offline):
  * people: the Haar cascade finds faces; each face seeds a person (head and torso sure foreground, a body
    box grown from the face probable foreground, the rest background) and GrabCut settles the outline;
  * anything else: GrabCut from a centred box (the subject is assumed to be in the middle, the picture's
    border is background).
GrabCut's cost grows faster than its pixel count, so it runs on a copy 144 px long (50-100 ms); the mask
is scaled back with a guided filter that snaps its edge to the full-size picture's edges.
A mask given with the edit replaces all of this: its white area is the background (the part to edit).
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
from PIL import Image as PILImage, ImageOps
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ....errors import InputError
from .registry import operation
from .util import blend, check_color, detect_faces, downscale, parse_color, short_side, split_alpha, to_array, to_image

SEG_SIDE = 144  # GrabCut's working size (long side): its time grows faster than the pixel count


def _seed_people(seeds: np.ndarray, faces: list[tuple[float, float, float, float]]) -> None:
    """Mark each face's person on GrabCut's seed map (all GC_PR_BGD so far), in the map's pixels.

    The probable-foreground shapes are kept tight (head oval, torso below it): GrabCut grows them where the
    colours agree, but background inside them would teach its foreground model the background's colours."""
    sh, sw = seeds.shape
    far = np.ones((sh, sw), bool)  # far from every person: sure background
    yy, xx = np.mgrid[0:sh, 0:sw]
    for x, y, w, h in faces:
        cx = x + w / 2
        far &= (np.abs(xx - cx) > 2.5 * w) | (yy < y - 0.7 * h)
    border = max(1, round(0.03 * min(sh, sw)))
    edge = np.zeros((sh, sw), bool)
    edge[:border], edge[:, :border], edge[:, -border:] = True, True, True  # not the bottom: bodies are cut there
    seeds[far | edge] = cv2.GC_BGD
    for x, y, w, h in faces:
        cx = x + w / 2
        head = ((xx - cx) / (0.55 * w)) ** 2 + ((yy - (y + 0.45 * h)) / (0.75 * h)) ** 2 <= 1
        body = (np.abs(xx - cx) <= 1.2 * w) & (yy >= y + 1.15 * h)
        seeds[head | body] = cv2.GC_PR_FGD
    for x, y, w, h in faces:  # sure parts last, so no other person's band overwrites them
        cx = x + w / 2
        core = (np.abs(xx - cx) <= 0.25 * w) & (yy >= y + 0.25 * h) & (yy <= y + 0.8 * h)
        chest = (np.abs(xx - cx) <= 0.45 * w) & (yy >= y + 1.6 * h) & (yy <= y + 2.6 * h)
        seeds[core | chest] = cv2.GC_FGD


def _guided(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter: `src` smoothed but with edges where `guide` has them."""
    k = (2 * radius + 1, 2 * radius + 1)
    mean_i, mean_p = cv2.boxFilter(guide, -1, k), cv2.boxFilter(src, -1, k)
    cov = cv2.boxFilter(guide * src, -1, k) - mean_i * mean_p
    var = cv2.boxFilter(guide * guide, -1, k) - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    return cv2.boxFilter(a, -1, k) * guide + cv2.boxFilter(b, -1, k)


def subject_mask(rgb: np.ndarray, note: Callable[[str], None]) -> np.ndarray:
    """float32 (h, w) in 0..1: 1 on the subject (the people, else the central object), 0 on the background."""
    h, w = rgb.shape[:2]
    small = downscale(rgb, SEG_SIDE)
    sh, sw = small.shape[:2]
    s = sw / w
    faces = detect_faces(rgb)
    faces = [f for f in faces if f[2] * f[3] >= 0.2 * faces[0][2] * faces[0][3]][:4] if faces else []
    if faces:
        seeds = np.full((sh, sw), cv2.GC_PR_BGD, np.uint8)
        _seed_people(seeds, [tuple(v * s for v in f) for f in faces])
    else:
        seeds = np.full((sh, sw), cv2.GC_BGD, np.uint8)
        mx, my = max(1, round(0.1 * sw)), max(1, round(0.1 * sh))  # the subject within the middle 80%
        seeds[my:sh - my, mx:sw - mx] = cv2.GC_PR_FGD
    if (seeds != cv2.GC_BGD).sum() == 0 or (seeds == cv2.GC_BGD).sum() + (seeds == cv2.GC_PR_BGD).sum() == 0:
        raise InputError(f"background: the picture ({w}x{h}) is too small to tell subject from background")
    cv2.setRNGSeed(0)  # GrabCut's colour models start from k-means: same picture, same mask
    cv2.grabCut(small, seeds, None, np.zeros((1, 65)), np.zeros((1, 65)), 3, cv2.GC_INIT_WITH_MASK)
    fg = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if count > 2:  # specks of background that matched the subject's colours: keep only the large parts
        areas = stats[1:, cv2.CC_STAT_AREA]
        fg = np.isin(labels, 1 + np.flatnonzero(areas >= 0.15 * areas.max())).astype(np.uint8)
    share = float(fg.mean())
    if share < 0.01 or share > 0.98:
        note("background: could not tell the subject from the background (no face, no distinct central object): "
             "an oval in the middle was used as the subject")
        yy, xx = np.ogrid[-1:1:sh * 1j, -1:1:sw * 1j]
        fg = ((xx / 0.7) ** 2 + (yy / 0.85) ** 2 <= 1).astype(np.uint8)
    # back to full size: the coarse mask, snapped to the picture's own edges at half size
    hw, hh = max(1, w // 2), max(1, h // 2)
    guide = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (hw, hh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    coarse = cv2.resize(fg.astype(np.float32), (hw, hh), interpolation=cv2.INTER_LINEAR)
    alpha = _guided(guide, cv2.GaussianBlur(coarse, (0, 0), 0.5 / s), max(2, round(0.6 / s)), 1e-3)
    alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip((alpha - 0.5) * 1.5 + 0.5, 0.0, 1.0)  # firmer edges: less halo


def _subject(image: PILImage.Image, mask: PILImage.Image | None, note: Callable[[str], None]) -> np.ndarray:
    if mask is not None:  # the user's mask: white is background (what the edit changes)
        return 1.0 - to_array(mask.convert("L")).astype(np.float32) / 255.0
    return subject_mask(to_array(split_alpha(image)[0]), note)


def _blurred_background(arr: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """The picture blurred by `sigma` from its background pixels only (normalised convolution), so the
    subject's colours do not bleed into the background as a halo. A blur this wide loses nothing when done
    on a copy `sigma / 3` times smaller, scaled back once."""
    h, w = arr.shape[:2]
    f = max(1.0, sigma / 3.0)
    size = (max(1, round(w / f)), max(1, round(h / f)))
    small = cv2.resize(arr, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    wt = cv2.resize(weight.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    s = sigma / f
    num = cv2.GaussianBlur(small * wt[..., None], (0, 0), s)
    den = cv2.GaussianBlur(wt, (0, 0), s)[..., None]
    plain = cv2.GaussianBlur(small, (0, 0), s)  # where no background is near (inside a large subject)
    out = np.where(den > 0.05, num / np.maximum(den, 1e-3), plain)
    return cv2.resize(np.clip(out + 0.5, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)


class BackgroundBlurParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strength: float = Field(1.0, ge=0.2, le=5.0, description="1: a clear portrait-mode blur (2% of the shorter side); 0.5 light, 3 strong")


@operation("background_blur", BackgroundBlurParams, "background", "blur the background, keep the subject (people or the central object) sharp",
           needs=("mask", "note"))
def background_blur(image: PILImage.Image, strength: float, mask: PILImage.Image | None,
                    note: Callable[[str], None]) -> PILImage.Image:
    rgb, alpha_channel = split_alpha(image)
    arr = to_array(rgb)
    subject = _subject(image, mask, note)
    blurred = _blurred_background(arr, 1.0 - subject, 0.02 * short_side(image) * strength)
    out = to_image(blend(arr, blurred, subject))
    if alpha_channel is not None:
        out.putalpha(alpha_channel)
    return out


class RemoveBackgroundParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@operation("remove_background", RemoveBackgroundParams, "background",
           "make the background transparent (RGBA), keeping the subject (people or the central object)",
           needs=("mask", "note"))
def remove_background(image: PILImage.Image, mask: PILImage.Image | None, note: Callable[[str], None]) -> PILImage.Image:
    rgb, alpha_channel = split_alpha(image)
    alpha = _subject(image, mask, note) * 255.0
    if alpha_channel is not None:  # already transparent somewhere: stays so
        alpha = np.minimum(alpha, to_array(alpha_channel))
    out = rgb.convert("RGBA")
    out.putalpha(to_image(np.clip(alpha + 0.5, 0, 255).astype(np.uint8)))
    return out


class ReplaceBackgroundParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    color: str | None = Field(None, max_length=32, description="a colour name or '#rrggbb'; null: the second image (overlay) is the new background")

    @field_validator("color")
    @classmethod
    def _color(cls, v: str | None) -> str | None:
        return None if v is None else check_color(v)


@operation("replace_background", ReplaceBackgroundParams, "background",
           "put the subject on a plain colour, or on the second image (overlay) scaled to cover the picture",
           needs=("overlay", "mask", "note"))
def replace_background(image: PILImage.Image, color: str | None, overlay: PILImage.Image | None,
                       mask: PILImage.Image | None, note: Callable[[str], None]) -> PILImage.Image:
    if color is None and overlay is None:
        raise InputError("replace_background: give a colour, or a second image (overlay) to use as the background")
    rgb, _ = split_alpha(image)
    subject = _subject(image, mask, note)
    if color is not None:
        back = np.empty_like(to_array(rgb))
        back[...] = parse_color(color)
    else:
        flat = PILImage.alpha_composite(PILImage.new("RGBA", overlay.size, (255, 255, 255, 255)), overlay.convert("RGBA"))
        back = to_array(ImageOps.fit(flat.convert("RGB"), image.size, PILImage.Resampling.BICUBIC))
    return to_image(blend(to_array(rgb), back, subject))  # opaque now: the new background fills it
