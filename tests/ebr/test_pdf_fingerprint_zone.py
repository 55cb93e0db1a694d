"""The record fingerprint identifies the record, not the facility's zone (ebr-batch-record-pdf/2).

The same batch (signed steps, a signed rejection, a correction, late entries, acknowledged
alarms, a deviation, a custody gap, review flags, its audit trail) exported by a facility in
Paris and by one in New York prints its times in each one's zone and carries one fingerprint:
every moment enters it as ISO 8601 UTC, every signature and alarm in its stored form.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.test.utils import override_settings
from django.utils import timezone

from ebr.pdf.content import RecordData, record_content, record_data
from qms.models import Signature
from qms.signatures import format_local
from tests.ebr.test_pdf import export, fingerprint_in, pdf_text, pki, pki_dir, scenario  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

PARIS, NEW_YORK = "Europe/Paris", "America/New_York"


@contextmanager
def facility_in(zone: str) -> Iterator[None]:
    """The facility's TIME_ZONE setting, and the current zone a request or task would run in."""
    with override_settings(TIME_ZONE=zone), timezone.override(zone):
        yield


@pytest.fixture
def reviewed(scenario, monkeypatch):  # type: ignore[no-untyped-def]  # noqa: F811
    """The scenario's batch with a review flag whose disposition time the hook hands over in the
    zone current at export (an aware datetime in any zone is the same instant)."""
    dispositioned_at = timezone.now()

    def flags(batch_pk: int) -> list[dict[str, object]]:
        return [{"rule": "late_entry", "category": "Timeliness", "severity": "minor", "step": "1.1",
                 "evidence": "Temperature entered after the late-entry threshold", "explanation": "",
                 "disposition": "Accepted", "disposition_reason": "Probe value confirmed", "deviation_number": "",
                 "dispositioned_by": "Quentin Reviewer", "dispositioned_at": timezone.localtime(dispositioned_at)}]

    monkeypatch.setattr(apps.get_app_config("nlp_review"), "review_flags_for_pdf", flags, raising=False)
    return scenario


def _fingerprinted(data: RecordData) -> dict[str, Any]:
    """What `fingerprint_of` covers, part by part, so that a failure names the part that moved."""
    return {"record": record_content(data.record, data.entered_at, data.figures),
            "sections": {section.key: section.content for section in data.sections},
            "audit_trail": [line.content() for line in data.audit]}


def test_the_record_content_is_the_same_in_every_facility_zone(reviewed):
    with facility_in(PARIS):
        paris = record_data(reviewed["batch"])
    with facility_in(NEW_YORK):
        new_york = record_data(reviewed["batch"])

    recorded = _fingerprinted(paris)
    assert recorded == _fingerprinted(new_york)
    assert paris.fingerprint == new_york.fingerprint
    # What the fingerprint covers is really there: signatures, performed times, alarms, a gap, audit rows.
    assert recorded["record"]["signatures"] and recorded["record"]["stages"][0]["steps"][0]["signatures"]
    assert recorded["sections"]["custody"]["gaps"] and recorded["sections"]["process_data"]["parameters"]
    assert any(line[-1] for line in recorded["audit_trail"])  # audit rows that carry a signature
    assert "+00:00" in recorded["sections"]["review_flags"][0]["dispositioned_at"]


def test_the_same_batch_exported_in_paris_and_new_york_prints_local_times_under_one_fingerprint(reviewed, pki,  # noqa: F811
                                                                                                   tmp_path: Path):
    with facility_in(PARIS):
        paris_output = export(reviewed["batch"], tmp_path / "paris.pdf")
    with facility_in(NEW_YORK):
        new_york_output = export(reviewed["batch"], tmp_path / "new-york.pdf")

    assert fingerprint_in(paris_output) == fingerprint_in(new_york_output)
    paris, new_york = _flat(tmp_path / "paris.pdf"), _flat(tmp_path / "new-york.pdf")
    batch = reviewed["batch"]
    rejection = Signature.objects.get(target_type="ebr.batch", target_id=str(batch.pk), meaning="rejected")
    performed = Signature.objects.filter(target_type="ebr.stepexecution", meaning="performed",
                                         target_id__in=[str(pk) for pk in batch.steps.values_list("pk", flat=True)])
    assert len(performed) == batch.steps.count()
    for signature in [rejection, *performed]:
        with facility_in(PARIS):
            signed_in_paris = format_local(signature.signed_at)
        with facility_in(NEW_YORK):
            signed_in_new_york = format_local(signature.signed_at)
        assert signed_in_paris.endswith(("CET", "CEST")) and signed_in_new_york.endswith(("EST", "EDT"))
        assert signed_in_paris in paris and signed_in_paris not in new_york
        assert signed_in_new_york in new_york and signed_in_new_york not in paris


def _flat(path: Path) -> str:
    return " ".join(pdf_text(path).split())


def test_a_new_printed_name_or_label_wording_leaves_the_fingerprint_of_an_unchanged_record(scenario, monkeypatch):  # noqa: F811
    """A person's printed name changes (marriage) and labels get reworded between releases: the
    record did not change, so neither does its fingerprint (who entered a value is the account;
    states and types are codes). Signatures keep the name they were signed with."""
    from ebr.models import Equipment
    from qms.models import Deviation, User

    before = record_data(scenario["batch"])
    User.objects.filter(pk=scenario["operator"].pk).update(full_name="Zoë Ångström")
    for field in (Deviation._meta.get_field("status"), Equipment._meta.get_field("equipment_type")):
        monkeypatch.setattr(field, "choices", [(value, f"Now {label}") for value, label in field.choices])
    after = record_data(scenario["batch"])

    assert _fingerprinted(after) == _fingerprinted(before) and after.fingerprint == before.fingerprint
    entry = after.record.stages[0].steps[0].parameters[0].current
    assert entry is not None and entry.entered_by == "Zoë Ångström"  # printed as the person is called now


def test_a_review_flag_is_fingerprinted_with_the_account_that_dispositioned_it_not_the_printed_name():
    from ebr.pdf.providers import _flag_recorded

    flag = {"rule": "late_entry", "disposition": "no_impact", "dispositioned_by": "Quentin Reviewer",
            "dispositioned_by_username": "qreviewer", "dispositioned_at": timezone.now()}
    renamed = {**flag, "dispositioned_by": "Quentin Reviewer-Martin"}

    assert _flag_recorded(flag) == _flag_recorded(renamed)
    assert _flag_recorded(flag)["dispositioned_by_username"] == "qreviewer"
