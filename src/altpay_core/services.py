"""Application services: commands that span aggregates, in one transaction.

An aggregate keeps its own rules; a rule that spans several (deleting a tag
takes it off every customer) is kept here, where one unit of work stores
every change at once. Each service works inside a unit of work that the
caller has entered, and commits it::

    from altpay_core import services
    from altpay_core.adapters.memory import MemoryStore

    store = MemoryStore()
    with store.unit_of_work() as uow:
        services.delete_tag(uow, partner_id, "VIP", by=admin)

If the service raises, nothing it did is written. Anything the caller saved
earlier in the same block is committed with it when the service succeeds;
when it fails once it has begun storing (a save refused half way through,
or the commit), the service rolls the unit of work back before it raises,
so a caller who catches the error cannot commit half of its work: the
unit of work is then empty, and usable again. A
:class:`~altpay_core.errors.ConcurrencyConflict` means another writer got
there first: run the service again in a new unit of work (but not for a
:class:`~altpay_core.errors.UniqueKeyTaken`, a number or reference that is
taken, or a draft whose customer :func:`create_customer` already created:
the same command fails again).

Paying is the main case: :func:`pay_invoices` reads the invoices, applies
the payment to each and stores the payment and every invoice it touched in
one commit, or nothing::

    with store.unit_of_work() as uow:
        payment, invoices = services.pay_invoices(
            uow, partner_id, customer_id, [invoice_id], payer=user,
            method="ach", idempotency_key=request_key)

The functions that change a payment later (:func:`fail_payment`,
:func:`return_payment`, :func:`charge_back_payment`, :func:`refund_payment`,
:func:`succeed_payment`, :func:`settle_payment`) read it and its invoices by
id and store them together too. Their arguments mirror the domain functions
of :mod:`altpay_core.payment`, with ids in place of the aggregates.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal

import attrs

from altpay_core import _fields
from altpay_core import payment as _payment
from altpay_core._arguments import checked_arguments, checked_constructor
from altpay_core.access import Viewer
from altpay_core.customer import (
    AccessRequest,
    Customer,
    CustomerDraft,
    _refuse_if_synced,
)
from altpay_core.errors import (
    AltpayError,
    ConcurrencyConflict,
    FieldErrors,
    InvariantViolation,
    NotFound,
    PermissionDenied,
    UniqueKeyTaken,
    ValidationError,
    shown,
)
from altpay_core.invoice import Invoice
from altpay_core.money import Money
from altpay_core.partner import Action, Partner, TeamMember
from altpay_core.payment import (
    Payment,
    PaymentMethod,
    PaymentMethodType,
    ReturnKind,
    ScheduledPayment,
    ScheduledPaymentId,
)
from altpay_core.ports import MAX_PAGE_SIZE, UnitOfWork
from altpay_core.values import (
    AccessRequestId,
    CustomerId,
    EmailAddress,
    InvoiceId,
    PartnerId,
    PaymentId,
    PaymentMethodId,
    TagId,
    TeamMemberId,
)

__all__ = [
    "DueRun",
    "add_access_request_to_customer",
    "cancel_scheduled_payment",
    "charge_back_payment",
    "charge_now",
    "create_customer",
    "create_customer_from_access_request",
    "delete_tag",
    "fail_payment",
    "open_access_request",
    "pay_invoices",
    "refund_payment",
    "reject_access_request",
    "return_payment",
    "run_due_payments",
    "run_scheduled_payment",
    "schedule_payment",
    "settle_payment",
    "skip_scheduled_payment",
    "succeed_payment",
]

_Amounts = Mapping[InvoiceId, Money | str | int | Decimal]


def _uow(uow: object) -> None:
    # Each service's first check: anything but a unit of work is named, rather
    # than an AttributeError at its first repository. (As _fields.argument
    # words it; that one takes only concrete classes.)
    if not isinstance(uow, UnitOfWork):
        raise ValidationError.single(
            "uow", "wrong_type", f"'uow' must be a UnitOfWork (got {type(uow).__name__})"
        )


@contextlib.contextmanager
def _storing(uow: UnitOfWork) -> Iterator[None]:
    """Around a service's saves and its commit: all of them, or, when one
    fails, none, whatever the caller then does with the unit of work."""
    try:
        yield
    except BaseException:
        uow.rollback()
        raise


@checked_arguments
def delete_tag(
    uow: UnitOfWork,
    partner_id: PartnerId,
    tag: TagId | str,
    *,
    by: TeamMemberId | TeamMember | None = None,
) -> Partner:
    """Delete a tag from the partner's catalog and from every customer carrying it.

    ``tag`` is the tag's id or name (case-insensitive). Customers of every
    status lose it, archived ones included, on every page of the listing.
    One commit stores the partner and every changed customer, with their
    ``customer_updated`` events; returns the stored partner.

    ``NotFound`` if the partner or the tag does not exist, ``PermissionDenied``
    if ``by`` may not manage tags.
    """
    _uow(uow)
    partner = uow.partners.get(partner_id)
    updated = partner.delete_tag(tag, by=by)  # checks ``by`` before anything else
    doomed = partner.tag(tag).id
    with _storing(uow):
        stored = uow.partners.save(updated)
        after: str | None = None
        while True:
            page = uow.customers.list(partner_id, tag=doomed, limit=MAX_PAGE_SIZE, after=after)
            for customer in page:
                uow.customers.save(customer.remove_tag(doomed))
            if not page.has_next_page:
                break
            # Keyset paging: the cursor still places the next page correctly
            # though the customers just saved no longer carry the tag.
            after = page.end_cursor
        uow.commit()
    return stored


@checked_arguments
def create_customer(
    uow: UnitOfWork,
    draft: CustomerDraft,
    *,
    by: TeamMemberId | TeamMember | None = None,
) -> Customer:
    """ "Create Customer": create the draft's customer, store it and commit.

    Checks the partner as it is now: refused (C6) if one of its integrations
    has started syncing customers since the draft began (and the store
    checks it again at commit, should one start meanwhile). Creating twice from
    the same draft (a form sent again) gives the same customer id, so the
    second attempt, finding that customer stored, raises
    :class:`~altpay_core.errors.UniqueKeyTaken` (rule ``customer-created``,
    at ``draft``, ``kind`` ``"customer"``, ``key`` the customer's id) and
    stores nothing: retrying cannot help, the customer exists (read it).
    Two attempts racing, neither finding it yet, store it once: the other
    gets a plain :class:`~altpay_core.errors.ConcurrencyConflict`, and its
    retry the ``UniqueKeyTaken``. Returns the stored customer (version 1).
    """
    _uow(uow)
    _fields.argument("draft", draft, CustomerDraft, "a CustomerDraft")
    partner = uow.partners.get(draft.partner_id)
    if by is not None:
        partner.authorize(by, Action.MANAGE_CUSTOMERS)
    _refuse_if_synced(partner)
    created = draft.create()
    _refuse_if_created(uow, created)
    with _storing(uow):
        customer = uow.customers.save(created)
        uow.commit()
    return customer


def _refuse_if_created(uow: UnitOfWork, created: Customer) -> None:
    """A draft's customer is created once: one stored under its id (of the
    draft's partner) means the draft was used already."""
    try:
        uow.customers.get(created.partner_id, created.id)
    except NotFound:
        return
    raise UniqueKeyTaken(
        f"customer {created.id} was already created from this draft; nothing was written "
        "(read that customer rather than create it again)",
        rule="customer-created",
        path="draft",
        kind="customer",
        key=created.id,
    )


@checked_arguments
def open_access_request(
    uow: UnitOfWork,
    partner_id: PartnerId,
    *,
    email: str | EmailAddress,
    first_name: str | None = None,
    last_name: str | None = None,
) -> AccessRequest:
    """Someone used the partner's billing link: their access request, stored
    and committed (``AccessRequest.open`` checks the fields).

    Refused (``InvariantViolation``, rule ``access-request-user``, at
    ``email``) when the email is already a user of one of the partner's
    active customers: that person logs in instead. The same email asking
    again while a request of theirs is pending gets that request back, as
    stored, rather than a second one. The store keeps one pending request
    per email and partner: of two asking at the very same moment, in two
    units of work, one is stored and the other gets
    :class:`~altpay_core.errors.ConcurrencyConflict`, nothing written; tried
    again, it gets the stored request back.
    """
    _uow(uow)
    partner = uow.partners.get(partner_id)
    request = AccessRequest.open(partner, email=email, first_name=first_name, last_name=last_name)
    if any(c.is_active for c in uow.customers.with_user(partner.id, request.email)):
        raise InvariantViolation(
            f"{request.email} is already a user of one of this partner's customers: "
            "they log in rather than ask for access",
            rule="access-request-user",
            path="email",
        )
    earlier = uow.access_requests.pending_for(partner.id, request.email)
    with _storing(uow):
        # The earlier request is stored already: commit what the caller saved.
        stored = uow.access_requests.save(request) if earlier is None else earlier
        uow.commit()
    return stored


@checked_arguments
def add_access_request_to_customer(
    uow: UnitOfWork,
    partner_id: PartnerId,
    request_id: AccessRequestId,
    customer_id: CustomerId,
    *,
    by: TeamMemberId | TeamMember,
    first_name: str | None = None,
    last_name: str | None = None,
) -> tuple[AccessRequest, Customer]:
    """Approve an access request by adding the person to an existing customer.

    The request and the customer (with its new user) are stored in one
    commit; returns both as stored. The rules are the aggregates' own: only
    an Admin or Sub-Admin resolves a request (C9), once, and the email must
    not already be a user of that customer (C4).
    """
    _uow(uow)
    partner = uow.partners.get(partner_id)
    request = uow.access_requests.get(partner_id, request_id)
    customer = uow.customers.get(partner_id, customer_id)
    approved, joined = request.add_to_customer(
        customer, partner=partner, by=by, first_name=first_name, last_name=last_name
    )
    with _storing(uow):
        stored_request = uow.access_requests.save(approved)
        stored_customer = uow.customers.save(joined)
        uow.commit()
    return stored_request, stored_customer


@checked_arguments
def create_customer_from_access_request(
    uow: UnitOfWork,
    partner_id: PartnerId,
    request_id: AccessRequestId,
    draft: CustomerDraft,
    *,
    by: TeamMemberId | TeamMember,
) -> tuple[AccessRequest, Customer]:
    """Approve an access request by creating a new customer from ``draft``
    (opened by :meth:`AccessRequest.start_customer`, with the person as its
    user, then given its details).

    The approved request and the new customer are stored in one commit, or
    neither is: a request is never approved for a customer that does not
    exist. Refused as :func:`create_customer` is (C1, C6, and a draft whose
    customer is stored already: ``UniqueKeyTaken``, rule
    ``customer-created``), and as
    :meth:`AccessRequest.approve_new_customer` is: only an Admin or
    Sub-Admin resolves a request (C9), once, and the person must be a user
    of the new customer. Returns both as stored.
    """
    _uow(uow)
    _fields.argument("draft", draft, CustomerDraft, "a CustomerDraft")
    partner = uow.partners.get(partner_id)
    request = uow.access_requests.get(partner_id, request_id)
    # Who may resolve it, and whether it is still pending, come first (C9).
    request._resolver(partner, by)
    _refuse_if_synced(partner)
    created = draft.create()
    _refuse_if_created(uow, created)
    approved = request.approve_new_customer(created, partner=partner, by=by)
    with _storing(uow):
        stored_customer = uow.customers.save(created)
        stored_request = uow.access_requests.save(approved)
        uow.commit()
    return stored_request, stored_customer


@checked_arguments
def reject_access_request(
    uow: UnitOfWork,
    partner_id: PartnerId,
    request_id: AccessRequestId,
    *,
    by: TeamMemberId | TeamMember,
) -> AccessRequest:
    """Refuse an access request (Admin or Sub-Admin only, C9); stored and committed."""
    _uow(uow)
    partner = uow.partners.get(partner_id)
    request = uow.access_requests.get(partner_id, request_id)
    rejected = request.reject(partner=partner, by=by)
    with _storing(uow):
        stored = uow.access_requests.save(rejected)
        uow.commit()
    return stored


# -- paying --------------------------------------------------------------------------


def _read_invoices(
    uow: UnitOfWork, partner_id: PartnerId, invoice_ids: Iterable[InvoiceId]
) -> list[Invoice]:
    given = _fields.listed("invoice_ids", invoice_ids, "a list of invoice ids")
    found = FieldErrors()
    ids = [
        found.check("", _fields.entity_id, f"invoice_ids[{index}]", invoice_id, InvoiceId)
        for index, invoice_id in enumerate(given)
    ]
    if not ids:
        found.add("invoice_ids", "empty", "'invoice_ids' must hold at least one invoice id")
    found.raise_if_any()  # every malformed id at once, before any is read
    return [uow.invoices.get(partner_id, _fields.passed(invoice_id)) for invoice_id in ids]


def _stored_under(uow: UnitOfWork, partner_id: PartnerId, key: object) -> Payment | None:
    # A key that is not text a store can hold is the domain function's to
    # refuse, at its path (idempotency_key): none was stored under it.
    if not isinstance(key, str):
        return None
    # Checked, and looked up, as plain text: a subclass's own isascii() or
    # __contains__ could pass a NUL, and its __eq__ match another key.
    text = _fields.plain_str(key)
    if not _fields.valid_unicode(text):
        return None
    return uow.payments.get_by_idempotency_key(partner_id, text)


def _store_payment(
    uow: UnitOfWork, payment: Payment, invoices: Iterable[Invoice]
) -> tuple[Payment, tuple[Invoice, ...]]:
    """Save a payment and the invoices it touched, and commit them together."""
    with _storing(uow):
        stored = uow.payments.save(payment)
        touched = tuple(uow.invoices.save(invoice) for invoice in invoices)
        uow.commit()
    return stored, touched


@checked_arguments
def pay_invoices(
    uow: UnitOfWork,
    partner_id: PartnerId,
    customer_id: CustomerId,
    invoice_ids: Iterable[InvoiceId],
    *,
    payer: Viewer | str,
    method: PaymentMethodType | PaymentMethod | str,
    idempotency_key: str,
    amounts: _Amounts | None = None,
    at: dt.datetime | None = None,
) -> tuple[Payment, tuple[Invoice, ...]]:
    """A customer user pays one or several open invoices of ``customer_id``:
    the payment and every invoice it touched are stored in one commit.

    As :func:`altpay_core.payment.pay_invoices`, which it calls with the
    partner, the customer and the invoices as stored now, and with the
    payment already stored under ``idempotency_key``, if any:

    - the payer must be a user of the invoices' customer, and may pay them
      (I1: ``PermissionDenied`` for anyone else, a read-only impersonation,
      anything archived); the rules I2, I4, I5 and I8 are the domain's;
    - a saved :class:`~altpay_core.payment.PaymentMethod` must be on file for
      the customer, as its stored methods hold it now, and active (I1:
      another customer's method is refused);
    - the same key with the same request returns the payment stored first,
      and no invoices: nothing is written again; the same key with another
      request is refused (``InvariantViolation``, rule ``idempotency``).

    Returns the stored payment (``processing``) and invoices, in the order
    of ``invoice_ids``. ``NotFound`` if the partner, the customer or an
    invoice is not there. ``ConcurrencyConflict`` if an invoice changed since
    it was read, or if another request took the key at the same time: nothing
    is written; run it again in a new unit of work (with the same key, a
    retry after the other request committed returns that payment).
    """
    _uow(uow)
    partner = uow.partners.get(partner_id)
    customer = uow.customers.get(partner_id, customer_id)
    invoices = _read_invoices(uow, partner_id, invoice_ids)
    # A saved method is checked against the customer's methods as stored.
    methods = (
        uow.payment_methods.get(partner_id, customer_id)
        if isinstance(method, PaymentMethod)
        else None
    )
    existing = _stored_under(uow, partner_id, idempotency_key)
    with _fields.argument_renamed("invoices", "invoice_ids"):  # read in that order
        payment, touched = _payment.pay_invoices(
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
    if existing is not None:
        with _storing(uow):
            uow.commit()  # whatever the caller saved before; the payment is stored already
        return payment, ()
    return _store_payment(uow, payment, touched)


@checked_arguments
def charge_now(
    uow: UnitOfWork,
    partner_id: PartnerId,
    customer_id: CustomerId,
    invoice_ids: Iterable[InvoiceId],
    *,
    payer: Viewer | str,
    idempotency_key: str,
    amounts: _Amounts | None = None,
    method_id: PaymentMethodId | str | None = None,
    at: dt.datetime | None = None,
) -> tuple[Payment, tuple[Invoice, ...]]:
    """Pay now with a method on file (the default unless ``method_id``): as
    :func:`pay_invoices`, with the customer's saved methods as stored; with
    none on file it says so (rule ``method-on-file``) and nothing runs."""
    _uow(uow)
    partner = uow.partners.get(partner_id)
    customer = uow.customers.get(partner_id, customer_id)
    invoices = _read_invoices(uow, partner_id, invoice_ids)
    methods = uow.payment_methods.get(partner_id, customer_id)
    existing = _stored_under(uow, partner_id, idempotency_key)
    with _fields.argument_renamed("invoices", "invoice_ids"):  # read in that order
        payment, touched = _payment.charge_now(
            partner,
            customer,
            invoices,
            payer=payer,
            methods=methods,
            idempotency_key=idempotency_key,
            amounts=amounts,
            method_id=method_id,
            existing=existing,
            at=at,
        )
    if existing is not None:
        with _storing(uow):
            uow.commit()
        return payment, ()
    return _store_payment(uow, payment, touched)


# -- what happens to a payment later ---------------------------------------------------


def _payment_and_invoices(
    uow: UnitOfWork, partner_id: PartnerId, payment_id: PaymentId
) -> tuple[Payment, list[Invoice]]:
    payment = uow.payments.get(partner_id, payment_id)
    invoices = [uow.invoices.get(partner_id, i) for i in payment.invoice_ids]
    if payment.status.holds_balance:
        for invoice in invoices:
            if not any(p.payment_id == payment.id and not p.released for p in invoice.payments):
                # Given back by another unit of work between the two reads:
                # the payment as read is out of date, as a stale save is.
                raise ConcurrencyConflict(
                    f"payment {payment.id} was changed by another writer while it was "
                    f"read (invoice {invoice.number} no longer holds its part); nothing "
                    "was written: read it again",
                    kind="payment",
                    key=payment.id,
                )
    return payment, invoices


@checked_arguments
def succeed_payment(
    uow: UnitOfWork, partner_id: PartnerId, payment_id: PaymentId, *, at: dt.datetime | None = None
) -> Payment:
    """The processor says the payment went through (:meth:`Payment.succeed
    <altpay_core.payment.Payment.succeed>`); stored and committed. Its
    invoices do not change: the payment has held their balances since it
    was made."""
    _uow(uow)
    payment = uow.payments.get(partner_id, payment_id)
    succeeded = payment.succeed(at)
    with _storing(uow):
        stored = uow.payments.save(succeeded)
        uow.commit()
    return stored


@checked_arguments
def settle_payment(
    uow: UnitOfWork, partner_id: PartnerId, payment_id: PaymentId, *, at: dt.datetime | None = None
) -> Payment:
    """The payment's funds settled (:meth:`Payment.settle
    <altpay_core.payment.Payment.settle>`); stored and committed. Settling a
    settled payment changes nothing and writes nothing new."""
    _uow(uow)
    payment = uow.payments.get(partner_id, payment_id)
    settled = payment.settle(at)
    with _storing(uow):
        stored = payment if settled is payment else uow.payments.save(settled)
        uow.commit()
    return stored


@checked_arguments
def fail_payment(
    uow: UnitOfWork, partner_id: PartnerId, payment_id: PaymentId, *, at: dt.datetime | None = None
) -> tuple[Payment, tuple[Invoice, ...]]:
    """A processing payment failed (:func:`altpay_core.payment.fail_payment`,
    I6): the payment and its invoices, with their balances given back, in one
    commit."""
    _uow(uow)
    payment, invoices = _payment_and_invoices(uow, partner_id, payment_id)
    return _store_payment(uow, *_payment.fail_payment(payment, invoices, at=at))


@checked_arguments
def return_payment(
    uow: UnitOfWork,
    partner_id: PartnerId,
    payment_id: PaymentId,
    kind: ReturnKind | str = ReturnKind.STANDARD,
    *,
    at: dt.datetime | None = None,
) -> tuple[Payment, tuple[Invoice, ...]]:
    """The bank returned a debit (:func:`altpay_core.payment.return_payment`,
    I6): the payment and its invoices in one commit."""
    _uow(uow)
    payment, invoices = _payment_and_invoices(uow, partner_id, payment_id)
    return _store_payment(uow, *_payment.return_payment(payment, invoices, kind, at=at))


@checked_arguments
def charge_back_payment(
    uow: UnitOfWork, partner_id: PartnerId, payment_id: PaymentId, *, at: dt.datetime | None = None
) -> tuple[Payment, tuple[Invoice, ...]]:
    """The cardholder disputed a card payment
    (:func:`altpay_core.payment.charge_back_payment`, I6): the payment and its
    invoices in one commit."""
    _uow(uow)
    payment, invoices = _payment_and_invoices(uow, partner_id, payment_id)
    return _store_payment(uow, *_payment.charge_back_payment(payment, invoices, at=at))


@checked_arguments
def refund_payment(
    uow: UnitOfWork,
    partner_id: PartnerId,
    payment_id: PaymentId,
    *,
    amount: Money | str | int | Decimal | None = None,
    at: dt.datetime | None = None,
    by: TeamMemberId | TeamMember | None = None,
) -> tuple[Payment, tuple[Invoice, ...]]:
    """Refund a succeeded, settled payment in full
    (:func:`altpay_core.payment.refund_payment`, I7): the payment and its
    invoices in one commit. With ``by``, the team member who asks: their
    role must allow refunding payments (else ``PermissionDenied``, nothing
    written)."""
    _uow(uow)
    partner = uow.partners.get(partner_id)
    payment, invoices = _payment_and_invoices(uow, partner_id, payment_id)
    refunded = _payment.refund_payment(
        payment, invoices, amount=amount, at=at, partner=partner, by=by
    )
    return _store_payment(uow, *refunded)


# -- scheduled payments ----------------------------------------------------------------


@checked_arguments
def schedule_payment(
    uow: UnitOfWork,
    partner_id: PartnerId,
    customer_id: CustomerId,
    invoice_id: InvoiceId,
    *,
    payer: Viewer | str,
    pay_on: dt.date,
    today: dt.date,
    amount: Money | str | int | Decimal | None = None,
    method_id: PaymentMethodId | str | None = None,
    at: dt.datetime | None = None,
) -> ScheduledPayment:
    """A customer user schedules a payment of an invoice
    (:func:`altpay_core.payment.schedule_payment`), with a method on file
    from the customer's saved methods as stored; stored and committed."""
    _uow(uow)
    partner = uow.partners.get(partner_id)
    customer = uow.customers.get(partner_id, customer_id)
    invoice = uow.invoices.get(partner_id, invoice_id)
    with _fields.argument_renamed("invoice", "invoice_id"):
        scheduled = _payment.schedule_payment(
            partner,
            customer,
            invoice,
            payer=payer,
            methods=uow.payment_methods.get(partner_id, customer_id),
            pay_on=pay_on,
            today=today,
            amount=amount,
            method_id=method_id,
            at=at,
        )
    with _storing(uow):
        stored = uow.scheduled_payments.save(scheduled)
        uow.commit()
    return stored


@checked_arguments
def run_scheduled_payment(
    uow: UnitOfWork,
    partner_id: PartnerId,
    scheduled_id: ScheduledPaymentId,
    *,
    today: dt.date,
    at: dt.datetime | None = None,
) -> tuple[ScheduledPayment, Payment, Invoice]:
    """Run a scheduled payment whose date has come
    (:func:`altpay_core.payment.run_scheduled_payment`): the processed
    scheduled payment, the payment and the invoice are stored in one commit,
    so that it runs once (a second run finds it processed). Find the ones to
    run with ``uow.scheduled_payments.due(partner_id, today)``."""
    _uow(uow)
    scheduled = uow.scheduled_payments.get(partner_id, scheduled_id)
    partner = uow.partners.get(partner_id)
    customer = uow.customers.get(partner_id, scheduled.customer_id)
    invoice = uow.invoices.get(partner_id, scheduled.invoice_id)
    done, payment, touched = _payment.run_scheduled_payment(
        scheduled,
        partner=partner,
        customer=customer,
        invoice=invoice,
        methods=uow.payment_methods.get(partner_id, scheduled.customer_id),
        today=today,
        at=at,
    )
    with _storing(uow):
        stored = uow.scheduled_payments.save(done)
        stored_payment, (stored_invoice,) = _store_payment(uow, payment, [touched])
    return stored, stored_payment, stored_invoice


@checked_arguments
def cancel_scheduled_payment(
    uow: UnitOfWork, partner_id: PartnerId, scheduled_id: ScheduledPaymentId
) -> ScheduledPayment:
    """Cancel a scheduled payment before it runs; stored and committed."""
    _uow(uow)
    scheduled = uow.scheduled_payments.get(partner_id, scheduled_id)
    cancelled = scheduled.cancel()
    with _storing(uow):
        stored = scheduled if cancelled is scheduled else uow.scheduled_payments.save(cancelled)
        uow.commit()
    return stored


@checked_arguments
def skip_scheduled_payment(
    uow: UnitOfWork,
    partner_id: PartnerId,
    scheduled_id: ScheduledPaymentId,
    *,
    today: dt.date,
) -> ScheduledPayment:
    """Mark as skipped a scheduled payment whose date has come and that can
    no longer run (:func:`altpay_core.payment.skip_scheduled_payment`), with
    its customer and invoice as stored now; stored and committed."""
    _uow(uow)
    stored, _ = _skip(uow, partner_id, scheduled_id, today)
    return stored


def _skip(
    uow: UnitOfWork, partner_id: PartnerId, scheduled_id: ScheduledPaymentId, today: dt.date
) -> tuple[ScheduledPayment, bool]:
    """:func:`skip_scheduled_payment`, and whether this call skipped it
    (rather than find it skipped already)."""
    scheduled = uow.scheduled_payments.get(partner_id, scheduled_id)
    skipped = _payment.skip_scheduled_payment(
        scheduled,
        partner=uow.partners.get(partner_id),
        customer=uow.customers.get(partner_id, scheduled.customer_id),
        invoice=uow.invoices.get(partner_id, scheduled.invoice_id),
        today=today,
    )
    with _storing(uow):
        stored = scheduled if skipped is scheduled else uow.scheduled_payments.save(skipped)
        uow.commit()
    return stored, skipped is not scheduled


_REFUSALS = (InvariantViolation, PermissionDenied, ValidationError, ConcurrencyConflict)
"""What refuses one scheduled payment's run: the others run all the same.
Anything else (a store that cannot write, say) stops the whole run."""


@checked_constructor
@attrs.frozen
class DueRun:
    """What :func:`run_due_payments` did with each scheduled payment that was
    due, each list in the order of ``due()``.

    It is data (``from_dict(DueRun, to_dict(run)) == run``) while it lists
    no refusal: an error is not data, so ``to_dict`` of a run with refusals
    is a ``not_serializable`` error."""

    processed: tuple[ScheduledPayment, ...] = attrs.field(
        default=(), converter=_fields.list_as_tuple
    )
    """Ran, as stored: each names the payment it made (``payment_id``)."""
    skipped: tuple[ScheduledPayment, ...] = attrs.field(default=(), converter=_fields.list_as_tuple)
    """Could no longer run, as stored: marked skipped by this run, nothing
    paid."""
    refused: tuple[tuple[ScheduledPayment, AltpayError], ...] = attrs.field(
        default=(), converter=_fields.list_as_tuple
    )
    """Not run by this run, each as it was read and with the error that
    stopped it: no method on file, or another writer first (another run
    that processed or skipped it, say). This run left them as they were:
    those still scheduled are due again next time."""

    def __attrs_post_init__(self) -> None:
        # Every field, so that a run compares, hashes and reads back as
        # itself: lists given become tuples, anything else is refused.
        found = FieldErrors()
        for name in ("processed", "skipped"):
            for index, item in enumerate(
                found.check("", _fields.as_tuple, name, getattr(self, name)) or ()
            ):
                found.check("", _scheduled, f"{name}[{index}]", item)
        for index, pair in enumerate(
            found.check("", _fields.as_tuple, "refused", self.refused) or ()
        ):
            path = f"refused[{index}]"
            if not (isinstance(pair, tuple) and len(pair) == 2):
                found.add(
                    path,
                    "wrong_type",
                    f"'{path}' must be a pair of a ScheduledPayment and its error "
                    f"(got {shown(pair)})",
                )
                continue
            found.check("", _scheduled, f"{path}[0]", pair[0])
            found.check("", _fields.argument, f"{path}[1]", pair[1], AltpayError, "an AltpayError")
        found.raise_if_any()


def _scheduled(path: str, value: object) -> ScheduledPayment:
    return _fields.argument(path, value, ScheduledPayment, "a ScheduledPayment")


@checked_arguments
def run_due_payments(
    uow: UnitOfWork,
    partner_id: PartnerId,
    *,
    today: dt.date,
    at: dt.datetime | None = None,
) -> DueRun:
    """Run every scheduled payment of the partner that is due ``today``
    (``uow.scheduled_payments.due(partner_id, today)``): the nightly job.

    Each one is run with :func:`run_scheduled_payment`, in a commit of its
    own, so that one refusal stops nothing else. One that cannot run (its
    invoice paid, void or archived since, or holding a card fee line; its
    payer removed or the customer archived; as
    :func:`altpay_core.payment.skip_scheduled_payment` lists) is marked
    skipped (:func:`skip_scheduled_payment`), and is no
    longer due. Any other refusal, such as no method on file, leaves it
    scheduled, to run on a later day: ``refused`` lists each with its
    error. Running it again the same day runs nothing twice.

    ``NotFound`` if the partner does not exist; a bad ``today`` or ``at`` is
    refused before anything runs. An error that is no refusal of one
    payment (a store that cannot write) stops the run and is raised: what
    ran before it stays committed. Use a unit of work of its own: its first
    commit would store anything the caller saved earlier, and a refused
    commit would roll it back.
    """
    _uow(uow)
    day = _fields.plain_date("today", today)
    if at is not None:  # refused once, rather than by each run
        _fields.aware_datetime("at", at)
    uow.partners.get(partner_id)
    processed: list[ScheduledPayment] = []
    skipped: list[ScheduledPayment] = []
    refused: list[tuple[ScheduledPayment, AltpayError]] = []
    for scheduled in uow.scheduled_payments.due(partner_id, day):
        try:
            done, _, _ = run_scheduled_payment(uow, partner_id, scheduled.id, today=day, at=at)
        except _REFUSALS as error:
            try:
                stored, by_this_run = _skip(uow, partner_id, scheduled.id, day)
            except _REFUSALS:
                refused.append((scheduled, error))
            else:
                if by_this_run:
                    skipped.append(stored)
                else:  # another run skipped it first
                    refused.append((scheduled, error))
        else:
            processed.append(done)
    return DueRun(tuple(processed), tuple(skipped), tuple(refused))
