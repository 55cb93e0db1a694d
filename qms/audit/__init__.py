"""The Part 11 core's audit trail: one event catalogue, one writer, history helpers, the chain.

Everything else records through this package; nothing re-implements it.
"""

from qms.audit.events import Event
from qms.audit.history import ReasonRequired, create_with_reason, field_changes, save_with_reason
from qms.audit.writer import SystemActor, command_actor, record_event, record_security_event

__all__ = [
    "Event",
    "ReasonRequired",
    "SystemActor",
    "command_actor",
    "create_with_reason",
    "field_changes",
    "record_event",
    "record_security_event",
    "save_with_reason",
]
