"""Step-by-step constrained decoding (cadenza/agent/stepwise.py): the grammar for each step offers
only references whose type the argument accepts, and the embedded LLM's plans come out valid."""

from pathlib import Path

import pytest

from cadenza.agent.stepwise import StepGrammar, ref_options
from cadenza.agent.taskbench import catalog_registry
from cadenza.media import Video
from cadenza.tools.registry import default_registry

ROOT = Path(__file__).resolve().parent.parent

llama_cpp = pytest.importorskip("llama_cpp")


def rule(grammar: StepGrammar, name: str) -> str:
    return grammar.rules[name]


def test_references_are_offered_only_where_their_type_fits():
    reg = default_registry()
    known = {"clip": "video", "music": "audio", "s1": reg.get("transcribe"), "s2": reg.get("extract_audio")}
    g = StepGrammar(3, list(reg), known)
    # transcribe gives a Transcript: its text fields feed text, the whole does not
    assert '"\\"$s1.text\\""' in rule(g, "v-text") and '"\\"$s1\\""' not in rule(g, "v-text")
    assert '"\\"$s1.segments\\""' in rule(g, "v-list-Segment-")
    audio = rule(g, "v-audio")
    assert '"\\"$s2\\""' in audio and '"\\"$music\\""' in audio and "$clip" not in audio and "$s1" not in audio
    assert '"\\"$clip\\""' in rule(g, "v-video") and "$music" not in rule(g, "v-video")
    assert '"\\"$clip\\""' in rule(g, "v-audio-video") and '"\\"$music\\""' in rule(g, "v-audio-video")
    # a literal may not start with $, so no reference can be written outside the offered ones
    assert "literal" in audio and '[^"$' in g.text()


def test_first_step_may_be_an_empty_plan_with_a_reason_and_the_last_closes_the_plan():
    tools = list(default_registry())
    assert '"{\\"steps\\":[],\\"reason\\":" string' in rule(StepGrammar(1, tools, {}), "root")
    assert "reason" not in rule(StepGrammar(2, tools, {}), "root")
    assert rule(StepGrammar(12, tools, {}, last=True), "root").endswith('"]}"')


@pytest.mark.parametrize("registry", ["builtin", "taskbench"])
def test_grammar_compiles_for_every_position(registry):
    reg = default_registry() if registry == "builtin" else catalog_registry(ROOT / "tests/data/taskbench/tools.json")
    tools = list(reg)
    known: dict = {"clip": "video"}
    for k in range(1, 13):
        llama_cpp.LlamaGrammar.from_string(StepGrammar(k, tools, known, last=k == 12).text(), verbose=False)
        known[f"s{k}"] = tools[k % len(tools)]
    assert len(ref_options(known)) >= 13


def test_embedded_llm_writes_a_valid_plan_first_time():
    from cadenza.llm.chat import get_chat_model
    from cadenza.agent.planner import Planner
    from cadenza.engine.validate import validate_plan
    reg = default_registry()
    files = {"interview": Video.from_path(ROOT / "examples/media/clip.mp4")}
    outcome = Planner(get_chat_model("local"), reg).plan(
        "Transcribe this interview, translate it into French and make French subtitles.", files)
    assert outcome.attempts == 1 and outcome.plan is not None
    assert validate_plan(outcome.plan, reg) == []
    tools = [s.tool for s in outcome.plan.steps]
    assert tools[0] == "transcribe" and "make_subtitles" in tools


def test_tool_bias_steers_the_embedded_llms_tool_choice():
    from cadenza.llm.chat import get_chat_model
    from cadenza.agent.planner import Planner

    files = {"interview": Video.from_path(ROOT / "examples/media/clip.mp4")}
    planner = Planner(get_chat_model("local"), default_registry(), max_repairs=0)
    request = "Take the sound track out of this video."
    assert [s.tool for s in planner.plan(request, files).plan.steps] == ["extract_audio"]
    planner.tool_bias = {"extract_audio": -20.0}  # as good as forbidden
    from cadenza.errors import PlanError

    try:
        plan = planner.plan(request, files).plan
    except PlanError as e:  # steered to a tool that cannot do it: its plan does not validate
        plan = e.last_plan
    assert plan is None or "extract_audio" not in [s.tool for s in plan.steps]


def test_request_too_long_for_the_context_is_a_clear_error():
    from cadenza.agent.examples import ExamplePool
    from cadenza.agent.planner import Planner
    from cadenza.errors import LLMError
    from cadenza.llm.chat import get_chat_model

    planner = Planner(get_chat_model("local"), default_registry(), ExamplePool([]), max_repairs=0)
    with pytest.raises(LLMError, match="embedded LLM failed: .*context window"):
        planner.plan("Read this aloud: " + "lorem ipsum dolor " * 3000)


def test_evaluated_system_prompt_is_saved_to_disk_and_loaded_by_a_fresh_context(tmp_path, monkeypatch):
    import os

    from cadenza.llm import local as local_llm
    from cadenza.llm.chat import get_chat_model
    from cadenza.agent.planner import Planner

    monkeypatch.setattr(local_llm, "prefix_dir", lambda: tmp_path)
    llm = get_chat_model("local")
    msgs, _, _ = Planner(llm, default_registry()).messages("Fade out the clip's sound", {})
    with llm._llama() as llama:
        prompt = local_llm.chat_prompt(llama, local_llm._chat(msgs))
        prefix = os.path.commonprefix([local_llm.chat_prompt(llama, local_llm._chat(msgs[:1])), prompt])
        assert msgs[0].content in prefix and "Fade out the clip" in prompt[len(prefix):]

        def greedy():
            return llama.create_completion(prompt, max_tokens=12, temperature=0.0)["choices"][0]["text"]

        llama.reset()  # as a new process starts
        assert local_llm.restore_prefix(llama, prompt, prefix, llm.model_file) == "saved"
        assert len(list(tmp_path.glob("*.state"))) == 1
        first = greedy()
        assert local_llm.restore_prefix(llama, prompt, prefix, llm.model_file) is None  # still in memory
        llama.reset()
        assert local_llm.restore_prefix(llama, prompt, prefix, llm.model_file) == "loaded"
        assert llama.n_tokens == len(llama.tokenize(prefix.encode(), special=True))
        assert greedy() == first
        # a damaged file is evaluated again, not trusted
        next(tmp_path.glob("*.state")).write_bytes(b"not a state")
        llama.reset()
        assert local_llm.restore_prefix(llama, prompt, prefix, llm.model_file) == "saved"
        assert greedy() == first


class _Vocab:
    """Stands in for llama.cpp's tokenizer: token id -> text."""
    pieces = ['{"id', '":"s1","tool":', '"Text', ' Par', 'aphraser",', ' Simpl', 'ifier",', '"Image', ' Color', 'izer",']

    def detokenize(self, tokens):
        return "".join(self.pieces[t] for t in tokens).encode()


def test_tool_name_bias_weighs_only_the_tool_name_tokens():
    import math

    import numpy as np

    from cadenza.agent.stepwise import ToolNameBias

    bias = ToolNameBias(_Vocab(), {"Text Paraphraser": -1.0, "Text Simplifier": 0.0, "Image Colorizer": 0.5})
    zeros = lambda: np.zeros(len(_Vocab.pieces), dtype=np.float32)  # noqa: E731
    prompt = [0, 1]  # the prompt's own '"tool":' does not count
    assert not bias(np.array(prompt), zeros()).any()
    assert not bias(np.array(prompt + [0]), zeros()).any()  # inside the step, before the name
    # choosing the first token of the name: each family by the mean weight of its names
    s = bias(np.array(prompt + [0, 1]), zeros())
    base = math.log((math.exp(-1) + 1 + math.exp(0.5)) / 3)
    assert s[2] == pytest.approx(math.log((math.exp(-1) + 1) / 2) - base)
    assert s[7] == pytest.approx(0.5 - base)
    assert s[3] == 0 and s[0] == 0  # tokens that cannot go on a name are left alone (the grammar rules them out)
    # within "Text ...": Paraphraser loses against Simplifier by the difference of their weights
    s = bias(np.array(prompt + [0, 1, 2]), zeros())
    assert s[5] - s[3] == pytest.approx(1.0)
    # the name is written: nothing more to weigh
    assert not bias(np.array(prompt + [0, 1, 2, 3, 4]), zeros()).any()


def test_greedy_grammar_writes_what_the_full_grammar_sampler_writes():
    """GreedyGrammar checks the model's best token first and the vocabulary only when the grammar
    rejects it; the text must be the same as llama.cpp's grammar sampler gives, including where the
    model's own choice is forbidden (here: it would answer in words, the grammar wants a number list)."""
    from llama_cpp import LlamaGrammar, LogitsProcessorList

    from cadenza.llm.chat import get_chat_model
    from cadenza.agent.stepwise import GreedyGrammar, StepGrammar

    model = get_chat_model("local")
    grammar = 'root ::= "[" num ("," num){2,5} "]"\nnum ::= [1-9] [0-9]?'
    tools = list(default_registry())
    step = StepGrammar(1, tools, {"clip": "video"}).text()
    prompts = [("Name three colours of the rainbow.", grammar),
               ("Plan: transcribe $clip, then translate the transcript into German.", step)]
    with model.raw_session([]) as (llama, _):
        for prompt, gbnf in prompts:
            full = llama.create_completion(prompt, max_tokens=48, temperature=0.0,
                                           grammar=LlamaGrammar.from_string(gbnf, verbose=False))
            lazy = GreedyGrammar(llama, gbnf)
            greedy = llama.create_completion(prompt, max_tokens=48, temperature=0.0,
                                             logits_processor=LogitsProcessorList([lazy]))
            assert greedy["choices"][0]["text"] == full["choices"][0]["text"]
            assert lazy.rejected > 0  # the slow path ran at least once (the grammar overruled the model)
