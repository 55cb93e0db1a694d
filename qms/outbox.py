"""The transactional outbox: background work recorded with the change that needs it.

`enqueue()` writes a row in the caller's transaction and asks for it to be sent once that
transaction commits. If the broker is down at that moment the row simply stays pending, and
`outbox_sweep()` (run by the `outbox_relay` process and by celery beat) sends it later. A
message can therefore be sent more than once (a crash between sending and marking it sent),
never zero times: tasks must be idempotent, keyed on what they act on.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from qms.models import OutboxMessage

log = logging.getLogger(__name__)


def enqueue(task_name: str, **kwargs: Any) -> OutboxMessage:
    """Record work for `task_name` in the current transaction; it is sent after commit."""
    message = OutboxMessage.objects.create(task_name=task_name, kwargs=kwargs)
    transaction.on_commit(lambda: outbox_dispatch(message.pk))
    return message


def _publish(message: OutboxMessage) -> None:
    from ebr.celery import app

    app.send_task(
        message.task_name, kwargs=message.kwargs, task_id=message.celery_task_id,
        retry=True,
        retry_policy={"max_retries": settings.OUTBOX_PUBLISH_RETRIES, "interval_start": 0,
                      "interval_step": 0.5, "interval_max": 1},
    )


def outbox_dispatch(message_id: int) -> bool:
    """Send one pending message; True when it was sent now. Safe to call concurrently."""
    with transaction.atomic():
        message = (OutboxMessage.objects.select_for_update(skip_locked=True)
                   .filter(pk=message_id, dispatched_at__isnull=True).first())
        if message is None:
            return False
        try:
            _publish(message)
        except Exception as error:
            log.warning("outbox %s (%s) not sent, will retry: %s", message.pk, message.task_name, error)
            OutboxMessage.objects.filter(pk=message.pk).update(
                attempts=F("attempts") + 1, last_error=str(error)[:2000])
            return False
        OutboxMessage.objects.filter(pk=message.pk).update(
            dispatched_at=timezone.now(), attempts=F("attempts") + 1, last_error="")
        return True


def outbox_sweep(limit: int = 500) -> int:
    """Send what is still pending (a broker outage, a crash after commit). Returns how many."""
    cutoff = timezone.now() - settings.OUTBOX_SWEEP_AGE
    pending = list(OutboxMessage.objects.filter(dispatched_at__isnull=True, created_at__lte=cutoff)
                   .order_by("id").values_list("id", flat=True)[:limit])
    return sum(1 for message_id in pending if outbox_dispatch(message_id))


def outbox_pending_count() -> int:
    return OutboxMessage.objects.filter(dispatched_at__isnull=True).count()
