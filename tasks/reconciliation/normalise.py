"""Normalise buyer data before comparing it: the same email, name or phone written two ways is no difference.

Text is compared in Unicode NFC, trimmed, with runs of whitespace made one space and case folded; phone
numbers in E.164 (+34600123456), read with the address's country for numbers written without their calling
prefix; postcodes and country codes in capitals without spaces (a space in a postcode is only layout, as in
'1012 AB' or 'SW1A 1AA'). The raw values are what a person sees; these forms are only compared.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers

PHONE_FIELDS = frozenset({"phone", "mobile_phone"})
CODE_FIELDS = frozenset({"postal_code", "country_code"})
_SPACES = re.compile(r"\s+")


def plain_text(value: str | None) -> str:
    """Text as compared: NFC, trimmed, one space between words, case folded; None as ''."""
    if value is None:
        return ""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", value)).strip().casefold()


def phone_number(value: str | None, country_code: str | None) -> str:
    """A phone number in E.164 when it reads as one (with `country_code`'s calling prefix if it has none).

    A number that does not read as a phone number is compared as its digits, with a leading '+' kept.
    """
    text = plain_text(value)
    if not text:
        return ""
    region = (country_code or "").strip().upper() or None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is not None and phonenumbers.is_possible_number(number):
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    digits = re.sub(r"\D", "", text)
    if not digits:
        return text  # not a number at all: compared as text, so it never equals a blank
    return f"+{digits}" if text.startswith("+") else digits


def code(value: str | None) -> str:
    """A postcode or country code as compared: NFC, capitals, no spaces."""
    return _SPACES.sub("", unicodedata.normalize("NFC", value or "")).upper()


def normalised(field: str, value: str | None, country_code: str | None = None) -> str:
    """`value` of SeQura's key `field` in the form compared; `country_code` reads phone numbers."""
    if field in PHONE_FIELDS:
        return phone_number(value, country_code)
    if field in CODE_FIELDS:
        return code(value)
    return plain_text(value)


def same(
    field: str, shop_value: str | None, sequra_value: str | None, country_code: str | None = None
) -> bool:
    """Whether the shop's and SeQura's values of `field` are the same once normalised."""
    return normalised(field, shop_value, country_code) == normalised(field, sequra_value, country_code)
