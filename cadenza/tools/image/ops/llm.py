"""The LLM path of the instruction parser: the configured LLM reads the instruction and answers with
structured JSON (the list of operations with their parameters, and what it could not map), which is
validated against the operations' own parameter models before anything runs.

When an LLM is asked (the same rule as the composer's, music/symbolic/describe.py): an LLM is asked only
when one was chosen on purpose, so the default offline call stays instant and loads no model:
  1. image_llm(model) is active (tests, notebooks);
  2. CADENZA_IMAGE_LLM (or `image_llm` in the config file) names one ("rules" or "off": never);
  3. CADENZA_LLM (or `llm` in the config file) names a provider model (openai:..., ollama:...).
The embedded models ('local', 'local-small') are asked only when named in 2.
"""

from __future__ import annotations

import json
from typing import Any

from ....llm.chat import ToolLLM
from .registry import OPS, validate
from .parsed import Parsed

MAX_OPS = 12

INSTRUCTION_LLM = ToolLLM("CADENZA_IMAGE_LLM", "image_llm")  # the LLM that reads edit instructions
image_llm = INSTRUCTION_LLM.using  # with image_llm(model): ... (tests, notebooks)
configured_llm = INSTRUCTION_LLM.choice  # a model or a spec, or None for the rules (see the module's doc)


def _field_schema(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A pydantic property as plain JSON schema types (what llama.cpp grammars and OpenAI's strict mode
    both take): type, enum, items; the bounds go in the description and are checked afterwards."""
    if "$ref" in prop:
        prop = {**defs[prop["$ref"].split("/")[-1]], **{k: v for k, v in prop.items() if k != "$ref"}}
    options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
    base = options[0] if options else {"type": "string"}
    out: dict[str, Any] = {k: base[k] for k in ("type", "enum") if k in base}
    if "const" in base:
        out["enum"] = [base["const"]]
    if base.get("type") == "array":
        out["items"] = {"type": base.get("items", {}).get("type", "number")}
    bounds = [f"{word} {base[key]}" for key, word in (("minimum", ">="), ("maximum", "<=")) if key in base]
    desc = "; ".join(x for x in (prop.get("description"), ", ".join(bounds)) if x)
    if desc:
        out["description"] = desc
    return out


def op_schema(name: str) -> dict[str, Any]:
    """One operation as {"op": name, "params": {...}}: every field listed; optional ones may be null."""
    model = OPS[name].params
    full = model.model_json_schema()
    props: dict[str, Any] = {}
    for field_name, prop in full.get("properties", {}).items():
        schema = _field_schema(prop, full.get("$defs", {}))
        required = model.model_fields[field_name].is_required()
        props[field_name] = schema if required else {"anyOf": [schema, {"type": "null"}]}
    params = {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}
    return {"type": "object", "properties": {"op": {"type": "string", "enum": [name]}, "params": params},
            "required": ["op", "params"], "additionalProperties": False}


def answer_schema() -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": ["operations", "not_understood"],
            "properties": {
                "operations": {"type": "array", "maxItems": MAX_OPS, "items": {"anyOf": [op_schema(n) for n in OPS]}},
                "not_understood": {"type": "array", "items": {"type": "string"}, "maxItems": 8}}}


SYSTEM = """You turn a photo-editing instruction into a list of classical image operations. Answer with one JSON object:
{{"operations": [{{"op": <name>, "params": {{...}}}}, ...], "not_understood": [<parts of the instruction>]}}
Use only these operations, in the order the instruction asks for them. In params give every field; null means
the default (use null unless the instruction says something about that field). Sizes in pixels only when the
instruction gives pixels. Text to write is copied exactly. Anything no operation can do (adding, removing or
changing objects or people, changing expressions, generating new content such as 'add a dragon' or 'put it on a
beach') goes into not_understood, in the instruction's words; never approximate it with another operation.
If the instruction asks for no change, answer with two empty lists.
Operations:
{catalog}
Examples:
make it black and white and crop it square -> {{"operations": [{{"op": "grayscale", "params": {{"amount": null}}}}, {{"op": "crop", "params": {{"aspect": "square", "box": null, "anchor": null, "zoom": null, "margin": null}}}}], "not_understood": []}}
add a dragon and make it brighter -> {{"operations": [{{"op": "brightness", "params": {{"amount": 0.2}}}}], "not_understood": ["add a dragon"]}}"""


def catalog() -> str:
    """One line per operation: what it does, and each parameter's type, default, range and meaning."""
    lines = []
    for op in OPS.values():
        full = op.params.model_json_schema()
        fields = []
        for name, f in op.params.model_fields.items():
            schema = _field_schema(full["properties"][name], full.get("$defs", {}))
            kind = "|".join(map(repr, schema["enum"])) if "enum" in schema else schema.get("type", "string")
            default = "required" if f.is_required() else f"default {json.dumps(f.default)}"
            fields.append(f"{name} ({kind}, {default})" + (f": {schema['description']}" if "description" in schema else ""))
        lines.append(f"- {op.name}: {op.summary}." + (" Params: " + "; ".join(fields) if fields else " No params."))
    return "\n".join(lines)


def read_with_llm(model: Any, instruction: str) -> Parsed:
    """The LLM's reading, validated; raises (LLMError, LLMConfigError, InputError, ValueError) when unusable."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from ....llm.chat import complete_json, get_chat_model

    chat = get_chat_model(model)
    messages = [SystemMessage(SYSTEM.format(catalog=catalog())), HumanMessage(instruction)]
    data, _ = complete_json(chat, messages, answer_schema())
    items, unknown = data.get("operations"), data.get("not_understood") or []
    if not isinstance(items, list) or not isinstance(unknown, list) or len(items) > MAX_OPS:
        raise ValueError("the answer is not {\"operations\": [...], \"not_understood\": [...]}")
    ops = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("params", {}), dict):
            raise ValueError(f"not an operation: {json.dumps(item)[:80]}")
        name, params = item.get("op"), item.get("params") or {}
        _op, model_params = validate(str(name), params)  # InputError: unknown operation or a bad value
        ops.append({"op": str(name), "params": model_params.model_dump(exclude_unset=True)})
    return Parsed(ops=ops, unknown=[str(u) for u in unknown if str(u).strip()], parser="llm")
