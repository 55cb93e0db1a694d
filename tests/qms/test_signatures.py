"""Electronic signatures: re-authentication, record linking, validity, refusals (21 CFR 11.50 to 11.300)."""

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import transaction

from qms.audit import Event, save_with_reason
from qms.models import AuditEvent, Signature
from qms.signatures import (
    Meaning,
    SegregationOfDuties,
    SignatureRefused,
    ensure_approver_not_author,
    ensure_releaser_not_executor,
    ensure_verifier_not_performer,
    manifestation,
    sign,
    signatures_for,
    user_is_locked,
)
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def _sign(signer, target, *, password=PASSWORD, username="__own__", session=None, meaning=Meaning.REVIEWED):
    with transaction.atomic():
        return sign(signer=signer, password=password, meaning=meaning, target=target, reason="Reviewed",
                    username=signer.username if username == "__own__" else username, session=session)


def test_signature_records_printed_name_meaning_time_and_content_hash(qa_reviewer, operator):
    signature = _sign(qa_reviewer, operator)

    assert signature.printed_name == "Quentin Reviewer"
    assert signature.meaning == "reviewed"
    assert signature.signed_at is not None and signature.signed_at.utcoffset().total_seconds() == 0
    assert len(signature.content_hash) == 64
    assert signature.content["username"] == operator.username
    event = AuditEvent.objects.get(event_type=Event.SIGNATURE_APPLIED, data__signature=signature.pk)
    assert event.actor_id == qa_reviewer.pk


def test_manifestation_shows_name_local_time_with_zone_and_meaning(qa_reviewer, operator, settings):
    signature = _sign(qa_reviewer, operator)

    shown = str(manifestation(signature))

    assert shown.startswith("Reviewed by Quentin Reviewer on ")
    assert "CET" in shown or "CEST" in shown  # the facility's zone (Europe/Paris by default)
    assert shown.endswith("(valid)")


def test_signature_turns_invalid_when_the_record_changes(qa_reviewer, operator, admin_user):
    signature = _sign(qa_reviewer, operator)
    operator.job_title = "Senior operator"
    save_with_reason(operator, actor=admin_user, reason="Promotion", update_fields=["job_title"])

    shown = manifestation(signature)

    assert shown.valid is False
    assert shown.status == "invalid — record changed after signing"
    assert [s.valid for s in signatures_for(operator)] == [False]


def test_signature_cannot_be_moved_to_another_record(qa_reviewer, operator, verifier):
    signature = _sign(qa_reviewer, operator)

    assert signature.target_id == str(operator.pk)
    from qms.signatures import content_hash

    assert content_hash(verifier) != signature.content_hash


def test_wrong_password_is_refused_recorded_and_counted(qa_reviewer, operator):
    with pytest.raises(SignatureRefused, match="Wrong password"):
        _sign(qa_reviewer, operator, password="not-my-password")

    assert not Signature.objects.filter(signer=qa_reviewer).exists()
    # recorded although the signing transaction was rolled back
    refused = AuditEvent.objects.using("security").filter(event_type=Event.SIGNATURE_REFUSED, actor_id=qa_reviewer.pk)
    assert refused.count() == 1
    from axes.models import AccessAttempt

    assert AccessAttempt.objects.get(username=qa_reviewer.username).failures_since_start == 1


def test_five_wrong_signing_passwords_lock_the_account(qa_reviewer, operator, client):
    said = []
    for _ in range(5):
        with pytest.raises(SignatureRefused) as refused:
            _sign(qa_reviewer, operator, password="not-my-password")
        said.append(str(refused.value))

    # Each refusal says how many tries are left before the lock falls; the fifth locks.
    assert said[0] == "Wrong password: the signature was not applied. 4 more wrong attempts will lock the account."
    assert said[3].endswith("1 more wrong attempt will lock the account.")
    assert said[4] == "This account is locked; an administrator must unlock it."

    assert user_is_locked(qa_reviewer)
    with pytest.raises(SignatureRefused, match="locked"):
        _sign(qa_reviewer, operator)
    assert client.post("/login/", {"username": qa_reviewer.username, "password": PASSWORD}).status_code == 429


def test_deactivated_user_cannot_sign(qa_reviewer, operator, admin_user):
    from qms.services.users import user_deactivate

    user_deactivate(actor=admin_user, user=qa_reviewer, reason="Left")
    qa_reviewer.refresh_from_db()

    with pytest.raises(SignatureRefused, match="deactivated"):
        _sign(qa_reviewer, operator)


def test_nobody_can_sign_as_another_user(qa_reviewer, qa_approver, operator):
    # the approver's username with the reviewer's session: refused, whatever the password
    with pytest.raises(SignatureRefused, match="only sign as yourself"):
        _sign(qa_reviewer, operator, username=qa_approver.username)
    with pytest.raises(SignatureRefused):
        _sign(qa_reviewer, operator, username=qa_approver.username, password=PASSWORD)
    assert not Signature.objects.filter(target_id=str(operator.pk)).exists()


def test_first_signing_of_a_session_needs_the_username_then_only_the_password(qa_reviewer, operator):
    session = SessionStore()

    with pytest.raises(SignatureRefused, match="username and password"):
        _sign(qa_reviewer, operator, username=None, session=session)
    _sign(qa_reviewer, operator, session=session)
    second = _sign(qa_reviewer, operator, username=None, session=session)

    assert second.pk


def test_unknown_meaning_is_refused(qa_reviewer, operator):
    with pytest.raises(ValueError, match="not a valid Meaning"):
        _sign(qa_reviewer, operator, meaning="liked")


def test_segregation_of_duties(operator, verifier, qa_approver):
    ensure_verifier_not_performer(verifier=verifier, performer=operator)
    with pytest.raises(SegregationOfDuties):
        ensure_verifier_not_performer(verifier=operator, performer=operator)
    with pytest.raises(SegregationOfDuties):
        ensure_approver_not_author(approver=qa_approver, authors=[operator, qa_approver])
    with pytest.raises(SegregationOfDuties):
        ensure_releaser_not_executor(releaser=operator, executors=[verifier, operator])
