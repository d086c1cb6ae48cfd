from fractions import Fraction

import pytest

from skiff.api.quantity import cpu_millicores, is_valid, memory_bytes, parse_quantity


@pytest.mark.parametrize("text, value", [
    ("0", 0),
    ("1", 1),
    ("+1", 1),
    ("-1", -1),
    ("1.5", Fraction(3, 2)),
    (".5", Fraction(1, 2)),
    ("1.", 1),
    ("0.1", Fraction(1, 10)),
    ("500m", Fraction(1, 2)),
    ("250m", Fraction(1, 4)),
    ("1n", Fraction(1, 10**9)),
    ("1u", Fraction(1, 10**6)),
    ("1k", 1000),
    ("1M", 10**6),
    ("1G", 10**9),
    ("1T", 10**12),
    ("1P", 10**15),
    ("1E", 10**18),
    ("1Ki", 1024),
    ("128Mi", 128 * 2**20),
    ("1.5Gi", 3 * 2**29),
    ("1Ti", 2**40),
    ("1Pi", 2**50),
    ("1Ei", 2**60),
    ("1e3", 1000),
    ("1E3", 1000),
    ("2e-3", Fraction(2, 1000)),
    ("1e+2", 100),
])
def test_parse_accepts(text, value):
    assert parse_quantity(text) == value
    assert is_valid(text)


@pytest.mark.parametrize("text, reason", [
    ("12x", "unknown suffix 'x'"),
    ("", "empty"),
    ("1.2.3", "malformed number"),
    ("Mi", "no number before the suffix"),
    (" 1", "whitespace"),
    ("1 ", "whitespace"),
    ("1 Mi", "whitespace"),
    ("1mi", "unknown suffix 'mi'"),
    ("1KI", "unknown suffix 'KI'"),
    ("1e", "unknown suffix 'e'"),
    ("1.5e", "unknown suffix 'e'"),
    (".", "malformed number"),
    ("-", "no number"),
    ("1e99999999", "exponent"),
    ("0x10", "unknown suffix 'x10'"),
])
def test_parse_rejects_with_reason_and_forms(text, reason):
    with pytest.raises(ValueError) as info:
        parse_quantity(text)
    message = str(info.value)
    assert reason in message
    assert "128Mi" in message and "Ki Mi Gi" in message  # the accepted forms are shown
    assert not is_valid(text)


def test_parse_rejects_non_strings():
    with pytest.raises(ValueError, match="expected a string"):
        parse_quantity(1)


@pytest.mark.parametrize("text, millicores", [
    ("1", 1000), ("500m", 500), ("0.5", 500), ("1.5", 1500), ("1n", 1), ("100u", 1), ("2k", 2_000_000),
    ("0", 0),
])
def test_cpu_millicores_rounds_up(text, millicores):
    assert cpu_millicores(text) == millicores


@pytest.mark.parametrize("text, nbytes", [
    ("128Mi", 134217728), ("1Gi", 2**30), ("1G", 10**9), ("1.5", 2), ("100m", 1), ("1e3", 1000), ("0", 0),
])
def test_memory_bytes_rounds_up(text, nbytes):
    assert memory_bytes(text) == nbytes


def test_exact_comparison():
    assert parse_quantity("0.1") * 3 == parse_quantity("300m")
    assert parse_quantity("1Gi") > parse_quantity("1G")
