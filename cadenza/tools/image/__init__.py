"""Image tools: edit_image (classic Pillow and OpenCV operations offline; diffusers instruction
editing, img2img and inpainting on GPU) and generate_image (diffusers text to image). One module per
backend: classic (with its operations and instruction parser in ops/), diffusers_edit,
diffusers_generate; common.py is the backend interface, output.py writes the pictures.
A plugin that ships inside the package.
"""

from ...hookspecs import hookimpl
from .edit import edit_image
from .generate import generate_image

IMAGE_TOOLS = [edit_image, generate_image]


@hookimpl
def register_tools(register):
    for t in IMAGE_TOOLS:
        register(t)
