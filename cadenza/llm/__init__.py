"""Chat models: what a spec string means, the embedded llama.cpp models, and a scripted test model.

- `chat.py`: a spec ("local", "openai:gpt-4o-mini", ...) or a LangChain model object to a chat
  model, and `complete_json`, which asks for JSON as tightly as the model allows.
- `local.py`: the embedded offline models (GGUF on llama.cpp), joined from their PyPI parts.
- `testing.py`: `ScriptedChatModel`, which replies from a script (tests use it instead of an LLM).

This layer sits below `tools/` (the translate tool uses it) and `agent/` (the planner does).
It may import errors, paths, pypi_parts, runtime and prompts; never tools, engine or agent.
"""

from .chat import DEFAULT_SPEC, LOCAL_SPECS, complete_json, get_chat_model, parse_json_reply, resolve_spec

__all__ = ["DEFAULT_SPEC", "LOCAL_SPECS", "complete_json", "get_chat_model", "parse_json_reply", "resolve_spec"]
