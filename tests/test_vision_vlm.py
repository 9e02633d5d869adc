"""The transformers caption backend (vlm_transformers.py) with tiny RANDOM-WEIGHT models built here from configs:
BLIP (a captioning model, no chat template) and Idefics3 (SmolVLM's architecture: a chat VLM with a template).
Tokenizers and processors are built locally (a word-level vocabulary, no download), saved with save_pretrained,
and loaded through exactly the code that loads real checkpoints. Random weights prove the wiring (shapes, token
ids, batching, residency, progress), never the words: no assertion reads a caption's words."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image as PILImage

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from cadenza.errors import CancelledError, InputError  # noqa: E402
from cadenza.media import Image  # noqa: E402
from cadenza.runtime import ModelRuntime  # noqa: E402
from cadenza.tools.base import ToolContext  # noqa: E402
from cadenza.tools.vision import vlm_transformers as vlm  # noqa: E402
from cadenza.tools.vision.caption import caption_image  # noqa: E402
from cadenza.tools.vision.common import CaptionRequest  # noqa: E402
from cadenza.workspace import Workspace  # noqa: E402

WORDS = "User Assistant : describe this picture in one or two sentences . a the of cat dog red blue sky".split()
INIT = 0.2  # wider than the default 0.02: the random models' answers then depend on the picture


def word_tokenizer(special: list[str], **tokens):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(special + ["[UNK]"] + WORDS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", **tokens), vocab


def build_blip(folder: Path) -> Path:
    import transformers as tf

    tok, vocab = word_tokenizer(["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"], pad_token="[PAD]", cls_token="[CLS]",
                                sep_token="[SEP]", mask_token="[MASK]", bos_token="[DEC]")
    small = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
                 initializer_range=INIT)
    config = tf.BlipConfig(text_config=dict(vocab_size=len(vocab), max_position_embeddings=64,
                                            bos_token_id=vocab["[DEC]"], pad_token_id=vocab["[PAD]"],
                                            sep_token_id=vocab["[SEP]"], eos_token_id=vocab["[SEP]"], **small),
                           vision_config=dict(image_size=32, patch_size=8, **small), projection_dim=32,
                           initializer_range=INIT)
    torch.manual_seed(0)
    tf.BlipForConditionalGeneration(config).eval().save_pretrained(folder)
    processor = tf.BlipProcessor(image_processor=tf.BlipImageProcessorPil(size={"height": 32, "width": 32}),
                                 tokenizer=tok)
    processor.save_pretrained(folder)
    return folder


CHAT_TEMPLATE = ("<|im_start|>{% for m in messages %}{{ m['role'] | capitalize }} :{% for c in m['content'] %}"
                 "{% if c['type'] == 'image' %}<image>{% else %} {{ c['text'] }}{% endif %}{% endfor %}"
                 "<end_of_utterance> {% endfor %}{% if add_generation_prompt %}Assistant :{% endif %}")


def build_idefics3(folder: Path) -> Path:
    import transformers as tf

    rows = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    special = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>",
               "<global-img>", *rows]
    tok, vocab = word_tokenizer(special, pad_token="<|endoftext|>", bos_token="<|im_start|>",
                                eos_token="<end_of_utterance>", additional_special_tokens=special[1:])
    config = tf.Idefics3Config(
        text_config=dict(model_type="llama", vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=vocab["<|im_start|>"], eos_token_id=vocab["<end_of_utterance>"],
                         pad_token_id=vocab["<|endoftext|>"], initializer_range=INIT),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8, initializer_range=INIT),
        scale_factor=2, image_token_id=vocab["<image>"], initializer_range=INIT)
    torch.manual_seed(0)
    tf.Idefics3ForConditionalGeneration(config).eval().save_pretrained(folder)
    image_processor = tf.Idefics3ImageProcessorPil(size={"longest_edge": 32}, max_image_size={"longest_edge": 32},
                                                   do_image_splitting=False)
    # 32 px, 8 px patches, pixel shuffle by 2: (32 / 8)^2 / 2^2 = 4 image tokens
    tf.Idefics3Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=4,
                         chat_template=CHAT_TEMPLATE).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vlm-models")
    return {"blip": build_blip(root / "tiny-blip"), "idefics3": build_idefics3(root / "tiny-idefics3")}


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-empty"))
    monkeypatch.delenv("CADENZA_VISION_MODEL", raising=False)


def pictures(n: int = 2) -> list[PILImage.Image]:
    rng = np.random.default_rng(3)
    out = [PILImage.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)),
           PILImage.new("RGB", (48, 48), (200, 200, 200)), PILImage.new("RGB", (40, 64), (10, 20, 200))]
    return out[:n]


def _check(ctx):
    if ctx.cancelled.is_set():
        raise CancelledError("cancelled")


def make_ctx(runtime: ModelRuntime | None = None, progress=None) -> SimpleNamespace:
    ctx = SimpleNamespace(runtime=runtime or ModelRuntime(device="cpu"), device="cpu", notes=[],
                          cancelled=threading.Event())
    ctx.note = ctx.notes.append
    ctx.check_cancelled = lambda: _check(ctx)
    if progress is not None:
        ctx.progress = progress
    return ctx


# -- loading and the tool ----------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["blip", "idefics3"])
def test_random_weight_model_captions_through_caption_image(models, family, tmp_path, monkeypatch):
    folder = models[family]
    monkeypatch.setenv("CADENZA_MODELS_DIR", str(folder.parent))  # a model folder is let in from there
    path = tmp_path / "pic.png"
    pictures(1)[0].save(path)
    out = caption_image(image=str(path), model=str(folder))
    f = out.findings if hasattr(out, "findings") else out["findings"]
    assert f["backend"] == "transformers" and f["model"] == str(folder) and f["family"] == family
    assert 1 <= f["generated_tokens"] <= vlm.CaptionRequest.max_new_tokens
    assert isinstance(out.text if hasattr(out, "text") else out["text"], str)


def test_memory_estimate_comes_from_the_weight_files(models):
    folder = models["blip"]
    size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    assert vlm.stored_dtype(str(folder)) == "float32"
    assert vlm.memory_gb(str(folder), "float16") == pytest.approx(size / 2 / 2**30 + vlm.ACTIVATIONS_GB, abs=0.01)
    assert vlm.memory_gb(str(folder), "float32") == pytest.approx(size / 2**30 + vlm.ACTIVATIONS_GB, abs=0.01)


def test_default_model_comes_from_the_environment(models, monkeypatch):
    assert "CADENZA_VISION_MODEL" in vlm.BACKEND.unavailable_reason()  # nothing cached, nothing set
    monkeypatch.setenv("CADENZA_VISION_MODEL", str(models["blip"]))
    assert vlm.BACKEND.unavailable_reason() is None
    monkeypatch.setenv("CADENZA_VISION_MODEL", "nobody/no-such-vlm")
    why = vlm.BACKEND.unavailable_reason()
    assert "nobody/no-such-vlm" in why and "\n" not in why


def test_an_unknown_model_is_one_line_and_nothing_is_loaded(monkeypatch):
    calls = []
    monkeypatch.setattr(vlm, "load", lambda *a: calls.append(a))
    with pytest.raises(InputError) as e:
        vlm.caption(make_ctx(), CaptionRequest(images=pictures(1), model="nobody/no-such-vlm"))
    assert "nobody/no-such-vlm" in str(e.value) and "\n" not in str(e.value) and not calls


def test_a_text_only_model_is_refused_in_one_line(tmp_path):
    import transformers as tf

    tok, vocab = word_tokenizer(["<pad>"], pad_token="<pad>")
    folder = tmp_path / "tiny-gpt2"
    tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=len(vocab), n_embd=16, n_layer=1, n_head=2)).save_pretrained(folder)
    tok.save_pretrained(folder)
    with pytest.raises(InputError) as e:
        vlm.caption(make_ctx(), CaptionRequest(images=pictures(1), model=str(folder)))
    assert "tiny-gpt2" in str(e.value) and "not a vision model" in str(e.value) and "\n" not in str(e.value)


# -- batching, prompt, residency ---------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["blip", "idefics3"])
def test_a_batch_gives_each_picture_the_ids_it_gets_alone(models, family):
    ctx = make_ctx()
    res = vlm.load(str(models[family]), "cpu", "float32")
    imgs = pictures(3)
    together = vlm.generate_ids(ctx, res, [[i] for i in imgs], None, 6)
    alone = [vlm.generate_ids(ctx, res, [[i]], None, 6)[0] for i in imgs]
    assert len(together) == 3 and together == alone
    assert all(1 <= len(ids) <= 6 for ids in together)
    assert together[0] != together[1]  # the answer depends on the picture (so the order is checked too)
    caps = vlm.caption(ctx, CaptionRequest(images=imgs, model=str(models[family]), max_new_tokens=6))
    assert [c.text for c in caps] == [vlm.decode(res, ids) for ids in alone]
    assert [c.findings["generated_tokens"] for c in caps] == [len(ids) for ids in alone]


def test_prompts_of_different_lengths_are_left_padded_and_answer_as_alone(models):
    ctx = make_ctx()
    res = vlm.load(str(models["idefics3"]), "cpu", "float32")
    ip = res.processor.image_processor  # split into 32 px tiles: a wide picture gets fewer tiles than a square one
    ip.do_image_splitting, ip.size = True, {"longest_edge": 64}
    rng = np.random.default_rng(5)
    imgs = [PILImage.fromarray(rng.integers(0, 255, (50, 200, 3), dtype=np.uint8)),
            PILImage.fromarray(rng.integers(0, 255, (50, 50, 3), dtype=np.uint8))]
    inputs = vlm._inputs(res, [[i] for i in imgs], None, vlm.PROMPT)
    lengths = inputs["attention_mask"].sum(1).tolist()
    assert lengths[0] < lengths[1] and int(inputs["input_ids"][0, 0]) == res.processor.tokenizer.pad_token_id
    together = vlm.generate_ids(ctx, res, [[i] for i in imgs], None, 6)
    assert together == [vlm.generate_ids(ctx, res, [[i]], None, 6)[0] for i in imgs]


def test_the_chat_prompt_holds_the_question_and_is_cut_off_the_answer(models):
    ctx = make_ctx()
    res = vlm.load(str(models["idefics3"]), "cpu", "float32")
    assert res.chat and res.family == "idefics3" and res.processor.tokenizer.padding_side == "left"
    inputs = vlm._inputs(res, [[pictures(1)[0]]], "describe the sky", vlm.PROMPT)
    prompt = inputs["input_ids"][0].tolist()
    tok = res.processor.tokenizer
    assert tok.convert_ids_to_tokens(prompt)[-6:] == ["describe", "the", "sky", "<end_of_utterance>", "Assistant", ":"]
    assert prompt.count(tok.convert_tokens_to_ids("<image>")) == 4
    ids = vlm.generate_ids(ctx, res, [[pictures(1)[0]]], "describe the sky", 5)[0]
    full = res.model.generate(**inputs, max_new_tokens=5, do_sample=False)[0].tolist()
    assert full[:len(prompt)] == prompt and ids == full[len(prompt):][:len(ids)] and len(ids) <= 5


def test_blip_captions_but_notes_it_cannot_answer_a_question(models):
    ctx = make_ctx()
    caps = vlm.caption(ctx, CaptionRequest(images=pictures(1), question="what colour is it?",
                                           model=str(models["blip"]), max_new_tokens=4))
    assert len(caps) == 1 and caps[0].findings["question"] is None
    assert any("does not answer questions" in n and "blip" in n for n in ctx.notes)


def test_the_model_stays_resident(models, monkeypatch):
    loads = []
    real = vlm.load

    def counting(name, device, dtype):
        loads.append(name)
        return real(name, device, dtype)

    monkeypatch.setattr(vlm, "load", counting)
    ctx = make_ctx()
    for _ in range(2):
        vlm.caption(ctx, CaptionRequest(images=pictures(1), model=str(models["blip"]), max_new_tokens=3))
    assert loads == [str(models["blip"])]
    assert [m.key for m in ctx.runtime.loaded()] == [vlm.runtime_key(str(models["blip"]))]
    assert ctx.runtime.loaded()[0].memory_gb == vlm.memory_gb(str(models["blip"]), "float32")


# -- scenes, progress, cancellation ------------------------------------------------------------------------

def test_a_scene_is_described_once_by_a_chat_model_and_per_frame_by_blip(models, monkeypatch):
    calls = []
    real = vlm.generate_ids

    def counting(ctx, res, groups, *a, **k):
        calls.append([len(g) for g in groups])
        return real(ctx, res, groups, *a, **k)

    monkeypatch.setattr(vlm, "generate_ids", counting)
    ctx = make_ctx()
    frames = pictures(3)
    caps = vlm.caption(ctx, CaptionRequest(images=frames, model=str(models["idefics3"]), scene=True, max_new_tokens=4))
    assert calls == [[3]]  # one prompt holding the three frames
    assert len(caps) == 3 and len({c.text for c in caps}) == 1 and caps[0].findings["scene_frames"] == 3
    calls.clear()
    caps = vlm.caption(ctx, CaptionRequest(images=frames, model=str(models["blip"]), scene=True, max_new_tokens=4))
    assert calls == [[1, 1, 1]] and len(caps) == 3  # BLIP takes one picture: each frame, in one batch


def test_each_token_reports_progress_and_a_cancel_stops_generation(models):
    seen = []
    ctx = make_ctx(progress=lambda done, total: seen.append((done, total)))
    caps = vlm.caption(ctx, CaptionRequest(images=pictures(2), model=str(models["idefics3"]), max_new_tokens=5))
    assert len(caps) == 2 and seen and seen[-1][1] == 5
    assert [d for d, _ in seen] == list(range(1, len(seen) + 1)) and len(seen) <= 5

    def cancel_after_two(done, total):
        if done == 2:
            ctx.cancelled.set()

    ctx.progress = cancel_after_two
    with pytest.raises(CancelledError):
        vlm.caption(ctx, CaptionRequest(images=pictures(1), model=str(models["idefics3"]), max_new_tokens=20))


def test_large_pictures_are_scaled_down_first():
    big = PILImage.new("RGB", (4000, 1000))
    assert vlm._fit(big).size == (vlm.MAX_SIDE, vlm.MAX_SIDE // 4)
    assert vlm._fit(PILImage.new("RGB", (50, 40))).size == (50, 40)


def test_through_the_tool_context_the_runtime_keeps_it(models, tmp_path, monkeypatch):
    monkeypatch.setenv("CADENZA_MODELS_DIR", str(models["blip"].parent))
    path = tmp_path / "pic.png"
    pictures(1)[0].save(path)
    runtime = ModelRuntime(device="cpu")
    ctx = ToolContext(workspace=Workspace.for_run(tmp_path / "out", {"image": path}), backend="offline",
                      runtime=runtime)
    out = caption_image.forward(image=Image.from_path(path), ctx=ctx, model=str(models["blip"]))
    assert out.findings["model"] == str(models["blip"])  # a model named goes to transformers, whatever the backend
    assert [m.key for m in runtime.loaded()] == [vlm.runtime_key(str(models["blip"]))]
