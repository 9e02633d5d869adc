"""One exception root for everything Cadenza raises on purpose.

Two branches decide the CLI exit code: `InputError` (the user gave us something
wrong: exit 2) and everything else under `CadenzaError` (a failure while running:
exit 1). Messages are one line and name the thing at fault.

Every class pickles (a runner may move a step to another process and bring its
error back): extra data is declared in the constructor, and `__reduce__` restores
the message and the fields without calling the constructor again.
"""

from __future__ import annotations

from typing import Any


def _rebuild(cls: type, args: tuple, state: dict) -> "CadenzaError":
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class CadenzaError(Exception):
    """Root of all Cadenza errors."""

    exit_code = 1

    def __reduce__(self):
        # Exception's own reduce calls cls(*self.args): wrong for a constructor that takes fields.
        return _rebuild, (type(self), self.args, dict(self.__dict__))


class InputError(CadenzaError):
    """Bad input from the user: a missing or corrupt file, a bad plan, a bad argument."""

    exit_code = 2


class UnknownToolError(InputError):
    pass


class MediaError(InputError):
    """A media file is missing, empty, corrupt or of the wrong kind."""


class PathNotAllowedError(InputError):
    """A path lies outside the workspace and the files the user passed."""


class WorkflowError(InputError):
    """A workflow file cannot be read (YAML syntax, wrong shape)."""


class PlanError(InputError):
    """A plan failed static validation. `problems` holds every problem found; `last_plan` is what
    an LLM last proposed when its repairs ran out (a benchmark scores it, nothing runs it)."""

    def __init__(self, problems: list[str], last_plan: Any = None):
        self.problems = list(problems)
        self.last_plan = last_plan
        first = self.problems[0] if self.problems else "invalid plan"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(first + more)


class BackendUnavailableError(InputError):
    """The backend asked for cannot run here (missing package or model)."""


class LLMConfigError(InputError):
    """The LLM cannot be set up as asked (missing key, missing package, unknown spec)."""


class ToolError(CadenzaError):
    """A tool failed while running."""


class TransientError(ToolError):
    """A failure worth retrying (a busy device, a flaky network model server)."""


class StepTimeoutError(ToolError):
    pass


class GPUOutOfMemoryError(ToolError):
    pass


class LLMError(CadenzaError):
    """The LLM failed (timed out, returned garbage, refused). `raw` is its reply, when there was
    one: the planner's repair loop shows the model its own bad reply."""

    def __init__(self, message: str, raw: str | None = None):
        self.raw = raw
        super().__init__(message)


class CancelledError(CadenzaError):
    exit_code = 130


def one_line(err: BaseException) -> str:
    """The first line of an error message, for the CLI and run.json."""
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


# C0/C1 controls, DEL, line/paragraph separators and bidi overrides: a name or message holding
# them could move the cursor, recolour or rewrite the terminal, or reorder what is shown.
_CONTROLS = [*range(0x20), *range(0x7f, 0xa0), 0x2028, 0x2029, *range(0x202a, 0x202f), *range(0x2066, 0x206a)]
_ESCAPES = {c: repr(chr(c))[1:-1] for c in _CONTROLS}  # '\\x1b', '\\n', '\\u202e', as repr writes them
_ESCAPES_MULTILINE = {c: e for c, e in _ESCAPES.items() if c not in (0x09, 0x0a)}


def printable(text: object, *, multiline: bool = False) -> str:
    """`text` safe to print on a terminal: control characters escaped as `repr` writes them
    (ESC becomes `\\x1b`); with `multiline`, newlines and tabs are kept."""
    return str(text).translate(_ESCAPES_MULTILINE if multiline else _ESCAPES)
