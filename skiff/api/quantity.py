"""Kubernetes resource quantities: "500m", "1.5", "128Mi", "2Gi", "1e3".

A quantity is an optional sign, a decimal number (digits with an optional
decimal point), and an optional suffix:

* binary: Ki Mi Gi Ti Pi Ei (powers of 1024),
* decimal: n u m "" k M G T P E (powers of 1000),
* a decimal exponent: e<int> or E<int> ("1e3" == 1000).

parse_quantity() returns the exact value as a Fraction, so "0.1" is exactly
1/10 and comparisons between quantities never suffer from float rounding.
Anything else (spaces, an unknown suffix, a bare suffix) is a ValueError whose
message says what is wrong and lists the accepted forms.
"""

import math
import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 10**3), "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}
_MAX_EXPONENT = 64  # "1e999999999" would be a very expensive integer; nobody means it
_MAX_LENGTH = 64

_SPLIT = re.compile(r"([+-]?)([0-9.]*)(.*)", re.DOTALL)
_NUMBER = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")
_EXPONENT = re.compile(r"[eE]([+-]?[0-9]+)")

FORMS = ("a number with an optional suffix, e.g. 500m, 0.5, 2, 128Mi, 1Gi, 1e3; "
         "suffixes: Ki Mi Gi Ti Pi Ei (binary), n u m k M G T P E (decimal), e<N> (exponent)")


def _invalid(s, what: str) -> ValueError:
    return ValueError(f"invalid quantity {s!r}: {what}; expected {FORMS}")


def parse_quantity(s: str) -> Fraction:
    """Exact value of a Kubernetes quantity string; ValueError when malformed."""
    if not isinstance(s, str):
        raise _invalid(s, f"expected a string, got {type(s).__name__}")
    if s == "":
        raise _invalid(s, "it is empty")
    if s != s.strip() or any(c.isspace() for c in s):
        raise _invalid(s, "it contains whitespace")
    if len(s) > _MAX_LENGTH:
        raise _invalid(s, f"it is longer than {_MAX_LENGTH} characters")
    sign, number, suffix = _SPLIT.fullmatch(s).groups()
    if number == "":
        raise _invalid(s, "there is no number before the suffix" if suffix else "there is no number")
    if not _NUMBER.fullmatch(number):
        raise _invalid(s, f"malformed number {number!r}")
    value = Fraction(number)
    value *= _multiplier(s, suffix)
    return -value if sign == "-" else value


def _multiplier(s: str, suffix: str):
    """The factor a suffix stands for; ValueError naming an unknown suffix."""
    if suffix in _BINARY:
        return _BINARY[suffix]
    if suffix in _DECIMAL:
        return _DECIMAL[suffix]
    match = _EXPONENT.fullmatch(suffix)
    if match:
        exponent = int(match.group(1))
        if abs(exponent) > _MAX_EXPONENT:
            raise _invalid(s, f"exponent {exponent} is out of range (at most ±{_MAX_EXPONENT})")
        return Fraction(10) ** exponent
    raise _invalid(s, f"unknown suffix {suffix!r}")


def cpu_millicores(s: str) -> int:
    """CPU quantity in millicores, rounded up: "250m" -> 250, "1.5" -> 1500, "1n" -> 1."""
    return math.ceil(parse_quantity(s) * 1000)


def memory_bytes(s: str) -> int:
    """Memory (or any byte) quantity in bytes, rounded up: "128Mi" -> 134217728."""
    return math.ceil(parse_quantity(s))


def is_valid(s: str) -> bool:
    """True when s parses as a quantity."""
    try:
        parse_quantity(s)
    except ValueError:
        return False
    return True
