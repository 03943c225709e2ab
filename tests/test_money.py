"""Money and currencies: exact amounts, splits that always sum, no floats."""

from __future__ import annotations

import copy
import decimal
import pickle
from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from altpay_core import (
    AltpayError,
    Currency,
    CurrencyMismatch,
    Money,
    Rounding,
    ValidationError,
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


def test_currency_of_wrong_type() -> None:
    with pytest.raises(ValidationError) as info:
        Currency(840)  # type: ignore[arg-type]
    assert info.value.codes == ["wrong_type"]


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


def test_minor_units_and_zero() -> None:
    assert Money("12.50", "USD").minor_units == 1250
    assert Money("5", "JPY").minor_units == 5
    assert Money("1.234", "BHD").minor_units == 1234
    assert Money.zero("JPY") == Money(0, "JPY")
    assert Money.zero("USD").is_zero
    assert Money.from_minor_units(1250, "USD") == Money("12.50", "USD")
    assert Money.from_minor_units(-1, Currency("BHD")) == Money("-0.001", "BHD")
    with pytest.raises(ValidationError):
        Money.from_minor_units(1.0, "USD")  # type: ignore[arg-type]


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


def test_money_is_not_comparable_to_numbers() -> None:
    assert Money("1", "USD") != 1
    assert Money("1", "USD") != Decimal(1)
    with pytest.raises(TypeError):
        Money("1", "USD") < 1  # type: ignore[operator]  # noqa: B015
    with pytest.raises(TypeError):
        Money("1", "USD") + 1  # type: ignore[operator]
    with pytest.raises(TypeError):
        Money("1", "USD") - 1  # type: ignore[operator]
    for op in ("__le__", "__gt__", "__ge__"):
        assert getattr(Money("1", "USD"), op)(1) is NotImplemented
    with pytest.raises(TypeError):
        Money("1", "USD") * [1]  # type: ignore[operator]


@pytest.mark.parametrize("factor", [Decimal("1.5"), 1.5, "2"])
def test_multiplying_by_a_fraction_needs_a_rounding_mode(factor: object) -> None:
    with pytest.raises(ValidationError) as info:
        Money("10.00", "USD") * factor  # type: ignore[operator]
    assert info.value.codes == ["rounding_required"]


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


def test_overflowing_sum_is_refused() -> None:
    big = Money("9" * 30, "JPY")
    with pytest.raises(ValidationError) as info:
        big + big
    assert info.value.codes == ["amount_too_large"]


def _summed_step_by_step(amounts: list[object], currency: str) -> object:
    """What ``Money.sum`` gives, worked out the long way: its value or its error."""
    try:
        total = Money.zero(currency)
        for amount in amounts:
            total = total + amount  # type: ignore[operator]
    except (AltpayError, TypeError) as error:
        return type(error), str(error)
    return total


def _summed(amounts: list[object], currency: str) -> object:
    try:
        return Money.sum(amounts, currency)  # type: ignore[arg-type]
    except (AltpayError, TypeError) as error:
        return type(error), str(error)


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


def test_sum_of_nothing_is_zero_and_zero_is_shared() -> None:
    assert Money.sum([], "USD") == Money("0.00", "USD")
    assert str(Money.sum([], Currency("BHD")).amount) == "0.000"
    assert Money.zero(Currency("USD")) is Money.zero(Currency("USD"))
    assert Money.zero("JPY") == Money(0, "JPY")
    with pytest.raises(ValidationError) as info:
        Money.sum([], "ZZZ")
    assert info.value.paths == ["currency"]


def test_sums_stay_exact_beyond_the_default_decimal_precision() -> None:
    # 31 significant digits: more than decimal's default context keeps.
    big = Money("9" * 29 + ".99", "USD")
    cent = Money("0.01", "USD")
    assert str((big + cent).amount) == "1" + "0" * 29 + ".00"
    assert str((big - cent).amount) == "9" * 29 + ".98"
    assert Money.sum([big, cent], "USD") == big + cent
    assert str((Money("1" * 28 + ".11", "USD") * 1).amount) == "1" * 28 + ".11"


@given(st.lists(st.tuples(aps.money("USD") | aps.money("CAD"), st.integers(1, 10**6)), max_size=5))
def test_sum_of_products_is_the_sum_of_each_product(pairs: list[tuple[Money, int]]) -> None:
    usd = Currency("USD")
    try:
        expected: object = Money.sum([unit * quantity for unit, quantity in pairs], usd)
    except AltpayError as error:
        expected = type(error), str(error)
    try:
        found: object = Money._sum_of_products(pairs, usd)
    except AltpayError as error:
        found = type(error), str(error)
    assert found == expected


def test_sum_of_products_refuses_what_sum_refuses() -> None:
    jpy = Currency("JPY")
    big = Money("9" * 30, jpy)
    with pytest.raises(ValidationError) as info:
        Money._sum_of_products([(big, 10)], jpy)  # the product is too large
    assert info.value.codes == ["amount_too_large"]
    with pytest.raises(ValidationError) as info:
        Money._sum_of_products([(big, 1), (big, 1)], jpy)  # the sum is
    assert info.value.codes == ["amount_too_large"]
    with pytest.raises(CurrencyMismatch):
        Money._sum_of_products([(Money(1, "USD"), 1)], jpy)


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


@pytest.mark.parametrize(
    ("ratios", "code"),
    [
        ([], "empty"),
        ([0, 0], "zero_ratios"),
        ([1, -1], "negative_ratio"),
        ([1, 0.5], "float_refused"),
        ("11", "wrong_type"),
        ([1, "x"], "invalid_amount"),
    ],
)
def test_bad_ratios_are_refused(ratios: object, code: str) -> None:
    with pytest.raises(ValidationError) as info:
        Money("1", "USD").allocate(ratios)  # type: ignore[arg-type]
    assert info.value.codes == [code]


@pytest.mark.parametrize("parts", [0, -1, True, 1.0])
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
        exact = Decimal(m.minor_units) * weight / whole
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
