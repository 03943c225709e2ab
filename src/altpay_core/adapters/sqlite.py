"""The SQLite adapter: the embedded default, on the standard library's sqlite3.

Keep the data in a file (or in memory, for tests and notebooks)::

    from altpay_core.adapters.sqlite import SqliteStore

    with SqliteStore("altpay.db") as store:
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            uow.commit()

The store creates its schema on first open and migrates an older one
forward (the schema's version is the database's ``user_version``). A file
database runs in WAL mode: readers never wait for the writer, and several
threads and processes may share the file. ``":memory:"`` gives a private
in-memory database that every unit of work of the store shares (SQLite's
``memdb``); there a writer holds readers off while it writes.

Each unit of work has a connection of its own. It checks every save at once
against the latest commit and keeps the rows in memory; it writes them (one
``executemany`` per statement) at commit, before a read that must see them,
and every 2,000 saves, in a ``BEGIN IMMEDIATE`` transaction: that waits, up
to ``timeout`` seconds, for another writer to finish, and then the database
checks each row again (``UPDATE ... WHERE version = ?``, primary keys,
unique indexes), so a writer that committed in between is caught, not
overwritten.

Conflicts: a version that is no longer current, an id or external reference
already taken (an ``IntegrityError`` from the database, also when it is
found only at commit), and a database that stays locked by another writer
for longer than ``timeout`` ("database is locked") all raise
:class:`~altpay_core.errors.ConcurrencyConflict` with nothing written; the
driver's error, if any, is its ``__cause__``. Read again and retry.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from typing import ClassVar

from altpay_core.adapters._sql import (
    Dialect,
    Migration,
    Row,
    SchemaVersionError,
    SqlStore,
    SqlUnitOfWork,
    Statements,
    check_migrations,
)

__all__ = ["MIGRATIONS", "SchemaVersionError", "SqliteStore", "SqliteUnitOfWork"]

SQLITE = Dialect(
    param="?",
    unpublished="published = 0",
    published="1",
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
)
"""The schema's history, oldest first: a database at version ``n`` gets
steps ``n + 1`` onwards when a store opens it."""

# The memdb VFS (SQLite 3.36+) shares a named in-memory database between the
# connections of a process with ordinary locking, so that the busy timeout
# works as it does for a file; a shared cache would answer "table is locked"
# at once instead of waiting.
_MEMDB = sqlite3.sqlite_version_info >= (3, 36, 0)


def migrate(connection: sqlite3.Connection, migrations: tuple[Migration, ...]) -> int:
    """Bring the database's schema up to the latest migration; the version
    it was at. Runs in one ``BEGIN IMMEDIATE`` transaction, so that
    processes opening a new file at once migrate it once."""
    latest = check_migrations(migrations)
    (found,) = connection.execute("PRAGMA user_version").fetchone()
    if found > latest:
        raise SchemaVersionError(found, latest)
    if found == latest:
        return int(found)
    connection.execute("BEGIN IMMEDIATE")
    try:
        (found,) = connection.execute("PRAGMA user_version").fetchone()
        if found > latest:
            raise SchemaVersionError(found, latest)
        for migration in migrations[found:]:
            for statement in migration.statements:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {migration.version:d}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return int(found)


class SqliteStore(SqlStore[sqlite3.Connection]):
    """Customers, partners and the outbox in a SQLite database.

    ``path`` names the database file (created if missing), or is
    ``":memory:"`` for a private in-memory database that every unit of work
    of this store shares and that lives until :meth:`close`. ``timeout`` is
    how long a writer waits for another one to finish before giving up with
    :class:`~altpay_core.errors.ConcurrencyConflict`.

    A store is shared by the threads of a process; each process (a forked
    worker too) opens its own.

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
        super().__init__()
        self.timeout = timeout
        self._keeper: sqlite3.Connection | None = None
        if isinstance(path, str) and path == ":memory:":
            name = f"altpay-{uuid.uuid4().hex}"
            self._target = (
                f"file:/{name}?vfs=memdb" if _MEMDB else f"file:{name}?mode=memory&cache=shared"
            )
            self._uri = True
            self.path: str | None = None
        else:
            self._target = os.fspath(path)
            self._uri = False
            self.path = self._target
        connection = self._connect()
        try:
            if self.path is not None:
                connection.execute("PRAGMA journal_mode = WAL")
            migrate(connection, self.migrations)
        except BaseException:
            connection.close()
            raise
        if self.path is None:
            # An in-memory database lives as long as a connection to it.
            self._keeper = connection
        else:
            self._release(connection)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self._target,
            timeout=self.timeout,
            # Autocommit: the unit of work begins and ends its transactions.
            isolation_level=None,
            # A connection serves one unit of work at a time, whichever
            # thread that unit of work runs in.
            check_same_thread=False,
            uri=self._uri,
        )
        # A commit is on disk when it returns, whatever SQLite's build defaults.
        connection.execute("PRAGMA synchronous = FULL")
        return connection

    def _disconnect(self, connection: sqlite3.Connection) -> None:
        connection.close()

    def unit_of_work(self) -> SqliteUnitOfWork:
        """A new unit of work on this database (enter it with ``with``)."""
        return SqliteUnitOfWork(self)

    def close(self) -> None:
        super().close()
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.close()

    def __repr__(self) -> str:
        where = ":memory:" if self.path is None else repr(self.path)
        return f"SqliteStore({where})"


_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class SqliteUnitOfWork(SqlUnitOfWork[sqlite3.Connection]):
    """One transaction on a :class:`SqliteStore`."""

    _errors = (sqlite3.Error,)

    def _fetch(self, connection: sqlite3.Connection, sql: str, params: Row) -> list[Row]:
        return connection.execute(sql, params).fetchall()

    def _execute_many(self, connection: sqlite3.Connection, sql: str, rows: list[Row]) -> int:
        return connection.executemany(sql, rows).rowcount

    def _begin_write(self, connection: sqlite3.Connection) -> None:
        connection.execute("BEGIN IMMEDIATE")

    def _end(self, connection: sqlite3.Connection, commit: bool) -> None:
        if connection.in_transaction:
            connection.execute("COMMIT" if commit else "ROLLBACK")

    def _reusable(self, connection: sqlite3.Connection) -> bool:
        return not connection.in_transaction

    def _conflict(self, error: Exception) -> str | None:
        if isinstance(error, sqlite3.IntegrityError):
            return f"a unique key is taken ({error})"
        code = getattr(error, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _BUSY:
            store = self._store
            timeout = store.timeout if isinstance(store, SqliteStore) else 0
            return f"the database stayed locked by another writer for over {timeout:g} s"
        return None
