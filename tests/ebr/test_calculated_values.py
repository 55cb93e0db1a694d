"""Calculated values: computed at signing from the current entries, recomputed when an input is
corrected, and out of specification handled like a typed value (kept, deviation opened)."""

from decimal import Decimal as D

import pytest

from ebr.models import Entry
from ebr.services import batches as batch_services
from ebr.services import master_records as master_services
from ebr.services.execution import entry_correct, entry_record, step_perform
from qms.audit import Event
from qms.models import AuditEvent, Deviation
from tests.conftest import PASSWORD
from tests.ebr.conftest import create_batch, train

pytestmark = pytest.mark.django_db


@pytest.fixture
def dose_step(supervisor, qa_reviewer, qa_approver, operator, verifier):
    product = master_services.product_create(actor=supervisor, code="P-CALC", name="Test CAR-T")
    version = master_services.master_record_create(actor=supervisor, product=product, code="MBR-CALC",
                                                   title="Dose calculation")
    stage = master_services.stage_add(actor=supervisor, version=version, name="Formulation")
    master_services.step_add(
        actor=supervisor, stage=stage, code="1.1", title="Formulate the dose", instructions="Dilute.",
        requires_verification=True,
        parameters=[{"code": "cells", "label": "Cells", "kind": "number", "unit": "10*6"},
                    {"code": "volume", "label": "Volume", "kind": "number", "unit": "mL", "lower_limit": D("1")},
                    {"code": "conc", "label": "Concentration", "kind": "calculated", "unit": "10*6/mL",
                     "formula": "cells / volume", "lower_limit": D("1"), "upper_limit": D("10")}])
    for action, actor in ((master_services.version_submit, supervisor), (master_services.version_review, qa_reviewer),
                          (master_services.version_approve, qa_approver)):
        action(actor=actor, version=version, password=PASSWORD, username=actor.username)
    version = master_services.version_make_effective(actor=qa_approver, version=version)
    for person in (operator, verifier):
        train(person, version, qa_approver, supervisor)
    batch = batch_services.batch_start(actor=supervisor, batch=create_batch(supervisor, version))
    return batch.steps.get()


def _record(operator, step, code, value):
    return entry_record(actor=operator, step=step, parameter=step.template.parameters.get(code=code), value=value,
                        idempotency_key=f"{code}-{value}-{step.pk}")


def _conc(step):
    return Entry.objects.get(step=step, parameter__code="conc", superseded_by__isnull=True)


def test_an_out_of_specification_result_is_kept_and_opens_a_deviation(dose_step, operator):
    _record(operator, dose_step, "cells", "600")
    _record(operator, dose_step, "volume", "50")

    step_perform(actor=operator, step=dose_step, password=PASSWORD, username=operator.username)

    conc = _conc(dose_step)
    assert conc.value_text == "12" and conc.in_spec is False and conc.deviation_number
    deviation = Deviation.objects.get(number=conc.deviation_number)
    assert deviation.source == "oos_entry" and "Concentration" in deviation.title


def test_correcting_an_input_after_signing_recomputes_the_result_at_the_next_signing(dose_step, operator):
    _record(operator, dose_step, "cells", "300")
    volume = _record(operator, dose_step, "volume", "60").entry
    step_perform(actor=operator, step=dose_step, password=PASSWORD, username=operator.username)
    first = _conc(dose_step)

    entry_correct(actor=operator, entry=volume, value="50", reason="Volume misread", comment="",
                  idempotency_key="volume-fix")
    dose_step.refresh_from_db()
    step_perform(actor=operator, step=dose_step, password=PASSWORD, username=operator.username)

    second = _conc(dose_step)
    assert (first.value_text, second.value_text) == ("5", "6")
    assert second.supersedes_id == first.pk and second.correction_reason
    assert AuditEvent.objects.filter(event_type=Event.ENTRY_CORRECTED, target_id=str(second.pk)).exists()
