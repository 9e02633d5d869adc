"""Instructions and the operations they should become: the parser's test table, reusable by a benchmark
(rules vs an LLM). `matches(case, ops, unknown)` scores one reading; `accuracy(parse)` scores a parser.

Each case: (instruction, expected operations, expected "not understood"). An expected operation is its
name, or (name, params that must be present): numbers of 2 or more (degrees, pixels) must be equal; smaller
ones (amounts, fractions) need the same sign and to be within a factor of 2, since "a bit brighter" has no
single right amount. Expected "not understood": True (something must be reported), False (nothing may be).
"""

from __future__ import annotations

from typing import Any, Callable

Expected = str | tuple[str, dict[str, Any]]

CASES: list[tuple[str, list[Expected], bool]] = [
    # colour
    ("make it black and white", ["grayscale"], False),
    ("convert to b&w", ["grayscale"], False),
    ("monochrome please", ["grayscale"], False),
    ("make it brighter", [("brightness", {"amount": 0.2})], False),
    ("a bit darker", [("brightness", {"amount": -0.1})], False),
    ("brighten it by 30%", [("brightness", {"amount": 0.3})], False),
    ("much darker", [("brightness", {"amount": -0.4})], False),
    ("make it brighter but not too much", [("brightness", {"amount": 0.1})], False),
    ("increase the contrast", [("contrast", {"amount": 0.25})], False),
    ("less contrast", [("contrast", {"amount": -0.25})], False),
    ("more saturated", [("saturation", {"amount": 0.3})], False),
    ("make the colors pop", [("saturation", {"amount": 0.3})], False),
    ("desaturate it a little", [("saturation", {"amount": -0.15})], False),
    ("increase the exposure by 1 stop", [("exposure", {"stops": 1})], False),
    ("the photo is underexposed", [("exposure", {"stops": 0.7})], False),
    ("warmer", [("warmth", {"amount": 0.3})], False),
    ("make it cooler", [("warmth", {"amount": -0.3})], False),
    ("sepia", ["sepia"], False),
    ("give it a vintage look", ["sepia", "vignette"], False),
    ("auto enhance", ["auto_contrast"], False),
    # filters
    ("blur it", ["blur"], False),
    ("blur by 5 px", [("blur", {"radius": 5})], False),
    ("sharpen", ["sharpen"], False),
    ("make it sharper", ["sharpen"], False),
    ("remove the noise", ["denoise"], False),
    ("reduce the grain", ["denoise"], False),
    ("add a vignette", ["vignette"], False),
    ("darken the corners", ["vignette"], False),
    # styles
    ("make it look like a cartoon", ["cartoon"], False),
    ("turn it into a pencil sketch", ["sketch"], False),
    ("colored pencil drawing", [("sketch", {"color": True})], False),
    ("oil painting", ["oil"], False),
    ("make it a watercolour", ["watercolor"], False),
    # geometry
    ("crop it square", [("crop", {"aspect": "square"})], False),
    ("make it square", [("crop", {"aspect": "square"})], False),
    ("crop to 16:9", [("crop", {"aspect": "16:9"})], False),
    ("crop square, centered on the face", [("crop", {"aspect": "square", "anchor": "face"})], False),
    ("center on the face", [("crop", {"anchor": "face"})], False),
    ("crop to the left half", [("crop", {"box": [0, 0, 0.5, 1]})], False),
    ("trim 10% off the edges", [("crop", {"margin": 0.1})], False),
    ("crop 20 px from each side", [("crop", {"margin_px": 20})], False),
    ("resize to 800 px wide", [("resize", {"width": 800})], False),
    ("make it 512x512", [("resize", {"width": 512, "height": 512})], False),
    ("resize to 1920x1080 and stretch", [("resize", {"width": 1920, "height": 1080, "fit": "stretch"})], False),
    ("resize to 1024 pixels", [("resize", {"long_side": 1024})], False),
    ("half the size", [("resize", {"scale": 0.5})], False),
    ("scale it to 50%", [("resize", {"scale": 0.5})], False),
    ("rotate 90 degrees clockwise", [("rotate", {"degrees": 90})], False),
    ("rotate left", [("rotate", {"degrees": -90})], False),
    ("turn it upside down", [("rotate", {"degrees": 180})], False),
    ("rotate by 15°", [("rotate", {"degrees": 15})], False),
    ("mirror", [("flip", {"direction": "horizontal"})], False),
    ("flip it vertically", [("flip", {"direction": "vertical"})], False),
    # overlay
    ('add the text "Hello" at the bottom in white', [("text", {"text": "Hello", "position": "bottom", "color": "white"})], False),
    ("write 'Happy birthday!' at the top in big red letters", [("text", {"text": "Happy birthday!", "position": "top", "color": "red"})], False),
    ('add a caption "Summer, 2024" in the top left corner', [("text", {"text": "Summer, 2024", "position": "top-left"})], False),
    ("add a 20 px black border", [("border", {"width": 20, "color": "black"})], False),
    ("add a thin white frame", [("border", {"color": "white", "thickness": 0.01})], False),
    ("put the logo in the top right corner", [("composite", {"position": "top-right"})], False),
    ("overlay the second image at the bottom left, 30% wide", [("composite", {"position": "bottom-left", "scale": 0.3})], False),
    # background
    ("blur the background", ["background_blur"], False),
    ("portrait mode", ["background_blur"], False),
    ("remove the background", ["remove_background"], False),
    ("make the background transparent", ["remove_background"], False),
    ("replace the background with blue", [("replace_background", {"color": "blue"})], False),
    ("put it on a white background", [("replace_background", {"color": "white"})], False),
    ("use the second image as the background", ["replace_background"], False),
    # several at once
    ("make it black and white and crop it square", ["grayscale", ("crop", {"aspect": "square"})], False),
    ("crop to 4:5, then sharpen and add a vignette", [("crop", {"aspect": "4:5"}), "sharpen", "vignette"], False),
    ("brighter, warmer and more contrast", ["brightness", "warmth", "contrast"], False),
    ("increase the contrast and saturation", [("contrast", {"amount": 0.25}), ("saturation", {"amount": 0.3})], False),
    ("rotate 90 degrees clockwise and flip horizontally", [("rotate", {"degrees": 90}), "flip"], False),
    ("remove the background and add the text 'SALE' at the top", ["remove_background", ("text", {"text": "SALE", "position": "top"})], False),
    ("resize to 800 px wide and make it black and white", [("resize", {"width": 800}), "grayscale"], False),
    # partly or not at all understood
    ("add a dragon", [], True),
    ("make him smile", [], True),
    ("add a drawing of a cat", [], True),
    ("replace the background with a beach", [], True),
    ("add a dragon and make it brighter", ["brightness"], True),
    ("sharpen it and remove the person on the left", ["sharpen"], True),
    # nothing asked
    ("please", [], False),
    ("don't change anything", [], False),
]


def _number_ok(expected: float, got: Any) -> bool:
    if not isinstance(got, (int, float)) or isinstance(got, bool):
        return False
    if abs(expected) >= 2:
        return abs(got - expected) < 1e-6
    if expected == 0:
        return abs(got) < 1e-6
    return got * expected > 0 and 0.5 <= got / expected <= 2.0


def _value_ok(expected: Any, got: Any) -> bool:
    if isinstance(expected, bool) or expected is None:
        return got == expected
    if isinstance(expected, (int, float)):
        return _number_ok(float(expected), got)
    if isinstance(expected, str):
        return isinstance(got, str) and got.strip().lower() == expected.lower()
    if isinstance(expected, list):
        return isinstance(got, list) and len(got) == len(expected) and all(_value_ok(e, g) for e, g in zip(expected, got))
    return got == expected


def matches(case: tuple[str, list[Expected], bool], ops: list[dict[str, Any]], unknown: list[str]) -> bool:
    """Did a parser read this case right? `ops` as [{"op": name, "params": {...}}]."""
    _, expected, want_unknown = case
    if len(ops) != len(expected) or bool(unknown) != want_unknown:
        return False
    for exp, got in zip(expected, ops):
        name, params = (exp, {}) if isinstance(exp, str) else exp
        if got.get("op") != name:
            return False
        if not all(_value_ok(v, (got.get("params") or {}).get(k)) for k, v in params.items()):
            return False
    return True


def accuracy(parse: Callable[[str], Any]) -> tuple[float, list[str]]:
    """(share of cases read right, the instructions read wrong) for `parse(text) -> Parsed`."""
    wrong = []
    for case in CASES:
        parsed = parse(case[0])
        if not matches(case, parsed.ops, parsed.unknown):
            wrong.append(case[0])
    return 1 - len(wrong) / len(CASES), wrong
