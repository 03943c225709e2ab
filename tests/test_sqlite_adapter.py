"""The SQLite adapter: the contract suite on a file and in memory, and what is
SQLite's own (schema migrations, WAL, an index behind every query, locking,
several processes)."""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import os
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, cast
from urllib.parse import quote

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from altpay_core import services
from altpay_core.adapters import _sql as sql_module
from altpay_core.adapters import sqlite as sqlite_adapter
from altpay_core.adapters._sql import Migration, SchemaVersionError, check_migrations
from altpay_core.adapters.memory import MemoryStore
from altpay_core.adapters.sqlite import MIGRATIONS, SqliteStore, SqliteUnitOfWork
from altpay_core.customer import (
    AccessRequest,
    Customer,
    CustomerDraft,
    CustomerStatus,
    CustomerUser,
)
from altpay_core.errors import (
    AltpayError,
    ConcurrencyConflict,
    InvariantViolation,
    NotFound,
    ValidationError,
    shown,
)
from altpay_core.events import Event
from altpay_core.invoice import Invoice, InvoiceStatus, LineItem
from altpay_core.money import Money
from altpay_core.partner import Partner, Role
from altpay_core.payment import (
    CustomerPaymentMethods,
    Payment,
    ScheduledPayment,
    ScheduledPaymentId,
    pay_invoices,
)
from altpay_core.ports import OutboxMessage
from altpay_core.testing import contracts
from altpay_core.values import (
    Address,
    CustomerId,
    EmailAddress,
    ExternalRef,
    InvoiceId,
    PartnerId,
    PaymentMethodId,
    TagId,
)

# -- the contract suite, on a file and in memory --------------------------------------


class SqliteFile:
    """A new database file per store, in the test's temporary directory."""

    tmp_path: Path

    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def make_store(self) -> SqliteStore:
        return SqliteStore(self.tmp_path / f"{uuid.uuid4().hex}.db")

    def break_next_commit(self, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        break_outbox_write(monkeypatch)


class SqliteMemory(SqliteFile):
    """A new throwaway database per store (``":memory:"``)."""

    def make_store(self) -> SqliteStore:
        return SqliteStore(":memory:")


def break_outbox_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next commit fail after the aggregates' rows are written and
    before their events are."""
    original = SqliteUnitOfWork._write_outbox
    broken: list[bool] = []

    def write_outbox(uow: SqliteUnitOfWork, connection: sqlite3.Connection) -> None:
        if not broken:
            broken.append(True)
            changed = connection.execute("SELECT count(*) FROM customers").fetchone()[0]
            raise contracts.InjectedFailure(f"after writing ({changed} customers)")
        original(uow, connection)

    monkeypatch.setattr(SqliteUnitOfWork, "_write_outbox", write_outbox)


class TestFilePartners(SqliteFile, contracts.PartnerRepositoryContract): ...


class TestFileCustomers(SqliteFile, contracts.CustomerRepositoryContract): ...


class TestFileAccessRequests(SqliteFile, contracts.AccessRequestRepositoryContract): ...


class TestFileUnitOfWork(SqliteFile, contracts.UnitOfWorkContract): ...


class TestFileOutbox(SqliteFile, contracts.OutboxContract): ...


class TestFileConcurrency(SqliteFile, contracts.ConcurrencyContract): ...


class TestFileRoundTrip(SqliteFile, contracts.RoundTripContract): ...


class TestFileInvoices(SqliteFile, contracts.InvoiceRepositoryContract): ...


class TestFilePayments(SqliteFile, contracts.PaymentRepositoryContract): ...


class TestFilePaymentMethods(SqliteFile, contracts.PaymentMethodRepositoryContract): ...


class TestFileScheduledPayments(SqliteFile, contracts.ScheduledPaymentRepositoryContract): ...


def test_the_bulk_saves_of_the_contract_write_a_batch_before_the_commit() -> None:
    # So that the contract's bulk tests see saves written before the one
    # they check, not all still in memory.
    assert contracts.UnitOfWorkContract.bulk_saves > sql_module.BATCH_SIZE


class TestMemoryPartners(SqliteMemory, contracts.PartnerRepositoryContract): ...


class TestMemoryCustomers(SqliteMemory, contracts.CustomerRepositoryContract): ...


class TestMemoryAccessRequests(SqliteMemory, contracts.AccessRequestRepositoryContract): ...


class TestMemoryUnitOfWork(SqliteMemory, contracts.UnitOfWorkContract): ...


class TestMemoryOutbox(SqliteMemory, contracts.OutboxContract): ...


class TestMemoryConcurrency(SqliteMemory, contracts.ConcurrencyContract): ...


class TestMemoryRoundTrip(SqliteMemory, contracts.RoundTripContract): ...


class TestMemoryInvoices(SqliteMemory, contracts.InvoiceRepositoryContract): ...


class TestMemoryPayments(SqliteMemory, contracts.PaymentRepositoryContract): ...


class TestMemoryPaymentMethods(SqliteMemory, contracts.PaymentMethodRepositoryContract): ...


class TestMemoryScheduledPayments(SqliteMemory, contracts.ScheduledPaymentRepositoryContract): ...


# -- helpers ---------------------------------------------------------------------------

ADDRESS = Address("1 Main St", "Albany", "NY", "12207", "US")


def new_partner() -> Partner:
    return Partner.create(name="Northwind IT", country="US").add_tag(name="VIP", colour="#AA0000")


def new_customer(
    partner: Partner,
    company: str = "Globex",
    email: str = "ann@globex.example",
    ref: ExternalRef | None = None,
) -> Customer:
    return Customer(
        id=CustomerId.new(),
        partner_id=partner.id,
        company=company,
        address=ADDRESS,
        users=(CustomerUser.new(first_name="Ann", last_name="Lee", email=email),),
        external_ref=ref,
    )


def created(partner: Partner, company: str = "Globex") -> Customer:
    draft = CustomerDraft.start(partner).enter_details(company=company, address=ADDRESS)
    return draft.add_user(first_name="Ann", last_name="Lee", email="ann@globex.example").create()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "altpay.db"


@pytest.fixture
def store(path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(path) as store:
        yield store


def stored(store: SqliteStore, partner: Partner, *customers: Customer) -> list[Customer]:
    with store.unit_of_work() as uow:
        uow.partners.save(partner)
        saved = [uow.customers.save(c) for c in customers]
        uow.commit()
    return saved


def in_thread(work: Callable[[], Any]) -> Any:
    """What ``work`` returns, run in a thread of its own as another writer
    would be (units of work of one store nested in one thread may not begin
    to write while the outer one holds its transaction open); or what it
    raised."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((work(), None))
        except BaseException as error:  # handed to the caller
            outcome.append((None, error))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    ((result, error),) = outcome
    if error is not None:
        raise error
    return result


TODAY = dt.date(2026, 3, 2)


def new_invoice(
    partner: Partner,
    customer: Customer,
    number: str = "1001",
    due: dt.date = TODAY,
    ref: ExternalRef | None = None,
) -> Invoice:
    return Invoice(
        id=InvoiceId.new(),
        partner_id=partner.id,
        customer_id=customer.id,
        number=number,
        currency=partner.currency,
        issue_date=due - dt.timedelta(days=30),
        due_date=due,
        lines=(LineItem("Managed support", 1, Money("100.00", partner.currency)),),
        external_ref=ref,
    )


def pay(
    partner: Partner, customer: Customer, invoices: list[Invoice], key: str
) -> tuple[Payment, tuple[Invoice, ...]]:
    return pay_invoices(
        partner,
        customer,
        invoices,
        payer=customer.users[0],
        method="ach",
        idempotency_key=key,
        amounts={invoice.id: "10.00" for invoice in invoices},
    )


@contextlib.contextmanager
def traced(uow: Any) -> Iterator[list[str]]:
    """The SQL statements ``uow`` runs inside the block, in order."""
    seen: list[str] = []
    connection = uow._conn()
    connection.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        connection.set_trace_callback(None)


def save_all(store: SqliteStore, *aggregates: Any) -> list[Any]:
    """Save each aggregate with the repository of its kind, in one unit of work."""
    with store.unit_of_work() as uow:
        saved = [repository(uow, a).save(a) for a in aggregates]
        uow.commit()
    return saved


def repository(uow: Any, aggregate: Any) -> Any:
    kinds = {
        Partner: uow.partners,
        Customer: uow.customers,
        AccessRequest: uow.access_requests,
        Invoice: uow.invoices,
        Payment: uow.payments,
        CustomerPaymentMethods: uow.payment_methods,
        ScheduledPayment: uow.scheduled_payments,
    }
    return kinds[type(aggregate)]


def tables(connection: sqlite3.Connection) -> set[str]:
    rows = connection.execute("SELECT name FROM sqlite_schema WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


def _every_table() -> set[str]:
    """The tables of a database at the latest schema."""
    connection = sqlite3.connect(":memory:", isolation_level=None)
    sqlite_adapter.migrate(connection, MIGRATIONS)
    names = tables(connection) - {"sqlite_sequence"}
    connection.close()
    return names


def _every_object() -> list[str]:
    """The names of the tables, indexes and triggers of a database at the
    latest schema."""
    connection = sqlite3.connect(":memory:", isolation_level=None)
    sqlite_adapter.migrate(connection, MIGRATIONS)
    names = connection.execute(
        "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
    ).fetchall()
    connection.close()
    return [name for (name,) in names]


# -- the schema and its migrations ----------------------------------------------------

# Takes a file at version 5 back to 4, with its data.
UNDO_STEP_5 = """DROP INDEX access_requests_pending_by_email;
    ALTER TABLE access_requests DROP COLUMN email_key;
    PRAGMA user_version = 4;"""

# Takes a file at version 4 back to 3, with its data.
UNDO_STEP_4 = (
    UNDO_STEP_5
    + """DROP TRIGGER invoices_currency;
    DROP TRIGGER payments_currency;
    ALTER TABLE invoices DROP COLUMN currency;
    ALTER TABLE payments DROP COLUMN currency;
    PRAGMA user_version = 3;"""
)


class TestMigrations:
    def test_the_objects_a_step_creates_are_read_from_its_statements(self) -> None:
        # As a subclass's own steps may spell them: in any case, quoted,
        # IF NOT EXISTS; other statements create nothing.
        steps = [
            Migration(
                1,
                "every spelling",
                (
                    "CREATE TABLE plain (x)",
                    'create table if not exists "Quoted" (x)',
                    "  CREATE UNIQUE INDEX `by_x` ON plain (x)",
                    "CREATE INDEX IF NOT EXISTS [by_y] ON plain (y)",
                    "CREATE TRIGGER t AFTER INSERT ON plain BEGIN SELECT 1; END",
                    "CREATE FUNCTION f() RETURNS integer AS 'SELECT 1' LANGUAGE sql",
                    "ALTER TABLE plain ADD COLUMN y",
                    "INSERT INTO plain VALUES (1)",
                ),
            )
        ]
        assert sql_module.created_objects(steps) == {
            ("table", "plain"),
            ("table", "Quoted"),
            ("index", "by_x"),
            ("index", "by_y"),
            ("trigger", "t"),
            ("function", "f"),
        }
        assert sql_module.created_tables(steps) == {"plain", "Quoted"}

    def test_a_new_file_gets_the_latest_schema(self, store: SqliteStore, path: Path) -> None:
        with sqlite3.connect(path) as connection:
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            assert version == len(MIGRATIONS)
            assert {
                "partners",
                "customers",
                "customer_users",
                "customer_tags",
                "access_requests",
                "outbox",
                "invoices",
                "payments",
                "payment_allocations",
                "payment_methods",
                "scheduled_payments",
            } <= tables(connection)

    def test_a_database_at_schema_1_migrates_to_the_latest_keeping_its_data(
        self, path: Path
    ) -> None:
        class First(SqliteStore):
            migrations = MIGRATIONS[:1]

        partner = new_partner()
        with First(path) as old:
            (customer,) = stored(old, partner, created(partner))
            with pytest.raises(sqlite3.OperationalError, match="no such table"):
                old.unit_of_work().__enter__()._query("SELECT 1 FROM invoices", ())
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA user_version").fetchone() == (1,)
        with SqliteStore(path) as new:
            with sqlite3.connect(path) as connection:
                assert connection.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
            with new.unit_of_work() as uow:
                assert uow.customers.get(partner.id, customer.id) == customer
                assert uow.partners.get(partner.id) == attrs.evolve(partner, version=1)
                assert [m.event.topic for m in uow.outbox.pending()] == ["customer_created"]
            # The new tables work, next to the old data.
            (invoice,) = save_all(new, new_invoice(partner, customer))
            payment, touched = pay(partner, customer, [invoice], "key-1")
            save_all(new, payment, *touched)
            with new.unit_of_work() as uow:
                assert uow.payments.for_invoice(partner.id, invoice.id)[0].id == payment.id
                assert uow.invoices.get(partner.id, invoice.id).amount_paid == Money("10.00", "USD")

    def test_a_database_at_schema_2_lists_its_tagged_customers_after_migrating(
        self, path: Path
    ) -> None:
        # Version 3 gives the tags' rows their customer's sort key. A file at
        # version 2, with its data: one at 3, its third step undone.
        partner = new_partner()
        vip = partner.tags[0].id
        customers = [
            attrs.evolve(new_customer(partner, name, f"{name}@x.example"), tags=tags)
            for name, tags in (("Zeta", {vip}), ("alpha", {vip}), ("Mid", set()))
        ]
        with SqliteStore(path) as old:
            stored(old, partner, *customers)
        with sqlite3.connect(path) as connection:
            connection.executescript(UNDO_STEP_4)
            connection.executescript(
                """DROP INDEX customers_by_status;
                DROP INDEX customer_tags_by_company;
                DROP TRIGGER customer_tags_company_key;
                ALTER TABLE customer_tags DROP COLUMN company_key;
                CREATE INDEX customer_tags_by_tag ON customer_tags (partner_id, tag_id);
                PRAGMA user_version = 2;"""
            )
        with SqliteStore(path) as new, new.unit_of_work() as uow:
            keys = uow._conn().execute("SELECT company_key FROM customer_tags").fetchall()
            assert sorted(keys) == [("alpha",), ("zeta",)]
            page = uow.customers.list(partner.id, tag=vip)
            assert [c.company for c in page] == ["alpha", "Zeta"]
            assert [c.company for c in uow.customers.list(partner.id, tag=vip, limit=1)] == [
                "alpha"
            ]
            assert [c.company for c in uow.customers.list(partner.id, status="active")] == [
                "alpha",
                "Mid",
                "Zeta",
            ]
        # A process that opened the file at version 2 writes a tag as it
        # knew to, without the key: the database gives it its customer's.
        mid = customers[2]
        with sqlite3.connect(path) as connection:
            connection.execute(
                "INSERT INTO customer_tags (customer_id, tag_id, partner_id) VALUES (?, ?, ?)",
                (str(mid.id), str(vip), str(partner.id)),
            )
            # ... with the customer's data, which the listing compares.
            connection.execute(
                "UPDATE customers SET data = json_set(data, '$.tags', json_array(?)) WHERE id = ?",
                (str(vip), str(mid.id)),
            )
        with SqliteStore(path) as new, new.unit_of_work() as uow:
            tagged = uow.customers.list(partner.id, tag=vip, name_prefix="m")
            assert [c.company for c in tagged] == ["Mid"]

    def test_a_database_at_schema_4_holding_two_pending_requests_of_an_email_migrates(
        self, path: Path
    ) -> None:
        # Version 5 keeps one pending access request per email and partner. A
        # file at version 4 may hold two already (two asking at once): the
        # step keeps them, their email_key NULL, which no index compares.
        partner = new_partner().add_team_member(
            name="Ada", email="ada@northwind.example", role=Role.ADMIN
        )
        admin = partner.team[0]
        dee, eve = (
            AccessRequest.open(partner, email=email, first_name="D", last_name="L")
            for email in ("dee@globex.example", "eve@globex.example")
        )
        with SqliteStore(path) as old:
            save_all(old, partner, dee, eve)
        with sqlite3.connect(path) as connection:
            connection.executescript(UNDO_STEP_5)
            # The second asked as Dee too, in another case.
            connection.execute(
                "UPDATE access_requests SET data = json_set(data, '$.email', ?) WHERE id = ?",
                ("DEE@globex.example", str(eve.id)),
            )
        twice = attrs.evolve(eve, email=EmailAddress("DEE@globex.example"), version=1)
        dee = attrs.evolve(dee, version=1)
        with SqliteStore(path) as new:
            with new.unit_of_work() as uow:
                connection = uow._conn()
                assert connection.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
                found = connection.execute("SELECT email_key FROM access_requests").fetchall()
                assert found == [(None,), (None,)]
                # Both read, as they were.
                assert uow.access_requests.get(partner.id, dee.id) == dee
                assert uow.access_requests.list(partner.id) == sorted(
                    [dee, twice], key=lambda r: (r.requested_at, r.id.value)
                )
                # Found by their data, which holds the email: the oldest, as
                # the list gives it, to someone asking again.
                oldest = uow.access_requests.list(partner.id)[0]
                assert uow.access_requests.pending_for(partner.id, "DEE@globex.example") == oldest
                asked = services.open_access_request(uow, partner.id, email="dee@globex.example")
                assert asked == oldest
                assert uow.access_requests.pending_for(partner.id, "eve@globex.example") is None
            # No key stored to compare with: a third is stored too, as the
            # file's writers before the step would have stored it.
            (third,) = save_all(new, AccessRequest.open(partner, email="Dee@globex.example"))
            with new.unit_of_work() as uow:
                assert uow.access_requests.pending_for(partner.id, "dee@globex.example") == oldest
            # Saved again, a request writes its key: the keyed one is refused
            # next to the third, as two pending requests of one email are.
            with pytest.raises(ConcurrencyConflict) as caught:
                save_all(new, dee)
            assert (caught.value.kind, caught.value.key) == ("access request", dee.email.key)
            # Resolved, each writes its key, and no longer holds it.
            dee, twice = save_all(
                new,
                dee.reject(partner=partner, by=admin),
                twice.reject(partner=partner, by=admin),
            )
            with new.unit_of_work() as uow:
                connection = uow._conn()
                found = connection.execute(
                    "SELECT email_key, status FROM access_requests ORDER BY status"
                ).fetchall()
                assert (
                    found
                    == [("dee@globex.example", "pending")]
                    + [("dee@globex.example", "rejected")] * 2
                )
                pending = uow.access_requests.list(partner.id, status="pending")
                assert pending == [third]
            with pytest.raises(ConcurrencyConflict):
                save_all(new, AccessRequest.open(partner, email="dee@globex.example"))
        # A process that opened the file at version 4 writes a request as it
        # knew to, without the key: NULL, read as a row from before the step.
        with sqlite3.connect(path) as connection:
            connection.execute(
                "UPDATE access_requests SET email_key = NULL WHERE id = ?", (str(third.id),)
            )
        with SqliteStore(path) as new, new.unit_of_work() as uow:
            assert uow.access_requests.get(partner.id, third.id) == third
            assert uow.access_requests.pending_for(partner.id, "DEE@globex.example") == third

    def test_a_database_at_schema_3_gets_the_currency_of_its_invoices_and_payments(
        self, path: Path
    ) -> None:
        # Version 4 keeps an invoice's and a payment's currency in a column,
        # which a save may not change (I2). A file at version 3, with its
        # data: one at 4, its fourth step undone.
        us, ca = new_partner(), Partner.create(name="Maple IT", country="CA")
        with SqliteStore(path) as old:
            (globex,) = stored(old, us, new_customer(us))
            (maple,) = stored(old, ca, new_customer(ca))
            usd, cad = save_all(old, new_invoice(us, globex), new_invoice(ca, maple))
            payment, touched = pay(us, globex, [usd], "key-1")
            payment, usd = save_all(old, payment, *touched)
        with sqlite3.connect(path) as connection:
            connection.executescript(UNDO_STEP_4)
        with SqliteStore(path) as new:
            with new.unit_of_work() as uow:
                connection = uow._conn()
                assert connection.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
                found = connection.execute("SELECT id, currency FROM invoices").fetchall()
                assert sorted(found) == sorted([(str(usd.id), "USD"), (str(cad.id), "CAD")])
                found = connection.execute("SELECT id, currency FROM payments").fetchall()
                assert found == [(str(payment.id), "USD")]
                # Read as they were, their columns agreeing with their data.
                assert uow.invoices.get(us.id, usd.id) == usd
                assert uow.invoices.get(ca.id, cad.id) == cad
                assert uow.payments.get(us.id, payment.id) == payment
            # The upgraded file refuses a save into another currency.
            for aggregate in (usd, payment):
                with pytest.raises(InvariantViolation) as caught:
                    save_all(new, contracts._in_cad(aggregate))
                assert (caught.value.rule, caught.value.path) == ("I2", "currency")
            with new.unit_of_work() as uow:
                assert uow.invoices.get(us.id, usd.id) == usd
                assert uow.payments.get(us.id, payment.id) == payment
        # A process that opened the file at version 3 writes an invoice and a
        # payment as it knew to, without the column: the database fills it in.
        with sqlite3.connect(path) as connection:
            for table, key in (("invoices", usd.id), ("payments", payment.id)):
                columns = [
                    row[1]
                    for row in connection.execute(f"PRAGMA table_info({table})")
                    if row[1] != "currency"
                ]
                names = ", ".join(columns)
                (row,) = connection.execute(
                    f"SELECT {names} FROM {table} WHERE id = ?", (str(key),)
                ).fetchall()
                connection.execute(f"DELETE FROM {table} WHERE id = ?", (str(key),))
                marks = ", ".join("?" * len(columns))
                connection.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", row)
        with SqliteStore(path) as new, new.unit_of_work() as uow:
            assert uow.invoices.get(us.id, usd.id) == usd
            assert uow.payments.get(us.id, payment.id) == payment
            found = uow._conn().execute("SELECT currency FROM invoices ORDER BY currency")
            assert found.fetchall() == [("CAD",), ("USD",)]

    def test_opening_an_older_database_migrates_it(self, path: Path) -> None:
        partner = new_partner()
        with SqliteStore(path) as old:
            (customer,) = stored(old, partner, created(partner))

        class Newer(SqliteStore):
            migrations = (
                *MIGRATIONS,
                Migration(
                    len(MIGRATIONS) + 1,
                    "a table and a column for a later feature",
                    (
                        "CREATE TABLE later (id TEXT PRIMARY KEY)",
                        "ALTER TABLE customers ADD COLUMN note TEXT",
                    ),
                ),
            )

        with Newer(path) as new:
            with sqlite3.connect(path) as connection:
                (version,) = connection.execute("PRAGMA user_version").fetchone()
                assert version == len(MIGRATIONS) + 1
                assert "later" in tables(connection)
                columns = {row[1] for row in connection.execute("PRAGMA table_info(customers)")}
                assert "note" in columns
            with new.unit_of_work() as uow:
                assert uow.customers.get(partner.id, customer.id) == customer
                assert len(uow.outbox.pending()) == 1
        # Opening it again changes nothing.
        with Newer(path):
            pass

    def test_a_database_at_version_0_gets_every_step(self, path: Path) -> None:
        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE unrelated (x)")
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            assert sqlite_adapter.migrate(connection, MIGRATIONS) == 0
        finally:
            connection.close()
        with SqliteStore(path), sqlite3.connect(path) as connection:
            assert {"unrelated", "customers"} <= tables(connection)

    def test_a_new_file_with_only_sqlites_own_tables_is_taken(self, path: Path) -> None:
        # ANALYZE on an empty file leaves sqlite_stat1: SQLite's, not another program's.
        with sqlite3.connect(path) as connection:
            connection.execute("ANALYZE")
            assert tables(connection) == {"sqlite_stat1"}
        with SqliteStore(path) as store, store.unit_of_work() as uow:
            assert uow.customers.list(PartnerId.new()).items == ()

    def test_a_newer_database_is_refused(self, path: Path) -> None:
        with sqlite3.connect(path) as connection:
            connection.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
        with pytest.raises(SchemaVersionError) as caught:
            SqliteStore(path)
        assert caught.value.found == len(MIGRATIONS) + 1
        assert caught.value.known == len(MIGRATIONS)
        assert "upgrade altpay-core" in str(caught.value)

    def test_a_newer_database_is_refused_inside_the_lock(self, path: Path) -> None:
        # Another process migrated further between the first look and the lock.
        connection = sqlite3.connect(path, isolation_level=None)
        older = (Migration(1, "one", ("CREATE TABLE one (x)",)),)
        for then in (2, 5):  # one version newer, and more
            jumps = _VersionJumps(connection, then)
            with pytest.raises(SchemaVersionError) as caught:
                sqlite_adapter.migrate(cast(sqlite3.Connection, jumps), older)
            assert (caught.value.found, caught.value.known) == (then, 1)
        assert not connection.in_transaction
        connection.close()

    def test_a_failing_step_leaves_the_database_as_it_was(self, path: Path) -> None:
        with SqliteStore(path):
            pass
        with pytest.raises(sqlite3.OperationalError):
            Broken(path)
        with sqlite3.connect(path) as connection:
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            assert version == len(MIGRATIONS)
            assert "half" not in tables(connection)

    def test_a_step_the_database_rolled_back_raises_its_own_error(self, path: Path) -> None:
        # As SQLite does on a full disk or an I/O error: the transaction is
        # gone, and the error says what failed, not that nothing is left to
        # roll back.
        class RolledBack(SqliteStore):
            migrations = (
                *MIGRATIONS,
                Migration(
                    len(MIGRATIONS) + 1,
                    "rolled back by the database",
                    ("CREATE TABLE half (x)", "ROLLBACK", "SELECT * FROM no_such_table"),
                ),
            )

        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            RolledBack(path)
        with sqlite3.connect(path) as connection:
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            assert version == 0
        with SqliteStore(path):  # migrates it whole the next time
            pass

    @pytest.mark.parametrize(
        ("version", "schema"),
        [
            (1, "CREATE TABLE users (id)"),
            (len(MIGRATIONS) + 5, "CREATE TABLE users (id)"),  # not "newer altpay-core"
            (-3, "CREATE TABLE users (id)"),  # not "version 3"
            (0, "CREATE TABLE users (id)"),
            (0, "CREATE VIEW numbers AS SELECT 1"),
            (1, ""),  # a version number and nothing else
        ],
    )
    def test_another_programs_database_is_refused_as_it_is(
        self, path: Path, version: int, schema: str
    ) -> None:
        # Before: the store added its tables next to the others, switched the
        # file to WAL and set user_version to its own (saving then failed
        # with "no such table"), or called a newer one altpay-core's.
        with sqlite3.connect(path) as connection:
            if schema:
                connection.execute(schema)
            connection.execute(f"PRAGMA user_version = {version}")
        connection.close()
        before = path.read_bytes()
        with pytest.raises(AltpayError, match="not an altpay-core database") as caught:
            SqliteStore(path)
        assert type(caught.value) is AltpayError
        assert "needs a database file of its own" in str(caught.value)
        assert path.read_bytes() == before
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        connection.close()

    def test_a_database_at_version_0_names_what_it_holds_in_order(self, path: Path) -> None:
        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE zeta (x)")
            connection.execute("CREATE TABLE alpha (x)")
        connection.close()
        with pytest.raises(AltpayError, match="is 0, and it holds 'alpha', 'zeta' of its own"):
            SqliteStore(path)

    def test_a_view_in_place_of_a_table_of_its_version_is_refused(self, path: Path) -> None:
        SqliteStore(path).close()
        with sqlite3.connect(path) as connection:
            connection.execute("DROP TABLE scheduled_payments")
            connection.execute("CREATE VIEW scheduled_payments AS SELECT 1 AS id")
        connection.close()
        with pytest.raises(AltpayError, match="lacks altpay-core's tables scheduled_payments;"):
            SqliteStore(path)

    def test_a_database_without_the_tables_of_its_version_is_refused(self, path: Path) -> None:
        class First(SqliteStore):
            migrations = MIGRATIONS[:1]

        First(path).close()
        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA user_version = 2")
        connection.close()
        with pytest.raises(AltpayError, match="lacks altpay-core's tables invoices,"):
            SqliteStore(path)

    def test_a_row_whose_data_is_not_json_does_not_keep_a_file_at_schema_3_from_opening(
        self, path: Path
    ) -> None:
        # Before: the upgrade's json_extract raised sqlite3's "malformed
        # JSON", so the file never opened. As at version 4, the damaged row
        # is refused when read, and the rest of the file works.
        partner = new_partner()
        with SqliteStore(path) as old:
            (globex,) = stored(old, partner, new_customer(partner))
            damaged, good = save_all(
                old, new_invoice(partner, globex), new_invoice(partner, globex, "1002")
            )
        with sqlite3.connect(path) as connection:
            connection.executescript(UNDO_STEP_4)
            connection.execute(
                "UPDATE invoices SET data = '{not json' WHERE id = ?", (str(damaged.id),)
            )
        connection.close()
        with SqliteStore(path) as new, new.unit_of_work() as uow:
            connection = uow._conn()
            assert connection.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
            found = connection.execute("SELECT id, currency FROM invoices").fetchall()
            assert sorted(found) == sorted([(str(damaged.id), ""), (str(good.id), "USD")])
            assert uow.invoices.get(partner.id, good.id) == good
            with pytest.raises(ValidationError, match="expected a JSON document"):
                uow.invoices.get(partner.id, damaged.id)
        # A process still at version 3 writes such a row: the triggers leave
        # its column empty too, rather than failing the write.
        with sqlite3.connect(path) as connection:
            connection.execute(
                "INSERT INTO invoices (id, version, partner_id, customer_id, number, "
                "sort_key, status, data) VALUES ('i', 1, 'p', 'c', 'n', 'k', 'open', '[')"
            )
            connection.execute(
                "INSERT INTO payments (id, version, partner_id, customer_id, "
                "idempotency_key, status, data) VALUES ('p', 1, 'p', 'c', 'k', 'pending', '[')"
            )
            found = connection.execute(
                "SELECT currency FROM invoices WHERE id = 'i' "
                "UNION ALL SELECT currency FROM payments WHERE id = 'p'"
            ).fetchall()
            assert found == [("",), ("",)]
        connection.close()

    @given(names=st.lists(st.sampled_from("abcdefgh"), max_size=20))
    def test_a_refusal_names_each_object_once(self, names: list[str]) -> None:
        # Before: an overloaded function (an extension's) was named each time:
        # "'citext', 'citext', 'citext', ... and 43 more".
        message = sql_module.listed(names)
        distinct = list(dict.fromkeys(names))
        assert message.split(" and ")[0].split(", ") == (distinct[:5] or [""])
        more = len(distinct) - 5
        assert message.endswith(f" and {more} more") == (more > 0)

    @pytest.mark.parametrize(
        "statement",
        [
            "CREATE TABLE invoices (id)",
            "CREATE VIEW payments AS SELECT 1",
            "CREATE INDEX payment_methods ON partners (id)",
        ],
    )
    def test_a_table_of_your_own_that_a_later_migration_creates_is_refused(
        self, path: Path, statement: str
    ) -> None:
        # Before: the upgrade failed half way with sqlite3's own error
        # ("table invoices already exists").
        class First(SqliteStore):
            migrations = MIGRATIONS[:1]

        First(path).close()
        with sqlite3.connect(path) as connection:
            connection.execute(statement)
        connection.close()
        before = path.read_bytes()
        with pytest.raises(AltpayError, match="cannot be upgraded") as caught:
            SqliteStore(path)
        assert type(caught.value) is AltpayError
        name = statement.split()[2]
        assert (
            f"it holds {shown(name)} of its own, and altpay-core's migrations after its "
            "version 1 create tables of those names: rename them; SqliteStore left it as it was"
        ) in str(caught.value)
        assert path.read_bytes() == before

    @pytest.mark.parametrize(
        ("version", "names", "made"),
        [
            (3, ["invoices_currency"], "triggers"),
            (4, ["access_requests_pending_by_email"], "indexes"),
            (2, ["customer_tags_company_key", "payments_currency"], "triggers"),
            (1, ["invoices", "payments_currency"], "tables and triggers"),
            (2, ["customers_by_status"], "indexes"),
            (
                1,
                ["customers_by_status", "invoices", "invoices_currency"],
                "indexes, tables and triggers",
            ),
        ],
    )
    def test_an_index_or_trigger_of_your_own_that_a_later_migration_creates_is_refused(
        self, path: Path, version: int, names: list[str], made: str
    ) -> None:
        # Before: the upgrade failed half way with sqlite3's own error
        # ("trigger invoices_currency already exists": a file's triggers
        # share one namespace, whatever table they are on; "there is already
        # an index named customers_by_status").
        class Older(SqliteStore):
            migrations = MIGRATIONS[:version]

        Older(path).close()
        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE audit_mine (x TEXT)")
            for name in names:
                if name == "invoices":
                    connection.execute("CREATE TABLE invoices (id)")
                elif name in {"customers_by_status", "access_requests_pending_by_email"}:
                    connection.execute(f"CREATE INDEX {name} ON audit_mine (x)")
                else:
                    connection.execute(
                        f"CREATE TRIGGER {name} AFTER INSERT ON audit_mine BEGIN SELECT 1; END"
                    )
        connection.close()
        before = path.read_bytes()
        with pytest.raises(AltpayError, match="cannot be upgraded") as caught:
            SqliteStore(path)
        assert type(caught.value) is AltpayError
        assert (
            f"it holds {', '.join(shown(name) for name in names)} of its own, and "
            f"altpay-core's migrations after its version {version} create {made} of those "
            "names: rename them; SqliteStore left it as it was"
        ) in str(caught.value)
        assert path.read_bytes() == before

    @pytest.mark.parametrize(
        ("version", "statement", "made"),
        [
            (1, "CREATE TABLE INVOICES (id)", "tables"),
            (1, "CREATE VIEW Payments AS SELECT 1", "tables"),
            (2, "CREATE INDEX CUSTOMERS_BY_STATUS ON audit_mine (x)", "indexes"),
            (
                3,
                "CREATE TRIGGER INVOICES_CURRENCY AFTER INSERT ON audit_mine BEGIN SELECT 1; END",
                "triggers",
            ),
            (
                2,
                "CREATE TRIGGER Payments_Currency AFTER INSERT ON audit_mine BEGIN SELECT 1; END",
                "triggers",
            ),
        ],
    )
    def test_an_object_of_your_own_named_in_another_case_is_refused(
        self, path: Path, version: int, statement: str, made: str
    ) -> None:
        # Before: SQLite's names are equal in any case of their ASCII
        # letters, but the check compared them exactly, and the upgrade
        # failed half way with sqlite3's own error ("table invoices already
        # exists").
        class Older(SqliteStore):
            migrations = MIGRATIONS[:version]

        Older(path).close()
        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE audit_mine (x TEXT)")
            connection.execute(statement)
        connection.close()
        before = path.read_bytes()
        with pytest.raises(AltpayError, match="cannot be upgraded") as caught:
            SqliteStore(path)
        assert type(caught.value) is AltpayError
        name = statement.split()[2]
        assert (
            f"it holds {shown(name)} of its own, and altpay-core's migrations after its "
            f"version {version} create {made} of those names: rename them; "
            "SqliteStore left it as it was"
        ) in str(caught.value)
        assert path.read_bytes() == before

    def test_a_name_that_differs_beyond_ascii_does_not_keep_the_upgrade_back(
        self, path: Path
    ) -> None:
        # SQLite folds only ASCII letters: 'İNVOICES' (Python's lower()
        # makes it 'i̇nvoices') is another table than 'invoices'.
        class First(SqliteStore):
            migrations = MIGRATIONS[:1]

        First(path).close()
        with sqlite3.connect(path) as connection:
            connection.execute('CREATE TABLE "İNVOICES" (x)')
        connection.close()
        assert sql_module.ascii_lower("İNVOICES_Currency") == "İnvoices_currency"
        SqliteStore(path).close()
        with sqlite3.connect(path) as connection:
            names = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
        connection.close()
        assert {"İNVOICES", "invoices"} <= names

    @given(
        version=st.integers(min_value=1, max_value=len(MIGRATIONS) - 1),
        kind=st.sampled_from(["table", "view", "index", "trigger"]),
        name=st.sampled_from(_every_object()),
        spelled=st.sampled_from([str.lower, str.upper, str.title]),
    )
    def test_an_object_of_your_own_is_refused_exactly_when_it_would_fail_the_upgrade(
        self, version: int, kind: str, name: str, spelled: Callable[[str], str]
    ) -> None:
        # Before: a trigger or index of a later step's name failed the
        # upgrade half way with sqlite3's own error; so did one of any kind
        # whose name differs in case only (SQLite's names are equal in any
        # case of their ASCII letters).
        class Older(SqliteStore):
            migrations = MIGRATIONS[:version]

        own = spelled(name)
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "altpay.db"
            Older(path).close()
            with sqlite3.connect(path) as connection:
                if name in {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}:
                    return  # the older schema's own
                connection.execute("CREATE TABLE mine (x)")
                connection.execute(
                    {
                        "table": f"CREATE TABLE {own} (x)",
                        "view": f"CREATE VIEW {own} AS SELECT 1",
                        "index": f"CREATE INDEX {own} ON mine (x)",
                        "trigger": f"CREATE TRIGGER {own} AFTER INSERT ON mine BEGIN SELECT 1; END",
                    }[kind]
                )
            connection.close()
            before = path.read_bytes()
            # What the steps do when run without the check.
            copy = Path(directory) / "copy.db"
            copy.write_bytes(before)
            connection = sqlite3.connect(copy, isolation_level=None)
            try:
                sqlite_adapter.migrate(connection, MIGRATIONS)
                fails = False
            except sqlite3.OperationalError:
                fails = True
            finally:
                connection.close()
            if fails:
                with pytest.raises(AltpayError, match="cannot be upgraded"):
                    SqliteStore(path)
                assert path.read_bytes() == before
            else:
                SqliteStore(path).close()

    def test_a_table_named_as_a_later_trigger_does_not_keep_the_upgrade_back(
        self, path: Path
    ) -> None:
        # Tables and triggers have namespaces of their own.
        class Third(SqliteStore):
            migrations = MIGRATIONS[:3]

        Third(path).close()
        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE invoices_currency (x TEXT)")
        connection.close()
        SqliteStore(path).close()
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        connection.close()

    def test_a_trigger_named_as_a_later_table_does_not_keep_the_upgrade_back(
        self, path: Path
    ) -> None:
        class First(SqliteStore):
            migrations = MIGRATIONS[:1]

        First(path).close()
        with sqlite3.connect(path) as connection:
            connection.execute(
                "CREATE TRIGGER invoices AFTER INSERT ON partners BEGIN SELECT 1; END"
            )
        connection.close()
        SqliteStore(path).close()
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        connection.close()

    @given(
        version=st.integers(min_value=-(2**31), max_value=-1),
        altpay=st.booleans(),
    )
    def test_a_negative_version_is_not_an_altpay_core_database(
        self, version: int, altpay: bool
    ) -> None:
        # Before: migrations[:version] counted from the end, so that another
        # program's file was taken and migrated, and altpay-core's own ran a
        # step again ("index customers_by_status already exists").
        connection = sqlite3.connect(":memory:", isolation_level=None)
        if altpay:
            sqlite_adapter.migrate(connection, MIGRATIONS)
        else:
            connection.execute("CREATE TABLE users (id)")
        connection.execute(f"PRAGMA user_version = {version}")
        with pytest.raises(AltpayError, match="not an altpay-core database") as caught:
            sqlite_adapter.check_database(connection, MIGRATIONS, "'here'")
        assert f"its user_version is {version}," in str(caught.value)
        with pytest.raises(AltpayError, match=f"user_version is {version},") as caught:
            sqlite_adapter.migrate(connection, MIGRATIONS)
        assert type(caught.value) is AltpayError
        assert not connection.in_transaction
        assert connection.execute("PRAGMA user_version").fetchone() == (version,)
        connection.close()

    def test_a_negative_version_found_inside_the_lock_is_refused(self, path: Path) -> None:
        connection = sqlite3.connect(path, isolation_level=None)
        jumps = _VersionJumps(connection, then=-1)
        with pytest.raises(AltpayError, match="user_version is -1,"):
            sqlite_adapter.migrate(cast(sqlite3.Connection, jumps), MIGRATIONS)
        assert not connection.in_transaction
        assert tables(connection) == set()
        connection.close()

    @pytest.mark.parametrize("version", [-1, -3])
    def test_a_file_with_a_negative_version_is_refused_as_it_is(
        self, path: Path, version: int
    ) -> None:
        SqliteStore(path).close()
        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA journal_mode = DELETE")
            connection.execute(f"PRAGMA user_version = {version}")
        connection.close()
        before = path.read_bytes()
        with pytest.raises(AltpayError, match="is not an altpay-core database"):
            SqliteStore(path)
        assert path.read_bytes() == before

    @pytest.mark.parametrize(
        "changes",
        [
            ["ALTER TABLE customer_tags RENAME TO customer_tags_v4"],
            ["DROP TABLE outbox"],
            # All but one of altpay-core's tables gone: still a newer altpay-core's.
            [f"DROP TABLE {name}" for name in sorted(_every_table() - {"partners"})],
        ],
    )
    def test_a_newer_database_without_some_of_todays_tables_is_a_newer_version(
        self, path: Path, changes: list[str]
    ) -> None:
        # Before: a newer migration that renamed or dropped a table made the
        # file "not an altpay-core database".
        SqliteStore(path).close()
        with sqlite3.connect(path) as connection:
            for change in changes:
                connection.execute(change)
            connection.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
        connection.close()
        before = path.read_bytes()
        with pytest.raises(SchemaVersionError) as caught:
            SqliteStore(path)
        assert caught.value.found == len(MIGRATIONS) + 1
        assert path.read_bytes() == before

    def test_a_newer_database_is_refused_before_anything_changes(self, path: Path) -> None:
        # Before: the file was switched to WAL, then refused.
        SqliteStore(path).close()
        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA journal_mode = DELETE")
            connection.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
        connection.close()
        with pytest.raises(SchemaVersionError):
            SqliteStore(path)
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        connection.close()

    def test_stores_opening_a_new_file_at_once_all_open_it(self, tmp_path: Path) -> None:
        # Each sees the file new or migrated, never half way (which would
        # look like another program's database), and it is migrated once.
        for round in range(5):
            path = tmp_path / f"{round}.db"
            start = threading.Barrier(6)
            failures: list[BaseException] = []
            threads = [
                threading.Thread(target=_open_at_once, args=(path, start, failures))
                for _ in range(6)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert failures == []
            with SqliteStore(path) as store:
                stored(store, new_partner())

    def test_switching_to_wal_waits_for_other_openers_then_gives_up(self) -> None:
        # SQLite answers "locked" at once, without its busy handler, to a
        # switch that would deadlock with another opener's: tried again, up
        # to the timeout; any other error at once.
        class Connection:
            def __init__(self, answers: list[int]) -> None:
                self.answers = answers
                self.tries = 0

            def execute(self, sql: str) -> Connection:
                assert sql == "PRAGMA journal_mode = WAL"
                self.tries += 1
                if self.answers:
                    error = sqlite3.OperationalError("database is locked")
                    error.sqlite_errorcode = self.answers.pop(0)
                    raise error
                return self

            def fetchone(self) -> tuple[str]:
                return ("wal",)

        busy = Connection([sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED])
        sqlite_adapter._use_wal(busy, 5.0, "altpay.db")  # type: ignore[arg-type]
        assert busy.tries == 3
        always = Connection([sqlite3.SQLITE_BUSY] * 1000)
        with pytest.raises(sqlite3.OperationalError):
            sqlite_adapter._use_wal(always, 0.01, "altpay.db")  # type: ignore[arg-type]
        assert 1 < always.tries < 1000
        other = Connection([sqlite3.SQLITE_IOERR])
        with pytest.raises(sqlite3.OperationalError):
            sqlite_adapter._use_wal(other, 5.0, "altpay.db")  # type: ignore[arg-type]
        assert other.tries == 1

    def test_migrations_must_be_numbered_in_order(self) -> None:
        assert check_migrations(MIGRATIONS) == len(MIGRATIONS)
        with pytest.raises(ValueError, match="out of order"):
            check_migrations((Migration(2, "two", ()),))


def _open_at_once(path: Path, start: threading.Barrier, failures: list[BaseException]) -> None:
    start.wait()
    try:
        SqliteStore(path, timeout=30).close()
    except BaseException as error:
        failures.append(error)


def _record_connections(monkeypatch: pytest.MonkeyPatch) -> list[sqlite3.Connection]:
    """The connections that the stores open from now on."""
    made: list[sqlite3.Connection] = []
    original = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        made.append(connection := original(*args, **kwargs))
        return connection

    monkeypatch.setattr(sqlite_adapter.sqlite3, "connect", connect)
    return made


def _closed(connection: sqlite3.Connection) -> bool:
    try:
        connection.execute("SELECT 1")
    except sqlite3.ProgrammingError:
        return True
    return False


class Broken(SqliteStore):
    """A store whose next migration fails half way."""

    migrations = (
        *MIGRATIONS,
        Migration(len(MIGRATIONS) + 1, "broken", ("CREATE TABLE half (x)", "NOT SQL")),
    )


class _VersionJumps:
    """A connection whose user_version is 0 at first look and ``then`` (5)
    once locked."""

    def __init__(self, connection: sqlite3.Connection, then: int = 5) -> None:
        self.connection = connection
        self.then = then
        self.looks = 0

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "PRAGMA user_version":
            self.looks += 1
            return self.connection.execute(f"SELECT {0 if self.looks == 1 else self.then}")
        return self.connection.execute(sql, *args)


# -- WAL, indexes, locking -----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "conflict"),
    [
        (sqlite3.SQLITE_BUSY, True),
        (sqlite3.SQLITE_LOCKED, True),
        (261, True),  # SQLITE_BUSY_RECOVERY: the extended codes say which busy
        (517, True),  # SQLITE_BUSY_SNAPSHOT
        (262, True),  # SQLITE_LOCKED_SHAREDCACHE
        (sqlite3.SQLITE_IOERR, False),
        (sqlite3.SQLITE_FULL, False),
    ],
)
def test_a_busy_or_locked_database_of_any_kind_is_a_conflict(code: int, conflict: bool) -> None:
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = code
    reason = sqlite_adapter._locked(error, 5)
    assert reason == (
        "the database stayed locked by another writer for over 5 s" if conflict else None
    )


def test_a_file_database_runs_in_wal_mode(store: SqliteStore, path: Path) -> None:
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert repr(store) == f"SqliteStore({str(path)!r})"


def test_a_commit_to_a_file_waits_for_the_disk_and_a_throwaway_one_does_not() -> None:
    with tempfile.TemporaryDirectory() as directory:
        for where, synchronous in ((os.path.join(directory, "a.db"), 2), (":memory:", 0)):
            with SqliteStore(where) as store, store.unit_of_work() as uow:
                # FULL (2) on a file, OFF (0) for a ":memory:" store's file.
                assert uow._conn().execute("PRAGMA synchronous").fetchone() == (synchronous,)


@pytest.mark.parametrize(
    ("arguments", "path", "code"),
    [
        ({"path": 0}, "path", "wrong_type"),
        ({"path": None}, "path", "wrong_type"),
        ({"path": b"altpay.db"}, "path", "wrong_type"),
        ({"path": "alt\x00pay.db"}, "path", "invalid_text"),
        ({"path": "alt\ud800pay.db"}, "path", "invalid_text"),
        # sqlite3 opens a new private database for every connection of "".
        ({"path": ""}, "path", "missing"),
        # URIs that SQLite opens as a private database per connection too.
        ({"path": "file::memory:"}, "path", "invalid_path"),
        ({"path": "file::memory:?cache=shared"}, "path", "invalid_path"),
        ({"path": "file:%3Amemory%3A"}, "path", "invalid_path"),
        ({"path": "file:"}, "path", "invalid_path"),
        ({"path": "file:altpay.db?mode=memory"}, "path", "invalid_path"),
        ({"path": "file:///tmp/altpay.db?cache=shared&mode=memory"}, "path", "invalid_path"),
        ({"path": "file:altpay.db?vfs=memdb"}, "path", "invalid_path"),
        ({"path": "file:altpay.db?vfs=memdb&mode=rw"}, "path", "invalid_path"),
        # Shared by the process's connections, but in memory: no WAL, and
        # nothing another process commits is seen.
        ({"path": "file:/altpay.db?vfs=memdb"}, "path", "invalid_path"),
        ({"path": "file:///altpay.db?vfs=memdb"}, "path", "invalid_path"),
        ({"path": ":memory:", "timeout": "5"}, "timeout", "invalid_timeout"),
        ({"path": ":memory:", "timeout": -1}, "timeout", "invalid_timeout"),
        ({"path": ":memory:", "timeout": float("nan")}, "timeout", "invalid_timeout"),
        ({"path": ":memory:", "timeout": True}, "timeout", "invalid_timeout"),
        ({"path": ":memory:", "timeout": 10**6}, "timeout", "invalid_timeout"),
    ],
)
def test_arguments_that_name_no_database_are_refused(
    arguments: dict[str, object], path: str, code: str
) -> None:
    # Before: TypeError, ValueError or UnicodeEncodeError from sqlite3.
    with pytest.raises(ValidationError) as caught:
        SqliteStore(**arguments)  # type: ignore[arg-type]
    assert (caught.value.paths, caught.value.codes) == ([path], [code])


@pytest.mark.parametrize(
    "query",
    [
        "vfs=unix-excl",  # the file locked for this process alone
        "vfs=unix%2Dexcl",
        "mode=rwc&vfs=unix-excl",
        "vfs=unix-none",  # no locks: processes would overwrite each other
        "vfs=win32-none",
        "vfs=unix-dotfile",  # no shared memory: no WAL
        "vfs=unix%2Ddotfile",
    ],
)
def test_a_vfs_that_other_processes_cannot_share_the_file_through_is_refused(
    path: Path, query: str
) -> None:
    # Before: unix-excl opened, and then no other process could open the file.
    with pytest.raises(ValidationError) as caught:
        SqliteStore(f"file:{path}?{query}")
    assert (caught.value.paths, caught.value.codes) == (["path"], ["invalid_path"])
    assert "vfs" in str(caught.value)
    assert not path.exists()


@pytest.mark.parametrize(
    ("query", "flag", "why"),
    [
        ("nolock=1", "nolock", "takes no locks"),
        ("nolock=YES", "nolock", "takes no locks"),
        ("mode=rwc&nolock=true", "nolock", "takes no locks"),
        ("nolock=0&nolock=On", "nolock", "takes no locks"),
        ("immutable=1", "immutable", "never see what other processes write"),
        ("immutable=%31", "immutable", "never see what other processes write"),
        ("immutable=2", "immutable", "never see what other processes write"),
    ],
)
def test_a_uri_that_takes_no_locks_or_sees_no_changes_is_refused(
    path: Path, query: str, flag: str, why: str
) -> None:
    # Before: refused only when WAL could not start, with advice about a
    # vfs that the URI did not name.
    with pytest.raises(ValidationError) as caught:
        SqliteStore(f"file:{path}?{query}")
    assert (caught.value.paths, caught.value.codes) == (["path"], ["invalid_path"])
    assert f"a URI with {flag} set, which" in str(caught.value)
    assert why in str(caught.value)
    assert f"): leave out {flag} [invalid_path]" in str(caught.value)
    assert not path.exists()


@pytest.mark.parametrize(
    "query",
    [
        "nolock=0",
        "immutable=off",
        "nolock=no&immutable=FALSE",
        "mode=rwc#part&nolock=1",  # in the fragment, which SQLite ignores: no parameter
    ],
)
def test_a_uri_that_sets_nolock_or_immutable_false_is_taken(path: Path, query: str) -> None:
    with SqliteStore(f"file:{path}?{query}") as store:
        stored(store, new_partner())


def _cased(word: str) -> st.SearchStrategy[str]:
    return st.tuples(*(st.sampled_from([c.lower(), c.upper()]) for c in word)).map("".join)


@given(
    value=st.one_of(
        st.sampled_from(["yes", "true", "on", "no", "false", "off", "", "y", "onn"]).flatmap(
            _cased
        ),
        st.sampled_from(["+1", "-1", " 1", "0.5", "1x", "00", "0x1"]),
        st.tuples(
            st.integers(0, 255),
            st.sampled_from(["{}", "{:03d}", "{}.5", "{}x", "0x{:x}", "0X{:02X}"]),
        ).map(lambda pair: pair[1].format(pair[0])),
    )
)
@example("01").via("a number that starts with a zero")
@example("0x0A").via("a hexadecimal number")
def test_a_uri_value_is_read_as_true_as_sqlite_reads_it(value: str) -> None:
    # SQLite's own reading: an immutable file is opened read-only.
    with tempfile.TemporaryDirectory() as directory:
        name = os.path.join(directory, "x.db")
        sqlite3.connect(name).close()
        connection = sqlite3.connect(f"file:{name}?immutable={quote(value)}", uri=True)
        try:
            connection.execute("CREATE TABLE t (x)")
            read_only = False
        except sqlite3.OperationalError:
            read_only = True
        finally:
            connection.close()
    assert sqlite_adapter._uri_true(value) == read_only


@pytest.mark.parametrize(
    "query",
    ["cache=shared", "cache=%73hared", "mode=rwc&cache=shared", "cache=private&cache=shared"],
)
def test_a_shared_cache_is_refused(path: Path, query: str) -> None:
    # Before: it opened, and in a shared cache SQLite answers "locked" at
    # once, without waiting: a reader conflicted while a unit of work of the
    # same store held the write lock, and a writer gave up at once, saying
    # it had waited the timeout.
    with pytest.raises(ValidationError) as caught:
        SqliteStore(f"file:{path}?{query}")
    assert (caught.value.paths, caught.value.codes) == (["path"], ["invalid_path"])
    assert "cache=shared" in str(caught.value)
    assert not path.exists()


def test_a_private_cache_is_taken(path: Path) -> None:
    partner = new_partner()
    with (
        SqliteStore(f"file:{path}?cache=private", timeout=5) as store,
        store.unit_of_work() as writer,
        store.unit_of_work() as reader,
    ):
        writer.partners.save(partner)
        writer.outbox.pending()  # the write lock taken, the partner written
        with pytest.raises(NotFound):  # the last commit, without waiting
            reader.partners.get(partner.id)


def test_the_default_vfs_by_name_is_taken(path: Path) -> None:
    with SqliteStore(f"file:{path}?vfs=unix") as store:
        stored(store, new_partner())


def test_a_path_object_and_a_whole_timeout_are_taken(path: Path) -> None:
    with SqliteStore(path, timeout=0) as store:
        assert store.path == str(path)
        assert store.timeout == 0.0
    with SqliteStore(path, timeout=86_400) as store:  # a day, the longest
        assert store.timeout == 86_400.0


@pytest.mark.parametrize("name", ["rel.db", "file:rel.db", "file:rel%20x.db?mode=rwc"])
def test_a_relative_path_is_the_file_it_named_when_the_store_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # Before: a connection made after a chdir opened (and created) another
    # file, and a bare sqlite3 error ("no such table") escaped.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    partner = new_partner()
    with SqliteStore(name) as store:
        assert store.path is not None
        assert store.path.removeprefix("file:").startswith(str(tmp_path / "a"))
        stored(store, partner)
        monkeypatch.chdir(tmp_path / "b")
        with store.unit_of_work() as one, store.unit_of_work() as two:
            assert one.partners.get(partner.id) == two.partners.get(partner.id)
    assert list((tmp_path / "b").iterdir()) == []
    assert [p.name for p in (tmp_path / "a").iterdir() if p.suffix == ".db"] == [
        name.removeprefix("file:").partition("?")[0].replace("%20", " ")
    ]


@pytest.mark.parametrize(
    "name",
    [
        "file:abc.db",
        "file:report?mode=memory.db",
        "file::memory:",
        "file:x.db?cache=shared",
        "file:x.db?vfs=unix-excl",
        "file:",
    ],
)
def test_a_path_object_names_a_file_even_one_that_starts_with_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # Before: sqlite3 read it as a URI: Path("file:abc.db") opened abc.db,
    # and Path("file:report?mode=memory.db") raised sqlite3's own error.
    monkeypatch.chdir(tmp_path)
    partner = new_partner()
    with SqliteStore(Path(name)) as store:
        assert store.path == str(tmp_path / name)
        assert repr(store) == f"SqliteStore({str(tmp_path / name)!r})"
        stored(store, partner)
    assert (tmp_path / name).is_file()
    assert {p.name for p in tmp_path.iterdir()} <= {name, f"{name}-wal", f"{name}-shm"}
    with SqliteStore(tmp_path / name) as store, store.unit_of_work() as uow:
        assert uow.partners.get(partner.id).name == partner.name


def test_in_memory_stores_are_separate() -> None:
    partner = new_partner()
    with SqliteStore(":memory:") as one, SqliteStore(":memory:") as two:
        stored(one, partner)
        with one.unit_of_work() as uow:
            assert uow.partners.get(partner.id).name == partner.name
        with two.unit_of_work() as uow, pytest.raises(NotFound):
            uow.partners.get(partner.id)
        assert repr(one) == "SqliteStore(:memory:)"


def test_memory_as_a_path_object_is_a_throwaway_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: sqlite3 opened a new, empty database for each connection.
    monkeypatch.chdir(tmp_path)
    partner = new_partner()
    with SqliteStore(Path(":memory:")) as store:
        assert store.path is None
        assert repr(store) == "SqliteStore(:memory:)"
        stored(store, partner)
        with store.unit_of_work() as one, store.unit_of_work() as two:
            assert one.partners.get(partner.id) == two.partners.get(partner.id)
        directory = Path(store._target).parent
    assert not directory.exists()
    assert list(tmp_path.iterdir()) == []


def test_an_in_memory_store_is_deleted_at_close() -> None:
    partner = new_partner()
    store = SqliteStore(":memory:")
    directory = Path(store._target).parent
    stored(store, partner, created(partner))
    with store.unit_of_work() as uow:
        assert len(uow.customers.list(partner.id)) == 1
    store.close()
    assert not directory.exists()
    store.close()


def test_an_in_memory_store_whose_file_is_deleted_refuses_to_go_on() -> None:
    partner = new_partner()
    with SqliteStore(":memory:") as store:
        stored(store, partner)
        shutil.rmtree(Path(store._target).parent)
        for _ in range(2):  # no new, empty database in its place
            with pytest.raises(AltpayError, match=r"SqliteStore\(':memory:'\)'s database was"):
                stored(store, new_partner())
        assert not Path(store._target).exists()


def _use_after_the_parent_closed(store: SqliteStore, partner: Partner, report: Any) -> None:
    """In a child: wait for the parent to close ``store``, then use it."""
    report.recv()
    try:
        stored(store, created(partner))
    except AltpayError as error:
        report.send(str(error))
    else:
        report.send("written")


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
def test_a_forked_worker_is_told_when_the_parent_closed_its_in_memory_store() -> None:
    partner = new_partner()
    store = SqliteStore(":memory:")
    stored(store, partner)
    context = multiprocessing.get_context("fork")
    here, there = context.Pipe()
    worker = context.Process(target=_use_after_the_parent_closed, args=(store, partner, there))
    worker.start()
    store.close()  # deletes the database, which the worker's copy of the store used
    here.send("closed")
    assert here.poll(60)
    told = here.recv()
    worker.join(60)
    assert worker.exitcode == 0
    assert told.startswith("the SqliteStore(':memory:')'s database was deleted")


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
def test_a_forked_worker_that_exits_leaves_an_in_memory_store_in_place() -> None:
    partner = new_partner()
    with SqliteStore(":memory:") as store:
        stored(store, partner, created(partner))
        worker = multiprocessing.get_context("fork").Process(target=_close_and_exit, args=(store,))
        worker.start()
        worker.join(60)
        assert worker.exitcode == 0
        assert Path(store._target).exists()
        with store.unit_of_work() as one, store.unit_of_work() as two:  # a new connection
            assert one.partners.get(partner.id) == two.partners.get(partner.id)


def _close_and_exit(store: SqliteStore) -> None:
    store.close()
    sys.exit(0)


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
@pytest.mark.parametrize("held", [True, False], ids=["lock held", "lock free"])
def test_a_child_forked_while_its_parent_holds_the_write_lock_is_told_it_cannot_write(
    path: Path, held: bool
) -> None:
    # SQLite's record of the lock is copied into the child, for good: every
    # write of the child waited out the timeout and was a ConcurrencyConflict,
    # forever, even through a store of its own.
    store = SqliteStore(path, timeout=0.5)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    with store.unit_of_work() as uow:
        if held:
            uow.outbox.pending()  # takes the write lock
        worker = context.Process(target=_write_after_a_while, args=(str(path), results))
        worker.start()
    worker.join(60)
    assert worker.exitcode == 0
    outcome = results.get(timeout=5)
    if held:
        assert outcome.startswith("AltpayError: this process cannot write")
        assert "forked while a unit of work of its parent held" in outcome
    else:
        assert outcome == "written"
    with store.unit_of_work() as uow:  # the parent still writes
        uow.partners.save(new_partner())
        uow.commit()
    store.close()


def test_what_a_forked_child_notes_of_its_parents_write_locks(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The at-fork hook, run here as a child runs it: the files whose write
    # lock a unit of work held, however the stores name them (a file:
    # URI's was missed), and not one whose unit of work has ended.
    monkeypatch.setattr(sqlite_adapter, "_LOCKED_AT_FORK", set())
    monkeypatch.setattr(sqlite_adapter, "_WRITERS", weakref.WeakSet())
    store, other = SqliteStore(path), SqliteStore(path.with_name("other.db"))
    by_uri = path.with_name("by uri.db")
    uri = SqliteStore(f"file://{quote(str(by_uri))}?mode=rwc")
    with store.unit_of_work() as held, other.unit_of_work() as ended, uri.unit_of_work() as third:
        for uow in (held, ended, third):
            uow.outbox.pending()
        ended.rollback()
        sqlite_adapter._note_locks_held_at_fork()
        assert {
            sqlite_adapter._file_key(str(path)),
            sqlite_adapter._file_key(str(by_uri)),
        } == sqlite_adapter._LOCKED_AT_FORK
        assert not sqlite_adapter._WRITERS
    more = [SqliteStore(f"file:{path}"), SqliteStore(by_uri)]
    for locked in (store, *more):
        with locked.unit_of_work() as uow, pytest.raises(AltpayError, match="this process cannot"):
            uow.outbox.pending()
        with locked.unit_of_work() as uow, pytest.raises(NotFound):  # reads still work
            uow.partners.get(new_partner().id)
    with other.unit_of_work() as uow:
        assert uow.outbox.pending() == []
    for each in (store, other, uri, *more):
        each.close()


def _write_after_a_while(path: str, results: Any) -> None:
    time.sleep(0.3)  # the parent's unit of work has ended by now
    with SqliteStore(path, timeout=0.5) as mine:
        try:
            with mine.unit_of_work() as uow:
                uow.partners.save(new_partner())
                uow.commit()
        except AltpayError as error:
            results.put(f"{type(error).__name__}: {error}")
        else:
            results.put("written")
        results.close()
        results.join_thread()


def test_an_in_memory_store_that_fails_to_open_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[str] = []
    original = sqlite_adapter.tempfile.mkdtemp

    def directory(**kwargs: Any) -> str:
        made.append(found := original(**kwargs))
        return found

    monkeypatch.setattr(sqlite_adapter.tempfile, "mkdtemp", directory)
    with pytest.raises(sqlite3.OperationalError):
        Broken(":memory:")
    assert made
    assert not Path(made[0]).exists()


@pytest.mark.parametrize("where", ["file", ":memory:"])
def test_a_reader_never_waits_for_a_writer(where: str, path: Path) -> None:
    partner = new_partner()
    target = path if where == "file" else where
    with SqliteStore(target, timeout=0.05) as store, store.unit_of_work() as writer:
        writer.partners.save(partner)
        writer._flush()  # written in the open transaction, which holds the write lock
        assert writer._writing
        with store.unit_of_work() as reader, pytest.raises(NotFound):
            reader.partners.get(partner.id)
        writer.commit()


class TestQueryPlans:
    """Every query the repositories run searches an index: none scans a table."""

    TABLES: ClassVar[str] = (
        "partners|customers|customer_users|customer_tags|access_requests|outbox|invoices"
        "|payments|payment_allocations|payment_methods|scheduled_payments"
    )

    def queries(self, store: SqliteStore, work: Any) -> list[str]:
        with store.unit_of_work() as uow, traced(uow) as seen:
            work(uow)
        # Every statement that can search a table: the writes' WHERE clauses
        # too (a version-checked UPDATE, a child row's DELETE, the outbox's
        # marking). Not BEGIN/COMMIT, nor a trigger's steps ("-- TRIGGER").
        searching = ("SELECT", "WITH", "UPDATE", "DELETE", "INSERT", "REPLACE")
        return [sql for sql in seen if sql.lstrip().upper().startswith(searching)]

    def plan(self, store: SqliteStore, sql: str) -> list[str]:
        with store.unit_of_work() as uow:
            rows = uow._conn().execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
        return [row[3] for row in rows]

    def assert_indexed(self, store: SqliteStore, work: Any, *indexes: str) -> None:
        queries = self.queries(store, work)
        assert queries
        details = []
        for sql in queries:
            plan = self.plan(store, sql)
            # A scan is fine only along an index (the outbox's partial index
            # holds just the pending rows).
            scans = [
                d
                for d in plan
                if re.match(rf"SCAN ({self.TABLES}|[cutiap])\b", d) and "USING" not in d
            ]
            assert not scans, f"{sql}\n{plan}"
            details.extend(plan)
        for index in indexes:
            assert any(index in d for d in details), (index, details)

    @pytest.fixture
    def catalog(self, store: SqliteStore) -> tuple[Partner, list[Customer]]:
        partner = new_partner()
        customers = [
            new_customer(partner, f"Company {n}", f"u{n}@globex.example") for n in range(20)
        ]
        customers[0] = attrs.evolve(
            customers[0],
            external_ref=ExternalRef("xero", "1"),
            tags=frozenset({partner.tags[0].id}),
        )
        # Added by hand before the partner's Xero synced the first one in (C6).
        by_hand = stored(store, partner, *customers[1:])
        with store.unit_of_work() as uow:
            syncing = partner.connect_integration("xero", syncs_customers=True)
            partner = uow.partners.save(attrs.evolve(syncing, version=1))
            synced = uow.customers.save(customers[0])
            uow.commit()
        return partner, [synced, *by_hand]

    def test_get_and_lookups(self, store: SqliteStore, catalog: Any) -> None:
        partner, customers = catalog
        self.assert_indexed(
            store, lambda uow: uow.customers.get(partner.id, customers[0].id), "(id=?)"
        )
        self.assert_indexed(store, lambda uow: uow.partners.get(partner.id), "(id=?)")
        self.assert_indexed(
            store,
            lambda uow: uow.customers.get_by_external_ref(partner.id, ExternalRef("xero", "1")),
            "customers_by_external_ref",
        )

    def test_users_by_email(self, store: SqliteStore, catalog: Any) -> None:
        partner, _ = catalog
        self.assert_indexed(
            store,
            lambda uow: uow.customers.with_user(partner.id, "u3@globex.example"),
            "customer_users_by_email (email_key=? AND partner_id=?)",
        )
        self.assert_indexed(
            store,
            lambda uow: uow.customers.accounts_of("u3@globex.example"),
            "customer_users_by_email (email_key=?)",
        )

    def test_listing_with_every_filter_and_cursor(self, store: SqliteStore, catalog: Any) -> None:
        partner, _ = catalog
        tag = partner.tags[0].id

        def listing(uow: Any) -> None:
            first = uow.customers.list(partner.id, limit=5)
            uow.customers.list(partner.id, limit=5, after=first.end_cursor)
            uow.customers.list(partner.id, limit=5, before=first.end_cursor)
            uow.customers.list(partner.id, name_prefix="comp")

        self.assert_indexed(store, listing, "customers_by_company")

        def by_status(uow: Any) -> None:
            first = uow.customers.list(partner.id, status=CustomerStatus.ACTIVE, limit=5)
            uow.customers.list(partner.id, status="archived", before=first.end_cursor)
            uow.customers.list(partner.id, status=CustomerStatus.ACTIVE, name_prefix="comp")

        self.assert_indexed(store, by_status, "customers_by_status (partner_id=? AND status=?")

        def by_tag(uow: Any) -> None:
            first = uow.customers.list(partner.id, tag=tag, limit=1)
            uow.customers.list(partner.id, tag=tag, after=first.end_cursor)
            uow.customers.list(partner.id, tag=tag, status="active", name_prefix="comp")

        self.assert_indexed(store, by_tag, "customer_tags_by_company (partner_id=? AND tag_id=?")

    def test_the_pending_request_of_an_email(self, store: SqliteStore, catalog: Any) -> None:
        # Along the index of pending emails, for the key and for the rows
        # written before it was kept (NULL): never all the partner's requests.
        partner, _ = catalog
        requests = [AccessRequest.open(partner, email=f"p{n}@initech.example") for n in range(20)]
        save_all(store, *requests)

        def asking_again(uow: Any) -> None:
            assert uow.access_requests.pending_for(partner.id, "P3@initech.example") is not None
            services.open_access_request(uow, partner.id, email="p3@initech.example")

        self.assert_indexed(
            store, asking_again, "access_requests_pending_by_email (partner_id=? AND email_key=?)"
        )
        assert not any(
            "access_requests_by_date" in detail
            for sql in self.queries(store, asking_again)
            for detail in self.plan(store, sql)
        )

    def test_access_requests_and_outbox(self, store: SqliteStore, catalog: Any) -> None:
        partner, _ = catalog

        def work(uow: Any) -> None:
            uow.access_requests.list(partner.id)
            uow.access_requests.list(partner.id, status="pending")
            uow.outbox.pending()

        self.assert_indexed(store, work, "access_requests_by_date", "outbox_pending")

    @pytest.fixture
    def ledger(self, store: SqliteStore) -> tuple[Partner, Customer, list[Invoice], Payment]:
        """Invoices of two customers (one synced in), a payment, a scheduled
        payment and saved methods."""
        partner = new_partner()
        customer, other = new_customer(partner), new_customer(partner, "Initech", "x@i.example")
        invoices = [
            new_invoice(partner, c, f"{n:04d}", TODAY + dt.timedelta(days=n % 7))
            for n, c in enumerate([customer, other] * 10)
        ]
        invoices[0] = new_invoice(partner, customer, "X-1", ref=ExternalRef("xero", "1"))
        invoices = save_all(store, partner, customer, other, *invoices)[3:]
        payment, touched = pay(partner, customer, invoices[:1], "key-1")
        methods = CustomerPaymentMethods.of(customer).add(
            type="card", display_name="Visa", last4="4242"
        )
        scheduled = ScheduledPayment(
            id=ScheduledPaymentId.new(),
            partner_id=partner.id,
            customer_id=customer.id,
            invoice_id=invoices[2].id,
            user_id=customer.users[0].id,
            payment_method_id=PaymentMethodId("pm_1"),
            pay_on=TODAY,
        )
        save_all(store, payment, *touched, methods, scheduled)
        return partner, customer, invoices, payment

    def test_invoice_lookups(self, store: SqliteStore, ledger: Any) -> None:
        partner, _, invoices, _ = ledger
        self.assert_indexed(
            store, lambda uow: uow.invoices.get(partner.id, invoices[3].id), "(id=?)"
        )
        self.assert_indexed(
            store,
            lambda uow: uow.invoices.get_by_number(partner.id, "0003"),
            "invoices_by_number",
        )
        self.assert_indexed(
            store,
            lambda uow: uow.invoices.get_by_external_ref(partner.id, ExternalRef("xero", "1")),
            "invoices_by_external_ref",
        )

    def test_invoice_listing_with_every_filter_and_cursor(
        self, store: SqliteStore, ledger: Any
    ) -> None:
        partner, customer, _, _ = ledger

        def listing(uow: Any) -> None:
            first = uow.invoices.list(partner.id, limit=5)
            uow.invoices.list(partner.id, limit=5, after=first.end_cursor)
            uow.invoices.list(partner.id, limit=5, before=first.end_cursor)
            uow.invoices.list(partner.id, due_from=TODAY, due_to=TODAY + dt.timedelta(days=2))

        self.assert_indexed(store, listing, "invoices_by_due_date")

        def by_customer(uow: Any) -> None:
            first = uow.invoices.list(partner.id, customer_id=customer.id, limit=3)
            uow.invoices.list(partner.id, customer_id=customer.id, after=first.end_cursor)
            uow.invoices.list(partner.id, customer_id=customer.id, due_to=TODAY)

        self.assert_indexed(store, by_customer, "invoices_by_customer")

        def by_status(uow: Any) -> None:
            first = uow.invoices.list(partner.id, status=InvoiceStatus.OPEN, limit=3)
            uow.invoices.list(partner.id, status=InvoiceStatus.PAID, before=first.end_cursor)
            uow.invoices.list(partner.id, status="void", due_from=TODAY)

        self.assert_indexed(store, by_status, "invoices_by_status")

    def test_overdue(self, store: SqliteStore, ledger: Any) -> None:
        partner, customer, _, _ = ledger
        later = TODAY + dt.timedelta(days=4)

        def overdue(uow: Any) -> None:
            first = uow.invoices.overdue(partner.id, later, limit=2)
            uow.invoices.overdue(partner.id, later, after=first.end_cursor)

        self.assert_indexed(store, overdue, "invoices_by_status (partner_id=? AND status=?")
        self.assert_indexed(
            store,
            lambda uow: uow.invoices.overdue(partner.id, later, customer_id=customer.id),
            "invoices_by_",
        )

    def test_payments_and_scheduled_payments(self, store: SqliteStore, ledger: Any) -> None:
        partner, customer, invoices, payment = ledger

        def payments(uow: Any) -> None:
            uow.payments.get(partner.id, payment.id)
            uow.payments.get_by_idempotency_key(partner.id, "key-1")
            uow.payment_methods.get(partner.id, customer.id)

        self.assert_indexed(store, payments, "payments_by_idempotency_key", "(customer_id=?)")
        self.assert_indexed(
            store,
            lambda uow: uow.payments.for_invoice(partner.id, invoices[0].id),
            "payment_allocations_by_invoice (partner_id=? AND invoice_id=?)",
        )
        self.assert_indexed(
            store,
            lambda uow: uow.scheduled_payments.due(partner.id, TODAY),
            "scheduled_payments_by_date (partner_id=? AND status=? AND pay_on<?)",
        )
        self.assert_indexed(
            store,
            lambda uow: uow.scheduled_payments.for_invoice(partner.id, invoices[2].id),
            "scheduled_payments_by_invoice (partner_id=? AND invoice_id=?)",
        )

    def test_the_writes_of_a_commit_and_the_outbox(self, store: SqliteStore, ledger: Any) -> None:
        partner, customer, invoices, payment = ledger

        def work(uow: Any) -> None:
            # A change to each kind of stored aggregate (version-checked
            # updates, child rows deleted and written again), then the outbox
            # read and marked.
            current = uow.customers.get(partner.id, customer.id)
            current = current.add_user(first_name="Bo", last_name="Li", email="bo@globex.example")
            uow.customers.save(current.remove_user("bo@globex.example"))
            invoice = uow.invoices.get(partner.id, invoices[3].id)
            uow.invoices.save(invoice.update(partner, memo="Thank you"))
            uow.payments.save(uow.payments.get(partner.id, payment.id).succeed())
            methods = uow.payment_methods.get(partner.id, customer.id)
            uow.payment_methods.save(methods.add(type="ach", display_name="Chase", last4="6789"))
            uow.partners.save(uow.partners.get(partner.id).add_tag(name="Gold", colour="#ffd700"))
            scheduled = uow.scheduled_payments.for_invoice(partner.id, invoices[2].id)[0]
            uow.scheduled_payments.save(scheduled.cancel())
            uow.commit()
            uow.outbox.mark_published(m.position for m in uow.outbox.pending())
            uow.commit()

        self.assert_indexed(store, work, "outbox_pending")

    def test_the_checks_between_aggregates(self, store: SqliteStore, ledger: Any) -> None:
        partner, customer, _, _ = ledger
        vip, stray = partner.tags[0].id, TagId.new()

        def work(uow: Any) -> None:
            # A stray tag written early and taken off again, a tag taken out
            # of the catalog, a new invoice: every check that queries runs,
            # none refuses.
            current = uow.customers.get(partner.id, customer.id)
            current = uow.customers.save(attrs.evolve(current, tags=frozenset({stray})))
            uow.customers.list(partner.id)
            uow.customers.save(attrs.evolve(current, tags=frozenset()))
            uow.partners.save(uow.partners.get(partner.id).delete_tag(vip))
            uow.invoices.save(new_invoice(partner, customer, "9999"))
            uow.commit()

        self.assert_indexed(
            store,
            work,
            "customer_tags_by_company (partner_id=? AND tag_id=?)",
            "customers USING INDEX sqlite_autoindex_customers_1 (id=?)",
        )

    def test_the_order_comes_from_the_index(self, store: SqliteStore, ledger: Any) -> None:
        # No sorting after the fact: the index the filters pick gives the order.
        partner, customer, invoices, _ = ledger
        vip = partner.tags[0].id
        for work in (
            lambda uow: uow.customers.list(partner.id),
            lambda uow: uow.customers.list(partner.id, status="active"),
            lambda uow: uow.customers.list(partner.id, tag=vip),
            lambda uow: uow.invoices.list(partner.id),
            lambda uow: uow.invoices.list(partner.id, customer_id=customer.id),
            lambda uow: uow.invoices.list(partner.id, status="open"),
            lambda uow: uow.invoices.overdue(partner.id, TODAY),
            lambda uow: uow.payments.for_invoice(partner.id, invoices[0].id),
            lambda uow: uow.scheduled_payments.due(partner.id, TODAY),
        ):
            for sql in self.queries(store, work):
                assert not any("TEMP B-TREE" in d for d in self.plan(store, sql)), sql


class TestLocking:
    def test_a_unit_of_work_that_cannot_connect_while_a_file_is_locked_conflicts(
        self, path: Path
    ) -> None:
        # Another program holds the file exclusively: even a new connection
        # cannot start. Before: a bare sqlite3.OperationalError from `with`.
        partner = new_partner()
        with SqliteStore(path, timeout=0.05) as store:
            stored(store, partner)
            store.close()  # no idle connection left: the next one is new
        with SqliteStore(path, timeout=0.05) as store:
            for connection in store._idle:
                connection.close()
            store._idle.clear()
            blocker = sqlite3.connect(path, isolation_level=None)
            blocker.execute("PRAGMA locking_mode = EXCLUSIVE")
            blocker.execute("BEGIN EXCLUSIVE")
            try:
                with pytest.raises(ConcurrencyConflict, match="locked") as caught:  # noqa: SIM117
                    with store.unit_of_work():  # the connection is made as it is entered
                        pass
                assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            with store.unit_of_work() as uow:  # and once it is free, as before
                assert uow.partners.get(partner.id).id == partner.id

    def test_a_store_that_opens_a_file_another_writer_holds_conflicts(
        self, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A new file whose write lock another writer holds: the schema cannot
        # be created. Before: a bare sqlite3.OperationalError from migrate().
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("PRAGMA journal_mode = WAL")
        blocker.execute("BEGIN IMMEDIATE")
        made = _record_connections(monkeypatch)
        try:
            with pytest.raises(ConcurrencyConflict, match="locked") as caught:
                SqliteStore(path, timeout=0.05)
            assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
            assert made
            assert all(_closed(connection) for connection in made)
            # Nothing written: no schema, the same user_version.
            assert blocker.execute("PRAGMA user_version").fetchone() == (0,)
            assert blocker.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        with SqliteStore(path, timeout=0.05) as store:  # once it is free, it opens
            stored(store, new_partner())

    def test_a_store_that_opens_a_file_another_program_holds_exclusively_conflicts(
        self, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # No connection can even start. Before: a bare sqlite3.OperationalError
        # from the connection's first statement, and the connection left open.
        SqliteStore(path).close()
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("PRAGMA locking_mode = EXCLUSIVE")
        blocker.execute("BEGIN EXCLUSIVE")
        blocker.execute("CREATE TABLE mine (x)")
        made = _record_connections(monkeypatch)
        try:
            with pytest.raises(ConcurrencyConflict, match="locked") as caught:
                SqliteStore(path, timeout=0.05)
            assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
            assert made
            assert all(_closed(connection) for connection in made)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        with SqliteStore(path, timeout=0.05) as store:
            stored(store, new_partner())

    def test_a_connection_the_pool_cannot_start_is_closed(
        self, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with SqliteStore(path, timeout=0.05) as store:
            store.close()  # no idle connection left: the next one is new
        with SqliteStore(path, timeout=0.05) as store:
            for connection in store._idle:
                connection.close()
            store._idle.clear()
            blocker = sqlite3.connect(path, isolation_level=None)
            blocker.execute("PRAGMA locking_mode = EXCLUSIVE")
            blocker.execute("BEGIN EXCLUSIVE")
            made = _record_connections(monkeypatch)
            try:
                with pytest.raises(ConcurrencyConflict, match="locked"):  # noqa: SIM117
                    with store.unit_of_work():
                        pass
                assert made
                assert all(_closed(connection) for connection in made)
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()

    def test_a_writer_that_waits_too_long_conflicts_and_writes_nothing(self, path: Path) -> None:
        partner = new_partner()
        with SqliteStore(path, timeout=0.05) as store:
            blocker = sqlite3.connect(path, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")
            try:
                with store.unit_of_work() as uow:
                    uow.partners.save(partner)  # checked, not yet written
                    with pytest.raises(ConcurrencyConflict, match="locked") as caught:
                        uow.commit()
                assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            with store.unit_of_work() as uow, pytest.raises(NotFound):
                uow.partners.get(partner.id)
            stored(store, partner)
            with store.unit_of_work() as uow:
                assert uow.partners.get(partner.id).version == 1

    def test_the_write_lock_is_not_held_between_save_and_commit(self, path: Path) -> None:
        partner, other = new_partner(), new_partner()
        with SqliteStore(path, timeout=0.05) as store:
            with store.unit_of_work() as slow:
                slow.partners.save(partner)
                # Another writer gets in while the first one has saved and
                # not yet committed.
                stored(store, other)
                slow.commit()
            with store.unit_of_work() as uow:
                assert uow.partners.get(partner.id).version == 1
                assert uow.partners.get(other.id).version == 1

    def test_a_publisher_holds_the_write_lock_until_it_ends(self, path: Path) -> None:
        # So that another publisher waits for it, and then finds what it
        # marked published, rather than list the same messages again.
        partner = new_partner()
        with SqliteStore(path, timeout=0) as store:
            stored(store, partner, created(partner))
            with store.unit_of_work() as publisher:
                (message,) = publisher.outbox.pending()

                def other_publisher() -> None:
                    with store.unit_of_work() as other:
                        other.outbox.pending()

                with pytest.raises(ConcurrencyConflict):
                    in_thread(other_publisher)
                publisher.outbox.mark_published([message.position])
                publisher.commit()
                # Its claim ended with the commit.
                with store.unit_of_work() as other:
                    assert other.outbox.pending() == []
                    other.partners.save(new_partner())
                    other.commit()

    def test_a_writer_that_commits_between_save_and_commit_wins(self, store: SqliteStore) -> None:
        partner = new_partner()
        (customer,) = stored(store, partner, new_customer(partner))
        with store.unit_of_work() as late:
            late.customers.save(customer.archive())  # checked: version 1 is current
            with store.unit_of_work() as early:
                early.customers.save(customer.set_card_fee_exception("partner"))
                early.commit()
            with pytest.raises(ConcurrencyConflict, match="stored at 2") as info:
                late.commit()
            # Named as the check at save names it.
            assert (info.value.kind, info.value.key) == ("customer", str(customer.id))
        with store.unit_of_work() as uow:
            now = uow.customers.get(partner.id, customer.id)
            assert (now.version, now.status) == (2, CustomerStatus.ACTIVE)
            topics = [m.event.topic for m in uow.outbox.pending()]
        assert topics == ["customer_updated"]

    def test_a_large_unit_of_work_writes_in_batches(
        self, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sql_module, "BATCH_SIZE", 3)
        partner = new_partner()
        customers = [created(partner, f"Company {n}") for n in range(10)]
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            saved = [uow.customers.save(c) for c in customers]
            # Written already, in the open transaction: invisible to others.
            assert uow._writing
            with store.unit_of_work() as other:
                assert other.customers.list(partner.id).items == ()
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.customers.list(partner.id).items == tuple(saved)
            messages = uow.outbox.pending()
        assert [m.event.aggregate_id for m in messages] == [str(c.id) for c in customers]

    def test_an_integrity_error_is_a_conflict(self, store: SqliteStore, path: Path) -> None:
        partner = new_partner()
        customer = new_customer(partner)
        with store.unit_of_work() as uow:
            uow.customers.save(customer)
            # A row that the checks at save could not see, written by a
            # writer that skips them: the database still refuses the commit.
            with sqlite3.connect(path) as outsider:
                outsider.execute(
                    "INSERT INTO customer_users VALUES (?, 'ann@globex.example', 'x')",
                    (str(customer.id),),
                )
            with pytest.raises(ConcurrencyConflict, match="unique") as caught:
                uow.commit()
        assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
        with store.unit_of_work() as uow, pytest.raises(NotFound):
            uow.customers.get(partner.id, customer.id)
        with sqlite3.connect(path) as outsider:
            outsider.execute("DELETE FROM customer_users")
        stored(store, partner, customer)

    def test_other_errors_roll_back_and_propagate(self, store: SqliteStore) -> None:
        partner = new_partner()
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            with pytest.raises(sqlite3.OperationalError):
                uow._read("SELECT * FROM no_such_table", ())
            # The save was forgotten: the unit of work says so rather than
            # commit what comes after it alone.
            with pytest.raises(AltpayError, match="rolled back by an error"):
                uow.commit()
            uow.rollback()
            uow.commit()
        with store.unit_of_work() as uow, pytest.raises(NotFound):
            uow.partners.get(partner.id)

    def test_a_connection_opened_read_only_is_not_reused(
        self, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # SQLite opens a file it may not write (its mode, its directory, a
        # read-only mount) read-only, and the connection stays so after the
        # file is writable again: dropped after its error, not pooled.
        SqliteStore(path).close()
        connect = SqliteStore._connect

        def read_only_once(self: SqliteStore) -> sqlite3.Connection:
            monkeypatch.setattr(SqliteStore, "_connect", connect)
            return sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )

        monkeypatch.setattr(SqliteStore, "_connect", read_only_once)
        with SqliteStore(path) as store:  # opens, and keeps, a read-only connection
            partner = new_partner()
            with store.unit_of_work() as uow:
                uow.partners.save(partner)
                with pytest.raises(sqlite3.OperationalError, match="readonly"):
                    uow.commit()
            assert store._idle == []
            stored(store, partner)  # on a new connection
            with store.unit_of_work() as uow:
                assert uow.partners.get(partner.id).version == 1

    def test_a_failure_outside_commit_stops_the_unit_of_work(
        self, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A batch written at a save is refused (an id stored already, which
        # a save does not look up): the whole unit of work is rolled back,
        # the earlier saves with it. Going on would commit the saves after
        # the error alone, so the unit of work refuses until rolled back.
        monkeypatch.setattr(sql_module, "BATCH_SIZE", 3)
        partner = new_partner()
        (taken,) = stored(store, partner, created(partner, "Taken"))
        first, second, later = (created(partner, name) for name in ("A", "B", "Later"))
        with store.unit_of_work() as uow:
            uow.customers.save(first)
            uow.customers.save(second)
            with pytest.raises(ConcurrencyConflict):
                uow.customers.save(attrs.evolve(taken, version=0))  # the batch is written
            with pytest.raises(AltpayError, match="rolled back by an error"):
                uow.customers.save(later)
            with pytest.raises(AltpayError, match="rolled back by an error"):
                uow.commit()
            uow.rollback()
            uow.customers.save(later)
            uow.commit()
        with store.unit_of_work() as uow:
            assert [c.company for c in uow.customers.list(partner.id)] == ["Later", "Taken"]

    def test_a_closed_store_hands_out_no_connection(self, path: Path) -> None:
        store = SqliteStore(path)
        uow = store.unit_of_work()
        store.close()
        assert store.closed
        with pytest.raises(AltpayError, match="closed"):
            store.unit_of_work()
        with pytest.raises(AltpayError, match="closed"), uow:
            pass

    def test_a_unit_of_work_left_open_keeps_its_connection_after_close(self, path: Path) -> None:
        partner = new_partner()
        store = SqliteStore(path)
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            store.close()
            uow.commit()
        with SqliteStore(path) as again, again.unit_of_work() as uow:
            assert uow.partners.get(partner.id).version == 1

    def test_a_unit_of_work_left_open_on_a_closed_file_stops_at_a_roll_back(
        self, path: Path
    ) -> None:
        # As the docs say: the roll-back hands the connection back to the
        # closed store, which gives no other.
        partner = new_partner()
        store = SqliteStore(path)
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            store.close()
            uow.rollback()
            uow.partners.save(partner)
            with pytest.raises(AltpayError, match="the SqliteStore is closed"):
                uow.commit()
        with SqliteStore(path) as again, again.unit_of_work() as uow, pytest.raises(NotFound):
            uow.partners.get(partner.id)

    def test_a_unit_of_work_left_open_on_a_closed_in_memory_store_stops(self) -> None:
        # close() deletes a throwaway database: a commit after it wrote into
        # a deleted file and returned (the data lost without a word).
        partner = new_partner()
        store = SqliteStore(":memory:")
        (customer,) = stored(store, partner, created(partner))
        later = store.unit_of_work()
        with store.unit_of_work() as uow:
            uow.partners.save(new_partner())
            store.close()
            # Not yet entered: closed, too (not "deleted").
            with pytest.raises(AltpayError, match="the SqliteStore is closed"), later:
                pass
            for call in (
                uow.commit,
                lambda: uow.partners.get(partner.id),
                lambda: uow.customers.get(partner.id, customer.id),
                lambda: uow.customers.list(partner.id),
                lambda: uow.customers.save(customer),
                uow.outbox.pending,
            ):
                with pytest.raises(AltpayError, match="the SqliteStore is closed"):
                    call()
            uow.rollback()
        assert store._idle == []

    def test_idle_connections_are_reused_up_to_a_limit(self, store: SqliteStore) -> None:
        units = [store.unit_of_work() for _ in range(12)]
        for uow in units:
            uow.__enter__()
        connections = {id(uow._connection) for uow in units}
        assert len(connections) == 12
        for uow in units:
            uow.__exit__(None, None, None)
        assert len(store._idle) == 8
        with store.unit_of_work() as uow:
            assert id(uow._connection) in connections

    def test_a_forked_child_does_not_reuse_the_parents_connections(
        self, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with store.unit_of_work():
            pass
        inherited = list(store._idle)
        assert inherited
        monkeypatch.setattr(os, "getpid", lambda: -1)
        with store.unit_of_work() as uow:
            assert uow._connection not in inherited
        for connection in inherited:
            connection.close()

    def test_a_unit_of_work_begun_before_a_fork_takes_a_connection_of_its_own_in_the_child(
        self, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        partner = new_partner()
        with store.unit_of_work() as uow:
            with pytest.raises(NotFound):  # a read: the block holds a connection
                uow.partners.get(partner.id)
            parents = uow._connection
            monkeypatch.setattr(os, "getpid", lambda: -1)  # as in a forked child
            uow.partners.save(partner)
            uow.commit()
            assert uow._connection is not parents
            assert parents in store._inherited  # kept for the parent, not closed
        monkeypatch.undo()
        assert parents is not None
        parents.close()
        with store.unit_of_work() as uow:
            assert uow.partners.get(partner.id).version == 1

    def test_a_transaction_begun_before_a_fork_does_not_go_on_in_the_child(
        self, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with store.unit_of_work() as uow:
            uow.outbox.pending()  # begins the write transaction
            with monkeypatch.context() as child:
                child.setattr(os, "getpid", lambda: -1)
                with pytest.raises(AltpayError, match="before the process forked"):
                    uow.partners.get(new_partner().id)
        with store.unit_of_work() as uow:
            uow.partners.save(new_partner())
            uow.commit()

    def test_a_commit_that_finds_no_connection_forgets_nothing(
        self, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Its connection ended between transactions, and no new one to be had
        # at first (a server restarting): the commit fails, and the next one
        # writes what was saved.
        partner = new_partner()
        with store.unit_of_work() as uow:
            with pytest.raises(NotFound):
                uow.partners.get(partner.id)
            uow.partners.save(partner)
            connect = store._connect
            failures = [sqlite3.OperationalError("unable to open database file")]

            def connect_after_a_while() -> sqlite3.Connection:
                if failures:
                    raise failures.pop()
                return connect()

            monkeypatch.setattr(store, "_alive", lambda connection: False)
            monkeypatch.setattr(store, "_connect", connect_after_a_while)
            with pytest.raises(sqlite3.OperationalError):
                uow.commit()
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.partners.get(partner.id).version == 1


def _companions(path: Path) -> list[Path]:
    """The database file and SQLite's files beside it, those that exist."""
    names = (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
    return [name for name in names if name.exists()]


def _move(path: Path, how: str) -> bytes | None:
    """Take the file at ``path`` away, as ``how`` says; what a replacement
    (another store's file, moved onto the path) holds."""
    if how == "deleted":
        for name in _companions(path):
            name.unlink()
        return None
    if how == "renamed":
        for name in _companions(path):
            name.rename(name.with_name(name.name.replace("altpay.db", "moved.db")))
        return None
    other = path.with_name("other.db")
    with SqliteStore(other) as store:
        stored(store, new_partner())
    for name in _companions(path):
        name.unlink()
    os.replace(other, path)
    return path.read_bytes()


def _left_alone(path: Path, theirs: bytes | None) -> None:
    """Nothing at ``path`` but what was put there, once the store is
    closed: no new, empty file where the store's was taken away, and a
    replacement as it was."""
    if theirs is None:
        assert _companions(path) == []
    else:
        assert _companions(path) == [path]
        assert path.read_bytes() == theirs


MOVES = ["deleted", "renamed", "replaced"]


@pytest.mark.parametrize("existing", [False, True], ids=["new file", "older file"])
def test_a_failed_roll_back_of_the_check_at_open_is_its_own_error(
    path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    # The read transaction that checks the file at open ends with a ROLLBACK;
    # a lock there is a conflict, not a transaction left open for the WAL
    # switch or the migrations to trip over with a message of their own.
    if existing:
        with sqlite3.connect(path) as raw:
            raw.execute("PRAGMA user_version = 0")
    connect = sqlite3.connect

    class Locked(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if sql == "ROLLBACK":
                error = sqlite3.OperationalError("database is locked")
                error.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
                raise error
            return super().execute(sql, *args)

    def connecting(*args: Any, **options: Any) -> sqlite3.Connection:
        return connect(*args, factory=Locked, **options)

    monkeypatch.setattr(sqlite3, "connect", connecting)
    with pytest.raises(ConcurrencyConflict, match="locked"):
        SqliteStore(path, timeout=0.1)
    monkeypatch.undo()
    with SqliteStore(path) as store:  # opens, and migrates, once it can
        stored(store, new_partner())


def test_an_interrupted_end_of_a_block_leaves_no_transaction_open(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A block that wrote early (a read after a save) ends without a commit,
    # and an interruption lands while the unit of work forgets its saves:
    # the transaction is rolled back first, so no lock is left, and the
    # abandoned saves are not written by the unit of work's next block.
    partner, abandoned, kept = new_partner(), new_partner(), new_partner()
    with SqliteStore(path) as store:
        stored(store, partner)
        uow = store.unit_of_work()
        clear = SqliteUnitOfWork._clear
        calls: list[int] = []

        def interrupted(self: SqliteUnitOfWork) -> None:
            calls.append(1)
            if len(calls) == 1:
                raise KeyboardInterrupt
            clear(self)

        uow.__enter__()
        uow.partners.save(abandoned)
        uow.customers.list(partner.id)  # writes the save
        assert uow._writing
        monkeypatch.setattr(SqliteUnitOfWork, "_clear", interrupted)
        with pytest.raises(KeyboardInterrupt):
            uow.__exit__(None, None, None)  # the block's end, no commit
        monkeypatch.undo()
        with SqliteStore(path, timeout=0.5) as other:
            stored(other, new_partner())  # no lock left
        with uow:
            uow.partners.save(kept)
            uow.commit()
        with store.unit_of_work() as reader:
            assert reader.partners.get(kept.id).version == 1
            with pytest.raises(NotFound):
                reader.partners.get(abandoned.id)


def test_a_roll_back_interrupted_leaves_no_lock_behind(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A write fails (a driver error), and the roll-back that follows is
    # interrupted (Ctrl-C, SystemExit): the connection, its transaction
    # perhaps still open, is closed before the interruption goes on, so the
    # file's write lock is free at once, not when the connection is collected.
    partner = new_partner()
    with SqliteStore(path) as store:
        stored(store, partner)
        end = SqliteUnitOfWork._end

        def failing_write(*args: Any) -> int:
            raise sqlite3.OperationalError("disk I/O error")

        def interrupted(self: SqliteUnitOfWork, connection: Any, commit: bool) -> None:
            if not commit and connection.in_transaction:
                raise KeyboardInterrupt
            end(self, connection, commit)

        with store.unit_of_work() as uow:
            uow.customers.save(new_customer(partner))
            monkeypatch.setattr(SqliteUnitOfWork, "_execute_many", failing_write)
            monkeypatch.setattr(SqliteUnitOfWork, "_end", interrupted)
            with pytest.raises(KeyboardInterrupt) as caught:
                uow.commit()
            monkeypatch.undo()
        # The interruption (and with it the connection) is still referenced.
        assert caught.value is not None
        with SqliteStore(path, timeout=0.5) as other:
            stored(other, new_partner())
        stored(store, new_partner())
        with store.unit_of_work() as uow:
            assert uow.customers.list(partner.id).items == ()


class TestFileTakenAwayWhileOpen:
    """A file deleted, moved or replaced while its store is open: the store
    refuses to go on rather than commit into a file that no one else reads,
    or into another database (or create a new, empty one at the path)."""

    def moved(self, path: Path) -> str:
        return f"the database file {re.escape(shown(str(path)))} was deleted, moved or replaced"

    @pytest.mark.parametrize("how", MOVES)
    def test_a_commit_under_way_is_rolled_back(self, path: Path, how: str) -> None:
        partner = new_partner()
        with SqliteStore(path) as store:
            stored(store, partner)
            with store.unit_of_work() as uow:
                uow.customers.save(new_customer(partner))
                assert len(uow.customers.list(partner.id).items) == 1  # written, uncommitted
                theirs = _move(path, how)
                with pytest.raises(AltpayError, match=self.moved(path)):
                    uow.commit()
                with pytest.raises(AltpayError, match=self.moved(path)):
                    uow.customers.list(partner.id)  # rolled back, and refused
        _left_alone(path, theirs)

    @pytest.mark.parametrize("how", MOVES)
    def test_a_pooled_connection_is_not_used(self, path: Path, how: str) -> None:
        partner = new_partner()
        with SqliteStore(path) as store:
            stored(store, partner)
            assert len(store._idle) == 1
            theirs = _move(path, how)
            for _ in range(2):  # and the store goes on refusing
                with pytest.raises(AltpayError, match=self.moved(path)):
                    stored(store, new_partner())
        _left_alone(path, theirs)

    @pytest.mark.parametrize("how", MOVES)
    def test_no_new_connection_is_opened(self, path: Path, how: str) -> None:
        partner = new_partner()
        with SqliteStore(path) as store:
            stored(store, partner)
            with store.unit_of_work() as holding:  # the idle connection taken
                theirs = _move(path, how)
                with pytest.raises(AltpayError, match=self.moved(path)):
                    stored(store, new_partner())
                assert store._idle == []
                holding.rollback()
        _left_alone(path, theirs)

    @pytest.mark.parametrize(
        "name",
        [
            lambda path: path,
            str,
            lambda path: f"file:{quote(str(path))}",
            lambda path: f"file:{quote(str(path))}?mode=rwc",
            lambda path: f"file://{quote(str(path))}?cache=private#part",
        ],
        ids=["path object", "text", "URI", "URI with a mode", "URI with a query and fragment"],
    )
    def test_a_new_connection_opens_the_file_only_if_it_is_there(
        self, path: Path, name: Any
    ) -> None:
        partner = new_partner()
        with SqliteStore(name(path)) as store:
            stored(store, partner)
            with store.unit_of_work() as holding, store.unit_of_work() as uow:
                assert uow.partners.get(partner.id).version == 1  # on a second connection
                holding.rollback()
            with store.unit_of_work() as holding:
                _move(path, "deleted")
                with pytest.raises(AltpayError, match="was deleted, moved or replaced"):
                    store.unit_of_work().__enter__()
                holding.rollback()
            assert _companions(path) == []

    def test_a_read_only_uri_opens_its_new_connections_read_only(self, path: Path) -> None:
        partner = new_partner()
        with SqliteStore(path) as store:
            stored(store, partner)
        with (
            SqliteStore(f"file:{quote(str(path))}?mode=ro") as store,
            store.unit_of_work() as holding,
            store.unit_of_work() as uow,  # on a second connection
        ):
            assert uow.partners.get(partner.id).version == 1
            holding.rollback()

    def test_the_store_goes_on_once_the_file_is_back(self, path: Path) -> None:
        partner = new_partner()
        with SqliteStore(path) as store:
            stored(store, partner)
            _move(path, "renamed")
            with pytest.raises(AltpayError, match=self.moved(path)):
                stored(store, new_partner())
            for name in _companions(path.with_name("moved.db")):
                name.rename(name.with_name(name.name.replace("moved.db", "altpay.db")))
            stored(store, new_partner())
        with SqliteStore(path) as store, store.unit_of_work() as uow:
            assert uow.partners.get(partner.id).version == 1

    def test_sqlites_own_files_beside_it_are_sqlites_business(self, path: Path) -> None:
        # The -wal and -shm deleted, the database file still there: the
        # store does not refuse (SQLite copes, or answers, as it does).
        partner = new_partner()
        with SqliteStore(path) as store:
            stored(store, partner)
            for suffix in ("-wal", "-shm"):
                Path(f"{path}{suffix}").unlink()
            with store.unit_of_work() as uow:
                uow.customers.save(new_customer(partner))
                uow.commit()
        with SqliteStore(path) as store, store.unit_of_work() as uow:
            assert len(uow.customers.list(partner.id).items) == 1


class TestInvoicesAndPayments:
    """What the database itself keeps: unique numbers and idempotency keys
    against writers that skip the checks at save, and a payment stored with
    its invoices or not at all."""

    @pytest.fixture
    def billed(self, store: SqliteStore) -> tuple[Partner, Customer, Invoice]:
        partner = new_partner()
        customer = new_customer(partner)
        saved = save_all(store, partner, customer, new_invoice(partner, customer))
        return partner, customer, saved[2]

    def test_a_number_taken_behind_the_checks_is_a_conflict_at_commit(
        self, store: SqliteStore, path: Path, billed: Any
    ) -> None:
        partner, customer, _ = billed
        invoice = new_invoice(partner, customer, "1002")
        with store.unit_of_work() as uow:
            uow.invoices.save(invoice)  # checked: the number is free
            with sqlite3.connect(path) as outsider:
                outsider.execute(
                    "INSERT INTO invoices (id, version, partner_id, customer_id, number, "
                    "sort_key, status, data) VALUES ('inv_x', 1, ?, ?, '1002', '', 'open', '{}')",
                    (str(partner.id), str(customer.id)),
                )
            with pytest.raises(ConcurrencyConflict, match="already another invoice") as caught:
                uow.commit()
        assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
        with store.unit_of_work() as uow, pytest.raises(NotFound):
            uow.invoices.get(partner.id, invoice.id)

    def test_a_key_taken_behind_the_checks_writes_neither_payment_nor_invoices(
        self, store: SqliteStore, path: Path, billed: Any
    ) -> None:
        partner, customer, invoice = billed
        payment, touched = pay(partner, customer, [invoice], "key-1")
        with store.unit_of_work() as uow:
            uow.invoices.save(touched[0])
            uow.payments.save(payment)  # checked: the key is free
            with sqlite3.connect(path) as outsider:
                outsider.execute(
                    "INSERT INTO payments (id, version, partner_id, customer_id, "
                    "idempotency_key, status, data) VALUES ('pay_x', 1, ?, ?, 'key-1', '', '{}')",
                    (str(partner.id), str(customer.id)),
                )
            with pytest.raises(ConcurrencyConflict, match="idempotency key") as caught:
                uow.commit()
            # Named as the check at save names it, as every adapter does.
            assert (caught.value.kind, caught.value.key) == ("payment", "key-1")
        with store.unit_of_work() as uow:
            assert uow.invoices.get(partner.id, invoice.id) == invoice
            assert uow.payments.for_invoice(partner.id, invoice.id) == []
            assert uow.outbox.pending() == []

    def test_a_stale_invoice_at_commit_writes_no_payment(
        self, store: SqliteStore, billed: Any
    ) -> None:
        partner, customer, invoice = billed
        payment, touched = pay(partner, customer, [invoice], "key-1")
        with store.unit_of_work() as uow:
            uow.payments.save(payment)
            uow.invoices.save(touched[0])  # checked: version 1 is current
            save_all(store, invoice.update(partner, memo="Changed meanwhile"))
            with pytest.raises(ConcurrencyConflict, match="stored at 2") as caught:
                uow.commit()
            assert (caught.value.kind, caught.value.key) == ("invoice", str(invoice.id))
        with store.unit_of_work() as uow:
            assert uow.payments.get_by_idempotency_key(partner.id, "key-1") is None
            assert uow.invoices.get(partner.id, invoice.id).amount_paid.is_zero

    def test_a_failure_half_way_writes_neither(
        self, store: SqliteStore, billed: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        partner, customer, invoice = billed
        payment, touched = pay(partner, customer, [invoice], "key-1")
        break_outbox_write(monkeypatch)
        with store.unit_of_work() as uow:
            uow.payments.save(payment)
            uow.invoices.save(touched[0])
            with pytest.raises(contracts.InjectedFailure):
                uow.commit()
        with store.unit_of_work() as uow:
            assert uow.payments.get_by_idempotency_key(partner.id, "key-1") is None
            assert uow.invoices.get(partner.id, invoice.id) == invoice

    def test_look_ups_of_one_aggregate_write_nothing_early(
        self, store: SqliteStore, billed: Any
    ) -> None:
        partner, customer, invoice = billed
        payment, touched = pay(partner, customer, [invoice], "key-1")
        with store.unit_of_work() as uow:
            saved = uow.payments.save(payment)
            paid = uow.invoices.save(touched[0])
            assert uow.payments.get(partner.id, payment.id) is saved
            assert uow.payments.get_by_idempotency_key(partner.id, " key-1 ") is saved
            assert uow.invoices.get(partner.id, invoice.id) is paid
            assert uow.invoices.get_by_number(partner.id, "1001") is paid
            other = new_partner()
            with pytest.raises(NotFound):
                uow.invoices.get(other.id, invoice.id)
            assert uow.payments.get_by_idempotency_key(other.id, "key-1") is None
            assert not uow._writing  # nothing written yet: no write lock taken
            assert uow.payments.for_invoice(partner.id, invoice.id) == [saved]
            assert uow._writing
            uow.commit()

    def test_an_invoice_paid_in_its_source_is_stored_and_read_back(
        self, store: SqliteStore, path: Path, billed: Any
    ) -> None:
        partner, _, invoice = billed
        paid_there = Money("40.00", partner.currency)
        synced = attrs.evolve(
            invoice,
            id=InvoiceId.new(),
            number="S-1",
            external_ref=ExternalRef("xero", "9"),
            paid_in_source=paid_there,
            version=0,
        )
        (saved,) = save_all(store, synced)
        with store.unit_of_work() as uow:
            back = uow.invoices.get(partner.id, synced.id)
        assert back == saved
        assert (back.paid_in_source, back.balance) == (paid_there, Money("60.00", "USD"))
        # A row written before invoices had the field: read as nothing paid there.
        with sqlite3.connect(path) as outsider:
            (data,) = outsider.execute(
                "SELECT data FROM invoices WHERE id = ?", (str(invoice.id),)
            ).fetchone()
            assert '"paid_in_source":null' in data
            outsider.execute(
                "UPDATE invoices SET data = ? WHERE id = ?",
                (data.replace('"paid_in_source":null,', ""), str(invoice.id)),
            )
        with store.unit_of_work() as uow:
            old = uow.invoices.get(partner.id, invoice.id)
        assert old == invoice
        assert old.paid_in_source is None

    def test_a_pending_change_hides_the_stored_key(self, store: SqliteStore, billed: Any) -> None:
        partner, _, invoice = billed
        ref = ExternalRef("xero", "9")
        copy = attrs.evolve(invoice, id=InvoiceId.new(), number="S", external_ref=ref, version=0)
        (synced,) = save_all(store, copy)
        with store.unit_of_work() as uow:
            renumbered = uow.invoices.save(attrs.evolve(invoice, number="2001"))
            # The stored row still says 1001, but this unit of work's invoice does not.
            with pytest.raises(NotFound):
                uow.invoices.get_by_number(partner.id, "1001")
            assert uow.invoices.get_by_number(partner.id, "2001") is renumbered
            # So 1001 is free for another invoice, and back for this one.
            uow.invoices.save(attrs.evolve(synced, number="1001"))
            with pytest.raises(ConcurrencyConflict, match="1001"):
                uow.invoices.save(attrs.evolve(renumbered, number="1001"))
            assert uow.invoices.get_by_external_ref(partner.id, ref).number == "1001"
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.invoices.get_by_number(partner.id, "1001").id == synced.id
            assert uow.invoices.get_by_number(partner.id, "2001").id == invoice.id

    def test_two_invoices_swap_numbers_in_one_unit_of_work(
        self, store: SqliteStore, billed: Any
    ) -> None:
        partner, customer, one = billed
        (two,) = save_all(store, new_invoice(partner, customer, "1002"))
        with store.unit_of_work() as uow:
            uow.invoices.save(attrs.evolve(one, number="swap"))
            uow.invoices.save(attrs.evolve(two, number="1001"))
            uow.invoices.save(attrs.evolve(one, number="1002", version=2))
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.invoices.get_by_number(partner.id, "1001").id == two.id
            assert uow.invoices.get_by_number(partner.id, "1002").id == one.id
            assert uow.invoices.get(partner.id, one.id).version == 3
            with pytest.raises(NotFound):
                uow.invoices.get_by_number(partner.id, "swap")

    def test_a_moved_row_changed_meanwhile_is_a_conflict(
        self, store: SqliteStore, billed: Any
    ) -> None:
        partner, _, invoice = billed
        with store.unit_of_work() as uow:
            uow.invoices.save(attrs.evolve(invoice, number="2001"))
            save_all(store, invoice.update(partner, memo="Changed meanwhile"))
            with pytest.raises(ConcurrencyConflict, match="stored at 2") as caught:
                uow.commit()
            assert (caught.value.kind, caught.value.key) == ("invoice", str(invoice.id))
        with store.unit_of_work() as uow:
            assert uow.invoices.get(partner.id, invoice.id).number == "1001"

    def test_keys_are_checked_across_batches(
        self, store: SqliteStore, billed: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sql_module, "BATCH_SIZE", 3)
        partner, customer, _ = billed
        invoices = [new_invoice(partner, customer, f"B{n}") for n in range(7)]
        with store.unit_of_work() as uow:
            for invoice in invoices:
                uow.invoices.save(invoice)
            assert uow._writing  # two batches written, one pending
            for number in ("B0", "B6"):
                with pytest.raises(ConcurrencyConflict, match=number):
                    uow.invoices.save(new_invoice(partner, customer, number))
            assert uow.invoices.get_by_number(partner.id, "B0").id == invoices[0].id
            uow.commit()
        with store.unit_of_work() as uow:
            assert len(uow.invoices.list(partner.id)) == 8

    def test_payment_methods_of_another_partners_customer(self, store: SqliteStore) -> None:
        partner, other = new_partner(), new_partner()
        customer = new_customer(partner)
        methods = CustomerPaymentMethods.of(customer).add(
            type="card", display_name="Visa", last4="4242"
        )
        save_all(store, customer, methods)
        with store.unit_of_work() as uow:
            assert uow.payment_methods.get(partner.id, customer.id).version == 1
            theirs = uow.payment_methods.get(other.id, customer.id)
            assert (theirs.partner_id, theirs.version, theirs.methods) == (other.id, 0, ())
            # Its key is the customer's, taken: the database refuses it.
            uow.payment_methods.save(theirs)
            with pytest.raises(ConcurrencyConflict, match="already stored") as caught:
                uow.commit()
            assert caught.value.kind == "payment methods"


def test_a_file_that_cannot_run_in_wal_mode_is_refused(path: Path) -> None:
    # Before: kept in its journal mode, where readers wait for a writer and a
    # unit of work could not begin while another wrote. The store refuses
    # unix-dotfile before it opens anything (below); another vfs without
    # shared memory gets this far.
    opened = sqlite3.connect(f"file:{path}?vfs=unix-dotfile", uri=True, isolation_level=None)
    try:
        with pytest.raises(AltpayError, match="cannot run in WAL mode") as caught:
            sqlite_adapter._use_wal(opened, 1.0, str(path))
    finally:
        opened.close()
    assert type(caught.value) is AltpayError
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    connection.close()


@pytest.mark.parametrize("existing", [False, True])
def test_unix_dotfile_is_refused_before_the_file_is_opened(path: Path, existing: bool) -> None:
    # Before: a new file was refused as it could not run in WAL mode, but
    # left behind, empty; an altpay-core file (in WAL mode) raised sqlite3's
    # own OperationalError, "unable to open database file".
    if existing:
        SqliteStore(path).close()
        before = path.read_bytes()
    with pytest.raises(ValidationError) as caught:
        SqliteStore(f"file:{path}?vfs=unix-dotfile")
    assert (caught.value.paths, caught.value.codes) == (["path"], ["invalid_path"])
    assert "'unix-dotfile' has no shared memory" in str(caught.value)
    assert "leave out the vfs" in str(caught.value)
    if existing:
        assert path.read_bytes() == before
        SqliteStore(path).close()
    else:
        assert not path.exists()


def test_a_bad_status_filter_is_shown_short(store: SqliteStore) -> None:
    with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
        uow.customers.list(new_partner().id, status="x" * 5000)  # type: ignore[arg-type]
    assert caught.value.paths == ["status"]
    assert len(str(caught.value)) < 300


class TestChecksBetweenAggregates:
    """The rules between aggregates are checked against the data at commit,
    also when the unit of work wrote its rows earlier."""

    def _team(self, store: SqliteStore) -> tuple[Partner, AccessRequest]:
        partner = new_partner().add_team_member(
            name="Ada", email="ada@northwind.example", role=Role.ADMIN
        )
        partner = partner.add_team_member(
            name="Sam", email="sam@northwind.example", role=Role.SUB_ADMIN
        )
        request = AccessRequest.open(partner, email="dee@globex.example", first_name="Dee")
        return tuple(save_all(store, partner, request))  # type: ignore[return-value]

    def test_c6_c9_and_books_written_early_are_checked_at_commit(
        self, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sql_module, "BATCH_SIZE", 2)
        partner, request = self._team(store)
        admin, sam = partner.team
        # C6: customers added by hand, written in batches and by a read,
        # the partner connecting an integration that syncs them saved last.
        with store.unit_of_work() as uow:
            for n in range(5):
                uow.customers.save(new_customer(partner, f"Company {n}", f"u{n}@globex.example"))
            uow.customers.list(partner.id)
            uow.partners.save(partner.connect_integration("halopsa", syncs_customers=True))
            with pytest.raises(InvariantViolation) as caught:
                uow.commit()
        assert caught.value.rule == "C6"
        # C9: a request resolved and written early, its resolver demoted
        # by the same unit of work afterwards.
        with store.unit_of_work() as uow:
            uow.access_requests.save(request.reject(partner=partner, by=sam))
            uow.access_requests.list(partner.id)
            uow.partners.save(partner.change_role(sam, Role.MEMBER, by=admin))
            with pytest.raises(InvariantViolation) as caught:
                uow.commit()
        assert (caught.value.rule, caught.value.path) == ("C9", "resolved_by")
        # A first payment methods book of no stored customer, written early.
        with store.unit_of_work() as uow:
            book = CustomerPaymentMethods(partner_id=partner.id, customer_id=CustomerId.new())
            uow.payment_methods.save(book.add(type="ach", display_name="Chase", last4="1234"))
            for n in range(3):
                uow.customers.save(new_customer(partner, f"Company {n}", f"u{n}@globex.example"))
            with pytest.raises(InvariantViolation) as caught:
                uow.commit()
        assert (caught.value.rule, caught.value.path) == ("I1", "customer_id")
        with store.unit_of_work() as uow:
            assert uow.customers.list(partner.id).items == ()
            assert uow.access_requests.get(partner.id, request.id) == request
            assert uow.partners.get(partner.id) == partner

    def test_c9_when_the_resolving_save_writes_its_batch(
        self, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The save that resolves the request is the one that fills the
        # batch, and so writes it at once: the resolver is still checked.
        monkeypatch.setattr(sql_module, "BATCH_SIZE", 1)
        partner, request = self._team(store)
        admin, sam = partner.team
        save_all(store, partner.change_role(sam, Role.MEMBER, by=admin))
        with store.unit_of_work() as uow:
            uow.access_requests.save(request.reject(partner=partner, by=sam))
            with pytest.raises(InvariantViolation) as caught:
                uow.commit()
        assert (caught.value.rule, caught.value.path) == ("C9", "resolved_by")

    def test_partners_are_read_before_any_customer_row_is_written(self, store: SqliteStore) -> None:
        # So that PostgreSQL locks a partner before its customers, as a
        # partner's own writer does: approving a request onto an existing
        # customer reads the partner (for C9) before updating the customer.
        partner, request = self._team(store)
        (customer,) = save_all(store, new_customer(partner))
        with store.unit_of_work() as uow, traced(uow) as seen:
            services.add_access_request_to_customer(
                uow, partner.id, request.id, customer.id, by=partner.team[1], last_name="Ray"
            )
        checks = "SELECT p.id, p.version, p.data FROM partners p WHERE p.id"
        read = next(i for i, sql in enumerate(seen) if sql.startswith(checks))
        write = next(i for i, sql in enumerate(seen) if sql.startswith("UPDATE customers"))
        assert read < write

    def test_the_partners_the_checks_need_are_read_together_and_only_those(
        self, store: SqliteStore
    ) -> None:
        # The partners of new customers, of customers written with tags and
        # of the requests resolved: read in one statement, before any row is
        # written (so that PostgreSQL locks them in one order); a partner no
        # check needs is not read.
        partner, request = self._team(store)
        sam = partner.team[1]
        bare, tagger, asker = new_partner(), new_partner(), new_partner()
        (customer,) = stored(store, tagger, new_customer(tagger))
        (untagged,) = stored(store, asker, new_customer(asker))
        save_all(store, bare)
        checks = "SELECT p.id, p.version, p.data FROM partners p"

        def reads(work: Callable[[Any], None]) -> list[str]:
            with store.unit_of_work() as uow, traced(uow) as seen:
                work(uow)
                uow.commit()
            return [sql for sql in seen if sql.startswith(checks)]

        def needed(uow: Any) -> None:
            uow.customers.save(new_customer(bare))
            uow.customers.save(customer.set_tags(tagger, ["VIP"]))
            uow.access_requests.save(request.reject(partner=partner, by=sam))

        assert len(reads(needed)) == 1

        def not_needed(uow: Any) -> None:
            # Nor one the unit of work writes: it knows it.
            uow.partners.save(attrs.evolve(bare, version=1).add_tag(name="Gold", colour="#D4AF37"))
            uow.customers.save(new_customer(bare, "Hooli"))
            uow.customers.save(attrs.evolve(untagged, company="Initech"))
            uow.access_requests.save(AccessRequest.open(asker, email="eve@initech.example"))

        assert reads(not_needed) == []

    def test_the_partners_the_checks_need_are_read_in_chunks_in_order_of_id(
        self, store: SqliteStore
    ) -> None:
        # So that PostgreSQL locks them in one order, whatever the chunks.
        partners = [new_partner() for _ in range(2 * sql_module.CHECK_SIZE + 1)]
        save_all(store, *partners)
        with store.unit_of_work() as uow, traced(uow) as seen:
            for partner in partners:
                uow.customers.save(new_customer(partner))
            uow.commit()
        checks = "SELECT p.id, p.version, p.data FROM partners p"
        reads = [sql for sql in seen if sql.startswith(checks)]
        assert len(reads) == 3
        read = [key for sql in reads for key in dict.fromkeys(re.findall(r"'(par_\w+)'", sql))]
        assert read == sorted(str(p.id) for p in partners)

    def test_a_commit_after_a_commit_checks_none_of_the_earlier_saves(
        self, store: SqliteStore
    ) -> None:
        # A unit of work used on after a commit: the customer it tagged, the
        # tag it took out of the catalog and the book it made are not checked
        # again (nor read again), though another writer has since taken the
        # customer's tag off and out of the catalog; nor is a book saved
        # again (its customer is stored: only a first book's is checked).
        partner = new_partner().add_tag(name="Gold", colour="#D4AF37")
        vip, gold = partner.tag("VIP").id, partner.tag("Gold").id
        customer, other = stored(
            store, partner, new_customer(partner), new_customer(partner, "Initech")
        )
        checks = (
            "SELECT p.id, p.version, p.data FROM partners p",
            "SELECT customer_id FROM customer_tags",
            "SELECT id, partner_id, status FROM customers",
        )
        with store.unit_of_work() as uow:
            with traced(uow) as first:
                partner = uow.partners.save(attrs.evolve(partner, version=1).delete_tag(gold))
                customer = uow.customers.save(customer.set_tags(partner, ["VIP"]))
                book = uow.payment_methods.save(CustomerPaymentMethods.of(customer))
                uow.commit()
            # The first commit does check the tag taken out and the first
            # book's customer, with the statements looked for below (the
            # partner's read is left out there, as the unit of work saves it).
            for check in checks[1:]:
                assert any(sql.startswith(check) for sql in first), check

            def untag() -> None:
                with store.unit_of_work() as another:
                    another.customers.save(attrs.evolve(customer, tags=frozenset()))
                    another.partners.save(partner.delete_tag(vip))
                    another.commit()

            in_thread(untag)
            with traced(uow) as seen:
                uow.customers.save(attrs.evolve(other, company="Initech Ltd"))
                uow.payment_methods.save(book.add(type="ach", display_name="Chase", last4="1234"))
                uow.commit()
        assert [sql for sql in seen if sql.startswith(checks)] == []
        with store.unit_of_work() as uow:
            assert uow.customers.get(partner.id, other.id).company == "Initech Ltd"
            assert uow.partners.get(partner.id).tags == ()

    def test_tags_written_early_are_checked_against_the_catalog_at_commit(
        self, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sql_module, "BATCH_SIZE", 3)
        partner = new_partner()
        (customer,) = stored(store, partner, new_customer(partner))
        with_gold = attrs.evolve(partner, version=1).add_tag(name="Gold", colour="#D4AF37")
        gold, stray = with_gold.tag("Gold").id, TagId.new()
        # Tagged before the tag is in the catalog, written early (a read, a
        # batch), the catalog saved last: fine at commit. The catalog is
        # read once.
        many = [new_customer(partner, f"Company {n}", f"u{n}@globex.example") for n in range(7)]
        with store.unit_of_work() as uow, traced(uow) as seen:
            tagged = uow.customers.save(customer.set_tags(with_gold, ["Gold"]))
            found = uow.customers.list(partner.id, tag=gold)
            assert [c.id for c in found] == [customer.id]
            for other in many:
                uow.customers.save(other.set_tags(with_gold, ["Gold", "VIP"]))
            uow.partners.save(with_gold)
            uow.commit()
        # The checks' reads of the catalog (one partner, or several at once).
        reads = "SELECT p.id, p.version, p.data FROM partners p"
        assert sum(sql.startswith(reads) for sql in seen) == 1
        # A tag that is in no catalog, written early: refused at commit,
        # unless the customer has lost it again by then.
        with store.unit_of_work() as uow:
            uow.customers.save(attrs.evolve(tagged, tags=frozenset({gold, stray})))
            uow.customers.list(partner.id)
            with pytest.raises(InvariantViolation) as caught:
                uow.commit()
        assert (caught.value.rule, caught.value.path) == ("tags", "tags")
        assert str(stray) in str(caught.value)
        with store.unit_of_work() as uow:
            assert uow.customers.get(partner.id, customer.id) == tagged
            again = uow.customers.save(attrs.evolve(tagged, tags=frozenset({stray})))
            uow.customers.list(partner.id)
            uow.customers.save(again.set_tags(with_gold, []))
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.customers.get(partner.id, customer.id).tags == frozenset()
            assert uow.customers.list(partner.id, tag=stray).items == ()

    def test_new_invoices_of_many_customers_are_checked_in_chunks(self, store: SqliteStore) -> None:
        partner = new_partner()
        customers = stored(
            store,
            partner,
            *(
                new_customer(partner, f"Company {n}", f"u{n}@globex.example")
                for n in range(2 * sql_module.CHECK_SIZE + 1)
            ),
        )
        invoices = [new_invoice(partner, c, str(n)) for n, c in enumerate(customers)]
        # The missing customer's id sorts last: in the last chunk.
        missing = attrs.evolve(
            new_invoice(partner, customers[0], "X"), customer_id=CustomerId("cus_" + "f" * 32)
        )
        with pytest.raises(InvariantViolation) as caught:
            save_all(store, *invoices, missing)
        assert (caught.value.rule, caught.value.path) == ("I1", "customer_id")
        with store.unit_of_work() as uow:
            assert uow.invoices.list(partner.id).items == ()
        save_all(store, *invoices)
        with store.unit_of_work() as uow:
            assert len(uow.invoices.list(partner.id, limit=1000)) == len(invoices)


class TestArguments:
    def test_bad_query_arguments_are_validation_errors(self, store: SqliteStore) -> None:
        partner = new_partner()
        with store.unit_of_work() as uow:
            with pytest.raises(ValidationError):
                uow.customers.list(partner.id, status="gone")  # type: ignore[arg-type]
            with pytest.raises(ValidationError):
                uow.customers.list(partner.id, name_prefix=5)  # type: ignore[arg-type]
            with pytest.raises(ValidationError):
                uow.customers.get_by_external_ref(partner.id, "xero:1")  # type: ignore[arg-type]
            with pytest.raises(ValidationError):
                uow.customers.save(partner)  # type: ignore[arg-type]
            with pytest.raises(ValidationError):
                uow.outbox.mark_published(["1"])  # type: ignore[list-item]
            with pytest.raises(ValidationError):
                uow.access_requests.list(partner.id, status="maybe")  # type: ignore[arg-type]
            with pytest.raises(ValidationError):
                uow.invoices.get_by_number(partner.id, 1001)  # type: ignore[arg-type]
            with pytest.raises(ValidationError):
                uow.invoices.get_by_external_ref(partner.id, "xero:1")  # type: ignore[arg-type]
            with pytest.raises(ValidationError):
                uow.invoices.list(partner.id, due_to="2026-01-01")  # type: ignore[arg-type]
            with pytest.raises(ValidationError):
                uow.payments.get_by_idempotency_key(partner.id, None)  # type: ignore[arg-type]
            with pytest.raises(ValidationError):
                uow.scheduled_payments.due(partner.id, "today")  # type: ignore[arg-type]
            for repository, wrong in (
                (uow.invoices, partner),
                (uow.payments, partner),
                (uow.payment_methods, partner),
                (uow.scheduled_payments, partner),
            ):
                with pytest.raises(ValidationError):
                    repository.save(wrong)
            uow.outbox.mark_published([])
            uow.outbox.mark_published([0, -1, 2**64])  # no message's: ignored
            assert not uow._writing
            assert uow.customers.list(partner.id, tag=TagId.new()).items == ()


# -- several processes ---------------------------------------------------------------


def _add_users(path: str, partner_id: str, customer_id: str, worker: int, count: int) -> None:
    """In a child process: add ``count`` users to one customer, retrying conflicts."""
    with SqliteStore(path, timeout=30) as store:
        for n in range(count):
            while True:
                try:
                    with store.unit_of_work() as uow:
                        current = uow.customers.get(PartnerId(partner_id), CustomerId(customer_id))
                        uow.customers.save(
                            current.add_user(
                                first_name="P",
                                last_name=str(worker),
                                email=f"p{worker}-{n}@x.example",
                            )
                        )
                        uow.commit()
                    break
                except ConcurrencyConflict:
                    continue


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
def test_several_processes_write_to_one_file(store: SqliteStore, path: Path) -> None:
    partner = new_partner()
    (customer,) = stored(store, partner, new_customer(partner))
    context = multiprocessing.get_context("fork")
    workers, count = 3, 8
    processes = [
        context.Process(
            target=_add_users, args=(str(path), str(partner.id), str(customer.id), n, count)
        )
        for n in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0] * workers
    with store.unit_of_work() as uow:
        final = uow.customers.get(partner.id, customer.id)
        messages = uow.outbox.pending(1000)
    assert final.version == 1 + workers * count
    assert len(final.users) == 1 + workers * count
    assert len(messages) == workers * count
    positions = [m.position for m in messages]
    assert positions == sorted(positions)


# -- rows changed outside the library ---------------------------------------------------


def _row_of(table: sql_module.AggregateTable, aggregate: Any) -> list[Any]:
    """The row a read selects for ``aggregate`` (``read_columns``), as stored."""
    values = dict(zip(table.columns, table.values(aggregate), strict=True))
    checked = [values[c] for c in table.read_columns[2:-1]]
    return [table.key(aggregate), aggregate.version, *checked, sql_module.dump(aggregate)]


_KINDS = [
    (sql_module.PARTNERS, Partner),
    (sql_module.CUSTOMERS, Customer),
    (sql_module.ACCESS_REQUESTS, AccessRequest),
    (sql_module.INVOICES, Invoice),
    (sql_module.PAYMENTS, Payment),
    (sql_module.PAYMENT_METHODS, CustomerPaymentMethods),
    (sql_module.SCHEDULED_PAYMENTS, ScheduledPayment),
]


@pytest.mark.parametrize(("table", "cls"), _KINDS, ids=[t.name for t, _ in _KINDS])
@given(data=st.data())
def test_a_row_is_read_only_when_its_data_agree_with_its_columns(
    table: sql_module.AggregateTable, cls: type[Any], data: st.DataObject
) -> None:
    drawn = data.draw(st.from_type(cls))
    aggregate = sql_module._stored(drawn, drawn.version)  # without its events
    row = _row_of(table, aggregate)
    assert sql_module._load_row(table, row) == aggregate
    # Any one column that says otherwise than the data: refused, at the field.
    at = data.draw(st.integers(0, len(row) - 2))
    column = table.read_columns[at]
    changed = list(row)
    changed[at] = row[at] + 1 if column == "version" else f"{row[at] or ''}~"
    with pytest.raises(ValidationError) as caught:
        sql_module._load_row(table, changed)
    field = _FIELD_OF_COLUMN.get(column, column)
    assert (caught.value.paths, caught.value.codes) == ([field], ["row_mismatch"])
    assert "changed outside the library" in str(caught.value)
    assert repr(column) in str(caught.value)


# The field each column not named as one holds (the rest are named as theirs).
_FIELD_OF_COLUMN = {
    "company_key": "company",
    "email_key": "email",
    "ext_system": "external_ref",
    "ext_id": "external_ref",
    "sort_key": "due_date",
}


class TestRowsChangedOutsideTheLibrary:
    """A row whose data disagree with its own columns, or with the rows a
    query found it by (another partner's data included), is refused as a
    damaged row is (``ValidationError``, ``row_mismatch``), never handed out."""

    @pytest.fixture
    def world(self, store: SqliteStore) -> dict[str, Any]:
        partner, other = new_partner(), new_partner()
        customer = attrs.evolve(new_customer(partner), tags={partner.tags[0].id})
        invoices = save_all(
            store,
            partner,
            other,
            customer,
            new_invoice(partner, customer, "1001"),
            new_invoice(partner, customer, "1002"),
        )[3:]
        payment, touched = pay(partner, customer, invoices[:1], "key-1")
        methods = CustomerPaymentMethods.of(customer).add(
            type="card", display_name="Visa", last4="4242"
        )
        scheduled = ScheduledPayment(
            id=ScheduledPaymentId.new(),
            partner_id=partner.id,
            customer_id=customer.id,
            invoice_id=invoices[1].id,
            user_id=customer.users[0].id,
            payment_method_id=PaymentMethodId("pm_1"),
            pay_on=TODAY,
        )
        request = AccessRequest.open(partner, email="dee@globex.example", first_name="Dee")
        save_all(store, payment, *touched, methods, scheduled, request)
        return {
            "partner": partner,
            "other": other,
            "customer": customer,
            "invoices": invoices,
            "payment": payment,
            "scheduled": scheduled,
            "request": request,
            "email": customer.users[0].email,
            "vip": partner.tags[0].id,
            "anew": "cus_" + "0" * 32,
        }

    CASES: ClassVar[list[tuple[str, str, str, Any]]] = [
        # (what is changed, SQL, the field refused, the read)
        (
            "customer data of another partner",
            "UPDATE customers SET data = json_set(data, '$.partner_id', :other)",
            "partner_id",
            lambda uow, w: uow.customers.get(w["partner"].id, w["customer"].id),
        ),
        (
            "customer data of another id",
            "UPDATE customers SET data = json_set(data, '$.id', :anew)",
            "id",
            lambda uow, w: uow.customers.get(w["partner"].id, w["customer"].id),
        ),
        (
            "customer data at another version",
            "UPDATE customers SET data = json_set(data, '$.version', 7)",
            "version",
            lambda uow, w: uow.customers.get(w["partner"].id, w["customer"].id),
        ),
        (
            "a user's email",
            "UPDATE customers SET data = json_set(data, '$.users[0].email', 'zed@x.example')",
            "users",
            lambda uow, w: uow.customers.with_user(w["partner"].id, w["email"]),
        ),
        (
            "a user's email, across partners",
            "UPDATE customers SET data = json_set(data, '$.users[0].email', 'zed@x.example')",
            "users",
            lambda uow, w: uow.customers.accounts_of(w["email"]),
        ),
        (
            "customer data archived",
            "UPDATE customers SET data = json_set(data, '$.status', 'archived')",
            "status",
            lambda uow, w: uow.customers.list(w["partner"].id, status="active"),
        ),
        (
            "customer data without its tag",
            "UPDATE customers SET data = json_set(data, '$.tags', json_array())",
            "tags",
            lambda uow, w: uow.customers.list(w["partner"].id, tag=w["vip"]),
        ),
        (
            "a customer moved to another partner, its users' rows left",
            "UPDATE customers SET partner_id = :other, "
            "data = json_set(data, '$.partner_id', :other)",
            "partner_id",
            lambda uow, w: uow.customers.with_user(w["partner"].id, w["email"]),
        ),
        (
            "a customer moved to another partner, its tags' rows left",
            "UPDATE customers SET partner_id = :other, "
            "data = json_set(data, '$.partner_id', :other)",
            "partner_id",
            lambda uow, w: uow.customers.list(w["partner"].id, tag=w["vip"]),
        ),
        (
            "partner data at another version",
            "UPDATE partners SET data = json_set(data, '$.version', 7) WHERE id = :partner",
            "version",
            lambda uow, w: uow.partners.get(w["partner"].id),
        ),
        (
            "invoice data with another number",
            "UPDATE invoices SET data = json_set(data, '$.number', '9999')",
            "number",
            lambda uow, w: uow.invoices.get_by_number(w["partner"].id, "1001"),
        ),
        (
            "invoice data due another day",
            "UPDATE invoices SET data = json_set(data, '$.due_date', '2027-01-01')",
            "due_date",
            lambda uow, w: uow.invoices.list(w["partner"].id, due_to=TODAY),
        ),
        (
            "payment data with another key",
            "UPDATE payments SET data = json_set(data, '$.idempotency_key', 'key-2')",
            "idempotency_key",
            lambda uow, w: uow.payments.get_by_idempotency_key(w["partner"].id, "key-1"),
        ),
        (
            "payment data paying another invoice",
            "UPDATE payments SET data = "
            "json_set(data, '$.allocations[0].invoice_id', :second_invoice)",
            "allocations",
            lambda uow, w: uow.payments.for_invoice(w["partner"].id, w["invoices"][0].id),
        ),
        (
            "a payment moved to another partner, its allocations' rows left",
            "UPDATE payments SET partner_id = :other, "
            "data = json_set(data, '$.partner_id', :other)",
            "partner_id",
            lambda uow, w: uow.payments.for_invoice(w["partner"].id, w["invoices"][0].id),
        ),
        (
            "payment methods of another partner",
            "UPDATE payment_methods SET data = json_set(data, '$.partner_id', :other)",
            "partner_id",
            lambda uow, w: uow.payment_methods.get(w["partner"].id, w["customer"].id),
        ),
        (
            "scheduled payment data paid later",
            "UPDATE scheduled_payments SET data = json_set(data, '$.pay_on', '2027-01-01')",
            "pay_on",
            lambda uow, w: uow.scheduled_payments.due(w["partner"].id, TODAY),
        ),
        (
            "scheduled payment data for another invoice",
            "UPDATE scheduled_payments SET data = json_set(data, '$.invoice_id', :first_invoice)",
            "invoice_id",
            lambda uow, w: uow.scheduled_payments.for_invoice(w["partner"].id, w["invoices"][1].id),
        ),
        (
            "access request data at another version",
            "UPDATE access_requests SET data = json_set(data, '$.version', 7)",
            "version",
            lambda uow, w: uow.access_requests.list(w["partner"].id),
        ),
    ]

    @pytest.mark.parametrize(("change", "sql", "field", "read"), CASES, ids=[c[0] for c in CASES])
    def test_is_refused(
        self,
        *,
        store: SqliteStore,
        path: Path,
        world: dict[str, Any],
        change: str,
        sql: str,
        field: str,
        read: Any,
    ) -> None:
        names = {
            "partner": str(world["partner"].id),
            "other": str(world["other"].id),
            "anew": world["anew"],
            "first_invoice": str(world["invoices"][0].id),
            "second_invoice": str(world["invoices"][1].id),
        }
        with store.unit_of_work() as uow:
            read(uow, world)  # read as written
        with sqlite3.connect(path) as outsider:
            outsider.execute(sql, {k: v for k, v in names.items() if f":{k}" in sql})
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
            read(uow, world)
        assert (caught.value.paths, caught.value.codes) == ([field], ["row_mismatch"])
        assert "was changed outside the library" in str(caught.value)
        # The row is named by its key, as it is stored.
        keys = [
            world[name].id for name in ("partner", "customer", "payment", "scheduled", "request")
        ]
        keys += [invoice.id for invoice in world["invoices"]]
        assert any(f"row {str(key)!r} was changed" in str(caught.value) for key in keys)

    def test_a_company_key_folded_by_another_python_still_reads(
        self, store: SqliteStore, path: Path, world: dict[str, Any]
    ) -> None:
        # The key is the company name as str.casefold() folds it, which
        # Python's Unicode version decides (3.14's Unicode 16 folds letters
        # 3.11's does not): a row written under another Python is not a row
        # changed outside the library, and was refused as one.
        partner = world["partner"]
        with store.unit_of_work() as uow:
            customer = uow.customers.get(partner.id, world["customer"].id)
        with sqlite3.connect(path) as outsider:
            outsider.execute("UPDATE customers SET company_key = company_key || '\u1c89'")
        with store.unit_of_work() as uow:
            assert uow.customers.get(partner.id, customer.id) == customer
            assert uow.customers.with_user(partner.id, world["email"]) == [customer]
            assert uow.customers.list(partner.id).items == (customer,)

    def test_an_email_key_folded_by_another_python_still_reads(
        self, store: SqliteStore, path: Path, world: dict[str, Any]
    ) -> None:
        # A pending access request's email key is case-folded too.
        partner = world["partner"]
        with store.unit_of_work() as uow:
            request = uow.access_requests.get(partner.id, world["request"].id)
        with sqlite3.connect(path) as outsider:
            outsider.execute("UPDATE access_requests SET email_key = email_key || '\u1c89'")
        with store.unit_of_work() as uow:
            assert uow.access_requests.get(partner.id, request.id) == request
            assert uow.access_requests.list(partner.id) == [request]


@given(
    event=st.from_type(Event),
    position=st.integers(1, 2**63 - 1),
    at=st.integers(1, 3),
)
def test_an_outbox_row_is_read_only_when_its_payload_agrees_with_its_columns(
    event: Event, position: int, at: int
) -> None:
    row = [position, *sql_module._outbox_row(event)]
    del row[4]  # occurred_at: not read
    assert sql_module._message(row) == OutboxMessage(position, event)
    changed = list(row)
    changed[at] = f"{row[at]}~"
    column = sql_module.OUTBOX_COLUMNS[at - 1]
    with pytest.raises(ValidationError) as caught:
        sql_module._message(changed)
    path = f"outbox[{position}].{column}"
    assert (caught.value.paths, caught.value.codes) == ([path], ["row_mismatch"])
    assert "changed outside the library" in str(caught.value)


# JSON that Python's json.loads cannot read: nested too deeply, or a number of
# more digits than int() converts (PostgreSQL's jsonb holds both).
_UNREADABLE = {"deep": "[" * 3000 + "]" * 3000, "long": "1" + "0" * 5000}


def _with_note(column: str, value: str) -> str:
    """SQL for ``column``'s JSON object with a first key holding ``value``."""
    return f"""'{{"note":{_UNREADABLE[value]},' || substr({column}, 2)"""


@pytest.mark.parametrize(
    ("change", "code"),
    [
        pytest.param(_with_note("data", "deep"), "invalid_json", id="deep"),
        pytest.param(_with_note("data", "long"), "invalid_json", id="long"),
        pytest.param("json_quote(data)", "wrong_type", id="json-in-a-string"),
    ],
)
def test_an_invoice_whose_data_json_loads_cannot_read_is_refused(
    store: SqliteStore, path: Path, change: str, code: str
) -> None:
    partner = new_partner()
    customer = new_customer(partner)
    invoice = save_all(store, partner, customer, new_invoice(partner, customer))[2]
    with sqlite3.connect(path) as outsider:
        outsider.execute(f"UPDATE invoices SET data = {change}")
    for read in (
        lambda uow: uow.invoices.get(partner.id, invoice.id),
        lambda uow: uow.invoices.list(partner.id),
    ):
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
            read(uow)
        assert (caught.value.paths, caught.value.codes) == ([""], [code])


class TestOutboxRowsChangedOutsideTheLibrary:
    """A message whose payload is damaged, or disagrees with its row, is
    refused at ``outbox[<position>]``; marking that position published sets
    it aside, and the messages after it are read."""

    @pytest.fixture
    def positions(self, store: SqliteStore, path: Path) -> list[int]:
        partner = new_partner()
        stored(store, partner, created(partner), created(partner, "Initech"))
        with sqlite3.connect(path) as outsider:
            rows = outsider.execute("SELECT position FROM outbox ORDER BY position").fetchall()
        assert len(rows) == 2
        return [position for (position,) in rows]

    @pytest.mark.parametrize(
        ("payload", "field", "code"),
        [
            ("'{'", "", "invalid_json"),
            ("json_set(payload, '$.topic', 'invoice_paid')", ".topic", "row_mismatch"),
            ("json_set(payload, '$.partner_id', 'par_1')", ".partner_id", "row_mismatch"),
            ("json_set(payload, '$.aggregate_id', 'cus_1')", ".aggregate_id", "row_mismatch"),
            ("json_set(payload, '$.topic', 'no_such_topic')", ".topic", "invalid_choice"),
            pytest.param(_with_note("payload", "deep"), "", "invalid_json", id="deep"),
            pytest.param(_with_note("payload", "long"), "", "invalid_json", id="long"),
            pytest.param("json_quote(payload)", "", "wrong_type", id="json-in-a-string"),
        ],
    )
    def test_a_damaged_message_is_named_by_its_position_and_can_be_set_aside(
        self,
        *,
        store: SqliteStore,
        path: Path,
        positions: list[int],
        payload: str,
        field: str,
        code: str,
    ) -> None:
        first, second = positions
        with sqlite3.connect(path) as outsider:
            outsider.execute(f"UPDATE outbox SET payload = {payload} WHERE position = ?", (first,))
        with store.unit_of_work() as uow:
            with pytest.raises(ValidationError) as caught:
                uow.outbox.pending()
            assert caught.value.paths == [f"outbox[{first}]{field}"]
            assert caught.value.codes == [code]
            # The relay sets the message aside, without reading it.
            uow.outbox.mark_published([first])
            uow.commit()
        with store.unit_of_work() as uow:
            assert [m.position for m in uow.outbox.pending()] == [second]


def test_a_partner_row_changed_outside_the_library_is_refused_at_the_commit_that_checks_it(
    store: SqliteStore, path: Path
) -> None:
    partner = new_partner()
    stored(store, partner)
    with sqlite3.connect(path) as outsider:
        outsider.execute("UPDATE partners SET data = json_set(data, '$.version', 7)")
    with store.unit_of_work() as uow:
        uow.customers.save(created(partner))
        with pytest.raises(ValidationError) as caught:
            uow.commit()
    assert (caught.value.paths, caught.value.codes) == (["version"], ["row_mismatch"])
    with store.unit_of_work() as uow:
        assert uow.customers.list(partner.id).items == ()


NOT_A_STORE = st.one_of(st.none(), st.integers(), st.text(), st.binary(), st.builds(object))


@given(store=NOT_A_STORE)
def test_a_unit_of_work_refuses_what_is_not_a_sqlite_store(store: object) -> None:
    # An AttributeError from inside the constructor before.
    with pytest.raises(ValidationError) as caught:
        SqliteUnitOfWork(store)  # type: ignore[arg-type]
    assert (caught.value.paths, caught.value.codes) == (["store"], ["wrong_type"])
    assert caught.value.errors[0].message.startswith("'store' must be a SqliteStore (got ")


def test_a_unit_of_work_refuses_another_kind_of_store(tmp_path: Any) -> None:
    other = MemoryStore()
    expected = "'store' must be a SqliteStore \\(got MemoryStore\\)"
    with other, pytest.raises(ValidationError, match=expected):
        SqliteUnitOfWork(other)  # type: ignore[arg-type]


# -- a process killed for real -------------------------------------------------------
#
# SIGKILL leaves no chance to roll back or close anything: what the file holds
# afterwards is what SQLite's journal makes of it. Each child tells the
# parent, through a pipe, that it reached the point it is to be killed at, so
# that no case passes for having been killed too early.

needs_fork = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)


def _start(target: Any, *args: Any) -> tuple[Any, Any]:
    """A forked child running ``target(*args, signal)``, and the parent's end
    of the pipe it reports on."""
    context = multiprocessing.get_context("fork")
    here, there = context.Pipe(duplex=False)
    child = context.Process(target=target, args=(*args, there))
    child.start()
    there.close()
    return child, here


def _told(here: Any, expected: str) -> None:
    """Wait for the child to report ``expected`` (fail after 30 s)."""
    assert here.poll(30), f"the child never reported {expected!r}"
    assert here.recv() == expected


def _kill(child: Any) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    assert child.exitcode == -signal.SIGKILL


def _counts(path: Path, ids: list[str]) -> tuple[int, int]:
    """How many of the customers ``ids`` the file holds, and how many
    outbox rows are theirs; the file checked whole first."""
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        connection.execute("CREATE TEMP TABLE wanted (id TEXT PRIMARY KEY)")
        connection.executemany("INSERT INTO wanted VALUES (?)", [(i,) for i in ids])
        (customers,) = connection.execute(
            "SELECT count(*) FROM customers WHERE id IN (SELECT id FROM wanted)"
        ).fetchone()
        (events,) = connection.execute(
            "SELECT count(*) FROM outbox WHERE aggregate_id IN (SELECT id FROM wanted)"
        ).fetchone()
    finally:
        connection.close()
    return customers, events


def _commit_many(
    path: str, changed: Customer, customers: list[Customer], pause: bool, report: Any
) -> None:
    """In a child: one unit of work that changes ``changed`` and adds
    ``customers`` (several batches of rows), reporting once two batches are
    written and, with ``pause``, stopping just before its COMMIT."""
    end = SqliteUnitOfWork._end

    def paused(self: SqliteUnitOfWork, connection: sqlite3.Connection, commit: bool) -> None:
        if commit and pause:
            report.send("committing")
            time.sleep(60)
        end(self, connection, commit)

    SqliteUnitOfWork._end = paused  # type: ignore[method-assign]  # this child's alone
    with SqliteStore(path) as store, store.unit_of_work() as uow:
        uow.customers.save(changed)
        for n, customer in enumerate(customers):
            uow.customers.save(customer)
            if n == 2 * sql_module.BATCH_SIZE:
                assert uow._writing  # two batches written, in the open transaction
                report.send("written")
        uow.commit()
    report.send("committed")
    time.sleep(60)


@needs_fork
@pytest.mark.parametrize(
    "delay",
    [None, 0, 0.02, 0.1],
    ids=lambda d: "before COMMIT" if d is None else f"{d} s after two batches",
)
def test_a_process_killed_in_the_middle_of_a_large_commit_leaves_all_of_it_or_none(
    path: Path, delay: float | None
) -> None:
    partner = new_partner()
    earlier = [created(partner, f"Earlier {n}") for n in range(3)]
    with SqliteStore(path) as store:
        earlier = stored(store, partner, *earlier)
    changed = earlier[0].add_user(first_name="Bo", last_name="Ek", email="bo@globex.example")
    count = 2 * sql_module.BATCH_SIZE + 500
    customers = [created(partner, f"Company {n}") for n in range(count)]
    child, here = _start(_commit_many, str(path), changed, customers, delay is None)
    _told(here, "written")
    if delay is None:
        _told(here, "committing")
    else:
        time.sleep(delay)
    _kill(child)
    ids = [str(c.id) for c in customers]
    found, events = _counts(path, ids)
    with SqliteStore(path, timeout=0.5) as store:
        with store.unit_of_work() as uow:
            now = uow.customers.get(partner.id, changed.id)
            # Every earlier commit as it was, or changed by this one.
            assert now == (attrs.evolve(changed, version=2) if found else earlier[0])
            assert [uow.customers.get(partner.id, c.id) for c in earlier[1:]] == earlier[1:]
            assert uow.partners.get(partner.id).version == 1
            events_of_changed = [
                m for m in uow.outbox.pending(1000) if m.event.aggregate_id == str(changed.id)
            ]
        # All of it or none of it, events included.
        assert (found, events) in {(0, 0), (count, count)}
        if delay is None:
            assert found == 0  # killed before its COMMIT
        assert len(events_of_changed) == (2 if found else 1)
        # No lock left behind: a writer gets in at once.
        with store.unit_of_work() as uow:
            uow.customers.save(uow.customers.get(partner.id, changed.id).archive())
            uow.commit()


def _commit_then_die(path: str, batches: list[list[Customer]], how: str, report: Any) -> None:
    """In a child: commit each batch of customers in a unit of work of its
    own, then die before their events are marked published: at once
    (``exit``), or while listing them and marking half of them, written in
    the open transaction (``publishing``)."""
    with SqliteStore(path) as store:
        for batch in batches:
            with store.unit_of_work() as uow:
                for customer in batch:
                    uow.customers.save(customer)
                uow.commit()
        if how == "exit":
            report.send("committed")
            os._exit(0)
        with store.unit_of_work() as uow:
            messages = uow.outbox.pending(1000)
            uow.outbox.mark_published(m.position for m in messages[: len(messages) // 2])
            uow.outbox.pending(1000)  # writes the marks
            assert uow._writing
            report.send("publishing")
            time.sleep(60)


@needs_fork
@pytest.mark.parametrize("how", ["exit", "publishing"])
def test_events_of_a_process_that_dies_before_publishing_them_are_pending_once(
    path: Path, how: str
) -> None:
    partner = new_partner()
    with SqliteStore(path) as store:
        stored(store, partner)
    batches = [[created(partner, f"Company {b}-{n}") for n in range(5)] for b in range(3)]
    child, here = _start(_commit_then_die, str(path), batches, how)
    _told(here, "committed" if how == "exit" else "publishing")
    if how == "exit":
        child.join(30)
        assert child.exitcode == 0
    else:
        _kill(child)
    with SqliteStore(path, timeout=0.5) as store, store.unit_of_work() as uow:
        messages = uow.outbox.pending(1000)
        # Every event, in commit order.
        assert [m.event.aggregate_id for m in messages] == [
            str(c.id) for batch in batches for c in batch
        ]
        assert [m.position for m in messages] == sorted(m.position for m in messages)
        uow.outbox.mark_published(m.position for m in messages)
        uow.commit()
    with SqliteStore(path, timeout=0.5) as store, store.unit_of_work() as uow:
        assert uow.outbox.pending(1000) == []  # nothing published twice


def _hold_the_write_lock(path: str, customer: Customer, new: Customer, report: Any) -> None:
    """In a child: save a change and a new customer, write them in the open
    transaction (holding the file's write lock), and wait to be killed."""
    with SqliteStore(path) as store, store.unit_of_work() as uow:
        uow.customers.save(customer)
        uow.customers.save(new)
        uow.customers.list(customer.partner_id)  # writes the saves
        assert uow._writing
        report.send("holding")
        time.sleep(60)


@needs_fork
def test_a_process_killed_holding_the_write_lock_keeps_no_one_waiting_and_leaves_nothing(
    path: Path,
) -> None:
    partner = new_partner()
    with SqliteStore(path) as store:
        (customer,) = stored(store, partner, created(partner))
    changed = customer.archive()
    new = created(partner, "Initech")
    child, here = _start(_hold_the_write_lock, str(path), changed, new)
    _told(here, "holding")
    with SqliteStore(path, timeout=0.1) as store:
        with store.unit_of_work() as uow, pytest.raises(ConcurrencyConflict):
            uow.outbox.pending()  # the child holds the lock
        _kill(child)
        with store.unit_of_work() as uow:  # at once
            assert uow.customers.get(partner.id, customer.id) == customer
            with pytest.raises(NotFound):
                uow.customers.get(partner.id, new.id)
            assert [m.event.aggregate_id for m in uow.outbox.pending()] == [str(customer.id)]
            uow.customers.save(customer.set_tags(partner, [partner.tags[0]]))
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.customers.get(partner.id, customer.id).version == 2
