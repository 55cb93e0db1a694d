"""Material: starting materials and reagents not as they should be (EU GMP Part I ch. 5; ATMP GMP ch. 7).

Negation: ruled out is no flag ("not expired", "packaging intact, no damage"). A missing
material check is a flag (CHECK: "expiry not checked", "no CoA").
Severity: material that was expired, quarantined or rejected and used in a patient's product is
critical (unapproved material in the product); wrong lot, damage, storage and substitution are
major (impact assessment needed).
"""

from __future__ import annotations

from nlp_review.pipeline.rules.base import Polarity, Rule
from nlp_review.pipeline.rules.words import MATERIAL_CONTAINERS
from nlp_review.pipeline.types import Category, Severity

M, CRIT, MAJ = Category.MATERIAL, Severity.CRITICAL, Severity.MAJOR
MATERIAL = ("lot|lots|reagent|reagents|material|materials|medium|media|buffer|serum|kit|vial|vials|bottle|bottles|"
            "stock|consumable|consumables|item|component|cytokine|vector|beads|solution|product")

RULES: tuple[Rule, ...] = (
    Rule("material.expired", M, CRIT, (
        "expired|out-of-date|outdated|lapsed",
        "out of date",
        "past|passed|beyond|after|exceeded _{0,2} its? (expiry|expiration|use-by|use by|shelf-life|shelf life|bud)",
        "expiry|expiration|use-by _{0,1} date? passed|exceeded|reached",
    ), "Expired material used in a patient's product: quality unknown, not approved for use.",
        unless_near=frozenset({"calibration", "training", "trained", "qualification", "certificate", "pm",
                               "maintenance", "service", "password", "login", "session", "time"})),
    Rule("material.unapproved", M, CRIT, (
        "quarantine|quarantined|rejected|unreleased|non-released|unapproved|blocked|recalled _{0,3} "
        f"{MATERIAL}|sticker|label|status|used|stock|area",
        f"{MATERIAL} _{{0,3}} quarantine|quarantined|rejected|unreleased|unapproved|blocked|recalled",
        "quarantine|quarantined",
        "not _{0,3} approved|qualified|released _{0,1} supplier|suppliers|vendor|vendors|list|material|materials|"
        "bom|source",
        "unapproved|unqualified|non-approved _{0,1} supplier|vendor|source",
    ), "Material not released by QA or not from an approved supplier was used (EU GMP Part I 5.27, 5.31)."),
    Rule("material.wrong_item", M, MAJ, (
        f"wrong|incorrect|different|unissued|unlisted|mislabeled _{{0,2}} {MATERIAL}",
        f"{MATERIAL} _{{0,2}} mix-up|mixup|swapped|wrong|incorrect|mismatch|mismatched",
        "lot|batch number|no|# _{0,2} mismatch|mismatched|discrepancy|wrong|incorrect",
    ), "A material other than the one issued for this batch was used or found.",
        unless_near=frozenset({"patient", "label", "coi", "din"})),
    Rule("material.damaged", M, MAJ, (
        "damaged|crushed|dented|torn|broken|punctured|compromised|cracked|opened|wet|split|deformed|leaking _{0,3} "
        f"{MATERIAL_CONTAINERS}|seal|seals|shipper|delivery|shipment|consignment|cap|closure",
        f"{MATERIAL_CONTAINERS}|seal|seals|closure _{{0,3}} damaged|crushed|dented|torn|broken|punctured|compromised|"
        "cracked|open|opened|split|deformed|missing",
        "damage|damages on? receipt|delivery|arrival",
        "damaged|crushed|dented|torn|broken|punctured|wet|leaking|opened|open|squashed _{0,2} on|at|upon receipt|"
        "delivery|arrival",
        f"{MATERIAL_CONTAINERS}|seal|seals|closure|shipment|delivery|consignment _{{0,6}} damaged|crushed|dented|torn|"
        "punctured|squashed|deformed",
    ), "Material packaging or closure damaged: the material's integrity needs an assessment."),
    Rule("material.storage", M, MAJ, (
        "stored|left|kept|found|placed|held|stood|sitting _{0,4} (room temperature|room temp|rt|ambient|bench|"
        "benchtop|outside the fridge|out of the fridge|outside the freezer|out of the freezer)",
        "(room temperature|rt|ambient) _{0,2} overnight|storage|stored|hours|days",
        "(thawed twice|refrozen|re-frozen|freeze-thaw|freeze thaw|thawed and refrozen)",
        "should|must have? be|been|stay|remain|remained _{0,2} refrigerated|frozen|stored|kept|fridge|freezer|2",
        "frozen|froze _{0,3} (should|instead|accidentally|by mistake)",
        "dry ice _{0,3} sublimated|gone|depleted|missing|melted|evaporated|empty|run",
        "storage|stored _{0,2} temperature|condition|conditions _{0,2} (excursion|exceeded|not met|wrong|incorrect)",
        "(temperature indicator|temp indicator|freeze indicator|shipping indicator|cold chain indicator) _{0,2} "
        "missing|absent|triggered|tripped|activated|red|unreadable",
        "without|no|missing _{0,1} (temperature indicator|temp indicator|freeze indicator|cold chain indicator|"
        "temperature record|temperature data)",
    ), "Material stored outside its labelled conditions."),
    Rule("material.substituted", M, MAJ, (
        "substituted|substitute|substitution|alternative|alternate|replacement|equivalent|generic _{0,3} "
        f"{MATERIAL}|supplier|vendor|manufacturer|brand|product",
        "substituted|substitution|replaced",
        "supplier|vendor|manufacturer _{0,2} changed|change|different|new",
    ), "A material was substituted: allowed only through change control.",
        unless_near=frozenset({"glove", "gloves", "gown", "mask"})),
    Rule("material.coa", M, MAJ, (
        "coa|coas|certificate|certificates|cofa|cert",
    ), "No certificate of analysis for a material used (EU GMP Part I 5.30).", polarity=Polarity.CHECK),
    Rule("material.coa_missing", M, MAJ, (
        "coa|coas|certificate|certificates|cert|cofa _{0,5} missing|unavailable|absent|outstanding|lacking",
        "coa|coas|certificate|certificates|cert|cofa _{0,6} not|n't _{0,1} available|provided|received|supplied|"
        "present|attached|on|found|issued|reviewed|approved",
        "missing|unavailable|absent|outstanding _{0,1} coa|coas|certificate|certificates",
    ), "No certificate of analysis for a material used (EU GMP Part I 5.30)."),
    Rule("material.expiry_check", M, MAJ, (
        "expiry|expiration|exp|use-by _{0,1} date|dates? _{0,2} checked|verified|confirmed|check",
        "checked|verified|confirmed _{0,1} expiry|expiration|use-by",
    ), "Expiry of a material was not checked before use.", polarity=Polarity.CHECK),
    Rule("material.complaint", M, MAJ, (
        "complaint|complaints|recall|recalled|withdrawn|defective",
        "supplier|vendor|manufacturer _{0,2} notification|alert|notice|warning",
    ), "A quality complaint or recall concerns a material used."),
    Rule("material.defect", M, MAJ, (
        "particles|particulate|particulates|fibres|fibers|debris|precipitate|precipitation|crystals|foreign",
        "discolored|discoloured|discoloration|discolouration|cloudy _{0,2} " + MATERIAL,
        "color|colour change|changed",
        "precipitated|crystallised|crystallized|clumped|separated|congealed|gelled",
    ), "A material shows a visible defect.",
        exclude=("particle|particles|particulate count|counts|counter|monitoring",),
        unless_near=frozenset({"flask", "bag", "culture", "product", "t75", "t175", "t225", "g-rex", "xuri", "cells",
                               "counter", "grade", "micron", "m3", "cubic", "non-viable", "room", "air"})),
    Rule("material.wrong_preparation", M, MAJ, (
        "prepared|reconstituted|diluted|made|formulated _{0,1} up? _{0,3} wrong|incorrect|incorrectly|"
        "wrongly|improperly|inaccurate|inaccurately|erroneously|double|half|twice",
        "wrongly|incorrectly|improperly|inaccurately _{0,1} prepared|reconstituted|diluted|formulated|made",
        "(wrong diluent|incorrect diluent|wrong solvent|wrong dilution|incorrect dilution)",
    ), "A reagent was prepared other than specified: the material used is not the one approved."),
    Rule("material.in_use_expiry", M, MAJ, (
        "beyond|past|passed|after|exceeded|outside _{0,2} its? (in-use|open|opened|once-opened|reconstituted|thawed|"
        "post-thaw|stability) _{0,1} (life|period|time|expiry|date|window|stability|shelf life)",
        "(in-use|open|opened|once-opened|post-thaw|stability) _{0,1} (life|period|time|expiry|window) _{0,2} "
        "exceeded|expired|passed|lapsed|over",
        "short-dated|short dated",
    ), "A material was used beyond its in-use period: its quality is not assured."),
)
