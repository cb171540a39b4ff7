"""The National Provider Identifier check digit (rulebook definition "valid NPI").

An NPI is ten ASCII digits, the first 1 or 2; the tenth is the Luhn check digit
computed over the prefix ``80840`` (the card issuer prefix of US health
identifiers) followed by the first nine digits. ``1234567893`` is valid.
"""

from __future__ import annotations

# The issuer prefix that turns the 9-digit NPI body into a 14-digit Luhn payload.
_NPI_LUHN_PREFIX = "80840"


def npi_check_digit(first_nine: str) -> int:
    """The check digit the NPI made of ``first_nine`` must end with."""
    payload = _NPI_LUHN_PREFIX + first_nine
    total = 0
    # Luhn: from the right of the payload (the check digit is appended after it),
    # every other digit starting with the rightmost one is doubled.
    for position, char in enumerate(reversed(payload)):
        digit = ord(char) - 48
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10


def is_valid_npi(value: str) -> bool:
    """Whether ``value`` is a valid NPI: 10 digits, first 1 or 2, Luhn check digit.

    Surrounding blanks are ignored (codes compare after trimming); anything that is
    not a string, or holds any other character, is not a valid NPI.
    """
    if not isinstance(value, str):
        return False
    npi = value.strip()
    if len(npi) != 10 or not (npi.isascii() and npi.isdigit()) or npi[0] not in "12":
        return False
    return npi_check_digit(npi[:9]) == ord(npi[9]) - 48
