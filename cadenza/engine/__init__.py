"""The engine: the plan format, static validation, the executor and its runners, the step
cache, YAML workflows and the Mermaid view.

LLM plans and hand-written workflows meet here as the same `Plan` and run the same way, so
nothing in this package knows about LLMs. It may import tools, media, workspace, runtime,
paths and errors; never `llm` or `agent`.
"""
