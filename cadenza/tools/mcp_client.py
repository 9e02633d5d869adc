"""Tools of external MCP servers as Cadenza tools, so the planner can use them.

The config file names the servers, one table each:

    [mcp_servers.weather]            # started as a subprocess, spoken to over stdio
    command = "python"
    args = ["weather_server.py"]
    env = { API_KEY = "..." }        # added to the SDK's small default environment
    [mcp_servers.remote]             # a running server, over streamable HTTP
    url = "http://127.0.0.1:9000/mcp"
    headers = { Authorization = "Bearer ..." }

Each server is one plugin (`mcp:NAME`) of the registry: its tools are listed once when the
registry loads, typed from their JSON Schemas (`annotation_for`), and registered as
`NAME_TOOL` (`prefix` in the table changes the `NAME_` part). A server that cannot be started,
listed or mapped is skipped with a warning, as a broken plugin is. Each call opens its own
session (a stdio server is started for the call), so a tool runs from any step's thread.

A string argument that names a media file (an `x-media` mark, as Cadenza's own MCP server writes,
a `contentMediaType`, or a name and description that say "path" and "audio", "image" or "video")
becomes an `audio`/`image`/`video` input: the plan wires media into it, the executor checks the
file against the run's allowed roots, and the server is sent its path. Outputs come from the
tool's `outputSchema` (`structuredContent`; a media output is a path or `file://` URI the server
wrote); a tool without one gives its text.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import inspect
import json
import keyword
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional, Union, get_args
from urllib.parse import unquote, urlparse

from annotated_types import Interval
from pydantic import create_model

from ..errors import CancelledError, InputError, ToolError, one_line
from ..hookspecs import hookimpl
from ..media import MEDIA_TYPES, Media
from ..paths import config_path, mcp_servers
from .base import Backend, FunctionTool, Tool, ToolContext, _camel
from .types import type_tag

PARENTS_ENV = "CADENZA_MCP_PARENTS"  # servers that started this process: never started again below it
STARTUP_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 3600.0
MEDIA_CLASSES = {"audio": MEDIA_TYPES["audio"], "image": MEDIA_TYPES["image"], "video": MEDIA_TYPES["video"]}
_KIND_WORDS = {"audio": "audio", "sound": "audio", "speech": "audio", "wav": "audio", "mp3": "audio",
               "image": "image", "picture": "image", "photo": "image", "png": "image", "jpg": "image",
               "jpeg": "image", "video": "video", "movie": "video", "mp4": "video"}
_PATH_WORDS = {"path", "file", "filename", "filepath"}


def mcp_backend(server: str) -> Backend:
    return Backend("mcp", f"the MCP server '{server}'", requires=("mcp",), extra="mcp")


# -- the config file ------------------------------------------------------------------------
def server_plugins() -> list[tuple[str, str, Callable[[], Any]]]:
    """(plugin name, where it comes from, loader) for each server in the config file; the registry
    loads each as a plugin, so a failure is recorded and skipped like a broken plugin's."""
    try:
        servers = mcp_servers()
    except InputError as e:
        def broken(e: InputError = e) -> Any:
            raise e
        return [("mcp_servers", str(config_path()), broken)]
    return [(f"mcp:{name}", _where(spec), lambda n=name, s=spec: ServerPlugin(n, s)) for name, spec in servers.items()]


def _where(spec: dict) -> str:
    if "url" in spec:
        return str(spec["url"])[:200]
    return " ".join([str(spec.get("command", "?")), *map(str, spec.get("args", []) or [])])[:200]


def checked_spec(name: str, spec: dict) -> dict:
    """A server's table, checked: `command` (with `args`, `env`, `cwd`) or `url` (with `headers`)."""
    where = f"MCP server '{name}' in {config_path()}"
    if ("command" in spec) == ("url" in spec):
        raise InputError(f"{where}: give either command or url")
    known = {"command", "args", "env", "cwd", "url", "headers", "prefix", "startup_timeout", "call_timeout"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise InputError(f"{where}: unknown setting '{unknown[0]}' (known: {', '.join(sorted(known))})")
    for key, kind in (("command", str), ("url", str), ("cwd", str), ("prefix", str), ("args", list),
                      ("env", dict), ("headers", dict), ("startup_timeout", (int, float)), ("call_timeout", (int, float))):
        if key in spec and not isinstance(spec[key], kind):
            raise InputError(f"{where}: {key} has the wrong type ({type(spec[key]).__name__})")
    if any(not isinstance(v, str) for v in [*spec.get("args", []), *spec.get("env", {}).values(),
                                            *spec.get("headers", {}).values()]):
        raise InputError(f"{where}: args, env and headers hold text only")
    return spec


# -- one session ------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def open_session(name: str, spec: dict):
    """An initialized `ClientSession` with the server (started for it when it is a command)."""
    from mcp import ClientSession

    if "url" in spec:
        import httpx
        from mcp.client.streamable_http import streamable_http_client

        async with httpx.AsyncClient(headers=spec.get("headers") or {}, timeout=httpx.Timeout(30, read=300)) as http, \
                streamable_http_client(spec["url"], http_client=http) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session
        return
    from mcp.client.stdio import StdioServerParameters, stdio_client

    parents = [p for p in os.environ.get(PARENTS_ENV, "").split(",") if p]
    env = {**(spec.get("env") or {}), PARENTS_ENV: ",".join(parents + [name])}
    cwd = spec.get("cwd")
    params = StdioServerParameters(command=spec["command"], args=spec.get("args") or [], env=env,
                                   cwd=str(config_path().parent / Path(cwd).expanduser()) if cwd else None)
    async with stdio_client(params, errlog=_errlog()) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


def _errlog():
    """Where a server's stderr goes: ours, when it is a real file (a test's captured stream is not)."""
    try:
        sys.stderr.fileno()
        return sys.stderr
    except (AttributeError, OSError, ValueError):
        return sys.__stderr__


def run_async(fn: Callable[[], Any]) -> Any:
    """Run an async function to its end from sync code, in a thread of its own when this thread
    already runs an event loop (a registry loaded inside a server)."""
    import anyio

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop here: the usual case (a command, an executor's step thread)
        return anyio.run(fn)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, fn).result()


def root_cause(e: BaseException) -> BaseException:
    """The first real error inside task-group wrappers."""
    while getattr(e, "exceptions", None):  # an ExceptionGroup
        e = e.exceptions[0]
    return e


# -- loading a server's tools -------------------------------------------------------------------
class ServerPlugin:
    """A configured server as a registry plugin: connects once, lists and maps its tools."""

    def __init__(self, name: str, spec: dict):
        spec = checked_spec(name, spec)
        if name in os.environ.get(PARENTS_ENV, "").split(","):
            raise InputError(f"MCP server '{name}' started this process; it is not started again inside itself")
        try:
            import mcp  # noqa: F401
        except ImportError:
            raise InputError(f"MCP server '{name}' needs the 'mcp' extra: pip install 'cadenza[mcp]'") from None
        self.tools = [mcp_tool(name, spec, t) for t in list_remote_tools(name, spec)]

    @hookimpl
    def register_tools(self, register):
        for t in self.tools:
            register(t)


def list_remote_tools(name: str, spec: dict) -> list:
    import anyio

    async def main():
        with anyio.fail_after(float(spec.get("startup_timeout", STARTUP_TIMEOUT_S))):
            async with open_session(name, spec) as session:
                tools, cursor = [], None
                while True:
                    page = await session.list_tools(cursor=cursor) if cursor else await session.list_tools()
                    tools += page.tools
                    cursor = page.nextCursor
                    if not cursor:
                        return tools

    try:
        return run_async(main)
    except TimeoutError:
        raise ToolError(f"MCP server '{name}' did not answer within "
                        f"{spec.get('startup_timeout', STARTUP_TIMEOUT_S):g} s") from None
    except Exception as e:
        cause = root_cause(e)
        raise ToolError(f"MCP server '{name}' could not be started or listed: "
                        f"{type(cause).__name__}: {one_line(cause)}") from None


# -- JSON Schema to Cadenza types ------------------------------------------------------------
def media_kind(name: str, schema: dict) -> str | None:
    """'audio', 'image' or 'video' for a string property that names such a file, else None."""
    mark = schema.get("x-media")
    if mark in MEDIA_CLASSES:
        return mark
    mime = str(schema.get("contentMediaType", "")).split("/")[0]
    if mime in MEDIA_CLASSES:
        return mime
    text = f"{name.lower().replace('_', ' ')} {str(schema.get('description', '')).lower()}"
    words = {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in re.findall(r"[a-z0-9]+", text)}  # plurals too
    kinds = {_KIND_WORDS[w] for w in words if w in _KIND_WORDS}
    if len(kinds) == 1 and (words & _PATH_WORDS or name.lower() in MEDIA_CLASSES):
        return kinds.pop()
    return None


def annotation_for(schema: Any, name: str, defs: dict, context: dict | None = None) -> Any:
    """The Python annotation of a JSON Schema (a media path becomes Audio, Image or Video)."""
    if not isinstance(schema, dict):
        return Any
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in defs:
        return annotation_for({**defs[ref.rsplit("/", 1)[-1]], **{k: v for k, v in schema.items() if k != "$ref"}},
                              name, defs, context)
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list):
        kept = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
        inner = [annotation_for({**o, "description": schema.get("description", "")} if isinstance(o, dict) else o,
                                name, defs, context) for o in kept]
        found = inner[0] if len(inner) == 1 else Union[tuple(inner)] if inner else Any
        return Optional[found] if len(kept) < len(options) else found
    types = schema.get("type")
    if isinstance(types, list):
        kept = [t for t in types if t != "null"]
        found = annotation_for({**schema, "type": kept[0]}, name, defs, context) if len(kept) == 1 else Any
        return Optional[found] if len(kept) < len(types) else found
    if isinstance(schema.get("enum"), list) and schema["enum"] and \
            all(isinstance(v, (str, int, float, bool)) for v in schema["enum"]):
        return Literal[tuple(schema["enum"])]
    if types == "string":
        kind = media_kind(name, {**(context or {}), **schema})
        return MEDIA_CLASSES[kind] if kind else str
    if types in ("integer", "number"):
        base = int if types == "integer" else float
        bounds = {k: schema[j] for k, j in (("ge", "minimum"), ("le", "maximum"), ("gt", "exclusiveMinimum"),
                                              ("lt", "exclusiveMaximum")) if isinstance(schema.get(j), (int, float))}
        return Annotated[base, Interval(**bounds)] if bounds else base
    if types == "boolean":
        return bool
    if types == "array":
        return list[annotation_for(schema.get("items", {}), name, defs, context or schema)]  # type: ignore[misc]
    if types == "object":
        return dict
    return Any


def mcp_tool(server: str, spec: dict, remote: Any) -> Tool:
    """One remote tool as a Cadenza tool (`FunctionTool` over a generated signature)."""
    label = f"MCP tool '{remote.name}' of server '{server}'"
    schema = remote.inputSchema or {}
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    required = set(schema.get("required") or [])
    params, annotations = [], {}
    for pname, pschema in (schema.get("properties") or {}).items():
        if not pname.isidentifier() or keyword.iskeyword(pname) or pname == "cadenza_ctx":
            raise InputError(f"{label}: argument '{pname[:60]}' is not a name Cadenza can use")
        ann = annotation_for(pschema, pname, defs)
        default: Any = inspect.Parameter.empty
        if pname not in required:
            default = pschema.get("default") if isinstance(pschema, dict) else None
            if default is None:
                ann = Optional[ann]
        params.append(inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann))
        annotations[pname] = ann
    output_model = _output_model(server, remote, label)
    returns = output_model or str
    media_params = {p.name for p in params if _media_in(p.annotation)}

    def call(cadenza_ctx: ToolContext, **kwargs: Any) -> Any:
        args = {k: _to_wire(v) for k, v in kwargs.items() if v is not None or k in required}
        result = call_remote(server, spec, remote.name, args, cadenza_ctx)
        if result.isError:
            raise ToolError(f"{label}: {_text(result) or 'failed'}"[:2000])
        if output_model is None:
            return _text(result) if not result.structuredContent else json.dumps(result.structuredContent)
        return _outputs(output_model, result.structuredContent or {}, label)

    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("cadenza_ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=ToolContext), *params],
        return_annotation=returns)
    call.__annotations__ = {"cadenza_ctx": ToolContext, **annotations, "return": returns}
    call.__name__ = re.sub(r"\W", "_", remote.name)
    hints = remote.annotations
    fingerprint = json.dumps([remote.inputSchema, remote.outputSchema], sort_keys=True, default=str)
    t = FunctionTool(call, name=tool_name(server, spec, remote.name),
                     description=(remote.description or remote.title or remote.name).strip(),
                     backends=[mcp_backend(server)], version="mcp-" + hashlib.sha256(fingerprint.encode()).hexdigest()[:12],
                     # a remote tool may change the world or answer differently: cached only when it says it is neither
                     cacheable=bool(hints and hints.readOnlyHint and hints.idempotentHint))
    for pname, p in t.params.items():
        desc = (schema.get("properties") or {}).get(pname, {})
        p.description = str(desc.get("description", "")) if isinstance(desc, dict) else ""
    t.mcp_server, t.mcp_name, t.media_params = server, remote.name, media_params  # type: ignore[attr-defined]
    return t


def tool_name(server: str, spec: dict, remote_name: str) -> str:
    prefix = spec.get("prefix", f"{server}_")
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{prefix}{remote_name}")


def _output_model(server: str, remote: Any, label: str):
    out = remote.outputSchema
    if not isinstance(out, dict) or not isinstance(out.get("properties"), dict) or not out["properties"]:
        return None
    defs = {**(out.get("definitions") or {}), **(out.get("$defs") or {})}
    required = set(out.get("required") or [])
    fields = {}
    for fname, fschema in out["properties"].items():
        if not fname.isidentifier() or fname.startswith("_"):
            raise InputError(f"{label}: output '{fname[:60]}' is not a name Cadenza can use")
        ann = annotation_for(fschema, fname, defs)
        fields[fname] = (ann, ...) if fname in required else (Optional[ann], None)
    return create_model(_camel(f"{server}_{remote.name}_output"), **fields)


def _media_in(ann: Any) -> bool:
    return any(isinstance(m, type) and issubclass(m, Media) for m in _flatten(ann))


def _flatten(ann: Any) -> list:
    return [ann, *[x for a in get_args(ann) for x in _flatten(a)]]


def _to_wire(value: Any) -> Any:
    """A value as the server gets it: a media file is its path."""
    if isinstance(value, Media):
        return str(value.path)
    if isinstance(value, list):
        return [_to_wire(v) for v in value]
    return value


def _text(result: Any) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text").strip()


def _outputs(model: Any, values: dict, label: str) -> Any:
    """The structured result as the tool's output model; a media output (a path or file:// URI) is probed."""
    out = {}
    for fname, field in model.model_fields.items():
        v = values.get(fname)
        tag = type_tag(field.annotation)
        kind = next((k for k in MEDIA_CLASSES if k in tag.split("|")), None)
        if kind and v is not None:
            items = v if isinstance(v, list) else [v]
            media = [MEDIA_CLASSES[kind].from_path(_path_of(x, label)) for x in items]
            v = media if isinstance(v, list) else media[0]
        out[fname] = v
    try:
        return model(**out)
    except Exception as e:
        raise ToolError(f"{label}: its result does not match its output schema: {one_line(e)}") from None


def _path_of(value: Any, label: str) -> str:
    if not isinstance(value, str) or not value:
        raise ToolError(f"{label}: a media output should be a path, got {type(value).__name__}")
    if value.startswith("file://"):
        return unquote(urlparse(value).path)
    return value


def call_remote(server: str, spec: dict, remote_name: str, args: dict, ctx: ToolContext) -> Any:
    """Call a tool in a session of its own; the step's cancel event ends the call (and the server
    started for it)."""
    import anyio

    outcome: dict[str, Any] = {}

    async def main():
        with anyio.fail_after(float(spec.get("call_timeout", CALL_TIMEOUT_S))):
            async with open_session(server, spec) as session, anyio.create_task_group() as tg:
                async def watch_cancel():
                    while not ctx.cancelled.is_set():
                        await anyio.sleep(0.1)
                    tg.cancel_scope.cancel()

                tg.start_soon(watch_cancel)
                outcome["result"] = await session.call_tool(remote_name, args)
                tg.cancel_scope.cancel()

    try:
        run_async(main)
    except TimeoutError:
        raise ToolError(f"MCP tool '{remote_name}' of server '{server}' did not finish within "
                        f"{spec.get('call_timeout', CALL_TIMEOUT_S):g} s") from None
    except Exception as e:
        cause = root_cause(e)
        if isinstance(cause, (ToolError, CancelledError)):
            raise cause from None
        raise ToolError(f"MCP tool '{remote_name}' of server '{server}': {type(cause).__name__}: {one_line(cause)}") from None
    if "result" not in outcome:
        raise CancelledError(f"step '{ctx.step_id}' cancelled")
    return outcome["result"]


__all__ = ["ServerPlugin", "annotation_for", "call_remote", "mcp_tool", "media_kind", "server_plugins"]
