"""The disposition form on the review page: a refusal keeps what the reviewer typed, ids are unique."""

import uuid
from collections import Counter
from html.parser import HTMLParser

import pytest

from nlp_review.models import Disposition
from nlp_review.services import batch_review_run
from qms.audit import SystemActor
from qms.models import Deviation, Signature
from tests.conftest import PASSWORD, login
from tests.ebr.conftest import batch, resources, version  # noqa: F401  (fixtures)
from tests.ebr.test_release import run_batch

pytestmark = pytest.mark.django_db

TYPED_PASSWORD = "Wr0ng-but-secret-42"


class _Page(HTMLParser):
    """Every element's attributes, in document order, with the flag <form> each sits in."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str], str | None]] = []
        self.text: dict[str, str] = {}
        self._form: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._form = (attributes.get("action") or "").split("#")[0]
        self.elements.append((tag, attributes, self._form))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        if self._form:
            self.text[self._form] = self.text.get(self._form, "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def flag_url(flag) -> str:
    return f"/review/batches/{flag.batch.number}/flags/{flag.pk}/disposition/"


@pytest.fixture
def reviewed(batch, operator, verifier):  # noqa: F811
    run_batch(batch, operator, verifier, comments={
        "temp": "Glove torn during transfer in BSC, changed gloves.",
        "viability": "Spill of medium on the work surface, wiped with IPA.",
        "cells": "Alarm on the incubator door, door left open for 10 min."})
    review = batch_review_run(batch=batch, actor=SystemActor("system:tests"), request_id=f"t-{uuid.uuid4()}")
    assert review.flags.count() >= 2, "the page must show several flags for these tests to mean anything"
    return review


def assert_untouched(flag, deviations_before: int) -> None:
    flag.refresh_from_db()
    assert flag.disposition == Disposition.NONE
    assert flag.signature_id is None and flag.dispositioned_by_id is None and flag.disposition_reason == ""
    assert not Signature.objects.filter(target_type="nlp_review.reviewflag", target_id=str(flag.pk)).exists()
    assert Deviation.objects.count() == deviations_before


def field_values(html: str, flag) -> dict[str, str]:
    """What the reviewer sees in this flag's form: checked outcome, deviation, reason, password."""
    values: dict[str, str] = {}
    for attrs in [attrs for _tag, attrs, form in parse(html).elements if form == flag_url(flag)]:
        if attrs.get("name") == "outcome" and "checked" in attrs:
            values["outcome"] = attrs["value"]
        elif attrs.get("name") in {"deviation", "password"}:
            values[attrs["name"]] = attrs.get("value", "")
    reason_start = html.index(f'id="id_flag-{flag.pk}-reason"')
    values["reason"] = html[html.index(">", reason_start) + 1:html.index("</textarea>", reason_start)].strip()
    return values


def test_wrong_password_keeps_outcome_deviation_and_reason_but_not_the_password(client, qa_reviewer, reviewed):
    login(client, qa_reviewer)
    flag, deviations = reviewed.flags.first(), Deviation.objects.count()

    response = client.post(flag_url(flag), {
        "outcome": "deviation_raised", "deviation": "", "reason": "Glove breach needs investigating",
        "username": qa_reviewer.username, "password": TYPED_PASSWORD})

    html = response.content.decode()
    assert response.status_code == 422
    assert "Wrong password: the signature was not applied." in html
    assert field_values(html, flag) == {"outcome": "deviation_raised", "deviation": "",
                                        "reason": "Glove breach needs investigating", "password": ""}
    assert TYPED_PASSWORD not in html
    assert_untouched(flag, deviations)  # the deviation opened before signing was rolled back with it


def test_missing_reason_is_shown_on_the_reason_and_keeps_the_rest(client, qa_reviewer, reviewed):
    login(client, qa_reviewer)
    flag, deviations = reviewed.flags.first(), Deviation.objects.count()

    response = client.post(flag_url(flag), {
        "outcome": "deviation_linked", "deviation": "DEV-2026-0007", "reason": "   ",
        "username": qa_reviewer.username, "password": PASSWORD})

    html = response.content.decode()
    assert response.status_code == 422
    assert f'<div class="error" id="id_flag-{flag.pk}-reason_error" role="alert">This field is required.</div>' in html
    assert f'aria-describedby="id_flag-{flag.pk}-reason_error"' in html
    assert field_values(html, flag) == {"outcome": "deviation_linked", "deviation": "DEV-2026-0007",
                                        "reason": "", "password": ""}
    assert PASSWORD not in html
    assert_untouched(flag, deviations)


def test_unknown_deviation_number_is_shown_on_the_deviation_field(client, qa_reviewer, reviewed):
    login(client, qa_reviewer)
    flag, deviations = reviewed.flags.first(), Deviation.objects.count()

    response = client.post(flag_url(flag), {
        "outcome": "deviation_linked", "deviation": "DEV-NOPE-9", "reason": "Same root cause as the open deviation",
        "username": qa_reviewer.username, "password": PASSWORD})

    html = response.content.decode()
    assert response.status_code == 422
    error = f'<div class="error" id="id_flag-{flag.pk}-deviation_error" role="alert">'
    assert f"{error}Give the number of a deviation of batch {flag.batch.number}" in html
    assert field_values(html, flag) == {"outcome": "deviation_linked", "deviation": "DEV-NOPE-9",
                                        "reason": "Same root cause as the open deviation", "password": ""}
    assert PASSWORD not in html
    assert_untouched(flag, deviations)


@pytest.mark.parametrize("outcome", ["no_impact", "deviation_raised"])
def test_a_deviation_number_with_another_outcome_is_refused_not_dropped(client, qa_reviewer, reviewed, outcome):
    """Found by exploratory QA: 'No impact' with DEV-2026-0002 was signed and the number silently lost."""
    login(client, qa_reviewer)
    flag, deviations = reviewed.flags.first(), Deviation.objects.count()

    response = client.post(flag_url(flag), {
        "outcome": outcome, "deviation": "DEV-2026-0002", "reason": "Covered by the open deviation",
        "username": qa_reviewer.username, "password": PASSWORD})

    html = response.content.decode()
    assert response.status_code == 422
    assert 'A deviation number goes with &quot;Link to deviation&quot; only' in html
    assert field_values(html, flag)["deviation"] == "DEV-2026-0002"
    assert_untouched(flag, deviations)


def test_refusal_shows_only_on_the_flag_it_concerns(client, qa_reviewer, reviewed):
    login(client, qa_reviewer)
    flag, other = reviewed.flags.order_by("pk")[:2]

    response = client.post(flag_url(flag), {
        "outcome": "no_impact", "reason": "Documented correctly", "username": qa_reviewer.username,
        "password": TYPED_PASSWORD})

    html = response.content.decode()
    text = parse(html).text
    assert html.count("Wrong password: the signature was not applied.") == 1
    assert "Wrong password" in text[flag_url(flag)] and "Wrong password" not in text[flag_url(other)]
    assert field_values(html, other) == {"password": "", "deviation": "", "reason": ""}  # nothing chosen there


def test_flag_dispositioned_meanwhile_says_so_instead_of_losing_the_message(client, qa_reviewer, reviewed):
    login(client, qa_reviewer)
    flag = reviewed.flags.first()
    signed = {"outcome": "no_impact", "reason": "Documented correctly", "username": qa_reviewer.username,
              "password": PASSWORD}
    assert client.post(flag_url(flag), signed).status_code == 302

    response = client.post(flag_url(flag), signed)

    assert response.status_code == 422
    assert "This flag is already dispositioned." in response.content.decode()
    assert Signature.objects.filter(target_type="nlp_review.reviewflag", target_id=str(flag.pk)).count() == 1


@pytest.mark.parametrize("refused", [False, True], ids=["page", "after a refusal"])
def test_every_id_on_the_review_page_is_unique_and_every_label_points_at_one(client, qa_reviewer, reviewed, refused):
    login(client, qa_reviewer)
    flag = reviewed.flags.first()
    if refused:
        response = client.post(flag_url(flag), {"outcome": "no_impact", "reason": "", "password": "x"})
    else:
        response = client.get(f"/review/batches/{reviewed.batch.number}/")

    elements = parse(response.content.decode()).elements
    ids = Counter(attrs["id"] for _tag, attrs, _form in elements if "id" in attrs)
    assert [i for i, n in ids.items() if n > 1] == []
    flag_forms = {form for _tag, _attrs, form in elements if form and "/flags/" in form}
    assert len(flag_forms) == reviewed.flags.count() >= 2
    for_targets = [attrs["for"] for tag, attrs, _form in elements if tag == "label" and "for" in attrs]
    assert for_targets and all(target in ids for target in for_targets)
    described = [ref for _tag, attrs, _form in elements for ref in attrs.get("aria-describedby", "").split()]
    assert all(ref in ids for ref in described)
    for pk in reviewed.flags.values_list("pk", flat=True):
        assert {f"id_flag-{pk}-outcome_0", f"id_flag-{pk}-deviation", f"id_flag-{pk}-reason",
                f"id_flag-{pk}-password"} <= set(ids)
