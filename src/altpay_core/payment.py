"""Payments: money a customer user sends for one or more invoices.

A :class:`Payment` pays one invoice or several of one customer (a batch),
by card or bank debit (ACH in US dollars, PAD or EFT in Canadian dollars). Each of its
allocations (:class:`Allocation`) takes at most that invoice's balance (I5).
Paying changes the payment and the invoices it touches together, so the
functions here return both, for a unit of work to store in one commit::

    payment, invoices = pay_invoices(partner, customer, [invoice],
                                     payer=user, method="ach",
                                     idempotency_key="7f9c...")

Life of a payment (status, and what it does to the invoices' balances):

- ``processing`` when made: its allocations already hold the balances, so
  the same money cannot be paid twice while a bank debit clears;
- ``succeeded`` (:meth:`Payment.succeed`), then settled (:meth:`Payment.settle`,
  which records ``settled_at``; the status stays ``succeeded``);
- ``failed`` (:func:`fail_payment`, or a standard bank return,
  :func:`return_payment`) or ``charged_back`` (a card dispute,
  :func:`charge_back_payment`, or an unauthorised ACH return): the balances
  are given back and the fee recorded (I6);
- ``refunded`` (:func:`refund_payment`), in full, once settled (I7): the
  balances are given back too.

A refund's time ``at`` may not come before the payment settled (rule I7).
Other times are taken as given: a processor's clock, or one that reports
whole seconds, may put a success a moment before the payment was made. The
events carry the same time, but a payment's never earlier than its
``created_at``, ``succeeded_at`` and ``settled_at`` (those it has) nor the
latest event pending on it (and an invoice's never earlier than the
invoice's ``created_at`` nor its latest pending event), so that a payment's
events, stored or pending, stay oldest first. A customer's saved methods
keep their events in order the same way.

Card fees (I8) come from the partner's :class:`~altpay_core.partner.CardFeePolicy`
and the customer's exception; bank debits carry none. Rounding (I9): every fee
is rounded half-even to the currency's minor unit, and every split (a batch's
card fee across its invoices) uses :meth:`Money.allocate
<altpay_core.money.Money.allocate>`, whose parts sum exactly to the whole.

Also here: a customer's saved payment methods (:class:`CustomerPaymentMethods`)
and scheduled payments (:class:`ScheduledPayment`), which need a method on
file and say so when there is none.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from decimal import Decimal
from typing import Any, Final, NoReturn

import attrs

from . import _fields
from ._arguments import checked_arguments, checked_constructor, checked_form
from ._html import html_table
from .access import Impersonation, Viewer, require_pay
from .customer import Customer, CustomerUser
from .errors import (
    SHOWN_DIGITS,
    FieldErrors,
    InvariantViolation,
    NotFound,
    PermissionDenied,
    ValidationError,
    input_unshown,
    key_text,
    may_hold_number,
)
from .events import (
    DefaultPaymentMethodChanged,
    Event,
    PaymentChargeback,
    PaymentFailed,
    PaymentMethodAdded,
    PaymentMethodDeleted,
    PaymentRefunded,
    PaymentSettled,
    PaymentSucceeded,
    utc_now,
)
from .invoice import (
    Fee,
    FeeKind,
    Invoice,
    _events_field,
    _money_in,
    _partner_and_customer,
    _positive_money_in,
    _refuse_unless_open,
    _require_type,
    _strip,
    _to_member,
    _when,
    _with_events,
)
from .money import Currency, Money, _too_large
from .partner import (
    _PARTNER_CURRENCIES,
    Action,
    CardFeeBearer,
    Partner,
    TeamMember,
    _authorize_by,
    _kept_text,
    _refuse_unbilled,
)
from .values import (
    CustomerId,
    EntityId,
    InvoiceId,
    PartnerId,
    PaymentId,
    PaymentMethodId,
    TeamMemberId,
    UserId,
)

__all__ = [
    "Allocation",
    "CARD_DISPUTE_FEE",
    "CustomerPaymentMethods",
    "Payment",
    "PaymentMethod",
    "PaymentMethodStatus",
    "PaymentMethodType",
    "PaymentStatus",
    "ReturnKind",
    "STANDARD_RETURN_FEE",
    "ScheduledPayment",
    "ScheduledPaymentId",
    "ScheduledPaymentStatus",
    "UNAUTHORIZED_RETURN_FEE",
    "card_fee_for",
    "charge_back_payment",
    "charge_now",
    "fail_payment",
    "method_on_file",
    "pay_invoices",
    "refund_payment",
    "replay_payment",
    "request_fingerprint",
    "return_payment",
    "run_scheduled_payment",
    "schedule_payment",
    "skip_scheduled_payment",
    "split_card_fee",
]

STANDARD_RETURN_FEE: Final = Decimal("15.00")
"""The fee of a standard ACH (or PAD/EFT) return, in the payment's currency (I6)."""
UNAUTHORIZED_RETURN_FEE: Final = Decimal("25.00")
"""The fee of an ACH debit returned as unauthorised by the customer (I6)."""
CARD_DISPUTE_FEE: Final = Decimal("25.00")
"""The fee of a disputed card payment, a chargeback (I6)."""

_KEY_MAX: Final = 255
_RUN_KEY: Final = "scheduled:"
"""How the idempotency key of a scheduled payment's run begins
(``scheduled:sch_...``): reserved, so that no request takes a run's key."""
_RUNNING: ContextVar[bool] = ContextVar("altpay_running_scheduled", default=False)
"""Set while :func:`run_scheduled_payment` pays, under its reserved key."""
_FINGERPRINT: Final = re.compile(r"[0-9a-f]{64}")
_RETURN_FEES: Final[Mapping[FeeKind, Decimal]] = {
    FeeKind.RETURN: STANDARD_RETURN_FEE,
    FeeKind.UNAUTHORIZED_RETURN: UNAUTHORIZED_RETURN_FEE,
    FeeKind.DISPUTE: CARD_DISPUTE_FEE,
}
"""The amount of each kind of return fee, in the payment's currency (I6)."""
_RETURN_KINDS: Final = frozenset(_RETURN_FEES)


# -- kinds and statuses ----------------------------------------------------------------


class PaymentMethodType(_fields.Choices, enum.Enum):
    """How a payment is made: a card, or a bank debit in the invoices' currency
    (ACH moves US dollars, PAD and EFT Canadian dollars): a US partner that
    bills in CAD is paid by PAD or EFT, a Canadian one that bills in USD by
    ACH (see :meth:`available_in`)."""

    CARD = "card"
    """A credit or debit card (Visa, Mastercard, American Express, Discover, or
    a debit card such as Interac). The card's brand is not recorded, so a card
    that works in one currency only (Interac: Canadian dollars) is not refused
    in another; the processor declines it."""
    ACH = "ach"
    """A US bank debit (USD)."""
    PAD = "pad"
    """A Canadian pre-authorised debit (CAD)."""
    EFT = "eft"
    """A Canadian electronic funds transfer (CAD)."""

    @classmethod
    def _missing_(cls, value: object) -> NoReturn:
        # What came may be a card or account number given in the wrong place.
        with input_unshown():
            super()._missing_(value)

    @property
    def is_bank_debit(self) -> bool:
        """ACH, PAD or EFT: no card fee (I8); returned rather than disputed (I6)."""
        return self is not PaymentMethodType.CARD

    @checked_arguments
    def available_in(self, currency: Currency) -> bool:
        """Cards work in any currency; ACH in USD; PAD and EFT in CAD
        (``currency`` a :class:`Currency`: anything else is a ``wrong_type``
        error)."""
        if type(currency) is not Currency:
            _fields.argument("currency", currency, Currency, "a Currency")
        if self is PaymentMethodType.CARD:
            return True
        return currency.code == ("USD" if self is PaymentMethodType.ACH else "CAD")


_METHOD_TYPES: Final[dict[object, PaymentMethodType]] = {
    **{kind.value: kind for kind in PaymentMethodType},
    **{kind: kind for kind in PaymentMethodType},
}
"""Each kind of method, by itself and by its value."""


def known_method_type(value: object) -> PaymentMethodType | None:
    """``value`` as a kind of method, if it is one or its value; else None.

    The quick path for valid input, read without
    :func:`~altpay_core.errors.input_unshown`, which only a refused value
    needs. Not part of the public API.
    """
    if isinstance(value, PaymentMethodType):
        return value
    if isinstance(value, str):
        # A plain str to look up: a subclass's own __hash__ or __eq__ (or
        # none) would raise a TypeError, or match another kind.
        return _METHOD_TYPES.get(_fields.plain_str(value))
    return None


class PaymentStatus(_fields.Choices, enum.Enum):
    """Where a payment stands."""

    PROCESSING = "processing"
    """Made, not yet cleared; it holds the balances of its invoices."""
    SUCCEEDED = "succeeded"
    """Cleared (and, once ``settled_at`` is set, settled)."""
    FAILED = "failed"
    """Declined, rejected or returned by the bank: balances given back."""
    REFUNDED = "refunded"
    """Refunded in full after settling: balances given back."""
    CHARGED_BACK = "charged_back"
    """Disputed (card) or returned as unauthorised (ACH): balances given back."""

    @property
    def holds_balance(self) -> bool:
        """Whether the payment's allocations count towards its invoices' amount paid."""
        return self in (PaymentStatus.PROCESSING, PaymentStatus.SUCCEEDED)


# Charged, then given back: the processor keeps its card fee, the partner bears it.
_GIVEN_BACK_AFTER_CHARGE: Final = (PaymentStatus.REFUNDED, PaymentStatus.CHARGED_BACK)


class ReturnKind(_fields.Choices, enum.Enum):
    """Why a bank debit came back (I6)."""

    STANDARD = "standard"
    """Insufficient funds, closed account, ...: fee 15.00, the payment fails."""
    UNAUTHORIZED = "unauthorized"
    """The account holder says they did not authorise it: fee 25.00, a chargeback."""


# -- values -------------------------------------------------------------------------------


@checked_constructor
@attrs.frozen
class Allocation:
    """The part of a payment that goes to one invoice, and its share of the
    card fee (zero without one)."""

    invoice_id: InvoiceId
    amount: Money
    card_fee: Money

    def __attrs_post_init__(self) -> None:
        if not self._fields_kept():
            self._check_each_field()

    def _fields_kept(self) -> bool:
        """The quick check: whether every field already has exactly its type,
        the amount above zero and the card fee's share not below it, in the
        amount's currency, so that :meth:`_check_each_field` could find
        nothing to report. Allocations made by :func:`pay_invoices` pass it."""
        amount, fee = self.amount, self.card_fee
        return (
            type(self.invoice_id) is InvoiceId
            and type(amount) is Money
            and type(fee) is Money
            and amount.amount > 0
            and fee.amount >= 0
            and fee.currency is amount.currency
        )

    def _check_each_field(self) -> None:
        """Check every field and report each invalid one."""
        found = FieldErrors()
        _require_type(found, "invoice_id", self.invoice_id, InvoiceId, "an invoice id")
        amount_ok = _require_type(found, "amount", self.amount, Money, "Money")
        fee_ok = _require_type(found, "card_fee", self.card_fee, Money, "Money")
        if amount_ok and not self.amount.is_positive:
            found.add(
                "amount", "not_positive", f"'amount' must be greater than zero (got {self.amount})"
            )
        if fee_ok and self.card_fee.is_negative:
            found.add(
                "card_fee", "negative_amount", f"'card_fee' must be zero or more ({self.card_fee})"
            )
        if amount_ok and fee_ok and self.card_fee.currency is not self.amount.currency:
            # On its own an allocation cannot tell which of the two is in the
            # wrong currency (the payment's decides): both are named.
            amount_code, fee_code = self.amount.currency.code, self.card_fee.currency.code
            for path, own, other, other_name in (
                ("amount", amount_code, fee_code, "card_fee"),
                ("card_fee", fee_code, amount_code, "amount"),
            ):
                found.add(
                    path,
                    "currency_mismatch",
                    f"'{path}' is in {own} and '{other_name}' in {other}: both must be in "
                    "the payment's currency (rule I2)",
                )
        found.raise_if_any()


@checked_arguments
def card_fee_for(
    partner: Partner, customer: Customer, amount: Money, method: PaymentMethodType | str = "card"
) -> Fee | None:
    """The card fee of paying ``amount`` with ``method`` (I8), or ``None``.

    Bank debits carry none, nor does a fee that comes to zero. The amount
    comes from the partner's policy (a percentage rounded half-even, plus the
    fixed part); who covers it, from the customer's exception if it has one,
    else the policy: ``covered_by_customer`` is true when it is passed on.
    The customer must be one of the partner's (I1).
    """
    _refuse_other_partner(partner, customer)
    kind = _method_type("method", method)
    # Whatever the method: an amount that is no money, in another currency
    # than the partner's (I2), or negative, is refused for a bank debit too.
    money = _money_in("amount", amount, partner.currency, "the partner's currency")
    if money.is_negative:
        raise ValidationError.single(
            "amount", "negative_amount", f"'amount' must be zero or more (got {money})"
        )
    if kind.is_bank_debit:
        return None
    value = partner.card_fees.fee_for(money)
    if not value.is_positive:
        return None
    bearer = customer.card_fee_bearer(partner)
    return Fee.new(FeeKind.CARD, value, covered_by_customer=bearer is CardFeeBearer.CUSTOMER)


def _refuse_other_partner(partner: Partner, customer: Customer) -> None:
    """A partner and a customer of theirs: ``wrong_type`` for anything that
    is not one, an ``InvariantViolation`` (I1) for another partner's customer."""
    _partner_and_customer(partner, customer)
    if customer.partner_id != partner.id:
        raise InvariantViolation(
            f"customer {customer.id} is not a customer of {partner.name}",
            rule="I1",
            path="customer",
        )


@checked_arguments
def split_card_fee(fee: Money, amounts: Sequence[Money]) -> list[Money]:
    """Share ``fee`` across the ``amounts`` of a batch, in proportion to them.

    The shares sum exactly to ``fee`` (I9): :meth:`Money.allocate
    <altpay_core.money.Money.allocate>` on the amounts' minor units (largest
    remainder, ties to the earliest).

    >>> [str(m) for m in split_card_fee(Money("1.00", "USD"),
    ...                                 [Money("10.00", "USD")] * 3)]
    ['USD 0.34', 'USD 0.33', 'USD 0.33']
    """
    if not isinstance(fee, Money):
        raise ValidationError.single(
            "fee", "wrong_type", f"'fee' must be Money (got {type(fee).__name__})"
        )
    if fee.is_negative:
        raise ValidationError.single(
            "fee", "negative_amount", f"'fee' must be zero or more (got {fee})"
        )
    if isinstance(amounts, str) or not isinstance(amounts, Sequence):
        raise ValidationError.single(
            "amounts",
            "wrong_type",
            f"'amounts' must be a list of amounts (got {type(amounts).__name__})",
        )
    if not amounts:
        raise ValidationError.single(
            "amounts", "empty", "'amounts' must be a list of at least one amount"
        )
    found = FieldErrors()
    for index, amount in enumerate(amounts):
        path = f"amounts[{index}]"
        if not isinstance(amount, Money):
            found.add(path, "wrong_type", f"'{path}' must be Money (got {type(amount).__name__})")
        else:
            found.check("", _positive_money_in, path, amount, fee.currency, "the fee's currency")
    found.raise_if_any()
    return fee.allocate([amount.minor_units for amount in amounts])


# -- the payment --------------------------------------------------------------------------


def _key(path: str, value: object) -> str:
    return _fields.required_text(path, value, max_length=_KEY_MAX)


@checked_constructor
@attrs.frozen(kw_only=True)
class Payment:
    """Money a customer user sends for one or more invoices of one customer.

    Made by :func:`pay_invoices` (or :func:`charge_now`,
    :func:`run_scheduled_payment`); its status changes through
    :meth:`succeed`, :meth:`settle` and the functions that also give the
    invoices' balances back (:func:`fail_payment`, :func:`return_payment`,
    :func:`charge_back_payment`, :func:`refund_payment`).

    Amounts: ``amount`` (what goes to the invoices), ``card_fee`` (the fee
    line, if any), ``total`` (what the customer is charged: the amount plus
    a card fee passed on to them), ``return_fee`` (recorded against the
    partner when it comes back, I6) and ``partner_fees`` (every fee the
    partner bears).
    """

    id: PaymentId
    partner_id: PartnerId
    customer_id: CustomerId
    user_id: UserId
    method: PaymentMethodType
    currency: Currency
    allocations: tuple[Allocation, ...] = attrs.field(converter=_fields.list_as_tuple)
    fees: tuple[Fee, ...] = attrs.field(default=(), converter=_fields.list_as_tuple)
    status: PaymentStatus = PaymentStatus.PROCESSING
    idempotency_key: str = attrs.field(converter=_strip)
    request_fingerprint: str
    payment_method_id: PaymentMethodId | None = None
    created_at: dt.datetime = attrs.field(factory=utc_now)
    succeeded_at: dt.datetime | None = None
    settled_at: dt.datetime | None = None
    version: int = 0
    events: tuple[Event, ...] = _events_field()

    def __attrs_post_init__(self) -> None:
        if not self._fields_kept():
            self._check_each_field()
        self._check_rules()

    def _fields_kept(self) -> bool:
        """The quick check: whether every field already has exactly its type
        and form (text trimmed, enumerations as members, times in UTC, the
        allocations and fees tuples of their classes in the payment's
        currency, at least one allocation, the method available in the
        currency), so that :meth:`_check_each_field` could find nothing to
        report. Payments made by a command or read back pass it; anything
        else gets the detailed checks. The rules are checked either way."""
        currency, method, allocations, fees = (
            self.currency,
            self.method,
            self.allocations,
            self.fees,
        )
        fingerprint, method_id, version = (
            self.request_fingerprint,
            self.payment_method_id,
            self.version,
        )
        return (
            type(self.id) is PaymentId
            and type(self.partner_id) is PartnerId
            and type(self.customer_id) is CustomerId
            and type(self.user_id) is UserId
            and type(method) is PaymentMethodType
            and type(currency) is Currency
            and currency.code in _PARTNER_CURRENCIES
            and method.available_in(currency)
            and type(allocations) is tuple
            and len(allocations) > 0
            and all(type(x) is Allocation and x.amount.currency is currency for x in allocations)
            and type(fees) is tuple
            and all(type(x) is Fee and x.amount.currency is currency for x in fees)
            and type(self.status) is PaymentStatus
            and _kept_text(self.idempotency_key, _KEY_MAX)
            and type(fingerprint) is str
            and _FINGERPRINT.fullmatch(fingerprint) is not None
            and (method_id is None or type(method_id) is PaymentMethodId)
            and _aware(self.created_at)
            and (self.succeeded_at is None or _aware(self.succeeded_at))
            and (self.settled_at is None or _aware(self.settled_at))
            and type(version) is int
            and version >= 0
        )

    def _check_each_field(self) -> None:
        """Check every field and report each invalid one (the currency of
        every amount, I2, among them)."""
        found = FieldErrors()
        _require_type(found, "id", self.id, PaymentId, "a payment id")
        _require_type(found, "partner_id", self.partner_id, PartnerId, "a partner id")
        _require_type(found, "customer_id", self.customer_id, CustomerId, "a customer id")
        _require_type(found, "user_id", self.user_id, UserId, "a user id")
        with input_unshown():  # a full number given as the method is never echoed
            _to_member(found, self, "method", PaymentMethodType)
        currency_ok = _require_type(found, "currency", self.currency, Currency, "a Currency")
        if currency_ok:
            _refuse_unbilled(found, "currency", self.currency)
        allocations_ok = self._check_items(found, "allocations", Allocation, currency_ok)
        self._check_items(found, "fees", Fee, currency_ok)
        _to_member(found, self, "status", PaymentStatus)
        found.check("", _key, "idempotency_key", self.idempotency_key)
        fingerprint = self.request_fingerprint
        if not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint):
            found.add(
                "request_fingerprint",
                "invalid_fingerprint",
                "'request_fingerprint' must be 64 lower-case hex digits (a SHA-256)",
            )
        elif type(fingerprint) is not str:
            # Kept as a plain str: a retry's fingerprint is compared with it.
            object.__setattr__(self, "request_fingerprint", _fields.plain_str(fingerprint))
        if self.payment_method_id is not None:
            _require_type(
                found, "payment_method_id", self.payment_method_id, PaymentMethodId, "an id"
            )
        _fields.keep_checked(found, self, "created_at", _fields.aware_datetime)
        for name in ("succeeded_at", "settled_at"):
            if getattr(self, name) is not None:
                _fields.keep_checked(found, self, name, _fields.aware_datetime)
        _fields.keep_checked(found, self, "version", _fields.version_number)
        if allocations_ok and not self.allocations:
            found.add("allocations", "empty", "'allocations' must hold at least one invoice")
        if (
            currency_ok
            and isinstance(self.method, PaymentMethodType)
            and not self.method.available_in(self.currency)
        ):
            found.add("method", "method_unavailable", _unavailable(self.method, self.currency))
        found.raise_if_any()

    def _check_items(
        self, found: FieldErrors, name: str, kind: type[Any], currency_ok: bool
    ) -> bool:
        items = getattr(self, name)
        if not isinstance(items, tuple):
            found.add(name, "wrong_type", f"'{name}' must be a list (got {type(items).__name__})")
            return False
        ok = True
        for index, item in enumerate(items):
            where = f"{name}[{index}]"
            if not isinstance(item, kind):
                found.add(where, "wrong_type", f"'{where}' must be {kind.__name__}")
                ok = False
            elif currency_ok and item.amount.currency is not self.currency:
                found.add(
                    f"{where}.amount",
                    "currency_mismatch",
                    f"'{where}.amount' must be in {self.currency.code}, the payment's "
                    f"currency (got {item.amount.currency.code}; rule I2)",
                )
        return ok

    def _check_rules(self) -> None:
        seen: set[InvoiceId] = set()
        for index, part in enumerate(self.allocations):
            if part.invoice_id in seen:
                raise InvariantViolation(
                    f"invoice {part.invoice_id} appears twice in one payment",
                    rule="I5",
                    path=f"allocations[{index}].invoice_id",
                )
            seen.add(part.invoice_id)
        card_fees = [fee for fee in self.fees if fee.kind is FeeKind.CARD]
        return_fees = [fee for fee in self.fees if fee.kind in _RETURN_KINDS]
        for index, fee in enumerate(self.fees):
            if fee.kind is not FeeKind.CARD and fee.kind not in _RETURN_KINDS:
                raise InvariantViolation(
                    f"a payment carries card and return fees only (got {fee.kind.value})",
                    rule="I8",
                    path=f"fees[{index}].kind",
                )
        if len(card_fees) > 1 or (card_fees and self.method.is_bank_debit):
            raise InvariantViolation(
                "a card payment has at most one card fee; bank debits carry none",
                rule="I8",
                path="fees",
            )
        try:
            shares = Money.sum((part.card_fee for part in self.allocations), self.currency)
        except ValidationError:  # amount_too_large
            raise _too_large("allocations", comes_to="add up to") from None
        expected = card_fees[0].amount if card_fees else Money.zero(self.currency)
        if shares != expected:
            raise InvariantViolation(
                f"the allocations' card-fee shares ({shares}) must sum exactly to the "
                f"card fee ({expected})",
                rule="I9",
                path="allocations",
            )
        wanted = self._return_fee_kind()
        kinds = [fee.kind for fee in return_fees]
        if kinds != ([] if wanted is None else [wanted]) or any(
            fee.covered_by_customer for fee in return_fees
        ):
            raise InvariantViolation(
                f"a {self.status.value} {self.method.value} payment records "
                + ("no return fee" if wanted is None else f"one {wanted.value} fee, the partner's"),
                rule="I6",
                path="fees",
            )
        for fee in return_fees:
            wanted_amount = _RETURN_FEES[fee.kind]
            if fee.amount.amount != wanted_amount:
                raise InvariantViolation(
                    f"a payment's {_fee_name(fee.kind, self.method)} is "
                    f"{wanted_amount} {self.currency.code} "
                    f"(got {fee.amount.amount})",
                    rule="I6",
                    path="fees",
                )
        self._check_times()
        try:
            self.total  # noqa: B018 - what the payer is charged must be money too
        except ValidationError:
            raise _too_large("allocations", comes_to="add up to") from None

    def _return_fee_kind(self) -> FeeKind | None:
        if self.status is PaymentStatus.FAILED:
            return FeeKind.RETURN if self.method.is_bank_debit else None
        if self.status is PaymentStatus.CHARGED_BACK:
            return FeeKind.UNAUTHORIZED_RETURN if self.method.is_bank_debit else FeeKind.DISPUTE
        return None

    def _check_times(self) -> None:
        status = self.status
        if status is PaymentStatus.PROCESSING and self.succeeded_at is not None:
            raise InvariantViolation(
                "a processing payment has not succeeded yet", rule="I6", path="succeeded_at"
            )
        if status in (PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED) and (
            self.succeeded_at is None
        ):
            raise InvariantViolation(
                f"a {status.value} payment records when it succeeded",
                rule="I7",
                path="succeeded_at",
            )
        if self.settled_at is not None and self.succeeded_at is None:
            # Whatever the status and method (a failed card payment too):
            # the field at fault is settled_at, succeeded_at is not there.
            raise InvariantViolation(
                "only a payment that succeeded settles", rule="I7", path="settled_at"
            )
        if status is PaymentStatus.REFUNDED and self.settled_at is None:
            raise InvariantViolation(
                "only a settled payment is refunded", rule="I7", path="settled_at"
            )
        if (
            status is PaymentStatus.CHARGED_BACK
            and not self.method.is_bank_debit
            and self.succeeded_at is None
        ):
            raise InvariantViolation(
                "only a card payment that succeeded is disputed", rule="I6", path="succeeded_at"
            )
        if (
            status is PaymentStatus.FAILED
            and not self.method.is_bank_debit
            and self.succeeded_at is not None
        ):
            # A card fails only while processing (declined); one that
            # succeeded comes back by a chargeback, never as failed.
            raise InvariantViolation(
                "a declined card payment never succeeded", rule="I6", path="succeeded_at"
            )

    # -- reading ------------------------------------------------------------------

    @functools.cached_property
    def amount(self) -> Money:
        """What goes to the invoices: the sum of the allocations."""
        return Money.sum((part.amount for part in self.allocations), self.currency)

    @property
    def card_fee(self) -> Fee | None:
        """The card fee line (I8), or ``None`` (bank debits, a zero fee)."""
        return next((fee for fee in self.fees if fee.kind is FeeKind.CARD), None)

    @property
    def return_fee(self) -> Fee | None:
        """The return or dispute fee recorded when it came back (I6), or ``None``."""
        return next((fee for fee in self.fees if fee.kind in _RETURN_KINDS), None)

    @property
    def customer_card_fee(self) -> Money:
        """The card fee passed on to the customer (zero if absorbed or none)."""
        fee = self.card_fee
        if fee is None or not fee.covered_by_customer:
            return Money.zero(self.currency)
        return fee.amount

    @property
    def total(self) -> Money:
        """What the customer is charged: the amount plus a card fee passed on.

        A refund gives back exactly this (I7).
        """
        return self.amount + self.customer_card_fee

    @property
    def partner_fees(self) -> Money:
        """Every fee the partner bears: a card fee it absorbs, or any card fee
        once the charge is given back, refunded (it stays with the partner,
        I7) or charged back, plus a return or dispute fee (I6). A declined
        card payment (``failed``) charged nothing: no card fee."""
        total = Money.zero(self.currency)
        fee = self.card_fee
        status = self.status
        if (
            fee is not None
            and status is not PaymentStatus.FAILED
            and (not fee.covered_by_customer or status in _GIVEN_BACK_AFTER_CHARGE)
        ):
            total = total + fee.amount
        returned = self.return_fee
        if returned is not None:
            total = total + returned.amount
        return total

    @property
    def holds_balance(self) -> bool:
        """Processing or succeeded: its allocations count on its invoices."""
        return self.status.holds_balance

    @property
    def is_settled(self) -> bool:
        """Whether its funds settled (:meth:`settle`); needed for a refund (I7)."""
        return self.settled_at is not None

    @property
    def invoice_ids(self) -> tuple[InvoiceId, ...]:
        """The invoices it pays, in order."""
        return tuple(part.invoice_id for part in self.allocations)

    @checked_arguments
    def allocation(self, invoice_id: InvoiceId | str) -> Allocation:
        """Its allocation to ``invoice_id``, an ``InvoiceId`` or its text
        (``NotFound`` if none)."""
        invoice_id = _fields.entity_id("invoice_id", invoice_id, InvoiceId)
        for part in self.allocations:
            if part.invoice_id == invoice_id:
                return part
        raise NotFound("allocation to invoice", invoice_id)

    # -- commands that touch no invoice ---------------------------------------------

    @checked_arguments
    def succeed(self, at: dt.datetime | None = None) -> Payment:
        """The processor says it went through: ``processing`` -> ``succeeded``
        (``payment_succeeded``) at ``at`` (now if omitted). The invoices are
        unchanged: the payment has held their balances since it was made."""
        when = _when(at)
        if self.status is not PaymentStatus.PROCESSING:
            raise InvariantViolation(
                f"only a processing payment succeeds (this one is {self.status.value})",
                rule="I6",
                path="status",
            )
        new = attrs.evolve(self, status=PaymentStatus.SUCCEEDED, succeeded_at=when)
        return _with_events(new, self, self._event(PaymentSucceeded, when, ("status",)))

    @checked_arguments
    def settle(self, at: dt.datetime | None = None) -> Payment:
        """Its funds settled: records ``settled_at`` (``payment_settled``),
        ``at`` (now if omitted); the status stays ``succeeded``. Only a
        succeeded payment settles; settling a settled one changes nothing,
        whatever happened to it since (a settlement reported again after a
        return, a chargeback or a refund is a repeat, not a transition). A
        refund needs it (I7)."""
        when = _when(at)
        if self.settled_at is not None:
            return self
        if self.status is not PaymentStatus.SUCCEEDED:
            raise InvariantViolation(
                f"only a succeeded payment settles (this one is {self.status.value})",
                rule="I7",
                path="status",
            )
        new = attrs.evolve(self, settled_at=when)
        return _with_events(new, self, self._event(PaymentSettled, when, ("settled_at",)))

    # -- internals ------------------------------------------------------------------

    def _event(self, kind: type[Event], when: dt.datetime, changes: tuple[str, ...]) -> Event:
        # Events stay oldest first, stored ones included: a time before the
        # payment was made, succeeded or settled, or before its pending
        # events, counts as the latest of those (the fields keep it as given).
        return kind(
            partner_id=self.partner_id,
            aggregate_id=str(self.id),
            occurred_at=max(
                (
                    when,
                    self.created_at,
                    *(t for t in (self.succeeded_at, self.settled_at) if t is not None),
                    *(event.occurred_at for event in self.events),
                )
            ),
            changes=changes,
        )

    def _closed(
        self,
        status: PaymentStatus,
        fee: FeeKind | None,
        amount: Decimal,
        event: type[Event],
        when: dt.datetime,
    ) -> Payment:
        fees = self.fees
        if fee is not None:
            fees = (
                *fees,
                Fee.new(
                    fee,
                    Money(amount, self.currency),
                    name=_fee_name(fee, self.method),
                    covered_by_customer=False,
                ),
            )
        new = attrs.evolve(self, status=status, fees=fees)
        changes = ("status", "fees") if fee is not None else ("status",)
        return _with_events(new, self, self._event(event, when, changes))

    def _repr_html_(self) -> str:
        rows = [
            ("status", self.status.value + (" (settled)" if self.is_settled else "")),
            ("method", self.method.value),
            *((f"invoice {part.invoice_id}", str(part.amount)) for part in self.allocations),
            *((fee.name, str(fee.amount)) for fee in self.fees),
            ("total", str(self.total)),
        ]
        return html_table(f"Payment {self.id}", rows)


def _aware(value: object) -> bool:
    """Whether ``value`` is exactly a datetime in UTC (the quick checks): any
    other is judged by the detailed checks (a tzinfo with no offset, a time
    with no UTC equivalent)."""
    return type(value) is dt.datetime and value.tzinfo is dt.UTC


def _unavailable(method: PaymentMethodType, currency: Currency, path: str = "method") -> str:
    return (
        f"'{path}' {method.value} is not available in {currency.code} "
        "(ACH is for USD, PAD and EFT for CAD, cards for both)"
    )


# -- idempotency --------------------------------------------------------------------------


@checked_arguments
def request_fingerprint(
    *,
    customer_id: CustomerId,
    user_id: UserId,
    method: PaymentMethodType,
    payment_method_id: PaymentMethodId | None,
    currency: Currency,
    amounts: Iterable[tuple[InvoiceId, Money | None]],
) -> str:
    """A SHA-256 of what a payment request asks for: who pays, how, and how
    much of which invoice (``None``: the balance, whatever it is).

    The order of the invoices does not matter. Two requests under one
    idempotency key are the same request when their fingerprints are equal.
    ``method`` may be given as its value (``"card"``); every other argument
    must already have its type (a ``wrong_type`` error names it), and each
    amount is in ``currency`` (I2).
    """
    found = FieldErrors()
    found.check("", _fields.argument, "customer_id", customer_id, CustomerId, "a customer id")
    found.check("", _fields.argument, "user_id", user_id, UserId, "a user id")
    kind = found.check("", _method_type, "method", method)
    if payment_method_id is not None:
        found.check(
            "", _fields.argument, "payment_method_id", payment_method_id, PaymentMethodId, "an id"
        )
    currency_ok = found.check("", _fields.argument, "currency", currency, Currency, "a Currency")
    parts = _fingerprint_parts(found, amounts, currency if currency_ok else None)
    found.raise_if_any()
    kind = _fields.passed(kind)
    canonical = json.dumps(
        [
            "payment-request/1",
            str(customer_id),
            str(user_id),
            kind.value,
            None if payment_method_id is None else str(payment_method_id),
            currency.code,
            sorted(parts),
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _fingerprint_parts(
    found: FieldErrors, amounts: object, currency: Currency | None
) -> list[tuple[str, str]]:
    if isinstance(amounts, _fields.NOT_A_LIST) or not isinstance(amounts, Iterable):
        found.add(
            "amounts",
            "wrong_type",
            "'amounts' must be a list of (invoice id, Money or None) pairs "
            f"(got {type(amounts).__name__})",
        )
        return []
    parts: list[tuple[str, str]] = []
    for index, pair in enumerate(amounts):
        path = f"amounts[{index}]"
        if not isinstance(pair, tuple) or len(pair) != 2:
            found.add(path, "wrong_type", f"'{path}' must be an (invoice id, Money or None) pair")
            continue
        invoice_id, amount = pair
        if not isinstance(invoice_id, InvoiceId):
            found.add(
                f"{path}[0]",
                "wrong_type",
                f"'{path}[0]' must be an invoice id (got {type(invoice_id).__name__})",
            )
        if amount is None:
            parts.append((str(invoice_id), "balance"))
        elif not isinstance(amount, Money):
            found.add(
                f"{path}[1]",
                "wrong_type",
                f"'{path}[1]' must be Money or None (got {type(amount).__name__})",
            )
        else:
            if currency is not None:
                found.check("", _money_in, f"{path}[1]", amount, currency)
            parts.append((str(invoice_id), str(amount.amount)))
    return parts


@checked_arguments
def replay_payment(existing: Payment, *, idempotency_key: str, fingerprint: str) -> Payment:
    """The payment stored under ``idempotency_key``, if the request now made
    is the same (same fingerprint): the first payment, unchanged.

    The same key with a different request is refused: an
    :class:`~altpay_core.errors.InvariantViolation` (rule ``idempotency``).
    A service looks the key up in its repository and passes what it found to
    :func:`pay_invoices` as ``existing``, which calls this.
    """
    _fields.argument("existing", existing, Payment, "a Payment")
    key = _key("idempotency_key", idempotency_key)
    _fields.argument("fingerprint", fingerprint, str, "a request fingerprint (a string)")
    if existing.idempotency_key != key:
        raise InvariantViolation(
            f"payment {existing.id} was made under another idempotency key",
            rule="idempotency",
            path="idempotency_key",
        )
    if existing.request_fingerprint != fingerprint:
        raise InvariantViolation(
            "this idempotency key was already used for a different payment request; "
            "use a new key for a new payment",
            rule="idempotency",
            path="idempotency_key",
        )
    return existing


# -- paying -------------------------------------------------------------------------------


@checked_arguments
def pay_invoices(
    partner: Partner,
    customer: Customer,
    invoices: Iterable[Invoice],
    *,
    payer: Viewer | str,
    method: PaymentMethodType | PaymentMethod | str,
    idempotency_key: str,
    amounts: Mapping[InvoiceId, Money | str | int | Decimal] | None = None,
    methods: CustomerPaymentMethods | None = None,
    existing: Payment | None = None,
    at: dt.datetime | None = None,
) -> tuple[Payment, tuple[Invoice, ...]]:
    """A customer user pays one or several open invoices of ``customer``.

    Returns the new payment (``processing``) and the invoices it touched, in
    the order given, to be stored together in one unit of work.

    - ``payer`` is the paying :class:`CustomerUser`, its :class:`UserId` or
      the id's text (``"usr_..."``).
    - ``amounts`` maps each invoice's id to the amount paid on it (``Money``
      in the partner's currency, or a decimal string); ``None`` pays every
      invoice's balance in full. Each invoice is named once: an id and its
      text for the same invoice are refused (``duplicate``). A key names an
      invoice by its text alone (a subclass of ``str`` is read as its plain
      text, never by its own ``__eq__`` or ``__hash__``).
    - ``method`` is a :class:`PaymentMethodType` (or its value), or a saved
      :class:`PaymentMethod`, which must be on file for ``customer`` and
      active: then ``methods``, the customer's :class:`CustomerPaymentMethods`,
      is required, and a method not among them is refused
      (``InvariantViolation``, I1).
    - ``existing``: the payment the repository holds under
      ``idempotency_key``, if any. The same request returns it with no
      invoices to store; a different one is refused (:func:`replay_payment`).
      A key beginning with ``scheduled:`` is refused (``reserved_key``): those
      are the runs of scheduled payments.

    Refused: a payer who is not a user of the invoices' customer, a
    read-only impersonation, archived customers or invoices
    (``PermissionDenied``, I1); an invoice that is not open (I4); an amount
    above the balance (I5); an amount not above zero or in another currency
    (``ValidationError``, I2); a bank debit of another country's currency;
    an invoice that still holds a card fee line, stored before the invoices'
    commands refused one, by any method (I8, at ``invoices[i]``: remove the
    line first). A card payment carries the card fee (I8), shared across the
    invoices so that the shares sum exactly (I9).

    ``at`` (now if omitted) is the payment's ``created_at`` and the time of
    the invoices' ``invoice_updated`` / ``invoice_paid`` events.
    """
    when = _when(at)
    _refuse_other_partner(partner, customer)
    user_id = _payer(customer, payer)
    found = FieldErrors()
    key = found.check("", _key, "idempotency_key", idempotency_key)
    if key is not None and key.startswith(_RUN_KEY) and not _RUNNING.get():
        found.add(
            "idempotency_key",
            "reserved_key",
            f"'idempotency_key' may not begin with {_RUN_KEY!r}: those keys are the "
            "scheduled payments' own",
        )
    chosen = found.check("", _method, "method", method)
    chosen_invoices = found.check("", _invoice_list, invoices)
    if methods is not None and not isinstance(methods, CustomerPaymentMethods):
        # Checked whatever the method: else a wrong value passes unseen
        # whenever the method is a type rather than a saved method.
        found.add(
            "methods",
            "wrong_type",
            "'methods' must be the customer's CustomerPaymentMethods or None "
            f"(got {type(methods).__name__})",
        )
    found.raise_if_any()
    key, chosen_invoices = _fields.passed(key), _fields.passed(chosen_invoices)
    kind, method_id = _fields.passed(chosen)
    currency = partner.currency
    for invoice in chosen_invoices:
        if invoice.customer_id != customer.id:
            # Before anything is said of it (its currency, its balance): it
            # is another customer's, named by the id the caller gave (I1).
            raise PermissionDenied(role="customer user", action=f"pay invoice {invoice.id}")
    for index, invoice in enumerate(chosen_invoices):
        if invoice.currency != currency:
            found.add(
                f"invoices[{index}]",
                "currency_mismatch",
                f"'invoices[{index}]' must be in {currency.code}, the partner's currency "
                f"(invoice {invoice.id} is in {invoice.currency.code}; rule I2)",
            )
    found.raise_if_any()
    wanted = _requested(chosen_invoices, amounts, currency)
    fingerprint = request_fingerprint(
        customer_id=customer.id,
        user_id=user_id,
        method=kind,
        payment_method_id=method_id,
        currency=currency,
        amounts=((invoice.id, wanted[invoice.id]) for invoice in chosen_invoices),
    )
    if existing is not None:
        if not isinstance(existing, Payment):
            raise ValidationError.single(
                "existing",
                "wrong_type",
                f"'existing' must be a Payment or None (got {type(existing).__name__})",
            )
        return replay_payment(existing, idempotency_key=key, fingerprint=fingerprint), ()
    # After the replay: a retry returns its payment though the method it
    # named has been archived since.
    if isinstance(method, PaymentMethod):
        _on_file(method, methods, customer)
    for invoice in chosen_invoices:
        require_pay(invoice, customer, user_id)
    if not kind.available_in(currency):
        raise ValidationError.single("method", "method_unavailable", _unavailable(kind, currency))
    payment_id = PaymentId.new()
    touched: list[Invoice] = []
    parts: list[Money] = []
    for index, invoice in enumerate(chosen_invoices):
        requested = wanted[invoice.id]
        amount = invoice.balance if requested is None else requested
        try:
            touched.append(invoice._apply_payment(payment_id, amount, at=when))
        except ValidationError as error:
            raise error.under(f"amounts[{invoice.id}]") from None
        except InvariantViolation as error:
            # Named as the caller gave it: an amount too high at its key, an
            # invoice not open (I4: void, paid or archived since it was
            # chosen) at its place in the list.
            if error.path == "amount":
                error.path = f"amounts[{invoice.id}]"
            elif error.path == "status":
                error.path = f"invoices[{index}]"
            raise
        _refuse_card_fee_line(invoice, f"invoices[{index}]")
        parts.append(amount)
    fee = _card_fee_on(partner, customer, parts, kind, currency)
    shares = (
        split_card_fee(fee.amount, parts)
        if fee is not None
        else [Money.zero(currency)] * len(parts)
    )
    payment = Payment(
        id=payment_id,
        partner_id=partner.id,
        customer_id=customer.id,
        user_id=user_id,
        method=kind,
        currency=currency,
        allocations=tuple(
            Allocation(invoice.id, amount, share)
            for invoice, amount, share in zip(chosen_invoices, parts, shares, strict=True)
        ),
        fees=() if fee is None else (fee,),
        idempotency_key=key,
        request_fingerprint=fingerprint,
        payment_method_id=method_id,
        created_at=when,
    )
    return payment, tuple(touched)


def _card_fee_on(
    partner: Partner,
    customer: Customer,
    parts: list[Money],
    kind: PaymentMethodType,
    currency: Currency,
) -> Fee | None:
    """The card fee on what the parts come to; an ``amount_too_large`` error
    at ``amounts`` when they, or they and a card fee passed on (what the
    payer is charged), come to too much to be money."""
    try:
        total = Money.sum(parts, currency)
        fee = card_fee_for(partner, customer, total, kind)
        if fee is not None and fee.covered_by_customer:
            total + fee.amount
    except ValidationError as error:
        if error.codes != ["amount_too_large"]:  # pragma: no cover - sums raise nothing else
            raise
        raise _too_large("amounts", comes_to="add up to") from None
    return fee


def _payer(customer: Customer, payer: object) -> UserId:
    if isinstance(payer, Impersonation):
        raise PermissionDenied(role="read-only impersonation", action="pay invoices")
    if isinstance(payer, str) and str.startswith(payer, f"{TeamMemberId.prefix}_"):
        # A team member's id as text is a team member's id, as the object is.
        payer = _payer_id(payer, TeamMemberId)
    if isinstance(payer, TeamMember | TeamMemberId):
        # Partner staff are not the customer's users (I1).
        raise PermissionDenied(role="team member", action=f"pay invoices of {customer.id}")
    if isinstance(payer, CustomerUser):
        user_id = payer.id
    elif isinstance(payer, UserId | str):
        user_id = _payer_id(payer, UserId)
    else:
        raise ValidationError.single(
            "payer",
            "wrong_type",
            f"'payer' must be a CustomerUser or a user id, or its text "
            f"(got {type(payer).__name__})",
        )
    if not any(user.id == user_id for user in customer.users):
        # Named by its id, which the caller gave: its name is for its users.
        raise PermissionDenied(role="customer user", action=f"pay invoices of {customer.id}")
    if not customer.is_active:
        raise PermissionDenied(role="customer user", action=f"pay invoices of {customer.company}")
    return user_id


def _payer_id(value: object, kind: type[_fields.IdT]) -> _fields.IdT:
    """A ``payer`` given as an id's text. A malformed one is never shown, as
    a malformed ``method_id`` is not: it may be a card number given in the
    wrong place."""
    with input_unshown():
        return _fields.entity_id("payer", value, kind)


def _method(path: str, value: object) -> tuple[PaymentMethodType, PaymentMethodId | None]:
    if isinstance(value, PaymentMethod):
        return value.type, value.id
    return _method_type(path, value), None


def _method_type(path: str, value: object) -> PaymentMethodType:
    """A kind of method, given as itself or its value. Its error never shows
    what came, as a saved method's ``type`` does not: it may be a card or
    account number given in the wrong place."""
    kind = known_method_type(value)
    if kind is not None:
        return kind
    with input_unshown():
        return _fields.choice(path, value, PaymentMethodType)


def _on_file(
    method: PaymentMethod, methods: CustomerPaymentMethods | None, customer: Customer
) -> None:
    """A saved method must be one of the paying customer's, as their
    methods hold it now, and active (I1, method on file). ``methods`` is
    None or the methods (pay_invoices checked its type)."""
    if methods is None:
        raise ValidationError.single(
            "methods",
            "missing",
            "'methods' is required to pay with a saved payment method: the customer's "
            "CustomerPaymentMethods, to check that the method is on file",
        )
    if methods.customer_id != customer.id or methods.partner_id != customer.partner_id:
        raise InvariantViolation(
            f"these payment methods are not {customer.company}'s",
            rule="I1",
            path="methods",
        )
    # The customer's methods as they hold it, not the copy given: the same id
    # and details, and its status as it is now.
    on_file = next((m for m in methods.methods if m.id == method.id), None)
    if on_file is None or attrs.evolve(on_file, status=method.status) != method:
        raise InvariantViolation(
            f"{method.label} is not a payment method on file for {customer.company}",
            rule="I1",
            path="method",
        )
    if not on_file.is_active:
        raise InvariantViolation(
            f"{on_file.label} is archived: choose another payment method",
            rule="payment-method",
            path="method",
        )


def _refuse_card_fee_line(invoice: Invoice, path: str) -> None:
    """I8: an invoice that still holds a card fee line (stored before the
    invoices' commands refused them) is paid by no method: by a bank debit
    it would charge a card fee, by card a second one. The refusal is at
    ``path``, the argument that gave the invoice."""
    line = next((fee for fee in invoice.fees if fee.kind is FeeKind.CARD), None)
    if line is not None:
        raise InvariantViolation(
            f"invoice {invoice.number} holds a card fee line ({line.name}, {line.amount}): "
            "remove the card fee line first; a card payment carries its own card fee, "
            "and a bank debit carries none",
            rule="I8",
            path=path,
        )


def _invoice_list(value: object) -> tuple[Invoice, ...]:
    chosen = _fields.listed("invoices", value)
    found = FieldErrors()
    seen: set[InvoiceId] = set()
    for index, invoice in enumerate(chosen):
        if not isinstance(invoice, Invoice):
            found.add(f"invoices[{index}]", "wrong_type", f"'invoices[{index}]' must be an Invoice")
        elif invoice.id in seen:
            found.add(
                f"invoices[{index}]",
                "duplicate",
                f"'invoices[{index}]': invoice {invoice.id} is listed twice",
            )
        else:
            seen.add(invoice.id)
    if not chosen:
        found.add("invoices", "empty", "'invoices' must hold at least one invoice")
    found.raise_if_any()
    return chosen


def _requested(
    invoices: tuple[Invoice, ...],
    amounts: Mapping[InvoiceId, object] | None,
    currency: Currency,
) -> dict[InvoiceId, Money | None]:
    if amounts is None:
        return {invoice.id: None for invoice in invoices}
    if not isinstance(amounts, Mapping):
        raise ValidationError.single(
            "amounts",
            "wrong_type",
            f"'amounts' must map invoice ids to amounts (got {type(amounts).__name__})",
        )
    found = FieldErrors()
    by_text: dict[str, object] = {}
    for key, value in amounts.items():
        text = key_text(key)
        if text in by_text:
            # An id and its text name the same invoice: which amount is meant?
            found.add(
                f"amounts[{text}]",
                "duplicate",
                f"'amounts[{text}]': invoice {text} is named twice in 'amounts'",
            )
        by_text[text] = value
    wanted: dict[InvoiceId, Money | None] = {}
    for invoice in invoices:
        path = f"amounts[{invoice.id}]"
        if str(invoice.id) not in by_text:
            found.add(path, "missing", f"'{path}' is required: how much of invoice {invoice.id}")
            continue
        wanted[invoice.id] = found.check(
            "", _positive_money_in, path, by_text.pop(str(invoice.id)), currency
        )
    for text in by_text:
        found.add(
            f"amounts[{text}]",
            "unknown_invoice",
            f"'amounts[{text}]' names an invoice that is not being paid",
        )
    found.raise_if_any()
    return wanted


# -- giving balances back -----------------------------------------------------------------


def _release(
    payment: Payment, invoices: Iterable[Invoice], when: dt.datetime
) -> tuple[Invoice, ...]:
    given = _fields.listed("invoices", invoices)
    wanted = set(payment.invoice_ids)
    seen: set[InvoiceId] = set()
    found = FieldErrors()
    for index, invoice in enumerate(given):
        if not isinstance(invoice, Invoice) or invoice.id not in wanted or invoice.id in seen:
            found.add(
                f"invoices[{index}]",
                "unrelated_invoice",
                f"'invoices[{index}]' must be one of the invoices this payment pays, once",
            )
            continue
        seen.add(invoice.id)
        # The invoice as stored now holds the part: a copy from before the
        # payment, or from after it was given back, is out of date.
        if not any(p.payment_id == payment.id and not p.released for p in invoice.payments):
            found.add(
                f"invoices[{index}]",
                "stale_invoice",
                f"'invoices[{index}]' must hold this payment's part, not yet given back: "
                f"invoice {invoice.number} does not (an out-of-date copy? load it again)",
            )
    left_out = [str(invoice_id) for invoice_id in payment.invoice_ids if invoice_id not in seen]
    if left_out:
        found.add(
            "invoices",
            "missing_invoice",
            f"'invoices' must hold every invoice this payment pays (missing {', '.join(left_out)})",
        )
    found.raise_if_any()
    return tuple(invoice._release_payment(payment.id, at=when) for invoice in given)


@checked_arguments
def fail_payment(
    payment: Payment, invoices: Iterable[Invoice], *, at: dt.datetime | None = None
) -> tuple[Payment, tuple[Invoice, ...]]:
    """A processing payment failed: declined, or rejected by the bank (I6).

    ``processing`` -> ``failed`` (``payment_failed``); every invoice it pays
    gets its part back (a paid one is open again). A bank debit records the
    standard return fee (15.00) against the partner; a declined card, none.
    ``invoices`` are the invoices it pays, all of them, each once (one left
    out: ``missing_invoice`` at ``invoices``), as they are now, holding the
    payment's part (an out-of-date copy: ``stale_invoice`` at
    ``invoices[i]``). ``at`` is now if omitted; the invoices' events carry it.
    """
    _fields.argument("payment", payment, Payment, "a Payment")
    when = _when(at)
    if payment.status is not PaymentStatus.PROCESSING:
        raise InvariantViolation(
            f"only a processing payment fails (this one is {payment.status.value}); "
            "a bank debit that already succeeded is returned instead",
            rule="I6",
            path="status",
        )
    fee = FeeKind.RETURN if payment.method.is_bank_debit else None
    new = payment._closed(PaymentStatus.FAILED, fee, STANDARD_RETURN_FEE, PaymentFailed, when)
    return new, _release(payment, invoices, new.events[-1].occurred_at)


@checked_arguments
def return_payment(
    payment: Payment,
    invoices: Iterable[Invoice],
    kind: ReturnKind | str = ReturnKind.STANDARD,
    *,
    at: dt.datetime | None = None,
) -> tuple[Payment, tuple[Invoice, ...]]:
    """The bank returned a debit (ACH, PAD or EFT), processing or succeeded,
    settled or not (I6).

    A standard return fails the payment (``payment_failed``) and records
    15.00; an unauthorised one is a chargeback (``payment_chargeback``) and
    records 25.00. Either way the fee is the partner's and every invoice gets
    its part back. A card payment is disputed instead
    (:func:`charge_back_payment`). ``at`` is now if omitted; the invoices'
    events carry it.
    """
    _fields.argument("payment", payment, Payment, "a Payment")
    when = _when(at)
    why = _fields.choice("kind", kind, ReturnKind)
    if not payment.method.is_bank_debit:
        raise InvariantViolation(
            "a card payment is not returned by a bank; a dispute is a chargeback",
            rule="I6",
            path="method",
        )
    if not payment.holds_balance:
        raise InvariantViolation(
            f"only a processing or succeeded payment is returned (this one is "
            f"{payment.status.value})",
            rule="I6",
            path="status",
        )
    if why is ReturnKind.STANDARD:
        new = payment._closed(
            PaymentStatus.FAILED, FeeKind.RETURN, STANDARD_RETURN_FEE, PaymentFailed, when
        )
    else:
        new = payment._closed(
            PaymentStatus.CHARGED_BACK,
            FeeKind.UNAUTHORIZED_RETURN,
            UNAUTHORIZED_RETURN_FEE,
            PaymentChargeback,
            when,
        )
    return new, _release(payment, invoices, new.events[-1].occurred_at)


@checked_arguments
def charge_back_payment(
    payment: Payment, invoices: Iterable[Invoice], *, at: dt.datetime | None = None
) -> tuple[Payment, tuple[Invoice, ...]]:
    """The cardholder disputed a succeeded card payment (I6).

    ``succeeded`` -> ``charged_back`` (``payment_chargeback``); the dispute
    fee (25.00) is the partner's and every invoice gets its part back. A
    bank debit is returned instead (:func:`return_payment`, unauthorised).
    ``at`` is now if omitted; the invoices' events carry it.
    """
    _fields.argument("payment", payment, Payment, "a Payment")
    when = _when(at)
    if payment.method.is_bank_debit:
        raise InvariantViolation(
            "a bank debit is not disputed like a card: record an unauthorised return",
            rule="I6",
            path="method",
        )
    if payment.status is not PaymentStatus.SUCCEEDED:
        raise InvariantViolation(
            f"only a succeeded card payment is disputed (this one is {payment.status.value})",
            rule="I6",
            path="status",
        )
    new = payment._closed(
        PaymentStatus.CHARGED_BACK, FeeKind.DISPUTE, CARD_DISPUTE_FEE, PaymentChargeback, when
    )
    return new, _release(payment, invoices, new.events[-1].occurred_at)


@checked_arguments
def refund_payment(
    payment: Payment,
    invoices: Iterable[Invoice],
    *,
    amount: Money | str | int | Decimal | None = None,
    at: dt.datetime | None = None,
    partner: Partner | None = None,
    by: TeamMemberId | TeamMember | None = None,
) -> tuple[Payment, tuple[Invoice, ...]]:
    """Refund a succeeded, settled payment in full (I7): ``refunded``
    (``payment_refunded``), and every invoice gets its part back.

    A refund the partner takes in its dashboard names the team member who
    asks, ``by``, and ``partner``, the payment's (``partner`` missing:
    ``ValidationError`` at ``partner``; another partner's payment is not
    found): their role must allow refunding payments (Admin and Sub-Admin;
    else ``PermissionDenied``), checked before anything else. Without ``by``
    the refund runs as the system (the processor's, say), and only a
    ``partner`` given is checked to be the payment's.

    The refund is the payment's :attr:`~Payment.total`, in its currency: what
    the customer was charged. ``amount``, if given, must be exactly that
    (no partial refunds): a ``Money`` in the payment's currency, or a str,
    int or ``Decimal`` read in it (``"400.00"``), as the other amount
    arguments are; another currency, a float or anything else is refused
    (``ValidationError`` at ``amount``).
    The card fee is not returned by the processor: it stays with the partner
    (:attr:`~Payment.partner_fees`). ``at`` (now if omitted) may not be
    before ``settled_at`` (I7: only once settled); the invoices' events
    carry it.
    """
    _fields.argument("payment", payment, Payment, "a Payment")
    _authorize_refund(payment, partner, by)
    when = _when(at)
    wanted = (
        None
        if amount is None
        else _money_in("amount", amount, payment.currency, "the payment's currency", "I7")
    )
    if payment.status is not PaymentStatus.SUCCEEDED:
        raise InvariantViolation(
            f"only a succeeded payment is refunded (this one is {payment.status.value})",
            rule="I7",
            path="status",
        )
    if not payment.is_settled:
        raise InvariantViolation(
            "a payment is refunded only once it has settled", rule="I7", path="settled_at"
        )
    if wanted is not None and wanted != payment.total:
        raise InvariantViolation(
            f"refunds are in full only: {payment.total}, not {wanted}",
            rule="I7",
            path="amount",
        )
    # I7: a refund only once the payment has settled, so not at a time before.
    settled = payment.settled_at
    if settled is not None and when < settled:
        raise InvariantViolation(
            f"'at' ({when.isoformat()}) is before this payment settled "
            f"({settled.isoformat()}): it is refunded only once it has settled",
            rule="I7",
            path="at",
        )
    new = payment._closed(PaymentStatus.REFUNDED, None, Decimal(0), PaymentRefunded, when)
    return new, _release(payment, invoices, new.events[-1].occurred_at)


def _authorize_refund(
    payment: Payment, partner: Partner | None, by: TeamMemberId | TeamMember | None
) -> None:
    """With ``by``, the team member of ``partner`` (this payment's) who asks:
    their role must allow refunding payments. Without it the refund runs as
    the system, and only a ``partner`` given is checked to be the payment's."""
    _authorize_by(
        partner,
        by,
        owner=payment.partner_id,
        action=Action.REFUND_PAYMENTS,
        missing=NotFound("payment", payment.id),
    )


# -- saved payment methods ----------------------------------------------------------------


class PaymentMethodStatus(_fields.Choices, enum.Enum):
    """Whether a saved method may be used."""

    ACTIVE = "active"
    ARCHIVED = "archived"
    """Deleted by the customer, or replaced by a new one; kept as history."""


_LAST4: Final = re.compile(r"[0-9]{4}")
_DISPLAY_MAX: Final = 50


def _method_id(value: object) -> PaymentMethodId:
    """A ``method_id`` argument. Its error never shows what came: it may be
    a card or account number given in the wrong place."""
    with input_unshown():
        return _fields.entity_id("method_id", value, PaymentMethodId)


def _last4(path: str, value: object) -> str:
    # Never echo what came: it may be a whole card or account number.
    if not isinstance(value, str):
        raise ValidationError.single(
            path,
            "wrong_type",
            f"'{path}' must be a string of 4 digits (got {type(value).__name__})",
        )
    value = _fields.plain_str(value)  # kept as a plain str, never a subclass
    if not _LAST4.fullmatch(value):
        raise ValidationError.single(
            path,
            "invalid_last4",
            f"'{path}' must be exactly the last 4 digits of the card or account number "
            f"(got {len(value)} characters; the value is not shown). "
            "Never send a full number",
        )
    return value


def _display_name(path: str, value: object) -> str:
    # Every digit counts, whatever separates them ("4242/4242/...") and in
    # any script (full-width digits too): at most the last 4 may be shown.
    text = _fields.required_text(path, value, max_length=_DISPLAY_MAX)
    if may_hold_number(text):
        raise ValidationError.single(
            path,
            "looks_like_number",
            f"'{path}' must not hold a card or account number (it has more than "
            f"{SHOWN_DIGITS} digits; the value is not shown): give the brand or "
            "bank, and the last 4 digits in 'last4'",
        )
    return text


@checked_constructor
@attrs.frozen(kw_only=True)
class PaymentMethod:
    """A card or bank account a customer saved: its kind, a display name
    (``Visa``, ``Chase checking``) and the last 4 digits, never more.

    Its details are not editable: replace it with a new one
    (:meth:`CustomerPaymentMethods.replace`), which archives this one.

    >>> m = PaymentMethod(id=PaymentMethodId("pm_1"), type=PaymentMethodType.CARD,
    ...                   display_name="Visa", last4="4242")
    >>> m.label
    'Visa ending in 4242'
    """

    id: PaymentMethodId
    type: PaymentMethodType
    display_name: str = attrs.field(converter=_strip)
    last4: str
    status: PaymentMethodStatus = PaymentMethodStatus.ACTIVE
    added_at: dt.datetime = attrs.field(factory=utc_now)

    def __attrs_post_init__(self) -> None:
        found = FieldErrors()
        with input_unshown():  # a full number in any field is never echoed
            _require_type(found, "id", self.id, PaymentMethodId, "a payment method id")
            _to_member(found, self, "type", PaymentMethodType)
            found.check("", _display_name, "display_name", self.display_name)
            _fields.keep_checked(found, self, "last4", _last4)
            _to_member(found, self, "status", PaymentMethodStatus)
            _fields.keep_checked(found, self, "added_at", _fields.aware_datetime)
        found.raise_if_any()

    @property
    def is_active(self) -> bool:
        """Whether the method can still be used (it is not archived)."""
        return self.status is PaymentMethodStatus.ACTIVE

    @property
    def label(self) -> str:
        """How the method is shown: ``Visa ending in 4242``."""
        return f"{self.display_name} ending in {self.last4}"


@checked_constructor
@attrs.frozen(kw_only=True)
class CustomerPaymentMethods:
    """A customer's saved payment methods and which one is the default.

    While any method is active, exactly one of them is the default; with
    none, there is no default. Methods are added, archived (the product's
    delete) or replaced, never edited. Commands carry the events
    ``payment_method_added``, ``payment_method_deleted`` and
    ``default_payment_method_changed`` (the aggregate's id is the customer's).

    A book knows its customer, not the currency the customer is billed in
    (its partner's, which the customer's country does not decide: a US
    partner may bill in CAD), so ``add`` and ``replace`` take any type. That
    a method fits the currency (cards any; ACH USD; PAD and EFT CAD) is
    checked when it is used: :func:`schedule_payment`, :func:`charge_now`
    and a scheduled payment's run refuse one that does not
    (``method_unavailable`` at ``method_id``, else ``methods``), as
    :func:`pay_invoices` does at its ``method``. Check
    :meth:`PaymentMethodType.available_in` with the partner's currency
    before adding a method, so that one that can never be used does not
    become the default.

    A command's time ``at`` (now if omitted) is taken as given for
    ``added_at``; its events carry it too, never earlier than when the
    method concerned was added nor than the latest event pending, so that
    ``events`` stays oldest first.
    """

    partner_id: PartnerId
    customer_id: CustomerId
    methods: tuple[PaymentMethod, ...] = attrs.field(default=(), converter=_fields.list_as_tuple)
    default_id: PaymentMethodId | None = None
    version: int = 0
    events: tuple[Event, ...] = _events_field()

    def __attrs_post_init__(self) -> None:
        found = FieldErrors()
        _require_type(found, "partner_id", self.partner_id, PartnerId, "a partner id")
        _require_type(found, "customer_id", self.customer_id, CustomerId, "a customer id")
        ok = isinstance(self.methods, tuple)
        if not ok:
            found.add("methods", "wrong_type", "'methods' must be a list")
        else:
            for index, method in enumerate(self.methods):
                if not isinstance(method, PaymentMethod):
                    found.add(
                        f"methods[{index}]",
                        "wrong_type",
                        f"'methods[{index}]' must be a PaymentMethod (got {type(method).__name__})",
                    )
                    ok = False
        default_ok = self.default_id is None or _require_type(
            found, "default_id", self.default_id, PaymentMethodId, "an id"
        )
        _fields.keep_checked(found, self, "version", _fields.version_number)
        # Among the field errors when fields are also at fault; it needs the
        # methods and the default to be such.
        broken = self._methods_rule() if ok and default_ok else None
        _fields.note_rule(found, broken)
        _fields.raise_rule_alone(found, broken)

    def _methods_rule(self) -> InvariantViolation | None:
        """What the rule of saved methods says of these, or None when they
        keep it: ids unique, and exactly one active method the default while
        any is active."""
        ids = [method.id for method in self.methods]
        if len(set(ids)) != len(ids):
            return InvariantViolation(
                "payment method ids must be unique", rule="payment-method", path="methods"
            )
        active = [method.id for method in self.methods if method.is_active]
        if (self.default_id is None) != (not active) or (
            self.default_id is not None and self.default_id not in active
        ):
            return InvariantViolation(
                "while any payment method is active, exactly one active method is the "
                "default; with none, there is no default",
                rule="payment-method",
                path="default_id",
            )
        return None

    @classmethod
    @checked_arguments
    def of(cls, customer: Customer) -> CustomerPaymentMethods:
        """No saved methods yet, for ``customer``."""
        _fields.argument("customer", customer, Customer, "a Customer")
        return cls(partner_id=customer.partner_id, customer_id=customer.id)

    # -- reading ------------------------------------------------------------------

    @property
    def active(self) -> tuple[PaymentMethod, ...]:
        """The methods that may be used, oldest first."""
        return tuple(method for method in self.methods if method.is_active)

    @property
    def default(self) -> PaymentMethod | None:
        """The default method, or ``None`` when no method is on file."""
        if self.default_id is None:
            return None
        return self.method(self.default_id)

    @checked_arguments
    def method(self, method_id: PaymentMethodId | str) -> PaymentMethod:
        """The method with that id (a ``PaymentMethodId`` or its text), active
        or archived (``NotFound`` otherwise, which gives the id's length only,
        its ``key`` empty: it may be a card number wrapped in ``pm_...``)."""
        method_id = _method_id(method_id)
        for method in self.methods:
            if method.id == method_id:
                return method
        with input_unshown():
            raise NotFound("payment method", method_id)

    @checked_arguments
    def require_default(self, purpose: str) -> PaymentMethod:
        """The default method, or an :class:`~altpay_core.errors.InvariantViolation`
        that says ``purpose`` needs a method on file (rule ``method-on-file``)."""
        _fields.required_text("purpose", purpose)
        default = self.default
        if default is None:
            raise _no_method(purpose)
        return default

    # -- commands -----------------------------------------------------------------

    @checked_form
    def add(
        self,
        *,
        type: PaymentMethodType | str,
        display_name: str,
        last4: str,
        make_default: bool = False,
        at: dt.datetime | None = None,
    ) -> CustomerPaymentMethods:
        """Save a method (``payment_method_added``). The first one becomes the
        default, as does one added with ``make_default``
        (``default_payment_method_changed``). Every invalid field is reported
        at once, ``at`` among them; the last 4 digits only, never a full
        number. Whether the
        type fits the customer's currency is not checked here: see the
        class's notes."""
        found = FieldErrors()
        with input_unshown():  # a full number in any field is never echoed
            checked_at = found.check("", _when, at)
            kind = found.check("", _fields.choice, "type", type, PaymentMethodType)
            name = found.check("", _display_name, "display_name", display_name)
            digits = found.check("", _last4, "last4", last4)
            found.check("", _fields.boolean, "make_default", make_default)
        found.raise_if_any()
        when = _fields.passed(checked_at)
        method = PaymentMethod(
            id=PaymentMethodId.new(),
            type=_fields.passed(kind),
            display_name=_fields.passed(name),
            last4=_fields.passed(digits),
            added_at=when,
        )
        default = method.id if make_default or self.default_id is None else self.default_id
        new = attrs.evolve(self, methods=(*self.methods, method), default_id=default)
        return self._changed(new, when, method, added=True, deleted=False)

    @checked_arguments
    def archive(
        self, method_id: PaymentMethodId | str, *, at: dt.datetime | None = None
    ) -> CustomerPaymentMethods:
        """Archive a method (``payment_method_deleted``). If it was the
        default, the most recently added active method (by ``added_at``; of
        two added at the same time, the later in ``methods``) becomes the
        default, or there is none left (``default_payment_method_changed``). Archiving an
        archived method changes nothing."""
        when = _when(at)
        target = self.method(method_id)
        if not target.is_active:
            return self
        methods = tuple(
            attrs.evolve(m, status=PaymentMethodStatus.ARCHIVED) if m is target else m
            for m in self.methods
        )
        default = self.default_id
        if default == target.id:
            remaining = [m for m in methods if m.is_active]
            # max keeps the first of equals: read from the end, a tie goes
            # to the one later in the list.
            latest = max(reversed(remaining), key=lambda m: m.added_at, default=None)
            default = None if latest is None else latest.id
        new = attrs.evolve(self, methods=methods, default_id=default)
        return self._changed(new, when, target, added=False, deleted=True)

    @checked_form
    def replace(
        self,
        method_id: PaymentMethodId | str,
        *,
        type: PaymentMethodType | str,
        display_name: str,
        last4: str,
        at: dt.datetime | None = None,
    ) -> CustomerPaymentMethods:
        """A new method in place of ``method_id``, which is archived (details
        are never edited). The new one is the default if the old one was.
        Every invalid field of the new one is reported at once, ``at``
        among them, as by :meth:`add`."""
        old = self.method(method_id)
        if not old.is_active:
            raise InvariantViolation(
                f"{old.label} is already archived", rule="payment-method", path="method_id"
            )
        added = self.add(
            type=type,
            display_name=display_name,
            last4=last4,
            make_default=self.default_id == old.id,
            at=at,
        )
        return added.archive(method_id, at=at)

    @checked_arguments
    def set_default(
        self, method_id: PaymentMethodId | str, *, at: dt.datetime | None = None
    ) -> CustomerPaymentMethods:
        """Make an active method the default (``default_payment_method_changed``)."""
        when = _when(at)
        target = self.method(method_id)
        if not target.is_active:
            raise InvariantViolation(
                f"{target.label} is archived and cannot be the default",
                rule="payment-method",
                path="method_id",
            )
        if self.default_id == target.id:
            return self
        return self._changed(
            attrs.evolve(self, default_id=target.id), when, target, added=False, deleted=False
        )

    def _changed(
        self,
        new: CustomerPaymentMethods,
        when: dt.datetime,
        method: PaymentMethod,
        *,
        added: bool,
        deleted: bool,
    ) -> CustomerPaymentMethods:
        # Events stay oldest first, as a payment's and an invoice's do: a
        # time before the method each concerns was added (this one; for a
        # new default, that one too), or before the pending events, counts
        # as the latest of those.
        events: list[Event] = []
        common: dict[str, Any] = {
            "partner_id": self.partner_id,
            "aggregate_id": str(self.customer_id),
            "occurred_at": max((when, method.added_at, *(e.occurred_at for e in self.events))),
        }
        if added:
            events.append(PaymentMethodAdded(changes=("methods",), **common))
        if deleted:
            events.append(PaymentMethodDeleted(changes=("methods",), **common))
        if new.default_id != self.default_id:
            if new.default is not None:
                common["occurred_at"] = max(common["occurred_at"], new.default.added_at)
            events.append(DefaultPaymentMethodChanged(changes=("default_id",), **common))
        return _with_events(new, self, *events)


def _fee_name(kind: FeeKind, method: PaymentMethodType) -> str:
    """A bank return's fee is named after the payment's method ("PAD return
    fee"); other fees after their kind. A name is not checked on read, so a
    payment stored with another name reads back as it was."""
    if kind is FeeKind.RETURN:
        return f"{method.value.upper()} return fee"
    if kind is FeeKind.UNAUTHORIZED_RETURN:
        return f"Unauthorized {method.value.upper()} return fee"
    return kind.label


def _chosen_at(method_id: object) -> str:
    """Where a saved method chosen by the caller is named: ``method_id``, or,
    for the default of the customer's methods, ``methods``."""
    return "methods" if method_id is None else "method_id"


def _no_method(purpose: str, path: str = "methods") -> InvariantViolation:
    return InvariantViolation(
        f"no payment method on file: {purpose} needs one; add a card or bank account first",
        rule="method-on-file",
        path=path,
    )


@checked_arguments
def method_on_file(
    methods: CustomerPaymentMethods | None,
    customer: Customer,
    *,
    purpose: str,
    method_id: PaymentMethodId | str | None = None,
) -> PaymentMethod:
    """The method to use for ``purpose`` (``"auto-pay"``, ``"charging now"``,
    ``"a scheduled payment"``): ``method_id`` if given and active, else the
    default. With none on file, an
    :class:`~altpay_core.errors.InvariantViolation` (rule ``method-on-file``)
    says so: nothing runs without a method. Its refusals are at the argument
    the method came from: ``method_id`` when one is given (none on file; an
    archived method: rule ``payment-method``), else ``methods``. Methods that
    are not the customer's (another customer's: rule ``I1``) are always at
    ``methods``, whether or not ``method_id`` is given, as is a ``methods``
    that is no ``CustomerPaymentMethods``; a ``method_id`` that names no
    method of the book is ``NotFound``.
    """
    _fields.argument("customer", customer, Customer, "a Customer")
    _fields.required_text("purpose", purpose)
    if method_id is not None:  # a malformed id is one, whatever is on file
        method_id = _method_id(method_id)
    if methods is None:
        raise _no_method(purpose, _chosen_at(method_id))
    if not isinstance(methods, CustomerPaymentMethods):
        raise ValidationError.single(
            "methods",
            "wrong_type",
            "'methods' must be the customer's CustomerPaymentMethods or None "
            f"(got {type(methods).__name__})",
        )
    if methods.customer_id != customer.id:
        raise InvariantViolation(
            f"these payment methods are not {customer.company}'s",
            rule="I1",
            path="methods",
        )
    if method_id is None:
        return methods.require_default(purpose)
    chosen = methods.method(method_id)
    if not chosen.is_active:
        raise InvariantViolation(
            f"{chosen.label} is archived: choose another payment method",
            rule="payment-method",
            path="method_id",
        )
    return chosen


@checked_arguments
def charge_now(
    partner: Partner,
    customer: Customer,
    invoices: Iterable[Invoice],
    *,
    payer: Viewer | str,
    methods: CustomerPaymentMethods | None,
    idempotency_key: str,
    amounts: Mapping[InvoiceId, Money | str | int | Decimal] | None = None,
    method_id: PaymentMethodId | str | None = None,
    existing: Payment | None = None,
    at: dt.datetime | None = None,
) -> tuple[Payment, tuple[Invoice, ...]]:
    """Pay now with a method on file (the default unless ``method_id``): as
    :func:`pay_invoices`, refused when no method is on file.

    A retry (``existing`` made under the same key) is the same request when
    it names the method the first run charged, or names none: a retry that
    names no method stands for the method the first run charged, whether
    that run named it or took the default, whatever the default is now (or
    with none on file). The invoices, amounts and payer must still match.
    """
    if method_id is not None:
        method_id = _method_id(method_id)
    method = _retried_method(methods, existing, method_id) or method_on_file(
        methods, customer, purpose="charging now", method_id=method_id
    )
    with _fields.argument_renamed("method", _chosen_at(method_id)):
        return pay_invoices(
            partner,
            customer,
            invoices,
            payer=payer,
            method=method,
            idempotency_key=idempotency_key,
            amounts=amounts,
            methods=methods,
            existing=existing,
            at=at,
        )


def _retried_method(
    methods: object, existing: object, method_id: PaymentMethodId | None
) -> PaymentMethod | None:
    """The saved method a retried charge used, if the retry names it or no
    method, and it is still among the customer's (active or archived)."""
    if not isinstance(existing, Payment) or existing.payment_method_id is None:
        return None
    if method_id is not None and method_id != existing.payment_method_id:
        return None
    if not isinstance(methods, CustomerPaymentMethods):
        return None
    try:
        return methods.method(existing.payment_method_id)
    except NotFound:
        return None


# -- scheduled payments -------------------------------------------------------------------


@checked_constructor
class ScheduledPaymentId(EntityId):
    """The id of a scheduled payment: ``sch_...``."""

    __slots__ = ()
    prefix = "sch"
    label = "scheduled payment id"


class ScheduledPaymentStatus(_fields.Choices, enum.Enum):
    """Where a scheduled payment stands."""

    SCHEDULED = "scheduled"
    CANCELED = "canceled"
    PROCESSED = "processed"
    """It ran: ``payment_id`` names the payment it made."""
    SKIPPED = "skipped"
    """Its date came when it could no longer run (:func:`skip_scheduled_payment`):
    nothing was paid."""


@checked_constructor
@attrs.frozen(kw_only=True)
class ScheduledPayment:
    """A customer user's payment of one invoice on a chosen date, with a
    method on file. ``amount`` ``None`` pays the balance on the day.

    An amount is in a currency partners bill in (USD or CAD); that it is the
    invoice's is checked when it is scheduled and again when it runs (I2).

    Made by :func:`schedule_payment`; run by :func:`run_scheduled_payment`.
    """

    id: ScheduledPaymentId
    partner_id: PartnerId
    customer_id: CustomerId
    invoice_id: InvoiceId
    user_id: UserId
    payment_method_id: PaymentMethodId
    pay_on: dt.date
    amount: Money | None = None
    status: ScheduledPaymentStatus = ScheduledPaymentStatus.SCHEDULED
    payment_id: PaymentId | None = None
    created_at: dt.datetime = attrs.field(factory=utc_now)
    version: int = 0
    events: tuple[Event, ...] = _events_field()

    def __attrs_post_init__(self) -> None:
        found = FieldErrors()
        _require_type(found, "id", self.id, ScheduledPaymentId, "a scheduled payment id")
        _require_type(found, "partner_id", self.partner_id, PartnerId, "a partner id")
        _require_type(found, "customer_id", self.customer_id, CustomerId, "a customer id")
        _require_type(found, "invoice_id", self.invoice_id, InvoiceId, "an invoice id")
        _require_type(found, "user_id", self.user_id, UserId, "a user id")
        _require_type(found, "payment_method_id", self.payment_method_id, PaymentMethodId, "an id")
        _fields.keep_checked(found, self, "pay_on", _fields.plain_date)
        if self.amount is not None and _require_type(found, "amount", self.amount, Money, "Money"):
            if not self.amount.is_positive:
                found.add("amount", "not_positive", "'amount' must be greater than zero")
            _refuse_unbilled(found, "amount", self.amount.currency, of="in ")
        _to_member(found, self, "status", ScheduledPaymentStatus)
        payment_ok = self.payment_id is None or _require_type(
            found, "payment_id", self.payment_id, PaymentId, "a payment id"
        )
        _fields.keep_checked(found, self, "created_at", _fields.aware_datetime)
        _fields.keep_checked(found, self, "version", _fields.version_number)
        # Among the field errors when fields are also at fault; checked once
        # the status and the payment have passed.
        broken = None
        if (
            payment_ok
            and isinstance(self.status, ScheduledPaymentStatus)
            and (self.status is ScheduledPaymentStatus.PROCESSED) != (self.payment_id is not None)
        ):
            broken = InvariantViolation(
                "a processed scheduled payment names the payment it made, and only then",
                rule="scheduled-payment",
                path="payment_id",
            )
        _fields.note_rule(found, broken)
        _fields.raise_rule_alone(found, broken)

    @checked_arguments
    def is_due(self, today: dt.date) -> bool:
        """Scheduled, and its date has come (``today`` a date: anything else
        is an ``invalid_date`` error)."""
        day = _fields.plain_date("today", today)
        return self.status is ScheduledPaymentStatus.SCHEDULED and self.pay_on <= day

    @checked_arguments
    def cancel(self) -> ScheduledPayment:
        """Cancel it before it runs; cancelling a cancelled one changes nothing."""
        if self.status is ScheduledPaymentStatus.CANCELED:
            return self
        if self.status is not ScheduledPaymentStatus.SCHEDULED:
            raise InvariantViolation(
                f"this scheduled payment is {self.status.value}: "
                "only one still scheduled can be cancelled",
                rule="scheduled-payment",
                path="status",
            )
        return attrs.evolve(self, status=ScheduledPaymentStatus.CANCELED)


@checked_arguments
def schedule_payment(
    partner: Partner,
    customer: Customer,
    invoice: Invoice,
    *,
    payer: Viewer | str,
    methods: CustomerPaymentMethods | None,
    pay_on: dt.date,
    today: dt.date,
    amount: Money | str | int | Decimal | None = None,
    method_id: PaymentMethodId | str | None = None,
    at: dt.datetime | None = None,
) -> ScheduledPayment:
    """A customer user schedules a payment of ``invoice`` for ``pay_on``.

    Needs a method on file (the default unless ``method_id``), and says so
    when there is none (rule ``method-on-file``). The payer must be allowed
    to pay the invoice (I1), which must be open (I4) and hold no card fee
    line (stored before the invoices' commands refused one: I8, at
    ``invoice``, as :func:`pay_invoices` refuses it); ``pay_on`` may not be
    before ``today``; an ``amount`` is above zero and at most the balance
    (I5). ``None`` pays the balance on the day.
    """
    when = _when(at)
    _refuse_other_partner(partner, customer)
    _fields.argument("invoice", invoice, Invoice, "an Invoice")
    user_id = _payer(customer, payer)
    require_pay(invoice, customer, user_id)
    _refuse_other_currency(partner, invoice)
    method = method_on_file(methods, customer, purpose="a scheduled payment", method_id=method_id)
    if not method.type.available_in(invoice.currency):
        path = _chosen_at(method_id)
        raise ValidationError.single(
            path, "method_unavailable", _unavailable(method.type, invoice.currency, path)
        )
    found = FieldErrors()
    clean_today = found.check("", _fields.plain_date, "today", today)
    clean_day = found.check("", _fields.plain_date, "pay_on", pay_on)
    clean_amount = (
        None
        if amount is None
        else found.check("", _positive_money_in, "amount", amount, invoice.currency)
    )
    found.raise_if_any()
    clean_day = _fields.passed(clean_day)
    if clean_day < _fields.passed(clean_today):
        raise ValidationError.single(
            "pay_on", "in_the_past", f"'pay_on' must be today or later (got {clean_day})"
        )
    _refuse_unless_open(invoice, "invoice")
    if clean_amount is not None and clean_amount > invoice.balance:
        raise InvariantViolation(
            f"{clean_amount} is more than the balance of invoice {invoice.number} "
            f"({invoice.balance}): overpayment is refused",
            rule="I5",
            path="amount",
        )
    # Its run would be refused every night, as pay_invoices refuses it.
    _refuse_card_fee_line(invoice, "invoice")
    return ScheduledPayment(
        id=ScheduledPaymentId.new(),
        partner_id=partner.id,
        customer_id=customer.id,
        invoice_id=invoice.id,
        user_id=user_id,
        payment_method_id=method.id,
        pay_on=clean_day,
        amount=clean_amount,
        created_at=when,
    )


def _check_scheduled_for(
    scheduled: ScheduledPayment, partner: Partner, customer: Customer, invoice: Invoice
) -> None:
    """The arguments of a run or a skip: the customer and the invoice it was
    scheduled for, of ``partner``."""
    _fields.argument("scheduled", scheduled, ScheduledPayment, "a ScheduledPayment")
    _refuse_other_partner(partner, customer)
    _fields.argument("invoice", invoice, Invoice, "an Invoice")
    if invoice.id != scheduled.invoice_id or customer.id != scheduled.customer_id:
        raise ValidationError.single(
            "invoice",
            "unrelated_invoice",
            "'invoice' and 'customer' must be the ones the payment was scheduled for",
        )


def _refuse_unless_due(scheduled: ScheduledPayment, today: object) -> None:
    """Still scheduled, and its date has come."""
    day = _fields.plain_date("today", today)
    if scheduled.status is not ScheduledPaymentStatus.SCHEDULED:
        raise InvariantViolation(
            f"this scheduled payment is {scheduled.status.value}",
            rule="scheduled-payment",
            path="status",
        )
    if day < scheduled.pay_on:
        raise InvariantViolation(
            f"this payment is scheduled for {scheduled.pay_on}, not before",
            rule="scheduled-payment",
            path="pay_on",
        )


def _refuse_other_currency(partner: Partner, invoice: Invoice) -> None:
    """An invoice is paid in its partner's currency only (I2)."""
    if invoice.currency != partner.currency:
        raise ValidationError.single(
            "invoice",
            "currency_mismatch",
            f"'invoice' must be in {partner.currency.code}, the partner's currency "
            f"(invoice {invoice.id} is in {invoice.currency.code}; rule I2)",
        )


def _refuse_unless_it_can_run(
    scheduled: ScheduledPayment, partner: Partner, customer: Customer, invoice: Invoice
) -> None:
    """What keeps a scheduled payment from running on its date: an invoice
    that does not take payments (I4) or still holds a card fee line (I8), a
    payer who may no longer pay it (no longer a user, or the customer
    archived: I1, C8), an invoice or an amount in another currency than the
    partner's (I2)."""
    _refuse_unless_open(invoice, "invoice")
    _payer(customer, scheduled.user_id)
    _refuse_other_currency(partner, invoice)
    if scheduled.amount is not None:
        _money_in("amount", scheduled.amount, invoice.currency)
    _refuse_card_fee_line(invoice, "invoice")


@checked_arguments
def run_scheduled_payment(
    scheduled: ScheduledPayment,
    *,
    partner: Partner,
    customer: Customer,
    invoice: Invoice,
    methods: CustomerPaymentMethods | None,
    today: dt.date,
    at: dt.datetime | None = None,
) -> tuple[ScheduledPayment, Payment, Invoice]:
    """Run a scheduled payment whose date has come.

    It pays the scheduled amount, or the balance if that is now lower (the
    invoice may have been partly paid since), with the method it was
    scheduled with if still active, else the default; with no method on
    file (an empty book, or none) it says so and nothing runs (rule
    ``method-on-file``). A book that holds methods but lacks the one it was
    scheduled with (not archived: not there at all) is not the customer's
    as stored, and is refused (``InvariantViolation``, rule
    ``payment-method``, at ``methods``). The idempotency key is derived from
    the scheduled payment (``scheduled:sch_...``, a prefix no request may
    use), so running it twice cannot pay twice. Returns the
    processed scheduled payment, the payment and the invoice, to store
    together.

    Refused before anything runs (:func:`skip_scheduled_payment` then marks
    it skipped): an invoice that takes no payments (paid, void or archived
    since: I4), a payer who may no longer pay it (removed from the customer,
    or the customer archived: ``PermissionDenied``), an invoice or an
    amount in another currency than the partner's (``ValidationError`` at
    ``invoice`` or ``amount``, I2), and an invoice that still holds a card
    fee line (``InvariantViolation`` at ``invoice``, I8).
    """
    _check_scheduled_for(scheduled, partner, customer, invoice)
    _refuse_unless_due(scheduled, today)
    _refuse_unless_it_can_run(scheduled, partner, customer, invoice)
    purpose = "a scheduled payment"
    kept = None
    if (
        isinstance(methods, CustomerPaymentMethods)
        and methods.customer_id == customer.id
        and methods.methods
    ):
        try:
            kept = methods.method(scheduled.payment_method_id)
        except NotFound:
            # Methods are archived, never removed: a book without it is not
            # the one the payment was scheduled from.
            raise InvariantViolation(
                f"this payment was scheduled with payment method {scheduled.payment_method_id}, "
                f"which is not among {customer.company}'s methods",
                rule="payment-method",
                path="methods",
            ) from None
    method = (
        kept
        if kept is not None and kept.is_active
        else method_on_file(methods, customer, purpose=purpose)
    )
    amount = invoice.balance
    if scheduled.amount is not None and scheduled.amount < amount:
        amount = scheduled.amount
    running = _RUNNING.set(True)
    try:
        with (
            _fields.argument_renamed("method", "methods"),
            _fields.argument_renamed("invoices[0]", "invoice"),
        ):
            payment, touched = pay_invoices(
                partner,
                customer,
                [invoice],
                payer=scheduled.user_id,
                method=method,
                idempotency_key=f"{_RUN_KEY}{scheduled.id}",
                amounts={invoice.id: amount},
                methods=methods,
                at=at,
            )
    finally:
        _RUNNING.reset(running)
    done = attrs.evolve(scheduled, status=ScheduledPaymentStatus.PROCESSED, payment_id=payment.id)
    return done, payment, touched[0]


@checked_arguments
def skip_scheduled_payment(
    scheduled: ScheduledPayment,
    *,
    partner: Partner,
    customer: Customer,
    invoice: Invoice,
    today: dt.date,
) -> ScheduledPayment:
    """Mark as skipped a scheduled payment whose date has come and that
    cannot run, so that it is no longer due: nothing is paid, and it is
    done with.

    It cannot run when its invoice takes no payments (paid, void or
    archived since: I4) or still holds a card fee line (I8), when its payer
    may no longer pay it (removed from the customer, or the customer
    archived: I1, C8), or when the invoice or its amount is in another
    currency than the partner's (I2). A scheduled
    payment is for its date: one skipped because its invoice was paid does
    not run if the invoice opens again later (a payment that paid it failed
    or was returned); schedule a new one. Refused (``InvariantViolation``,
    rule ``scheduled-payment``) before its date, once it ran or was
    cancelled, and while it can run: a missing method on file is no reason,
    since one may be added. Skipping a skipped one changes nothing.
    """
    _check_scheduled_for(scheduled, partner, customer, invoice)
    day = _fields.plain_date("today", today)
    if scheduled.status is ScheduledPaymentStatus.SKIPPED:
        return scheduled
    _refuse_unless_due(scheduled, day)
    try:
        _refuse_unless_it_can_run(scheduled, partner, customer, invoice)
    except (InvariantViolation, PermissionDenied, ValidationError):
        return attrs.evolve(scheduled, status=ScheduledPaymentStatus.SKIPPED)
    raise InvariantViolation(
        "this scheduled payment can still run: run it, or cancel it",
        rule="scheduled-payment",
        path="status",
    )
