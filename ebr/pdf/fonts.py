"""DejaVu fonts for the PDF record, embedded, and fast text measuring and wrapping.

Every glyph is drawn from an embedded DejaVu subset, so µ, ≥, °, × and names in any European
script print as entered (ALCOA+ "accurate"; an accurate and complete copy, 21 CFR 11.10(b)).
No fallback to a standard-14 font: a missing font stops the export with a message naming
the package to install, instead of producing a record that silently prints boxes.

Measuring is done here rather than with reportlab's `stringWidth`, whose pure-Python path
(without the optional rl_accel extension) dominated the export time of large batches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

BODY = "DejaVuSans"
BOLD = "DejaVuSans-Bold"
ITALIC = "DejaVuSans-Oblique"
BOLD_ITALIC = "DejaVuSans-BoldOblique"
MONO = "DejaVuSansMono"

FILES = {
    BODY: "DejaVuSans.ttf",
    BOLD: "DejaVuSans-Bold.ttf",
    ITALIC: "DejaVuSans-Oblique.ttf",
    BOLD_ITALIC: "DejaVuSans-BoldOblique.ttf",
    MONO: "DejaVuSansMono.ttf",
}


class FontsMissing(ImproperlyConfigured):
    """The DejaVu TrueType files are not where PDF_FONT_DIR says (Debian: fonts-dejavu-core)."""


class _CharWidths(dict[str, float]):
    """Glyph advance per character in 1/1000 em, filled on first use (so `sum(map(...))` stays in C)."""

    def __init__(self, glyph_widths: dict[int, float], default: float) -> None:
        super().__init__()
        self.glyph_widths = glyph_widths
        self.default = default

    def __missing__(self, char: str) -> float:
        width = self[char] = self.glyph_widths.get(ord(char), self.default)
        return width


@dataclass
class _Metrics:
    chars: _CharWidths
    word_units: dict[str, float]
    narrowest: float  # the narrowest printable ASCII glyph: no line of n characters is narrower than n times it

    def units(self, text: str) -> float:
        cached = self.word_units.get(text)
        if cached is None:
            cached = sum(map(self.chars.__getitem__, text))
            if len(self.word_units) < 200_000:
                self.word_units[text] = cached
        return cached


_metrics: dict[str, _Metrics] = {}


def fonts_register() -> None:
    """Register the DejaVu family once per process; raise FontsMissing naming what to install."""
    if _metrics:
        return
    from reportlab.lib.fonts import addMapping
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    directory = Path(settings.PDF_FONT_DIR)
    missing = [name for name in FILES.values() if not (directory / name).is_file()]
    if missing:
        raise FontsMissing(
            f"PDF export needs the DejaVu fonts ({', '.join(missing)}) in {directory}: install the Debian "
            "package fonts-dejavu-core, or set PDF_FONT_DIR to the folder holding them.")
    for name, file_name in FILES.items():
        font = TTFont(name, str(directory / file_name))
        pdfmetrics.registerFont(font)
        face = font.face
        widths = _CharWidths({code: float(w) for code, w in face.charWidths.items()}, float(face.defaultWidth))
        narrowest = min(widths[chr(code)] for code in range(33, 127))
        _metrics[name] = _Metrics(chars=widths, word_units={}, narrowest=narrowest)
    addMapping(BODY, 0, 0, BODY)
    addMapping(BODY, 1, 0, BOLD)
    addMapping(BODY, 0, 1, ITALIC)
    addMapping(BODY, 1, 1, BOLD_ITALIC)


def text_width(text: str, font: str, size: float) -> float:
    """Width in points of `text` set in `font` at `size` (the fonts must be registered)."""
    return _metrics[font].units(text) * size / 1000.0


def wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Greedy word wrap to `width` points; over-long words break by character. Nothing is cut off.

    Called for every table cell of the record (tens of thousands in a large batch), hence the
    inlined width cache and the skip of whole-line measuring when a line cannot possibly fit.
    """
    metrics = _metrics[font]
    limit = width * 1000.0 / size
    known, chars = metrics.word_units, metrics.chars
    narrowest = metrics.narrowest
    space = metrics.units(" ")
    lines: list[str] = []
    for paragraph in text.split("\n"):
        if len(paragraph) * narrowest <= limit and metrics.units(paragraph) <= limit:
            lines.append(paragraph)
            continue
        current: list[str] = []
        used = 0.0
        for word in paragraph.split(" "):
            word_units = known.get(word)
            if word_units is None:
                word_units = sum(map(chars.__getitem__, word))
                if len(known) < 200_000:
                    known[word] = word_units
            if word_units > limit:
                if current:
                    lines.append(" ".join(current))
                    current, used = [], 0.0
                pieces = _break_word(word, metrics, limit)
                lines.extend(pieces[:-1])
                current, used = [pieces[-1]], metrics.units(pieces[-1])
                continue
            if current and used + space + word_units > limit:
                lines.append(" ".join(current))
                current, used = [word], word_units
            elif current:
                current.append(word)
                used += space + word_units
            else:
                current, used = [word], word_units
        if current:
            lines.append(" ".join(current))
    return lines or [""]


def _break_word(word: str, metrics: _Metrics, limit: float) -> list[str]:
    """Break an over-long word after _ - / . where possible (identifiers, codes), else between characters."""
    tokens = [token for token in re.split(r"(?<=[_\-/.,;:])", word) if token]
    pieces: list[str] = []
    current, used = "", 0.0
    for token in tokens:
        token_units = metrics.units(token)
        if token_units > limit:
            for char in token:
                char_units = metrics.units(char)
                if current and used + char_units > limit:
                    pieces.append(current)
                    current, used = "", 0.0
                current += char
                used += char_units
            continue
        if current and used + token_units > limit:
            pieces.append(current)
            current, used = "", 0.0
        current += token
        used += token_units
    if current:
        pieces.append(current)
    return pieces
