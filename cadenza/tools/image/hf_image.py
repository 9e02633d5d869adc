"""What the diffusers image backends (diffusers_edit, diffusers_generate) share: finding a model
offline, its memory need, loading it once for every task, working sizes, and one pipeline call
with a seed, progress and cancellation.

A model is a folder saved with `save_pretrained` or a hub id already in the local Hugging Face
cache; it is always loaded with `local_files_only=True` (nothing is downloaded). Any diffusers
pipeline loads through `DiffusionPipeline.from_pretrained` (the class named in its model_index.json);
the other tasks of the same model (image-to-image, inpainting, text-to-image) are derived from it
with the Auto pipelines' `from_pipe`, which shares the loaded modules: one load and one share of GPU
memory per model whichever tools use it (the runtime key is `diffusers-image:<model>`).

Memory: MEMORY_GB gives the need in GB on the GPU (weights in 16-bit plus activations at the
model's native size) by pipeline class name, read from model_index.json before loading, so the
runtime can make room for it. Families trained in bfloat16 (FLUX, Qwen-Image, SD3) overflow in
float16 (black or NaN images): when the runtime asks for float16 on a GPU that has bfloat16 they load
in bfloat16, which takes the same memory.

numpy and Pillow only at import time: torch and diffusers are imported inside the functions.
"""

from __future__ import annotations

import inspect
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from ...errors import BackendUnavailableError, InputError
from ..base import ToolContext
from ..hf_hub import Progress, cached, hf_cache

__all__ = ["hf_cache", "cached", "MEMORY_GB", "DEFAULT_MEMORY_GB", "MODEL_DEFAULTS", "Resident", "Progress", "present",
           "pick_model", "model_check", "require_model", "pipeline_class", "memory_gb", "runtime_key", "load",
           "native_size", "size_multiple", "round_to", "work_size", "accepts", "signature_default", "model_defaults",
           "settled", "run_pipeline", "check_image_model"]

# GPU memory (GB) a pipeline needs in float16/bfloat16 at its native size: weights + activations + VAE decode.
# Weights: SD 1.5 ~2.6 GB (U-Net 860 M, CLIP-L, VAE, safety checker); SDXL ~6.9 GB (U-Net 2.6 B, two CLIP
# encoders); SD3 medium ~15 GB with its T5-XXL; FLUX.1 ~34 GB (12 B transformer + T5-XXL 4.7 B); Qwen-Image
# ~58 GB (20 B transformer + Qwen2.5-VL 7 B). InstructPix2Pix runs three U-Net passes a step (batch of 3).
MEMORY_GB: dict[str, float] = {
    "StableDiffusionPipeline": 3.5,
    "StableDiffusionImg2ImgPipeline": 3.5,
    "StableDiffusionInpaintPipeline": 3.5,
    "StableDiffusionInstructPix2PixPipeline": 4.5,
    "StableDiffusionXLPipeline": 10.0,  # SDXL base 1.0 at 1024 px; SDXL-Turbo (512 px) needs ~8
    "StableDiffusionXLImg2ImgPipeline": 10.0,
    "StableDiffusionXLInpaintPipeline": 10.0,
    "StableDiffusionXLInstructPix2PixPipeline": 11.0,  # CosXL edit
    "StableDiffusion3Pipeline": 18.0,
    "StableDiffusion3Img2ImgPipeline": 18.0,
    "StableDiffusion3InpaintPipeline": 18.0,
    "FluxPipeline": 36.0,  # FLUX.1-schnell / dev
    "FluxImg2ImgPipeline": 36.0,
    "FluxInpaintPipeline": 36.0,
    "FluxKontextPipeline": 36.0,  # FLUX.1 Kontext dev
    "FluxKontextInpaintPipeline": 36.0,
    "QwenImagePipeline": 62.0,
    "QwenImageImg2ImgPipeline": 62.0,
    "QwenImageInpaintPipeline": 62.0,
    "QwenImageEditPipeline": 62.0,  # Qwen-Image-Edit
    "QwenImageEditPlusPipeline": 62.0,  # Qwen-Image-Edit-2509
    "QwenImageEditInpaintPipeline": 62.0,
}
DEFAULT_MEMORY_GB = 16.0  # a pipeline not in the table
BF16_FAMILIES = ("Flux", "QwenImage", "StableDiffusion3")

# Step-distilled checkpoints, by a part of their name: the pipeline's defaults (50 steps, guidance 7.5 or
# 3.5) are wrong for them. A request's own steps and guidance win.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "flux.1-schnell": {"num_inference_steps": 4, "guidance_scale": 0.0, "max_sequence_length": 256},
    "sdxl-turbo": {"num_inference_steps": 4, "guidance_scale": 0.0},
    "sd-turbo": {"num_inference_steps": 4, "guidance_scale": 0.0},
}

SMALL_FRACTION = 0.5  # an input whose long side is under this share of the model's native size is scaled up to it


@dataclass
class Resident:
    """A loaded pipeline as the runtime keeps it, with the pipelines derived from it for other tasks
    (sharing its modules) and a lock: a pipeline keeps per-call state (its scheduler's steps), and the
    derived ones share the scheduler, so two steps using the model take turns."""

    pipe: Any
    name: str = ""
    tasks: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def for_task(self, task: str) -> Any | None:
        """The pipeline for `task` ("text2image", "img2img", "inpaint"), derived from the loaded one
        with the Auto pipeline's `from_pipe` (no new memory); None when diffusers has no such variant of
        this pipeline (InstructPix2Pix has no inpainting one)."""
        if task not in self.tasks:
            from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, AutoPipelineForText2Image

            auto = {"text2image": AutoPipelineForText2Image, "img2img": AutoPipelineForImage2Image,
                    "inpaint": AutoPipelineForInpainting}[task]
            try:
                derived = auto.from_pipe(self.pipe)
            except ValueError:  # "AutoPipeline can't find a pipeline linked to ..."
                derived = None
            if derived is not None:
                derived.set_progress_bar_config(disable=True)
            self.tasks[task] = derived
        return self.tasks[task]


# -- finding a model offline ---------------------------------------------------------------------
# (hf_cache, cached: tools/hf_hub.py, shared with the speech and music backends)

def present(name: str) -> bool:
    """True when `name` is a folder here or a hub id with a snapshot in the local cache."""
    return Path(name).expanduser().is_dir() or ("/" in name and cached(name))


def pick_model(env: str, repos: list[str], budget_gb: float | None = None) -> str | None:
    """The model the env var names, else the first of `repos` (largest first) in the local cache; with
    a GPU budget, the first that fits it (else still the first cached: the runtime will say it does not fit)."""
    chosen = os.environ.get(env)
    if chosen:
        return chosen
    here = [r for r in repos if cached(r)]
    if budget_gb:
        fitting = [r for r in here if memory_gb(pipeline_class(r)) <= budget_gb]
        if fitting:
            return fitting[0]
    return here[0] if here else None


def model_check(what: str, env: str, name: str | None, example: str) -> str | None:
    """None when `name` can load offline, else one line saying what to set or put where."""
    if name is None:
        return (f"no {what} model here: set {env} to a saved diffusers folder or put {example} "
                f"in the Hugging Face cache ({hf_cache()})")
    if not present(name):
        return f"{what} model '{name}' is neither a folder nor cached in {hf_cache()} (nothing is downloaded)"
    return None


def require_model(backend: str, what: str, env: str, name: str | None, example: str) -> str:
    """`name` when it can load offline, else a one-line BackendUnavailableError naming it."""
    why = model_check(what, env, name, example)
    if why:
        raise BackendUnavailableError(f"{backend}: {why}")
    return name  # type: ignore[return-value]


def _model_index(name: str) -> Path | None:
    folder = Path(name).expanduser()
    if folder.is_dir():
        path = folder / "model_index.json"
        return path if path.is_file() else None
    if "/" not in name:
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(name, "model_index.json", cache_dir=hf_cache())
    return Path(found) if isinstance(found, str) else None


def pipeline_class(name: str) -> str | None:
    """The pipeline class a model folder or cached hub id names in its model_index.json (None if it has none)."""
    path = _model_index(name)
    if path is None:
        return None
    try:
        return json.loads(path.read_text()).get("_class_name")
    except (OSError, ValueError):
        return None


def memory_gb(class_name: str | None) -> float:
    return MEMORY_GB.get(class_name or "", DEFAULT_MEMORY_GB)


def runtime_key(name: str) -> str:
    return f"diffusers-image:{name}"


# -- loading -------------------------------------------------------------------------------------

def _load_dtype(class_name: str | None, device: str, dtype: str):
    import torch

    if (dtype == "float16" and device.startswith("cuda") and (class_name or "").startswith(BF16_FAMILIES)
            and torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return getattr(torch, dtype)


def load(name: str, device: str, dtype: str) -> Resident:
    """Load any diffusers pipeline offline (`local_files_only=True`) onto `device`, in `dtype` (bfloat16
    for the BF16_FAMILIES when float16 is asked on a GPU). A model whose files are only the fp16 variant
    (`*.fp16.safetensors`) is loaded with variant="fp16"."""
    from diffusers import DiffusionPipeline

    class_name = pipeline_class(name)
    if class_name is None:
        raise BackendUnavailableError(f"image model '{name}' is not a diffusers pipeline (no model_index.json)")
    torch_dtype = _load_dtype(class_name, device, dtype)
    error: Exception | None = None
    for variant in (None, "fp16"):
        try:
            pipe = DiffusionPipeline.from_pretrained(name, local_files_only=True, dtype=torch_dtype, variant=variant)
            break
        except (OSError, ValueError, ImportError) as e:
            error = error or e
    else:
        why = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BackendUnavailableError(f"image model '{name}' ({class_name}) cannot be loaded offline: {why}") from None
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return Resident(pipe, name)


# -- sizes ---------------------------------------------------------------------------------------

def size_multiple(pipe) -> int:
    """What the pipeline's width and height must be a multiple of: the VAE's scale factor (8), or what
    its image processor asks (16 for FLUX and Qwen-Image, which pack 2x2 latents)."""
    processor = getattr(pipe, "image_processor", None)
    factor = getattr(getattr(processor, "config", None), "vae_scale_factor", None)
    factor = factor or getattr(pipe, "vae_scale_factor", None) or 8
    return max(int(factor), 1)


def native_size(pipe) -> int:
    """The side the model was trained at, in pixels: 512 for SD 1.5 and SDXL-Turbo, 1024 for SDXL, SD3,
    FLUX and Qwen-Image (latent sample size x VAE scale factor)."""
    scale = int(getattr(pipe, "vae_scale_factor", None) or 8)
    sample = getattr(pipe, "default_sample_size", None)
    for module in ("unet", "transformer"):
        if sample:
            break
        config = getattr(getattr(pipe, module, None), "config", None)
        sample = getattr(config, "sample_size", None) if config is not None else None
    if isinstance(sample, (list, tuple)):
        sample = max(sample)
    return int(sample) * scale if isinstance(sample, int) and sample > 0 else 1024


def round_to(value: float, multiple: int) -> int:
    """The nearest multiple of `multiple` (at least one multiple)."""
    return max(multiple, int(round(value / multiple)) * multiple)


def work_size(width: int, height: int, native: int, multiple: int) -> tuple[int, int]:
    """The size to run a model at for an input of width x height: the aspect kept, the long side at most
    the model's native size (and scaled up to half of it when smaller: diffusion models fall apart far
    below their training size), both sides rounded to the nearest multiple."""
    long = max(width, height)
    scale = 1.0
    if long > native:
        scale = native / long
    elif long < native * SMALL_FRACTION:
        scale = native * SMALL_FRACTION / long
    return round_to(width * scale, multiple), round_to(height * scale, multiple)


# -- calling a pipeline --------------------------------------------------------------------------

def accepts(pipe) -> set[str]:
    """The keyword arguments the pipeline's __call__ names (not its **kwargs catch-all)."""
    params = inspect.signature(type(pipe).__call__).parameters.values()
    return {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"}


def signature_default(pipe, arg: str) -> Any:
    p = inspect.signature(type(pipe).__call__).parameters.get(arg)
    return None if p is None or p.default is inspect.Parameter.empty else p.default


def model_defaults(name: str) -> dict[str, Any]:
    lowered = name.lower()
    for part, settings in MODEL_DEFAULTS.items():
        if part in lowered:
            return dict(settings)
    return {}


def settled(pipe, name: str, wanted: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments: the request's values, else the model's (MODEL_DEFAULTS), else left to the
    pipeline; only those its __call__ takes."""
    merged = {**model_defaults(name), **{k: v for k, v in wanted.items() if v is not None}}
    names = accepts(pipe)
    return {k: v for k, v in merged.items() if k in names}


def run_pipeline(ctx: ToolContext, resident: Resident, pipe, kwargs: dict[str, Any], *, seed: int, steps: int,
                 what: str) -> PILImage.Image:
    """Call the pipeline with `kwargs` (already limited to what it takes) and return its first image:
    seeded with a CPU torch.Generator (the same noise on any device), a step callback that checks for
    cancellation and reports progress, under the model's lock and the runtime's OOM handling."""
    import torch

    names = accepts(pipe)
    progress = Progress(ctx, steps)
    call = dict(kwargs)
    if "generator" in names:
        call["generator"] = torch.Generator(device="cpu").manual_seed(int(seed))
    if "callback_on_step_end" in names:
        call["callback_on_step_end"] = lambda _pipe, _i, _t, _tensors: progress.step() or {}
    if "output_type" in names:
        call["output_type"] = "pil"
    ctx.check_cancelled()
    with resident.lock:
        out = ctx.runtime.call(lambda: pipe(**call), what)
    images = out.images if hasattr(out, "images") else out[0]
    image = images[0]
    if not isinstance(image, PILImage.Image):
        import numpy as np

        array = np.asarray(image.float().cpu().numpy() if hasattr(image, "cpu") else image)
        if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
            array = array.transpose(1, 2, 0)
        image = PILImage.fromarray((np.clip(array, 0, 1) * 255).round().astype("uint8"))
    return image.convert("RGB")


def check_image_model(pipe, name: str) -> None:
    """Refuse, in one line, a model whose pipeline takes no prompt (an audio or video pipeline named by mistake)."""
    if "prompt" not in accepts(pipe):
        raise InputError(f"model '{name}' is a {type(pipe).__name__}: it takes no text prompt")
