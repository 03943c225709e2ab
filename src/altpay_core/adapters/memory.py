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
* ``save`` checks the version (and the external reference, C10) at once,
  so a conflict shows early; :meth:`MemoryUnitOfWork.commit` checks all of
  it again under the store's lock, before writing anything, and then writes
  everything. Should a write still fail half way, the writes made so far
  are undone before the lock is released: a commit is all or nothing.
* Events are kept as :func:`~altpay_core.serialization.to_dict` data and read
  back with ``from_dict(Event, ...)``, as a database adapter would.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import attrs

from altpay_core import _fields
from altpay_core.customer import AccessRequest, AccessRequestStatus, Customer, CustomerStatus
from altpay_core.errors import ConcurrencyConflict, NotFound, ValidationError
from altpay_core.events import Event
from altpay_core.partner import Partner
from altpay_core.ports import (
    DEFAULT_PAGE_SIZE,
    AccessRequestRepository,
    CustomerRepository,
    Outbox,
    OutboxMessage,
    Page,
    PageRequest,
    PartnerRepository,
    Store,
    UnitOfWork,
    customer_cursor,
    customer_sort_key,
)
from altpay_core.serialization import from_dict, to_dict
from altpay_core.values import (
    AccessRequestId,
    CustomerId,
    EmailAddress,
    ExternalRef,
    PartnerId,
    TagId,
)

__all__ = ["MemoryStore", "MemoryUnitOfWork"]

_A = TypeVar("_A", Partner, Customer, AccessRequest)
_RefKey = tuple[PartnerId, ExternalRef]


def _order(customer: Customer) -> tuple[str, str]:
    return customer_sort_key(customer), customer.id.value


def _ref_key(customer: Customer) -> _RefKey | None:
    """The key C10 keeps unique: only customers that are not archived hold one."""
    if customer.external_ref is None or not customer.is_active:
        return None
    return (customer.partner_id, customer.external_ref)


def _email_key(email: object) -> str:
    if isinstance(email, EmailAddress):
        return email.key
    try:
        return EmailAddress(email).key  # type: ignore[arg-type]
    except ValidationError as error:
        raise error.under("email") from None


def _wrong_type(path: str, expected: type[Any], value: object) -> ValidationError:
    return ValidationError.single(
        path,
        "wrong_type",
        f"'{path}' must be a {expected.__name__} (got {type(value).__name__})",
    )


def _conflict(kind: str, key: object, found: int, wanted: int) -> ConcurrencyConflict:
    what = f"no {kind} {key} is stored" if found == 0 else f"{kind} {key} is at version {found}"
    return ConcurrencyConflict(
        f"{what}, not version {wanted}: it changed since it was read; nothing was written",
        kind=kind,
        key=key,
    )


class _Undo:
    """The inverse of every write made so far, to put things back on failure."""

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
            old = table.pop(key)
            self._steps.append(lambda: table.__setitem__(key, old))

    def add_to(self, members: set[Any], member: object) -> None:
        if member not in members:
            members.add(member)
            self._steps.append(lambda: members.discard(member))

    def call(self, step: Callable[[], None]) -> None:
        """Run ``step`` to put something else back."""
        self._steps.append(step)

    def discard_from(self, members: set[Any], member: object) -> None:
        if member in members:
            members.discard(member)
            self._steps.append(lambda: members.add(member))

    def run(self) -> None:
        for step in reversed(self._steps):
            step()
        self._steps.clear()


@attrs.define
class _Staged:
    """What one unit of work has saved and marked, not yet committed.

    ``*_base`` keeps, per id, the version the committed store must still be
    at when the unit of work commits (0: nothing stored yet).
    """

    partners: dict[PartnerId, Partner] = attrs.Factory(dict)
    partner_base: dict[PartnerId, int] = attrs.Factory(dict)
    customers: dict[CustomerId, Customer] = attrs.Factory(dict)
    customer_base: dict[CustomerId, int] = attrs.Factory(dict)
    requests: dict[AccessRequestId, AccessRequest] = attrs.Factory(dict)
    request_base: dict[AccessRequestId, int] = attrs.Factory(dict)
    events: list[dict[str, Any]] = attrs.Factory(list)
    published: set[int] = attrs.Factory(set)


class MemoryStore(Store):
    """Partners, customers, access requests and the outbox, in memory.

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
        self._by_email: dict[str, set[CustomerId]] = {}
        self._by_ref: dict[_RefKey, CustomerId] = {}
        self._requests: dict[AccessRequestId, AccessRequest] = {}
        self._requests_by_partner: dict[PartnerId, set[AccessRequestId]] = {}
        self._outbox: dict[int, dict[str, Any]] = {}
        self._last_position = 0

    def unit_of_work(self) -> MemoryUnitOfWork:
        """A new unit of work over this store (enter it with ``with``)."""
        self._check_open()
        return MemoryUnitOfWork(self)

    def close(self) -> None:
        """Drop the data; the store gives no more units of work."""
        with self._lock:
            self._closed = True
            for table in (
                self._partners,
                self._customers,
                self._by_partner,
                self._by_email,
                self._by_ref,
                self._requests,
                self._requests_by_partner,
                self._outbox,
            ):
                table.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this MemoryStore is closed")

    # -- reading (each read takes the lock: a commit is seen whole or not at all)

    def _partner(self, partner_id: PartnerId) -> Partner | None:
        with self._lock:
            return self._partners.get(partner_id)

    def _customer(self, customer_id: CustomerId) -> Customer | None:
        with self._lock:
            return self._customers.get(customer_id)

    def _customers_of(self, partner_id: PartnerId) -> list[Customer]:
        with self._lock:
            return [self._customers[i] for i in self._by_partner.get(partner_id, ())]

    def _customers_with(self, email_key: str) -> list[Customer]:
        with self._lock:
            return [self._customers[i] for i in self._by_email.get(email_key, ())]

    def _ref_owner(self, key: _RefKey) -> Customer | None:
        with self._lock:
            owner = self._by_ref.get(key)
            return None if owner is None else self._customers[owner]

    def _request(self, request_id: AccessRequestId) -> AccessRequest | None:
        with self._lock:
            return self._requests.get(request_id)

    def _requests_of(self, partner_id: PartnerId) -> list[AccessRequest]:
        with self._lock:
            return [self._requests[i] for i in self._requests_by_partner.get(partner_id, ())]

    def _pending(self, limit: int, skip: set[int]) -> list[tuple[int, dict[str, Any]]]:
        found: list[tuple[int, dict[str, Any]]] = []
        with self._lock:
            for position, data in self._outbox.items():
                if len(found) == limit:
                    break
                if position not in skip:
                    found.append((position, data))
        return found

    # -- committing ------------------------------------------------------------

    def _commit(self, staged: _Staged) -> None:
        with self._lock:
            self._check_open()
            self._verify(staged)
            undo = _Undo()
            try:
                for partner in staged.partners.values():
                    self._write_partner(undo, partner)
                for customer in staged.customers.values():
                    self._write_customer(undo, customer)
                for request in staged.requests.values():
                    self._write_request(undo, request)
                self._write_outbox(undo, staged.events)
                self._write_published(undo, staged.published)
            except BaseException:
                undo.run()
                raise

    def _verify(self, staged: _Staged) -> None:
        """Every check a commit needs, before anything is written."""
        for partner_id, base in staged.partner_base.items():
            found = self._partners.get(partner_id)
            _check_version("partner", partner_id, found, base)
        for customer_id, base in staged.customer_base.items():
            found_customer = self._customers.get(customer_id)
            _check_version("customer", customer_id, found_customer, base)
            _check_owner(found_customer, staged.customers[customer_id])
        for request_id, base in staged.request_base.items():
            found_request = self._requests.get(request_id)
            _check_version("access request", request_id, found_request, base)
            _check_owner(found_request, staged.requests[request_id])
        # C10: after this commit, each live reference has one owner.
        claimed: dict[_RefKey, CustomerId] = {}
        for customer in staged.customers.values():
            key = _ref_key(customer)
            if key is None:
                continue
            owner = claimed.setdefault(key, customer.id)
            committed = self._by_ref.get(key)
            if owner != customer.id or (
                committed is not None
                and committed != customer.id
                and committed not in staged.customers
            ):
                raise _ref_taken(key)

    def _write_partner(self, undo: _Undo, partner: Partner) -> None:
        undo.put(self._partners, partner.id, partner)

    def _write_customer(self, undo: _Undo, customer: Customer) -> None:
        old = self._customers.get(customer.id)
        if old is not None:
            for user in old.users:
                undo.discard_from(self._by_email[user.email.key], old.id)
            old_key = _ref_key(old)
            if old_key is not None:
                undo.pop(self._by_ref, old_key)
        undo.put(self._customers, customer.id, customer)
        if customer.partner_id not in self._by_partner:
            undo.put(self._by_partner, customer.partner_id, set())
        undo.add_to(self._by_partner[customer.partner_id], customer.id)
        for user in customer.users:
            if user.email.key not in self._by_email:
                undo.put(self._by_email, user.email.key, set())
            undo.add_to(self._by_email[user.email.key], customer.id)
        key = _ref_key(customer)
        if key is not None:
            undo.put(self._by_ref, key, customer.id)

    def _write_request(self, undo: _Undo, request: AccessRequest) -> None:
        undo.put(self._requests, request.id, request)
        if request.partner_id not in self._requests_by_partner:
            undo.put(self._requests_by_partner, request.partner_id, set())
        undo.add_to(self._requests_by_partner[request.partner_id], request.id)

    def _write_outbox(self, undo: _Undo, events: Sequence[dict[str, Any]]) -> None:
        last = previous = self._last_position
        undo.call(lambda: setattr(self, "_last_position", previous))
        for data in events:
            last += 1
            undo.put(self._outbox, last, data)
        self._last_position = last

    def _write_published(self, undo: _Undo, positions: Iterable[int]) -> None:
        for position in positions:
            undo.pop(self._outbox, position)


def _check_version(
    kind: str, key: object, found: Partner | Customer | AccessRequest | None, base: int
) -> None:
    version = 0 if found is None else found.version
    if version != base:
        raise _conflict(kind, key, version, base)


def _check_owner(found: Customer | AccessRequest | None, new: Customer | AccessRequest) -> None:
    """An id is one partner's: saving it under another partner is refused."""
    if found is not None and found.partner_id != new.partner_id:
        kind = "customer" if isinstance(new, Customer) else "access request"
        raise ConcurrencyConflict(
            f"{kind} {new.id} belongs to another partner; nothing was written",
            kind=kind,
            key=new.id,
        )


def _ref_taken(key: _RefKey) -> ConcurrencyConflict:
    return ConcurrencyConflict(
        f"external reference {key[1]} is already another customer's of this partner "
        "that is not archived (rule C10); nothing was written",
        kind="customer",
        key=key[1],
    )


class MemoryUnitOfWork(UnitOfWork):
    """A unit of work over a :class:`MemoryStore`; get one from the store."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._staged = _Staged()
        self._active = False
        self.partners: _Partners = _Partners(self)
        self.customers: _Customers = _Customers(self)
        self.access_requests: _AccessRequests = _AccessRequests(self)
        self.outbox: _Outbox = _Outbox(self)

    def _begin(self) -> None:
        self._store._check_open()
        self._staged = _Staged()
        self._active = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        super().__exit__(exc_type, exc, tb)
        self._active = False

    def commit(self) -> None:
        """Write everything staged, all or nothing; the unit of work stays usable."""
        staged = self._in_block()
        self._store._commit(staged)
        self._staged = _Staged()

    def rollback(self) -> None:
        """Forget everything staged."""
        self._staged = _Staged()

    def _in_block(self) -> _Staged:
        if not self._active:
            raise RuntimeError("use the unit of work inside its `with` block")
        return self._staged

    def _stage(
        self,
        aggregate: _A,
        kind: str,
        staged: dict[Any, _A],
        base: dict[Any, int],
        committed: _A | None,
    ) -> _A:
        """The checks and bookkeeping every save shares; returns the stored value."""
        current = staged.get(aggregate.id, committed)
        version = 0 if current is None else current.version
        if aggregate.version != version:
            raise _conflict(kind, aggregate.id, version, aggregate.version)
        if not isinstance(aggregate, Partner):
            _check_owner(current, aggregate)
        events = [to_dict(event) for event in aggregate.events]
        stored = attrs.evolve(aggregate, version=aggregate.version + 1)
        base.setdefault(aggregate.id, aggregate.version)
        staged[aggregate.id] = stored
        self._staged.events.extend(events)
        return stored


class _Partners(PartnerRepository):
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    def get(self, partner_id: PartnerId) -> Partner:
        staged = self._uow._in_block()
        partner_id = _parse(PartnerId, "partner_id", partner_id)
        found = staged.partners.get(partner_id)
        if found is None:
            found = self._uow._store._partner(partner_id)
        if found is None:
            raise NotFound("partner", partner_id)
        return found

    def save(self, partner: Partner) -> Partner:
        staged = self._uow._in_block()
        if not isinstance(partner, Partner):
            raise _wrong_type("partner", Partner, partner)
        committed = self._uow._store._partner(partner.id)
        return self._uow._stage(partner, "partner", staged.partners, staged.partner_base, committed)


class _Customers(CustomerRepository):
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    def _visible(self, committed: Iterable[Customer]) -> list[Customer]:
        """Committed customers with this unit of work's saves laid over them."""
        staged = self._uow._staged.customers
        return [c for c in committed if c.id not in staged]

    def get(self, partner_id: PartnerId, customer_id: CustomerId) -> Customer:
        staged = self._uow._in_block()
        partner_id = _parse(PartnerId, "partner_id", partner_id)
        customer_id = _parse(CustomerId, "customer_id", customer_id)
        found = staged.customers.get(customer_id)
        if found is None:
            found = self._uow._store._customer(customer_id)
        if found is None or found.partner_id != partner_id:
            raise NotFound("customer", customer_id)
        return found

    def get_by_external_ref(self, partner_id: PartnerId, ref: ExternalRef) -> Customer:
        staged = self._uow._in_block()
        partner_id = _parse(PartnerId, "partner_id", partner_id)
        if not isinstance(ref, ExternalRef):
            raise _wrong_type("ref", ExternalRef, ref)
        key = (partner_id, ref)
        for customer in staged.customers.values():
            if _ref_key(customer) == key:
                return customer
        owner = self._uow._store._ref_owner(key)
        if owner is None or owner.id in staged.customers:
            raise NotFound("customer", ref)
        return owner

    def with_user(self, partner_id: PartnerId, email: EmailAddress | str) -> list[Customer]:
        staged = self._uow._in_block()
        partner_id = _parse(PartnerId, "partner_id", partner_id)
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

    def accounts_of(self, email: EmailAddress | str) -> list[Customer]:
        staged = self._uow._in_block()
        key = _email_key(email)
        found = self._visible(self._uow._store._customers_with(key))
        found += [c for c in staged.customers.values() if any(u.email.key == key for u in c.users)]
        return sorted((c for c in found if c.is_active), key=_order)

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
        staged = self._uow._in_block()
        partner_id = _parse(PartnerId, "partner_id", partner_id)
        request = PageRequest.parse(limit, after, before)
        wanted_status = None if status is None else _fields.choice("status", status, CustomerStatus)
        wanted_tag = None if tag is None else _parse(TagId, "tag", tag)
        if name_prefix is not None and not isinstance(name_prefix, str):
            raise _wrong_type("name_prefix", str, name_prefix)
        prefix = None if name_prefix is None else name_prefix.casefold()

        def matches(customer: Customer) -> bool:
            return (
                customer.partner_id == partner_id
                and (wanted_status is None or customer.status is wanted_status)
                and (wanted_tag is None or wanted_tag in customer.tags)
                and (prefix is None or customer_sort_key(customer).startswith(prefix))
            )

        rows = self._visible(self._uow._store._customers_of(partner_id))
        rows += staged.customers.values()
        rows = sorted(filter(matches, rows), key=_order)
        return _page(rows, request)

    def save(self, customer: Customer) -> Customer:
        staged = self._uow._in_block()
        if not isinstance(customer, Customer):
            raise _wrong_type("customer", Customer, customer)
        store = self._uow._store
        committed = store._customer(customer.id)
        key = _ref_key(customer)
        if key is not None:
            # C10, against what this unit of work sees; commit checks again.
            holders = [c for c in staged.customers.values() if _ref_key(c) == key]
            owner = store._ref_owner(key)
            if owner is not None and owner.id not in staged.customers:
                holders.append(owner)
            if any(c.id != customer.id for c in holders):
                raise _ref_taken(key)
        return self._uow._stage(
            customer, "customer", staged.customers, staged.customer_base, committed
        )


def _page(rows: list[Customer], request: PageRequest) -> Page[Customer]:
    """The keyset page ``request`` asks for, out of every matching row in order."""
    keys = [_order(c) for c in rows]
    if request.after is not None:
        start = bisect.bisect_right(keys, (request.after.key, request.after.id))
        end = min(start + request.limit, len(rows))
    elif request.before is not None:
        end = bisect.bisect_left(keys, (request.before.key, request.before.id))
        start = max(0, end - request.limit)
    else:
        start, end = 0, min(request.limit, len(rows))
    items = tuple(rows[start:end])
    return Page(
        items=items,
        start_cursor=customer_cursor(items[0]) if items else None,
        end_cursor=customer_cursor(items[-1]) if items else None,
        has_next_page=end < len(rows),
        has_previous_page=start > 0,
    )


class _AccessRequests(AccessRequestRepository):
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    def get(self, partner_id: PartnerId, request_id: AccessRequestId) -> AccessRequest:
        staged = self._uow._in_block()
        partner_id = _parse(PartnerId, "partner_id", partner_id)
        request_id = _parse(AccessRequestId, "request_id", request_id)
        found = staged.requests.get(request_id)
        if found is None:
            found = self._uow._store._request(request_id)
        if found is None or found.partner_id != partner_id:
            raise NotFound("access request", request_id)
        return found

    def list(
        self, partner_id: PartnerId, *, status: AccessRequestStatus | None = None
    ) -> list[AccessRequest]:
        staged = self._uow._in_block()
        partner_id = _parse(PartnerId, "partner_id", partner_id)
        wanted = None if status is None else _fields.choice("status", status, AccessRequestStatus)
        rows = [r for r in self._uow._store._requests_of(partner_id) if r.id not in staged.requests]
        rows += [r for r in staged.requests.values() if r.partner_id == partner_id]
        return sorted(
            (r for r in rows if wanted is None or r.status is wanted),
            key=lambda r: (r.requested_at, r.id.value),
        )

    def save(self, request: AccessRequest) -> AccessRequest:
        staged = self._uow._in_block()
        if not isinstance(request, AccessRequest):
            raise _wrong_type("request", AccessRequest, request)
        committed = self._uow._store._request(request.id)
        return self._uow._stage(
            request, "access request", staged.requests, staged.request_base, committed
        )


class _Outbox(Outbox):
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    def pending(self, limit: int = DEFAULT_PAGE_SIZE) -> list[OutboxMessage]:
        staged = self._uow._in_block()
        checked = PageRequest.parse(limit).limit
        return [
            OutboxMessage(position, from_dict(Event, data))
            for position, data in self._uow._store._pending(checked, staged.published)
        ]

    def mark_published(self, positions: Sequence[int]) -> None:
        staged = self._uow._in_block()
        checked: list[int] = []
        for index, position in enumerate(positions):
            if isinstance(position, bool) or not isinstance(position, int):
                raise ValidationError.single(
                    f"positions[{index}]",
                    "wrong_type",
                    f"'positions[{index}]' must be a whole number (got {position!r})",
                )
            checked.append(position)
        staged.published.update(checked)


_I = TypeVar("_I", PartnerId, CustomerId, AccessRequestId, TagId)


def _parse(kind: type[_I], path: str, value: object) -> _I:
    """An id of ``kind``, given as itself or its text (``ValidationError`` otherwise)."""
    if type(value) is kind:
        return value
    try:
        return kind(value)  # type: ignore[arg-type]
    except ValidationError as error:
        raise error.under(path) from None
