"""A scripted chat model for testing the controller without an LLM (after pydantic-ai's TestModel).

    with ScriptedChatModel(['{"steps": [...]}', '{"steps": []}']) as llm:
        Agent(llm=llm).run(...)
    # leaving the block fails if a scripted reply was never asked for

A reply may be a string, or a callable that receives the messages and returns a string
(to check what the controller sent). Asking for more replies than scripted fails too.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr


class ScriptNotConsumed(AssertionError):
    pass


class ScriptedChatModel(BaseChatModel):
    replies: list[Any]
    _calls: list[list[BaseMessage]] = PrivateAttr(default_factory=list)

    def __init__(self, replies: list[str | dict | Callable[[list[BaseMessage]], str]], **kw: Any):
        super().__init__(replies=list(replies), **kw)

    @property
    def _llm_type(self) -> str:
        return "cadenza-scripted"

    @property
    def calls(self) -> list[list[BaseMessage]]:
        """The messages of every call, in order."""
        return self._calls

    @property
    def remaining(self) -> int:
        return len(self.replies) - len(self._calls)

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        if len(self._calls) >= len(self.replies):
            raise ScriptNotConsumed(f"the script has {len(self.replies)} replies but call {len(self._calls) + 1} came")
        reply = self.replies[len(self._calls)]
        self._calls.append(list(messages))
        if callable(reply):
            reply = reply(messages)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, dict):
            reply = json.dumps(reply)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply))])

    def assert_consumed(self) -> None:
        if self.remaining:
            raise ScriptNotConsumed(f"{self.remaining} scripted repl{'y was' if self.remaining == 1 else 'ies were'} never used")

    def __enter__(self) -> "ScriptedChatModel":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.assert_consumed()
