"""Data integrity: the record must be attributable, legible, contemporaneous, original and accurate
(ALCOA+; EU GMP Part I ch. 4, Annex 11; 21 CFR 11; MHRA GxP data integrity guidance 2018).

Negation: ruled out is no flag ("no corrections"). A missing verification or signature is a flag
(CHECK: "verification not performed", "not signed by verifier", "no second check").
Severity: data that may be falsified (backdated, pre-filled, signed for someone else, deleted or
overwritten, changed after signing) is critical (specs: "falsified data"); records not
contemporaneous or not verified are major; a correction without a reason is minor.
"""

from __future__ import annotations

from nlp_review.pipeline.rules.base import Polarity, Rule
from nlp_review.pipeline.types import Category, Severity

D, CRIT, MAJ, MIN = Category.DATA_INTEGRITY, Severity.CRITICAL, Severity.MAJOR, Severity.MINOR
RECORD_VERB = "entered|recorded|written|documented|filled|transcribed|completed|typed|noted|logged|signed|entry|entries"
SCRAP = ("glove|gloves|hand|hands|arm|paper|towel|tissue|scrap|post-it|note|notes|notebook|wipe|memory|"
         "whiteboard|napkin|sleeve")
IDENTITY_WORDS = frozenset({"label", "labels", "coi", "din", "identity", "identifier", "identifiers", "wristband",
                            "custody", "courier", "handover", "hand-over"})

RULES: tuple[Rule, ...] = (
    Rule("di.not_contemporaneous", D, MAJ, (
        f"{RECORD_VERB} _{{0,3}} later|afterwards|after|retrospectively|retrospective|subsequently|next|following|"
        "post-hoc|end",
        f"late|retrospective|delayed _{{0,1}} {RECORD_VERB}",
        f"{RECORD_VERB} _{{0,2}} on|onto|from _{{0,2}} {SCRAP}",
        "timestamp|time-stamp|stamp|entry|entries _{0,4} # _{0,1} hours|hrs|h|hour|days|day|minutes|min _{0,1} "
        "after|later|late|post|past|behind|since|following",
        "(from memory|from recollection|reconstructed|recalled later|filled in later|written up later|"
        "written up after)",
        "estimated|guessed|approximated|assumed|made-up|invented|fabricated|fabrication|falsified|falsification "
        "_{0,2} value|values|reading|readings|time|times|result|results|data|entry|entries|weight|volume|count",
    ), "The record was not made at the time of the activity (ALCOA+: contemporaneous).",
        exclude=("note|notes _{0,1} attached|added", "after|following _{0,1} review|approval|verification")),
    Rule("di.backdated", D, CRIT, (
        "backdated|back-dated|predated|pre-dated|antedated|postdated|post-dated",
        "back dated",
        "dated _{0,4} before|earlier|prior|previous|yesterday|ahead",
    ), "An entry carries a date before the work was done: falsified data (specs: critical)."),
    Rule("di.prefilled", D, CRIT, (
        "prefilled|pre-filled|prepopulated|pre-populated|pre-entered|pre-recorded|pre-signed|presigned|pre-completed",
        "pre filled|entered|signed|recorded",
        f"{RECORD_VERB}|filled|signed _{{0,4}} in? advance|ahead|beforehand",
        "(ahead|in advance) _{0,1} of _{0,3} counting|count|measurement|test|step|being|performing|done",
    ), "Results recorded before the work was done: falsified data (specs: critical)."),
    Rule("di.signed_for_other", D, CRIT, (
        "signed|initialed|initialled|signature|sign|initials _{0,2} (for|on behalf of) _{0,2} "
        "colleague|someone|another|"
        "other|others|him|her|them|absent|verifier|operator|second",
        "colleague|colleagues|someone|another|other 's? _{0,1} initials|signature|login|password|account|name|"
        "credentials|card|badge",
        "operator|verifier|supervisor 's _{0,1} initials|signature|login|password|account|credentials|card|badge",
        "forged|forgery|impersonated|impersonating|ghost-signed",
        "in their|his|her absence",
    ), "Someone signed or entered as another person: not attributable, falsified (specs: critical)."),
    Rule("di.shared_account", D, MAJ, (
        "shared|same|common|generic|group|one _{0,1} login|logins|account|accounts|user|username|password|"
        "credentials|badge",
        "logged in|on _{0,3} as|under|with _{0,3} colleague|another|other|someone|same|shared",
        # Work recorded under somebody else's credentials: "entries made by operator2 under my login".
        "under|using|with|via my|his|her|their|your|another|someone|somebody|colleague|colleagues _{0,2} login|logins|"
        "account|password|credentials|username|badge|card",
        "left logged in|on",
        "not logged out",
    ), "Shared or borrowed credentials: entries are not attributable (21 CFR 11.10(d), 11.300)."),
    Rule("di.deleted", D, CRIT, (
        "deleted|erased|overwritten|overwrote|over-written|overwrite|purged|shredded",
        "data|file|files|record|records|result|results|memory|log|logs|drive|printout|printouts|"
        "sheet|sheets|page|pages|chart|charts|raw|audit _{0,3} discarded|destroyed|binned|wiped|thrown|removed|"
        "torn|replaced|rewritten|cleared|reset",
        "discarded|destroyed|binned|wiped|threw|removed|cleared|tore _{0,3} data|file|files|record|records|result|"
        "results|memory|log|logs|printout|printouts|sheet|sheets|page|pages|chart|charts|original|originals",
        "(not saved|unsaved|not backed up|lost data|data loss|data lost)",
    ), "Original data deleted or overwritten (ALCOA+: original).",
        exclude=("wiped down|clean|cleaned|with|surfaces|surface|bsc|cabinet|hood|area|gloves",
                 "sample|samples|culture|media|medium|waste _{0,2} discarded")),
    Rule("di.obscured_correction", D, MAJ, (
        "crossed|scribbled|struck|blacked|scratched _{0,1} out|through",
        "tippex|tipp-ex|whiteout|white-out|obliterated|illegible|unreadable|rewritten|re-written|overwriting",
        "(correction fluid|correction tape)",
        "pencil|erasable|whiteout|tippex",
    ), "A correction that hides the original value (EU GMP Part I 4.9).",
        # An unreadable label is an identity event (identity.label_legibility).
        unless_near=frozenset({"label", "labels", "labeling", "barcode", "din", "tag", "sticker"})),
    Rule("di.missing_record", D, MAJ, (
        "(raw data|printout|printouts|print-out|print|file|files|chart|report|ticket|record|records|data|page|pages|"
        "attachment|worksheet|sheet|graph) _{0,5} missing|lost|absent|unavailable|gone|misplaced",
        # "not" only with a verb of keeping or finding: "data not transcribed / lost / modified" denies
        # a bad thing, it does not report a missing record.
        "(raw data|printout|printouts|print-out|print|file|files|chart|report|ticket|record|records|data|page|pages|"
        "attachment|worksheet|sheet|graph) _{0,3} not|never available|attached|kept|saved|retained|filed|printed|"
        "stored|present|included|provided|found|located|retrievable|there|enclosed|archived|backed|signed|dated",
        "missing|lost|misplaced _{0,2} printout|printouts|print-out|raw|data|file|page|pages|record|records|chart",
        "could|can|unable _{0,2} not? _{0,1} be? found|find|located|locate|retrieved|retrieve",
    ), "Original data or a required attachment is missing (ALCOA+: complete, enduring).",
        exclude=("data logger", "not applicable")),
    Rule("di.no_reason", D, MIN, (
        "without|w/o|no|missing _{0,2} reason|justification|explanation|comment|rationale",
        "reason|justification _{0,2} (missing|not given|not stated|blank|absent)",
    ), "A correction or change without a stated reason (EU GMP Part I 4.9).",
        # "QA reviewed, no comments": nothing to remark on, not a change without a reason
        exclude=("no|nil _{0,1} further|additional? comments",)),
    Rule("di.verification_missing", D, MAJ, (
        "missing|no|without|lacking|absent|omitted|outstanding|blank _{0,2} verification|verifier|countersignature|"
        "counter-signature|witness|witnessed|second|2nd|double|signature|signatures|sign-off|check",
        "verification|verifier|countersignature|second|2nd|signature|signatures|sign-off|witness _{0,2} signature? "
        "_{0,1} missing|absent|lacking|blank|omitted|outstanding|pending",
        "unsigned|undated|uninitialed|uninitialled|unverified|unwitnessed|unchecked|unreviewed",
        "signed|initialed|initialled|verified|countersigned|witnessed _{0,2} without _{0,1} witnessing|seeing|"
        "observing|watching|checking|being|looking|reviewing",
    ), "A required verification or signature is missing (specs: missing verification).",
        unless_near=IDENTITY_WORDS),
    Rule("di.verification", D, MAJ, (
        "(verified|verification|verify|verifier|countersigned|countersign|witnessed|witness|double-checked|"
        "double checked|cross-checked)",
        "second|2nd|independent|double _{0,1} person|operator|check|checked|signature|sign-off|verification",
        "signed|initialed|initialled|sign-off",
    ), "A required second-person verification or signature was not done (specs: missing verification).",
        polarity=Polarity.CHECK, unless_near=IDENTITY_WORDS),
    Rule("di.changed_after_signing", D, CRIT, (
        "changed|modified|altered|edited|amended|updated|corrected _{0,3} after|post _{0,2} sign|signing|sign-off|"
        "signoff|signature|signatures|approval|approved|review|release|locking|lock",
        "audit trail _{0,8} changed|modified|altered|edited|deleted|after",
        "audit trail|audit-trail|audittrail _{0,3} disabled|off|deactivated|paused|suspended|bypassed|gap|gaps|"
        "incomplete|missing",
    ), "Data changed after it was signed (21 CFR 11.10(e), 11.70): critical until explained."),
    Rule("di.correction", D, MIN, (
        "transcription|transcribing|typing|typo _{0,1} error|errors|mistake",
        "entered|recorded|written|typed|documented|signed _{0,1} against|in|on|under _{0,2} wrong|incorrect _{0,1} "
        "step|field|page|line|box|row|batch|record",
        "transcribed|entered|recorded|copied|typed|written|documented|keyed _{0,2} incorrectly|wrongly|inaccurately|"
        "wrong|erroneously",
        "miswritten|mistyped|mis-typed|mis-keyed|miskeyed|mis-recorded|misrecorded|misrecording|transposed digits",
    ), "A recording error was corrected: the record should show the original and the reason (EU GMP Part I 4.9)."),
    Rule("di.wrong_time", D, MAJ, (
        "time|times|date|dates|timestamp|time-stamp|clock _{0,5} wrong|incorrect|inaccurate|mismatch|discrepancy|"
        "error|off|erroneous|inconsistent|implausible|impossible",
        "recorded|documented|entered|written|reported|logged _{0,1} time|date|value|values|result|results|weight|"
        "volume|"
        "temperature|reading|count _{0,4} wrong|incorrect|inaccurate|erroneous|inconsistent|implausible|mismatch",
        "wrong|incorrect|inaccurate _{0,1} time|date|timestamp|clock",
    ), "A recorded time or date is wrong (ALCOA+: accurate, contemporaneous)."),
    Rule("di.blank_field", D, MAJ, (
        "field|fields|box|boxes|section|entry|entries|page|line|column|cell|row|space|signature|date|initials _{0,3} "
        "blank|empty|unfilled|incomplete|uncompleted",
        "(left blank|left empty|left unfilled|not filled|not filled in|not completed|not entered|not recorded|"
        "not documented|not written)",
    ), "A required record entry was left empty (ALCOA+: complete).",
        unless_near=frozenset({"step", "check", "clearance", "verification", "label", "coi", "identity", "training",
                               "cleaning", "expiry", "em", "sterility"})),
    Rule("di.result_changed", D, CRIT, (
        # Not "value" or "reading": "pH value changed to within range after CO2 adjustment" is the process.
        "result|results|count|counts|entry|entries|outcome _{0,2} changed|altered|amended|edited|modified|updated|"
        "corrected|rewritten _{0,1} to _{0,1} pass|passing|passed|conform|conforming|compliant|acceptable|within|meet|"
        "meets",
        "changed|altered|amended|edited|modified _{0,2} to _{0,1} pass|passing|conform|conforming|compliant",
    ), "A result changed until it passes: falsified data unless a documented investigation shows why (critical)."),
    Rule("di.selective_reporting", D, CRIT, (
        "used|reported|recorded|took|kept|chose|picked|selected|entered|accepted _{0,1} the? better|best|higher|"
        "highest|lower|lowest|passing|nicer _{0,1} result|results|value|values|count|counts|reading|readings",
    ), "Repeating a test and keeping the result that passes is testing into compliance (critical).",
        exclude=("lower|lowest|higher|highest _{0,1} limit|limits|dilution|speed|setting|temperature",)),
    Rule("di.copied", D, CRIT, (
        "copied|copy|pasted|copy-pasted|duplicated|cloned _{0,3} from|over _{0,3} previous|another|other|last|"
        "earlier|prior|yesterday|batch|record|run|entry|sheet|colleague",
        "(copy and paste|copy-and-paste|copy paste|cut and paste)",
    ), "Results copied from another record: not original, possibly falsified (specs: critical)."),
)
