"""The speech tools are registered built-ins whose typed outputs chain in plans and workflows."""

from pathlib import Path

import pytest

import media_factory as mf
from cadenza.engine.plan import Plan
from cadenza.engine.validate import validate_plan
from cadenza.engine.workflow import run_workflow
from cadenza.tools.registry import Registry, builtin_tools, default_registry

ROOT = Path(__file__).resolve().parent.parent


def test_speech_tools_are_registered_with_typed_signatures():
    reg = default_registry()
    for name in ("transcribe", "speak", "translate", "make_subtitles"):
        assert name in reg
    assert reg.get("transcribe").outputs == {"text": "text", "language": "text", "segments": "list[Segment]"}
    assert reg.get("speak").outputs == {"result": "audio"}
    assert reg.get("translate").params["segments"].tag == "list[Segment]"
    assert {b.name for b in reg.get("transcribe").backends} == {"faster-whisper", "openai-whisper", "transformers"}
    assert {b.name for b in reg.get("speak").backends} == {"hibari", "piper", "transformers", "kokoro", "espeak-ng"}


def plan(steps, inputs=None):
    return Plan.model_validate({"name": "p", "inputs": inputs or {"video": {"type": "video"}}, "steps": steps})


def test_transcribe_translate_subtitle_dub_plan_type_checks():
    steps = [
        {"id": "t", "tool": "transcribe", "args": {"media": "$video"}},
        {"id": "tr", "tool": "translate", "args": {"segments": "$t.segments", "target_language": "de"}},
        {"id": "subs", "tool": "make_subtitles", "args": {"segments": "$tr.segments"}},
        {"id": "voice", "tool": "speak", "args": {"text": "$tr.text", "language": "de"}},
        {"id": "dub", "tool": "replace_audio", "args": {"video": "$video", "audio": "$voice"}},
    ]
    assert validate_plan(plan(steps), Registry(builtin_tools())) == []


def test_wrong_edges_are_caught_before_running():
    steps = [{"id": "t", "tool": "transcribe", "args": {"media": "$video"}},
             {"id": "subs", "tool": "make_subtitles", "args": {"segments": "$t.text"}},
             {"id": "voice", "tool": "speak", "args": {"text": "$t.segments"}}]
    problems = validate_plan(plan(steps), Registry(builtin_tools()))
    assert any("'segments'" in p and "text" in p for p in problems), problems
    assert any("'text'" in p and "list[Segment]" in p for p in problems), problems


def test_subtitle_workflow_runs_end_to_end(tmp_path):
    speech = mf.spoken(tmp_path / "in" / "talk.wav", "Welcome to the show. Today we talk about bread.")
    result = run_workflow(ROOT / "examples/workflows/subtitle.yaml", {"media": str(speech)}, tmp_path / "out")
    assert result.status == "succeeded"
    srt = Path(result.outputs["subtitles"].path).read_text()
    assert srt.startswith("1\n00:00:00,000 --> ") and "bread" in srt.lower()
    assert "welcome to the show" in result.outputs["transcript"].lower()
