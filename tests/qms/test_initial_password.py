"""An account an administrator created changes its password before anything else, and the
administrator role never goes with a role that records or signs GMP data (21 CFR 11.10(d),
11.100(a), 11.300(b); EU GMP Annex 11 §12.1)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from qms.audit import Event, SystemActor
from qms.models import AuditEvent
from qms.roles import Role
from qms.services import users as user_services
from qms.signatures import SignatureRefused, sign
from tests.conftest import login

pytestmark = pytest.mark.django_db

GIVEN = "handed-over-by-admin-42"
OWN = "amber-lantern-quietly-folds"


def created_by(actor, username: str = "qp2", roles=(Role.QA_APPROVER,)):  # type: ignore[no-untyped-def]
    return user_services.user_create(actor=actor, username=username, full_name="Marc Lefevre", password=GIVEN,
                                     roles=list(roles), reason="Backup QP")


def test_an_account_an_administrator_created_must_change_its_password_first(client, admin_user):
    qp = created_by(admin_user)
    assert qp.must_change_password

    login(client, qp, GIVEN)
    for page in ("/", "/batches/", "/qms/deviations/"):
        response = client.get(page)
        assert (response.status_code, response["Location"]) == (302, "/account/password/"), page
    assert client.get("/account/password/").status_code == 200

    response = client.post("/account/password/", {"current_password": GIVEN, "new_password": OWN,
                                                  "new_password_again": OWN})
    assert response.status_code == 302
    qp.refresh_from_db()
    assert not qp.must_change_password
    assert client.get("/batches/").status_code == 200


def test_no_signature_with_the_password_an_administrator_gave(admin_user):
    qp = created_by(admin_user)

    with pytest.raises(SignatureRefused, match="Change the password an administrator gave you"):
        sign(signer=qp, password=GIVEN, meaning="approved", target=qp, username=qp.username)

    refused = AuditEvent.objects.get(event_type=Event.SIGNATURE_REFUSED, actor=qp)  # recorded, like other refusals
    assert "administrator gave you" in refused.reason


def test_accounts_the_system_creates_are_not_asked_to_change():
    seeded = created_by(SystemActor("system:seed"), username="demo-qp")

    assert not seeded.must_change_password


@pytest.mark.parametrize("gmp_role", [Role.OPERATOR, Role.SUPERVISOR, Role.QA_REVIEWER, Role.QA_APPROVER])
def test_the_administrator_role_never_goes_with_a_gmp_data_role(admin_user, make_user, gmp_role):
    with pytest.raises(ValidationError, match="administrator role cannot go with"):
        created_by(admin_user, username=f"both-{gmp_role.value}", roles=(Role.ADMIN, gmp_role))
    colleague = make_user(Role.ADMIN)
    with pytest.raises(ValidationError, match="administrator role cannot go with"):
        user_services.user_roles_set(actor=admin_user, user=colleague, roles=[Role.ADMIN, gmp_role],
                                     reason="Covering QA")
    assert sorted(colleague.role_names) == ["admin"]


def test_the_auditor_role_may_go_with_the_administrator(admin_user):
    both = created_by(admin_user, username="audit-lead", roles=(Role.ADMIN, Role.AUDITOR))

    assert sorted(both.role_names) == ["admin", "auditor"]
