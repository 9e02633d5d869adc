"""Robustness benchmark: a generated catalogue of bad inputs run against the `cadenza` command line.

    python3 benchmarks/robustness.py --json              # run everything, print one JSON object
    python3 benchmarks/robustness.py --list              # the case names, one a line
    python3 benchmarks/robustness.py --only yaml/ --only playlist/hls-http --json
    python3 benchmarks/robustness.py --self-test --only selftest/ --json   # the canary detector itself

Every case runs the CLI (`python3 -m cadenza.cli ...`) in its own temporary folder, with its own
CADENZA_CACHE_DIR, at most two at a time, each under a timeout (60 s; a timeout is not clean).

The catalogue is generated from the tool registry (each tool's inputs and their types):

- media:     every media argument of every tool given a missing file, an empty value, a 0-byte file,
             random bytes, a truncated file, the wrong kind of media, a folder
- numbers:   every number/integer argument of every tool given NaN, inf, -inf, 1e308, a 400-digit
             integer and a negative value (and the times inside subtitle segments)
- symlink:   every media argument named in a workflow through a symlink (file or folder) inside the
             workflow's folder, a `../` path or an absolute path outside the roots; a symlink in --out
- playlist:  HLS playlists (.m3u8) and ffconcat lists whose entries lie outside the roots (absolute,
             `../`, through a symlinked folder; .ts and .aac segments), or an http:// URL
- path-args: path-valued text arguments (speak voice=, transcribe model=) outside the roots
- yaml:      an alias bomb, 5,000-deep nesting, a valid 1,200-step chain (expected to succeed), tabs,
             garbage, non-mapping documents, unknown tools, cycles, python tags ...
- missing-args, out (--out a file, under a file, read-only), dollar ($-values), names (terminal
  escapes and newlines in names), data-lost (a good step beside a bad one; an output folder that
  already holds an earlier run)

A case is clean when the exit code is one it expects (2 for bad input; 0 where the input is fine,
e.g. the long valid chain; 0 or 2 where either is a reasonable answer, e.g. a negative gain or a
truncated but decodable file; 1 or 2 for a step failing at run time), a failure prints exactly one
line on stderr starting with `error:` (argparse's `usage:` lines aside), nothing prints a Traceback
or a raw control character, and with --json stdout is one JSON object.

Escapes: each case gets its own canary folder outside every allowed root (an audio file, .ts/.aac
segments, a voice folder with a .onnx file, a Whisper-like model folder), watched with Linux inotify
(IN_OPEN | IN_ACCESS, through ctypes); the tricks point at it. Any open of a canary is an escape, and
so is any request to the local HTTP canary that the http:// tricks point at.

Data lost: where a case's output folder held an earlier run, its files must be intact afterwards (and
its run.json untouched when the case fails with exit 2: nothing runs); every step run.json records as
succeeded must have its output files on disk.

Targets: all clean, zero escapes, zero lost, slowest case under 5 s.

The code: this file runs and judges the cases; the catalogue is in robustness_args.py (bad values and
escaping paths) and robustness_runs.py (workflow documents, output folders, data lost, self-test), built
from robustness_cases.py; the canaries and the synthetic media are in robustness_canaries.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the robustness_*.py modules beside this file, however it is started
    sys.path.insert(0, str(HERE))

import robustness_cases  # noqa: E402
from robustness_args import (group_dollar, group_media, group_missing, group_names, group_numbers,  # noqa: E402
                             group_path_args, group_playlist, group_symlink)
from robustness_canaries import HttpCanary, Inotify, canary_files, make_assets  # noqa: E402
from robustness_cases import REPO, Case, Env, Inv, load_tools, log, sha256_of  # noqa: E402
from robustness_runs import group_lost, group_out, group_selftest, group_yaml  # noqa: E402

TIMEOUT_S = 60.0
WORKERS = 2
TARGET_SLOWEST_S = 5.0

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


GROUPS = [group_media, group_numbers, group_symlink, group_playlist, group_path_args, group_yaml,
          group_missing, group_out, group_dollar, group_names, group_lost]


def catalogue(tools: dict, self_test: bool = False) -> list[Case]:
    cases = [c for g in GROUPS for c in g(tools)]
    if self_test:
        cases += group_selftest(tools)
    names = [c.name for c in cases]
    dupes = {n for n in names if names.count(n) > 1}
    assert not dupes, f"duplicate case names: {sorted(dupes)}"
    return cases


# -- running and judging ------------------------------------------------------------------------------

DROP_DAC = ("import ctypes, os, sys\nlibc = ctypes.CDLL(None)\n"
            "for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH out of the bounding set\n"
            "    libc.prctl(24, cap, 0, 0, 0)\n"
            "os.execv(sys.executable, [sys.executable] + sys.argv[1:])\n")


@dataclass
class Result:
    case: Case
    exit: int | None
    seconds: float
    stdout: str
    stderr: str
    timed_out: bool
    why: list[str] = field(default_factory=list)
    escapes: list[dict] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.why


def judge(case: Case, inv: Inv, rc: int | None, out: str, err: str, timed_out: bool) -> list[str]:
    why = []
    if timed_out:
        why.append("timeout")
    if "Traceback" in out or "Traceback" in err:
        why.append("traceback")
    if not timed_out and rc not in case.expect:
        why.append(f"exit {rc} (expected {'/'.join(map(str, sorted(case.expect)))})")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    if rc not in (0, None) and not case.selftest:
        if len(errors) != 1:
            why.append(f"{len(errors)} 'error:' lines on stderr")
        usage = False
        others = []
        for ln in lines:
            if ln.startswith("usage:"):
                usage = True
            elif usage and ln.startswith(" "):
                continue
            elif not ln.startswith("error:"):
                others.append(ln)
        if others:
            why.append(f"{len(others)} other stderr lines")
        if any("internal error" in ln for ln in errors):
            why.append("internal error")
    if case.selftest:
        return why
    if _CONTROL.search(err) or _CONTROL.search(out.replace("\n", "")):
        why.append("raw control character in output")
    if inv.json and not timed_out:
        try:
            if not isinstance(json.loads(out), dict):
                raise ValueError
        except ValueError:
            why.append("stdout is not one JSON object")
    return why


def check_lost(env: Env, inv: Inv, rc: int | None) -> list[str]:
    lost = []
    if env.earlier:
        for path, sha in env.earlier["files"].items():
            p = Path(path)
            if not p.is_file():
                lost.append(f"earlier output gone: {p.name}")
            elif sha256_of(p) != sha:
                lost.append(f"earlier output changed: {p.name}")
        rj = env.earlier["out"] / "run.json"
        if env.earlier.get("run_json") is not None:
            # a run that executed steps writes its own record; one where nothing ran must leave the earlier one
            if not rj.is_file():
                lost.append("earlier run.json gone")
            elif rj.read_bytes() != env.earlier["run_json"] and not _executed(rj):
                lost.append("earlier run.json replaced by a run in which no step ran")
    if inv.out is not None:
        rj = env.dir / inv.out / "run.json"
        if rj.is_file() and not (env.earlier and env.earlier.get("run_json") == rj.read_bytes()):
            try:
                doc = json.loads(rj.read_text())
            except (OSError, ValueError) as e:
                return lost + [f"run.json unreadable: {type(e).__name__}"]
            for step in doc.get("steps") or []:
                if not isinstance(step, dict) or step.get("status") not in ("succeeded", "cached"):
                    continue
                for p in _paths(step.get("outputs")):
                    if not Path(p).is_file():
                        lost.append(f"step '{step.get('id')}' succeeded but its output is gone: {Path(p).name}")
    return lost


def _executed(run_json: Path) -> bool:
    """Whether a run.json records a run in which at least one step started (or came from the cache)."""
    try:
        steps = json.loads(run_json.read_text()).get("steps") or []
    except (OSError, ValueError, AttributeError):
        return False
    return any(isinstance(s, dict) and s.get("status") in ("running", "succeeded", "cached", "failed") for s in steps)


def _paths(value: Any):
    if isinstance(value, dict):
        if isinstance(value.get("path"), str) and "kind" in value:
            yield value["path"]
        else:
            for v in value.values():
                yield from _paths(v)
    elif isinstance(value, list):
        for v in value:
            yield from _paths(v)


class Runner:
    def __init__(self, root: Path, timeout: float, keep: bool):
        self.root = root
        self.timeout = timeout
        self.keep = keep
        self.inotify = Inotify()
        self.http = HttpCanary()
        self.canary = canary_files(root / "assets")
        self.env_base = {k: v for k, v in os.environ.items() if k not in ("CADENZA_DEBUG", "CADENZA_CACHE_DIR")}
        self.env_base["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
        self.env_base.setdefault("OMP_NUM_THREADS", "1")
        self.env_base["NO_COLOR"] = "1"
        self.env_base["PYTHONDONTWRITEBYTECODE"] = "1"

    def run_case(self, idx: int, case: Case) -> Result:
        env = Env(self.root, idx, self.http.port, self.canary)
        wds = {self.inotify.watch(d): d for d in env.canary_dirs()}
        inv = None
        try:
            inv = case.build(env)
            argv = inv.argv
            if inv.drop_dac and os.geteuid() == 0:
                argv = [sys.executable, "-c", DROP_DAC] + argv[1:] if argv[0] == sys.executable else argv
            penv = dict(self.env_base, CADENZA_CACHE_DIR=str(env.dir / ".cache"))
            start = time.monotonic()
            proc = subprocess.Popen(argv, cwd=env.dir, env=penv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
            timed_out = False
            try:
                out_b, err_b = proc.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                try:
                    os.killpg(proc.pid, 9)
                except ProcessLookupError:
                    pass
                out_b, err_b = proc.communicate()
            seconds = time.monotonic() - start
            rc = None if timed_out else proc.returncode
            out, err = out_b.decode("utf-8", "replace"), err_b.decode("utf-8", "replace")
            res = Result(case, rc, seconds, out, err, timed_out)
            res.why = judge(case, inv, rc, out, err, timed_out)
            if inv.cleanup:
                inv.cleanup()
            res.lost = check_lost(env, inv, rc)
        except Exception as e:  # a broken case is reported, not hidden
            res = Result(case, None, 0.0, "", f"harness: {type(e).__name__}: {e}", False,
                         why=[f"harness error: {type(e).__name__}: {e}"])
            if inv is not None and inv.cleanup:
                inv.cleanup()
        res.escapes = [dict(e, kind="file") for e in self.inotify.events_for(wds)]
        res.escapes += [{"kind": "http", "request": h} for h in self.http.hits_for(env.key)]
        if not self.keep:
            shutil.rmtree(env.dir, ignore_errors=True)
        return res

    def close(self) -> None:
        self.inotify.close()
        self.http.close()


def run_all(cases: list[Case], timeout: float, workers: int, keep: bool) -> tuple[list[Result], Path, bool]:
    root = Path(tempfile.mkdtemp(prefix="cadenza-robustness-"))
    make_assets(root / "assets")
    runner = Runner(root, timeout, keep)
    results: list[Result | None] = [None] * len(cases)
    done = [0]
    lock = threading.Lock()

    def one(i: int) -> None:
        r = runner.run_case(i, cases[i])
        results[i] = r
        with lock:
            done[0] += 1
            flag = "ok   " if r.clean else "DIRTY"
            extra = (" ESCAPE" if r.escapes else "") + (" LOST" if r.lost else "")
            log(f"[{done[0]:3d}/{len(cases)}] {flag}{extra} {r.seconds:5.1f}s exit={r.exit} {r.case.name}"
                + ("" if r.clean else f"  ({'; '.join(r.why)})"))

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, range(len(cases))))
    finally:
        overflow = runner.inotify.overflow
        runner.close()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return [r for r in results if r is not None], root, overflow


def summarize(results: list[Result], seconds: float, overflow: bool) -> dict[str, Any]:
    by_group: dict[str, dict[str, int]] = {}
    for r in results:
        g = by_group.setdefault(r.case.group, {"tried": 0, "clean": 0})
        g["tried"] += 1
        g["clean"] += r.clean
    slowest = max(results, key=lambda r: r.seconds, default=None)
    doc = {
        "tried": len(results),
        "clean": sum(r.clean for r in results),
        "not_clean": [{"case": r.case.name, "exit": r.exit, "why": r.why, "stderr_head": r.stderr.strip()[:200],
                       "stderr_tail": (r.stderr.strip().splitlines() or [""])[-1][:200]}
                      for r in results if not r.clean],
        "escapes": [dict(e, case=r.case.name) for r in results for e in r.escapes],
        "lost": [{"case": r.case.name, "what": w} for r in results for w in r.lost],
        "slowest_s": round(slowest.seconds, 3) if slowest else 0.0,
        "slowest_case": slowest.case.name if slowest else None,
        "by_group": by_group,
        "seconds": round(seconds, 1),
    }
    if overflow:
        doc["inotify_overflow"] = True
    doc["targets"] = {"all_clean": doc["clean"] == doc["tried"], "zero_escapes": not doc["escapes"],
                      "zero_lost": not doc["lost"], "slowest_under_s": TARGET_SLOWEST_S,
                      "slowest_ok": doc["slowest_s"] < TARGET_SLOWEST_S}
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object (progress goes to stderr)")
    ap.add_argument("--list", action="store_true", help="print the case names and exit")
    ap.add_argument("--only", action="append", default=[], metavar="SUBSTRING",
                    help="run only cases whose name contains this (repeat: any of them)")
    ap.add_argument("--self-test", action="store_true",
                    help="add the selftest/ cases, which escape and lose data on purpose")
    ap.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds allowed per case")
    ap.add_argument("--workers", type=int, default=WORKERS, help="cases at once (at most 2)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    ap.add_argument("--details", action="store_true", help="add every case's exit, time and last stderr line")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)

    tools = load_tools()
    cases = catalogue(tools, args.self_test)
    if args.only:
        cases = [c for c in cases if any(s in c.name for s in args.only)]
    if args.list:
        for c in cases:
            print(c.name)
        return 0
    if not cases:
        print("no case matches", file=sys.stderr)
        return 2
    robustness_cases.QUIET = args.quiet  # log() reads it there
    start = time.monotonic()
    results, root, overflow = run_all(cases, args.timeout, max(1, min(args.workers, 2)), args.keep)
    doc = summarize(results, time.monotonic() - start, overflow)
    if args.keep:
        doc["folder"] = str(root)
    if args.details:
        doc["cases"] = [{"case": r.case.name, "exit": r.exit, "seconds": round(r.seconds, 3), "clean": r.clean,
                         "stderr_tail": (r.stderr.strip().splitlines() or [""])[-1][:200]} for r in results]
    if args.json:
        print(json.dumps(doc))
    else:
        print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
