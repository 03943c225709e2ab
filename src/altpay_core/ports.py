"""Ports: how the domain is stored, whatever the storage.

Services reach storage only through a :class:`UnitOfWork`, which carries one
repository per aggregate. Every query is scoped to one partner: another
partner's data is never returned, not even by id. ``save`` checks the
version the aggregate was read at (optimistic concurrency) and returns the
stored value (version + 1, no pending events); the events go to the outbox in
the same transaction. Nothing is written unless :meth:`UnitOfWork.commit` is
called::

    with uow:
        customer = uow.customers.get(partner_id, customer_id)
        uow.customers.save(customer.add_user(first_name="Bo", last_name="Li",
                                             email="bo@globex.example"))
        uow.commit()

The store keeps the keys that must be unique in the data itself: ids,
customers' external references (C10), invoice numbers and invoice external
references per partner, payments' idempotency keys per partner. It also
keeps the rules between aggregates that another unit of work could break
meanwhile, checked at commit against the data as it stands then: a
customer carries only tags of its partner's catalog, a tag taken out of
the catalog is carried by no customer, a new customer is added by hand
only while no integration of its partner syncs customers, and is synced
only from a connected integration of its partner that syncs them (C6), a new
invoice names a stored customer of its partner that is not archived (C8,
I1), a resolved access request names a team member who may resolve it
(C9), and a customer's first payment methods name a stored customer of
their partner. It does not check
that a payment's invoices are stored (the domain and
:mod:`altpay_core.services` see to that).

Within one aggregate, a save of a stored one is refused when it changes
it as no command does: a field that never changes (:data:`FIXED_FIELDS`), a
saved payment method (:func:`check_saved_methods`), and an invoice's,
payment's, scheduled payment's, resolved access request's or partner's
history (:func:`check_invoice_history`, :func:`check_payment_history`,
:func:`check_scheduled_payment_history`,
:func:`check_access_request_history`, :func:`check_partner_history`).

An adapter implements these classes and proves it with the contract suite in
:mod:`altpay_core.testing.contracts`.
"""

from __future__ import annotations

import abc
import base64
import datetime as dt
import enum
import json
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Final, Generic, Self, TypeVar

import attrs

from . import _fields
from ._arguments import checked_arguments, checked_constructor
from .customer import AccessRequest, AccessRequestStatus, Customer, CustomerStatus
from .errors import (
    AltpayError,
    ConcurrencyConflict,
    FieldErrors,
    InvariantViolation,
    NotFound,
    UniqueKeyTaken,
    ValidationError,
    shown,
)
from .events import Event
from .invoice import AppliedPayment, Invoice, InvoiceStatus
from .partner import Action, Partner, Role
from .payment import (
    CustomerPaymentMethods,
    Payment,
    PaymentStatus,
    ScheduledPayment,
    ScheduledPaymentId,
    ScheduledPaymentStatus,
)
from .values import (
    AccessRequestId,
    CustomerId,
    EmailAddress,
    EntityId,
    ExternalRef,
    InvoiceId,
    PartnerId,
    PaymentId,
    TagId,
    TeamMemberId,
)

__all__ = [
    "AccessRequestRepository",
    "Cursor",
    "CustomerRepository",
    "DEFAULT_PAGE_SIZE",
    "FIXED_FIELDS",
    "FixedField",
    "InvoiceRepository",
    "Listing",
    "MAX_PAGE_SIZE",
    "Outbox",
    "OutboxMessage",
    "Page",
    "PageRequest",
    "PartnerRepository",
    "PaymentMethodRepository",
    "PaymentRepository",
    "ScheduledPaymentRepository",
    "Store",
    "UnitOfWork",
    "access_request_pending",
    "check_access_request_history",
    "check_choice",
    "check_date",
    "check_email",
    "check_fixed_fields",
    "check_id",
    "check_invoice_history",
    "check_partner_history",
    "check_payment_history",
    "check_saved_methods",
    "check_scheduled_payment_history",
    "check_text",
    "customer_added_by_hand",
    "customer_cursor",
    "customer_ref_taken",
    "customer_sort_key",
    "fixed_field_changed",
    "idempotency_key_taken",
    "invoice_cursor",
    "invoice_customer_archived",
    "invoice_customer_missing",
    "invoice_number_taken",
    "invoice_ref_taken",
    "invoice_sort_key",
    "may_add_customer",
    "may_resolve",
    "methods_customer_missing",
    "payment_customer_archived",
    "payment_method_archived",
    "payment_payer_missing",
    "resolver_not_allowed",
    "tag_not_in_catalog",
    "tag_still_carried",
]

T = TypeVar("T")

DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 1000


# -- pagination ----------------------------------------------------------------


class Listing(_fields.Choices, enum.Enum):
    """Which listing a :class:`Cursor` is a place in. ``invoices.list`` and
    ``invoices.overdue`` share one, as they share the order."""

    CUSTOMERS = "customers"
    INVOICES = "invoices"


def _listing(value: object) -> Listing:
    """A listing, given as itself or its name."""
    return _fields.choice("listing", value, Listing)


@checked_constructor
@attrs.frozen
class Cursor:
    """A position in a sorted listing: which listing, and the sort key and id
    of one row.

    Opaque to clients (:meth:`encode` gives a URL-safe string); stable under
    inserts, since it names a row's place in the order, not an offset.
    """

    listing: Listing = attrs.field(converter=_listing)
    key: str
    id: str

    def __attrs_post_init__(self) -> None:
        # What a row of the listing gives, so that every cursor encodes, and
        # decodes back as itself.
        found = FieldErrors()
        for name, made in (("key", _key_made), ("id", _id_made)):
            value = getattr(self, name)
            if isinstance(value, str) and type(value) is not str:
                value = _fields.plain_str(value)  # kept, and checked, as a plain str
                object.__setattr__(self, name, value)
            if not isinstance(value, str):
                found.add(name, "wrong_type", f"'{name}' must be text (got {shown(value)})")
            elif not _fields.valid_unicode(value) or not made(self.listing, value):
                found.add(
                    name,
                    "invalid_cursor",
                    f"'{name}' must be the {name} of a row of the {self.listing.value} "
                    f"listing (got {shown(value)})",
                )
        found.raise_if_any()

    @checked_arguments
    def encode(self) -> str:
        """The cursor as URL-safe text, what ``after`` and ``before`` take
        back (see :meth:`decode`)."""
        raw = json.dumps([self.listing.value, self.key, self.id], ensure_ascii=False).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    @checked_arguments
    def decode(cls, text: str, path: str = "after", *, listing: Listing | str) -> Cursor:
        """The cursor ``text`` encodes, in the form a page of ``listing``
        makes; anything else is a ``ValidationError`` (``invalid_cursor``) at
        ``path``. A cursor is encoded, not signed: text of that form names a
        place in the order whoever made it (every query stays scoped to its
        partner)."""
        listing = _listing(listing)
        try:
            padded = text + "=" * (-len(text) % 4)
            parts = json.loads(base64.urlsafe_b64decode(padded.encode()))
        except (ValueError, TypeError, AttributeError, RecursionError):
            parts = None
        # Exactly what encode() writes for a row of this listing: a JSON
        # array of three strings, the listing's name, a key and an id.
        if (
            type(parts) is list
            and len(parts) == 3
            and all(type(part) is str and _fields.valid_unicode(part) for part in parts)
            and parts[0] == listing.value
            and _row_made(listing, parts[1], parts[2])
        ):
            return cls(listing, parts[1], parts[2])
        raise ValidationError.single(
            path,
            "invalid_cursor",
            f"'{path}' must be a cursor from an earlier page of this listing",
        )


def _row_made(listing: Listing, key: str, row_id: str) -> bool:
    """Whether ``key`` and ``row_id`` have the form a row of ``listing`` gives
    them: a case-folded company name and a customer id, or a due date, a
    space and a number, and an invoice id."""
    return _id_made(listing, row_id) and _key_made(listing, key)


def _id_made(listing: Listing, row_id: str) -> bool:
    kind = CustomerId if listing is Listing.CUSTOMERS else InvoiceId
    try:
        kind(row_id)
    except ValidationError:
        return False
    return True


def _key_made(listing: Listing, key: str) -> bool:
    if listing is Listing.CUSTOMERS:
        return key == key.casefold()
    try:
        due = dt.date.fromisoformat(key[:10])
    except ValueError:
        return False
    return due.isoformat() == key[:10] and key[10:11] == " " and len(key) > 11


@checked_constructor
@attrs.frozen
class PageRequest:
    """Which page of a listing: ``limit`` rows after or before a cursor.

    Validates the public API's paging parameters (``limit`` 1 to 1000,
    default 100; ``after`` and ``before`` not both).
    """

    limit: int = DEFAULT_PAGE_SIZE
    after: Cursor | None = None
    before: Cursor | None = None

    def __attrs_post_init__(self) -> None:
        found = FieldErrors()
        limit = found.check("", _limit, self.limit)
        if limit is not None and limit is not self.limit:
            object.__setattr__(self, "limit", limit)  # a plain int, never a subclass
        for name in ("after", "before"):
            if (cursor := getattr(self, name)) is not None:
                found.check("", _fields.argument, name, cursor, Cursor, "a Cursor or None")
        if not found:
            found.check("", _one_cursor, self.after, self.before)
        found.raise_if_any()

    @classmethod
    @checked_arguments
    def parse(
        cls,
        limit: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        before: str | None = None,
        *,
        listing: Listing | str | None = None,
    ) -> PageRequest:
        """The page asked for; ``after`` and ``before`` must be cursors that
        pages of ``listing`` made (without ``listing``, no cursor is taken)."""
        if listing is not None:
            listing = _listing(listing)
        _limit(limit)
        _one_cursor(after, before)
        return cls(
            limit,
            None if after is None else _decode(after, "after", listing),
            None if before is None else _decode(before, "before", listing),
        )


def _limit(limit: object) -> int:
    # Made a plain int before it is compared: a subclass's own comparisons
    # could pass any limit, and a page then holds more rows than its cap.
    number = (
        None if isinstance(limit, bool) or not isinstance(limit, int) else _fields.plain_int(limit)
    )
    if number is None or not 1 <= number <= MAX_PAGE_SIZE:
        got = shown(limit if number is None else number)
        raise ValidationError.single(
            "limit",
            "invalid_limit",
            f"'limit' must be a whole number from 1 to {MAX_PAGE_SIZE} (got {got})",
        )
    return number


def _one_cursor(after: object, before: object) -> None:
    if after is not None and before is not None:
        raise ValidationError.single(
            "before", "conflicting_cursors", "give 'after' or 'before', not both"
        )


def _decode(text: str, path: str, listing: Listing | str | None) -> Cursor:
    if listing is None:
        raise ValidationError.single(path, "invalid_cursor", f"'{path}' is not taken here")
    return Cursor.decode(text, path, listing=listing)


@checked_constructor
@attrs.frozen
class Page(Generic[T]):
    """One page of a listing, with the cursors to move on from it.

    Only ``items`` is required: a page built with nothing else is the whole
    listing (no cursors, no page before or after it).
    """

    items: tuple[T, ...]
    start_cursor: str | None = None
    end_cursor: str | None = None
    has_next_page: bool = False
    has_previous_page: bool = False

    def __attrs_post_init__(self) -> None:
        # Every field, so that a page hashes, compares and serializes.
        found = FieldErrors()
        found.check("", _fields.argument, "items", self.items, tuple, "a tuple")
        for name in ("start_cursor", "end_cursor"):
            if (cursor := getattr(self, name)) is not None:
                found.check("", _fields.argument, name, cursor, str, "a cursor (text) or None")
        for name in ("has_next_page", "has_previous_page"):
            found.check("", _fields.boolean, name, getattr(self, name))
        found.raise_if_any()

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@checked_arguments
def customer_sort_key(customer: Customer) -> str:
    """Customers are listed by company name, case-insensitively, then by id.

    The key is the case-folded company name; ties are broken by the id's text.
    Both compare by code point (as UTF-8 bytes do, and as a ``C`` collation
    does), never by a locale.
    """
    if type(customer) is not Customer:  # a subclass is a Customer too
        _fields.argument("customer", customer, Customer, "a Customer")
    return customer.company.casefold()


@checked_arguments
def customer_cursor(customer: Customer) -> str:
    """The opaque cursor that names ``customer``'s place in a listing."""
    return Cursor(Listing.CUSTOMERS, customer_sort_key(customer), str(customer.id)).encode()


@checked_arguments
def invoice_sort_key(invoice: Invoice) -> str:
    """Invoices are listed by due date, then number, then id.

    The key is the due date in ISO form (``2026-02-01``, always ten
    characters), a space, and the invoice number as stored (trimmed, case
    kept), so that comparing keys compares the due dates and then the
    numbers; ties are broken by the id's text. Everything compares by code
    point (as UTF-8 bytes do, and as a ``C`` collation does), so ``"10"``
    sorts before ``"9"``.
    """
    if type(invoice) is not Invoice:  # a subclass is an Invoice too
        _fields.argument("invoice", invoice, Invoice, "an Invoice")
    return f"{invoice.due_date.isoformat()} {invoice.number}"


@checked_arguments
def invoice_cursor(invoice: Invoice) -> str:
    """The opaque cursor that names ``invoice``'s place in a listing."""
    return Cursor(Listing.INVOICES, invoice_sort_key(invoice), str(invoice.id)).encode()


# -- the arguments every repository checks -------------------------------------------
#
# What a repository method is given is checked as the built-in stores check
# it (the contracts hold every adapter to it): each wrong argument is a
# ValidationError at the parameter's name, never a NotFound nor a driver's
# error.

_Id = TypeVar("_Id", bound=EntityId)
_Member = TypeVar("_Member", bound=enum.Enum)


@checked_arguments
def check_id(name: str, value: object, kind: type[_Id]) -> _Id:
    """``value``, an argument named ``name``, as an id of ``kind``: the id
    itself or its text (``"cus_..."``). Anything else is a
    ``ValidationError`` at ``name``."""
    return _fields.entity_id(name, value, kind)


@checked_arguments
def check_text(name: str, value: object) -> str:
    """``value``, a text argument named ``name`` (a name prefix, an invoice
    number, an idempotency key), as text a database can hold: a NUL
    character or a lone surrogate is a ``ValidationError`` at ``name``
    (``invalid_text``), anything but a string ``wrong_type``. A subclass of
    ``str`` is checked, and returned, as its plain text."""
    return _fields.query_text(name, value)


@checked_arguments
def check_email(name: str, value: object) -> EmailAddress:
    """``value``, an argument named ``name``, as an email address: the
    address itself or its text, normalised; anything else is a
    ``ValidationError`` at ``name``."""
    if isinstance(value, EmailAddress):
        return value
    try:
        return EmailAddress(value)  # type: ignore[arg-type]
    except ValidationError as error:
        raise error.under(name) from None


@checked_arguments
def check_choice(name: str, value: object, kind: type[_Member]) -> _Member:
    """``value``, an argument named ``name``, as a member of the enumeration
    ``kind`` (the member or its value: ``"open"`` for
    ``InvoiceStatus.OPEN``), or a ``ValidationError`` at ``name``."""
    return _fields.choice(name, value, kind)


@checked_arguments
def check_date(name: str, value: object) -> dt.date:
    """``value``, an argument named ``name``, as a calendar date: a datetime
    or anything else is a ``ValidationError`` at ``name`` (``invalid_date``)."""
    return _fields.plain_date(name, value)


# -- the unique keys every store keeps ------------------------------------------------
#
# The errors a save gets when another aggregate of the partner holds its key:
# every adapter raises these, so that callers see one message, kind and key
# whichever store they use.


@checked_arguments
def access_request_pending(email: EmailAddress) -> ConcurrencyConflict:
    """Another access request of the partner from ``email`` (compared by its
    :attr:`~altpay_core.values.EmailAddress.key`) is pending: read it, rather
    than store a second one. ``.key`` holds the email's key."""
    return ConcurrencyConflict(
        f"an access request of {email} is already pending with this partner; "
        "nothing was written (read the pending request rather than open another)",
        kind="access request",
        key=email.key,
    )


@checked_arguments
def customer_ref_taken(ref: ExternalRef) -> UniqueKeyTaken:
    """Another customer of the partner that is not archived is synced from ``ref`` (C10)."""
    return UniqueKeyTaken(
        f"external reference {ref} is already another customer's of this partner "
        "that is not archived; nothing was written",
        rule="C10",
        path="external_ref",
        kind="customer",
        key=ref,
    )


@checked_arguments
def invoice_number_taken(number: str) -> UniqueKeyTaken:
    """Another invoice of the partner, of any status, has ``number``."""
    return UniqueKeyTaken(
        f"invoice number {number!r} is already another invoice's of this partner; "
        "nothing was written",
        rule="invoice-number",
        path="number",
        kind="invoice",
        key=number,
    )


@checked_arguments
def invoice_ref_taken(ref: ExternalRef) -> UniqueKeyTaken:
    """Another invoice of the partner is synced from ``ref``."""
    return UniqueKeyTaken(
        f"external reference {ref} is already another invoice's of this partner; "
        "nothing was written",
        rule="invoice-ref",
        path="external_ref",
        kind="invoice",
        key=ref,
    )


@checked_arguments
def idempotency_key_taken(key: str) -> ConcurrencyConflict:
    """Another payment of the partner was made under ``key``: read it and replay it.
    The message does not echo the key (the client's own); ``.key`` holds it."""
    return ConcurrencyConflict(
        "this idempotency key is already another payment's of this partner; "
        "nothing was written (read the payment stored under it and replay it)",
        kind="payment",
        key=key,
    )


# -- the rules between aggregates ---------------------------------------------------
#
# What another unit of work could break between a read and a commit: every
# store checks these at commit, against the data as it stands then (with what
# the committing unit of work saves), and raises these errors, writing nothing.


@checked_arguments
def tag_not_in_catalog(customer: object, tag: object) -> InvariantViolation:
    """Customer ``customer`` carries ``tag``, which is not in its partner's
    catalog at commit (deleted meanwhile, say, or never there)."""
    return InvariantViolation(
        f"customer {customer} carries tag {tag}, which is not in its partner's catalog "
        "(deleted meanwhile?); nothing was written: read the partner and the customer again",
        rule="tags",
        path="tags",
    )


@checked_arguments
def tag_still_carried(partner: object, tag: object) -> ConcurrencyConflict:
    """Partner ``partner`` is saved without ``tag`` in its catalog, but a stored
    customer of the partner still carries it (another writer tagged it meanwhile)."""
    return ConcurrencyConflict(
        f"tag {tag} is taken out of partner {partner}'s catalog, but a customer of the "
        "partner carries it (another writer tagged it meanwhile); nothing was written: "
        "delete the tag again (services.delete_tag)",
        kind="partner",
        key=partner,
    )


@checked_arguments
def customer_added_by_hand(
    customer: object, partner: object, system: object = None
) -> InvariantViolation:
    """New customer ``customer`` was added by hand (it has no external
    reference), but at commit an integration of partner ``partner`` syncs
    its customers: connected after the draft began, say; or its external
    reference names ``system``, which at commit is no connected integration
    of the partner that syncs customers: built by hand with a made-up
    reference, or disconnected meanwhile (C6, at ``external_ref``)."""
    if system is not None:
        return InvariantViolation(
            f"customer {customer} is synced from {shown(system)}, but that is no integration "
            f"of partner {partner} that syncs customers (disconnected meanwhile?): a customer "
            "comes from a sync of its partner's, or is added by hand while none syncs "
            "customers; nothing was written",
            rule="C6",
            path="external_ref",
        )
    return InvariantViolation(
        f"customer {customer} is added by hand, but partner {partner}'s customers are synced "
        "from an integration (connected meanwhile?), and they are not added by hand: "
        "nothing was written",
        rule="C6",
    )


@checked_arguments
def may_add_customer(partner: Partner | None, ref: ExternalRef | None) -> bool:
    """Whether a new customer with external reference ``ref`` may be stored
    for ``partner`` (its state at commit; ``None`` for a partner not stored)
    (C6): with no reference (added by hand) while no integration of the
    partner syncs customers; with one, if ``ref.system`` names a connected
    integration of the partner that syncs customers, as
    :meth:`~altpay_core.Customer.from_sync` requires."""
    if ref is None:
        return partner is None or not partner.syncs_customers
    if partner is None:
        return False
    try:
        return partner.integration(ref.system).syncs_customers
    except NotFound:
        return False


@checked_arguments
def invoice_customer_missing(invoice: object, customer: object) -> InvariantViolation:
    """New invoice ``invoice`` names ``customer``, which is no stored customer
    of the invoice's partner (I1)."""
    return InvariantViolation(
        f"invoice {invoice} names customer {customer}, which is not a stored customer of "
        "its partner: an invoice belongs to one customer of its partner (nothing was written)",
        rule="I1",
        path="customer_id",
    )


@checked_arguments
def invoice_customer_archived(invoice: object, customer: object) -> InvariantViolation:
    """New invoice ``invoice`` names ``customer``, archived at commit (C8)."""
    return InvariantViolation(
        f"customer {customer} is archived (meanwhile, perhaps: read it again), and an "
        f"archived customer gets no new invoices: invoice {invoice} was not stored "
        "(nothing was written)",
        rule="C8",
        path="customer_id",
    )


@checked_arguments
def payment_customer_archived(payment: object, customer: object) -> InvariantViolation:
    """New payment ``payment`` names ``customer``, archived at commit (C8)."""
    return InvariantViolation(
        f"customer {customer} is archived (meanwhile, perhaps: read it again), and an "
        f"archived customer's invoices are not payable: payment {payment} was not stored "
        "(nothing was written)",
        rule="C8",
        path="customer_id",
    )


@checked_arguments
def payment_method_archived(
    payment: object, method: object, customer: object
) -> InvariantViolation:
    """New payment ``payment`` charges saved method ``method``, at commit
    archived, or not in the payment methods book of its customer
    ``customer`` (rule ``payment-method``)."""
    return InvariantViolation(
        f"payment method {method} is not an active method of customer {customer} "
        "(archived meanwhile, perhaps: read the payment methods again), and a payment "
        f"charges only an active saved method: payment {payment} was not stored "
        "(nothing was written)",
        rule="payment-method",
        path="payment_method_id",
    )


@checked_arguments
def payment_payer_missing(payment: object, user: object, customer: object) -> InvariantViolation:
    """New payment ``payment`` is made by ``user``, at commit no user of its
    customer ``customer`` (I1)."""
    return InvariantViolation(
        f"user {user} is not a user of customer {customer} (removed meanwhile, perhaps: "
        "read the customer again), and only a customer's users pay its invoices: payment "
        f"{payment} was not stored (nothing was written)",
        rule="I1",
        path="user_id",
    )


@checked_arguments
def may_resolve(partner: Partner | None, member: TeamMemberId | None) -> bool:
    """Whether ``member`` may resolve the access requests of ``partner`` (its
    state at commit; ``None`` for a partner not stored): one of its team,
    an Admin or Sub-Admin (C9)."""
    if partner is None:
        return False
    return any(m.id == member and m.may(Action.APPROVE_ACCESS_REQUESTS) for m in partner.team)


@checked_arguments
def resolver_not_allowed(request: object, member: object) -> InvariantViolation:
    """Access request ``request`` is saved resolved by team member ``member``,
    who at commit may not resolve requests (demoted or removed meanwhile) (C9)."""
    return InvariantViolation(
        f"access request {request} is resolved by team member {member}, who is no Admin or "
        "Sub-Admin of its partner at commit (demoted or removed meanwhile?): only they "
        "resolve access requests (nothing was written)",
        rule="C9",
        path="resolved_by",
    )


@checked_arguments
def methods_customer_missing(customer: object, partner: object) -> InvariantViolation:
    """New payment methods (a customer's first book) name ``customer``, which
    is no stored customer of partner ``partner``."""
    return InvariantViolation(
        f"payment methods of customer {customer}, which is not a stored customer of partner "
        f"{partner}: a customer's saved methods are its partner's (nothing was written)",
        rule="I1",
        path="customer_id",
    )


# -- what a save never changes -------------------------------------------------------


@checked_constructor
@attrs.frozen
class FixedField:
    """A field of a stored aggregate that no save may change (see
    :data:`FIXED_FIELDS`)."""

    path: str
    """The aggregate's attribute (``external_ref``)."""
    rule: str
    """The rule it keeps (``C10``)."""
    reason: str
    """What the rule says, for the error's message."""


FIXED_FIELDS: Final[Mapping[str, tuple[FixedField, ...]]] = {
    "customer": (
        FixedField("external_ref", "C10", "a customer's external reference never changes"),
    ),
    "invoice": (
        FixedField("customer_id", "I1", "an invoice belongs to one customer for good"),
        FixedField("external_ref", "I10", "an invoice's external reference never changes"),
        FixedField("currency", "I2", "an invoice keeps its currency"),
    ),
    "payment": (
        FixedField("customer_id", "I1", "a payment belongs to the customer who made it"),
        FixedField("idempotency_key", "idempotency", "a payment keeps the key it was made under"),
        FixedField("currency", "I2", "a payment keeps its currency"),
    ),
}
"""The fields each kind of aggregate keeps from its first save on, by kind.

The commands never change them; every store also refuses a save that does
(an ``attrs.evolve`` of a customer's external reference, an invoice moved to
another customer or rewritten into another currency, which would leave its
payments in the old one), with :func:`fixed_field_changed`, and writes
nothing.
"""


_KINDS: Final[Mapping[str, tuple[type, str]]] = {
    "partner": (Partner, "a Partner"),
    "customer": (Customer, "a Customer"),
    "access request": (AccessRequest, "an AccessRequest"),
    "invoice": (Invoice, "an Invoice"),
    "payment": (Payment, "a Payment"),
    "payment methods": (CustomerPaymentMethods, "a CustomerPaymentMethods"),
    "scheduled payment": (ScheduledPayment, "a ScheduledPayment"),
}
"""The kinds of aggregate, as a store's errors name them, with their class."""


_Aggregate = TypeVar("_Aggregate")


def _history_pair(stored: object, new: object, kind: type[_Aggregate], label: str) -> None:
    """The arguments of a history check: ``stored`` a ``kind`` or ``None``,
    ``new`` a ``kind``; anything else is a ``wrong_type`` error naming the
    argument, rather than an ``AttributeError`` further in."""
    if stored is not None:
        _fields.argument("stored", stored, kind, f"{label} or None")
    _fields.argument("new", new, kind, label)


@checked_arguments
def fixed_field_changed(kind: str, key: object, field: FixedField) -> InvariantViolation:
    """The error for a save of ``kind`` ``key`` that changes ``field``."""
    return InvariantViolation(
        f"{field.reason}: {kind} {key} is stored with another {field.path!r} (nothing was written)",
        rule=field.rule,
        path=field.path,
    )


@checked_arguments
def check_fixed_fields(kind: str, key: object, stored: object, new: object) -> None:
    """Refuse ``new`` if it changes a fixed field of ``stored`` (its current
    state in the store, or ``None`` when it is new there). ``kind`` names the
    aggregate as the errors do (``"partner"``, ``"customer"``, ``"access
    request"``, ``"invoice"``, ``"payment"``, ``"payment methods"``,
    ``"scheduled payment"``); any other is a ``ValidationError`` at
    ``kind``, not a check that quietly finds nothing."""
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValidationError.single(
            "kind",
            "invalid_choice",
            f"'kind' must be one of {', '.join(map(repr, _KINDS))} (got {shown(kind)})",
        )
    _history_pair(stored, new, *_KINDS[kind])
    if stored is None:
        return
    for field in FIXED_FIELDS.get(kind, ()):
        if getattr(stored, field.path) != getattr(new, field.path):
            raise fixed_field_changed(kind, key, field)


@checked_arguments
def check_saved_methods(stored: CustomerPaymentMethods | None, new: CustomerPaymentMethods) -> None:
    """Refuse ``new`` if it edits a saved method of ``stored`` (the book's
    current state in the store, or ``None`` when it is new there): another
    type, display name, last 4 digits or time added under the same id, a
    method dropped from the book, or an archived one made active again.
    Methods are added and archived, never edited or removed (rule
    ``payment-method``); the commands never do otherwise."""
    _history_pair(stored, new, CustomerPaymentMethods, "a CustomerPaymentMethods")
    if stored is None:
        return
    now = {method.id: (index, method) for index, method in enumerate(new.methods)}
    for method in stored.methods:
        if method.id not in now:
            raise InvariantViolation(
                f"payment method {method.id} ({method.label}) is saved: a method is "
                "archived, never removed (nothing was written)",
                rule="payment-method",
                path="methods",
            )
        index, kept = now[method.id]
        if attrs.evolve(kept, status=method.status) != method:
            raise InvariantViolation(
                f"payment method {method.id} ({method.label}) is saved with other details: "
                "they are never edited; add a new method and archive this one "
                "(nothing was written)",
                rule="payment-method",
                path=f"methods[{index}]",
            )
        if kept.is_active and not method.is_active:
            raise InvariantViolation(
                f"payment method {method.id} ({method.label}) is archived: it stays "
                "archived; add a new method (nothing was written)",
                rule="payment-method",
                path=f"methods[{index}].status",
            )


_Part = tuple[str, str, str, bool]
"""A payment's part of an invoice as its data has it: the payment's id, the
amount and its currency (as ``to_dict`` writes them), and whether it was
released."""

_LEAVES: Final = {
    InvoiceStatus.VOID.value: frozenset({InvoiceStatus.ARCHIVED.value}),
    InvoiceStatus.ARCHIVED.value: frozenset(),
}
"""Where a command takes a void or archived invoice (I4): a void one is
archived, an archived one stays archived."""


def _parts(invoice: Invoice) -> list[_Part]:
    """An invoice's payment parts, as :data:`_Part` holds them."""
    return [
        (p.payment_id.value, str(p.amount.amount), p.amount.currency.code, p.released)
        for p in invoice.payments
    ]


@checked_arguments
def check_invoice_history(stored: Invoice | None, new: Invoice) -> None:
    """Refuse ``new`` if it rewrites the payment history or the final status
    of ``stored`` (the invoice's current state in the store, or ``None``
    when it is new there). The commands add payment parts and release them
    (a failure, return, chargeback or refund), never otherwise; and no
    command takes a void invoice anywhere but to the archive, nor an
    archived one out of it. So
    ``InvariantViolation`` for the first found, stored part by stored part,
    then the status:

    - a part of ``stored`` (by payment id) missing from ``new``: rule
      ``I5``, at ``payments[i]``, ``i`` its index in ``stored``;
    - a part with another amount: rule ``I5``, at ``payments[i]``, ``i``
      its index in ``new``;
    - a released part that counts again: rule ``I6``, at ``payments[i]``,
      ``i`` its index in ``new``;
    - a void ``stored`` saved as open or paid, or an archived one saved
      with any other status: rule ``I4``, at ``status`` (a void invoice
      may be archived; nothing leaves the archive).

    Parts added, and parts released, are fine. Such a save (an
    ``attrs.evolve``, or a ``from_dict`` of edited data) would bring back
    a balance already paid, and leave the payment unable to fail or be
    returned; every store refuses it and writes nothing."""
    _history_pair(stored, new, Invoice, "an Invoice")
    if stored is not None:
        _check_stored_history(stored.status.value, _parts(stored), new)


def _check_stored_history(status: str, parts: Iterable[_Part], new: Invoice) -> None:
    """:func:`check_invoice_history`, given the stored invoice's status (its
    value) and payment parts as its data has them: what the SQL stores read
    of the stored row, without building the whole invoice. Not part of the
    public API."""
    payments = new.payments
    by_id: dict[str, tuple[int, AppliedPayment]] | None = None
    name = f"invoice {new.id} ({new.number})"
    for at, (payment_id, amount, currency, released) in enumerate(parts):
        # The commands keep each part where it is: looked up by id only
        # when it is not.
        if at < len(payments) and payments[at].payment_id.value == payment_id:
            index, kept = at, payments[at]
        else:
            if by_id is None:
                by_id = {part.payment_id.value: (i, part) for i, part in enumerate(payments)}
            found = by_id.get(payment_id)
            if found is None:
                raise InvariantViolation(
                    f"payment {payment_id} is applied to {name}: its part stays as history, "
                    "released if given back, never removed (nothing was written)",
                    rule="I5",
                    path=f"payments[{at}]",
                )
            index, kept = found
        money = kept.amount
        if money.currency.code != currency or str(money.amount) != amount:
            raise InvariantViolation(
                f"payment {payment_id} applied {currency} {amount} to {name}: "
                "a part applied is never changed (nothing was written)",
                rule="I5",
                path=f"payments[{index}]",
            )
        if released and not kept.released:
            raise InvariantViolation(
                f"payment {payment_id} was given back on {name}: its part is released "
                "and never counts again (nothing was written)",
                rule="I6",
                path=f"payments[{index}]",
            )
    leaves = _LEAVES.get(status)
    if leaves is not None and new.status.value != status and new.status.value not in leaves:
        final = "stays void or is archived" if leaves else "stays archived"
        raise InvariantViolation(
            f"{name} is {status}: it {final}, never {new.status.value} (nothing was written)",
            rule="I4",
            path="status",
        )


def _history_changed(
    kind: str, key: object, reason: str, rule: str, path: str
) -> InvariantViolation:
    """The error for a save of ``kind`` ``key`` that changes ``path`` as no
    command does."""
    return InvariantViolation(
        f"{reason}: {kind} {key} is saved with another {path!r} than it has (nothing was written)",
        rule=rule,
        path=path,
    )


_PAYMENT_MOVES: Final[frozenset[tuple[PaymentStatus, PaymentStatus]]] = frozenset(
    {
        (PaymentStatus.PROCESSING, PaymentStatus.SUCCEEDED),
        (PaymentStatus.PROCESSING, PaymentStatus.FAILED),
        (PaymentStatus.PROCESSING, PaymentStatus.CHARGED_BACK),
        (PaymentStatus.PROCESSING, PaymentStatus.REFUNDED),
        (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED),
        (PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED),
        (PaymentStatus.SUCCEEDED, PaymentStatus.CHARGED_BACK),
    }
)
"""How a payment's status moves between two saves, the commands run in
between: succeeded, failed (declined, or returned by the bank), charged
back (disputed, or returned as unauthorised), refunded (once succeeded and
settled). Failed, refunded and charged back are final."""

_PAYMENT_REQUEST: Final = ("request_fingerprint", "user_id", "method", "payment_method_id")
"""What a payment keeps of the request that made it, besides its allocations."""


@checked_arguments
def check_payment_history(stored: Payment | None, new: Payment) -> None:
    """Refuse ``new`` if it changes ``stored`` (the payment's current state
    in the store, or ``None`` when it is new there) as no command does; no
    command does any of it:

    - its allocations (the invoice, amount and card-fee share of each: rule
      ``I5``, at ``allocations[i].amount``, say, or ``allocations`` for one
      added or dropped), so its ``amount`` and ``card_fee``;
    - the request it answers (rule ``idempotency``): its
      ``request_fingerprint``, payer (``user_id``), ``method`` and
      ``payment_method_id``;
    - its status, but as the commands move it, one or several between two
      saves: ``processing`` to any other, ``succeeded`` to ``failed``,
      ``refunded`` or ``charged_back``; ``failed``, ``refunded`` and
      ``charged_back`` are final (rule ``I6`` at ``status``, ``I7`` for one
      saved refunded);
    - its fees, but a return or dispute fee added as its status moves
      (rule ``I6``, at ``fees``);
    - when it was made (``created_at``, rule ``I6``), when it succeeded
      (``succeeded_at``, rule ``I6``, recorded only as a processing payment
      moves on) and when it settled (``settled_at``, rule ``I7``, recorded
      only while it is processing or succeeded): once recorded, never
      changed nor cleared (a payment cleared of it would settle again, and
      tell so again).
    """
    _history_pair(stored, new, Payment, "a Payment")
    if stored is None:
        return
    kind, key = "payment", new.id
    if len(new.allocations) != len(stored.allocations):
        raise _history_changed(
            kind,
            key,
            "a payment keeps the invoices and amounts it was made for",
            "I5",
            "allocations",
        )
    for index, (part, kept) in enumerate(zip(stored.allocations, new.allocations, strict=True)):
        for name in ("invoice_id", "amount", "card_fee"):
            if getattr(part, name) != getattr(kept, name):
                raise _history_changed(
                    kind,
                    key,
                    "a payment keeps the invoices and amounts it was made for",
                    "I5",
                    f"allocations[{index}].{name}",
                )
    for name in _PAYMENT_REQUEST:
        if getattr(stored, name) != getattr(new, name):
            raise _history_changed(
                kind,
                key,
                "a payment answers the one request it was made for",
                "idempotency",
                name,
            )
    if stored.created_at != new.created_at:
        raise _history_changed(kind, key, "a payment keeps when it was made", "I6", "created_at")
    was, now = stored.status, new.status
    if was is not now and (was, now) not in _PAYMENT_MOVES:
        raise InvariantViolation(
            f"a {was.value} payment never becomes {now.value}: payment {key} is saved "
            "with a status no command gives it (nothing was written)",
            rule="I7" if now is PaymentStatus.REFUNDED else "I6",
            path="status",
        )
    fees = new.fees
    if fees[: len(stored.fees)] != stored.fees or (was is now and fees != stored.fees):
        raise _history_changed(
            kind,
            key,
            "a payment's fees are only added, a return or dispute fee as it is given back",
            "I6",
            "fees",
        )
    if (stored.succeeded_at is not None or was is not PaymentStatus.PROCESSING) and (
        new.succeeded_at != stored.succeeded_at
    ):
        raise _history_changed(
            kind,
            key,
            "a payment records once when it succeeded, as it succeeds",
            "I6",
            "succeeded_at",
        )
    if (stored.settled_at is not None or not was.holds_balance) and (
        new.settled_at != stored.settled_at
    ):
        raise _history_changed(
            kind,
            key,
            "a payment records once when it settled, as it settles",
            "I7",
            "settled_at",
        )


_SCHEDULED_KEPT: Final = (
    "customer_id",
    "invoice_id",
    "user_id",
    "payment_method_id",
    "amount",
    "pay_on",
    "created_at",
)
"""What a scheduled payment keeps from the day it was scheduled."""


@checked_arguments
def check_scheduled_payment_history(stored: ScheduledPayment | None, new: ScheduledPayment) -> None:
    """Refuse ``new`` if it changes ``stored`` (the scheduled payment's
    current state in the store, or ``None`` when it is new there) as no
    command does (rule ``scheduled-payment``, at the field): only one
    stored ``scheduled`` changes its status (cancelled, skipped or
    processed, naming its payment); once not, its ``status`` and
    ``payment_id`` stay (a cancelled or skipped one saved as scheduled
    again would run). Its customer, invoice, payer (``user_id``), method
    on file, ``amount``, ``pay_on`` and ``created_at`` never change."""
    _history_pair(stored, new, ScheduledPayment, "a ScheduledPayment")
    if stored is None:
        return
    kind, key = "scheduled payment", new.id
    if stored.status is not ScheduledPaymentStatus.SCHEDULED:
        for name in ("status", "payment_id"):
            if getattr(stored, name) != getattr(new, name):
                raise _history_changed(
                    kind,
                    key,
                    f"a scheduled payment {stored.status.value} stays so",
                    "scheduled-payment",
                    name,
                )
    for name in _SCHEDULED_KEPT:
        if getattr(stored, name) != getattr(new, name):
            raise _history_changed(
                kind,
                key,
                "a scheduled payment pays what was scheduled, as it was scheduled",
                "scheduled-payment",
                name,
            )


@checked_arguments
def check_access_request_history(stored: AccessRequest | None, new: AccessRequest) -> None:
    """Refuse ``new`` if it changes the resolution of ``stored`` (the
    request's current state in the store, or ``None`` when it is new
    there): a request is resolved once (rule
    ``access-request-resolved-once``, as its commands say), so once it is
    not pending its ``status``, ``customer_id``, ``resolved_by`` and
    ``resolved_at`` never change (a rejected request saved pending again
    could be approved; one rewritten as resolved by a Member would escape
    C9)."""
    _history_pair(stored, new, AccessRequest, "an AccessRequest")
    if stored is None or stored.is_pending:
        return
    for name in ("status", "customer_id", "resolved_by", "resolved_at"):
        if getattr(stored, name) != getattr(new, name):
            raise _history_changed(
                "access request",
                new.id,
                f"an access request is resolved once, and this one is {stored.status.value}",
                "access-request-resolved-once",
                name,
            )


@checked_arguments
def check_partner_history(stored: Partner | None, new: Partner) -> None:
    """Refuse ``new`` if it changes ``stored`` (the partner's current state
    in the store, or ``None`` when it is new there) as no command does: its
    ``currency`` and ``country`` never change (rule ``I2``: its invoices and
    payments stay in its currency), and a team that has an Admin keeps one
    (rule ``team-admin``, at ``team``, as :meth:`Partner.remove_team_member`
    and :meth:`Partner.change_role` refuse it)."""
    _history_pair(stored, new, Partner, "a Partner")
    if stored is None:
        return
    for name in ("currency", "country"):
        if getattr(stored, name) != getattr(new, name):
            raise _history_changed("partner", new.id, f"a partner keeps its {name}", "I2", name)
    if any(m.role is Role.ADMIN for m in stored.team) and not any(
        m.role is Role.ADMIN for m in new.team
    ):
        raise InvariantViolation(
            f"a partner's team keeps at least one Admin: partner {new.id} is saved with "
            "none (nothing was written)",
            rule="team-admin",
            path="team",
        )


# -- repositories ------------------------------------------------------------------


class PartnerRepository(abc.ABC):
    """Stores partners."""

    @abc.abstractmethod
    def get(self, partner_id: PartnerId) -> Partner:
        """The partner (``NotFound`` if there is none with that id)."""

    @abc.abstractmethod
    def save(self, partner: Partner) -> Partner:
        """Store a new partner (version 0) or a change to one read earlier.

        Returns the stored value (version + 1, no pending events); its events
        go to the outbox. ``ConcurrencyConflict`` if the stored version is
        not ``partner.version`` (nothing stored yet for version 0): raised
        by this save or, at the latest, by :meth:`UnitOfWork.commit`, nothing
        written either way (a save that raises stages nothing). At commit,
        ``ConcurrencyConflict`` too if a tag it takes out of the catalog is
        still carried by a stored customer of the partner, other than one
        this unit of work saves without it (:func:`tag_still_carried`).
        """


class CustomerRepository(abc.ABC):
    """Stores customers; every query is scoped to one partner."""

    @abc.abstractmethod
    def get(self, partner_id: PartnerId, customer_id: CustomerId) -> Customer:
        """The customer (``NotFound`` if not this partner's)."""

    @abc.abstractmethod
    def get_by_external_ref(self, partner_id: PartnerId, ref: ExternalRef) -> Customer:
        """The customer synced in under ``ref`` that is not archived (C10);
        ``NotFound`` if there is none."""

    @abc.abstractmethod
    def with_user(self, partner_id: PartnerId, email: EmailAddress | str) -> list[Customer]:
        """This partner's customers that ``email`` is a user of (any status),
        compared case-insensitively, ordered as :meth:`list` orders them.

        A malformed ``email`` raises ``ValidationError``.
        """

    @abc.abstractmethod
    def accounts_of(self, email: EmailAddress | str) -> list[Customer]:
        """Every active customer, of every partner, that ``email`` can log in
        to: the end customer's "multiple accounts" view. The one query not
        scoped to a partner, and so a separate, explicit method. Ordered as
        :meth:`list` orders them."""

    @abc.abstractmethod
    def list(
        self,
        partner_id: PartnerId,
        *,
        status: CustomerStatus | None = None,
        tag: TagId | None = None,
        name_prefix: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        before: str | None = None,
    ) -> Page[Customer]:
        """A page of this partner's customers, by company name then id.

        Ordered by :func:`customer_sort_key` (the company name, case-folded)
        then by id. Filters, all optional and combined with AND: ``status``;
        ``tag`` (customers carrying that tag); ``name_prefix`` (the company
        name starts with it, compared case-folded; an empty prefix matches
        every customer).

        Paging is by keyset, so it is stable under inserts: ``after`` gives
        the first ``limit`` customers that sort after that cursor, ``before``
        the last ``limit`` that sort before it (still in ascending order).
        The cursors come from an earlier page of customers (``start_cursor``,
        ``end_cursor``); a customer need not still exist for its cursor to
        work. ``has_next_page`` and ``has_previous_page`` are exact:
        whether some customer matching the filters sorts after the page
        (with ``before``: at or after that cursor) and before it (with
        ``after``: at or before that cursor; without a cursor, never). On an
        empty page ``start_cursor`` and ``end_cursor`` are ``None``.

        ``limit``, ``after`` and ``before`` are validated with
        :meth:`PageRequest.parse` (``ValidationError``; a cursor of another
        listing is ``invalid_cursor``).
        """

    @abc.abstractmethod
    def save(self, customer: Customer) -> Customer:
        """Store a new customer (version 0) or a change to one read earlier.

        Returns the stored value (version + 1, no pending events); its events
        go to the outbox. ``ConcurrencyConflict`` if the stored version is
        not ``customer.version`` (nothing stored yet for version 0), if the
        id is another partner's customer's, or if the external reference is
        taken by another customer of the partner that is not archived (C10):
        raised by this save or, at the latest, by :meth:`UnitOfWork.commit`,
        nothing written either way (a save that raises stages nothing; the
        unit of work's other saves can still be committed). At commit,
        ``InvariantViolation`` if it carries a tag that is not in its
        partner's catalog as it stands then, committed or saved in this unit
        of work (:func:`tag_not_in_catalog`), or if it is new and its partner
        as it stands then may not take it (:func:`may_add_customer`): added
        by hand (no external reference) while an integration of its partner
        syncs customers, or with a reference whose system is no connected
        integration of the partner that syncs customers
        (:func:`customer_added_by_hand`, C6).
        """


class AccessRequestRepository(abc.ABC):
    """Stores access requests; every query is scoped to one partner.

    Unique per partner in the store: the email of a pending request
    (compared by its :attr:`~altpay_core.values.EmailAddress.key`, the
    case-folded address). Resolved requests hold no key.
    """

    @abc.abstractmethod
    def get(self, partner_id: PartnerId, request_id: AccessRequestId) -> AccessRequest:
        """The access request (``NotFound`` if not this partner's)."""

    @abc.abstractmethod
    def list(
        self, partner_id: PartnerId, *, status: AccessRequestStatus | None = None
    ) -> list[AccessRequest]:
        """This partner's access requests, oldest first (by ``requested_at``,
        then id)."""

    @checked_arguments
    def pending_for(self, partner_id: PartnerId, email: EmailAddress | str) -> AccessRequest | None:
        """The partner's pending request of ``email`` (compared case-folded,
        by its :attr:`~altpay_core.values.EmailAddress.key`), or ``None``:
        what :func:`altpay_core.services.open_access_request` gives back to
        someone asking again. Should the store hold two (rows from before it
        kept the email unique), the oldest, as :meth:`list` orders them.

        This default lists every pending request of the partner and picks
        the one with that email: correct for any adapter, but it reads them
        all at each call. The built-in stores override it with a look-up
        along their index of pending emails; an adapter of your own should
        too.
        """
        pending = self.list(partner_id, status=AccessRequestStatus.PENDING)
        key = check_email("email", email).key
        return next((r for r in pending if r.email.key == key), None)

    @abc.abstractmethod
    def save(self, request: AccessRequest) -> AccessRequest:
        """Store a new request (version 0) or a change to one read earlier.

        Returns the stored value (version + 1, no pending events), like
        :meth:`CustomerRepository.save` (``ConcurrencyConflict`` likewise).
        At commit, ``InvariantViolation`` if this save resolves it (over
        the pending state the unit of work sees) and its ``resolved_by`` is
        then no Admin or Sub-Admin of its partner (:func:`resolver_not_allowed`,
        C9). A pending request whose email another pending request of the
        partner holds is refused with :func:`access_request_pending` (a
        ``ConcurrencyConflict``): at save, or at commit when the other was
        stored meanwhile; nothing is written.
        """


class InvoiceRepository(abc.ABC):
    """Stores invoices; every query is scoped to one partner.

    Unique per partner in the store: the invoice number (among invoices of
    every status, archived and void ones included, compared exactly as
    stored) and the external reference of a synced invoice.
    """

    @abc.abstractmethod
    def get(self, partner_id: PartnerId, invoice_id: InvoiceId) -> Invoice:
        """The invoice (``NotFound`` if not this partner's)."""

    @abc.abstractmethod
    def get_by_number(self, partner_id: PartnerId, number: str) -> Invoice:
        """The partner's invoice with that number, whatever its status
        (``NotFound`` if none). ``number`` is trimmed, as invoices store it,
        and compared exactly (case matters)."""

    @abc.abstractmethod
    def get_by_external_ref(self, partner_id: PartnerId, ref: ExternalRef) -> Invoice:
        """The partner's invoice synced in under ``ref``, whatever its status
        (``NotFound`` if none)."""

    @abc.abstractmethod
    def list(
        self,
        partner_id: PartnerId,
        *,
        customer_id: CustomerId | None = None,
        status: InvoiceStatus | None = None,
        due_from: dt.date | None = None,
        due_to: dt.date | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        before: str | None = None,
    ) -> Page[Invoice]:
        """A page of this partner's invoices, by due date, number, then id.

        Ordered by :func:`invoice_sort_key` (the due date, then the number,
        by code point) then by id. Filters, all optional and combined with
        AND: ``customer_id``; ``status``; ``due_from`` and ``due_to``, the
        first and the last due date wanted (both included; a range with
        ``due_from`` after ``due_to`` matches nothing).

        Paging is by keyset, exactly as :meth:`CustomerRepository.list`:
        ``after`` and ``before`` take the cursors of an earlier page (of this
        listing or of :meth:`overdue`, which has the same order);
        ``has_next_page`` and ``has_previous_page`` are exact. ``limit``,
        ``after`` and ``before`` are validated with :meth:`PageRequest.parse`
        (a customers' cursor is ``invalid_cursor``), the dates must be dates
        (not datetimes), all as ``ValidationError``.
        """

    @abc.abstractmethod
    def overdue(
        self,
        partner_id: PartnerId,
        as_of: dt.date,
        *,
        customer_id: CustomerId | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        before: str | None = None,
    ) -> Page[Invoice]:
        """A page of the partner's invoices overdue on ``as_of``: open (so with
        a balance above zero, and neither void nor archived) and due before
        ``as_of`` (an invoice due on ``as_of`` is not overdue yet), as
        :meth:`Invoice.is_overdue` says. Ordered and paged as :meth:`list`;
        ``customer_id`` narrows it to one customer."""

    @abc.abstractmethod
    def save(self, invoice: Invoice) -> Invoice:
        """Store a new invoice (version 0) or a change to one read earlier.

        Returns the stored value (version + 1, no pending events); its events
        go to the outbox. ``ConcurrencyConflict`` if the stored version is
        not ``invoice.version`` (nothing stored yet for version 0), if the id
        is another partner's invoice's, or if the number or the external
        reference is another invoice's of the partner: raised by this save
        or, at the latest, by :meth:`UnitOfWork.commit`, as for
        :meth:`CustomerRepository.save`. At commit, a new
        invoice (version 0) raises ``InvariantViolation`` if its customer is
        not then a stored customer of the partner, committed or saved in this
        unit of work (I1, :func:`invoice_customer_missing`), or is archived
        (C8, :func:`invoice_customer_archived`).
        """


class PaymentRepository(abc.ABC):
    """Stores payments; every query is scoped to one partner.

    Unique per partner in the store: the idempotency key (compared exactly
    as stored, trimmed), so that two requests racing with one key make one
    payment.
    """

    @abc.abstractmethod
    def get(self, partner_id: PartnerId, payment_id: PaymentId) -> Payment:
        """The payment (``NotFound`` if not this partner's)."""

    @abc.abstractmethod
    def get_by_idempotency_key(self, partner_id: PartnerId, key: str) -> Payment | None:
        """The partner's payment made under idempotency key ``key`` (trimmed,
        compared exactly), or ``None``: what :func:`altpay_core.payment.pay_invoices`
        takes as ``existing``."""

    @abc.abstractmethod
    def for_invoice(self, partner_id: PartnerId, invoice_id: InvoiceId) -> list[Payment]:
        """The partner's payments with an allocation to ``invoice_id``, in
        every status, oldest first (by ``created_at``, then id)."""

    @abc.abstractmethod
    def save(self, payment: Payment) -> Payment:
        """Store a new payment (version 0) or a change to one read earlier.

        Returns the stored value (version + 1, no pending events); its events
        go to the outbox. ``ConcurrencyConflict`` if the stored version is
        not ``payment.version``, if the id is another partner's payment's, or
        if the idempotency key is another payment's of the partner: raised by
        this save or, at the latest, by :meth:`UnitOfWork.commit`, as for
        :meth:`CustomerRepository.save`. At commit, a new payment (version 0)
        whose customer is then a stored customer of the partner (committed or
        saved in this unit of work) raises ``InvariantViolation`` if that
        customer is archived (C8, :func:`payment_customer_archived`) or its
        ``user_id`` is none of the customer's users (I1,
        :func:`payment_payer_missing`), and one that names a saved method
        (``payment_method_id``) whose customer's payment methods book is
        then stored (committed or saved in this unit of work) raises it if
        that method is not in the book or is archived (``payment-method``,
        :func:`payment_method_archived`); one whose customer is not stored
        is not checked, nor the method of one whose customer has no stored
        book.
        """


class PaymentMethodRepository(abc.ABC):
    """Stores each customer's saved payment methods (one
    :class:`~altpay_core.payment.CustomerPaymentMethods` per customer, whose
    key is the customer's id); scoped to one partner."""

    @abc.abstractmethod
    def get(self, partner_id: PartnerId, customer_id: CustomerId) -> CustomerPaymentMethods:
        """The customer's saved methods; if none were ever stored for this
        partner's customer, a new, empty book (version 0) to add to and save.
        Another partner's book is never returned."""

    @abc.abstractmethod
    def save(self, methods: CustomerPaymentMethods) -> CustomerPaymentMethods:
        """Store a customer's methods (version 0: the first time), like the
        other repositories' ``save`` (``ConcurrencyConflict`` likewise, and
        if the customer's methods are another partner's)."""


class ScheduledPaymentRepository(abc.ABC):
    """Stores scheduled payments; every query is scoped to one partner."""

    @abc.abstractmethod
    def get(self, partner_id: PartnerId, scheduled_id: ScheduledPaymentId) -> ScheduledPayment:
        """The scheduled payment (``NotFound`` if not this partner's)."""

    @abc.abstractmethod
    def due(self, partner_id: PartnerId, as_of: dt.date) -> list[ScheduledPayment]:
        """The partner's payments still ``scheduled`` for ``as_of`` or
        earlier (:meth:`ScheduledPayment.is_due`), by ``pay_on``, then id."""

    @abc.abstractmethod
    def for_invoice(self, partner_id: PartnerId, invoice_id: InvoiceId) -> list[ScheduledPayment]:
        """The partner's scheduled payments of ``invoice_id``, in every status,
        by ``pay_on``, then id."""

    @abc.abstractmethod
    def save(self, scheduled: ScheduledPayment) -> ScheduledPayment:
        """Store a new scheduled payment (version 0) or a change to one, like
        the other repositories' ``save`` (``ConcurrencyConflict`` likewise)."""


# -- outbox ------------------------------------------------------------------------


_LAST_POSITION: Final = 2**63 - 1
"""The largest position a store keeps (a signed 64-bit integer)."""


@checked_constructor
@attrs.frozen
class OutboxMessage:
    """An event stored with its aggregate, waiting to be published.

    ``position`` increases in commit order (within a commit, in the order the
    aggregates were saved, each one's events oldest first). Commits that run
    at the same time may take positions in either order; :meth:`Outbox.pending`
    lists every unpublished message (but those another open unit of work has
    listed, until it ends), so none is skipped.

    The position is the message's identity: no other message of the store
    has it, ever. Send it with the event (as a webhook's delivery id, say)
    so that receivers de-duplicate and order on it: an event's
    ``aggregate_id``, ``occurred_at`` and topic are often the same for two
    different events, and ``occurred_at`` does not follow commit order.
    """

    position: int
    event: Event

    def __attrs_post_init__(self) -> None:
        found = FieldErrors()
        code = "invalid_position"
        _fields.keep_checked(
            found, self, "position", _fields.whole_number, 1, _LAST_POSITION, code=code
        )
        found.check("", _fields.argument, "event", self.event, Event, "an Event")
        found.raise_if_any()


class Outbox(abc.ABC):
    """The events committed with their aggregates, to be published."""

    @abc.abstractmethod
    def pending(self, limit: int = DEFAULT_PAGE_SIZE) -> list[OutboxMessage]:
        """The first ``limit`` committed events not yet marked published, by
        position. Messages this unit of work has marked are left out, and so
        are messages that another unit of work, still open, has listed: each
        unit of work holds what it lists until it commits, rolls back or
        its block ends, so that publishers running at the same time never
        list one message twice (what one lists and does not mark is listed
        again after that).

        ``limit`` is validated as :meth:`PageRequest.parse` does.
        """

    @abc.abstractmethod
    def mark_published(self, positions: Iterable[int]) -> None:
        """Mark these as published (within the unit of work: takes effect on
        commit; a rollback leaves them pending). A message marked published
        is never listed again. Unknown or already published positions are
        ignored, so marking twice is harmless. Adapters check the argument
        with :meth:`_positions`."""

    @staticmethod
    def _positions(positions: object) -> list[int]:
        """``positions`` as a list (any iterable, read once), each a whole
        number; a ``ValidationError`` naming the first that is not."""
        # Binary data iterates as ints, but holds no positions.
        if isinstance(positions, _fields.TEXT_OR_BYTES) or not isinstance(positions, Iterable):
            raise ValidationError.single(
                "positions",
                "wrong_type",
                f"'positions' must be a list of positions (got {type(positions).__name__})",
            )
        checked: list[int] = []
        for index, position in enumerate(positions):
            if isinstance(position, bool) or not isinstance(position, int):
                raise ValidationError.single(
                    f"positions[{index}]",
                    "wrong_type",
                    f"'positions[{index}]' must be a whole number (got {shown(position)})",
                )
            checked.append(_fields.plain_int(position))
        return checked


# -- unit of work ----------------------------------------------------------------


class UnitOfWork(abc.ABC):
    """One transaction over every repository.

    Use it as a context manager: nothing is written unless :meth:`commit` is
    called inside the block; leaving the block rolls back whatever was not
    committed, and an exception inside it writes nothing. A commit stores
    every saved aggregate and its pending events atomically: if any part of
    it fails (a version conflict, a taken external reference, a broken
    connection), nothing of it is written and the error is raised.

    Reads inside the block see what the block has saved. Saving the same
    aggregate twice is fine (save the value the first save returned).
    ``ConcurrencyConflict`` may come from :meth:`~CustomerRepository.save`
    or, at the latest, from :meth:`commit`, as the adapter detects it; either
    way nothing is written, and the caller reads again and retries. A save
    refused by its own checks (``ConcurrencyConflict``, or
    ``InvariantViolation`` for a fixed field changed) refuses that save
    alone: reads do not see the refused value, and the block's other saves
    can still be committed.

    A unit of work belongs to one thread; get one per thread (or per
    request) from the :class:`Store`.
    """

    partners: PartnerRepository
    customers: CustomerRepository
    access_requests: AccessRequestRepository
    invoices: InvoiceRepository
    payments: PaymentRepository
    payment_methods: PaymentMethodRepository
    scheduled_payments: ScheduledPaymentRepository
    outbox: Outbox

    _active: bool = False
    """Inside its ``with`` block."""

    def __enter__(self) -> Self:
        if self._active:
            # Entering again would roll back what the block saved so far, and
            # the inner block's end would close the outer one.
            raise AltpayError("this unit of work is already in its `with` block: use it as it is")
        self._begin()
        self._active = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._active = False
        self.rollback()

    def _in_block(self) -> None:
        """Refuse to read or write outside the ``with`` block (adapters call
        it first in every repository method and in :meth:`commit`)."""
        if not self._active:
            raise AltpayError("use the unit of work inside its `with` block")

    @abc.abstractmethod
    def _begin(self) -> None:
        """Start a transaction."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Write everything saved since the block began (or since the last
        commit), atomically. The unit of work stays usable in the block."""

    @abc.abstractmethod
    def rollback(self) -> None:
        """Forget everything saved and not committed (safe to call twice)."""


# -- store -------------------------------------------------------------------------


class Store(abc.ABC):
    """Where an adapter keeps the data: hands out units of work over it.

    Each call of :meth:`unit_of_work` gives a new unit of work over the same
    data; a store is shared by threads, units of work are not. Close the
    store when done (or use it as a context manager)::

        with MemoryStore() as store:
            with store.unit_of_work() as uow:
                uow.partners.save(partner)
                uow.commit()
    """

    @abc.abstractmethod
    def unit_of_work(self) -> UnitOfWork:
        """A new unit of work over this store's data (enter it with ``with``)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store's resources (connections, files); safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
