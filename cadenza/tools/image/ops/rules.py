"""The instruction parser's rules: the words for each operation, and how amounts, directions, positions
and colours are read. parse.py splits the instruction into clauses and runs these, in this order: the
first rules (text, background) read a whole clause, so "add the text 'Bright' in red" is text, not
brightness; "blur the background" is a background blur, not a blur.

A rule is a regular expression and a builder: `builder(match, clause, state)` returns the clause's
operations as [{"op": name, "params": {...}}], or None to let other rules try.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from PIL import ImageColor

from .util import COLOR_ALIASES

# -- words --------------------------------------------------------------------------------------------

I = re.IGNORECASE
# CSS colour names that are more often things ("replace the background with snow" wants a model)
_NOT_COLORS = {"transparent", "snow", "chocolate", "tomato", "salmon", "linen", "orchid", "honeydew", "seashell",
               "moccasin", "wheat", "thistle", "peru", "bisque", "lime", "olive", "coral"}
_COLORS = sorted({*ImageColor.colormap, *COLOR_ALIASES} - _NOT_COLORS, key=len, reverse=True)
COLOR_RE = re.compile(r"(#[0-9a-f]{6}\b|#[0-9a-f]{3}\b|\b(?:" + "|".join(re.escape(c) for c in _COLORS) + r")\b)", I)
UP = r"\b(?:more|increase[sd]?|higher|raise|boost(?:ed)?|up|add|stronger|bump|crank|heighten|extra|plus|enhance|intensify|strengthen|deepen)\b"
DOWN = r"\b(?:less|decrease[sd]?|lower|reduce[sd]?|down|weaker|tone down|cut|lessen|minus|fewer|remove)\b"
SMALL = r"\b(?:not too \w+|slight(?:ly)?|a (?:little )?bit|a little|a tad|a touch|somewhat|subtl[ey]|mild(?:ly)?|gentl[ey]|lightly|softly|small|(?<!more )(?<!less )light(?! blue| green| gray| pink| yellow))\b"
BIG = r"\b(?:much|a lot|lots|very|way|really|significantly|strong(?:ly)?|heav(?:y|ily)|dramatic(?:ally)?|extreme(?:ly)?|super|huge|big|intense|hard|bold)\b"
FILLER = set("""a an the it its it's image photo photograph picture pic shot this that these me my please make
made look looks like and to of with in on at into onto as be is are for by so can you could would should i i'd
we want need give get let lets let's apply do some bit little tad touch just also too then now effect filter
style styled version mode kind sort slightly slight much very really quite somewhat way lot lots more less
rather nice nicely bit whole entire overall all turn convert change set up down but not too
""".split())
# Words that only qualify an operation (its direction, amount, position, colour): never "not understood".
QUALIFIERS = set("""degrees degree deg clockwise counterclockwise counter-clockwise anticlockwise anti-clockwise cw ccw
left right top bottom upper lower center centered middle px wide tall high
width height times x factor percent size sized horizontally vertically horizontal vertical sideways upside upside-down
stops stop ev face head amount strength radius level levels tone tones look feel thin thick fine broad
color colors colour colours large small big tiny huge bold light stretch stretched pad padded letterbox
increase increased decrease decreased raise lower boost reduce reduced higher stronger weaker add extra
""".split())
NEGATION = re.compile(r"^(?:but\s+|and\s+|please\s+)?(?:don'?t|do not|never|no need to|keep|leave|not|"
                       r"without(?!\s+(?:the\s+|a\s+|any\s+)?(?:background|backdrop|bg)))\b", I)
_POSITIONS = [("top-left", r"\b(?:top|upper)[- ]left\b|\bleft[- ]top\b"), ("top-right", r"\b(?:top|upper)[- ]right\b|\bright[- ]top\b"),
              ("bottom-left", r"\b(?:bottom|lower)[- ]left\b|\bleft[- ]bottom\b"),
              ("bottom-right", r"\b(?:bottom|lower)[- ]right\b|\bright[- ]bottom\b|\bcorner\b"),
              ("top", r"\b(?:top|upper|header|above)\b"), ("bottom", r"\b(?:bottom|lower|footer|below|under)\b"),
              ("center", r"\b(?:center(?:ed)?|middle)\b"), ("left", r"\bleft\b"), ("right", r"\bright\b")]


def _has(pattern: str, text: str) -> bool:
    return re.search(pattern, text, I) is not None


def _scale(clause: str) -> float:
    """How strongly: 0.5 for 'a bit', 2 for 'much', else 1."""
    return 0.5 if _has(SMALL, clause) else 2.0 if _has(BIG, clause) else 1.0


def _percent(clause: str) -> float | None:
    m = re.search(r"(\d+(?:\.\d+)?)\s*(?:%|percent\b)", clause, I)
    return float(m.group(1)) / 100 if m else None


def _direction(clause: str, default: int) -> int:
    up, down = re.search(UP, clause, I), re.search(DOWN, clause, I)
    if up and down:  # "less dull, more punch": the first word said decides
        return 1 if up.start() < down.start() else -1
    return 1 if up else -1 if down else default


def _position(clause: str, default: str | None = None) -> str | None:
    return next((name for name, pat in _POSITIONS if _has(pat, clause)), default)


def _color(clause: str) -> str | None:
    m = COLOR_RE.search(clause)
    return m.group(1).lower() if m else None


def _px(clause: str) -> int | None:
    m = re.search(r"(\d+)\s*(?:px|pixels?)\b", clause, I)
    return int(m.group(1)) if m else None


def _amount(clause: str, base: float, limit: float = 1.0) -> float:
    pct = _percent(clause)
    return round(min(limit, pct if pct is not None else base * _scale(clause)), 3)


# -- rules: (pattern, builder); a builder returns the clause's operations or None to pass -------------

@dataclass
class State:
    direction: int = 1  # the last clause's up/down: "increase contrast and saturation"
    quotes: list[str] = field(default_factory=list)


Builder = Callable[[re.Match, str, State], "list[dict] | None"]
RULES: list[tuple[re.Pattern, Builder]] = []


def rule(pattern: str) -> Callable[[Builder], Builder]:
    def add(fn: Builder) -> Builder:
        RULES.append((re.compile(pattern, I), fn))
        return fn
    return add


def op(name: str, **params: Any) -> dict[str, Any]:
    return {"op": name, "params": {k: v for k, v in params.items() if v is not None}}


@rule(r"\bQUOTE(\d+)\b|\b(?:add|write|put|place|insert|type|stamp)\s+(?:the\s+|a\s+|some\s+)?(?:text|caption|title|words?|label)\b"
      r"|\b(?:write|caption it|title it|label it)\s+\S")
def _text(m: re.Match, clause: str, st: State) -> list[dict] | None:
    q = re.search(r"\bQUOTE(\d+)\b", clause)
    if q:
        words = st.quotes[int(q.group(1))]
    else:  # unquoted: what follows 'text' up to a position or colour phrase
        u = re.search(r"\b(?:text|caption|title|words?|label|saying|says|write|caption it|title it|label it)\s+(?:of\s+|:\s*)?"
                      r"(?!(?:the\s+)?(?:text|caption|title|words?)\b)(.+?)(?=\s+(?:at|on|in|to|along|across|with)\b|$)", clause, I)
        if not u:
            return None
        words = u.group(1).strip()
    rest = clause.replace(q.group(0), " ") if q else clause
    watermark = _has(r"\bwatermark", rest)
    size = 0.04 if _has(r"\b(?:small|tiny|little)\b", rest) or watermark else \
        0.18 if _has(r"\b(?:huge|giant|enormous)\b", rest) else 0.11 if _has(r"\b(?:large|big|bold)\b", rest) else None
    opacity = _percent(rest) if _has(r"opacity|opaque", rest) else (0.6 if watermark or _has(r"semi-?transparent|translucent", rest) else None)
    return [op("text", text=words, position=_position(rest, "bottom-right" if watermark else None), size=size,
               font_px=_px(rest), color=_color(rest), opacity=opacity)]


_BG = r"(?:background|backdrop|bg)"


@rule(r"\b(?:blur(?:red|ry)?|soften|defocus)\s+(?:out\s+)?(?:the\s+|its\s+)?" + _BG + r"|\b" + _BG + r"\s+(?:blur|blurred|blurry|out of focus)"
      r"|\bblurr?(?:y|ed)\s+" + _BG + r"|\bbokeh\b|\bportrait mode\b|\bshallow depth|depth of field")
def _background_blur(m: re.Match, clause: str, st: State) -> list[dict]:
    return [op("background_blur", strength=_scale(clause) if _scale(clause) != 1 else None)]


@rule(r"\b(?:remove|delete|erase|drop|get rid of|cut out|take out|take away|strip|lose)\s+(?:the\s+|its\s+|that\s+)?" + _BG +
      r"|\btransparent\s+" + _BG + r"|\b" + _BG + r"\s+(?:to\s+)?transparent|\b(?:no|without)\s+(?:the\s+|a\s+|any\s+)?" + _BG + r"|\b(?:cut out|isolate)\s+(?:the\s+)?(?:subject|person|people|object|product)")
def _remove_background(m: re.Match, clause: str, st: State) -> list[dict]:
    return [op("remove_background")]


@rule(r"\b(?:replace|change|swap|set|make|turn|switch|paint|use)\b.*\b" + _BG + r"\b|\b" + _BG + r"\b.*\b(?:replace|change|swap|to|into)\b"
      r"|\b(?:on|onto|against|with)\s+(?:a|an|the)?\s*\S+\s+" + _BG + r"|\b\S+\s+" + _BG + r"\b")
def _replace_background(m: re.Match, clause: str, st: State) -> list[dict] | None:
    if _has(r"\b(?:second|other|another|overlay|given|2nd)\s+(?:image|picture|photo)\b|\boverlay\b", clause):
        return [op("replace_background")]
    color = _color(clause)
    return [op("replace_background", color=color)] if color else None  # "with a beach": not ours


@rule(r"\b(?:logo|sticker|overlay|second image|other image|second picture|2nd image|composite|superimpose|paste)\b")
def _composite(m: re.Match, clause: str, st: State) -> list[dict]:
    pct = _percent(clause)
    scale = pct if pct is not None and not _has(r"opacity|opaque|transparent", clause) else \
        0.12 if _has(r"\b(?:small|tiny|little)\b", clause) else 0.45 if _has(r"\b(?:large|big)\b", clause) else \
        0.5 if _has(r"\bhalf\b", clause) else None
    opacity = pct if pct is not None and _has(r"opacity|opaque", clause) else \
        0.6 if _has(r"semi-?transparent|translucent|faint", clause) else None
    return [op("composite", position=_position(clause), scale=scale, opacity=opacity)]


_ASPECTS = [(r"\b(\d+(?:\.\d+)?)\s*[:/]\s*(\d+(?:\.\d+)?)\b", None), (r"\bsquare\b", "square"),
            (r"\b(?:story|stories|reel|tiktok|vertical video|phone wallpaper)\b", "9:16"),
            (r"\b(?:widescreen|wide screen|youtube|16 by 9)\b", "16:9"), (r"\b(?:cinemascope|cinematic|anamorphic)\b", "2.39:1"),
            (r"\bportrait\b", "4:5"), (r"\blandscape\b", "3:2")]
_FACE = r"\b(?:on|around|to|at|from)\s+(?:the\s+|her\s+|his\s+|their\s+|my\s+)?(?:face|head)s?\b|\bheadshot|\bhead and shoulders"


@rule(r"\bcrop|\b(?:make|cut|trim)\s+(?:it\s+|the \w+\s+)?(?:into\s+|to\s+)?(?:a\s+)?square\b|\baspect ratio|\btrim\b"
      r"|\b(?:center|centre|focus|zoom)\w*\s+(?:in\s+)?(?:on|around)\s+(?:the\s+|her\s+|his\s+)?face|\bheadshot\b"
      r"|\bzoom(?:ed)?\s+in\b|\b(?:to|as|in)\s+\d+\s*:\s*\d+\b|\b(?:left|right|top|bottom)\s+half\b")
def _crop(m: re.Match, clause: str, st: State) -> list[dict] | None:
    aspect = None
    for pat, name in _ASPECTS:
        a = re.search(pat, clause, I)
        if a:
            aspect = name or f"{a.group(1)}:{a.group(2)}"
            break
    anchor = "face" if _has(_FACE + r"|\bface\b", clause) else None
    half = re.search(r"\b(left|right|top|bottom)\s+half\b", clause, I)
    box = {"left": [0, 0, 0.5, 1], "right": [0.5, 0, 1, 1], "top": [0, 0, 1, 0.5],
           "bottom": [0, 0.5, 1, 1]}[half.group(1).lower()] if half else None
    if anchor is None and not box and aspect:
        side = re.search(r"\b(?:keep(?:ing)?|from|at)\s+(?:the\s+)?(top|bottom|left|right)\b", clause, I)
        anchor = side.group(1).lower() if side else None
    margin = margin_px = None
    if _has(r"\b(?:trim|crop|cut)\b.*\b(?:edges?|sides?|borders?|off)\b", clause) and not (aspect or box or anchor):
        margin_px = _px(clause)
        margin = None if margin_px else min(0.45, _percent(clause) or 0.05 * _scale(clause))
    z = re.search(r"\bzoom(?:ed)?\s+in(?:\s+(?:by\s+)?(\d+(?:\.\d+)?)\s*(x|%)?)?|\b(\d+(?:\.\d+)?)\s*x\s+zoom", clause, I)
    zoom = None
    if z:
        number, unit = z.group(1) or z.group(3), z.group(2)
        zoom = (1 + float(number) / 100 if unit == "%" else float(number)) if number else 1.5
    if not (aspect or box or anchor or margin or margin_px or zoom):
        return None  # "crop it": how is not said; "crop to 512x512" is a resize that crops to fill
    return [op("crop", aspect=aspect, box=box, anchor=anchor, margin=margin, margin_px=margin_px, zoom=zoom)]


@rule(r"\b(?:resize|rescale|scale|shrink|downsize|downscale|upscale|enlarge|smaller|bigger|larger|thumbnail|halve|double(?!\s+exposure))\b"
      r"|\bhalf\s+(?:the\s+|its\s+)?size\b|\btwice\s+(?:as\s+)?(?:big|large)\b"
      r"|\b\d+\s*(?:x|by)\s*\d+\b|\b\d+\s*(?:px|pixels?)\s*(?:wide|tall|high|across)|\b(?:width|height)\s+(?:of\s+|to\s+)?\d+|\b\d{3,4}p\b")
def _resize(m: re.Match, clause: str, st: State) -> list[dict] | None:
    size = re.search(r"\b(\d+)\s*(?:px\s*)?(?:x|by)\s*(\d+)\b", clause, I)
    if size:
        fit = "stretch" if _has(r"\bstretch|\bsquash|\bdistort", clause) else \
            "pad" if _has(r"\bpad|\bletterbox|\bfit (?:inside|within|in)\b|\bcontain|\bwhole picture|\bwithout cropping", clause) else None
        return [op("resize", width=int(size.group(1)), height=int(size.group(2)), fit=fit)]
    w = re.search(r"\b(\d+)\s*(?:px|pixels?)?\s*(?:wide|across|in width)\b|\bwidth\s+(?:of\s+|to\s+)?(\d+)", clause, I)
    h = re.search(r"\b(\d+)\s*(?:px|pixels?)?\s*(?:tall|high|in height)\b|\bheight\s+(?:of\s+|to\s+)?(\d+)|\b(\d{3,4})p\b", clause, I)
    if w or h:
        width = int(next(g for g in w.groups() if g)) if w else None
        height = int(next(g for g in h.groups() if g)) if h else None
        return [op("resize", width=width, height=height)]
    factor = re.search(r"\b(?:by|to)\s+(?:a\s+factor\s+of\s+)?(\d+(?:\.\d+)?)\s*(x|times)?(?!\s*(?:px|pixels|%))\b|\b(\d+(?:\.\d+)?)\s*(?:x|times)\b", clause, I)
    pct = _percent(clause)
    if pct is not None:
        return [op("resize", scale=pct)]
    px = _px(clause) or (int(factor.group(1)) if factor and factor.group(1) and float(factor.group(1)) >= 16 else None)
    if px:
        return [op("resize", long_side=px)]
    if factor:
        return [op("resize", scale=float(factor.group(1) or factor.group(3)))]
    if _has(r"\bthumbnail\b", clause):
        return [op("resize", long_side=256)]
    if _has(r"\b(?:half|halve)\b", clause):
        return [op("resize", scale=0.5)]
    if _has(r"\b(?:double|twice)\b", clause):
        return [op("resize", scale=2.0)]
    if _has(r"\b(?:smaller|shrink|downsize|downscale)\b", clause):
        return [op("resize", scale=0.75 if _scale(clause) < 1 else 0.5)]
    if _has(r"\b(?:bigger|larger|enlarge|upscale)\b", clause):
        return [op("resize", scale=1.25 if _scale(clause) < 1 else 2.0)]
    return None


@rule(r"\b(?:rotate|rotated|rotation|turn|tilt|straighten|spin)\b")
def _rotate(m: re.Match, clause: str, st: State) -> list[dict] | None:
    deg = re.search(r"(-?\d+(?:\.\d+)?)\s*(?:degrees?|deg\b|°)", clause, I) or \
        re.search(r"\b(?:rotate|turn|tilt|by)\s+(?:it\s+)?(?:by\s+)?(-?\d+(?:\.\d+)?)\b(?!\s*(?:px|%|x))", clause, I)
    ccw = _has(r"counter[- ]?clockwise|anti[- ]?clockwise|\bccw\b|\bleft\b", clause)
    if deg:
        degrees = float(deg.group(1))
    elif _has(r"upside[- ]down|\bhalf (?:a )?turn\b", clause):
        degrees = 180.0
    elif ccw or _has(r"clockwise|\bcw\b|\bright\b|sideways|quarter", clause) or m.group(0).lower().startswith("rotat"):
        degrees = 90.0
    else:
        return None  # "turn it into a sketch": not a rotation
    return [op("rotate", degrees=-degrees if ccw else degrees)]


@rule(r"\b(?:flip(?:ped)?|mirror(?:ed)?|reflect(?:ed)?)\b")
def _flip(m: re.Match, clause: str, st: State) -> list[dict]:
    vertical = _has(r"vertical|upside[- ]down|top to bottom|top-to-bottom|\bover\b", clause)
    return [op("flip", direction="vertical" if vertical else "horizontal")]


@rule(r"\bvintage\b|\bretro\b|\bold[- ](?:photo|photograph|picture|fashioned|school|timey)\b|\bantique\b|\baged\b")
def _vintage(m: re.Match, clause: str, st: State) -> list[dict]:
    return [op("sepia", amount=0.8), op("vignette", amount=0.4)]


@rule(r"\bcartoon\w*|\bcomic(?:[- ]book)?\b|\btoon\w*\b|\bpop art\b")
def _cartoon(m: re.Match, clause: str, st: State) -> list[dict]:
    return [op("cartoon")]


@rule(r"\b(?:sketch\w*|pencil|charcoal|line drawing|drawing|drawn)\b(?!\s+of\b)")  # "a drawing of a cat": a model's job
def _sketch(m: re.Match, clause: str, st: State) -> list[dict]:
    return [op("sketch", color=True if _has(r"colou?r(?:ed)?\s+pencil|\bcolou?r(?:ed|ful)?\s+sketch|in colou?r", clause) else None)]


@rule(r"\bwater[- ]?colou?r\w*|\baquarelle\b|\bgouache\b")
def _watercolor(m: re.Match, clause: str, st: State) -> list[dict]:
    return [op("watercolor")]


@rule(r"\b(?:oil(?:[- ]?paint(?:ing|ed)?)?|painterly|impasto|painting|painted)\b(?!\s+of\b)")
def _oil(m: re.Match, clause: str, st: State) -> list[dict]:
    return [op("oil", brush=2.0 if _has(r"\b(?:broad|thick|big|large|heavy)\b", clause) else None)]


@rule(r"\bsepia\b|\bbrown ?tone")
def _sepia(m: re.Match, clause: str, st: State) -> list[dict]:
    return [op("sepia", amount=0.5 if _scale(clause) < 1 else None)]


@rule(r"\bblackandwhite\b|\bmonochrome\b|\bmono\b|\bgr[ae]y[- ]?scale\w*|\bnoir\b|\bcolou?rless\b|\bno colou?rs?\b"
      r"|\b(?:remove|drain|strip)\s+(?:the\s+|all\s+)?colou?rs?\b|\b(?:fully|completely|totally)\s+desaturat\w*|\bdesaturat\w*\s+(?:fully|completely)"
      r"|\b(?:make|turn|convert)\s+(?:it\s+)?(?:to\s+|into\s+)?gr[ae]y(?:[- ]?scale)?\b")
def _grayscale(m: re.Match, clause: str, st: State) -> list[dict]:
    return [op("grayscale", amount=0.5 if _has(r"\b(?:partly|partially|half)\b", clause) else None)]


@rule(r"\bvignett\w*|\bdark(?:en|er)?\s+(?:the\s+)?(?:corners|edges)\b|\bdark(?:er)?\s+(?:corners|edges)\b")
def _vignette(m: re.Match, clause: str, st: State) -> list[dict]:
    return [op("vignette", amount=_amount(clause, 0.5))]


@rule(r"\b(?:remove|reduce|less|fix|no|undo)\s+(?:the\s+|some\s+)?blur\w*|\bun-?blur\w*|\bde-?blur\w*|\bsharp(?:en\w*|er|ness)?\b"
      r"|\bcrisp(?:er|en)?\b|\bmore detail(?:ed)?\b|\bclearer\b|\bless blurry\b")
def _sharpen(m: re.Match, clause: str, st: State) -> list[dict]:
    if _has(r"\b(?:less|reduce|lower|decrease)\s+(?:the\s+)?sharp", clause):  # "less sharp": softer
        return [op("blur", strength=0.5)]
    return [op("sharpen", amount=_scale(clause) if _scale(clause) != 1 else None)]


@rule(r"\bde-?nois\w*|\b(?:remove|reduce|less|clean(?:\s+up)?|get rid of|fix|smooth(?: out)?|lower)\s+(?:the\s+|some\s+|all\s+)?(?:noise|grain\w*|noisiness)"
      r"|\bnoise reduction\b|\bless (?:noisy|grainy)\b|\btoo (?:noisy|grainy)\b|\bnoisy\b|\bgrainy\b")
def _denoise(m: re.Match, clause: str, st: State) -> list[dict]:
    return [op("denoise", strength=_scale(clause) if _scale(clause) != 1 else None)]


@rule(r"\bblur\w*|\bsoften\b|\bsofter\b|\bout of focus\b|\bgaussian\b|\bdefocus\w*|\bsoft focus\b")
def _blur(m: re.Match, clause: str, st: State) -> list[dict]:
    return [op("blur", radius=float(_px(clause)) if _px(clause) else None,
               strength=_scale(clause) * (2 if _has(r"\bblurr?y\b", clause) else 1) if _scale(clause) != 1 else None)]


@rule(r"\b(?:auto[- ]?(?:enhance|contrast|levels|fix|correct\w*|adjust\w*)|enhance|improve|normali[sz]e)\b"
      r"|\bfix (?:the )?(?:colou?rs|levels|lighting|tones?)\b")
def _auto(m: re.Match, clause: str, st: State) -> list[dict] | None:
    if _has(r"\benhance\b.*\b(?:contrast|colou?rs?|brightness|saturation|sharp)", clause):
        return None  # "enhance the contrast": the property rules read it
    return [op("auto_contrast")]


@rule(r"(?<!double )\bexpos(?:ure|ed?)\b|\b-?\+?\d+(?:\.\d+)?\s*(?:stops?|ev)\b|\b(?:under|over)[- ]?exposed\b")
def _exposure(m: re.Match, clause: str, st: State) -> list[dict]:
    stops = re.search(r"([+-]?\d+(?:\.\d+)?)\s*(?:stops?|ev)\b", clause, I) or \
        re.search(r"\bexposure\s+(?:by\s+|of\s+|to\s+)?([+-]?\d+(?:\.\d+)?)\b(?!\s*%)", clause, I)
    if stops:
        value = float(stops.group(1))
        if not stops.group(1).startswith(("+", "-")):
            value *= _direction(clause, 1)
    elif _has(r"\bunder[- ]?exposed\b", clause):
        value = 0.7
    elif _has(r"\bover[- ]?exposed\b", clause):
        value = -0.7
    else:
        value = 0.5 * _scale(clause) * _direction(clause, st.direction)
    return [op("exposure", stops=max(-4.0, min(4.0, value)))]


def _adjust(name: str, base: float, up: str, down: str) -> Builder:
    """A rule body for brightness, contrast, saturation, warmth: the direction from its own words
    ('darker'), else from up/down words in the clause, else the previous clause's."""
    def build(m: re.Match, clause: str, st: State) -> list[dict]:
        signed = re.search(r"([+-])\s*\d+(?:\.\d+)?\s*(?:%|percent)", clause)
        sign = -1 if _has(down, m.group(0)) else 1 if _has(up, m.group(0)) else \
            (1 if signed.group(1) == "+" else -1) if signed else _direction(clause, st.direction)
        st.direction = sign
        return [op(name, amount=sign * _amount(clause, base))]
    return build


_BRIGHT_UP = r"bright(?:er|en)|lighten|lighter|too dark|lift"
_BRIGHT_DOWN = r"dark(?:er|en)|dimm?(?:er)?|too bright|moodier"
rule(r"\b(?:" + _BRIGHT_UP + "|" + _BRIGHT_DOWN + r"|brightness|(?:more|less)\s+light)\b")(_adjust("brightness", 0.2, _BRIGHT_UP, _BRIGHT_DOWN))
rule(r"\b(?:contrast\w*|punch(?:y|ier)?|flatter)\b")(_adjust("contrast", 0.25, r"punch|contrasty", r"flatter"))
_SAT_UP = r"^saturate$|vivid|vibran|colou?rful|pop\b|rich|boost|more|intens|strong"
_SAT_DOWN = r"desaturat|muted|mute|washed|dull|pale|faded|less|tone down|reduce"
rule(r"\b(?:saturat\w*|desaturat\w*|vivid\w*|vibran\w*|colou?rful|pop|richer|muted|washed[- ]out|dull(?:er)?|paler|faded)\b"
     r"|\b(?:boost|more|richer|stronger|intensify|increase|less|reduce|mute|tone down|weaker)\s+(?:the\s+)?colou?rs?\b"
     r"|\bcolou?rs?\s+(?:pop|richer|stronger|more vivid)\b")(
    _adjust("saturation", 0.3, _SAT_UP, _SAT_DOWN))
_WARM = r"\bwarm(?:er|ing)?\b|golden|sunn|cozier|cosier"
_COOL = r"\bcool(?:er|ing)?\b|cold|blu(?:e|er|ish)\b|icy|chill"
rule(r"\b(?:warm(?:er|th|ing)?|golden|sunnier|cozier|cosier|(?<!look )(?<!looks )cool(?:er|ing)?|cold(?:er)?|bluer|bluish|icy|chillier)\b")(
    _adjust("warmth", 0.3, _WARM, _COOL))


@rule(r"\b(?:border|frame[ds]?|framing|matte|passe-partout)\b")
def _border(m: re.Match, clause: str, st: State) -> list[dict]:
    thickness = 0.01 if _has(r"\b(?:thin|fine|narrow|hairline)\b", clause) else \
        0.06 if _has(r"\b(?:thick|wide|fat|heavy|big)\b", clause) else None
    pct = _percent(clause)
    return [op("border", width=_px(clause), thickness=pct if pct is not None else thickness, color=_color(clause),
               outside=True if _has(r"\boutside\b|\bexpand|\bextend|\bpad\b|\bgrow|\benlarg", clause) else None)]
