"""The step check (cadenza/agent/step_check.py): dropping steps keeps plans valid, the threshold is
chosen on the pool, and the embedded LLM scores an unasked-for step below an asked-for one."""

import math
from pathlib import Path

import pytest

from cadenza.engine.plan import Plan
from cadenza.agent.step_check import drop_steps, low_scored
from cadenza.agent.taskbench import catalog_registry, checked_f1, step_check_from_rows
from cadenza.engine.validate import validate_plan

REG = catalog_registry(Path(__file__).resolve().parent / "data" / "taskbench" / "tools.json")


def plan(*steps):
    return Plan(steps=[{"id": f"s{i + 1}", "tool": tool, "args": args} for i, (tool, args) in enumerate(steps)])


def test_a_dropped_step_passes_its_input_on():
    p = plan(("Text Downloader", {"url": "https://example.com/a"}), ("Text Simplifier", {"text": "$s1"}),
             ("Text Summarizer", {"text": "$s2"}))
    out, dropped = drop_steps(p, {"Text Simplifier"}, REG)
    assert dropped == ["s2"] and [s.tool for s in out.steps] == ["Text Downloader", "Text Summarizer"]
    assert out.step("s3").args == {"text": "$s1"} and validate_plan(out, REG) == []
    # a literal input is passed on too
    out, _ = drop_steps(plan(("Text Simplifier", {"text": "hello"}), ("Text Summarizer", {"text": "$s1"})),
                        {"Text Simplifier"}, REG)
    assert out.step("s2").args == {"text": "hello"}


def test_a_step_is_kept_when_nothing_of_the_right_type_can_take_its_place():
    p = plan(("Image Downloader", {"url": "https://example.com/a.jpg"}), ("Image-to-Text", {"image": "$s1"}),
             ("Text Summarizer", {"text": "$s2"}))
    out, dropped = drop_steps(p, {"Image-to-Text"}, REG)
    assert dropped == [] and out == p
    out, dropped = drop_steps(plan(("Text Summarizer", {"text": "x"})), {"Text Summarizer"}, REG)
    assert dropped == [] and len(out.steps) == 1  # never the last step


def test_the_threshold_is_the_one_that_scores_best_on_the_rows():
    rows = [{"pred": ["Text Summarizer", "Text Simplifier"], "gold": ["Text Summarizer"],
             "step_scores": {"Text Summarizer": 1.5, "Text Simplifier": 0.2}},
            {"pred": ["Video Search", "Keyword Extractor"], "gold": ["Video Search", "Keyword Extractor"],
             "step_scores": {"Video Search": 1.0, "Keyword Extractor": 0.8}},
            {"pred": ["Text Search"], "gold": ["Text Search"]}]
    assert checked_f1(rows, -math.inf) == pytest.approx(200 * 4 / 5 * 1 / (4 / 5 + 1))
    assert checked_f1(rows, 0.5) == 100.0
    assert 0.2 < step_check_from_rows(rows) < 0.8
    assert step_check_from_rows([{"pred": ["A"], "gold": ["A"]}]) is None
    # a case with no prediction at all (no parsable plan) counts its gold tools as missed
    assert checked_f1(rows + [{"pred": [], "gold": ["Text Search"]}], 0.5) == pytest.approx(200 * 1 * 4 / 5 / (1 + 4 / 5))
    # every tool low: the best-scored one stays
    assert low_scored({"A": 0.1, "B": 0.3}, 0.5) == {"A"} and low_scored({}, 0.5) == set()


def test_embedded_llm_drops_a_step_nobody_asked_for():
    pytest.importorskip("llama_cpp")
    from cadenza.llm.chat import get_chat_model
    from cadenza.agent.step_check import step_scores

    request = ("Summarize this text for me: 'The city council met on Monday and agreed to build a new park "
               "by the river, with a playground, a skate area and two football pitches, to open next summer.'")
    scores = step_scores(get_chat_model("local"), request, ["Text Summarizer", "Video Search"], REG)
    assert set(scores) == {"Text Summarizer", "Video Search"}
    assert scores["Text Summarizer"] > scores["Video Search"]


def test_rescore_script_scores_a_logged_run_again(tmp_path):
    """benchmarks/rescore_step_check.py: plans of two or more tools get fresh scores (an earlier
    check's drops undone), a one-tool plan none, and the threshold comes from the new scores."""
    pytest.importorskip("llama_cpp")
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    summary = "Summarize this text: 'The council agreed to build a new park by the river next summer.'"
    cases = [{"id": "a", "instruction": summary}, {"id": "b", "instruction": "Search for videos of red pandas."}]
    rows = [{"id": "a", "pred": ["Text Summarizer"], "pred_edges": [], "gold": ["Text Summarizer"],
             "step_scores": {"Text Summarizer": 9.0, "Video Search": -9.0}, "check_seconds": 1.0,
             "unchecked": {"pred": ["Text Summarizer", "Video Search"], "pred_edges": [["Text Summarizer", "Video Search"]]}},
            {"id": "b", "pred": ["Video Search"], "pred_edges": [], "gold": ["Video Search"]}]
    (tmp_path / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = subprocess.run([sys.executable, str(root / "benchmarks/rescore_step_check.py"), "--log", str(tmp_path / "log.jsonl"),
                          "--cases", str(tmp_path / "cases.jsonl"), "--tools", str(root / "tests/data/taskbench/tools.json"),
                          "--out", str(tmp_path / "new.jsonl")], capture_output=True, text=True, check=True)
    summary_line = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary_line["rows"] == 2 and summary_line["scored"] == 1
    new = [json.loads(line) for line in (tmp_path / "new.jsonl").read_text().splitlines()]
    assert new[0]["pred"] == ["Text Summarizer", "Video Search"] and "unchecked" not in new[0]
    assert set(new[0]["step_scores"]) == {"Text Summarizer", "Video Search"} and new[0]["step_scores"]["Text Summarizer"] != 9.0
    assert "step_scores" not in new[1]
    # dropping the search the request never asked for is what scores best on these rows
    assert new[0]["step_scores"]["Video Search"] < summary_line["threshold"] <= new[0]["step_scores"]["Text Summarizer"]
    assert summary_line["n_f1_checked"] == 100.0
