"""Hardening: YAML limits (alias bombs, deep nesting), long plans without recursion, a workflow's
relative asset paths, control characters escaped on the terminal, `tools run --arg` values as
literals."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cadenza import Registry, tool
from cadenza.engine.executor import Event
from cadenza.engine.plan import Plan, iter_refs
from cadenza.engine.validate import validate_plan
from cadenza.engine.workflow import (MAX_DEPTH, MAX_NODES, load_workflow, parse_workflow, run_workflow,
                                     safe_load_yaml)
from cadenza.errors import InputError, WorkflowError, printable
from tests.media_factory import tone

N_STEPS = 2000  # beyond Python's default recursion limit (1000)


def cadenza(*args, cwd: Path, pythonpath: list[Path] = (), timeout: float = 120) -> subprocess.CompletedProcess:
    paths = [str(p) for p in pythonpath] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "CADENZA_CACHE_DIR": str(Path(cwd) / ".cache")}
    env.pop("CADENZA_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "cadenza.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def error_line(r: subprocess.CompletedProcess, code: int) -> str:
    """The one `error:` line of a refused command; no traceback."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def alias_bomb() -> str:
    """'Billion laughs': nine aliases of nine aliases ..., 9^9 strings once expanded (under 700 bytes)."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    lines.append("inputs: {a: {type: audio}}")
    lines.append("steps: [{id: cut, tool: trim_audio, args: {audio: $a, start: *i}}]")
    return "\n".join(lines) + "\n"


def chain(n: int, tool_name: str, arg: str, start: str, extra: str = "") -> str:
    """A chain s0 -> s1 -> ... listed last step first, so a depth-first walk goes n deep."""
    lines = [f"inputs: {{{start}}}", "steps:"]
    for i in reversed(range(n)):
        src = "$x" if i == 0 else f"$s{i - 1}"
        lines.append(f"  - {{id: s{i}, tool: {tool_name}, args: {{{arg}: {src}{extra}}}}}")
    lines.append(f"outputs: {{last: $s{n - 1}}}")
    return "\n".join(lines) + "\n"


@tool
def inc(n: int) -> int:
    """Add one."""
    return n + 1


# -- YAML limits ---------------------------------------------------------------------------
def test_alias_bomb_is_refused_at_once(tmp_path):
    text = alias_bomb()
    assert len(text.encode()) < 700
    t0 = time.monotonic()
    with pytest.raises(WorkflowError, match=rf"bomb.yaml line \d+, column \d+: YAML aliases expand to more than "
                                            rf"{MAX_NODES:,} nodes"):
        parse_workflow(text, "bomb.yaml")
    assert time.monotonic() - t0 < 1.0

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(text)
    t0 = time.monotonic()
    line = error_line(cadenza("workflow", "validate", bomb, cwd=tmp_path, timeout=60), 2)
    assert time.monotonic() - t0 < 20  # the interpreter's start included; the check itself takes milliseconds
    assert "bomb.yaml" in line and "YAML aliases expand to more than 100,000 nodes" in line


def test_deep_nesting_is_refused_with_exit_2(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("steps: " + "[" * 5000 + "]" * 5000 + "\n")
    line = error_line(cadenza("workflow", "validate", deep, cwd=tmp_path, timeout=60), 2)
    assert "deep.yaml line 1" in line and f"nested deeper than {MAX_DEPTH} levels" in line

    block = "steps:\n" + "".join("  " * i + "-\n" for i in range(1, 200))  # block style, too
    with pytest.raises(WorkflowError, match="nested deeper than 64 levels"):
        parse_workflow(block, "block.yaml")


def test_depth_counts_what_aliases_bring_in():
    inner = "[" * 40 + "]" * 40
    with pytest.raises(InputError, match=r"<yaml> line 2, column \d+: YAML nested deeper than 64"):
        safe_load_yaml(f"a: &a {inner}\nb: " + "[" * 30 + "*a" + "]" * 30)
    assert safe_load_yaml(f"a: &a {inner}\nb: " + "[" * 20 + "*a" + "]" * 20)["b"]  # 61 deep: fine


def test_a_node_holding_an_alias_to_itself_is_refused():
    with pytest.raises(InputError, match=r"alias \*s refers to a node that contains it"):
        safe_load_yaml("steps: &s [*s]")


def test_within_the_limits_yaml_loads_as_before():
    assert safe_load_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    assert safe_load_yaml("a: &x {k: 1}\nb: [*x, *x]\nc: {<<: *x, j: 2}") == {
        "a": {"k": 1}, "b": [{"k": 1}, {"k": 1}], "c": {"k": 1, "j": 2}}
    fanout = "a: &a [" + ", ".join(["x"] * 999) + "]\nb: [" + ", ".join(["*a"] * 99) + "]"
    assert len(safe_load_yaml(fanout)["b"]) == 99  # 99 x 1,000 nodes: just under the bound
    with pytest.raises(WorkflowError) as e:  # syntax errors read as before (PyYAML's words, not libyaml's)
        parse_workflow("a: [1, 2", "wf.yaml")
    assert str(e.value) == "YAML syntax error in wf.yaml line 1, column 9: expected ',' or ']', but got '<stream end>'"


def test_arg_and_input_values_go_through_the_same_limits(tmp_path):
    wav = tone(tmp_path / "a.wav", seconds=0.5)
    deep = "[" * 5000 + "]" * 5000
    line = error_line(cadenza("tools", "run", "mix_audio", "--arg", f"tracks={wav}", "--arg", f"gains_db={deep}",
                              "--out", "out", cwd=tmp_path), 2)
    assert "--arg gains_db" in line and "nested deeper than 64" in line

    wf = write(tmp_path / "wf.yaml", """\
        inputs: {speech: {type: audio}, gain: {type: number, default: 0}}
        steps: [{id: g, tool: normalize_audio, args: {audio: $speech, target_lufs: $gain}}]
        outputs: {g: $g}
        """)
    bomb = "[" + ", ".join(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9 if i else ["0"] * 9) + "]"
                           for i in range(9)) + "]"
    line = error_line(cadenza("workflow", "run", wf, "--input", f"speech={wav}", "--input", f"gain={bomb}",
                              "--out", "out", cwd=tmp_path, timeout=60), 2)
    assert "--input gain" in line and "aliases expand" in line


# -- long plans, no recursion --------------------------------------------------------------
def test_a_2000_step_chain_validates_through_the_cli(tmp_path):
    wf = tmp_path / "chain.yaml"
    wf.write_text(chain(N_STEPS, "trim_audio", "audio", "x: {type: audio}", ", start: 0"))
    r = cadenza("workflow", "validate", wf, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"valid ({N_STEPS} steps" in r.stdout


def test_a_2000_step_chain_runs(tmp_path):
    wf = tmp_path / "inc.yaml"
    wf.write_text(chain(N_STEPS, "inc", "n", "x: {type: integer}"))
    t0 = time.monotonic()
    result = run_workflow(wf, {"x": 0}, tmp_path / "out", registry=Registry([inc]), cache=False)
    assert result.ok and result.outputs == {"last": N_STEPS}
    assert time.monotonic() - t0 < 120
    assert len(json.loads(result.run_json.read_text())["steps"]) == N_STEPS


def test_a_2000_step_cycle_is_reported_not_a_recursion_error():
    steps = [{"id": f"s{i}", "tool": "inc", "args": {"n": f"$s{(i + 1) % N_STEPS}"}} for i in range(N_STEPS)]
    (problem,) = validate_plan(Plan.model_validate({"steps": steps}), Registry([inc]))
    assert problem.startswith("step 's0': cycle s0 -> s1999 -> s1998")
    deep: object = "$z"
    for _ in range(5000):
        deep = [deep]
    assert [str(r) for r in iter_refs(deep)] == ["$z"]


CHAIN_PLUGIN = '''\
import cadenza


@cadenza.tool
def inc(n: int) -> int:
    """Add one."""
    return n + 1


@cadenza.hookimpl
def register_tools(register):
    register(inc)
'''


def test_a_2000_step_chain_runs_through_the_cli(tmp_path):
    site = tmp_path / "site"
    info = site / "cadenza_inc-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cadenza-inc\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[cadenza.tools]\ninc = cadenza_inc_plugin\n")
    (site / "cadenza_inc_plugin.py").write_text(CHAIN_PLUGIN)
    wf = tmp_path / "inc.yaml"
    wf.write_text(chain(N_STEPS, "inc", "n", "x: {type: integer}"))
    r = cadenza("workflow", "run", wf, "--input", "x=5", "--out", "out", "--json", "--no-cache",
                pythonpath=[site], cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    assert doc["outputs"] == {"last": N_STEPS + 5} and len(doc["steps"]) == N_STEPS


# -- a workflow's relative paths -------------------------------------------------------------
def test_relative_asset_paths_resolve_against_the_workflow_folder(tmp_path):
    folder = tmp_path / "wf"
    folder.mkdir()
    tone(folder / "intro.wav", seconds=0.5)
    tone(folder / "bed.wav", freq=330, seconds=0.25)
    here = tmp_path / "elsewhere"
    here.mkdir()
    tone(here / "speech.wav", freq=550, seconds=1.0)  # an --input path: from the current folder
    wf = write(folder / "join.yaml", """\
        inputs:
          speech: {type: audio}
          bed: {type: audio, default: bed.wav}
        steps:
          - id: joined
            tool: concat_audio
            args: {clips: [intro.wav, $speech, $bed]}
        outputs: {joined: $joined}
        """)
    r = cadenza("workflow", "run", wf, "--input", "speech=speech.wav", "--out", "out", "--json", cwd=here)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["outputs"]["joined"]["duration"] == pytest.approx(1.75, abs=0.02)
    assert load_workflow(wf).step("joined").args["clips"][0] == "intro.wav"  # validation reads it as written


def test_run_workflow_resolves_relative_assets_against_the_workflow_folder(tmp_path, monkeypatch):
    folder = tmp_path / "wf"
    folder.mkdir()
    tone(folder / "intro.wav", seconds=0.5)
    wf = write(folder / "fade.yaml", """\
        steps: [{id: f, tool: fade_audio, args: {audio: intro.wav, fade_in: 0.1}}]
        outputs: {f: $f}
        """)
    monkeypatch.chdir(tmp_path)
    result = run_workflow(wf, {}, tmp_path / "out", cache=False)
    assert result.ok and result.outputs["f"].duration == pytest.approx(0.5, abs=0.02)
    assert result.steps["f"].args["audio"]["path"] == str((folder / "intro.wav").resolve())


# -- control characters ----------------------------------------------------------------------
def test_printable_escapes_control_characters():
    assert printable("a\x1b[31mb\x07\x9b\u202e\u2028") == "a\\x1b[31mb\\x07\\x9b\\u202e\\u2028"
    assert printable("one\ntwo\tthree\r") == "one\\ntwo\\tthree\\r"
    assert printable("one\ntwo\t\x1b", multiline=True) == "one\ntwo\t\\x1b"
    assert printable("café ♪ C:\\music") == "café ♪ C:\\music"


def test_the_cli_escapes_control_characters_it_prints(tmp_path):
    line = error_line(cadenza("tools", "show", "\x1b[31mevil", cwd=tmp_path), 2)
    assert "unknown tool '\\x1b[31mevil'" in line

    wf = write(tmp_path / "wf.yaml", """\
        steps: [{id: f, tool: fade_audio, args: {audio: "\\e[2Jgone.wav"}}]
        """)
    r = cadenza("workflow", "run", wf, "--out", "out", cwd=tmp_path)
    assert "gone.wav" in error_line(r, 2) and "\\x1b[2J" in r.stderr

    wav = tone(tmp_path / "a.wav", seconds=0.5)
    r = cadenza("tools", "run", "fade_audio", "--arg", f"audio={wav}", "--out", "o\x1b]0;title\x07ut", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "o\\x1b]0;title\\x07ut" in r.stdout and "o\\x1b]0;title\\x07ut" in r.stderr
    for text in (r.stdout, r.stderr):
        assert "\x1b" not in text and "\x07" not in text


def test_progress_escapes_ids_tools_and_errors(capsys):
    from rich.console import Console

    from cadenza.progress import ProgressDisplay

    progress = ProgressDisplay(enabled=True)
    progress.live_mode = False
    progress.on_event(Event("step_failed", "s1", "to\x1bol", 0.5, error="bad \x1b[2J [red]x[/] \x9b"))
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x9b" not in err
    assert "s1 [to\\x1bol]" in err and "bad \\x1b[2J [red]x[/] \\x9b" in err

    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(progress._table())  # markup in an error is text
    assert "bad \\x1b[2J [red]x[/] \\x9b" in out.getvalue() and "to\\x1bol" in out.getvalue()


# -- tools run --arg values are literals -----------------------------------------------------
def test_tools_run_arg_starting_with_a_dollar_is_a_file_not_a_reference(tmp_path):
    tone(tmp_path / "$take.wav", seconds=0.5)
    r = cadenza("tools", "run", "fade_audio", "--arg", "audio=$take.wav", "--arg", "fade_in=0.1",
                "--out", "out", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["outputs"]["result"]["duration"] == pytest.approx(0.5, abs=0.02)
