"""The HTTP API's refusals (`cadenza serve`): uploads judged by content and size, bad submissions, unknown
ids and traversal, the token and its guess limit, binding beyond loopback, CORS; through FastAPI's
TestClient, with the fixtures and helpers of tests/test_server_api.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cadenza.errors import InputError
from cadenza.server.app import create_app
from cadenza.server.security import check_binding
from tests.media_factory import tone
from tests.server_tools import gated_workflow
from tests.test_server_api import EXAMPLES, REGISTRY, client, env, upload, wait_done  # noqa: F401 - fixtures


# -- bad input -----------------------------------------------------------------------------------
def test_uploads_are_judged_by_content_and_size(env):
    data = env / "limit-data"
    with TestClient(create_app(data, registry=REGISTRY, max_upload_bytes=60_000)) as c:
        text = env / "notes.wav"
        text.write_text("these are not sound samples\n" * 20)
        r = upload(c, text, "notes.wav", "audio/wav")
        assert r.status_code == 415 and "not an audio, video or image file" in r.json()["error"]
        absolute = env / "planted.wav"  # a client's file name is a label, never a path
        assert upload(c, env / "a.wav", str(absolute)).status_code == 201 and not absolute.exists()
        png = upload(c, EXAMPLES / "media" / "photo.png", "photo.wav", "audio/wav")
        assert png.status_code == 201 and png.json()["kind"] == "image"
        assert list((data / "uploads" / png.json()["id"]).glob("file.*"))[0].suffix == ".png"
        big = env / "big.wav"
        tone(big, seconds=3.0)  # about 130 kB
        r = upload(c, big)
        assert r.status_code == 413 and "upload limit (60,000 bytes)" in r.json()["error"]
        with open(big, "rb") as f:  # a run's own file fields meet the same limit
            r = c.post("/runs", data={"workflow": "narrate"}, files={"speech": ("s.wav", f)})
        assert r.status_code == 413
        assert not list((data / "tmp").glob("*")), "a refused upload left a file behind"
        assert len(list((data / "uploads").iterdir())) == 2
        assert c.post("/uploads", files={"other": ("x", b"123")}).status_code == 400
        assert c.post("/uploads", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data; boundary=x"}).status_code == 400
        assert c.post("/uploads", content=b"raw", headers={"content-type": "audio/wav"}).status_code == 415


def test_bad_run_submissions_are_refused_in_one_line(client, env):
    sound = upload(client, env / "a.wav").json()["id"]
    cases = [
        (400, dict(content=b'{"workflow": "narrate",', headers={"content-type": "application/json"}), "malformed JSON"),
        (422, dict(json=["not", "an", "object"]), "expected a JSON object"),
        (415, dict(content=b"workflow=narrate", headers={"content-type": "text/plain"}), "expected application/json"),
        (422, dict(json={"workflow": "nope", "inputs": {}}), "no workflow 'nope'"),
        (422, dict(json={"workflow": "narrate", "inputs": {"speech": sound}}), "missing input 'music'"),
        (422, dict(json={"workflow": "narrate", "inputs": {"speech": sound, "music": sound, "volume": 3}}), "unknown input 'volume'"),
        (422, dict(json={"workflow": "narrate", "inputs": {"speech": "/etc/passwd", "music": sound}}), "is not an upload id"),
        (422, dict(json={"workflow": "narrate", "inputs": {"speech": "0" * 32, "music": sound}}), "no upload"),
        (422, dict(json={"workflow": "narrate", "inputs": {"../x": sound}}), "input '../x' is not a name"),
        (422, dict(json={"workflow_yaml": "steps:\n  - {id: a, tool: nope}\n"}), "nope"),
        (422, dict(json={"workflow": "narrate", "workflow_yaml": "steps: []"}), "not both"),
        (422, dict(json={"request": "mix them", "workflow": "narrate"}), "not both"),
        (422, dict(json={"request": "  ", "files": {}}), "non-empty"),
        (422, dict(json={"request": "mix", "files": {"../../x": sound}}), "is not a name"),
        (422, dict(json={"workflow": "narrate", "bogus": 1}), "bogus"),
    ]
    before = set((env / "data" / "runs").iterdir()) if (env / "data" / "runs").exists() else set()
    for status, kw, words in cases:
        r = client.post("/runs", **kw)
        assert r.status_code == status and words in r.json()["error"], (kw, r.status_code, r.text)
        assert "\n" not in r.json()["error"]
    forms = [  # the same through multipart forms
        (422, dict(files={"workflow_file": ("w.yaml", b"steps:\n  - {id: a, tool: mix_sound}\n")}), "mix_sound"),
        (415, dict(files={"workflow_file": ("w.yaml", b"\xff\xfe\x00binary")}), "not UTF-8"),
        (422, dict(data={"workflow": "narrate"}, files={"../speech": ("s.wav", (env / "a.wav").read_bytes())}),
         "input '../speech' is not a name"),
        (400, dict(files=[("workflow", (None, "narrate")), ("inputs", (None, "{not json"))]), "field 'inputs': malformed JSON"),
        (415, dict(data={"workflow": "narrate"}), "not application/x-www-form-urlencoded"),
        (415, dict(data={"workflow": "narrate"}, files={"speech": ("s.wav", b"RIFF but not really")}), "not an audio"),
    ]
    for status, kw, words in forms:
        r = client.post("/runs", **kw)
        assert r.status_code == status and words in r.json()["error"], (kw, r.status_code, r.text)
    assert set((env / "data" / "runs").iterdir()) == before, "a refused submission left a run folder"
    assert not list((env / "data" / "tmp").iterdir()), "a refused form left a file behind"
    assert client.get("/tools").status_code == 200  # and the server keeps serving


def test_unknown_ids_names_and_traversal_get_404(client, env):
    sound = upload(client, env / "a.wav").json()["id"]
    (env / "gate-open").touch()
    run = wait_done(client, client.post("/runs", json={"workflow_yaml": gated_workflow(env / "gate-open"),
                                                       "inputs": {"sound": sound}}).json()["id"])
    rid = run["id"]
    secret = env / "secret.txt"
    secret.write_text("top secret")
    for path in [f"/runs/{'0' * 32}", "/runs/not-an-id", f"/runs/{'0' * 32}/events", f"/runs/{'0' * 32}/run.json",
                 f"/runs/{rid}/outputs/nope", f"/runs/{rid}/outputs/..%2Fstate.json", f"/runs/{rid}/outputs/%2e%2e",
                 f"/runs/{rid}/outputs/%2e%2e%2f%2e%2e%2fstate.json", f"/runs/%2e%2e/outputs/result",
                 f"/runs/{rid}/outputs/{secret}", "/runs/../../etc/passwd", "/no/such/endpoint",
                 f"/runs/{rid}/outputs/result/../../state.json"]:
        r = client.get(path)
        assert r.status_code == 404 and r.json()["error"], (path, r.text)
        assert "top secret" not in r.text and '"kind"' not in r.text
    assert "has no output 'nope' (it has: result)" in client.get(f"/runs/{rid}/outputs/nope").json()["error"]
    assert client.post(f"/runs/{'0' * 32}/cancel").status_code == 404
    assert client.post(f"/runs/{'f' * 32}/resume").status_code == 404
    # a symlink swapped in for an output is not followed
    out = env / "data" / "runs" / rid / "outputs" / run["outputs"]["result"]["name"]
    out.unlink()
    out.symlink_to(secret)
    r = client.get(run["outputs"]["result"]["url"])
    assert r.status_code == 404 and "top secret" not in r.text and "no longer there" in r.json()["error"]


def test_token_required_for_every_request_and_beyond_loopback(env):
    with TestClient(create_app(env / "token-data", registry=REGISTRY, token="s3cret")) as c:
        for path in ("/tools", "/openapi.json", "/runs", f"/runs/{'0' * 32}"):
            assert c.get(path).status_code == 401 and "missing token" in c.get(path).json()["error"]
            assert c.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.post("/uploads", files={"file": ("a", b"x")}).status_code == 401
        assert not list((env / "token-data").rglob("*.part"))
        assert c.get("/tools", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    check_binding("127.0.0.1", None)
    check_binding("::1", None)
    check_binding("0.0.0.0", "t")
    for host in ("0.0.0.0", "192.168.1.5", "example.org"):
        with pytest.raises(InputError, match="needs a token"):
            check_binding(host, None)


def test_wrong_tokens_are_limited_per_address(env):
    """/login and the Authorization header had no limit on guesses: after 5 wrong tokens in a minute
    from one address, that address gets 429 with Retry-After (its guesses not even compared) until the
    oldest is a minute old; the right token clears the count; another address is not held up."""
    now = [1000.0]
    app = create_app(env / "guess-data", registry=REGISTRY, token="s3cret")
    app.state.login_limiter.clock = lambda: now[0]
    right = {"Authorization": "Bearer s3cret"}
    with TestClient(app) as c, TestClient(app, client=("10.0.0.9", 4000)) as other:
        for i in range(4):  # wrong, wrong, ..., then the right one: the count starts again
            assert c.post("/login", data={"token": f"guess{i}"}).status_code == 401
        assert c.get("/tools", headers=right).status_code == 200
        for i in range(4):  # the header and the form count together
            assert c.get("/runs", headers={"Authorization": f"Bearer guess{i}"}).status_code == 401
            now[0] += 10
        assert c.post("/login", data={"token": "guess"}, follow_redirects=False).status_code == 401  # the fifth
        form = c.post("/login", data={"token": "s3cret"}, follow_redirects=False)  # even the right one waits
        assert form.status_code == 429 and form.headers["retry-after"] == "20" and "Too many wrong tokens" in form.text
        assert "set-cookie" not in form.headers
        api = c.get("/runs", headers=right)
        assert api.status_code == 429 and api.headers["retry-after"] == "20"
        assert api.json() == {"error": "too many wrong tokens from this address; try again in 20 s"}
        assert c.get("/runs").status_code == 401  # no token at all is not a guess, and says what is missing
        assert other.get("/runs", headers=right).status_code == 200  # another address
        assert other.post("/login", data={"token": "s3cret"}, follow_redirects=False).status_code == 303
        now[0] += 20  # the oldest wrong token is a minute old: one more try
        assert c.get("/runs", headers={"Authorization": "Bearer guess"}).status_code == 401
        assert c.get("/runs", headers=right).status_code == 429 and c.get("/runs", headers=right).headers["retry-after"] == "10"
        now[0] += 10
        assert c.get("/runs", headers=right).status_code == 200  # and a success clears the count
        assert all(c.get("/runs", headers={"Authorization": "Bearer x"}).status_code == 401 for _ in range(5))

    from cadenza.server.security import LoginLimiter

    limiter = LoginLimiter(max_failures=2, window_s=60, max_clients=3, clock=lambda: now[0])
    for address in ("a", "b", "c", "a", "d"):  # many addresses: the one wrong longest ago is forgotten
        limiter.failed(address)
    assert list(limiter._failures) == ["c", "a", "d"] and limiter.retry_after("a") == 60 and limiter.retry_after("b") == 0


def test_cli_refuses_to_serve_beyond_loopback_without_a_token(env, monkeypatch, capsys):
    from cadenza.cli import main

    monkeypatch.delenv("CADENZA_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--data", str(env / "cli-data")]) == 2
    assert "needs a token: --token or CADENZA_TOKEN" in capsys.readouterr().err


def test_cors_is_off_by_default(client, env):
    r = client.get("/tools", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    pre = client.options("/runs", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers
    with TestClient(create_app(env / "cors-data", registry=REGISTRY, cors_origins=["https://ok.example"])) as c:
        assert c.get("/tools", headers={"Origin": "https://ok.example"}).headers["access-control-allow-origin"] == "https://ok.example"
