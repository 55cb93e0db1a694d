"""Review pages per role: QA queue and review by exception, signed disposition, monitoring, search."""

import uuid

import pytest

from nlp_review.models import Disposition
from nlp_review.services import batch_review_run
from qms.audit import SystemActor
from qms.models import OutboxMessage
from tests.conftest import PASSWORD, login
from tests.ebr.conftest import batch, resources, version  # noqa: F401  (fixtures)
from tests.ebr.test_release import run_batch

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewed(batch, operator, verifier):  # noqa: F811
    run_batch(batch, operator, verifier, comments={"temp": "Glove torn during transfer in BSC, changed gloves."})
    return batch_review_run(batch=batch, actor=SystemActor("system:tests"), request_id=f"t-{uuid.uuid4()}")


def test_qa_sees_queue_ranked_and_the_evidence_highlighted(client, qa_reviewer, reviewed):
    login(client, qa_reviewer)

    queue = client.get("/review/")
    page = client.get(f"/review/batches/{reviewed.batch.number}/")

    assert queue.status_code == 200 and reviewed.batch.number in queue.content.decode()
    html = page.content.decode()
    assert page.status_code == 200
    assert "<mark>Glove torn</mark> during transfer in BSC" in html
    assert "routine, nothing flagged" in html  # steps without flags are collapsed
    assert "Review queue by risk" in client.get("/").content.decode()


def test_disposition_form_signs_the_flag(client, qa_reviewer, reviewed):
    login(client, qa_reviewer)
    flag = reviewed.flags.first()

    response = client.post(f"/review/batches/{reviewed.batch.number}/flags/{flag.pk}/disposition/", {
        "outcome": "no_impact", "reason": "Documented correctly", "username": qa_reviewer.username,
        "password": PASSWORD})

    assert response.status_code == 302
    flag.refresh_from_db()
    assert flag.disposition == Disposition.NO_IMPACT and flag.signature_id


def test_wrong_password_keeps_the_flag_open(client, qa_reviewer, reviewed):
    login(client, qa_reviewer)
    flag = reviewed.flags.first()

    response = client.post(f"/review/batches/{reviewed.batch.number}/flags/{flag.pk}/disposition/", {
        "outcome": "no_impact", "reason": "x", "username": qa_reviewer.username, "password": "wrong"})

    assert response.status_code == 422
    flag.refresh_from_db()
    assert flag.disposition == Disposition.NONE


def test_rerun_button_queues_the_review_through_the_outbox(client, qa_reviewer, reviewed):
    login(client, qa_reviewer)

    response = client.post(f"/review/batches/{reviewed.batch.number}/rerun/", {"reason": "New pipeline version"})

    assert response.status_code == 302
    assert OutboxMessage.objects.filter(task_name="nlp_review.review_batch",
                                        kwargs__batch_id=reviewed.batch.pk).exists()


def test_operator_and_auditor_cannot_use_the_review_queue_but_auditor_searches(client, operator, auditor, reviewed):
    login(client, operator)
    assert client.get("/review/").status_code == 403
    assert client.get("/review/search/?q=glove").status_code == 403
    client.logout()

    login(client, auditor)
    assert client.get(f"/review/batches/{reviewed.batch.number}/").status_code == 403
    search = client.get("/review/search/?q=glove")
    assert search.status_code == 200 and "<mark>Glove</mark>" in search.content.decode()


def test_monitoring_shows_precision_per_rule_version(client, qa_reviewer, reviewed):
    login(client, qa_reviewer)

    response = client.get("/review/monitoring/")

    assert response.status_code == 200 and "aseptic.glove_breach" in response.content.decode()
