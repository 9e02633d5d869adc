"""A shorter rendering of a dubbing line, asked of translate's LLM (the configured one).

Step 4 of fitting a line (see fit.py): when a line is too long for its slot even at the
fastest allowed speed, the translator is asked to say the same thing in at most N characters.
"""

from __future__ import annotations

import json

from langchain_core.messages import HumanMessage, SystemMessage

from ...llm.chat import complete_json
from ..speech.translate import _llm, _llm_check
from ..speech.languages import name as language_name

SYSTEM = ("You are a dubbing adapter. Rewrite the line, in {language}, so that it says the same thing in at "
          "most {n} characters: shorter words, fewer words, drop fillers; keep names and numbers. "
          "Return JSON {{\"text\": \"...\"}} with the shorter line only.")
SCHEMA = {"type": "object", "required": ["text"], "additionalProperties": False,
          "properties": {"text": {"type": "string"}}}


def llm_unavailable() -> str | None:
    """None when translate's LLM can be asked here, else why not (one line)."""
    return _llm_check()


def shorter(text: str, max_chars: int, language: str) -> str | None:
    """The line said in at most about `max_chars` characters, or None when the LLM gave nothing shorter."""
    model = _llm()
    msgs = [SystemMessage(SYSTEM.format(language=language_name(language), n=max_chars)),
            HumanMessage(json.dumps({"line": text, "max_characters": max_chars}, ensure_ascii=False))]
    data, _ = complete_json(model, msgs, SCHEMA)
    got = data.get("text") if isinstance(data, dict) else None
    if not isinstance(got, str):
        return None
    got = " ".join(got.split())
    return got if got and len(got) < len(text) else None
