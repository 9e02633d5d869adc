"""The embedded edit backend: classical operations with Pillow and OpenCV, offline, on CPU, exact.

The instruction becomes a list of operations with parameters (ops/parse.py: the configured LLM with
structured output when one is configured, else rules), which are applied in order (ops/). What no
operation can do ("add a dragon") is never silently skipped:
  * nothing understood: InputError naming the 'diffusers' backend (InstructPix2Pix), which edits by
    free instruction;
  * partly understood: what was understood is applied, and a note lists the rest (same backend named);
  * nothing asked ("", "please"): InputError.

request.mask (white = edit): colour, filter and style operations change only its white area (blended in
grey); background operations take its white area as the background instead of finding it. After an
operation that moves pixels (crop, resize, rotate, flip, an outside border) the mask no longer lines up
and is not used (a note says so).

This module imports no OpenCV at load time, so the tool can list the backend where OpenCV is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...errors import InputError
from ..base import Backend, ToolContext
from .common import EditRequest, EditResult

BACKEND = Backend("classic", "Pillow and OpenCV operations, offline", requires=("PIL", "cv2"), extra="image")

HEAVY = "the 'diffusers' backend (InstructPix2Pix, on a GPU)"
NOTHING_ASKED = "asks for no change"  # the error for "please" or "leave it": no backend would do better
SUPPORTED = ("resize, crop (square, 16:9, on the face), rotate, flip, brightness, contrast, saturation, exposure, "
             "warmth, black and white, sepia, blur, sharpen, denoise, vignette, cartoon, sketch, oil painting, "
             "watercolour, text, border, a second image on top, background blur, removal or replacement")


@dataclass
class Plan:
    """What an instruction asks of the classic operations."""

    steps: list[tuple[Any, Any]]  # (ops.Op, its validated params model), in order
    unknown: list[str] = field(default_factory=list)  # parts of the instruction no operation serves
    parsed_by: str = "rules"  # or "llm"
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every part of the instruction is carried out by an operation."""
        return bool(self.steps) and not self.unknown

    @property
    def operations(self) -> list[dict[str, Any]]:
        return [{"op": op.name, "params": params.model_dump()} for op, params in self.steps]


def understand(instruction: str) -> Plan:
    """The instruction as operations. InputError when it asks for nothing, or for nothing these
    operations can do (the message names the backend that could)."""
    from .ops import validate
    from .ops.parse import parse_instruction

    text = " ".join((instruction or "").split())
    if not text:
        raise InputError("edit_image (classic): the instruction is empty: say what to change, e.g. 'crop it square'")
    parsed = parse_instruction(text)
    if not parsed.ops:
        if parsed.unknown:
            raise InputError(f"edit_image (classic): no classic operation can do {_quote(parsed.unknown)}; "
                             f"{HEAVY} can edit by free instruction (classic does: {SUPPORTED})")
        raise InputError(f"edit_image (classic): the instruction {text[:80]!r} {NOTHING_ASKED}: say what to "
                         f"change, e.g. 'make it black and white' or 'crop it square'")
    steps = [validate(o["op"], o.get("params")) for o in parsed.ops]
    return Plan(steps=steps, unknown=list(parsed.unknown), parsed_by=parsed.parser, notes=list(parsed.notes))


def _quote(parts: list[str]) -> str:
    return ", ".join(repr(p) for p in parts[:4]) + (" ..." if len(parts) > 4 else "")


def apply(ctx: ToolContext, request: EditRequest, plan: Plan) -> EditResult:
    """Carry out a plan on the request's picture, one operation at a time (cancellable between them)."""
    from .ops import apply as run_op

    for n in plan.notes:
        ctx.note(n)
    if plan.unknown:
        ctx.note(f"edit_image (classic): not understood and left out: {_quote(plan.unknown)} ({HEAVY} can edit "
                 f"by free instruction)")
    image = request.image
    if image.mode not in ("RGB", "RGBA"):
        has_alpha = image.mode in ("LA", "PA") or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    mask = request.mask.convert("L") if request.mask is not None else None
    if mask is not None and mask.size != image.size:
        raise InputError(f"edit_image (classic): the mask is {mask.size[0]}x{mask.size[1]} but the picture is "
                         f"{image.size[0]}x{image.size[1]}")
    moved, used_mask = None, False
    for op, params in plan.steps:
        ctx.check_cancelled()
        wants_mask = op.maskable or "mask" in op.needs
        if mask is not None and wants_mask and moved is not None:
            ctx.note(f"edit_image (classic): the mask was not used for {op.name}: the picture was {moved} before it")
        use = mask if wants_mask and moved is None else None
        used_mask = used_mask or use is not None
        before = image.size
        image = run_op(image, op, params, overlay=request.overlay, mask=use, note=ctx.note)
        if op.theme == "geometry" or image.size != before:
            moved = {"crop": "cropped", "resize": "resized", "rotate": "rotated", "flip": "flipped"}.get(op.name, "reframed")
    if mask is not None and not used_mask and moved is None:
        ctx.note("edit_image (classic): the mask was not used: it limits colour, filter and style operations and "
                 "marks the background for background ones")
    ctx.note(f"edit_image (classic): instruction read by {'the LLM' if plan.parsed_by == 'llm' else 'rules'}: "
             + ", ".join(_short(op.name, params) for op, params in plan.steps))
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")
    return EditResult(image=image, operations=plan.operations, resized=image.size != request.image.size)


def _short(name: str, params: Any) -> str:
    """'crop(aspect=square)': the parameters that differ from their defaults."""
    fields = type(params).model_fields
    changed = {k: v for k, v in params.model_dump().items() if k in fields and v != fields[k].default}
    return f"{name}({', '.join(f'{k}={v}' for k, v in changed.items())})"


def edit(ctx: ToolContext, request: EditRequest) -> EditResult:
    """The backend entry point: understand the instruction, then apply it."""
    return apply(ctx, request, understand(request.instruction))
