"""The times every aggregate and event keeps: in UTC, whatever offset they
were given at, so that they are written as the same text before and after a
round trip, and every store reads back what another does; and the times the
clock gives, never before the times already kept (a request is resolved no
earlier than it was made, a customer's events stay oldest first)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from altpay_core import (
    AccessRequest,
    Customer,
    CustomerDraft,
    CustomerPaymentMethods,
    Invoice,
    Partner,
    PaymentStatus,
    Role,
    from_dict,
    pay_invoices,
    schedule_payment,
    to_dict,
)
from altpay_core import customer as customer_module
from altpay_core.adapters.memory import MemoryStore
from altpay_core.adapters.sqlite import SqliteStore
from altpay_core.errors import InvariantViolation
from altpay_core.events import CustomerUpdated, InvoiceUpdated
from altpay_core.ports import UnitOfWork

TODAY = dt.date(2026, 1, 5)
ALBANY = {
    "line1": "1 Main St",
    "city": "Albany",
    "region": "NY",
    "postal_code": "12207",
    "country": "US",
}

PARTNER = Partner.create(name="Northwind IT", country="US").add_team_member(
    name="Mo Member", email="mo@northwind.example", role=Role.ADMIN
)
MO = PARTNER.team[0]
DRAFT = (
    CustomerDraft.start(PARTNER)
    .enter_details(company="Globex", address=ALBANY)
    .add_user(first_name="Ann", last_name="Lee", email="ann@globex.example")
)
CUSTOMER = DRAFT.create()
ANN = CUSTOMER.users[0]
INVOICE = Invoice.issue(
    PARTNER,
    CUSTOMER,
    by=MO,
    number="1001",
    lines=[{"description": "Support", "quantity": 1, "unit_amount": "100.00"}],
    due_date=dt.date(2026, 2, 1),
    today=TODAY,
)
METHODS = CustomerPaymentMethods.of(CUSTOMER).add(type="ach", display_name="Chase", last4="6789")
PAYMENT, (PAID,) = pay_invoices(
    PARTNER, CUSTOMER, [INVOICE], payer=ANN, method="ach", idempotency_key="k1"
)
SCHEDULED = schedule_payment(
    PARTNER, CUSTOMER, INVOICE, payer=ANN, methods=METHODS, pay_on=TODAY, today=TODAY
)
REQUEST = AccessRequest.open(PARTNER, email="bo@globex.example")

# Any offset Python allows (under a day either way, to the microsecond).
_ZONES = st.timedeltas(
    min_value=-dt.timedelta(hours=24) + dt.timedelta(microseconds=1),
    max_value=dt.timedelta(hours=24) - dt.timedelta(microseconds=1),
).map(dt.timezone)
AWARE = st.builds(
    lambda naive, zone: naive.replace(tzinfo=zone),
    st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1)),
    _ZONES,
)


@attrs.frozen
class Times:
    """A time for each field of each aggregate."""

    partner: dt.datetime
    draft: dt.datetime
    customer: dt.datetime
    requested: dt.datetime
    resolved: dt.datetime
    invoice: dt.datetime
    payment: dt.datetime
    succeeded: dt.datetime
    settled: dt.datetime
    added: dt.datetime
    scheduled: dt.datetime
    event: dt.datetime


_ANY_TIMES = st.builds(Times, *([AWARE] * len(attrs.fields(Times))))
# A request is resolved no earlier than it was made (a rule the request
# keeps): at that very instant or later, at any offset.
_LATER = st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=400))


@st.composite
def _times(draw: st.DrawFn) -> Times:
    times = draw(_ANY_TIMES)
    resolved = (times.requested + draw(_LATER)).astimezone(times.resolved.tzinfo)
    return attrs.evolve(times, resolved=resolved)


TIMES = _times()


def _with_times(t: Times) -> dict[str, tuple[Any, dict[str, dt.datetime]]]:
    """Each aggregate given its times, and those times by field."""
    resolved = attrs.evolve(
        REQUEST.reject(partner=PARTNER, by=MO), requested_at=t.requested, resolved_at=t.resolved
    )
    payment = attrs.evolve(
        PAYMENT,
        status=PaymentStatus.SUCCEEDED,
        created_at=t.payment,
        succeeded_at=t.succeeded,
        settled_at=t.settled,
    )
    method = attrs.evolve(METHODS.methods[0], added_at=t.added)
    return {
        "partner": (attrs.evolve(PARTNER, created_at=t.partner), {"created_at": t.partner}),
        "draft": (attrs.evolve(DRAFT, started_at=t.draft), {"started_at": t.draft}),
        "customer": (attrs.evolve(CUSTOMER, created_at=t.customer), {"created_at": t.customer}),
        "request": (resolved, {"requested_at": t.requested, "resolved_at": t.resolved}),
        "invoice": (attrs.evolve(PAID, created_at=t.invoice), {"created_at": t.invoice}),
        "payment": (
            payment,
            {"created_at": t.payment, "succeeded_at": t.succeeded, "settled_at": t.settled},
        ),
        "methods": (attrs.evolve(METHODS, methods=(method,)), {}),
        "scheduled": (
            attrs.evolve(SCHEDULED, created_at=t.scheduled),
            {"created_at": t.scheduled},
        ),
        "event": (
            InvoiceUpdated(
                partner_id=PARTNER.id, aggregate_id=str(INVOICE.id), occurred_at=t.event
            ),
            {"occurred_at": t.event},
        ),
    }


def _in_utc(value: dt.datetime, given: dt.datetime) -> None:
    assert value.tzinfo is dt.UTC
    assert value == given  # the same instant


@given(times=TIMES)
def test_every_aggregate_keeps_its_times_in_utc(times: Times) -> None:
    for name, (value, fields) in _with_times(times).items():
        for field, given_at in fields.items():
            _in_utc(getattr(value, field), given_at)
        if name == "methods":
            _in_utc(value.methods[0].added_at, times.added)
        data = to_dict(value)
        assert to_dict(from_dict(type(value), data)) == data, name
        for field in fields:
            assert data[field].endswith("+00:00"), (name, field)


_Read = Callable[[UnitOfWork], Any]


def _stored_and_read(store: MemoryStore | SqliteStore, times: Times) -> dict[str, Any]:
    values = {name: value for name, (value, _) in _with_times(times).items()}
    partner, customer = values["partner"], values["customer"]
    with store.unit_of_work() as uow:
        uow.partners.save(partner)
        uow.customers.save(customer)
        uow.invoices.save(values["invoice"])
        uow.payments.save(values["payment"])
        uow.payment_methods.save(values["methods"])
        uow.scheduled_payments.save(values["scheduled"])
        uow.access_requests.save(values["request"])
        uow.commit()
    reads: dict[str, _Read] = {
        "partner": lambda uow: uow.partners.get(partner.id),
        "customer": lambda uow: uow.customers.get(partner.id, customer.id),
        "invoice": lambda uow: uow.invoices.get(partner.id, values["invoice"].id),
        "payment": lambda uow: uow.payments.get(partner.id, values["payment"].id),
        "methods": lambda uow: uow.payment_methods.get(partner.id, customer.id),
        "scheduled": lambda uow: uow.scheduled_payments.get(partner.id, values["scheduled"].id),
        "request": lambda uow: uow.access_requests.get(partner.id, values["request"].id),
    }
    with store.unit_of_work() as uow:
        return {name: to_dict(read(uow)) for name, read in reads.items()}


def _times_in(name: str, data: dict[str, Any]) -> list[str]:
    if name == "methods":
        return [method["added_at"] for method in data["methods"]]
    return [data[field] for field in _FIELDS[name]]


_FIELDS = {
    "partner": ("created_at",),
    "customer": ("created_at",),
    "invoice": ("created_at",),
    "payment": ("created_at", "succeeded_at", "settled_at"),
    "scheduled": ("created_at",),
    "request": ("requested_at", "resolved_at"),
}


@given(times=TIMES)
def test_memory_and_sqlite_read_back_the_times_written(times: Times) -> None:
    written = {name: to_dict(value) for name, (value, _) in _with_times(times).items()}
    memory = _stored_and_read(MemoryStore(), times)
    with SqliteStore(":memory:") as sqlite:
        stored = _stored_and_read(sqlite, times)
    for name, data in memory.items():
        assert _times_in(name, data) == _times_in(name, written[name]), name
        assert data == stored[name], name


# How far another server's clock (or a time read back) may be from this one's.
_SKEW = st.timedeltas(min_value=-dt.timedelta(days=1), max_value=dt.timedelta(days=1))


@given(skew=_SKEW, how=st.sampled_from(["reject", "add_to_customer", "approve_new_customer"]))
def test_a_request_is_resolved_no_earlier_than_it_was_made(skew: dt.timedelta, how: str) -> None:
    requested = dt.datetime.now(dt.UTC) + skew
    request = attrs.evolve(
        AccessRequest.open(PARTNER, email="bo@globex.example", first_name="Bo", last_name="Li"),
        requested_at=requested,
    )
    if how == "reject":
        resolved = request.reject(partner=PARTNER, by=MO)
    elif how == "add_to_customer":
        resolved, _ = request.add_to_customer(CUSTOMER, partner=PARTNER, by=MO)
    else:
        draft = request.start_customer(partner=PARTNER, by=MO)
        customer = draft.enter_details(company="Initech", address=ALBANY).create()
        resolved = request.approve_new_customer(customer, partner=PARTNER, by=MO)
    assert resolved.requested_at == requested
    assert resolved.resolved_at is not None
    assert resolved.resolved_at >= requested


_CUSTOMER_COMMANDS: dict[str, Callable[[Customer, int], Customer]] = {
    "update_details": lambda c, n: c.update_details(company=f"Globex {n}"),
    "add_user": lambda c, n: c.add_user(
        first_name="Bo", last_name="Li", email=f"bo{n}@globex.example"
    ),
    "archive": lambda c, n: c.archive(),
    "restore": lambda c, n: c.restore(),
    "set_notifications": lambda c, n: c.set_notifications(ANN.id, enabled=n % 2 == 0),
}


@given(
    created=_SKEW,
    pending=st.none() | _SKEW,
    commands=st.lists(st.sampled_from(sorted(_CUSTOMER_COMMANDS)), min_size=1, max_size=5),
)
def test_a_customers_events_are_never_dated_before_its_creation_nor_its_pending_events(
    created: dt.timedelta, pending: dt.timedelta | None, commands: list[str]
) -> None:
    now = dt.datetime.now(dt.UTC)
    customer = attrs.evolve(CUSTOMER, created_at=now + created)
    if pending is not None:
        # An event still pending, dated by a clock that runs ahead.
        event = CustomerUpdated(
            partner_id=PARTNER.id,
            aggregate_id=str(customer.id),
            occurred_at=max(now + pending, customer.created_at),
            changes=("company",),
        )
        customer = customer_module._with_event(customer, customer, event)
    for n, command in enumerate(commands):
        with contextlib.suppress(InvariantViolation):  # no change to an archived customer
            customer = _CUSTOMER_COMMANDS[command](customer, n)
    times = [event.occurred_at for event in customer.events]
    assert times == sorted(times)
    assert all(time >= customer.created_at for time in times)
