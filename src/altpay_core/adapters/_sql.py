"""What the SQL adapters share: the storage layout, the queries, and a unit of
work that buffers what it saves and writes it in batches.

Not public: :mod:`altpay_core.adapters.sqlite` and
:mod:`altpay_core.adapters.postgres` build on it, each with its own
connections, transactions, error codes and schema migrations.

The layout. Each aggregate is one row holding its whole data as compact
JSON (``to_dict``), its version, and the columns that the queries filter
and sort on, each behind an index (an invoice's and a payment's currency
too, with no index, for the save's check that it is unchanged, I2); a
customer's users and tags, and a payment's allocations to invoices, are
child rows, so that "which customers is this email a user of", "which
customers carry this tag" and "which payments pay this invoice" are index
look-ups. The database enforces what must hold across concurrent writers:
primary keys and unique indexes (C10: an external reference is unique per
partner and integration among customers that are not archived; invoice
numbers and invoices' external references per partner; payments'
idempotency keys per partner; one pending access request per email and
partner). Events go to the ``outbox`` table in the
transaction that stores their aggregate.

The rules between aggregates (a customer's tags are in its partner's
catalog; a tag taken out of a catalog is carried by no customer; a new
customer is added by hand only to a partner none of whose integrations
syncs customers, and a new synced one names a connected integration of its
partner that syncs customers; a new invoice names a customer of its partner that is not
archived, and so is a new payment's stored customer, which has the
payment's payer among its users and, in its stored payment methods book,
the payment's saved method, active; a resolved access request names a member of its partner's team
who may resolve it; a first payment methods book names a customer of its
partner) are checked
in the write transaction, against the data as it stands at commit: where
the database locks rows, the checks lock what they read (``FOR SHARE``),
so that no other writer changes it before the commit; where its write lock
serialises writers (SQLite), that is enough.

A unit of work checks each save at once (the version it read, the unique
keys, the fields that never change; a new aggregate's id only as its row is
written, or at once if the unit of work saved it already) and keeps the rows
in memory; it writes them with one ``executemany`` per statement at commit,
before a query that must see them, and every :data:`BATCH_SIZE` saves, so
that a bulk save costs little more than the rows themselves and holds little
memory. Look-ups of one aggregate (by id, number, external reference or
idempotency key) answer from the saves still in memory first, and so never
need to write them early.
"""

from __future__ import annotations

import abc
import builtins
import contextlib
import datetime as dt
import json
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, NoReturn, TypeVar

import attrs

from altpay_core import _fields
from altpay_core._arguments import checked_arguments, checked_constructor
from altpay_core.customer import AccessRequest, AccessRequestStatus, Customer, CustomerStatus
from altpay_core.errors import (
    AltpayError,
    ConcurrencyConflict,
    InvariantViolation,
    NotFound,
    ValidationError,
    shown,
)
from altpay_core.events import Event
from altpay_core.invoice import Invoice, InvoiceStatus
from altpay_core.partner import Partner
from altpay_core.payment import (
    CustomerPaymentMethods,
    Payment,
    ScheduledPayment,
    ScheduledPaymentId,
)
from altpay_core.ports import (
    _LAST_POSITION,
    DEFAULT_PAGE_SIZE,
    FIXED_FIELDS,
    AccessRequestRepository,
    Cursor,
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
    _check_stored_history,
    access_request_pending,
    check_access_request_history,
    check_email,
    check_invoice_history,
    check_partner_history,
    check_payment_history,
    check_saved_methods,
    check_scheduled_payment_history,
    customer_added_by_hand,
    customer_ref_taken,
    customer_sort_key,
    fixed_field_changed,
    idempotency_key_taken,
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
from altpay_core.serialization import from_dict, parse_json, stored_json
from altpay_core.values import (
    AccessRequestId,
    CustomerId,
    EmailAddress,
    ExternalRef,
    InvoiceId,
    PartnerId,
    PaymentId,
    TagId,
    TeamMemberId,
)

__all__ = [
    "Migration",
    "SchemaVersionError",
    "SqlStore",
    "SqlUnitOfWork",
]

Row = tuple[Any, ...]
C = TypeVar("C")
A = TypeVar(
    "A",
    Partner,
    Customer,
    AccessRequest,
    Invoice,
    Payment,
    CustomerPaymentMethods,
    ScheduledPayment,
)

# Idle connections a store keeps for the next units of work.
MAX_IDLE_CONNECTIONS = 8
# Saves kept in memory before they are written (and rows per executemany):
# enough for a batch to pay off, few enough that a bulk import holds little
# memory and leaves the garbage collector little to scan.
BATCH_SIZE = 2000
# Rows looked up per query when a commit checks what it wrote against the
# rows it names: the customers of new invoices and of new payment methods
# books, the partners whose catalogs or teams it reads.
CHECK_SIZE = 100


@checked_constructor
class SchemaVersionError(AltpayError):
    """The database was written by a newer altpay-core than this one.

    Its schema is at ``found``; this version knows the migrations up to
    ``known`` and will not guess at the rest.
    """

    default_message = "the database schema is newer than this altpay-core knows"

    def __init__(self, found: int, known: int) -> None:
        self.found = found
        self.known = known
        super().__init__(
            f"the database schema is at version {found}, newer than this "
            f"altpay-core knows (up to {known}); upgrade altpay-core to open it"
        )


@attrs.frozen
class Migration:
    """One step of a schema's history: the statements that take it from
    ``version - 1`` to ``version``. Steps are applied in order, each store
    open, to whatever a database lacks; a step is never edited once released
    (a change is a new step)."""

    version: int
    description: str
    statements: tuple[str, ...]


def check_migrations(migrations: Sequence[Migration]) -> int:
    """The latest version; refuses gaps, so a forgotten step cannot go unseen."""
    for number, migration in enumerate(migrations, start=1):
        if migration.version != number:
            raise ValueError(f"migration {migration.version} is out of order (expected {number})")
    return len(migrations)


_CREATE = re.compile(
    r"\s*CREATE\s+(?:UNIQUE\s+)?(TABLE|INDEX|TRIGGER|FUNCTION)\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r"[\"`\[]?(\w+)",
    re.IGNORECASE,
)


def created_objects(migrations: Sequence[Migration]) -> frozenset[tuple[str, str]]:
    """The tables, indexes, triggers and functions that ``migrations``
    create (their ``CREATE TABLE``, ``CREATE [UNIQUE] INDEX``, ``CREATE
    TRIGGER`` and ``CREATE FUNCTION`` statements), as kind (``"table"``,
    ``"index"``, ``"trigger"``, ``"function"``) and name."""
    return frozenset(
        (match.group(1).lower(), match.group(2))
        for migration in migrations
        for statement in migration.statements
        if (match := _CREATE.match(statement))
    )


def created_tables(migrations: Sequence[Migration]) -> frozenset[str]:
    """The tables that ``migrations`` create (their ``CREATE TABLE``
    statements): what a database at the last one's version holds, at least.
    A step that drops or renames a table must keep this true."""
    return frozenset(name for kind, name in created_objects(migrations) if kind == "table")


def clash_refusal(
    found: int,
    schema: Sequence[tuple[str, str]],
    migrations: Sequence[Migration],
    clashes: Mapping[str, frozenset[str]],
    same_name: Callable[[str], str] = str,
) -> str | None:
    """Why ``migrations`` cannot bring a database at version ``found`` up to
    date, or ``None`` if they can: it holds objects of its own (``schema``
    lists them as kind and name) under the names of tables, indexes,
    triggers or functions that the migrations after ``found`` create, which
    would fail half way. ``clashes`` gives, for each of those kinds, the
    kinds of object whose names it shares (the database's namespaces: in
    SQLite, triggers have one of their own, and a table's or an index's
    name is taken by a table, view or index). ``same_name`` gives the form
    in which the database compares names (SQLite's are equal in any case
    of their ASCII letters: :func:`ascii_lower`; PostgreSQL's, as stored,
    exactly)."""
    later = {(kind, same_name(name)) for kind, name in created_objects(migrations[found:])}
    clashing = sorted(
        (name, created)
        for kind, name in schema
        for created, taken in clashes.items()
        if kind in taken and (created, same_name(name)) in later
    )
    if not clashing:
        return None
    names = listed([shown(name) for name, _ in clashing])
    made = sorted({"indexes" if created == "index" else f"{created}s" for _, created in clashing})
    kinds = " and ".join([", ".join(made[:-1]), made[-1]] if len(made) > 1 else made)
    return (
        f"it holds {names} of its own, and altpay-core's migrations after its "
        f"version {found} create {kinds} of those names: rename them"
    )


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(name: str) -> str:
    """``name`` with its ASCII letters in lower case, and every other
    character as it is: the form in which SQLite compares the names of
    tables, indexes and triggers (``INVOICES`` is ``invoices``, ``Ä`` is not
    ``ä``)."""
    return name.translate(_ASCII_LOWER)


def listed(names: Sequence[str]) -> str:
    """The first five of ``names``, each once (an overloaded function is one
    name), and how many more, for a message."""
    names = list(dict.fromkeys(names))
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return ", ".join(names[:5]) + more


def version_refusal(
    found: int, version: str, schema: Sequence[tuple[str, str]], migrations: Sequence[Migration]
) -> str | None:
    """Why a database whose schema version is ``found`` (``version`` says
    where it is kept: "its user_version") is not altpay-core's, or ``None``
    if it is: it holds every table its migrations create up to ``found``
    (``schema`` lists what it holds, as kind and name; tables of its own next
    to them are left alone), ``found`` is never negative, and at 0 it holds
    nothing (altpay-core never commits version 0 next to tables). One newer than
    ``migrations`` that holds at least one of the tables they create (a
    newer altpay-core may have renamed or dropped the others), or nothing at
    all, is :class:`SchemaVersionError`; one that holds none of them is not
    altpay-core's."""
    latest = check_migrations(migrations)
    tables = {name for kind, name in schema if kind == "table"}
    if found < 0:
        return f"{version} is {found}, and altpay-core's schema versions are never negative"
    if found > latest:
        # With nothing at all in its schema, nothing says whose it is, and
        # upgrading altpay-core is the likelier answer.
        if not schema or tables & created_tables(migrations):
            raise SchemaVersionError(found, latest)
        return f"{version} is {found}, but it holds none of altpay-core's tables"
    if found == 0 and schema:
        # altpay-core creates its first tables in the transaction that sets
        # its version: a version 0 next to anything else is never its own.
        names = listed([shown(name) for name in sorted(name for _, name in schema)])
        return f"{version} is 0, and it holds {names} of its own"
    missing = sorted(created_tables(migrations[:found]) - tables)
    if not missing:
        return None
    return f"{version} is {found}, but it lacks altpay-core's tables {listed(missing)}"


# -- the dialects ------------------------------------------------------------------


@attrs.frozen
class Dialect:
    """What the shared statements spell differently per database."""

    param: str
    """The parameter placeholder (``?`` or ``%s``)."""
    unpublished: str
    """The condition of an outbox row not yet published (matching the
    partial index's condition word for word, as SQLite's planner wants)."""
    published: str
    """The value that marks an outbox row published."""
    member: str
    """A member of a row's ``data`` that holds an array or an object, as JSON
    text, ``{0}`` standing for its name (PostgreSQL's ``data->'{0}'``;
    SQLite's ``json_extract``, ``NULL`` for data that is no JSON or a member
    of another type). Whatever else comes is not as the library writes it,
    and the quick check leaves it to the full read."""
    claim: str = ""
    """What ``pending`` adds to lock the rows it lists until the transaction
    ends, skipping rows another transaction holds (PostgreSQL's ``FOR UPDATE
    SKIP LOCKED``); nothing where the write lock already keeps publishers
    apart (SQLite)."""
    share: str = ""
    """What the checks between aggregates add to keep the rows they read
    (a partner's catalog, a new invoice's customer) as they are until the
    transaction ends, waiting for a writer that holds them and reading what
    it committed (PostgreSQL's ``FOR SHARE``); nothing where the write lock
    already keeps other writers out (SQLite)."""


def timestamp(value: dt.datetime) -> str:
    """A UTC timestamp as fixed-width ISO 8601 text, which sorts as it reads
    (``2026-01-31T09:30:00.000000+00:00``)."""
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    return value.isoformat(timespec="microseconds")


# -- the tables --------------------------------------------------------------------


@attrs.frozen
class ChildTable:
    """Rows that index one aggregate's parts (a customer's users, its tags,
    a payment's allocations); rewritten whenever the aggregate is saved."""

    name: str
    columns: tuple[str, ...]
    """Every column; the first holds the aggregate's id."""
    rows: Callable[[Any], list[Row]]


@attrs.frozen
class UniqueKey:
    """Columns that a unique index keeps unique among a table's rows (or
    among those matching ``where``, for a partial index).

    A unit of work checks the key at save, for a clear error at the right
    call; the index enforces it against concurrent writers too.
    """

    columns: tuple[str, ...]
    """The key's columns, the partner's first."""
    of: Callable[[Any], Row | None]
    """The key an aggregate holds (its values for ``columns``), or ``None``
    when it holds none (no external reference; archived, for C10)."""
    taken: Callable[[Any], ConcurrencyConflict]
    """The error for an aggregate whose key another one holds."""
    where: str = ""
    """What else a row must match to hold the key (SQL), as the partial
    index's condition says; ``of`` says the same in Python."""


@attrs.frozen
class AggregateTable:
    """How one kind of aggregate is stored: one row per aggregate with its
    id, version, indexed columns and JSON data, plus child rows."""

    kind: str
    """How messages name the aggregate (``customer``)."""
    name: str
    cls: type[Any]
    scope: str
    """The column naming the partner the aggregate belongs to."""
    columns: tuple[str, ...]
    """The indexed columns, between ``version`` and ``data``."""
    values: Callable[[Any], Row]
    children: tuple[ChildTable, ...] = ()
    unique: tuple[UniqueKey, ...] = ()
    key_column: str = "id"
    """The column holding the aggregate's key (its id, or what stands for it)."""
    key: Callable[[Any], str] = lambda aggregate: str(aggregate.id)
    """The aggregate's key, as stored in ``key_column``."""
    fixed: tuple[tuple[str, ...], ...] = ()
    """The columns of each of the kind's :data:`~altpay_core.ports.FIXED_FIELDS`,
    in its order; each is one of :attr:`columns`."""
    kept: Callable[[Any, Any], None] | None = None
    """A check of the stored aggregate (as this unit of work sees it) against
    the one saved, for what no column holds: a saved payment method is never
    edited (:func:`~altpay_core.ports.check_saved_methods`), an invoice's
    payment history never rewritten
    (:func:`~altpay_core.ports.check_invoice_history`), nor a payment, a
    scheduled payment, a resolved access request or a partner changed as no
    command changes them (:func:`~altpay_core.ports.check_payment_history`
    and its kin). Not called for a new aggregate (version 0), which is not
    read."""
    kept_columns: tuple[str, ...] = ()
    """What the save's query of the row's version also reads, after the
    fixed columns, for :attr:`kept_in_row`: columns, and members of the
    JSON data (``data.payments``)."""
    kept_in_row: Callable[[Sequence[object], Any], bool] | None = None
    """:attr:`kept`, from the values of :attr:`kept_columns` alone, so that
    a save does not read and rebuild the whole stored aggregate; ``False``
    when they are not as the library writes them (then :attr:`kept` checks
    the aggregate read in full, and the read refuses a row changed outside
    the library)."""
    unchecked: frozenset[str] = frozenset()
    """The indexed columns a read does not compare with the data: a date or
    time, which the dialects return in different types, and a case-folded
    key, which Python's Unicode version decides (a row written under another
    one is not a row changed outside the library)."""
    checked: tuple[int, ...] = attrs.field(init=False)
    """Where in :attr:`columns` (and in :attr:`values`) the compared ones are."""
    read_columns: tuple[str, ...] = attrs.field(init=False)
    """What a read of an aggregate selects: its key, version, the indexed
    columns it compares with the data, and the data, last."""

    @checked.default
    def _checked(self) -> tuple[int, ...]:
        return tuple(i for i, c in enumerate(self.columns) if c not in self.unchecked)

    @read_columns.default
    def _read_columns(self) -> tuple[str, ...]:
        compared = (self.columns[i] for i in self.checked)
        return (self.key_column, "version", *compared, "data")

    def select(self, alias: str = "") -> str:
        """:attr:`read_columns`, for a SELECT (each after ``alias.``)."""
        return ", ".join(f"{alias}{column}" for column in self.read_columns)

    def check_row(self, aggregate: Any, row: Sequence[Any]) -> None:
        """Refuse ``aggregate``, read from ``row`` (:attr:`read_columns`),
        when its data disagree with the row's columns: the row was changed
        outside the library (a ``ValidationError`` at the field)."""
        values = self.values(aggregate)
        found = (self.key(aggregate), aggregate.version, *(values[i] for i in self.checked))
        stored = tuple(row[: len(found)])
        if found != stored:
            column = _differing_column(self.read_columns, found, stored)
            field = _FIELD_OF_COLUMN.get(column, column)
            raise row_changed(self.kind, str(row[0]), field, f"its {column!r} column")

    def check_fixed(self, key: str, stored: Sequence[object], values: Row) -> None:
        """Refuse a save whose ``values`` change a fixed field: ``stored`` is
        the row's current values of the fixed columns, in order."""
        start = 0
        for field, columns in zip(FIXED_FIELDS[self.kind], self.fixed, strict=True):
            now = tuple(values[self.columns.index(column)] for column in columns)
            if tuple(stored[start : start + len(columns)]) != now:
                raise fixed_field_changed(self.kind, key, field)
            start += len(columns)

    def fixed_of(self, row: Row) -> tuple[object, ...]:
        """The fixed columns' values in a row of :attr:`all_columns`."""
        return tuple(row[2 + self.columns.index(c)] for columns in self.fixed for c in columns)

    @property
    def all_columns(self) -> tuple[str, ...]:
        return (self.key_column, "version", *self.columns, "data")


_FIELD_OF_COLUMN = {
    "company_key": "company",
    "email_key": "email",
    "ext_system": "external_ref",
    "ext_id": "external_ref",
    "sort_key": "due_date",
}


def _differing_column(
    columns: Sequence[str], found: Sequence[object], stored: Sequence[object]
) -> str:
    """The first of ``columns`` whose value ``found`` in the data is not the
    one ``stored`` in the row."""
    return next(c for c, a, b in zip(columns, found, stored, strict=False) if a != b)


def row_changed(kind: str, key: str, field: str, source: str) -> ValidationError:
    """A stored row whose data disagree with ``source`` (its own column, or
    the rows a query found it by): changed outside the library, and
    refused rather than read."""
    return ValidationError.single(
        field,
        "row_mismatch",
        f"the {kind} row {key!r} was changed outside the library: "
        f"its data's '{field}' disagrees with {source}",
    )


def _customer_values(customer: Customer) -> Row:
    ref = customer.external_ref
    return (
        str(customer.partner_id),
        customer_sort_key(customer),
        customer.status.value,
        None if ref is None else ref.system,
        None if ref is None else ref.id,
    )


def _customer_users(customer: Customer) -> list[Row]:
    cid, pid = str(customer.id), str(customer.partner_id)
    return [(cid, user.email.key, pid) for user in customer.users]


def _customer_tags(customer: Customer) -> list[Row]:
    if not customer.tags:
        return []
    cid, pid, key = str(customer.id), str(customer.partner_id), customer_sort_key(customer)
    return [(cid, str(tag), pid, key) for tag in sorted(customer.tags)]


def _customer_ref(customer: Customer) -> Row | None:
    ref = customer.external_ref
    if ref is None or customer.status is CustomerStatus.ARCHIVED:
        return None
    return (str(customer.partner_id), ref.system, ref.id)


def _pending_email(request: AccessRequest) -> Row | None:
    """The key a pending request holds: its partner and email; a resolved
    one holds none."""
    return (str(request.partner_id), request.email.key) if request.is_pending else None


def _invoice_values(invoice: Invoice) -> Row:
    ref = invoice.external_ref
    return (
        str(invoice.partner_id),
        str(invoice.customer_id),
        invoice.number,
        invoice_sort_key(invoice),
        invoice.status.value,
        None if ref is None else ref.system,
        None if ref is None else ref.id,
        invoice.currency.code,
    )


def _invoice_history_kept(values: Sequence[object], invoice: Invoice) -> bool:
    """:func:`~altpay_core.ports.check_invoice_history` against the stored
    row's status column and its data's payments (JSON text); ``False`` if
    they are not as the library writes them."""
    status, payments = values
    if type(status) is not str or not isinstance(payments, (str, bytes)):
        return False
    try:
        data = json.loads(payments)
    except (ValueError, RecursionError):
        return False
    if type(data) is not list:
        return False
    parts: list[tuple[str, str, str, bool]] = []
    for part in data:
        try:
            money = part["amount"]
            payment_id, amount, currency = part["payment_id"], money["amount"], money["currency"]
            released = part["released"]
        except (TypeError, KeyError):
            return False
        if not (
            type(payment_id) is str
            and type(amount) is str
            and type(currency) is str
            and type(released) is bool
        ):
            return False
        parts.append((payment_id, amount, currency, released))
    try:
        _check_stored_history(status, parts, invoice)
    except InvariantViolation:
        # Text that differs may be the same value written another way
        # ("30.0", "usd"): the full read and check decide.
        return False
    return True


def _invoice_ref(invoice: Invoice) -> Row | None:
    ref = invoice.external_ref
    return None if ref is None else (str(invoice.partner_id), ref.system, ref.id)


def _allocations(payment: Payment) -> list[Row]:
    pay, pid = str(payment.id), str(payment.partner_id)
    created = timestamp(payment.created_at)
    return [(pay, str(part.invoice_id), pid, created) for part in payment.allocations]


PARTNERS = AggregateTable(
    kind="partner",
    name="partners",
    cls=Partner,
    scope="id",
    columns=(),
    values=lambda partner: (),
    kept=check_partner_history,
)
CUSTOMERS = AggregateTable(
    kind="customer",
    name="customers",
    cls=Customer,
    scope="partner_id",
    columns=("partner_id", "company_key", "status", "ext_system", "ext_id"),
    values=_customer_values,
    unchecked=frozenset({"company_key"}),
    children=(
        ChildTable("customer_users", ("customer_id", "email_key", "partner_id"), _customer_users),
        ChildTable(
            "customer_tags", ("customer_id", "tag_id", "partner_id", "company_key"), _customer_tags
        ),
    ),
    fixed=(("ext_system", "ext_id"),),
    unique=(
        UniqueKey(
            ("partner_id", "ext_system", "ext_id"),
            _customer_ref,
            lambda customer: customer_ref_taken(customer.external_ref),
            where="status <> 'archived'",
        ),
    ),
)
ACCESS_REQUESTS = AggregateTable(
    kind="access request",
    name="access_requests",
    cls=AccessRequest,
    scope="partner_id",
    columns=("partner_id", "status", "requested_at", "email_key"),
    values=lambda request: (
        str(request.partner_id),
        request.status.value,
        timestamp(request.requested_at),
        request.email.key,
    ),
    # The email's key is case-folded, as a company's is: not compared. It is
    # NULL in the rows written before migration 5 added it.
    unchecked=frozenset({"requested_at", "email_key"}),
    kept=check_access_request_history,
    unique=(
        UniqueKey(
            ("partner_id", "email_key"),
            _pending_email,
            lambda request: access_request_pending(request.email),
            where="status = 'pending'",
        ),
    ),
)
INVOICES = AggregateTable(
    kind="invoice",
    name="invoices",
    cls=Invoice,
    scope="partner_id",
    columns=(
        "partner_id",
        "customer_id",
        "number",
        "sort_key",
        "status",
        "ext_system",
        "ext_id",
        "currency",
    ),
    values=_invoice_values,
    fixed=(("customer_id",), ("ext_system", "ext_id"), ("currency",)),
    kept=check_invoice_history,
    kept_columns=("status", "data.payments"),
    kept_in_row=_invoice_history_kept,
    unique=(
        UniqueKey(
            ("partner_id", "number"),
            lambda invoice: (str(invoice.partner_id), invoice.number),
            lambda invoice: invoice_number_taken(invoice.number),
        ),
        UniqueKey(
            ("partner_id", "ext_system", "ext_id"),
            _invoice_ref,
            lambda invoice: invoice_ref_taken(invoice.external_ref),
        ),
    ),
)
PAYMENTS = AggregateTable(
    kind="payment",
    name="payments",
    cls=Payment,
    scope="partner_id",
    columns=("partner_id", "customer_id", "idempotency_key", "status", "currency"),
    values=lambda payment: (
        str(payment.partner_id),
        str(payment.customer_id),
        payment.idempotency_key,
        payment.status.value,
        payment.currency.code,
    ),
    fixed=(("customer_id",), ("idempotency_key",), ("currency",)),
    kept=check_payment_history,
    children=(
        ChildTable(
            "payment_allocations",
            ("payment_id", "invoice_id", "partner_id", "created_at"),
            _allocations,
        ),
    ),
    unique=(
        UniqueKey(
            ("partner_id", "idempotency_key"),
            lambda payment: (str(payment.partner_id), payment.idempotency_key),
            lambda payment: idempotency_key_taken(payment.idempotency_key),
        ),
    ),
)
PAYMENT_METHODS = AggregateTable(
    kind="payment methods",
    name="payment_methods",
    cls=CustomerPaymentMethods,
    scope="partner_id",
    columns=("partner_id",),
    values=lambda methods: (str(methods.partner_id),),
    key_column="customer_id",
    key=lambda methods: str(methods.customer_id),
    kept=check_saved_methods,
)
SCHEDULED_PAYMENTS = AggregateTable(
    kind="scheduled payment",
    name="scheduled_payments",
    cls=ScheduledPayment,
    scope="partner_id",
    columns=("partner_id", "invoice_id", "status", "pay_on"),
    values=lambda scheduled: (
        str(scheduled.partner_id),
        str(scheduled.invoice_id),
        scheduled.status.value,
        scheduled.pay_on.isoformat(),
    ),
    unchecked=frozenset({"pay_on"}),
    kept=check_scheduled_payment_history,
)
TABLES: tuple[AggregateTable, ...] = (
    PARTNERS,
    CUSTOMERS,
    ACCESS_REQUESTS,
    INVOICES,
    PAYMENTS,
    PAYMENT_METHODS,
    SCHEDULED_PAYMENTS,
)
OUTBOX_COLUMNS = ("topic", "partner_id", "aggregate_id", "occurred_at", "payload")


class Statements:
    """Every statement the unit of work runs, in one dialect."""

    def __init__(self, dialect: Dialect, tables: Sequence[AggregateTable] = TABLES) -> None:
        self.dialect = dialect
        p = dialect.param

        def sql(text: str) -> str:
            return " ".join(text.split()).replace("?", p)

        def marks(count: int) -> str:
            return ", ".join("?" * count)

        self.current: dict[str, str] = {}
        self.get: dict[str, str] = {}
        self.insert: dict[str, str] = {}
        self.update: dict[str, str] = {}
        self.delete: dict[str, str] = {}
        self.delete_children: dict[str, str] = {}
        self.insert_children: dict[str, str] = {}
        self.holders: dict[str, list[str]] = {}
        self.by_unique: dict[str, list[str]] = {}
        for table in tables:
            columns = table.all_columns
            key = table.key_column
            fixed = "".join(f", {c}" for columns in table.fixed for c in columns)
            fixed += "".join(
                f", {dialect.member.format(c[5:]) if c.startswith('data.') else c}"
                for c in table.kept_columns
            )
            self.current[table.name] = sql(
                f"SELECT version, {table.scope}{fixed} FROM {table.name} WHERE {key} = ?"
            )
            self.get[table.name] = sql(f"SELECT {table.select()} FROM {table.name} WHERE {key} = ?")
            self.insert[table.name] = sql(
                f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks(len(columns))})"
            )
            assignments = ", ".join(f"{c} = ?" for c in columns[1:])
            self.update[table.name] = sql(
                f"UPDATE {table.name} SET {assignments} WHERE {key} = ? AND version = ?"
            )
            self.delete[table.name] = sql(
                f"DELETE FROM {table.name} WHERE {key} = ? AND version = ?"
            )
            for child in table.children:
                self.delete_children[child.name] = sql(
                    f"DELETE FROM {child.name} WHERE {child.columns[0]} = ?"
                )
                self.insert_children[child.name] = sql(
                    f"INSERT INTO {child.name} ({', '.join(child.columns)}) "
                    f"VALUES ({marks(len(child.columns))})"
                )
            self.holders[table.name] = []
            self.by_unique[table.name] = []
            for unique in table.unique:
                match = " AND ".join(f"{c} = ?" for c in unique.columns)
                if unique.where:
                    match += f" AND {unique.where}"
                self.holders[table.name].append(
                    sql(f"SELECT {key} FROM {table.name} WHERE {match}")
                )
                self.by_unique[table.name].append(
                    sql(f"SELECT {table.select()} FROM {table.name} WHERE {match}")
                )

        customer = CUSTOMERS.select("c.")
        self.customers_with_user = sql(
            f"""SELECT {customer} FROM customer_users u JOIN customers c ON c.id = u.customer_id
            WHERE u.email_key = ? AND u.partner_id = ?
            ORDER BY c.company_key, c.id"""
        )
        self.accounts_of = sql(
            f"""SELECT {customer} FROM customer_users u JOIN customers c ON c.id = u.customer_id
            WHERE u.email_key = ? AND c.status = 'active'
            ORDER BY c.company_key, c.id"""
        )
        self.access_requests = sql(
            f"""SELECT {ACCESS_REQUESTS.select()} FROM access_requests WHERE partner_id = ?
            ORDER BY requested_at, id"""
        )
        self.access_requests_by_status = sql(
            f"""SELECT {ACCESS_REQUESTS.select()} FROM access_requests
            WHERE partner_id = ? AND status = ?
            ORDER BY requested_at, id"""
        )
        # A pending request by its email's key, and the rows written before
        # the key was (NULL): each branch along the pending emails' index.
        # The last column says which (the key, or NULL).
        pending = f"""SELECT {ACCESS_REQUESTS.select()}, email_key FROM access_requests
            WHERE partner_id = ? AND status = 'pending' AND email_key"""
        self.pending_access_request = sql(f"{pending} = ? UNION ALL {pending} IS NULL")
        self.payments_for_invoice = sql(
            f"""SELECT {PAYMENTS.select("p.")}
            FROM payment_allocations a JOIN payments p ON p.id = a.payment_id
            WHERE a.partner_id = ? AND a.invoice_id = ?
            ORDER BY a.created_at, a.payment_id"""
        )
        self.scheduled_due = sql(
            f"""SELECT {SCHEDULED_PAYMENTS.select()} FROM scheduled_payments
            WHERE partner_id = ? AND status = 'scheduled' AND pay_on <= ?
            ORDER BY pay_on, id"""
        )
        self.scheduled_for_invoice = sql(
            f"""SELECT {SCHEDULED_PAYMENTS.select()} FROM scheduled_payments
            WHERE partner_id = ? AND invoice_id = ?
            ORDER BY pay_on, id"""
        )
        # The rules between aggregates, checked in the write transaction.
        # (Aliased: told apart from a repository's reads in traces.)
        partner = PARTNERS.select("p.")
        self.catalog = sql(f"SELECT {partner} FROM partners p WHERE p.id = ?{dialect.share}")
        # CHECK_SIZE ids at a time (a shorter list repeats its last id).
        self.partners_in = sql(
            f"SELECT {partner} FROM partners p WHERE p.id IN ({marks(CHECK_SIZE)}) "
            f"ORDER BY p.id{dialect.share}"
        )
        self.tag_carrier = sql(
            "SELECT customer_id FROM customer_tags WHERE partner_id = ? AND tag_id = ? LIMIT 1"
        )
        # CHECK_SIZE ids at a time (a shorter list repeats its last id).
        self.customer_states = sql(
            f"SELECT id, partner_id, status FROM customers WHERE id IN ({marks(CHECK_SIZE)}) "
            f"ORDER BY id{dialect.share}"
        )
        # CHECK_SIZE ids at a time (a shorter list repeats its last id).
        self.customers_in = sql(
            f"SELECT {CUSTOMERS.select()} FROM customers WHERE id IN ({marks(CHECK_SIZE)})"
        )
        # CHECK_SIZE ids at a time (a shorter list repeats its last id).
        self.books_in = sql(
            f"SELECT {PAYMENT_METHODS.select()} FROM payment_methods "
            f"WHERE customer_id IN ({marks(CHECK_SIZE)}) ORDER BY customer_id{dialect.share}"
        )
        self.outbox_insert = sql(
            f"INSERT INTO outbox ({', '.join(OUTBOX_COLUMNS)}) "
            f"VALUES ({marks(len(OUTBOX_COLUMNS))})"
        )
        self.outbox_pending = sql(
            "SELECT position, topic, partner_id, aggregate_id, payload "
            f"FROM outbox WHERE {dialect.unpublished} "
            f"ORDER BY position LIMIT ?{dialect.claim}"
        )
        self.outbox_mark = sql(
            f"UPDATE outbox SET published = {dialect.published} "
            f"WHERE position = ? AND {dialect.unpublished}"
        )
        self.sql = sql


def dump(value: object) -> str:
    """A value's data as the compact JSON text stored in ``data`` columns."""
    return stored_json(value)


def load(cls: type[A], data: str | bytes) -> A:
    """An aggregate from its stored data, JSON text (every store reads its
    JSON columns as text: text that ``json.loads`` cannot read is
    ``invalid_json``, and a JSON string is not an aggregate's data). Every
    rule is checked again; a customer or an invoice stored as ``to_dict``
    wrote it is read by the quick path of ``from_stored``, with the same
    result as ``from_dict``, which reads anything else."""
    from altpay_core.serialization import from_stored

    return from_stored(cls, parse_json(data))


def load_event(data: str | bytes) -> Event:
    """An event from an outbox row's payload, JSON text, as its concrete class."""
    return from_dict(Event, parse_json(data))


# -- the store ---------------------------------------------------------------------


class SqlStore(Store, Generic[C]):
    """A store that hands each unit of work a connection of its own, and
    keeps a few idle ones for the next."""

    statements: Statements

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[C] = []
        self._inherited: list[C] = []
        self._closed = False
        self._writers: weakref.WeakKeyDictionary[SqlUnitOfWork[C], tuple[int, int]] = (
            weakref.WeakKeyDictionary()
        )
        """The units of work holding a write transaction open, each with the
        process and thread that began it."""
        # Connections must not cross a fork (SQLite's rule, and a PostgreSQL
        # connection's socket would be shared): a child process opens its own.
        self._pid = os.getpid()

    @abc.abstractmethod
    def _connect(self) -> C:
        """A new connection, ready for use (autocommit; transactions are
        begun and ended explicitly)."""

    @abc.abstractmethod
    def _disconnect(self, connection: C) -> None:
        """Close a connection, ignoring errors."""

    def _alive(self, connection: C) -> bool:
        """Whether an idle connection can still serve (checked, cheaply, as a
        unit of work takes it; one the server dropped meanwhile is closed and
        another taken)."""
        return True

    def _check_open(self) -> None:
        """Refuse a unit of work of a closed store when it is asked for."""
        if self._closed:
            raise AltpayError(f"the {type(self).__name__} is closed")

    def _acquire(self) -> C:
        while True:
            with self._lock:
                self._check_open()
                self._leave_inherited()
                if not self._idle:
                    break
                connection = self._idle.pop()
            if self._alive(connection):
                return connection
            self._disconnect(connection)
        return self._connect()

    def _leave_inherited(self) -> None:
        """In a child process (forked), set aside the connections inherited
        from the parent: never use nor close them here (closing a PostgreSQL
        connection would end the parent's session); keep them referenced so
        that no finalizer does. Called under the lock."""
        if self._pid != os.getpid():
            self._inherited.extend(self._idle)
            self._idle = []
            self._pid = os.getpid()

    def _release(self, connection: C, reusable: bool = True, pid: int | None = None) -> None:
        """Take back a connection that a unit of work is done with, acquired
        in process ``pid`` (this one if ``None``)."""
        with self._lock:
            here = os.getpid()
            if pid is not None and pid != here:
                # Acquired before a fork: the parent's, not ours to close.
                self._inherited.append(connection)
                return
            if (
                reusable
                and not self._closed
                and self._pid == here
                and len(self._idle) < MAX_IDLE_CONNECTIONS
            ):
                self._idle.append(connection)
                return
        self._disconnect(connection)

    def _hold_write(self, uow: SqlUnitOfWork[C]) -> None:
        """Note that ``uow`` begins its write transaction in this thread;
        refuse it at once if another unit of work of this store holds one
        open in this thread: that one cannot end while this one waits for
        it, so the wait would never end (a lock wait to PostgreSQL, SQLite's
        write lock until the timeout). Units of work of other threads are
        waited for as ever; those of a parent process (forked) are not this
        process's."""
        here = (os.getpid(), threading.get_ident())
        with self._lock:
            if here in self._writers.values():
                raise AltpayError(
                    f"another unit of work of this {type(self).__name__} holds its "
                    "transaction open in this thread, and this one would wait for it "
                    "forever: commit or end that one first; nothing of this one was written"
                )
            self._writers[uow] = here

    def _drop_write(self, uow: SqlUnitOfWork[C]) -> None:
        """Forget that ``uow`` holds a write transaction open (it ended)."""
        with self._lock:
            self._writers.pop(uow, None)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @checked_arguments
    def close(self) -> None:
        """Close the idle connections; units of work still open keep theirs
        until they end. Safe to call twice."""
        with self._lock:
            self._closed = True
            self._leave_inherited()
            idle, self._idle = self._idle, []
        for connection in idle:
            self._disconnect(connection)


# -- the unit of work ----------------------------------------------------------------


@attrs.define(slots=True)
class _Pending:
    """An aggregate saved in this transaction and not yet written."""

    new: bool
    """No row in the database yet (insert rather than update)."""
    expected: int
    """The version of the row in the database (0 when new)."""
    version: int
    """The version of this pending state."""
    scope: str
    row: Row
    children: list[list[Row]]
    value: Any
    """The stored value (what ``save`` returned), for look-ups."""
    claims: tuple[Row | None, ...]
    """The unique keys it holds, one per :attr:`AggregateTable.unique`."""
    moved: bool
    """It takes a unique key that its row in the database does not hold."""


class SqlUnitOfWork(UnitOfWork, Generic[C]):
    """One transaction on one connection of a :class:`SqlStore`.

    A save is checked at once against the latest committed state (the
    version, the id's partner, the unique keys, the fields that never
    change; a new aggregate's id is not looked up, and the primary key
    refuses a taken one as its row is written, but one that this unit of
    work saved already is refused at once, written since or not) and kept in
    memory; nothing is sent to the database until the unit of work must
    write: at commit, at a read after a save (so that reads see the block's
    own saves), or once :data:`BATCH_SIZE` saves are waiting. Only then does
    the transaction begin, with the database's write lock where it has one
    (SQLite's ``BEGIN IMMEDIATE``), and the database checks every row again
    as it is written (``UPDATE ... WHERE version = ?``, primary keys, the
    unique indexes): a writer that committed in between turns into a clean
    :class:`~altpay_core.errors.ConcurrencyConflict`, and the write lock is
    held for the writing only, not while the caller works between its saves
    and its commit. A unit of work that would begin its write transaction
    while another of the store holds one open in the same thread is refused
    at once (:meth:`SqlStore._hold_write`): it would wait for that one
    forever.
    """

    def __init__(self, store: SqlStore[C]) -> None:
        self._store = store
        self._sql = store.statements
        self._connection: C | None = None
        self._pid = 0
        """The process that acquired :attr:`_connection`."""
        self._writing = False
        self._broken: str | None = None
        """Why the unit of work was rolled back outside :meth:`commit`,
        forgetting saves the caller was not told of; it refuses to go on
        until rolled back."""
        self._pending: dict[str, dict[str, _Pending]] = {t.name: {} for t in TABLES}
        # Per table and unique key: which pending aggregate holds which key.
        self._claims: dict[str, list[dict[Row, str]]] = {
            t.name: [{} for _ in t.unique] for t in TABLES
        }
        self._wrote: dict[str, set[str]] = {t.name: set() for t in TABLES}
        """Per table, the ids whose rows this transaction has written (its
        flushes before the commit): a save of one as new is refused at save,
        as it is while its row is still pending, not by the primary key
        once every save of the unit of work is waiting on it."""
        self._marks: list[Row] = []
        self._unflushed = False
        self._batched = 0
        self._events: list[Event] = []
        # What the checks between aggregates need, per transaction (see
        # _check_between).
        self._catalogs: dict[str, frozenset[TagId]] = {}
        """Per partner, the tags of its catalog as this transaction sees
        them: read once (and locked, where the database locks rows), or as
        the transaction wrote the partner."""
        self._teams: dict[str, Partner | None] = {}
        """Per partner read or written, as :attr:`_catalogs`: the partner
        itself, whose team resolves access requests (C9) and whose
        integrations sync customers or not (C6)."""
        self._resolving: set[str] = set()
        """The access requests this unit of work resolves: saved resolved
        over a pending state (its own earlier save, or the store's)."""
        self._resolved: dict[str, tuple[str, TeamMemberId | None]] = {}
        """Per access request it resolves, as written: its partner and who
        resolved it."""
        self._added: dict[tuple[str, str | None], tuple[str, ExternalRef | None]] = {}
        """Per partner and system of the external reference (``None``: added
        by hand), the smallest id of the new customers that this transaction
        wrote, and its reference (C6)."""
        self._tagged: dict[str, dict[str, frozenset[TagId]]] = {}
        """Per partner, the customers this transaction wrote with tags, and
        the tags each was last written with."""
        self._removed: dict[str, set[TagId]] = {}
        """Per partner, the tags that its saves took out of its catalog."""
        self._invoiced: dict[tuple[str, str], str] = {}
        """(customer, partner) that the new invoices written name, and the
        smallest id of such an invoice."""
        self._paid: dict[tuple[str, str, str, str], str] = {}
        """(customer, partner, payer, saved method or "") that the new
        payments written name, and the smallest id of such a payment."""
        self._booked: list[tuple[str, str]] = []
        """(customer, partner) of each new payment methods book written."""
        self.partners = SqlPartners(self)
        self.customers = SqlCustomers(self)
        self.access_requests = SqlAccessRequests(self)
        self.invoices = SqlInvoices(self)
        self.payments = SqlPayments(self)
        self.payment_methods = SqlPaymentMethods(self)
        self.scheduled_payments = SqlScheduledPayments(self)
        self.outbox = SqlOutbox(self)

    # -- what each database does its own way --------------------------------------

    @abc.abstractmethod
    def _fetch(self, connection: C, sql: str, params: Row) -> list[Row]:
        """Run a query; every row."""

    @abc.abstractmethod
    def _execute_many(self, connection: C, sql: str, rows: list[Row]) -> int:
        """Run a statement once per row; the rows changed in all."""

    @abc.abstractmethod
    def _begin_write(self, connection: C) -> None:
        """Begin the write transaction."""

    @abc.abstractmethod
    def _end(self, connection: C, commit: bool) -> None:
        """Commit or roll back the transaction, if one is open."""

    @abc.abstractmethod
    def _conflict(self, error: Exception) -> str | None:
        """Why ``error`` is a conflict (a unique key taken, the database busy
        or a lost race), or ``None`` for any other error."""

    def _before_outbox(self, connection: C) -> None:
        """Called at commit just before the outbox rows are inserted."""

    @abc.abstractmethod
    def _reusable(self, connection: C) -> bool:
        """Whether the connection can serve another unit of work."""

    @property
    @abc.abstractmethod
    def _errors(self) -> tuple[type[Exception], ...]:
        """The driver's exception classes."""

    # -- the transaction ---------------------------------------------------------

    def _begin(self) -> None:
        self._broken = None
        # Nothing of an earlier block, should an interruption have cut its
        # end short (see _abort).
        self._clear()
        if self._connection is None:
            self._connection = self._acquire()

    def _acquire(self) -> C:
        """A connection from the store (noting the process it serves); one
        the database is too busy to open (another writer keeps a lock SQLite
        needs to start a connection) is a conflict, as any other wait past
        the timeout is."""
        try:
            connection = self._store._acquire()
        except self._errors as error:
            reason = self._conflict(error)
            if reason is None:
                raise
            raise ConcurrencyConflict(f"{reason}; nothing was written") from error
        self._pid = self._store._pid
        return connection

    def _conn(self) -> C:
        self._in_block()
        connection = self._connection
        if connection is not None:
            here = self._pid == os.getpid()
            if here and (self._writing or self._store._alive(connection)):
                return connection
            if self._writing:
                # Begun before a fork, its transaction open: the parent's.
                raise AltpayError(
                    "this unit of work began its transaction before the process "
                    "forked: the transaction is the parent's; start a new unit of "
                    "work in this process"
                )
            # No transaction is open on it (between commits, or between
            # reads, which each see the latest commit), and the server has
            # ended its session, or it is the parent's (acquired before a
            # fork, kept for the parent, never used here): nothing is lost by
            # taking another.
            self._connection = None
            self._store._release(connection, False, self._pid)
        self._connection = self._acquire()
        return self._connection

    def _start_writing(self, connection: C) -> None:
        """Begin the write transaction, unless another unit of work of the
        store holds one open in this thread (:meth:`SqlStore._hold_write`)."""
        self._store._hold_write(self)
        self._begin_write(connection)
        self._writing = True

    def _in_block(self) -> None:
        super()._in_block()
        if self._broken is not None:
            raise AltpayError(self._broken)

    def _break(self, error: BaseException) -> None:
        """Refuse to go on after ``error`` rolled back, outside a commit,
        what the unit of work had saved: a later commit would store only
        what comes after, not the whole block."""
        self._broken = (
            f"the unit of work was rolled back by an error ({type(error).__name__}: "
            f"{error}), forgetting what it saved since its last commit; leave its "
            "block (or call rollback()) and start again"
        )

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn the driver's errors into ours: a conflict, or the driver's
        error for anything else; either way the transaction is rolled back
        first, so nothing of it is written."""
        try:
            yield
        except BaseException as error:
            self._fail(error)

    def _fail(self, error: BaseException) -> NoReturn:
        """Roll back after ``error`` and raise it, or what it means to us (the
        error handling of :meth:`_guard`, for the paths that cannot afford a
        context manager)."""
        if isinstance(error, self._errors):
            self._failed(error)
        self._abort()
        if isinstance(error, UnicodeEncodeError):
            raise _not_unicode(error) from None
        raise error

    def _abort(self, reuse: bool = True) -> None:
        """Roll back and forget everything not committed; hand the connection
        back (or drop it, if it broke or ``reuse`` is false)."""
        try:
            self._let_go(reuse)
        finally:
            # Forgotten after the roll-back, so that an interruption here
            # (KeyboardInterrupt, SystemExit) leaves no transaction open; what
            # it leaves is cleared as the next block begins.
            self._clear()

    def _let_go(self, reuse: bool) -> None:
        """Roll back the connection's transaction, and hand it back."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._pid != os.getpid():
            # Ended in a child process (forked inside the block): the
            # connection is the parent's, and so is its transaction.
            self._store._release(connection, False, self._pid)
            return
        reusable = reuse
        try:
            self._end(connection, commit=False)
        except self._errors:
            reusable = False
        except BaseException:
            # Interrupted while rolling back (KeyboardInterrupt, SystemExit):
            # its transaction may still be open, holding locks (SQLite's
            # write lock) until the connection is collected. Closing it rolls
            # back; then the interruption goes on.
            self._store._disconnect(connection)
            raise
        self._store._release(connection, reusable and self._reusable(connection))

    def _clear(self) -> None:
        self._writing = False
        self._store._drop_write(self)
        self._unflushed = False
        self._batched = 0
        self._forget_pending()
        for wrote in self._wrote.values():
            wrote.clear()
        self._marks.clear()
        self._events.clear()
        self._catalogs.clear()
        self._teams.clear()
        self._resolving.clear()
        self._resolved.clear()
        self._added.clear()
        self._tagged.clear()
        self._removed.clear()
        self._invoiced.clear()
        self._paid.clear()
        self._booked.clear()

    def _forget_pending(self) -> None:
        for pending in self._pending.values():
            pending.clear()
        for claims in self._claims.values():
            for claimed in claims:
                claimed.clear()

    def _query(self, sql: str, params: Row) -> list[Row]:
        connection = self._conn()
        try:
            return self._fetch(connection, sql, params)
        except BaseException as error:
            if self._writing or self._unflushed:
                self._break(error)
            self._fail(error)

    def _failed(self, error: Exception) -> NoReturn:
        """Roll back after a driver error; raise it as a conflict if it is
        one. A connection that raised anything else is not reused: it may
        be broken, or stuck as it was opened (SQLite opens a file it may
        not write read-only, and stays so)."""
        reason = self._conflict(error)
        self._abort(reuse=reason is not None)
        if reason is not None:
            raise ConcurrencyConflict(f"{reason}; nothing was written") from error
        raise error

    def _read(self, sql: str, params: Row) -> list[Row]:
        """A query that sees what this unit of work has saved."""
        if self._unflushed:
            self._flush()
        return self._query(sql, params)

    def _load_all(
        self,
        table: AggregateTable,
        sql: str,
        params: Row,
        mismatch: Callable[[Any], tuple[str, str] | None] | None = None,
    ) -> list[Any]:
        """The aggregates a query's rows hold (:attr:`AggregateTable.read_columns`),
        as :meth:`_read` sees them. ``mismatch`` names what of an aggregate
        does not match the query (its field, and the rows of the query that
        say otherwise), or ``None``."""
        return [_load_row(table, row, mismatch) for row in self._read(sql, params)]

    def _get(self, table: AggregateTable, scope: str, key: str) -> Any:
        """The aggregate stored under ``key`` for partner ``scope`` (or
        ``None``), as this unit of work sees it: its pending save if it has
        one, else the database's row, so that nothing is written early."""
        self._in_block()
        pending = self._pending[table.name].get(key)
        if pending is not None:
            return pending.value if pending.scope == scope else None
        rows = self._query(self._sql.get[table.name], (key,))
        if not rows or rows[0][table.read_columns.index(table.scope)] != scope:
            return None
        return _load_row(table, rows[0])

    def _get_or_raise(self, table: AggregateTable, scope: str, key: str, shown: object) -> Any:
        """As :meth:`_get`, but ``NotFound`` (naming ``shown``) for nothing."""
        found = self._get(table, scope, key)
        if found is None:
            raise NotFound(table.kind, shown)
        return found

    def _get_unique_or_raise(
        self, table: AggregateTable, index: int, claim: Row, shown: object
    ) -> Any:
        """As :meth:`_get_unique`, but ``NotFound`` (naming ``shown``) for nothing."""
        found = self._get_unique(table, index, claim)
        if found is None:
            raise NotFound(table.kind, shown)
        return found

    def _get_unique(self, table: AggregateTable, index: int, claim: Row) -> Any:
        """The aggregate holding unique key ``claim`` (or ``None``), as this
        unit of work sees it. A pending save that holds the key answers; a
        row of an aggregate with a pending save does not, since its pending
        state, which does not hold the key, supersedes it."""
        self._in_block()
        pending = self._pending[table.name]
        holder = self._claims[table.name][index].get(claim)
        if holder is not None:
            return pending[holder].value
        for row in self._query(self._sql.by_unique[table.name][index], claim):
            if row[0] not in pending:
                return _load_row(table, row)
        return None

    @checked_arguments
    def commit(self) -> None:
        self._in_block()
        if not (self._unflushed or self._writing):
            return
        self._flush(at_commit=True)
        connection = self._conn()
        with self._guard():
            self._check_between(connection)
            self._write_outbox(connection)
            self._end(connection, commit=True)
        self._clear()

    @checked_arguments
    def rollback(self) -> None:
        self._broken = None
        self._abort()

    # -- saving ------------------------------------------------------------------

    def _save(self, table: AggregateTable, aggregate: A) -> A:
        self._in_block()
        value: Any = aggregate
        key = table.key(value)
        scope = key if table is PARTNERS else str(value.partner_id)
        read = value.version
        pending = self._pending[table.name].get(key)
        fixed: Sequence[object] = ()
        kept: Sequence[object] = ()
        if pending is not None:
            stored, stored_scope = pending.version, pending.scope
            fixed = table.fixed_of(pending.row)
        elif read == 0:
            # A new aggregate: its id is fresh unless the same one is saved
            # twice (a draft created twice); the primary key refuses that
            # at commit. Not asking first keeps bulk saves fast. But an id
            # this transaction already wrote is refused here, as while its
            # row was pending: at commit, the primary key would lose every
            # save of the unit of work.
            if key in self._wrote[table.name]:
                self._refuse_stored_id(table, key, scope)
            stored, stored_scope = 0, scope
        else:
            rows = self._query(self._sql.current[table.name], (key,))
            stored, stored_scope, *fixed = rows[0] if rows else (0, scope)
            if table.kept_columns:
                fixed, kept = fixed[: -len(table.kept_columns)], fixed[-len(table.kept_columns) :]
        if stored_scope != scope or read != stored:
            raise ConcurrencyConflict(
                conflict_message(table.kind, key, read, stored, same_partner=stored_scope == scope),
                kind=table.kind,
                key=key,
            )
        indexed: Row = table.values(value)
        if fixed:
            table.check_fixed(key, fixed, indexed)
        if table.kept is not None and read:
            if pending is not None:
                table.kept(pending.value, value)
            elif not (table.kept_in_row is not None and table.kept_in_row(kept, value)):
                table.kept(self._get(table, scope, key), value)
        claims = tuple(unique.of(value) for unique in table.unique)
        moved = self._check_unique(
            table, value, key, claims, unread=pending is None and read == 0, scope=scope
        )
        result: A = _stored(value, read + 1)
        row = (key, read + 1, *indexed, dump(result))
        children = [child.rows(result) for child in table.children]
        if pending is None:
            self._pending[table.name][key] = _Pending(
                new=stored == 0,
                expected=stored,
                version=read + 1,
                scope=scope,
                row=row,
                children=children,
                value=result,
                claims=claims,
                moved=moved,
            )
        else:
            self._release_claims(table, pending.claims)
            pending.version, pending.row, pending.children = read + 1, row, children
            pending.value, pending.claims = result, claims
            pending.moved = pending.moved or moved
        for claimed, claim in zip(self._claims[table.name], claims, strict=True):
            if claim is not None:
                claimed[claim] = key
        self._unflushed = True
        self._events.extend(value.events)
        self._batched += 1
        if self._batched >= BATCH_SIZE:
            self._flush()
        return result

    def _check_unique(
        self,
        table: AggregateTable,
        value: Any,
        key: str,
        claims: tuple[Row | None, ...],
        *,
        unread: bool,
        scope: str,
    ) -> bool:
        """Refuse a unique key that another aggregate holds, checked at save
        for a clear error at the right call; the unique indexes enforce the
        same against concurrent writers. Whether the aggregate takes a key
        that its row in the database does not hold.

        A save as new (``unread``: its id not looked up, see :meth:`_save`)
        whose key is taken is refused first for its id if that is stored
        (of partner ``scope`` or another's), as every store checks the
        version (or id) before the unique keys."""
        pending = self._pending[table.name]
        moved = False
        for index, claim in enumerate(claims):
            if claim is None:
                continue
            holder = self._claims[table.name][index].get(claim)
            if holder is None:
                holders = {
                    row[0] for row in self._query(self._sql.holders[table.name][index], claim)
                }
                # A holder saved in this unit of work counts as its pending
                # state, which holds the key only if it is in the claims.
                taken = any(other != key and other not in pending for other in holders)
                moved = moved or key not in holders
            else:
                taken = holder != key
            if taken:
                if unread:
                    self._refuse_stored_id(table, key, scope)
                raise table.unique[index].taken(value)
        return moved

    def _refuse_stored_id(self, table: AggregateTable, key: str, scope: str) -> None:
        """Refuse a save as new of ``key``, of partner ``scope``, if its id is
        stored: looked up only when the save is refused anyway."""
        rows = self._query(self._sql.current[table.name], (key,))
        if rows:
            stored, stored_scope = rows[0][:2]
            raise ConcurrencyConflict(
                conflict_message(table.kind, key, 0, stored, same_partner=stored_scope == scope),
                kind=table.kind,
                key=key,
            )

    def _release_claims(self, table: AggregateTable, claims: tuple[Row | None, ...]) -> None:
        for claimed, claim in zip(self._claims[table.name], claims, strict=True):
            if claim is not None:
                claimed.pop(claim, None)

    def _flush(self, at_commit: bool = False) -> None:
        """Write what is pending, one ``executemany`` per statement, in the
        write transaction (begun here if need be). A failure rolls back the
        whole unit of work; outside a commit, it then refuses to go on."""
        try:
            self._write_pending()
        except BaseException as error:
            if not at_commit:
                self._break(error)
            raise

    def _write_pending(self) -> None:
        # The connection first: if none can be had (a server restarting),
        # nothing is forgotten, and the commit can be tried again.
        connection = self._conn()
        self._unflushed = False
        self._batched = 0
        with self._guard():
            if not self._writing:
                self._start_writing(connection)
            self._read_partners(connection)
            for table in TABLES:
                pending = self._pending[table.name]
                if pending:
                    items = list(pending.values())
                    pending.clear()
                    for claimed in self._claims[table.name]:
                        claimed.clear()
                    if table is CUSTOMERS:
                        self._check_tags(connection, items)
                    elif table is ACCESS_REQUESTS:
                        self._note_resolutions(connection, items)
                    self._write_rows(connection, table, items)
                    self._wrote[table.name].update(item.row[0] for item in items)
                    self._written(table, items)
            if self._marks:
                marks, self._marks = self._marks, []
                self._execute_many(connection, self._sql.outbox_mark, marks)

    def _write_rows(self, connection: C, table: AggregateTable, items: list[_Pending]) -> None:
        # By id, so that concurrent writers lock rows in one order (no
        # deadlocks between them).
        items.sort(key=lambda p: p.row[0])
        try:
            lost = not self._write_sorted(connection, table, items)
        except self._errors as error:
            reason = self._conflict(error)
            if reason is None:
                raise
            raise self._lost_race(connection, table, items, reason) from error
        if lost:
            raise self._lost_race(
                connection, table, items, f"{_some(table.kind)} was changed by another writer"
            )

    def _write_sorted(self, connection: C, table: AggregateTable, items: list[_Pending]) -> bool:
        """Write the rows; whether every update found its row at the version
        it was read at. The database checks each row's unique keys as it is
        written, so a row that takes a key another row of this batch gives
        up (an invoice's number, an archived customer's external reference;
        or two rows swapping keys) is deleted first and inserted after the
        updates, with the new rows."""
        old = [p for p in items if not p.new]
        moved = [p for p in old if p.moved]
        kept = [p for p in old if not p.moved] if moved else old
        for sql, rows in (
            (self._sql.delete[table.name], [(p.row[0], p.expected) for p in moved]),
            (self._sql.update[table.name], [(*p.row[1:], p.row[0], p.expected) for p in kept]),
        ):
            if rows and self._execute_many(connection, sql, rows) != len(rows):
                return False
        new = [p.row for p in items if p.new or p.moved]
        if new:
            self._execute_many(connection, self._sql.insert[table.name], new)
        for index, child in enumerate(table.children):
            if old:
                self._execute_many(
                    connection,
                    self._sql.delete_children[child.name],
                    [(p.row[0],) for p in old],
                )
            rows = [row for p in items for row in p.children[index]]
            if rows:
                self._execute_many(connection, self._sql.insert_children[child.name], rows)
        return True

    def _lost_race(
        self, connection: C, table: AggregateTable, items: list[_Pending], reason: str
    ) -> ConcurrencyConflict:
        """The conflict for a write that another writer's commit refused
        after the checks at save: rolled back, then the first of ``items``
        whose version or unique key was taken in between, named as the
        check at save would have named it (``.kind``, ``.key``)."""
        try:
            self._end(connection, commit=False)
            for item in items:
                key = item.row[0]
                rows = self._fetch(connection, self._sql.current[table.name], (key,))
                stored, scope = rows[0][:2] if rows else (0, item.scope)
                if stored != item.expected or scope != item.scope:
                    return ConcurrencyConflict(
                        conflict_message(
                            table.kind, key, item.expected, stored, same_partner=scope == item.scope
                        ),
                        kind=table.kind,
                        key=key,
                    )
                holders = self._sql.holders[table.name]
                for index, claim in enumerate(item.claims):
                    if claim is None:
                        continue
                    if any(row[0] != key for row in self._fetch(connection, holders[index], claim)):
                        return table.unique[index].taken(item.value)
        except self._errors:
            pass  # the connection broke too: the reason is all there is
        finally:
            self._abort()
        return ConcurrencyConflict(f"{reason}; nothing was written", kind=table.kind)

    # -- the rules between aggregates ---------------------------------------------
    #
    # Checked in the write transaction: the tags of the customers about to be
    # written against their partners' catalogs, read then (locked until the
    # commit, where the database locks rows) and noted for the commit, which
    # checks what it noted, and the rest, once every row is written.

    def _check_tags(self, connection: C, items: list[_Pending]) -> None:
        """Note the tags of the customers about to be written, and the new
        ones by partner and system (none for those added by hand), for the
        commit to check against their partners as they stand then. A partner
        is read once per transaction, before its customers are written (so
        that PostgreSQL takes the partner's lock before theirs, as a
        partner's writer does). Past that read, a customer costs a look-up
        or two."""
        added = self._added
        for item in items:
            customer: Customer = item.value
            tags = customer.tags
            if tags:
                self._catalog(connection, item.scope)
                self._tagged.setdefault(item.scope, {})[item.row[0]] = tags
            elif self._tagged:
                self._tagged.get(item.scope, {}).pop(item.row[0], None)
            if item.new:
                ref = customer.external_ref
                claim = (item.scope, None if ref is None else ref.system)
                first = added.get(claim)
                if first is None:
                    self._catalog(connection, item.scope)
                    added[claim] = (item.row[0], ref)
                elif item.row[0] < first[0]:
                    added[claim] = (item.row[0], ref)

    def _note_resolutions(self, connection: C, items: list[_Pending]) -> None:
        """Note the access requests about to be written that this unit of
        work resolves, for the commit to check their resolvers against their
        partners' teams as they stand then (each partner read, and locked,
        before any row is written: :meth:`_read_partners`)."""
        for item in items:
            request: AccessRequest = item.value
            if item.row[0] in self._resolving and not request.is_pending:
                self._catalog(connection, item.scope)
                self._resolved[item.row[0]] = (item.scope, request.resolved_by)
            else:
                self._resolved.pop(item.row[0], None)

    def _read_partners(self, connection: C) -> None:
        """Read (and lock, where the database locks rows) the partners the
        checks at commit need for the rows about to be written: those of
        the customers with tags or new, and of the access requests
        resolved, which this transaction has not read or written yet and
        does not write now. :data:`CHECK_SIZE` at a time, in order of id,
        before any row is written, so that writers lock partners before
        customers, in one order."""
        known, writing = self._catalogs, self._pending[PARTNERS.name]
        wanted: set[str] = set()
        for item in self._pending[CUSTOMERS.name].values():
            customer: Customer = item.value
            if item.scope not in known and (customer.tags or item.new):
                wanted.add(item.scope)
        for key, item in self._pending[ACCESS_REQUESTS.name].items():
            if key in self._resolving and item.scope not in known:
                wanted.add(item.scope)
        wanted.difference_update(writing)
        ordered = sorted(wanted)
        for start in range(0, len(ordered), CHECK_SIZE):
            chunk = ordered[start : start + CHECK_SIZE]
            found = {
                row[0]: _load_row(PARTNERS, row)
                for row in self._fetch(
                    connection,
                    self._sql.partners_in,
                    tuple(chunk + chunk[-1:] * (CHECK_SIZE - len(chunk))),
                )
            }
            for key in chunk:
                self._note_partner(key, found.get(key))

    def _catalog(self, connection: C, partner: str) -> frozenset[TagId]:
        """The tags of the partner's catalog as this transaction sees them
        (none for a partner not stored); read with the partner, which also
        notes whether it syncs customers."""
        catalog = self._catalogs.get(partner)
        if catalog is None:
            rows = self._fetch(connection, self._sql.catalog, (partner,))
            self._note_partner(partner, _load_row(PARTNERS, rows[0]) if rows else None)
            catalog = self._catalogs[partner]
        return catalog

    def _note_partner(self, key: str, partner: Partner | None) -> None:
        self._catalogs[key] = frozenset() if partner is None else _tag_ids(partner)
        self._teams[key] = partner

    def _written(self, table: AggregateTable, items: list[_Pending]) -> None:
        """Note what the commit's checks need of the rows just written: the
        partners' catalogs, the customers of the new invoices, of the new
        payments (and their payers and saved methods) and of the new payment
        methods books."""
        if table is PARTNERS:
            for item in items:
                self._note_partner(item.row[0], item.value)
        elif table is INVOICES:
            for item in items:
                if item.new:
                    claim = (str(item.value.customer_id), item.scope)
                    first = self._invoiced.get(claim)
                    if first is None or item.row[0] < first:
                        self._invoiced[claim] = item.row[0]
        elif table is PAYMENTS:
            for item in items:
                if item.new:
                    payment: Payment = item.value
                    method = payment.payment_method_id
                    paid = (
                        str(payment.customer_id),
                        item.scope,
                        str(payment.user_id),
                        "" if method is None else str(method),
                    )
                    first = self._paid.get(paid)
                    if first is None or item.row[0] < first:
                        self._paid[paid] = item.row[0]
        elif table is PAYMENT_METHODS:
            self._booked.extend((item.row[0], item.scope) for item in items if item.new)

    def _check_between(self, connection: C) -> None:
        """The rules between aggregates, as they stand at this commit, every
        row of the unit of work written: each customer it wrote carries, as
        last written, only tags of its partner's catalog as it stands now
        (whatever the order of the saves and of the batches); a tag taken out
        of a catalog is carried by no other customer of the partner; each new
        invoice's customer is stored, the invoice's partner's, and not
        archived (read locked, where the database locks rows), and so is
        each new payment's, if stored, which also has the payment's payer
        among its users and, in its stored payment methods book (read
        locked, after the customers), the payment's saved method, active; no new
        customer was added by hand to a partner that syncs customers, and
        each new synced one names a connected integration of its partner
        that syncs customers (C6);
        each resolved access request names a team member of its partner who
        may resolve it (C9); each new payment methods book names a stored
        customer of its partner."""
        # Catalogs read in order of the partners' ids, customers checked in
        # order of theirs, tags in order: the same fault named as the memory
        # store names it.
        catalogs = {partner: self._catalog(connection, partner) for partner in sorted(self._tagged)}
        tagged = sorted(
            (customer, partner, tags)
            for partner, customers in self._tagged.items()
            for customer, tags in customers.items()
        )
        for customer, partner, tags in tagged:
            if not tags <= catalogs[partner]:
                raise tag_not_in_catalog(customer, min(tags - catalogs[partner]))
        for partner, removed in sorted(self._removed.items()):
            for tag in sorted(removed - self._catalog(connection, partner)):
                if self._fetch(connection, self._sql.tag_carrier, (partner, str(tag))):
                    raise tag_still_carried(partner, tag)
        # In order of the customers' ids, as the memory store checks.
        for (partner, system), (customer, ref) in sorted(
            self._added.items(), key=lambda claim: claim[1][0]
        ):
            if not may_add_customer(self._teams[partner], ref):
                raise customer_added_by_hand(customer, partner, system)
        # The customers of the new invoices, payments and payment methods
        # books, read (and locked) together, in one order of ids.
        states = (
            self._customer_states(
                connection,
                {c for c, _ in self._invoiced}
                | {c for c, _, _, _ in self._paid}
                | {c for c, _ in self._booked},
            )
            if self._invoiced or self._paid or self._booked
            else {}
        )
        # In order of the invoices' ids, as the memory store checks.
        by_invoice = sorted(self._invoiced.items(), key=lambda claim: claim[1])
        for (customer, partner), invoice in by_invoice:
            state = states.get(customer)
            if state is None or state[0] != partner:
                raise invoice_customer_missing(invoice, customer)
            if state[1] == CustomerStatus.ARCHIVED.value:
                raise invoice_customer_archived(invoice, customer)
        # In order of the payments' ids, as the memory store checks; a
        # payment whose customer is not stored is not checked, nor the
        # method of one whose customer has no stored book.
        paid = [
            (payment, customer, payer, method)
            for (customer, partner, payer, method), payment in self._paid.items()
            if states.get(customer, ("", ""))[0] == partner
        ]
        users = self._users_of(connection, {customer for _, customer, _, _ in paid})
        active = self._active_methods(
            connection, {customer for _, customer, _, method in paid if method}
        )
        for payment, customer, payer, method in sorted(paid):
            if states[customer][1] == CustomerStatus.ARCHIVED.value:
                raise payment_customer_archived(payment, customer)
            if payer not in users[customer]:
                raise payment_payer_missing(payment, payer, customer)
            if method and customer in active and method not in active[customer]:
                raise payment_method_archived(payment, method, customer)
        # In order of the requests' ids, as the memory store checks.
        for request, (partner, member) in sorted(self._resolved.items()):
            if not may_resolve(self._teams[partner], member):
                raise resolver_not_allowed(request, member)
        for customer, partner in sorted(self._booked):
            state = states.get(customer)
            if state is None or state[0] != partner:
                raise methods_customer_missing(customer, partner)

    def _customer_states(self, connection: C, keys: set[str]) -> dict[str, tuple[str, str]]:
        """Each stored customer's partner and status, by id, :data:`CHECK_SIZE`
        at a time, in order of id (so that writers lock them in one order).

        A customer missing from the answer is read once more, by a new
        statement: a writer that gave its row a unique key another row gave
        up deletes and inserts it again (see :meth:`_write_sorted`), and a
        read that waited on its lock (PostgreSQL's ``FOR SHARE``, as read
        committed) skips the deleted row without seeing the new one, which
        only a new statement sees. A customer still missing is not stored."""
        states = self._read_customer_states(connection, sorted(keys))
        missing = sorted(keys - states.keys())
        if missing:
            states.update(self._read_customer_states(connection, missing))
        return states

    def _users_of(self, connection: C, keys: set[str]) -> dict[str, set[str]]:
        """The ids of each stored customer's users, by id, :data:`CHECK_SIZE`
        at a time: customers whose rows :meth:`_customer_states` read (and
        locked) in this transaction."""
        users: dict[str, set[str]] = {}
        for row in self._rows_in(connection, self._sql.customers_in, keys):
            customer: Customer = _load_row(CUSTOMERS, row)
            users[str(customer.id)] = {str(user.id) for user in customer.users}
        return users

    def _active_methods(self, connection: C, keys: set[str]) -> dict[str, set[str]]:
        """The ids of the active methods of each stored payment methods book,
        by its customer's id, :data:`CHECK_SIZE` at a time, in order of id,
        read (and locked, where the database locks rows) after the
        customers, so that writers lock them in one order. (A book's row is
        never deleted and inserted again: it has no unique key to give up.)"""
        active: dict[str, set[str]] = {}
        for row in self._rows_in(connection, self._sql.books_in, keys):
            book: CustomerPaymentMethods = _load_row(PAYMENT_METHODS, row)
            active[str(book.customer_id)] = {str(m.id) for m in book.methods if m.is_active}
        return active

    def _rows_in(self, connection: C, sql: str, keys: Iterable[str]) -> Iterator[Row]:
        """The rows of ``sql`` (a query of :data:`CHECK_SIZE` ids) for
        ``keys``, :data:`CHECK_SIZE` at a time in order of id (a shorter
        list repeats its last id)."""
        wanted = sorted(keys)
        for start in range(0, len(wanted), CHECK_SIZE):
            chunk = wanted[start : start + CHECK_SIZE]
            chunk += chunk[-1:] * (CHECK_SIZE - len(chunk))
            yield from self._fetch(connection, sql, tuple(chunk))

    def _read_customer_states(self, connection: C, wanted: list[str]) -> dict[str, tuple[str, str]]:
        states: dict[str, tuple[str, str]] = {}
        for key, partner, status in self._rows_in(connection, self._sql.customer_states, wanted):
            states[key] = (partner, status)
        return states

    def _write_outbox(self, connection: C) -> None:
        """Insert the saved aggregates' events, last thing before the commit."""
        if self._events:
            self._before_outbox(connection)
            events = self._events
            for start in range(0, len(events), BATCH_SIZE):
                self._execute_many(
                    connection,
                    self._sql.outbox_insert,
                    [_outbox_row(e) for e in events[start : start + BATCH_SIZE]],
                )

    def _pending_messages(self, limit: int) -> list[Row]:
        """The outbox rows ``pending`` lists (position, topic, partner_id,
        aggregate_id, payload), claimed for
        this unit of work until it ends: read in the write transaction
        (begun here if need be), so that SQLite's write lock keeps another
        publisher waiting, and PostgreSQL's row locks keep it off them
        (``SKIP LOCKED``). A publisher thus never lists what another one is
        publishing."""
        self._in_block()
        if self._unflushed:
            self._flush()
        elif not self._writing:
            connection = self._conn()
            with self._guard():
                self._start_writing(connection)
        return self._query(self._sql.outbox_pending, (limit,))

    def _mark_published(self, positions: Iterable[int]) -> None:
        self._in_block()
        positions = Outbox._positions(positions)
        # A position no column can hold is no message's: ignored, as unknown
        # positions are.
        self._marks.extend((p,) for p in positions if 0 < p <= _LAST_POSITION)
        self._unflushed = self._unflushed or bool(self._marks)


_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def _load_row(
    table: AggregateTable,
    row: Sequence[Any],
    mismatch: Callable[[Any], tuple[str, str] | None] | None = None,
) -> Any:
    """The aggregate a row of :attr:`AggregateTable.read_columns` holds,
    refused if its data disagree with the row's columns, or (``mismatch``)
    with the rows a query joined to it: changed outside the library."""
    aggregate = load(table.cls, row[len(table.read_columns) - 1])
    table.check_row(aggregate, row)
    if mismatch is not None:
        found = mismatch(aggregate)
        if found is not None:
            raise row_changed(table.kind, str(row[0]), *found)
    return aggregate


def _stored(aggregate: A, version: int) -> A:
    """``attrs.evolve(aggregate, version=version)`` without running the
    validators again: the value is valid and only its version changes. The
    copy starts with no events, as evolve's does."""
    cls = type(aggregate)
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(a.name for a in attrs.fields(cls))
    result = object.__new__(cls)
    set_field = object.__setattr__
    for name in names:
        set_field(result, name, getattr(aggregate, name))
    set_field(result, "version", version)
    set_field(result, "events", ())
    return result


def _tag_ids(partner: Partner) -> frozenset[TagId]:
    return frozenset(tag.id for tag in partner.tags)


def _some(kind: str) -> str:
    """``kind`` with its indefinite article: "an invoice", "payment methods"."""
    if kind.endswith("s"):
        return kind
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def already_stored(kind: str, key: str) -> str:
    """The conflict's message for an aggregate saved as new whose id is
    stored, or whose id is another partner's: it names neither that partner
    nor the version stored. The memory store's too."""
    return f"{_some(kind)} with id {key!r} is already stored; nothing was written"


def conflict_message(kind: str, key: str, read: int, stored: int, *, same_partner: bool) -> str:
    """The conflict's message for an aggregate saved at version ``read``,
    stored at ``stored`` (0: not stored), by its own partner or not: every
    store's words."""
    if not same_partner or (read == 0 and stored):
        return already_stored(kind, key)
    if stored == 0:
        return (
            f"{kind} {key!r} is not stored, so version {read} cannot be saved "
            "(save it first at version 0); nothing was written"
        )
    return (
        f"{kind} {key!r} changed since it was read (read at version {read}, "
        f"stored at {stored}); read it again and retry; nothing was written"
    )


def _not_unicode(error: UnicodeEncodeError) -> ValidationError:
    # Text with a lone surrogate, which no database stores: given to a
    # query (a name prefix, a key) or held by a value built without checks.
    return ValidationError.single(
        "", "invalid_text", f"text must be Unicode text, without lone surrogates ({error.reason})"
    )


def _message(row: Sequence[Any]) -> OutboxMessage:
    """The message an outbox row (position, topic, partner_id,
    aggregate_id, payload) holds. A payload that is damaged, or disagrees
    with the row's columns (changed outside the library), is refused as an
    aggregate's row is, at ``outbox[<position>]``: the position a publisher
    marks published to set the message aside."""
    position = int(row[0])
    where = f"outbox[{position}]"
    try:
        event = load_event(row[4])
    except ValidationError as error:
        raise error.under(where) from None
    found = (event.topic, str(event.partner_id), event.aggregate_id)
    if found != tuple(row[1:4]):
        column = _differing_column(OUTBOX_COLUMNS, found, row[1:4])
        raise row_changed("outbox message", str(position), column, f"its {column!r} column").under(
            where
        )
    return OutboxMessage(position, event)


def _outbox_row(event: Event) -> Row:
    return (
        event.topic,
        str(event.partner_id),
        event.aggregate_id,
        timestamp(event.occurred_at),
        dump(event),
    )


# -- the repositories ------------------------------------------------------------


def _found_by(
    rows: str, field: str, matches: Callable[[Any], bool], scope: str | None = None
) -> Callable[[Any], tuple[str, str] | None]:
    """What an aggregate that a query found through the table ``rows`` (for
    partner ``scope``, if given) does not match: its ``partner_id``, or else
    ``field``, unless the aggregate ``matches`` what the query asked."""
    source = f"the {rows!r} rows it was found by"

    def mismatch(aggregate: Any) -> tuple[str, str] | None:
        if scope is not None and str(aggregate.partner_id) != scope:
            return "partner_id", source
        return None if matches(aggregate) else (field, source)

    return mismatch


def _user_mismatch(
    email_key: str, scope: str | None = None
) -> Callable[[Customer], tuple[str, str] | None]:
    """A customer found by a user's email: ``users``, if none has it."""
    return _found_by(
        "customer_users",
        "users",
        lambda customer: any(user.email.key == email_key for user in customer.users),
        scope,
    )


def _partner_key(partner_id: PartnerId) -> str:
    return str(_fields.entity_id("partner_id", partner_id, PartnerId))


def _email_key(email: EmailAddress | str) -> str:
    return check_email("email", email).key


def _ref(ref: object) -> ExternalRef:
    if not isinstance(ref, ExternalRef):
        raise ValidationError.single(
            "ref", "wrong_type", f"'ref' must be an ExternalRef (got {type(ref).__name__})"
        )
    return ref


def _text(path: str, value: object) -> str:
    """A key given as text (an invoice number, an idempotency key), trimmed
    as the aggregates store it."""
    return _fields.query_text(path, value).strip()


def _date(path: str, value: object) -> str:
    return _fields.plain_date(path, value).isoformat()


@checked_constructor
class SqlPartners(PartnerRepository):
    def __init__(self, uow: SqlUnitOfWork[Any]) -> None:
        self._uow = uow

    @checked_arguments
    def get(self, partner_id: PartnerId) -> Partner:
        self._uow._in_block()
        key = _partner_key(partner_id)
        partner: Partner = self._uow._get_or_raise(PARTNERS, key, key, partner_id)
        return partner

    @checked_arguments
    def save(self, partner: Partner) -> Partner:
        self._uow._in_block()
        _require(partner, Partner, "partner")
        uow = self._uow
        # The tags the save takes out of the catalog, as this unit of work
        # sees it, must be carried by no customer at commit.
        key = PARTNERS.key(partner)
        before: Partner | None = None if partner.version == 0 else uow._get(PARTNERS, key, key)
        saved = uow._save(PARTNERS, partner)
        if before is not None:
            removed = _tag_ids(before) - _tag_ids(saved)
            if removed:
                uow._removed.setdefault(key, set()).update(removed)
        return saved


@checked_constructor
class SqlCustomers(CustomerRepository):
    def __init__(self, uow: SqlUnitOfWork[Any]) -> None:
        self._uow = uow

    @checked_arguments
    def get(self, partner_id: PartnerId, customer_id: CustomerId) -> Customer:
        self._uow._in_block()
        customer: Customer = self._uow._get_or_raise(
            CUSTOMERS,
            _partner_key(partner_id),
            str(_fields.entity_id("customer_id", customer_id, CustomerId)),
            customer_id,
        )
        return customer

    @checked_arguments
    def get_by_external_ref(self, partner_id: PartnerId, ref: ExternalRef) -> Customer:
        self._uow._in_block()
        scope = _partner_key(partner_id)  # first, as the memory store checks
        ref = _ref(ref)
        customer: Customer = self._uow._get_unique_or_raise(
            CUSTOMERS, 0, (scope, ref.system, ref.id), ref
        )
        return customer

    @checked_arguments
    def with_user(self, partner_id: PartnerId, email: EmailAddress | str) -> list[Customer]:
        self._uow._in_block()
        scope = _partner_key(partner_id)  # first, as the memory store checks
        key = _email_key(email)
        return self._uow._load_all(
            CUSTOMERS, self._uow._sql.customers_with_user, (key, scope), _user_mismatch(key, scope)
        )

    @checked_arguments
    def accounts_of(self, email: EmailAddress | str) -> list[Customer]:
        self._uow._in_block()
        key = _email_key(email)
        return self._uow._load_all(
            CUSTOMERS, self._uow._sql.accounts_of, (key,), _user_mismatch(key)
        )

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
        self._uow._in_block()
        request = PageRequest.parse(limit, after, before, listing=Listing.CUSTOMERS)
        # A tag's customers along its rows (customer_tags_by_company), the
        # others along customers_by_status or customers_by_company: each in
        # the listing's order.
        listing = CUSTOMER_LISTING if tag is None else TAGGED_CUSTOMER_LISTING
        table = "c" if tag is None else "t"
        where = [f"{table}.partner_id = ?"]
        params: list[Any] = [_partner_key(partner_id)]
        mismatch: Callable[[Customer], tuple[str, str] | None] | None = None
        if tag is not None:
            where.append("t.tag_id = ?")
            tag = _fields.entity_id("tag", tag, TagId)
            params.append(str(tag))
            mismatch = _found_by("customer_tags", "tags", lambda c: tag in c.tags, params[0])
        if status is not None:
            where.append("c.status = ?")
            params.append(_status(status, CustomerStatus, "status").value)
        if name_prefix is not None:
            prefix = _fields.query_text("name_prefix", name_prefix).casefold()
            if prefix:
                where.append(f"{listing.sort} >= ?")
                params.append(prefix)
                upper = _prefix_successor(prefix)
                if upper is not None:
                    where.append(f"{listing.sort} < ?")
                    params.append(upper)
        return _page(self._uow, listing, where, params, request, mismatch=mismatch)

    @checked_arguments
    def save(self, customer: Customer) -> Customer:
        self._uow._in_block()
        _require(customer, Customer, "customer")
        return self._uow._save(CUSTOMERS, customer)


@attrs.frozen
class SqlListing:
    """A keyset-paged listing of one table: rows ordered by a sort key, then id."""

    table: AggregateTable
    source: str
    """The table and its alias (``customers c``)."""
    sort: str
    """The sort key's column, with the alias."""
    id: str
    """The id's column, with the alias."""
    data: str
    """The columns read (:meth:`AggregateTable.select`), with the alias."""
    cursors: Listing
    """The listing its cursors name."""


CUSTOMER_LISTING = SqlListing(
    CUSTOMERS,
    "customers c",
    "c.company_key",
    "c.id",
    CUSTOMERS.select("c."),
    Listing.CUSTOMERS,
)
TAGGED_CUSTOMER_LISTING = SqlListing(
    CUSTOMERS,
    "customer_tags t JOIN customers c ON c.id = t.customer_id",
    "t.company_key",
    "t.customer_id",
    CUSTOMERS.select("c."),
    Listing.CUSTOMERS,
)
INVOICE_LISTING = SqlListing(
    INVOICES, "invoices i", "i.sort_key", "i.id", INVOICES.select("i."), Listing.INVOICES
)


def _page(
    uow: SqlUnitOfWork[Any],
    listing: SqlListing,
    where: builtins.list[str],
    params: builtins.list[Any],
    request: PageRequest,
    *,
    mismatch: Callable[[Any], tuple[str, str] | None] | None = None,
) -> Page[Any]:
    sql = uow._sql.sql
    filters = " AND ".join(where)
    backward = request.before is not None
    cursor = request.before if backward else request.after
    condition, order = ("<", "DESC") if backward else (">", "ASC")
    keys = f"({listing.sort}, {listing.id})"
    query = (
        f"SELECT {listing.data}, {listing.sort}, {listing.id} FROM {listing.source} WHERE {filters}"
    )
    page_params = list(params)
    if cursor is not None:
        query += f" AND {keys} {condition} (?, ?)"
        page_params += [cursor.key, cursor.id]
    query += f" ORDER BY {listing.sort} {order}, {listing.id} {order} LIMIT ?"
    rows = uow._read(sql(query), (*page_params, request.limit + 1))
    more = len(rows) > request.limit
    rows = rows[: request.limit]
    if backward:
        rows.reverse()
    # Whether anything lies on the cursor's other side (the cursor's own
    # row included): exact, as the port promises.
    beyond = False
    if cursor is not None:
        other = ">=" if backward else "<="
        beyond = bool(
            uow._read(
                sql(
                    f"SELECT 1 FROM {listing.source} WHERE {filters} "
                    f"AND {keys} {other} (?, ?) LIMIT 1"
                ),
                (*params, cursor.key, cursor.id),
            )
        )
    items = tuple(_load_row(listing.table, row, mismatch) for row in rows)
    first = Cursor(listing.cursors, rows[0][-2], rows[0][-1]).encode() if rows else None
    last = Cursor(listing.cursors, rows[-1][-2], rows[-1][-1]).encode() if rows else None
    return Page(
        items=items,
        start_cursor=first,
        end_cursor=last,
        has_next_page=beyond if backward else more,
        has_previous_page=more if backward else beyond,
    )


@checked_constructor
class SqlAccessRequests(AccessRequestRepository):
    def __init__(self, uow: SqlUnitOfWork[Any]) -> None:
        self._uow = uow

    @checked_arguments
    def get(self, partner_id: PartnerId, request_id: AccessRequestId) -> AccessRequest:
        self._uow._in_block()
        request: AccessRequest = self._uow._get_or_raise(
            ACCESS_REQUESTS,
            _partner_key(partner_id),
            str(_fields.entity_id("request_id", request_id, AccessRequestId)),
            request_id,
        )
        return request

    @checked_arguments
    def list(
        self, partner_id: PartnerId, *, status: AccessRequestStatus | None = None
    ) -> list[AccessRequest]:
        self._uow._in_block()
        sql, partner = self._uow._sql, _partner_key(partner_id)
        if status is None:
            return self._uow._load_all(ACCESS_REQUESTS, sql.access_requests, (partner,))
        value = _status(status, AccessRequestStatus, "status").value
        return self._uow._load_all(ACCESS_REQUESTS, sql.access_requests_by_status, (partner, value))

    @checked_arguments
    def pending_for(self, partner_id: PartnerId, email: EmailAddress | str) -> AccessRequest | None:
        self._uow._in_block()
        partner = _partner_key(partner_id)  # first, as the memory store checks
        key = _email_key(email)
        rows = self._uow._read(self._uow._sql.pending_access_request, (partner, key, partner))
        # A row with the key holds the email's place by it; one written
        # before the key was (NULL) matches by its data.
        found = [
            request
            for request, keyed in ((_load_row(ACCESS_REQUESTS, row), row[-1]) for row in rows)
            if keyed is not None or request.email.key == key
        ]
        return min(found, key=lambda r: (r.requested_at, r.id.value), default=None)

    @checked_arguments
    def save(self, request: AccessRequest) -> AccessRequest:
        self._uow._in_block()
        _require(request, AccessRequest, "request")
        uow = self._uow
        key = ACCESS_REQUESTS.key(request)
        # Whether this save resolves it: over a pending state, as this unit
        # of work sees it (C9 is checked at commit for those only).
        # Noted before the save, which may write the batch it completes.
        before: AccessRequest | None = None
        if request.version and not request.is_pending:
            before = uow._get(ACCESS_REQUESTS, str(request.partner_id), key)
        was = key in uow._resolving
        if before is not None and before.is_pending:
            uow._resolving.add(key)
        elif request.is_pending:
            uow._resolving.discard(key)
        try:
            saved: AccessRequest = uow._save(ACCESS_REQUESTS, request)
        except BaseException:
            if was:
                uow._resolving.add(key)
            else:
                uow._resolving.discard(key)
            raise
        return saved


@checked_constructor
class SqlInvoices(InvoiceRepository):
    def __init__(self, uow: SqlUnitOfWork[Any]) -> None:
        self._uow = uow

    @checked_arguments
    def get(self, partner_id: PartnerId, invoice_id: InvoiceId) -> Invoice:
        self._uow._in_block()
        invoice: Invoice = self._uow._get_or_raise(
            INVOICES,
            _partner_key(partner_id),
            str(_fields.entity_id("invoice_id", invoice_id, InvoiceId)),
            invoice_id,
        )
        return invoice

    @checked_arguments
    def get_by_number(self, partner_id: PartnerId, number: str) -> Invoice:
        self._uow._in_block()
        scope = _partner_key(partner_id)  # first, as the memory store checks
        key = _text("number", number)
        invoice: Invoice = self._uow._get_unique_or_raise(INVOICES, 0, (scope, key), key)
        return invoice

    @checked_arguments
    def get_by_external_ref(self, partner_id: PartnerId, ref: ExternalRef) -> Invoice:
        self._uow._in_block()
        scope = _partner_key(partner_id)  # first, as the memory store checks
        ref = _ref(ref)
        invoice: Invoice = self._uow._get_unique_or_raise(
            INVOICES, 1, (scope, ref.system, ref.id), ref
        )
        return invoice

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
        self._uow._in_block()
        request = PageRequest.parse(limit, after, before, listing=Listing.INVOICES)
        where, params = self._scope(partner_id, customer_id)
        if status is not None:
            where.append("i.status = ?")
            params.append(_status(status, InvoiceStatus, "status").value)
        # The sort key is the due date (ISO, ten characters), a space and the
        # number, so a range of due dates is a range of keys on the index
        # that also gives the order: a key is at least its date, and every
        # key of a date sorts below that date followed by "!" (a space sorts
        # before "!").
        if due_from is not None:
            where.append("i.sort_key >= ?")
            params.append(_date("due_from", due_from))
        if due_to is not None:
            where.append("i.sort_key < ?")
            params.append(_date("due_to", due_to) + "!")
        return _page(self._uow, INVOICE_LISTING, where, params, request)

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
        self._uow._in_block()
        request = PageRequest.parse(limit, after, before, listing=Listing.INVOICES)
        where, params = self._scope(partner_id, customer_id)
        # Open (a balance above zero, I4) and due before as_of: every key of
        # an earlier due date sorts below as_of's date alone.
        where += ["i.status = 'open'", "i.sort_key < ?"]
        params.append(_date("as_of", as_of))
        return _page(self._uow, INVOICE_LISTING, where, params, request)

    @staticmethod
    def _scope(
        partner_id: PartnerId, customer_id: CustomerId | None
    ) -> tuple[builtins.list[str], builtins.list[Any]]:
        where = ["i.partner_id = ?"]
        params: builtins.list[Any] = [_partner_key(partner_id)]
        if customer_id is not None:
            where.append("i.customer_id = ?")
            params.append(str(_fields.entity_id("customer_id", customer_id, CustomerId)))
        return where, params

    @checked_arguments
    def save(self, invoice: Invoice) -> Invoice:
        self._uow._in_block()
        _require(invoice, Invoice, "invoice")
        return self._uow._save(INVOICES, invoice)


@checked_constructor
class SqlPayments(PaymentRepository):
    def __init__(self, uow: SqlUnitOfWork[Any]) -> None:
        self._uow = uow

    @checked_arguments
    def get(self, partner_id: PartnerId, payment_id: PaymentId) -> Payment:
        self._uow._in_block()
        payment: Payment = self._uow._get_or_raise(
            PAYMENTS,
            _partner_key(partner_id),
            str(_fields.entity_id("payment_id", payment_id, PaymentId)),
            payment_id,
        )
        return payment

    @checked_arguments
    def get_by_idempotency_key(self, partner_id: PartnerId, key: str) -> Payment | None:
        self._uow._in_block()
        claim = (_partner_key(partner_id), _text("key", key))
        payment: Payment | None = self._uow._get_unique(PAYMENTS, 0, claim)
        return payment

    @checked_arguments
    def for_invoice(self, partner_id: PartnerId, invoice_id: InvoiceId) -> list[Payment]:
        self._uow._in_block()
        scope = _partner_key(partner_id)
        invoice = str(_fields.entity_id("invoice_id", invoice_id, InvoiceId))

        mismatch = _found_by(
            "payment_allocations",
            "allocations",
            lambda payment: any(str(part.invoice_id) == invoice for part in payment.allocations),
            scope,
        )
        return self._uow._load_all(
            PAYMENTS,
            self._uow._sql.payments_for_invoice,
            (scope, invoice),
            mismatch,
        )

    @checked_arguments
    def save(self, payment: Payment) -> Payment:
        self._uow._in_block()
        _require(payment, Payment, "payment")
        return self._uow._save(PAYMENTS, payment)


@checked_constructor
class SqlPaymentMethods(PaymentMethodRepository):
    def __init__(self, uow: SqlUnitOfWork[Any]) -> None:
        self._uow = uow

    @checked_arguments
    def get(self, partner_id: PartnerId, customer_id: CustomerId) -> CustomerPaymentMethods:
        self._uow._in_block()
        partner = _fields.entity_id("partner_id", partner_id, PartnerId)
        customer = _fields.entity_id("customer_id", customer_id, CustomerId)
        methods: CustomerPaymentMethods | None = self._uow._get(
            PAYMENT_METHODS, str(partner), str(customer)
        )
        if methods is None:
            return CustomerPaymentMethods(partner_id=partner, customer_id=customer)
        return methods

    @checked_arguments
    def save(self, methods: CustomerPaymentMethods) -> CustomerPaymentMethods:
        self._uow._in_block()
        _require(methods, CustomerPaymentMethods, "methods")
        return self._uow._save(PAYMENT_METHODS, methods)


@checked_constructor
class SqlScheduledPayments(ScheduledPaymentRepository):
    def __init__(self, uow: SqlUnitOfWork[Any]) -> None:
        self._uow = uow

    @checked_arguments
    def get(self, partner_id: PartnerId, scheduled_id: ScheduledPaymentId) -> ScheduledPayment:
        self._uow._in_block()
        scheduled: ScheduledPayment = self._uow._get_or_raise(
            SCHEDULED_PAYMENTS,
            _partner_key(partner_id),
            str(_fields.entity_id("scheduled_id", scheduled_id, ScheduledPaymentId)),
            scheduled_id,
        )
        return scheduled

    @checked_arguments
    def due(self, partner_id: PartnerId, as_of: dt.date) -> list[ScheduledPayment]:
        self._uow._in_block()
        scope = _partner_key(partner_id)  # first, as the memory store checks
        day = _date("as_of", as_of)

        def mismatch(scheduled: ScheduledPayment) -> tuple[str, str] | None:
            if scheduled.pay_on.isoformat() <= day:
                return None
            return "pay_on", "its 'pay_on' column"

        return self._uow._load_all(
            SCHEDULED_PAYMENTS,
            self._uow._sql.scheduled_due,
            (scope, day),
            mismatch,
        )

    @checked_arguments
    def for_invoice(self, partner_id: PartnerId, invoice_id: InvoiceId) -> list[ScheduledPayment]:
        self._uow._in_block()
        return self._uow._load_all(
            SCHEDULED_PAYMENTS,
            self._uow._sql.scheduled_for_invoice,
            (_partner_key(partner_id), str(_fields.entity_id("invoice_id", invoice_id, InvoiceId))),
        )

    @checked_arguments
    def save(self, scheduled: ScheduledPayment) -> ScheduledPayment:
        self._uow._in_block()
        _require(scheduled, ScheduledPayment, "scheduled")
        return self._uow._save(SCHEDULED_PAYMENTS, scheduled)


@checked_constructor
class SqlOutbox(Outbox):
    def __init__(self, uow: SqlUnitOfWork[Any]) -> None:
        self._uow = uow

    @checked_arguments
    def pending(self, limit: int = DEFAULT_PAGE_SIZE) -> list[OutboxMessage]:
        self._uow._in_block()
        request = PageRequest.parse(limit)
        rows = self._uow._pending_messages(request.limit)
        return [_message(row) for row in rows]

    @checked_arguments
    def mark_published(self, positions: Iterable[int]) -> None:
        self._uow._in_block()
        self._uow._mark_published(positions)


E = TypeVar("E", CustomerStatus, AccessRequestStatus, InvoiceStatus)


def _status(value: object, cls: type[E], path: str) -> E:
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in cls)
        raise ValidationError.single(
            path, "invalid_choice", f"'{path}' must be one of {choices} (got {shown(value)})"
        ) from None


def _require(value: object, cls: type[Any], path: str) -> None:
    if not isinstance(value, cls):
        raise ValidationError.single(
            path,
            "wrong_type",
            f"'{path}' must be {_fields.class_label(cls)} (got {type(value).__name__})",
        )


def _prefix_successor(prefix: str) -> str | None:
    """The least string greater than every string that starts with
    ``prefix`` (by code point), or ``None`` when there is none."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if 0xD800 <= code <= 0xDFFF:
            code = 0xE000  # surrogates cannot be stored; skip past them
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None
