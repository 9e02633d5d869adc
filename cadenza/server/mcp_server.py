"""`cadenza mcp`: every registered tool over the Model Context Protocol, plus `plan` and `run`.

Built on the official SDK's low-level `Server` (tools listed with their own JSON Schemas, which
FastMCP would rebuild from Python signatures), served over stdio or streamable HTTP.

- A media argument is a path under the allowed roots (the working folder, the `--root` folders
  and the output folder) or the `file://` URI of an earlier output; nothing else is read.
- Each call runs in a folder of its own under the output folder, through `engine.Executor` (a
  single tool is a one-step plan, as `cadenza tools run` makes) or `agent.Agent`; its media
  outputs come back as resource links (`file://` URIs the server reads back on `resources/read`)
  and every output in the structured result.
- A client that sends a progress token gets a notification per step (started, finished, cached,
  failed) and, while a step runs, one every HEARTBEAT_S seconds; a cancelled request stops its run.
"""

from __future__ import annotations

import hmac
import json
import mimetypes
import os
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.lowlevel.helper_types import ReadResourceContents

from ..agent.agent import Agent
from ..agent.examples import ExamplePool
from ..engine.executor import Event, Executor, RunResult
from ..engine.plan import Plan, Step
from ..engine.workflow import prepare_workflow
from ..engine.workflow_tool import WorkflowTool
from ..errors import CadenzaError, InputError, one_line
from ..llm.chat import get_chat_model
from ..media import Media, to_jsonable
from ..tools.base import Tool
from ..tools.registry import Registry
from ..tools.types import is_media_tag
from ..workspace import Workspace
from .security import LoginLimiter, check_binding, client_address, too_many_tries

HEARTBEAT_S = 2.0
MAX_RESOURCE_BYTES = 256 * 2**20  # a resources/read answer is one JSON message: larger outputs are read as files
EXTRA_TOOLS = ("plan", "run")
URI_NOTE = " (a path under the allowed roots, or the file:// URI of an earlier output)"

PLAN_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["request"],
    "properties": {
        "request": {"type": "string", "minLength": 1, "description": "what to do, in plain language"},
        "files": {"type": "object", "additionalProperties": {"type": "string"},
                  "description": "the files the request is about, by name: {\"voice\": \"take1.wav\"}" + URI_NOTE},
    },
}
RUN_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        **PLAN_SCHEMA["properties"],
        "request": {"type": "string", "minLength": 1, "description": "what to do, in plain language (or give a workflow)"},
        "workflow": {"type": "string", "minLength": 1,
                     "description": "a workflow to run instead of a request: a built-in or user workflow's name, or "
                                    "the path of a workflow file under the allowed roots"},
        "inputs": {"type": "object", "description": "the workflow's inputs by name; a media input is a path" + URI_NOTE},
    },
}


class CadenzaMCP:
    """The MCP server over a registry. `roots`: folders a call may read besides the output folder."""

    def __init__(self, registry: Registry, *, roots: list[str | os.PathLike] = (), out_dir: str | os.PathLike = "cadenza-mcp",
                 llm: Any = None, cache: bool = True, heartbeat_s: float = HEARTBEAT_S):
        from .. import __version__

        self.registry = registry
        self.base_dir = Path.cwd().resolve()
        self.out_dir = Workspace(out_dir).out_dir
        self.roots = [self.base_dir, *(Path(r).expanduser().resolve() for r in roots)]
        for r in self.roots:
            if not r.is_dir():
                raise InputError(f"root {r}: not a folder")
        self.llm, self.cache, self.heartbeat_s = llm, cache, heartbeat_s
        self._llm_lock = threading.Lock()
        self._examples: ExamplePool | None = None
        self.tools = {t.name: t for t in registry if t.name not in EXTRA_TOOLS}  # a plugin's 'plan' or 'run' is not served
        self.server = Server("cadenza", version=__version__, instructions=(
            "Cadenza's media tools (speech, music, images, video). Give files as paths under: "
            + ", ".join(map(str, self.roots)) + f" (outputs land in {self.out_dir}, and may be passed on by path "
            "or file:// URI). 'plan' turns a request into a checked plan; 'run' carries out a request or a workflow."))
        self.server.list_tools()(self._list_tools)
        self.server.call_tool(validate_input=False)(self._call_tool)  # ours name the argument at fault
        self.server.list_resources()(self._list_resources)
        self.server.read_resource()(self._read_resource)

    # -- listing -----------------------------------------------------------------------------
    async def _list_tools(self) -> list:
        listed = [types.Tool(name=t.name, description=t.description or t.name, inputSchema=_marked(t.input_schema()))
                  for t in self.tools.values()]
        return listed + [
            types.Tool(name="plan", inputSchema=PLAN_SCHEMA, description=(
                "Plan a media job from a plain-language request: returns a validated plan (steps of these tools) "
                "without running it.")),
            types.Tool(name="run", inputSchema=RUN_SCHEMA, description=(
                "Carry out a plain-language request (planned, checked and run) or run a workflow with its inputs; "
                "returns the outputs, files as resource links.")),
        ]

    async def _list_resources(self) -> list:
        found = sorted((p for p in self.out_dir.rglob("*") if p.is_file() and ".cadenza" not in p.parts),
                       key=lambda p: p.stat().st_mtime, reverse=True)[:200]
        return [types.Resource(uri=p.as_uri(), name=str(p.relative_to(self.out_dir)), mimeType=_mime(p),
                               size=p.stat().st_size) for p in found]

    async def _read_resource(self, uri: Any) -> list:
        path = self._output_file(str(uri))
        if path.stat().st_size > MAX_RESOURCE_BYTES:
            raise InputError(f"resource {uri}: larger than {MAX_RESOURCE_BYTES // 2**20} MB; read the file itself")
        return [ReadResourceContents(content=path.read_bytes(), mime_type=_mime(path))]

    def _output_file(self, uri: str) -> Path:
        """The file an output's URI names; only files under the output folder are served."""
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise InputError(f"resource {uri[:200]}: not a file:// URI of an output")
        path = Path(unquote(parsed.path)).resolve()
        if self.out_dir not in path.parents or not path.is_file() or ".cadenza" in path.parts:
            raise InputError(f"resource {uri[:200]}: not an output of this server")
        return path

    # -- calling -----------------------------------------------------------------------------
    async def _call_tool(self, name: str, arguments: dict) -> Any:
        progress = Progress(self.server.request_context, self.heartbeat_s)
        try:
            if name in EXTRA_TOOLS:
                _check_arguments(name, arguments, PLAN_SCHEMA if name == "plan" else RUN_SCHEMA)
            if name == "plan":
                plan = await progress.run(lambda cancel: self.plan(arguments, progress.note))
                doc = {"plan": plan.model_dump(mode="json", exclude_none=True)}
                return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(doc))],
                                            structuredContent=doc)
            if name == "run":
                result, answer = await progress.run(lambda cancel: self.run(arguments, progress, cancel))
            elif name in self.tools:
                result, answer = await progress.run(
                    lambda cancel: (self.run_tool(self.tools[name], arguments, progress.on_event, cancel), None))
            else:
                raise InputError(f"unknown tool '{name[:60]}'")
        except CadenzaError as e:
            return _error(one_line(e))
        except Exception as e:  # a bug: one line to the client, the server goes on
            return _error(f"internal error: {type(e).__name__}: {one_line(e)}")
        return self._answer(result, answer)

    def _answer(self, result: RunResult | None, answer: str | None) -> Any:
        if result is None:  # the planner found no way
            return _error(answer or "no plan could be made")
        doc: dict[str, Any] = {"status": result.status, "outputs": to_jsonable(result.outputs),
                               "run_json": str(result.run_json)}
        if answer:
            doc["answer"] = answer
        if result.errors():
            doc["errors"] = result.errors()
        content: list = [types.TextContent(type="text", text=json.dumps(doc, default=str))]
        for name, value in result.outputs.items():
            for i, m in enumerate(value if isinstance(value, list) else [value]):
                if isinstance(m, Media):
                    content.append(types.ResourceLink(
                        type="resource_link", uri=m.path.as_uri(), name=name if not isinstance(value, list) else f"{name}[{i}]",
                        title=m.path.name, mimeType=m.mime or _mime(m.path), size=m.size_bytes, description=m.describe()))
        return types.CallToolResult(content=content, structuredContent=doc, isError=not result.ok)

    def workspace(self, folder: Path, extra_roots: list[Path] = ()) -> Workspace:
        return Workspace(folder, allowed=[*self.roots, self.out_dir, *extra_roots], base_dir=self.base_dir)

    def call_folder(self, what: str) -> Path:
        return self.out_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{what}-{secrets.token_hex(3)}"

    def run_tool(self, t: Tool, arguments: dict, on_event, cancel: threading.Event) -> RunResult:
        """One tool as a one-step plan; media arguments are paths (or output URIs) under the roots."""
        args = {n: _literal(v, n in t.params and is_media_tag(t.params[n].tag), self.base_dir) for n, v in arguments.items()}
        step = t.name if t.name.isidentifier() else "step"
        plan = Plan(steps=[Step(id=step, tool=t.name, args=args)],
                    outputs={n: f"${step}.{n}" if t.whole_output_tag else f"${step}" for n in t.outputs})
        return self._execute(plan, {}, self.workspace(self.call_folder(t.name)), on_event, cancel)

    def run(self, arguments: dict, progress: "Progress", cancel: threading.Event) -> tuple[RunResult | None, str | None]:
        request, workflow = arguments.get("request"), arguments.get("workflow")
        if (request is None) == (workflow is None):
            raise InputError("run: give either 'request' or 'workflow'")
        if workflow is not None:
            if arguments.get("files"):
                raise InputError("run: a workflow takes 'inputs', not 'files'")
            path = self.workflow_path(workflow)
            plan = prepare_workflow(path, self.registry)
            inputs = {n: _uri_to_path(v) for n, v in (arguments.get("inputs") or {}).items()}
            ws = self.workspace(self.call_folder(path.stem), [path.parent])
            return self._execute(plan, inputs, ws, progress.on_event, cancel), None
        if arguments.get("inputs"):
            raise InputError("run: a request takes 'files', not 'inputs'")
        ws = self.workspace(self.call_folder("request"))
        files = self.files(arguments.get("files") or {}, ws)
        agent = self.agent(ws.out_dir, progress.on_event)
        progress.note("planning the request")
        try:
            result = agent.run(request, files, out_dir=ws.out_dir, cancel=cancel)
        finally:
            agent.executor.close()
        return result.run, result.answer

    def plan(self, arguments: dict, note=lambda message: None) -> Plan:
        ws = self.workspace(self.out_dir)
        files = self.files(arguments.get("files") or {}, ws)
        note("planning the request")
        return self.agent(self.out_dir, None).plan(arguments["request"], files)

    def files(self, files: dict, ws: Workspace) -> dict[str, str]:
        """The request's files, each under the allowed roots (the agent would allow any file it is given)."""
        if not isinstance(files, dict):
            raise InputError("'files' must map names to paths")
        return {n: str(ws.resolve_input(_uri_to_path(p), f"file '{n}'")) for n, p in files.items()}

    def workflow_path(self, workflow: str) -> Path:
        t = self.registry.get(workflow) if workflow in self.registry else None
        if isinstance(t, WorkflowTool):
            return t.path
        if workflow.endswith((".yaml", ".yml")):
            return self.workspace(self.out_dir).resolve_input(_uri_to_path(workflow), "workflow")
        known = ", ".join(sorted(t.name for t in self.registry if isinstance(t, WorkflowTool)))
        raise InputError(f"no workflow '{workflow[:60]}' (known: {known or 'none'}; or a .yaml file under the roots)")

    def agent(self, out_dir: Path, on_event) -> Agent:
        with self._llm_lock:  # one chat model for every call: its own lock keeps two from decoding at once
            if self.llm is None or isinstance(self.llm, str):
                self.llm = get_chat_model(self.llm)
            if self._examples is None:
                self._examples = ExamplePool.builtin()
        return Agent(llm=self.llm, tools=self.registry, examples=self._examples, out_dir=out_dir, cache=self.cache,
                     on_event=on_event)

    def _execute(self, plan: Plan, inputs: dict, ws: Workspace, on_event, cancel: threading.Event) -> RunResult:
        ex = Executor(self.registry, cache=self.cache, on_event=on_event)
        try:
            return ex.run(plan, inputs, ws, cancel=cancel)
        except CadenzaError:
            if not any(p.name != ".cadenza" for p in ws.out_dir.iterdir()):  # refused before it ran: no folder left
                shutil.rmtree(ws.out_dir, ignore_errors=True)
            raise
        finally:
            ex.close()

    # -- transports --------------------------------------------------------------------------
    async def serve_stdio(self) -> None:
        import anyio
        from mcp.server.stdio import stdio_server

        # the protocol owns the real stdout; anything else printed (a tool, a native library) goes to stderr
        protocol_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
        os.dup2(2, 1)
        async with stdio_server(stdout=anyio.wrap_file(protocol_out)) as (read, write):
            await self.server.run(read, write, self.server.create_initialization_options())

    def http_app(self, token: str | None = None, loopback: bool = True):
        """A Starlette app serving the protocol at /mcp (streamable HTTP)."""
        import contextlib

        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
        from mcp.server.transport_security import TransportSecuritySettings
        from starlette.applications import Starlette
        from starlette.routing import Route

        security = TransportSecuritySettings(  # a web page elsewhere cannot reach a server on this machine
            enable_dns_rebinding_protection=True, allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]) if loopback else None
        manager = StreamableHTTPSessionManager(self.server, security_settings=security)

        class Endpoint:  # an ASGI app as the route's endpoint: the manager answers every method
            async def __call__(self, scope, receive, send):
                await manager.handle_request(scope, receive, send)

        @contextlib.asynccontextmanager
        async def lifespan(app):
            async with manager.run():
                yield

        app = Starlette(routes=[Route("/mcp", endpoint=Endpoint(), methods=["GET", "POST", "DELETE"])], lifespan=lifespan)
        return BearerToken(app, token) if token else app


class BearerToken:
    """ASGI middleware: every request carries `Authorization: Bearer TOKEN` (constant-time compare).
    Wrong tokens are limited per client address as the HTTP API limits them (security.LoginLimiter):
    after 5 in a minute that address gets 429 and its guesses are not compared."""

    def __init__(self, app, token: str, limiter: LoginLimiter | None = None):
        self.app, self.expected = app, f"Bearer {token}".encode()
        self.limiter = limiter or LoginLimiter()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        client = client_address(scope)
        wait = self.limiter.retry_after(client)
        if wait:
            return await _refuse(send, 429, too_many_tries(wait), [(b"retry-after", str(wait).encode())])
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(given, self.expected):
            if given:  # a missing token is not a guess
                self.limiter.failed(client)
            return await _refuse(send, 401, "missing or wrong token (Authorization: Bearer TOKEN)",
                                 [(b"www-authenticate", b"Bearer")])
        self.limiter.succeeded(client)
        await self.app(scope, receive, send)


async def _refuse(send, status: int, error: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"error": error}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), *headers]})
    await send({"type": "http.response.body", "body": body})


class Progress:
    """Progress notifications of one call: the executor's step events, and a heartbeat while a step runs.
    Progress counts finished steps, plus a fraction that grows while one runs (it only ever rises)."""

    def __init__(self, request_context: Any, heartbeat_s: float):
        meta = request_context.meta
        self.session, self.token = request_context.session, meta.progressToken if meta else None
        self.heartbeat_s = heartbeat_s
        self.lock = threading.Lock()
        self.total: int | None = None
        self.done = 0
        self.running: dict[str, tuple[str, float]] = {}  # step id -> (tool, started at)
        self.last = -1.0

    def on_event(self, e: Event) -> None:
        """From the executor's thread: a notification per step event (never fails the run)."""
        if self.token is None:
            return
        with self.lock:
            if e.kind == "run_started":
                self.total = (self.total or 0) + e.total  # a replan adds its steps
                message = f"{e.total} step{'s' if e.total != 1 else ''} to run"
            elif e.kind == "step_started":
                self.running[e.step_id] = (e.tool, time.monotonic())
                message = f"step '{e.step_id}' ({e.tool}) started"
            elif e.kind in ("step_finished", "step_cached", "step_failed", "step_skipped"):
                self.running.pop(e.step_id, None)
                self.done += 1
                word = {"step_finished": "finished", "step_cached": "came from the cache", "step_failed": "failed",
                        "step_skipped": "was skipped"}[e.kind]
                took = f" in {e.seconds:.1f} s" if e.seconds is not None and e.kind == "step_finished" else ""
                message = f"step '{e.step_id}' ({e.tool}) {word}{took}" + (f": {e.error}" if e.error else "")
            else:
                return
            value = self._value()
        self._send_from_thread(value, message)

    def note(self, message: str) -> None:
        """From the worker thread: a notification of something other than a step (planning)."""
        if self.token is not None:
            with self.lock:
                value = self._value()
            self._send_from_thread(value, message)

    def _value(self) -> float:
        started = min((t for _, t in self.running.values()), default=None)
        ran = time.monotonic() - started if started is not None else 0.0
        value = max(self.done + ran / (ran + 10.0) * 0.9, self.last + 1e-6)  # rises, stays below the next step
        self.last = value
        return value

    def _send_from_thread(self, value: float, message: str) -> None:
        import anyio.from_thread

        try:
            anyio.from_thread.run(self.send, value, message)
        except Exception:  # a client that left: the run goes on without it
            pass

    async def send(self, value: float, message: str) -> None:
        await self.session.send_progress_notification(self.token, value, float(self.total) if self.total else None,
                                                      message[:500])

    async def run(self, work) -> Any:
        """`work(cancel)` in a worker thread, with the heartbeat beside it; a cancelled call sets `cancel`."""
        import anyio

        cancel = threading.Event()
        outcome: dict[str, Any] = {}

        async def heartbeat() -> None:
            while self.token is not None:
                await anyio.sleep(self.heartbeat_s)
                with self.lock:
                    if not self.running:
                        continue
                    step, (tool, started) = next(iter(self.running.items()))
                    value = self._value()
                try:
                    await self.send(value, f"step '{step}' ({tool}) running for {time.monotonic() - started:.0f} s")
                except Exception:
                    return

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(heartbeat)
                outcome["value"] = await anyio.to_thread.run_sync(lambda: work(cancel), abandon_on_cancel=True)
                tg.cancel_scope.cancel()
        except BaseException as e:
            cancel.set()  # a cancelled request (or a failure): the run stops at its next step boundary
            cause = e
            while getattr(cause, "exceptions", None):
                cause = cause.exceptions[0]
            raise cause if isinstance(cause, Exception) else e  # a cancellation stays as it is
        return outcome["value"]


def _error(message: str) -> Any:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], isError=True)


def _check_arguments(tool: str, arguments: dict, schema: dict) -> None:
    import jsonschema

    problem = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(arguments))
    if problem is not None:
        where = "argument '" + ".".join(map(str, problem.absolute_path)) + "'" if problem.absolute_path else "arguments"
        raise InputError(f"{tool}: {where}: {problem.message}"[:500])


def _marked(schema: dict) -> dict:
    """The tool's schema, each media field saying how a file is given."""
    for prop in (schema.get("properties") or {}).values():
        target = prop.get("items", prop) if isinstance(prop, dict) else {}
        if isinstance(target, dict) and "x-media" in target:
            prop["description"] = (prop.get("description") or target.get("description", "a file")) + URI_NOTE
    return schema


def _uri_to_path(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("file://"):
        return unquote(urlparse(value).path)
    if isinstance(value, list):
        return [_uri_to_path(v) for v in value]
    return value


def _literal(value: Any, is_path: bool, base: Path) -> Any:
    """An argument as a plan literal, never a reference: a file named '$x.wav' is made absolute, any
    other leading '$' doubled (the plan's literal dollar)."""
    if isinstance(value, list):
        return [_literal(v, is_path, base) for v in value]
    if isinstance(value, dict):
        return {k: _literal(v, is_path, base) for k, v in value.items()}
    if is_path:
        value = _uri_to_path(value)
    if isinstance(value, str) and value.startswith("$"):
        return str(base / value) if is_path else "$" + value
    return value


def _mime(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def serve_mcp(registry: Registry, *, http: bool = False, host: str = "127.0.0.1", port: int = 8765,
              token: str | None = None, **options: Any) -> None:
    """Serve until stopped: over stdio, or streamable HTTP at http://HOST:PORT/mcp."""
    import anyio

    from .security import is_loopback

    mcp_server = CadenzaMCP(registry, **options)
    if not http:
        anyio.run(mcp_server.serve_stdio)
        return
    import uvicorn

    token = token or os.environ.get("CADENZA_TOKEN") or None
    check_binding(host, token)
    uvicorn.run(mcp_server.http_app(token, loopback=is_loopback(host)), host=host, port=port,
                log_level=os.environ.get("CADENZA_SERVE_LOG", "warning"))


__all__ = ["CadenzaMCP", "serve_mcp"]
