"""Invoices: what a customer owes a partner, and how much of it is paid.

A team member allowed to edit invoices issues one for an active customer of
the partner (:meth:`Invoice.issue`); an integration syncs others in
(:meth:`Invoice.from_sync`). Either way an invoice has line items and fee
lines in the partner's currency, a total greater than zero, and a balance that
payments bring down and returned payments bring back up::

    invoice = Invoice.issue(partner, customer, by=member, number="1001",
                            lines=[{"description": "Support", "quantity": 2,
                                    "unit_amount": "150.00"}],
                            due_date=dt.date(2026, 2, 1), today=dt.date(2026, 1, 2))
    invoice.total, invoice.balance, invoice.status

What the balance counts (rules I4 and I5): ``balance = total - amount_paid``,
where ``amount_paid`` sums the parts of every payment applied to the invoice
that has not been given back, plus, on a synced invoice, what its source
reports as paid or credited there (:attr:`Invoice.paid_in_source`). A
payment that is still processing counts: it holds its part of the balance,
so that the same money cannot be paid twice while a bank debit clears. A
payment that fails, is returned, charged back or refunded gives its part
back (:func:`~altpay_core.payment.fail_payment` and the like); the source's
figure changes only through :meth:`Invoice.apply_sync`.

Status (rule I4): ``open`` while the balance is above zero, ``paid`` when it
reaches zero (and ``open`` again if a payment is given back); *partly paid* is
derived (:attr:`Invoice.is_partly_paid`), never stored. ``void`` only while
nothing is paid. ``archived`` hides the invoice from the customer's users and
keeps its history; it is allowed from ``open`` with nothing paid, ``paid`` and
``void``, and refused while the invoice is partly paid.

Payments reach invoices through the functions of :mod:`altpay_core.payment`
(:func:`~altpay_core.payment.pay_invoices` and the like), which change the
payment and the invoices it touches together.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Final, Protocol, TypeVar

import attrs

from . import _fields
from ._arguments import checked_arguments, checked_constructor, checked_form
from ._html import html_table
from .customer import Customer
from .errors import FieldErrors, InvariantViolation, NotFound, ValidationError, key_text, shown
from .events import Event, InvoiceArchived, InvoiceCreated, InvoicePaid, InvoiceUpdated, utc_now
from .money import _CONTEXT, _MAX_DIGITS, Currency, Money, _too_large, _zero, money_at
from .partner import (
    _PARTNER_CURRENCIES,
    KEEP,
    Action,
    Partner,
    TeamMember,
    _kept_text,
    _refuse_unbilled,
)
from .values import CustomerId, ExternalRef, InvoiceId, PartnerId, PaymentId, TeamMemberId

__all__ = [
    "AppliedPayment",
    "Fee",
    "FeeKind",
    "Invoice",
    "InvoiceStatus",
    "LineItem",
]

MAX_QUANTITY: Final = 1_000_000
"""The largest quantity of one line item."""

_DESCRIPTION_MAX: Final = 500
_NUMBER_MAX: Final = 50
_FEE_NAME_MAX: Final = 100
_MEMO_MAX: Final = 2000


# -- helpers shared with payment.py -------------------------------------------------


class _HasEvents(Protocol):
    @property
    def events(self) -> tuple[Event, ...]: ...


_A = TypeVar("_A")


def _events_field() -> Any:
    # Pending events: not an init argument, not part of equality nor of the
    # data (to_dict); a command copies them onto the new instance.
    return attrs.field(factory=tuple, init=False, eq=False, repr=False)


def _with_events(new: _A, old: _HasEvents, *events: Event) -> _A:
    # The new instance carries the old one's pending events plus these, until
    # a repository stores it.
    object.__setattr__(new, "events", (*old.events, *events))
    return new


# What an invoice event's ``changes`` names after the fields a command was
# given: the amounts derived from them and the status, whichever changed, in
# this order, so that a webhook consumer watching "balance" sees every change
# of the balance, from an edit, a sync or a payment alike.
_DERIVED_CHANGES: Final = ("total", "amount_paid", "balance", "status")


def _derived_changes(old: Invoice, new: Invoice) -> tuple[str, ...]:
    return tuple(name for name in _DERIVED_CHANGES if getattr(new, name) != getattr(old, name))


def _strip(value: str) -> str:
    # Typed with what it takes: a type checker reads the field as text.
    # str.strip gives a plain str, whatever a subclass's own strip returns.
    return str.strip(value) if isinstance(value, str) else value


def _strip_or_none(value: str | None) -> str | None:
    # Optional text: stored trimmed, and blank is stored as None.
    if isinstance(value, str):
        return str.strip(value) or None
    return value


def _money_in(
    path: str,
    value: object,
    currency: Currency,
    whose: str = "the invoice's currency",
    rule: str = "I2",
) -> Money:
    """An amount in ``currency`` (``whose``, as the message names it): a
    ``Money`` in it, or a str, int or Decimal read in it. Another currency is
    refused (``rule``: I2, or I7 for a refund)."""
    if isinstance(value, Money):
        if value.currency is not currency:
            raise ValidationError.single(
                path,
                "currency_mismatch",
                f"'{path}' must be in {currency.code}, {whose} "
                f"(got {value.currency.code}; rule {rule})",
            )
        return value
    if value is None:
        raise ValidationError.single(path, "missing", f"'{path}' is required")
    if not isinstance(value, str | int | Decimal | float):
        raise ValidationError.single(
            path,
            "wrong_type",
            f"'{path}' must be Money, or a str, int or Decimal read in {currency.code} "
            f"(got {type(value).__name__})",
        )
    return money_at(path, value, currency)  # type: ignore[arg-type]


def _currency(value: object) -> Currency:
    if isinstance(value, Currency):
        return value
    if not isinstance(value, str):
        raise ValidationError.single(
            "currency",
            "wrong_type",
            f"'currency' must be a currency code such as 'USD' (got {type(value).__name__})",
        )
    try:
        return Currency(value)
    except ValidationError as error:
        raise error.under("currency") from None


def _positive_money_in(
    path: str, value: object, currency: Currency, whose: str = "the invoice's currency"
) -> Money:
    money = _money_in(path, value, currency, whose)
    if not money.is_positive:
        raise ValidationError.single(
            path, "not_positive", f"'{path}' must be greater than zero (got {money})"
        )
    return money


def _check_currency(found: FieldErrors, path: str, money: Money, currency: Currency) -> None:
    if money.currency is not currency:
        found.add(
            path,
            "currency_mismatch",
            f"'{path}' must be in {currency.code}, the invoice's currency "
            f"(got {money.currency.code}; rule I2)",
        )


def _require_type(found: FieldErrors, path: str, value: object, kind: Any, label: str) -> bool:
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return True
    found.add(path, "wrong_type", f"'{path}' must be {label} (got {type(value).__name__})")
    return False


def _to_member(found: FieldErrors, obj: object, name: str, kind: type[enum.Enum]) -> None:
    """An enumeration field given as its value (``"open"``) becomes the member,
    so that the rules run on the member; anything else is ``invalid_choice``.
    For the detailed checks, which run on an instance just built."""
    value = getattr(obj, name)
    if type(value) is kind:
        return
    member = found.check("", _fields.choice, name, value, kind)
    if member is not None:
        object.__setattr__(obj, name, member)


def _fields_of(
    found: FieldErrors,
    path: str,
    value: object,
    allowed: tuple[str, ...],
    required: tuple[str, ...],
    *,
    what: str,
) -> Mapping[str, object]:
    """A mapping posted for a small value (``what`` it is, for the message
    when ``path`` is empty), its missing and unknown keys noted in ``found``
    (so that the fields it has are checked too)."""
    if not isinstance(value, Mapping):
        named = f"'{path}'" if path else what
        raise ValidationError.single(
            path, "wrong_type", f"{named} must be a mapping (got {type(value).__name__})"
        )
    # Its keys as plain text: a key's own __eq__ and __hash__ could pass it
    # for a field it does not name.
    value = _fields.plain_keys(value)
    for key in required:
        if key not in value:
            found.add(_join(path, key), "missing", f"'{_join(path, key)}' is required")
    for key in value:
        if key not in allowed:
            found.add(
                _join(path, key_text(key)),
                "unknown_field",
                f"{shown(key_text(key))} is not a field here "
                f"(expected one of {', '.join(allowed)})",
            )
    return value


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _when(at: object) -> dt.datetime:
    """When an event happened: ``at`` (an aware datetime, in UTC), or now."""
    return utc_now() if at is None else _fields.aware_datetime("at", at)


# -- line items and fees -----------------------------------------------------------


def _description(path: str, value: object) -> str:
    return _fields.required_text(path, value, max_length=_DESCRIPTION_MAX)


def _quantity(path: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError.single(
            path,
            "wrong_type",
            f"'{path}' must be a whole number from 1 to {MAX_QUANTITY:,}"
            f" (got {type(value).__name__})",
        )
    # A plain int before it is compared or kept: a subclass's own __eq__
    # could make an edit of the quantity look like no change.
    quantity = _fields.plain_int(value)
    if not 1 <= quantity <= MAX_QUANTITY:
        raise ValidationError.single(
            path,
            "invalid_quantity",
            f"'{path}' must be a whole number from 1 to {MAX_QUANTITY:,} (got {shown(quantity)})",
        )
    return quantity


def _unit_amount(path: str, value: object, currency: Currency) -> Money:
    """A line's unit amount in ``currency`` (rule I2), zero or more: its sign
    checked with the line's other fields, so that none hides another."""
    money = _money_in(path, value, currency)
    if money.is_negative:
        raise ValidationError.single(
            path, "negative_amount", f"'{path}' must be zero or more (got {money})"
        )
    return money


@checked_constructor
@attrs.frozen
class LineItem:
    """One line of an invoice: a description, a whole quantity and a unit amount.

    ``amount`` is ``unit_amount * quantity``, exactly. The description is
    stored trimmed; the unit amount may be zero (a free item) but not negative.

    >>> line = LineItem("Managed backup", 3, Money("19.99", "USD"))
    >>> line.amount
    Money('59.97', 'USD')
    """

    description: str = attrs.field(converter=_strip)
    quantity: int
    unit_amount: Money

    def __attrs_post_init__(self) -> None:
        if not self._fields_kept():
            self._check_each_field()

    def _fields_kept(self) -> bool:
        """The quick check: whether every field already has exactly its type
        and form, so that :meth:`_check_each_field` could find nothing to
        report. Lines read back or built by :meth:`parse` pass it; anything
        else gets the detailed checks."""
        quantity, unit = self.quantity, self.unit_amount
        return (
            _kept_text(self.description, _DESCRIPTION_MAX)
            and type(quantity) is int
            and 1 <= quantity <= MAX_QUANTITY
            and type(unit) is Money
            and unit.amount >= 0
        )

    def _check_each_field(self) -> None:
        """Check every field and report each invalid one."""
        found = FieldErrors()
        found.check("", _description, "description", self.description)
        _fields.keep_checked(found, self, "quantity", _quantity)
        if (
            _require_type(found, "unit_amount", self.unit_amount, Money, "Money")
            and self.unit_amount.is_negative
        ):
            found.add(
                "unit_amount",
                "negative_amount",
                f"'unit_amount' must be zero or more (got {self.unit_amount})",
            )
        found.raise_if_any()

    @classmethod
    @checked_arguments
    def parse(cls, value: object, currency: str | Currency) -> LineItem:
        """A line item from a ``LineItem`` or a mapping with ``description``,
        ``quantity`` and ``unit_amount`` (a ``Money``, or a decimal string or
        whole number read in ``currency``). Every invalid field is reported at
        once, a negative unit amount (``negative_amount``) among them; a unit
        amount in another currency is refused (rule I2)."""
        currency = _currency(currency)
        if isinstance(value, LineItem):
            _money_in("unit_amount", value.unit_amount, currency)
            return value
        found = FieldErrors()
        data = _fields_of(
            found,
            "",
            value,
            ("description", "quantity", "unit_amount"),
            ("description", "quantity"),
            what="a line item",
        )
        # Each field given is checked, whatever else is missing or unknown.
        description: Any = None
        quantity: Any = None
        if "description" in data:
            description = found.check("", _description, "description", data["description"])
        if "quantity" in data:
            quantity = found.check("", _quantity, "quantity", data["quantity"])
        unit = found.check("", _unit_amount, "unit_amount", data.get("unit_amount"), currency)
        found.raise_if_any()
        return cls(description, quantity, _fields.passed(unit))

    @functools.cached_property
    def amount(self) -> Money:
        """``unit_amount * quantity``."""
        return self.unit_amount * self.quantity


class FeeKind(_fields.Choices, enum.Enum):
    """What a fee is for.

    The product's fee types are late payment, product, method (here
    :attr:`CARD`) and interest; the three return fees of rule I6 have their
    own kinds. Invoices and payments share the kinds, but :attr:`CARD` is a
    payment's only: an invoice's commands refuse a new card fee line (rule
    I8). One stored before they did still reads, and may stay while the
    invoice's other fees change, but the invoice is paid by no method while
    it holds one (:func:`~altpay_core.payment.pay_invoices` refuses it, I8):
    a bank debit carries no card fee, and a card payment carries its own.
    Remove the line first.
    """

    CARD = "card"
    """The card fee of a card payment (rule I8): worked out once, on the
    payment, from the partner's policy. Never an invoice's fee line, since
    a bank debit carries no card fee and a card payment carries its own."""
    LATE_PAYMENT = "late_payment"
    PRODUCT = "product"
    INTEREST = "interest"
    RETURN = "return"
    """A standard ACH (or PAD/EFT) return: 15.00. A payment names it after
    its method ("PAD return fee"); a fee line, after its currency's bank
    debits ("ACH return fee" in USD, "Bank debit return fee" in CAD)."""
    UNAUTHORIZED_RETURN = "unauthorized_return"
    """A bank debit returned as unauthorised by the customer: 25.00 (a
    payment's is named after its method: "Unauthorized ACH return fee")."""
    DISPUTE = "dispute"
    """A card payment disputed by the cardholder (a chargeback): 25.00."""

    @property
    def label(self) -> str:
        """The default name of a fee of this kind (a US one: a return is an
        "ACH return fee"; see :meth:`label_in`)."""
        return _FEE_LABELS[self]

    @checked_arguments
    def label_in(self, currency: str | Currency) -> str:
        """The default name of a fee of this kind in ``currency``: ACH is a
        US bank debit, so a return of a Canadian one (PAD or EFT, not known
        on a fee line) is a "Bank debit return fee"."""
        if _currency(currency).code != "USD" and self in _BANK_RETURN_LABELS:
            return _BANK_RETURN_LABELS[self]
        return _FEE_LABELS[self]


_FEE_LABELS: Final = {
    FeeKind.CARD: "Card fee",
    FeeKind.LATE_PAYMENT: "Late payment fee",
    FeeKind.PRODUCT: "Product fee",
    FeeKind.INTEREST: "Interest",
    FeeKind.RETURN: "ACH return fee",
    FeeKind.UNAUTHORIZED_RETURN: "Unauthorized ACH return fee",
    FeeKind.DISPUTE: "Card dispute fee",
}
_BANK_RETURN_LABELS: Final = {
    FeeKind.RETURN: "Bank debit return fee",
    FeeKind.UNAUTHORIZED_RETURN: "Unauthorized bank debit return fee",
}


@checked_constructor
@attrs.frozen
class Fee:
    """A fee, as a line of its own (the product's fee fields).

    On an invoice, a fee the customer covers adds to the total; one the
    partner covers is shown for information only. On a payment, the card fee
    is covered by whoever bears it (rule I8) and return fees are recorded
    against the partner (rule I6). The amount is greater than zero.

    >>> Fee.new(FeeKind.LATE_PAYMENT, Money("25.00", "USD")).name
    'Late payment fee'
    """

    kind: FeeKind
    name: str = attrs.field(converter=_strip)
    amount: Money
    covered_by_customer: bool = True

    def __attrs_post_init__(self) -> None:
        if not self._fields_kept():
            self._check_each_field()

    def _fields_kept(self) -> bool:
        """The quick check, as :meth:`LineItem._fields_kept`: every field
        already of exactly its type and form, the amount above zero."""
        amount = self.amount
        return (
            type(self.kind) is FeeKind
            and _kept_text(self.name, _FEE_NAME_MAX)
            and type(amount) is Money
            and amount.amount > 0
            and type(self.covered_by_customer) is bool
        )

    def _check_each_field(self) -> None:
        """Check every field and report each invalid one."""
        found = FieldErrors()
        _to_member(found, self, "kind", FeeKind)
        found.check("", _fields.required_text, "name", self.name, max_length=_FEE_NAME_MAX)
        if _require_type(found, "amount", self.amount, Money, "Money") and not (
            self.amount.is_positive
        ):
            found.add(
                "amount", "not_positive", f"'amount' must be greater than zero (got {self.amount})"
            )
        _require_type(found, "covered_by_customer", self.covered_by_customer, bool, "true or false")
        found.raise_if_any()

    @classmethod
    @checked_arguments
    def new(
        cls,
        kind: FeeKind | str,
        amount: Money,
        *,
        name: str | None = None,
        covered_by_customer: bool = True,
    ) -> Fee:
        """A fee of ``kind``, named after its kind unless ``name`` is given."""
        found = FieldErrors()
        clean_kind = found.check("", _fields.choice, "kind", kind, FeeKind)
        found.raise_if_any()
        clean_kind = _fields.passed(clean_kind)
        if name is None:
            name = (
                clean_kind.label_in(amount.currency)
                if isinstance(amount, Money)
                else clean_kind.label
            )
        return cls(clean_kind, name, amount, covered_by_customer)

    @classmethod
    @checked_arguments
    def parse(cls, value: object, currency: str | Currency) -> Fee:
        """A fee from a ``Fee`` or a mapping with ``kind``, ``amount`` and
        optionally ``name`` and ``covered_by_customer`` (default true); every
        invalid field at once, the amount in ``currency`` (rule I2)."""
        currency = _currency(currency)
        if isinstance(value, Fee):
            _money_in("amount", value.amount, currency)
            return value
        found = FieldErrors()
        data = _fields_of(
            found,
            "",
            value,
            ("kind", "name", "amount", "covered_by_customer"),
            ("kind", "amount"),
            what="a fee",
        )
        # Each field given is checked, whatever else is missing or unknown.
        kind: Any = None
        amount: Any = None
        if "kind" in data:
            kind = found.check("", _fields.choice, "kind", data["kind"], FeeKind)
        if "amount" in data:
            amount = found.check("", _positive_money_in, "amount", data["amount"], currency)
        given_name = data.get("name")
        name = (
            None
            if given_name is None
            else found.check(
                "", _fields.required_text, "name", given_name, max_length=_FEE_NAME_MAX
            )
        )
        covered = data.get("covered_by_customer", True)
        found.check("", _fields.boolean, "covered_by_customer", covered)
        found.raise_if_any()
        return cls(kind, kind.label_in(currency) if name is None else name, amount, covered is True)


def _item_in(
    found: FieldErrors, path: str, item: object, kind: type[LineItem | Fee], currency: Currency
) -> Any:
    """A line or fee of a list, parsed; one of neither form is named by its
    ``path`` (``'lines[0]'``), which its own parse cannot know."""
    if not isinstance(item, kind | Mapping):
        what = "a line item" if kind is LineItem else "a fee"
        found.add(
            path,
            "wrong_type",
            f"'{path}' must be {what}: a {kind.__name__} or a mapping of its fields"
            f" (got {type(item).__name__})",
        )
        return None
    return found.check(path, kind.parse, item, currency)


def _lines_in(value: object, currency: Currency) -> tuple[LineItem, ...]:
    found = FieldErrors()
    lines = tuple(
        _item_in(found, f"lines[{index}]", item, LineItem, currency)
        for index, item in enumerate(_fields.listed("lines", value))
    )
    if not lines:
        found.add("lines", "empty", "'lines' must hold at least one line item")
    found.raise_if_any()
    return lines


def _fees_in(value: object, currency: Currency, kept: tuple[Fee, ...] = ()) -> tuple[Fee, ...]:
    found = FieldErrors()
    fees = tuple(
        _item_in(found, f"fees[{index}]", item, Fee, currency)
        for index, item in enumerate(_fields.listed("fees", value))
    )
    # A card fee line the invoice already holds (stored before the commands
    # refused them) may stay while others change, as many times as it is
    # held: a copy of it is a new one.
    keep = Counter(fee for fee in kept if fee.kind is FeeKind.CARD)
    for index, fee in enumerate(fees):
        if fee is not None and fee.kind is FeeKind.CARD:
            if keep[fee]:
                keep[fee] -= 1
            else:
                found.add(f"fees[{index}].kind", "card_fee_on_invoice", _CARD_FEE_ON_INVOICE)
    found.raise_if_any()
    return fees


_CARD_FEE_ON_INVOICE: Final = (
    "an invoice has no 'card' fee line: the card fee is worked out once, on a card "
    "payment, from the partner's policy, and a bank debit carries none (rule I8)"
)


def _subtotal_and_fees(
    lines: Iterable[LineItem], fees: Iterable[Fee], currency: Currency
) -> tuple[Decimal, Decimal]:
    """What ``lines`` come to and what the ``fees`` the customer covers come
    to, all in ``currency`` and none below zero (the checks have passed).

    The same as ``Money.sum`` of each line's ``amount`` and of the fees, the
    same refusal of an amount too large included (at ``lines`` or ``fees``),
    without building a ``Money`` for each step (an invoice is counted each
    time one is built or read): each step is one exact operation in money's
    context on amounts quantized to the currency, and with no term below
    zero no product or partial sum is larger than the total, so only the
    subtotal and the total need their size checked.
    """
    fma, add = _CONTEXT.fma, _CONTEXT.add  # once, not once a line
    subtotal = covered = _zero(currency).amount
    for line in lines:
        subtotal = fma(line.unit_amount.amount, line.quantity, subtotal)
    for fee in fees:
        if fee.covered_by_customer:
            covered = add(covered, fee.amount.amount)
    if subtotal.adjusted() >= _MAX_DIGITS:
        raise _too_large("lines", comes_to="add up to")
    if add(subtotal, covered).adjusted() >= _MAX_DIGITS:
        raise _too_large("fees", comes_to="add up to")
    return subtotal, covered


# -- the invoice --------------------------------------------------------------------


class InvoiceStatus(_fields.Choices, enum.Enum):
    """Where an invoice stands (rule I4). *Partly paid* is not a status: see
    :attr:`Invoice.is_partly_paid`."""

    OPEN = "open"
    """Something is still owed: the balance is above zero."""
    PAID = "paid"
    """The balance is zero."""
    VOID = "void"
    """Cancelled while nothing was paid: it takes no payments and nothing is
    collected on it. Its balance stays its total, as a record: count open
    invoices for what a customer owes."""
    ARCHIVED = "archived"
    """Hidden from the customer's users (the product's delete); history kept."""


@checked_constructor
@attrs.frozen
class AppliedPayment:
    """A payment's part of an invoice, as the invoice records it.

    ``released`` is true once the payment failed, was returned, charged back
    or refunded: its part no longer counts towards the amount paid, but the
    record stays as history.
    """

    payment_id: PaymentId
    amount: Money
    released: bool = False

    def __attrs_post_init__(self) -> None:
        if not self._fields_kept():
            self._check_each_field()

    def _fields_kept(self) -> bool:
        """The quick check, as :meth:`LineItem._fields_kept`: every field
        already of exactly its type, the amount above zero."""
        amount = self.amount
        return (
            type(self.payment_id) is PaymentId
            and type(amount) is Money
            and amount.amount > 0
            and type(self.released) is bool
        )

    def _check_each_field(self) -> None:
        """Check every field and report each invalid one."""
        found = FieldErrors()
        _require_type(found, "payment_id", self.payment_id, PaymentId, "a payment id")
        if _require_type(found, "amount", self.amount, Money, "Money") and not (
            self.amount.is_positive
        ):
            found.add(
                "amount", "not_positive", f"'amount' must be greater than zero (got {self.amount})"
            )
        _require_type(found, "released", self.released, bool, "true or false")
        found.raise_if_any()

    @property
    def counts(self) -> bool:
        """Whether this part counts towards the invoice's amount paid."""
        return not self.released


def _number(path: str, value: object) -> str:
    return _fields.required_text(path, value, max_length=_NUMBER_MAX)


def _memo(path: str, value: object) -> str | None:
    return _fields.optional_text(path, value, max_length=_MEMO_MAX)


def _source_paid(path: str, value: object, currency: Currency) -> Money | None:
    """What a sync reports as paid in the source: ``None``, or an amount in
    the invoice's currency (I2) read as line amounts are, zero or more. Zero
    is nothing, stored as ``None``."""
    if value is None:
        return None
    money = _money_in(path, value, currency)
    if money.is_negative:
        raise ValidationError.single(
            path, "negative_amount", f"'{path}' must be zero or more (got {money})"
        )
    return money if money.is_positive else None


@checked_constructor
@attrs.frozen(kw_only=True)
class Invoice:
    """What a customer owes a partner (rules I1-I5, I10).

    Build one with :meth:`issue` (by a team member) or :meth:`from_sync`
    (from an integration); change it only through its commands, each of which
    returns a new invoice carrying the event it caused (``invoice_created``,
    ``invoice_updated``, ``invoice_paid``, ``invoice_archived``).

    Amounts: ``subtotal`` (the lines), ``fee_total`` (the fees the customer
    covers), ``total`` (their sum, always above zero), ``amount_paid`` (the
    payments' parts not given back, plus ``paid_in_source`` on a synced
    invoice) and ``balance`` (``total - amount_paid``, never below zero). See
    the module documentation for what counts as paid.
    """

    id: InvoiceId
    partner_id: PartnerId
    customer_id: CustomerId
    number: str = attrs.field(converter=_strip)
    currency: Currency
    issue_date: dt.date
    due_date: dt.date
    lines: tuple[LineItem, ...] = attrs.field(converter=_fields.list_as_tuple)
    fees: tuple[Fee, ...] = attrs.field(default=(), converter=_fields.list_as_tuple)
    memo: str | None = attrs.field(default=None, converter=_strip_or_none)
    status: InvoiceStatus = InvoiceStatus.OPEN
    payments: tuple[AppliedPayment, ...] = attrs.field(default=(), converter=_fields.list_as_tuple)
    paid_in_source: Money | None = None
    """What the source system of a synced invoice reports as paid or credited
    on it outside this platform (partial payments, credits): the source's
    running figure, above zero, in the invoice's currency; ``None`` when
    nothing is, and always on a manual invoice (I10). It counts towards
    ``amount_paid``, and changes only through :meth:`apply_sync`."""
    external_ref: ExternalRef | None = None
    issued_by: TeamMemberId | None = None
    created_at: dt.datetime = attrs.field(factory=utc_now)
    version: int = 0
    events: tuple[Event, ...] = _events_field()

    # The amounts, worked out once as the invoice is built (the rules need
    # them all): derived from the fields above, so neither init arguments nor
    # part of equality or of the data.
    subtotal: Money = attrs.field(init=False, eq=False, repr=False)
    """The sum of the line items (``unit_amount * quantity`` each)."""
    fee_total: Money = attrs.field(init=False, eq=False, repr=False)
    """The sum of the fees the customer covers."""
    total: Money = attrs.field(init=False, eq=False, repr=False)
    """``subtotal + fee_total``: what the customer owes in all."""
    amount_paid: Money = attrs.field(init=False, eq=False, repr=False)
    """The parts of the payments applied and not given back, those still
    processing included (they hold the balance), plus ``paid_in_source``."""
    balance: Money = attrs.field(init=False, eq=False, repr=False)
    """``total - amount_paid`` (never below zero): what is still owed on an
    open invoice. A void or archived invoice keeps it as a record, but
    collects nothing: what a customer owes is the balance of its open
    invoices."""

    def __attrs_post_init__(self) -> None:
        if not self._fields_kept():
            self._check_each_field()
        self._count()
        self._check_rules()

    def _count(self) -> None:
        """Work out the amounts, from fields the checks have passed: every
        amount in the invoice's currency, none below zero (see
        :func:`_subtotal_and_fees`)."""
        currency, add = self.currency, _CONTEXT.add
        subtotal, fees = _subtotal_and_fees(self.lines, self.fees, currency)
        paid = _zero(currency).amount
        for part in self.payments:
            if part.counts:
                paid = add(paid, part.amount.amount)
        if paid.adjusted() >= _MAX_DIGITS:
            raise _too_large("payments", comes_to="add up to")
        source = self.paid_in_source
        if source is not None:
            paid = add(paid, source.amount)
            if paid.adjusted() >= _MAX_DIGITS:
                raise _too_large("paid_in_source", comes_to="add up to")
        total, exact, set_amount = add(subtotal, fees), Money._exact, object.__setattr__
        set_amount(self, "subtotal", exact(subtotal, currency))
        set_amount(self, "fee_total", exact(fees, currency))
        set_amount(self, "total", exact(total, currency))
        set_amount(self, "amount_paid", exact(paid, currency))
        set_amount(self, "balance", exact(_CONTEXT.subtract(total, paid), currency))

    def _fields_kept(self) -> bool:
        """The quick check: whether every field already has exactly its type
        and form (text trimmed, the status a member, the lines, fees and
        payments tuples of their classes in the invoice's currency, at least
        one line), so that :meth:`_check_each_field` could find nothing to
        report. Invoices read back or built by a command pass it; anything
        else gets the detailed checks. The rules are checked either way."""
        currency, lines, fees, payments = self.currency, self.lines, self.fees, self.payments
        source = self.paid_in_source
        memo, ref, by, created, version = (
            self.memo,
            self.external_ref,
            self.issued_by,
            self.created_at,
            self.version,
        )
        return (
            type(self.id) is InvoiceId
            and type(self.partner_id) is PartnerId
            and type(self.customer_id) is CustomerId
            and _kept_text(self.number, _NUMBER_MAX)
            and type(currency) is Currency
            and currency.code in _PARTNER_CURRENCIES
            and type(self.issue_date) is dt.date
            and type(self.due_date) is dt.date
            and type(lines) is tuple
            and len(lines) > 0
            and all(type(x) is LineItem and x.unit_amount.currency is currency for x in lines)
            and type(fees) is tuple
            and all(type(x) is Fee and x.amount.currency is currency for x in fees)
            and type(payments) is tuple
            and all(type(x) is AppliedPayment and x.amount.currency is currency for x in payments)
            and (
                source is None
                or (type(source) is Money and source.currency is currency and source.amount > 0)
            )
            and (memo is None or _kept_text(memo, _MEMO_MAX))
            and type(self.status) is InvoiceStatus
            and (ref is None or type(ref) is ExternalRef)
            and (by is None or type(by) is TeamMemberId)
            and type(created) is dt.datetime
            and created.tzinfo is dt.UTC
            and type(version) is int
            and version >= 0
        )

    def _check_each_field(self) -> None:
        """Check every field and report each invalid one (the currency of
        every amount, I2, and at least one line, I3, among them)."""
        found = FieldErrors()
        _require_type(found, "id", self.id, InvoiceId, "an invoice id")
        _require_type(found, "partner_id", self.partner_id, PartnerId, "a partner id")
        _require_type(found, "customer_id", self.customer_id, CustomerId, "a customer id")
        found.check("", _number, "number", self.number)
        currency_ok = _require_type(found, "currency", self.currency, Currency, "a Currency")
        if currency_ok:
            _refuse_unbilled(found, "currency", self.currency)
        _fields.keep_checked(found, self, "issue_date", _fields.plain_date)
        _fields.keep_checked(found, self, "due_date", _fields.plain_date)
        lines_ok = self._check_items(found, "lines", LineItem, "a LineItem", currency_ok)
        fees_ok = self._check_items(found, "fees", Fee, "a Fee", currency_ok)
        paid_ok = self._check_items(
            found, "payments", AppliedPayment, "an AppliedPayment", currency_ok
        )
        if lines_ok and not self.lines:
            found.add("lines", "empty", "'lines' must hold at least one line item")
        source = self.paid_in_source
        if source is not None and _require_type(found, "paid_in_source", source, Money, "Money"):
            if currency_ok:
                _check_currency(found, "paid_in_source", source, self.currency)
            if not source.is_positive:
                found.add(
                    "paid_in_source",
                    "not_positive",
                    f"'paid_in_source' must be greater than zero, or None for nothing "
                    f"(got {source})",
                )
        found.check("", _memo, "memo", self.memo)
        _to_member(found, self, "status", InvoiceStatus)
        if self.external_ref is not None:
            _require_type(found, "external_ref", self.external_ref, ExternalRef, "an ExternalRef")
        if self.issued_by is not None:
            _require_type(found, "issued_by", self.issued_by, TeamMemberId, "a team member id")
        _fields.keep_checked(found, self, "created_at", _fields.aware_datetime)
        _fields.keep_checked(found, self, "version", _fields.version_number)
        found.raise_if_any()
        if not (lines_ok and fees_ok and paid_ok):  # pragma: no cover - raised above
            raise AssertionError("unreachable: an error was raised above")

    def _check_items(
        self, found: FieldErrors, name: str, kind: type[Any], label: str, currency_ok: bool
    ) -> bool:
        items = getattr(self, name)
        if not isinstance(items, tuple):
            found.add(name, "wrong_type", f"'{name}' must be a list (got {type(items).__name__})")
            return False
        ok = True
        for index, item in enumerate(items):
            where = f"{name}[{index}]"
            if not isinstance(item, kind):
                found.add(where, "wrong_type", f"'{where}' must be {label}")
                ok = False
            elif currency_ok:
                money = item.unit_amount if kind is LineItem else item.amount
                field = "unit_amount" if kind is LineItem else "amount"
                _check_currency(found, f"{where}.{field}", money, self.currency)
        return ok

    def _check_rules(self) -> None:
        if not self.total.is_positive:
            raise InvariantViolation(
                f"an invoice's total must be greater than zero (got {self.total})",
                rule="I3",
                path="lines",
            )
        if self.external_ref is None and self.due_date < self.issue_date:
            raise InvariantViolation(
                f"the due date {self.due_date} is before the issue date {self.issue_date}",
                rule="I3",
                path="due_date",
            )
        seen: set[PaymentId] = set()
        for index, part in enumerate(self.payments):
            if part.payment_id in seen:
                raise InvariantViolation(
                    f"payment {part.payment_id} is applied to this invoice twice",
                    rule="I5",
                    path=f"payments[{index}].payment_id",
                )
            seen.add(part.payment_id)
        source = self.paid_in_source
        if source is not None and self.external_ref is None:
            raise InvariantViolation(
                "only a synced invoice has an amount paid in its source",
                rule="I10",
                path="paid_in_source",
            )
        if self.amount_paid > self.total:
            here = self.amount_paid - (source or _zero(self.currency))
            raise InvariantViolation(
                f"the amount paid ({self.amount_paid}) exceeds the total ({self.total}): "
                "overpayment is refused and the balance never goes below zero",
                rule="I5",
                path=_overpaid_at(self.total, here, source, "payments"),
            )
        expected = _status_for(self.status, self.total, self.amount_paid)
        if expected is not self.status:
            raise InvariantViolation(
                f"an invoice with a balance of {self.balance} and {self.amount_paid} paid "
                f"cannot be {self.status.value}",
                rule="I4",
                path="status",
            )

    # -- building -----------------------------------------------------------------

    @classmethod
    @checked_form
    def issue(
        cls,
        partner: Partner,
        customer: Customer,
        *,
        by: TeamMemberId | TeamMember,
        number: object,
        lines: Iterable[LineItem | Mapping[str, object]],
        due_date: object,
        today: dt.date,
        issue_date: object = None,
        fees: Iterable[Fee | Mapping[str, object]] = (),
        memo: object = None,
    ) -> Invoice:
        """Issue an invoice to ``customer``, carrying ``invoice_created``.

        ``by`` must be allowed to edit invoices (Member and above), the
        customer must be the partner's (I1) and active (C8). Lines and fees
        are ``LineItem`` / ``Fee`` values or mappings of their fields, in the
        partner's currency (I2); every invalid field is reported at once. The
        issue date defaults to ``today``; the due date may be neither before
        it nor in the past, and the total must be above zero (I3). A
        ``partner`` or ``customer`` that is not one is a ``wrong_type`` error.

        ``created_at``, and the time of ``invoice_created``, is the current
        time: ``today`` is a date (the day the rules of I3 are checked
        against) and says nothing of the hour.
        """
        _partner_and_customer(partner, customer)
        member = partner.authorize(by, Action.EDIT_INVOICES)
        _refuse_customer(partner, customer)
        currency = partner.currency
        found = FieldErrors()
        clean_today = found.check("", _fields.plain_date, "today", today)
        clean_number = found.check("", _number, "number", number)
        clean_lines = found.check("", _lines_in, lines, currency)
        clean_fees = found.check("", _fees_in, fees, currency)
        clean_due = found.check("", _fields.plain_date, "due_date", due_date)
        clean_issue = (
            clean_today
            if issue_date is None
            else found.check("", _fields.plain_date, "issue_date", issue_date)
        )
        clean_memo = found.check("", _memo, "memo", memo)
        found.raise_if_any()
        clean_due, clean_issue = _fields.passed(clean_due), _fields.passed(clean_issue)
        _refuse_past_due(clean_due, _fields.passed(clean_today), clean_issue)
        # The total's rule (I3) is checked by the invoice itself, as it is built.
        invoice = cls(
            id=InvoiceId.new(),
            partner_id=partner.id,
            customer_id=customer.id,
            number=_fields.passed(clean_number),
            currency=currency,
            issue_date=clean_issue,
            due_date=clean_due,
            lines=_fields.passed(clean_lines),
            fees=_fields.passed(clean_fees),
            memo=clean_memo,
            issued_by=member.id,
        )
        created = invoice._event(InvoiceCreated, at=invoice.created_at)
        return _with_events(invoice, invoice, created)

    @classmethod
    @checked_arguments
    def from_sync(
        cls,
        partner: Partner,
        customer: Customer,
        *,
        external_ref: ExternalRef,
        number: object,
        lines: Iterable[LineItem | Mapping[str, object]],
        issue_date: object,
        due_date: object,
        fees: Iterable[Fee | Mapping[str, object]] = (),
        memo: object = None,
        paid_in_source: object = None,
    ) -> Invoice:
        """An invoice synced in from one of the partner's integrations.

        Its dates are kept as the source has them, even in the past or with
        the due date before the issue date (I3); its amounts and due date
        change only through :meth:`apply_sync`, unpaid or paid (I10). The
        integration must be connected and sync invoices; the customer must be
        the partner's (I1) and active (C8); the total must be above zero.
        ``paid_in_source`` is what the source reports as paid or credited on
        it there (a ``Money`` or a decimal amount, as a line's unit amount;
        zero or ``None`` for nothing): at most the total (I5); the whole
        total makes it ``paid``. ``created_at``, and the time of
        ``invoice_created`` (its one event, paid or not), is the current
        time (when it was synced in).
        """
        _partner_and_customer(partner, customer)
        if not isinstance(external_ref, ExternalRef):
            raise ValidationError.single(
                "external_ref",
                "wrong_type",
                f"'external_ref' must be an ExternalRef (got {type(external_ref).__name__})",
            )
        integration = partner.integration(external_ref.system)
        if not integration.syncs_invoices:
            raise InvariantViolation(
                f"{integration.system} does not sync invoices for this partner",
                rule="I10",
                path="external_ref",
            )
        _refuse_customer(partner, customer)
        currency = partner.currency
        found = FieldErrors()
        clean_number = found.check("", _number, "number", number)
        clean_lines = found.check("", _lines_in, lines, currency)
        clean_fees = found.check("", _fees_in, fees, currency)
        clean_issue = found.check("", _fields.plain_date, "issue_date", issue_date)
        clean_due = found.check("", _fields.plain_date, "due_date", due_date)
        clean_memo = found.check("", _memo, "memo", memo)
        clean_paid = found.check("", _source_paid, "paid_in_source", paid_in_source, currency)
        found.raise_if_any()
        clean_due, clean_issue = _fields.passed(clean_due), _fields.passed(clean_issue)
        invoice = cls(
            id=InvoiceId.new(),
            partner_id=partner.id,
            customer_id=customer.id,
            number=_fields.passed(clean_number),
            currency=currency,
            issue_date=clean_issue,
            due_date=clean_due,
            lines=_fields.passed(clean_lines),
            fees=_fields.passed(clean_fees),
            memo=clean_memo,
            external_ref=external_ref,
        )
        if clean_paid is not None:
            # Its total checked (I3) first; then the source's figure (I5).
            invoice = attrs.evolve(
                invoice,
                paid_in_source=clean_paid,
                status=_status_for(invoice.status, invoice.total, clean_paid),
            )
        created = invoice._event(InvoiceCreated, at=invoice.created_at)
        return _with_events(invoice, invoice, created)

    # -- reading ------------------------------------------------------------------

    @property
    def is_partly_paid(self) -> bool:
        """Derived, never stored (I4): something paid, something still owed."""
        return self.amount_paid.is_positive and self.balance.is_positive

    @property
    def is_synced(self) -> bool:
        """Came from an integration (has an external reference)."""
        return self.external_ref is not None

    @property
    def is_archived(self) -> bool:
        """Hidden from the customer's users (I4)."""
        return self.status is InvoiceStatus.ARCHIVED

    @property
    def accepts_payments(self) -> bool:
        """Open, so a payment may be applied (up to the balance, I5)."""
        return self.status is InvoiceStatus.OPEN

    @checked_arguments
    def is_overdue(self, today: dt.date) -> bool:
        """Open with its due date before ``today`` (a date, not a datetime:
        anything else is an ``invalid_date`` error)."""
        day = _fields.plain_date("today", today)
        return self.status is InvoiceStatus.OPEN and self.due_date < day

    @checked_arguments
    def applied(self, payment_id: PaymentId | str) -> AppliedPayment:
        """The part of payment ``payment_id``, a ``PaymentId`` or its text
        (``NotFound`` if none)."""
        payment_id = _fields.entity_id("payment_id", payment_id, PaymentId)
        for part in self.payments:
            if part.payment_id == payment_id:
                return part
        raise NotFound("payment on this invoice", payment_id)

    # -- the partner's commands -----------------------------------------------------

    @checked_arguments
    def update(
        self,
        partner: Partner,
        *,
        by: TeamMemberId | TeamMember | None = None,
        today: dt.date | None = None,
        lines: object = KEEP,
        fees: object = KEEP,
        due_date: object = KEEP,
        memo: object = KEEP,
    ) -> Invoice:
        """The partner edits the invoice; omitted arguments keep their value.

        An argument equal to the invoice's value (after trimming and reading
        it in the invoice's currency) is no change: it must be well formed,
        and is otherwise ignored, so that a form may post every field. Only
        real changes are checked below and named in the event's ``changes``,
        then ``total``, ``balance`` and ``status`` if they changed; with
        none, the invoice is returned unchanged.

        With ``by``, the member must be allowed to edit invoices. A void or
        archived invoice is not edited (I4). A synced invoice's lines, fees
        and due date come from its source (I10), open or paid: use
        :meth:`apply_sync`; its memo may be edited. (Rule I10 speaks of
        unpaid invoices; a partner's edit of a paid one would make it unpaid
        again with amounts the source never had, so paid ones are refused
        too.) A new due date needs ``today`` and may not be in the past
        (I3). The new total must stay above zero (I3) and at least the
        amount paid (I5); reaching it makes the invoice ``paid``.
        """
        self._own(partner)
        if by is not None:
            partner.authorize(by, Action.EDIT_INVOICES)
        self._refuse_closed("edited")
        clean = self._changed({"lines": lines, "fees": fees, "due_date": due_date, "memo": memo})
        if self.is_synced:
            for name in ("lines", "fees", "due_date"):
                if name in clean:
                    raise InvariantViolation(
                        f"'{name}' of a synced invoice comes from "
                        f"{self.external_ref.system if self.external_ref else 'its source'}; "
                        "it changes only through the sync",
                        rule="I10",
                        path=name,
                    )
        # A day given is a day, needed or not; a new due date needs one.
        if today is None and "due_date" in clean:
            raise ValidationError.single(
                "today",
                "missing",
                "'today' is required with a new 'due_date', which may not be in the past",
            )
        if today is not None or "due_date" in clean:
            clean_today = _fields.plain_date("today", today)
            if "due_date" in clean:
                _refuse_past_due(clean["due_date"], clean_today, self.issue_date)
        return self._revised(clean)

    @checked_arguments
    def add_fee(
        self,
        partner: Partner,
        *,
        kind: FeeKind | str,
        amount: Money | str | int | Decimal,
        name: str | None = None,
        covered_by_customer: bool = True,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Invoice:
        """Add a fee line (a late payment fee, or a return fee passed on to
        the customer), with the same rules as :meth:`update`.

        Errors name the arguments (``kind``, ``amount``, ...). A ``card``
        fee is refused (``ValidationError`` at ``kind``): the card fee is the
        payment's (I8). A synced invoice's fees come from its source (I10)
        and a void or archived invoice is not edited (I4): a return fee
        passed on to the customer is then billed in the source system (it
        arrives with the sync) or on a new invoice. As :meth:`update`, it
        first checks whose invoice it is (``NotFound`` for another
        partner's, which learns nothing of it), who edits it
        (``PermissionDenied``) and that it is not void or archived, then
        the fee.
        """
        self._own(partner)
        if by is not None:
            partner.authorize(by, Action.EDIT_INVOICES)
        self._refuse_closed("edited")
        data: dict[str, object] = {
            "kind": kind,
            "amount": amount,
            "covered_by_customer": covered_by_customer,
        }
        if name is not None:
            data["name"] = name
        fee = Fee.parse(data, self.currency)
        if fee.kind is FeeKind.CARD:
            raise ValidationError.single("kind", "card_fee_on_invoice", _CARD_FEE_ON_INVOICE)
        try:
            return self.update(partner, by=by, fees=(*self.fees, fee))
        except ValidationError as error:
            if error.codes != ["amount_too_large"]:  # the fee is parsed: ``by`` refused
                raise
            raise _too_large("amount", comes_to="keep the invoice's total to") from None

    @checked_arguments
    def void(self, partner: Partner, *, by: TeamMemberId | TeamMember | None = None) -> Invoice:
        """Void the invoice: only while nothing is paid, a processing payment
        included (I4). Voiding a void invoice changes nothing."""
        self._own(partner)
        if by is not None:
            partner.authorize(by, Action.EDIT_INVOICES)
        if self.status is InvoiceStatus.VOID:
            return self
        if self.status is InvoiceStatus.ARCHIVED:
            raise InvariantViolation(
                "an archived invoice cannot be voided", rule="I4", path="status"
            )
        if self.amount_paid.is_positive:
            raise InvariantViolation(
                f"invoice {self.number} cannot be voided: {self.amount_paid} is paid "
                "(void only while nothing is paid)",
                rule="I4",
                path="status",
            )
        new = attrs.evolve(self, status=InvoiceStatus.VOID)
        return _with_events(new, self, self._event(InvoiceUpdated, ("status",)))

    @checked_arguments
    def archive(self, partner: Partner, *, by: TeamMemberId | TeamMember | None = None) -> Invoice:
        """Archive (the product's delete): hidden from the customer's users,
        history kept (I4). Allowed when open with nothing paid, paid, or void;
        refused while partly paid. Archiving an archived invoice changes
        nothing."""
        self._own(partner)
        if by is not None:
            partner.authorize(by, Action.EDIT_INVOICES)
        if self.status is InvoiceStatus.ARCHIVED:
            return self
        if self.is_partly_paid:
            raise InvariantViolation(
                f"invoice {self.number} is partly paid ({self.amount_paid} of {self.total}): "
                "archiving would hide what is still owed",
                rule="I4",
                path="status",
            )
        new = attrs.evolve(self, status=InvoiceStatus.ARCHIVED)
        return _with_events(new, self, self._event(InvoiceArchived, ("status",)))

    # -- the sync -------------------------------------------------------------------

    @checked_arguments
    def apply_sync(
        self,
        *,
        number: object = KEEP,
        lines: object = KEEP,
        fees: object = KEEP,
        issue_date: object = KEEP,
        due_date: object = KEEP,
        memo: object = KEEP,
        paid_in_source: object = KEEP,
    ) -> Invoice:
        """What the integration says changed: the one path that changes a
        synced invoice's amounts and due date (I10). Dates are kept as
        the source has them. The total stays above zero (I3) and at least the
        amount paid (I5); a void or archived invoice is not changed (I4), nor
        is a manual one (I10, at ``external_ref``).

        ``paid_in_source`` is the source's running figure of what was paid
        or credited on the invoice there (not a change to it): a ``Money`` or
        a decimal amount, as a line's unit amount; zero or ``None`` for
        nothing. With the payments made here it may not come to more than
        the total (I5, at ``paid_in_source``; nothing is changed); a new
        total below the payments made here alone is refused at ``lines`` (or
        ``fees``), whatever the figure. A balance
        brought to zero makes the invoice ``paid`` (``invoice_paid``); a
        lower figure later makes it ``open`` again."""
        if not self.is_synced:
            # A manual invoice has no external_ref, which makes one synced.
            raise InvariantViolation(
                "only a synced invoice is changed by a sync", rule="I10", path="external_ref"
            )
        self._refuse_closed("changed")
        return self._revised(
            self._changed(
                {
                    "number": number,
                    "lines": lines,
                    "fees": fees,
                    "issue_date": issue_date,
                    "due_date": due_date,
                    "memo": memo,
                    "paid_in_source": paid_in_source,
                }
            )
        )

    # -- payments (through altpay_core.payment) -------------------------------------

    @checked_arguments
    def _apply_payment(
        self, payment_id: PaymentId, amount: Money, *, at: dt.datetime | None = None
    ) -> Invoice:
        """Apply a payment's part: the invoice must be open (I4), the amount
        above zero, in the invoice's currency (I2) and at most the balance
        (I5). Reaching a zero balance makes it ``paid`` (``invoice_paid``).
        The event happened ``at`` (an aware datetime; the current time if
        omitted): the payment's time, or, should that come before the
        invoice was created or before its pending events, the latest of
        those (its events stay oldest first).

        The library's own step for :mod:`altpay_core.payment`, not part of
        the public API: :func:`altpay_core.payment.pay_invoices` calls this
        for each invoice of a payment, with the payment's time, after
        checking the payer (I1), the idempotency key and the card fee (I8);
        call that instead, so that the payment and its invoices are stored
        together.
        """
        if not isinstance(payment_id, PaymentId):
            raise ValidationError.single(
                "payment_id", "wrong_type", "'payment_id' must be a payment id"
            )
        when = _when(at)
        _refuse_unless_open(self)
        money = _positive_money_in("amount", amount, self.currency)
        if any(part.payment_id == payment_id for part in self.payments):
            raise InvariantViolation(
                f"payment {payment_id} is already applied to invoice {self.number}",
                rule="I5",
                path="payment_id",
            )
        if money > self.balance:
            raise InvariantViolation(
                f"{money} is more than the balance of invoice {self.number} "
                f"({self.balance}): overpayment is refused",
                rule="I5",
                path="amount",
            )
        paid = money == self.balance
        new = attrs.evolve(
            self,
            payments=(*self.payments, AppliedPayment(payment_id, money)),
            status=InvoiceStatus.PAID if paid else InvoiceStatus.OPEN,
        )
        changes = _derived_changes(self, new)
        if paid:
            event = self._event(InvoicePaid, changes, when)
        else:
            event = self._event(InvoiceUpdated, changes, when)
        return _with_events(new, self, event)

    @checked_arguments
    def _release_payment(
        self, payment_id: PaymentId | str, *, at: dt.datetime | None = None
    ) -> Invoice:
        """Give a payment's part back (it failed, was returned, charged back
        or refunded, I6): the balance goes up again, and a paid invoice is
        open again. An archived invoice stays archived; the record of the
        part stays, marked released. The ``invoice_updated`` event happened
        ``at`` (the current time if omitted; never before the invoice's
        creation or pending events, as in :meth:`_apply_payment`).

        The library's own step for :mod:`altpay_core.payment`, not part of
        the public API: called by the functions there that change the
        payment too (:func:`~altpay_core.payment.fail_payment`,
        :func:`~altpay_core.payment.return_payment`,
        :func:`~altpay_core.payment.charge_back_payment`,
        :func:`~altpay_core.payment.refund_payment`), with the time they
        record on the payment's event; call those instead.
        """
        when = _when(at)
        part = self.applied(payment_id)
        if part.released:
            raise InvariantViolation(
                f"payment {payment_id} was already given back on invoice {self.number}",
                rule="I6",
                path="payment_id",
            )
        status = InvoiceStatus.OPEN if self.status is InvoiceStatus.PAID else self.status
        new = attrs.evolve(
            self,
            payments=tuple(
                attrs.evolve(p, released=True) if p is part else p for p in self.payments
            ),
            status=status,
        )
        changes = _derived_changes(self, new)
        return _with_events(new, self, self._event(InvoiceUpdated, changes, when))

    # -- internals ------------------------------------------------------------------

    def _event(
        self, kind: type[Event], changes: tuple[str, ...] = (), at: dt.datetime | None = None
    ) -> Event:
        # Events stay oldest first: a time (given, or the clock's) before the
        # invoice was created, or before its pending events, counts as the
        # latest of those.
        at = max(
            utc_now() if at is None else at,
            self.created_at,
            *(event.occurred_at for event in self.events),
        )
        return kind(
            partner_id=self.partner_id, aggregate_id=str(self.id), occurred_at=at, changes=changes
        )

    def _own(self, partner: Partner) -> None:
        _fields.argument("partner", partner, Partner, "a Partner")
        if partner.id != self.partner_id:
            raise NotFound("invoice", self.id)

    def _refuse_closed(self, what: str) -> None:
        if self.status in (InvoiceStatus.VOID, InvoiceStatus.ARCHIVED):
            article = "an" if self.status is InvoiceStatus.ARCHIVED else "a"
            raise InvariantViolation(
                f"{article} {self.status.value} invoice cannot be {what}", rule="I4", path="status"
            )

    def _changed(self, wanted: dict[str, object]) -> dict[str, Any]:
        """The values of ``wanted`` (``KEEP`` for none) read as the fields
        are, every malformed one reported at once; of those, the ones that
        differ from the invoice's, in the order given. A value equal to the
        invoice's is no change, and so is checked no further."""
        found = FieldErrors()
        clean: dict[str, Any] = {}
        for name, value in wanted.items():
            if value is KEEP:
                continue
            if name == "lines":
                clean[name] = found.check("", _lines_in, value, self.currency)
            elif name == "fees":
                clean[name] = found.check("", _fees_in, value, self.currency, self.fees)
            elif name in ("issue_date", "due_date"):
                clean[name] = found.check("", _fields.plain_date, name, value)
            elif name == "memo":
                clean[name] = found.check("", _memo, name, value)
            elif name == "paid_in_source":
                clean[name] = found.check("", _source_paid, name, value, self.currency)
            else:
                clean[name] = found.check("", _number, name, value)
        found.raise_if_any()
        return {name: value for name, value in clean.items() if value != getattr(self, name)}

    def _revised(self, clean: dict[str, Any]) -> Invoice:
        """The invoice with the changed values ``clean`` (from :meth:`_changed`),
        its total, balance and status checked again, carrying
        ``invoice_updated`` (or ``invoice_paid``), whose ``changes`` name the
        fields changed, then the derived amounts and status that changed."""
        if not clean:
            return self
        path = "lines" if "lines" in clean else "fees"  # what changed the total
        try:
            subtotal, fees = _subtotal_and_fees(
                clean.get("lines", self.lines), clean.get("fees", self.fees), self.currency
            )
        except ValidationError:  # amount_too_large: the change made it so
            raise _too_large(path, comes_to="add up to") from None
        total = Money._exact(_CONTEXT.add(subtotal, fees), self.currency)
        _refuse_empty_total(total, path)
        # What is paid with the source's new figure, if the sync gives one.
        zero, source = _zero(self.currency), clean.get("paid_in_source", self.paid_in_source)
        here = self.amount_paid - (self.paid_in_source or zero)
        paid = here + (source or zero)
        # At the source's figure only when the sync changes it (and it tips the sum over).
        given = source if "paid_in_source" in clean else None
        if total < paid and _overpaid_at(total, here, given, path) == "paid_in_source":
            raise InvariantViolation(
                f"{source} paid in the source and {here} paid here come "
                f"to more than the total {total}: the balance would go below zero",
                rule="I5",
                path="paid_in_source",
            )
        if total < paid:
            raise InvariantViolation(
                f"the new total {total} is below the {paid} already paid: "
                "the balance would go below zero",
                rule="I5",
                path=path,
            )
        status = _status_for(self.status, total, paid)
        new = attrs.evolve(self, status=status, **clean)
        changes = (*clean, *_derived_changes(self, new))
        if status is InvoiceStatus.PAID and self.status is not InvoiceStatus.PAID:
            return _with_events(new, self, self._event(InvoicePaid, changes))
        return _with_events(new, self, self._event(InvoiceUpdated, changes))

    # -- notebooks ------------------------------------------------------------------

    def _repr_html_(self) -> str:
        rows = [
            ("number", self.number),
            ("status", self.status.value + (" (partly paid)" if self.is_partly_paid else "")),
            ("issued", self.issue_date.isoformat()),
            ("due", self.due_date.isoformat()),
            *((f"{line.quantity} x {line.description}", str(line.amount)) for line in self.lines),
            *((fee.name, str(fee.amount)) for fee in self.fees),
            ("total", str(self.total)),
            ("paid", str(self.amount_paid)),
            ("balance", str(self.balance)),
            ("source", str(self.external_ref) if self.external_ref else "manual"),
        ]
        return html_table(f"Invoice {self.number}", rows)


def _status_for(current: InvoiceStatus, total: Money, paid: Money) -> InvoiceStatus:
    """The status an invoice with these amounts has (I4)."""
    if current is InvoiceStatus.ARCHIVED:
        return current
    if current is InvoiceStatus.VOID:
        return current if paid.is_zero else InvoiceStatus.OPEN
    return InvoiceStatus.PAID if paid == total else InvoiceStatus.OPEN


def _partner_and_customer(partner: Partner, customer: Customer) -> None:
    """A ``wrong_type`` error for a partner or customer that is not one
    (``None`` above all), rather than an ``AttributeError`` further in."""
    _fields.argument("partner", partner, Partner, "a Partner")
    _fields.argument("customer", customer, Customer, "a Customer")


def _refuse_unless_open(invoice: Invoice, path: str = "status") -> None:
    """I4: only an open invoice takes payments. Reported at the invoice's
    ``status``, or at ``path``: the argument a caller gave the invoice as."""
    if not invoice.accepts_payments:
        raise InvariantViolation(
            f"invoice {invoice.number} is {invoice.status.value}: "
            "only an open invoice takes payments",
            rule="I4",
            path=path,
        )


def _refuse_customer(partner: Partner, customer: Customer) -> None:
    if customer.partner_id != partner.id:
        raise InvariantViolation(
            f"customer {customer.id} is not a customer of {partner.name}",
            rule="I1",
            path="customer",
        )
    if not customer.is_active:
        raise InvariantViolation(
            f"{customer.company} is archived: an archived customer gets no new invoices",
            rule="C8",
            path="customer",
        )


def _refuse_past_due(due_date: dt.date, today: dt.date, issue_date: dt.date) -> None:
    if due_date < today:
        raise InvariantViolation(
            f"the due date {due_date} is in the past (today is {today})",
            rule="I3",
            path="due_date",
        )
    if due_date < issue_date:
        raise InvariantViolation(
            f"the due date {due_date} is before the issue date {issue_date}",
            rule="I3",
            path="due_date",
        )


def _overpaid_at(total: Money, here: Money, source: Money | None, otherwise: str) -> str:
    """Where an I5 refusal points when ``here`` (the payments made on the
    platform) and ``source`` (a figure paid in the source, ``None`` for none
    or for one left as it was) come to more than ``total``: at
    ``paid_in_source`` when the payments alone stay within the total, so that
    the source's figure tips the sum over; else at ``otherwise`` (what set
    the total, or the payments), as no figure of the source could help."""
    return "paid_in_source" if source is not None and here <= total else otherwise


def _refuse_empty_total(total: Money, path: str) -> None:
    if not total.is_positive:
        raise InvariantViolation(
            f"an invoice's total must be greater than zero (got {total})",
            rule="I3",
            path=path,
        )
