"""Dubbing benchmark: `cadenza dub` on a ~60 s clip of known speech, both ways (Spanish to English,
English to Spanish), with the embedded offline models (Whisper, the llama.cpp LLM, the offline voices).

    python benchmarks/dub.py                          # readable lines on stderr, then one JSON line
    python benchmarks/dub.py --json                   # only the JSON object on stdout (progress on stderr)
    python benchmarks/dub.py --quick                  # 5 sentences (~20 s clip): a smoke run
    python benchmarks/dub.py --directions en-es       # one direction (es-en, en-es; default both)
    python benchmarks/dub.py --no-voices              # skip the per-voice re-runs
    python benchmarks/dub.py --keep                   # keep the work folder (clips, outputs, run.json)
    python benchmarks/dub.py --wait-quiet 600         # before each timed run, wait for idle CPUs
    python benchmarks/dub.py --cold-runs 3            # the cold run three times: the timing's spread

A full run takes about 10-20 minutes on 2 cores (most of it the cold runs, the per-voice runs and the
Whisper base transcriptions of every dubbed track).

The clip. SCRIPT holds 14 everyday English sentences with a careful human Spanish translation. For
English to Spanish the English sentences are the source and the Spanish the reference; for Spanish to
English the other way round. Each sentence is spoken by Cadenza's own `speak` tool with an offline voice
(English: the default English voice, hibari 'heart'; Spanish: the Kokoro multilingual voice that
`voices_for_language('es')` lists), its own edge silence cut to 50 ms, and the sentences are joined
with pauses of 0.8-1.5 s (the PAUSES pattern stretched or shrunk to fill the clip) on a 60 s clip:
as many sentences as fit at the shortest pause, at least 12 (the slower Kokoro Spanish fits fewer),
any rest as silence at the end. The sound is put on a generated mute video (tests/media_factory.py)
with the `replace_audio` tool. Made clips are cached in $TMPDIR/cadenza-bench-dub-clips (keyed by
the text, voice and timing). Each direction gets a fresh CADENZA_CACHE_DIR, so its first run is cold
for the step cache and the per-line voice cache; assembled model files (CADENZA_MODELS_DIR, default
~/.cache/cadenza/models, including the LLM's saved prompt-prefix states) are kept, as a user's second
video would find them. --quick: the first 5 sentences, no padding.

Every run is a subprocess, `python -m cadenza.cli dub clip.mp4 --to LANG --out out --json`, timed
from start to exit: what a user waits for, interpreter start-up and imports included. No --from: the
spoken language is detected, as a user's plain call does. How each figure is measured:

- wall_s: the first (cold) run. `stages` are the step seconds from its run.json (sound, words, lines,
  tr, speech, mix, dubbed, srt, vtt; srt/vtt may overlap mix/dubbed, the executor runs independent
  steps in parallel) and `startup_and_exit_s` = wall_s - the run's own seconds in run.json (interpreter,
  imports, planning, writing dub_lines.json). The target is half of the clip's length (30 s for 60 s).
  With --cold-runs N the cold run is repeated N-1 more times, each with a fresh cache (cold_runs lists
  them all with the CPU share other processes took meanwhile; wall_s_median, and
  wall_s_least_contended with its stages). wall_s stays the first run.
- rerun_fraction: the same command again (unchanged), its wall / wall_s.
- edit_rerun_fraction: one line's translation in dub_lines.json changed to another sentence of about
  the same length (EDITS), run again with --lines; its wall / wall_s. `edit` records from run.json which
  lines the speech step synthesized (it should be only the edited one) and which steps came from cache.
- max_start_offset_ms: measured on the audio of the speech track (the workflow's `speech` output, a WAV
  in the out folder), not taken from the report. For each line, its onset is the first sample above
  -50 dB (speak_lines' idea of silence, fit.SILENCE_DB) between the line's start and the next line's
  start. speak_lines places a line's fitted audio at the line's start sample, and that audio begins
  with a kept margin: fit.strip_silence cuts the voice's leading near-silence but keeps MARGIN_S =
  0.03 s before the first loud sample (less when the voice's own output has less leading silence, as
  espeak-ng's has none; 30/speed ms when the line is sped up). So a line placed exactly on time has
  its onset between start and start + MARGIN_S. Its offset is how far the onset falls outside that
  window: late = onset - start - MARGIN_S when positive; early (negative) = sound in the 20 ms before
  the start where the previous line, by its report, is already over. The figure is the largest |offset|.
  tests/test_dub.py checks |onset - start - MARGIN_S| instead, which reads 30 ms for a voice with no
  leading silence that is exactly on time; that figure is listed too (max_offset_ms_test_convention),
  with every line's raw onset - start (onset_after_start_ms). Beside it, slot_start_vs_true_onset_ms
  says how far each line's start (Whisper's time for its first word) is from the true onset of the
  sentence nearest it in the clip: the dub follows the line's start, so this is its error against the
  original speech, which max_start_offset_ms cannot see.
- max_speed_factor: the largest speed_factor in dub_lines.json. rewrites: lines spoken with a shorter
  rendering from the LLM (spoken_text differs from translation; action 'shorten', or 'trim' after a
  rewrite that was still too long); trims: lines with action 'trim' (tail cut with a fade);
  needed_rewrite_or_trim: lines with either.
- dubbed_wer: Whisper base (faster-whisper, int8, the most accurate offline Whisper here; language set
  to the target) transcribes the speech track; word error rate (jiwer) against what the lines were to
  say (each line's spoken_text joined; equal to the translations unless a line was rewritten).
  dubbed_wer_vs_translation scores against the translations themselves, and dubbed_wer_mix the dubbed
  video's first audio track (the dub over the ducked original). Text is normalised on both sides:
  lowercased, numbers written as words (num2words in the target language), punctuation dropped,
  accented letters kept. The target (at most 10 %) is set for dubbing into English; into Spanish
  the figure is reported without one.
- chrf: sacrebleu chrF of the translation (each line's `translation` joined) against the reference
  (the script's sentences in the target language, joined), scored as ONE segment, because Cadenza's
  lines merge and split sentences differently from the script. chrf_spoken does the same with the
  spoken text. source_asr_wer is the transcript's WER (the `words` step) against the source script,
  the translator's input: a translation can be no better than what was heard.
- voices: for each voice `voices_for_language(target)` lists, a re-run with --voice <voice> into a fresh
  --out with the same cache (every step before the voice comes from the cache; the per-line cache may
  also hold lines already spoken by the same voice): its wall, status, voice_used, lines synthesized,
  dubbed_wer, max_start_offset_ms, max_speed_factor, rewrites, trims. When `cadenza dub --voice` fails
  or speaks with another voice than asked (voice_used differs), the CLI's answer is recorded and the
  voice is also measured with `cadenza workflow run` on a copy of dub.yaml whose speech step forces
  the voice's backend (`via` says which was used).

- speech_probe (diagnostic, in this process; --no-probes skips both probes): the run's voice loaded
  with a short sentence, then every line's spoken text synthesized with `speak`: seconds, audio
  seconds, real-time factor. shorten_llm_calls counts the LLM calls for shorter renderings (from
  each line's warnings): the speech step pays for them too.
- tr_probe (diagnostic, after the timed runs, in this process): the embedded
  LLM's load time, then translate_lines on the same source lines the `tr` step got (its batches and
  JSON-schema-constrained replies): seconds, LLM calls, reply tokens and tokens/s; then the first
  batch asked again without the grammar, to show what the constraint costs (valid: the reply was
  JSON with the right number of lines anyway; lines_differing: against the constrained reply).
  same_as_run says whether the probe gave the run's translation (greedy decoding: it should).
- others_cpu_share_during_*: CPU time other processes used during a timed run (machine busy time
  from /proc/stat less the run's own CPU time), as a share of all cores: 0 is an idle machine, 0.5
  one core taken by others. The timings are only comparable where it is small.

Nothing is hard-coded: every figure comes from the runs. Timings on a shared 2-core machine are noisy,
and llama.cpp slows down several-fold when another process competes for the cores: `--wait-quiet
SECONDS` waits (up to that long) before each timed run until the CPUs are under 30 % busy, and every
direction records the CPU use seen before its timed runs and the load average around the cold run.

The code: this file runs the directions and writes the report; the clip is made in dub_clip.py, the
figures are measured in dub_measure.py, and the timed runs and in-process probes are in dub_runs.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the dub_*.py modules beside this file, however it is started
    sys.path.insert(0, str(HERE))

from dub_clip import CLIP_S, MIN_SENTENCES, ROOT, SCRIPT, make_clip  # noqa: E402
from dub_measure import chrf, line_figures, speech_scores, wer  # noqa: E402
from dub_runs import (QUIET, cadenza, llm_probe, log, out_path, steps_of, voice_figures, voice_probe,  # noqa: E402
                     wait_quiet)

QUICK = 5  # sentences in --quick
# Replacement lines for the edit re-run, per target language; the one closest in length is used.
EDITS = {
    "en": ["The library closes early on Sundays.", "Our neighbours grow tomatoes in their garden.",
           "The river is cold even in the middle of summer.",
           "Everyone in the village knows the baker by his first name.",
           "The children walk to school together every morning, even when it rains.",
           "Good night.", "See you next week."],
    "es": ["La biblioteca cierra temprano los domingos.", "Nuestros vecinos cultivan tomates en su jardín.",
           "El río está frío incluso en pleno verano.",
           "Todo el mundo en el pueblo conoce al panadero por su nombre.",
           "Los niños van juntos a la escuela cada mañana, aunque llueva.",
           "Buenas noches.", "Hasta la semana que viene."],
}
DIRECTIONS = {"es-en": ("es", "en"), "en-es": ("en", "es")}
STEPS = ("sound", "words", "lines", "tr", "speech", "mix", "dubbed", "srt", "vtt")
TARGETS = {"wall_fraction_of_clip": 0.5, "rerun_fraction": 0.05, "edit_rerun_fraction": 0.15,
           "max_start_offset_ms": 20.0, "dubbed_wer_into_en": 0.10}


def direction(name: str, quick: bool, voices: bool, llm: bool, cold_runs: int, base: Path) -> dict:
    from cadenza.tools.speech.speak import voices_for_language

    src, dst = DIRECTIONS[name]
    wd = base / name
    wd.mkdir(parents=True)
    cache = wd / "cache"
    pairs = SCRIPT[:QUICK] if quick else SCRIPT
    log(f"{name}: making the clip (up to {len(pairs)} sentences in {src})")
    clip = make_clip(pairs, src, wd, len(pairs) if quick else MIN_SENTENCES, 0.0 if quick else CLIP_S)
    pairs = pairs[:clip["sentences"]]  # the sentences that fit in the clip
    source = [p[0] if src == "en" else p[1] for p in pairs]
    reference = [p[0] if dst == "en" else p[1] for p in pairs]
    shutil.copy(clip["path"], wd / "clip.mp4")
    how = "cached" if clip["cached"] else f"made in {clip['made_s']} s"
    log(f"{name}: clip {clip['seconds']} s, {clip['sentences']} sentences ({how}); cold run of cadenza dub --to {dst}")
    res: dict = {"source_language": src, "target_language": dst,
                 "clip": {k: clip[k] for k in ("seconds", "speech_s", "sentences", "words", "silence_between_s",
                                               "trailing_silence_s", "backend", "voice")}}
    cmd = ["dub", "clip.mp4", "--to", dst, "--out", "out"]
    res["quiet_before_cold_run"] = wait_quiet()
    load_before = [round(v, 2) for v in os.getloadavg()]
    cold = cadenza(cmd, wd, cache)
    res["load_avg_around_cold_run"] = [load_before, [round(v, 2) for v in os.getloadavg()]]
    if cold["rc"] != 0 or not cold["doc"]:
        res.update(status="failed", error=cold["error"], wall_s=cold["wall_s"])
        log(f"{name}: the cold run failed: {cold['error']}")
        return res
    steps, run_s = steps_of(Path(cold["doc"]["run_json"]))
    outputs = cold["doc"]["outputs"]
    speech = out_path(outputs.get("speech"))
    video = out_path(outputs.get("video"))
    lines = json.loads((wd / "out" / "dub_lines.json").read_text(encoding="utf-8"))["lines"]
    res.update(status="ok", wall_s=cold["wall_s"], cold_run_cpu_s=cold["cpu_s"],
               others_cpu_share_during_cold_run=cold["others_cpu_share"],
               stages={s: round(steps[s].get("seconds") or 0.0, 2) for s in STEPS if s in steps},
               run_s=round(run_s, 2), startup_and_exit_s=round(cold["wall_s"] - run_s, 2),
               backends={s: steps[s].get("backend") for s in STEPS if s in steps},
               detected_language=(steps["words"].get("outputs") or {}).get("language"),
               speech_notes=steps["speech"].get("notes", [])[:4])
    log(f"{name}: wall {cold['wall_s']:.1f} s; stages {res['stages']}; measuring the lines and the speech")
    res.update(line_figures(lines, speech))
    translation = " ".join(ln["translation"] for ln in lines)
    spoken = " ".join((ln.get("spoken_text") or ln["translation"]) for ln in lines)
    heard_source = (steps["words"].get("outputs") or {}).get("text", "")
    res.update(chrf=chrf(translation, " ".join(reference)), chrf_spoken=chrf(spoken, " ".join(reference)),
               source_asr_wer=wer(" ".join(source), heard_source, src), source_heard=heard_source,
               translation=translation, reference=" ".join(reference))
    # how far each line's slot start (Whisper's word time) is from the true onset of its sentence
    # how far each line's slot start (Whisper's first word time) is from the true onset of the sentence
    # nearest to it (known from the clip): the dub can be no closer to the original speech than this
    slot_err = [round(min((ln["start"] - t for t in clip["onsets"]), key=abs) * 1000, 1) for ln in lines]
    res.update(slot_start_vs_true_onset_ms=slot_err,
               max_slot_start_vs_true_onset_ms=max(map(abs, slot_err)) if slot_err else None)
    res.update(speech_scores(lines, speech, dst, wd, video))
    log(f"{name}: dubbed WER {res['dubbed_wer']:.1%}, chrF {res['chrf']}, max offset {res['max_start_offset_ms']} ms")

    log(f"{name}: unchanged re-run")
    res["quiet_before_rerun"] = wait_quiet()
    again = cadenza(cmd, wd, cache)
    st2, run2 = steps_of(Path(again["doc"]["run_json"])) if again["doc"] else ({}, 0.0)
    res.update(rerun_s=again["wall_s"], rerun_fraction=round(again["wall_s"] / cold["wall_s"], 4),
               others_cpu_share_during_rerun=again["others_cpu_share"],
               rerun={"rc": again["rc"], "run_s": round(run2, 3),
                      "steps": {s: st2[s]["status"] for s in STEPS if s in st2}})

    # the edit: one line (the middle one) gets another sentence of about the same length
    idx = len(lines) // 2
    old = lines[idx]["translation"]
    new = min((e for e in EDITS[dst] if e != old), key=lambda e: abs(len(e) - len(old)))
    doc = json.loads((wd / "out" / "dub_lines.json").read_text(encoding="utf-8"))
    doc["lines"][idx]["translation"] = new
    (wd / "edited.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    log(f"{name}: edit re-run (line {idx}: {old!r} -> {new!r})")
    res["quiet_before_edit_rerun"] = wait_quiet()
    edit = cadenza(cmd + ["--lines", "edited.json"], wd, cache)
    res.update(edit_rerun_s=edit["wall_s"], edit_rerun_fraction=round(edit["wall_s"] / cold["wall_s"], 4),
               others_cpu_share_during_edit_rerun=edit["others_cpu_share"])
    if edit["rc"] == 0 and edit["doc"]:
        st3, run3 = steps_of(Path(edit["doc"]["run_json"]))
        sp = st3["speech"].get("outputs") or {}
        res["edit"] = {"line": idx, "old": old, "new": new, "run_s": round(run3, 3),
                       "synthesized": sp.get("synthesized"), "only_that_line": sp.get("synthesized") == [idx],
                       "steps": {s: st3[s]["status"] for s in STEPS if s in st3},
                       "stages": {s: round(st3[s].get("seconds") or 0.0, 2) for s in STEPS if s in st3}}
    else:
        res["edit"] = {"line": idx, "rc": edit["rc"], "error": edit["error"]}

    runs = [{"wall_s": cold["wall_s"], "others_cpu_share": cold["others_cpu_share"], "cpu_s": cold["cpu_s"],
             "stages": res["stages"], "startup_and_exit_s": res["startup_and_exit_s"]}]
    for k in range(1, cold_runs):  # more cold runs, each with a fresh cache: the timing's spread
        log(f"{name}: cold run {k + 1} of {cold_runs}")
        quiet = wait_quiet()
        r = cadenza(["dub", "clip.mp4", "--to", dst, "--out", f"out-cold{k}"], wd, wd / f"cache-cold{k}")
        entry = {"wall_s": r["wall_s"], "others_cpu_share": r["others_cpu_share"], "cpu_s": r["cpu_s"],
                 "cpu_busy_before": quiet["cpu_busy_before"], "rc": r["rc"]}
        if r["rc"] == 0 and r["doc"]:
            st, rs = steps_of(Path(r["doc"]["run_json"]))
            entry.update(stages={s: round(st[s].get("seconds") or 0.0, 2) for s in STEPS if s in st},
                         startup_and_exit_s=round(r["wall_s"] - rs, 2))
        runs.append(entry)
    res["cold_runs"] = runs
    if len(runs) > 1:
        ok = [r for r in runs if r.get("stages")]
        least = min(ok, key=lambda r: (r["others_cpu_share"] is None, r["others_cpu_share"] or 0.0))
        res.update(wall_s_median=round(sorted(r["wall_s"] for r in ok)[len(ok) // 2], 2),
                   wall_s_least_contended=least["wall_s"], least_contended_others_cpu_share=least["others_cpu_share"],
                   least_contended_stages=least["stages"])

    if voices:
        res["voices"] = {}
        for backend, voice, _note in voices_for_language(dst):
            log(f"{name}: --voice {voice} ({backend})")
            res["voices"][f"{backend}:{voice}"] = voice_figures(backend, voice, dst, wd, cache)
    if llm:
        res["quiet_before_probes"] = wait_quiet()
        used = sorted({ln.get("voice_used") for ln in lines if ln.get("voice_used")})
        log(f"{name}: probing the speech step in-process (voice {used})")
        try:
            res["speech_probe"] = voice_probe([ln.get("spoken_text") or ln["translation"] for ln in lines
                                               if ln.get("action") != "empty"], dst, used[0], wd)
        except Exception as e:
            res["speech_probe"] = {"error": f"{type(e).__name__}: {e}"}
        log(f"{name}: probing the translation step in-process")
        src_lines = [ln["text"] for ln in ((steps["lines"].get("outputs") or {}).get("lines") or [])]
        try:
            probe = llm_probe(src_lines, src, dst)
            probe["same_as_run"] = probe.pop("translation") == [ln["translation"] for ln in lines]
            res["tr_probe"] = probe
        except Exception as e:  # a diagnostic: never lose the measured figures for it
            res["tr_probe"] = {"error": f"{type(e).__name__}: {e}"}
    wall_target = TARGETS["wall_fraction_of_clip"] * clip["seconds"]
    res["pass"] = {"wall_s": res["wall_s"] <= wall_target,
                   "rerun_fraction": res["rerun_fraction"] <= TARGETS["rerun_fraction"],
                   "edit_rerun_fraction": res["edit_rerun_fraction"] <= TARGETS["edit_rerun_fraction"],
                   "edit_synthesized_only_that_line": bool(res["edit"].get("only_that_line")),
                   "max_start_offset_ms": (res["max_start_offset_ms"] is not None
                                           and res["max_start_offset_ms"] <= TARGETS["max_start_offset_ms"])}
    if "wall_s_least_contended" in res:
        res["pass"]["wall_s_least_contended"] = res["wall_s_least_contended"] <= wall_target
    if dst == "en":
        res["pass"]["dubbed_wer"] = res["dubbed_wer"] <= TARGETS["dubbed_wer_into_en"]
    res["wall_target_s"] = round(wall_target, 2)
    return res


def machine() -> dict:
    from cadenza.llm.chat import resolve_spec

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "cadenza"], cwd=ROOT,
                                    capture_output=True, text=True).stdout.strip())
    except OSError:
        commit, dirty = None, None
    tree = hashlib.sha256()
    for f in sorted((ROOT / "cadenza").rglob("*")):
        if f.is_file() and f.suffix in (".py", ".yaml", ".json", ".jsonl"):
            tree.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0], "llm": resolve_spec(),
            "load_avg_start": [round(v, 2) for v in os.getloadavg()], "commit": commit,
            "cadenza_tree_modified": dirty, "cadenza_tree_sha256": tree.hexdigest()[:16]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON object on stdout")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK} sentences (a ~20 s clip): a smoke run")
    ap.add_argument("--directions", default="es-en,en-es", help="es-en, en-es or both (comma-separated)")
    ap.add_argument("--no-voices", action="store_true", help="skip the per-voice re-runs")
    ap.add_argument("--no-probes", action="store_true", help="skip the in-process timing of translation and voice")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="before each timed run, wait up to this long for the CPUs to be under 30%% busy")
    ap.add_argument("--cold-runs", type=int, default=1, metavar="N",
                    help="run the cold dub N times (a fresh cache each) to show the timing's spread")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (printed on stderr)")
    opts = ap.parse_args()
    QUIET["max_wait_s"] = opts.wait_quiet
    names = [d.strip() for d in opts.directions.split(",") if d.strip()]
    bad = [d for d in names if d not in DIRECTIONS]
    if bad:
        ap.error(f"unknown direction(s) {bad}; known: {', '.join(DIRECTIONS)}")
    base = Path(tempfile.mkdtemp(prefix="cadenza-bench-dub-"))
    os.environ["CADENZA_CACHE_DIR"] = str(base / "bench-cache")  # this process's own tool runs
    t0 = time.perf_counter()
    result: dict = {"machine": machine()}
    try:
        for d in names:
            result[d.replace("-", "_to_")] = direction(d, opts.quick, not opts.no_voices, not opts.no_probes, max(1, opts.cold_runs), base)
            (base / "partial.json").write_text(json.dumps(result, ensure_ascii=False, default=_plain))
    finally:
        if opts.keep:
            log(f"work folder kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    result["targets"] = {**TARGETS, "wall_s": "at most wall_fraction_of_clip x the clip's length (30 s for 60 s)"}
    result["machine"]["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
    result["total_s"] = round(time.perf_counter() - t0, 1)
    result["quick"] = opts.quick
    if not opts.json:
        for d in names:
            r = result[d.replace("-", "_to_")]
            if r.get("status") != "ok":
                print(f"{d}: FAILED ({r.get('error')})", file=sys.stderr)
                continue
            print(f"{d}: clip {r['clip']['seconds']} s, {r['lines']} lines; wall {r['wall_s']:.1f} s "
                  f"(target {r['wall_target_s']} s) = startup {r['startup_and_exit_s']} s + "
                  + ", ".join(f"{k} {v}" for k, v in r["stages"].items()), file=sys.stderr)
            for i, c in enumerate(r.get("cold_runs", [])[1:], 2):
                print(f"  cold run {i}: {c['wall_s']:.1f} s (others used {c['others_cpu_share']} of the CPUs)",
                      file=sys.stderr)
            print(f"  re-run {r['rerun_fraction']:.1%} of it, edit re-run {r['edit_rerun_fraction']:.1%} "
                  f"(synthesized {r['edit'].get('synthesized')})", file=sys.stderr)
            print(f"  max start offset {r['max_start_offset_ms']} ms, max speed {r['max_speed_factor']}, "
                  f"rewrites {r['rewrites']}, trims {r['trims']}", file=sys.stderr)
            print(f"  dubbed WER {r['dubbed_wer']:.1%} (mix {r['dubbed_wer_mix']:.1%}), chrF {r['chrf']}, "
                  f"source ASR WER {r['source_asr_wer']:.1%}", file=sys.stderr)
            for k, v in (r.get("voices") or {}).items():
                if v.get("status") != "ok":
                    print(f"  voice {k}: failed ({v.get('error')})", file=sys.stderr)
                    continue
                print(f"  voice {k} via {v['via']}: wall {v['wall_s']:.1f} s, WER {v['dubbed_wer']:.1%}, "
                      f"max offset {v['max_start_offset_ms']} ms, max speed {v['max_speed_factor']}"
                      + (f" [cli: {v['cli']['status']}]" if "cli" in v else ""), file=sys.stderr)
            print(f"  pass: {r['pass']}", file=sys.stderr)
        print(f"total {result['total_s']} s", file=sys.stderr)
    print(json.dumps(result, ensure_ascii=False, default=_plain))


def _plain(o):
    """numpy scalars as Python ones (json cannot write np.bool_ or np.int64)."""
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON: {type(o).__name__}")


if __name__ == "__main__":
    main()
