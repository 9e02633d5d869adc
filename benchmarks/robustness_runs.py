"""Robustness cases about whole workflow documents and output folders: YAML (alias bombs, deep nesting,
a 1,200-step chain, malformed documents), --out (a file, read-only), data lost beside a failing step or
over an earlier run, and the self-test cases that escape on purpose.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from robustness_args import hls_playlist
from robustness_cases import BAD, EITHER, ESC, OK, RUNTIME, Case, Env, Inv, cli, run_args, sha256_of, workflow


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
        env.earlier = {"out": env.dir, "files": {env.abs("existing.wav"): sha256_of(env.dir / "existing.wav")}, "run_json": None}
        return Inv(fade(env, "existing.wav"), out=None)

    def out_under_file(env):
        env.asset("good2.wav", "existing.wav")
        env.earlier = {"out": env.dir, "files": {env.abs("existing.wav"): sha256_of(env.dir / "existing.wav")}, "run_json": None}
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
             seeded(fade(lambda e: e.write("x.m3u8", hls_playlist(e.c("canary.ts")))))),
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
