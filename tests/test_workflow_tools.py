"""Workflows are tools: the built-in `subtitle` and `narrate` workflows, a plugin's and the user's
workflow folders are registered as tools typed by their inputs and outputs; a workflow tool runs as
a step (through the CLI, inside another workflow, in an agent's plan), is cached by the text of its
file, and a workflow that calls itself is refused before anything runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import media_factory as mf
from cadenza import Audio, Registry, ToolContext, tool
from cadenza.engine.executor import Executor
from cadenza.engine.plan import Plan
from cadenza.engine.validate import check_plan, validate_plan
from cadenza.engine.workflow import run_workflow
from cadenza.engine.workflow_tool import BUILTIN_WORKFLOWS_DIR, WorkflowTool, workflow_tools
from cadenza.errors import InputError, PathNotAllowedError, PlanError, ToolError
from cadenza.tools.registry import builtin_tools, default_registry
from cadenza.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]


def cadenza(*args, cwd, env=None, timeout=180):
    """The CLI in a subprocess, with its own cache and no config file or workflow folder unless given."""
    base = {k: v for k, v in os.environ.items() if k != "CADENZA_WORKFLOWS"}
    env = {**base, "CADENZA_CACHE_DIR": str(Path(cwd) / ".cache"), "CADENZA_CONFIG": str(Path(cwd) / "none.toml"),
           **(env or {})}
    return subprocess.run([sys.executable, "-m", "cadenza.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def registry_with(*folders: Path, extra=()) -> Registry:
    return Registry([*builtin_tools(), *extra, *(t for f in folders for t in workflow_tools(f))])


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    return mf.spoken(tmp_path_factory.mktemp("speech") / "talk.wav", "Welcome to the show. Today we talk about bread.")


# -- what a workflow tool looks like -------------------------------------------------------------------------
def test_builtin_workflows_are_registered_tools():
    reg = default_registry()
    sub, nar = reg.get("subtitle"), reg.get("narrate")
    assert isinstance(sub, WorkflowTool) and sub.path == BUILTIN_WORKFLOWS_DIR / "subtitle.yaml"
    assert sub.signature_line() == ("subtitle(media: audio|video, language?: text) -> "
                                    "transcript: text, subtitles: subtitles")
    assert nar.signature_line() == ("narrate(speech: audio, music: audio, music_gain?: number) -> "
                                    "narration: audio, narration_mp3: audio")
    assert sub.output_tag("subtitles") == "subtitles" and sub.output_tag() == sub.whole_output_tag
    plugin = next(p for p in reg.plugin_info if p.name == "cadenza.engine.builtin_workflows")
    assert plugin.builtin and plugin.tools == ["describe_video", "dub", "dub_audio", "narrate", "subtitle"]


def test_tools_show_gives_a_workflows_signature_and_schema(tmp_path):
    r = cadenza("tools", "show", "subtitle", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    spec = json.loads(r.stdout)
    assert spec["name"] == "subtitle" and "audio or video" in spec["description"]
    assert spec["inputs"]["media"] == {"type": "audio|video", "required": True,
                                       "description": "the audio or video whose speech is subtitled"}
    assert spec["inputs"]["language"]["required"] is False and spec["inputs"]["language"]["default"] == "en"
    assert spec["outputs"] == {"transcript": "text", "subtitles": "subtitles"}
    assert spec["input_schema"]["required"] == ["media"]
    assert spec["input_schema"]["properties"]["language"]["description"].startswith("the spoken language")
    assert spec["version"].startswith("wf-") and spec["workflow"].endswith(os.path.join("workflows", "subtitle.yaml"))
    assert [b["name"] for b in spec["backends"]] == ["workflow"] and spec["backends"][0]["available"]
    text = cadenza("tools", "show", "subtitle", cwd=tmp_path).stdout
    assert "media: audio|video (required)" in text and "subtitles: subtitles" in text
    assert "subtitle(media: audio|video" in cadenza("tools", "list", cwd=tmp_path).stdout


def test_doctor_lists_the_builtin_workflow_plugin(tmp_path):
    r = cadenza("doctor", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    plugins = json.loads(r.stdout)["plugins"]
    (wf,) = [p for p in plugins["details"] if p["name"] == "cadenza.engine.builtin_workflows"]
    assert wf["builtin"] and wf["tools"] == ["describe_video", "dub", "dub_audio", "narrate", "subtitle"] and not plugins["failed"]


# -- running one ---------------------------------------------------------------------------------------------
def test_subtitle_runs_as_a_tool_through_the_cli_and_is_cached(speech, tmp_path):
    args = ("tools", "run", "subtitle", "--arg", f"media={speech}", "--out", tmp_path / "out", "--json")
    r = cadenza(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "succeeded" and out["steps"] == {"subtitle": "succeeded"}
    assert "bread" in out["outputs"]["transcript"].lower()
    srt = Path(out["outputs"]["subtitles"]["path"])
    assert srt.parent == (tmp_path / "out").resolve() and srt.read_text().startswith("1\n00:00:00,000 --> ")
    sub_run = json.loads((tmp_path / "out" / ".cadenza" / "sub" / "subtitle" / "run.json").read_text())
    assert sub_run["status"] == "succeeded" and [s["id"] for s in sub_run["steps"]] == ["words", "subs"]
    again = json.loads(cadenza(*args, cwd=tmp_path).stdout)
    assert again["steps"] == {"subtitle": "cached"} and again["outputs"]["subtitles"]["path"] == str(srt)


def test_subtitle_runs_as_a_step_inside_another_workflow(speech, tmp_path):
    wf = write(tmp_path / "flows" / "captioned.yaml", """\
        name: captioned
        inputs: {speech: {type: audio}}
        steps:
          - id: subs
            tool: subtitle
            args: {media: $speech}
          - id: loud
            tool: normalize_audio
            args: {audio: $speech, target_lufs: -16}
          - id: vtt
            tool: make_subtitles
            args: {segments: [], format: vtt}
        outputs: {srt: $subs.subtitles, text: $subs.transcript, audio: $loud}
        """)
    result = run_workflow(wf, {"speech": str(speech)}, tmp_path / "out", cache=False)
    assert result.ok, result.errors()
    assert "bread" in result.outputs["text"].lower()
    srt = result.outputs["srt"].path
    assert srt.parent == (tmp_path / "out").resolve() and srt.name.startswith("subs-subtitles-") and srt.exists()
    assert not list((tmp_path / "out" / ".cadenza" / "scratch").glob("*"))  # moved, then named by content


def test_the_agent_plans_and_runs_subtitle_as_one_step(speech, tmp_path, workdir):
    from cadenza.agent.agent import Agent
    from cadenza.agent.examples import ExamplePool
    from cadenza.llm.testing import ScriptedChatModel

    picture = mf.make_video(tmp_path / "pic.mp4", seconds=4.0, with_audio=False)
    clip = default_registry().get("replace_audio")(video=picture, audio=speech)  # speech on a video: clip.mp4
    (tmp_path / "clip.mp4").write_bytes(Path(clip.path).read_bytes())
    plan = {"steps": [{"id": "s1", "tool": "subtitle", "args": {"media": "$clip"}}]}
    with ScriptedChatModel([plan]) as llm:
        result = Agent(llm=llm, examples=ExamplePool([]), out_dir=tmp_path / "out", cache=False).run(
            "subtitle clip.mp4", [tmp_path / "clip.mp4"])
    assert result.run is not None and result.run.ok, result.answer
    assert "subtitle(media: audio|video" in llm.calls[0][0].content  # the workflow is in the catalog
    assert [s.tool for s in result.plan.steps] == ["subtitle"] and result.plan.inputs["clip"].type == "video"
    assert "bread" in Path(result.run.outputs["s1"].subtitles.path).read_text().lower()


def test_the_builtin_examples_show_the_workflow_tools():
    from cadenza.agent.examples import ExamplePool

    one_step = {e.tools()[0] for e in ExamplePool.builtin().examples if len(e.tools()) == 1}
    assert {"subtitle", "narrate"} <= one_step


# -- the cache ---------------------------------------------------------------------------------------------------
LOUDER = """\
    name: louder
    description: Louder.
    inputs: {audio: {type: audio}}
    steps:
      - id: n
        tool: normalize_audio
        args: {audio: $audio, target_lufs: -14}
    outputs: {louder: $n}
    """


def test_a_rerun_hits_the_cache_and_editing_the_workflow_misses(tmp_path):
    clip = mf.tone(tmp_path / "in" / "a.wav", seconds=1.0)
    flows = tmp_path / "flows"
    wf = write(flows / "louder.yaml", LOUDER)
    env = {"CADENZA_WORKFLOWS": str(flows)}
    args = ("tools", "run", "louder", "--arg", f"audio={clip}", "--out", tmp_path / "out", "--json")

    def status() -> str:
        r = cadenza(*args, cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["steps"]["louder"]

    assert status() == "succeeded"
    assert status() == "cached"
    wf.write_text(wf.read_text().replace("-14", "-15"))
    assert status() == "succeeded"
    wf.write_text(wf.read_text() + "# a comment is an edit too\n")
    assert status() == "succeeded"
    assert status() == "cached"


def test_editing_a_workflow_that_another_calls_changes_both_versions(tmp_path):
    flows = tmp_path / "flows"
    inner = write(flows / "louder.yaml", LOUDER)
    write(flows / "outer.yaml", """\
        name: outer
        inputs: {audio: {type: audio}}
        steps: [{id: l, tool: louder, args: {audio: $audio}}]
        """)
    reg = registry_with(flows)
    before = (reg.get("outer").version, reg.get("louder").version)
    inner.write_text(inner.read_text().replace("-14", "-12"))
    reg = registry_with(flows)
    after = (reg.get("outer").version, reg.get("louder").version)
    assert before[0] != after[0] and before[1] != after[1]
    assert reg.get("outer").signature_line() == "outer(audio: audio) -> audio"
    assert reg.get("outer").output_name == "l"  # no outputs named: the leaf step, as the executor does


# -- a workflow that calls itself ----------------------------------------------------------------------------------
def calling(name: str, callee: str) -> str:
    return f"""\
        name: {name}
        inputs: {{audio: {{type: audio}}}}
        steps: [{{id: call, tool: {callee}, args: {{audio: $audio}}}}]
        outputs: {{out: $call}}
        """


def test_a_workflow_calling_itself_is_refused_at_validation(tmp_path):
    flows = tmp_path / "flows"
    write(flows / "a.yaml", calling("a", "b"))
    write(flows / "b.yaml", calling("b", "a"))
    write(flows / "selfish.yaml", calling("selfish", "selfish"))
    write(flows / "c.yaml", calling("c", "b"))
    reg = registry_with(flows)
    for t in ("a", "b", "selfish", "c"):
        assert reg.get(t).signature_line() == f"{t}(audio: audio) -> any"  # listing them never recurses

    def problems(tool_name: str) -> list[str]:
        plan = Plan.model_validate({"inputs": {"clip": {"type": "audio"}},
                                    "steps": [{"id": "x", "tool": tool_name, "args": {"audio": "$clip"}}]})
        return validate_plan(plan, reg)

    assert problems("a") == ["step 'x': workflow 'a' calls itself (a -> b -> a)"]
    assert problems("selfish") == ["step 'x': workflow 'selfish' calls itself (selfish -> selfish)"]
    assert problems("c") == ["step 'x': workflow 'b' calls itself (c -> b -> a -> b)"]
    with pytest.raises(PlanError, match=r"^step 'x': workflow 'a' calls itself \(a -> b -> a\)$"):
        check_plan(Plan.model_validate({"inputs": {"clip": {"type": "audio"}},
                                        "steps": [{"id": "x", "tool": "a", "args": {"audio": "$clip"}}]}), reg)


def test_a_workflow_calling_itself_is_refused_by_the_cli_before_anything_runs(tmp_path):
    clip = mf.tone(tmp_path / "a.wav", seconds=0.5)
    flows = tmp_path / "flows"
    write(flows / "a.yaml", calling("a", "b"))
    write(flows / "b.yaml", calling("b", "a"))
    r = cadenza("tools", "run", "a", "--arg", f"audio={clip}", "--out", tmp_path / "out", cwd=tmp_path,
                env={"CADENZA_WORKFLOWS": str(flows)}, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "workflow 'a' calls itself (a -> b -> a)" in r.stderr
    assert not (tmp_path / "out" / "run.json").exists()


# -- errors inside ----------------------------------------------------------------------------------------------------
@tool
def explode(audio: Audio) -> Audio:
    """Fail at run time."""
    raise ToolError("the fuse was lit")


@tool
def refuse(audio: Audio) -> Audio:
    """Refuse the input at run time."""
    raise InputError("audio is far too quiet")


def test_a_failing_inner_step_fails_the_step_with_one_clear_line(tmp_path):
    clip = mf.tone(tmp_path / "a.wav", seconds=0.5)
    flows = tmp_path / "flows"
    write(flows / "boom.yaml", calling("boom", "explode").replace("call", "fuse"))
    write(flows / "picky.yaml", calling("picky", "refuse"))
    reg = registry_with(flows, extra=[explode, refuse])
    ex = Executor(reg, cache=False)
    for name, code, line in [
        ("boom", 1, "step 'outer' (boom): workflow 'boom': step 'fuse' (explode): the fuse was lit"),
        ("picky", 2, "step 'outer' (picky): workflow 'picky': step 'call' (refuse): audio is far too quiet"),
    ]:
        plan = Plan.model_validate({"inputs": {"clip": {"type": "audio"}},
                                    "steps": [{"id": "outer", "tool": name, "args": {"audio": "$clip"}}]})
        out = tmp_path / f"out-{name}"
        result = ex.run(plan, {"clip": str(clip)}, Workspace.for_run(out, {"clip": clip}))
        assert result.status == "failed" and result.exit_code == code
        assert result.errors() == [line]
        assert result.steps["outer"].error_kind == ("input" if code == 2 else "runtime")


def test_a_workflow_whose_own_plan_is_broken_is_refused_at_validation(tmp_path):
    flows = tmp_path / "flows"
    write(flows / "typo.yaml", calling("typo", "normalise_audio"))
    reg = registry_with(flows)
    plan = Plan.model_validate({"inputs": {"clip": {"type": "audio"}},
                                "steps": [{"id": "x", "tool": "typo", "args": {"audio": "$clip"}}]})
    (problem,) = validate_plan(plan, reg)
    assert problem == ("step 'x': workflow 'typo': step 'call': unknown tool 'normalise_audio' "
                       "(did you mean 'normalize_audio'?)")
    assert reg.get("typo").backends[0].unavailable_reason() == "it calls the unknown tool normalise_audio"


# -- allowed roots, cancelling -----------------------------------------------------------------------------------------
def test_the_workflows_folder_is_allowed_inside_its_run_only(tmp_path):
    flows = tmp_path / "flows"
    intro = mf.tone(flows / "intro.wav", seconds=0.3)
    write(flows / "with_intro.yaml", """\
        name: with_intro
        inputs: {audio: {type: audio}}
        steps: [{id: join, tool: concat_audio, args: {clips: [intro.wav, $audio]}}]
        outputs: {joined: $join}
        """)
    clip = mf.tone(tmp_path / "in" / "a.wav", seconds=0.5)
    reg = registry_with(flows)
    ws = Workspace.for_run(tmp_path / "out", {"clip": clip})
    plan = Plan.model_validate({"inputs": {"clip": {"type": "audio"}},
                                "steps": [{"id": "w", "tool": "with_intro", "args": {"audio": "$clip"}}]})
    result = Executor(reg, cache=False).run(plan, {"clip": str(clip)}, ws)
    assert result.ok, result.errors()
    assert result.outputs["w"].duration == pytest.approx(0.8, abs=0.05)
    direct = Plan.model_validate({"steps": [{"id": "f", "tool": "fade_audio", "args": {"audio": str(intro)}}]})
    with pytest.raises(PathNotAllowedError):  # outside the sub-run, the workflow's folder is not a root
        Executor(reg, cache=False).run(direct, {}, Workspace.for_run(tmp_path / "out2", {"clip": clip}))


def test_stopping_the_step_stops_the_workflow_inside(tmp_path):
    seen = threading.Event()

    @tool
    def dawdle(audio: Audio, ctx: ToolContext) -> Audio:
        """Wait until stopped."""
        while True:
            if ctx.cancelled.is_set():
                seen.set()
            ctx.check_cancelled()
            time.sleep(0.01)

    flows = tmp_path / "flows"
    write(flows / "slow.yaml", calling("slow", "dawdle"))
    reg = registry_with(flows, extra=[dawdle])
    clip = mf.tone(tmp_path / "a.wav", seconds=0.3)
    plan = Plan.model_validate({"inputs": {"clip": {"type": "audio"}},
                                "steps": [{"id": "s", "tool": "slow", "args": {"audio": "$clip"}, "timeout": 0.5}]})
    start = time.monotonic()
    ws = Workspace.for_run(tmp_path / "out", {"clip": clip})
    result = Executor(reg, cache=False).run(plan, {"clip": str(clip)}, ws)
    assert result.status == "failed" and "timed out after 0.5s" in result.errors()[0]
    assert seen.wait(5) and time.monotonic() - start < 5  # the inner step was told to stop


# -- where workflow tools come from -------------------------------------------------------------------------------
def test_config_workflow_dirs_registers_the_users_workflows(tmp_path):
    write(tmp_path / "cfg" / "flows" / "louder.yaml", LOUDER)
    config = write(tmp_path / "cfg" / "config.toml", 'workflow_dirs = ["flows"]\n')
    env = {"CADENZA_CONFIG": str(config)}
    r = cadenza("tools", "list", "--json", cwd=tmp_path, env=env)
    assert r.returncode == 0 and "skipped plugin" not in r.stderr, r.stderr
    tools = {t["name"]: t for t in json.loads(r.stdout)["tools"]}
    assert tools["louder"]["signature"] == "louder(audio: audio) -> audio" and "subtitle" in tools
    plugins = json.loads(cadenza("doctor", "--json", cwd=tmp_path, env=env).stdout)["plugins"]
    (user,) = [p for p in plugins["details"] if p["name"] == "cadenza.engine.user_workflows"]
    assert user["tools"] == ["louder"]
    # without a folder named, the plugin is not loaded at all
    assert "cadenza.engine.user_workflows" not in json.loads(cadenza("doctor", "--json", cwd=tmp_path).stdout)[
        "plugins"]["loaded"]


def test_a_bad_user_folder_is_skipped_with_a_warning(tmp_path):
    write(tmp_path / "flows" / "mix_audio.yaml", LOUDER.replace("name: louder", "name: mix_audio"))
    for folder, says in [("flows", "a tool named 'mix_audio' is already registered"), ("nowhere", "is not a folder")]:
        env = {"CADENZA_WORKFLOWS": str(tmp_path / folder)}
        r = cadenza("tools", "list", "--json", cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr
        assert "skipped plugin cadenza.engine.user_workflows" in r.stderr and says in r.stderr
        assert "subtitle" in {t["name"] for t in json.loads(r.stdout)["tools"]}


def test_a_plugin_registers_its_workflow_folder(tmp_path):
    write(tmp_path / "flows" / "louder.yaml", LOUDER)
    write(tmp_path / "flows" / "notes.txt", "not a workflow")
    write(tmp_path / "flows" / "file-stem.yml", LOUDER.replace("    name: louder\n", ""))
    tools = workflow_tools(tmp_path / "flows")
    assert [t.name for t in tools] == ["file_stem", "louder"]
    reg = Registry()
    reg.register(tools[1])
    assert tools[1].registry is reg
    with pytest.raises(Exception, match="not-a-name.*cannot be a tool name"):
        WorkflowTool(write(tmp_path / "bad.yaml", LOUDER.replace("name: louder", "name: not-a-name")))
