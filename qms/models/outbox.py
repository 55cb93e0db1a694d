"""Work that must follow a commit: written in the business transaction, sent to Celery after it.

A broker outage therefore delays background work but never loses it (DESIGN.md). Rows are
infrastructure, not GxP records: the dispatcher updates them freely.
"""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class OutboxMessage(models.Model):
    id = models.BigAutoField(primary_key=True)
    task_name = models.CharField(max_length=200)
    kwargs = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # The id of the Celery message that carried this row, written when it is dispatched: outbox-<id>
    # for a row sent alone, outbox-<first id>-<last id> for relay-sent rows sent as one group
    # (qms/outbox.py). It shows an inspector which delivery in a worker's log did this row's work.
    # db_default: `enqueue`'s INSERT leaves the column out, as does a process of the previous release.
    celery_task_id = models.CharField(max_length=64, blank=True, default="", db_default="")

    class Meta:
        indexes = [
            models.Index(fields=["id"], name="outbox_pending_idx", condition=models.Q(dispatched_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"outbox {self.id} {self.task_name}"
