"""What the PDF prints, gathered once, and its fingerprint: SHA-256 of the record's canonical JSON.

The fingerprint identifies the record content, not the file: it is computed from the batch
record (every step, value, correction, signature manifestation), every section's content and
the audit-trail appendix, with times in UTC; it leaves out the export time, the exporter and
the PDF bytes (which differ with every signing). The same record exported twice therefore has
the same fingerprint, and any change to the record changes it (21 CFR 11.10(b) accurate and
complete copies; 11.70 record/signature linking; EU GMP Annex 11 §8.1).

FORMAT names the form of the fingerprinted content. ebr-batch-record-pdf/2 (this one) holds
every part as stored, never as printed: every moment in ISO 8601 UTC (`sections.utc_iso`,
whatever zone a datetime carries), every signature manifestation with its UTC time
(`sections.signature_recorded`: the record's, the steps', the deviations' and the audit rows'),
deviation and CAPA times, chain-of-custody gaps and process alarms as data, limits and units
with their UCUM codes, states, classifications and equipment types by their codes (not their
labels), people who entered values by their username (not their printed name, which may change).
/1 held some of these as printed in the facility's zone (the audit rows' signature lines,
deviation and CAPA times and signatures, custody gaps, alarm lines), so the same record had
another fingerprint under another TIME_ZONE setting. /2 changed every fingerprint once; a PDF
signed under /1 keeps the fingerprint it was signed with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ebr.instructions import ImageRefused, image_read
from ebr.models import Batch, Entry
from ebr.models.master import InstructionImage
from ebr.pdf.audit import AuditLine, batch_audit_trail
from ebr.pdf.sections import Section, sections_collect, signature_recorded, utc_iso
from ebr.selectors import BatchRecord, EntryView, StepRecord, batch_record
from qms.signatures import canonical_json

FORMAT = "ebr-batch-record-pdf/2"


@dataclass(frozen=True)
class InstructionFigure:
    """An image of a step's instructions, read and checked against its approved SHA-256."""

    number: int
    caption: str
    sha256: str
    content: bytes | None  # None: the file is missing or altered; the PDF says so instead of printing it

    def fingerprint(self) -> list[Any]:
        return [self.number, self.caption, self.sha256, self.content is not None]


@dataclass(frozen=True)
class RecordData:
    """Everything the document shows, read in one go before rendering."""

    batch: Batch
    record: BatchRecord
    entered_at: dict[int, datetime]
    sections: list[Section]
    audit: list[AuditLine]
    fingerprint: str
    figures: dict[int, list[InstructionFigure]] = field(default_factory=dict)  # by step template id


def _entry(view: EntryView, entered_at: dict[int, datetime]) -> list[Any]:
    return [view.id, view.value, view.unit, view.in_spec, view.alert, view.comment, utc_iso(view.performed_at),
            utc_iso(entered_at.get(view.id)), view.late, view.entered_by_username, view.deviation_number,
            view.correction_reason, view.superseded]


def _step(step: StepRecord, entered_at: dict[int, datetime],
          figures: dict[int, list[InstructionFigure]]) -> dict[str, Any]:
    execution = step.step
    template = execution.template
    images = {"instruction_images": [f.fingerprint() for f in figures[template.pk]]} if figures.get(template.pk) else {}
    return {**images,
        "sequence": execution.sequence, "code": template.code, "title": template.title, "status": execution.status,
        "critical": template.critical, "verification": template.needs_verification,
        "instructions": template.instructions, "remarks": execution.remarks,
        "hold_time_exceeded_by": str(execution.hold_time_exceeded_by or ""),
        "opened_at": utc_iso(execution.opened_at), "performed_at": utc_iso(execution.performed_at),
        "verified_at": utc_iso(execution.verified_at),
        "parameters": [{"code": p.parameter.code, "label": p.parameter.label,
                        "limits": p.parameter.limits_text(unit_as_stored=True),
                        "entries": [_entry(v, entered_at) for v in p.history]} for p in step.parameters],
        "signatures": [signature_recorded(s) for s in step.signatures],
        "equipment": step.equipment, "materials": step.materials,
    }


def record_content(record: BatchRecord, entered_at: dict[int, datetime],
                   figures: dict[int, list[InstructionFigure]] | None = None) -> dict[str, Any]:
    """The batch record as canonical data (times in UTC ISO 8601)."""
    figures = figures or {}
    batch = record.batch
    version = batch.master_version
    return {
        "number": batch.number, "status": batch.status, "coi": batch.coi, "din": batch.din,
        "patient_ref": batch.patient_ref, "collecting_hospital": batch.collecting_hospital,
        "collected_at": utc_iso(batch.collected_at), "started_at": utc_iso(batch.started_at),
        "completed_at": utc_iso(batch.completed_at), "status_reason": batch.status_reason,
        "product": [version.master_record.product.code, version.master_record.product.name],
        "master_version": [version.master_record.code, version.version, version.master_record.title],
        "signatures": [signature_recorded(s) for s in record.signatures],
        "stages": [{"order": stage.order, "name": stage.name,
                    "steps": [_step(s, entered_at, figures) for s in stage.steps]} for stage in record.stages],
    }


def fingerprint_of(record: BatchRecord, entered_at: dict[int, datetime], sections: list[Section],
                   audit: list[AuditLine], figures: dict[int, list[InstructionFigure]] | None = None) -> str:
    document = {
        "format": FORMAT,
        "record": record_content(record, entered_at, figures),
        "sections": {section.key: section.content for section in sections},
        "audit_trail": [line.content() for line in audit],
    }
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


def record_data(batch: Batch) -> RecordData:
    """Read the record, its sections and its audit trail, and fingerprint them."""
    batch = (Batch.objects.select_related("master_version__master_record__product", "created_by")
             .get(pk=batch.pk))
    record = batch_record(batch)
    entered_at = dict(Entry.objects.filter(step__batch=batch).values_list("id", "entered_at"))
    sections = sections_collect(batch, record)
    known = [*record.signatures, *[s for step in record.steps for s in step.signatures]]
    audit = batch_audit_trail(batch, known)
    figures = instruction_figures(record)
    return RecordData(batch=batch, record=record, entered_at=entered_at, sections=sections, audit=audit,
                      fingerprint=fingerprint_of(record, entered_at, sections, audit, figures), figures=figures)


def _figure_bytes(image: InstructionImage) -> bytes | None:
    try:
        return image_read(image.file, image.sha256)
    except (ImageRefused, FileNotFoundError):
        return None


def instruction_figures(record: BatchRecord) -> dict[int, list[InstructionFigure]]:
    """The images of every step's instructions, by step template, read once for the whole document."""
    templates = {step.step.template_id for step in record.steps}
    figures: dict[int, list[InstructionFigure]] = {}
    for image in InstructionImage.objects.filter(step_id__in=templates).order_by("step_id", "number"):
        figures.setdefault(image.step_id, []).append(InstructionFigure(
            number=image.number, caption=image.caption, sha256=image.sha256, content=_figure_bytes(image)))
    return figures
