"""A run's progress as a log of events, kept in memory and in `events.jsonl` in the run's folder.

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
    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        if path.exists():  # after a restart: what the run reported before
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    self._events.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut short by a crash
                    pass

    def add(self, kind: str, **fields: Any) -> None:
        event = {"kind": kind, "time": round(time.time(), 3), **{k: v for k, v in fields.items() if v is not None}}
        with self._lock:
            event["seq"] = len(self._events)
            self._events.append(event)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(event, default=str) + "\n")

    def since(self, position: int) -> tuple[list[dict[str, Any]], bool]:
        """The events from `position` on, and whether the log ends there with a final event."""
        with self._lock:
            events = self._events[position:]
            ended = bool(self._events) and self._events[-1]["kind"] in FINAL
        return events, ended

    def __len__(self) -> int:
        return len(self._events)
