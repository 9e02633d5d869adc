"""The controller: a plain-language request in, a validated plan run by the engine, an answer out.

- `agent.py`: `Agent`, the four stages (plan, validate, execute, respond) and chat turns.
- `planner.py`: the prompt, the LLM call, validation and repairs.
- `examples.py`: the worked-example pool (Cadenza's own and TaskBench cases) and how examples are chosen.
- `stepwise.py`: the embedded LLM writes a plan step by step under a type-checking grammar.
- `step_check.py`: the embedded LLM scores each step of a plan afresh; doubtful ones are dropped.
- `embed.py`: sentence similarity (MiniLM offline) for choosing examples and tools.
- `taskbench.py`: TaskBench's catalog-only tools and the planning benchmark's scores.

The top of the library: it may import engine, llm, tools and everything below them.
"""
