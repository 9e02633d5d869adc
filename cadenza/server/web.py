"""The web app at `/`: a page of our own (web/: HTML, one script, one style sheet; no build step,
nothing fetched from elsewhere) on the JSON API and its event streams.

Pages (one document, switched by the URL's #fragment): chat, workflow, runs, a run, a dubbing
review, tools. With a token, `/login` takes it once and sets an HttpOnly, SameSite=Strict cookie
that the page's requests, event streams and media players then carry (security.TokenGuard).
"""

from __future__ import annotations

import hmac
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from .security import COOKIE, LOGIN_PATH, LoginLimiter, client_address, session_value, too_many_tries

WEB = Path(__file__).with_name("web")
MAX_LOGIN_BYTES = 4096
# the page loads its own files alone, runs no inline script and is framed by no one
CSP = "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

_LOGIN = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Cadenza: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}
input,button{font:inherit;padding:.4rem;width:100%;box-sizing:border-box;margin:.3rem 0}.err{color:#b00}</style>
</head><body><h1>Cadenza</h1><p>This server needs its token.</p>{error}
<form method="post" action="/login"><input type="password" name="token" placeholder="token" autofocus required>
<button type="submit">Sign in</button></form></body></html>"""


def add_web(app: FastAPI, token: str | None, limiter: LoginLimiter | None = None) -> None:
    """The page and, with a token, the login form; `limiter` counts wrong tokens per address (shared
    with the API's TokenGuard, so the form and the header are one budget of guesses)."""
    limiter = limiter or LoginLimiter()
    app.mount("/static", StaticFiles(directory=WEB), name="static")

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP})

    @app.get(LOGIN_PATH, include_in_schema=False)
    def login_form():
        if not token:
            return RedirectResponse("/", status_code=303)
        return HTMLResponse(_LOGIN.replace("{error}", ""))

    @app.post(LOGIN_PATH, include_in_schema=False)
    async def login(request: Request):
        if not token:
            return RedirectResponse("/", status_code=303)
        client = client_address(request.scope)
        if wait := limiter.retry_after(client):  # the token is not even compared: a guess learns nothing
            message = f'<p class="err">{too_many_tries(wait).capitalize()}.</p>'
            return HTMLResponse(_LOGIN.replace("{error}", message), status_code=429, headers={"Retry-After": str(wait)})
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_LOGIN_BYTES:
                break
        given = parse_qs(bytes(raw[:MAX_LOGIN_BYTES]).decode("utf-8", "replace")).get("token", [""])[0]
        if not hmac.compare_digest(given.encode(), token.encode()):
            limiter.failed(client)
            return HTMLResponse(_LOGIN.replace("{error}", '<p class="err">Wrong token.</p>'), status_code=401)
        limiter.succeeded(client)
        answer = RedirectResponse("/", status_code=303)
        answer.set_cookie(COOKIE, session_value(token), httponly=True, samesite="strict",
                          secure=request.url.scheme == "https", path="/")
        return answer
