"""Authoring a master record on the desktop, through to an effective version, with signatures."""

import pytest

from ebr.models import MasterRecordVersion, VersionStatus
from qms.staleness import record_version
from tests.conftest import PASSWORD, login

pytestmark = pytest.mark.django_db


def action(client, version, name, data):
    # `seen`: the version of the page the browser read (qms/staleness.py), as its forms post it
    return client.post(f"/master-records/{version.master_record.code}/v{version.version}/{name}/",
                       {"seen": record_version(version), **data})


def signed(client, version, name, person):
    return action(client, version, name, {"username": person.username, "password": PASSWORD}).status_code


def test_author_review_approve_and_make_effective_through_the_pages(client, supervisor, qa_reviewer, qa_approver):
    login(client, supervisor)
    created = client.post("/master-records/", {"new_product_code": "TIL1", "new_product_name": "TIL therapy",
                                               "code": "MBR-TIL-001", "title": "TIL expansion"})
    assert created.status_code == 302
    version = MasterRecordVersion.objects.get(master_record__code="MBR-TIL-001")
    assert action(client, version, "stage", {"name": "Tumour processing"}).status_code == 302
    stage = version.stages.get()
    assert action(client, version, "step", {"stage": stage.pk, "code": "1.1", "title": "Mince the tumour",
                                            "instructions": "In the BSC.", "critical": "on"}).status_code == 302
    step = stage.steps.get()
    bad = action(client, version, "parameter", {"step": step.pk, "code": "weight", "label": "Weight",
                                                "kind": "number", "unit": "g", "lower_limit": "5",
                                                "upper_limit": "1"})
    assert bad.status_code == 422 and "lower limit is above the upper limit" in bad.content.decode()
    assert action(client, version, "parameter", {"step": step.pk, "code": "weight", "label": "Weight",
                                                 "kind": "number", "unit": "g", "lower_limit": "1"}).status_code == 302
    assert signed(client, version, "submit", supervisor) == 302

    client.post("/logout/")
    login(client, qa_reviewer)
    assert signed(client, version, "review", qa_reviewer) == 302
    client.post("/logout/")
    login(client, qa_approver)
    wrong = action(client, version, "approve", {"username": qa_approver.username, "password": "nope-nope-nope"})
    assert wrong.status_code == 422 and "Wrong password" in wrong.content.decode()
    assert signed(client, version, "approve", qa_approver) == 302
    without_reason = action(client, version, "effective", {})
    assert without_reason.status_code == 422
    version.refresh_from_db()
    assert version.status == VersionStatus.APPROVED
    assert action(client, version, "effective", {"reason": "Operators trained"}).status_code == 302

    version.refresh_from_db()
    assert version.status == VersionStatus.EFFECTIVE
    assert version.history.filter(status=VersionStatus.EFFECTIVE).get().history_change_reason == "Operators trained"
    page = client.get("/master-records/MBR-TIL-001/v1/").content.decode()
    for name, meaning in (("Sofia Supervisor", "authored"), ("Quentin Reviewer", "reviewed"),
                          ("Claire Approver", "approved")):
        assert f"<strong>{name}</strong> · {meaning}" in page
    assert "record changed after signing" not in page


def test_duplicate_codes_and_forged_ids_are_refused_without_a_half_save(client, supervisor):
    from ebr.models import MasterRecord, Product

    login(client, supervisor)
    first = {"new_product_code": "TIL2", "new_product_name": "TIL therapy", "code": "MBR-TIL-002", "title": "TIL"}
    assert client.post("/master-records/", first).status_code == 302
    products = Product.objects.count()

    same_record = client.post("/master-records/", {**first, "new_product_code": "TIL3"})
    same_product = client.post("/master-records/", {**first, "code": "MBR-TIL-003"})

    assert same_record.status_code == 422 and "exists already" in same_record.content.decode()
    assert same_product.status_code == 422 and "exists already" in same_product.content.decode()
    assert Product.objects.count() == products, "the new product of a refused record is not kept"
    assert not MasterRecord.objects.filter(code="MBR-TIL-003").exists()
    version = MasterRecordVersion.objects.get(master_record__code="MBR-TIL-002")
    assert action(client, version, "step", {"stage": "not-a-number", "code": "1.1", "title": "x",
                                            "instructions": "y"}).status_code == 404


def test_operator_cannot_author(client, operator):
    login(client, operator)

    response = client.post("/master-records/", {"new_product_code": "X", "new_product_name": "X", "code": "MBR-X",
                                                "title": "X"})

    assert response.status_code == 403
