"""Robustness cases that give a command bad values: media files (missing, empty, corrupt, the wrong
kind), numbers (NaN, inf, huge), paths that escape the allowed roots (symlinks, playlists, path-valued
text), missing or unknown arguments, $-values, and names with terminal escapes or newlines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from robustness_cases import (BAD, EITHER, ESC, PATHLIKE_TEXT, SEGMENTS, SKIP_RUNNING, Case, Env, Inv, base_args, cli,
                              is_list, is_media, is_number, kinds_of, run_args, with_value, workflow)


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
            for variant, make, expect in media_variants(kinds_of(p["type"])[0]):
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
            kind = kinds_of(p["type"])[0]
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

def hls_playlist(entry: str) -> str:
    return ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
            f"#EXTINF:1.0,\n{entry}\n#EXT-X-ENDLIST\n")


def _ffconcat(entry: str) -> str:
    return f"ffconcat version 1.0\nfile '{entry}'\n"


PLAYLISTS: list[tuple[str, Callable[[Env], str]]] = [
    ("hls-abs-ts", lambda e: e.write("x.m3u8", hls_playlist(e.c("canary.ts")))),
    ("hls-abs-aac", lambda e: e.write("x.m3u8", hls_playlist(e.c("canary.aac")))),
    ("hls-symlink-ts", lambda e: (e.link("segs", e.canary), e.write("x.m3u8", hls_playlist("segs/canary.ts")))[1]),
    ("hls-dotdot-ts", lambda e: e.write("x.m3u8", hls_playlist(e.c_rel("canary.ts")))),
    ("hls-http", lambda e: e.write("x.m3u8", hls_playlist(e.url + "/seg.ts"))),
    ("hls-named-wav", lambda e: e.write("list.wav", hls_playlist(e.c("canary.ts")))),
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
            env.write("wf/x.m3u8", hls_playlist("segs/canary.ts"))
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
