"""Word groups shared by the rule tables, written as pattern alternatives ("a|b|c")."""

from __future__ import annotations

PRODUCT_VESSELS = ("flask|flasks|bag|bags|vessel|vessels|g-rex|grex|t75|t175|t225|t25|culture|tube|tubes|bioreactor|"
                   "cryobag|cryobags|product|syringe|line|tubing|connector|port|well|plate|plates|container")
MATERIAL_CONTAINERS = "bottle|bottles|vial|vials|ampoule|ampoules|box|carton|pouch|kit|pack|package|packaging|overwrap"
EQUIPMENT = ("centrifuge|centrifuges|incubator|incubators|bsc|cabinet|hood|isolator|counter|nucleocounter|analyser|"
             "analyzer|cytometer|pipette|pipettes|balance|scale|sealer|welder|freezer|crf|fridge|refrigerator|bath|"
             "thawer|bioreactor|pump|printer|tablet|software|system|instrument|equipment|device|machine|dewar|tank|"
             "probe|sensor|ups|sepax|prodigy|lovo|electroporator|shaker|rocker|microscope|reader|timer|computer|"
             "scanner|monitor|controller|heater|cooler|chamber|unit|rotor|door|gasket|fan|fans|hepa|motor|display|"
             "screen|touchscreen|valve|compressor|thermostat|thermometer|readout|keypad|latch|hinge|lamp|blower|"
             "agitator|stirrer|spinner|thermocycler|incubator-shaker|robot|workstation|pc|laptop|server|network|wifi|"
             "interface|firmware|module|drive|clamp|heat-sealer|tscd|cryostore|ln2|autoclave|washer")
FAULT = ("error|errors|err|fault|faults|faulty|malfunction|malfunctioned|malfunctioning|failure|failed|fails|fail|"
         "crash|crashed|crashing|froze|freezing|hung|jammed|jam|tripped|broken|broke|defective|inoperable|"
         "unresponsive|stalled|aborted|abort|reboot|rebooted|restarted|restart|stopped|shutdown|glitch|"
         "leaking|noise|noisy|vibrating|vibration|imbalance|unbalanced|unstable|inoperative|non-functional|"
         "nonfunctional|stuck|erratic|intermittent|overheating|overheated|sparking|smoking|"
         "misbehaving|misfunctioning|offline|off-line|rebooting|glitched|glitching|crashes|errored|"
         "tripping|alarming|beeping|jamming")
IDENTITY_NOUNS = ("label|labels|labeling|id|ids|identity|identifier|identifiers|coi|din|dins|name|dob|wristband|"
                  "barcode|isbt|traveller|traveler|order|requisition|patient|patients|bag|bags|tube|tubes|sample|"
                  "samples|cryobag|cryobags|chain")
RELEASE_PARAMETERS = frozenset({
    "viability", "viable", "cd3", "cd3+", "purity", "vcn", "transduction", "te", "dose", "potency", "endotoxin",
    "sterility", "identity", "car", "car+", "expression", "tnc", "release", "final", "harvest", "thaw", "post-thaw",
})
IN_PROCESS_PARAMETERS = ("ph|glucose|glc|lactate|lac|osmolality|mosm|vcd|density|count|counts|expansion|fold|yield|"
                         "recovery|do|oxygen|gas|glutamine|ammonia|ammonium|cells|concentration")
RELEASE_WORDS = ("viability|viable|cd3|purity|vcn|transduction|te|dose|potency|car|expression|tnc|"
                 "cytotoxicity|ifn|ifng")
