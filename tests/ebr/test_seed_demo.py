"""seed_demo creates one user per role, prints the logins, and can run again without change."""

import pytest
from django.core.management import call_command

from ebr.management.commands.seed_demo import DEMO_USERS
from qms.models import User
from qms.roles import Role

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_one_user_per_human_role_and_prints_passwords(capsys):
    call_command("seed_demo")
    output = capsys.readouterr().out

    for username, _, _, roles, password in DEMO_USERS:
        user = User.objects.get(username=username)
        assert user.check_password(password)
        assert {r.value for r in roles} == user.role_names
        assert f"user {username} " in output and password in output
    seeded_roles = {role for _, _, _, roles, _ in DEMO_USERS for role in roles}
    assert seeded_roles == set(Role) - {Role.INSTRUMENT}


def test_seed_demo_is_idempotent(capsys):
    call_command("seed_demo")
    count = User.objects.count()
    history = User.history.count()

    call_command("seed_demo")

    assert User.objects.count() == count
    assert User.history.count() == history
    assert "(exists)" in capsys.readouterr().out


@pytest.mark.parametrize(("username", "password"), [(u, p) for u, _, _, _, p in DEMO_USERS])
def test_every_demo_user_can_log_in_and_sees_a_home_page(client, username, password):
    call_command("seed_demo")

    response = client.post("/login/", {"username": username, "password": password}, follow=True)

    assert response.status_code == 200
    assert response.request["PATH_INFO"] == "/"
