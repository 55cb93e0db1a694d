"""Segregation of duties on the screens: a signature the rules refuse is never offered, and a
refused one (a stale page, a second tab) comes back as a reason on the form, never a 500."""

import re
import uuid

import pytest

from ebr.models import MasterRecordVersion, StepStatus, VersionStatus
from ebr.selectors import step_may_verify
from ebr.services import master_records as master_services
from ebr.services.execution import entry_record, step_perform, step_verify
from qms.models import Signature
from qms.roles import Role
from qms.signatures import SegregationOfDuties, SignatureRefused
from qms.staleness import record_version
from tests.conftest import PASSWORD, login
from tests.ebr.test_release import reviewed_batch  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def record(person, step, code, value):
    entry_record(actor=person, step=step, parameter=step.template.parameters.get(code=code), value=value,
                 idempotency_key=uuid.uuid4().hex)


def signatures(target, meaning):
    return Signature.objects.filter(target_type=target._meta.label_lower, target_id=str(target.pk), meaning=meaning)


@pytest.fixture
def shared_step(batch, verifier, supervisor):
    """The QA finding: operator 2 recorded one value, the supervisor the other and signed "performed"."""
    step = batch.steps.get(status=StepStatus.OPEN)
    record(verifier, step, "temp", "5")
    record(supervisor, step, "label_ok", "yes")
    step_perform(actor=supervisor, step=step, password=PASSWORD, username=supervisor.username)
    step.refresh_from_db()
    assert step.status == StepStatus.PERFORMED
    return step


def test_who_recorded_a_value_is_not_offered_the_verification(client, batch, shared_step, verifier):
    page = login(client, verifier).get(f"/execute/{batch.number}/").content.decode()

    assert "Second-person verification" in page
    assert "Sign: verified" not in page
    assert "Verification by another trained person: you recorded values in this step." in page


def test_the_performer_is_not_offered_the_verification(client, batch, shared_step, supervisor):
    page = login(client, supervisor).get(f"/execute/{batch.number}/").content.decode()

    assert "Sign: verified" not in page
    assert "You performed this step: another operator must verify it." in page


def test_another_trained_person_is_offered_the_verification(client, batch, shared_step, operator):
    page = login(client, operator).get(f"/execute/{batch.number}/").content.decode()

    assert "Sign: verified" in page and "Verification by another trained person" not in page


def test_a_refused_verification_is_a_reason_on_the_form_and_nothing_is_signed(client, batch, shared_step, verifier):
    """Was a 500 (SegregationOfDuties is a PermissionError, not Django's PermissionDenied)."""
    login(client, verifier)

    response = client.post(f"/execute/{batch.number}/steps/{shared_step.pk}/verify/",
                           {"username": verifier.username, "password": PASSWORD})

    html = response.content.decode()
    assert response.status_code == 422
    assert "The verifier must not have recorded values in the step they verify." in html
    # The form is not offered to them again: the reason stands where it was.
    assert "Sign: verified" not in html and PASSWORD not in html
    shared_step.refresh_from_db()
    assert shared_step.status == StepStatus.PERFORMED and shared_step.verified_by is None
    assert not signatures(shared_step, "verified").exists()


def test_the_step_page_and_step_verify_apply_the_same_rule(shared_step, supervisor, verifier, operator):
    """The screen's flag is what the service decides: a wrong password gets past segregation of
    duties only for whom the page offers the form (nothing is signed either way)."""
    for person in (supervisor, verifier, operator):
        try:
            step_verify(actor=person, step=shared_step, password="not-the-password", username=person.username)
        except SegregationOfDuties:
            refused_for_duties = True
        except SignatureRefused:
            refused_for_duties = False
        assert step_may_verify(step=shared_step, user=person) is not refused_for_duties, person.full_name
    assert not signatures(shared_step, "verified").exists()


# --- master records ---------------------------------------------------------------------------

def draft_in_review(author, code="MBR-SOD-001"):
    product = master_services.product_create(actor=author, code=f"P-{code}", name="SoD product")
    version = master_services.master_record_create(actor=author, product=product, code=code, title="SoD")
    stage = master_services.stage_add(actor=author, version=version, name="Receipt")
    master_services.step_add(actor=author, stage=stage, code="1.1", title="Receive", instructions="Check.",
                             parameters=[{"code": "ok", "label": "Label OK", "kind": "yes_no", "expected": "yes"}])
    master_services.version_submit(actor=author, version=version, password=PASSWORD, username=author.username)
    version.refresh_from_db()
    assert version.status == VersionStatus.IN_REVIEW
    return version


def version_url(version, action=""):
    return f"/master-records/{version.master_record.code}/v{version.version}/" + (f"{action}/" if action else "")


def test_the_author_is_not_offered_the_review_of_their_version(client, supervisor, qa_reviewer):
    version = draft_in_review(supervisor)

    page = login(client, supervisor).get(version_url(version)).content.decode()

    assert "Sign: reviewed" not in page
    assert "Reviewed: signed by a reviewer other than its author (Sofia Supervisor)." in page
    assert "Return to draft" in page  # returning is no signature: still the author's reviewer role
    client.post("/logout/")
    assert "Sign: reviewed" in login(client, qa_reviewer).get(version_url(version)).content.decode()


def test_a_refused_review_by_the_author_is_a_reason_on_the_form(client, supervisor):
    """Was a 500: `SegregationOfDuties: An approver must not be an author…`."""
    version = draft_in_review(supervisor)
    login(client, supervisor)

    response = client.post(version_url(version, "review"), {"seen": record_version(version),
                                                           "username": supervisor.username, "password": PASSWORD})

    html = response.content.decode()
    assert response.status_code == 422
    assert "An approver must not be an author of what they approve." in html
    assert PASSWORD not in html
    assert not signatures(version, "reviewed").exists()
    assert MasterRecordVersion.objects.get(pk=version.pk).status == VersionStatus.IN_REVIEW


def test_an_approver_who_authored_is_not_offered_the_approval_and_is_refused_on_the_form(
        client, make_user, qa_reviewer, qa_approver):
    author = make_user(roles=[Role.SUPERVISOR, Role.QA_APPROVER], full_name="Dana Dual")
    version = draft_in_review(author, code="MBR-SOD-002")
    master_services.version_review(actor=qa_reviewer, version=version, password=PASSWORD,
                                   username=qa_reviewer.username)
    login(client, author)

    page = client.get(version_url(version)).content.decode()
    response = client.post(version_url(version, "approve"), {"seen": record_version(version),
                                                            "username": author.username, "password": PASSWORD})

    assert "Sign: approved (QA)" not in page
    assert ("Approved (QA): signed by a QA approver who is neither its author nor its reviewer "
            "(Dana Dual, Quentin Reviewer).") in page
    assert response.status_code == 422
    assert "The QA approver must not be the author or the reviewer of this version." in response.content.decode()
    assert not signatures(version, "approved").exists()
    assert MasterRecordVersion.objects.get(pk=version.pk).status == VersionStatus.IN_REVIEW
    client.post("/logout/")
    assert "Sign: approved (QA)" in login(client, qa_approver).get(version_url(version)).content.decode()


# --- batch release ----------------------------------------------------------------------------

def test_a_release_refused_to_an_executor_is_a_reason_on_the_form(client, reviewed_batch, make_user,  # noqa: F811
                                                                    operator):
    from qms.services.users import user_roles_set

    user_roles_set(actor=make_user(Role.ADMIN), user=operator, roles=[Role.OPERATOR, Role.QA_APPROVER],
                   reason="Dual role for the test")
    login(client, operator)
    page = client.get(f"/batches/{reviewed_batch.number}/").content.decode()
    seen = re.search(r'name="trail_seen" value="([\d:]+)"', page).group(1)  # the record as the page showed it

    response = client.post(f"/batches/{reviewed_batch.number}/release/",
                           {"username": operator.username, "password": PASSWORD, "reason": "Meets specifications",
                            "trail_seen": seen})

    html = response.content.decode()
    assert response.status_code == 422
    assert "QA release must not be signed by anyone who executed the batch." in html
    assert "Meets specifications" in html and PASSWORD not in html
    reviewed_batch.refresh_from_db()
    assert reviewed_batch.status != "released"
    assert not signatures(reviewed_batch, "released").exists()
