"""The plugin hook: a plugin registers its tools, nothing more."""

import pluggy

PROJECT = "cadenza"
ENTRY_POINT_GROUP = "cadenza.tools"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class HookSpecs:
    @hookspec
    def register_tools(self, register):
        """Call `register(tool)` for each tool the plugin provides."""
