"""Exporting the signed PDF from the batch page: who may, the queued task, progress, download, idempotency.

Covers the PdfExport row and the `ebr.batch_pdf_export` task's work (run in-process here; a real
worker and a real kill -9 are in test_pdf_export_task.py).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ebr.models import PdfExport, PdfExportStatus
from ebr.pdf.export import pdf_export_run
from qms.audit import Event
from qms.models import AuditEvent, OutboxMessage
from qms.roles import Role
from tests.conftest import login
from tests.ebr.conftest import create_batch
from tests.ebr.test_pdf import pki, pki_dir, verify  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pki")]

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def planned_batch(supervisor, version):  # type: ignore[no-untyped-def]
    return create_batch(supervisor, version)


def test_people_without_the_export_capability_get_no_panel_and_cannot_export(client, operator, planned_batch):
    login(client, operator)

    assert client.get(f"/batches/{planned_batch.number}/pdf/").status_code == 204
    assert client.post(f"/batches/{planned_batch.number}/pdf/export/", **HTMX).status_code == 403
    assert not PdfExport.objects.filter(batch=planned_batch).exists()


def test_batch_page_loads_the_export_panel_for_auditors(client, auditor, planned_batch):
    login(client, auditor)

    page = client.get(f"/batches/{planned_batch.number}/").content.decode()
    panel = client.get(f"/batches/{planned_batch.number}/pdf/")

    assert f'hx-get="/batches/{planned_batch.number}/pdf/"' in page
    assert panel.status_code == 200 and "Export signed PDF" in panel.content.decode()


def test_export_request_queues_the_task_through_the_outbox_and_polls(client, auditor, planned_batch):
    login(client, auditor)

    response = client.post(f"/batches/{planned_batch.number}/pdf/export/", **HTMX)
    again = client.post(f"/batches/{planned_batch.number}/pdf/export/", **HTMX)

    export = PdfExport.objects.get(batch=planned_batch)
    assert response.status_code == 202 and again.status_code == 202  # the second asks for the same, in flight
    assert export.status == PdfExportStatus.PENDING and export.requested_by == auditor
    message = OutboxMessage.objects.get(task_name="ebr.batch_pdf_export", kwargs={"export_id": export.pk})
    assert message.dispatched_at is None  # sent after commit, never from inside the transaction
    body = response.content.decode()
    assert 'hx-trigger="every 1s"' in body and "<progress" in body


def test_finished_export_is_downloadable_by_its_requester_only_and_recorded(client, auditor, planned_batch,
                                                                           make_user):
    login(client, auditor)
    client.post(f"/batches/{planned_batch.number}/pdf/export/", **HTMX)
    export = PdfExport.objects.get(batch=planned_batch)

    done = pdf_export_run(export.pk)

    assert done.status == PdfExportStatus.DONE and done.progress == 100 and done.pages and done.fingerprint
    panel = client.get(f"/batches/{planned_batch.number}/pdf/").content.decode()
    assert "Download" in panel and 'hx-trigger="every 1s"' not in panel
    download = client.get(f"/batches/{planned_batch.number}/pdf/{export.pk}/download/")
    content = b"".join(download.streaming_content)
    assert download["Content-Type"] == "application/pdf" and content.startswith(b"%PDF")
    assert hashlib.sha256(content).hexdigest() == done.file_sha256
    event = AuditEvent.objects.get(event_type=Event.EXPORT_CREATED, data__export=export.pk)
    assert event.actor_id == auditor.pk and event.data["fingerprint"] == done.fingerprint
    assert verify(Path(done.file_path))[0] == 0
    other = make_user(Role.AUDITOR)
    client.logout()
    login(client, other)
    assert client.get(f"/batches/{planned_batch.number}/pdf/{export.pk}/download/").status_code == 404


def test_a_done_export_is_not_redone_and_a_changed_file_is_not_served(client, auditor, planned_batch):
    login(client, auditor)
    client.post(f"/batches/{planned_batch.number}/pdf/export/", **HTMX)
    export = pdf_export_run(PdfExport.objects.get(batch=planned_batch).pk)

    rerun = pdf_export_run(export.pk)

    assert (rerun.file_sha256, rerun.finished_at) == (export.file_sha256, export.finished_at)
    assert AuditEvent.objects.filter(event_type=Event.EXPORT_CREATED, data__export=export.pk).count() == 1
    path = Path(export.file_path)
    path.write_bytes(path.read_bytes() + b"\n%")
    assert client.get(f"/batches/{planned_batch.number}/pdf/{export.pk}/download/").status_code == 404
