"""Dubbing tools: dub_lines (transcript segments into dubbing lines), speak_lines (each line spoken,
fitted to its slot and placed at its start, with a per-line cache), dub_mix (the new speech over the
original sound: ducked, kept or dropped) and load_dub_lines (an edited dub_lines.json read back).
One module per concern: lines, fit, cache, shorten, speak_lines, mix, report.
A plugin that ships inside the package.
"""

from ...hookspecs import hookimpl
from .lines import dub_lines
from .mix import dub_mix
from .report import load_dub_lines
from .speak_lines import speak_lines

DUB_TOOLS = [dub_lines, speak_lines, dub_mix, load_dub_lines]


@hookimpl
def register_tools(register):
    for t in DUB_TOOLS:
        register(t)
