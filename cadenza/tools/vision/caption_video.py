"""caption_video: what a video shows, scene by scene, what is written on it and what is said, from one
streaming decode pass.

One pass of PyAV over the picture feeds three consumers, frame by frame, and holds no more than a few
downscaled frames at any time, so memory does not grow with the video's length:

- `SceneDetector` (scenes.py): the cuts, exactly as detect_scenes finds them;
- `ScreenText` (screen_text.py): a frame every `text_every` seconds, read by RapidOCR where it changed;
- `FramePicker` (below): the frames to caption, one from the middle of each scene, and in a scene longer than
  `every` one from the middle of each `every`-second stretch of it (a last stretch shorter than half of that is
  left out: each moment is then within `every` seconds of a captioned frame). It keeps candidate frames of the
  stretch under way, downscaled, at most `_MAX_CANDIDATES` (spaced wider as the stretch grows), and picks the
  one nearest the middle once the stretch ends (at a cut, at the video's end, or `every` seconds on).

Captioned frames go to the chosen backend (common.py) in batches: the frames of one scene together with
`scene=True` (a model that takes video describes them as one clip), single frames of short scenes batched
together. A captioned frame that `ScreenText` read whole goes with what it read, so the offline describer does not
read it again. The speech is then transcribed by the transcribe tool, a minute of sound at a time (video_speech.py).
Scenes, descriptions and on-screen text are timed by the frames' own timestamps (stream start subtracted),
the same clock as extract_frame and detect_scenes.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from typing import Annotated, Any

from ...errors import BackendUnavailableError, InputError, MediaError, ToolError
from ...media import Subtitles, Video, open_media
from ..base import ToolContext, tool
from ..speech.segments import Segment
from ..speech.subtitles import render_srt, split_segment
from ..speech.transcribe import _whisper_language
from ..types import PathOrName, Range
from .backends import CAPTION_BACKENDS
from .common import Caption, CaptionRequest, SceneCaption, VideoCaptions
from .scenes import SceneDetector, _first_line, frame_time, stream_offset, trim_heap, video_end
from .screen_text import FrameText, ScreenText
from .video_speech import transcribe_video

CAPTION_SIDE = 640  # captioned frames are downscaled to at most this long (the models take 224-448 px)
_MAX_CANDIDATES = 16  # candidate frames held for the stretch under way
_FIRST_SPACING = 0.2  # seconds between candidates at the start of a stretch
BATCH = {"transformers": 8}  # frames a captioning request may carry, by backend (others: one at a time)
_CHECK_EVERY = 25  # decoded frames between cancellation checks
_MAX_CHANGES = 3  # later frames' descriptions added to a scene's
TRIM_SECONDS = 30.0  # of video between two trim_heap calls


class FramePicker:
    """Chooses the frames to caption as the video streams by (see the module docstring). `emit(scene, time,
    image)` receives each chosen frame, in time order."""

    def __init__(self, every: float, emit):
        self.every, self.emit = every, emit
        self.scene = 0
        self.chunk_start = 0.0
        self.scene_frames = 0
        self.cands: list[tuple[float, Any]] = []  # (time, PIL image)
        self.spacing = _FIRST_SPACING

    def offer(self, frame, t: float) -> None:
        while t >= self.chunk_start + self.every - 1e-6:  # a whole stretch of a long scene has gone by
            end = self.chunk_start + self.every
            self._close(end)
            self.chunk_start = end
        if not self.cands or t >= self.cands[-1][0] + self.spacing - 1e-6:
            w, h = frame.width, frame.height
            scale = min(1.0, CAPTION_SIDE / max(w, h))
            self.cands.append((t, frame.reformat(width=max(2, round(w * scale) // 2 * 2),
                                                 height=max(2, round(h * scale) // 2 * 2), format="rgb24").to_image()))
            if len(self.cands) > _MAX_CANDIDATES:
                self.cands = self.cands[::2]
                self.spacing *= 2

    def cut(self, c: float) -> None:
        later = [x for x in self.cands if x[0] >= c]
        self.cands = [x for x in self.cands if x[0] < c]
        self._close(c)
        self.scene += 1
        self.chunk_start, self.scene_frames = c, 0
        self.cands, self.spacing = later, _FIRST_SPACING

    def finish(self, end: float) -> None:
        self._close(end)

    def _close(self, end: float) -> None:
        cands, self.cands, self.spacing = self.cands, [], _FIRST_SPACING
        if not cands or (self.scene_frames and end - self.chunk_start < self.every / 2):
            return
        mid = (self.chunk_start + end) / 2
        t, img = min(cands, key=lambda x: abs(x[0] - mid))
        self.scene_frames += 1
        self.emit(self.scene, t, img)


class Captioner:
    """Sends chosen frames to a captioning backend in batches; `results` holds (time, Caption) in time order.
    `text_read` holds what the screen-text reader read in whole frames, by frame time, until a frame at or after
    that time is captioned."""

    def __init__(self, ctx: ToolContext, backend: str, question: str | None, model: str | None):
        self.ctx, self.module = ctx, CAPTION_BACKENDS[backend]
        self.question, self.model = question, model
        self.batch = BATCH.get(backend, 1)
        self.pending: list[tuple[int, float, Any, list | None]] = []  # (scene, time, image, text read in it)
        self.results: list[tuple[float, Caption]] = []
        self.text_read: dict[float, FrameText] = {}

    def add(self, scene: int, t: float, img) -> None:
        self.pending.append((scene, t, img, self._read_in(t, img)))
        if len(self.pending) >= self.batch:
            self.flush()

    def _read_in(self, t: float, img) -> list | None:
        """The lines read in this very frame (its time, at its size), or None. Frames come in time order: the
        readings of frames up to this one are no longer needed."""
        read = self.text_read.get(t)
        for seen in [k for k in self.text_read if k <= t]:
            del self.text_read[seen]
        return read.lines if read is not None and read.size == getattr(img, "size", None) else None

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        scenes: dict[int, list] = {}
        for item in pending:
            scenes.setdefault(item[0], []).append(item)
        singles = [g[0] for g in scenes.values() if len(g) == 1]
        groups = [(g, True) for g in scenes.values() if len(g) > 1]
        if singles:
            groups.append((singles, len(singles) == 1))
        for group, one_scene in groups:
            self.ctx.check_cancelled()
            request = CaptionRequest(images=[img for _, _, img, _ in group], question=self.question, model=self.model,
                                     scene=one_scene, text_read=[read for *_, read in group])
            caps = self.module.caption(self.ctx, request)
            if len(caps) != len(group):
                raise ToolError(f"caption_video: the {self.module.BACKEND.name} backend returned {len(caps)} "
                                f"captions for {len(group)} frames")
            self.results.extend((t, c) for (_, t, _, _), c in zip(group, caps))
        self.results.sort(key=lambda x: x[0])


# ---------------------------------------------------------------------------------------------- the pass
@dataclasses.dataclass
class _Pass:
    spans: list[tuple[float, float]]
    captions: list[tuple[float, Caption]]
    texts: list[tuple[str, float, float, float]]  # (text, first seen, last seen, until)
    end: float


def _stream(video: Video, ctx: ToolContext, captioner: Captioner, every: float, text_every: float,
            threshold: float, min_scene_seconds: float) -> _Pass:
    import av

    label = f"video {video.path.name}"
    detector = SceneDetector(threshold, min_scene_seconds)
    picker = FramePicker(every, captioner.add)
    reader = ScreenText(ctx, text_every)
    try:
        with open_media(video.path, label) as container:
            if not container.streams.video:
                raise MediaError(f"no video track in {label}")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            offset = stream_offset(stream)
            next_text, next_trim, n = 0.0, TRIM_SECONDS, 0
            for frame in container.decode(stream):
                n += 1
                if n % _CHECK_EVERY == 0:
                    ctx.check_cancelled()
                t = frame_time(frame, offset)
                t = detector.next_time() if t is None else t
                cut = detector.feed(frame, t)
                if cut is not None:
                    picker.cut(cut)
                if t >= next_text - 1e-6:
                    read = reader.sample(frame, t)
                    if read is not None:
                        captioner.text_read[t] = read
                    next_text = (int(t / text_every + 1e-6) + 1) * text_every
                picker.offer(frame, t)
                if t >= next_trim:
                    trim_heap()
                    next_trim += TRIM_SECONDS
            if not detector.started:
                raise MediaError(f"cannot read {label}: no frame could be decoded")
            end = video_end(container, stream, detector.last_time)
            _check_whole(container, stream, detector.last_time, label)
    except (MediaError, InputError):
        raise
    except (av.error.FFmpegError, ValueError) as e:
        raise MediaError(f"cannot decode {label}: {getattr(e, 'strerror', None) or _first_line(e)}") from e
    picker.finish(end)
    captioner.flush()
    return _Pass(detector.spans(end), captioner.results, reader.segments(end), end)


def _check_whole(container, stream, last_time: float, label: str) -> None:
    """A file cut short decodes without an error up to where it stops: compare with the length it declares
    (the video track's own; the container's only when there is no sound track, which may run longer)."""
    declared = None
    if stream.duration and stream.time_base:
        declared = float(stream.duration * stream.time_base)
    elif container.duration and not container.streams.audio:
        declared = container.duration / 1_000_000
    frame = 1 / float(stream.average_rate) if stream.average_rate else 0.0
    if declared and last_time + frame < declared - max(1.0, 0.1 * declared):
        raise MediaError(f"cannot read all of {label}: its picture stops at {last_time + frame:.1f} s of the "
                         f"{declared:.1f} s it declares (a truncated file?)")


# ---------------------------------------------------------------------------------------------- wording
_CONFIDENCE = re.compile(r"\s*\(\d+(?:\.\d+)?\)")


def _plain(text: str) -> str:
    """A description without the offline backend's label confidences, for comparing and summing up."""
    return _CONFIDENCE.sub("", text).strip()


def clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def describe_scene(start: float, end: float, captions: list[tuple[float, Caption]]) -> str:
    """The caption of the frame nearest the scene's middle, then those of other frames that say something else,
    with their times."""
    if not captions:
        return ""
    mid = (start + end) / 2
    first_t, first = min(captions, key=lambda x: abs(x[0] - mid))
    said = {_plain(first.text).casefold()}
    out = [first.text.strip()]
    for t, c in captions:
        key = _plain(c.text).casefold()
        if t == first_t or not key or key in said or len(out) > _MAX_CHANGES:
            continue
        said.add(key)
        out.append(f"At {clock(t)}: {c.text.strip()}")
    return " ".join(out)


def summarise(duration: float, scenes: list[SceneCaption], texts: list[str], transcript: str | None) -> str:
    """A template: length and scenes, the first scenes' descriptions, the text shown, the first words said."""
    n = len(scenes)
    out = [f"A {clock(duration)} video in {n} scene{'s' if n != 1 else ''}."]
    shown = list(dict.fromkeys(_plain(s.description).split(". ")[0].rstrip(".") for s in scenes if s.description))
    if shown:
        more = f"; and {len(shown) - 3} more" if len(shown) > 3 else ""
        out.append("It shows " + "; ".join(s[:1].lower() + s[1:] for s in shown[:3]) + more + ".")
    if texts:
        more = f" and {len(texts) - 5} more" if len(texts) > 5 else ""
        out.append("Text on screen: " + ", ".join(f"'{t}'" for t in texts[:5]) + more + ".")
    if transcript:
        words = transcript.split()
        quote = " ".join(words[:20]) + ("..." if len(words) > 20 else "")
        out.append(f"It begins with the words \"{quote}\"" + ("" if quote[-1] in ".!?" else "."))
    elif transcript == "":
        out.append("No speech is heard.")
    return " ".join(out)


SUMMARY_SYSTEM = """You summarise a video you cannot see from what was found in it: each scene's description
(written by an image captioner from one or more frames), the text shown on screen, and what is said. Use only
these facts; never add people, places, actions or text they do not state. Write two or three plain sentences.
Answer with one JSON object: {"text": "<your sentences>"}"""
SUMMARY_MAX_CHARS = 800


def summarise_with_llm(model: Any, duration: float, scenes: list[SceneCaption], texts: list[str],
                       transcript: str | None) -> str:
    """The configured LLM's summary from the findings; raises when its answer is not usable."""
    import json

    from langchain_core.messages import HumanMessage, SystemMessage

    from ...llm.chat import complete_json, get_chat_model

    facts = {"length": clock(duration), "scenes": len(scenes),
             "descriptions": [f"{clock(s.start)}-{clock(s.end)}: {_plain(s.description)[:240]}" for s in scenes[:40]],
             "on_screen_text": texts[:30], "speech": (transcript or "")[:1500] or None}
    schema = {"type": "object", "additionalProperties": False, "required": ["text"],
              "properties": {"text": {"type": "string", "maxLength": SUMMARY_MAX_CHARS}}}
    data, _ = complete_json(get_chat_model(model), [SystemMessage(SUMMARY_SYSTEM),
                                                    HumanMessage("Facts: " + json.dumps(facts, ensure_ascii=False))],
                            schema)
    text = data.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > SUMMARY_MAX_CHARS:
        raise ValueError('the answer is not {"text": "<two or three sentences>"}')
    return " ".join(text.split())


def _summary(ctx: ToolContext, duration, scenes, texts, transcript) -> str:
    """The template, or the LLM's summary when one was chosen on purpose (compose.configured_llm)."""
    from .compose import configured_llm

    template = summarise(duration, scenes, texts, transcript)
    model = configured_llm()
    if model is None or not scenes:
        return template
    try:
        return summarise_with_llm(model, duration, scenes, texts, transcript)
    except (AssertionError, KeyboardInterrupt):  # a test model's broken script is the test's failure
        raise
    except Exception as e:  # a provider error, a bad answer: the template still says what was found
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        ctx.note(f"caption_video: the LLM's summary was not usable ({why[:160]}): template summary used")
        return template


# ---------------------------------------------------------------------------------------------- the tool
def _choose_backend(ctx: ToolContext, model: str | None) -> str:
    if model is not None:  # a model named is a transformers model, whichever backend was best here
        missing = [m for m in ("transformers", "torch") if importlib.util.find_spec(m) is None]
        if missing:
            raise InputError(f"caption_video: model {model!r} needs {' and '.join(missing)} "
                             f"(pip install 'cadenza[gpu-vision]')")
        return "transformers"
    return ctx.backend if ctx.backend in CAPTION_BACKENDS else caption_video.get_backend().name


@tool(backends=[m.BACKEND for m in CAPTION_BACKENDS.values()])
def caption_video(video: Video, ctx: ToolContext, question: str | None = None,
                  every: Annotated[float, Range(1, 600)] = 10.0,
                  text_every: Annotated[float, Range(0.2, 10)] = 0.5,
                  threshold: Annotated[float, Range(1, 100)] = 27.0,
                  min_scene_seconds: Annotated[float, Range(0, 60)] = 0.6,
                  transcribe: bool = True, language: str | None = None, srt: bool = False,
                  model: PathOrName | None = None) -> VideoCaptions:
    """Describe a video: a time-coded description of each scene, a short summary, the on-screen text with its times and the transcript of its speech.

    Args:
        video: the video
        question: a question to answer about each scene instead of describing it (needs a vision-language model)
        every: in a scene longer than this many seconds, caption a frame at least this often
        text_every: read on-screen text every this many seconds
        threshold: how large a change between two frames is a cut (as detect_scenes); lower finds more scenes
        min_scene_seconds: the shortest scene kept
        transcribe: also transcribe the speech of the sound track
        language: the spoken language as an ISO code such as 'en' (default: detect it)
        srt: also write the scene descriptions as SRT subtitles
        model: a vision-language or captioning model (a Hugging Face id or a folder); default: the best backend here
    """
    backend = _choose_backend(ctx, model)
    name = video.path.name
    if question and backend == "offline":
        ctx.note("the offline captioning backend describes frames but cannot answer questions: "
                 "each scene is described instead")
    if transcribe and video.sample_rate:
        _whisper_language(language)  # an unknown language is refused before any work
    seen = _stream(video, ctx, Captioner(ctx, backend, question, model), every, text_every, threshold,
                   min_scene_seconds)
    transcript, speech = None, []
    if transcribe and video.sample_rate:
        try:
            said = transcribe_video(video, ctx, language)
            transcript, speech = said.text, list(said.segments)
        except BackendUnavailableError as e:  # no speech recogniser installed: the picture is still described
            ctx.note(f"no transcript of {name}: {e}")
    elif transcribe:
        ctx.note(f"{name} has no sound track: no transcript")

    scenes = []
    for a, b in seen.spans:
        caps = [(t, c) for t, c in seen.captions if a <= t < b or (t >= b and b == seen.end)]
        scenes.append(SceneCaption(start=a, end=b, description=describe_scene(a, b, caps),
                                   text=list(dict.fromkeys(x for x, s, e, _ in seen.texts if s < b and e >= a)),
                                   frame_times=[round(t, 3) for t, _ in caps]))
    for s in scenes:
        if not s.description:
            ctx.note(f"caption_video: no description for the scene at {clock(s.start)} of {name} (an empty answer)")
    # one a scene; a scene the model said nothing of is left out (a blank cue helps no reader or voice)
    descriptions = [Segment(start=s.start, end=s.end, text=s.description) for s in scenes if s.description]
    lines = list(dict.fromkeys(x for x, *_ in seen.texts))
    screen = [Segment(start=s, end=e, text=x) for x, s, _, e in seen.texts]
    subtitles = None
    if srt:
        path = ctx.output_path(".srt")
        path.write_text(render_srt([c for s in descriptions for c in split_segment(s, 42, 2)]), encoding="utf-8")
        subtitles = Subtitles.from_path(path)
    return VideoCaptions(scenes=scenes, descriptions=descriptions,
                         summary=_summary(ctx, seen.end, scenes, lines, transcript), transcript=transcript,
                         speech=speech, screen_text=screen, text="\n".join(lines), subtitles=subtitles)
