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
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
for _p in (str(REPO), str(REPO / "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

TIMEOUT_S = 60.0
WORKERS = 2
TARGET_SLOWEST_S = 5.0

BAD = frozenset({2})
OK = frozenset({0})
EITHER = frozenset({0, 2})
RUNTIME = frozenset({1, 2})

ESC = "\x1b[31m"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


QUIET = False


def log(msg: str) -> None:
    if not QUIET:
        print(msg, file=sys.stderr, flush=True)


# -- inotify through ctypes ---------------------------------------------------------------------

IN_ACCESS, IN_OPEN, IN_ISDIR, IN_Q_OVERFLOW = 0x1, 0x20, 0x40000000, 0x4000
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000


class Inotify:
    """Watches folders for IN_OPEN / IN_ACCESS; events are kept per watch descriptor."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._lock = threading.Lock()
        self.events: dict[int, list[tuple[int, str]]] = {}
        self.overflow = False

    def watch(self, path: Path) -> int:
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), IN_OPEN | IN_ACCESS)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path} failed")
        return wd

    def drain(self) -> None:
        with self._lock:
            while True:
                try:
                    buf = os.read(self.fd, 1 << 16)
                except BlockingIOError:
                    return
                i = 0
                while i + 16 <= len(buf):
                    wd, mask, _cookie, n = (int.from_bytes(buf[i + k:i + k + 4], sys.byteorder, signed=(k == 0))
                                            for k in (0, 4, 8, 12))
                    name = buf[i + 16:i + 16 + n].split(b"\0", 1)[0].decode("utf-8", "replace")
                    i += 16 + n
                    if mask & IN_Q_OVERFLOW:
                        self.overflow = True
                        continue
                    self.events.setdefault(wd, []).append((mask, name))

    def events_for(self, wds: dict[int, Path]) -> list[dict[str, str]]:
        self.drain()
        out, seen = [], set()
        with self._lock:
            for wd, folder in wds.items():
                for mask, name in self.events.get(wd, []):
                    what = "open" if mask & IN_OPEN else "read"
                    path = str(folder / name) if name else str(folder)
                    if (path, what) not in seen:
                        seen.add((path, what))
                        out.append({"path": path, "event": what + (" (folder)" if mask & IN_ISDIR else "")})
        return out

    def close(self) -> None:
        os.close(self.fd)


# -- the HTTP canary ----------------------------------------------------------------------------

class HttpCanary:
    """A local TCP listener; the http:// tricks point at it, and any request is an escape."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with conn:
                conn.settimeout(1.0)
                try:
                    first = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
                except OSError:
                    first = ""
                parts = first.split()
                target = parts[1] if len(parts) > 1 else ""
                key = target.strip("/").split("/", 1)[0] if target else "?"
                with self._lock:
                    self.hits.setdefault(key, []).append(first[:200])
                try:
                    conn.sendall(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    def hits_for(self, key: str) -> list[str]:
        with self._lock:
            return list(self.hits.get(key, []))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


# -- synthetic media ----------------------------------------------------------------------------

def _png(path: Path, w: int = 16, h: int = 12) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\0" + bytes(v for x in range(w) for v in (x * 16 % 256, y * 20 % 256, 128))
                    for y in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _segment(path: Path, fmt: str) -> None:
    """An AAC tone in an MPEG-TS (.ts) or ADTS (.aac) file, decodable, for the playlist canaries."""
    try:
        import av
        import numpy as np

        import media_factory as mf

        with av.open(str(path), "w", format=fmt) as out:
            stream = out.add_stream("aac", rate=22050, layout="mono")
            t = np.arange(22050) / 22050
            mf._push_audio(out, stream, mf.to_int16(0.3 * np.sin(2 * np.pi * 330 * t)), 22050, "mono")
    except Exception as e:  # still a canary file, just not a decodable one
        log(f"note: could not write {path.name} ({type(e).__name__}: {e}); using bytes")
        path.write_bytes(os.urandom(4096))


def make_assets(folder: Path) -> None:
    import media_factory as mf

    folder.mkdir(parents=True, exist_ok=True)
    mf.tone(folder / "good.wav", seconds=1.0)
    mf.noise(folder / "good2.wav", seconds=1.0)
    mf.make_video(folder / "clip.mp4", seconds=1.0)
    _png(folder / "image.png")
    mf.corrupt_file(folder / "corrupt.wav")
    mf.corrupt_file(folder / "corrupt.mp4")
    mf.empty_file(folder / "empty.wav")
    mf.empty_file(folder / "empty.mp4")
    wav = (folder / "good.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(wav[:len(wav) // 2])
    mp4 = (folder / "clip.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(mp4[:len(mp4) * 2 // 5])
    # canary material (copied into each case's canary folder)
    mf.tone(folder / "canary.wav", freq=660, seconds=1.0)
    mf.make_video(folder / "canary.mp4", seconds=1.0)
    _segment(folder / "canary.ts", "mpegts")
    _segment(folder / "canary.aac", "adts")


def canary_files(assets: Path) -> dict[str, Any]:
    rnd = os.urandom(2048)
    return {
        "canary.wav": assets / "canary.wav", "canary.mp4": assets / "canary.mp4",
        "canary.ts": assets / "canary.ts", "canary.aac": assets / "canary.aac",
        "secret.txt": b"canary: nothing should read this\n",
        "voice/v.onnx": rnd, "voice/v.onnx.json": b'{"audio": {"sample_rate": 22050}}\n',
        "model/model.bin": rnd, "model/config.json": b"{}\n", "model/tokenizer.json": b"{}\n",
        "model/vocabulary.txt": b"a\nb\n",
    }


# -- cases --------------------------------------------------------------------------------------

@dataclass
class Inv:
    """What a case runs: argv (cwd = the case folder), and what to check afterwards."""
    argv: list[str]
    json: bool = True
    drop_dac: bool = False  # run without CAP_DAC_OVERRIDE (so root cannot write a read-only folder)
    out: str | None = "out"  # the output folder whose run.json is checked
    cleanup: Callable[[], None] | None = None


@dataclass
class Case:
    name: str
    group: str
    expect: frozenset
    build: Callable[["Env"], Inv]
    selftest: bool = False


class Env:
    """A case's folder (cwd of the command), its canary folder outside it, and helpers."""

    def __init__(self, root: Path, idx: int, port: int, canary: dict[str, Any]):
        self.key = f"c{idx:04d}"
        self.dir = root / "cases" / self.key
        self.canary = root / "canary" / self.key
        self.assets = root / "assets"
        self.url = f"http://127.0.0.1:{port}/{self.key}"
        self.earlier: dict[str, Any] | None = None
        self.dir.mkdir(parents=True)
        for rel, src in canary.items():
            p = self.canary / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, Path):
                shutil.copyfile(src, p)
            else:
                p.write_bytes(src)

    def canary_dirs(self) -> list[Path]:
        return [self.canary, self.canary / "voice", self.canary / "model"]

    def c(self, rel: str) -> str:
        """Absolute path of a canary file."""
        return str(self.canary / rel)

    def c_rel(self, rel: str, start: str = ".") -> str:
        """A relative path, from `start` inside the case folder, to a canary file (through ../)."""
        return os.path.relpath(self.canary / rel, self.dir / start)

    def asset(self, name: str, as_: str | None = None) -> str:
        dest = self.dir / (as_ or name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            shutil.copyfile(self.assets / name, dest)
        return as_ or name

    def write(self, rel: str, data: str | bytes) -> str:
        p = self.dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return rel

    def link(self, rel: str, target: str | Path) -> str:
        p = self.dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, p)
        return rel

    def mkdir(self, rel: str) -> str:
        (self.dir / rel).mkdir(parents=True, exist_ok=True)
        return rel

    def abs(self, rel: str) -> str:
        return str(self.dir / rel)

    def seed_earlier(self, out: str = "out") -> None:
        """Put an earlier good run in the output folder: two outputs and their run.json."""
        o = self.dir / out
        o.mkdir(parents=True, exist_ok=True)
        files = {}
        for stem, src in (("fade", "good.wav"), ("trim", "good2.wav")):
            data = (self.assets / src).read_bytes()
            p = o / f"{stem}-{hashlib.sha256(data).hexdigest()[:12]}.wav"
            p.write_bytes(data)
            files[stem] = p
        steps = [{"id": s, "tool": f"{s}_audio", "status": "succeeded", "backend": "pydub", "args": {},
                  "outputs": {"result": {"kind": "audio", "path": str(p), "mime": "audio/x-wav"}}, "error": None}
                 for s, p in files.items()]
        run = {"cadenza_run": 1, "status": "succeeded", "out_dir": str(o),
               "plan": {"inputs": {}, "steps": [{"id": s["id"], "tool": s["tool"], "args": {}} for s in steps],
                        "outputs": {}},
               "inputs": {}, "steps": steps, "outputs": {s["id"]: s["outputs"]["result"] for s in steps}}
        (o / "run.json").write_text(json.dumps(run, indent=2))
        self.earlier = {"out": o, "files": {str(p): _sha(p) for p in files.values()},
                        "run_json": (o / "run.json").read_bytes()}


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cadenza.cli", *args]


def run_args(tool: str, args: dict[str, Any], out: str = "out", *extra: str) -> list[str]:
    """`tools run TOOL --arg ...`: list values become repeated --arg; other values are strings."""
    argv = ["tools", "run", tool]
    for k, v in args.items():
        for item in (v if isinstance(v, list) and not _is_json_list(k, v) else [v]):
            argv += ["--arg", f"{k}={_cli_value(item)}"]
    return cli(*argv, "--out", out, "--json", *extra)


def _is_json_list(name: str, v: list) -> bool:
    return any(isinstance(x, dict) for x in v)


def _cli_value(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v)


# -- the tool catalogue -------------------------------------------------------------------------

MEDIA_KINDS = ("audio", "video", "image")
PATHLIKE_TEXT = {("speak", "voice"), ("transcribe", "model")}
SEGMENTS = [{"start": 0.0, "end": 1.0, "text": "hello there"}]
GOOD_TEXT = {("convert_audio", "format"): "flac", ("translate", "target_language"): "de",
             ("speak", "text"): "Hi.", ("translate", "text"): "hello"}
GOOD_NUMBER = {("fit_audio", "duration"): 1.5}
SKIP_RUNNING = {"translate"}  # loads the planner LLM: only cases that must fail before it are generated


def load_tools() -> dict[str, dict[str, dict]]:
    """{tool: {param: {type, required, description}}}, from the registry (as `tools show --json`)."""
    try:
        from cadenza.tools.registry import default_registry

        return {t.name: t.spec()["inputs"] for t in default_registry()}
    except Exception as e:  # the code is being edited: ask the CLI instead
        log(f"note: registry import failed ({type(e).__name__}: {e}); asking the CLI")
        listed = json.loads(subprocess.run(cli("tools", "list", "--json"), capture_output=True, text=True,
                                           timeout=120, cwd=REPO).stdout)
        out = {}
        for t in listed["tools"]:
            spec = json.loads(subprocess.run(cli("tools", "show", t["name"], "--json"), capture_output=True,
                                             text=True, timeout=120, cwd=REPO).stdout)
            out[t["name"]] = spec["inputs"]
        return out


def _kinds(tag: str) -> list[str]:
    base = tag[5:-1] if tag.startswith("list[") else tag
    return [k for k in base.split("|") if k in MEDIA_KINDS]


def is_media(tag: str) -> bool:
    return bool(_kinds(tag))


def is_list(tag: str) -> bool:
    return tag.startswith("list[")


def is_number(tag: str) -> bool:
    base = tag[5:-1] if is_list(tag) else tag
    return base in ("number", "integer")


GOOD_FILE = {"audio": "good.wav", "video": "clip.mp4", "image": "image.png"}
SECOND_FILE = {"audio": "good2.wav", "video": "clip.mp4", "image": "image.png"}


def good_value(env: Env, tool: str, name: str, p: dict, where: str = "") -> Any:
    """A valid value for a parameter (media copied into the case folder, under `where`)."""
    tag = p["type"]
    if is_media(tag):
        kind = _kinds(tag)[0]
        first = env.asset(GOOD_FILE[kind], where + GOOD_FILE[kind])
        if is_list(tag):
            return [first, env.asset(SECOND_FILE[kind], where + SECOND_FILE[kind])]
        return first
    if "Segment" in tag:
        return SEGMENTS
    if (tool, name) in GOOD_TEXT:
        return GOOD_TEXT[(tool, name)]
    if is_number(tag):
        v = GOOD_NUMBER.get((tool, name), 1)
        return [v] if is_list(tag) else v
    if tag == "boolean":
        return False
    return "x"


def base_args(env: Env, tool: str, params: dict[str, dict], where: str = "", absolute: bool = False) -> dict[str, Any]:
    """Valid values for the required parameters (and, for some tools, a meaningful optional one)."""
    args = {n: good_value(env, tool, n, p, where) for n, p in params.items() if p["required"]}
    if absolute:
        args = {n: _absolute(env, params[n]["type"], v) for n, v in args.items()}
    return args


def _absolute(env: Env, tag: str, v: Any) -> Any:
    if not is_media(tag):
        return v
    return [env.abs(x) for x in v] if isinstance(v, list) else env.abs(v)


def with_value(env: Env, tool: str, params: dict, name: str, value: Any, **kw) -> dict[str, Any]:
    """The base arguments with `name` set to `value` (for a media list: a good item, then `value`)."""
    args = base_args(env, tool, params, **kw)
    tag = params[name]["type"]
    if is_media(tag) and is_list(tag):
        kind = _kinds(tag)[0]
        first = env.asset(GOOD_FILE[kind], kw.get("where", "") + GOOD_FILE[kind])
        args[name] = [env.abs(first) if kw.get("absolute") else first, value]
    else:
        args[name] = value
    return args


def workflow(steps: list[dict], inputs: dict | None = None, **extra: Any) -> str:
    """A workflow document; JSON is YAML, so values need no quoting."""
    doc: dict[str, Any] = {"name": "robustness"}
    doc.update(extra)
    if inputs:
        doc["inputs"] = inputs
    doc["steps"] = steps
    return json.dumps(doc, indent=1) + "\n"


# -- group: media ---------------------------------------------------------------------------------

def media_variants(kind: str) -> list[tuple[str, Callable[[Env], str], frozenset]]:
    ext = ".mp4" if kind == "video" else ".wav"
    wrong = {"audio": "image.png", "video": "good.wav", "image": "good.wav"}[kind]
    big = "mp4" if kind == "video" else "wav"
    return [
        ("missing", lambda e: "nothere" + ext, BAD),
        ("empty-value", lambda e: "", BAD),
        ("empty-file", lambda e: e.asset(f"empty.{big}"), BAD),
        ("corrupt", lambda e: e.asset(f"corrupt.{big}"), BAD),
        ("truncated", lambda e: e.asset(f"truncated.{big}"), EITHER),
        ("wrong-kind", lambda e: e.asset(wrong, "wrong-" + wrong), BAD),
        ("directory", lambda e: e.mkdir("folder" + ext), BAD),
    ]


def group_media(tools: dict) -> list[Case]:
    cases = []
    for tool, params in tools.items():
        if tool in SKIP_RUNNING:
            continue
        for name, p in params.items():
            if not is_media(p["type"]):
                continue
            for variant, make, expect in media_variants(_kinds(p["type"])[0]):
                def build(env, tool=tool, params=params, name=name, make=make):
                    return Inv(run_args(tool, with_value(env, tool, params, name, make(env))))
                cases.append(Case(f"media/{tool}/{name}/{variant}", "media", expect, build))
    return cases


# -- group: numbers -------------------------------------------------------------------------------

NUMBER_VARIANTS = [("nan", "nan", BAD), ("inf", ".inf", BAD), ("-inf", "-inf", BAD),
                   ("huge", "1.0e+308", EITHER), ("bigint", "9" * 400, EITHER), ("negative", "-5", EITHER)]


def group_numbers(tools: dict) -> list[Case]:
    cases = []
    for tool, params in tools.items():
        if tool in SKIP_RUNNING:
            continue
        for name, p in params.items():
            if not is_number(p["type"]):
                continue
            for variant, raw, expect in NUMBER_VARIANTS:
                def build(env, tool=tool, params=params, name=name, raw=raw):
                    args = base_args(env, tool, params)
                    args[name] = raw
                    return Inv(run_args(tool, args))
                cases.append(Case(f"numbers/{tool}/{name}/{variant}", "numbers", expect, build))
        # numbers inside subtitle segments
        for name, p in params.items():
            if "Segment" not in p["type"] or not p["required"]:
                continue
            for fld in ("start", "end"):
                for variant, raw, expect in NUMBER_VARIANTS[:2] + NUMBER_VARIANTS[3:5]:
                    def build(env, tool=tool, params=params, name=name, fld=fld, raw=raw):
                        args = base_args(env, tool, params)
                        seg = dict(SEGMENTS[0])
                        seg[fld] = "__X__"
                        args[name] = json.dumps([seg]).replace('"__X__"', raw)
                        return Inv(run_args(tool, args))
                    cases.append(Case(f"numbers/{tool}/{name}.{fld}/{variant}", "numbers", expect, build))
    return cases


# -- group: symlink (and other path escapes in workflows) ----------------------------------------

def canary_for(kind: str) -> str:
    return "canary.mp4" if kind == "video" else "canary.wav"


def group_symlink(tools: dict) -> list[Case]:
    cases, seen = [], set()
    for tool, params in tools.items():
        if tool in SKIP_RUNNING:
            continue
        for name, p in params.items():
            if not is_media(p["type"]):
                continue
            kind = _kinds(p["type"])[0]
            cf = canary_for(kind)
            variants = [
                ("wf-symlink-file", lambda e, cf=cf: e.abs(e.link("wf/assets/link" + Path(cf).suffix, e.c(cf)))),
                ("wf-symlink-folder", lambda e, cf=cf: e.abs(e.link("wf/shared", e.canary)) + "/" + cf),
                ("wf-dotdot", lambda e, cf=cf: e.abs("wf/" + e.c_rel(cf, "wf"))),  # <wf folder>/../../..
                ("wf-absolute", lambda e, cf=cf: e.c(cf)),
            ]
            shape = (p["type"], is_list(p["type"]))
            if shape in seen:
                variants = variants[:1] + variants[2:3]  # a symlinked file and a ../ path
            seen.add(shape)
            for variant, make in variants:
                def build(env, tool=tool, params=params, name=name, make=make):
                    args = with_value(env, tool, params, name, make(env), where="wf/", absolute=True)
                    env.write("wf/flow.yaml", workflow([{"id": "s", "tool": tool, "args": args}]))
                    return Inv(cli("workflow", "run", "wf/flow.yaml", "--out", "out", "--json"))
                cases.append(Case(f"symlink/{tool}/{name}/{variant}", "symlink", BAD, build))

    def out_link(env):  # a symlink inside the output folder (an allowed root) pointing outside
        env.link("out/link.wav", env.c("canary.wav"))
        return Inv(run_args("fade_audio", {"audio": "out/link.wav", "fade_in": 0.1}))
    if "fade_audio" in tools:
        cases.append(Case("symlink/fade_audio/audio/out-symlink", "symlink", BAD, out_link))

    def input_link_folder(env):  # a workflow input through a symlinked folder inside the workflow's folder
        env.link("wf/shared", env.canary)
        env.write("wf/flow.yaml", workflow([{"id": "s", "tool": "fade_audio", "args": {"audio": "$a", "fade_in": 0.1}}],
                                           inputs={"a": {"type": "audio", "default": env.abs("wf/shared/canary.wav")}}))
        return Inv(cli("workflow", "run", "wf/flow.yaml", "--out", "out", "--json"))
    if "fade_audio" in tools:
        cases.append(Case("symlink/workflow-input-default/wf-symlink-folder", "symlink", BAD, input_link_folder))
    return cases


# -- group: playlist ------------------------------------------------------------------------------

def _hls(entry: str) -> str:
    return ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
            f"#EXTINF:1.0,\n{entry}\n#EXT-X-ENDLIST\n")


def _ffconcat(entry: str) -> str:
    return f"ffconcat version 1.0\nfile '{entry}'\n"


PLAYLISTS: list[tuple[str, Callable[[Env], str]]] = [
    ("hls-abs-ts", lambda e: e.write("x.m3u8", _hls(e.c("canary.ts")))),
    ("hls-abs-aac", lambda e: e.write("x.m3u8", _hls(e.c("canary.aac")))),
    ("hls-symlink-ts", lambda e: (e.link("segs", e.canary), e.write("x.m3u8", _hls("segs/canary.ts")))[1]),
    ("hls-dotdot-ts", lambda e: e.write("x.m3u8", _hls(e.c_rel("canary.ts")))),
    ("hls-http", lambda e: e.write("x.m3u8", _hls(e.url + "/seg.ts"))),
    ("hls-named-wav", lambda e: e.write("list.wav", _hls(e.c("canary.ts")))),
    ("ffconcat-abs", lambda e: e.write("x.ffconcat", _ffconcat(e.c("canary.wav")))),
    ("ffconcat-symlink", lambda e: (e.link("segs", e.canary), e.write("x.ffconcat", _ffconcat("segs/canary.wav")))[1]),
    ("ffconcat-named-wav", lambda e: (e.link("segs", e.canary), e.write("list.wav", _ffconcat("segs/canary.wav")))[1]),
]
PLAYLIST_TARGETS = [("fade_audio", "audio"), ("extract_audio", "video"), ("transcribe", "media"), ("mix_audio", "tracks")]


def group_playlist(tools: dict) -> list[Case]:
    cases = []
    for tool, name in PLAYLIST_TARGETS:
        if name not in tools.get(tool, {}):
            continue
        params = tools[tool]
        for variant, make in PLAYLISTS:
            def build(env, tool=tool, params=params, name=name, make=make):
                return Inv(run_args(tool, with_value(env, tool, params, name, make(env))))
            cases.append(Case(f"playlist/{tool}/{name}/{variant}", "playlist", BAD, build))
    if "fade_audio" in tools:
        for variant, make in PLAYLISTS:
            if variant not in ("hls-abs-ts", "ffconcat-symlink", "hls-http"):
                continue

            def build(env, make=make):  # a workflow --input
                pl = make(env)
                env.write("wf/flow.yaml", workflow([{"id": "s", "tool": "fade_audio", "args": {"audio": "$a", "fade_in": 0.1}}],
                                                   inputs={"a": {"type": "audio"}}))
                return Inv(cli("workflow", "run", "wf/flow.yaml", "--input", f"a={pl}", "--out", "out", "--json"))
            cases.append(Case(f"playlist/workflow-input/{variant}", "playlist", BAD, build))

        def literal(env):  # a playlist inside the workflow's folder, named literally
            env.link("wf/segs", env.canary)
            env.write("wf/x.m3u8", _hls("segs/canary.ts"))
            env.write("wf/flow.yaml", workflow([{"id": "s", "tool": "fade_audio",
                                                 "args": {"audio": env.abs("wf/x.m3u8"), "fade_in": 0.1}}]))
            return Inv(cli("workflow", "run", "wf/flow.yaml", "--out", "out", "--json"))
        cases.append(Case("playlist/workflow-literal/hls-symlink-ts", "playlist", BAD, literal))
    return cases


# -- group: path-args -----------------------------------------------------------------------------

PATH_VARIANTS: dict[str, list[tuple[str, Callable[[Env], str]]]] = {
    "voice": [
        ("abs-onnx", lambda e: e.c("voice/v.onnx")),
        ("abs-json", lambda e: e.c("voice/v.onnx.json")),
        ("abs-folder", lambda e: e.c("voice")),
        ("symlink-folder", lambda e: e.link("voices", e.c("voice")) + "/v.onnx"),
        ("dotdot", lambda e: e.c_rel("voice/v.onnx")),
        ("http", lambda e: e.url + "/v.onnx"),
    ],
    "model": [
        ("abs-folder", lambda e: e.c("model")),
        ("abs-file", lambda e: e.c("model/model.bin")),
        ("symlink-folder", lambda e: e.link("models", e.c("model"))),
        ("dotdot", lambda e: e.c_rel("model")),
        ("http", lambda e: e.url + "/model"),
    ],
}


def group_path_args(tools: dict) -> list[Case]:
    cases = []
    for tool, params in tools.items():
        if tool in SKIP_RUNNING:
            continue
        for name, p in params.items():
            if p["type"] != "text":
                continue
            if (tool, name) not in PATHLIKE_TEXT and "path" not in (p.get("description") or "").lower():
                continue
            variants = PATH_VARIANTS.get(name) or PATH_VARIANTS["model"][:2]
            for variant, make in variants:
                def build(env, tool=tool, params=params, name=name, make=make):
                    args = base_args(env, tool, params)
                    args[name] = make(env)
                    return Inv(run_args(tool, args))
                cases.append(Case(f"path-args/{tool}/{name}/{variant}", "path-args", BAD, build))

            def literal(env, tool=tool, params=params, name=name, make=variants[0][1]):
                args = base_args(env, tool, params, where="wf/", absolute=True)
                args[name] = make(env)
                env.write("wf/flow.yaml", workflow([{"id": "s", "tool": tool, "args": args}]))
                return Inv(cli("workflow", "run", "wf/flow.yaml", "--out", "out", "--json"))
            cases.append(Case(f"path-args/{tool}/{name}/workflow-literal", "path-args", BAD, literal))
    return cases


# -- group: yaml ----------------------------------------------------------------------------------

def _bomb(levels: int = 9) -> str:
    names = "abcdefghijklmnop"
    parts = ["&a [lol,lol,lol,lol,lol,lol,lol,lol,lol]"]
    for i in range(1, levels):
        parts.append(f"&{names[i]} [" + ",".join([f"*{names[i - 1]}"] * 9) + "]")
    return "[" + ", ".join(parts) + "]"


def _wf_text(body: str) -> Callable[[Env], Inv]:
    def build(env):
        env.asset("good.wav")
        env.write("wf/flow.yaml", body)
        return Inv(cli("workflow", "run", "wf/flow.yaml", "--input", "audio=good.wav", "--out", "out", "--json"))
    return build


def _wf_validate(body: str | bytes) -> Callable[[Env], Inv]:
    def build(env):
        env.write("wf/flow.yaml", body)
        return Inv(cli("workflow", "validate", "wf/flow.yaml", "--json"), out=None)
    return build


def _wf_run_plain(body: str | bytes) -> Callable[[Env], Inv]:
    def build(env):
        env.write("wf/flow.yaml", body)
        return Inv(cli("workflow", "run", "wf/flow.yaml", "--out", "out", "--json"))
    return build


def _chain(n: int, first_start: float = 0) -> str:
    """trim_audio n times in a row; with first_start past the end the first step fails while running, and the
    other n-1 are skipped (running all 1,200 steps takes minutes: about 90 ms a step)."""
    steps = [{"id": f"s{i}", "tool": "trim_audio",
              "args": {"audio": "$audio" if i == 0 else f"$s{i - 1}", "start": first_start if i == 0 else 0}}
             for i in range(n)]
    return workflow(steps, inputs={"audio": {"type": "audio"}})


HEAD = "name: y\ninputs:\n  audio: {type: audio}\nsteps:\n"
STEP = "  - id: s\n    tool: fade_audio\n    args: {audio: $audio, fade_in: %s}\n"


def group_yaml(tools: dict) -> list[Case]:
    bomb = _bomb()
    deep_list = "[" * 5000 + "1" + "]" * 5000
    deep_map = "{a: " * 5000 + "1" + "}" * 5000
    docs: list[tuple[str, Callable[[Env], Inv], frozenset]] = [
        ("alias-bomb-arg", _wf_text(HEAD + STEP % bomb), BAD),
        ("alias-bomb-text", _wf_text(HEAD + "  - id: s\n    tool: speak\n    args: {text: %s}\n" % bomb), BAD),
        ("alias-bomb-name", _wf_text(f"name: {bomb}\n" + HEAD[8:] + STEP % "0.1"), BAD),
        ("alias-bomb-outputs", _wf_text(HEAD + STEP % "0.1" + f"outputs: {{x: {bomb}}}\n"), BAD),
        ("alias-bomb-validate", _wf_validate(HEAD + STEP % bomb), BAD),
        ("deep-list-arg", _wf_text(HEAD + STEP % deep_list), BAD),
        ("deep-map-arg", _wf_text(HEAD + STEP % deep_map), BAD),
        ("deep-document", _wf_text(deep_list + "\n"), BAD),
        ("deep-validate", _wf_validate(HEAD + STEP % deep_map), BAD),
        ("chain-1200-validate", _wf_validate(_chain(1200)), OK),
        ("chain-1200-run-first-fails", _wf_text(_chain(1200, first_start=5)), RUNTIME),
        ("chain-5000-validate", _wf_validate(_chain(5000)), EITHER),
        ("tabs", _wf_text(HEAD + "\t- id: s\n\t  tool: fade_audio\n"), BAD),
        ("garbage-bytes", _wf_text(bytes(range(256)) * 8), BAD),  # type: ignore[arg-type]
        ("invalid-utf8", _wf_text(b"name: \xff\xfe\xfa\nsteps: []\n"), BAD),  # type: ignore[arg-type]
        ("document-list", _wf_text("- a\n- b\n"), BAD),
        ("document-scalar", _wf_text("hello\n"), BAD),
        ("document-empty", _wf_text(""), BAD),
        ("document-null", _wf_text("~\n"), BAD),
        ("multi-document", _wf_text(HEAD + STEP % "0.1" + "---\n" + HEAD + STEP % "0.2"), BAD),
        ("steps-mapping", _wf_text(HEAD + "  s: {tool: fade_audio}\n"), BAD),
        ("step-scalar", _wf_text(HEAD + "  - fade_audio\n"), BAD),
        ("args-list", _wf_text(HEAD + "  - id: s\n    tool: fade_audio\n    args: [$audio]\n"), BAD),
        ("unknown-tool", _wf_text(HEAD + "  - id: s\n    tool: fade_audioo\n    args: {audio: $audio}\n"), BAD),
        ("tool-null", _wf_text(HEAD + "  - id: s\n    tool: null\n    args: {audio: $audio}\n"), BAD),
        ("tool-number", _wf_text(HEAD + "  - id: s\n    tool: 12\n    args: {audio: $audio}\n"), BAD),
        ("unknown-arg", _wf_text(HEAD + "  - id: s\n    tool: fade_audio\n    args: {audio: $audio, nope: 1}\n"), BAD),
        ("missing-arg", _wf_text(HEAD + "  - id: s\n    tool: fade_audio\n    args: {fade_in: 1}\n"), BAD),
        ("cycle", _wf_text(HEAD + "  - {id: a, tool: fade_audio, args: {audio: $b}}\n"
                           "  - {id: b, tool: fade_audio, args: {audio: $a}}\n"), BAD),
        ("self-cycle", _wf_text(HEAD + "  - {id: a, tool: fade_audio, args: {audio: $a}}\n"), BAD),
        ("duplicate-ids", _wf_text(HEAD + "  - {id: a, tool: fade_audio, args: {audio: $audio}}\n"
                                   "  - {id: a, tool: fade_audio, args: {audio: $audio}}\n"), BAD),
        ("dangling-ref", _wf_text(HEAD + "  - {id: a, tool: fade_audio, args: {audio: $nowhere}}\n"), BAD),
        ("bad-ref", _wf_text(HEAD + "  - {id: a, tool: fade_audio, args: {audio: '$a.b.c'}}\n"), BAD),
        ("bare-dollar", _wf_text(HEAD + "  - {id: a, tool: fade_audio, args: {audio: '$'}}\n"), BAD),
        ("type-mismatch", _wf_text(HEAD + "  - {id: t, tool: transcribe, args: {media: $audio}}\n"
                                   "  - {id: a, tool: fade_audio, args: {audio: $t.text}}\n"), BAD),
        ("python-tag", _wf_validate("name: !!python/object/apply:os.system ['cat CANARY']\nsteps: []\n"), BAD),
        ("set-tag", _wf_text(HEAD + "  - {id: a, tool: fade_audio, args: {audio: $audio, fade_in: !!set {1, 2}}}\n"), BAD),
        ("binary-tag", _wf_text(HEAD + "  - {id: a, tool: fade_audio, args: {audio: !!binary aGVsbG8=}}\n"), BAD),
        ("timeout-negative", _wf_text(HEAD + "  - {id: a, tool: fade_audio, timeout: -1, args: {audio: $audio}}\n"), BAD),
        ("timeout-nan", _wf_text(HEAD + "  - {id: a, tool: fade_audio, timeout: .nan, args: {audio: $audio}}\n"), BAD),
        ("retries-huge", _wf_text(HEAD + "  - {id: a, tool: fade_audio, retries: %s, args: {audio: $audio}}\n" % ("9" * 400)), BAD),
        ("input-type-unknown", _wf_run_plain("inputs: {a: {type: sound}}\nsteps:\n  - {id: s, tool: fade_audio, args: {audio: $a}}\n"), BAD),
        ("input-default-canary", _wf_run_plain("inputs: {a: {type: audio, default: CANARYWAV}}\n"
                                               "steps:\n  - {id: s, tool: fade_audio, args: {audio: $a}}\n"), BAD),
        ("long-string", _wf_text("name: " + "x" * 1_000_000 + "\n" + HEAD[8:] + STEP % "0.1"), EITHER),
    ]
    cases = []
    for variant, build, expect in docs:
        cases.append(Case(f"yaml/{variant}", "yaml", expect, _with_canary_subst(build)))

    def missing(env):
        return Inv(cli("workflow", "run", "wf/nothere.yaml", "--out", "out", "--json"))

    def folder(env):
        env.mkdir("wf/flow.yaml")
        return Inv(cli("workflow", "run", "wf/flow.yaml", "--out", "out", "--json"))
    cases += [Case("yaml/file-missing", "yaml", BAD, missing), Case("yaml/file-is-folder", "yaml", BAD, folder)]
    return cases


def _with_canary_subst(build: Callable[[Env], Inv]) -> Callable[[Env], Inv]:
    """Replace the CANARY / CANARYWAV markers in the workflow file with this case's canary paths."""
    def wrapped(env):
        inv = build(env)
        wf = env.dir / "wf" / "flow.yaml"
        if wf.is_file():
            data = wf.read_bytes()
            if b"CANARY" in data:
                data = data.replace(b"CANARYWAV", env.c("canary.wav").encode()).replace(b"CANARY", env.c("secret.txt").encode())
                wf.write_bytes(data)
        return inv
    return wrapped


# -- group: missing-args ----------------------------------------------------------------------------

def group_missing(tools: dict) -> list[Case]:
    cases = []
    for tool, params in tools.items():
        cases.append(Case(f"missing-args/{tool}/no-args", "missing-args", BAD,
                          lambda env, tool=tool: Inv(run_args(tool, {}))))
        if tool in SKIP_RUNNING:
            continue
        for name, p in params.items():
            if p["type"] == "boolean":
                cases.append(Case(f"missing-args/{tool}/{name}/not-a-boolean", "missing-args", BAD,
                                  lambda env, tool=tool, params=params, name=name:
                                  Inv(run_args(tool, {**base_args(env, tool, params), name: "maybe"}))))
    if "speak" in tools:
        cases.append(Case("missing-args/speak/text/empty", "missing-args", EITHER,
                          lambda env: Inv(run_args("speak", {"text": ""}))))
    if "translate" in tools:
        cases.append(Case("missing-args/translate/nothing-to-translate", "missing-args", BAD,
                          lambda env: Inv(run_args("translate", {"target_language": "de"}))))
    if "make_subtitles" in tools:
        for variant, raw in (("not-a-list", "hello"), ("list-of-numbers", "[1, 2]"), ("end-before-start", None)):
            def build(env, raw=raw):
                val = raw if raw is not None else json.dumps([{"start": 2.0, "end": 1.0, "text": "x"}])
                return Inv(run_args("make_subtitles", {"segments": val}))
            cases.append(Case(f"missing-args/make_subtitles/segments/{variant}", "missing-args",
                              EITHER if raw is None else BAD, build))
    cases += [
        Case("missing-args/fade_audio/unknown-arg", "missing-args", BAD,
             lambda env: Inv(run_args("fade_audio", {"audio": env.asset("good.wav"), "bogus": "1"}))),
        Case("missing-args/arg-without-equals", "missing-args", BAD,
             lambda env: Inv(cli("tools", "run", "fade_audio", "--arg", "audio", "--out", "out", "--json"))),
        Case("missing-args/unknown-tool", "missing-args", BAD,
             lambda env: Inv(cli("tools", "run", "fade_audioo", "--out", "out", "--json"))),
        Case("missing-args/show-unknown-tool", "missing-args", BAD,
             lambda env: Inv(cli("tools", "show", "nosuchtool", "--json"), out=None)),
        Case("missing-args/workflow-unknown-input", "missing-args", BAD, _unknown_input),
        Case("missing-args/workflow-missing-input", "missing-args", BAD, _missing_input),
    ]
    return cases


def _fade_wf(env: Env) -> str:
    return env.write("wf/flow.yaml", workflow([{"id": "s", "tool": "fade_audio", "args": {"audio": "$a", "fade_in": 0.1}}],
                                              inputs={"a": {"type": "audio"}}))


def _unknown_input(env):
    return Inv(cli("workflow", "run", _fade_wf(env), "--input", f"a={env.asset('good.wav')}", "--input", "b=1",
                   "--out", "out", "--json"))


def _missing_input(env):
    return Inv(cli("workflow", "run", _fade_wf(env), "--out", "out", "--json"))


# -- group: out -----------------------------------------------------------------------------------

def _ro_folder(env: Env, rel: str, seed: bool) -> Path:
    if seed:
        env.seed_earlier(rel)
    p = env.dir / rel
    p.mkdir(parents=True, exist_ok=True)
    for q in [p, *p.rglob("*")]:
        q.chmod(0o555 if q.is_dir() else 0o444)
    return p


def _restore_rw(p: Path) -> Callable[[], None]:
    def undo():
        for q in [p, *p.rglob("*")]:
            try:
                q.chmod(0o755 if q.is_dir() else 0o644)
            except OSError:
                pass
    return undo


def group_out(tools: dict) -> list[Case]:
    def fade(env, out):
        return run_args("fade_audio", {"audio": env.asset("good.wav"), "fade_in": 0.1}, out)

    def out_file(env):
        env.asset("good2.wav", "existing.wav")
        env.earlier = {"out": env.dir, "files": {env.abs("existing.wav"): _sha(env.dir / "existing.wav")}, "run_json": None}
        return Inv(fade(env, "existing.wav"), out=None)

    def out_under_file(env):
        env.asset("good2.wav", "existing.wav")
        env.earlier = {"out": env.dir, "files": {env.abs("existing.wav"): _sha(env.dir / "existing.wav")}, "run_json": None}
        return Inv(fade(env, "existing.wav/sub"), out=None)

    def out_readonly(env):
        p = _ro_folder(env, "out", seed=True)
        return Inv(fade(env, "out"), drop_dac=True, cleanup=_restore_rw(p))

    def out_under_readonly(env):
        p = _ro_folder(env, "ro", seed=False)
        return Inv(fade(env, "ro/new"), drop_dac=True, out=None, cleanup=_restore_rw(p))

    def out_dev_null(env):
        return Inv(fade(env, "/dev/null"), out=None)

    def out_escape_name(env):
        env.asset("good2.wav", f"exist{ESC}ing.wav")
        return Inv(fade(env, f"exist{ESC}ing.wav"), out=None)

    def out_empty(env):
        return Inv(fade(env, ""), out=".")

    return [
        Case("out/is-a-file", "out", BAD, out_file),
        Case("out/under-a-file", "out", BAD, out_under_file),
        Case("out/read-only-with-earlier-run", "out", BAD, out_readonly),
        Case("out/under-read-only", "out", BAD, out_under_readonly),
        Case("out/dev-null", "out", BAD, out_dev_null),
        Case("out/file-with-escape-name", "out", BAD, out_escape_name),
        Case("out/empty-string", "out", EITHER, out_empty),
    ]


# -- group: dollar --------------------------------------------------------------------------------

def group_dollar(tools: dict) -> list[Case]:
    def fade(value):
        return lambda env: Inv(run_args("fade_audio", {"audio": value, "fade_in": 0.1}))

    def dollar_file(env):  # a real file whose name starts with '$': taken as typed, or refused
        env.asset("good.wav", "$good.wav")
        return Inv(run_args("fade_audio", {"audio": "$good.wav", "fade_in": 0.1}))

    def dollar_dollar(env):
        env.asset("good.wav", "$good.wav")
        return Inv(run_args("fade_audio", {"audio": "$$good.wav", "fade_in": 0.1}))

    def dollar_input(env):
        return Inv(cli("workflow", "run", _fade_wf(env), "--input", "a=$a", "--out", "out", "--json"))

    def dollar_input_home(env):
        return Inv(cli("workflow", "run", _fade_wf(env), "--input", "a=$HOME", "--out", "out", "--json"))

    cases = [
        Case("dollar/fade_audio/audio/env-var", "dollar", BAD, fade("$HOME")),
        Case("dollar/fade_audio/audio/self-ref", "dollar", BAD, fade("$fade_audio")),
        Case("dollar/fade_audio/audio/output-ref", "dollar", BAD, fade("$fade_audio.result")),
        Case("dollar/fade_audio/audio/bare", "dollar", BAD, fade("$")),
        Case("dollar/fade_audio/audio/file-named-dollar", "dollar", EITHER, dollar_file),
        Case("dollar/fade_audio/audio/double-dollar", "dollar", EITHER, dollar_dollar),
        Case("dollar/fade_audio/fade_in/ref", "dollar", BAD,
             lambda env: Inv(run_args("fade_audio", {"audio": env.asset("good.wav"), "fade_in": "$x"}))),
        Case("dollar/mix_audio/tracks/ref", "dollar", BAD,
             lambda env: Inv(run_args("mix_audio", {"tracks": [env.asset("good.wav"), "$mix_audio"]}))),
        Case("dollar/speak/text/env-var", "dollar", EITHER, lambda env: Inv(run_args("speak", {"text": "$HOME"}))),
        Case("dollar/speak/text/self-ref", "dollar", EITHER, lambda env: Inv(run_args("speak", {"text": "$speak"}))),
        Case("dollar/transcribe/language/ref", "dollar", BAD,
             lambda env: Inv(run_args("transcribe", {"media": env.asset("good.wav"), "language": "$HOME"}))),
        Case("dollar/workflow-input/self-name", "dollar", BAD, dollar_input),
        Case("dollar/workflow-input/env-var", "dollar", BAD, dollar_input_home),
    ]
    return [c for c in cases if c.name.split("/")[1] in tools or "workflow" in c.name]


# -- group: names (terminal escapes, newlines) -----------------------------------------------------

def group_names(tools: dict) -> list[Case]:
    def fade(value):
        return run_args("fade_audio", {"audio": value, "fade_in": 0.1})

    def missing_esc(env):
        return Inv(fade(f"red{ESC}file.wav"))

    def corrupt_esc(env):
        return Inv(fade(env.asset("corrupt.wav", f"red{ESC}corrupt.wav")))

    def corrupt_newline(env):
        return Inv(fade(env.asset("corrupt.wav", "a\nerror: all fine.wav")))

    def corrupt_cr(env):
        return Inv(fade(env.asset("corrupt.wav", "b\rerror: all fine.wav")))

    def good_esc(env):  # a fine file with an escape sequence in its name: works (or is refused cleanly)
        return Inv(fade(env.asset("good.wav", f"ok{ESC}name.wav")))

    def tool_esc(env):
        return Inv(cli("tools", "run", f"fade{ESC}_audio", "--out", "out", "--json"))

    def argname_esc(env):
        return Inv(cli("tools", "run", "fade_audio", "--arg", f"au{ESC}dio={env.asset('good.wav')}", "--out", "out", "--json"))

    def wf_name_esc(env):
        env.write(f"wf/fl{ESC}ow.yaml", "steps: [\n")
        return Inv(cli("workflow", "run", f"wf/fl{ESC}ow.yaml", "--out", "out", "--json"))

    def step_id_esc(env):
        env.write("wf/flow.yaml", workflow([{"id": f"s{ESC}", "tool": f"fade{ESC}", "args": {}}]))
        return Inv(cli("workflow", "run", "wf/flow.yaml", "--out", "out", "--json"))

    def unknown_tool_esc_yaml(env):
        env.write("wf/flow.yaml", workflow([{"id": "s", "tool": f"fade{ESC}\n", "args": {"audio": f"x{ESC}.wav"}}]))
        return Inv(cli("workflow", "run", "wf/flow.yaml", "--out", "out", "--json"))

    def input_esc(env):
        return Inv(cli("workflow", "run", _fade_wf(env), "--input", f"a=red{ESC}missing.wav", "--out", "out", "--json"))

    return [
        Case("names/missing-file-escape", "names", BAD, missing_esc),
        Case("names/corrupt-file-escape", "names", BAD, corrupt_esc),
        Case("names/corrupt-file-newline", "names", BAD, corrupt_newline),
        Case("names/corrupt-file-carriage-return", "names", BAD, corrupt_cr),
        Case("names/good-file-escape", "names", EITHER, good_esc),
        Case("names/tool-name-escape", "names", BAD, tool_esc),
        Case("names/arg-name-escape", "names", BAD, argname_esc),
        Case("names/workflow-file-escape", "names", BAD, wf_name_esc),
        Case("names/step-id-escape", "names", BAD, step_id_esc),
        Case("names/tool-in-yaml-escape", "names", BAD, unknown_tool_esc_yaml),
        Case("names/workflow-input-escape", "names", BAD, input_esc),
    ]


# -- group: data-lost -------------------------------------------------------------------------------

def group_lost(tools: dict) -> list[Case]:
    def good_bad(bad_step: dict, seed: bool, order: str = "good-first"):
        def build(env):
            if seed:
                env.seed_earlier("out")
            good = {"id": "good", "tool": "fade_audio", "args": {"audio": "$a", "fade_in": 0.1}}
            bad = {"id": "bad", **bad_step}
            steps = [good, bad] if order == "good-first" else [bad, good]
            env.write("wf/flow.yaml", workflow(steps, inputs={"a": {"type": "audio"}}))
            return Inv(cli("workflow", "run", "wf/flow.yaml", "--input", f"a={env.asset('good.wav')}", "--out", "out", "--json"))
        return build

    def seeded(make_argv: Callable[[Env], list[str]]):
        def build(env):
            env.seed_earlier("out")
            return Inv(make_argv(env))
        return build

    trim_late = {"tool": "trim_audio", "args": {"audio": "$a", "start": 5}}  # fails while running

    def nan_step(env):
        env.seed_earlier("out")
        env.write("wf/flow.yaml", HEAD.replace("audio: {type: audio}", "a: {type: audio}") +
                  "  - {id: good, tool: fade_audio, args: {audio: $a, fade_in: 0.1}}\n"
                  "  - {id: bad, tool: fit_audio, args: {audio: $a, duration: .nan}}\n")
        return Inv(cli("workflow", "run", "wf/flow.yaml", "--input", f"a={env.asset('good.wav')}", "--out", "out", "--json"))

    fade = lambda value, **kw: (lambda env: run_args("fade_audio", {"audio": value(env), "fade_in": 0.1, **kw}))  # noqa: E731
    return [
        Case("data-lost/good-and-runtime-failure", "data-lost", RUNTIME, good_bad(trim_late, seed=False)),
        Case("data-lost/runtime-failure-first", "data-lost", RUNTIME, good_bad(trim_late, seed=False, order="bad-first")),
        Case("data-lost/good-and-runtime-failure-earlier-run", "data-lost", RUNTIME, good_bad(trim_late, seed=True)),
        Case("data-lost/good-and-nan-step-earlier-run", "data-lost", BAD, nan_step),
        Case("data-lost/good-and-unknown-tool-earlier-run", "data-lost", BAD,
             good_bad({"tool": "nosuch_tool", "args": {}}, seed=True)),
        Case("data-lost/earlier-run-missing-input", "data-lost", BAD, seeded(fade(lambda e: "nothere.wav"))),
        Case("data-lost/earlier-run-corrupt-input", "data-lost", BAD, seeded(fade(lambda e: e.asset("corrupt.wav")))),
        Case("data-lost/earlier-run-nan-arg", "data-lost", BAD,
             seeded(lambda e: run_args("fit_audio", {"audio": e.asset("good.wav"), "duration": "nan"}))),
        Case("data-lost/earlier-run-playlist", "data-lost", BAD,
             seeded(fade(lambda e: e.write("x.m3u8", _hls(e.c("canary.ts")))))),
        Case("data-lost/earlier-run-yaml-bomb", "data-lost", BAD,
             seeded(lambda e: (e.write("wf/flow.yaml", HEAD + STEP % _bomb()),
                               cli("workflow", "run", "wf/flow.yaml", "--input", f"audio={e.asset('good.wav')}",
                                   "--out", "out", "--json"))[1])),
        Case("data-lost/earlier-run-same-job-again", "data-lost", OK, seeded(fade(lambda e: e.asset("good.wav")))),
    ]


# -- self-test (not in the real catalogue) ----------------------------------------------------------

def group_selftest(tools: dict) -> list[Case]:
    def cat(env):
        return Inv(["cat", env.c("canary.wav")], json=False, out=None)

    def http(env):
        code = "import sys, urllib.request\ntry: urllib.request.urlopen(sys.argv[1], timeout=5)\nexcept Exception: pass\n"
        return Inv([sys.executable, "-c", code, env.url + "/seg.ts"], json=False, out=None)

    def listdir(env):
        return Inv([sys.executable, "-c", "import os, sys; os.listdir(sys.argv[1])", env.c("model")], json=False, out=None)

    def lose(env):  # deletes an earlier output: must show up under "lost"
        env.seed_earlier("out")
        victim = sorted(env.earlier["files"])[0]
        return Inv([sys.executable, "-c", "import os, sys; os.remove(sys.argv[1])", victim], json=False, out=None)

    return [Case("selftest/cat-canary", "selftest", OK, cat, selftest=True),
            Case("selftest/http-canary", "selftest", OK, http, selftest=True),
            Case("selftest/list-canary-folder", "selftest", OK, listdir, selftest=True),
            Case("selftest/delete-earlier-output", "selftest", OK, lose, selftest=True)]


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
            elif _sha(p) != sha:
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
    global QUIET
    QUIET = args.quiet
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
