"""The HTTP API (`cadenza serve`): runs, uploads, outputs, validation, the queue and the run store,
through FastAPI's TestClient; bad input and the token in tests/test_server_safety.py; event streams,
disconnects and restarts against a real uvicorn process on a free loopback port (tests/test_server_live.py)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cadenza.llm.testing import ScriptedChatModel
from cadenza.server.app import create_app
from tests.media_factory import tone
from tests.server_tools import gated_workflow, registry

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
REGISTRY = registry()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CADENZA_CACHE_DIR", str(root / "cache"))
        tone(root / "a.wav", freq=330, seconds=1.0)
        tone(root / "b.wav", freq=220, seconds=1.5)
        yield root


@pytest.fixture(scope="module")
def client(env):
    with TestClient(create_app(env / "data", registry=REGISTRY, workers=2), raise_server_exceptions=False) as c:
        yield c


def upload(c, path: Path, name: str = "x.bin", ctype: str = "application/octet-stream"):
    with open(path, "rb") as f:
        return c.post("/uploads", files={"file": (name, f, ctype)})


def wait_done(c, run_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = c.get(f"/runs/{run_id}").json()
        if doc["status"] not in ("queued", "running"):
            return doc
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish: {doc}")


def wait_for(predicate, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def events_of(c, run_id: str) -> list[dict]:
    with c.stream("GET", f"/runs/{run_id}/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


# -- what a client reads ------------------------------------------------------------------------
def test_openapi_tools_and_workflows(client):
    doc = client.get("/openapi.json").json()
    assert {"/runs", "/uploads", "/validate", "/tools", "/runs/{run_id}/events",
            "/runs/{run_id}/outputs/{name}"} <= set(doc["paths"])
    assert "text/event-stream" in json.dumps(doc["paths"]["/runs/{run_id}/events"])
    tools = {t["name"]: t for t in client.get("/tools").json()["tools"]}
    assert tools["mix_audio"]["input_schema"]["properties"]["tracks"]["type"] == "array"
    assert tools["mix_audio"]["signature"].startswith("mix_audio(tracks: list[audio]")
    assert client.get("/tools/mix_audio").json()["backends"]
    assert {"narrate", "subtitle"} <= {w["name"] for w in client.get("/workflows").json()["workflows"]}
    r = client.get("/tools/no_such_tool")
    assert r.status_code == 404 and r.json() == {"error": "no tool 'no_such_tool'"}
    page = client.get("/docs")  # the API's page works offline: its scripts come from this server, not a CDN
    assert page.status_code == 200 and "/openapi.json" in page.text
    scripts = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page.text)
    assert scripts and all(u.startswith("/") for u in scripts), scripts
    assert all(client.get(u).status_code == 200 for u in scripts)


def test_tools_document_is_kept_until_the_registry_changes(tmp_path):
    """/tools answers from documents made once (schemas are slow to build), the same as made afresh,
    and made again when a tool is registered or replaced."""
    from cadenza import tool
    from tests.server_tools import registry as make_registry

    reg = make_registry()
    with TestClient(create_app(tmp_path / "data", registry=reg, workers=1)) as c:
        first = c.get("/tools")
        assert first.headers["content-type"] == "application/json"
        fresh = [{"name": t.name, "description": t.description, "signature": t.signature_line(),
                  "input_schema": t.input_schema(), "outputs": t.outputs, "output_schema": t.output_schema()}
                 for t in reg]
        assert first.json() == json.loads(json.dumps({"tools": fresh}))
        assert c.get("/tools").content == first.content
        with_backends = c.get("/tools?backends=true").json()["tools"]
        assert [{k: v for k, v in d.items() if k != "backends"} for d in with_backends] == first.json()["tools"]
        assert all("available" in b for d in with_backends for b in d["backends"])

        @tool
        def added_late(x: float = 1.0) -> float:
            """A tool registered after the first /tools."""
            return x
        reg.register(added_late)
        names = [t["name"] for t in c.get("/tools").json()["tools"]]
        assert "added_late" in names and len(names) == len(fresh) + 1

        @tool(name="added_late")
        def replaced(y: str = "a") -> str:
            """The same name, another tool."""
            return y
        reg.register(replaced, replace=True)
        doc = {t["name"]: t for t in c.get("/tools").json()["tools"]}["added_late"]
        assert list(doc["input_schema"]["properties"]) == ["y"]


def test_validate_without_running(client, env):
    ok = client.post("/validate", json={"workflow": "narrate"})
    assert ok.status_code == 200 and ok.json()["valid"] and "speech" in ok.json()["inputs"]
    ok = client.post("/validate", json={"workflow_yaml": gated_workflow(env / "gate")})
    assert ok.status_code == 200 and ok.json()["steps"] == 2
    bad = client.post("/validate", json={"plan": {"steps": [{"id": "m", "tool": "mix_sound", "args": {}}]}})
    assert bad.status_code == 422 and "mix_sound" in bad.json()["error"] and bad.json()["problems"]
    dangling = client.post("/validate", json={"workflow_yaml": "steps:\n  - {id: n, tool: normalize_audio, args: {audio: $nope}}\n"})
    assert dangling.status_code == 422 and "$nope" in dangling.json()["error"]
    yaml_error = client.post("/validate", json={"workflow_yaml": "steps: [\n"})
    assert yaml_error.status_code == 422 and "YAML syntax error" in yaml_error.json()["error"]
    assert client.post("/validate", json={"workflow": "nope"}).status_code == 422
    assert client.post("/validate", json={}).status_code == 422
    assert not list((env / "data" / "runs").glob("*"))  # nothing ran


# -- a workflow run, start to finish --------------------------------------------------------------
def test_workflow_run_from_uploads_to_downloads(client, env):
    speech = upload(client, env / "a.wav", "voice.txt", "text/plain")  # the label is not what counts
    assert speech.status_code == 201 and speech.json()["kind"] == "audio"
    music = upload(client, env / "b.wav").json()["id"]
    r = client.post("/runs", json={"workflow": "narrate", "inputs": {"speech": speech.json()["id"], "music": music}})
    assert r.status_code == 202, r.text
    run = wait_done(client, r.json()["id"])
    assert run["status"] == "succeeded", run
    folder = env / "data" / "runs" / run["id"]
    assert {p.name for p in folder.iterdir()} >= {"inputs", "outputs", "state.json", "events.jsonl"}
    assert sorted(p.name for p in (folder / "inputs").iterdir()) == ["music.wav", "speech.wav"]
    out = run["outputs"]["narration"]
    assert "path" not in out and out["kind"] == "audio"
    got = client.get(out["url"])
    assert got.status_code == 200 and got.headers["content-type"] in ("audio/x-wav", "audio/wav")
    assert got.content == (folder / "outputs" / out["name"]).read_bytes() and got.content[:4] == b"RIFF"
    record = client.get(f"/runs/{run['id']}/run.json").json()
    assert record["status"] == "succeeded" and {s["status"] for s in record["steps"]} <= {"succeeded", "cached"}
    kinds = [e["kind"] for e in events_of(client, run["id"])]
    assert kinds[0] == "run_queued" and kinds[-1] == "run_finished" and "execution_started" in kinds
    assert kinds.count("step_started") == len(record["steps"])
    finished = [e for e in events_of(client, run["id"]) if e["kind"] in ("step_finished", "step_cached")]
    assert all(e["seconds"] >= 0 and e["step"] and e["tool"] for e in finished)
    assert [r["id"] for r in client.get("/runs").json()["runs"]][0] == run["id"]


def test_multipart_run_with_an_uploaded_workflow_file(client, env):
    (env / "gate-open").touch()
    with open(env / "a.wav", "rb") as f:
        r = client.post("/runs", data={"inputs": "{}"},
                        files={"workflow_file": ("wf.yaml", gated_workflow(env / "gate-open").encode(), "text/yaml"),
                               "sound": ("../../../escape.wav", f, "audio/wav")})
    assert r.status_code == 202, r.text
    run = wait_done(client, r.json()["id"])
    assert run["status"] == "succeeded" and client.get(run["outputs"]["result"]["url"]).content[:4] == b"RIFF"
    folder = env / "data" / "runs" / run["id"]
    assert (folder / "workflow" / "workflow.yaml").exists() and [p.name for p in (folder / "inputs").iterdir()] == ["sound.wav"]
    assert not list((env / "data" / "tmp").iterdir())  # the received parts were moved or removed
    assert not (env.parent / "escape.wav").exists() and not list(env.parent.parent.glob("escape.wav"))


def test_an_output_that_is_a_list_of_files(client, env):
    sound = upload(client, env / "a.wav").json()["id"]
    wf = "inputs: {s: {type: audio}}\nsteps:\n  - {id: two, tool: twice, args: {audio: $s}}\noutputs: {copies: $two}\n"
    run = wait_done(client, client.post("/runs", json={"workflow_yaml": wf, "inputs": {"s": sound}}).json()["id"])
    copies = run["outputs"]["copies"]
    assert run["status"] == "succeeded" and [c["url"][-8:] for c in copies] == ["?index=0", "?index=1"]
    assert all(client.get(c["url"]).content[:4] == b"RIFF" for c in copies)
    for query in ("", "?index=2", "?index=-1"):
        r = client.get(f"/runs/{run['id']}/outputs/copies{query}")
        assert r.status_code == 404 and "is a list of 2 files: add ?index=0..1" in r.json()["error"]
    assert client.get(f"/runs/{run['id']}/outputs/copies?index=x").status_code == 422


def test_form_values_are_read_by_their_declared_type(client, env):
    music = upload(client, env / "b.wav").json()["id"]
    with open(env / "a.wav", "rb") as f:
        r = client.post("/runs", data={"workflow": "narrate", "music": music, "music_gain": "-12"},
                        files={"speech": ("s.wav", f)})
    assert r.status_code == 202, r.text
    assert r.json()["inputs"]["music_gain"] == -12 and wait_done(client, r.json()["id"])["status"] == "succeeded"


def test_a_request_is_planned_by_the_agent_and_run(env):
    plan = {"steps": [{"id": "s1", "tool": "mix_audio",
                       "args": {"tracks": ["$voice", "$music"], "gains_db": [0, -6], "duck_under": 0}}]}
    with ScriptedChatModel([plan, plan]) as llm, \
            TestClient(create_app(env / "agent-data", registry=REGISTRY, llm=llm)) as c:
        ids = {n: upload(c, env / f).json()["id"] for n, f in (("voice", "a.wav"), ("music", "b.wav"))}
        r = c.post("/runs", json={"request": "put the music under my voice", "files": ids})
        assert r.status_code == 202, r.text
        run = wait_done(c, r.json()["id"])
        assert run["status"] == "succeeded" and run["answer"].startswith("Done in 1 step.")
        assert c.get(run["outputs"]["s1"]["url"]).content[:4] == b"RIFF"
        record = c.get(f"/runs/{run['id']}/run.json").json()
        assert record["agent"]["request"] == "put the music under my voice"
        with open(env / "a.wav", "rb") as voice, open(env / "b.wav", "rb") as music:  # the files in the request itself
            r = c.post("/runs", data={"request": "put the music under my voice"},
                       files={"voice": ("v.wav", voice), "music": ("m.wav", music)})
        assert r.status_code == 202, r.text
        assert wait_done(c, r.json()["id"])["status"] == "succeeded"
        assert r.json()["inputs"] == {"voice": {"file": "voice.wav"}, "music": {"file": "music.wav"}}


def test_an_internal_error_is_one_line_of_json_and_the_server_goes_on(client, monkeypatch):
    monkeypatch.setattr(client.app.state.store, "list", lambda: 1 / 0)
    r = client.get("/runs")
    assert r.status_code == 500 and r.json() == {"error": "internal error: ZeroDivisionError: division by zero"}
    monkeypatch.undo()
    assert client.get("/runs").status_code == 200


# -- the queue, concurrency, cancel ----------------------------------------------------------------
def test_runs_overlap_queue_is_bounded_and_cancel_works(env):
    gate = env / "gate-q"
    wf = gated_workflow(gate)
    with TestClient(create_app(env / "queue-data", registry=REGISTRY, workers=2, max_queued=1)) as c:
        sound = upload(c, env / "a.wav").json()["id"]
        submit = lambda: c.post("/runs", json={"workflow_yaml": wf, "inputs": {"sound": sound}})  # noqa: E731
        # one at a time: the queue holds one, so b waits until a worker has taken a off it
        a = submit().json()["id"]
        wait_for(lambda: c.get(f"/runs/{a}").json()["status"] != "queued")
        b = submit().json()["id"]
        # both wait at the gate at once: two runs' steps are running together
        wait_for(lambda: all(any(e["kind"] == "step_started" and e["step"] == "wait"
                                 for e in events_of_now(c, x)) for x in (a, b)))
        queued = submit()
        assert queued.status_code == 202 and queued.json()["status"] == "queued"
        full = submit()
        assert full.status_code == 429 and full.headers["retry-after"] == "5" and "queue is full" in full.json()["error"]
        assert c.post(f"/runs/{queued.json()['id']}/cancel").json()["status"] == "cancelled"
        assert c.post(f"/runs/{a}/cancel").status_code == 202
        assert wait_done(c, a)["status"] == "cancelled"
        assert c.post(f"/runs/{a}/cancel").status_code == 409
        gate.touch()
        assert wait_done(c, b)["status"] == "succeeded"
        record = c.get(f"/runs/{a}/run.json").json()
        assert record["status"] == "cancelled"
        assert events_of(c, a)[-1] == {**events_of(c, a)[-1], "kind": "run_finished", "status": "cancelled"}
        resumed = c.post(f"/runs/{a}/resume")  # a cancelled run runs again: both steps are cached, as run b
        assert resumed.status_code == 202 and wait_done(c, a)["status"] == "succeeded"  # made the same ones
        assert [s["status"] for s in c.get(f"/runs/{a}/run.json").json()["steps"]] == ["cached", "cached"]
        assert c.post(f"/runs/{a}/resume").status_code == 409


def test_submissions_are_prepared_outside_the_lock(env, monkeypatch):
    """benchmarks/serve.py: 50 submissions at once waited for each other (p99 0.9 s): each was parsed,
    copied and decoded under the store's lock. Now a submission is prepared outside it with a place
    in the queue held: one slow to prepare holds up no other, the queue's bound counts it, a failed one
    gives its place back, none is lost or doubled, and runs are listed and run in the order they
    joined the queue."""
    import threading

    gate = env / "gate-prep"
    wf = gated_workflow(gate)
    with TestClient(create_app(env / "prep-data", registry=REGISTRY, workers=1, max_queued=2)) as c:
        store = c.app.state.store
        slow, quick = (upload(c, env / "a.wav").json()["id"] for _ in range(2))
        submit = lambda sound: c.post("/runs", json={"workflow_yaml": wf, "inputs": {"sound": sound}})  # noqa: E731
        first = submit(quick).json()["id"]
        wait_for(lambda: c.get(f"/runs/{first}").json()["status"] == "running")  # the one worker waits at the gate
        entered, release = threading.Event(), threading.Event()
        copy_into = store.uploads.copy_into

        def held_up(upload_id, folder, stem):
            if upload_id == slow:
                entered.set()
                assert release.wait(15)
            return copy_into(upload_id, folder, stem)
        monkeypatch.setattr(store.uploads, "copy_into", held_up)
        answers = {}
        thread = threading.Thread(target=lambda: answers.update(a=submit(slow)))
        thread.start()
        assert entered.wait(15)  # a is being prepared, its place held
        t0 = time.monotonic()
        b = submit(quick)
        assert b.status_code == 202 and time.monotonic() - t0 < 10  # it did not wait for a
        full = submit(quick)  # b queued + a's place = the queue's 2
        assert full.status_code == 429 and full.headers["retry-after"] == "5" and store._reserved == 1
        release.set()
        thread.join(15)
        a = answers["a"]
        assert a.status_code == 202 and store._reserved == 0
        ids = [r["id"] for r in c.get("/runs").json()["runs"]]
        assert ids == [a.json()["id"], b.json()["id"], first]  # newest first: a joined the queue after b
        assert {p.name for p in (env / "prep-data" / "runs").iterdir()} == set(ids)
        gate.touch()
        done = {rid: wait_done(c, rid) for rid in ids}
        assert all(d["status"] == "succeeded" and d["attempts"] == 1 for d in done.values())
        assert done[b.json()["id"]]["started_at"] < done[a.json()["id"]]["started_at"]  # the queue's order
        bad = c.post("/runs", json={"workflow_yaml": wf, "inputs": {"sound": "0" * 32}})
        assert bad.status_code == 422 and store._reserved == 0
        assert {p.name for p in (env / "prep-data" / "runs").iterdir()} == set(ids)


def test_an_uploaded_workflow_is_parsed_once_when_submitted(env, monkeypatch):
    """An uploaded workflow was parsed twice when submitted (checked, then read back from the file just
    written), about half of a submission's CPU time: now once, and the run is the same."""
    import threading

    from cadenza.engine import workflow

    parses, me = [], threading.get_ident()
    real = workflow.safe_load_yaml
    monkeypatch.setattr(workflow, "safe_load_yaml", lambda *a, **k: (parses.append(threading.get_ident()), real(*a, **k))[1])
    gate = env / "gate-parse"
    gate.touch()
    with TestClient(create_app(env / "parse-data", registry=REGISTRY, workers=1)) as c:
        store = c.app.state.store
        sound = upload(c, env / "a.wav").json()["id"]
        run = store.submit_workflow(name=None, yaml_text=gated_workflow(gate), inputs={"sound": sound})
        assert parses.count(me) == 1
        done = wait_done(c, run.id)
        assert done["status"] == "succeeded" and c.get(done["outputs"]["result"]["url"]).content[:4] == b"RIFF"


def test_stopping_the_server_interrupts_a_run_and_keeps_it(env):
    data = env / "stop-data"
    with TestClient(create_app(data, registry=REGISTRY)) as c:
        sound = upload(c, env / "a.wav").json()["id"]
        rid = c.post("/runs", json={"workflow_yaml": gated_workflow(env / "gate-never"), "inputs": {"sound": sound}}).json()["id"]
        wait_for(lambda: any(e["kind"] == "step_started" and e["step"] == "wait" for e in events_of_now(c, rid)))
    assert json.loads((data / "runs" / rid / "state.json").read_text())["status"] == "interrupted"
    with TestClient(create_app(data, registry=REGISTRY)) as c:
        assert c.get(f"/runs/{rid}").json()["status"] == "interrupted"
        assert events_of(c, rid)[-1]["status"] == "interrupted"


def test_a_finished_run_keeps_no_events_or_cancel_event_in_memory(env):
    """benchmarks/serve.py saw the server grow by ~11 KB a run (every event of every run, a cancel
    event each, a hash cache): a finished run's events are read back from its file, and late
    clients still get all of them."""
    from cadenza.server.events import EventLog

    with TestClient(create_app(env / "memory-data", registry=REGISTRY, workers=1)) as c:
        store = c.app.state.store
        sound = upload(c, env / "a.wav").json()["id"]
        rid = c.post("/runs", json={"workflow_yaml": gated_workflow(env / "gate-open-m"),
                                    "inputs": {"sound": sound}}).json()["id"]
        (env / "gate-open-m").touch()
        assert wait_done(c, rid)["status"] == "succeeded"
        log = store.events(rid)
        assert log._events is None and rid not in store._cancels
        events = events_of(c, rid)
        on_disk = [json.loads(x) for x in (env / "memory-data" / "runs" / rid / "events.jsonl").read_text().splitlines()]
        assert events == on_disk and [e["seq"] for e in events] == list(range(len(log)))
        assert events[-1]["kind"] == "run_finished"

    log = EventLog(env / "log.jsonl")  # alone: kept while going, on disk once final, kept again when resumed
    log.add("run_queued")
    log.add("step_started", step="a")
    assert log._events is not None and [e["kind"] for e in log.since(1)[0]] == ["step_started"] and not log.since(1)[1]
    log.add("run_finished", status="cancelled")
    assert log._events is None and [e["kind"] for e in log.since(0)[0]] == ["run_queued", "step_started", "run_finished"]
    assert log.since(0)[1] is True
    log.add("run_queued")  # resumed
    assert log._events is not None and log.since(0)[1] is False and [e["seq"] for e in log.since(0)[0]] == [0, 1, 2, 3]
    again = EventLog(env / "log.jsonl")  # after a restart: counted, not held
    assert again._events is None and len(again) == 4 and again.since(3)[0][0]["kind"] == "run_queued"
    again.add("run_interrupted")
    assert again.since(0)[1] is True and again.since(4)[0][0]["seq"] == 4


def test_a_finished_run_is_kept_as_its_line_of_the_run_list(env):
    """benchmarks/serve.py saw ~6.5 KB more memory for each finished run (its record and event-log
    object, kept for the run list). A finished run is now one `Entry` (its summary, texts cut at CLIP
    characters); its record, events and files are read from its folder, and what a client reads is
    unchanged: the list (newest first, a long request whole), each run, its outputs and events."""
    import sys

    from cadenza.server.runs import CLIP, Entry

    plan = {"steps": [{"id": "s1", "tool": "mix_audio",
                       "args": {"tracks": ["$voice", "$music"], "gains_db": [0, -6], "duck_under": 0}}]}
    long_request = "put the music under my voice, quietly " * 20
    data = env / "index-data"
    with ScriptedChatModel([plan]) as llm, TestClient(create_app(data, registry=REGISTRY, llm=llm, workers=1)) as c:
        store = c.app.state.store
        files = {n: upload(c, env / f).json()["id"] for n, f in (("voice", "a.wav"), ("music", "b.wav"))}
        wf = "inputs: {s: {type: audio}}\nsteps:\n  - {id: two, tool: twice, args: {audio: $s}}\noutputs: {copies: $two}\n"
        ids = [c.post("/runs", json={"workflow_yaml": wf, "inputs": {"s": files["voice"]}}).json()["id"] for _ in range(3)]
        ids.append(c.post("/runs", json={"request": long_request, "files": files}).json()["id"])
        docs = {rid: wait_done(c, rid) for rid in ids}
        assert all(d["status"] == "succeeded" for d in docs.values()), docs
        assert not store._open and not store._logs and not store._cancels
        assert set(store._done) == set(ids) and all(type(e) is Entry for e in store._done.values())
        request_entry = store._done[ids[-1]]
        assert request_entry.clipped and request_entry.request == long_request[:CLIP]
        workflow_entry = store._done[ids[0]]
        assert not workflow_entry.clipped
        assert sys.getsizeof(workflow_entry) + sum(sys.getsizeof(f) for f in workflow_entry[1:] if f is not None) < 600

        listed = c.get("/runs").json()["runs"]
        assert {r["id"] for r in listed} == set(ids) and len(listed) == len(ids)
        assert [r["created_at"] for r in listed] == sorted((d["created_at"] for d in docs.values()), reverse=True)
        assert all(r == {k: docs[r["id"]][k] for k in r} for r in listed)  # the list says what each run says
        assert next(r for r in listed if r["id"] == ids[-1])["request"] == long_request
        page = c.get("/runs", params={"limit": 2, "offset": 1}).json()  # a page of the same list
        assert page["runs"] == listed[1:3] and page["total"] == len(ids) and page["offset"] == 1
        assert c.get("/runs", params={"offset": 3}).json()["runs"] == listed[3:]
        bad = c.get("/runs", params={"limit": 0})
        assert bad.status_code == 422 and "limit" in bad.text

        run = c.get(f"/runs/{ids[0]}").json()  # read from its folder
        assert run == docs[ids[0]] and c.get(run["outputs"]["copies"][1]["url"]).content[:4] == b"RIFF"
        assert c.get(f"/runs/{ids[0]}/inputs/s").content[:4] == b"RIFF"
        assert c.get(f"/runs/{ids[-1]}/run.json").json()["agent"]["request"] == long_request
        assert [e["kind"] for e in events_of(c, ids[0])][-1] == "run_finished"
        assert c.post(f"/runs/{ids[0]}/cancel").status_code == 409 and c.post(f"/runs/{ids[0]}/resume").status_code == 409
        assert c.get(f"/runs/{'0' * 32}").status_code == 404 and c.get(f"/runs/{'0' * 32}/events").status_code == 404
    with TestClient(create_app(data, registry=REGISTRY)) as c:  # after a restart: the same list, from disk
        assert c.get("/runs").json()["runs"] == listed
        assert not c.app.state.store._open and not c.app.state.store._logs


def test_the_hash_cache_is_bounded(tmp_path, monkeypatch):
    from cadenza import media

    monkeypatch.setattr(media, "HASH_CACHE_MAX", 3)
    monkeypatch.setattr(media, "_hash_cache", {})
    for i in range(5):
        (tmp_path / f"{i}.bin").write_bytes(bytes([i]))
        media.file_sha256(tmp_path / f"{i}.bin")
    assert [Path(k[0]).name for k in media._hash_cache] == ["2.bin", "3.bin", "4.bin"]


def events_of_now(c, run_id: str) -> list[dict]:
    """The events so far of a run that is still going (read straight from the server's log)."""
    return c.app.state.store.events(run_id).since(0)[0]
