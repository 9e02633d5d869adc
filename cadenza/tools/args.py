"""Turning plan values into the Python values a tool's function receives.

Media paths are resolved against the workspace's allowed roots and probed; a text argument
marked `LocalPath` that is a path is checked the same way (plus the user's model folders);
everything else is validated (and coerced: "3" -> 3.0) by pydantic.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

from pydantic import ValidationError

from ..errors import InputError
from ..media import MEDIA_TYPES, Media, guess_kind
from .types import (_strip_annotated, _union_args, adapter, checked_annotation, local_path, number_bounds,
                    range_text)

if TYPE_CHECKING:
    from ..workspace import Workspace
    from .base import Tool


def media_kinds(ann: Any) -> list[str]:
    """Media kinds an annotation accepts directly (not inside a list)."""
    ann = _strip_annotated(ann)
    if isinstance(ann, type) and issubclass(ann, Media):
        return [ann.kind]
    union = _union_args(ann)
    if union is not None:
        return [k for a in union for k in media_kinds(a)]
    return []


def convert_args(t: "Tool", kwargs: dict[str, Any], ws: "Workspace", where: str) -> dict[str, Any]:
    for name in kwargs:
        if name not in t.params:
            raise InputError(f"{where}: unknown argument '{name}' (expected: {', '.join(t.params) or 'none'})")
    out = {}
    for name, p in t.params.items():
        if name not in kwargs:
            if p.required:
                raise InputError(f"{where}: missing required argument '{name}' ({p.tag})")
            continue
        out[name] = convert_value(p.annotation, kwargs[name], ws, f"{where} argument '{name}'")
    return out


def convert_value(ann: Any, value: Any, ws: "Workspace", where: str) -> Any:
    kinds = media_kinds(ann)
    if kinds and value is not None:
        return to_media(value, kinds, ws, where)
    mark = local_path(ann)
    if mark is not None and isinstance(value, str):  # a model or voice given by path: checked like media
        try:
            value = ws.resolve_path_arg(value, mark.sidecars)
        except InputError as e:
            raise type(e)(f"{where}: {e}") from None
    bare = _strip_annotated(ann)
    if get_origin(bare) is list:
        (item,) = get_args(bare) or (Any,)
        if media_kinds(item):
            items = value if isinstance(value, (list, tuple)) else [value]  # one item feeds a list
            return [to_media(v, media_kinds(item), ws, item_label(where, i)) for i, v in enumerate(items)]
        if not isinstance(value, (list, tuple)):
            value = [value]
    try:
        return adapter(checked_annotation(ann)).validate_python(value)
    except ValidationError as e:
        raise InputError(value_problem(ann, value, e, where)) from None


_RANGE_ERRORS = {"finite_number", "greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def value_problem(ann: Any, value: Any, e: ValidationError, where: str) -> str:
    """One line for a value that failed validation: for a number out of range (NaN and infinity
    included), the argument or list item and the allowed range; else pydantic's own message."""
    errors = e.errors()
    err = next((x for x in errors if x["type"] in _RANGE_ERRORS), errors[0])
    bounds = number_bounds(ann)
    if err["type"] == "finite_number" or (err["type"] in _RANGE_ERRORS and bounds is not None):
        for i in (k for k in err["loc"] if isinstance(k, int)):  # an item of a list
            where = item_label(where, i)
        return f"{where}: must be {range_text(bounds or (None, False, None, False))} (got {err['input']!r})"
    return f"{where}: {err['msg'].lower()} (got {value!r})"


def to_media(value: Any, kinds: list[str], ws: "Workspace", where: str) -> Media:
    if isinstance(value, Media):
        if value.kind not in kinds:
            raise InputError(f"{where}: expects {'|'.join(kinds)} but got {value.kind} {value.path.name}")
        try:
            real = ws.resolve_input(value.path, value.kind)  # still must lie under the allowed roots
        except InputError as e:
            raise type(e)(f"{where}: {e}") from None
        return value if value.path == real else value.model_copy(update={"path": real})  # the tool opens what was checked
    if not isinstance(value, (str, Path)):
        raise InputError(f"{where}: expects a path to a {'|'.join(kinds)} file, got {value!r}")
    guessed = guess_kind(value)
    kind = guessed if guessed in kinds else kinds[0]
    try:
        return MEDIA_TYPES[kind].from_path(ws.resolve_input(value, kind))
    except InputError as e:  # say which argument the file came from
        raise type(e)(f"{where}: {e}") from None


def tag_annotation(tag: str) -> Any:
    """A Python annotation for a workflow input's type tag."""
    simple = {"text": str, "number": float, "integer": int, "boolean": bool, "any": Any, "object": dict}
    if tag in simple:
        return simple[tag]
    if tag in MEDIA_TYPES:
        return MEDIA_TYPES[tag]
    if tag.startswith("list[") and tag.endswith("]"):
        return list[tag_annotation(tag[5:-1])]  # type: ignore[misc]
    if "|" in tag:
        return Union[tuple(tag_annotation(t) for t in tag.split("|"))]  # type: ignore[return-value]
    return Any


def item_label(where: str, i: int) -> str:
    """"step 'm' argument 'tracks'" -> "step 'm' argument 'tracks[1]'" (the item inside the quotes)."""
    return f"{where[:-1]}[{i}]'" if where.endswith("'") else f"{where}[{i}]"
