"""Vision tools on videos and pictures: still frames (frames.py: seeking with PyAV, never decoding a
whole file into memory) and scene cuts (scenes.py: content change on downscaled frames). One module
per concern and backend. A plugin that ships inside the package.
"""

from ...hookspecs import hookimpl
from .audio_description import place_descriptions
from .caption import caption_image
from .caption_video import caption_video
from .frames import extract_frame, extract_frames
from .scenes import detect_scenes
from .slideshow import images_to_video

VISION_TOOLS = [place_descriptions, caption_image, extract_frame, extract_frames, detect_scenes, images_to_video, caption_video]


@hookimpl
def register_tools(register):
    for t in VISION_TOOLS:
        register(t)
