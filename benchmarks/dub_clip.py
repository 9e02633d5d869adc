"""The dubbing benchmark's clip: the script's sentences spoken by Cadenza's own offline voices, trimmed,
joined by pauses and put on a mute video (cached between runs), and the in-process tool calls and WAV
reading the benchmark's measurements share. benchmarks/dub.py describes the clip and the benchmark.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# (English, Spanish): everyday sentences, no digits; the Spanish is a careful human translation.
SCRIPT = [
    ("Good morning, and welcome to our small town.", "Buenos días y bienvenidos a nuestro pequeño pueblo."),
    ("The market opens early every Saturday.", "El mercado abre temprano todos los sábados."),
    ("My sister sells fresh bread and cheese there.", "Mi hermana vende allí pan fresco y queso."),
    ("People come from the nearby villages to buy vegetables.",
     "La gente viene de los pueblos cercanos a comprar verduras."),
    ("In the afternoon, the square is quiet again.", "Por la tarde, la plaza vuelve a estar tranquila."),
    ("Children play football near the old church.", "Los niños juegan al fútbol cerca de la vieja iglesia."),
    ("The bus to the city leaves at nine o'clock.", "El autobús a la ciudad sale a las nueve."),
    ("Please buy your ticket before you get on.", "Por favor, compra tu billete antes de subir."),
    ("The weather has been very warm this week.", "Esta semana ha hecho mucho calor."),
    ("We often have dinner outside on the terrace.", "A menudo cenamos fuera, en la terraza."),
    ("My grandfather tells stories about the sea.", "Mi abuelo cuenta historias sobre el mar."),
    ("He worked on a fishing boat for many years.", "Trabajó en un barco de pesca durante muchos años."),
    ("Tomorrow we are going to visit the museum.", "Mañana vamos a visitar el museo."),
    ("Thank you for listening, and see you soon.", "Gracias por escuchar, y hasta pronto."),
]
PAUSES = [1.0, 1.3, 0.8, 1.5, 1.1, 0.9, 1.4, 1.2]  # seconds of silence after each sentence, cycled
LEAD_S = 0.6  # silence before the first sentence
TAIL_S = 0.6  # at least this much silence after the last
TRIM_MARGIN_S = 0.05  # of the TTS's own leading and trailing silence, this much is kept
MIN_SENTENCES = 12
CLIP_S = 60.0  # padded with silence to this length
SILENCE_DB = -50.0  # fit.SILENCE_DB


# -- running tools in-process (clip making, scoring) --------------------------------------------
def run_tool(tool, backend: str | None, workdir: Path, **kwargs):
    from cadenza.tools.args import convert_args
    from cadenza.tools.base import ToolContext
    from cadenza.workspace import Workspace

    ws = Workspace.for_run(tempfile.mkdtemp(dir=workdir), kwargs)
    ctx = ToolContext(workspace=ws, step_id=tool.name, backend=tool.get_backend(backend).name)
    return tool.invoke(convert_args(tool, kwargs, ws, where=tool.name), ctx)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        rate, ch, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
        data = w.readframes(n)
    if width != 2:
        raise ValueError(f"{path}: {8 * width}-bit WAV, expected 16-bit")
    x = np.frombuffer(data, "<i2").astype(np.float32) / 32768
    return (x.reshape(-1, ch).mean(axis=1) if ch > 1 else x), rate


def write_wav(path: Path, x: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.clip(np.rint(x * 32767), -32768, 32767).astype("<i2").tobytes())


# -- the clip ---------------------------------------------------------------------------------
def source_voice(lang: str) -> tuple[str, str]:
    """(backend, voice) that speaks the source: the default English voice; for other languages the
    Kokoro multilingual voice voices_for_language lists (else its first voice)."""
    from cadenza.tools.speech.speak import voices_for_language

    voices = voices_for_language(lang)
    if not voices:
        raise SystemExit(f"no offline voice speaks {lang} here")
    if lang != "en":
        for b, v, _ in voices:
            if b == "kokoro":
                return b, v
    return voices[0][0], voices[0][1]


def make_clip(pairs: list[tuple[str, str]], lang: str, workdir: Path, min_sentences: int, clip_s: float) -> dict:
    """The clip (cached): the source sentences of `pairs` spoken, each trimmed to its sound (the TTS's
    own edge silence cut, TRIM_MARGIN_S kept), joined by pauses, on a mute video. With `clip_s`: as
    many sentences as fit in `clip_s` at the shortest pause (never fewer than `min_sentences`), the
    pauses stretched within 0.8-1.5 s to fill it, the rest padded with silence at the end. Without:
    every sentence, PAUSES as they are. Returns {path, seconds, onsets, ends, sentences, ...}."""
    backend, voice = source_voice(lang)
    texts = [p[0] if lang == "en" else p[1] for p in pairs]
    key = hashlib.sha256(json.dumps([texts, lang, backend, voice, PAUSES, LEAD_S, clip_s, min_sentences,
                                     TRIM_MARGIN_S, 2]).encode()).hexdigest()
    folder = Path(tempfile.gettempdir()) / "cadenza-bench-dub-clips" / key[:16]
    meta_path = folder / "meta.json"
    if meta_path.exists() and (folder / "clip.mp4").exists():
        meta = json.loads(meta_path.read_text())
        return {**meta, "path": str(folder / "clip.mp4"), "cached": True}
    t0 = time.perf_counter()
    from cadenza.tools.audio.video import replace_audio
    from cadenza.tools.speech import speak

    sys.path.insert(0, str(ROOT / "tests"))
    import media_factory as mf

    folder.mkdir(parents=True, exist_ok=True)
    parts, rate = [], None
    for text in texts:
        res = run_tool(speak, backend, workdir, text=text, voice=voice, language=lang)
        x, r = read_wav(Path(res.path if hasattr(res, "path") else res["result"].path))
        if rate is not None and r != rate:
            raise SystemExit(f"the voice changed rate ({rate} -> {r})")
        rate = r
        loud = np.flatnonzero(np.abs(x) > 10 ** (SILENCE_DB / 20))
        m = int(TRIM_MARGIN_S * r)
        parts.append(x[max(0, loud[0] - m):loud[-1] + 1 + m] if loud.size else x)
    n = len(parts)
    if clip_s:
        while n > min_sentences and LEAD_S + sum(len(p) for p in parts[:n]) / rate + 0.8 * (n - 1) + TAIL_S > clip_s:
            n -= 1
    parts, texts = parts[:n], texts[:n]
    speech_s = sum(len(p) for p in parts) / rate
    pauses = [PAUSES[i % len(PAUSES)] for i in range(n - 1)]
    if clip_s and pauses:  # stretch or shrink the pattern (each pause within 0.8-1.5 s) to fill clip_s
        room = clip_s - LEAD_S - speech_s - TAIL_S
        lo, hi = 0.0, 10.0
        for _ in range(60):
            k = (lo + hi) / 2
            lo, hi = (k, hi) if sum(min(1.5, max(0.8, p * k)) for p in pauses) < room else (lo, k)
        pauses = [min(1.5, max(0.8, p * lo)) for p in pauses]
    track = [np.zeros(int(LEAD_S * rate), np.float32)]
    bounds = []
    pos = len(track[0])
    for i, x in enumerate(parts):
        loud = np.flatnonzero(np.abs(x) > 10 ** (SILENCE_DB / 20))
        bounds.append(((pos + loud[0]) / rate, (pos + loud[-1] + 1) / rate) if loud.size else (pos / rate, pos / rate))
        track.append(x)
        pos += len(x)
        if i < len(pauses):
            gap = np.zeros(int(pauses[i] * rate), np.float32)
            track.append(gap)
            pos += len(gap)
    total = max(clip_s, pos / rate + TAIL_S)
    track.append(np.zeros(int(round(total * rate)) - pos, np.float32))
    audio = np.concatenate(track)
    write_wav(folder / "speech.wav", audio, rate)
    mf.make_video(folder / "mute.mp4", seconds=len(audio) / rate, with_audio=False)
    out = replace_audio(video=str(folder / "mute.mp4"), audio=str(folder / "speech.wav"))
    os.replace(out.path, folder / "clip.mp4")
    silences = [round(bounds[i + 1][0] - bounds[i][1], 3) for i in range(len(bounds) - 1)]
    meta = {"seconds": round(len(audio) / rate, 3), "speech_s": round(speech_s, 3), "sentences": n,
            "words": sum(len(t.split()) for t in texts), "onsets": [round(a, 4) for a, _ in bounds],
            "ends": [round(b, 4) for _, b in bounds], "silence_between_s": [min(silences), max(silences)],
            "trailing_silence_s": round(total - bounds[-1][1], 3),
            "backend": backend, "voice": voice, "made_s": round(time.perf_counter() - t0, 2)}
    meta_path.write_text(json.dumps(meta))
    return {**meta, "path": str(folder / "clip.mp4"), "cached": False}
