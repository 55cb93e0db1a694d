"""A master record changes only under the change control that assessed that change (EU GMP Part I
1.4(xii), Annex 15 §11): a process change naming the record, one version per change control,
and the change control is neither implemented nor closed before the version is effective."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from ebr.models import VersionStatus
from ebr.services import master_records as master_services
from qms.models import ChangeType
from qms.services import change_control as cc_services
from tests.conftest import PASSWORD
from tests.qms.quality import change

pytestmark = pytest.mark.django_db


def approved(author, approver, **fields):  # type: ignore[no-untyped-def]
    opened = change(author, **fields)
    return cc_services.change_control_approve(actor=approver, change=opened, password=PASSWORD,
                                              username=approver.username, reason="Impact assessed")


def draft(supervisor, version, number: str):  # type: ignore[no-untyped-def]
    return master_services.version_new_draft(actor=supervisor, master_record=version.master_record,
                                             change_control=number, summary_of_changes="Viability ≥ 60 %")


def test_an_approved_change_of_another_kind_does_not_authorise_a_new_version(version, supervisor, qa_approver):
    equipment = approved(supervisor, qa_approver, change_type=ChangeType.EQUIPMENT,
                         affected_items=version.master_record.code)

    with pytest.raises(ValidationError) as refused:
        draft(supervisor, version, equipment.number)

    assert "is a change of equipment" in str(refused.value.message_dict["change_control"])
    assert version.master_record.versions.count() == 1


def test_a_process_change_that_does_not_name_the_master_record_does_not_authorise_it(version, supervisor,
                                                                                     qa_approver):
    other = approved(supervisor, qa_approver, change_type=ChangeType.PROCESS, affected_items="MBR-OTHER-001, SOP-017")

    with pytest.raises(ValidationError, match=f"does not name {version.master_record.code}"):
        draft(supervisor, version, other.number)


def test_the_right_change_control_authorises_one_version_stored_as_numbered(version, supervisor, qa_approver):
    process = approved(supervisor, qa_approver, change_type=ChangeType.PROCESS,
                       affected_items=f"{version.master_record.code} step 2.1; SOP-017")

    second = draft(supervisor, version, f"  {process.number.lower()} ")

    assert (second.version, second.change_control) == (2, process.number)
    with pytest.raises(ValidationError, match=f"{process.number} already authorised"):
        master_services.version_new_draft(actor=supervisor, master_record=version.master_record,
                                          change_control=process.number, summary_of_changes="Another change")


def test_a_change_control_is_not_implemented_before_the_version_it_authorises_is_effective(
        version, supervisor, qa_approver):
    process = approved(supervisor, qa_approver, change_type=ChangeType.PROCESS,
                       affected_items=version.master_record.code)
    second = draft(supervisor, version, process.number)
    assert second.status == VersionStatus.DRAFT

    with pytest.raises(ValidationError, match=f"{second} is draft, not effective"):
        cc_services.change_control_implement(actor=supervisor, change=process, reason="Done")


def test_a_closed_change_control_authorises_no_new_version_and_one_with_a_draft_is_not_cancelled(
        version, supervisor, qa_approver):
    from qms.models import ChangeControl, ChangeControlStatus

    process = approved(supervisor, qa_approver, change_type=ChangeType.PROCESS,
                       affected_items=version.master_record.code)
    ChangeControl.objects.filter(pk=process.pk).update(status=ChangeControlStatus.CLOSED)  # its work is done
    with pytest.raises(ValidationError, match=f"{process.number} is closed: no further work"):
        draft(supervisor, version, process.number)

    other = approved(supervisor, qa_approver, change_type=ChangeType.PROCESS, affected_items=version.master_record.code)
    second = draft(supervisor, version, other.number)
    with pytest.raises(ValidationError, match=f"{second} is draft, not effective"):
        cc_services.change_control_cancel(actor=qa_approver, change=other, reason="Not needed after all")


@pytest.mark.parametrize(("number", "said"), [
    ("", "Name the approved change control that authorises this new version."),
    ("CC-2099-0001", "There is no change control CC-2099-0001: check its number"),
])
def test_a_missing_or_unknown_change_control_is_named_as_such(version, supervisor, number, said):
    with pytest.raises(ValidationError, match=said):
        draft(supervisor, version, number)


def test_an_opened_but_unapproved_change_control_is_said_to_be_unapproved(version, supervisor):
    opened = change(supervisor, change_type=ChangeType.PROCESS, affected_items=version.master_record.code)

    with pytest.raises(ValidationError, match=f"{opened.number} is not approved: a new version needs an approved"):
        draft(supervisor, version, opened.number)
