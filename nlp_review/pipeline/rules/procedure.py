"""Procedure: work not done as the master batch record says (EU GMP Part I ch. 4 and 5).

Negation: ruled out is no flag ("no deviation", "step 19 not skipped", "hold time within
limits"). A required step stated as not done is a flag (CHECK: "step 12 not performed",
"line clearance not done").
Severity: major (the impact on the product needs an investigation); a repeated step with a
stated reason is minor. Omitted sterility or identity controls are raised by their own rules.
"""

from __future__ import annotations

from nlp_review.pipeline.rules.base import Polarity, Rule
from nlp_review.pipeline.types import Category, Severity

P, MAJ, MIN = Category.PROCEDURE, Severity.MAJOR, Severity.MINOR
DOCUMENT = ("(mbr|sop|sops|procedure|protocol|instructions|instruction|batch record|record|master|wi|form|method|bom|"
            "bill of materials)")

RULES: tuple[Rule, ...] = (
    Rule("procedure.step_skipped", P, MAJ, (
        "skipped|skip|skipping|omitted|omit|omission|bypassed|bypass|missed|forgot|forgotten|overlooked",
        "left out",
    ), "A step of the master batch record was not done."),
    Rule("procedure.step_done", P, MAJ, (
        "(step|steps|stage|wash|spin|incubation|addition|filtration|mixing|sampling|count|clearance|line clearance) "
        "_{0,3} performed|done|completed|carried|executed|followed|started",
        "(performed|done|completed|carried out) _{0,1} step|stage",
    ), "A step of the master batch record is stated not to have been done.", polarity=Polarity.CHECK,
        unless_near=frozenset({"label", "coi", "identity", "verification", "verified", "em", "settle", "sterility",
                               "cleaning", "cleaned", "calibration", "expiry", "retest", "recount", "signature"})),
    Rule("procedure.order", P, MAJ, (
        "out of order|sequence",
        "wrong|incorrect|reverse|reversed|different|inverted _{0,2} order|sequence",
        "reverse|before|after _{0,4} instead of _{0,2} after|before",
    ), "Steps done out of the order the master batch record gives."),
    Rule("procedure.time_limit", P, MAJ, (
        "hold|holding|storage|incubation|exposure|processing|contact|transfer|out-of-incubator|thaw _{0,1} "
        "time|times|period|limit _{0,3} exceeded|exceeds|exceeding|over|beyond|too|breached|missed|expired|out",
        "exceeded|exceeding|beyond|over _{0,3} hold|holding _{0,1} time|limit",
        "incubation|spin|wash|step|exposure|stimulation|activation|culture _{0,3} shortened|extended|prolonged|"
        "too|cut",
    ), "A time limit of the master batch record was not met."),
    Rule("procedure.wrong_quantity", P, MAJ, (
        "wrong|incorrect|excess|extra|insufficient|inaccurate|too _{0,1} volume|volumes|amount|concentration|"
        "dilution|dose|quantity|ratio|speed|rpm|setting|settings|program|programme|temperature|duration|time|"
        "moi|much|little",
        "overfilled|underfilled|over-filled|under-filled|overdosed|underdosed",
    ), "A quantity or setting differs from the master batch record."),
    Rule("procedure.instead_of", P, MAJ, (
        "(instead of|rather than|in place of|in lieu of)",
    ), "Something other than the master batch record says was done.",
        unless_near=frozenset({"reagent", "reagents", "lot", "material", "vial", "bottle", "kit", "supplier"})),
    Rule("procedure.untrained", P, MAJ, (
        "untrained|unqualified|uncertified",
        "not|n't _{0,2} trained|qualified|certified|signed-off|authorised|authorized",
        "(training|qualification|gowning qualification) _{0,2} expired|overdue|lapsed|missing|incomplete|outstanding",
    ), "Work done by a person not trained on the procedure (EU GMP Part I 2.8)."),
    Rule("procedure.human_error", P, MAJ, (
        "(in error|by mistake|mistakenly|accidentally|inadvertently|erroneously|unintentionally)",
    ), "A step was done wrongly by mistake: the impact on the product needs an assessment."),
    Rule("procedure.repeated", P, MIN, (
        "repeated|repeat|redone|re-done|re-did|redid|respun|re-spun|re-washed|rewashed|reperformed|re-performed",
        "(second attempt|done again|performed again|did again)",
    ), "A step was repeated: the reason should be in the record.",
        exclude=("repeat|repeated test|count|assay|measurement|sample|sampling|analysis",
                 "test|count|assay|measurement|counting _{0,2} repeated|redone|repeat")),
    Rule("procedure.unauthorised_change", P, MAJ, (
        "supervisor|supervisors|lead|manager|qa|qp|engineer _{0,2} word|say-so|"
        "instruction|instructions|instructed|verbal|verbally|request|told|advice|approval",
        "verbal|verbally|phone|oral|orally _{0,2} instruction|instructions|instructed|agreed|approved|approval|ok",
        "verbal|verbally",
        "on the? word of",
    ), "Work changed on a verbal instruction instead of through the deviation or change system."),
    Rule("procedure.not_as_written", P, MAJ, (
        f"not|n't _{{0,1}} per|as|according|following|followed _{{0,2}} {DOCUMENT}",
        f"contrary|deviated|deviation|deviations|deviating|departed|departure|different|differs|differed _{{0,2}} "
        f"to|from _{{0,2}} {DOCUMENT}",
        f"{DOCUMENT} _{{0,1}} says|states|requires|specifies|specified|required|stated",
        "deviation|deviations|deviated|unplanned|dev",
        "superseded|obsolete|outdated|withdrawn|old _{0,1} version|revision|sop|form",
    ), "Work was not done as the master batch record or SOP says.",
        exclude=("deviation|deviations report|form|number|no|#|ref|reference|system|log",)),
)
