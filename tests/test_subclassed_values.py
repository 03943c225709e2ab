"""Values given as subclasses of ``str``, ``int``, ``Decimal`` and ``date``:
every constructor and command keeps them as the plain type, so that a
subclass's own ``__eq__``, ``__hash__`` or ``strip`` can neither pass a check
on one value and be kept as another, nor raise a bare ``TypeError``."""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from altpay_core import (
    Address,
    CardFeePolicy,
    ConcurrencyConflict,
    Currency,
    Customer,
    CustomerDraft,
    CustomerId,
    CustomerPaymentMethods,
    CustomerStatus,
    EntityId,
    ExternalRef,
    Fee,
    Integration,
    Invoice,
    LineItem,
    Money,
    NotFound,
    Partner,
    PartnerId,
    PaymentMethod,
    PermissionDenied,
    Role,
    Rounding,
    UserId,
    ValidationError,
    _fields,
    card_fee_for,
    from_dict,
    from_json,
    pay_invoices,
    schedule_payment,
    services,
    to_dict,
    to_json,
)
from altpay_core.adapters.memory import MemoryStore
from altpay_core.adapters.postgres import PostgresStore
from altpay_core.adapters.sqlite import SqliteStore
from altpay_core.events import CustomerUpdated
from altpay_core.ports import MAX_PAGE_SIZE, Cursor, OutboxMessage, PageRequest, Store, check_text
from altpay_core.serialization import from_stored
from altpay_core.testing import strategies

TODAY = dt.date(2026, 1, 5)
DUE = dt.date(2026, 2, 4)


# -- the subclasses ------------------------------------------------------------------


class Hostile(str):
    """Equal to everything, with one hash for all."""

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 42


class Unhashable(str):
    __hash__ = None  # type: ignore[assignment]


class Marked(str):
    """As markupsafe.Markup: its strip() and case changes return its own type."""

    def strip(self, chars: str | None = None) -> Marked:
        return Marked(super().strip(chars))

    def upper(self) -> Marked:
        return Marked(super().upper())

    def lower(self) -> Marked:
        return Marked(super().lower())


class Plain(str):
    pass


class Posing(str):
    """Equal to everything, and hashed as another text (a real key): a dict
    or set that trusts its ``__hash__`` and ``__eq__`` reads it as that key."""

    as_: str

    def __new__(cls, text: str, as_: str) -> Posing:
        posing = super().__new__(cls, text)
        posing.as_ = as_
        return posing

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return hash(self.as_)


class Rate(float):
    """As numpy.float64: a float of a subclass of its own."""

    def __repr__(self) -> str:
        return f"Rate({float(self)!r})"


class HostileInt(int):
    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 7


class HostileDecimal(Decimal):
    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = Decimal.__hash__


class Day(dt.date):
    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = dt.date.__hash__


TEXT_KINDS = [Hostile, Unhashable, Marked, Plain]
texts = st.sampled_from(TEXT_KINDS)


# -- what is kept ----------------------------------------------------------------


def _leaves(value: object, path: str = "") -> Iterator[tuple[str, object]]:
    """Every value held by ``value``, however deep (attrs fields, tuples,
    sets, mappings), with its path."""
    if isinstance(value, enum.Enum):
        return
    if attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            yield from _leaves(getattr(value, field.name), f"{path}.{field.name}")
        return
    if isinstance(value, tuple | list | frozenset | set):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.<key>", key
            yield from _leaves(item, f"{path}.{key}")
        return
    yield path, value


_PLAIN = (str, int, Decimal, dt.date, dt.datetime)


def _subclassed(value: object) -> list[str]:
    """The paths of the values that are a subclass of str, int, Decimal or
    date, rather than the type itself (a bool is an int of its own)."""
    found = []
    for path, leaf in _leaves(value):
        if isinstance(leaf, bool):
            continue
        if isinstance(leaf, _PLAIN) and type(leaf) not in _PLAIN:
            found.append(f"{path}: {type(leaf).__name__}")
    return found


def _assert_plain(*values: object) -> None:
    for value in values:
        assert _subclassed(value) == []
        assert _subclassed(to_dict(value)) == []


# -- the aggregates, built from subclassed input ------------------------------------


def _partner(text: type[str] = str) -> Partner:
    return Partner.create(name=text("Northwind IT"), country=text("US")).add_team_member(
        name=text("Ada"), email=text("ada@n.example"), role=text("admin")
    )


def _customer(partner: Partner, text: type[str] = str) -> Customer:
    address = {
        "line1": text(" 1 Main St "),
        "line2": text(" Suite 2 "),
        "city": text("Albany"),
        "region": text("ny"),
        "postal_code": text("12207"),
        "country": text("us"),
    }
    return (
        CustomerDraft.start(partner)
        .enter_details(
            company=text(" Globex "),
            legal_name=text(" Globex Inc "),
            ein=text(" 12-3456789 "),
            address=address,
        )
        .add_user(first_name=text(" Ann "), last_name=text("Lee"), email=text("ann@globex.example"))
        .create()
    )


def _invoice(partner: Partner, customer: Customer, text: type[str] = str) -> Invoice:
    return Invoice.issue(
        partner,
        customer,
        by=partner.team[0],
        number=text(" 1001 "),
        memo=text(" Thanks "),
        today=Day(2026, 1, 5),
        due_date=Day(2026, 2, 4),
        lines=[
            {
                "description": text(" Seats "),
                "quantity": HostileInt(2),
                "unit_amount": HostileDecimal("100.00"),
            },
            {"description": text("Setup"), "quantity": 1, "unit_amount": text("5.00")},
        ],
    )


@given(texts)
def test_a_partner_customer_and_invoice_keep_plain_values(text: type[str]) -> None:
    partner = _partner(text).add_tag(name=text(" VIP "), colour=text("#1a2b3c"))
    # A colour already as it is kept: still made a plain str.
    partner = partner.add_tag(name=text("Late"), colour=text("#00FF00"))
    partner = partner.connect_integration(text(" Xero "))
    customer = _customer(partner, text).set_tags(partner, [text("vip")])
    invoice = _invoice(partner, customer, text)
    _assert_plain(partner, customer, invoice)
    assert (customer.company, customer.address.region, str(customer.ein)) == (
        "Globex",
        "NY",
        "12-3456789",
    )
    assert (invoice.issue_date, invoice.due_date, invoice.total) == (
        TODAY,
        DUE,
        Money("205.00", "USD"),
    )
    assert type(invoice.due_date - invoice.issue_date) is dt.timedelta


@given(texts)
def test_values_and_ids_keep_plain_text(text: type[str]) -> None:
    values: list[object] = [
        CustomerId(text("cus_1")),
        ExternalRef(system=text(" ConnectWise "), id=text(" 4711 ")),
        Integration(text("xero")),
        Address(text("1 Main"), text("Albany"), text("NY"), text("12207"), text("US")),
        Money(text("1.50"), text("USD")),
        CustomerUpdated(
            partner_id=PartnerId("par_1"),
            aggregate_id=text("cus_1"),
            changes=["status", text("company")],
        ),
    ]
    _assert_plain(*values)
    # Each is hashable, and equal to the same value built from plain text.
    assert hash(values[0]) == hash(CustomerId("cus_1"))
    assert values[1] == ExternalRef(system="connectwise", id="4711")


@given(texts)
def test_a_payment_and_a_saved_method_keep_plain_values(text: type[str]) -> None:
    partner = _partner()
    customer = _customer(partner)
    invoice = _invoice(partner, customer)
    methods = CustomerPaymentMethods.of(customer).add(
        type=text("card"), display_name=text(" Visa "), last4=text("4242")
    )
    user = customer.users[0]
    payment, paid = pay_invoices(
        partner,
        customer,
        [invoice],
        payer=text(str(user.id)),
        method=text("card"),
        idempotency_key=text(" k1 "),
    )
    fee = card_fee_for(partner, customer, Money("1.00", "USD"), text("card"))
    scheduled = schedule_payment(
        partner,
        customer,
        invoice,
        payer=text(str(user.id)),
        methods=methods,
        pay_on=Day(2026, 1, 9),
        today=Day(2026, 1, 5),
        amount=text("10.00"),
    )
    # As read back by an adapter whose driver gives text of its own type.
    again = attrs.evolve(payment, request_fingerprint=text(payment.request_fingerprint))
    _assert_plain(methods, payment, again, *paid, fee, scheduled)
    assert again == payment
    assert payment.user_id == user.id
    assert scheduled.pay_on == dt.date(2026, 1, 9)


def test_the_ports_small_values_keep_plain_numbers_and_text() -> None:
    page = PageRequest(limit=HostileInt(5))
    event = CustomerUpdated(partner_id=PartnerId("par_1"), aggregate_id="cus_1")
    message = OutboxMessage(position=HostileInt(3), event=event)
    cursor = Cursor("customers", Plain("globex"), Plain("cus_1"))
    assert (page.limit, message.position) == (5, 3)
    assert _subclassed(page) == _subclassed(message) == _subclassed(cursor) == []


def test_a_too_precise_amount_is_refused_whatever_its_subclass_says() -> None:
    # HostileDecimal says it equals its own rounding: the amount is still
    # compared as a plain Decimal, and refused rather than quietly rounded.
    with pytest.raises(ValidationError) as caught:
        Money(HostileDecimal("0.125"), "USD")
    assert caught.value.codes == ["too_precise"]


@pytest.mark.parametrize("number", [HostileInt(3), HostileDecimal("3.5"), Plain("3.5")])
def test_amounts_and_rates_keep_plain_numbers(number: Any) -> None:
    rate = Decimal(str(int(number))) if isinstance(number, int) else Decimal("3.5")
    policy = CardFeePolicy(bearer="customer", rate_percent=number, fixed=Money("0.30", "USD"))
    partner = _partner().set_card_fees(rate_percent=number)
    line = LineItem("Seats", HostileInt(3), Money(number, "USD", rounding="HALF_EVEN"))
    _assert_plain(policy, partner, line)
    assert (policy.rate_percent, partner.card_fees.rate_percent) == (rate, rate)


# -- each defect, as it showed ----------------------------------------------------------


def test_a_stranger_is_no_user_whatever_the_text_of_their_id() -> None:
    # A str subclass equal to everything was kept as the id's text: a
    # stranger's id then equalled a user's, and the payment was made (I1).
    partner = _partner()
    customer = _customer(partner)
    invoice = _invoice(partner, customer)
    stranger = Hostile(str(UserId.new()))
    with pytest.raises(PermissionDenied):
        pay_invoices(
            partner, customer, [invoice], payer=stranger, method="ach", idempotency_key="b"
        )
    assert UserId(stranger) != customer.users[0].id


@given(st.sampled_from(Currency.all()), st.sampled_from(["XYZ", "not a currency", " cad "]))
def test_a_currency_is_chosen_by_its_text_not_by_a_subclass_s_hash(
    posing_as: Currency, text: str
) -> None:
    # Text equal to everything, hashed as a real code: the registry of codes
    # matched it to that code, whatever its text said.
    posing = Posing(text, as_=posing_as.code)
    if text.strip().upper() == "CAD":
        assert Currency(posing) is Currency("CAD")
        assert Money("1.00", posing).currency.code == "CAD"
        return
    with pytest.raises(ValidationError) as info:
        Currency(posing)
    assert info.value.codes == ["unknown_currency"]
    with pytest.raises(ValidationError) as info:
        Partner.create(name="Northwind IT", country="CA", currency=posing)
    assert info.value.paths == ["currency"]


@given(st.sampled_from(list(Rounding)), st.sampled_from(["nope", "floor", "Floor"]))
def test_a_rounding_mode_is_chosen_by_its_text_not_by_a_subclass_s_hash(
    posing_as: Rounding, text: str
) -> None:
    # Text equal to everything, hashed as a real mode's value: the table of
    # modes would match it to that mode, whatever its text said.
    posing = Posing(text, as_=posing_as.value)
    if text.upper() == "FLOOR":
        assert Money("1.009", "USD", rounding=posing) == Money("1.00", "USD")
        return
    with pytest.raises(ValidationError) as info:
        Money("1.009", "USD", rounding=posing)
    assert (info.value.paths, info.value.codes) == (["rounding"], ["invalid_rounding"])


def test_another_partner_cannot_invoice_a_customer_read_with_a_subclassed_partner_id() -> None:
    partner, other = _partner(), _partner()
    data = to_dict(_customer(partner))
    data["partner_id"] = Hostile(data["partner_id"])
    theirs = from_dict(Customer, data)
    assert type(theirs.partner_id.value) is str
    assert theirs.partner_id != other.id


def test_a_stale_version_given_as_an_int_subclass_is_a_conflict() -> None:
    # I(0) equal to every number passed the memory store's version check.
    partner = _partner()
    customer = _customer(partner)
    store = MemoryStore()
    with store.unit_of_work() as uow:
        uow.partners.save(partner)
        uow.customers.save(customer)
        uow.commit()
    with store.unit_of_work() as uow:
        uow.customers.save(uow.customers.get(partner.id, customer.id).update_details(company="A"))
        uow.commit()
    data = to_dict(customer)
    data["version"] = HostileInt(0)
    stale = from_dict(Customer, data)
    assert type(stale.version) is int
    changed = stale.update_details(company="B")
    with store.unit_of_work() as uow, pytest.raises(ConcurrencyConflict):
        uow.customers.save(changed)
    with store.unit_of_work() as uow:
        assert uow.customers.get(partner.id, customer.id).company == "A"


def test_an_edit_of_a_quantity_given_as_an_int_subclass_is_a_change() -> None:
    partner = _partner()
    customer = _customer(partner)
    seats = {"description": "Seats", "quantity": HostileInt(2), "unit_amount": "100.00"}
    invoice = Invoice.issue(
        partner, customer, by=partner.team[0], number="Q1", today=TODAY, due_date=DUE,
        lines=[seats],
    )  # fmt: skip
    more = {**seats, "quantity": 5}
    updated = invoice.update(partner, by=partner.team[0], today=TODAY, lines=[more])
    assert updated.total == Money("500.00", "USD")
    assert [e.topic for e in updated.events][-1] == "invoice_updated"


def test_a_new_card_fee_rate_given_as_a_decimal_subclass_is_a_change() -> None:
    partner = _partner()
    updated = partner.set_card_fees(rate_percent=HostileDecimal("3.5"))
    assert updated.card_fees.rate_percent == Decimal("3.5")
    assert type(updated.card_fees.rate_percent) is Decimal


def test_markup_like_text_is_kept_as_plain_text() -> None:
    partner = _partner()
    customer = _customer(partner).update_details(
        company=Marked("Initech"), legal_name=Marked("Initech Inc"), ein=Marked("12-7654321")
    )
    assert customer.company == "Initech"
    assert type(customer.company) is str
    assert type(customer.legal_name) is str
    assert type(customer.ein.digits) is str  # type: ignore[union-attr]
    assert type(to_dict(customer)["company"]) is str


def test_a_due_date_given_as_a_date_subclass_is_a_plain_date() -> None:
    partner = _partner()
    invoice = _invoice(partner, _customer(partner))
    assert type(invoice.due_date) is dt.date
    assert type(invoice.issue_date) is dt.date


CALLS: list[tuple[str, Callable[[Partner, Customer, Invoice], object]]] = [
    ("connect_integration", lambda p, c, i: p.connect_integration(Unhashable("xero"))),
    (
        "pay_invoices",
        lambda p, c, i: pay_invoices(
            p, c, [i], payer=c.users[0], method=Unhashable("card"), idempotency_key="k"
        ),
    ),
    ("card_fee_for", lambda p, c, i: card_fee_for(p, c, Money("1", "USD"), Unhashable("card"))),
    ("CustomerId", lambda p, c, i: hash(CustomerId(Unhashable(str(c.id))))),
    ("Integration", lambda p, c, i: hash(Integration(Unhashable("xero")))),
]


@pytest.mark.parametrize("call", [c for _, c in CALLS], ids=[n for n, _ in CALLS])
def test_unhashable_text_is_no_type_error(
    call: Callable[[Partner, Customer, Invoice], object],
) -> None:
    partner = _partner()
    customer = _customer(partner)
    call(partner, customer, _invoice(partner, customer))


@given(st.integers(1, 10_000), st.integers(1, 10_000))
def test_each_invoice_is_charged_the_amount_its_key_s_text_names(
    first_cents: int, second_cents: int
) -> None:
    # Each key hashed as the other invoice's id: the amounts were read by the
    # keys' own hashes, and each invoice was charged the other's amount.
    partner = _partner()
    customer = _customer(partner)
    first = _invoice(partner, customer)
    second = Invoice.issue(
        partner, customer, by=partner.team[0], number="1002", today=TODAY, due_date=DUE,
        lines=[{"description": "Seats", "quantity": 1, "unit_amount": "200.00"}],
    )  # fmt: skip
    one, two = str(first.id), str(second.id)
    amounts = {
        Posing(one, as_=two): Money(Decimal(first_cents).scaleb(-2), "USD"),
        Posing(two, as_=one): Money(Decimal(second_cents).scaleb(-2), "USD"),
    }
    payment, _ = pay_invoices(
        partner, customer, [first, second], payer=customer.users[0], method="ach",
        idempotency_key="k", amounts=amounts,
    )  # fmt: skip
    charged = {str(a.invoice_id): a.amount for a in payment.allocations}
    assert charged == {
        one: Money(Decimal(first_cents).scaleb(-2), "USD"),
        two: Money(Decimal(second_cents).scaleb(-2), "USD"),
    }


def test_a_key_that_names_an_invoice_not_paid_is_refused_whatever_its_hash() -> None:
    # The key names the second invoice but is hashed as the first's id: the
    # first was charged, and the payment made.
    partner = _partner()
    customer = _customer(partner)
    first = _invoice(partner, customer)
    second = Invoice.issue(
        partner, customer, by=partner.team[0], number="1002", today=TODAY, due_date=DUE,
        lines=[{"description": "Seats", "quantity": 1, "unit_amount": "200.00"}],
    )  # fmt: skip
    key = Posing(str(second.id), as_=str(first.id))
    with pytest.raises(ValidationError) as info:
        pay_invoices(
            partner, customer, [first], payer=customer.users[0], method="ach",
            idempotency_key="k", amounts={key: "40.00"},
        )  # fmt: skip
    assert sorted(zip(info.value.codes, info.value.paths, strict=True)) == [
        ("missing", f"amounts[{first.id}]"),
        ("unknown_invoice", f"amounts[{second.id}]"),
    ]
    assert all(type(path) is str for path in info.value.paths)


@given(texts)
def test_an_error_keeps_the_key_it_names_as_plain_text(text: type[str]) -> None:
    for error in (
        NotFound("customer", text("cus_1")),
        ConcurrencyConflict(kind="invoice number", key=text("1001")),
    ):
        assert type(error.key) is str


class AnyLimit(int):
    """A number whose comparisons pass every bound."""

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return False

    def __le__(self, other: object) -> bool:
        return True

    def __ge__(self, other: object) -> bool:
        return True


@given(st.integers(max_value=0) | st.integers(min_value=MAX_PAGE_SIZE + 1))
def test_a_limit_out_of_range_is_refused_whatever_its_comparisons(number: int) -> None:
    # Compared as given: a page of 5000 rows passed the cap of 1000.
    partner = _partner()
    store = MemoryStore()
    calls: list[Callable[[], object]] = [
        lambda: PageRequest(limit=AnyLimit(number)),
        lambda: PageRequest.parse(AnyLimit(number)),
    ]
    with store.unit_of_work() as uow:
        calls.append(lambda: uow.customers.list(partner.id, limit=AnyLimit(number)))
        calls.append(lambda: uow.outbox.pending(AnyLimit(number)))
        for call in calls:
            with pytest.raises(ValidationError) as info:
                call()
            assert (info.value.paths, info.value.codes) == (["limit"], ["invalid_limit"])


@given(st.integers(1, MAX_PAGE_SIZE))
def test_a_limit_in_range_is_kept_as_a_plain_int(number: int) -> None:
    for page in (PageRequest(limit=AnyLimit(number)), PageRequest.parse(AnyLimit(number))):
        assert page.limit == number
        assert type(page.limit) is int


class HidesNul(str):
    """Text whose own checks find no NUL in it, and nothing but ASCII."""

    def isascii(self) -> bool:
        return True

    def __contains__(self, other: object) -> bool:
        return False


def _stored(store: Store) -> tuple[Partner, Customer, Invoice]:
    partner = _partner()
    customer = _customer(partner)
    invoice = _invoice(partner, customer)
    with store.unit_of_work() as uow:
        uow.partners.save(partner)
        uow.customers.save(customer)
        uow.invoices.save(invoice)
        uow.commit()
    return partner, customer, invoice


STORES: list[Callable[[], Store]] = [MemoryStore, lambda: SqliteStore(":memory:")]


@pytest.mark.parametrize("make", STORES, ids=["memory", "sqlite"])
def test_a_query_s_text_is_checked_as_plain_text(make: Callable[[], Store]) -> None:
    # Checked with the subclass's own isascii() and __contains__: a NUL
    # passed, for a database to refuse with an error of its own (or not at all).
    store = make()
    partner, _, _ = _stored(store)
    with store.unit_of_work() as uow:
        calls: list[tuple[str, Callable[[], object]]] = [
            ("number", lambda: check_text("number", HidesNul("10\x0001"))),
            ("number", lambda: uow.invoices.get_by_number(partner.id, HidesNul("10\x0001"))),
            ("key", lambda: uow.payments.get_by_idempotency_key(partner.id, HidesNul("k\x00"))),
            ("name_prefix", lambda: uow.customers.list(partner.id, name_prefix=HidesNul("G\x00"))),
        ]
        for path, call in calls:
            with pytest.raises(ValidationError) as info:
                call()
            assert (info.value.paths, info.value.codes) == ([path], ["invalid_text"])


def test_an_idempotency_key_that_hides_a_nul_is_refused_at_its_path() -> None:
    store = MemoryStore()
    partner, customer, invoice = _stored(store)
    with store.unit_of_work() as uow, pytest.raises(ValidationError) as info:
        services.pay_invoices(
            uow, partner.id, customer.id, [invoice.id], payer=customer.users[0],
            method="ach", idempotency_key=HidesNul("k\x00"),
        )  # fmt: skip
    assert (info.value.paths, info.value.codes) == (["idempotency_key"], ["invalid_text"])


@pytest.mark.parametrize("text", ["db\x00.sqlite", "file:db\x00.sqlite?mode=rwc"])
@pytest.mark.parametrize("kind", [str, HidesNul, Path], ids=["str", "HidesNul", "Path"])
def test_a_sqlite_path_holding_a_nul_is_refused_at_its_path(
    kind: Callable[[str], object], text: str
) -> None:
    # Given as a subclass that hides it, the NUL reached sqlite3, which
    # raised a bare ValueError ("embedded null byte").
    with pytest.raises(ValidationError) as info:
        SqliteStore(kind(text))  # type: ignore[arg-type]
    assert (info.value.paths, info.value.codes) == (["path"], ["invalid_text"])


def test_a_postgres_dsn_that_hides_a_nul_is_refused_before_connecting() -> None:
    # Passed as given, the NUL reached psycopg, which tried to connect.
    with pytest.raises(ValidationError) as info:
        PostgresStore(HidesNul("host=localhost dbname=altpay\x00"))
    assert (info.value.paths, info.value.codes) == (["dsn"], ["invalid_text"])


# -- the testing kit's arguments ------------------------------------------------------


@given(st.data())
def test_a_strategy_s_member_is_the_one_its_argument_s_text_names(data: st.DataObject) -> None:
    # Looked up with the argument's own __hash__ and __eq__: team_members()
    # given the text "read_only", hashed as "admin", drew admins.
    role, other = data.draw(st.permutations(list(Role)))[:2]
    member = data.draw(strategies.team_members(Posing(role.value, as_=other.value)))
    assert member.role is role
    status, other_status = data.draw(st.permutations(list(CustomerStatus)))[:2]
    customer = data.draw(strategies.customers(status=Posing(status.value, as_=other_status.value)))
    assert customer.status is status


class Shouting(str):
    """Text whose own upper() names the United States, whatever it says."""

    def upper(self) -> str:
        return "US"


@given(st.data())
def test_a_strategy_s_country_is_the_one_its_argument_s_text_names(
    data: st.DataObject,
) -> None:
    address = data.draw(strategies.addresses(Shouting("ca")))
    partner = data.draw(strategies.partners(country=Shouting("ca")))
    assert (address.country, partner.country) == ("CA", "CA")


@pytest.mark.parametrize(
    "make",
    [
        lambda: strategies.names(max_size=AnyLimit(0)),
        lambda: strategies.customers(min_users=AnyLimit(0)),
        lambda: strategies.partners(max_team=AnyLimit(0)),
        lambda: strategies.pages(st.integers(), max_size=AnyLimit(-1)),
    ],
    ids=["names", "customers", "partners", "pages"],
)
def test_a_strategy_s_bound_is_compared_as_a_plain_int(
    make: Callable[[], st.SearchStrategy[Any]],
) -> None:
    # Compared with the subclass's own comparisons, a bound below the least
    # passed, for Hypothesis to fail on (or draw nothing) later.
    with pytest.raises(InvalidArgument):
        make()


# -- the enumerations, called directly ----------------------------------------------------

ENUMS = sorted(
    (kind for kind in _fields.Choices.__subclasses__() if len(kind) > 1),
    key=lambda kind: kind.__name__,
)


@given(st.sampled_from(ENUMS).flatmap(lambda kind: st.permutations(list(kind))))
def test_an_enumeration_gives_the_member_its_value_s_text_names(
    members: list[enum.Enum],
) -> None:
    # Role("owner" posing as "admin") was Role.ADMIN: the members were
    # looked up with the text's own __hash__ and __eq__.
    member, other = members[:2]
    kind = type(member)
    assert kind(Posing(member.value, as_=other.value)) is member
    assert kind(Unhashable(member.value)) is member
    with pytest.raises(ValidationError) as info:
        kind(Posing("no such value", as_=other.value))
    assert info.value.codes == ["invalid_choice"]


# -- mappings of fields, read by their keys' text ------------------------------------------

ADDRESS = {
    "line1": "1 Main St",
    "city": "Albany",
    "region": "NY",
    "postal_code": "12207",
    "country": "US",
}


@given(st.sampled_from(sorted(ADDRESS)), st.sampled_from(["line3", "zip", "Line1", "city "]))
def test_an_address_key_is_read_by_its_text_not_its_hash(field: str, text: str) -> None:
    # A key "line3" hashed as "line1" (and equal to everything) was read as
    # line1: the address was built from a field its data did not name.
    data: dict[str, object] = {k: v for k, v in ADDRESS.items() if k != field}
    data[Posing(text, as_=field)] = ADDRESS[field]
    with pytest.raises(ValidationError) as info:
        Address.from_mapping(data)
    assert sorted(zip(info.value.paths, info.value.codes, strict=True)) == sorted(
        [(field, "missing"), (text, "unknown_field")]
    )


def test_an_address_key_given_as_text_and_as_a_subclass_is_a_duplicate() -> None:
    data: dict[str, object] = {**ADDRESS, Posing("city", as_="town"): "Troy"}
    with pytest.raises(ValidationError) as info:
        Address.from_mapping(data)
    assert (info.value.paths, info.value.codes) == (["city"], ["duplicate"])
    assert Address.from_mapping({Plain(k): v for k, v in ADDRESS.items()}) == Address(
        "1 Main St", "Albany", "NY", "12207", "US"
    )


@given(st.sampled_from(["first_name", "last_name", "email"]), st.sampled_from(["mail", "name"]))
def test_a_synced_user_s_key_is_read_by_its_text_not_its_hash(field: str, text: str) -> None:
    partner = _partner().connect_integration("xero", syncs_customers=True)
    user: dict[str, object] = {"first_name": "Bo", "last_name": "Li", "email": "bo@g.example"}
    user[Posing(text, as_=field)] = user.pop(field)
    with pytest.raises(ValidationError) as info:
        Customer.from_sync(
            partner, external_ref=ExternalRef(system="xero", id="1"), company="Globex",
            address=ADDRESS, users=[user],
        )  # fmt: skip
    assert sorted(zip(info.value.paths, info.value.codes, strict=True)) == sorted(
        [(f"users[0].{field}", "missing"), (f"users[0].{text}", "unknown_field")]
    )


class Misleading(str):
    """Text whose own partition() names the invoice ids' prefix."""

    def partition(self, sep: str) -> tuple[str, str, str]:
        return ("inv", "_", "1")


def test_an_id_s_kind_is_the_one_its_text_names() -> None:
    assert EntityId.parse(Misleading("cus_1")) == CustomerId("cus_1")


class SaysAware(dt.datetime):
    """A naive time whose own utcoffset() says it is in UTC."""

    def utcoffset(self) -> dt.timedelta:
        return dt.timedelta(0)


@given(st.datetimes(timezones=st.none()))
def test_a_naive_datetime_subclass_is_naive_whatever_its_utcoffset_says(
    moment: dt.datetime,
) -> None:
    # Its utcoffset() passed it as aware, and astimezone then read it as the
    # machine's local time; to_dict wrote it without an offset.
    naive = SaysAware.combine(moment.date(), moment.time())
    with pytest.raises(ValidationError) as info:
        CustomerPaymentMethods.of(_customer(_partner())).add(
            type="card", display_name="Visa", last4="4242", at=naive
        )
    assert info.value.codes == ["invalid_datetime"]
    with pytest.raises(ValidationError) as info:
        to_dict({"at": naive})
    assert info.value.codes == ["not_serializable"]


class Indent(int):
    """Multiplied into anything but spaces."""

    def __mul__(self, other: object) -> str:  # type: ignore[override]
        return '"oops'

    __rmul__ = __mul__  # type: ignore[assignment]


class Short(str):
    """Its own len() stops at the first document of two."""

    def __len__(self) -> int:
        return str.__len__(self).__index__() // 2


class SaysAscii(str):
    def isascii(self) -> bool:
        return True


@given(st.integers(0, 100))
def test_json_is_written_with_the_indent_checked(indent: int) -> None:
    assert to_json({"a": 1}, indent=Indent(indent)) == to_json({"a": 1}, indent=indent)


def test_json_text_is_read_whole_whatever_its_own_length() -> None:
    # The decoder took the text's own len() as its end: the second
    # document was never seen.
    doc = '{"amount": "1.00", "currency": "USD"}{"amount": "1.00", "currency": "USD"}'
    with pytest.raises(ValidationError) as info:
        from_json(Money, Short(doc))
    assert info.value.codes == ["invalid_json"]


@given(st.sampled_from([*TEXT_KINDS, SaysAscii]), st.text(min_size=1))
def test_to_dict_writes_text_and_numbers_as_the_plain_types(text: type[str], value: str) -> None:
    data = {Marked("key"): [text(value), HostileInt(3)], "n": {"m": HostileInt(-1), "r": Rate(2.5)}}
    written = to_dict(data)
    assert written == {"key": [value, 3], "n": {"m": -1, "r": 2.5}}
    assert _subclassed(written) == []
    assert type(written["n"]["r"]) is float
    assert [type(k) for k in written] == [str, str]
    assert type(to_dict(Plain(value))) is str


def _plain_and_subclassed(plain_values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Pairs of a plain value and the same value with some of its text,
    whole numbers and floats, keys among them, of a subclass of their own."""

    def subclassed(value: Any) -> st.SearchStrategy[Any]:
        kinds = {str: Plain, int: HostileInt, float: Rate}
        kind = kinds.get(type(value))
        return st.just(value) if kind is None else st.sampled_from([value, kind(value)])

    leaves = plain_values.flatmap(lambda value: subclassed(value).map(lambda same: (value, same)))

    def nested(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        lists = st.lists(children, max_size=5).map(
            lambda pairs: ([plain for plain, _ in pairs], [same for _, same in pairs])
        )
        items = st.lists(
            st.tuples(st.text(max_size=3), st.booleans(), children),
            max_size=5,
            unique_by=lambda item: item[0],
        )
        dicts = items.map(
            lambda items: (
                {key: plain for key, _, (plain, _) in items},
                {(Plain(key) if mark else key): same for key, mark, (_, same) in items},
            )
        )
        return lists | dicts

    return st.recursive(leaves, nested, max_leaves=20)


@given(
    _plain_and_subclassed(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=3)
    )
)
def test_to_dict_copies_nested_data_with_each_subclass_in_its_place(pair: tuple[Any, Any]) -> None:
    # Wherever a value of a subclass sits (first, in the middle or last of a
    # list or an object), the copy keeps every other value and the order.
    plain, same = pair
    written = to_dict(same)
    assert written == plain
    assert json.dumps(written) == json.dumps(plain)
    assert _subclassed(written) == []


@pytest.mark.parametrize("text", ["\ud800", "caf\u00e9 \udfff"])
def test_a_lone_surrogate_is_not_serializable_whatever_isascii_says(text: str) -> None:
    for data in ({"name": SaysAscii(text)}, {SaysAscii(text): 1}, [SaysAscii(text)]):
        with pytest.raises(ValidationError) as info:
            to_json(data)
        assert info.value.codes == ["not_serializable"]


def test_two_keys_of_one_text_are_not_serializable() -> None:
    with pytest.raises(ValidationError) as info:
        to_dict({Hostile("a"): 1, "a": 2})
    assert info.value.codes == ["not_serializable"]


# -- data read back, its keys and values of subclasses of str --------------------


def posing(text: str, as_: str) -> str:
    """Text ``text``, hashed as ``as_`` and equal to everything: a dict finds
    it by a look-up of ``as_``, a set of keys by a test for ``as_``."""
    return Posing(text, as_=as_)


def _with_key(data: dict[str, Any], name: str, text: str) -> dict[str, Any]:
    """``data`` with its key ``name`` given as ``text``, posing as ``name``."""
    return {(posing(text, name) if key == name else key): value for key, value in data.items()}


@given(st.sampled_from(list(Role)), st.sampled_from(list(Role)))
def test_a_role_is_read_by_its_text_not_by_a_subclass_s_hash(role: Role, posing_as: Role) -> None:
    partner = _partner()
    partner = partner.add_team_member(
        name="Rita", email="rita@n.example", role=role.value, by=partner.team[0]
    )
    data = to_dict(partner)
    data["team"][1]["role"] = posing(role.value, posing_as.value)
    assert from_dict(Partner, data).team[1].role is role


@given(st.lists(st.sampled_from(["1 Main St", "9 Elm Rd", "22 Oak Ave"]), min_size=2, unique=True))
def test_customers_read_with_text_of_one_hash_keep_their_own_addresses(lines: list[str]) -> None:
    # The cache of addresses took text equal to everything, of one hash, for
    # the address first read with it: another customer's.
    partner = _partner()
    for line1 in lines:
        data = to_dict(_customer(partner))
        data["address"]["line1"] = posing(line1, "one hash for all")
        customer = from_dict(Customer, data)
        assert customer.address.line1 == line1
        assert type(customer.address.line1) is str


def _invoice_data() -> dict[str, Any]:
    partner = _partner()
    invoice = _invoice(partner, _customer(partner)).add_fee(
        partner, by=partner.team[0], kind="product", amount="2.00"
    )
    return to_dict(invoice)


_INVOICE_DATA = _invoice_data()


@given(st.sampled_from(["top", "line", "unit", "fee", "fee_amount"]), st.data())
def test_an_invoice_key_posing_as_a_field_is_unknown(where: str, data: st.DataObject) -> None:
    written = to_dict(from_dict(Invoice, _INVOICE_DATA))
    line, fee = written["lines"][0], written["fees"][0]
    target, path = {
        "top": (written, ""),
        "line": (line, "lines[0]."),
        "unit": (line["unit_amount"], "lines[0].unit_amount."),
        "fee": (fee, "fees[0]."),
        "fee_amount": (fee["amount"], "fees[0].amount."),
    }[where]
    name = data.draw(st.sampled_from(sorted(target)))
    changed = _with_key(target, name, "not_" + name)
    target.clear()
    target.update(changed)
    with pytest.raises(ValidationError) as info:
        from_dict(Invoice, written)
    assert f"{path}not_{name}" in info.value.paths
    assert "unknown_field" in info.value.codes


@pytest.mark.parametrize(
    ("status", "code"),
    [(posing("void", "open"), None), (posing("bogus", "paid"), "invalid_choice")],
)
def test_an_invoice_s_status_is_read_by_its_text(status: str, code: str | None) -> None:
    data = to_dict(from_dict(Invoice, _INVOICE_DATA))
    data["status"] = status
    if code is None:
        assert from_dict(Invoice, data).status.value == "void"
        return
    with pytest.raises(ValidationError) as info:
        from_dict(Invoice, data)
    assert info.value.codes == [code]


@given(st.sampled_from(["top", "address", "user"]), st.data())
def test_a_customer_key_posing_as_a_field_is_unknown(where: str, data: st.DataObject) -> None:
    written = to_dict(_customer(_partner()))
    target, path = {
        "top": (written, ""),
        "address": (written["address"], "address."),
        "user": (written["users"][0], "users[0]."),
    }[where]
    name = data.draw(st.sampled_from(sorted(target)))
    changed = _with_key(target, name, "not_" + name)
    target.clear()
    target.update(changed)
    with pytest.raises(ValidationError) as info:
        from_dict(Customer, written)
    assert f"{path}not_{name}" in info.value.paths


@given(st.sampled_from(["amount", "currency"]))
def test_a_money_key_posing_as_a_field_is_unknown(name: str) -> None:
    data = _with_key({"amount": "1.00", "currency": "CAD"}, name, "k" + name)
    with pytest.raises(ValidationError) as info:
        from_dict(Money, data)
    assert sorted(info.value.paths) == sorted([name, "k" + name])


def test_a_line_and_a_fee_given_with_keys_posing_as_fields_are_refused() -> None:
    line = {"description": "x", "quantity": 1, posing("discount", "unit_amount"): "1.00"}
    with pytest.raises(ValidationError) as info:
        LineItem.parse(line, "USD")
    assert sorted(info.value.paths) == ["discount", "unit_amount"]
    fee = {"kind": "product", posing("amt", "amount"): "1.00"}
    with pytest.raises(ValidationError) as info:
        Fee.parse(fee, "USD")
    assert sorted(info.value.paths) == ["amount", "amt"]


def test_two_keys_of_one_text_are_a_duplicate_key() -> None:
    line = {"description": "x", "quantity": 1, "unit_amount": "1.00", Hostile("quantity"): 2}
    with pytest.raises(ValidationError) as info:
        LineItem.parse(line, "USD")
    assert info.value.errors[0].code == "duplicate_key"
    with pytest.raises(ValidationError) as info:
        from_dict(Money, {"amount": "1.00", "currency": "USD", Hostile("amount"): "2.00"})
    assert info.value.codes == ["duplicate_key"]


def test_a_key_given_twice_in_a_saved_method_is_not_shown() -> None:
    # A card number put in the wrong place, given twice: the duplicate is
    # named at the mapping, by its length only, as any saved method's input.
    number = "4111111111111111"
    book = CustomerPaymentMethods.of(_customer(_partner()))
    data = to_dict(book.add(type="card", display_name="Visa", last4="4242").methods[0])
    with pytest.raises(ValidationError) as info:
        from_dict(PaymentMethod, {**data, number: 1, Hostile(number): 2})
    assert (info.value.paths, info.value.codes) == ([""], ["duplicate_key"])
    assert number not in str(info.value)
    assert "16 characters" in str(info.value)


class Hidden(str):
    """Its own isascii() and ``in`` see nothing out of the ordinary."""

    def isascii(self) -> bool:
        return True

    def __contains__(self, other: object) -> bool:
        return False


def test_a_rate_and_a_time_are_read_by_their_text() -> None:
    data = to_dict(_partner())
    data["card_fees"]["rate_percent"] = Hidden("\u0663.\u0665")  # Arabic-Indic 3.5
    with pytest.raises(ValidationError) as info:
        from_dict(Partner, data)
    assert info.value.paths == ["card_fees.rate_percent"]
    data = to_dict(_partner())
    data["created_at"] = Hidden(data["created_at"] + "\x00")
    with pytest.raises(ValidationError) as info:
        from_dict(Partner, data)
    assert info.value.codes == ["invalid_datetime"]


def test_stored_rows_read_as_data_given_does() -> None:
    partner = _partner()
    customer, invoice = _customer(partner), _invoice(partner, _customer(partner))
    for value in (customer, invoice):
        data = to_dict(value)
        assert from_stored(type(value), data) == from_dict(type(value), data) == value


# -- the quick reads take each text by its plain form ---------------------------------


def _refused(cls: type[Any], data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        from_dict(cls, data)
    return list(zip(info.value.paths, info.value.codes, strict=True))


def test_an_address_line2_equal_to_every_text_is_not_taken_for_another() -> None:
    # Addresses read are kept by their fields' text: a line2 equal to every
    # text must not find the address kept for another customer's line2.
    for line2 in ("Suite 7", "Suite 8"):
        data = to_dict(_customer(_partner()))
        data["address"]["line2"] = Hostile(line2)
        read = from_dict(Customer, data)
        assert type(read.address.line2) is str
        assert str.__eq__(read.address.line2, line2)


def test_a_created_at_hiding_a_nul_is_an_invalid_datetime() -> None:
    data = to_dict(_customer(_partner()))
    data["created_at"] = HidesNul(data["created_at"] + "\x00")
    assert _refused(Customer, data) == [("created_at", "invalid_datetime")]


def test_a_customer_status_is_read_by_its_text_not_by_a_subclass_s_hash() -> None:
    data = to_dict(_customer(_partner()))
    data["status"] = Posing("deleted", as_=data["status"])
    assert _refused(Customer, data) == [("status", "invalid_choice")]


@pytest.mark.parametrize(
    ("where", "text", "code"),
    [("fees[0].kind", "bogus", "invalid_choice"), ("currency", "ZZZ", "unknown_currency")],
)
def test_an_invoice_fee_kind_and_currency_are_read_by_their_text(
    where: str, text: str, code: str
) -> None:
    data = _invoice_data()
    holder = data["fees"][0] if where.startswith("fees") else data
    name = where.rpartition(".")[2]
    holder[name] = Posing(text, as_=holder[name])
    assert _refused(Invoice, data) == [(where, code)]
