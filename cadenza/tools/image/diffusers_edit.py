"""Image editing through diffusers: an instruction ("make it snowy") with InstructPix2Pix or any
diffusers editing pipeline (FLUX.1 Kontext, Qwen-Image-Edit, SDXL/CosXL edit), image-to-image with a
strength, and inpainting with a mask.

Three modes, chosen by the request:
- instruction edit (no mask, no strength): the model from the request, else CADENZA_IMAGE_EDIT_MODEL,
  else a cached timbrooks/instruct-pix2pix. It is called as `pipe(prompt=instruction, image=...)`
  with the keyword arguments its __call__ takes (steps, guidance_scale, image_guidance_scale...).
- image-to-image (request.strength, no mask): AutoPipelineForImage2Image from the request's model,
  else CADENZA_IMAGE_MODEL / generate_image's default, else the edit model.
- inpainting (request.mask, white where to edit): AutoPipelineForInpainting from the request's model,
  else CADENZA_IMAGE_INPAINT_MODEL, else a cached inpainting checkpoint (INPAINT_MODELS), else the
  image-to-image model (plain SD, SDXL and FLUX weights inpaint too, less cleanly). The result keeps
  the input's pixels where the mask is black.
Every model loads once through `DiffusionPipeline.from_pretrained(local_files_only=True)` (nothing is
downloaded); the image-to-image and inpainting variants are derived from it with the Auto pipelines'
`from_pipe`, sharing its modules (hf_image). A model that has no such variant is used as it is:
an editing pipeline ignores the strength (noted), and one that cannot inpaint edits the whole image,
which is then kept only where the mask is white (noted). A plain text-to-image model given an
instruction without a strength runs image-to-image at the pipeline's default strength (noted).

Memory: hf_image.MEMORY_GB, by pipeline class (4.5 GB for InstructPix2Pix, 10-11 for SDXL and CosXL,
36 for FLUX.1 Kontext, 62 for Qwen-Image-Edit); on CUDA the runtime's dtype (float16; bfloat16 for
FLUX and Qwen-Image).

Size: the input is resized (Lanczos, aspect kept) so its long side is at most the model's native size
(512 for SD 1.5, 1024 for SDXL and FLUX) and at least half of it, both sides at the nearest multiple
the model works in (8; 16 for FLUX and Qwen); the result is resized back to the input's exact size.
An RGBA input keeps its alpha channel unchanged.

Settings: the request's steps and guidance, else the checkpoint's (hf_image.MODEL_DEFAULTS), else the
pipeline's defaults (InstructPix2Pix: 100 steps, guidance 7.5, image guidance 1.5). The seed drives a
CPU torch.Generator (the same noise on any device). Cancellation and progress: the step callback
checks for cancellation at each denoising step and reports to the context's progress hook.
"""

from __future__ import annotations

import math
import time
from typing import Any

from PIL import Image as PILImage

from ...errors import InputError
from ..base import Backend, ToolContext
from . import diffusers_generate, hf_image
from .common import EditRequest, EditResult
from .hf_image import (Resident, check_image_model, memory_gb, model_check, native_size, pick_model, require_model,
                       run_pipeline, settled, signature_default, size_multiple, work_size)

ENV = "CADENZA_IMAGE_EDIT_MODEL"
INPAINT_ENV = "CADENZA_IMAGE_INPAINT_MODEL"
MODELS = ["timbrooks/instruct-pix2pix"]
INPAINT_MODELS = ["diffusers/stable-diffusion-xl-1.0-inpainting-0.1",
                  "stable-diffusion-v1-5/stable-diffusion-inpainting", "runwayml/stable-diffusion-inpainting"]
EXAMPLE = "timbrooks/instruct-pix2pix"


def default_model() -> str | None:
    return pick_model(ENV, MODELS)


def _check() -> str | None:
    return model_check("image edit", ENV, default_model(), EXAMPLE)


BACKEND = Backend("diffusers", "diffusers image editing on GPU: instructions (InstructPix2Pix, FLUX.1 Kontext, "
                  "Qwen-Image-Edit), image-to-image and inpainting with a mask",
                  requires=("diffusers", "transformers", "torch"), device="gpu", gpu_memory_gb=4.5, extra="gpu-image",
                  check=_check)


def load(name: str, device: str, dtype: str) -> Resident:
    """Load the model offline onto `device` (hf_image.load; tests count calls through this name)."""
    return hf_image.load(name, device, dtype)


def mode_of(request: EditRequest) -> str:
    if request.mask is not None:
        return "inpaint"
    return "img2img" if request.strength is not None else "edit"


def model_for(request: EditRequest, mode: str, budget_gb: float | None = None) -> str | None:
    """The model a request runs with (see the module's note on modes)."""
    if request.model:
        return request.model
    if mode == "edit":
        return default_model()
    chain = [pick_model(INPAINT_ENV, INPAINT_MODELS, budget_gb)] if mode == "inpaint" else []
    chain += [diffusers_generate.default_model(budget_gb), default_model()]
    return next((n for n in chain if n), None)


def _pipeline_for(resident: Resident, mode: str, name: str, notes: list[str]) -> tuple[Any, str]:
    """The pipeline to run and the mode it runs in."""
    base = resident.pipe
    takes_image = "image" in hf_image.accepts(base)
    if mode == "edit":
        if takes_image:
            return base, "edit"
        derived = resident.for_task("img2img")
        if derived is None:
            raise InputError(f"model '{name}' is a {type(base).__name__}: it cannot take an image to edit")
        notes.append(f"'{name}' is a text-to-image model: ran image-to-image with the instruction as the prompt")
        return derived, "img2img"
    derived = resident.for_task(mode)
    if derived is not None:
        return derived, mode
    if not takes_image:
        raise InputError(f"model '{name}' is a {type(base).__name__}: it cannot take an image to edit")
    if mode == "img2img":
        notes.append(f"{type(base).__name__} has no image-to-image variant: ran as an instruction edit")
        return base, "edit"
    notes.append(f"{type(base).__name__} has no inpainting variant: the whole image was edited and the result "
                 f"kept where the mask is white")
    return base, "edit"


def edit(ctx: ToolContext, request: EditRequest) -> EditResult:
    """The edited image, at the input's exact size and mode."""
    mode = mode_of(request)
    if request.strength is not None and request.strength <= 0:  # nothing may change: no model needed
        ctx.note("diffusers: strength 0 leaves the picture as it is")
        return EditResult(image=request.image.copy(), operations=[{"op": "diffusers", "params": {
            "model": request.model, "pipeline": None, "mode": mode, "steps": 0, "strength": 0.0,
            "seed": request.seed}}])
    budget = ctx.runtime.gpu_budget_gb if ctx.device.startswith("cuda") else None
    name = require_model("diffusers", "image edit", ENV, model_for(request, mode, budget), EXAMPLE)
    original = request.image
    width, height = original.size
    rgb = original.convert("RGB")
    notes: list[str] = []
    started = time.monotonic()
    with ctx.runtime.use(hf_image.runtime_key(name), lambda d, t: load(name, d, t),
                         memory_gb=memory_gb(hf_image.pipeline_class(name))) as resident:
        pipe, ran = _pipeline_for(resident, mode, name, notes)
        check_image_model(pipe, name)
        size = work_size(width, height, native_size(pipe), size_multiple(pipe))
        wanted: dict[str, Any] = {
            "prompt": request.instruction, "image": rgb.resize(size, PILImage.Resampling.LANCZOS),
            "num_inference_steps": request.steps, "guidance_scale": request.guidance_scale,
            "image_guidance_scale": request.image_guidance_scale, "strength": request.strength}
        if request.mask is not None:
            wanted["mask_image"] = request.mask.convert("L").resize(size, PILImage.Resampling.NEAREST)
        kwargs = settled(pipe, name, wanted)
        for field in ("image_guidance_scale", "strength"):
            if wanted.get(field) is not None and field not in kwargs:
                notes.append(f"{type(pipe).__name__} takes no {field}: ignored")
        steps = int(kwargs.get("num_inference_steps") or signature_default(pipe, "num_inference_steps") or 1)
        strength = kwargs.get("strength", signature_default(pipe, "strength"))
        if isinstance(strength, (int, float)) and 0 < strength < 1 and steps * strength < 1:
            steps = kwargs["num_inference_steps"] = math.ceil(1 / strength)  # diffusers runs int(steps * strength)
        denoised = max(1, int(steps * strength)) if isinstance(strength, (int, float)) and strength < 1 else steps
        image = run_pipeline(ctx, resident, pipe, kwargs, seed=request.seed, steps=denoised,
                             what=f"diffusers {mode} with {name}")
        params = {"model": name, "pipeline": type(pipe).__name__, "mode": ran, "steps": steps}
        for field in ("guidance_scale", "image_guidance_scale", "strength"):
            value = kwargs.get(field, signature_default(pipe, field)) if field in hf_image.accepts(pipe) else None
            if value is not None:
                params[field] = value
        params.update(seed=request.seed, size=list(size))
    if image.size != (width, height):
        image = image.resize((width, height), PILImage.Resampling.LANCZOS)
    if request.mask is not None:  # the input's own pixels outside the mask (the VAE changes them slightly)
        mask = request.mask.convert("L")
        image = PILImage.composite(image, rgb, mask if mask.size == (width, height) else mask.resize((width, height)))
    if original.mode == "RGBA":
        image.putalpha(original.getchannel("A"))
    for note in notes:
        ctx.note(f"diffusers: {note}")
    ctx.note(f"diffusers {params['pipeline']} {name}: {ran} at {size[0]}x{size[1]} in {steps} steps, "
             f"seed {request.seed}, {time.monotonic() - started:.1f} s")
    return EditResult(image=image, operations=[{"op": "diffusers", "params": params}])

