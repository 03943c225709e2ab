"""Tests of card fees (I8) and of rounding and splits (I9): one stated rule,
half-even for every fee, and splits that sum exactly."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from altpay_core import (
    CardFeeBearer,
    CardFeePolicy,
    Customer,
    CustomerDraft,
    FeeKind,
    InvariantViolation,
    Invoice,
    Money,
    Partner,
    PaymentMethodType,
    Rounding,
    ValidationError,
    card_fee_for,
    charge_back_payment,
    fail_payment,
    pay_invoices,
    refund_payment,
    split_card_fee,
)
from altpay_core.testing import strategies as aps

TODAY = dt.date(2026, 1, 5)


def make_partner(country: str = "US") -> Partner:
    partner = Partner.create(name="Northwind IT", country=country)
    return partner.add_team_member(name="Mo Member", email="mo@northwind.example", role="member")


def make_customer(partner: Partner) -> Customer:
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
    draft = CustomerDraft.start(partner).enter_details(company="Globex", address=address)
    return draft.add_user(first_name="Ann", last_name="Lee", email="ann@globex.example").create()


def issue(partner: Partner, customer: Customer, units: int, number: str) -> Invoice:
    return Invoice.issue(
        partner,
        customer,
        by=partner.team[0],
        number=number,
        lines=[
            {
                "description": "Support",
                "quantity": 1,
                "unit_amount": Money.from_minor_units(units, partner.currency),
            }
        ],
        due_date=TODAY,
        today=TODAY,
    )


def usd(amount: str) -> Money:
    return Money(amount, "USD")


# -- the fee --------------------------------------------------------------------------------


def test_default_is_2_9_percent_plus_30_cents_passed_to_the_customer() -> None:
    partner = make_partner()
    fee = card_fee_for(partner, make_customer(partner), usd("100.00"))
    assert fee is not None
    assert (fee.kind, fee.name, fee.amount) == (FeeKind.CARD, "Card fee", usd("3.20"))
    assert fee.covered_by_customer


def test_fees_round_half_even() -> None:
    partner = make_partner().set_card_fees(rate_percent="10", fixed="0.00")
    customer = make_customer(partner)
    # 10% of 0.25 is 0.025 -> 0.02 (to even); of 0.35, 0.035 -> 0.04.
    assert card_fee_for(partner, customer, usd("0.25")).amount == usd("0.02")  # type: ignore[union-attr]
    assert card_fee_for(partner, customer, usd("0.35")).amount == usd("0.04")  # type: ignore[union-attr]


def test_the_partner_may_absorb_it_with_exceptions_per_customer() -> None:
    partner = make_partner().set_card_fees(bearer="partner")
    customer = make_customer(partner)
    absorbed = card_fee_for(partner, customer, usd("100.00"))
    assert absorbed is not None
    assert not absorbed.covered_by_customer
    passed_on = card_fee_for(
        partner, customer.set_card_fee_exception(CardFeeBearer.CUSTOMER), usd("100.00")
    )
    assert passed_on is not None
    assert passed_on.covered_by_customer
    default = make_partner()
    exempt = make_customer(default).set_card_fee_exception("partner")
    assert not card_fee_for(default, exempt, usd("100.00")).covered_by_customer  # type: ignore[union-attr]


@pytest.mark.parametrize("method", ["card", "ach"])
def test_another_partners_customer_is_refused_i1(method: str) -> None:
    # Its exception applied to this partner's fee, unchecked.
    partner = make_partner().set_card_fees(bearer="partner")
    theirs = make_customer(make_partner()).set_card_fee_exception(CardFeeBearer.CUSTOMER)
    with pytest.raises(InvariantViolation) as caught:
        card_fee_for(partner, theirs, usd("100.00"), method)
    assert (caught.value.rule, caught.value.path) == ("I1", "customer")
    for args, path in (((None, theirs), "partner"), ((partner, None), "customer")):
        with pytest.raises(ValidationError) as refused:
            card_fee_for(*args, usd("100.00"), method)  # type: ignore[arg-type]
        assert (refused.value.paths, refused.value.codes) == ([path], ["wrong_type"])


@pytest.mark.parametrize("method", ["ach", PaymentMethodType.PAD, "eft"])
def test_bank_debits_carry_none(method: object) -> None:
    partner = make_partner()
    assert card_fee_for(partner, make_customer(partner), usd("100.00"), method) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["card", "ach", "pad", "eft"])
@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ("abc", "invalid_amount"),
        (Money("5.00", "CAD"), "currency_mismatch"),
        (Money("-5.00", "USD"), "negative_amount"),
    ],
)
def test_an_amount_is_checked_whatever_the_method(method: str, amount: object, code: str) -> None:
    # A bank debit carries no fee, but it is no reason to take any amount.
    partner = make_partner()
    with pytest.raises(ValidationError) as caught:
        card_fee_for(partner, make_customer(partner), amount, method)  # type: ignore[arg-type]
    assert (caught.value.paths, caught.value.codes) == (["amount"], [code])
    if code == "currency_mismatch":
        assert "must be in USD, the partner's currency" in str(caught.value)


def test_an_amount_given_as_text_is_read_in_the_partners_currency() -> None:
    partner = make_partner()
    fee = card_fee_for(partner, make_customer(partner), "100.00")  # type: ignore[arg-type]
    assert fee is not None
    assert fee.amount == usd("3.20")


def test_a_negative_fee_is_not_split() -> None:
    with pytest.raises(ValidationError) as caught:
        split_card_fee(usd("-1.00"), [usd("1.00"), usd("2.00")])
    assert (caught.value.paths, caught.value.codes) == (["fee"], ["negative_amount"])


@pytest.mark.parametrize(
    ("amounts", "code"), [(5, "wrong_type"), ("1.00", "wrong_type"), ([], "empty"), ((), "empty")]
)
def test_a_split_needs_a_list_of_amounts(amounts: object, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        split_card_fee(usd("1.00"), amounts)  # type: ignore[arg-type]
    assert (caught.value.paths, caught.value.codes) == (["amounts"], [code])


def test_a_share_in_another_currency_is_named_against_the_fees() -> None:
    with pytest.raises(ValidationError) as caught:
        split_card_fee(usd("1.00"), [Money("1.00", "CAD")])
    assert "must be in USD, the fee's currency" in str(caught.value)


def test_a_zero_fee_is_no_fee_line() -> None:
    partner = make_partner().set_card_fees(rate_percent="0", fixed="0")
    customer = make_customer(partner)
    assert card_fee_for(partner, customer, usd("100.00")) is None
    invoice = issue(partner, customer, 10_000, "1")
    payment, _ = pay_invoices(
        partner, customer, [invoice], payer=customer.users[0], method="card", idempotency_key="k"
    )
    assert payment.card_fee is None
    assert payment.total == payment.amount


def test_amount_in_another_currency_is_refused() -> None:
    partner = make_partner()
    with pytest.raises(ValidationError) as caught:
        card_fee_for(partner, make_customer(partner), Money("1.00", "CAD"))
    assert caught.value.codes == ["currency_mismatch"]
    with pytest.raises(ValidationError):
        split_card_fee(usd("1.00"), [])
    with pytest.raises(ValidationError) as caught:
        split_card_fee(usd("1.00"), [usd("1.00"), 2, Money("1", "CAD"), usd("0")])  # type: ignore[list-item]
    assert caught.value.paths == ["amounts[1]", "amounts[2]", "amounts[3]"]
    with pytest.raises(ValidationError):
        split_card_fee("1.00", [usd("1.00")])  # type: ignore[arg-type]


@pytest.mark.parametrize("amount", ["-1.00", "0.00", "1.00"])
def test_the_policy_and_card_fee_for_refuse_another_currency_alike(amount: str) -> None:
    # The currency first, whatever the sign: both report the same code.
    partner = make_partner()
    found = []
    for fee_of in (
        partner.card_fees.fee_for,
        lambda money: card_fee_for(partner, make_customer(partner), money),
    ):
        with pytest.raises(ValidationError) as caught:
            fee_of(Money(amount, "CAD"))
        found.append((caught.value.paths, caught.value.codes))
    assert found == [(["amount"], ["currency_mismatch"])] * 2


@given(
    policy=aps.card_fee_policies("USD"),
    amount=aps.money("USD", min_units=0, max_units=10**12),
    exception=st.none() | st.sampled_from(CardFeeBearer),
)
def test_the_fee_follows_the_policy_and_the_exception(
    policy: CardFeePolicy, amount: Money, exception: CardFeeBearer | None
) -> None:
    partner = make_partner().set_card_fees(
        bearer=policy.bearer, rate_percent=policy.rate_percent, fixed=policy.fixed
    )
    customer = make_customer(partner).set_card_fee_exception(exception)
    fee = card_fee_for(partner, customer, amount)
    expected = (
        amount.percent(policy.rate_percent, rounding=Rounding.HALF_EVEN) + policy.fixed
        if amount.is_positive
        else usd("0")
    )
    if not expected.is_positive:
        assert fee is None
        return
    assert fee is not None
    assert fee.amount == expected
    bearer = exception if exception is not None else policy.bearer
    assert fee.covered_by_customer is (bearer is CardFeeBearer.CUSTOMER)


# -- the rate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rate",
    ["\uff12", "1_0", "\u0661", "2.9\u2003", "NaN", "-Infinity", "", "2,9", "1E-1001"],
)
def test_a_rate_is_read_as_strictly_as_an_amount(rate: str) -> None:
    # Decimal() alone read "\uff12" (full-width) as 2 and "1_0" as 10.
    with pytest.raises(ValidationError) as caught:
        CardFeePolicy(CardFeeBearer.CUSTOMER, rate, usd("0.30"))  # type: ignore[arg-type]
    assert (caught.value.paths, caught.value.codes) == (["rate_percent"], ["invalid_rate"])
    with pytest.raises(ValidationError) as caught:
        make_partner().set_card_fees(rate_percent=rate)
    assert (caught.value.paths, caught.value.codes) == (["rate_percent"], ["invalid_rate"])


def test_a_float_rate_is_refused_as_a_float_amount_is() -> None:
    with pytest.raises(ValidationError) as caught:
        make_partner().set_card_fees(rate_percent=2.9)  # type: ignore[arg-type]
    assert (caught.value.paths, caught.value.codes) == (["rate_percent"], ["float_refused"])
    assert "never a float" in caught.value.errors[0].message
    with pytest.raises(ValidationError) as caught:
        make_partner().set_card_fees(rate_percent="21")
    assert "decimal places" not in caught.value.errors[0].message  # not what is wrong


def test_a_rate_has_at_most_1000_decimal_places() -> None:
    partner = make_partner().set_card_fees(rate_percent="1E-1000")
    assert partner.card_fees.rate_percent == Decimal("1E-1000")
    with pytest.raises(ValidationError) as caught:
        make_partner().set_card_fees(rate_percent="1E-1001")
    assert "at most 1000 decimal places" in caught.value.errors[0].message


@pytest.mark.parametrize(
    ("rate", "kept"),
    [
        ("1E+1", "10"),
        (Decimal("2E+1"), "20"),
        ("-0", "0"),
        (Decimal("-0.00"), "0.00"),
        ("2.90", "2.90"),
        (" 3 ", "3"),
        (3, "3"),
        ("1E-7", "1E-7"),
    ],
)
def test_a_rate_is_kept_with_no_exponent_and_no_negative_zero(rate: object, kept: str) -> None:
    policy = CardFeePolicy(CardFeeBearer.CUSTOMER, rate, usd("0.30"))  # type: ignore[arg-type]
    assert policy.rate_percent.as_tuple() == Decimal(kept).as_tuple()
    assert make_partner().set_card_fees(rate_percent=rate).card_fees == policy  # type: ignore[arg-type]


@given(rate=st.decimals(0, 20, places=4) | st.integers(0, 20) | st.decimals(0, 20).map(str))
def test_a_rate_reads_as_the_same_fee_whatever_its_form(rate: object) -> None:
    policy = CardFeePolicy(CardFeeBearer.CUSTOMER, rate, usd("0.30"))  # type: ignore[arg-type]
    assert policy.rate_percent == Decimal(str(rate))
    amount = usd("1234.56")
    assert policy.fee_for(amount) == (
        amount.percent(Decimal(str(rate)), rounding=Rounding.HALF_EVEN) + usd("0.30")
    )


# -- splits (I9) ---------------------------------------------------------------------------


@given(
    fee=aps.money("USD", min_units=0, max_units=10**9),
    amounts=st.lists(aps.money("USD", min_units=1, max_units=10**12), min_size=1, max_size=8),
)
def test_a_split_sums_exactly(fee: Money, amounts: list[Money]) -> None:
    shares = split_card_fee(fee, amounts)
    assert len(shares) == len(amounts)
    assert Money.sum(shares, "USD") == fee
    assert all(not share.is_negative for share in shares)
    # Each share is within one minor unit of its exact proportion.
    whole = sum(a.minor_units for a in amounts)
    for share, amount in zip(shares, amounts, strict=True):
        exact = Fraction(fee.minor_units * amount.minor_units, whole)
        assert abs(share.minor_units - exact) < 1


@given(
    policy=aps.card_fee_policies("CAD"),
    units=st.lists(st.integers(1, 10**9), min_size=1, max_size=4),
    method=st.sampled_from(["card", "pad", "eft"]),
    data=st.data(),
)
def test_a_batch_payment_shares_its_fee_exactly(
    policy: CardFeePolicy, units: list[int], method: str, data: st.DataObject
) -> None:
    partner = make_partner("CA").set_card_fees(
        bearer=policy.bearer, rate_percent=policy.rate_percent, fixed=policy.fixed
    )
    customer = make_customer(partner)
    invoices = [issue(partner, customer, u, str(i)) for i, u in enumerate(units)]
    amounts = {
        inv.id: Money.from_minor_units(data.draw(st.integers(1, inv.balance.minor_units)), "CAD")
        for inv in invoices
    }
    payment, touched = pay_invoices(
        partner,
        customer,
        invoices,
        payer=customer.users[0],
        method=method,
        idempotency_key="k",
        amounts=amounts,
    )
    assert payment.amount == Money.sum(amounts.values(), "CAD")
    shares = Money.sum((a.card_fee for a in payment.allocations), "CAD")
    fee = payment.card_fee
    if method != "card":
        assert fee is None  # bank debits carry none (I8)
        assert shares.is_zero
        assert payment.total == payment.amount
        return
    expected = card_fee_for(partner, customer, payment.amount)
    assert fee == expected
    assert shares == (fee.amount if fee is not None else Money.zero("CAD"))
    if fee is not None and fee.covered_by_customer:
        assert payment.total == payment.amount + fee.amount
        assert payment.partner_fees.is_zero
    else:
        assert payment.total == payment.amount
        assert payment.partner_fees == (fee.amount if fee else Money.zero("CAD"))
    # Fees never touch the invoices' balances: only the allocations do.
    for inv, after in zip(invoices, touched, strict=True):
        assert after.balance == inv.balance - amounts[inv.id]


def test_card_fees_on_a_refunded_payment_stay_with_the_partner() -> None:
    partner = make_partner()
    customer = make_customer(partner)
    invoice = issue(partner, customer, 10_000, "1")
    payment, touched = pay_invoices(
        partner, customer, [invoice], payer=customer.users[0], method="card", idempotency_key="k"
    )
    assert payment.total == usd("103.20")
    assert payment.partner_fees.is_zero
    settled = payment.succeed().settle()
    refunded, _ = refund_payment(settled, touched)
    # The customer gets back what it was charged; the fee is the partner's cost.
    assert refunded.total == usd("103.20")
    assert refunded.partner_fees == usd("3.20")


@pytest.mark.parametrize("absorbed", [False, True])
def test_who_bears_the_card_fee_when_a_card_payment_comes_back(absorbed: bool) -> None:
    partner = make_partner()
    if absorbed:
        partner = partner.set_card_fees(bearer="partner")
    customer = make_customer(partner)
    invoice = issue(partner, customer, 10_000, "1")
    payment, touched = pay_invoices(
        partner, customer, [invoice], payer=customer.users[0], method="card", idempotency_key="k"
    )
    assert payment.partner_fees == (usd("3.20") if absorbed else usd("0"))
    # Declined: nothing was charged, so no card fee, whoever would have borne it.
    failed, _ = fail_payment(payment, touched)
    assert failed.partner_fees == usd("0")
    # Disputed after it went through: the whole charge goes back to the
    # customer, the processor keeps its fee, and the dispute fee is added (I6).
    disputed, _ = charge_back_payment(payment.succeed(), touched)
    assert disputed.partner_fees == usd("3.20") + usd("25.00")


def test_a_card_fee_policy_refuses_a_negative_amount() -> None:
    policy = CardFeePolicy.default("USD")
    with pytest.raises(ValidationError) as caught:
        policy.fee_for(Money("-10.00", "USD"))
    assert caught.value.codes == ["negative_amount"]
