"""The dubbing benchmark's runs: `cadenza dub` as a timed subprocess (with the CPU share other processes
took meanwhile, and an optional wait for a quiet machine), a re-run per voice, and the in-process probes
of where the translation and speech steps spend their time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from dub_clip import ROOT, read_wav, run_tool
from dub_measure import line_figures, speech_scores

RUN_TIMEOUT_S = 1800


def log(msg: str) -> None:
    print(f"[dub bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- running cadenza ----------------------------------------------------------------------------
QUIET = {"max_wait_s": 0.0, "busy": 0.3}  # set by --wait-quiet


def _busy_jiffies() -> int | None:
    """Busy CPU time of the whole machine so far, in clock ticks (None where /proc/stat is missing)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    return sum(v) - v[3] - (v[4] if len(v) > 4 else 0)


def cpu_busy(seconds: float = 2.0) -> float:
    """The share of all CPU time spent busy over `seconds` (from /proc/stat; -1 where there is none)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + (v[4] if len(v) > 4 else 0)  # total, idle + iowait

    try:
        t1, i1 = sample()
        time.sleep(seconds)
        t2, i2 = sample()
    except OSError:
        return -1.0
    return round(1 - (i2 - i1) / max(1, t2 - t1), 3)


def wait_quiet() -> dict:
    """With --wait-quiet: wait (at most that long) until the machine is idle enough for a timed run
    (under 30 % busy over 2 s, twice in a row). Returns what was seen, for the record."""
    t0, busy, calm = time.perf_counter(), cpu_busy(), 0
    while QUIET["max_wait_s"] and time.perf_counter() - t0 < QUIET["max_wait_s"]:
        calm = calm + 1 if 0 <= busy < QUIET["busy"] else 0
        if calm >= 2:
            break
        if calm == 0 and time.perf_counter() - t0 > 5:
            log(f"waiting for a quieter machine (busy {busy:.0%})")
            time.sleep(10)
        busy = cpu_busy()
    return {"cpu_busy_before": busy, "waited_s": round(time.perf_counter() - t0, 1)}


def cadenza(args: list[str], cwd: Path, cache: Path) -> dict:
    """Run `python -m cadenza.cli ARGS --json` in `cwd`; {rc, wall_s, doc, error}."""
    import resource

    env = {**os.environ, "PYTHONPATH": str(ROOT), "CADENZA_CACHE_DIR": str(cache)}
    busy0, kids0 = _busy_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "cadenza.cli", *args, "--json"], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    wall = time.perf_counter() - t0
    busy1, kids1 = _busy_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    others = None
    if busy0 is not None and busy1 is not None:  # CPU seconds other processes used meanwhile, as a share of all cores
        others = round(max(0.0, (busy1 - busy0) / os.sysconf("SC_CLK_TCK") - own) / (wall * (os.cpu_count() or 1)), 3)
    doc = None
    for line in reversed(p.stdout.strip().splitlines()):
        try:
            doc = json.loads(line)
            break
        except ValueError:
            continue
    errors = [ln[len("error: "):] for ln in p.stderr.splitlines() if ln.startswith("error: ")]
    return {"rc": p.returncode, "wall_s": round(wall, 3), "doc": doc, "cpu_s": round(own, 2),
            "others_cpu_share": others,
            "error": errors[0] if errors else (None if p.returncode == 0 else p.stderr.strip()[-500:])}


def out_path(value) -> Path | None:
    if isinstance(value, dict):
        value = value.get("path")
    return Path(value) if isinstance(value, str) else None


def steps_of(run_json: Path) -> tuple[dict, float]:
    doc = json.loads(Path(run_json).read_text(encoding="utf-8"))
    return {s["id"]: s for s in doc["steps"]}, float(doc.get("seconds") or 0.0)


# -- per-voice re-runs and in-process probes --------------------------------------------------
def forced_backend_workflow(backend: str, folder: Path) -> Path:
    """A copy of dub.yaml whose speech step forces `backend` (for a voice `cadenza dub --voice` cannot reach)."""
    import yaml

    plan = yaml.safe_load((ROOT / "cadenza" / "workflows" / "dub.yaml").read_text(encoding="utf-8"))
    for step in plan["steps"]:
        if step["id"] == "speech":
            step["backend"] = backend
    path = folder / f"dub-{backend}.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def voice_figures(backend: str, voice: str, dst: str, wd: Path, cache: Path) -> dict:
    tag = re.sub(r"[^A-Za-z0-9]+", "_", f"{backend}_{voice}")
    out = f"out-voice-{tag}"
    r = cadenza(["dub", "clip.mp4", "--to", dst, "--voice", voice, "--out", out], wd, cache)
    entry: dict = {"backend": backend, "voice": voice, "via": "cadenza dub --voice", "wall_s": r["wall_s"],
                   "others_cpu_share": r["others_cpu_share"]}
    lines, speech, steps = None, None, None
    if r["rc"] == 0 and r["doc"]:
        lines = json.loads((wd / out / "dub_lines.json").read_text(encoding="utf-8"))["lines"]
        speech = out_path(r["doc"]["outputs"].get("speech"))
        steps, _ = steps_of(Path(r["doc"]["run_json"]))
        used = sorted({ln.get("voice_used") for ln in lines if ln.get("voice_used")})
        if used != [voice]:
            entry["cli"] = {"status": "spoke with another voice", "voice_used": used,
                            "notes": steps["speech"].get("notes", [])[:3]}
            lines = None
    else:
        entry["cli"] = {"status": "failed", "rc": r["rc"], "error": r["error"]}
    if lines is None:  # measure the voice anyway, with its backend forced on the speech step
        flow = forced_backend_workflow(backend, wd)
        out = f"out-voice-{tag}-forced"
        r = cadenza(["workflow", "run", str(flow), "--input", "video=clip.mp4", "--input", f"to={dst}",
                     "--input", f"voice={voice}", "--out", out], wd, cache)
        entry.update(via=f"cadenza workflow run (dub.yaml, speech step backend: {backend})", wall_s=r["wall_s"],
                     others_cpu_share=r["others_cpu_share"])
        if r["rc"] != 0 or not r["doc"]:
            entry.update(status="failed", error=r["error"])
            return entry
        lines = r["doc"]["outputs"]["lines"]
        speech = out_path(r["doc"]["outputs"].get("speech"))
        steps, _ = steps_of(Path(r["doc"]["run_json"]))
    sp = steps["speech"]
    entry.update(status="ok", voice_used=sorted({ln.get("voice_used") for ln in lines if ln.get("voice_used")}),
                 speech_step_s=round(sp.get("seconds") or 0.0, 2), speech_step=sp["status"],
                 synthesized=len((sp.get("outputs") or {}).get("synthesized", [])),
                 cached_before_speech=all(steps[s]["status"] == "cached" for s in ("sound", "words", "lines", "tr")))
    f = line_figures(lines, speech)
    entry.update({k: f[k] for k in ("max_start_offset_ms", "max_speed_factor", "rewrites", "trims",
                                    "needed_rewrite_or_trim", "actions")})
    entry.update(speech_scores(lines, speech, dst, wd))
    return entry


def llm_probe(lines: list[str], src: str, dst: str) -> dict:
    """Where the `tr` step's time goes, in this process (after the timed runs): the embedded LLM
    loaded, then translate_lines on the same source lines the step got (the same calls: batches,
    schema-constrained JSON), counting LLM calls and reply tokens; then the first batch asked once
    more without the JSON-schema grammar, to see what the constraint costs per token."""
    from langchain_core.messages import HumanMessage, SystemMessage

    import importlib

    from cadenza.llm.chat import resolve_spec
    from cadenza.tools.speech.languages import name as language_name

    tr = importlib.import_module("cadenza.tools.speech.translate")  # the module (the package exports the tool)

    out: dict = {"llm": resolve_spec(), "lines": len(lines), "chars_in": sum(len(x) for x in lines)}
    from cadenza.runtime import get_runtime

    get_runtime().evict_idle()  # a model loaded by an earlier probe in this process: load it again, timed
    t0 = time.perf_counter()
    model = tr._llm()
    if not hasattr(model, "_llama"):
        out["note"] = "not the embedded llama.cpp model: load time not separable"
        llama = None
    else:
        with model._llama() as llama:
            pass
    out["load_s"] = round(time.perf_counter() - t0, 2)
    calls, raws = [], []
    real = tr.complete_json

    def counted(m, msgs, schema, **kw):
        t = time.perf_counter()
        data, raw = real(m, msgs, schema, **kw)
        calls.append(round(time.perf_counter() - t, 2))
        raws.append(raw)
        return data, raw

    tr.complete_json = counted
    try:
        t0 = time.perf_counter()
        got = tr.translate_lines(lines, dst, src)
        out["translate_s"] = round(time.perf_counter() - t0, 2)
    finally:
        tr.complete_json = real
    out["calls"] = len(calls)
    out["call_s"] = calls
    out["same_as_run"] = None  # filled by the caller
    out["translation"] = got
    if llama is not None:
        toks = sum(len(llama.tokenize(r.encode(), add_bos=False)) for r in raws)
        out.update(reply_tokens=toks, tokens_per_s=round(toks / max(out["translate_s"], 1e-6), 1))
        first = [x for x in lines if x.strip()][:tr.MAX_LINES]
        msgs = [SystemMessage(tr.SYSTEM.format(src=language_name(src), dst=language_name(dst), n=len(first))),
                HumanMessage(json.dumps({"lines": first}, ensure_ascii=False))]
        t0 = time.perf_counter()
        raw = model.invoke(msgs).content
        free_s = time.perf_counter() - t0
        n = len(llama.tokenize(raw.encode(), add_bos=False))
        try:
            free = [" ".join(str(x).split()) for x in json.loads(raw).get("lines")]
        except (ValueError, AttributeError, TypeError):
            free = None
        ref = [t for t in got if t][:len(first)]
        out["unconstrained_first_batch"] = {
            "s": round(free_s, 2), "reply_tokens": n, "tokens_per_s": round(n / max(free_s, 1e-6), 1),
            "valid": free is not None and len(free) == len(first),
            "lines_differing": None if free is None else sum(a != b for a, b in zip(free, ref)) + abs(len(free) - len(ref)),
            "lines": free}
    return out


def voice_probe(texts: list[str], lang: str, voice: str, workdir: Path) -> dict:
    """Where the `speech` step's time goes: the voice that spoke the run (by its report) loaded with a
    short sentence, then each line's spoken text synthesized with `speak` (as speak_lines does, less
    the fitting): seconds, audio seconds, real-time factor."""
    from cadenza.tools.speech import speak
    from cadenza.tools.speech.speak import TTS_BACKENDS

    backend = next((b for b, m in TTS_BACKENDS.items() if b != "transformers" and m.BACKEND.unavailable_reason()
                    is None and voice in m.voices()), "hibari")
    from cadenza.runtime import get_runtime

    get_runtime().evict_idle()  # the first call loads the voice (the clip maker may have loaded it)
    t0 = time.perf_counter()
    run_tool(speak, backend, workdir, text="Hola." if lang == "es" else "Hello.", voice=voice, language=lang)
    first = time.perf_counter() - t0
    t0, audio = time.perf_counter(), 0.0
    for t in texts:
        res = run_tool(speak, backend, workdir, text=t, voice=voice, language=lang)
        x, r = read_wav(Path(res.path if hasattr(res, "path") else res["result"].path))
        audio += len(x) / r
    secs = time.perf_counter() - t0
    return {"backend": backend, "voice": voice, "first_call_s": round(first, 2), "synth_s": round(secs, 2),
            "audio_s": round(audio, 2), "rtf": round(secs / max(audio, 1e-6), 3)}
