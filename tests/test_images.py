"""Pictures as they arrive: probed upright (EXIF orientation), first frame of an animation, a pixel
limit, and one-line errors for truncated, corrupt or empty files (cadenza/media.py)."""

from __future__ import annotations

import pytest
from PIL import Image as PILImage

from cadenza.errors import MediaError
from cadenza.media import MAX_PIXELS, load_image
from cadenza.media import Image


def photo(path, size=(60, 40), orientation: int | None = None, color=(200, 30, 30)):
    img = PILImage.new("RGB", size, color)
    img.paste((20, 20, 220), (0, 0, size[0] // 3, size[1]))  # a blue band on the left, to see turns
    exif = PILImage.Exif()
    if orientation:
        exif[0x0112] = orientation
    img.save(path, "JPEG", exif=exif.tobytes())
    return path


def test_a_phone_photo_is_probed_and_read_upright(tmp_path):
    p = photo(tmp_path / "portrait.jpg", orientation=6)  # stored landscape, shown turned 90 degrees
    ref = Image.from_path(p)
    assert (ref.width, ref.height, ref.mode, ref.frames) == (40, 60, "RGB", 1)
    img = load_image(p)
    assert img.size == (40, 60) and img.mode == "RGB"
    assert img.getpixel((20, 5))[2] > 150  # the blue band that was on the left is now at the top


def test_an_animation_gives_its_first_frame_and_a_note(tmp_path):
    frames = [PILImage.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.from_path(tmp_path / "anim.gif").frames == 3
    notes: list[str] = []
    img = load_image(tmp_path / "anim.gif", notes)
    assert img.getpixel((8, 8))[0] > 200 and "3 frames" in notes[0] and "first one" in notes[0]


def test_transparency_is_kept(tmp_path):
    PILImage.new("RGBA", (8, 8), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    assert load_image(tmp_path / "clear.png").mode == "RGBA"


@pytest.mark.parametrize("case", ["truncated", "corrupt", "empty"])
def test_broken_pictures_are_one_line_errors_naming_the_file(tmp_path, case):
    p = photo(tmp_path / "broken.jpg", size=(200, 150))
    data = p.read_bytes()
    p.write_bytes({"truncated": data[: len(data) // 2], "corrupt": b"\xff\xd8\xff" + b"\x00junk" * 50,
                   "empty": b""}[case])
    with pytest.raises(MediaError) as e:
        load_image(p) if case == "truncated" else Image.from_path(p)
    assert "broken.jpg" in str(e.value) and "\n" not in str(e.value)


def test_a_picture_over_the_pixel_limit_is_refused_before_it_is_decoded(tmp_path):
    side = int(MAX_PIXELS ** 0.5) + 10
    PILImage.new("L", (side, side)).save(tmp_path / "huge.png", optimize=False, compress_level=1)
    with pytest.raises(MediaError, match=r"huge.png is \d+x\d+, \d+ million pixels: more than the 50 million"):
        Image.from_path(tmp_path / "huge.png")
