"""Structured checks: each a pure function over the batch record (no database needed)."""

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace as NS

from nlp_review import checks
from nlp_review.checks import CheckInput

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def person(name="Olivia Operator", pk=1):
    return NS(full_name=name, pk=pk)


def a_step(sequence=1, code="1.1", critical=False, verification=False, performed_at=T0, performed_by=1,
           verified_by=None, hold=None):
    template = NS(code=code, title=f"Step {code}", critical=critical, requires_verification=verification)
    return NS(pk=sequence, sequence=sequence, template=template, performed_at=performed_at,
              performed_by_id=performed_by, performed_by=person(pk=performed_by), verified_by_id=verified_by,
              hold_time_exceeded_by=hold)


def parameter(critical=False):
    return NS(label="Viability", critical=critical, limits_text=lambda: "≥ 70 %")


def an_entry(pk=1, step=None, delay=timedelta(minutes=1), critical=False, supersedes=None, reason=""):
    return NS(pk=pk, step=step or a_step(), parameter=parameter(critical), performed_at=T0, entered_at=T0 + delay,
              entered_by=person(), supersedes=supersedes, correction_reason=reason, value_text="61")


def record(steps=(), custody_gaps=(), material_uses=(), equipment_uses=(), signatures=()):
    return NS(steps=list(steps), custody_gaps=list(custody_gaps), material_uses=list(material_uses),
              equipment_uses=list(equipment_uses), signatures=list(signatures))


def step_record(step, parameters=(), signatures=()):
    return NS(step=step, parameters=list(parameters), signatures=list(signatures))


def data(rec=None, entries=(), alarms=()):
    return CheckInput(record=rec or record(), entries=list(entries), alarms=list(alarms),
                      late_threshold=timedelta(minutes=30))


def test_value_outside_limits_is_critical_on_a_critical_parameter():
    current = NS(id=7, in_spec=False, value="61", unit="%")
    rec = record([step_record(a_step(), [NS(parameter=parameter(critical=True), current=current),
                                         NS(parameter=parameter(), current=NS(id=8, in_spec=True, value="90",
                                                                              unit="%"))])])

    flags = checks.value_outside_limits(data(rec))

    assert [(f.rule, f.category, f.severity, f.source_id) for f in flags] == [
        ("structured.value_outside_limits", "out_of_spec", "critical", "7")]
    assert "61" in flags[0].evidence


def test_late_entry_only_past_the_threshold():
    flags = checks.late_entry(data(entries=[an_entry(1, delay=timedelta(minutes=29)),
                                            an_entry(2, delay=timedelta(minutes=45))]))

    assert [(f.source_id, f.category, f.severity) for f in flags] == [("2", "data_integrity", "minor")]
    assert "45 min" in flags[0].evidence


def test_a_calibration_that_lapses_during_a_long_use_is_flagged():
    """A bioreactor assigned for nine days whose calibration fell due on day four."""
    lapsed = NS(pk=3, started_at=T0, ended_at=T0 + timedelta(days=9), calibration_due=date(2026, 3, 5), step=None,
                equipment=NS(code="BR-01"))
    in_date = NS(pk=4, started_at=T0, ended_at=T0 + timedelta(days=9), calibration_due=date(2026, 3, 11), step=None,
                 equipment=NS(code="BR-02"))
    left_open = NS(pk=5, started_at=T0, ended_at=None, calibration_due=date(2026, 3, 5), step=None,
                   equipment=NS(code="INC-01"))
    rec = record(equipment_uses=[lapsed, in_date, left_open])

    flags = checks.expired_material_or_equipment(CheckInput(record=rec, record_end=T0 + timedelta(days=9)))

    assert [(f.source_id, f.rule) for f in flags] == [("3", "structured.calibration_overdue"),
                                                      ("5", "structured.calibration_overdue")]
    assert flags[0].evidence == "BR-01 used 2026-03-02 to 2026-03-11, calibration due 2026-03-05"
    assert "lapsed while the equipment was in use" in flags[0].explanation


def test_a_correction_is_not_also_a_late_entry():
    """A correction keeps the corrected value's time of work; QA sees it once, as a correction."""
    corrected = an_entry(2, delay=timedelta(hours=2), supersedes=NS(value_text="5"), reason="transcription error")
    entries = [an_entry(1), corrected]

    assert checks.late_entry(data(entries=entries)) == []
    assert [f.source_id for f in checks.corrections(data(entries=entries))] == ["2"]


def test_critical_step_without_verification_is_flagged():
    steps = [a_step(1, critical=True), a_step(2, verification=True, verified_by=2), a_step(3)]

    flags = checks.verification_missing(data(record([step_record(s) for s in steps])))

    assert [(f.step.sequence, f.severity) for f in flags] == [(1, "critical")]


def test_same_person_performing_and_verifying_is_flagged():
    flags = checks.same_performer_and_verifier(
        data(record([step_record(a_step(1, performed_by=5, verified_by=5)), step_record(a_step(2, verified_by=9))])))

    assert [(f.rule, f.step.sequence) for f in flags] == [("structured.same_performer_verifier", 1)]


def test_steps_performed_out_of_sequence_and_hold_time_exceeded():
    steps = [a_step(1, performed_at=T0), a_step(2, performed_at=T0 - timedelta(hours=1)),
             a_step(3, performed_at=T0 + timedelta(hours=1), hold=timedelta(minutes=20))]

    flags = checks.out_of_order(data(record([step_record(s) for s in steps])))

    assert sorted((f.rule, f.step.sequence) for f in flags) == [
        ("structured.hold_time_exceeded", 3), ("structured.out_of_order", 2)]


def test_corrections_reported_with_who_and_why_major_without_reason():
    original = NS(value_text="5")
    flags = checks.corrections(data(entries=[an_entry(1), an_entry(2, supersedes=original, reason="typo"),
                                             an_entry(3, supersedes=original, reason="")]))

    assert [(f.source_id, f.severity) for f in flags] == [("2", "minor"), ("3", "major")]
    assert "from 5 to 61 by Olivia Operator" in flags[0].evidence and "typo" in flags[0].explanation


def test_expired_material_and_overdue_calibration_at_the_time_of_use():
    entry = an_entry(1)
    material = NS(pk=1, entry_id=1, expiry_date=date(2026, 3, 1), recorded_at=T0, step=entry.step,
                  lot=NS(lot_number="MED-OLD"))
    fine = NS(pk=2, entry_id=1, expiry_date=date(2026, 3, 2), recorded_at=T0, step=entry.step, lot=NS(lot_number="OK"))
    equipment = NS(pk=3, started_at=T0, calibration_due=date(2026, 2, 28), step=None, equipment=NS(code="BSC-2"))

    flags = checks.expired_material_or_equipment(
        data(record(material_uses=[material, fine], equipment_uses=[equipment]), entries=[entry]))

    assert [(f.rule, f.category, f.severity) for f in flags] == [
        ("structured.material_expired", "material", "critical"),
        ("structured.calibration_overdue", "equipment", "major")]


def test_unacknowledged_alarms_are_flagged():
    alarms = [NS(pk=1, critical=True, step=None, acknowledged_at=None, limit_text_display="pH 6.8-7.4",
                 __str__=lambda self: "alarm"),
              NS(pk=2, critical=False, step=None, acknowledged_at=T0, limit_text_display="")]

    flags = checks.alarm_not_acknowledged(data(alarms=alarms))

    assert [(f.source_id, f.severity, f.category) for f in flags] == [("1", "critical", "equipment")]


def test_signature_whose_record_changed_is_flagged_but_not_the_review_signature():
    broken = NS(valid=False, meaning="performed", printed_name="Olivia", signature_id=11)
    review = NS(valid=False, meaning="reviewed", printed_name="Quentin", signature_id=12)
    rec = record([step_record(a_step(), signatures=[broken, NS(valid=True, meaning="verified", printed_name="V",
                                                               signature_id=13)])], signatures=[review])

    flags = checks.signature_invalidated(data(rec))

    assert [(f.source_id, f.severity) for f in flags] == [("11", "critical")]


def test_custody_gaps_are_identity_critical():
    flags = checks.custody_gap(data(record(custody_gaps=["handed over by Courier B, but last held by Courier A"])))

    assert [(f.category, f.severity, f.source_kind) for f in flags] == [("identity", "critical", "custody")]
