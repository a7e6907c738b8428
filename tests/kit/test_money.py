from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from winback.kit.errors import WinbackError
from winback.kit.money import Money, minor_unit_exponent, to_minor


@pytest.mark.parametrize("code,exp", [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("UAH", 2), ("CNY", 2),
                                      ("TWD", 2), ("BHD", 3), ("KWD", 3)])
def test_exponents_follow_iso_4217(code, exp):
    assert minor_unit_exponent(code) == exp


def test_to_minor_is_exact_and_refuses_extra_precision():
    assert to_minor("12.34", "usd") == 1234
    assert to_minor("0.1", "USD") + to_minor("0.2", "USD") == to_minor("0.3", "USD")
    assert to_minor("1,200", "JPY") == 1200
    with pytest.raises(WinbackError, match="more decimals"):
        to_minor("1.5", "JPY")
    with pytest.raises(WinbackError, match="unknown currency"):
        to_minor("1", "ZZZ")
    with pytest.raises(WinbackError, match="not an amount"):
        to_minor("abc", "USD")


def test_money_arithmetic_and_currency_mismatch():
    assert Money(1050, "usd") + Money(50, "USD") == Money(1100, "USD")
    assert str(Money(123456, "USD")) == "1234.56 USD"
    assert str(Money(3000, "JPY")) == "3000 JPY"
    assert Money(1001, "USD").times("0.5") == Money(500, "USD")  # half to even
    assert Money(1003, "USD").times("0.5") == Money(502, "USD")
    with pytest.raises(WinbackError, match="cannot combine"):
        Money(1, "USD") + Money(1, "EUR")
    with pytest.raises(TypeError):
        Money(10.5, "USD")  # type: ignore[arg-type]


@given(st.integers(min_value=-10**15, max_value=10**15), st.sampled_from(["USD", "JPY", "BHD"]))
def test_major_minor_round_trip(amount, currency):
    money = Money(amount, currency)
    assert to_minor(str(money.major()), currency) == amount
    assert isinstance(money.major(), Decimal)


def test_localised_display():
    assert Money(123456, "USD").format() == "$1,234.56"
    assert Money(3000, "JPY").format("ja") == "￥3,000"
    assert Money(123456, "UAH").format("uk").replace("\xa0", " ").replace("\u202f", " ") == "1 234,56 ₴"
