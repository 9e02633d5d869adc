"""A run's progress as a log of events, in `events.jsonl` in the run's folder (and in memory while it runs).

The executor's thread appends; any number of server-sent-event streams read from any position,
so a client that connects late (or after a restart) gets every event so far, then the rest as
they come. A stream ends after a final event (`run_finished`, `run_interrupted`) when nothing
follows it; a resumed run appends `run_queued` and goes on.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

FINAL = ("run_finished", "run_interrupted")


class EventLog:
    """A run's events. While the run goes they are kept in memory too; once the log ends with a final
    event they are read back from the file when asked for (rarely: a late client, a page), so a
    server that has served many runs does not hold every event of each (benchmarks/serve.py)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] | None = []  # None: on disk only
        self._count, self._last_kind = 0, None
        if path.exists():  # after a restart: what the run reported before, left on disk
            events = self._read()
            self._count, self._last_kind = len(events), events[-1]["kind"] if events else None
            self._events = None

    def _read(self) -> list[dict[str, Any]]:
        events = []
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError:  # the run's folder was removed by hand
            return events
        for line in text.splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a crash
                pass
        return events

    def add(self, kind: str, **fields: Any) -> None:
        event = {"kind": kind, "time": round(time.time(), 3), **{k: v for k, v in fields.items() if v is not None}}
        with self._lock:
            event["seq"] = self._count
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(event, default=str) + "\n")
            self._count, self._last_kind = self._count + 1, kind
            if kind in FINAL:
                self._events = None
            elif self._events is None:  # a resumed run goes on: its events are kept again while it runs
                self._events = self._read()
            else:
                self._events.append(event)

    def since(self, position: int) -> tuple[list[dict[str, Any]], bool]:
        """The events from `position` on, and whether the log ends there with a final event."""
        with self._lock:
            events = self._events if self._events is not None else self._read() if self._count else []
            return events[position:], self._last_kind in FINAL

    def __len__(self) -> int:
        return self._count
