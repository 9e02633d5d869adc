"""Language names and codes: tools take 'de', 'de-DE', 'deu' or 'German' alike."""

from __future__ import annotations

# ISO 639-1 -> (ISO 639-3, English name), for the languages people ask for most
LANGUAGES = {
    "en": ("eng", "English"), "de": ("deu", "German"), "fr": ("fra", "French"), "es": ("spa", "Spanish"),
    "it": ("ita", "Italian"), "pt": ("por", "Portuguese"), "nl": ("nld", "Dutch"), "sv": ("swe", "Swedish"),
    "da": ("dan", "Danish"), "no": ("nor", "Norwegian"), "fi": ("fin", "Finnish"), "pl": ("pol", "Polish"),
    "cs": ("ces", "Czech"), "ru": ("rus", "Russian"), "uk": ("ukr", "Ukrainian"), "tr": ("tur", "Turkish"),
    "el": ("ell", "Greek"), "ar": ("ara", "Arabic"), "he": ("heb", "Hebrew"), "hi": ("hin", "Hindi"),
    "zh": ("cmn", "Chinese"), "ja": ("jpn", "Japanese"), "ko": ("kor", "Korean"), "vi": ("vie", "Vietnamese"),
    "id": ("ind", "Indonesian"), "th": ("tha", "Thai"), "hu": ("hun", "Hungarian"), "ro": ("ron", "Romanian"),
    "ca": ("cat", "Catalan"), "sw": ("swh", "Swahili"),
}
_BY_NAME = {name.lower(): code for code, (_, name) in LANGUAGES.items()}
_BY_ISO3 = {iso3: code for code, (iso3, _) in LANGUAGES.items()}


def code(language: str) -> str:
    """'de-DE' -> 'de', 'German' -> 'de', 'deu' -> 'de'; anything else lowercased as given."""
    s = language.strip().lower().replace("_", "-")
    base = s.split("-")[0]
    return _BY_NAME.get(s) or _BY_ISO3.get(base) or base


# The languages Whisper transcribes: its tokenizer's codes (Javanese is 'jw' there).
WHISPER_CODES = (
    "af", "am", "ar", "as", "az", "ba", "be", "bg", "bn", "bo", "br", "bs", "ca", "cs", "cy", "da", "de", "el",
    "en", "es", "et", "eu", "fa", "fi", "fo", "fr", "gl", "gu", "ha", "haw", "he", "hi", "hr", "ht", "hu", "hy",
    "id", "is", "it", "ja", "jw", "ka", "kk", "km", "kn", "ko", "la", "lb", "ln", "lo", "lt", "lv", "mg", "mi",
    "mk", "ml", "mn", "mr", "ms", "mt", "my", "ne", "nl", "nn", "no", "oc", "pa", "pl", "ps", "pt", "ro", "ru",
    "sa", "sd", "si", "sk", "sl", "sn", "so", "sq", "sr", "su", "sv", "sw", "ta", "te", "tg", "th", "tk", "tl",
    "tr", "tt", "uk", "ur", "uz", "vi", "yi", "yo", "zh", "yue",
)
_WHISPER_ALIASES = {"jv": "jw", "iw": "he", "in": "id"}  # ISO 639-1 and retired codes -> Whisper's


def whisper_code(language: str) -> str | None:
    """Whisper's code for a language given as 'de', 'de-DE', 'deu' or 'German'; None when it has none."""
    c = code(language)
    c = _WHISPER_ALIASES.get(c, c)
    return c if c in WHISPER_CODES else None


def name(language: str) -> str:
    """'de' -> 'German'; an unknown code is returned as given."""
    c = code(language)
    return LANGUAGES[c][1] if c in LANGUAGES else language


def iso3(language: str) -> str | None:
    c = code(language)
    return LANGUAGES[c][0] if c in LANGUAGES else None
