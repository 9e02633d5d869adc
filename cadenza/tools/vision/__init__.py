"""Vision tools on videos and pictures: still frames (frames.py: seeking with PyAV, never decoding a
whole file into memory) and scene cuts (scenes.py: content change on downscaled frames). One module
per concern and backend. A plugin that ships inside the package.
"""

from ...hookspecs import hookimpl
from .frames import extract_frame, extract_frames
from .scenes import detect_scenes

VISION_TOOLS = [extract_frame, extract_frames, detect_scenes]


@hookimpl
def register_tools(register):
    for t in VISION_TOOLS:
        register(t)
