"""The run's workspace: where outputs go and which input paths a run may read.

A run may read only files under its allowed roots: the output directory and the
files (or folders) the user passed. Paths are resolved to real paths first, so a
symlink that points outside is refused like the path it points to.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from .errors import MediaError, PathNotAllowedError
from .media import Media, file_sha256


class Workspace:
    def __init__(self, out_dir: str | os.PathLike, *, allowed: list[str | os.PathLike] = (), base_dir: str | os.PathLike | None = None):
        self.out_dir = Path(out_dir).expanduser().resolve()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.scratch_dir = self.out_dir / ".cadenza" / "scratch"
        self.base_dir = Path(base_dir or os.getcwd()).resolve()  # relative input paths start here
        self._allowed_files: set[Path] = set()
        self._allowed_dirs: list[Path] = [self.out_dir]
        self._counter = itertools.count()
        self._lock = threading.Lock()
        for p in allowed:
            self.allow(p)

    @classmethod
    def for_run(cls, out_dir: str | os.PathLike, values: dict[str, Any] = {}, roots: list[str | os.PathLike] = ()) -> "Workspace":
        """A workspace whose allowed roots are `roots` plus every existing file among the user's values."""
        ws = cls(out_dir, allowed=list(roots))
        for value in values.values():
            for v in value if isinstance(value, list) else [value]:
                v = v.path if isinstance(v, Media) else v
                if isinstance(v, (str, os.PathLike)) and _exists(ws._absolute(v)):
                    ws.allow(v)
        return ws

    def allow(self, path: str | os.PathLike) -> Path:
        """Add a file or folder the user passed to the allowed roots."""
        real = self._absolute(path).resolve()
        if real.is_dir():
            self._allowed_dirs.append(real)
        else:
            self._allowed_files.add(real)
        return real

    def is_allowed(self, real: Path) -> bool:
        return real in self._allowed_files or any(real == d or d in real.parents for d in self._allowed_dirs)

    def resolve_input(self, value: str | os.PathLike, kind: str = "input") -> Path:
        """Real path of an input file, after checking it exists and lies under an allowed root."""
        p = self._absolute(value)
        if not _exists(p):
            raise MediaError(f"{kind} file not found: {str(value)[:200]}")
        real = p.resolve()
        if not self.is_allowed(real):
            what = "symlink escapes the allowed roots" if p.is_symlink() or real != p.absolute() else "outside the allowed roots"
            raise PathNotAllowedError(f"path not allowed: {value} ({what}: the output folder and the files you passed)")
        return real

    def scratch_path(self, stem: str, suffix: str) -> Path:
        """A fresh path for a tool to write to; `finalize` gives it its lasting name."""
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            n = next(self._counter)
        suffix = suffix if suffix.startswith(".") or not suffix else "." + suffix
        return self.scratch_dir / f"{stem}-{os.getpid()}-{n}{suffix}"

    def finalize(self, path: Path, stem: str) -> Path:
        """Move a produced file into the output folder under a content-derived name."""
        path = Path(path)
        target = self.out_dir / f"{stem}-{file_sha256(path)[:12]}{path.suffix.lower()}"
        if path.resolve() == target.resolve():
            return target
        if target.exists():  # same name means same content: keep the one we have
            if self.scratch_dir in path.resolve().parents:
                path.unlink()
            return target
        if self.scratch_dir in path.resolve().parents:
            os.replace(path, target)
        else:  # a file the tool wrote elsewhere (or an input passed through): copy, never move
            shutil.copy2(path, target)
        return target

    def finalize_value(self, value: Any, stem: str) -> Any:
        """`finalize` every Media in an output value (a media file or a list of them)."""
        if isinstance(value, Media):
            return value.model_copy(update={"path": self.finalize(value.path, stem)})
        if isinstance(value, list):
            return [self.finalize_value(v, f"{stem}-{i}") for i, v in enumerate(value)]
        return value

    def _absolute(self, value: str | os.PathLike) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p


def _exists(p: Path) -> bool:
    """Path.exists, but False for a value that cannot be a path at all (a long text argument
    raises 'File name too long'; a NUL byte raises ValueError)."""
    try:
        return p.exists()
    except (OSError, ValueError):
        return False
