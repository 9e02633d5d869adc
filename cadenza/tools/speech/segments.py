"""Timed text: what transcription produces and subtitles, translation and dubbing consume."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


MAX_SECONDS = 7 * 86400  # a week: longer than any media, short enough for every time format


class Word(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)  # a NaN or infinite time breaks every cue after it

    start: float = Field(ge=0, le=MAX_SECONDS)
    end: float = Field(ge=0, le=MAX_SECONDS)
    text: str


class Segment(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    start: float = Field(ge=0, le=MAX_SECONDS, description="seconds")
    end: float = Field(ge=0, le=MAX_SECONDS, description="seconds")
    text: str
    words: list[Word] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "Segment":
        if self.end < self.start:
            raise ValueError(f"segment ends ({self.end}) before it starts ({self.start})")
        return self


class Transcript(BaseModel):
    """What `transcribe` returns: its `segments` feed make_subtitles, translate and dubbing."""

    text: str = Field(description="the whole transcript")
    language: str = Field(description="ISO 639-1 code, detected or given")
    segments: list[Segment] = Field(description="timed segments (with words when asked)")


class Translation(BaseModel):
    """What `translate` returns: the text, and the segments with their timings kept."""

    text: str
    language: str
    segments: list[Segment] = Field(default_factory=list, description="empty when plain text was translated")
