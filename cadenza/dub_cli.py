"""`cadenza dub`: a thin front on the built-in `dub` and `dub_audio` workflows (cadenza/workflows/).

The flags become the workflow's inputs and the CLI runs it like `cadenza workflow run`; the dubbing
itself lives in the workflow and the tools it calls (cadenza/tools/dub/).
"""

from __future__ import annotations

import json
import os
import shutil
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
    """The dubbing workflow's run for these flags: (plan, inputs, workspace, finish) for the CLI to
    execute like `workflow run`; or, for --list-languages, the exit code after printing the list.
    A video runs the `dub` workflow, a sound file (by its extension) the `dub_audio` one."""
    from .engine.workflow import media_inputs, prepare_workflow
    from .media import guess_kind
    from .tools.registry import default_registry
    from .tools.speech.languages import WHISPER_CODES, code, whisper_code

    languages = dub_languages()
    if args.list_languages:
        return _list_dub_languages(args, languages)
    batch = getattr(args, "batch", None)
    if batch and (args.video or args.lines):
        raise InputError("dub: --batch TABLE takes its videos from the table; give no VIDEO and no --lines")
    if not batch and (not args.video or not args.to):
        raise InputError("dub: give a VIDEO (or a sound file) and --to LANG (or --list-languages, or --batch TABLE)")
    to = code(args.to) if args.to else ""
    if args.to and to not in languages:
        raise InputError(f"dub: cannot dub into {args.to!r} here; supported: {', '.join(languages) or 'none'}")
    source = ""
    if args.source:
        source = whisper_code(args.source) or ""
        if not source:
            raise InputError(f"dub: unknown spoken language {args.source!r}; supported: {', '.join(WHISPER_CODES)}")
    if batch:  # the flags are every row's defaults; the table's columns are the `dub` workflow's inputs
        path = default_registry().get("dub").path
        defaults = {k: v for k, v in {"to": to, "from": source, "background": args.background,
                                      "subtitles_mode": args.subtitles, "voice": args.voice}.items() if v}
        return prepare_workflow(path), defaults, [Path(path).parent], dub_finish
    is_audio = guess_kind(args.video) == "audio"
    if is_audio and args.subtitles == "burn":
        raise InputError(f"dub: --subtitles burn needs a video; {args.video} is a sound file")
    path = default_registry().get("dub_audio" if is_audio else "dub").path  # the registered workflow's file
    plan = prepare_workflow(path)
    inputs: dict[str, Any] = {"audio" if is_audio else "video": args.video, "to": to, "from": source,
                              "background": args.background}
    if not is_audio:
        inputs["subtitles_mode"] = args.subtitles
    if args.voice:
        inputs["voice"] = args.voice
    if args.lines:  # its text, not its name: the step cache then sees the edits
        try:
            inputs["edits"] = Path(args.lines).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"dub: cannot read --lines {args.lines}: {getattr(e, 'strerror', None) or e}") from None
    ws = Workspace.for_run(args.out, media_inputs(plan, inputs), roots=[Path(path).parent])
    return plan, inputs, ws, lambda result: dub_finish(result, ws)


def dub_finish(result, ws: Workspace) -> dict[str, Any]:
    """dub_lines.json beside the outputs: the speech step's report under the name a person looks
    for (also when a later step failed: the lines are reviewable once they are spoken). Returns the
    outputs to show. A batch calls it for every row, with the row's workspace."""
    outputs = dict(result.outputs)
    outputs.pop("lines", None)  # the same as the report, which a person reads as a file
    speech = result.steps.get("speech")
    report = (speech.outputs or {}).get("report") if speech and speech.status in ("succeeded", "cached") else None
    if report:
        target = ws.out_dir / "dub_lines.json"
        tmp = target.with_name(".dub_lines.json.part")
        shutil.copyfile(report["path"] if isinstance(report, dict) else report, tmp)
        os.replace(tmp, target)  # an edited dub_lines.json given as --lines is replaced whole or not at all
        outputs["dub_lines"] = target
        outputs.pop("report", None)
    return outputs


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
