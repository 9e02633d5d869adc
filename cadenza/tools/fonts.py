"""Text drawn on pictures (burned-in subtitles, text overlays): the first of a list of common system
fonts that is installed, else Pillow's built-in font, which needs no system font but has ASCII
letters only (a caller then says so, or strips accents)."""

from __future__ import annotations

import functools
from typing import Any


@functools.lru_cache(maxsize=64)
def first_font(size: int, names: tuple[str, ...]) -> tuple[Any, bool]:
    """(font, whether it is Pillow's ASCII-only default) at `size` pixels."""
    from PIL import ImageFont

    for name in names:
        try:
            return ImageFont.truetype(name, size), False
        except OSError:
            continue
    return ImageFont.load_default(size=size), True
