"""How the public API reads to a type checker in a user's code.

Not a test module: ``mypy`` (``scripts/check``) checks it, with the package,
under ``--strict``. Each ``assert_type`` fails the check if a call's type is
less precise than what it returns (an ``EntityId`` where a ``CustomerId`` is
returned, say).
"""

from __future__ import annotations

from decimal import Decimal
from types import NotImplementedType
from typing import Annotated, NewType, assert_type

from hypothesis import strategies as st

import altpay_core
from altpay_core import (
    Customer,
    CustomerId,
    CustomerUpdated,
    CustomerUser,
    EntityId,
    Invoice,
    InvoiceId,
    InvoicePaid,
    LineItem,
    Money,
    TagId,
    from_dict,
    from_json,
    ports,
)
from altpay_core.errors import FieldErrors
from altpay_core.events import Event
from altpay_core.testing import strategies as aps


def ids(text: str) -> None:
    assert_type(CustomerId.parse(text), CustomerId)
    assert_type(EntityId.parse(text), EntityId)
    assert_type(CustomerId.new(), CustomerId)


def strategies() -> None:
    assert_type(aps.entity_ids(InvoiceId), st.SearchStrategy[InvoiceId])
    assert_type(aps.entity_ids(EntityId), st.SearchStrategy[EntityId])
    assert_type(aps.events(InvoicePaid), st.SearchStrategy[InvoicePaid])
    assert_type(aps.events(), st.SearchStrategy[Event])
    assert_type(aps.events(None), st.SearchStrategy[Event])


def reading(data: dict[str, object], text: str) -> None:
    assert_type(from_dict(Customer, data), Customer)
    assert_type(from_json(Invoice, text), Invoice)
    assert_type(Money("1.00", "USD") + Money("2.00", "USD"), Money)


def misspelled() -> None:
    # The package reads its version lazily, but a misspelled name is not
    # taken for one of its attributes.
    assert_type(altpay_core.__version__, str)
    altpay_core.Custmer  # type: ignore[attr-defined]
    from altpay_core import Custmer  # type: ignore[attr-defined]  # noqa: F401


def refused_money_operators(money: Money) -> None:
    # Money is combined with money only: a number on the left is flagged, as
    # it is on the right.
    money + 1  # type: ignore[operator]
    1 + money  # type: ignore[operator]
    1 - money  # type: ignore[operator]
    Decimal(1) + money  # type: ignore[operator]
    sum([money, money])  # type: ignore[list-item]
    assert_type(Money.sum([money, money], "USD"), Money)
    # Nor is it an integer.
    range(money)  # type: ignore[call-overload]


def parse_count(value: object) -> int:
    return int(str(value))


def field_errors(raw: object) -> int | None:
    # check returns what the parse returns, or None for a failure; the
    # parse's arguments are checked.
    found = FieldErrors()
    count = found.check("seats", parse_count, raw)
    assert_type(count, int | None)
    found.check("seats", parse_count, raw, extra=1)  # type: ignore[call-arg]
    found.check("seats", parse_count)  # type: ignore[call-arg]
    found.raise_if_any()
    return count


def kit_registry() -> None:
    # A class's strategy is of that class; one of another class is flagged.
    aps.register(Customer, aps.customers)
    aps.register(Customer, aps.invoices)  # type: ignore[arg-type]
    assert_type(aps.for_type(Customer), st.SearchStrategy[Customer] | NotImplementedType)


Amount = NewType("Amount", Money)


def reading_type_forms(data: dict[str, object], text: str) -> None:
    # The forms from_dict reads besides a class type-check too (as Any, until
    # Python can say "a type form"); a class still gives its own type.
    maybe: Money | None = from_dict(Money | None, None)
    noted: Money = from_dict(Annotated[Money, "note"], data)
    amount: Amount = from_dict(Amount, data)
    chosen: Customer | None = from_json(Customer | None, text)
    assert_type(from_dict(Money, data), Money)
    assert_type(from_json(Money, text), Money)
    del maybe, noted, amount, chosen


def constructors(customer: Customer, users: list[CustomerUser], tag: TagId) -> None:
    # A field given as a list (or a set of tags) type-checks, and a value the
    # constructor refuses is flagged: the converters are typed.
    details = (customer.id, customer.partner_id, customer.company, customer.address)
    id_, partner_id, company, address = details
    Customer(
        id=id_, partner_id=partner_id, company=company, address=address, users=users, tags={tag}
    )
    Customer(id=id_, partner_id=partner_id, company=company, address=address, users=42)  # type: ignore[arg-type]
    Customer(
        id=id_,
        partner_id=partner_id,
        company=company,
        address=address,
        users=users,
        tags="tag_a",  # type: ignore[arg-type]
    )
    CustomerUpdated(partner_id=partner_id, aggregate_id="cus_1", changes=["company"])
    CustomerUpdated(partner_id=partner_id, aggregate_id="cus_1", changes="company")  # type: ignore[arg-type]
    LineItem(description=5, quantity=1, unit_amount=Money("1.00", "USD"))  # type: ignore[arg-type]


def page_sizes() -> None:
    # The page sizes are constants.
    assert ports.DEFAULT_PAGE_SIZE <= ports.MAX_PAGE_SIZE
    ports.DEFAULT_PAGE_SIZE = 10  # type: ignore[misc]
