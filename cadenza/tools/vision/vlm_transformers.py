"""Caption backend: any vision-language or captioning model transformers' Auto classes load
(AutoProcessor + AutoModelForImageTextToText, else the class named in the config's `architectures`).

The model is a folder saved with `save_pretrained` or a hub id already in the local Hugging Face cache;
it is always loaded with `local_files_only=True` (nothing is downloaded). It comes from the request's
`model`, else CADENZA_VISION_MODEL, else the first of MODELS in the cache.

- Chat models (a processor with a chat template: Qwen2-VL / Qwen2.5-VL, SmolVLM2, Idefics3, LLaVA,
  Gemma 3, ...) get the question, or "Describe this picture in one or two sentences.", after the picture.
- Captioning models without a template (BLIP, GIT) caption the picture; Florence-2 gets its
  <DETAILED_CAPTION> task. Neither answers questions (a note says so), except a *QuestionAnswering model
  (BLIP VQA), which takes the question as its text.
- The request's pictures go through one `generate` (left padding), greedy, at most `max_new_tokens`; each
  token checks for cancellation and reports progress. The prompt is cut off the decoded answer.
- `request.scene`: for families that take several pictures in one turn (VIDEO_FAMILIES) the frames are
  given together, once, and every frame gets the same description; other models caption each frame.
- float16 on a GPU (bfloat16 for checkpoints stored in bfloat16: Qwen2.5-VL and SmolVLM2 overflow in
  float16), float32 on CPU; resident through the runtime with MEMORY_GB from the weights' size.

Tested: tiny random-weight BLIP (BlipForConditionalGeneration) and Idefics3 (the SmolVLM architecture,
chat template) built from configs, on CPU (tests/test_vision_vlm.py). Qwen2-VL's processor needs
torchvision, which is not installed here, so Qwen2-VL was not run; no real checkpoint was run.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from ...errors import BackendUnavailableError, InputError
from ..base import Backend, ToolContext
from ..hf_hub import Progress, cached, hf_cache
from .common import Caption, CaptionRequest

ENV = "CADENZA_VISION_MODEL"
# Default models, best first; the first one in the local cache is used. All load natively in transformers 5.
MODELS = [
    "Qwen/Qwen2.5-VL-7B-Instruct",
    "Qwen/Qwen2.5-VL-3B-Instruct",
    "HuggingFaceTB/SmolVLM2-2.2B-Instruct",
    "HuggingFaceTB/SmolVLM2-500M-Video-Instruct",
    "florence-community/Florence-2-large",  # the transformers-native conversion (microsoft/ needs remote code)
    "florence-community/Florence-2-base",
    "Salesforce/blip-image-captioning-large",
    "Salesforce/blip-image-captioning-base",
]
PROMPT = "Describe this picture in one or two sentences."
SCENE_PROMPT = ("These are frames of one scene of a video, in time order. "
                "Describe the scene in one or two sentences.")
FLORENCE_TASK = "<DETAILED_CAPTION>"
# model_type of families that take several pictures in one user turn (and were trained on video frames)
VIDEO_FAMILIES = {"qwen2_vl", "qwen2_5_vl", "qwen3_vl", "smolvlm", "idefics3", "llava_onevision"}
MAX_SCENE_FRAMES = 8  # more frames of one scene add tokens, not understanding
MAX_SIDE = 1024  # pictures are scaled down to this first: Qwen2-VL turns a 4000 px photo into ~16k tokens
BATCH = 8  # pictures per generate call (bounds activation memory)
ACTIVATIONS_GB = 1.5  # on top of the weights: vision tokens, KV cache for a batch of 8 short answers
DEFAULT_MEMORY_GB = 8.0  # weights of unknown size


def _location(name: str) -> Path | None:
    """The folder holding the model's files: the folder itself, or the cached snapshot of a hub id."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        return folder
    if "/" in name and cached(name):
        snaps = sorted((hf_cache() / f"models--{name.replace('/', '--')}" / "snapshots").iterdir(),
                       key=lambda p: p.stat().st_mtime)
        return snaps[-1] if snaps else None
    return None


def default_model() -> str | None:
    env = os.environ.get(ENV)
    if env:
        return env
    return next((m for m in MODELS if cached(m)), None)


def why_not(name: str | None) -> str | None:
    """None when `name` can load offline, else one line saying what to set or put where."""
    if name is None:
        return (f"has no vision-language model here (set {ENV} to a saved model folder or put e.g. "
                f"{MODELS[1]} in the Hugging Face cache, {hf_cache()})")
    if _location(name) is None:
        return f"model '{name}' is neither a folder nor cached in {hf_cache()} (nothing is downloaded)"
    return None


BACKEND = Backend("transformers", "a vision-language or captioning model (Qwen2.5-VL, SmolVLM2, Florence-2, BLIP) "
                  "through transformers, on GPU", requires=("transformers", "torch"), device="gpu",
                  gpu_memory_gb=DEFAULT_MEMORY_GB, extra="gpu-vision", check=lambda: why_not(default_model()))


# -- memory ---------------------------------------------------------------------------------------

def _config(name: str) -> dict[str, Any]:
    where = _location(name)
    try:
        return json.loads((where / "config.json").read_text()) if where else {}
    except (OSError, ValueError):
        return {}


def stored_dtype(name: str) -> str | None:
    config = _config(name)
    dtype = config.get("dtype") or config.get("torch_dtype") or (config.get("text_config") or {}).get("dtype")
    return str(dtype) if dtype else None


def memory_gb(name: str, dtype: str) -> float:
    """GPU memory the model needs in `dtype`: its weight files' size rescaled from the stored dtype, plus
    activations. The files are read for their sizes only (a cached snapshot's links point at the blobs)."""
    where = _location(name)
    files = [p for p in where.rglob("*.safetensors")] if where else []
    files = files or ([p for p in where.rglob("*.bin") if "model" in p.name] if where else [])
    size = sum(p.stat().st_size for p in files if p.exists())
    if not size:
        return DEFAULT_MEMORY_GB
    stored = 4 if stored_dtype(name) in (None, "float32") else 2
    wanted = 4 if dtype == "float32" else 2
    return round(size / 2**30 * wanted / stored + ACTIVATIONS_GB, 2)


# -- loading --------------------------------------------------------------------------------------

@dataclass
class Resident:
    """A loaded model with its processor; a lock, as one generate at a time uses the model."""

    model: Any
    processor: Any
    name: str
    family: str  # config.model_type
    chat: bool  # the processor has a chat template
    lock: threading.Lock = field(default_factory=threading.Lock)


def _torch_dtype(name: str, device: str, dtype: str):
    import torch

    if (dtype == "float16" and device.startswith("cuda") and stored_dtype(name) == "bfloat16"
            and torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return getattr(torch, dtype)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def load(name: str, device: str, dtype: str) -> Resident:
    """Processor and model offline (`local_files_only=True`), in eval mode on `device`."""
    import transformers
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    try:
        config = AutoConfig.from_pretrained(name, local_files_only=True)
        processor = AutoProcessor.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise BackendUnavailableError(f"vision model '{name}' cannot be loaded offline: {_first_line(e)}") from None
    family = getattr(config, "model_type", "") or ""
    if getattr(processor, "image_processor", None) is None:
        raise InputError(f"model '{name}' ({family}) is not a vision model: its processor takes no pictures")
    kwargs = {"local_files_only": True, "dtype": _torch_dtype(name, device, dtype)}
    try:
        try:
            model = AutoModelForImageTextToText.from_pretrained(name, **kwargs)
        except ValueError:  # not in the Auto mapping: the class its config names (a *QuestionAnswering model)
            classes = [getattr(transformers, a, None) for a in (getattr(config, "architectures", None) or [])]
            cls = next((c for c in classes if c is not None and hasattr(c, "generate")), None)
            if cls is None:
                raise InputError(f"model '{name}' ({family}) is not a vision-language or captioning model "
                                 f"transformers can load") from None
            model = cls.from_pretrained(name, **kwargs)
    except OSError as e:
        raise BackendUnavailableError(f"vision model '{name}' cannot be loaded offline: {_first_line(e)}") from None
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is not None:
        tokenizer.padding_side = "left"  # a batch's answers start right after each prompt
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    chat = bool(getattr(processor, "chat_template", None)) and family != "florence2"
    return Resident(model.to(device).eval(), processor, name, family, chat)


# -- generating -----------------------------------------------------------------------------------

def _stopping(progress: Progress):
    """A StoppingCriteria that stops nothing: it counts each generated token (cancellation, progress)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Steps(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            progress.step()
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([Steps()])


def _fit(img: PILImage.Image) -> PILImage.Image:
    img = img.convert("RGB")
    if max(img.size) > MAX_SIDE:
        img = img.copy()
        img.thumbnail((MAX_SIDE, MAX_SIDE), PILImage.Resampling.LANCZOS)
    return img


def _inputs(res: Resident, groups: list[list[PILImage.Image]], question: str | None, prompt: str) -> Any:
    """The processor's tensors for a batch: one prompt per group of pictures (a group is one picture, or a
    scene's frames for a chat model)."""
    proc = res.processor
    if res.chat:
        content = [{"type": "image"} for _ in groups[0]] + [{"type": "text", "text": question or prompt}]
        text = proc.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
        return proc(text=[text] * len(groups), images=groups, return_tensors="pt", padding=True)
    flat = [g[0] for g in groups]
    if res.family == "florence2":
        return proc(text=[FLORENCE_TASK] * len(flat), images=flat, return_tensors="pt")
    if question and "QuestionAnswering" in type(res.model).__name__:
        return proc(images=flat, text=[question] * len(flat), return_tensors="pt", padding=True)
    return proc(images=flat, return_tensors="pt")


def generate_ids(ctx: ToolContext, res: Resident, groups: list[list[PILImage.Image]], question: str | None,
                 max_new_tokens: int, prompt: str = PROMPT, progress: Progress | None = None) -> list[list[int]]:
    """The answer's token ids for each group, the prompt cut off (one generate, greedy)."""
    import torch

    inputs = _inputs(res, [[_fit(i) for i in g] for g in groups], question, prompt)
    device, dtype = res.model.device, res.model.dtype
    inputs = {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) if torch.is_tensor(v) else v
              for k, v in inputs.items()}
    progress = progress or Progress(ctx, max_new_tokens)
    ctx.check_cancelled()
    with res.lock, torch.inference_mode():
        out = ctx.runtime.call(lambda: res.model.generate(
            **inputs, max_new_tokens=int(max_new_tokens), do_sample=False, num_beams=1,
            stopping_criteria=_stopping(progress)), f"captioning with {res.name}")
    out = out.sequences if hasattr(out, "sequences") else out
    prompt_ids = inputs.get("input_ids")
    if (prompt_ids is not None and out.shape[1] >= prompt_ids.shape[1]
            and torch.equal(out[:, :prompt_ids.shape[1]].cpu(), prompt_ids.cpu())):  # decoder-only: prompt echoed
        out = out[:, prompt_ids.shape[1]:]
    elif out.shape[1] and int(out[0, 0]) in _start_ids(res.model):  # encoder-decoder: its start token
        out = out[:, 1:]
    pad = getattr(getattr(res.processor, "tokenizer", None), "pad_token_id", None)
    rows = out.cpu().tolist()
    if pad is not None:  # a batch pads the shorter answers after their end: the same ids as alone
        for row in rows:
            while row and row[-1] == pad:
                row.pop()
    return rows


def _start_ids(model: Any) -> set[int]:
    """The token a captioning decoder starts from (BLIP: the text config's bos; Florence-2: decoder start)."""
    configs = [model.generation_config, model.config, getattr(model.config, "text_config", None)]
    ids = {getattr(c, a, None) for c in configs if c is not None for a in ("decoder_start_token_id", "bos_token_id")}
    return {int(i) for i in ids if isinstance(i, int)}


def decode(res: Resident, ids: list[int]) -> str:
    return " ".join(res.processor.batch_decode([ids], skip_special_tokens=True)[0].split())


def resolve(request: CaptionRequest) -> str:
    """The model to load: the request's (InputError when it is not here), else the default."""
    if request.model is not None:
        why = why_not(request.model)
        if why:
            raise InputError(why)
        return request.model
    name = default_model()
    why = why_not(name)
    if why:
        raise BackendUnavailableError(f"transformers captioning {why}")
    return name  # type: ignore[return-value]


def runtime_key(name: str) -> str:
    return f"transformers-vision:{name}"


def caption(ctx: ToolContext, request: CaptionRequest) -> list[Caption]:
    """Backend entry point (see common.py): the pictures in batches of BATCH, or a scene's frames together."""
    name = resolve(request)
    need = memory_gb(name, ctx.runtime.resolve_dtype(ctx.device))
    with ctx.runtime.use(runtime_key(name), lambda d, t: load(name, d, t), memory_gb=need) as res:
        question = request.question if res.chat or "QuestionAnswering" in type(res.model).__name__ else None
        if request.question and question is None:
            ctx.note(f"transformers captioning: model '{name}' ({res.family}) captions pictures but does not answer "
                     f"questions: the question was not used")
        findings = {"backend": BACKEND.name, "model": name, "family": res.family, "question": question}
        images = request.images
        if request.scene and res.chat and res.family in VIDEO_FAMILIES and len(images) > 1:
            step = max(1, -(-len(images) // MAX_SCENE_FRAMES))
            frames = images[::step][:MAX_SCENE_FRAMES]
            ids = generate_ids(ctx, res, [frames], question, request.max_new_tokens, SCENE_PROMPT)[0]
            text = decode(res, ids)
            found = {**findings, "scene_frames": len(frames), "generated_tokens": len(ids)}
            return [Caption(text=text, findings=dict(found)) for _ in images]
        chunks = [images[i:i + BATCH] for i in range(0, len(images), BATCH)]
        progress = Progress(ctx, request.max_new_tokens * len(chunks))
        out: list[Caption] = []
        for chunk in chunks:
            for ids in generate_ids(ctx, res, [[img] for img in chunk], question, request.max_new_tokens,
                                    progress=progress):
                out.append(Caption(text=decode(res, ids), findings={**findings, "generated_tokens": len(ids)}))
        return out
