"""Due-date reminders for deviations, CAPA actions and checks, change tasks and training.

Run by celery beat (`qms.reminders_send`). Each reminder has a key unique per (record, due
date, kind, day), so however often the task runs or is retried on a day, an owner gets each
reminder once: "due soon" on the configured days before the due date, "overdue" once a day.
Keeping overdue work visible to its owner supports timely investigations and CAPA
(EU GMP Part I 1.4(xiv); ICH Q10 3.2.2).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from qms.conf import reminder_days_before, training_reminder_days_before
from qms.links import page_link, record_link
from qms.models import (
    ActionStatus,
    Capa,
    CapaAction,
    CapaEffectivenessCheck,
    ChangeTask,
    Deviation,
    TrainingRecord,
    User,
)
from qms.models.capa import ACTIVE_CAPA_STATUSES, EffectivenessResult
from qms.models.change_control import ChangeControlStatus
from qms.models.deviations import ACTIVE_DEVIATION_STATUSES
from qms.services.notifications import notification_email_send, notification_emails_pending, notify


@dataclass(frozen=True)
class Reminder:
    user: User
    kind: str  # due_soon | overdue | training_expiring
    record_type: str
    record_id: int
    due: date
    text: str
    link: str

    def key(self, today: date) -> str:
        return f"{self.kind}:{self.record_type}:{self.record_id}:{self.due:%Y-%m-%d}:{today:%Y-%m-%d}"


@dataclass(frozen=True)
class ReminderRun:
    created: int
    emailed: int


def _timing(due: date, today: date) -> str | None:
    days_left = (due - today).days
    if days_left < 0:
        return "overdue"
    if days_left in reminder_days_before():
        return "due_soon"
    return None


def _when(kind: str, due: date, today: date) -> str:
    if kind == "overdue":
        return f"is overdue by {(today - due).days} day(s) (due {due:%Y-%m-%d})"
    return f"is due in {(due - today).days} day(s), on {due:%Y-%m-%d}"


def _deviation_reminders(today: date) -> Iterator[Reminder]:
    deviations = (Deviation.objects.filter(status__in=ACTIVE_DEVIATION_STATUSES, due_date__isnull=False,
                                           owner__isnull=False).select_related("owner"))
    for deviation in deviations:
        due, owner = deviation.due_date, deviation.owner
        kind = _timing(due, today) if due is not None and owner is not None else None
        if kind and due is not None and owner is not None:
            yield Reminder(owner, kind, "qms.deviation", deviation.pk, due,
                           f"{deviation.number} {_when(kind, due, today)}: {deviation.title}",
                           record_link("deviation", deviation.number))


def _capa_reminders(today: date) -> Iterator[Reminder]:
    actions = (CapaAction.objects.filter(status=ActionStatus.OPEN, capa__status__in=ACTIVE_CAPA_STATUSES)
               .select_related("owner", "capa"))
    for action in actions:
        kind = _timing(action.due_date, today)
        if kind:
            yield Reminder(action.owner, kind, "qms.capaaction", action.pk, action.due_date,
                           f"{action} {_when(kind, action.due_date, today)}: {action.description[:150]}",
                           record_link("capa", action.capa.number))
    closing = [EffectivenessResult.EFFECTIVE, EffectivenessResult.JUSTIFIED]
    settled = CapaEffectivenessCheck.objects.filter(capa=OuterRef("pk"), result__in=closing)
    capas = (Capa.objects.filter(status__in=ACTIVE_CAPA_STATUSES, effectiveness_due__isnull=False)
             .annotate(settled=Exists(settled)).filter(settled=False).select_related("owner"))
    for capa in capas:
        due = capa.effectiveness_due
        kind = _timing(due, today) if due is not None else None
        if kind and due is not None:
            yield Reminder(capa.owner, kind, "qms.capa", capa.pk, due,
                           f"The effectiveness check of {capa.number} {_when(kind, due, today)}",
                           record_link("capa", capa.number))


def _change_reminders(today: date) -> Iterator[Reminder]:
    tasks = (ChangeTask.objects.filter(status=ActionStatus.OPEN,
                                       change__status__in=[ChangeControlStatus.OPEN, ChangeControlStatus.APPROVED])
             .select_related("owner", "change"))
    for task in tasks:
        kind = _timing(task.due_date, today)
        if kind:
            yield Reminder(task.owner, kind, "qms.changetask", task.pk, task.due_date,
                           f"{task} {_when(kind, task.due_date, today)}: {task.description[:150]}",
                           record_link("change_control", task.change.number))


def _training_reminders(today: date) -> Iterator[Reminder]:
    days = training_reminder_days_before()
    if not days:
        return
    renewed = TrainingRecord.objects.filter(
        user=OuterRef("user"), document_kind=OuterRef("document_kind"), document_code=OuterRef("document_code"),
        version=OuterRef("version"), trained_on__gt=OuterRef("trained_on"), trainer_confirmed_at__isnull=False)
    # Only training that counts can run out (a record awaiting or declined by its trainer never counted).
    expiring = (TrainingRecord.objects.filter(valid_until__in=[today + timedelta(days=d) for d in days],
                                              user__is_active=True, trainer_confirmed_at__isnull=False)
                .annotate(renewed=Exists(renewed)).filter(renewed=False).select_related("user"))
    for record in expiring:
        assert record.valid_until is not None
        yield Reminder(record.user, "training_expiring", "qms.trainingrecord", record.pk, record.valid_until,
                       f"Your training on {record.document_label} expires on {record.valid_until:%Y-%m-%d}: "
                       "arrange retraining.", page_link("training_expiring"))


def reminders_due(today: date) -> list[Reminder]:
    """Every reminder owed on `today` (the facility's date)."""
    return [*_deviation_reminders(today), *_capa_reminders(today), *_change_reminders(today),
            *_training_reminders(today)]


def reminders_send(*, today: date | None = None) -> ReminderRun:
    """Create today's reminders (each once, by key) and send every e-mail still owed."""
    today = today or timezone.localdate()
    created = 0
    for reminder in reminders_due(today):
        with transaction.atomic():
            if notify(user=reminder.user, text=reminder.text, link=reminder.link, key=reminder.key(today),
                      email_after_commit=False):
                created += 1
    emailed = sum(1 for notification_id in notification_emails_pending() if notification_email_send(notification_id))
    return ReminderRun(created=created, emailed=emailed)
