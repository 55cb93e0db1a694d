"""The cover of the PDF record and the signature manifestations it and the steps print.

The cover names the product, the batch and its pseudonymised chain-of-identity code, the master
record and version, the status and release decision with its signature manifestation (printed
name, meaning, date and time with zone, validity: 21 CFR 11.50), when and by whom the copy was
made, and the record fingerprint (21 CFR 11.10(b)). No patient name is stored, so none prints.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from reportlab.lib.colors import Color
from reportlab.platypus import Flowable, PageBreak, Paragraph, Spacer, Table, TableStyle

from ebr.pdf.content import RecordData
from ebr.pdf.fonts import BODY, BOLD
from ebr.pdf.grid import GREEN, RED, Run, TextBlock
from ebr.pdf.styles import FRAME_WIDTH, Styles, esc
from qms.signatures import SignatureManifestation, format_local

DECISIONS = {"released": "Released", "rejected": "Rejected"}


def _decision(data: RecordData) -> list[SignatureManifestation]:
    return [s for s in data.record.signatures if s.meaning in DECISIONS]


def signature_reasons(data: RecordData) -> dict[int, str]:
    from qms.models import Signature

    ids = [s.signature_id for s in data.record.signatures]
    return dict(Signature.objects.filter(pk__in=ids).values_list("pk", "reason")) if ids else {}


def manifestation_paragraph(signature: SignatureManifestation, styles: Styles, reason: str = "") -> Paragraph:
    colour = "#0b7333" if signature.valid else "#b81414"
    status = "signature valid" if signature.valid else "INVALID: the record changed after signing"
    why = f" · reason: {esc(reason)}" if reason else ""
    return Paragraph(
        f"<b>{esc(signature.meaning.capitalize())}</b> by <b>{esc(signature.printed_name)}</b> "
        f"({esc(signature.username)}) · {esc(signature.signed_at_display)} · "
        f"<font color='{colour}'>{status}</font>{why}", styles.small)


def manifestation_block(signature: SignatureManifestation, width: float, reason: str = "") -> TextBlock:
    """The same manifestation as `manifestation_paragraph`, drawn fast (one per signed step)."""
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


def cover(data: RecordData, styles: Styles, exported_at_display: str, exported_by: str) -> list[Flowable]:
    batch = data.batch
    version = batch.master_version
    product = version.master_record.product
    reasons = signature_reasons(data)
    decisions = _decision(data)
    decision: list[Flowable] = ([manifestation_paragraph(s, styles, reasons.get(s.signature_id, "")) for s in decisions]
                                or [Paragraph("No release decision has been signed.", styles.small)])
    collected = f"{format_local(batch.collected_at)} at {batch.collecting_hospital}"
    facts = [
        ("Product", f"{product.name} ({product.code})"),
        ("Batch number", batch.number),
        ("Chain-of-identity code", batch.coi),
        ("Donation identification (DIN)", batch.din_display),
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
