"""Money as integer minor units plus an ISO 4217 currency code; never floats.

Currency exponents come from CLDR (via Babel), so JPY and KRW have 0 decimals, USD 2,
and the three-decimal dinars 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache

from babel.numbers import get_currency_precision, list_currencies

from winback.kit.errors import WinbackError


@lru_cache(maxsize=1)
def currency_codes() -> frozenset[str]:
    """Every ISO 4217 alphabetic code CLDR knows (upper case)."""
    return frozenset(code for code in list_currencies() if len(code) == 3 and code.isalpha())


def is_currency(code: str) -> bool:
    return code in currency_codes()


@lru_cache(maxsize=512)
def minor_unit_exponent(currency: str) -> int:
    """Number of decimal places of the currency's minor unit (USD 2, JPY 0, BHD 3)."""
    code = currency.upper()
    if code not in currency_codes():
        raise WinbackError(f"unknown currency {currency!r}: expected an ISO 4217 code such as USD")
    return get_currency_precision(code)


def to_minor(amount: str | int | Decimal, currency: str) -> int:
    """Convert a major-unit amount (``"12.34"`` USD) to minor units (1234), exactly.

    Raises when the amount has more precision than the currency allows (``"1.5"`` JPY).
    """
    exponent = minor_unit_exponent(currency)
    try:
        value = Decimal(str(amount).strip().replace(",", ""))
    except InvalidOperation as exc:
        raise WinbackError(f"not an amount: {amount!r}") from exc
    if not value.is_finite():
        raise WinbackError(f"not an amount: {amount!r}")
    scaled = value.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise WinbackError(f"{amount!r} has more decimals than {currency.upper()} allows ({exponent})")
    return int(scaled)


@dataclass(frozen=True, order=True)
class Money:
    """An amount in integer minor units of ``currency``."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount_minor, int) or isinstance(self.amount_minor, bool):
            raise TypeError("Money.amount_minor must be an int (minor units)")
        object.__setattr__(self, "currency", self.currency.upper())
        minor_unit_exponent(self.currency)

    def __add__(self, other: "Money") -> "Money":
        self._same(other)
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: "Money") -> "Money":
        self._same(other)
        return Money(self.amount_minor - other.amount_minor, self.currency)

    def times(self, factor: Decimal | int | str) -> "Money":
        """Multiply, rounding half to even back to whole minor units."""
        exact = Decimal(self.amount_minor) * Decimal(str(factor))
        return Money(int(exact.to_integral_value(rounding=ROUND_HALF_EVEN)), self.currency)

    def major(self) -> Decimal:
        return Decimal(self.amount_minor).scaleb(-minor_unit_exponent(self.currency))

    def format(self, locale: str = "en") -> str:
        """Localised display, e.g. ``$1,234.56`` (en), ``￥3,000`` (ja), ``1 234,56 ₴`` (uk)."""
        if locale == "en":  # the hot path (explanations, summaries): Babel's pattern, applied directly
            symbol, exp = _en_currency(self.currency)
            sign = "-" if self.amount_minor < 0 else ""
            return f"{sign}{symbol}{abs(self.major()):,.{exp}f}"
        from babel.numbers import format_currency

        return format_currency(self.major(), self.currency, locale=locale.replace("-", "_"))

    def __str__(self) -> str:
        exp = minor_unit_exponent(self.currency)
        return f"{self.major():.{exp}f} {self.currency}"

    def _same(self, other: "Money") -> None:
        if self.currency != other.currency:
            raise WinbackError(f"cannot combine {self.currency} with {other.currency}")


@lru_cache(maxsize=512)
def _en_currency(currency: str) -> tuple[str, int]:
    """(symbol, decimals) as Babel's English locale writes the currency (``$``, ``¥``, ``CA$``, ``CHF\xa0``)."""
    from babel.numbers import format_currency

    sample = format_currency(1, currency, locale="en")  # e.g. "$1.00", "CHF 1.00", "¥1"
    exp = minor_unit_exponent(currency)
    body = f"{1:.{exp}f}"
    return sample[: sample.index(body)] if body in sample else f"{currency}\xa0", exp
