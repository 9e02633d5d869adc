"""What the image tools hand a backend and get back, so each backend module (classic: Pillow and
OpenCV offline; diffusers_edit and diffusers_generate on GPU) is a plain function behind a `Backend`.

An edit backend module exports:

    BACKEND: Backend
    def edit(ctx: ToolContext, request: EditRequest) -> EditResult

A text-to-image backend module exports BACKEND and `generate(ctx, request: GenerateRequest) -> PIL image`.

The tools (edit.py, generate.py) open the image (EXIF orientation applied, first frame of an
animation, the pixel limit), check the mask, and write the result (PNG unless asked otherwise).
A backend gets and returns Pillow images in RGB or RGBA; it keeps the input's size and aspect
ratio unless the instruction itself resizes or crops (then `EditResult.resized` is True).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image as PILImage


@dataclass
class EditRequest:
    image: PILImage.Image  # RGB or RGBA, upright (EXIF orientation applied)
    instruction: str  # in the user's words: "make it black and white and crop it square"
    mask: PILImage.Image | None = None  # mode "L", the image's size: white where to edit (inpainting)
    overlay: PILImage.Image | None = None  # a second image to composite onto the first (classic)
    seed: int = 0
    model: str | None = None  # a model id or folder (diffusers)
    steps: int | None = None  # denoising steps (diffusers; None: the pipeline's default)
    guidance_scale: float | None = None  # how closely to follow the instruction (diffusers)
    image_guidance_scale: float | None = None  # how closely to keep the input image (InstructPix2Pix)
    strength: float | None = None  # how much of the image may change (img2img, inpainting)


@dataclass
class EditResult:
    image: PILImage.Image
    operations: list[dict[str, Any]] = field(default_factory=list)  # what was applied, in order, with parameters
    resized: bool = False  # the instruction changed the size or aspect (crop, resize, rotate by 90...)


@dataclass
class GenerateRequest:
    prompt: str
    width: int | None = None  # None: the model's native size (512 for SD 1.5 and SDXL-Turbo, 1024 for SDXL, FLUX)
    height: int | None = None
    steps: int | None = None
    seed: int = 0
    model: str | None = None
    negative_prompt: str | None = None
    guidance_scale: float | None = None
