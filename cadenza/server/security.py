"""What a request may do and name: the token, ids and names, and the one HTTP error.

- Bound to loopback, the server needs no token; bound anywhere else it refuses to start without
  one, and then every request (the OpenAPI page too) must carry `Authorization: Bearer TOKEN`,
  or the web page's cookie that `/login` sets once the token is typed in (web.py).
- Nothing a client sends becomes a path: runs and uploads are named by ids the server made
  (checked against ID_PATTERN before any lookup), and a run's files by output names that
  its own record holds.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import secrets
from typing import Any

from ..errors import InputError

ID_PATTERN = re.compile(r"[0-9a-f]{32}")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # input and output names, as plans name them


class ApiError(Exception):
    """An answer other than success: its HTTP status and a one-line message naming what is at fault."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def new_id() -> str:
    return secrets.token_hex(16)


def checked_id(value: str, what: str) -> str:
    """`value` when it is an id this server could have made; else 404, as for an unknown one."""
    if not ID_PATTERN.fullmatch(value):
        raise ApiError(404, f"no {what} '{_shown(value)}'")
    return value


def checked_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise ApiError(422, f"{what} '{_shown(value)}' is not a name (letters, digits and _, not starting with a digit)")
    return value


def _shown(value: Any) -> str:
    text = str(value)
    return (text[:60] + "…") if len(text) > 60 else text


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Refuse to serve beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise InputError(f"serving on {host} (not this machine alone) needs a token: --token or CADENZA_TOKEN")


COOKIE = "cadenza_session"
LOGIN_PATH = "/login"


def session_value(token: str) -> str:
    """The web page's cookie: derived from the token, so the cookie never holds the token itself."""
    return hmac.new(token.encode(), b"cadenza web session", "sha256").hexdigest()


def _cookie(headers: dict[bytes, bytes], name: str) -> bytes:
    for part in headers.get(b"cookie", b"").split(b";"):
        key, _, value = part.strip().partition(b"=")
        if key == name.encode():
            return value
    return b""


class TokenGuard:
    """ASGI middleware: every HTTP request must carry the bearer token, compared in constant time,
    or the cookie the login form sets (a browser's EventSource and media players cannot send a
    header; the cookie is HttpOnly and SameSite=Strict, so another site's page cannot use it).
    The login form alone is open; a browser that opens the page without either is sent to it."""

    def __init__(self, app, token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.session = session_value(token).encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] == LOGIN_PATH:
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected) or hmac.compare_digest(_cookie(headers, COOKIE), self.session):
            return await self.app(scope, receive, send)
        if scope["path"] == "/" and scope["method"] == "GET" and not given:  # a person: the login form
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", LOGIN_PATH.encode()), (b"content-length", b"0")]})
            return await send({"type": "http.response.body", "body": b""})
        message = "missing token: send 'Authorization: Bearer TOKEN'" if not given else "wrong token"
        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})
