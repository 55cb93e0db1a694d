#!/usr/bin/env python
import os
import sys
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from django.core.management.base import CommandParser


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


DATABASE_UNAVAILABLE = 3  # distinct from every command's own codes (verify_audit_trail's 1 is "broken")


def _execute(argv: list[str]) -> None:
    """Run the command; a database that cannot be reached or fails mid-way ends it with one line and
    exit 3, not a traceback, so that a cron job or CI tells "could not check" from "checked: broken"."""
    from django.core.management import execute_from_command_line
    from django.core.management.base import CommandParser
    from django.db.utils import InterfaceError, OperationalError

    CommandParser.error = _argument_error  # type: ignore[method-assign]
    try:
        execute_from_command_line(argv)
    except (OperationalError, InterfaceError) as error:
        reason = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        sys.stderr.write(f"manage.py: database error, the command stopped: {reason}\n")
        sys.exit(DATABASE_UNAVAILABLE)
    except BrokenPipeError:
        # The reader went away (`... | head -1`): no traceback; what is left to write goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def _argument_error(parser: "CommandParser", message: str) -> "NoReturn":
    """A bad or missing argument: one line, exit 2 (argparse prints the whole usage block first)."""
    from django.core.management.base import CommandError

    if not getattr(parser, "called_from_command_line", False):
        raise CommandError(f"Error: {message}")  # call_command(): as Django does
    parser.exit(2, f"{parser.prog}: {message} (see --help)\n")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ebr.settings")

    if _given("DATABASE_URL") and _given("REDIS_URL"):
        _execute(sys.argv)
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
            _execute(sys.argv)
    except LocalServiceError as error:
        sys.exit(f"manage.py: set DATABASE_URL and REDIS_URL, or let the embedded servers start: {error}")


if __name__ == "__main__":
    main()
