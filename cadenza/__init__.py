"""Cadenza: plan, check and run multi-step media jobs with local models.

The public API in one place: tools (`tool`, `Tool`, `Backend`, `ToolContext`),
media (`Audio`, `Image`, `Video`), plans (`Plan`, `Step`, `load_workflow`),
running (`Executor`, `Workspace`, `run_workflow`), the model runtime and the
error root `CadenzaError`.
"""

from .errors import (CadenzaError, InputError, MediaError, PathNotAllowedError, PlanError, ToolError,
                     TransientError, UnknownToolError, WorkflowError)
from .hookspecs import hookimpl
from .media import Audio, Image, Media, Video
from .runtime import ModelRuntime, get_runtime
from .tools.base import Backend, Tool, ToolContext, tool
from .tools.registry import Registry, default_registry
from .workspace import Workspace

__version__ = "0.1.0"


def __getattr__(name):
    # The engine is loaded only when asked for: `import cadenza` stays fast for a plugin.
    lazy = {"Plan": "plan", "Step": "plan", "Executor": "executor", "RunResult": "executor", "Event": "executor",
            "load_workflow": "workflow", "run_workflow": "workflow", "check_plan": "validate"}
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(f"cadenza.engine.{lazy[name]}"), name)
    raise AttributeError(f"module 'cadenza' has no attribute '{name}'")


__all__ = ["CadenzaError", "InputError", "MediaError", "PathNotAllowedError", "PlanError", "ToolError",
           "TransientError", "UnknownToolError", "WorkflowError", "hookimpl", "Audio", "Image", "Media", "Video",
           "ModelRuntime", "get_runtime", "Backend", "Tool", "ToolContext", "tool", "Registry", "default_registry",
           "Workspace", "Plan", "Step", "Executor", "RunResult", "Event", "load_workflow", "run_workflow",
           "check_plan"]
