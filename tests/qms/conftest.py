"""Fixtures of the quality-system tests."""

import pytest


@pytest.fixture
def documents_unchecked():
    """The quality system's rules on their own: the manufacturing app's check that a master
    record version exists (tests/ebr/test_training_documents.py) is set aside here."""
    from qms.services.training import training_document_register, training_document_unregister

    check = training_document_unregister("master_record")
    yield
    if check is not None:
        training_document_register("master_record", check)
