"""Type tags: the small type language plans are checked in.

Every tool input and output gets a tag derived from its Python annotation:
`audio`, `video`, `image`, `text`, `integer`, `number`, `boolean`, `list[audio]`,
`audio|video`, or a model name such as `Transcript`. Validation compares tags
along every edge of a plan, so an audio output cannot feed an image input.
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Interval, Le, Lt
from pydantic import AllowInfNan, BaseModel, TypeAdapter, WithJsonSchema
from pydantic.fields import FieldInfo

from ..media import MEDIA_TYPES, Media

SCALARS = {str: "text", int: "integer", float: "number", bool: "boolean"}


def _strip_annotated(ann: Any) -> Any:
    while get_origin(ann) is Annotated:
        ann = get_args(ann)[0]
    return ann


def _union_args(ann: Any) -> tuple | None:
    origin = get_origin(ann)
    if origin is Union or origin is types.UnionType:
        return get_args(ann)
    return None


def type_tag(ann: Any) -> str:
    """The tag of a Python annotation."""
    ann = _strip_annotated(ann)
    if ann is Any or ann is inspect.Parameter.empty:
        return "any"
    if isinstance(ann, type) and issubclass(ann, Media):
        return ann.kind
    if ann in SCALARS:
        return SCALARS[ann]
    if get_origin(ann) is Literal:
        values = get_args(ann)
        return SCALARS.get(type(values[0]), "text") if values else "text"
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return "text"
    union = _union_args(ann)
    if union is not None:
        tags = []
        for a in union:
            if a is type(None):
                continue
            t = type_tag(a)
            if t not in tags:
                tags.append(t)
        return "|".join(tags)
    if get_origin(ann) in (list, tuple, typing.Sequence) or ann in (list, tuple):
        args = get_args(ann)
        return f"list[{type_tag(args[0]) if args else 'any'}]"
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann.__name__
    if ann is dict or get_origin(ann) is dict:
        return "object"
    return getattr(ann, "__name__", str(ann))


def split_union(tag: str) -> list[str]:
    """Split `a|list[b|c]` at the top level only."""
    parts, depth, cur = [], 0, ""
    for ch in tag:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "|" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def list_item(tag: str) -> str | None:
    return tag[5:-1] if tag.startswith("list[") and tag.endswith("]") else None


def accepts(input_tag: str, output_tag: str) -> bool:
    """Can a value tagged `output_tag` feed an input tagged `input_tag`?"""
    wanted = split_union(input_tag)
    return all(any(_accepts_one(w, o) for w in wanted) for o in split_union(output_tag))


def _accepts_one(want: str, got: str) -> bool:
    if want == got or "any" in (want, got):
        return True
    if want == "number" and got == "integer":
        return True
    w_item, g_item = list_item(want), list_item(got)
    if w_item is not None and g_item is not None:
        return accepts(w_item, g_item)
    return False


def media_kind(tag: str) -> str | None:
    """'audio' for an audio tag, None when the tag holds no media kind."""
    return tag if tag in MEDIA_TYPES else None


def is_media_tag(tag: str) -> bool:
    return any(t in MEDIA_TYPES for t in split_union(list_item(tag) or tag))


class LocalPath:
    """Marks a text argument that may be a local file or folder rather than a name (a model, a
    voice): `Annotated[str, LocalPath()]`, tagged `text`. When the value is a path, the executor
    checks it against the run's allowed roots and the model folders the user configured
    (`Workspace.resolve_path_arg`) and the tool gets its real path. `sidecars`: suffixes of
    files the tool also reads beside it (`(".json",)` for a Piper voice's `v.onnx.json`)."""

    def __init__(self, sidecars: tuple[str, ...] = ()):
        self.sidecars = tuple(sidecars)

    def __repr__(self) -> str:
        return f"LocalPath(sidecars={self.sidecars!r})" if self.sidecars else "LocalPath()"


PathOrName = Annotated[str, LocalPath()]  # a model name such as 'base', or a path to one


def local_path(ann: Any) -> LocalPath | None:
    """The LocalPath mark of an annotation (also inside Optional), or None."""
    if get_origin(ann) is Annotated:
        inner, *meta = get_args(ann)
        return next((m for m in meta if isinstance(m, LocalPath)), None) or local_path(inner)
    return next((m for m in map(local_path, _union_args(ann) or ()) if m is not None), None)


def Range(lo: float | None = None, hi: float | None = None, *, exclusive_lo: bool = False) -> Interval:
    """The allowed values of a number argument, `Annotated[float, Range(0, 60)]`: one declaration
    gives the check (before a plan runs and when a value arrives), the JSON Schema's
    `minimum`/`maximum` (`exclusiveMinimum` with `exclusive_lo`) and the error message."""
    return Interval(gt=lo, le=hi) if exclusive_lo else Interval(ge=lo, le=hi)


def schema_annotation(ann: Any) -> Any:
    """The annotation as a plan sees it: media become path strings with an `x-media` mark;
    constraints (`Range`) are kept and every float must be finite."""
    return _plan_annotation(ann, media_as_paths=True)


def checked_annotation(ann: Any) -> Any:
    """The annotation a plan value is validated against (media left as they are): every float
    must be finite, so NaN and infinity never reach a tool."""
    return _plan_annotation(ann, media_as_paths=False)


_FINITE = AllowInfNan(False)


def _plan_annotation(ann: Any, media_as_paths: bool) -> Any:
    if get_origin(ann) is Annotated:
        inner, *meta = get_args(ann)
        mapped = _plan_annotation(inner, media_as_paths)
        if media_as_paths and mapped is not inner and isinstance(_strip_annotated(inner), type) \
                and issubclass(_strip_annotated(inner), Media):
            return mapped  # a path string with its own schema
        return Annotated[(mapped, *meta)]  # keep the constraints
    if media_as_paths and isinstance(ann, type) and issubclass(ann, Media):
        return Annotated[
            str,
            WithJsonSchema({"type": "string", "x-media": ann.kind, "description": f"path to an {ann.kind} file" if ann.kind[0] in "aeiou" else f"path to a {ann.kind} file"}),
        ]
    if ann is float:
        return Annotated[float, _FINITE]
    union = _union_args(ann)
    if union is not None:
        return Union[tuple(_plan_annotation(a, media_as_paths) for a in union)]  # type: ignore[return-value]
    if get_origin(ann) in (list, typing.Sequence):
        (item,) = get_args(ann) or (Any,)
        return list[_plan_annotation(item, media_as_paths)]  # type: ignore[misc]
    return ann


def number_bounds(ann: Any) -> tuple[float | None, bool, float | None, bool] | None:
    """(low, low exclusive, high, high exclusive) of the first number in an annotation (through
    Optional and lists), from `Range`, `Field(ge=...)` or annotated-types; None when it has none."""
    lo = hi = None
    lo_open = hi_open = False
    if get_origin(ann) is Annotated:
        inner, *meta = get_args(ann)
        flat: list = []
        for m in meta:
            flat.extend(m.metadata if isinstance(m, FieldInfo) else list(m) if isinstance(m, Interval) else [m])
        for m in flat:
            if isinstance(m, (Ge, Gt)):
                lo, lo_open = (m.ge, False) if isinstance(m, Ge) else (m.gt, True)
            elif isinstance(m, (Le, Lt)):
                hi, hi_open = (m.le, False) if isinstance(m, Le) else (m.lt, True)
        if lo is not None or hi is not None:
            return lo, lo_open, hi, hi_open
        return number_bounds(inner)
    for a in _union_args(ann) or (get_args(ann)[:1] if get_origin(ann) in (list, typing.Sequence) else ()):
        found = number_bounds(a)
        if found is not None:
            return found
    return None


def range_text(bounds: tuple[float | None, bool, float | None, bool]) -> str:
    """'between 0 and 60', 'more than 0 and at most 86400', 'at least 0': for error messages."""
    lo, lo_open, hi, hi_open = bounds
    low = None if lo is None else f"{'more than' if lo_open else 'at least'} {_num(lo)}"
    high = None if hi is None else f"{'less than' if hi_open else 'at most'} {_num(hi)}"
    if low and high:
        return f"between {_num(lo)} and {_num(hi)}" if not (lo_open or hi_open) else f"{low} and {high}"
    return low or high or "a finite number"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


_adapters: dict[Any, TypeAdapter] = {}


def adapter(ann: Any) -> TypeAdapter:
    """A cached TypeAdapter (building one costs far more than using it)."""
    try:
        return _adapters[ann]
    except (KeyError, TypeError):
        pass
    ta = TypeAdapter(ann)
    try:
        _adapters[ann] = ta
    except TypeError:
        pass
    return ta
