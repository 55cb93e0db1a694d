"""Celery tasks of the manufacturing side: take ids, re-fetch, call one function, idempotent."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail

from ebr.models import Batch, PdfExportStatus
from qms.audit import Event, SystemActor, record_event
from qms.models import AuditEvent, User
from qms.roles import Role


@shared_task(name="ebr.batch_completed_notify", bind=True, max_retries=5, default_retry_delay=30)
def batch_completed_notify(self, batch_id: int) -> int:  # type: ignore[no-untyped-def]
    """Tell QA reviewers that a batch record awaits review; once per batch, however often it runs."""
    batch = Batch.objects.get(pk=batch_id)
    already = AuditEvent.objects.filter(event_type=Event.QA_NOTIFIED, target_type="ebr.batch",
                                        target_id=str(batch.pk)).exists()
    if already:
        return 0
    reviewers = list(User.objects.filter(groups__name=Role.QA_REVIEWER.value, is_active=True))
    addresses = [user.email for user in reviewers if user.email]
    if addresses:
        send_mail(subject=f"Batch {batch.number} completed: record ready for QA review",
                  message=f"Batch {batch.number} ({batch.master_version}) is completed and waits for review.",
                  from_email=settings.DEFAULT_FROM_EMAIL, recipient_list=addresses)
    record_event(actor=SystemActor("system:celery"), event=Event.QA_NOTIFIED, target=batch,
                 data={"recipients": [user.username for user in reviewers]})
    return len(reviewers)


@shared_task(name="ebr.alarms_evaluate", bind=True, max_retries=10, default_retry_delay=10)
def alarms_evaluate(self, post_id: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Evaluate one post of instrument readings for alarms; once per post, however often it runs."""
    from django.db import OperationalError

    from ebr.services.alarms import alarms_evaluate as evaluate

    try:
        return evaluate(post_id=post_id).as_dict()
    except OperationalError as error:  # database restarting, lock timeout: try again later
        raise self.retry(exc=error) from error


@shared_task(name="ebr.alarms_evaluate_posts", bind=True, max_retries=10, default_retry_delay=10)
def alarms_evaluate_posts(self, calls: list[dict[str, int]]) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Evaluate several posts, in the order given: the outbox relay sends the `ebr.alarms_evaluate`
    work of one sweep as one message. Each post once, however often the group runs.

    A post that fails for good does not hold back the posts after it; the task fails at the end,
    naming it. A database error retries the whole group: posts done already are skipped.
    """
    from django.db import OperationalError

    from ebr.services.alarms import alarms_evaluate_each

    try:
        evaluations = alarms_evaluate_each([call["post_id"] for call in calls])
    except OperationalError as error:  # database restarting, lock timeout: try again later
        raise self.retry(exc=error) from error
    return {"posts": len(calls), "already_done": sum(evaluation.already_done for evaluation in evaluations)}


@shared_task(name="ebr.alarms_evaluate_overdue", ignore_result=True)
def alarms_evaluate_overdue() -> int:
    """Celery beat, every minute: posts whose alarm evaluation never arrived are evaluated now."""
    from ebr.services.alarms import alarms_evaluate_overdue as evaluate_overdue

    return len(evaluate_overdue())


@shared_task(name="ebr.feed_gaps_check", ignore_result=True)
def feed_gaps_check() -> int:
    """Celery beat, every minute: instruments silent for longer than INSTRUMENT_FEED_GAP."""
    from ebr.services.alarms import feed_gaps_check as check

    return check()


@shared_task(name="ebr.batch_pdf_export", bind=True, max_retries=3, default_retry_delay=30)
def batch_pdf_export(self, export_id: int) -> str:  # type: ignore[no-untyped-def]
    """Produce one requested signed PDF record (ebr/pdf/export.py): done stays done; a rerun starts afresh."""
    from django.db import OperationalError

    from ebr.pdf.export import pdf_export_run

    try:
        export = pdf_export_run(export_id)
    except OperationalError as error:  # the database went away: the row is not done, try again later
        raise self.retry(exc=error) from error
    if export.status != PdfExportStatus.DONE:
        # Another session holds the export's lock: a duplicate delivery still at work, or the connection
        # of a worker killed a moment ago that PostgreSQL has not closed yet. Acknowledging now would
        # leave the export unfinished for good; look again later (a finished export is never redone).
        raise self.retry()
    return str(export.status)
