"""Writing an edited or generated picture: PNG unless another format is asked for. The pixels are
already upright (EXIF orientation applied when read), so no orientation tag is written."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal

ImageFormat = Literal["png", "jpeg", "webp"]
_SAVE = {"png": ("PNG", ".png", {"optimize": False}), "jpeg": ("JPEG", ".jpg", {"quality": 92}),
         "webp": ("WEBP", ".webp", {"quality": 92})}


def write_image(img, output_path: Callable[[str], Path], fmt: ImageFormat | None = None) -> Path:
    kind, suffix, options = _SAVE[fmt or "png"]
    if kind == "JPEG" and img.mode not in ("RGB", "L"):  # JPEG has no alpha: flatten on white
        from PIL import Image as PILImage

        flat = PILImage.new("RGB", img.size, "white")
        flat.paste(img, mask=img.getchannel("A") if "A" in img.getbands() else None)
        img = flat
    path = output_path(suffix)
    img.save(path, kind, **options)
    return path
