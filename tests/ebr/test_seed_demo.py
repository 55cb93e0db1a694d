"""seed_demo creates one user per role, prints the logins, builds the demo facility (batches,
open, overdue and closed quality records) and can run again without change."""

import re

import pytest
from django.core.management import call_command
from django.utils import timezone

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


def test_every_demo_user_can_log_in_and_sees_a_home_page():
    from django.test import Client

    call_command("seed_demo")

    for username, _, _, _, password in DEMO_USERS:
        response = Client().post("/login/", {"username": username, "password": password}, follow=True)
        assert response.status_code == 200, username
        assert response.request["PATH_INFO"] == "/", username


def test_demo_facility_matches_the_command_contract(capsys):
    from ebr.models import Batch, EquipmentUse, MaterialLot, StepStatus
    from qms.models import Capa, ChangeControl, Deviation

    call_command("seed_demo")
    lines = capsys.readouterr().out.splitlines()

    batch_lines = [line.split() for line in lines if line.startswith("batch ")]
    assert sorted(status for _, _, status in batch_lines) == ["completed", "in_progress"]
    for _, number, status in batch_lines:
        assert Batch.objects.get(number=number).status == status
    equipment_lines = {line.split()[1]: line.split()[2] for line in lines if line.startswith("equipment ")}
    assert equipment_lines["BR-01"] == "bioreactor"
    # By the numbers printed: tests that commit data (worker processes) may leave other batches.
    printed = {status: number for _, number, status in batch_lines}
    running = Batch.objects.get(number=printed["in_progress"])
    use = EquipmentUse.objects.get(batch=running, equipment__code="BR-01")
    assert use.ended_at is None and use.started_at == running.started_at
    assert running.steps.filter(status=StepStatus.DONE).count() == 2
    completed = Batch.objects.get(number=printed["completed"])
    from qms.selectors import deviations_open_for

    assert len(deviations_open_for("ebr.batch", str(completed.pk))) == 2
    assert Deviation.objects.filter(status="closed").exists()
    assert Capa.objects.exists() and ChangeControl.objects.filter(status="approved").exists()
    assert {lot.lot_number for lot in MaterialLot.objects.all() if lot.unusable_reason(lot.expiry_date) or
            lot.expiry_date < __import__("django.utils.timezone", fromlist=["x"]).localdate()} >= {"CS10-7702",
                                                                                                   "LV19-0093"}


def test_demo_quality_system_has_open_overdue_and_closed_records_and_seeds_them_once():
    from ebr.seed import PAPER_CAPA, PAPER_DEVIATION
    from qms.models import Capa, CapaAction, ChangeControl, Deviation
    from qms.models.capa import ACTIVE_CAPA_STATUSES
    from qms.models.deviations import ACTIVE_DEVIATION_STATUSES
    from qms.selectors_dashboard import qa_dashboard

    call_command("seed_demo")
    today = timezone.localdate()

    active = Deviation.objects.filter(status__in=ACTIVE_DEVIATION_STATUSES)
    assert active.count() > 1 and Deviation.objects.filter(status="closed").exists()
    # Overdue only through the paper-record path: services never back-date (server time).
    overdue_deviation = active.get(due_date__lt=today, paper_reference=PAPER_DEVIATION)
    assert overdue_deviation.source == "paper_record"
    overdue_action = CapaAction.objects.get(status="open", due_date__lt=today, capa__paper_reference=PAPER_CAPA,
                                            capa__status__in=ACTIVE_CAPA_STATUSES)
    assert Capa.objects.filter(status__in=ACTIVE_CAPA_STATUSES).count() >= 2
    assert Capa.objects.filter(status="closed").exists() and ChangeControl.objects.exists()
    overdue = {(item.kind, item.reference) for item in qa_dashboard(today).overdue}
    assert {("Deviation", overdue_deviation.number), ("CAPA action", str(overdue_action))} <= overdue

    counts = (Deviation.objects.count(), Capa.objects.count(), CapaAction.objects.count(),
              ChangeControl.objects.count())
    call_command("seed_demo")
    assert (Deviation.objects.count(), Capa.objects.count(), CapaAction.objects.count(),
            ChangeControl.objects.count()) == counts


def test_demo_references_and_hospitals_follow_the_facilitys_settings(settings):
    """seed_demo works on a site that set its own reference format and hospital list."""
    from ebr.identity import patient_ref_validate
    from ebr.seed import _demo_hospital, _demo_patient_ref

    settings.PATIENT_REF_EXAMPLE, settings.PATIENT_REF_FORMAT = "HSP004821", re.compile(r"HSP\d{6}")
    settings.COLLECTING_HOSPITALS = ["Hôpital Nord, aphérèse"]

    assert [patient_ref_validate(_demo_patient_ref(n)) for n in (1, 2)] == ["HSP004801", "HSP004802"]
    assert _demo_hospital("City Hospital") == "Hôpital Nord, aphérèse"
