"""Audio out of and into video files, and subtitles onto them, with PyAV. The picture is copied
untouched, except where subtitles are burned into it (then it is re-encoded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from ...errors import MediaError
from ...media import Audio, Subtitles, Video, open_media
from ..base import Backend, ToolContext, tool
from ..speech.languages import code, iso3
from .edit import PYDUB, AudioFormat, _save
from .io import load_segment, samples_of, write_audio_stream
from .subtitle_track import SUBTITLE_CODEC, Burner, add_cue_track, copy_stream, read_cues, remux

# Audio codec per output container: webm wants Opus, the rest take AAC.
_AUDIO_CODEC = {".webm": "libopus", ".mkv": "aac", ".mp4": "aac", ".mov": "aac", ".m4v": "aac"}
SILENCE_RATE = 48000  # the sound of a silent video, when asked for
PYAV = [Backend("pyav", "PyAV (bundled FFmpeg) for muxing and encoding, Pillow for burned-in text",
                requires=("av", "PIL"))]


@tool(backends=PYDUB, version="2")
def extract_audio(video: Video, ctx: ToolContext, format: AudioFormat = "wav",
                  missing: Literal["error", "silence"] = "error") -> Audio:
    """Take the sound track out of a video.

    Args:
        video: the video
        format: output audio format
        missing: a video with no sound track is an error, or gives silence as long as its picture (noted)
    """
    from pydub import AudioSegment

    if video.sample_rate is None:
        if missing == "error":
            raise MediaError(f"no audio track in {video.path}")
        seconds = _picture_duration(video) or video.duration or 0.0
        ctx.note(f"{video.path.name} has no sound track: {seconds:.1f} s of silence instead")
        return _save(AudioSegment.silent(round(seconds * 1000), frame_rate=SILENCE_RATE), ctx, "." + format)
    return _save(load_segment(video), ctx, "." + format)


@tool(backends=PYDUB, version="4")
def replace_audio(video: Video, audio: Audio, ctx: ToolContext, keep_original: bool = False,
                  language: str | None = None, original_language: str | None = None,
                  subtitles: Subtitles | None = None,
                  subtitles_mode: Literal["soft", "burn", "none"] = "soft",
                  original_first: bool = False, title: str | None = None,
                  audio_description: bool = False) -> Video:
    """Put a new sound track on a video: the picture is copied untouched (unless subtitles are burned
    into it: then it is re-encoded), the audio is cut or padded with silence to the video's length;
    optionally the video's own sound is kept as a second track, and subtitles are added.

    Args:
        video: the video whose picture is kept
        audio: the new sound track
        keep_original: also keep the video's own sound, copied untouched, as a second audio track
        language: the new track's language (e.g. 'es'), written as its ISO 639-2 tag ('spa'); also the subtitles' tag
        original_language: the language of the kept original track (e.g. 'en'), written the same way
        subtitles: SRT or WebVTT subtitles to put on the video
        subtitles_mode: soft: a selectable subtitle track (the picture copied); burn: drawn into the picture (re-encoded); none: left out
        original_first: with keep_original, the video's own sound stays the first (default) track and the new one comes second
        title: the new track's title, as players list it (e.g. 'Audio description')
        audio_description: the new track describes the picture for blind and low-vision viewers (marked so for players)
    """
    import av
    from pydub import AudioSegment

    new_tag = _language_tag(language, ctx, "the new audio track")
    old_tag = _language_tag(original_language, ctx, "the original audio track")
    cues = read_cues(subtitles.path) if subtitles is not None and subtitles_mode != "none" else []
    seg = load_segment(audio)
    picture_seconds = _picture_duration(video) or video.duration
    if picture_seconds:
        want_ms = round(picture_seconds * 1000)
        seg = seg[:want_ms] if len(seg) >= want_ms else seg + AudioSegment.silent(
            want_ms - len(seg), frame_rate=seg.frame_rate).set_channels(seg.channels)
    suffix = video.path.suffix.lower() if video.path.suffix.lower() in _AUDIO_CODEC else ".mp4"
    out_path: Path = ctx.output_path(suffix)
    codec = _AUDIO_CODEC[suffix]
    rate = 48000 if codec == "libopus" else seg.frame_rate
    seg = seg.set_frame_rate(rate)
    layout = "stereo" if seg.channels == 2 else "mono"
    try:
        with open_media(video.path, f"video {video.path.name}") as vin, av.open(str(out_path), "w") as vout:
            vin_stream = vin.streams.video[0]
            burner = Burner(vin_stream, vout, suffix, cues, ctx, video.path.name) \
                if cues and subtitles_mode == "burn" else None
            copied = {} if burner else {vin_stream.index: copy_stream(vout, vin_stream)}
            own = vin.streams.audio[0] if keep_original and vin.streams.audio else None
            if keep_original and own is None:
                ctx.note(f"keep_original: {video.path.name} has no sound of its own; one audio track written")
            o_out = None
            if own is not None and original_first:  # output streams are numbered in the order they are added
                o_out = copy_stream(vout, own)
            a_out = vout.add_stream(codec, rate=rate, layout=layout)
            if own is not None and not original_first:
                o_out = copy_stream(vout, own)
            if o_out is not None:
                if old_tag:  # else its own language tag (copy_stream)
                    o_out.metadata["language"] = old_tag
                copied[own.index] = o_out
            if new_tag:
                a_out.metadata["language"] = new_tag
            if title and title.strip():
                a_out.metadata["title"] = " ".join(title.split())
                if suffix in (".mp4", ".mov", ".m4v"):  # MP4 players list a track by its handler name
                    a_out.metadata["handler_name"] = a_out.metadata["title"]
            _mark(a_out, o_out, original_first, audio_description)
            if cues and subtitles_mode == "soft":
                add_cue_track(vout, suffix, cues, new_tag)
            elif subtitles is not None and subtitles_mode != "none" and not cues:
                ctx.note(f"{subtitles.path.name} has no cues: no subtitles added")
            remux(vin, vout, copied, ctx, burner)
            write_audio_stream(vout, a_out, samples_of(seg), rate, layout)
    except av.error.FFmpegError as e:
        raise MediaError(f"cannot write video {out_path.name}: {getattr(e, 'strerror', None) or e}") from e
    return Video.from_path(out_path)


@tool(backends=PYAV)
def add_subtitles(video: Video, subtitles: Subtitles, ctx: ToolContext, burn: bool = False,
                  language: str | None = None) -> Video:
    """Add subtitles to a video: a selectable subtitle track (the picture copied) or burned into the picture (re-encoded).

    The sound tracks, and subtitle tracks the video already has, are copied untouched. A video in a
    container without subtitle tracks (.avi, .mpg, .ts) is written as .mkv. Subtitles with no cues
    (e.g. of a video without speech) add nothing: the video is copied as it is.

    Args:
        video: the video
        subtitles: the subtitles, SRT or WebVTT
        burn: draw the text into the picture, so every player shows it (the picture is re-encoded); otherwise add a track the viewer can switch on
        language: the subtitles' language (e.g. 'es'), written as the track's ISO 639-2 tag ('spa')
    """
    import av

    tag = _language_tag(language, ctx, "the subtitle track")
    cues = read_cues(subtitles.path)
    in_suffix = video.path.suffix.lower()
    suffix = in_suffix if in_suffix in SUBTITLE_CODEC else ".mkv"  # Matroska holds any codec
    out_path: Path = ctx.output_path(suffix)
    if not cues:
        ctx.note(f"{subtitles.path.name} has no cues: the video is copied without subtitles")
    try:
        with open_media(video.path, f"video {video.path.name}") as vin, av.open(str(out_path), "w") as vout:
            vin_stream = vin.streams.video[0]
            burner = Burner(vin_stream, vout, suffix, cues, ctx, video.path.name) if cues and burn else None
            copied = {} if burner else {vin_stream.index: copy_stream(vout, vin_stream)}
            kept = list(vin.streams.audio) + (list(vin.streams.subtitles) if suffix == in_suffix else [])
            for s in kept:
                copied[s.index] = copy_stream(vout, s)
            if cues and not burn:
                add_cue_track(vout, suffix, cues, tag)
            remux(vin, vout, copied, ctx, burner)
    except av.error.FFmpegError as e:
        raise MediaError(f"cannot write video {out_path.name}: {getattr(e, 'strerror', None) or e}") from e
    return Video.from_path(out_path)


def _mark(new: Any, original: Any, original_first: bool, audio_description: bool) -> None:
    """Dispositions, so players pick the right track: the first audio track is the default one; an
    audio description is marked visual_impaired and descriptions (MP4 keeps both, Matroska the first)."""
    from av.stream import Disposition

    first, second = (original, new) if original_first and original is not None else (new, original)
    if audio_description or original_first:
        first.disposition = Disposition.default | (first.disposition & ~Disposition.default)
        if second is not None:
            second.disposition = second.disposition & ~Disposition.default
    if audio_description:
        new.disposition = new.disposition | Disposition.visual_impaired | Disposition.descriptions


def _language_tag(language: str | None, ctx: ToolContext, what: str) -> str | None:
    """The ISO 639-2 tag for a track's metadata ('es', 'Spanish', 'spa' -> 'spa'); None (noted) when
    no tag is known for it, so an unusual language leaves the track untagged rather than failing."""
    if language is None or not language.strip():
        return None
    tag = iso3(language)
    if tag is None:
        c = code(language)
        tag = c if len(c) == 3 and c.isalpha() else None
    if tag is None:
        ctx.note(f"no ISO 639-2 code known for language {language!r}: {what} is left untagged")
    return tag


VIDEO_AUDIO_TOOLS = [extract_audio, replace_audio, add_subtitles]


def _picture_duration(video: Video) -> float | None:
    """Length of the picture alone (a container may hold audio that runs past the last frame)."""
    with open_media(video.path, f"video {video.path.name}") as c:
        v = c.streams.video[0]
        if v.duration and v.time_base:
            return float(v.duration * v.time_base)
        if v.frames and v.average_rate:
            return float(v.frames / v.average_rate)
    return None
