"""Things drawn on top: text, a border, a second image (a logo, a sticker) composited at a position.

Positions are words: top-left, top, top-right, left, center, right, bottom-left, bottom, bottom-right.
Colours are names ('white', 'light blue') or hex ('#ff8800'). Sizes are fractions of the picture, so an
instruction means the same on any resolution.
"""

from __future__ import annotations

from typing import Callable

from PIL import Image as PILImage, ImageDraw, ImageOps
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ....errors import InputError
from .registry import operation
from .util import Position, check_color, load_font, parse_color, place, short_side


def _luma(rgb: tuple[int, int, int]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _on_top(image: PILImage.Image, layer: PILImage.Image) -> PILImage.Image:
    """An RGBA layer of the image's size composited over it; the image keeps its mode."""
    out = PILImage.alpha_composite(image.convert("RGBA"), layer)
    return out if image.mode == "RGBA" else out.convert("RGB")


class TextParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=300, description="the words to write, exactly")
    position: Position = Field("bottom", description="where on the picture")
    size: float = Field(0.07, ge=0.01, le=0.5, description="letter height as a fraction of the picture's height (0.04 small, 0.07 normal, 0.12 large)")
    font_px: int | None = Field(None, ge=6, le=2000, description="letter height in pixels, instead of size")
    color: str = Field("white", max_length=32, description="a colour name or '#rrggbb'")
    outline: bool = Field(True, description="a thin contrasting outline so the text reads on any background")
    opacity: float = Field(1.0, ge=0.1, le=1.0)

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the text is empty")
        return v.strip()

    @field_validator("color")
    @classmethod
    def _color(cls, v: str) -> str:
        return check_color(v)


def _wrap(text: str, font, width: float) -> list[str]:
    """Greedy word wrap to `width` pixels; explicit newlines are kept."""
    out: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split():
            if line and font.getlength(f"{line} {word}") > width:
                out.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        out.append(line)
    return out


@operation("text", TextParams, "overlay", "write text at a position, size and colour", needs=("note",))
def text(image: PILImage.Image, text: str, position: str, size: float, font_px: int | None, color: str,
         outline: bool, opacity: float, note: Callable[[str], None]) -> PILImage.Image:
    w, h = image.size
    margin = max(2, round(0.04 * short_side(image)))
    px = font_px or max(8, round(size * h))
    align = "left" if "left" in position else "right" if "right" in position else "center"
    while True:  # shrink until the wrapped text fits the picture
        font, ascii_only = load_font(px)
        lines = _wrap(text, font, w - 2 * margin)
        stroke = max(1, px // 16) if outline else 0
        box = ImageDraw.Draw(PILImage.new("L", (1, 1))).multiline_textbbox(
            (0, 0), "\n".join(lines), font=font, stroke_width=stroke, spacing=px // 4, align=align)
        tw, th = box[2] - box[0], box[3] - box[1]
        if (tw <= w - 2 * margin and th <= h - 2 * margin) or px <= 8:
            break
        px = max(8, int(px * 0.85))
    if ascii_only and not text.isascii():
        note("text: no system font found (e.g. DejaVu Sans): drawn with Pillow's ASCII-only font, accents dropped")
    rgb = parse_color(color)
    fill = (*rgb, round(255 * opacity))
    stroke_fill = (0, 0, 0, fill[3]) if _luma(rgb) > 100 else (255, 255, 255, fill[3])
    x, y = place(position, (tw, th), (w, h), margin)
    layer = PILImage.new("RGBA", image.size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).multiline_text((x - box[0], y - box[1]), "\n".join(lines), font=font, fill=fill,
                                         spacing=px // 4, align=align, stroke_width=stroke, stroke_fill=stroke_fill)
    return _on_top(image, layer)


class BorderParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thickness: float = Field(0.025, ge=0.002, le=0.25, description="a fraction of the shorter side: 0.01 thin, 0.025 normal, 0.05 thick")
    width: int | None = Field(None, ge=1, le=2000, description="in pixels, instead of thickness")
    color: str = Field("white", max_length=32, description="a colour name or '#rrggbb'")
    outside: bool = Field(False, description="false: painted over the picture's edge (size kept); true: added around it (the picture grows)")

    @field_validator("color")
    @classmethod
    def _color(cls, v: str) -> str:
        return check_color(v)


@operation("border", BorderParams, "overlay", "a solid frame around the picture (over its edge, or added outside)")
def border(image: PILImage.Image, thickness: float, width: int | None, color: str, outside: bool) -> PILImage.Image:
    px = width or max(1, round(thickness * short_side(image)))
    fill = (*parse_color(color), 255)
    if outside:
        return ImageOps.expand(image, border=px, fill=fill if image.mode == "RGBA" else fill[:3])
    if 2 * px >= short_side(image):
        raise InputError(f"border: {px} px is too wide for a {image.width}x{image.height} picture")
    out = image.copy()
    ImageDraw.Draw(out).rectangle((0, 0, image.width - 1, image.height - 1), outline=fill if out.mode == "RGBA" else fill[:3],
                                  width=px)
    return out


class CompositeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    position: Position = Field("bottom-right", description="where the second image goes")
    scale: float = Field(0.25, ge=0.02, le=1.0, description="the second image's width as a fraction of the picture's width")
    opacity: float = Field(1.0, ge=0.05, le=1.0)
    margin: float = Field(0.03, ge=0.0, le=0.25, description="gap to the edges, a fraction of the shorter side")


@operation("composite", CompositeParams, "overlay",
           "put the second image (overlay: a logo, a sticker) onto the picture at a position and scale; "
           "its transparency is kept", needs=("overlay",))
def composite(image: PILImage.Image, position: str, scale: float, opacity: float, margin: float,
              overlay: PILImage.Image | None) -> PILImage.Image:
    if overlay is None:
        raise InputError("composite: no second image was given to put onto the picture (overlay)")
    w, h = image.size
    ov = overlay.convert("RGBA")
    gap = round(margin * short_side(image))
    # the asked width, but never taller or wider than the picture less its margins
    fit = min(scale * w / ov.width, max(1, w - 2 * gap) / ov.width, max(1, h - 2 * gap) / ov.height)
    size = (max(1, round(ov.width * fit)), max(1, round(ov.height * fit)))
    ov = ov.resize(size, PILImage.Resampling.LANCZOS, reducing_gap=3.0)
    if opacity < 1:
        ov.putalpha(ov.getchannel("A").point(lambda a: round(a * opacity)))
    layer = PILImage.new("RGBA", image.size, (0, 0, 0, 0))
    layer.paste(ov, place(position, size, (w, h), gap))
    return _on_top(image, layer)
