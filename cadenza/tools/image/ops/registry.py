"""The registry of image operations: `@operation` registers one, `validate` checks an entry's
parameters, `apply` runs it (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

from PIL import Image as PILImage
from pydantic import BaseModel, ValidationError

from ....errors import InputError

Theme = Literal["geometry", "color", "filter", "stylize", "overlay", "background"]
PIXEL_THEMES = ("color", "filter", "stylize")  # per-pixel looks: a mask can limit them, alpha is kept as is


@dataclass(frozen=True)
class Op:
    name: str
    fn: Callable[..., PILImage.Image]
    params: type[BaseModel]
    theme: Theme
    summary: str  # one line, for the LLM's prompt and `describe_ops`
    needs: tuple[str, ...] = ()  # extra keyword arguments apply() passes: "overlay", "mask", "note"

    @property
    def maskable(self) -> bool:
        return self.theme in PIXEL_THEMES


OPS: dict[str, Op] = {}


def operation(name: str, params: type[BaseModel], theme: Theme, summary: str,
              needs: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """Register the decorated function as operation `name`."""
    def register(fn: Callable) -> Callable:
        if name in OPS:
            raise ValueError(f"image operation '{name}' registered twice")
        OPS[name] = Op(name, fn, params, theme, summary, needs)
        return fn
    return register


def validate(name: str, params: dict[str, Any] | None) -> tuple[Op, BaseModel]:
    """(operation, its validated parameters); InputError naming the operation and the field at fault."""
    op = OPS.get(name)
    if op is None:
        raise InputError(f"unknown image operation '{name}' (known: {', '.join(OPS)})")
    # None means "the default" (an LLM fills every field, with null where it has nothing to say)
    given = {k: v for k, v in (params or {}).items() if v is not None}
    try:
        return op, op.params.model_validate(given)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "params"
        raise InputError(f"image operation '{name}': {where}: {err.get('msg', 'invalid')}") from None


def apply(image: PILImage.Image, op: Op, params: BaseModel, *, overlay: PILImage.Image | None = None,
          mask: PILImage.Image | None = None, note: Callable[[str], None] = lambda _m: None) -> PILImage.Image:
    """Run one operation. For colour, filter and style operations an RGBA image's alpha is kept as it was,
    and `mask` (mode L, the image's size) keeps the original outside its white area."""
    extras = {"overlay": overlay, "mask": mask, "note": note}
    kwargs = {**params.model_dump(), **{k: extras[k] for k in op.needs}}
    if not op.maskable:
        return op.fn(image, **kwargs)
    from .util import split_alpha, with_alpha

    rgb, alpha = split_alpha(image)
    out = op.fn(rgb, **kwargs)
    if out.mode != "RGB":
        out = out.convert("RGB")
    if mask is not None:
        out = PILImage.composite(out, rgb, mask)  # edited where white, blended where grey
    return with_alpha(out, alpha)


def describe_ops() -> list[dict[str, Any]]:
    """Every operation's name, theme, summary and parameter schema (the LLM's catalog, `tools show`)."""
    return [{"op": op.name, "theme": op.theme, "summary": op.summary, "params": op.params.model_json_schema()}
            for op in OPS.values()]
