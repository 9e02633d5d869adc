"""caption_image: a picture described in a sentence or two, or a question about it answered, with the raw
findings kept as structured output.

Backends (backends.py, best first): `transformers` (a vision-language or captioning model, on a GPU) and
`offline` (labels, text read, faces and colours on CPU, no language model). The offline findings are
written as sentences by the configured LLM when one was chosen on purpose (compose.py), else by a template.
"""

from __future__ import annotations

import importlib.util

from ...errors import InputError
from ...media import Image, load_image
from ..base import ToolContext, tool
from ..types import PathOrName
from . import describe_offline, vlm_transformers
from .backends import CAPTION_BACKENDS
from .common import CaptionRequest, ImageCaption
from .compose import NO_QUESTIONS, compose


@tool(backends=[m.BACKEND for m in CAPTION_BACKENDS.values()], version="1")
def caption_image(image: Image, ctx: ToolContext, question: str | None = None,
                  model: PathOrName | None = None) -> ImageCaption:
    """Describe a picture in one or two sentences, or answer a question about it, with what was found in it (labels, text read, faces, colours).

    Args:
        image: the picture
        question: a question about the picture, e.g. 'what does the sign say?'; none: describe it
        model: a vision-language or captioning model id in the local Hugging Face cache, or a saved model folder (e.g. Qwen/Qwen2.5-VL-3B-Instruct)
    """
    question = " ".join(question.split()) if question else None
    notes: list[str] = []
    picture = load_image(image.path, notes).convert("RGB")
    for n in notes:
        ctx.note(n)
    if model is not None:  # a model named is a transformers model, whichever backend was best here
        missing = [m for m in ("transformers", "torch") if importlib.util.find_spec(m) is None]
        if missing:
            raise InputError(f"caption_image: model {model!r} needs {' and '.join(missing)} "
                             f"(pip install 'cadenza[gpu-vision]')")
        backend = vlm_transformers
    else:
        backend = CAPTION_BACKENDS[ctx.backend or caption_image.get_backend().name]
    ctx.check_cancelled()
    result = backend.caption(ctx, CaptionRequest(images=[picture], question=question, model=model))[0]
    findings = dict(result.findings)
    text = result.text
    if backend is describe_offline:
        text, composed_notes, findings["composed_by"] = compose(findings, question)
        # the backend's own notes, less the one about questions: compose() says it again when it still holds
        kept = [n for n in findings.get("notes", []) if n != NO_QUESTIONS]
        findings["notes"] = kept + composed_notes
        for n in findings["notes"]:
            ctx.note(f"caption_image: {n}")
    if not text.strip():
        ctx.note(f"caption_image: the model gave an empty answer for {image.path.name}")
    return ImageCaption(text=text, findings=findings)
