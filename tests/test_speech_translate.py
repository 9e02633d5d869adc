"""translate: the logic with a scripted LLM (batches, timings kept, count repairs, long texts);
one short real run with the embedded LLM."""

import json

import pytest

from cadenza.llm.testing import ScriptedChatModel
from cadenza.errors import InputError
from cadenza.tools.speech import translate
from cadenza.tools.speech.segments import Segment
from cadenza.tools.speech.translate import MAX_CHARS, MAX_LINES, batches, split_text, translation_llm
from speech_util import call


def sent_lines(messages):
    return json.loads(messages[-1].content)["lines"]


def upper(messages):
    """A fake translator: upper-cases each line it is sent (and checks the prompt)."""
    assert "into German" in messages[0].content
    return json.dumps({"lines": [f"DE:{line.upper()}" for line in sent_lines(messages)]})


def test_segments_keep_their_times_and_go_in_bounded_batches():
    segs = [Segment(start=i * 2.0, end=i * 2.0 + 1.5, text=f"Line number {i}.",
                    words=[{"start": i * 2.0, "end": i * 2.0 + 0.5, "text": "Line"}]) for i in range(30)]
    segs[3] = Segment(start=6.0, end=7.5, text="  ")  # empty text stays empty, never sent
    n_calls = len(list(batches([s.text for s in segs])))
    assert n_calls == 3
    with ScriptedChatModel([upper] * n_calls) as llm, translation_llm(llm):
        out, notes = call(translate, segments=[s.model_dump() for s in segs], target_language="German",
                          source_language="en")
    assert out["language"] == "de"
    got = out["segments"]
    assert [(s.start, s.end) for s in got] == [(s.start, s.end) for s in segs]
    assert got[0].text == "DE:LINE NUMBER 0." and got[3].text == "" and got[0].words is None
    assert all(len(sent_lines(c)) <= MAX_LINES for c in llm.calls)
    assert out["text"].startswith("DE:LINE NUMBER 0. DE:LINE NUMBER 1.")


def test_a_wrong_number_of_lines_is_asked_again_then_line_by_line():
    segs = [{"start": 0, "end": 1, "text": "Hello."}, {"start": 1, "end": 2, "text": "Goodbye."}]
    short = json.dumps({"lines": ["Hallo."]})
    with ScriptedChatModel([short, short, '{"lines": ["Hallo."]}', '{"lines": ["Auf Wiedersehen."]}']) as llm, \
            translation_llm(llm):
        out, _ = call(translate, segments=segs, target_language="de")
    assert [s.text for s in out["segments"]] == ["Hallo.", "Auf Wiedersehen."]
    assert [len(sent_lines(c)) for c in llm.calls] == [2, 2, 1, 1]


def test_plain_text_keeps_its_paragraphs():
    text = "First sentence. Second one!\n\nA new paragraph?"
    assert split_text(text) == (["First sentence.", "Second one!", "A new paragraph?"], [" ", "\n\n", ""])
    with ScriptedChatModel([upper]) as llm, translation_llm(llm):
        out, _ = call(translate, text=text, target_language="de")
    assert out["text"] == "DE:FIRST SENTENCE. DE:SECOND ONE!\n\nDE:A NEW PARAGRAPH?"
    assert out["segments"] == []


def test_a_text_of_many_thousands_of_words_is_translated_in_chunks():
    text = " ".join(f"This is sentence number {i} of a long report about the harbour." for i in range(700))
    assert len(text.split()) > 7000
    sentences, _ = split_text(text)
    n = len(list(batches(sentences)))
    with ScriptedChatModel([upper] * n) as llm, translation_llm(llm):
        out, _ = call(translate, text=text, target_language="de")
    assert n > 50 and all(len(" ".join(sent_lines(c))) <= MAX_CHARS + 100 for c in llm.calls)
    assert out["text"].count("DE:") == 700


@pytest.mark.parametrize("kwargs,match", [
    ({"target_language": "de"}, "give text or segments"),
    ({"target_language": "de", "text": "Hi.", "segments": [{"start": 0, "end": 1, "text": "x"}]}, "not both"),
    ({"target_language": "de", "segments": [{"start": 2, "end": 1, "text": "x"}]}, "segment ends"),
])
def test_bad_input_is_a_one_line_input_error(kwargs, match):
    with ScriptedChatModel([]) as llm, translation_llm(llm):
        with pytest.raises(InputError, match=match):
            call(translate, **kwargs)


def test_same_language_is_returned_unchanged_with_a_note():
    with ScriptedChatModel([]) as llm, translation_llm(llm):
        out, notes = call(translate, text="Hallo Welt.", target_language="German", source_language="de")
    assert out["text"] == "Hallo Welt." and "unchanged" in notes[0]


def test_embedded_llm_translates_a_subtitle_line(monkeypatch):
    pytest.importorskip("llama_cpp")
    monkeypatch.setenv("CADENZA_LLM", "local")
    out, _ = call(translate, segments=[{"start": 1.0, "end": 2.5, "text": "Good morning, my friend."}],
                  target_language="de", source_language="en")
    seg = out["segments"][0]
    assert (seg.start, seg.end) == (1.0, 2.5)
    assert "morgen" in seg.text.lower(), seg.text
