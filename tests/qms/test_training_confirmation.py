"""The trainer vouches for a training record before it counts (EU GMP Part I 2.8-2.12; 21 CFR 11.50,
11.70): a supervisor cannot name a qualified trainer who never heard of the training and so open
the batch-execution gate. The trainer confirms or declines under their own signature."""

import csv
import importlib
import io
import uuid

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.utils import timezone

from ebr.models import StepStatus
from ebr.services import batches as batch_services
from ebr.services.execution import entry_record
from qms.audit import Event
from qms.models import AuditEvent, Notification, Signature, TrainingRecord
from qms.models.training import TrainerConfirmation
from qms.roles import Role
from qms.selectors_training import TrainingDocument, TrainingFilters, training_list, training_matrix
from qms.services.training import (
    training_confirm,
    training_confirm_decline,
    training_is_current,
    training_record_add,
    training_record_withdraw,
)
from qms.signatures import Meaning, SignatureRefused, signatures_for
from tests.conftest import PASSWORD, SEED, login

pytestmark = pytest.mark.django_db

A = TrainerConfirmation


@pytest.fixture
def master_version(supervisor, qa_reviewer, qa_approver):
    from ebr.models import Material
    from qms.audit import create_with_reason
    from tests.ebr.conftest import build_version

    media = create_with_reason(Material, actor=SEED, reason="test", code="MED-C", name="Medium", unit="mL")
    version = build_version(supervisor, qa_reviewer, qa_approver, {"media": media}, code="MBR-CONF-001")
    # The supervisor's own training, recorded by the QA approver who gave it: it counts at once.
    _record(qa_approver, supervisor, qa_approver, version)
    return version


def _document(version):
    return {"document_kind": "master_record", "document_code": version.master_record.code,
            "version": str(version.version)}


def _record(actor, user, trainer, version, *, trained_on=None, password=PASSWORD):
    return training_record_add(actor=actor, user=user, **_document(version), trained_on=trained_on or
                               timezone.localdate(), trainer=trainer, valid_until=None, reason="Initial training",
                               password=password, username=actor.username)


def _confirm(actor, record, password=PASSWORD, reason=""):
    return training_confirm(actor=actor, record=record, password=password, reason=reason, username=actor.username)


def _decline(actor, record, reason="I did not give this training", password=PASSWORD):
    return training_confirm_decline(actor=actor, record=record, password=password, reason=reason,
                                    username=actor.username)


def _enter_a_value(operator, batch):
    step = batch.steps.exclude(status=StepStatus.DONE).order_by("sequence").first()
    parameter = step.template.parameters.get(code="temp")
    return entry_record(actor=operator, step=step, parameter=parameter, value="5", idempotency_key=uuid.uuid4().hex)


def test_a_record_by_someone_else_opens_the_execution_gate_only_once_the_trainer_confirms(
        master_version, supervisor, qa_approver, operator):
    from tests.ebr.conftest import create_batch

    batch = batch_services.batch_start(actor=supervisor, batch=create_batch(supervisor, master_version))
    record = _record(qa_approver, operator, supervisor, master_version)

    assert record.trainer_confirmation == A.AWAITING
    assert not training_is_current(user=operator, **_document(master_version))
    with pytest.raises(PermissionDenied, match="no current training"):
        _enter_a_value(operator, batch)

    _confirm(supervisor, record)

    assert TrainingRecord.objects.get(pk=record.pk).trainer_confirmation == A.CONFIRMED
    assert training_is_current(user=operator, **_document(master_version))
    assert _enter_a_value(operator, batch).entry.value_text == "5"


def test_the_trainer_who_records_signs_once_and_the_training_counts_at_once(master_version, supervisor, operator):
    record = _record(supervisor, operator, supervisor, master_version)

    assert record.trainer_confirmation == A.CONFIRMED and record.trainer_confirmed_at == record.recorded_at
    assert training_is_current(user=operator, **_document(master_version))
    signatures = Signature.objects.filter(target_type="qms.trainingrecord", target_id=str(record.pk))
    assert [(s.signer, s.meaning) for s in signatures] == [(supervisor, Meaning.AUTHORED)]
    assert not Notification.objects.filter(user=supervisor).exists()


def test_only_the_named_trainer_decides_and_only_once(master_version, supervisor, qa_approver, operator, make_user):
    record = _record(qa_approver, operator, supervisor, master_version)
    other_qualified = make_user(Role.QA_APPROVER)

    for someone in (qa_approver, operator, other_qualified):  # the recorder, the trainee, another trainer
        with pytest.raises(PermissionDenied, match="the trainer named on this record"):
            _confirm(someone, record)
        with pytest.raises(PermissionDenied, match="the trainer named on this record"):
            _decline(someone, record)
    assert not training_is_current(user=operator, **_document(master_version))

    _confirm(supervisor, record)

    with pytest.raises(ValidationError, match="already confirmed"):
        _confirm(supervisor, record)
    with pytest.raises(ValidationError, match="already confirmed"):
        _decline(supervisor, record)
    assert AuditEvent.objects.filter(event_type=Event.TRAINING_CONFIRMED, target_id=str(record.pk)).count() == 1


def test_a_declined_record_never_counts_and_the_recorder_may_record_it_with_the_real_trainer(
        master_version, supervisor, qa_approver, operator):
    record = _record(qa_approver, operator, supervisor, master_version)

    with pytest.raises(ValidationError) as refused:
        _decline(supervisor, record, reason="  ")
    assert "reason" in refused.value.message_dict
    _decline(supervisor, record, reason="Not me: I was on leave that week.")

    record.refresh_from_db()
    assert record.trainer_confirmation == A.DECLINED
    assert record.trainer_decline_reason == "Not me: I was on leave that week."
    assert not training_is_current(user=operator, **_document(master_version))
    with pytest.raises(ValidationError, match="already declined"):
        _confirm(supervisor, record)
    assert record not in training_list(TrainingFilters(state="current"))
    told = Notification.objects.get(user=qa_approver)
    assert "declined" in told.text and "on leave" in told.text

    again = _record(qa_approver, operator, qa_approver, master_version)  # same day, the trainer who gave it

    assert again.trainer_confirmation == A.CONFIRMED
    assert training_is_current(user=operator, **_document(master_version))
    assert list(training_list(TrainingFilters(state="declined"))) == [record]
    assert again not in training_list(TrainingFilters(state="awaiting_trainer"))


def test_the_training_list_finds_what_awaits_a_trainer(master_version, supervisor, qa_approver, operator):
    waiting = _record(qa_approver, operator, supervisor, master_version)

    assert list(training_list(TrainingFilters(state="awaiting_trainer"))) == [waiting]
    _confirm(supervisor, waiting)
    assert list(training_list(TrainingFilters(state="awaiting_trainer"))) == []


def test_training_awaiting_its_trainer_does_not_make_the_trainee_a_trainer(master_version, supervisor, qa_approver,
                                                                          operator, make_user):
    record = _record(qa_approver, operator, supervisor, master_version)
    colleague = make_user(Role.OPERATOR)

    with pytest.raises(ValidationError) as refused:
        _record(supervisor, colleague, operator, master_version)
    assert "not qualified" in refused.value.message_dict["trainer"][0]

    _confirm(supervisor, record)

    assert _record(supervisor, colleague, operator, master_version).trainer == operator


def test_confirmation_and_decline_are_signed_and_audited_and_the_recorders_signature_stays_valid(
        master_version, supervisor, qa_approver, operator, verifier):
    confirmed = _record(qa_approver, operator, supervisor, master_version)
    declined = _record(qa_approver, verifier, supervisor, master_version)

    _confirm(supervisor, confirmed, reason="Trained at the BSC, 2 h")
    _decline(supervisor, declined, reason="I trained someone else")
    confirmed.refresh_from_db()
    declined.refresh_from_db()

    assert [(s.printed_name, s.meaning, s.reason, s.valid) for s in signatures_for(confirmed)] == [
        (qa_approver.full_name, "authored", "Initial training", True),
        (supervisor.full_name, "confirmed", "Trained at the BSC, 2 h", True)]
    assert [(s.printed_name, s.meaning, s.reason, s.valid) for s in signatures_for(declined)] == [
        (qa_approver.full_name, "authored", "Initial training", True),
        (supervisor.full_name, "rejected", "I trained someone else", True)]
    for record, event in ((confirmed, Event.TRAINING_CONFIRMED), (declined, Event.TRAINING_DECLINED)):
        audit = AuditEvent.objects.get(event_type=event, target_id=str(record.pk))
        signature = Signature.objects.get(target_id=str(record.pk), signer=supervisor)
        assert (audit.actor_id, audit.data["signature"]) == (supervisor.pk, signature.pk)
        assert record.history.latest().history_change_reason == signature.reason


def test_a_wrong_password_confirms_or_declines_nothing(master_version, supervisor, qa_approver, operator):
    record = _record(qa_approver, operator, supervisor, master_version)

    with pytest.raises(SignatureRefused):
        _confirm(supervisor, record, password="wrong")
    with pytest.raises(SignatureRefused):
        _decline(supervisor, record, password="wrong")

    record.refresh_from_db()
    assert record.trainer_confirmation == A.AWAITING
    assert not Signature.objects.filter(target_id=str(record.pk), signer=supervisor).exists()
    assert not AuditEvent.objects.filter(event_type__in=[Event.TRAINING_CONFIRMED, Event.TRAINING_DECLINED]).exists()


def test_the_trainer_is_told_and_the_matrix_says_awaiting_trainer(master_version, supervisor, qa_approver, operator):
    record = _record(qa_approver, operator, supervisor, master_version)

    notice = Notification.objects.get(user=supervisor)
    assert operator.full_name in notice.text and "confirm or decline" in notice.text
    assert notice.link == "/qms/training/#awaiting"
    document = TrainingDocument(**{"kind": "master_record", "code": record.document_code, "version": record.version})
    cell = training_matrix(users=[operator], documents=[document]).rows[0].cells[0]
    assert (cell.status, cell.label) == ("awaiting_trainer", "Awaiting trainer")


def test_records_made_before_trainers_confirmed_keep_counting(master_version, qa_approver, supervisor, operator):
    """The migration marks every record of the old rule confirmed as of its recording."""
    # Stands for a record written before the migration: nothing decided by its trainer.
    record = _record(qa_approver, operator, supervisor, master_version)
    migration = importlib.import_module("qms.migrations.0009_training_trainer_confirmation")

    with connection.cursor() as cursor:
        cursor.execute(migration.MARK_EXISTING_CONFIRMED)

    record.refresh_from_db()
    assert record.trainer_confirmed_at == record.recorded_at
    assert training_is_current(user=operator, **_document(master_version))


# --- the training page -------------------------------------------------------------------------

def _fields(action, record, user, **values):
    prefix = f"{action}-{record.pk}"
    return {f"{prefix}-username": user.username, **{f"{prefix}-{name}": value for name, value in values.items()}}


def test_the_trainer_confirms_from_the_training_page(client, master_version, supervisor, qa_approver, operator):
    record = _record(qa_approver, operator, supervisor, master_version)
    login(client, supervisor)

    page = client.get("/qms/training/").content.decode()
    assert 'id="awaiting"' in page and f'id="awaiting-{record.pk}"' in page
    assert "Sign: confirmed" in page and "Sign: declined" in page and "Awaiting trainer" in page

    url = f"/qms/training/{record.pk}/confirm/"
    refused = client.post(url, _fields("confirm", record, supervisor, password="wrong", reason="Gave it at the BSC"))

    assert refused.status_code == 422
    html = refused.content.decode()
    assert "Wrong password" in html and "Gave it at the BSC" in html
    assert f'id="action-confirm-{record.pk}" open' in html  # the refused form stays open
    record.refresh_from_db()
    assert record.trainer_confirmation == A.AWAITING

    done = client.post(url, _fields("confirm", record, supervisor, password=PASSWORD, reason="Gave it at the BSC"))

    assert done.status_code == 302
    record.refresh_from_db()
    assert record.trainer_confirmation == A.CONFIRMED
    assert training_is_current(user=operator, **_document(master_version))
    assert f'id="awaiting-{record.pk}"' not in client.get("/qms/training/").content.decode()


def test_the_trainer_declines_from_the_training_page_with_a_reason(client, master_version, supervisor, qa_approver,
                                                                   operator):
    record = _record(qa_approver, operator, supervisor, master_version)
    login(client, supervisor)
    url = f"/qms/training/{record.pk}/decline/"

    no_reason = client.post(url, _fields("decline", record, supervisor, password=PASSWORD, reason=""))
    wrong_password = client.post(url, _fields("decline", record, supervisor, password="wrong", reason="Not me"))

    assert no_reason.status_code == wrong_password.status_code == 422
    assert "This field is required" in no_reason.content.decode()
    kept = wrong_password.content.decode()
    assert "Wrong password" in kept and ">\nNot me</textarea>" in kept
    record.refresh_from_db()
    assert record.trainer_confirmation == A.AWAITING

    done = client.post(url, _fields("decline", record, supervisor, password=PASSWORD, reason="Not me"))

    assert done.status_code == 302
    record.refresh_from_db()
    assert record.trainer_confirmation == A.DECLINED
    listed = client.get("/qms/training/").content.decode()
    assert "Declined by trainer" in listed and "Not me" in listed


def test_someone_else_posting_a_confirmation_is_refused_on_the_page_and_nothing_changes(
        client, master_version, supervisor, qa_approver, operator):
    record = _record(qa_approver, operator, supervisor, master_version)
    login(client, qa_approver)

    assert 'id="awaiting"' not in client.get("/qms/training/").content.decode()
    response = client.post(f"/qms/training/{record.pk}/confirm/",
                           _fields("confirm", record, qa_approver, password=PASSWORD))

    assert response.status_code == 422
    assert "the trainer named on this record" in response.content.decode()
    record.refresh_from_db()
    assert record.trainer_confirmation == A.AWAITING
    assert client.post(f"/qms/training/{record.pk}/approve/", {}).status_code == 404


def test_the_csv_export_carries_where_each_record_stands_with_its_trainer(client, master_version, supervisor,
                                                                          qa_approver, operator, make_user):
    _record(qa_approver, operator, supervisor, master_version)
    second = make_user(Role.OPERATOR)
    withdrawn = _record(qa_approver, second, supervisor, master_version)
    _withdraw(qa_approver, withdrawn, reason="Named the wrong trainer")
    login(client, qa_approver)

    exported = b"".join(client.get("/qms/training/", {"format": "csv", "q": master_version.master_record.code})
                        .streaming_content).decode()

    header, *rows = list(csv.reader(io.StringIO(exported)))
    assert header[-5:] == ["trainer_confirmation", "trainer_decided_at", "trainer_decline_reason", "withdrawn_at",
                           "withdrawn_reason"]
    by_person = {row[1]: dict(zip(header, row, strict=True)) for row in rows}  # other tests' records left aside
    assert (by_person[operator.username]["trainer_confirmation"],
            by_person[supervisor.username]["trainer_confirmation"]) == ("awaiting_trainer", "confirmed")
    withdrawn.refresh_from_db()
    assert {name: by_person[second.username][name] for name in header[-5:]} == {
        "trainer_confirmation": "withdrawn", "trainer_decided_at": "", "trainer_decline_reason": "",
        "withdrawn_at": withdrawn.withdrawn_at.isoformat(), "withdrawn_reason": "Named the wrong trainer"}


def test_a_later_record_still_awaiting_its_trainer_does_not_hide_the_lapse(master_version, operator, supervisor,
                                                                           qa_approver):
    from datetime import timedelta

    from qms.selectors_training import training_expired

    today = timezone.localdate()
    first = _record(qa_approver, operator, qa_approver, master_version)  # the trainer records it: it counts
    # As if recorded a year ago and run out yesterday (setup only: the version was made today).
    TrainingRecord.objects.filter(pk=first.pk).update(trained_on=today - timedelta(days=400),
                                                      valid_until=today - timedelta(days=1))
    _record(qa_approver, operator, supervisor, master_version)  # retraining, awaiting the supervisor

    # Not trained, and still listed as expired (and reminded) until the retraining is confirmed.
    assert [record.pk for record in training_expired()] == [first.pk]


def test_the_tablet_says_why_an_operator_cannot_record_the_step_before_they_type(client, master_version, supervisor,
                                                                                  qa_approver, operator):
    from tests.ebr.conftest import create_batch

    batch = batch_services.batch_start(actor=supervisor, batch=create_batch(supervisor, master_version))
    login(client, operator)

    def gap() -> str:
        page = client.get(f"/execute/{batch.number}/").content.decode()
        return page.split('id="training-gap">')[1].split("</div>")[0] if 'id="training-gap"' in page else ""

    assert f"no training on {master_version} is recorded for you" in gap()
    record = _record(qa_approver, operator, supervisor, master_version)
    assert f"awaits the confirmation of its trainer, {supervisor.full_name}" in gap()
    _confirm(supervisor, record)
    assert gap() == ""


def _withdraw(actor, record, reason="The wrong trainer was named", password=PASSWORD):  # type: ignore[no-untyped-def]
    return training_record_withdraw(actor=actor, record=record, password=password, reason=reason,
                                    username=actor.username)


def test_the_recorder_withdraws_a_record_awaiting_a_trainer_who_will_not_answer(
        master_version, supervisor, qa_approver, operator, admin_user):
    from qms.services.users import user_deactivate

    record = _record(qa_approver, operator, supervisor, master_version)
    user_deactivate(actor=admin_user, user=supervisor, reason="Left the unit")  # will never answer

    _withdraw(qa_approver, record, reason="Trainer left before confirming")

    record.refresh_from_db()
    assert record.trainer_confirmation == A.WITHDRAWN and record.withdrawn_reason == "Trainer left before confirming"
    signature = Signature.objects.get(target_type="qms.trainingrecord", target_id=str(record.pk),
                                      meaning=Meaning.WITHDRAWN)
    assert signature.signer == qa_approver
    assert AuditEvent.objects.filter(event_type=Event.TRAINING_WITHDRAWN, target_id=str(record.pk)).exists()
    assert not training_is_current(user=operator, **_document(master_version))
    # Its place is free: the training is recorded as it was given, the same day, by the trainer who gave it.
    again = _record(qa_approver, operator, qa_approver, master_version)
    assert again.trainer_confirmation == A.CONFIRMED
    assert list(training_list(TrainingFilters(state="withdrawn"))) == [record]


def test_only_the_recorder_withdraws_and_only_while_the_record_awaits_its_trainer(
        master_version, supervisor, qa_approver, operator, make_user):
    record = _record(qa_approver, operator, supervisor, master_version)
    other_recorder = make_user(Role.QA_APPROVER)

    with pytest.raises(PermissionDenied, match=f"Only {qa_approver.full_name}, who recorded it"):
        _withdraw(other_recorder, record)
    _confirm(supervisor, record)
    with pytest.raises(ValidationError, match="is confirmed: only a record still awaiting its trainer"):
        _withdraw(qa_approver, record)

    record.refresh_from_db()
    assert record.trainer_confirmation == A.CONFIRMED
    assert not AuditEvent.objects.filter(event_type=Event.TRAINING_WITHDRAWN).exists()


def test_a_withdrawn_record_leaves_the_trainers_list_and_cannot_be_confirmed(master_version, supervisor,
                                                                             qa_approver, operator):
    from qms.selectors_training import training_awaiting_trainer

    record = _record(qa_approver, operator, supervisor, master_version)
    _withdraw(qa_approver, record)

    assert record not in training_awaiting_trainer(supervisor)
    with pytest.raises(ValidationError, match="already withdrawn by recorder"):
        _confirm(supervisor, record)
    assert Notification.objects.filter(user=supervisor, text__contains="withdrew").exists()


def test_the_recorder_withdraws_from_the_training_page(client, master_version, supervisor, qa_approver, operator):
    record = _record(qa_approver, operator, supervisor, master_version)
    login(client, qa_approver)
    page = client.get("/qms/training/").content.decode()
    assert 'id="recorded-awaiting"' in page and f'id="recorded-{record.pk}"' in page
    url = f"/qms/training/{record.pk}/withdraw/"

    refused = client.post(url, _fields("withdraw", record, qa_approver, password="wrong", reason="Wrong trainer"))
    assert refused.status_code == 422 and ">\nWrong trainer</textarea>" in refused.content.decode()
    done = client.post(url, _fields("withdraw", record, qa_approver, password=PASSWORD, reason="Wrong trainer"))

    assert done.status_code == 302
    record.refresh_from_db()
    assert record.trainer_confirmation == A.WITHDRAWN
    assert "Withdrawn by recorder" in client.get("/qms/training/").content.decode()


def test_the_tablet_says_a_withdrawn_record_was_withdrawn_not_that_it_awaits(master_version, supervisor,
                                                                            qa_approver, operator):
    from ebr.selectors import step_training_gap
    from tests.ebr.conftest import create_batch

    batch = batch_services.batch_start(actor=supervisor, batch=create_batch(supervisor, master_version))
    _withdraw(qa_approver, _record(qa_approver, operator, supervisor, master_version))

    gap = step_training_gap(user=operator, batch=batch)

    assert gap == (f"your training record on {master_version} was withdrawn by {qa_approver.full_name}, "
                   "who recorded it")
