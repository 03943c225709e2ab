"""A stateful test of invoices and payments against a model of the balances.

Random sequences of issuing, syncing an invoice in, editing an invoice's
amounts, the source's figure of what was paid there (within what is left or
beyond it), paying (partial, full, batch, over the balance), replaying a
request, succeeding, settling, failing, returning (standard and
unauthorised), charging back, refunding, voiding and archiving, on manual and
synced invoices alike. After every step, for every invoice: balance = total -
(the allocations of payments that are processing or succeeded +
paid_in_source), 0 <= balance <= total, and the status matches the balance;
each payment's part of each invoice, on the payment and on the invoice's
record of it (given back or not), is the model's; each card fee, its shares
across a batch and the payment's total are those of a model of the partner's
card-fee policy (I8, I9); every aggregate carries exactly the events its
state changes produced, each naming the partner, the fields that changed
(those the command was given, then the total, amount paid, balance and
status, whichever changed) and the time the command was given; a refused
command changed nothing, and was refused for the reason the model expects
(the rule, and the field at fault).
"""

from __future__ import annotations

import datetime as dt
import functools
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from altpay_core import (
    AltpayError,
    CardFeeBearer,
    Customer,
    CustomerDraft,
    ExternalRef,
    InvariantViolation,
    Invoice,
    InvoiceId,
    InvoiceStatus,
    Money,
    Partner,
    Payment,
    PaymentId,
    PaymentStatus,
    PermissionDenied,
    ReturnKind,
    ValidationError,
    charge_back_payment,
    fail_payment,
    pay_invoices,
    refund_payment,
    return_payment,
    to_dict,
)

TODAY = dt.date(2026, 1, 5)
MINUTE = dt.timedelta(minutes=1)
HOLDING = ("processing", "succeeded")
# What an invoice's event names after the fields a command was given, when
# they changed, in this order.
DERIVED = ("total", "amount_paid", "balance", "status")
# The default card fee (I8): 2.9% + 0.30, in minor units for the fixed part.
DEFAULT_RATE, DEFAULT_FIXED = Decimal("2.9"), 30
RETURN_FEES = {"standard": "15.00", "unauthorized": "25.00", "dispute": "25.00"}
# How a payment gives its balances back: its new state, its fee, its event.
GIVE_BACK: dict[str, tuple[str, str | None, str]] = {
    "fail": ("failed", "standard", "payment_failed"),
    "return": ("failed", "standard", "payment_failed"),
    "unauthorized return": ("charged_back", "unauthorized", "payment_chargeback"),
    "charge back": ("charged_back", "dispute", "payment_chargeback"),
    "refund": ("refunded", None, "payment_refunded"),
    "partial refund": ("refunded", None, "payment_refunded"),
}


def _customer(partner: Partner) -> Customer:
    address = (
        {"line1": "1 Main St", "city": "Albany", "region": "NY", "postal_code": "12207"}
        if partner.country == "US"
        else {"line1": "1 Front St", "city": "Toronto", "region": "ON", "postal_code": "M5J 2N8"}
    )
    address["country"] = partner.country
    draft = CustomerDraft.start(partner).enter_details(company="Globex", address=address)
    draft = draft.add_user(first_name="Ann", last_name="Lee", email="ann@globex.example")
    return draft.add_user(first_name="Bo", last_name="Li", email="bo@globex.example").create()


class PaymentsMachine(RuleBasedStateMachine):
    """Each rule picks what it acts on mostly among the aggregates it may act
    on (so that long lifecycles happen) and sometimes among all of them (so
    that refusals are tried too); the model says which it is."""

    def __init__(self) -> None:
        super().__init__()
        # The domain's aggregates, as a repository would hold them.
        self.invoice: dict[InvoiceId, Invoice] = {}
        self.payment: dict[PaymentId, Payment] = {}
        # The model: amounts in minor units, states as plain strings.
        self.total: dict[InvoiceId, int] = {}
        self.fee_units: dict[InvoiceId, int] = {}  # of the total, its fees
        # The synced invoices, and what their source reports as paid there.
        self.synced: set[InvoiceId] = set()
        self.source: dict[InvoiceId, int] = {}
        self.voided: set[InvoiceId] = set()
        self.archived: set[InvoiceId] = set()
        self.parts: dict[PaymentId, dict[InvoiceId, int]] = {}
        self.state: dict[PaymentId, str] = {}
        self.method: dict[PaymentId, str] = {}
        self.settled: set[PaymentId] = set()
        self.return_fee: dict[PaymentId, str] = {}
        # Each card payment's fee in minor units (None: no fee line), whether
        # the customer pays it, and each invoice's share of it.
        self.card_fee: dict[PaymentId, tuple[int | None, bool, list[int]]] = {}
        # What each payment asked for (amounts None: every balance in full).
        self.request: dict[
            PaymentId, tuple[list[InvoiceId], dict[InvoiceId, Money] | None, str]
        ] = {}
        # The events each aggregate must carry, oldest first: the topic, the
        # fields it says changed, and its time (None: the clock's, unchecked).
        self.events: dict[Any, list[tuple[str, tuple[str, ...], dt.datetime | None]]] = {}
        # The time given to the commands that take one, a minute later each
        # time, and later than the invoices' creation (the current time).
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=1)
        self.keys = 0

    @initialize(
        country=st.sampled_from(["US", "CA"]),
        bearer=st.sampled_from(CardFeeBearer),
        exception=st.sampled_from([None, *CardFeeBearer]),
        rate=st.sampled_from([None, "0", "1.75", "3.333", "20"]),
        fixed=st.sampled_from([None, 0, 25, 100]),
        amounts=st.lists(st.integers(1, 10**6), min_size=2, max_size=5),
        data=st.data(),
    )
    def setup(
        self,
        *,
        country: str,
        bearer: CardFeeBearer,
        exception: CardFeeBearer | None,
        rate: str | None,
        fixed: int | None,
        amounts: list[int],
        data: st.DataObject,
    ) -> None:
        partner = Partner.create(name="Northwind IT", country=country)
        partner = partner.connect_integration("connectwise", syncs_invoices=True)
        partner = partner.add_team_member(
            name="Mo Member", email="mo@northwind.example", role="member"
        )
        self.currency = partner.currency
        self.partner = partner.set_card_fees(
            bearer=bearer,
            rate_percent=rate,
            fixed=None if fixed is None else self.money(fixed),
        )
        self.customer = _customer(self.partner).set_card_fee_exception(
            exception, partner=self.partner
        )
        # The card fee's model (I8): the partner's rate and fixed part, or the
        # default; the customer's exception, if any, says who pays it.
        self.fee_rate = DEFAULT_RATE if rate is None else Decimal(rate)
        self.fee_fixed = DEFAULT_FIXED if fixed is None else fixed
        self.fee_passed_on = (exception or bearer) is CardFeeBearer.CUSTOMER
        self.methods = ["card", "ach"] if country == "US" else ["card", "pad", "eft"]
        for units in amounts:
            self.issue(units, 30)
        # A synced invoice too, perhaps paid in its source: the source's
        # figure and the payments meet from the first step.
        self.sync_in(amounts[0], 30, data)
        # A first payment, one the model allows: every rule has a payment to
        # act on from the first step.
        self.pay(data, allowed_only=True)
        assert self.payment

    # -- the model ------------------------------------------------------------------

    def held(self, invoice_id: InvoiceId) -> int:
        return sum(
            parts.get(invoice_id, 0)
            for pid, parts in self.parts.items()
            if self.state[pid] in HOLDING
        )

    def paid(self, invoice_id: InvoiceId) -> int:
        """What counts as paid: the payments holding their parts, and what
        the source reports as paid there."""
        return self.held(invoice_id) + self.source.get(invoice_id, 0)

    def balance(self, invoice_id: InvoiceId) -> int:
        return self.total[invoice_id] - self.paid(invoice_id)

    def is_open(self, invoice_id: InvoiceId) -> bool:
        return self.expected_status(invoice_id) is InvoiceStatus.OPEN

    def expected_status(self, invoice_id: InvoiceId) -> InvoiceStatus:
        if invoice_id in self.archived:
            return InvoiceStatus.ARCHIVED
        if invoice_id in self.voided:
            return InvoiceStatus.VOID
        return InvoiceStatus.PAID if self.balance(invoice_id) == 0 else InvoiceStatus.OPEN

    def derived(self, invoice_id: InvoiceId) -> tuple[int, int, int, InvoiceStatus]:
        """What an invoice's events name when it changes, besides the fields a
        command was given: in the order of ``DERIVED``."""
        total, paid = self.total[invoice_id], self.paid(invoice_id)
        return total, paid, total - paid, self.expected_status(invoice_id)

    def invoice_changes(
        self, invoice_id: InvoiceId, given: tuple[str, ...], was: tuple[object, ...]
    ) -> tuple[str, ...]:
        """An invoice event's ``changes``: the fields given, then those of
        ``DERIVED`` whose model value changed since ``was``."""
        now = self.derived(invoice_id)
        return (*given, *(name for name, a, b in zip(DERIVED, was, now, strict=True) if a != b))

    def expected_card_fee(self, parts: list[int]) -> tuple[int | None, bool, list[int]]:
        """The card fee of a card payment of ``parts`` (minor units), worked
        out once on their sum: the rate rounded half-even to a minor unit,
        plus the fixed part, or no fee when that is zero; and each part's share
        of it, by the largest remainder, ties to the earliest part (I9)."""
        whole = sum(parts)
        percent = (Decimal(whole) * self.fee_rate / 100).quantize(Decimal(1), ROUND_HALF_EVEN)
        fee = int(percent) + self.fee_fixed
        if fee == 0:
            return None, self.fee_passed_on, [0] * len(parts)
        shares = [fee * part // whole for part in parts]
        remainders = [fee * part % whole for part in parts]
        by_remainder = sorted(range(len(parts)), key=lambda k: (-remainders[k], k))
        for k in by_remainder[: fee - sum(shares)]:
            shares[k] += 1
        return fee, self.fee_passed_on, shares

    def expected_total(self, payment_id: PaymentId) -> int:
        """What the customer is charged: the parts, plus a card fee passed on."""
        fee, passed_on, _ = self.card_fee.get(payment_id, (None, False, []))
        return sum(self.parts[payment_id].values()) + (fee if fee and passed_on else 0)

    def tick(self) -> dt.datetime:
        self.now += MINUTE
        return self.now

    def expect(
        self, key: Any, topic: str, changes: tuple[str, ...] = (), at: dt.datetime | None = None
    ) -> None:
        self.events[key].append((topic, changes, at))

    def money(self, units: int) -> Money:
        return Money.from_minor_units(units, self.currency)

    def pick(self, data: st.DataObject, ids: list[Any], likely: list[Any], label: str) -> Any:
        """Mostly one of ``likely`` (when there are any), sometimes any of ``ids``."""
        if likely and data.draw(st.integers(0, 3), label=f"{label}: likely?"):
            return data.draw(st.sampled_from(likely), label=label)
        return data.draw(st.sampled_from(ids), label=label)

    def pick_payment(self, data: st.DataObject, likely: Any) -> PaymentId:
        ids = list(self.payment)
        return self.pick(data, ids, [p for p in ids if likely(p)], "payment")  # type: ignore[no-any-return]

    def snapshot(self) -> dict[Any, Any]:
        return {
            key: (to_dict(value), value.events)
            for key, value in (*self.invoice.items(), *self.payment.items())
        }

    def refused(
        self,
        before: dict[Any, Any],
        error: Exception,
        *,
        expected: bool = True,
        rule: str = "",
        path: str | None = None,
        kind: type[Exception] = AltpayError,
    ) -> None:
        assert expected, f"refused, but the model allows it: {error}"
        assert isinstance(error, (InvariantViolation, PermissionDenied, ValidationError))
        assert isinstance(error, kind), error
        if rule:
            assert getattr(error, "rule", None) == rule, error
        if path is not None:
            assert getattr(error, "path", None) == path, error
        assert self.snapshot() == before, "a refused command changed something"

    # -- invoices -------------------------------------------------------------------------

    @rule(units=st.integers(1, 10**6), days=st.integers(0, 60))
    def issue(self, units: int, days: int) -> None:
        invoice = Invoice.issue(
            self.partner,
            self.customer,
            by=self.partner.team[0],
            number=f"{len(self.invoice) + 1001}",
            lines=[{"description": "Support", "quantity": 1, "unit_amount": self.money(units)}],
            due_date=TODAY + dt.timedelta(days=days),
            today=TODAY,
        )
        self.invoice[invoice.id] = invoice
        self.total[invoice.id] = units
        self.fee_units[invoice.id] = 0
        self.events[invoice.id] = [("invoice_created", (), invoice.created_at)]

    @rule(units=st.integers(1, 10**6), days=st.integers(-30, 60), data=st.data())
    def sync_in(self, units: int, days: int, data: st.DataObject) -> None:
        """An invoice synced in from the partner's integration, its due date
        perhaps past, perhaps partly or wholly paid in its source (or with a
        figure above its total: refused, I5)."""
        figure = data.draw(
            st.sampled_from([0, units, units + 1]) | st.integers(0, units), label="figure"
        )
        number = f"CW-{len(self.invoice) + 1001}"
        sync_in = functools.partial(
            Invoice.from_sync,
            self.partner,
            self.customer,
            external_ref=ExternalRef("connectwise", number),
            number=number,
            # The line the edits give, so that an edit to the same amount is no change.
            lines=[{"description": "Support", "quantity": 1, "unit_amount": self.money(units)}],
            issue_date=TODAY,
            due_date=TODAY + dt.timedelta(days=days),
            paid_in_source=self.money(figure),
        )
        if figure > units:
            with pytest.raises(InvariantViolation) as caught:
                sync_in()
            assert (caught.value.rule, caught.value.path) == ("I5", "paid_in_source")
            return
        invoice = sync_in()
        event(f"synced in: {'paid' if figure == units else 'partly paid' if figure else 'unpaid'}")
        self.invoice[invoice.id] = invoice
        self.synced.add(invoice.id)
        if figure:
            self.source[invoice.id] = figure
        self.total[invoice.id] = units
        self.fee_units[invoice.id] = 0
        self.events[invoice.id] = [("invoice_created", (), invoice.created_at)]

    @rule(data=st.data(), how=st.sampled_from(["within", "beyond", "nothing"]))
    def report_source(self, data: st.DataObject, how: str) -> None:
        """The source's new figure of what was paid there, on any invoice
        (mostly a synced one still open): within what the payments made here
        leave, beyond it (refused, I5 at ``paid_in_source``), or nothing (zero
        or ``None``). A manual invoice takes none (I10), a void or archived
        one no sync (I4)."""
        likely = [
            i
            for i in self.invoice  # in the order made, as a set's varies between runs
            if i in self.synced and i not in self.voided and i not in self.archived
        ]
        invoice_id = self.pick(data, list(self.invoice), likely, "invoice")
        room = self.total[invoice_id] - self.held(invoice_id)
        if how == "within":
            # Now and then all that is left, which makes the invoice paid.
            figure = data.draw(st.just(room) | st.integers(0, room), label="figure")
        elif how == "beyond":
            figure = room + data.draw(st.integers(1, 1000), label="beyond by")
        else:
            figure = 0
        given = None if how == "nothing" and data.draw(st.booleans(), label="None?") else figure
        invoice = self.invoice[invoice_id]
        if invoice_id not in self.synced:
            expected: tuple[str, str] | None = ("I10", "external_ref")
        elif invoice_id in self.voided or invoice_id in self.archived:
            expected = ("I4", "status")
        elif figure > room:
            expected = ("I5", "paid_in_source")
        else:
            expected = None
        before, was = self.snapshot(), self.derived(invoice_id)
        try:
            new = invoice.apply_sync(paid_in_source=None if given is None else self.money(given))
        except AltpayError as error:
            rule, path = expected or ("", None)
            allowed = expected is None
            self.refused(
                before, error, expected=not allowed, kind=InvariantViolation, rule=rule, path=path
            )
            event(f"source figure refused: {rule}")
            return
        assert expected is None
        self.invoice[invoice_id] = new
        if figure == self.source.get(invoice_id, 0):
            assert new is invoice  # the same figure: nothing to do, nothing done
            return
        event(f"source figure: {how}")
        if figure:
            self.source[invoice_id] = figure
        else:
            del self.source[invoice_id]
        status = self.expected_status(invoice_id)
        paid_now = status is InvoiceStatus.PAID and status is not was[3]
        topic = "invoice_paid" if paid_now else "invoice_updated"
        self.expect(invoice_id, topic, self.invoice_changes(invoice_id, ("paid_in_source",), was))

    @rule(data=st.data(), archive=st.booleans())
    def close(self, data: st.DataObject, archive: bool) -> None:
        """Void or archive an invoice, whatever its state: mostly one with a
        payment (so that unpaid invoices stay open to be paid)."""
        paid = [i for i in self.invoice if self.paid_on(i)]
        self.close_invoice(self.pick(data, list(self.invoice), paid, "invoice"), archive=archive)

    def paid_on(self, invoice_id: InvoiceId) -> bool:
        """Whether a payment was ever made on the invoice, or its source
        reports something paid there."""
        return invoice_id in self.source or any(
            invoice_id in parts for parts in self.parts.values()
        )

    def close_invoice(self, invoice_id: InvoiceId, *, archive: bool) -> None:
        before = self.snapshot()
        paid = self.paid(invoice_id)
        if archive:
            allowed = invoice_id in self.archived or not 0 < paid < self.total[invoice_id]
        else:
            allowed = invoice_id not in self.archived and paid == 0
        invoice = self.invoice[invoice_id]
        try:
            new = invoice.archive(self.partner) if archive else invoice.void(self.partner)
        except AltpayError as error:
            # Archived, or (partly) paid: the invoice's status forbids it (I4).
            self.refused(
                before,
                error,
                expected=not allowed,
                kind=InvariantViolation,
                rule="I4",
                path="status",
            )
            return
        assert allowed
        done, topic = (
            (self.archived, "invoice_archived")
            if archive
            else (
                self.voided,
                "invoice_updated",
            )
        )
        if invoice_id not in done:
            done.add(invoice_id)
            self.expect(invoice_id, topic, ("status",))
        else:
            assert new is invoice  # nothing to do, nothing done
        self.invoice[invoice_id] = new

    @rule(data=st.data(), units=st.integers(1, 10**6), fee=st.booleans())
    def edit(self, data: st.DataObject, units: int, fee: bool) -> None:
        """Change an invoice's total, whatever its state (mostly one with a
        payment): its one line's amount becomes ``units``, or a late fee of
        ``units`` is added; by the partner on a manual invoice, by a sync on a
        synced one."""
        paid = [i for i in self.invoice if self.paid_on(i)]
        invoice_id = self.pick(data, list(self.invoice), paid, "invoice")
        invoice = self.invoice[invoice_id]
        line_units = self.total[invoice_id] - self.fee_units[invoice_id]
        new_total = self.total[invoice_id] + (units if fee else units - line_units)
        closed = invoice_id in self.voided or invoice_id in self.archived
        allowed = not closed and new_total >= self.paid(invoice_id)
        before, was = self.snapshot(), self.derived(invoice_id)
        late = {"kind": "late_payment", "amount": self.money(units)}
        line = {"description": "Support", "quantity": 1, "unit_amount": self.money(units)}
        try:
            if invoice_id in self.synced:
                changed = {"fees": [*invoice.fees, late]} if fee else {"lines": [line]}
                new = invoice.apply_sync(**changed)
            elif fee:
                new = invoice.add_fee(self.partner, **late)
            else:
                new = invoice.update(self.partner, lines=[line])
        except AltpayError as error:
            # Void or archived (I4), or a total below what is paid (I5).
            rule, path = ("I4", "status") if closed else ("I5", "lines")
            self.refused(
                before, error, expected=not allowed, kind=InvariantViolation, rule=rule, path=path
            )
            return
        assert allowed
        self.invoice[invoice_id] = new
        if not fee and units == line_units:
            assert new is invoice  # the same line: nothing to do, nothing done
            return
        event(f"edited: {'a fee added' if fee else 'the lines'}")
        self.total[invoice_id] = new_total
        self.fee_units[invoice_id] += units if fee else 0
        status = self.expected_status(invoice_id)
        paid_now = status is InvoiceStatus.PAID and status is not was[3]
        topic = "invoice_paid" if paid_now else "invoice_updated"
        given = ("fees",) if fee else ("lines",)
        self.expect(invoice_id, topic, self.invoice_changes(invoice_id, given, was))

    # -- paying ---------------------------------------------------------------------------

    @rule(data=st.data())
    def pay(self, data: st.DataObject, *, allowed_only: bool = False, least: int = 1) -> None:
        """Pay one (or ``least``) to four invoices, each in part, in full or
        over its balance (``allowed_only``: open invoices, none over its
        balance)."""
        ids = list(self.invoice)
        likely = [i for i in ids if self.is_open(i)]
        if allowed_only:
            pool = likely
        else:
            pool = likely if likely and data.draw(st.integers(0, 3), label="likely?") else ids
        chosen = data.draw(
            st.lists(
                st.sampled_from(pool), min_size=min(least, len(pool)), max_size=4, unique=True
            ),
            label="invoices",
        )
        method = data.draw(st.sampled_from(self.methods), label="method")
        in_full = data.draw(st.booleans(), label="in full")
        amounts: dict[InvoiceId, Money] | None = None
        wanted: dict[InvoiceId, int] = {}
        if in_full:
            wanted = {i: self.balance(i) for i in chosen}
        else:
            amounts = {}
            for i in chosen:
                balance = self.balance(i)
                ways = ["part", "full"] if allowed_only else ["part", "full", "over"]
                how = data.draw(st.sampled_from(ways), label="how")
                if how == "over" or balance == 0:
                    units = balance + data.draw(st.integers(1, 1000), label="over by")
                elif how == "part" and balance > 1:
                    units = data.draw(st.integers(1, balance - 1), label="part")
                else:
                    units = balance
                wanted[i] = units
                amounts[i] = self.money(units)
        allowed = all(
            i not in self.archived and i not in self.voided and 0 < wanted[i] <= self.balance(i)
            for i in chosen
        )
        refusal = self.pay_refusal(chosen, wanted)
        assert (refusal is None) == allowed
        before = self.snapshot()
        self.keys += 1
        try:
            payment, touched = pay_invoices(
                self.partner,
                self.customer,
                [self.invoice[i] for i in chosen],
                payer=self.customer.users[self.keys % 2],
                method=method,
                idempotency_key=f"key-{self.keys}",
                amounts=amounts,
                at=(at := self.tick()),
            )
        except AltpayError as error:
            kind, rule, path = refusal or (AltpayError, None, None)
            self.refused(before, error, expected=not allowed, kind=kind, rule=rule or "", path=path)
            return
        assert allowed
        event(f"paid: {len(chosen)} invoice(s) by {method}")
        assert [inv.id for inv in touched] == chosen
        was = {i: self.derived(i) for i in chosen}
        self.parts[payment.id] = dict(wanted)
        self.state[payment.id] = "processing"
        self.method[payment.id] = method
        if method == "card":
            self.card_fee[payment.id] = self.expected_card_fee(list(wanted.values()))
        self.events[payment.id] = []
        assert payment.created_at == at
        self.request[payment.id] = (list(chosen), amounts, method)
        self.payment[payment.id] = payment
        for inv in touched:
            self.invoice[inv.id] = inv
            topic = "invoice_paid" if self.balance(inv.id) == 0 else "invoice_updated"
            self.expect(inv.id, topic, self.invoice_changes(inv.id, (), was[inv.id]), at)
        assert payment.amount == self.money(sum(wanted.values()))

    @rule(data=st.data(), units=st.lists(st.integers(1, 10**6), min_size=3, max_size=3))
    def pay_batch(self, data: st.DataObject, units: list[int]) -> None:
        """Pay three or four open invoices in one payment (issuing some first
        if fewer are open), as the model allows."""
        for amount in units[: max(0, 3 - sum(map(self.is_open, self.invoice)))]:
            self.issue(amount, 30)
        self.pay(data, allowed_only=True, least=3)

    @precondition(lambda self: self.payment)
    @rule(data=st.data(), same=st.booleans())
    def replay(self, data: st.DataObject, same: bool) -> None:
        """Send a payment's request again under its key: the same one, or another."""
        payment_id = self.pick_payment(data, lambda p: True)
        chosen, amounts, method = self.request[payment_id]
        first = self.payment[payment_id]
        if not same:
            # Another amount, or explicit amounts where the first paid in full.
            parts = self.parts[payment_id]
            amounts = {i: self.money(parts[i] + (i == chosen[0])) for i in chosen}
        before = self.snapshot()
        try:
            payment, touched = pay_invoices(
                self.partner,
                self.customer,
                [self.invoice[i] for i in chosen],
                payer=first.user_id,
                method=method,
                idempotency_key=first.idempotency_key,
                amounts=amounts,
                existing=first,
            )
        except InvariantViolation as error:
            self.refused(before, error, expected=not same, rule="idempotency")
            return
        assert same
        assert payment is first
        assert touched == ()

    def pay_refusal(
        self, chosen: list[InvoiceId], wanted: dict[InvoiceId, int]
    ) -> tuple[type[AltpayError], str | None, str | None] | None:
        """How paying ``wanted`` of ``chosen`` is refused, first reason first:
        an archived invoice is hidden from the payer (I1); then, invoice by
        invoice, one that is not open, reported at its place in the list
        (I4), or an amount above its balance, reported at that invoice's
        amount (I5); ``None`` if it is allowed."""
        if any(i in self.archived for i in chosen):
            return PermissionDenied, None, None
        for index, i in enumerate(chosen):
            if i in self.voided or self.balance(i) == 0:
                return InvariantViolation, "I4", f"invoices[{index}]"
            if wanted[i] > self.balance(i):
                return InvariantViolation, "I5", f"amounts[{i}]"
        return None

    # -- after paying ---------------------------------------------------------------------

    def touched(self, payment_id: PaymentId) -> list[Invoice]:
        return [self.invoice[i] for i in self.parts[payment_id]]

    @precondition(lambda self: self.payment)
    @rule(data=st.data(), then_settle=st.booleans())
    def succeed(self, data: st.DataObject, then_settle: bool) -> None:
        """The processor's good news: the payment succeeded, and perhaps settled."""
        payment_id = self.pick_payment(
            data, lambda p: self.state[p] == "processing" or p not in self.settled
        )
        self.succeed_payment(payment_id, then_settle=then_settle)

    def succeed_payment(self, payment_id: PaymentId, *, then_settle: bool) -> None:
        before = self.snapshot()
        allowed = self.state[payment_id] == "processing"
        try:
            new = self.payment[payment_id].succeed(at := self.tick())
        except AltpayError as error:
            # Only a processing payment succeeds (I6).
            self.refused(
                before,
                error,
                expected=not allowed,
                kind=InvariantViolation,
                rule="I6",
                path="status",
            )
        else:
            assert allowed
            assert new.succeeded_at == at
            self.payment[payment_id] = new
            self.state[payment_id] = "succeeded"
            self.expect(payment_id, "payment_succeeded", ("status",), at)
        if then_settle:
            self.settle(payment_id)

    def settle(self, payment_id: PaymentId) -> None:
        before = self.snapshot()
        # Only a succeeded payment settles (I7); one settled already, whatever
        # happened to it since, takes a settlement reported again as a repeat.
        allowed = self.state[payment_id] == "succeeded" or payment_id in self.settled
        try:
            new = self.payment[payment_id].settle(at := self.tick())
        except AltpayError as error:
            self.refused(
                before,
                error,
                expected=not allowed,
                kind=InvariantViolation,
                rule="I7",
                path="status",
            )
            return
        assert allowed
        if payment_id in self.settled:
            assert new is self.payment[payment_id]  # settled already: nothing to do
        else:
            self.settled.add(payment_id)
            self.expect(payment_id, "payment_settled", ("settled_at",), at)
            assert new.settled_at == at
        self.payment[payment_id] = new

    @precondition(lambda self: self.payment)
    @rule(data=st.data(), how=st.sampled_from(list(GIVE_BACK)))
    def give_back(self, data: st.DataObject, how: str) -> None:
        """A failure, a bank return, a chargeback or a refund (full or not)."""
        payment_id = self.pick_payment(data, lambda p: self.give_back_refusal(p, how) is None)
        self.give_back_payment(payment_id, how)

    @rule(
        data=st.data(),
        ending=st.sampled_from(
            [
                "refund",
                "partial refund",
                "charge back",
                "charge back, then refund",
                "refund, then charge back",
                "unauthorized return, then refund",
                "fail, then return",
            ]
        ),
        skip=st.sampled_from([None, "success", "settling"]),
        archive=st.booleans(),
        early=st.booleans(),
    )
    def see_it_through(
        self, data: st.DataObject, ending: str, skip: str | None, archive: bool, early: bool
    ) -> None:
        """A payment that holds its balances succeeds and settles (unless
        ``skip`` says which step it misses), then ends as ``ending`` says:
        the long lifecycles, refunds of card payments and of charged-back
        ones among them, and their refusals one step too early (with
        ``early``, a chargeback or refund is tried before each step, and
        refused). With ``archive``, its invoices are archived before it
        ends."""

        def likely(p: PaymentId) -> bool:
            """Holding its balances, with a step still to go."""
            if skip == "success":
                return self.state[p] == "processing"
            return self.state[p] in HOLDING and p not in self.settled

        payment_id = self.pick_payment(data, likely)
        if skip != "success":
            if self.state[payment_id] == "processing":
                # Too early for a chargeback or a refund (I6, I7): refused.
                self.give_back_payment(payment_id, "charge back" if early else "refund")
                self.succeed_payment(payment_id, then_settle=False)
            if skip != "settling":
                if early and payment_id not in self.settled:
                    self.give_back_payment(payment_id, "refund")  # not settled yet (I7)
                self.settle(payment_id)
        if archive:
            for invoice_id in self.parts[payment_id]:
                self.close_invoice(invoice_id, archive=True)
        for how in ending.split(", then "):
            if early and how == "refund":
                # Too late to decline, and a refund is in full only (I6, I7).
                self.give_back_payment(payment_id, "fail")
                self.give_back_payment(payment_id, "partial refund")
            self.give_back_payment(payment_id, how)

    def give_back_refusal(self, p: PaymentId, how: str) -> tuple[str, str] | None:
        """The rule and path of the refusal the model expects, or None."""
        state, card = self.state[p], self.method[p] == "card"
        if how == "fail":
            return None if state == "processing" else ("I6", "status")
        if how in ("return", "unauthorized return"):
            if card:
                return "I6", "method"
            return None if state in HOLDING else ("I6", "status")
        if how == "charge back":
            if not card:
                return "I6", "method"
            return None if state == "succeeded" else ("I6", "status")
        if state != "succeeded":
            return "I7", "status"
        if p not in self.settled:
            return "I7", "settled_at"
        return None if how == "refund" else ("I7", "amount")

    def give_back_payment(self, payment_id: PaymentId, how: str) -> None:
        current, invoices = self.payment[payment_id], self.touched(payment_id)
        expected = self.give_back_refusal(payment_id, how)
        card = "card" if self.method[payment_id] == "card" else "bank"
        seen = f"{how} of a {self.state[payment_id]} {card} payment"
        before = self.snapshot()
        at = self.tick()
        try:
            if how == "fail":
                new, released = fail_payment(current, invoices, at=at)
            elif how == "return":
                new, released = return_payment(current, invoices, ReturnKind.STANDARD, at=at)
            elif how == "unauthorized return":
                new, released = return_payment(current, invoices, "unauthorized", at=at)
            elif how == "charge back":
                new, released = charge_back_payment(current, invoices, at=at)
            else:
                # The refund is the whole total (I7), a card fee passed on included.
                total = self.expected_total(payment_id)
                amount = self.money(total - (how == "partial refund"))
                new, released = refund_payment(current, invoices, amount=amount, at=at)
        except AltpayError as error:
            rule, path = expected or ("", None)
            self.refused(before, error, expected=expected is not None, rule=rule, path=path)
            event(f"refused: {seen}")
            return
        assert expected is None
        event(f"given back: {seen}")
        state, fee, topic = GIVE_BACK[how]
        if how == "fail" and self.method[payment_id] == "card":
            fee = None  # a declined card: no return fee
        # A paid invoice is open again (its event says the status changed);
        # an archived one stays archived.
        was = {i: self.derived(i) for i in self.parts[payment_id]}
        self.payment[payment_id] = new
        self.state[payment_id] = state
        if fee is not None:
            self.return_fee[payment_id] = fee
        self.expect(payment_id, topic, ("status", "fees") if fee else ("status",), at)
        assert [inv.id for inv in released] == [inv.id for inv in invoices]
        for inv in released:
            self.invoice[inv.id] = inv
            changes = self.invoice_changes(inv.id, (), was[inv.id])
            self.expect(inv.id, "invoice_updated", changes, at)

    # -- after every step -------------------------------------------------------------------

    def teardown(self) -> None:
        event(f"payments made: {min(len(self.payment), 5)}{'+' * (len(self.payment) >= 5)}")

    @invariant()
    def balances_match_the_model(self) -> None:
        for invoice_id, invoice in self.invoice.items():
            total = self.money(self.total[invoice_id])
            assert invoice.total == total
            assert invoice.balance == self.money(self.balance(invoice_id))
            assert invoice.balance == invoice.total - invoice.amount_paid
            assert Money.zero(self.currency) <= invoice.balance <= invoice.total
            assert invoice.status is self.expected_status(invoice_id)
            assert invoice.amount_paid == self.money(self.paid(invoice_id))
            source = self.source.get(invoice_id)
            assert invoice.paid_in_source == (None if source is None else self.money(source))
            assert invoice.is_synced == (invoice_id in self.synced)
            assert invoice.is_partly_paid == (0 < self.paid(invoice_id) < self.total[invoice_id])
            paying = [pid for pid, parts in self.parts.items() if invoice_id in parts]
            assert [p.payment_id for p in invoice.payments] == paying

    @invariant()
    def payments_match_the_model(self) -> None:
        for payment_id, payment in self.payment.items():
            assert payment.status is PaymentStatus(self.state[payment_id])
            assert payment.is_settled == (payment_id in self.settled)
            assert payment.holds_balance == (self.state[payment_id] in HOLDING)
            parts = self.parts[payment_id]
            assert payment.amount == self.money(sum(parts.values()))
            # Each invoice's part, on the payment and on the invoice's own record
            # of it; a part given back stays on the invoice, marked released.
            assert payment.invoice_ids == tuple(parts)
            for invoice_id, units in parts.items():
                assert payment.allocation(invoice_id).amount == self.money(units)
                applied = self.invoice[invoice_id].applied(payment_id)
                assert applied.amount == self.money(units)
                assert applied.released == (self.state[payment_id] not in HOLDING)
            fee = payment.return_fee
            expected = self.return_fee.get(payment_id)
            if expected is None:
                assert fee is None
            else:
                assert fee is not None
                assert fee.amount == Money(RETURN_FEES[expected], self.currency)
                assert not fee.covered_by_customer
            # The card fee (I8), and its shares (I9), against the fee's model.
            fee_units, passed_on, shares = self.card_fee.get(
                payment_id, (None, False, [0] * len(parts))
            )
            card_fee = payment.card_fee
            if fee_units is None:
                assert card_fee is None
            else:
                assert card_fee is not None
                assert card_fee.amount == self.money(fee_units)
                assert card_fee.covered_by_customer == passed_on
            assert [a.card_fee for a in payment.allocations] == [self.money(u) for u in shares]
            assert sum(shares) == (fee_units or 0)
            assert payment.total == self.money(self.expected_total(payment_id))
            # The partner bears a card fee it absorbs, or one whose charge came
            # back to the customer (I7), but none for a declined card; and any
            # return fee.
            state = self.state[payment_id]
            borne = (
                fee_units
                if fee_units
                and state != "failed"
                and (not passed_on or state in ("refunded", "charged_back"))
                else 0
            )
            returned = RETURN_FEES.get(self.return_fee.get(payment_id, ""), "0")
            assert payment.partner_fees == self.money(borne) + Money(returned, self.currency)

    @invariant()
    def every_state_change_produced_its_event(self) -> None:
        for key, value in (*self.invoice.items(), *self.payment.items()):
            expected = self.events[key]
            assert [(e.topic, e.changes) for e in value.events] == [
                (topic, changes) for topic, changes, _ in expected
            ], key
            for happened, (_, _, at) in zip(value.events, expected, strict=True):
                assert happened.partner_id == self.partner.id
                assert happened.aggregate_id == str(key)
                assert at is None or happened.occurred_at == at, (happened, at)


PaymentsMachine.TestCase.settings = settings(stateful_step_count=20, deadline=None)
TestPayments = PaymentsMachine.TestCase
