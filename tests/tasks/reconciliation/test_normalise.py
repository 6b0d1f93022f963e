"""Normalising buyer data: the same value written two ways is no difference, a real change is one."""

from __future__ import annotations

import unicodedata

import pytest

from tasks.reconciliation.normalise import code, normalised, phone_number, plain_text, same


@pytest.mark.parametrize(
    ("shop", "sequra"),
    [
        ("Ana María", "  ana   maría "),
        ("GARCÍA LÓPEZ", "García López"),
        ("Ana\tMaría", "Ana María"),
        ("Ana\u00a0María", "Ana María"),  # a no-break space is a space
        (unicodedata.normalize("NFD", "José Peña"), unicodedata.normalize("NFC", "José Peña")),
        ("Straße", "STRASSE"),  # case folded, not only lowered
    ],
)
def test_spacing_case_and_unicode_form_of_names_are_no_difference(shop: str, sequra: str) -> None:
    assert same("given_names", shop, sequra)


def test_a_different_name_is_a_difference() -> None:
    assert not same("surnames", "García", "Garcia")


@pytest.mark.parametrize("written", ["600 123 456", "+34 600123456", "0034600123456", "(+34) 600-12-34-56"])
def test_one_spanish_phone_number_written_four_ways_is_the_same(written: str) -> None:
    assert same("phone", "600123456", written, "ES")
    assert same("mobile_phone", written, "+34600123456", "ES")
    assert phone_number(written, "ES") == "+34600123456"


def test_a_different_phone_number_is_a_difference() -> None:
    assert not same("phone", "600 123 456", "600 123 457", "ES")
    assert not same("phone", "+34 600123456", "+33 600123456", "ES")


def test_the_address_country_reads_a_phone_number_without_its_prefix() -> None:
    assert phone_number("612 34 56 78", "fr") == "+33612345678"
    assert not same("phone", "612345678", "+34612345678", "FR")


def test_a_phone_number_that_does_not_read_as_one_is_compared_as_its_digits() -> None:
    assert phone_number("ext. 12", "ES") == "12"
    assert phone_number("+1 2", None) == "+12"
    assert same("phone", "12-3", "1 23", None)


def test_phone_numbers_are_compared_as_numbers_and_names_as_text() -> None:
    assert normalised("phone", " 600 123 456 ", "ES") == "+34600123456"
    assert normalised("given_names", " 600 123 456 ", "ES") == "600 123 456"


@pytest.mark.parametrize(
    ("shop", "sequra"), [("1012 AB", "1012ab"), ("SW1A 1AA", "sw1a1aa"), (" 28013", "28013 ")]
)
def test_spaces_and_case_in_a_postcode_are_only_layout(shop: str, sequra: str) -> None:
    assert same("postal_code", shop, sequra)


def test_a_changed_postcode_is_a_difference() -> None:
    assert not same("postal_code", "28013", "28014")
    assert code("1012 ab") == "1012AB"


def test_country_codes_differ_only_by_case_are_the_same() -> None:
    assert same("country_code", "es", "ES")
    assert not same("country_code", "ES", "PT")


def test_emails_that_differ_only_by_case_are_the_same() -> None:
    assert same("email", "Ana.Garcia@Example.COM", "ana.garcia@example.com")
    assert not same("email", "ana.garcia@example.com", "ana.garcia@example.es")


@pytest.mark.parametrize("field", ["given_names", "address_line_2", "phone", "postal_code", "email"])
def test_none_and_empty_are_the_same(field: str) -> None:
    assert same(field, None, "", "ES")
    assert same(field, "  ", None, "ES")
    assert plain_text(None) == ""


@pytest.mark.parametrize("field", ["address_line_2", "phone", "postal_code"])
def test_a_value_where_there_was_none_is_a_difference(field: str) -> None:
    assert not same(field, None, "28013", "ES")
