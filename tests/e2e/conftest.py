"""Real-browser fixtures: a real server process on the test database, Debian's Chromium, tablet pages.

The audit tables are append-only (triggers refuse UPDATE, DELETE and TRUNCATE), so pytest-django's
`live_server` cannot be used: it flushes with TRUNCATE. Instead, one `manage.py runserver` process
runs for the session against the pytest test database, and tests create their data with the
`committed` fixture, so the server sees it. Committed rows stay for the session: every test makes
its own uniquely named users.

Playwright cannot download browsers here; it drives /usr/bin/chromium (`make browser`). Without
it, the browser tests are skipped with that reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from qms.audit import SystemActor
from qms.roles import Role
from tests.conftest import PASSWORD, ROOT, database_url

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TABLET = {"width": 768, "height": 1024}
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
TIMEOUT_MS = 10_000
SERVER_START_SECONDS = 60


@pytest.fixture(scope="session", autouse=True)
def _chromium_required() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM}: run 'make browser' "
                    "(or 'sudo apt-get install chromium')")


def artifact(name: str) -> Path:
    """A path under tests/e2e/artifacts/ (git-ignored) for screenshots and downloads."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):  # noqa: S310  (a local http URL we built)
            return True
    except urllib.error.HTTPError:
        return True  # 503 without a Celery worker is still an answer
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@pytest.fixture(scope="session")
def app_server(django_db_setup) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Base URL of a real `runserver` process using the pytest test database."""
    from django.db import connections

    default = connections["default"]
    if default.settings_dict["NAME"] != default.creation._get_test_db_name():
        # Committed rows are append-only: never let browser tests write into a real database.
        pytest.fail(f"the connections point at {default.settings_dict['NAME']!r}, not at the test database")
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update({"DATABASE_URL": database_url(), "DJANGO_ENV": "development", "DJANGO_DEBUG": "false",
                "PYTHONUNBUFFERED": "1"})
    log_path = artifact("server.log")
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not _answers(f"{base_url}/healthz"):
            if process.poll() is not None:
                pytest.fail(f"the server exited: {log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer in {SERVER_START_SECONDS} s: {log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="session")
def chromium_browser():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    # Playwright's sync API leaves its asyncio loop marked as running in this thread, and Django
    # then refuses ORM calls from the test body ("You cannot call this from an async context").
    # The test body is plain sequential code, so the check is lifted while the browser runs, in
    # this process only (the server under test keeps it).
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@dataclass
class PageLog:
    """What the browser reported while a page was open: console errors, script errors, CSP reports."""

    console_errors: list[tuple[str, str]] = field(default_factory=list)  # (message, source URL)
    page_errors: list[str] = field(default_factory=list)

    def csp_violations(self, page) -> list[str]:  # type: ignore[no-untyped-def]
        reported = page.evaluate("() => window.__cspViolations || []")
        from_console = [text for text, _ in self.console_errors if "Content Security Policy" in text]
        return [*reported, *from_console]

    def console_errors_besides_favicon(self) -> list[str]:
        """Console errors, except the browser's own request for the missing /favicon.ico.

        That one is a known defect with its own (expected-to-fail) test; everything else counts.
        """
        return [f"{text} ({url})" for text, url in self.console_errors if not url.endswith("/favicon.ico")]


# Runs before the page's own scripts (through the DevTools protocol, so the CSP does not apply to
# it): keeps every `securitypolicyviolation` the page raises, including ones the console misses.
_CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
});
"""


@pytest.fixture
def open_page(chromium_browser, app_server) -> Iterator[Callable[[], object]]:  # type: ignore[no-untyped-def]
    """Open a new tablet-sized page in its own browser context (own cookies: one user per context)."""
    contexts = []

    def open_one():  # type: ignore[no-untyped-def]
        context = chromium_browser.new_context(viewport=TABLET, base_url=app_server, accept_downloads=True,
                                               locale="en-GB", timezone_id="Europe/Paris")
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(_CSP_LISTENER)
        contexts.append(context)
        page = context.new_page()
        page.log = PageLog()
        page.on("console", lambda message: message.type == "error" and page.log.console_errors.append(
            (message.text, message.location.get("url", ""))))
        page.on("pageerror", lambda error: page.log.page_errors.append(str(error)))
        return page

    yield open_one
    for context in contexts:
        context.close()


@pytest.fixture
def tablet_page(open_page):  # type: ignore[no-untyped-def]
    """One page at 768x1024, the size of the cleanroom tablets."""
    return open_page()


@pytest.fixture
def e2e_user(committed) -> Callable[..., object]:  # type: ignore[no-untyped-def]
    """Create a committed user with a unique username (committed rows persist for the session)."""
    from qms.services.users import user_create

    def make(role: Role, *, full_name: str | None = None, job_title: str = ""):  # type: ignore[no-untyped-def]
        username = f"e2e-{role.value.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
        return user_create(actor=SystemActor("system:tests"), username=username,
                           full_name=full_name or f"E2E {role.value.replace('_', ' ').title()}",
                           password=PASSWORD, roles=[role], job_title=job_title)

    return make


def path_is(path: str) -> Callable[[str], bool]:
    """A URL predicate for `page.wait_for_url`: the path (and query, if given) is exactly this."""

    def matches(url: str) -> bool:
        parts = urlsplit(url)
        return (f"{parts.path}?{parts.query}" if "?" in path else parts.path) == path

    return matches


def log_in(page, username: str, password: str = PASSWORD) -> None:  # type: ignore[no-untyped-def]
    """Log in through the form, as a person would, and wait for the home page."""
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(path_is("/"))


def log_out(page) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(path_is("/login/"))


def screenshot(page, name: str, *, full_page: bool = True) -> Path:  # type: ignore[no-untyped-def]
    path = artifact(f"{name}.png")
    page.screenshot(path=str(path), full_page=full_page)
    return path


# --- what a gloved hand on a 768x1024 tablet needs ---------------------------------------------

MIN_TOUCH_PX = 44
TOUCH_TARGETS = "button, input:not([type=hidden]), select, textarea, a.btn, nav a, a.brand"


def small_touch_targets(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Visible buttons, form fields and navigation links shorter than 44 px (WCAG 2.5.5, gloves)."""
    small = []
    for target in page.locator(TOUCH_TARGETS).all():
        box = target.bounding_box() if target.is_visible() else None
        if box is not None and box["height"] < MIN_TOUCH_PX:
            label = target.get_attribute("name") or target.inner_text() or target.evaluate("e => e.outerHTML")
            small.append(f"{label.strip()[:60]}: {box['height']:.0f} px")
    return small


def horizontal_overflow(page) -> int:  # type: ignore[no-untyped-def]
    """How many pixels the page is wider than the tablet screen (0: no sideways scrolling)."""
    return int(page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth"))
