"""The classic image backend: every operation on real pixels, the instruction parser (rules and LLM), and
the backend's answers to instructions it cannot serve. Pictures are synthetic: a 'photo' (gradient, shapes,
noise) and a drawn 'person' whose face OpenCV's Haar cascade finds. Timing is not asserted here."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage, ImageDraw, ImageFilter

pytest.importorskip("cv2")

from cadenza.errors import CancelledError, InputError  # noqa: E402
from cadenza.llm.testing import ScriptedChatModel  # noqa: E402
from cadenza.tools.base import ToolContext  # noqa: E402
from cadenza.tools.image import classic  # noqa: E402
from cadenza.tools.image.common import EditRequest  # noqa: E402
from cadenza.tools.image.ops import OPS, apply, validate  # noqa: E402
from cadenza.tools.image.ops import llm as image_llm_mod  # noqa: E402
from cadenza.tools.image.ops.background import subject_mask  # noqa: E402
from cadenza.tools.image.ops.llm import answer_schema, configured_llm, image_llm  # noqa: E402
from cadenza.tools.image.ops.parse import parse_instruction, parse_rules  # noqa: E402
from cadenza.tools.image.ops.parse_cases import CASES, accuracy  # noqa: E402
from cadenza.workspace import Workspace  # noqa: E402

W, H = 320, 240


def photo(w: int = W, h: int = H, noise: float = 4.0) -> PILImage.Image:
    """A colourful 'photo': a gradient, a red disc, a green block, a yellow triangle, a little noise."""
    y, x = np.mgrid[0:h, 0:w]
    arr = np.dstack([x / w * 180 + 40, y / h * 160 + 50, (1 - x / w) * 140 + 70]).astype(np.float32)
    img = PILImage.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img)
    d.ellipse((w * 0.35, h * 0.2, w * 0.65, h * 0.85), fill=(200, 60, 50))
    d.rectangle((w * 0.05, h * 0.6, w * 0.25, h * 0.95), fill=(30, 160, 70))
    d.polygon([(w * 0.75, h * 0.9), (w * 0.88, h * 0.3), (w * 0.97, h * 0.9)], fill=(240, 230, 60))
    rng = np.random.default_rng(0)
    out = np.asarray(img).astype(np.float32) + rng.normal(0, noise, (h, w, 3))
    return PILImage.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def person(w: int = 480, h: int = 360, cx: float = 0.5) -> tuple[PILImage.Image, np.ndarray]:
    """A drawn head and shoulders on a cluttered background, and its true silhouette (bool array)."""
    y, x = np.mgrid[0:h, 0:w]
    img = PILImage.fromarray(np.dstack([60 + x / w * 80, 120 + y / h * 60, 170 - x / w * 40]).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for i in range(12):
        d.rectangle((i * w * 0.09, h * (0.05 + (i % 3) * 0.04), i * w * 0.09 + w * 0.05, h * (0.15 + (i % 3) * 0.04)),
                    fill=(90 + i * 10, 140, 100))
    c, fw = cx * w, 0.14 * w
    fh, top = fw * 1.3, 0.2 * h
    ex, ey, er = fw * 0.2, top + fh * 0.4, fw * 0.08
    truth = PILImage.new("L", (w, h), 0)
    t = ImageDraw.Draw(truth)
    for draw, skin, shirt, hair in ((d, (228, 184, 154), (40, 60, 150), (60, 40, 30)), (t, 255, 255, 255)):
        draw.rounded_rectangle((c - 1.6 * fw, top + fh * 1.15, c + 1.6 * fw, h + 50), radius=int(fw * 0.5), fill=shirt)
        draw.rectangle((c - 0.25 * fw, top + fh * 0.9, c + 0.25 * fw, top + fh * 1.25), fill=skin)
        draw.ellipse((c - fw * 0.6, top - fh * 0.15, c + fw * 0.6, top + fh * 0.6), fill=hair)
        draw.ellipse((c - fw / 2, top, c + fw / 2, top + fh), fill=skin)
    for sx in (-1, 1):  # brows, eyes, nose and mouth: what the Haar cascade looks for
        d.rectangle((c + sx * ex - er * 1.6, ey - er * 2.2, c + sx * ex + er * 1.6, ey - er * 1.6), fill=(70, 50, 40))
        d.ellipse((c + sx * ex - er * 1.3, ey - er * 0.7, c + sx * ex + er * 1.3, ey + er * 0.7), fill=(250, 250, 250))
        d.ellipse((c + sx * ex - er * 0.6, ey - er * 0.6, c + sx * ex + er * 0.6, ey + er * 0.6), fill=(40, 30, 25))
    d.polygon([(c, ey + er), (c - fw * 0.07, top + fh * 0.68), (c + fw * 0.07, top + fh * 0.68)], fill=(200, 150, 120))
    d.ellipse((c - fw * 0.17, top + fh * 0.76, c + fw * 0.17, top + fh * 0.84), fill=(170, 80, 80))
    return img.filter(ImageFilter.GaussianBlur(1.5)), np.asarray(truth) > 127


@pytest.fixture(autouse=True)
def no_llm_config(monkeypatch):
    """The rules read instructions unless a test says otherwise, whatever LLM this machine is set up with."""
    for var in ("CADENZA_IMAGE_LLM", "CADENZA_LLM"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("cadenza.paths.load_config", lambda: {})


def arr(img: PILImage.Image) -> np.ndarray:
    return np.asarray(img).astype(np.float32)


def run(name: str, image: PILImage.Image | None = None, **params) -> PILImage.Image:
    """One operation on `image` (default: the photo)."""
    return run_with(name, image if image is not None else photo(), **params)


def run_with(name: str, image, overlay=None, mask=None, notes=None, **params) -> PILImage.Image:
    op, p = validate(name, params)
    return apply(image, op, p, overlay=overlay, mask=mask, note=(notes.append if notes is not None else lambda _m: None))


def ctx(tmp_path) -> ToolContext:
    return ToolContext(workspace=Workspace.for_run(tmp_path / "out"), step_id="edit", backend="classic")


def sat(a: np.ndarray) -> float:
    return float((a.max(axis=2) - a.min(axis=2)).mean())


def detail(a: np.ndarray) -> float:
    import cv2

    return float(cv2.Laplacian(cv2.cvtColor(a.astype(np.uint8), cv2.COLOR_RGB2GRAY), cv2.CV_32F).var())


# -- every operation does something, and keeps the size unless it is about size ----------------------

SAMPLE_PARAMS = {
    "resize": {"width": 200}, "crop": {"aspect": "square"}, "rotate": {"degrees": 15}, "flip": {},
    "brightness": {"amount": 0.3}, "contrast": {"amount": 0.4}, "saturation": {"amount": 0.5},
    "exposure": {"stops": 1}, "warmth": {"amount": 0.6}, "grayscale": {}, "sepia": {}, "auto_contrast": {},
    "blur": {}, "sharpen": {}, "denoise": {}, "vignette": {}, "cartoon": {}, "sketch": {}, "oil": {},
    "watercolor": {}, "text": {"text": "Hello"}, "border": {}, "composite": {}, "background_blur": {},
    "remove_background": {}, "replace_background": {"color": "white"},
}
RESIZES = {"resize", "crop"}


def test_the_sample_covers_every_operation():
    assert set(SAMPLE_PARAMS) == set(OPS)


@pytest.mark.parametrize("name", sorted(SAMPLE_PARAMS))
def test_every_operation_changes_the_picture_and_keeps_its_size(name):
    src = photo()
    logo = PILImage.new("RGBA", (60, 30), (0, 0, 255, 255))
    out = run_with(name, src, overlay=logo, **SAMPLE_PARAMS[name])
    if name in RESIZES:
        assert out.size != src.size
        return
    assert out.size == src.size, name
    a, b = arr(out.convert("RGB")), arr(src)
    changed = np.abs(a - b).max(axis=2) > 8
    alpha_changed = out.mode == "RGBA" and np.asarray(out.getchannel("A")).min() < 128
    assert changed.mean() > 0.005 or alpha_changed, f"{name} left the picture as it was"


# -- geometry --------------------------------------------------------------------------------------------

def test_resize_keeps_the_aspect_with_one_side_and_fits_two_without_distortion():
    src = photo()
    assert run_with("resize", src, width=160).size == (160, 120)
    assert run_with("resize", src, height=60).size == (80, 60)
    assert run_with("resize", src, long_side=640).size == (640, 480)
    assert run_with("resize", src, scale=0.5).size == (160, 120)
    square = run_with("resize", src, width=100, height=100)  # crop to fill: the disc stays round
    assert square.size == (100, 100)
    pad = np.asarray(run_with("resize", src, width=100, height=100, fit="pad"))
    assert pad[:5].max() == 0 and pad[50].max() > 0  # bars above and below, picture in the middle
    assert run_with("resize", src, width=100, height=100, fit="stretch").size == (100, 100)
    with pytest.raises(InputError, match="megapixels"):
        run_with("resize", src, width=16000, height=16000)
    with pytest.raises(InputError, match="one of them"):
        validate("resize", {"width": 10, "scale": 2})


def test_crop_to_aspect_box_margin_and_zoom():
    src = photo()
    assert run_with("crop", src, aspect="square").size == (240, 240)
    wide = run_with("crop", src, aspect="16:9")
    assert wide.size == (320, 180)
    tall = run_with("crop", src, aspect="9:16", anchor="left")
    assert tall.size == (135, 240) and np.allclose(arr(tall)[:, 0], arr(src)[:, 0])
    left = run_with("crop", src, box=[0, 0, 0.5, 1])
    assert left.size == (160, 240) and np.array_equal(np.asarray(left), np.asarray(src)[:, :160])
    assert run_with("crop", src, margin=0.1).size == (256, 192)
    assert run_with("crop", src, margin_px=20).size == (280, 200)
    with pytest.raises(InputError, match="leaves nothing"):
        run_with("crop", src, margin_px=200)
    assert run_with("crop", src, zoom=2).size == (160, 120)
    with pytest.raises(InputError, match="aspect"):
        validate("crop", {"aspect": "wide"})
    with pytest.raises(InputError, match="say how"):
        validate("crop", {})


def test_center_on_the_face_falls_back_to_the_centre_with_a_note():
    notes: list[str] = []
    out = run_with("crop", photo(), notes=notes, aspect="square", anchor="face")
    assert out.size == (240, 240) and any("no face found" in n for n in notes)
    centre = np.asarray(photo())[:, 40:280]
    assert np.array_equal(np.asarray(out), centre)


def test_center_on_the_face_follows_the_face():
    from cadenza.tools.image.ops.util import detect_faces, to_array

    img, _ = person(cx=0.3)
    faces = detect_faces(to_array(img))
    if not faces:
        pytest.skip("this OpenCV's Haar cascade finds no face in the drawn person")
    x, y, w, h = faces[0]
    notes: list[str] = []
    out = run_with("crop", img, notes=notes, aspect="1:1", zoom=2, anchor="face")
    assert out.size == (180, 180) and not notes
    # centred on the face (a little below it: the face sits in the upper part), kept inside the picture
    x0 = round(min(max(x + w / 2 - 90, 0), 480 - 180))
    y0 = round(min(max(y + h / 2 + 18 - 90, 0), 360 - 180))
    assert np.array_equal(np.asarray(out), np.asarray(img)[y0:y0 + 180, x0:x0 + 180])
    head = run_with("crop", img, anchor="face")  # no aspect: head and shoulders, in the picture's aspect
    assert head.width < 480 and abs(head.width / head.height - 480 / 360) < 0.02


def test_rotate_exactly_by_quarter_turns_and_zoom_for_other_angles():
    src = photo()
    a = np.asarray(src)
    cw = run_with("rotate", src, degrees=90)
    assert cw.size == (240, 320) and np.array_equal(np.asarray(cw)[0, -1], a[0, 0])  # top-left went top-right
    ccw = run_with("rotate", src, degrees=-90)
    assert np.array_equal(np.asarray(ccw)[-1, 0], a[0, 0])
    assert np.array_equal(np.asarray(run_with("rotate", src, degrees=180)), a[::-1, ::-1])
    tilted = run_with("rotate", src, degrees=10)
    assert tilted.size == src.size and np.asarray(tilted)[:3, :3].mean() > 20  # no black corners
    grown = run_with("rotate", src, degrees=10, expand=True, fill="white")
    assert grown.width > 320 and np.asarray(grown)[0, 0].tolist() == [255, 255, 255]
    with pytest.raises(InputError, match="changes nothing"):
        validate("rotate", {"degrees": 360})


def test_flip():
    a = np.asarray(photo())
    assert np.array_equal(np.asarray(run("flip", direction="horizontal")), a[:, ::-1])
    assert np.array_equal(np.asarray(run("flip", direction="vertical")), a[::-1])


# -- colour ------------------------------------------------------------------------------------------------

def test_colour_adjustments_move_the_right_measure():
    src = arr(photo())
    assert arr(run("brightness", amount=0.3)).mean() > src.mean() + 10
    assert arr(run("brightness", amount=-0.3)).mean() < src.mean() - 10
    assert arr(run("contrast", amount=0.5)).std() > src.std() * 1.2
    assert arr(run("contrast", amount=-0.5)).std() < src.std() * 0.8
    assert sat(arr(run("saturation", amount=0.5))) > sat(src) * 1.2
    assert sat(arr(run("saturation", amount=-0.5))) < sat(src) * 0.7
    assert arr(run("exposure", stops=1)).mean() > src.mean() + 15
    assert arr(run("exposure", stops=-1)).mean() < src.mean() - 15
    warm, cool = arr(run("warmth", amount=0.6)), arr(run("warmth", amount=-0.6))
    rb = lambda a: float((a[..., 0] - a[..., 2]).mean())  # noqa: E731
    assert rb(warm) > rb(src) + 10 and rb(cool) < rb(src) - 10


def test_grayscale_sepia_and_auto_contrast():
    g = arr(run("grayscale"))
    assert np.abs(g[..., 0] - g[..., 1]).max() <= 1 and np.abs(g[..., 1] - g[..., 2]).max() <= 1
    half = arr(run("grayscale", amount=0.5))
    assert 0 < sat(half) < sat(arr(photo()))
    s = arr(run("sepia"))
    assert s[..., 0].mean() > s[..., 1].mean() > s[..., 2].mean()  # brown: red over green over blue
    flat = PILImage.fromarray((arr(photo()) * 0.4 + 70).astype(np.uint8))  # dull: levels 70..170
    stretched = arr(run("auto_contrast", flat))
    assert stretched.min() < 15 and stretched.max() > 240


def test_colour_changes_keep_alpha():
    src = photo().convert("RGBA")
    src.putalpha(PILImage.linear_gradient("L").resize(src.size))
    out = run("grayscale", src)
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out.getchannel("A")), np.asarray(src.getchannel("A")))
    turned = run("rotate", src, degrees=90)
    assert turned.mode == "RGBA"


def test_a_mask_limits_colour_and_filter_operations_to_its_white_area():
    src = photo()
    mask = PILImage.new("L", src.size, 0)
    ImageDraw.Draw(mask).rectangle((0, 0, W // 2 - 1, H), fill=255)
    out = arr(run_with("grayscale", src, mask=mask))
    assert np.abs(out[:, : W // 2, 0] - out[:, : W // 2, 2]).max() <= 1  # left: grey
    assert np.array_equal(out[:, W // 2:], arr(src)[:, W // 2:])  # right: untouched


# -- filters -----------------------------------------------------------------------------------------------

def test_blur_and_sharpen_change_detail_in_opposite_directions():
    src = photo()
    assert detail(arr(run("blur", src))) < detail(arr(src)) * 0.5
    assert detail(arr(run("blur", src, radius=8))) < detail(arr(run("blur", src, radius=1)))
    assert detail(arr(run("sharpen", src))) > detail(arr(src)) * 1.5


def test_denoise_brings_a_noisy_picture_closer_to_the_clean_one():
    clean, noisy = arr(photo(noise=0)), photo(noise=12)
    err = lambda a: float(np.abs(a - clean).mean())  # noqa: E731
    assert err(arr(run("denoise", noisy))) < err(arr(noisy)) * 0.7


def test_vignette_darkens_the_corners_not_the_middle():
    src, out = arr(photo()), arr(run("vignette", amount=0.6))
    assert out[:20, :20].mean() < src[:20, :20].mean() * 0.6
    mid = (slice(H // 2 - 10, H // 2 + 10), slice(W // 2 - 10, W // 2 + 10))
    assert abs(out[mid].mean() - src[mid].mean()) < 2


# -- styles ------------------------------------------------------------------------------------------------

def test_cartoon_has_few_colours_and_dark_outlines():
    src = photo(noise=8)
    out = np.asarray(run("cartoon", src))
    colours = lambda a: len(np.unique(a.reshape(-1, 3), axis=0))  # noqa: E731
    assert colours(out) < colours(np.asarray(src)) / 10
    assert (out.max(axis=2) < 30).mean() > 0.002  # outlines


def test_sketch_is_grey_pencil_on_white_and_colour_pencil_keeps_hue():
    out = arr(run("sketch"))
    assert np.abs(out[..., 0] - out[..., 2]).max() <= 1 and out.mean() > 200  # mostly white paper
    assert (out[..., 0] < 180).mean() > 0.002  # but with lines
    coloured = arr(run("sketch", color=True))
    assert sat(coloured) > 10


def test_oil_and_watercolour_repaint_the_picture():
    src = arr(photo(noise=8))
    oil = arr(run("oil", photo(noise=8)))
    water = arr(run("watercolor", photo(noise=8)))
    for out in (oil, water):
        assert np.abs(out - src).mean() > 3 and detail(out) != detail(src)
        assert abs(out[..., 0].mean() - src[..., 0].mean()) < 40  # still the same picture's colours
    assert water.mean() > src.mean()  # pale paper shows through


# -- overlay ------------------------------------------------------------------------------------------------

def test_text_is_drawn_where_and_in_the_colour_asked():
    src = photo()
    out = arr(run("text", src, text="HELLO", position="bottom", color="#00ff00", size=0.15, outline=False))
    diff = np.abs(out - arr(src)).max(axis=2) > 30
    assert diff[: H // 2].sum() == 0 and diff[H // 2:].sum() > 200  # only the bottom half
    green = (out[..., 1] > 240) & (out[..., 0] < 20) & (out[..., 2] < 20)
    assert green[H // 2:].sum() > 100
    top_left = np.abs(arr(run("text", src, text="Hi", position="top-left", size=0.1)) - arr(src)).max(axis=2) > 30
    ys, xs = np.nonzero(top_left)
    assert ys.max() < H / 3 and xs.max() < W / 3
    accents = run("text", src, text="Grüße, café", position="center")
    assert np.abs(arr(accents) - arr(src)).max() > 30
    with pytest.raises(InputError, match="colour"):
        validate("text", {"text": "x", "color": "dragon"})


def test_long_text_is_wrapped_and_shrunk_to_fit():
    src = photo()
    out = arr(run("text", src, text="a fairly long caption " * 6, size=0.3))
    diff = np.abs(out - arr(src)).max(axis=2) > 30
    ys, xs = np.nonzero(diff)
    assert xs.min() > 0 and xs.max() < W - 1 and ys.min() > 0


def test_border_over_the_edge_or_outside():
    src = photo()
    inside = np.asarray(run("border", src, width=10, color="black"))
    assert inside.shape[:2] == (H, W) and inside[:10].max() == 0 and inside[:, -10:].max() == 0
    assert np.array_equal(inside[20:-20, 20:-20], np.asarray(src)[20:-20, 20:-20])
    outside = run("border", src, width=10, color="red", outside=True)
    assert outside.size == (W + 20, H + 20) and np.asarray(outside)[0, 0].tolist() == [255, 0, 0]
    with pytest.raises(InputError, match="too wide"):
        run("border", src, width=200)


def test_composite_puts_the_second_image_at_the_position_with_its_transparency():
    src = photo()
    logo = PILImage.new("RGBA", (100, 50), (0, 0, 255, 255))
    ImageDraw.Draw(logo).rectangle((0, 0, 49, 49), fill=(0, 0, 0, 0))  # left half transparent
    out = np.asarray(run_with("composite", src, overlay=logo, position="top-right", scale=0.25, margin=0))
    assert out[5, W - 5].tolist() == [0, 0, 255]  # opaque half, at the top right
    assert np.array_equal(out[5, W - 75], np.asarray(src)[5, W - 75])  # transparent half: the photo shows
    assert np.array_equal(out[H - 5], np.asarray(src)[H - 5])  # nothing at the bottom
    faint = arr(run_with("composite", src, overlay=logo, position="top-right", opacity=0.5, margin=0))
    assert 80 < faint[5, W - 5, 2] < 250
    with pytest.raises(InputError, match="overlay"):
        run_with("composite", src)


# -- background ------------------------------------------------------------------------------------------

def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("cx", [0.5, 0.3])
def test_a_person_is_told_from_the_background(cx):
    img, truth = person(cx=cx)
    notes: list[str] = []
    mask = subject_mask(np.asarray(img), notes.append)
    assert iou(mask > 0.5, truth) > 0.9 and not notes


def test_a_central_object_is_told_from_the_background_without_a_face():
    img = photo(noise=2)
    t = PILImage.new("L", (W, H))
    ImageDraw.Draw(t).ellipse((W * 0.35, H * 0.2, W * 0.65, H * 0.85), fill=255)
    truth = np.asarray(t) > 0
    bg = PILImage.fromarray(np.full((H, W, 3), (90, 140, 200), np.uint8))
    bg.paste(img, mask=t)
    assert iou(subject_mask(np.asarray(bg), lambda _m: None) > 0.5, truth) > 0.85


def test_remove_blur_and_replace_the_background_of_a_person():
    img, truth = person()
    src = arr(img)
    cut = run("remove_background", img)
    alpha = np.asarray(cut.getchannel("A"))
    assert cut.mode == "RGBA" and alpha[truth].mean() > 230 and alpha[~truth].mean() < 25
    blurred = arr(run("background_blur", img))
    inner = np.asarray(PILImage.fromarray(truth).filter(ImageFilter.MinFilter(9))) > 0  # away from the edge
    outer = np.asarray(PILImage.fromarray(truth).filter(ImageFilter.MaxFilter(9))) == 0
    assert np.abs(blurred - src)[inner].mean() < 2 and np.abs(blurred - src)[outer].mean() > 1
    edges = lambda a: np.percentile(np.abs(np.diff(a, axis=1)).sum(axis=2)[outer[:, 1:]], 99.5)  # noqa: E731
    assert edges(blurred) < edges(src) * 0.5  # the clutter's sharp edges are soft now
    white = arr(run("replace_background", img, color="white"))
    assert white[outer].mean() > 245 and np.abs(white - src)[inner].mean() < 2
    beach = PILImage.new("RGB", (100, 100), (250, 200, 0))
    onto = arr(run_with("replace_background", img, overlay=beach))
    assert np.abs(onto[outer] - [250, 200, 0]).mean() < 6
    with pytest.raises(InputError, match="colour"):
        run("replace_background", img)


def test_a_given_mask_marks_the_background():
    src = photo()
    mask = PILImage.new("L", src.size, 0)
    ImageDraw.Draw(mask).rectangle((0, 0, W - 1, H // 2 - 1), fill=255)  # top half is "background"
    cut = run_with("remove_background", src, mask=mask)
    alpha = np.asarray(cut.getchannel("A"))
    assert alpha[: H // 2].max() == 0 and alpha[H // 2:].min() == 255


# -- the backend: instruction in, picture and operations out ----------------------------------------------

def test_edit_applies_the_operations_in_order_and_lists_them(tmp_path):
    c = ctx(tmp_path)
    result = classic.edit(c, EditRequest(image=photo(), instruction="make it black and white and crop it square"))
    assert [o["op"] for o in result.operations] == ["grayscale", "crop"]
    assert result.operations[1]["params"]["aspect"] == "square" and "anchor" in result.operations[1]["params"]
    assert result.image.size == (240, 240) and result.resized
    out = arr(result.image)
    assert np.abs(out[..., 0] - out[..., 1]).max() <= 1
    assert any("read by rules" in n for n in c.notes)


def test_edit_keeps_the_size_unless_asked(tmp_path):
    result = classic.edit(ctx(tmp_path), EditRequest(image=photo(), instruction="brighter, warmer and add a vignette"))
    assert result.image.size == (W, H) and not result.resized
    assert [o["op"] for o in result.operations] == ["brightness", "warmth", "vignette"]


def test_what_no_operation_can_do_names_the_backend_that_could(tmp_path):
    with pytest.raises(InputError) as e:
        classic.edit(ctx(tmp_path), EditRequest(image=photo(), instruction="add a dragon"))
    msg = str(e.value)
    assert "dragon" in msg and "diffusers" in msg and "InstructPix2Pix" in msg and "\n" not in msg


@pytest.mark.parametrize("instruction", ["", "   ", "please", "don't change anything"])
def test_an_instruction_that_asks_for_nothing_is_a_one_line_error(tmp_path, instruction):
    with pytest.raises(InputError) as e:
        classic.edit(ctx(tmp_path), EditRequest(image=photo(), instruction=instruction))
    assert "\n" not in str(e.value) and ("empty" in str(e.value) or "asks for no change" in str(e.value))


def test_a_partly_understood_instruction_does_what_it_can_and_says_what_not(tmp_path):
    c = ctx(tmp_path)
    result = classic.edit(c, EditRequest(image=photo(), instruction="add a dragon and make it brighter"))
    assert [o["op"] for o in result.operations] == ["brightness"]
    assert arr(result.image).mean() > arr(photo()).mean() + 5
    note = next(n for n in c.notes if "not understood" in n)
    assert "add a dragon" in note and "diffusers" in note
    plan = classic.understand("add a dragon and make it brighter")
    assert not plan.complete and classic.understand("make it brighter").complete


def test_words_left_over_in_a_clause_are_reported(tmp_path):
    c = ctx(tmp_path)
    classic.edit(c, EditRequest(image=photo(), instruction="make the sky bluer"))
    assert any("'sky'" in n for n in c.notes)


def test_the_mask_is_not_used_once_the_picture_was_moved(tmp_path):
    c = ctx(tmp_path)
    mask = PILImage.new("L", (W, H), 255)
    classic.edit(c, EditRequest(image=photo(), instruction="crop it square and make it black and white", mask=mask))
    assert any("mask was not used for grayscale" in n for n in c.notes)


def test_cancel_stops_between_operations(tmp_path):
    c = ctx(tmp_path)
    c.cancelled.set()
    with pytest.raises(CancelledError):
        classic.edit(c, EditRequest(image=photo(), instruction="sepia"))


def test_other_picture_modes_are_accepted(tmp_path):
    gray = photo().convert("L")
    result = classic.edit(ctx(tmp_path), EditRequest(image=gray, instruction="add a red border"))
    assert result.image.mode == "RGB" and np.asarray(result.image)[0, 0].tolist() == [255, 0, 0]


# -- the parser -----------------------------------------------------------------------------------------------

def test_the_rules_read_the_case_table():
    assert len(CASES) >= 40
    score, wrong = accuracy(parse_rules)
    assert score >= 0.9, wrong


def test_quoted_text_is_kept_verbatim_and_never_read_as_a_command():
    parsed = parse_rules('add the text "Crop, rotate and BLUR" at the top in yellow')
    assert parsed.ops == [{"op": "text", "params": {"text": "Crop, rotate and BLUR", "position": "top", "color": "yellow"}}]


def test_an_llm_is_asked_only_when_chosen(monkeypatch):
    assert configured_llm() is None
    monkeypatch.setenv("CADENZA_LLM", "local")
    assert configured_llm() is None  # the embedded model is not loaded for a few words
    monkeypatch.setenv("CADENZA_LLM", "openai:gpt-4o-mini")
    assert configured_llm() == "openai:gpt-4o-mini"
    monkeypatch.setenv("CADENZA_IMAGE_LLM", "rules")
    assert configured_llm() is None
    monkeypatch.setenv("CADENZA_IMAGE_LLM", "local-small")
    assert configured_llm() == "local-small"


def test_the_llm_reading_is_validated_and_used(tmp_path):
    reply = {"operations": [{"op": "sepia", "params": {"amount": None}},
                            {"op": "crop", "params": {"aspect": "4:5", "box": None, "anchor": None, "zoom": None, "margin": None}}],
             "not_understood": []}

    def check(messages):
        assert "crop" in messages[0].content and messages[1].content == "old-timey portrait crop"
        return reply
    c = ctx(tmp_path)
    with ScriptedChatModel([check]) as llm, image_llm(llm):
        result = classic.edit(c, EditRequest(image=photo(), instruction="old-timey portrait crop"))
    assert [o["op"] for o in result.operations] == ["sepia", "crop"]
    assert result.image.size == (192, 240)
    assert any("read by the LLM" in n for n in c.notes)


def test_an_unusable_llm_answer_falls_back_to_the_rules():
    bad = {"operations": [{"op": "add_dragon", "params": {}}], "not_understood": []}
    out_of_range = {"operations": [{"op": "brightness", "params": {"amount": 7}}], "not_understood": []}
    for reply in (bad, out_of_range, "no json at all"):
        with ScriptedChatModel([reply]) as llm, image_llm(llm):
            parsed = parse_instruction("make it brighter")
        assert parsed.parser == "rules" and parsed.ops[0]["op"] == "brightness"
        assert "not usable" in parsed.notes[0]


def test_what_the_llm_cannot_map_is_an_error_naming_diffusers(tmp_path):
    with ScriptedChatModel([{"operations": [], "not_understood": ["add a dragon"]}]) as llm, image_llm(llm):
        with pytest.raises(InputError, match="diffusers"):
            classic.edit(ctx(tmp_path), EditRequest(image=photo(), instruction="add a dragon"))


def test_the_answer_schema_lists_every_operation_with_every_field():
    schema = answer_schema()
    items = schema["properties"]["operations"]["items"]["anyOf"]
    assert [i["properties"]["op"]["enum"][0] for i in items] == list(OPS)
    for item in items:
        params = item["properties"]["params"]
        assert params["required"] == list(params["properties"]) and params["additionalProperties"] is False
    catalog = image_llm_mod.catalog()
    assert all(f"- {name}:" in catalog for name in OPS)
