"""The user's workflow folders as tools: `CADENZA_WORKFLOWS` and `workflow_dirs = [...]` in the
config file (`paths.workflow_dirs`). Loaded after the installed plugins, when a folder is named; a
folder that is missing, or a file that cannot be read, skips this plugin with a warning (`cadenza
doctor` lists it)."""

from ..hookspecs import hookimpl
from ..paths import workflow_dirs
from .workflow_tool import workflow_tools


@hookimpl
def register_tools(register):
    for folder in workflow_dirs():
        for t in workflow_tools(folder):
            register(t)
