"""Uploads: a multipart body read as a stream into the data folder, and the store of uploaded files.

The body is parsed as it arrives (python-multipart's streaming parser), so a file over the size
limit is refused (413) after at most the limit is written, nothing lands outside the data folder
(no temporary files elsewhere), and a client that goes away mid-upload leaves nothing behind.
A stored file is named by a fresh id and the suffix its *content* calls for (sniffed with
`media.sniff_media`): what a client calls it is not kept.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from ..errors import MediaError, one_line
from ..media import hash_file, sniff_media
from .security import ApiError, checked_id, new_id

MAX_FIELD_BYTES = 1 << 20  # a text field (a request, a workflow's YAML, inputs as JSON)
MAX_PARTS = 64


@dataclass
class Form:
    """A multipart body: text fields, and files as paths in the data folder's tmp/ (the caller
    moves or removes them; `discard` removes what is left)."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[Path]] = field(default_factory=dict)

    def discard(self) -> None:
        for paths in self.files.values():
            for p in paths:
                p.unlink(missing_ok=True)


async def read_form(request: Request, tmp_dir: Path, max_bytes: int) -> Form:
    """Parse a multipart/form-data body as it streams in; files over `max_bytes` give 413."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise ApiError(415, "expected a multipart/form-data body")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + MAX_FIELD_BYTES:
        raise ApiError(413, f"body of {int(declared):,} bytes is over the upload limit ({max_bytes:,} bytes)")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    form = Form()
    part: dict[str, Any] = {}
    header: dict[str, bytes] = {}

    def on_part_begin():
        part.clear()
        part.update(headers={}, size=0, chunks=[], out=None)

    def on_header_field(data, start, end):
        header["field"] = header.get("field", b"") + data[start:end]

    def on_header_value(data, start, end):
        header["value"] = header.get("value", b"") + data[start:end]

    def on_header_end():
        part["headers"][header.get("field", b"").lower()] = header.get("value", b"")
        header.clear()

    def on_headers_finished():
        _, disp = parse_options_header(part["headers"].get(b"content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        if not name:
            raise ApiError(400, "a multipart part has no name")
        if sum(map(len, form.fields.values())) + sum(map(len, form.files.values())) >= MAX_PARTS:
            raise ApiError(400, f"more than {MAX_PARTS} parts in one request")
        part["name"] = name
        if b"filename" in disp:  # a file: straight to disk under a name of our own
            path = tmp_dir / f"{new_id()}.part"
            part["out"] = open(path, "wb")
            form.files.setdefault(name, []).append(path)

    def on_part_data(data, start, end):
        part["size"] += end - start
        if part["out"] is not None:
            if part["size"] > max_bytes:
                raise ApiError(413, f"file '{part['name']}' is over the upload limit ({max_bytes:,} bytes)")
            part["out"].write(data[start:end])
        else:
            if part["size"] > MAX_FIELD_BYTES:
                raise ApiError(413, f"field '{part['name']}' is over {MAX_FIELD_BYTES:,} bytes")
            part["chunks"].append(bytes(data[start:end]))

    def on_part_end():
        if part["out"] is not None:
            part["out"].close()
            part["out"] = None
        else:
            try:
                text = b"".join(part["chunks"]).decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(400, f"field '{part['name']}' is not UTF-8 text") from None
            form.fields.setdefault(part["name"], []).append(text)

    parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                                        "on_header_value": on_header_value, "on_header_end": on_header_end,
                                        "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
                                        "on_part_end": on_part_end})
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except BaseException as e:  # a bad body, the limit, a client gone: nothing half-written stays
        if part.get("out") is not None:
            part["out"].close()
        form.discard()
        if isinstance(e, (ApiError, ClientDisconnect)):
            raise
        if isinstance(e, Exception):
            raise ApiError(400, f"malformed multipart body: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        raise
    return form


class UploadStore:
    """data/uploads/<id>/ holds `file<suffix>` and `meta.json` (kind, size, sha256); the name the client gave is not kept."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def add(self, tmp: Path) -> dict[str, Any]:
        """Keep a received file if its content is audio, video or an image (else 415, and it is removed)."""
        try:
            try:
                kind, suffix = sniff_media(tmp)
            except MediaError as e:
                raise ApiError(415, one_line(e)) from None
            upload_id = new_id()
            folder = self.root / upload_id
            folder.mkdir()
            target = folder / f"file{suffix}"
            os.replace(tmp, target)
            meta = {"id": upload_id, "kind": kind, "bytes": target.stat().st_size,
                    "sha256": hash_file(target)}
            (folder / "meta.json").write_text(json.dumps(meta))
            return meta
        finally:
            tmp.unlink(missing_ok=True)

    def path(self, upload_id: Any) -> Path:
        """The stored file of an upload id; 422 for a value that names no upload."""
        if not isinstance(upload_id, str):
            raise ApiError(422, f"expected an upload id, got {type(upload_id).__name__}")
        try:
            checked_id(upload_id, "upload")
        except ApiError:
            raise ApiError(422, f"'{upload_id[:60]}' is not an upload id (POST the file to /uploads first)") from None
        found = sorted((self.root / upload_id).glob("file.*"))
        if not found:
            raise ApiError(422, f"no upload '{upload_id}'")
        return found[0]

    def copy_into(self, upload_id: Any, folder: Path, stem: str) -> Path:
        """A run's own copy of an upload (a hard link where possible): the run keeps it whatever happens to the upload."""
        src = self.path(upload_id)
        folder.mkdir(parents=True, exist_ok=True)
        dst = folder / f"{stem}{src.suffix}"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        return dst

