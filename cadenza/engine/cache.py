"""Step result cache, keyed by tool, backend, tool version, arguments and input content.

An entry is a folder holding `outputs.json` and the output files. Media arguments enter
the key by their content hash, so renaming an input keeps the hit and editing it misses.

An entry never shares a file with an output: outputs are independent copies (a reflink
where the file system has one, so a copy costs nothing there; else a plain copy), so
editing an output in place (an ID3 tag, an editor saving over it) cannot change the cache
or another run's copy. Each entry records every file's size and sha256, checked when the
entry is restored: a mismatch (a truncated or edited file) is a miss, the bad entry is
removed and the step says so in its notes. A record names files inside its own entry only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..media import MEDIA_TYPES, Media, file_sha256, hash_file, to_jsonable
from ..paths import step_cache_dir
from ..tools.types import adapter
from ..workspace import copy_file

ENTRY_FORMAT = 2  # entries written before files were hashed are misses


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


class BadEntry(Exception):
    """A cache entry that does not hold what its record says."""


class StepCache:
    def __init__(self, directory: str | os.PathLike | None = None):
        self.dir = Path(directory) if directory else step_cache_dir()

    def _entry(self, key: str) -> Path:
        return self.dir / key[:2] / key

    def get(self, key: str, output_annotations: dict[str, Any], out_dir: Path, stems: dict[str, str],
            notes: list[str] | None = None) -> dict[str, Any] | None:
        """Cached outputs, their files copied into `out_dir` as `{stem}-{content hash}`; None on a
        miss. A damaged entry is a miss, never an error: it is removed, with a note."""
        entry = self._entry(key)
        try:
            record = json.loads((entry / "outputs.json").read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return self._drop(entry, "its record is unreadable", notes)
        if not isinstance(record, dict) or record.get("format") != ENTRY_FORMAT:
            return self._drop(entry, "it was written by an older version", notes)
        placed: list[Path] = []
        try:
            files = record["files"]
            for name, (size, sha) in files.items():
                _check_file(entry, name, size)  # the content is checked as it is copied out
            out = {n: self._restore(v, output_annotations.get(n), entry, out_dir, stems[n], files, placed)
                   for n, v in record["outputs"].items()}
            return out
        except (BadEntry, OSError, ValueError, KeyError, TypeError) as e:
            for p in placed:  # a half-restored result is not left in the output folder
                p.unlink(missing_ok=True)
            why = str(e) if isinstance(e, BadEntry) else f"it cannot be read ({type(e).__name__})"
            return self._drop(entry, why, notes)

    def put(self, key: str, outputs: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        entry = self._entry(key)
        if entry.exists():
            return
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=entry.parent))
        try:
            files: dict[str, tuple[int, str]] = {}
            stored = {n: self._store(v, tmp, files) for n, v in outputs.items()}
            (tmp / "outputs.json").write_text(json.dumps({"format": ENTRY_FORMAT, "outputs": stored, "files": files}))
            os.replace(tmp, entry)  # atomic: readers see a whole entry or none
        except OSError:  # a full disk, a race with another writer: the cache is an optimisation
            shutil.rmtree(tmp, ignore_errors=True)

    def _drop(self, entry: Path, why: str, notes: list[str] | None) -> None:
        shutil.rmtree(entry, ignore_errors=True)
        if notes is not None:
            notes.append(f"cache entry {entry.name[:12]} was removed and the step run again: {why}")
        return None

    def _store(self, value: Any, entry: Path, files: dict[str, tuple[int, str]]) -> Any:
        if isinstance(value, Media):
            name = value.path.name
            digest = copy_file(value.path, entry / name) or file_sha256(entry / name)  # a reflink is not read
            files[name] = (os.path.getsize(entry / name), digest)
            data = to_jsonable(value)
            data["path"] = name
            return {"__media__": data}
        if isinstance(value, list):
            return [self._store(v, entry, files) for v in value]
        return to_jsonable(value)

    def _restore(self, value: Any, ann: Any, entry: Path, out_dir: Path, stem: str,
                 files: dict[str, Any], placed: list[Path]) -> Any:
        if isinstance(value, dict) and "__media__" in value:
            data = dict(value["__media__"])
            kind = data.pop("kind")
            stored = data["path"]  # "{first step}-{hash12}{suffix}": keep the hash, take this step's name
            if stored not in files:
                raise BadEntry(f"its record names a file it does not hold ({stored!r})")
            target = out_dir / f"{stem}-{stored.rsplit('-', 1)[-1]}"
            if not target.exists():
                try:
                    copy_file(entry / stored, target, expect_sha256=files[stored][1])
                except ValueError as e:
                    raise BadEntry(str(e)) from None
                placed.append(target)
            elif hash_file(target) != files[stored][1]:  # an output edited in place: give back the cached one
                copy_file(entry / stored, target, expect_sha256=files[stored][1])
            data["path"] = target
            return MEDIA_TYPES[kind](**data)
        if isinstance(value, list) and any(isinstance(v, dict) and "__media__" in v for v in value):
            return [self._restore(v, None, entry, out_dir, f"{stem}-{i}", files, placed) for i, v in enumerate(value)]
        return adapter(ann).validate_python(value) if ann is not None else value


def _check_file(entry: Path, name: str, size: int) -> None:
    """The entry holds `name` (a plain file inside it, no link) of this size (its hash is checked
    when it is copied out)."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name or name == "outputs.json":
        raise BadEntry(f"its record names a file outside the entry ({name!r})")
    path = entry / name
    if path.is_symlink() or not path.is_file():
        raise BadEntry(f"{name} is missing or not a plain file")
    if path.stat().st_size != size:
        raise BadEntry(f"{name} has {path.stat().st_size} bytes, not {size}")
