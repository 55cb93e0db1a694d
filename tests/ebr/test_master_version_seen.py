"""Nobody signs a master record version over content they never saw (21 CFR 11.50, 11.70; EU GMP
Part I 4.3): every signature of the version page, and its return and effective steps, carry `seen`,
the version of the page read, and are refused, with nothing stored, when the version, a stage,
step, parameter, material prescription, instrument limit or image changed since."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from ebr.models import MasterRecordVersion, VersionStatus
from ebr.services import master_records as master_services
from qms.models import AuditEvent, Signature
from qms.roles import Role
from qms.staleness import CHANGED_SINCE, record_version
from tests.conftest import PASSWORD, login
from tests.ebr.conftest import a_draft, resources  # noqa: F401 (resources: fixture)
from tests.ebr.test_instructions import media, png  # noqa: F401 (fixture: images to the test's folder)

pytestmark = pytest.mark.django_db


def reviewed(author, reviewer, code="MBR-SEEN-001"):  # type: ignore[no-untyped-def]
    version = a_draft(author, code)
    master_services.version_submit(actor=author, version=version, password=PASSWORD, username=author.username)
    master_services.version_review(actor=reviewer, version=version, password=PASSWORD, username=reviewer.username)
    return version


def the_step(version):  # type: ignore[no-untyped-def]
    return version.stages.get().steps.get()


def rewrite_under_review(version, author, reviewer, instructions="Check the label and the seal."):  # type: ignore[no-untyped-def]
    """What happens in another tab while QA reads: returned, edited, submitted and reviewed again."""
    master_services.version_return(actor=reviewer, version=version, reason="Mention the seal")
    master_services.step_instructions_update(actor=author, step=the_step(version), instructions=instructions,
                                             reason="Seal check added")
    master_services.version_submit(actor=author, version=version, password=PASSWORD, username=author.username)
    master_services.version_review(actor=reviewer, version=version, password=PASSWORD, username=reviewer.username)


def stored(version):  # type: ignore[no-untyped-def]
    """What a refusal must leave untouched: the version's row, the audit trail and the signatures."""
    return (MasterRecordVersion.objects.filter(pk=version.pk).values().get(), AuditEvent.objects.count(),
            Signature.objects.count())


def refused(call, version, who):  # type: ignore[no-untyped-def]
    before = stored(version)
    with pytest.raises(ValidationError) as refusal:
        call()
    message = refusal.value.messages[0]
    assert message.startswith(CHANGED_SINCE) and who.full_name in message and "review the changes" in message
    assert stored(version) == before
    return message


def signatures(version, meaning):  # type: ignore[no-untyped-def]
    return Signature.objects.filter(target_type="ebr.masterrecordversion", target_id=str(version.pk), meaning=meaning)


# --- services ----------------------------------------------------------------------------------

def test_approval_refused_when_the_steps_instructions_changed_after_qa_read_the_version(
        supervisor, qa_reviewer, qa_approver):
    version = reviewed(supervisor, qa_reviewer)
    seen = record_version(version)  # QA opens the page
    rewrite_under_review(version, supervisor, qa_reviewer)

    message = refused(lambda: master_services.version_approve(
        actor=qa_approver, version=version, password=PASSWORD, username=qa_approver.username, seen=seen),
        version, supervisor)

    assert message.endswith("then sign again.")
    assert MasterRecordVersion.objects.get(pk=version.pk).status == VersionStatus.IN_REVIEW
    assert not signatures(version, "approved").exists()


def test_approval_signed_on_the_version_read(supervisor, qa_reviewer, qa_approver):
    version = reviewed(supervisor, qa_reviewer)
    rewrite_under_review(version, supervisor, qa_reviewer)
    seen = record_version(version)  # the page read after the rewrite

    approved = master_services.version_approve(actor=qa_approver, version=version, password=PASSWORD,
                                               username=qa_approver.username, seen=seen)

    assert approved.status == VersionStatus.APPROVED
    assert the_step(approved).instructions == "Check the label and the seal."
    assert signatures(version, "approved").count() == 1


def test_submission_refused_when_a_co_author_edited_the_draft_meanwhile(supervisor, make_user):
    co_author = make_user(Role.QA_REVIEWER, full_name="Cora Coauthor")
    version = a_draft(supervisor)
    seen = record_version(version)
    master_services.parameter_update(actor=co_author, parameter=the_step(version).parameters.get(),
                                     reason="Tighter", upper_limit=Decimal("6"))

    refused(lambda: master_services.version_submit(actor=supervisor, version=version, password=PASSWORD,
                                                   username=supervisor.username, seen=seen), version, co_author)

    assert MasterRecordVersion.objects.get(pk=version.pk).status == VersionStatus.DRAFT
    assert not signatures(version, "authored").exists()
    master_services.version_submit(actor=supervisor, version=version, password=PASSWORD,
                                   username=supervisor.username, seen=record_version(version))
    assert MasterRecordVersion.objects.get(pk=version.pk).status == VersionStatus.IN_REVIEW


def test_review_and_return_refuse_a_stale_page_and_the_current_one_goes_through(
        supervisor, qa_reviewer, qa_approver, make_user):
    second_reviewer = make_user(Role.QA_REVIEWER, full_name="Rita Reviewer")
    version = reviewed(supervisor, qa_reviewer)
    seen = record_version(version)
    rewrite_under_review(version, supervisor, qa_reviewer)

    refused(lambda: master_services.version_review(actor=second_reviewer, version=version, password=PASSWORD,
                                                   username=second_reviewer.username, seen=seen), version, supervisor)
    message = refused(lambda: master_services.version_return(actor=second_reviewer, version=version,
                                                             reason="Unclear", seen=seen), version, supervisor)
    assert message.endswith("then return it again.")

    master_services.version_approve(actor=qa_approver, version=version, password=PASSWORD,
                                    username=qa_approver.username, seen=record_version(version))
    approved_seen = record_version(version)
    master_services.version_make_effective(actor=qa_approver, version=version, reason="Trained",
                                           seen=approved_seen)
    assert MasterRecordVersion.objects.get(pk=version.pk).status == VersionStatus.EFFECTIVE


def test_every_part_the_page_shows_moves_the_version(supervisor, resources):  # noqa: F811
    """Stages, steps, parameters, materials, instrument limits and images: each edit of the draft
    moves the version its page carries, so none can slip under a signature unseen."""
    version = a_draft(supervisor)
    step = the_step(version)
    edits = [
        lambda: master_services.stage_add(actor=supervisor, version=version, name="Release"),
        lambda: master_services.step_add(actor=supervisor, stage=version.stages.first(), code="1.2", title="Store",
                                         instructions="At 4 °C.",
                                         instrument_limits=[{"parameter": "temp", "alert_high": Decimal("8")}]),
        lambda: master_services.parameter_add(actor=supervisor, step=step, code="seal", label="Seal intact",
                                              kind="yes_no", expected="yes"),
        lambda: master_services.step_material_add(actor=supervisor, step=step, material=resources["media"],
                                                  quantity=Decimal("10"), tolerance=None),
        lambda: master_services.step_material_update(actor=supervisor, step=step, material=resources["media"],
                                                     quantity=Decimal("12"), tolerance=None, reason="More medium"),
        lambda: master_services.instruction_image_add(actor=supervisor, step=step, content=png(), caption="Label"),
        lambda: master_services.step_instructions_update(actor=supervisor, step=step, reason="Place the figure",
                                                         instructions="Check the label. ![Label](image:1)"),
    ]
    versions = [record_version(version)]
    for edit in edits:
        edit()
        versions.append(record_version(version))

    assert len(set(versions)) == len(versions), versions


def test_no_page_read_is_no_comparison(supervisor, qa_reviewer, qa_approver):
    """Commands, the demo data and other tests sign without a page: `seen` None compares nothing."""
    version = reviewed(supervisor, qa_reviewer)
    rewrite_under_review(version, supervisor, qa_reviewer)

    assert master_services.version_approve(actor=qa_approver, version=version, password=PASSWORD,
                                           username=qa_approver.username).status == VersionStatus.APPROVED


# --- the page ----------------------------------------------------------------------------------

def url(version, action=""):  # type: ignore[no-untyped-def]
    return f"/master-records/{version.master_record.code}/v{version.version}/" + (f"{action}/" if action else "")


def test_an_approval_posted_from_a_stale_page_is_a_422_with_the_message_and_the_current_version(
        client, supervisor, qa_reviewer, qa_approver):
    version = reviewed(supervisor, qa_reviewer)
    login(client, qa_approver)
    page = client.get(url(version)).content.decode()
    seen = record_version(version)
    assert f'name="seen" value="{seen}"' in page
    rewrite_under_review(version, supervisor, qa_reviewer)

    response = client.post(url(version, "approve"), {"seen": seen, "username": qa_approver.username,
                                                     "password": PASSWORD})

    html = response.content.decode()
    assert response.status_code == 422
    assert f"{CHANGED_SINCE} ({supervisor.full_name} at" in html and "review the changes, then sign again." in html
    assert "Check the label and the seal." in html  # the page now shows what changed
    assert f'name="seen" value="{record_version(version)}"' in html and f'value="{seen}"' not in html
    assert f'value="{qa_approver.username}"' in html and PASSWORD not in html
    assert MasterRecordVersion.objects.get(pk=version.pk).status == VersionStatus.IN_REVIEW
    assert not signatures(version, "approved").exists()

    again = client.post(url(version, "approve"), {"seen": record_version(version),
                                                  "username": qa_approver.username, "password": PASSWORD})
    assert again.status_code == 302
    assert MasterRecordVersion.objects.get(pk=version.pk).status == VersionStatus.APPROVED


def test_a_signature_posted_without_the_version_read_is_refused(client, supervisor, qa_reviewer, qa_approver):
    version = reviewed(supervisor, qa_reviewer)
    login(client, qa_approver)

    response = client.post(url(version, "approve"), {"username": qa_approver.username, "password": PASSWORD})

    assert response.status_code == 422
    assert "does not say which version of the record you read" in response.content.decode()
    assert not signatures(version, "approved").exists()


def test_a_return_refused_for_its_empty_reason_also_says_the_version_changed(client, supervisor, qa_reviewer,
                                                                             make_user):
    version = reviewed(supervisor, qa_reviewer)
    login(client, qa_reviewer)
    seen = record_version(version)
    master_services.version_return(actor=make_user(Role.QA_REVIEWER), version=version, reason="Seal")
    master_services.version_submit(actor=supervisor, version=version, password=PASSWORD,
                                   username=supervisor.username)

    response = client.post(url(version, "return"), {"seen": seen, "reason": ""})

    assert response.status_code == 422
    assert CHANGED_SINCE in response.content.decode()
    assert MasterRecordVersion.objects.get(pk=version.pk).status == VersionStatus.IN_REVIEW
