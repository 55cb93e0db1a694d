#!/usr/bin/env python
import os
import sys


def _given(name: str) -> bool:
    """Set directly or through NAME_FILE, as ebr/config.py reads every variable."""
    return bool(os.environ.get(name) or os.environ.get(f"{name}_FILE"))


def _production() -> bool:
    from django.core.exceptions import ImproperlyConfigured

    from ebr.config import env_str

    try:
        return env_str("DJANGO_ENV", "development") == "production"
    except ImproperlyConfigured:
        return True  # an unreadable DJANGO_ENV_FILE: settings say why; never fall back to embedded servers


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ebr.settings")
    from django.core.management import execute_from_command_line

    if _given("DATABASE_URL") and _given("REDIS_URL"):
        execute_from_command_line(sys.argv)
        return
    if _production():
        # A production unit with a URL missing is misconfigured: it must not quietly run against
        # an empty embedded database or broker of its own.
        missing = " and ".join(name for name in ("DATABASE_URL", "REDIS_URL") if not _given(name))
        sys.exit(f"manage.py: {missing} must be set when DJANGO_ENV=production (no embedded servers)")
    # No servers named: use the embedded ones under .local/ (started for this command and stopped
    # after it, unless `make run` or `localservices start` keeps them running), as make does.
    from ebr.localservices import LocalServiceError, services

    try:
        with services() as env:
            os.environ.update(env)
            execute_from_command_line(sys.argv)
    except LocalServiceError as error:
        sys.exit(f"manage.py: set DATABASE_URL and REDIS_URL, or let the embedded servers start: {error}")


if __name__ == "__main__":
    main()
