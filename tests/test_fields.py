"""The small parsers that constructors share (altpay_core._fields)."""

from __future__ import annotations

import datetime as dt
import enum

import pytest

from altpay_core import _fields
from altpay_core.errors import ValidationError


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
