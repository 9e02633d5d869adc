"""The built-in workflows (`cadenza/workflows/*.yaml`: subtitle, narrate) as tools: a plugin that
ships inside the package, listed in `BUILTIN_PLUGINS` like the tool families."""

from ..hookspecs import hookimpl
from .workflow_tool import BUILTIN_WORKFLOWS_DIR, workflow_tools


@hookimpl
def register_tools(register):
    for t in workflow_tools(BUILTIN_WORKFLOWS_DIR):
        register(t)
