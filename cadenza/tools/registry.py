"""Where tools are found: plugins, built-in or installed.

A plugin is a module with one hook (see `cadenza.hookspecs`):

    @cadenza.hookimpl
    def register_tools(register):
        register(my_tool)

Each built-in tool family (`cadenza.tools.audio`, `cadenza.tools.speech`, ...) and the built-in
workflows (`cadenza.engine.builtin_workflows`) is such a plugin that ships inside the package
(listed in BUILTIN_PLUGINS, the way simonw/llm loads its default plugins); installed plugins come
from the `cadenza.tools` entry-point group, then the user's workflow folders, and last each MCP
server of the config file (`mcp:NAME`, tools/mcp_client.py). All are loaded the same way. A plugin
that fails to import or register (an exception, or `sys.exit()`; a server that does not start) is
recorded in `plugin_errors`, warned about once on stderr, and skipped: it never takes the
application down. What a plugin prints while it loads goes to stderr, so `--json` output stays
one JSON object.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.metadata
import logging
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from ..errors import UnknownToolError, printable
from ..hookspecs import ENTRY_POINT_GROUP, PROJECT, HookSpecs
from ..paths import workflow_dirs_configured
from .base import Tool
from .mcp_client import server_plugins

log = logging.getLogger("cadenza")


# The built-in tool families, each a plugin module with a `register_tools` hook, and the built-in
# workflows (cadenza/workflows/*.yaml), which are tools too. Imported by name: the workflow plugin
# lives in the engine layer (a workflow tool runs its steps with the executor).
BUILTIN_PLUGINS = ("cadenza.tools.audio", "cadenza.tools.speech", "cadenza.tools.dub", "cadenza.tools.music",
                   "cadenza.tools.image", "cadenza.tools.vision",
                   "cadenza.engine.builtin_workflows")
# The workflow folders the user names (CADENZA_WORKFLOWS, `workflow_dirs` in the config file), loaded
# after the installed plugins and only when some folder is named.
USER_WORKFLOWS_PLUGIN = "cadenza.engine.user_workflows"


@dataclass
class PluginError:
    plugin: str
    error: str


@dataclass
class PluginInfo:
    name: str
    module: str
    builtin: bool
    tools: list[str] = field(default_factory=list)


class Registry:
    def __init__(self, tools: list[Tool] = ()):
        self._tools: dict[str, Tool] = {}
        self.plugin_errors: list[PluginError] = []
        self.plugin_info: list[PluginInfo] = []  # every plugin loaded, built-in ones first
        for t in tools:
            self.register(t)

    @property
    def plugins(self) -> list[str]:
        """Names of the plugins loaded, built-in and installed."""
        return [p.name for p in self.plugin_info]

    def register(self, t: Tool, *, replace: bool = False) -> Tool:
        if not isinstance(t, Tool):
            raise TypeError(f"not a Cadenza tool: {t!r} (decorate the function with @cadenza.tool)")
        if t.name in self._tools and not replace and self._tools[t.name] is not t:
            raise ValueError(f"a tool named '{t.name}' is already registered")
        self._tools[t.name] = t
        t.bind_registry(self)
        return t

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._tools, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UnknownToolError(f"unknown tool '{name}'{hint}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def __iter__(self):
        return iter(sorted(self._tools.values(), key=lambda t: t.name))

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        return sorted(self._tools)

    def load_plugins(self, group: str = ENTRY_POINT_GROUP, *, builtins: bool = True, installed: bool = True) -> None:
        """Register the tools of the built-in families and workflows, then of every installed plugin
        the user's workflow folders and the MCP servers of the config file (either part can be left
        out); record and skip broken ones."""
        pm = pluggy.PluginManager(PROJECT)
        pm.add_hookspecs(HookSpecs)
        if builtins:
            for module in BUILTIN_PLUGINS:
                self._load_plugin(pm, module, module, lambda m=module: importlib.import_module(m), builtin=True)
        for ep in importlib.metadata.entry_points(group=group) if installed else ():
            self._load_plugin(pm, ep.name, ep.value, ep.load, builtin=False)
        if installed and workflow_dirs_configured():
            module = USER_WORKFLOWS_PLUGIN
            self._load_plugin(pm, module, module, lambda: importlib.import_module(module), builtin=True)
        for name, where, load in server_plugins() if installed else ():
            self._load_plugin(pm, name, where, load, builtin=False)

    def _load_plugin(self, pm: pluggy.PluginManager, name: str, module_name: str, load: Callable[[], Any],
                     builtin: bool) -> None:
        label = name if builtin else f"{name} ({module_name})"
        module = None
        try:
            with contextlib.redirect_stdout(sys.stderr):  # stdout belongs to the command (--json)
                module = load()
                if not pm.is_registered(module):
                    pm.register(module, name=name)
                found: list[Tool] = []
                for impl in pm.hook.register_tools.get_hookimpls():
                    if impl.plugin is module:  # call this plugin's hook alone, so a failure stays its own
                        impl.function(register=found.append)
            self._register_all(found)
            self.plugin_info.append(PluginInfo(name, module_name, builtin, [t.name for t in found]))
        except (Exception, SystemExit) as e:  # a broken plugin must not take the app down
            if module is not None and pm.is_registered(module):
                pm.unregister(module)
            if isinstance(e, SystemExit):
                msg = f"SystemExit: the plugin called sys.exit({e.code!r})"
            else:
                msg = f"{type(e).__name__}: {e}".splitlines()[0]
            self.plugin_errors.append(PluginError(label, msg))
            log.warning("cadenza: skipped plugin %s: %s", printable(label), printable(msg))

    def _register_all(self, tools: list[Tool]) -> None:
        """All of a plugin's tools, or none of them."""
        for t in tools:
            if not isinstance(t, Tool):
                raise TypeError(f"not a Cadenza tool: {t!r} (decorate the function with @cadenza.tool)")
            if t.name in self._tools:
                raise ValueError(f"a tool named '{t.name}' is already registered")
        names = [t.name for t in tools]
        if len(set(names)) != len(names):
            raise ValueError(f"the plugin registers a tool name twice: {names}")
        for t in tools:
            self.register(t)


def builtin_tools() -> list[Tool]:
    """The tools of the built-in families alone (no installed plugins)."""
    reg = Registry()
    reg.load_plugins(installed=False)
    return list(reg)


_default: Registry | None = None


def default_registry() -> Registry:
    """The built-in families plus installed plugins, loaded once per process."""
    global _default
    if _default is None:
        reg = Registry()
        reg.load_plugins()
        _default = reg
    return _default
