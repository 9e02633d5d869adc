"""Cadenza tools as LangChain `StructuredTool`s, so they drop into any LangChain agent."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..media import to_jsonable

if TYPE_CHECKING:
    from .base import Tool


def to_structured_tool(t: "Tool"):
    try:
        from langchain_core.tools import StructuredTool
    except ImportError as e:
        from ..errors import InputError

        raise InputError("to_langchain() needs langchain-core: pip install 'cadenza[langchain]'") from e

    def run(**kwargs: Any) -> str:
        result = t(**kwargs)
        return json.dumps(to_jsonable(result), ensure_ascii=False)

    return StructuredTool.from_function(
        func=run, name=t.name, description=t.description or t.name, args_schema=t.input_model,
    )
