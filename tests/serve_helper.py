"""A real HTTP API server (`cadenza serve`, or tests/server_tools.py) as a subprocess on a loopback port,
for tests/test_server_live.py and benchmarks/serve.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`argv`, a server listening on 127.0.0.1:`port`, started with this checkout first on PYTHONPATH (not
    whatever `cadenza` is installed), warning-level logs and `env` added; waits until the API answers.
    Its output goes to a temporary file (a pipe nobody reads could fill and stall it), shown if it fails
    to start."""

    def __init__(self, argv: list[str], port: int, env: dict[str, str] | None = None, cwd: Path | None = None):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONPATH": pythonpath, "CADENZA_SERVE_LOG": "warning", **(env or {})}
        self.output = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=self.output, stderr=subprocess.STDOUT)
        started = time.monotonic()
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() - started > START_TIMEOUT_S:
                tail = self._output_tail()
                self.stop()
                raise RuntimeError(f"server did not start: {tail}")
            time.sleep(0.1)
        self.start_s = time.monotonic() - started

    def _answers(self) -> bool:
        try:
            return httpx.get(self.url + "/workflows", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def _output_tail(self) -> str:
        self.output.seek(0)
        return self.output.read().decode(errors="replace")[-2000:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Ends the server with `sig` (SIGKILL: no chance to tidy up), killing it if it takes over 20 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.output.close()
