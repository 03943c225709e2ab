"""The constructors' quick checks agree with their detailed ones.

Invoices, their lines, fees and applied payments, payments and their
allocations first try a quick check: every field already of
exactly its type and form. Only when it fails do they run the detailed
checks, which report each invalid field. The quick check must never pass
what the detailed checks would refuse: these tests build values with junk in
their fields, bypassing the constructor, and check just that.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from altpay_core import (
    AppliedPayment,
    Currency,
    Fee,
    FeeKind,
    Invoice,
    InvoiceStatus,
    LineItem,
    Money,
    PaymentId,
)
from altpay_core.payment import Allocation, Payment
from altpay_core.values import InvoiceId, TeamMemberId


class Text(str):
    """A str subclass: the quick checks want exactly str."""


NEAR_MISSES: list[object] = [
    None,
    "",
    "  ",
    " padded ",
    Text("text"),
    "x" * 2001,
    0,
    -1,
    1,
    1_000_001,
    True,
    1.5,
    Decimal("1"),
    Money("-1.00", "USD"),
    Money("0.00", "USD"),
    Money("1.00", "USD"),
    Money("1.00", "CAD"),
    [],
    (),
    "USD",
    Currency("CAD"),
    dt.date(2026, 1, 1),
    dt.datetime(2026, 1, 1),
    dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    "card",
    FeeKind.CARD,
    InvoiceStatus.PAID,
    "open",
    PaymentId("pay_1"),
    InvoiceId("inv_1"),
    TeamMemberId("tm_1"),
    LineItem("Support", 1, Money("1.00", "CAD")),
    Fee.new(FeeKind.LATE_PAYMENT, Money("1.00", "CAD")),
    AppliedPayment(PaymentId("pay_2"), Money("1.00", "CAD")),
    Allocation(InvoiceId("inv_2"), Money("1.00", "CAD"), Money("0.00", "CAD")),
]


def rebuilt(value: Any, changes: dict[str, object]) -> Any:
    """``value`` with ``changes``, set without its constructor."""
    new = object.__new__(type(value))
    for field in attrs.fields(type(value)):
        object.__setattr__(new, field.name, changes.get(field.name, getattr(value, field.name)))
    return new


def assert_quick_check_agrees(value: Any) -> None:
    """``value`` (built by its constructor) passes the quick check; and with
    any one of its fields replaced by a near miss, another field's value or
    a list of wrong items, it passes the quick check only if the detailed
    checks find nothing."""
    assert value._fields_kept(), "a value built by its constructor fails the quick check"
    names = [field.name for field in attrs.fields(type(value)) if field.init]
    own = [getattr(value, name) for name in names]
    items = [item for field in own if isinstance(field, tuple) for item in field]
    for name in names:
        current = getattr(value, name)
        options = [*NEAR_MISSES, *own]
        if isinstance(current, tuple):
            options += [list(current), *(((*current, x)) for x in [*NEAR_MISSES, *items])]
        for option in options:
            damaged = rebuilt(value, {name: option})
            if damaged._fields_kept():
                damaged._check_each_field()  # finds nothing: the quick check was right


@given(st.from_type(LineItem))
def test_line_items_quick_check(value: LineItem) -> None:
    assert_quick_check_agrees(value)


@given(st.from_type(Fee))
def test_fees_quick_check(value: Fee) -> None:
    assert_quick_check_agrees(value)


@given(st.from_type(AppliedPayment))
def test_applied_payments_quick_check(value: AppliedPayment) -> None:
    assert_quick_check_agrees(value)


# Each example tries every field with every near miss: fewer examples do.
many_checks = settings(max_examples=max(10, settings.default.max_examples // 4))


@many_checks
@given(st.from_type(Invoice))
def test_invoices_quick_check(value: Invoice) -> None:
    assert_quick_check_agrees(value)


@given(st.from_type(Allocation))
def test_allocations_quick_check(value: Allocation) -> None:
    assert_quick_check_agrees(value)


@many_checks
@given(st.from_type(Payment))
def test_payments_quick_check(value: Payment) -> None:
    assert_quick_check_agrees(value)
