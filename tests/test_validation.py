"""Static plan validation: every problem found before anything runs, each naming step and argument."""

import json
from pathlib import Path

import pytest

from cadenza import Audio, Image, PlanError, Registry, tool
from cadenza.engine.plan import Plan, Step, parse_ref, plan_json_schema
from cadenza.engine.validate import check_plan, validate_plan


@tool
def speak(text: str, speed: float = 1.0) -> Audio:
    """Text to speech."""


@tool
def loudness(audio: Audio) -> float:
    """Loudness of audio."""


@tool
def mix(tracks: list[Audio], gains_db: list[float] | None = None) -> Audio:
    """Mix tracks."""


@tool
def caption(image: Image) -> str:
    """Caption a picture."""


REG = Registry([speak, loudness, mix, caption])


def plan(*steps, **kw) -> Plan:
    return Plan(steps=[Step(**s) for s in steps], **kw)


def problems(p: Plan) -> list[str]:
    return validate_plan(p, REG)


def test_valid_plan_with_inputs_lists_and_refs():
    p = plan({"id": "a", "tool": "speak", "args": {"text": "$words"}},
             {"id": "b", "tool": "speak", "args": {"text": "hello", "speed": 1.2}},
             {"id": "m", "tool": "mix", "args": {"tracks": ["$a", "$b", "$bg"], "gains_db": [0, -3, "$g"]}},
             inputs={"words": {"type": "text"}, "bg": {"type": "audio"}, "g": {"type": "number", "default": -6}},
             outputs={"final": "$m"})
    assert problems(p) == []
    assert check_plan(p, REG) is p


def test_unknown_tool_names_step_and_suggests():
    assert problems(plan({"id": "x", "tool": "speek", "args": {"text": "hi"}})) == [
        "step 'x': unknown tool 'speek' (did you mean 'speak'?)"]


def test_missing_and_unknown_arguments():
    assert problems(plan({"id": "x", "tool": "speak", "args": {"txt": "hi"}})) == [
        "step 'x': unknown argument 'txt' for tool 'speak' (expected: text, speed)",
        "step 'x' argument 'text': missing (required text)"]


def test_type_mismatch_along_an_edge():
    got = problems(plan({"id": "voice", "tool": "speak", "args": {"text": "hi"}},
                        {"id": "cap", "tool": "caption", "args": {"image": "$voice"}}))
    assert got == ["step 'cap' argument 'image': expects image but '$voice' gives audio"]


def test_type_mismatch_inside_a_list_and_from_an_input():
    got = problems(plan({"id": "m", "tool": "mix", "args": {"tracks": ["$pic", "$n"]}},
                        {"id": "n", "tool": "loudness", "args": {"audio": "$pic"}},
                        inputs={"pic": {"type": "image"}}))
    assert "step 'm' argument 'tracks[0]': expects audio but '$pic' gives image" in got
    assert "step 'm' argument 'tracks[1]': expects audio but '$n' gives number" in got
    assert "step 'n' argument 'audio': expects audio but '$pic' gives image" in got


def test_bad_literals_are_caught():
    got = problems(plan({"id": "s", "tool": "speak", "args": {"text": "hi", "speed": "fast"}}))
    assert got == ["step 's' argument 'speed': input should be a valid number, unable to parse string as a number (got 'fast')"]


def test_dangling_references():
    got = problems(plan({"id": "a", "tool": "loudness", "args": {"audio": "$nothing"}},
                        {"id": "b", "tool": "loudness", "args": {"audio": "$a.value"}},
                        outputs={"o": "$ghost", "p": "not a ref"}))
    assert "step 'a' argument 'audio': '$nothing' refers to no input or step" in got
    assert "step 'b' argument 'audio': step 'a' (loudness) has no output 'value' (it has: result)" in got
    assert "output 'o': '$ghost' refers to no input or step" in got
    assert "output 'p': 'not a ref' is not a $reference" in got


def test_cycle_is_reported_with_its_path():
    got = problems(plan({"id": "a", "tool": "mix", "args": {"tracks": ["$c"]}},
                        {"id": "b", "tool": "mix", "args": {"tracks": ["$a"]}},
                        {"id": "c", "tool": "mix", "args": {"tracks": ["$b"]}}))
    assert len(got) == 1 and got[0].startswith("step 'a': cycle ")
    assert all(s in got[0] for s in ("a", "b", "c"))


def test_self_reference_duplicate_ids_and_name_clash():
    got = problems(plan({"id": "a", "tool": "speak", "args": {"text": "x"}},
                        {"id": "a", "tool": "speak", "args": {"text": "x"}},
                        {"id": "v", "tool": "speak", "args": {"text": "x"}},
                        inputs={"v": {"type": "text"}}))
    assert "step 'a': duplicate step id" in got
    assert "step 'v': id clashes with the input of the same name" in got
    got = problems(plan({"id": "a", "tool": "mix", "args": {"tracks": ["$a"]}}))
    assert "step 'a' argument 'tracks': step refers to itself" in got


def test_plan_error_lists_all_problems_in_one_line():
    with pytest.raises(PlanError) as e:
        check_plan(plan({"id": "x", "tool": "nope"}, {"id": "y", "tool": "nope2"}), REG)
    assert len(e.value.problems) == 2
    assert str(e.value).startswith("step 'x': unknown tool 'nope'") and "(and 1 more)" in str(e.value)
    assert "\n" not in str(e.value)


def test_refs_and_escapes():
    assert parse_ref("$a").source == "a" and parse_ref("$a").field is None
    assert parse_ref("$a.text").field == "text"
    assert parse_ref("$$literal") is None and parse_ref("a$") is None
    assert problems(plan({"id": "s", "tool": "speak", "args": {"text": "$$5 off"}})) == []
    assert problems(plan({"id": "s", "tool": "speak", "args": {"text": "$5 off"}})) == [
        "step 's' argument 'text': '$5 off' is not a valid reference (use $name or $step.output)"]


def test_published_schema_matches_models():
    published = json.loads((Path(__file__).parent.parent / "docs" / "plan.schema.json").read_text())
    assert published == plan_json_schema()


def test_a_plan_reads_the_duration_off_a_media_value():
    """`$narration.duration` (an input) and `$a.duration` (a step's one media output) are numbers;
    a field the kind lacks is a problem that lists what can be read."""
    p = plan({"id": "a", "tool": "speak", "args": {"text": "hi", "speed": "$narration.duration"}},
             {"id": "b", "tool": "speak", "args": {"text": "hi", "speed": "$a.duration"}},
             inputs={"narration": {"type": "audio"}})
    assert problems(p) == []
    bad = plan({"id": "a", "tool": "speak", "args": {"text": "hi", "speed": "$narration.width"}},
               {"id": "b", "tool": "speak", "args": {"text": "$a.duration"}},
               inputs={"narration": {"type": "audio"}})
    got = problems(bad)
    assert got[0] == ("step 'a' argument 'speed': input 'narration' has no field 'width'; of its audio, a plan "
                      "may read: .duration, .sample_rate, .channels")
    assert "step 'b' argument 'text'" in got[1] and "number" in got[1]  # a number is not text
