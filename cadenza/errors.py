"""One exception root for everything Cadenza raises on purpose.

Two branches decide the CLI exit code: `InputError` (the user gave us something
wrong: exit 2) and everything else under `CadenzaError` (a failure while running:
exit 1). Messages are one line and name the thing at fault.
"""

from __future__ import annotations


class CadenzaError(Exception):
    """Root of all Cadenza errors."""

    exit_code = 1


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
    """A plan failed static validation. `problems` holds every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        first = self.problems[0] if self.problems else "invalid plan"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(first + more)


class BackendUnavailableError(InputError):
    """The backend asked for cannot run here (missing package or model)."""


class ToolError(CadenzaError):
    """A tool failed while running."""


class TransientError(ToolError):
    """A failure worth retrying (a busy device, a flaky network model server)."""


class StepTimeoutError(ToolError):
    pass


class GPUOutOfMemoryError(ToolError):
    pass


class CancelledError(CadenzaError):
    exit_code = 130


def one_line(err: BaseException) -> str:
    """The first line of an error message, for the CLI and run.json."""
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
