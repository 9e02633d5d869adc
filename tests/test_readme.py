"""The README's examples run as written: its shell commands and its Python blocks."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"(<!-- fragment[^>]*-->\n)?```(\w+)\n(.*?)```", re.S)


def blocks(lang: str) -> list[str]:
    return [body for frag, kind, body in BLOCK.findall(README) if kind == lang and not frag]


def cadenza_commands() -> list[str]:
    cmds = []
    for body in blocks("bash"):
        for line in body.splitlines():
            line = line.split("  #")[0].strip()
            if "&&" in line:  # "install && run": the install part is what CI itself does
                line = line.split("&&", 1)[1].strip()
            if line.startswith("cadenza "):
                cmds.append(line)
    return cmds


@pytest.fixture()
def project(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    return tmp_path


def test_readme_has_the_two_setup_commands():
    bash = "\n".join(blocks("bash"))
    assert "python3 -m pip install -e . && cadenza workflow run examples/workflows/narrate.yaml" in bash
    test_command = ("""sh scripts/system-deps && CMAKE_ARGS="$(sh scripts/llama-cmake-args)" python3 -m pip install """
                    """-e '.[test]' && python3 -m pytest""")
    assert test_command in bash
    assert test_command in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("command", cadenza_commands())
def test_readme_command_runs(command, project):
    env = {**os.environ, "CADENZA_CACHE_DIR": str(project / ".cache")}
    argv = shlex.split(command)
    r = subprocess.run([sys.executable, "-m", "cadenza.cli", *argv[1:]], cwd=project, env=env,
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, (command, r.stderr)


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_readme_python_block_runs(index, project):
    code = blocks("python")[index]
    r = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "CADENZA_CACHE_DIR": str(project / ".cache")})
    assert r.returncode == 0, (code, r.stderr)
