"""The small parsers that constructors share (altpay_core._fields)."""

from __future__ import annotations

import datetime as dt
import enum

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import altpay_core
from altpay_core import (
    Address,
    Customer,
    CustomerDraft,
    ExternalRef,
    Partner,
    PartnerId,
    _fields,
    from_json,
    to_json,
)
from altpay_core.errors import ValidationError

ALBANY = {
    "line1": "1 Main St",
    "city": "Albany",
    "region": "NY",
    "postal_code": "12207",
    "country": "US",
}


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


def error_of(parse: object, *args: object, **kwargs: object) -> tuple[str, str, str]:
    with pytest.raises(ValidationError) as info:
        parse(*args, **kwargs)  # type: ignore[operator]
    [error] = info.value.errors
    return error.path, error.code, error.message


def test_required_text() -> None:
    assert _fields.required_text("company", "  Globex ") == "Globex"
    assert error_of(_fields.required_text, "company", 5) == (
        "company",
        "wrong_type",
        "'company' must be a string (got int)",
    )
    assert error_of(_fields.required_text, "company", " \t") == (
        "company",
        "blank",
        "'company' must not be blank",
    )
    assert error_of(_fields.required_text, "company", "x" * 5, max_length=4) == (
        "company",
        "too_long",
        "'company' must be at most 4 characters (got 5)",
    )


def test_optional_text() -> None:
    assert _fields.optional_text("legal_name", None) is None
    assert _fields.optional_text("legal_name", "  ") is None
    assert _fields.optional_text("legal_name", " Globex Inc. ") == "Globex Inc."
    assert error_of(_fields.optional_text, "legal_name", 5)[1] == "wrong_type"


def test_aware_datetime() -> None:
    toronto = dt.timezone(dt.timedelta(hours=-5))
    moment = _fields.aware_datetime("at", dt.datetime(2026, 1, 31, 4, 30, tzinfo=toronto))
    assert moment == dt.datetime(2026, 1, 31, 9, 30, tzinfo=dt.UTC)
    assert moment.tzinfo is dt.UTC
    assert error_of(_fields.aware_datetime, "at", dt.datetime(2026, 1, 31))[:2] == (
        "at",
        "invalid_datetime",
    )
    assert error_of(_fields.aware_datetime, "at", "2026-01-31")[1] == "invalid_datetime"


class _NoOffset(dt.tzinfo):
    """A tzinfo that gives no offset: by Python's rules, a naive time."""

    def utcoffset(self, when: dt.datetime | None) -> None:
        return None

    def dst(self, when: dt.datetime | None) -> None:
        return None

    def tzname(self, when: dt.datetime | None) -> str:
        return "none"


NO_OFFSET = dt.datetime(2026, 1, 5, 12, tzinfo=_NoOffset())
# Within a day of datetime.min and .max, with an offset: no such time in UTC.
FIRST_DAY = dt.datetime.min.replace(tzinfo=dt.timezone(dt.timedelta(hours=5)))
LAST_DAY = dt.datetime.max.replace(tzinfo=dt.timezone(-dt.timedelta(hours=5)))
NOT_IN_UTC = [
    pytest.param(NO_OFFSET, id="no-offset"),
    pytest.param(FIRST_DAY, id="first-day"),
    pytest.param(LAST_DAY, id="last-day"),
]


@pytest.mark.parametrize("when", NOT_IN_UTC)
def test_a_time_with_no_utc_equivalent_is_refused(when: dt.datetime) -> None:
    # OverflowError escaped from astimezone at the edges; a tzinfo with no
    # offset was read as the machine's local time.
    assert error_of(_fields.aware_datetime, "at", when)[:2] == ("at", "invalid_datetime")


class _OffsetOf(dt.tzinfo):
    """A tzinfo of a caller's own, whose offset may be any value at all."""

    def __init__(self, offset: object) -> None:
        self.offset = offset

    def utcoffset(self, when: dt.datetime | None) -> object:  # type: ignore[override]
        return self.offset

    def dst(self, when: dt.datetime | None) -> None:
        return None


_OFFSETS_PYTHON_REFUSES = st.one_of(
    st.timedeltas(min_value=dt.timedelta(days=1)),
    st.timedeltas(max_value=-dt.timedelta(days=1)),
    st.integers(),
    st.floats(),
    st.text(max_size=5),
)


@given(offset=_OFFSETS_PYTHON_REFUSES)
def test_a_tzinfo_whose_offset_python_refuses_is_an_invalid_datetime(offset: object) -> None:
    # Python's ValueError (an offset of a day or more) or TypeError (an
    # offset that is no timedelta) escaped from utcoffset() and astimezone().
    when = dt.datetime(2026, 1, 5, 12, tzinfo=_OffsetOf(offset))
    path, code, message = error_of(_fields.aware_datetime, "at", when)
    assert (path, code) == ("at", "invalid_datetime")
    assert message.startswith("'at' must be a timezone-aware datetime")


_OFFSETS = st.timedeltas(
    min_value=-dt.timedelta(hours=23, minutes=59), max_value=dt.timedelta(hours=23, minutes=59)
).map(dt.timezone)


def _exists_in_utc(naive: dt.datetime, zone: dt.timezone) -> bool:
    try:
        naive - zone.utcoffset(None)  # the same time in UTC, naive
    except OverflowError:
        return False
    return True


@given(naive=st.datetimes(), zone=_OFFSETS)
def test_an_aware_datetime_is_read_in_utc_or_named(naive: dt.datetime, zone: dt.timezone) -> None:
    when = naive.replace(tzinfo=zone)
    if _exists_in_utc(naive, zone):
        moment = _fields.aware_datetime("at", when)
        assert moment == when
        assert moment.tzinfo is dt.UTC
    else:
        assert error_of(_fields.aware_datetime, "at", when)[:2] == ("at", "invalid_datetime")


_TIMED = [
    ("Partner", "created_at"),
    ("Customer", "created_at"),
    ("CustomerDraft", "started_at"),
    ("AccessRequest", "requested_at"),
    ("AccessRequest", "resolved_at"),
    ("Invoice", "created_at"),
    ("Payment", "created_at"),
    ("Payment", "succeeded_at"),
    ("Payment", "settled_at"),
    ("PaymentMethod", "added_at"),
    ("ScheduledPayment", "created_at"),
    ("CustomerCreated", "occurred_at"),
]


@pytest.mark.parametrize("when", NOT_IN_UTC)
@pytest.mark.parametrize(("kind", "field"), _TIMED)
@settings(max_examples=10)  # which value it is matters little; the time is the case
@given(data=st.data())
def test_every_time_of_every_aggregate_is_one_in_utc(
    data: st.DataObject, kind: str, field: str, when: dt.datetime
) -> None:
    # Before: an OverflowError escaped, or the time was kept as given (invoices
    # and payments) and the value no longer read back from to_dict.
    value = data.draw(st.from_type(getattr(altpay_core, kind)))
    with pytest.raises(ValidationError) as info:
        attrs.evolve(value, **{field: when})
    assert (info.value.paths, info.value.codes) == ([field], ["invalid_datetime"])


def test_plain_date() -> None:
    assert _fields.plain_date("due", dt.date(2026, 1, 31)) == dt.date(2026, 1, 31)
    now = dt.datetime(2026, 1, 31, tzinfo=dt.UTC)
    assert error_of(_fields.plain_date, "due", now)[:2] == ("due", "invalid_date")
    assert error_of(_fields.plain_date, "due", "2026-01-31")[1] == "invalid_date"


@pytest.mark.parametrize("value", [0, 7])
def test_version_number(value: int) -> None:
    assert _fields.version_number("version", value) == value


@pytest.mark.parametrize("value", [-1, True, 1.0, "1", None])
def test_bad_version_number(value: object) -> None:
    assert error_of(_fields.version_number, "version", value)[:2] == (
        "version",
        "invalid_version",
    )


def test_choice() -> None:
    assert _fields.choice("colour", "red", Colour) is Colour.RED
    assert _fields.choice("colour", Colour.BLUE, Colour) is Colour.BLUE
    assert error_of(_fields.choice, "colour", "green", Colour) == (
        "colour",
        "invalid_choice",
        "'colour' must be one of 'red', 'blue' (got 'green')",
    )


def test_as_tuple() -> None:
    assert _fields.as_tuple("users", [1, 2]) == (1, 2)
    assert _fields.as_tuple("users", (1,)) == (1,)
    assert error_of(_fields.as_tuple, "users", "ab") == (
        "users",
        "wrong_type",
        "'users' must be a list (got str)",
    )


# What no store holds: a lone surrogate (what json.loads makes of "\ud800";
# UTF-8 has none) or a NUL character (PostgreSQL's text has none).
UNSTORABLE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF) | st.just("\x00")


@given(
    before=st.text(max_size=5),
    surrogate=UNSTORABLE,
    after=st.text(max_size=5),
)
def test_text_with_a_nul_or_a_lone_surrogate_is_no_text(
    before: str, surrogate: str, after: str
) -> None:
    # No store holds it (see UNSTORABLE).
    text = f"x{before}{surrogate}{after}x"
    assert not _fields.valid_unicode(text)
    assert error_of(_fields.required_text, "company", text)[:2] == ("company", "invalid_text")
    assert error_of(_fields.query_text, "number", text)[:2] == ("number", "invalid_text")


@given(
    before=st.text(max_size=5),
    surrogate=UNSTORABLE,
    after=st.text(max_size=5),
    field=st.sampled_from(["line1", "line2", "city"]),
)
def test_an_address_line_with_text_no_store_holds_is_refused(
    before: str, surrogate: str, after: str, field: str
) -> None:
    # Kept before: the memory store took it, the SQL stores refused it
    # with no path.
    fields = {**ALBANY, field: f"x{before}{surrogate}{after}x"}
    with pytest.raises(ValidationError) as info:
        Address.from_mapping(fields)
    assert (info.value.paths, info.value.codes) == ([field], ["invalid_text"])


@given(
    surrogate=UNSTORABLE,
    field=st.sampled_from(["system", "id"]),
)
def test_an_external_ref_with_text_no_store_holds_is_refused(surrogate: str, field: str) -> None:
    parts = {"system": "connectwise", "id": "4711", field: f"x{surrogate}"}
    with pytest.raises(ValidationError) as info:
        ExternalRef(**parts)
    assert (info.value.paths, info.value.codes) == ([field], ["invalid_text"])


@given(text=st.text())
def test_any_other_text_is_text(text: str) -> None:
    storable = "\x00" not in text and text.encode("utf-8", "surrogatepass").decode() == text
    assert _fields.valid_unicode(text) == storable
    if _fields.valid_unicode(text):
        assert _fields.query_text("number", text) == text


def test_a_customer_read_from_json_with_a_lone_surrogate_is_refused() -> None:
    partner = Partner.create(name="Northwind IT", country="US")
    draft = CustomerDraft.start(partner).enter_details(
        company="Globex",
        address={
            "line1": "1 Main St",
            "city": "Albany",
            "region": "NY",
            "postal_code": "12207",
            "country": "US",
        },
    )
    customer = draft.add_user(first_name="Ann", last_name="Lee", email="ann@x.example").create()
    text = to_json(customer).replace('"Globex"', '"Glo\\ud800bex"')
    with pytest.raises(ValidationError) as info:
        from_json(Customer, text)
    assert (info.value.paths, info.value.codes) == (["company"], ["invalid_text"])


def test_argument_and_entity_id() -> None:
    assert _fields.argument("partner", 5, int, "a number") == 5
    assert _fields.class_label(Partner) == "a Partner"
    assert _fields.class_label(ExternalRef) == "an ExternalRef"
    assert error_of(_fields.argument, "partner", None, Partner, "a Partner") == (
        "partner",
        "wrong_type",
        "'partner' must be a Partner (got NoneType)",
    )
    partner_id = PartnerId.new()
    assert _fields.entity_id("partner_id", partner_id, PartnerId) is partner_id
    assert _fields.entity_id("partner_id", str(partner_id), PartnerId) == partner_id
    assert error_of(_fields.entity_id, "partner_id", None, PartnerId)[:2] == (
        "partner_id",
        "invalid_id",
    )
    # The message names the kind with its article: "a partner id", "an invoice id".
    for kind, article in (
        (PartnerId, "a"),
        (altpay_core.UserId, "a"),
        (altpay_core.InvoiceId, "an"),
        (altpay_core.AccessRequestId, "an"),
    ):
        message = error_of(_fields.entity_id, "id", "x", kind)[2]
        assert f" ({article} {kind.label}) (got 'x')" in message


class _Moment(dt.datetime):
    """A datetime whose own comparisons are not the calendar's."""

    def __lt__(self, other: object) -> bool:
        return False


@pytest.mark.parametrize("zone", [dt.UTC, dt.timezone(dt.timedelta(hours=2))])
def test_an_aware_datetime_of_a_subclass_is_kept_as_a_plain_datetime(zone: dt.tzinfo) -> None:
    kept = _fields.aware_datetime("at", _Moment(2026, 1, 5, 12, tzinfo=zone))
    assert type(kept) is dt.datetime
    assert kept == dt.datetime(2026, 1, 5, 12, tzinfo=zone)
    assert kept.tzinfo is dt.UTC
