"""The offline describer's findings (describe_offline.py: labels, text read, faces, colours, brightness,
kind) written as one or two readable sentences by the configured LLM, or the answer to a question from
those findings alone. The template sentence stays the answer when no LLM is asked or its answer is not
usable; the raw findings are kept either way.

When an LLM is asked (the same rule as edit_image's instruction reader, image/ops/llm.py): only when one
was chosen on purpose, so the default offline caption stays instant and loads no model:
  1. vision_llm(model) is active (tests, notebooks);
  2. CADENZA_VISION_LLM (or `vision_llm` in the config file) names one ("rules" or "off": never);
  3. CADENZA_LLM (or `llm` in the config file) names a provider model (openai:..., ollama:...).
The embedded models ('local', 'local-small') are asked only when named in 2.
"""

from __future__ import annotations

import json
from typing import Any

from ...llm.chat import ToolLLM

MAX_CHARS = 500  # two sentences; a longer answer is the model rambling past the facts
NO_QUESTIONS = "the offline backend describes the picture but cannot answer questions"

CAPTION_LLM = ToolLLM("CADENZA_VISION_LLM", "vision_llm")  # the LLM that writes offline captions
vision_llm = CAPTION_LLM.using  # with vision_llm(model): ... (tests, notebooks)
configured_llm = CAPTION_LLM.choice  # a model or a spec, or None for the template (see the module's doc)


SYSTEM = """You write the caption of a picture you cannot see, from what detectors found in it. Use only these
facts; never add objects, people, places, actions or text that the facts do not state.
- labels are an ImageNet classifier's guesses with confidence 0..1: mention the top one only when its
  confidence is at least 0.3, and say "what looks like" under 0.6; ignore the others unless they agree.
- text is what OCR read in the picture: quote it exactly.
- faces is how many faces were detected; kind is photo, drawing or screenshot; colours and brightness
  describe the whole picture.
{task}
Answer with one JSON object: {{"text": "<your sentences>"}}"""

DESCRIBE = "Write one or two plain sentences describing the picture."
ANSWER = ("Answer the question in one or two plain sentences from the facts alone. When the facts cannot tell,"
          " say that the picture's findings do not tell, and say what they do show.")


def facts(findings: dict[str, Any]) -> dict[str, Any]:
    """The findings the LLM is shown: no boxes, timings or notes (they only cost tokens)."""
    return {
        "kind": findings.get("kind"),
        "size": f"{findings.get('width')}x{findings.get('height')}",
        "labels": [{"label": x["label"], "confidence": x["confidence"]} for x in findings.get("labels", [])[:5]],
        "text": [t["text"] for t in findings.get("text", [])[:12]],
        "faces": findings.get("face_count", 0),
        "colours": [{"name": c["name"], "share": c["share"]} for c in findings.get("colours", [])],
        "brightness": findings.get("brightness_word"),
    }


def answer_schema() -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": ["text"],
            "properties": {"text": {"type": "string", "maxLength": MAX_CHARS}}}


def write_with_llm(model: Any, findings: dict[str, Any], question: str | None) -> str:
    """The LLM's sentences; raises (LLMError, LLMConfigError, ValueError) when its answer is not usable."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from ...llm.chat import complete_json, get_chat_model

    chat = get_chat_model(model)
    ask = f"Facts: {json.dumps(facts(findings), ensure_ascii=False)}"
    if question:
        ask += f"\nQuestion: {question}"
    messages = [SystemMessage(SYSTEM.format(task=ANSWER if question else DESCRIBE)), HumanMessage(ask)]
    data, _ = complete_json(chat, messages, answer_schema())
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError('the answer is not {"text": "<sentences>"}')
    text = " ".join(text.split())
    if len(text) > MAX_CHARS:
        raise ValueError(f"the answer is {len(text)} characters long, more than two sentences")
    return text


def compose(findings: dict[str, Any], question: str | None = None) -> tuple[str, list[str], str]:
    """The caption for the offline findings (describe_offline.ImageFindings as JSON), notes, and who wrote it
    ("llm" or "template"): the configured LLM's sentences when one is asked and answers usably, else the
    template sentence (`findings['sentence']`)."""
    template = findings.get("sentence", "")
    model = configured_llm()
    if model is None:
        return template, ([NO_QUESTIONS] if question else []), "template"
    try:
        return write_with_llm(model, findings, question), [], "llm"
    except (AssertionError, KeyboardInterrupt):  # a test model's broken script is the test's failure
        raise
    except Exception as e:  # an invalid answer, a provider error, a missing model: the template still works
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        notes = [f"caption_image (offline): the LLM's answer was not usable ({why[:160]}): template sentence used"]
        return template, notes + ([NO_QUESTIONS] if question else []), "template"
