"""What the captioning tools (caption_image, caption_video) hand a backend and get back, so each
backend module is a plain function behind a `Backend`:

    BACKEND: Backend
    def caption(ctx: ToolContext, request: CaptionRequest) -> list[Caption]

one Caption per picture of the request, in order. A backend may take the pictures as one batch (a
VLM on a GPU) or one by one (the offline describer). `describe_offline` (EfficientNet-Lite0 labels,
RapidOCR text, faces, colours: no language model) and `vlm_transformers` (a vision-language or
captioning model through transformers' Auto classes) are the two.

The tools open the pictures (EXIF orientation applied, first frame of an animation, the pixel limit)
before a backend sees them: a backend gets RGB Pillow images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image as PILImage
from pydantic import BaseModel, Field

from ..speech.segments import Segment
from ...media import Subtitles


@dataclass
class CaptionRequest:
    images: list[PILImage.Image]  # RGB, upright
    question: str | None = None  # None: describe the picture; else answer this about it
    model: str | None = None  # a model id or folder (transformers); None: the backend's default
    max_new_tokens: int = 60  # longest answer a language model may give, in tokens
    # the pictures are frames of one scene of a video, in time order: a backend whose model takes video
    # (several frames at once) may describe them together and return one Caption per frame (the same text)
    scene: bool = False
    # per picture, the lines OCR already read in that very picture (describe_offline.TextLine; None: not read),
    # so a backend that reads text does not read it again (caption_video: frames its screen-text reader read)
    text_read: list[list[Any] | None] | None = None


@dataclass
class Caption:
    text: str  # one or two readable sentences, or the answer to the question
    findings: dict[str, Any] = field(default_factory=dict)  # what the backend found, as JSON-ready data
    # text read in the picture (OCR lines), when the backend reads text; None when it does not
    screen_text: list[str] | None = None


# -- outputs of the tools ----------------------------------------------------------------------------------

class ImageCaption(BaseModel):
    """What `caption_image` returns."""

    text: str = Field(description="the description of the picture, or the answer to the question")
    findings: dict[str, Any] = Field(description="the raw findings: labels with confidence, text read, faces, "
                                                 "colours, brightness, kind (offline); the model and its answer (VLM)")


class SceneCaption(BaseModel):
    start: float = Field(description="seconds")
    end: float = Field(description="seconds")
    description: str
    text: list[str] = Field(default_factory=list, description="on-screen text seen in the scene, in order")
    frame_times: list[float] = Field(default_factory=list, description="the frames that were captioned (seconds)")


class VideoCaptions(BaseModel):
    """What `caption_video` returns."""

    scenes: list[SceneCaption] = Field(description="each scene with its times, description and on-screen text")
    descriptions: list[Segment] = Field(description="each scene's description as timed text")
    summary: str = Field(description="a short account of the whole video")
    transcript: str | None = Field(description="what is said in the video; None when it has no sound track")
    speech: list[Segment] = Field(description="the speech as timed segments (empty without a sound track)")
    screen_text: list[Segment] = Field(description="each piece of on-screen text with when it is first and last seen")
    text: str = Field(description="all on-screen text in order of appearance, one line each")
    subtitles: Subtitles | None = Field(default=None, description="the descriptions as SRT subtitles, when asked")
