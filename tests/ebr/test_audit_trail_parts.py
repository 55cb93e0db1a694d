"""A record's audit history holds the events of its parts: a deviation's impact assessment per
batch, a batch's entries, deviations (with their impact assessments) and CAPAs (21 CFR 11.10(e);
EU GMP Annex 11 §9: the audit trail of a record is reviewed as a whole)."""

from __future__ import annotations

import pytest

from ebr.selectors import batch_audit_events
from qms.audit import Event
from qms.models import Deviation
from qms.selectors import AuditFilters, audit_events_filtered, record_history
from qms.subjects import Subject
from tests.ebr.test_execution import current_step, record
from tests.qms import quality

pytestmark = pytest.mark.django_db


@pytest.fixture
def deviation_about_the_batch(batch, operator, qa_reviewer, supervisor):  # type: ignore[no-untyped-def]
    """An out-of-specification entry opens a deviation about the batch; QA triages it, and the
    investigator assesses the impact on the batch."""
    entry = record(operator, current_step(batch), "temp", "11", comment="Logger showed 11 °C on arrival").entry
    deviation = Deviation.objects.get(number=entry.deviation_number)
    quality.triage(deviation, qa_reviewer, owner=supervisor)
    quality.investigate(deviation, supervisor)
    return deviation


def test_a_deviations_history_holds_the_impact_assessment_of_each_batch(deviation_about_the_batch):
    rows = record_history("qms.deviation", str(deviation_about_the_batch.pk))

    impact = [row for row in rows if row.target_type == "qms.deviationsubject"]
    assert impact and any(change["field"] == "impact" for row in impact for change in row.changes)
    assert {"DEVIATION_OPENED", "DEVIATION_TRIAGED", "DEVIATION_INVESTIGATED"} <= {row.event_type for row in rows}


def test_the_batch_audit_trail_holds_its_deviations_and_their_impact_assessments(batch, deviation_about_the_batch,
                                                                                 qa_reviewer):
    capa = quality.capa(qa_reviewer, deviations=[deviation_about_the_batch], source="deviation")

    events = list(batch_audit_events(batch))

    kinds = {(event.target_type, event.event_type) for event in events}
    assert ("ebr.entry", Event.ENTRY_RECORDED) in kinds
    assert ("qms.deviation", Event.DEVIATION_OPENED) in kinds and ("qms.deviation", Event.DEVIATION_TRIAGED) in kinds
    assert any(target == "qms.deviationsubject" for target, _ in kinds)
    assert ("qms.capa", Event.CAPA_OPENED) in kinds and str(capa.pk) in {e.target_id for e in events}


def test_the_audit_pages_record_filter_finds_the_parts_by_the_batch_number(batch, deviation_about_the_batch):
    by_number = set(audit_events_filtered(AuditFilters(record=batch.number)).values_list("event_type", flat=True))

    assert {Event.ENTRY_RECORDED, Event.DEVIATION_OPENED} <= by_number


def test_another_batchs_deviation_is_not_in_this_batchs_trail(batch, deviation_about_the_batch, operator):
    other = quality.deviation(operator, subjects=[Subject("ebr.batch", "999999", "B-1999-0001")])

    assert str(other.pk) not in {e.target_id for e in batch_audit_events(batch) if e.target_type == "qms.deviation"}


def test_a_batchs_history_page_is_headed_with_the_batch_number_not_its_newest_parts_label(
        client, batch, deviation_about_the_batch, auditor):
    """The page holds the batch's parts too (entries, deviations); an inspector printing it must see
    which record it is the history of, not the label of whatever happened last."""
    client.force_login(auditor)

    response = client.get(f"/audit/record/ebr.batch/{batch.pk}/")

    assert response.status_code == 200
    heading = response.content.decode().split("<h1>", 1)[1].split("</h1>", 1)[0]
    assert heading == f"History of {batch.number}"
    assert deviation_about_the_batch.number.encode() in response.content  # the parts are still listed


def test_the_batch_page_links_its_history_only_for_roles_that_may_open_it(client, batch, supervisor, auditor):
    history = f"/audit/record/ebr.batch/{batch.pk}/"
    client.force_login(supervisor)
    page = client.get(f"/batches/{batch.number}/").content.decode()
    assert history not in page and "visible to QA and auditors" in page
    assert client.get(history).status_code == 403

    client.force_login(auditor)
    assert history in client.get(f"/batches/{batch.number}/").content.decode()
