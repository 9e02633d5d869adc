"""Pieces shared by the heavy music tests (test_music_heavy_musicgen.py, test_music_heavy_diffusers.py):
a tiny T5 tokenizer and config, a tool context, the float16 devices, and two fixtures, which each test
module binds to a name of its own (pytest looks fixtures up by name in the module).

Imported after `pytest.importorskip("torch")` and `("transformers")`: it needs both.
"""

from __future__ import annotations

import pytest
import torch

from cadenza.runtime import ModelRuntime
from cadenza.tools.base import ToolContext
from cadenza.workspace import Workspace

WORDS = "calm piano rain on a tin roof drums slow fast jazz rock loud soft with and".split()


def tiny_t5_tokenizer():
    """A T5 tokenizer (Unigram, built with `tokenizers`: no sentencepiece file needed) over a few words."""
    from transformers import T5Tokenizer

    vocab = ([("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
             + [("\u2581" + w, -3.0) for w in WORDS] + [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz"])
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def tiny_t5_config(vocab_size: int):
    from transformers import T5Config

    return T5Config(vocab_size=vocab_size, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                    relative_attention_num_buckets=8)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core machine two threads contend:
    one thread makes these tests several times faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def ctx_for(tmp_path, runtime: ModelRuntime | None = None) -> ToolContext:
    return ToolContext(workspace=Workspace.for_run(tmp_path / "out"), step_id="music",
                       runtime=runtime or ModelRuntime(device="cpu"))


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


# On CPU with dtype float16 (torch runs these ops in half precision on CPU too), and on CUDA when
# there is one (the runtime's own default there: float16).
NO_CUDA = not torch.cuda.is_available()
DEVICES = [pytest.param("cpu", id="cpu-float16"),
           pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(NO_CUDA, reason="needs CUDA"))]


def resident(runtime: ModelRuntime, prefix: str):
    (entry,) = [e for e in runtime.loaded() if e.key.startswith(prefix)]
    return entry
