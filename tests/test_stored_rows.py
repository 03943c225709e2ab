"""What a SQL store writes and reads back. Customers are read through the
quick path when the row is as the library wrote it; refused, as ``from_dict``
refuses it, when it was changed or damaged outside the library, never read
into a broken customer. The text written (``dump``) is what ``to_dict`` and
the JSON encoder give, for customers and events written straight to text."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from altpay_core import (
    EIN,
    Address,
    AppliedPayment,
    CardFeeBearer,
    Currency,
    Customer,
    CustomerId,
    CustomerUser,
    EmailAddress,
    Event,
    ExternalRef,
    InvariantViolation,
    Invoice,
    InvoiceId,
    LineItem,
    Money,
    Partner,
    PartnerId,
    PaymentId,
    TagId,
    ValidationError,
    from_dict,
    ports,
    serialization,
    to_dict,
)
from altpay_core import events as events_module
from altpay_core.adapters import _sql
from altpay_core.adapters.sqlite import SqliteStore
from altpay_core.events import EVENT_TYPES, CustomerCreated

ALBANY = Address("1 Main St", "Albany", "NY", "12207", "US")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "altpay.db"


@pytest.fixture
def store(path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(path) as store:
        yield store


@pytest.fixture
def partner() -> Partner:
    return Partner.create(name="Northwind IT", country="US")


@pytest.fixture
def customer(store: SqliteStore, partner: Partner) -> Customer:
    users = tuple(
        CustomerUser.new(first_name="Ann", last_name=name, email=f"{name}@globex.example")
        for name in ("lee", "li")
    )
    new = Customer(
        id=CustomerId.new(),
        partner_id=partner.id,
        company="Globex",
        address=ALBANY,
        users=users,
        ein=EIN("12-3456789"),
    )
    with store.unit_of_work() as uow:
        uow.partners.save(partner)
        saved = uow.customers.save(new)
        uow.commit()
    return saved


def rewrite(path: Path, change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """Change the stored customer's data behind the library's back."""
    with sqlite3.connect(path) as outsider:
        (text,) = outsider.execute("SELECT data FROM customers").fetchone()
        data: dict[str, Any] = json.loads(text)
        change(data)
        outsider.execute("UPDATE customers SET data = ?", (json.dumps(data),))
    return data


def read(store: SqliteStore, customer: Customer) -> Customer:
    with store.unit_of_work() as uow:
        return uow.customers.get(customer.partner_id, customer.id)


def test_a_stored_customer_is_read_without_the_converter(
    store: SqliteStore, customer: Customer, path: Path
) -> None:
    with sqlite3.connect(path) as outsider:
        (text,) = outsider.execute("SELECT data FROM customers").fetchone()
    # The quick path reads the row as written (the converter is left for
    # anything else), and from_dict takes it.
    assert serialization._quick_customer(json.loads(text)) == customer
    back = read(store, customer)
    assert back == customer
    assert back.users == customer.users
    assert back.address == customer.address
    assert back.events == ()
    with store.unit_of_work() as uow:
        assert uow.customers.with_user(customer.partner_id, "LEE@globex.example") == [customer]


@pytest.mark.parametrize(
    ("change", "paths"),
    [
        (lambda d: d["users"][1].update(email="li at globex"), ["users[1].email"]),
        (lambda d: d["users"][1].update(email=d["users"][0]["email"]), ["users[1].email"]),
        (lambda d: d["users"].clear(), ["users"]),
        (lambda d: d["users"][0].update(first_name=""), ["users[0].first_name"]),
        (lambda d: d["users"][0].update(id="lee"), ["users[0].id"]),
        (lambda d: d["address"].update(region="ON"), ["address.region"]),
        (lambda d: d.update(ein="12-345678"), ["ein"]),
        (lambda d: d.update(status="gone"), ["status"]),
        (lambda d: d.update(version="1"), ["version"]),
        (lambda d: d.update(created_at="2026-01-31 09:30"), ["created_at"]),
        (lambda d: d.pop("company"), ["company"]),
        (lambda d: d.pop("created_at"), ["created_at"]),
        (lambda d: d.pop("version"), ["version"]),
        (lambda d: d["users"][0].pop("notifications"), ["users[0].notifications"]),
        (lambda d: d.update(nickname="G"), ["nickname"]),
    ],
)
def test_a_damaged_row_is_refused_with_the_paths_from_dict_gives(
    store: SqliteStore, path: Path, customer: Customer, change: Any, paths: list[str]
) -> None:
    data = rewrite(path, change)
    with pytest.raises(ValidationError) as caught:
        read(store, customer)
    assert caught.value.paths == paths
    with pytest.raises(ValidationError) as expected:
        from_dict(Customer, data)
    assert caught.value.errors == expected.value.errors


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(created_at="2026-01-31T04:30:00-05:00"),
        lambda d: d.update(company=" Globex "),
        lambda d: d.update(ein="123456789"),
        lambda d: d["address"].update(region="ny"),
        lambda d: d.pop("card_fee_exception"),
    ],
)
def test_a_row_in_another_valid_form_is_read_as_from_dict_reads_it(
    store: SqliteStore, path: Path, customer: Customer, change: Any
) -> None:
    data = rewrite(path, change)
    back = read(store, customer)
    assert back == from_dict(Customer, data)
    assert to_dict(back) == to_dict(from_dict(Customer, data))


def test_a_row_that_is_no_json_is_refused_as_from_json_refuses_it(
    store: SqliteStore, path: Path, customer: Customer
) -> None:
    with sqlite3.connect(path) as outsider:
        outsider.execute("UPDATE customers SET data = ?", ('{"id": "cus_',))
    with pytest.raises(ValidationError) as caught:
        read(store, customer)
    assert (caught.value.paths, caught.value.codes) == ([""], ["invalid_json"])
    with pytest.raises(ValidationError) as in_outbox:
        _sql.load_event(b"[")
    assert in_outbox.value.codes == ["invalid_json"]


@settings(max_examples=max(10, settings.default.max_examples // 4))
@given(customer=st.from_type(Customer))
def test_load_reads_json_text_once(customer: Customer) -> None:
    # Every store hands load its column's text (PostgreSQL's jsonb too):
    # parsed once, so that the JSON text of a JSON string holding the
    # customer's text is a string, and refused, as any data that is no object.
    text = _sql.dump(customer)
    assert _sql.load(Customer, text) == customer
    assert _sql.load(Customer, text.encode()) == customer
    with pytest.raises(ValidationError) as caught:
        _sql.load(Customer, json.dumps(text))
    assert (caught.value.paths, caught.value.codes) == ([""], ["wrong_type"])
    event = CustomerCreated(partner_id=customer.partner_id, aggregate_id=str(customer.id))
    with pytest.raises(ValidationError) as in_outbox:
        _sql.load_event(json.dumps(_sql.dump(event)).encode())
    assert (in_outbox.value.paths, in_outbox.value.codes) == ([""], ["wrong_type"])


@pytest.mark.parametrize("text", ["[" * 3000 + "]" * 3000, "1" + "0" * 5000])
def test_load_refuses_json_that_json_loads_cannot_read(text: str) -> None:
    # Nested too deeply, or a number of more digits than int() converts.
    for read in (lambda: _sql.load(Customer, text), lambda: _sql.load_event(text)):
        with pytest.raises(ValidationError) as caught:
            read()
        assert (caught.value.paths, caught.value.codes) == ([""], ["invalid_json"])


def compact_json(value: object) -> str:
    """What dump writes, in two steps: to_dict, then the JSON encoder."""
    return json.dumps(
        to_dict(value), ensure_ascii=False, separators=(",", ":"), check_circular=False
    )


@given(customer=st.from_type(Customer))
def test_dump_writes_a_customer_as_to_dict_and_the_json_encoder_do(customer: Customer) -> None:
    # Written straight from the customer, not through a dict: the same text.
    assert _sql.dump(customer) == compact_json(customer)


@settings(max_examples=max(10, settings.default.max_examples // 4))
@given(value=st.from_type(Invoice) | st.from_type(Event))
def test_dump_writes_what_the_compact_json_encoder_writes(value: object) -> None:
    # dump keeps one C encoder rather than one per call: the text is the same.
    assert _sql.dump(value) == compact_json(value)


def test_dump_writes_unusual_customers_as_the_json_encoder_does(customer: Customer) -> None:
    odd = attrs.evolve(
        customer,
        # Quotes, a backslash, control and line-separator characters, an emoji.
        company='Globex "Québec"\t\x01\u2028\\ Ltd \U0001f600',
        legal_name="Globex\u00a0Ltd",
        # Enough tags that a set's order is not their sorted order by chance.
        tags=[TagId(f"tag_{letter}") for letter in "hgfedcba"],
        external_ref=ExternalRef("connectwise", 'id "7"'),
        card_fee_exception=CardFeeBearer.PARTNER,
        billing_email=EmailAddress("ap@globex.example"),
    )
    assert _sql.dump(odd) == compact_json(odd)
    assert _sql.load(Customer, _sql.dump(odd)) == odd


@pytest.mark.parametrize("topic", sorted(EVENT_TYPES))
@given(
    occurred_at=st.datetimes(timezones=st.just(dt.UTC)),
    # Any text a store holds: every character but NUL (and lone surrogates).
    changes=st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1)),
)
def test_events_are_stored_as_to_dict_and_the_json_encoder_write_them(
    topic: str, occurred_at: dt.datetime, changes: list[str]
) -> None:
    event = EVENT_TYPES[topic](
        partner_id=PartnerId("par_1"),
        aggregate_id="cus_1",
        occurred_at=occurred_at,
        changes=changes,
    )
    assert _sql.dump(event) == compact_json(event)
    assert _sql.load_event(_sql.dump(event)) == event


def test_an_event_class_with_fields_of_its_own_is_stored_whole() -> None:
    # Read a good event and a bad one first, so that both of from_dict's
    # converters have their hook for Event before the class is defined.
    created = CustomerCreated(partner_id=PartnerId("par_1"), aggregate_id="cus_1")
    assert from_dict(Event, to_dict(created)) == created
    with pytest.raises(ValidationError):
        from_dict(Event, {**to_dict(created), "topic": "customer_deleted"})

    @attrs.frozen(kw_only=True)
    class InvoiceReminded(Event):
        """An event a service adds, with a field of its own."""

        topic: ClassVar[str] = "invoice_reminded_test"
        reminder: int = 1

    try:
        event = InvoiceReminded(partner_id=PartnerId("par_1"), aggregate_id="inv_1", reminder=2)
        text = _sql.dump(event)
        assert text == compact_json(event)
        assert json.loads(text)["reminder"] == 2
        # Defined after the first events were read, and read back all the same.
        assert from_dict(Event, json.loads(text)) == event
    finally:
        del events_module._EVENT_TYPES["invoice_reminded_test"]


@given(
    moment=st.datetimes(
        min_value=dt.datetime(1900, 1, 1),
        max_value=dt.datetime(2200, 1, 1),
        timezones=st.timezones(),
        allow_imaginary=False,
    )
)
def test_timestamps_are_fixed_width_utc_text_that_sorts_as_time_does(moment: dt.datetime) -> None:
    text = _sql.timestamp(moment)
    assert len(text) == len("2026-01-31T09:30:00.000000+00:00")
    assert text.endswith("+00:00")
    utc = moment.astimezone(dt.UTC)
    assert dt.datetime.fromisoformat(text) == utc
    later = utc + dt.timedelta(microseconds=1)
    assert text < _sql.timestamp(later)


def _invoice_paid_twice(partner: Partner, customer: Customer) -> Invoice:
    """A 100.00 invoice with a part of 30.00 given back and one of 20.00."""
    return Invoice(
        id=InvoiceId.new(),
        partner_id=partner.id,
        customer_id=customer.id,
        number="1001",
        currency=Currency("USD"),
        issue_date=dt.date(2026, 1, 5),
        due_date=dt.date(2026, 2, 4),
        lines=[LineItem("Support", 1, Money("100.00", "USD"))],
        payments=[
            AppliedPayment(PaymentId.new(), Money("30.00", "USD"), released=True),
            AppliedPayment(PaymentId.new(), Money("20.00", "USD")),
        ],
    )


@pytest.mark.parametrize(
    "form",
    [
        # As SQLite's json_extract gives it, and as PostgreSQL's jsonb does.
        lambda parts: json.dumps(parts, separators=(",", ":")),
        lambda parts: json.dumps(
            [dict(sorted(part.items(), key=lambda item: len(item[0]))) for part in parts]
        ),
    ],
)
def test_an_invoice_save_is_checked_against_the_rows_payments_alone(
    partner: Partner, customer: Customer, form: Callable[[Any], str]
) -> None:
    """A save reads the stored status and payments, not the whole invoice,
    and holds them to what :func:`ports.check_invoice_history` holds the
    stored invoice to; values not as the library writes them are left to
    the full read (``False``)."""
    stored = _invoice_paid_twice(partner, customer)
    text = form(to_dict(stored)["payments"])
    kept = _sql._invoice_history_kept
    released, counting = stored.payments
    more = AppliedPayment(PaymentId.new(), Money("1.00", "USD"))
    for fine in (
        (released, counting),
        (released, counting, more),
        (released, attrs.evolve(counting, released=True)),
        (counting, released),
    ):
        assert kept(("open", text), attrs.evolve(stored, payments=fine))
    for payments, rule, path in [
        ((counting,), "I5", "payments[0]"),
        ((released, more), "I5", "payments[1]"),
        ((released, attrs.evolve(counting, amount=Money("20.01", "USD"))), "I5", "payments[1]"),
        ((attrs.evolve(released, released=False), counting), "I6", "payments[0]"),
        ((counting, attrs.evolve(released, released=False)), "I6", "payments[1]"),
    ]:
        # What differs is left to the full read and check, which refuse it
        # (the same text may be the same money written another way).
        changed = attrs.evolve(stored, payments=payments)
        assert kept(("open", text), changed) is False
        with pytest.raises(InvariantViolation) as caught:
            ports.check_invoice_history(stored, changed)
        assert (caught.value.rule, caught.value.path) == (rule, path)
    assert kept(("archived", text), stored) is False
    for damaged in (
        (None, text),
        ("open", None),
        ("open", "[{"),
        ("open", "{}"),
        ("open", "[5]"),
        ("open", json.dumps([{"payment_id": "pay_1"}])),
        ("open", text.replace('"30.00"', "30.00")),
        ("open", text.replace("true", "1")),
    ):
        assert kept(damaged, stored) is False, damaged


def test_an_invoice_row_with_damaged_payments_is_refused_by_the_full_read(
    store: SqliteStore, path: Path, partner: Partner, customer: Customer
) -> None:
    (stored,) = _commit_invoices(store, _invoice_paid_twice(partner, customer))
    with sqlite3.connect(path) as outsider:
        outsider.execute("UPDATE invoices SET data = json_set(data, '$.payments', 5)")
    with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
        uow.invoices.save(stored.update(partner, memo="Thanks"))
    assert caught.value.paths == ["payments"]


@pytest.mark.parametrize(
    "damage",
    [
        # No JSON: json_extract alone would fail the statement with a
        # driver's error.
        ("[{", "invalid_json"),
        # Payments written as text: json_extract alone would unquote it into
        # an empty list of parts, which the quick check would pass.
        ('{"payments": "[]"}', "missing"),
    ],
)
def test_an_invoice_row_the_quick_check_cannot_read_is_refused_by_the_full_read(
    store: SqliteStore, path: Path, partner: Partner, customer: Customer, damage: tuple[str, str]
) -> None:
    data, code = damage
    (stored,) = _commit_invoices(store, _invoice_paid_twice(partner, customer))
    with sqlite3.connect(path) as outsider:
        outsider.execute("UPDATE invoices SET data = ?", (data,))
    with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
        uow.invoices.save(stored.update(partner, memo="Thanks"))
    assert code in caught.value.codes
    with sqlite3.connect(path) as outsider:
        assert outsider.execute("SELECT data FROM invoices").fetchall() == [(data,)]


@pytest.mark.parametrize(
    "payments",
    [
        "5",
        "true",
        "null",
        '"[]"',
        '{"amount": 1}',
        "[5]",
        b"[{",
        "[" * 100_000 + "]" * 100_000,
    ],
    ids=[
        "number",
        "bool",
        "null",
        "text",
        "object",
        "a part no object",
        "no JSON",
        "too deep",
    ],
)
def test_the_quick_check_leaves_payments_it_cannot_read_to_the_full_read(
    partner: Partner, customer: Customer, payments: str | bytes
) -> None:
    # As PostgreSQL hands the data's payments over: their JSON text,
    # whatever it holds (SQLite's json_extract hands a number over as one).
    invoice = _invoice_paid_twice(partner, customer)
    assert _sql._invoice_history_kept(("open", payments), invoice) is False


def _commit_invoices(store: SqliteStore, *invoices: Invoice) -> list[Invoice]:
    with store.unit_of_work() as uow:
        saved = [uow.invoices.save(invoice) for invoice in invoices]
        uow.commit()
    return saved


@pytest.mark.parametrize("edit", ["amount", "currency"])
def test_an_invoice_row_whose_payments_read_the_same_written_another_way_still_saves(
    store: SqliteStore, path: Path, partner: Partner, customer: Customer, edit: str
) -> None:
    # Text the read takes for the same money ("30.000", "usd") is no
    # rewritten history: the quick check leaves it to the full one.
    (stored,) = _commit_invoices(store, _invoice_paid_twice(partner, customer))
    money = stored.payments[0].amount
    value = f"{money.amount:f}0" if edit == "amount" else money.currency.code.lower()
    with sqlite3.connect(path) as outsider:
        outsider.execute(
            f"UPDATE invoices SET data = json_set(data, '$.payments[0].amount.{edit}', ?)",
            (value,),
        )
    with store.unit_of_work() as uow:
        saved = uow.invoices.save(stored.update(partner, memo="Thanks"))
        uow.commit()
    assert saved.payments == stored.payments


def test_an_invoice_save_checks_its_history_from_the_row_alone(
    store: SqliteStore, partner: Partner, customer: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The quick check reads the stored status and payments alone: the
    # invoice is not read and rebuilt in full for every save.
    (stored,) = _commit_invoices(store, _invoice_paid_twice(partner, customer))

    def full_read(*args: object) -> None:
        raise AssertionError("the stored invoice was read in full")

    monkeypatch.setattr(_sql.SqlUnitOfWork, "_get", full_read)
    with store.unit_of_work() as uow:
        saved = uow.invoices.save(stored.update(partner, memo="Thanks"))
        uow.commit()
    assert saved.payments == stored.payments
