"""Due-date reminders: each owner is reminded once per (record, due date, kind, day), however often
the beat task runs or is retried; e-mails go out once."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core import mail

from qms.models import Notification, OutboxMessage
from qms.services import capa as capa_services
from qms.services import change_control as cc_services
from qms.services.notifications import notification_email_send, notify
from qms.services.reminders import reminders_due, reminders_send
from qms.services.training import training_record_add
from tests.conftest import PASSWORD
from tests.qms import quality
from tests.qms.quality import in_days

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _reminder_days(settings):
    settings.QMS_REMINDER_DAYS_BEFORE = (7, 1)
    settings.QMS_TRAINING_REMINDER_DAYS_BEFORE = (30, 7, 1)


@pytest.fixture
def owner(make_user):
    from qms.roles import Role

    user = make_user(Role.SUPERVISOR, full_name="Owen Owner")
    user.email = "owen@hospital.example"
    user.save(update_fields=["email"])
    return user


def _mine(user):
    return Notification.objects.filter(user=user, key__isnull=False)


def test_overdue_deviation_reminds_its_owner_once_a_day(operator, qa_reviewer, owner):
    deviation = quality.deviation(operator)
    quality.triage(deviation, qa_reviewer, owner=owner)
    deviation.refresh_from_db()
    late = deviation.due_date + timedelta(days=2)

    first = reminders_send(today=late)
    again = reminders_send(today=late)

    (reminder,) = _mine(owner)
    assert reminder.text.startswith(f"{deviation.number} is overdue by 2 day(s)")
    assert reminder.link == f"/qms/deviations/{deviation.number}/"
    assert reminder.key == f"overdue:qms.deviation:{deviation.pk}:{deviation.due_date:%Y-%m-%d}:{late:%Y-%m-%d}"
    assert (first.created, again.created) == (1, 0)
    overdue_mails = [m for m in mail.outbox if "overdue" in m.subject]
    assert [m.to for m in overdue_mails] == [["owen@hospital.example"]]
    assert deviation.number in overdue_mails[0].subject and reminder.link in overdue_mails[0].body
    # the assignment e-mail queued at triage went out with the first run, once
    assert len([m for m in mail.outbox if "You own the investigation" in m.subject]) == 1

    reminders_send(today=late + timedelta(days=1))
    assert _mine(owner).count() == 2
    assert len([m for m in mail.outbox if "overdue" in m.subject]) == 2


def test_due_soon_reminders_on_the_configured_days_only(qa_reviewer, owner):
    capa = quality.capa(qa_reviewer)
    action = capa_services.capa_action_add(actor=qa_reviewer, capa=capa, kind="corrective", description="Fit alarms",
                                           owner=owner, due_date=in_days(10), reason="Plan")

    assert not [r for r in reminders_due(in_days(0)) if r.user == owner]
    reminders_send(today=in_days(3))  # 7 days before
    reminders_send(today=in_days(4))  # 6 days before: nothing
    reminders_send(today=in_days(9))  # 1 day before

    texts = list(_mine(owner).order_by("id").values_list("text", flat=True))
    assert texts == [f"{action} is due in 7 day(s), on {in_days(10):%Y-%m-%d}: Fit alarms",
                     f"{action} is due in 1 day(s), on {in_days(10):%Y-%m-%d}: Fit alarms"]


def test_done_work_is_not_reminded(qa_reviewer, owner):
    capa = quality.capa(qa_reviewer)
    action = capa_services.capa_action_add(actor=qa_reviewer, capa=capa, kind="corrective", description="Fit alarms",
                                           owner=owner, due_date=in_days(1), reason="Plan")
    capa_services.capa_action_complete(actor=owner, action=action, evidence="WO-1", password=PASSWORD,
                                       username=owner.username, reason="Done")

    reminders_send(today=in_days(5))

    assert not _mine(owner).filter(text__contains=str(action)).exists()


def test_change_tasks_effectiveness_checks_and_training_are_reminded(supervisor, qa_approver, qa_reviewer, owner):
    change = quality.change(supervisor)
    cc_services.change_control_task_add(actor=supervisor, change=change, description="Update SOP-017", owner=owner,
                                        due_date=in_days(2), reason="Plan")
    capa = quality.capa(qa_reviewer, owner=owner, effectiveness_criteria="No recurrence",
                        effectiveness_due=in_days(3))
    training_record_add(actor=qa_approver, user=owner, document_kind="sop", document_code="SOP-017", version="3",
                        trained_on=in_days(-300), trainer=qa_approver, valid_until=in_days(35), reason="Training",
                        password=PASSWORD, username=qa_approver.username)  # the trainer records it: it counts

    run = reminders_send(today=in_days(5))

    texts = sorted(_mine(owner).values_list("text", flat=True))
    assert run.created == 3
    assert texts[0].startswith(f"{change.number} task 1 is overdue by 3 day(s)")
    assert texts[1] == f"The effectiveness check of {capa.number} is overdue by 2 day(s) (due {in_days(3):%Y-%m-%d})"
    assert texts[2].startswith("Your training on SOP-017 v3 expires on")


def test_the_beat_task_is_scheduled_and_idempotent(operator, qa_reviewer, owner):
    from qms.tasks import reminders_send as task

    deviation = quality.deviation(operator)
    quality.triage(deviation, qa_reviewer, owner=owner)
    schedule = {entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()}
    assert "qms.reminders_send" in schedule

    # the task acts on "today": nothing is due yet; the assignment e-mail owed since triage goes out once
    assert task.run() == {"created": 0, "emailed": 1}
    assert task.run() == {"created": 0, "emailed": 0}


def test_a_notification_key_is_used_once_and_its_email_sent_once(owner):
    first = notify(user=owner, text="Reminder", key="test:once")
    second = notify(user=owner, text="Reminder", key="test:once")

    assert first is not None and second is None
    assert OutboxMessage.objects.filter(task_name="qms.notification_email",
                                        kwargs__notification_id=first.pk).count() == 1
    assert notification_email_send(first.pk) is True
    assert notification_email_send(first.pk) is False
    assert len(mail.outbox) == 1


def test_a_failed_email_is_kept_for_the_next_run(owner, monkeypatch):
    notification = notify(user=owner, text="Reminder", key="test:retry", email_after_commit=False)

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("mail server down")

    monkeypatch.setattr("qms.services.notifications.send_mail", refuse)
    assert notification_email_send(notification.pk) is False
    notification.refresh_from_db()
    assert (notification.emailed_at, notification.email_attempts) == (None, 1)
    assert "mail server down" in notification.email_error

    monkeypatch.undo()
    assert reminders_send(today=in_days(0)).emailed >= 1
    notification.refresh_from_db()
    assert notification.emailed_at is not None and len(mail.outbox) == 1


def test_people_without_email_get_the_in_app_notification_only(operator):
    notification = notify(user=operator, text="Hello", key="test:no-mail")

    assert notification is not None and not notification.email_wanted
    assert notification_email_send(notification.pk) is False
    assert not mail.outbox
