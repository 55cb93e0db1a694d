"""Export a batch record as a signed PDF: build, sign, write atomically, record the export.

`batch_pdf_write` is what the command line uses; `pdf_export_request` and `pdf_export_run` are
the screen's asynchronous path (a PdfExport row, a Celery task dispatched through the outbox
after commit, HTMX polling its progress). Every export is recorded in the audit trail with
its record fingerprint and the SHA-256 of the file (EXPORT_CREATED; 21 CFR 11.10(b) and (e),
EU GMP Annex 11 §8.1: accurate and complete copies, and who made them).

Kill -9 safety: the file is written to a temporary name and renamed over the target (atomic on
POSIX), so a reader never sees half a file; a task re-delivered after its worker died finds
its row not done and redoes the work from scratch, and a row in state done is never redone.
A PostgreSQL advisory lock keeps two deliveries of the same export from running together;
the database releases it when the holder's connection dies.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.utils import timezone

from ebr.models import Batch, PdfExport, PdfExportStatus
from ebr.pdf.content import record_data
from ebr.pdf.render import document_render
from ebr.pdf.signing import pdf_sign
from qms.audit import Event, SystemActor, record_event
from qms.audit.writer import Actor, actor_label
from qms.models import User
from qms.outbox import enqueue
from qms.roles import Capability, can

log = logging.getLogger(__name__)

TASK_NAME = "ebr.batch_pdf_export"
LOCK_CLASS = 0x0EB5  # advisory lock namespace for PDF exports
Progress = Callable[[int, str], None]


@dataclass(frozen=True)
class SignedRecord:
    pdf: bytes
    fingerprint: str
    pages: int
    sha256: str


@dataclass(frozen=True)
class ExportResult:
    path: Path
    fingerprint: str
    pages: int
    sha256: str
    size: int


def exporter_label(actor: Actor) -> str:
    """How the exporter is printed on the cover: printed name and username, or the system component."""
    if isinstance(actor, SystemActor):
        return actor.label
    full_name = getattr(actor, "full_name", "") or ""
    return f"{full_name} ({actor_label(actor)})" if full_name else actor_label(actor)


def batch_pdf_build(batch: Batch, *, exported_by: str, exported_at: datetime | None = None,
                    progress: Progress | None = None) -> SignedRecord:
    """Read, fingerprint, render and sign the record; nothing is written anywhere."""
    def report(percent: int, stage: str) -> None:
        if progress is not None:
            progress(percent, stage)

    exported_at = exported_at or timezone.now()
    report(5, "Reading the record")
    data = record_data(batch)
    report(30, "Laying out pages")
    rendered = document_render(data, exported_at=exported_at, exported_by=exported_by,
                               progress=lambda share, stage: report(30 + int(55 * share), stage))
    report(88, "Signing")
    signed = pdf_sign(rendered.pdf, rendered.info, created=exported_at)
    return SignedRecord(pdf=signed, fingerprint=data.fingerprint, pages=rendered.pages,
                        sha256=hashlib.sha256(signed).hexdigest())


def file_write_atomic(path: Path, content: bytes) -> None:
    """Write to a temporary sibling, fsync, then rename over `path`: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        with open(temporary, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _export_recorded(*, actor: Actor, batch: Batch, signed: SignedRecord, path: Path, channel: str,
                     export_id: int | None = None) -> None:
    record_event(actor=actor, event=Event.EXPORT_CREATED, target=batch,
                 reason=f"Signed PDF batch record exported ({channel})",
                 data={"format": "pdf", "fingerprint": signed.fingerprint, "file_sha256": signed.sha256,
                       "pages": signed.pages, "bytes": len(signed.pdf), "file": path.name, "export": export_id})


def batch_pdf_write(*, batch: Batch, path: Path, actor: Actor, progress: Progress | None = None) -> ExportResult:
    """The command line's export: build, sign, write `path` atomically, record EXPORT_CREATED.

    A person named as the exporter must hold the export capability, as on the screen: the audit trail
    attributes the export to them (21 CFR 11.10(d), (g)). The system actor is whoever runs the command
    on the server. `path`'s directory must exist: a mistyped path is refused, not created.
    """
    if isinstance(actor, User) and not can(actor, Capability.AUDIT_TRAIL_EXPORT):
        raise PermissionDenied(f"{actor.get_username()}'s role does not allow exporting batch records.")
    if not Path(path).parent.is_dir():
        raise FileNotFoundError(f"the directory {Path(path).parent} does not exist")
    signed = batch_pdf_build(batch, exported_by=exporter_label(actor), progress=progress)
    file_write_atomic(Path(path), signed.pdf)
    with transaction.atomic():
        _export_recorded(actor=actor, batch=batch, signed=signed, path=Path(path), channel="command line")
    return ExportResult(path=Path(path), fingerprint=signed.fingerprint, pages=signed.pages, sha256=signed.sha256,
                        size=len(signed.pdf))


# --- the screen's asynchronous path ----------------------------------------------------------------

@transaction.atomic
def pdf_export_request(*, actor: User, batch: Batch) -> PdfExport:
    """QA or an auditor asks for the signed PDF; the work is queued after commit (outbox)."""
    if not can(actor, Capability.AUDIT_TRAIL_EXPORT):
        raise PermissionDenied("Your role does not allow exporting batch records.")
    in_flight = (PdfExport.objects.select_for_update()
                 .filter(batch=batch, requested_by=actor, status__in=[PdfExportStatus.PENDING, PdfExportStatus.RUNNING])
                 .first())
    if in_flight is not None:
        return in_flight
    export = PdfExport.objects.create(batch=batch, requested_by=actor)
    enqueue(TASK_NAME, export_id=export.pk)
    return export


def export_path(export: PdfExport) -> Path:
    return Path(settings.PDF_EXPORT_DIR) / f"{export.batch.number}-export-{export.pk}.pdf"


def _partials_remove(path: Path) -> None:
    """Temporary files a killed run left beside the target (never the target itself)."""
    for partial in path.parent.glob(f".{path.name}.*.part"):
        partial.unlink(missing_ok=True)


def _advisory_lock(export_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_CLASS, export_id])
        return bool(cursor.fetchone()[0])


def _advisory_unlock(export_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_CLASS, export_id])


class _ProgressWriter:
    """Progress to the row at most twice a second, committed, so the polling screen sees it."""

    def __init__(self, export: PdfExport) -> None:
        self.export = export
        self.last = 0.0

    def __call__(self, percent: int, stage: str) -> None:
        now = time.monotonic()
        if now - self.last < 0.5 and percent < 100:
            return
        self.last = now
        self.export.progress, self.export.stage = min(percent, 99), stage[:100]
        self.export.save(update_fields=["progress", "stage"])


def _mark_running(export: PdfExport) -> None:
    export.status, export.progress, export.stage = PdfExportStatus.RUNNING, 1, "Starting"
    export.attempts += 1
    export.started_at, export.error = timezone.now(), ""
    export.save(update_fields=["status", "progress", "stage", "attempts", "started_at", "error"])


def _mark_failed(export: PdfExport, error: BaseException) -> None:
    export.status, export.stage = PdfExportStatus.FAILED, "Failed"
    export.error, export.finished_at = f"{type(error).__name__}: {error}"[:2000], timezone.now()
    export.save(update_fields=["status", "stage", "error", "finished_at"])


def _mark_done(export_id: int, signed: SignedRecord, path: Path) -> PdfExport:
    with transaction.atomic():
        export = PdfExport.objects.select_for_update().select_related("batch", "requested_by").get(pk=export_id)
        if export.status == PdfExportStatus.DONE:
            return export
        export.status, export.progress, export.stage = PdfExportStatus.DONE, 100, "Done"
        export.fingerprint, export.file_sha256, export.file_size = signed.fingerprint, signed.sha256, len(signed.pdf)
        export.file_path, export.pages, export.finished_at = str(path), signed.pages, timezone.now()
        export.save(update_fields=["status", "progress", "stage", "fingerprint", "file_sha256", "file_size",
                                   "file_path", "pages", "finished_at"])
        _export_recorded(actor=export.requested_by, batch=export.batch, signed=signed, path=path, channel="screen",
                         export_id=export.pk)
    return export


def pdf_export_run(export_id: int) -> PdfExport:
    """The task's work, idempotent: done stays done; a rerun after a crash starts again from scratch."""
    export = PdfExport.objects.select_related("batch", "requested_by").get(pk=export_id)
    if export.status == PdfExportStatus.DONE:
        return export
    if not _advisory_lock(export_id):
        log.info("PDF export %s is being produced by another worker; leaving it", export_id)
        return export
    try:
        export.refresh_from_db()
        if export.status == PdfExportStatus.DONE:  # another worker finished it between our read and our lock
            return export
        _mark_running(export)
        path = export_path(export)
        _partials_remove(path)
        signed = batch_pdf_build(export.batch, exported_by=exporter_label(export.requested_by),
                                 progress=_ProgressWriter(export))
        file_write_atomic(path, signed.pdf)
        return _mark_done(export_id, signed, path)
    except Exception as error:
        _mark_failed(export, error)
        raise
    finally:
        _advisory_unlock(export_id)


def export_file(export: PdfExport) -> Path | None:
    """The finished file, if it is there and still the one recorded (its SHA-256 is checked)."""
    if export.status != PdfExportStatus.DONE or not export.file_path:
        return None
    path = Path(export.file_path)
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != export.file_sha256:
        return None
    return path


