"""The helpers that ports.py gives adapters of their own."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from altpay_core import (
    AccessRequest,
    AccessRequestStatus,
    AppliedPayment,
    CardFeePolicy,
    Currency,
    CustomerId,
    CustomerPaymentMethods,
    EmailAddress,
    Event,
    ExternalRef,
    InvariantViolation,
    Invoice,
    InvoiceId,
    InvoiceStatus,
    LineItem,
    Money,
    Partner,
    PartnerId,
    Payment,
    PaymentId,
    PaymentStatus,
    Role,
    ScheduledPayment,
    ScheduledPaymentStatus,
    TeamMemberId,
    ValidationError,
    from_dict,
    from_json,
    pay_invoices,
    ports,
    to_dict,
    to_json,
)
from altpay_core.ports import MAX_PAGE_SIZE
from altpay_core.testing import contracts
from altpay_core.testing import strategies as aps

_LAST_POSITION = 2**63 - 1


def test_the_argument_checks_accept_what_the_built_in_stores_accept() -> None:
    cus = CustomerId.new()
    assert ports.check_id("customer_id", cus, CustomerId) is cus
    assert ports.check_id("customer_id", str(cus), CustomerId) == cus
    assert ports.check_text("number", "INV-1") == "INV-1"
    assert ports.check_choice("status", "open", InvoiceStatus) is InvoiceStatus.OPEN
    assert ports.check_choice("status", InvoiceStatus.PAID, InvoiceStatus) is InvoiceStatus.PAID
    assert ports.check_date("due_on", dt.date(2026, 1, 5)) == dt.date(2026, 1, 5)
    ann = EmailAddress("ann@globex.example")
    assert ports.check_email("email", ann) is ann
    assert ports.check_email("email", "Ann@GLOBEX.example").key == ann.key


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda: ports.check_id("customer_id", None, CustomerId), "invalid_id"),
        (lambda: ports.check_id("customer_id", "inv_1", CustomerId), "invalid_id"),
        (lambda: ports.check_text("customer_id", 7), "wrong_type"),
        (lambda: ports.check_text("customer_id", "a\x00b"), "invalid_text"),
        (lambda: ports.check_text("customer_id", "\ud800"), "invalid_text"),
        (lambda: ports.check_choice("customer_id", "late", InvoiceStatus), "invalid_choice"),
        (
            lambda: ports.check_date("customer_id", dt.datetime(2026, 1, 5, tzinfo=dt.UTC)),
            "invalid_date",
        ),
        (lambda: ports.check_email("customer_id", 5), "wrong_type"),
        (lambda: ports.check_email("customer_id", "no at sign"), "invalid_email"),
    ],
)
def test_the_argument_checks_name_the_argument(call: object, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        call()  # type: ignore[operator]
    assert (caught.value.paths, caught.value.codes) == (["customer_id"], [code])


@pytest.mark.parametrize("kind", ["invoices", "Customer", "", "tag", ["invoice"], None])
def test_fixed_fields_of_a_kind_no_store_names_are_refused(kind: object) -> None:
    # Not a check that quietly finds nothing to compare.
    with pytest.raises(ValidationError) as caught:
        ports.check_fixed_fields(kind, "inv_1", None, None)
    assert (caught.value.paths, caught.value.codes) == (["kind"], ["invalid_choice"])


def _encoded(value: object) -> str:
    raw = json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "value",
    [
        ["customers", "globex", "cus_1", "extra"],
        ["globex", "cus_1"],
        ["customers", "globex", 1],
        {"key": "globex"},
        "globex",
        ["invoices", "globex", "cus_1"],  # another listing's
        ["customers", "globex", "inv_1"],  # another listing's id
        ["customers", "Globex", "cus_1"],  # a key no row gives: not case-folded
    ],
)
def test_a_cursor_is_exactly_what_encode_writes(value: object) -> None:
    # A JSON array of three strings, for a row of the listing, and nothing else.
    with pytest.raises(ValidationError) as caught:
        ports.Cursor.decode(_encoded(value), "before", listing=ports.Listing.CUSTOMERS)
    assert (caught.value.paths, caught.value.codes) == (["before"], ["invalid_cursor"])
    cursor = ports.Cursor(ports.Listing.CUSTOMERS, "globex", "cus_1")
    assert ports.Cursor.decode(cursor.encode(), listing=ports.Listing.CUSTOMERS) == cursor


def test_a_cursor_nested_too_deep_to_read_is_no_cursor() -> None:
    text = base64.urlsafe_b64encode(b"[" * 100_000).decode()
    with pytest.raises(ValidationError) as caught:
        ports.Cursor.decode(text, listing=ports.Listing.CUSTOMERS)
    assert (caught.value.paths, caught.value.codes) == (["after"], ["invalid_cursor"])


@given(aps.customers(), st.from_type(Invoice))
def test_sort_keys_are_as_documented(customer: Any, invoice: Invoice) -> None:
    # Customers: the case-folded company name (not lower-cased: "ß" is "ss").
    assert ports.customer_sort_key(attrs.evolve(customer, company="Straße IT")) == "strasse it"
    # Invoices: the due date, a space, and the number; the cursor names both.
    key = ports.invoice_sort_key(invoice)
    assert key == f"{invoice.due_date.isoformat()} {invoice.number}"
    cursor = ports.Cursor.decode(ports.invoice_cursor(invoice), listing="invoices")
    assert (cursor.key, cursor.id) == (key, str(invoice.id))


def test_a_page_request_without_a_listing_takes_no_cursor() -> None:
    cursor = ports.Cursor(ports.Listing.INVOICES, "2026-02-01 1001", "inv_1").encode()
    assert ports.PageRequest.parse(5, cursor, listing=ports.Listing.INVOICES).limit == 5
    with pytest.raises(ValidationError) as caught:
        ports.PageRequest.parse(5, None, cursor)
    assert (caught.value.paths, caught.value.codes) == (["before"], ["invalid_cursor"])


@pytest.mark.parametrize("call", ["cursor", "decode", "parse"])
def test_a_listing_is_a_listing_or_its_name(call: str) -> None:
    # Text or None gave a bare AttributeError in encode, decode and parse.
    cursor = ports.Cursor(ports.Listing.CUSTOMERS, "globex", "cus_1")
    make = {
        "cursor": lambda listing: ports.Cursor(listing, "globex", "cus_1"),
        "decode": lambda listing: ports.Cursor.decode(cursor.encode(), listing=listing),
        "parse": lambda listing: ports.PageRequest.parse(5, cursor.encode(), listing=listing).after,
    }[call]
    assert make("customers") == make(ports.Listing.CUSTOMERS) == cursor
    for wrong in (None, 5, "orders"):
        if call == "parse" and wrong is None:
            continue  # no listing: no cursor taken (above)
        with pytest.raises(ValidationError) as caught:
            make(wrong)
        assert (caught.value.paths, caught.value.codes) == (["listing"], ["invalid_choice"])
    # Checked even when no cursor is given.
    with pytest.raises(ValidationError) as caught:
        ports.PageRequest.parse(5, listing="orders")
    assert (caught.value.paths, caught.value.codes) == (["listing"], ["invalid_choice"])


def test_a_cursors_key_and_id_are_text() -> None:
    with pytest.raises(ValidationError) as caught:
        ports.Cursor(ports.Listing.CUSTOMERS, 1, None)  # type: ignore[arg-type]
    assert (caught.value.paths, caught.value.codes) == (["key", "id"], ["wrong_type"] * 2)


_CURSOR = ports.Cursor(ports.Listing.CUSTOMERS, "globex", "cus_1")


@pytest.mark.parametrize(
    ("fields", "paths", "codes"),
    [
        ({"limit": 0}, ["limit"], ["invalid_limit"]),
        ({"limit": MAX_PAGE_SIZE + 1}, ["limit"], ["invalid_limit"]),
        ({"limit": "x"}, ["limit"], ["invalid_limit"]),
        ({"limit": True}, ["limit"], ["invalid_limit"]),
        ({"after": _CURSOR, "before": _CURSOR}, ["before"], ["conflicting_cursors"]),
        ({"after": _CURSOR.encode()}, ["after"], ["wrong_type"]),
        ({"limit": 0, "before": 5}, ["limit", "before"], ["invalid_limit", "wrong_type"]),
        # Two cursors that are not cursors: no conflict between them.
        ({"after": "x", "before": "y"}, ["after", "before"], ["wrong_type", "wrong_type"]),
    ],
)
def test_every_page_request_is_one_the_api_takes(
    fields: dict[str, Any], paths: list[str], codes: list[str]
) -> None:
    # Built directly or read back, as parse checks it.
    with pytest.raises(ValidationError) as caught:
        ports.PageRequest(**fields)
    assert (caught.value.paths, caught.value.codes) == (paths, codes)
    data = {"limit": 100, "after": None, "before": None, **fields}
    for name in ("after", "before"):
        if isinstance(data[name], ports.Cursor):
            data[name] = to_dict(data[name])
    with pytest.raises(ValidationError) as caught:
        from_dict(ports.PageRequest, data)
    assert sorted(caught.value.paths) == sorted(paths)


@pytest.mark.parametrize(
    ("listing", "key", "row_id", "paths"),
    [
        ("customers", "Globex", "cus_1", ["key"]),
        ("customers", "globex", "inv_1", ["id"]),
        ("customers", "\ud800", "cus_1", ["key"]),
        ("invoices", "2026-02-01", "inv_1", ["key"]),
        ("invoices", "2026-02-01 ", "inv_1", ["key"]),  # no invoice number is blank
        ("invoices", "2026-02-01 1001", "1", ["id"]),
        ("invoices", "2026-W05-1 1001", "inv_1", ["key"]),  # a date, not as a row writes it
        ("invoices", "not a date", "cus_1", ["key", "id"]),
    ],
)
def test_a_cursor_names_a_row_of_its_listing(
    listing: str, key: str, row_id: str, paths: list[str]
) -> None:
    # Any other would not encode (a lone surrogate), or not decode back.
    with pytest.raises(ValidationError) as caught:
        ports.Cursor(listing, key, row_id)
    assert (caught.value.paths, caught.value.codes) == (paths, ["invalid_cursor"] * len(paths))


@given(st.from_type(ports.PageRequest))
def test_page_requests_and_their_cursors_read_back_as_themselves(
    request: ports.PageRequest,
) -> None:
    assert from_dict(ports.PageRequest, to_dict(request)) == request
    for cursor in (request.after, request.before):
        if cursor is not None:
            assert ports.Cursor.decode(cursor.encode(), listing=cursor.listing) == cursor
            assert from_json(ports.Cursor, to_json(cursor)) == cursor


@given(
    position=st.integers(max_value=0) | st.integers(min_value=_LAST_POSITION + 1),
    event=aps.events(),
)
def test_an_outbox_position_counts_from_one(position: int, event: Event) -> None:
    with pytest.raises(ValidationError) as caught:
        ports.OutboxMessage(position, event)
    assert (caught.value.paths, caught.value.codes) == (["position"], ["invalid_position"])
    assert ports.OutboxMessage(1, event).position == 1
    assert ports.OutboxMessage(_LAST_POSITION, event).position == _LAST_POSITION


# -- an invoice's payment history ---------------------------------------------------

_HISTORY_TOTAL = Money("1000.00", "USD")


def _with_parts(parts: list[AppliedPayment], status: InvoiceStatus = InvoiceStatus.OPEN) -> Invoice:
    return Invoice(
        id=InvoiceId("inv_" + "1" * 32),
        partner_id=PartnerId.new(),
        customer_id=CustomerId.new(),
        number="1001",
        currency=Currency("USD"),
        issue_date=dt.date(2026, 1, 5),
        due_date=dt.date(2026, 2, 4),
        lines=[LineItem("Support", 1, _HISTORY_TOTAL)],
        payments=parts,
        status=status,
    )


_EDITS = st.sampled_from(["keep", "drop", "amount", "release", "count again"])


@given(
    parts=st.lists(st.tuples(st.integers(1, 100), st.booleans()), min_size=1, max_size=5),
    edits=st.data(),
    added=st.integers(0, 2),
)
def test_an_invoice_history_keeps_every_part_its_amount_and_its_release(
    parts: list[tuple[int, bool]], edits: st.DataObject, added: int
) -> None:
    """Parts may be added and released; a part dropped, changed or counting
    again is refused, at the first such part of the stored invoice: ``I5``
    at its index in the stored one for a dropped part, ``I5`` or ``I6`` at
    its index in the new one otherwise."""
    stored_parts = [
        AppliedPayment(PaymentId.new(), Money(amount, "USD"), released)
        for amount, released in parts
    ]
    stored = _with_parts(stored_parts)
    new_parts: list[AppliedPayment] = []
    expected: tuple[str, str] | None = None
    for at, old in enumerate(stored_parts):
        part = old
        edit = edits.draw(_EDITS)
        if edit == "drop":
            expected = expected or ("I5", f"payments[{at}]")
            continue
        index = len(new_parts)
        if edit == "amount":
            part = attrs.evolve(part, amount=part.amount + Money("0.01", "USD"))
            expected = expected or ("I5", f"payments[{index}]")
        elif edit == "release":
            part = attrs.evolve(part, released=True)
        elif edit == "count again" and part.released:
            part = attrs.evolve(part, released=False)
            expected = expected or ("I6", f"payments[{index}]")
        new_parts.append(part)
    new_parts += [AppliedPayment(PaymentId.new(), Money("1.00", "USD")) for _ in range(added)]
    new = attrs.evolve(stored, payments=new_parts)
    ports.check_invoice_history(None, new)
    if expected is None:
        ports.check_invoice_history(stored, new)
    else:
        with pytest.raises(InvariantViolation) as caught:
            ports.check_invoice_history(stored, new)
        assert (caught.value.rule, caught.value.path) == expected
        assert str(stored.id) in str(caught.value)
        assert "nothing was written" in str(caught.value)


_FINAL_MOVES = {
    InvoiceStatus.OPEN: set(InvoiceStatus),
    InvoiceStatus.VOID: {InvoiceStatus.VOID, InvoiceStatus.ARCHIVED},
    InvoiceStatus.ARCHIVED: {InvoiceStatus.ARCHIVED},
}


@pytest.mark.parametrize("was", list(_FINAL_MOVES))
@pytest.mark.parametrize("now", list(_FINAL_MOVES))
def test_a_void_invoice_is_archived_at_most_and_an_archived_one_stays_archived(
    was: InvoiceStatus, now: InvoiceStatus
) -> None:
    stored, new = _with_parts([], was), _with_parts([], now)
    if now in _FINAL_MOVES[was]:
        ports.check_invoice_history(stored, new)
    else:
        with pytest.raises(InvariantViolation) as caught:
            ports.check_invoice_history(stored, new)
        assert (caught.value.rule, caught.value.path) == ("I4", "status")


# -- what a save never changes, kind by kind -------------------------------------------


@given(stored=aps.payments(), status=st.sampled_from(PaymentStatus))
def test_a_payment_status_moves_only_as_the_commands_move_it(
    stored: Payment, status: PaymentStatus
) -> None:
    # Any pair of statuses, from any payment the commands make: a move the
    # commands make (one or several of them) passes, any other is refused
    # at the status.
    posed = contracts._posed_payment(stored, status)
    assume(posed is not None and status is not stored.status)
    assert posed is not None
    if (stored.status, status) in contracts._PAYMENT_MOVES:
        ports.check_payment_history(stored, posed)
    else:
        with pytest.raises(InvariantViolation) as caught:
            ports.check_payment_history(stored, posed)
        rule = "I7" if status is PaymentStatus.REFUNDED else "I6"
        assert (caught.value.rule, caught.value.path) == (rule, "status")
        assert "nothing was written" in str(caught.value)


@given(stored=aps.payments())
def test_a_payment_saved_again_as_it_is_passes(stored: Payment) -> None:
    ports.check_payment_history(None, stored)
    ports.check_payment_history(stored, stored)
    ports.check_payment_history(stored, attrs.evolve(stored, version=stored.version + 1))


@given(
    stored=aps.scheduled_payments(),
    status=st.sampled_from(ScheduledPaymentStatus),
    made=st.sampled_from(["payment_id", None]),
)
def test_only_a_scheduled_one_changes_its_status(
    stored: ScheduledPayment, status: ScheduledPaymentStatus, made: str | None
) -> None:
    processed = status is ScheduledPaymentStatus.PROCESSED
    payment_id = (stored.payment_id or PaymentId.new()) if processed else None
    if processed and made is None:
        payment_id = PaymentId.new()
    posed = attrs.evolve(stored, status=status, payment_id=payment_id)
    changed = (stored.status, stored.payment_id) != (posed.status, posed.payment_id)
    if stored.status is ScheduledPaymentStatus.SCHEDULED or not changed:
        ports.check_scheduled_payment_history(stored, posed)
    else:
        with pytest.raises(InvariantViolation) as caught:
            ports.check_scheduled_payment_history(stored, posed)
        path = "status" if status is not stored.status else "payment_id"
        assert (caught.value.rule, caught.value.path) == ("scheduled-payment", path)


@given(stored=aps.access_requests(), status=st.sampled_from(AccessRequestStatus))
def test_a_request_is_resolved_once(stored: AccessRequest, status: AccessRequestStatus) -> None:
    pending = status is AccessRequestStatus.PENDING
    approved = status is AccessRequestStatus.APPROVED
    posed = attrs.evolve(
        stored,
        status=status,
        customer_id=CustomerId.new() if approved else None,
        resolved_by=None if pending else TeamMemberId.new(),
        resolved_at=None if pending else stored.requested_at,
    )
    if stored.is_pending:
        ports.check_access_request_history(stored, posed)
    else:
        with pytest.raises(InvariantViolation) as caught:
            ports.check_access_request_history(stored, posed)
        assert caught.value.rule == "access-request-resolved-once"
        assert caught.value.path in ("status", "customer_id", "resolved_by")


@given(
    roles=st.lists(st.sampled_from(Role), max_size=4),
    data=st.data(),
)
def test_a_team_with_an_admin_keeps_one(roles: list[Role], data: st.DataObject) -> None:
    stored = Partner.create(name="Northwind IT", country="US")
    for index, role in enumerate(roles):
        stored = stored.add_team_member(name=f"M{index}", email=f"m{index}@n.example", role=role)
    now = data.draw(st.lists(st.sampled_from(Role), min_size=len(roles), max_size=len(roles)))
    kept = data.draw(st.lists(st.booleans(), min_size=len(roles), max_size=len(roles)))
    team = [attrs.evolve(m, role=r) for m, r, k in zip(stored.team, now, kept, strict=True) if k]
    new = attrs.evolve(stored, team=team)
    if Role.ADMIN in roles and not any(m.role is Role.ADMIN for m in team):
        with pytest.raises(InvariantViolation) as caught:
            ports.check_partner_history(stored, new)
        assert (caught.value.rule, caught.value.path) == ("team-admin", "team")
    else:
        ports.check_partner_history(stored, new)


@given(partner=aps.partners())
def test_a_partner_keeps_its_currency_and_country(partner: Partner) -> None:
    other = "CAD" if partner.currency.code == "USD" else "USD"
    moved = attrs.evolve(partner, currency=Currency(other), card_fees=CardFeePolicy.default(other))
    with pytest.raises(InvariantViolation) as caught:
        ports.check_partner_history(partner, moved)
    assert (caught.value.rule, caught.value.path) == ("I2", "currency")
    away = attrs.evolve(partner, country="CA" if partner.country == "US" else "US")
    with pytest.raises(InvariantViolation) as caught:
        ports.check_partner_history(partner, away)
    assert (caught.value.rule, caught.value.path) == ("I2", "country")


def _with_integrations(*connected: tuple[str, bool]) -> Partner:
    partner = contracts._partner()
    for system, syncs_customers in connected:
        partner = partner.connect_integration(
            system, syncs_customers=syncs_customers, syncs_invoices=not syncs_customers
        )
    return partner


@pytest.mark.parametrize(
    ("partner", "system", "allowed"),
    [
        # By hand (no reference): only while nothing syncs customers.
        (None, None, True),
        (_with_integrations(), None, True),
        (_with_integrations(("quickbooks", False)), None, True),
        (_with_integrations(("connectwise", True)), None, False),
        # Synced: from a connected integration of the partner that syncs customers.
        (None, "connectwise", False),
        (_with_integrations(), "connectwise", False),
        (_with_integrations(("connectwise", True)), "connectwise", True),
        (_with_integrations(("connectwise", True)), "ConnectWise", True),
        (_with_integrations(("connectwise", True)), "halopsa", False),
        (_with_integrations(("quickbooks", False)), "quickbooks", False),
        (_with_integrations(("connectwise", True)).disconnect_integration("connectwise"),
         "connectwise", False),
    ],
)  # fmt: skip
def test_a_new_customer_may_be_added_by_hand_or_synced_as_the_partner_stands_c6(
    partner: Partner | None, system: str | None, allowed: bool
) -> None:
    ref = None if system is None else ExternalRef(system, "4711")
    assert ports.may_add_customer(partner, ref) is allowed


_HISTORY_CHECKS = [
    (ports.check_saved_methods, CustomerPaymentMethods),
    (ports.check_invoice_history, Invoice),
    (ports.check_payment_history, Payment),
    (ports.check_scheduled_payment_history, ScheduledPayment),
    (ports.check_access_request_history, AccessRequest),
    (ports.check_partner_history, Partner),
]


@pytest.mark.parametrize(
    ("check", "kind"), _HISTORY_CHECKS, ids=[check.__name__ for check, _ in _HISTORY_CHECKS]
)
@given(data=st.data())
def test_a_history_check_passes_a_new_aggregate_and_one_saved_again_as_it_is(
    check: Any, kind: type, data: st.DataObject
) -> None:
    value = data.draw(st.from_type(kind))
    check(None, value)  # new in the store: no history to keep
    check(value, value)


@pytest.mark.parametrize(
    ("check", "kind"), _HISTORY_CHECKS, ids=[check.__name__ for check, _ in _HISTORY_CHECKS]
)
@given(other=st.one_of(aps.partners(), aps.invoices(), st.integers(), st.text()))
def test_a_history_check_names_an_argument_of_another_kind(
    check: Any, kind: type, other: object
) -> None:
    # What the check reads of one kind is not there on another: a
    # ``wrong_type`` error at the argument, not an ``AttributeError`` inside.
    assume(not isinstance(other, kind))
    with pytest.raises(ValidationError) as caught:
        check(None, other)
    assert (caught.value.paths, caught.value.codes) == (["new"], ["wrong_type"])
    with pytest.raises(ValidationError) as caught:
        check(other, other)
    assert (caught.value.paths, caught.value.codes) == (["stored"], ["wrong_type"])


@pytest.mark.parametrize("kind", ["partner", "customer", "invoice", "payment methods"])
@given(data=st.data())
def test_fixed_fields_of_another_kind_of_aggregate_name_the_argument(
    kind: str, data: st.DataObject
) -> None:
    other = data.draw(st.sampled_from([5, "inv_1", Money("1.00", "USD")]) | aps.payments())
    with pytest.raises(ValidationError) as caught:
        ports.check_fixed_fields(kind, "key", None, other)
    assert (caught.value.paths, caught.value.codes) == (["new"], ["wrong_type"])
    with pytest.raises(ValidationError) as caught:
        ports.check_fixed_fields(kind, "key", other, other)
    assert (caught.value.paths, caught.value.codes) == (["stored"], ["wrong_type"])


def test_a_void_invoice_is_never_saved_paid() -> None:
    stored = _with_parts([], InvoiceStatus.VOID)
    paid = _with_parts([AppliedPayment(PaymentId.new(), _HISTORY_TOTAL)], InvoiceStatus.PAID)
    with pytest.raises(InvariantViolation) as caught:
        ports.check_invoice_history(stored, paid)
    assert (caught.value.rule, caught.value.path) == ("I4", "status")


def test_a_part_moved_and_changed_is_named_at_its_new_index() -> None:
    a, b = (AppliedPayment(PaymentId.new(), Money(n, "USD")) for n in ("10.00", "20.00"))
    stored = _with_parts([a, b])
    new = attrs.evolve(stored, payments=[b, attrs.evolve(a, amount=Money("10.01", "USD"))])
    with pytest.raises(InvariantViolation) as caught:
        ports.check_invoice_history(stored, new)
    assert (caught.value.rule, caught.value.path) == ("I5", "payments[1]")


def test_a_part_in_another_currency_is_another_part() -> None:
    part = AppliedPayment(PaymentId.new(), Money("10.00", "USD"))
    stored = _with_parts([part])
    cad = Currency("CAD")
    new = attrs.evolve(
        stored,
        currency=cad,
        lines=[LineItem("Support", 1, Money("1000.00", cad))],
        payments=[attrs.evolve(part, amount=Money("10.00", cad))],
    )
    with pytest.raises(InvariantViolation) as caught:
        ports.check_invoice_history(stored, new)
    assert (caught.value.rule, caught.value.path) == ("I5", "payments[0]")


def _card_payment_of_two() -> Payment:
    """A processing card payment of two 100.00 invoices, 3.05 of card fee each."""
    partner = contracts._partner()
    customer = contracts._customer(partner)
    one, two = (contracts._invoice(partner, customer, n) for n in ("1001", "1002"))
    payment, _ = pay_invoices(
        partner,
        customer,
        [one, two],
        payer=customer.users[0],
        method="card",
        idempotency_key="k1",
        at=contracts._at(2),
    )
    return payment


def test_a_payment_keeps_each_invoices_card_fee_share() -> None:
    stored = _card_payment_of_two()
    first, second = stored.allocations
    cent = Money("0.01", stored.currency)
    moved = attrs.evolve(
        stored,
        allocations=(
            attrs.evolve(first, card_fee=first.card_fee - cent),
            attrs.evolve(second, card_fee=second.card_fee + cent),
        ),
    )
    with pytest.raises(InvariantViolation) as caught:
        ports.check_payment_history(stored, moved)
    assert (caught.value.rule, caught.value.path) == ("I5", "allocations[0].card_fee")


@pytest.mark.parametrize("status", [PaymentStatus.SUCCEEDED, PaymentStatus.FAILED])
def test_a_payment_moved_on_keeps_the_fees_it_had(status: PaymentStatus) -> None:
    stored = _card_payment_of_two()
    posed = contracts._posed_payment(stored, status)
    assert posed is not None
    assert posed.fees == stored.fees
    (fee,) = posed.fees
    edited = attrs.evolve(posed, fees=(attrs.evolve(fee, name="Edited fee"),))
    with pytest.raises(InvariantViolation) as caught:
        ports.check_payment_history(stored, edited)
    assert (caught.value.rule, caught.value.path) == ("I6", "fees")
