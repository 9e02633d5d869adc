"""Stable Audio Open (Stability AI) through diffusers' StableAudioPipeline: text to 44.1 kHz stereo,
music (compose) and sound effects (generate_sound), at most one window (47 s) a call.

The model is a folder saved with `save_pretrained` or a hub id already in the local Hugging Face
cache; it is always loaded with `local_files_only=True` (nothing is downloaded). It comes from the
request's `model`, else CADENZA_STABLE_AUDIO_MODEL, else a cached stabilityai/stable-audio-open-1.0.
On CUDA it runs in the runtime's dtype (float16); the runtime keeps it loaded between calls.

Settings: STEPS denoising steps (100, diffusers' and Stability's default: about 10-20 s for a window
on a current GPU; fewer steps are faster and rougher), guidance 7, negative prompt "low quality".
The seed drives a CPU torch.Generator, so a seed gives the same noise on any device.

Length: the model makes one window of sample_size latents (47.55 s for the released model) and
is conditioned on the duration wanted; the pipeline cuts the window to it. Stable Audio has no
continuation conditioning (diffusers' `initial_audio_waveforms` only mixes audio into the starting
noise of a whole window; it does not continue anything), so longer music could only be independent
pieces crossfaded, each with its own tempo and key: that is not one piece of music, so a request
longer than the window is refused with a one-line error (MusicGen continues music for minutes).
For the same reason a melody or audio to continue is refused.

Cancellation and progress: the pipeline's step callback checks for cancellation (a cancelled step
stops at its next denoising step) and counts steps for the context's progress hook when it has one.
"""

from __future__ import annotations

import time

import numpy as np

from ...errors import BackendUnavailableError, InputError
from ..base import Backend, ToolContext
from .common import MusicRequest, MusicResult
from .hf import Progress, Resident, check_seconds, limit, model_check, new_seed, pick_model, present, torch_dtype

ENV = "CADENZA_STABLE_AUDIO_MODEL"
MODELS = ["stabilityai/stable-audio-open-1.0"]
MAX_SECONDS = 47.0  # one window of the released model (47.55 s), rounded down
STEPS = 100
GUIDANCE_SCALE = 7.0
NEGATIVE_PROMPT = "low quality"


def default_model() -> str | None:
    return pick_model(ENV, MODELS)


def _check() -> str | None:
    return model_check("Stable Audio", ENV, default_model(), "stabilityai/stable-audio-open-1.0")


BACKEND = Backend("stable-audio", "Stable Audio Open through diffusers: text to 44.1 kHz stereo music or sound "
                  "effects, up to 47 s", device="gpu", gpu_memory_gb=6.0,
                  # torchsde: the released model's scheduler (CosineDPMSolverMultistepScheduler) needs it
                  requires=("diffusers", "transformers", "torchsde", "torch"),
                  extra="gpu-music", check=_check)


def load(name: str, device: str, dtype: str) -> Resident:
    """Load a StableAudioPipeline offline (`local_files_only=True`) onto `device`."""
    from diffusers import StableAudioPipeline

    try:
        pipe = StableAudioPipeline.from_pretrained(name, local_files_only=True, dtype=torch_dtype(dtype))
    except (OSError, ValueError) as e:
        raise BackendUnavailableError(f"Stable Audio model '{name}' cannot be loaded offline: "
                                      f"{str(e).splitlines()[0]}") from None
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return Resident(pipe)


def window_seconds(pipe) -> float:
    """The longest audio the pipeline makes in one go (47.55 s for stable-audio-open-1.0)."""
    return float(pipe.transformer.config.sample_size * pipe.vae.hop_length / pipe.vae.config.sampling_rate)


def compose(ctx: ToolContext, request: MusicRequest) -> MusicResult:
    """Music from the description, at most one window long (see the module's note on length)."""
    if request.melody is not None or request.continuation is not None:
        raise InputError("stable-audio cannot follow a melody or continue audio (it has no such conditioning): "
                         "use the musicgen backend")
    return _generate(ctx, request, "compose")


def generate_sound(ctx: ToolContext, request: MusicRequest) -> MusicResult:
    """A sound effect or ambience from the description, at most one window long."""
    return _generate(ctx, request, "sound")


def _generate(ctx: ToolContext, request: MusicRequest, what: str) -> MusicResult:
    import torch

    check_seconds(request.seconds, MAX_SECONDS, "stable-audio")
    name = request.model or default_model()
    if name is None or not present(name):
        raise BackendUnavailableError(
            f"stable-audio: {model_check('Stable Audio', ENV, name, 'stabilityai/stable-audio-open-1.0')}")
    started = time.monotonic()
    with ctx.runtime.use(f"stable-audio:{name}", lambda d, t: load(name, d, t),
                         memory_gb=BACKEND.gpu_memory_gb) as resident:
        pipe = resident.pipe
        window = window_seconds(pipe)
        if request.seconds > window + 1e-6:
            raise InputError(f"stable-audio makes at most {window:.2f} s in one piece with '{name}' (it cannot "
                             f"continue music, so longer would be unrelated pieces joined): use musicgen for "
                             f"longer music")
        seed = new_seed(request.seed)
        progress = Progress(ctx, STEPS)
        ctx.check_cancelled()
        with resident.lock:
            out = ctx.runtime.call(lambda: pipe(
                request.description, negative_prompt=NEGATIVE_PROMPT, audio_end_in_s=float(request.seconds),
                num_inference_steps=STEPS, guidance_scale=GUIDANCE_SCALE,
                generator=torch.Generator(device="cpu").manual_seed(seed), callback_steps=1,
                callback=lambda step, t, latents: progress.step(), output_type="pt"), "stable-audio generation")
        rate = int(pipe.vae.config.sampling_rate)
    samples = limit(out.audios[0].float().cpu().numpy().T)  # (n, 2)
    if samples.shape[1] == 1:
        samples = samples[:, 0]
    ctx.note(f"stable-audio {name}: {len(samples) / rate:.1f} s of {what} in {STEPS} steps, "
             f"{time.monotonic() - started:.1f} s")
    return MusicResult(samples=np.ascontiguousarray(samples), rate=rate, settings={
        "model": name, "seed": seed, "steps": STEPS, "guidance_scale": GUIDANCE_SCALE,
        "negative_prompt": NEGATIVE_PROMPT})
