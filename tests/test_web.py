"""The web app in a real headless Chromium (Debian's `chromium`, driven by Playwright; its own
browser download is not used): the chat (upload, a request planned by the scripted model, the plan
and each step's status and time, the outputs played inline), the workflow, runs and tools pages,
and a dubbing review whose edited line alone is spoken again. The server is uvicorn in a thread.

CADENZA_SCREENSHOT=docs/web-chat.png saves the chat page there too (the README's picture)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time

import httpx
import pytest

from cadenza.llm.testing import ScriptedChatModel
from cadenza.server.app import create_app
from cadenza.tools.speech.translate import translation_llm
from tests.media_factory import make_video, tone
from tests.web_tools import registry, translator

try:
    from playwright import sync_api as playwright
except ImportError:  # the browser tests fail (not skip) without it; the rest of this file runs
    playwright = None
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)

TIMEOUT_MS = 40_000
PLAN = {"steps": [{"id": "sound", "tool": "extract_audio", "args": {"video": "$clip", "format": "wav"}},
                  {"id": "still", "tool": "extract_frame", "args": {"video": "$clip", "time": 0.5}}]}
MIC_PLAN = {"steps": [{"id": "level", "tool": "normalize_audio", "args": {"audio": "$recording_1", "target_lufs": -20}}]}


def plan_for(messages) -> str:
    """The scripted planner: the microphone's plan when the request has a recording, else PLAN."""
    return json.dumps(MIC_PLAN if "recording_1" in str(messages[-1].content) else PLAN)


class ThreadedServer:
    def __init__(self, app):
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CADENZA_CACHE_DIR", str(root / "cache"))
        planner = ScriptedChatModel([plan_for] * 6)
        with translation_llm(ScriptedChatModel([translator] * 40)):
            server = ThreadedServer(create_app(root / "data", registry=registry(), llm=planner))
            try:
                yield server, root
            finally:
                server.stop()


@pytest.fixture(scope="module")
def browser():
    if playwright is None:
        pytest.fail("the browser test needs playwright: pip install -e '.[test]'", pytrace=False)
    if CHROMIUM is None:
        pytest.fail("the browser test needs Debian's chromium: run sh scripts/system-deps", pytrace=False)
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--mute-audio",
                              "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors, elsewhere = [], []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1:", "data:", "blob:")) else elsewhere.append(r.url))
    yield pg
    context.close()
    assert not errors, f"the page's script failed: {errors}"
    assert not elsewhere, f"the page fetched from elsewhere: {elsewhere}"  # it works offline


def test_chat_plans_runs_and_plays_every_output(site, page, tmp_path):
    server, _ = site
    clip = make_video(tmp_path / "clip.mp4", seconds=1.5, width=320, height=180)
    page.goto(server.url + "/")
    page.set_input_files("#files", str(clip))
    page.fill("#request", "take the sound out of my clip, and a still of it")
    page.click("#send")
    page.locator(".run[data-status=succeeded]").wait_for()
    steps = page.locator(".step")
    assert steps.count() == 2
    for i, (sid, tool) in enumerate((("sound", "extract_audio"), ("still", "extract_frame"))):
        row = steps.nth(i)
        assert (row.get_attribute("data-step"), row.locator(".tool").inner_text()) == (sid, tool)
        assert row.get_attribute("data-status") == "done"
        assert row.locator(".time").inner_text().endswith(" s")  # its time, from the event stream
        assert "$clip" in row.locator(".args").inner_text()  # the plan was shown
    assert "files: clip (video)" in page.locator(".msg.user").inner_text()
    assert page.locator(".run .answer").inner_text() == "Done in 2 steps."

    audio = page.locator(".output[data-output=sound] audio")
    page.wait_for_function("document.querySelector('.output audio').readyState >= 1")  # the player read it
    assert page.evaluate("document.querySelector('.output audio').duration") == pytest.approx(1.5, abs=0.1)
    src = audio.evaluate("a => a.src")
    wav = httpx.get(src, timeout=10)
    assert wav.status_code == 200 and wav.content[:4] == b"RIFF" and wav.content[8:12] == b"WAVE"
    assert wav.headers["content-type"] == "audio/x-wav" or wav.headers["content-type"].startswith("audio/")
    page.wait_for_function("document.querySelector('.output img').naturalWidth === 320")  # the still, decoded
    assert page.locator(".output[data-output=still] a.download").get_attribute("href").endswith("/outputs/still")
    shot = tmp_path / "chat.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:4] == b"\x89PNG"
    if os.environ.get("CADENZA_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["CADENZA_SCREENSHOT"])


def test_a_recording_from_the_microphone_is_attached_and_used(site, page):
    server, _ = site
    page.goto(server.url + "/")
    page.click("#record")  # Chromium's fake microphone: a steady beep
    page.locator("#record", has_text="Stop").wait_for()
    page.wait_for_timeout(1200)
    page.click("#record")
    page.locator(".chip", has_text="recording_1.webm").wait_for()
    page.fill("#request", "make my recording louder")
    page.click("#send")
    page.locator(".run[data-status=succeeded]").wait_for()
    assert "files: recording_1 (audio)" in page.locator(".msg.user").inner_text()
    assert page.locator(".step[data-step=level]").get_attribute("data-status") == "done"
    page.wait_for_function("document.querySelector('.output[data-output=level] audio').readyState >= 1")
    assert page.evaluate("document.querySelector('.output[data-output=level] audio').duration") > 0.8  # ~1.2 s


def test_workflow_runs_and_tools_pages(site, page, tmp_path):
    server, _ = site
    speech, music = tone(tmp_path / "speech.wav", freq=330, seconds=1.0), tone(tmp_path / "music.wav", seconds=1.0)
    page.goto(server.url + "/#workflow")
    page.select_option("#workflow", "narrate")
    assert page.locator(".field input[type=file][name=speech]").get_attribute("accept") == "audio/*"
    assert page.locator(".field input[type=number][name=music_gain]").count() == 1  # a number, by its type
    page.set_input_files("input[name=speech]", str(speech))
    page.set_input_files("input[name=music]", str(music))
    page.fill("input[name=music_gain]", "-9")
    page.click("#run-workflow")
    page.locator(".run[data-status=succeeded]").wait_for()
    assert page.locator(".output[data-output=narration] audio").count() == 1
    run_id = page.locator(".run").get_attribute("data-run")
    assert httpx.get(f"{server.url}/runs/{run_id}").json()["inputs"]["music_gain"] == -9

    own = tmp_path / "louder.yaml"  # a workflow file of the user's: its inputs come from /validate
    own.write_text("name: louder\ninputs:\n  sound: {type: audio}\n  lufs: {type: number, default: -16}\n"
                   "steps:\n  - {id: level, tool: normalize_audio, args: {audio: $sound, target_lufs: $lufs}}\n"
                   "outputs:\n  result: $level\n")
    page.select_option("#workflow", "@file")
    page.set_input_files("#workflow-file", str(own))
    page.set_input_files("input[name=sound]", str(speech))
    assert page.input_value("input[name=lufs]") == "-16"  # the file's default, from /validate
    page.fill("input[name=lufs]", "-18")
    page.click("#run-workflow")
    page.locator(".run[data-status=succeeded]").nth(1).wait_for()  # both runs done; the new one is on top
    mine = httpx.get(f"{server.url}/runs/{page.locator('.run').first.get_attribute('data-run')}").json()
    assert mine["workflow"] is None and mine["inputs"]["lufs"] == -18 and mine["outputs"]["result"]["kind"] == "audio"

    page.goto(server.url + "/#runs")
    row = page.locator(f"tr[data-run='{run_id}']")
    assert row.locator(".status").inner_text() == "succeeded" and "narrate" in row.inner_text()
    row.locator("a").first.click()
    page.locator(f".run[data-run='{run_id}'][data-status=succeeded]").wait_for()  # a past run, replayed

    page.goto(server.url + "/#tools")
    mix = page.locator("tr[data-tool=mix_audio]")
    assert mix.get_attribute("data-available") == "yes" and "mix_audio(tracks: list[audio]" in mix.inner_text()
    doctor = {t["name"]: any(b["available"] for b in t["backends"])
              for t in httpx.get(server.url + "/tools?backends=true").json()["tools"]}
    shown = {n: a == "yes" for n, a in page.eval_on_selector_all(
        "tr[data-tool]", "rows => rows.map(r => [r.dataset.tool, r.dataset.available])")}
    assert shown == doctor


def test_dub_review_edit_one_line_and_only_it_is_spoken_again(site, page, tmp_path):
    server, _ = site
    sound = tone(tmp_path / "talk.wav", freq=200, seconds=7.0)
    with open(sound, "rb") as f:
        first = httpx.post(server.url + "/runs", data={"workflow": "dub_audio", "to": "es"},
                           files={"audio": ("talk.wav", f)}, timeout=30).json()
    page.goto(f"{server.url}/#run/{first['id']}")
    page.locator(".run[data-status=succeeded]").wait_for()
    page.goto(f"{server.url}/#review/{first['id']}")
    lines = page.locator("tr.line")
    lines.first.wait_for()
    assert lines.count() == 3
    assert lines.nth(1).locator(".source").inner_text() == "The train is late."
    assert page.locator("textarea.translation").nth(1).input_value() == "El tren llega tarde."
    assert all(lines.nth(i).locator(".speed").inner_text().split("×")[0].replace(".", "").isdigit() for i in range(3))
    assert page.locator("audio.original").get_attribute("src") == f"/runs/{first['id']}/inputs/audio"
    page.locator("tr.line").nth(1).locator("button", has_text="dubbed").click()  # plays from the line's start
    page.wait_for_function("(() => { const a = document.querySelector('audio.dubbed');"
                           " return !a.paused && a.currentTime >= 2.6; })()")

    page.locator("textarea.translation").nth(1).fill("El tren viene tarde hoy.")
    page.click("#rerun")
    page.locator(".run[data-status=succeeded]").wait_for()
    page.click("a.next-review")
    page.locator("tr.line .made").first.wait_for()
    made = [page.locator("tr.line .made").nth(i).inner_text() for i in range(3)]
    assert made == ["from cache", "made", "from cache"]  # the edited line alone was spoken again
    assert page.locator("textarea.translation").nth(1).input_value() == "El tren viene tarde hoy."
    second = page.url.rsplit("/", 1)[1]
    record = httpx.get(f"{server.url}/runs/{second}/run.json").json()
    speech = next(s for s in record["steps"] if s["id"] == "speech")
    assert any("1 of 3 lines synthesized (lines 1)" in n for n in speech["notes"]), speech["notes"]
    assert {s["id"]: s["status"] for s in record["steps"]}["words"] == "cached"


# -- what the page relies on, without a browser ---------------------------------------------------
def _narrate(c, tmp_path) -> dict:
    speech, music = tone(tmp_path / "s.wav", freq=330, seconds=1.0), tone(tmp_path / "m.wav", seconds=1.0)
    with open(speech, "rb") as s, open(music, "rb") as m:
        r = c.post("/runs", data={"workflow": "narrate"}, files={"speech": ("s.wav", s), "music": ("m.wav", m)})
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 60
    while (doc := c.get(f"/runs/{r.json()['id']}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, doc
        time.sleep(0.1)
    return doc


def test_a_token_server_lets_the_page_in_by_a_login_cookie_only(tmp_path, monkeypatch):
    monkeypatch.setenv("CADENZA_CACHE_DIR", str(tmp_path / "cache"))
    from fastapi.testclient import TestClient

    app = create_app(tmp_path / "data", registry=registry(), token="s3cret-token")
    with TestClient(app, follow_redirects=False) as c:
        r = c.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/login"  # a person is sent to the form
        assert c.get("/login").status_code == 200 and 'name="token"' in c.get("/login").text
        assert c.get("/static/app.js").status_code == 401 and c.get("/runs").status_code == 401
        wrong = c.post("/login", data={"token": "guess"})
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers and not c.cookies
        r = c.post("/login", data={"token": "s3cret-token"})
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "s3cret-token" not in cookie
        assert c.get("/").status_code == 200  # the cookie alone, as a browser sends it
        run = _narrate(c, tmp_path)
        assert run["status"] == "succeeded"
        with c.stream("GET", run["links"]["events"]) as events:  # what an EventSource can send: the cookie
            assert events.status_code == 200 and "run_finished" in events.read().decode()
        assert c.get(run["outputs"]["narration"]["url"]).content[:4] == b"RIFF"  # and a media player
        c.cookies.clear()
        assert c.get(run["links"]["events"]).status_code == 401
        c.cookies.set("cadenza_session", "0" * 64)
        assert c.get("/runs").json() == {"error": "missing token: send 'Authorization: Bearer TOKEN'"}
        c.cookies.clear()
        assert c.get("/runs", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200


def test_media_ranges_run_inputs_reruns_and_the_plan_event(tmp_path, monkeypatch):
    monkeypatch.setenv("CADENZA_CACHE_DIR", str(tmp_path / "cache"))
    from fastapi.testclient import TestClient

    planner = ScriptedChatModel([PLAN])
    with TestClient(create_app(tmp_path / "data", registry=registry(), llm=planner)) as c:
        run = _narrate(c, tmp_path)
        url = run["outputs"]["narration"]["url"]
        whole = c.get(url).content
        head = c.get(url, headers={"Range": "bytes=0-3"})
        assert head.status_code == 206 and head.content == b"RIFF"
        assert head.headers["content-range"] == f"bytes 0-3/{len(whole)}" and head.headers["accept-ranges"] == "bytes"
        assert c.get(url, headers={"Range": "bytes=-4"}).content == whole[-4:]
        assert c.get(url, headers={"Range": f"bytes={len(whole)}-"}).status_code == 416
        rid = run["id"]
        assert "default-src 'self'" in c.get("/").headers["content-security-policy"]  # nothing from elsewhere
        assert c.get(f"/runs/{rid}/inputs/speech").content[:4] == b"RIFF"
        for bad in ("nope", "..%2Fstate.json", "%2e%2e", "music_gain"):
            assert c.get(f"/runs/{rid}/inputs/{bad}").status_code == 404, bad
        again = c.post(f"/runs/{rid}/rerun", json={"inputs": {"music_gain": -3}})
        assert again.status_code == 202 and again.json()["inputs"]["speech"] == run["inputs"]["speech"]
        assert c.post(f"/runs/{rid}/rerun", json={"inputs": {"speech": "x"}}).status_code == 422  # files stay
        assert c.post(f"/runs/{rid}/rerun", json={"inputs": {"nope": 1}}).status_code == 422
        assert c.post(f"/runs/{rid}/rerun", json={"input": {}}).status_code == 422
        assert c.post(f"/runs/{'0' * 32}/rerun", json={}).status_code == 404

        clip = make_video(tmp_path / "clip.mp4", seconds=1.0)
        with open(clip, "rb") as f:
            req = c.post("/runs", data={"request": "sound and a still"}, files={"clip": ("c.mp4", f)}).json()
        with c.stream("GET", f"/runs/{req['id']}/events") as r:
            events = [json.loads(x[6:]) for x in r.read().decode().splitlines() if x.startswith("data: ")]
        kinds = [e["kind"] for e in events]
        assert kinds.index("planning") < kinds.index("plan") < kinds.index("step_started")
        plan = next(e for e in events if e["kind"] == "plan")
        assert plan["steps"] == PLAN["steps"]
        assert c.post(f"/runs/{req['id']}/rerun", json={}).status_code == 422  # a request is not re-run with changes
        done = c.get(f"/runs/{req['id']}").json()
        assert f"- sound: {done['outputs']['sound']['name']} " in done["answer"]  # an output's name, not a path
        assert str(tmp_path) not in done["answer"]


def test_a_browser_signs_in_once_and_its_streams_and_players_carry_the_cookie(browser, tmp_path, monkeypatch):
    monkeypatch.setenv("CADENZA_CACHE_DIR", str(tmp_path / "cache"))
    server = ThreadedServer(create_app(tmp_path / "data", registry=registry(), token="tok-3141"))
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(server.url + "/#workflow")
        assert page.url.split("#")[0] == server.url + "/login"  # no token: the form, not the page
        page.fill("input[name=token]", "wrong")
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert page.locator(".err").inner_text() == "Wrong token."
        page.fill("input[name=token]", "tok-3141")
        with page.expect_navigation(url=server.url + "/"):  # signed in: sent on to the page
            page.click("button[type=submit]")
        page.goto(server.url + "/#workflow")
        page.select_option("#workflow", "narrate")
        page.set_input_files("input[name=speech]", str(tone(tmp_path / "s.wav", freq=330, seconds=1.0)))
        page.set_input_files("input[name=music]", str(tone(tmp_path / "m.wav", seconds=1.0)))
        page.click("#run-workflow")
        page.locator(".run[data-status=succeeded]").wait_for()  # the event stream came through
        page.wait_for_function("document.querySelector('.output audio').readyState >= 1")  # and the player's file
        cookie = next(c for c in context.cookies() if c["name"] == "cadenza_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and "tok-3141" not in cookie["value"]
        assert httpx.get(server.url + "/runs").status_code == 401  # a client without it is still refused
    finally:
        context.close()
        server.stop()
