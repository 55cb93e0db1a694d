"""Celery tasks of the quality system: thin wrappers that call one function each."""

from __future__ import annotations

from celery import shared_task

from qms.audit import Event, SystemActor, record_event, record_security_event
from qms.audit.chain import audit_chain_verify
from qms.outbox import outbox_sweep as sweep


@shared_task(name="qms.outbox_sweep", ignore_result=True)
def outbox_sweep() -> int:
    return sweep()


@shared_task(name="qms.audit_trail_verify")
def audit_trail_verify(request_id: str = "") -> dict[str, object]:
    """Daily check of the hash chain; a break raises an alert event (Annex 11 §9).

    `request_id` names who asked (beat, a QA request through the outbox) in the event.
    """
    report = audit_chain_verify()
    actor = SystemActor("system:celery")
    data = {"entries": report.entries, "rows_checked": report.rows_checked, "request_id": request_id}
    if report.intact:
        record_event(actor=actor, event=Event.AUDIT_TRAIL_VERIFIED, data=data)
    else:
        record_security_event(actor=actor, event=Event.AUDIT_TRAIL_BROKEN, reason=str(report.first_break),
                              data=data)
        _alert_administrators(str(report.first_break))
    return {"intact": report.intact, "entries": report.entries, "first_break": str(report.first_break or "")}


@shared_task(name="qms.heartbeat")
def heartbeat(token: str) -> str:
    """Answers with what it was given: proves a worker is consuming the queue."""
    return token


def _alert_administrators(first_break: str) -> None:
    from django.core.mail import mail_admins

    mail_admins("Audit trail verification FAILED",
                f"verify_audit_trail found a break: {first_break}\nInvestigate before any further release.",
                fail_silently=True)


@shared_task(name="qms.reminders_send", ignore_result=True)
def reminders_send() -> dict[str, int]:
    """Beat: today's due-soon and overdue reminders, each sent once (idempotent by key)."""
    from qms.services.reminders import reminders_send as send

    run = send()
    return {"created": run.created, "emailed": run.emailed}


@shared_task(name="qms.sessions_expire_idle", ignore_result=True)
def sessions_expire_idle() -> int:
    """Beat: end and record the sessions idle past SESSION_IDLE_TIMEOUT whose person never came back."""
    from qms.services.sessions import sessions_expire_idle as expire

    return expire()


@shared_task(name="qms.notification_email", ignore_result=True)
def notification_email(notification_id: int) -> bool:
    """Outbox: e-mail one notification after the transaction that created it committed."""
    from qms.services.notifications import notification_email_send

    return notification_email_send(notification_id)
