"""Image and vision tools chained in one plan, offline: a caption written onto the picture (caption -> edit)
and the edited picture made into a video (edit -> video); the planner's catalog types both chains."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from cadenza.engine.executor import Executor
from cadenza.engine.plan import Plan
from cadenza.engine.validate import validate_plan
from cadenza.tools.registry import default_registry
from cadenza.tools.vision.caption import caption_image
from cadenza.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
CHAIN = {
    "inputs": {"photo": {"type": "image"}},
    "steps": [
        {"id": "about", "tool": "caption_image", "args": {"image": "$photo"}},
        {"id": "captioned", "tool": "edit_image",
         "args": {"image": "$photo", "instruction": "write it at the top in white", "text": "$about.text"}},
        {"id": "clip", "tool": "images_to_video", "args": {"images": "$captioned.image", "seconds": 1.0, "fps": 5}},
    ],
}


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]{4,}", text.lower())}


def test_caption_edit_video_chain_type_checks():
    assert validate_plan(Plan.model_validate(CHAIN), default_registry()) == []
    wrong = {**CHAIN, "steps": [*CHAIN["steps"][:2],
                                {"id": "clip", "tool": "images_to_video", "args": {"images": "$about.text"}}]}
    (problem,) = validate_plan(Plan.model_validate(wrong), default_registry())
    assert "images" in problem and "text" in problem


def test_caption_written_on_the_picture_then_made_a_video(tmp_path):
    photo = shutil.copy(ROOT / "examples/media/photo.png", tmp_path / "photo.png")
    result = Executor(default_registry(), cache=False).run(
        Plan.model_validate(CHAIN), {"photo": str(photo)}, Workspace.for_run(tmp_path / "out", {"photo": photo}))
    assert result.ok, result.errors()
    caption = result.steps["about"].outputs["text"]
    edited = result.steps["captioned"].outputs["image"]
    video = result.outputs["clip"]
    # the written caption is read back off the edited picture by the offline describer's OCR
    lines = caption_image(image=edited["path"])["findings"]["text"]
    read = " ".join(line["text"] for line in lines)
    assert len(words(caption) & words(read)) >= 2, (caption, read)
    assert video.duration == pytest.approx(1.0, abs=0.25)
