"""Chain-of-identity helpers: ISBT 128 DIN check characters, COI double entry, no names."""

import re

import pytest
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st

from ebr.identity import (
    IdentityError,
    coi_generate,
    coi_validate,
    din_display,
    din_validate,
    mod37_2,
    patient_ref_validate,
)

DIGITS = st.text(alphabet="0123456789", min_size=6, max_size=6)


@given(facility=st.sampled_from(["W1234", "A9999", "G1517"]), year=st.integers(0, 99), serial=DIGITS)
def test_every_din_with_its_check_character_validates(facility, year, serial):
    number = f"{facility}{year:02d}{serial}"

    assert din_validate(number + mod37_2(number)) == number
    assert din_validate(din_display(number)) == number  # the printed eye-readable form


@given(serial=DIGITS, position=st.integers(7, 12), replacement=st.sampled_from("0123456789"))
def test_a_mistyped_digit_is_caught(serial, position, replacement):
    number = f"W123426{serial}"
    typo = number[:position] + replacement + number[position + 1:]
    if typo == number:
        return
    with pytest.raises(IdentityError, match="check character"):
        din_validate(typo + mod37_2(number))


def test_adjacent_transposition_is_caught():
    number = "W123426123456"
    swapped = "W123426124356"
    with pytest.raises(IdentityError):
        din_validate(swapped + mod37_2(number))


@pytest.mark.parametrize("raw", ["", "W1234", "W12342612345X7", "????? 26 123456 K"])
def test_malformed_din_is_refused(raw):
    with pytest.raises(IdentityError):
        din_validate(raw)


def test_coi_must_be_entered_twice_identically_with_a_valid_check():
    coi = coi_generate()

    assert coi_validate(coi, coi.lower()) == coi
    with pytest.raises(IdentityError, match="do not match"):
        coi_validate(coi, coi[:-1] + ("A" if coi[-1] != "A" else "B"))
    broken = coi[:5] + ("Z" if coi[5] != "Z" else "Y") + coi[6:]
    with pytest.raises(IdentityError, match="check character"):
        coi_validate(broken, broken)


@pytest.mark.parametrize("name", ["Jean Dupont", "DUPONT", "Marie-Claire", "", "DUPONT-1958", "JD-19580412"])
def test_patient_names_are_not_accepted_as_references(name):
    with pytest.raises(IdentityError, match="never the patient's name"):
        patient_ref_validate(name)


def test_pseudonymised_reference_is_accepted():
    assert patient_ref_validate("pt-4821") == "PT-4821"


def test_the_reference_format_is_the_facilitys():
    hospital_format = re.compile(r"HSP\d{6}")

    with override_settings(PATIENT_REF_FORMAT=hospital_format, PATIENT_REF_EXAMPLE="HSP004821",
                           PATIENT_REF_DESCRIPTION="HSP and 6 digits"):
        assert patient_ref_validate(" hsp004821 ") == "HSP004821"
        with pytest.raises(IdentityError, match=r"reference: HSP and 6 digits, e.g. HSP004821; never the patient's"):
            patient_ref_validate("PT-4821")
