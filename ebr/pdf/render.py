"""The PDF batch record: cover, every stage and step, sections, and the audit trail appendix.

Renders `RecordData` (ebr/pdf/content.py), never the database directly, so what is printed is
exactly what was fingerprinted. Every page carries the batch number in its header and
"page X of Y" with the record fingerprint in its footer, so a single printed page can be
traced to its record (21 CFR 11.10(b)). Each value shows its unit, specification, in/out of
specification mark, when it was done and when entered (late entries marked), who entered it;
a correction shows the original value struck through with the reason (EU GMP Annex 11 §8.2);
each signature shows printed name, meaning, date and time with zone, and whether it is still
valid (21 CFR 11.50, 11.70).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from pyhanko.version import __version__ as pyhanko_version
from reportlab import Version as reportlab_version
from reportlab import rl_config
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
)

from ebr.pdf.content import RecordData
from ebr.pdf.cover import cover, manifestation_block, manifestation_paragraph, signature_reasons
from ebr.pdf.fonts import BODY, BOLD, MONO, text_width
from ebr.pdf.grid import (
    AMBER,
    GREEN,
    MUTED,
    OOS_FILL,
    RED,
    SUPERSEDED_FILL,
    Cell,
    Column,
    GridTable,
    Run,
    TextBlock,
    text_operators,
)
from ebr.pdf.instructions import instructions_flowables
from ebr.pdf.styles import (
    FRAME_HEIGHT,
    FRAME_WIDTH,
    MARGIN_BOTTOM,
    MARGIN_TOP,
    MARGIN_X,
    PAGE_SIZE,
    RenderContext,
    Styles,
    esc,
    styles_make,
)
from ebr.selectors import EntryView, ParameterRecord, StepRecord
from ebr.units import duration_display, unit_display
from qms.signatures import format_local

Progress = Callable[[float, str], None]
ACCENT_RGB = (0.12, 0.27, 0.5)
FOOTER_RGB = (0.3, 0.3, 0.34)
PRODUCER = f"pyHanko {pyhanko_version}"  # pyHanko's XMP names it as producer; Info must agree (PDF/A)


@dataclass(frozen=True)
class DocumentInfo:
    title: str
    author: str
    subject: str
    keywords: list[str]
    creator: str


@dataclass(frozen=True)
class Rendered:
    pdf: bytes
    pages: int
    info: DocumentInfo


# --- page furniture --------------------------------------------------------------------------------

def _record_canvas(data: RecordData, exported_at_display: str, pages: list[int]) -> type[Canvas]:
    batch = data.batch
    facility = settings.FACILITY_NAME
    header_right = f"Batch record {batch.number} · {batch.master_version}"
    footer_left = f"Record fingerprint SHA-256 {data.fingerprint}"
    exported_line = (f"Exported {exported_at_display}. Electronically signed document: verify the PDF signature "
                     "before relying on a copy.")

    class RecordCanvas(Canvas):
        """Defers each page until the total is known, then draws header and footer on all of them."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["initialFontName"] = BODY  # never Helvetica: every font in the file is embedded (PDF/A)
            super().__init__(*args, **kwargs)
            self._page_states: list[dict[str, Any]] = []

        def showPage(self) -> None:
            self._page_states.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._page_states)
            pages.append(total)
            for number, state in enumerate(self._page_states, start=1):
                self.__dict__.update(state)
                self._furniture(number, total)
                Canvas.showPage(self)
            Canvas.save(self)

        def _furniture(self, number: int, total: int) -> None:
            # Written as raw operators: drawn on every one of possibly hundreds of pages.
            width, height = PAGE_SIZE
            top, right, bottom = height - MARGIN_TOP + 8, width - MARGIN_X, MARGIN_BOTTOM
            page = f"Page {number} of {total}"
            self._code.append(f"q 0.72 0.73 0.77 RG 0.5 w {MARGIN_X:.2f} {top - 3:.2f} m {right:.2f} {top - 3:.2f} l S "
                              f"{MARGIN_X:.2f} {bottom - 6:.2f} m {right:.2f} {bottom - 6:.2f} l S Q")
            self._code.append(text_operators(self, [
                (MARGIN_X, top, BOLD, 8, facility, ACCENT_RGB),
                (right - text_width(header_right, BODY, 8), top, BODY, 8, header_right, ACCENT_RGB),
                (MARGIN_X, bottom - 15, MONO, 6.3, footer_left, FOOTER_RGB),
                (MARGIN_X, bottom - 24, BODY, 6.5, exported_line, FOOTER_RGB),
                (right - text_width(page, BOLD, 8), bottom - 15, BOLD, 8, page, FOOTER_RGB),
            ]))

    return RecordCanvas


class _RecordDocument(BaseDocTemplate):
    """Adds outline entries for headings and reports progress as flowables are laid out."""

    def __init__(self, buffer: io.BytesIO, *, styles: Styles, progress: Progress | None, total: int,
                 info: DocumentInfo) -> None:
        super().__init__(buffer, pagesize=PAGE_SIZE, leftMargin=MARGIN_X, rightMargin=MARGIN_X, topMargin=MARGIN_TOP,
                         bottomMargin=MARGIN_BOTTOM, title=info.title, author=info.author, subject=info.subject,
                         keywords=info.keywords, creator=info.creator, producer=PRODUCER,
                         lang="en-GB", initialFontName=BODY)
        frame = Frame(MARGIN_X, MARGIN_BOTTOM, FRAME_WIDTH, FRAME_HEIGHT, id="body", leftPadding=0, rightPadding=0,
                      topPadding=0, bottomPadding=0)
        self.addPageTemplates([PageTemplate(id="record", frames=[frame])])
        self._levels = {styles.h1.name: 0, styles.h2.name: 1, styles.h3.name: 2}
        self._progress = progress
        self._total = max(total, 1)
        self._seen = 0
        self._outline = 0
        self._last_level = -1

    def afterFlowable(self, flowable: Flowable) -> None:
        self._seen += 1
        if self._progress is not None and self._seen % 250 == 0:
            self._progress(min(self._seen / self._total, 1.0), "Laying out pages")
        if isinstance(flowable, Paragraph) and flowable.style.name in self._levels:
            # An outline may only go one level deeper at a time (a section's h3 directly under its h1).
            level = min(self._levels[flowable.style.name], self._last_level + 1)
            self._last_level = level
            key = f"h{self._outline}"
            self._outline += 1
            self.canv.bookmarkPage(key)
            self.canv.addOutlineEntry(flowable.getPlainText(), key, level=level, closed=level > 0)


# --- stages and steps ------------------------------------------------------------------------------

def _result(view: EntryView) -> Cell:
    if view.in_spec is False:
        return Cell("✗ OOS", font=BOLD, colour=RED)
    if view.alert:
        return Cell("! alert", font=BOLD, colour=AMBER)
    if view.in_spec:
        return Cell("✓ in spec", colour=GREEN)
    return Cell("—", colour=MUTED)


def _notes(view: EntryView) -> str:
    notes = []
    if view.superseded:
        notes.append("Original value, superseded by the correction below.")
    if view.correction_reason:
        notes.append(f"Correction. Reason: {view.correction_reason}")
    if view.comment:
        notes.append(f"Comment: {view.comment}")
    if view.deviation_number:
        notes.append(f"Deviation {view.deviation_number}")
    return "\n".join(notes)


def _when_entered(view: EntryView) -> Cell | str:
    performed, entered_text = view.performed_at_display, view.entered_at_display
    if entered_text[:10] == performed[:10]:
        entered_text = entered_text[11:]
    text = f"{performed}\nentered {entered_text}"
    return Cell(f"{text}\nLATE entry", colour=RED) if view.late else text


def _entry_row(parameter: ParameterRecord, view: EntryView, data: RecordData, first: bool) -> list[Cell | str]:
    value = f"{view.value} {unit_display(view.unit)}".strip()
    return [
        Cell(parameter.parameter.label, font=BOLD) if first else Cell("″", colour=MUTED),
        parameter.parameter.limits_text() if first else "",
        Cell(value, colour=MUTED, strike=True) if view.superseded else Cell(value, font=BOLD),
        _result(view),
        _when_entered(view),
        view.entered_by,
        _notes(view),
    ]


# Widths in points on the 504.6 pt frame: a date-time with its zone fits one line at 7 pt.
ENTRY_COLUMNS = [Column("Parameter", 80), Column("Specification", 58), Column("Value", 58), Column("Result", 40),
                 Column("Performed / entered", 100), Column("Entered by", 70), Column("Notes", 98.6)]


def _entries_table(step: StepRecord, data: RecordData, context: RenderContext) -> Flowable | None:
    rows: list[list[Cell | str]] = []
    fills: list[tuple[float, float, float] | None] = []
    for parameter in step.parameters:
        if not parameter.history:
            rows.append([Cell(parameter.parameter.label, font=BOLD), parameter.parameter.limits_text(),
                         Cell("not recorded", colour=RED if parameter.parameter.required else MUTED),
                         "", "", "", ""])
            fills.append(None)
        for index, view in enumerate(parameter.history):
            rows.append(_entry_row(parameter, view, data, index == 0))
            fills.append(OOS_FILL if view.in_spec is False and not view.superseded
                         else SUPERSEDED_FILL if view.superseded else None)
    if not rows:
        return None
    return GridTable(ENTRY_COLUMNS, rows, fills=fills, width=context.width, frame_height=context.frame_height)


def _step_facts(step: StepRecord, total: int) -> str:
    execution = step.step
    template = execution.template
    facts = [f"Step {execution.sequence} of {total}", execution.get_status_display()]
    if template.critical:
        facts.append("critical")
    if template.needs_verification:
        facts.append("second-person verification")
    for label, moment in (("opened", execution.opened_at), ("performed", execution.performed_at),
                          ("verified", execution.verified_at)):
        if moment:
            facts.append(f"{label} {format_local(moment)}")
    return " · ".join(facts)


def _step(step: StepRecord, data: RecordData, context: RenderContext, total: int) -> list[Flowable]:
    styles = context.styles
    width = context.width
    template = step.step.template
    flow: list[Flowable] = [CondPageBreak(110), Paragraph(esc(f"{template.code} {template.title}"), styles.h3),
                            TextBlock([Run(_step_facts(step, total), colour=MUTED)], width=width, space_after=1)]
    if step.step.hold_time_exceeded_by:
        over = duration_display(step.step.hold_time_exceeded_by)
        flow.append(TextBlock([Run(f"Hold time before this step exceeded by {over}.", BOLD, RED)], width=width))
    flow += instructions_flowables(template.instructions, data.figures.get(template.pk, []), context)
    table = _entries_table(step, data, context)
    if table is not None:
        flow.append(table)
    uses = []
    if step.equipment:
        uses.append(f"Equipment: {', '.join(step.equipment)}.")
    if step.materials:
        uses.append(f"Material lots: {', '.join(step.materials)}.")
    if uses:
        flow.append(TextBlock([" ".join(uses)], width=width))
    if step.step.remarks:
        flow.append(TextBlock([f"Remarks: {step.step.remarks}"], width=width))
    if step.signatures:
        flow += [manifestation_block(signature, width) for signature in step.signatures]
    else:
        flow.append(TextBlock([Run("Not signed.", colour=MUTED)], width=width))
    flow.append(Spacer(1, 4))
    return flow


def _stages(data: RecordData, context: RenderContext) -> list[Flowable]:
    styles = context.styles
    total = len(data.record.steps)
    flow: list[Flowable] = [Paragraph("Stages and steps", styles.h1)]
    for stage in data.record.stages:
        flow += [CondPageBreak(140), Paragraph(esc(f"Stage {stage.order}. {stage.name}"), styles.h2)]
        for step in stage.steps:
            flow += _step(step, data, context, total)
    if data.record.signatures:
        flow += [CondPageBreak(80), Paragraph("Batch signatures", styles.h2)]
        reasons = signature_reasons(data)
        flow += [manifestation_paragraph(s, styles, reasons.get(s.signature_id, "")) for s in data.record.signatures]
    return flow


# --- appendix --------------------------------------------------------------------------------------

AUDIT_COLUMNS = [Column("#", 24), Column("When", 90), Column("Who", 54), Column("Event", 78), Column("Record", 66),
                 Column("Reason and details", 192.6)]


def _appendix(data: RecordData, context: RenderContext) -> list[Flowable]:
    styles = context.styles
    flow: list[Flowable] = [PageBreak(), Paragraph("Appendix: audit trail", styles.h1), Paragraph(
        f"{len(data.audit)} events on the batch, its steps, entries and corrections, custody events, equipment and "
        "material uses, and the deviations raised against it, oldest first (21 CFR 11.10(e), EU GMP Annex 11 §9). "
        "Exports of the record are recorded in the audit trail but not listed here, so that every export of the same "
        "record has the same content.", styles.note)]
    if not data.audit:
        return [*flow, Paragraph("No audit event.", styles.muted)]
    rows = [[str(line.id), line.occurred_at_display, line.actor, line.event_type,
             line.target_label or f"{line.target_type} {line.target_id}",
             "\n".join(filter(None, [line.reason and f"Reason: {line.reason}", line.details,
                                     line.signature and f"Signature: {line.signature}"]))]
            for line in data.audit]
    flow.append(GridTable(AUDIT_COLUMNS, rows, width=context.width, frame_height=context.frame_height, size=6.6,
                          leading=8.0))
    return flow


# --- the document ----------------------------------------------------------------------------------

def document_info(data: RecordData) -> DocumentInfo:
    batch = data.batch
    return DocumentInfo(
        title=f"Batch record {batch.number}",
        author=settings.FACILITY_NAME,
        subject=f"Electronic batch record {batch.number} ({batch.master_version}); record fingerprint SHA-256 "
                f"{data.fingerprint}",
        keywords=[f"ebr-record-sha256:{data.fingerprint}", f"ebr-batch:{batch.number}"],
        creator=f"eBR/QMS batch record export (reportlab {reportlab_version})",
    )


def document_render(data: RecordData, *, exported_at: datetime, exported_by: str,
                    progress: Progress | None = None) -> Rendered:
    """Lay out the whole record as an unsigned PDF (signing: ebr/pdf/signing.py)."""
    styles = styles_make()
    context = RenderContext(styles=styles)
    exported_at_display = format_local(exported_at)
    story = cover(data, styles, exported_at_display, exported_by)
    story += _stages(data, context)
    for section in data.sections:
        story += section.render(context)
    story += _appendix(data, context)
    info = document_info(data)
    # Binary (Flate only) streams: ASCII85 adds a quarter to the size and, in pure Python, seconds to large records.
    rl_config.useA85 = 0
    buffer = io.BytesIO()
    pages: list[int] = []
    document = _RecordDocument(buffer, styles=styles, progress=progress, total=len(story), info=info)
    document.build(story, canvasmaker=_record_canvas(data, exported_at_display, pages))
    return Rendered(pdf=buffer.getvalue(), pages=pages[-1] if pages else 0, info=info)


