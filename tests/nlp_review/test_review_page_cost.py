"""The review page's cost does not grow with its flags beyond rendering them: one form rendered
for all untouched flags (each flag's copy is exactly its own form), queries independent of the
number of flags, and the record's outline read without the whole batch record."""

import re

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ebr.selectors import batch_record
from nlp_review.forms import DispositionForm
from nlp_review.models import Disposition, ReviewFlag
from nlp_review.selectors import flags_by_step, review_flags
from qms.signatures import username_required
from tests.conftest import PASSWORD, login
from tests.ebr.conftest import batch, resources, version  # noqa: F401  (fixtures)
from tests.nlp_review.test_flag_disposition_form import flag_url, parse, reviewed  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

CSRF_VALUE = re.compile(r'name="csrfmiddlewaretoken" value="[^"]*"')


def add_flags(review, count: int, dispositioned_by=None) -> None:
    """More flags on a finished review, on the whole batch and on every step in turn, written directly:
    how the pipeline raises them is tested in test_review_batch, the page is what is tested here."""
    steps = [None, *review.batch.steps.order_by("sequence")]
    text = "Glove torn during transfer, changed gloves."
    for n in range(count):
        outcome = {"disposition": Disposition.NO_IMPACT, "disposition_reason": "Checked, no impact",
                   "dispositioned_by": dispositioned_by, "dispositioned_at": timezone.now()} if dispositioned_by else {}
        ReviewFlag.objects.create(review=review, batch=review.batch, step=steps[n % len(steps)],
                                  source_kind="entry_comment", source_text=text, category="contamination",
                                  severity=["critical", "major", "minor"][n % 3], start=0, end=10,
                                  evidence="Glove torn", rule="test.page", rule_version="1", **outcome)


def form_html(html: str, pk: int) -> str:
    """The disposition form shown on one flag of the page, with the CSRF token blanked."""
    start = html.index("<details", html.index(f'id="flag-{pk}"'))
    return CSRF_VALUE.sub('name="csrfmiddlewaretoken" value=""', html[start:html.index("</details>", start) + 10])


def own_form_html(batch, pk: int, *, username_asked: bool) -> str:  # noqa: F811
    """The flag's own unbound DispositionForm, rendered on its own."""
    form = DispositionForm(flag_pk=pk, username_required=username_asked)
    html = render_to_string("nlp_review/_disposition_form.html", {"batch": batch, "form": form, "csrf_token": "x"})
    return CSRF_VALUE.sub('name="csrfmiddlewaretoken" value=""', html).rstrip("\n")


def sign_one(client, flag, person) -> None:
    response = client.post(flag_url(flag), {"outcome": "no_impact", "reason": "Documented correctly",
                                            "username": person.username, "password": PASSWORD})
    assert response.status_code == 302


@pytest.mark.parametrize("situation", ["first signing", "later signing", "after a refusal"])
def test_every_untouched_flag_shows_exactly_its_own_unbound_form(client, qa_reviewer, reviewed, situation):  # noqa: F811
    login(client, qa_reviewer)
    add_flags(reviewed, 12)
    first, refused = reviewed.flags.order_by("pk")[:2]
    if situation != "first signing":
        sign_one(client, first, qa_reviewer)
    if situation == "after a refusal":
        response = client.post(flag_url(refused), {"outcome": "no_impact", "reason": "", "password": "wrong"})
        assert response.status_code == 422
    else:
        response = client.get(f"/review/batches/{reviewed.batch.number}/")

    html = response.content.decode()
    username_asked = username_required(client.session)
    assert username_asked == (situation == "first signing")
    untouched = reviewed.flags.filter(disposition=Disposition.NONE)
    if situation == "after a refusal":
        untouched = untouched.exclude(pk=refused.pk)
    assert untouched.count() >= 12
    for flag in untouched:
        assert form_html(html, flag.pk) == own_form_html(reviewed.batch, flag.pk, username_asked=username_asked)
        assert ('name="username"' in form_html(html, flag.pk)) == username_asked
    if situation == "after a refusal":
        assert form_html(html, refused.pk).startswith("<details open>")
        assert "This field is required." in form_html(html, refused.pk)


def test_review_page_queries_do_not_grow_with_the_number_of_flags(client, qa_reviewer, reviewed,  # noqa: F811
                                                                   django_assert_max_num_queries):
    login(client, qa_reviewer)
    page = f"/review/batches/{reviewed.batch.number}/"
    client.get(page)  # the session's first page is not the one measured
    with CaptureQueriesContext(connection) as few_flags:
        client.get(page)
    add_flags(reviewed, 40)
    add_flags(reviewed, 20, dispositioned_by=qa_reviewer)  # shown with who signed, from the same query

    with django_assert_max_num_queries(len(few_flags.captured_queries)):
        response = client.get(page)

    html = response.content.decode()
    flag_forms = {form for _tag, _attrs, form in parse(html).elements if form and "/flags/" in form}
    assert len(flag_forms) == reviewed.flags.filter(disposition=Disposition.NONE).count() >= 40
    assert html.count(f"(signed by {qa_reviewer.full_name} ") == 20


def test_flags_are_grouped_by_step_in_the_order_of_the_batch_record(reviewed):  # noqa: F811
    add_flags(reviewed, 7)  # flags on the whole batch and on every step
    flags = list(review_flags(reviewed))

    groups = flags_by_step(reviewed.batch, flags)

    record = batch_record(reviewed.batch)
    assert [(group.sequence, group.stage, group.title) for group in groups] == [
        (None, "", "Whole batch"),
        *((step.step.sequence, stage.name, f"{step.step.template.code} {step.step.template.title}")
          for stage in record.stages for step in stage.steps)]
    assert len(record.stages) >= 2
    step_pk = {step.step.sequence: step.step.pk for step in record.steps}
    for group in groups:  # the whole batch's flags, then each step's, in the order review_flags gives
        assert group.flags == [flag for flag in flags if flag.step_id == step_pk.get(group.sequence)]
    assert sorted(flag.pk for group in groups for flag in group.flags) == sorted(flag.pk for flag in flags)
