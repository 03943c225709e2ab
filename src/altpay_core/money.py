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
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any, ClassVar, Final, NoReturn

import attrs
import iso4217

from . import _fields
from ._arguments import checked_arguments, checked_constructor
from .errors import CurrencyMismatch, FieldError, OperandError, ValidationError, cut, shown

__all__ = ["Currency", "Money", "Rounding"]


class Rounding(_fields.Choices, enum.StrEnum):
    """How to round an amount to the currency's minor units.

    The values are the :mod:`decimal` module's own constants, so
    ``decimal.ROUND_HALF_EVEN`` may be passed wherever a ``Rounding`` is, and
    so may a member's name, in any case (``"HALF_EVEN"``, ``"half_even"``).
    The library's own rule, where a caller names none, is ``HALF_EVEN``.
    """

    HALF_EVEN = decimal.ROUND_HALF_EVEN
    HALF_UP = decimal.ROUND_HALF_UP
    HALF_DOWN = decimal.ROUND_HALF_DOWN
    UP = decimal.ROUND_UP
    DOWN = decimal.ROUND_DOWN
    CEILING = decimal.ROUND_CEILING
    FLOOR = decimal.ROUND_FLOOR


# An amount has at most this many digits before the point (and at most four
# after it, the most minor units any currency has): 34 significant digits.
_MAX_DIGITS: Final = 30
# Every Decimal operation names one of the library's own contexts, never the
# caller's thread-local one: a caller's precision or traps change nothing.
# Sums and whole-number products of amounts are exact in _CONTEXT (an amount
# below 10**30 has at most 34 digits, a sum or product that large is refused).
_CONTEXT: Final = decimal.Context(
    prec=_MAX_DIGITS + 10,
    rounding=decimal.ROUND_HALF_EVEN,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
# Products by a factor are worked out exactly, then rounded once. _PRODUCT
# holds any product of an amount and a factor of up to 66 digits; a longer
# factor raises Inexact, and the product is worked out again in a context
# made wide enough for it.
_PRODUCT: Final = decimal.Context(
    prec=100,
    rounding=decimal.ROUND_HALF_EVEN,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow, decimal.Inexact],
)
# Allocation ratios: below 10**100, with at most 1000 decimal places (trailing
# zeros aside), so that they scale to whole numbers of bounded size.
_RATIO_MAX_ADJUSTED: Final = 99
_RATIO_MAX_PLACES: Final = 1000
_RATIO_LIMIT: Final = 10 ** (_RATIO_MAX_ADJUSTED + 1)
_RATIO: Final = decimal.Context(
    prec=_RATIO_MAX_ADJUSTED + _RATIO_MAX_PLACES + 1,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow, decimal.Inexact],
)


def _wide_context(digits: int) -> decimal.Context:
    return decimal.Context(
        prec=digits,
        Emax=decimal.MAX_EMAX,
        Emin=decimal.MIN_EMIN,
        traps=[
            decimal.InvalidOperation,
            decimal.DivisionByZero,
            decimal.Overflow,
            decimal.Inexact,
        ],
    )


# Members of a StrEnum hash and compare as their values, so this one look-up
# takes a Rounding as well as the decimal module's string constants.
_ROUNDINGS: Final[dict[object, str]] = {
    text: mode.value for mode in Rounding for text in (mode, mode.name)
}


def _rounding(value: object, path: str = "rounding") -> str:
    try:
        # ASCII only, as every code read in any case: str.upper() turns some
        # other letters into ASCII ones ("\ufb02oor" into "FLOOR").
        if isinstance(value, str) and not isinstance(value, Rounding):
            value = _fields.plain_str(value)  # looked up by its text alone
        return _ROUNDINGS[value.upper() if type(value) is str and value.isascii() else value]
    except (KeyError, TypeError):  # TypeError: unhashable
        names = ", ".join(repr(r.name) for r in Rounding)
        raise ValidationError.single(
            path,
            "invalid_rounding",
            f"'{path}' must be a Rounding or one of {names} (got {shown(value)})",
        ) from None


@checked_constructor
@attrs.frozen(init=False, repr=False, eq=False, order=False)
class Currency:
    """An ISO 4217 currency with its number of minor units.

    ``Currency("USD")`` returns the one shared instance for that code, so
    currencies compare by identity and cost nothing to build again. A
    currency also equals its code, as text:

    >>> Currency("JPY").minor_units, Currency("BHD").minor_units
    (0, 3)
    >>> Currency("usd") == "USD", Currency("USD") == "CAD"
    (True, False)
    """

    code: str
    # Not arguments: a currency is named by its code alone (so that
    # ``attrs.evolve`` of one works, as of any other value).
    minor_units: int = attrs.field(init=False)
    name: str = attrs.field(init=False)
    numeric: int = attrs.field(init=False)

    _registry: ClassVar[dict[str, Currency]] = {}

    def __new__(cls, code: str | Currency) -> Currency:
        # Exact text only: a str subclass's own __eq__ and __hash__ must not
        # pick the currency (it is read as plain text below).
        found = cls._registry.get(code) if type(code) is str else None
        if found is not None:
            return found
        if isinstance(code, Currency):
            return code
        if not isinstance(code, str):
            raise ValidationError.single(
                "",
                "wrong_type",
                f"'currency' must be an ISO 4217 code such as 'USD' (got {type(code).__name__})",
            )
        text = str.strip(code)
        # Upper-case ASCII only: str.upper() maps some other letters onto
        # ASCII ones ("ßp" becomes SSP; U+017F, the long s, becomes S), as
        # values._clean_code says.
        found = cls._registry.get(text.upper()) if text.isascii() else None
        if found is None:
            raise ValidationError.single(
                "",
                "unknown_currency",
                f"'currency' must be an active ISO 4217 code with minor units "
                f"such as 'USD' (got {shown(code)})",
            )
        return found

    def __init__(self, code: str | Currency) -> None:
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
            fields = zip(
                ("code", "minor_units", "name", "numeric"),
                (entry.code, entry.exponent, entry.currency_name, entry.number),
                strict=True,
            )
            for name, value in fields:
                object.__setattr__(instance, name, value)
            cls._registry[entry.code] = instance

    @classmethod
    @checked_arguments
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
        return hash(self.code)  # equal to its code, and hashed alike

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Currency):
            return self is other
        if isinstance(other, str):
            return other == self.code
        return NotImplemented

    def __repr__(self) -> str:
        return f"Currency({self.code!r})"

    def __str__(self) -> str:
        return self.code


_QUANTA: Final = {n: Decimal((0, (1,), -n)) for n in range(10)}
# Multiplying by a fraction: its terms' bound, and the stand-ins for a
# remainder below, at and above one half of a minor unit.
_MAX_FRACTION: Final = 10**100
_ONE: Final = Decimal(1)
_QUARTER: Final = Decimal("0.25")
_HALF: Final = Decimal("0.5")
_THREE_QUARTERS: Final = Decimal("0.75")
# A hundredth of each minor unit: stands in for a product under a tenth of
# one, of which only the sign matters to rounding (see _exact_product).
_TINY: Final = {n: Decimal((0, (1,), -n - 2)) for n in range(10)}
Currency._load()


def _currency(value: object) -> Currency:
    try:
        return Currency(value)  # type: ignore[arg-type]
    except ValidationError as error:
        raise error.under("currency") from None


def decimal_from_text(text: str) -> Decimal | None:
    """The finite ``Decimal`` that ``text`` writes as ASCII decimal text
    (``"12.50"``, ``" 7 "``, ``"1e2"``), or None.

    The wire form of every decimal (amounts, card-fee rates): ``Decimal()``
    alone would also take ``"1_000"`` and the digits of other scripts
    (Arabic-Indic, full-width), and, in a caller's context that does not trap,
    give NaN for text that is no number at all.
    """
    if not text.isascii() or "_" in text:
        return None
    try:
        number = Decimal(text, _CONTEXT)
    except decimal.InvalidOperation:
        return None
    return number if number.is_finite() else None


def plain_decimal(number: Decimal) -> Decimal:
    """``number`` (finite) in the form ``to_dict`` writes as plain text: the
    same digits and decimal places, but no positive exponent (``1E+1`` is
    ``10``) and no negative zero (``-0.00`` is ``0.00``); equal to it.

    ``format(plain_decimal(d), "f")`` is then text with no exponent that
    reads back as this very ``Decimal``.

    A zero of any exponent is ``0`` (``0E+999999999999999999`` too); any
    other number must be small enough to write out in full, as the callers'
    bounds make it (a card-fee rate is at most 20, ``to_dict`` writes no more
    than 1100 digits this way).
    """
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        # A zero's adjusted() is its exponent, which may be MAX_EMAX: it needs
        # one digit, not a context of a precision beyond MAX_PREC.
        digits = number.adjusted() + 1 if number else 1
        number = number.quantize(_QUANTA[0], None, _wide_context(digits))
    return number.copy_abs() if not number and number.is_signed() else number


def _float_refused(path: str, value: float, takes: str) -> ValidationError:
    return ValidationError.single(
        path,
        "float_refused",
        f"'{path}' must be {takes}, never a float (got {shown(value)}); "
        "floats cannot hold cents exactly",
    )


def _parse_number(value: object, path: str) -> Decimal:
    """A finite ``Decimal`` from a str, int or Decimal, of any size."""
    if isinstance(value, str):
        # The wire form is an ASCII decimal string: Decimal() alone would also
        # take "1_000" and the digits of other scripts (Arabic-Indic,
        # full-width).
        number = decimal_from_text(_fields.plain_str(value))
        if number is None:
            raise ValidationError.single(
                path,
                "invalid_amount",
                f"'{path}' must be a decimal number such as '12.50' (got {shown(value)})",
            )
    elif isinstance(value, Decimal):
        # A plain Decimal, before anything compares or keeps it: a subclass
        # brings its own __eq__ and arithmetic.
        number = value if type(value) is Decimal else Decimal(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    elif isinstance(value, float):
        raise _float_refused(path, value, "a str, int or Decimal")
    else:
        raise ValidationError.single(
            path,
            "wrong_type",
            f"'{path}' must be a str, int or Decimal (got {type(value).__name__})",
        )
    if not number.is_finite():
        raise ValidationError.single(
            path, "invalid_amount", f"'{path}' must be a finite number (got {shown(value)})"
        )
    return number


def _parse_amount(value: object, path: str = "amount") -> Decimal:
    amount = _parse_number(value, path)
    # A zero has no digits before the point, whatever its exponent ("0E+30").
    if amount and amount.adjusted() >= _MAX_DIGITS:
        raise _too_large(path)
    return amount


@checked_constructor
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
                currency = _currency(currency)
            except ValidationError as error:
                raise _with_amount_errors(error, amount, rounding) from None
        try:
            value = _parse_amount(amount)
        except ValidationError as error:
            raise _with_rounding_errors(error, rounding) from None
        # A rounding mode is checked whether or not this amount needs it.
        mode = None if rounding is None else _rounding(rounding)
        quantum = _QUANTA[currency.minor_units]
        # Positional arguments: quantize() takes keywords at twice the cost.
        exact = value.quantize(quantum, None, _CONTEXT)
        if exact != value:
            if mode is None:
                # Text as it came; a number as the library writes it.
                got = str(amount) if isinstance(amount, str) else _CONTEXT.to_sci_string(value)
                raise ValidationError.single(
                    "amount",
                    "too_precise",
                    f"'amount' must have at most {currency.minor_units} decimal "
                    f"places in {currency.code} (got {cut(got)}); "
                    "name a rounding mode to round it",
                )
            exact = value.quantize(quantum, mode, _CONTEXT)
            if exact.adjusted() >= _MAX_DIGITS:  # rounded up to 10**30
                raise _too_large()
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
    @checked_arguments
    def zero(cls, currency: str | Currency) -> Money:
        """Nothing, in ``currency``: ``Money.zero("JPY")``.

        Money is immutable, so each currency's zero is built once and shared,
        whether the currency is given as a ``Currency`` or as its code:
        ``Money.zero("JPY") is Money.zero(Currency("JPY"))``.
        """
        return _zero(currency) if cls is Money else cls(0, currency)

    @classmethod
    @checked_arguments
    def from_minor_units(cls, units: int, currency: str | Currency) -> Money:
        """The amount of ``units`` cents (or the currency's minor unit).

        >>> Money.from_minor_units(1250, "USD")
        Money('12.50', 'USD')
        """
        if not isinstance(currency, Currency):
            currency = _currency(currency)
        if not isinstance(units, int) or isinstance(units, bool):
            raise ValidationError.single(
                "units", "wrong_type", f"'units' must be an int (got {type(units).__name__})"
            )
        try:
            return cls(Decimal(units).scaleb(-currency.minor_units, _CONTEXT), currency)
        except ValidationError:  # exact: only its size can be refused
            raise _too_large("units", comes_to="make an amount of") from None

    @classmethod
    @checked_arguments
    def sum(cls, amounts: Iterable[Money], currency: str | Currency) -> Money:
        """The total of ``amounts``, all in ``currency`` (zero when empty).

        The same as adding them one by one to ``Money.zero(currency)``, the
        refusal of a partial sum too large included, but with one ``Money``
        built for the result rather than one per step: the sum of amounts
        quantized to the currency is itself quantized, so only its size needs
        checking. Money in another currency raises
        :class:`~altpay_core.errors.CurrencyMismatch`, as ``+`` would;
        anything that is not money (or ``amounts`` not being iterable) raises
        :class:`~altpay_core.errors.ValidationError` at ``amounts[i]`` (or
        ``amounts``).
        """
        zero = _zero(currency)
        kind, total = zero.currency, zero.amount
        try:
            if isinstance(amounts, _fields.TEXT_OR_BYTES):  # iterable, but of no money
                raise TypeError
            items = iter(amounts)
        except TypeError:
            raise ValidationError.single(
                "amounts",
                "wrong_type",
                f"'amounts' must be an iterable of Money (got {type(amounts).__name__})",
            ) from None
        add = _CONTEXT.add  # once, not once an amount
        for index, money in enumerate(items):
            if isinstance(money, Money) and money.currency is kind:
                total = add(total, money.amount)
                if total.adjusted() >= _MAX_DIGITS:
                    raise _too_large()
            elif isinstance(money, Money):
                raise CurrencyMismatch(kind.code, money.currency.code, "add")
            else:
                raise ValidationError.single(
                    f"amounts[{index}]",
                    "wrong_type",
                    f"'amounts[{index}]' must be Money (got {type(money).__name__})",
                )
        return Money._exact(total, kind)

    @property
    def minor_units(self) -> int:
        """The amount as a whole number of minor units: 1250 for USD 12.50."""
        return int(self.amount.scaleb(self.currency.minor_units, _CONTEXT))

    @property
    def is_zero(self) -> bool:
        """Whether the amount is zero (``USD 0.00``)."""
        return not self.amount

    def __bool__(self) -> bool:
        """False for zero, as a number is: ``if invoice.balance:`` reads
        "if something is still owed"."""
        return bool(self.amount)

    @property
    def is_positive(self) -> bool:
        """Whether the amount is more than zero."""
        return self.amount > 0

    @property
    def is_negative(self) -> bool:
        """Whether the amount is less than zero."""
        return self.amount < 0

    def _same(self, other: Money, operation: str) -> None:
        if other.currency is not self.currency:
            raise CurrencyMismatch(self.currency.code, other.currency.code, operation)

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            raise _not_money(other, "add")
        self._same(other, "add")
        return self._checked(_CONTEXT.add(self.amount, other.amount))

    def __sub__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            raise _not_money(other, "subtract")
        self._same(other, "subtract")
        return self._checked(_CONTEXT.subtract(self.amount, other.amount))

    def _checked(self, amount: Decimal) -> Money:
        if not amount:
            return _ZEROS[self.currency.code]  # never "-0.00" (say -1.00 * 0)
        if amount.adjusted() >= _MAX_DIGITS:
            raise _too_large()
        return Money._exact(amount, self.currency)

    # copy_negate and copy_abs are exact; unary - and abs() would round to
    # the caller's thread-local context.
    def __neg__(self) -> Money:
        amount = self.amount
        return Money._exact(amount.copy_negate() if amount else amount, self.currency)

    def __pos__(self) -> Money:
        return self

    def __abs__(self) -> Money:
        return Money._exact(self.amount.copy_abs(), self.currency)

    def __mul__(self, factor: int | Decimal | Fraction) -> Money:
        """Multiply by a whole number, which is always exact, or by a
        ``Decimal`` or a ``Fraction`` when the product is exact in minor units.

        A product finer than the minor unit needs a rounding mode: use
        :meth:`multiply`.
        """
        if isinstance(factor, bool) or not isinstance(factor, int):
            if isinstance(factor, float):
                raise _float_refused("factor", factor, "an int, a Decimal or a Fraction")
            if isinstance(factor, Decimal):
                # As multiply() takes it.
                return self._times(_parse_amount(factor, "factor"), 0, None, "factor")
            if isinstance(factor, Fraction):
                return self._times_fraction(factor, None)
            raise OperandError(
                "factor",
                "money multiplies only by a whole number (an int), a Decimal or a Fraction; "
                f"for text use money.multiply(factor) (got {type(factor).__name__})",
            )
        return self._checked(_CONTEXT.multiply(self.amount, factor))

    __rmul__ = __mul__

    @checked_arguments
    def multiply(
        self, factor: int | Decimal | str | Fraction, *, rounding: Rounding | str | None = None
    ) -> Money:
        """Multiply by ``factor`` and round the result with ``rounding``.

        The product is exact; it is rounded once, to the currency's minor
        unit, whatever the caller's :mod:`decimal` context. With no
        ``rounding``, a product finer than the minor unit is refused
        (``rounding_required``), as such an amount is. A ``Fraction``, such
        as one third, has no exact decimal form: its product is rounded once,
        exactly (numerator and denominator below ``10**100``).

        >>> Money("10.00", "USD").multiply("0.333", rounding=Rounding.HALF_EVEN)
        Money('3.33', 'USD')
        >>> Money("10.00", "USD").multiply("0.5")
        Money('5.00', 'USD')
        >>> Money("10.00", "USD").multiply(Fraction(2, 3), rounding=Rounding.HALF_EVEN)
        Money('6.67', 'USD')
        """
        mode = None if rounding is None else _rounding(rounding)
        if isinstance(factor, Fraction):
            return self._times_fraction(factor, mode)
        return self._times(_parse_amount(factor, "factor"), 0, mode, "factor")

    def _times_fraction(self, factor: Fraction, mode: str | None) -> Money:
        """This amount times ``factor``, rounded once with ``mode``: in whole
        minor units, the integer quotient and where the remainder lies
        (below, at or above one half) are all that any rounding mode reads."""
        if max(abs(factor.numerator), factor.denominator) >= _MAX_FRACTION:
            raise ValidationError.single(
                "factor",
                "ratio_out_of_range",
                "'factor' must be a fraction whose numerator and denominator are below 1e100",
            )
        currency = self.currency
        limit = 10 ** (_MAX_DIGITS + currency.minor_units)
        whole, left = divmod(self.minor_units * factor.numerator, factor.denominator)
        if whole >= limit or whole < -limit:
            raise _too_large()  # as a product too large by a Decimal is
        if left:
            if mode is None:
                raise ValidationError.single(
                    "factor",
                    "rounding_required",
                    f"{self} times factor {factor} is finer than {currency.code}'s minor unit: "
                    "name a rounding mode (rounding=Rounding.HALF_EVEN)",
                )
            twice = 2 * left
            # A stand-in with the same integer part and the same side of one half.
            half = factor.denominator
            part = _QUARTER if twice < half else _HALF if twice == half else _THREE_QUARTERS
            whole = int(_CONTEXT.add(Decimal(whole), part).quantize(_ONE, mode, _CONTEXT))
        if abs(whole) >= limit:  # rounded up to the limit
            raise _too_large()
        return Money.from_minor_units(whole, currency)

    @checked_arguments
    def percent(
        self, rate: int | Decimal | str, *, rounding: Rounding | str | None = None
    ) -> Money:
        """``rate`` percent of this amount, rounded with ``rounding``.

        Exact, then rounded once, as :meth:`multiply`; with no ``rounding``,
        a result finer than the minor unit is refused.

        >>> Money("100.00", "USD").percent("2.9", rounding=Rounding.HALF_EVEN)
        Money('2.90', 'USD')
        """
        ratio = _parse_amount(rate, "rate")
        return self._times(ratio, -2, None if rounding is None else _rounding(rounding), "rate")

    def _times(self, factor: Decimal, shift: int, mode: str | None, path: str) -> Money:
        """This amount times ``factor * 10**shift``, rounded once with
        ``mode``; with none, refused unless exact in minor units."""
        amount, currency = self.amount, self.currency
        if not amount or not factor:
            return _ZEROS[currency.code]
        try:
            product = _PRODUCT.multiply(amount, factor)
            if shift:
                product = _PRODUCT.scaleb(product, shift)
        except decimal.Inexact:  # a long factor, or a far too small one
            product = _exact_product(amount, factor, shift, currency.minor_units)
        if product.adjusted() >= _MAX_DIGITS:
            raise _too_large()
        # Positional arguments: quantize() takes keywords at twice the cost.
        quantum = _QUANTA[currency.minor_units]
        if mode is None:
            rounded = product.quantize(quantum, decimal.ROUND_DOWN, _CONTEXT)
            if rounded != product:  # the stand-in for a tiny product is never exact
                shown_factor = cut(_CONTEXT.to_sci_string(factor))
                raise ValidationError.single(
                    path,
                    "rounding_required",
                    f"{self} times {path} {shown_factor}{'' if path == 'factor' else '%'} "
                    f"is finer than {currency.code}'s minor unit: name a rounding mode "
                    "(rounding=Rounding.HALF_EVEN)",
                )
        else:
            rounded = product.quantize(quantum, mode, _CONTEXT)
        if not rounded:
            return _ZEROS[currency.code]  # never "-0.00"
        if rounded.adjusted() >= _MAX_DIGITS:  # rounded up to 10**30
            raise _too_large()
        return Money._exact(rounded, currency)

    @checked_arguments
    def allocate(self, ratios: Sequence[int | Decimal | str]) -> list[Money]:
        """Split into parts in proportion to ``ratios``; the parts sum exactly.

        The largest-remainder method: each part gets its share rounded down to
        a minor unit, then the minor units left over go one each to the parts
        with the largest remainders, ties to the earliest part. A zero ratio
        always gets zero. Deterministic.

        A ratio is an ``int``, ``Decimal`` or ``str``, not negative, below
        ``10**100`` and with at most 1000 decimal places (trailing zeros
        aside); one outside that range is refused (``ratio_out_of_range``).

        >>> [p.amount for p in Money("0.05", "USD").allocate([1, 1, 0, 1])]
        [Decimal('0.02'), Decimal('0.02'), Decimal('0.00'), Decimal('0.01')]
        """
        if isinstance(ratios, _fields.TEXT_OR_BYTES) or not isinstance(ratios, Sequence):
            raise ValidationError.single(
                "ratios",
                "wrong_type",
                f"'ratios' must be a sequence of numbers (got {type(ratios).__name__})",
            )
        if not ratios:
            raise ValidationError.single("ratios", "empty", "'ratios' must hold at least one ratio")
        # Each ratio as a whole number over 10**places; then all of them over
        # the largest such power, so that the arithmetic is on whole numbers.
        pairs = [_ratio(ratio, f"ratios[{index}]") for index, ratio in enumerate(ratios)]
        most = max(places for _, places in pairs)
        weights = [
            numerator * 10 ** (most - places) if places != most else numerator
            for numerator, places in pairs
        ]
        whole = sum(weights)
        if whole == 0:
            raise ValidationError.single("ratios", "zero_ratios", "'ratios' must not all be zero")
        units = self.minor_units
        sign = -1 if units < 0 else 1
        units = abs(units)
        shares: list[int] = []
        remainders: list[int] = []  # over ``whole``: comparable as they are
        for weight in weights:
            share, remainder = divmod(units * weight, whole)
            shares.append(share)
            remainders.append(remainder)
        left = units - sum(shares)
        # Largest remainder first, ties to the earliest part; Python's sort is
        # stable, so sorting by remainder alone keeps index order among ties.
        # A zero ratio has remainder zero, and ``left`` is less than the number
        # of non-zero remainders (each below one), so it never gets a unit.
        order = sorted(range(len(shares)), key=remainders.__getitem__, reverse=True)
        for index in order[:left]:
            shares[index] += 1
        currency = self.currency
        scale = -currency.minor_units
        return [
            Money._exact(_CONTEXT.scaleb(Decimal(sign * share), scale), currency)
            for share in shares
        ]

    @checked_arguments
    def split(self, parts: int) -> list[Money]:
        """Split into ``parts`` equal parts; the first take any extra minor units.

        ``parts`` is a whole number from 1 to 1,000,000.

        >>> [str(p) for p in Money("10", "JPY").split(3)]
        ['JPY 4', 'JPY 3', 'JPY 3']
        """
        parts = _fields.whole_number("parts", parts, 1, _MAX_PARTS, code="invalid_parts")
        return self.allocate([1] * parts)

    def __lt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            raise _not_money(other, "compare")
        self._same(other, "compare")
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            raise _not_money(other, "compare")
        self._same(other, "compare")
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            raise _not_money(other, "compare")
        self._same(other, "compare")
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            raise _not_money(other, "compare")
        self._same(other, "compare")
        return self.amount >= other.amount

    def __repr__(self) -> str:
        return f"Money({str(self.amount)!r}, {self.currency.code!r})"

    def __str__(self) -> str:
        return f"{self.currency.code} {self.amount:,}"

    def __format__(self, format_spec: str) -> str:
        """Format ``str(money)`` with a text's format spec: ``f"{m:>12}"`` is
        ``'   USD 12.50'``, and an empty spec gives ``str(money)``.

        A spec that text does not take (``f"{m:.2f}"``) is an
        :class:`~altpay_core.errors.OperandError` at ``format_spec``.
        """
        try:
            return format(str(self), format_spec)
        except (TypeError, ValueError):
            raise OperandError(
                "format_spec",
                f"money is formatted as its text ({self}), which takes no format spec "
                f"{format_spec!r}; to format the number, use money.amount",
            ) from None

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self.amount), self.currency.code))


def _refused(operator: str, path: str, advice: str) -> Callable[..., NoReturn]:
    def refuse(self: Money, *operands: object) -> NoReturn:
        raise OperandError(path, f"money takes no {operator}{advice}")

    return refuse


# The operators money does not take: an OperandError (a ValidationError and a
# TypeError) that says what to do instead, never a bare TypeError. Not
# declared in the class, so that a type checker flags them too.
_DIVIDE: Final = (
    ": use money.split(n) for n parts, or money.allocate(ratios), "
    "whose parts sum exactly to the whole"
)
for _name, _operator in (
    ("truediv", "/"),
    ("floordiv", "//"),
    ("mod", "%"),
    ("divmod", "divmod()"),
):
    setattr(Money, f"__{_name}__", _refused(_operator, "divisor", _DIVIDE))
    setattr(Money, f"__r{_name}__", _refused(_operator, "other", " (nothing is divided by money)"))
for _name, _operator in (
    ("pow", "**"),
    ("matmul", "@"),
    ("lshift", "<<"),
    ("rshift", ">>"),
    ("and", "&"),
    ("or", "|"),
    ("xor", "^"),
):
    for _side in ("", "r"):
        setattr(Money, f"__{_side}{_name}__", _refused(_operator, "other", ""))
# Money taken for a number: the operand at fault is the money itself, at the
# empty path.
_NUMBER: Final = (
    ": money is exact to its currency's minor unit; use money.amount (a Decimal) "
    "or money.minor_units (an int) for its number"
)
for _name, _operator, _advice in (
    ("invert", "~", ": use -money for its opposite"),
    ("round", "round()", _NUMBER),
    ("floor", "math.floor()", _NUMBER),
    ("ceil", "math.ceil()", _NUMBER),
    ("trunc", "math.trunc()", _NUMBER),
    ("int", "int()", _NUMBER),
    ("float", "float()", _NUMBER),
    ("complex", "complex()", _NUMBER),
    ("index", "operator.index() (range(), hex(), an index)", _NUMBER),
):
    setattr(Money, f"__{_name}__", _refused(_operator, "", _advice))
del _name, _operator, _side, _advice


def _not_money_on_the_left(operation: str) -> Callable[[Money, object], NoReturn]:
    def refuse(self: Money, other: object) -> NoReturn:
        raise _not_money(other, operation)

    return refuse


# A number on the left: ``1 + money``, and ``sum(amounts)``, which starts
# from 0. Not declared in the class either, so that a type checker flags them.
for _name, _operation in (("add", "add"), ("sub", "subtract")):
    setattr(Money, f"__r{_name}__", _not_money_on_the_left(_operation))
del _name, _operation

_new: Final = object.__new__
_set: Final = object.__setattr__
_ZEROS: Final = {
    currency.code: Money._exact(_CONTEXT.quantize(Decimal(0), currency.quantum), currency)
    for currency in Currency.all()
}


def _zero(currency: str | Currency) -> Money:
    """``Money.zero(currency)``, for the library's own sums: shared zeros,
    without the argument check of a call by hand."""
    if type(currency) is Currency:
        return _ZEROS[currency.code]
    # A code given as text shares its currency's zero too; a bad one is
    # reported at ``currency``, as ``Money(0, currency)`` would.
    return _ZEROS[_currency(currency).code]


def _with_amount_errors(
    error: ValidationError, amount: object, rounding: object
) -> ValidationError:
    """The currency's ``error`` with whatever else is wrong, all at once, in
    the order of the arguments: the amount's own errors (its form and size;
    its decimal places depend on the currency) and an unknown rounding mode."""
    found: list[FieldError] = []
    try:
        _parse_amount(amount)
    except ValidationError as more:
        found.extend(more.errors)
    found.extend(error.errors)
    found.extend(_rounding_errors(rounding))
    return error if len(found) == len(error.errors) else ValidationError(found)


def _with_rounding_errors(error: ValidationError, rounding: object) -> ValidationError:
    """The amount's ``error`` and, with it, an unknown rounding mode."""
    more = _rounding_errors(rounding)
    return ValidationError([*error.errors, *more]) if more else error


def _rounding_errors(rounding: object) -> list[FieldError]:
    if rounding is None:
        return []
    try:
        _rounding(rounding)
    except ValidationError as error:
        return error.errors
    return []


def money_at(path: str, value: str | int | Decimal, currency: Currency) -> Money:
    """``Money(value, currency)`` for an argument or field at ``path``: its
    errors are located there and their messages name it, not ``'amount'``."""
    try:
        return Money(value, currency)
    except ValidationError as error:
        raise ValidationError(
            [
                FieldError(path, e.code, e.message.replace("'amount'", f"'{path}'"))
                for e in error.errors
            ]
        ) from None


_MAX_PARTS: Final = 1_000_000
"""The most parts :meth:`Money.split` makes: a list of them must fit in memory."""

_ONLY_MONEY: Final = {
    "add": "only money can be added to money",
    "subtract": "only money can be subtracted from money",
    "compare": "money can only be compared with money",
}


def _not_money(other: object, operation: str) -> OperandError:
    hint = "; to total amounts, use Money.sum(amounts, currency)" if operation == "add" else ""
    return OperandError(
        "other",
        f"{_ONLY_MONEY[operation]}, not {type(other).__name__}{hint}",
    )


def _too_large(path: str = "amount", *, comes_to: str = "") -> ValidationError:
    """``amount_too_large`` at ``path``; ``comes_to`` says what the value makes
    that is too large, when that is not the value itself (``"add up to"``)."""
    must = f"must {comes_to} at most" if comes_to else "must have at most"
    return ValidationError.single(
        path,
        "amount_too_large",
        f"'{path}' {must} {_MAX_DIGITS} digits before the point",
    )


def _exact_product(amount: Decimal, factor: Decimal, shift: int, units: int) -> Decimal:
    """``amount * factor * 10**shift`` exactly, or a stand-in that every
    rounding to ``units`` minor units treats alike; neither is zero."""
    # |amount| < 10**(adjusted + 1), so |product| < 10**(the sum + 2).
    if amount.adjusted() + factor.adjusted() + shift < -units - 2:
        # Under a tenth of a minor unit: every rounding mode gives the same
        # for it as for _TINY of the same sign. Working it out could take
        # forever (1e-999999999 is a valid factor) or underflow to zero.
        tiny: Decimal = _TINY[units]
        return tiny if (amount < 0) == (factor < 0) else tiny.copy_negate()
    wide = _wide_context(len(amount.as_tuple().digits) + len(factor.as_tuple().digits))
    product = wide.multiply(amount, factor)
    return wide.scaleb(product, shift) if shift else product


def _ratio(value: object, path: str) -> tuple[int, int]:
    """An allocation ratio as ``(numerator, places)``: ``numerator / 10**places``."""
    if type(value) is int:  # the usual case (split, minor units): no Decimal
        number: int | Decimal = value
    else:
        number = _parse_number(value, path)
    if number < 0:
        raise ValidationError.single(
            path, "negative_ratio", f"'{path}' must not be negative (got {shown(value)})"
        )
    if isinstance(number, int):
        if number >= _RATIO_LIMIT:
            raise _ratio_out_of_range(path)
        return number, 0
    if not number:
        return 0, 0
    if not -_RATIO_MAX_PLACES <= number.adjusted() <= _RATIO_MAX_ADJUSTED:
        raise _ratio_out_of_range(path)
    try:
        # Within range, at most 1100 significant digits once trailing zeros
        # are dropped: more raises Inexact.
        reduced = _RATIO.normalize(number)
    except decimal.Inexact:
        raise _ratio_out_of_range(path) from None
    exponent = reduced.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if exponent >= 0:
        return int(reduced), 0
    if exponent < -_RATIO_MAX_PLACES:
        raise _ratio_out_of_range(path)
    return int(_RATIO.scaleb(reduced, -exponent)), -exponent


def _ratio_out_of_range(path: str) -> ValidationError:
    return ValidationError.single(
        path,
        "ratio_out_of_range",
        f"'{path}' must be below 1e{_RATIO_MAX_ADJUSTED + 1} and have at most "
        f"{_RATIO_MAX_PLACES} decimal places",
    )
