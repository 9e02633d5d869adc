"""Classical image operations (Pillow and OpenCV, offline, on CPU) and the registry that names them.

Each operation is a function `(PIL image, **params) -> PIL image` with a pydantic model of its parameters
(every field bounded), registered under a name with `@operation`. The instruction parser (parse.py) turns
words into `[{"op": name, "params": {...}}]`; `validate` checks one entry and `apply` runs it.

Themes: geometry (resize, crop, rotate, flip), color (brightness, contrast, saturation, exposure, warmth,
grayscale, sepia, auto_contrast), filter (blur, sharpen, denoise, vignette), stylize (cartoon, sketch, oil,
watercolor), overlay (text, border, composite), background (background_blur, remove_background,
replace_background).

`apply` handles what the functions need not: an RGBA image's alpha is set aside for colour, filter and
style operations and put back after; a mask limits those operations to its white area.
"""

from .registry import OPS, Op, apply, describe_ops, operation, validate

# Registration happens on import; the order here is the catalog's order.
from . import geometry, color, filters, stylize, overlay, background  # noqa: E402,F401

__all__ = ["OPS", "Op", "apply", "describe_ops", "operation", "validate"]
