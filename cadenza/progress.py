"""The CLI's live view of a run: one line per step, updated as events arrive."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from .engine.executor import Event
from .errors import printable

ICONS = {"pending": "·", "running": "…", "succeeded": "✓", "cached": "✓", "failed": "✗", "skipped": "-"}
COLORS = {"succeeded": "green", "cached": "cyan", "failed": "red", "skipped": "yellow", "running": "blue"}


class ProgressDisplay:
    """A rich Live table on a terminal; plain lines on stderr otherwise (logs, CI)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.console = Console(file=sys.stderr)
        self.live_mode = enabled and self.console.is_terminal
        self.rows: dict[str, dict] = {}
        self.live: Live | None = None

    def __enter__(self) -> "ProgressDisplay":
        if self.live_mode:
            self.live = Live(self._table(), console=self.console, refresh_per_second=8, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.update(self._table())
            self.live.__exit__(*exc)

    def on_event(self, e: Event) -> None:
        if not self.enabled or e.step_id is None:
            return
        status = {"step_started": "running", "step_finished": "succeeded", "step_cached": "cached",
                  "step_failed": "failed", "step_skipped": "skipped"}[e.kind]
        row = self.rows.setdefault(e.step_id, {"tool": e.tool, "start": time.monotonic()})
        row.update(status=status, seconds=e.seconds, error=e.error)
        if self.live is not None:
            self.live.update(self._table())
        elif status != "running":
            took = f" {e.seconds:.2f}s" if e.seconds is not None else ""
            note = " (cached)" if status == "cached" else ""
            err = f": {e.error}" if e.error else ""
            print(printable(f"{ICONS[status]} {e.step_id} [{e.tool}]{took}{note}{err}"), file=sys.stderr, flush=True)

    def _table(self) -> Table:
        table = Table(box=None, show_header=False)
        for sid, row in self.rows.items():
            status = row["status"]
            took = row["seconds"] if row["seconds"] is not None else time.monotonic() - row["start"]
            # ids, tool names and errors are the user's and plugins' text: neither markup nor controls
            table.add_row(f"[{COLORS.get(status, '')}]{ICONS[status]}[/]", _plain(sid), _plain(row["tool"] or ""),
                          f"{took:.2f}s" + (" cached" if status == "cached" else ""), _plain(row["error"] or ""))
        return table


def _plain(text: str) -> str:
    return escape(printable(text))
