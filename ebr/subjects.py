"""How the quality system finds manufacturing records a person names in a deviation or a
training record."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.urls import reverse

from qms.models import DocumentKind
from qms.services.change_control import (
    change_control_abandoned_register,
    change_control_citing_register,
    change_control_pending_register,
)
from qms.services.training import DocumentVersionFacts, training_document_facts_register, training_document_register
from qms.staleness import page_parts_register
from qms.subjects import BATCH, EQUIPMENT, MATERIAL, Subject, subject_kind_register


def _batch(reference: str) -> Subject | None:
    from ebr.selectors import batch_find

    batch = batch_find(reference)
    return Subject(BATCH, str(batch.pk), batch.number) if batch else None


def _equipment(reference: str) -> Subject | None:
    from ebr.models import Equipment

    equipment = Equipment.objects.filter(code__iexact=reference).first()
    return Subject(EQUIPMENT, str(equipment.pk), equipment.code) if equipment else None


def _lot(reference: str) -> Subject | None:
    from ebr.models import MaterialLot

    lot = MaterialLot.objects.filter(lot_number__iexact=reference).first()
    return Subject(MATERIAL, str(lot.pk), f"lot {lot.lot_number}") if lot else None


def subject_kinds_register() -> None:
    subject_kind_register(BATCH, "Batch", _batch, url=lambda s: reverse("batch_detail", args=[s.label]))
    subject_kind_register(EQUIPMENT, "Equipment", _equipment)
    subject_kind_register(MATERIAL, "Material lot", _lot)


def _master_record_version(code: str, version: str) -> dict[str, str] | None:
    from ebr.models import MasterRecord, VersionStatus

    record = MasterRecord.objects.filter(code__iexact=code).first()
    if record is None:
        return {"document_code": f"There is no master record {code}."}
    # Written as the version is numbered ("1", not "01" or "v1"): training_is_current compares the text.
    canonical = version.isascii() and version.isdigit() and str(int(version)) == version
    if not canonical or not record.versions.filter(version=int(version)).exists():
        known = ", ".join(str(v) for v in record.versions.order_by("version").values_list("version", flat=True))
        return {"version": f"{record.code} has no version {version} (versions: {known or 'none'})."}
    found = record.versions.get(version=int(version))
    if found.status in (VersionStatus.DRAFT, VersionStatus.IN_REVIEW, VersionStatus.WITHDRAWN):
        # Its content may still change (or never was approved): training on it would let someone
        # pass the execution gate trained on limits that were edited afterwards.
        return {"version": f"{found} is {found.get_status_display().lower()}: training is recorded on an approved "
                           "version."}
    return None


def _master_record_version_facts(code: str, version: str) -> DocumentVersionFacts | None:
    """When a master record version came to exist and who approved it: training on it cannot be
    dated earlier, and its approvers may train the first people on it (qms.services.training)."""
    from django.utils import timezone

    from ebr.models import MasterRecordVersion
    from qms.models import Signature
    from qms.signatures import Meaning

    if not (version.isascii() and version.isdigit()):
        return None
    found = MasterRecordVersion.objects.filter(master_record__code__iexact=code, version=int(version)).first()
    if found is None:
        return None
    approvers = Signature.objects.filter(target_type=found._meta.label_lower, target_id=str(found.pk),
                                         meaning=Meaning.APPROVED).values_list("signer_id", flat=True)
    return DocumentVersionFacts(issued_on=timezone.localdate(found.created_at), approver_ids=frozenset(approvers))


def training_documents_register() -> None:
    training_document_register(DocumentKind.MASTER_RECORD, _master_record_version)
    training_document_facts_register(DocumentKind.MASTER_RECORD, _master_record_version_facts)


def _versions_not_effective(change_control: str) -> list[str]:
    """Master record versions authorised by `change_control` that are not effective yet.

    A withdrawn draft is not among them: it will never become effective, and it is kept, signed
    and audited, as the record of a change abandoned (ebr.services.master_records.version_withdraw)."""
    from ebr.models import MasterRecordVersion, VersionStatus

    pending = MasterRecordVersion.objects.filter(
        change_control=change_control, status__in=[VersionStatus.DRAFT, VersionStatus.IN_REVIEW,
                                                   VersionStatus.APPROVED]).select_related("master_record")
    return [f"{version} is {version.get_status_display().lower()}, not effective" for version in pending]


def _versions_citing(change_control: str) -> list[tuple[str, str, str]]:
    """Every master record version made under `change_control`, withdrawn ones included: the
    change control's page shows what it authorised, and what came of it."""
    from ebr.models import MasterRecordVersion

    versions = (MasterRecordVersion.objects.filter(change_control=change_control).select_related("master_record")
                .order_by("master_record__code", "version"))
    return [(str(version), version.get_status_display(),
             reverse("master_version", args=[version.master_record.code, version.version]))
            for version in versions]


def _versions_all_withdrawn(change_control: str) -> list[str]:
    """The master record change `change_control` authorised was never made: every version drafted
    under it was withdrawn."""
    from ebr.models import MasterRecordVersion, VersionStatus

    statuses = set(MasterRecordVersion.objects.filter(change_control=change_control).values_list("status", flat=True))
    if statuses == {VersionStatus.WITHDRAWN}:
        return ["every master record version drafted under it was withdrawn, so nothing was changed: cancel it, "
                "or draft the change again under it"]
    return []


def change_control_work_register() -> None:
    change_control_pending_register(_versions_not_effective)
    change_control_citing_register(_versions_citing)
    change_control_abandoned_register(_versions_all_withdrawn)


def _master_version_parts(version: Any) -> list[models.QuerySet[Any]]:
    """What the master record version page shows, as history (qms.staleness): the version and its
    record, its stages, steps and their parameters, materials (and each material's name and unit),
    instrument limits and images. Child rows are found through their history, not the live
    tables, so that a row removed from a draft still moves the version."""
    from ebr.models import (
        InstrumentLimit,
        MasterRecord,
        MasterRecordVersion,
        Material,
        ParameterSpec,
        Stage,
        StepMaterial,
        StepTemplate,
    )
    from ebr.models.master import InstructionImage

    stages = Stage.history.filter(version_id=version.pk).values("id")
    steps = StepTemplate.history.filter(stage_id__in=stages).values("id")
    materials = StepMaterial.history.filter(step_id__in=steps).values("material_id")
    return [MasterRecordVersion.history.filter(id=version.pk), MasterRecord.history.filter(id=version.master_record_id),
            Stage.history.filter(version_id=version.pk), StepTemplate.history.filter(stage_id__in=stages),
            ParameterSpec.history.filter(step_id__in=steps), StepMaterial.history.filter(step_id__in=steps),
            InstrumentLimit.history.filter(step_id__in=steps), InstructionImage.history.filter(step_id__in=steps),
            Material.history.filter(id__in=materials)]


def version_page_parts_register() -> None:
    from ebr.models import MasterRecordVersion

    page_parts_register(MasterRecordVersion, _master_version_parts)


def record_parts_register_all() -> None:
    from ebr.selectors import batch_record_parts
    from qms.audit.parts import record_parts_register

    record_parts_register("ebr.batch", batch_record_parts)
