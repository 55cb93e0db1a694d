"""Settings refuse bad environment values loudly instead of starting half-configured."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/ebr",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}
STRONG_KEY = "k3y-" + "a1b2c3d4e5f6g7h8i9j0" * 3


def _load_settings(**overrides: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY",
                                                             "DJANGO_ENV", "ALLOWED_HOSTS", "TIME_ZONE"}}
    env.update(GOOD)
    env.update(overrides)
    code = "import django; django.setup(); from django.conf import settings; print(settings.TIME_ZONE)"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "ebr.settings"},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("DJANGO_ENV", "staging", "DJANGO_ENV='staging' is not one of development, production"),
    ("DATABASE_URL", "sqlite:///db.sqlite3", "DATABASE_URL must be a postgres:// URL"),
    ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/", "DATABASE_URL must name a database"),
    ("REDIS_URL", "http://127.0.0.1:6379", "REDIS_URL must be a redis:// URL"),
    ("TIME_ZONE", "Mars/Olympus", "TIME_ZONE='Mars/Olympus' is not an IANA time zone"),
    ("SESSION_IDLE_TIMEOUT", "soon", "SESSION_IDLE_TIMEOUT='soon' is not a whole number"),
    ("SESSION_IDLE_TIMEOUT", "0", "SESSION_IDLE_TIMEOUT=0 must be between 1 and 480"),
    ("TEMPORARY_PASSWORD_HOURS", "0", "TEMPORARY_PASSWORD_HOURS=0 must be between 1 and 720"),
    ("DJANGO_DEBUG", "maybe", "DJANGO_DEBUG='maybe' is not a yes/no value"),
    # Redis must never re-deliver a task that may still be running (time limit 900 s).
    ("CELERY_VISIBILITY_TIMEOUT", "600", "CELERY_VISIBILITY_TIMEOUT=600 must be between 960 and 86400"),
    # A patient reference format that would let a typed name through is refused.
    ("PATIENT_REF_FORMAT", r"[A-Z -]+\d*", "PATIENT_REF_FORMAT='[A-Z -]+\\\\d*' accepts a name"),
    ("PATIENT_REF_FORMAT", "PT-(", "PATIENT_REF_FORMAT='PT-(' is not a regular expression"),
    ("PATIENT_REF_FORMAT", r"HSP\d{6}", "does not accept its own example 'PT-4821'"),
    ("PATIENT_REF_FORMAT", r"[A-Z]+-\d{4}", "accepts a name ('DUPONT-1958')"),
    ("PATIENT_REF_FORMAT", r"pt-\d{4}", "does not accept its own example 'PT-4821'"),  # references are upper-cased
    ("PATIENT_REF_FORMAT", r"PT_\d{4}", "does not accept its own example"),
    ("COLLECTING_HOSPITALS", " ; ", "COLLECTING_HOSPITALS must name at least one hospital"),
])
def test_bad_value_stops_start_up_naming_the_variable(variable, value, message):
    result = _load_settings(**{variable: value})

    assert result.returncode != 0
    assert message in result.stderr


def test_missing_database_url_stops_start_up():
    env_without = {k: v for k, v in GOOD.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, capture_output=True, text=True,
        env={**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, **env_without,
             "DJANGO_SETTINGS_MODULE": "ebr.settings"}, timeout=60)

    assert result.returncode != 0
    assert "DATABASE_URL must be set" in result.stderr


@pytest.mark.parametrize("key", ["", "short", "django-insecure-" + "x" * 60])
def test_production_refuses_to_start_without_a_real_secret_key(key):
    result = _load_settings(DJANGO_ENV="production", SECRET_KEY=key, ALLOWED_HOSTS="ebr.example.org")

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts():
    result = _load_settings(DJANGO_ENV="production", SECRET_KEY=STRONG_KEY)

    assert result.returncode != 0
    assert "ALLOWED_HOSTS" in result.stderr


def test_secret_key_can_come_from_a_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(STRONG_KEY + "\n")

    result = _load_settings(DJANGO_ENV="production", SECRET_KEY_FILE=str(secret), ALLOWED_HOSTS="ebr.example.org")

    assert result.returncode == 0, result.stderr


def test_good_values_load_and_the_facility_zone_is_used():
    result = _load_settings(TIME_ZONE="Europe/Berlin")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Europe/Berlin"


def test_check_deploy_reports_nothing_in_production(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DJANGO_ENV", "ALLOWED_HOSTS"}}
    env.update(GOOD)
    env.update({"DJANGO_ENV": "production", "SECRET_KEY": STRONG_KEY, "ALLOWED_HOSTS": "ebr.example.org",
                "EBR_LOCAL_DIR": str(tmp_path)})
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_passwords_are_hashed_with_argon2_in_the_product():
    result = _load_settings()
    code = ("import django; django.setup(); from django.conf import settings; "
            "print(settings.PASSWORD_HASHERS[0])")
    env = {**os.environ, **GOOD, "DJANGO_SETTINGS_MODULE": "ebr.settings"}
    hasher = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)

    assert result.returncode == 0
    assert hasher.stdout.strip() == "django.contrib.auth.hashers.Argon2PasswordHasher"


@pytest.mark.parametrize("missing", ["REDIS_URL", "DATABASE_URL"])
def test_production_with_a_server_url_missing_refuses_instead_of_starting_embedded_servers(tmp_path, missing):
    """A production unit (the relay, a worker) with one URL missing would otherwise run against an
    empty embedded server of its own, and its work would silently go nowhere."""
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DJANGO_ENV", "ALLOWED_HOSTS", missing}}
    env.update({**GOOD, "DJANGO_ENV": "production", "SECRET_KEY": STRONG_KEY, "ALLOWED_HOSTS": "ebr.example.org",
                "EBR_LOCAL_DIR": str(tmp_path)})
    env.pop(missing)
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"manage.py: {missing} must be set when DJANGO_ENV=production (no embedded servers)"]
    assert not (tmp_path / "postgres").exists() and not (tmp_path / "redis").exists()


def test_production_reads_the_server_urls_from_files_too(tmp_path):
    """DATABASE_URL_FILE / REDIS_URL_FILE (Docker secrets, systemd credentials) count as set."""
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DJANGO_ENV", "ALLOWED_HOSTS",
                                                             "DATABASE_URL", "REDIS_URL"}}
    env.update({**GOOD, "DJANGO_ENV": "production", "SECRET_KEY": STRONG_KEY, "ALLOWED_HOSTS": "ebr.example.org",
                "EBR_LOCAL_DIR": str(tmp_path)})
    for name in ("DATABASE_URL", "REDIS_URL"):
        (tmp_path / name).write_text(GOOD[name])
        env.pop(name, None)
        env[f"{name}_FILE"] = str(tmp_path / name)
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)

    assert result.returncode == 0, result.stderr
