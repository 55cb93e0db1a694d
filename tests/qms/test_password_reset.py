"""A person who lost or forgot their password gets a new one from an administrator, who must then
not be able to use it: the holder changes it before anything else, the old password's sessions
end, and the trail says who reset it, why and how the identity was checked (21 CFR 11.300(b),
11.300(c), 11.10(d), 11.10(e); EU GMP Annex 11 §12.1). An account that still holds the
administrator role with a GMP role (given before the two were kept apart) cannot sign."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client

from qms.audit import Event
from qms.models import AuditEvent
from qms.roles import Capability, Role, can
from qms.selectors_people import users_who_train, users_with
from qms.services import users as user_services
from qms.signatures import SignatureRefused, sign
from tests.conftest import PASSWORD, login

pytestmark = pytest.mark.django_db

TEMPORARY = "violet-harbour-ninety-two"
OWN = "amber-lantern-quietly-folds"
WHY = "Forgot password; identity checked in person against the staff badge"


def _reset_form(password: str = TEMPORARY, again: str | None = None, reason: str = WHY) -> dict[str, str]:
    return {"new_password": password, "new_password_again": password if again is None else again, "reason": reason}


def test_a_reset_password_must_be_changed_before_anything_else(client, operator, admin_user):
    login(client, admin_user)
    response = client.post(f"/users/{operator.pk}/password/", _reset_form())
    assert response.status_code == 302

    operator.refresh_from_db()
    assert operator.must_change_password and operator.check_password(TEMPORARY)
    event = AuditEvent.objects.get(event_type=Event.PASSWORD_RESET, target_id=str(operator.pk))
    assert (event.actor, event.reason) == (admin_user, WHY)
    assert TEMPORARY not in str(event.data) and operator.password not in str(event.data)  # never the password

    holder = Client()
    login(holder, operator, TEMPORARY)
    assert holder.get("/batches/")["Location"] == "/account/password/"
    told = holder.get("/account/password/").content.decode()
    assert f"{admin_user.full_name} reset it on" in told and "knows the password you were given" in told
    with pytest.raises(SignatureRefused, match="Change the password an administrator gave you"):
        sign(signer=operator, password=TEMPORARY, meaning="performed", target=operator, username=operator.username)
    holder.post("/account/password/", {"current_password": TEMPORARY, "new_password": OWN,
                                       "new_password_again": OWN})
    operator.refresh_from_db()
    assert not operator.must_change_password
    assert holder.get("/batches/").status_code == 200


def test_a_reset_ends_the_sessions_opened_with_the_old_password(operator, admin_user):
    tablet = login(Client(), operator)
    key = tablet.session.session_key

    user_services.password_reset(actor=admin_user, user=operator, password=TEMPORARY, reason=WHY)

    assert not Session.objects.filter(session_key=key).exists()
    ended = AuditEvent.objects.get(event_type=Event.SESSION_ENDED_PASSWORD_RESET, target_id=str(operator.pk))
    assert ended.actor == admin_user and WHY in ended.reason
    assert tablet.get("/batches/").status_code == 302  # back to the login


def test_a_reset_clears_the_lockout_the_lost_password_caused(client, operator, admin_user):
    for _ in range(5):
        Client().post("/login/", {"username": operator.username, "password": "wrong-password-123"})
    assert user_services.account_locked(operator.username)

    user_services.password_reset(actor=admin_user, user=operator, password=TEMPORARY, reason=WHY)

    assert not user_services.account_locked(operator.username)
    unlocked = AuditEvent.objects.get(event_type=Event.USER_UNLOCKED, target_id=str(operator.pk))
    assert unlocked.data["attempts_cleared"] >= 1 and unlocked.reason == WHY
    assert client.post("/login/", {"username": operator.username, "password": TEMPORARY}).status_code == 302


def test_nobody_resets_their_own_password_and_only_an_administrator_resets(admin_user, supervisor, operator):
    with pytest.raises(PermissionDenied, match="nobody resets their own"):
        user_services.password_reset(actor=admin_user, user=admin_user, password=TEMPORARY, reason=WHY)
    with pytest.raises(PermissionDenied, match="Only an administrator"):
        user_services.password_reset(actor=supervisor, user=operator, password=TEMPORARY, reason=WHY)
    operator.refresh_from_db()
    assert operator.check_password(PASSWORD) and not operator.must_change_password
    assert not AuditEvent.objects.filter(event_type=Event.PASSWORD_RESET).exists()


@pytest.mark.parametrize(("form", "field", "message"), [
    (_reset_form(reason="  "), "reason", "required"),
    (_reset_form(password="kx7-pw"), "new_password", "too short"),
    (_reset_form(again="violet-harbour-ninety-three"), "new_password_again", "differ"),
    (_reset_form(password="password123456"), "new_password", "too common"),
])
def test_a_refused_reset_says_why_keeps_the_reason_and_changes_nothing(client, operator, admin_user, form, field,
                                                                        message):
    login(client, admin_user)
    response = client.post(f"/users/{operator.pk}/password/", form)

    assert response.status_code == 422
    assert message in " ".join(str(e) for e in response.context["form"].errors[field])
    page = response.content.decode()
    if form["reason"].strip():
        assert form["reason"] in page  # what the administrator typed stays
    assert f'value="{form["new_password"]}"' not in page  # a password never comes back into the page
    operator.refresh_from_db()
    assert operator.check_password(PASSWORD) and not operator.must_change_password
    assert not AuditEvent.objects.filter(event_type=Event.PASSWORD_RESET).exists()


def test_a_reset_shows_a_mismatch_and_the_password_rules_at_once(client, operator, admin_user):
    login(client, admin_user)

    response = client.post(f"/users/{operator.pk}/password/", _reset_form(password=operator.username + "-2026",
                                                                          again="something-else-entirely"))

    errors = response.context["form"].errors
    assert response.status_code == 422
    assert "differ" in str(errors["new_password_again"]) and "username" in str(errors["new_password"])


def test_a_deactivated_account_is_not_reset(operator, admin_user):
    user_services.user_deactivate(actor=admin_user, user=operator, reason="Left the unit")

    with pytest.raises(ValidationError, match="reactivate it first"):
        user_services.password_reset(actor=admin_user, user=operator, password=TEMPORARY, reason=WHY)


def test_an_administrator_is_sent_to_change_their_own_password_not_to_reset_it(client, admin_user):
    login(client, admin_user)

    response = client.get(f"/users/{admin_user.pk}/password/", follow=True)

    assert response.redirect_chain == [("/account/password/", 302)]
    assert "Nobody resets their own password" in response.content.decode()


def test_only_an_administrator_reaches_the_reset_page(client, operator, supervisor):
    login(client, supervisor)

    assert client.get(f"/users/{operator.pk}/password/").status_code == 403
    assert client.post(f"/users/{operator.pk}/password/", _reset_form()).status_code == 403


def test_an_account_holding_admin_and_a_gmp_role_cannot_sign_until_one_goes(client, make_user, admin_user):
    legacy = make_user(Role.ADMIN)
    legacy.groups.add(Group.objects.get(name=Role.QA_APPROVER.value))  # given before the roles were kept apart
    legacy.__dict__.pop("_role_names", None)

    with pytest.raises(SignatureRefused, match="administrator role and a GMP role"):
        sign(signer=legacy, password=PASSWORD, meaning="approved", target=legacy, username=legacy.username)
    assert AuditEvent.objects.filter(event_type=Event.SIGNATURE_REFUSED, actor=legacy).exists()
    # Nor does it act unsigned with its GMP role (making a version effective, cancelling a CAPA, …).
    assert not can(legacy, Capability.MASTER_RECORD_APPROVE) and not can(legacy, Capability.CAPA_CLOSE)
    assert can(legacy, Capability.USER_MANAGE)
    assert legacy not in users_with(Capability.DEVIATION_INVESTIGATE)  # nor is it offered as an owner
    assert legacy not in users_who_train()

    login(client, admin_user)
    row = client.get("/users/").content.decode().split(f'data-username="{legacy.username}"')[1].split("</tr>")[0]
    assert "admin + GMP roles" in row

    user_services.user_roles_set(actor=admin_user, user=legacy, roles=[Role.QA_APPROVER], reason="Split the duties")
    legacy.__dict__.pop("_role_names", None)
    assert can(legacy, Capability.MASTER_RECORD_APPROVE)
    signature = sign(signer=legacy, password=PASSWORD, meaning="approved", target=legacy, username=legacy.username)
    assert signature.signer == legacy


def test_the_trainer_picker_offers_people_who_work_on_gmp_records(make_user, admin_user, auditor, supervisor,
                                                                  qa_approver):
    offered = set(users_who_train())

    assert {supervisor, qa_approver} <= offered and not {admin_user, auditor} & offered


def test_a_password_an_administrator_set_stops_working_after_its_hours(client, operator, admin_user, settings):
    """The administrator knows the temporary password until the holder chooses their own; it opens the
    account for TEMPORARY_PASSWORD_HOURS only. Past that the login is refused with the reason, recorded
    as a failed login with its cause, and a new reset opens a new window."""
    login(client, admin_user)
    page = client.get(f"/users/{operator.pk}/password/").content.decode()
    assert "it works for 72 hours" in page
    assert client.post(f"/users/{operator.pk}/password/", _reset_form()).status_code == 302
    settings.TEMPORARY_PASSWORD_HOURS = 0  # the window has passed

    holder = Client()
    refused = holder.post("/login/", {"username": operator.username, "password": TEMPORARY})

    assert refused.status_code == 200 and "_auth_user_id" not in holder.session
    assert "The password you were given has expired" in refused.content.decode()
    event = AuditEvent.objects.filter(event_type=Event.LOGIN_FAILED, target_id=str(operator.pk)).latest("id")
    assert event.data["cause"] == "temporary_password_expired" and event.actor_id == operator.pk
    assert holder.get("/batches/").status_code != 200
    row = client.get("/users/").content.decode().split(f'data-username="{operator.username}"')[1].split("</tr>")[0]
    assert "temporary password expired" in row  # the administrator sees who needs a new one

    settings.TEMPORARY_PASSWORD_HOURS = 72
    assert "temporary password expired" not in client.get("/users/").content.decode()
    assert client.post(f"/users/{operator.pk}/password/", _reset_form(reason=WHY + " (second time)")).status_code == 302
    login(holder, operator, TEMPORARY)
    assert holder.get("/batches/")["Location"] == "/account/password/"


def test_a_password_the_holder_chose_never_expires_this_way(client, operator, settings):
    settings.TEMPORARY_PASSWORD_HOURS = 0

    login(client, operator)  # the operator's own password (the fixture's account was made by the system)

    assert client.get("/batches/").status_code == 200


def test_an_expired_temporary_password_opens_no_session_through_the_admin_login_either(client, admin_user, settings):
    """Every login form applies the rule: the Django admin's own login page too (is_staff accounts)."""
    staff = user_services.user_create(actor=admin_user, username="stella-staff", full_name="Stella Staff",
                                      password=TEMPORARY, roles=[Role.AUDITOR], reason="New auditor")
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])
    settings.TEMPORARY_PASSWORD_HOURS = 0

    response = client.post("/admin/login/", {"username": staff.username, "password": TEMPORARY})

    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert "The password you were given has expired" in response.content.decode()
