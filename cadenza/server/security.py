"""What a request may do and name: the token, ids and names, and the one HTTP error.

- Bound to loopback, the server needs no token; bound anywhere else it refuses to start without
  one, and then every request (the OpenAPI page too) must carry `Authorization: Bearer TOKEN`,
  or the web page's cookie that `/login` sets once the token is typed in (web.py).
- Guessing the token is slowed per client address (`LoginLimiter`): after 5 wrong tokens in a
  minute, at `/login` or in the header, that address gets 429 with Retry-After, its guesses not
  even checked, until the oldest of them is a minute old; the right token clears its count.
- Nothing a client sends becomes a path: runs and uploads are named by ids the server made
  (checked against ID_PATTERN before any lookup), and a run's files by output names that
  its own record holds.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
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


class LoginLimiter:
    """Wrong tokens per client address: `max_failures` within `window_s` seconds and the address must
    wait (`retry_after`) until the oldest of them is `window_s` old, so a guesser gets `max_failures`
    a window. The right token clears the address's count. At most `max_clients` addresses are
    remembered (the one whose last wrong token is oldest is forgotten first), so many addresses
    cannot make it grow without bound."""

    def __init__(self, max_failures: int = 5, window_s: float = 60.0, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.max_failures, self.window_s, self.max_clients, self.clock = max_failures, window_s, max_clients, clock
        self._failures: dict[str, list[float]] = {}  # address -> times of its recent wrong tokens, oldest first
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int:
        """Whole seconds this address must wait before its next try; 0: it may try now."""
        with self._lock:
            times = self._recent(client)
            if len(times) < self.max_failures:
                return 0
            return max(1, math.ceil(times[-self.max_failures] + self.window_s - self.clock()))

    def failed(self, client: str) -> None:
        with self._lock:
            times = self._recent(client)
            times.append(self.clock())
            self._failures.pop(client, None)
            self._failures[client] = times[-self.max_failures:]  # last in the order: forgotten last
            while len(self._failures) > self.max_clients:
                del self._failures[next(iter(self._failures))]

    def succeeded(self, client: str) -> None:
        if client in self._failures:
            with self._lock:
                self._failures.pop(client, None)

    def _recent(self, client: str) -> list[float]:
        since = self.clock() - self.window_s
        times = [t for t in self._failures.get(client, ()) if t > since]
        if not times:
            self._failures.pop(client, None)
        return times


def client_address(scope: dict[str, Any]) -> str:
    """The address a request came from (uvicorn takes it from X-Forwarded-For only behind a proxy on 127.0.0.1)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def too_many_tries(wait: int) -> str:
    return f"too many wrong tokens from this address; try again in {wait} s"


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
    The login form alone is open; a browser that opens the page without either is sent to it.
    A wrong token in the header counts with `limiter` (shared with the login form) as a wrong guess;
    a missing one does not (a browser without its cookie yet), nor does a stale cookie."""

    def __init__(self, app, token: str, limiter: LoginLimiter | None = None):
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.session = session_value(token).encode()
        self.limiter = limiter or LoginLimiter()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] == LOGIN_PATH:
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"")
        if hmac.compare_digest(_cookie(headers, COOKIE), self.session):
            return await self.app(scope, receive, send)
        if given:
            client = client_address(scope)
            if wait := self.limiter.retry_after(client):  # not even compared: a guess learns nothing
                return await _json_answer(send, 429, too_many_tries(wait), [(b"retry-after", str(wait).encode())])
            if hmac.compare_digest(given, self.expected):
                self.limiter.succeeded(client)
                return await self.app(scope, receive, send)
            self.limiter.failed(client)
        elif scope["path"] == "/" and scope["method"] == "GET":  # a person: the login form
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", LOGIN_PATH.encode()), (b"content-length", b"0")]})
            return await send({"type": "http.response.body", "body": b""})
        message = "missing token: send 'Authorization: Bearer TOKEN'" if not given else "wrong token"
        await _json_answer(send, 401, message, [(b"www-authenticate", b"Bearer")])


async def _json_answer(send, status: int, message: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})
