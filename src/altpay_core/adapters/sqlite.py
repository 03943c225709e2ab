"""The SQLite adapter: the embedded default, on the standard library's sqlite3.

Keep the data in a file (or in a throwaway database, for tests and notebooks)::

    from altpay_core.adapters.sqlite import SqliteStore

    with SqliteStore("altpay.db") as store:
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            uow.commit()

The store creates its schema on first open and migrates an older one
forward (the schema's version is the database's ``user_version``). It
refuses, before changing anything in it, a file that is not an altpay-core
database (one with a schema of its own and ``user_version`` 0, a negative
``user_version``, or without the tables of its ``user_version``): the store
needs a file of its own. It refuses too an altpay-core database holding
tables of your own named as tables that a later migration creates, which it
could not upgrade. A file database runs in WAL mode: readers never wait
for the writer, and several threads and processes may share the file (a
URI with a ``vfs`` that keeps other processes out, or takes no locks, is
refused, and so are one with ``nolock`` or ``immutable`` set, and one with
``cache=shared``, in which SQLite never waits for a lock).
``":memory:"`` (as text or a path object) gives a private, throwaway
database that every unit of work of the store shares, deleted when the
store closes: a file of its own in a new temporary directory, so that it
behaves exactly as a file does (SQLite's in-memory databases hold every
reader off while a writer writes, and have no WAL).

Each unit of work has a connection of its own. It checks every save at once
against the latest commit (a new aggregate's id only as its row is
written) and keeps the rows in memory; it writes them (one
``executemany`` per statement) at commit, before a read that must see them,
and every 2,000 saves, in a ``BEGIN IMMEDIATE`` transaction: that waits, up
to ``timeout`` seconds, for another writer to finish (one of the same store
in the same thread, which could never finish meanwhile, is refused at once
with :class:`~altpay_core.errors.AltpayError`), and then the database
checks each row again (``UPDATE ... WHERE version = ?``, primary keys,
unique indexes), so a writer that committed in between is caught, not
overwritten. The rules between aggregates (a customer's tags in its
partner's catalog, a tag taken out of a catalog carried by no customer, no
new customer added by hand to a partner that syncs customers, a new
invoice's customer stored and not archived, a new payment's stored
customer not archived, its payer one of its users and its saved method
active in the customer's stored book, an access request resolved by
one who may, a first payment methods book's customer stored) are checked in that
transaction too, at commit, while no other writer can change what they read.

Conflicts: a version that is no longer current, an id or external reference
already taken (an ``IntegrityError`` from the database, also when it is
found only at commit), and a database that stays locked by another writer
for longer than ``timeout`` ("database is locked"; as a unit of work or a
connection begins, and as the store opens, too) all raise
:class:`~altpay_core.errors.ConcurrencyConflict` with nothing written; the
driver's error, if any, is its ``__cause__``. Read again and retry.

``outbox.pending()`` takes the write lock too, until the unit of work ends:
publishers take turns, and never list the same message.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil
import sqlite3
import tempfile
import time
import weakref
from typing import Any, ClassVar, Final
from urllib.parse import parse_qsl, quote, unquote

from altpay_core import _fields
from altpay_core._arguments import checked_arguments, checked_constructor
from altpay_core.adapters._sql import (
    Dialect,
    Migration,
    Row,
    SchemaVersionError,
    SqlStore,
    SqlUnitOfWork,
    Statements,
    ascii_lower,
    check_migrations,
    clash_refusal,
    version_refusal,
)
from altpay_core.errors import AltpayError, ConcurrencyConflict, ValidationError, shown

__all__ = ["MIGRATIONS", "SchemaVersionError", "SqliteStore", "SqliteUnitOfWork"]

SQLITE = Dialect(
    param="?",
    unpublished="published = 0",
    published="1",
    # json_extract alone would fail the whole statement on data that is no
    # JSON, and give a member that is text unquoted: both come as NULL.
    member=(
        "CASE WHEN json_valid(data) AND json_type(data, '$.{0}') IN ('array', 'object')"
        " THEN json_extract(data, '$.{0}') END"
    ),
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "partners, customers with their users and tags, access requests, the outbox",
        (
            """CREATE TABLE partners (
                id TEXT PRIMARY KEY,
                version INTEGER NOT NULL,
                data TEXT NOT NULL
            )""",
            """CREATE TABLE customers (
                id TEXT PRIMARY KEY,
                version INTEGER NOT NULL,
                partner_id TEXT NOT NULL,
                company_key TEXT NOT NULL,
                status TEXT NOT NULL,
                ext_system TEXT,
                ext_id TEXT,
                data TEXT NOT NULL
            )""",
            # Listing: by company name then id, within a partner.
            "CREATE INDEX customers_by_company ON customers (partner_id, company_key, id)",
            # C10: one customer that is not archived per external reference.
            """CREATE UNIQUE INDEX customers_by_external_ref
                ON customers (partner_id, ext_system, ext_id)
                WHERE status <> 'archived' AND ext_system IS NOT NULL""",
            """CREATE TABLE customer_users (
                customer_id TEXT NOT NULL,
                email_key TEXT NOT NULL,
                partner_id TEXT NOT NULL,
                PRIMARY KEY (customer_id, email_key)
            ) WITHOUT ROWID""",
            # One index serves both look-ups by email: within a partner
            # (email_key, partner_id) and across partners (email_key).
            "CREATE INDEX customer_users_by_email ON customer_users (email_key, partner_id)",
            """CREATE TABLE customer_tags (
                customer_id TEXT NOT NULL,
                tag_id TEXT NOT NULL,
                partner_id TEXT NOT NULL,
                PRIMARY KEY (customer_id, tag_id)
            ) WITHOUT ROWID""",
            "CREATE INDEX customer_tags_by_tag ON customer_tags (partner_id, tag_id)",
            """CREATE TABLE access_requests (
                id TEXT PRIMARY KEY,
                version INTEGER NOT NULL,
                partner_id TEXT NOT NULL,
                status TEXT NOT NULL,
                requested_at TEXT NOT NULL,
                data TEXT NOT NULL
            )""",
            """CREATE INDEX access_requests_by_date
                ON access_requests (partner_id, requested_at, id)""",
            # AUTOINCREMENT: positions only ever grow, even past deleted rows.
            """CREATE TABLE outbox (
                position INTEGER PRIMARY KEY AUTOINCREMENT,
                topic TEXT NOT NULL,
                partner_id TEXT NOT NULL,
                aggregate_id TEXT NOT NULL,
                occurred_at TEXT NOT NULL,
                payload TEXT NOT NULL,
                published INTEGER NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX outbox_pending ON outbox (position) WHERE published = 0",
        ),
    ),
    Migration(
        2,
        "invoices, payments with their allocations, payment methods, scheduled payments",
        (
            # sort_key: the due date (ISO), a space and the number, so that
            # one range on it serves the listing's order, due-date ranges and
            # "overdue as of a date", on whichever index the filters pick.
            """CREATE TABLE invoices (
                id TEXT PRIMARY KEY,
                version INTEGER NOT NULL,
                partner_id TEXT NOT NULL,
                customer_id TEXT NOT NULL,
                number TEXT NOT NULL,
                sort_key TEXT NOT NULL,
                status TEXT NOT NULL,
                ext_system TEXT,
                ext_id TEXT,
                data TEXT NOT NULL
            )""",
            # Numbers are unique per partner, whatever the status.
            "CREATE UNIQUE INDEX invoices_by_number ON invoices (partner_id, number)",
            """CREATE UNIQUE INDEX invoices_by_external_ref
                ON invoices (partner_id, ext_system, ext_id)
                WHERE ext_system IS NOT NULL""",
            "CREATE INDEX invoices_by_due_date ON invoices (partner_id, sort_key, id)",
            """CREATE INDEX invoices_by_customer
                ON invoices (partner_id, customer_id, sort_key, id)""",
            # By status, and overdue: open, with a key below a date.
            "CREATE INDEX invoices_by_status ON invoices (partner_id, status, sort_key, id)",
            """CREATE TABLE payments (
                id TEXT PRIMARY KEY,
                version INTEGER NOT NULL,
                partner_id TEXT NOT NULL,
                customer_id TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                status TEXT NOT NULL,
                data TEXT NOT NULL
            )""",
            """CREATE UNIQUE INDEX payments_by_idempotency_key
                ON payments (partner_id, idempotency_key)""",
            # One row per invoice a payment pays; created_at is the payment's,
            # so that the index gives "payments of an invoice" in their order.
            """CREATE TABLE payment_allocations (
                payment_id TEXT NOT NULL,
                invoice_id TEXT NOT NULL,
                partner_id TEXT NOT NULL,
                created_at TEXT NOT NULL,
                PRIMARY KEY (payment_id, invoice_id)
            ) WITHOUT ROWID""",
            """CREATE INDEX payment_allocations_by_invoice
                ON payment_allocations (partner_id, invoice_id, created_at, payment_id)""",
            # One book of saved methods per customer, keyed by the customer.
            """CREATE TABLE payment_methods (
                customer_id TEXT PRIMARY KEY,
                version INTEGER NOT NULL,
                partner_id TEXT NOT NULL,
                data TEXT NOT NULL
            )""",
            """CREATE TABLE scheduled_payments (
                id TEXT PRIMARY KEY,
                version INTEGER NOT NULL,
                partner_id TEXT NOT NULL,
                invoice_id TEXT NOT NULL,
                status TEXT NOT NULL,
                pay_on TEXT NOT NULL,
                data TEXT NOT NULL
            )""",
            """CREATE INDEX scheduled_payments_by_date
                ON scheduled_payments (partner_id, status, pay_on, id)""",
            """CREATE INDEX scheduled_payments_by_invoice
                ON scheduled_payments (partner_id, invoice_id, pay_on, id)""",
        ),
    ),
    Migration(
        3,
        "customers listed by status, and by tag, along an index in their order",
        (
            """CREATE INDEX customers_by_status
                ON customers (partner_id, status, company_key, id)""",
            # A tag's rows carry their customer's sort key, so that listing a
            # tag's customers walks this index in the listing's order.
            "ALTER TABLE customer_tags ADD COLUMN company_key TEXT NOT NULL DEFAULT ''",
            """UPDATE customer_tags SET company_key = COALESCE((
                SELECT c.company_key FROM customers c WHERE c.id = customer_tags.customer_id
            ), '')""",
            # A process that opened the file before this step writes tags
            # without the key: their customer's, which is written first.
            """CREATE TRIGGER customer_tags_company_key AFTER INSERT ON customer_tags
                WHEN NEW.company_key = ''
                BEGIN
                    UPDATE customer_tags SET company_key = COALESCE((
                        SELECT c.company_key FROM customers c WHERE c.id = NEW.customer_id
                    ), '')
                    WHERE customer_id = NEW.customer_id AND tag_id = NEW.tag_id;
                END""",
            """CREATE INDEX customer_tags_by_company
                ON customer_tags (partner_id, tag_id, company_key, customer_id)""",
            "DROP INDEX customer_tags_by_tag",  # this index's prefix
        ),
    ),
    Migration(
        4,
        "invoices and payments keep their currency in a column, which a save may not change",
        (
            # Data that is not JSON (a row changed outside the library) leaves
            # the column '', for the read's row check to refuse that row
            # alone: json_extract would fail the whole step, and every open.
            "ALTER TABLE invoices ADD COLUMN currency TEXT NOT NULL DEFAULT ''",
            """UPDATE invoices SET currency = COALESCE(
                CASE WHEN json_valid(data) THEN json_extract(data, '$.currency') END, ''
            )""",
            "ALTER TABLE payments ADD COLUMN currency TEXT NOT NULL DEFAULT ''",
            """UPDATE payments SET currency = COALESCE(
                CASE WHEN json_valid(data) THEN json_extract(data, '$.currency') END, ''
            )""",
            # A process that opened the file before this step writes new
            # invoices and payments without the column: their data's.
            """CREATE TRIGGER invoices_currency AFTER INSERT ON invoices
                WHEN NEW.currency = ''
                BEGIN
                    UPDATE invoices
                        SET currency = COALESCE(CASE WHEN json_valid(NEW.data)
                            THEN json_extract(NEW.data, '$.currency') END, '')
                        WHERE id = NEW.id;
                END""",
            """CREATE TRIGGER payments_currency AFTER INSERT ON payments
                WHEN NEW.currency = ''
                BEGIN
                    UPDATE payments
                        SET currency = COALESCE(CASE WHEN json_valid(NEW.data)
                            THEN json_extract(NEW.data, '$.currency') END, '')
                        WHERE id = NEW.id;
                END""",
        ),
    ),
    Migration(
        5,
        "one pending access request per email and partner",
        (
            # The email's key is Python's case-folding, which SQL's lower()
            # is not: the rows written before keep NULL (which the read
            # accepts, and no unique index compares), until they are saved
            # again. A file may hold two pending requests of one email from
            # before, which must not fail the step.
            "ALTER TABLE access_requests ADD COLUMN email_key TEXT",
            """CREATE UNIQUE INDEX access_requests_pending_by_email
                ON access_requests (partner_id, email_key)
                WHERE status = 'pending'""",
        ),
    ),
)
"""The schema's history, oldest first: a database at version ``n`` gets
steps ``n + 1`` onwards when a store opens it."""


def migrate(connection: sqlite3.Connection, migrations: tuple[Migration, ...]) -> int:
    """Bring the database's schema up to the latest migration; the version
    it was at. Runs in one ``BEGIN IMMEDIATE`` transaction, so that
    processes opening a new file at once migrate it once. A database at a
    newer version is :class:`SchemaVersionError`, one at a negative version
    :class:`~altpay_core.errors.AltpayError`, both left as they were."""
    latest = check_migrations(migrations)
    found = _schema_version(connection, latest)
    if found == latest:
        return found
    connection.execute("BEGIN IMMEDIATE")
    try:
        found = _schema_version(connection, latest)
        for migration in migrations[found:]:
            for statement in migration.statements:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {migration.version:d}")
        connection.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back already (a full disk, an I/O error):
        # the error to raise is what failed, not the roll-back's.
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
        raise
    return found


def _schema_version(connection: sqlite3.Connection, latest: int) -> int:
    """The database's schema version (its ``user_version``): one newer than
    ``latest`` is :class:`SchemaVersionError`, a negative one (no
    altpay-core database has it) :class:`~altpay_core.errors.AltpayError`."""
    (found,) = connection.execute("PRAGMA user_version").fetchone()
    if found > latest:
        raise SchemaVersionError(found, latest)
    if found < 0:
        raise AltpayError(
            f"the database is not an altpay-core database: {_negative(found)}; "
            "it was left as it was"
        )
    return int(found)


def _negative(version: int) -> str:
    return f"its user_version is {version}, and altpay-core's schema versions are never negative"


_CLASHES: Final = {
    "table": frozenset({"table", "view", "index"}),
    "index": frozenset({"table", "view", "index"}),
    "trigger": frozenset({"trigger"}),
}
"""The kinds of object (``sqlite_master``'s ``type``) whose names a new
table, index or trigger cannot take: tables, views and indexes share one
namespace, triggers have one of their own."""


def check_database(
    connection: sqlite3.Connection, migrations: tuple[Migration, ...], where: str
) -> None:
    """Refuse a database that is not altpay-core's, or is newer than
    ``migrations``, before anything in it changes. A database is altpay-core's
    when it is new (``user_version`` 0 and nothing in its schema) or holds
    every table its migrations create up to its ``user_version`` (tables of
    its own next to them are left alone), and never has a negative
    ``user_version``; one that holds objects of its own named as tables,
    indexes or triggers that later migrations create (in any case of their
    ASCII letters, as SQLite compares names) is refused too, as it cannot be
    upgraded.
    One at a version newer than ``migrations`` that holds at least one of
    the tables they create (a newer altpay-core may have renamed or dropped
    the others), or has an empty schema, is :class:`SchemaVersionError`;
    one that holds none of them is not altpay-core's. Reads
    ``user_version`` and the schema in one read transaction: a store migrating the file at the same
    time is seen before or after, never half way. ``where`` names the file
    in the message."""
    check_migrations(migrations)
    connection.execute("BEGIN")
    try:
        (found,) = connection.execute("PRAGMA user_version").fetchone()
        schema = connection.execute(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        ).fetchall()
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
        raise
    # Its own error if it fails (a lock is a conflict, as the store opens),
    # never a transaction left open for the next statement to trip over.
    connection.execute("ROLLBACK")
    kinds = [(str(kind), str(name)) for kind, name in schema]
    reason = version_refusal(found, "its user_version", kinds, migrations)
    if reason is None:
        clash = clash_refusal(found, kinds, migrations, _CLASHES, ascii_lower)
        if clash is None:
            return
        raise AltpayError(
            f"the database {where} cannot be upgraded: {clash}; SqliteStore left it as it was"
        )
    raise AltpayError(
        f"the database {where} is not an altpay-core database: {reason}; "
        "SqliteStore needs a database file of its own (or a new one), and left this one as it was"
    )


def _path(path: object) -> tuple[str, bool]:
    """The database file's path as plain text (read once from a path
    object), and whether it was given as a path object: text that names a
    file, or ``":memory:"``."""
    is_object = isinstance(path, os.PathLike)
    text = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not isinstance(text, str):
        raise ValidationError.single(
            "path",
            "wrong_type",
            f"'path' must be a file's path as text or a path object (got {type(path).__name__})",
        )
    # No NUL, no lone surrogate: no file has such a name. Plain text from
    # here on: a subclass's own methods could pass a NUL, or a URI's flags.
    text = _fields.query_text("path", text)
    if not text:
        # sqlite3 would open a new, empty private database for each
        # connection: the store's schema and data in one, none in the next.
        raise ValidationError.single(
            "path", "missing", "'path' must name the database file, or be ':memory:'"
        )
    if is_object:
        return text, True  # a file's name, never read as a URI (see SqliteStore)
    if _private_uri(text):
        # As for "": every connection would have a private database of its own.
        raise ValidationError.single(
            "path",
            "invalid_path",
            "'path' must name the database file, or be ':memory:' (got "
            f"{shown(text)}, a URI that sqlite3 opens as an in-memory database of "
            "each connection's, or of this process's alone)",
        )
    if vfs := _unshared_vfs(text):
        # The file would be this process's alone, or written by several
        # processes without locks.
        raise ValidationError.single(
            "path",
            "invalid_path",
            "'path' must name a file that several processes can share (got "
            f"{shown(text)}, a URI whose vfs {shown(vfs)} {_UNSHARED_VFS[vfs]}): "
            "leave out the vfs",
        )
    if flag := _unshared_flag(text):
        # Set true, SQLite would take no locks, or never look for changes.
        raise ValidationError.single(
            "path",
            "invalid_path",
            "'path' must name a file that several processes can share (got "
            f"{shown(text)}, a URI with {flag} set, which {_UNSHARED_FLAGS[flag]}): "
            f"leave out {flag}",
        )
    if _shared_cache(text):
        # In a shared cache SQLite answers "locked" at once, without waiting
        # for the timeout: readers would conflict with a writer of the store.
        raise ValidationError.single(
            "path",
            "invalid_path",
            "'path' must name a file that each connection opens with a cache of "
            f"its own (got {shown(text)}, a URI with cache=shared, in which readers "
            "cannot read while a writer writes, and writers do not wait for each "
            "other): leave out cache=shared",
        )
    return text, False


def _uri_location(text: str) -> str:
    """The file a ``file:`` URI names (its path, the authority, query and
    fragment dropped, percent-escapes decoded)."""
    location = text[len("file:") :].partition("#")[0].partition("?")[0]
    if location.startswith("//"):
        location = "/" + location[2:].partition("/")[2]  # the authority dropped
    return unquote(location)


def _private_uri(text: str) -> bool:
    """Whether SQLite, reading ``text`` as a URI (as builds with URIs on do
    with any name that starts with ``file:``), opens a private in-memory or
    temporary database for each connection: ``file::memory:``, ``file:``
    (no file), ``file:name?mode=memory``; or, with ``vfs=memdb``, an
    in-memory database that no other process sees (the process's
    connections share it if its name starts with ``/``), in which WAL never
    runs."""
    if not text.startswith("file:"):
        return False
    name = _uri_location(text)
    return (
        name in ("", ":memory:")
        or "memory" in _uri_values(text, "mode")
        or "memdb" in _uri_values(text, "vfs")
    )


_UNSHARED_VFS = {
    "unix-excl": "locks the file for this process alone",
    "unix-none": "takes no locks, so that processes would overwrite each other",
    "win32-none": "takes no locks, so that processes would overwrite each other",
    # No shared memory: WAL cannot start on a new file, and an altpay-core
    # file, in WAL mode, cannot even be opened ("unable to open database file").
    "unix-dotfile": (
        "has no shared memory, so that the file cannot run in WAL mode, "
        "where readers never wait for writers"
    ),
}
"""SQLite's vfs through which several processes cannot share a file (or not
in WAL mode), and why."""


def _unshared_vfs(text: str) -> str | None:
    """The vfs of the ``file:`` URI ``text`` through which several processes
    cannot share the file, if it names one (``None`` for any other name)."""
    if not text.startswith("file:"):
        return None
    return next((vfs for vfs in _uri_values(text, "vfs") if vfs in _UNSHARED_VFS), None)


_UNSHARED_FLAGS = {
    "nolock": "takes no locks, so that processes would overwrite each other",
    "immutable": (
        "treats the file as never changing, so that it would never see what other processes write"
    ),
}
"""The ``file:`` URI parameters that, set true, keep several processes from
sharing a file, and why."""


def _unshared_flag(text: str) -> str | None:
    """The parameter of :data:`_UNSHARED_FLAGS` that the ``file:`` URI
    ``text`` sets true, if any (``None`` for any other name). SQLite takes
    ``yes``, ``true`` and ``on`` (in any case) as true, and a number (in
    decimal, or hexadecimal after ``0x``) that starts non-zero; any such
    value is refused, even where an
    earlier one of the same parameter is false."""
    if not text.startswith("file:"):
        return None
    return next(
        (
            flag
            for flag in _UNSHARED_FLAGS
            if any(_uri_true(value) for value in _uri_values(text, flag))
        ),
        None,
    )


def _uri_true(value: str) -> bool:
    """Whether SQLite reads the URI parameter's ``value`` as true
    (``sqlite3_uri_boolean``)."""
    return (value.isascii() and value.lower() in ("yes", "true", "on")) or bool(
        re.match(r"[0-9]*[1-9]|0[xX][0-9a-fA-F]*[1-9a-fA-F]", value)
    )


def _shared_cache(text: str) -> bool:
    """Whether the ``file:`` URI ``text`` asks for SQLite's shared cache
    (``cache=shared``), in which connections of the process share one cache
    and its table locks: SQLite answers "locked" at once, without its busy
    handler, so that a reader conflicts with a writer of the same store, and
    a writer with another instead of waiting."""
    return text.startswith("file:") and "shared" in _uri_values(text, "cache")


def _uri_values(text: str, key: str) -> list[str]:
    """The values of the parameter ``key`` in the ``file:`` URI ``text``'s
    query (percent-escapes decoded)."""
    query = text[len("file:") :].partition("#")[0].partition("?")[2]
    return [value for name, value in parse_qsl(query, keep_blank_values=True) if name == key]


def _absolute(name: str) -> str:
    """The database file's ``name`` (a path, or a ``file:`` URI) with its
    path made absolute against the working directory now."""
    if not name.startswith("file:"):
        return os.path.abspath(name)
    uri, hash_mark, fragment = name[len("file:") :].partition("#")
    location, question_mark, query = uri.partition("?")
    if location.startswith("/"):  # absolute already (or //authority/path)
        return name
    absolute = quote(os.path.abspath(unquote(location)))
    return f"file:{absolute}{question_mark}{query}{hash_mark}{fragment}"


def _without_creating(target: str) -> str:
    """The database file ``target`` (a path, or a ``file:`` URI) as a URI
    that SQLite opens only if the file exists (``mode=rw``, the last of its
    ``mode`` values, which is the one SQLite takes; a ``mode=ro`` URI is
    kept as it is: it creates nothing, and ``rw`` after it is refused)."""
    if not target.startswith("file:"):
        return f"{pathlib.Path(target).as_uri()}?mode=rw"
    if "ro" in _uri_values(target, "mode"):
        return target
    uri, hash_mark, fragment = target.partition("#")
    joint = "&" if "?" in uri else "?"
    return f"{uri}{joint}mode=rw{hash_mark}{fragment}"


def _timeout(timeout: object) -> float:
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 <= timeout <= _MAX_TIMEOUT  # NaN included
    ):
        raise ValidationError.single(
            "timeout",
            "invalid_timeout",
            f"'timeout' must be a number of seconds from 0 to {_MAX_TIMEOUT:,} (got {timeout!r})",
        )
    return float(timeout)


_MAX_TIMEOUT = 86_400


@checked_constructor
class SqliteStore(SqlStore[sqlite3.Connection]):
    """Partners, customers, invoices, payments and the outbox in a SQLite database.

    ``path`` names the database file (created if missing; a relative path
    is resolved as the store opens, whatever the working directory later;
    text that starts with ``file:`` is a SQLite URI, a path object never
    is), or is ``":memory:"`` (text or a path object) for a private,
    throwaway database that every unit of work of this store shares and
    that is deleted at :meth:`close` (a file in a new temporary directory,
    written without waiting for the disk). A URI that SQLite opens as a database private to
    each connection (``file::memory:``, ``mode=memory``), or in memory for
    one process (``vfs=memdb``), is a
    :class:`~altpay_core.errors.ValidationError`; so is one whose ``vfs``
    keeps other processes from sharing the file (``unix-excl``, which locks
    it for one process, and ``unix-none`` and ``win32-none``, which take no
    locks) or from sharing it in WAL mode (``unix-dotfile``, which has no
    shared memory), that sets ``nolock`` (no locks either) or ``immutable`` (the
    file read as never changing, blind to what other processes write), or
    that asks for SQLite's shared cache (``cache=shared``, in
    which a reader conflicts at once with a writer of the same store, and a
    writer with another, without waiting). ``timeout`` is how long a writer
    waits for another one to finish before giving up with
    :class:`~altpay_core.errors.ConcurrencyConflict`; opening the store
    waits so too (to create or migrate the schema, or while another program
    holds the file exclusively), and a store that cannot open so raises
    :class:`~altpay_core.errors.ConcurrencyConflict`, with nothing written
    and no connection left open: retry once the file is free.

    An existing file must be an altpay-core database, at this version or an
    older one (migrated forward as it opens): a file with a schema of its
    own and ``user_version`` 0, a negative ``user_version``, or a
    ``user_version`` without the tables its migrations create (a newer one
    without any of this version's tables), is refused with
    :class:`~altpay_core.errors.AltpayError`, and a newer altpay-core's
    with :class:`SchemaVersionError`, both before anything in the file
    changes; so is, with :class:`~altpay_core.errors.AltpayError`, one
    holding tables (views, indexes) of your own named as tables that a
    later migration creates. So is a file that cannot run in WAL mode
    (through another ``vfs`` without shared memory), with
    :class:`~altpay_core.errors.AltpayError`.

    A store is shared by the threads of a process; each process (a forked
    worker too) opens its own.

    If the file at ``path`` is deleted, moved away or replaced while the
    store is open, each unit of work that begins, and each commit (rolled
    back), raises :class:`~altpay_core.errors.AltpayError` until the file
    is back: nothing is committed into a file no one else reads, nor into
    the replacement, and no new, empty file is created at ``path``.

    >>> from altpay_core import Partner
    >>> with SqliteStore(":memory:") as store:
    ...     with store.unit_of_work() as uow:
    ...         partner = uow.partners.save(Partner.create(name="Northwind IT", country="US"))
    ...         uow.commit()
    ...     with store.unit_of_work() as uow:
    ...         uow.partners.get(partner.id).name
    'Northwind IT'
    """

    migrations: ClassVar[tuple[Migration, ...]] = MIGRATIONS
    """The schema's migrations, oldest first."""
    statements = Statements(SQLITE)

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        text, is_object = _path(path)
        self.timeout = _timeout(timeout)
        super().__init__()
        self._directory: weakref.finalize[Any, Any] | None = None
        self._file: tuple[int, int] | None = None
        """The file's identity (device, inode) as the store opened it (for
        ``":memory:"``, its private file's): every later connection, and
        every commit, must find the same file at the path."""
        if text == ":memory:":  # as text or as a path object
            # Deleted at close(), or when the store is collected or the
            # process exits, by the process that made it only (not by a
            # forked worker as it exits); an open connection keeps reading
            # its file.
            directory = tempfile.mkdtemp(prefix="altpay-")
            self._directory = weakref.finalize(self, _remove_tree, directory, os.getpid())
            self._target = os.path.join(directory, "altpay.db")
            self.path: str | None = None
        else:
            # Resolved now: every connection opens this file, whatever the
            # working directory is when it is made. A path object names a
            # file even if its name starts with "file:": made absolute, it
            # is never read as a URI.
            self._target = os.path.abspath(text) if is_object else _absolute(text)
            self.path = self._target
        connection: sqlite3.Connection | None = None
        try:
            connection = self._connect()
            self._file = _file_key(self._target)
            # First, while nothing in the file has changed: another
            # program's database is refused as it is, not turned to WAL.
            check_database(connection, self.migrations, shown(self._target))
            _use_wal(connection, self.timeout, self._target)
            migrate(connection, self.migrations)
        except BaseException as error:
            if connection is not None:
                connection.close()
            self._remove_directory()
            # A file another writer keeps locked: a conflict, as when a unit
            # of work begins (migrate() has rolled back: nothing is written).
            reason = _locked(error, self.timeout)
            if reason is None:
                raise
            raise ConcurrencyConflict(
                f"{reason}; the store did not open, and nothing was written"
            ) from error
        self._release(connection)

    def _connect(self) -> sqlite3.Connection:
        name = self._target
        if self._file is not None:
            # A later connection: to the file the store opened, never to a
            # new, empty one that SQLite would create where it was deleted.
            self._check_file()
            name = _without_creating(name)
        connection = sqlite3.connect(
            name,
            timeout=self.timeout,
            # A name that starts with "file:" is a URI (see _private_uri),
            # whatever SQLite's build does by default.
            uri=name.startswith("file:"),
            # Autocommit: the unit of work begins and ends its transactions.
            isolation_level=None,
            # A connection serves one unit of work at a time, whichever
            # thread that unit of work runs in.
            check_same_thread=False,
        )
        try:
            # A commit is on disk when it returns, whatever SQLite's build
            # defaults; a throwaway database need not wait for the disk.
            # (The first statement: it fails if another program holds the
            # file exclusively.)
            connection.execute(f"PRAGMA synchronous = {'FULL' if self.path else 'OFF'}")
        except BaseException:
            connection.close()
            raise
        return connection

    def _disconnect(self, connection: sqlite3.Connection) -> None:
        connection.close()

    def _acquire(self) -> sqlite3.Connection:
        # An idle connection keeps reading and writing its file, even once
        # the path names another one, or none. (A closed store says so
        # first: closing deletes a ":memory:" store's file.)
        self._check_open()
        self._check_file()
        return super()._acquire()

    def _check_file(self) -> None:
        """Refuse to go on if the file at the path is no longer the one the
        store opened (deleted, moved or replaced): the store's connections
        would commit into a file that no one else reads, or into another
        database. A ``":memory:"`` store's file is gone once the process that
        opened the store closed it (a forked child's copy of the store cannot
        go on)."""
        if self._file is None or _file_key(self._target) == self._file:
            return
        if self.path is None:
            raise AltpayError(
                "the SqliteStore(':memory:')'s database was deleted (by close() in "
                "the process that opened it, or by hand) while this copy of the "
                "store was open; nothing was written: open a new store"
            )
        raise AltpayError(
            f"the database file {shown(self._target)} was deleted, moved or replaced "
            "while the SqliteStore was open; nothing was written, and the store "
            "refuses every unit of work until the file is back: put it back, or "
            "close the store and open one on the file where it is now"
        )

    @checked_arguments
    def unit_of_work(self) -> SqliteUnitOfWork:
        """A new unit of work on this database (enter it with ``with``)."""
        self._check_open()
        return SqliteUnitOfWork(self)

    @checked_arguments
    def close(self) -> None:
        """Close the idle connections; a file's units of work still open
        keep theirs until they end. A ``":memory:"`` database is deleted: its
        units of work still open refuse every call but ``rollback()`` (an
        :class:`~altpay_core.errors.AltpayError`), rather than write into
        a file that is gone. Safe to call twice."""
        super().close()
        self._remove_directory()

    def _remove_directory(self) -> None:
        directory, self._directory = self._directory, None
        if directory is not None:
            directory()

    def __repr__(self) -> str:
        where = ":memory:" if self.path is None else repr(self.path)
        return f"SqliteStore({where})"


def _use_wal(connection: sqlite3.Connection, timeout: float, target: str) -> None:
    """Switch the file ``target`` to WAL, waiting up to ``timeout`` seconds
    for the stores opening it at the same time; a file that stays in another
    mode (its ``vfs`` has no shared memory, say) is refused with
    :class:`~altpay_core.errors.AltpayError`: readers would wait for
    writers, and a busy file would stop units of work as they begin.

    The switch needs the file to itself, and SQLite answers "database is
    locked" at once, without its busy handler, when another connection
    holds a shared lock on a new file it is switching too (waiting could
    deadlock): the switch is tried again, at growing intervals, and the
    busy error raised after ``timeout`` (the store makes it a conflict).
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            # SQLite answers with the mode it is in: the old one if it cannot switch.
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise AltpayError(
                    f"{shown(target)} cannot run in WAL mode (SQLite keeps its journal "
                    f"mode {shown(str(mode))}), and readers would wait for writers: "
                    "open the file without a vfs that lacks shared memory"
                )
            return
        except sqlite3.OperationalError as error:
            code = getattr(error, "sqlite_errorcode", 0)
            if code & 0xFF not in _BUSY or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _remove_tree(directory: str, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(directory, ignore_errors=True)


_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)

# SQLite keeps its record of which connection holds a file's locks in the
# process's memory, and a forked child inherits it: a child forked while a
# unit of work of its parent held the write lock sees that lock as held by
# one of its own connections, for good, and no connection of the child can
# ever write that file (each write would wait out the timeout, then
# conflict, forever). Such a child is told so at once instead.
_WRITERS: weakref.WeakSet[SqliteUnitOfWork] = weakref.WeakSet()
"""The units of work of this process that hold a file's write lock."""
_LOCKED_AT_FORK: set[tuple[int, int]] = set()
"""The files (device, inode) whose write lock a unit of work of the parent
held when this process was forked (empty in a process not forked so)."""


def _file_key(target: str) -> tuple[int, int] | None:
    """The database file's identity (device, inode), however it is named (a
    path or a ``file:`` URI), or None if there is no such file."""
    name = _uri_location(target) if target.startswith("file:") else target
    try:
        status = os.stat(name)
    except (OSError, ValueError):  # gone
        return None
    return status.st_dev, status.st_ino


def _note_locks_held_at_fork() -> None:
    """In a forked child: note the files whose write lock the parent held."""
    for uow in list(_WRITERS):
        store = uow._store
        key = _file_key(store._target) if isinstance(store, SqliteStore) else None
        if key is not None:
            _LOCKED_AT_FORK.add(key)
    _WRITERS.clear()


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_note_locks_held_at_fork)


@checked_constructor
class SqliteUnitOfWork(SqlUnitOfWork[sqlite3.Connection]):
    """One transaction on a :class:`SqliteStore` (anything else at ``store``
    is a :class:`~altpay_core.errors.ValidationError`, ``wrong_type``)."""

    _errors = (sqlite3.Error,)

    def __init__(self, store: SqliteStore) -> None:
        _fields.argument("store", store, SqliteStore, "a SqliteStore")
        super().__init__(store)

    def _in_block(self) -> None:
        super()._in_block()
        store = self._store
        if isinstance(store, SqliteStore) and store.path is None:
            # A throwaway database is deleted at close(): a unit of work still
            # open would read and commit into a file that is gone. (On a
            # file, it keeps its connection until it ends.)
            store._check_open()

    def _fetch(self, connection: sqlite3.Connection, sql: str, params: Row) -> list[Row]:
        return connection.execute(sql, params).fetchall()

    def _execute_many(self, connection: sqlite3.Connection, sql: str, rows: list[Row]) -> int:
        return connection.executemany(sql, rows).rowcount

    def _begin_write(self, connection: sqlite3.Connection) -> None:
        store = self._store
        if (
            _LOCKED_AT_FORK
            and isinstance(store, SqliteStore)
            and _file_key(store._target) in _LOCKED_AT_FORK
        ):
            raise AltpayError(
                f"this process cannot write {shown(store._target)}: it was forked "
                "while a unit of work of its parent held the file's write lock, and "
                "SQLite's record of that lock stays in this process for good; fork "
                "workers outside a writing unit of work, or start them with "
                "multiprocessing's 'spawn' or 'forkserver' method"
            )
        connection.execute("BEGIN IMMEDIATE")
        _WRITERS.add(self)

    def _end(self, connection: sqlite3.Connection, commit: bool) -> None:
        store = self._store
        if commit and isinstance(store, SqliteStore):
            # Before the commit: the file may have gone since the transaction
            # began (the roll-back follows, as for any failed commit).
            store._check_file()
        try:
            if connection.in_transaction:
                connection.execute("COMMIT" if commit else "ROLLBACK")
        finally:
            # Once the lock is free: a fork meanwhile still finds it held.
            _WRITERS.discard(self)

    def _reusable(self, connection: sqlite3.Connection) -> bool:
        return not connection.in_transaction

    def _conflict(self, error: Exception) -> str | None:
        if isinstance(error, sqlite3.IntegrityError):
            return f"a unique key is taken ({error})"
        store = self._store
        return _locked(error, store.timeout if isinstance(store, SqliteStore) else 0)


def _locked(error: BaseException, timeout: float) -> str | None:
    """Why ``error`` is a conflict if it is SQLite's "database is locked"
    (busy or locked, after waiting ``timeout`` seconds), else ``None``."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(error, sqlite3.Error) and isinstance(code, int) and code & 0xFF in _BUSY:
        return f"the database stayed locked by another writer for over {timeout:g} s"
    return None
