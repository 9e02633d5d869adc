"""Speech tools: transcribe (Whisper), speak (TTS), translate (LLM) and make_subtitles.

Each model backend lives in its own module (asr_*.py, tts_*.py) and loads its model through
the shared ModelRuntime, so models stay resident and respect the device and GPU budget.
A plugin that ships inside the package.
"""

from ...hookspecs import hookimpl
from .speak import speak
from .subtitles import make_subtitles
from .transcribe import transcribe
from .translate import translate

SPEECH_TOOLS = [transcribe, speak, translate, make_subtitles]


@hookimpl
def register_tools(register):
    for t in SPEECH_TOOLS:
        register(t)
