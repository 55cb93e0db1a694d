"""Training records and the training matrix: who may execute which document version (EU GMP Part I 2.8)."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from qms.audit import Event
from qms.models import AuditEvent, TrainingRecord
from qms.selectors_training import (
    TrainingDocument,
    training_documents,
    training_documents_provider_register,
    training_documents_provider_unregister,
    training_expired,
    training_expiring,
    training_matrix,
)
from qms.services.training import training_is_current, training_record_add
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("documents_unchecked")]


def _days(n: int):
    return timezone.localdate() + timedelta(days=n)


def _record(actor, user, trainer, *, code="CART-01", version="3", trained_on=None, valid_until=None,
            kind="master_record"):
    return training_record_add(actor=actor, user=user, document_kind=kind, document_code=code, version=version,
                               trained_on=trained_on or _days(-10), trainer=trainer, valid_until=valid_until,
                               reason="Initial training", password=PASSWORD, username=actor.username)


def test_training_is_recorded_and_makes_the_person_current_on_that_version_only(supervisor, qa_approver, operator,
                                                                                verifier):
    record = _record(qa_approver, operator, qa_approver, valid_until=_days(365))  # the trainer records it

    assert record.recorded_by == qa_approver and record.document_label == "CART-01 v3"
    event = AuditEvent.objects.get(event_type=Event.TRAINING_RECORDED, target_id=str(record.pk))
    assert {k: v for k, v in event.data.items() if k != "changes"} == {
        "user": operator.username, "document": "master_record:CART-01:3", "trainer": qa_approver.username,
        "trainer_confirmation": "confirmed"}
    current = {"user": operator, "document_kind": "master_record", "document_code": "CART-01"}
    assert training_is_current(**current, version="3")
    assert training_is_current(**current, version=3)  # ebr passes integer versions as text
    assert training_is_current(**current, version="3", on=_days(365))
    assert not training_is_current(**current, version="3", on=_days(366))
    assert not training_is_current(**current, version="3", on=_days(-11))
    assert not training_is_current(**current, version="4")
    assert not training_is_current(user=verifier, document_kind="master_record", document_code="CART-01",
                                   version="3")
    assert not training_is_current(user=operator, document_kind="sop", document_code="CART-01", version="3")


@pytest.mark.parametrize(("change", "field"), [
    ({"trained_on": "future"}, "trained_on"),
    ({"valid_until": "before"}, "valid_until"),
    ({"kind": "poster"}, "document_kind"),
    ({"code": " "}, "document_code"),
    ({"trainer": "self"}, "trainer"),
])
def test_bad_training_records_are_refused(supervisor, qa_approver, operator, verifier, change, field):
    arguments = {"trained_on": _days(-1), "valid_until": None, "kind": "sop", "code": "SOP-017",
                 "trainer": qa_approver}
    arguments.update(change)
    if arguments["trained_on"] == "future":
        arguments["trained_on"] = _days(1)
    if arguments["valid_until"] == "before":
        arguments["valid_until"] = _days(-2)
    if arguments["trainer"] == "self":
        arguments["trainer"] = operator

    with pytest.raises(ValidationError) as refused:
        _record(supervisor, operator, arguments.pop("trainer"), **arguments)

    assert field in refused.value.message_dict
    assert not TrainingRecord.objects.filter(user=operator).exists()


def test_only_supervisors_and_qa_record_training_and_each_training_once(operator, verifier, supervisor, qa_approver):
    with pytest.raises(PermissionDenied):
        _record(verifier, operator, qa_approver)
    _record(supervisor, operator, qa_approver, trained_on=_days(-3))

    with pytest.raises(ValidationError, match="already recorded"):
        _record(supervisor, operator, qa_approver, trained_on=_days(-3))
    assert TrainingRecord.objects.filter(user=operator).count() == 1


def test_matrix_shows_who_may_execute_what(supervisor, qa_approver, operator, verifier, settings):
    settings.QMS_TRAINING_EXPIRY_WARNING_DAYS = 30
    _record(qa_approver, operator, qa_approver, code="CART-01", version="3", valid_until=_days(200))
    _record(qa_approver, operator, qa_approver, code="SOP-017", version="2", kind="sop", valid_until=_days(10))
    _record(qa_approver, verifier, qa_approver, code="CART-01", version="2", valid_until=None)
    _record(qa_approver, verifier, qa_approver, code="SOP-017", version="2", kind="sop", trained_on=_days(-400),
            valid_until=_days(-1))
    documents = [TrainingDocument("master_record", "CART-01", "3"), TrainingDocument("sop", "SOP-017", "2")]

    matrix = training_matrix(users=[operator, verifier, supervisor], documents=documents)

    statuses = {row.user.username: [cell.status for cell in row.cells] for row in matrix.rows}
    assert statuses == {operator.username: ["current", "expiring"], verifier.username: ["other_version", "expired"],
                        supervisor.username: ["missing", "missing"]}
    assert matrix.rows[0].cells[1].text == f"until {_days(10):%Y-%m-%d}"


def test_matrix_documents_come_from_the_registered_provider_or_the_latest_trained_version(supervisor, qa_approver,
                                                                                          operator):
    _record(qa_approver, operator, qa_approver, code="CART-01", version="9")
    _record(qa_approver, operator, qa_approver, code="CART-01", version="10")
    assert TrainingDocument("master_record", "CART-01", "10") in training_documents()

    def effective_versions():
        return [TrainingDocument("master_record", "CART-01", "11", "CAR-T manufacturing")]

    training_documents_provider_register(effective_versions)
    try:
        assert training_documents() == effective_versions()
    finally:
        training_documents_provider_unregister(effective_versions)


def test_expiring_list_leaves_out_renewed_training(supervisor, qa_approver, operator, verifier):
    soon = _record(qa_approver, operator, qa_approver, code="SOP-001", kind="sop", trained_on=_days(-300),
                   valid_until=_days(5))
    renewed = _record(qa_approver, verifier, qa_approver, code="SOP-001", kind="sop", trained_on=_days(-300),
                      valid_until=_days(6))
    _record(qa_approver, verifier, qa_approver, code="SOP-001", kind="sop", trained_on=_days(-1),
            valid_until=_days(700))
    lapsed = _record(qa_approver, operator, qa_approver, code="SOP-002", kind="sop", trained_on=_days(-300),
                     valid_until=_days(-3))

    assert soon in training_expiring(days=30) and renewed not in training_expiring(days=30)
    assert lapsed in training_expired() and soon not in training_expired()


def test_a_record_without_a_date_reads_valid_until_the_document_changes_on_every_page(client, qa_approver,
                                                                                       operator, verifier):
    """One wording for "no date": valid until a new version of the document takes effect (the person is
    then trained again). The list said "no expiry" and the matrix "no expiry", the record itself
    "valid until the document changes"."""
    from tests.conftest import login

    _record(qa_approver, operator, qa_approver, code="CART-01", version="3", valid_until=None)
    _record(qa_approver, verifier, qa_approver, code="CART-01", version="3", valid_until=_days(30))
    matrix = training_matrix(users=[operator, verifier], documents=[TrainingDocument("master_record", "CART-01", "3")])
    login(client, qa_approver)
    listed = client.get("/qms/training/").content.decode()

    assert [row.cells[0].text for row in matrix.rows] == ["until the document changes", f"until {_days(30):%Y-%m-%d}"]
    assert listed.count("the document changes") == 1 and f"{_days(30):%Y-%m-%d}" in listed
    assert "no expiry" not in listed
