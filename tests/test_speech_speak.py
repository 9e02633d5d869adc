"""speak: hibari (embedded), piper, a transformers VITS with tiny random weights (wiring only),
espeak-ng as fallback; long texts streamed sentence by sentence; joins without clicks."""

import json
import os
import subprocess
import sys
import tracemalloc
import wave

import numpy as np
import pytest

from cadenza.errors import InputError
from cadenza.tools.speech import speak, transcribe, tts_espeak
from cadenza.tools.speech.pcm import WavWriter
from cadenza.tools.speech.speak import MAX_CHUNK, sentence_chunks
from speech_util import call, wer

TEXT = "Good evening. The weather will stay dry tonight, with a light wind from the west."
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def samples(path):
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768, w.getframerate()


def test_hibari_speech_reads_back_and_speed_changes_pace():
    out, notes = call(speak, text=TEXT)
    assert out["result"].sample_rate == 24000 and notes == []
    back = transcribe(media=str(out["result"].path), language="en")
    assert wer(TEXT, back["text"]) <= 0.1, back["text"]
    fast, _ = call(speak, text=TEXT, speed=1.6)
    assert fast["result"].duration < 0.8 * out["result"].duration


def test_piper_voice_reads_back():
    out, _ = call(speak, "piper", text=TEXT, voice="joe")
    assert out["result"].sample_rate == 22050
    back = transcribe(media=str(out["result"].path), language="en")
    assert wer(TEXT, back["text"]) <= 0.15, back["text"]


def test_language_the_voice_lacks_falls_back_to_espeak_with_a_note():
    if not tts_espeak.available():
        pytest.skip("espeak-ng not installed")
    out, notes = call(speak, text="Bonsoir. Comment allez-vous?", language="fr")
    assert out["result"].duration > 0.5
    # French: the multilingual kokoro voice garbles it (tts_kokoro.LANGUAGE_WER), so espeak-ng speaks it
    assert notes[0].startswith("spoke French with espeak-ng voice 'fr-fr' (robotic; hibari 'heart' speaks English "
                               "only; ")
    assert len(notes) == 1 and "kokoro voice" in notes[0]


def test_espeak_speaks_german_from_the_bundled_library_without_the_program(monkeypatch, tmp_path):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng program to be found
    for cached in (tts_espeak._voice_list, tts_espeak._voice_table, tts_espeak._other_languages):
        cached.cache_clear()  # the voice table too is read from the bundled data
    assert tts_espeak.available()
    assert len(tts_espeak.voices()) > 80 and tts_espeak.espeak_voice("German") == "de"
    assert tts_espeak.espeak_voice("fr") == "fr-fr"  # a voice's other language: French is 'fr-fr' in espeak
    out, notes = call(speak, "espeak-ng", text="Guten Abend. Wie geht es dir heute?", language="de")
    x, rate = samples(out["result"].path)
    assert rate == 22050 and notes == []
    assert 1.0 < len(x) / rate < 6.0  # six words, about two seconds
    assert np.sqrt(np.mean(x ** 2)) > 0.02


def test_language_the_voice_lacks_is_a_one_line_error_without_fallback(monkeypatch):
    with pytest.raises(InputError, match=r"voice 'heart' \(hibari\) has no German \(de\)"):
        call(speak, text="Guten Abend.", language="de", fallback=False)
    monkeypatch.setattr(tts_espeak, "_check", lambda: "no espeak-ng")
    with pytest.raises(InputError, match=r"voice 'joe' \(piper\) has no French \(fr\).*espeak-ng fallback"):
        call(speak, "piper", text="Bonsoir.", language="French")


@pytest.mark.parametrize("kwargs,match", [
    ({"text": "   "}, "text is empty"),
    ({"text": "Hi.", "speed": 9}, r"argument 'speed': must be between 0.25 and 4 \(got 9\)"),
    ({"text": "Hi.", "voice": "nobody"}, "hibari has no voice 'nobody'"),
    ({"text": "...!?"}, "nothing speakable"),
])
def test_bad_arguments_are_one_line_input_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        call(speak, **kwargs)


def test_joins_are_faded_so_they_do_not_click(tmp_path):
    with WavWriter(tmp_path / "j.wav", 16000) as w:
        for level in (0.8, -0.8, 0.5):  # constant levels: a hard cut would be a full-scale step
            w.write(np.full(1600, level, np.float32))
    x, _ = samples(tmp_path / "j.wav")
    assert len(x) == 3 * 1600 + 2 * len(w.gap)
    assert np.abs(np.diff(x)).max() < 0.01 and abs(x[0]) < 0.01 and abs(x[-1]) < 0.01


def test_hibari_output_has_no_clicks_at_sentence_joins():
    out, _ = call(speak, text="One sentence here. Another sentence there. And a third one.")
    x, rate = samples(out["result"].path)
    assert abs(x[0]) < 0.02 and abs(x[-1]) < 0.02
    quiet = np.flatnonzero(np.convolve(np.abs(x) < 1e-4, np.ones(int(rate * 0.1)), "valid") >= int(rate * 0.1))
    assert quiet.size  # the pauses between sentences are there, and silent


def test_sentence_chunks_are_bounded_and_lose_nothing():
    text = "Short one. " + "A very long clause, " * 60 + "ends here! Next?\nNew line without stop"
    chunks = list(sentence_chunks(text))
    assert all(0 < len(c) <= MAX_CHUNK for c in chunks)
    assert " ".join(chunks).split() == text.split()
    assert chunks[0] == "Short one." and chunks[-1] == "New line without stop"


def peak_memory(text):
    tracemalloc.start()
    try:
        out, _ = call(speak, text=text)
        return tracemalloc.get_traced_memory()[1], out["result"]
    finally:
        tracemalloc.stop()


def test_long_text_is_streamed_in_bounded_memory():
    call(speak, text="Warm up: the voice's lexicons load on first use.")
    line = "Sentence number {} is spoken on its own, and then written out."
    short_peak, _ = peak_memory(" ".join(line.format(i) for i in range(10)))
    peak, audio = peak_memory(" ".join(line.format(i) for i in range(120)))
    assert audio.duration > 240  # over 1,300 words, several minutes of speech
    assert peak < audio.path.stat().st_size / 1.5, peak  # never the whole audio in memory (G2P costs ~10 MB)
    assert peak < 1.3 * short_peak + 4e6, (peak, short_peak)  # and memory does not grow with the text


@pytest.mark.slow
def test_many_thousands_of_words_are_spoken_in_bounded_memory():
    call(speak, text="Warm up.")
    peak, audio = peak_memory(" ".join(f"This is sentence {i} of a very long book chapter." for i in range(600)))
    assert peak < audio.path.stat().st_size / 5  # 6,000 words, 44 minutes of audio: ~15 MB peak, flat


@pytest.fixture(scope="module")
def random_vits(tmp_path_factory):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    path = tmp_path_factory.mktemp("vits")
    vocab = {c: i for i, c in enumerate(["<pad>", *" abcdefghijklmnopqrstuvwxyz'.,?!-"])}
    (path / "vocab.json").write_text(json.dumps(vocab))
    tok = VitsTokenizer(str(path / "vocab.json"), language="eng", phonemize=False)
    cfg = VitsConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32,
                     flow_size=16, spectrogram_bins=33, upsample_initial_channel=16, upsample_rates=[8, 8],
                     upsample_kernel_sizes=[16, 16], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
                     prior_encoder_num_flows=1, prior_encoder_num_wavenet_layers=1,
                     posterior_encoder_num_wavenet_layers=1, duration_predictor_num_flows=1,
                     duration_predictor_filter_channels=16, depth_separable_num_layers=1, sampling_rate=16000)
    torch.manual_seed(0)
    VitsModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_transformers_vits_random_weights_wiring(random_vits, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CADENZA_HF_TTS_MODEL", str(random_vits))
    out, _ = call(speak, "transformers", text="Hello there. A second sentence.")
    x, rate = samples(out["result"].path)
    assert rate == 16000 and len(x) > 1600 and np.isfinite(x).all()
    again, _ = call(speak, "transformers", text="Hello there. A second sentence.")
    assert again["result"].path.read_bytes() == out["result"].path.read_bytes()  # seeded: repeatable
    with pytest.raises(InputError, match=r"has no German \(de\); it speaks en"):
        call(speak, "transformers", text="Hallo.", language="de", fallback=False)


def test_cli_speaks(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cadenza.cli", "tools", "run", "speak", "--arg", "text=Hello from the CLI.",
                        "--out", "o", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "CADENZA_CACHE_DIR": str(tmp_path / "c"),
                            "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")})
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)["outputs"]["result"]
    assert res["path"].endswith(".wav") and res["duration"] > 0.5


def test_a_voice_named_is_spoken_by_the_backend_that_has_it():
    """`voice: es` is espeak-ng's and `voice: jm_kumo` kokoro's, whichever backend is best here; a
    voice no backend has stays with the chosen backend (which then says it has no such voice)."""
    from cadenza.tools.speech import tts_espeak, tts_kokoro
    from cadenza.tools.speech.speak import voice_backend

    if tts_espeak.available():
        assert voice_backend("es", "hibari") == "espeak-ng"
    if tts_kokoro.BACKEND.unavailable_reason() is None:
        assert voice_backend("jm_kumo", "hibari") == "kokoro"
    assert voice_backend("heart", "hibari") == voice_backend(None, "hibari") == "hibari"
    assert voice_backend("no-such-voice", "piper") == "piper"
    assert voice_backend("/models/v.onnx", "piper") == "piper"
