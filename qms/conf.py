"""Quality-system settings, each with its default. Override in the Django settings if needed."""

from __future__ import annotations

from django.conf import settings

# Days from the report to the due date of a deviation, per classification (EU GMP Part I 1.4(xiv):
# investigations concluded in a timely manner). The facility sets its own in DEVIATION_DUE_DAYS.
DEFAULT_DEVIATION_DUE_DAYS = {"minor": 30, "major": 30, "critical": 30}


def deviation_due_days(classification: str) -> int:
    table = {**DEFAULT_DEVIATION_DUE_DAYS, **getattr(settings, "DEVIATION_DUE_DAYS", {})}
    return int(table[classification])


def reminder_days_before() -> tuple[int, ...]:
    """On which days before a due date the owner is reminded (then daily once overdue)."""
    return tuple(getattr(settings, "QMS_REMINDER_DAYS_BEFORE", (7, 1)))


def training_reminder_days_before() -> tuple[int, ...]:
    return tuple(getattr(settings, "QMS_TRAINING_REMINDER_DAYS_BEFORE", (30, 7, 1)))


def training_expiry_warning_days() -> int:
    return int(getattr(settings, "QMS_TRAINING_EXPIRY_WARNING_DAYS", 30))


def site_url() -> str:
    """Prefix for links in e-mails, e.g. https://ebr.hospital.example (empty: relative links)."""
    return str(getattr(settings, "QMS_SITE_URL", "")).rstrip("/")


EMAIL_MAX_ATTEMPTS = 5
