"""The export task for real: a Celery worker produces the PDF asked for on the screen, and a worker
killed with SIGKILL while writing leaves no half file behind; the re-delivered task finishes the job.

Data here is committed (other processes read it), with unique names, because the audit tables
are append-only and cannot be flushed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.test import Client

from ebr.models import Material, PdfExport, PdfExportStatus
from ebr.pdf.export import pdf_export_run
from ebr.pdf.signing import demo_pki_ensure
from qms.audit import Event, create_with_reason
from qms.models import AuditEvent
from qms.roles import Role
from tests.conftest import ROOT, SEED, RedisServer, Worker, database_url, login, person
from tests.ebr.conftest import build_version, create_batch
from tests.ebr.test_pdf import verify

KILLED_WHILE_WRITING = """
import os, signal, sys
import django
django.setup()
import ebr.pdf.export as export

def write_half_then_die(path, content):
    partial = path.with_name(f".{path.name}.killed.part")
    partial.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "wb") as handle:
        handle.write(content[: len(content) // 2])
        handle.flush()
        os.fsync(handle.fileno())
    os.kill(os.getpid(), signal.SIGKILL)

export.file_write_atomic = write_half_then_die
export.pdf_export_run(int(sys.argv[1]))
"""


@pytest.fixture
def pki_settings(tmp_path: Path, settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A demo PKI and export folder, as environment (for other processes) and as settings (for this one)."""
    pki = demo_pki_ensure(tmp_path / "pki")
    settings.PDF_SIGNING_KEY, settings.PDF_SIGNING_CERT = pki.signing_key, pki.signing_cert
    settings.PDF_SIGNING_CHAIN = settings.PDF_TRUST_ROOTS = [pki.ca_cert]
    settings.PDF_EXPORT_DIR, settings.PDF_TSA_URL = tmp_path / "exports", ""
    return {"PDF_SIGNING_KEY": str(pki.signing_key), "PDF_SIGNING_CERT": str(pki.signing_cert),
            "PDF_SIGNING_CHAIN": str(pki.ca_cert), "PDF_TRUST_ROOTS": str(pki.ca_cert),
            "PDF_EXPORT_DIR": str(tmp_path / "exports"), "PDF_TSA_URL": ""}


@pytest.mark.django_db
def test_export_task_is_registered_under_its_stable_name() -> None:
    """Also makes pytest-django create the test database when this module runs alone."""
    from ebr.celery import app

    app.loader.import_default_modules()  # what a worker does at start (autodiscovery of ebr/tasks.py)
    assert "ebr.batch_pdf_export" in app.tasks


def committed_batch():  # type: ignore[no-untyped-def]
    """People, a master record and a started batch, committed, with names no other test uses."""
    tag = uuid.uuid4().hex[:6]
    supervisor = person(Role.SUPERVISOR, "Sofia Supervisor")
    reviewer, approver = person(Role.QA_REVIEWER, "Quentin Reviewer"), person(Role.QA_APPROVER, "Claire Approver")
    auditor = person(Role.AUDITOR, "Arthur Auditor")
    media = create_with_reason(Material, actor=SEED, reason="test", code=f"MED-{tag}", name="Medium", unit="mL")
    version = build_version(supervisor, reviewer, approver, {"media": media}, code=f"MBR-{tag.upper()}")
    return create_batch(supervisor, version), auditor


def test_sigkill_while_writing_leaves_no_half_file_and_the_rerun_finishes(committed, pki_settings):
    batch, auditor = committed_batch()
    export = PdfExport.objects.create(batch=batch, requested_by=auditor)
    env = {**os.environ, **pki_settings, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "ebr.settings"}

    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(export.pk)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)

    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    export.refresh_from_db()
    target = Path(pki_settings["PDF_EXPORT_DIR"]) / f"{batch.number}-export-{export.pk}.pdf"
    assert export.status == PdfExportStatus.RUNNING and export.attempts == 1
    assert not target.exists()  # readers never see a half-written record
    assert list(target.parent.glob(f".{target.name}.*.part"))

    done = pdf_export_run(export.pk)  # the broker re-delivers the task (acks late, reject on worker lost)

    assert done.status == PdfExportStatus.DONE and done.attempts == 2
    assert Path(done.file_path) == target and verify(target)[0] == 0
    assert not list(target.parent.glob(f".{target.name}.*.part"))
    assert AuditEvent.objects.filter(event_type=Event.EXPORT_CREATED, data__export=export.pk).count() == 1
    assert pdf_export_run(export.pk).file_sha256 == done.file_sha256  # done is never redone


@pytest.mark.worker
def test_a_real_worker_produces_the_export_requested_on_the_screen(committed, broker: RedisServer, pki_settings,
                                                                   tmp_path, monkeypatch):
    for name, value in pki_settings.items():
        monkeypatch.setenv(name, value)
    worker = Worker(broker.url, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        batch, auditor = committed_batch()
        client = login(Client(), auditor)
        assert client.post(f"/batches/{batch.number}/pdf/export/", HTTP_HX_REQUEST="true").status_code == 202
        export = PdfExport.objects.get(batch=batch)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            export.refresh_from_db()
            if export.status in (PdfExportStatus.DONE, PdfExportStatus.FAILED):
                break
            time.sleep(0.5)
        assert export.status == PdfExportStatus.DONE, (export.error, worker.log.read_text()[-3000:])
        panel = client.get(f"/batches/{batch.number}/pdf/").content.decode()
        assert f'data-export="{export.pk}" data-status="done"' in panel
        download = client.get(f"/batches/{batch.number}/pdf/{export.pk}/download/")
        assert download.status_code == 200
        path = tmp_path / "downloaded.pdf"
        path.write_bytes(b"".join(download.streaming_content))
        assert verify(path)[0] == 0
    finally:
        worker.stop()
