"""Two authors creating the same product or master record at the same moment: the second gets the
same refusal as if it had come later (not a server error), and one record exists."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.exceptions import ValidationError

from ebr.models import MasterRecord, Product
from ebr.services import master_records as master_services
from qms.roles import Role
from tests.conftest import while_held
from tests.ebr.process_builders import person, unique


def _race(first: Callable[[], object], second: Callable[[], object]) -> ValidationError:
    """`first` inserts and holds its transaction open while `second` checks, finds nothing
    committed, and inserts too (blocked on the unique index); then `first` commits. Returns what
    `second` raised."""
    raised = while_held(first, second)
    assert isinstance(raised, ValidationError), f"a refusal, not {raised!r}"
    return raised


@pytest.mark.parametrize("spelled", [str, str.lower], ids=["same case", "other case"])
def test_the_same_product_created_twice_at_once_is_one_product_and_one_refusal(committed, spelled):
    author, code = person(Role.SUPERVISOR, "Sofia Supervisor"), unique("P").upper()

    refusal = _race(lambda: master_services.product_create(actor=author, code=code, name="First"),
                    lambda: master_services.product_create(actor=author, code=spelled(code), name="Second"))

    assert "exists already" in str(refusal.message_dict["new_product_code"])
    assert list(Product.objects.filter(code__iexact=code).values_list("name", flat=True)) == ["First"]


def test_the_same_master_record_created_twice_at_once_is_one_record_and_one_refusal(committed):
    author = person(Role.SUPERVISOR, "Sofia Supervisor")
    product = master_services.product_create(actor=author, code=unique("P"), name="CAR-T")
    code, other = unique("MBR"), unique("Other")

    refusal = _race(
        lambda: master_services.master_record_create(actor=author, product=product, code=code, title="First"),
        lambda: master_services.master_record_create_with_product(
            actor=author, product_code=unique("P"), product_name=other, code=code, title="Second"))

    assert "exists already" in str(refusal.message_dict["code"])
    assert list(MasterRecord.objects.filter(code=code).values_list("title", flat=True)) == ["First"]
    assert not Product.objects.filter(name=other).exists(), "the refused record's new product is not kept"


