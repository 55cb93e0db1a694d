"""An abandoned draft of a master record is withdrawn under signature, with its reason (21 CFR 11.50,
11.10(e); EU GMP Part I 4.1, 4.10): kept on record, never edited, submitted or executed again, and it
no longer holds the change control that authorised it (Annex 15 §11)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from ebr.models import MasterRecordVersion, VersionStatus
from ebr.services import master_records as master_services
from qms.audit import Event
from qms.models import AuditEvent, ChangeControlStatus, ChangeType
from qms.roles import Role
from qms.services import change_control as cc_services
from qms.services.training import training_record_add
from qms.signatures import SignatureRefused
from qms.staleness import CHANGED_SINCE, record_version
from tests.conftest import PASSWORD, login, person
from tests.ebr.conftest import build_version, create_batch, resources  # noqa: F401 (fixture)
from tests.ebr.test_master_record_change_control import approved
from tests.ebr.test_master_version_seen import a_draft as a_first_draft
from tests.ebr.test_master_version_seen import reviewed, signatures, stored, the_step

pytestmark = pytest.mark.django_db

WHY = "Process change abandoned: the supplier kept the NC-200"


def a_draft(author, code="MBR-WD-100"):  # type: ignore[no-untyped-def]
    """A later draft (v2) of a record whose v1 is effective: a first version has nothing to start again
    from, so it is never withdrawn."""
    reviewer, approver = person(Role.QA_REVIEWER, "Rita Reviewer"), person(Role.QA_APPROVER, "Quentin Approver")
    first = reviewed(author, reviewer, code)
    master_services.version_approve(actor=approver, version=first, password=PASSWORD, username=approver.username)
    master_services.version_make_effective(actor=approver, version=first)
    change = approved(author, approver, change_type=ChangeType.PROCESS, affected_items=code)
    return master_services.version_new_draft(actor=author, master_record=first.master_record,
                                             change_control=change.number, summary_of_changes="Seal check")


def withdraw(version, actor, **overrides):  # type: ignore[no-untyped-def]
    values = {"password": PASSWORD, "username": actor.username, "reason": WHY, **overrides}
    return master_services.version_withdraw(actor=actor, version=version, **values)


# --- the rule ----------------------------------------------------------------------------------

def test_an_author_withdraws_a_draft_under_signature_and_the_audit_trail_says_why(supervisor):
    version = a_draft(supervisor)

    withdrawn = withdraw(version, supervisor, seen=record_version(version))

    assert MasterRecordVersion.objects.get(pk=version.pk).status == VersionStatus.WITHDRAWN == withdrawn.status
    signature = signatures(version, "withdrawn").get()
    assert (signature.signer, signature.reason, signature.printed_name) == (supervisor, WHY, supervisor.full_name)
    event = AuditEvent.objects.get(event_type=Event.MASTER_VERSION_WITHDRAWN, target_id=str(version.pk))
    assert event.reason == WHY and event.data["signature"] == signature.pk
    assert {"field": "status", "old": "draft", "new": "withdrawn"}.items() <= event.data["changes"][0].items()
    assert version.history.filter(status=VersionStatus.WITHDRAWN).get().history_change_reason == WHY


@pytest.mark.parametrize(("reached", "why"), [
    ("in_review", "is in review: only a draft can be withdrawn; a reviewer or QA returns it to draft first"),
    ("approved", "is approved: it was approved under signature and stays on record"),
    ("effective", "is effective: it was approved under signature and stays on record"),
    ("withdrawn", "is withdrawn already"),
])
def test_only_a_draft_is_withdrawn_and_the_refusal_says_why(supervisor, qa_reviewer, qa_approver, reached, why):
    version = a_draft(supervisor) if reached == "withdrawn" else reviewed(supervisor, qa_reviewer)
    if reached == "withdrawn":
        withdraw(version, supervisor)
    if reached in {"approved", "effective"}:
        master_services.version_approve(actor=qa_approver, version=version, password=PASSWORD,
                                        username=qa_approver.username)
    if reached == "effective":
        master_services.version_make_effective(actor=qa_approver, version=version)
    before = stored(version)

    with pytest.raises(ValidationError, match=why):
        withdraw(version, supervisor)

    assert stored(version) == before


def test_a_draft_returned_from_review_can_be_withdrawn(supervisor, qa_reviewer):
    version = a_draft(supervisor)
    master_services.version_submit(actor=supervisor, version=version, password=PASSWORD, username=supervisor.username)
    master_services.version_review(actor=qa_reviewer, version=version, password=PASSWORD,
                                   username=qa_reviewer.username)
    master_services.version_return(actor=qa_reviewer, version=version, reason="Not needed after all")

    assert withdraw(version, supervisor).status == VersionStatus.WITHDRAWN


@pytest.mark.parametrize("role", [Role.QA_APPROVER, Role.OPERATOR, Role.AUDITOR])
def test_only_someone_who_may_author_master_records_withdraws_a_draft(supervisor, make_user, role):
    version = a_draft(supervisor)
    other = make_user(role)
    before = stored(version)

    with pytest.raises(PermissionDenied):
        withdraw(version, other)

    assert stored(version) == before


def test_the_first_version_of_a_master_record_is_not_withdrawn(supervisor):
    first = a_first_draft(supervisor, code="MBR-WD-001")

    with pytest.raises(ValidationError, match="is the first version of MBR-WD-001: there is no approved version"):
        withdraw(first, supervisor)

    assert MasterRecordVersion.objects.get(pk=first.pk).status == VersionStatus.DRAFT


def test_only_the_author_who_started_the_draft_withdraws_it_while_their_account_is_active(supervisor, make_user,
                                                                                           admin_user):
    from qms.services.users import user_deactivate

    version = a_draft(supervisor)
    co_author = make_user(Role.QA_REVIEWER)

    with pytest.raises(PermissionDenied, match=f"Only {supervisor.full_name}, who started this draft"):
        withdraw(version, co_author)
    assert MasterRecordVersion.objects.get(pk=version.pk).status == VersionStatus.DRAFT

    user_deactivate(actor=admin_user, user=supervisor, reason="Left the unit")  # nobody else could ever withdraw it
    assert withdraw(version, co_author).status == VersionStatus.WITHDRAWN


def test_a_withdrawal_needs_a_reason_and_the_signers_password(supervisor):
    version = a_draft(supervisor)
    before = stored(version)

    with pytest.raises(ValidationError) as no_reason:
        withdraw(version, supervisor, reason="   ")
    with pytest.raises(SignatureRefused, match="Wrong password"):
        withdraw(version, supervisor, password="not-my-password")

    assert "reason" in no_reason.value.message_dict
    assert MasterRecordVersion.objects.get(pk=version.pk).status == VersionStatus.DRAFT
    assert not signatures(version, "withdrawn").exists()
    assert stored(version)[0] == before[0] and stored(version)[2] == before[2]


def test_a_withdrawal_signed_on_a_stale_page_is_refused(supervisor, make_user):
    co_author = make_user(Role.QA_REVIEWER, full_name="Cora Coauthor")
    version = a_draft(supervisor)
    seen = record_version(version)
    master_services.step_instructions_update(actor=co_author, step=the_step(version), reason="Clearer",
                                             instructions="Check the label, then the seal.")

    with pytest.raises(ValidationError, match=CHANGED_SINCE):
        withdraw(version, supervisor, seen=seen)

    assert MasterRecordVersion.objects.get(pk=version.pk).status == VersionStatus.DRAFT


def test_a_withdrawn_version_is_never_edited_submitted_trained_on_or_executed(
        supervisor, qa_approver, resources):  # noqa: F811
    version = a_draft(supervisor)
    withdraw(version, supervisor)
    step = the_step(version)

    for edit in (lambda: master_services.stage_add(actor=supervisor, version=version, name="More"),
                 lambda: master_services.step_instructions_update(actor=supervisor, step=step, instructions="New",
                                                                  reason="Edit"),
                 lambda: master_services.parameter_add(actor=supervisor, step=step, code="x", label="X",
                                                       kind="text")):
        with pytest.raises(ValidationError, match="is withdrawn: it is never edited again"):
            edit()
    with pytest.raises(ValidationError, match="withdrawn version cannot become in review"):
        master_services.version_submit(actor=supervisor, version=version, password=PASSWORD,
                                       username=supervisor.username)
    with pytest.raises(ValidationError) as no_batch:
        create_batch(supervisor, version)
    assert "is not effective" in str(no_batch.value.message_dict["version"])
    with pytest.raises(ValidationError, match="withdrawn: training is recorded on an approved version"):
        training_record_add(actor=qa_approver, user=supervisor, document_kind="master_record",
                            document_code=version.master_record.code, version=str(version.version),
                            trained_on=timezone.localdate(),
                            trainer=qa_approver, valid_until=timezone.localdate() + timedelta(days=365),
                            reason="Initial", password=PASSWORD, username=qa_approver.username)


# --- the change control it held ----------------------------------------------------------------

def a_new_draft_under_change_control(supervisor, qa_reviewer, qa_approver, resources):  # type: ignore[no-untyped-def]  # noqa: F811
    effective = build_version(supervisor, qa_reviewer, qa_approver, resources, code="MBR-WD-001")
    change = approved(supervisor, qa_approver, change_type=ChangeType.PROCESS,
                      affected_items=effective.master_record.code)
    draft = master_services.version_new_draft(actor=supervisor, master_record=effective.master_record,
                                              change_control=change.number, summary_of_changes="Viability ≥ 60 %")
    return change, draft


def test_a_withdrawn_draft_no_longer_holds_its_change_control_which_may_then_be_cancelled(
        supervisor, qa_reviewer, qa_approver, resources):  # noqa: F811
    change, draft = a_new_draft_under_change_control(supervisor, qa_reviewer, qa_approver, resources)
    with pytest.raises(ValidationError, match=f"{draft} is draft, not effective"):
        cc_services.change_control_cancel(actor=qa_approver, change=change, reason="Change abandoned")

    withdraw(draft, supervisor)
    task = cc_services.change_control_task_add(actor=supervisor, change=change, description="Train the operators",
                                               owner=supervisor, due_date=timezone.localdate() + timedelta(days=5),
                                               reason="Plan")
    cc_services.change_control_task_complete(actor=supervisor, task=task, evidence="Training records TR-9",
                                             password=PASSWORD, username=supervisor.username, reason="Done")
    # Nothing was changed under it: it is not declared implemented …
    with pytest.raises(ValidationError, match="every master record version drafted under it was withdrawn"):
        cc_services.change_control_implement(actor=supervisor, change=change, reason="All tasks done")
    # … it is cancelled.
    cancelled = cc_services.change_control_cancel(actor=qa_approver, change=change, reason="Change abandoned")

    assert cancelled.status == ChangeControlStatus.CANCELLED


def test_the_change_control_of_a_withdrawn_draft_authorises_a_new_draft_under_a_new_number(
        supervisor, qa_reviewer, qa_approver, resources):  # noqa: F811
    change, draft = a_new_draft_under_change_control(supervisor, qa_reviewer, qa_approver, resources)
    withdraw(draft, supervisor)

    again = master_services.version_new_draft(actor=supervisor, master_record=draft.master_record,
                                              change_control=change.number, summary_of_changes="Viability ≥ 65 %")

    assert (again.version, again.change_control, again.status) == (3, change.number, VersionStatus.DRAFT)
    assert again.based_on.status == VersionStatus.EFFECTIVE  # the effective version, never the withdrawn one
    with pytest.raises(ValidationError, match=f"{change.number} already authorised {again}"):
        master_services.version_new_draft(actor=supervisor, master_record=draft.master_record,
                                          change_control=change.number, summary_of_changes="A third try")


# --- the page ----------------------------------------------------------------------------------

def url(version, action=""):  # type: ignore[no-untyped-def]
    return f"/master-records/{version.master_record.code}/v{version.version}/" + (f"{action}/" if action else "")


def test_the_withdraw_button_is_offered_to_authors_on_a_draft_only(client, supervisor, qa_reviewer, qa_approver):
    version = a_draft(supervisor)

    assert "Withdraw this draft" in login(client, supervisor).get(url(version)).content.decode()
    client.post("/logout/")
    assert "Withdraw this draft" not in login(client, qa_approver).get(url(version)).content.decode()
    client.post("/logout/")
    login(client, supervisor)
    master_services.version_submit(actor=supervisor, version=version, password=PASSWORD,
                                   username=supervisor.username)
    assert "Withdraw this draft" not in client.get(url(version)).content.decode()


def test_withdrawing_from_the_page_keeps_what_was_typed_when_refused_then_shows_the_withdrawn_state(
        client, supervisor):
    version = a_draft(supervisor)
    login(client, supervisor)
    page = client.get(url(version)).content.decode()
    assert 'class="btn btn-danger">Withdraw this draft</summary>' in page

    no_reason = client.post(url(version, "withdraw"), {"seen": record_version(version), "reason": "",
                                                       "username": supervisor.username, "password": PASSWORD})
    wrong = client.post(url(version, "withdraw"), {"seen": record_version(version), "reason": WHY,
                                                   "username": supervisor.username, "password": "not-mine-at-all"})

    assert no_reason.status_code == 422 and "This field is required." in no_reason.content.decode()
    assert wrong.status_code == 422 and "Wrong password" in wrong.content.decode()
    assert f">{WHY}</textarea>" in wrong.content.decode() and "not-mine-at-all" not in wrong.content.decode()
    assert MasterRecordVersion.objects.get(pk=version.pk).status == VersionStatus.DRAFT

    done = client.post(url(version, "withdraw"), {"seen": record_version(version), "reason": WHY,
                                                  "username": supervisor.username, "password": PASSWORD})

    assert done.status_code == 302
    page = client.get(url(version)).content.decode()
    assert '<span class="tag bad" id="version-status">Withdrawn</span>' in page
    assert f"by {supervisor.full_name} on" in page and WHY in page
    assert "Sign as author and submit for review" not in page and "Withdraw this draft" not in page
    assert "Add a step to" not in page
    listing = client.get("/master-records/").content.decode()
    assert '<span class="tag bad">Withdrawn</span>' in listing


def test_a_withdrawal_posted_from_a_stale_page_is_a_422_with_the_message(client, supervisor, make_user):
    version = a_draft(supervisor)
    login(client, supervisor)
    seen = record_version(version)
    master_services.stage_add(actor=make_user(Role.QA_REVIEWER, full_name="Cora Coauthor"), version=version,
                              name="Release")

    response = client.post(url(version, "withdraw"), {"seen": seen, "reason": WHY, "username": supervisor.username,
                                                      "password": PASSWORD})

    html = response.content.decode()
    assert response.status_code == 422 and f"{CHANGED_SINCE} (Cora Coauthor at" in html
    assert f">{WHY}</textarea>" in html
    assert MasterRecordVersion.objects.get(pk=version.pk).status == VersionStatus.DRAFT


def test_the_change_control_page_lists_the_versions_it_authorised_and_what_came_of_them(
        client, supervisor, qa_reviewer, qa_approver, resources):  # noqa: F811
    change, draft = a_new_draft_under_change_control(supervisor, qa_reviewer, qa_approver, resources)
    withdraw(draft, supervisor)
    again = master_services.version_new_draft(actor=supervisor, master_record=draft.master_record,
                                              change_control=change.number, summary_of_changes="Viability ≥ 65 %")

    login(client, qa_approver)
    page = client.get(f"/qms/change-control/{change.number}/").content.decode()

    listed = page.split('id="change-citing"')[1].split("</ul>")[0]
    assert f'<a href="{url(draft)}">{draft}</a> <span class="tag">Withdrawn</span>' in listed
    assert f'<a href="{url(again)}">{again}</a> <span class="tag">Draft</span>' in listed
