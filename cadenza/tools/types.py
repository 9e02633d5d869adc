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

from pydantic import BaseModel, TypeAdapter, WithJsonSchema

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


def schema_annotation(ann: Any) -> Any:
    """The annotation as a plan sees it: media become path strings with an `x-media` mark."""
    ann = _strip_annotated(ann)
    if isinstance(ann, type) and issubclass(ann, Media):
        return Annotated[
            str,
            WithJsonSchema({"type": "string", "x-media": ann.kind, "description": f"path to an {ann.kind} file" if ann.kind[0] in "aeiou" else f"path to a {ann.kind} file"}),
        ]
    union = _union_args(ann)
    if union is not None:
        return Union[tuple(schema_annotation(a) for a in union)]  # type: ignore[return-value]
    if get_origin(ann) in (list, typing.Sequence):
        (item,) = get_args(ann) or (Any,)
        return list[schema_annotation(item)]  # type: ignore[misc]
    return ann


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
