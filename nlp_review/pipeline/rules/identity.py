"""Identity: the chain of identity and custody from donor to patient (EC GMP for ATMPs 2017 §5, §10;
ISBT 128; FACT-JACIE).

Negation: ruled out is no flag ("label verified, matches COI", "no labelling discrepancies").
A missing identity check is a flag, and a "does not match" is a mismatch (CHECK rules: "label not
checked", "COI not verified", "DIN does not match").
Severity: anything that may put one patient's cells into another patient, or a product whose
identity was not confirmed, is critical (direct harm); custody events (late courier, missing
logger, shipping temperature, illegible label) are major.
"""

from __future__ import annotations

from nlp_review.pipeline.rules.base import Polarity, Rule
from nlp_review.pipeline.rules.words import IDENTITY_NOUNS
from nlp_review.pipeline.types import Category, Severity

ID, CRIT, MAJ = Category.IDENTITY, Severity.CRITICAL, Severity.MAJOR
ID_ONLY = "label|labels|labeling|id|ids|identity|identifier|identifiers|coi|din|dins|wristband|barcode|isbt|name|dob"
SHIP = "shipper|shipping|transit|transport|shipment|courier|delivery|consignment|package|box"

RULES: tuple[Rule, ...] = (
    Rule("identity.mismatch", ID, CRIT, (
        f"{IDENTITY_NOUNS} _{{0,4}} mismatch|mismatched|mis-match|discrepancy|discrepancies|discrepant|inconsistent|"
        "inconsistency|differs|differ|different|≠|conflict|conflicts|wrong|incorrect|mislabeled|misidentified|error|"
        "errors|mistake|mistakes",
        f"mismatch|mismatched|mis-match|discrepancy|discrepancies|discrepant|inconsistent|wrong|incorrect|"
        f"conflicting _{{0,2}} {ID_ONLY}|patient|patients|bag|bags",
        "mix-up|mixup|mix|mixed|swap|swapped|switched|interchanged|transposed|misidentified|mislabeled|misidentification|"
        "mislabel|mislabels|mislabelled|mislabeling|mislabelling|misassigned",
        # Material meant for one patient used for another: "vector reserved for patient 12 instead of patient 14".
        "instead of _{0,1} patient|patients|pt|pts|donor|coi|din",
        "vs|versus|≠ _{0,1} pt|patient|coi|din",
        f"differs|differ|differed|different|disagrees|disagree|inconsistent|conflicts _{{0,1}} from|to|with _{{0,3}} "
        f"{ID_ONLY}|patient|traveller|traveler|order|requisition|wristband",
    ), "Identifiers that disagree: the chain of identity is broken until shown otherwise (critical).",
        exclude=("mix|mixed|mixing (well|gently|thoroughly|by|inversion|cells|medium|bag|content|contents|up and)",
                 "different|wrong|incorrect lot|lots|reagent|medium|volume|time|step|order",
                 "label printer _{0,2} error|errors")),
    Rule("identity.match", ID, CRIT, (
        f"{ID_ONLY}|patient|bag|bags|product _{{0,4}} match|matches|matched|matching|agree|agrees|agreed|"
        "correspond|corresponds|corresponded|consistent|identical|same",
        f"match|matches|matched|matching|agree|agrees|correspond|corresponds _{{0,3}} {ID_ONLY}|patient|traveller|"
        "order|record|request|requisition",
    ), "Identifiers stated not to match: the chain of identity is broken (critical).", polarity=Polarity.CHECK),
    Rule("identity.check", ID, CRIT, (
        f"{ID_ONLY}|patient _{{0,3}} check|checks|checked|verified|verification|verify|confirmed|confirm|"
        "confirmation|completed|reconciled|scanned|read|cross-checked|crosschecked|witnessed|compared",
        f"check|checked|verified|verify|confirmed|confirm|scanned|reconciled|compared|cross-checked _{{0,2}} "
        f"{ID_ONLY}|patient",
        "chain of identity|custody _{0,2} check|checks|verification|confirmation|reconciliation",
    ), "An identity check was not done: the product's identity is unconfirmed (critical).",
        polarity=Polarity.CHECK),
    Rule("identity.labelled", ID, CRIT, (
        "bag|bags|cryobag|cryobags|tube|tubes|sample|samples|vial|vials|syringe|syringes|aliquot|aliquots|product|"
        "container|containers _{0,3} labelled|labeled",
    ), "A product or sample not labelled when it was made: its identity rests on memory (critical).",
        polarity=Polarity.CHECK),
    Rule("identity.unlabeled", ID, CRIT, (
        "unlabeled|unlabelled|unidentified|unmarked|anonymous|nameless",
        "no|without|missing _{0,2} label|labels|identification|identifier|id|barcode|din|coi",
        "label|labels _{0,2} missing|absent|fell|came|detached|removed|lost|peeled|off|blank",
    ), "A product or sample without identification (critical).",
        exclude=("no label|labeling|labels|identification issue|issues|problem|problems|error|errors|discrepancy|"
                 "discrepancies|concern|concerns|change|changes",
                 # "no missing labels": the absence is what is denied
                 "no|not|nothing|none missing|absent|lost|detached")),
    Rule("identity.co_processing", ID, CRIT, (
        "two|2|multiple|both|several|three|second|another|other _{0,1} patients|pts|patient|"
        "donors|donor _{0,6} same|one|single|bsc|cabinet|hood|isolator|simultaneously|together|concurrently|"
        "room|suite|incubator|time|at",
        "more than one patient|donor",
    ), "Material of more than one patient handled at once: risk of mix-up (EC GMP ATMP 9.x, line clearance).",
        exclude=("one patient|donor only", "only one patient|donor")),
    Rule("identity.relabeled", ID, CRIT, (
        "relabeled|relabelled|re-labeled|re-labelled|relabel|re-label|relabeling|handwritten|hand-written|overlabeled",
        "labeled|label|labels|written _{0,1} by hand",
    ), "A label made or changed outside the controlled labelling process (critical)."),
    Rule("identity.custody_delay", ID, MAJ, (
        f"{SHIP}|collection|apheresis|product|shipper _{{0,4}} late|later|delayed|delay|overdue|missed|lost|held|"
        "stuck|rerouted", f"{SHIP}|collection|apheresis|product _{{0,2}} not arrived",
        f"late|delayed|delay|missed|lost _{{0,2}} {SHIP}|collection|arrival|pickup|pick-up|handover",
    ), "A custody hand-off was late or lost: time out of controlled storage needs an assessment.",
        exclude=("delay|delayed _{0,1} start|harvest|feeding|spin",)),
    Rule("identity.logger", ID, MAJ, (
        "logger|loggers|datalogger|temptale",
    ), "The temperature record of a shipment is missing or incomplete (chain of custody).",
        polarity=Polarity.CHECK),
    Rule("identity.logger_missing", ID, MAJ, (
        "logger|loggers|datalogger|temptale|tempt _{0,3} missing|absent|lost|failed|fail|failure|stopped|empty|"
        "faulty|alarm|alarmed|unreadable|excursion",
    ), "The temperature record of a shipment is missing, failed or shows an excursion (chain of custody)."),
    Rule("identity.shipping_temperature", ID, MAJ, (
        f"{SHIP} _{{0,3}} temperature|temp|temperatures _{{0,3}} excursion|above|exceeded|rose|rise|high|warm|warmer|"
        "out|deviation|alarm|over",
        f"temperature|temp|excursion _{{0,4}} {SHIP}",
        f"{SHIP} _{{0,2}} excursion|warm|warmed|thawed|defrosted",
    ), "A shipment left its temperature range (chain of custody)."),
    Rule("identity.label_legibility", ID, MAJ, (
        "label|labels|labeling|barcode|din _{0,3} illegible|unreadable|smudged|smeared|faded|damaged|torn|peeling|"
        "peeled|partial|partly|partially|obscured|wet|unscannable|blurred|hard|difficult",
    ), "A label that cannot be read reliably (chain of identity)."),
    Rule("identity.duplicate_id", ID, CRIT, (
        "labeled|label|labels|labeling _{0,3} same|duplicate|identical _{0,2} number|id|din|identifier|barcode|label",
        "duplicate|duplicated _{0,1} label|labels|id|ids|din|barcode|identifier|bag",
    ), "Two products carry the same identifier: the chain of identity cannot tell them apart (critical)."),
    Rule("identity.manual_id", ID, CRIT, (
        "barcode|scan|scanner|scanning _{0,4} failed|fail|failure|error|unreadable|unscannable|not",
        "id|ids|din|coi|barcode|identifier _{0,3} typed|keyed|entered|written _{0,1} by? hand|manually",
    ), "The identifier was not read by the scanner: a manual entry breaks the verified chain of identity."),
    Rule("identity.custody_record", ID, MAJ, (
        "handover|hand-over|custody|transfer|receipt|dispatch _{0,4} signed|documented|recorded|logged|witnessed",
    ), "A custody hand-off was not documented (chain of custody).", polarity=Polarity.CHECK),
    Rule("identity.custody_gap", ID, MAJ, (
        "chain of custody _{0,3} gap|gaps|break|broken|incomplete|missing|interrupted",
        "custody gap|break",
        "unattended|unaccounted|unsecured|unsupervised",
    ), "A gap in the chain of custody."),
)
