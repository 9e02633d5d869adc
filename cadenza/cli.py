"""The `cadenza` command line: the parser, and each command turning its flags into work.

Beside it: run_cli.py runs a plan and prints its outputs (or a --batch table's summary),
bench_cli.py holds `cadenza bench`, dub_cli.py turns `cadenza dub`'s flags into a workflow run.

Exit codes: 0 success, 2 bad input or usage, 1 failure while running, 130 Ctrl-C.
With `--json` a command prints exactly one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .bench_cli import _read_tool_bias, cmd_bench_calibrate, cmd_bench_plan
from .errors import CadenzaError, InputError, one_line, printable
from .run_cli import execute_plan, execute_batch, runner_factory
from .workspace import Workspace


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_ctrl_c)
    code = _dispatch(args)
    ray_runner = sys.modules.get("cadenza.engine.ray_runner")
    if ray_runner is not None:  # stop the local Ray this process started (its task workers too)
        ray_runner.disconnect()
    executor = sys.modules.get("cadenza.engine.executor")  # not loaded: nothing ran
    if executor is not None and executor.work_left_running():
        # A cancelled or timed-out step is still inside code no thread can stop; its result will be
        # discarded, and run.json already says so. Exit now rather than wait for it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _on_ctrl_c(signum, frame):
    """The first Ctrl-C cancels the run; later ones are ignored, so nothing cuts the record short
    or prints a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return args.func(args) or 0
    except CadenzaError as e:
        return _fail(args, one_line(e), e.exit_code)
    except KeyboardInterrupt:
        return _fail(args, "interrupted", 130)
    except Exception as e:  # a bug: one line unless asked for the traceback
        if os.environ.get("CADENZA_DEBUG"):
            raise
        return _fail(args, f"internal error: {type(e).__name__}: {one_line(e)} (set CADENZA_DEBUG=1 for a traceback)", 1)


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"error": message, "exit_code": code}))
    print(f"error: {printable(message)}", file=sys.stderr)
    return code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors: one line, exit 2
        self.print_usage(sys.stderr)
        print(f"error: {printable(message)}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cadenza", description="Plan, check and run multi-step media jobs with local models.")
    p.add_argument("--version", action="version", version=f"cadenza {_version()}")
    sub = p.add_subparsers(parser_class=_Parser, metavar="COMMAND")

    tools = sub.add_parser("tools", help="list, show and run tools").add_subparsers(parser_class=_Parser, metavar="ACTION")
    t = tools.add_parser("list", help="list the tools")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_tools_list)
    t = tools.add_parser("show", help="show one tool's inputs, outputs and backends")
    t.add_argument("name")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_tools_show)
    t = tools.add_parser("run", help="run one tool")
    t.add_argument("name")
    t.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE", help="an argument (repeat for lists)")
    _run_options(t)
    t.set_defaults(func=cmd_tools_run)

    wf = sub.add_parser("workflow", help="validate and run YAML workflows").add_subparsers(parser_class=_Parser, metavar="ACTION")
    w = wf.add_parser("validate", help="check a workflow without running it")
    w.add_argument("file", help="a workflow file, or the name of a built-in or user workflow (dub, describe_video)")
    w.add_argument("--json", action="store_true")
    w.set_defaults(func=cmd_workflow_validate)
    w = wf.add_parser("run", help="run a workflow")
    w.add_argument("file", help="a workflow file, or the name of a built-in or user workflow (dub, describe_video)")
    w.add_argument("--input", action="append", default=[], metavar="NAME=VALUE", help="a workflow input (repeat for lists)")
    _batch_option(w, "one run per row of TABLE (.csv or .jsonl, a column per input; --input values are the "
                     "defaults), each into its own folder under --out, all rows at once")
    _run_options(w)
    w.set_defaults(func=cmd_workflow_run)
    w = wf.add_parser("schema", help="print the plan format's JSON Schema")
    w.set_defaults(func=cmd_workflow_schema)

    dub = sub.add_parser("dub", help="dub the speech of a video (or a sound file) into another language "
                                     "(the 'dub' and 'dub_audio' workflows)")
    dub.add_argument("video", nargs="?", help="the video to dub, or a sound file (a podcast: gives dubbed audio)")
    dub.add_argument("--to", dest="to", metavar="LANG", help="the language to dub into (es, de, ...)")
    dub.add_argument("--from", dest="source", metavar="LANG", default=None,
                     help="the spoken language (default: detect it)")
    dub.add_argument("--voice", default=None, help="the voice (default: the best one here for the language)")
    dub.add_argument("--background", choices=("duck", "keep", "drop"), default="duck",
                     help="the original sound under the new voice: lowered where it speaks (duck, the default), "
                          "kept as it is, or dropped")
    dub.add_argument("--subtitles", choices=("soft", "burn", "none"), default="soft",
                     help="the subtitles in the dubbed video: a track the player can turn on (soft, the default), "
                          "burned into the picture (re-encodes it), or none; the .srt and .vtt are written anyway")
    dub.add_argument("--lines", default=None, metavar="FILE",
                     help="an edited dub_lines.json of an earlier run: its translations (and per-line voice or "
                          "speed) are used, and only the lines it changes are spoken again")
    dub.add_argument("--list-languages", action="store_true",
                     help="list the languages that can be dubbed into here, with their voices, and exit")
    _batch_option(dub, "dub every video of TABLE (.csv or .jsonl: a 'video' column, and optionally to, from, "
                       "voice, background, subtitles_mode; flags are the defaults), each into its own folder")
    _run_options(dub)
    dub.set_defaults(func=_cmd_dub)

    for name, helptext in [("plan", "plan a request and print the validated plan (nothing runs)"),
                           ("run", "plan a request, run it and answer")]:
        a = sub.add_parser(name, help=helptext)
        a.add_argument("request")
        a.add_argument("--file", action="append", default=[], metavar="F", help="a file the request is about (repeat)")
        if name == "plan":
            a.add_argument("--mermaid", action="store_true", help="print the plan as a Mermaid flowchart")
            a.set_defaults(func=cmd_plan)
        else:
            _run_options(a)
            a.set_defaults(func=cmd_run)
        _agent_options(a)
    c = sub.add_parser("chat", help="talk to the agent; earlier outputs stay available")
    c.add_argument("--file", action="append", default=[], metavar="F")
    _run_options(c)
    _agent_options(c)
    c.set_defaults(func=cmd_chat)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(parser_class=_Parser, metavar="WHAT")
    b = bench.add_parser("plan", help="score the planner on TaskBench-format cases")
    b.add_argument("--cases", required=True, help="cases, TaskBench JSONL")
    b.add_argument("--tools", required=True, help="tool catalog, TaskBench tools.json")
    b.add_argument("--examples", help="pool of worked examples (same format as the cases)")
    b.add_argument("--llm", default=None)
    b.add_argument("--limit", type=int, default=None, help="score only the first N cases")
    b.add_argument("--offset", type=int, default=0, help="skip the first N cases")
    b.add_argument("--log", default=None, help="append one JSON line per case to this file; cases already in it "
                                             "are not planned again (resume a long run)")
    b.add_argument("--n-examples", type=int, default=None,
                   help="similar worked examples shown per request (default: 1 with fixed examples, else 3)")
    b.add_argument("--top-k", type=int, default=8, help="tools retrieved from a large catalog")
    b.add_argument("--retrieve-above", type=int, default=50, help="retrieve tools when the catalog is larger")
    b.add_argument("--example-style", choices=["turns", "inline"], default="turns")
    b.add_argument("--anchors", type=int, default=None,
                   help="at most this many fixed examples that use every tool, in the cached system prompt "
                        "(default: 12 for a catalog of 21-50 tools, else none)")
    b.add_argument("--no-stepwise", dest="stepwise", action="store_false",
                   help="embedded LLM: one JSON-schema grammar for the whole plan instead of step by step")
    _tuning_options(b)
    b.add_argument("--max-repairs", type=int, default=2)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench_plan)
    c = bench.add_parser("calibrate", help="measure which tools the LLM over- or under-uses, on a pool of "
                                           "worked examples; writes weights for --tool-bias and prints the "
                                           "--step-check threshold")
    c.add_argument("--examples", required=True, help="pool of worked examples, TaskBench JSONL")
    c.add_argument("--tools", required=True, help="tool catalog, TaskBench tools.json")
    c.add_argument("--llm", default=None)
    c.add_argument("--out", default=None, help="write the weights (JSON) to this file")
    c.add_argument("--log", default=None, help="as for bench plan: one JSON line per example, resumable")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_bench_calibrate)

    s = sub.add_parser("serve", help="serve the HTTP API (needs the 'serve' extra)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other needs a token)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--data", default="cadenza-data", help="folder of uploads and runs (default ./cadenza-data)")
    s.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN' (or set CADENZA_TOKEN)")
    s.add_argument("--max-upload-mb", type=float, default=200, help="largest upload accepted (default 200 MB)")
    s.add_argument("--workers", type=int, default=2, help="runs executed at once (default 2)")
    s.add_argument("--queue", type=int, default=16, help="runs that may wait; beyond, 429 (default 16)")
    s.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                   help="let pages from this origin call the API (repeat; default: none)")
    s.add_argument("--no-cache", action="store_true", help="do not reuse or store step results")
    s.add_argument("--llm", default=None, help="the LLM that plans requests (as for 'cadenza run')")
    s.set_defaults(func=cmd_serve)

    m = sub.add_parser("mcp", help="serve every tool, plus 'plan' and 'run', over the Model Context Protocol "
                                   "(stdio; needs the 'mcp' extra)")
    m.add_argument("--http", action="store_true", help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio")
    m.add_argument("--host", default="127.0.0.1", help="with --http: address to bind (any but loopback needs a token)")
    m.add_argument("--port", type=int, default=8765, help="with --http: the port (default 8765)")
    m.add_argument("--token", default=None, help="with --http: require 'Authorization: Bearer TOKEN' (or CADENZA_TOKEN)")
    m.add_argument("--root", action="append", default=[], metavar="DIR",
                   help="a folder whose files calls may read, besides the working folder (repeat)")
    m.add_argument("--out", default="cadenza-mcp", help="output folder, one sub-folder per call (default ./cadenza-mcp)")
    m.add_argument("--no-cache", action="store_true", help="do not reuse or store step results")
    m.add_argument("--llm", default=None, help="the LLM that plans requests (as for 'cadenza run')")
    m.set_defaults(func=cmd_mcp)

    d = sub.add_parser("doctor", help="what can run here, and why not")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_doctor)
    return p


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="cadenza-out", help="output folder (default: ./cadenza-out)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the outputs")
    p.add_argument("--no-cache", action="store_true", help="do not reuse or store step results")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed per step")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: CUDA when present)")
    p.add_argument("--runner", default=None, help="threads (default), ray (a local Ray), ray:auto or ray://HOST:PORT "
                                                  "(a cluster); else CADENZA_RUNNER or 'runner' in the config file")


def _batch_option(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--batch", default=None, metavar="TABLE", help=text)


def _agent_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--llm", default=None, help="local (default), local-small, openai:gpt-4o-mini, ollama:qwen2.5, ... "
                                               "(or CADENZA_LLM, or llm= in ~/.config/cadenza/config.toml)")
    p.add_argument("--examples", default=None, help="extra worked examples (JSONL) for the planner")
    _tuning_options(p)
    if not any(a.dest == "json" for a in p._actions):
        p.add_argument("--json", action="store_true")


def _tuning_options(p: argparse.ArgumentParser) -> None:
    """The embedded LLM's corrections that 'cadenza bench calibrate' measures on a pool of examples."""
    p.add_argument("--tool-bias", default=None, help="JSON file {tool: log-weight} (as 'cadenza bench calibrate' "
                                                     "writes): the embedded LLM's tool choice is weighed by exp(weight)")
    p.add_argument("--step-check", type=float, default=None, metavar="THRESHOLD",
                   help="embedded LLM: drop plan steps it scores below this as not asked for ('cadenza bench "
                        "calibrate' measures it)")


def _version() -> str:
    from . import __version__

    return __version__


# -- tools ---------------------------------------------------------------------------
def cmd_tools_list(args) -> int:
    from .tools.registry import default_registry

    reg = default_registry()
    if args.json:
        print(json.dumps({"tools": [{"name": t.name, "description": t.description, "signature": t.signature_line()}
                                    for t in reg]}))
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, show_header=True, header_style="bold")
    table.add_column("tool")
    table.add_column("signature")
    table.add_column("description")
    for t in reg:
        table.add_row(*(escape(printable(x)) for x in (t.name, t.signature_line(), t.summary())))
    Console(width=160).print(table)
    return 0


def cmd_tools_show(args) -> int:
    from .tools.registry import default_registry

    spec = default_registry().get(args.name).spec()
    if args.json:
        print(json.dumps(spec, default=str))
        return 0
    p = printable  # names, descriptions and reasons come from plugins
    print(f"{p(spec['name'])} (version {p(spec['version'])})\n  {p(spec['description'])}\n\ninputs:")
    for name, i in spec["inputs"].items():
        extra = "required" if i["required"] else f"default {i.get('default')!r}"
        print(p(f"  {name}: {i['type']} ({extra})" + (f"  {i['description']}" if i.get("description") else "")))
    print("outputs:")
    for name, tag in spec["outputs"].items():
        print(p(f"  {name}: {tag}"))
    print("backends:")
    for b in spec["backends"]:
        state = "usable" if b["available"] else f"not usable: {b['why_not']}"
        print(p(f"  {b['name']} [{b['device']}] {state}"))
    return 0


def cmd_tools_run(args) -> int:
    from .engine.plan import Plan, Step
    from .tools.registry import default_registry
    from .tools.types import is_media_tag

    t = default_registry().get(args.name)
    values = _parse_pairs(args.arg, {n: p.tag for n, p in t.params.items()}, "--arg")
    for name in values:
        if name not in t.params:
            raise InputError(f"tool '{t.name}' has no argument '{name}' (it takes: {', '.join(t.params)})")
    literal = {n: _literal(v, is_media_tag(t.params[n].tag)) for n, v in values.items()}
    plan = Plan(steps=[Step(id=_step_id(t.name), tool=t.name, args=literal)],
                outputs={n: f"${_step_id(t.name)}.{n}" if t.whole_output_tag else f"${_step_id(t.name)}"
                         for n in t.outputs})
    media = {n: v for n, v in values.items() if is_media_tag(t.params[n].tag)}  # the files the user names
    return execute_plan(args, plan, {}, Workspace.for_run(args.out, media))


def _literal(value: Any, is_path: bool) -> Any:
    """An --arg value as the plan's literal, never a reference: a file '$take.wav' becomes
    ./$take.wav made absolute, any other leading '$' is doubled (the plan's literal dollar)."""
    if isinstance(value, str) and value.startswith("$"):
        return str(Path.cwd() / value) if is_path else "$" + value
    if isinstance(value, list):
        return [_literal(v, is_path) for v in value]
    if isinstance(value, dict):
        return {k: _literal(v, is_path) for k, v in value.items()}
    return value


def _step_id(name: str) -> str:
    return name if name.replace("_", "a").isalnum() and not name[0].isdigit() else "step"


# -- workflows -------------------------------------------------------------------------
def cmd_workflow_validate(args) -> int:
    from .engine.validate import check_plan
    from .engine.workflow import load_workflow
    from .engine.workflow_tool import workflow_file
    from .tools.registry import default_registry

    args.file = str(workflow_file(args.file))
    plan = check_plan(load_workflow(args.file), default_registry())
    if args.json:
        print(json.dumps({"valid": True, "steps": len(plan.steps), "inputs": list(plan.inputs),
                          "outputs": list(plan.outputs)}))
    else:
        print(printable(f"{args.file}: valid ({len(plan.steps)} steps; inputs: {', '.join(plan.inputs) or 'none'})"))
    return 0


def cmd_workflow_run(args) -> int:
    from .engine.workflow import media_inputs, prepare_workflow
    from .engine.workflow_tool import workflow_file

    args.file = str(workflow_file(args.file))  # a path, or a built-in or user workflow's name
    plan = prepare_workflow(args.file)  # its relative asset paths: under its folder; --input paths: under ./
    inputs = _parse_pairs(args.input, {n: s.type for n, s in plan.inputs.items()}, "--input")
    if args.batch:
        return execute_batch(args, plan, inputs, roots=[Path(args.file).resolve().parent])
    return execute_plan(args, plan, inputs, Workspace.for_run(args.out, media_inputs(plan, inputs),
                                                          roots=[Path(args.file).resolve().parent]))


def cmd_workflow_schema(args) -> int:
    from .engine.plan import plan_json_schema

    print(json.dumps(plan_json_schema(), indent=2))
    return 0


def _parse_pairs(pairs: list[str], types: dict[str, str], flag: str) -> dict[str, Any]:
    """NAME=VALUE pairs; repeated names make lists; values parse by the declared type."""
    from .engine.workflow import parse_input_value

    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputError(f"{flag} {pair!r}: expected NAME=VALUE")
        name, raw = pair.split("=", 1)
        name = name.strip()
        tag = types.get(name, "text")
        value = parse_input_value(raw, tag, f"{flag} {name}")
        if name in out:
            prev = out[name]
            out[name] = (prev if isinstance(prev, list) else [prev]) + (value if isinstance(value, list) else [value])
        else:
            out[name] = [value] if tag.startswith("list[") and not isinstance(value, list) else value
    return out


# -- dub ------------------------------------------------------------------------------
def _cmd_dub(args) -> int:
    from .dub_cli import dub_job  # the dubbing front lives beside this one

    job = dub_job(args)
    if isinstance(job, int):
        return job
    if getattr(args, "batch", None):
        plan, defaults, roots, finish = job
        return execute_batch(args, plan, defaults, roots=roots, finish=finish)
    return execute_plan(args, *job)


# -- the agent -----------------------------------------------------------------------
def _agent(args, **kw):
    from .agent.agent import Agent

    if args.tool_bias:
        from .tools.registry import default_registry

        kw["tool_bias"] = _read_tool_bias(args.tool_bias, default_registry())
    if args.step_check is not None:
        kw["step_check"] = args.step_check
    return Agent(llm=args.llm, examples=args.examples, **kw)


def cmd_plan(args) -> int:
    from .engine.mermaid import to_mermaid

    agent = _agent(args)
    plan = agent.plan(args.request, args.file)
    if args.json:
        print(json.dumps({"plan": plan.model_dump(mode="json", exclude_none=True)}))
    elif args.mermaid:
        print(printable(to_mermaid(plan, agent.registry), multiline=True))
    else:
        print(plan.to_json())
    return 0


def cmd_run(args) -> int:
    from .progress import ProgressDisplay
    from .runtime import get_runtime

    if args.device:
        get_runtime().device = args.device
    with ProgressDisplay(enabled=not args.json or sys.stderr.isatty()) as progress:
        agent = _agent(args, out_dir=args.out, cache=not args.no_cache, on_event=progress.on_event,
                       runner=runner_factory(args))
        result = agent.run(args.request, args.file)
    return _print_agent_result(args, result)


def _print_agent_result(args, result) -> int:
    from .media import to_jsonable

    if args.json:
        doc = {"answer": result.answer, "outputs": to_jsonable(result.outputs),
               "plan": result.plan.model_dump(mode="json", exclude_none=True) if result.plan else None,
               "status": result.run.status if result.run else "no plan",
               "run_json": str(result.run.run_json) if result.run else None}
        print(json.dumps(doc, default=str))
    else:
        print(printable(result.answer, multiline=True))
    return result.exit_code


def cmd_chat(args) -> int:
    """Read requests line by line; '/file PATH' attaches a file, '/quit' ends."""
    agent = _agent(args, out_dir=args.out, cache=not args.no_cache, runner=runner_factory(args))
    pending = list(args.file)
    interactive = sys.stdin.isatty()
    code = 0
    while True:
        if interactive:
            print("you> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        if line in ("/quit", "/exit"):
            break
        if line.startswith("/file "):
            pending.append(line[6:].strip())
            continue
        try:
            result = agent.chat(line, pending)
            pending = []
            code = _print_agent_result(args, result)
        except CadenzaError as e:
            code = e.exit_code
            print(f"error: {printable(one_line(e))}", file=sys.stderr)
    return code


# -- serve ----------------------------------------------------------------------------
def cmd_serve(args) -> int:
    from .server import serve

    if args.max_upload_mb <= 0 or args.workers < 1 or args.queue < 1:
        raise InputError("--max-upload-mb, --workers and --queue must be positive")
    serve(args.host, args.port, args.data, token=args.token, llm=args.llm, max_upload_bytes=int(args.max_upload_mb * 2**20),
          workers=args.workers, max_queued=args.queue, cache=not args.no_cache, cors_origins=args.cors)
    return 0


def cmd_mcp(args) -> int:
    try:
        from .server.mcp_server import serve_mcp
    except ImportError as e:
        raise InputError(f"'cadenza mcp' needs the 'mcp' extra: pip install 'cadenza[mcp]' ({e.name} is missing)") from None
    from .tools.registry import default_registry

    serve_mcp(default_registry(), http=args.http, host=args.host, port=args.port, token=args.token, roots=args.root,
              out_dir=args.out, llm=args.llm, cache=not args.no_cache)
    return 0


# -- doctor ---------------------------------------------------------------------------
def cmd_doctor(args) -> int:
    from .doctor import report

    rep = report()
    if args.json:
        print(json.dumps(rep, default=str))
        return 0
    from .doctor import print_report

    print_report(rep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
