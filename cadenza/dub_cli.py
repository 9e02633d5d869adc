"""`cadenza dub`: a thin front on the built-in `dub` workflow (cadenza/workflows/dub.yaml).

The flags become the workflow's inputs and the CLI runs it like `cadenza workflow run`; the dubbing
itself lives in the workflow and the tools it calls (cadenza/tools/dub/).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import CadenzaError, InputError, one_line, printable
from .workspace import Workspace


def dub_languages() -> dict[str, list[tuple[str, str, str]]]:
    """The languages a video can be dubbed into here: those Whisper and the translator know that
    some voice here speaks, each with its voices (backend, voice, note), best first."""
    from .tools.speech.languages import LANGUAGES, whisper_code
    from .tools.speech.speak import voices_for_language

    out = {}
    for c in LANGUAGES:
        voices = voices_for_language(c) if whisper_code(c) else []
        if voices:
            out[c] = voices
    return out


def dub_job(args) -> int | tuple:
    """The `dub` workflow's run for these flags: (plan, inputs, workspace, finish) for the CLI to
    execute like `workflow run`; or, for --list-languages, the exit code after printing the list."""
    from .engine.workflow import media_inputs, prepare_workflow
    from .tools.registry import default_registry
    from .tools.speech.languages import WHISPER_CODES, code, whisper_code

    languages = dub_languages()
    if args.list_languages:
        return _list_dub_languages(args, languages)
    if not args.video or not args.to:
        raise InputError("dub: give a VIDEO and --to LANG (or --list-languages)")
    to = code(args.to)
    if to not in languages:
        raise InputError(f"dub: cannot dub into {args.to!r} here; supported: {', '.join(languages) or 'none'}")
    source = ""
    if args.source:
        source = whisper_code(args.source) or ""
        if not source:
            raise InputError(f"dub: unknown spoken language {args.source!r}; supported: {', '.join(WHISPER_CODES)}")
    path = default_registry().get("dub").path  # the registered workflow tool's file
    plan = prepare_workflow(path)
    inputs: dict[str, Any] = {"video": args.video, "to": to, "from": source}
    if args.voice:
        inputs["voice"] = args.voice
    if args.lines:  # its text, not its name: the step cache then sees the edits
        try:
            inputs["edits"] = Path(args.lines).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"dub: cannot read --lines {args.lines}: {getattr(e, 'strerror', None) or e}") from None
    ws = Workspace.for_run(args.out, media_inputs(plan, inputs), roots=[Path(path).parent])

    def finish(result) -> dict[str, Any]:
        from .tools.dub.report import LineReport, write_dub_lines

        outputs = dict(result.outputs)
        lines = [LineReport.model_validate(x) for x in outputs.pop("lines", [])]
        outputs["dub_lines"] = write_dub_lines(ws.out_dir / "dub_lines.json", lines, to)
        return outputs

    return plan, inputs, ws, finish


def _list_dub_languages(args, languages: dict[str, list[tuple[str, str, str]]]) -> int:
    from .llm.chat import resolve_spec
    from .tools.speech.languages import name

    try:
        translator = resolve_spec()
    except CadenzaError as e:
        translator = f"(not configured: {one_line(e)})"
    if args.json:
        print(json.dumps({"translator": translator, "languages": {
            c: {"name": name(c), "voices": [{"backend": b, "voice": v, "note": n} for b, v, n in vs]}
            for c, vs in languages.items()}}))
        return 0
    print(printable(f"translator: {translator}"))
    for c, vs in languages.items():
        print(printable(f"{c}  {name(c)}: " + "; ".join(f"{b} '{v}' ({n})" for b, v, n in vs)))
    return 0
