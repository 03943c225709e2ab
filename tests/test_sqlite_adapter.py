"""The SQLite adapter: the contract suite on a file and in memory, and what is
SQLite's own (schema migrations, WAL, an index behind every query, locking,
several processes)."""

from __future__ import annotations

import multiprocessing
import os
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, cast

import attrs
import pytest

from altpay_core.adapters import _sql as sql_module
from altpay_core.adapters import sqlite as sqlite_adapter
from altpay_core.adapters._sql import Migration, SchemaVersionError, check_migrations
from altpay_core.adapters.sqlite import MIGRATIONS, SqliteStore, SqliteUnitOfWork
from altpay_core.customer import Customer, CustomerDraft, CustomerStatus, CustomerUser
from altpay_core.errors import AltpayError, ConcurrencyConflict, NotFound, ValidationError
from altpay_core.partner import Partner
from altpay_core.testing import contracts
from altpay_core.values import Address, CustomerId, ExternalRef, TagId

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
    """A new in-memory database per store."""

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


class TestMemoryPartners(SqliteMemory, contracts.PartnerRepositoryContract): ...


class TestMemoryCustomers(SqliteMemory, contracts.CustomerRepositoryContract): ...


class TestMemoryAccessRequests(SqliteMemory, contracts.AccessRequestRepositoryContract): ...


class TestMemoryUnitOfWork(SqliteMemory, contracts.UnitOfWorkContract): ...


class TestMemoryOutbox(SqliteMemory, contracts.OutboxContract): ...


class TestMemoryConcurrency(SqliteMemory, contracts.ConcurrencyContract): ...


class TestMemoryRoundTrip(SqliteMemory, contracts.RoundTripContract): ...


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


def tables(connection: sqlite3.Connection) -> set[str]:
    rows = connection.execute("SELECT name FROM sqlite_schema WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


# -- the schema and its migrations ----------------------------------------------------


class TestMigrations:
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
            } <= tables(connection)

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
        with pytest.raises(SchemaVersionError):
            sqlite_adapter.migrate(cast(sqlite3.Connection, _VersionJumps(connection)), older)
        assert not connection.in_transaction
        connection.close()

    def test_a_failing_step_leaves_the_database_as_it_was(self, path: Path) -> None:
        class Broken(SqliteStore):
            migrations = (
                *MIGRATIONS,
                Migration(len(MIGRATIONS) + 1, "broken", ("CREATE TABLE half (x)", "NOT SQL")),
            )

        with SqliteStore(path):
            pass
        with pytest.raises(sqlite3.OperationalError):
            Broken(path)
        with sqlite3.connect(path) as connection:
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            assert version == len(MIGRATIONS)
            assert "half" not in tables(connection)

    def test_migrations_must_be_numbered_in_order(self) -> None:
        assert check_migrations(MIGRATIONS) == len(MIGRATIONS)
        with pytest.raises(ValueError, match="out of order"):
            check_migrations((Migration(2, "two", ()),))


class _VersionJumps:
    """A connection whose user_version is 0 at first look and 5 once locked."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.looks = 0

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "PRAGMA user_version":
            self.looks += 1
            return self.connection.execute(f"SELECT {0 if self.looks == 1 else 5}")
        return self.connection.execute(sql, *args)


# -- WAL, indexes, locking -----------------------------------------------------------


def test_a_file_database_runs_in_wal_mode(store: SqliteStore, path: Path) -> None:
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert repr(store) == f"SqliteStore({str(path)!r})"


def test_in_memory_stores_are_separate() -> None:
    partner = new_partner()
    with SqliteStore(":memory:") as one, SqliteStore(":memory:") as two:
        stored(one, partner)
        with one.unit_of_work() as uow:
            assert uow.partners.get(partner.id).name == partner.name
        with two.unit_of_work() as uow, pytest.raises(NotFound):
            uow.partners.get(partner.id)
        assert repr(one) == "SqliteStore(:memory:)"


def test_in_memory_falls_back_to_a_shared_cache_on_old_sqlite(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sqlite_adapter, "_MEMDB", False)
    partner = new_partner()
    with SqliteStore(":memory:") as store:
        assert "cache=shared" in store._target
        stored(store, partner, created(partner))
        with store.unit_of_work() as uow:
            assert len(uow.customers.list(partner.id)) == 1


class TestQueryPlans:
    """Every query the repositories run searches an index: none scans a table."""

    TABLES: ClassVar[str] = "partners|customers|customer_users|customer_tags|access_requests|outbox"

    def queries(self, store: SqliteStore, work: Any) -> list[str]:
        with store.unit_of_work() as uow:
            seen: list[str] = []
            connection = uow._conn()
            connection.set_trace_callback(seen.append)
            try:
                work(uow)
            finally:
                connection.set_trace_callback(None)
        return [sql for sql in seen if sql.lstrip().upper().startswith("SELECT")]

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
                if re.match(rf"SCAN ({self.TABLES}|[cut])\b", d) and "USING" not in d
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
        return partner, stored(store, partner, *customers)

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
            uow.customers.list(partner.id, status=CustomerStatus.ACTIVE, name_prefix="comp")
            uow.customers.list(partner.id, tag=tag)

        self.assert_indexed(store, listing, "customers_by_company")

    def test_access_requests_and_outbox(self, store: SqliteStore, catalog: Any) -> None:
        partner, _ = catalog

        def work(uow: Any) -> None:
            uow.access_requests.list(partner.id)
            uow.access_requests.list(partner.id, status="pending")
            uow.outbox.pending()

        self.assert_indexed(store, work, "access_requests_by_date", "outbox_pending")


class TestLocking:
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

    def test_a_writer_that_commits_between_save_and_commit_wins(self, store: SqliteStore) -> None:
        partner = new_partner()
        (customer,) = stored(store, partner, new_customer(partner))
        with store.unit_of_work() as late:
            late.customers.save(customer.archive())  # checked: version 1 is current
            with store.unit_of_work() as early:
                early.customers.save(customer.set_card_fee_exception("partner"))
                early.commit()
            with pytest.raises(ConcurrencyConflict, match="another writer"):
                late.commit()
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
            uow.commit()
        with store.unit_of_work() as uow, pytest.raises(NotFound):
            uow.partners.get(partner.id)

    def test_a_closed_store_hands_out_no_connection(self, path: Path) -> None:
        store = SqliteStore(path)
        uow = store.unit_of_work()
        store.close()
        assert store.closed
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
            uow.outbox.mark_published([])
            uow.outbox.mark_published([0, -1, 2**64])  # no message's: ignored
            assert not uow._writing
            assert uow.customers.list(partner.id, tag=TagId.new()).items == ()

    @pytest.mark.parametrize(
        ("company", "prefix"),
        [("\U0010ffff Corp", "\U0010ffff"), ("a\ud7ff b", "a\ud7ff"), ("zz", "z")],
    )
    def test_name_prefixes_at_the_end_of_unicode(
        self, store: SqliteStore, company: str, prefix: str
    ) -> None:
        partner = new_partner()
        customers = [new_customer(partner, company), new_customer(partner, "\U0010ffff\U0010ffff")]
        stored(store, partner, *customers)
        with store.unit_of_work() as uow:
            found = uow.customers.list(partner.id, name_prefix=prefix)
        assert {c.company for c in found} == {
            c.company for c in customers if c.company.casefold().startswith(prefix)
        }


# -- several processes ---------------------------------------------------------------


def _add_users(path: str, partner_id: str, customer_id: str, worker: int, count: int) -> None:
    """In a child process: add ``count`` users to one customer, retrying conflicts."""
    from altpay_core.values import PartnerId

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
