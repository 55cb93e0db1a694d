"""Development templates: a third voice, written AFTER the first held-out run (see README.md).

Voice: alarm acknowledgements, correction reasons and supervisors' notes, the other free-text
sources of specs/nlp-review.md. Written without looking at any held-out entry or error, to find
gaps in the rules that the train voice did not show; used for rule work and for choosing the
classifier's threshold, never for the held-out figures. Format as in templates_test.py.
"""

from __future__ import annotations

TEMPLATES: list[tuple[str, str, str, str]] = [
    # alarm acknowledgements
    ("event", "equipment", "major", "ACK {inc} door open alarm >60 s, door closed, temp recovered to 36.8°C"),
    ("event", "equipment", "major", "Alarm ack'd: BSC low inflow, sash lowered, alarm cleared"),
    ("event", "equipment", "major", "CO2 low alarm acknowledged, cylinder changed over"),
    ("event", "equipment", "major", "ack - LN2 dewar {n} high temp alarm, filled by facilities"),
    ("event", "equipment", "major", "freezer {fr} temp alarm -65°C, contents moved to backup"),
    ("event", "equipment", "major", "particle counter fault, EM done with handheld unit"),
    ("negated", "", "none", "alarm acknowledged - test alarm during weekly check, no excursion"),
    ("negated", "", "none", "ack, false alarm, probe verified against reference thermometer"),
    ("negated", "", "none", "Alarm silenced by engineer during planned maintenance, no product in incubator"),
    # correction reasons
    ("event", "data_integrity", "minor", "Correction: transcription error, value is {v1} not {v2}"),
    ("event", "data_integrity", "minor", "corrected - entered against the wrong step"),
    ("event", "data_integrity", "major", "late entry: tablet offline, recorded on paper and typed in at {time}"),
    ("event", "data_integrity", "critical", "value changed by operator after QA sign-off, no reason recorded"),
    ("event", "data_integrity", "major", "result re-entered, original printout lost"),
    ("negated", "", "none", "Correction: typo in operator initials, no change to data"),
    # supervisor and QA notes
    ("event", "procedure", "major", "Supervisor approved use of {reagent} from the other fridge, not per BOM"),
    ("event", "procedure", "major", "Seeding density {v1} cells/cm2 used instead of {v2} by mistake"),
    ("event", "procedure", "major", "Operator ran the wash program twice in error"),
    ("event", "procedure", "major", "Sampling for count omitted at day {day}"),
    ("event", "contamination", "critical", "Sterile weld failed, tubing open to room air for a few seconds"),
    ("event", "contamination", "critical", "Drop of culture fell on the BSC grille during transfer"),
    ("event", "contamination", "critical", "Bag punctured by the spike, small leak noticed"),
    ("event", "contamination", "critical", "Gram positive rods in the day {day} sterility sample"),
    ("event", "contamination", "major", "Grade B personnel monitoring {cfu} cfu on gown sleeve"),
    ("hedged", "contamination", "critical", "Flask {n} slightly hazy, query contamination, sample sent"),
    ("event", "out_of_spec", "critical", "Post-thaw recovery {v1}%, below the release limit"),
    ("event", "out_of_spec", "major", "Cell count low at day {day}, expansion behind the expected curve"),
    ("event", "out_of_spec", "critical", "CAR expression {car_low}% vs spec ≥ 15%"),
    ("event", "out_of_spec", "major", "Count repeated on second counter, first result rejected"),
    ("event", "material", "critical", "{reagent} used past its in-use expiry once opened"),
    ("event", "material", "major", "{reagent} delivered without temperature indicator, status unknown"),
    ("event", "material", "major", "Lot of {reagent} not on the approved supplier list"),
    ("event", "identity", "critical", "Two bags for {pid} labelled with the same bag number"),
    ("event", "identity", "critical", "Sample tube had no patient identifier on it"),
    ("event", "identity", "major", "Handover to courier not signed on the chain of custody form"),
    ("event", "identity", "critical", "Barcode scan of the bag failed and the ID was typed by hand"),
    ("event", "equipment", "major", "Welder {weld} gave an error and the weld had to be redone"),
    ("event", "equipment", "major", "Tablet froze mid-step, entry lost and re-entered"),
    ("historical", "contamination", "major", "Same organism found in this room's EM last month"),
    ("hypothetical", "procedure", "minor", "If hold time goes over 4 h, contact QA before continuing"),
    ("negated", "", "none", "QA informed, no impact, proceed per MBR"),
    ("negated", "", "none", "Flask {n} inspected by QA, clear, no contamination suspected"),
    ("negated", "", "none", "No mix-up: both bags re-checked against the COI record"),
    ("negated", "", "none", "Weld inspected, complete, no leak"),
    ("negated", "", "none", "Courier handover signed, logger started, no delay"),
    ("negated", "", "none", "Count within expected range, no repeat needed"),
    ("routine", "", "none", "Supervisor check of step {step} completed"),
    ("routine", "", "none", "QA walk-through done at {time}, nothing to report"),
    ("routine", "", "none", "Bags {n} and {n2} sealed, weighed and labelled"),
    ("routine", "", "none", "Reagent {reagent} thawed at RT for 30 min per SOP"),
    ("routine", "", "none", "Shift handover: culture on day {day}, next feed at {time}"),
]

SLOTS: dict[str, list[str]] = {
    "inc": ["INC-4", "incubator 2", "Heracell 5"],
    "n": ["1", "2", "3"],
    "n2": ["4", "5"],
    "fr": ["FRZ-1", "F-80 2"],
    "v1": ["41", "55", "8", "12"],
    "v2": ["14", "52", "60"],
    "car_low": ["8", "11", "12"],
    "time": ["06:50", "15:40", "23:10"],
    "reagent": ["IL-2", "IL-15", "TexMACS", "retronectin", "CS10", "human serum albumin"],
    "day": ["3", "6", "9"],
    "cfu": ["2", "4"],
    "pid": ["PT-2201", "PT-0318"],
    "weld": ["TSCD-2", "W-01"],
    "step": ["6.1", "13", "27"],
}

ABBREVIATIONS: dict[str, list[str]] = {
    "acknowledged": ["acknowledged", "ack'd", "ackd"],
    "supervisor": ["supervisor", "sup"],
    "temperature": ["temperature", "temp"],
}
