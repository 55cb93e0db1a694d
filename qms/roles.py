"""Roles and the permission matrix: which role may do what. Read this table, not the views.

Roles are Django groups of the same name, created by migrate. Views, API endpoints and services
ask `can(user, Capability.X)`; no code tests group names itself. The auditor holds no
capability that changes data (read-only everywhere). The README reproduces this matrix.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.apps import AppConfig

    from qms.models import User


class Role(StrEnum):
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    QA_REVIEWER = "qa_reviewer"
    QA_APPROVER = "qa_approver"  # Qualified Person
    AUDITOR = "auditor"
    ADMIN = "admin"
    INSTRUMENT = "instrument"  # machine accounts; they use API tokens, never the UI


# Roles an instrument's registration gives (create_instrument), never a person's roles page.
MACHINE_ROLES = frozenset({Role.INSTRUMENT})
# Roles that record or sign GMP data: none of them goes with the administrator role, so that who
# administers the system (accounts, roles, passwords) is never who creates or approves the records
# it holds (EU GMP Annex 11 §12.1; 21 CFR 11.10(d), (g)).
GMP_DATA_ROLES = frozenset({Role.OPERATOR, Role.SUPERVISOR, Role.QA_REVIEWER, Role.QA_APPROVER})


class Capability(StrEnum):
    BATCH_VIEW = "batch_view"
    BATCH_EXECUTE = "batch_execute"
    BATCH_MANAGE = "batch_manage"
    BATCH_RELEASE = "batch_release"
    REVIEW_QUEUE = "review_queue"
    AUDIT_TRAIL_VIEW = "audit_trail_view"
    AUDIT_TRAIL_EXPORT = "audit_trail_export"
    AUDIT_TRAIL_REVIEW = "audit_trail_review"
    RECORD_SEARCH = "record_search"
    USER_MANAGE = "user_manage"
    READINGS_POST = "readings_post"
    # quality system (deviations, CAPA, change control, training)
    DEVIATION_VIEW = "deviation_view"
    DEVIATION_OPEN = "deviation_open"
    DEVIATION_TRIAGE = "deviation_triage"
    DEVIATION_INVESTIGATE = "deviation_investigate"
    DEVIATION_EXTEND = "deviation_extend"
    DEVIATION_CANCEL = "deviation_cancel"
    DEVIATION_CLOSE = "deviation_close"
    CAPA_VIEW = "capa_view"
    CAPA_MANAGE = "capa_manage"
    CAPA_ACTION_COMPLETE = "capa_action_complete"
    CAPA_CLOSE = "capa_close"
    CHANGE_CONTROL_VIEW = "change_control_view"
    CHANGE_CONTROL_AUTHOR = "change_control_author"
    CHANGE_CONTROL_IMPLEMENT = "change_control_implement"
    CHANGE_CONTROL_APPROVE = "change_control_approve"
    TRAINING_VIEW = "training_view"
    TRAINING_RECORD = "training_record"
    QA_DASHBOARD = "qa_dashboard"
    PAPER_RECORD_IMPORT = "paper_record_import"
    MASTER_RECORD_AUTHOR = "master_record_author"
    MASTER_RECORD_REVIEW = "master_record_review"
    MASTER_RECORD_APPROVE = "master_record_approve"
    BATCH_VERIFY = "batch_verify"


_READERS = {Role.OPERATOR, Role.SUPERVISOR, Role.QA_REVIEWER, Role.QA_APPROVER, Role.AUDITOR}
_QA = {Role.QA_REVIEWER, Role.QA_APPROVER}

MATRIX: dict[Capability, frozenset[Role]] = {
    Capability.BATCH_VIEW: frozenset(_READERS),
    Capability.BATCH_EXECUTE: frozenset({Role.OPERATOR, Role.SUPERVISOR}),
    Capability.BATCH_MANAGE: frozenset({Role.SUPERVISOR}),
    Capability.BATCH_RELEASE: frozenset({Role.QA_APPROVER}),
    Capability.REVIEW_QUEUE: frozenset(_QA),
    Capability.AUDIT_TRAIL_VIEW: frozenset(_QA | {Role.AUDITOR}),
    Capability.AUDIT_TRAIL_EXPORT: frozenset(_QA | {Role.AUDITOR}),
    Capability.AUDIT_TRAIL_REVIEW: frozenset(_QA),
    Capability.RECORD_SEARCH: frozenset(_QA | {Role.AUDITOR}),
    Capability.USER_MANAGE: frozenset({Role.ADMIN}),
    Capability.READINGS_POST: frozenset({Role.INSTRUMENT}),
    # quality system: anyone may report a deviation; QA classifies, extends and cancels; only the
    # QA approver (QP) closes deviations, CAPA and change controls (EU GMP Part I 1.4, 2.x).
    Capability.DEVIATION_VIEW: frozenset(_READERS),
    Capability.DEVIATION_OPEN: frozenset({Role.OPERATOR, Role.SUPERVISOR} | _QA),
    Capability.DEVIATION_TRIAGE: frozenset(_QA),
    Capability.DEVIATION_INVESTIGATE: frozenset({Role.SUPERVISOR} | _QA),
    Capability.DEVIATION_EXTEND: frozenset(_QA),
    Capability.DEVIATION_CANCEL: frozenset(_QA),
    Capability.DEVIATION_CLOSE: frozenset({Role.QA_APPROVER}),
    Capability.CAPA_VIEW: frozenset(_READERS),
    Capability.CAPA_MANAGE: frozenset(_QA),
    Capability.CAPA_ACTION_COMPLETE: frozenset({Role.OPERATOR, Role.SUPERVISOR} | _QA),
    Capability.CAPA_CLOSE: frozenset({Role.QA_APPROVER}),
    Capability.CHANGE_CONTROL_VIEW: frozenset(_READERS),
    Capability.CHANGE_CONTROL_AUTHOR: frozenset({Role.SUPERVISOR} | _QA),
    Capability.CHANGE_CONTROL_IMPLEMENT: frozenset({Role.OPERATOR, Role.SUPERVISOR} | _QA),
    Capability.CHANGE_CONTROL_APPROVE: frozenset({Role.QA_APPROVER}),
    Capability.TRAINING_VIEW: frozenset(_READERS),
    Capability.TRAINING_RECORD: frozenset({Role.SUPERVISOR} | _QA),
    Capability.QA_DASHBOARD: frozenset(_QA | {Role.AUDITOR}),
    # Transcribing open paper deviations and CAPAs at go-live sets their classification, owner and
    # due date from the paper record: QA's decision, as triage is (EU GMP Part I 1.4(xiv), 4.x).
    Capability.PAPER_RECORD_IMPORT: frozenset(_QA),
    Capability.MASTER_RECORD_AUTHOR: frozenset({Role.SUPERVISOR, Role.QA_REVIEWER}),
    Capability.MASTER_RECORD_REVIEW: frozenset({Role.SUPERVISOR, Role.QA_REVIEWER}),
    Capability.MASTER_RECORD_APPROVE: frozenset({Role.QA_APPROVER}),
    Capability.BATCH_VERIFY: frozenset({Role.OPERATOR, Role.SUPERVISOR}),
}

# Capabilities that change data; the auditor must hold none of them.
WRITE_CAPABILITIES = frozenset({
    Capability.BATCH_EXECUTE, Capability.BATCH_MANAGE, Capability.BATCH_RELEASE,
    Capability.AUDIT_TRAIL_REVIEW, Capability.USER_MANAGE, Capability.READINGS_POST,
    Capability.DEVIATION_OPEN, Capability.DEVIATION_TRIAGE, Capability.DEVIATION_INVESTIGATE,
    Capability.DEVIATION_EXTEND, Capability.DEVIATION_CANCEL, Capability.DEVIATION_CLOSE,
    Capability.CAPA_MANAGE, Capability.CAPA_ACTION_COMPLETE, Capability.CAPA_CLOSE,
    Capability.CHANGE_CONTROL_AUTHOR, Capability.CHANGE_CONTROL_IMPLEMENT, Capability.CHANGE_CONTROL_APPROVE,
    Capability.TRAINING_RECORD, Capability.PAPER_RECORD_IMPORT,
    Capability.MASTER_RECORD_AUTHOR, Capability.MASTER_RECORD_REVIEW, Capability.MASTER_RECORD_APPROVE,
    Capability.BATCH_VERIFY,
})


def admin_with_gmp(role_names: set[str]) -> bool:
    """The administrator role held with a role that records or signs GMP data: refused for new
    accounts and role changes, and an account that holds it from before neither signs nor acts in
    its GMP roles (EU GMP Annex 11 §12.1)."""
    return Role.ADMIN.value in role_names and bool(role_names & {role.value for role in GMP_DATA_ROLES})


def can(user: User | Any, capability: Capability) -> bool:
    """True when the user is active and one of their roles holds the capability.

    An account holding the administrator role with a GMP role (given before the two were kept
    apart) acts with its non-GMP roles only until one is removed: who administers accounts and
    passwords does not also record or decide GMP data (EU GMP Annex 11 §12.1)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    held = user.role_names
    if admin_with_gmp(held):
        held = held - {role.value for role in GMP_DATA_ROLES}
    return bool(held & {role.value for role in MATRIX[capability]})


def roles_for(user: User) -> list[Role]:
    return [role for role in Role if role.value in user.role_names]


def role_groups_ensure(**_: object) -> None:
    """Create one group per role (idempotent); run after every migrate."""
    from django.contrib.auth.models import Group

    for role in Role:
        Group.objects.get_or_create(name=role.value)


def connect_post_migrate(app_config: AppConfig) -> None:
    from django.db.models.signals import post_migrate

    post_migrate.connect(role_groups_ensure, sender=app_config, dispatch_uid="qms.roles")
