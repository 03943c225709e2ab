"""The in-memory adapter: the reference implementation of the ports.

Everything lives in the process, in plain dictionaries that never leave this
module: queries hand out the stored (immutable) values in new lists, never
the dictionaries themselves. It is what the contract suite is written
against, what the pytest fixtures give, and a fine store for notebooks and
service tests::

    >>> from altpay_core import Partner
    >>> from altpay_core.adapters.memory import MemoryStore
    >>> with MemoryStore() as store:
    ...     with store.unit_of_work() as uow:
    ...         partner = uow.partners.save(Partner.create(name="Northwind IT", country="US"))
    ...         uow.commit()
    ...     partner.version
    1

How it keeps its promises:

* A unit of work stages what it saves (and the outbox messages it marks) in
  its own dictionaries; its reads see the committed data with its own saves
  laid over it.
* ``save`` checks the version and the keys that must be unique (a
  customer's external reference, C10; an invoice's number and external
  reference; a payment's idempotency key; one pending access request per
  email) at once, so a conflict shows
  early; :meth:`MemoryUnitOfWork.commit` checks all of it again under the
  store's lock, before writing anything, with the rules between aggregates
  (a customer's tags in its partner's catalog, a tag taken out of a catalog
  carried by no customer, no new customer added by hand to a partner that
  syncs customers and each new synced one from an integration of its
  partner that syncs customers, a new invoice's customer stored and not archived,
  a new payment's stored customer not archived, its payer one of its users
  and its saved method active in the customer's stored book, an
  access request resolved by one who may, a first payment methods book's
  customer stored),
  and then writes everything. Should
  a write still fail half way, the writes made so far are undone before the
  lock is released: a commit is all or nothing.
* Events are kept as :func:`~altpay_core.serialization.to_dict` data and read
  back with ``from_dict(Event, ...)``, as a database adapter would.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import heapq
import itertools
import operator
import threading
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar, cast

import attrs

from altpay_core import _fields
from altpay_core._arguments import checked_arguments, checked_constructor
from altpay_core.adapters._sql import already_stored, conflict_message
from altpay_core.customer import AccessRequest, AccessRequestStatus, Customer, CustomerStatus
from altpay_core.errors import AltpayError, ConcurrencyConflict, NotFound, ValidationError
from altpay_core.events import Event
from altpay_core.invoice import Invoice, InvoiceStatus
from altpay_core.partner import Partner
from altpay_core.payment import (
    CustomerPaymentMethods,
    Payment,
    ScheduledPayment,
    ScheduledPaymentId,
    ScheduledPaymentStatus,
)
from altpay_core.ports import (
    DEFAULT_PAGE_SIZE,
    AccessRequestRepository,
    CustomerRepository,
    InvoiceRepository,
    Listing,
    Outbox,
    OutboxMessage,
    Page,
    PageRequest,
    PartnerRepository,
    PaymentMethodRepository,
    PaymentRepository,
    ScheduledPaymentRepository,
    Store,
    UnitOfWork,
    access_request_pending,
    check_access_request_history,
    check_email,
    check_fixed_fields,
    check_invoice_history,
    check_partner_history,
    check_payment_history,
    check_saved_methods,
    check_scheduled_payment_history,
    customer_added_by_hand,
    customer_cursor,
    customer_ref_taken,
    customer_sort_key,
    idempotency_key_taken,
    invoice_cursor,
    invoice_customer_archived,
    invoice_customer_missing,
    invoice_number_taken,
    invoice_ref_taken,
    invoice_sort_key,
    may_add_customer,
    may_resolve,
    methods_customer_missing,
    payment_customer_archived,
    payment_method_archived,
    payment_payer_missing,
    resolver_not_allowed,
    tag_not_in_catalog,
    tag_still_carried,
)
from altpay_core.serialization import from_dict, to_dict
from altpay_core.values import (
    AccessRequestId,
    CustomerId,
    EmailAddress,
    ExternalRef,
    InvoiceId,
    PartnerId,
    PaymentId,
    TagId,
)

__all__ = ["MemoryStore", "MemoryUnitOfWork"]

_A = TypeVar(
    "_A",
    Partner,
    Customer,
    AccessRequest,
    Invoice,
    Payment,
    CustomerPaymentMethods,
    ScheduledPayment,
)


class _OfPartner(Protocol):
    """An aggregate that belongs to one partner (every kind but the partner)."""

    @property
    def partner_id(self) -> PartnerId: ...


_Owned = TypeVar("_Owned", bound=_OfPartner)
_T = TypeVar("_T")
_RefKey = tuple[PartnerId, ExternalRef]
_NumberKey = tuple[PartnerId, str]
_IdempotencyKey = tuple[PartnerId, str]
_PendingKey = tuple[PartnerId, EmailAddress]
_InOrder = list[tuple[tuple[str, str], Any]]
"""A partner's committed customers or invoices in the order they are listed:
(their order, as ``_order`` or ``_invoice_order`` gives it; their id)."""
_first = operator.itemgetter(0)
_Move = tuple[PartnerId, tuple[str, str] | None, tuple[str, str], Any]
"""A row a commit writes: its partner, its place in the order so far (``None``
if it is new), its place now, its id."""
_FEW_MOVES = 64
"""Up to this many rows of a partner that a commit moves are put in their
places one at a time; more, by sorting the partner's rows again once."""


def _order(customer: Customer) -> tuple[str, str]:
    return customer_sort_key(customer), customer.id.value


def _invoice_order(invoice: Invoice) -> tuple[str, str]:
    return invoice_sort_key(invoice), invoice.id.value


def _number_key(invoice: Invoice) -> _NumberKey:
    """The key that keeps invoice numbers unique per partner (every status)."""
    return (invoice.partner_id, invoice.number)


def _invoice_ref_key(invoice: Invoice) -> _RefKey | None:
    """The key that keeps a synced invoice's external reference unique per partner."""
    return None if invoice.external_ref is None else (invoice.partner_id, invoice.external_ref)


def _idempotency_key(payment: Payment) -> _IdempotencyKey:
    return (payment.partner_id, payment.idempotency_key)


def _pending_key(request: AccessRequest) -> _PendingKey | None:
    """The key that keeps one pending request per email and partner (an
    address is equal to another of the same key); a resolved one holds none."""
    return (request.partner_id, request.email) if request.is_pending else None


def _by_time(item: Payment) -> tuple[dt.datetime, str]:
    return item.created_at, item.id.value


def _by_day(item: ScheduledPayment) -> tuple[dt.date, str]:
    return item.pay_on, item.id.value


def _ref_key(customer: Customer) -> _RefKey | None:
    """The key C10 keeps unique: only customers that are not archived hold one."""
    if customer.external_ref is None or not customer.is_active:
        return None
    return (customer.partner_id, customer.external_ref)


def _email(email: object) -> EmailAddress:
    return check_email("email", email)


def _email_key(email: object) -> str:
    return _email(email).key


def _wrong_type(path: str, expected: type[Any], value: object) -> ValidationError:
    return ValidationError.single(
        path,
        "wrong_type",
        f"'{path}' must be {_fields.class_label(expected)} (got {type(value).__name__})",
    )


def _conflict(
    kind: str, key: object, found: int, wanted: int, *, theirs: bool
) -> ConcurrencyConflict:
    # In the SQL stores' words: a new aggregate whose id is stored, or
    # another partner's id, is told only that, never the version stored.
    message = conflict_message(kind, str(key), wanted, found, same_partner=not theirs)
    return ConcurrencyConflict(message, kind=kind, key=key)


class _Undo:
    """The inverse of every write made so far, to put things back on failure.

    Each inverse is recorded before its write, and undoes it whether or not
    the write took place: an interruption (``KeyboardInterrupt``) between a
    write and its record would otherwise leave that write in place."""

    def __init__(self) -> None:
        self._steps: list[Callable[[], None]] = []

    def put(self, table: dict[Any, Any], key: object, value: object) -> None:
        if key in table:
            old = table[key]
            self._steps.append(lambda: table.__setitem__(key, old))
        else:
            self._steps.append(lambda: table.pop(key, None))
        table[key] = value

    def pop(self, table: dict[Any, Any], key: object) -> None:
        if key in table:
            old = table[key]
            self._steps.append(lambda: table.__setitem__(key, old))
            del table[key]

    def pop_if(self, table: dict[Any, Any], key: object, value: object) -> None:
        """Drop ``key`` if it still maps to ``value`` (another write of the
        same commit may have given the key to someone else already)."""
        if key in table and table[key] == value:
            self.pop(table, key)

    def index(self, table: dict[Any, set[Any]], key: object, member: object) -> None:
        """Add ``member`` to the set ``table[key]``, making the set if need be."""
        if key not in table:
            self.put(table, key, set())
        self.add_to(table[key], member)

    def add_to(self, members: set[Any], member: object) -> None:
        if member not in members:
            self._steps.append(lambda: members.discard(member))
            members.add(member)

    def insort(self, entries: list[tuple[Any, Any]], entry: tuple[Any, Any]) -> None:
        """Put ``entry`` in ``entries``, a list kept in the order of the
        entries' first items (each its own)."""
        self._steps.append(lambda: _take_out(entries, entry[0]))
        entries.insert(bisect.bisect_left(entries, entry[0], key=_first), entry)

    def remove_sorted(self, entries: list[tuple[Any, Any]], first: tuple[str, str]) -> None:
        """Take the entry whose first item is ``first`` out of ``entries``,
        a list kept in the order of the entries' first items."""
        at = bisect.bisect_left(entries, first, key=_first)
        entry = entries[at]
        self._steps.append(lambda: _put_back(entries, entry))
        del entries[at]

    def rewrite(self, entries: list[Any], new: list[Any]) -> None:
        """Make ``new`` the content of the list ``entries``."""
        old = entries[:]
        self._steps.append(lambda: entries.__setitem__(slice(None), old))
        entries[:] = new

    def call(self, step: Callable[[], None]) -> None:
        """Run ``step`` to put something else back."""
        self._steps.append(step)

    def discard_from(self, members: set[Any], member: object) -> None:
        if member in members:
            self._steps.append(lambda: members.add(member))
            members.discard(member)

    def run(self) -> None:
        for step in reversed(self._steps):
            step()
        self._steps.clear()


def _take_out(entries: list[tuple[Any, Any]], first: tuple[str, str]) -> None:
    """Take the entry whose first item is ``first`` out of ``entries`` (in
    the order of the first items), if it is there."""
    at = bisect.bisect_left(entries, first, key=_first)
    if at < len(entries) and entries[at][0] == first:
        del entries[at]


def _put_back(entries: list[tuple[Any, Any]], entry: tuple[Any, Any]) -> None:
    """Put ``entry`` back in ``entries`` (in the order of the first items),
    unless it is there."""
    at = bisect.bisect_left(entries, entry[0], key=_first)
    if not (at < len(entries) and entries[at][0] == entry[0]):
        entries.insert(at, entry)


@attrs.define
class _Staged:
    """What one unit of work has saved and marked, not yet committed.

    ``*_base`` keeps, per id, the version the committed store must still be
    at when the unit of work commits (0: nothing stored yet). ``*_keys``
    index the unique keys the staged aggregates hold (key to id), kept at
    each save, so that a save's check costs the same however much is staged.
    """

    partners: dict[PartnerId, Partner] = attrs.Factory(dict)
    partner_base: dict[PartnerId, int] = attrs.Factory(dict)
    customers: dict[CustomerId, Customer] = attrs.Factory(dict)
    customer_base: dict[CustomerId, int] = attrs.Factory(dict)
    customer_keys: dict[_RefKey, CustomerId] = attrs.Factory(dict)
    requests: dict[AccessRequestId, AccessRequest] = attrs.Factory(dict)
    request_base: dict[AccessRequestId, int] = attrs.Factory(dict)
    pending_keys: dict[_PendingKey, AccessRequestId] = attrs.Factory(dict)
    resolving: set[AccessRequestId] = attrs.Factory(set)
    """The requests this unit of work resolves: saved resolved over a pending
    state (its own earlier save, or the store's)."""
    invoices: dict[InvoiceId, Invoice] = attrs.Factory(dict)
    invoice_base: dict[InvoiceId, int] = attrs.Factory(dict)
    number_keys: dict[_NumberKey, InvoiceId] = attrs.Factory(dict)
    invoice_ref_keys: dict[_RefKey, InvoiceId] = attrs.Factory(dict)
    payments: dict[PaymentId, Payment] = attrs.Factory(dict)
    payment_base: dict[PaymentId, int] = attrs.Factory(dict)
    payment_keys: dict[_IdempotencyKey, PaymentId] = attrs.Factory(dict)
    methods: dict[CustomerId, CustomerPaymentMethods] = attrs.Factory(dict)
    method_base: dict[CustomerId, int] = attrs.Factory(dict)
    scheduled: dict[ScheduledPaymentId, ScheduledPayment] = attrs.Factory(dict)
    scheduled_base: dict[ScheduledPaymentId, int] = attrs.Factory(dict)
    events: list[dict[str, Any]] = attrs.Factory(list)
    published: set[int] = attrs.Factory(set)
    claimed: set[int] = attrs.Factory(set)
    """Outbox positions ``pending`` listed: no other unit of work lists
    them until this one ends."""


@checked_constructor
class MemoryStore(Store):
    """Every aggregate and the outbox, in memory.

    Safe to share between threads; each thread takes its own unit of work
    with :meth:`unit_of_work`. Its data lives as long as the store (until
    :meth:`close`).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._closed = False
        self._partners: dict[PartnerId, Partner] = {}
        self._customers: dict[CustomerId, Customer] = {}
        self._by_partner: dict[PartnerId, set[CustomerId]] = {}
        self._customers_in_order: dict[PartnerId, _InOrder] = {}
        self._by_email: dict[str, set[CustomerId]] = {}
        self._by_ref: dict[_RefKey, CustomerId] = {}
        self._requests: dict[AccessRequestId, AccessRequest] = {}
        self._requests_by_partner: dict[PartnerId, set[AccessRequestId]] = {}
        self._pending_requests: dict[_PendingKey, AccessRequestId] = {}
        self._invoices: dict[InvoiceId, Invoice] = {}
        self._invoices_in_order: dict[PartnerId, _InOrder] = {}
        self._invoice_numbers: dict[_NumberKey, InvoiceId] = {}
        self._invoice_refs: dict[_RefKey, InvoiceId] = {}
        self._payments: dict[PaymentId, Payment] = {}
        self._payment_keys: dict[_IdempotencyKey, PaymentId] = {}
        self._payments_by_invoice: dict[InvoiceId, set[PaymentId]] = {}
        self._methods: dict[CustomerId, CustomerPaymentMethods] = {}
        self._scheduled: dict[ScheduledPaymentId, ScheduledPayment] = {}
        # Only the scheduled payments still to run, per partner, and all of
        # them per invoice: due() and for_invoice() go over no other history.
        self._scheduled_to_run: dict[PartnerId, set[ScheduledPaymentId]] = {}
        self._scheduled_by_invoice: dict[InvoiceId, set[ScheduledPaymentId]] = {}
        self._outbox: dict[int, dict[str, Any]] = {}
        self._last_position = 0
        # Outbox positions listed by a unit of work still open, and which
        # (weakly: a unit of work dropped without ending lets go, as a
        # database connection that is closed does).
        self._claims: dict[int, weakref.ref[_Staged]] = {}

    @checked_arguments
    def unit_of_work(self) -> MemoryUnitOfWork:
        """A new unit of work over this store (enter it with ``with``)."""
        self._check_open()
        return MemoryUnitOfWork(self)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (as on the SQL stores)."""
        return self._closed

    @checked_arguments
    def close(self) -> None:
        """Drop the data; the store gives no more units of work."""
        with self._lock:
            self._closed = True
            for table in (
                self._partners,
                self._customers,
                self._by_partner,
                self._customers_in_order,
                self._by_email,
                self._by_ref,
                self._requests,
                self._requests_by_partner,
                self._pending_requests,
                self._invoices,
                self._invoices_in_order,
                self._invoice_numbers,
                self._invoice_refs,
                self._payments,
                self._payment_keys,
                self._payments_by_invoice,
                self._methods,
                self._scheduled,
                self._scheduled_to_run,
                self._scheduled_by_invoice,
                self._outbox,
                self._claims,
            ):
                table.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise AltpayError("the MemoryStore is closed")

    # -- reading (each read takes the lock: a commit is seen whole or not at all)

    def _customers_with(self, email_key: str) -> list[Customer]:
        with self._lock:
            return [self._customers[i] for i in self._by_email.get(email_key, ())]

    def _ref_owner(self, key: _RefKey) -> Customer | None:
        with self._lock:
            owner = self._by_ref.get(key)
            return None if owner is None else self._customers[owner]

    def _requests_of(self, partner_id: PartnerId) -> list[AccessRequest]:
        with self._lock:
            return [self._requests[i] for i in self._requests_by_partner.get(partner_id, ())]

    def _one(self, table: Mapping[Any, _T], key: object) -> _T | None:
        with self._lock:
            return table.get(key)

    def _owner(self, index: Mapping[Any, Any], table: Mapping[Any, _T], key: object) -> _T | None:
        """The aggregate that holds the unique ``key`` of ``index``, or ``None``."""
        with self._lock:
            owner = index.get(key)
            return None if owner is None else table[owner]

    def _holder(
        self,
        staged: Mapping[Any, _T],
        keys: Mapping[Any, Any],
        key: object,
        index: Mapping[Any, Any],
        table: Mapping[Any, _T],
    ) -> _T | None:
        """The aggregate holding the unique ``key`` as a unit of work that
        staged ``staged`` (with its keys indexed in ``keys``) sees it: one it
        staged, else the stored one, unless it staged that one again (with
        another key). One look-up, however much is staged."""
        ident = keys.get(key)
        if ident is not None:
            return staged[ident]
        owner = self._owner(index, table, key)
        return None if owner is None or cast(Any, owner).id in staged else owner

    def _page(
        self,
        in_order: Mapping[PartnerId, _InOrder],
        table: Mapping[Any, _T],
        staged: Mapping[Any, _T],
        *,
        partner_id: PartnerId,
        matches: Callable[[_T], bool],
        request: PageRequest,
        order: Callable[[_T], tuple[str, str]],
        cursor: Callable[[_T], str],
    ) -> Page[_T]:
        """The keyset page ``request`` asks for, of the rows of ``partner_id``
        that ``matches``, as a unit of work that staged ``staged`` sees them
        (``in_order``: each partner's committed rows, in order). It reads
        from the cursor on, only as many rows as it takes to fill the page
        and to know whether a page comes before it and after it."""
        own = sorted(
            (r for r in staged.values() if cast(Any, r).partner_id == partner_id and matches(r)),
            key=order,
        )
        own_keys = [order(row) for row in own]
        with self._lock:
            keys = in_order.get(partner_id, [])

            def walk(at: tuple[str, str] | None, forward: bool, inclusive: bool) -> Iterator[_T]:
                """The matching rows after ``at`` in order (``forward``), or
                before it in reverse order; ``inclusive``: ``at``'s own too."""
                find = bisect.bisect_left if forward == inclusive else bisect.bisect_right
                cut = 0 if at is None else find(keys, at, key=_first)
                own_cut = 0 if at is None else find(own_keys, at)
                if forward:
                    positions, mine = range(cut, len(keys)), own[own_cut:]
                else:
                    positions, mine = range(cut - 1, -1, -1), own[:own_cut][::-1]
                ids = (keys[i][1] for i in positions)
                stored = filter(matches, (table[i] for i in ids if i not in staged))
                return heapq.merge(stored, mine, key=order, reverse=not forward)

            limit = request.limit
            if request.before is not None:
                at = (request.before.key, request.before.id)
                back = list(itertools.islice(walk(at, False, False), limit + 1))
                items = tuple(reversed(back[:limit]))
                has_previous = len(back) > limit
                has_next = next(walk(at, True, True), None) is not None
            else:
                after = None if request.after is None else (request.after.key, request.after.id)
                ahead = list(itertools.islice(walk(after, True, False), limit + 1))
                items = tuple(ahead[:limit])
                has_next = len(ahead) > limit
                before = None if after is None else next(walk(after, False, True), None)
                has_previous = before is not None
        return Page(
            items=items,
            start_cursor=cursor(items[0]) if items else None,
            end_cursor=cursor(items[-1]) if items else None,
            has_next_page=has_next,
            has_previous_page=has_previous,
        )

    def _members(
        self, index: Mapping[Any, set[Any]], table: Mapping[Any, _T], key: object
    ) -> list[_T]:
        with self._lock:
            return [table[i] for i in index.get(key, ())]

    def _pending(self, limit: int, staged: _Staged) -> list[tuple[int, dict[str, Any]]]:
        """Up to ``limit`` messages that ``staged`` has not marked published
        and no other unit of work has listed, claimed for ``staged``."""
        found: list[tuple[int, dict[str, Any]]] = []
        skip, claims = staged.published, self._claims
        with self._lock:
            for position, data in self._outbox.items():
                if len(found) == limit:
                    break
                if position in skip:
                    continue
                holder = claims.get(position)
                owner = None if holder is None else holder()
                if owner is None or owner is staged:
                    found.append((position, data))
            mine = weakref.ref(staged)
            for position, _ in found:
                claims[position] = mine
                staged.claimed.add(position)
        return found

    def _unclaim(self, staged: _Staged) -> None:
        """End the claims of a unit of work that commits or rolls back."""
        if staged.claimed:
            with self._lock:
                for position in staged.claimed:
                    holder = self._claims.get(position)
                    if holder is not None and holder() is staged:
                        del self._claims[position]
            staged.claimed.clear()

    # -- committing ------------------------------------------------------------

    def _commit(self, staged: _Staged) -> None:
        with self._lock:
            self._check_open()
            self._verify(staged)
            undo = _Undo()
            try:
                for partner in staged.partners.values():
                    self._write_partner(undo, partner)
                moves: list[_Move] = []
                for customer in staged.customers.values():
                    self._write_customer(undo, customer, moves)
                _place(undo, self._customers_in_order, moves)
                for request in staged.requests.values():
                    self._write_request(undo, request)
                moves = []
                for invoice in staged.invoices.values():
                    self._write_invoice(undo, invoice, moves)
                _place(undo, self._invoices_in_order, moves)
                for payment in staged.payments.values():
                    self._write_payment(undo, payment)
                for methods in staged.methods.values():
                    undo.put(self._methods, methods.customer_id, methods)
                for scheduled in staged.scheduled.values():
                    self._write_scheduled(undo, scheduled)
                self._write_outbox(undo, staged.events)
                self._write_published(undo, staged.published)
            except BaseException:
                undo.run()
                raise

    def _verify(self, staged: _Staged) -> None:
        """Every check a commit needs, before anything is written."""
        # Each kind in order of id, as the SQL stores write (and lock) rows:
        # of several aggregates another writer changed, the same one is named.
        for partner_id, base in sorted(staged.partner_base.items(), key=_by_id):
            found = self._partners.get(partner_id)
            _check_version("partner", partner_id, found, base)
        tables: list[tuple[str, Mapping[Any, Any], Mapping[Any, Any], Mapping[Any, Any]]] = [
            ("customer", staged.customer_base, staged.customers, self._customers),
            ("access request", staged.request_base, staged.requests, self._requests),
            ("invoice", staged.invoice_base, staged.invoices, self._invoices),
            ("payment", staged.payment_base, staged.payments, self._payments),
            ("payment methods", staged.method_base, staged.methods, self._methods),
            ("scheduled payment", staged.scheduled_base, staged.scheduled, self._scheduled),
        ]
        for kind, bases, saved, committed in tables:
            for key, base in sorted(bases.items(), key=_by_id):
                found = committed.get(key)
                _check_version(kind, key, found, base, saved[key])
                _check_owner(kind, key, found, saved[key])
        # After this commit, each unique key has one owner.
        _unique_in_commit(staged.customers, _ref_key, self._by_ref, _ref_taken)
        _unique_in_commit(
            staged.requests, _pending_key, self._pending_requests, _pending_request_taken
        )
        _unique_in_commit(staged.invoices, _number_key, self._invoice_numbers, _number_taken)
        _unique_in_commit(staged.invoices, _invoice_ref_key, self._invoice_refs, _invoice_ref_taken)
        _unique_in_commit(staged.payments, _idempotency_key, self._payment_keys, _key_taken)
        self._verify_references(staged)

    def _verify_references(self, staged: _Staged) -> None:
        """The rules between aggregates, as they stand after this commit:
        its customers' tags are in their partners' catalogs; a tag its
        partners take out of a catalog is carried by no committed customer
        it leaves as it is; its new customers added by hand belong to
        partners none of whose integrations syncs customers, and its new
        synced ones name a connected integration of their partner that syncs
        customers (C6); its new
        invoices name a customer of their partner that is not archived (C8,
        I1); its new payments of a stored customer of their partner name one
        that is not archived (C8), one of its users as payer (I1), and, for
        a saved method, an active one of its stored book (payment-method); the
        access requests it resolves name a team member of their
        partner who may resolve them (C9); its new payment methods books, a
        customer of their partner."""
        catalogs: dict[PartnerId, frozenset[TagId]] = {}

        def partner_of(partner_id: PartnerId) -> Partner | None:
            partner = staged.partners.get(partner_id)
            return self._partners.get(partner_id) if partner is None else partner

        def customer_of(customer_id: CustomerId) -> Customer | None:
            customer = staged.customers.get(customer_id)
            return self._customers.get(customer_id) if customer is None else customer

        def book_of(customer_id: CustomerId) -> CustomerPaymentMethods | None:
            book = staged.methods.get(customer_id)
            return self._methods.get(customer_id) if book is None else book

        def catalog(partner_id: PartnerId) -> frozenset[TagId]:
            found = catalogs.get(partner_id)
            if found is None:
                partner = partner_of(partner_id)
                found = frozenset(()) if partner is None else frozenset(t.id for t in partner.tags)
                catalogs[partner_id] = found
            return found

        # Customers in order of id, partners in order of id, tags in order,
        # as the SQL stores check: the same fault named.
        for customer in sorted(staged.customers.values(), key=lambda c: str(c.id)):
            if customer.tags and not customer.tags <= catalog(customer.partner_id):
                stray = min(customer.tags - catalog(customer.partner_id))
                raise tag_not_in_catalog(customer.id, stray)
        for partner in sorted(staged.partners.values(), key=lambda p: str(p.id)):
            old = self._partners.get(partner.id)
            removed = frozenset(() if old is None else (t.id for t in old.tags))
            removed -= catalog(partner.id)
            if not removed:
                continue
            others = [
                self._customers[customer_id].tags
                for customer_id in self._by_partner.get(partner.id, ())
                if customer_id not in staged.customers
            ]
            for tag in sorted(removed):
                if any(tag in tags for tags in others):
                    raise tag_still_carried(partner.id, tag)
        # In order of id, as the SQL stores check: the same customer named.
        new_customers = (c for c in staged.customers.values() if c.id not in self._customers)
        for customer in sorted(new_customers, key=lambda c: str(c.id)):
            ref = customer.external_ref
            if not may_add_customer(partner_of(customer.partner_id), ref):
                raise customer_added_by_hand(
                    customer.id, customer.partner_id, None if ref is None else ref.system
                )
        # In order of id, as the SQL stores check: the same invoice named.
        new = sorted((i for i, base in staged.invoice_base.items() if base == 0), key=str)
        for invoice_id in new:
            invoice = staged.invoices[invoice_id]
            owner = customer_of(invoice.customer_id)
            if owner is None or owner.partner_id != invoice.partner_id:
                raise invoice_customer_missing(invoice_id, invoice.customer_id)
            if owner.status is CustomerStatus.ARCHIVED:
                raise invoice_customer_archived(invoice_id, invoice.customer_id)
        # In order of id, as the SQL stores check: the same payment named. A
        # payment whose customer is not stored is not checked (nor are its
        # invoices): the domain sees to that.
        paid = sorted((p for p, base in staged.payment_base.items() if base == 0), key=str)
        for payment_id in paid:
            payment = staged.payments[payment_id]
            owner = customer_of(payment.customer_id)
            if owner is None or owner.partner_id != payment.partner_id:
                continue
            if owner.status is CustomerStatus.ARCHIVED:
                raise payment_customer_archived(payment_id, payment.customer_id)
            if not any(user.id == payment.user_id for user in owner.users):
                raise payment_payer_missing(payment_id, payment.user_id, payment.customer_id)
            method_id = payment.payment_method_id
            book = book_of(payment.customer_id)
            if method_id is None or book is None:
                continue
            if not any(m.id == method_id and m.is_active for m in book.methods):
                raise payment_method_archived(payment_id, method_id, payment.customer_id)
        resolved = (staged.requests[r] for r in staged.resolving)
        for request in sorted(resolved, key=lambda r: str(r.id)):
            if not may_resolve(partner_of(request.partner_id), request.resolved_by):
                raise resolver_not_allowed(request.id, request.resolved_by)
        books = sorted((c for c, base in staged.method_base.items() if base == 0), key=str)
        for customer_id in books:
            book = staged.methods[customer_id]
            holder = customer_of(customer_id)
            if holder is None or holder.partner_id != book.partner_id:
                raise methods_customer_missing(customer_id, book.partner_id)

    def _write_partner(self, undo: _Undo, partner: Partner) -> None:
        undo.put(self._partners, partner.id, partner)

    def _write_customer(self, undo: _Undo, customer: Customer, moves: list[_Move]) -> None:
        old = self._customers.get(customer.id)
        if old is not None:
            for user in old.users:
                undo.discard_from(self._by_email[user.email.key], old.id)
            old_key = _ref_key(old)
            if old_key is not None:
                undo.pop_if(self._by_ref, old_key, old.id)
        undo.put(self._customers, customer.id, customer)
        if customer.partner_id not in self._by_partner:
            undo.put(self._by_partner, customer.partner_id, set())
        undo.add_to(self._by_partner[customer.partner_id], customer.id)
        place = None if old is None else _order(old)
        moves.append((customer.partner_id, place, _order(customer), customer.id))
        for user in customer.users:
            if user.email.key not in self._by_email:
                undo.put(self._by_email, user.email.key, set())
            undo.add_to(self._by_email[user.email.key], customer.id)
        key = _ref_key(customer)
        if key is not None:
            undo.put(self._by_ref, key, customer.id)

    def _write_request(self, undo: _Undo, request: AccessRequest) -> None:
        old = self._requests.get(request.id)
        old_key = None if old is None else _pending_key(old)
        if old_key is not None:
            undo.pop_if(self._pending_requests, old_key, request.id)
        undo.put(self._requests, request.id, request)
        key = _pending_key(request)
        if key is not None:
            undo.put(self._pending_requests, key, request.id)
        if request.partner_id not in self._requests_by_partner:
            undo.put(self._requests_by_partner, request.partner_id, set())
        undo.add_to(self._requests_by_partner[request.partner_id], request.id)

    def _write_invoice(self, undo: _Undo, invoice: Invoice, moves: list[_Move]) -> None:
        old = self._invoices.get(invoice.id)
        if old is not None:
            undo.pop_if(self._invoice_numbers, _number_key(old), old.id)
            old_ref = _invoice_ref_key(old)
            if old_ref is not None:
                undo.pop_if(self._invoice_refs, old_ref, old.id)
        undo.put(self._invoices, invoice.id, invoice)
        place = None if old is None else _invoice_order(old)
        moves.append((invoice.partner_id, place, _invoice_order(invoice), invoice.id))
        undo.put(self._invoice_numbers, _number_key(invoice), invoice.id)
        ref = _invoice_ref_key(invoice)
        if ref is not None:
            undo.put(self._invoice_refs, ref, invoice.id)

    def _write_payment(self, undo: _Undo, payment: Payment) -> None:
        # A payment's key never changes (a fixed field); its invoices do not
        # either through the commands, but the index follows what is stored.
        old = self._payments.get(payment.id)
        if old is not None:
            for invoice_id in old.invoice_ids:
                undo.discard_from(self._payments_by_invoice[invoice_id], old.id)
        undo.put(self._payments, payment.id, payment)
        undo.put(self._payment_keys, _idempotency_key(payment), payment.id)
        for invoice_id in payment.invoice_ids:
            undo.index(self._payments_by_invoice, invoice_id, payment.id)

    def _write_scheduled(self, undo: _Undo, scheduled: ScheduledPayment) -> None:
        # Its partner never changes (an id is one partner's); its invoice does
        # not either through the commands, but the index follows what is stored.
        old = self._scheduled.get(scheduled.id)
        if old is not None:
            undo.discard_from(self._scheduled_by_invoice[old.invoice_id], old.id)
        undo.put(self._scheduled, scheduled.id, scheduled)
        undo.index(self._scheduled_by_invoice, scheduled.invoice_id, scheduled.id)
        if scheduled.status is ScheduledPaymentStatus.SCHEDULED:
            undo.index(self._scheduled_to_run, scheduled.partner_id, scheduled.id)
        else:
            undo.discard_from(self._scheduled_to_run.get(scheduled.partner_id, set()), scheduled.id)

    def _write_outbox(self, undo: _Undo, events: Sequence[dict[str, Any]]) -> None:
        last = previous = self._last_position
        undo.call(lambda: setattr(self, "_last_position", previous))
        for data in events:
            last += 1
            undo.put(self._outbox, last, data)
        self._last_position = last

    def _write_published(self, undo: _Undo, positions: Iterable[int]) -> None:
        outbox = self._outbox
        # Undone last: the messages put back go to the end of the dict, and
        # pending() lists the outbox in its order, which is by position.
        undo.call(lambda: _sort_by_key(outbox))
        for position in positions:
            undo.pop(outbox, position)


def _place(undo: _Undo, in_order: dict[PartnerId, _InOrder], moves: Iterable[_Move]) -> None:
    """Put each row a commit wrote in its place in its partner's rows in
    order (a row keeps its partner), if it is new or its place changed."""
    by_partner: dict[PartnerId, list[_Move]] = {}
    for move in moves:
        if move[1] != move[2]:
            by_partner.setdefault(move[0], []).append(move)
    for partner_id, moved in by_partner.items():
        if partner_id not in in_order:
            undo.put(in_order, partner_id, [])
        rows = in_order[partner_id]
        if len(moved) <= _FEW_MOVES:
            for _, old, new, ident in moved:
                if old is not None:
                    undo.remove_sorted(rows, old)
                undo.insort(rows, (new, ident))
        else:
            # The rows kept are in order already: sorting merges the new places in.
            gone = {old for _, old, _, _ in moved if old is not None}
            placed = [entry for entry in rows if entry[0] not in gone]
            placed += [(new, ident) for _, _, new, ident in moved]
            undo.rewrite(rows, sorted(placed, key=_first))


def _sort_by_key(table: dict[Any, Any]) -> None:
    """Put ``table``'s entries in the order of their keys, in place."""
    entries = sorted(table.items())
    table.clear()
    table.update(entries)


def _by_id(item: tuple[object, int]) -> str:
    """Where an aggregate's ``(id, version)`` sorts: by its id's text, as
    the SQL stores sort rows."""
    return str(item[0])


def _check_version(kind: str, key: object, found: Any, base: int, new: Any = None) -> None:
    """``found``, stored, is at version ``base``; ``new``, saved, is of its
    partner (``None`` for a partner)."""
    version = 0 if found is None else found.version
    if version != base:
        raise _conflict(kind, key, version, base, theirs=new is not None and _theirs(found, new))


def _theirs(found: Any, new: Any) -> bool:
    """Whether ``found``, stored under ``new``'s id, is another partner's."""
    return found is not None and found.partner_id != new.partner_id


def _check_owner(kind: str, key: object, found: Any, new: Any) -> None:
    """An id is one partner's: saving it under another partner is refused,
    at the stored version too, in the SQL stores' words (the id is already
    stored), naming neither that partner nor the version stored."""
    if _theirs(found, new):
        raise ConcurrencyConflict(already_stored(kind, str(key)), kind=kind, key=key)


def _unique_in_commit(
    staged: Mapping[Any, Any],
    key_of: Callable[[Any], Hashable | None],
    committed: Mapping[Any, Any],
    taken: Callable[[Any], ConcurrencyConflict],
) -> None:
    """After a commit of ``staged``, each unique key has one owner: no two
    staged aggregates share one, and a committed holder is not left holding
    it unless it is staged (with its own, new key)."""
    claimed: dict[Hashable, Any] = {}
    for ident, aggregate in staged.items():
        key = key_of(aggregate)
        if key is None:
            continue
        owner = claimed.setdefault(key, ident)
        holder = committed.get(key)
        if owner != ident or (holder is not None and holder != ident and holder not in staged):
            raise taken(key)


def _unique_at_save(
    ident: object,
    key: Hashable | None,
    staged: Mapping[Any, Any],
    keys: Mapping[Any, Any],
    *,
    owner: Callable[[Any], Any],
    taken: Callable[[Any], ConcurrencyConflict],
) -> None:
    """The unique-key check of a save, against what the unit of work sees
    (``keys``: the staged aggregates' keys, to their ids; ``owner``: the
    committed aggregate holding a key, if any); the commit checks again."""
    if key is None:
        return
    holder = owner(key)
    theirs = holder is not None and holder.id != ident and holder.id not in staged
    if keys.get(key, ident) != ident or theirs:
        raise taken(key)


def _restage_keys(
    keys: dict[Any, Any],
    key_of: Callable[[Any], Hashable | None],
    ident: object,
    old: object,
    new: object,
) -> None:
    """Keep ``keys`` (a unit of work's index of its staged aggregates' keys)
    as ``ident`` is staged again: ``old``, its staged value, if any, lets go
    of its key; ``new`` holds its own."""
    old_key = None if old is None else key_of(old)
    if old_key is not None:
        del keys[old_key]
    new_key = key_of(new)
    if new_key is not None:
        keys[new_key] = ident


def _ref_taken(key: _RefKey) -> ConcurrencyConflict:
    return customer_ref_taken(key[1])


def _pending_request_taken(key: _PendingKey) -> ConcurrencyConflict:
    return access_request_pending(key[1])


def _number_taken(key: _NumberKey) -> ConcurrencyConflict:
    return invoice_number_taken(key[1])


def _invoice_ref_taken(key: _RefKey) -> ConcurrencyConflict:
    return invoice_ref_taken(key[1])


def _key_taken(key: _IdempotencyKey) -> ConcurrencyConflict:
    return idempotency_key_taken(key[1])


_HISTORIES: tuple[tuple[type[Any], Callable[[Any, Any], None]], ...] = (
    (Partner, check_partner_history),
    (AccessRequest, check_access_request_history),
    (Invoice, check_invoice_history),
    (Payment, check_payment_history),
    (ScheduledPayment, check_scheduled_payment_history),
    (CustomerPaymentMethods, check_saved_methods),
)
"""The kinds whose saves are checked against the stored aggregate for
changes no command makes, with their checks (a new one, with nothing
stored, passes them all)."""


@checked_constructor
class MemoryUnitOfWork(UnitOfWork):
    """A unit of work over a :class:`MemoryStore`; get one from the store
    (anything else at ``store`` is a
    :class:`~altpay_core.errors.ValidationError`, ``wrong_type``)."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = _fields.argument("store", store, MemoryStore, "a MemoryStore")
        self._staged = _Staged()
        self.partners: _Partners = _Partners(self)
        self.customers: _Customers = _Customers(self)
        self.access_requests: _AccessRequests = _AccessRequests(self)
        self.invoices: _Invoices = _Invoices(self)
        self.payments: _Payments = _Payments(self)
        self.payment_methods: _PaymentMethods = _PaymentMethods(self)
        self.scheduled_payments: _ScheduledPayments = _ScheduledPayments(self)
        self.outbox: _Outbox = _Outbox(self)

    def _begin(self) -> None:
        self._store._check_open()
        self.rollback()

    @checked_arguments
    def commit(self) -> None:
        """Write everything staged, all or nothing; the unit of work stays
        usable. If the commit fails, what was staged is forgotten, as a
        database's rollback forgets it: read again and retry."""
        staged = self._staging()
        self._staged = _Staged()
        try:
            self._store._commit(staged)
        finally:
            self._store._unclaim(staged)

    @checked_arguments
    def rollback(self) -> None:
        """Forget everything staged."""
        staged, self._staged = self._staged, _Staged()
        self._store._unclaim(staged)

    def _staging(self) -> _Staged:
        """What this unit of work has staged; refused outside its block, and
        once the store is closed (its data is gone: a read would find
        nothing, as if nothing were stored)."""
        self._in_block()
        self._store._check_open()
        return self._staged

    def _seen(
        self,
        staged: Mapping[Any, _Owned],
        table: Mapping[Any, _Owned],
        key: object,
        partner_id: PartnerId,
    ) -> _Owned | None:
        """What this unit of work sees under ``key`` (its own save, else the
        committed aggregate), if it belongs to ``partner_id``; else ``None``."""
        found = staged.get(key)
        if found is None:
            found = self._store._one(table, key)
        return found if found is not None and found.partner_id == partner_id else None

    def _stage(
        self,
        aggregate: _A,
        kind: str,
        staged: dict[Any, _A],
        base: dict[Any, int],
        committed: _A | None,
        *,
        ident: object = None,
        unique: Callable[[], None] | None = None,
        keys: Sequence[tuple[dict[Any, Any], Callable[[_A], Hashable | None]]] = (),
    ) -> _A:
        """The checks and bookkeeping every save shares; returns the stored
        value. ``ident`` is the aggregate's key, if not its ``id``; ``keys``,
        the unit of work's indexes of unique keys to keep, with the key each
        takes from an aggregate.

        In the SQL stores' order: the version, then the owner and the fields
        that never change, then ``unique`` (the aggregate's unique keys), so
        that a save at fault twice is refused for the same reason by every
        store."""
        key = aggregate.id if ident is None else ident  # type: ignore[attr-defined]
        current = staged.get(key, committed)
        version = 0 if current is None else current.version
        if aggregate.version != version:
            theirs = not isinstance(aggregate, Partner) and _theirs(current, aggregate)
            raise _conflict(kind, key, version, aggregate.version, theirs=theirs)
        if not isinstance(aggregate, Partner):
            _check_owner(kind, key, current, aggregate)
            check_fixed_fields(kind, key, current, aggregate)
        for cls, check in _HISTORIES:
            if isinstance(aggregate, cls):
                check(current, aggregate)  # None for a new one: nothing to keep
        if unique is not None:
            unique()
        events = [to_dict(event) for event in aggregate.events]
        stored = attrs.evolve(aggregate, version=aggregate.version + 1)
        base.setdefault(key, aggregate.version)
        for index, key_of in keys:
            _restage_keys(index, key_of, key, staged.get(key), stored)
        staged[key] = stored
        self._staged.events.extend(events)
        return stored


@checked_constructor
class _Partners(PartnerRepository):
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    @checked_arguments
    def get(self, partner_id: PartnerId) -> Partner:
        staged = self._uow._staging()
        partner_id = _fields.entity_id("partner_id", partner_id, PartnerId)
        found = staged.partners.get(partner_id)
        if found is None:
            found = self._uow._store._one(self._uow._store._partners, partner_id)
        if found is None:
            raise NotFound("partner", partner_id)
        return found

    @checked_arguments
    def save(self, partner: Partner) -> Partner:
        staged = self._uow._staging()
        if not isinstance(partner, Partner):
            raise _wrong_type("partner", Partner, partner)
        committed = self._uow._store._one(self._uow._store._partners, partner.id)
        return self._uow._stage(partner, "partner", staged.partners, staged.partner_base, committed)


@checked_constructor
class _Customers(CustomerRepository):
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    def _visible(self, committed: Iterable[Customer]) -> list[Customer]:
        """Committed customers with this unit of work's saves laid over them."""
        staged = self._uow._staged.customers
        return [c for c in committed if c.id not in staged]

    @checked_arguments
    def get(self, partner_id: PartnerId, customer_id: CustomerId) -> Customer:
        staged = self._uow._staging()
        partner_id = _fields.entity_id("partner_id", partner_id, PartnerId)
        customer_id = _fields.entity_id("customer_id", customer_id, CustomerId)
        found = self._uow._seen(
            staged.customers, self._uow._store._customers, customer_id, partner_id
        )
        if found is None:
            raise NotFound("customer", customer_id)
        return found

    @checked_arguments
    def get_by_external_ref(self, partner_id: PartnerId, ref: ExternalRef) -> Customer:
        staged = self._uow._staging()
        partner_id = _fields.entity_id("partner_id", partner_id, PartnerId)
        if not isinstance(ref, ExternalRef):
            raise _wrong_type("ref", ExternalRef, ref)
        store, key = self._uow._store, (partner_id, ref)
        found = store._holder(
            staged.customers, staged.customer_keys, key, store._by_ref, store._customers
        )
        if found is None:
            raise NotFound("customer", ref)
        return found

    @checked_arguments
    def with_user(self, partner_id: PartnerId, email: EmailAddress | str) -> list[Customer]:
        staged = self._uow._staging()
        partner_id = _fields.entity_id("partner_id", partner_id, PartnerId)
        key = _email_key(email)
        found = [
            c
            for c in self._visible(self._uow._store._customers_with(key))
            if c.partner_id == partner_id
        ]
        found += [
            c
            for c in staged.customers.values()
            if c.partner_id == partner_id and any(u.email.key == key for u in c.users)
        ]
        return sorted(found, key=_order)

    @checked_arguments
    def accounts_of(self, email: EmailAddress | str) -> list[Customer]:
        staged = self._uow._staging()
        key = _email_key(email)
        found = self._visible(self._uow._store._customers_with(key))
        found += [c for c in staged.customers.values() if any(u.email.key == key for u in c.users)]
        return sorted((c for c in found if c.is_active), key=_order)

    @checked_arguments
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
        staged = self._uow._staging()
        # The arguments in the SQL stores' order, so that each store names
        # the same one when several are wrong.
        request = PageRequest.parse(limit, after, before, listing=Listing.CUSTOMERS)
        partner_id = _fields.entity_id("partner_id", partner_id, PartnerId)
        wanted_tag = None if tag is None else _fields.entity_id("tag", tag, TagId)
        wanted_status = None if status is None else _fields.choice("status", status, CustomerStatus)
        prefix = (
            None
            if name_prefix is None
            else _fields.query_text("name_prefix", name_prefix).casefold()
        )

        def matches(customer: Customer) -> bool:
            return (
                customer.partner_id == partner_id
                and (wanted_status is None or customer.status is wanted_status)
                and (wanted_tag is None or wanted_tag in customer.tags)
                and (prefix is None or customer_sort_key(customer).startswith(prefix))
            )

        store = self._uow._store
        return store._page(
            store._customers_in_order,
            store._customers,
            staged.customers,
            partner_id=partner_id,
            matches=matches,
            request=request,
            order=_order,
            cursor=customer_cursor,
        )

    @checked_arguments
    def save(self, customer: Customer) -> Customer:
        staged = self._uow._staging()
        if not isinstance(customer, Customer):
            raise _wrong_type("customer", Customer, customer)
        store = self._uow._store
        committed = store._one(store._customers, customer.id)
        key = _ref_key(customer)

        def unique() -> None:  # C10
            _unique_at_save(
                customer.id,
                key,
                staged.customers,
                staged.customer_keys,
                owner=store._ref_owner,
                taken=_ref_taken,
            )

        return self._uow._stage(
            customer,
            "customer",
            staged.customers,
            staged.customer_base,
            committed,
            unique=unique,
            keys=[(staged.customer_keys, _ref_key)],
        )


@checked_constructor
class _AccessRequests(AccessRequestRepository):
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    @checked_arguments
    def get(self, partner_id: PartnerId, request_id: AccessRequestId) -> AccessRequest:
        staged = self._uow._staging()
        partner_id = _fields.entity_id("partner_id", partner_id, PartnerId)
        request_id = _fields.entity_id("request_id", request_id, AccessRequestId)
        found = self._uow._seen(staged.requests, self._uow._store._requests, request_id, partner_id)
        if found is None:
            raise NotFound("access request", request_id)
        return found

    @checked_arguments
    def list(
        self, partner_id: PartnerId, *, status: AccessRequestStatus | None = None
    ) -> list[AccessRequest]:
        staged = self._uow._staging()
        partner_id = _fields.entity_id("partner_id", partner_id, PartnerId)
        wanted = None if status is None else _fields.choice("status", status, AccessRequestStatus)
        rows = [r for r in self._uow._store._requests_of(partner_id) if r.id not in staged.requests]
        rows += [r for r in staged.requests.values() if r.partner_id == partner_id]
        return sorted(
            (r for r in rows if wanted is None or r.status is wanted),
            key=lambda r: (r.requested_at, r.id.value),
        )

    @checked_arguments
    def pending_for(self, partner_id: PartnerId, email: EmailAddress | str) -> AccessRequest | None:
        staged = self._uow._staging()
        partner_id = _fields.entity_id("partner_id", partner_id, PartnerId)
        wanted = (partner_id, _email(email))
        store = self._uow._store
        return store._holder(
            staged.requests, staged.pending_keys, wanted, store._pending_requests, store._requests
        )

    @checked_arguments
    def save(self, request: AccessRequest) -> AccessRequest:
        staged = self._uow._staging()
        if not isinstance(request, AccessRequest):
            raise _wrong_type("request", AccessRequest, request)
        store = self._uow._store
        committed = store._one(store._requests, request.id)
        before = staged.requests.get(request.id, committed)
        key = _pending_key(request)

        def unique() -> None:
            _unique_at_save(
                request.id,
                key,
                staged.requests,
                staged.pending_keys,
                owner=functools.partial(store._owner, store._pending_requests, store._requests),
                taken=_pending_request_taken,
            )

        saved = self._uow._stage(
            request,
            "access request",
            staged.requests,
            staged.request_base,
            committed,
            unique=unique,
            keys=[(staged.pending_keys, _pending_key)],
        )
        if before is not None and before.is_pending and not request.is_pending:
            staged.resolving.add(request.id)
        elif request.is_pending:
            staged.resolving.discard(request.id)
        return saved


@checked_constructor
class _Invoices(InvoiceRepository):
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    @checked_arguments
    def get(self, partner_id: PartnerId, invoice_id: InvoiceId) -> Invoice:
        staged = self._uow._staging()
        partner_id = _fields.entity_id("partner_id", partner_id, PartnerId)
        invoice_id = _fields.entity_id("invoice_id", invoice_id, InvoiceId)
        found = self._uow._seen(staged.invoices, self._uow._store._invoices, invoice_id, partner_id)
        if found is None:
            raise NotFound("invoice", invoice_id)
        return found

    def _unique(
        self,
        key: _NumberKey | _RefKey,
        keys: Mapping[Any, InvoiceId],
        index: Mapping[Any, InvoiceId],
    ) -> Invoice | None:
        """The invoice holding a unique key (``keys``: the staged invoices'
        keys of its kind), as this unit of work sees it."""
        store = self._uow._store
        return store._holder(self._uow._staged.invoices, keys, key, index, store._invoices)

    @checked_arguments
    def get_by_number(self, partner_id: PartnerId, number: str) -> Invoice:
        staged = self._uow._staging()
        partner_id = _fields.entity_id("partner_id", partner_id, PartnerId)
        number = _fields.query_text("number", number)
        key = (partner_id, number.strip())
        found = self._unique(key, staged.number_keys, self._uow._store._invoice_numbers)
        if found is None:
            raise NotFound("invoice", number.strip())
        return found

    @checked_arguments
    def get_by_external_ref(self, partner_id: PartnerId, ref: ExternalRef) -> Invoice:
        staged = self._uow._staging()
        partner_id = _fields.entity_id("partner_id", partner_id, PartnerId)
        if not isinstance(ref, ExternalRef):
            raise _wrong_type("ref", ExternalRef, ref)
        key = (partner_id, ref)
        found = self._unique(key, staged.invoice_ref_keys, self._uow._store._invoice_refs)
        if found is None:
            raise NotFound("invoice", ref)
        return found

    @checked_arguments
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
        self._uow._staging()
        # The arguments in the SQL stores' order (the page, the scope, the
        # filters), so that each store names the same one when several are wrong.
        request = PageRequest.parse(limit, after, before, listing=Listing.INVOICES)
        scope = self._scope(partner_id, customer_id)
        wanted = None if status is None else _fields.choice("status", status, InvoiceStatus)
        first = None if due_from is None else _fields.plain_date("due_from", due_from)
        last = None if due_to is None else _fields.plain_date("due_to", due_to)

        def matches(invoice: Invoice) -> bool:
            return (
                (wanted is None or invoice.status is wanted)
                and (first is None or invoice.due_date >= first)
                and (last is None or invoice.due_date <= last)
            )

        return self._select(*scope, matches, request)

    @checked_arguments
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
        self._uow._staging()
        request = PageRequest.parse(limit, after, before, listing=Listing.INVOICES)
        scope = self._scope(partner_id, customer_id)
        day = _fields.plain_date("as_of", as_of)
        return self._select(*scope, lambda i: i.is_overdue(day), request)

    @staticmethod
    def _scope(
        partner_id: PartnerId, customer_id: CustomerId | None
    ) -> tuple[PartnerId, CustomerId | None]:
        partner_id = _fields.entity_id("partner_id", partner_id, PartnerId)
        if customer_id is None:
            return partner_id, None
        return partner_id, _fields.entity_id("customer_id", customer_id, CustomerId)

    def _select(
        self,
        partner_id: PartnerId,
        customer: CustomerId | None,
        matches: Callable[[Invoice], bool],
        request: PageRequest,
    ) -> Page[Invoice]:
        store = self._uow._store
        return store._page(
            store._invoices_in_order,
            store._invoices,
            self._uow._staged.invoices,
            partner_id=partner_id,
            matches=lambda i: (customer is None or i.customer_id == customer) and matches(i),
            request=request,
            order=_invoice_order,
            cursor=invoice_cursor,
        )

    @checked_arguments
    def save(self, invoice: Invoice) -> Invoice:
        staged = self._uow._staging()
        if not isinstance(invoice, Invoice):
            raise _wrong_type("invoice", Invoice, invoice)
        store = self._uow._store

        def unique() -> None:
            for key_of, staged_keys, index, taken in (
                (_number_key, staged.number_keys, store._invoice_numbers, _number_taken),
                (
                    _invoice_ref_key,
                    staged.invoice_ref_keys,
                    store._invoice_refs,
                    _invoice_ref_taken,
                ),
            ):
                _unique_at_save(
                    invoice.id,
                    key_of(invoice),
                    staged.invoices,
                    staged_keys,
                    owner=functools.partial(store._owner, index, store._invoices),
                    taken=taken,
                )

        committed = store._one(store._invoices, invoice.id)
        return self._uow._stage(
            invoice,
            "invoice",
            staged.invoices,
            staged.invoice_base,
            committed,
            unique=unique,
            keys=[(staged.number_keys, _number_key), (staged.invoice_ref_keys, _invoice_ref_key)],
        )


@checked_constructor
class _Payments(PaymentRepository):
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    @checked_arguments
    def get(self, partner_id: PartnerId, payment_id: PaymentId) -> Payment:
        staged = self._uow._staging()
        partner_id = _fields.entity_id("partner_id", partner_id, PartnerId)
        payment_id = _fields.entity_id("payment_id", payment_id, PaymentId)
        found = self._uow._seen(staged.payments, self._uow._store._payments, payment_id, partner_id)
        if found is None:
            raise NotFound("payment", payment_id)
        return found

    @checked_arguments
    def get_by_idempotency_key(self, partner_id: PartnerId, key: str) -> Payment | None:
        staged = self._uow._staging()
        partner_id = _fields.entity_id("partner_id", partner_id, PartnerId)
        wanted = (partner_id, _fields.query_text("key", key).strip())
        store = self._uow._store
        return store._holder(
            staged.payments, staged.payment_keys, wanted, store._payment_keys, store._payments
        )

    @checked_arguments
    def for_invoice(self, partner_id: PartnerId, invoice_id: InvoiceId) -> list[Payment]:
        staged = self._uow._staging()
        partner_id = _fields.entity_id("partner_id", partner_id, PartnerId)
        invoice_id = _fields.entity_id("invoice_id", invoice_id, InvoiceId)
        store = self._uow._store
        rows = [
            p
            for p in store._members(store._payments_by_invoice, store._payments, invoice_id)
            if p.id not in staged.payments
        ]
        rows += [p for p in staged.payments.values() if invoice_id in p.invoice_ids]
        return sorted((p for p in rows if p.partner_id == partner_id), key=_by_time)

    @checked_arguments
    def save(self, payment: Payment) -> Payment:
        staged = self._uow._staging()
        if not isinstance(payment, Payment):
            raise _wrong_type("payment", Payment, payment)
        store = self._uow._store

        def unique() -> None:
            _unique_at_save(
                payment.id,
                _idempotency_key(payment),
                staged.payments,
                staged.payment_keys,
                owner=functools.partial(store._owner, store._payment_keys, store._payments),
                taken=_key_taken,
            )

        committed = store._one(store._payments, payment.id)
        return self._uow._stage(
            payment,
            "payment",
            staged.payments,
            staged.payment_base,
            committed,
            unique=unique,
            keys=[(staged.payment_keys, _idempotency_key)],
        )


@checked_constructor
class _PaymentMethods(PaymentMethodRepository):
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    @checked_arguments
    def get(self, partner_id: PartnerId, customer_id: CustomerId) -> CustomerPaymentMethods:
        staged = self._uow._staging()
        partner_id = _fields.entity_id("partner_id", partner_id, PartnerId)
        customer_id = _fields.entity_id("customer_id", customer_id, CustomerId)
        found = self._uow._seen(staged.methods, self._uow._store._methods, customer_id, partner_id)
        if found is None:
            return CustomerPaymentMethods(partner_id=partner_id, customer_id=customer_id)
        return found

    @checked_arguments
    def save(self, methods: CustomerPaymentMethods) -> CustomerPaymentMethods:
        staged = self._uow._staging()
        if not isinstance(methods, CustomerPaymentMethods):
            raise _wrong_type("methods", CustomerPaymentMethods, methods)
        committed = self._uow._store._one(self._uow._store._methods, methods.customer_id)
        return self._uow._stage(
            methods,
            "payment methods",
            staged.methods,
            staged.method_base,
            committed,
            ident=methods.customer_id,
        )


@checked_constructor
class _ScheduledPayments(ScheduledPaymentRepository):
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    @checked_arguments
    def get(self, partner_id: PartnerId, scheduled_id: ScheduledPaymentId) -> ScheduledPayment:
        staged = self._uow._staging()
        partner_id = _fields.entity_id("partner_id", partner_id, PartnerId)
        scheduled_id = _fields.entity_id("scheduled_id", scheduled_id, ScheduledPaymentId)
        found = self._uow._seen(
            staged.scheduled, self._uow._store._scheduled, scheduled_id, partner_id
        )
        if found is None:
            raise NotFound("scheduled payment", scheduled_id)
        return found

    def _of(
        self, partner_id: PartnerId, index: Mapping[Any, set[ScheduledPaymentId]], key: object
    ) -> list[ScheduledPayment]:
        """The scheduled payments of ``partner_id`` this unit of work sees,
        out of the committed ones ``index`` holds under ``key`` (those not
        staged again) and those it staged."""
        staged = self._uow._staged.scheduled
        store = self._uow._store
        rows = [s for s in store._members(index, store._scheduled, key) if s.id not in staged]
        rows += staged.values()
        return [s for s in rows if s.partner_id == partner_id]

    @checked_arguments
    def due(self, partner_id: PartnerId, as_of: dt.date) -> list[ScheduledPayment]:
        self._uow._staging()
        partner_id = _fields.entity_id("partner_id", partner_id, PartnerId)
        day = _fields.plain_date("as_of", as_of)
        rows = self._of(partner_id, self._uow._store._scheduled_to_run, partner_id)
        return sorted((s for s in rows if s.is_due(day)), key=_by_day)

    @checked_arguments
    def for_invoice(self, partner_id: PartnerId, invoice_id: InvoiceId) -> list[ScheduledPayment]:
        self._uow._staging()
        partner_id = _fields.entity_id("partner_id", partner_id, PartnerId)
        invoice_id = _fields.entity_id("invoice_id", invoice_id, InvoiceId)
        rows = self._of(partner_id, self._uow._store._scheduled_by_invoice, invoice_id)
        return sorted((s for s in rows if s.invoice_id == invoice_id), key=_by_day)

    @checked_arguments
    def save(self, scheduled: ScheduledPayment) -> ScheduledPayment:
        staged = self._uow._staging()
        if not isinstance(scheduled, ScheduledPayment):
            raise _wrong_type("scheduled", ScheduledPayment, scheduled)
        committed = self._uow._store._one(self._uow._store._scheduled, scheduled.id)
        return self._uow._stage(
            scheduled, "scheduled payment", staged.scheduled, staged.scheduled_base, committed
        )


@checked_constructor
class _Outbox(Outbox):
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    @checked_arguments
    def pending(self, limit: int = DEFAULT_PAGE_SIZE) -> list[OutboxMessage]:
        staged = self._uow._staging()
        checked = PageRequest.parse(limit).limit
        return [
            OutboxMessage(position, from_dict(Event, data))
            for position, data in self._uow._store._pending(checked, staged)
        ]

    @checked_arguments
    def mark_published(self, positions: Iterable[int]) -> None:
        staged = self._uow._staging()
        staged.published.update(self._positions(positions))
