"""Text to image through diffusers: Stable Diffusion 1.5, SDXL, SDXL-Turbo, SD3, FLUX.1 or any
text-to-image pipeline, by model id or folder.

The model is a folder saved with `save_pretrained` or a hub id already in the local Hugging Face
cache; it is always loaded with `local_files_only=True` (nothing is downloaded). It comes from the
request's `model`, else CADENZA_IMAGE_MODEL, else the largest of MODELS in the cache (on a GPU the
largest that fits the runtime's budget). It loads through `DiffusionPipeline.from_pretrained`; a model
whose own pipeline is another task (an image-to-image one) is turned into its text-to-image
variant with `AutoPipelineForText2Image.from_pipe`. On CUDA it runs in the runtime's dtype (float16;
bfloat16 for FLUX, Qwen-Image and SD3); the runtime keeps it loaded between calls and shares it with
edit_image's diffusers backend (see hf_image).

Size: width and height are rounded to the nearest multiple the model works in (8; 16 for FLUX), and
an image made at a rounded size is resized back (Lanczos) to exactly the size asked: a 45x33 request
is made at 48x32 and returned at 45x33 (the aspect changes by under one multiple, then is restored).

Settings: the request's steps, guidance and negative prompt, else the checkpoint's own (MODEL_DEFAULTS:
4 steps without guidance for SDXL-Turbo and FLUX.1-schnell), else the pipeline's defaults. The seed
drives a CPU torch.Generator, so a seed gives the same noise on any device.

Cancellation and progress: a step callback checks for cancellation (a cancelled step stops at its next
denoising step) and counts steps for the context's progress hook when it has one.
"""

from __future__ import annotations

import time

from PIL import Image as PILImage

from ..base import Backend, ToolContext
from . import hf_image
from .common import GenerateRequest
from .hf_image import (Resident, check_image_model, memory_gb, model_check, pick_model, require_model, round_to,
                       run_pipeline, settled, signature_default, size_multiple)

ENV = "CADENZA_IMAGE_MODEL"
# largest first: the default is the largest cached (on a GPU, the largest that fits the budget)
MODELS = ["black-forest-labs/FLUX.1-schnell", "stabilityai/stable-diffusion-xl-base-1.0", "stabilityai/sdxl-turbo",
          "stable-diffusion-v1-5/stable-diffusion-v1-5", "runwayml/stable-diffusion-v1-5"]
EXAMPLE = "stabilityai/sdxl-turbo"


def default_model(budget_gb: float | None = None) -> str | None:
    return pick_model(ENV, MODELS, budget_gb)


def _check() -> str | None:
    return model_check("text-to-image", ENV, default_model(), EXAMPLE)


BACKEND = Backend("diffusers", "diffusers text-to-image (Stable Diffusion, SDXL, SDXL-Turbo, FLUX.1) on GPU, "
                  "by model id or folder", requires=("diffusers", "transformers", "torch"), device="gpu",
                  gpu_memory_gb=10.0, extra="gpu-image", check=_check)


def load(name: str, device: str, dtype: str) -> Resident:
    """Load the model offline onto `device` (hf_image.load; tests count calls through this name)."""
    return hf_image.load(name, device, dtype)


def text2image_pipeline(resident: Resident):
    """The loaded pipeline when it makes images from text alone, else its text-to-image variant."""
    pipe = resident.pipe
    names = hf_image.accepts(pipe)
    if "prompt" in names and "image" not in names:
        return pipe
    derived = resident.for_task("text2image")
    if derived is None:
        from ...errors import InputError

        raise InputError(f"model '{resident.name}' is a {type(pipe).__name__}: it edits images and has no "
                         f"text-to-image variant")
    return derived


def generate(ctx: ToolContext, request: GenerateRequest) -> PILImage.Image:
    """An RGB image of exactly request.width x request.height from the prompt."""
    from ...errors import InputError

    if (request.width is not None and request.width < 1) or (request.height is not None and request.height < 1):
        raise InputError(f"diffusers: the size must be at least 1x1, not {request.width}x{request.height}")
    budget = ctx.runtime.gpu_budget_gb if ctx.device.startswith("cuda") else None
    name = require_model("diffusers", "text-to-image", ENV, request.model or default_model(budget), EXAMPLE)
    started = time.monotonic()
    with ctx.runtime.use(hf_image.runtime_key(name), lambda d, t: load(name, d, t),
                         memory_gb=memory_gb(hf_image.pipeline_class(name))) as resident:
        pipe = text2image_pipeline(resident)
        check_image_model(pipe, name)
        multiple = size_multiple(pipe)
        if request.width is None or request.height is None:  # unset: the size the model was trained at
            side = hf_image.native_size(pipe)
            request.width, request.height = (request.width or request.height or side,
                                             request.height or request.width or side)
        width, height = round_to(request.width, multiple), round_to(request.height, multiple)
        kwargs = settled(pipe, name, {
            "prompt": request.prompt, "negative_prompt": request.negative_prompt, "width": width, "height": height,
            "num_inference_steps": request.steps, "guidance_scale": request.guidance_scale})
        steps = int(kwargs.get("num_inference_steps") or signature_default(pipe, "num_inference_steps") or 1)
        image = run_pipeline(ctx, resident, pipe, kwargs, seed=request.seed, steps=steps,
                             what="diffusers text-to-image")
        pipeline = type(pipe).__name__
    if image.size != (request.width, request.height):
        image = image.resize((request.width, request.height), PILImage.Resampling.LANCZOS)
    made = f"{width}x{height}" + (f", resized to {request.width}x{request.height}"
                                  if (width, height) != (request.width, request.height) else "")
    ctx.note(f"diffusers {pipeline} {name}: {made} in {steps} steps, seed {request.seed}, "
             f"{time.monotonic() - started:.1f} s")
    return image
