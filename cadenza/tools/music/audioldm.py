"""AudioLDM 2 (CVSSP) through diffusers' AudioLDM2Pipeline: sound effects and ambiences from text,
16 kHz mono (the generate_sound tool makes it stereo).

The model is a folder saved with `save_pretrained` or a hub id already in the local Hugging Face
cache; it is always loaded with `local_files_only=True` (nothing is downloaded). It comes from the
request's `model`, else CADENZA_AUDIOLDM_MODEL, else a cached cvssp/audioldm2-large or
cvssp/audioldm2 (the general text-to-audio checkpoints; cvssp/audioldm2-music can be named
explicitly). On CUDA it runs in the runtime's dtype (float16); the runtime keeps it loaded.

Settings: STEPS denoising steps (200, as the AudioLDM 2 authors and diffusers recommend), guidance
3.5, negative prompt "low quality". The seed drives a CPU torch.Generator (the same noise on any
device). The models were trained on 10.24 s clips; the U-Net is convolutional, so longer clips come
out whole but loosen as they grow: MAX_SECONDS is 30.

Cancellation and progress: the pipeline's step callback checks for cancellation (a cancelled step
stops at its next denoising step) and counts steps for the context's progress hook when it has one.
"""

from __future__ import annotations

import time

import numpy as np

from ...errors import BackendUnavailableError
from ..base import Backend, ToolContext
from .common import MusicRequest, MusicResult
from .hf import Progress, Resident, check_seconds, limit, model_check, new_seed, pick_model, present, torch_dtype

ENV = "CADENZA_AUDIOLDM_MODEL"
MODELS = ["cvssp/audioldm2-large", "cvssp/audioldm2"]
MAX_SECONDS = 30.0
STEPS = 200
GUIDANCE_SCALE = 3.5
NEGATIVE_PROMPT = "low quality"


def default_model() -> str | None:
    return pick_model(ENV, MODELS)


def _check() -> str | None:
    return model_check("AudioLDM 2", ENV, default_model(), "cvssp/audioldm2")


BACKEND = Backend("audioldm2", "AudioLDM 2 through diffusers: sound effects and ambiences from text, 16 kHz",
                  requires=("diffusers", "transformers", "torch"), device="gpu", gpu_memory_gb=5.0, extra="gpu-music",
                  check=_check)


def load(name: str, device: str, dtype: str) -> Resident:
    """Load an AudioLDM2Pipeline offline (`local_files_only=True`) onto `device`.

    The language model is loaded as GPT2LMHeadModel whatever model_index.json names: some AudioLDM 2
    folders name GPT2Model, which since transformers 5 lacks the generation helpers the pipeline
    calls (diffusers issue #12630); the head is tied to the embeddings, so the same weights load."""
    from diffusers import AudioLDM2Pipeline
    from transformers import GPT2LMHeadModel

    try:
        language_model = GPT2LMHeadModel.from_pretrained(name, subfolder="language_model", local_files_only=True,
                                                         dtype=torch_dtype(dtype))
        pipe = AudioLDM2Pipeline.from_pretrained(name, language_model=language_model, local_files_only=True,
                                                 dtype=torch_dtype(dtype))
    except (OSError, ValueError) as e:
        raise BackendUnavailableError(f"AudioLDM 2 model '{name}' cannot be loaded offline: "
                                      f"{str(e).splitlines()[0]}") from None
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return Resident(pipe)


def generate_sound(ctx: ToolContext, request: MusicRequest) -> MusicResult:
    """A sound effect or ambience from the description, `request.seconds` long (16 kHz mono)."""
    import torch

    check_seconds(request.seconds, MAX_SECONDS, "audioldm2")
    name = request.model or default_model()
    if name is None or not present(name):
        raise BackendUnavailableError(f"audioldm2: {model_check('AudioLDM 2', ENV, name, 'cvssp/audioldm2')}")
    started = time.monotonic()
    with ctx.runtime.use(f"audioldm2:{name}", lambda d, t: load(name, d, t),
                         memory_gb=BACKEND.gpu_memory_gb) as resident:
        pipe, seed = resident.pipe, new_seed(request.seed)
        progress = Progress(ctx, STEPS)
        ctx.check_cancelled()
        with resident.lock:
            out = ctx.runtime.call(lambda: pipe(
                request.description, negative_prompt=NEGATIVE_PROMPT, audio_length_in_s=float(request.seconds),
                num_inference_steps=STEPS, guidance_scale=GUIDANCE_SCALE,
                generator=torch.Generator(device="cpu").manual_seed(seed), callback_steps=1,
                callback=lambda step, t, latents: progress.step(), output_type="np"), "audioldm2 generation")
        rate = int(pipe.vocoder.config.sampling_rate)
    samples = limit(np.asarray(out.audios[0], np.float32).reshape(-1))
    ctx.note(f"audioldm2 {name}: {len(samples) / rate:.1f} s in {STEPS} steps, {time.monotonic() - started:.1f} s")
    return MusicResult(samples=samples, rate=rate, settings={
        "model": name, "seed": seed, "steps": STEPS, "guidance_scale": GUIDANCE_SCALE,
        "negative_prompt": NEGATIVE_PROMPT})
