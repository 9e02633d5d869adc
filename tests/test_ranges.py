"""Number arguments: NaN and infinity are refused everywhere, and every built-in tool declares the
range of each number argument once (`Range` in its signature), which gives the check before a plan
runs, the check when a value arrives at run time, the JSON Schema's bounds and the error message."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import Field

from cadenza import Registry, Workspace, tool
from cadenza.engine.plan import Plan, Step
from cadenza.engine.validate import check_plan, validate_plan
from cadenza.engine.workflow import load_workflow
from cadenza.errors import InputError
from cadenza.tools.args import convert_value
from cadenza.tools.registry import builtin_tools, default_registry
from cadenza.tools.types import Range, type_tag
from tests.media_factory import tone

ROOT = Path(__file__).resolve().parent.parent
TOOLS = {t.name: t for t in builtin_tools()}
NUMBER_TAGS = {"number", "integer", "list[number]", "list[integer]"}

# The documented ranges: (low, high, low exclusive). A new number argument must be added here
# (test_every_number_argument_declares_its_range), so none is left open by accident.
RANGES = {
    ("mix_audio", "gains_db"): (-96, 24, False),  # each item, dB
    ("mix_audio", "duck_under"): (0, None, False),  # a track index; the top is checked against the tracks
    ("mix_audio", "duck_db"): (0, 60, False),
    ("dub_mix", "duck_db"): (0, 60, False),
    ("compose_music", "duration"): (0, 600, True),
    ("compose_music", "seed"): (0, 2**31 - 1, False),
    ("generate_sound", "duration"): (0, 60, True),
    ("generate_sound", "seed"): (0, 2**31 - 1, False),
    ("edit_image", "seed"): (0, 2**31 - 1, False),
    ("edit_image", "steps"): (1, 500, False),
    ("edit_image", "guidance_scale"): (0, 50, False),
    ("edit_image", "image_guidance_scale"): (0, 20, False),
    ("edit_image", "strength"): (0, 1, False),
    ("generate_image", "width"): (64, 2048, False),
    ("generate_image", "height"): (64, 2048, False),
    ("generate_image", "steps"): (1, 500, False),
    ("generate_image", "seed"): (0, 2**31 - 1, False),
    ("generate_image", "guidance_scale"): (0, 50, False),
    ("extract_frame", "time"): (0, 86400, False),
    ("extract_frames", "every"): (0.1, 3600, False),
    ("extract_frames", "max_frames"): (1, 1000, False),
    ("detect_scenes", "threshold"): (1, 100, False),
    ("detect_scenes", "min_scene_seconds"): (0, 60, False),
    ("images_to_video", "seconds"): (0.1, 3600, False),
    ("images_to_video", "fps"): (1, 60, False),
    ("images_to_video", "width"): (16, 7680, False),
    ("images_to_video", "height"): (16, 4320, False),
    ("images_to_video", "crossfade"): (0, 5, False),
    ("caption_video", "every"): (1, 600, False),
    ("caption_video", "min_scene_seconds"): (0, 60, False),
    ("caption_video", "text_every"): (0.2, 10, False),
    ("caption_video", "threshold"): (1, 100, False),
    ("place_descriptions", "duration"): (0, 604800, False),
    ("place_descriptions", "margin"): (0, 2, False),
    ("place_descriptions", "min_gap"): (0.2, 30, False),
    ("place_descriptions", "words_per_second"): (0.5, 6, False),
    ("concat_audio", "crossfade_ms"): (0, 60000, False),
    ("concat_audio", "gap_ms"): (0, 60000, False),
    ("trim_audio", "start"): (0, 86400, False),
    ("trim_audio", "end"): (-86400, 86400, False),
    ("fade_audio", "fade_in"): (0, 3600, False),
    ("fade_audio", "fade_out"): (0, 3600, False),
    ("normalize_audio", "target_lufs"): (-60, 0, False),
    ("normalize_audio", "peak_db"): (-60, 0, False),
    ("fit_audio", "duration"): (0, 86400, True),
    ("convert_audio", "sample_rate"): (8000, 192000, False),
    ("convert_audio", "channels"): (1, 2, False),  # Literal[1, 2]: an enum in the schema
    ("speak", "speed"): (0.25, 4, False),
    ("make_subtitles", "max_chars"): (10, 200, False),
    ("make_subtitles", "max_lines"): (1, 10, False),
    ("dub_lines", "max_chars"): (20, 2000, False),
    ("dub_lines", "max_seconds"): (1, 120, False),
    ("dub_lines", "max_pause"): (0, 30, False),
    ("speak_lines", "speed"): (0.25, 4, False),
    ("speak_lines", "max_speedup"): (1, 2, False),
    ("speak_lines", "share_of_gap"): (0, 1, False),
    ("speak_lines", "min_speed"): (0.5, 1, False),
    ("speak_lines", "duration"): (0, 604800, False),
    ("speak_lines", "speeds"): (0, 2, False),  # each item; 0 means "fit automatically"
}
# A workflow tool's number input is checked by the tool it feeds (narrate's music_gain by mix_audio's
# gains_db range); at the workflow's own boundary it must be finite (tested below), not ranged.
NUMBER_PARAMS = sorted((t.name, n) for t in TOOLS.values() if not hasattr(t, "sub_plan")
                       for n, p in t.params.items() if p.tag in NUMBER_TAGS)
RANGED = sorted(k for k, v in RANGES.items() if k != ("convert_audio", "channels"))


def is_list(tool_name: str, arg: str) -> bool:
    return TOOLS[tool_name].params[arg].tag.startswith("list[")


def as_arg(tool_name: str, arg: str, value):
    return [value] if is_list(tool_name, arg) else value


def label(tool_name: str, arg: str) -> str:
    return f"{arg}[0]" if is_list(tool_name, arg) else arg


def static_problems(tool_name: str, arg: str, value) -> list[str]:
    """What validation says about this one argument (other problems, e.g. a missing file argument, left out)."""
    plan = Plan(steps=[Step(id="s", tool=tool_name, args={arg: value})])
    return [p for p in validate_plan(plan, default_registry()) if p.startswith(f"step 's' argument '{arg}")]


def run_time_problem(tool_name: str, arg: str, value) -> str | None:
    """What converting the value (as a reference or --arg delivers it) says, None when accepted."""
    try:
        convert_value(TOOLS[tool_name].params[arg].annotation, value, None, f"step 's' argument '{arg}'")
    except InputError as e:
        return str(e)
    return None


def range_words(lo, hi, lo_open) -> str:
    if hi is None:
        return f"at least {lo}"
    return f"more than {lo} and at most {hi}" if lo_open else f"between {lo} and {hi}"


def bounds_in_schema(prop: dict) -> tuple:
    """(minimum, maximum, exclusive) of a property, through `anyOf [.., null]` and array items."""
    if "anyOf" in prop:
        (prop,) = [p for p in prop["anyOf"] if p.get("type") != "null"]
    if prop.get("type") == "array":
        prop = prop["items"]
    if "enum" in prop:
        return min(prop["enum"]), max(prop["enum"]), False
    if "exclusiveMinimum" in prop:
        return prop["exclusiveMinimum"], prop.get("maximum"), True
    return prop.get("minimum"), prop.get("maximum"), False


# -- every number argument has a declared range, and the schema shows it ---------------------------

def test_every_number_argument_declares_its_range():
    assert NUMBER_PARAMS == sorted(RANGES)


@pytest.mark.parametrize("tool_name,arg", sorted(RANGES))
def test_the_range_is_in_the_json_schema(tool_name, arg):
    prop = TOOLS[tool_name].input_schema()["properties"][arg]
    assert bounds_in_schema(prop) == RANGES[tool_name, arg]


def test_type_tags_and_signatures_are_unchanged_by_ranges():
    assert TOOLS["fit_audio"].signature_line() == "fit_audio(audio: audio, duration: number) -> audio"
    assert TOOLS["mix_audio"].params["gains_db"].tag == "list[number]"
    assert TOOLS["convert_audio"].params["sample_rate"].tag == "integer"
    assert type_tag(Annotated[float, Range(0, 1)] | None) == "number"


# -- NaN and infinity: refused for every number argument, before running and at run time ----------

NON_FINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("value", NON_FINITE, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("tool_name,arg", NUMBER_PARAMS)
def test_non_finite_numbers_are_refused(tool_name, arg, value):
    found = static_problems(tool_name, arg, as_arg(tool_name, arg, value))
    assert len(found) == 1 and found[0].startswith(f"step 's' argument '{label(tool_name, arg)}': "), found
    at_run = run_time_problem(tool_name, arg, as_arg(tool_name, arg, value))
    assert at_run is not None and at_run.startswith(f"step 's' argument '{label(tool_name, arg)}': ")
    if (tool_name, arg) in RANGED:
        words = range_words(*RANGES[tool_name, arg])
        assert found[0] == at_run == f"step 's' argument '{label(tool_name, arg)}': must be {words} (got {value!r})"


def test_the_exact_message():
    assert static_problems("fit_audio", "duration", math.inf) == [
        "step 's' argument 'duration': must be more than 0 and at most 86400 (got inf)"]
    assert static_problems("normalize_audio", "target_lufs", math.nan) == [
        "step 's' argument 'target_lufs': must be between -60 and 0 (got nan)"]


# -- out of range refused with the range in the message; in range accepted -------------------------

def outside(tool_name, arg) -> list:
    lo, hi, lo_open = RANGES[tool_name, arg]
    step = 1 if TOOLS[tool_name].params[arg].tag.endswith("integer") else 0.01
    return ([lo] if lo_open else [lo - step]) + ([] if hi is None else [hi + step, hi * 1000 or 1000])


def inside(tool_name, arg) -> list:
    lo, hi, lo_open = RANGES[tool_name, arg]
    values = [] if lo_open else [lo]
    if hi is not None:
        values += [hi, (lo + hi) // 2 if TOOLS[tool_name].params[arg].tag.endswith("integer") else (lo + hi) / 2]
    return values + ([0.01] if lo_open else [])


@pytest.mark.parametrize("tool_name,arg", RANGED)
def test_out_of_range_is_refused_naming_the_range(tool_name, arg):
    words = range_words(*RANGES[tool_name, arg])
    for value in outside(tool_name, arg):
        want = f"step 's' argument '{label(tool_name, arg)}': must be {words} (got {value!r})"
        assert static_problems(tool_name, arg, as_arg(tool_name, arg, value)) == [want]
        assert run_time_problem(tool_name, arg, as_arg(tool_name, arg, value)) == want


@pytest.mark.parametrize("tool_name,arg", RANGED)
def test_in_range_is_accepted(tool_name, arg):
    for value in inside(tool_name, arg):
        assert static_problems(tool_name, arg, as_arg(tool_name, arg, value)) == []
        assert run_time_problem(tool_name, arg, as_arg(tool_name, arg, value)) is None


def test_the_values_people_use_stay_valid():
    for tool_name, arg, value in [("normalize_audio", "target_lufs", -23), ("normalize_audio", "target_lufs", -14),
                                  ("mix_audio", "gains_db", [0, -4]), ("mix_audio", "duck_db", 10),
                                  ("fade_audio", "fade_out", 1.5), ("fit_audio", "duration", 10),
                                  ("convert_audio", "sample_rate", 8000), ("convert_audio", "sample_rate", 44100),
                                  ("trim_audio", "end", -1.5), ("speak", "speed", 1.6)]:
        assert static_problems(tool_name, arg, value) == [], (tool_name, arg, value)
    for f in sorted((ROOT / "examples" / "workflows").glob("*.yaml")):
        check_plan(load_workflow(f), default_registry())


def test_a_bad_list_item_is_named_even_beside_a_reference():
    plan = Plan(inputs={"g": {"type": "number"}},
                steps=[Step(id="m", tool="mix_audio", args={"tracks": ["a.wav", "b.wav"], "gains_db": [1000, "$g"]})])
    assert validate_plan(plan, default_registry()) == [
        "step 'm' argument 'gains_db[0]': must be between -96 and 24 (got 1000)"]


def test_segment_times_must_be_finite():
    found = static_problems("make_subtitles", "segments", [{"start": 0, "end": math.inf, "text": "x"}])
    assert len(found) == 1 and "segments[0]" in found[0] and "finite" in found[0]


# -- any tool: plain floats must be finite; pydantic's own bounds give the same message -------------

@tool
def plug(x: float, level: Annotated[float, Field(ge=-1, le=1)] = 0.0, n: int = 1) -> float:
    """A plugin's tool with no Range."""
    return x


PLUG = Registry([plug])


@pytest.mark.parametrize("args,want", [
    ({"x": math.nan}, "step 'p' argument 'x': must be a finite number (got nan)"),
    ({"x": 1, "n": math.inf}, "step 'p' argument 'n': must be a finite number (got inf)"),
    ({"x": 1, "level": 2}, "step 'p' argument 'level': must be between -1 and 1 (got 2)"),
])
def test_third_party_tools_get_the_same_rules(args, want):
    assert validate_plan(Plan(steps=[Step(id="p", tool="plug", args=args)]), PLUG) == [want]
    with pytest.raises(InputError, match="must be"):
        plug(**args)


# -- at run time: values arriving through a reference or --arg ------------------------------------

def run_narrow(tmp_path, level):
    from cadenza import Workspace
    from cadenza.engine.executor import Executor

    tone(tmp_path / "t.wav", seconds=0.5)
    plan = Plan(inputs={"speech": {"type": "audio"}, "level": {"type": "number"}},
                steps=[Step(id="n", tool="normalize_audio", args={"audio": "$speech", "target_lufs": "$level"})],
                outputs={"result": "$n"})
    return Executor(default_registry(), cache=False).run(plan, {"speech": str(tmp_path / "t.wav"), "level": level},
                                                         Workspace.for_run(tmp_path / "out", {"speech": str(tmp_path / "t.wav")}))


def test_a_reference_out_of_range_fails_the_step_with_the_range(tmp_path):
    result = run_narrow(tmp_path, 1000)
    assert result.exit_code == 2
    assert "argument 'target_lufs': must be between -60 and 0 (got 1000.0)" in result.errors()[0]


def test_a_workflow_number_input_must_be_finite(tmp_path):
    with pytest.raises(InputError, match=r"^input 'level': must be a finite number \(got nan\)$"):
        run_narrow(tmp_path, math.nan)


def cadenza(*args, cwd):
    env = {**os.environ, "CADENZA_CACHE_DIR": str(Path(cwd) / ".cache")}
    return subprocess.run([sys.executable, "-m", "cadenza.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


@pytest.mark.parametrize("tool_name,arg,want", [
    ("fit_audio", "duration=inf", "step 'fit_audio' argument 'duration': must be more than 0 and at most 86400 (got 'inf')"),
    ("fit_audio", "duration=.inf", "step 'fit_audio' argument 'duration': must be more than 0 and at most 86400 (got inf)"),
    ("normalize_audio", "target_lufs=.nan", "step 'normalize_audio' argument 'target_lufs': must be between -60 and 0 (got nan)"),
])
def test_cli_refuses_with_exit_2_and_one_line(tmp_path, tool_name, arg, want):
    tone(tmp_path / "t.wav", seconds=0.5)
    r = cadenza("tools", "run", tool_name, "--arg", "audio=t.wav", "--arg", arg, "--out", "out", cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.strip().splitlines() == [f"error: {want}"]


def test_tools_show_json_carries_the_bounds(tmp_path):
    r = cadenza("tools", "show", "fit_audio", "--json", cwd=tmp_path)
    duration = json.loads(r.stdout)["input_schema"]["properties"]["duration"]
    assert (duration["exclusiveMinimum"], duration["maximum"], duration["type"]) == (0, 86400, "number")


def test_a_workflow_tools_number_input_must_be_finite_and_is_ranged_where_it_is_used(tmp_path):
    from cadenza.engine.executor import Executor
    from cadenza.engine.plan import Plan, Step
    from cadenza.errors import InputError, PlanError

    narrate = TOOLS["narrate"]
    assert "music_gain" in narrate.params and narrate.params["music_gain"].tag == "number"
    with pytest.raises((InputError, PlanError), match="music_gain"):
        Executor(cache=False).run(Plan(steps=[Step(id="n", tool="narrate", args={
            "speech": "a.wav", "music": "b.wav", "music_gain": float("nan")})]), {}, Workspace(tmp_path / "o"))
