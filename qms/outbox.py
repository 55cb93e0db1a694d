"""The transactional outbox: background work recorded with the change that needs it.

`enqueue()` writes a row in the caller's transaction and asks for it to be sent once that
transaction commits. If the broker is down at that moment the row simply stays pending, and
`outbox_sweep()` (run by the `outbox_relay` process and by celery beat) sends it later. A
message can therefore be sent more than once (a crash between sending and marking it sent),
never zero times: tasks must be idempotent, keyed on what they act on.

Work queued at a high rate (alarm evaluation after every instrument post, settings
`OUTBOX_RELAY_TASKS`) is not sent by the request that queued it: the row is written and the
relay is woken by a PostgreSQL NOTIFY, which is delivered at commit. The relay sends everything
pending in one transaction per sweep, so an instrument post pays for an INSERT and a NOTIFY and
no broker round trip, and a broker outage never slows the posts down.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from qms.models import OutboxMessage

log = logging.getLogger(__name__)

RELAY_CHANNEL = "qms_outbox"
RELAY_GATHER_SECONDS = 0.05
SWEEP_LIMIT = 500
ENQUEUE_SQL = """
INSERT INTO qms_outboxmessage (task_name, kwargs, created_at, attempts, last_error)
VALUES (%s, %s::jsonb, %s, 0, '') RETURNING id
"""
ENQUEUE_RELAY_SQL = f"""
WITH message AS ({ENQUEUE_SQL})
SELECT id, pg_notify('{RELAY_CHANNEL}', '') FROM message
"""  # noqa: S608 (built from the constants above)


def enqueue(task_name: str, **kwargs: Any) -> OutboxMessage:
    """Record work for `task_name` in the current transaction; it is sent after commit."""
    relay_sent = task_name in settings.OUTBOX_RELAY_TASKS
    message = OutboxMessage(task_name=task_name, kwargs=kwargs, created_at=timezone.now())
    with connection.cursor() as cursor:
        # One plain statement: instrument posts queue work many times a second. The NOTIFY is
        # delivered at commit (never for a rollback); several in one transaction fold into one.
        cursor.execute(ENQUEUE_RELAY_SQL if relay_sent else ENQUEUE_SQL,
                       [task_name, json.dumps(kwargs, cls=DjangoJSONEncoder), message.created_at])
        message.pk = cursor.fetchone()[0]
    message._state.adding = False
    if not relay_sent:
        transaction.on_commit(lambda: outbox_dispatch(message.pk))
    return message


def _publish(message: OutboxMessage) -> None:
    from ebr.celery import app

    app.send_task(
        message.task_name, kwargs=message.kwargs, task_id=message.celery_task_id,
        # Outbox work reports its outcome in the database, never through a Celery result: not
        # subscribing to one saves the relay a Redis round trip per message.
        ignore_result=True,
        retry=True,
        retry_policy={"max_retries": settings.OUTBOX_PUBLISH_RETRIES, "interval_start": 0,
                      "interval_step": 0.5, "interval_max": 1},
    )


def outbox_dispatch(message_id: int) -> bool:
    """Send one pending message; True when it was sent now. Safe to call concurrently."""
    return _dispatch_locked(OutboxMessage.objects.filter(pk=message_id)) == 1


def _dispatch_locked(pending: Any) -> int:
    """Send the pending messages of `pending` that no one else is sending; returns how many.

    The rows stay locked until their `dispatched_at` is written, so two relays (or a relay and
    the request that queued the work) never send the same message in the same moment.
    """
    with transaction.atomic():
        messages = list(pending.select_for_update(skip_locked=True).filter(dispatched_at__isnull=True)
                        .order_by("id"))
        sent: list[int] = []
        for message in messages:
            try:
                _publish(message)
            except Exception as error:
                log.warning("outbox %s (%s) not sent, will retry: %s", message.pk, message.task_name, error)
                # Only this message was tried; the rest wait untouched for the broker to come back.
                OutboxMessage.objects.filter(pk=message.pk).update(attempts=F("attempts") + 1,
                                                                   last_error=str(error)[:2000])
                break
            sent.append(message.pk)
        if sent:
            OutboxMessage.objects.filter(pk__in=sent).update(
                dispatched_at=timezone.now(), attempts=F("attempts") + 1, last_error="")
        return len(sent)


def outbox_sweep(limit: int = SWEEP_LIMIT) -> int:
    """Send what is still pending (a broker outage, a crash after commit, relay-sent work).

    Messages the queuing request sends itself are left alone for OUTBOX_SWEEP_AGE, so that the
    sweep does not race the request for them. Returns how many were sent.
    """
    cutoff = timezone.now() - settings.OUTBOX_SWEEP_AGE
    due = Q(created_at__lte=cutoff) | Q(task_name__in=settings.OUTBOX_RELAY_TASKS)
    pending = list(OutboxMessage.objects.filter(due, dispatched_at__isnull=True)
                   .order_by("id").values_list("id", flat=True)[:limit])
    return _dispatch_locked(OutboxMessage.objects.filter(pk__in=pending)) if pending else 0


def outbox_relay_listen() -> None:
    """Ask PostgreSQL to wake this connection when relay-sent work is committed."""
    with connection.cursor() as cursor:
        cursor.execute(f"LISTEN {RELAY_CHANNEL}")


def outbox_relay_wait(seconds: float, *, gather: float = RELAY_GATHER_SECONDS) -> bool:
    """Wait up to `seconds` for a wake-up from `enqueue`; True when one came.

    After a wake-up the relay lingers `gather` seconds and takes every wake-up that came
    meanwhile, so that a burst of instrument posts is sent by one sweep (one transaction)
    rather than one sweep per post: measured, a sweep per post cost the relay about 3 ms of CPU
    a post at 45 posts a second.
    """
    connection.ensure_connection()
    with connection.wrap_database_errors:  # a lost connection surfaces as Django's DatabaseError
        woken = any(True for _ in connection.connection.notifies(timeout=seconds, stop_after=1))
        if woken and gather:
            time.sleep(gather)
            for _ in connection.connection.notifies(timeout=0):
                pass
    return woken
