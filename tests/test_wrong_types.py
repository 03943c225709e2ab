"""Arguments of the wrong type to the library's error values themselves: a
ValidationError naming the argument, never a TypeError, nor an error that
breaks later (``.paths``) or does not read back. Every other entry point is
tested in its own module's test file."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from altpay_core import FieldError, ValidationError, from_dict, ports, to_dict

CITY = FieldError("city", "blank", "'city' must not be blank")


@pytest.mark.parametrize("junk", [None, 3, b"city", ["city"]])
@pytest.mark.parametrize("part", ["path", "code", "message"])
def test_a_field_error_names_a_part_that_is_not_text(part: str, junk: object) -> None:
    # Kept as given before: it printed, but to_dict gave what from_dict refused.
    parts = {"path": "city", "code": "blank", "message": "m", part: junk}
    with pytest.raises(ValidationError) as info:
        FieldError(**parts)  # type: ignore[arg-type]
    assert (info.value.paths, info.value.codes) == ([part], ["wrong_type"])


@given(st.builds(FieldError, st.text(), st.text(), st.text()))
def test_every_field_error_reads_back(error: FieldError) -> None:
    assert from_dict(FieldError, to_dict(error)) == error


@pytest.mark.parametrize(
    "errors",
    [None, 0, "city: blank", b"city", [None], [CITY, "city"], {"city": CITY}],
    ids=["None", "int", "str", "bytes", "[None]", "[error, str]", "mapping"],
)
def test_a_validation_error_names_errors_that_are_not_field_errors(errors: object) -> None:
    # A TypeError from list() before, or (text, a list of anything) an error
    # whose .paths and .codes raised AttributeError later.
    with pytest.raises(ValidationError) as info:
        ValidationError(errors)  # type: ignore[arg-type]
    assert (info.value.paths, info.value.codes) == (["errors"], ["wrong_type"])


def test_a_validation_error_needs_at_least_one_field_error() -> None:
    # Still a ValueError, as before, and now also the library's own error.
    with pytest.raises(ValidationError) as info:
        ValidationError([])
    assert isinstance(info.value, ValueError)
    assert (info.value.paths, info.value.codes) == (["errors"], ["empty"])


@pytest.mark.parametrize(
    ("helper", "path"),
    [
        (ports.customer_sort_key, "customer"),
        (ports.customer_cursor, "customer"),
        (ports.invoice_sort_key, "invoice"),
        (ports.invoice_cursor, "invoice"),
    ],
)
@pytest.mark.parametrize("wrong", [None, "cus_1", object()])
def test_the_ports_order_helpers_name_what_is_not_an_aggregate(
    helper: Any, path: str, wrong: object
) -> None:
    # For adapters: an AttributeError escaped before.
    with pytest.raises(ValidationError) as info:
        helper(wrong)
    assert (info.value.paths, info.value.codes) == ([path], ["wrong_type"])
