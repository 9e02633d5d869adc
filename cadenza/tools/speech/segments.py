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
