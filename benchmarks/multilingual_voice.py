"""Multilingual voice benchmark: how well each offline neural voice speaks languages other than English.

    python benchmarks/multilingual_voice.py                      # kokoro, default voice: es it pt fr de
    python benchmarks/multilingual_voice.py --model hibari --languages es,it
    python benchmarks/multilingual_voice.py --voice jm_kumo --json

Six fixed sentences per language (no numerals) are turned into phonemes by espeak-ng (the bundled
libespeak-ng), spoken by the model, and transcribed back by Whisper base (faster-whisper, the language
given). WER is over all six sentences, on text lowercased, accents and punctuation stripped (so it
measures what was heard, not Whisper's spelling). RTF = synthesis wall time / audio duration.
`--model hibari` feeds the same phonemes to hibari-tts's model (it takes Kokoro's phoneme alphabet).
The WER figures set tts_kokoro.LANGUAGE_WER, which decides the languages the multilingual voice is used for.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
import unicodedata
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SENTENCES = {
    "es": ["El viejo faro está al final del puerto, donde el río se encuentra con el mar.",
           "Durante muchos años, sus guardianes subieron la escalera cada tarde.",
           "Hoy la luz se enciende sola y el edificio es un pequeño museo.",
           "Los visitantes pueden ver las lentes de bronce y los libros de registro.",
           "En invierno el museo cierra temprano, pero la luz sigue girando.",
           "Mi hermana compró pan, queso y fruta en el mercado del pueblo."],
    "it": ["Il vecchio faro si trova alla fine del porto, dove il fiume incontra il mare.",
           "Per molti anni i guardiani hanno salito le scale ogni sera.",
           "Oggi la luce si accende da sola e l'edificio è diventato un piccolo museo.",
           "I visitatori possono vedere le lenti di ottone e i libri di bordo.",
           "In inverno il museo chiude presto, ma la luce continua a girare.",
           "Mia sorella ha comprato pane, formaggio e frutta al mercato del paese."],
    "pt": ["O velho farol fica no fim do porto, onde o rio encontra o mar.",
           "Durante muitos anos, os seus guardas subiram a escada todas as noites.",
           "Hoje a luz acende sozinha e o edifício tornou-se um pequeno museu.",
           "Os visitantes podem ver as lentes de bronze e os livros de registo.",
           "No inverno o museu fecha cedo, mas a luz continua a girar.",
           "A minha irmã comprou pão, queijo e fruta no mercado da vila."],
    "fr": ["Le vieux phare se trouve au bout du port, là où la rivière rencontre la mer.",
           "Pendant de longues années, ses gardiens ont monté l'escalier chaque soir.",
           "Aujourd'hui la lumière s'allume toute seule et le bâtiment est devenu un petit musée.",
           "Les visiteurs peuvent voir les lentilles en laiton et les journaux de bord.",
           "En hiver le musée ferme tôt, mais la lumière continue de tourner.",
           "Ma sœur a acheté du pain, du fromage et des fruits au marché du village."],
    "de": ["Der alte Leuchtturm steht am Ende des Hafens, wo der Fluss das Meer trifft.",
           "Viele Jahre lang stiegen die Wärter jeden Abend die Treppe hinauf.",
           "Heute geht das Licht von selbst an, und das Gebäude ist ein kleines Museum.",
           "Die Besucher können die Linsen aus Messing und die Logbücher sehen.",
           "Im Winter schließt das Museum früh, aber das Licht dreht sich weiter.",
           "Meine Schwester kaufte Brot, Käse und Obst auf dem Markt im Dorf."],
}


def normalise(text: str) -> str:
    """Lowercase, accents and punctuation stripped, elisions split: 'l'édifice' -> 'l edifice'."""
    text = unicodedata.normalize("NFKD", text.lower().replace("ß", "ss"))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


def wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer

    return round(jiwer.wer([normalise(r) for r in refs], [normalise(h) or "-" for h in hyps]), 3)


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def speaker(model: str, voice: str | None):
    """A function (text, language) -> samples at 24 kHz."""
    from cadenza.tools.speech import tts_kokoro

    if model == "hibari":
        from hibari import Hibari

        h = Hibari(threads=2)
        return lambda text, lang: h.from_phonemes(tts_kokoro.to_phonemes(text, lang), 1.0, seed=0)
    m = tts_kokoro._Kokoro(tts_kokoro.model_path())
    return lambda text, lang: tts_kokoro._Speaker(m, voice or tts_kokoro.DEFAULT_VOICE, lang)(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("kokoro", "hibari"), default="kokoro")
    ap.add_argument("--voice", help="a kokoro voice pack (default: tts_kokoro.DEFAULT_VOICE)")
    ap.add_argument("--languages", default=",".join(SENTENCES))
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    ap.add_argument("--keep", help="a folder to keep the WAV files in")
    opts = ap.parse_args()
    from cadenza.tools.speech import transcribe

    say = speaker(opts.model, opts.voice)
    folder = Path(opts.keep or tempfile.mkdtemp(prefix="cadenza-bench-multilingual-"))
    folder.mkdir(parents=True, exist_ok=True)
    from cadenza.tools.speech import tts_kokoro

    voice = (opts.voice or tts_kokoro.DEFAULT_VOICE) if opts.model == "kokoro" else "heart"
    result = {"model": opts.model, "voice": voice, "languages": {}}
    for lang in opts.languages.split(","):
        hyps, synth_s, audio_s = [], 0.0, 0.0
        for i, sentence in enumerate(SENTENCES[lang]):
            t0 = time.perf_counter()
            samples = say(sentence, lang)
            synth_s += time.perf_counter() - t0
            audio_s += len(samples) / 24000
            path = folder / f"{opts.model}-{lang}-{i}.wav"
            write_wav(path, samples, 24000)
            hyps.append(transcribe(media=str(path), language=lang)["text"])
            if not opts.json:
                print(f"{lang} {i}: {hyps[-1]}", flush=True)
        result["languages"][lang] = {"wer": wer(SENTENCES[lang], hyps), "rtf": round(synth_s / audio_s, 3),
                                     "audio_s": round(audio_s, 1)}
        if not opts.json:
            print(f"== {lang}: {result['languages'][lang]}", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
