"""Out of specification: a result or value outside its limit (EU GMP Part I ch. 6.35; MHRA OOS guidance).

Numbers decide first: values.py compares a stated value with a stated limit ("viability 61%
(limit ≥70%)" is out, "viability 92%" alone is not). The word rules here catch what is said in
words ("OOS", "pH drifted", "count below target", "retest").
Negation: ruled out is no flag ("no OOS", "no retest needed", "pH within range" has no event
word at all). Severity: a release parameter (viability, CD3+, VCN, dose, transduction, potency,
endotoxin) is critical: the product may not meet its release specification; an in-process
value is major.
"""

from __future__ import annotations

from nlp_review.pipeline.rules.base import Rule
from nlp_review.pipeline.rules.words import IN_PROCESS_PARAMETERS, RELEASE_PARAMETERS, RELEASE_WORDS
from nlp_review.pipeline.types import Category, Severity

OOS, CRIT, MAJ = Category.OUT_OF_SPEC, Severity.CRITICAL, Severity.MAJOR
# Results with an upper limit only: below it is a pass ("endotoxin below limit").
UPPER_LIMITED = ("endotoxin|endotoxins|bioburden|particles|particle|particulates|cfu|mycoplasma|residual|residuals|"
                 "impurity|impurities|ammonia|ammonium|lactate|osmolality|beads|bead|hcp")
# Said in the direction of a pass, whatever the parameter: above a minimum, below a maximum.
PASSING_SIDE = (
    "above|over|exceeds|exceeded|exceeding _{0,2} minimum|min|lsl|lower",
    "below|under _{0,2} maximum|max|usl|upper",
    f"{UPPER_LIMITED} _{{0,5}} below|under|less|lower _{{0,1}} than? _{{0,2}} limit|limits|spec|specification|"
    "threshold|maximum|max|usl|alert|action|target",
)
PARAMETERS = f"{RELEASE_WORDS}|{IN_PROCESS_PARAMETERS}"
DIRECTION = ("low|lower|lowered|high|higher|below|under|above|over|exceeds|exceeded|exceeding|drifted|drift|drifting|"
             "dropped|drop|dropping|fell|falling|decreased|decreasing|declined|declining|increased|rising|rose|"
             "elevated|short|insufficient|poor|reduced|suboptimal|inadequate|failed|failing|unacceptable")

RULES: tuple[Rule, ...] = (
    Rule("oos.stated", OOS, MAJ, (
        "oos|out-of-spec|out-of-specification|nonconforming|non-conforming|nonconformance|non-conformance",
        "out of spec|specification|specifications|limit|limits|range|tolerance|acceptance",
        "outside _{0,2} spec|specification|limit|limits|range|tolerance|acceptance|criteria|criterion",
        "not within|in _{0,2} spec|specification|limit|limits|range",
        "does|did|do|not _{0,1} not? meet|conform|comply _{0,3} spec|specification|criteria|"
        "acceptance|limit|limits|requirements|release",
        "fails|failed|failing _{0,2} spec|specification|specifications|acceptance|criteria|release",
        "ipc|ipcs|in-process|assay|test|tests|qc|control|result|results|sample|check _{0,2} did|does|has|have not pass|"
        "passed",
        "failed to pass",
        "not|n't|failed|fail|unable _{0,1} to? _{0,1} reach|reached|achieve|achieved|meet|met|attain|attained|hit "
        "_{0,2} "
        "target|spec|specification|minimum|dose|criteria|limit|required|requirement|requirements",
        "lower|higher|less|greater|more|worse _{0,1} than _{0,2} expected|target|specified|required|limit|spec|"
        "specification|anticipated|predicted|normal|usual|allowed|acceptable|minimum|maximum",
    ), "A result is stated to be out of specification.", critical_if_near=RELEASE_PARAMETERS,
        unless_near=frozenset({"shipper", "transit", "transport", "courier", "incubator", "fridge", "freezer"})),
    Rule("oos.out_of_trend", OOS, MAJ, (
        "oot|out-of-trend|atypical|aberrant|anomalous", "unexpected|unusual result|results",
        "out of trend",
        "trending|trend|trends _{0,3} up|down|upwards|downwards|towards|toward|high|low|outside|away",
    ), "A result out of trend needs an investigation before it becomes out of specification."),
    Rule("oos.failed_control", OOS, MAJ, (
        "failed|fail|failure|fails _{0,2} ipc|ipcs|in-process|assay|test|qc|control|count|measurement|suitability",
        "ipc|ipcs|in-process|assay|qc _{0,3} failed|fail|failure|fails",
    ), "An in-process control or test failed.", critical_if_near=RELEASE_PARAMETERS,
        unless_near=frozenset({"daily", "balance", "scale", "alarm", "calibration", "sealer", "centrifuge"})),
    Rule("oos.retest", OOS, MAJ, (
        "retest|retests|retested|retesting|re-test|re-tested|re-testing|recount|recounted|re-count|re-counted|"
        "reanalysed|reanalyzed|re-analysed|resample|resampled|re-sample|re-sampled|remeasured|re-measured",
        "repeat|repeated _{0,1} test|count|assay|measurement|sample|sampling|analysis",
        "test|count|assay|measurement|counting _{0,2} repeated|redone|repeat",
        "result|results|value|reading _{0,2} rejected|invalidated|invalid|discarded|disregarded",
    ), "A retest or recount suggests a first result that did not meet expectations (MHRA OOS guidance)."),
    Rule("oos.release_parameter_word", OOS, CRIT, (
        f"{RELEASE_WORDS} _{{0,3}} {DIRECTION}",
        f"low|high|poor|reduced|elevated|insufficient|inadequate|suboptimal|short _{{0,2}} {RELEASE_WORDS}",
        "short of|below|under _{0,3} target|minimum|min|required _{0,1} dose",
    ), "A release parameter is stated to be off target: the product may fail its release specification.",
        exclude=("te|car|count _{0,1} high|higher|above|elevated", *PASSING_SIDE)),
    Rule("oos.in_process_word", OOS, MAJ, (
        f"{IN_PROCESS_PARAMETERS} _{{0,3}} {DIRECTION}",
        f"low|high|poor|reduced|elevated|insufficient|inadequate|suboptimal _{{0,2}} {IN_PROCESS_PARAMETERS}",
        "below|under|above|over|exceeds|exceeded|exceeding _{0,2} target|spec|specification|limit|limits|lsl|usl|"
        "minimum|maximum",
    ), "An in-process value is stated to be off target.",
        unless_near=frozenset({"alarm", "incubator", "freezer", "fridge", "shipper", "action", "alert", "co2", "ln2",
                               "nitrogen", "dewar", "level"}),
        critical_if_near=RELEASE_PARAMETERS, exclude=PASSING_SIDE),
)
