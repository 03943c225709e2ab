"""The PostgreSQL adapter, on psycopg 3 (``pip install 'altpay-core[postgres]'``).

::

    from altpay_core.adapters.postgres import PostgresStore

    with PostgresStore("postgresql://app@db.example/billing") as store:
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            uow.commit()

The store creates its tables on first open and migrates older ones forward
(the schema's version is kept in the ``altpay_schema`` table), in the first
schema of the connection's ``search_path``: to keep them in a schema of
their own, create it and name it in the connection string
(``...?options=-csearch_path%3Dbilling``). It refuses, before changing
anything in it, a schema that is not altpay-core's (objects of its own and
no ``altpay_schema`` table, an ``altpay_schema`` of another shape, a
negative version, version 0 next to objects of its own, or a version
without its tables): the store needs a schema of its own, or a new one. It
refuses too an altpay-core schema holding objects of your own named as the
tables, indexes, functions or triggers that a later migration creates,
which it could not upgrade.
Migrations run under an advisory lock, so servers starting at once migrate
once: one that opens while another migrates waits for it, whatever the
connection's ``lock_timeout`` and ``statement_timeout``.

Each unit of work has a connection of its own. It checks every save at once
against the latest commit (a new aggregate's id only as its row is
written) and keeps the rows in memory; it writes them (one
``executemany`` per statement, pipelined by psycopg) at commit, before a
read that must see them, and every 2,000 saves, in a ``READ COMMITTED``
transaction in which the database checks each row again: ``UPDATE ... WHERE
version = %s`` changes nothing if another writer committed in between, and
the primary keys and the unique indexes (C10, invoice numbers and
references, idempotency keys, pending access requests' emails) refuse a
taken id or key. Either way, and on a serialization failure, a deadlock
or a wait for another writer's lock longer than the connection's
``lock_timeout`` (as ``SqliteStore``'s ``timeout``), the whole unit of work is rolled back and
:class:`~altpay_core.errors.ConcurrencyConflict` raised, with the driver's
error as its ``__cause__``. A wait cut off by ``statement_timeout`` is
psycopg's ``QueryCanceled``, after the same roll-back: PostgreSQL reports
it as it reports a user's cancel, so set a ``lock_timeout`` shorter than
the ``statement_timeout`` to have such waits end as conflicts. A unit of
work that would begin to write while another of the same store holds its
write transaction open in the same thread, and so wait for it forever, is
refused at once with :class:`~altpay_core.errors.AltpayError`.

The rules between aggregates are checked at commit, in that transaction: a
tagged customer's partner, the partner of a new customer added by hand or
of a resolved access request, the customer of each new invoice, new
payment or new payment methods book, and the payment methods book of a new
payment's customer when the payment names a saved method (after the
customers), are read ``FOR SHARE`` (a partner's row before its
customers' are written), so that a writer that would change them (delete
a tag, connect an integration that syncs customers, demote a Sub-Admin,
archive the customer or the method) waits for the commit, and one that holds them
already is waited for, and its commit read; a partner saved without some
tags looks for customers still carrying them after its ``UPDATE``, which
holds the partner's row.

Outbox positions come from an identity column. Every commit that writes
outbox rows first takes one transaction-scoped advisory lock, held until it
commits, so positions are taken in commit order and a publisher reading
``pending()`` never sees a gap fill in later. ``pending()`` locks the rows
it lists until the unit of work ends (``FOR UPDATE SKIP LOCKED``), so
publishers running at the same time share the messages, never list one
twice.

An idle connection that the server ended meanwhile is replaced when a unit
of work takes it (its socket is readable: the server said goodbye), and
when a unit of work uses it with no transaction open on it (between its
commits or its reads).
"""

from __future__ import annotations

import re
import select
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, Final

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
    check_migrations,
    clash_refusal,
    created_tables,
    listed,
    version_refusal,
)
from altpay_core.errors import AltpayError, ValidationError, shown

if TYPE_CHECKING:
    import psycopg

__all__ = ["MIGRATIONS", "PostgresStore", "PostgresUnitOfWork", "SchemaVersionError"]

POSTGRES = Dialect(
    param="%s",
    unpublished="NOT published",
    published="TRUE",
    member="data->'{0}'",
    claim=" FOR UPDATE SKIP LOCKED",
    share=" FOR SHARE",
)

# Advisory lock keys (64-bit): "altpay" followed by a number per use.
OUTBOX_LOCK = 0x616C_7470_6179_0001
MIGRATION_LOCK = 0x616C_7470_6179_0002

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "partners, customers with their users and tags, access requests, the outbox",
        (
            # Keys sort by code point (COLLATE "C"), as the listing's cursors
            # and the other adapters do, whatever the database's locale.
            """CREATE TABLE partners (
                id text COLLATE "C" PRIMARY KEY,
                version integer NOT NULL,
                data jsonb NOT NULL
            )""",
            """CREATE TABLE customers (
                id text COLLATE "C" PRIMARY KEY,
                version integer NOT NULL,
                partner_id text COLLATE "C" NOT NULL,
                company_key text COLLATE "C" NOT NULL,
                status text NOT NULL,
                ext_system text COLLATE "C",
                ext_id text COLLATE "C",
                data jsonb NOT NULL
            )""",
            "CREATE INDEX customers_by_company ON customers (partner_id, company_key, id)",
            # C10: one customer that is not archived per external reference.
            """CREATE UNIQUE INDEX customers_by_external_ref
                ON customers (partner_id, ext_system, ext_id)
                WHERE status <> 'archived' AND ext_system IS NOT NULL""",
            """CREATE TABLE customer_users (
                customer_id text COLLATE "C" NOT NULL,
                email_key text COLLATE "C" NOT NULL,
                partner_id text COLLATE "C" NOT NULL,
                PRIMARY KEY (customer_id, email_key)
            )""",
            "CREATE INDEX customer_users_by_email ON customer_users (email_key, partner_id)",
            """CREATE TABLE customer_tags (
                customer_id text COLLATE "C" NOT NULL,
                tag_id text COLLATE "C" NOT NULL,
                partner_id text COLLATE "C" NOT NULL,
                PRIMARY KEY (customer_id, tag_id)
            )""",
            "CREATE INDEX customer_tags_by_tag ON customer_tags (partner_id, tag_id)",
            """CREATE TABLE access_requests (
                id text COLLATE "C" PRIMARY KEY,
                version integer NOT NULL,
                partner_id text COLLATE "C" NOT NULL,
                status text NOT NULL,
                requested_at timestamptz NOT NULL,
                data jsonb NOT NULL
            )""",
            """CREATE INDEX access_requests_by_date
                ON access_requests (partner_id, requested_at, id)""",
            """CREATE TABLE outbox (
                position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                topic text NOT NULL,
                partner_id text COLLATE "C" NOT NULL,
                aggregate_id text COLLATE "C" NOT NULL,
                occurred_at timestamptz NOT NULL,
                payload jsonb NOT NULL,
                published boolean NOT NULL DEFAULT false
            )""",
            "CREATE INDEX outbox_pending ON outbox (position) WHERE NOT published",
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
                id text COLLATE "C" PRIMARY KEY,
                version integer NOT NULL,
                partner_id text COLLATE "C" NOT NULL,
                customer_id text COLLATE "C" NOT NULL,
                number text COLLATE "C" NOT NULL,
                sort_key text COLLATE "C" NOT NULL,
                status text NOT NULL,
                ext_system text COLLATE "C",
                ext_id text COLLATE "C",
                data jsonb NOT NULL
            )""",
            # Numbers are unique per partner, whatever the status.
            "CREATE UNIQUE INDEX invoices_by_number ON invoices (partner_id, number)",
            """CREATE UNIQUE INDEX invoices_by_external_ref
                ON invoices (partner_id, ext_system, ext_id)
                WHERE ext_system IS NOT NULL""",
            "CREATE INDEX invoices_by_due_date ON invoices (partner_id, sort_key, id)",
            """CREATE INDEX invoices_by_customer
                ON invoices (partner_id, customer_id, sort_key, id)""",
            "CREATE INDEX invoices_by_status ON invoices (partner_id, status, sort_key, id)",
            """CREATE TABLE payments (
                id text COLLATE "C" PRIMARY KEY,
                version integer NOT NULL,
                partner_id text COLLATE "C" NOT NULL,
                customer_id text COLLATE "C" NOT NULL,
                idempotency_key text COLLATE "C" NOT NULL,
                status text NOT NULL,
                data jsonb NOT NULL
            )""",
            """CREATE UNIQUE INDEX payments_by_idempotency_key
                ON payments (partner_id, idempotency_key)""",
            """CREATE TABLE payment_allocations (
                payment_id text COLLATE "C" NOT NULL,
                invoice_id text COLLATE "C" NOT NULL,
                partner_id text COLLATE "C" NOT NULL,
                created_at timestamptz NOT NULL,
                PRIMARY KEY (payment_id, invoice_id)
            )""",
            """CREATE INDEX payment_allocations_by_invoice
                ON payment_allocations (partner_id, invoice_id, created_at, payment_id)""",
            """CREATE TABLE payment_methods (
                customer_id text COLLATE "C" PRIMARY KEY,
                version integer NOT NULL,
                partner_id text COLLATE "C" NOT NULL,
                data jsonb NOT NULL
            )""",
            """CREATE TABLE scheduled_payments (
                id text COLLATE "C" PRIMARY KEY,
                version integer NOT NULL,
                partner_id text COLLATE "C" NOT NULL,
                invoice_id text COLLATE "C" NOT NULL,
                status text NOT NULL,
                pay_on date NOT NULL,
                data jsonb NOT NULL
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
            """ALTER TABLE customer_tags
                ADD COLUMN company_key text COLLATE "C" NOT NULL DEFAULT ''""",
            """UPDATE customer_tags t SET company_key = c.company_key
                FROM customers c WHERE c.id = t.customer_id""",
            # A server that opened the schema before this step writes tags
            # without the key: their customer's, which is written first.
            """CREATE FUNCTION customer_tags_company_key() RETURNS trigger
                LANGUAGE plpgsql AS $$
                BEGIN
                    SELECT c.company_key INTO NEW.company_key
                        FROM customers c WHERE c.id = NEW.customer_id;
                    NEW.company_key := COALESCE(NEW.company_key, '');
                    RETURN NEW;
                END $$""",
            """CREATE TRIGGER customer_tags_company_key BEFORE INSERT ON customer_tags
                FOR EACH ROW WHEN (NEW.company_key = '')
                EXECUTE FUNCTION customer_tags_company_key()""",
            """CREATE INDEX customer_tags_by_company
                ON customer_tags (partner_id, tag_id, company_key, customer_id)""",
            "DROP INDEX customer_tags_by_tag",  # this index's prefix
        ),
    ),
    Migration(
        4,
        "invoices and payments keep their currency in a column, which a save may not change",
        (
            "ALTER TABLE invoices ADD COLUMN currency text NOT NULL DEFAULT ''",
            "UPDATE invoices SET currency = COALESCE(data->>'currency', '')",
            "ALTER TABLE payments ADD COLUMN currency text NOT NULL DEFAULT ''",
            "UPDATE payments SET currency = COALESCE(data->>'currency', '')",
            # A server that opened the schema before this step writes new
            # invoices and payments without the column: their data's.
            """CREATE FUNCTION currency_of_data() RETURNS trigger
                LANGUAGE plpgsql AS $$
                BEGIN
                    NEW.currency := COALESCE(NEW.data->>'currency', '');
                    RETURN NEW;
                END $$""",
            """CREATE TRIGGER invoices_currency BEFORE INSERT ON invoices
                FOR EACH ROW WHEN (NEW.currency = '')
                EXECUTE FUNCTION currency_of_data()""",
            """CREATE TRIGGER payments_currency BEFORE INSERT ON payments
                FOR EACH ROW WHEN (NEW.currency = '')
                EXECUTE FUNCTION currency_of_data()""",
        ),
    ),
    Migration(
        5,
        "one pending access request per email and partner",
        (
            # The email's key is Python's case-folding, which SQL's lower()
            # is not: the rows written before keep NULL (which the read
            # accepts, and no unique index compares), until they are saved
            # again. A schema may hold two pending requests of one email from
            # before, which must not fail the step.
            'ALTER TABLE access_requests ADD COLUMN email_key text COLLATE "C"',
            """CREATE UNIQUE INDEX access_requests_pending_by_email
                ON access_requests (partner_id, email_key)
                WHERE status = 'pending'""",
        ),
    ),
)
"""The schema's history, oldest first: a database at version ``n`` gets
steps ``n + 1`` onwards when a store opens it."""


def _psycopg() -> ModuleType:
    try:
        import psycopg
    except ImportError:
        raise ModuleNotFoundError(
            "PostgresStore needs psycopg 3: pip install 'altpay-core[postgres]'",
            name="psycopg",
        ) from None
    return psycopg


# What the first schema of the search_path holds: its relations (not the
# indexes and TOAST tables that belong to them), functions and types of
# their own, as kind ("table" for a table, "function" for a function or
# procedure that takes no arguments, "overload" for one that does) and name.
_SCHEMA_OBJECTS: Final = """
    SELECT CASE WHEN c.relkind IN ('r', 'p') THEN 'table' ELSE 'relation' END, c.relname
        FROM pg_class c
        WHERE c.relnamespace = n.oid AND c.relkind NOT IN ('i', 'I', 't')
    UNION ALL
    SELECT CASE WHEN p.pronargs = 0 THEN 'function' ELSE 'overload' END, p.proname
        FROM pg_proc p WHERE p.pronamespace = n.oid
    UNION ALL
    SELECT 'type', t.typname FROM pg_type t
        WHERE t.typnamespace = n.oid AND t.typrelid = 0 AND t.typcategory <> 'A'
"""

# What else of its own the first schema of the search_path holds that a
# migration's new objects could clash with, as kind and name: its indexes,
# and the triggers on altpay-core's tables (a trigger's name is taken only
# on its own table, and altpay-core's migrations put theirs on altpay-core's
# tables; one of the same name on another of them is refused too, to keep
# this simple).
_MORE_OBJECTS: Final = """
    SELECT 'index', c.relname FROM pg_class c
        WHERE c.relnamespace = n.oid AND c.relkind IN ('i', 'I')
    UNION ALL
    SELECT 'trigger', t.tgname FROM pg_trigger t, pg_class c
        WHERE t.tgrelid = c.oid AND c.relnamespace = n.oid AND NOT t.tgisinternal
        AND c.relname = ANY(%s)
"""

_CLASHES: Final = {
    "table": frozenset({"table", "relation", "type", "index"}),
    "index": frozenset({"table", "relation", "index"}),
    "function": frozenset({"function"}),
    "trigger": frozenset({"trigger"}),
}
"""The kinds of object (``_SCHEMA_OBJECTS``'s and ``_MORE_OBJECTS``'s)
whose names a new table, index, function or trigger cannot take: a table's
or an index's name is taken by any relation (an index is one), and a
table's by a type too (its row type has its name); a function's, which
takes no arguments, by another that takes none (one that takes some is an
overload); a trigger's, by another on its table."""


def check_schema(
    connection: psycopg.Connection[Any], migrations: tuple[Migration, ...]
) -> int | None:
    """The version of the schema the store would create its tables in (the
    first of the ``search_path``), or ``None`` if it is new (holds
    nothing); reads only, in one snapshot (the caller's transaction).

    A schema that holds objects of its own but no ``altpay_schema`` table,
    one whose ``altpay_schema`` is not altpay-core's (not a table of one
    ``integer`` column ``version`` holding one row), whose version is
    negative or lacks the tables its migrations create, whose version is 0
    next to objects of its own, or that holds objects of its own named as
    tables, indexes, functions or triggers that later migrations create, is
    refused with :class:`~altpay_core.errors.AltpayError`; a newer one with
    at least one of the tables ``migrations`` create (or nothing else at
    all) is :class:`SchemaVersionError`."""
    schema, database = connection.execute(
        "SELECT current_schema(), current_database()"
    ).fetchone() or ("", "")
    rows = connection.execute(
        f"SELECT kind, name FROM pg_namespace n, LATERAL ({_SCHEMA_OBJECTS}) o (kind, name) "
        "WHERE n.nspname = current_schema() ORDER BY name",
    ).fetchall()
    objects = [(str(kind), str(name)) for kind, name in rows if name != "altpay_schema"]
    version_table = [str(kind) for kind, name in rows if name == "altpay_schema"]
    if not version_table:
        if not objects:
            return None
        owned = listed([shown(name) for _, name in objects])
        reason = f"it has no altpay_schema table, and it holds {owned} of its own"
    else:
        found, reason = _version(connection, version_table)
        if found is not None:
            refusal = version_refusal(found, "its altpay_schema version", objects, migrations)
            if refusal is None:
                more = connection.execute(
                    f"SELECT kind, name FROM pg_namespace n, LATERAL ({_MORE_OBJECTS}) "
                    "o (kind, name) WHERE n.nspname = current_schema()",
                    (sorted(created_tables(migrations)),),
                ).fetchall()
                mine = objects + [(str(kind), str(name)) for kind, name in more]
                # Compared exactly: the catalog keeps each name as it was
                # created (unquoted ones in lower case, as the migrations'
                # are), and a quoted "INVOICES" of your own is another name.
                clash = clash_refusal(found, mine, migrations, _CLASHES)
                if clash is None:
                    return found
                raise AltpayError(
                    f"the schema {shown(schema)} of the database {shown(database)} cannot "
                    f"be upgraded: {clash}; PostgresStore left it as it was"
                )
            reason = refusal
    raise AltpayError(
        f"the schema {shown(schema)} of the database {shown(database)} is not an "
        f"altpay-core database: {reason}; PostgresStore needs a schema of its own "
        "(or a new one), and left this one as it was"
    )


def _version(connection: psycopg.Connection[Any], kinds: list[str]) -> tuple[int | None, str]:
    """The version in the schema's ``altpay_schema`` (``kinds``: what the
    objects of that name are), or ``None`` and why it is not altpay-core's."""
    columns = connection.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
            WHERE a.attrelid = to_regclass(quote_ident(current_schema()) || '.altpay_schema')
            AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"""
    ).fetchall()
    if kinds != ["table"] or [tuple(column) for column in columns] != [("version", "integer")]:
        return None, "its altpay_schema is not a table of one integer column, version"
    versions = connection.execute("SELECT version FROM altpay_schema").fetchall()
    if len(versions) != 1 or versions[0][0] is None:
        return None, f"its altpay_schema table holds {len(versions)} rows, not one version"
    return int(versions[0][0]), ""


_ENCODINGS: Final = ("UTF8", "SQL_ASCII")
"""Database encodings that hold any Unicode text (SQL_ASCII keeps the bytes
as they come, UTF-8 here)."""


def _check_encoding(connection: psycopg.Connection[Any]) -> None:
    """Refuse a database that cannot hold every name and address (a LATIN1
    one refused a Japanese company's name, as if the text were invalid)."""
    row = connection.execute("SHOW server_encoding").fetchone()
    encoding = "" if row is None else str(row[0])
    if encoding not in _ENCODINGS:
        raise ValidationError.single(
            "dsn",
            "database_encoding",
            f"'dsn' names a database in {encoding or 'an unknown encoding'}, which cannot "
            "hold every text the library stores: use a UTF8 database "
            "(CREATE DATABASE ... ENCODING 'UTF8')",
        )


def migrate(connection: psycopg.Connection[Any], migrations: tuple[Migration, ...]) -> int:
    """Bring the schema up to the latest migration, in one transaction under
    an advisory lock (waited for however long another server's migration
    takes, whatever the session's timeouts); the version it was at.

    A schema already at the latest version is only read: a role that may
    not create tables (least privilege, a read-only role, a hot standby)
    opens it all the same. A role that may not read the schema's version
    (``altpay_schema``, the one table opening reads), or create or upgrade
    the tables when they need it, is refused with
    :class:`~altpay_core.errors.AltpayError` saying what to grant, nothing
    changed.
    """
    latest = check_migrations(migrations)
    work = "read"  # what the role was doing, should it lack a privilege
    try:
        with connection.transaction():
            # One snapshot, so that a migration committed meanwhile is seen
            # whole or not at all.
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            found = check_schema(connection, migrations)
        if found == latest:
            return found
        work = _work(found, latest)
        with connection.transaction():
            # Read committed, whatever the session's default: once the lock
            # is taken, the version another server committed is seen.
            connection.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            # Waits as long as another server's migration takes (the lock is
            # the database's, for every schema), and for the tables' locks
            # that writers hold, whatever the session's timeouts: those are
            # for units of work, not for a store that is opening.
            connection.execute("SET LOCAL lock_timeout = 0")
            connection.execute("SET LOCAL statement_timeout = 0")
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            # Again, as another server may have migrated it (or changed it)
            # while this one waited.
            found = check_schema(connection, migrations)
            work = _work(found, latest)
            if found is None:
                connection.execute("CREATE TABLE altpay_schema (version integer NOT NULL)")
                connection.execute("INSERT INTO altpay_schema (version) VALUES (0)")
                found = 0
            for migration in migrations[found:]:
                for statement in migration.statements:
                    connection.execute(statement)
                connection.execute("UPDATE altpay_schema SET version = %s", (migration.version,))
    except (
        _psycopg().errors.InsufficientPrivilege,
        _psycopg().errors.InvalidSchemaName,  # no schema it may use: none selected
    ) as error:
        # Each block was rolled back whole as it ended: nothing changed.
        raise _may_not(connection, work) from error
    return found


def _work(found: int | None, latest: int) -> str:
    """What migrating a schema at version ``found`` does to its tables."""
    return "create" if not found else f"upgrade (from version {found} to {latest})"


def _may_not(connection: psycopg.Connection[Any], work: str) -> AltpayError:
    """The error for a role that may not do ``work`` to the schema's
    tables: PostgreSQL 15 and later give ordinary roles no CREATE on
    ``public``."""
    [(schema, role, path)] = connection.execute(
        "SELECT current_schema(), current_user, current_setting('search_path')"
    ).fetchall()
    if schema is None:
        return AltpayError(
            f"role {role} has no schema to {work} altpay-core's tables in, and nothing was "
            f"changed: no schema of its search_path ({path}) exists, or it may use none "
            f"(USAGE): create one (CREATE SCHEMA altpay AUTHORIZATION {role}; then "
            "'?options=-csearch_path%3Daltpay' in the dsn), or grant it USAGE and CREATE on "
            "one of them"
        )
    return AltpayError(
        f"role {role} may not {work} altpay-core's tables in schema {schema}, and nothing was "
        "changed: grant it what it lacks there (CREATE on the schema to create them, "
        "ownership of the tables to upgrade them, SELECT, INSERT, UPDATE and DELETE on them "
        "to use them), migrate once as a role that may, or give the store a schema of its "
        f"own (CREATE SCHEMA altpay AUTHORIZATION {role}; then "
        "'?options=-csearch_path%3Daltpay' in the dsn). PostgreSQL 15 and later give "
        "ordinary roles no CREATE on schema public"
    )


@checked_constructor
class PostgresStore(SqlStore["psycopg.Connection[Any]"]):
    """Partners, customers, invoices, payments and the outbox in a PostgreSQL database.

    ``dsn`` is a libpq connection string or URI. Opening the store connects
    once, to create or migrate the schema; units of work then take a
    connection each (a few idle ones are kept for the next). A string that
    libpq cannot use, or would read otherwise than written, is a
    :class:`~altpay_core.errors.ValidationError` at ``dsn``
    (``invalid_dsn``) that never shows the password. A schema that is not
    altpay-core's is refused, left as it was, with
    :class:`~altpay_core.errors.AltpayError`, and a newer altpay-core's
    with :class:`SchemaVersionError` (see :func:`check_schema`).
    """

    migrations: ClassVar[tuple[Migration, ...]] = MIGRATIONS
    """The schema's migrations, oldest first."""
    statements = Statements(POSTGRES)

    def __init__(self, dsn: str) -> None:
        dsn = _fields.query_text("dsn", dsn)  # a connection string, as plain text
        self._psycopg = _psycopg()
        super().__init__()
        self.dsn = dsn
        connection = self._connect()
        try:
            _check_encoding(connection)
            migrate(connection, self.migrations)
        except BaseException:
            connection.close()
            raise
        self._release(connection)

    def _connect(self) -> psycopg.Connection[Any]:
        pg = self._psycopg
        try:
            reason = _misread(pg, self.dsn)
            if reason is None:
                # UTF-8 on the wire, whatever PGCLIENTENCODING or the string says.
                connection: psycopg.Connection[Any] = pg.connect(
                    self.dsn, autocommit=True, client_encoding="UTF8"
                )
                # jsonb read as its text, which the reads parse as SQLite's
                # (a ValidationError for JSON that json.loads cannot read,
                # never the driver's error).
                pg.types.json.set_json_loads(_json_text, connection)
                return connection
        except pg.ProgrammingError as error:
            # libpq (or psycopg) could not parse the connection string, and
            # its message may quote it: the password too. Said again without
            # what it quotes, and raised outside this block, so that the
            # driver's error is neither the cause nor the context.
            reason = _without_secrets(str(error).strip())
        except pg.OperationalError as error:
            # libpq refuses an option's value (an sslmode, a port) before
            # it connects, quoting it, and a whole number (keepalives...)
            # as it opens each connection, when it uses that option; any
            # other error is the server's or the network's, and psycopg's own.
            message = str(error).strip()
            number = _NOT_A_NUMBER.search(message)
            if number is not None:
                reason = f"{number[1]} must be a whole number"
            elif not message.startswith(_REFUSED) or message.startswith(_ATTEMPT, len(_REFUSED)):
                raise
            else:
                reason = _without_secrets(message.removeprefix(_REFUSED))
        except UnicodeError:
            # psycopg looks host names up itself, and the resolver's codec
            # refused one (its message may quote a character of it).
            reason = (
                "a host name is not valid (an empty label, one longer than 63 "
                "characters, or a character that no host name may hold)"
            )
        raise ValidationError.single(
            "dsn", "invalid_dsn", f"'dsn' must be a libpq connection string or URI: {reason}"
        )

    def _disconnect(self, connection: psycopg.Connection[Any]) -> None:
        connection.close()

    def _alive(self, connection: psycopg.Connection[Any]) -> bool:
        # An idle connection has nothing to read: if its socket is readable,
        # the server has ended the session (a restart, an administrator,
        # a timeout) and sent its goodbye. A cheap, local check, with no
        # round trip to the server.
        if connection.closed:
            return False
        try:
            return not _readable(connection.fileno())
        except (OSError, ValueError, self._psycopg.Error):
            return False

    @checked_arguments
    def unit_of_work(self) -> PostgresUnitOfWork:
        """A new unit of work on this database (enter it with ``with``)."""
        self._check_open()
        return PostgresUnitOfWork(self)

    def __repr__(self) -> str:
        return "PostgresStore(...)"


_REFUSED: Final = "connection is bad: "
_ATTEMPT: Final = "connection to server"

# libpq and psycopg name what they could not use in quotes: a piece of the
# connection string, which may be the password or hold part of it (a
# percent-encoded token, a word after a password with a space, the whole
# URI), and may hold quotes itself, so that no pairing of them can be
# trusted. Their text is kept up to the first quote that is not one of
# libpq's own around a punctuation mark ('missing "=" after', 'matching "]"
# in', 'separator "=" in'); from there on it is masked.
_OWN_TEXT = re.compile(r"""(?:[^"']|(?:(?<=missing )|(?<=matching )|(?<=separator ))"[=\]]")*""")


def _without_secrets(message: str) -> str:
    """libpq's message on a connection string it cannot use, masked from
    the first piece of the string that it quotes."""
    shown = _OWN_TEXT.match(message)
    kept = "" if shown is None else shown[0]
    return message if kept == message else f'{kept}"..."'


_SWALLOWED = re.compile(r"([a-z_]+)=")
# A port, which libpq always reads as a whole number (one for each host, an
# empty one the default), and which psycopg looks up first, as a service name.
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")
# libpq's message on any other whole number it could not read, for one host
# or for one of several (a line each): the option's name ends a line, after
# the value, which may hold anything.
_NOT_A_NUMBER = re.compile(
    r'invalid integer value "(?:.|\n)*?" for connection option "([a-z_]+)"$', re.M
)
_URI = re.compile(r"postgres(?:ql)?://")


def _misread(pg: ModuleType, dsn: str) -> str | None:
    """Why libpq would read the connection string otherwise than written,
    if it would, so that a piece of the password would be read as another
    option and shown (a host that is not found, a role that does not
    exist): an option with no value takes the next word as its value
    (``host= password=...``), and a URI's user name and password end at
    its first ``@`` and hold no ``/`` (``postgresql://app:p@ss@db/billing``,
    ``postgresql://app:p/ss@db/billing``)."""
    params = pg.conninfo.conninfo_to_dict(dsn)
    uri = _URI.match(dsn)
    if uri is not None:
        # As libpq reads it: a user name and password end at the first "@"
        # or "/" (a "?" does not end them). Another "@" before the query
        # means that an "@" or "/" of theirs was not encoded, and that a
        # piece of the password would be read as a host or a database.
        rest = dsn[uri.end() :]
        stop = next((i for i, char in enumerate(rest) if char in "@/"), len(rest))
        if "@" in rest[stop + 1 :].partition("?")[0]:
            return (
                "its user name and password end at the first '@' or '/', and another "
                "'@' follows (in them, an '@' is written %40 and a '/' %2F)"
            )
        return _not_integer(params)
    keywords = {option.keyword.decode() for option in pg.pq.Conninfo.get_defaults()}
    for key, value in params.items():
        # dbname may hold a whole connection string; a password may hold anything.
        if key in ("dbname", "password") or not isinstance(value, str):
            continue
        word = _SWALLOWED.match(value)
        if word is not None and word[1] in keywords:
            return (
                f"{key} has no value and took the next word as its value "
                f"(an empty value is written {key}='')"
            )
    return _not_integer(params)


def _not_integer(params: dict[str, Any]) -> str | None:
    """Why libpq would refuse the port, if it would: it reads it only while
    connecting, and its message quotes the value, which is a piece of the
    password if the string was mistyped (psycopg's own look-up of it as a
    service name says only that the host cannot be found)."""
    value = params.get("port")
    if value is None or all(
        _INTEGER.fullmatch(piece) or not piece.strip() for piece in str(value).split(",")
    ):
        return None
    return "port must be a whole number, or a list of them, one for each host"


def _json_text(text: str | bytes) -> str | bytes:
    """A ``json`` or ``jsonb`` value as psycopg gives it: its text, unparsed."""
    return text


def _readable(fd: int) -> bool:
    """Whether a socket has data (or an end of file) waiting, without waiting."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)  # pragma: no cover - Windows
    return bool(readable)


@checked_constructor
class PostgresUnitOfWork(SqlUnitOfWork["psycopg.Connection[Any]"]):
    """One transaction on a :class:`PostgresStore` (anything else at ``store``
    is a :class:`~altpay_core.errors.ValidationError`, ``wrong_type``)."""

    def __init__(self, store: PostgresStore) -> None:
        _fields.argument("store", store, PostgresStore, "a PostgresStore")
        super().__init__(store)
        pg = store._psycopg
        self._pg_errors: tuple[type[Exception], ...] = (pg.Error,)
        errors = pg.errors
        self._taken = errors.UniqueViolation
        self._races = (errors.SerializationFailure, errors.DeadlockDetected)
        self._waited = errors.LockNotAvailable  # the connection's lock_timeout ran out
        self._idle = pg.pq.TransactionStatus.IDLE

    @property
    def _errors(self) -> tuple[type[Exception], ...]:
        return self._pg_errors

    def _fetch(self, connection: psycopg.Connection[Any], sql: str, params: Row) -> list[Row]:
        return connection.execute(sql, params).fetchall()

    def _execute_many(self, connection: psycopg.Connection[Any], sql: str, rows: list[Row]) -> int:
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)
            return cursor.rowcount

    def _begin_write(self, connection: psycopg.Connection[Any]) -> None:
        # Whatever the session's default: the checks at commit read what
        # other writers committed, which a snapshot would hide.
        connection.execute("BEGIN ISOLATION LEVEL READ COMMITTED")

    def _end(self, connection: psycopg.Connection[Any], commit: bool) -> None:
        if connection.info.transaction_status != self._idle:
            connection.execute("COMMIT" if commit else "ROLLBACK")

    def _before_outbox(self, connection: psycopg.Connection[Any]) -> None:
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (OUTBOX_LOCK,))

    def _reusable(self, connection: psycopg.Connection[Any]) -> bool:
        return not connection.closed and connection.info.transaction_status == self._idle

    def _conflict(self, error: Exception) -> str | None:
        if isinstance(error, self._taken):
            return "a unique key is taken (another writer stored the same id or reference)"
        if isinstance(error, self._races):
            return "another writer changed the same rows at the same time"
        if isinstance(error, self._waited):
            return "another writer held the rows for longer than the connection's lock_timeout"
        # Not QueryCanceled: a statement_timeout that cuts a lock wait off
        # and a user's cancel share its SQLSTATE, and its messages are in
        # the server's language; lock_timeout is the one for conflicts.
        return None
