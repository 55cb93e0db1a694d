"""Secrets and patient data: none in the repository; every secret setting can come from a file
(`<NAME>_FILE`); instrument tokens and passwords never reach the logs; chain-of-identity codes,
DINs and patient references never reach a log record at INFO or above; no model stores a name
of a patient.

(`SECRET_KEY_FILE` in production and a refused weak key: tests/qms/test_settings_env.py.)
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta

import orjson
import pytest
from django.apps import apps
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from ebr.identity import coi_generate
from qms.roles import Role
from tests.conftest import PASSWORD, ROOT, unique
from tests.ebr.conftest import a_din
from tests.ebr.process_builders import reading
from tests.security.world import World

# --- the repository -------------------------------------------------------------------------------

# Written so that this file does not match itself.
SECRET_PATTERNS = {
    "private key": re.compile("-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?" + "PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\b(?:AKIA|ASIA)" + r"[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_" + r"[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-" + r"[A-Za-z0-9-]{10,}"),
    "hard-coded SECRET_KEY": re.compile(r"""SECRET_KEY\s*[:=]\s*["'][^"'\s]{8,}["']"""),
    "password in a URL": re.compile(r"""(?:postgres(?:ql)?|redis|amqp)://[^:@/\s"']*:([^@/\s"'$]{4,})@"""),
}
# Documentation placeholders, not secrets.
PLACEHOLDERS = {"secret", "password", "changeme", "change-me", "example", "xxxx"}
# Development defaults and examples that are marked as such and refused in production.
ALLOWED = {
    ("hard-coded SECRET_KEY", "deploy/"),  # example env files name the variable, values are placeholders
}
SKIPPED_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".ico", ".pdf", ".woff", ".woff2", ".ttf", ".gz", ".zip",
                    ".spacy", ".bin", ".lock")


def _repository_files() -> Iterator[tuple[str, str]]:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        path = ROOT / name
        if name.startswith("tests/") or name.endswith(SKIPPED_SUFFIXES) or not path.is_file():
            continue
        if path.stat().st_size > 2_000_000:
            continue
        try:
            yield name, path.read_text()
        except UnicodeDecodeError:
            continue


def test_no_secret_is_committed_to_the_repository():
    found = []
    for name, text in _repository_files():
        for what, pattern in SECRET_PATTERNS.items():
            if any(what == kind and name.startswith(prefix) for kind, prefix in ALLOWED):
                continue
            for match in pattern.finditer(text):
                if match.groups() and match.group(1).lower() in PLACEHOLDERS:
                    continue
                line = text[: match.start()].count("\n") + 1
                found.append(f"{name}:{line}: {what}")

    assert found == []


def test_the_development_secret_key_is_marked_and_refused_in_production():
    from ebr.config import env_secret_key

    source = (ROOT / "ebr" / "config.py").read_text()
    default = re.search(r'development_key = "([^"]+)"', source)
    assert default is not None and "insecure" in default.group(1) and "never-use-in-production" in default.group(1)
    with pytest.raises(Exception, match="SECRET_KEY"):
        env_secret_key("SECRET_KEY_FOR_THIS_TEST_ONLY", production=True)


# --- secrets from files ----------------------------------------------------------------------------

SECRET_SETTINGS = {
    # setting name (and the variable it is read from) → what the settings module turns it into
    "SECRET_KEY": "SECRET_KEY",
    "DATABASE_URL": "DATABASES['default']['PASSWORD']",
    "REDIS_URL": "REDIS_URL",
    "EMAIL_HOST_PASSWORD": "EMAIL_HOST_PASSWORD",
    "PDF_SIGNING_KEY_PASSPHRASE": "PDF_SIGNING_KEY_PASSPHRASE",
}


def test_every_secret_setting_can_be_read_from_a_file(tmp_path):
    values = {
        "SECRET_KEY": "file-" + "Zq8wX3vB7nM1kL5pR9tY" * 3,
        "DATABASE_URL": "postgres://ebr:s3cret-from-file@127.0.0.1:5432/ebr",
        "REDIS_URL": "redis://:redis-pass-from-file@127.0.0.1:6379/0",
        "EMAIL_HOST_PASSWORD": "mail-pass-from-file",
        "PDF_SIGNING_KEY_PASSPHRASE": "pdf-pass-from-file",
    }
    env = {key: value for key, value in os.environ.items() if key not in SECRET_SETTINGS}
    for name, value in values.items():
        (tmp_path / name).write_text(value + "\n")
        env[f"{name}_FILE"] = str(tmp_path / name)
    env.update({"DJANGO_ENV": "production", "ALLOWED_HOSTS": "ebr.example.org", "EBR_LOCAL_DIR": str(tmp_path),
                "DJANGO_SETTINGS_MODULE": "ebr.settings"})
    code = ("import json, django; django.setup(); from django.conf import settings as s; print(json.dumps({"
            + ", ".join(f"{name!r}: s.{expression}" for name, expression in SECRET_SETTINGS.items()) + "}))")

    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)

    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {**values, "DATABASE_URL": "s3cret-from-file"}


# --- the logs ---------------------------------------------------------------------------------

def _leaks(records: list[logging.LogRecord], secrets: list[str], minimum: int = logging.NOTSET) -> list[str]:
    leaks = []
    for record in records:
        if record.levelno < minimum:
            continue
        # What a handler writes: the message, its arguments and any exception (the `request` a
        # django.request record carries is not formatted by the handlers of ebr/settings.py).
        text = " ".join([record.getMessage(), repr(record.args), record.exc_text or ""])
        if record.exc_info and record.exc_info[1] is not None:
            text += repr(record.exc_info[1])
        leaks += [f"{record.name} {record.levelname}: {record.getMessage()[:120]}" for secret in secrets
                  if secret in text]
    return leaks


@pytest.mark.django_db
def test_instrument_tokens_never_reach_the_logs(world, caplog):
    from ebr.models import Equipment

    caplog.set_level(logging.DEBUG)
    equipment = Equipment.objects.get(pk=world.registration.instrument.equipment_id)
    out, err = io.StringIO(), io.StringIO()
    call_command("create_instrument", unique("BR-log"), "--equipment", equipment.code, stdout=out, stderr=err)
    printed = out.getvalue().strip()
    client = Client()
    moment = timezone.now() - timedelta(minutes=3)
    for token in (world.token, printed):
        client.post("/api/v1/readings", data=orjson.dumps({"readings": [reading(900, moment)]}),
                    content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
        client.get(f"/api/v1/batches/{world.process_batch.number}/readings", HTTP_AUTHORIZATION=f"Bearer {token}")
    client.post("/api/v1/readings", data=b"{}", content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {world.token}x")  # a wrong token: 401, logged as a warning

    assert printed and len(caplog.records) > 0
    assert _leaks(caplog.records, [world.token, printed, world.token + "x"]) == []
    assert world.token not in err.getvalue()


@pytest.mark.django_db
def test_passwords_never_reach_the_logs_nor_the_failure_records(world, caplog):
    from axes.models import AccessAttempt, AccessFailureLog

    from qms.models import AuditEvent

    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + unique("signing")
    operator, verifier = world.person(Role.OPERATOR), world.verifier
    client = Client()
    client.post("/login/", {"username": operator.username, "password": wrong})
    client.post("/login/", {"username": operator.username, "password": PASSWORD})
    step = f"/execute/{world.running.number}/steps/{world.step.pk}"
    client.post(f"{step}/perform/", {"username": operator.username, "password": wrong})
    client.post(f"{step}/perform/", {"username": operator.username, "password": PASSWORD})
    other = Client()
    other.force_login(verifier)
    other.post(f"{step}/verify/", {"username": verifier.username, "password": PASSWORD})
    events = AuditEvent.objects.order_by("-pk")[:50]

    assert len(caplog.records) > 0
    assert _leaks(caplog.records, [PASSWORD, wrong]) == []
    stored = " ".join(str(row.__dict__) for row in [*AccessAttempt.objects.all(), *AccessFailureLog.objects.all(),
                                                    *events])
    assert PASSWORD not in stored and wrong not in stored


@pytest.mark.django_db
def test_chain_of_identity_codes_and_dins_stay_out_of_info_logs(world, caplog):
    """A batch created, started, executed and handed over through the screens, with readings."""
    caplog.set_level(logging.DEBUG)
    coi, din, patient = coi_generate(), a_din(), f"PT-{uuid.uuid4().int % 10**10:010d}"
    supervisor, operator = Client(), Client()
    supervisor.force_login(world.person(Role.SUPERVISOR))
    operator.force_login(world.person(Role.OPERATOR))
    supervisor.post("/batches/new/", {"version": "bogus", "coi": coi, "coi_confirmation": coi + "X", "din": din,
                                      "patient_ref": patient, "collecting_hospital": "City Hospital",
                                      "collected_at": "2000-01-01T00:00"})  # refused: logged as a warning
    created = supervisor.post("/batches/new/", {
        "version": world.version.pk, "coi": coi, "coi_confirmation": coi, "din": din, "patient_ref": patient,
        "collecting_hospital": "City Hospital",
        "collected_at": timezone.localtime(timezone.now() - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")})
    assert created.status_code == 302, created.content[:2000]
    number = created["Location"].rstrip("/").rsplit("/", 1)[-1]
    supervisor.post(f"/batches/{number}/start/", {"reason": "Start"})
    supervisor.post(f"/batches/{number}/custody/", {
        "from_party": "Courier", "to_party": "Cleanroom", "location": "Airlock", "condition": "intact",
        "occurred_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"), "temperature_c": "4"})
    _execute_first_step(world, operator, number)
    for page in (f"/batches/{number}/", f"/execute/{number}/", f"/batches/{number}/audit-trail/"):
        supervisor.get(page)
        operator.get(page)

    info = [record for record in caplog.records if record.levelno >= logging.INFO]
    assert _leaks(caplog.records, [coi, din, patient], minimum=logging.INFO) == [], info


def _execute_first_step(world: World, client: Client, number: str) -> None:
    from ebr.models import Batch

    batch = Batch.objects.get(number=number)
    step = batch.steps.order_by("sequence").first()
    for parameter in step.template.parameters.exclude(kind="calculated"):
        value = {"yes_no": "yes", "number": "5"}.get(parameter.kind, "x")
        client.post(f"/execute/{number}/steps/{step.pk}/values/{parameter.pk}/",
                    {f"p{parameter.pk}-value": value, f"p{parameter.pk}-idempotency_key": unique("k")})
    client.post(f"/execute/{number}/steps/{step.pk}/perform/", {"username": world.person(Role.OPERATOR).username,
                                                                 "password": PASSWORD})


NAME_FIELDS = re.compile(r"(?:^|_)(?:first_?name|last_?name|surname|given_?name|family_?name|patient_?name|"
                         r"date_of_birth|birth_?date|dob)$")


def test_no_model_stores_a_patients_name_or_birth_date():
    """Batches carry a pseudonymised reference, the COI and the DIN; people's names are staff's."""
    offenders = [f"{model._meta.label}.{field.name}" for model in apps.get_models()
                 if model._meta.app_label in {"ebr", "qms", "nlp_review"}
                 for field in model._meta.get_fields() if NAME_FIELDS.search(field.name)]

    assert offenders == []
