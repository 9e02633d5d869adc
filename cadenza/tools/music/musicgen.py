"""MusicGen (Meta) through transformers: text to music, 32 kHz, mono or stereo, any length up to
MAX_SECONDS, optionally following a melody or continuing given audio.

The model is a folder saved with `save_pretrained` or a hub id already in the local Hugging Face
cache; it is always loaded with `local_files_only=True` (nothing is downloaded). It comes from the
request's `model`, else CADENZA_MUSICGEN_MODEL, else the largest cached facebook/musicgen-* model
(stereo before mono at the same size; with a melody, the largest cached melody model first).
On CUDA it runs in the runtime's dtype (float16); the runtime keeps it loaded between calls.

Length: MusicGen makes 50 tokens a second (read from the audio codec's frame rate) and was trained
on 30 s. Longer music is made the way audiocraft extends it: the first window makes up to
WINDOW_SECONDS, then each next window is prompted with the last CONTEXT_SECONDS of what was made
(the audio prompt is re-encoded by the model's codec) and makes the rest of its window; the join
fades, over FADE_SECONDS inside that context, from what was made to the window's own rendering of
its prompt, so nothing shifts in time. audiocraft continues from the tokens instead of re-encoded
audio (transformers' generate returns audio only); the codec round trip is close to transparent.

Melody: with a melody model (facebook/musicgen-melody, -melody-large and their stereo variants) the
melody's chroma conditions each window (the melody's matching stretch, looped when it is shorter
than the music). The chroma is computed here the way transformers' MusicgenMelodyFeatureExtractor
computes it (a power spectrogram folded into 12 pitch classes, the strongest one per frame): that
extractor needs torchaudio, which has no build for the CPU torch this project pins. A model that is
not a melody model given a melody is an error (InputError, one line): the melody is the user's
explicit wish, so ignoring it would make the wrong thing quietly.

Continuation: `request.continuation` is an audio prompt (its last CONTEXT_SECONDS at most); the
result is only the new music, which starts where the given audio ends.

Seeds: generation samples (top-k 250, classifier-free guidance 3, audiocraft's defaults) from
torch's generator seeded with the request's seed (or a fresh one, reported in the settings): the
same request and seed give the same audio on the same device and library versions.

Cancellation and progress: a logits processor runs at every token; it checks for cancellation
(a cancelled step stops at its next token) and counts tokens for the context's progress hook when
it has one; a note at the end says how many windows and tokens it took.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import BackendUnavailableError, InputError, ToolError
from ..base import Backend, ToolContext
from .common import MusicRequest, MusicResult
from .hf import (Progress, append_crossfaded, check_seconds, fit_channels, limit, model_check, new_seed, pick_model,
                 present, resample, seeded, torch_dtype)

ENV = "CADENZA_MUSICGEN_MODEL"
MODELS = ["facebook/musicgen-stereo-large", "facebook/musicgen-large", "facebook/musicgen-stereo-medium",
          "facebook/musicgen-medium", "facebook/musicgen-stereo-small", "facebook/musicgen-small"]
MELODY_MODELS = ["facebook/musicgen-stereo-melody-large", "facebook/musicgen-melody-large",
                 "facebook/musicgen-stereo-melody", "facebook/musicgen-melody"]

# 5 minutes: a 30 s window and then 14 windows of 20 s; about real time for musicgen-large on a
# current GPU, so the limit keeps one call within minutes.
MAX_SECONDS = 300.0
WINDOW_SECONDS = 30.0  # what one generate call covers, prompt included (the models were trained on 30 s)
CONTEXT_SECONDS = 10.0  # the tail fed back as the next window's audio prompt (audiocraft keeps 12 s)
FADE_SECONDS = 0.25  # the crossfade at each join, inside the context
GUIDANCE_SCALE = 3.0
TOP_K = 250


def default_model(melody: bool = False) -> str | None:
    """CADENZA_MUSICGEN_MODEL, else the largest cached model (a melody model first when `melody`)."""
    order = MELODY_MODELS + MODELS if melody else MODELS + MELODY_MODELS
    return pick_model(ENV, order)


def _check() -> str | None:
    return model_check("MusicGen", ENV, default_model(), "facebook/musicgen-small")


BACKEND = Backend("musicgen", "MusicGen through transformers: text to music at 32 kHz, any length up to 5 minutes "
                  "(windowed continuation), following a melody or continuing audio",
                  requires=("transformers", "torch"), device="gpu", gpu_memory_gb=8.0, extra="gpu-music",
                  check=_check)


def _memory_gb(name: str) -> float:
    """A rough GPU need in float16 with guidance and the token cache: the size in the name, else the default."""
    n = name.lower()
    if "large" in n:
        return 8.0
    if "medium" in n or "melody" in n:
        return 4.0
    if "small" in n:
        return 1.5
    return BACKEND.gpu_memory_gb


@dataclass
class LoadedMusicgen:
    name: str
    model: Any
    tokenizer: Any
    processor: Any  # MusicgenProcessor (text + audio prompt); None for a melody model
    melody: bool  # a MusicgenMelody model: conditions on chroma, prompts with codes
    device: str
    dtype: Any
    rate: int
    hop: int  # codec samples per token frame
    frame_rate: float  # token frames a second (50 for the released models)
    channels: int
    delay: int  # tokens of the codebook delay pattern: max_new_tokens - delay frames come out
    chroma: dict = field(default_factory=dict)  # the melody feature extractor's settings
    lock: threading.Lock = field(default_factory=threading.Lock)  # calls sharing the resident model take turns


def load(name: str, device: str, dtype: str) -> LoadedMusicgen:
    """Load a MusicGen or MusicGen-melody model offline (`local_files_only=True`) onto `device`."""
    from transformers import AutoConfig, AutoProcessor, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(name, local_files_only=True)
        melody = config.model_type == "musicgen_melody"
        if melody:
            from transformers import MusicgenMelodyForConditionalGeneration as cls
        else:
            from transformers import MusicgenForConditionalGeneration as cls
        model = cls.from_pretrained(name, local_files_only=True, dtype=torch_dtype(dtype))
        processor = None if melody else AutoProcessor.from_pretrained(name, local_files_only=True)
        tokenizer = processor.tokenizer if processor is not None else AutoTokenizer.from_pretrained(
            name, local_files_only=True)
    except OSError as e:
        raise BackendUnavailableError(f"MusicGen model '{name}' cannot be loaded offline: "
                                      f"{str(e).splitlines()[0]}") from None
    model = model.to(device).eval()
    codec = model.config.audio_encoder
    rate = int(codec.sampling_rate)
    hop = int(getattr(codec, "hop_length", 0) or round(rate / 50))
    frame_rate = float(getattr(codec, "frame_rate", 0) or rate / hop)
    channels = int(model.config.decoder.audio_channels)
    delay = int(model.config.decoder.num_codebooks) // channels - 1
    chroma = _chroma_settings(name) if melody else {}
    return LoadedMusicgen(name, model, tokenizer, processor, melody, device, model.dtype, rate, hop, frame_rate,
                          channels, delay, chroma)


def _chroma_settings(name: str) -> dict:
    """The melody feature extractor's saved settings (preprocessor_config.json), else its defaults."""
    settings = {"sampling_rate": 32000, "n_fft": 16384, "hop_length": 4096, "num_chroma": 12, "chunk_length": 30}
    try:
        from transformers.feature_extraction_utils import FeatureExtractionMixin

        saved, _ = FeatureExtractionMixin.get_feature_extractor_dict(name, local_files_only=True)
        settings.update({k: saved[k] for k in settings if k in saved})
    except (OSError, ValueError):
        pass
    return settings


def compose(ctx: ToolContext, request: MusicRequest) -> MusicResult:
    """Make `request.seconds` of music from the description (and the melody or audio to continue)."""
    check_seconds(request.seconds, MAX_SECONDS, "musicgen")
    melody = request.melody if request.melody is not None and np.size(request.melody) else None
    cont = request.continuation if request.continuation is not None and np.size(request.continuation) else None
    if melody is not None and not request.melody_rate:
        raise InputError("musicgen: a melody needs its sample rate (melody_rate)")
    if cont is not None and not request.continuation_rate:
        raise InputError("musicgen: audio to continue needs its sample rate (continuation_rate)")
    name = request.model or default_model(melody=melody is not None)
    if name is None or not present(name):
        raise BackendUnavailableError(f"musicgen: {model_check('MusicGen', ENV, name, 'facebook/musicgen-small')}")
    started = time.monotonic()
    with ctx.runtime.use(f"musicgen:{name}", lambda d, t: load(name, d, t), memory_gb=_memory_gb(name)) as mg:
        if melody is not None and not mg.melody:
            raise InputError(f"musicgen model '{name}' cannot follow a melody: use a melody model "
                             f"(e.g. facebook/musicgen-melody) or leave the melody out")
        seed = new_seed(request.seed)
        with mg.lock, seeded(seed, mg.device):  # sampling draws from torch's global generator: one call at a time
            samples, windows, tokens = _generate(ctx, mg, request, melody, cont)
    samples = limit(samples[:, 0] if mg.channels == 1 else samples)
    ctx.note(f"musicgen {name}: {len(samples) / mg.rate:.1f} s in {windows} window(s), {tokens} tokens, "
             f"{time.monotonic() - started:.1f} s")
    return MusicResult(samples=samples, rate=mg.rate, settings={
        "model": name, "seed": seed, "windows": windows, "tokens": tokens, "guidance_scale": GUIDANCE_SCALE,
        "top_k": TOP_K, "melody": melody is not None, "continued": cont is not None})


def plan_windows(need_frames: int, prompt_frames: int, window_frames: int,
                 context_frames: int) -> list[tuple[int, int]]:
    """(prompt frames, new frames) for each generate call: the first window is prompted by the
    audio to continue (if any), every later one by the last `context_frames` made so far."""
    context_frames = max(0, min(context_frames, window_frames - 1))
    prompt_frames = max(0, min(prompt_frames, window_frames - 1))
    plan, made = [], 0
    while made < need_frames:
        prompt = prompt_frames if not plan else min(context_frames, made)
        new = min(need_frames - made, window_frames - prompt)
        plan.append((prompt, new))
        made += new
    return plan


def _generate(ctx: ToolContext, mg: LoadedMusicgen, request: MusicRequest, melody: np.ndarray | None,
              cont: np.ndarray | None) -> tuple[np.ndarray, int, int]:
    hop, rate = mg.hop, mg.rate
    total = int(round(request.seconds * rate))
    window_frames = max(2, int(round(WINDOW_SECONDS * mg.frame_rate)))
    context_frames = int(round(CONTEXT_SECONDS * mg.frame_rate))
    prompt0 = None
    if cont is not None:
        audio = fit_channels(resample(cont, int(request.continuation_rate), rate), mg.channels)
        frames = min(len(audio) // hop, context_frames, window_frames - 1)
        prompt0 = audio[len(audio) - frames * hop:] if frames > 0 else None
    plan = plan_windows(math.ceil(total / hop), 0 if prompt0 is None else len(prompt0) // hop, window_frames,
                        context_frames)
    progress = Progress(ctx, sum(new + mg.delay for _, new in plan))
    out = np.zeros((0, mg.channels), np.float32)
    for i, (prompt_frames, new_frames) in enumerate(plan):
        ctx.check_cancelled()
        prompt = (prompt0 if i == 0 else out[len(out) - prompt_frames * hop:]) if prompt_frames else None
        offset = 0 if i == 0 else len(out) - prompt_frames * hop  # where this window starts in the music
        tune = None
        if melody is not None:
            mrate = int(request.melody_rate)
            start = int(round(offset / rate * mrate))
            length = max(1, int(round((prompt_frames + new_frames) * hop / rate * mrate)))
            mono = np.asarray(melody, np.float32).reshape(len(melody), -1).mean(axis=1)
            tune = (np.take(mono, np.arange(start, start + length), mode="wrap"), mrate)
        audio = _window(ctx, mg, request.description, prompt, new_frames + mg.delay, tune, progress)
        new = audio[len(audio) - new_frames * hop:]
        if len(new) < new_frames * hop:
            raise ToolError(f"musicgen made {len(new)} samples in a window, expected {new_frames * hop}")
        fade = min(int(FADE_SECONDS * rate), prompt_frames * hop) if i > 0 else 0
        overlap = audio[len(audio) - new_frames * hop - fade:len(audio) - new_frames * hop]
        out = append_crossfaded(out, overlap, new)
    return out[:total], len(plan), progress.done


def _window(ctx: ToolContext, mg: LoadedMusicgen, text: str, prompt: np.ndarray | None, tokens: int,
            tune: tuple[np.ndarray, int] | None, progress: Progress) -> np.ndarray:
    """One generate call: `tokens` new tokens after the audio prompt; returns (n, channels) float32,
    the prompt's re-decoding followed by the new audio."""
    import torch
    from transformers import LogitsProcessorList

    if mg.melody:
        inputs = dict(mg.tokenizer([text], padding=True, return_tensors="pt"))
        if tune is not None:
            inputs["input_features"] = melody_chroma(tune[0], mg.chroma, rate=tune[1])
        if prompt is not None:
            inputs["decoder_input_ids"] = _prompt_codes(mg, prompt)
    elif prompt is not None:  # the audio prompt goes through the processor, as transformers documents
        inputs = dict(mg.processor(text=[text], audio=[prompt.T if mg.channels == 2 else prompt[:, 0]],
                                   sampling_rate=mg.rate, padding=True, return_tensors="pt"))
    else:
        inputs = dict(mg.processor(text=[text], padding=True, return_tensors="pt"))
    inputs = {k: (v.to(mg.device, mg.dtype) if v.is_floating_point() else v.to(mg.device)) for k, v in inputs.items()}
    steps = LogitsProcessorList([_step_processor(progress)])
    out = ctx.runtime.call(lambda: mg.model.generate(**inputs, do_sample=True, guidance_scale=GUIDANCE_SCALE,
                                                     top_k=TOP_K, max_new_tokens=tokens, logits_processor=steps),
                           "musicgen generation")
    if not isinstance(out, torch.Tensor):  # return_dict_in_generate set in a model's generation config
        out = out.sequences
    return out[0].float().cpu().numpy().T.copy()


def _prompt_codes(mg: LoadedMusicgen, prompt: np.ndarray):
    """The codec's tokens for an audio prompt, laid out as generate's decoder_input_ids (stereo:
    left and right codebooks interleaved, as transformers does for the non-melody models)."""
    import torch

    codec = mg.model.audio_encoder
    x = torch.from_numpy(np.ascontiguousarray(prompt.T)).to(mg.device, mg.dtype)[None]  # (1, channels, n)
    with torch.no_grad():
        per_channel = [codec.encode(x[:, c:c + 1], return_dict=True).audio_codes[0] for c in range(mg.channels)]
    if mg.channels == 1:
        codes = per_channel[0]
    else:
        left, right = per_channel
        codes = left.new_zeros((left.shape[0], 2 * left.shape[1], left.shape[2]))
        codes[:, ::2], codes[:, 1::2] = left, right
    return codes.reshape(-1, codes.shape[-1])


def melody_chroma(audio: np.ndarray, settings: dict, rate: int | None = None):
    """(1, frames, num_chroma) one-hot chroma of mono `audio` (at settings' sampling rate unless
    `rate` says otherwise), as MusicgenMelodyFeatureExtractor makes it: the power spectrogram
    (n_fft window, hann, centred) folded into pitch classes, the strongest class per frame set to 1."""
    import torch

    sr, n_fft, hop = int(settings["sampling_rate"]), int(settings["n_fft"]), int(settings["hop_length"])
    x = np.asarray(audio, np.float32).reshape(-1)
    if rate is not None and rate != sr:
        x = resample(x, rate, sr)
    x = x[: int(settings.get("chunk_length", 30)) * sr]
    if len(x) < n_fft:
        pad = n_fft - len(x)
        x = np.pad(x, (pad // 2, pad - pad // 2))
    wave = torch.from_numpy(x)
    spec = torch.stft(wave, n_fft, hop_length=hop, win_length=n_fft, window=torch.hann_window(n_fft), center=True,
                      pad_mode="reflect", return_complex=True).abs() ** 2
    raw = _chroma_filters(sr, n_fft, int(settings["num_chroma"])) @ spec  # (chroma, frames)
    onehot = torch.zeros(raw.shape[1], raw.shape[0])
    onehot[torch.arange(raw.shape[1]), raw.argmax(dim=0)] = 1.0
    return onehot[None]


@functools.lru_cache(maxsize=4)
def _chroma_filters(sr: int, n_fft: int, num_chroma: int):
    import torch
    from transformers.audio_utils import chroma_filter_bank

    return torch.from_numpy(chroma_filter_bank(sampling_rate=sr, num_frequency_bins=n_fft, tuning=0,
                                               num_chroma=num_chroma)).float()


def _step_processor(progress: Progress):
    """A logits processor that leaves the scores alone and, at every token, checks for cancellation
    and counts progress."""
    from transformers import LogitsProcessor

    class _Steps(LogitsProcessor):
        def __call__(self, input_ids, scores):
            progress.step()
            return scores

    return _Steps()
