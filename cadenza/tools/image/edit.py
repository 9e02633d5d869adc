"""edit_image: an instruction carried out on a picture, which keeps its size and aspect ratio unless
the instruction resizes or crops it.

Backends: `diffusers` (InstructPix2Pix, img2img, inpainting, or any editing pipeline named by model
id or folder: on a GPU) and `classic` (Pillow and OpenCV operations, offline, exact). An instruction
the classic operations carry out in full is done by them even where a GPU is (exact, instant, no
model), unless a `model` is named; what they cannot do ("add a dragon") goes to the model, or, with
no model here, is a one-line answer naming the backend that could.
"""

from __future__ import annotations

import importlib.util
from typing import Annotated, Any

from pydantic import BaseModel, Field

from ...errors import CadenzaError, InputError
from ...media import load_image
from ...media import Image
from ..base import ToolContext, tool
from ..types import PathOrName, Range
from . import classic, diffusers_edit
from .common import EditRequest, EditResult
from .output import ImageFormat, write_image

EDIT_BACKENDS = {m.BACKEND.name: m for m in (diffusers_edit, classic)}
Seed = Annotated[int, Range(0, 2**31 - 1)]


class EditedImage(BaseModel):
    """What `edit_image` returns."""

    image: Image = Field(description="the edited picture (PNG unless another format was asked)")
    operations: list[dict[str, Any]] = Field(description="what was done, in order, with its parameters")


@tool(backends=[m.BACKEND for m in EDIT_BACKENDS.values()], version="1")
def edit_image(image: Image, instruction: str, ctx: ToolContext, mask: Image | None = None,
               overlay: Image | None = None, seed: Seed = 0, format: ImageFormat | None = None,
               model: PathOrName | None = None, steps: Annotated[int, Range(1, 500)] | None = None,
               guidance_scale: Annotated[float, Range(0, 50)] | None = None,
               image_guidance_scale: Annotated[float, Range(0, 20)] | None = None,
               strength: Annotated[float, Range(0, 1)] | None = None, text: str | None = None) -> EditedImage:
    """Edit a picture as instructed (crop, resize, colours, filters, styles, text, background, or a generative edit), keeping its size unless asked.

    Args:
        image: the picture
        instruction: what to do, e.g. 'make it black and white and crop it square' or 'blur the background'
        mask: white where the picture may change (inpainting, classic colour and filter operations) or, for background operations, the background
        overlay: a second picture: composited onto the first, or the new background ('replace the background')
        seed: the same picture, instruction and seed give the same result
        format: png (default), jpeg or webp
        model: a diffusers model id or folder for generative edits (InstructPix2Pix, FLUX.1 Kontext, ...)
        steps: denoising steps (generative edits)
        guidance_scale: how closely a generative edit follows the instruction
        image_guidance_scale: how closely an InstructPix2Pix edit keeps the picture
        strength: how much of the picture a generative edit may change (img2img, inpainting), 0 to 1
        text: words to write on the picture, exactly (e.g. a caption from caption_image); the instruction says where and how, e.g. 'write it at the bottom in white'
    """
    if text is not None:
        instruction = with_text(instruction, text, ctx)
    text = " ".join((instruction or "").split())
    if not text:
        raise InputError("edit_image: the instruction is empty (say what to change, e.g. 'crop it square')")
    notes: list[str] = []
    picture = load_image(image.path, notes)
    mask_img = load_image(mask.path, notes).convert("L") if mask is not None else None
    if mask_img is not None and mask_img.size != picture.size:
        raise InputError(f"edit_image: mask {mask.path.name} is {mask_img.size[0]}x{mask_img.size[1]} but "
                         f"{image.path.name} is {picture.size[0]}x{picture.size[1]}: they must be the same size")
    for n in notes:
        ctx.note(n)
    request = EditRequest(image=picture, instruction=text, mask=mask_img,
                          overlay=load_image(overlay.path) if overlay is not None else None, seed=int(seed),
                          model=model, steps=steps, guidance_scale=guidance_scale,
                          image_guidance_scale=image_guidance_scale, strength=strength)
    if model is not None:  # a model named is a diffusers model, whichever backend was best here
        if importlib.util.find_spec("diffusers") is None:
            raise InputError(f"edit_image: model {model!r} needs diffusers (pip install 'cadenza[gpu-image]')")
        result = diffusers_edit.edit(ctx, request)
    else:
        backend = ctx.backend or edit_image.get_backend().name
        result = _classic_first(ctx, request) if backend != classic.BACKEND.name else None
        if result is None:
            result = EDIT_BACKENDS[backend].edit(ctx, request)
    if not result.resized and result.image.size != picture.size:  # a backend must give the size back
        result.image = result.image.resize(picture.size)
    path = write_image(result.image, ctx.output_path, format)
    return EditedImage(image=Image.from_path(path), operations=result.operations)


MAX_TEXT = 300  # characters written on a picture (the text operation's own limit)


def with_text(instruction: str, words: str, ctx: ToolContext) -> str:
    """The instruction with `words` added as the quoted text to write, so both the rule parser and an LLM
    read it as the text (a plan cannot splice a step's output into a sentence)."""
    words = " ".join(words.split()).replace('"', "'")  # a double quote inside would end the quotation
    if not words:
        raise InputError("edit_image: the text to write is empty")
    if len(words) > MAX_TEXT:
        cut = words[:MAX_TEXT].rsplit(" ", 1)[0]
        ctx.note(f"edit_image: the text was {len(words)} characters; the first {len(cut)} are written")
        words = cut
    instruction = " ".join((instruction or "").split()) or "add the text at the bottom"
    return f'{instruction} with the text "{words}"'


def _classic_first(ctx: ToolContext, request: EditRequest) -> EditResult | None:
    """The classic operations' result when they carry out the whole instruction (exact and instant,
    no model to load); None when some of it needs the generative model."""
    if classic.BACKEND.unavailable_reason() is not None:
        return None
    try:
        plan = classic.understand(request.instruction)
    except CadenzaError as e:
        if classic.NOTHING_ASKED in str(e):  # "please": no model would do better
            raise
        return None
    if not plan.complete:
        return None
    ctx.note("edit_image: done with exact classic operations (no model needed for this instruction)")
    return classic.apply(ctx, request, plan)



