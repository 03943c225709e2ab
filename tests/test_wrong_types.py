"""Arguments of the wrong type to the library's error values themselves and
to the ports' small values (a page, an outbox message): a ValidationError
naming the argument, never a TypeError, nor a value that breaks later
(``.paths``, ``hash``, ``to_dict``) or does not read back. Every other entry
point is tested in its own module's test file."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from altpay_core import FieldError, PartnerId, ValidationError, events, from_dict, ports, to_dict

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


PAGE = {
    "items": (),
    "start_cursor": None,
    "end_cursor": None,
    "has_next_page": False,
    "has_previous_page": False,
}


@pytest.mark.parametrize(
    ("field", "junk"),
    [
        ("items", [1]),
        ("items", None),
        ("start_cursor", 1),
        ("end_cursor", b"c"),
        ("has_next_page", "x"),
        ("has_previous_page", None),
        ("has_next_page", 1),
    ],
)
def test_a_page_names_a_field_of_the_wrong_type(field: str, junk: object) -> None:
    # Accepted before: the page then failed to hash or to serialize.
    with pytest.raises(ValidationError) as info:
        ports.Page(**{**PAGE, field: junk})
    assert (info.value.paths, info.value.codes) == ([field], ["wrong_type"])


def test_a_page_needs_only_its_items() -> None:
    # Optional fields default to None (DESIGN), the page's flags to False:
    # a page built from its items alone is the whole listing.
    page = ports.Page((1, 2))
    assert (page.start_cursor, page.end_cursor) == (None, None)
    assert (page.has_next_page, page.has_previous_page) == (False, False)
    assert ports.Page((1,), "a", "b", True, False).has_next_page
    with pytest.raises(ValidationError) as info:
        ports.Page()  # type: ignore[call-arg]
    assert (info.value.paths, info.value.codes) == (["items"], ["missing"])


@pytest.mark.parametrize(
    ("position", "event", "errors"),
    [
        (None, None, [("position", "invalid_position"), ("event", "wrong_type")]),
        (0, "EVENT", [("position", "invalid_position")]),
        (True, "EVENT", [("position", "invalid_position")]),
        (1, [], [("event", "wrong_type")]),
    ],
)
def test_an_outbox_message_names_what_is_wrong(
    position: object, event: object, errors: list[tuple[str, str]]
) -> None:
    real = events.CustomerCreated(partner_id=PartnerId.new(), aggregate_id="cus_1")
    with pytest.raises(ValidationError) as info:
        ports.OutboxMessage(position, real if event == "EVENT" else event)  # type: ignore[arg-type]
    assert list(zip(info.value.paths, info.value.codes, strict=True)) == errors
    assert ports.OutboxMessage(1, real).event is real
