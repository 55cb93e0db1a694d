"""A table flowable for long record tables: wraps cells once, splits across pages, repeats its header.

reportlab's `Table` (with `repeatRows`) is used for the small tables of the document; the
entry tables of 200 steps and an audit trail of thousands of events go through this class,
which lays every cell out once with `fonts.wrap`, splits by cumulative row height in
O(rows on the page), repeats the header row on every page it continues on, and writes the
text operators itself. A row taller than a whole page is split by lines, so nothing is ever
cut off (completeness, 21 CFR 11.10(b)).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reportlab.pdfbase import pdfmetrics
from reportlab.platypus import Flowable

from ebr.pdf.fonts import BODY, BOLD, text_width, wrap

Colour = tuple[float, float, float]

INK: Colour = (0.1, 0.1, 0.12)
MUTED: Colour = (0.38, 0.38, 0.42)
RED: Colour = (0.72, 0.08, 0.08)
AMBER: Colour = (0.62, 0.4, 0.0)
GREEN: Colour = (0.05, 0.45, 0.2)
HEADER_FILL: Colour = (0.9, 0.91, 0.94)
RULE: Colour = (0.72, 0.73, 0.77)
OOS_FILL: Colour = (0.99, 0.92, 0.92)
SUPERSEDED_FILL: Colour = (0.96, 0.96, 0.96)


@dataclass(frozen=True)
class Cell:
    """One cell: plain text in one font and colour; `strike` draws the original of a correction struck through."""

    text: str
    font: str = BODY
    colour: Colour = INK
    strike: bool = False


@dataclass(frozen=True)
class Column:
    title: str
    share: float  # fraction of the table width


@dataclass
class _LaidRow:
    cells: list[tuple[Cell, list[str]]]
    height: float
    fill: Colour | None = None


@dataclass
class Layout:
    """Sizes shared by every piece of one table after it splits."""

    widths: list[float]
    size: float = 7.0
    leading: float = 8.6
    pad: float = 2.2
    frame_height: float = 700.0
    header: list[tuple[Cell, list[str]]] = field(default_factory=list)
    header_height: float = 0.0


def _cell(value: Cell | str) -> Cell:
    return value if isinstance(value, Cell) else Cell(str(value))


def _lay(layout: Layout, cells: Sequence[Cell | str], fill: Colour | None) -> _LaidRow:
    laid = []
    lines_max = 1
    for value, width in zip(cells, layout.widths, strict=True):
        cell = _cell(value)
        lines = wrap(cell.text, cell.font, layout.size, width - 2 * layout.pad)
        lines_max = max(lines_max, len(lines))
        laid.append((cell, lines))
    return _LaidRow(cells=laid, height=lines_max * layout.leading + 2 * layout.pad, fill=fill)


class GridTable(Flowable):
    """Header + rows of `Cell`s; `fills[i]` shades row i (e.g. out of specification)."""

    def __init__(self, columns: Sequence[Column], rows: Sequence[Sequence[Cell | str]], *, width: float,
                 fills: Sequence[Colour | None] | None = None, size: float = 7.0, leading: float = 8.6,
                 frame_height: float = 700.0) -> None:
        super().__init__()
        total = sum(column.share for column in columns)
        layout = Layout(widths=[width * column.share / total for column in columns], size=size, leading=leading,
                        frame_height=frame_height)
        header = _lay(layout, [Cell(column.title, font=BOLD) for column in columns], HEADER_FILL)
        layout.header, layout.header_height = header.cells, header.height
        shades = list(fills) if fills is not None else [None] * len(rows)
        self._layout = layout
        self._rows = [_lay(layout, row, shade) for row, shade in zip(rows, shades, strict=True)]
        self._width = width
        self._rows_height = sum(row.height for row in self._rows)

    @classmethod
    def _piece(cls, source: GridTable, rows: list[_LaidRow], height: float | None = None) -> GridTable:
        piece = cls.__new__(cls)
        Flowable.__init__(piece)
        piece._layout, piece._rows, piece._width = source._layout, rows, source._width
        piece._rows_height = sum(row.height for row in rows) if height is None else height
        return piece

    # --- platypus protocol ----------------------------------------------------------------------

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        self.width = self._width
        self.height = self._layout.header_height + self._rows_height
        return self.width, self.height

    def split(self, availWidth: float, availHeight: float) -> list[Flowable]:
        layout = self._layout
        room = availHeight - layout.header_height
        used, fitting = 0.0, 0
        for row in self._rows:
            if used + row.height > room:
                break
            used += row.height
            fitting += 1
        if fitting == len(self._rows):
            return [self]
        if fitting == 0:
            return self._split_tall_row(room)
        return [self._piece(self, self._rows[:fitting], used),
                self._piece(self, self._rows[fitting:], self._rows_height - used)]

    def _split_tall_row(self, room: float) -> list[Flowable]:
        """Only a row taller than a whole page is cut between lines; otherwise it moves to the next page."""
        layout = self._layout
        first = self._rows[0]
        if first.height + layout.header_height <= layout.frame_height:
            return []
        lines_fitting = int((room - 2 * layout.pad) // layout.leading)
        if lines_fitting < 3:
            return []
        head = _LaidRow([(cell, lines[:lines_fitting]) for cell, lines in first.cells],
                        lines_fitting * layout.leading + 2 * layout.pad, first.fill)
        rest_cells = [(cell, lines[lines_fitting:] or [""]) for cell, lines in first.cells]
        rest_lines = max(len(lines) for _, lines in rest_cells)
        rest = _LaidRow(rest_cells, rest_lines * layout.leading + 2 * layout.pad, first.fill)
        return [self._piece(self, [head]), self._piece(self, [rest, *self._rows[1:]])]

    def draw(self) -> None:
        canvas = self.canv
        layout = self._layout
        y = self.height
        fills: list[tuple[Colour, float, float]] = []
        rules: list[float] = []
        strikes: list[tuple[float, float, float, Colour]] = []
        text: list[str] = []
        for cells, height, fill in [(layout.header, layout.header_height, HEADER_FILL),
                                    *[(row.cells, row.height, row.fill) for row in self._rows]]:
            y -= height
            if fill is not None:
                fills.append((fill, y, height))
            rules.append(y)
            self._row_text(cells, y + height, text, strikes)
        code = canvas._code
        for colour, bottom, height in fills:
            code.append(f"q {_rgb(colour)} rg 0 {bottom:.2f} {self.width:.2f} {height:.2f} re f Q")
        code.append(f"q {_rgb(RULE)} RG 0.4 w")
        code.extend(f"0 {rule:.2f} m {self.width:.2f} {rule:.2f} l S" for rule in rules)
        code.append(f"0 {self.height:.2f} m {self.width:.2f} {self.height:.2f} l S Q")
        if strikes:
            code.append("q 0.6 w")
            code.extend(f"{_rgb(colour)} RG {x0:.2f} {ys:.2f} m {x1:.2f} {ys:.2f} l S"
                        for x0, x1, ys, colour in strikes)
            code.append("Q")
        code.append("BT")
        code.extend(text)
        code.append("ET")

    def _row_text(self, cells: list[tuple[Cell, list[str]]], top: float, text: list[str],
                  strikes: list[tuple[float, float, float, Colour]]) -> None:
        layout = self._layout
        x = 0.0
        doc = self.canv._doc
        cache = _show_cache(doc)
        for (cell, lines), width in zip(cells, layout.widths, strict=True):
            font = pdfmetrics.getFont(cell.font)
            baseline = top - layout.pad - layout.size
            text.append(f"{_rgb(cell.colour)} rg")
            for line in lines:
                if line:
                    text.append(f"1 0 0 1 {x + layout.pad:.2f} {baseline:.2f} Tm")
                    text.append(_show(font, doc, layout.size, line, cache))
                    if cell.strike:
                        end = x + layout.pad + text_width(line, cell.font, layout.size)
                        strikes.append((x + layout.pad, end, baseline + layout.size * 0.3, cell.colour))
                baseline -= layout.leading
            x += width


def _show_cache(doc: Any) -> dict[tuple[str, float, str], str]:
    """Text-showing operators per (font, size, text), kept on the document (subsets are per document)."""
    cache: dict[tuple[str, float, str], str] | None = getattr(doc, "_ebr_show_cache", None)
    if cache is None:
        cache = {}
        doc._ebr_show_cache = cache
    return cache


# PDF string escapes for one byte, as reportlab's escapePDF writes them, applied with str.translate.
_ESCAPES = str.maketrans({code: (f"\\{code:03o}" if code < 32 or code >= 127
                                 else "\\" + chr(code) if chr(code) in "\\()" else chr(code))
                          for code in range(256)})


def _encoded(font: Any, doc: Any, line: str) -> list[tuple[int, bytes]]:
    """reportlab's TTFont.splitString, without its per-character Python loop when every character of
    `line` already has a code in the first subset (nearly always, after the first lines of a document)."""
    state = font.state.get(doc)
    if state is not None:
        assignments = state.assignments
        try:
            codes = [assignments[code] for code in map(ord, line)]
        except KeyError:  # a character not yet in a subset, a no-break space, or a glyph the font lacks
            codes = None
        if codes and max(codes) < 256:
            return [(0, bytes(codes))]
    return list(font.splitString(line, doc))


def _show(font: Any, doc: Any, size: float, line: str, cache: dict[tuple[str, float, str], str]) -> str:
    key = (font.fontName, size, line)
    operators = cache.get(key)
    if operators is None:
        operators = " ".join(f"{font.getSubsetInternalName(subset, doc)} {size:g} Tf "
                             f"({chunk.decode('latin-1').translate(_ESCAPES)}) Tj"
                             for subset, chunk in _encoded(font, doc, line))
        cache[key] = operators
    return operators


@functools.cache
def _rgb(colour: Colour) -> str:
    return " ".join(f"{component:.3f}" for component in colour)


def rows_of(values: Sequence[Sequence[Any]]) -> list[list[Cell]]:
    """Plain values to cells (str() each)."""
    return [[_cell(value if isinstance(value, Cell) else str(value)) for value in row] for row in values]


# --- fast rich text ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    """A piece of text in one font and colour, inside a TextBlock."""

    text: str
    font: str = BODY
    colour: Colour = INK


class TextBlock(Flowable):
    """A short wrapped text of runs (mixed bold, colour), drawn like GridTable: no markup parsing.

    Used for the lines repeated per step (facts, instructions, signature manifestations), where
    reportlab's Paragraph would cost more than the rest of the step together.
    """

    def __init__(self, runs: Sequence[Run | str], *, width: float, size: float = 7.5, leading: float = 9.5,
                 space_after: float = 0.0) -> None:
        super().__init__()
        self._size, self._leading, self._space_after, self._width = size, leading, space_after, width
        self._lines = self._layout([run if isinstance(run, Run) else Run(run) for run in runs])

    def _layout(self, runs: list[Run]) -> list[list[tuple[float, Run]]]:
        lines: list[list[tuple[float, Run]]] = [[]]
        x = 0.0
        spaced = False  # a space separates the next word from the previous one (maybe across runs)
        for run in runs:
            space = text_width(" ", run.font, self._size)
            for index, word in enumerate(run.text.split(" ")):
                spaced = spaced or index > 0
                if not word:
                    continue
                gap = space if spaced and x > 0 else 0.0
                spaced = False
                width = text_width(word, run.font, self._size)
                if x > 0 and x + gap + width > self._width:
                    lines.append([])
                    x, gap = 0.0, 0.0
                for piece in (wrap(word, run.font, self._size, self._width) if width > self._width else [word]):
                    lines[-1].append((x + gap, Run(piece, run.font, run.colour)))
                    x += gap + text_width(piece, run.font, self._size)
                    gap = 0.0
        return [line for line in lines if line] or [[]]

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        self.width = self._width
        self.height = len(self._lines) * self._leading + self._space_after
        return self.width, self.height

    def draw(self) -> None:
        doc = self.canv._doc
        cache = _show_cache(doc)
        code = ["BT"]
        baseline = self.height - self._space_after - self._size
        for line in self._lines:
            for x, run in line:
                code.append(f"{_rgb(run.colour)} rg 1 0 0 1 {x:.2f} {baseline:.2f} Tm "
                            + _show(pdfmetrics.getFont(run.font), doc, self._size, run.text, cache))
            baseline -= self._leading
        code.append("ET")
        self.canv._code.extend(code)


def text_operators(canvas: Any, items: Sequence[tuple[float, float, str, float, str, Colour]]) -> str:
    """One BT…ET block drawing (x, y, font, size, text, colour) items at absolute positions (page furniture)."""
    doc = canvas._doc
    cache = _show_cache(doc)
    code = ["BT"]
    for x, y, font, size, text, colour in items:
        code.append(f"{_rgb(colour)} rg 1 0 0 1 {x:.2f} {y:.2f} Tm "
                    + _show(pdfmetrics.getFont(font), doc, size, text, cache))
    code.append("ET")
    return " ".join(code)

