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

P, CRIT, MAJ, MIN = Category.PROCEDURE, Severity.CRITICAL, Severity.MAJOR, Severity.MINOR
DOCUMENT = ("(mbr|sop|sops|procedure|protocol|instructions|instruction|batch record|record|master|wi|form|method|bom|"
            "bill of materials)")

RULES: tuple[Rule, ...] = (
    Rule("procedure.step_skipped", P, MAJ, (
        "skipped|skip|skipping|omitted|omit|omission|bypassed|bypass|missed|forgot|forgotten|overlooked",
        "left out",
    ), "A step of the master batch record was not done."),
    Rule("procedure.step_done", P, MAJ, (
        "(step|steps|stage|wash|spin|incubation|addition|filtration|mixing|sampling|count|clearance|line clearance|"
        "feed|feeding|harvest|rinse|flush|prime|priming|purge|transfer|thaw|split) "
        "_{0,5} performed|done|completed|complete|carried|executed|followed|started|finished|conducted|undertaken|"
        "recorded|documented",
        "(performed|done|completed|carried out|finished|conducted) _{0,1} step|stage",
    ), "A step of the master batch record is stated not to have been done.", polarity=Polarity.CHECK,
        # "steps not performed out of order": what is denied is the disorder, not the steps
        exclude=("performed|done|executed|completed|carried|conducted _{0,1} out? out of order|sequence",
                 "performed|done|executed|completed|carried|conducted _{0,1} out-of-order|out-of-sequence"),
        unless_near=frozenset({"label", "coi", "identity", "verification", "verified", "em", "settle", "sterility",
                               "cleaning", "cleaned", "calibration", "expiry", "retest", "recount", "signature"})),
    Rule("procedure.released_before_results", P, CRIT, (
        "infused|released|shipped|dispatched|administered|issued|transfused _{0,4} before|prior|ahead _{0,1} to|of? "
        "_{0,2} sterility|qc|release|endotoxin|mycoplasma|gram|test|tests|testing|result|results",
    ), "The product left or reached the patient before its release results were known: the release specification "
       "was not shown to be met (critical)."),
    Rule("procedure.order", P, MAJ, (
        "out of order|sequence",
        "wrong|incorrect|reverse|reversed|revere|different|inverted|opposite|swapped|switched|changed _{0,4} "
        "order|sequence",
        "order|sequence _{0,3} reversed|swapped|inverted|switched|changed|mixed|wrong|incorrect",
        "reverse|before|after _{0,4} instead of _{0,2} after|before",
        "(ahead of|prior to|before) _{0,4} (instead of|rather than)",
        "(out-of-order|out-of-sequence|wrong-order)",
    ), "Steps done out of the order the master batch record gives."),
    Rule("procedure.time_limit", P, MAJ, (
        "hold|holding|storage|incubation|exposure|processing|contact|transfer|out-of-incubator|thaw _{0,1} "
        "time|times|period|limit _{0,3} exceeded|exceeds|exceeding|over|beyond|too|breached|missed|expired|out",
        "exceeded|exceeding|beyond|over _{0,3} hold|holding _{0,1} time|limit",
        "incubation|spin|wash|step|exposure|stimulation|activation|culture _{0,3} shortened|extended|prolonged|"
        "too|cut",
        "exceeded|exceeding|overran|overrun|over|beyond|longer by # minutes|hours|min|h|days|seconds",
        "# minutes|hours|min|h|days _{0,2} over|beyond|past|longer|late|overdue|more _{0,2} limit|allowed|maximum|max|"
        "permitted|specified|window|time",
        "longer|shorter _{0,1} than _{0,3} allowed|permitted|specified|required|stated|validated|defined|mbr|sop|"
        "maximum|minimum|limit",
        "outside|missed|beyond _{0,2} the? (time window|processing window|window|time limit|timeframe|time frame)",
        "too early|late|long|soon|short",
        "hold|holding|storage|incubation|exposure|processing|thaw _{0,1} time|times|limit|limits|window _{0,1} "
        "not|never respected|met|kept|observed|adhered|followed|maintained|honoured|honored",
        "premature|prematurely|overtime|overran|overrun",
        "(feed|feeding|harvest|addition|wash|sampling|split|media change|medium change|passage|thaw) _{0,2} "
        "delayed|late|postponed|missed|early|overdue",
    ), "A time limit of the master batch record was not met."),
    Rule("procedure.wrong_quantity", P, MAJ, (
        "wrong|incorrect|excess|extra|insufficient|inaccurate|too _{0,1} volume|volumes|amount|concentration|"
        "dilution|dose|quantity|ratio|speed|rpm|setting|settings|program|programme|temperature|duration|time|"
        "moi|much|little",
        "overfilled|underfilled|over-filled|under-filled|overdosed|underdosed",
        "wrongly|incorrectly|improperly|inaccurately|erroneously _{0,2} added|used|set|programmed|performed|done|"
        "selected|calculated|diluted|prepared|centrifuged|spun|mixed|incubated|thawed|loaded|connected|"
        "transferred|filled|pipetted|dispensed|weighed|measured|assembled|installed|seeded",
        "added|used|set|programmed|performed|done|selected|calculated|diluted|prepared|centrifuged|spun|mixed|"
        "incubated|thawed|loaded|connected|transferred|filled|pipetted|dispensed|weighed|assembled|seeded _{0,2} "
        "wrongly|incorrectly|improperly|inaccurately|wrong",
        "miscalculated|miscalculation|mis-calculated|misread|mis-read|misprogrammed|mis-programmed|mis-set|"
        "miscounted|mispipetted|misloaded",
    ), "A quantity or setting differs from the master batch record."),
    Rule("procedure.instead_of", P, MAJ, (
        "(instead of|rather than|in place of|in lieu of)",
    ), "Something other than the master batch record says was done.",
        unless_near=frozenset({"reagent", "reagents", "lot", "material", "vial", "bottle", "kit", "supplier", "read",
                               "reads", "reading", "showed", "displayed", "indicated"})),
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
    ), "Work was not done as the master batch record or SOP says."),
    Rule("procedure.deviation", P, MAJ, (
        "deviation|deviations|deviated|unplanned|dev",
    ), "A deviation from the master batch record is stated.",
        exclude=("deviation|deviations report|form|number|no|#|ref|reference|system|log",),
        # An equipment programme that deviated is an equipment event (equipment.profile).
        unless_near=frozenset({"profile", "program", "programme", "programmed", "cycle", "curve", "ramp"})),
    Rule("procedure.superseded_document", P, MAJ, (
        "superseded|obsolete|outdated|withdrawn|retired|old|older|previous|wrong|incorrect|unapproved|"
        "uncontrolled|draft _{0,2} version|revision|rev|edition|copy|sop|form|mbr|procedure|instruction|"
        "instructions|document|template|printout",
        "version|revision|rev|sop|form|mbr|procedure|document|template _{0,4} superseded|obsolete|withdrawn|retired|"
        "outdated|uncontrolled",
        "superseded|obsolete|uncontrolled copy",
        "(had been|has been|have been|was|is|now|already) superseded|obsolete|withdrawn|retired|outdated",
    ), "Work done to a document that is not the current approved version (EU GMP Part I 4.3)."),
    Rule("procedure.person_absent", P, MAJ, (
        "(second|2nd|other|another|independent) (operator|person|verifier|witness|checker|analyst) _{0,3} "
        "left|absent|away|leave|departed|missing|unavailable|busy|called|elsewhere",
        "left|exited|departed|leaving _{0,1} the? room|suite|area|cleanroom|lab|laboratory|bsc|grade _{0,3} "
        "before|during|mid|midway|partway|while|until",
        "verifier|witness|checker|supervisor _{0,2} not|n't _{0,1} present|available|there|in",
        "(without|no) (second|2nd|independent) (operator|person|verifier|witness|checker) _{0,1} present?",
        "(performed|done|worked|working|processed|processing|carried out) (alone|solo|single-handed|single-handedly|"
        "unsupervised|unaccompanied|without supervision)",
        "trainee|trainees|apprentice _{0,4} alone|unsupervised|unaccompanied|solo|without",
    ), "A step needing two people or supervision was done without them (EU GMP Part I 2.x, 4.x)."),
    Rule("procedure.timer", P, MAJ, (
        "timer|stopwatch|countdown|clock _{0,4} started|set|reset|running|activated|stopped",
    ), "The time of a timed step was not measured.", polarity=Polarity.CHECK),
    Rule("procedure.line_clearance", P, MAJ, (
        "(line clearance|line-clearance|room clearance|area clearance|clearance check|line clearance check)",
    ), "Line clearance was not done before the step (EU GMP Part I 5.35).", polarity=Polarity.CHECK),
    Rule("procedure.incomplete", P, MAJ, (
        "step|steps|stage|wash|spin|incubation|addition|filtration|mixing|feed|harvest|clearance _{0,3} "
        "incomplete|unfinished|partial|partially|abandoned",
        "(half done|half-done|part done|part-done)",
    ), "A step was not completed as the master batch record says.",
        unless_near=frozenset({"signature", "record", "form", "page", "field", "entry"})),
    Rule("procedure.unauthorised", P, MAJ, (
        "unauthorised|unauthorized|unapproved|undocumented|unplanned|unscheduled|improvised|ad-hoc|makeshift "
        "_{0,2} change|changes|modification|modifications|deviation|method|step|steps|procedure|workaround|"
        "adjustment|adjustments|intervention|interventions|wash|spin|feed|addition|sample",
        "workaround|work-around|improvised|improvise|improvising",
        "(ad hoc|on the fly|off-script|off script)",
        "(additional|extra) (step|wash|spin|centrifugation|feed|addition|passage|split|incubation|intervention)",
    ), "Work changed outside the master batch record and the change system (EU GMP Part I 1.4, 5.x)."),
    Rule("procedure.not_followed", P, MAJ, (
        f"did|does|do|was|were _{{0,1}} not|n't _{{0,2}} follow|followed|adhere|comply|complied|meet _{{0,3}} "
        f"{DOCUMENT}",
        f"failed|failure|fail _{{0,1}} to _{{0,1}} follow|adhere|comply _{{0,3}} {DOCUMENT}",
        f"(not in accordance with|not in line with|not in compliance with|non-compliant with|noncompliant with|"
        f"in breach of|in violation of) _{{0,2}} {DOCUMENT}",
        "non-compliance|noncompliance|non-compliant|noncompliant|non-adherence|nonadherence",
        "breach|breaches|violation|violations of gmp|sop|mbr|procedure|gdp",
    ), "Work was not done as the master batch record or SOP says."),
)
