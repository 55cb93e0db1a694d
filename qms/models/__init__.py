from qms.models.audit import AuditChainEntry, AuditedTable, AuditEvent, Signature
from qms.models.capa import (
    ActionStatus,
    Capa,
    CapaAction,
    CapaActionKind,
    CapaDeviation,
    CapaEffectivenessCheck,
    CapaSource,
    CapaStatus,
    EffectivenessResult,
)
from qms.models.change_control import ChangeControl, ChangeControlStatus, ChangeTask, ChangeType
from qms.models.deviations import (
    BatchImpact,
    CapaDecision,
    Classification,
    Deviation,
    DeviationExtension,
    DeviationSource,
    DeviationStatus,
    DeviationSubject,
    RootCauseCategory,
    Subject,
)
from qms.models.notifications import Notification
from qms.models.numbering import NumberSequence
from qms.models.outbox import OutboxMessage
from qms.models.training import DocumentKind, TrainingRecord
from qms.models.users import User

__all__ = [
    "ActionStatus", "AuditChainEntry", "AuditEvent", "AuditedTable", "BatchImpact", "Capa", "CapaAction",
    "CapaActionKind", "CapaDecision", "CapaDeviation", "CapaEffectivenessCheck", "CapaSource", "CapaStatus",
    "ChangeControl", "ChangeControlStatus", "ChangeTask", "ChangeType", "Classification", "Deviation",
    "DeviationExtension", "DeviationSource", "DeviationStatus", "DeviationSubject", "DocumentKind",
    "EffectivenessResult", "Notification", "NumberSequence", "OutboxMessage", "RootCauseCategory", "Signature",
    "Subject", "TrainingRecord", "User",
]
