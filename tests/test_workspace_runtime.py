"""Path safety of the workspace, and the model runtime's reuse, budget, eviction and OOM handling."""

import os

import pytest

from cadenza import Workspace
from cadenza.errors import GPUOutOfMemoryError, MediaError, PathNotAllowedError
from cadenza.runtime import ModelRuntime


def test_only_allowed_roots_are_readable(tmp_path):
    passed = tmp_path / "mine.wav"
    passed.write_bytes(b"x")
    other = tmp_path / "other.wav"
    other.write_bytes(b"y")
    ws = Workspace(tmp_path / "out", allowed=[passed])
    assert ws.resolve_input(passed) == passed.resolve()
    (tmp_path / "out" / "made.wav").write_bytes(b"z")
    assert ws.resolve_input(tmp_path / "out" / "made.wav")
    with pytest.raises(PathNotAllowedError, match="other.wav.*outside the allowed roots"):
        ws.resolve_input(other)
    with pytest.raises(PathNotAllowedError):
        ws.resolve_input(tmp_path / "out" / ".." / "other.wav")
    with pytest.raises(MediaError, match="input file not found"):
        ws.resolve_input(tmp_path / "missing.wav")


def test_symlink_escaping_the_workspace_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    ws = Workspace(tmp_path / "out")
    link = tmp_path / "out" / "innocent.wav"
    os.symlink(secret, link)
    with pytest.raises(PathNotAllowedError, match="symlink escapes"):
        ws.resolve_input(link)
    inside = tmp_path / "out" / "real.wav"
    inside.write_bytes(b"r")
    os.symlink(inside, tmp_path / "out" / "alias.wav")
    assert ws.resolve_input(tmp_path / "out" / "alias.wav") == inside.resolve()


def test_finalize_names_by_content(tmp_path):
    ws = Workspace(tmp_path / "out")
    a = ws.scratch_path("mix", ".wav")
    a.write_bytes(b"same")
    b = ws.scratch_path("mix", ".wav")
    b.write_bytes(b"same")
    fa, fb = ws.finalize(a, "mix"), ws.finalize(b, "mix")
    assert fa == fb and fa.read_bytes() == b"same" and not a.exists() and not b.exists()


class FakeModel:
    def __init__(self, name):
        self.name = name


def test_models_load_once_and_are_reused():
    rt = ModelRuntime(device="cpu")
    loads = []

    def loader(device, dtype):
        loads.append((device, dtype))
        return FakeModel("m")

    with rt.use("m", loader) as m1:
        pass
    with rt.use("m", loader) as m2:
        pass
    assert m1 is m2 and loads == [("cpu", "float32")]
    with rt.use("m", loader, dtype="bfloat16"):
        pass
    assert loads[-1] == ("cpu", "bfloat16")


def test_device_override_and_dtype_choice(monkeypatch):
    monkeypatch.setenv("CADENZA_DEVICE", "cuda:1")
    rt = ModelRuntime()
    assert rt.device == "cuda:1" and rt.resolve_dtype(rt.device) == "float16"
    rt.device = "cpu"
    assert rt.device == "cpu" and rt.resolve_dtype("cpu") == "float32"
    monkeypatch.delenv("CADENZA_DEVICE")
    assert ModelRuntime().device in ("cpu", "cuda")


def test_gpu_budget_evicts_least_recently_used_idle_models():
    rt = ModelRuntime(device="cuda:0", gpu_budget_gb=10)
    load = lambda name: (lambda d, t: FakeModel(name))  # noqa: E731
    with rt.use("a", load("a"), memory_gb=4):
        pass
    with rt.use("b", load("b"), memory_gb=4):
        pass
    with rt.use("a", load("a"), memory_gb=4):  # a is now the most recently used
        pass
    with rt.use("c", load("c"), memory_gb=4):  # needs room: b (least recent) goes
        pass
    assert rt.evictions == ["b"]
    assert sorted(m.key for m in rt.loaded()) == ["a", "c"]
    with rt.use("a", load("a"), memory_gb=4):  # a model in use is never evicted
        with rt.use("d", load("d"), memory_gb=4):
            pass
    assert "a" not in rt.evictions and rt.evictions == ["b", "c"]


class FakeOOM(RuntimeError):
    pass


def test_out_of_memory_frees_others_retries_once_then_fails_clearly():
    rt = ModelRuntime(device="cuda:0", gpu_budget_gb=100)
    with rt.use("idle", lambda d, t: FakeModel("idle"), memory_gb=50):
        pass
    attempts = []

    def flaky_loader(device, dtype):
        attempts.append(1)
        if len(attempts) == 1:
            raise FakeOOM("CUDA out of memory. Tried to allocate 2.00 GiB")
        return FakeModel("big")

    with rt.use("big", flaky_loader, memory_gb=60) as m:
        assert m.name == "big"
    assert rt.evictions == ["idle"] and len(attempts) == 2

    def always_oom(device, dtype):
        raise FakeOOM("CUDA out of memory")

    with pytest.raises(GPUOutOfMemoryError, match="GPU out of memory loading huge on cuda:0"):
        with rt.use("huge", always_oom, memory_gb=1):
            pass
    runs = []

    def infer():
        runs.append(1)
        if len(runs) == 1:
            raise FakeOOM("out of memory")
        return "ok"

    assert rt.call(infer) == "ok" and len(runs) == 2
    with pytest.raises(GPUOutOfMemoryError, match="even after freeing"):
        rt.call(lambda: (_ for _ in ()).throw(FakeOOM("out of memory")), what="generate")
    with pytest.raises(ValueError):  # other errors pass through untouched
        rt.call(lambda: (_ for _ in ()).throw(ValueError("bad")))


def test_real_torch_module_moves_to_the_chosen_device():
    torch = pytest.importorskip("torch")
    rt = ModelRuntime(device="cpu", dtype="float64")
    with rt.use("lin", lambda d, t: torch.nn.Linear(2, 2).to(device=d, dtype=getattr(torch, t))) as lin:
        assert lin.weight.dtype == torch.float64 and lin.weight.device.type == "cpu"
