"""`cadenza mcp` for the tests: the built-in tools plus `wait_for_gate` (a step that runs until a
test opens its gate), a scripted test model for `plan` and `run`, and a short heartbeat.

    python -m tests.mcp_cadenza --out DIR [--root DIR] [--script replies.json] [--http PORT [--token T]]
"""

from __future__ import annotations

import argparse
import json

from cadenza.llm.testing import ScriptedChatModel
from cadenza.server.mcp_server import serve_mcp
from tests.server_tools import registry


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--root", action="append", default=[])
    p.add_argument("--script", default=None)
    p.add_argument("--http", type=int, default=None)
    p.add_argument("--token", default=None)
    a = p.parse_args()
    llm = ScriptedChatModel(json.load(open(a.script))) if a.script else None
    serve_mcp(registry(), http=a.http is not None, port=a.http or 0, token=a.token, roots=a.root, out_dir=a.out,
              llm=llm, cache=False, heartbeat_s=0.2)


if __name__ == "__main__":
    main()
