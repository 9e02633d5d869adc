"""For the web app's tests: a `transcribe` that hears three fixed English lines in any sound (so a
dubbing run needs no Whisper), a scripted translator, and a registry with them."""

from __future__ import annotations

import json

from cadenza import Audio, Registry, ToolContext, Video, tool
from cadenza.tools.registry import builtin_tools
from cadenza.tools.speech.segments import Segment, Transcript, Word

HEARD = [(0.3, "Good morning."), (2.6, "The train is late."), (5.0, "Thank you.")]
TRANSLATED = {"Good morning.": "Buenos días.", "The train is late.": "El tren llega tarde.", "Thank you.": "Gracias."}


def _segment(start: float, text: str) -> Segment:
    words, t = [], start
    for w in text.split():
        words.append(Word(start=round(t, 3), end=round(t + 0.3, 3), text=" " + w))
        t += 0.35
    return Segment(start=start, end=words[-1].end, text=text, words=words)


@tool(name="transcribe", version="test-1")
def fake_transcribe(media: Audio | Video, ctx: ToolContext, language: str | None = None,
                    word_timestamps: bool = False) -> Transcript:
    """Hears the same three English lines in any sound (a stand-in for Whisper in tests)."""
    segments = [_segment(s, t) for s, t in HEARD]
    return Transcript(text=" ".join(t for _, t in HEARD), language="en", segments=segments)


def translator(messages) -> str:
    """A scripted LLM's reply: translate's lines by the table; a shorter rendering: the line as it is."""
    data = json.loads(messages[-1].content)
    if "line" in data:
        return json.dumps({"text": data["line"]})
    return json.dumps({"lines": [TRANSLATED.get(line.strip(), line) for line in data["lines"]]})


def registry() -> Registry:
    return Registry([t for t in builtin_tools() if t.name != "transcribe"] + [fake_transcribe])
