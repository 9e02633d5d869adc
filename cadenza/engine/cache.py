"""Step result cache, keyed by tool, backend, tool version, arguments and input content.

An entry is a folder holding `outputs.json` and the output files (hard links
where the filesystem allows, else copies). Media arguments enter the key by
their content hash, so renaming an input keeps the hit and editing it misses.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..media import MEDIA_TYPES, Media, to_jsonable
from ..paths import step_cache_dir
from ..tools.types import adapter


def _canonical(value: Any) -> Any:
    if isinstance(value, Media):
        return {"media": value.kind, "sha256": value.content_hash()}
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if hasattr(value, "model_dump"):
        return _canonical(value.model_dump(mode="json"))
    return value


def cache_key(tool: str, backend: str, version: str, args: dict[str, Any]) -> str:
    blob = json.dumps({"tool": tool, "backend": backend, "version": version, "args": _canonical(args)},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class StepCache:
    def __init__(self, directory: str | os.PathLike | None = None):
        self.dir = Path(directory) if directory else step_cache_dir()

    def _entry(self, key: str) -> Path:
        return self.dir / key[:2] / key

    def get(self, key: str, output_annotations: dict[str, Any], out_dir: Path,
            stems: dict[str, str]) -> dict[str, Any] | None:
        """Cached outputs, their files placed in `out_dir` named `{stem}-{content hash}`; None on a miss."""
        entry = self._entry(key)
        try:
            stored = json.loads((entry / "outputs.json").read_text())
        except (OSError, ValueError):
            return None
        try:
            return {n: self._restore(v, output_annotations.get(n), entry, out_dir, stems[n]) for n, v in stored.items()}
        except (OSError, ValueError, KeyError):
            return None  # a damaged entry is a miss, never an error

    def put(self, key: str, outputs: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        entry = self._entry(key)
        if entry.exists():
            return
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=entry.parent))
        try:
            stored = {n: self._store(v, tmp) for n, v in outputs.items()}
            (tmp / "outputs.json").write_text(json.dumps(stored))
            os.replace(tmp, entry)  # atomic: readers see a whole entry or none
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)

    def _store(self, value: Any, entry: Path) -> Any:
        if isinstance(value, Media):
            _link_or_copy(value.path, entry / value.path.name)
            data = to_jsonable(value)
            data["path"] = value.path.name
            return {"__media__": data}
        if isinstance(value, list):
            return [self._store(v, entry) for v in value]
        return to_jsonable(value)

    def _restore(self, value: Any, ann: Any, entry: Path, out_dir: Path, stem: str) -> Any:
        if isinstance(value, dict) and "__media__" in value:
            data = dict(value["__media__"])
            kind = data.pop("kind")
            stored = data["path"]  # "{first step}-{hash12}{suffix}": keep the hash, take this step's name
            target = out_dir / f"{stem}-{stored.rsplit('-', 1)[-1]}"
            if not target.exists():
                _link_or_copy(entry / stored, target)
            data["path"] = target
            return MEDIA_TYPES[kind](**data)
        if isinstance(value, list) and any(isinstance(v, dict) and "__media__" in v for v in value):
            return [self._restore(v, None, entry, out_dir, f"{stem}-{i}") for i, v in enumerate(value)]
        return adapter(ann).validate_python(value) if ann is not None else value


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
