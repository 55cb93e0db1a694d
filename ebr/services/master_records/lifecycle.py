"""Master batch record versions: drafted, signed by author, reviewer and QA, made effective.

EU GMP Part I 4.3 and 4.4 (documents approved, signed and dated by appropriate people; a
master formula per product); 21 CFR 11.50/11.200 for the signatures.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from ebr.instructions import image_numbers
from ebr.models import (
    InstrumentLimit,
    MasterRecord,
    MasterRecordVersion,
    ParameterSpec,
    Product,
    Stage,
    StepMaterial,
    StepTemplate,
    VersionStatus,
)
from ebr.models.master import InstructionImage
from ebr.services.master_records.materials import material_parameters_ensure
from ebr.states import version_transition_check
from qms.audit import Event, create_with_reason, save_with_reason
from qms.models import DocumentKind, Signature, TrainingRecord, User
from qms.roles import Capability, Role, can
from qms.services._guards import created_once, ensure_can, reason_required
from qms.signatures import (
    Meaning,
    SegregationOfDuties,
    ensure_approver_not_author,
    may_approve,
    sign,
    signature_is_valid,
)
from qms.staleness import ensure_unchanged


def _change_control_refusal(number: str, master_record: MasterRecord) -> str | None:
    """Why `number` cannot authorise a new version of `master_record` (None: it can)."""
    from qms.services import change_control

    if not number.strip():
        return "Name the approved change control that authorises this new version."
    if not change_control.change_control_is_approved(number):
        if not change_control.change_control_exists(number):
            return f"There is no change control {number}: check its number (CC-YYYY-NNNN)."
        return f"{number} is not approved: a new version needs an approved change control."
    # A withdrawn draft used nothing up: the approved change is still to be made, under that change control.
    earlier = master_record.versions.filter(change_control=number).exclude(status=VersionStatus.WITHDRAWN).first()
    if earlier is not None:
        return (f"{number} already authorised {earlier} ({earlier.get_status_display().lower()}): a further "
                "change needs its own change control.")
    return change_control.change_control_scope_refusal(number, master_record.code)


@transaction.atomic
def product_create(*, actor: User, code: str, name: str, reason: str = "New product") -> Product:
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "create products")
    duplicate = ValidationError({"new_product_code": f"A product {code} exists already: choose it from the list."})
    if Product.objects.filter(code__iexact=(code or "").strip()).exists():
        raise duplicate
    return created_once(lambda: create_with_reason(Product, actor=actor, reason=reason, code=code, name=name),
                        # two authors at once: a refusal, not a 500
                        ("ebr_product_code_key", "product_code_unique_any_case"), duplicate)


@transaction.atomic
def master_record_create(*, actor: User, product: Product, code: str, title: str,
                         reason: str = "New master record") -> MasterRecordVersion:
    """A new master record starts with a draft version 1 (no change control needed for a first issue)."""
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    duplicate = ValidationError({"code": f"A master record {code} exists already: start a new version of it."})
    if MasterRecord.objects.filter(code__iexact=(code or "").strip()).exists():
        raise duplicate
    record = created_once(lambda: create_with_reason(MasterRecord, actor=actor, reason=reason, product=product,
                                                     code=code, title=title),
                          ("ebr_masterrecord_code_key", "master_record_code_unique_any_case"),
                          duplicate)
    return create_with_reason(MasterRecordVersion, actor=actor, reason=reason, master_record=record, version=1,
                              created_by=actor)


@transaction.atomic
def master_record_create_with_product(*, actor: User, product_code: str, product_name: str, code: str,
                                      title: str) -> MasterRecordVersion:
    """A new product and its first master record, or neither: a refused record leaves no orphan product."""
    product = product_create(actor=actor, code=product_code, name=product_name)
    return master_record_create(actor=actor, product=product, code=code, title=title)


@transaction.atomic
def version_new_draft(*, actor: User, master_record: MasterRecord, change_control: str,
                      summary_of_changes: str) -> MasterRecordVersion:
    """A new version is a copy of the latest approved one and must cite the approved change control
    of that change: a process change naming the master record among its affected items, which has
    not authorised another version of it (EU GMP Part I 1.4(xii), Annex 15 §11). The change control
    cannot be declared implemented or closed before the version is effective (ebr/subjects.py)."""
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "author master records")
    change_control = (change_control or "").strip().upper()
    record = MasterRecord.objects.select_for_update().get(pk=master_record.pk)
    errors = {"change_control": _change_control_refusal(change_control, record),
              "summary_of_changes": None if summary_of_changes.strip() else "Say what changes in this version."}
    if any(errors.values()):
        raise ValidationError({field: message for field, message in errors.items() if message})
    if record.versions.filter(status__in=[VersionStatus.DRAFT, VersionStatus.IN_REVIEW]).exists():
        raise ValidationError("A draft or a version in review already exists; finish it first.")
    base = (record.versions.filter(status__in=[VersionStatus.EFFECTIVE, VersionStatus.APPROVED])
            .order_by("-version").first())
    if base is None:
        raise ValidationError("There is no approved version to start from.")
    number = (record.versions.order_by("-version").values_list("version", flat=True).first() or 0) + 1
    reason = f"New version under {change_control}: {summary_of_changes}"
    version = create_with_reason(MasterRecordVersion, actor=actor, reason=reason, master_record=record,
                                 version=number, based_on=base, change_control=change_control,
                                 summary_of_changes=summary_of_changes, created_by=actor)
    _copy_content(base, version, actor=actor, reason=reason)
    return version


def _copy_content(source: MasterRecordVersion, target: MasterRecordVersion, *, actor: User, reason: str) -> None:
    for stage in source.stages.all():
        new_stage = create_with_reason(Stage, actor=actor, reason=reason, version=target, order=stage.order,
                                       name=stage.name)
        for step in stage.steps.all():
            fields = {f.name: getattr(step, f.name) for f in StepTemplate._meta.concrete_fields
                      if f.name not in {"id", "stage"}}
            new_step = create_with_reason(StepTemplate, actor=actor, reason=reason, stage=new_stage, **fields)
            # Images are copied as references: the new row points at the same stored file and SHA-256.
            for model, related in ((ParameterSpec, step.parameters), (StepMaterial, step.materials),
                                   (InstrumentLimit, step.instrument_limits), (InstructionImage, step.images)):
                for row in related.all():
                    values = {f.name: getattr(row, f.name) for f in model._meta.concrete_fields
                              if f.name not in {"id", "step"}}
                    create_with_reason(model, actor=actor, reason=reason, step=new_step, **values)
            # A step copied from a version made before the quantity check gains its parameters now.
            for step_material in new_step.materials.select_related("material"):
                material_parameters_ensure(actor=actor, step=new_step, step_material=step_material, reason=reason)


def version_signers(version: MasterRecordVersion, meaning: Meaning, *, valid_only: bool = False) -> list[User]:
    """Who signed `version` with `meaning` (only with signatures still valid for its content, if
    asked): the segregation rules of review and approval, and the page that offers them, read this."""
    signatures = Signature.objects.filter(target_type="ebr.masterrecordversion", target_id=str(version.pk),
                                          meaning=meaning).select_related("signer")
    return [s.signer for s in signatures if not valid_only or signature_is_valid(s, version)]


@transaction.atomic
def version_submit(*, actor: User, version: MasterRecordVersion, password: str, username: str | None = None,
                   session: Any = None, reason: str = "Submitted for review",
                   seen: str | None = None) -> MasterRecordVersion:
    """The author signs the draft ("authored") and sends it to review.

    Every signature of a version is refused when the version's content changed since the page it
    was signed from (`seen`, qms.staleness; 21 CFR 11.50, 11.70): checked under the version's row
    lock, which every edit of its stages, steps and limits takes too."""
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "submit master records")
    version = MasterRecordVersion.objects.select_for_update().get(pk=version.pk)
    ensure_unchanged(version, seen)
    meaning = version_transition_check(version.status, VersionStatus.IN_REVIEW)
    if not version.stages.filter(steps__isnull=False).exists():
        raise ValidationError("A master record needs at least one step.")
    _images_placed_exist(version)
    sign(signer=actor, password=password, meaning=meaning or Meaning.AUTHORED, target=version, reason=reason,
         username=username, session=session)
    version.status = VersionStatus.IN_REVIEW
    save_with_reason(version, actor=actor, reason=reason, update_fields=["status"])
    return version


def _images_placed_exist(version: MasterRecordVersion) -> None:
    """Every `image:N` a step's text places is an image of that step: a missing one would reach the
    operator as "image not available" in an approved, signed instruction."""
    problems = []
    for step in StepTemplate.objects.filter(stage__version=version).prefetch_related("images").order_by(
            "stage__order", "order"):
        missing = sorted(image_numbers(step.instructions) - {image.number for image in step.images.all()})
        if missing:
            problems.append(f"step {step.code} places image {', '.join(map(str, missing))}, which it does not have")
    if problems:
        raise ValidationError(f"Add the missing images or remove them from the text: {'; '.join(problems)}.")


@transaction.atomic
def version_review(*, actor: User, version: MasterRecordVersion, password: str, username: str | None = None,
                   session: Any = None, reason: str = "Reviewed", seen: str | None = None) -> Signature:
    """A reviewer (not the author) signs "reviewed" the version they read (`seen`); the state stays
    in review until QA approves."""
    ensure_can(actor, Capability.MASTER_RECORD_REVIEW, "review master records")
    version = MasterRecordVersion.objects.select_for_update().get(pk=version.pk)
    ensure_unchanged(version, seen)
    if version.status != VersionStatus.IN_REVIEW:
        raise ValidationError("Only a version in review can be reviewed.")
    ensure_approver_not_author(approver=actor, authors=version_signers(version, Meaning.AUTHORED))
    if actor in version_signers(version, Meaning.REVIEWED, valid_only=True):
        # A second signature by the same person would read as a second review (two pairs of eyes).
        raise ValidationError("You have already reviewed this version; a second review needs another reviewer.")
    return sign(signer=actor, password=password, meaning=Meaning.REVIEWED, target=version, reason=reason,
                username=username, session=session)


@transaction.atomic
def version_approve(*, actor: User, version: MasterRecordVersion, password: str, username: str | None = None,
                    session: Any = None, reason: str = "Approved", seen: str | None = None) -> MasterRecordVersion:
    """QA approval of the version QA read (`seen`): needs valid author and reviewer signatures;
    three different people sign."""
    ensure_can(actor, Capability.MASTER_RECORD_APPROVE, "approve master records")
    version = MasterRecordVersion.objects.select_for_update().get(pk=version.pk)
    ensure_unchanged(version, seen)
    meaning = version_transition_check(version.status, VersionStatus.APPROVED)
    authors = version_signers(version, Meaning.AUTHORED, valid_only=True)
    reviewers = version_signers(version, Meaning.REVIEWED, valid_only=True)
    if not authors or not reviewers:
        raise ValidationError("Approval needs the author's and a reviewer's valid signatures first.")
    if not may_approve(approver=actor, authors=authors + reviewers):
        raise SegregationOfDuties("The QA approver must not be the author or the reviewer of this version.")
    sign(signer=actor, password=password, meaning=meaning or Meaning.APPROVED, target=version, reason=reason,
         username=username, session=session)
    version.status = VersionStatus.APPROVED
    save_with_reason(version, actor=actor, reason=reason, update_fields=["status"])
    return version


def version_trained_operator_count(version: MasterRecordVersion, *, on: date | None = None) -> int:
    """How many active operators hold current training on exactly this version on day `on` (today
    by default): the people batch execution will admit to its steps (ebr/services/execution.py
    `_training_ensure`). Training is read through qms's own rule of what counts
    (`training_current_q`), so a change to that rule applies here too (EU GMP Part I 2.8)."""
    from qms.services.training import training_current_q

    trained = TrainingRecord.objects.filter(
        training_current_q(on or timezone.localdate()), user=OuterRef("pk"), document_kind=DocumentKind.MASTER_RECORD,
        document_code=version.master_record.code.strip().upper(), version=str(version.version))
    return (User.objects.filter(is_active=True, groups__name=Role.OPERATOR.value).filter(Exists(trained))
            .distinct().count())


@transaction.atomic
def version_make_effective(*, actor: User, version: MasterRecordVersion, reason: str = "Made effective",
                           seen: str | None = None) -> MasterRecordVersion:
    """The approved version QA read (`seen`) becomes the only effective one; the previous effective
    is superseded.

    Not refused when no operator is trained on it yet (training is often recorded after approval,
    before the effective date): its batches are refused at each step until someone is. The number
    of operators trained at this moment is recorded in the MASTER_VERSION_EFFECTIVE event, beside
    the change of status, so the audit trail shows what QA knew when deciding (EU GMP Part I 2.8,
    4.3; 21 CFR 11.10(e))."""
    ensure_can(actor, Capability.MASTER_RECORD_APPROVE, "make master records effective")
    version = MasterRecordVersion.objects.select_for_update().get(pk=version.pk)
    ensure_unchanged(version, seen, again="make it effective again")
    version_transition_check(version.status, VersionStatus.EFFECTIVE)
    for previous in (MasterRecordVersion.objects.select_for_update()
                     .filter(master_record=version.master_record, status=VersionStatus.EFFECTIVE)):
        version_transition_check(previous.status, VersionStatus.SUPERSEDED)
        previous.status = VersionStatus.SUPERSEDED
        save_with_reason(previous, actor=actor, reason=f"Superseded by {version}", update_fields=["status"])
    version.status = VersionStatus.EFFECTIVE
    version.effective_at = timezone.now()
    save_with_reason(version, actor=actor, reason=reason, update_fields=["status", "effective_at"],
                     event=Event.MASTER_VERSION_EFFECTIVE,
                     data={"trained_operators": version_trained_operator_count(version)})
    return version


@transaction.atomic
def version_return(*, actor: User, version: MasterRecordVersion, reason: str,
                   seen: str | None = None) -> MasterRecordVersion:
    """A reviewer or approver sends the version in review they read (`seen`) back to draft, saying why."""
    if not (can(actor, Capability.MASTER_RECORD_REVIEW) or can(actor, Capability.MASTER_RECORD_APPROVE)):
        raise PermissionDenied("Your role does not allow returning master records.")
    if not reason.strip():
        raise ValidationError({"reason": "Say what must change."})
    version = MasterRecordVersion.objects.select_for_update().get(pk=version.pk)
    ensure_unchanged(version, seen, again="return it again")
    version_transition_check(version.status, VersionStatus.DRAFT)
    version.status = VersionStatus.DRAFT
    save_with_reason(version, actor=actor, reason=reason, update_fields=["status"])
    return version


def _ensure_withdrawable(version: MasterRecordVersion) -> None:
    """Only a draft is withdrawn: what was submitted is being reviewed, and what was approved stays
    the signed record of an approval (it is retired or superseded, never withdrawn)."""
    status = version.get_status_display().lower()
    if version.status == VersionStatus.WITHDRAWN:
        raise ValidationError(f"{version} is withdrawn already.")
    if version.status == VersionStatus.IN_REVIEW:
        raise ValidationError(f"{version} is in review: only a draft can be withdrawn; a reviewer or QA returns it "
                              "to draft first.")
    if version.status != VersionStatus.DRAFT:
        raise ValidationError(f"{version} is {status}: it was approved under signature and stays on record; only a "
                              "draft that was never approved can be withdrawn.")
    if version.based_on_id is None:
        # A new draft copies an approved version; with none to copy, and the code never reused,
        # withdrawing the first draft would leave a master record that can never have a version.
        raise ValidationError(f"{version} is the first version of {version.master_record.code}: there is no approved "
                              "version to start again from, so it is not withdrawn. Correct the draft instead.")


def version_may_withdraw(actor: User, version: MasterRecordVersion) -> bool:
    """The author who started the draft withdraws it (another author only once their account is
    deactivated): a co-author's edits are not thrown away by someone else, since a withdrawal is final
    and a new draft copies the last approved version."""
    return can(actor, Capability.MASTER_RECORD_AUTHOR) and (
        actor.pk == version.created_by_id or not version.created_by.is_active)


def _ensure_may_withdraw(actor: User, version: MasterRecordVersion) -> None:
    if not version_may_withdraw(actor, version):
        raise PermissionDenied(f"Only {version.created_by.full_name}, who started this draft, withdraws it.")


@transaction.atomic
def version_withdraw(*, actor: User, version: MasterRecordVersion, password: str, reason: str,
                     username: str | None = None, session: Any = None,
                     seen: str | None = None) -> MasterRecordVersion:
    """An author withdraws an abandoned draft under signature ("withdrawn"), saying why.

    The version is kept with its content, signatures and audit trail (EU GMP Part I 4.1, 4.10:
    a document's history is retained; 21 CFR 11.10(e), 11.50), but can never again be edited,
    submitted or executed, and its number is not reused. It no longer holds its change control:
    the change may be drafted again under it, or the change control cancelled (ebr/subjects.py).
    """
    ensure_can(actor, Capability.MASTER_RECORD_AUTHOR, "withdraw master record drafts")
    reason = reason_required(reason, "Say why the draft is withdrawn: it is recorded with the signature.")
    version = MasterRecordVersion.objects.select_for_update().get(pk=version.pk)
    ensure_unchanged(version, seen)
    _ensure_withdrawable(version)
    _ensure_may_withdraw(actor, version)
    meaning = version_transition_check(version.status, VersionStatus.WITHDRAWN)
    signature = sign(signer=actor, password=password, meaning=meaning or Meaning.WITHDRAWN, target=version,
                     reason=reason, username=username, session=session)
    version.status = VersionStatus.WITHDRAWN
    save_with_reason(version, actor=actor, reason=reason, update_fields=["status"],
                     event=Event.MASTER_VERSION_WITHDRAWN,
                     data={"signature": signature.pk, "change_control": version.change_control})
    return version
