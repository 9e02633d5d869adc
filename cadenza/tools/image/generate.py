"""generate_image: a picture from a text prompt with a diffusers text-to-image model (Stable
Diffusion, SDXL-Turbo, FLUX, by model id or folder). Heavy only: with no model here it is a one-line
error saying what to install or set; nothing offline can draw a picture from words."""

from __future__ import annotations

from typing import Annotated

from ...errors import InputError
from ...media import Image
from ..base import ToolContext, tool
from ..types import PathOrName, Range
from . import diffusers_generate
from .common import GenerateRequest
from .edit import Seed
from .output import ImageFormat, write_image

Side = Annotated[int, Range(64, 2048)]


@tool(backends=[diffusers_generate.BACKEND], version="1")
def generate_image(prompt: str, ctx: ToolContext, width: Side | None = None, height: Side | None = None,
                   steps: Annotated[int, Range(1, 500)] | None = None, seed: Seed = 0,
                   negative_prompt: str | None = None, guidance_scale: Annotated[float, Range(0, 50)] | None = None,
                   format: ImageFormat | None = None, model: PathOrName | None = None) -> Image:
    """Generate a picture from a text prompt (text to image).

    Args:
        prompt: what the picture shows, e.g. 'a lighthouse at dusk, oil painting'
        width: in pixels (default: the size the model was trained at, e.g. 1024 for SDXL)
        height: in pixels (default: as the width)
        steps: denoising steps (default: the model's)
        seed: the same prompt, size and seed give the same picture
        negative_prompt: what the picture should not show
        guidance_scale: how closely the picture follows the prompt (default: the model's)
        format: png (default), jpeg or webp
        model: a diffusers model id or folder (default: the one configured or cached)
    """
    text = " ".join((prompt or "").split())
    if not text:
        raise InputError("generate_image: the prompt is empty (say what the picture shows)")
    picture = diffusers_generate.generate(ctx, GenerateRequest(prompt=text, width=width, height=height, steps=steps,
                                                               seed=int(seed), model=model,
                                                               negative_prompt=negative_prompt,
                                                               guidance_scale=guidance_scale))
    return Image.from_path(write_image(picture, ctx.output_path, format))
