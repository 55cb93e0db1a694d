"""Built-in sections of the PDF record (see ebr/pdf/sections.py for the extension point).

20 deviations and CAPA (qms.selectors_deviations), 30 review flags with their dispositions
(asked of the nlp_review app through `review_flags_for_pdf(batch_pk)` when it offers one;
each flag a mapping with code, severity, step, message, disposition, dispositioned_by,
dispositioned_at, comment), 40 chain of custody with gaps flagged, 45 equipment and material
lots, 50 process data charts with limits and alarms.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from itertools import pairwise
from typing import Any

from django.apps import apps
from reportlab.platypus import CondPageBreak, Flowable, Paragraph, Spacer

from ebr.models import Alarm, Batch
from ebr.pdf.charts import ProcessChart, alarm_text, process_record
from ebr.pdf.fonts import BOLD
from ebr.pdf.grid import OOS_FILL, RED, Cell, Column, GridTable
from ebr.pdf.sections import Section, section_provider, signature_recorded, utc_iso
from ebr.pdf.styles import RenderContext, esc
from ebr.selectors import BatchRecord, custody_gaps
from ebr.units import unit_display
from qms.signatures import format_local, signatures_for


def _when(moment: datetime | None) -> str:
    return format_local(moment) if moment else "—"


def _unit_suffix(code: str) -> str:
    """' (°C)' after a parameter's name; nothing for a pure number."""
    shown = unit_display(code)
    return f" ({esc(shown)})" if shown else ""


def _iso(moment: datetime | date | None) -> str | None:
    """The fingerprint's form: a moment in ISO 8601 UTC, a date (which has no zone) in ISO 8601."""
    if isinstance(moment, datetime):
        return utc_iso(moment)
    return moment.isoformat() if moment else None


# Printed forms (local times, display labels, sentences) left out of the fingerprint: the row's
# stored form beside them (UTC moments, codes, counts) is what it holds, so neither the zone nor
# a label's wording changes the fingerprint of an unchanged record.
_PRINTED = ("occurred", "closed", "signed", "effectiveness", "status", "classification", "source", "capa", "actions")


def _recorded(row: dict[str, Any]) -> dict[str, Any]:
    """A deviation or CAPA row as the fingerprint holds it."""
    return {key: value for key, value in row.items() if key not in _PRINTED}


def _heading(context: RenderContext, title: str) -> list[Flowable]:
    return [CondPageBreak(120), Paragraph(esc(title), context.styles.h1)]


# --- deviations and CAPA -------------------------------------------------------------------------

def _capas_of(deviations: list[Any]) -> list[Any]:
    from qms.models import Capa

    ids = {d.capa_id for d in deviations if d.capa_id}
    ids |= set(Capa.objects.filter(deviation_links__deviation__in=deviations).values_list("pk", flat=True))
    return list(Capa.objects.filter(pk__in=ids).prefetch_related("actions", "effectiveness_checks")
                .order_by("number"))


def _cancellation(deviation: Any) -> str:
    """Who cancelled a deviation, when and why: the record shows it beside the row, not only in the
    audit appendix (a cancelled deviation no longer blocks release)."""
    from qms.audit import Event
    from qms.models import AuditEvent, DeviationStatus

    if deviation.status != DeviationStatus.CANCELLED:
        return ""
    event = (AuditEvent.objects.filter(event_type=Event.DEVIATION_CANCELLED, target_type="qms.deviation",
                                       target_id=str(deviation.pk)).order_by("-occurred_at").first())
    by = f" by {event.actor_label} on {format_local(event.occurred_at)}" if event is not None else ""
    return f"Cancelled{by}: {deviation.cancelled_reason}"


def _deviation_row(deviation: Any) -> dict[str, Any]:
    signatures = signatures_for(deviation)
    return {
        "number": deviation.number, "title": deviation.title, "status": deviation.get_status_display(),
        "status_code": deviation.status, "classification_code": deviation.classification or "",
        "source_code": deviation.source, "capa_decision": deviation.capa_decision or "",
        "capa_number": deviation.capa.number if deviation.capa_id else "",
        "classification": deviation.get_classification_display() if deviation.classification else "not yet classified",
        "risk": f"{deviation.risk_level} (RPN {deviation.rpn})" if deviation.rpn else deviation.risk_level,
        "occurred_at": _iso(deviation.occurred_at), "occurred": _when(deviation.occurred_at),
        "source": deviation.get_source_display(), "root_cause": deviation.root_cause,
        "product_impact": deviation.product_impact,
        "capa": (deviation.get_capa_decision_display() if deviation.capa_decision else "")
                + (f" {deviation.capa.number}" if deviation.capa_id else ""),
        "closed_at": _iso(deviation.closed_at), "closed": _when(deviation.closed_at) if deviation.closed_at else "",
        "signatures": [signature_recorded(s) for s in signatures], "signed": [str(s) for s in signatures],
        "cancelled": _cancellation(deviation),
    }


def _capa_row(capa: Any) -> dict[str, Any]:
    actions = list(capa.actions.all())
    done = sum(1 for a in actions if a.status == "done" or a.completed_at)
    latest = capa.latest_effectiveness()
    origin = capa.transcribed_from
    title = f"{capa.title}\n{origin[:1].upper()}{origin[1:]}" if origin else capa.title
    return {
        "number": capa.number, "title": title, "status": capa.get_status_display(), "status_code": capa.status,
        "actions": f"{done} of {len(actions)} completed", "actions_done": [done, len(actions)],
        "effectiveness": f"{latest.get_result_display()} ({_when(latest.checked_at)})" if latest else "not yet checked",
        "effectiveness_recorded": [latest.result, _iso(latest.checked_at)] if latest else None,
        "closed_at": _iso(capa.closed_at), "closed": _when(capa.closed_at) if capa.closed_at else "",
    }


@section_provider("deviations", order=20)
def deviations_section(batch: Batch, record: BatchRecord) -> Section:
    """Deviations raised against the batch and the CAPA they led to (EU GMP Part I 1.4(xiv), ICH Q10)."""
    from qms.selectors_deviations import deviations_for

    deviations = list(deviations_for("ebr.batch", str(batch.pk)))
    rows = [_deviation_row(d) for d in deviations]
    capas = [_capa_row(c) for c in _capas_of(deviations)]

    def render(context: RenderContext) -> list[Flowable]:
        flow = _heading(context, "Deviations and CAPA")
        if not rows:
            return [*flow, Paragraph("No deviation was raised against this batch.", context.styles.body)]
        flow.append(GridTable(
            [Column("Deviation", 72), Column("Title, impact and root cause", 180), Column("Status", 52),
             Column("Classification / risk", 62), Column("Occurred", 60), Column("CAPA / closure", 78.6)],
            [[Cell(r["number"], font=BOLD),
              "\n".join(filter(None, [r["title"], f"Source: {r['source']}",
                                      r["product_impact"] and f"Impact: {r['product_impact']}",
                                      r["root_cause"] and f"Root cause: {r['root_cause']}",
                                      r["cancelled"],
                                      *[f"Signed: {s}" for s in r["signed"]]])),
              r["status"], f"{r['classification']}\n{r['risk']}".strip(), r["occurred"],
              "\n".join(filter(None, [r["capa"], r["closed"] and f"Closed {r['closed']}"])) or "—"]
             for r in rows],
            width=context.width, frame_height=context.frame_height))
        if capas:
            flow += [Spacer(1, 8), Paragraph("CAPA", context.styles.h3), GridTable(
                [Column("CAPA", 72), Column("Title", 160), Column("Status", 62), Column("Actions", 60),
                 Column("Effectiveness", 90), Column("Closed", 60.6)],
                [[Cell(c["number"], font=BOLD), c["title"], c["status"], c["actions"], c["effectiveness"],
                  c["closed"] or "—"] for c in capas],
                width=context.width, frame_height=context.frame_height)]
        return flow

    content = {"deviations": [_recorded(r) for r in rows], "capa": [_recorded(c) for c in capas]}
    return Section(key="deviations", title="Deviations and CAPA", content=content, render=render)


# --- review flags ----------------------------------------------------------------------------------

_NOT_OFFERED = object()


def _review_flags(batch: Batch) -> Any:
    """The nlp_review app's flags for the batch, None when it has no review yet, _NOT_OFFERED without the hook."""
    if not apps.is_installed("nlp_review"):
        return _NOT_OFFERED
    hook = getattr(apps.get_app_config("nlp_review"), "review_flags_for_pdf", None)
    if not callable(hook):
        return _NOT_OFFERED
    flags = hook(batch.pk)
    return None if flags is None else list(flags)


@section_provider("review_flags", order=30)
def review_flags_section(batch: Batch, record: BatchRecord) -> Section | None:
    """Review-by-exception flags and how QA dispositioned each (draft EU GMP Annex 22: advice a person decides).

    The nlp_review app offers them through `NlpReviewConfig.review_flags_for_pdf(batch_pk)`: None when the
    batch has not been reviewed, else the latest review's flags as mappings with rule, category, severity,
    step, evidence, explanation, disposition ("" while open), disposition_reason, deviation_number,
    dispositioned_by (printed name) and dispositioned_at (datetime), and dispositioned_by_username: the
    fingerprint holds the account rather than the printed name, which may change.
    """
    flags = _review_flags(batch)
    if flags is _NOT_OFFERED:
        return None
    content = None if flags is None else [_flag_recorded(flag) for flag in flags]

    def render(context: RenderContext) -> list[Flowable]:
        flow = _heading(context, "Review flags")
        if flags is None:
            return [*flow, Paragraph("The batch record has not been through the batch review.", context.styles.body)]
        if not flags:
            return [*flow, Paragraph("The batch review raised no flag.", context.styles.body)]
        open_flags = sum(1 for flag in flags if not flag.get("disposition"))
        flow.append(Paragraph(esc(f"{len(flags)} flags of the latest review, {open_flags} not dispositioned."),
                              context.styles.note))
        flow.append(GridTable(
            [Column("Rule", 80), Column("Severity", 44), Column("Step", 30), Column("Finding", 190),
             Column("Disposition", 160.6)],
            [[f"{f.get('rule', '')}\n{f.get('category', '')}".strip(), str(f.get("severity", "")),
              str(f.get("step", "")), _finding(f), _disposition(f)] for f in flags],
            fills=[None if f.get("disposition") else OOS_FILL for f in flags],
            width=context.width, frame_height=context.frame_height))
        return flow

    return Section(key="review_flags", title="Review flags", content=content, render=render)


def _flag_recorded(flag: Mapping[str, Any]) -> dict[str, Any]:
    """A flag as the fingerprint holds it: moments in UTC, who by username when the app gives it."""
    printed = {"dispositioned_by"} if "dispositioned_by_username" in flag else set()
    return {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in sorted(flag.items()) if k not in printed}


def _finding(flag: Mapping[str, Any]) -> str:
    return "\n".join(filter(None, [str(flag.get("evidence", "")), str(flag.get("explanation", ""))]))


def _disposition(flag: Mapping[str, Any]) -> Cell | str:
    if not flag.get("disposition"):
        return Cell("NOT DISPOSITIONED", font=BOLD, colour=RED)
    when = flag.get("dispositioned_at")
    by = f"by {flag.get('dispositioned_by', '')} {_when(when) if isinstance(when, datetime) else when or ''}"
    deviation = f"Deviation {flag['deviation_number']}" if flag.get("deviation_number") else ""
    return "\n".join(filter(None, [str(flag["disposition"]), str(flag.get("disposition_reason", "")), by.strip(),
                                   deviation]))


# --- chain of custody ------------------------------------------------------------------------------

@section_provider("custody", order=40)
def custody_section(batch: Batch, record: BatchRecord) -> Section:
    """Every hand-off of the patient's material, gaps flagged (EC GMP for ATMPs: donor-to-patient traceability)."""
    events = record.custody
    handoffs = list(pairwise(events))
    broken = [False, *[bool(custody_gaps([a, b])) for a, b in handoffs]]
    content = {
        "events": [[e.pk, _iso(e.occurred_at), e.from_party, e.to_party, e.location,
                    str(e.temperature_c) if e.temperature_c is not None else None, e.condition,
                    e.recorded_by.username] for e in events],
        # (when, handed over by, last held by): record.custody_gaps says the same in the facility's zone.
        "gaps": [[_iso(current.occurred_at), current.from_party, previous.to_party]
                 for (previous, current), gap in zip(handoffs, broken[1:], strict=True) if gap],
    }

    def render(context: RenderContext) -> list[Flowable]:
        flow = _heading(context, "Chain of custody")
        for gap in record.custody_gaps:
            flow.append(Paragraph(f"Gap in the chain of custody: {esc(gap)}", context.styles.alert))
        if not events:
            return [*flow, Paragraph("No hand-off was recorded for this batch.", context.styles.alert)]
        flow.append(GridTable(
            [Column("When", 98), Column("From → to", 136), Column("Location", 90), Column("Temp.", 42),
             Column("Condition", 50), Column("Recorded by", 88.6)],
            [[_when(e.occurred_at),
              Cell(f"{e.from_party} → {e.to_party}" + ("\nGAP: not handed over by the last holder" if gap else ""),
                   colour=RED) if gap else f"{e.from_party} → {e.to_party}",
              e.location, f"{e.temperature_c} °C" if e.temperature_c is not None else "—", e.condition,
              f"{e.recorded_by.full_name}\n{_when(e.recorded_at)}"]
             for e, gap in zip(events, broken, strict=True)],
            fills=[OOS_FILL if gap else None for gap in broken],
            width=context.width, frame_height=context.frame_height))
        return flow

    return Section(key="custody", title="Chain of custody", content=content, render=render)


# --- equipment and materials -----------------------------------------------------------------------

@section_provider("equipment_materials", order=45)
def equipment_materials_section(batch: Batch, record: BatchRecord) -> Section:
    """Equipment (calibration status as used) and material lots (expiry as used), EU GMP Part I 3.41, 5.x."""
    equipment = [[u.equipment.code, u.equipment.equipment_type, _iso(u.started_at), _iso(u.ended_at),
                  _iso(u.calibration_due)] for u in record.equipment_uses]
    materials = [[u.lot.material.code, u.lot.material.name, u.lot.lot_number, _iso(u.expiry_date),
                  u.step.template.code] for u in record.material_uses]

    def render(context: RenderContext) -> list[Flowable]:
        flow = _heading(context, "Equipment and materials")
        flow.append(Paragraph("Equipment", context.styles.h3))
        if record.equipment_uses:
            flow.append(GridTable(
                [Column("Equipment", 1.0), Column("Type", 1.6), Column("From", 1.4), Column("To", 1.4),
                 Column("Calibration due (as used)", 1.4)],
                [[u.equipment.code, u.equipment.get_equipment_type_display(), _when(u.started_at),
                  _when(u.ended_at) if u.ended_at else "in use",
                  f"{u.calibration_due:%Y-%m-%d}" if u.calibration_due else "—"] for u in record.equipment_uses],
                width=context.width, frame_height=context.frame_height))
        else:
            flow.append(Paragraph("No equipment was assigned.", context.styles.muted))
        flow.append(Paragraph("Material lots", context.styles.h3))
        if record.material_uses:
            flow.append(GridTable(
                [Column("Material", 2.4), Column("Lot", 1.3), Column("Expiry (as used)", 1.1), Column("Step", 0.6),
                 Column("Recorded", 1.8)],
                [[f"{u.lot.material.code} {u.lot.material.name}", u.lot.lot_number, f"{u.expiry_date:%Y-%m-%d}",
                  u.step.template.code, _when(u.recorded_at)] for u in record.material_uses],
                width=context.width, frame_height=context.frame_height))
        else:
            flow.append(Paragraph("No material lot was recorded.", context.styles.muted))
        return flow

    return Section(key="equipment_materials", title="Equipment and materials",
                   content={"equipment": equipment, "materials": materials}, render=render)


# --- process data ----------------------------------------------------------------------------------

def _alarm_recorded(alarm: Alarm) -> list[Any]:
    """What `alarm_text` prints, as stored: times in UTC, the kind's code, the acknowledger's username."""
    acknowledged_by = alarm.acknowledged_by.username if alarm.acknowledged_by else None
    return [alarm.kind, alarm.critical, _iso(alarm.opened_at), _iso(alarm.closed_at), alarm.worst_value,
            alarm.limit_text, acknowledged_by, _iso(alarm.acknowledged_at), alarm.deviation_number]


@section_provider("process_data", order=50)
def process_data_section(batch: Batch, record: BatchRecord) -> Section | None:
    """Instrument readings per parameter with limits drawn and alarms listed (Annex 15 §9, Annex 11 §5)."""
    data = process_record(batch)
    if not data.series:
        return None
    content = {"readings": data.readings, "sha256": data.digest,
               "parameters": [[s.parameter.code, s.parameter.unit, s.limits.text_stored if s.limits else None,
                               [_alarm_recorded(a) for a in s.alarms]] for s in data.series]}

    def render(context: RenderContext) -> list[Flowable]:
        styles = context.styles
        flow = _heading(context, "Process data")
        flow.append(Paragraph(
            f"{data.readings:,} instrument readings. Each chart shows the range (band) and mean (line) of the "
            "readings per time bucket, as on the batch page; dashed lines are the master record's limits for the "
            "parameter (amber: alert, red: action). SHA-256 of every reading, in instrument and sequence order: "
            f"{data.digest}.", styles.note))
        for series in data.series:
            parameter = series.parameter
            count = sum(bucket.n for bucket in series.buckets)
            first, last = series.buckets[0].start, series.buckets[-1].start
            flow += [CondPageBreak(200), Paragraph(
                f"{esc(parameter.code)} — {esc(parameter.meaning)} {_unit_suffix(parameter.unit)}: {count:,} readings, "
                f"{_when(first)} to {_when(last)}", styles.h3), ProcessChart(series, context.width)]
            limits = (f"Limits: {esc(series.limits.text)}{' (critical parameter)' if series.limits.critical else ''}"
                      if series.limits else "The master record sets no limit for this parameter.")
            flow.append(Paragraph(limits, styles.muted))
            flow += [Paragraph(f"Alarm: {esc(alarm_text(alarm))}", styles.small) for alarm in series.alarms]
        return flow

    return Section(key="process_data", title="Process data", content=content, render=render)
