"""Built-in audio tools: editing (pydub) and audio in video (PyAV)."""

from .edit import EDIT_TOOLS
from .video import VIDEO_AUDIO_TOOLS

AUDIO_TOOLS = EDIT_TOOLS + VIDEO_AUDIO_TOOLS
