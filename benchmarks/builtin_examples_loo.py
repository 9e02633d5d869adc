"""Leave-one-out over Cadenza's built-in worked examples, with the embedded LLM.

Each example's request is planned with that example left out of both the fixed examples and the
chosen ones, and scored like TaskBench (node F1 over the tool sets; prints one JSON object).

    python benchmarks/builtin_examples_loo.py                         # the planner's defaults (0 fixed, 3 similar)
    python benchmarks/builtin_examples_loo.py ANCHORS N_EXAMPLES      # e.g. 12 1
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cadenza.llm.chat import get_chat_model  # noqa: E402
from cadenza.agent.examples import ExamplePool  # noqa: E402
from cadenza.agent.planner import Planner  # noqa: E402
from cadenza.agent.taskbench import score  # noqa: E402
from cadenza.errors import CadenzaError  # noqa: E402
from cadenza.media import Audio, Image, Video  # noqa: E402
from cadenza.tools.registry import default_registry  # noqa: E402

SUFFIX = {"audio": (Audio, ".wav"), "video": (Video, ".mp4"), "image": (Image, ".png")}


def main(anchors: int | None = None, n_examples: int | None = None) -> dict:
    registry, pool, llm = default_registry(), ExamplePool.builtin(), get_chat_model("local")
    rows = []
    for e in pool.examples:
        planner = Planner(llm, registry, pool, anchors=anchors, n_examples=n_examples)
        planner.exclude_from_anchors({e.id})
        files = {n: SUFFIX[k][0](path=Path(n + SUFFIX[k][1])) for n, k in e.files.items()}
        start, pred = time.monotonic(), []
        try:
            out = planner.plan(e.request, files, exclude={e.id})
            pred = sorted({s.tool for s in out.plan.steps}) if out.plan else []
        except CadenzaError as err:
            print(f"error: {err}", file=sys.stderr)
        rows.append({"pred": pred, "gold": sorted(set(e.tools())), "pred_edges": [], "gold_edges": [],
                     "valid": bool(pred), "seconds": time.monotonic() - start})
        print(f"{e.request[:60]!r} pred={pred} gold={rows[-1]['gold']}", file=sys.stderr)
    result = score(rows)
    fixed, similar = planner.example_counts()
    result.update(exact=sum(set(r["pred"]) == set(r["gold"]) for r in rows), anchors=fixed, n_examples=similar)
    return {k: v for k, v in result.items() if k not in ("e_f1", "valid_rate")}


if __name__ == "__main__":
    print(json.dumps(main(*(int(a) for a in sys.argv[1:3]))))
