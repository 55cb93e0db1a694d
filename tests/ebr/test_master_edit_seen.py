"""Nobody edits a master record draft over content they never saw (ALCOA+: an edit is made to the
content its author read; EU GMP Part I 4.3). Every edit form of the version page carries `seen`,
the version of the draft read, and the edit services refuse, under the version's row lock, when
another author changed the draft since: nothing is overwritten, what was typed stays on the form.

Also: QA sees, before making a version effective, how many operators are trained on it, and the
audit event records that number."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from ebr.models import MasterRecordVersion, StepTemplate, VersionStatus
from ebr.services import master_records as master_services
from qms.audit import Event
from qms.models import AuditEvent
from qms.roles import Role
from qms.staleness import CHANGED_SINCE, record_version
from tests.conftest import PASSWORD, login, person, unique, while_held
from tests.ebr.conftest import a_draft, resources  # noqa: F401 (resources: fixture)
from tests.ebr.test_instructions import media, png  # noqa: F401 (fixture: images to the test's folder)

# Marked test by test: the race test needs committed data (`committed`), which the test
# transaction of a module-wide mark would hide from its threads.

FIRST_TEXT = "Check the label against the chain of identity."
# Long, as instructions are: typing it again would be the worst outcome of a refusal.
SECOND_TEXT = "Check the label.\n\n" + " ".join(["Inspect the bag for leaks, then weigh it."] * 40)


def the_step(version):  # type: ignore[no-untyped-def]
    return StepTemplate.objects.get(stage__version=version, code="1.1")


@pytest.fixture
def co_author(make_user):  # type: ignore[no-untyped-def]
    return make_user(Role.QA_REVIEWER, full_name="Cora Coauthor")


def stored(version):  # type: ignore[no-untyped-def]
    """What a refused edit must leave untouched: the draft's content (its version) and the trail."""
    return record_version(version), AuditEvent.objects.count()


# --- services ----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_second_author_saving_instructions_over_an_unseen_change_is_refused_and_nothing_is_overwritten(
        supervisor, co_author):
    version = a_draft(supervisor)
    seen = record_version(version)  # both authors open the draft
    master_services.step_instructions_update(actor=co_author, step=the_step(version), instructions=FIRST_TEXT,
                                             reason="Chain of identity", seen=seen)
    before = stored(version)

    with pytest.raises(ValidationError) as refusal:
        master_services.step_instructions_update(actor=supervisor, step=the_step(version), instructions=SECOND_TEXT,
                                                 reason="Leak check", seen=seen)

    message = refusal.value.messages[0]
    assert message.startswith(CHANGED_SINCE) and co_author.full_name in message
    assert message.endswith("review the changes, then save again.")
    assert the_step(version).instructions == FIRST_TEXT
    assert stored(version) == before


@pytest.mark.django_db
def test_an_edit_on_the_version_read_is_saved(supervisor):
    version = a_draft(supervisor)

    master_services.step_instructions_update(actor=supervisor, step=the_step(version), instructions=FIRST_TEXT,
                                             reason="Chain of identity", seen=record_version(version))
    master_services.step_instructions_update(actor=supervisor, step=the_step(version), instructions=SECOND_TEXT,
                                             reason="Leak check", seen=record_version(version))

    assert the_step(version).instructions == SECOND_TEXT


EDITS = {
    "stage": lambda author, version, step, res, seen: master_services.stage_add(
        actor=author, version=version, name="Release", seen=seen),
    "step": lambda author, version, step, res, seen: master_services.step_add(
        actor=author, stage=step.stage, code="1.2", title="Store", instructions="At 4 °C.", seen=seen),
    "parameter": lambda author, version, step, res, seen: master_services.parameter_add(
        actor=author, step=step, code="seal", label="Seal intact", kind="yes_no", expected="yes", seen=seen),
    "parameter change": lambda author, version, step, res, seen: master_services.parameter_update(
        actor=author, parameter=step.parameters.get(code="temp"), reason="Tighter", upper_limit=Decimal("6"),
        seen=seen),
    "material": lambda author, version, step, res, seen: master_services.step_material_add(
        actor=author, step=step, material=res["media"], quantity=Decimal("10"), seen=seen),
    "instructions": lambda author, version, step, res, seen: master_services.step_instructions_update(
        actor=author, step=step, instructions=FIRST_TEXT, reason="Clearer", seen=seen),
    "image": lambda author, version, step, res, seen: master_services.instruction_image_add(
        actor=author, step=step, content=png(), caption="Label", seen=seen),
}


@pytest.mark.django_db
@pytest.mark.parametrize("edit", EDITS, ids=list(EDITS))
def test_every_edit_of_a_draft_changed_since_it_was_read_is_refused(edit, supervisor, co_author, resources,  # noqa: F811
                                                                     media):  # noqa: F811
    version = a_draft(supervisor)
    seen = record_version(version)
    master_services.stage_add(actor=co_author, version=version, name="Meanwhile")  # the other author's change
    before = stored(version)

    with pytest.raises(ValidationError, match=CHANGED_SINCE) as refusal:
        EDITS[edit](supervisor, version, the_step(version), resources, seen)

    assert co_author.full_name in refusal.value.messages[0]
    assert stored(version) == before
    EDITS[edit](supervisor, version, the_step(version), resources, record_version(version))  # on the current page
    assert record_version(version) != before[0]


@pytest.mark.django_db
def test_the_prescription_change_is_refused_over_an_unseen_change(supervisor, co_author, resources):  # noqa: F811
    version = a_draft(supervisor)
    master_services.step_material_add(actor=supervisor, step=the_step(version), material=resources["media"],
                                      quantity=Decimal("10"))
    seen = record_version(version)
    master_services.step_material_update(actor=co_author, step=the_step(version), material=resources["media"],
                                         quantity=Decimal("12"), tolerance=None, reason="Scale-up", seen=seen)

    with pytest.raises(ValidationError, match=CHANGED_SINCE):
        master_services.step_material_update(actor=supervisor, step=the_step(version), material=resources["media"],
                                             quantity=Decimal("8"), tolerance=None, reason="Scale-down", seen=seen)

    assert the_step(version).materials.get().quantity == Decimal("12")


@pytest.mark.django_db
def test_no_page_read_is_no_comparison(supervisor, co_author):
    """The demo data, commands and other tests edit without a page: `seen` None compares nothing."""
    version = a_draft(supervisor)
    master_services.stage_add(actor=co_author, version=version, name="Meanwhile")

    master_services.step_instructions_update(actor=supervisor, step=the_step(version), instructions=FIRST_TEXT,
                                             reason="Clearer")

    assert the_step(version).instructions == FIRST_TEXT


def test_an_edit_waits_for_the_version_lock_and_then_sees_the_change_it_waited_for(committed):
    """Two saves at once: the second waits on the version's row lock while the first is written,
    then compares with what the first committed. Checked before the lock, it would have found
    nothing changed and written over the first author's text."""
    first, second = person(Role.SUPERVISOR, "Sofia Supervisor"), person(Role.QA_REVIEWER, "Cora Coauthor")
    version = a_draft(first, code=unique("MBR-RACE"))
    seen = record_version(version)
    step = the_step(version)

    refused = while_held(
        lambda: master_services.step_instructions_update(actor=first, step=step, instructions=FIRST_TEXT,
                                                         reason="First", seen=seen),
        lambda: master_services.step_instructions_update(actor=second, step=step, instructions=SECOND_TEXT,
                                                         reason="Second", seen=seen))

    assert isinstance(refused, ValidationError) and CHANGED_SINCE in refused.messages[0], refused
    assert the_step(version).instructions == FIRST_TEXT


# --- the page ----------------------------------------------------------------------------------

def url(version, action=""):  # type: ignore[no-untyped-def]
    return f"/master-records/{version.master_record.code}/v{version.version}/" + (f"{action}/" if action else "")


class _Forms(HTMLParser):
    """The action and hidden `seen` of every form of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self.forms.append({"action": found.get("action"), "seen": None})
        elif tag == "input" and found.get("name") == "seen" and self.forms:
            self.forms[-1]["seen"] = found.get("value")


def page_forms(html: str) -> dict[str, list[str | None]]:
    parser = _Forms()
    parser.feed(html)
    by_action: dict[str, list[str | None]] = {}
    for form in parser.forms:
        by_action.setdefault((form["action"] or "").rstrip("/").rsplit("/", 1)[-1], []).append(form["seen"])
    return by_action


@pytest.mark.django_db
def test_every_edit_form_of_the_draft_page_carries_the_version_read(client, supervisor, resources):  # noqa: F811
    version = a_draft(supervisor)
    master_services.step_material_add(actor=supervisor, step=the_step(version), material=resources["media"],
                                      quantity=Decimal("10"))
    login(client, supervisor)

    html = client.get(url(version)).content.decode()
    forms = page_forms(html)

    seen = record_version(version)
    for action in ("stage", "step", "parameter", "material", "material_change", "instructions", "image"):
        assert forms.get(action), f"no {action} form on the page"
        assert forms[action] == [seen] * len(forms[action]), action
    assert "{#" not in html and "{%" not in html  # no template comment leaks onto the page


@pytest.mark.django_db
def test_two_authors_on_the_page_the_second_save_is_refused_with_the_typed_text_kept(
        client, supervisor, co_author):
    version = a_draft(supervisor)
    step = the_step(version)
    login(client, supervisor)
    client.get(url(version))
    seen = record_version(version)  # what the supervisor's page carries
    master_services.step_instructions_update(actor=co_author, step=step, instructions=FIRST_TEXT,
                                             reason="Chain of identity", seen=seen)  # the co-author's tab

    response = client.post(url(version, "instructions"), {"step": step.pk, "seen": seen, "instructions": SECOND_TEXT,
                                                          "reason": "Leak check"})

    html = response.content.decode()
    assert response.status_code == 422
    assert f"{CHANGED_SINCE} ({co_author.full_name} at" in html and "review the changes, then save again." in html
    assert SECOND_TEXT.strip() in html.replace("&#x27;", "'")  # what was typed, on the form again
    assert 'value="Leak check"' in html
    assert FIRST_TEXT in html  # the page shows what the other author saved
    current = record_version(version)
    assert page_forms(html)["instructions"] == [current] and f'value="{seen}"' not in html
    assert the_step(version).instructions == FIRST_TEXT

    again = client.post(url(version, "instructions"), {"step": step.pk, "seen": current,
                                                       "instructions": SECOND_TEXT, "reason": "Leak check"},
                        follow=True)
    assert again.status_code == 200
    assert "Instructions of step 1.1 saved." in again.content.decode()
    assert the_step(version).instructions == SECOND_TEXT


@pytest.mark.django_db
def test_a_stale_parameter_and_stage_are_refused_on_their_forms_with_what_was_typed(client, supervisor, co_author):
    version = a_draft(supervisor)
    step = the_step(version)
    login(client, supervisor)
    seen = record_version(version)
    master_services.stage_add(actor=co_author, version=version, name="Meanwhile")
    before = stored(version)

    parameter = client.post(url(version, "parameter"), {"step": step.pk, "seen": seen, "code": "weight",
                                                        "label": "Bag weight", "kind": "number", "unit": "g"})
    stage = client.post(url(version, "stage"), {"seen": seen, "name": "Cryopreservation"})

    for response in (parameter, stage):
        assert response.status_code == 422 and "review the changes, then save again." in response.content.decode()
    assert 'value="Bag weight"' in parameter.content.decode()
    assert 'value="Cryopreservation"' in stage.content.decode()
    assert stored(version) == before


@pytest.mark.django_db
def test_an_edit_posted_without_the_version_read_is_refused(client, supervisor):
    version = a_draft(supervisor)
    login(client, supervisor)
    before = stored(version)

    response = client.post(url(version, "instructions"), {"step": the_step(version).pk, "instructions": FIRST_TEXT,
                                                          "reason": "Clearer"})

    assert response.status_code == 422
    assert "does not say which version of the record you read" in response.content.decode()
    assert FIRST_TEXT in response.content.decode()
    assert stored(version) == before


@pytest.mark.django_db
def test_every_edit_through_the_page_says_what_was_saved(client, supervisor, resources):  # noqa: F811
    version = a_draft(supervisor)
    step = the_step(version)
    login(client, supervisor)

    def post(action, data):  # type: ignore[no-untyped-def]
        response = client.post(url(version, action), {"seen": record_version(version), **data}, follow=True)
        assert response.status_code == 200, response.content.decode()[:2000]
        return response.content.decode()

    assert "Stage 2. Release added." in post("stage", {"name": "Release"})
    assert "Step 1.2 Store added to Receipt." in post("step", {"stage": step.stage.pk, "code": "1.2", "title": "Store",
                                                               "instructions": "At 4 °C."})
    assert "Parameter seal added to step 1.1." in post("parameter", {"step": step.pk, "code": "seal",
                                                                     "label": "Seal intact", "kind": "yes_no"})
    assert "MED is prescribed in step 1.1." in post("material", {"step": step.pk, "material": resources["media"].pk,
                                                                 "quantity": "10"})
    assert "Instructions of step 1.1 saved." in post("instructions", {"step": step.pk, "instructions": FIRST_TEXT,
                                                                      "reason": "Clearer"})


# --- making a version effective with nobody trained on it ----------------------------------------

def approved(supervisor, qa_reviewer, qa_approver):  # type: ignore[no-untyped-def]
    version = a_draft(supervisor, code="MBR-TRAIN-001")
    master_services.version_submit(actor=supervisor, version=version, password=PASSWORD, username=supervisor.username)
    master_services.version_review(actor=qa_reviewer, version=version, password=PASSWORD,
                                   username=qa_reviewer.username)
    return master_services.version_approve(actor=qa_approver, version=version, password=PASSWORD,
                                           username=qa_approver.username)


def trained(person_trained, version, qa_approver):  # type: ignore[no-untyped-def]
    """Recorded by the QA approver, who gave the training (their signature vouches for it at once)."""
    from qms.services.training import training_record_add

    training_record_add(actor=qa_approver, user=person_trained, document_kind="master_record",
                        document_code=version.master_record.code, version=str(version.version),
                        trained_on=timezone.localdate(), trainer=qa_approver,
                        valid_until=timezone.localdate() + timedelta(days=365), reason="Initial training",
                        password=PASSWORD, username=qa_approver.username)


def effective_event(version):  # type: ignore[no-untyped-def]
    return AuditEvent.objects.get(event_type=Event.MASTER_VERSION_EFFECTIVE, target_id=str(version.pk),
                                  target_type="ebr.masterrecordversion")


@pytest.mark.django_db
def test_qa_is_warned_before_making_effective_a_version_nobody_is_trained_on(
        client, supervisor, qa_reviewer, qa_approver):
    version = approved(supervisor, qa_reviewer, qa_approver)
    trained(supervisor, version, qa_approver)  # trained, but not an operator: executes nothing here
    login(client, qa_approver)

    page = client.get(url(version)).content.decode()

    assert ("No operator is trained on v1 yet: operators will be refused at the first step until their training is "
            "recorded.") in page
    made = client.post(url(version, "effective"), {"seen": record_version(version), "reason": "Effective date"},
                       follow=True)
    assert made.status_code == 200  # not refused: training is often recorded after approval
    assert MasterRecordVersion.objects.get(pk=version.pk).status == VersionStatus.EFFECTIVE
    assert "No operator is trained on v1 yet" in made.content.decode()
    assert effective_event(version).data["trained_operators"] == 0


@pytest.mark.django_db
def test_qa_sees_how_many_operators_are_trained_and_the_audit_event_records_it(
        client, supervisor, qa_reviewer, qa_approver, operator, make_user):
    version = approved(supervisor, qa_reviewer, qa_approver)
    trained(operator, version, qa_approver)
    second = make_user(Role.OPERATOR, full_name="Oscar Operator")
    trained(second, version, qa_approver)
    left = make_user(Role.OPERATOR, full_name="Leo Left")
    trained(left, version, qa_approver)
    from qms.services.users import user_deactivate

    user_deactivate(actor=make_user(Role.ADMIN), user=left, reason="Left the company")
    make_user(Role.OPERATOR, full_name="Una Untrained")
    login(client, qa_approver)

    page = client.get(url(version)).content.decode()

    assert "2 active operators hold current training on v1." in page
    assert "Nobody is trained" not in page
    master_services.version_make_effective(actor=qa_approver, version=version, reason="Trained",
                                           seen=record_version(version))
    event = effective_event(version)
    assert event.data["trained_operators"] == 2
    assert {"field": "status", "old": "approved", "new": "effective"} in event.data["changes"]


@pytest.mark.django_db
def test_an_edit_refused_because_the_draft_was_submitted_meanwhile_shows_what_was_typed(client, supervisor,
                                                                                          co_author):
    version = a_draft(supervisor)
    step = the_step(version)
    login(client, supervisor)
    client.get(url(version))
    seen = record_version(version)
    master_services.version_submit(actor=co_author, version=version, password=PASSWORD,
                                   username=co_author.username)  # sent to review from the co-author's tab

    response = client.post(url(version, "instructions"), {"step": step.pk, "seen": seen, "instructions": SECOND_TEXT,
                                                          "reason": "Leak check"})

    html = response.content.decode().replace("&#x27;", "'")
    assert response.status_code == 422
    unsaved = html.split('id="unsaved-edit"')[1].split("</section>")[0]
    assert "Not saved: this version is no longer a draft (in review)." in unsaved
    assert SECOND_TEXT in unsaved and "Leak check" in unsaved  # nothing typed is lost, the page has no edit form now
    assert the_step(version).instructions != SECOND_TEXT
