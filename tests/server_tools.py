"""A tool that waits for a gate file, and a server that has it, for the server tests.

`python -m tests.server_tools DATA PORT` serves the API on loopback with the built-in tools plus
`wait_for_gate`; the tests start it as a real uvicorn process (event streams, restarts)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from cadenza import Audio, Registry, ToolContext, tool
from cadenza.tools.registry import builtin_tools

GATE_WAIT_S = 60.0


@tool
def wait_for_gate(audio: Audio, gate: str, ctx: ToolContext) -> Audio:
    """Passes the audio through once the file `gate` exists (a test opens it), checking for cancellation."""
    deadline = time.monotonic() + GATE_WAIT_S
    while not Path(gate).exists():
        ctx.check_cancelled()
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.05)
    return audio


@tool
def twice(audio: Audio) -> list[Audio]:
    """The same sound twice, as a list of two files (an output that is a list)."""
    return [audio, audio]


def registry() -> Registry:
    return Registry(builtin_tools() + [wait_for_gate, twice])


def gated_workflow(gate: Path) -> str:
    """A workflow: level the sound (quick), then wait at the gate."""
    return (f"name: gated\ninputs:\n  sound: {{type: audio}}\nsteps:\n"
            f"  - {{id: level, tool: normalize_audio, args: {{audio: $sound, target_lufs: -20}}}}\n"
            f"  - {{id: wait, tool: wait_for_gate, args: {{audio: $level, gate: '{gate}'}}}}\n"
            f"outputs:\n  result: $wait\n")


def main() -> None:
    import uvicorn

    from cadenza.server.app import create_app

    data, port = sys.argv[1], int(sys.argv[2])
    uvicorn.run(create_app(data, registry=registry()), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
