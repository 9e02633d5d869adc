"""Timed text: what transcription produces and subtitles, translation and dubbing consume."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator


class Word(BaseModel):
    start: float
    end: float
    text: str


class Segment(BaseModel):
    start: float = Field(ge=0, description="seconds")
    end: float = Field(ge=0, description="seconds")
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
