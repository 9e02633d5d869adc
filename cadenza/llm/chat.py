"""The LLM layer: one spec string picks a LangChain chat model.

    local              the embedded default: Qwen2.5-Coder-1.5B-Instruct (GGUF) on llama.cpp, offline
    local-small        Qwen2.5-Coder-0.5B-Instruct, faster, weaker plans
    openai:gpt-4o-mini any `init_chat_model` string ("provider:model"); provider packages are extras
    ollama:qwen2.5

A LangChain `BaseChatModel` object may be passed instead of a spec. The spec comes
from, in order: the `--llm` flag / `llm=` argument, `CADENZA_LLM`, the config file
(`CADENZA_CONFIG`, default `~/.config/cadenza/config.toml`, key `llm`), else `local`.

What the callers need of a model is asked as a capability, never by its class:
`json_schema_response_format` (llama.cpp takes the schema as a grammar), `raw_decoding`
(token-level access, `raw_session`), or a `with_structured_output` of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from typing import Any, Iterator

from ..errors import CadenzaError, InputError, LLMConfigError, LLMError
from ..paths import load_config

DEFAULT_SPEC = "local"

# Provider -> (pip package, environment variable holding the key)
PROVIDERS = {
    "openai": ("langchain-openai", "OPENAI_API_KEY"),
    "anthropic": ("langchain-anthropic", "ANTHROPIC_API_KEY"),
    "google_genai": ("langchain-google-genai", "GOOGLE_API_KEY"),
    "mistralai": ("langchain-mistralai", "MISTRAL_API_KEY"),
    "groq": ("langchain-groq", "GROQ_API_KEY"),
    "ollama": ("langchain-ollama", None),
}


def resolve_spec(spec: str | None = None) -> str:
    if spec:
        return spec
    if os.environ.get("CADENZA_LLM"):
        return os.environ["CADENZA_LLM"]
    try:
        configured = load_config().get("llm")
    except InputError as e:
        raise LLMConfigError(str(e)) from None
    return str(configured) if configured else DEFAULT_SPEC


def get_chat_model(llm: Any = None):
    """A LangChain chat model from a spec string, or the model object itself."""
    if llm is not None and not isinstance(llm, str):
        return llm
    spec = resolve_spec(llm)
    if spec in LOCAL_SPECS:
        from .local import LocalChatModel

        return LocalChatModel.from_spec(spec)
    provider, _, model = spec.partition(":")
    if not model:
        raise LLMConfigError(f"unknown LLM spec '{spec}' (use 'local', 'local-small' or 'provider:model', "
                             f"e.g. 'openai:gpt-4o-mini')")
    package, key_var = PROVIDERS.get(provider, (f"langchain-{provider}", None))
    if key_var and not os.environ.get(key_var):
        raise LLMConfigError(f"LLM '{spec}' needs an API key: set {key_var}")
    try:
        from langchain.chat_models import init_chat_model
    except ImportError:
        init_chat_model = None
    if init_chat_model is None:
        raise LLMConfigError(f"LLM '{spec}' needs the packages langchain and {package}: "
                             f"pip install langchain {package}")
    try:
        return init_chat_model(model, model_provider=provider, temperature=0)
    except ImportError:
        raise LLMConfigError(f"LLM '{spec}' needs the package {package}: pip install {package}") from None
    except ValueError as e:
        raise LLMConfigError(f"LLM '{spec}': {str(e).splitlines()[0]}") from None


LOCAL_SPECS = ("local", "local-small")


def complete_json(model, messages: list, schema: dict, *, timeout: float | None = None,
                  constrained: bool = True) -> tuple[dict, str]:
    """Ask for JSON matching `schema`, constrained wherever the backend can; returns (data, raw text).

    llama.cpp gets the schema as a grammar; OpenAI and Ollama get structured output; any other chat
    model (a scripted test model, say) is asked plainly and its answer parsed. `constrained=False`
    asks every model plainly: llama.cpp applies a grammar to the whole vocabulary at every token, which
    halves its speed on a CPU, and a small model writes simple JSON right without it most of the time
    (ask again constrained when the answer does not parse).
    """
    try:
        if not constrained:
            raw = model.invoke(messages).content
        elif getattr(model, "json_schema_response_format", False):
            msg = model.invoke(messages, response_format={"type": "json_object", "schema": schema})
            raw = msg.content
        elif supports_structured_output(model):
            out = model.with_structured_output(schema, method="json_schema", include_raw=True).invoke(messages)
            if out.get("parsed") is not None:
                return out["parsed"], json.dumps(out["parsed"])
            raw = getattr(out.get("raw"), "content", "") or ""
        else:
            raw = model.invoke(messages).content
    except (CadenzaError, AssertionError):  # ours, and a test model's failed expectations
        raise
    except TimeoutError as e:
        raise LLMError(f"the LLM timed out: {e}") from None
    except Exception as e:  # provider errors: auth, network, rate limits
        raise LLMError(f"the LLM call failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    try:
        return parse_json_reply(raw), raw
    except LLMError as e:
        raise LLMError(str(e), raw=raw) from None  # the repair loop shows the model its own bad reply


def supports_structured_output(model) -> bool:
    """Does the model's class bring its own `with_structured_output` (the provider packages'
    models do: OpenAI, Ollama, Anthropic, Google, ...)? LangChain's base version needs
    tool calling, which a plain chat model (a scripted test model) lacks."""
    from langchain_core.language_models.chat_models import BaseChatModel  # heavy: only when asked

    own = getattr(type(model), "with_structured_output", None)
    return own is not None and own is not BaseChatModel.with_structured_output


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def parse_json_reply(raw: Any) -> dict:
    """The first JSON object in a reply (code fences and chatter around it are ignored)."""
    if isinstance(raw, list):  # content blocks
        raw = "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in raw)
    text = str(raw or "").strip()
    m = _FENCE.search(text)
    if m:
        text = m.group(1).strip()
    start = text.find("{")
    if start < 0:
        raise LLMError(f"the LLM did not return JSON (got: {text[:80]!r})")
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as e:
        raise LLMError(f"the LLM returned invalid JSON ({e.msg} at char {e.pos}; got: {text[start:start + 80]!r})") from None
    if not isinstance(obj, dict):
        raise LLMError("the LLM returned JSON that is not an object")
    return obj


_OFF = ("rules", "off", "none", "no", "0", "false")


def tool_llm_choice(env_var: str, config_key: str) -> str | None:
    """The LLM a tool that can read its input by rules should ask, chosen on purpose (so a default call
    stays fast and loads no model): `env_var` or `config_key` in the config file names one ("rules" or
    "off": never); else the LLM picked for everything (CADENZA_LLM / `llm`) when it is a provider model.
    The embedded models are used only when named for the tool. None: read by rules."""
    try:
        from ..paths import load_config

        config = load_config()
    except Exception:  # a broken config file is reported by the planner; here it only means no choice
        config = {}
    for value in (os.environ.get(env_var), config.get(config_key)):
        if value is not None and str(value).strip():
            return None if str(value).strip().lower() in _OFF else str(value).strip()
    chosen = os.environ.get("CADENZA_LLM") or config.get("llm")
    return chosen if chosen and str(chosen) not in LOCAL_SPECS else None


class ToolLLM:
    """The LLM one rule-reading tool asks: the model set with `using` (tests, notebooks), else the one
    chosen on purpose for it (tool_llm_choice(env_var, config_key)); None: read by rules.

    The models set with `using` are one stack per tool shared by every thread, as the tools had it:
    a test or notebook sets one around whole calls."""

    def __init__(self, env_var: str, config_key: str):
        self.env_var = env_var
        self.config_key = config_key
        self._using: list[Any] = []

    @contextlib.contextmanager
    def using(self, model: Any) -> Iterator[None]:
        """Let this LangChain chat model (or spec) be the tool's LLM inside the block."""
        self._using.append(model)
        try:
            yield
        finally:
            self._using.pop()

    def choice(self) -> Any:
        """The model or spec to ask, or None for the rules."""
        if self._using:
            return self._using[-1]
        return tool_llm_choice(self.env_var, self.config_key)
