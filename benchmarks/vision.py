"""Vision benchmark: caption_video on clips made here (tests/vision_media.py: shots of different background
colours with a moving shape, known on-screen text shown at known times, a spoken sound track), 720p H.264.

    python benchmarks/vision.py            # readable lines on stderr, then one JSON line
    python benchmarks/vision.py --json     # only the JSON object
    python benchmarks/vision.py --no-long  # leave out the 10-minute clip (its memory run takes minutes)

Figures:
- `backends`: frames a second through each captioning backend's `caption(ctx, request)` on 640 x 360 frames of
  the 60 s clip (the size caption_video hands them), warm (one untimed request first). offline: the real
  describer (EfficientNet-Lite0, RapidOCR, faces, colours). transformers: a tiny random-weight BLIP built
  here, on CPU: the cost of the wiring (processor, generate, decoding), not of a real model; "unavailable"
  when transformers cannot build it.
- `clip_60s`: caption_video on a 60 s 720p clip with speech, offline, in a fresh process (as a user's first
  call: imports aside, the models load inside the call): `call_s` (target under 20 s on 2 cores), the
  scenes' precision and recall against the known cuts (a found cut within 2 frames of a known one counts),
  and for each on-screen text whether it was read with its first-seen time within 1 s of its appearance.
- `pan_20s`: 20 s of 720p where the whole picture moves, no text: what reading text costs on moving footage
  (every sample is read in full there).
- `memory_maxrss_mb`: ru_maxrss of a child process captioning the 60 s clip and a 10-minute 720p clip (the
  same shots, cycled; the speech once a minute), with and without transcription; `vmhwm_mb` the same runs'
  VmHWM (the process's own peak). Target: under 1.5 GB, and the 10-minute figure at most the 1-minute one
  plus 10 %. The children run before this process loads any model (ru_maxrss survives exec on Linux).

Clips are generated once into --cache (default ~/.cache/cadenza-bench/vision). Each caption_video run is
its own process (`--child`), so model loads and peak memory are per run. Machine load is recorded: the
figures are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

CLIP_VERSION = "2"
SPEECH = ("Welcome to the harbour town. Every morning the boats leave before sunrise and come back at noon. "
          "The market opens at eight and the bakery sells fresh bread all day. In the evening the old town "
          "is quiet, and the last train leaves at ten.")
WIDTH, HEIGHT = 1280, 720
CUT_TOLERANCE = 2 / 25  # seconds: a found cut this close to a known one matches it
TEXT_TOLERANCE = 1.0
CALL_TARGET_S = 20.0
MEMORY_TARGET_MB, MEMORY_GROWTH = 1536.0, 0.10
QUIET = {"stderr": True}


def log(msg: str) -> None:
    if QUIET["stderr"]:
        print(msg, file=sys.stderr, flush=True)


# -- clips ---------------------------------------------------------------------------------------------------
def clip(cache: Path, seconds: int):
    """(video path, Clip) of a `seconds`-long 720p clip with speech, made once."""
    import numpy as np

    import media_factory as mf
    import vision_media as vm

    cache.mkdir(parents=True, exist_ok=True)
    speech = cache / f"speech-v{CLIP_VERSION}.wav"
    if not speech.exists():
        log("speaking the sound track (once)")
        mf.spoken(speech.with_suffix(".tmp.wav"), SPEECH).rename(speech)
    shots = vm.standard_shots(float(seconds))
    path = cache / f"clip-{seconds}s-{WIDTH}x{HEIGHT}-v{CLIP_VERSION}.mp4"
    if not path.exists():
        log(f"making the {seconds} s clip (once)")
        track = speech
        if seconds > 60:  # the speech once a minute
            rate = 22050
            x = vm._read_wav(speech, rate)[:60 * rate]
            minute = np.zeros(60 * rate)
            minute[:len(x)] = x
            track = mf.write_audio(cache / f"speech-{seconds}s.wav", np.tile(minute, seconds // 60 + 1), rate)
        tmp = path.with_suffix(".tmp.mp4")
        vm.make_clip(tmp, shots, WIDTH, HEIGHT, speech=track)
        tmp.rename(path)
    return path, known(shots)


def pan_clip(cache: Path) -> Path:
    """20 s of 720p where the whole picture moves (a coarse random texture panning 4 px a frame, no text, no
    sound): every text sample changes everywhere, so each is read in full. The cost of text on moving footage."""
    import av
    import numpy as np

    path = cache / f"pan-20s-{WIDTH}x{HEIGHT}-v{CLIP_VERSION}.mp4"
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    tex = rng.integers(60, 200, (HEIGHT // 8, 2 * WIDTH // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as out:
        vs = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "28"})
        vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(500):
            x = (i * 4) % WIDTH
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(tex[:, x:x + WIDTH]), format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    tmp.rename(path)
    return path


def known(shots) -> dict:
    import vision_media as vm

    cuts, texts, duration = vm.layout(shots)
    return {"cuts": cuts, "texts": texts, "duration": duration}


# -- one caption_video run in this process (the child) --------------------------------------------------------
def child(video: str, transcribe: bool) -> None:
    import importlib

    from cadenza.tools.args import convert_args
    from cadenza.tools.base import ToolContext
    from cadenza.workspace import Workspace

    cv = importlib.import_module("cadenza.tools.vision.caption_video")
    import cadenza.tools.vision.screen_text as st

    reads = {"reads": 0, "samples": 0}
    finish = st.ScreenText.segments

    def counted(self, end):  # the reader's counters, for the record
        reads["reads"], reads["samples"] = self.reads, self.samples
        return finish(self, end)

    st.ScreenText.segments = counted
    tool = cv.caption_video
    kwargs = {"video": video, "transcribe": transcribe}
    ws = Workspace.for_run(tempfile.mkdtemp(), kwargs)
    ctx = ToolContext(workspace=ws, step_id=tool.name, backend="offline")
    args = convert_args(tool, kwargs, ws, where=tool.name)
    cpu0, t0 = time.process_time(), time.perf_counter()
    out = tool.invoke(args, ctx)
    call_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    print(json.dumps({
        "call_s": round(call_s, 2), "cpu_s": round(cpu_s, 2),
        "maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "hwm_mb": _hwm_mb(),
        "starts": [s.start for s in out["scenes"]], "frames": sum(len(s.frame_times) for s in out["scenes"]),
        "screen_text": [[s.text, s.start, s.end] for s in out["screen_text"]],
        "transcript": out["transcript"], "summary": out["summary"], "notes": ctx.notes,
        "first_description": out["scenes"][0].description if out["scenes"] else None, **reads}))


def _hwm_mb() -> float | None:
    """This process's own peak RSS (VmHWM). ru_maxrss is kept across exec on Linux, so a child started by a
    parent that had loaded models reports the parent's size when larger: the parent here runs its children
    before it loads any model, and both figures are recorded."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def run_child(video: Path, transcribe: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, __file__, "--child", str(video), "--transcribe", str(int(transcribe))],
                       capture_output=True, text=True, env=env, timeout=3600)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"child run on {video.name} failed: {p.stderr.strip()[-800:]}")
    doc = json.loads(p.stdout.strip().splitlines()[-1])
    doc["process_wall_s"] = round(wall, 2)
    return doc


# -- scoring ---------------------------------------------------------------------------------------------------
def cut_scores(found: list[float], truth: list[float]) -> dict:
    found_cuts = [t for t in found if t > 0]
    matched, used = 0, set()
    for t in found_cuts:
        j = next((j for j, c in enumerate(truth) if j not in used and abs(c - t) <= CUT_TOLERANCE + 1e-6), None)
        if j is not None:
            used.add(j)
            matched += 1
    return {"cuts": len(truth), "found": len(found_cuts),
            "precision": round(matched / len(found_cuts), 4) if found_cuts else 1.0,
            "recall": round(matched / len(truth), 4) if truth else 1.0}


def text_scores(found: list, truth: list) -> dict:
    ok, missed = 0, []
    for text, appears, _ in truth:
        hit = [s for s in found if s[0] == text and appears - 0.05 <= s[1] <= appears + TEXT_TOLERANCE]
        if hit:
            ok += 1
        else:
            missed.append({"text": text, "appears": appears, "read": [s for s in found if s[0] == text][:2]})
    extra = sorted({s[0] for s in found} - {t for t, _, _ in truth})
    return {"texts": len(truth), "found_in_time": ok, "missed": missed[:10], "other_readings": extra[:10]}


# -- backends ---------------------------------------------------------------------------------------------------
def frames_of(video: Path, n: int) -> list:
    """`n` frames spread over the video, downscaled as caption_video hands them to a backend."""
    import av

    from cadenza.tools.vision.caption_video import CAPTION_SIDE

    with av.open(str(video)) as c:
        s = c.streams.video[0]
        dur = float(s.duration * s.time_base)
        want = [dur * (i + 0.5) / n for i in range(n)]
        out = []
        for frame in c.decode(s):
            if want and frame.time >= want[0]:
                w = CAPTION_SIDE
                out.append(frame.reformat(width=w, height=w * frame.height // frame.width, format="rgb24").to_image())
                want.pop(0)
    return out


def backend_fps(video: Path, n: int = 24) -> dict:
    from cadenza.runtime import ModelRuntime
    from cadenza.tools.vision import describe_offline
    from cadenza.tools.vision.common import CaptionRequest

    frames = frames_of(video, n)
    ctx = type("Ctx", (), {"runtime": ModelRuntime(device="cpu"), "check_cancelled": lambda self: None})()
    out = {}
    describe_offline.caption(ctx, CaptionRequest(images=frames[:2]))  # models loaded, untimed
    t0 = time.perf_counter()
    describe_offline.caption(ctx, CaptionRequest(images=frames, scene=True))
    out["offline"] = {"frames_per_s": round(n / (time.perf_counter() - t0), 2), "frames": n,
                      "size": list(frames[0].size)}
    out["transformers"] = tiny_vlm_fps(frames[:8])
    return out


def tiny_vlm_fps(frames: list) -> dict:
    """A random-weight BLIP small enough for CPU, through the transformers backend: wiring cost only."""
    try:
        folder = tiny_blip(Path(tempfile.mkdtemp()))
        from cadenza.runtime import ModelRuntime
        from cadenza.tools.vision import vlm_transformers
        from cadenza.tools.vision.common import CaptionRequest

        ctx = type("Ctx", (), {"runtime": ModelRuntime(device="cpu"), "check_cancelled": lambda self: None,
                               "note": lambda self, m: None, "device": "cpu"})()
        req = CaptionRequest(images=frames, model=str(folder), max_new_tokens=20)
        vlm_transformers.caption(ctx, CaptionRequest(images=frames[:1], model=str(folder), max_new_tokens=20))
        t0 = time.perf_counter()
        caps = vlm_transformers.caption(ctx, req)
        fps = len(frames) / (time.perf_counter() - t0)
        return {"frames_per_s": round(fps, 2), "frames": len(frames), "max_new_tokens": 20,
                "model": "random-weight BLIP (hidden 32, 2 layers): wiring cost only", "sample": caps[0].text[:40]}
    except Exception as e:  # no transformers, or an API this build does not have
        return {"frames_per_s": None, "unavailable": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}


def tiny_blip(folder: Path) -> Path:
    from transformers import (BertTokenizerFast, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor,
                              BlipProcessor)

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "picture", "of", "the", "red", "blue",
             "##s", "frame", "video"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), bos_token="[DEC]")
    config = BlipConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 64, "patch_size": 16},
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 64, "bos_token_id": 5,
                     "pad_token_id": 0, "sep_token_id": 3},
        projection_dim=32)
    BlipForConditionalGeneration(config).save_pretrained(folder)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 64, "width": 64}), tokenizer=tok) \
        .save_pretrained(folder)
    return folder


# -- machine load ---------------------------------------------------------------------------------------------
def cpu_busy(seconds: float = 1.0) -> float:
    def jiffies():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v) - v[3] - v[4], sum(v)

    try:
        b0, t0 = jiffies()
        time.sleep(seconds)
        b1, t1 = jiffies()
        return round((b1 - b0) / max(1, t1 - t0), 3)
    except OSError:
        return -1.0


# -- main --------------------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "cadenza-bench" / "vision"))
    ap.add_argument("--no-long", action="store_true", help="leave out the 10-minute clip")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--transcribe", default="1", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.transcribe == "1")
        return 0
    QUIET["stderr"] = not a.json
    cache = Path(a.cache).expanduser()
    doc: dict = {"machine": {"cpus": os.cpu_count(), "cpu_busy_at_start": cpu_busy()}}

    video60, truth60 = clip(cache, 60)
    video600, truth600 = (None, None) if a.no_long else clip(cache, 600)
    doc["parent_maxrss_mb_before_children"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    log("caption_video on the 60 s clip (fresh process, offline)")
    r60 = run_child(video60, True)
    doc["clip_60s"] = {"call_s": r60["call_s"], "cpu_s": r60["cpu_s"], "process_wall_s": r60["process_wall_s"],
                       "target_s": CALL_TARGET_S, "pass": r60["call_s"] < CALL_TARGET_S,
                       "frames_captioned": r60["frames"], "ocr_reads": r60["reads"], "text_samples": r60["samples"],
                       "scenes": cut_scores(r60["starts"], truth60["cuts"]),
                       "text": text_scores(r60["screen_text"], truth60["texts"]),
                       "transcript": r60["transcript"], "summary": r60["summary"],
                       "first_description": r60["first_description"]}
    log(json.dumps({k: v for k, v in doc["clip_60s"].items() if k not in ("summary",)}))

    mem = {"clip_60s": {"transcribe": r60["maxrss_mb"]}}
    r60v = run_child(video60, False)
    mem["clip_60s"]["picture_only"] = r60v["maxrss_mb"]
    mem["vmhwm_mb"] = {"clip_60s": {"transcribe": r60["hwm_mb"], "picture_only": r60v["hwm_mb"]}}
    doc["clip_60s"]["picture_only_call_s"] = r60v["call_s"]
    if not a.no_long:
        log("caption_video on the 10-minute clip (fresh processes, with and without transcription)")
        r600 = run_child(video600, True)
        r600v = run_child(video600, False)
        mem["clip_600s"] = {"transcribe": r600["maxrss_mb"], "picture_only": r600v["maxrss_mb"]}
        mem["vmhwm_mb"]["clip_600s"] = {"transcribe": r600["hwm_mb"], "picture_only": r600v["hwm_mb"]}
        doc["clip_600s"] = {"call_s": r600["call_s"], "picture_only_call_s": r600v["call_s"],
                            "cpu_s": r600["cpu_s"], "frames_captioned": r600["frames"],
                            "ocr_reads": r600["reads"], "text_samples": r600["samples"],
                            "scenes": cut_scores(r600["starts"], truth600["cuts"]),
                            "text": text_scores(r600["screen_text"], truth600["texts"])}
        for kind in ("transcribe", "picture_only"):
            short, long = mem["clip_60s"][kind], mem["clip_600s"][kind]
            mem[f"pass_{kind}"] = long < MEMORY_TARGET_MB and long <= short * (1 + MEMORY_GROWTH)
            mem[f"growth_{kind}"] = round(long / short - 1, 4)
    log("caption_video on 20 s of panning texture (every text sample read in full)")
    rp = run_child(pan_clip(cache), False)
    doc["pan_20s"] = {"call_s": rp["call_s"], "cpu_s": rp["cpu_s"], "ocr_reads": rp["reads"],
                      "text_samples": rp["samples"], "texts_read": len(rp["screen_text"])}
    mem["target_mb"], mem["max_growth"] = MEMORY_TARGET_MB, MEMORY_GROWTH
    doc["memory_maxrss_mb"] = mem
    log("backends: frames per second")  # last: the models it loads here would inflate the children's ru_maxrss
    doc["backends"] = backend_fps(video60)
    doc["machine"]["cpu_busy_at_end"] = cpu_busy()
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
