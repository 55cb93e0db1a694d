"""Training is recorded against master record versions that exist (EU GMP Part I 2.8): a record
for a code or version that does not exist would satisfy nothing, or later satisfy a version it
was never given on."""


import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from qms.models import TrainingRecord
from qms.roles import Role
from qms.services.training import training_record_add
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def _train(actor, user, trainer, code, version, kind="master_record"):
    return training_record_add(actor=actor, user=user, document_kind=kind, document_code=code, version=version,
                               trained_on=timezone.localdate(), trainer=trainer,  # the version exists since today
                               valid_until=None, reason="Training", password=PASSWORD, username=actor.username)


@pytest.mark.parametrize(("code", "number", "field", "message"), [
    ("MBR-NOPE-001", "1", "document_code", "There is no master record MBR-NOPE-001."),
    ("{code}", "7", "version", "{code} has no version 7 (versions: 1)."),
    ("{code}", "v1", "version", "{code} has no version v1"),
    ("{code}", "01", "version", "{code} has no version 01"),  # would never match training_is_current("1")
    ("{code}", "²", "version", "{code} has no version ²"),
])
def test_training_on_a_master_record_that_does_not_exist_is_refused(version, qa_approver, make_user, verifier,
                                                                     code, number, field, message):
    trainee = make_user(Role.OPERATOR)
    record_code = version.master_record.code

    with pytest.raises(ValidationError) as refused:
        _train(qa_approver, trainee, qa_approver, code.format(code=record_code), number)

    assert refused.value.message_dict[field][0].startswith(message.format(code=record_code))
    assert not TrainingRecord.objects.filter(user=trainee).exists()


def test_training_on_an_existing_version_is_recorded_in_any_casing(version, qa_approver, make_user, verifier):
    trainee = make_user(Role.OPERATOR)

    record = _train(qa_approver, trainee, qa_approver, version.master_record.code.lower(), str(version.version))

    assert record.document_code == version.master_record.code.upper()
    # SOPs live in the facility's document system: their codes are not checked here.
    assert _train(qa_approver, trainee, qa_approver, "SOP-017", "3", kind="sop").document_code == "SOP-017"


def test_training_on_a_version_still_in_draft_is_refused(version, supervisor, qa_approver, make_user, monkeypatch):
    """Its limits may still change: training recorded on a draft would pass the execution gate on
    content edited afterwards (found by the code review)."""
    from ebr.services import master_records as master_services
    from qms.services import change_control

    monkeypatch.setattr(change_control, "change_control_is_approved", lambda number: number == "CC-OK")
    draft = master_services.version_new_draft(actor=supervisor, master_record=version.master_record,
                                              change_control="CC-OK", summary_of_changes="Viability ≥ 60 %")
    trainee = make_user(Role.OPERATOR)

    with pytest.raises(ValidationError) as refused:
        _train(qa_approver, trainee, qa_approver, version.master_record.code, str(draft.version))

    assert refused.value.message_dict["version"] == [f"{draft} is draft: training is recorded on an approved version."]
    assert not TrainingRecord.objects.filter(user=trainee).exists()
