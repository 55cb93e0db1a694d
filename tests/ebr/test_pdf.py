"""The signed PDF batch record: complete, readable, tamper-evident, the same fingerprint every time.

One batch is executed through the services the way people would (a correction, an
out-of-specification value that opens a deviation, a late entry, a custody gap, instrument
readings with limits, QA review and a signed rejection), exported with the command, and the
PDF's text is checked for every element the record must carry (21 CFR 11.10(b), 11.50, EU GMP
Annex 11 §8). Pages are rendered to PNG under tests/e2e/artifacts/ for reviewers.
"""

from __future__ import annotations

import getpass
import hashlib
import io
import json
import re
import subprocess
import uuid
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from ebr.models import Alarm, Batch, Equipment, StepStatus
from ebr.services import batches as batch_services
from ebr.services import master_records as master_services
from ebr.services.alarms import alarm_acknowledge
from ebr.services.execution import entry_correct, entry_record, step_perform, step_verify
from ebr.services.release import batch_audit_trail_review, batch_reject, batch_review_start
from qms.audit import Event, SystemActor
from qms.models import AuditEvent
from qms.roles import Role
from tests.conftest import PASSWORD
from tests.ebr.conftest import create_batch, train

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "e2e" / "artifacts"

VALUES = {"label_ok": "yes", "temp": "5", "bsc": "BSC-T1", "medium": "MED-1", "viability": "91", "cells": "300",
          "volume": "60", "bioreactor": "BR-T1", "seeding": "1.2"}


# --- PKI: one demo CA per test session, settings pointed at it ------------------------------------

@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ebr.pdf.signing import demo_pki_ensure

    directory = tmp_path_factory.mktemp("pki")
    demo_pki_ensure(directory)
    return directory


@pytest.fixture
def pki(pki_dir: Path, settings, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    settings.PDF_SIGNING_KEY = pki_dir / "signing.key"
    settings.PDF_SIGNING_CERT = pki_dir / "signing.crt"
    settings.PDF_SIGNING_CHAIN = [pki_dir / "ca.crt"]
    settings.PDF_TRUST_ROOTS = [pki_dir / "ca.crt"]
    settings.PDF_SIGNING_KEY_PASSPHRASE = ""
    settings.PDF_TSA_URL = ""
    settings.PDF_EXPORT_DIR = tmp_path / "exports"
    return pki_dir


# --- a batch executed through the services --------------------------------------------------------

def build_version_with_limits(supervisor, qa_reviewer, qa_approver, resources, code: str):  # type: ignore[no-untyped-def]
    """Like the suite's test process, plus a bioreactor step whose master record sets instrument limits."""
    product = master_services.product_create(actor=supervisor, code=f"P-{code}", name="Autologous anti-CD19 CAR-T")
    version = master_services.master_record_create(actor=supervisor, product=product, code=code,
                                                   title="CAR-T manufacture (test)")
    receipt = master_services.stage_add(actor=supervisor, version=version, name="Receipt")
    master_services.step_add(
        actor=supervisor, stage=receipt, code="1.1", title="Receive the bag",
        instructions="Check the label against the chain-of-identity code. Record the bag temperature on arrival.",
        critical=True, requires_verification=True,
        parameters=[{"code": "label_ok", "label": "Label matches COI", "kind": "yes_no", "expected": "yes"},
                    {"code": "temp", "label": "Temperature", "kind": "number", "unit": "Cel",
                     "lower_limit": D("2"), "upper_limit": D("8"), "alert_low": D("3"), "alert_high": D("7")}])
    processing = master_services.stage_add(actor=supervisor, version=version, name="Processing")
    master_services.step_add(
        actor=supervisor, stage=processing, code="2.1", title="Seed the culture", instructions="In the BSC.",
        equipment_type="bsc",
        parameters=[{"code": "bsc", "label": "BSC", "kind": "equipment_id"},
                    {"code": "medium", "label": "Medium lot", "kind": "material_lot", "material": resources["media"]},
                    {"code": "viability", "label": "Viability", "kind": "number", "unit": "%",
                     "lower_limit": D("70"), "upper_limit": D("100")}])
    master_services.step_add(
        actor=supervisor, stage=processing, code="2.2", title="Expand in the bioreactor",
        instructions="Transfer the culture to the bioreactor; keep pH and temperature within limits.",
        equipment_type="bioreactor",
        parameters=[{"code": "bioreactor", "label": "Bioreactor", "kind": "equipment_id"},
                    {"code": "seeding", "label": "Seeding density", "kind": "number", "unit": "10*6/mL",
                     "lower_limit": D("0.5"), "upper_limit": D("2")}],
        instrument_limits=[{"parameter": "ph", "alert_low": D("7.0"), "alert_high": D("7.4"),
                            "action_low": D("6.8"), "action_high": D("7.6"), "critical": True},
                           {"parameter": "temp", "alert_low": D("36.5"), "alert_high": D("37.5"),
                            "action_low": D("36"), "action_high": D("38")}])
    master_services.step_add(
        actor=supervisor, stage=processing, code="2.3", title="Formulate", instructions="Dilute.",
        parameters=[{"code": "cells", "label": "Cells", "kind": "number", "unit": "10*6"},
                    {"code": "volume", "label": "Volume", "kind": "number", "unit": "mL", "lower_limit": D("1")}])
    for action in (master_services.version_submit, master_services.version_review, master_services.version_approve):
        person = {master_services.version_submit: supervisor, master_services.version_review: qa_reviewer,
                  master_services.version_approve: qa_approver}[action]
        action(actor=person, version=version, password=PASSWORD, username=person.username)
    return master_services.version_make_effective(actor=qa_approver, version=version)


def _open_step(batch: Batch):  # type: ignore[no-untyped-def]
    return batch.steps.exclude(status=StepStatus.DONE).order_by("sequence").first()


def _record_step(step, operator, values, comments=None, performed_at=None):  # type: ignore[no-untyped-def]
    entries = {}
    for parameter in step.template.parameters.exclude(kind="calculated"):
        entries[parameter.code] = entry_record(
            actor=operator, step=step, parameter=parameter, value=values[parameter.code],
            comment=(comments or {}).get(parameter.code, ""), idempotency_key=uuid.uuid4().hex,
            performed_at=performed_at).entry
    return entries


def _sign_step(step, operator, verifier) -> None:  # type: ignore[no-untyped-def]
    step_perform(actor=operator, step=step, password=PASSWORD, username=operator.username)
    step.refresh_from_db()
    if step.status == StepStatus.PERFORMED:
        step_verify(actor=verifier, step=step, password=PASSWORD, username=verifier.username)


def _instrument_readings(batch: Batch, supervisor, count: int = 600) -> None:  # type: ignore[no-untyped-def]
    """A bioreactor posts pH and temperature every minute for `count` minutes, with one pH excursion."""
    from ebr.services.alarms import alarms_evaluate
    from ebr.services.instruments import instrument_register
    from ebr.services.readings import readings_ingest

    equipment = Equipment.objects.get(code="BR-T1")
    start = timezone.now() - timedelta(minutes=count + 5)
    batch_services.equipment_assign(actor=supervisor, batch=batch, equipment=equipment,
                                    started_at=start - timedelta(minutes=1), reason="Bioreactor for expansion")
    instrument = instrument_register(actor=SystemActor("system:tests"), name=f"br-{uuid.uuid4().hex[:6]}",
                                     equipment=equipment).instrument
    readings = []
    for minute in range(count):
        moment = (start + timedelta(minutes=minute)).isoformat()
        ph = 7.2 + 0.05 * ((minute % 60) / 60 - 0.5) + (0.5 if 300 <= minute < 320 else 0.0)
        readings += [{"seq": 2 * minute + 1, "ts": moment, "parameter": "ph", "value": round(ph, 3), "unit": "[pH]"},
                     {"seq": 2 * minute + 2, "ts": moment, "parameter": "temp", "value": 37.0 + (minute % 7) / 20,
                      "unit": "Cel"}]
    result = readings_ingest(instrument=instrument,
                             body=json.dumps({"batch": batch.number, "readings": readings}).encode())
    alarms_evaluate(post_id=result.post.pk)  # what the queued task does after commit


@pytest.fixture
def scenario(make_user, supervisor, qa_reviewer, qa_approver, resources, verifier, settings):  # type: ignore[no-untyped-def]
    """A rejected batch with a correction, an OOS value, a late entry, a custody gap and bioreactor data."""
    operator = make_user(Role.OPERATOR, full_name="Zoë Ångström-Müller")
    version = build_version_with_limits(supervisor, qa_reviewer, qa_approver, resources, code="MBR-PDF-001")
    for person in (operator, verifier, supervisor):
        train(person, version, qa_approver, qa_reviewer)
    batch = batch_services.batch_start(actor=supervisor, batch=create_batch(supervisor, version))
    now = timezone.now()
    batch_services.custody_event_record(actor=supervisor, batch=batch, from_party="Apheresis unit, City Hospital",
                                        to_party="Courier Medilog", location="City Hospital dock",
                                        occurred_at=now - timedelta(hours=4), temperature_c=D("4.5"))
    batch_services.custody_event_record(actor=supervisor, batch=batch, from_party="Courier Nordic",
                                        to_party="GMP goods-in", location="Facility goods-in",
                                        occurred_at=now - timedelta(hours=3), temperature_c=D("5.1"))
    # 1.1: the temperature is entered late (after the threshold, here shortened), then corrected with a reason.
    step = _open_step(batch)
    parameters = {p.code: p for p in step.template.parameters.all()}
    entry_record(actor=operator, step=step, parameter=parameters["label_ok"], value="yes",
                 idempotency_key=uuid.uuid4().hex)
    threshold = settings.LATE_ENTRY_THRESHOLD
    settings.LATE_ENTRY_THRESHOLD = timedelta(microseconds=1)
    late = entry_record(actor=operator, step=step, parameter=parameters["temp"], value="5",
                        idempotency_key=uuid.uuid4().hex, performed_at=step.opened_at).entry
    settings.LATE_ENTRY_THRESHOLD = threshold
    entry_correct(actor=operator, entry=late, value="5.4", idempotency_key=uuid.uuid4().hex,
                  reason="Transcription error: the probe read 5.4 °C (0.2 µm filter check ≥ OK, 2 × read)")
    _sign_step(step, operator, verifier)
    # 2.1: viability out of specification: a deviation opens automatically.
    step = _open_step(batch)
    _record_step(step, operator, {**VALUES, "viability": "61"},
                 comments={"viability": "Viability low after thaw of the medium"})
    _sign_step(step, operator, verifier)
    _instrument_readings(batch, supervisor)
    for alarm in Alarm.objects.filter(batch=batch):  # QA reviews the audit trail once alarms are acknowledged
        alarm_acknowledge(actor=supervisor, alarm=alarm, comment="pH probe drift; culture checked, no impact",
                          password=PASSWORD, username=supervisor.username)
    while (step := _open_step(batch)) is not None:
        _record_step(step, operator, VALUES)
        _sign_step(step, operator, verifier)
    batch.refresh_from_db()
    batch_review_start(actor=qa_reviewer, batch=batch)
    batch_audit_trail_review(actor=qa_reviewer, batch=batch, reason="Audit trail reviewed: OOS and correction noted",
                             password=PASSWORD, username=qa_reviewer.username)
    batch_reject(actor=qa_approver, batch=batch, reason="Viability out of specification (61 %)",
                 password=PASSWORD, username=qa_approver.username)
    batch.refresh_from_db()
    return {"batch": batch, "operator": operator}


def export(batch: Batch, path: Path, *extra: str) -> str:
    out = io.StringIO()
    call_command("export_batch_pdf", batch.number, "--output", str(path), *extra, stdout=out)
    return out.getvalue()


def pdf_text(path: Path, mode: str = "-raw") -> str:
    """The text in content-stream order (`-raw`: each table cell stays together) or as laid out (`-layout`)."""
    return subprocess.run(["pdftotext", mode, str(path), "-"], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def exported(scenario, pki, tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / f"{scenario['batch'].number}.pdf"
    output = export(scenario["batch"], path)
    return {**scenario, "path": path, "output": output, "text": pdf_text(path)}


def pages_text(path: Path) -> list[str]:
    return pdf_text(path, "-layout").split("\f")[:-1]


def fingerprint_in(output: str) -> str:
    return output.split("record fingerprint sha256:")[1].split(";")[0].strip()


def verify(path: Path) -> tuple[int, str]:
    """Exit code and what the command said: the report on stdout when valid, the reason on stderr when not."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_pdf", str(path), stdout=out, stderr=err)
    except SystemExit as stop:
        assert out.getvalue() == "" and len(err.getvalue().strip().splitlines()) == 1, (out.getvalue(), err.getvalue())
        return int(stop.code or 0), err.getvalue()
    assert err.getvalue() == ""
    return 0, out.getvalue()


def pyhanko_status(path: Path):  # type: ignore[no-untyped-def]
    """pyHanko's own verdict, independent of our command."""
    from django.conf import settings
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    with path.open("rb") as handle:
        reader = PdfFileReader(handle)
        context = ValidationContext(trust_roots=[load_cert_from_pemder(str(settings.PDF_TRUST_ROOTS[0]))])
        return validate_pdf_signature(reader.embedded_signatures[0], context)


# --- the document carries the whole record ---------------------------------------------------------

def test_cover_names_product_batch_identity_master_decision_exporter_and_fingerprint(exported):
    batch = exported["batch"]
    cover = pages_text(exported["path"])[0]
    fingerprint = fingerprint_in(exported["output"])

    for expected in ("Electronic batch record", "Autologous anti-CD19 CAR-T", batch.number, batch.coi,
                     batch.din_display, "PT-0042 (pseudonymised", "MBR-PDF-001 version 1: CAR-T manufacture (test)",
                     "Rejected",
                     "Rejected by Claire Approver", "reason: Viability out of specification (61 %)",
                     "by system:export_batch_pdf (os user ", fingerprint):
        assert expected in cover, expected
    assert " CET " in cover or " CEST " in cover  # export time in the facility's zone
    assert "signature valid" in cover
    assert len(fingerprint) == 64


def test_every_stage_and_step_in_order_with_values_limits_marks_times_and_signatures(exported):
    text = exported["text"]
    flat = " ".join(text.split())
    order = [flat.index(f"{code} {title}") for code, title in (
        ("1.1", "Receive the bag"), ("2.1", "Seed the culture"), ("2.2", "Expand in the bioreactor"),
        ("2.3", "Formulate"))]
    assert order == sorted(order)
    assert flat.index("Stage 1. Receipt") < flat.index("Stage 2. Processing")
    assert ("Instructions Check the label against the chain-of-identity code. Record the bag temperature on "
            "arrival.") in flat
    for value_unit in ("5.4 °C", "61 %", "1.2 ×10⁶/mL", "60 mL", "MED-1", "BSC-T1"):
        assert value_unit in flat, value_unit
    for limits in ("2–8 °C", "70–100 %", "0.5–2 ×10⁶/mL", "≥ 1 mL", "expected: yes"):
        assert limits in flat, limits
    assert "✓ in spec" in flat and "✗ OOS" in flat
    assert "entered" in flat and "LATE entry" in flat
    assert "Deviation DEV-" in flat
    assert "Performed by Zoë Ångström-Müller" in flat
    assert "Verified by Victor Verifier" in flat
    assert "Equipment: BSC-T1. Material lots: MED lot MED-1." in flat
    assert "INVALID" not in flat


def test_correction_shows_original_struck_through_then_the_new_value_and_reason(exported):
    import pypdf

    flat = " ".join(exported["text"].split())
    original = flat.index("5 °C")
    note = flat.index("Original value, superseded by the correction below.")
    corrected = flat.index("5.4 °C")
    reason = flat.index("Correction. Reason: Transcription error: the probe read 5.4 °C")
    assert original < corrected and note < reason
    # the original is drawn struck through: a stroked line in the step page's content, at the value's baseline
    reader = pypdf.PdfReader(str(exported["path"]))
    step_page = next(page for page in reader.pages if "Receive the bag" in page.extract_text())
    content = step_page.get_contents().get_data().decode("latin-1")
    assert "q 0.6 w" in content and " l S" in content.split("q 0.6 w", 1)[1].split("Q", 1)[0]


def test_sections_deviations_custody_gap_equipment_process_data_and_audit_appendix(exported):
    flat = " ".join(exported["text"].split())
    assert "Deviations and CAPA" in flat and "OOS Viability 61 % on" in flat
    assert "Gap in the chain of custody" in flat and "GAP: not handed over by the last holder" in flat
    assert "4.50 °C" in flat
    assert "Equipment and materials" in flat and "BR-T1" in flat and "MED Medium" in flat
    assert "Process data" in flat and "1,200 instrument readings" in flat
    assert "ph — pH (pH)" in flat and "temp — temperature (°C)" in flat
    assert "Limits: alert 7–7.4, action 6.8–7.6 pH (critical parameter)" in flat
    assert "Alarm: Action limit (critical)" in flat
    assert "Appendix: audit trail" in flat
    for event in ("BATCH_CREATED", "ENTRY_RECORDED", "ENTRY_CORRECTED", "SIGNATURE_APPLIED", "CUSTODY_RECORDED",
                  "DEVIATION_OPENED", "BATCH_REJECTED"):
        assert event in flat, event
    assert "EXPORT_CREATED" not in flat


def test_the_page_prints_unit_symbols_while_the_fingerprint_keeps_the_ucum_codes(exported):
    """People read °C and pH; the fingerprint covers the units as stored, so the way a unit
    is printed can change without changing the fingerprint of an unchanged record."""
    from ebr.pdf.content import record_data

    data = record_data(exported["batch"])
    process = next(section for section in data.sections if section.key == "process_data")
    units = {row[0]: (row[1], row[2]) for row in process.content["parameters"]}

    assert units["ph"] == ("[pH]", "alert 7–7.4, action 6.8–7.6 [pH]") and units["temp"][0] == "Cel"
    flat = " ".join(exported["text"].split())
    record = flat.split("Appendix: audit trail")[0]  # the appendix shows the values as stored
    assert "action 6.8–7.6 pH" in record and "[pH]" not in record and not re.search(r"\d Cel\b", record)
    assert "Alarm: Action limit (critical)" in record and "action 6.8–7.6 pH" in record.split("Alarm: ")[1]


def test_every_page_has_the_batch_header_page_x_of_y_and_the_fingerprint(exported):
    pages = pages_text(exported["path"])
    fingerprint = fingerprint_in(exported["output"])
    assert len(pages) >= 5
    for number, page in enumerate(pages, start=1):
        assert f"Batch record {exported['batch'].number}" in page
        assert f"Page {number} of {len(pages)}" in page
        assert fingerprint in page


def test_long_tables_split_across_pages_repeating_their_header(exported):
    appendix = [page for page in pages_text(exported["path"]) if "Reason and details" in page]
    assert len(appendix) >= 2  # the audit trail continues over pages, each with the header row
    for page in appendix:
        assert "#" in page and "When" in page and "Event" in page


def test_fonts_are_embedded_dejavu_and_non_english_text_prints(exported):
    fonts = subprocess.run(["pdffonts", str(exported["path"])], check=True, capture_output=True, text=True).stdout
    rows = fonts.splitlines()[2:]
    assert rows and all("DejaVu" in row and " yes yes " in row for row in rows), fonts
    flat = " ".join(exported["text"].split())
    for glyph in ("µm", "≥", "°C", "×", "Zoë Ångström-Müller"):
        assert glyph in flat, glyph


def test_pdfa_metadata_and_output_intent_are_present(exported):
    import pypdf

    reader = pypdf.PdfReader(str(exported["path"]))
    root = reader.trailer["/Root"]
    xmp = root["/Metadata"].get_object().get_data().decode("utf-8")
    assert 'pdfaid:part="2"' in xmp or "<pdfaid:part>2</pdfaid:part>" in xmp
    assert 'pdfaid:conformance="B"' in xmp or "<pdfaid:conformance>B</pdfaid:conformance>" in xmp
    intent = root["/OutputIntents"][0].get_object()
    assert intent["/S"] == "/GTS_PDFA1" and "/DestOutputProfile" in intent
    assert "/JavaScript" not in root and "/Encrypt" not in reader.trailer


def test_pages_render_to_images_that_are_not_blank(exported):
    from PIL import Image, ImageStat

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pages = pages_text(exported["path"])
    step_page = next(n for n, page in enumerate(pages, start=1) if "Receive the bag" in page)
    chart_page = next(n for n, page in enumerate(pages, start=1) if "Process data" in page)
    for number, name in ((1, "pdf-record-cover"), (step_page, "pdf-record-steps"), (chart_page, "pdf-record-charts")):
        prefix = ARTIFACTS / name
        subprocess.run(["pdftoppm", "-r", "100", "-png", "-singlefile", "-f", str(number), "-l", str(number),
                        str(exported["path"]), str(prefix)], check=True)
        image = Image.open(f"{prefix}.png").convert("L")
        assert ImageStat.Stat(image).stddev[0] > 20, f"{name} looks blank"
    (ARTIFACTS / "pdf-record-sample.pdf").write_bytes(exported["path"].read_bytes())


# --- the export is recorded; the fingerprint identifies the record ---------------------------------

def test_export_is_audit_logged_with_its_fingerprint(exported):
    event = AuditEvent.objects.filter(event_type=Event.EXPORT_CREATED, target_type="ebr.batch",
                                      target_id=str(exported["batch"].pk)).latest("id")
    assert event.actor_label == f"system:export_batch_pdf (os user {getpass.getuser()})"
    assert event.data["fingerprint"] == fingerprint_in(exported["output"])
    assert event.data["file_sha256"] == hashlib.sha256(exported["path"].read_bytes()).hexdigest()


def test_same_record_exported_twice_has_the_same_fingerprint_and_a_change_alters_it(exported, tmp_path, qa_reviewer):
    from qms.models import Deviation
    from qms.services.capa import capa_open
    from qms.services.deviations import deviation_triage

    again = tmp_path / "again.pdf"
    second = export(exported["batch"], again, "--user", qa_reviewer.username)

    assert fingerprint_in(second) == fingerprint_in(exported["output"])
    assert again.read_bytes() != exported["path"].read_bytes()  # signed at another moment
    assert f"by {qa_reviewer.full_name} ({qa_reviewer.username})" in pages_text(again)[0]
    deviation = Deviation.objects.get(subjects__subject_id=str(exported["batch"].pk), source="oos_entry")
    deviation_triage(actor=qa_reviewer, deviation=deviation, classification="major", rationale="Viability OOS",
                     severity=4, occurrence=2, detectability=2, reason="Triage: product quality impact")
    capa = capa_open(actor=qa_reviewer, title="Prevent viability loss after medium thaw",
                     problem_statement="Viability fell to 61 % after the medium was thawed.", source="deviation",
                     deviations=[deviation])
    third = export(exported["batch"], tmp_path / "third.pdf")
    assert fingerprint_in(third) != fingerprint_in(exported["output"])
    flat = " ".join(pdf_text(tmp_path / "third.pdf").split())
    assert f"{capa.number} Prevent viability loss after medium thaw" in flat and "0 of 0 completed" in flat
    assert "Major" in flat or "major" in flat


def test_unknown_batch_exits_2_with_one_line(pki, tmp_path):
    err = io.StringIO()
    with pytest.raises(SystemExit) as stop:
        call_command("export_batch_pdf", "B-NOPE-0000", "--output", str(tmp_path / "x.pdf"), stderr=err)
    assert stop.value.code == 2
    assert err.getvalue().strip() == "unknown batch B-NOPE-0000"
    assert not (tmp_path / "x.pdf").exists()


def test_an_export_named_after_a_person_whose_role_may_not_export_is_refused(scenario, pki, tmp_path, operator):
    """The audit trail would attribute the export to them: the same rule as on the screen."""
    before = AuditEvent.objects.filter(event_type=Event.EXPORT_CREATED).count()

    with pytest.raises(CommandError, match="role does not allow exporting") as refused:
        export(scenario["batch"], tmp_path / "x.pdf", "--user", operator.username)

    assert "\n" not in str(refused.value)
    assert not (tmp_path / "x.pdf").exists()
    assert AuditEvent.objects.filter(event_type=Event.EXPORT_CREATED).count() == before


def test_an_output_directory_that_does_not_exist_is_refused_not_created(scenario, pki, tmp_path):
    target = tmp_path / "typo" / "x.pdf"
    before = AuditEvent.objects.filter(event_type=Event.EXPORT_CREATED).count()

    with pytest.raises(CommandError, match="does not exist"):
        export(scenario["batch"], target)

    assert not target.parent.exists()
    assert AuditEvent.objects.filter(event_type=Event.EXPORT_CREATED).count() == before


# --- signature: valid, trusted, and nothing may change after signing -------------------------------

def test_verify_pdf_accepts_the_export_and_prints_signer_time_and_fingerprint(exported):
    code, output = verify(exported["path"])
    assert code == 0, output
    assert output.startswith("valid:")
    assert "signer: " in output and "batch record signing (DEMO)" in output
    assert "signed at: 20" in output
    assert f"record fingerprint: sha256:{fingerprint_in(exported['output'])}" in output
    status = pyhanko_status(exported["path"])
    assert status.bottom_line and status.coverage.name == "ENTIRE_FILE"


def _first_stream_offset(data: bytes) -> int:
    start = data.index(b"stream", data.index(b"/FlateDecode")) + len(b"stream\n") + 40
    return start


def test_a_byte_changed_in_the_signed_range_is_detected(exported, tmp_path):
    data = bytearray(exported["path"].read_bytes())
    offset = _first_stream_offset(bytes(data))
    data[offset] ^= 0x01
    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(bytes(data))

    code, output = verify(tampered)

    assert code == 1
    assert len(output.strip().splitlines()) == 1
    assert output.startswith(("altered", "not a readable PDF", "invalid"))
    status = pyhanko_status(tampered)
    assert not status.intact and not status.bottom_line


def test_content_appended_after_signing_is_detected(exported, tmp_path, caplog):
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    with exported["path"].open("rb") as handle:
        writer = IncrementalPdfFileWriter(io.BytesIO(handle.read()))
    writer.root[generic.NameObject("/PageMode")] = generic.NameObject("/UseOutlines")
    writer.update_root()
    appended = tmp_path / "appended.pdf"
    with appended.open("wb") as out:
        writer.write(out)

    code, output = verify(appended)

    assert code == 1
    assert output.startswith("altered")
    # pyHanko logs its own warning, with tracebacks, about the revision it rejects: not on the terminal
    assert not [record for record in caplog.records if record.name.startswith("pyhanko")]
    status = pyhanko_status(appended)
    assert status.coverage.name != "ENTIRE_FILE" and not status.bottom_line


def test_unsigned_and_untrusted_files_are_refused(exported, tmp_path, settings):
    from ebr.pdf.content import record_data
    from ebr.pdf.render import document_render
    from ebr.pdf.signing import demo_pki_ensure

    unsigned = tmp_path / "unsigned.pdf"
    unsigned.write_bytes(document_render(record_data(exported["batch"]), exported_at=timezone.now(),
                                         exported_by="test").pdf)
    assert verify(unsigned) == (1, "unsigned: the file carries no digital signature\n")
    other = demo_pki_ensure(tmp_path / "other-ca")
    settings.PDF_TRUST_ROOTS = [other.ca_cert]
    code, output = verify(exported["path"])
    assert code == 1 and output.startswith("untrusted")


def test_rfc3161_time_stamp_is_applied_when_a_tsa_is_configured(scenario, pki, settings, tmp_path):
    with TimeStampAuthority(pki) as url:
        settings.PDF_TSA_URL = url
        path = tmp_path / "stamped.pdf"
        export(scenario["batch"], path)
    code, output = verify(path)
    assert code == 0, output
    assert "time stamp: 20" in output
    status = pyhanko_status(path)
    assert status.timestamp_validity is not None and status.timestamp_validity.trusted


# --- clear failures ---------------------------------------------------------------------------------

def test_missing_fonts_stop_the_export_naming_the_package(settings, tmp_path):
    from ebr.pdf import fonts

    saved = dict(fonts._metrics)
    fonts._metrics.clear()
    settings.PDF_FONT_DIR = tmp_path / "no-fonts"
    try:
        with pytest.raises(fonts.FontsMissing, match="fonts-dejavu-core"):
            fonts.fonts_register()
    finally:
        fonts._metrics.update(saved)


def test_missing_signing_key_fails_with_one_readable_line(scenario, pki, settings, tmp_path):
    from django.core.management.base import CommandError

    settings.PDF_SIGNING_KEY = tmp_path / "missing.key"
    with pytest.raises(CommandError, match="PDF signing is not configured"):
        export(scenario["batch"], tmp_path / "x.pdf")
    assert not (tmp_path / "x.pdf").exists()


# --- a local RFC 3161 time-stamp authority for the test ---------------------------------------------

class TimeStampAuthority:
    """pyHanko's DummyTimeStamper behind a real HTTP endpoint, its certificate issued by the test CA."""

    def __init__(self, pki_dir: Path) -> None:
        self.pki_dir = pki_dir

    def __enter__(self) -> str:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from asn1crypto import tsp
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from pyhanko.keys import load_certs_from_pemder_data, load_private_key_from_pemder_data
        from pyhanko.sign.timestamps import DummyTimeStamper

        from ebr.pdf.signing import issue_certificate

        ca_key = serialization.load_pem_private_key((self.pki_dir / "ca.key").read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate((self.pki_dir / "ca.crt").read_bytes())
        key, certificate = issue_certificate(subject="Test TSA", organisation="Test", issuer_key=ca_key,
                                             issuer_cert=ca_cert, days=30, time_stamping=True,
                                             rsa_bits=2048)  # pyHanko's test TSA signs with RSA only
        stamper = DummyTimeStamper(
            tsa_cert=next(iter(load_certs_from_pemder_data(certificate.public_bytes(serialization.Encoding.PEM)))),
            tsa_key=load_private_key_from_pemder_data(key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
                passphrase=None))

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = tsp.TimeStampReq.load(self.rfile.read(int(self.headers["Content-Length"])))
                body = stamper.request_tsa_response(request).dump()
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the extension point and the demo PKI ----------------------------------------------------------

def test_a_registered_section_provider_is_printed_and_enters_the_fingerprint(scenario, pki, tmp_path):
    from reportlab.platypus import Paragraph

    from ebr.pdf import sections

    before = export(scenario["batch"], tmp_path / "before.pdf")

    @sections.section_provider("test_review_flags", order=35)
    def flags(batch, record):  # type: ignore[no-untyped-def]
        rows = [{"code": "LATE_ENTRY", "disposition": "accepted: probe reading confirmed"}]
        return sections.Section(key="test_review_flags", title="Review flags", content=rows, render=lambda context: [
            Paragraph("Review flags", context.styles.h1),
            Paragraph("LATE_ENTRY: accepted: probe reading confirmed", context.styles.body)])

    try:
        after = export(scenario["batch"], tmp_path / "after.pdf")
    finally:
        sections._registry.pop("test_review_flags")
    flat = " ".join(pdf_text(tmp_path / "after.pdf").split())
    assert flat.index("Deviations and CAPA") < flat.index("LATE_ENTRY: accepted") < flat.index("Chain of custody")
    assert fingerprint_in(after) != fingerprint_in(before)
    assert [key for key, _ in sections.section_providers()] == ["deviations", "review_flags", "custody",
                                                                "equipment_materials", "process_data"]


def test_demo_pki_is_created_once_and_kept_while_valid(tmp_path):
    from ebr.pdf.signing import demo_pki_ensure

    first = demo_pki_ensure(tmp_path / "pki")
    certificate, key = first.signing_cert.read_bytes(), first.signing_key.read_bytes()

    again = demo_pki_ensure(tmp_path / "pki")

    assert (again.signing_cert.read_bytes(), again.signing_key.read_bytes()) == (certificate, key)
    assert oct(first.signing_key.stat().st_mode & 0o777) == "0o600"
    assert oct(first.ca_key.stat().st_mode & 0o777) == "0o600"


def test_review_flags_and_their_dispositions_come_from_the_review_app(scenario, pki, tmp_path, monkeypatch):
    from django.apps import apps

    flags = [
        {"rule": "late_entry", "category": "Timeliness", "severity": "minor", "step": "1.1",
         "evidence": "Temperature entered after the late-entry threshold", "explanation": "ALCOA+ contemporaneous",
         "disposition": "Accepted", "disposition_reason": "Probe value confirmed by the verifier",
         "deviation_number": "", "dispositioned_by": "Quentin Reviewer", "dispositioned_at": timezone.now()},
        {"rule": "oos_value", "category": "Specification", "severity": "critical", "step": "2.1",
         "evidence": "Viability 61 %", "explanation": "", "disposition": "", "disposition_reason": "",
         "deviation_number": "", "dispositioned_by": "", "dispositioned_at": None},
    ]
    monkeypatch.setattr(apps.get_app_config("nlp_review"), "review_flags_for_pdf", lambda pk: flags, raising=False)

    export(scenario["batch"], tmp_path / "flags.pdf")

    flat = " ".join(pdf_text(tmp_path / "flags.pdf").split())
    assert "Review flags" in flat and "2 flags of the latest review, 1 not dispositioned." in flat
    assert "late_entry" in flat and "Accepted Probe value confirmed by the verifier by Quentin Reviewer" in flat
    assert "oos_value" in flat and "NOT DISPOSITIONED" in flat


def test_the_fingerprint_covers_audit_values_as_stored_not_as_printed(batch, settings):
    """Printing moments in the facility's zone and records by name must not change the
    fingerprint of an unchanged record (every export of the same record has the same one)."""
    from django.utils import timezone as tz

    from ebr.pdf.audit import batch_audit_trail

    with tz.override("Europe/Paris"):
        paris = batch_audit_trail(batch)
    with tz.override("America/New_York"):
        new_york = batch_audit_trail(batch)

    assert [line.content() for line in paris] == [line.content() for line in new_york]
    assert [line.details for line in paris] != [line.details for line in new_york]  # printed locally
    created = next(line for line in paris if line.event_type == "BATCH_CREATED")
    assert "collected_at=" in created.details_recorded and "+00:00" in created.details_recorded
    assert "CET" in created.details or "CEST" in created.details
