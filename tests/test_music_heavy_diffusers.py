"""Stable Audio Open and AudioLDM 2 (through diffusers) on CPU with tiny random-weight pipelines: built
from configs in a temporary folder, saved with `save_pretrained` and loaded through exactly the backends'
own loading code (`from_pretrained(folder, local_files_only=True)`, with HF_HUB_OFFLINE=1). Random
weights prove the wiring (lengths, prompts, seeds, cancellation, model residency), not the quality: the
test names say so. MusicGen: test_music_heavy_musicgen.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cadenza.errors import BackendUnavailableError, CancelledError, InputError
from cadenza.runtime import ModelRuntime

pytestmark = pytest.mark.filterwarnings("ignore:Should have:UserWarning")  # torchsde float noise in the scheduler
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from cadenza.tools.music.common import MusicRequest  # noqa: E402
import tiny_music_models  # noqa: E402
from tiny_music_models import DEVICES, ctx_for, resident, tiny_t5_config, tiny_t5_tokenizer  # noqa: E402

# the fixtures shared with test_music_heavy_musicgen.py (pytest looks them up by name in this module)
one_thread = tiny_music_models.one_thread  # autouse
offline = tiny_music_models.offline


# -- Stable Audio Open ---------------------------------------------------------------------------
# Tiny pipeline (after diffusers' own fast tests): a 2-layer DiT over 250 latent frames, an Oobleck
# VAE with hop 8 at 1 kHz (a 2 s window), a 1-layer T5 encoder, the released model's scheduler.

SA_RATE = 1000


@pytest.fixture(scope="module")
def tiny_stable_audio(tmp_path_factory):
    pytest.importorskip("diffusers")
    pytest.importorskip("torchsde")  # CosineDPMSolverMultistepScheduler, as stable-audio-open-1.0 uses
    from diffusers import (AutoencoderOobleck, CosineDPMSolverMultistepScheduler, StableAudioDiTModel,
                           StableAudioPipeline, StableAudioProjectionModel)
    from transformers import T5EncoderModel

    tok = tiny_t5_tokenizer()
    tok.model_max_length = 16
    torch.manual_seed(0)
    pipe = StableAudioPipeline(
        transformer=StableAudioDiTModel(sample_size=250, in_channels=3, num_layers=2, attention_head_dim=4,
                                        num_attention_heads=2, num_key_value_attention_heads=2, out_channels=3,
                                        cross_attention_dim=4, time_proj_dim=8, global_states_input_dim=8,
                                        cross_attention_input_dim=4),
        scheduler=CosineDPMSolverMultistepScheduler(solver_order=2, prediction_type="v_prediction", sigma_data=1.0,
                                                    sigma_schedule="exponential"),
        vae=AutoencoderOobleck(encoder_hidden_size=6, downsampling_ratios=[2, 4], decoder_channels=3,
                               decoder_input_channels=3, audio_channels=2, channel_multiples=[2, 4],
                               sampling_rate=SA_RATE),
        text_encoder=T5EncoderModel(tiny_t5_config(len(tok))), tokenizer=tok,
        projection_model=StableAudioProjectionModel(text_encoder_dim=16, conditioning_dim=4, min_value=0,
                                                    max_value=512))
    path = tmp_path_factory.mktemp("stable-audio")
    pipe.save_pretrained(path)
    return path


@pytest.fixture
def few_steps(monkeypatch):
    from cadenza.tools.music import stable_audio

    monkeypatch.setattr(stable_audio, "STEPS", 3)
    return stable_audio


def test_stable_audio_random_weights_music_and_sound_share_one_load(tiny_stable_audio, offline, few_steps,
                                                                     monkeypatch, tmp_path):
    sa = few_steps
    monkeypatch.setenv(sa.ENV, str(tiny_stable_audio))
    assert sa.BACKEND.unavailable_reason() is None
    loads, prompts = [], []
    real = sa.load

    def load(name, d, t):
        resident = real(name, d, t)
        loads.append(name)
        pipe = resident.pipe
        encode = pipe.encode_prompt
        pipe.encode_prompt = lambda *a, **k: prompts.append((a[0], a[3])) or encode(*a, **k)
        return resident

    monkeypatch.setattr(sa, "load", load)
    ctx = ctx_for(tmp_path)
    music = sa.compose(ctx, MusicRequest("slow jazz", 1.5, seed=1))
    sound = sa.generate_sound(ctx, MusicRequest("rain on a tin roof", 0.75, seed=1))
    assert loads == [str(tiny_stable_audio)]  # loaded once, kept for the second call
    assert music.rate == sound.rate == SA_RATE
    assert music.samples.shape == (1500, 2) and sound.samples.shape == (750, 2)  # 44.1 kHz stereo in real life
    assert music.samples.dtype == np.float32 and np.abs(music.samples).max() <= 1.0
    assert prompts == [("slow jazz", "low quality"), ("rain on a tin roof", "low quality")]
    assert music.settings["steps"] == 3 and music.settings["seed"] == 1


def test_stable_audio_random_weights_seed_reproducible(tiny_stable_audio, offline, few_steps, tmp_path):
    sa, ctx = few_steps, ctx_for(tmp_path)
    req = dict(model=str(tiny_stable_audio))
    a = sa.generate_sound(ctx, MusicRequest("door slam", 1.0, seed=5, **req))
    b = sa.generate_sound(ctx, MusicRequest("door slam", 1.0, seed=5, **req))
    c = sa.generate_sound(ctx, MusicRequest("door slam", 1.0, seed=6, **req))
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.array_equal(a.samples, c.samples)


def test_stable_audio_random_weights_refuses_more_than_a_window(tiny_stable_audio, offline, few_steps, tmp_path):
    sa, ctx = few_steps, ctx_for(tmp_path)
    with pytest.raises(InputError, match=r"at most 2\.00 s in one piece .* use musicgen"):
        sa.compose(ctx, MusicRequest("rock", 2.5, model=str(tiny_stable_audio)))
    with pytest.raises(InputError, match="at most 47 s"):
        sa.compose(ctx, MusicRequest("rock", 60.0, model=str(tiny_stable_audio)))
    with pytest.raises(InputError, match="cannot follow a melody or continue audio"):
        sa.compose(ctx, MusicRequest("rock", 1.0, melody=np.ones(100, np.float32), melody_rate=100,
                                     model=str(tiny_stable_audio)))


def test_stable_audio_random_weights_cancel_stops_denoising(tiny_stable_audio, offline, few_steps, monkeypatch,
                                                            tmp_path):
    sa, ctx = few_steps, ctx_for(tmp_path)
    monkeypatch.setattr(sa, "STEPS", 10)
    seen = []

    def progress(done, total):
        seen.append((done, total))
        if done == 2:
            ctx.cancelled.set()

    ctx.progress = progress
    with pytest.raises(CancelledError):
        sa.generate_sound(ctx, MusicRequest("wind", 1.0, model=str(tiny_stable_audio)))
    assert seen == [(1, 10), (2, 10)]  # the third step's callback stopped it


def test_stable_audio_without_a_model_says_what_to_set(monkeypatch, tmp_path):
    from cadenza.tools.music import stable_audio as sa

    monkeypatch.delenv(sa.ENV, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    why = sa.BACKEND.unavailable_reason()
    assert why is not None
    if "needs the Python package" not in why:  # diffusers is installed: the model is what is missing
        assert why.startswith("no Stable Audio model here: set CADENZA_STABLE_AUDIO_MODEL")
        assert "stabilityai/stable-audio-open-1.0" in why
    with pytest.raises(BackendUnavailableError, match="no Stable Audio model here"):
        sa.generate_sound(ctx_for(tmp_path), MusicRequest("rain", 1.0))


# -- AudioLDM 2 ----------------------------------------------------------------------------------
# Tiny pipeline (after diffusers' own fast tests): a 2-block U-Net, a 2-block VAE, a CLAP model with a
# 1-layer text branch and a Roberta byte-level tokenizer over single letters, a 1-layer T5 encoder,
# a 1-layer GPT-2 saved as GPT2Model (as some AudioLDM 2 folders are), a 16 kHz HiFi-GAN vocoder.


@pytest.fixture(scope="module")
def tiny_audioldm(tmp_path_factory):
    pytest.importorskip("diffusers")
    from diffusers import (AudioLDM2Pipeline, AudioLDM2ProjectionModel, AudioLDM2UNet2DConditionModel, AutoencoderKL,
                           DDIMScheduler)
    from transformers import (ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapTextConfig, GPT2Config,
                              GPT2Model, RobertaTokenizer, SpeechT5HifiGan, SpeechT5HifiGanConfig, T5EncoderModel)

    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    for piece in list(letters) + ["\u0120" + c for c in letters]:
        vocab[piece] = len(vocab)
    tok = RobertaTokenizer(vocab=vocab, merges=[], model_max_length=16)
    tok2 = tiny_t5_tokenizer()
    tok2.model_max_length = 16
    t5 = tiny_t5_config(len(tok2))
    t5.d_model = 32
    torch.manual_seed(0)
    clap = ClapModel(ClapConfig(
        text_config=ClapTextConfig(bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=16, intermediate_size=32,
                                   num_attention_heads=2, num_hidden_layers=1, vocab_size=len(vocab), projection_dim=16,
                                   max_position_embeddings=40).to_dict(),
        audio_config=ClapAudioConfig(spec_size=64, window_size=4, num_mel_bins=64, intermediate_size=32, depths=[1, 1],
                                     num_attention_heads=[2, 2], num_hidden_layers=2, hidden_size=32, projection_dim=16,
                                     patch_size=2, patch_stride=2, patch_embed_input_channels=4).to_dict(),
        projection_dim=16))
    language_model = GPT2Model(GPT2Config(n_embd=16, n_head=2, n_layer=1, vocab_size=100, n_ctx=99, n_positions=99))
    language_model.config.max_new_tokens = 8
    pipe = AudioLDM2Pipeline(
        unet=AudioLDM2UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                                           sample_size=32, in_channels=4, out_channels=4, attention_head_dim=4,
                                           down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                           up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                           cross_attention_dim=([None, 16, 32], [None, 16, 32])),
        scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                                set_alpha_to_one=False),
        vae=AutoencoderKL(block_out_channels=[8, 16], norm_num_groups=4, in_channels=1, out_channels=1,
                          latent_channels=4, down_block_types=["DownEncoderBlock2D"] * 2,
                          up_block_types=["UpDecoderBlock2D"] * 2),
        text_encoder=clap, tokenizer=tok, feature_extractor=ClapFeatureExtractor(feature_size=64, hop_length=7900),
        text_encoder_2=T5EncoderModel(t5), tokenizer_2=tok2, language_model=language_model,
        projection_model=AudioLDM2ProjectionModel(text_encoder_dim=16, text_encoder_1_dim=32, langauge_model_dim=16),
        vocoder=SpeechT5HifiGan(SpeechT5HifiGanConfig(
            model_in_dim=8, sampling_rate=16000, upsample_initial_channel=16, upsample_rates=[2, 2],
            upsample_kernel_sizes=[4, 4], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
            normalize_before=False)))
    path = tmp_path_factory.mktemp("audioldm2")
    pipe.save_pretrained(path)
    assert json.loads((path / "model_index.json").read_text())["language_model"] == ["transformers", "GPT2Model"]
    return path


@pytest.fixture
def aldm(monkeypatch):
    from cadenza.tools.music import audioldm

    monkeypatch.setattr(audioldm, "STEPS", 3)
    return audioldm


def test_audioldm2_random_weights_sound_loads_once(tiny_audioldm, offline, aldm, monkeypatch, tmp_path):
    monkeypatch.setenv(aldm.ENV, str(tiny_audioldm))
    assert aldm.BACKEND.unavailable_reason() is None
    loads, negatives = [], []
    real = aldm.load

    def load(name, d, t):
        resident = real(name, d, t)
        pipe = resident.pipe
        loads.append(pipe)
        encode = pipe.encode_prompt
        pipe.encode_prompt = lambda *a, **k: negatives.append(a[5]) or encode(*a, **k)  # (prompt, .., negative_prompt)
        return resident

    monkeypatch.setattr(aldm, "load", load)
    ctx = ctx_for(tmp_path)
    a = aldm.generate_sound(ctx, MusicRequest("rain on a tin roof", 0.5, seed=3))
    b = aldm.generate_sound(ctx, MusicRequest("rain on a tin roof", 0.5, seed=3))
    c = aldm.generate_sound(ctx, MusicRequest("rain on a tin roof", 0.5, seed=4))
    assert len(loads) == 1 and negatives == ["low quality"] * 3
    assert a.rate == 16000 and a.samples.shape == (8000,) and a.samples.dtype == np.float32  # mono: (n,)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.array_equal(a.samples, c.samples)
    # a folder naming GPT2Model still gets its weights, in the class the pipeline can generate with
    from transformers import GPT2Model

    saved = GPT2Model.from_pretrained(tiny_audioldm, subfolder="language_model", local_files_only=True)
    lm = loads[0].language_model
    assert type(lm).__name__ == "GPT2LMHeadModel"
    assert torch.equal(lm.transformer.h[0].attn.c_attn.weight, saved.h[0].attn.c_attn.weight)


def test_audioldm2_random_weights_cancel_stops_denoising(tiny_audioldm, offline, aldm, tmp_path):
    ctx = ctx_for(tmp_path)
    ctx.progress = lambda done, total: ctx.cancelled.set()
    with pytest.raises(CancelledError):
        aldm.generate_sound(ctx, MusicRequest("wind", 0.5, model=str(tiny_audioldm)))


def test_audioldm2_without_a_model_says_what_to_set(monkeypatch, tmp_path):
    from cadenza.tools.music import audioldm

    monkeypatch.delenv(audioldm.ENV, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    why = audioldm.BACKEND.unavailable_reason()
    assert why is not None
    if "needs the Python package" not in why:
        assert why.startswith("no AudioLDM 2 model here: set CADENZA_AUDIOLDM_MODEL") and "cvssp/audioldm2" in why
    with pytest.raises(BackendUnavailableError, match="no AudioLDM 2 model here"):
        audioldm.generate_sound(ctx_for(tmp_path), MusicRequest("rain", 1.0))
    with pytest.raises(InputError, match="at most 30 s"):
        audioldm.generate_sound(ctx_for(tmp_path), MusicRequest("rain", 31.0))


# -- float16, as on a GPU: the runtime's dtype reaches every input (prompt audio, chroma, codes) ---
# (on CPU with dtype float16, and on CUDA when there is one: tiny_music_models.DEVICES)


@pytest.mark.parametrize("device", DEVICES)
def test_diffusers_random_weights_float16(device, tiny_stable_audio, tiny_audioldm, offline, few_steps, aldm,
                                          tmp_path):
    runtime = ModelRuntime(device=device, dtype="auto" if device == "cuda" else "float16")
    ctx = ctx_for(tmp_path, runtime)
    music = few_steps.compose(ctx, MusicRequest("slow jazz", 1.5, seed=1, model=str(tiny_stable_audio)))
    sound = aldm.generate_sound(ctx, MusicRequest("rain", 0.5, seed=1, model=str(tiny_audioldm)))
    assert music.samples.shape == (1500, 2) and np.isfinite(music.samples).all()
    assert sound.samples.shape == (8000,) and np.isfinite(sound.samples).all()
    sa = resident(runtime, "stable-audio:").model.pipe
    ldm = resident(runtime, "audioldm2:").model.pipe
    assert sa.transformer.dtype == torch.float16 and ldm.unet.dtype == torch.float16
    assert str(sa.transformer.device).startswith(device) and str(ldm.unet.device).startswith(device)
