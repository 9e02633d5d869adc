"""`cadenza serve`: the HTTP API over the engine and the agent (FastAPI, served by uvicorn).

app.py holds the routes, runs.py the run store (folders, queue, workers, restart and resume),
events.py each run's event log for server-sent events, uploads.py streaming uploads checked by
content, security.py the token, ids and names. It adds no logic of its own to running a plan:
runs go through `engine.Executor` and `agent.Agent`, as the command line's do.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import InputError


def serve(host: str = "127.0.0.1", port: int = 8000, data: str = "cadenza-data", *, token: str | None = None,
          **app_options: Any) -> None:
    """Serve until stopped. Beyond loopback a token is required (`token`, else CADENZA_TOKEN)."""
    try:
        import uvicorn

        from .app import create_app
    except ImportError as e:
        raise InputError(f"serving needs the 'serve' extra: pip install 'cadenza[serve]' ({e.name} is missing)") from None
    from .security import check_binding

    token = token or os.environ.get("CADENZA_TOKEN") or None
    check_binding(host, token)
    app = create_app(data, token=token, **app_options)
    # an open event stream must not hold a stopping server: after 5 s it is closed, and the runs
    # still going are stopped and marked interrupted (resumable)
    uvicorn.run(app, host=host, port=port, log_level=os.environ.get("CADENZA_SERVE_LOG", "info"),
                timeout_graceful_shutdown=5)


__all__ = ["serve"]
