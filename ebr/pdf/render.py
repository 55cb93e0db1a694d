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
from reportlab.lib.colors import Color
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
    Table,
    TableStyle,
)

from ebr.pdf.content import RecordData
from ebr.pdf.fonts import BODY, BOLD, ITALIC, MONO
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
)
from ebr.pdf.styles import (
    ACCENT,
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
from qms.signatures import SignatureManifestation, format_local

Progress = Callable[[float, str], None]
PRODUCER = f"pyHanko {pyhanko_version}"  # pyHanko's XMP names it as producer; Info must agree (PDF/A)
INSTRUCTIONS_SUMMARY = 320
DECISIONS = {"released": "Released", "rejected": "Rejected"}


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
            width, height = PAGE_SIZE
            top = height - MARGIN_TOP + 8
            self.saveState()
            self.setStrokeColor(Color(0.72, 0.73, 0.77))
            self.setLineWidth(0.5)
            self.line(MARGIN_X, top - 3, width - MARGIN_X, top - 3)
            self.line(MARGIN_X, MARGIN_BOTTOM - 6, width - MARGIN_X, MARGIN_BOTTOM - 6)
            self.setFillColor(ACCENT)
            self.setFont(BOLD, 8)
            self.drawString(MARGIN_X, top, facility)
            self.setFont(BODY, 8)
            self.drawRightString(width - MARGIN_X, top, header_right)
            self.setFillColor(Color(0.3, 0.3, 0.34))
            self.setFont(MONO, 6.3)
            self.drawString(MARGIN_X, MARGIN_BOTTOM - 15, footer_left)
            self.setFont(BODY, 6.5)
            self.drawString(MARGIN_X, MARGIN_BOTTOM - 24, f"Exported {exported_at_display}. Electronically "
                                                          "signed document: verify the PDF signature before relying on "
                                                          "a copy.")
            self.setFont(BOLD, 8)
            self.drawRightString(width - MARGIN_X, MARGIN_BOTTOM - 15, f"Page {number} of {total}")
            self.restoreState()

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


# --- cover -----------------------------------------------------------------------------------------

def _decision(data: RecordData) -> list[SignatureManifestation]:
    return [s for s in data.record.signatures if s.meaning in DECISIONS]


def _signature_reasons(data: RecordData) -> dict[int, str]:
    from qms.models import Signature

    ids = [s.signature_id for s in data.record.signatures]
    return dict(Signature.objects.filter(pk__in=ids).values_list("pk", "reason")) if ids else {}


def _manifestation(signature: SignatureManifestation, styles: Styles, reason: str = "") -> Paragraph:
    colour = "#0b7333" if signature.valid else "#b81414"
    status = "signature valid" if signature.valid else "INVALID: the record changed after signing"
    why = f" · reason: {esc(reason)}" if reason else ""
    return Paragraph(
        f"<b>{esc(signature.meaning.capitalize())}</b> by <b>{esc(signature.printed_name)}</b> "
        f"({esc(signature.username)}) · {esc(signature.signed_at_display)} · "
        f"<font color='{colour}'>{status}</font>{why}", styles.small)


def _manifestation_block(signature: SignatureManifestation, width: float, reason: str = "") -> TextBlock:
    """The same manifestation as `_manifestation`, drawn fast (one per signed step)."""
    runs = [Run(signature.meaning.capitalize(), BOLD), Run(" by "), Run(signature.printed_name, BOLD),
            Run(f" ({signature.username}) · {signature.signed_at_display} · "),
            Run("signature valid", colour=GREEN) if signature.valid
            else Run("INVALID: the record changed after signing", BOLD, RED)]
    if reason:
        runs.append(Run(f" · reason: {reason}"))
    return TextBlock(runs, width=width)


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"


def _counts(data: RecordData) -> str:
    steps = data.record.steps
    entries = [v for s in steps for p in s.parameters for v in p.history]
    corrections = sum(1 for v in entries if v.correction_reason)
    oos = sum(1 for v in entries if v.in_spec is False)
    late = sum(1 for v in entries if v.late)
    deviations = next((len(s.content["deviations"]) for s in data.sections if s.key == "deviations"), 0)
    return (f"{_n(len(data.record.stages), 'stage')}, {_n(len(steps), 'step')}, "
            f"{_n(len(entries), 'recorded value')} ({_n(corrections, 'correction')}, {oos} out of specification, "
            f"{_n(late, 'late entry', 'late entries')}), {_n(deviations, 'deviation')}, "
            f"{_n(len(data.record.custody), 'custody event')} ({_n(len(data.record.custody_gaps), 'gap')}), "
            f"{_n(len(data.audit), 'audit-trail event')}.")


def _cover(data: RecordData, styles: Styles, exported_at_display: str, exported_by: str) -> list[Flowable]:
    batch = data.batch
    version = batch.master_version
    product = version.master_record.product
    reasons = _signature_reasons(data)
    decisions = _decision(data)
    decision: list[Flowable] = ([_manifestation(s, styles, reasons.get(s.signature_id, "")) for s in decisions]
                                or [Paragraph("No release decision has been signed.", styles.small)])
    collected = f"{format_local(batch.collected_at)} at {batch.collecting_hospital}"
    facts = [
        ("Product", f"{product.name} ({product.code})"),
        ("Batch number", batch.number),
        ("Chain-of-identity code", batch.coi),
        ("Donation identification (DIN)", batch.din),
        ("Patient reference", f"{batch.patient_ref} (pseudonymised: no patient name is stored or printed)"),
        ("Collected", collected),
        ("Master record", f"{version.master_record.code} version {version.version}: {version.master_record.title}"),
        ("Status", batch.get_status_display() + (f" — {batch.status_reason}" if batch.status_reason else "")),
        ("Started / completed", f"{format_local(batch.started_at) if batch.started_at else '—'} / "
                                f"{format_local(batch.completed_at) if batch.completed_at else '—'}"),
    ]
    rows: list[list[Any]] = [[Paragraph(esc(k), styles.cell_bold), Paragraph(esc(v), styles.cell)] for k, v in facts]
    rows.append([Paragraph("Release decision", styles.cell_bold), decision])
    rows += [
        [Paragraph("Exported", styles.cell_bold), Paragraph(esc(f"{exported_at_display} by {exported_by}"),
                                                            styles.cell)],
        [Paragraph("Record fingerprint (SHA-256)", styles.cell_bold), Paragraph(data.fingerprint, styles.mono)],
    ]
    table = Table(rows, colWidths=[FRAME_WIDTH * 0.28, FRAME_WIDTH * 0.72], style=TableStyle([
        ("FONT", (0, 0), (-1, -1), BODY, 8),  # reportlab's default cell font is Helvetica (not embedded)
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.4, Color(0.8, 0.81, 0.85)),
        ("BACKGROUND", (0, 0), (0, -1), Color(0.95, 0.95, 0.97)),
        ("TOPPADDING", (0, 0), (-1, -1), 3), ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
    ]))
    return [
        Paragraph(esc(settings.FACILITY_NAME), styles.muted),
        Paragraph("Electronic batch record", styles.title),
        Paragraph(esc(f"{product.name} · batch {batch.number}"), styles.subtitle),
        Spacer(1, 8), table, Spacer(1, 10),
        Paragraph(esc(_counts(data)), styles.body), Spacer(1, 8),
        Paragraph("How to read this record", styles.h3),
        Paragraph("Each value shows its unit and specification, and a mark: ✓ within specification, ✗ out of "
                  "specification (OOS, with the deviation it opened), ! outside alert limits. <i>Performed</i> is when "
                  f"the work was done, <i>entered</i> when it was recorded; entries made more than "
                  f"{int(settings.LATE_ENTRY_THRESHOLD.total_seconds() // 60)} minutes after the work are marked LATE. "
                  "A corrected value stays visible, struck through, followed by the correction and its reason. "
                  "Signatures show printed name, meaning, date and time with zone, and whether the signed content is "
                  "unchanged. Times are in the facility's zone.", styles.small),
        Spacer(1, 6),
        Paragraph("The record fingerprint is the SHA-256 of the record's content (values, corrections, signatures, "
                  "sections and audit trail), not of this file: any export of the same record has the same "
                  "fingerprint. The file itself carries a PAdES digital signature of the facility; a PDF reader or "
                  "<font name='DejaVuSansMono'>manage.py verify_pdf</font> checks that nothing changed after "
                  "signing.", styles.small),
        PageBreak(),
    ]


# --- stages and steps ------------------------------------------------------------------------------

def _summary(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= INSTRUCTIONS_SUMMARY:
        return text
    return text[:INSTRUCTIONS_SUMMARY].rsplit(" ", 1)[0] + " …"


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
    value = f"{view.value} {view.unit}".strip()
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
        flow.append(TextBlock([Run(f"Hold time before this step exceeded by {step.step.hold_time_exceeded_by}.",
                                   BOLD, RED)], width=width))
    if template.instructions.strip():
        flow.append(TextBlock([Run(f"Instructions (summary): {_summary(template.instructions)}", ITALIC, MUTED)],
                              width=width, space_after=2))
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
        flow += [_manifestation_block(signature, width) for signature in step.signatures]
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
        reasons = _signature_reasons(data)
        flow += [_manifestation(s, styles, reasons.get(s.signature_id, "")) for s in data.record.signatures]
    return flow


# --- appendix --------------------------------------------------------------------------------------

AUDIT_COLUMNS = [Column("#", 26), Column("When", 92), Column("Who", 66), Column("Event", 84), Column("Record", 84),
                 Column("Reason and details", 152.6)]


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
    story = _cover(data, styles, exported_at_display, exported_by)
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


