"""Environment variables read by settings, each checked so that a bad value stops start-up.

A validated system must not start in a half-configured state: every value is parsed here,
and anything malformed raises ImproperlyConfigured naming the variable and what it expects.
Secrets may also come from a file named by `<NAME>_FILE` (Docker and systemd credentials).
"""

from __future__ import annotations

import os
import re
import zoneinfo
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


def env_str(name: str, default: str | None = None) -> str:
    """The variable's text, or `<name>_FILE`'s content, or the default; required when no default."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as error:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {error}") from error
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            raise ImproperlyConfigured(f"{name} must be set")
        return default
    return value


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = env_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def env_bool(name: str, default: bool) -> bool:
    value = env_str(name, "true" if default else "false").lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a yes/no value (true/false, 1/0)")


def env_int(name: str, default: int, *, minimum: int, maximum: int) -> int:
    text = env_str(name, str(default))
    try:
        value = int(text)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name}={text!r} is not a whole number") from error
    if not minimum <= value <= maximum:
        raise ImproperlyConfigured(f"{name}={value} must be between {minimum} and {maximum}")
    return value


def env_list(name: str, default: str, *, separator: str = ",") -> list[str]:
    return [part.strip() for part in env_str(name, default).split(separator) if part.strip()]


# Names as a person might type them where a reference belongs; a reference format accepting any
# of them would let a patient's identity into the record.
NAME_LIKE = ("JEAN DUPONT", "DUPONT", "JEAN-DUPONT", "DUPONT-1958", "DUPONT1958", "DUPONT-JEAN-1958")


def env_patient_ref_format(name: str, default: str, *, example: str) -> re.Pattern[str]:
    """The facility's pseudonymised patient reference format: a regular expression a reference
    must match in full after upper-casing (as ebr.identity.patient_ref_validate checks it). Its
    own example must pass that check, and no name-like value may."""
    from ebr.identity import PATIENT_REF_PATTERN

    text = env_str(name, default)
    try:
        pattern = re.compile(text)
    except re.error as error:
        raise ImproperlyConfigured(f"{name}={text!r} is not a regular expression: {error}") from error

    def accepted(value: str) -> bool:
        value = value.strip().upper()
        return bool(PATIENT_REF_PATTERN.match(value) and pattern.fullmatch(value))

    if not accepted(example):
        raise ImproperlyConfigured(f"{name}={text!r} does not accept its own example {example!r} (references are "
                                   "upper-cased, 4-32 letters, digits and hyphens with a digit)")
    for name_like in NAME_LIKE:
        if pattern.fullmatch(name_like):
            raise ImproperlyConfigured(f"{name}={text!r} accepts a name ({name_like!r}); require digits")
    return pattern


def env_time_zone(name: str, default: str) -> str:
    value = env_str(name, default)
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ImproperlyConfigured(f"{name}={value!r} is not an IANA time zone such as Europe/Paris") from error
    return value


def env_postgres_url(name: str) -> dict[str, object]:
    """A Django DATABASES entry for a postgres:// URL. Nothing but PostgreSQL is accepted."""
    import dj_database_url

    value = env_str(name)
    if not value.startswith(("postgres://", "postgresql://")):
        raise ImproperlyConfigured(f"{name} must be a postgres:// URL (PostgreSQL is the only database)")
    try:
        config = dict(dj_database_url.parse(value, conn_max_age=60, conn_health_checks=True))
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} is not a valid database URL: {error}") from error
    if not config.get("NAME"):
        raise ImproperlyConfigured(f"{name} must name a database (postgres://user@host:port/NAME)")
    return config


def env_redis_url(name: str) -> str:
    value = env_str(name)
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(f"{name} must be a redis:// URL")
    return value


def env_secret_key(name: str, *, production: bool) -> str:
    """Production refuses to start without a real key; development gets a fixed, marked one."""
    development_key = "development-only-insecure-key-never-use-in-production-0123456789"
    value = env_str(name) if production else env_str(name, development_key)
    if production and (len(value) < 50 or len(set(value)) < 5 or value == development_key
                       or value.startswith("django-insecure")):
        raise ImproperlyConfigured(f"{name} must be a random string of at least 50 characters in production")
    return value
