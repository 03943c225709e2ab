"""Money and currencies: exact amounts, splits that always sum, no floats."""

from __future__ import annotations

import copy
import decimal
import math
import operator
import pickle
import re
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction

import attrs
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from altpay_core import (
    AltpayError,
    Currency,
    CurrencyMismatch,
    Money,
    OperandError,
    Partner,
    Rounding,
    ValidationError,
    to_dict,
)
from altpay_core.testing import strategies as aps

# -- Currency ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "units"),
    [
        ("USD", 2),
        ("CAD", 2),
        ("EUR", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("BHD", 3),
        ("KWD", 3),
        ("CLF", 4),
    ],
)
def test_currency_minor_units_come_from_iso_4217(code: str, units: int) -> None:
    assert Currency(code).minor_units == units


def test_currency_is_shared_and_case_insensitive() -> None:
    assert Currency("usd") is Currency("USD") is Currency(" USD ")
    assert copy.deepcopy(Currency("USD")) is Currency("USD")
    assert pickle.loads(pickle.dumps(Currency("BHD"))) is Currency("BHD")
    assert attrs.evolve(Currency("USD")) is Currency("USD")
    assert attrs.evolve(Currency("USD"), code="cad") is Currency("CAD")
    assert repr(Currency("USD")) == "Currency('USD')"
    assert str(Currency("USD")) == "USD"
    assert Currency("USD").name == "US Dollar"
    assert Currency("USD").numeric == 840
    assert Currency("USD").quantum == Decimal("0.01")


@pytest.mark.parametrize("code", ["XAU", "XDR", "XTS", "XXX", "ABC", "", "US"])
def test_codes_without_minor_units_are_not_currencies(code: str) -> None:
    with pytest.raises(ValidationError) as info:
        Currency(code)
    assert info.value.codes == ["unknown_currency"]
    assert "'currency'" in str(info.value)


@pytest.mark.parametrize(
    "code",
    [
        "\u00dfp",  # str.upper() makes it SSP
        "u\u017fd",  # the long s: USD
        "\uff35\uff33\uff24",  # full-width USD
        "usd\u0307",  # a combining dot
    ],
)
def test_a_code_that_is_not_ascii_is_no_currency(code: str) -> None:
    # str.upper() maps some other letters onto ASCII ones, as for country codes.
    with pytest.raises(ValidationError) as info:
        Currency(code)
    assert info.value.codes == ["unknown_currency"]


@example("\u00dfp")
@example("u\u017fd")
@given(st.text(max_size=6) | st.sampled_from([c.code for c in Currency.all()]).map(str.lower))
def test_a_currency_is_its_ascii_code_in_any_case(code: str) -> None:
    text = code.strip()
    if text.isascii() and text.upper() in {c.code for c in Currency.all()}:
        assert Currency(code).code == text.upper()
        return
    with pytest.raises(ValidationError) as info:
        Currency(code)
    assert info.value.codes == ["unknown_currency"]


def test_currency_of_wrong_type() -> None:
    with pytest.raises(ValidationError) as info:
        Currency(840)  # type: ignore[arg-type]
    assert info.value.codes == ["wrong_type"]


@pytest.mark.parametrize("code", [[], {}, set(), ["USD"], None, 840])
@pytest.mark.parametrize(
    ("build", "path"),
    [
        (Currency, ""),
        (lambda c: Money("1", c), "currency"),
        (Money.zero, "currency"),
        (lambda c: Money.from_minor_units(1, c), "currency"),
        (lambda c: Money.sum([], c), "currency"),
    ],
)
def test_a_currency_that_is_not_a_code_is_a_validation_error(
    build: object, path: str, code: object
) -> None:
    # Unhashable values once escaped as a bare TypeError from the registry.
    with pytest.raises(ValidationError) as info:
        build(code)  # type: ignore[operator]
    assert info.value.codes == ["wrong_type"]
    assert info.value.paths == [path]
    assert "'currency'" in info.value.errors[0].message


def test_a_currency_is_accepted_where_a_code_is() -> None:
    usd = Currency("USD")
    assert Currency(usd) is usd
    assert Money("1", usd).currency is usd
    assert Money.zero(usd).currency is usd


def test_from_minor_units_names_the_currency_field() -> None:
    with pytest.raises(ValidationError) as info:
        Money.from_minor_units(1, "XAU")
    assert info.value.paths == ["currency"]
    assert info.value.codes == ["unknown_currency"]


def test_every_currency_is_listed_once_sorted() -> None:
    codes = [c.code for c in Currency.all()]
    assert codes == sorted(set(codes))
    assert len(codes) > 150
    assert all(c.minor_units in range(5) for c in Currency.all())


# -- building Money ---------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "code", "text"),
    [
        ("12.50", "USD", "12.50"),
        ("12.5", "USD", "12.50"),
        (12, "USD", "12.00"),
        (Decimal("1.5"), "BHD", "1.500"),
        ("1e2", "JPY", "100"),
        ("-0", "USD", "0.00"),
        (" 7 ", "CAD", "7.00"),
    ],
)
def test_money_is_built_from_str_int_or_decimal(
    amount: str | int | Decimal, code: str, text: str
) -> None:
    m = Money(amount, code)
    assert str(m.amount) == text
    assert m.currency is Currency(code)


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (1.5, "float_refused"),
        (0.1, "float_refused"),
        (float("nan"), "float_refused"),
        ("nan", "invalid_amount"),
        ("NaN", "invalid_amount"),
        ("inf", "invalid_amount"),
        ("-Infinity", "invalid_amount"),
        (Decimal("NaN"), "invalid_amount"),
        ("12,50", "invalid_amount"),
        ("", "invalid_amount"),
        ("abc", "invalid_amount"),
        (None, "wrong_type"),
        (True, "wrong_type"),
        ([1], "wrong_type"),
        ("1" + "0" * 40, "amount_too_large"),
        # The wire form is an ASCII decimal string: Decimal() alone takes these.
        ("1_000", "invalid_amount"),
        ("1_0.50", "invalid_amount"),
        ("\u0661\u0662", "invalid_amount"),  # Arabic-Indic digits
        ("\uff11\uff12", "invalid_amount"),  # full-width digits
        ("\u20037", "invalid_amount"),  # an em space before the 7
    ],
)
def test_bad_amounts_are_refused_with_a_clear_error(amount: object, code: str) -> None:
    with pytest.raises(ValidationError) as info:
        Money(amount, "USD")  # type: ignore[arg-type]
    assert info.value.codes == [code]
    assert info.value.paths == ["amount"]
    assert "'amount'" in info.value.errors[0].message


def test_unknown_currency_names_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        Money("1", "ZZZ")
    assert info.value.paths == ["currency"]


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_no_float_is_ever_accepted(value: float) -> None:
    with pytest.raises(ValidationError, match="float"):
        Money(value, "USD")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "errors"),
    [
        (("abc", "ZZZ"), [("amount", "invalid_amount"), ("currency", "unknown_currency")]),
        ((1.5, "ZZZ"), [("amount", "float_refused"), ("currency", "unknown_currency")]),
        ((None, None), [("amount", "wrong_type"), ("currency", "wrong_type")]),
        (("1e40", "ZZZ"), [("amount", "amount_too_large"), ("currency", "unknown_currency")]),
        # Its decimal places depend on the currency: not judged without one.
        (("1.001", "ZZZ"), [("currency", "unknown_currency")]),
        (("1", "ZZZ"), [("currency", "unknown_currency")]),
    ],
)
def test_an_unknown_currency_does_not_hide_a_bad_amount(
    args: tuple[object, object], errors: list[tuple[str, str]]
) -> None:
    # Only the currency was reported before.
    with pytest.raises(ValidationError) as info:
        Money(*args)  # type: ignore[arg-type]
    assert list(zip(info.value.paths, info.value.codes, strict=True)) == errors


def test_an_unknown_currency_does_not_hide_an_unknown_rounding_mode() -> None:
    with pytest.raises(ValidationError) as info:
        Money("x", "ZZZ", rounding="sideways")
    assert info.value.paths == ["amount", "currency", "rounding"]
    assert info.value.codes == ["invalid_amount", "unknown_currency", "invalid_rounding"]


@pytest.mark.parametrize("amount", ["x", 1.5, "1e40", None])
def test_a_bad_amount_does_not_hide_an_unknown_rounding_mode(amount: object) -> None:
    # Only the amount was reported before.
    with pytest.raises(ValidationError) as info:
        Money(amount, "USD", rounding="sideways")  # type: ignore[arg-type]
    assert info.value.paths == ["amount", "rounding"]
    assert info.value.codes[-1] == "invalid_rounding"
    with pytest.raises(ValidationError) as info:
        Money(amount, "USD", rounding="HALF_UP")  # type: ignore[arg-type]
    assert info.value.paths == ["amount"]


@given(amount=st.text(max_size=8) | st.integers() | st.decimals(), code=st.text(max_size=4))
def test_with_an_unknown_currency_the_amount_is_judged_as_in_any_currency(
    amount: object, code: str
) -> None:
    assume(code.strip().upper() not in {c.code for c in Currency.all()})
    try:
        Money(amount, "USD", rounding=Rounding.HALF_EVEN)  # type: ignore[arg-type]
        amount_errors: list[str] = []
    except ValidationError as error:
        amount_errors = error.codes
    with pytest.raises(ValidationError) as info:
        Money(amount, code)  # type: ignore[arg-type]
    assert info.value.codes == [*amount_errors, "unknown_currency"]


def test_more_decimals_than_the_currency_needs_a_rounding_mode() -> None:
    with pytest.raises(ValidationError) as info:
        Money("1.005", "USD")
    assert info.value.codes == ["too_precise"]
    with pytest.raises(ValidationError):
        Money("1.5", "JPY")
    assert Money("1.005", "USD", rounding=Rounding.HALF_EVEN) == Money("1.00", "USD")
    assert Money("1.005", "USD", rounding=Rounding.HALF_UP) == Money("1.01", "USD")
    assert Money("1.5", "JPY", rounding=decimal.ROUND_HALF_EVEN) == Money(2, "JPY")
    assert Money("1.50000", "USD") == Money("1.5", "USD")  # trailing zeros are exact


def test_unknown_rounding_mode_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        Money("1.005", "USD", rounding="ROUND_SOMEHOW")
    assert info.value.codes == ["invalid_rounding"]


def test_a_rounding_mode_is_named_by_its_member_name_or_decimal_constant() -> None:
    for mode in Rounding:
        for named in (
            mode,
            mode.name,
            mode.name.lower(),
            mode.name.title(),
            mode.value,
            mode.value.lower(),
            mode.value.title(),
        ):
            assert Money("1.005", "USD", rounding=named) == Money("1.005", "USD", rounding=mode)


@pytest.mark.parametrize(
    "mode",
    # The last two: letters that upper-case to ASCII ones (a ligature, a
    # dotless i) are not the mode's name.
    ["bogus", "HALF EVEN", "ROUND_HALF", "", [], 1, "\ufb02oor", "ce\u0131l\u0131ng"],
)
@pytest.mark.parametrize(
    "call",
    [
        lambda mode: Money("1.23", "USD", rounding=mode),  # no rounding needed
        lambda mode: Money("1.005", "USD", rounding=mode),
        lambda mode: Money("1.00", "USD").percent("1", rounding=mode),
        lambda mode: Money("1.00", "USD").multiply(2, rounding=mode),
        lambda mode: Money("1.00", "USD").multiply(0, rounding=mode),
        lambda mode: Money.zero("USD").multiply("0.5", rounding=mode),
    ],
)
def test_an_unknown_rounding_mode_is_always_refused(call: object, mode: object) -> None:
    with pytest.raises(ValidationError) as info:
        call(mode)  # type: ignore[operator]
    assert info.value.codes == ["invalid_rounding"]
    assert info.value.paths == ["rounding"]


def test_the_size_limit_is_the_one_the_message_states() -> None:
    with pytest.raises(ValidationError) as info:
        Money("1e30", "USD")
    assert info.value.codes == ["amount_too_large"]
    found = re.search(r"at most (\d+) digits before the point", info.value.errors[0].message)
    assert found is not None
    digits = int(found.group(1))
    assert Money("9" * digits + ".99", "USD").amount == Decimal("9" * digits + ".99")
    assert Money("1e29", "USD").minor_units == 10**31
    with pytest.raises(ValidationError):
        Money("1" + "0" * digits, "USD")


@example(exponent=30, negative=False)
@example(exponent=decimal.MAX_EMAX, negative=True)
@given(exponent=st.integers(-decimal.MAX_EMAX, decimal.MAX_EMAX), negative=st.booleans())
def test_a_zero_of_any_exponent_is_zero_money(exponent: int, negative: bool) -> None:
    # "0E+30" was refused as more than 30 digits before the point: a zero
    # has none.
    zero = Decimal((int(negative), (0,), exponent))
    assert Money(zero, "USD") == Money(str(zero), "USD") == Money("0.00", "USD")
    assert repr(Money(zero, "JPY")) == "Money('0', 'JPY')"
    ten = Money("10.00", "USD")
    assert ten.multiply(zero) == ten * zero == ten.percent(zero) == Money("0.00", "USD")
    partner = Partner.create(name="N", country="US")
    assert partner.set_card_fees(fixed=zero).card_fees.fixed == Money("0.00", "USD")


def test_rounding_up_past_the_size_limit_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        Money("9" * 30 + ".995", "USD", rounding=Rounding.HALF_UP)
    assert info.value.codes == ["amount_too_large"]
    with pytest.raises(ValidationError) as info:
        Money("9" * 30, "JPY").multiply("1.0000000001", rounding=Rounding.UP)
    assert info.value.codes == ["amount_too_large"]


def test_minor_units_and_zero() -> None:
    assert Money("12.50", "USD").minor_units == 1250
    assert Money("5", "JPY").minor_units == 5
    assert Money("1.234", "BHD").minor_units == 1234
    assert Money.zero("JPY") == Money(0, "JPY")
    assert Money.zero("USD").is_zero
    assert Money.from_minor_units(1250, "USD") == Money("12.50", "USD")
    assert Money.from_minor_units(-1, Currency("BHD")) == Money("-0.001", "BHD")
    # At the argument's own name: "minor_units", or "amount" when too large, before.
    with pytest.raises(ValidationError) as caught:
        Money.from_minor_units(1.0, "USD")  # type: ignore[arg-type]
    assert (caught.value.paths, caught.value.codes) == (["units"], ["wrong_type"])
    with pytest.raises(ValidationError) as caught:
        Money.from_minor_units(True, "USD")  # a bool is no count of cents
    assert (caught.value.paths, caught.value.codes) == (["units"], ["wrong_type"])
    for units in (10**32, -(10**400)):
        with pytest.raises(ValidationError) as caught:
            Money.from_minor_units(units, "USD")
        assert (caught.value.paths, caught.value.codes) == (["units"], ["amount_too_large"])
    assert Money.from_minor_units(10**32 - 1, "USD").amount.adjusted() == 29


@given(aps.money())
def test_money_is_false_when_zero_as_a_number_is(m: Money) -> None:
    assert bool(m) is (not m.is_zero) is bool(m.amount)


@given(aps.money())
def test_minor_units_round_trip(m: Money) -> None:
    assert Money.from_minor_units(m.minor_units, m.currency) == m


def test_str_and_repr() -> None:
    assert str(Money("1234.5", "USD")) == "USD 1,234.50"
    assert str(Money("-1234567", "JPY")) == "JPY -1,234,567"
    assert repr(Money("12.5", "USD")) == "Money('12.50', 'USD')"
    assert str(-Money.zero("USD")) == "USD 0.00"


@given(aps.money())
def test_repr_and_pickle_round_trip(m: Money) -> None:
    assert eval(repr(m)) == m
    assert pickle.loads(pickle.dumps(m)) == m
    assert hash(pickle.loads(pickle.dumps(m))) == hash(m)


class _Usd(Money):
    """A user's subclass of Money (module level, so that it pickles)."""


@pytest.mark.parametrize(
    "copied",
    [copy.copy, copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_a_subclass_of_money_copies_and_pickles_as_itself(copied: Callable[[Money], Money]) -> None:
    m = _Usd("1.50", "USD")
    assert type(copied(m)) is _Usd
    assert copied(m) == m


# -- arithmetic and comparisons ----------------------------------------------


def test_arithmetic_within_one_currency() -> None:
    a, b = Money("10.00", "USD"), Money("2.50", "USD")
    assert a + b == Money("12.50", "USD")
    assert a - b == Money("7.50", "USD")
    assert -b == Money("-2.50", "USD")
    assert abs(-b) == b
    assert +b is b
    assert b * 3 == 3 * b == Money("7.50", "USD")
    assert b < a
    assert b <= a
    assert a > b
    assert a >= b
    # Equal amounts: <= and >= hold, < and > do not.
    same = Money("10.0", "USD")
    assert a <= same
    assert a >= same
    assert not a < same
    assert not a > same
    assert not a <= b
    assert not b >= a
    assert b.is_positive
    assert (-b).is_negative
    assert Money.sum([a, b, b], "USD") == Money("15.00", "USD")
    assert Money.sum([], "USD") == Money.zero("USD")


@pytest.mark.parametrize(
    "operation",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
    ],
)
def test_mixing_currencies_is_refused(operation: object) -> None:
    with pytest.raises(CurrencyMismatch) as info:
        operation(Money("1", "USD"), Money("1", "CAD"))  # type: ignore[operator]
    assert isinstance(info.value, AltpayError)
    assert (info.value.left, info.value.right) == ("USD", "CAD")


@given(aps.money(), aps.money())
def test_equality_across_currencies_is_false_never_raises(a: Money, b: Money) -> None:
    assume(a.currency is not b.currency)
    assert a != b
    assert not (a == b)  # noqa: SIM201 - __eq__ itself, not __ne__


def test_money_is_not_equal_to_numbers() -> None:
    assert Money("1", "USD") != 1
    assert Money("1", "USD") != Decimal(1)
    assert Money("0", "USD") != 0


# Fractions whose product with any amount is finer than a minor unit: a
# denominator with a prime factor other than 2 and 5, the numerator prime to it.
_inexact_fractions = st.builds(
    Fraction, st.integers(1, 10**6).filter(lambda n: n % 3), st.sampled_from([3, 7, 21, 300])
).filter(lambda f: f.denominator % 3 == 0 or f.denominator % 7 == 0)

not_money = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.fractions(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.builds(object),
)

OPERATIONS = {
    "money + x": (lambda m, x: m + x, "other"),
    "x + money": (lambda m, x: x + m, "other"),
    "money - x": (lambda m, x: m - x, "other"),
    "x - money": (lambda m, x: x - m, "other"),
    "money < x": (lambda m, x: m < x, "other"),
    "money <= x": (lambda m, x: m <= x, "other"),
    "money > x": (lambda m, x: m > x, "other"),
    "money >= x": (lambda m, x: m >= x, "other"),
    "x < money": (lambda m, x: x < m, "other"),
    "x >= money": (lambda m, x: x >= m, "other"),
}


@pytest.mark.parametrize("operation", OPERATIONS)
@given(money=aps.money(), other=not_money)
def test_operators_refuse_what_is_not_money_naming_the_operand(
    operation: str, money: Money, other: object
) -> None:
    """Pinned: nothing escapes as a bare TypeError; the error is still a TypeError."""
    apply, path = OPERATIONS[operation]
    with pytest.raises(OperandError) as info:
        apply(money, other)
    error = info.value
    assert isinstance(error, ValidationError)
    assert isinstance(error, TypeError)
    assert error.paths == [path]
    assert error.codes == ["wrong_type"]
    assert type(other).__name__ in error.errors[0].message


def test_builtin_sum_points_to_money_sum() -> None:
    amounts = [Money("1.00", "USD"), Money("2.00", "USD")]
    with pytest.raises(OperandError, match=r"Money\.sum\(amounts, currency\)"):
        sum(amounts)  # type: ignore[arg-type]
    assert Money.sum(amounts, "USD") == Money("3.00", "USD")


@given(
    money=aps.money(),
    factor=not_money.filter(lambda x: type(x) not in (int, Decimal, Fraction)) | _inexact_fractions,
)
def test_multiplying_by_anything_but_a_whole_number_or_decimal_is_refused(
    money: Money, factor: object
) -> None:
    if isinstance(factor, Fraction):  # one whose product here is inexact
        assume(money.minor_units * factor.numerator % factor.denominator)
    for product in (lambda: money * factor, lambda: factor * money):
        with pytest.raises(ValidationError) as info:
            product()
        assert info.value.paths == ["factor"]
        if isinstance(factor, float):
            assert info.value.codes == ["float_refused"]
            # What * takes: text is for multiply().
            assert "must be an int, a Decimal or a Fraction, never a float" in str(info.value)
        elif isinstance(factor, Fraction):
            # Not refused for its type: its product has no exact decimal form.
            assert info.value.codes == ["rounding_required"]
            assert f"times factor {factor} is finer" in str(info.value)
        else:
            assert isinstance(info.value, OperandError)
            assert info.value.codes == ["wrong_type"]


@given(
    money=aps.money(min_units=-(10**12), max_units=10**12),
    factor=st.decimals(
        allow_nan=False, allow_infinity=False, places=3, min_value=-1000, max_value=1000
    ),
    how=st.sampled_from(["*", "multiply", "percent"]),
)
def test_an_exact_product_needs_no_rounding_mode_and_any_other_does(
    money: Money, factor: Decimal, how: str
) -> None:
    # Pinned: an amount finer than the minor unit is refused unless the
    # caller names a rounding mode; an exact product is simply the product.
    def product(**rounding: Rounding) -> Money:
        if how == "*":
            return money * factor if not rounding else money.multiply(factor, **rounding)
        return getattr(money, how)(factor, **rounding)

    down, up = product(rounding=Rounding.DOWN), product(rounding=Rounding.UP)
    if down == up:
        assert product() == down
        if how == "*":
            assert factor * money == down
    else:
        with pytest.raises(ValidationError) as info:
            product()
        assert info.value.codes == ["rounding_required"]
        assert info.value.paths == ["rate" if how == "percent" else "factor"]
        # The message names the operand as given: a rate is a percentage.
        assert f" times {info.value.paths[0]} " in str(info.value)
        assert ("% is finer" in str(info.value)) == (how == "percent")


@pytest.mark.parametrize(
    ("factor", "code"),
    [
        (Decimal("1.005"), "rounding_required"),
        (1.5, "float_refused"),
        (Fraction(3, 2), "rounding_required"),
    ],
)
def test_multiplying_by_a_fraction_needs_a_rounding_mode(factor: object, code: str) -> None:
    with pytest.raises(ValidationError) as info:
        Money("10.01", "USD") * factor  # type: ignore[operator]
    assert info.value.codes == [code]
    assert Money("10.00", "USD") * Decimal("1.5") == Money("15.00", "USD")


def test_a_fraction_whose_product_is_exact_needs_no_rounding_mode() -> None:
    m = Money("10.00", "USD")
    assert m * Fraction(1, 2) == Fraction(1, 2) * m == Money("5.00", "USD")
    assert m.multiply(Fraction(2, 5)) == Money("4.00", "USD")
    with pytest.raises(ValidationError) as info:
        m.multiply(Fraction(1, 10**100), rounding=Rounding.HALF_EVEN)
    assert (info.value.paths, info.value.codes) == (["factor"], ["ratio_out_of_range"])
    largest = Money.from_minor_units(10**32 - 1, "USD")  # 30 digits before the point
    for product in (
        lambda: largest.multiply(Fraction(3, 2), rounding=Rounding.DOWN),  # far above
        lambda: largest.multiply(Fraction(1001, 1000), rounding=Rounding.DOWN),
        lambda: (-largest).multiply(Fraction(4, 3), rounding=Rounding.DOWN),
        # Half a cent below the limit, rounded up to it.
        lambda: largest.multiply(Fraction(2 * 10**32 - 1, 2 * (10**32 - 1)), rounding=Rounding.UP),
    ):
        with pytest.raises(ValidationError) as info:
            product()
        assert (info.value.paths, info.value.codes) == (["amount"], ["amount_too_large"])
    # A product 0.6 of a cent beyond the largest negative amount (short of
    # the limit), rounded towards zero, is that amount: kept, not refused.
    near = Money.from_minor_units(-83333333333333333333333333333333, "USD")
    assert near.multiply(Fraction(6, 5), rounding=Rounding.CEILING) == -largest
    with pytest.raises(ValidationError) as info:
        near.multiply(Fraction(6, 5), rounding=Rounding.FLOOR)
    assert info.value.codes == ["amount_too_large"]


def test_multiply_and_percent_round_by_the_named_rule() -> None:
    m = Money("10.00", "USD")
    assert m.multiply(Decimal("0.333"), rounding=Rounding.HALF_EVEN) == Money("3.33", "USD")
    assert m.multiply(3, rounding=Rounding.HALF_EVEN) == Money("30.00", "USD")
    assert Money("0.25", "USD").multiply("0.5", rounding=Rounding.HALF_EVEN) == Money("0.12", "USD")
    assert Money("0.25", "USD").multiply("0.5", rounding=Rounding.HALF_UP) == Money("0.13", "USD")
    assert Money("100.00", "USD").percent("2.9", rounding=Rounding.HALF_EVEN) == Money(
        "2.90", "USD"
    )
    assert Money("0.50", "USD").percent(5, rounding=Rounding.HALF_EVEN) == Money("0.02", "USD")
    with pytest.raises(ValidationError) as info:
        m.percent(2.9, rounding=Rounding.HALF_EVEN)  # type: ignore[arg-type]
    assert info.value.paths == ["rate"]
    assert "'rate'" in info.value.errors[0].message


def test_a_product_by_a_decimal_too_large_is_refused_however_it_is_rounded() -> None:
    largest = Money.from_minor_units(10**32 - 1, "USD")
    for product in (
        # Far above the limit, in a context too narrow to round it.
        lambda: Money("1e29", "USD").multiply("1e20", rounding=Rounding.HALF_EVEN),
        lambda: Money("1e29", "USD").multiply("10.001"),
        lambda: Money("1e29", "USD").multiply("10." + "0" * 50 + "1"),  # too precise as well
        # A hair below the limit, rounded up to it.
        lambda: largest.multiply("1.000000000000000000000000000000000001", rounding=Rounding.UP),
    ):
        with pytest.raises(ValidationError) as info:
            product()
        assert (info.value.paths, info.value.codes) == (["amount"], ["amount_too_large"])


@pytest.mark.parametrize(
    ("factor", "code"),
    [
        (Decimal("NaN"), "invalid_amount"),
        (Decimal("-Infinity"), "invalid_amount"),
        (Decimal("1e30"), "amount_too_large"),
    ],
)
def test_money_times_a_decimal_checks_it_as_multiply_does(factor: Decimal, code: str) -> None:
    money = Money("1.00", "USD")
    for product in (lambda: money * factor, lambda: money.multiply(factor)):
        with pytest.raises(ValidationError) as info:
            product()
        assert (info.value.paths, info.value.codes) == (["factor"], [code])


def test_a_subclass_s_zero_is_of_that_subclass() -> None:
    class Cents(Money):
        pass

    assert type(Cents.zero("USD")) is Cents
    assert Cents.zero("USD").is_zero


def test_overflowing_sum_is_refused() -> None:
    big = Money("9" * 30, "JPY")
    with pytest.raises(ValidationError) as info:
        big + big
    assert info.value.codes == ["amount_too_large"]


def _outcome(error: AltpayError) -> object:
    if isinstance(error, ValidationError):
        return type(error), error.paths, error.codes
    return type(error), str(error)


def _summed_step_by_step(amounts: list[object], currency: str) -> object:
    """What ``Money.sum`` gives, worked out the long way: its value or its error.

    Where ``+`` would raise TypeError (not money), ``Money.sum`` names the
    item instead: a ValidationError at ``amounts[i]``.
    """
    try:
        total = Money.zero(currency)
        for index, amount in enumerate(amounts):
            if not isinstance(amount, Money):
                return ValidationError, [f"amounts[{index}]"], ["wrong_type"]
            total = total + amount
    except AltpayError as error:
        return _outcome(error)
    return total


def _summed(amounts: list[object], currency: str) -> object:
    try:
        return Money.sum(amounts, currency)  # type: ignore[arg-type]
    except AltpayError as error:
        return _outcome(error)


huge_jpy = st.integers(-(10**30) + 1, 10**30 - 1).map(lambda n: Money(n, "JPY"))


@given(
    st.lists(
        aps.money("JPY") | huge_jpy | aps.money("USD") | st.sampled_from([None, 5]),
        max_size=6,
    )
)
def test_sum_is_adding_step_by_step(amounts: list[object]) -> None:
    # The same value, or the same refusal: another currency, something that
    # is not money, or a partial sum too large (even if the end is not).
    assert _summed(amounts, "JPY") == _summed_step_by_step(amounts, "JPY")


def test_a_sum_too_large_on_the_way_is_refused() -> None:
    big = Money("9" * 30, "JPY")
    for amounts in ([big, big], [big, big, -big]):
        with pytest.raises(ValidationError) as info:
            Money.sum(amounts, "JPY")
        assert info.value.codes == ["amount_too_large"]


@pytest.mark.parametrize(
    ("amounts", "path"),
    [
        ([1], "amounts[0]"),
        ([Money("1", "USD"), "1"], "amounts[1]"),
        ((x for x in [Money("1", "USD"), None]), "amounts[1]"),
        (None, "amounts"),
        (5, "amounts"),
        ("", "amounts"),  # iterable, and empty: not a total of zero
        (b"", "amounts"),
    ],
)
def test_sum_of_what_is_not_money_is_a_validation_error(amounts: object, path: str) -> None:
    with pytest.raises(ValidationError) as info:
        Money.sum(amounts, "USD")  # type: ignore[arg-type]
    assert info.value.paths == [path]
    assert info.value.codes == ["wrong_type"]
    with pytest.raises(CurrencyMismatch):
        Money.sum([Money("1", "USD"), Money("1", "CAD")], "USD")


def test_sum_of_nothing_is_zero_and_zero_is_shared() -> None:
    assert Money.sum([], "USD") == Money("0.00", "USD")
    assert str(Money.sum([], Currency("BHD")).amount) == "0.000"
    assert Money.zero(Currency("USD")) is Money.zero(Currency("USD"))
    assert Money.zero("JPY") == Money(0, "JPY")
    with pytest.raises(ValidationError) as info:
        Money.sum([], "ZZZ")
    assert info.value.paths == ["currency"]


@given(
    currency=st.sampled_from(Currency.all()),
    upper=st.lists(st.booleans(), min_size=3, max_size=3),
    pad=st.sampled_from(["", " ", "  "]),
)
def test_zero_is_shared_whether_the_currency_is_given_as_a_code_or_not(
    currency: Currency, upper: list[bool], pad: str
) -> None:
    # Before: a code given as text built a new zero on each call.
    cases = zip(currency.code, upper, strict=True)
    code = "".join(c.upper() if up else c.lower() for c, up in cases)
    shared = Money.zero(currency)
    assert Money.zero(f"{pad}{code}{pad}") is shared
    assert Money.zero(currency.code) is shared
    assert shared == Money(0, code)


@pytest.mark.parametrize(("bad", "code"), [("ZZZ", "unknown_currency"), (5, "wrong_type")])
def test_zero_of_no_currency_is_refused_at_currency(bad: object, code: str) -> None:
    with pytest.raises(ValidationError) as info:
        Money.zero(bad)  # type: ignore[arg-type]
    assert (info.value.paths, info.value.codes) == (["currency"], [code])


def test_sums_stay_exact_beyond_the_default_decimal_precision() -> None:
    # 31 significant digits: more than decimal's default context keeps.
    big = Money("9" * 29 + ".99", "USD")
    cent = Money("0.01", "USD")
    assert str((big + cent).amount) == "1" + "0" * 29 + ".00"
    assert str((big - cent).amount) == "9" * 29 + ".98"
    assert Money.sum([big, cent], "USD") == big + cent
    assert str((Money("1" * 28 + ".11", "USD") * 1).amount) == "1" * 28 + ".11"


# -- allocation ---------------------------------------------------------------


def test_allocate_examples() -> None:
    usd = Money("100.00", "USD")
    assert [str(p.amount) for p in usd.split(3)] == ["33.34", "33.33", "33.33"]
    assert [str(p.amount) for p in Money("0.05", "USD").allocate([1, 1, 0, 1])] == [
        "0.02",
        "0.02",
        "0.00",
        "0.01",
    ]
    assert [str(p.amount) for p in Money("10", "JPY").allocate([70, 20, 10])] == [
        "7",
        "2",
        "1",
    ]
    assert [str(p.amount) for p in Money("-0.05", "USD").split(2)] == ["-0.03", "-0.02"]
    # largest remainder, not "first parts first": 0.10 by [1, 2] -> 3.33.., 6.66..
    assert [str(p.amount) for p in Money("0.10", "USD").allocate([1, 2])] == [
        "0.03",
        "0.07",
    ]
    assert Money("1", "USD").allocate([Decimal("0.5"), "0.5"]) == [
        Money("0.50", "USD"),
        Money("0.50", "USD"),
    ]
    # Ratios with different decimal places: 0.5 to 1 is one third to two.
    assert Money("3.00", "USD").allocate(["0.5", 1]) == [Money("1.00", "USD"), Money("2.00", "USD")]


@pytest.mark.parametrize(
    ("ratios", "code"),
    [
        ([], "empty"),
        ([0, 0], "zero_ratios"),
        ([1, -1], "negative_ratio"),
        ([1, 0.5], "float_refused"),
        ("11", "wrong_type"),
        (b"ab", "wrong_type"),  # a sequence of ints, but no list of ratios
        (bytearray(b"ab"), "wrong_type"),
        ([1, "x"], "invalid_amount"),
        ([1, "1_0"], "invalid_amount"),
        ([1, 10**100], "ratio_out_of_range"),
        ([1, "1e100"], "ratio_out_of_range"),
        ([1, Decimal("1e-1001")], "ratio_out_of_range"),
        ([1, "0." + "0" * 1000 + "1"], "ratio_out_of_range"),
        ([1, "0.1" + "0" * 999 + "1"], "ratio_out_of_range"),  # 1,001 places
        ([1, "1." + "1" * 1200], "ratio_out_of_range"),  # 1,201 digits
    ],
)
def test_bad_ratios_are_refused(ratios: object, code: str) -> None:
    with pytest.raises(ValidationError) as info:
        Money("1", "USD").allocate(ratios)  # type: ignore[arg-type]
    assert info.value.codes == [code]


def test_ratios_at_the_edges_of_the_range_are_kept_exactly() -> None:
    # 100 digits before the point and 1,000 after: 1,100 digits, every one
    # kept. The largest ratio and the smallest one share the whole as they
    # should: the smallest is far below a cent of it.
    largest = "9" * 100 + "." + "9" * 1000
    smallest = "0." + "0" * 999 + "1"
    assert Money("1.00", "USD").allocate([largest, smallest]) == [
        Money("1.00", "USD"),
        Money("0.00", "USD"),
    ]
    assert Money("1.00", "USD").allocate([largest, largest]) == Money("1.00", "USD").split(2)


@given(data=st.binary(max_size=8), wrap=st.sampled_from([bytes, bytearray, memoryview]))
def test_binary_data_is_no_ratios_and_no_amounts(data: bytes, wrap: type) -> None:
    # A memoryview was taken for a list of ratios, each byte a ratio, and
    # an empty one for no amounts at all.
    binary = wrap(data)
    with pytest.raises(ValidationError) as info:
        Money("1.00", "USD").allocate(binary)
    assert (info.value.paths, info.value.codes) == (["ratios"], ["wrong_type"])
    with pytest.raises(ValidationError) as info:
        Money.sum(binary, "USD")
    assert (info.value.paths, info.value.codes) == (["amounts"], ["wrong_type"])


@pytest.mark.parametrize("parts", [0, -1, True, 1.0, "3", 10**6 + 1, 10**100])
def test_bad_split_is_refused(parts: object) -> None:
    with pytest.raises(ValidationError) as info:
        Money("1", "USD").split(parts)  # type: ignore[arg-type]
    assert info.value.codes == ["invalid_parts"]


ratios = st.lists(st.integers(0, 1000), min_size=1, max_size=12).filter(any)


@given(aps.money(), ratios)
def test_allocation_always_sums_to_the_whole(m: Money, weights: list[int]) -> None:
    parts = m.allocate(weights)
    assert len(parts) == len(weights)
    assert Money.sum(parts, m.currency) == m
    assert all(p.currency is m.currency for p in parts)


@given(aps.money(), ratios)
def test_zero_ratios_always_get_zero(m: Money, weights: list[int]) -> None:
    for part, weight in zip(m.allocate(weights), weights, strict=True):
        if weight == 0:
            assert part.is_zero


@given(aps.money(), ratios)
def test_each_part_is_within_one_minor_unit_of_its_exact_share(
    m: Money, weights: list[int]
) -> None:
    whole = sum(weights)
    for part, weight in zip(m.allocate(weights), weights, strict=True):
        exact = Fraction(m.minor_units * weight, whole)
        assert abs(part.minor_units - exact) < 1


@given(aps.money(), st.integers(1, 50))
def test_split_parts_differ_by_at_most_one_unit_largest_first(m: Money, n: int) -> None:
    parts = [abs(p.minor_units) for p in m.split(n)]
    assert sum(p.minor_units for p in m.split(n)) == m.minor_units
    assert max(parts) - min(parts) <= 1
    assert parts == sorted(parts, reverse=True)


@given(aps.money(), ratios)
def test_allocation_is_deterministic(m: Money, weights: list[int]) -> None:
    assert m.allocate(weights) == m.allocate(list(weights))


def test_a_currency_copies_as_itself() -> None:
    usd = Currency("USD")
    assert copy.copy(usd) is usd
    assert copy.deepcopy(Money("1", "USD")).currency is usd


# -- ratios at the edges of their range ---------------------------------------


def test_absurd_ratios_are_refused_at_once() -> None:
    # In a child process, so that a regression hangs the child (and fails on
    # the timeout) rather than the test run: Fraction(Decimal("1e-99999999"))
    # once built 10**99999999.
    code = (
        "from altpay_core import Money, ValidationError\n"
        "for ratios in (['1e-99999999', 1], [1, '1e-999999999999999999'], ['1e999999']):\n"
        "    try:\n"
        "        Money('0.05', 'USD').allocate(ratios)\n"
        "    except ValidationError as e:\n"
        "        print(e.paths[0], e.codes[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split("\n") == [
        "ratios[0] ratio_out_of_range",
        "ratios[1] ratio_out_of_range",
        "ratios[0] ratio_out_of_range",
        "",
    ]


def test_ratios_within_range_are_exact() -> None:
    usd = Money("0.02", "USD")
    # A tiny third ratio shrinks both shares a little, the larger one more:
    # the second part's remainder is the larger, no tie for the first to win.
    assert [p.minor_units for p in usd.allocate([3, 1])] == [2, 0]
    assert [p.minor_units for p in usd.allocate([3, 1, "1e-1000"])] == [1, 1, 0]
    # Trailing zeros do not count as decimal places; a zero of any exponent is zero.
    assert usd.allocate([Decimal("1." + "0" * 3000), 1, "0E-99999999"]) == [
        Money("0.01", "USD"),
        Money("0.01", "USD"),
        Money.zero("USD"),
    ]
    # Ratios as large as minor units can be (CLF, 4 places, up to 10**34).
    clf = Money("9" * 30, "CLF")
    assert clf.allocate([clf.minor_units, clf.minor_units]) == clf.split(2)
    assert Money.sum(clf.allocate([10**99, "1e99", 1]), "CLF") == clf


def _largest_remainder(units: int, weights: list[Fraction]) -> list[int]:
    """The allocation rule, worked out with fractions: the oracle."""
    whole = sum(weights)
    exact = [abs(units) * w / whole for w in weights]
    shares = [math.floor(x) for x in exact]
    ranked = sorted(range(len(weights)), key=lambda i: (shares[i] - exact[i], i))
    for i in ranked[: abs(units) - sum(shares)]:
        shares[i] += 1
    return [-s if units < 0 else s for s in shares]


decimal_ratios = st.lists(
    st.builds(
        lambda n, e: Decimal(n).scaleb(e, decimal.Context(prec=100)),
        st.integers(0, 10**15),
        st.integers(-60, 60),
    ),
    min_size=1,
    max_size=8,
).filter(any)


@given(aps.money(), decimal_ratios)
def test_allocation_by_decimal_ratios_is_largest_remainder(
    m: Money, weights: list[Decimal]
) -> None:
    parts = m.allocate(weights)
    expected = _largest_remainder(m.minor_units, [Fraction(w) for w in weights])
    assert [p.minor_units for p in parts] == expected
    assert Money.sum(parts, m.currency) == m


# -- exact products, whatever the caller's decimal context ---------------------

# A caller's context as unhelpful as it gets: three digits, a tiny exponent
# range, and every signal trapped.
HOSTILE = decimal.Context(
    prec=3,
    Emin=-5,
    Emax=5,
    traps=[
        decimal.Clamped,
        decimal.DivisionByZero,
        decimal.Inexact,
        decimal.InvalidOperation,
        decimal.Overflow,
        decimal.Rounded,
        decimal.Subnormal,
        decimal.Underflow,
        decimal.FloatOperation,
    ],
)


def _round_exactly(exact: Fraction, units: int, mode: str) -> int:
    """``exact`` in minor units, rounded by ``mode`` as each mode is defined."""
    scaled = exact * 10**units
    negative = scaled < 0
    size = abs(scaled)
    whole = math.floor(size)
    rest = size - whole
    half = Fraction(1, 2)
    away = {
        Rounding.DOWN: False,
        Rounding.UP: rest > 0,
        Rounding.HALF_UP: rest >= half,
        Rounding.HALF_DOWN: rest > half,
        Rounding.HALF_EVEN: rest > half or (rest == half and whole % 2 == 1),
        Rounding.CEILING: rest > 0 and not negative,
        Rounding.FLOOR: rest > 0 and negative,
    }[Rounding(mode)]
    result = whole + away
    return -result if negative else result


def _up_to_the_limit(code: str) -> st.SearchStrategy[Money]:
    limit = 10 ** (30 + Currency(code).minor_units)
    return st.integers(-limit + 1, limit - 1).map(lambda n: Money.from_minor_units(n, code))


any_money = aps.money() | st.sampled_from(["USD", "JPY", "BHD", "CLF"]).flatmap(_up_to_the_limit)


def _scientific(n: int, e: int) -> Decimal:
    return Decimal(f"{n}E{e}")


factors = st.one_of(
    st.integers(-(10**6), 10**6).map(Decimal),
    st.builds(_scientific, st.integers(-(10**6), 10**6), st.integers(-20, 20)),
    # long factors, far below a minor unit or not
    st.builds(_scientific, st.integers(-(10**70), 10**70), st.integers(-120, -41)),
    st.sampled_from(["0.5", "0.005", "0.0050000000000000000000000000001", "2.9", "1"]).map(Decimal),
)
modes = st.sampled_from(list(Rounding))


def _check(m: Money, found: Money | ValidationError, exact: Fraction, mode: str) -> None:
    units = _round_exactly(exact, m.currency.minor_units, mode)
    if abs(units) >= 10 ** (30 + m.currency.minor_units):
        assert isinstance(found, ValidationError)
        assert found.codes == ["amount_too_large"]
    else:
        assert found == Money.from_minor_units(units, m.currency)
        assert isinstance(found, Money)
        assert not found.amount.is_signed() or found.amount, "negative zero"


@given(any_money, factors, modes)
def test_multiply_is_the_exact_product_rounded_once(m: Money, factor: Decimal, mode: str) -> None:
    assume(factor.adjusted() < 30)
    with decimal.localcontext(HOSTILE):
        try:
            found: Money | ValidationError = m.multiply(factor, rounding=mode)
        except ValidationError as error:
            found = error
    _check(m, found, Fraction(m.amount) * Fraction(factor), mode)


@given(
    any_money,
    st.fractions(max_denominator=10**6).filter(lambda f: abs(f) < 10**6),
    modes,
)
def test_multiply_by_a_fraction_is_the_exact_product_rounded_once(
    m: Money, factor: Fraction, mode: str
) -> None:
    # A third has no decimal form: the product is still rounded once, exactly.
    with decimal.localcontext(HOSTILE):
        try:
            found: Money | ValidationError = m.multiply(factor, rounding=mode)
        except ValidationError as error:
            found = error
    _check(m, found, Fraction(m.amount) * factor, mode)


@pytest.mark.parametrize("mode", list(Rounding))
@pytest.mark.parametrize(
    ("amount", "factor"),
    [
        ("0.03", Fraction(1, 2)),
        ("0.01", Fraction(1, 2)),
        ("-0.05", Fraction(1, 2)),
        ("0.09", Fraction(1, 6)),
        ("0.01", Fraction(3, 2)),
    ],
)
def test_a_product_by_a_fraction_exactly_half_way_is_rounded_by_the_mode(
    amount: str, factor: Fraction, mode: Rounding
) -> None:
    # Exactly half a cent over: where the half-way modes part ways.
    m = Money(amount, "USD")
    _check(m, m.multiply(factor, rounding=mode), Fraction(m.amount) * factor, mode)


def test_half_way_products_by_a_fraction() -> None:
    assert Money("0.03", "USD").multiply(Fraction(1, 2), rounding="HALF_EVEN") == Money(
        "0.02", "USD"
    )
    assert Money("0.01", "USD").multiply(Fraction(1, 2), rounding="HALF_UP") == Money("0.01", "USD")
    assert Money("0.01", "USD").multiply(Fraction(1, 2), rounding="HALF_DOWN") == Money(
        "0.00", "USD"
    )


@given(any_money, factors, modes)
def test_percent_is_the_exact_share_rounded_once(m: Money, rate: Decimal, mode: str) -> None:
    assume(rate.adjusted() < 30)
    with decimal.localcontext(HOSTILE):
        try:
            found: Money | ValidationError = m.percent(rate, rounding=mode)
        except ValidationError as error:
            found = error
    _check(m, found, Fraction(m.amount) * Fraction(rate) / 100, mode)


@pytest.mark.parametrize(
    ("amount", "factor", "mode", "expected"),
    [
        # more digits than decimal's default context keeps
        ("999999999999999999999999999.99", 1, "HALF_EVEN", "999999999999999999999999999.99"),
        # no double rounding: 0.0050000...01 is more than half a cent
        ("1.00", "0.0050000000000000000000000000001", "HALF_EVEN", "0.01"),
        ("1.00", "0.005", "HALF_EVEN", "0.00"),
        # absurd exponents: decided by the sign alone, at once
        ("1.00", "1e-999999999", "UP", "0.01"),
        ("1.00", "1e-999999999", "HALF_UP", "0.00"),
        ("1.00", "1e-999999999", "CEILING", "0.01"),
        ("-1.00", "1e-999999999999999999", "FLOOR", "-0.01"),
        ("-1.00", "1e-999999999999999999", "CEILING", "0.00"),
        ("1.00", "-1e-999999999999999999", "UP", "-0.01"),
        ("1.00", "1." + "0" * 2000 + "1", "UP", "1.01"),  # a long factor
        # a long factor with an absurd exponent: too long to work out exactly
        ("1.00", "1." + "1" * 150 + "e-999999999", "UP", "0.01"),
        ("0.01", "1." + "1" * 150 + "e-999999999999999999", "UP", "0.01"),  # below Emin
        ("1.00", "1." + "1" * 150 + "e-999999999", "HALF_UP", "0.00"),
        ("-1.00", "1." + "1" * 150 + "e-999999999", "FLOOR", "-0.01"),
        ("1.00", "-1." + "1" * 150 + "e-999999999", "UP", "-0.01"),
        ("-1.00", "-1." + "1" * 150 + "e-999999999", "CEILING", "0.01"),
        # a long factor whose product may reach half a cent (0.0081...):
        # worked out exactly, not decided by the signs
        ("0.09", "0.09" + "0" * 150 + "1", "HALF_UP", "0.01"),
        ("-0.09", "0.09" + "0" * 150 + "1", "HALF_EVEN", "-0.01"),
        ("0.09", "0.09" + "0" * 150 + "1", "DOWN", "0.00"),
        ("1.00", "1." + "0" * 2000 + "1", "HALF_EVEN", "1.00"),
        ("12345.67", "1", "HALF_EVEN", "12345.67"),
        ("-1.00", "0", "HALF_EVEN", "0.00"),
        ("-1.00", "0.001", "HALF_EVEN", "0.00"),
    ],
)
def test_multiply_examples(amount: str, factor: str, mode: str, expected: str) -> None:
    for context in (decimal.getcontext(), HOSTILE):
        with decimal.localcontext(context):
            found = Money(amount, "USD").multiply(factor, rounding=Rounding[mode])
        assert str(found.amount) == expected


@pytest.mark.parametrize(
    "amount",
    [
        # 2.9 % of these was worked out in decimal's default 28-digit context
        # and came out a cent or more off.
        "117025900199944605776676865.70",
        "4850446337673744331504358080.48",
        "61269488181677509690081350255.76",
        "923515036144913054587226346337.24",
        "9" * 29 + ".99",
    ],
)
def test_card_fee_sized_percent_of_the_largest_amounts(amount: str) -> None:
    m = Money(amount, "USD")
    exact = Fraction(m.amount) * Fraction("2.9") / 100
    units = _round_exactly(exact, 2, Rounding.HALF_EVEN)
    assert m.percent("2.9", rounding=Rounding.HALF_EVEN).minor_units == units


def test_arithmetic_ignores_the_callers_decimal_context() -> None:
    big = Money("12345678901234567890123456789.99", "USD")
    cent = Money("0.01", "USD")
    with decimal.localcontext(HOSTILE):
        found = [
            big + cent,
            big - cent,
            -big,
            abs(-big),
            big * 1,
            Money.sum([big, cent], "USD"),
            *big.split(3),
            Money("12345678901234567890123456789.985", "USD", rounding=Rounding.HALF_EVEN),
            Money.from_minor_units(1234567890123, "USD"),
        ]
        text, units = str(big), big.minor_units
    assert [str(m.amount) for m in found] == [
        "12345678901234567890123456790.00",
        "12345678901234567890123456789.98",
        "-12345678901234567890123456789.99",
        "12345678901234567890123456789.99",
        "12345678901234567890123456789.99",
        "12345678901234567890123456790.00",
        "4115226300411522630041152263.33",
        "4115226300411522630041152263.33",
        "4115226300411522630041152263.33",
        "12345678901234567890123456789.98",
        "12345678901.23",
    ]
    assert text == "USD 12,345,678,901,234,567,890,123,456,789.99"
    assert units == 1234567890123456789012345678999


def _what_comes_of(number: Decimal, partner: Partner) -> list[str]:
    """Each use of a number that may quote it: the written form, or the
    error's messages."""
    dollar = Money("1.00", "USD")
    uses: list[Callable[[], object]] = [
        lambda: to_dict(number),
        lambda: Money(number, "USD"),
        lambda: dollar * number,
        lambda: dollar.percent(number),
        lambda: dollar.allocate([number, 1]),
        lambda: partner.set_card_fees(rate_percent=number),
    ]
    found = []
    for use in uses:
        try:
            found.append(repr(use()))
        except ValidationError as error:
            found.append(" | ".join(e.message for e in error.errors))
    return found


@given(
    st.one_of(
        st.builds(_scientific, st.integers(-(10**6), 10**6), st.integers(-3000, 3000)),
        st.decimals(allow_nan=False, allow_infinity=False),
    )
)
@example(Decimal("1E+2000"))
@example(Decimal("1.005E-10"))
@example(Decimal("1.23E-7"))
@example(Decimal("-1E-5"))
@example(Decimal("2.5E+3"))
def test_numbers_are_written_and_quoted_whatever_the_callers_capitals(number: Decimal) -> None:
    # capitals=0 makes str() and repr() of a Decimal write 1e+3, not 1E+3.
    partner = Partner.create(name="Northwind IT", country="US")
    expected = _what_comes_of(number, partner)
    with decimal.localcontext(capitals=0):
        assert _what_comes_of(number, partner) == expected
    if number.is_finite() and number.adjusted() > 1000:
        assert "e" not in to_dict(number)


# -- never a negative zero ------------------------------------------------------


def _is_negative_zero(m: Money) -> bool:
    return m.is_zero and (m.amount.is_signed() or to_dict(m)["amount"].startswith("-"))


def test_negative_times_zero_is_plain_zero() -> None:
    zero = Money("-1.00", "USD") * 0
    assert str(zero.amount) == "0.00"
    assert to_dict(zero) == {"amount": "0.00", "currency": "USD"}
    assert str(0 * Money("-1", "JPY")) == "JPY 0"


@given(any_money, st.integers(-1, 1), factors, modes)
def test_no_result_is_ever_negative_zero(m: Money, n: int, factor: Decimal, mode: str) -> None:
    assume(factor.adjusted() < 30)
    found = [m * n, n * m, -m, abs(m), m - m, m + (-m), Money.sum([m, -m], m.currency)]
    found += m.allocate([1, 0, 2]) + m.split(3)
    refused = []
    for product in (m.multiply, m.percent):
        try:
            found.append(product(factor, rounding=mode))
        except ValidationError as error:
            refused.append(error.codes)
    assert not [r for r in found if _is_negative_zero(r)]
    assert all(codes == ["amount_too_large"] for codes in refused)


@given(money=aps.money(), divisor=st.one_of(st.integers(), st.decimals(), aps.money()))
def test_money_is_not_divided_split_or_allocate_it(money: Money, divisor: object) -> None:
    for quotient in (
        lambda: money / divisor,
        lambda: money // divisor,
        lambda: money % divisor,
        lambda: divmod(money, divisor),
    ):
        with pytest.raises(OperandError) as info:
            quotient()
        assert isinstance(info.value, TypeError)
        assert (info.value.paths, info.value.codes) == (["divisor"], ["wrong_type"])
        assert "split" in str(info.value)


@given(money=aps.money(), other=st.one_of(st.integers(), st.decimals(), aps.money()))
def test_no_other_operator_lets_a_bare_type_error_escape(money: Money, other: object) -> None:
    operations = [
        lambda: other / money,
        lambda: other // money,
        lambda: other % money,
        lambda: divmod(other, money),
        lambda: money**other,
        lambda: other**money,
        lambda: pow(money, other, 7),
        lambda: money @ other,
        lambda: money << other,
        lambda: other >> money,
        lambda: money & other,
        lambda: other | money,
        lambda: money ^ other,
    ]
    for operation in operations:
        with pytest.raises(OperandError) as info:
            operation()  # type: ignore[operator]
        assert info.value.codes == ["wrong_type"]


@given(money=aps.money(), ndigits=st.none() | st.integers(-3, 3))
def test_money_alone_is_no_number_for_builtins(money: Money, ndigits: int | None) -> None:
    operations = [
        lambda: ~money,
        lambda: round(money),
        lambda: round(money, ndigits),
        lambda: math.floor(money),
        lambda: math.ceil(money),
        lambda: math.trunc(money),
        lambda: int(money),
        lambda: float(money),
        lambda: complex(money),
        lambda: operator.index(money),
        lambda: range(money),
        lambda: hex(money),
        lambda: [1, 2][money],
    ]
    for operation in operations:
        with pytest.raises(OperandError) as info:
            operation()  # type: ignore[operator, call-overload, arg-type]
        assert isinstance(info.value, TypeError)
        assert (info.value.paths, info.value.codes) == ([""], ["wrong_type"])
        assert "money.amount" in str(info.value) or "-money" in str(info.value)


text_specs = st.builds(
    lambda align, width, precision: f"{align}{width}{precision}",
    st.sampled_from(["", "<", ">", "^", "*<", " >", "0^", "é>"]),
    st.sampled_from(["", "1", "12", "30"]),
    st.sampled_from(["", ".3", ".5s", "s"]),
)


@given(money=aps.money(), spec=text_specs)
def test_money_formats_as_its_text(money: Money, spec: str) -> None:
    assert format(money, spec) == format(str(money), spec)
    assert f"{money:{spec}}" == format(str(money), spec)
    assert format(money, "") == f"{money}" == str(money)


def test_money_is_padded_in_a_format_spec() -> None:
    m = Money("12.50", "USD")
    assert f"{m:>12}" == "   USD 12.50"
    assert f"{m:<12}|" == "USD 12.50   |"
    assert f"{Money('-1234', 'JPY'):*^13}" == "*JPY -1,234**"


@pytest.mark.parametrize("spec", [".2f", ",", "d", "+", "=10", "%"])
def test_a_number_format_spec_is_an_operand_error(spec: str) -> None:
    with pytest.raises(OperandError) as info:
        format(Money("12.50", "USD"), spec)
    assert (info.value.paths, info.value.codes) == (["format_spec"], ["wrong_type"])
    assert "money.amount" in str(info.value)


@given(currency=st.sampled_from(Currency.all()), other=st.sampled_from(Currency.all()))
def test_a_currency_equals_its_code_and_hashes_alike(currency: Currency, other: Currency) -> None:
    assert currency == currency.code
    assert currency.code == currency
    assert hash(currency) == hash(currency.code)
    assert (currency == other.code) is (currency is other)
    assert {currency.code: 1}[currency] == 1
    assert currency != 1
    assert Money.zero(currency).currency == currency.code


def test_a_split_into_a_million_parts_is_the_most_allowed() -> None:
    parts = Money("10000.00", "USD").split(1_000_000)
    assert len(parts) == 1_000_000
    assert Money.sum(parts, "USD") == Money("10000.00", "USD")
    with pytest.raises(ValidationError) as caught:
        Money("1.00", "USD").split(1_000_001)
    assert caught.value.codes == ["invalid_parts"]
