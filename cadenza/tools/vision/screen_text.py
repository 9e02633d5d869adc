"""On-screen text of a video as it streams by: caption_video hands `ScreenText.sample` a decoded frame every
`text_every` seconds; each distinct line comes out with the time it was first and last seen.

Reading every sample with RapidOCR would cost ~60-250 ms a frame, so a sample is read only where it changed:

- each sample is compared, on a 160 px grey copy, with the reference: the last picture read (updated only
  where it was read again, so a slow fade still adds up to a change);
- nothing changed (no pixel moved by more than `_DIFF` grey levels): the lines read before are seen again;
- small parts changed (a moving shape, a caption box appearing): only those parts, each widened to whole
  lines read before that it touches, are read, and only when their strong edges look like letters (`textish`:
  the edge of a shape that moved does not); the lines elsewhere are kept;
- else the whole frame is read, unless describe_offline.text_likelihood says it has no text-like edges.

So a title held for 5 s is read once. Lines are matched to the text already seen by their letters (case,
spaces and punctuation ignored; a reading within `_SIMILAR` of a known one is the same line, as OCR misreads a
letter now and then); a line not seen for `_GAP` samples ends, and seen again later starts a new segment.

What a whole-frame read found is handed back (`FrameText`): when caption_video also captions that very frame,
the offline describer takes it instead of reading the frame again.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import describe_offline as offline

OCR_SIDE = 640  # frames are read at most this long: 2.3x cheaper than 960 px; text 16 px tall at 720p stays readable
SMALL_SIDE = 160  # the copy compared between samples
_DIFF = 24  # grey levels: a pixel of the small copy that moved more than this changed
_CHANGED_MIN = 2  # changed small pixels below this count as noise
_PARTIAL_MAX = 0.4  # a changed area up to this share of the frame is read alone
_MARGIN = 3  # small pixels added round a changed area
_STROKES = 3  # a changed part is read when its strong edges form this many separate marks (letters)
_SIMILAR = 0.8  # difflib ratio of two readings of the same line
_GAP = 3  # samples a line may go unseen and continue (a missed reading)


@dataclass
class FrameText:
    """The lines read in a whole frame, as describe_offline.read_text gave them ([] when it was skipped for
    having no text-like edges), and the size the frame was read at."""
    size: tuple[int, int]  # width, height
    lines: list[offline.TextLine]


@dataclass
class TextTrack:
    text: str
    key: str
    first: float
    last: float
    confidence: float


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


def _size(w: int, h: int, side: int) -> tuple[int, int]:
    scale = min(1.0, side / max(w, h))
    return max(2, int(round(w * scale)) // 2 * 2), max(2, int(round(h * scale)) // 2 * 2)


class ScreenText:
    def __init__(self, ctx: Any, every: float):
        self.ctx, self.every = ctx, every
        self.tracks: list[TextTrack] = []  # every segment, in order of first sight
        self._open: list[TextTrack] = []  # segments still running
        self._ref: np.ndarray | None = None  # small grey reference (int16)
        self._lines: list[tuple[str, float, tuple[int, int, int, int]]] = []  # (text, confidence, small-px box)
        self.reads = self.samples = 0  # OCR calls, frames sampled: for the benchmark

    # ------------------------------------------------------------------ sampling
    def sample(self, frame, t: float) -> FrameText | None:
        """Reads what changed in `frame` (see the module's doc); what was read when the whole frame was, else None."""
        self.samples += 1
        sw, sh = _size(frame.width, frame.height, SMALL_SIDE)
        small = frame.reformat(width=sw, height=sh, format="gray").to_ndarray().astype(np.int16)
        whole = None
        if self._ref is None or self._ref.shape != small.shape:
            whole = self._read(frame, small, None)
        else:
            changed = np.abs(small - self._ref) > _DIFF
            if int(changed.sum()) >= _CHANGED_MIN:
                boxes = self._changed_boxes(changed)
                area = sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes)
                whole = self._read(frame, small, boxes if area <= _PARTIAL_MAX * small.size else None)
        self._seen(t)
        return whole

    def _changed_boxes(self, changed: np.ndarray) -> list[tuple[int, int, int, int]]:
        """x0, y0, x1, y1 (small pixels) round each changed area, widened to the lines read before that it
        touches; overlapping ones merged."""
        import cv2

        h, w = changed.shape
        grown = cv2.dilate(changed.astype(np.uint8), np.ones((2 * _MARGIN + 1, 2 * _MARGIN + 1), np.uint8))
        n, _, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
        boxes = [(int(x), int(y), int(x + bw), int(y + bh)) for x, y, bw, bh, _ in stats[1:n]]
        boxes += [b for _, _, b in self._lines if any(_overlap(b, c) for c in boxes)]  # a line touched: whole
        merged = True
        while merged:
            merged = False
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    if _overlap(boxes[i], boxes[j]):
                        a, b = boxes[i], boxes.pop(j)
                        boxes[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                        merged = True
                        break
                if merged:
                    break
        return [(max(0, b[0]), max(0, b[1]), min(w, b[2]), min(h, b[3])) for b in boxes]

    def _read(self, frame, small: np.ndarray, boxes: list | None) -> FrameText | None:
        """Read the whole frame (`boxes` None: what was read is returned) or the parts in `boxes`, keeping the
        lines read before elsewhere."""
        ow, oh = _size(frame.width, frame.height, OCR_SIDE)
        rgb = frame.reformat(width=ow, height=oh, format="rgb24").to_ndarray()
        if boxes is None:
            self._ref = small
            read = self._ocr(rgb) if self._likely(rgb) else []
            self._lines = self._small_lines(read, small.shape, (0, 0), (ow, oh))
            return FrameText(size=(ow, oh), lines=read)
        sh, sw = small.shape
        fx, fy = ow / sw, oh / sh
        lines = [ln for ln in self._lines if not any(_overlap(ln[2], b) for b in boxes)]
        self._ref = self._ref.copy()
        for box in boxes:
            x0, y0 = int(box[0] * fx), int(box[1] * fy)
            x1, y1 = int(np.ceil(box[2] * fx)), int(np.ceil(box[3] * fy))
            part = np.ascontiguousarray(rgb[y0:y1, x0:x1])
            if part.size and self._likely(part) and textish(part):
                lines += self._small_lines(self._ocr(part), small.shape, (x0, y0), (ow, oh))
            self._ref[box[1]:box[3], box[0]:box[2]] = small[box[1]:box[3], box[0]:box[2]]
        self._lines = lines
        return None

    @staticmethod
    def _likely(rgb: np.ndarray) -> bool:
        import cv2

        g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return offline.text_likelihood(g) >= offline.TEXT_LIKELIHOOD_MIN

    def _ocr(self, rgb: np.ndarray) -> list[offline.TextLine]:
        self.reads += 1
        with offline._model(self.ctx, offline.OCR_KEY, offline.load_ocr) as engine:
            return offline.read_text(engine, rgb)

    @staticmethod
    def _small_lines(lines: list[offline.TextLine], small_shape, origin: tuple[int, int], full: tuple[int, int]):
        """(text, confidence, box in small-copy pixels) of `lines` read in a frame of size `full`, or in a part
        of it at `origin`."""
        h, w = small_shape
        fw, fh = full
        sx, sy = w / fw, h / fh
        out = []
        for ln in lines:
            if len(_key(ln.text)) < 2:  # a lone mark read off a shape's edge
                continue
            x, y, bw, bh = ln.box
            x, y = x + origin[0], y + origin[1]
            out.append((ln.text, ln.confidence, (int(x * sx), int(y * sy), int(np.ceil((x + bw) * sx)),
                                                  int(np.ceil((y + bh) * sy)))))
        return out

    # ------------------------------------------------------------------ tracking
    def _seen(self, t: float) -> None:
        matched: set[int] = set()
        for text, conf, _ in self._lines:
            key = _key(text)
            track = next((tr for tr in self._open if id(tr) not in matched and tr.key == key), None)
            if track is None:
                track = max((tr for tr in self._open if id(tr) not in matched),
                            key=lambda tr: difflib.SequenceMatcher(None, tr.key, key).ratio(), default=None)
                if track is not None and difflib.SequenceMatcher(None, track.key, key).ratio() < _SIMILAR:
                    track = None
            if track is None:
                track = TextTrack(text=text, key=key, first=t, last=t, confidence=conf)
                self.tracks.append(track)
                self._open.append(track)
            elif conf > track.confidence:  # keep the clearest reading
                track.text, track.key, track.confidence = text, key, conf
            track.last = t
            matched.add(id(track))
        self._open = [tr for tr in self._open if id(tr) in matched or t - tr.last <= _GAP * self.every + 1e-6]

    def segments(self, end: float) -> list[tuple[str, float, float, float]]:
        """(text, first seen, last seen, until) for each segment in order of first sight; `until` is the sample
        after the last one it was seen in (the video's end at most)."""
        return [(tr.text, round(tr.first, 3), round(tr.last, 3),
                 round(min(end, max(tr.first, tr.last + self.every)), 3)) for tr in self.tracks]


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def textish(rgb: np.ndarray) -> bool:
    """Whether a changed picture part may hold text, by its strong edges (3x3 max - min >= 40, as
    text_likelihood): `_STROKES` or more separate marks (letters), or one mark shaped like a word whose letters
    touch (at least 8 px tall, wider than tall, a fifth or more of its box on edges). The edge of a shape that
    moved makes one or two marks, a thin line or a curve, and is not read."""
    import cv2

    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    edges = (cv2.morphologyEx(g, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) >= 40).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(edges, connectivity=8)
    marks = [st for st in stats[1:n] if st[cv2.CC_STAT_AREA] >= 4]
    if len(marks) >= _STROKES:
        return True
    return any(h >= 8 and w >= 1.2 * h and area >= 0.2 * w * h for _, _, w, h, area in marks)
