"""MusicGen (mono, stereo, melody) on CPU with tiny random-weight models: built from configs in a
temporary folder, saved with `save_pretrained` and loaded through exactly the backend's own loading code
(`from_pretrained(folder, local_files_only=True)`, with HF_HUB_OFFLINE=1). Random weights prove the
wiring (lengths, windows, prompts, seeds, cancellation, model residency), not the quality: the test
names say so. Stable Audio Open and AudioLDM 2: test_music_heavy_diffusers.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cadenza.errors import BackendUnavailableError, CancelledError, InputError
from cadenza.runtime import ModelRuntime
from cadenza.tools.base import ToolContext

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from cadenza.tools.music import hf, musicgen  # noqa: E402
from cadenza.tools.music.common import MusicRequest  # noqa: E402
import tiny_music_models  # noqa: E402
from tiny_music_models import DEVICES, ctx_for, resident, tiny_t5_config, tiny_t5_tokenizer  # noqa: E402

# the fixtures shared with test_music_heavy_diffusers.py (pytest looks them up by name in this module)
one_thread = tiny_music_models.one_thread  # autouse
offline = tiny_music_models.offline


# -- MusicGen ------------------------------------------------------------------------------------
# Tiny codec: 8 kHz, hop 320 (25 token frames a second: not 50, so the backend must read the codec's
# frame rate), 4 codebooks of 64 codes (target bandwidth 0.6 kbps = 4 x 6 bits x 25 frames).

RATE, HOP = 8000, 320


def _tiny_musicgen(path, *, stereo: bool = False, melody: bool = False):
    from transformers import (EncodecConfig, EncodecFeatureExtractor, MusicgenConfig, MusicgenDecoderConfig,
                              MusicgenForConditionalGeneration, MusicgenMelodyConfig, MusicgenMelodyDecoderConfig,
                              MusicgenMelodyForConditionalGeneration, MusicgenProcessor)

    tok = tiny_t5_tokenizer()
    codec = EncodecConfig(sampling_rate=RATE, audio_channels=1, num_filters=4, hidden_size=16,
                          upsampling_ratios=[8, 5, 4, 2], codebook_size=64, codebook_dim=16, num_residual_layers=1,
                          num_lstm_layers=1, target_bandwidths=[0.6])
    assert codec.frame_rate == 25 and codec.num_quantizers == 4
    channels = 2 if stereo else 1
    dec = dict(vocab_size=64, pad_token_id=64, bos_token_id=64, num_hidden_layers=2, ffn_dim=32, num_attention_heads=2,
               hidden_size=16, num_codebooks=4 * channels, audio_channels=channels, max_position_embeddings=512)
    torch.manual_seed(0)
    if melody:
        cfg = MusicgenMelodyConfig(text_encoder=tiny_t5_config(len(tok)), audio_encoder=codec,
                                   decoder=MusicgenMelodyDecoderConfig(**dec), num_chroma=12, chroma_length=40)
        model = MusicgenMelodyForConditionalGeneration(cfg)
    else:
        cfg = MusicgenConfig(text_encoder=tiny_t5_config(len(tok)), audio_encoder=codec,
                             decoder=MusicgenDecoderConfig(**dec))
        model = MusicgenForConditionalGeneration(cfg)
    with torch.no_grad():  # a fresh codec's codebooks are all zeros: every code would decode to the same sound
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.normal_()
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
    # as the released checkpoints' generation_config.json
    model.generation_config.update(do_sample=True, guidance_scale=3.0, max_length=1500, decoder_start_token_id=64,
                                   pad_token_id=64, bos_token_id=64)
    model.save_pretrained(path)
    if melody:  # MusicgenMelodyProcessor needs torchaudio (no build for torch 2.13): save what it would save
        tok.save_pretrained(path)
        (path / "preprocessor_config.json").write_text(json.dumps({
            "feature_extractor_type": "MusicgenMelodyFeatureExtractor", "feature_size": 12, "sampling_rate": RATE,
            "hop_length": 128, "n_fft": 512, "num_chroma": 12, "chunk_length": 30, "padding_value": 0.0,
            "return_attention_mask": False, "stem_indices": [3, 2]}))
    else:
        fe = EncodecFeatureExtractor(feature_size=channels, sampling_rate=RATE)
        MusicgenProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_musicgen(tmp_path_factory):
    return _tiny_musicgen(tmp_path_factory.mktemp("musicgen"))


@pytest.fixture(scope="module")
def tiny_musicgen_stereo(tmp_path_factory):
    return _tiny_musicgen(tmp_path_factory.mktemp("musicgen-stereo"), stereo=True)


@pytest.fixture(scope="module")
def tiny_musicgen_melody(tmp_path_factory):
    return _tiny_musicgen(tmp_path_factory.mktemp("musicgen-melody"), melody=True)


@pytest.fixture
def small_windows(monkeypatch):
    """2 s windows, 0.6 s of context, 0.1 s fades: long-form in a few tiny generate calls."""
    monkeypatch.setattr(musicgen, "WINDOW_SECONDS", 2.0)
    monkeypatch.setattr(musicgen, "CONTEXT_SECONDS", 0.6)
    monkeypatch.setattr(musicgen, "FADE_SECONDS", 0.1)


class GenerateSpy:
    """Wraps a loaded model's generate: records its keyword arguments and what it returned."""

    def __init__(self, model):
        self.calls, self.outputs, self._generate = [], [], model.generate
        model.generate = self

    def __call__(self, **kwargs):
        self.calls.append({k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()})
        out = self._generate(**kwargs)
        self.outputs.append(out[0].float().numpy().T.copy())
        return out


def spy_on(ctx: ToolContext, request: MusicRequest) -> GenerateSpy:
    """Load the model through the backend's runtime key and spy on it (the next call reuses it)."""
    name = request.model
    with ctx.runtime.use(f"musicgen:{name}", lambda d, t: musicgen.load(name, d, t)) as mg:
        return GenerateSpy(mg.model)


def test_musicgen_random_weights_duration_to_samples(tiny_musicgen, offline, monkeypatch, tmp_path):
    monkeypatch.setenv(musicgen.ENV, str(tiny_musicgen))
    assert musicgen.BACKEND.unavailable_reason() is None
    ctx = ctx_for(tmp_path)
    spy = spy_on(ctx, MusicRequest("calm piano", 1.0, model=str(tiny_musicgen)))
    res = musicgen.compose(ctx, MusicRequest("calm piano", 1.3, seed=1))  # the model from CADENZA_MUSICGEN_MODEL
    assert res.rate == RATE and res.samples.dtype == np.float32 and res.samples.ndim == 1  # mono: (n,)
    assert abs(len(res.samples) - 1.3 * RATE) <= HOP and np.abs(res.samples).max() <= 1.0
    frames = math.ceil(1.3 * RATE / HOP)  # 33 frames at the codec's 25 a second, + 3 tokens of codebook delay
    assert spy.calls[0]["max_new_tokens"] == frames + 3 and "input_values" not in spy.calls[0]
    assert len(spy.outputs[0]) == frames * HOP
    assert res.settings["model"] == str(tiny_musicgen) and res.settings["seed"] == 1
    assert any(n.startswith("musicgen") for n in ctx.notes)


def test_musicgen_random_weights_long_form_prompts_each_window_and_crossfades(tiny_musicgen, offline, small_windows,
                                                                               tmp_path):
    ctx = ctx_for(tmp_path)
    req = MusicRequest("slow jazz", 5.0, seed=3, model=str(tiny_musicgen))
    spy = spy_on(ctx, req)
    res = musicgen.compose(ctx, req)
    assert len(res.samples) == 5 * RATE  # longer than the 2 s window: the full length
    # windows of 50 frames: 50 new, then 15 frames of context + 35 new, twice, then 15 + 5
    assert [c["max_new_tokens"] - 3 for c in spy.calls] == [50, 35, 35, 5]
    ctx_len = 15 * HOP
    made = spy.outputs[0]
    for call, before, out in zip(spy.calls[1:], spy.outputs, spy.outputs[1:]):
        # each later window is prompted with the last 0.6 s of the music made so far, through the processor
        prompt = call["input_values"][0, 0].numpy()
        assert prompt.shape == (ctx_len,)
        np.testing.assert_array_equal(prompt, made[-ctx_len:, 0])
        new = out[len(out) - (call["max_new_tokens"] - 3) * HOP:]
        overlap = out[len(out) - len(new) - int(0.1 * RATE):len(out) - len(new)]
        made = hf.append_crossfaded(made, overlap, new)
    np.testing.assert_allclose(res.samples, hf.limit(made[:, 0]), atol=1e-6)
    # the joins fade: 0.1 s before each join the music moves from what was made to the window's re-decoding
    join = 50 * HOP
    head = spy.outputs[0][join - 800:join, 0]
    redecoded = spy.outputs[1][ctx_len - 800:ctx_len, 0]
    ramp = np.linspace(0.0, 1.0, 800, dtype=np.float32)
    scale = max(1.0, float(np.abs(made).max()))
    np.testing.assert_allclose(res.samples[join - 800:join], (head * (1 - ramp) + redecoded * ramp) / scale, atol=1e-5)
    assert res.settings["windows"] == 4


def test_musicgen_two_minutes_plan_with_the_real_window_sizes():
    """2 minutes at 50 frames a second in 30 s windows with 10 s of context: 6 generate calls."""
    plan = musicgen.plan_windows(math.ceil(120 * 50), 0, 30 * 50, 10 * 50)
    assert plan == [(0, 1500), (500, 1000), (500, 1000), (500, 1000), (500, 1000), (500, 500)]
    assert musicgen.MAX_SECONDS >= 120


def test_musicgen_random_weights_seed_reproducible(tiny_musicgen, offline, small_windows, tmp_path):
    ctx = ctx_for(tmp_path)
    a = musicgen.compose(ctx, MusicRequest("rain", 2.5, seed=7, model=str(tiny_musicgen)))
    b = musicgen.compose(ctx, MusicRequest("rain", 2.5, seed=7, model=str(tiny_musicgen)))
    c = musicgen.compose(ctx, MusicRequest("rain", 2.5, seed=8, model=str(tiny_musicgen)))
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.array_equal(a.samples, c.samples)
    d = musicgen.compose(ctx, MusicRequest("rain", 0.5, model=str(tiny_musicgen)))  # no seed: a fresh one, reported
    e = musicgen.compose(ctx, MusicRequest("rain", 0.5, seed=d.settings["seed"], model=str(tiny_musicgen)))
    np.testing.assert_array_equal(d.samples, e.samples)


def test_musicgen_random_weights_cancel_stops_generation(tiny_musicgen, offline, tmp_path):
    ctx = ctx_for(tmp_path)
    seen = []

    def progress(done, total):  # a context's progress hook, when it has one
        seen.append((done, total))
        if done == 5:
            ctx.cancelled.set()

    ctx.progress = progress
    req = MusicRequest("loud rock", 4.0, model=str(tiny_musicgen))
    spy = spy_on(ctx, req)
    with pytest.raises(CancelledError):
        musicgen.compose(ctx, req)
    assert len(spy.calls) == 1 and not spy.outputs  # stopped inside the first generate call
    assert seen[-1] == (5, 100 + 3) and len(seen) == 5  # the 6th token checked and stopped


def test_musicgen_random_weights_model_stays_loaded(tiny_musicgen, offline, monkeypatch, tmp_path):
    loads = []
    real = musicgen.load
    monkeypatch.setattr(musicgen, "load", lambda name, d, t: loads.append(name) or real(name, d, t))
    ctx = ctx_for(tmp_path)
    for seconds in (0.4, 0.6):
        musicgen.compose(ctx, MusicRequest("calm", seconds, model=str(tiny_musicgen)))
    assert loads == [str(tiny_musicgen)]  # the second call paid no load


def test_musicgen_random_weights_continues_given_audio(tiny_musicgen, offline, small_windows, tmp_path):
    ctx = ctx_for(tmp_path)
    t = np.arange(int(3.0 * 16000)) / 16000
    given = np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], axis=1).astype(np.float32) * 0.3
    req = MusicRequest("calm piano", 2.5, seed=1, continuation=given, continuation_rate=16000, model=str(tiny_musicgen))
    spy = spy_on(ctx, req)
    res = musicgen.compose(ctx, req)
    assert len(res.samples) == int(2.5 * RATE) and res.settings["continued"]
    # the first window is prompted with the given audio's last 0.6 s, resampled to 8 kHz and made mono
    prompt = spy.calls[0]["input_values"][0, 0].numpy()
    expected = hf.resample(given, 16000, RATE).mean(axis=1)[-15 * HOP:]
    assert prompt.shape == (15 * HOP,)
    np.testing.assert_allclose(prompt, expected, atol=1e-5)
    assert spy.calls[0]["max_new_tokens"] - 3 == 50 - 15  # the prompt takes its share of the window


def test_musicgen_random_weights_stereo_long_form(tiny_musicgen_stereo, offline, small_windows, tmp_path):
    ctx = ctx_for(tmp_path)
    req = MusicRequest("drums", 3.0, seed=2, model=str(tiny_musicgen_stereo))
    spy = spy_on(ctx, req)
    res = musicgen.compose(ctx, req)
    assert res.samples.shape == (3 * RATE, 2)
    assert spy.calls[1]["input_values"].shape == (1, 2, 15 * HOP)  # a stereo prompt: both channels
    np.testing.assert_array_equal(spy.calls[1]["input_values"][0].numpy().T, spy.outputs[0][-15 * HOP:])


def test_musicgen_random_weights_melody_conditions_each_window(tiny_musicgen_melody, offline, small_windows, tmp_path):
    ctx = ctx_for(tmp_path)
    t = np.arange(int(1.5 * 16000)) / 16000
    tune = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # an A, shorter than the music: looped
    req = MusicRequest("calm piano", 3.0, seed=4, melody=tune, melody_rate=16000, model=str(tiny_musicgen_melody))
    spy = spy_on(ctx, req)
    res = musicgen.compose(ctx, req)
    assert len(res.samples) == 3 * RATE and res.settings["melody"]
    assert len(spy.calls) == 2
    for call in spy.calls:
        chroma = call["input_features"]
        assert chroma.shape[0] == 1 and chroma.shape[2] == 12
        assert (chroma[0].argmax(-1) == 9).float().mean() > 0.9  # pitch class A (C = 0)
    # the second window continues from the codec's tokens of the last 0.6 s
    codes = spy.calls[1]["decoder_input_ids"]
    assert codes.shape == (4, 15)
    with ctx.runtime.use(f"musicgen:{tiny_musicgen_melody}", None) as mg:
        expected = musicgen._prompt_codes(mg, spy.outputs[0][-15 * HOP:])
    assert torch.equal(codes, expected)


def test_musicgen_random_weights_melody_needs_a_melody_model(tiny_musicgen, offline, tmp_path):
    req = MusicRequest("calm", 1.0, melody=np.zeros(8000, np.float32), melody_rate=8000, model=str(tiny_musicgen))
    with pytest.raises(InputError, match="cannot follow a melody"):
        musicgen.compose(ctx_for(tmp_path), req)


def test_musicgen_melody_chroma_of_a_tone():
    settings = {"sampling_rate": 32000, "n_fft": 16384, "hop_length": 4096, "num_chroma": 12, "chunk_length": 30}
    t = np.arange(32000 * 2) / 32000
    for freq, pitch_class in ((261.63, 0), (440.0, 9), (392.0, 7)):  # C4, A4, G4
        chroma = musicgen.melody_chroma(np.sin(2 * np.pi * freq * t), settings, rate=32000)
        assert chroma.shape == (1, 16, 12) and chroma.sum(-1).eq(1).all()
        assert chroma[0, 2:-2].argmax(-1).eq(pitch_class).all()


def test_resample_keeps_the_band_and_drops_what_would_alias():
    t = np.arange(16000) / 16000
    low, high = np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 6000 * t)  # 6 kHz is above 8 kHz's Nyquist
    y = hf.resample(np.stack([low, high], axis=1), 16000, 8000)
    assert y.shape == (8000, 2) and y.dtype == np.float32
    mid = slice(1000, 7000)
    np.testing.assert_allclose(y[mid, 0], np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)[mid], atol=1e-3)
    assert np.abs(y[mid, 1]).max() < 1e-3  # not folded down to 2 kHz


def test_musicgen_without_a_model_says_what_to_set(monkeypatch, tmp_path):
    monkeypatch.delenv(musicgen.ENV, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    why = musicgen.BACKEND.unavailable_reason()
    assert why.startswith("no MusicGen model here: set CADENZA_MUSICGEN_MODEL") and "facebook/musicgen-small" in why
    with pytest.raises(BackendUnavailableError, match="no MusicGen model here"):
        musicgen.compose(ctx_for(tmp_path), MusicRequest("calm", 1.0))
    monkeypatch.setenv(musicgen.ENV, str(tmp_path / "missing"))
    assert "neither a folder nor cached" in musicgen.BACKEND.unavailable_reason()
    with pytest.raises(InputError, match="at most 300 s"):
        musicgen.compose(ctx_for(tmp_path), MusicRequest("calm", 301.0))


def test_musicgen_default_is_the_largest_cached(monkeypatch, tmp_path):
    monkeypatch.delenv(musicgen.ENV, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    for repo in ("facebook/musicgen-small", "facebook/musicgen-stereo-medium", "facebook/musicgen-melody"):
        (tmp_path / f"models--{repo.replace('/', '--')}" / "snapshots" / "abc").mkdir(parents=True)
    assert musicgen.default_model() == "facebook/musicgen-stereo-medium"
    assert musicgen.default_model(melody=True) == "facebook/musicgen-melody"
    assert musicgen.BACKEND.unavailable_reason() is None


# -- float16, as on a GPU: the runtime's dtype reaches every input (prompt audio, chroma, codes) ---
# (on CPU with dtype float16, and on CUDA when there is one: tiny_music_models.DEVICES)


@pytest.mark.parametrize("device", DEVICES)
def test_musicgen_random_weights_float16(device, tiny_musicgen, tiny_musicgen_stereo, tiny_musicgen_melody, offline,
                                         small_windows, tmp_path):
    runtime = ModelRuntime(device=device, dtype="auto" if device == "cuda" else "float16")
    ctx = ctx_for(tmp_path, runtime)
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    cases = [(tiny_musicgen, MusicRequest("calm piano", 3.0, seed=1, continuation=tone, continuation_rate=16000)),
             (tiny_musicgen_stereo, MusicRequest("drums", 3.0, seed=1)),
             (tiny_musicgen_melody, MusicRequest("jazz", 3.0, seed=1, melody=tone, melody_rate=16000))]
    for path, req in cases:
        req.model = str(path)
        res = musicgen.compose(ctx, req)
        assert len(res.samples) == 3 * RATE and np.isfinite(res.samples).all()
        entry = resident(runtime, f"musicgen:{path}")
        assert entry.dtype == "float16" and entry.model.model.dtype == torch.float16
        assert entry.device.startswith(device) and str(entry.model.model.device).startswith(device)
        again = musicgen.compose(ctx, req)  # resident: no second load, and the same seed gives the same music
        np.testing.assert_allclose(res.samples, again.samples, atol=0 if device == "cpu" else 1e-3)
    assert len(runtime.loaded()) == 3
