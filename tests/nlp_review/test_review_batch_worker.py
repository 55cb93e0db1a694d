"""The real flow: the last step done queues the review through the outbox; a real worker runs it once."""

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from ebr.models import Equipment, Material, MaterialLot
from nlp_review.models import BatchReview, ReviewStatus
from qms.audit import create_with_reason
from qms.roles import Role
from tests.conftest import SEED, person
from tests.ebr.conftest import build_version, create_batch, train
from tests.ebr.test_release import CLEAN, run_batch

pytestmark = pytest.mark.worker


def _committed_batch(tag: str):  # type: ignore[no-untyped-def]
    """Uniquely named resources: committed rows stay in the (append-only) test database."""
    today = timezone.localdate()
    media = create_with_reason(Material, actor=SEED, reason="test", code=f"MED-{tag}", name="Medium", unit="mL")
    lot = create_with_reason(MaterialLot, actor=SEED, reason="test", lot_number=f"MED-{tag}", material=media,
                             expiry_date=today + timedelta(days=100), status="released")
    bsc = create_with_reason(Equipment, actor=SEED, reason="test", code=f"BSC-{tag}", name="BSC", equipment_type="bsc",
                             calibration_due=today + timedelta(days=100), status="released")
    people = {role: person(role, name) for role, name in ((Role.SUPERVISOR, "Sofia Supervisor"),
                                                          (Role.QA_REVIEWER, "Quentin Reviewer"),
                                                          (Role.QA_APPROVER, "Claire Approver"))}
    operator, verifier = person(Role.OPERATOR, "Olivia Operator"), person(Role.OPERATOR, "Victor Verifier")
    version = build_version(people[Role.SUPERVISOR], people[Role.QA_REVIEWER], people[Role.QA_APPROVER],
                            {"media": media}, code=f"MBR-{tag}")
    for trainee in (operator, verifier, people[Role.SUPERVISOR]):
        train(trainee, version, people[Role.QA_APPROVER], people[Role.QA_REVIEWER])
    from ebr.services import batches as batch_services

    batch = batch_services.batch_start(actor=people[Role.SUPERVISOR],
                                       batch=create_batch(people[Role.SUPERVISOR], version))
    values = {**CLEAN, "bsc": bsc.code, "medium": lot.lot_number}
    return run_batch(batch, operator, verifier, values=values,
                     comments={"temp": "Glove torn during transfer in BSC, changed gloves."})


def test_completed_batch_is_reviewed_once_by_a_real_worker(worker):
    batch = _committed_batch(uuid.uuid4().hex[:6].upper())

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        review = BatchReview.objects.filter(batch=batch, status=ReviewStatus.DONE).first()
        if review:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the worker did not review the batch")
    time.sleep(2)  # a duplicate delivery would show up as a second version
    assert BatchReview.objects.filter(batch=batch).count() == 1
    assert review.request_id.startswith("outbox-")
    assert review.flags.filter(rule="aseptic.glove_breach", severity="critical").exists()
