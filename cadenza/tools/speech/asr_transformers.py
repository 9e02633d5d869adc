"""ASR backend: a transformers Whisper pipeline, chunked for long audio and batched on GPU.

The model is a folder saved with `save_pretrained` or a hub id already in the local Hugging Face
cache; it is always loaded with `local_files_only=True` (nothing is downloaded). It comes from
the `model` argument, else CADENZA_HF_ASR_MODEL, else the largest cached openai/whisper-* model.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ...errors import BackendUnavailableError
from ..base import Backend, ToolContext
from ..hf_hub import cached, hf_cache
from .pcm import ASR_RATE
from .segments import Segment, Word

PREFERRED = ["large-v3-turbo", "large-v3", "large-v2", "medium", "small", "base", "tiny"]


def default_model() -> str | None:
    env = os.environ.get("CADENZA_HF_ASR_MODEL")
    if env:
        return env
    for size in PREFERRED:
        for suffix in ("", ".en"):
            if cached(f"openai/whisper-{size}{suffix}"):
                return f"openai/whisper-{size}{suffix}"
    return None


def _check() -> str | None:
    model = default_model()
    if model is None:
        return "has no Whisper model here (set CADENZA_HF_ASR_MODEL to a saved model folder or a cached hub id)"
    if not (Path(model).expanduser().is_dir() or cached(model)):  # CADENZA_HF_ASR_MODEL names something not here
        return f"model '{model}' is neither a folder nor cached in {hf_cache()}"
    return None


BACKEND = Backend("transformers", "a transformers Whisper pipeline: chunked long-form, batched on GPU",
                  requires=("transformers", "torch"), device="gpu", gpu_memory_gb=3.0, extra="gpu-speech",
                  check=_check)


def load_pipeline(name: str, device: str, dtype: str):
    import torch
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline

    try:
        model = AutoModelForSpeechSeq2Seq.from_pretrained(name, local_files_only=True, dtype=getattr(torch, dtype))
        processor = AutoProcessor.from_pretrained(name, local_files_only=True)
    except OSError as e:
        raise BackendUnavailableError(f"transformers ASR model '{name}' cannot be loaded offline: "
                                      f"{str(e).splitlines()[0]}") from None
    tok = processor.tokenizer
    if tok.pad_token is None:  # batching pads with it; Whisper pads with end-of-text
        tok.pad_token = tok.eos_token
    return pipeline("automatic-speech-recognition", model=model, tokenizer=tok,
                    feature_extractor=processor.feature_extractor, device=device, dtype=getattr(torch, dtype))


def transcribe(audio: np.ndarray, ctx: ToolContext, *, model: str | None, language: str | None,
               task: str, word_timestamps: bool) -> tuple[str, list[Segment]]:
    name = model or default_model()
    if name is None:
        raise BackendUnavailableError(f"transformers ASR {_check()}")
    with ctx.runtime.use(f"transformers-asr:{name}", lambda d, t: load_pipeline(name, d, t),
                         memory_gb=BACKEND.gpu_memory_gb) as pipe:
        gen = pipe.model.generation_config
        multilingual = bool(getattr(gen, "is_multilingual", False))
        lang = language.split("-")[0].lower() if language else None
        if lang is None and multilingual:
            lang = _detect(pipe, audio)
        kwargs = {"task": task, **({"language": lang} if multilingual and lang else {})} if multilingual else {}
        batch = 8 if ctx.device.startswith("cuda") else 1
        duration = len(audio) / ASR_RATE
        out = ctx.runtime.call(lambda: pipe({"raw": audio, "sampling_rate": ASR_RATE}, chunk_length_s=30,
                                            batch_size=batch, return_timestamps="word" if word_timestamps else True,
                                            generate_kwargs=kwargs), "transformers transcription")
    chunks = out.get("chunks") or []
    if word_timestamps:
        return lang or "en", _group_words(chunks, duration)
    segments = []
    for c in chunks:
        start, end = _span(c, duration)
        segments.append(Segment(start=start, end=end, text=c["text"].strip()))
    if not chunks and out.get("text", "").strip():
        segments.append(Segment(start=0.0, end=duration, text=out["text"].strip()))
    return lang or "en", segments


def _span(chunk: dict, duration: float) -> tuple[float, float]:
    """Timestamps clamped to the audio; a missing end (the last chunk) is the audio's end."""
    a, b = chunk.get("timestamp") or (0.0, None)
    a = min(max(float(a or 0.0), 0.0), duration)
    b = duration if b is None else min(max(float(b), a), duration)
    return a, b


def _detect(pipe, audio: np.ndarray) -> str | None:
    """The language of the first 30 s, from Whisper's own language token."""
    import torch

    fe = pipe.feature_extractor
    feats = fe(audio[: 30 * ASR_RATE], sampling_rate=ASR_RATE, return_tensors="pt").input_features
    feats = feats.to(pipe.model.device, pipe.model.dtype)
    with torch.inference_mode():
        token = int(pipe.model.detect_language(feats)[0])
    by_id = {v: k for k, v in (pipe.model.generation_config.lang_to_id or {}).items()}
    tok = by_id.get(token)
    return tok[2:-2] if tok else None


def _group_words(chunks: list[dict], duration: float) -> list[Segment]:
    """Word chunks into segments: a new one after a sentence end, a pause over 1 s, or 30 words."""
    segments, words = [], []

    def flush():
        if words:
            segments.append(Segment(start=words[0].start, end=words[-1].end,
                                    text=" ".join(w.text for w in words), words=list(words)))
            words.clear()

    for c in chunks:
        text = c["text"].strip()
        if not text:
            continue
        start, end = _span(c, duration)
        if words and (start - words[-1].end > 1.0 or len(words) >= 30):
            flush()
        start = max(start, words[-1].end) if words else start
        words.append(Word(start=start, end=max(end, start), text=text))
        if re.search(r"[.!?]$", text):
            flush()
    flush()
    return segments
