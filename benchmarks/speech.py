"""Speech benchmark: word error rate and real-time factor of each ASR backend available here,
the real-time factor of each TTS backend, and the round trip (hibari speaks, faster-whisper listens).

    python benchmarks/speech.py          # readable lines, then one JSON line
    python benchmarks/speech.py --json   # only the JSON object

The test speech is made here from a fixed English text (TEXT, over 100 words): by hibari-tts
(clean synthetic speech, the headline) and by espeak-ng (robotic, harder). RTF = processing wall
time / audio duration, warm (the model load is timed apart), median of REPEATS runs. WER is scored
on normalised text: lowercase, punctuation stripped, numbers written out as words (num2words) on
both sides, so "15" and "fifteen" agree. Backends that cannot run here are listed with the reason.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cadenza.tools.args import convert_args  # noqa: E402
from cadenza.tools.base import ToolContext  # noqa: E402
from cadenza.workspace import Workspace  # noqa: E402

TEXT = ("The old lighthouse stands at the edge of the harbour, where the river meets the sea. For more than "
        "a hundred years its keepers climbed the narrow stairs every evening to light the lamp. Today the light "
        "turns on by itself, and the building has become a small museum. Visitors can see the brass lenses, the "
        "logbooks and a model of the ships that passed the rocks. The guided tour takes about 15 minutes and "
        "ends on the balcony, where on a clear day you can see the islands to the north. In the winter the "
        "museum closes early, but the light keeps turning through every storm.")
TARGETS = {"asr_rtf": 0.15, "asr_wer": 0.10, "tts_rtf": 0.05, "round_trip_wer": 0.05}
REPEATS = 3


def normalise(text: str) -> str:
    from num2words import num2words

    text = re.sub(r"\d+(?:\.\d+)?", lambda m: " " + num2words(float(m.group()) if "." in m.group()
                                                               else int(m.group())) + " ", text.lower())
    text = text.replace("-", " ")
    return " ".join(re.sub(r"[^a-z' ]+", " ", text).split())


def wer(ref: str, hyp: str) -> float:
    import jiwer

    return round(jiwer.wer(normalise(ref), normalise(hyp)), 4)


def run_tool(tool, backend: str | None, workdir: Path, **kwargs):
    ws = Workspace.for_run(tempfile.mkdtemp(dir=workdir), kwargs)
    ctx = ToolContext(workspace=ws, step_id=tool.name, backend=tool.get_backend(backend).name)
    return tool.invoke(convert_args(tool, kwargs, ws, where=tool.name), ctx)


def timed(fn, repeats=REPEATS):
    """(median seconds, last result) over `repeats` runs."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def asr_figures(speech: dict[str, Path], durations: dict[str, float], workdir: Path) -> dict:
    from cadenza.tools.speech import asr_faster_whisper, transcribe

    configs = [("faster-whisper", "tiny.en"), ("faster-whisper", "base"), ("openai-whisper", None),
               ("transformers", None)]
    out = {}
    for backend, model in configs:
        key = f"{backend}:{model}" if model else backend
        b = next(b for b in transcribe.backends if b.name == backend)
        why = b.unavailable_reason()
        if why is None and model == "base" and not asr_faster_whisper.base_installed():
            why = "Whisper base not installed (cadenza[speech-base])"
        if why:
            out[key] = {"available": False, "why_not": why}
            continue
        entry = {"available": True}
        for voice, path in speech.items():
            args = {"media": str(path), "language": "en", **({"model": model} if model else {})}
            t0 = time.perf_counter()
            run_tool(transcribe, backend, workdir, **args)  # warm-up: loads the model
            load = time.perf_counter() - t0
            secs, res = timed(lambda: run_tool(transcribe, backend, workdir, **args))
            entry[voice] = {"wer": wer(TEXT, res["text"]), "rtf": round(secs / durations[voice], 4),
                            "audio_s": round(durations[voice], 2), "first_call_s": round(load, 2)}
        out[key] = entry
    return out


def tts_figures(workdir: Path) -> dict:
    from cadenza.tools.speech import speak

    out = {}
    for b in speak.backends:
        why = b.unavailable_reason()
        if why:
            out[b.name] = {"available": False, "why_not": why}
            continue
        run_tool(speak, b.name, workdir, text="Warm up.")
        secs, res = timed(lambda: run_tool(speak, b.name, workdir, text=TEXT))
        dur = res["result"].duration
        out[b.name] = {"available": True, "rtf": round(secs / dur, 4), "audio_s": round(dur, 2)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    opts = ap.parse_args()
    from cadenza.tools.speech import speak
    from cadenza.tools.speech.pcm import load_mono

    workdir = Path(tempfile.mkdtemp(prefix="cadenza-bench-speech-"))
    try:
        speech = {"hibari": Path(run_tool(speak, "hibari", workdir, text=TEXT)["result"].path)}
        if shutil.which("espeak-ng"):
            speech["espeak-ng"] = Path(run_tool(speak, "espeak-ng", workdir, text=TEXT)["result"].path)
        durations = {k: load_mono(p).size / 16000 for k, p in speech.items()}
        asr = asr_figures(speech, durations, workdir)
        tts = tts_figures(workdir)
        # the round trip: what the default voice says, the default recogniser hears
        from cadenza.tools.speech import transcribe

        spoken = run_tool(speak, "hibari", workdir, text=TEXT)["result"]
        heard = run_tool(transcribe, "faster-whisper", workdir, media=str(spoken.path))
        embedded = asr["faster-whisper:tiny.en"]["hibari"]
        result = {
            "text_words": len(TEXT.split()),
            "asr": asr,
            "tts": tts,
            "round_trip": {"tts": "hibari", "asr": "faster-whisper (default model)", "wer": wer(TEXT, heard["text"]),
                           "heard": heard["text"]},
            "targets": TARGETS,
            "pass": {"embedded_asr_rtf": embedded["rtf"] <= TARGETS["asr_rtf"],
                     "embedded_asr_wer": embedded["wer"] <= TARGETS["asr_wer"],
                     "tts_rtf": {k: v["rtf"] <= TARGETS["tts_rtf"] for k, v in tts.items() if v["available"]},
                     "round_trip_wer": wer(TEXT, heard["text"]) <= TARGETS["round_trip_wer"]},
            "machine": {"cpus": __import__("os").cpu_count(), "python": sys.version.split()[0]},
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if not opts.json:
        for key, v in result["asr"].items():
            if not v["available"]:
                print(f"ASR {key}: not available ({v['why_not']})")
                continue
            for voice, f in v.items():
                if voice != "available":
                    print(f"ASR {key} on {voice} speech: WER {f['wer']:.1%}, RTF {f['rtf']:.3f}")
        for key, v in result["tts"].items():
            print(f"TTS {key}: " + (f"RTF {v['rtf']:.4f}" if v["available"] else f"not available ({v['why_not']})"))
        print(f"round trip WER: {result['round_trip']['wer']:.1%}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
