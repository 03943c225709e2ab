"""to_dict / from_dict / to_json / from_json: round trips, wire forms, errors."""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import datetime as dt
import enum
import json
import math
import pathlib
import sys
from collections.abc import Callable, Mapping, MutableSequence, MutableSet, Sequence
from collections.abc import Set as AbstractSet
from decimal import MAX_EMAX, MIN_ETINY, Decimal
from types import MappingProxyType
from typing import Any, ClassVar, Literal, TypedDict, get_args

import attrs
import cattrs
import pytest
from cattrs.gen import make_dict_unstructure_fn
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import altpay_core
from altpay_core import (
    EIN,
    Action,
    Address,
    CardFeeBearer,
    CardFeePolicy,
    Currency,
    Customer,
    CustomerCreated,
    CustomerDraft,
    CustomerId,
    CustomerPaymentMethods,
    CustomerUpdated,
    EmailAddress,
    EntityId,
    Event,
    ExternalRef,
    FieldError,
    Invoice,
    LineItem,
    Money,
    Page,
    Partner,
    PartnerId,
    Payment,
    PaymentMethod,
    Rounding,
    ScheduledPayment,
    TagId,
    UserId,
    ValidationError,
    from_dict,
    from_json,
    to_dict,
    to_json,
)
from altpay_core import events as events_module
from altpay_core.errors import InvariantViolation
from altpay_core.events import EVENT_TYPES
from altpay_core.ports import OutboxMessage
from altpay_core.serialization import (
    _DETAILED,
    _attrs_structure,
    _field_errors,
    _quick_customer,
    _quick_invoice,
    from_stored,
    make_converter,
    parse_json,
    stored_json,
)
from altpay_core.services import DueRun
from altpay_core.testing import strategies as aps
from altpay_core.testing._types import registered_types

TYPES = registered_types()
# The public types of altpay_core.services that are data, for the round trip.
SERVICE_TYPES: list[type[Any]] = [DueRun]

# Several tests below run once per public type (there are many), and drawing an
# aggregate costs far more than reading it back: each takes a quarter of the
# profile's examples.
per_type = settings(max_examples=max(10, settings.default.max_examples // 4))

# A generic class is read with its parameter named (from_dict(Page[X], ...));
# Hypothesis cannot build Page[X] on its own, so these say how.
GENERIC_ITEMS: dict[type[Any], type[Any]] = {Page: CustomerId}


def _name(cls: type[Any]) -> str:
    return cls.__name__


def readable(cls: type[Any]) -> Any:
    """The type to pass to from_dict for values of ``cls``."""
    return cls[GENERIC_ITEMS[cls]] if cls in GENERIC_ITEMS else cls


def values_of(cls: type[Any]) -> st.SearchStrategy[Any]:
    if cls in GENERIC_ITEMS:
        return st.builds(
            cls,
            items=st.lists(st.from_type(GENERIC_ITEMS[cls]), max_size=3).map(tuple),
            start_cursor=st.none() | st.text(max_size=8),
            end_cursor=st.none() | st.text(max_size=8),
            has_next_page=st.booleans(),
            has_previous_page=st.booleans(),
        )
    if cls is DueRun:  # data while it lists no refusal (an error is not data)
        return st.builds(DueRun, refused=st.just(()))
    return st.from_type(cls)


def test_every_generic_public_type_says_how_to_read_it() -> None:
    generic = {cls for cls in TYPES if getattr(cls, "__parameters__", ())}
    assert generic == set(GENERIC_ITEMS)


# -- plain data ---------------------------------------------------------------------


def as_read_only_mappings(data: object) -> object:
    """``data`` with every dict in it, at any depth, a read-only mapping."""
    if isinstance(data, list):
        return [as_read_only_mappings(item) for item in data]
    if isinstance(data, dict):
        return MappingProxyType({key: as_read_only_mappings(item) for key, item in data.items()})
    return data


def assert_json_ready(data: object, where: str = "$") -> None:
    """Only JSON's own types, and money always as a decimal string and a code."""
    if data is None or isinstance(data, bool | int | str):
        return
    assert not isinstance(data, float), f"a float at {where}"
    if isinstance(data, list):
        for index, item in enumerate(data):
            assert_json_ready(item, f"{where}[{index}]")
        return
    assert type(data) is dict, f"{type(data).__name__} at {where}"
    for key, value in data.items():
        assert isinstance(key, str), f"key {key!r} at {where}"
        assert_json_ready(value, f"{where}.{key}")
    if set(data) == {"amount", "currency"}:
        assert isinstance(data["amount"], str), f"amount at {where}"
        Decimal(data["amount"])
        assert Currency(data["currency"]).code == data["currency"]


# -- fuzzing: only ValidationError may escape ----------------------------------------

json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    # Longer than most, up to past sys.get_int_max_str_digits() (4,300 by
    # default), beyond which Python does not write an int as text.
    | st.integers(600, 5000).map(lambda digits: -(10**digits))
    | st.floats()
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=25,
)


def only_validation_errors(cls: Any, data: object) -> None:
    """Reading ``data`` either works or raises a well-formed ValidationError."""
    try:
        from_dict(cls, data)
    except ValidationError as error:
        found = error.errors
    else:
        return
    assert found
    for field in found:
        assert isinstance(field, FieldError)
        assert isinstance(field.path, str)
        assert field.code
        assert field.message


# What a mutation puts in place of a value: flat, so that it is cheap to draw.
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.none(), max_size=2),
)


def _mutate(draw: st.DrawFn, node: Any) -> Any:
    """Change one place in ``node``: drop or add a key, or put junk in a value."""
    if isinstance(node, dict) and node:
        key = draw(st.sampled_from(sorted(node)))
        action = draw(st.sampled_from(["drop", "add", "junk", "deeper"]))
        if action == "drop":
            del node[key]
        elif action == "add":
            node[draw(st.text(max_size=8)) + "_"] = draw(junk)
        elif action == "junk" or not isinstance(node[key], dict | list):
            node[key] = draw(junk)
        else:
            node[key] = _mutate(draw, node[key])
        return node
    if isinstance(node, list) and node:
        index = draw(st.integers(0, len(node) - 1))
        node[index] = _mutate(draw, node[index]) if draw(st.booleans()) else draw(junk)
        return node
    return draw(junk)


@pytest.mark.parametrize("cls", [*TYPES, *SERVICE_TYPES], ids=_name)
@per_type
@given(data=st.data())
def test_round_trip_through_dict_and_json(cls: type[Any], data: st.DataObject) -> None:
    value = data.draw(values_of(cls))
    plain = to_dict(value)
    assert_json_ready(plain)
    assert json.loads(json.dumps(plain)) == plain
    assert from_dict(readable(cls), plain) == value
    assert from_json(readable(cls), to_json(value)) == value
    assert to_dict(from_dict(readable(cls), plain)) == plain
    # Any mapping is read as a dict is, at every level.
    assert from_dict(readable(cls), as_read_only_mappings(plain)) == value
    # Drawing the value is the slow part: fuzz with mutants of it here too
    # (a key dropped or added, junk in place of a value, anywhere inside).
    for _ in range(3):
        mutant = copy.deepcopy(plain)
        for _ in range(data.draw(st.integers(1, 3))):
            mutant = _mutate(data.draw, mutant)
        only_validation_errors(readable(cls), mutant)


@settings(max_examples=10)
@given(
    processed=st.lists(aps.scheduled_payments(), max_size=2),
    skipped=st.lists(aps.scheduled_payments(), max_size=2),
)
def test_a_due_run_given_lists_reads_back_as_itself(
    processed: list[ScheduledPayment], skipped: list[ScheduledPayment]
) -> None:
    run = DueRun(processed=processed, skipped=skipped)
    assert run == DueRun(tuple(processed), tuple(skipped))
    assert from_dict(DueRun, to_dict(run)) == run
    assert from_json(DueRun, to_json(run)) == run


@settings(max_examples=5)
@given(scheduled=aps.scheduled_payments())
def test_a_due_run_refuses_what_is_not_a_scheduled_payment(scheduled: ScheduledPayment) -> None:
    error = InvariantViolation("x", rule="r")
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"processed": 5, "skipped": "abc"}, ["processed", "skipped"]),
        ({"processed": (b"x",)}, ["processed[0]"]),
        ({"skipped": [scheduled, None]}, ["skipped[1]"]),
        ({"refused": ((scheduled, "boom"),)}, ["refused[0][1]"]),
        ({"refused": ((error, scheduled),)}, ["refused[0][0]", "refused[0][1]"]),
        ({"refused": (scheduled,)}, ["refused[0]"]),
        ({"refused": {}}, ["refused"]),
    ]
    for fields, paths in cases:
        with pytest.raises(ValidationError) as caught:
            DueRun(**fields)
        assert caught.value.paths == paths
        assert set(caught.value.codes) == {"wrong_type"}
        assert all(f"'{path}'" in str(caught.value) for path in paths)


@pytest.mark.parametrize("cls", [*TYPES, *SERVICE_TYPES], ids=_name)
@per_type
@given(data=json_like)
def test_arbitrary_json_like_data(cls: type[Any], data: object) -> None:
    only_validation_errors(readable(cls), data)


@settings(max_examples=5)
@given(scheduled=aps.scheduled_payments())
def test_a_due_run_with_refusals_is_not_data(scheduled: ScheduledPayment) -> None:
    # Of the errors, none is data: a run that lists one is not written, and
    # data that holds one in its place is not read.
    run = DueRun(refused=((scheduled, InvariantViolation("x", rule="r")),))
    with pytest.raises(ValidationError) as caught:
        to_dict(run)
    assert (caught.value.paths, caught.value.codes) == (["value"], ["not_serializable"])
    data = {"processed": [], "skipped": [], "refused": [[to_dict(run.refused[0][0]), {}]]}
    with pytest.raises(ValidationError) as caught:
        from_dict(DueRun, data)
    assert (caught.value.paths, caught.value.codes) == (["refused[0][1]"], ["unsupported_type"])


def test_money_wire_form() -> None:
    assert to_dict(Money("12.5", "USD")) == {"amount": "12.50", "currency": "USD"}
    assert to_dict(Money("1234", "JPY")) == {"amount": "1234", "currency": "JPY"}
    assert to_dict(Money("1.5", "BHD")) == {"amount": "1.500", "currency": "BHD"}
    assert to_dict(-Money("0.01", "CAD")) == {"amount": "-0.01", "currency": "CAD"}
    assert from_dict(Money, {"amount": "12.50", "currency": "USD"}) == Money("12.50", "USD")
    assert from_dict(Money, {"amount": 12, "currency": "usd"}) == Money(12, "USD")


def test_wire_forms_of_the_values() -> None:
    assert to_dict(Currency("USD")) == "USD"
    assert to_dict(EmailAddress("Ann@Globex.EXAMPLE")) == "Ann@globex.example"
    assert to_dict(EIN("123456789")) == "12-3456789"
    assert to_dict(CustomerId("cus_1")) == "cus_1"
    assert to_dict(ExternalRef("ConnectWise", "4711")) == {"system": "connectwise", "id": "4711"}
    assert to_dict(Address("1 Main St", "Albany", "NY", "12207", "US")) == {
        "line1": "1 Main St",
        "city": "Albany",
        "region": "NY",
        "postal_code": "12207",
        "country": "US",
        "line2": None,
    }
    assert to_dict(Rounding.HALF_EVEN) == "ROUND_HALF_EVEN"
    moment = dt.datetime(2026, 1, 31, 9, 30, tzinfo=dt.UTC)
    assert to_dict(moment) == "2026-01-31T09:30:00+00:00"
    assert to_dict(dt.date(2026, 1, 31)) == "2026-01-31"
    assert to_dict(Decimal("2.90")) == "2.90"
    assert to_dict(frozenset({TagId("tag_b"), TagId("tag_a")})) == ["tag_a", "tag_b"]


def test_to_json_is_utf8_text_with_optional_indent() -> None:
    email = EmailAddress("用户@例子.广告")
    assert to_json(email) == '"用户@例子.广告"'
    assert to_json(Money("1", "USD"), indent=2) == (
        '{\n  "amount": "1.00",\n  "currency": "USD"\n}'
    )
    assert from_json(Money, b'{"amount": "1.00", "currency": "USD"}') == Money("1", "USD")


@pytest.mark.parametrize(
    "indent",
    [True, -1, 101, 10**100, "  ", 1.5, Decimal(2)],
    ids=["True", "-1", "101", "10**100", "text", "float", "Decimal"],
)
def test_to_json_names_an_indent_that_is_not_a_number_of_spaces(indent: object) -> None:
    # A TypeError or OverflowError escaped from json.dumps before (True, -1
    # and text passed unseen).
    with pytest.raises(ValidationError) as info:
        to_json(Money("1", "USD"), indent=indent)  # type: ignore[arg-type]
    assert (info.value.paths, info.value.codes) == (["indent"], ["invalid_indent"])
    assert to_json(Money("1", "USD"), indent=0) == '{\n"amount": "1.00",\n"currency": "USD"\n}'


@pytest.mark.parametrize(
    "value",
    [object(), b"bytes", 1j, {"when": dt.timedelta(1)}, float("nan"), [float("-inf")]],
    ids=["object", "bytes", "complex", "timedelta-inside", "nan", "infinity-inside"],
)
def test_to_json_names_a_value_with_no_json_form(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        to_json(value)
    assert (info.value.paths, info.value.codes) == (["value"], ["not_serializable"])


@pytest.mark.parametrize(
    "value",
    [object(), b"bytes", 1j, {"when": dt.timedelta(1)}, [1, b"x"], {"a": [object()]}, {(1,): 2}],
    ids=["object", "bytes", "complex", "timedelta-inside", "bytes-inside", "deep", "tuple-key"],
)
def test_to_dict_names_a_value_with_no_plain_form(value: object) -> None:
    # cattrs passed such a value through as it was.
    with pytest.raises(ValidationError) as info:
        to_dict(value)
    assert (info.value.paths, info.value.codes) == (["value"], ["not_serializable"])


@given(data=json_like)
def test_to_dict_of_plain_data_is_that_data(data: object) -> None:
    assume(_json_ready(data))
    assert json.dumps(to_dict(data)) == json.dumps(data)


def _json_ready(data: object) -> bool:
    if isinstance(data, float):
        return math.isfinite(data)
    if isinstance(data, int):
        limit = sys.get_int_max_str_digits()
        return not limit or abs(data) < 10**limit
    if isinstance(data, list):
        return all(_json_ready(item) for item in data)
    if isinstance(data, dict):
        return all(_json_ready(item) for item in data.values())
    return True


class _Foreign(enum.Enum):
    BYTES = b"x"


_NOT_PLAIN = st.one_of(
    st.binary(max_size=4),
    st.builds(object),
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    st.sampled_from(["NaN", "sNaN", "Infinity", "-Infinity", "-NaN"]).map(Decimal),
)


@given(
    bad=_NOT_PLAIN,
    where=st.sampled_from(
        [
            lambda bad: bad,
            lambda bad: [1, bad],
            lambda bad: {"a": {"b": bad}},
            lambda bad: Page(items=(bad,)),
            lambda bad: Page(items=({"a": [bad]},)),
        ]
    ),
)
def test_to_dict_refuses_a_value_with_no_json_form_wherever_it_is(bad: object, where: Any) -> None:
    # A page's items may be anything: they were written as they were.
    value = where(bad)
    for write in (to_dict, to_json):
        with pytest.raises(ValidationError) as info:
            write(value)
        assert (info.value.paths, info.value.codes) == (["value"], ["not_serializable"])


@pytest.mark.parametrize(
    "value",
    [_Foreign.BYTES, {True: 1}, {None: 1}, {1: "a"}, {1.5: "a"}, [{"a": {2: 1}}]],
    ids=["foreign-enum", "bool-key", "none-key", "int-key", "float-key", "int-key-inside"],
)
def test_to_dict_refuses_keys_and_values_json_would_change(value: object) -> None:
    # json.dumps would write a key True as "true": read back, not the same.
    with pytest.raises(ValidationError) as info:
        to_dict(value)
    assert (info.value.paths, info.value.codes) == (["value"], ["not_serializable"])


@attrs.frozen
class Reminder:
    """A service's own type, with a date and a time."""

    send_on: dt.date
    sent_at: dt.datetime | None = None


_NAIVE = st.datetimes()
_AWARE = st.datetimes(
    min_value=dt.datetime(1900, 1, 1),
    max_value=dt.datetime(2200, 1, 1),
    timezones=st.timezones(),
    allow_imaginary=False,
)


@given(
    moment=_NAIVE,
    where=st.sampled_from(
        [
            lambda moment: moment,
            lambda moment: [moment],
            lambda moment: Reminder(dt.date(2026, 1, 31), sent_at=moment),
        ]
    ),
)
def test_to_dict_refuses_a_naive_datetime_that_from_dict_would_refuse(
    moment: dt.datetime, where: Any
) -> None:
    # It was written without an offset, and read back as invalid_datetime.
    with pytest.raises(ValidationError) as read:
        from_dict(dt.datetime, moment.isoformat())
    assert read.value.codes == ["invalid_datetime"]
    for write in (to_dict, to_json):
        with pytest.raises(ValidationError) as info:
            write(where(moment))
        assert (info.value.paths, info.value.codes) == (["value"], ["not_serializable"])
        assert "naive datetime" in info.value.errors[0].message


@given(moment=st.one_of(_NAIVE, _AWARE))
def test_to_dict_refuses_a_datetime_where_a_date_is_written(moment: dt.datetime) -> None:
    # A datetime is a date to Python: it was written with its time, and read
    # back as invalid_date.
    with pytest.raises(ValidationError) as read:
        from_dict(Reminder, {"send_on": moment.isoformat(), "sent_at": None})
    assert read.value.codes == ["invalid_date"]
    for value in (Reminder(moment), [Reminder(moment)]):
        for write in (to_dict, to_json):
            with pytest.raises(ValidationError) as info:
                write(value)
            assert (info.value.paths, info.value.codes) == (["value"], ["not_serializable"])
            assert "a datetime where a date is written" in info.value.errors[0].message


@given(day=st.dates(), moment=_AWARE)
def test_dates_and_aware_datetimes_are_written_as_from_dict_reads_them(
    day: dt.date, moment: dt.datetime
) -> None:
    assert to_dict(day) == day.isoformat()
    assert from_dict(dt.date, to_dict(day)) == day
    # Read back as the same instant, in UTC (compared in UTC: Python never
    # finds an ambiguous local time, at a change of clocks, equal to a time
    # in another zone, even the same instant).
    instant = moment.astimezone(dt.UTC)
    assert from_dict(dt.datetime, to_dict(moment)) == instant
    reminder = Reminder(day, sent_at=moment)
    data = to_dict(reminder)
    assert data == {"send_on": day.isoformat(), "sent_at": moment.isoformat()}
    assert from_dict(Reminder, data) == Reminder(day, sent_at=instant)


@given(data=json_like)
@example(data=float("nan"))
@example(data={"a": [float("-inf")]})
@example(data=[10**5000])
@example(data=[10**4299])  # 4,300 digits: as many as Python writes
@example(data=[10**4300])
def test_whatever_to_dict_writes_is_json_ready(data: object) -> None:
    if not _json_ready(data):
        with pytest.raises(ValidationError, match="not_serializable"):
            to_dict(data)
        return
    plain = to_dict(data)
    assert json.loads(json.dumps(plain, allow_nan=False)) == plain


@given(exponent=st.integers(-5, MAX_EMAX), negative=st.booleans())
def test_a_zero_decimal_of_any_exponent_is_written_as_one_digit(
    exponent: int, negative: bool
) -> None:
    # "0E+2000" and "-0E+2000" were written with their exponent, the
    # negative zero kept.
    zero = Decimal((int(negative), (0,), exponent))
    written = to_dict(zero)
    assert written == ("0" if exponent >= 0 else "0." + "0" * -exponent)
    assert from_dict(Decimal, written) == zero


@given(exponent=st.integers(MIN_ETINY, -1), negative=st.booleans())
@example(exponent=-20_000_000, negative=False)
@example(exponent=-1101, negative=True)
def test_a_zero_decimal_of_more_places_than_written_in_full_is_one_digit(
    exponent: int, negative: bool
) -> None:
    # "0E-20000000" was written with all its places: 20 MB of zeros.
    zero = Decimal((int(negative), (0,), exponent))
    written = to_dict(zero)
    assert written == ("0" if exponent < -1100 else "0." + "0" * -exponent)
    assert from_dict(Decimal, written) == zero
    text = f'"{zero}"'
    assert to_json(from_json(Decimal, text)) == f'"{written}"'
    assert stored_json(from_json(Decimal, text)) == f'"{written}"'


@given(st.decimals(allow_nan=False, allow_infinity=False))
@example(Decimal("-5.20"))
@example(Decimal("-1E+1101"))
def test_a_decimal_is_written_as_text_that_reads_back_as_the_same_number(number: Decimal) -> None:
    written = to_dict(number)
    assert written.startswith("-") == (number < 0)  # a negative number keeps its sign
    assert Decimal(written) == number
    assert from_dict(Decimal, written) == number


def test_a_decimal_past_the_plain_digits_is_written_with_an_exponent() -> None:
    assert to_dict(Decimal("1E+1101")) == "1E+1101"
    assert from_dict(Decimal, to_dict(Decimal("1E+1101"))) == Decimal("1E+1101")


def test_from_dict_names_a_missing_type() -> None:
    # cattrs reads None as "any": the data came back as it was given.
    for read in (lambda: from_dict(None, {}), lambda: from_json(None, "{}")):  # type: ignore[arg-type]
        with pytest.raises(ValidationError) as info:
            read()
        assert (info.value.paths, info.value.codes) == (["cls"], ["wrong_type"])


@pytest.mark.parametrize("cls", [5, "Customer", Money("1", "USD"), [Money]])
def test_from_dict_names_a_cls_that_is_no_type(cls: object) -> None:
    for read in (lambda: from_dict(cls, {}), lambda: from_json(cls, "{}")):  # type: ignore[call-overload, arg-type]
        with pytest.raises(ValidationError) as info:
            read()
        assert (info.value.paths, info.value.codes) == (["cls"], ["wrong_type"])
        message = info.value.errors[0].message
        assert message == f"'cls' must be the type to read, such as Customer (got {cls!r})"


@pytest.mark.parametrize("text", [None, 5, ["{}"], {"amount": "1"}])
def test_from_json_names_text_that_is_not_text(text: object) -> None:
    with pytest.raises(ValidationError) as info:
        from_json(Money, text)  # type: ignore[arg-type]
    assert (info.value.paths, info.value.codes) == (["text"], ["wrong_type"])
    assert info.value.errors[0].message.startswith("'text' must be JSON text")


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('{"amount": "1.00", "amount": "1000.00", "currency": "USD"}', "amount"),
        ('{"amount": "1.00", "currency": "USD", "currency": "EUR"}', "currency"),
    ],
)
def test_from_json_refuses_a_key_given_twice(text: str, path: str) -> None:
    # json.loads reads the last one: the document would mean another amount.
    for document in (text, text.encode()):
        with pytest.raises(ValidationError) as info:
            from_json(Money, document)
        assert (info.value.paths, info.value.codes) == ([path], ["duplicate_key"])
        assert f"'{path}'" in info.value.errors[0].message


def test_from_json_reports_each_key_given_twice() -> None:
    text = '{"amount": "1.00", "amount": "2.00", "currency": "USD", "currency": "USD"}'
    with pytest.raises(ValidationError) as info:
        from_json(Money, text)
    assert (info.value.paths, info.value.codes) == (
        ["amount", "currency"],
        ["duplicate_key", "duplicate_key"],
    )


@settings(max_examples=10)
@given(invoice=aps.invoices(), data=st.data())
def test_a_key_given_twice_anywhere_is_located(invoice: Invoice, data: st.DataObject) -> None:
    plain = to_dict(invoice)
    index = data.draw(st.integers(0, len(plain["lines"]) - 1))
    key = data.draw(st.sampled_from(sorted(plain["lines"][index]["unit_amount"])))
    marker = "\x00twice\x00"
    plain["lines"][index]["unit_amount"][marker] = plain["lines"][index]["unit_amount"][key]
    text = json.dumps(plain).replace(json.dumps(marker), json.dumps(key))
    with pytest.raises(ValidationError) as info:
        from_json(Invoice, text)
    assert info.value.paths == [f"lines[{index}].unit_amount.{key}"]
    assert info.value.codes == ["duplicate_key"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be"])
def test_from_json_reads_only_utf8_bytes(encoding: str) -> None:
    # json.loads would guess the encoding from the bytes.
    text = to_json(Money("1", "USD"))
    with pytest.raises(ValidationError) as info:
        from_json(Money, text.encode(encoding))
    assert (info.value.paths, info.value.codes) == ([""], ["invalid_json"])
    assert from_json(Money, text.encode("utf-8-sig")) == Money("1", "USD")  # a UTF-8 BOM is skipped


def test_from_json_reads_bytes_and_bytearrays() -> None:
    data = b'{"amount": "1", "currency": "USD"}'
    for text in (data, bytearray(data)):
        assert from_json(Money, text) == Money("1", "USD")  # type: ignore[arg-type]


@given(
    rate=st.one_of(
        st.decimals(0, 20, places=2),
        st.decimals(0, 20, places=2).map(str),
        st.integers(0, 20),
    )
)
def test_a_card_fee_rate_reads_back_whatever_form_it_was_given_in(rate: object) -> None:
    # Kept as given before: "2.9" was written as "2.9" and read back as
    # Decimal("2.9"), which is not equal to the text.
    policy = CardFeePolicy(CardFeeBearer.CUSTOMER, rate, Money("0.30", "USD"))  # type: ignore[arg-type]
    assert type(policy.rate_percent) is Decimal
    assert from_dict(CardFeePolicy, to_dict(policy)) == policy
    assert from_json(CardFeePolicy, to_json(policy)) == policy


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_a_time_with_no_utc_equivalent_is_an_invalid_datetime(text: str) -> None:
    # Reported as wrong_type ("must be datetime") before.
    assert errors_of(dt.datetime, text) == [("", "invalid_datetime")]


# -- a customer, as a sync or a form post gives it ---------------------------------------


@pytest.fixture(scope="module")
def customer() -> Customer:
    partner = Partner.create(name="Northwind IT", country="US")
    draft = CustomerDraft.start(partner).enter_details(
        company="Globex",
        ein="12-3456789",
        address={
            "line1": "1 Main St",
            "city": "Albany",
            "region": "NY",
            "postal_code": "12207",
            "country": "US",
        },
    )
    draft = draft.add_user(first_name="Ann", last_name="Lee", email="ann@globex.example")
    draft = draft.add_user(first_name="Bo", last_name="Li", email="bo@globex.example")
    return draft.create()


@pytest.fixture
def data(customer: Customer) -> dict[str, Any]:
    plain: dict[str, Any] = to_dict(customer)
    return copy.deepcopy(plain)


def errors_of(cls: Any, data: object) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        from_dict(cls, data)
    for error in info.value.errors:
        assert error.code
        assert error.message
    return [(e.path, e.code) for e in info.value.errors]


def test_pending_events_are_not_data(customer: Customer, data: dict[str, Any]) -> None:
    assert customer.events
    assert "events" not in data
    back = from_dict(Customer, data)
    assert back == customer
    assert back.events == ()


def test_missing_key(data: dict[str, Any]) -> None:
    del data["company"]
    del data["users"][1]["email"]
    assert errors_of(Customer, data) == [("company", "missing"), ("users[1].email", "missing")]


def test_extra_key(data: dict[str, Any]) -> None:
    data["nickname"] = "G"
    data["address"]["zip"] = "12207"
    data["users"][0]["age"] = 41
    assert sorted(errors_of(Customer, data)) == [
        ("address.zip", "unknown_field"),
        ("nickname", "unknown_field"),
        ("users[0].age", "unknown_field"),
    ]


@settings(max_examples=max(10, settings.default.max_examples // 4))
@given(
    customer=aps.customers(),
    invoice=aps.invoices(),
    other=st.sampled_from(["USD", "CAD", "EUR"]),  # two decimal places, as theirs
)
def test_one_fault_in_data_otherwise_as_written_is_found(
    customer: Customer, invoice: Invoice, other: str
) -> None:
    # Data exactly as to_dict writes it is read by quick paths: one fault in
    # it, alone, is refused as the detailed checks refuse it.
    assume(other != invoice.currency.code)
    written = to_dict(customer)
    written["address"]["zip"] = "12207"
    assert errors_of(Customer, written) == [("address.zip", "unknown_field")]
    lines = to_dict(invoice)
    lines["lines"][-1]["discount"] = "10%"
    index = len(invoice.lines) - 1
    assert errors_of(Invoice, lines) == [(f"lines[{index}].discount", "unknown_field")]
    priced = to_dict(invoice)
    priced["lines"][0]["unit_amount"]["currency"] = other
    assert errors_of(Invoice, priced) == [("lines[0].unit_amount", "currency_mismatch")]


@pytest.mark.parametrize(
    ("where", "junk", "path"),
    [
        (("version",), "3", "version"),
        (("version",), True, "version"),
        (("company",), 5, "company"),
        (("users", 0, "notifications"), "yes", "users[0].notifications"),
        (("users", 0, "notifications"), 1, "users[0].notifications"),
        (("users", 1, "first_name"), None, "users[1].first_name"),
        (("users",), "ann@globex.example", "users"),
        (("users",), {"ann": "ann@globex.example"}, "users"),
        (("tags",), "tag_1", "tags"),
        (("address",), "1 Main St, Albany NY", "address"),
        (("users", 1), ["Bo"], "users[1]"),
        (("id",), 17, "id"),
        (("ein",), 123456789, "ein"),
    ],
)
def test_wrong_type(
    data: dict[str, Any], where: tuple[str | int, ...], junk: object, path: str
) -> None:
    node: Any = data
    for step in where[:-1]:
        node = node[step]
    node[where[-1]] = junk
    found = errors_of(Customer, data)
    assert [p for p, _ in found] == [path]


def test_invalid_email_in_the_second_user(data: dict[str, Any]) -> None:
    data["users"][1]["email"] = "bo at globex"
    with pytest.raises(ValidationError) as info:
        from_dict(Customer, data)
    [error] = info.value.errors
    assert (error.path, error.code) == ("users[1].email", "invalid_email")
    assert "'email' must be a valid email address" in error.message


def test_float_amount_is_refused_wherever_it_is() -> None:
    assert errors_of(Money, {"amount": 12.5, "currency": "USD"}) == [("amount", "float_refused")]
    partner = to_dict(Partner.create(name="Northwind IT", country="US"))
    partner["card_fees"]["fixed"]["amount"] = 0.3
    assert errors_of(Partner, partner) == [("card_fees.fixed.amount", "float_refused")]


def test_bad_enum_value(data: dict[str, Any]) -> None:
    data["status"] = "deleted"
    assert errors_of(Customer, data) == [("status", "invalid_choice")]
    data["status"] = "ACTIVE"
    assert errors_of(Customer, data) == [("status", "invalid_choice")]


@pytest.mark.parametrize("top", [None, [], "customer", 42, 1.5, True])
def test_non_mapping_top_level(top: object) -> None:
    assert errors_of(Customer, top) == [("", "wrong_type")]
    assert errors_of(Money, top) == [("", "wrong_type")]
    assert errors_of(Address, top) == [("", "wrong_type")]


@pytest.mark.parametrize("text", ["", "{", "{'a': 1}", "[1, 2", b"\xff\xfe", "nan?"])
def test_invalid_json_text(text: str | bytes) -> None:
    with pytest.raises(ValidationError) as info:
        from_json(Customer, text)
    assert [(e.path, e.code) for e in info.value.errors] == [("", "invalid_json")]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize(
    ("cls", "template"),
    [
        (Money, '{"amount": %s, "currency": "USD"}'),
        (list, "[1, %s]"),
        (dict, '{"a": %s}'),
        (float, "%s"),
        # A key given twice before it: read again to find that key, and
        # refused there too.
        (list, '[{"a": 1, "a": 2}, %s]'),
        (dict, '{"a": 1, "a": %s}'),
    ],
)
def test_from_json_refuses_the_constants_that_are_not_json(
    constant: str, cls: Any, template: str
) -> None:
    # Before: json.loads read them as floats, which to_json then refused.
    for text in (template % constant, (template % constant).encode()):
        with pytest.raises(ValidationError) as info:
            from_json(cls, text)
        assert [(e.path, e.code) for e in info.value.errors] == [("", "invalid_json")]
        assert f"{constant} is not JSON" in info.value.errors[0].message


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_stored_row_that_holds_a_constant_that_is_not_json_is_refused(constant: str) -> None:
    # The SQL stores read their rows back through parse_json.
    with pytest.raises(ValidationError) as info:
        parse_json(f'{{"rate": {constant}}}')
    assert [(e.path, e.code) for e in info.value.errors] == [("", "invalid_json")]


def test_valid_json_of_the_wrong_shape() -> None:
    with pytest.raises(ValidationError) as info:
        from_json(Money, "[1, 2]")
    assert info.value.paths == [""]


def test_everything_wrong_is_reported_at_once(data: dict[str, Any]) -> None:
    del data["company"]
    data["nickname"] = "G"
    data["address"]["postal_code"] = "1220"
    data["address"]["region"] = "ON"
    data["users"][1]["email"] = "bo at globex"
    data["users"][0]["first_name"] = " "
    data["status"] = "gone"
    assert sorted(errors_of(Customer, data)) == sorted(
        [
            ("nickname", "unknown_field"),
            ("company", "missing"),
            ("address.region", "region_country_mismatch"),
            ("address.postal_code", "invalid_postal_code"),
            ("users[0].first_name", "blank"),
            ("users[1].email", "invalid_email"),
            ("status", "invalid_choice"),
        ]
    )


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("id", "x", "invalid_id"),
        ("ein", "00-0000000", "ein_prefix_not_assigned"),
        ("status", "gone", "invalid_choice"),
        ("created_at", "yesterday", "invalid_datetime"),
        ("billing_email", "no at all", "invalid_email"),
    ],
)
def test_a_field_that_cannot_be_read_does_not_hide_an_invalid_one(
    data: dict[str, Any], field: str, value: object, code: str
) -> None:
    # cattrs calls the constructor, whose checks find a blank company, only
    # once every field could be read.
    data[field] = value
    data["company"] = " "
    data["legal_name"] = "L" * 201
    assert sorted(errors_of(Customer, data)) == sorted(
        [(field, code), ("company", "blank"), ("legal_name", "too_long")]
    )


def test_a_missing_field_does_not_hide_an_invalid_one(data: dict[str, Any]) -> None:
    del data["id"]
    data["users"][0]["last_name"] = ""
    data["users"][1]["id"] = 7
    assert sorted(errors_of(Customer, data)) == [
        ("id", "missing"),
        ("users[0].last_name", "blank"),
        ("users[1].id", "wrong_type"),
    ]


def test_rules_of_the_aggregate_are_checked_again(data: dict[str, Any]) -> None:
    data["users"][1]["email"] = data["users"][0]["email"].upper()
    assert errors_of(Customer, data) == [("users[1].email", "C4")]
    data["users"] = []
    assert errors_of(Customer, data) == [("users", "C5")]


def test_messages_name_the_field(data: dict[str, Any]) -> None:
    data["version"] = "3"
    data["created_at"] = "2026-01-31T09:30:00"
    with pytest.raises(ValidationError) as info:
        from_dict(Customer, data)
    messages = {e.path: e.message for e in info.value.errors}
    assert messages["version"] == "'version' must be a whole number (got str)"
    assert messages["created_at"].startswith("'created_at' must be an ISO 8601 date and time")


@pytest.mark.parametrize("key", ["a\\1", "x\\g<0>", "a.b", "plain", "'q'"])
def test_an_item_of_a_mapping_is_named_by_its_whole_path(key: str) -> None:
    # A key was a pattern's replacement ("a\\1": a bare re.error), and a
    # dot in it cut the name short ("'b]'").
    with pytest.raises(ValidationError) as caught:
        from_dict(dict[str, UserId], {key: "nope"})
    assert caught.value.paths == [f"[{key}]"]
    assert caught.value.errors[0].message.startswith(f"'[{key}]' must ")


def test_a_value_read_for_a_field_is_named_by_that_field(data: dict[str, Any]) -> None:
    # An address read for billing_email said "'email' must be a valid email
    # address", naming the users' field; an id said "'partner id' must ...".
    data["billing_email"] = "nope"
    data["partner_id"] = "nope"
    data["users"][0]["email"] = "nope"
    data["address"]["postal_code"] = "1"
    with pytest.raises(ValidationError) as info:
        from_dict(Customer, data)
    for error in info.value.errors:
        field = error.path.rpartition(".")[2]
        assert error.message.startswith(f"'{field}' must "), error


def test_values_inside_a_list_are_located(data: dict[str, Any]) -> None:
    data["tags"] = ["tag_ok", "nope", 5]
    assert errors_of(Customer, data) == [("tags[1]", "invalid_id"), ("tags[2]", "wrong_type")]


# -- events ------------------------------------------------------------------------


def _event_data(cls: type[Event] = CustomerCreated) -> dict[str, Any]:
    event = cls(partner_id=PartnerId("par_1"), aggregate_id="cus_1", changes=("company",))
    plain: dict[str, Any] = to_dict(event)
    return plain


@pytest.mark.parametrize("topic", sorted(EVENT_TYPES))
def test_events_carry_their_topic_and_come_back_as_their_class(topic: str) -> None:
    cls = EVENT_TYPES[topic]
    plain = _event_data(cls)
    assert plain["topic"] == topic
    event = from_dict(Event, plain)
    assert type(event) is cls
    assert from_dict(cls, plain) == event
    assert event.changes == ("company",)


def test_event_topic_errors() -> None:
    plain = _event_data()
    assert errors_of(Event, {**plain, "topic": "customer_deleted"}) == [("topic", "invalid_choice")]
    assert errors_of(Event, {**plain, "topic": 5}) == [("topic", "invalid_choice")]
    without = {k: v for k, v in plain.items() if k != "topic"}
    assert errors_of(Event, without) == [("topic", "missing")]
    # A class reads only its own topic.
    assert errors_of(CustomerUpdated, plain) == [("topic", "invalid_choice")]
    assert errors_of(Event, {**plain, "extra": 1}) == [("extra", "unknown_field")]
    assert errors_of(Event, {**plain, "changes": "company"}) == [("changes", "wrong_type")]
    assert errors_of(Event, "customer_created") == [("", "wrong_type")]


def test_an_event_with_several_bad_fields() -> None:
    plain = {**_event_data(), "occurred_at": "yesterday", "partner_id": "cus_1", "x": 1}
    assert sorted(errors_of(Event, plain)) == [
        ("occurred_at", "invalid_datetime"),
        ("partner_id", "invalid_id"),
        ("x", "unknown_field"),
    ]


def test_an_event_of_a_services_own_class_is_written_whole_where_event_is_declared() -> None:
    @attrs.frozen(kw_only=True)
    class PayoutPaid(Event):
        """A service's own event, with fields of its own."""

        topic: ClassVar[str] = "payout_paid_test"
        payout_id: str = ""
        amount: Money | None = None

    @attrs.frozen
    class Batch:
        """A service's own record of events, declared as the base class."""

        events: list[Event]

    text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
    own = st.builds(
        PayoutPaid,
        partner_id=aps.entity_ids(PartnerId),
        aggregate_id=st.just("po_1"),
        occurred_at=aps.aware_datetimes(),
        payout_id=text,
        amount=aps.money(),
    )
    either = st.one_of(own, aps.events())

    @settings(max_examples=30, database=None)
    @given(
        message=st.builds(OutboxMessage, position=st.integers(1, 2**63 - 1), event=own),
        batch=st.lists(either, max_size=3),
        page=aps.pages(either),
    )
    def round_trip(message: OutboxMessage, batch: list[Event], page: Page[Event]) -> None:
        data = to_dict(message)
        assert data["event"]["topic"] == "payout_paid_test"
        assert data["event"]["payout_id"] == message.event.payout_id  # type: ignore[attr-defined]
        assert from_dict(OutboxMessage, data) == message
        assert from_json(OutboxMessage, to_json(message)) == message
        assert from_dict(list[Event], to_dict(batch)) == batch
        assert from_dict(Batch, to_dict(Batch(batch))) == Batch(batch)
        assert from_json(Page[Event], to_json(page)) == page

    try:
        round_trip()
    finally:
        del events_module._EVENT_TYPES["payout_paid_test"]


def test_an_outbox_message_whose_event_holds_no_json_form_is_not_serializable() -> None:
    @attrs.frozen(kw_only=True)
    class Uploaded(Event):
        """A service's own event with a field that has no JSON form."""

        topic: ClassVar[str] = "uploaded_test"
        blob: object = None

    try:
        event = Uploaded(partner_id=PartnerId("par_1"), aggregate_id="up_1", blob=b"raw")
        for value in (event, OutboxMessage(position=1, event=event), [event]):
            with pytest.raises(ValidationError) as caught:
                to_dict(value)
            assert caught.value.codes == ["not_serializable"]
    finally:
        del events_module._EVENT_TYPES["uploaded_test"]


_SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)


@st.composite
def _with_a_lone_surrogate(draw: st.DrawFn) -> Any:
    """Plain data holding text with a lone surrogate: as a value or a key,
    at the top or nested in a list or a dict."""
    before, after = draw(_TEXT), draw(_TEXT)
    text = before + draw(_SURROGATES) + after
    wrap = draw(
        st.sampled_from(
            [
                lambda t: t,
                lambda t: [1, t],
                lambda t: {"a": t},
                lambda t: {t: 1},
                lambda t: {"a": [{"b": None, t: "x"}]},
            ]
        )
    )
    return wrap(text)


@given(_with_a_lone_surrogate())
def test_text_holding_a_lone_surrogate_is_not_serializable(data: Any) -> None:
    for write in (to_dict, to_json):
        with pytest.raises(ValidationError) as info:
            write(data)
        assert (info.value.paths, info.value.codes) == (["value"], ["not_serializable"])


_PLAIN_TEXT_DATA = st.recursive(
    st.none() | _TEXT, lambda inner: st.lists(inner) | st.dictionaries(_TEXT, inner)
)


@given(_PLAIN_TEXT_DATA)
def test_plain_data_is_written_as_text_that_encodes_as_utf8(data: Any) -> None:
    written = to_json(data)
    assert json.loads(written.encode("utf-8")) == data


def test_from_json_reports_a_wrong_cls_and_text_at_once() -> None:
    with pytest.raises(ValidationError) as info:
        from_json(None, 5)  # type: ignore[call-overload]
    assert (info.value.paths, info.value.codes) == (["cls", "text"], ["wrong_type", "wrong_type"])


def test_a_byte_order_mark_is_skipped_before_bytes_only() -> None:
    document = '{"amount": "1.00", "currency": "USD"}'
    assert from_json(Money, b"\xef\xbb\xbf" + document.encode()) == Money("1.00", "USD")
    assert errors_of_json(Money, "\ufeff" + document) == [("", "invalid_json")]


def errors_of_json(cls: Any, text: str | bytes) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        from_json(cls, text)
    return [(e.path, e.code) for e in info.value.errors]


# -- the converter's hooks ---------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "value"),
    [
        (str, 5),
        (str, None),
        (int, "5"),
        (int, True),
        (int, 2.0),
        (bool, 1),
        (bool, "true"),
        # cattrs' own hooks coerced these: a bare collection took any
        # iterable, a float anything float() takes.
        (list, "abc"),
        (tuple, "ab"),
        (set, "ab"),
        (frozenset, {"a": 1}),
        (dict, [("a", 1)]),
        (float, "3"),
        (float, 3),
        (float, True),
        (Decimal, 1.5),
        (Decimal, True),
        (Decimal, "NaN"),
        (Decimal, "Infinity"),
        (Decimal, "twelve"),
        (dt.datetime, "2026-01-31T09:30:00"),
        (dt.datetime, "2026-02-30T09:30:00+00:00"),
        (dt.datetime, 1_700_000_000),
        (dt.date, "2026-02-30"),
        (dt.date, 20260131),
        (Currency, 840),
        (Currency, "XAU"),
        (EmailAddress, ["ann@globex.example"]),
        (EIN, 123456789),
        (UserId, "cus_1"),
        (EntityId, "xyz_1"),
        (EntityId, 5),
        (Action, "fly"),
        (Rounding, "ROUND_SOMEHOW"),
    ],
)
def test_no_coercion_of_wrong_types(cls: Any, value: object) -> None:
    [(path, _)] = errors_of(cls, value)
    assert path == ""


def test_exact_types_are_read_as_they_are() -> None:
    assert from_dict(str, "x") == "x"
    assert from_dict(int, 5) == 5
    assert from_dict(bool, False) is False
    assert from_dict(float, 1.5) == 1.5
    assert from_dict(list, [1, "a", None]) == [1, "a", None]
    assert from_dict(tuple, [1, [2]]) == (1, [2])
    assert from_dict(frozenset, ["a", "a"]) == frozenset({"a"})
    assert from_dict(dict, {"a": [1]}) == {"a": [1]}
    assert from_dict(Decimal, "2.90") == Decimal("2.90")
    assert from_dict(Decimal, 3) == Decimal(3)
    assert from_dict(dt.date, "2026-01-31") == dt.date(2026, 1, 31)
    assert from_dict(Action, Action.MANAGE_CUSTOMERS.value) is Action.MANAGE_CUSTOMERS
    assert from_dict(EntityId, "inv_1") == EntityId.parse("inv_1")


def test_datetimes_are_read_in_utc() -> None:
    moment = from_dict(dt.datetime, "2026-01-31T04:30:00-05:00")
    assert moment == dt.datetime(2026, 1, 31, 9, 30, tzinfo=dt.UTC)
    assert moment.tzinfo is dt.UTC
    assert from_dict(dt.datetime, "2026-01-31T09:30:00+00:00").tzinfo is dt.UTC


def test_enums_with_str_or_int_values() -> None:
    class Level(enum.IntEnum):
        LOW = 1
        HIGH = 2

    class Switch(enum.Enum):
        ON = True
        OFF = 0

    converter = make_converter()
    assert converter.structure(2, Level) is Level.HIGH
    assert converter.structure(Level.LOW, Level) is Level.LOW  # a member is itself
    assert (from_dict(Switch, True), from_dict(Switch, 0)) == (Switch.ON, Switch.OFF)
    # Of the member's own type, as an int field reads no true and no 1.0.
    for value, kind in ((3, Level), (True, Level), (2.0, Level), (False, Switch)):
        with pytest.raises(ValidationError) as info:
            converter.structure(value, kind)
        assert info.value.codes == ["invalid_choice"]
    assert from_dict(Rounding, "ROUND_HALF_UP") is Rounding.HALF_UP


def test_collections_are_json_arrays(data: dict[str, Any]) -> None:
    data["tags"] = ("tag_a", "tag_b", "tag_a")
    assert from_dict(Customer, data).tags == frozenset({TagId("tag_a"), TagId("tag_b")})
    data["tags"] = {"tag_a"}
    assert from_dict(Customer, data).tags == frozenset({TagId("tag_a")})
    data["users"] = tuple(data["users"])
    assert len(from_dict(Customer, data).users) == 2
    data["users"] = set()
    assert errors_of(Customer, data) == [("users", "wrong_type")]


def test_money_keys() -> None:
    assert errors_of(Money, {"amount": "1"}) == [("currency", "missing")]
    assert errors_of(Money, {"amount": "1", "currency": "USD", "cents": 100}) == [
        ("cents", "unknown_field")
    ]
    assert errors_of(Money, {"amount": "0.001", "currency": "USD"}) == [("amount", "too_precise")]
    assert errors_of(Money, {"amount": "1", "currency": "ZZZ"}) == [
        ("currency", "unknown_currency")
    ]
    assert errors_of(Money, {"amount": "x", "currency": "USD", "cents": 100}) == [
        ("cents", "unknown_field"),
        ("amount", "invalid_amount"),
    ]
    # Keys that are not strings are named as strings.
    assert errors_of(Money, {1: 2, "amount": "1", "currency": "USD"}) == [("1", "unknown_field")]
    assert errors_of(LineItem, {"description": "x", "quantity": 1, "unit_amount": {1: 2}}) == [
        ("unit_amount.1", "unknown_field"),
        ("unit_amount.amount", "missing"),
        ("unit_amount.currency", "missing"),
    ]


def test_json_nested_too_deeply_is_invalid_json() -> None:
    with pytest.raises(ValidationError) as info:
        from_json(Money, "[" * 100_000 + "]" * 100_000)
    assert info.value.codes == ["invalid_json"]


def test_optional_fields(data: dict[str, Any]) -> None:
    data["ein"] = None
    data["legal_name"] = None
    assert from_dict(Customer, data).ein is None
    data["ein"] = "00-0000000"
    assert errors_of(Customer, data) == [("ein", "ein_prefix_not_assigned")]
    data["ein"] = "12-3456789"
    data["billing_email"] = "not an email"
    assert errors_of(Customer, data) == [("billing_email", "invalid_email")]


def test_optional_fields_may_be_left_out(data: dict[str, Any]) -> None:
    for key in ("legal_name", "billing_email", "external_ref", "card_fee_exception"):
        data[key] = None
    as_null = from_dict(Customer, data)
    for key in ("legal_name", "billing_email", "external_ref", "card_fee_exception"):
        del data[key]
    assert from_dict(Customer, data) == as_null


def test_a_default_that_is_not_optional_is_missing_when_left_out(data: dict[str, Any]) -> None:
    # It was given its default: the time of the read for a created_at, 0
    # (never stored) for a version.
    for key in ("tags", "status", "created_at", "version"):
        del data[key]
    del data["users"][0]["notifications"]
    data["company"] = " "
    data["nickname"] = "G"
    assert errors_of(Customer, data) == [
        ("nickname", "unknown_field"),
        ("users[0].notifications", "missing"),
        ("tags", "missing"),
        ("status", "missing"),
        ("created_at", "missing"),
        ("version", "missing"),
        ("company", "blank"),
    ]
    with pytest.raises(ValidationError) as info:
        from_stored(Customer, data)
    assert info.value.errors == errors_in_full(Customer, data)
    event = {"topic": "invoice_paid", "partner_id": "par_1", "aggregate_id": "inv_1"}
    assert errors_of(Event, event) == [("occurred_at", "missing"), ("changes", "missing")]


@pytest.mark.parametrize("optional_left_out", [False, True])
@pytest.mark.parametrize("key", ["tags", "status", "created_at", "version"])
def test_a_default_left_out_alone_does_not_hide_an_invalid_field(
    data: dict[str, Any], key: str, optional_left_out: bool
) -> None:
    # Every other field is read, so the constructor's checks must run for
    # this one missing key alone. An optional key left out is read as null.
    del data[key]
    if optional_left_out:
        del data["legal_name"]
    data["company"] = " "
    assert errors_of(Customer, data) == [(key, "missing"), ("company", "blank")]


# The types whose data is an object (the ids, Currency, EIN and EmailAddress are text).
OBJECT_TYPES = [
    cls
    for cls in TYPES
    if attrs.has(cls) and not issubclass(cls, EntityId | Currency | EIN | EmailAddress)
]


@pytest.mark.parametrize("cls", OBJECT_TYPES, ids=_name)
@per_type
@given(data=st.data())
def test_only_a_key_written_as_null_may_be_left_out(cls: type[Any], data: st.DataObject) -> None:
    plain = json.loads(json.dumps(to_dict(data.draw(values_of(cls)))))
    assert isinstance(plain, dict)
    key = data.draw(st.sampled_from(sorted(plain)))
    field = {a.alias: a for a in attrs.fields(attrs.resolve_types(cls))}.get(key)
    left_out = {k: v for k, v in plain.items() if k != key}
    if field is not None and type(None) in get_args(field.type):
        # As if written as null: its default.
        expected = read_with(from_dict, readable(cls), {**plain, key: None})
        assert read_with(from_dict, readable(cls), left_out) == expected
        assert read_with(from_stored, readable(cls), left_out) == expected
    else:
        with pytest.raises(ValidationError) as info:
            from_stored(readable(cls), left_out)
        assert [(e.path, e.code) for e in info.value.errors] == [(key, "missing")]
        assert info.value.errors == errors_in_full(readable(cls), left_out)


# How an error names the type read, where it is not "<class> as an object".
OBJECT_LABELS: dict[type[Any], str] = {Address: "an address", Money: "money"}


@pytest.mark.parametrize("cls", OBJECT_TYPES, ids=_name)
def test_an_error_names_the_type_read(cls: type[Any]) -> None:
    events = issubclass(cls, Event)
    label = "an event" if events else OBJECT_LABELS.get(cls, f"{cls.__name__} as an object")
    with pytest.raises(ValidationError) as info:
        from_dict(readable(cls), 5)
    assert [e.message for e in info.value.errors] == [f"must be {label} (got int)"]
    if events or cls in (PaymentMethod, CustomerPaymentMethods):
        return  # an event names its topic; a saved method's keys are not shown
    with pytest.raises(ValidationError) as info:
        from_dict(readable(cls), {"zzz": 1})
    name = OBJECT_LABELS.get(cls, cls.__name__)
    unknown = [e.message for e in info.value.errors if e.code == "unknown_field"]
    assert [message.partition(" (")[0] for message in unknown] == [
        f"'zzz' is not a field of {name}"
    ]


def test_a_generic_type_needs_its_parameter() -> None:
    page = Page(
        items=(CustomerId("cus_1"),),
        start_cursor=None,
        end_cursor="c1",
        has_next_page=False,
        has_previous_page=False,
    )
    plain = to_dict(page)
    assert from_dict(Page[CustomerId], plain) == page
    assert errors_of(Page[CustomerId], {**plain, "extra": 1}) == [("extra", "unknown_field")]
    assert errors_of(Page[CustomerId], {**plain, "items": ["inv_1"]}) == [
        ("items[0]", "invalid_id")
    ]
    assert errors_of(Page, plain) == [("", "unsupported_type")]


def test_unsupported_type() -> None:
    class Unknown:
        pass

    assert errors_of(Unknown, {}) == [("", "unsupported_type")]


def test_a_list_that_holds_itself_is_not_serializable_at_value() -> None:
    looped: list[object] = []
    looped.append(looped)
    for write in (to_dict, to_json):
        with pytest.raises(ValidationError) as caught:
            write(looped)
        assert (caught.value.paths, caught.value.codes) == (["value"], ["not_serializable"])
        assert caught.value.__cause__ is None


@pytest.mark.parametrize("data", ["usr_1", {"first_name": "Ann"}, 5])
def test_a_union_whose_members_look_alike_is_an_unsupported_type(data: object) -> None:
    # Viewer is read with the member's own type, as docs/serialization.md says.
    with pytest.raises(ValidationError) as caught:
        from_dict(altpay_core.Viewer, data)  # type: ignore[arg-type]
    assert (caught.value.paths, caught.value.codes) == ([""], ["unsupported_type"])
    assert "CustomerUser | UserId | Impersonation" in str(caught.value)


def test_make_converter_builds_a_new_converter_each_time() -> None:
    first, second = make_converter(), make_converter(detailed_validation=True)
    assert first is not second
    assert first is not cattrs.global_converter
    assert first.structure({"amount": "1", "currency": "USD"}, Money) == Money("1", "USD")
    # The module's converters leave cattrs' global one alone.
    assert cattrs.global_converter.structure("5", int) == 5


def test_field_renames() -> None:
    @attrs.frozen
    class Secret:
        _code: str

    converter = make_converter()
    assert converter.unstructure(Secret("x")) == {"code": "x"}
    assert converter.structure({"code": "x"}, Secret) == Secret("x")


def test_lists_and_sets_a_caller_asks_for() -> None:
    assert from_dict(list[UserId], ["usr_1", "usr_2"]) == [UserId("usr_1"), UserId("usr_2")]
    assert from_dict(set[int], [1, 2, 2]) == {1, 2}
    assert errors_of(list[int], "12") == [("", "wrong_type")]
    assert errors_of(list[UserId], ["usr_1", "cus_1"]) == [("[1]", "invalid_id")]
    assert errors_of(list[Customer], [{}])[0] == ("[0].id", "missing")


@pytest.mark.parametrize(
    ("cls", "built"),
    [
        (Sequence[str], ("a", "b")),
        (MutableSequence[str], ["a", "b"]),
        (collections.deque[str], collections.deque(["a", "b"])),
        (AbstractSet[str], frozenset({"a", "b"})),
        (MutableSet[str], {"a", "b"}),
        (Sequence, ("a", "b")),
    ],
    ids=str,
)
def test_an_abstract_collection_reads_only_an_array(cls: Any, built: object) -> None:
    read = from_dict(cls, ["a", "b"])
    assert (type(read), read) == (type(built), built)
    # Not a string as the collection of its characters.
    assert errors_in_full(cls, "ab") == [FieldError("", "wrong_type", "must be a list (got str)")]
    assert errors_of(list[cls], [["a"], {"a": 1}]) == [("[1]", "wrong_type")]


def test_a_tuple_with_a_type_for_each_item_reads_only_an_array_of_its_length() -> None:
    assert from_dict(tuple[int, UserId], [1, "usr_1"]) == (1, UserId("usr_1"))
    assert from_dict(tuple[int, UserId], (1, "usr_1")) == (1, UserId("usr_1"))
    assert from_dict(tuple[()], []) == ()
    assert from_dict(list[tuple[int]], [[1], [2]]) == [(1,), (2,)]
    # Not a string as the tuple of its characters, nor an object as that of
    # its keys, nor fewer or more items than types.
    for data, got in [("ab", "str"), ({"a": 1, "b": 2}, "dict"), (["a"], "1"), ([1, 2, 3], "3")]:
        assert errors_in_full(tuple[str, str], data) == [
            FieldError("", "wrong_type", f"must be a list of 2 items (got {got})")
        ]
    assert errors_in_full(tuple[int], {1}) == [
        FieldError("", "wrong_type", "must be a list of 1 item (got set)")
    ]
    # Every item's error, each at its index, with an error of another tuple.
    assert errors_in_full(list[tuple[int, UserId, str]], [["1", "cus_1", "x"], [1]]) == [
        FieldError("[0][0]", "wrong_type", "'[0][0]' must be a whole number (got str)"),
        FieldError(
            "[0][1]",
            "invalid_id",
            "'[0][1]' must look like usr_<letters and digits> (got 'cus_1')",
        ),
        FieldError("[1]", "wrong_type", "'[1]' must be a list of 3 items (got 1)"),
    ]
    assert to_dict((1, UserId("usr_1"))) == [1, "usr_1"]


class _Rehashed(str):
    """Text of another hash: a dict holds it beside the plain text."""

    def __hash__(self) -> int:
        return 1


class _HasItems:
    def items(self) -> list[tuple[str, int]]:
        return [("a", 1)]


def test_a_mapping_with_types_for_keys_and_values_reads_only_an_object() -> None:
    money = {"amount": "1.00", "currency": "USD"}
    assert from_dict(dict[UserId, Money], {"usr_1": money}) == {UserId("usr_1"): Money("1", "USD")}
    assert from_dict(Mapping[str, int], MappingProxyType({"a": 1})) == {"a": 1}
    assert from_dict(dict[str, int], collections.Counter("ab")) == {"a": 1, "b": 1}
    # Not a list of pairs, nor anything else that has items().
    for data in ([("a", 1)], "x", _HasItems()):
        assert errors_in_full(dict[str, int], data) == [
            FieldError("", "wrong_type", f"must be an object (got {type(data).__name__})")
        ]
    # Two keys of one text, told apart by a subclass's hash, as for an object.
    assert errors_of(dict[str, int], {_Rehashed("a"): 1, "a": 2}) == [("a", "duplicate_key")]
    (key,) = from_dict(dict[str, int], {_Rehashed("a"): 1})
    assert type(key) is str
    # Nor two keys that read as one key: the second is duplicate_key.
    assert errors_in_full(dict[Currency, int], {"usd": 1, "USD": 2}) == [
        FieldError("[USD]", "duplicate_key", "'[USD]' is the same key as 'usd', given before it")
    ]
    emails = {"Ann@example.com": 1, "ann@example.com": 2}
    assert errors_of(dict[EmailAddress, int], emails) == [("[ann@example.com]", "duplicate_key")]
    assert from_dict(dict[str, int], emails) == emails
    # Built as the type asked for, each value read as its type too.
    read = from_dict(collections.OrderedDict[str, int], {"b": 1, "a": 2})
    assert (type(read), list(read.items())) == (collections.OrderedDict, [("b", 1), ("a", 2)])
    assert errors_of(collections.OrderedDict[str, int], {"a": "1"}) == [("[a]", "wrong_type")]
    # Every key's and every value's error, each at its key.
    assert errors_in_full(dict[UserId, int], {"cus_1": "x"}) == [
        FieldError(
            "[cus_1]",
            "invalid_id",
            "'[cus_1]' must look like usr_<letters and digits> (got 'cus_1')",
        ),
        FieldError("[cus_1]", "wrong_type", "'[cus_1]' must be a whole number (got str)"),
    ]
    assert errors_in_full(dict[UserId, Money], {"cus_1": money, "usr_1": 3}) == [
        FieldError(
            "[cus_1]",
            "invalid_id",
            "'[cus_1]' must look like usr_<letters and digits> (got 'cus_1')",
        ),
        FieldError("[usr_1]", "wrong_type", "'[usr_1]' must be money (got int)"),
    ]


class _Colour(enum.Enum):
    RED = "red"


def test_a_literal_reads_only_one_of_its_values_each_of_its_own_type() -> None:
    kind: Any = Literal[1, "a", None, _Colour.RED]
    for data, expected in [(1, 1), (_Text("a"), "a"), (None, None), ("red", _Colour.RED)]:
        read = from_dict(kind, data)
        assert (type(read), read) == (type(expected), expected)
    # As an enumeration's value: true and 1.0 are no 1 (Python finds them
    # equal), nor a member's name its value.
    for data, got in [(True, "True"), (1.0, "1.0"), ("b", "'b'"), ("RED", "'RED'"), ([1], "[1]")]:
        assert errors_in_full(kind, data) == [
            FieldError("", "invalid_choice", f"must be one of 1, 'a', None, 'red' (got {got})")
        ]
    assert errors_in_full(_Shipment, {"speed": "slow", "to": "Albany"}) == [
        FieldError("speed", "invalid_choice", "'speed' must be one of 'fast', 'free' (got 'slow')")
    ]
    shipment = _Shipment(speed="free", to="Albany")
    assert from_dict(_Shipment, to_dict(shipment)) == shipment


@attrs.frozen
class _Positive:
    n: int = attrs.field()

    @n.validator
    def _check(self, _: object, value: int) -> None:
        if value < 0:
            raise ValueError("n must not be negative")


@attrs.frozen
class _Shipment:
    speed: Literal["fast", "free"]
    to: str


@attrs.frozen
class _Order:
    quantity: _Positive
    shipment: _Shipment
    label: pathlib.Path


def test_a_class_of_your_own_that_refuses_its_data_says_why() -> None:
    # Its validators' own words, at the object they refused.
    refused = "is not a valid _Positive (ValueError: n must not be negative)"
    assert errors_in_full(_Positive, {"n": -1}) == [
        FieldError("", "invalid_value", f"'value' {refused}")
    ]
    data = {"quantity": {"n": -1}, "shipment": {"speed": "fast", "to": "x"}, "label": 3}
    assert errors_in_full(list[_Order], [data]) == [
        FieldError("[0].quantity", "invalid_value", f"'[0].quantity' {refused}"),
        # A type of another library's, read by cattrs' own hook, by its name.
        FieldError("[0].label", "wrong_type", "'[0].label' must be Path"),
    ]


class _Limits(TypedDict):
    daily: int


@dataclasses.dataclass(frozen=True)
class _Account:
    name: str
    limits: _Limits


def test_a_key_that_is_no_field_of_a_dataclass_or_typeddict_of_your_own_is_unknown() -> None:
    data = {"name": 5, "nickname": "x", "limits": {"daily": 1, "weekly": 2, "a.b": 3}}
    assert errors_in_full(list[_Account], [data]) == [
        FieldError("[0].name", "wrong_type", "'[0].name' must be a string (got int)"),
        FieldError("[0].limits.a.b", "unknown_field", "'a.b' is not a field of _Limits"),
        FieldError("[0].limits.weekly", "unknown_field", "'weekly' is not a field of _Limits"),
        FieldError("[0].nickname", "unknown_field", "'nickname' is not a field of _Account"),
    ]
    assert from_dict(_Account, {"name": "n", "limits": {"daily": 1}}) == _Account(
        name="n", limits={"daily": 1}
    )


@pytest.mark.parametrize(
    ("cls", "data", "message"),
    [
        (dict[str, int], "x", "must be an object (got str)"),
        (tuple[int, str], 5, "must be a list of 2 items (got int)"),
        (float, "x", "must be a floating-point number"),
    ],
)
def test_errors_of_other_shapes_still_say_what_was_expected(
    cls: Any, data: object, message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        from_dict(cls, data)
    assert info.value.errors[0].message.startswith(message)


# -- reading back what a store kept (from_stored) --------------------------------------


def read_with(read: Any, cls: Any, data: object) -> Any:
    """A read's value, each field with its type and repr; or its errors."""
    try:
        value = read(cls, data)
    except ValidationError as error:
        return error.errors
    fields = attrs.fields(type(value))
    return [(a.name, type(getattr(value, a.name)), repr(getattr(value, a.name))) for a in fields]


def assert_read_as_from_dict_reads(data: object) -> None:
    assert read_with(from_stored, Customer, data) == read_with(from_dict, Customer, data)


@per_type
@given(customer=st.from_type(Customer), data=st.data())
def test_quick_customers_are_read_as_from_dict_reads_them(
    customer: Customer, data: st.DataObject
) -> None:
    plain = json.loads(json.dumps(to_dict(customer)))
    quick = _quick_customer(plain)
    assert quick is not None, "the quick path refused what to_dict wrote"
    assert quick == customer
    assert read_with(from_stored, Customer, plain) == read_with(from_dict, Customer, plain)
    assert to_dict(quick) == plain
    for _ in range(3):
        mutant = copy.deepcopy(plain)
        for _ in range(data.draw(st.integers(1, 3))):
            mutant = _mutate(data.draw, mutant)
        assert_read_as_from_dict_reads(mutant)


def _user_with(email: str) -> dict[str, Any]:
    return {"id": "usr_9", "first_name": "Cy", "last_name": "Ng", "email": email}


@pytest.mark.parametrize(
    "damage",
    [
        {"users": []},
        {"id": "customer-1"},
        {"partner_id": "cus_1"},
        {"company": "  "},
        {"company": "G" * 201},
        {"legal_name": 5},
        {"ein": "00-0000000"},
        {"billing_email": "ap at globex"},
        {"tags": ["vip"]},
        {"tags": "tag_1"},
        {"status": "deleted"},
        {"external_ref": {"system": "cw"}},
        {"external_ref": "cw:1"},
        {"card_fee_exception": "nobody"},
        {"card_fee_exception": ["partner"]},
        {"created_at": "2026-01-31T09:30:00"},
        {"created_at": "yesterday"},
        {"created_at": 1769851800},
        {"version": -1},
        {"version": True},
        {"address": "1 Main St, Albany NY"},
        {"address": {"line1": "1 Main St"}},
    ],
    ids=repr,
)
def test_a_damaged_quick_customer_is_refused_as_from_dict_refuses_it(
    data: dict[str, Any], damage: dict[str, Any]
) -> None:
    data.update(damage)
    with pytest.raises(ValidationError) as info:
        from_stored(Customer, data)
    assert info.value.errors == errors_in_full(Customer, data)


def errors_in_full(cls: Any, data: object) -> list[FieldError]:
    with pytest.raises(ValidationError) as info:
        from_dict(cls, data)
    return info.value.errors


@pytest.mark.parametrize(
    ("where", "junk"),
    [
        ("region", "ON"),
        ("postal_code", "1220"),
        ("postal_code", 12207),
        ("line2", ["Suite 4"]),
        ("country", None),
    ],
)
def test_a_damaged_stored_address_is_refused_with_its_path(
    data: dict[str, Any], where: str, junk: object
) -> None:
    data["address"][where] = junk
    with pytest.raises(ValidationError) as info:
        from_stored(Customer, data)
    assert info.value.errors == errors_in_full(Customer, data)
    assert info.value.paths == [f"address.{where}"]


@pytest.mark.parametrize(
    "damage",
    [
        lambda users: users.append(_user_with("bo@globex.example")),
        lambda users: users.append(_user_with("ANN@globex.example")),
        lambda users: users.append(_user_with("cy at globex")),
        lambda users: users.append({**_user_with("cy@globex.example"), "id": users[0]["id"]}),
        lambda users: users.append("cy@globex.example"),
        lambda users: users[0].update(notifications=1),
        lambda users: users[0].update(first_name=" "),
        lambda users: users[0].update(id=7),
        lambda users: users[0].update(age=41),
    ],
)
def test_damaged_stored_users_are_refused_with_their_paths(
    data: dict[str, Any], damage: Any
) -> None:
    damage(data["users"])
    with pytest.raises(ValidationError) as info:
        from_stored(Customer, data)
    assert info.value.errors == errors_in_full(Customer, data)
    assert all(path.startswith("users") for path in info.value.paths)


@pytest.mark.parametrize(
    "change",
    [
        {"created_at": "2026-01-31T04:30:00-05:00"},
        {"company": " Globex "},
        {"legal_name": ""},
        {"ein": "123456789"},
        {"tags": ["tag_2", "tag_1", "tag_1"]},
        {"users": [{"id": "usr_9", "first_name": "Cy", "last_name": "Ng", "email": "c@g.example"}]},
    ],
    ids=repr,
)
def test_other_valid_forms_are_read_as_from_dict_reads_them(
    data: dict[str, Any], change: dict[str, Any]
) -> None:
    data.update(change)
    assert _quick_customer(data) is None or _quick_customer(data) == from_dict(Customer, data)
    assert_read_as_from_dict_reads(data)


@pytest.mark.parametrize("top", [None, [], "customer", {}, {"id": "cus_1"}])
def test_data_of_another_shape_goes_to_from_dict(top: object) -> None:
    assert _quick_customer(top) is None
    assert_read_as_from_dict_reads(top)


def test_other_types_are_read_by_from_dict() -> None:
    partner = Partner.create(name="Northwind IT", country="US")
    assert from_stored(Partner, to_dict(partner)) == partner
    assert from_stored(Money, {"amount": "1.50", "currency": "USD"}) == Money("1.50", "USD")
    with pytest.raises(ValidationError) as info:
        from_stored(Money, {"amount": 1.5, "currency": "USD"})
    assert info.value.errors == errors_in_full(Money, {"amount": 1.5, "currency": "USD"})


# -- invoices: the quick hooks against the generic ones -------------------------------


_GENERIC = make_converter()
# The generic hooks, as every other attrs class has them.
_GENERIC.register_structure_hook(Invoice, _attrs_structure(_GENERIC, Invoice, False))
_GENERIC.register_unstructure_hook(Invoice, make_dict_unstructure_fn(Invoice, _GENERIC))


def from_dict_generically(cls: Any, data: object) -> Any:
    """What from_dict gave before invoices had hooks of their own."""
    try:
        return _GENERIC.structure(data, cls)
    except Exception:
        pass
    try:
        _DETAILED.structure(data, cls)
    except Exception as error:
        raise ValidationError(_field_errors(error, "", cls)) from None
    raise AssertionError("the detailed converter read what the fast one refused")


def assert_read_as_before(data: object) -> None:
    assert read_with(from_dict, Invoice, data) == read_with(from_dict_generically, Invoice, data)


@per_type
@given(invoice=st.from_type(Invoice), data=st.data())
def test_invoices_are_read_and_written_as_the_generic_hooks_do(
    invoice: Invoice, data: st.DataObject
) -> None:
    written = to_dict(invoice)
    # Key for key and in the same order: the same JSON text.
    assert json.dumps(written) == json.dumps(_GENERIC.unstructure(invoice))
    plain = json.loads(json.dumps(written))
    quick = _quick_invoice(plain)
    assert quick is not None, "the quick path refused what to_dict wrote"
    assert quick == invoice
    assert_read_as_before(plain)
    for _ in range(3):
        mutant = copy.deepcopy(plain)
        for _ in range(data.draw(st.integers(1, 2))):
            mutant = _mutate(data.draw, mutant)
        assert_read_as_before(mutant)


def _invoice_plain() -> dict[str, Any]:
    return {
        "id": "inv_1",
        "partner_id": "par_1",
        "customer_id": "cus_1",
        "number": "INV-1",
        "currency": "USD",
        "issue_date": "2026-01-02",
        "due_date": "2026-02-01",
        "lines": [
            {
                "description": "Support",
                "quantity": 2,
                "unit_amount": {"amount": "150.00", "currency": "USD"},
            }
        ],
        "fees": [
            {
                "kind": "late_payment",
                "name": "Late payment fee",
                "amount": {"amount": "25.00", "currency": "USD"},
                "covered_by_customer": True,
            }
        ],
        "memo": "Thanks",
        "status": "open",
        "payments": [
            {
                "payment_id": "pay_1",
                "amount": {"amount": "100.00", "currency": "USD"},
                "released": False,
            }
        ],
        "external_ref": None,
        "issued_by": "tm_1",
        "created_at": "2026-01-02T09:30:00+00:00",
        "version": 3,
    }


def _line(**changes: object) -> dict[str, Any]:
    return {**_invoice_plain()["lines"][0], **changes}


@pytest.mark.parametrize(
    ("changes", "quick"),
    [
        ({}, True),
        ({"external_ref": {"system": "ConnectWise", "id": " 7 "}, "issued_by": None}, True),
        ({"memo": None, "fees": [], "payments": []}, True),
        ({"memo": "   "}, True),
        # Paid in the source: a synced invoice's; the key missing reads as None.
        ({"paid_in_source": None}, True),
        (
            {
                "paid_in_source": {"amount": "25.00", "currency": "USD"},
                "external_ref": {"system": "connectwise", "id": "7"},
            },
            True,
        ),
        ({"paid_in_source": {"amount": "25.00", "currency": "USD"}}, False),
        ({"paid_in_source": "25.00", "external_ref": {"system": "cw", "id": "7"}}, False),
        (
            {
                "paid_in_source": {"amount": "0.00", "currency": "USD"},
                "external_ref": {"system": "cw", "id": "7"},
            },
            False,
        ),
        (
            {
                "paid_in_source": {"amount": "25.00", "currency": "CAD"},
                "external_ref": {"system": "cw", "id": "7"},
            },
            False,
        ),
        (
            {
                "paid_in_source": {"amount": "300.00", "currency": "USD"},
                "external_ref": {"system": "cw", "id": "7"},
            },
            False,
        ),
        ({"lines": [_line(unit_amount={"amount": "150.5", "currency": "USD"})]}, True),
        ({"lines": [_line(unit_amount={"amount": 150, "currency": "USD"})]}, True),
        # Valid, but not as to_dict writes it: the generic hooks read it.
        ({"created_at": "2026-01-02T10:30:00+01:00"}, False),
        ({"currency": "usd"}, False),
        ({"lines": [_line(unit_amount={"amount": "1.00", "currency": "usd"})]}, False),
        ({"lines": (_line(),)}, False),
        ({"lines": [{"description": "Support", "unit_amount": _line()["unit_amount"]}]}, False),
        # Invalid: refused by the generic hooks, with their errors.
        ({"created_at": 1767346200}, False),
        ({"created_at": "2026-01-02T09:30:00"}, False),
        ({"id": 5}, False),
        ({"id": "cus_1"}, False),
        ({"issued_by": 5}, False),
        ({"number": "  "}, False),
        ({"memo": 5}, False),
        ({"status": "nope"}, False),
        ({"status": "paid"}, False),
        ({"issue_date": "2026-02-30"}, False),
        ({"issue_date": "2026-03-01"}, False),
        ({"version": True}, False),
        ({"lines": []}, False),
        ({"lines": "Support"}, False),
        ({"lines": [_line(quantity=0), _line(description=" ")]}, False),
        ({"lines": [_line(unit_amount={"amount": "1.00", "currency": "CAD"})]}, False),
        ({"lines": [_line(unit_amount={"amount": "1.001", "currency": "USD"})]}, False),
        ({"lines": [_line(unit_amount={"amount": 1.5, "currency": "USD"})]}, False),
        ({"lines": [_line(unit_amount={"amount": "1.00"})]}, False),
        ({"lines": [_line(unit_amount="1.00")]}, False),
        ({"fees": [{**_invoice_plain()["fees"][0], "kind": "nope"}]}, False),
        ({"fees": [{**_invoice_plain()["fees"][0], "kind": ["card"]}]}, False),
        ({"fees": [{**_invoice_plain()["fees"][0], "covered_by_customer": 1}]}, False),
        (
            {
                "fees": [
                    {**_invoice_plain()["fees"][0], "amount": {"amount": "1", "currency": "CAD"}}
                ]
            },
            False,
        ),
        ({"payments": [{**_invoice_plain()["payments"][0], "payment_id": 7}]}, False),
        ({"payments": [{**_invoice_plain()["payments"][0], "released": "no"}]}, False),
        ({"payments": [{**_invoice_plain()["payments"][0], "amount": "500.00"}]}, False),
        ({"external_ref": {"system": 5, "id": "7"}}, False),
        ({"external_ref": {"system": "cw"}}, False),
        ({"external_ref": "cw:7"}, False),
        ({"currency": ["USD"]}, False),
        ({"extra": 1}, False),
    ],
)
def test_invoices_of_every_shape_are_read_as_before(
    changes: dict[str, object], quick: bool
) -> None:
    data = {**_invoice_plain(), **changes}
    assert (_quick_invoice(data) is not None) is quick
    assert_read_as_before(data)
    if quick:
        assert to_dict(from_dict(Invoice, data)) == _GENERIC.unstructure(
            from_dict_generically(Invoice, data)
        )


def test_invoices_inside_other_data_use_the_quick_hooks() -> None:
    data = _invoice_plain()
    assert from_dict(list[Invoice], [data, data]) == [from_dict(Invoice, data)] * 2
    assert errors_of(list[Invoice], [data, {**data, "id": 5}]) == [("[1].id", "wrong_type")]


@pytest.mark.parametrize("cls", [Partner, Customer, Invoice, Payment])
@given(data=st.data())
def test_a_time_with_a_trailing_nul_is_refused(cls: type[Any], data: st.DataObject) -> None:
    # CPython's fromisoformat stops reading at a NUL: "...+00:00\x00" read as a time.
    written = to_dict(data.draw(st.from_type(cls)))
    written["created_at"] += "\x00"
    with pytest.raises(ValidationError) as info:
        from_dict(cls, written)
    assert (info.value.paths, info.value.codes) == (["created_at"], ["invalid_datetime"])


# -- an integration's name, lower-cased before its length is checked -------------------


@example(system="S\u0130" * 17)  # 34 characters, 51 once lower-cased
@given(
    system=st.text(
        st.sampled_from(["\u0130", "S", "\u03a3", "K", " "]) | st.characters(),
        min_size=1,
        max_size=55,
    )
)
def test_a_connected_integration_reads_back_whatever_its_name(system: str) -> None:
    # Checked before lower-casing, "\u0130" (two characters once lower case)
    # let a partner be stored that from_dict then refused as too_long.
    partner = Partner.create(name="Northwind IT", country="US")
    try:
        connected = partner.connect_integration(system)
    except ValidationError:
        # Refused as a reference's system is: the same rules, the same codes.
        with pytest.raises(ValidationError) as as_integration:
            partner.connect_integration(system)
        with pytest.raises(ValidationError) as as_ref:
            ExternalRef(system, "1")
        refused = as_integration.value
        assert (refused.paths, refused.codes) == (as_ref.value.paths, as_ref.value.codes)
        return
    assert len(connected.integrations[0].system) <= 50
    assert from_dict(Partner, to_dict(connected)) == connected
    assert from_json(Partner, to_json(connected)) == connected
    # The same name is a valid reference's system, and reads back as one.
    ref = ExternalRef(system, "1")
    assert ref.system == connected.integrations[0].system
    assert from_dict(ExternalRef, to_dict(ref)) == ref


# -- money: everything wrong at once -------------------------------------------------


def test_an_unknown_currency_does_not_hide_a_bad_amount() -> None:
    # Only the currency was reported before.
    assert errors_of(Money, {"amount": "abc", "currency": "ZZZ"}) == [
        ("amount", "invalid_amount"),
        ("currency", "unknown_currency"),
    ]
    assert errors_of(Money, {"amount": "abc", "currency": "ZZZ", "cents": 1}) == [
        ("cents", "unknown_field"),
        ("amount", "invalid_amount"),
        ("currency", "unknown_currency"),
    ]
    bad = {"amount": 1.5, "currency": "usd\u0307"}
    assert errors_of(LineItem, {"description": "x", "quantity": 1, "unit_amount": bad}) == [
        ("unit_amount.amount", "float_refused"),
        ("unit_amount.currency", "unknown_currency"),
    ]
    invoice = _invoice_plain()
    invoice["fees"][0]["amount"] = {"amount": "1_0", "currency": "ZZZ"}
    paths = [path for path, _ in errors_of(Invoice, invoice)]
    assert paths == ["fees[0].amount.amount", "fees[0].amount.currency"]


# -- reading is strict on every path -------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data.update(id=CustomerId(data["id"])),
        lambda data: data.update(partner_id=PartnerId(data["partner_id"])),
        lambda data: data.update(ein=EIN(data["ein"])),
        lambda data: data.update(billing_email=EmailAddress("ap@globex.example")),
        lambda data: data.update(tags=["tag_1", TagId("tag_2")]),
        lambda data: data["users"][0].update(id=UserId(data["users"][0]["id"])),
        lambda data: data["users"][1].update(email=EmailAddress(data["users"][1]["email"])),
    ],
    ids=["id", "partner_id", "ein", "billing_email", "tags", "users.id", "users.email"],
)
@pytest.mark.parametrize("every_key", [True, False], ids=["every key", "a default left out"])
def test_values_that_to_dict_never_writes_are_refused_on_every_path(
    data: dict[str, Any], damage: Any, every_key: bool
) -> None:
    # With every key there, the quick path took a CustomerId, an EIN or an
    # EmailAddress object that the converter (a key left out) refused.
    damage(data)
    if not every_key:
        del data["legal_name"]
    assert _quick_customer(data) is None
    with pytest.raises(ValidationError) as info:
        from_stored(Customer, data)
    assert info.value.codes == ["wrong_type"]
    assert info.value.errors == errors_in_full(Customer, data)


# -- card-fee rates: read as strictly as amounts, written in plain form -----------------


def look_alikes(text: str) -> list[object]:
    """The value objects equal to, or built from, ``text`` that to_dict
    never writes in its place: a Currency (which equals its code), an id, an
    email address, a Decimal."""
    found: list[object] = []
    for build in (Currency, EntityId.parse, EmailAddress, Decimal):
        with contextlib.suppress(ValidationError, ArithmeticError, ValueError):
            found.append(build(text))
    return found


def text_leaves(node: object, path: str = "") -> list[tuple[str, Any, Any]]:
    """Every string in ``node``: its path, the dict or list holding it, and its key."""
    items = node.items() if isinstance(node, dict) else enumerate(node)  # type: ignore[attr-defined]
    found: list[tuple[str, Any, Any]] = []
    for key, value in items:
        where = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}".lstrip(".")
        if isinstance(value, str):
            found.append((where, node, key))
        elif isinstance(value, dict | list):
            found.extend(text_leaves(value, where))
    return found


@pytest.mark.parametrize("cls", [Customer, Invoice, Payment, Partner], ids=_name)
@per_type
@given(data=st.data())
def test_an_object_where_to_dict_writes_text_is_refused_on_every_path(
    cls: type[Any], data: st.DataObject
) -> None:
    # The quick invoice path took a Currency for the invoice's currency (and
    # for its money's), and Money a Currency and a Decimal amount, which the
    # converter refuses at the invoice's own currency.
    plain = json.loads(json.dumps(to_dict(data.draw(st.from_type(cls)))))
    swaps = [
        (path, holder, key, obj)
        for path, holder, key in text_leaves(plain)
        for obj in look_alikes(holder[key])
    ]
    assume(swaps)
    path, holder, key, obj = data.draw(st.sampled_from(swaps))
    holder[key] = obj
    with pytest.raises(ValidationError) as info:
        from_stored(cls, plain)
    # wrong_type, or invalid_decimal for a rate (which reads no Decimal either)
    assert path in info.value.paths
    assert info.value.errors == errors_in_full(cls, plain)
    if cls is Invoice:
        assert read_with(from_dict_generically, cls, plain) == info.value.errors


def object_nodes(node: object, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every JSON object in ``node``, itself included, each with its path."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
    items = node.items() if isinstance(node, dict) else enumerate(node)  # type: ignore[attr-defined]
    for key, value in items:
        where = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}".lstrip(".")
        if isinstance(value, dict | list):
            found.extend(object_nodes(value, where))
    return found


@pytest.mark.parametrize("cls", [Customer, Invoice, Payment], ids=_name)
@per_type
@given(data=st.data())
def test_an_unknown_key_at_any_depth_is_refused_on_every_path(
    cls: type[Any], data: st.DataObject
) -> None:
    # The quick readers take exactly the keys to_dict writes, in every
    # object: one more is refused by them as by the generic hooks.
    written = json.loads(json.dumps(to_dict(data.draw(st.from_type(cls)))))
    for index in range(len(object_nodes(written))):
        plain = copy.deepcopy(written)
        path, node = object_nodes(plain)[index]
        node["unknown_"] = 1
        expected = errors_in_full(cls, plain)
        assert (f"{path}.unknown_".lstrip("."), "unknown_field") in [
            (e.path, e.code) for e in expected
        ]
        assert read_with(from_stored, cls, plain) == expected
        assert read_with(from_json, cls, json.dumps(plain)) == expected
        if cls is Invoice:
            assert read_with(from_dict_generically, cls, plain) == expected


def test_a_value_equal_to_a_kept_address_s_text_is_refused(data: dict[str, Any]) -> None:
    # Addresses read back are kept by their fields: a Currency, equal to its
    # code, found the address kept for that text.
    data["address"]["city"] = "CAD"
    assert from_stored(Customer, data).address.city == "CAD"
    data["address"]["city"] = Currency("CAD")
    with pytest.raises(ValidationError) as info:
        from_stored(Customer, data)
    assert (info.value.paths, info.value.codes) == (["address.city"], ["wrong_type"])
    assert info.value.errors == errors_in_full(Customer, data)


@pytest.mark.parametrize(
    ("amount", "currency", "errors"),
    [
        (Decimal("1.00"), "USD", [("amount", "wrong_type")]),
        ("1.00", Currency("USD"), [("currency", "wrong_type")]),
        (Decimal("1.00"), Currency("USD"), [("amount", "wrong_type"), ("currency", "wrong_type")]),
        (Decimal("1.001"), "ZZZ", [("amount", "wrong_type"), ("currency", "unknown_currency")]),
        ("abc", Currency("USD"), [("amount", "invalid_amount"), ("currency", "wrong_type")]),
    ],
)
def test_money_is_read_from_text_not_from_value_objects(
    amount: object, currency: object, errors: list[tuple[str, str]]
) -> None:
    assert errors_of(Money, {"amount": amount, "currency": currency}) == errors
    money = {"amount": amount, "currency": currency}
    line = {"description": "x", "quantity": 1, "unit_amount": money}
    assert errors_of(LineItem, line) == [(f"unit_amount.{p}", c) for p, c in errors]
    # A whole number is read as written by hand; it has no other form.
    assert from_dict(Money, {"amount": 1, "currency": "USD"}) == Money("1.00", "USD")


@st.composite
def rates(draw: st.DrawFn) -> Decimal:
    """A rate from 0 to 20 in any form a Decimal takes: an exponent, a
    negative zero, trailing zeros."""
    digits = draw(st.integers(0, 20_000))
    exponent = draw(st.integers(-12, 3))
    sign = draw(st.integers(0, 1)) if digits == 0 else 0
    rate = Decimal((sign, tuple(int(d) for d in str(digits)), exponent))
    if rate > 20:
        rate = Decimal((0, rate.as_tuple().digits[:1], 0))
    return rate


@example(rate=Decimal("1E+1"))
@example(rate=Decimal("-0"))
@example(rate=Decimal("1E-7"))
@given(rate=rates() | st.decimals(0, 20, places=3))
def test_a_card_fee_rate_is_written_in_plain_form_and_read_back_exactly(rate: Decimal) -> None:
    policy = CardFeePolicy(CardFeeBearer.CUSTOMER, rate, Money("0.30", "USD"))
    written = to_dict(policy)
    text = written["rate_percent"]
    # Plain, as money is written: no exponent, no negative zero.
    assert "E" not in text.upper()
    assert not text.startswith("-")
    assert Decimal(text) == rate
    back = from_dict(CardFeePolicy, written)
    assert back == policy
    assert back.rate_percent.as_tuple() == policy.rate_percent.as_tuple()
    assert to_dict(back) == written
    assert from_json(CardFeePolicy, to_json(policy)) == policy
    # What earlier versions wrote, str() of the rate as given, still reads.
    assert from_dict(CardFeePolicy, {**written, "rate_percent": str(rate)}) == policy
    assert from_dict(CardFeePolicy, {**written, "rate_percent": str(rate.normalize())}) == policy


@pytest.mark.parametrize(
    "text",
    [
        "\uff12",  # full-width 2
        "1_0",
        "\u0661",  # Arabic-Indic 1
        "2.9\u2003",  # an em space after it
        "NaN",
        "Infinity",
        "",
        "2,9",
    ],
)
def test_a_card_fee_rate_is_read_as_strictly_as_an_amount(text: str) -> None:
    # Decimal() alone read "\uff12" as 2 and "1_0" as 10.
    written = to_dict(CardFeePolicy.default("USD"))
    assert errors_of(CardFeePolicy, {**written, "rate_percent": text}) == [
        ("rate_percent", "invalid_decimal")
    ]
    with pytest.raises(ValidationError) as info:
        Money("1", "USD", rounding=None).percent(text)
    assert info.value.codes == ["invalid_amount"]


def test_a_card_fee_rate_read_as_a_float_is_refused_as_a_float() -> None:
    # The same code as the constructor gives, as docs/errors.md says.
    written = to_dict(CardFeePolicy.default("USD"))
    assert errors_of(CardFeePolicy, {**written, "rate_percent": 2.9}) == [
        ("rate_percent", "float_refused")
    ]
    with pytest.raises(ValidationError) as info:
        attrs.evolve(CardFeePolicy.default("USD"), rate_percent=2.9)
    assert info.value.codes == ["float_refused"]


_ENUMS = sorted(
    (
        value
        for value in (getattr(altpay_core, name) for name in altpay_core.__all__)
        if isinstance(value, type) and issubclass(value, enum.Enum)
    ),
    key=lambda cls: cls.__name__,
)


@pytest.mark.parametrize("cls", _ENUMS, ids=lambda cls: cls.__name__)
def test_every_enumeration_is_written_as_its_plain_value(cls: type[enum.Enum]) -> None:
    # A StrEnum is a str too: it came back as itself, not plain data.
    for member in cls:
        data = to_dict(member)
        assert type(data) is type(member.value)
        assert data == member.value
        assert from_dict(cls, data) is member


# -- the stack or the memory running out ----------------------------------------------------


def _frames() -> int:
    frame, count = sys._getframe(), 0
    while frame is not None:
        count, frame = count + 1, frame.f_back
    return count


def _read_near_the_limit(read: Callable[[], object], headroom: int) -> object:
    """What ``read`` gives with only ``headroom`` frames left."""
    old = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(_frames() + headroom)
    except RecursionError:  # below the depth already reached
        return RecursionError
    try:
        return read()
    except RecursionError:
        return RecursionError
    except ValidationError as error:
        return error
    finally:
        sys.setrecursionlimit(old)


class TestTheStackRunningOut:
    """A valid document read where little stack is left is read, or the
    RecursionError is raised as it is: never reported as invalid data."""

    def test_valid_documents_are_never_called_invalid(self, customer: Customer) -> None:
        c = customer
        partner = Partner.create(name="Northwind IT", country="US")
        for value in (c, partner, Money("12.50", "USD")):
            kind, data, text = type(value), to_dict(value), to_json(value)
            reads: list[Callable[[], object]] = [
                lambda kind=kind, data=data: from_dict(kind, data),
                lambda kind=kind, text=text: from_json(kind, text),
                lambda kind=kind, data=data: from_stored(kind, data),
            ]
            for read in reads:
                for headroom in range(5, 80):
                    found = _read_near_the_limit(read, headroom)
                    assert found == value or found is RecursionError, (headroom, found)

    @pytest.mark.parametrize("exhausted", [RecursionError, MemoryError])
    def test_a_constructor_running_out_is_not_invalid_data(
        self, exhausted: type[BaseException]
    ) -> None:
        @attrs.frozen
        class Runaway:
            x: int

            def __attrs_post_init__(self) -> None:
                raise exhausted

        for kind, data in (
            (Runaway, {"x": 1}),
            (list[Runaway], [{"x": 1}]),
            (dict[str, Runaway], {"a": {"x": 1}}),
        ):
            with pytest.raises(exhausted):
                from_dict(kind, data)
        # With another error beside it, in the same object.
        with pytest.raises(exhausted):
            from_dict(Runaway, {"x": 1, "y": 2})


# -- edges that mutation testing showed untested -------------------------------------


@pytest.mark.parametrize("key", ["x", "amounts", "Currency", ""])
def test_money_with_any_key_beside_amount_and_currency_is_an_unknown_field(key: str) -> None:
    data = {"amount": "1.00", "currency": "USD", key: "1"}
    assert errors_of(Money, data) == [(key, "unknown_field")]


def test_a_decimal_amount_money_also_refuses_is_reported_once() -> None:
    # Money refuses 1.001 USD at the amount too: one error at the amount.
    data = {"amount": Decimal("1.001"), "currency": "USD"}
    assert errors_of(Money, data) == [("amount", "wrong_type")]


@pytest.mark.parametrize(
    ("number", "written"),
    [
        (Decimal("1E+1100"), "1" + "0" * 1100),
        (Decimal("1E-1100"), "0." + "0" * 1099 + "1"),
        (Decimal("1E+1101"), "1E+1101"),
        (Decimal("1E-1101"), "1E-1101"),
    ],
)
def test_a_decimal_is_written_plain_up_to_the_limit_of_digits_and_no_further(
    number: Decimal, written: str
) -> None:
    assert to_dict(number) == written
    assert from_dict(Decimal, written) == number


class _Text(str):
    __slots__ = ()


class _Whole(int):
    pass


class _Real(float):
    pass


@pytest.mark.parametrize(
    ("kind", "value"), [(str, _Text("abc")), (int, _Whole(3)), (float, _Real(1.5))]
)
def test_a_subclass_of_a_plain_type_is_read_as_the_plain_type(kind: type, value: object) -> None:
    read = from_dict(kind, value)
    assert type(read) is kind
    assert read == value


def test_errors_in_a_set_are_named_by_index_in_a_stable_order_not_the_set_s() -> None:
    # The items sorted by their type's name, then repr: the bool, then the
    # float, then the int, whatever order the set itself iterates in.
    assert errors_of(frozenset[Decimal], {9, 10.5, True}) == [
        ("[0]", "invalid_decimal"),
        ("[1]", "float_refused"),
    ]
    # An item whose repr raises is placed by its type's name alone.
    assert errors_of(frozenset[Decimal], {_NoRepr(), 10.5}) == [
        ("[0]", "float_refused"),
        ("[1]", "invalid_decimal"),
    ]


class _NoRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32", "utf-16-be", "utf-32-le"])
def test_parse_json_reads_bytes_in_each_encoding_json_loads_reads(encoding: str) -> None:
    document = '{"city": "Zürich", "n": [1, 2]}'
    assert parse_json(document.encode(encoding)) == {"city": "Zürich", "n": [1, 2]}


def test_a_key_given_three_times_is_one_duplicate_key_error() -> None:
    text = '{"amount": "1.00", "amount": "2.00", "amount": "3.00", "currency": "USD"}'
    assert errors_of_json(Money, text) == [("amount", "duplicate_key")]


def test_the_fast_converter_reports_only_the_keys_truly_left_out(
    data: dict[str, Any],
) -> None:
    converter = make_converter()
    data["extra"] = 1
    with pytest.raises(ValidationError) as info:
        converter.structure(data, Customer)
    assert (info.value.paths, info.value.codes) == (["extra"], ["unknown_field"])
    del data["version"]
    with pytest.raises(ValidationError) as info:
        converter.structure(data, Customer)
    assert (info.value.paths, info.value.codes) == (
        ["extra", "version"],
        ["unknown_field", "missing"],
    )


def test_a_union_of_several_types_with_none_is_not_read_as_its_first_type() -> None:
    # Only X | None is read as an optional X: int | str | None is no type
    # the converter reads, never "an int or None".
    for value in ("x", 3, None):
        assert errors_of(int | str | None, value) == [("", "unsupported_type")]
    # Nor is a union of two types without None; a generic type with None
    # among its two arguments, or X | None itself, is read as it says.
    for value in ("x", 3):
        assert errors_of(int | str, value) == [("", "unsupported_type")]
    assert from_dict(dict[str, None], {"a": None}) == {"a": None}
    assert from_dict(tuple[int, None], [1, None]) == (1, None)
    assert (from_dict(int | None, None), from_dict(int | None, 3)) == (None, 3)


def test_a_wrong_topic_names_only_the_topics_of_the_class_read() -> None:
    with pytest.raises(ValidationError) as info:
        from_dict(CustomerCreated, {"topic": "nope"})
    (error, *_) = info.value.errors
    assert (error.path, error.code) == ("topic", "invalid_choice")
    assert error.message == "'topic' must be one of customer_created (got 'nope')"
