"""Tests of payments: paying in full, in part and in batches, idempotency,
failures, returns, chargebacks, settling and refunds (I2, I4-I7), saved payment
methods and scheduled payments."""

from __future__ import annotations

import datetime as dt
import functools
import json
import pickle
import runpy
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Generic, NewType, NoReturn, TypeVar, TypeVarTuple

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from altpay_core import (
    Action,
    Allocation,
    AltpayError,
    CardFeeBearer,
    Currency,
    Customer,
    CustomerDraft,
    CustomerId,
    CustomerPaymentMethods,
    Fee,
    FeeKind,
    Impersonation,
    InvariantViolation,
    Invoice,
    InvoiceStatus,
    Money,
    NotFound,
    Page,
    Partner,
    PartnerId,
    Payment,
    PaymentId,
    PaymentMethod,
    PaymentMethodId,
    PaymentMethodStatus,
    PaymentMethodType,
    PaymentStatus,
    PermissionDenied,
    ReturnKind,
    Role,
    ScheduledPayment,
    ScheduledPaymentId,
    ScheduledPaymentStatus,
    TeamMember,
    UserId,
    ValidationError,
    card_fee_for,
    charge_back_payment,
    charge_now,
    fail_payment,
    from_dict,
    from_json,
    method_on_file,
    pay_invoices,
    payment,
    refund_payment,
    replay_payment,
    request_fingerprint,
    return_payment,
    run_scheduled_payment,
    schedule_payment,
    serialization,
    skip_scheduled_payment,
    to_dict,
    visible_invoices,
)
from altpay_core import payment as payment_module
from altpay_core.testing import contracts
from altpay_core.testing import strategies as aps

if TYPE_CHECKING:
    from decimal import Decimal as _OnlyTyped

TODAY = dt.date(2026, 1, 5)
AT = dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC)
HOURS_5 = dt.timedelta(hours=5)


def make_partner(country: str = "US") -> Partner:
    partner = Partner.create(name="Northwind IT", country=country)
    partner = partner.add_team_member(name="Ada Admin", email="ada@northwind.example", role="admin")
    return partner.add_team_member(name="Mo Member", email="mo@northwind.example", role="member")


def make_customer(partner: Partner, company: str = "Globex") -> Customer:
    if partner.country == "US":
        address = {
            "line1": "1 Main St",
            "city": "Albany",
            "region": "NY",
            "postal_code": "12207",
            "country": "US",
        }
    else:
        address = {
            "line1": "1 Front St",
            "city": "Toronto",
            "region": "ON",
            "postal_code": "M5J 2N8",
            "country": "CA",
        }
    draft = CustomerDraft.start(partner).enter_details(company=company, address=address)
    draft = draft.add_user(first_name="Ann", last_name="Lee", email="ann@globex.example")
    return draft.add_user(first_name="Bo", last_name="Li", email="bo@globex.example").create()


def issue(partner: Partner, customer: Customer, amount: str, number: str = "1001") -> Invoice:
    """An invoice issued on TODAY's morning, before the payments of the
    tests (at AT, and later), as stored (no pending event)."""
    invoice = Invoice.issue(
        partner,
        customer,
        by=partner.team[1],
        number=number,
        lines=[{"description": "Support", "quantity": 1, "unit_amount": amount}],
        due_date=TODAY + dt.timedelta(days=30),
        today=TODAY,
    )
    issued = dt.datetime.combine(TODAY, dt.time(9), tzinfo=dt.UTC)
    return attrs.evolve(invoice, created_at=issued)


class World:
    """A partner, a customer with two users, and two open invoices."""

    def __init__(self, country: str = "US") -> None:
        self.partner = make_partner(country)
        self.customer = make_customer(self.partner)
        self.ann, self.bo = self.customer.users
        self.a = issue(self.partner, self.customer, "300.00", "1001")
        self.b = issue(self.partner, self.customer, "100.00", "1002")
        self.currency = self.partner.currency

    def money(self, amount: str) -> Money:
        return Money(amount, self.currency)

    def pay(
        self,
        invoices: list[Invoice] | None = None,
        *,
        method: object = "ach",
        key: str = "key-1",
        amounts: dict[object, object] | None = None,
        **more: object,
    ) -> tuple[Payment, tuple[Invoice, ...]]:
        return pay_invoices(
            self.partner,
            self.customer,
            [self.a] if invoices is None else invoices,
            payer=more.pop("payer", self.ann),  # type: ignore[arg-type]
            method=method,  # type: ignore[arg-type]
            idempotency_key=key,
            amounts=amounts,  # type: ignore[arg-type]
            at=AT,
            **more,  # type: ignore[arg-type]
        )


@pytest.fixture
def world() -> World:
    return World()


_WORLD = World()
"""A world for Hypothesis tests, which take no function-scoped fixture."""


def usd(amount: str) -> Money:
    return Money(amount, "USD")


# -- paying -------------------------------------------------------------------------------


class TestPay:
    def test_partial_payment(self, world: World) -> None:
        pay, (inv,) = world.pay(amounts={world.a.id: "100.00"})
        assert pay.status is PaymentStatus.PROCESSING
        assert pay.amount == pay.total == usd("100.00")
        assert pay.fees == ()
        assert pay.created_at == AT
        assert pay.user_id == world.ann.id
        assert pay.method is PaymentMethodType.ACH
        assert pay.holds_balance
        assert pay.allocation(inv.id).amount == usd("100.00")
        assert inv.balance == usd("200.00")
        assert inv.is_partly_paid
        assert [e.topic for e in inv.events] == ["invoice_updated"]
        assert pay.events == ()
        with pytest.raises(NotFound):
            pay.allocation(world.b.id)

    def test_full_payment_by_default(self, world: World) -> None:
        pay, (inv,) = world.pay()
        assert pay.amount == usd("300.00")
        assert inv.status is InvoiceStatus.PAID
        assert inv.events[-1].topic == "invoice_paid"

    def test_batch_payment(self, world: World) -> None:
        pay, (a, b) = world.pay(
            [world.a, world.b], amounts={world.a.id: usd("50.00"), str(world.b.id): "100"}
        )
        assert pay.invoice_ids == (world.a.id, world.b.id)
        assert pay.amount == usd("150.00")
        assert (a.status, b.status) == (InvoiceStatus.OPEN, InvoiceStatus.PAID)
        assert a.applied(pay.id).amount == usd("50.00")
        assert b.applied(pay.id).amount == usd("100.00")
        # The payment's own record, each amount against its invoice.
        assert pay.allocation(a.id).amount == usd("50.00")
        assert pay.allocation(b.id).amount == usd("100.00")

    def test_a_batchs_card_fee_is_shared_in_proportion_i8_i9(self, world: World) -> None:
        # 2.9% of 150.00 plus 0.30 is 4.65: 120/150 of it is 3.72, 30/150 is 0.93.
        pay, (a, b) = world.pay(
            [world.a, world.b], method="card", amounts={world.a.id: "120.00", world.b.id: "30.00"}
        )
        assert pay.card_fee is not None
        assert pay.card_fee.amount == usd("4.65")
        assert pay.allocation(a.id).card_fee == usd("3.72")
        assert pay.allocation(b.id).card_fee == usd("0.93")
        assert pay.total == usd("154.65")

    def test_over_the_balance_is_refused_i5(self, world: World) -> None:
        with pytest.raises(InvariantViolation) as caught:
            world.pay(amounts={world.a.id: "300.01"})
        assert (caught.value.rule, caught.value.path) == ("I5", f"amounts[{world.a.id}]")
        _, (part,) = world.pay(amounts={world.a.id: "299.99"})
        with pytest.raises(InvariantViolation) as caught:
            world.pay([part], key="key-2", amounts={part.id: "0.02"})
        assert caught.value.rule == "I5"

    def test_processing_payment_holds_the_balance(self, world: World) -> None:
        # No double payment while a bank debit clears.
        _, (paid,) = world.pay()
        with pytest.raises(InvariantViolation) as caught:
            world.pay([paid], key="key-2", amounts={paid.id: "1.00"})
        assert caught.value.rule == "I4"

    def test_amounts_must_be_positive_and_in_the_currency_i2(self, world: World) -> None:
        with pytest.raises(ValidationError) as caught:
            world.pay(
                [world.a, world.b],
                amounts={world.a.id: "0", world.b.id: Money("1.00", "CAD")},
            )
        assert caught.value.paths == [f"amounts[{world.a.id}]", f"amounts[{world.b.id}]"]
        assert caught.value.codes == ["not_positive", "currency_mismatch"]
        with pytest.raises(ValidationError) as caught:
            world.pay(amounts={world.a.id: "-5"})
        assert caught.value.codes == ["not_positive"]

    def test_amounts_must_name_exactly_the_invoices(self, world: World) -> None:
        with pytest.raises(ValidationError) as caught:
            world.pay([world.a], amounts={world.b.id: "1"})
        assert caught.value.codes == ["missing", "unknown_invoice"]
        with pytest.raises(ValidationError) as caught:
            world.pay(amounts=[("x", 1)])  # type: ignore[arg-type]
        assert caught.value.paths == ["amounts"]

    def test_invoice_list_checks(self, world: World) -> None:
        with pytest.raises(ValidationError) as caught:
            world.pay([])
        assert caught.value.codes == ["empty"]
        with pytest.raises(ValidationError) as caught:
            world.pay([world.a, world.a, "inv_1"])  # type: ignore[list-item]
        assert caught.value.codes == ["duplicate", "wrong_type"]
        with pytest.raises(ValidationError) as caught:
            pay_invoices(
                world.partner,
                world.customer,
                world.a,  # type: ignore[arg-type]
                payer=world.ann,
                method="card",
                idempotency_key="k",
            )
        assert caught.value.paths == ["invoices"]

    def test_method_and_key_checks(self, world: World) -> None:
        with pytest.raises(ValidationError) as caught:
            world.pay(method="cash", key=" ")
        assert caught.value.paths == ["idempotency_key", "method"]
        with pytest.raises(ValidationError) as caught:
            world.pay(method=PaymentMethodType.PAD)
        assert caught.value.codes == ["method_unavailable"]
        canada = World("CA")
        for method in ("pad", "eft", "card"):
            assert canada.pay(method=method, key=method)[0].currency.code == "CAD"
        with pytest.raises(ValidationError):
            canada.pay(method="ach")

    @pytest.mark.parametrize("key", ["scheduled:sch_1", " scheduled:", "scheduled:anything"])
    def test_a_scheduled_runs_key_is_reserved(self, world: World, key: str) -> None:
        # Else a request could take a run's key, and the run would be
        # refused every night (the key another payment's).
        with pytest.raises(ValidationError) as caught:
            world.pay(key=key, method="cash")
        assert caught.value.paths == ["idempotency_key", "method"]
        assert caught.value.codes[0] == "reserved_key"
        assert world.pay(key="Scheduled:sch_1")[0].idempotency_key == "Scheduled:sch_1"
        assert world.pay(key="my scheduled:1")[0].idempotency_key == "my scheduled:1"

    def test_not_open_is_refused_i4(self, world: World) -> None:
        for closed in (world.a.void(world.partner), world.a.archive(world.partner)):
            with pytest.raises((InvariantViolation, PermissionDenied)):
                world.pay([closed])
        with pytest.raises(InvariantViolation) as caught:
            world.pay([world.a.void(world.partner)])
        assert caught.value.rule == "I4"

    @pytest.mark.parametrize("close", ["void", "pay"])
    def test_an_invoice_of_a_batch_not_open_is_named_by_its_place_i4(
        self, world: World, close: str
    ) -> None:
        # Voided, or paid in full, since it was chosen: the error says which
        # invoice of the batch it is, as the caller listed them.
        if close == "void":
            closed = world.b.void(world.partner)
        else:
            _, (closed,) = world.pay([world.b], key="key-0")
        with pytest.raises(InvariantViolation) as caught:
            world.pay([world.a, closed], amounts={world.a.id: "10.00", closed.id: "10.00"})
        assert (caught.value.rule, caught.value.path) == ("I4", "invoices[1]")

    def test_customer_of_another_partner_i1(self, world: World) -> None:
        other = World()
        with pytest.raises(InvariantViolation) as caught:
            pay_invoices(
                world.partner,
                other.customer,
                [other.a],
                payer=other.ann,
                method="ach",
                idempotency_key="k",
            )
        assert caught.value.rule == "I1"

    def test_payer_checks_i1(self, world: World) -> None:
        other = World()
        with pytest.raises(PermissionDenied):
            world.pay(payer=other.ann)
        with pytest.raises(PermissionDenied):
            world.pay([other.a])  # the invoice of another customer
        with pytest.raises(PermissionDenied):
            world.pay(
                payer=Impersonation.start(world.partner, world.customer, by=world.partner.team[0])
            )
        with pytest.raises(ValidationError):
            world.pay(payer="ann@globex.example")
        assert world.pay(payer=world.bo.id)[0].user_id == world.bo.id

    @pytest.mark.parametrize("who", ["ann", "bo"])
    def test_the_payer_may_be_given_as_the_text_of_a_user_id(self, who: str) -> None:
        # As every other id argument: it was refused as the wrong type.
        world = World()
        user = getattr(world, who)
        payment, (paid,) = world.pay(payer=str(user.id))
        assert (payment.user_id, paid.balance) == (user.id, world.money("0.00"))

    def test_a_team_members_id_as_text_is_a_team_member_as_its_id_is(self, world: World) -> None:
        member = world.partner.team[0]
        for payer in (member.id, str(member.id)):
            with pytest.raises(PermissionDenied) as caught:
                world.pay(payer=payer)
            assert caught.value.role == "team member"
        with pytest.raises(ValidationError) as refused:
            world.pay(payer="tm_!")
        assert (refused.value.paths, refused.value.codes) == (["payer"], ["invalid_id"])
        assert "(a team member id)" in str(refused.value)

    @given(text=st.text(max_size=12))
    def test_a_payer_that_is_not_a_user_id_is_named_in_the_message(self, text: str) -> None:
        world = World()
        with pytest.raises(ValidationError) as caught:
            world.pay(payer=text if text.startswith("usr_") else f"usr_{text}!")
        assert (caught.value.paths, caught.value.codes) == (["payer"], ["invalid_id"])
        assert caught.value.errors[0].message.startswith(
            "'payer' must look like usr_<letters and digits> (a user id) (got "
        )

    def test_another_customers_invoice_is_refused_before_its_currency_is_named_i1(
        self, world: World
    ) -> None:
        # Its currency was named ("invoice ... is in CAD") before the access check.
        initech = make_customer(world.partner, "Initech")
        data = to_dict(issue(world.partner, initech, "50.00", "7001"))
        data["currency"] = "CAD"
        for line in data["lines"]:
            line["unit_amount"]["currency"] = "CAD"
        theirs = from_dict(Invoice, data)
        with pytest.raises(PermissionDenied) as caught:
            world.pay([world.a, theirs])
        assert str(theirs.id) in str(caught.value)
        assert "CAD" not in str(caught.value)
        assert "7001" not in str(caught.value)

    def test_saved_method(self, world: World) -> None:
        methods = CustomerPaymentMethods.of(world.customer).add(
            type="card", display_name="Visa", last4="4242"
        )
        card = methods.default
        assert card is not None
        pay, _ = world.pay(method=card, methods=methods)
        assert (pay.method, pay.payment_method_id) == (PaymentMethodType.CARD, card.id)
        archived = methods.archive(card.id)
        for copy in (card, archived.method(card.id)):
            # Archived as the customer's methods hold it now, whatever the copy says.
            with pytest.raises(InvariantViolation) as caught:
                world.pay(method=copy, methods=archived)
            assert (caught.value.rule, caught.value.path) == ("payment-method", "method")

    def test_saved_method_of_another_customer_is_refused_i1(self, world: World) -> None:
        # Nothing tied a saved method to its customer: Initech's card paid Globex's invoice.
        initech = make_customer(world.partner, "Initech")
        theirs = CustomerPaymentMethods.of(initech).add(
            type="card", display_name="Visa", last4="4242"
        )
        ours = CustomerPaymentMethods.of(world.customer).add(
            type="card", display_name="Visa", last4="4242"
        )
        card = theirs.default
        assert card is not None
        for methods in (ours, theirs):
            with pytest.raises(InvariantViolation) as caught:
                world.pay(method=card, methods=methods)
            assert caught.value.rule == "I1"
        # A copy of our card with other details is not the card on file either.
        assert ours.default is not None
        forged = attrs.evolve(ours.default, type=PaymentMethodType.ACH)
        with pytest.raises(InvariantViolation) as caught:
            world.pay(method=forged, methods=ours)
        assert (caught.value.rule, caught.value.path) == ("I1", "method")
        # Without the customer's methods a saved method cannot be checked.
        for methods in (None, [card]):
            with pytest.raises(ValidationError) as caught:
                world.pay(method=card, methods=methods)
            assert caught.value.paths == ["methods"]

    def test_one_invoice_named_twice_in_amounts_is_refused(self, world: World) -> None:
        # {id: "10", str(id): "20"} silently paid 20.
        with pytest.raises(ValidationError) as caught:
            world.pay(amounts={world.a.id: "10", str(world.a.id): "20"})
        assert caught.value.paths == [f"amounts[{world.a.id}]"]
        assert caught.value.codes == ["duplicate"]
        assert world.pay(amounts={str(world.a.id): "20"})[0].amount == usd("20")


@given(
    stranger=st.sampled_from(["a user of another customer", "an unknown user id"]),
    replay=st.booleans(),
    bad_key=st.booleans(),
    over=st.booleans(),
)
def test_a_stranger_is_refused_before_anything_else_is_looked_at_i1(
    stranger: str, replay: bool, bad_key: bool, over: bool
) -> None:
    # Only the customer's users pay (I1). Someone else learns nothing more: not
    # that a key is in use (a replay), nor what is wrong with the request.
    world = World()
    first, _ = world.pay()
    payer = World().ann if stranger.startswith("a user") else UserId.new()
    with pytest.raises(PermissionDenied):
        world.pay(
            payer=payer,
            key=" " if bad_key else first.idempotency_key,
            amounts={world.a.id: "300.01"} if over else None,
            existing=first if replay else None,
        )


class TestIdempotency:
    def test_same_key_same_request_returns_the_first_payment(self, world: World) -> None:
        first, _ = world.pay([world.a, world.b], amounts={world.a.id: "10", world.b.id: "20"})
        again, touched = world.pay(
            [world.b, world.a],
            amounts={world.b.id: usd("20.00"), world.a.id: "10.00"},
            existing=first,
        )
        assert again is first
        assert touched == ()

    def test_pay_in_full_replays_after_the_balance_changed(self, world: World) -> None:
        first, (paid,) = world.pay()
        again, touched = world.pay([paid], existing=first)
        assert (again, touched) == (first, ())

    def test_same_key_other_request_is_refused(self, world: World) -> None:
        first, _ = world.pay(amounts={world.a.id: "10"})
        for changed in (
            {"amounts": {world.a.id: "11"}},
            {"method": "card"},
            {"payer": world.bo},
            {"invoices": [world.b], "amounts": {world.b.id: "10"}},
        ):
            with pytest.raises(InvariantViolation) as caught:
                world.pay(existing=first, **changed)  # type: ignore[arg-type]
            assert caught.value.rule == "idempotency"

    def test_existing_must_be_a_payment(self, world: World) -> None:
        with pytest.raises(ValidationError) as caught:
            world.pay(existing="pay_1")
        assert caught.value.paths == ["existing"]

    def test_existing_under_another_key(self, world: World) -> None:
        first, _ = world.pay(key="one")
        with pytest.raises(InvariantViolation) as caught:
            world.pay(key="two", existing=first)
        assert caught.value.path == "idempotency_key"
        assert (
            replay_payment(first, idempotency_key=" one ", fingerprint=first.request_fingerprint)
            is first
        )


# -- after paying -------------------------------------------------------------------------


def paid_by(world: World, method: str) -> tuple[Payment, tuple[Invoice, ...]]:
    return world.pay([world.a, world.b], method=method)


class TestLifecycle:
    def test_succeed_and_settle(self, world: World) -> None:
        pay, _ = paid_by(world, "ach")
        done = pay.succeed(AT)
        assert done.status is PaymentStatus.SUCCEEDED
        assert done.succeeded_at == AT
        assert [e.topic for e in done.events] == ["payment_succeeded"]
        settled = done.settle(AT + dt.timedelta(days=2))
        assert settled.is_settled
        assert settled.status is PaymentStatus.SUCCEEDED
        assert settled.events[-1].topic == "payment_settled"
        assert settled.settle() is settled
        with pytest.raises(InvariantViolation) as caught:
            done.succeed()
        assert caught.value.rule == "I6"
        with pytest.raises(InvariantViolation) as caught:
            pay.settle()
        assert (caught.value.rule, caught.value.path) == ("I7", "status")
        with pytest.raises(ValidationError):
            pay.succeed(dt.datetime(2026, 1, 5))  # naive

    def test_failed_bank_debit_gives_balances_back_with_the_return_fee_i6(
        self, world: World
    ) -> None:
        pay, invoices = paid_by(world, "ach")
        failed, (a, b) = fail_payment(pay, invoices, at=AT)
        assert failed.status is PaymentStatus.FAILED
        assert failed.return_fee == Fee.new(FeeKind.RETURN, usd("15.00"), covered_by_customer=False)
        assert failed.partner_fees == usd("15.00")
        assert failed.events[-1].topic == "payment_failed"
        assert (a.balance, b.balance) == (usd("300.00"), usd("100.00"))
        assert a.status is b.status is InvoiceStatus.OPEN
        assert not failed.holds_balance
        with pytest.raises(InvariantViolation) as caught:
            fail_payment(failed, (a, b))
        assert caught.value.rule == "I6"

    def test_declined_card_records_no_fee(self, world: World) -> None:
        pay, invoices = paid_by(world, "card")
        failed, _ = fail_payment(pay, invoices)
        assert failed.return_fee is None
        assert failed.card_fee is not None  # what was quoted stays on record

    @pytest.mark.parametrize(
        "expected",
        [
            (ReturnKind.STANDARD, PaymentStatus.FAILED, "15.00", "payment_failed"),
            ("unauthorized", PaymentStatus.CHARGED_BACK, "25.00", "payment_chargeback"),
        ],
    )
    @pytest.mark.parametrize("settled", [False, True])
    def test_ach_return_after_success_i6(
        self, world: World, expected: tuple[object, PaymentStatus, str, str], settled: bool
    ) -> None:
        kind, status, fee, topic = expected
        pay, invoices = paid_by(world, "ach")
        pay = pay.succeed(AT)
        if settled:
            pay = pay.settle(AT)
        returned, (a, b) = return_payment(pay, invoices, kind, at=AT)  # type: ignore[arg-type]
        assert returned.status is status
        assert returned.return_fee is not None
        assert returned.return_fee.amount == usd(fee)
        assert not returned.return_fee.covered_by_customer
        assert returned.events[-1].topic == topic
        assert a.balance == a.total
        assert b.status is InvoiceStatus.OPEN

    def test_return_rules(self, world: World) -> None:
        card, invoices = paid_by(world, "card")
        with pytest.raises(InvariantViolation) as caught:
            return_payment(card, invoices)
        assert (caught.value.rule, caught.value.path) == ("I6", "method")
        pay, invoices = world.pay([world.a, world.b], key="k2")
        failed, released = fail_payment(pay, invoices)
        with pytest.raises(InvariantViolation):
            return_payment(failed, released)
        with pytest.raises(ValidationError):
            return_payment(pay, invoices, "lost")  # type: ignore[arg-type]

    def test_return_while_processing(self, world: World) -> None:
        pay, invoices = paid_by(world, "ach")
        returned, _ = return_payment(pay, invoices, ReturnKind.UNAUTHORIZED)
        assert returned.status is PaymentStatus.CHARGED_BACK
        assert returned.return_fee is not None
        assert returned.return_fee.kind is FeeKind.UNAUTHORIZED_RETURN

    def test_card_chargeback_i6(self, world: World) -> None:
        pay, invoices = paid_by(world, "card")
        with pytest.raises(InvariantViolation) as caught:
            charge_back_payment(pay, invoices)  # still processing
        assert caught.value.rule == "I6"
        disputed, (a, _) = charge_back_payment(pay.succeed(AT), invoices, at=AT)
        assert disputed.status is PaymentStatus.CHARGED_BACK
        assert disputed.return_fee is not None
        assert disputed.return_fee.amount == usd("25.00")
        assert disputed.events[-1].topic == "payment_chargeback"
        assert a.status is InvoiceStatus.OPEN
        ach, ach_invoices = world.pay(key="k3")
        with pytest.raises(InvariantViolation) as caught:
            charge_back_payment(ach.succeed(), ach_invoices)
        assert (caught.value.rule, caught.value.path) == ("I6", "method")

    def test_cad_fees_are_in_cad(self) -> None:
        world = World("CA")
        pay, invoices = world.pay(method="pad")
        failed, _ = fail_payment(pay, invoices)
        assert failed.return_fee is not None
        assert failed.return_fee.amount == Money("15.00", "CAD")

    @pytest.mark.parametrize("method", ["pad", "eft", "ach"])
    def test_a_return_fee_is_named_after_the_payments_method(self, method: str) -> None:
        world = World("US" if method == "ach" else "CA")
        rail = method.upper()
        pay, invoices = world.pay(method=method)
        failed, _ = fail_payment(pay, invoices)
        returned, _ = return_payment(pay, invoices, "standard")
        unauthorized, _ = return_payment(pay, invoices, "unauthorized")
        done = [failed, returned, unauthorized]
        fees = [closed.return_fee for closed in done]
        assert [(fee.name, fee.amount.amount) for fee in fees if fee is not None] == [
            (f"{rail} return fee", Decimal("15.00")),
            (f"{rail} return fee", Decimal("15.00")),
            (f"Unauthorized {rail} return fee", Decimal("25.00")),
        ]
        for closed in done:
            assert from_dict(Payment, to_dict(closed)) == closed
        # Stored under the name it had before, it reads back as it was.
        data = to_dict(unauthorized)
        data["fees"][-1]["name"] = "Unauthorized ACH return fee"
        read = from_dict(Payment, data).return_fee
        assert read is not None
        assert read.name == "Unauthorized ACH return fee"

    def test_refund_settled_payment_in_full_i7(self, world: World) -> None:
        pay, invoices = paid_by(world, "card")
        pay = pay.succeed(AT).settle(AT)
        refunded, (a, b) = refund_payment(pay, invoices, amount=pay.total, at=AT)
        assert refunded.status is PaymentStatus.REFUNDED
        assert refunded.events[-1].topic == "payment_refunded"
        assert a.balance == a.total
        assert b.balance == b.total
        # The card fee stays with the partner.
        assert pay.customer_card_fee.is_positive
        assert refunded.partner_fees == pay.card_fee.amount  # type: ignore[union-attr]
        assert refund_payment(pay, invoices)[0].status is PaymentStatus.REFUNDED

    def test_refund_rules_i7(self, world: World) -> None:
        pay, invoices = paid_by(world, "ach")
        with pytest.raises(InvariantViolation) as caught:
            refund_payment(pay, invoices)  # processing
        assert caught.value.rule == "I7"
        succeeded = pay.succeed()
        with pytest.raises(InvariantViolation) as caught:
            refund_payment(succeeded, invoices)  # not settled
        assert (caught.value.rule, caught.value.path) == ("I7", "settled_at")
        assert "only once it has settled" in str(caught.value)
        settled = succeeded.settle()
        with pytest.raises(InvariantViolation) as caught:
            refund_payment(settled, invoices, amount=usd("399.99"))
        assert (caught.value.rule, caught.value.path) == ("I7", "amount")
        with pytest.raises(ValidationError) as caught:
            refund_payment(settled, invoices, amount=Money("400.00", "CAD"))
        assert caught.value.codes == ["currency_mismatch"]
        with pytest.raises(ValidationError):
            refund_payment(settled, invoices, amount=400.0)  # type: ignore[arg-type]
        refunded, released = refund_payment(settled, invoices)
        with pytest.raises(InvariantViolation):
            refund_payment(refunded, released)

    @pytest.mark.parametrize("amount", ["400.00", "400", Decimal("400.00"), 400, usd("400.00")])
    def test_the_refunded_amount_is_read_as_other_amounts_are(
        self, world: World, amount: Money | str | int | Decimal
    ) -> None:
        pay, invoices = paid_by(world, "ach")
        settled = pay.succeed(AT).settle(AT)
        refunded, given_back = refund_payment(settled, invoices, amount=amount, at=AT)
        assert refunded.status is PaymentStatus.REFUNDED
        assert all(i.balance == i.total for i in given_back)

    @pytest.mark.parametrize(
        ("amount", "code"),
        [
            (400.0, "float_refused"),
            (Money("400.00", "CAD"), "currency_mismatch"),
            ("400.001", "too_precise"),
            ("four hundred", "invalid_amount"),
            ([400], "wrong_type"),
        ],
    )
    def test_a_refunded_amount_that_is_no_amount_is_named(
        self, world: World, amount: object, code: str
    ) -> None:
        pay, invoices = paid_by(world, "ach")
        settled = pay.succeed(AT).settle(AT)
        with pytest.raises(ValidationError) as caught:
            refund_payment(settled, invoices, amount=amount, at=AT)  # type: ignore[arg-type]
        assert caught.value.paths == ["amount"]
        assert caught.value.codes == [code]
        assert "'amount'" in str(caught.value)

    def test_a_refunded_amount_given_as_text_is_still_the_whole_total(self, world: World) -> None:
        pay, invoices = paid_by(world, "ach")
        settled = pay.succeed(AT).settle(AT)
        with pytest.raises(InvariantViolation) as caught:
            refund_payment(settled, invoices, amount="399.99", at=AT)
        assert (caught.value.rule, caught.value.path) == ("I7", "amount")

    def test_the_invoices_passed_must_be_the_payments(self, world: World) -> None:
        pay, (a, b) = paid_by(world, "ach")
        with pytest.raises(ValidationError) as caught:
            fail_payment(pay, [a, b, a, world.a.void(world.partner)])
        assert caught.value.paths == ["invoices[2]", "invoices[3]"]
        # A wrong invoice and one left out: both reported at once.
        with pytest.raises(ValidationError) as caught:
            fail_payment(pay, [None, a])  # type: ignore[list-item]
        assert caught.value.paths == ["invoices[0]", "invoices"]
        assert caught.value.codes == ["unrelated_invoice", "missing_invoice"]
        with pytest.raises(ValidationError):
            fail_payment(pay, a)  # type: ignore[arg-type]
        _, given_back = fail_payment(pay, [b, a])
        assert [i.id for i in given_back] == [b.id, a.id]

    @settings(max_examples=max(10, settings.default.max_examples // 5))
    @given(data=st.data())
    def test_an_invoice_left_out_is_named(self, data: st.DataObject) -> None:
        # Before: a NotFound ("no invoice 'inv_...'"), as if it did not exist.
        _, commands = _give_back_commands(World())
        name, command, invoices = data.draw(st.sampled_from(commands), label="command")
        given = data.draw(
            st.permutations(invoices).flatmap(
                lambda order: st.integers(0, len(order) - 1).map(lambda n: list(order[:n]))
            ),
            label="given",
        )
        left_out = [i.id for i in invoices if i not in given]
        with pytest.raises(ValidationError) as caught:
            command(given)
        assert caught.value.paths == ["invoices"], name
        assert caught.value.codes == ["missing_invoice"]
        assert all(str(invoice_id) in str(caught.value) for invoice_id in left_out)
        assert not isinstance(caught.value, LookupError)

    @settings(max_examples=max(10, settings.default.max_examples // 5))
    @given(data=st.data())
    def test_an_out_of_date_invoice_is_named(self, data: st.DataObject) -> None:
        # Before: a copy from before the payment raised a bare NotFound
        # ("payment on this invoice", no path), and a copy whose part was
        # given back an InvariantViolation at 'payment_id', no argument of
        # these functions.
        before, commands = _give_back_commands(World())
        name, command, current = data.draw(st.sampled_from(commands), label="command")
        _, given_back = command(list(current))
        # The other payment's copies hold a part, but not this payment's.
        other = next(paid for _, _, paid in commands if paid is not current)
        copies = {"current": current, "before": before, "given back": given_back, "other": other}
        kinds = data.draw(
            st.lists(st.sampled_from(sorted(copies)), min_size=3, max_size=3).filter(
                lambda chosen: set(chosen) != {"current"}
            ),
            label="kinds",
        )
        order = data.draw(st.permutations(range(3)), label="order")
        given = [copies[kind][i] for kind, i in zip(kinds, order, strict=True)]
        with pytest.raises(ValidationError) as caught:
            command(given)
        stale = [f"invoices[{n}]" for n, kind in enumerate(kinds) if kind != "current"]
        assert caught.value.paths == stale, name
        assert set(caught.value.codes) == {"stale_invoice"}
        for n, kind in enumerate(kinds):
            if kind != "current":
                assert f"invoice {given[n].number}" in str(caught.value)
        assert not isinstance(caught.value, LookupError)


_STEPS = ("succeed", "settle", "fail", "return", "unauthorized return", "charge back", "refund")


def _step(
    pay: Payment, invoices: tuple[Invoice, ...], step: str, at: dt.datetime
) -> tuple[Payment, tuple[Invoice, ...]]:
    if step == "succeed":
        return pay.succeed(at), invoices
    if step == "settle":
        return pay.settle(at), invoices
    if step == "fail":
        return fail_payment(pay, invoices, at=at)
    if step == "return":
        return return_payment(pay, invoices, at=at)
    if step == "unauthorized return":
        return return_payment(pay, invoices, "unauthorized", at=at)
    if step == "charge back":
        return charge_back_payment(pay, invoices, at=at)
    return refund_payment(pay, invoices, at=at)


class TestEventTimes:
    @given(
        method=st.sampled_from(["ach", "card"]),
        steps=st.lists(
            st.tuples(st.sampled_from(_STEPS), st.integers(-72, 72), st.booleans()),
            max_size=6,
        ),
    )
    def test_a_payments_events_never_go_back_in_time(
        self, method: str, steps: list[tuple[str, int, bool]]
    ) -> None:
        """Whatever times the processor reports, and whether or not the
        payment was stored (its events taken) between two commands, its
        events come in non-decreasing time, none before a time it records."""
        pay, invoices = paid_by(_WORLD, method)
        times: list[dt.datetime] = []
        for step, hours, store in steps:
            try:
                new, invoices = _step(pay, invoices, step, AT + dt.timedelta(hours=hours))
            except AltpayError:
                continue
            if new is pay:  # settling a settled payment changes nothing
                continue
            when = new.events[-1].occurred_at
            recorded = (pay.created_at, pay.succeeded_at, pay.settled_at)
            assert all(when >= t for t in recorded if t is not None), (step, recorded, when)
            times.append(when)
            # Stored: read back without its pending events.
            pay = from_dict(Payment, to_dict(new)) if store else new
        assert times == sorted(times)

    def test_a_return_dated_before_the_stored_success_is_dated_at_it(self, world: World) -> None:
        pay, invoices = paid_by(world, "ach")
        succeeded = from_dict(Payment, to_dict(pay.succeed(AT + dt.timedelta(hours=3))))
        assert succeeded.events == ()
        returned, invoices = return_payment(succeeded, invoices, at=AT + dt.timedelta(hours=2))
        assert returned.events[-1].occurred_at == AT + dt.timedelta(hours=3)
        assert all(i.events[-1].occurred_at == AT + dt.timedelta(hours=3) for i in invoices)
        # The fields keep the times as given.
        assert returned.succeeded_at == AT + dt.timedelta(hours=3)


_GiveBack = Callable[[list[Invoice]], tuple[Payment, tuple[Invoice, ...]]]


def _give_back_commands(
    world: World,
) -> tuple[list[Invoice], list[tuple[str, _GiveBack, tuple[Invoice, ...]]]]:
    """Three invoices paid by a card and by a bank debit, as they were
    before; each command that gives one of the payments back, with the
    invoices as that payment left them."""
    c = issue(world.partner, world.customer, "50.00", "1003")
    before = [world.a, world.b, c]
    card, card_invoices = world.pay(before, method="card", key="card")
    debit, debit_invoices = world.pay(before, key="debit")
    settled = card.succeed(AT).settle(AT + dt.timedelta(days=2))
    return before, [
        ("fail", lambda given: fail_payment(debit, given), debit_invoices),
        ("return", lambda given: return_payment(debit, given), debit_invoices),
        ("charge back", lambda given: charge_back_payment(card.succeed(AT), given), card_invoices),
        ("refund", lambda given: refund_payment(settled, given), card_invoices),
    ]


# -- who may refund ----------------------------------------------------------------------

_REFUNDERS = frozenset({Role.ADMIN, Role.SUB_ADMIN})


def with_member(partner: Partner, role: Role) -> tuple[Partner, TeamMember]:
    """``partner`` with one more team member, Sam, of ``role``."""
    partner = partner.add_team_member(name="Sam", email="sam@northwind.example", role=role)
    return partner, partner.team[-1]


class TestWhoRefunds:
    @given(
        role=st.sampled_from(Role),
        as_id=st.booleans(),
        state=st.sampled_from(["processing", "succeeded", "settled"]),
        full=st.booleans(),
    )
    def test_only_an_admin_or_a_sub_admin_refunds_checked_first(
        self, role: Role, as_id: bool, state: str, full: bool
    ) -> None:
        world = World()
        partner, sam = with_member(world.partner, role)
        by = sam.id if as_id else sam
        pay, invoices = paid_by(world, "card")
        if state != "processing":
            pay = pay.succeed(AT)
        if state == "settled":
            pay = pay.settle(AT)
        amount = pay.total if full else usd("0.01")
        if role not in _REFUNDERS:
            # Refused before the payment's state or the amount is looked at.
            with pytest.raises(PermissionDenied) as caught:
                refund_payment(pay, invoices, amount=amount, at=AT, partner=partner, by=by)
            assert (caught.value.role, caught.value.action) == (role.value, "refund payments")
            assert pay.status is not PaymentStatus.REFUNDED
            assert all(i.balance.is_zero for i in invoices)
        elif state != "settled" or not full:
            with pytest.raises(InvariantViolation) as refused:
                refund_payment(pay, invoices, amount=amount, at=AT, partner=partner, by=by)
            assert refused.value.rule == "I7"
        else:
            refunded, given_back = refund_payment(
                pay, invoices, amount=amount, at=AT, partner=partner, by=by
            )
            assert refunded.status is PaymentStatus.REFUNDED
            assert refunded.events[-1].topic == "payment_refunded"
            assert all(i.balance == i.total for i in given_back)
        assert sam.may(Action.REFUND_PAYMENTS) is (role in _REFUNDERS)

    def test_a_member_of_another_partners_team_is_refused(self, world: World) -> None:
        pay, invoices = paid_by(world, "card")
        settled = pay.succeed(AT).settle(AT)
        other, admin = with_member(make_partner(), Role.ADMIN)
        with pytest.raises(NotFound):
            refund_payment(settled, invoices, partner=world.partner, by=admin)
        # Their own partner is not this payment's: no such payment there.
        with pytest.raises(NotFound) as caught:
            refund_payment(settled, invoices, partner=other, by=admin)
        assert caught.value.kind == "payment"
        with pytest.raises(NotFound):
            refund_payment(settled, invoices, partner=other)

    def test_by_needs_the_partner(self, world: World) -> None:
        pay, invoices = paid_by(world, "card")
        settled = pay.succeed(AT).settle(AT)
        ada = world.partner.team[0]
        with pytest.raises(ValidationError) as caught:
            refund_payment(settled, invoices, by=ada)
        assert (caught.value.paths, caught.value.codes) == (["partner"], ["missing"])
        assert "'by'" in str(caught.value)
        with pytest.raises(ValidationError) as caught:
            refund_payment(settled, invoices, partner="Northwind", by=ada)  # type: ignore[arg-type]
        assert (caught.value.paths, caught.value.codes) == (["partner"], ["wrong_type"])

    def test_without_by_the_refund_runs_as_the_system(self, world: World) -> None:
        pay, invoices = paid_by(world, "card")
        settled = pay.succeed(AT).settle(AT)
        for partner in (None, world.partner):
            refunded, _ = refund_payment(settled, invoices, at=AT, partner=partner)
            assert refunded.status is PaymentStatus.REFUNDED


# Every give-back against every state a payment can be in: either it is
# allowed, or it is refused by its own check, which names the rule and the
# field at fault (not by a later check of the payment or invoice it would make).
_STATES = ("processing", "succeeded", "settled", "failed", "charged_back", "refunded")
_GIVE_BACKS = ("fail", "return", "unauthorized return", "charge back", "refund")


def in_state(world: World, method: str, state: str) -> tuple[Payment, tuple[Invoice, ...]]:
    """A payment by ``method`` brought to ``state``, and its invoices as they are then."""
    pay, invoices = paid_by(world, method)
    if state == "processing":
        return pay, invoices
    if state == "failed":
        return fail_payment(pay, invoices, at=AT)
    pay = pay.succeed(AT)
    if state == "succeeded":
        return pay, invoices
    pay = pay.settle(AT)
    if state == "settled":
        return pay, invoices
    if state == "refunded":
        return refund_payment(pay, invoices, at=AT)
    if method == "card":
        return charge_back_payment(pay, invoices, at=AT)
    return return_payment(pay, invoices, ReturnKind.UNAUTHORIZED, at=AT)


def give_back(
    how: str, pay: Payment, invoices: tuple[Invoice, ...]
) -> tuple[Payment, tuple[Invoice, ...]]:
    if how == "fail":
        return fail_payment(pay, invoices, at=AT)
    if how == "return":
        return return_payment(pay, invoices, at=AT)
    if how == "unauthorized return":
        return return_payment(pay, invoices, ReturnKind.UNAUTHORIZED, at=AT)
    if how == "charge back":
        return charge_back_payment(pay, invoices, at=AT)
    return refund_payment(pay, invoices, at=AT)


def expected_refusal(how: str, method: str, state: str) -> tuple[str, str] | None:
    """The (rule, path) refusing ``how`` on a ``method`` payment in ``state``."""
    card, holding = method == "card", state in ("processing", "succeeded", "settled")
    if how == "fail":
        return None if state == "processing" else ("I6", "status")
    if how in ("return", "unauthorized return"):
        if card:
            return "I6", "method"
        return None if holding else ("I6", "status")
    if how == "charge back":
        if not card:
            return "I6", "method"
        return None if state in ("succeeded", "settled") else ("I6", "status")
    if state not in ("succeeded", "settled"):
        return "I7", "status"  # refunds: succeeded payments only
    return None if state == "settled" else ("I7", "settled_at")


@pytest.mark.parametrize("how", _GIVE_BACKS)
@pytest.mark.parametrize("state", _STATES)
@pytest.mark.parametrize("method", ["card", "ach"])
def test_each_give_back_is_allowed_only_from_its_states_i6_i7(
    method: str, state: str, how: str
) -> None:
    world = World()
    pay, invoices = in_state(world, method, state)
    expected = expected_refusal(how, method, state)
    if expected is None:
        new, released = give_back(how, pay, invoices)
        assert not new.holds_balance
        assert [i.balance for i in released] == [i.total for i in released]
        return
    with pytest.raises(InvariantViolation) as caught:
        give_back(how, pay, invoices)
    assert (caught.value.rule, caught.value.path) == expected


@pytest.mark.parametrize("state", _STATES)
@pytest.mark.parametrize("method", ["card", "ach"])
def test_only_a_succeeded_payment_settles_i7(method: str, state: str) -> None:
    pay, _ = in_state(World(), method, state)
    if state == "succeeded":
        settled = pay.settle(AT)
        assert settled.is_settled
        assert settled.events[-1].topic == "payment_settled"
        return
    if pay.settled_at is not None:
        # Settled once (and perhaps refunded or charged back since): a
        # settlement reported again is a repeat, which changes nothing.
        assert state in ("settled", "charged_back", "refunded")
        assert pay.settle(AT + dt.timedelta(days=1)) is pay
        return
    with pytest.raises(InvariantViolation) as caught:
        pay.settle(AT)
    assert (caught.value.rule, caught.value.path) == ("I7", "status")


class TestPaymentInvariants:
    def test_every_instance_satisfies_the_rules(self, world: World) -> None:
        pay, _ = paid_by(world, "card")
        fee = pay.card_fee
        assert fee is not None
        share = pay.allocations[0]
        with pytest.raises(InvariantViolation) as caught:
            attrs.evolve(pay, allocations=(share, share))
        assert caught.value.rule == "I5"
        with pytest.raises(InvariantViolation) as caught:
            attrs.evolve(pay, allocations=(attrs.evolve(share, card_fee=usd("0.00")),))
        assert caught.value.rule == "I9"
        with pytest.raises(InvariantViolation) as caught:
            attrs.evolve(pay, method=PaymentMethodType.ACH)
        assert caught.value.rule == "I8"
        with pytest.raises(InvariantViolation) as caught:
            attrs.evolve(pay, fees=(fee, fee))
        assert caught.value.rule == "I8"
        with pytest.raises(InvariantViolation) as caught:
            attrs.evolve(pay, fees=(fee, Fee.new("interest", usd("1.00"))))
        assert caught.value.rule == "I8"
        with pytest.raises(InvariantViolation) as caught:
            attrs.evolve(pay, status=PaymentStatus.CHARGED_BACK)
        assert caught.value.rule == "I6"
        with pytest.raises(InvariantViolation) as caught:
            attrs.evolve(pay, succeeded_at=AT)
        assert caught.value.rule == "I6"
        with pytest.raises(InvariantViolation) as caught:
            attrs.evolve(pay, status=PaymentStatus.SUCCEEDED)
        assert caught.value.rule == "I7"
        done = pay.succeed(AT)
        with pytest.raises(InvariantViolation) as caught:
            attrs.evolve(done, status=PaymentStatus.REFUNDED)
        assert caught.value.rule == "I7"
        with pytest.raises(InvariantViolation) as caught:
            attrs.evolve(pay, settled_at=AT)
        assert caught.value.rule == "I7"
        dispute = Fee.new(FeeKind.DISPUTE, usd("25.00"), covered_by_customer=False)
        with pytest.raises(InvariantViolation) as caught:
            attrs.evolve(pay, status=PaymentStatus.CHARGED_BACK, fees=(fee, dispute))
        assert caught.value.rule == "I6"

    @pytest.mark.parametrize("method", ["card", "ach"])
    def test_a_return_or_dispute_fee_is_the_partners_i6(self, world: World, method: str) -> None:
        pay, invoices = paid_by(world, method)
        if method == "card":
            given_back, _ = charge_back_payment(pay.succeed(AT), invoices, at=AT)
        else:
            given_back, _ = fail_payment(pay, invoices, at=AT)
        fee = given_back.return_fee
        assert fee is not None
        assert not fee.covered_by_customer
        billed = attrs.evolve(fee, covered_by_customer=True)
        kept = tuple(f for f in given_back.fees if f is not fee)
        with pytest.raises(InvariantViolation) as caught:
            attrs.evolve(given_back, fees=(*kept, billed))
        assert caught.value.rule == "I6"
        data = to_dict(given_back)
        for row in data["fees"]:
            if row["kind"] == fee.kind.value:
                row["covered_by_customer"] = True
        with pytest.raises(ValidationError):
            from_dict(Payment, data)

    def test_types_and_currencies(self, world: World) -> None:
        pay, _ = paid_by(world, "ach")
        with pytest.raises(ValidationError) as caught:
            attrs.evolve(
                pay,
                id="pay_1",
                user_id=None,
                method="cheque",
                currency="USD",
                allocations=["x"],
                fees="none",
                status="lost",
                idempotency_key="",
                request_fingerprint="abc",
                payment_method_id="pm_1",
                created_at=None,
                settled_at="today",
                version=True,
            )
        assert caught.value.paths == [
            "id",
            "user_id",
            "method",
            "currency",
            "allocations[0]",
            "fees",
            "status",
            "idempotency_key",
            "request_fingerprint",
            "payment_method_id",
            "created_at",
            "settled_at",
            "version",
        ]
        with pytest.raises(ValidationError) as caught:
            attrs.evolve(pay, allocations=())
        assert caught.value.codes == ["empty"]
        # No allocations is reported with a bad fee, not hidden by it; a
        # list that is no list is not also reported empty.
        with pytest.raises(ValidationError) as caught:
            attrs.evolve(pay, allocations=(), fees=("bad",))
        assert (caught.value.paths, caught.value.codes) == (
            ["fees[0]", "allocations"],
            ["wrong_type", "empty"],
        )
        with pytest.raises(ValidationError) as caught:
            attrs.evolve(pay, allocations=None)
        assert (caught.value.paths, caught.value.codes) == (["allocations"], ["wrong_type"])
        with pytest.raises(ValidationError) as caught:
            attrs.evolve(pay, currency=world.partner.currency.__class__("CAD"))
        assert "currency_mismatch" in caught.value.codes
        assert "method_unavailable" in caught.value.codes

    def test_allocation_checks_itself(self) -> None:
        with pytest.raises(ValidationError) as caught:
            Allocation("inv_1", usd("0"), Money("-1", "CAD"))  # type: ignore[arg-type]
        # On its own an allocation cannot tell which currency is wrong: both named.
        assert caught.value.paths == ["invoice_id", "amount", "card_fee", "amount", "card_fee"]

    @pytest.mark.parametrize("field", ["amount", "card_fee"])
    def test_wrong_currency_of_an_allocation_names_its_field_i2(
        self, world: World, field: str
    ) -> None:
        # An allocation's amount in CAD was reported at 'allocations[0].card_fee'.
        pay, _ = paid_by(world, "card")
        data = to_dict(pay)
        data["allocations"][0][field]["currency"] = "CAD"
        with pytest.raises(ValidationError) as caught:
            from_dict(Payment, data)
        assert f"allocations[0].{field}" in caught.value.paths
        assert set(caught.value.codes) == {"currency_mismatch"}

    @pytest.mark.parametrize(
        ("method", "give_back", "amount"),
        [
            ("ach", fail_payment, "15.00"),
            (
                "ach",
                lambda pay, invoices: return_payment(pay.succeed(AT), invoices, "unauthorized"),
                "25.00",
            ),
            ("card", lambda pay, invoices: charge_back_payment(pay.succeed(AT), invoices), "25.00"),
        ],
    )
    def test_a_return_fee_read_back_is_its_kinds_amount_i6(
        self, world: World, method: str, give_back: Any, amount: str
    ) -> None:
        # Any amount was accepted (the kind only was checked): 0.01 for a
        # 25.00 unauthorised return, say.
        pay, invoices = paid_by(world, method)
        back, _ = give_back(pay, invoices)
        data = to_dict(back)
        assert data["fees"][-1]["amount"]["amount"] == amount
        assert from_dict(Payment, data) == back
        for wrong in ("0.01", "15.00" if amount == "25.00" else "25.00"):
            data["fees"][-1]["amount"]["amount"] = wrong
            with pytest.raises(ValidationError) as caught:
                from_dict(Payment, data)
            assert caught.value.codes == ["I6"]
            assert f"is {amount} USD (got {wrong})" in str(caught.value)

    def test_a_payment_or_invoice_in_a_currency_no_partner_bills_in_is_refused_i2(
        self, world: World
    ) -> None:
        # A JPY invoice or payment was accepted, and paying such an invoice
        # in full raised a bare CurrencyMismatch.
        pay, (invoice,) = world.pay()
        for cls, value in ((Invoice, invoice), (Payment, pay)):
            data = to_dict(value)
            data["currency"] = "JPY"
            with pytest.raises(ValidationError) as caught:
                from_dict(cls, data)
            assert ("currency", "unsupported_currency") in zip(
                caught.value.paths, caught.value.codes, strict=True
            )
        with pytest.raises(ValidationError) as caught:
            attrs.evolve(invoice, currency=Currency("JPY"), lines=(), payments=())
        assert ("currency", "unsupported_currency") in zip(
            caught.value.paths, caught.value.codes, strict=True
        )

    def test_an_invoice_in_another_currency_than_the_partners_is_refused_i2(
        self, world: World
    ) -> None:
        # A CAD invoice under a USD partner: PAD was refused as "not available
        # in USD", and paying it in full raised a bare CurrencyMismatch.
        data = to_dict(world.b)
        data["currency"] = "CAD"
        for line in data["lines"]:
            line["unit_amount"]["currency"] = "CAD"
        cad = from_dict(Invoice, data)
        for method in ("card", "pad"):
            with pytest.raises(ValidationError) as caught:
                world.pay([world.a, cad], method=method)
            assert (caught.value.paths, caught.value.codes) == (
                ["invoices[1]"],
                ["currency_mismatch"],
            )
            assert "must be in USD, the partner's currency" in str(caught.value)

    def test_repr_html(self, world: World) -> None:
        pay, _ = paid_by(world, "card")
        html = pay.succeed().settle()._repr_html_()
        assert "settled" in html
        assert "Card fee" in html


# -- saved payment methods ------------------------------------------------------------------


class TestPaymentMethods:
    def test_first_method_is_the_default(self, world: World) -> None:
        book = CustomerPaymentMethods.of(world.customer)
        assert book.default is None
        book = book.add(type="card", display_name=" Visa ", last4="4242", at=AT)
        card = book.methods[0]
        assert book.default == card
        assert card.label == "Visa ending in 4242"
        assert card.added_at == AT
        assert [e.topic for e in book.events] == [
            "payment_method_added",
            "default_payment_method_changed",
        ]
        assert book.events[0].aggregate_id == str(world.customer.id)
        book = book.add(type=PaymentMethodType.ACH, display_name="Chase checking", last4="6789")
        assert book.default == card
        assert book.events[-1].topic == "payment_method_added"
        book = book.add(type="ach", display_name="Savings", last4="1111", make_default=True)
        assert book.default == book.methods[-1]

    @given(
        days=st.lists(st.integers(0, 3), min_size=2, max_size=6),
        data=st.data(),
    )
    def test_archiving_the_default_makes_the_most_recently_added_active_one_it(
        self, days: list[int], data: st.DataObject
    ) -> None:
        # By ``added_at``, not by place in the list; a tie goes to the later one.
        book = CustomerPaymentMethods.of(make_customer(make_partner()))
        for day in days:
            at = AT + dt.timedelta(days=day)
            book = book.add(type="card", display_name="Visa", last4="4242", at=at)
        archived = data.draw(st.sets(st.sampled_from(book.methods), max_size=len(days) - 1))
        for method in archived:
            book = book.archive(method.id, at=AT)
        default = book.default
        assert default is not None
        left = book.archive(default.id, at=AT)
        active = [(m.added_at, i, m.id) for i, m in enumerate(left.methods) if m.is_active]
        assert left.default_id == (max(active)[2] if active else None)

    def test_exactly_one_default_while_any_is_active(self, world: World) -> None:
        book = CustomerPaymentMethods.of(world.customer)
        for last4 in ("1111", "2222", "3333"):
            book = book.add(type="card", display_name="Visa", last4=last4)
        first, second, third = (m.id for m in book.methods)
        book = book.set_default(second)
        assert book.set_default(second) is book
        book = book.archive(second)
        assert book.default_id == third  # the most recent active one
        assert [e.topic for e in book.events][-2:] == [
            "payment_method_deleted",
            "default_payment_method_changed",
        ]
        assert book.archive(second) is book
        with pytest.raises(InvariantViolation) as caught:
            book.set_default(second)
        assert (caught.value.rule, caught.value.path) == ("payment-method", "method_id")
        book = book.archive(third).archive(first)
        assert book.default is None
        assert book.active == ()
        assert len(book.methods) == 3  # history kept
        with pytest.raises(NotFound):
            book.method(PaymentMethodId.new())

    def test_replace_instead_of_edit(self, world: World) -> None:
        book = CustomerPaymentMethods.of(world.customer)
        book = book.add(type="card", display_name="Visa", last4="4242")
        old = book.methods[0].id
        book = book.replace(old, type="card", display_name="Visa", last4="1881")
        assert book.method(old).status is PaymentMethodStatus.ARCHIVED
        assert book.default is not None
        assert book.default.last4 == "1881"
        with pytest.raises(InvariantViolation):
            book.replace(old, type="card", display_name="Visa", last4="0000")
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            book.methods[0].last4 = "9999"  # type: ignore[misc]

    def test_events_stay_oldest_first_whatever_the_times_given(self, world: World) -> None:
        # added_at keeps the time as given; an event is never dated before
        # the pending ones, nor before the method it concerns was added.
        later = AT + HOURS_5
        book = CustomerPaymentMethods.of(world.customer)
        book = book.add(type="card", display_name="Visa", last4="4242", at=later)
        book = book.add(type="card", display_name="MC", last4="1111", at=AT)
        assert book.methods[1].added_at == AT
        book = book.set_default(book.methods[1].id, at=AT)
        book = book.archive(book.methods[0].id, at=AT - HOURS_5)
        book = book.replace(
            book.methods[1].id, type="ach", display_name="Chase", last4="6789", at=AT
        )
        assert [e.topic for e in book.events] == [
            "payment_method_added",
            "default_payment_method_changed",
            "payment_method_added",
            "default_payment_method_changed",
            "payment_method_deleted",
            "payment_method_added",
            "default_payment_method_changed",
            "payment_method_deleted",
        ]
        assert {e.occurred_at for e in book.events} == {later}
        # Archived "before" it was added, once stored (no events pending):
        # dated when it was added.
        book = book.add(type="card", display_name="Amex", last4="0005", at=later)
        stored = from_dict(CustomerPaymentMethods, to_dict(book))
        assert stored.events == ()
        archived = stored.archive(stored.methods[-1].id, at=AT)
        assert [e.occurred_at for e in archived.events] == [later]

    def test_a_new_default_is_never_made_before_it_was_added(self, world: World) -> None:
        first, second = AT, AT + 2 * HOURS_5
        book = CustomerPaymentMethods.of(world.customer)
        book = book.add(type="card", display_name="Visa", last4="4242", at=first)
        book = book.add(type="card", display_name="MC", last4="1111", at=second)
        stored = from_dict(CustomerPaymentMethods, to_dict(book))
        # Archiving the default between the two: the second becomes the
        # default, which it could not be before it was added.
        archived = stored.archive(stored.methods[0].id, at=AT + HOURS_5)
        assert archived.default_id == stored.methods[1].id
        assert [(e.topic, e.occurred_at) for e in archived.events] == [
            ("payment_method_deleted", AT + HOURS_5),
            ("default_payment_method_changed", second),
        ]

    @pytest.mark.parametrize(
        "last4",
        ["4242424242424242", "424", "42a2", " 4242", "\uff14\uff12\uff14\uff12", "", "4242\n"],
    )
    def test_last4_only_never_echoed(self, world: World, last4: str) -> None:
        with pytest.raises(ValidationError) as caught:
            CustomerPaymentMethods.of(world.customer).add(
                type="card", display_name="Visa", last4=last4
            )
        assert caught.value.codes == ["invalid_last4"]
        if len(last4) > 4:
            assert last4 not in str(caught.value)

    @pytest.mark.parametrize(
        "name", ["Visa 4242 4242 4242 4242", "Account 000123456", "Chase 12-345-678"]
    )
    def test_display_name_must_not_hold_a_number(self, world: World, name: str) -> None:
        with pytest.raises(ValidationError) as caught:
            CustomerPaymentMethods.of(world.customer).add(
                type="card", display_name=name, last4="4242"
            )
        assert caught.value.codes == ["looks_like_number"]
        assert name not in str(caught.value)

    def test_every_invalid_field_at_once(self, world: World) -> None:
        with pytest.raises(ValidationError) as caught:
            CustomerPaymentMethods.of(world.customer).add(
                type="cash",
                display_name="",
                last4=4242,  # type: ignore[arg-type]
                make_default="yes",  # type: ignore[arg-type]
            )
        assert caught.value.paths == ["type", "display_name", "last4", "make_default"]

    @given(
        chosen=st.fixed_dictionaries(
            {
                "at": st.sampled_from(
                    [
                        (None, None),
                        (AT, None),
                        ("2026-01-01", "invalid_datetime"),
                        (dt.datetime(2026, 1, 1), "invalid_datetime"),
                    ]
                ),
                "type": st.sampled_from([("ach", None), ("bogus", "invalid_choice")]),
                "display_name": st.sampled_from([("Chase", None), (" ", "blank")]),
                "last4": st.sampled_from([("1111", None), ("12", "invalid_last4")]),
            }
        ),
        replacing=st.booleans(),
    )
    def test_a_bad_time_is_reported_with_the_other_fields(
        self, chosen: dict[str, tuple[object, str | None]], replacing: bool
    ) -> None:
        # A bad ``at`` was checked first, alone, and hid every other error.
        book = CustomerPaymentMethods.of(make_customer(make_partner())).add(
            type="card", display_name="Visa", last4="4242"
        )
        fields: dict[str, Any] = {name: value for name, (value, _) in chosen.items()}
        expected = sorted((name, code) for name, (_, code) in chosen.items() if code is not None)
        if not expected:
            return
        command = functools.partial(book.replace, book.methods[0].id) if replacing else book.add
        with pytest.raises(ValidationError) as caught:
            command(**fields)
        assert sorted((e.path, e.code) for e in caught.value.errors) == expected

    def test_invariants(self, world: World) -> None:
        book = CustomerPaymentMethods.of(world.customer).add(
            type="card", display_name="Visa", last4="4242"
        )
        with pytest.raises(InvariantViolation):
            attrs.evolve(book, default_id=None)
        with pytest.raises(InvariantViolation):
            attrs.evolve(book, methods=book.methods * 2)
        with pytest.raises(ValidationError) as caught:
            attrs.evolve(book, partner_id="p", methods=["x"], default_id="pm_1", version=-1)
        assert caught.value.paths == [
            "partner_id",
            "methods[0]",
            "default_id",
            "version",
        ]
        # Each message names its field and what came, as every field error does.
        assert caught.value.errors[1].message == "'methods[0]' must be a PaymentMethod (got str)"
        # With a good default, an item of the wrong type is named, and the
        # rule among the methods, which it could not answer, is left alone.
        with pytest.raises(ValidationError) as caught:
            attrs.evolve(book, methods=(*book.methods, "x"))
        assert (caught.value.paths, caught.value.codes) == (["methods[1]"], ["wrong_type"])
        with pytest.raises(ValidationError):
            attrs.evolve(book, methods="x")
        with pytest.raises(ValidationError) as caught:
            PaymentMethod(
                id="pm_1",  # type: ignore[arg-type]
                type="cheque",  # type: ignore[arg-type]
                display_name="Visa",
                last4="4242",
                status="gone",  # type: ignore[arg-type]
                added_at=dt.datetime(2026, 1, 1),
            )
        assert caught.value.paths == ["id", "type", "status", "added_at"]


class TestMethodOnFile:
    def test_auto_pay_says_so_when_none(self, world: World) -> None:
        for methods in (None, CustomerPaymentMethods.of(world.customer)):
            with pytest.raises(InvariantViolation) as caught:
                method_on_file(methods, world.customer, purpose="auto-pay")
            assert caught.value.rule == "method-on-file"
            assert "no payment method on file" in str(caught.value)
            assert "auto-pay" in str(caught.value)

    def test_chooses_the_default_or_the_one_named(self, world: World) -> None:
        book = CustomerPaymentMethods.of(world.customer)
        book = book.add(type="card", display_name="Visa", last4="4242")
        book = book.add(type="ach", display_name="Chase checking", last4="6789")
        visa, chase = book.methods
        assert method_on_file(book, world.customer, purpose="auto-pay") == visa
        assert method_on_file(book, world.customer, purpose="x", method_id=chase.id) == chase
        with pytest.raises(InvariantViolation) as caught:
            method_on_file(book.archive(chase.id), world.customer, purpose="x", method_id=chase.id)
        assert caught.value.rule == "payment-method"
        with pytest.raises(InvariantViolation) as caught:
            method_on_file(book, make_customer(world.partner), purpose="x")
        assert caught.value.rule == "I1"
        with pytest.raises(ValidationError) as caught:
            method_on_file([visa], world.customer, purpose="x")  # type: ignore[arg-type]
        assert caught.value.paths == ["methods"]
        assert book.require_default("auto-pay") == visa

    def test_another_customers_methods_are_at_methods_as_documented_i1(self, world: World) -> None:
        # The docstring put them at ``method_id`` when one was given.
        theirs = CustomerPaymentMethods.of(make_customer(world.partner)).add(
            type="card", display_name="Amex", last4="0005"
        )
        for method_id in (None, theirs.methods[0].id, PaymentMethodId.new()):
            with pytest.raises(InvariantViolation) as caught:
                method_on_file(theirs, world.customer, purpose="x", method_id=method_id)
            assert (caught.value.rule, caught.value.path) == ("I1", "methods")
        doc = " ".join((method_on_file.__doc__ or "").split())
        assert (
            "Methods that are not the customer's (another customer's: rule ``I1``) are "
            "always at ``methods``, whether or not ``method_id`` is given"
        ) in doc

    def test_refusals_are_at_the_argument_that_chose_the_method(self, world: World) -> None:
        # ``method_id`` when one is given, else ``methods``, at every entry point.
        book = CustomerPaymentMethods.of(world.customer)
        book = book.add(type="card", display_name="Visa", last4="4242")
        book = book.add(type="ach", display_name="Chase checking", last4="6789")
        chase = book.methods[1]
        archived = book.archive(chase.id)
        theirs = CustomerPaymentMethods.of(make_customer(world.partner)).add(
            type="card", display_name="Amex", last4="0005"
        )
        empty = CustomerPaymentMethods.of(world.customer)
        scheduled = TestScheduled().schedule(world, methods=book)

        def entry_points(methods: Any, method_id: Any) -> list[Callable[[], object]]:
            chosen = {} if method_id is None else {"method_id": method_id}
            points: list[Callable[[], object]] = [
                lambda: method_on_file(methods, world.customer, purpose="x", **chosen),
                lambda: charge_now(
                    world.partner,
                    world.customer,
                    [world.a],
                    payer=world.ann,
                    methods=methods,
                    idempotency_key="k",
                    **chosen,
                ),
                lambda: TestScheduled().schedule(world, methods=methods, **chosen),
            ]
            if method_id is None:
                points.append(
                    lambda: TestScheduled.run_on_its_day(world, scheduled, world.a, methods)
                )
            return points

        cases = [
            (None, None, "method-on-file", "methods"),
            (empty, None, "method-on-file", "methods"),
            (None, chase.id, "method-on-file", "method_id"),
            (theirs, None, "I1", "methods"),
            (theirs, chase.id, "I1", "methods"),
            (archived, chase.id, "payment-method", "method_id"),
        ]
        for methods, method_id, rule, path in cases:
            for call in entry_points(methods, method_id):
                with pytest.raises(InvariantViolation) as caught:
                    call()
                assert (caught.value.rule, caught.value.path) == (rule, path), (rule, path)

    def test_charge_now(self, world: World) -> None:
        with pytest.raises(InvariantViolation) as caught:
            charge_now(
                world.partner,
                world.customer,
                [world.a],
                payer=world.ann,
                methods=None,
                idempotency_key="k",
            )
        assert caught.value.rule == "method-on-file"
        book = CustomerPaymentMethods.of(world.customer).add(
            type="ach", display_name="Chase checking", last4="6789"
        )
        pay, (inv,) = charge_now(
            world.partner,
            world.customer,
            [world.a],
            payer=world.ann,
            methods=book,
            idempotency_key="k",
            amounts={world.a.id: "10.00"},
        )
        assert pay.payment_method_id == book.default_id
        assert inv.balance == usd("290.00")


class TestScheduled:
    def book(self, world: World) -> CustomerPaymentMethods:
        """The customer's book: the same method each time, as a store reads it."""
        chase = PaymentMethod(
            id=PaymentMethodId("pm_chase"),
            type=PaymentMethodType.ACH,
            display_name="Chase checking",
            last4="6789",
            added_at=AT,
        )
        return CustomerPaymentMethods(
            partner_id=world.partner.id,
            customer_id=world.customer.id,
            methods=(chase,),
            default_id=chase.id,
        )

    def schedule(self, world: World, **more: object) -> ScheduledPayment:
        fields: dict[str, object] = {
            "payer": world.ann,
            "methods": self.book(world),
            "pay_on": TODAY + dt.timedelta(days=3),
            "today": TODAY,
        }
        invoice = more.pop("invoice", world.a)
        fields.update(more)
        return schedule_payment(world.partner, world.customer, invoice, **fields)  # type: ignore[arg-type]

    def test_an_invoice_not_open_is_named_by_the_argument_i4(self, world: World) -> None:
        with pytest.raises(InvariantViolation) as caught:
            schedule_payment(
                world.partner,
                world.customer,
                world.a.void(world.partner),
                payer=world.ann,
                methods=self.book(world),
                pay_on=TODAY,
                today=TODAY,
            )
        assert (caught.value.rule, caught.value.path) == ("I4", "invoice")

    def test_needs_a_method_on_file(self, world: World) -> None:
        with pytest.raises(InvariantViolation) as caught:
            self.schedule(world, methods=CustomerPaymentMethods.of(world.customer))
        assert caught.value.rule == "method-on-file"
        assert "scheduled payment" in str(caught.value)

    def test_schedule_and_run(self, world: World) -> None:
        scheduled = self.schedule(world, amount="120.00", at=AT)
        assert scheduled.status is ScheduledPaymentStatus.SCHEDULED
        assert scheduled.amount == usd("120.00")
        assert scheduled.created_at == AT
        assert not scheduled.is_due(TODAY)
        day = scheduled.pay_on
        assert scheduled.is_due(day)
        with pytest.raises(InvariantViolation):
            run_scheduled_payment(
                scheduled,
                partner=world.partner,
                customer=world.customer,
                invoice=world.a,
                methods=self.book(world),
                today=TODAY,
            )
        done, pay, inv = run_scheduled_payment(
            scheduled,
            partner=world.partner,
            customer=world.customer,
            invoice=world.a,
            methods=self.book(world),
            today=day,
            at=AT,
        )
        assert done.status is ScheduledPaymentStatus.PROCESSED
        assert done.payment_id == pay.id
        assert pay.amount == usd("120.00")
        assert pay.idempotency_key == f"scheduled:{scheduled.id}"
        assert inv.balance == usd("180.00")
        with pytest.raises(InvariantViolation):
            run_scheduled_payment(
                done,
                partner=world.partner,
                customer=world.customer,
                invoice=inv,
                methods=self.book(world),
                today=day,
            )
        with pytest.raises(InvariantViolation):
            done.cancel()

    @staticmethod
    def run_on_its_day(
        world: World,
        scheduled: ScheduledPayment,
        invoice: Invoice,
        methods: CustomerPaymentMethods | None,
    ) -> tuple[ScheduledPayment, Payment, Invoice]:
        return run_scheduled_payment(
            scheduled,
            partner=world.partner,
            customer=world.customer,
            invoice=invoice,
            methods=methods,
            today=scheduled.pay_on,
        )

    def test_runs_with_the_method_it_was_scheduled_with(self, world: World) -> None:
        # Not the default: a card saved first is the default, the bank
        # account it was scheduled with runs it (no card fee).
        book = CustomerPaymentMethods.of(world.customer).add(
            type="card", display_name="Visa", last4="4242"
        )
        book = book.add(type="ach", display_name="Chase checking", last4="6789")
        ach = book.methods[1]
        assert book.default_id != ach.id
        scheduled = self.schedule(world, methods=book, method_id=ach.id)
        _, pay, _ = self.run_on_its_day(world, scheduled, world.a, book)
        assert (pay.payment_method_id, pay.method, pay.fees) == (ach.id, ach.type, ())

    def test_a_book_without_the_method_it_was_scheduled_with_is_refused(self, world: World) -> None:
        # Archived, it falls back to the default; not there at all, the book
        # is not the one it was scheduled from (a method is never removed).
        book = self.book(world).add(type="card", display_name="Visa", last4="4242")
        chase, visa = book.methods
        scheduled = self.schedule(world, methods=book)
        assert scheduled.payment_method_id == chase.id
        elsewhere = CustomerPaymentMethods.of(world.customer).add(
            type="ach", display_name="Chase checking", last4="6789"
        )
        for other in (attrs.evolve(book, methods=(visa,), default_id=visa.id), elsewhere):
            with pytest.raises(InvariantViolation) as caught:
                self.run_on_its_day(world, scheduled, world.a, other)
            assert (caught.value.rule, caught.value.path) == ("payment-method", "methods")
            assert str(chase.id) in str(caught.value)
        _, pay, _ = self.run_on_its_day(world, scheduled, world.a, book.archive(chase.id))
        assert pay.payment_method_id == visa.id

    def test_runs_for_at_most_the_balance_and_falls_back_to_the_default(self, world: World) -> None:
        book = self.book(world)
        scheduled = self.schedule(world, methods=book, amount="250.00")
        _, (part,) = world.pay(amounts={world.a.id: "100.00"})
        book = book.replace(
            scheduled.payment_method_id, type="ach", display_name="Chase", last4="1234"
        )
        _, pay, inv = self.run_on_its_day(world, scheduled, part, book)
        assert pay.amount == usd("200.00")
        assert pay.payment_method_id == book.default_id
        assert inv.status is InvoiceStatus.PAID
        in_full = self.schedule(world)
        assert in_full.amount is None
        with pytest.raises(InvariantViolation) as caught:
            self.run_on_its_day(world, in_full, world.a, None)
        assert caught.value.rule == "method-on-file"

    def test_schedule_rules(self, world: World) -> None:
        with pytest.raises(ValidationError) as caught:
            self.schedule(world, pay_on=TODAY - dt.timedelta(days=1))
        assert caught.value.codes == ["in_the_past"]
        with pytest.raises(InvariantViolation) as caught:
            self.schedule(world, amount="300.01")
        assert caught.value.rule == "I5"
        # At most the balance, not the total, of a partly paid invoice.
        partly = world.a._apply_payment(PaymentId.new(), usd("100.00"))
        with pytest.raises(InvariantViolation) as caught:
            self.schedule(world, invoice=partly, amount="200.01")
        assert (caught.value.rule, caught.value.path) == ("I5", "amount")
        assert self.schedule(world, invoice=partly, amount="200.00").amount == usd("200.00")
        with pytest.raises(ValidationError) as caught:
            self.schedule(world, amount="0", pay_on="soon")
        assert caught.value.paths == ["pay_on", "amount"]
        with pytest.raises(PermissionDenied):
            self.schedule(world, payer=World().ann)
        assert self.schedule(world, payer=str(world.bo.id)).user_id == world.bo.id
        with pytest.raises(PermissionDenied):
            self.schedule(world, payer=str(World().ann.id))
        paid = world.a._apply_payment(PaymentId.new(), usd("300.00"))
        with pytest.raises(InvariantViolation) as caught:
            self.schedule(world, invoice=paid, pay_on=TODAY)
        assert caught.value.rule == "I4"
        other = World()
        with pytest.raises(InvariantViolation) as caught:
            schedule_payment(
                world.partner,
                other.customer,
                other.a,
                payer=other.ann,
                methods=None,
                pay_on=TODAY,
                today=TODAY,
            )
        assert caught.value.rule == "I1"
        canada_card = CustomerPaymentMethods.of(world.customer).add(
            type="pad", display_name="RBC", last4="1234"
        )
        with pytest.raises(ValidationError) as caught:
            self.schedule(world, methods=canada_card)
        assert (caught.value.paths, caught.value.codes) == (["methods"], ["method_unavailable"])
        with pytest.raises(ValidationError) as caught:
            self.schedule(world, methods=canada_card, method_id=canada_card.default_id)
        assert caught.value.paths == ["method_id"]
        assert "'method_id' pad is not available in USD" in str(caught.value)

    def test_cancel_and_checks(self, world: World) -> None:
        scheduled = self.schedule(world)
        cancelled = scheduled.cancel()
        assert cancelled.status is ScheduledPaymentStatus.CANCELED
        assert cancelled.cancel() is cancelled
        with pytest.raises(ValidationError):
            run_scheduled_payment(
                scheduled,
                partner=world.partner,
                customer=world.customer,
                invoice=world.b,
                methods=None,
                today=TODAY,
            )
        with pytest.raises(InvariantViolation):
            attrs.evolve(scheduled, status=ScheduledPaymentStatus.PROCESSED)
        with pytest.raises(ValidationError) as caught:
            attrs.evolve(
                scheduled,
                id=PaymentId.new(),
                user_id="u",
                pay_on=AT,
                amount=usd("0"),
                status="done",
                payment_id="p",
                version=-1,
            )
        assert caught.value.paths == [
            "id",
            "user_id",
            "pay_on",
            "amount",
            "status",
            "payment_id",
            "version",
        ]


# -- enumerations given as their values -------------------------------------------------------


class TestEnumerationsAsValues:
    """A status, method or type given as its value becomes the member before
    any rule runs: the value passed the checks unconverted, so instances broke
    the rules (a refunded payment that never succeeded) or their own methods."""

    @settings(max_examples=max(10, settings.default.max_examples // 2))
    @given(pay=st.from_type(Payment), status=st.sampled_from(PaymentStatus))
    def test_payment_status_as_value_is_the_member(
        self, pay: Payment, status: PaymentStatus
    ) -> None:
        assert_same_outcome(
            lambda: attrs.evolve(pay, status=status), lambda: attrs.evolve(pay, status=status.value)
        )

    @settings(max_examples=max(10, settings.default.max_examples // 2))
    @given(pay=st.from_type(Payment), method=st.sampled_from(PaymentMethodType))
    def test_payment_method_as_value_is_the_member(
        self, pay: Payment, method: PaymentMethodType
    ) -> None:
        assert_same_outcome(
            lambda: attrs.evolve(pay, method=method), lambda: attrs.evolve(pay, method=method.value)
        )

    def test_the_reported_cases(self, world: World) -> None:
        pay, _ = paid_by(world, "card")
        with pytest.raises(InvariantViolation) as caught:
            attrs.evolve(pay, status="refunded")
        assert caught.value.rule == "I7"
        with pytest.raises(InvariantViolation) as caught:
            attrs.evolve(pay, status="charged_back")
        assert caught.value.rule == "I6"
        same = attrs.evolve(pay, status="processing", method="card")
        assert (same.status, same.method) == (PaymentStatus.PROCESSING, PaymentMethodType.CARD)
        assert same == pay
        with pytest.raises(ValidationError) as caught:
            attrs.evolve(pay, status="lost", method="cash")
        assert caught.value.paths == ["method", "status"]
        assert caught.value.codes == ["invalid_choice", "invalid_choice"]

    def test_fee_kind(self) -> None:
        fee = Fee("card", "Card", Money("1", "USD"))  # type: ignore[arg-type]
        assert fee.kind is FeeKind.CARD
        assert fee == Fee.new(FeeKind.CARD, Money("1", "USD"), name="Card")
        assert to_dict(fee)["kind"] == "card"
        with pytest.raises(ValidationError) as caught:
            Fee("cheque", "Card", Money("1", "USD"))  # type: ignore[arg-type]
        assert (caught.value.paths, caught.value.codes) == (["kind"], ["invalid_choice"])

    def test_payment_method_type_and_status(self) -> None:
        method = PaymentMethod(
            id=PaymentMethodId.new(),
            type="ach",  # type: ignore[arg-type]
            display_name="Chase checking",
            last4="6789",
            status="active",  # type: ignore[arg-type]
        )
        assert method.is_active
        assert (method.type, method.status) == (
            PaymentMethodType.ACH,
            PaymentMethodStatus.ACTIVE,
        )
        assert to_dict(method)["type"] == "ach"

    def test_scheduled_payment_status(self, world: World) -> None:
        scheduled = TestScheduled().schedule(world)
        again = attrs.evolve(scheduled, status="scheduled")
        assert again.status is ScheduledPaymentStatus.SCHEDULED
        assert again.is_due(again.pay_on)
        assert again.cancel().status is ScheduledPaymentStatus.CANCELED
        with pytest.raises(InvariantViolation):
            attrs.evolve(scheduled, status="processed")  # without a payment id


def assert_same_outcome(with_member: Any, with_value: Any) -> None:
    """Both build the same instance, or both are refused with the same error."""
    refused: Exception | None = None
    try:
        expected = with_member()
    except (InvariantViolation, ValidationError) as error:
        refused = error
    if refused is None:
        assert with_value() == expected
        return
    with pytest.raises(type(refused)) as caught:
        with_value()
    assert str(caught.value) == str(refused)


# -- saved methods: never a full number ----------------------------------------------------


@attrs.frozen
class _MethodPage(Page[PaymentMethod]):
    """A user's page of saved methods."""


def _page_data(method: object) -> dict[str, Any]:
    """A page's data, its one item ``method``."""
    return to_dict(Page(items=())) | {"items": [method]}


_WAYS_TO_A_METHOD: dict[str, tuple[Any, Callable[[object], object], str]] = {
    "page": (Page[PaymentMethod], _page_data, "items[0]"),
    "annotated": (Annotated[PaymentMethod, "saved"], lambda method: method, ""),
    "page of annotated": (
        Page[Annotated[PaymentMethod, "saved"]],
        _page_data,
        "items[0]",
    ),
    "first of a tuple": (tuple[PaymentMethod, int], lambda method: [method, 1], "[0]"),
    "last of a tuple": (tuple[int, PaymentMethod], lambda method: [1, method], "[1]"),
    "union": (Page[PaymentMethod] | Customer, _page_data, "items[0]"),
    "new type": (NewType("SavedMethod", PaymentMethod), lambda method: method, ""),
    "subclass of a generic class": (_MethodPage, _page_data, "items[0]"),
}
"""How data may hold a saved method: the type read, the data around the
method's, and the path to it."""


@attrs.frozen
class _Unresolved:
    """A user's class whose annotation names a type imported only for type
    checkers: its types cannot be resolved."""

    amount: _OnlyTyped


@attrs.frozen
class _HoldsAMethod:
    """A user's class holding a saved method, whose other annotation names a
    type imported only for type checkers."""

    method: PaymentMethod
    note: _OnlyTyped | None = None


_Ts = TypeVarTuple("_Ts")
_T = TypeVar("_T")


@attrs.frozen
class _Stray:
    """A user's class whose annotation is a type variable it does not take."""

    method: _T  # type: ignore[valid-type]


@attrs.frozen
class _Variadic(Generic[*_Ts]):
    """A user's variadic generic class."""

    method: dict[str, int]


@attrs.frozen
class _Unreadable:
    """A user's class whose annotation is no type at all."""

    method: "list[int"  # type: ignore[name-defined]  # noqa: F722


class TestDisplayNameDigits:
    @pytest.mark.parametrize(
        "name",
        [
            "4242/4242/4242/4242",
            "4242_4242_4242_4242",
            "Visa 4242,4242,4242,4242",
            "4242\u00b74242\u00b74242\u00b74242",
            "\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12",
            "\u0664\u0662\u0664\u0662\u0664",  # Arabic-Indic digits
            "Visa 4242 1",
        ],
    )
    def test_more_than_4_digits_in_any_form_is_refused(self, world: World, name: str) -> None:
        book = CustomerPaymentMethods.of(world.customer)
        with pytest.raises(ValidationError) as caught:
            book.add(type="card", display_name=name, last4="4242")
        assert caught.value.codes == ["looks_like_number"]
        assert name not in str(caught.value)
        with pytest.raises(ValidationError) as caught:
            PaymentMethod(
                id=PaymentMethodId.new(),
                type=PaymentMethodType.CARD,
                display_name=name,
                last4="4242",
            )
        assert caught.value.paths == ["display_name"]

    @given(
        digits=st.lists(st.characters(categories=["Nd"]), min_size=5, max_size=12),
        separators=st.lists(
            st.text(st.characters(categories=["L", "P", "S", "Zs"]), max_size=2),
            min_size=12,
            max_size=12,
        ),
    )
    def test_any_5_digits_whatever_separates_them(
        self, digits: list[str], separators: list[str]
    ) -> None:
        name = "Visa " + "".join(d + sep for d, sep in zip(digits, separators, strict=False))
        with pytest.raises(ValidationError) as caught:
            CustomerPaymentMethods(partner_id=PartnerId.new(), customer_id=CustomerId.new()).add(
                type="card", display_name=name[:50], last4="4242"
            )
        assert "looks_like_number" in caught.value.codes

    @given(
        digits=st.text("0123456789", min_size=12, max_size=19),
        separator=st.sampled_from(["", " ", "-"]),
        as_int=st.booleans(),
        data=st.data(),
    )
    def test_a_full_number_in_any_field_is_never_echoed(
        self, digits: str, separator: str, as_int: bool, data: st.DataObject
    ) -> None:
        text = separator.join(digits[i : i + 4] for i in range(0, len(digits), 4))
        number: object = int(digits) if as_int else text
        book = CustomerPaymentMethods(partner_id=PartnerId.new(), customer_id=CustomerId.new()).add(
            type="card", display_name="Visa", last4="4242", at=AT
        )
        method = book.methods[0]
        given_to = {"type": "card", "display_name": "Visa", "last4": "4242"}
        stored = to_dict(method)
        fields_of_method = attrs.asdict(method, recurse=False)
        ways: dict[str, Callable[[str], object]] = {
            "add": lambda f: book.add(**{**given_to, "make_default": False, "at": AT, f: number}),
            "replace": lambda f: book.replace(
                **{"method_id": method.id, **given_to, "at": AT, f: number}
            ),
            "PaymentMethod": lambda f: PaymentMethod(**{**fields_of_method, f: number}),
            "from_dict": lambda f: from_dict(PaymentMethod, {**stored, f: number}),
            "from_json book": lambda f: from_json(
                CustomerPaymentMethods,
                json.dumps({**to_dict(book), "methods": [{**stored, f: number}]}),
            ),
        }
        fields = {
            "add": ["type", "display_name", "last4", "make_default", "at"],
            "replace": ["method_id", "type", "display_name", "last4", "at"],
        }
        way = data.draw(st.sampled_from(sorted(ways)))
        everything = ["id", "type", "display_name", "last4", "status", "added_at"]
        field = data.draw(st.sampled_from(fields.get(way, everything)))
        with pytest.raises(ValidationError) as caught:
            ways[way](field)
        for message in (str(caught.value), repr(caught.value.errors)):
            assert digits not in message, (way, field, message)
            assert text not in message, (way, field, message)

    @given(
        digits=st.from_regex(r"[0-9]{12,19}", fullmatch=True),
        prefix=st.sampled_from(["", "pm_", "pm-", " "]),
        scheduled=aps.scheduled_payments(),
    )
    def test_a_full_number_given_as_a_method_id_is_never_echoed(
        self, digits: str, prefix: str, scheduled: ScheduledPayment
    ) -> None:
        # A malformed method id, wherever it is read: its own constructor,
        # EntityId.parse, a scheduled payment's stored form.
        text = prefix + digits + ("!" if prefix == "pm_" else "")
        data = {**to_dict(scheduled), "payment_method_id": text}
        ways = [
            lambda: PaymentMethodId(text),
            lambda: PaymentMethodId.parse(text),
            lambda: from_dict(ScheduledPayment, data),
            lambda: from_json(ScheduledPayment, json.dumps(data)),
        ]
        for way in ways:
            with pytest.raises(ValidationError) as caught:
                way()
            assert caught.value.codes == ["invalid_id"]
            assert digits not in str(caught.value)
            assert f"{len(text)} characters; the value is not shown" in str(caught.value)

    @pytest.mark.parametrize(
        "call",
        ["method", "archive", "set_default", "replace", "method_on_file", "schedule", "charge"],
    )
    def test_a_full_number_given_as_a_method_id_argument_is_never_echoed(
        self, world: World, call: str
    ) -> None:
        number = "4111111111111111"
        book = CustomerPaymentMethods.of(world.customer).add(
            type="card", display_name="Visa", last4="4242"
        )
        calls = _method_id_calls(world, book, number)
        with pytest.raises(ValidationError) as caught:
            calls[call]()
        assert caught.value.paths == ["method_id"]
        assert number[:8] not in str(caught.value)

    @settings(max_examples=50)
    @given(
        digits=st.from_regex(r"[0-9]{12,19}", fullmatch=True),
        call=st.sampled_from(
            ["method", "archive", "set_default", "replace", "method_on_file", "schedule", "charge"]
        ),
    )
    def test_a_full_number_wrapped_in_a_method_id_is_never_echoed(
        self, digits: str, call: str
    ) -> None:
        # "pm_4111..." is a well-formed id: no method has it, and the
        # NotFound gives its length only, in its message, key and pickle.
        text = f"pm_{digits}"
        world = _WORLD
        book = CustomerPaymentMethods.of(world.customer).add(
            type="card", display_name="Visa", last4="4242", at=AT
        )
        calls = _method_id_calls(world, book, text)
        with pytest.raises(NotFound) as caught:
            calls[call]()
        error = caught.value
        assert error.kind == "payment method"
        assert error.key == ""
        assert f"{len(text)} characters; the value is not shown" in str(error)
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is NotFound
        assert str(back) == str(error)
        assert back.key == ""
        for shown in (str(error), repr(error), error.key, repr(pickle.dumps(error))):
            assert digits not in shown, (call, shown)

    @given(digits=st.from_regex(r"[0-9]{12,19}", fullmatch=True), book_level=st.booleans())
    def test_a_full_number_as_a_key_is_never_echoed(self, digits: str, book_level: bool) -> None:
        # An unknown key is named by the object it was found in, not by
        # itself: the key may be the number.
        book = CustomerPaymentMethods(partner_id=PartnerId.new(), customer_id=CustomerId.new()).add(
            type="card", display_name="Visa", last4="4242", at=AT
        )
        data = to_dict(book)
        if book_level:
            data[digits] = 1
        else:
            data["methods"][0][digits] = 1
        for read in (
            lambda: from_dict(CustomerPaymentMethods, data),
            lambda: from_json(CustomerPaymentMethods, json.dumps(data)),
        ):
            with pytest.raises(ValidationError) as caught:
                read()
            assert caught.value.codes == ["unknown_field"]
            assert caught.value.paths == ["" if book_level else "methods[0]"]
            message = caught.value.errors[0].message
            assert digits not in str(caught.value)
            assert digits not in message
            assert f"has a key ({len(digits)} characters; the value is not shown)" in message

    @given(
        digits=st.from_regex(r"[0-9]{12,19}", fullmatch=True),
        level=st.sampled_from(["book", "method", "alone"]),
        as_bytes=st.booleans(),
    )
    def test_a_full_number_as_a_key_given_twice_is_never_echoed(
        self, digits: str, level: str, as_bytes: bool
    ) -> None:
        # A key given twice is refused before the data is read: at the
        # object too, the key not shown, as an unknown key is.
        book = CustomerPaymentMethods(partner_id=PartnerId.new(), customer_id=CustomerId.new()).add(
            type="card", display_name="Visa", last4="4242", at=AT
        )
        marker = "\x00twice\x00"
        data = to_dict(book)
        kind: Any = CustomerPaymentMethods
        target = data if level == "book" else data["methods"][0]
        if level == "alone":
            data, kind = target, PaymentMethod
        target[digits] = 1
        target[marker] = 2
        text = json.dumps(data).replace(json.dumps(marker), json.dumps(digits))
        with pytest.raises(ValidationError) as caught:
            from_json(kind, text.encode() if as_bytes else text)
        path = "methods[0]" if level == "method" else ""
        assert caught.value.codes == ["duplicate_key"]
        assert caught.value.paths == [path]
        assert digits not in str(caught.value)
        assert digits not in repr(caught.value.errors)
        assert caught.value.errors[0].message == (
            f"'{path or 'value'}' holds a key ({len(digits)} characters; the value is not shown) "
            "given more than once"
        )

    @pytest.mark.parametrize(
        ("kind", "text", "path"),
        [
            (PaymentMethod | None, '{"4111111111111111": {"a": 1, "a": 2}}', ""),
            (list[PaymentMethod], '[{"4111111111111111": {"a": 1, "a": 2}}]', "[0]"),
            (list[PaymentMethod], '[{}, {"4111111111111111": {"a": 1, "a": 2}}]', "[1]"),
            (PaymentMethod | Money, '{"4111111111111111": {"a": 1, "a": 2}}', ""),
            (PaymentMethod, '{"display_name": "Visa", "display_name": "Visa"}', ""),
        ],
    )
    def test_a_key_given_twice_within_a_method_is_reported_at_the_object(
        self, kind: Any, text: str, path: str
    ) -> None:
        # Within a key that is no field, the key is left out of the path.
        with pytest.raises(ValidationError) as caught:
            from_json(kind, text)
        assert (caught.value.paths, caught.value.codes) == ([path], ["duplicate_key"])
        assert "4111111111111111" not in str(caught.value)

    @given(
        digits=st.from_regex(r"[0-9]{12,19}", fullmatch=True),
        way=st.sampled_from(sorted(_WAYS_TO_A_METHOD)),
    )
    def test_a_full_number_given_twice_is_never_echoed_however_the_method_is_held(
        self, digits: str, way: str
    ) -> None:
        # In a generic class (Page[PaymentMethod]), Annotated or a fixed
        # tuple, a method's data is read within input_unshown, as alone: a
        # key given twice there is at the object, as an unknown key is.
        kind, hold, path = _WAYS_TO_A_METHOD[way]
        method = to_dict(
            CustomerPaymentMethods(partner_id=PartnerId.new(), customer_id=CustomerId.new())
            .add(type="card", display_name="Visa", last4="4242", at=AT)
            .methods[0]
        )
        marker = "\x00twice\x00"
        twice = {**method, digits: 1, marker: 2}
        text = json.dumps(hold(twice)).replace(json.dumps(marker), json.dumps(digits))
        with pytest.raises(ValidationError) as caught:
            from_json(kind, text)
        assert (caught.value.paths, caught.value.codes) == ([path], ["duplicate_key"])
        assert digits not in str(caught.value)
        assert digits not in repr(caught.value.errors)
        with pytest.raises(ValidationError) as caught:
            from_json(kind, json.dumps(hold({**method, digits: 1})))
        assert (caught.value.paths, caught.value.codes) == ([path], ["unknown_field"])
        assert digits not in str(caught.value)

    @pytest.mark.parametrize(
        "kind", [_HoldsAMethod, _Variadic[int, str, bytes], _Unreadable, _Stray]
    )
    def test_a_key_given_twice_in_data_whose_type_cannot_be_told_is_not_shown(
        self, kind: Any
    ) -> None:
        # When in doubt (a user's class whose types cannot be read), a key is
        # not shown, and nothing but a ValidationError comes of it.
        digits = "4111111111111111"
        text = f'{{"method": {{"{digits}": 1, "{digits}": 2}}}}'
        with pytest.raises(ValidationError) as caught:
            from_json(kind, text)
        assert (caught.value.paths, caught.value.codes) == (["method"], ["duplicate_key"])
        assert digits not in str(caught.value)

    @pytest.mark.parametrize(
        ("kind", "text", "path"),
        [
            (Page, '{"items": [{"4111111111111111": 1, "4111111111111111": 2}]}', None),
            (tuple[PaymentMethod], '[{}, {"4111111111111111": 1, "4111111111111111": 2}]', None),
            (tuple[int, PaymentMethod], '{"4111111111111111": {"a": 1, "a": 2}}', None),
            (_Unresolved, '{"amount": 1, "amount": 2}', "amount"),
        ],
    )
    def test_data_read_as_any_shows_a_key_given_twice(
        self, kind: Any, text: str, path: str | None
    ) -> None:
        # A bare Page's items, an index past a fixed tuple's or a key read
        # as a tuple are not read as a method: nor is a class whose types
        # cannot be found, and that is no reason to fail otherwise.
        with pytest.raises(ValidationError) as caught:
            from_json(kind, text)
        assert caught.value.codes == ["duplicate_key"]
        assert caught.value.errors[0].message.endswith("' is given more than once")
        if path is not None:
            assert caught.value.paths == [path]

    @pytest.mark.parametrize(
        ("way", "path"),
        [
            ("method", "method"),
            ("payer", "payer"),
            ("team member payer", "payer"),
            ("card fee", "method"),
            ("fingerprint", "method"),
            ("payment", "method"),
            ("type", ""),
        ],
    )
    def test_a_full_number_given_as_a_payments_method_or_payer_is_never_echoed(
        self, world: World, way: str, path: str
    ) -> None:
        # As a saved method's type: the code and path, and the length only.
        number = "4111111111111111"
        payment, _ = world.pay()
        calls: dict[str, Callable[[], object]] = {
            "method": lambda: world.pay(method=number),
            "payer": lambda: world.pay(payer=number),
            "team member payer": lambda: world.pay(payer=f"tm_{number}!"),
            "card fee": lambda: card_fee_for(world.partner, world.customer, usd("1"), number),
            "fingerprint": lambda: request_fingerprint(
                customer_id=world.customer.id, user_id=world.ann.id, method=number,  # type: ignore[arg-type]
                payment_method_id=None, currency=world.currency, amounts=[],
            ),
            "payment": lambda: attrs.evolve(payment, method=number),
            "type": lambda: PaymentMethodType(number),
        }  # fmt: skip
        with pytest.raises(ValidationError) as caught:
            calls[way]()
        assert caught.value.paths == [path]
        assert caught.value.codes == ["invalid_id" if "payer" in way else "invalid_choice"]
        assert number not in str(caught.value)
        assert number not in repr(caught.value.errors)
        assert "characters; the value is not shown" in str(caught.value)

    @given(digits=st.from_regex(r"[0-9]{12,19}", fullmatch=True), payment=aps.payments())
    def test_a_full_number_as_a_stored_payments_method_is_never_echoed(
        self, digits: str, payment: Payment
    ) -> None:
        data = {**to_dict(payment), "method": digits}
        for read, path in (
            (lambda: from_dict(Payment, data), "method"),
            (lambda: from_json(Payment, json.dumps(data)), "method"),
            (lambda: from_dict(PaymentMethodType, digits), ""),
        ):
            with pytest.raises(ValidationError) as caught:
                read()
            assert (caught.value.paths, caught.value.codes) == ([path], ["invalid_choice"])
            assert digits not in str(caught.value)
            assert f"{len(digits)} characters; the value is not shown" in str(caught.value)

    @pytest.mark.parametrize("method", [*PaymentMethodType, *(m.value for m in PaymentMethodType)])
    def test_a_valid_method_is_read_without_masking(
        self, monkeypatch: pytest.MonkeyPatch, method: object
    ) -> None:
        # Masking is for a refused method only: a valid one, given with
        # every payment and read back with every stored one, is read quickly.
        def masked() -> NoReturn:
            raise AssertionError("a valid method was read within input_unshown")

        monkeypatch.setattr(payment_module, "input_unshown", masked)
        monkeypatch.setattr(serialization, "input_unshown", masked)
        kind = PaymentMethodType(method)
        world = World("CA" if kind.available_in(Currency("CAD")) else "US")
        fee = card_fee_for(world.partner, world.customer, world.money("100"), method)  # type: ignore[arg-type]
        assert (fee is None) == kind.is_bank_debit
        assert request_fingerprint(
            customer_id=world.customer.id,
            user_id=world.ann.id,
            method=method,  # type: ignore[arg-type]
            payment_method_id=None,
            currency=world.currency,
            amounts=[(world.a.id, world.money("1"))],
        )
        payment = world.pay(method=method)[0]
        assert from_dict(Payment, to_dict(payment)).method is kind
        assert from_json(Payment, json.dumps(to_dict(payment))).method is kind

    @given(number=st.integers(10**11, 10**19 - 1))
    def test_a_full_number_as_a_non_text_method_is_never_echoed(self, number: int) -> None:
        world = World()
        for read in (
            lambda: from_dict(PaymentMethodType, number),
            lambda: card_fee_for(world.partner, world.customer, usd("1"), number),  # type: ignore[arg-type]
        ):
            with pytest.raises(ValidationError) as caught:
                read()
            assert caught.value.codes == ["invalid_choice"]
            assert str(number) not in str(caught.value)

    @pytest.mark.parametrize("name", ["Visa 4242", "Chase checking 1-2-3-4", "Amex Gold"])
    def test_up_to_4_digits_are_kept(self, world: World, name: str) -> None:
        book = CustomerPaymentMethods.of(world.customer)
        assert (
            book.add(type="card", display_name=name, last4="4242").methods[0].display_name == name
        )

    @pytest.mark.parametrize(
        "last4",
        [
            "\u0664\u0662\u0664\u0662",
            "\U0001d7d2\U0001d7d0\U0001d7d2\U0001d7d0",
            "4\u0662\u0664\u0662",
        ],
    )
    def test_last4_is_4_ascii_digits(self, world: World, last4: str) -> None:
        with pytest.raises(ValidationError) as caught:
            CustomerPaymentMethods.of(world.customer).add(
                type="card", display_name="Visa", last4=last4
            )
        assert caught.value.codes == ["invalid_last4"]


# -- scheduled payments that can no longer run ---------------------------------------------


class TestScheduledRunChecks:
    def test_a_paid_invoice_takes_no_scheduled_payment_i4(self, world: World) -> None:
        # It said "amounts[...] must be greater than zero" (the balance).
        scheduled = TestScheduled().schedule(world, amount="100.00")
        _, (paid,) = world.pay()
        assert paid.status is InvoiceStatus.PAID
        for invoice in (paid, world.a.void(world.partner)):
            with pytest.raises(InvariantViolation) as caught:
                run_scheduled_payment(
                    scheduled,
                    partner=world.partner,
                    customer=world.customer,
                    invoice=invoice,
                    methods=TestScheduled().book(world),
                    today=scheduled.pay_on,
                )
            assert (caught.value.rule, caught.value.path) == ("I4", "invoice")

    def test_an_amount_in_a_currency_no_partner_bills_in_is_refused_i2(self, world: World) -> None:
        scheduled = TestScheduled().schedule(world)
        with pytest.raises(ValidationError) as caught:
            attrs.evolve(scheduled, amount=Money("5", "EUR"))
        assert (caught.value.paths, caught.value.codes) == (["amount"], ["unsupported_currency"])

    def test_an_amount_in_another_currency_than_the_invoices_is_refused_i2(
        self, world: World
    ) -> None:
        # A CAD amount for a USD invoice: CurrencyMismatch escaped from the run.
        scheduled = attrs.evolve(TestScheduled().schedule(world), amount=Money("5", "CAD"))
        with pytest.raises(ValidationError) as caught:
            run_scheduled_payment(
                scheduled,
                partner=world.partner,
                customer=world.customer,
                invoice=world.a,
                methods=TestScheduled().book(world),
                today=scheduled.pay_on,
            )
        assert (caught.value.paths, caught.value.codes) == (["amount"], ["currency_mismatch"])
        with pytest.raises(ValidationError) as caught:
            TestScheduled().schedule(world, amount=Money("5", "CAD"))
        assert caught.value.paths == ["amount"]


class TestSkipped:
    """A scheduled payment that can no longer run is marked skipped, and is
    no longer due; one that can still run is not."""

    def skip(self, world: World, scheduled: ScheduledPayment, **more: Any) -> ScheduledPayment:
        fields: dict[str, Any] = {
            "partner": world.partner,
            "customer": world.customer,
            "invoice": world.a,
            "today": scheduled.pay_on,
        }
        fields.update(more)
        return skip_scheduled_payment(scheduled, **fields)

    def run(self, world: World, scheduled: ScheduledPayment, **more: Any) -> object:
        fields: dict[str, Any] = {
            "partner": world.partner,
            "customer": world.customer,
            "invoice": world.a,
            "methods": TestScheduled().book(world),
            "today": scheduled.pay_on,
        }
        fields.update(more)
        return run_scheduled_payment(scheduled, **fields)

    def test_an_invoice_that_no_longer_takes_payments_i4(self, world: World) -> None:
        scheduled = TestScheduled().schedule(world)
        _, (paid,) = world.pay()
        void = world.a.void(world.partner)
        archived = void.archive(world.partner)
        for invoice in (paid, void, archived):
            skipped = self.skip(world, scheduled, invoice=invoice)
            assert skipped == attrs.evolve(scheduled, status=ScheduledPaymentStatus.SKIPPED)
            assert not skipped.is_due(scheduled.pay_on)
            assert self.skip(world, skipped, invoice=invoice) is skipped
            with pytest.raises(InvariantViolation) as ran:
                self.run(world, skipped)
            with pytest.raises(InvariantViolation) as cancelled:
                skipped.cancel()
            for caught in (ran, cancelled):
                assert (caught.value.rule, caught.value.path) == ("scheduled-payment", "status")
                assert "skipped" in str(caught.value)

    def test_another_customer_of_the_partner_is_not_the_one_scheduled_for(
        self, world: World
    ) -> None:
        scheduled = TestScheduled().schedule(world)
        other = make_customer(world.partner, "Initech")
        for command in (self.run, self.skip):
            with pytest.raises(ValidationError) as caught:
                command(world, scheduled, customer=other)
            assert (caught.value.paths, caught.value.codes) == (["invoice"], ["unrelated_invoice"])

    def test_a_payer_who_may_no_longer_pay_i1_c8(self, world: World) -> None:
        scheduled = TestScheduled().schedule(world)
        without_ann = world.customer.remove_user(world.ann.email)
        for customer in (without_ann, world.customer.archive()):
            with pytest.raises(PermissionDenied):
                self.run(world, scheduled, customer=customer)
            with pytest.raises(ValidationError) as caught:
                self.skip(world, scheduled, customer=customer, invoice=world.b)
            assert caught.value.codes == ["unrelated_invoice"]
            skipped = self.skip(world, scheduled, customer=customer)
            assert skipped.status is ScheduledPaymentStatus.SKIPPED

    def test_an_invoice_in_another_currency_than_the_partners_i2(self, world: World) -> None:
        # Refused by every run (pay_invoices), and skipping it was refused as
        # "can still run": due, and refused, every night.
        data = to_dict(world.b)
        data["currency"] = "CAD"
        for line in data["lines"]:
            line["unit_amount"]["currency"] = "CAD"
        cad = from_dict(Invoice, data)
        book = CustomerPaymentMethods.of(world.customer).add(
            type="card", display_name="Visa", last4="4242"
        )
        with pytest.raises(ValidationError) as caught:
            schedule_payment(
                world.partner,
                world.customer,
                cad,
                payer=world.ann,
                methods=book,
                pay_on=TODAY,
                today=TODAY,
            )
        assert (caught.value.paths, caught.value.codes) == (["invoice"], ["currency_mismatch"])
        scheduled = attrs.evolve(TestScheduled().schedule(world), invoice_id=cad.id)
        with pytest.raises(ValidationError) as caught:
            self.run(world, scheduled, invoice=cad, methods=book)
        assert (caught.value.paths, caught.value.codes) == (["invoice"], ["currency_mismatch"])
        skipped = self.skip(world, scheduled, invoice=cad)
        assert skipped.status is ScheduledPaymentStatus.SKIPPED

    def test_skipping_a_skipped_one_still_checks_today(self, world: World) -> None:
        scheduled = TestScheduled().schedule(world)
        _, (paid,) = world.pay()
        skipped = self.skip(world, scheduled, invoice=paid)
        for wrong in ("x", None, AT):
            with pytest.raises(ValidationError) as caught:
                self.skip(world, skipped, invoice=paid, today=wrong)
            assert caught.value.paths == ["today"]

    def test_one_that_can_still_run_is_not_skipped(self, world: World) -> None:
        scheduled = TestScheduled().schedule(world)
        # No method on file is no reason: one may be added.
        with pytest.raises(InvariantViolation) as caught:
            self.skip(world, scheduled)
        assert (caught.value.rule, caught.value.path) == ("scheduled-payment", "status")
        assert "can still run" in str(caught.value)
        # Nor before its date, nor once it ran or was cancelled.
        _, (paid,) = world.pay()
        with pytest.raises(InvariantViolation) as caught:
            self.skip(world, scheduled, invoice=paid, today=TODAY)
        assert (caught.value.rule, caught.value.path) == ("scheduled-payment", "pay_on")
        done, _, _ = self.run(world, scheduled)  # type: ignore[misc]
        for other in (done, scheduled.cancel()):
            with pytest.raises(InvariantViolation) as caught:
                self.skip(world, other, invoice=paid)
            assert (caught.value.rule, caught.value.path) == ("scheduled-payment", "status")


# -- arguments of the wrong type -----------------------------------------------------------


def _entry_points(w: World) -> list[tuple[str, Any]]:
    """Each public entry point of payment.py, with one argument wrong; the
    path the error must name."""
    book = CustomerPaymentMethods.of(w.customer).add(
        type="ach", display_name="Chase checking", last4="6789"
    )
    scheduled = TestScheduled().schedule(w)
    pay, touched = w.pay()
    common: dict[str, Any] = {"payer": w.ann, "method": "ach", "idempotency_key": "k"}
    sched: dict[str, Any] = {
        "payer": w.ann,
        "methods": book,
        "pay_on": TODAY,
        "today": TODAY,
    }
    run: dict[str, Any] = {
        "partner": w.partner,
        "customer": w.customer,
        "invoice": w.a,
        "methods": book,
        "today": scheduled.pay_on,
    }
    skip = {k: v for k, v in run.items() if k != "methods"}
    fingerprint = _fingerprint_request(w)
    return [
        ("partner", lambda: pay_invoices(None, w.customer, [w.a], **common)),
        ("customer", lambda: pay_invoices(w.partner, None, [w.a], **common)),
        (
            "customer",
            lambda: charge_now(
                w.partner,
                None,
                [w.a],
                methods=book,
                **{k: v for k, v in common.items() if k != "method"},
            ),
        ),
        ("payer", lambda: pay_invoices(w.partner, w.customer, [w.a], **{**common, "payer": 5})),
        ("payer", lambda: w.pay(payer=None)),
        ("payment", lambda: fail_payment(None, [w.a])),
        ("payment", lambda: return_payment(None, [w.a])),
        ("payment", lambda: charge_back_payment(None, [w.a])),
        ("payment", lambda: refund_payment(None, [w.a])),
        ("partner", lambda: schedule_payment(None, w.customer, w.a, **sched)),
        ("customer", lambda: schedule_payment(w.partner, None, w.a, **sched)),
        ("invoice", lambda: schedule_payment(w.partner, w.customer, None, **sched)),
        ("scheduled", lambda: run_scheduled_payment(None, **run)),
        ("partner", lambda: run_scheduled_payment(scheduled, **{**run, "partner": None})),
        ("customer", lambda: run_scheduled_payment(scheduled, **{**run, "customer": None})),
        ("invoice", lambda: run_scheduled_payment(scheduled, **{**run, "invoice": None})),
        ("today", lambda: run_scheduled_payment(scheduled, **{**run, "today": "2026-01-08"})),
        ("scheduled", lambda: skip_scheduled_payment(None, **skip)),
        ("customer", lambda: skip_scheduled_payment(scheduled, **{**skip, "customer": None})),
        ("invoice", lambda: skip_scheduled_payment(scheduled, **{**skip, "invoice": None})),
        ("today", lambda: skip_scheduled_payment(scheduled, **{**skip, "today": AT})),
        ("partner", lambda: payment.card_fee_for(None, w.customer, w.money("1"))),
        ("customer", lambda: payment.card_fee_for(w.partner, None, w.money("1"))),
        ("customer", lambda: method_on_file(book, None, purpose="x")),
        ("purpose", lambda: method_on_file(book, w.customer, purpose=None)),
        ("customer", lambda: CustomerPaymentMethods.of(None)),
        ("existing", lambda: replay_payment(None, idempotency_key="k", fingerprint="f")),
        ("fingerprint", lambda: replay_payment(pay, idempotency_key="key-1", fingerprint=None)),
        ("currency", lambda: payment.request_fingerprint(**{**fingerprint, "currency": "USD"})),
        (
            "amounts[0][1]",
            lambda: payment.request_fingerprint(**{**fingerprint, "amounts": [(w.a.id, "10")]}),
        ),
        (
            "amounts[0][0]",
            lambda: payment.request_fingerprint(
                **{**fingerprint, "amounts": [(str(w.a.id), None)]}
            ),
        ),
        (
            "customer_id",
            lambda: payment.request_fingerprint(**{**fingerprint, "customer_id": None}),
        ),
        ("amounts", lambda: payment.request_fingerprint(**{**fingerprint, "amounts": None})),
        (
            "amounts[0]",
            lambda: payment.request_fingerprint(**{**fingerprint, "amounts": [w.a.id]}),
        ),
        (
            "amounts[1]",
            lambda: payment.request_fingerprint(
                **{**fingerprint, "amounts": [(w.a.id, None), (w.b.id, None, None)]}
            ),
        ),
        ("today", lambda: scheduled.is_due(None)),
        ("today", lambda: scheduled.is_due(AT)),
        ("invoices[0]", lambda: fail_payment(pay, [None, *touched])),
        ("at", lambda: pay.succeed(at="now")),
        # No such time in UTC: an OverflowError before.
        ("at", lambda: pay.succeed(at=dt.datetime.max.replace(tzinfo=dt.timezone(-HOURS_5)))),
        ("invoices", lambda: fail_payment(pay, touched[0])),
        # Ignored before whenever the method was a type, not a saved method.
        ("methods", lambda: pay_invoices(w.partner, w.customer, [w.a], methods="book", **common)),
        # An AttributeError for bank debits before; True for cards, whatever it was.
        ("currency", lambda: PaymentMethodType.ACH.available_in(None)),
        ("currency", lambda: PaymentMethodType.CARD.available_in("USD")),
        ("purpose", lambda: book.require_default(None)),
    ]


def _fingerprint_request(w: World) -> dict[str, Any]:
    """The arguments of a valid :func:`request_fingerprint` call: Ann pays
    invoice A by card."""
    return {
        "customer_id": w.customer.id,
        "user_id": w.ann.id,
        "method": "card",
        "payment_method_id": None,
        "currency": w.currency,
        "amounts": [(w.a.id, None)],
    }


def _list_arguments(w: World, junk: object) -> list[tuple[str, Any]]:
    """Each entry point that takes a list, given ``junk`` in its place."""
    pay, _ = w.pay(key="list-arguments")
    return [
        ("invoices", lambda: w.pay(junk)),  # type: ignore[arg-type]
        ("invoices", lambda: fail_payment(pay, junk)),  # type: ignore[arg-type]
        ("invoices", lambda: visible_invoices(junk, w.customer, w.ann)),  # type: ignore[arg-type]
        ("lines", lambda: w.a.update(w.partner, lines=junk)),
        ("fees", lambda: w.a.update(w.partner, fees=junk)),
        ("errors", lambda: ValidationError(junk)),  # type: ignore[arg-type]
        ("amounts", lambda: request_fingerprint(**{**_fingerprint_request(w), "amounts": junk})),
    ]


@given(
    data=st.binary(max_size=3),
    wrap=st.sampled_from([bytes, bytearray, memoryview]),
    index=st.integers(0, len(_list_arguments(World(), b"")) - 1),
)
def test_binary_data_is_no_list(data: bytes, wrap: type, index: int) -> None:
    # Iterable, as ints: an empty bytearray or memoryview was taken as an
    # empty list, a full one refused item by item.
    path, call = _list_arguments(World(), wrap(data))[index]
    with pytest.raises(ValidationError) as caught:
        call()
    assert (caught.value.paths, caught.value.codes) == ([path], ["wrong_type"])


@pytest.mark.parametrize("index", range(len(_entry_points(World()))))
def test_every_entry_point_refuses_arguments_of_the_wrong_type(index: int) -> None:
    # None for a partner, customer, invoice or payment, a string for a date:
    # a ValidationError naming the argument, never a bare AttributeError.
    path, call = _entry_points(World())[index]
    with pytest.raises(ValidationError) as caught:
        call()
    assert caught.value.paths == [path]
    expected = {"today": "invalid_date", "at": "invalid_datetime"}
    expected["invoices[0]"] = "unrelated_invoice"
    assert caught.value.codes == [expected.get(path, "wrong_type")]


def test_the_fingerprint_takes_the_methods_value_and_is_unchanged(world: World) -> None:
    fields: dict[str, Any] = {
        "customer_id": world.customer.id,
        "user_id": world.ann.id,
        "payment_method_id": None,
        "currency": world.currency,
        "amounts": [(world.a.id, usd("1.00")), (world.b.id, None)],
    }
    by_value = payment.request_fingerprint(method="card", **fields)  # type: ignore[arg-type]
    assert by_value == payment.request_fingerprint(method=PaymentMethodType.CARD, **fields)
    pay, _ = world.pay([world.a, world.b], amounts={world.a.id: "1.00", world.b.id: "100.00"})
    fields["amounts"] = [(world.a.id, usd("1.00")), (world.b.id, usd("100.00"))]
    assert pay.request_fingerprint == payment.request_fingerprint(method="ach", **fields)  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as caught:
        payment.request_fingerprint(
            method="card", **{**fields, "amounts": [(world.a.id, Money("1", "CAD"))]}
        )  # type: ignore[arg-type]
    assert caught.value.codes == ["currency_mismatch"]


# -- serialization and strategies ----------------------------------------------------------


@given(st.from_type(Payment))
def test_payments_round_trip(pay: Payment) -> None:
    assert from_dict(Payment, to_dict(pay)) == pay
    assert pay.amount == Money.sum((a.amount for a in pay.allocations), pay.currency)
    assert pay.total >= pay.amount


@given(
    st.one_of(
        st.from_type(Allocation),
        st.from_type(PaymentMethod),
        st.from_type(CustomerPaymentMethods),
        st.from_type(ScheduledPayment),
        st.from_type(ScheduledPaymentId),
        st.from_type(PaymentStatus),
        st.from_type(PaymentMethodType),
        st.from_type(PaymentMethodStatus),
        st.from_type(ReturnKind),
        st.from_type(ScheduledPaymentStatus),
    )
)
def test_values_round_trip(value: object) -> None:
    assert from_dict(type(value), to_dict(value)) == value


@pytest.mark.parametrize("status", list(PaymentStatus))
@settings(max_examples=10)  # reachability only: the round trip above covers the rest
@given(data=st.data())
def test_strategy_reaches_every_status(status: PaymentStatus, data: st.DataObject) -> None:
    assert data.draw(aps.payments(status=status)).status is status


def test_from_dict_reports_a_broken_rule(world: World) -> None:
    pay, _ = paid_by(world, "ach")
    data = to_dict(pay)
    data["status"] = "refunded"
    with pytest.raises(ValidationError) as caught:
        from_dict(Payment, data)
    assert caught.value.codes == ["I7"]


def with_card_fee_line(invoice: Invoice, amount: str, *, by_customer: bool = True) -> Invoice:
    """``invoice`` as stored before its commands refused a card fee line."""
    line = Fee.new(FeeKind.CARD, Money(amount, invoice.currency), covered_by_customer=by_customer)
    return from_dict(Invoice, {**to_dict(invoice), "fees": [to_dict(line)]})


@settings(max_examples=30)
@given(
    country=st.sampled_from(["US", "CA"]),
    method=st.sampled_from(["card", "bank debit"]),
    by_customer=st.booleans(),
    index=st.integers(0, 1),
    cents=st.integers(1, 2000),
)
def test_an_invoice_holding_a_card_fee_line_is_paid_by_no_method_i8(
    country: str, method: str, by_customer: bool, index: int, cents: int
) -> None:
    # By a bank debit it charged a card fee; by card, a second one.
    world = World(country)
    debit = "ach" if country == "US" else "pad"
    kind = debit if method == "bank debit" else "card"
    legacy = with_card_fee_line(world.a, f"{cents / 100:.2f}", by_customer=by_customer)
    batch = [world.b, legacy] if index else [legacy, world.b]
    with pytest.raises(InvariantViolation) as caught:
        world.pay(batch, method=kind)
    assert (caught.value.rule, caught.value.path) == ("I8", f"invoices[{index}]")
    assert "remove the card fee line first" in str(caught.value)
    # Once the line is removed, it is paid as any other.
    fixed = legacy.update(world.partner, fees=[])
    pay, touched = world.pay([world.b, fixed] if index else [fixed, world.b], method=kind)
    assert pay.amount == world.a.total + world.b.total
    assert all(i.status is InvoiceStatus.PAID for i in touched)
    assert (pay.card_fee is not None) is (kind == "card")


@settings(max_examples=30)
@given(
    country=st.sampled_from(["US", "CA"]),
    method=st.sampled_from(["card", "bank debit"]),
    by_customer=st.booleans(),
    cents=st.integers(1, 2000),
    amount=st.sampled_from([None, "10.00"]),
)
def test_an_invoice_holding_a_card_fee_line_is_not_scheduled_and_a_payment_for_it_is_skipped_i8(
    country: str, method: str, by_customer: bool, cents: int, amount: str | None
) -> None:
    # It was scheduled, then refused by its run every night, and the skip
    # refused it as one that could still run.
    world = World(country)
    debit = "ach" if country == "US" else "pad"
    book = CustomerPaymentMethods.of(world.customer).add(
        type=debit if method == "bank debit" else "card", display_name="Saved", last4="1111"
    )
    legacy = with_card_fee_line(world.a, f"{cents / 100:.2f}", by_customer=by_customer)
    when: dict[str, Any] = {"payer": world.ann, "methods": book, "pay_on": TODAY, "today": TODAY}
    with pytest.raises(InvariantViolation) as caught:
        schedule_payment(world.partner, world.customer, legacy, amount=amount, **when)
    assert (caught.value.rule, caught.value.path) == ("I8", "invoice")
    with pytest.raises(InvariantViolation) as paying:
        world.pay([legacy], method=book.default, methods=book)
    assert str(caught.value) == str(paying.value)
    # One scheduled before the line was refused: its run is refused, its skip
    # marks it skipped.
    earlier = schedule_payment(world.partner, world.customer, world.a, amount=amount, **when)
    of_it: dict[str, Any] = {
        "partner": world.partner,
        "customer": world.customer,
        "invoice": legacy,
    }
    with pytest.raises(InvariantViolation) as running:
        run_scheduled_payment(earlier, methods=book, today=TODAY, **of_it)
    assert (running.value.rule, running.value.path) == ("I8", "invoice")
    skipped = skip_scheduled_payment(earlier, today=TODAY, **of_it)
    assert skipped == attrs.evolve(earlier, status=ScheduledPaymentStatus.SKIPPED)
    # Once the line is removed, it is scheduled as any other.
    fixed = legacy.update(world.partner, fees=[])
    again = schedule_payment(world.partner, world.customer, fixed, amount=amount, **when)
    assert again.invoice_id == fixed.id


@pytest.mark.parametrize("state", ["succeeded", "settled"])
def test_a_failed_card_payment_never_succeeded_i6(world: World, state: str) -> None:
    # A card fails only while processing (declined); read back as failed
    # after it succeeded (or settled), it claimed no card fee was charged.
    pay, _ = in_state(world, "card", state)
    data = to_dict(pay)
    data["status"] = "failed"
    with pytest.raises(ValidationError) as caught:
        from_dict(Payment, data)
    assert (caught.value.paths, caught.value.codes) == (["succeeded_at"], ["I6"])
    assert "a declined card payment never succeeded" in str(caught.value)
    with pytest.raises(InvariantViolation) as refused:
        attrs.evolve(pay, status=PaymentStatus.FAILED)
    assert (refused.value.rule, refused.value.path) == ("I6", "succeeded_at")
    # A declined card, and a bank debit returned after it succeeded, are failed.
    declined, _ = in_state(world, "card", "failed")
    assert from_dict(Payment, to_dict(declined)) == declined
    debit, invoices = in_state(world, "ach", state)
    returned, _ = return_payment(debit, invoices, "standard", at=AT)
    assert returned.status is PaymentStatus.FAILED
    assert returned.succeeded_at is not None
    assert from_dict(Payment, to_dict(returned)) == returned


@pytest.mark.parametrize("method", ["card", "ach"])
def test_a_failed_payment_settled_without_succeeding_is_refused_i7(
    world: World, method: str
) -> None:
    # Whatever the method: only a payment that succeeded settles, and the
    # field at fault is settled_at (succeeded_at is not there).
    failed, _ = in_state(world, method, "failed")
    assert failed.succeeded_at is None
    data = to_dict(failed)
    data["settled_at"] = AT.isoformat()
    with pytest.raises(ValidationError) as caught:
        from_dict(Payment, data)
    assert (caught.value.paths, caught.value.codes) == (["settled_at"], ["I7"])
    with pytest.raises(InvariantViolation) as refused:
        attrs.evolve(failed, settled_at=AT)
    assert (refused.value.rule, refused.value.path) == ("I7", "settled_at")


def test_module_exports() -> None:
    assert payment.__all__ == sorted(payment.__all__)
    fees = (payment.STANDARD_RETURN_FEE, payment.UNAUTHORIZED_RETURN_FEE, payment.CARD_DISPUTE_FEE)
    assert fees == (Decimal("15.00"), Decimal("25.00"), Decimal("25.00"))
    assert CardFeeBearer.CUSTOMER.value == "customer"
    assert UserId("usr_1") != ScheduledPaymentId("sch_1")


def test_the_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    runpy.run_path(
        str(Path(__file__).resolve().parents[1] / "examples" / "invoices.py"), run_name="__main__"
    )
    out = capsys.readouterr().out
    assert "balance" in out
    assert "open (partly paid)" in out
    assert "paid" in out


# -- the times of a payment ------------------------------------------------------------------

EARLIER = AT - dt.timedelta(seconds=1)


def test_a_refund_before_the_payment_settled_is_refused_i7(world: World) -> None:
    pay, invoices = paid_by(world, "card")
    settled = pay.succeed(AT + HOURS_5).settle(AT + 2 * HOURS_5)
    latest = AT + 2 * HOURS_5 - dt.timedelta(microseconds=1)
    with pytest.raises(InvariantViolation) as caught:
        refund_payment(settled, invoices, at=latest)
    assert (caught.value.rule, caught.value.path) == ("I7", "at")
    assert "before this payment settled" in str(caught.value)


def test_a_refunds_amount_is_refused_naming_money_and_rule_i7(world: World) -> None:
    pay, invoices = paid_by(world, "ach")
    settled = pay.succeed(AT + HOURS_5).settle(AT + 2 * HOURS_5)
    with pytest.raises(ValidationError) as caught:
        refund_payment(settled, invoices, amount=Money("300", "CAD"))
    assert caught.value.codes == ["currency_mismatch"]
    assert "rule I7" in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        refund_payment(settled, invoices, amount=[300])  # type: ignore[arg-type]
    assert (caught.value.paths, caught.value.codes) == (["amount"], ["wrong_type"])
    assert "must be Money, or a str, int or Decimal" in str(caught.value)


class _AlwaysLater(dt.datetime):
    """A time whose own comparisons say it is never earlier than another."""

    def __lt__(self, other: object) -> bool:
        return False

    def __ge__(self, other: object) -> bool:
        return True


def test_a_subclassed_time_is_compared_as_the_calendar_does_i7(world: World) -> None:
    # Kept as a plain datetime: its own comparisons would let a refund
    # dated before the payment settled through, and date its event first.
    pay, invoices = paid_by(world, "card")
    settled = pay.succeed(AT + HOURS_5).settle(AT + 2 * HOURS_5)
    early = _AlwaysLater(2000, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(InvariantViolation) as caught:
        refund_payment(settled, invoices, at=early)
    assert (caught.value.rule, caught.value.path) == ("I7", "at")
    kept = attrs.evolve(settled, created_at=_AlwaysLater(2026, 1, 5, 12, tzinfo=dt.UTC))
    assert type(kept.created_at) is dt.datetime


def test_the_same_time_as_the_last_one_is_allowed(world: World) -> None:
    pay, invoices = paid_by(world, "card")
    settled = pay.succeed(AT).settle(AT)
    refunded, _ = refund_payment(settled, invoices, at=AT)
    assert refunded.status is PaymentStatus.REFUNDED


@pytest.mark.parametrize("method", ["card", "ach"])
def test_a_processors_times_are_taken_as_given(method: str) -> None:
    # A processor's clock, or one that reports whole seconds, may put a
    # success (or a failure, a return) a moment before the payment was made
    # here: the payment takes the time it is told, and reads back. Its
    # event is dated no earlier than the payment was made, so that the
    # payment's events, stored ones included, stay oldest first.
    pay, invoices = paid_by(World(), method)
    earlier = EARLIER
    done = pay.succeed(earlier)
    assert done.succeeded_at == earlier
    assert done.events[-1].occurred_at == pay.created_at
    assert from_dict(Payment, to_dict(done)) == done
    failed, _ = fail_payment(pay, invoices, at=earlier)
    assert failed.status is PaymentStatus.FAILED
    if method == "ach":
        returned, _ = return_payment(pay, invoices, at=earlier - HOURS_5)
        assert returned.events[-1].occurred_at == pay.created_at


def test_a_payments_events_stay_oldest_first_whatever_the_times_given(world: World) -> None:
    # The fields keep the times as given; the events never go back in time,
    # and the invoices' events for the change carry the payment's event's.
    pay, invoices = paid_by(world, "ach")
    done = pay.succeed(AT + 2 * HOURS_5).settle(AT + HOURS_5)
    assert (done.succeeded_at, done.settled_at) == (AT + 2 * HOURS_5, AT + HOURS_5)
    returned, released = return_payment(done, invoices, "unauthorized", at=AT)
    times = [event.occurred_at for event in returned.events]
    assert [e.topic for e in returned.events] == [
        "payment_succeeded",
        "payment_settled",
        "payment_chargeback",
    ]
    assert times == [AT + 2 * HOURS_5] * 3
    assert {i.events[-1].occurred_at for i in released} == {AT + 2 * HOURS_5}


@given(steps=st.lists(st.integers(-(10**6), 10**6), min_size=3, max_size=3))
def test_a_payments_events_are_in_order_for_any_times(steps: list[int]) -> None:
    pay, invoices = paid_by(World(), "card")
    at = [AT + dt.timedelta(seconds=s) for s in steps]
    settled = pay.succeed(at[0]).settle(at[1])
    disputed, released = charge_back_payment(settled, invoices, at=at[2])
    times = [event.occurred_at for event in disputed.events]
    assert times == sorted(times)
    for invoice in released:
        own = [event.occurred_at for event in invoice.events]
        assert own == sorted(own)


@given(pay=aps.payments())
def test_every_generated_payment_goes_on_with_the_default_time(pay: Payment) -> None:
    # Drawn times span a century; the commands' default time is now.
    if pay.status is PaymentStatus.PROCESSING:
        assert pay.succeed().status is PaymentStatus.SUCCEEDED
    elif pay.status is PaymentStatus.SUCCEEDED and pay.settled_at is None:
        assert pay.settle().settled_at is not None


# -- the invoices' events carry the payment's time --------------------------------------------


def test_invoice_events_carry_the_time_the_caller_passed(world: World) -> None:
    pay, (a, b) = paid_by(world, "ach")  # at=AT
    assert [a.events[-1].topic, b.events[-1].topic] == ["invoice_paid", "invoice_paid"]
    assert a.events[-1].occurred_at == b.events[-1].occurred_at == pay.created_at == AT
    later = AT + dt.timedelta(days=3)
    returned, (a, b) = return_payment(pay.succeed(AT), (a, b), at=later)
    assert returned.events[-1].occurred_at == later
    assert [e.topic for e in a.events[-1:]] == ["invoice_updated"]
    assert a.events[-1].occurred_at == b.events[-1].occurred_at == later


@pytest.mark.parametrize("how", _GIVE_BACKS)
def test_every_give_back_dates_the_invoices_events_as_the_payments(how: str) -> None:
    method = "card" if how == "charge back" else "ach"
    pay, invoices = in_state(World(), method, "processing" if how == "fail" else "settled")
    new, released = give_back(how, pay, invoices)
    assert {i.events[-1].occurred_at for i in released} == {new.events[-1].occurred_at} == {AT}


# -- amounts too large to be money ---------------------------------------------------


def test_a_payment_too_large_to_be_money_is_refused_at_its_amounts() -> None:
    # Each invoice is money; what the payer would be charged is not.
    w = World()
    near = "9" * 29 + ".99"  # just under 10**29
    big = [issue(w.partner, w.customer, near, str(n)) for n in range(11)]
    with pytest.raises(ValidationError) as caught:
        w.pay(big)  # the batch
    assert (caught.value.paths, caught.value.codes) == (["amounts"], ["amount_too_large"])
    w.partner = w.partner.set_card_fees(rate_percent="20")
    with pytest.raises(ValidationError) as caught:
        w.pay(big[:9], method="card")  # 9 near, but 10.8 with the 20% card fee
    assert (caught.value.paths, caught.value.codes) == (["amounts"], ["amount_too_large"])
    payment, _ = w.pay(big[:8], method="card")  # 8 near + 20%: under 10**30
    assert payment.total == payment.amount + payment.customer_card_fee
    fee = attrs.evolve(payment.fees[0], amount=payment.fees[0].amount * 2)
    parts = [attrs.evolve(a, card_fee=a.card_fee * 2) for a in payment.allocations]
    with pytest.raises(ValidationError) as caught:
        attrs.evolve(payment, fees=(fee,), allocations=tuple(parts))
    assert (caught.value.paths, caught.value.codes) == (["allocations"], ["amount_too_large"])


def test_an_invoice_too_large_to_be_money_is_refused_at_its_lines() -> None:
    w = World()
    with pytest.raises(ValidationError) as caught:
        Invoice.issue(
            w.partner,
            w.customer,
            by=w.partner.team[1],
            number="1",
            lines=[{"description": "x", "quantity": 1_000_000, "unit_amount": "1" + "0" * 27}],
            due_date=TODAY,
            today=TODAY,
        )
    assert (caught.value.paths, caught.value.codes) == (["lines"], ["amount_too_large"])


def test_too_large_amounts_are_refused_at_the_argument_given() -> None:
    w = World()
    big = "9" + "0" * 29  # 9 * 10**29: money, but not twice over
    inv = issue(w.partner, w.customer, big, "big")
    with pytest.raises(ValidationError) as caught:
        inv.add_fee(w.partner, kind="interest", amount=Money("2" + "0" * 29, "USD"))
    assert (caught.value.paths, caught.value.codes) == (["amount"], ["amount_too_large"])
    feed = issue(w.partner, w.customer, "1.00", "fee").add_fee(
        w.partner, kind="interest", amount=big
    )
    with pytest.raises(ValidationError) as caught:  # only the lines changed
        feed.update(w.partner, lines=[{"description": "x", "quantity": 1, "unit_amount": big}])
    assert (caught.value.paths, caught.value.codes) == (["lines"], ["amount_too_large"])
    w.partner = w.partner.set_card_fees(rate_percent="1")
    payment, _ = w.pay([w.a, w.b], method="card")
    shares = tuple(attrs.evolve(a, card_fee=Money(big, "USD")) for a in payment.allocations)
    with pytest.raises(ValidationError) as caught:  # the shares come to too much
        attrs.evolve(payment, allocations=shares)
    assert (caught.value.paths, caught.value.codes) == (["allocations"], ["amount_too_large"])


def test_a_payer_of_another_customer_is_not_told_its_name() -> None:
    w = World()
    other = make_customer(w.partner, company="Secret Corp")
    with pytest.raises(PermissionDenied) as caught:
        w.pay(payer=other.users[0])
    assert str(w.customer.id) in str(caught.value)
    assert w.customer.company not in str(caught.value)
    archived = World()
    archived.customer = archived.customer.archive()
    with pytest.raises(PermissionDenied) as caught:
        archived.pay()  # its own user: the name is theirs to see
    assert "Globex" in str(caught.value)


def test_a_saved_method_of_another_currency_is_named_by_the_argument_taken() -> None:
    # charge_now and run_scheduled_payment take no 'method': the method is
    # the one named by method_id, else the default of methods.
    world = World()
    ach = CustomerPaymentMethods.of(world.customer).add(
        type="ach", display_name="Chase", last4="6789"
    )
    scheduled = schedule_payment(
        world.partner,
        world.customer,
        world.a,
        payer=world.ann,
        methods=ach,
        pay_on=TODAY,
        today=TODAY,
    )
    pad = ach.add(type="pad", display_name="RBC", last4="1234", make_default=True)
    pad = pad.archive(ach.methods[0].id)
    for method_id, path in ((None, "methods"), (pad.default_id, "method_id")):
        with pytest.raises(ValidationError) as caught:
            charge_now(
                world.partner,
                world.customer,
                [world.a],
                payer=world.ann,
                methods=pad,
                idempotency_key="k",
                method_id=method_id,
            )
        assert (caught.value.paths, caught.value.codes) == ([path], ["method_unavailable"])
        assert f"'{path}' pad is not available" in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        run_scheduled_payment(
            scheduled,
            partner=world.partner,
            customer=world.customer,
            invoice=world.a,
            methods=pad,
            today=TODAY,
        )
    assert (caught.value.paths, caught.value.codes) == (["methods"], ["method_unavailable"])
    # Its one invoice is 'invoice' (I8: a card fee line stored before).
    with pytest.raises(InvariantViolation) as refused:
        run_scheduled_payment(
            scheduled,
            partner=world.partner,
            customer=world.customer,
            invoice=with_card_fee_line(world.a, "3.20"),
            methods=ach,
            today=TODAY,
        )
    assert (refused.value.rule, refused.value.path) == ("I8", "invoice")


def test_a_malformed_method_id_is_named_whatever_is_on_file() -> None:
    w = World()
    for methods in (None, CustomerPaymentMethods.of(w.customer)):
        with pytest.raises(ValidationError) as caught:
            method_on_file(methods, w.customer, purpose="auto-pay", method_id="garbage")
        assert caught.value.paths == ["method_id"]


# A rule broken in the data of saved methods (two, the first the default) or
# of a scheduled payment, and where; then fields also at fault.
_METHODS_BREAKS: dict[str, tuple[Any, str]] = {
    "twice": (lambda d: d["methods"][1].update(id=d["methods"][0]["id"]), "methods"),
    "no default": (lambda d: d.update(default_id=None), "default_id"),
    "default archived": (lambda d: d["methods"][0].update(status="archived"), "default_id"),
    "default unknown": (lambda d: d.update(default_id=str(PaymentMethodId.new())), "default_id"),
}
_METHODS_FIELDS: dict[str, Any] = {"customer_id": "nope", "version": -1}
_SCHEDULED_BREAKS: dict[str, tuple[Any, str]] = {
    "processed": (lambda d: d.update(status="processed"), "payment_id"),
    "paid early": (lambda d: d.update(payment_id=str(PaymentId.new())), "payment_id"),
}
_SCHEDULED_FIELDS: dict[str, Any] = {"user_id": "nope", "pay_on": "soon", "version": -1}


def _rule_data(kind: str, world: World) -> tuple[type[Any], dict[str, Any], str]:
    book = CustomerPaymentMethods.of(world.customer).add(
        type="card", display_name="Visa", last4="4242"
    )
    book = book.add(type="ach", display_name="Chase checking", last4="6789")
    if kind == "methods":
        return CustomerPaymentMethods, to_dict(book), "payment-method"
    scheduled = schedule_payment(
        world.partner,
        world.customer,
        world.a,
        payer=world.ann,
        methods=book,
        pay_on=TODAY + dt.timedelta(days=3),
        today=TODAY,
    )
    return ScheduledPayment, to_dict(scheduled), "scheduled-payment"


@pytest.mark.parametrize(
    ("kind", "breaks", "fields"),
    [
        ("methods", _METHODS_BREAKS, _METHODS_FIELDS),
        ("scheduled", _SCHEDULED_BREAKS, _SCHEDULED_FIELDS),
    ],
)
@given(data=st.data())
def test_from_dict_reports_a_broken_rule_with_the_invalid_fields(
    kind: str, breaks: dict[str, tuple[Any, str]], fields: dict[str, Any], data: st.DataObject
) -> None:
    # None hides another: the rule at its path, its code the rule's; alone,
    # the rule is all there is.
    cls, value, rule = _rule_data(kind, World())
    break_rule, path = breaks[data.draw(st.sampled_from(sorted(breaks)))]
    bad = data.draw(st.sets(st.sampled_from(sorted(fields))))
    break_rule(value)
    value.update({name: fields[name] for name in bad})
    with pytest.raises(ValidationError) as caught:
        from_dict(cls, value)
    assert set(caught.value.paths) == bad | {path}
    assert [e.code for e in caught.value.errors if e.path == path] == [rule]


# -- what each event says ----------------------------------------------------------------


def said(aggregate: Any) -> tuple[tuple[str, str, str, tuple[str, ...], dt.datetime], ...]:
    """Each pending event as (topic, partner, aggregate, changes, time)."""
    return tuple(
        (e.topic, str(e.partner_id), e.aggregate_id, e.changes, e.occurred_at)
        for e in aggregate.events
    )


class TestEventPayloads:
    """Each command's event names its partner, its aggregate, the fields it
    changed and the time the command was given, not only its topic."""

    def test_paying_in_part_and_in_full(self, world: World) -> None:
        partner = str(world.partner.id)
        pay, (a, b) = world.pay(
            [world.a, world.b], amounts={world.a.id: "100.00", world.b.id: "100.00"}
        )
        assert said(a) == (("invoice_updated", partner, str(a.id), ("amount_paid", "balance"), AT),)
        # Paid in full while the debit clears: the status changes with it.
        assert said(b) == (
            ("invoice_paid", partner, str(b.id), ("amount_paid", "balance", "status"), AT),
        )
        assert pay.events == ()  # a payment's events come with its outcome

    def test_a_failure_gives_back_the_balance_at_its_own_time(self, world: World) -> None:
        partner = str(world.partner.id)
        later = AT + HOURS_5
        pay, (paid,) = world.pay()
        failed, (back,) = fail_payment(pay, [_stored(paid)], at=later)
        assert said(failed) == (
            ("payment_failed", partner, str(pay.id), ("status", "fees"), later),
        )
        assert said(back) == (
            (
                "invoice_updated",
                partner,
                str(paid.id),
                ("amount_paid", "balance", "status"),
                later,
            ),
        )

    def test_success_and_archive(self, world: World) -> None:
        partner = str(world.partner.id)
        later = AT + HOURS_5
        pay, (paid,) = world.pay()
        assert said(pay.succeed(later)) == (
            ("payment_succeeded", partner, str(pay.id), ("status",), later),
        )
        archived = _stored(paid).archive(world.partner)
        ((topic, who, what, changes, _),) = said(archived)
        assert (topic, who, what, changes) == (
            "invoice_archived",
            partner,
            str(paid.id),
            ("status",),
        )


def _stored(aggregate: Any) -> Any:
    """As a repository gives it back: its pending events taken."""
    return from_dict(type(aggregate), to_dict(aggregate))


def _method_id_calls(
    world: World, book: CustomerPaymentMethods, method_id: str
) -> dict[str, Callable[[], object]]:
    """Every call that takes a saved method's id, given ``method_id``."""
    today = dt.date(2029, 1, 1)
    return {
        "method": lambda: book.method(method_id),
        "archive": lambda: book.archive(method_id),
        "set_default": lambda: book.set_default(method_id),
        "replace": lambda: book.replace(method_id, type="card", display_name="V", last4="4242"),
        "method_on_file": lambda: method_on_file(
            book, world.customer, purpose="a payment", method_id=method_id
        ),
        "schedule": lambda: schedule_payment(
            world.partner, world.customer, world.a, payer=world.ann, methods=book,
            method_id=method_id, pay_on=today, today=today,
        ),
        "charge": lambda: charge_now(
            world.partner, world.customer, [world.a], methods=book, method_id=method_id,
            payer=world.ann, idempotency_key="k",
        ),
    }  # fmt: skip


def _fingerprint(customer: Customer, method_id: PaymentMethodId | None) -> str:
    return request_fingerprint(
        customer_id=customer.id,
        user_id=customer.users[0].id,
        method="card",
        payment_method_id=method_id,
        currency=Currency("USD"),
        amounts=[],
    )


def test_a_retry_with_another_saved_method_is_another_request() -> None:
    partner = contracts._partner()
    customer = contracts._customer(partner)
    book = CustomerPaymentMethods.of(customer)
    book = book.add(type="card", display_name="Visa", last4="4242")
    book = book.add(type="card", display_name="Amex", last4="0005")
    one, two = (m.id for m in book.methods)
    requests = {_fingerprint(customer, method) for method in (None, one, two)}
    assert len(requests) == 3
    # So the same key with the other saved card is refused (rule idempotency).
    pay = functools.partial(
        pay_invoices,
        partner,
        customer,
        [contracts._invoice(partner, customer)],
        payer=customer.users[0],
        methods=book,
        idempotency_key="k1",
    )
    first, _ = pay(method=book.methods[0])
    with pytest.raises(InvariantViolation) as caught:
        pay(method=book.methods[1], existing=first)
    assert caught.value.rule == "idempotency"


@pytest.mark.parametrize("given", ["no book", "another customer's book"])
def test_a_retried_charge_checks_the_book_it_is_given(given: str) -> None:
    # A retry stands for the method the first run charged, found in the book
    # given: with no book, or another customer's, it is refused as a first
    # run would be, not with an AttributeError or NotFound.
    partner = contracts._partner()
    customer = contracts._customer(partner)
    book = CustomerPaymentMethods.of(customer).add(type="card", display_name="Visa", last4="4242")
    theirs = CustomerPaymentMethods.of(contracts._customer(partner))
    theirs = theirs.add(type="card", display_name="Visa", last4="4242")
    charge = functools.partial(
        charge_now,
        partner,
        customer,
        [contracts._invoice(partner, customer)],
        payer=customer.users[0],
        idempotency_key="k1",
    )
    first, _ = charge(methods=book)
    assert charge(methods=book, existing=first) == (first, ())
    with pytest.raises(InvariantViolation) as caught:
        charge(methods=None if given == "no book" else theirs, existing=first)
    expected = "method-on-file" if given == "no book" else "I1"
    assert (caught.value.rule, caught.value.path) == (expected, "methods")


def test_a_saved_method_from_a_book_of_another_partner_is_refused() -> None:
    partner = contracts._partner()
    customer = contracts._customer(partner)
    book = CustomerPaymentMethods.of(customer).add(type="card", display_name="Visa", last4="4242")
    elsewhere = attrs.evolve(book, partner_id=PartnerId.new())
    invoice = contracts._invoice(partner, customer)
    with pytest.raises(InvariantViolation) as caught:
        pay_invoices(
            partner,
            customer,
            [invoice],
            payer=customer.users[0],
            method=elsewhere.methods[0],
            methods=elsewhere,
            idempotency_key="k1",
        )
    assert (caught.value.rule, caught.value.path) == ("I1", "methods")


def test_a_refunded_payment_without_its_success_time_is_refused_at_succeeded_at() -> None:
    partner = contracts._partner()
    customer = contracts._customer(partner)
    invoice = contracts._invoice(partner, customer)
    payment, (paid,) = pay_invoices(
        partner,
        customer,
        [invoice],
        payer=customer.users[0],
        method="card",
        idempotency_key="k1",
        at=contracts._at(2),
    )
    payment = payment.succeed(contracts._at(3)).settle(contracts._at(4))
    refunded, _ = refund_payment(payment, [paid], at=contracts._at(5))
    assert refunded.status is PaymentStatus.REFUNDED
    with pytest.raises(InvariantViolation) as caught:
        attrs.evolve(refunded, succeeded_at=None)
    assert (caught.value.rule, caught.value.path) == ("I7", "succeeded_at")
