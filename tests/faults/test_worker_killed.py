"""Kill -9 a Celery worker in the middle of a batch review and of a PDF export (issue #9, faults 2).

The work reaches the worker the way production sends it (a service writes an outbox row, the
row is sent to Redis after commit). When the task has demonstrably started (its first committed
progress is in the database), the whole worker (main process and pool child) is killed with
SIGKILL: nothing acknowledges the message, nothing marks the work failed. A new worker then
picks the message up again (acks_late; tests/faults/redelivery_app.py shortens the visibility
timeout after which Redis hands an unacknowledged message out again) and the work completes
exactly once: one review with no duplicate flag, one export record, audit events not repeated.

The batch is the 300-step, 2,100-text batch of the review benchmark (set-based SQL, test data
only), so that the review runs in several committed chunks and the PDF takes a while to lay out.
"""

from __future__ import annotations

import hashlib
import os
import signal
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from ebr.models import PdfExport, PdfExportStatus
from nlp_review.models import BatchReview, ReviewFlag, ReviewStatus
from qms.audit import Event
from qms.models import AuditEvent, OutboxMessage
from qms.roles import Role
from tests.conftest import RedisServer, database_url, person
from tests.faults.conftest import CeleryWorker, ProcessGroup, children, figures, in_broker, received, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.worker]

REDELIVERY_APP = "tests.faults.redelivery_app"


def _big_batch(monkeypatch: pytest.MonkeyPatch, steps: int = 300):  # type: ignore[no-untyped-def]
    """A completed batch of `steps` steps with 7 texts each (the review benchmark's builder)."""
    from tests.bench import test_pdf_export as pdf_bench
    from tests.bench import test_review_batch as review_bench

    assert steps % 20 == 0  # 20 steps a stage
    for module in (pdf_bench, review_bench):  # the builder sets the PDF benchmark's sizes from its own
        monkeypatch.setattr(module, "STEPS", steps)
        monkeypatch.setattr(module, "PARAMETERS_PER_STEP", 7)
    return review_bench._big_batch()


def _kill_and_replace(first: CeleryWorker, processes: ProcessGroup, log: Path, broker: RedisServer) -> CeleryWorker:
    first.kill()
    assert not first.alive()
    return processes.add(CeleryWorker(log, broker.url, app=REDELIVERY_APP)).wait_ready()


def test_worker_killed_mid_review_the_new_worker_finishes_it_once(committed, broker, processes, tmp_path,
                                                                  monkeypatch):
    from nlp_review.services import review_rerun_request

    # 7,000 texts: 14 chunks of 500, each its own transaction; the kill comes after the first.
    batch = _big_batch(monkeypatch, steps=1000)
    reviewer = person(Role.QA_REVIEWER, "Quentin Reviewer")
    first = processes.add(CeleryWorker(tmp_path / "worker-1.log", broker.url)).wait_ready()

    # An outbox row, sent after commit.
    request_id = review_rerun_request(actor=reviewer, batch=batch, reason="Fault test: review again")

    def first_chunk_committed() -> BatchReview | None:
        return BatchReview.objects.filter(request_id=request_id, progress_done__gt=1).first()

    started = wait_for(first_chunk_committed, what="the review's first chunk", log=first.log, interval=0.01)
    second = _kill_and_replace(first, processes, tmp_path / "worker-2.log", broker)
    killed_at = BatchReview.objects.get(pk=started.pk)
    assert killed_at.status == ReviewStatus.RUNNING and killed_at.progress_done < killed_at.progress_total, \
        "the review finished before the worker was killed: nothing was interrupted"

    wait_for(lambda: BatchReview.objects.filter(pk=started.pk, status=ReviewStatus.DONE).exists(),
             what="the review finished by the new worker", log=second.log)
    task_id = OutboxMessage.objects.get(task_name="nlp_review.review_batch",
                                        kwargs__request_id=request_id).celery_task_id
    wait_for(lambda: not in_broker(broker.url, {task_id}), what="the task acknowledged", log=second.log)

    review = BatchReview.objects.get(pk=started.pk)
    flags = list(ReviewFlag.objects.filter(review=review).values_list("id", "source_kind", "source_id", "rule",
                                                                       "start", "end"))
    keys = Counter(flag[1:] for flag in flags)
    duplicates = sum(count - 1 for count in keys.values())
    glove_texts = batch.steps.filter(entries__comment__icontains="glove torn").count()
    glove_flags = sum(1 for flag in flags if flag[3] == "aseptic.glove_breach")
    events = AuditEvent.objects.filter(target_type="nlp_review.batchreview", target_id=str(review.pk))
    started_events = events.filter(event_type=Event.REVIEW_RUN_STARTED).count()
    finished_events = events.filter(event_type=Event.REVIEW_RUN_FINISHED).count()
    raised = [event.data["flags"] for event in events.filter(event_type=Event.REVIEW_FLAG_RAISED)]
    flags_in_events = Counter(pk for chunk in raised for pk in chunk)
    deliveries = [received(first.log, task_id), received(second.log, task_id)]
    runs = BatchReview.objects.filter(batch=batch).count()
    figures(f"review killed at {killed_at.progress_done}/{killed_at.progress_total} texts; deliveries "
            f"{deliveries[0]} (killed) + {deliveries[1]}; review runs {runs}, "
            f"flags {len(flags)}, duplicates {duplicates}; glove-breach texts {glove_texts}, flags {glove_flags}; "
            f"audit: started {started_events}, finished {finished_events}, flag events {len(raised)} "
            f"naming {len(flags_in_events)} flags")

    assert runs == 1
    assert review.progress_done == review.progress_total == killed_at.progress_total
    assert duplicates == 0
    assert glove_texts > 0 and glove_flags == glove_texts  # no chunk lost, none reviewed twice
    assert review.flag_count == len(flags)
    assert started_events == 1 and finished_events == 1
    assert set(flags_in_events) == {flag[0] for flag in flags} and max(flags_in_events.values()) == 1
    assert events.filter(event_type=Event.REVIEW_RUN_FAILED).count() == 0
    assert deliveries[0] == 1 and deliveries[1] >= 1


@pytest.fixture
def pki_environment(tmp_path: Path, settings, monkeypatch) -> Path:  # type: ignore[no-untyped-def]
    """A demo PKI and export folder, in this process's settings and in the environment of the workers."""
    from ebr.pdf.signing import demo_pki_ensure

    pki = demo_pki_ensure(tmp_path / "pki")
    exports = tmp_path / "exports"
    values = {"PDF_SIGNING_KEY": str(pki.signing_key), "PDF_SIGNING_CERT": str(pki.signing_cert),
              "PDF_SIGNING_CHAIN": str(pki.ca_cert), "PDF_TRUST_ROOTS": str(pki.ca_cert),
              "PDF_EXPORT_DIR": str(exports), "PDF_TSA_URL": ""}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings.PDF_SIGNING_KEY, settings.PDF_SIGNING_CERT = pki.signing_key, pki.signing_cert
    settings.PDF_SIGNING_CHAIN = settings.PDF_TRUST_ROOTS = [pki.ca_cert]
    settings.PDF_EXPORT_DIR, settings.PDF_TSA_URL = exports, ""
    return exports


def _pdf_export_interrupted(*, whole_worker: bool, broker: RedisServer, processes: ProcessGroup, tmp_path: Path,
                            exports: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ebr.pdf.export import pdf_export_request

    batch = _big_batch(monkeypatch)
    auditor = person(Role.AUDITOR, "Arthur Auditor")
    first = processes.add(CeleryWorker(tmp_path / "worker-1.log", broker.url)).wait_ready()

    export = pdf_export_request(actor=auditor, batch=batch)  # outbox row, sent after commit

    def running() -> PdfExport | None:
        return PdfExport.objects.filter(pk=export.pk, status=PdfExportStatus.RUNNING, progress__gte=5).first()

    wait_for(running, what="the export running", log=first.log, interval=0.05)
    if whole_worker:
        second = _kill_and_replace(first, processes, tmp_path / "worker-2.log", broker)
    else:  # the pool process only, as the kernel's OOM killer would: the main process stays
        (pool_process,) = children(first.pid)
        os.kill(pool_process, signal.SIGKILL)
        second = first
    killed_at = PdfExport.objects.get(pk=export.pk)
    assert killed_at.status == PdfExportStatus.RUNNING, "the export finished before the worker was killed"

    wait_for(lambda: PdfExport.objects.filter(pk=export.pk, status=PdfExportStatus.DONE).exists(),
             what="the export finished after the kill", log=second.log)
    task_id = OutboxMessage.objects.get(task_name="ebr.batch_pdf_export", kwargs__export_id=export.pk).celery_task_id
    wait_for(lambda: not in_broker(broker.url, {task_id}), what="the task acknowledged", log=second.log)

    done = PdfExport.objects.get(pk=export.pk)
    path = Path(done.file_path)
    records = AuditEvent.objects.filter(event_type=Event.EXPORT_CREATED, data__export=export.pk)
    files = sorted(exports.glob(f"{batch.number}-export-*.pdf"))
    partials = list(exports.glob(".*.part"))
    deliveries = [received(first.log, task_id)] + ([received(second.log, task_id)] if whole_worker else [])
    rows = PdfExport.objects.filter(batch=batch).count()
    figures(f"PDF export, {'whole worker' if whole_worker else 'pool process'} killed at {killed_at.progress}% "
            f"({killed_at.stage}); deliveries {' + '.join(map(str, deliveries))}; attempts {done.attempts}; "
            f"export rows {rows}, EXPORT_CREATED events {records.count()}, files {len(files)}, "
            f"partial files {len(partials)}, {done.pages} pages")

    assert rows == 1
    assert records.count() == 1 and records.get().data["file_sha256"] == done.file_sha256
    assert files == [path] and not partials
    assert hashlib.sha256(path.read_bytes()).hexdigest() == done.file_sha256
    assert done.attempts >= 2
    assert deliveries[0] == 1 if whole_worker else deliveries[0] >= 2


def test_worker_killed_mid_pdf_export_the_new_worker_writes_one_record(committed, broker, processes, tmp_path,
                                                                       pki_environment, monkeypatch):
    _pdf_export_interrupted(whole_worker=True, broker=broker, processes=processes, tmp_path=tmp_path,
                            exports=pki_environment, monkeypatch=monkeypatch)


def test_pool_process_killed_mid_pdf_export_its_worker_requeues_it_at_once(committed, broker, processes, tmp_path,
                                                                           pki_environment, monkeypatch):
    """reject_on_worker_lost: the surviving main process puts the message back without waiting for the
    visibility timeout (the production configuration, no redelivery app)."""
    _pdf_export_interrupted(whole_worker=False, broker=broker, processes=processes, tmp_path=tmp_path,
                            exports=pki_environment, monkeypatch=monkeypatch)


def test_a_delivery_that_finds_the_export_locked_is_retried_not_acknowledged(committed, pki_environment, monkeypatch):
    """The race after a kill: the re-delivered task can start before PostgreSQL has ended the killed
    worker's session, which still holds the export's advisory lock. Acknowledging the task then would
    leave the export unfinished for good (and pdf_export_request would keep returning it as in flight)."""
    from celery.exceptions import Retry

    from ebr.pdf.export import LOCK_CLASS
    from ebr.tasks import batch_pdf_export

    export = PdfExport.objects.create(batch=_big_batch(monkeypatch, steps=20),
                                      requested_by=person(Role.AUDITOR, "Arthur Auditor"))
    with psycopg.connect(database_url().replace("postgres://", "postgresql://"), autocommit=True) as lingering:
        lingering.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_CLASS, export.pk])
        with pytest.raises(Retry):  # called directly, Celery raises what a worker would schedule
            batch_pdf_export(export_id=export.pk)
        export.refresh_from_db()
        while_locked = export.status
    retried = batch_pdf_export(export_id=export.pk)  # the retry, once that session is gone
    export.refresh_from_db()
    records = AuditEvent.objects.filter(event_type=Event.EXPORT_CREATED, data__export=export.pk).count()
    figures(f"export locked by a lingering session: delivery retried (export {while_locked}), the retry "
            f"-> {retried}, export {export.status}, EXPORT_CREATED {records}")

    assert while_locked != PdfExportStatus.DONE
    assert retried == "done" and export.status == PdfExportStatus.DONE and records == 1
