"""The robustness benchmark's building blocks: what a case is (Case, Inv, Env), the exit codes it may
expect, the command lines it runs, and good values for every tool argument, read from the registry.

Every other robustness_*.py module builds on this one; benchmarks/robustness.py describes the benchmark.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
for _p in (str(REPO), str(REPO / "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

BAD = frozenset({2})
OK = frozenset({0})
EITHER = frozenset({0, 2})
RUNTIME = frozenset({1, 2})

ESC = "\x1b[31m"


QUIET = False


def log(msg: str) -> None:
    if not QUIET:
        print(msg, file=sys.stderr, flush=True)


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
        self.earlier = {"out": o, "files": {str(p): sha256_of(p) for p in files.values()},
                        "run_json": (o / "run.json").read_bytes()}


def sha256_of(p: Path) -> str:
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


def kinds_of(tag: str) -> list[str]:
    base = tag[5:-1] if tag.startswith("list[") else tag
    return [k for k in base.split("|") if k in MEDIA_KINDS]


def is_media(tag: str) -> bool:
    return bool(kinds_of(tag))


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
        kind = kinds_of(tag)[0]
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
        kind = kinds_of(tag)[0]
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
