"""Tools of external MCP servers in the registry: a small server the test starts (tests/
mcp_fixture_server.py, made with the SDK's FastMCP), named in the config file by command and by
URL; its JSON Schemas mapped to Cadenza types (a media path becomes an audio or image input, ranges
kept, an output schema becomes named outputs); its tools run in plans and are offered to the
planner; a server that cannot start, or a bad table, is skipped with a warning."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal, Optional, get_args

import httpx
import pytest

pytest.importorskip("mcp")

from cadenza.agent.agent import Agent  # noqa: E402
from cadenza.engine.executor import Executor  # noqa: E402
from cadenza.engine.plan import Plan  # noqa: E402
from cadenza.llm.testing import ScriptedChatModel  # noqa: E402
from cadenza.media import Audio, Image, Video  # noqa: E402
from cadenza.tools.mcp_client import annotation_for, media_kind  # noqa: E402
from cadenza.tools.registry import Registry, builtin_tools  # noqa: E402
from cadenza.workspace import Workspace  # noqa: E402
from tests.media_factory import decode, tone  # noqa: E402
from tests.serve_helper import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def fixture_table(tmp: Path, name: str = "fx") -> str:
    """The fixture server started by command; what it writes goes under `tmp` (TMPDIR)."""
    return (f"[mcp_servers.{name}]\ncommand = {str(sys.executable)!r}\nargs = [\"-m\", \"tests.mcp_fixture_server\"]\n"
            f"cwd = {str(ROOT)!r}\nenv = {{ PYTHONPATH = {str(ROOT)!r}, TMPDIR = {str(tmp)!r} }}\n")


def loaded(tmp_path, monkeypatch, config: str, tools=()) -> Registry:
    (tmp_path / "config.toml").write_text(config)
    monkeypatch.setenv("CADENZA_CONFIG", str(tmp_path / "config.toml"))
    reg = Registry(list(tools))
    reg.load_plugins(builtins=False)
    return reg


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """The registry with the fixture server's tools (loaded once: each load starts the server)."""
    tmp = tmp_path_factory.mktemp("fx")
    mp = pytest.MonkeyPatch()
    try:
        yield loaded(tmp, mp, fixture_table(tmp), builtin_tools())
    finally:
        mp.undo()


def test_the_servers_tools_are_typed_from_their_schemas(fx):
    assert {"fx_shout", "fx_louder", "fx_measure", "fx_fail"} <= set(fx.names())
    assert "mcp:fx" in fx.plugins and fx.plugin_errors == []
    louder = fx.get("fx_louder")
    assert louder.signature_line() == "fx_louder(sound_path: audio, gain_db?: number) -> audio: audio, peak: number"
    schema = louder.input_schema()["properties"]
    assert schema["gain_db"]["minimum"] == -20 and schema["gain_db"]["maximum"] == 20 and schema["gain_db"]["default"] == 6
    assert schema["sound_path"]["description"] == "path to an audio file (WAV, 16-bit)"
    assert fx.get("fx_measure").params["picture"].tag == "image"  # marked x-media, as Cadenza's own server marks media
    assert fx.get("fx_shout").signature_line() == "fx_shout(text: text, times?: integer) -> text"
    assert fx.get("fx_shout").description == "Upper-cases a text and repeats it."
    assert not louder.cacheable  # it says nothing of side effects: never taken from the cache


def test_they_run_in_a_plan_beside_cadenza_tools(fx, workdir):
    tone(workdir / "a.wav", amp=0.1)
    from PIL import Image as PILImage

    PILImage.new("RGB", (30, 20)).save(workdir / "p.png")
    plan = Plan.model_validate({
        "inputs": {"sound": {"type": "audio"}, "pic": {"type": "image"}},
        "steps": [{"id": "loud", "tool": "fx_louder", "args": {"sound_path": "$sound", "gain_db": 12}},
                  {"id": "faded", "tool": "fade_audio", "args": {"audio": "$loud.audio", "fade_in": 0.1}},
                  {"id": "size", "tool": "fx_measure", "args": {"picture": "$pic"}},
                  {"id": "says", "tool": "fx_shout", "args": {"text": "hi", "times": 2}}],
        "outputs": {"loud": "$loud.audio", "peak": "$loud.peak", "faded": "$faded", "size": "$size", "says": "$says"}})
    inputs = {"sound": "a.wav", "pic": "p.png"}
    result = Executor(fx, cache=False).run(plan, inputs, Workspace.for_run("out", inputs))
    assert result.ok, result.errors()
    out = result.outputs
    assert out["size"] == "30x20" and out["says"] == "HI HI"
    assert isinstance(out["loud"], Audio) and out["loud"].path.parent == (workdir / "out").resolve()  # copied in
    before, after = decode(Audio.from_path(workdir / "a.wav"))[0], decode(out["loud"])[0]
    assert abs(after).max() / abs(before).max() == pytest.approx(10 ** (12 / 20), rel=0.02)
    assert out["peak"] == pytest.approx(abs(after).max(), rel=0.01)


def test_a_path_outside_the_roots_never_reaches_the_server(fx, workdir, tmp_path_factory):
    far = tone(tmp_path_factory.mktemp("far") / "far.wav")
    plan = Plan.model_validate({"steps": [{"id": "loud", "tool": "fx_louder", "args": {"sound_path": str(far)}}]})
    with pytest.raises(Exception, match="path not allowed"):
        Executor(fx, cache=False).run(plan, {}, Workspace.for_run("out", {}))


def test_a_tool_error_is_one_line_naming_the_tool_and_server(fx, workdir):
    plan = Plan.model_validate({"steps": [{"id": "f", "tool": "fx_fail", "args": {"reason": "the test"}}]})
    result = Executor(fx, cache=False).run(plan, {}, Workspace.for_run("out", {}))
    (error,) = result.errors()
    assert error.startswith("step 'f' (fx_fail): MCP tool 'fail' of server 'fx': ") and "failed on purpose: the test" in error
    assert "\n" not in error


def test_the_planner_is_offered_them_and_can_use_them(fx, workdir):
    tone(workdir / "voice.wav", amp=0.1)
    plan = {"steps": [{"id": "up", "tool": "fx_louder", "args": {"sound_path": "$voice", "gain_db": 6}}]}

    def reply(messages):
        prompt = "\n".join(str(m.content) for m in messages)
        assert "fx_louder(sound_path: audio, gain_db?: number)" in prompt
        return plan

    reg = Registry([fx.get(n) for n in ("fx_louder", "fx_shout", "normalize_audio", "mix_audio")])
    with ScriptedChatModel([reply]) as llm:
        result = Agent(llm=llm, tools=reg, out_dir="out", cache=False).run("make my voice louder", ["voice.wav"])
    assert result.ok, result.answer
    assert isinstance(result.outputs["up"].audio, Audio) and result.outputs["up"].peak > 0


def test_a_server_that_cannot_start_is_skipped_with_a_warning(tmp_path, monkeypatch, caplog):
    config = ('[mcp_servers.gone]\ncommand = "/nonexistent/cadenza-test-server"\n'
              '[mcp_servers.both]\ncommand = "x"\nurl = "http://127.0.0.1:1/mcp"\n'
              '[mcp_servers.quits]\ncommand = ' + repr(sys.executable) + '\nargs = ["-c", "pass"]\nstartup_timeout = 5\n'
              + fixture_table(tmp_path))
    with caplog.at_level(logging.WARNING, logger="cadenza"):
        reg = loaded(tmp_path, monkeypatch, config)
    errors = {e.plugin.split(" ")[0]: e.error for e in reg.plugin_errors}
    assert set(errors) == {"mcp:gone", "mcp:both", "mcp:quits"}
    assert "MCP server 'gone' could not be started" in errors["mcp:gone"] and "No such file" in errors["mcp:gone"]
    assert "give either command or url" in errors["mcp:both"]
    assert "MCP server 'quits'" in errors["mcp:quits"]
    assert all("\n" not in e for e in errors.values())
    assert "fx_shout" in reg  # the good server's tools are there all the same
    assert sum("skipped plugin mcp:" in r.getMessage() for r in caplog.records) == 3


def test_a_broken_mcp_servers_entry_is_one_plugin_error(tmp_path, monkeypatch):
    reg = loaded(tmp_path, monkeypatch, 'mcp_servers = ["not", "tables"]\n')
    assert [e.plugin.split(" ")[0] for e in reg.plugin_errors] == ["mcp_servers"]
    assert "mcp_servers must hold tables" in reg.plugin_errors[0].error


def test_a_server_over_streamable_http(tmp_path, monkeypatch, workdir):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.mcp_fixture_server", "--http", str(port)], cwd=ROOT,
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "the fixture server did not start"
                time.sleep(0.2)
        reg = loaded(tmp_path, monkeypatch, f'[mcp_servers.web]\nurl = "http://127.0.0.1:{port}/mcp"\nprefix = "remote_"\n')
        assert reg.plugin_errors == [] and "remote_shout" in reg
        plan = Plan.model_validate({"steps": [{"id": "s", "tool": "remote_shout", "args": {"text": "far"}}]})
        assert Executor(reg, cache=False).run(plan, {}, Workspace.for_run("out", {})).outputs == {"s": "FAR"}
    finally:
        proc.terminate()
        proc.wait(15)


def test_json_schemas_map_to_cadenza_types():
    assert annotation_for({"type": "string", "description": "path to the input video"}, "clip", {}) is Video
    assert media_kind("voice", {"type": "string", "description": "the voice to speak with"}) is None  # a name, not a file
    assert media_kind("image", {"type": "string"}) == "image"
    assert media_kind("x", {"type": "string", "contentMediaType": "audio/wav"}) == "audio"
    assert annotation_for({"type": "array", "items": {"type": "string"}, "description": "paths to audio files"},
                          "tracks", {}) == list[Audio]
    assert annotation_for({"anyOf": [{"type": "integer"}, {"type": "null"}]}, "n", {}) == Optional[int]
    assert annotation_for({"enum": ["a", "b"]}, "mode", {}) == Literal["a", "b"]
    assert annotation_for({"$ref": "#/$defs/Pic"}, "p", {"Pic": {"type": "string", "x-media": "image"}}) is Image
    bounded = annotation_for({"type": "number", "minimum": 0, "maximum": 1}, "level", {})
    assert get_args(bounded)[0] is float and get_args(bounded)[1].ge == 0 and get_args(bounded)[1].le == 1
    assert annotation_for({"type": "object"}, "o", {}) is dict and annotation_for({}, "o", {}) is Any


def test_the_readmes_config_example_is_valid():
    import re
    import tomllib

    from cadenza.tools.mcp_client import checked_spec

    (block,) = [b for b in re.findall(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(), re.S) if "mcp_servers" in b]
    servers = tomllib.loads(block)["mcp_servers"]
    assert set(servers) == {"weather", "studio"}
    for name, spec in servers.items():
        checked_spec(name, spec)


def test_a_server_is_never_started_inside_itself(tmp_path, monkeypatch):
    """`cadenza mcp` listed in its own config: the process a server started does not start it again."""
    monkeypatch.setenv("CADENZA_MCP_PARENTS", "fx")
    reg = loaded(tmp_path, monkeypatch, fixture_table(tmp_path))
    (err,) = reg.plugin_errors
    assert err.plugin.startswith("mcp:fx") and "started this process" in err.error
