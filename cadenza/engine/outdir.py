"""The output folder a run owns: a lock against a second run, and `run.json` written safely.

- One run at a time per output folder: a second run into the same `--out` is refused with a
  clear message (exit 2), not left to overwrite the first one's `run.json`. The lock is an
  `flock` on `.cadenza/run.lock`, so it goes away with the process however it ends.
- `run.json` is written to a temporary file and renamed over the old one: a reader sees a
  whole record, never half of one. The run keeps a small reserve file; if the disk fills
  up, the reserve is given back and the write tried again, so the final record still fits.
  If even that fails, the previous good copy stays (never a truncated one).
"""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path
from typing import Any

from ..errors import InputError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs into one folder are then not kept apart
    fcntl = None

# Room kept back for the last run.json writes on a full disk: about what a record of that many steps takes.
RESERVE_BASE_BYTES = 64 << 10
RESERVE_BYTES_PER_STEP = 2 << 10
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in _DISK_FULL


class RunLock:
    """Holds `out_dir/.cadenza/run.lock` for the life of a run."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.path = out_dir / ".cadenza" / "run.lock"
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise InputError(f"output folder {self.out_dir}: not writable ({e.strerror or e})") from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise InputError(f"output folder {self.out_dir} is in use by another run (pid {holder}): "
                                 f"wait for it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


class RecordWriter:
    """Writes a run's record as JSON, atomically, with a reserve kept for a full disk."""

    def __init__(self, path: Path, steps: int = 0):
        self.path = path
        self.reserve = path.parent / ".cadenza" / "reserve"
        self.problem: str | None = None  # why the last write did not land, for the run's notes
        self._lock = threading.Lock()
        try:
            self.reserve.parent.mkdir(parents=True, exist_ok=True)
            with open(self.reserve, "wb") as f:
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(f.fileno(), 0, RESERVE_BASE_BYTES + steps * RESERVE_BYTES_PER_STEP)
        except OSError:  # no room even for the reserve: writes will say so
            self.reserve.unlink(missing_ok=True)

    def write(self, doc: dict[str, Any], *, pretty: bool = False) -> bool:
        """Replace the record; True when it landed. Compact while running (indent=2 falls back to
        the slow pure-Python encoder), pretty at the end."""
        return self.write_text(json.dumps(doc, indent=2 if pretty else None, default=str))

    def write_text(self, text: str) -> bool:
        """Replace the record with `text` (JSON the caller assembled); True when it landed."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    atomic_write_text(self.path, text)
                    return True
                except OSError as e:
                    if attempt == 1 and is_disk_full(e) and self.reserve.exists():
                        self.reserve.unlink()  # give its room to the record, then try again
                        continue
                    self.problem = f"could not update {self.path}: {'disk full' if is_disk_full(e) else e.strerror or e}"
                    return False
        return False

    def close(self) -> None:
        self.reserve.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file. On
    failure the temporary file is removed and `path` keeps its previous content."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
