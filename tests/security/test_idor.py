"""No object is reachable by guessing its id without the right role (IDOR).

The design (DESIGN.md, qms/roles.py) lets every reader of the facility see every batch and
quality record: there is no per-batch ownership. So the rules tested here are:
- a role without the capability is refused (403) for every id, existing or not, so a refusal
  tells nothing about which ids exist;
- an id that does not exist, is out of range, or belongs to another parent object is a 404,
  never a 500 and never the other object;
- what is personal is personal: a PDF export is downloadable only by the person who asked for
  it, a notification is read and marked only by its owner;
- an instrument token reads only its own readings and posts only to the batch its equipment is
  assigned to (specs/instrument-api.md).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from ebr.models import Reading, ReadingPost
from qms.models import Notification
from qms.roles import MATRIX, Capability, Role
from tests.security.routes import CASES, Case
from tests.security.world import World, snapshot

pytestmark = pytest.mark.django_db

MISSING_TEXT = "ZZ-1999-9999"
MISSING_INTS = (987654321, 2**63)  # the second is past PostgreSQL's bigint


def _missing_paths(case: Case, world: World) -> list[str]:
    from django.urls import reverse

    paths = []
    for name in case.objects:
        kwargs = case.kwargs(world)
        values = MISSING_INTS if isinstance(kwargs[name], int) else (MISSING_TEXT,)
        for value in values:
            paths.append(reverse(case.key, kwargs={**kwargs, name: value}))
    return paths


def _request(client: Client, case: Case, path: str):  # type: ignore[no-untyped-def]
    if "GET" in case.methods:
        return client.get(path, HTTP_ACCEPT="application/json")
    return client.post(path, {})


OBJECT_CASES = [case for case in CASES if case.objects]


@pytest.mark.parametrize("case", OBJECT_CASES, ids=[case.id for case in OBJECT_CASES])
def test_guessed_ids_are_404_for_readers_and_403_for_everyone_else(world, subtests, case):
    people = [role for role in Role if role is not Role.INSTRUMENT]
    allowed = [role for role in people if case.allows(role)]
    # Refused before the object is looked up: a role that may not even read such records.
    refused = [role for role in people if (case.gate is None and not case.allows(role))
               or (case.gate is not None and role not in MATRIX[case.gate])]
    for path in _missing_paths(case, world):
        for role, status in [(allowed[0], 404), *([(refused[0], case.refused_status)] if refused else [])]:
            with subtests.test(path=path, role=role.value), transaction.atomic():
                client = Client()
                client.force_login(world.person(role))
                before = snapshot()

                response = _request(client, case, path)

                assert response.status_code == status, f"{role} {path}: {response.status_code}"
                assert snapshot() == before
                transaction.set_rollback(True)


UNKNOWN_ACTIONS = {
    "batch_action": lambda w: f"/batches/{w.running.number}/no-such-action/",
    "master_version_action": lambda w: f"/master-records/{w.draft.master_record.code}/v{w.draft.version}/nope/",
    "deviation_action": lambda w: f"/qms/deviations/{w.deviation.number}/nope/",
    "capa_action": lambda w: f"/qms/capa/{w.capa.number}/action_complete/",  # a per-item action without its item
    "capa_item_action": lambda w: f"/qms/capa/{w.capa.number}/close/{w.capa_action.pk}/",  # and the reverse
    "change_control_action": lambda w: f"/qms/change-control/{w.change.number}/nope/",
    "change_control_item_action": lambda w: f"/qms/change-control/{w.change.number}/nope/{w.change_task.pk}/",
    "user_action": lambda w: f"/users/{w.person('operator').pk}/delete/",
}


@pytest.mark.parametrize("name", list(UNKNOWN_ACTIONS))
def test_unknown_actions_are_refused_without_a_server_error(world, client, name):
    client.force_login(world.person(Role.QA_APPROVER if name != "user_action" else Role.ADMIN))
    before = snapshot()

    response = client.post(UNKNOWN_ACTIONS[name](world), {"reason": "x"})

    assert response.status_code in (403, 404)
    assert snapshot() == before


@pytest.mark.parametrize(("target_type", "target_id"), [("no.such", "1"), ("ebr.batch", "999999999"),
                                                        ("ebr.batch", "not-a-number"), ("qms.user", "-1")])
def test_record_history_of_unknown_records_is_empty_not_an_error(world, client, target_type, target_id):
    client.force_login(world.person(Role.AUDITOR))

    response = client.get(f"/audit/record/{target_type}/{target_id}/")

    assert response.status_code in (200, 404)
    if response.status_code == 200:
        assert response.context["rows"] == [], "history of a record that does not exist must be empty"


# --- objects addressed through another parent ---------------------------------------------------

def _second_capa_and_change(world: World):  # type: ignore[no-untyped-def]
    from qms.services import capa as capa_services
    from qms.services import change_control as cc_services
    from tests.qms import quality

    reviewer, supervisor, operator = world.person("qa_reviewer"), world.person("supervisor"), world.person("operator")
    capa = quality.capa(reviewer, owner=reviewer, title="Another CAPA")
    action = capa_services.capa_action_add(actor=reviewer, capa=capa, kind="corrective", description="Other",
                                           owner=operator, due_date=quality.in_days(9), reason="Plan")
    change = quality.change(supervisor, title="Another change")
    task = cc_services.change_control_task_add(actor=supervisor, change=change, description="Other",
                                               owner=operator, due_date=quality.in_days(9), reason="Plan")
    return action, task


MISMATCHED = {
    "step of another batch": (Role.OPERATOR, lambda w, o: f"/execute/{w.planned.number}/steps/{w.step.pk}/perform/"),
    "step of another batch (verify)": (
        Role.OPERATOR, lambda w, o: f"/execute/{w.planned.number}/steps/{w.step.pk}/verify/"),
    "value of another step": (
        Role.OPERATOR, lambda w, o: f"/execute/{w.running.number}/steps/{w.step.pk}/values/{o['other_parameter']}/"),
    "alarm of another batch": (
        Role.SUPERVISOR, lambda w, o: f"/batches/{w.running.number}/alarms/{w.alarm.pk}/acknowledge/"),
    "review flag of another batch": (
        Role.QA_REVIEWER, lambda w, o: f"/review/batches/{w.running.number}/flags/{w.flag.pk}/disposition/"),
    "export of another batch": (
        Role.AUDITOR, lambda w, o: f"/batches/{w.completed.number}/pdf/{w.export.pk}/download/"),
    "CAPA action of another CAPA": (
        Role.OPERATOR, lambda w, o: f"/qms/capa/{w.capa.number}/action_complete/{o['action'].pk}/"),
    "change task of another change": (
        Role.OPERATOR, lambda w, o: f"/qms/change-control/{w.change.number}/task_complete/{o['task'].pk}/"),
}


@pytest.mark.parametrize("what", list(MISMATCHED))
def test_an_object_addressed_through_another_parent_is_404(world, client, what):
    action, task = _second_capa_and_change(world)
    other_parameter = world.completed.steps.exclude(template=world.step.template).first().template.parameters.first()
    role, path = MISMATCHED[what]
    client.force_login(world.person(role))
    before = snapshot()

    response = (client.get if "download" in what or "export" in what else client.post)(
        path(world, {"action": action, "task": task, "other_parameter": other_parameter.pk}),
        {"password": "x", "reason": "x", "evidence": "x", "value": "1", "outcome": "no_impact"})

    assert response.status_code == 404, what
    assert snapshot() == before


# --- personal objects ---------------------------------------------------------------------------

@pytest.fixture
def export_file_on_disk(world, monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    """The auditor's export, as if the worker had produced it (the file check itself is tested in
    tests/ebr/test_pdf_export_screen.py)."""
    pdf = tmp_path / "record.pdf"
    pdf.write_bytes(b"%PDF-1.7 test")

    def export_file(export):  # type: ignore[no-untyped-def]
        return Path(pdf) if export.pk == world.export.pk else None

    monkeypatch.setattr("ebr.views.exports.export_file", export_file)
    return world.export


@pytest.mark.parametrize("role", [Role.QA_REVIEWER, Role.QA_APPROVER, Role.AUDITOR])
def test_a_pdf_export_is_downloaded_only_by_the_person_who_asked_for_it(world, client, export_file_on_disk,
                                                                         make_user, role):
    url = f"/batches/{world.running.number}/pdf/{export_file_on_disk.pk}/download/"
    client.force_login(world.person(Role.AUDITOR))
    mine = client.get(url)
    assert mine.status_code == 200 and b"".join(mine.streaming_content).startswith(b"%PDF")

    other = make_user(role)  # another person who may export batch records
    client.force_login(other)

    assert role in MATRIX[Capability.AUDIT_TRAIL_EXPORT]
    assert client.get(url).status_code == 404


def test_a_notification_is_read_and_marked_only_by_its_owner(world, client):
    theirs = world.notifications["auditor"]
    client.force_login(world.person(Role.OPERATOR))

    page = client.get("/qms/notifications/").content.decode()
    response = client.post(f"/qms/notifications/{theirs.pk}/read/", {"open": "1"})

    assert "Private note for operator" in page and "Private note for auditor" not in page
    assert response.status_code == 302 and response["Location"] == "/qms/notifications/"  # not their link
    assert Notification.objects.get(pk=theirs.pk).read_at is None


def test_marking_all_read_touches_only_ones_own_notifications(world, client):
    client.force_login(world.person(Role.OPERATOR))

    client.post("/qms/notifications/read-all/")

    assert Notification.objects.get(pk=world.notifications["operator"].pk).read_at is not None
    assert Notification.objects.get(pk=world.notifications["auditor"].pk).read_at is None


# --- instruments --------------------------------------------------------------------------------

def _bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_an_instrument_reads_only_its_own_readings(world, client):
    url = f"/api/v1/batches/{world.process_batch.number}/readings"

    own = client.get(url, **_bearer(world.token)).json()
    other = client.get(url, **_bearer(world.other_registration.token))

    assert own["count"] == 5 and {r["instrument"] for r in own["results"]} == {world.registration.instrument.name}
    # The other instrument's equipment was never assigned to the batch: to it, the batch does not exist.
    assert other.status_code == 404 and "results" not in other.json()


def test_people_who_may_view_batches_read_every_instruments_readings(world, client):
    client.force_login(world.person(Role.AUDITOR))

    body = client.get(f"/api/v1/batches/{world.process_batch.number}/readings").json()

    assert body["count"] == 5


def test_an_instrument_cannot_post_to_a_batch_its_equipment_is_not_assigned_to(world, client):
    from tests.ebr.process_builders import reading

    other = world.other_registration
    moment = timezone.now() - timedelta(minutes=5)
    before = (Reading.objects.count(), ReadingPost.objects.count())

    named = client.post("/api/v1/readings", data=orjson.dumps({"batch": world.process_batch.number,
                                                                "readings": [reading(1, moment)]}),
                        content_type="application/json", **_bearer(other.token))
    unassigned = client.post("/api/v1/readings", data=orjson.dumps({"readings": [reading(1, moment)]}),
                             content_type="application/json", **_bearer(other.token))

    assert named.status_code == 403 and named.json()["errors"]
    assert unassigned.status_code == 422 and unassigned.json()["errors"]
    assert (Reading.objects.count(), ReadingPost.objects.count()) == before


def test_a_revoked_token_reads_and_posts_nothing(world, client):
    from ebr.services.instruments import instrument_revoke
    from tests.conftest import SEED

    instrument_revoke(actor=SEED, instrument=world.other_registration.instrument)
    before = snapshot()

    read = client.get(f"/api/v1/batches/{world.process_batch.number}/readings",
                      **_bearer(world.other_registration.token))
    post = client.post("/api/v1/readings", data=b'{"readings": []}', content_type="application/json",
                       **_bearer(world.other_registration.token))

    assert read.status_code == post.status_code == 401
    assert snapshot() == before


@pytest.mark.parametrize("path", ["/batches/%00/", "/batches/%00/audit-trail/", "/qms/deviations/%00/",
                                  "/qms/capa/%00/", "/qms/change-control/%00/", "/review/batches/%00/",
                                  "/master-records/%00/v1/", "/audit/record/ebr.batch/%00/", "/execute/B%00/"])
def test_a_nul_byte_in_a_record_id_is_not_found_not_a_server_error(world, path):
    from qms.roles import Role

    client = Client()
    client.force_login(world.person(Role.QA_REVIEWER))

    assert client.get(path).status_code == 404
