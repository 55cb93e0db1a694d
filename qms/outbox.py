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

The relay-sent rows of one task that a sweep takes go to Celery as ONE message (up to
GROUP_LIMIT rows each), to the task OUTBOX_RELAY_TASKS names for it, which takes `calls`: the
kwargs of each row, in id order. Measured in the ingest benchmark, a publish (`send_task`) cost
the relay about 1.06 ms of CPU, most of its ~2 ms per instrument post. A row that is alone of
its task in a sweep, and every other row, is sent as itself. Each row records the id of the
Celery message that carried it (`celery_task_id`): `outbox-<id>` alone, `outbox-<first>-<last>`
for a group. A row that is never grouped gets the same id every time it is sent again (the batch
review keys its run on it); a relay-sent row sent again after a crash may go in a different
group, so relay-sent tasks must be idempotent on their kwargs, never on the Celery id. A group
is a unit: if it cannot be published, every row in it is charged the attempt; if the worker must
retry it, the rows it has done already are skipped.
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
from qms.prepared import prepared_cursor

log = logging.getLogger(__name__)

RELAY_CHANNEL = "qms_outbox"
# A quarter of a second: alarm evaluation may start that much later (process alarms are about
# minutes), and at 75 posts a second a sweep takes some 20 posts instead of 4 (ingest benchmark).
RELAY_GATHER_SECONDS = 0.25
SWEEP_LIMIT = 500
# Relay-sent rows per Celery message: bounds a message's size and the work one worker retries, and
# lets a backlog (a broker outage) spread over several workers.
GROUP_LIMIT = 100
ENQUEUE_SQL = """
INSERT INTO qms_outboxmessage (task_name, kwargs, created_at, attempts, last_error)
VALUES (%s, %s::jsonb, %s, 0, '') RETURNING id
"""
ENQUEUE_RELAY_SQL = f"""
WITH message AS ({ENQUEUE_SQL})
SELECT id, pg_notify('{RELAY_CHANNEL}', '') FROM message
"""  # noqa: S608 (built from the constants above)


def enqueue_for_new_row_sql(insert_sql: str, *, task_name: str, key: str) -> str:
    """SQL that runs `insert_sql` (an INSERT ... RETURNING id) and queues `task_name` with
    {key: the new row's id} in the same statement, for the relay; it returns the new id.

    The same outbox row as `enqueue` writes, for work queued many times a second on a row just
    inserted (alarm evaluation of an instrument post): one round trip to PostgreSQL instead of
    two. Its parameters are those of `insert_sql` plus %(queued_at)s, the outbox row's
    created_at. Only for relay-sent tasks (settings.OUTBOX_RELAY_TASKS): nothing here sends the
    message after commit.
    """
    if task_name not in settings.OUTBOX_RELAY_TASKS:
        raise ValueError(f"{task_name} is not relay-sent (settings.OUTBOX_RELAY_TASKS)")
    if not key.isidentifier() or "'" in task_name:
        raise ValueError("task name and key are code constants")
    # Both names are code constants, checked above, never input.
    return f"""
WITH inserted AS ({insert_sql}),
message AS (
    INSERT INTO qms_outboxmessage (task_name, kwargs, created_at, attempts, last_error)
    SELECT '{task_name}', jsonb_build_object('{key}', inserted.id), %(queued_at)s, 0, '' FROM inserted
    RETURNING id)
SELECT inserted.id, pg_notify('{RELAY_CHANNEL}', '') FROM inserted, message
"""  # noqa: S608


def enqueue(task_name: str, **kwargs: Any) -> OutboxMessage:
    """Record work for `task_name` in the current transaction; it is sent after commit."""
    relay_sent = task_name in settings.OUTBOX_RELAY_TASKS
    message = OutboxMessage(task_name=task_name, kwargs=kwargs, created_at=timezone.now())
    with prepared_cursor() as cursor:
        # One prepared statement: instrument posts queue work many times a second. The NOTIFY is
        # delivered at commit (never for a rollback); several in one transaction fold into one.
        cursor.execute(ENQUEUE_RELAY_SQL if relay_sent else ENQUEUE_SQL,
                       [task_name, json.dumps(kwargs, cls=DjangoJSONEncoder), message.created_at], prepare=True)
        row = cursor.fetchone()
    if row is None:  # INSERT … RETURNING answers one row or raises: this is not reached
        raise RuntimeError(f"the outbox gave no id for {task_name}")
    message.pk = row[0]
    message._state.adding = False
    if not relay_sent:
        transaction.on_commit(lambda: outbox_dispatch(message.pk))
    return message


def _groups(messages: list[OutboxMessage]) -> list[list[OutboxMessage]]:
    """The Celery messages for `messages` (in id order), in the order of their first row.

    Relay-sent rows of one task go together, in id order, GROUP_LIMIT at most; any other row alone.
    """
    groups: list[list[OutboxMessage]] = []
    filling: dict[str, list[OutboxMessage]] = {}  # the open group of each relay-sent task
    for message in messages:
        group = filling.get(message.task_name)
        if group is None or len(group) == GROUP_LIMIT:
            group = []
            groups.append(group)
            if message.task_name in settings.OUTBOX_RELAY_TASKS:
                filling[message.task_name] = group
        group.append(message)
    return groups


def _celery_task_id(group: list[OutboxMessage]) -> str:
    # Stable for the same rows: a message sent again is recognisable as the same work.
    first, last = group[0].pk, group[-1].pk
    return f"outbox-{first}" if len(group) == 1 else f"outbox-{first}-{last}"


def _publish(group: list[OutboxMessage]) -> str:
    """Send one group as one Celery message; returns its task id."""
    from ebr.celery import app

    first = group[0]
    task_name, kwargs = first.task_name, first.kwargs
    if len(group) > 1:
        task_name = settings.OUTBOX_RELAY_TASKS[first.task_name]
        kwargs = {"calls": [message.kwargs for message in group]}
    task_id = _celery_task_id(group)
    app.send_task(
        task_name, kwargs=kwargs, task_id=task_id,
        # Outbox work reports its outcome in the database, never through a Celery result: not
        # subscribing to one saves the relay a Redis round trip per message.
        ignore_result=True,
        retry=True,
        retry_policy={"max_retries": settings.OUTBOX_PUBLISH_RETRIES, "interval_start": 0,
                      "interval_step": 0.5, "interval_max": 1},
    )
    return task_id


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
        sent = 0
        for group in _groups(messages):
            rows = OutboxMessage.objects.filter(pk__in=[message.pk for message in group])
            try:
                task_id = _publish(group)
            except Exception as error:
                log.warning("outbox: %s (%s, %d rows) not sent, will retry: %s", _celery_task_id(group),
                            group[0].task_name, len(group), error)
                # Only this group was tried; the rest wait untouched for the broker to come back.
                rows.update(attempts=F("attempts") + 1, last_error=str(error)[:2000])
                break
            rows.update(dispatched_at=timezone.now(), attempts=F("attempts") + 1, last_error="",
                        celery_task_id=task_id)
            sent += len(group)
        return sent


def outbox_sweep(limit: int = SWEEP_LIMIT) -> int:
    """Send what is still pending (a broker outage, a crash after commit, relay-sent work).

    Messages the queuing request sends itself are left alone for OUTBOX_SWEEP_AGE, so that the
    sweep does not race the request for them. Returns how many were sent.
    """
    cutoff = timezone.now() - settings.OUTBOX_SWEEP_AGE
    due = Q(created_at__lte=cutoff) | Q(task_name__in=list(settings.OUTBOX_RELAY_TASKS))
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
