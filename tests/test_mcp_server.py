"""`cadenza mcp` driven by the official MCP SDK's client, over stdio and over streamable HTTP: every
tool listed with its JSON Schema, a call with progress notifications and resource links to its
outputs, an output passed on by URI, paths outside the allowed roots refused, `plan` and `run`
(a request planned by the scripted test model, a workflow by name and by file), a heartbeat while
a long step runs, and the HTTP server's token and host checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest

mcp = pytest.importorskip("mcp")

from mcp import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared.exceptions import McpError  # noqa: E402

from tests.media_factory import tone  # noqa: E402
from tests.server_tools import registry  # noqa: E402
from tests.serve_helper import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PLAN = {"steps": [{"id": "level", "tool": "normalize_audio", "args": {"audio": "$voice", "target_lufs": -20}}]}


def server_env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "CADENZA_CACHE_DIR": str(tmp / "cache"), "CADENZA_CONFIG": str(tmp / "no-config.toml")}


@asynccontextmanager
async def stdio_session(tmp: Path, *args: str, cli: bool = False):
    """A session with the server started over stdio in `tmp/work`: the real command line, or the
    test server (the scripted model, `wait_for_gate`)."""
    argv = ["-c", "from cadenza.cli import main; raise SystemExit(main())", "mcp"] if cli else ["-m", "tests.mcp_cadenza"]
    params = StdioServerParameters(command=sys.executable, args=[*argv, "--out", str(tmp / "out"), *args],
                                   env=server_env(tmp), cwd=str(tmp / "work"))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@pytest.fixture()
def tmp(tmp_path):
    (tmp_path / "work").mkdir()
    tone(tmp_path / "work" / "voice.wav", amp=0.1)
    (tmp_path / "elsewhere").mkdir()
    tone(tmp_path / "elsewhere" / "far.wav")
    return tmp_path


def result_doc(result) -> dict:
    assert not result.isError, result.content[0].text
    return result.structuredContent


def test_every_tool_is_served_and_runs_with_progress_and_resource_links(tmp, monkeypatch):
    from cadenza.tools.registry import Registry

    monkeypatch.setenv("CADENZA_CONFIG", server_env(tmp)["CADENZA_CONFIG"])  # the server's own view of the plugins
    expected = Registry()
    expected.load_plugins()

    async def main():
        notes: list[tuple[float, float | None, str]] = []

        async def on_progress(progress, total, message):
            notes.append((progress, total, message))

        async with stdio_session(tmp, cli=True) as s:
            listed = {t.name: t for t in (await s.list_tools()).tools}
            assert set(listed) == set(expected.names()) | {"plan", "run"}
            schema = listed["normalize_audio"].inputSchema
            assert schema["properties"]["audio"]["x-media"] == "audio" and schema["required"] == ["audio"]
            assert schema["properties"]["target_lufs"]["minimum"] == -60  # the tool's own schema, ranges and all

            result = await s.call_tool("normalize_audio", {"audio": "voice.wav", "target_lufs": -20},
                                       progress_callback=on_progress)
            doc = result_doc(result)
            assert doc["status"] == "succeeded"
            out = Path(doc["outputs"]["result"]["path"])
            assert out.parent.parent == tmp / "out" and out.read_bytes()[:4] == b"RIFF"
            (link,) = [c for c in result.content if c.type == "resource_link"]
            assert link.mimeType == "audio/x-wav" and Path(link.uri.path) == out
            read = await s.read_resource(link.uri)
            assert read.contents[0].blob and read.contents[0].mimeType == "audio/x-wav"
            messages = [m for _, _, m in notes]
            assert "step 'normalize_audio' (normalize_audio) started" in messages
            assert any(m.startswith("step 'normalize_audio' (normalize_audio) finished in ") for m in messages)
            assert notes[-1][:2] == (1.0, 1.0) and [p for p, _, _ in notes] == sorted(p for p, _, _ in notes)

            chained = result_doc(await s.call_tool("fade_audio", {"audio": str(link.uri), "fade_in": 0.2}))
            assert Path(chained["outputs"]["result"]["path"]).exists()  # an output passed on by its URI

            for bad in (str(tmp / "elsewhere" / "far.wav"), "/etc/passwd", "../elsewhere/far.wav"):
                refused = await s.call_tool("normalize_audio", {"audio": bad})
                assert refused.isError and "not allowed" in refused.content[0].text, refused.content[0].text
                assert "\n" not in refused.content[0].text
            with pytest.raises(McpError, match="not an output of this server"):
                await s.read_resource((tmp / "work" / "voice.wav").as_uri())  # only outputs are served
    anyio.run(main)


def test_paths_under_a_root_are_read_and_unknown_tools_refused(tmp):
    async def main():
        async with stdio_session(tmp, "--root", str(tmp / "elsewhere"), cli=True) as s:
            doc = result_doc(await s.call_tool("normalize_audio", {"audio": str(tmp / "elsewhere" / "far.wav")}))
            assert doc["status"] == "succeeded"
            unknown = await s.call_tool("no_such_tool", {})
            assert unknown.isError and "no_such_tool" in unknown.content[0].text
            bad = await s.call_tool("normalize_audio", {"audio": "voice.wav", "target_lufs": 5})
            assert bad.isError and "target_lufs" in bad.content[0].text
    anyio.run(main)
    assert not [p for p in (tmp / "out").iterdir() if not any(p.glob("*.wav"))]  # a refused call leaves no folder


def test_plan_and_run_a_request_and_workflows(tmp):
    (tmp / "script.json").write_text(json.dumps([PLAN, PLAN]))
    wf = tmp / "work" / "level.yaml"
    wf.write_text("name: level\ninputs:\n  sound: {type: audio}\nsteps:\n"
                  "  - {id: quiet, tool: normalize_audio, args: {audio: $sound, target_lufs: -30}}\noutputs:\n  result: $quiet\n")

    async def main():
        notes: list[str] = []

        async def on_progress(progress, total, message):
            notes.append(message)

        async with stdio_session(tmp, "--script", str(tmp / "script.json")) as s:
            planned = result_doc(await s.call_tool("plan", {"request": "make my voice quieter",
                                                            "files": {"voice": "voice.wav"}}, progress_callback=on_progress))
            assert notes == ["planning the request"]
            assert planned["plan"]["steps"] == PLAN["steps"]
            ran = result_doc(await s.call_tool("run", {"request": "make my voice quieter", "files": {"voice": "voice.wav"}},
                                               progress_callback=on_progress))
            assert notes[1:3] == ["planning the request", "1 step to run"]
            assert ran["status"] == "succeeded" and ran["answer"].startswith("Done in 1 step.")
            assert Path(ran["outputs"]["level"]["path"]).read_bytes()[:4] == b"RIFF"

            by_name = await s.call_tool("run", {"workflow": "narrate", "inputs": {"speech": "voice.wav", "music": "voice.wav"}})
            assert result_doc(by_name)["status"] == "succeeded"
            assert {c.name for c in by_name.content if c.type == "resource_link"} == set(result_doc(by_name)["outputs"])
            by_file = result_doc(await s.call_tool("run", {"workflow": "level.yaml", "inputs": {"sound": "voice.wav"}}))
            assert Path(by_file["outputs"]["result"]["path"]).exists()

            for args, says in (({"workflow": "nope"}, "no workflow 'nope'"),
                               ({"workflow": "narrate", "inputs": {"speech": "voice.wav"}}, "missing input 'music'"),
                               ({"request": "x", "workflow": "narrate"}, "either 'request' or 'workflow'"),
                               ({"request": "x", "files": {"v": "/etc/hostname"}}, "not allowed")):
                refused = await s.call_tool("run", args)
                assert refused.isError and says in refused.content[0].text, (args, refused.content[0].text)
    anyio.run(main)


def test_a_long_step_sends_a_heartbeat(tmp):
    gate = tmp / "gate"

    async def main():
        notes: list[str] = []

        async def on_progress(progress, total, message):
            notes.append(message)
            if sum("running for" in m for m in notes) >= 2:
                gate.touch()

        async with stdio_session(tmp) as s:
            with anyio.fail_after(60):
                doc = result_doc(await s.call_tool("wait_for_gate", {"audio": "voice.wav", "gate": str(gate)},
                                                   progress_callback=on_progress))
        assert doc["status"] == "succeeded"
        assert any(m.startswith("step 'wait_for_gate' (wait_for_gate) running for ") for m in notes)
    anyio.run(main)


class HttpServer:
    def __init__(self, tmp: Path, *args: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.mcp_cadenza", "--out", str(tmp / "out"),
                                      "--http", str(self.port), *args], env=server_env(tmp), cwd=tmp / "work")
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(self.url, timeout=1)
                return
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError("the MCP server did not start")
                time.sleep(0.2)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def test_streamable_http_with_a_token(tmp):
    server = HttpServer(tmp, "--token", "sesame")
    try:
        async def main():
            notes = []

            async def on_progress(progress, total, message):
                notes.append(message)

            async with httpx.AsyncClient(headers={"Authorization": "Bearer sesame"}) as http, \
                    streamable_http_client(server.url, http_client=http) as (read, write, _), \
                    ClientSession(read, write) as s:
                await s.initialize()
                names = {t.name for t in (await s.list_tools()).tools}
                assert names == {t.name for t in registry()} | {"plan", "run"}
                doc = result_doc(await s.call_tool("normalize_audio", {"audio": "voice.wav"}, progress_callback=on_progress))
                assert Path(doc["outputs"]["result"]["path"]).read_bytes()[:4] == b"RIFF"
                assert any("finished in" in m for m in notes)
        anyio.run(main)
        hello = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        accept = {"Accept": "application/json, text/event-stream"}
        no_token = httpx.post(server.url, json=hello, headers=accept)
        assert no_token.status_code == 401 and "token" in no_token.json()["error"]
        wrong = httpx.post(server.url, json=hello, headers={**accept, "Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        rebinding = httpx.post(server.url, json=hello, headers={**accept, "Authorization": "Bearer sesame",
                                                                 "Host": "evil.example"})
        assert rebinding.status_code == 421  # a page elsewhere that renamed itself to reach this machine
        for _ in range(5):  # five wrong tokens in a minute from this address (the right one above cleared
            # the count): then 429, for the right token too
            httpx.post(server.url, json=hello, headers={**accept, "Authorization": "Bearer nope"})
        limited = httpx.post(server.url, json=hello, headers={**accept, "Authorization": "Bearer sesame"})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert "too many wrong tokens" in limited.json()["error"]
    finally:
        server.stop()


def test_serving_beyond_this_machine_needs_a_token(tmp):
    from cadenza.server.mcp_server import serve_mcp
    from cadenza.errors import InputError

    with pytest.raises(InputError, match="needs a token"):
        serve_mcp(registry(), http=True, host="0.0.0.0", port=free_port(), out_dir=tmp / "out")


def test_a_cancelled_call_stops_its_run():
    """The SDK cancels a request's handler; the run in its worker thread is told through its cancel event."""
    import threading
    from types import SimpleNamespace

    from cadenza.server.mcp_server import Progress

    told = threading.Event()

    def work(cancel: threading.Event) -> None:
        if cancel.wait(10):
            told.set()

    async def main():
        with anyio.move_on_after(0.3):
            await Progress(SimpleNamespace(meta=None, session=None), heartbeat_s=0.1).run(work)
    anyio.run(main)
    assert told.wait(5)


def test_a_request_the_client_cancels_stops_its_step(tmp):
    """notifications/cancelled for a running call: the step is told to stop and run.json says so."""
    from mcp import types

    gate = tmp / "never-opened"

    async def main():
        async with stdio_session(tmp) as s:
            started = anyio.Event()

            async def on_progress(progress, total, message):
                if "started" in message:
                    started.set()

            async def call():
                with pytest.raises(McpError, match="cancelled"):
                    await s.call_tool("wait_for_gate", {"audio": "voice.wav", "gate": str(gate)},
                                      progress_callback=on_progress)

            request_id = s._request_id  # the id the call is about to take (the SDK numbers requests in order)
            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                with anyio.fail_after(30):
                    await started.wait()
                await s.send_notification(types.ClientNotification(types.CancelledNotification(
                    params=types.CancelledNotificationParams(requestId=request_id, reason="the test"))))
            deadline = time.monotonic() + 20
            while True:
                records = [json.loads(p.read_text()) for p in (tmp / "out").glob("*/run.json")]
                if records and records[0]["status"] == "cancelled" or time.monotonic() > deadline:
                    break
                await anyio.sleep(0.1)
            assert records and records[0]["status"] == "cancelled", records
    anyio.run(main)
