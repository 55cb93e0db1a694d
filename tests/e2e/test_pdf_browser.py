"""In a real browser: an auditor exports the signed PDF from the batch page, watches the progress
(HTMX polling, no inline script under the CSP), and downloads a file that verifies.

Runs the real server (tests/e2e/conftest.py) and a real Celery worker on the same broker; the
downloaded file and a screenshot of the panel go to tests/e2e/artifacts/ for reviewers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from ebr.pdf.signing import demo_pki_ensure
from qms.roles import Role
from tests.conftest import Worker
from tests.e2e.batches import started_batch
from tests.e2e.conftest import artifact, log_in, screenshot
from tests.ebr.test_pdf import verify

pytestmark = [pytest.mark.e2e, pytest.mark.worker]


@pytest.fixture
def export_worker(committed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                  settings) -> Iterator[Worker]:
    """A Celery worker on the broker the server publishes to, signing with a demo PKI of its own."""
    pki = demo_pki_ensure(tmp_path / "pki")
    for name, value in {"PDF_SIGNING_KEY": pki.signing_key, "PDF_SIGNING_CERT": pki.signing_cert,
                        "PDF_SIGNING_CHAIN": pki.ca_cert, "PDF_EXPORT_DIR": tmp_path / "exports"}.items():
        monkeypatch.setenv(name, str(value))
    settings.PDF_TRUST_ROOTS = [pki.ca_cert]
    worker = Worker(os.environ["REDIS_URL"], tmp_path / "worker.log")
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def test_auditor_exports_follows_progress_and_downloads_a_verified_pdf(export_worker, open_page, e2e_user):
    plant = started_batch(e2e_user)
    auditor = e2e_user(Role.AUDITOR, full_name="Arthur Auditor")
    page = open_page()
    log_in(page, auditor.username)

    page.goto(f"/batches/{plant.batch.number}/")
    panel = page.locator("#pdf-export")
    panel.get_by_role("button", name="Export signed PDF").click()
    expect(panel.locator("tr[data-status]")).to_have_count(1)
    expect(panel.get_by_role("link", name="Download")).to_be_visible(timeout=120_000)
    screenshot(page, "pdf-export-panel")
    with page.expect_download() as download:
        panel.get_by_role("link", name="Download").click()
    saved = artifact("pdf-export-downloaded.pdf")
    download.value.save_as(saved)

    assert verify(saved)[0] == 0
    assert page.log.csp_violations(page) == []
    assert page.log.page_errors == []
