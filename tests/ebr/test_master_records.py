"""Master record versions: three different signers, one effective version, frozen once approved."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from ebr.models import MasterRecordVersion, VersionStatus
from ebr.selectors import version_diff
from ebr.services import master_records as master_services
from qms.models import Signature
from qms.signatures import SegregationOfDuties
from tests.conftest import PASSWORD
from tests.ebr.conftest import build_version

pytestmark = pytest.mark.django_db


def test_approval_collects_author_reviewer_and_approver_signatures(supervisor, qa_reviewer, qa_approver, resources):
    version = build_version(supervisor, qa_reviewer, qa_approver, resources)

    assert version.status == VersionStatus.EFFECTIVE
    signers = dict(Signature.objects.filter(target_type="ebr.masterrecordversion", target_id=str(version.pk))
                   .values_list("meaning", "signer_id"))
    assert signers == {"authored": supervisor.pk, "reviewed": qa_reviewer.pk, "approved": qa_approver.pk}


def test_author_cannot_review_and_approver_must_be_a_third_person(make_user, supervisor, qa_approver, resources):
    from qms.roles import Role

    both = make_user(roles=[Role.SUPERVISOR, Role.QA_APPROVER])
    product = master_services.product_create(actor=supervisor, code="P-X", name="X")
    version = master_services.master_record_create(actor=both, product=product, code="MBR-X", title="X")
    stage = master_services.stage_add(actor=both, version=version, name="S")
    master_services.step_add(actor=both, stage=stage, code="1", title="t", instructions="i")
    master_services.version_submit(actor=both, version=version, password=PASSWORD, username=both.username)

    with pytest.raises(SegregationOfDuties):
        master_services.version_review(actor=both, version=version, password=PASSWORD, username=both.username)
    master_services.version_review(actor=supervisor, version=version, password=PASSWORD, username=supervisor.username)
    # one person's second review is no second pair of eyes
    with pytest.raises(ValidationError, match="already reviewed"):
        master_services.version_review(actor=supervisor, version=version, password=PASSWORD,
                                       username=supervisor.username)
    assert Signature.objects.filter(target_type="ebr.masterrecordversion", target_id=str(version.pk),
                                    meaning="reviewed").count() == 1
    with pytest.raises(SegregationOfDuties):
        master_services.version_approve(actor=both, version=version, password=PASSWORD, username=both.username)
    master_services.version_approve(actor=qa_approver, version=version, password=PASSWORD,
                                    username=qa_approver.username)


def test_approved_version_is_frozen(version, supervisor):
    with pytest.raises(ValidationError, match="frozen"):
        master_services.stage_add(actor=supervisor, version=version, name="Sneaked in")


def test_new_version_needs_an_approved_change_control(version, supervisor):
    with pytest.raises(ValidationError, match="change control"):
        master_services.version_new_draft(actor=supervisor, master_record=version.master_record,
                                          change_control="CC-2026-9999", summary_of_changes="Tighter MOI")


def test_new_version_is_a_copy_and_becoming_effective_supersedes_the_old(version, supervisor, qa_reviewer,
                                                                          qa_approver, monkeypatch):
    from qms.services import change_control

    monkeypatch.setattr(change_control, "change_control_is_approved", lambda number: number == "CC-OK")
    draft = master_services.version_new_draft(actor=supervisor, master_record=version.master_record,
                                              change_control="CC-OK", summary_of_changes="Temperature 2-6 °C")
    assert draft.version == 2 and draft.status == VersionStatus.DRAFT
    assert draft.stages.count() == version.stages.count()
    temp = draft.stages.get(order=1).steps.get(code="1.1").parameters.get(code="temp")
    master_services.parameter_update(actor=supervisor, parameter=temp, reason="CC-OK: tighter limit",
                                     upper_limit=Decimal("6"))
    with pytest.raises(ValidationError, match="frozen"):
        master_services.parameter_update(actor=supervisor, reason="x", upper_limit=Decimal("9"),
                                         parameter=version.stages.get(order=1).steps.get(code="1.1")
                                         .parameters.get(code="temp"))
    rows = [row for row in version_diff(version, draft) if row.changed]
    assert rows and "temp" in rows[0].key

    master_services.version_submit(actor=supervisor, version=draft, password=PASSWORD, username=supervisor.username)
    master_services.version_review(actor=qa_reviewer, version=draft, password=PASSWORD, username=qa_reviewer.username)
    master_services.version_approve(actor=qa_approver, version=draft, password=PASSWORD, username=qa_approver.username)
    master_services.version_make_effective(actor=qa_approver, version=draft)

    assert MasterRecordVersion.objects.get(pk=version.pk).status == VersionStatus.SUPERSEDED
    assert MasterRecordVersion.objects.filter(master_record=version.master_record,
                                              status=VersionStatus.EFFECTIVE).count() == 1
