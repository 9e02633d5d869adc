"""Tools: the typed tool API, the registry and plugins, and the built-in tool families.

- `base.py` (`@tool`, `Tool`, `Backend`, `ToolContext`), `types.py` (type tags), `args.py`
  (plan values to Python values), `registry.py` (plugins, built-in and installed).
- One sub-package per family (`audio/`, `speech/`, and the coming `music/`, `image/`,
  `vision/`), one module per backend; each family registers through the plugin hook.

May import media, workspace, runtime, paths, errors, hookspecs and the `llm` layer (the
translate tool asks the configured LLM); never engine or agent.
"""
