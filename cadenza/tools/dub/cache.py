"""The per-line cache of speak_lines: a re-run after one edited line synthesizes that line alone.

Two kinds of entry under `cadenza.paths.cache_dir() / "lines"` (CADENZA_CACHE_DIR moves it):

- `raw-<key>.wav`: a line's text as synthesized; key = sha256 of (backend, voice, language,
  text, pace, tool version);
- `fit-<key>.wav` + `fit-<key>.json`: the line fitted to its slot and what was done (speed,
  action, warnings, the text actually spoken when a shorter one was asked for); key = sha256 of
  the raw key's fields plus the slot, the usable gap and every fitting setting.

A fitted entry spares the synthesis, the fitting and any LLM call; a raw entry spares the
synthesis when only the fitting changed. Files are written beside their name and renamed, so a
reader never sees half an entry; an entry that cannot be read is removed and made again.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import wave
from pathlib import Path
from typing import Any

import numpy as np

from ...paths import cache_dir


def line_key(**fields: Any) -> str:
    """A stable sha256 of the fields (floats rounded to the millisecond, so noise does not miss)."""
    norm = {k: round(v, 3) if isinstance(v, float) else v for k, v in fields.items()}
    return hashlib.sha256(json.dumps(norm, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class LineCache:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else cache_dir() / "lines"

    def _path(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / f"{kind}-{key}{suffix}"

    def get_audio(self, kind: str, key: str) -> tuple[np.ndarray, int] | None:
        path = self._path(kind, key, ".wav")
        if not path.exists():
            return None
        try:
            with wave.open(str(path), "rb") as w:
                rate, n = w.getframerate(), w.getnframes()
                data = np.frombuffer(w.readframes(n), "<i2").astype(np.float32) / 32767
            return data, rate
        except (OSError, EOFError, wave.Error):
            path.unlink(missing_ok=True)
            return None

    def put_audio(self, kind: str, key: str, samples: np.ndarray, rate: int) -> None:
        pcm = np.clip(np.rint(np.asarray(samples, np.float32) * 32767), -32768, 32767).astype("<i2")

        def write(tmp: Path) -> None:
            with wave.open(str(tmp), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(rate)
                w.writeframes(pcm.tobytes())

        self._atomic(self._path(kind, key, ".wav"), write)

    def get_meta(self, key: str) -> dict | None:
        path = self._path("fit", key, ".json")
        if not path.exists() or not self._path("fit", key, ".wav").exists():
            return None
        try:
            meta = json.loads(path.read_text())
            return meta if isinstance(meta, dict) else None
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            return None

    def get_fit(self, key: str) -> tuple[np.ndarray, int, dict] | None:
        meta = self.get_meta(key)
        audio = self.get_audio("fit", key) if meta is not None else None
        return None if audio is None else (audio[0], audio[1], meta)

    def put_fit(self, key: str, samples: np.ndarray, rate: int, meta: dict) -> None:
        self.put_audio("fit", key, samples, rate)  # the audio first: meta without audio is a miss
        self._atomic(self._path("fit", key, ".json"),
                     lambda tmp: tmp.write_text(json.dumps(meta, ensure_ascii=False)))

    def _atomic(self, path: Path, write) -> None:
        """Write through a temporary file beside `path`; a cache that cannot be written is skipped."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
            try:
                write(tmp)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError:  # a full or read-only cache disk costs speed, never the result
            pass
