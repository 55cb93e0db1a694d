"""A step's instructions in the PDF record: the approved Markdown as text blocks, figures scaled.

An inspector reads what the operator was told next to what the operator recorded, so the full
text is printed with each step (bold, italic, lists, headings; link targets in brackets) and
the step's images are drawn at most 60 % of the text width, each with its number and caption.
An image whose file is missing or no longer matches its approved SHA-256 is not drawn: the
record says so in red instead (21 CFR 11.10(b), accurate and complete copies).
"""

from __future__ import annotations

import io

from PIL import Image as PilImage
from reportlab.lib.utils import ImageReader
from reportlab.platypus import Flowable, Image, Indenter, KeepTogether

from ebr.instructions import Block, instructions_blocks
from ebr.pdf.content import InstructionFigure
from ebr.pdf.fonts import BODY, BOLD, BOLD_ITALIC, ITALIC, MONO
from ebr.pdf.grid import INK, MUTED, RED, Run, TextBlock
from ebr.pdf.styles import RenderContext

FONTS = {"": BODY, "b": BOLD, "i": ITALIC, "bi": BOLD_ITALIC, "code": MONO}
INDENT = 10.0
FIGURE_SHARE = 0.6      # of the text width
FIGURE_MAX_HEIGHT = 220.0


def _flat_rgb(content: bytes) -> bytes:
    """The image without transparency, on white (PDF/A-friendly, and identical on every viewer)."""
    with PilImage.open(io.BytesIO(content)) as image:
        rgba = image.convert("RGBA")
        flat = PilImage.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
    buffer = io.BytesIO()
    flat.save(buffer, format="PNG")
    return buffer.getvalue()


def _figure(number: int | None, caption: str, figures: dict[int, InstructionFigure],
            width: float) -> list[Flowable]:
    figure = figures.get(number) if number is not None else None
    if figure is None:
        return [TextBlock([Run(f"[image not available: {caption}]", ITALIC, MUTED)], width=width, space_after=2)]
    label = TextBlock([Run(f"Figure {figure.number}: ", BOLD), Run(figure.caption, ITALIC)], width=width,
                      space_after=3)
    if figure.content is None:
        return [TextBlock([Run(f"Figure {figure.number} ({figure.caption}) cannot be printed: its file is missing "
                               f"or does not match the approved SHA-256 {figure.sha256}.", BOLD, RED)],
                          width=width, space_after=3)]
    flat = _flat_rgb(figure.content)
    pixels_wide, pixels_high = ImageReader(io.BytesIO(flat)).getSize()
    scale = min(width * FIGURE_SHARE / pixels_wide, FIGURE_MAX_HEIGHT / pixels_high, 1.0)
    drawing = Image(io.BytesIO(flat), width=pixels_wide * scale, height=pixels_high * scale, hAlign="LEFT")
    return [KeepTogether([drawing, label])]


def _text(block: Block, width: float) -> list[Flowable]:
    indent = INDENT * (block.depth + 1) if block.marker else 0.0
    runs = [Run(f"{block.marker} ", BOLD)] if block.marker else []
    default = "b" if block.kind == "heading" else "i" if block.kind == "quote" else ""
    runs += [Run(text, FONTS[style or default], MUTED if block.kind == "quote" else INK) for text, style in block.runs]
    text = TextBlock(runs, width=width - indent, size=8, leading=10.5, space_after=2)
    return [Indenter(left=indent), text, Indenter(left=-indent)] if indent else [text]


def instructions_flowables(markdown: str, figures: list[InstructionFigure],
                           context: RenderContext) -> list[Flowable]:
    """The step's instructions as flowables, figures placed where the text places them (else after it)."""
    if not markdown.strip() and not figures:
        return []
    by_number = {figure.number: figure for figure in figures}
    width = context.width
    flow: list[Flowable] = [TextBlock([Run("Instructions", BOLD, MUTED)], width=width, space_after=1)]
    for block in instructions_blocks(markdown, by_number):
        if block.kind == "figure":
            flow += _figure(block.figure, block.text, by_number, width)
        else:
            flow += _text(block, width)
    return flow
