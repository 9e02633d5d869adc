"""Tool authoring: schema from type hints and docstrings, the class form, backends."""

from typing import Literal

import pytest
from pydantic import BaseModel

import cadenza
from cadenza import Audio, Backend, Image, Tool, ToolContext, Video, tool
from cadenza.errors import BackendUnavailableError, InputError


@tool
def caption(image: Image, style: Literal["short", "long"] = "short", max_words: int = 20) -> str:
    """Describe a picture in words.

    Args:
        image: the picture to describe
        style: how much detail
        max_words: upper bound on the length
    """
    return f"{style} caption of {image.path.name}"


class Transcript(BaseModel):
    text: str
    language: str


class Transcribe(Tool):
    """Turn speech into text."""

    backends = [Backend("fake-gpu", device="gpu", requires=("module_that_does_not_exist_xyz",), extra="whisper"),
                Backend("cpu-words", device="cpu")]

    def setup(self):
        self.setup_calls = getattr(self, "setup_calls", 0) + 1

    def forward(self, audio: Audio | Video, ctx: ToolContext) -> Transcript:
        return Transcript(text=f"words from {audio.path.name} via {ctx.backend}", language="en")


def test_function_tool_schema_from_signature_and_docstring():
    assert caption.name == "caption"
    assert caption.description == "Describe a picture in words."
    schema = caption.input_schema()
    assert schema["required"] == ["image"]
    assert schema["properties"]["image"]["x-media"] == "image"
    assert schema["properties"]["image"]["description"] == "the picture to describe"
    assert schema["properties"]["style"]["enum"] == ["short", "long"]
    assert schema["properties"]["max_words"]["type"] == "integer"
    assert caption.outputs == {"result": "text"}
    assert caption.signature_line() == "caption(image: image, style?: text, max_words?: integer) -> text"


def test_class_tool_multi_output_lazy_setup_and_backend_choice(tmp_path, monkeypatch):
    t = Transcribe()
    assert t.name == "transcribe"
    assert t.description == "Turn speech into text."
    assert t.params["audio"].tag == "audio|video"
    assert t.outputs == {"text": "text", "language": "text"}
    assert not hasattr(t, "setup_calls")  # lazy: nothing loaded at construction
    assert t.get_backend().name == "cpu-words"  # the GPU backend cannot run here
    with pytest.raises(BackendUnavailableError, match="module_that_does_not_exist_xyz.*cadenza\\[whisper\\]"):
        t.get_backend("fake-gpu")
    with pytest.raises(InputError, match="no backend 'nope'"):
        t.get_backend("nope")
    monkeypatch.chdir(tmp_path)
    from tests.media_factory import tone

    tone(tmp_path / "a.wav", seconds=0.5)
    out = t(audio="a.wav")
    out2 = t(audio="a.wav")
    assert out["text"] == "words from a.wav via cpu-words" and out2["language"] == "en"
    assert t.setup_calls == 1


def test_direct_call_converts_and_checks_arguments(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from tests.media_factory import tone

    tone(tmp_path / "a.wav", seconds=0.5)
    with pytest.raises(InputError, match="missing required argument 'image'"):
        caption()
    png(tmp_path / "p.png")
    assert caption(image="p.png", style="long") == "long caption of p.png"
    with pytest.raises(InputError, match="argument 'max_words': input should be a valid integer"):
        caption(image="p.png", max_words="many")
    with pytest.raises(cadenza.MediaError, match="image file not found: x.png"):
        caption(image="x.png")
    with pytest.raises(cadenza.MediaError, match="argument 'image': cannot read image file /etc/hostname"):
        caption(image="/etc/hostname")  # a file the caller passes is allowed, but must be an image


def test_tool_registry_unknown_tool_suggests_close_name():
    reg = cadenza.Registry([caption])
    with pytest.raises(cadenza.UnknownToolError, match="unknown tool 'captoin' \\(did you mean 'caption'\\?\\)"):
        reg.get("captoin")
    with pytest.raises(ValueError, match="already registered"):
        reg.register(tool(caption.fn, name="caption"))


def test_spec_is_json_ready():
    import json

    spec = json.loads(json.dumps(Transcribe().spec()))
    assert spec["inputs"]["audio"] == {"type": "audio|video", "required": True}
    assert [b["available"] for b in spec["backends"]] == [False, True]


def test_builtin_tools_are_registered():
    names = cadenza.default_registry().names()
    for n in ["mix_audio", "concat_audio", "trim_audio", "fade_audio", "normalize_audio", "fit_audio",
              "convert_audio", "extract_audio", "replace_audio", "add_subtitles"]:
        assert n in names


def png(path, w=32, h=24):
    import av
    import numpy as np

    with av.open(str(path), "w", format="image2") as out:
        s = out.add_stream("png", rate=1)
        s.width, s.height, s.pix_fmt = w, h, "rgb24"
        for p in s.encode(av.VideoFrame.from_ndarray(np.zeros((h, w, 3), np.uint8), format="rgb24")):
            out.mux(p)
        for p in s.encode(None):
            out.mux(p)
