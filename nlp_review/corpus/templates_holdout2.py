"""Fifth voice, held out (split `holdout2`): a US/UK hospital cell-processing and apheresis unit.

Written blind: its author read only specs/nlp-review.md, corpus/README.md, corpus/build.py and the
corpus tests; never the rules, lexicon or classifier (nlp_review/pipeline/), never a template or
entry of the other splits, and never ran the pipeline or `evaluate` on these entries.

Who writes: cell processing technologists on night shift, apheresis nurses, the pharmacy and
infusion side (product receipt on the ward, thaw at the bedside, infusion), the vector room
(lentiviral / AAV thaw, MOI, transduction), the cryo room (controlled-rate freezer, DMSO, LN2
vapor phase) and the QC lab (flow, cell counter, gram stain, LAL). Long run-on entries with the
event buried in routine text, lists with ";" "/" " - ", clinical shorthand, US spelling, events
described indirectly ("had to redo the count since the first reading looked off").

Labelling conventions (every template below was labelled against them):
- contamination: critical for a sterility / aseptic risk to this product (growth, turbidity,
  positive mycoplasma, glove breach, leak, crack, open container, EM above the action limit in
  grade A/B); major for EM excursions in grade C/D or above the alert (not action) limit. A product
  micro result given as a number against its limit, or called OOS, is also out_of_spec.
- out_of_spec: critical for release specifications (viability, dose / cell count, purity, VCN,
  transduction, endotoxin as a number, product temperature in transport); major for in-process
  values (pH, glucose, lactate, IPC, OOT, room differential pressure, incubator temperature).
- equipment: major (not working as qualified, alarm, error, out of calibration, missed checks).
- material: major (expired, wrong lot, quarantined, damaged, badly stored, substituted, no CoA).
- procedure: major (skipped, out of order, hold time, wrong volume / parameter, untrained, repeated,
  supervisor's word, missing EM sample); critical only when the final-product sterility sample was
  not taken.
- data_integrity: critical for possible falsification (backdated, signed for a colleague, shared
  login, pre-filled, overwritten, deleted, copied values); major for not contemporaneous / not
  original and for a missing verification or signature ("second check not done"); minor for
  documentation-only slips (correction without reason, legibility, date format).
- identity: critical when the chain of identity is at risk (label / COI / DIN mismatch, unlabeled
  container, two patients' material together, seal number differs, label not checked); major for
  custody gaps where identity is not in question (courier late, logger missing or not started,
  handover time not recorded).
- Several labels: the highest severity among them.
Kinds: event (this batch); hedged (possible / suspected, this batch: as the event); historical
(previous or other batch, earlier finding: critical lowered to major); hypothetical (could have /
if ... about this batch, not ruled out: as the event); omission (a negated check that does not
clear the flag); negated (routine text that negates or rules out an event: no labels, none);
routine (no labels, none). A duplicate count that the SOP requires is routine, not a repeat.
"""

from __future__ import annotations

CONT = "contamination"
OOS = "out_of_spec"
EQUIP = "equipment"
MAT = "material"
PROC = "procedure"
DATA = "data_integrity"
IDENT = "identity"

TEMPLATES: list[tuple[str, str, str, str]] = [
    # ---------------------------------------------------------------- contamination
    ("event", CONT, "critical", "harvest done {bags} bags, {bag} port weeping slightly at the spike so taped it and "
     "told QA, rest fine, labels on and checked"),
    ("event", CONT, "critical", "{time} thaw at bedside on {ward}, {rn} saw a hairline crack along the seam of {bag} "
     "once it came out of the bath, MD said infuse anyway"),
    ("event", CONT, "critical", "day {day} flask looked cloudy-ish and more yellow than the others when I pulled it "
     "from {inc}, sent a gram stain and parked the rest"),
    ("event", CONT, "critical", "gram stain on the final product read at {time}: gram positive cocci in clusters, "
     "{md} and QA called"),
    ("event", CONT, "critical", "outer glove got nicked on the sealer clamp while working in {bsc} with {bag} spiked "
     "open, swapped gloves at {time} and kept going"),
    ("event", CONT, "critical", "settle plate from {bsc} during the fill read {cfu_a} CFU at day 5, grade A action "
     "limit is 1, QA informed {time}"),
    ("event", CONT, "critical", "heads up, myco PCR on the day {day} supernatant came back detected, {lead} aware "
     "and the lot is on hold"),
    ("event", CONT, "critical", "BacT/ALERT aerobic bottle for {pt} final product flagged positive {hours} in, micro "
     "working it up"),
    ("event", CONT, "major", "EM in the gowning room (grade C) - contact plate on the bench {cfu_c} CFU, action is "
     "25, room recleaned and resampled {time}"),
    ("event", CONT, "major", "fingertip plate from the right hand after the {vector} add had {cfu_b} CFU, over the "
     "grade B alert level but under action"),
    ("event", CONT, "critical", "retain cryovial found in the rack with the cap only half on, sitting like that in "
     "{bsc} since approximately {time}"),
    ("event", f"{CONT}+{OOS}", "critical", "LAL on the final bag {endo_high} against a release limit of < 5 EU/kg, "
     "QC repeating on the {time} run"),
    ("event", f"{CONT}+{OOS}", "critical", "14 day sterility for {pt} reported OOS by QC micro, turbid FTM tube at "
     "day {day}"),
    ("event", CONT, "critical", "drip on the bench under the {sepax} kit; waste line luer was loose and the kit was "
     "wet around the product bag port at {time}"),
    ("event", CONT, "critical", "{bag} came out of the overwrap with a split at the corner after thaw, pink fluid in "
     "the overwrap, {md} aware"),
    ("hedged", CONT, "critical", "{bag} might have a pinhole, overwrap was a little damp after the thaw at {time} "
     "but we couldn't find where it came from"),
    ("hedged", CONT, "critical", "not 100% sure but I think my sleeve brushed the inside of {bsc} right by the open "
     "tube during the {vector} add"),
    ("hedged", CONT, "critical", "media in the G-Rex maybe a touch hazy this morning, could just be the light, "
     "pulled a sample and let {lead} know"),
    ("hedged", CONT, "critical", "QC says possible contam on the day {day} culture of {pt}, gram stain still pending"),
    ("hedged", CONT, "major", "grade C corridor plates from {date} may be over the action limit, micro will confirm "
     "the read tomorrow"),
    ("historical", CONT, "major", "fyi the {pt} lot from last month had a positive BacT bottle, processed on this "
     "same bench"),
    ("historical", CONT, "major", "last week's run in {bsc} had a settle plate over action, hood was deep cleaned "
     "since then"),
    ("historical", CONT, "major", "per QA the prior collection for this patient was tossed after myco came back "
     "positive on {date}"),
    ("historical", CONT, "major", "earlier this year a cryobag cracked on thaw in {ward}, same bag type as tonight"),
    ("hypothetical", CONT, "critical", "if the weld on {bag} didn't fully hold (tubing looked thin at the joint) the "
     "product could have been open to air, QA to assess"),
    ("hypothetical", CONT, "critical", "sash was up over the line for approximately {mins} min during the open step "
     "in {bsc}, the airflow could have been disrupted, not ruled out"),
    ("hypothetical", CONT, "critical", "could have touched the spike port with my glove taking the cap off {bag}, "
     "can't rule it out"),
    ("omission", CONT, "critical", "cap was not on the retain vial when I came back to {bsc} at {time}"),
    ("omission", CONT, "critical", "{bag} did not pass the leak check after sealing, one drop at the port on squeeze"),
    ("omission", CONT, "critical", "weld on {bag} did not hold, tubing came apart when I pulled on it at {time}"),
    ("omission", CONT, "critical", "overwrap on {bag} was not intact coming out of {thawer} and the bag underneath "
     "was wet"),
    # ---------------------------------------------------------------- out of specification
    ("event", OOS, "critical", "final product viab {viab_low} by 7-AAD on {cytometer}, spec is >=70%, paged QA at "
     "{time}"),
    ("event", OOS, "critical", "post thaw viability on the retain vial came in at {viab_low} (acceptance ≥ 70 %), "
     "{md} notified before the patient was premedicated"),
    ("event", OOS, "critical", "total CD34 dose works out to {dose_low}, short of the 2.0 x 10^6/kg minimum on the "
     "order for {pt}"),
    ("event", OOS, "critical", "VCN came back {vcn_high} copies/cell for {pt}, upper limit is 5"),
    ("event", OOS, "critical", "%CAR+ by flow only {car_low}, release needs >= 15%, QC rerunning the tube at {time}"),
    ("event", OOS, "critical", "CD3 purity on the final {purity_low} vs >= 80% on the spec sheet for {pt}"),
    ("event", OOS, "major", "day {day} pH {ph_low} at {time}, outside the 6.9-7.6 on the batch record, told {lead}"),
    ("event", OOS, "major", "glucose down to {gluc_low} on day {day}, IPC limit is >= 100 mg/dL"),
    ("event", OOS, "major", "{inc} display {temp_bad} at the {time} round, range is 37 +/- 1"),
    ("event", OOS, "major", "room DP between the grade B suite and the corridor sagged to {dp_low} Pa for "
     "approximately {mins} min, needs >= 10"),
    ("event", OOS, "critical", "logger in the shipper shows product hit {ship_temp} on the way to {ward}, has to "
     "stay at or below -150C"),
    ("event", OOS, "major", "TNC counts trending down across the last 3 in-process checks on {pt}, still in range "
     "but called OOT"),
    ("event", OOS, "critical", "QC called at {time}: cell dose for {pt} is below the release range after the final "
     "count, {lead} looped in"),
    ("event", OOS, "major", "lactate up to {lactate} mmol/L on day {day}, above the in-process limit of 20"),
    ("hedged", OOS, "critical", "viability looks low-ish on the {counter} ({viab_low}?) might be the stain, "
     "rerunning before I call anyone"),
    ("hedged", OOS, "major", "pH may have drifted low overnight in {inc}, read {ph_low} but that meter is finicky"),
    ("hedged", OOS, "critical", "not sure we'll make the dose, counts on {pt} so far suggest we may end up short of "
     "2 x 10^6/kg"),
    ("hedged", OOS, "critical", "possible OOS on the VCN for {pt}, QC said the standard curve looked off and want to "
     "confirm"),
    ("historical", OOS, "major", "the previous lot for {pt} failed viability at {viab_low} and was infused under "
     "exception"),
    ("historical", OOS, "major", "last run on this protocol came in under spec for CAR+ ({car_low}), see the {date} "
     "deviation"),
    ("historical", OOS, "major", "back in January we had a day {day} pH excursion with the same media lot"),
    ("hypothetical", OOS, "critical", "if post thaw tracks the pre-freeze count, the dose could end up under the 2 x "
     "10^6/kg minimum for {pt}"),
    ("hypothetical", OOS, "critical", "the approximately {mins} min on the bench at RT could have knocked viability "
     "below spec, QC asked to check the retain"),
    ("hypothetical", OOS, "major", "if the probe was reading right, day {day} pH could have been under 6.9 for most "
     "of the night in {inc}"),
    ("omission", OOS, "critical", "viability did not meet the >= 70% release criterion ({viab_low}) for {pt}"),
    ("omission", OOS, "critical", "transduction not within spec for {pt}, {car_low} CAR+"),
    ("omission", OOS, "major", "day {day} glucose not in range ({gluc_low})"),
    ("omission", OOS, "major", "IPC count on day {day} did not pass, {conc} vs the minimum on the worksheet"),
    # ---------------------------------------------------------------- equipment
    ("event", EQUIP, "major", "{sepax} threw {err} mid-wash at {time}, cleared it per the quick guide and it carried "
     "on"),
    ("event", EQUIP, "major", "{crf} curve had a weird spike right at the phase change and the chamber alarm went "
     "off approximately {time}"),
    ("event", EQUIP, "major", "{dewar} low level alarm {time}, topped off from the bulk, temp stayed at {ln2_ok}"),
    ("event", EQUIP, "major", "sticker on the {counter} says calibration due {date}, we're past that and it got used "
     "tonight"),
    ("event", EQUIP, "major", "{thawer} kept beeping with a temp fault so the last bag was finished in the backup at "
     "{time}"),
    ("event", EQUIP, "major", "{bsc} airflow alarm went off twice during the fill of {pt}, reset both times"),
    ("event", EQUIP, "major", "{cytometer} software hung at {time} halfway through the acquisition, service ticket "
     "put in"),
    ("event", EQUIP, "major", "{inc} CO2 alarm at {time}, door had not been opened, biomed paged"),
    ("event", EQUIP, "major", "centrifuge stopped with an imbalance error at {time}, had to rebalance the buckets"),
    ("event", EQUIP, "major", "Optia pressure alarms every 10 min or so through the collection on {pt}, {rn} "
     "repositioned the line"),
    ("event", EQUIP, "major", "check weight read 2 g heavy on the prep room scale, used it anyway for {bag}"),
    ("event", EQUIP, "major", "tube sealer making partial seals on the test tubing all night, {tech} says it's been "
     "doing that since {date}"),
    ("event", EQUIP, "major", "power blip on 4 East approximately {time}, {crf} dropped to UPS for a few sec and "
     "kept going"),
    ("event", EQUIP, "major", "water bath thermometer is past its cal date ({date}) and was used for {bag}"),
    ("hedged", EQUIP, "major", "the {crf} may have run a couple degrees warm on the hold step, the log looks odd "
     "around {time}"),
    ("hedged", EQUIP, "major", "I think the {counter} is drifting, the beads read a bit high again at {time}"),
    ("hedged", EQUIP, "major", "not sure {thawer} is heating right, took {mins} min when it's usually approximately "
     "10"),
    ("historical", EQUIP, "major", "{sepax} threw the same door sensor fault last month on another patient, see "
     "{date}"),
    ("historical", EQUIP, "major", "per the service report from {date} the {counter} failed its PM"),
    ("historical", EQUIP, "major", "back in the spring the {crf} lost power mid run, {tech} remembers it"),
    ("hypothetical", EQUIP, "major", "if the level sensor on {dewar} sticks like it did before, the tank could have "
     "warmed without alarming"),
    ("hypothetical", EQUIP, "major", "centrifuge could have spun at the wrong g if the program got edited, nobody "
     "has looked yet, {lead} aware"),
    ("hypothetical", EQUIP, "major", "{inc} door gasket could have been leaking all week, not ruled out"),
    ("omission", EQUIP, "major", "daily bead check on {cytometer} not done before the release panel was run at "
     "{time}"),
    ("omission", EQUIP, "major", "{crf} alarm not acknowledged until {time}"),
    ("omission", EQUIP, "major", "{counter} has not been calibrated since {date}"),
    ("omission", EQUIP, "major", "temp mapping was never done on {dewar} after it was installed, product went in on "
     "{date}"),
    # ---------------------------------------------------------------- material
    ("event", MAT, "major", "{reagent} {lot} expired {date}, caught after it was already in the bag"),
    ("event", MAT, "major", "pharmacy sent up the wrong lot of {reagent}, box says {lot} and the kit list says "
     "otherwise"),
    ("event", MAT, "major", "grabbed a vial of {reagent} off the quarantine shelf (orange tag) by mistake and used "
     "it at {time}"),
    ("event", MAT, "major", "{reagent} case came in crushed on one corner, two bottles wet inside the box, {lot}"),
    ("event", MAT, "major", "{reagent} was left out on the counter overnight, label says 2-8C"),
    ("event", f"{MAT}+{PROC}", "major", "ran out of CS10 so used {alt} instead, ok'd by {lead} over the phone at "
     "{time}"),
    ("event", MAT, "major", "CoA missing from the folder for {reagent} {lot}, we used it anyway"),
    ("event", MAT, "major", "{vector} came at -20 not the -60 or colder it should be, dry ice gone on arrival {time}"),
    ("event", MAT, "major", "peel pouch on the first spike set was torn, sterile barrier gone, {tech} binned it and "
     "got another from stores"),
    ("event", MAT, "major", "{vector} thawed and then got put back in the -80, so it's been refrozen once before use "
     "on {pt}"),
    ("event", MAT, "major", "bead lot in the kit isn't the one QA released, {lot} vs what's on the approved list"),
    ("event", MAT, "major", "{reagent} found frozen solid in the back of the fridge at {time}, should never be "
     "frozen"),
    ("hedged", MAT, "major", "{reagent} vial might be past its 30 day in-use window, not sure when it was opened"),
    ("hedged", MAT, "major", "think the media may have sat in the warm room longer than allowed before use on day "
     "{day}"),
    ("hedged", MAT, "major", "possibly grabbed the wrong HSA strength for {pt}, looks like 5% not 25%, checking with "
     "{lead}"),
    ("historical", MAT, "major", "last quarter a shipment of CS10 came in with the wrong label, same vendor as {lot}"),
    ("historical", MAT, "major", "previous lot of {vector} showed up without a CoA and was held for a week"),
    ("historical", MAT, "major", "earlier this year a Plasma-Lyte delivery froze in the truck and got pulled, {date}"),
    ("hypothetical", MAT, "major", "if the dry ice ran out before delivery the {vector} could have warmed, waiting "
     "on the shipper data"),
    ("hypothetical", MAT, "major", "the pump tubing could have been from the recalled lot, not ruled out until the "
     "number is checked for {pt}"),
    ("hypothetical", MAT, "major", "{reagent} could have been stored at RT over the weekend while the fridge was "
     "being defrosted"),
    ("omission", MAT, "major", "{reagent} {lot} was used in the wash but is not released by QA yet"),
    ("omission", MAT, "major", "no CoA on file for the {vector} we thawed at {time}"),
    ("omission", MAT, "major", "the DMSO was not stored at RT as labeled, found it in the fridge at {time}"),
    ("omission", MAT, "major", "spare bag set not in date, it was the only one left and went on for {pt}"),
    # ---------------------------------------------------------------- procedure
    ("event", PROC, "major", "skipped the pre-wash sample on {bag} because it was already hooked up, will note it"),
    ("event", PROC, "major", "DMSO got added before the bags were chilled, order got switched around on nights for "
     "{pt}"),
    ("event", PROC, "major", "product sat {hours} between end of collection and start of processing, max hold on the "
     "MBR is 1 hr"),
    ("event", PROC, "major", "added {vol_wrong} of CS10 instead of the {vol_right} on the worksheet"),
    ("event", PROC, "major", "transduced at {moi_wrong} vs the {moi_right} in the MBR, math error on the vector calc"),
    ("event", PROC, "major", "{newtech} did the thaw on {ward} by themselves, not signed off on the thaw SOP yet"),
    ("event", PROC, "major", "had to redo the count on {counter} since the first reading looked off, used the second "
     "one"),
    ("event", PROC, "major", "{lead} said go ahead and drop the second wash since the volume was low, done that way "
     "at {time}"),
    ("event", PROC, "major", "forgot the settle plates for the fill in {bsc}, so no EM for the open step"),
    ("event", PROC, "critical", "final product sterility bottles never got inoculated, found them still capped in "
     "{bsc} after the bag was sealed off"),
    ("event", PROC, "major", "thaw to infusion was {mins_long} min at the bedside on {ward}, order says infuse "
     "within 30 min"),
    ("event", PROC, "major", "spun at 400 x g instead of 200 x g, picked program 3 instead of 2 on the {time} wash"),
    ("event", PROC, "major", "started the transduction before the {vector} was fully thawed to save time, {tech}"),
    ("event", PROC, "major", "Tx ran faster than ordered, pump was set to {rate} mL/hr by mistake"),
    ("hedged", PROC, "major", "not sure the bags got their full 10 min at 4C before going into the {crf}"),
    ("hedged", PROC, "major", "might have done step 7 before step 6 on the worksheet, both got done by {time}"),
    ("hedged", PROC, "major", "I think {newtech} was still pending training on the {sepax} when they ran it"),
    ("hedged", PROC, "critical", "possible the sterility sample was never pulled from the final bag, can't find the "
     "bottles in {inc}"),
    ("historical", PROC, "major", "on the last CAR-T run the hold time was blown by an hour, per the deviation log "
     "from {date}"),
    ("historical", PROC, "major", "last month's batch for {pt} had the final sterility sample missed"),
    ("historical", PROC, "major", "prior shift repeated the wash on a different product, already closed out by "
     "{lead}"),
    ("hypothetical", PROC, "major", "if the wash really took as long as the timestamps say, hold time could have "
     "been exceeded for {pt}"),
    ("hypothetical", PROC, "critical", "final sterility sample could have been skipped if nobody pulled it before "
     "the seal at {time}, checking"),
    ("hypothetical", PROC, "major", "{newtech} could have run the step without training on the current revision, not "
     "ruled out yet"),
    ("omission", PROC, "major", "no EM plate taken during the open manipulation in {bsc}"),
    ("omission", PROC, "critical", "final product sterility sample not taken before the bags went into the {crf}"),
    ("omission", PROC, "major", "line clearance not done before starting {pt}"),
    ("omission", PROC, "major", "second wash not performed on {bag}, went straight to formulation"),
    ("omission", PROC, "major", "bags were not rested the full 10 min before the {crf} was started at {time}"),
    # ---------------------------------------------------------------- data integrity
    ("event", DATA, "critical", "{tech} signed the verifier box for {tech2} since they had already gone home"),
    ("event", DATA, "critical", "the {crf} temp log had the {time} readings already filled in for the rest of the "
     "run"),
    ("event", DATA, "critical", "we were both on {tech}'s login in {system} all shift, mine was locked out"),
    ("event", DATA, "critical", "counts on today's worksheet were copied off yesterday's sheet for {pt}, same "
     "numbers to the decimal"),
    ("event", DATA, "critical", "first count got saved over in the {counter} software when the next sample ran at "
     "{time}"),
    ("event", DATA, "critical", "receipt log dated {date} but the product actually came in the next day, someone put "
     "the earlier date on it"),
    ("event", DATA, "critical", "the first flow file for {pt} got deleted off the acquisition PC before anyone "
     "reviewed it"),
    ("event", DATA, "major", "wrote the bag weights on my glove in {bsc} and transferred them to the record at "
     "{time}"),
    ("event", DATA, "major", "thaw times put into {system} at end of shift from my scratch notes"),
    ("event", DATA, "major", "{cytometer} printout is missing from the batch packet for {pt}"),
    ("event", DATA, "major", "verification signature missing on the DMSO addition step, caught at {time}"),
    ("event", DATA, "minor", "crossed out the lot no. on page {page} and initialed, no reason written"),
    ("event", DATA, "minor", "date on the label log written as {date} instead of DD-MMM-YYYY"),
    ("event", DATA, "minor", "my handwriting on the bag weight line is hard to read, 4 could be a 9, {tech} wrote it "
     "again next to it"),
    ("hedged", DATA, "major", "not sure but the times on the infusion record for {pt} look like they were filled in "
     "after the fact"),
    ("hedged", DATA, "critical", "possibly someone else's initials on the thaw record, handwriting doesn't look like "
     "{tech}'s"),
    ("hedged", DATA, "major", "I think the {sepax} report for this run never printed, may be missing from the file"),
    ("historical", DATA, "major", "audit last year found shared logins on the acquisition PC for {cytometer}"),
    ("historical", DATA, "major", "prev batch had a backdated entry on the receipt form, CAPA still open from {date}"),
    ("historical", DATA, "minor", "the last run's record had corrections without reasons on pages {page} and 14"),
    ("hypothetical", DATA, "critical", "if the count was saved over the first one then the original result on "
     "{counter} could be gone"),
    ("hypothetical", DATA, "critical", "temps could have been copied from the prior day on the {crf} sheet, every "
     "value matches"),
    ("hypothetical", DATA, "major", "if {tech} filled the log in later from memory the times could be off, checking "
     "with them"),
    ("omission", DATA, "major", "second check not done on the {vector} volume before the add at {time}"),
    ("omission", DATA, "major", "no witness signature on the spike step for {bag}"),
    ("omission", DATA, "major", "thaw time not recorded at the bedside, added later by {rn}"),
    ("omission", DATA, "minor", "no reason given for the correction on page {page}"),
    ("omission", DATA, "major", "{crf} printout not attached to the record for {pt}"),
    # ---------------------------------------------------------------- identity / custody
    ("event", IDENT, "critical", "COI on {bag} is one digit off from the one on the infusion order, caught at the "
     "bedside at {time}"),
    ("event", IDENT, "critical", "found an unlabeled 50 mL tube with cells in {bsc} after {pt}'s processing was done"),
    ("event", IDENT, "critical", "two patients' products ended up in the same hood for a few min at changeover, {pt} "
     "and the next one"),
    ("event", IDENT, "critical", "DIN on the apheresis bag doesn't match the DIN on the collection paperwork for "
     "{pt}"),
    ("event", IDENT, "critical", "seal on the shipper reads {seal} but the custody form has a different number"),
    ("event", IDENT, "critical", "at bedside the wristband MRN matched but the bag label still had the patient's old "
     "last name, {rn}"),
    ("event", IDENT, "critical", "cassette label printed for {pt2} instead of {pt}, caught at {dewar}"),
    ("event", IDENT, "major", "courier showed up {hours} late for the pickup, shipper sat in the lab under watch"),
    ("event", IDENT, "major", "logger wasn't started until the shipper was already out the door at {time}"),
    ("event", IDENT, "major", "handover from apheresis to the lab at approximately {time}, nobody wrote the time on "
     "the custody form"),
    ("event", IDENT, "major", "opened the dry shipper on {ward} and there was no data logger in it"),
    ("event", IDENT, "critical", "tubes from {pt} and {pt2} were spun together in the same centrifuge rack"),
    ("event", IDENT, "major", "courier handed the shipper to the unit clerk instead of the receiving RN, custody "
     "signature gap of approximately {mins} min"),
    ("hedged", IDENT, "critical", "I might have put the {pt} label on the wrong cryobag, the two were side by side "
     "in the hood"),
    ("hedged", IDENT, "critical", "possible mix up at receipt on {ward}, tube rack had two different UPNs on it"),
    ("hedged", IDENT, "major", "not sure the logger was running during transport to {ward}, file shows a gap around "
     "{time}"),
    ("historical", IDENT, "major", "last month a bag went out with a mismatched COI label and got caught at the "
     "bedside on {ward}"),
    ("historical", IDENT, "major", "courier was {hours} late on the previous shipment for this patient"),
    ("historical", IDENT, "major", "the earlier collection for {pt} had an unlabeled sample tube in the rack"),
    ("hypothetical", IDENT, "critical", "both patients' bags sat in the same thaw rack at {time}, labels could have "
     "been swapped, not ruled out"),
    ("hypothetical", IDENT, "major", "if the logger wasn't started then we can't show the transport temps for {pt}"),
    ("hypothetical", IDENT, "critical", "the {coi} label could have gone on the wrong bag if the printer queue got "
     "mixed"),
    ("omission", IDENT, "critical", "label not checked against the COI before {bag} went up to {ward}"),
    ("omission", IDENT, "critical", "bedside 2 person ID check not done before spiking {bag}"),
    ("omission", IDENT, "major", "custody handover time not recorded for {pt}"),
    ("omission", IDENT, "major", "temp logger not started before the shipper left at {time}"),
    ("omission", IDENT, "critical", "DIN on the bag not verified against the paperwork at receipt on {ward}"),
    # ---------------------------------------------------------------- several categories
    ("event", f"{CONT}+{DATA}", "critical", "{bag} leaked a little during the thaw and the thaw times were not "
     "written down till {time}, from memory"),
    ("event", f"{OOS}+{IDENT}", "critical", "shipper arrived on {ward} with product at {ship_temp} and the logger "
     "had never been started"),
    ("event", f"{MAT}+{PROC}", "major", "{reagent} used was past its date and the count had to be redone after"),
    ("event", f"{EQUIP}+{PROC}", "major", "{sepax} error at {time} so the whole wash was run a second time from the "
     "start"),
    ("event", f"{DATA}+{IDENT}", "critical", "bedside label check for {pt} was signed by {tech} for {tech2}, and "
     "nobody actually compared the bag to the wristband"),
    # ---------------------------------------------------------------- run-on shift notes, event buried in routine
    ("event", PROC, "major", "night summary: {bags} bags thawed and infused on {ward}, vitals q15 min x4, no "
     "reactions; {bag} hung {mins_long} min after thaw since pharmacy was slow to verify, rest within window; dewars "
     "topped off"),
    ("event", IDENT, "critical", "0200-0600 fed day {day} cultures, took IPC samples, restocked hood; found a 15 mL "
     "tube with cells and no label in the fridge door next to {pt}'s tubes, set it aside and told {lead}; LN2 fill "
     "done"),
    ("event", EQUIP, "major", "collection on {pt} went fine, {vol} processed, patient c/o tingling so calcium given "
     "per protocol; Optia froze on the rinseback screen for a couple min and had to be power cycled; product to lab "
     "{time}"),
    ("event", OOS, "critical", "QC round up for {pt}: gram stain negative, endotoxin {endo_ok}, myco negative, CD3 "
     "{purity_ok}; viab only {viab_low} so it didn't make the 70% release cutoff, QA to call the MD in the morning"),
    ("event", MAT, "major", "set up for the {time} wash: kit {lot}, saline, HSA; 2 of the 4 Plasma-Lyte bags turned "
     "out to be a week out of date, one was already spiked and used before I noticed; wash otherwise fine"),
    ("event", DATA, "critical", "cryo done at {time}, {bags} bags in the {crf}, curve looked normal; the start temp "
     "field on the sheet was already filled in when I got there, not my writing, left it and flagged to {lead}"),
    ("event", CONT, "critical", "vector add for {pt} at {time}: {moi_ok}, 2 person check done; pulling the syringe "
     "out the luer came off and a few drops went on the hood surface and the bag port, wiped and carried on"),
    ("event", IDENT, "major", "product left the lab at {time} with the runner and was handed to {rn} on {ward} "
     "sometime after, nobody wrote the receipt time; label and COI checked at bedside and fine"),
    ("event", PROC, "major", "harvest went ok, {bags} bags, beads removed; ended up redoing the final wash because "
     "the first pellet looked loose and cells were still in the sup; final vol {bagvol}"),
    ("event", CONT, "critical", "thaw on {ward} {time}, {rn} and I checked labels x2, COI good; bag looked kinda "
     "cloudy-ish once thawed, not the usual pink, infusion held and the bag sent back to the lab"),
    ("negated", "", "none", "end of shift: {bags} bags thawed on {ward}, no leaks or cracks, labels and COI matched "
     "at bedside, each hung within 30 min, no reactions, {rn} signed receipt at {time}"),
    ("negated", "", "none", "QC round up for {pt}: gram stain negative, endotoxin {endo_ok}, myco negative, viab "
     "{viab_ok} vs >=70%, CD3 {purity_ok}; nothing out, packet to QA"),
    ("negated", "", "none", "vector add for {pt} at {time}: {moi_ok}, 2 person check done, syringe came off clean, "
     "no drips on the hood or port, culture back in {inc}"),
    ("routine", "", "none", "0000-0600 routine: fed day {day} cultures, IPC samples to QC, LN2 fill on {dewar}, hood "
     "cleaned, EM plates placed, handover at {time2}"),
    ("routine", "", "none", "collection on {pt}: {vol} processed, patient c/o tingling so calcium given per "
     "protocol, product to lab at {time}, custody form signed"),
    # ---------------------------------------------------------------- negated (same vocabulary, nothing wrong)
    ("negated", "", "none", "harvest done {bags} bags, no clumps, no leaks, ports dry, all bags intact and labels "
     "checked against COI"),
    ("negated", "", "none", "alarm test on {dewar} ok at {time}, level fine, temp {ln2_ok}"),
    ("negated", "", "none", "final viab {viab_ok}, spec >=70%, passes for {pt}"),
    ("negated", "", "none", "gram stain negative, no organisms seen on the {time} slide"),
    ("negated", "", "none", "BacT bottles no growth at day {day}, final read still to come per routine"),
    ("negated", "", "none", "myco PCR not detected; endotoxin {endo_ok} (limit < 5 EU/kg) for {pt}"),
    ("negated", "", "none", "no haze in the G-Rex on day {day}, media clear and pink"),
    ("negated", "", "none", "gloves checked at {time}, no tears or holes, changed per the 30 min routine"),
    ("negated", "", "none", "settle plates from {bsc} at 0 CFU, no excursions this shift"),
    ("negated", "", "none", "no alarms on the {crf} overnight, curve normal, printout attached for {pt}"),
    ("negated", "", "none", "COI and DIN on {bag} match the order, 2 RN check at bedside done at {time}"),
    ("negated", "", "none", "nothing expired, lot matches the kit list, CoA on file for {reagent}"),
    ("negated", "", "none", "hold time fine, approximately {mins} min from end of collection to start, well under "
     "the 24 hr max"),
    ("negated", "", "none", "pH {ph_ok}, glucose {gluc_ok}, both within range on day {day}"),
    ("negated", "", "none", "no deviations, no repeats, no substitutions on {pt} this shift"),
    ("negated", "", "none", "bead check on {cytometer} passed, cal good through {date_future}"),
    ("negated", "", "none", "logger started at {time} before the shipper was sealed, courier on time for {pt}"),
    ("negated", "", "none", "nothing unlabeled left in {bsc}, line clearance done between patients at {time}"),
    ("negated", "", "none", "temp on arrival at {ward} {ln2_ok}, no excursion on the logger"),
    ("negated", "", "none", "VCN {vcn_ok} c/c, within spec; CAR+ {car_ok}"),
    ("negated", "", "none", "thawed in {thawer} without issue, no cracks or leaks on inspection of {bag}"),
    ("negated", "", "none", "no power interruption during the {crf} run, UPS never kicked in, {tech}"),
    ("negated", "", "none", "patient tolerated the infusion well, no leaking at the spike site, {rn} monitoring"),
    ("negated", "", "none", "QA review of {pt}: no data gaps, entries made at the time, printouts all there"),
    ("negated", "", "none", "verified by {tech2}, second check done at {time}"),
    ("negated", "", "none", "no wet spots on the overwrap of {bag}, seal intact, no cloudiness"),
    ("negated", "", "none", "fingertip plates {cfu0} CFU both hands after the fill, below alert, {tech}"),
    ("negated", "", "none", "DP {dp_ok} Pa, in range all night in the grade B suite"),
    ("negated", "", "none", "{inc} at {temp_ok}, CO2 5.0%, no alarm at the {time} check"),
    ("negated", "", "none", "went through the fridge for expired stuff, nothing out of date, {reagent} good till "
     "{date_future}"),
    ("negated", "", "none", "no one untrained in the suite tonight, {newtech} only observed and did not handle "
     "product"),
    ("negated", "", "none", "no hold time issue, bags into the {crf} at {time}, within 60 min of the DMSO add"),
    ("negated", "", "none", "endotoxin below limit at {endo_ok}, gram stain negative for {pt}"),
    ("negated", "", "none", "label not smudged, readable after the bath, UPN matches the wristband for {pt}"),
    ("negated", "", "none", "no product left on the bench, everything in {dewar} by {time}"),
    ("negated", "", "none", "no error codes on the {sepax} today, wash ran clean in {mins} min"),
    ("negated", "", "none", "ruled out a leak on {bag} - the wet spot was condensation off the cold pack, bag dry "
     "after wiping, QA agreed"),
    ("negated", "", "none", "what looked like a crack on {bag} was a crease in the overwrap, bag intact under the "
     "light"),
    ("negated", "", "none", "first count and the duplicate agree within 8% on {counter}, no recount needed"),
    ("negated", "", "none", "no shared logins, everyone on their own badge in {system} tonight"),
    ("negated", "", "none", "no corrections on the thaw record for {pt}, all entries by {rn}"),
    ("negated", "", "none", "didn't see any clumps after the DMSO add, product looked even, {bags} bags filled"),
    ("negated", "", "none", "{moi_ok} per the MBR, vector volume double checked by {tech2}, no discrepancy"),
    ("negated", "", "none", "courier on time at {time}, seal {seal} matches the form"),
    ("negated", "", "none", "no temp excursion in transit to {ward}, logger max {ln2_ok}"),
    ("negated", "", "none", "all vial caps on and tight, no open vials in the rack at {time}"),
    ("negated", "", "none", "nothing grew on the EM plates from the grade B suite this week, {bsc} included"),
    ("negated", "", "none", "no late entries, everything signed as it was done by {tech} and {tech2}"),
    ("negated", "", "none", "CD34 dose {dose_ok}, above the 2 x 10^6/kg minimum, no issues"),
    ("negated", "", "none", "{crf} alarm test passed at {time}, alarm cleared per the weekly check"),
    ("negated", "", "none", "no issues with the Optia on {pt}, collection ran without pressure alarms, {vol} "
     "processed"),
    ("negated", "", "none", "no growth on the 14 day sterility for {pt}, released by QC on {date}"),
    ("negated", "", "none", "checked {bag} for particles and clumps, none seen, color normal"),
    ("negated", "", "none", "count looked off at first glance but matched the duplicate on {counter}, no redo needed"),
    ("negated", "", "none", "suspected pinhole on {bag} checked by {lead}, no leak found on the squeeze test"),
    ("negated", "", "none", "no visible turbidity in the day {day} flasks, all the same color, {inc}"),
    ("negated", "", "none", "the weld held fine on {bag}, pull test ok at {time}"),
    ("negated", "", "none", "thaw to start of infusion {mins_short} min, within the 30 min window, {rn}"),
    ("negated", "", "none", "label check done against COI and DIN for {pt}, both match, no discrepancy"),
    # ---------------------------------------------------------------- routine
    ("routine", "", "none", "started apheresis on {pt} at {time}, {vol} processed, {rn} checking vitals q15 min"),
    ("routine", "", "none", "{bags} bags into the {crf} at {time}, profile 4 running"),
    ("routine", "", "none", "product received on {ward} at {time}, handed to {rn}, custody form signed"),
    ("routine", "", "none", "{vector} thawed at RT per SOP, added at {moi_ok}, culture back in {inc} at {time}"),
    ("routine", "", "none", "counted on {counter}: {conc}, viab {viab_ok}"),
    ("routine", "", "none", "moved {bags} cryobags to {dewar} rack {rack}, inventory map updated"),
    ("routine", "", "none", "fed the G-Rex day {day}, pulled the IPC sample for glucose and lactate at {time}"),
    ("routine", "", "none", "count repeated per SOP step 4 as the required duplicate on {counter}, mean used"),
    ("routine", "", "none", "patient premedicated with acetaminophen and diphenhydramine, Tx started {time}, vitals "
     "stable"),
    ("routine", "", "none", "endotoxin sample to QC at {time}, LAL result expected tomorrow for {pt}"),
    ("routine", "", "none", "gram stain slide made and read by {tech} at {time}"),
    ("routine", "", "none", "washed on {sepax}, final vol {bagvol}, HSA added to {bag}"),
    ("routine", "", "none", "wiped down {bsc} with sporicidal then 70% IPA, EM plates set out at {time}"),
    ("routine", "", "none", "handover to days at {time2}: 2 products in culture, 1 in the {crf}, logs up to date"),
    ("routine", "", "none", "QC flow on {pt}: CD3 {purity_ok}, CAR+ {car_ok}, sent to QA for review"),
    ("routine", "", "none", "label reconciliation for {pt}: {bags} printed and used, none left over"),
    ("routine", "", "none", "{md} ok'd the infusion rate for {pt} at {time}"),
    ("routine", "", "none", "LN2 fill of {dewar} at {time}, level back to normal"),
    ("routine", "", "none", "day {day} split flasks 1:2 at {conc}, back in {inc}"),
    ("routine", "", "none", "thaw started {time} in {thawer}, bag to bedside in {mins_short} min"),
    ("routine", "", "none", "samples for VCN and flow sent down to QC at {time} for {pt}"),
    ("routine", "", "none", "DMSO added dropwise over 10 min on the cold block, {bags} bags sealed by {tech}"),
    ("routine", "", "none", "{pt} arrived for collection {time}, consent on chart, labs ok per {rn}"),
    ("routine", "", "none", "restocked {bsc} with spike sets, syringes and alcohol pads for nights"),
    ("routine", "", "none", "ran the weekly alarm test on {dewar}, logged in the binder at {time}"),
    ("routine", "", "none", "vector calc: {moi_ok}, volume drawn up by {tech}, checked by {tech2}"),
    ("routine", "", "none", "{rn} flushed the line with NS after the last bag, infusion done {time}"),
    ("routine", "", "none", "harvest at {time}: {bags} bags at {conc}, to QC for release testing"),
    ("routine", "", "none", "shipper packed, logger on, handed to the courier at {time}, seal {seal}"),
    ("routine", "", "none", "EM plates from the {time} session delivered to micro by {tech}"),
    ("routine", "", "none", "{crf} printout reviewed and signed by {tech2} for {pt}"),
    ("routine", "", "none", "retain vials x2 stored in {dewar}, rack {rack} for {pt}"),
]

SLOTS: dict[str, list[str]] = {
    "pt": ["UPN 20817", "UPN 21342", "UPN 19976", "UPN 22051", "pt 4471", "pt 5120", "MRN ending 3362",
           "MRN ending 8810"],
    "pt2": ["UPN 20871", "UPN 21324", "pt 4417", "pt 5102", "UPN 19967"],
    "coi": ["COI-7Q-20931", "COI 7Q-21458", "CoI 88-0412", "COI# 88-0577", "COI-3K-1190"],
    "bag": ["bag 2", "bag 3", "bag #4", "bag B", "the 2nd bag", "the last bag", "cryobag 3"],
    "bags": ["3", "4", "5", "6", "two", "four"],
    "time": ["0230", "0315", "0440", "14:05", "2210", "23:45", "0105", "1830", "06:50", "0512"],
    "time2": ["0600", "07:15", "0645", "06:30", "0700"],
    "tech": ["JM", "K.T.", "DR", "AO", "LP", "Marcus", "Priya", "Nate"],
    "tech2": ["SB", "R.W.", "Jen", "Tomas", "CH", "Aisha"],
    "lead": ["the CPL", "the charge tech", "Dr. Haskell", "the lab sup", "our lead", "QA on call", "the night sup"],
    "md": ["Dr. Okafor", "the BMT fellow", "the attending", "Dr. Lindqvist", "the on-call MD"],
    "rn": ["RN Ortiz", "RN Chen", "Kayla RN", "the infusion RN", "RN Mbeki"],
    "newtech": ["the new hire", "our new tech", "Dani (started Mon)", "the float tech", "the traveler tech"],
    "ward": ["5 West", "BMT 8N", "the infusion suite", "Rm 14 on 7 East", "the CTU", "peds BMT"],
    "bsc": ["BSC 3", "hood 2", "BSC-1", "the left hood", "hood #4"],
    "counter": ["NC-200", "Cellometer K2", "Sysmex", "Vi-CELL", "cell counter"],
    "cytometer": ["Canto", "the Lyric", "FACSCanto II", "the Navios", "the cytometer"],
    "sepax": ["Sepax", "Lovo", "Prodigy", "Sepax C-Pro", "LOVO #2"],
    "crf": ["CRF", "controlled-rate freezer", "CryoMed", "Planer", "CRF #2"],
    "dewar": ["LN2 tank 3", "MVE 1536 #2", "vapor tank B", "dewar 4", "the big LN2 tank", "tank 6"],
    "inc": ["incubator 2", "Heracell #3", "inc 5", "the top incubator", "incubator B"],
    "thawer": ["the plasma thawer", "the Helmer", "ThawSTAR", "the water bath", "the dry thawer"],
    "system": ["the eBR", "MES", "the tablet", "the CT module", "STEMLAB"],
    "reagent": ["HSA 25%", "Plasma-Lyte A", "ACD-A", "CryoStor CS10", "X-VIVO 15", "IL-2", "TransAct", "DNase",
                "the CD3/CD28 beads", "the DMSO"],
    "alt": ["CS5", "the Cryoserv DMSO", "a different HSA vendor", "Normosol", "the backup lot"],
    "lot": ["lot 2207A14", "lot 88315", "LN 4C0921", "lot# 230517-2", "lot 71K0044", "lot X19-6"],
    "vector": ["LV vector", "lenti", "AAV9 vector", "LVV lot 19", "AAV", "vector"],
    "date": ["3/14", "Feb 2", "02/28/25", "1/9", "last Fri", "Oct 31"],
    "date_future": ["12/2026", "Jun 2026", "2026-03", "next March", "11/30/26"],
    "day": ["3", "5", "7", "8", "9", "10"],
    "mins": ["20", "35", "40", "45", "55", "25"],
    "mins_short": ["12", "15", "18", "22", "9"],
    "mins_long": ["45", "50", "55", "70", "~40"],
    "hours": ["2 hr", "~3 hrs", "90 min", "4h", "over an hour", "2.5 hrs"],
    "rate": ["250", "300", "480", "400"],
    "viab_low": ["61%", "58 %", "64.5%", "66%", "52%", "68.9 %", "0.63"],
    "viab_ok": ["91%", "88 %", "94.2%", "86%", "79%", "97 %", "0.92"],
    "conc": ["7.2 x 10^6/mL", "4.8x10^6/ml", "1.15 x 10^7/mL", "9.6e6/mL", "3.3 x10e6/mL", "6.95 x 10^6/mL"],
    "dose_low": ["1.9 x 10^6 CD34+/kg", "1.6x10^6 CD34/kg", "1.45 x10^6/kg", "1.8e6 CD34/kg"],
    "dose_ok": ["3.4 x 10^6 CD34+/kg", "5.1x10^6/kg", "2.9e6 CD34/kg", "4.2 x 10^6/kg"],
    "ph_low": ["6.62", "6.7", "6.58", "6.81", "6.45"],
    "ph_ok": ["7.21", "7.3", "7.08", "7.4", "7.15"],
    "gluc_low": ["62 mg/dL", "48", "71 mg/dl", "55mg/dL"],
    "gluc_ok": ["212 mg/dL", "180", "245 mg/dl", "198mg/dL"],
    "lactate": ["24", "26.5", "31", "22.8"],
    "temp_bad": ["35.2C", "38.6 C", "34.8C", "39.1°C", "35.9 C"],
    "temp_ok": ["36.9C", "37.1 C", "37.0°C", "36.8 C", "37.2C"],
    "ln2_ok": ["-178 C", "-182C", "-176°C", "-185 C", "-171C"],
    "ship_temp": ["-121 C", "-98C", "-134°C", "-60 C", "-142C"],
    "vcn_high": ["5.8", "6.3", "7.1", "5.4"],
    "vcn_ok": ["1.9", "2.4", "3.1", "0.9", "2.7"],
    "car_low": ["8%", "11 %", "6.5%", "12%", "9.8%"],
    "car_ok": ["34%", "41 %", "27.5%", "52%", "38%"],
    "purity_low": ["71%", "68 %", "74.5%", "62%"],
    "purity_ok": ["96%", "93.4 %", "98%", "91%"],
    "endo_high": ["6.1 EU/kg", "8.4 EU/kg", "5.9 EU/kg", "12 EU/kg"],
    "endo_ok": ["<0.5 EU/mL", "0.21 EU/kg", "< 0.25 EU/mL", "0.6 EU/kg", "1.1 EU/kg"],
    "cfu_a": ["2", "3", "4", "6"],
    "cfu_b": ["3", "4"],
    "cfu_c": ["31", "38", "44", "52"],
    "cfu0": ["0", "0/0", "zero"],
    "dp_low": ["4.2", "6", "2.8", "7.5"],
    "dp_ok": ["14.6", "12", "18.2", "15"],
    "vol_wrong": ["15 mL", "22mL", "8 ml", "30 mL"],
    "vol_right": ["10 mL", "12.5 mL", "20mL", "25 ml"],
    "moi_wrong": ["MOI 10", "MOI of 8", "MOI ~12"],
    "moi_right": ["MOI 5", "MOI 2.5", "MOI of 3"],
    "moi_ok": ["MOI 5", "MOI 2.5", "MOI of 3", "MOI 10"],
    "seal": ["#448120", "448127", "0091733", "# 0091377"],
    "page": ["3", "7", "12", "9"],
    "rack": ["C4", "2 box 3", "B-7", "11"],
    "vol": ["12 L", "15.5L", "2.5 blood volumes", "18 L"],
    "bagvol": ["210 mL", "145mL", "98 ml", "180 mL"],
    "err": ["E-41", "code 217", "err 0x3F", "E 12", "alarm 5008"],
}

# Clinical shorthand of the unit (US): applied word by word at a rate set in build.holdout2_noise.
ABBREVIATIONS: dict[str, list[str]] = {
    "patient": ["pt"],
    "patients": ["pts"],
    "with": ["w/"],
    "without": ["w/o"],
    "approximately": ["~", "approx", "abt"],
    "hours": ["hrs", "hr"],
    "hour": ["hr"],
    "minutes": ["min", "mins"],
    "temperature": ["temp"],
    "received": ["rec'd", "recvd"],
    "nurse": ["RN"],
    "infusion": ["inf", "Tx"],
    "product": ["prod"],
    "viability": ["viab", "via"],
    "laboratory": ["lab"],
    "twice": ["x2"],
    "and": ["&", "+"],
    "before": ["b4"],
    "overnight": ["o/n"],
    "negative": ["neg", "(-)"],
    "positive": ["pos", "(+)"],
    "morning": ["AM", "am"],
    "second": ["2nd"],
    "first": ["1st"],
    "minimum": ["min"],
    "maximum": ["max"],
    "centrifuge": ["fuge", "cfg"],
    "collection": ["collxn", "coll"],
    "processing": ["proc"],
    "verified": ["verif'd", "v'd"],
    "checked": ["chk'd", "ck'd"],
    "check": ["chk", "ck"],
    "supervisor": ["sup", "supv"],
    "physician": ["MD"],
    "signature": ["sig"],
    "information": ["info"],
    "sample": ["specimen", "spl"],
}

# Phone / tablet spellings of the night shift (informal US).
SPELLINGS: dict[str, list[str]] = {
    "through": ["thru"],
    "though": ["tho"],
    "tonight": ["tonite"],
    "night": ["nite"],
    "nights": ["nites"],
    "because": ["b/c", "bc", "cuz"],
    "probably": ["prob", "prolly"],
    "okay": ["ok", "k"],
    "tomorrow": ["tmrw", "tomorow"],
    "weekend": ["wknd"],
    "definitely": ["def", "definately"],
    "something": ["smth"],
    "please": ["pls"],
    "until": ["til", "till"],
    "around": ["round"],
    "separately": ["seperately"],
    "received": ["recieved"],
}
