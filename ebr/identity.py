"""Chain of identity: ISBT 128 donation numbers, chain-of-identity codes, pseudonymised references.

Pure functions, no database: they are used by forms, services and the API alike.
"""

from __future__ import annotations

import re
import secrets

# ISO/IEC 7064 MOD 37-2, as ISBT 128 uses for the keyboard-entry check character of a DIN.
MOD37_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"
DIN_PATTERN = re.compile(r"^[A-Z0-9]{5}\d{2}\d{6}$")
COI_PATTERN = re.compile(r"^COI-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9*]$")
# Whatever format the facility sets, a reference is also letters, digits and hyphens with a digit.
PATIENT_REF_PATTERN = re.compile(r"^(?=.*\d)[A-Z0-9][A-Z0-9-]{3,31}$")
_COI_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no O/0, I/1: read aloud and typed with gloves


class IdentityError(ValueError):
    """An identifier is malformed or its check character does not match."""


def mod37_2(text: str) -> str:
    """The ISO 7064 MOD 37-2 check character of `text` (digits and capital letters)."""
    total = 0
    for char in text:
        value = MOD37_ALPHABET.index(char)
        total = ((total + value) * 2) % 37
    return MOD37_ALPHABET[(38 - total) % 37]


def din_normalise(raw: str) -> tuple[str, str]:
    """Split an entered DIN into its 13 characters and its check character.

    Accepts the printed eye-readable form with spaces ("W1234 26 123456 K") and the scanned
    form; ISBT 128 flag characters between number and check character are ignored.
    """
    compact = re.sub(r"[\s]", "", raw.upper())
    if compact.startswith("="):  # a scanned ISBT 128 data identifier
        compact = compact[1:]
    if len(compact) < 14:
        raise IdentityError("A DIN has 13 characters and a check character, e.g. W1234 26 123456 K.")
    number, check = compact[:13], compact[-1]
    if not DIN_PATTERN.match(number):
        raise IdentityError("A DIN is a 5-character facility code, a 2-digit year and a 6-digit serial.")
    return number, check


def din_validate(raw: str) -> str:
    """The 13-character DIN when its check character is right; IdentityError otherwise."""
    number, check = din_normalise(raw)
    expected = mod37_2(number)
    if check != expected:
        raise IdentityError(f"The DIN check character does not match ({check} entered): re-scan or re-type it.")
    return number


def din_display(number: str) -> str:
    return f"{number[:5]} {number[5:7]} {number[7:]} {mod37_2(number)}"


def coi_generate() -> str:
    body = "".join(secrets.choice(_COI_CHARS) for _ in range(8))
    core = f"COI-{body[:4]}-{body[4:]}"
    return f"{core}-{mod37_2(core.replace('-', '').removeprefix('COI'))}"


def coi_validate(first: str, second: str) -> str:
    """The COI, entered twice (or scanned and typed): both must match and carry a valid check."""
    a, b = first.strip().upper(), second.strip().upper()
    if a != b:
        raise IdentityError("The two chain-of-identity entries do not match. Scan or type it again.")
    if not COI_PATTERN.match(a):
        raise IdentityError("A chain-of-identity code looks like COI-ABCD-EFGH-K.")
    body = a.replace("-", "").removeprefix("COI")
    if mod37_2(body[:-1]) != body[-1]:
        raise IdentityError("The chain-of-identity check character does not match: a character is wrong.")
    return a


def patient_ref_validate(raw: str) -> str:
    """A pseudonymised reference in the facility's format (PATIENT_REF_FORMAT): never a name.

    EU GMP Annex 2 / Regulation (EC) 1394/2007 traceability without identifying the patient:
    the format is closed so that "DUPONT-1958" (a name and a birth year) cannot pass.
    """
    from django.conf import settings

    value = raw.strip().upper()
    if not (PATIENT_REF_PATTERN.match(value) and settings.PATIENT_REF_FORMAT.fullmatch(value)):
        raise IdentityError(f"Use the pseudonymised patient reference: {settings.PATIENT_REF_DESCRIPTION}, e.g. "
                            f"{settings.PATIENT_REF_EXAMPLE}; never the patient's name.")
    return value


def batch_number(site: str, year: int, sequence: int) -> str:
    return f"{site}-{year}-{sequence:04d}"
