"""Score the step check again on a logged TaskBench run, without planning again.

The step check's score for a tool depends only on the request and that tool, so after a change
to its prompt (cadenza/prompts/step_check.md) the scores of a log's plans can be computed afresh:
every row whose plan has two or more tools gets new `step_scores` (rows come back as the plans
before any earlier check). Prints the threshold under which the rows score best and the node F1
with and without that check, and writes the rows back.

    python benchmarks/rescore_step_check.py --log benchmarks/taskbench-calibrate.jsonl \
        --cases ex.jsonl --tools tools.json [--out NEW.jsonl]

Use it on the example pool's log (`cadenza bench calibrate --log`) to choose the threshold; a
scored benchmark needs a real run (`cadenza bench plan --step-check T`), which also rewires edges.
"""

import argparse
import json
import time
from pathlib import Path

from cadenza.llm.chat import get_chat_model
from cadenza.agent.step_check import step_scores
from cadenza.agent.taskbench import catalog_registry, checked_f1, read_cases, step_check_from_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", required=True, help="a bench plan / calibrate log (JSONL)")
    ap.add_argument("--cases", required=True, help="the cases that log planned (for their requests)")
    ap.add_argument("--tools", required=True, help="the TaskBench tool catalog")
    ap.add_argument("--out", help="where to write the rescored rows (default: the log itself)")
    a = ap.parse_args()

    registry = catalog_registry(a.tools)
    requests = {str(c["id"]): c["instruction"] for c in read_cases(a.cases)}
    rows = [json.loads(line) for line in Path(a.log).read_text().splitlines() if line.strip()]
    model = get_chat_model("local")
    start, scored = time.monotonic(), 0
    for row in rows:
        row.update(row.pop("unchecked", {}))  # back to the plan before an earlier check dropped steps
        row.pop("step_scores", None)
        row.pop("check_seconds", None)
        tools = row["pred"]
        if len(tools) >= 2:
            row["step_scores"] = {t: round(v, 3) for t, v in step_scores(model, requests[str(row["id"])], tools, registry).items()}
            scored += 1
    threshold = step_check_from_rows(rows)
    plain = checked_f1(rows, float("-inf"))
    print(json.dumps({"rows": len(rows), "scored": scored, "seconds_per_scored": round((time.monotonic() - start) / max(scored, 1), 2),
                      "threshold": threshold, "n_f1_unchecked": round(plain, 2),
                      "n_f1_checked": round(checked_f1(rows, threshold), 2) if threshold is not None else None}))
    Path(a.out or a.log).write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
