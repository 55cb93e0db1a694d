from qms.models.audit import AuditChainEntry, AuditedTable, AuditEvent, Signature
from qms.models.outbox import OutboxMessage
from qms.models.users import User

__all__ = ["AuditChainEntry", "AuditEvent", "AuditedTable", "OutboxMessage", "Signature", "User"]
