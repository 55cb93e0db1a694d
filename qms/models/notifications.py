"""In-app notifications and their e-mails: infrastructure, not GxP records (not audited).

A reminder carries a `key` unique per (record, due date, kind, day), so a beat task that runs
twice, or is retried, never notifies twice.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Notification(models.Model):
    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="notifications")
    text = models.CharField(max_length=500)
    link = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)
    key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    email_wanted = models.BooleanField(default=False)
    emailed_at = models.DateTimeField(null=True, blank=True)
    email_attempts = models.PositiveSmallIntegerField(default=0)
    email_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="notification_user_idx"),
            models.Index(fields=["id"], name="notification_unsent_idx",
                         condition=models.Q(email_wanted=True, emailed_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.text[:60]}"
