"""Serving benchmark: `cadenza serve` under load on loopback (issue 19).

    python benchmarks/serve.py            # readable lines on stderr, then one JSON line
    python benchmarks/serve.py --json     # only the JSON object
    python benchmarks/serve.py --quick    # small counts (a smoke test: about 15 s)

A real server (`python -m cadenza.cli serve`) is started as a subprocess on a free loopback port with
a temporary --data folder, its own empty config and cache, and no LLM (only workflow runs are sent,
so nothing is planned). The workload is a tiny generated workflow (trim, then fade) on a generated
1 s WAV uploaded once; each run copies it into its own folder. The server runs with --no-cache,
else every run after the first would be a step-cache hit and do no work.

Figures (targets in TARGETS):

- tools_rps: `GET /tools` (every tool with its JSON Schemas) by CLIENTS concurrent clients, until
  TOOLS_REQUESTS answers or TOOLS_SECONDS, whichever comes first; every answer must be 200.
- burst: BURST runs submitted at once (one coroutine each): 50th / 99th percentile submit latency
  (request sent to 202 received), time from the first submit to the last run's finished_at, and
  none lost or duplicated: the ids returned are distinct; `GET /runs` lists each exactly once, all
  succeeded; on disk each runs/<id>/ has state.json (succeeded, attempts 1), outputs/run.json
  (succeeded) and the output file, its events.jsonl one run_finished, and runs/ holds no other folder.
  The server's --queue is raised to QUEUE (above BURST), so the burst measures admission, not
  retries; a 429 would still be counted and resubmitted after its Retry-After. The same burst is then
  sent to a second server with the default --queue (16): how many 429s, and what waiting out their
  Retry-After (5 s) costs (burst_default_queue; not in --quick).
- memory: the server's RSS (VmRSS of /proc/PID/status) once BURST runs have finished, and again after
  TOTAL runs (the rest sent in waves of BURST at once, each wave finished before the next): growth
  must stay within 10 %. Every wave is checked for lost or duplicated runs as the burst is.

Each loop is bounded in count and time (DEADLINE_S in all); everything stays on 127.0.0.1. The client
shares the machine's cores with the server, so requests per second include the client's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import wave
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.serve_helper import LiveServer, free_port  # noqa: E402

TARGETS = {"rss_growth": 0.10}  # at most: RSS after TOTAL runs / RSS after BURST runs - 1
CLIENTS = 4
TOOLS_REQUESTS, TOOLS_SECONDS = 2000, 10.0
BURST, TOTAL, QUEUE = 50, 500, 64
DEFAULT_QUEUE = 16  # `cadenza serve`'s own --queue
DEADLINE_S = 900.0  # the whole benchmark; each wait below is cut at what is left of it
QUICK = {"tools_requests": 200, "tools_seconds": 3.0, "burst": 10, "total": 30}

WORKFLOW = """name: bench_small
inputs:
  sound: {type: audio}
steps:
  - {id: cut, tool: trim_audio, args: {audio: $sound, start: 0.1, end: 0.9}}
  - {id: fade, tool: fade_audio, args: {audio: $cut, fade_in: 0.05, fade_out: 0.05}}
outputs:
  result: $fade
"""


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def write_wav(path: Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    n = int(seconds * rate)
    frames = bytearray()
    for i in range(n):  # a 440 Hz tone: small and decodable, no numpy needed
        frames += int(8000 * math.sin(2 * math.pi * 440 * i / rate)).to_bytes(2, "little", signed=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return path


class Server(LiveServer):
    """`cadenza serve` (tests/serve_helper.py) with a temporary --data folder and cache, and an empty
    config, so no user plugin or MCP server is loaded."""

    def __init__(self, tmp: Path, queue: int):
        self.data = tmp / "data"
        port = free_port()
        super().__init__([sys.executable, "-m", "cadenza.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                          "--data", str(self.data), "--queue", str(queue), "--no-cache"], port,
                         {"CADENZA_CACHE_DIR": str(tmp / "cache"), "CADENZA_CONFIG": str(tmp / "no-config.toml")},
                         cwd=tmp)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")


def pct(values: list[float], q: float) -> float:
    """The q-th percentile, nearest rank (with 50 values, p99 is the slowest but none)."""
    s = sorted(values)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


# -- (1) GET /tools ------------------------------------------------------------------------------
async def tools_rps(url: str, requests: int, seconds: float) -> dict:
    sent, bad, lat = 0, 0, []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for _ in range(5):  # warm: the first answers build the schemas
            (await client.get("/tools")).raise_for_status()
        size = len((await client.get("/tools")).content)
        t0 = time.perf_counter()
        stop = t0 + seconds

        async def one_client() -> None:
            nonlocal sent, bad
            while sent < requests and time.perf_counter() < stop:
                sent += 1
                t = time.perf_counter()
                r = await client.get("/tools")
                lat.append(time.perf_counter() - t)
                bad += r.status_code != 200
        await asyncio.gather(*(one_client() for _ in range(CLIENTS)))
        wall = time.perf_counter() - t0
    return {"requests": len(lat), "clients": CLIENTS, "seconds": round(wall, 2), "rps": round(len(lat) / wall, 1),
            "p50_ms": round(pct(lat, 50) * 1000, 1), "p99_ms": round(pct(lat, 99) * 1000, 1),
            "not_200": bad, "body_bytes": size}


# -- (2) a burst of runs ---------------------------------------------------------------------------
async def submit_wave(url: str, upload_id: str, n: int, deadline: Deadline) -> dict:
    """`n` runs sent at once; a 429 waits its Retry-After and is sent again (counted)."""
    latencies, ids, rejected = [], [], 0
    body = {"workflow_yaml": WORKFLOW, "inputs": {"sound": upload_id}}
    # one connection each: all of them really at once. An idle connection is not reused after 1 s: a
    # resend after Retry-After (5 s) met uvicorn closing it at its 5 s keep-alive limit (httpx.ReadError)
    limits = httpx.Limits(max_connections=n + 1, keepalive_expiry=1.0)
    async with httpx.AsyncClient(base_url=url, timeout=max(5.0, deadline.left()), limits=limits) as client:
        async def one() -> None:
            nonlocal rejected
            while True:
                t = time.perf_counter()
                r = await client.post("/runs", json=body)
                latencies.append(time.perf_counter() - t)
                if r.status_code == 202:
                    ids.append(r.json()["id"])
                    return
                if r.status_code != 429 or deadline.left() < 0:
                    raise RuntimeError(f"submit answered {r.status_code}: {r.text[:200]}")
                rejected += 1
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
        t0 = time.time()
        await asyncio.gather(*(one() for _ in range(n)))
    return {"ids": ids, "latencies": latencies, "rejected_429": rejected, "t0": t0}


def wait_finished(url: str, ids: list[str], deadline: Deadline) -> list[dict]:
    """Polls `GET /runs` until every id is finished; returns the list as last read."""
    want = set(ids)
    with httpx.Client(base_url=url, timeout=30) as client:
        while True:
            runs = client.get("/runs").json()["runs"]
            mine = [r for r in runs if r["id"] in want]
            if len(mine) >= len(want) and all(r["status"] not in ("queued", "running") for r in mine):
                return runs
            if deadline.left() < 0:
                raise RuntimeError(f"runs not finished in time: {sum(r['status'] in ('queued', 'running') for r in mine)} left")
            time.sleep(0.1)


def check_runs(data: Path, runs: list[dict], expected: set[str]) -> dict:
    """Lost or duplicated, from the run list and from the files on disk."""
    listed = [r["id"] for r in runs]
    problems = []
    if len(listed) != len(set(listed)):
        problems.append(f"{len(listed) - len(set(listed))} ids listed twice")
    if set(listed) != expected:
        problems.append(f"list: {len(expected - set(listed))} missing, {len(set(listed) - expected)} unknown")
    not_ok = [r["id"] for r in runs if r["status"] != "succeeded"]
    if not_ok:
        problems.append(f"{len(not_ok)} not succeeded, e.g. {not_ok[0]}")
    folders = {p.name for p in (data / "runs").iterdir()}
    if folders != expected:
        problems.append(f"disk: {len(expected - folders)} folders missing, {len(folders - expected)} extra")
    for rid in sorted(expected & folders):
        folder = data / "runs" / rid
        try:
            state = json.loads((folder / "state.json").read_text())
            record = json.loads((folder / "outputs" / "run.json").read_text())
            output = folder / "outputs" / Path(state["outputs"]["result"]["path"]).name
            finals = [e for e in map(json.loads, (folder / "events.jsonl").read_text().splitlines())
                      if e["kind"] == "run_finished"]
        except (OSError, KeyError, TypeError, ValueError) as e:
            problems.append(f"{rid}: {type(e).__name__}: {e}")
            continue
        if state["status"] != "succeeded" or state["attempts"] != 1:
            problems.append(f"{rid}: state {state['status']}, attempts {state['attempts']}")
        if record.get("status") != "succeeded":
            problems.append(f"{rid}: run.json status {record.get('status')}")
        if not output.is_file() or output.stat().st_size < 1000:
            problems.append(f"{rid}: output {output.name} missing or empty")
        if len(finals) != 1:
            problems.append(f"{rid}: {len(finals)} run_finished events")
    return {"listed": len(listed), "folders": len(folders), "ok": not problems, "problems": problems[:10]}


def run_wave(server: Server, upload_id: str, n: int, done: set[str], deadline: Deadline) -> dict:
    wave_ = asyncio.run(submit_wave(server.url, upload_id, n, deadline))
    ids = wave_["ids"]
    runs = wait_finished(server.url, ids, deadline)
    if len(set(ids)) != len(ids):
        raise RuntimeError("the server gave one id to two submissions")
    done |= set(ids)
    mine = [r for r in runs if r["id"] in set(ids)]
    lat = wave_["latencies"]
    return {"runs": n, "submit_p50_ms": round(pct(lat, 50) * 1000, 1), "submit_p99_ms": round(pct(lat, 99) * 1000, 1),
            "submit_max_ms": round(max(lat) * 1000, 1), "rejected_429": wave_["rejected_429"],
            "all_finished_s": round(max(r["finished_at"] for r in mine) - wave_["t0"], 2),
            "run_s_median": round(statistics.median(r["finished_at"] - r["started_at"] for r in mine), 3),
            "check": check_runs(server.data, runs, done)}


def bench(tools_requests: int, tools_seconds: float, burst: int, total: int) -> dict:
    deadline = Deadline(DEADLINE_S)
    with tempfile.TemporaryDirectory(prefix="cadenza-serve-bench-") as tmp_name:
        tmp = Path(tmp_name)
        server = Server(tmp, QUEUE)
        try:
            out: dict = {"server_start_s": round(server.start_s, 2), "rss_mb_idle": round(server.rss_mb(), 1)}
            out["tools"] = asyncio.run(tools_rps(server.url, tools_requests, tools_seconds))
            sound = write_wav(tmp / "tone.wav")
            with open(sound, "rb") as f:
                r = httpx.post(server.url + "/uploads", files={"file": ("tone.wav", f)}, timeout=30)
            r.raise_for_status()
            upload_id = r.json()["id"]

            done: set[str] = set()
            out["burst"] = run_wave(server, upload_id, burst, done, deadline)
            time.sleep(0.5)  # let the workers go idle before reading memory
            rss = [(len(done), round(server.rss_mb(), 1))]
            waves = []
            while len(done) < total and deadline.left() > 0:
                waves.append(run_wave(server, upload_id, min(burst, total - len(done)), done, deadline))
                time.sleep(0.5)
                rss.append((len(done), round(server.rss_mb(), 1)))
            growth = rss[-1][1] / rss[0][1] - 1
            out["memory"] = {
                "runs_first": rss[0][0], "rss_mb_first": rss[0][1], "runs_last": rss[-1][0], "rss_mb_last": rss[-1][1],
                "growth": round(growth, 4), "target": TARGETS["rss_growth"], "pass": growth <= TARGETS["rss_growth"],
                "series": rss,
                "waves_ok": all(w["check"]["ok"] for w in waves), "rejected_429": sum(w["rejected_429"] for w in waves),
                "wave_all_finished_s": [w["all_finished_s"] for w in waves],
                "problems": [p for w in waves for p in w["check"]["problems"]][:10]}
            out["runs_done"] = len(done)
        finally:
            server.stop()
        if burst > DEFAULT_QUEUE:  # the same burst against the default --queue: 429s, resent after Retry-After
            (tmp / "default").mkdir()
            server = Server(tmp / "default", DEFAULT_QUEUE)
            try:
                with open(sound, "rb") as f:
                    r = httpx.post(server.url + "/uploads", files={"file": ("tone.wav", f)}, timeout=30)
                r.raise_for_status()
                out["burst_default_queue"] = {"queue": DEFAULT_QUEUE, **run_wave(server, r.json()["id"], burst, set(),
                                                                                  deadline)}
            finally:
                server.stop()
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="only the JSON object")
    ap.add_argument("--quick", action="store_true", help="small counts: a smoke test")
    args = ap.parse_args()
    q = QUICK if args.quick else {"tools_requests": TOOLS_REQUESTS, "tools_seconds": TOOLS_SECONDS,
                                  "burst": BURST, "total": TOTAL}
    t = time.monotonic()
    result = bench(**q)
    result.update({"quick": args.quick, "queue": QUEUE, "workers": 2, "cpus": os.cpu_count(),
                   "python": platform.python_version(), "seconds": round(time.monotonic() - t, 1)})
    if not args.json:
        t_, b, m = result["tools"], result["burst"], result["memory"]
        print(f"GET /tools: {t_['rps']} req/s ({t_['requests']} by {t_['clients']} clients, p50 {t_['p50_ms']} ms)",
              file=sys.stderr)
        print(f"{b['runs']} runs at once: submit p50 {b['submit_p50_ms']} ms, p99 {b['submit_p99_ms']} ms; "
              f"all finished in {b['all_finished_s']} s; lost/duplicated check {'ok' if b['check']['ok'] else b['check']}",
              file=sys.stderr)
        if "burst_default_queue" in result:
            d = result["burst_default_queue"]
            print(f"the same with --queue {d['queue']}: {d['rejected_429']} answers 429 (resent after Retry-After); "
                  f"all finished in {d['all_finished_s']} s; check {'ok' if d['check']['ok'] else d['check']}", file=sys.stderr)
        print(f"RSS {m['rss_mb_first']} MB after {m['runs_first']} runs, {m['rss_mb_last']} MB after {m['runs_last']} "
              f"({m['growth']:+.1%}, target <= {m['target']:.0%})", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
