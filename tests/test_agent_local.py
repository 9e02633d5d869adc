"""End to end with the embedded offline LLM (Qwen2.5-Coder-1.5B on llama.cpp): a plain request
is planned, validated, run on real audio, and answered. No network, no key."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT / "examples" / "media"


def cadenza(*args, cwd):
    env = {**os.environ, "CADENZA_LLM": "local"}
    env.pop("CADENZA_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "cadenza.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def test_embedded_llm_plans_runs_and_answers(tmp_path):
    r = cadenza("run", "Mix the narration over the piano music and lower the music while the voice speaks",
                "--file", MEDIA / "narration.wav", "--file", MEDIA / "piano.wav", "--out", tmp_path / "out", "--json",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    tools = [s["tool"] for s in doc["plan"]["steps"]]
    assert "mix_audio" in tools
    mixed = [o for o in doc["outputs"].values() if isinstance(o, dict) and o.get("kind") == "audio"]
    assert mixed and all(Path(o["path"]).exists() for o in mixed)
    assert mixed[-1]["path"] in doc["answer"]
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "succeeded" and run["agent"]["llm"] == "local"


def test_embedded_llm_plan_as_mermaid(tmp_path):
    r = cadenza("plan", "Take the sound out of this video", "--file", MEDIA / "clip.mp4", "--mermaid", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("flowchart LR") and "extract_audio" in r.stdout
    assert 'in_clip -->|"video: video"|' in r.stdout


def test_prompt_lookup_drafts_leave_greedy_output_unchanged():
    # Drafts verified in short batches must give exactly what plain greedy decoding gives.
    from langchain_core.messages import HumanMessage

    from cadenza.llm.local import LocalChatModel

    msgs = [HumanMessage("Copy this JSON exactly: {\"steps\": [{\"id\": \"s1\", \"tool\": \"trim_audio\", "
                         "\"args\": {\"audio\": \"$narration\", \"start\": 1.5}}]}")]
    plain = LocalChatModel.from_spec("local", prompt_lookup=False, max_tokens=48).invoke(msgs).content
    drafted = LocalChatModel.from_spec("local", prompt_lookup=True, max_tokens=48).invoke(msgs).content
    assert plain and drafted == plain


def test_embedded_llm_plans_a_dub_as_one_step_of_the_dub_workflow(tmp_path):
    """Workflows are tools the planner can choose: the built-in dubbing workflow is one step."""
    r = cadenza("plan", "dub clip.mp4 into English", "--file", MEDIA / "clip.mp4", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    steps = json.loads(r.stdout)["plan"]["steps"]
    assert [(s["tool"], s["args"].get("to")) for s in steps] == [("dub", "en")]


def test_embedded_llm_composes_a_bed_as_long_as_the_narration(tmp_path):
    """'narration over calm piano': the music's duration is read off the narration ($narration.duration)."""
    r = cadenza("plan", "Put my narration over calm piano music", "--file", MEDIA / "narration.wav", "--json",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    steps = json.loads(r.stdout)["plan"]["steps"]
    compose = next(s for s in steps if s["tool"] == "compose_music")
    assert compose["args"]["duration"] == "$narration.duration"
    assert any(s["tool"] == "mix_audio" for s in steps)
