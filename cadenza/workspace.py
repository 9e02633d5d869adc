"""The run's workspace: where outputs go and which input paths a run may read.

A run may read only files under its allowed roots: the output directory and the
files (or folders) the user passed. Paths are resolved to real paths first, so a
symlink that points outside is refused like the path it points to, and the real path is what
the tool opens (media.open_media opens it without following a link swapped in afterwards).
A text argument that may be a path (a model, a voice: `LocalPath` in tools/types.py) is checked
the same way, and may also name the model folders the user configured (paths.py).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any

from .errors import InputError, MediaError, PathNotAllowedError
from .media import Media, file_sha256, hash_file
from .paths import configured_model_paths, looks_like_path

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # 'openai/whisper-base': a model hub name, not a path


class Workspace:
    def __init__(self, out_dir: str | os.PathLike, *, allowed: list[str | os.PathLike] = (), base_dir: str | os.PathLike | None = None):
        self._made_out_dir = not _exists(Path(out_dir).expanduser())  # see discard_if_unused
        self.out_dir = make_out_dir(out_dir)
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
        """A workspace whose allowed roots are `roots` plus every existing file among `values`, the
        media files the user named (callers pass only media values: a model or voice path is
        allowed through the configured model folders, never by being named). A file named inside
        a root already (the output folder, the workflow's folder) stays under that root's rules:
        a symlink in there that points elsewhere is not let in by naming it."""
        ws = cls(out_dir, allowed=list(roots))
        for value in values.values():
            for v in value if isinstance(value, list) else [value]:
                v = v.path if isinstance(v, Media) else v
                if not isinstance(v, (str, os.PathLike)) or not _exists(ws._absolute(v)):
                    continue
                lexical = Path(os.path.normpath(ws._absolute(v)))
                if not any(d in lexical.parents for d in ws._allowed_dirs):
                    ws.allow(v)
        return ws

    def discard_if_unused(self) -> None:
        """Remove the output folder if this workspace made it and nothing but empty folders is in
        it: bad input found before any step ran (an unreachable cluster, a missing file) leaves no
        empty folder behind. A folder the user made, or one holding any file, is left alone."""
        if not self._made_out_dir:
            return
        try:
            inside = sorted(self.out_dir.rglob("*"), key=lambda p: len(p.parts), reverse=True)  # deepest first
            if any(p.is_symlink() or not p.is_dir() for p in inside):
                return
            for p in [*inside, self.out_dir]:
                p.rmdir()
        except OSError:  # something appeared meanwhile, or no permission: keep what is there
            pass

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

    def allowed_roots(self) -> list[Path]:
        """The files and folders this run may read (a worker process rebuilds the workspace from them)."""
        return sorted(self._allowed_files) + list(self._allowed_dirs)

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

    def resolve_path_arg(self, value: str, sidecars: tuple[str, ...] = ()) -> str:
        """A text argument that may name a local file or folder (a model, a voice). A name (no
        separator, no leading '.' or '~', no such file here; or a hub id 'org/name' that is not a
        file here) comes back unchanged. A path must lie under the allowed roots or a model path
        the user configured, and comes back as its real path, which the tool then opens.
        `sidecars`: suffixes of files read beside it ('.json': `voice.onnx.json`); one that is a
        symlink must point inside too."""
        p = self._absolute(value)
        if not _exists(p):
            if not looks_like_path(value) or _HUB_ID.fullmatch(value):
                return value
            raise InputError(f"no such file or folder: {value[:200]}")
        real = p.resolve()
        models = configured_model_paths()

        def refuse_outside(target: Path, shown: str, link: bool) -> None:
            if not (self.is_allowed(target) or any(target == m or m in target.parents for m in models)):
                what = "symlink escapes the allowed roots" if link else "outside the allowed roots"
                raise PathNotAllowedError(f"path not allowed: {shown} ({what}: the output folder, the files "
                                          f"you passed and the model folders you configured)")

        refuse_outside(real, value, p.is_symlink() or real != p.absolute())
        for suffix in sidecars:  # a plain file beside an allowed one belongs with it; a link must point inside
            side = real.with_name(real.name + suffix)
            if side.is_symlink():
                refuse_outside(side.resolve(), side.name, True)
        return str(real)

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
            copy_file(path, target)
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


def copy_file(src: Path, dst: Path, expect_sha256: str | None = None) -> str:
    """An independent copy of `src` at `dst`, and the sha256 of what was copied: a reflink
    (copy-on-write clone) where the file system offers one, else a plain copy hashed as it is
    written (one read of the file for both). Written beside `dst` and renamed, so a failed copy
    (a full disk) or a digest other than `expect_sha256` leaves nothing behind (ValueError)."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        if _reflink(src, tmp):
            digest = hash_file(tmp) if expect_sha256 else ""  # shared blocks: read only to check
        else:
            h = hashlib.sha256()
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                for block in iter(lambda: fin.read(1 << 20), b""):
                    h.update(block)
                    fout.write(block)
            digest = h.hexdigest()
        if expect_sha256 and digest != expect_sha256:
            raise ValueError(f"{src.name} does not match its recorded sha256")
        os.replace(tmp, dst)
        return digest
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_FICLONE = 0x40049409  # Linux ioctl: share the blocks until either file is written (btrfs, XFS, ...)


def _reflink(src: Path, dst: Path) -> bool:
    try:
        import fcntl
    except ImportError:  # not Linux or macOS
        return False
    with open(src, "rb") as s, open(dst, "wb") as d:
        try:
            fcntl.ioctl(d.fileno(), _FICLONE, s.fileno())
            return True
        except OSError:
            return False


def make_out_dir(out_dir: str | os.PathLike) -> Path:
    """The output folder, made if needed; a path that cannot be one is bad input, said in one line."""
    path = Path(out_dir).expanduser()
    try:
        real = path.resolve()
        if real.exists() and not real.is_dir():
            raise InputError(f"output folder {out_dir}: is a file, not a folder")
        blocker = next((p for p in real.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise InputError(f"output folder {out_dir}: lies under {blocker}, which is a file")
        real.mkdir(parents=True, exist_ok=True)
        return real
    except OSError as e:  # a read-only file system, no permission, a name too long ...
        raise InputError(f"output folder {out_dir}: cannot be made ({e.strerror or e})") from None


def _exists(p: Path) -> bool:
    """Path.exists, but False for a value that cannot be a path at all (a long text argument
    raises 'File name too long'; a NUL byte raises ValueError)."""
    try:
        return p.exists()
    except (OSError, ValueError):
        return False
