"""Full-text search over batch record text: filters, highlighted and escaped snippets."""

import uuid

import pytest

from nlp_review.search import SearchFilters, record_search
from nlp_review.services import batch_review_run
from qms.audit import SystemActor
from tests.ebr.conftest import batch, resources, version  # noqa: F401  (fixtures)
from tests.ebr.test_release import run_batch

pytestmark = pytest.mark.django_db


@pytest.fixture
def indexed(batch, operator, verifier):  # noqa: F811
    run_batch(batch, operator, verifier, comments={
        "viability": "Clumping seen in the flask, <b>resuspended</b>", "temp": "Bag arrived cold"})
    batch_review_run(batch=batch, actor=SystemActor("system:tests"), request_id=f"t-{uuid.uuid4()}")
    return batch


def test_which_batches_mentioned_clumping_during_processing(indexed):
    product = indexed.master_version.master_record.product_id
    hits, batches = record_search(SearchFilters(q="clumping", step="processing", product=product))

    assert batches == 1 and hits[0].batch_number == indexed.number
    assert "<mark>Clumping</mark>" in hits[0].snippet
    assert "<b>" not in hits[0].snippet and "resuspended" in hits[0].snippet  # operator text is never HTML


def test_filters_narrow_the_hits(indexed):
    product = indexed.master_version.master_record.product_id

    assert record_search(SearchFilters(q="clumping", step="receipt", product=product))[1] == 0
    assert record_search(SearchFilters(q="clumping", product=product, category="identity"))[1] == 0
    assert record_search(SearchFilters(q="clump", product=product))[1] == 1  # stemmed
    assert record_search(SearchFilters(q=""))[1] == 0
