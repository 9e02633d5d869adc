"""edit_image and generate_image as a user meets them: through the CLI, with the embedded classic
backend (no model, no network). The operations and parser: test_image_classic.py; the diffusers
backends with tiny random pipelines: test_image_heavy.py; reading pictures: test_images.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parent.parent


def cadenza(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CADENZA_CACHE_DIR": str(Path(cwd) / ".cache")}
    for var in ("CADENZA_IMAGE_EDIT_MODEL", "CADENZA_IMAGE_MODEL", "CADENZA_IMAGE_INPAINT_MODEL"):
        env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "cadenza.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def edit(*args, cwd):
    argv = []
    for a in args:
        argv += ["--arg", a]
    return cadenza("tools", "run", "edit_image", *argv, "--out", "out", "--json", cwd=cwd)


def one_error(r) -> str:
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    return errors[0]


def photo(path: Path, size=(320, 200), orientation: int | None = None) -> Path:
    """A colourful synthetic 'photo': a gradient sky, a green field, a red disc."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (x * 255 // max(w - 1, 1)).astype(np.uint8)
    img[..., 2] = 200
    img[y > h * 0.6] = (40, 160, 60)
    img[(x - w // 2) ** 2 + (y - h // 3) ** 2 < (h // 6) ** 2] = (220, 30, 30)
    pic = PILImage.fromarray(img)
    exif = PILImage.Exif()
    if orientation:
        exif[0x0112] = orientation
    pic.save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


def test_black_and_white_and_square_is_done_exactly_and_listed(tmp_path):
    photo(tmp_path / "photo.jpg")
    r = edit(f"image={tmp_path / 'photo.jpg'}", "instruction=make it black and white and crop it square", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    out = doc["outputs"]["image"]
    assert out["path"].endswith(".png") and (out["width"], out["height"]) == (200, 200)
    assert [o["op"] for o in doc["outputs"]["operations"]] == ["grayscale", "crop"]
    px = np.asarray(PILImage.open(out["path"]).convert("RGB")).astype(int)
    assert np.abs(px[..., 0] - px[..., 1]).max() <= 2  # grey: the channels agree


def test_size_and_aspect_are_kept_and_a_phone_photo_stays_upright(tmp_path):
    photo(tmp_path / "tall.jpg", size=(300, 200), orientation=6)  # shown 200 wide, 300 tall
    r = edit(f"image={tmp_path / 'tall.jpg'}", "instruction=make it a bit brighter", "format=jpeg", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)["outputs"]["image"]
    assert out["path"].endswith(".jpg") and (out["width"], out["height"]) == (200, 300)


def test_what_no_operation_can_do_names_the_backend_that_could(tmp_path):
    photo(tmp_path / "photo.jpg")
    err = one_error(edit(f"image={tmp_path / 'photo.jpg'}", "instruction=add a dragon in the sky", cwd=tmp_path))
    assert "dragon" in err and "diffusers" in err


def test_bad_input_is_a_one_line_error(tmp_path):
    photo(tmp_path / "photo.jpg")
    PILImage.new("L", (10, 10), 255).save(tmp_path / "mask.png")
    err = one_error(edit(f"image={tmp_path / 'photo.jpg'}", "instruction=blur it", f"mask={tmp_path / 'mask.png'}",
                         cwd=tmp_path))
    assert "mask.png is 10x10" in err and "320x200" in err
    assert "instruction is empty" in one_error(edit(f"image={tmp_path / 'photo.jpg'}", "instruction=  ", cwd=tmp_path))
    data = (tmp_path / "photo.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    assert "cut.jpg" in one_error(edit(f"image={tmp_path / 'cut.jpg'}", "instruction=make it sepia", cwd=tmp_path))
    (tmp_path / "empty.png").write_bytes(b"")
    assert "empty.png" in one_error(edit(f"image={tmp_path / 'empty.png'}", "instruction=make it sepia", cwd=tmp_path))
    err = one_error(edit(f"image={tmp_path / 'photo.jpg'}", "instruction=make it sepia", "model=nobody/no-such-model",
                         cwd=tmp_path))
    assert "nobody/no-such-model" in err


def test_generate_image_without_a_model_says_what_to_set(tmp_path):
    r = cadenza("tools", "run", "generate_image", "--arg", "prompt=a lighthouse at dusk", "--out", "out", cwd=tmp_path)
    err = one_error(r)
    assert "CADENZA_IMAGE_MODEL" in err and not list((tmp_path / "out").glob("*.png"))
