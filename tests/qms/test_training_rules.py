"""Training cannot be self-certified (EU GMP Part I 2.8-2.11): the recorder is not the trainee, the
trainer is qualified on the very version, the date is real, and the recorder signs the record."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from qms.models import Signature, TrainingRecord
from qms.roles import Role
from qms.services.training import (
    DocumentVersionFacts,
    training_document_facts_register,
    training_document_facts_unregister,
    training_is_current,
    training_record_add,
)
from qms.signatures import Meaning, SignatureRefused
from tests.conftest import PASSWORD, SEED, login

pytestmark = pytest.mark.django_db


def _days(n: int):
    return timezone.localdate() + timedelta(days=n)


def _record(actor, user, trainer, *, kind="sop", code="SOP-017", version="3", trained_on=None, password=PASSWORD):
    return training_record_add(actor=actor, user=user, document_kind=kind, document_code=code, version=version,
                               trained_on=trained_on or _days(-1), trainer=trainer, valid_until=None,
                               reason="Initial training", password=password, username=actor.username)


@pytest.fixture
def master_version(supervisor, qa_reviewer, qa_approver):
    from ebr.models import Material
    from qms.audit import create_with_reason
    from tests.ebr.conftest import build_version

    media = create_with_reason(Material, actor=SEED, reason="test", code="MED-R", name="Medium", unit="mL")
    return build_version(supervisor, qa_reviewer, qa_approver, {"media": media}, code="MBR-RULES-001")


def test_nobody_records_their_own_training(supervisor, qa_approver):
    with pytest.raises(ValidationError) as refused:
        _record(supervisor, supervisor, qa_approver)

    assert "cannot record your own training" in refused.value.message_dict["user"][0]
    assert not TrainingRecord.objects.filter(user=supervisor).exists()


def test_an_untrained_trainer_is_refused_and_a_trained_one_or_the_qa_approver_accepted(supervisor, qa_approver,
                                                                                         operator, auditor,
                                                                                         make_user):
    with pytest.raises(ValidationError) as refused:
        _record(supervisor, operator, auditor)
    assert "not qualified to train on SOP-017 v3" in refused.value.message_dict["trainer"][0]

    _record(qa_approver, operator, qa_approver, trained_on=_days(-5))  # the bootstrap trainer, who records it
    colleague = make_user(Role.OPERATOR)
    _record(supervisor, colleague, operator, trained_on=_days(-2))  # trained on this version since day -5

    with pytest.raises(ValidationError) as refused:  # not yet trained on that day
        _record(supervisor, make_user(Role.OPERATOR), operator, trained_on=_days(-6))
    assert "trainer" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:  # trained on version 3, not 4
        _record(supervisor, make_user(Role.OPERATOR), operator, version="4")
    assert "trainer" in refused.value.message_dict


def test_every_problem_is_refused_at_once(supervisor, auditor):
    with pytest.raises(ValidationError) as refused:
        training_record_add(actor=supervisor, user=supervisor, document_kind="sop", document_code=" ", version="3",
                            trained_on=_days(3), trainer=auditor, valid_until=_days(1), reason="",
                            password=PASSWORD, username=supervisor.username)

    assert set(refused.value.message_dict) == {"user", "document_code", "trained_on"}


def test_training_before_the_master_record_version_existed_is_refused(master_version,
                                                                      qa_approver, supervisor, operator):
    code, number = master_version.master_record.code, str(master_version.version)
    with pytest.raises(ValidationError) as refused:
        _record(qa_approver, operator, qa_approver, kind="master_record", code=code, version=number,
                trained_on=_days(-300))

    assert refused.value.message_dict["trained_on"] == [
        f"{code} v{number} only exists since {timezone.localdate():%Y-%m-%d}: nobody can have been trained on it "
        "before."]
    _record(qa_approver, supervisor, qa_approver, kind="master_record", code=code, version=number,
            trained_on=timezone.localdate())
    _record(supervisor, operator, supervisor, kind="master_record", code=code, version=number,
            trained_on=timezone.localdate())  # the trainer records it: it counts at once
    assert training_is_current(user=operator, document_kind="master_record", document_code=code, version=number)


def test_the_version_approver_may_train_without_a_training_record(supervisor, operator):
    def facts(code, version):
        return DocumentVersionFacts(issued_on=None, approver_ids=frozenset({supervisor.pk}))

    training_document_facts_register("sop", facts)
    try:
        from qms.services.users import user_create

        recorder = user_create(actor=SEED, username="qa-recorder", full_name="Quinn Recorder", password=PASSWORD,
                               roles=[Role.QA_REVIEWER])
        assert _record(recorder, operator, supervisor).trainer == supervisor
    finally:
        training_document_facts_unregister("sop")


def test_the_recorder_signs_the_record_and_a_wrong_password_records_nothing(supervisor, qa_approver, operator):
    with pytest.raises(SignatureRefused):
        _record(supervisor, operator, qa_approver, password="wrong")
    assert not TrainingRecord.objects.filter(user=operator).exists()

    record = _record(supervisor, operator, qa_approver)

    signature = Signature.objects.get(target_type="qms.trainingrecord", target_id=str(record.pk))
    assert (signature.signer, signature.meaning) == (supervisor, Meaning.AUTHORED)


def test_the_form_shows_every_refusal_on_its_field_and_keeps_what_was_typed(client, supervisor, operator):
    login(client, supervisor)

    response = client.post("/qms/training/new/", {
        "user": supervisor.pk, "document_kind": "sop", "document_code": "SOP-017", "version": "3",
        "trained_on": _days(2).isoformat(), "trainer": operator.pk, "reason": "Training",
        "username": supervisor.username, "password": PASSWORD})

    page = response.content.decode()
    assert response.status_code == 422
    assert "cannot record your own training" in page and "before it happened" in page
    assert 'value="SOP-017"' in page
    assert not TrainingRecord.objects.filter(user=supervisor).exists()
