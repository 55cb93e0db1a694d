"""Equipment: not working as qualified or calibrated (EU GMP Part I ch. 3.41; Annex 15).

Negation: ruled out is no flag ("no alarms", "alarm test passed", "ran without error").
A missing calibration or qualification is a flag (CHECK: "not calibrated").
Severity: major; the impact on the product needs an investigation. A label printer jam is
minor (documentation only). Sterility or identity consequences are raised by their own rules.
"""

from __future__ import annotations

from nlp_review.pipeline.rules.base import Polarity, Rule
from nlp_review.pipeline.rules.words import EQUIPMENT, FAULT
from nlp_review.pipeline.types import Category, Severity

E, MAJ, MIN = Category.EQUIPMENT, Severity.MAJOR, Severity.MINOR
SHIPPING = frozenset({"shipper", "shipping", "transit", "transport", "courier", "shipment", "delivery"})

RULES: tuple[Rule, ...] = (
    Rule("equipment.fault", E, MAJ, (
        f"{EQUIPMENT} _{{0,4}} {FAULT}",
        f"{FAULT} _{{0,2}} {EQUIPMENT}",
        f"{EQUIPMENT} _{{0,2}} not|n't|stopped|went|was|is _{{0,1}} working|work|responding|running|functioning|start|"
        "starting|down",
        "error|err|fault|alarm|code code? @code",
        "out of service",
        f"{EQUIPMENT} _{{0,2}} out of order",
        "(had to|needed to|required to|has to|must) be? _{0,1} restarted|rebooted|reset|power-cycled|repaired|"
        "replaced|serviced|swapped|recalibrated",
        "(tagged out|locked out|taken out of use|removed from service|out of use|broken down|down for repair)",
        f"{EQUIPMENT} _{{0,3}} not|n't|unable|failed _{{0,1}} to? _{{0,1}} "
        "close|shut|seal|lock|latch|open|hold|reach|maintain|heat|cool|spin|turn|power|boot|connect|closing|sealing|"
        "locking|latching|holding|heating|cooling|spinning|booting|connecting",
        f"{EQUIPMENT} _{{0,2}} read|reads|reading|readings|showed|shows|displayed|displaying|indicated|measured "
        "_{0,3} "
        "instead|rather|versus|vs|against|but",
        "condensation|frost|icing|ice _{0,3} incubator|freezer|fridge|door|chamber|frame|cabinet|build-up|buildup",
        "incubator|freezer|fridge|door|chamber|cabinet _{0,4} condensation|frost|icing|wet",
    ), "Equipment did not work as qualified; the step's results need an impact assessment.",
        # The record of faults is not a fault: "the centrifuge error log was reviewed and is empty".
        exclude=("printer _{0,3} jammed|jam|jams", "in error",
                 "error|errors|fault|faults|alarm|alarms log|logs|history|list|record|records"),
        unless_near=frozenset({"reagent", "medium", "media", "serum", "vial", "vials"})),
    Rule("equipment.reading", E, MAJ, (
        "(setpoint|set-point|set point|target temperature) _{0,3} not|n't _{0,1} reached|achieved|maintained|held",
        "(drifted|drifting|fluctuated|fluctuating|unstable|erratic) _{0,2} reading|readings|temperature|speed|rpm",
    ), "Equipment ran at other conditions than set: its qualification no longer covers the step."),

    Rule("equipment.printer", E, MIN, (
        "printer _{0,3} jammed|jam|jams|error|fault|empty|ribbon",
    ), "A printer fault: documentation only, if labels were reprinted and checked."),
    Rule("equipment.alarm", E, MAJ, (
        "alarm|alarms|alarmed|alarming|beeping|beeped|warning|warnings|alert|alerts",
    ), "An equipment alarm during processing needs an impact assessment.",
        exclude=("alarm|alarms test|tests|tested|testing|check|checks|checked|function|functional|verification|set|"
                 "settings|points|limits|limit", "alert|action limit|limits|level|levels",
                 "alert|action /|and|or action|alert limit|limits|level|levels", "bact / alert|alerts", "bactalert",
                 "test|false|nuisance|spurious|planned|simulated alarm|alarms",
                 "warning|warnings label|labels|sign|signs"),
        # An alarm test, a false alarm or one during planned maintenance is not a process event.
        unless_near=SHIPPING | {"test", "false", "planned", "simulated", "drill", "nuisance", "spurious"}),
    Rule("equipment.alarm_unanswered", E, MAJ, (
        "alarm|alarms|alert|alerts _{0,1} not|never _{0,1} acknowledged|answered|responded|attended|investigated|"
        "actioned|addressed",
        "unacknowledged|unanswered|ignored alarm|alarms|alert|alerts",
        "alarm|alarms|alert|alerts _{0,2} ignored|overridden",
    ), "An equipment alarm that nobody answered: the condition it signalled was left as it was "
       "(EU GMP Annex 11 §13 and Annex 15: alarms are acted on).",
        # Silencing is an answer; a test or planned alarm is no process event (as equipment.alarm).
        unless_near=frozenset({"test", "false", "planned", "simulated", "drill", "nuisance", "spurious"})),
    Rule("equipment.calibration", E, MAJ, (
        "calibration|calibrations|recalibration _{0,2} overdue|expired|lapsed|due|failed|fail|out|outdated|missed|"
        "missing|invalid",
        "overdue|expired|lapsed|missed|outdated|out _{0,1} of? _{0,1} calibration",
        "past _{0,3} calibration|service|maintenance|pm|requalification|qualification",
        "uncalibrated",
        "pm|maintenance|service|servicing|requalification|qualification _{0,2} overdue|expired|lapsed|missed",
    ), "Equipment used outside its calibration or maintenance interval (EU GMP Part I 3.41).",
        exclude=("calibration due date? next|on|in",)),
    Rule("equipment.calibrated", E, MAJ, (
        "calibrated|qualified|serviced",
    ), "Equipment stated not to be calibrated or qualified.", polarity=Polarity.CHECK),
    Rule("equipment.power", E, MAJ, (
        "power|mains|electricity|electrical _{0,1} cut|cuts|failure|outage|loss|lost|interruption|dip|trip|tripped|off",
        "outage|blackout|brownout",
        "ups _{0,2} activated|kicked|engaged|alarm|running|supported|kept|took",
        "on ups|battery|generator",
    ), "A power interruption may have affected equipment holding the product."),
    Rule("equipment.environment", E, MAJ, (
        "co2|o2|humidity|temperature|pressure|airflow|flow|differential _{0,3} alarm|excursion|dropped|drop|"
        "fell|low|high|rose|deviation|out|unstable|fluctuating|fluctuated",
        "incubator|incubators|freezer|fridge|refrigerator|dewar|room|cabinet|bsc _{0,3} temperature _{0,2} "
        "excursion|dropped|drop|fell|low|high|rose|deviation|out",
        "ln2|nitrogen _{0,2} level? _{0,1} low|empty|depleted|alarm|dropped|fell|below|under|insufficient",
        # the condition denied: "CO2 not maintained overnight"
        "co2|o2|humidity|temperature|temp|pressure|airflow _{0,2} not|never maintained|stable|held|controlled|kept",
    ), "A controlled environment left its qualified range.", unless_near=SHIPPING,
        # Setting up the alarm is not the alarm: "CO2 alarm limits set to 4.5-5.5%".
        exclude=("alarm|alarms limit|limits|setpoint|setpoints|settings|setting|threshold|thresholds|configured",)),
    Rule("equipment.profile", E, MAJ, (
        "crf|freezer|profile|program|programme|run|cycle _{0,3} failed|deviated|deviation|deviates|aborted|"
        "abort|error|interrupted|incomplete",
        "deviated|deviation|deviates _{0,4} profile|program|programme|cycle",
    ), "A controlled-rate freezing or equipment programme did not run as validated.",
        exclude=("in error",)),
    Rule("equipment.check_failed", E, MAJ, (
        "daily|performance|function|functional|weight|leak|integrity|system _{0,1} check|checks|verification|"
        "test|suitability _{0,2} failed|fail|fails|failure|out",
    ), "An equipment check before use failed."),
)
