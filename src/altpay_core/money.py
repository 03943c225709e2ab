"""Currencies and exact amounts of money.

:class:`Currency` knows every active ISO 4217 code with its minor units, read
from the maintained ``iso4217`` package rather than a hand-typed table.
:class:`Money` is an exact amount in one currency: a ``Decimal`` quantized to
the currency's minor units, never a float. Splits (:meth:`Money.allocate`,
:meth:`Money.split`) always sum exactly to the whole.

>>> total = Money("100.00", "USD")
>>> [str(part) for part in total.split(3)]
['USD 33.34', 'USD 33.33', 'USD 33.33']
"""

from __future__ import annotations

import decimal
import enum
from collections.abc import Iterable, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any, ClassVar, Final

import attrs
import iso4217

from .errors import CurrencyMismatch, ValidationError

__all__ = ["Currency", "Money", "Rounding"]


class Rounding(enum.StrEnum):
    """How to round an amount to the currency's minor units.

    The values are the :mod:`decimal` module's own constants, so
    ``decimal.ROUND_HALF_EVEN`` may be passed wherever a ``Rounding`` is.
    The library's own rule, where a caller names none, is ``HALF_EVEN``.
    """

    HALF_EVEN = decimal.ROUND_HALF_EVEN
    HALF_UP = decimal.ROUND_HALF_UP
    HALF_DOWN = decimal.ROUND_HALF_DOWN
    UP = decimal.ROUND_UP
    DOWN = decimal.ROUND_DOWN
    CEILING = decimal.ROUND_CEILING
    FLOOR = decimal.ROUND_FLOOR


# Amounts are bounded so that every operation stays exact in this context.
_MAX_DIGITS: Final = 30
_CONTEXT: Final = decimal.Context(
    prec=_MAX_DIGITS + 10,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)


def _rounding(value: object, path: str = "rounding") -> str:
    try:
        return Rounding(value).value  # type: ignore[arg-type]
    except ValueError:
        names = ", ".join(r.name for r in Rounding)
        raise ValidationError.single(
            path, "invalid_rounding", f"'{path}' must be one of {names} (got {value!r})"
        ) from None


@attrs.frozen(init=False, repr=False, eq=False, order=False)
class Currency:
    """An ISO 4217 currency with its number of minor units.

    ``Currency("USD")`` returns the one shared instance for that code, so
    currencies compare by identity and cost nothing to build again.

    >>> Currency("JPY").minor_units, Currency("BHD").minor_units
    (0, 3)
    """

    code: str
    minor_units: int
    name: str
    numeric: int

    _registry: ClassVar[dict[str, Currency]] = {}

    def __new__(cls, code: str) -> Currency:
        found = cls._registry.get(code)
        if found is not None:
            return found
        if not isinstance(code, str):
            raise ValidationError.single(
                "",
                "wrong_type",
                f"'currency' must be an ISO 4217 code such as 'USD' (got {type(code).__name__})",
            )
        found = cls._registry.get(code.strip().upper())
        if found is None:
            raise ValidationError.single(
                "",
                "unknown_currency",
                f"'currency' must be an active ISO 4217 code with minor units "
                f"such as 'USD' (got {code!r})",
            )
        return found

    def __init__(self, code: str) -> None:
        # All the work is done once, in _load(); __new__ returns a shared instance.
        pass

    @classmethod
    def _load(cls) -> None:
        for entry in iso4217.Currency:
            # Funds, precious metals, SDR and test codes carry no minor units:
            # they are not currencies one invoices in.
            if entry.exponent is None:
                continue
            instance = object.__new__(cls)
            instance.__attrs_init__(entry.code, entry.exponent, entry.currency_name, entry.number)
            cls._registry[entry.code] = instance

    @classmethod
    def all(cls) -> tuple[Currency, ...]:
        """Every known currency, sorted by code."""
        return tuple(cls._registry[code] for code in sorted(cls._registry))

    @property
    def quantum(self) -> Decimal:
        """The smallest amount of this currency: ``Decimal('0.01')`` for USD."""
        return _QUANTA[self.minor_units]

    def __reduce__(self) -> tuple[Any, ...]:
        return (Currency, (self.code,))

    def __copy__(self) -> Currency:
        return self

    def __deepcopy__(self, memo: object) -> Currency:
        return self

    def __hash__(self) -> int:
        return hash(self.code)

    def __repr__(self) -> str:
        return f"Currency({self.code!r})"

    def __str__(self) -> str:
        return self.code


_QUANTA: Final = {n: Decimal(1).scaleb(-n) for n in range(10)}
Currency._load()


def _parse_amount(value: object) -> Decimal:
    if isinstance(value, str):
        try:
            amount = Decimal(value)
        except decimal.InvalidOperation:
            raise ValidationError.single(
                "amount",
                "invalid_amount",
                f"'amount' must be a decimal number such as '12.50' (got {value!r})",
            ) from None
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int) and not isinstance(value, bool):
        amount = Decimal(value)
    elif isinstance(value, float):
        raise ValidationError.single(
            "amount",
            "float_refused",
            f"'amount' must be a str, int or Decimal, never a float (got {value!r}); "
            "floats cannot hold cents exactly",
        )
    else:
        raise ValidationError.single(
            "amount",
            "wrong_type",
            f"'amount' must be a str, int or Decimal (got {type(value).__name__})",
        )
    if not amount.is_finite():
        raise ValidationError.single(
            "amount", "invalid_amount", f"'amount' must be a finite number (got {value!r})"
        )
    if amount.adjusted() >= _MAX_DIGITS:
        raise ValidationError.single(
            "amount",
            "amount_too_large",
            f"'amount' must have fewer than {_MAX_DIGITS} digits before the point",
        )
    return amount


@attrs.frozen(init=False, repr=False, eq=True, order=False)
class Money:
    """An exact amount in one currency.

    Built from a ``str``, ``int`` or ``Decimal`` amount and a currency code (or
    :class:`Currency`). A float is refused: it cannot hold cents exactly. An
    amount with more decimals than the currency has is refused unless a
    ``rounding`` mode is named.

    >>> Money("12.50", "USD")
    Money('12.50', 'USD')
    >>> Money("0.125", "USD", rounding=Rounding.HALF_EVEN)
    Money('0.12', 'USD')
    >>> Money("1", "JPY") + Money(2, "JPY")
    Money('3', 'JPY')

    ``+``, ``-`` and the orderings work within one currency and raise
    :class:`~altpay_core.errors.CurrencyMismatch` across currencies; ``==``
    across currencies is simply ``False``.
    """

    amount: Decimal
    currency: Currency

    def __init__(
        self,
        amount: str | int | Decimal,
        currency: str | Currency,
        *,
        rounding: Rounding | str | None = None,
    ) -> None:
        if not isinstance(currency, Currency):
            try:
                currency = Currency(currency)
            except ValidationError as error:
                raise error.under("currency") from None
        value = _parse_amount(amount)
        quantum = _QUANTA[currency.minor_units]
        exact = _CONTEXT.quantize(value, quantum)
        if exact != value:
            if rounding is None:
                raise ValidationError.single(
                    "amount",
                    "too_precise",
                    f"'amount' must have at most {currency.minor_units} decimal "
                    f"places in {currency.code} (got {amount!s}); "
                    "name a rounding mode to round it",
                )
            exact = value.quantize(quantum, rounding=_rounding(rounding), context=_CONTEXT)
        if not exact:
            exact = exact.copy_abs()  # no "-0.00"
        _set(self, "amount", exact)
        _set(self, "currency", currency)

    @classmethod
    def _exact(cls, amount: Decimal, currency: Currency) -> Money:
        # Internal fast path: the amount is already quantized to the currency.
        # Money is built by the thousand (every sum, every line of every
        # invoice read back): set the two slots directly, as attrs' frozen
        # init would, without its per-call lookup of the setter.
        money = _new(cls)
        _set(money, "amount", amount)
        _set(money, "currency", currency)
        return money

    @classmethod
    def zero(cls, currency: str | Currency) -> Money:
        """Nothing, in ``currency``: ``Money.zero("JPY")``.

        Money is immutable, so each currency's zero is built once and shared.
        """
        if cls is Money and type(currency) is Currency:
            return _ZEROS[currency.code]
        return cls(0, currency)

    @classmethod
    def from_minor_units(cls, units: int, currency: str | Currency) -> Money:
        """The amount of ``units`` cents (or the currency's minor unit).

        >>> Money.from_minor_units(1250, "USD")
        Money('12.50', 'USD')
        """
        if not isinstance(currency, Currency):
            currency = Currency(currency)
        if not isinstance(units, int) or isinstance(units, bool):
            raise ValidationError.single(
                "minor_units",
                "wrong_type",
                f"'minor_units' must be an int (got {type(units).__name__})",
            )
        return cls(Decimal(units).scaleb(-currency.minor_units, _CONTEXT), currency)

    @classmethod
    def sum(cls, amounts: Iterable[Money], currency: str | Currency) -> Money:
        """The total of ``amounts``, all in ``currency`` (zero when empty).

        The same as adding them one by one to ``Money.zero(currency)``, the
        same refusals included, but with one ``Money`` built for the result
        rather than one per step: the sum of amounts quantized to the
        currency is itself quantized, so only its size needs checking.
        """
        zero = cls.zero(currency)
        kind, total = zero.currency, zero.amount
        for money in amounts:
            if isinstance(money, Money) and money.currency is kind:
                total = _CONTEXT.add(total, money.amount)
                if total.adjusted() >= _MAX_DIGITS:
                    raise _too_large()
            else:
                # Another currency, or not money: ``+`` refuses it as it would
                # have one step at a time.
                total = (Money._exact(total, kind) + money).amount
        return Money._exact(total, kind)

    @classmethod
    def _sum_of_products(cls, pairs: Iterable[tuple[Money, int]], currency: Currency) -> Money:
        """The total of ``unit * quantity`` for each pair: what the lines of
        an invoice come to.

        The same as ``Money.sum(unit * quantity for unit, quantity in pairs)``,
        the same refusals included, without building a ``Money`` for each
        product: a quantized amount times a whole number is quantized.
        """
        total = cls.zero(currency).amount
        multiply, add = _CONTEXT.multiply, _CONTEXT.add  # once, not once a line
        for unit, quantity in pairs:
            if unit.currency is not currency:
                raise CurrencyMismatch(currency.code, unit.currency.code, "add")
            product = multiply(unit.amount, quantity)
            if product.adjusted() >= _MAX_DIGITS:
                raise _too_large()
            total = add(total, product)
            if total.adjusted() >= _MAX_DIGITS:
                raise _too_large()
        return Money._exact(total, currency)

    @property
    def minor_units(self) -> int:
        """The amount as a whole number of minor units: 1250 for USD 12.50."""
        return int(self.amount.scaleb(self.currency.minor_units, _CONTEXT))

    @property
    def is_zero(self) -> bool:
        return not self.amount

    @property
    def is_positive(self) -> bool:
        return self.amount > 0

    @property
    def is_negative(self) -> bool:
        return self.amount < 0

    def _same(self, other: Money, operation: str) -> None:
        if other.currency is not self.currency:
            raise CurrencyMismatch(self.currency.code, other.currency.code, operation)

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "add")
        return self._checked(_CONTEXT.add(self.amount, other.amount))

    def __sub__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "subtract")
        return self._checked(_CONTEXT.subtract(self.amount, other.amount))

    def _checked(self, amount: Decimal) -> Money:
        if amount.adjusted() >= _MAX_DIGITS:
            raise _too_large()
        return Money._exact(amount, self.currency)

    def __neg__(self) -> Money:
        return Money._exact((-self.amount) if self.amount else self.amount, self.currency)

    def __pos__(self) -> Money:
        return self

    def __abs__(self) -> Money:
        return Money._exact(abs(self.amount), self.currency)

    def __mul__(self, factor: int) -> Money:
        """Multiply by a whole number, which is always exact.

        Any other factor needs a rounding mode: use :meth:`multiply`.
        """
        if isinstance(factor, bool) or not isinstance(factor, int):
            if isinstance(factor, Decimal | float | Fraction | str):
                raise ValidationError.single(
                    "factor",
                    "rounding_required",
                    "multiplying money by a fraction needs a rounding mode: "
                    "use money.multiply(factor, rounding=Rounding.HALF_EVEN)",
                )
            return NotImplemented
        return self._checked(_CONTEXT.multiply(self.amount, factor))

    __rmul__ = __mul__

    def multiply(self, factor: int | Decimal | str, *, rounding: Rounding | str) -> Money:
        """Multiply by ``factor`` and round the result with ``rounding``.

        >>> Money("10.00", "USD").multiply("0.333", rounding=Rounding.HALF_EVEN)
        Money('3.33', 'USD')
        """
        ratio = _parse_factor(factor)
        return Money(self.amount * ratio, self.currency, rounding=rounding)

    def percent(self, rate: int | Decimal | str, *, rounding: Rounding | str) -> Money:
        """``rate`` percent of this amount, rounded with ``rounding``.

        >>> Money("100.00", "USD").percent("2.9", rounding=Rounding.HALF_EVEN)
        Money('2.90', 'USD')
        """
        ratio = _parse_factor(rate, "rate")
        return Money(self.amount * ratio / 100, self.currency, rounding=rounding)

    def allocate(self, ratios: Sequence[int | Decimal | str]) -> list[Money]:
        """Split into parts in proportion to ``ratios``; the parts sum exactly.

        The largest-remainder method: each part gets its share rounded down to
        a minor unit, then the minor units left over go one each to the parts
        with the largest remainders, ties to the earliest part. A zero ratio
        always gets zero. Deterministic.

        >>> [p.amount for p in Money("0.05", "USD").allocate([1, 1, 0, 1])]
        [Decimal('0.02'), Decimal('0.02'), Decimal('0.00'), Decimal('0.01')]
        """
        if isinstance(ratios, str) or not isinstance(ratios, Sequence):
            raise ValidationError.single(
                "ratios", "wrong_type", "'ratios' must be a sequence of numbers"
            )
        if not ratios:
            raise ValidationError.single("ratios", "empty", "'ratios' must hold at least one ratio")
        weights: list[Fraction] = []
        for index, ratio in enumerate(ratios):
            value = _parse_factor(ratio, f"ratios[{index}]")
            if value < 0:
                raise ValidationError.single(
                    f"ratios[{index}]",
                    "negative_ratio",
                    f"'ratios[{index}]' must not be negative (got {ratio!s})",
                )
            weights.append(Fraction(value))
        whole = sum(weights, Fraction(0))
        if whole == 0:
            raise ValidationError.single("ratios", "zero_ratios", "'ratios' must not all be zero")
        units = self.minor_units
        sign = -1 if units < 0 else 1
        units = abs(units)
        shares: list[int] = []
        remainders: list[Fraction] = []
        for weight in weights:
            exact = units * weight / whole
            floor = exact.numerator // exact.denominator
            shares.append(floor)
            remainders.append(exact - floor)
        left = units - sum(shares)
        # Largest remainder first, ties to the earliest part; Python's sort is
        # stable, so sorting by remainder alone keeps index order among ties.
        order = sorted(range(len(shares)), key=lambda i: remainders[i], reverse=True)
        for index in order[:left]:
            shares[index] += 1
        return [Money.from_minor_units(sign * share, self.currency) for share in shares]

    def split(self, parts: int) -> list[Money]:
        """Split into ``parts`` equal parts; the first take any extra minor units.

        >>> [str(p) for p in Money("10", "JPY").split(3)]
        ['JPY 4', 'JPY 3', 'JPY 3']
        """
        if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
            raise ValidationError.single(
                "parts",
                "invalid_parts",
                f"'parts' must be a whole number of at least 1 (got {parts!r})",
            )
        return self.allocate([1] * parts)

    def __lt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.amount >= other.amount

    def __repr__(self) -> str:
        return f"Money({str(self.amount)!r}, {self.currency.code!r})"

    def __str__(self) -> str:
        return f"{self.currency.code} {self.amount:,}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Money, (str(self.amount), self.currency.code))


_new: Final = object.__new__
_set: Final = object.__setattr__
_ZEROS: Final = {
    currency.code: Money._exact(Decimal(0).quantize(currency.quantum), currency)
    for currency in Currency.all()
}


def _too_large() -> ValidationError:
    return ValidationError.single(
        "amount",
        "amount_too_large",
        f"'amount' must have fewer than {_MAX_DIGITS} digits before the point",
    )


def _parse_factor(value: object, path: str = "factor") -> Decimal:
    try:
        parsed = _parse_amount(value)
    except ValidationError as error:
        raise ValidationError(
            [
                attrs.evolve(e, path=path, message=e.message.replace("'amount'", f"'{path}'"))
                for e in error.errors
            ]
        ) from None
    return parsed
