"""The HTTP API's routes: each reads the request, calls the run store or the engine, and answers.

Every error is JSON, `{"error": "one line naming what is at fault"}`, with its status: 400 a
malformed body, 401 no or a wrong token, 404 an unknown run, upload or output, 409 a run that
cannot be cancelled or resumed now, 413 too large, 415 not a media file, 416 a byte range past a
file's end, 422 a request that does not validate (a workflow, an input, a plan), 429 a full queue
or too many wrong tokens from one address (both with Retry-After).
The web page (web.py) is served at `/` on these same routes.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import re
from collections.abc import AsyncIterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..engine.plan import Plan
from ..engine.validate import check_plan
from ..engine.workflow import load_workflow, parse_workflow
from ..engine.workflow_tool import WorkflowTool
from ..errors import CadenzaError, InputError, MediaError, one_line
from ..media import open_nofollow
from ..tools.registry import Registry, default_registry
from .events import EventLog
from .runs import RunStore
from .security import ApiError, LoginLimiter, TokenGuard
from .uploads import MAX_FIELD_BYTES, read_form
from .web import add_web

DEFAULT_MAX_UPLOAD_BYTES = 200 << 20
SSE_POLL_S = 0.1
_RESERVED_FIELDS = {"request", "workflow", "workflow_file", "inputs"}


class RunBody(BaseModel):
    """A run to start: `request` (planned by the agent, with `files`: name -> upload id), or a workflow
    by `workflow` (a built-in or user workflow's name) or `workflow_yaml` (its text), with `inputs`
    (a media input is an upload id, or a list of them)."""

    model_config = ConfigDict(extra="forbid")
    request: str | None = None
    files: dict[str, str] = {}
    workflow: str | None = None
    workflow_yaml: str | None = None
    inputs: dict[str, Any] = {}


class RerunBody(BaseModel):
    """The values that change in a run again (a dubbing review's `edits`); its files stay as they were."""

    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any] = {}


class ValidateBody(BaseModel):
    """What to check without running: a `plan` (JSON), or a workflow by `workflow` name or `workflow_yaml`."""

    model_config = ConfigDict(extra="forbid")
    plan: dict[str, Any] | None = None
    workflow: str | None = None
    workflow_yaml: str | None = None


def create_app(data_dir: str | os.PathLike, *, registry: Registry | None = None, llm: Any = None,
               token: str | None = None, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, workers: int = 2,
               max_queued: int = 16, cache: bool = True, cors_origins: list[str] = ()) -> FastAPI:
    """The API app over the data folder. `llm` plans requests (a spec string or a chat model object)."""
    data = Path(data_dir).expanduser().resolve()
    data.mkdir(parents=True, exist_ok=True)
    registry = registry or default_registry()
    store = RunStore(data, registry, llm=llm, workers=workers, max_queued=max_queued, cache=cache)
    tmp_dir = data / "tmp"
    for leftover in tmp_dir.glob("*.part"):  # a body cut short when the server stopped
        leftover.unlink(missing_ok=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await asyncio.to_thread(store.close)

    # FastAPIOffline: FastAPI whose /docs (Swagger UI) and /redoc pages load their scripts from files in
    # the package, not from a CDN, so they work on a machine with no internet
    app = FastAPIOffline(title="Cadenza", version=_version(), lifespan=lifespan,
                  description="Plan, check and run multi-step media jobs: submit runs, follow them, fetch their outputs.")
    app.state.store = store
    if cors_origins:  # off unless asked for: a page elsewhere cannot call this server
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["*"],
                           allow_headers=["*"])
    limiter = app.state.login_limiter = LoginLimiter()  # wrong tokens per address, at /login and in the header
    if token:
        app.add_middleware(TokenGuard, token=token, limiter=limiter)
    _error_handlers(app)
    add_web(app, token, limiter)

    # -- tools and validation ------------------------------------------------------------------
    # the tools' documents, made once while the registry holds the same tools: pydantic builds each
    # JSON Schema anew, ~35 ms for all of them a request (benchmarks/serve.py: 28 requests/s before)
    tool_docs: list[Any] = [None]  # (tools, their documents, the JSON body): replaced whole, so a thread reads one or the other

    def docs_of_tools() -> tuple[tuple, list[dict[str, Any]], bytes]:
        tools, entry = tuple(registry), tool_docs[0]
        if entry is None or len(tools) != len(entry[0]) or any(a is not b for a, b in zip(tools, entry[0])):
            docs = jsonable_encoder([{"name": t.name, "description": t.description, "signature": t.signature_line(),
                                      "input_schema": t.input_schema(), "outputs": t.outputs,
                                      "output_schema": t.output_schema()} for t in tools])
            body = json.dumps({"tools": docs}, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
            entry = tool_docs[0] = (tools, docs, body)
        return entry

    @app.get("/tools", summary="every tool with its JSON Schema (?backends=true: and whether each backend can run here)")
    def list_tools(backends: bool = False):
        tools, docs, body = docs_of_tools()
        if not backends:
            return Response(body, media_type="application/json")
        # what `cadenza doctor` says; asked for alone, as it probes every backend (never kept: it can change)
        return {"tools": [{**d, "backends": [{"name": b.name, "device": b.device,
                                              "available": (why := b.unavailable_reason()) is None, "why_not": why}
                                             for b in t.backends]}
                          for d, t in zip(docs, tools)]}

    @app.get("/tools/{name}", summary="one tool: inputs, outputs, backends and whether they can run here")
    def show_tool(name: str):
        if name not in registry:
            raise ApiError(404, f"no tool '{name[:60]}'")
        return json.loads(json.dumps(registry.get(name).spec(), default=str))

    @app.get("/workflows", summary="the workflows a run may name (built-in and the user's)")
    def list_workflows():
        return {"workflows": [{"name": t.name, "description": t.description,
                               "inputs": _input_specs(t.sub_plan),
                               "outputs": t.outputs} for t in registry if isinstance(t, WorkflowTool)]}

    @app.post("/validate", summary="check a plan or workflow without running it",
              responses={422: {"description": "it does not validate: `error` and every `problems`"}})
    async def validate(request: Request):
        body = await _json_body(request, ValidateBody)
        given = [k for k in ("plan", "workflow", "workflow_yaml") if getattr(body, k) is not None]
        if len(given) != 1:
            raise ApiError(422, "give one of 'plan', 'workflow' or 'workflow_yaml'")
        if body.plan is not None:
            try:
                plan = Plan.model_validate(body.plan)
            except ValidationError as e:
                err = e.errors()[0]
                raise ApiError(422, f"plan: {'.'.join(map(str, err['loc']))}: {err['msg'].lower()}") from None
        elif body.workflow is not None:
            plan = load_workflow(store.workflow_path(body.workflow))
        else:
            plan = parse_workflow(body.workflow_yaml, "the workflow")
        plan = check_plan(plan, registry)
        return {"valid": True, "steps": len(plan.steps), "inputs": {n: s.type for n, s in plan.inputs.items()},
                "input_specs": _input_specs(plan), "outputs": list(plan.outputs)}

    # -- uploads and runs -----------------------------------------------------------------------
    @app.post("/uploads", status_code=201, summary="upload one media file (multipart field 'file')",
              openapi_extra=_multipart_doc({"file": {"type": "string", "format": "binary"}}))
    async def upload(request: Request):
        form = await read_form(request, tmp_dir, max_upload_bytes)
        files = form.files.get("file", [])
        if len(files) != 1 or len(form.files) != 1 or form.fields:
            form.discard()
            raise ApiError(400, "send exactly one multipart file field named 'file'")
        return await asyncio.to_thread(store.uploads.add, files[0])

    @app.post("/runs", status_code=202, summary="start a run: a request for the agent, or a workflow with its inputs",
              openapi_extra={"requestBody": {"content": {
                  "application/json": {"schema": RunBody.model_json_schema()},
                  "multipart/form-data": {"schema": {"type": "object", "properties": {
                      "request": {"type": "string"}, "workflow": {"type": "string"},
                      "workflow_file": {"type": "string", "format": "binary"},
                      "inputs": {"type": "string", "description": "a JSON object of input values"}},
                      "additionalProperties": {"type": "string", "description": "an input: a file, or its value"}}}}}})
    async def submit(request: Request):
        if request.headers.get("content-type", "").startswith("multipart/"):
            body, typed_as_text = await _form_run(request)
        else:
            body, typed_as_text = await _json_body(request, RunBody), set()
        if body.request is not None:
            if body.workflow is not None or body.workflow_yaml is not None or body.inputs:
                raise ApiError(422, "a run is a 'request' (with 'files') or a workflow (with 'inputs'), not both")
            run = await asyncio.to_thread(store.submit_request, body.request, body.files)
        else:
            if body.files:
                raise ApiError(422, "'files' goes with a 'request'; a workflow takes its files in 'inputs'")
            run = await asyncio.to_thread(store.submit_workflow, name=body.workflow, yaml_text=body.workflow_yaml,
                                          inputs=body.inputs, typed_as_text=typed_as_text)
        return _run_doc(run)

    async def _form_run(request: Request) -> tuple[RunBody, set[str]]:
        """A multipart run: reserved fields, a workflow file, and every other field an input (a file
        is uploaded and given by its id; text is read by the input's declared type)."""
        form = await read_form(request, tmp_dir, max_upload_bytes)
        try:
            one = {k: v[-1] for k, v in form.fields.items()}
            doc: dict[str, Any] = {k: one[k] for k in ("request", "workflow") if k in one}
            inputs: dict[str, Any] = {}
            if "inputs" in one:
                try:
                    inputs = json.loads(one["inputs"])
                except json.JSONDecodeError as e:
                    raise ApiError(400, f"field 'inputs': malformed JSON ({e.msg})") from None
                if not isinstance(inputs, dict):
                    raise ApiError(422, "field 'inputs': expected a JSON object")
            text = {k: v if len(v) > 1 else v[0] for k, v in form.fields.items() if k not in _RESERVED_FIELDS}
            inputs.update(text)
            if "workflow_file" in form.files:  # read here, removed with the rest below
                doc["workflow_yaml"] = _read_text_file(form.files["workflow_file"][-1])
            ids: dict[str, Any] = {}
            for name, paths in form.files.items():
                if name != "workflow_file":
                    metas = [await asyncio.to_thread(store.uploads.add, p) for p in paths]  # each moved or removed
                    ids[name] = [m["id"] for m in metas] if len(metas) > 1 else metas[0]["id"]
            if "request" in doc:
                if text:
                    raise ApiError(422, f"field '{next(iter(text))}': a request takes files, not values")
                doc["files"] = ids
            else:
                doc["inputs"] = {**inputs, **ids}
            try:
                return RunBody.model_validate(doc), set(text)
            except ValidationError as e:
                raise ApiError(422, _validation_line(e.errors())) from None
        finally:
            form.discard()

    @app.get("/runs", summary="the runs, newest first: all of them, or a page (limit, offset); total counts them all")
    def list_runs(limit: int | None = Query(None, ge=1, le=10_000), offset: int = Query(0, ge=0)):
        runs = store.list()
        page = runs[offset:offset + limit] if limit is not None else runs[offset:]
        return {"runs": page, "total": len(runs), "offset": offset}

    @app.get("/runs/{run_id}", summary="one run: status, inputs, outputs (with their download links)")
    def show_run(run_id: str):
        return _run_doc(store.get(run_id))

    @app.get("/runs/{run_id}/run.json", summary="the run's full record, as the engine writes it")
    def run_record(run_id: str):
        run = store.get(run_id)
        data = _read_own_file(store.out_dir(run) / "run.json", f"run '{run.id}' has no run.json yet")
        return Response(data, media_type="application/json")

    @app.post("/runs/{run_id}/cancel", status_code=202, summary="stop a queued or running run")
    def cancel(run_id: str):
        return _run_doc(store.cancel(run_id))

    @app.post("/runs/{run_id}/resume", status_code=202,
              summary="run an interrupted, failed or cancelled run again; its finished steps come from the cache")
    def resume(run_id: str):
        return _run_doc(store.resume(run_id))

    @app.get("/runs/{run_id}/outputs/{name}", summary="download one output (?index=N for one of a list)")
    def download(request: Request, run_id: str, name: str, index: int | None = None):
        run = store.get(run_id)
        if name not in run.outputs:
            have = ", ".join(run.outputs) or "none yet"
            raise ApiError(404, f"run '{run.id}' has no output '{name[:60]}' (it has: {have})")
        value = run.outputs[name]
        if isinstance(value, list) and _is_file(value[0] if value else None):
            if index is None or not 0 <= index < len(value):
                raise ApiError(404, f"output '{name}' is a list of {len(value)} files: add ?index=0..{len(value) - 1}")
            value = value[index]
        if not _is_file(value):
            return {"name": name, "value": value}
        file_name = Path(value["path"]).name  # only a name: the file is looked for in the run's outputs alone
        return _file_response(request, store.out_dir(run) / file_name,
                              f"output '{name}' of run '{run.id}' is no longer there")

    @app.get("/runs/{run_id}/inputs/{name}", summary="a run's own copy of an input file (?index=N in a list)")
    def input_file(request: Request, run_id: str, name: str, index: int | None = None):
        run = store.get(run_id)
        value = run.inputs.get(name)
        if isinstance(value, list):
            value = value[index] if index is not None and 0 <= index < len(value) else None
        if not (isinstance(value, dict) and set(value) == {"file"}):
            raise ApiError(404, f"run '{run.id}' has no input file '{name[:60]}'" + ("" if index is None else f" [{index}]"))
        return _file_response(request, store.folder(run) / "inputs" / Path(value["file"]).name,
                              f"input '{name}' of run '{run.id}' is no longer there")

    @app.post("/runs/{run_id}/rerun", status_code=202,
              summary="run a workflow run's workflow again with the same files, some values changed ({\"inputs\": {...}})")
    async def rerun(request: Request, run_id: str):
        body = await _json_body(request, RerunBody)
        return _run_doc(await asyncio.to_thread(store.rerun, run_id, body.inputs))

    def run_log(run_id: str) -> EventLog:
        return store.events(run_id)

    @app.get("/runs/{run_id}/events", response_class=EventSourceResponse,
             summary="progress as server-sent events: every event so far, then each as it happens, then the end")
    async def events(request: Request, log: EventLog = Depends(run_log),
                     last_event_id: str | None = Header(None)) -> AsyncIterable[ServerSentEvent]:
        position = int(last_event_id) + 1 if last_event_id and last_event_id.isdigit() else 0
        while True:
            batch, ended = log.since(position)
            for e in batch:
                yield ServerSentEvent(data=e, event=e["kind"], id=str(e["seq"]))
            position += len(batch)
            if ended or await request.is_disconnected():
                return
            await asyncio.sleep(SSE_POLL_S)

    def _run_doc(run) -> dict[str, Any]:
        doc = {**run.summary(), "inputs": run.inputs, "answer": run.answer, "attempts": run.attempts,
               "outputs": {}, "links": {"self": f"/runs/{run.id}", "events": f"/runs/{run.id}/events",
                                        "record": f"/runs/{run.id}/run.json"}}
        for name, value in run.outputs.items():
            if _is_file(value):
                doc["outputs"][name] = {**_public(value), "url": f"/runs/{run.id}/outputs/{name}"}
            elif isinstance(value, list) and value and all(_is_file(v) for v in value):
                doc["outputs"][name] = [{**_public(v), "url": f"/runs/{run.id}/outputs/{name}?index={i}"}
                                        for i, v in enumerate(value)]
            else:
                doc["outputs"][name] = {"value": value}
        return doc

    return app


# -- helpers ------------------------------------------------------------------------------------
def _input_specs(plan: Plan) -> dict[str, Any]:
    return {n: {"type": s.type, "required": s.is_required, "default": s.default, "description": s.description}
            for n, s in plan.inputs.items()}


def _is_file(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("path"), str) and "kind" in value


def _public(value: dict[str, Any]) -> dict[str, Any]:
    """An output file as a client sees it: its name and properties, never the server's path."""
    return {**{k: v for k, v in value.items() if k != "path"}, "name": Path(value["path"]).name}


def _open_own(path: Path, missing: str) -> int:
    """A descriptor on a file of the data folder, no symlink followed on the way (one swapped in is refused)."""
    try:
        return open_nofollow(path, path.name)
    except (MediaError, OSError):
        raise ApiError(404, missing) from None


def _file_response(request: Request, path: Path, missing: str) -> Response:
    """The file, whole or the one byte range asked for (players seek with Range requests)."""
    fd = _open_own(path, missing)
    size = os.fstat(fd).st_size
    start, end, status = 0, size - 1, 200
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", request.headers.get("range", "").strip())
    if match and size and (match[1] or match[2]):
        if match[1]:
            start, end = int(match[1]), min(int(match[2]) if match[2] else size - 1, size - 1)
        else:  # the last N bytes
            start = max(0, size - int(match[2]))
        if start > end:
            os.close(fd)
            raise ApiError(416, f"range {match[0]} is outside the file's {size} bytes", {"Content-Range": f"bytes */{size}"})
        status = 206

    def chunks():
        with os.fdopen(fd, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0 and (block := f.read(min(1 << 16, left))):
                left -= len(block)
                yield block
    headers = {"Content-Length": str(end - start + 1), "Accept-Ranges": "bytes",
               "Content-Disposition": f'attachment; filename="{path.name}"'}
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(chunks(), status_code=status, headers=headers,
                             media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")


def _read_own_file(path: Path, missing: str) -> bytes:
    with os.fdopen(_open_own(path, missing), "rb") as f:
        return f.read()


def _read_text_file(path: Path) -> str:
    if path.stat().st_size > MAX_FIELD_BYTES:
        raise ApiError(413, f"workflow file is over {MAX_FIELD_BYTES:,} bytes")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ApiError(415, "workflow file is not UTF-8 text (a YAML workflow)") from None


async def _json_body(request: Request, model: type[BaseModel]) -> Any:
    ctype = request.headers.get("content-type", "")
    if ctype and not ctype.startswith("application/json"):
        raise ApiError(415, f"expected application/json or multipart/form-data, not {ctype.split(';')[0][:60]}")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FIELD_BYTES:
            raise ApiError(413, f"JSON body is over {MAX_FIELD_BYTES:,} bytes")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, f"malformed JSON body: {getattr(e, 'msg', None) or one_line(e)}") from None
    if not isinstance(data, dict):
        raise ApiError(422, "expected a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ApiError(422, _validation_line(e.errors())) from None


def _validation_line(errors: list[dict]) -> str:
    err = errors[0]
    where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {err.get('msg', 'invalid').lower()}{more}"


def _multipart_doc(properties: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": properties, "required": list(properties)}}}}}


def _error_handlers(app: FastAPI) -> None:
    def answer(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def api_error(request, e: ApiError):
        return answer(e.status, e.message, e.headers)

    @app.exception_handler(InputError)
    async def input_error(request, e: InputError):  # a workflow, plan or input that does not validate
        body = {"error": one_line(e)}
        if getattr(e, "problems", None):
            body["problems"] = e.problems
        return JSONResponse(body, status_code=422)

    @app.exception_handler(CadenzaError)
    async def cadenza_error(request, e: CadenzaError):
        return answer(500, one_line(e))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, e: RequestValidationError):
        errors = list(e.errors())
        if any(err.get("type") == "json_invalid" for err in errors):
            return answer(400, f"malformed JSON body: {errors[0].get('msg', '')}")
        return answer(422, _validation_line(errors))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, e: StarletteHTTPException):
        if e.status_code == 404:
            return answer(404, f"no such endpoint: {request.method} {request.url.path[:100]}")
        if e.status_code == 405:
            return answer(405, f"{request.method} is not allowed on {request.url.path[:100]}")
        return answer(e.status_code, str(e.detail), getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(request, e: Exception):  # a bug: one line, and the server goes on
        return answer(500, f"internal error: {type(e).__name__}: {one_line(e)}")

    @app.exception_handler(ClientDisconnect)
    async def gone(request, e: ClientDisconnect):  # no one is left to read it; the upload was removed
        return answer(400, "the client disconnected before the request was read")


def _version() -> str:
    from .. import __version__

    return __version__
