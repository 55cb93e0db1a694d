"""The demo facility's CAR-T process: a realistic master record, equipment and materials.

Data only; `seed_demo` turns it into records through the services, like a person would.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from typing import Any

PRODUCT = ("CART19", "Autologous anti-CD19 CAR-T cells")
MASTER_RECORD = ("MBR-CART19-001", "Autologous anti-CD19 CAR-T manufacture (lentiviral, bioreactor expansion)")

# code, name, type, days until calibration due (negative: overdue), status
EQUIPMENT: list[tuple[str, str, str, int, str]] = [
    ("BSC-01", "Biosafety cabinet class II, suite A", "bsc", 120, "released"),
    ("INC-01", "CO2 incubator, suite A", "incubator", 90, "released"),
    ("INC-02", "CO2 incubator, suite B", "incubator", -3, "released"),          # out of calibration
    ("BR-01", "Rocking-motion bioreactor 1", "bioreactor", 200, "released"),
    ("BR-02", "Rocking-motion bioreactor 2", "bioreactor", 150, "released"),
    ("CF-01", "Refrigerated centrifuge", "centrifuge", 60, "released"),
    ("CF-02", "Refrigerated centrifuge (spare)", "centrifuge", 60, "maintenance"),
    ("CC-01", "Automated cell counter", "cell_counter", 30, "released"),
    ("SEP-01", "Automated cell separator", "separator", 100, "released"),
    ("CRF-01", "Controlled-rate freezer", "freezer", 75, "released"),
]

# code, name, unit
MATERIALS: list[tuple[str, str, str]] = [
    ("MAT-CD4CD8", "CD4/CD8 selection microbeads", "mL"),
    ("MAT-TRANSACT", "T-cell activation reagent (CD3/CD28 nanomatrix)", "mL"),
    ("MAT-LV19", "Anti-CD19 CAR lentiviral vector", "mL"),
    ("MAT-MEDIUM", "T-cell expansion medium with IL-7/IL-15", "mL"),
    ("MAT-CS10", "Cryopreservation medium, 10% DMSO", "mL"),
]

# lot, material, days until expiry (negative: expired), status
LOTS: list[tuple[str, str, int, str]] = [
    ("CD48-24117", "MAT-CD4CD8", 180, "released"),
    ("TA-25032", "MAT-TRANSACT", 240, "released"),
    ("LV19-0091", "MAT-LV19", 365, "released"),
    ("LV19-0093", "MAT-LV19", 365, "quarantined"),      # awaiting QC release
    ("MED-88410", "MAT-MEDIUM", 60, "released"),
    ("CS10-7731", "MAT-CS10", 300, "released"),
    ("CS10-7702", "MAT-CS10", -10, "released"),         # expired
]


def _n(code: str, label: str, unit: str, low: Any = None, high: Any = None, **extra: Any) -> dict[str, Any]:
    return {"code": code, "label": label, "kind": "number", "unit": unit, "lower_limit": low, "upper_limit": high,
            **extra}


def _yes(code: str, label: str, **extra: Any) -> dict[str, Any]:
    return {"code": code, "label": label, "kind": "yes_no", "expected": "yes", **extra}


def _lot(code: str, label: str, material: str) -> dict[str, Any]:
    return {"code": code, "label": label, "kind": "material_lot", "material": material}


def _eq(code: str, label: str) -> dict[str, Any]:
    return {"code": code, "label": label, "kind": "equipment_id"}


BIOREACTOR_LIMITS = [
    {"parameter": "ph", "alert_low": D("6.90"), "alert_high": D("7.50"), "action_low": D("6.80"),
     "action_high": D("7.60"), "critical": True},
    {"parameter": "do", "alert_low": D("30"), "alert_high": D("70"), "action_low": D("20"), "action_high": D("80")},
    {"parameter": "temp", "alert_low": D("36.5"), "alert_high": D("37.5"), "action_low": D("36.0"),
     "action_high": D("38.0"), "critical": True},
    {"parameter": "glucose", "alert_low": D("1.0"), "action_low": D("0.5")},
    {"parameter": "lactate", "alert_high": D("20"), "action_high": D("25")},
    {"parameter": "viability", "alert_low": D("80"), "action_low": D("70"), "critical": True},
]

# (stage name, [step dicts]); instructions are Markdown; "materials": (material code, quantity[, tolerance])
# prescribed per step: each gains a quantity parameter "qty-<material code>" (and a lot one unless present).
PROCESS: list[tuple[str, list[dict[str, Any]]]] = [
    ("Apheresis receipt and inspection", [
        {"code": "1.1", "title": "Receive and inspect the apheresis bag", "critical": True,
         "requires_verification": True, "hold_time_limit": timedelta(hours=2),
         "instructions": "Check, in this order:\n\n"
                         "1. the shipper's **temperature logger** (alarm light off, curve within 1–10 °C);\n"
                         "2. the bag label against the **chain-of-identity code** on the order, character by "
                         "character;\n"
                         "3. the bag for leaks or damage, ports and seals included.\n\n"
                         "**Do not open the bag.** A mismatch or a leak: stop and call the supervisor.",
         "parameters": [_yes("coi_label_match", "Bag label matches the batch COI", critical=True),
                        _yes("bag_intact", "Bag intact, no leak"),
                        _n("receipt_temp", "Temperature at receipt", "Cel", D("1"), D("10"),
                           alert_low=D("2"), alert_high=D("8")),
                        _n("hours_since_collection", "Time since collection", "h", None, D("48"),
                           alert_high=D("36"))]},
        {"code": "1.2", "title": "Sample the apheresis product for counts",
         "instructions": "In the BSC, take 0.5 mL through the sampling port; count on the cell counter.",
         "equipment_type": "cell_counter",
         "parameters": [_eq("counter", "Cell counter"),
                        _n("wbc", "Total nucleated cells", "10*9", D("1.0"), None),
                        _n("viability_in", "Viability", "%", D("70"), D("100"), alert_low=D("80")),
                        _n("cd3_pct", "CD3+ cells", "%", D("10"), D("100"))]},
    ]),
    ("T-cell selection", [
        {"code": "2.1", "title": "CD4/CD8 selection on the cell separator", "equipment_type": "separator",
         "instructions": "Load the separator kit, attach the apheresis bag and the microbead vial, run program "
                         "*T cell selection*.\n\n- Scan the microbead lot and record the volume used "
                         "(one **7.5 mL** vial).\n- Record the recovered cells from the run report.",
         "materials": [("MAT-CD4CD8", D("7.5"))],
         "parameters": [_eq("separator", "Cell separator"), _lot("beads_lot", "Microbead lot", "MAT-CD4CD8"),
                        _n("selected_cells", "Selected viable cells", "10*6", D("100"), None),
                        _n("viability_sel", "Viability after selection", "%", D("70"), D("100"),
                           alert_low=D("85"))]},
    ]),
    ("Activation", [
        {"code": "3.1", "title": "Activate the T cells", "instructions":
            "Seed the selected cells in expansion medium at **1×10⁶/mL**, then add the activation reagent "
            "**1:100** (1.0 mL for 100 mL of culture).",
         "materials": [("MAT-TRANSACT", D("1.0"), D("0.1"))],
         "parameters": [_lot("medium_lot", "Medium lot", "MAT-MEDIUM"),
                        _lot("transact_lot", "Activation reagent lot", "MAT-TRANSACT"),
                        _n("seeded_cells", "Cells seeded", "10*6", D("50"), D("150"))]},
    ]),
    ("Lentiviral transduction", [
        {"code": "4.1", "title": "Add the lentiviral vector", "critical": True, "requires_verification": True,
         "equipment_type": "bsc",
         "instructions": "In the BSC, thaw the vector at room temperature, add the volume for the target MOI, "
                         "mix gently. A second operator verifies the volume and the lot.",
         "parameters": [_eq("bsc", "Biosafety cabinet"), _lot("vector_lot", "Vector lot", "MAT-LV19"),
                        _n("moi", "Multiplicity of infection", "1", D("2"), D("8"), target=D("5"),
                           critical=True),
                        _n("vector_volume", "Vector volume added", "mL", D("0.5"), D("20"))]},
    ]),
    ("Expansion in the bioreactor", [
        {"code": "5.1", "title": "Transfer to the bioreactor", "equipment_type": "bioreactor",
         "instructions": "Transfer the culture to the bioreactor bag, start program 'CAR-T expansion' "
                         "(37 °C, 5% CO2, rocking). The bioreactor posts pH, DO and temperature continuously.",
         "instrument_limits": BIOREACTOR_LIMITS,
         "parameters": [_eq("bioreactor", "Bioreactor"), _n("start_volume", "Culture volume", "mL", D("100"),
                                                            D("1000"))]},
        {"code": "5.2", "title": "Day-7 in-process control", "hold_time_limit": timedelta(hours=24),
         "instructions": "Sample 1 mL through the sampling line; count and assess. Expansion continues if the "
                         "viable cell density and viability meet the limits.",
         "parameters": [_n("vcd_d7", "Viable cell density", "10*6/mL", D("1.0"), None, alert_low=D("2.0")),
                        _n("viability_d7", "Viability", "%", D("70"), D("100"), alert_low=D("80")),
                        _yes("ipc_pass", "In-process control passed")]},
    ]),
    ("Harvest and wash", [
        {"code": "6.1", "title": "Harvest and wash", "equipment_type": "centrifuge",
         "hold_time_limit": timedelta(hours=1),
         "instructions": "Harvest the culture, wash twice (400 g, 10 min), resuspend in formulation buffer.",
         "parameters": [_eq("centrifuge", "Centrifuge"),
                        _n("harvest_cells", "Total viable cells harvested", "10*6", D("500"), None),
                        _n("viability_harvest", "Viability at harvest", "%", D("70"), D("100"))]},
    ]),
    ("Formulation, fill and cryopreservation", [
        {"code": "7.1", "title": "Formulate the dose",
         "instructions": "Resuspend in cryopreservation medium to the final volume for the prescribed dose.",
         "parameters": [_lot("cryo_lot", "Cryopreservation medium lot", "MAT-CS10"),
                        _n("total_cells", "Total viable CAR-T cells", "10*6", D("50"), None),
                        _n("final_volume", "Final volume", "mL", D("20"), D("100")),
                        {"code": "concentration", "label": "Concentration", "kind": "calculated",
                         "unit": "10*6/mL", "formula": "total_cells / final_volume"}]},
        {"code": "7.2", "title": "Fill and label the infusion bags", "critical": True,
         "requires_verification": True,
         "instructions": "Fill the bags, seal, and apply the patient labels. The second operator checks every "
                         "label against the COI.",
         "parameters": [_yes("label_coi_match", "Every bag label matches the COI", critical=True),
                        _n("bags", "Bags filled", "1", D("1"), D("4"))]},
        {"code": "7.3", "title": "Controlled-rate freezing", "equipment_type": "freezer",
         "instructions": "Run profile 'CAR-T bag'; transfer to vapour-phase nitrogen at the end.",
         "parameters": [_eq("freezer", "Controlled-rate freezer"), _yes("profile_ok", "Freezing profile completed"),
                        _n("end_temp", "End temperature", "Cel", None, D("-90"))]},
    ]),
    ("QC sampling and release testing", [
        {"code": "8.1", "title": "QC samples and release results",
         "instructions": "Record that the QC samples were taken and the release results from the QC laboratory.",
         "parameters": [_yes("sterility_sampled", "Sterility sample taken"),
                        {"code": "sterility", "label": "Sterility (14 days)", "kind": "choice",
                         "choices": ["no growth", "growth"], "expected": "no growth", "critical": True},
                        _n("endotoxin", "Endotoxin", "[EU]/mL", None, D("5")),
                        _n("vcn", "Vector copy number", "{copies}/cell", D("0.5"), D("5")),
                        _n("cd3_final", "CD3+ in final product", "%", D("80"), D("100")),
                        _n("viability_final", "Viability of final product", "%", D("70"), D("100"))]},
    ]),
]

# Values an operator enters in a clean run (code → value); OOS values are chosen per demo batch.
GOOD_VALUES: dict[str, str] = {
    "coi_label_match": "yes", "bag_intact": "yes", "receipt_temp": "5.2", "hours_since_collection": "20",
    "counter": "CC-01", "wbc": "6.4", "viability_in": "96", "cd3_pct": "54",
    "separator": "SEP-01", "beads_lot": "CD48-24117", "qty-mat-cd4cd8": "7.5", "selected_cells": "820",
    "viability_sel": "94",
    "medium_lot": "MED-88410", "transact_lot": "TA-25032", "qty-mat-transact": "1.0", "seeded_cells": "100",
    "bsc": "BSC-01", "vector_lot": "LV19-0091", "moi": "5", "vector_volume": "4.2",
    "bioreactor": "BR-02", "start_volume": "300",
    "vcd_d7": "4.1", "viability_d7": "91", "ipc_pass": "yes",
    "centrifuge": "CF-01", "harvest_cells": "2150", "viability_harvest": "90",
    "cryo_lot": "CS10-7731", "total_cells": "300", "final_volume": "60",
    "label_coi_match": "yes", "bags": "2",
    "freezer": "CRF-01", "profile_ok": "yes", "end_temp": "-120",
    "sterility_sampled": "yes", "sterility": "no growth", "endotoxin": "0.5", "vcn": "2.1", "cd3_final": "97",
    "viability_final": "88",
}
