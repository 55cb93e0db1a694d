"""In-app notifications and their e-mails (assignments, reminders).

Notifications are infrastructure, not GxP records: they are not audited, and reading one
changes it freely. A notification with a `key` exists at most once, so a reminder computed
twice (a retried or overlapping beat run) is never sent twice. E-mails go out after the
creating transaction commits (through the outbox) or from the reminder run; sending one locks
its row and skips rows another worker holds, so two workers never send the same e-mail.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from qms.conf import EMAIL_MAX_ATTEMPTS, site_url
from qms.models import Notification, User
from qms.outbox import enqueue

log = logging.getLogger(__name__)


def notify(*, user: User, text: str, link: str = "", key: str | None = None, email: bool = True,
           email_after_commit: bool = True) -> Notification | None:
    """Notify `user` in the app, and by e-mail when `email`; None when `key` was already used.

    The e-mail is queued in the outbox to go out after commit, unless the caller sends it itself
    (`email_after_commit=False`, as the reminder run does).
    """
    if not user.is_active:
        return None
    wanted = email and bool(user.email)
    try:
        with transaction.atomic():  # a savepoint: a duplicate key leaves the caller's transaction usable
            notification = Notification.objects.create(user=user, text=text[:500], link=link[:300], key=key,
                                                       email_wanted=wanted)
    except IntegrityError:
        if key and Notification.objects.filter(key=key).exists():
            return None
        raise
    if wanted and email_after_commit:
        enqueue("qms.notification_email", notification_id=notification.pk)
    return notification


def notify_all(*, users: Iterable[User], text: str, link: str = "", email: bool = False) -> int:
    return sum(1 for user in users if notify(user=user, text=text, link=link, email=email))


def notification_read(*, user: User, notification_id: int) -> bool:
    """Mark one of the user's own notifications read."""
    notification = Notification.objects.filter(pk=notification_id, user=user, read_at__isnull=True).first()
    if notification is None:
        return False
    notification.read_at = timezone.now()
    notification.save(update_fields=["read_at"])
    return True


def notifications_read_all(*, user: User) -> int:
    count = 0
    for notification in Notification.objects.filter(user=user, read_at__isnull=True):
        notification.read_at = timezone.now()
        notification.save(update_fields=["read_at"])
        count += 1
    return count


def _message(notification: Notification) -> tuple[str, str]:
    subject = f"[{settings.FACILITY_NAME}] {notification.text}"[:200]
    body = notification.text
    if notification.link:
        body += f"\n\n{site_url()}{notification.link}"
    body += "\n\nThis message was sent by the electronic batch record system. Do not reply."
    return subject, body


def notification_email_send(notification_id: int) -> bool:
    """E-mail one notification once: True when it was sent now."""
    with transaction.atomic():
        notification = (Notification.objects.select_for_update(skip_locked=True, of=("self",))
                        .select_related("user").filter(pk=notification_id, emailed_at__isnull=True, email_wanted=True)
                        .first())
        if notification is None or not notification.user.email or not notification.user.is_active:
            return False
        if notification.email_attempts >= EMAIL_MAX_ATTEMPTS:
            return False
        subject, body = _message(notification)
        notification.email_attempts += 1
        try:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [notification.user.email])
        except Exception as error:  # the mail server is down: keep the row for the next run
            log.warning("notification %s not e-mailed: %s", notification.pk, error)
            notification.email_error = str(error)[:2000]
            notification.save(update_fields=["email_attempts", "email_error"])
            return False
        notification.emailed_at = timezone.now()
        notification.email_error = ""
        notification.save(update_fields=["emailed_at", "email_attempts", "email_error"])
        return True


def notification_emails_pending(limit: int = 500) -> list[int]:
    """Notifications whose e-mail is still owed (sent later by the reminder run)."""
    return list(Notification.objects.filter(email_wanted=True, emailed_at__isnull=True,
                                            email_attempts__lt=EMAIL_MAX_ATTEMPTS)
                .exclude(user__email="").filter(user__is_active=True)
                .order_by("id").values_list("id", flat=True)[:limit])
