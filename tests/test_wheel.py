"""A plain `pip install .` gives a working package: the built wheel holds every file the code
opens at run time, and the wheel alone (not the source tree) lists its tools, loads its prompts
and example pool, and runs the README's narrate workflow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def data_files() -> list[str]:
    """Every non-Python file in the package's source tree (prompts, py.typed, shipped workflows)."""
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "cadenza").rglob("*")
                  if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the project (a build writes build/ and *.egg-info beside its source)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "cadenza", src / "cadenza", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (whl,) = out.glob("cadenza-*.whl")
    return whl


def test_the_wheel_holds_every_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "cadenza/prompts/examples.jsonl" in data_files()
    missing = [f for f in data_files() if f not in names]
    assert not missing, f"the wheel lacks {missing}: add them to [tool.setuptools.package-data]"


def test_the_installed_wheel_alone_works(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"
    shutil.copytree(ROOT / "examples", work / "examples", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    # The wheel comes first on the path, so `cadenza` is imported from it, not from the source tree.
    env = {**os.environ, "PYTHONPATH": str(site), "CADENZA_CACHE_DIR": str(tmp_path / "cache")}

    def run(*args: str) -> subprocess.CompletedProcess:
        r = subprocess.run([sys.executable, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (args, r.stderr)
        return r

    code = ("import cadenza, pathlib; assert pathlib.Path(cadenza.__file__).is_relative_to(%r), cadenza.__file__\n"
            "from cadenza.prompts import load_prompt\n"
            "from cadenza.agent.examples import ExamplePool\n"
            "for p in pathlib.Path(cadenza.__file__).parent.joinpath('prompts').iterdir():\n"
            "    p.suffix != '.py' and p.is_file() and load_prompt(p.name)\n"
            "assert len(ExamplePool.builtin().examples) >= 40\n") % str(site)
    run("-c", code)
    assert "mix_audio" in run("-m", "cadenza.cli", "tools", "list").stdout
    r = run("-m", "cadenza.cli", "workflow", "run", "examples/workflows/narrate.yaml",
            "--input", "speech=examples/media/narration.wav", "--input", "music=examples/media/piano.wav",
            "--out", "out", "--json")
    assert '"status": "succeeded"' in r.stdout
