"""Contamination: sterility and aseptic risk (EU GMP Annex 1; Ph. Eur. 2.6.1, 2.6.7, 2.6.14).

Negation: an event ruled out is no flag ("no growth", "no leaks", "gloves intact, no tears",
"mycoplasma not detected"). A control left out is a flag (CHECK rules): "no EM plate taken",
"settle plates not exposed", "BSC not cleaned".
Severity: an event that may have let organisms into an open product is critical (sterility is a
release specification and a direct patient risk); a missing control is major (the aseptic
assurance of the session needs an investigation, no event is known).
"""

from __future__ import annotations

from nlp_review.pipeline.rules.base import Polarity, Rule
from nlp_review.pipeline.rules.words import MATERIAL_CONTAINERS, PRODUCT_VESSELS
from nlp_review.pipeline.types import Category, Severity

C, CRIT, MAJ = Category.CONTAMINATION, Severity.CRITICAL, Severity.MAJOR
BREACH = ("torn|tear|tears|teared|tore|ripped|rip|rips|hole|holes|holed|pinhole|pinholes|breach|breached|punctured|"
          "puncture|split|cut|nick|nicked|damaged|compromised|perforated|perforation")
PACKAGING = "overwrap|overwraps|carton|cartons|packaging|pouch|pouches|outer|box|boxes|shipper"
DAMAGE = ("crack|cracked|cracks|fractured|shattered|chipped|broken|burst|ruptured|punctured|torn|holed|perforated|"
          "pierced|split|damaged|dented|crushed")
NOT_PRODUCT_SEALS = ("bottle|bottles|vial|vials|ampoule|carton|box|kit|pouch|packaging|reagent|incubator|door|"
                     "freezer|fridge")
SEALS = "seal|seals|sealing|cap|closure|connection|connector|line|tubing|weld|welds"

RULES: tuple[Rule, ...] = (
    Rule("aseptic.glove_breach", C, CRIT, (
        f"glove|gloves|glv|gauntlet|gauntlets|glove-port|sleeve|sleeves _{{0,3}} {BREACH}",
        f"{BREACH} _{{0,4}} glove|gloves|gauntlet|gauntlets|glove-port",
        "glove|gloving breach|failure|integrity",
        # "Gloves not changed after tear": the tear is stated; what is denied is the remedy
        f"glove|gloves|gauntlet|gauntlets not|never _{{0,1}} changed|replaced|swapped|removed _{{0,2}} after|"
        f"following|despite _{{0,2}} {BREACH}",
    ), "A breached glove during aseptic processing may have exposed the product (EU GMP Annex 1 §7.14).",
        # The check said to be passed is no breach, and rules the category out there ("glove integrity
        # checked, no tears"); "glove integrity test failed" still is one.
        exclude=("glove|gloves integrity checked|ok|okay|intact|fine|good|verified|confirmed|passed|maintained|"
                 "satisfactory",
                 # taking gloves off is routine: "tore off the outer gloves and re-gloved"
                 "tore|ripped|rip|tear off|away")),
    Rule("aseptic.microbial_growth", C, CRIT, (
        "growth", "colonies|colony|cfus", "bacteria|bacterial|fungal|fungi|fungus|yeast|mould|mold|organisms|organism",
        "cocci|rods|bacilli",
        "microbial|microorganism|microorganisms|micro-organism|micro-organisms|microbe|microbes|biofilm|spores|"
        "sporulating|filamentous|fluffy|mycelium|mycelia|hyphae",
        "gpc|gpr|gnr|gnc|staph|staphylococcus|staphylococci|streptococcus|bacillus|aspergillus|penicillium|candida|"
        "pseudomonas|micrococcus|cutibacterium|propionibacterium|kocuria|corynebacterium|enterococcus|klebsiella",
        "(gram-positive|gram-negative|gram positive|gram negative|e. coli|e.coli)",
    ), "Microbial growth in a product, sample or grade A plate is a sterility failure until shown otherwise.",
        exclude=("cell|cells|culture|poor|good|slow|fast|normal|expected growth", "growth rate|curve|factor|factors|"
                 "phase|kinetics|profile|medium|media|promotion", "growth promotion test|testing")),
    Rule("aseptic.positive_test", C, CRIT, (
        "sterility|bact|bactalert|bottle|bottles|culture|cultures|gram|mycoplasma|endotoxin|lal|"
        "aerobic|anaerobic|micro|microbiology|pcr|bactalert|bacterial|fungal|qpcr|rapid|mycoalert _{0,7} positive|"
        "detected|flagged|flag|fail|failed|failure|present|found|contaminated|oos|reactive|alarmed|signalled|signaled",
        "positive|detected|reactive|flagged _{0,2} mycoplasma|sterility|culture|bottle|gram|endotoxin|bactalert",
        "returned|gave|showed|reported|yielded|came|turned _{0,2} back? _{0,1} a? positive|reactive|detected",
        "(sterility|mycoplasma|endotoxin|bacterial|fungal) (failure|positive|positivity|hit)",
        # a result said to be too high ("endotoxin above the limit", "endotoxin result high")
        "endotoxin|endotoxins|lal|bioburden _{0,2} > limit|spec|specification|al|action|alert|usl",
        "endotoxin|endotoxins|lal|bioburden _{0,2} result|level|value? _{0,1} high|higher|elevated|above|over|"
        "exceeded|exceeds|exceeding|raised|increased",
        # named as a contamination, or as suspected ("possible mycoplasma", "suspected endotoxin")
        "mycoplasma|endotoxin|bacterial|fungal|yeast|mould|mold _{0,1} contamination|contaminated|infection|spike",
        "possible|suspected|suspect|suspicion|probable|likely|query|queried _{0,1} of? _{0,1} mycoplasma|"
        "endotoxin|bacterial|fungal",
    ), "A positive sterility, mycoplasma or endotoxin test is a release specification failure (Ph. Eur. 2.6.1/2.6.7)."),
    Rule("aseptic.turbidity", C, CRIT, (
        "turbid|turbidity|cloudy|cloudiness|hazy|haze|milky|murky|opaque|pellicle", "clumps floating",
    ), "A turbid or cloudy culture is a classic sign of microbial contamination."),
    Rule("aseptic.leak", C, CRIT, (
        "leak|leaks|leaking|leaked|leakage|leaky|dripping|drip|drips|seeping|seepage|weeping|oozing",
        "spill|spills|spilled|spilt|spillage|splash|splashed|splashes|splashing",
        f"{PRODUCT_VESSELS} _{{0,2}} wet|damp|moist",
        "drop|drops|droplet|droplets|splash _{0,2} culture|medium|media|product|cells|suspension",
        "culture|medium|media|product|suspension _{0,3} fell|dripped|spilled|spilt|splashed|leaked",
    ), "A leak or spill breaks the closed system and may let organisms in or product out (Annex 1 §8).",
        # looking for leaks is the check, not a finding: "all bags checked for leaks before freezing"
        exclude=("check|checked|checking|inspect|inspected|inspecting|examined|visually _{0,3} for _{0,4} "
                 "leak|leaks|leaking|leakage",)),
    Rule("aseptic.vessel_breach", C, CRIT, (
        f"crack|cracked|cracks|crazing|fracture|fractured|hairline|shattered|chipped|broken|burst|ruptured|punctured|"
        f"split _{{0,7}} {PRODUCT_VESSELS}",
        f"pinhole|pinholes|hole|holes _{{0,4}} {PRODUCT_VESSELS}",
        f"{PRODUCT_VESSELS} _{{0,3}} crack|cracked|cracks|fractured|shattered|chipped|broken|burst|ruptured|"
        "punctured|torn|holed|perforated|pierced",
    ), "A cracked or broken product container is an open container.",
        # A punctured overwrap or outer carton is the packaging (material.damaged), not the container;
        # tied to the damaged word, so that "bag cracked, placed in outer box" still counts.
        exclude=(f"{PACKAGING} _{{0,2}} {DAMAGE}", f"{DAMAGE} _{{0,2}} {PACKAGING}",
                 # looking for holes is the check, not a finding: "checked all bags for pinholes"
                 "check|checked|checking|inspect|inspected|inspecting|look|looked|looking|examined|visual|visually "
                 "_{0,3} for _{0,1} pinhole|pinholes|hole|holes",
                 "hole|holes punch|punched|puncher")),
    Rule("aseptic.open_exposure", C, CRIT, (
        "open|opened _{0,1} container|vessel|flask|bottle|bag|tube|vial",
        "uncapped|unsealed|unclamped|uncovered|unplugged|decapped",
        "lid|cap|caps|lids|plug|cover off|removed|left|missing|open",
        f"left|leaving|unattended _{{0,5}} {PRODUCT_VESSELS} open|opened|uncapped",
        "(left open|lid-off|cap-off|sash up|sash raised)",
        "cap|lid|connector|spike|needle|tip|pipette|stopper|luer|screwcap _{0,3} dropped|fell|touched|contacted",
        "dropped _{0,3} cap|lid|connector|spike|needle|tip|pipette|stopper|luer",
        "touched|contacted|brushed _{0,4} inside|open|sterile|rim|neck|interior|product",
        "sleeve|gown|hand|hands|arm|wrist|cuff|hair _{0,3} touched|contacted|over|above|inside|brushed",
        "opened|open|exposed|uncapped|manipulated|handled|decapped|unsealed _{0,3} outside _{0,2} the? "
        "bsc|hood|cabinet|isolator|grade|cleanroom|laminar|lafu|lfh|first",
        "dropped|fell|touched|contacted|placed|rolled _{0,3} on|onto|to|the _{0,1} floor|ground",
        "(first air) _{0,3} blocked|interrupted|obstructed|broken|disrupted",
        "reached|leaned|passed|hand|hands|arm|arms _{0,1} over|across _{0,2} open|opened|uncapped|product|exposed",
    ), "Product or sterile surfaces exposed outside first air in grade A risk contamination (Annex 1 §8.x)."),
    Rule("aseptic.closed_system_breach", C, CRIT, (
        "weld|welds|welding|seal|sealing|connection|connector|line|tubing _{0,2} failed|incomplete|broken|open|"
        "opened|leaking|leaked|parted|separated|disconnected",
        "open|exposed|opened _{0,1} to _{0,1} the? room|air|environment|atmosphere|grade",
        "disconnected|disconnection|broke|break _{0,2} sterile|closed|line|tubing|connection|system",
        "sterility|asepsis|aseptic|sterile _{0,5} compromised|breached|breach|lost|lapse|lapsed|broken|failure|"
        "violated|questionable",
        "compromised|breached|breach|lost|loss|lapse|break|violated _{0,2} of? _{0,1} sterility|asepsis|aseptic|"
        "sterile",
        "filter _{0,3} integrity|bubble|diffusion|forward|flow _{0,3} failed|fail|failure|fails|low|below|out",
    ), "The closed system was opened: product exposed outside grade A (EU GMP Annex 1 §8.x, closed systems).",
        # A reagent bottle's broken seal is the material's packaging (material.damaged), an incubator
        # door's seal the equipment's; tied to the seal itself, so that "weld failed, bag back to the
        # incubator" still counts.
        exclude=(f"{NOT_PRODUCT_SEALS} _{{0,2}} {SEALS}", f"{SEALS} _{{0,2}} of|on _{{0,1}} the? {NOT_PRODUCT_SEALS}")),
    Rule("aseptic.contamination_reported", C, CRIT, (
        "contamination|contaminated|contaminant|contaminants|cross-contamination|infected|infection|septic|"
        "nonsterile|non-sterile|unsterile",
    ), "Contamination is stated.", exclude=("contamination control|prevention|risk|strategy|ccs",
                                            # a cell impurity of the product (a quality attribute), not microbes
                                            "granulocyte|granulocytes|platelet|platelets|rbc|rbcs|erythrocyte|"
                                            "erythrocytes|monocyte|monocytes|neutrophil|neutrophils|myeloid|tumour|"
                                            "tumor|cellular _{0,2} contamination",
                                            "red|b|nk|tumour|tumor _{0,1} blood? cell|cells contamination",
                                            "non-sterile|nonsterile gloves|area|side|zone|corridor|room")),
    Rule("aseptic.em_action_limit", C, CRIT, (
        "action _{0,1} limit|limits|level|levels _{0,2} exceeded|exceed|exceeds|exceeding|excursion|breach|above|"
        "over|reached|hit|breached|>|failed",
        "exceeded|exceeding|exceeds|above|over|> _{0,2} action _{0,1} limit|limits|level",
        "em|environmental|monitoring|viable|non-viable|particle|particles _{0,2} excursion|excursions|failure|oos",
    ), "An environmental monitoring result above the action limit in grade A/B calls the session's asepsis "
       "into question (Annex 1 §9.x)."),
    Rule("aseptic.em_alert_limit", C, MAJ, (
        "alert _{0,1} limit|limits|level|levels _{0,2} exceeded|exceed|exceeds|exceeding|excursion|breach|above|"
        "over|reached|hit",
        "exceeded|exceeding|exceeds|above|over|> _{0,2} alert _{0,1} limit|limits|level",
    ), "An environmental monitoring result above the alert limit needs a trend review (Annex 1 §9.x)."),
    Rule("aseptic.em_sampling", C, MAJ, (
        "em|environmental|settle|fingertip|finger|glove|contact|air|surface|active _{0,1} plate|plates|print|prints|"
        "sample|samples|sampling|monitoring|swab|swabs",
        "settle|fingertip|contact plate|plates",
    ), "Environmental monitoring was not performed for an aseptic session (Annex 1 §9.x): the session's asepsis "
       "is undocumented.", polarity=Polarity.CHECK,
        exclude=("sterility|endotoxin|qc|mycoplasma sample|samples",)),
    Rule("aseptic.cleaning", C, MAJ, (
        "bsc|cabinet|hood|isolator|suite|room|surfaces|surface|area|workspace _{0,2} cleaned|wiped|sanitized|"
        "sanitised|disinfected|decontaminated",
        "cleaning|disinfection|sanitization|sanitisation|decontamination|wipe-down",
    ), "Cleaning or disinfection before aseptic work was not done (Annex 1 §4.x).", polarity=Polarity.CHECK),
    Rule("aseptic.sterility_sampling", C, MAJ, (
        "sterility|mycoplasma|myco _{0,1} sample|samples|sampling|bottle|bottles|test|testing _{0,5} taken|sent|done|"
        "inoculated|performed|collected|submitted",
    ), "A sterility or mycoplasma sample was not taken or sent: the batch cannot show it meets its specification "
       "for microbial contamination.",
        polarity=Polarity.CHECK),
    # An event, not a check: "sterility tested negative" must not read as a negated test.
    Rule("aseptic.sterility_not_tested", C, MAJ, (
        "sterility not|never tested|checked|done|performed",
    ), "Sterility was not tested: the batch cannot show it meets its sterility specification.",
        unless_near=frozenset({"yet", "pending", "scheduled", "until", "til", "till", "tomorrow", "tmrw"})),
    # A closure that no longer seals: "vial cap was loose after thaw". Vented flask caps are loosened
    # on purpose for gas exchange.
    Rule("aseptic.closure_loose", C, CRIT, (
        "lid|cap|caps|lids|closure|closures|screwcap|stopper _{0,2} loose",
        "loose cap|caps|lid|lids|closure|closures|screwcap|stopper",
    ), "A container closure found loose may have let the product be contaminated.",
        unless_near=frozenset({"gas", "exchange", "vent", "vented", "venting", "quarter", "turn", "intentionally"})),
    Rule("aseptic.material_container_breach", C, CRIT, (
        f"{MATERIAL_CONTAINERS} _{{0,2}} leaking|leaked|dripping|open|unsealed",
    ), "A leaking or open material container used in aseptic processing may bring contamination in."),
    Rule("aseptic.particle_count", C, MAJ, (
        "particle|particles|particulate|non-viable|nonviable _{0,2} count|counts|counter|monitoring|monitor _{0,3} "
        "recorded|exceeded|exceeding|high|elevated|above|spike|spiked|spiking|excursion|alarm|alarmed|alert|over|"
        "rose|increased|breach",
        "particle|particles|particulate _{0,2} excursion|spike|spikes|alarm|alarms|exceedance",
    ), "A non-viable particle count out of its grade's limit calls the session's asepsis into question "
       "(EU GMP Annex 1 §9.x).",
        # "counts within alert/action levels": the passing side of the limits
        exclude=("within|below|under the? alert|action",)),
    Rule("aseptic.gown_breach", C, MAJ, (
        f"gown|gowns|coverall|coveralls|suit|mask|hood|goggles|overshoe|overshoes|boot|boots _{{0,3}} {BREACH}|"
        "open|unzipped|slipped|exposed|gap",
        "skin|hair|face _{0,2} exposed|showing|visible",
    ), "A breach of cleanroom garments may have shed particles and organisms into grade A/B (Annex 1 §7.x)."),
)
