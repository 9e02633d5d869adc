"""Speech tools. So far: subtitles from timed segments (transcribe, speak and translate come next)."""

from .subtitles import make_subtitles

SPEECH_TOOLS = [make_subtitles]
