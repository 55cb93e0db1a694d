"""Page geometry, paragraph styles and the context every section renders with."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from reportlab.lib.colors import Color
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm

from ebr.pdf.fonts import BODY, BOLD, ITALIC, MONO, fonts_register

PAGE_SIZE = A4
MARGIN_X = 16 * mm
MARGIN_TOP = 20 * mm
MARGIN_BOTTOM = 18 * mm
FRAME_WIDTH = PAGE_SIZE[0] - 2 * MARGIN_X
FRAME_HEIGHT = PAGE_SIZE[1] - MARGIN_TOP - MARGIN_BOTTOM

INK = Color(0.1, 0.1, 0.12)
MUTED = Color(0.38, 0.38, 0.42)
RED = Color(0.72, 0.08, 0.08)
GREEN = Color(0.05, 0.45, 0.2)
ACCENT = Color(0.12, 0.27, 0.5)


@dataclass(frozen=True)
class Styles:
    title: ParagraphStyle
    subtitle: ParagraphStyle
    h1: ParagraphStyle
    h2: ParagraphStyle
    h3: ParagraphStyle
    body: ParagraphStyle
    small: ParagraphStyle
    muted: ParagraphStyle
    note: ParagraphStyle
    mono: ParagraphStyle
    cell: ParagraphStyle
    cell_bold: ParagraphStyle
    alert: ParagraphStyle


@dataclass(frozen=True)
class RenderContext:
    """What a section needs to draw itself: styles and the frame size (for tables and charts)."""

    styles: Styles
    width: float = FRAME_WIDTH
    frame_height: float = FRAME_HEIGHT


def styles_make() -> Styles:
    fonts_register()
    base = ParagraphStyle("body", fontName=BODY, fontSize=8.5, leading=11, textColor=INK)
    return Styles(
        title=ParagraphStyle("title", parent=base, fontName=BOLD, fontSize=20, leading=25, spaceAfter=4,
                             textColor=ACCENT),
        subtitle=ParagraphStyle("subtitle", parent=base, fontName=BOLD, fontSize=12, leading=16, spaceAfter=2),
        h1=ParagraphStyle("h1", parent=base, fontName=BOLD, fontSize=14, leading=18, spaceBefore=6, spaceAfter=6,
                          textColor=ACCENT),
        h2=ParagraphStyle("h2", parent=base, fontName=BOLD, fontSize=11.5, leading=15, spaceBefore=8, spaceAfter=4),
        h3=ParagraphStyle("h3", parent=base, fontName=BOLD, fontSize=9.5, leading=12.5, spaceBefore=8, spaceAfter=2),
        body=base,
        small=ParagraphStyle("small", parent=base, fontSize=7.5, leading=9.5),
        muted=ParagraphStyle("muted", parent=base, fontSize=7.5, leading=9.5, textColor=MUTED),
        note=ParagraphStyle("note", parent=base, fontName=ITALIC, fontSize=7.5, leading=9.5, textColor=MUTED,
                            spaceAfter=3),
        mono=ParagraphStyle("mono", parent=base, fontName=MONO, fontSize=7.5, leading=9.5),
        cell=ParagraphStyle("cell", parent=base, fontSize=8, leading=10),
        cell_bold=ParagraphStyle("cell_bold", parent=base, fontName=BOLD, fontSize=8, leading=10),
        alert=ParagraphStyle("alert", parent=base, fontName=BOLD, fontSize=8.5, leading=11, textColor=RED),
    )


def esc(text: object) -> str:
    """Text for a Paragraph: markup characters escaped, line breaks kept."""
    return escape(str(text)).replace("\n", "<br/>")
