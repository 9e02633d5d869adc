"""Built-in audio tools: editing (pydub) and audio in video (PyAV). A plugin that ships inside the package."""

from ...hookspecs import hookimpl
from .edit import EDIT_TOOLS
from .video import VIDEO_AUDIO_TOOLS

AUDIO_TOOLS = EDIT_TOOLS + VIDEO_AUDIO_TOOLS


@hookimpl
def register_tools(register):
    for t in AUDIO_TOOLS:
        register(t)
