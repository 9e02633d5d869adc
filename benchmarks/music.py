"""Music benchmark: how fast each compose_music backend available here makes 30 s and 120 s of music,
whether the same request gives the same bytes, how loud the result is, and whether five different
descriptions give five different pieces (tempo, key, mode, instruments).

    python benchmarks/music.py          # readable lines on stderr, then one JSON line
    python benchmarks/music.py --json   # only the JSON object

Each figure is the tool as a plan step runs it (`compose_music` through `Tool.invoke`, the same code
the executor calls), warm: one untimed call first loads the SoundFont (and, for a heavy backend, the
model), then the median of REPEATS timed calls. Loudness is the integrated LUFS of the written file
(ITU-R BS.1770, pyloudnorm). Backends that cannot run here are listed with the reason (no GPU and no
MusicGen / Stable Audio weights on this machine: their speed is measured on the device machine with
random-weight models only, which proves the fp16 path, not real timings).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cadenza.tools.args import convert_args  # noqa: E402
from cadenza.tools.base import ToolContext  # noqa: E402
from cadenza.tools.music.compose import COMPOSE_BACKENDS, compose_music  # noqa: E402
from cadenza.workspace import Workspace  # noqa: E402

REPEATS = 3
TARGETS = {"composer_seconds_for_30s": 1.0}
DESCRIPTIONS = ["calm ambient pad", "upbeat jazz trio", "sad cinematic strings", "energetic electronic dance",
                "lo-fi hip hop beat"]


def run(backend: str, workdir: Path, **kwargs):
    ws = Workspace.for_run(tempfile.mkdtemp(dir=workdir), {})
    ctx = ToolContext(workspace=ws, step_id="compose", backend=backend)
    t = time.perf_counter()
    out = compose_music.invoke(convert_args(compose_music, kwargs, ws, where="compose_music"), ctx)
    return out, time.perf_counter() - t, ctx.notes


def lufs(path: Path) -> float:
    import av
    import numpy as np
    import pyloudnorm

    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        channels = s.codec_context.channels
        # packed 16-bit frames come as one interleaved row: one column per channel
        x = np.concatenate([f.to_ndarray().reshape(-1, channels) for f in c.decode(s)]).astype(np.float64) / 32768
        rate = s.codec_context.sample_rate
    return round(float(pyloudnorm.Meter(rate).integrated_loudness(x)), 2)


def bench_backend(name: str, workdir: Path) -> dict:
    module = COMPOSE_BACKENDS[name]
    why = module.BACKEND.unavailable_reason()
    if why:
        return {"available": False, "reason": why}
    out = {"available": True, "max_seconds": module.MAX_SECONDS}
    run(name, workdir, description="calm piano", duration=5)  # warm: SoundFont / model loaded
    for seconds in (30, 120):
        if seconds > module.MAX_SECONDS:
            out[f"seconds_for_{seconds}s"] = None
            continue
        times = [run(name, workdir, description="calm piano", duration=seconds, seed=i)[1] for i in range(REPEATS)]
        out[f"seconds_for_{seconds}s"] = round(statistics.median(times), 3)
    a, _, _ = run(name, workdir, description="upbeat jazz", duration=20, seed=7)
    b, _, _ = run(name, workdir, description="upbeat jazz", duration=20, seed=7)
    c, _, _ = run(name, workdir, description="upbeat jazz", duration=20, seed=8)
    digest = lambda o: hashlib.sha256(o["audio"].path.read_bytes()).hexdigest()  # noqa: E731
    out["deterministic"] = digest(a) == digest(b)
    out["other_seed_differs"] = digest(a) != digest(c)
    out["lufs"] = lufs(a["audio"].path)
    pieces = []
    for d in DESCRIPTIONS:
        o, secs, notes = run(name, workdir, description=d, duration=30)
        s = o["settings"]
        pieces.append({"description": d, "style": s.get("style"), "tempo_bpm": s.get("tempo_bpm"),
                       "key": f"{s.get('key')} {s.get('mode')}", "instruments": s.get("instrument_names"),
                       "drums": s.get("drums"), "lufs": lufs(o["audio"].path), "seconds": round(secs, 3)})
    out["pieces"] = pieces
    out["distinct"] = {k: len({json.dumps(p[k], sort_keys=True) for p in pieces})
                       for k in ("style", "tempo_bpm", "key", "instruments")}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cadenza-bench-music-") as tmp:
        result = {"backends": {name: bench_backend(name, Path(tmp)) for name in COMPOSE_BACKENDS}}
    comp = result["backends"].get("composer", {})
    result["targets"] = {"composer_seconds_for_30s": {"target": TARGETS["composer_seconds_for_30s"],
                                                      "measured": comp.get("seconds_for_30s"),
                                                      "pass": (comp.get("seconds_for_30s") or 99) < 1.0}}
    if not args.json:
        for name, b in result["backends"].items():
            if not b["available"]:
                print(f"{name}: not here ({b['reason']})", file=sys.stderr)
                continue
            print(f"{name}: 30 s in {b['seconds_for_30s']} s, 120 s in {b['seconds_for_120s']} s, "
                  f"deterministic {b['deterministic']}, {b['lufs']} LUFS", file=sys.stderr)
            for p in b["pieces"]:
                print(f"  {p['description']!r}: {p['style']}, {p['tempo_bpm']} bpm, {p['key']}, "
                      f"{p['instruments']}, drums {p['drums']}", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
