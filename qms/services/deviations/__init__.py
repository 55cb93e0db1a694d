"""Deviations: reported at once, triaged by QA with a risk assessment, investigated to a root
cause and its impact on every linked batch, approved and closed by QA (EU GMP Part I 1.4(xiv),
8.15; ICH Q9(R1) quality risk management; ICH Q10 3.2.2 CAPA system).

Every function is one step of the workflow table in qms/states.py: it checks the actor's role,
locks the deviation, checks its state, changes it through the history helpers with an event
from the catalogue, and signs where the table says so, all in the caller's transaction.
Each step after the report takes `seen`, the version of the deviation its page showed
(qms/staleness.py), and is refused when the record changed since; None means no page was read.
"""

from qms.services.deviations.investigation import (
    deviation_capa_decide,
    deviation_investigate,
    deviation_submit,
    investigation_gaps,
)
from qms.services.deviations.outcome import (
    MEASURED_SOURCES,
    deviation_cancel,
    deviation_close,
    deviation_extend,
    deviation_return,
)
from qms.services.deviations.reporting import CLOCK_SKEW, deviation_open, deviation_subject_add, deviation_triage

__all__ = [
    "CLOCK_SKEW", "MEASURED_SOURCES", "deviation_cancel", "deviation_capa_decide", "deviation_close",
    "deviation_extend",
    "deviation_investigate", "deviation_open", "deviation_return", "deviation_subject_add", "deviation_submit",
    "deviation_triage", "investigation_gaps",
]
