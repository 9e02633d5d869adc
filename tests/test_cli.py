"""The CLI end to end, in subprocesses: JSON output, exit codes and one-line errors for bad input."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.media_factory import corrupt_file, empty_file, tone

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def cadenza(*args, cwd=None, timeout=120):
    env = {**os.environ, "CADENZA_CACHE_DIR": str(Path(cwd or ".").resolve() / ".cache")}
    return subprocess.run([sys.executable, "-m", "cadenza.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout)


def assert_one_line_error(r, code, *fragments):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert errors, r.stderr
    assert "Traceback" not in r.stderr
    for f in fragments:
        assert f in errors[0], (f, errors[0])


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_tools_list_and_show_json(tmp_path):
    r = cadenza("tools", "list", "--json", cwd=tmp_path)
    assert r.returncode == 0
    names = [t["name"] for t in json.loads(r.stdout)["tools"]]
    assert "mix_audio" in names and "replace_audio" in names
    r = cadenza("tools", "show", "fit_audio", "--json", cwd=tmp_path)
    spec = json.loads(r.stdout)
    assert spec["inputs"]["duration"] == {"type": "number", "required": True,
                                          "description": "the target duration in seconds"}
    assert spec["outputs"] == {"result": "audio"}
    assert_one_line_error(cadenza("tools", "show", "fit_audoi", cwd=tmp_path), 2, "unknown tool 'fit_audoi'",
                          "did you mean 'fit_audio'")


def test_tools_run_json_prints_outputs_with_paths(tmp_path):
    tone(tmp_path / "a.wav", seconds=1.0)
    tone(tmp_path / "b.wav", freq=660, seconds=0.5)
    r = cadenza("tools", "run", "concat_audio", "--arg", "clips=a.wav", "--arg", "clips=b.wav",
                "--arg", "gap_ms=250", "--out", "out", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    out = doc["outputs"]["result"]
    assert Path(out["path"]).exists() and Path(out["path"]).parent == (tmp_path / "out").resolve()
    assert abs(out["duration"] - 1.75) < 0.02
    assert (tmp_path / "out" / "run.json").exists()


def test_workflow_validate_and_run_example(tmp_path):
    wf = EXAMPLES / "workflows" / "narrate.yaml"
    r = cadenza("workflow", "validate", wf, cwd=tmp_path)
    assert r.returncode == 0 and "valid (5 steps" in r.stdout
    r = cadenza("workflow", "run", wf, "--input", f"speech={EXAMPLES / 'media/narration.wav'}",
                "--input", f"music={EXAMPLES / 'media/piano.wav'}", "--out", "out", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc["outputs"]) == {"narration", "narration_mp3"}
    assert doc["outputs"]["narration_mp3"]["path"].endswith(".mp3")
    assert all(s == "succeeded" for s in doc["steps"].values())
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    voice, bed = (next(s for s in run["steps"] if s["id"] == i) for i in ("voice", "bed"))
    # voice and bed do not depend on each other: the second started before the first ended
    assert max(voice["started_at"], bed["started_at"]) < min(voice["finished_at"], bed["finished_at"])
    again = cadenza("workflow", "run", wf, "--input", f"speech={EXAMPLES / 'media/narration.wav'}",
                    "--input", f"music={EXAMPLES / 'media/piano.wav'}", "--out", "out2", "--json", cwd=tmp_path)
    assert set(json.loads(again.stdout)["steps"].values()) == {"cached"}


def test_bad_plans_exit_2_naming_the_fault(tmp_path):
    cases = {
        "unknown.yaml": ("""\
            steps:
              - {id: a, tool: mix_sound, args: {tracks: []}}
            """, ["step 'a'", "unknown tool 'mix_sound'"]),
        "cycle.yaml": ("""\
            steps:
              - {id: a, tool: fade_audio, args: {audio: $b}}
              - {id: b, tool: fade_audio, args: {audio: $a}}
            """, ["cycle"]),
        "mismatch.yaml": ("""\
            inputs: {clip: {type: video}}
            steps:
              - {id: a, tool: fade_audio, args: {audio: $clip}}
            """, ["step 'a' argument 'audio'", "expects audio but '$clip' gives video"]),
        "missing.yaml": ("""\
            inputs: {x: {type: audio}}
            steps:
              - {id: a, tool: fit_audio, args: {audio: $x}}
            """, ["step 'a' argument 'duration'", "missing"]),
        "syntax.yaml": ("""\
            steps:
              - id: a
                tool: [fade_audio
            """, ["YAML syntax error", "syntax.yaml", "line"]),
    }
    for name, (text, fragments) in cases.items():
        wf = write(tmp_path / name, text)
        assert_one_line_error(cadenza("workflow", "validate", wf, cwd=tmp_path), 2, *fragments)
        assert_one_line_error(cadenza("workflow", "run", wf, "--out", "o", cwd=tmp_path), 2, *fragments)
        assert not (tmp_path / "o" / "run.json").exists()  # nothing ran


def test_bad_input_files_exit_2(tmp_path):
    corrupt_file(tmp_path / "corrupt.wav")
    empty_file(tmp_path / "empty.wav")
    wf = write(tmp_path / "wf.yaml", """\
        inputs: {a: {type: audio}}
        steps:
          - {id: f, tool: fade_audio, args: {audio: $a, fade_in: 0.1}}
        """)
    for value, fragment in [("nowhere.wav", "audio file not found: nowhere.wav"),
                            ("corrupt.wav", "corrupt.wav"), ("empty.wav", "audio file is empty")]:
        r = cadenza("workflow", "run", wf, "--input", f"a={value}", "--out", "o", cwd=tmp_path)
        assert_one_line_error(r, 2, fragment)
    r = cadenza("tools", "run", "fade_audio", "--arg", "audio=corrupt.wav", "--out", "o", "--json", cwd=tmp_path)
    assert r.returncode == 2 and "corrupt.wav" in json.loads(r.stdout)["error"]


def test_path_outside_allowed_roots_is_refused_before_running(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    tone(elsewhere / "private.wav", seconds=0.5)
    proj = tmp_path / "proj"
    proj.mkdir()
    tone(proj / "mine.wav", seconds=0.5)
    wf = write(proj / "wf.yaml", f"""\
        inputs: {{a: {{type: audio}}}}
        steps:
          - {{id: good, tool: fade_audio, args: {{audio: $a, fade_in: 0.1}}}}
          - {{id: sneaky, tool: fade_audio, args: {{audio: {elsewhere / 'private.wav'}}}}}
          - {{id: after, tool: fade_audio, args: {{audio: $sneaky}}}}
        """)
    r = cadenza("workflow", "run", wf, "--input", f"a={proj / 'mine.wav'}", "--out", tmp_path / "o", cwd=tmp_path)
    assert_one_line_error(r, 2, "step 'sneaky' argument 'audio'", "path not allowed", "private.wav")
    assert not (tmp_path / "o" / "run.json").exists()
    # the same through a symlink planted beside the workflow (whose folder is an allowed root)
    os.symlink(elsewhere / "private.wav", proj / "link.wav")
    wf = write(proj / "wf2.yaml", """\
        steps:
          - {id: sneaky, tool: fade_audio, args: {audio: link.wav}}
        """)
    r = cadenza("workflow", "run", wf, "--out", tmp_path / "o", cwd=proj)
    assert_one_line_error(r, 2, "step 'sneaky' argument 'audio'", "path not allowed", "symlink escapes")


def test_bad_input_found_while_running_keeps_produced_outputs(tmp_path):
    tone(tmp_path / "a.wav", seconds=1.0)
    wf = write(tmp_path / "wf.yaml", """\
        inputs: {a: {type: audio}}
        steps:
          - {id: good, tool: fade_audio, args: {audio: $a, fade_in: 0.1}}
          - {id: short, tool: trim_audio, args: {audio: $a, end: 0.5}}
          - {id: bad, tool: trim_audio, args: {audio: $short, start: 0.8}}
          - {id: after, tool: fade_audio, args: {audio: $bad}}
        """)
    r = cadenza("workflow", "run", wf, "--input", "a=a.wav", "--out", "o", cwd=tmp_path)
    assert_one_line_error(r, 2, "step 'bad'", "start=0.8s is outside the audio")
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    status = {s["id"]: s["status"] for s in run["steps"]}
    assert status == {"good": "succeeded", "short": "succeeded", "bad": "failed", "after": "skipped"}
    for sid in ("good", "short"):
        step = next(s for s in run["steps"] if s["id"] == sid)
        assert Path(step["outputs"]["result"]["path"]).exists()


def test_usage_errors_exit_2(tmp_path):
    r = cadenza("tools", "run", "fade_audio", "--arg", "novalue", cwd=tmp_path)
    assert_one_line_error(r, 2, "expected NAME=VALUE")
    r = cadenza("tools", "run", "fade_audio", "--arg", "volume=3", cwd=tmp_path)
    assert_one_line_error(r, 2, "has no argument 'volume'")
    r = cadenza("workflow", "frobnicate", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = cadenza("workflow", "run", tmp_path / "nope.yaml", cwd=tmp_path)
    assert_one_line_error(r, 2, "workflow file not found")


def test_an_output_folder_that_cannot_hold_our_files_is_bad_input(tmp_path):
    tone(tmp_path / "a.wav", seconds=0.5)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / ".cadenza").write_text("a file where the scratch folder should be")
    r = cadenza("tools", "run", "fade_audio", "--arg", "audio=a.wav", "--out", "o", "--no-cache", cwd=tmp_path)
    assert_one_line_error(r, 2, "output folder", "not writable")


def test_ctrl_c_cancels_cleanly_and_records_it(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text(textwrap.dedent(f"""\
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from cadenza import Registry, ToolContext, Workspace, tool
        from cadenza.engine.executor import Executor
        from cadenza.engine.plan import Plan, Step
        from cadenza.errors import CancelledError

        @tool(cacheable=False)
        def quick(x: int) -> int:
            return x

        @tool(cacheable=False)
        def slow(x: int, ctx: ToolContext) -> int:
            print("started", flush=True)
            for _ in range(3000):
                ctx.check_cancelled()
                time.sleep(0.01)
            return x

        plan = Plan(steps=[Step(id="q", tool="quick", args={{"x": 1}}),
                           Step(id="s", tool="slow", args={{"x": "$q"}}),
                           Step(id="after", tool="quick", args={{"x": "$s"}})])
        try:
            Executor(Registry([quick, slow]), cache=False).run(plan, {{}}, Workspace({str(tmp_path / 'o')!r}))
        except CancelledError as e:
            print("cancelled:", e, flush=True)
            sys.exit(130)
        """))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "started"
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 130 and "cancelled: run cancelled" in out
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["status"] == "cancelled"
    assert {s["id"]: s["status"] for s in run["steps"]} == {"q": "succeeded", "s": "cancelled", "after": "cancelled"}


def test_doctor_reports_tools_and_runtime(tmp_path):
    r = cadenza("doctor", "--json", cwd=tmp_path)
    assert r.returncode == 0
    rep = json.loads(r.stdout)
    assert rep["runtime"]["device"] in ("cpu", "cuda")
    assert "PyAV" in rep["ffmpeg"]
    mix = next(t for t in rep["tools"] if t["name"] == "mix_audio")
    assert mix["backends"][0]["usable"] is True
    speech = {e["backend"] for e in rep["speech"]}
    assert {"faster-whisper", "openai-whisper", "hibari", "piper", "espeak-ng", "transformers"} <= speech
    assert all(isinstance(e["usable"], bool) and (e["why_not"] is None) == e["usable"] for e in rep["speech"])


@pytest.mark.parametrize("argv", [["--help"], ["tools", "--help"], ["workflow", "run", "--help"]])
def test_help_works(argv, tmp_path):
    r = cadenza(*argv, cwd=tmp_path)
    assert r.returncode == 0 and "usage: cadenza" in r.stdout
