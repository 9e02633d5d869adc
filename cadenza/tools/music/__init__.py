"""Music tools: compose_music (MusicGen, Stable Audio Open, or the embedded offline composer) and
generate_sound (sound effects: Stable Audio Open, AudioLDM 2). One module per backend: composer
(with symbolic/), musicgen, stable_audio, audioldm; common.py is the backend interface, output.py
what every result goes through. A plugin that ships inside the package.
"""

from ...hookspecs import hookimpl
from .compose import compose_music
from .sound import generate_sound

MUSIC_TOOLS = [compose_music, generate_sound]


@hookimpl
def register_tools(register):
    for t in MUSIC_TOOLS:
        register(t)
