"""Plugins: the example plugin installs and runs, broken plugins are skipped and reported, LangChain export.

The plugin tests install `examples/plugin` with pip into a temporary folder and
put it on PYTHONPATH of `cadenza` subprocesses, so nothing is installed into the
environment running the tests.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cadenza import Registry
from cadenza.tools.registry import BUILTIN_PLUGINS, builtin_tools
from tests.media_factory import silence, tone, write_audio

REPO = Path(__file__).resolve().parents[1]
PLUGIN_SRC = REPO / "examples" / "plugin"
BUILTIN_NAMES = {t.name for t in builtin_tools()}


def run_py(args: list, *, pythonpath: list[Path] = (), cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    paths = [str(p) for p in pythonpath] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "CADENZA_CACHE_DIR": str(cwd / ".cache")}
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)


def cadenza(*args, pythonpath: list[Path] = (), cwd: Path) -> subprocess.CompletedProcess:
    return run_py(["-m", "cadenza.cli", *args], pythonpath=pythonpath, cwd=cwd, timeout=120)


def one_json(r: subprocess.CompletedProcess) -> dict:
    """--json prints exactly one JSON object on stdout, whatever goes to stderr."""
    assert r.stdout.strip(), f"no output (exit {r.returncode}); stderr:\n{r.stderr}"
    return json.loads(r.stdout)


def _setuptools_builds_wheels() -> bool:
    """setuptools builds wheels by itself from 70.1 on; before that it needs the `wheel` package."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    if importlib.util.find_spec("wheel") is not None:
        return True
    major_minor = tuple(int(n) for n in re.findall(r"\d+", importlib.metadata.version("setuptools"))[:2])
    return major_minor >= (70, 1)


# -- the example plugin, installed -------------------------------------------------------
@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """examples/plugin installed with pip into a folder of its own (returned)."""
    root = tmp_path_factory.mktemp("plugin")
    # Build from a copy: pip builds in the source tree, and setuptools would leave build/ and
    # *.egg-info in the repository (and race with a parallel run).
    src = root / "src"
    shutil.copytree(PLUGIN_SRC, src, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info",
                                                                   ".pytest_cache"))
    site = root / "site"
    cmd = ["-m", "pip", "install", "--no-deps", "--no-input", "--disable-pip-version-check", "--target", site]
    if _setuptools_builds_wheels():
        cmd.append("--no-build-isolation")  # the usual case: build with the setuptools installed here
    # else pip fetches setuptools into an isolated build environment
    r = run_py([*cmd, src], cwd=root)
    assert r.returncode == 0, f"pip install of the example plugin failed:\n{r.stdout}\n{r.stderr}"
    assert (site / "cadenza_silence.py").exists()
    return site


@pytest.fixture
def padded_wav(tmp_path) -> Path:
    """3 s: 1 s of silence, a 1 s tone, 1 s of silence."""
    import numpy as np

    rate = 16000
    t = np.arange(rate) / rate
    pad = np.zeros(rate)
    return write_audio(tmp_path / "take.wav", np.concatenate([pad, 0.5 * np.sin(2 * np.pi * 440 * t), pad]), rate)


def test_installed_plugin_declares_its_entry_point(plugin_site):
    (dist,) = plugin_site.glob("cadenza_silence-*.dist-info")
    entry_points = (dist / "entry_points.txt").read_text()
    assert "[cadenza.tools]" in entry_points
    assert re.search(r"^silence\s*=\s*cadenza_silence\s*$", entry_points, re.M)


def test_installed_plugin_tool_is_listed_and_reported_loaded(plugin_site, tmp_path):
    r = cadenza("tools", "list", "--json", pythonpath=[plugin_site], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    tools = {t["name"]: t for t in one_json(r)["tools"]}
    assert "strip_silence" in tools
    assert BUILTIN_NAMES <= set(tools)
    assert tools["strip_silence"]["signature"] == "strip_silence(audio: audio, threshold_db?: number, keep_ms?: integer) -> audio"
    assert "skipped plugin" not in r.stderr

    r = cadenza("tools", "show", "strip_silence", "--json", pythonpath=[plugin_site], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    spec = one_json(r)
    assert set(spec["inputs"]) == {"audio", "threshold_db", "keep_ms"}
    assert spec["inputs"]["threshold_db"]["default"] == -40.0
    assert [(b["name"], b["available"]) for b in spec["backends"]] == [("pydub", True)]

    r = cadenza("doctor", "--json", pythonpath=[plugin_site], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    plugins = one_json(r)["plugins"]
    assert "silence" in plugins["loaded"]
    assert not [f for f in plugins["failed"] if "silence" in f["plugin"]]


def test_without_the_plugin_on_the_path_it_is_not_listed(tmp_path):
    r = cadenza("tools", "list", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    names = {t["name"] for t in one_json(r)["tools"]}
    if importlib.util.find_spec("cadenza_silence") is None:
        assert "strip_silence" not in names
    assert BUILTIN_NAMES <= names


def test_installed_plugin_runs_through_the_cli(plugin_site, padded_wav, tmp_path):
    out_dir = tmp_path / "out"
    r = cadenza("tools", "run", "strip_silence", "--arg", f"audio={padded_wav}", "--arg", "keep_ms=100",
                "--out", out_dir, "--json", pythonpath=[plugin_site], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    res = one_json(r)
    assert res["status"] == "succeeded" and res["errors"] == []
    result = res["outputs"]["result"]
    out = Path(result["path"])
    assert out.exists() and out.parent == out_dir.resolve()
    assert result["kind"] == "audio"
    assert result["duration"] == pytest.approx(1.2, abs=0.02)
    assert out.stat().st_size < padded_wav.stat().st_size
    run = json.loads(Path(res["run_json"]).read_text())
    (step,) = run["steps"]
    assert step["tool"] == "strip_silence" and step["backend"] == "pydub"
    assert any("removed" in n for n in step["notes"])


def test_installed_plugin_notes_silent_audio_through_the_cli(plugin_site, tmp_path):
    quiet = silence(tmp_path / "quiet.wav", seconds=1.5, rate=16000)
    r = cadenza("tools", "run", "strip_silence", "--arg", f"audio={quiet}", "--out", tmp_path / "out", "--json",
                pythonpath=[plugin_site], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    res = one_json(r)
    assert res["outputs"]["result"]["duration"] == pytest.approx(1.5, abs=0.01)
    (step,) = json.loads(Path(res["run_json"]).read_text())["steps"]
    assert any("silent" in n for n in step["notes"])


def test_plugin_own_tests_pass_against_the_installed_plugin(plugin_site, tmp_path):
    # The plugin's conftest adds its source folder only when cadenza_silence is not importable:
    # here the installed copy must be the one found.
    probe = run_py(["-c", "import cadenza_silence; print(cadenza_silence.__file__)"], pythonpath=[plugin_site],
                   cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    assert Path(probe.stdout.strip()).resolve().parent == plugin_site.resolve()

    r = run_py(["-m", "pytest", "-q", "-p", "no:cacheprovider", PLUGIN_SRC / "tests" / "test_strip_silence.py"],
               pythonpath=[plugin_site], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"\b\d+ passed\b", r.stdout) and " failed" not in r.stdout


# -- broken plugins ----------------------------------------------------------------------
BROKEN_IMPORT = """\
raise ImportError("broken_import_plugin needs the package 'no_such_dependency_xyz'")
"""

BROKEN_HOOK = """\
import cadenza


@cadenza.hookimpl
def register_tools(register):
    raise RuntimeError("broken_hook_plugin failed while registering")
"""

# Two tools, the second a duplicate of a built-in name: registration fails part way.
DUPLICATE_NAME = """\
import cadenza


@cadenza.tool
def harmless_extra(text: str) -> str:
    \"\"\"Echo text.\"\"\"
    return text


@cadenza.tool
def fade_audio(text: str) -> str:
    \"\"\"Clashes with the built-in fade_audio.\"\"\"
    return text


@cadenza.hookimpl
def register_tools(register):
    register(harmless_extra)
    register(fade_audio)
"""

GOOD = """\
import cadenza


@cadenza.tool
def shout(text: str) -> str:
    \"\"\"Upper-case text.\"\"\"
    return text.upper()


@cadenza.hookimpl
def register_tools(register):
    register(shout)
"""


def fake_distribution(site: Path, dist: str, ep_name: str, module: str, source: str) -> Path:
    """A minimal installed distribution: a .dist-info with an entry point, plus its module."""
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[cadenza.tools]\n{ep_name} = {module}\n")
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    return site


@pytest.mark.parametrize("dist, ep_name, module, source, error", [
    ("broken_plugin", "broken_import", "broken_import_plugin", BROKEN_IMPORT,
     "ImportError: broken_import_plugin needs the package 'no_such_dependency_xyz'"),
    ("broken_hook_plugin", "broken_hook", "broken_hook_plugin", BROKEN_HOOK,
     "RuntimeError: broken_hook_plugin failed while registering"),
], ids=["import-fails", "hook-raises"])
def test_broken_plugin_is_skipped_and_reported(tmp_path, dist, ep_name, module, source, error):
    site = fake_distribution(tmp_path / "site", dist, ep_name, module, source)

    r = cadenza("tools", "list", "--json", pythonpath=[site], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    names = {t["name"] for t in one_json(r)["tools"]}
    assert BUILTIN_NAMES <= names
    assert f"skipped plugin {ep_name} ({module})" in r.stderr  # one warning line says so

    r = cadenza("doctor", "--json", pythonpath=[site], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rep = one_json(r)
    assert ep_name not in rep["plugins"]["loaded"]
    failed = [f for f in rep["plugins"]["failed"] if f["plugin"] == f"{ep_name} ({module})"]
    assert failed == [{"plugin": f"{ep_name} ({module})", "error": error}]
    assert BUILTIN_NAMES <= {t["name"] for t in rep["tools"]}

    # The application keeps working: a built-in tool still runs.
    wav = tone(tmp_path / "a.wav", seconds=1.0)
    r = cadenza("tools", "run", "fade_audio", "--arg", f"audio={wav}", "--arg", "fade_in=0.2", "--out",
                tmp_path / "out", "--json", pythonpath=[site], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert Path(one_json(r)["outputs"]["result"]["path"]).exists()


def test_broken_and_good_plugins_together(tmp_path, plugin_site):
    site = fake_distribution(tmp_path / "site", "broken_plugin", "broken_import", "broken_import_plugin", BROKEN_IMPORT)
    fake_distribution(site, "broken_hook_plugin", "broken_hook", "broken_hook_plugin", BROKEN_HOOK)
    r = cadenza("doctor", "--json", pythonpath=[site, plugin_site], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rep = one_json(r)
    assert "silence" in rep["plugins"]["loaded"]
    assert "strip_silence" in {t["name"] for t in rep["tools"]}
    failed = {f["plugin"] for f in rep["plugins"]["failed"]}
    assert {"broken_import (broken_import_plugin)", "broken_hook (broken_hook_plugin)"} <= failed


EXITS_ON_IMPORT = """\
import sys

sys.exit(3)
"""

EXITS_IN_HOOK = """\
import sys

import cadenza


@cadenza.hookimpl
def register_tools(register):
    sys.exit()
"""

CHATTY = """\
import cadenza

print("hello from a chatty plugin")


@cadenza.tool
def chatty_echo(text: str) -> str:
    \"\"\"Echo text.\"\"\"
    return text


@cadenza.hookimpl
def register_tools(register):
    print("registering chatty_echo")
    register(chatty_echo)
"""


def test_plugins_that_exit_or_print_leave_the_command_and_its_json_alone(tmp_path):
    site = fake_distribution(tmp_path / "site", "exit_import_plugin", "exit_import", "exit_import_plugin",
                             EXITS_ON_IMPORT)
    fake_distribution(site, "exit_hook_plugin", "exit_hook", "exit_hook_plugin", EXITS_IN_HOOK)
    fake_distribution(site, "chatty_plugin", "chatty", "chatty_plugin", CHATTY)

    r = cadenza("tools", "list", "--json", pythonpath=[site], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    names = {t["name"] for t in one_json(r)["tools"]}  # stdout holds the JSON object alone
    assert BUILTIN_NAMES | {"chatty_echo"} <= names
    assert "hello from a chatty plugin" in r.stderr and "registering chatty_echo" in r.stderr
    assert "skipped plugin exit_import (exit_import_plugin): SystemExit" in r.stderr
    assert "skipped plugin exit_hook (exit_hook_plugin): SystemExit" in r.stderr

    r = cadenza("doctor", "--json", pythonpath=[site], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    failed = {f["plugin"]: f["error"] for f in one_json(r)["plugins"]["failed"]}
    assert failed["exit_import (exit_import_plugin)"] == "SystemExit: the plugin called sys.exit(3)"
    assert failed["exit_hook (exit_hook_plugin)"] == "SystemExit: the plugin called sys.exit(None)"


# -- the same at the registry level, in process ----------------------------------------
@pytest.fixture
def entry_points_from(monkeypatch, tmp_path):
    """Make Registry.load_plugins see exactly the given (name, module source) plugins."""

    def install(plugins: dict[str, str]) -> None:
        mods = tmp_path / "mods"
        mods.mkdir(exist_ok=True)
        eps = []
        for i, (name, source) in enumerate(plugins.items()):
            module = f"cadenza_test_plugin_{name}_{i}"
            (mods / f"{module}.py").write_text(textwrap.dedent(source))
            monkeypatch.delitem(sys.modules, module, raising=False)
            eps.append(importlib.metadata.EntryPoint(name=name, value=module, group="cadenza.tools"))
        monkeypatch.syspath_prepend(str(mods))

        def fake_entry_points(**kw):
            return [ep for ep in eps if kw.get("group") in (None, ep.group)]

        monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)

    return install


def load(reg: Registry) -> list[str]:
    """load_plugins, returning the warnings it logged."""
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("cadenza")
    logger.addHandler(handler)
    try:
        reg.load_plugins()
    finally:
        logger.removeHandler(handler)
    return [r.getMessage() for r in records if r.levelno == logging.WARNING]


def test_registry_loads_good_plugins_and_records_broken_ones(entry_points_from):
    entry_points_from({"good": GOOD, "bad_import": BROKEN_IMPORT, "bad_hook": BROKEN_HOOK})
    reg = Registry()
    warned = load(reg)
    assert reg.plugins == [*BUILTIN_PLUGINS, "good"]
    assert "shout" in reg and reg.get("shout")(text="hi") == "HI"
    assert set(BUILTIN_NAMES) <= set(reg.names())
    errors = {e.plugin.split(" ")[0]: e.error for e in reg.plugin_errors}
    assert errors == {
        "bad_import": "ImportError: broken_import_plugin needs the package 'no_such_dependency_xyz'",
        "bad_hook": "RuntimeError: broken_hook_plugin failed while registering",
    }
    assert len(warned) == 2 and all(w.startswith("cadenza: skipped plugin bad_") for w in warned)


def test_registry_refuses_a_plugin_tool_that_shadows_a_builtin(entry_points_from):
    entry_points_from({"dupe": DUPLICATE_NAME})
    reg = Registry()
    from cadenza.tools.audio.edit import fade_audio as builtin_fade

    load(reg)
    assert reg.plugins == list(BUILTIN_PLUGINS)
    (err,) = reg.plugin_errors
    assert err.plugin.startswith("dupe (") and "fade_audio" in err.error and "already registered" in err.error
    assert reg.get("fade_audio") is builtin_fade  # the built-in is untouched


def test_a_failed_plugin_registers_none_of_its_tools(entry_points_from):
    entry_points_from({"dupe": DUPLICATE_NAME})
    reg = Registry()
    load(reg)
    assert [e.plugin.split(" ")[0] for e in reg.plugin_errors] == ["dupe"]
    assert "harmless_extra" not in reg


def test_registry_skips_a_plugin_that_exits_and_keeps_stdout_clean(entry_points_from, capsys):
    entry_points_from({"exits": EXITS_ON_IMPORT, "exits_hook": EXITS_IN_HOOK, "chatty": CHATTY, "good": GOOD})
    reg = Registry()
    warned = load(reg)
    assert reg.plugins == [*BUILTIN_PLUGINS, "chatty", "good"]
    assert "chatty_echo" in reg and "shout" in reg
    assert [e.plugin.split(" ")[0] for e in reg.plugin_errors] == ["exits", "exits_hook"]
    assert all(e.error.startswith("SystemExit: the plugin called sys.exit(") for e in reg.plugin_errors)
    assert len(warned) == 2
    out, err = capsys.readouterr()
    assert out == "" and "hello from a chatty plugin" in err


def test_registry_with_no_plugins(entry_points_from):
    entry_points_from({})
    reg = Registry()
    assert load(reg) == []
    assert reg.plugins == list(BUILTIN_PLUGINS) and reg.plugin_errors == []
    assert set(reg.names()) == BUILTIN_NAMES


# -- LangChain ---------------------------------------------------------------------------
def test_to_langchain_structured_tool(tmp_path, monkeypatch):
    pytest.importorskip("langchain_core")
    from cadenza.tools.audio.edit import fade_audio

    monkeypatch.chdir(tmp_path)  # direct calls may read files under the working directory
    wav = tone(tmp_path / "in.wav", seconds=1.0)
    lc = fade_audio.to_langchain()
    assert lc.name == "fade_audio"
    assert lc.description == fade_audio.description
    assert set(lc.args) == {"audio", "fade_in", "fade_out"}  # the ToolContext is not an argument
    schema = lc.args_schema.model_json_schema()
    assert schema["required"] == ["audio"]
    assert schema["properties"]["fade_in"]["type"] == "number"

    out = lc.invoke({"audio": str(wav), "fade_in": 0.5})
    assert isinstance(out, str)
    result = json.loads(out)
    assert result["kind"] == "audio"
    assert Path(result["path"]).is_file()
    assert result["duration"] == pytest.approx(1.0, abs=0.02)
