"""The draft under edit: its version's row locked, checked to be a draft, and checked to be the
version its author read.

ALCOA+ (attributable, accurate): an edit is made to the content its author read. Every edit of a
version's stages, steps, parameters, materials, instructions and images locks the version's row,
as its signatures do (lifecycle.py), so that a check and the write after it never interleave with
another author's edit or a signature: the second of two authors is told, never silently overwrites.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from ebr.models import MasterRecordVersion, StepTemplate, VersionStatus
from qms.staleness import ensure_unchanged


def ensure_draft(version: MasterRecordVersion) -> None:
    if version.status == VersionStatus.WITHDRAWN:
        raise ValidationError(f"{version} is withdrawn: it is never edited again; a change needs a new version.")
    if version.frozen:
        raise ValidationError(f"{version} is {version.get_status_display().lower()}: an approved version is frozen.")


def draft_version_locked(version_pk: int, seen: str | None) -> MasterRecordVersion:
    """The version, locked until the end of the transaction, refused unless it is a draft and still
    the version `seen` the author's page showed (None: no page was read, nothing to compare).
    A frozen version says so first: saving again could never succeed."""
    version = MasterRecordVersion.objects.select_for_update().get(pk=version_pk)
    ensure_draft(version)
    ensure_unchanged(version, seen, again="save again")
    return version


def draft_step_locked(step: StepTemplate, seen: str | None) -> StepTemplate:
    """The step, its version locked and checked (`draft_version_locked`): frozen versions refuse every change."""
    step = StepTemplate.objects.select_related("stage__version").get(pk=step.pk)
    draft_version_locked(step.stage.version_id, seen)
    return step
