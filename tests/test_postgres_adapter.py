"""The PostgreSQL adapter: the contract suite on a real server, and what is
PostgreSQL's own (migrations under a lock, outbox positions in commit order,
driver errors).

The server comes from ``ALTPAY_TEST_POSTGRES_DSN`` (``scripts/postgres-test-server``
starts a throwaway one). Without it these tests skip, except in CI (``CI``
set), where they fail: CI must run them. Each store lives in a schema of its
own, dropped when the store closes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from altpay_core import services
from altpay_core.adapters import postgres as postgres_adapter
from altpay_core.adapters._sql import Migration, SchemaVersionError
from altpay_core.adapters.postgres import MIGRATIONS, PostgresStore, PostgresUnitOfWork
from altpay_core.adapters.sqlite import SqliteStore
from altpay_core.customer import AccessRequest, Customer, CustomerDraft, CustomerUser
from altpay_core.errors import (
    AltpayError,
    ConcurrencyConflict,
    InvariantViolation,
    NotFound,
    ValidationError,
    shown,
)
from altpay_core.invoice import Invoice, LineItem
from altpay_core.money import Money
from altpay_core.partner import Partner, Role, TeamMember
from altpay_core.payment import CustomerPaymentMethods, pay_invoices
from altpay_core.testing import contracts
from altpay_core.values import Address, CustomerId, EmailAddress, ExternalRef, InvoiceId


class SchemaStore(PostgresStore):
    """A store in a new schema of its own, dropped when the store closes."""

    def __init__(self, dsn: str) -> None:
        import psycopg
        from psycopg import sql

        self.server_dsn = dsn
        self.schema = f"altpay_test_{uuid.uuid4().hex}"
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
        self._dropped = False
        super().__init__(in_schema(dsn, self.schema))

    def close(self) -> None:
        super().close()
        if not self._dropped:
            self._dropped = True
            drop_schema(self.server_dsn, self.schema)


def in_schema(dsn: str, schema: str, isolation: str | None = None) -> str:
    """``dsn`` with ``schema`` first on its search path and, if given, the
    session's default transaction isolation (``"repeatable read"``)."""
    from psycopg.conninfo import make_conninfo

    options = f"-csearch_path={schema}"
    if isolation is not None:
        options += " -cdefault_transaction_isolation=" + isolation.replace(" ", "\\ ")
    return make_conninfo(dsn, options=options)


def drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def opened_as(dsn: str, schema: str, role: str) -> AltpayError:
    """The error a store opened as ``role`` in ``schema`` is refused with."""
    from psycopg.conninfo import make_conninfo

    with pytest.raises(AltpayError) as caught:
        PostgresStore(make_conninfo(dsn, options=f"-csearch_path={schema} -crole={role}"))
    return caught.value


def drop_role(dsn: str, role: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@contextlib.contextmanager
def foreign_schema(dsn: str, statements: list[str]) -> Iterator[tuple[str, str]]:
    """A new schema holding what ``statements`` make; its name and a
    connection string with it first on the search path. Dropped after."""
    import psycopg

    schema = f"altpay_test_{uuid.uuid4().hex}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        inside = in_schema(dsn, schema)
        with psycopg.connect(inside, autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)
        yield schema, inside
    finally:
        drop_schema(dsn, schema)


def schema_objects(dsn: str) -> list[tuple[Any, ...]]:
    """What the first schema of ``dsn``'s search path holds, and its version rows."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        objects = connection.execute(
            "SELECT relname, relkind FROM pg_class "
            "WHERE relnamespace = current_schema()::regnamespace ORDER BY relname"
        ).fetchall()
        if ("altpay_schema", "r") in objects:
            objects += connection.execute("SELECT * FROM altpay_schema").fetchall()
    return objects


# -- the contract suite ------------------------------------------------------------


class PostgresSchema:
    dsn: str

    @pytest.fixture(autouse=True)
    def _server(self, postgres_dsn: str) -> None:
        self.dsn = postgres_dsn

    def make_store(self) -> SchemaStore:
        return SchemaStore(self.dsn)

    def break_next_commit(self, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        original = PostgresUnitOfWork._write_outbox
        broken: list[bool] = []

        def write_outbox(uow: PostgresUnitOfWork, connection: Any) -> None:
            if not broken:
                broken.append(True)
                raise contracts.InjectedFailure("after writing the aggregates")
            original(uow, connection)

        monkeypatch.setattr(PostgresUnitOfWork, "_write_outbox", write_outbox)


@pytest.mark.postgres
class TestPartners(PostgresSchema, contracts.PartnerRepositoryContract): ...


@pytest.mark.postgres
class TestCustomers(PostgresSchema, contracts.CustomerRepositoryContract): ...


@pytest.mark.postgres
class TestAccessRequests(PostgresSchema, contracts.AccessRequestRepositoryContract): ...


@pytest.mark.postgres
class TestUnitOfWork(PostgresSchema, contracts.UnitOfWorkContract): ...


@pytest.mark.postgres
class TestOutbox(PostgresSchema, contracts.OutboxContract): ...


@pytest.mark.postgres
class TestConcurrency(PostgresSchema, contracts.ConcurrencyContract): ...


@pytest.mark.postgres
class TestRoundTrip(PostgresSchema, contracts.RoundTripContract): ...


@pytest.mark.postgres
class TestInvoices(PostgresSchema, contracts.InvoiceRepositoryContract): ...


@pytest.mark.postgres
class TestPayments(PostgresSchema, contracts.PaymentRepositoryContract): ...


@pytest.mark.postgres
class TestPaymentMethods(PostgresSchema, contracts.PaymentMethodRepositoryContract): ...


@pytest.mark.postgres
class TestScheduledPayments(PostgresSchema, contracts.ScheduledPaymentRepositoryContract): ...


# -- what is PostgreSQL's own --------------------------------------------------------

ADDRESS = Address("1 Main St", "Albany", "NY", "12207", "US")


def new_customer(partner: Partner, company: str = "Globex") -> Customer:
    return Customer(
        id=CustomerId.new(),
        partner_id=partner.id,
        company=company,
        address=ADDRESS,
        users=(CustomerUser.new(first_name="Ann", last_name="Lee", email="ann@globex.example"),),
    )


def created(partner: Partner, company: str = "Globex") -> Customer:
    draft = CustomerDraft.start(partner).enter_details(company=company, address=ADDRESS)
    return draft.add_user(first_name="Ann", last_name="Lee", email="ann@globex.example").create()


def new_invoice(partner: Partner, customer: Customer, number: str = "1001") -> Invoice:
    return Invoice(
        id=InvoiceId.new(),
        partner_id=partner.id,
        customer_id=customer.id,
        number=number,
        currency=partner.currency,
        issue_date=dt.date(2026, 2, 1),
        due_date=dt.date(2026, 3, 2),
        lines=(LineItem("Managed support", 1, Money("100.00", partner.currency)),),
    )


@pytest.fixture
def store(postgres_dsn: str) -> Iterator[SchemaStore]:
    with SchemaStore(postgres_dsn) as store:
        yield store


def schema_version(store: SchemaStore) -> int:
    import psycopg

    with psycopg.connect(in_schema(store.server_dsn, store.schema)) as connection:
        row = connection.execute("SELECT version FROM altpay_schema").fetchone()
    assert row is not None
    return int(row[0])


# Takes a schema at version 5 back to 4, with its data.
UNDO_STEP_5 = (
    "DROP INDEX access_requests_pending_by_email",
    "ALTER TABLE access_requests DROP COLUMN email_key",
    "UPDATE altpay_schema SET version = 4",
)

# Takes a schema at version 4 back to 3, with its data.
UNDO_STEP_4 = (
    *UNDO_STEP_5,
    "DROP TRIGGER invoices_currency ON invoices",
    "DROP TRIGGER payments_currency ON payments",
    "DROP FUNCTION currency_of_data()",
    "ALTER TABLE invoices DROP COLUMN currency",
    "ALTER TABLE payments DROP COLUMN currency",
    "UPDATE altpay_schema SET version = 3",
)


@pytest.mark.postgres
class TestMigrations:
    def test_a_new_schema_gets_the_latest_version(self, store: SchemaStore) -> None:
        assert schema_version(store) == len(MIGRATIONS)
        assert repr(store) == "PostgresStore(...)"

    def test_opening_an_older_schema_migrates_it(self, store: SchemaStore) -> None:
        partner = Partner.create(name="Northwind IT", country="US")
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            customer = uow.customers.save(created(partner))
            uow.commit()

        class Newer(PostgresStore):
            migrations = (
                *MIGRATIONS,
                Migration(
                    len(MIGRATIONS) + 1,
                    "a column for a later feature",
                    ("ALTER TABLE customers ADD COLUMN note text",),
                ),
            )

        with Newer(in_schema(store.server_dsn, store.schema)) as again:
            assert schema_version(store) == len(MIGRATIONS) + 1
            with again.unit_of_work() as uow:
                assert uow.customers.get(partner.id, customer.id) == customer
                assert len(uow.outbox.pending()) == 1

    def test_a_schema_at_version_1_migrates_to_the_latest_keeping_its_data(
        self, postgres_dsn: str
    ) -> None:
        import psycopg

        class First(PostgresStore):
            migrations = MIGRATIONS[:1]

        schema = f"altpay_test_{uuid.uuid4().hex}"
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute(f'CREATE SCHEMA "{schema}"')
        dsn = in_schema(postgres_dsn, schema)
        try:
            partner = Partner.create(name="Northwind IT", country="US")
            with First(dsn) as old, old.unit_of_work() as uow:
                uow.partners.save(partner)
                customer = uow.customers.save(created(partner))
                uow.commit()
            with psycopg.connect(dsn) as connection:
                assert connection.execute("SELECT version FROM altpay_schema").fetchone() == (1,)
                assert connection.execute("SELECT to_regclass('invoices')").fetchone() == (None,)
            with PostgresStore(dsn) as new:
                with psycopg.connect(dsn) as connection:
                    row = connection.execute("SELECT version FROM altpay_schema").fetchone()
                    assert row == (len(MIGRATIONS),)
                with new.unit_of_work() as uow:
                    assert uow.customers.get(partner.id, customer.id) == customer
                    assert [m.event.topic for m in uow.outbox.pending()] == ["customer_created"]
                    invoice = uow.invoices.save(new_invoice(partner, customer))
                    uow.commit()
                payment, touched = pay_invoices(
                    partner,
                    customer,
                    [invoice],
                    payer=customer.users[0],
                    method="ach",
                    idempotency_key="key-1",
                    amounts={invoice.id: "10.00"},
                )
                with new.unit_of_work() as uow:
                    uow.payments.save(payment)
                    uow.invoices.save(touched[0])
                    uow.commit()
                with new.unit_of_work() as uow:
                    assert [p.id for p in uow.payments.for_invoice(partner.id, invoice.id)] == [
                        payment.id
                    ]
        finally:
            drop_schema(postgres_dsn, schema)

    def test_a_schema_at_version_2_lists_its_tagged_customers_after_migrating(
        self, store: SchemaStore
    ) -> None:
        # Version 3 gives the tags' rows their customer's sort key. A schema
        # at version 2, with its data: one at 3, its third step undone.
        import psycopg

        partner = Partner.create(name="Northwind IT", country="US")
        partner = partner.add_tag(name="VIP", colour="#AA0000")
        vip = partner.tags[0].id
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            for name, tags in (("Zeta", {vip}), ("alpha", {vip}), ("Mid", set())):
                uow.customers.save(attrs.evolve(new_customer(partner, name), tags=tags))
            uow.commit()
        dsn = in_schema(store.server_dsn, store.schema)
        with psycopg.connect(dsn, autocommit=True) as connection:
            for statement in (
                *UNDO_STEP_4,
                "DROP INDEX customers_by_status",
                "DROP INDEX customer_tags_by_company",
                "DROP TRIGGER customer_tags_company_key ON customer_tags",
                "DROP FUNCTION customer_tags_company_key()",
                "ALTER TABLE customer_tags DROP COLUMN company_key",
                "CREATE INDEX customer_tags_by_tag ON customer_tags (partner_id, tag_id)",
                "UPDATE altpay_schema SET version = 2",
            ):
                connection.execute(statement)
        with PostgresStore(dsn) as new, new.unit_of_work() as uow:
            assert [c.company for c in uow.customers.list(partner.id, tag=vip)] == ["alpha", "Zeta"]
        with psycopg.connect(dsn) as connection:
            keys = connection.execute("SELECT company_key FROM customer_tags ORDER BY 1").fetchall()
            assert keys == [("alpha",), ("zeta",)]
            # A server that opened the schema at version 2 writes a tag as it
            # knew to, without the key: the database gives it its customer's.
            mid = connection.execute(
                "SELECT id FROM customers WHERE company_key = 'mid'"
            ).fetchone()
            assert mid is not None
            connection.execute(
                "INSERT INTO customer_tags (customer_id, tag_id, partner_id) VALUES (%s, %s, %s)",
                (mid[0], str(vip), str(partner.id)),
            )
            # ... with the customer's data, which the listing compares.
            connection.execute(
                "UPDATE customers SET data = jsonb_set(data, '{tags}', jsonb_build_array(%s::text))"
                " WHERE id = %s",
                (str(vip), mid[0]),
            )
        with PostgresStore(dsn) as new, new.unit_of_work() as uow:
            tagged = uow.customers.list(partner.id, tag=vip, name_prefix="m")
            assert [c.company for c in tagged] == ["Mid"]
        assert schema_version(store) == len(MIGRATIONS)

    def test_a_schema_at_version_4_holding_two_pending_requests_of_an_email_migrates(
        self, store: SchemaStore
    ) -> None:
        # As on SQLite: the step keeps both, their email_key NULL, which no
        # index compares; a request saved again writes its key.
        import psycopg

        partner = Partner.create(name="Northwind IT", country="US").add_team_member(
            name="Ada", email="ada@northwind.example", role=Role.ADMIN
        )
        admin = partner.team[0]
        dee, eve = (
            AccessRequest.open(partner, email=email)
            for email in ("dee@globex.example", "eve@globex.example")
        )
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            dee, eve = uow.access_requests.save(dee), uow.access_requests.save(eve)
            uow.commit()
        dsn = in_schema(store.server_dsn, store.schema)
        with psycopg.connect(dsn, autocommit=True) as connection:
            for statement in UNDO_STEP_5:
                connection.execute(statement)
            connection.execute(
                "UPDATE access_requests SET data = jsonb_set(data, '{email}', "
                "'\"DEE@globex.example\"') WHERE id = %s",
                (str(eve.id),),
            )
        twice = attrs.evolve(eve, email=EmailAddress("DEE@globex.example"))
        with PostgresStore(dsn) as new:
            assert schema_version(store) == len(MIGRATIONS)
            with new.unit_of_work() as uow:
                assert uow.access_requests.get(partner.id, dee.id) == dee
                assert uow.access_requests.get(partner.id, twice.id) == twice
                # Found by their data, which holds the email: the oldest.
                oldest = uow.access_requests.list(partner.id)[0]
                assert uow.access_requests.pending_for(partner.id, "DEE@globex.example") == oldest
                assert uow.access_requests.pending_for(partner.id, "eve@globex.example") is None
            with new.unit_of_work() as uow:
                third = AccessRequest.open(partner, email="Dee@globex.example")
                third = uow.access_requests.save(third)
                uow.commit()
            with pytest.raises(ConcurrencyConflict) as caught, new.unit_of_work() as uow:
                uow.access_requests.save(dee)
            assert (caught.value.kind, caught.value.key) == ("access request", dee.email.key)
            with new.unit_of_work() as uow:
                uow.access_requests.save(dee.reject(partner=partner, by=admin))
                uow.access_requests.save(twice.reject(partner=partner, by=admin))
                uow.commit()
            with new.unit_of_work() as uow:
                assert uow.access_requests.list(partner.id, status="pending") == [third]
                assert uow.access_requests.pending_for(partner.id, "dee@globex.example") == third
        with psycopg.connect(dsn) as connection:
            found = connection.execute(
                "SELECT email_key, status FROM access_requests ORDER BY status"
            ).fetchall()
            assert (
                found
                == [("dee@globex.example", "pending")] + [("dee@globex.example", "rejected")] * 2
            )

    def test_a_schema_at_version_3_gets_the_currency_of_its_invoices_and_payments(
        self, store: SchemaStore
    ) -> None:
        # Version 4 keeps an invoice's and a payment's currency in a column,
        # which a save may not change (I2). A schema at version 3, with its
        # data: one at 4, its fourth step undone.
        import psycopg

        us, ca = (
            Partner.create(name="Northwind IT", country="US"),
            Partner.create(name="Maple IT", country="CA"),
        )
        globex, maple = new_customer(us), new_customer(ca)
        usd, cad = new_invoice(us, globex), new_invoice(ca, maple)
        payment, (paid,) = pay_invoices(
            us,
            globex,
            [usd],
            payer=globex.users[0],
            method="ach",
            idempotency_key="key-1",
            amounts={usd.id: "10.00"},
        )
        with store.unit_of_work() as uow:
            for partner in (us, ca):
                uow.partners.save(partner)
            for customer in (globex, maple):
                uow.customers.save(customer)
            usd, cad = uow.invoices.save(paid), uow.invoices.save(cad)
            payment = uow.payments.save(payment)
            uow.commit()
        dsn = in_schema(store.server_dsn, store.schema)
        with psycopg.connect(dsn, autocommit=True) as connection:
            for statement in UNDO_STEP_4:
                connection.execute(statement)
        with PostgresStore(dsn) as new:
            assert schema_version(store) == len(MIGRATIONS)
            with new.unit_of_work() as uow:
                assert uow.invoices.get(us.id, usd.id) == usd
                assert uow.invoices.get(ca.id, cad.id) == cad
                assert uow.payments.get(us.id, payment.id) == payment
            for aggregate in (usd, payment):
                with pytest.raises(InvariantViolation) as caught, new.unit_of_work() as uow:
                    contracts._save(uow, contracts._in_cad(aggregate))
                assert (caught.value.rule, caught.value.path) == ("I2", "currency")
        with psycopg.connect(dsn) as connection:
            found = connection.execute("SELECT id, currency FROM invoices ORDER BY 2").fetchall()
            assert found == [(str(cad.id), "CAD"), (str(usd.id), "USD")]
            found = connection.execute("SELECT id, currency FROM payments").fetchall()
            assert found == [(str(payment.id), "USD")]
            # A server that opened the schema at version 3 writes an invoice
            # and a payment as it knew to, without the column: the database
            # fills it in.
            for table, key in (("invoices", usd.id), ("payments", payment.id)):
                columns = [
                    name
                    for (name,) in connection.execute(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_schema = current_schema() AND table_name = %s "
                        "AND column_name <> 'currency'",
                        (table,),
                    )
                ]
                names = ", ".join(columns)
                connection.execute(
                    f"CREATE TEMP TABLE written AS SELECT {names} FROM {table} WHERE id = %s",
                    (str(key),),
                )
                connection.execute(f"DELETE FROM {table} WHERE id = %s", (str(key),))
                connection.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM written")
                connection.execute("DROP TABLE written")
        with PostgresStore(dsn) as new, new.unit_of_work() as uow:
            assert uow.invoices.get(us.id, usd.id) == usd
            assert uow.payments.get(us.id, payment.id) == payment

    def test_a_current_schema_opens_in_a_read_only_session(self, store: SchemaStore) -> None:
        # A hot standby, or a role whose transactions are read-only by
        # default: a schema already at the latest version is only read.
        from psycopg.conninfo import make_conninfo

        partner = Partner.create(name="Northwind IT", country="US")
        with store.unit_of_work() as uow:
            stored = uow.partners.save(partner)
            uow.commit()
        options = f"-csearch_path={store.schema} -cdefault_transaction_read_only=on"
        dsn = make_conninfo(store.server_dsn, options=options)
        with PostgresStore(dsn) as reader, reader.unit_of_work() as uow:
            assert uow.partners.get(partner.id) == stored

    def test_a_current_schema_opens_while_another_server_migrates(self, store: SchemaStore) -> None:
        # It only reads: the migrations' lock, the database's, held by a
        # server migrating another schema, does not hold the store up.
        import psycopg

        from altpay_core.adapters.postgres import MIGRATION_LOCK

        opened: list[PostgresStore] = []
        opening = threading.Thread(target=lambda: opened.append(PostgresStore(store.dsn)))
        with psycopg.connect(store.server_dsn) as other:
            other.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            opening.start()
            opening.join(10)
            done = not opening.is_alive()
        opening.join(30)
        for each in opened:
            each.close()
        assert done, "the store waited for the migrations' lock"
        assert len(opened) == 1

    def test_a_current_schema_opens_for_a_role_that_may_not_create_tables(
        self, store: SchemaStore
    ) -> None:
        import psycopg
        from psycopg import sql
        from psycopg.conninfo import make_conninfo

        partner = Partner.create(name="Northwind IT", country="US")
        with store.unit_of_work() as uow:
            stored = uow.partners.save(partner)
            uow.commit()
        role = f"altpay_reader_{uuid.uuid4().hex}"
        schema = sql.Identifier(store.schema)
        with psycopg.connect(store.server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
            admin.execute(
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, sql.Identifier(role))
            )
            admin.execute(
                sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
                    schema, sql.Identifier(role)
                )
            )
        try:
            options = f"-csearch_path={store.schema} -crole={role}"
            dsn = make_conninfo(store.server_dsn, options=options)
            with PostgresStore(dsn) as reader, reader.unit_of_work() as uow:
                assert uow.partners.get(partner.id) == stored
        finally:
            with psycopg.connect(store.server_dsn, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))

    @pytest.mark.parametrize("case", ["create", "upgrade", "read"])
    def test_a_role_that_lacks_a_privilege_is_told_what_to_grant(
        self, store: SchemaStore, case: str
    ) -> None:
        # PostgreSQL 15 and later give ordinary roles no CREATE on public: a
        # role that may not create a new schema's tables, upgrade those of a
        # schema a migration behind (it does not own them), or read them.
        import psycopg
        from psycopg import sql

        class Older(PostgresStore):
            migrations = MIGRATIONS[:-1]

        role = f"altpay_app_{uuid.uuid4().hex}"
        schema = store.schema if case == "read" else f"altpay_test_{uuid.uuid4().hex}"
        latest = len(MIGRATIONS)
        names = (sql.Identifier(schema), sql.Identifier(role))
        with psycopg.connect(store.server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(names[1]))
            if case != "read":
                admin.execute(sql.SQL("CREATE SCHEMA {}").format(names[0]))
            admin.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(*names))
            if case == "create":
                admin.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(*names))
        if case == "upgrade":
            # Made by the version before, as its owner; the role may read it.
            Older(in_schema(store.server_dsn, schema)).close()
            with psycopg.connect(store.server_dsn, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(*names)
                )
        work = {
            "create": "create",
            "upgrade": f"upgrade (from version {latest - 1} to {latest})",
            "read": "read",
        }[case]
        try:
            refused = opened_as(store.server_dsn, schema, role)
            message = str(refused)
            assert f"role {role} may not {work} altpay-core's tables in schema {schema}" in message
            assert f"CREATE SCHEMA altpay AUTHORIZATION {role}" in message
            assert type(refused.__cause__) is psycopg.errors.InsufficientPrivilege
            # Nothing was created or changed.
            with psycopg.connect(store.server_dsn) as connection:
                tables = connection.execute(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = %s", (schema,)
                ).fetchall()
                version = connection.execute(
                    sql.SQL("SELECT version FROM {}.altpay_schema").format(names[0])
                    if case != "create"
                    else "SELECT NULL"
                ).fetchall()
            expected = {"create": None, "upgrade": latest - 1, "read": latest}[case]
            assert version == [(expected,)]
            if case == "create":
                assert tables == [(0,)]
        finally:
            if case != "read":
                drop_schema(store.server_dsn, schema)
            drop_role(store.server_dsn, role)

    @pytest.mark.parametrize("usage", [False, None])
    def test_a_role_with_no_schema_it_may_use_is_told_what_to_do(
        self, store: SchemaStore, usage: bool | None
    ) -> None:
        # A schema it may not use (no USAGE), or none at all: PostgreSQL
        # selects no schema to create in.
        import psycopg
        from psycopg import sql

        role = f"altpay_app_{uuid.uuid4().hex}"
        schema = f"altpay_test_{uuid.uuid4().hex}"
        with psycopg.connect(store.server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
            if usage is False:
                admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            refused = opened_as(store.server_dsn, schema, role)
            message = str(refused)
            assert f"role {role} has no schema to create altpay-core's tables in" in message
            assert f"search_path ({schema})" in message
            assert type(refused.__cause__) is psycopg.errors.InvalidSchemaName
        finally:
            if usage is False:
                drop_schema(store.server_dsn, schema)
            drop_role(store.server_dsn, role)

    def test_a_newer_schema_is_refused(self, store: SchemaStore) -> None:
        import psycopg

        with psycopg.connect(in_schema(store.server_dsn, store.schema), autocommit=True) as c:
            c.execute("UPDATE altpay_schema SET version = %s", (len(MIGRATIONS) + 1,))
        with pytest.raises(SchemaVersionError):
            PostgresStore(in_schema(store.server_dsn, store.schema))

    @pytest.mark.parametrize(
        ("statements", "reason"),
        [
            (
                ["CREATE TABLE partners (id int PRIMARY KEY, name text)"],
                "it has no altpay_schema table, and it holds 'partners' of its own",
            ),
            (
                ["CREATE VIEW customers AS SELECT 1 AS x"],
                "it has no altpay_schema table, and it holds 'customers' of its own",
            ),
            (
                [
                    "CREATE FUNCTION customer_tags_company_key() RETURNS int "
                    "LANGUAGE sql AS 'SELECT 1'",
                    "CREATE TYPE status AS ENUM ('on')",
                ],
                "it holds 'customer_tags_company_key', 'status' of its own",
            ),
            (
                [
                    "CREATE FUNCTION label(int) RETURNS int LANGUAGE sql AS 'SELECT 1'",
                    "CREATE FUNCTION label(text) RETURNS int LANGUAGE sql AS 'SELECT 1'",
                    "CREATE TYPE label AS ENUM ('on')",
                    *(
                        f"CREATE FUNCTION {name}() RETURNS int LANGUAGE sql AS 'SELECT 1'"
                        for name in ("b", "c", "d", "e", "f")
                    ),
                ],
                # Before: "'b', 'c', 'd', 'e', 'f' and 3 more", the name
                # of an overloaded function (an extension's) counted each time.
                "it holds 'b', 'c', 'd', 'e', 'f' and 1 more of its own",
            ),
            (
                [
                    "CREATE TABLE altpay_schema (version integer NOT NULL)",
                    "INSERT INTO altpay_schema VALUES (0)",
                    "CREATE TABLE users (id int)",
                ],
                # Before: the store added its tables next to another program's.
                "its altpay_schema version is 0, and it holds 'users' of its own",
            ),
            (
                [
                    "CREATE TABLE altpay_schema (version integer NOT NULL)",
                    "INSERT INTO altpay_schema VALUES (0)",
                    "CREATE TABLE partners (id int)",
                ],
                # Before: psycopg's DuplicateTable.
                "its altpay_schema version is 0, and it holds 'partners' of its own",
            ),
            (
                ["CREATE TABLE altpay_schema (id int)"],
                "its altpay_schema is not a table of one integer column, version",
            ),
            (
                ["CREATE VIEW altpay_schema AS SELECT 3 AS version"],
                "its altpay_schema is not a table of one integer column, version",
            ),
            (
                ["CREATE TABLE altpay_schema (version integer)"],
                "its altpay_schema table holds 0 rows, not one version",
            ),
            (
                [
                    "CREATE TABLE altpay_schema (version integer)",
                    "INSERT INTO altpay_schema VALUES (NULL)",
                ],
                "its altpay_schema table holds 1 rows, not one version",
            ),
            (
                [
                    "CREATE TABLE altpay_schema (version integer NOT NULL)",
                    "INSERT INTO altpay_schema VALUES (1), (2)",
                ],
                "its altpay_schema table holds 2 rows, not one version",
            ),
            (
                [
                    "CREATE TABLE altpay_schema (version integer NOT NULL)",
                    f"INSERT INTO altpay_schema VALUES ({len(MIGRATIONS)})",
                ],
                f"its altpay_schema version is {len(MIGRATIONS)}, but it lacks "
                "altpay-core's tables access_requests, customer_tags,",
            ),
            (
                [
                    "CREATE TABLE altpay_schema (version integer NOT NULL)",
                    f"INSERT INTO altpay_schema VALUES ({len(MIGRATIONS) + 1})",
                    "CREATE TABLE users (id int)",
                ],
                f"its altpay_schema version is {len(MIGRATIONS) + 1}, but it holds "
                "none of altpay-core's tables",
            ),
        ],
    )
    def test_a_schema_that_is_not_altpay_cores_is_refused_as_it_is(
        self, postgres_dsn: str, statements: list[str], reason: str
    ) -> None:
        # Before: CREATE TABLE ran over another program's tables (psycopg's
        # DuplicateTable, UndefinedColumn), or a version with no tables
        # opened, and every unit of work then failed with UndefinedTable.
        with foreign_schema(postgres_dsn, statements) as (schema, dsn):
            before = schema_objects(dsn)
            with pytest.raises(AltpayError, match="is not an altpay-core database") as caught:
                PostgresStore(dsn)
            assert type(caught.value) is AltpayError
            message = str(caught.value)
            assert f"the schema {shown(schema)} of the database 'altpay_test' " in message
            assert reason in message
            assert message.endswith(
                "PostgresStore needs a schema of its own (or a new one), "
                "and left this one as it was"
            )
            assert schema_objects(dsn) == before

    @pytest.mark.parametrize(
        ("statement", "name"),
        [
            ("CREATE TABLE invoices (id int)", "invoices"),
            ("CREATE VIEW payments AS SELECT 1 AS x", "payments"),
            ("CREATE TYPE payment_methods AS ENUM ('on')", "payment_methods"),
        ],
    )
    def test_a_table_of_your_own_that_a_later_migration_creates_is_refused(
        self, postgres_dsn: str, statement: str, name: str
    ) -> None:
        # Before: the upgrade failed with psycopg's DuplicateTable.
        class First(PostgresStore):
            migrations = MIGRATIONS[:1]

        with foreign_schema(postgres_dsn, []) as (schema, dsn):
            First(dsn).close()
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as connection:
                connection.execute(statement)
            before = schema_objects(dsn)
            with pytest.raises(AltpayError, match="cannot be upgraded") as caught:
                PostgresStore(dsn)
            assert type(caught.value) is AltpayError
            assert str(caught.value) == (
                f"the schema {shown(schema)} of the database 'altpay_test' cannot be "
                f"upgraded: it holds {shown(name)} of its own, and altpay-core's migrations "
                "after its version 1 create tables of those names: rename them; "
                "PostgresStore left it as it was"
            )
            assert schema_objects(dsn) == before

    @pytest.mark.parametrize(
        ("version", "statements", "names", "made"),
        [
            (
                3,
                ["CREATE FUNCTION currency_of_data() RETURNS text LANGUAGE sql AS 'SELECT 1'"],
                ["currency_of_data"],
                "functions",
            ),
            (
                2,
                ["CREATE PROCEDURE customer_tags_company_key() LANGUAGE sql AS 'SELECT 1'"],
                ["customer_tags_company_key"],
                "functions",
            ),
            (
                3,
                [
                    "CREATE FUNCTION mine() RETURNS trigger LANGUAGE plpgsql "
                    "AS 'BEGIN RETURN NEW; END'",
                    "CREATE TRIGGER payments_currency BEFORE INSERT ON payments "
                    "FOR EACH ROW EXECUTE FUNCTION mine()",
                ],
                ["payments_currency"],
                "triggers",
            ),
            (
                1,
                [
                    "CREATE TABLE invoices (id int)",
                    "CREATE FUNCTION currency_of_data() RETURNS int LANGUAGE sql AS 'SELECT 1'",
                ],
                ["currency_of_data", "invoices"],
                "functions and tables",
            ),
            (
                2,
                ["CREATE TABLE mine (x int)", "CREATE INDEX customers_by_status ON mine (x)"],
                ["customers_by_status"],
                "indexes",
            ),
            (
                4,
                [
                    "CREATE TABLE mine (x int)",
                    "CREATE INDEX access_requests_pending_by_email ON mine (x)",
                ],
                ["access_requests_pending_by_email"],
                "indexes",
            ),
            (
                1,
                ["CREATE TABLE mine (x int)", "CREATE INDEX payments ON mine (x)"],
                ["payments"],
                "tables",
            ),
        ],
    )
    def test_an_index_function_or_trigger_of_your_own_that_a_later_migration_creates_is_refused(
        self,
        postgres_dsn: str,
        version: int,
        statements: list[str],
        names: list[str],
        made: str,
    ) -> None:
        # Before: the upgrade failed half way with psycopg's DuplicateFunction
        # (DuplicateObject for a trigger on the same table, DuplicateTable for
        # an index).
        class Older(PostgresStore):
            migrations = MIGRATIONS[:version]

        with foreign_schema(postgres_dsn, []) as (schema, dsn):
            Older(dsn).close()
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as connection:
                for statement in statements:
                    connection.execute(statement)
            before = schema_objects(dsn)
            with pytest.raises(AltpayError, match="cannot be upgraded") as caught:
                PostgresStore(dsn)
            assert type(caught.value) is AltpayError
            assert str(caught.value) == (
                f"the schema {shown(schema)} of the database 'altpay_test' cannot be "
                f"upgraded: it holds {', '.join(shown(name) for name in names)} of its own, "
                f"and altpay-core's migrations after its version {version} create {made} of "
                "those names: rename them; PostgresStore left it as it was"
            )
            assert schema_objects(dsn) == before

    @pytest.mark.parametrize(
        "statement",
        [
            # Another function of the name, taking arguments: an overload.
            "CREATE FUNCTION currency_of_data(int) RETURNS int LANGUAGE sql AS 'SELECT 1'",
            # A trigger of the name on a table of your own.
            "CREATE TRIGGER invoices_currency BEFORE INSERT ON mine "
            "FOR EACH ROW EXECUTE FUNCTION customer_tags_company_key()",
        ],
    )
    def test_an_overload_or_a_trigger_elsewhere_does_not_keep_the_upgrade_back(
        self, postgres_dsn: str, statement: str
    ) -> None:
        class Third(PostgresStore):
            migrations = MIGRATIONS[:3]

        with foreign_schema(postgres_dsn, []) as (_, dsn):
            Third(dsn).close()
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as connection:
                connection.execute("CREATE TABLE mine (company_key text)")
                connection.execute(statement)
            PostgresStore(dsn).close()
            with psycopg.connect(dsn, autocommit=True) as connection:
                row = connection.execute("SELECT version FROM altpay_schema").fetchone()
                assert row == (len(MIGRATIONS),)

    def test_a_function_named_as_a_later_table_does_not_keep_the_upgrade_back(
        self, postgres_dsn: str
    ) -> None:
        class First(PostgresStore):
            migrations = MIGRATIONS[:1]

        with foreign_schema(postgres_dsn, []) as (_, dsn):
            First(dsn).close()
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as connection:
                connection.execute(
                    "CREATE FUNCTION invoices() RETURNS int LANGUAGE sql AS 'SELECT 1'"
                )
            PostgresStore(dsn).close()
            with psycopg.connect(dsn, autocommit=True) as connection:
                row = connection.execute("SELECT version FROM altpay_schema").fetchone()
                assert row == (len(MIGRATIONS),)

    @settings(max_examples=10)
    @given(version=st.integers(min_value=-(2**31), max_value=-1), altpay=st.booleans())
    def test_a_negative_version_is_not_an_altpay_core_schema(
        self, postgres_dsn: str, version: int, altpay: bool
    ) -> None:
        # Before: migrations[version:] ran the last steps again, or over
        # another program's tables (UndefinedTable).
        statements = ["CREATE TABLE users (id int)"]
        with foreign_schema(postgres_dsn, [] if altpay else statements) as (_, dsn):
            if altpay:
                PostgresStore(dsn).close()
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as connection:
                if not altpay:
                    connection.execute("CREATE TABLE altpay_schema (version integer NOT NULL)")
                    connection.execute("INSERT INTO altpay_schema VALUES (0)")
                connection.execute("UPDATE altpay_schema SET version = %s", (version,))
            before = schema_objects(dsn)
            with pytest.raises(AltpayError, match="not an altpay-core database") as caught:
                PostgresStore(dsn)
            assert type(caught.value) is AltpayError
            assert (
                f"its altpay_schema version is {version}, and altpay-core's schema "
                "versions are never negative" in str(caught.value)
            )
            assert schema_objects(dsn) == before

    def test_a_newer_schema_with_nothing_else_is_refused_as_newer(self, postgres_dsn: str) -> None:
        statements = [
            "CREATE TABLE altpay_schema (version integer NOT NULL)",
            f"INSERT INTO altpay_schema VALUES ({len(MIGRATIONS) + 1})",
        ]
        with (
            foreign_schema(postgres_dsn, statements) as (_, dsn),
            pytest.raises(SchemaVersionError),
        ):
            PostgresStore(dsn)

    def test_a_schema_found_changed_once_the_lock_is_taken_is_refused(
        self, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The check runs again under the migration's lock: a schema that
        # another program filled while the store waited is left alone.
        with foreign_schema(postgres_dsn, []) as (_, dsn):
            import psycopg

            original = postgres_adapter.check_schema
            calls: list[int] = []

            def check_schema(connection: Any, migrations: Any) -> int | None:
                calls.append(1)
                found = original(connection, migrations)
                if len(calls) == 1:  # found new: another program fills it meanwhile
                    with psycopg.connect(dsn, autocommit=True) as other:
                        other.execute("CREATE TABLE partners (id int)")
                return found

            monkeypatch.setattr(postgres_adapter, "check_schema", check_schema)
            with pytest.raises(AltpayError, match="holds 'partners' of its own"):
                PostgresStore(dsn)
            assert len(calls) == 2

    @pytest.mark.parametrize("default", ["read committed", "repeatable read"])
    def test_stores_opening_a_new_schema_at_once_migrate_it_once(
        self, postgres_dsn: str, default: str
    ) -> None:
        # Whatever the session's default isolation: a store that waited for
        # the lock sees the version the first one committed.
        schema = f"altpay_test_{uuid.uuid4().hex}"
        import psycopg

        dsn = in_schema(postgres_dsn, schema, default)

        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute(f'CREATE SCHEMA "{schema}"')
        errors: list[BaseException] = []
        stores: list[PostgresStore] = []

        def open_store() -> None:
            try:
                stores.append(PostgresStore(dsn))
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=open_store) for _ in range(4)]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert errors == []
            assert len(stores) == 4
        finally:
            for opened in stores:
                opened.close()
            drop_schema(postgres_dsn, schema)

    def test_a_store_waits_for_another_migration_whatever_the_sessions_timeouts(
        self, postgres_dsn: str
    ) -> None:
        # The timeouts that the docs recommend are for units of work: a
        # store opening while another server migrates (the lock is the
        # database's) waited 100 ms, then failed with LockNotAvailable.
        import psycopg
        from psycopg.conninfo import make_conninfo

        from altpay_core.adapters.postgres import MIGRATION_LOCK

        schema = f"altpay_test_{uuid.uuid4().hex}"
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute(f'CREATE SCHEMA "{schema}"')
        impatient = make_conninfo(
            postgres_dsn,
            options=f"-csearch_path={schema} -clock_timeout=100 -cstatement_timeout=300",
        )
        errors: list[BaseException] = []
        stores: list[PostgresStore] = []

        def open_store() -> None:
            try:
                stores.append(PostgresStore(impatient))
            except BaseException as error:
                errors.append(error)

        opening = threading.Thread(target=open_store)
        try:
            with psycopg.connect(in_schema(postgres_dsn, schema)) as other:
                # The other server, half-way through its migration.
                other.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                other.execute("CREATE TABLE altpay_schema (version integer NOT NULL)")
                other.execute("INSERT INTO altpay_schema (version) VALUES (%s)", (len(MIGRATIONS),))
                for migration in MIGRATIONS:
                    for statement in migration.statements:
                        other.execute(statement)
                opening.start()
                waiting = "SELECT EXISTS (SELECT FROM pg_locks WHERE NOT granted)"
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and other.execute(waiting).fetchone() != (True,):
                    time.sleep(0.02)
                time.sleep(0.6)  # longer than both timeouts
                other.commit()
            opening.join(30)
            assert errors == []
            assert len(stores) == 1
            with stores[0].unit_of_work() as uow:
                uow.partners.save(Partner.create(name="Northwind IT", country="US"))
                uow.commit()
        finally:
            for opened in stores:
                opened.close()
            drop_schema(postgres_dsn, schema)


@pytest.mark.postgres
class TestOutboxOrder:
    def test_a_commit_holds_later_outbox_writers_until_it_ends(
        self, store: SchemaStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        partner = Partner.create(name="Northwind IT", country="US")
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            uow.commit()
        inserted, release = threading.Event(), threading.Event()
        original = PostgresUnitOfWork._write_outbox

        def slow_write(uow: PostgresUnitOfWork, connection: Any) -> None:
            original(uow, connection)
            if threading.current_thread().name == "first":
                inserted.set()  # positions taken, not yet committed
                release.wait(30)

        monkeypatch.setattr(PostgresUnitOfWork, "_write_outbox", slow_write)
        first, second = created(partner, "First"), created(partner, "Second")
        done: list[str] = []

        def commit(customer: Customer) -> None:
            with store.unit_of_work() as uow:
                uow.customers.save(customer)
                uow.commit()
            done.append(customer.company)

        one = threading.Thread(target=commit, args=(first,), name="first")
        two = threading.Thread(target=commit, args=(second,), name="second")
        one.start()
        assert inserted.wait(30)
        two.start()
        two.join(0.5)
        # The second commit waits for the first to end: no later position
        # becomes visible while an earlier one is still uncommitted.
        assert two.is_alive()
        with store.unit_of_work() as uow:
            assert uow.outbox.pending() == []
        release.set()
        one.join(30)
        two.join(30)
        # Which thread appends first after both commits is up to the
        # scheduler; the outbox's order is what the commits decide.
        assert sorted(done) == ["First", "Second"]
        with store.unit_of_work() as uow:
            messages = uow.outbox.pending()
        assert [m.event.aggregate_id for m in messages] == [str(first.id), str(second.id)]
        assert messages[0].position < messages[1].position


def while_committing(
    store: SchemaStore,
    monkeypatch: pytest.MonkeyPatch,
    first: Callable[[], None],
    second: Callable[[], None],
) -> tuple[dict[str, BaseException | None], bool]:
    """Run ``first`` in a thread; once its commit has written every row and
    made every check, but before it writes the outbox and commits, run
    ``second`` in another thread until it waits for a lock that ``first``
    holds, or ends; then let ``first`` commit. What each raised (``None``
    for nothing), and whether ``second`` waited for ``first``."""
    import psycopg

    original = PostgresUnitOfWork._write_outbox
    outcome: dict[str, BaseException | None] = {}
    waited: list[bool] = []
    started: list[threading.Thread] = []

    def run(name: str, work: Callable[[], None]) -> None:
        try:
            work()
            outcome[name] = None
        except BaseException as error:  # handed to the test
            outcome[name] = error

    def hold(uow: PostgresUnitOfWork, connection: Any) -> None:
        if threading.current_thread().name == "first" and not started:
            pid = connection.info.backend_pid
            other = threading.Thread(target=run, args=("second", second), name="second")
            started.append(other)
            other.start()
            blocked = False
            deadline = time.monotonic() + 30
            with psycopg.connect(store.server_dsn, autocommit=True) as admin:
                while other.is_alive() and not blocked and time.monotonic() < deadline:
                    row = admin.execute(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE %s = ANY(pg_blocking_pids(pid))",
                        (pid,),
                    ).fetchone()
                    blocked = row is not None and row[0] > 0
                    time.sleep(0.01)
            waited.append(blocked)
        original(uow, connection)

    monkeypatch.setattr(PostgresUnitOfWork, "_write_outbox", hold)
    one = threading.Thread(target=run, args=("first", first), name="first")
    one.start()
    one.join(60)
    for other in started:
        other.join(60)
    assert sorted(outcome) == ["first", "second"], outcome
    return outcome, waited[0]


def tagging(store: SchemaStore) -> tuple[Partner, Customer]:
    """A stored partner with an admin and a tag, VIP, and a customer without tags."""
    partner = Partner.create(name="Northwind IT", country="US")
    partner = partner.add_team_member(name="Ada", email="ada@northwind.example", role=Role.ADMIN)
    partner = partner.add_tag(name="VIP", colour="#AA0000")
    with store.unit_of_work() as uow:
        partner = uow.partners.save(partner)
        customer = uow.customers.save(new_customer(partner))
        uow.commit()
    return partner, customer


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


def refused_after_waiting(
    outcome: dict[str, BaseException | None], waited: bool
) -> InvariantViolation:
    """The second writer waited for the first's commit, which went through,
    and was then refused by a rule between aggregates: its error."""
    assert waited
    assert outcome["first"] is None
    refused = outcome["second"]
    assert isinstance(refused, InvariantViolation)
    return refused


def resolving(store: SchemaStore) -> tuple[Partner, AccessRequest, TeamMember]:
    """A stored partner with a Sub-Admin, and a pending access request."""
    partner, _ = tagging(store)
    partner = partner.add_team_member(name="Sam", email="sam@northwind.example", role="Sub-Admin")
    request = AccessRequest.open(partner, email="dee@globex.example", first_name="Dee")
    with store.unit_of_work() as uow:
        partner = uow.partners.save(partner)
        request = uow.access_requests.save(request)
        uow.commit()
    return partner, request, partner.team[-1]


@pytest.mark.postgres
class TestLocksBetweenAggregates:
    """The checks between aggregates lock what they read (``FOR SHARE``): a
    writer that would change it waits for the commit, and then sees it."""

    @pytest.mark.parametrize("default", ["repeatable read", "serializable"])
    def test_the_checks_see_other_commits_whatever_the_sessions_isolation(
        self, store: SchemaStore, default: str
    ) -> None:
        # A unit of work's transaction is READ COMMITTED, whatever the
        # session's default: under a snapshot, the check at commit missed a
        # tag another unit of work gave a customer meanwhile, and the tag was
        # deleted while the customer still carried it.
        partner, customer = tagging(store)
        strict = PostgresStore(in_schema(store.server_dsn, store.schema, default))
        with strict, strict.unit_of_work() as uow:
            uow.outbox.pending()  # its transaction has begun

            def tag() -> None:
                with strict.unit_of_work() as other:
                    other.customers.save(customer.set_tags(partner, ["VIP"]))
                    other.commit()

            in_thread(tag)
            without = uow.partners.get(partner.id).delete_tag("VIP", by=partner.team[0])

            def delete() -> None:
                uow.partners.save(without)
                uow.commit()

            with pytest.raises(ConcurrencyConflict):
                delete()
        with store.unit_of_work() as uow:
            assert [t.name for t in uow.partners.get(partner.id).tags] == ["VIP"]

    def test_a_tagger_waits_for_a_tag_deletion_and_is_refused(
        self, store: SchemaStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        partner, customer = tagging(store)

        def delete() -> None:
            with store.unit_of_work() as uow:
                services.delete_tag(uow, partner.id, "VIP", by=partner.team[0])

        def tag() -> None:
            with store.unit_of_work() as uow:
                catalog = uow.partners.get(partner.id)  # the tag is still there
                current = uow.customers.get(partner.id, customer.id)
                uow.customers.save(current.set_tags(catalog, ["VIP"]))
                uow.commit()

        outcome, waited = while_committing(store, monkeypatch, delete, tag)
        refused = refused_after_waiting(outcome, waited)
        assert (refused.rule, refused.path) == ("tags", "tags")
        with store.unit_of_work() as uow:
            assert uow.partners.get(partner.id).tags == ()
            assert uow.customers.get(partner.id, customer.id) == customer

    def test_a_tag_deletion_waits_for_a_tagger_and_removes_its_tag(
        self, store: SchemaStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        partner, customer = tagging(store)

        def tag() -> None:
            with store.unit_of_work() as uow:
                uow.customers.save(customer.set_tags(partner, ["VIP"]))
                uow.commit()

        def delete() -> None:
            with store.unit_of_work() as uow:
                services.delete_tag(uow, partner.id, "VIP", by=partner.team[0])

        outcome, waited = while_committing(store, monkeypatch, tag, delete)
        assert waited
        assert outcome == {"first": None, "second": None}
        with store.unit_of_work() as uow:
            assert uow.partners.get(partner.id).tags == ()
            stored = uow.customers.get(partner.id, customer.id)
        assert (stored.tags, stored.version) == (frozenset(), 3)

    def test_an_archive_waits_for_a_new_invoice_of_the_customer(
        self, store: SchemaStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        partner, customer = tagging(store)

        def issue() -> None:
            with store.unit_of_work() as uow:
                current = uow.customers.get(partner.id, customer.id)
                uow.invoices.save(
                    Invoice.issue(
                        partner,
                        current,
                        by=partner.team[0],
                        number="1001",
                        lines=[{"description": "Setup", "quantity": 1, "unit_amount": "250.00"}],
                        due_date=dt.date(2026, 3, 2),
                        today=dt.date(2026, 2, 1),
                    )
                )
                uow.commit()

        def archive() -> None:
            with store.unit_of_work() as uow:
                uow.customers.save(uow.customers.get(partner.id, customer.id).archive())
                uow.commit()

        outcome, waited = while_committing(store, monkeypatch, issue, archive)
        assert waited
        assert outcome == {"first": None, "second": None}
        # The invoice was committed first, while its customer was active.
        with store.unit_of_work() as uow:
            topics = [m.event.topic for m in uow.outbox.pending()]
        assert topics == ["invoice_created", "customer_archived"]

    def test_an_archive_of_a_method_waits_for_a_new_payment_by_it(
        self, store: SchemaStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The payment's check read the book FOR SHARE: the archive waits for
        # the payment's commit, and the payment was made while the card was
        # active.
        partner, customer = tagging(store)
        invoice = Invoice.issue(
            partner,
            customer,
            by=partner.team[0],
            number="1001",
            lines=[{"description": "Setup", "quantity": 1, "unit_amount": "250.00"}],
            due_date=dt.date(2026, 3, 2),
            today=dt.date(2026, 2, 1),
        )
        book = CustomerPaymentMethods.of(customer).add(
            type="card", display_name="Visa", last4="4242"
        )
        with store.unit_of_work() as uow:
            invoice = uow.invoices.save(invoice)
            book = uow.payment_methods.save(book)
            uow.commit()
        card = book.methods[0]

        def pay() -> None:
            with store.unit_of_work() as uow:
                payment, touched = pay_invoices(
                    partner,
                    customer,
                    [invoice],
                    payer=customer.users[0],
                    method=card,
                    methods=book,
                    idempotency_key="k1",
                )
                uow.payments.save(payment)
                for touched_invoice in touched:
                    uow.invoices.save(touched_invoice)
                uow.commit()

        def archive() -> None:
            with store.unit_of_work() as uow:
                uow.payment_methods.save(book.archive(card.id))
                uow.commit()

        outcome, waited = while_committing(store, monkeypatch, pay, archive)
        assert waited
        assert outcome == {"first": None, "second": None}
        with store.unit_of_work() as uow:
            (payment,) = uow.payments.for_invoice(partner.id, invoice.id)
            assert not uow.payment_methods.get(partner.id, customer.id).active
        assert payment.payment_method_id == card.id

    def test_a_connection_that_syncs_customers_waits_for_one_added_by_hand(
        self, store: SchemaStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        partner, _ = tagging(store)
        added = new_customer(partner, company="Initech")

        def add() -> None:
            with store.unit_of_work() as uow:
                uow.customers.save(added)
                uow.commit()

        def connect() -> None:
            with store.unit_of_work() as uow:
                current = uow.partners.get(partner.id)
                uow.partners.save(current.connect_integration("halopsa", syncs_customers=True))
                uow.commit()

        outcome, waited = while_committing(store, monkeypatch, add, connect)
        assert waited
        assert outcome == {"first": None, "second": None}
        with store.unit_of_work() as uow:
            assert uow.partners.get(partner.id).syncs_customers
            assert uow.customers.get(partner.id, added.id) == attrs.evolve(added, version=1)

    @pytest.mark.parametrize("saved", ["invoice", "payment methods"])
    def test_a_new_invoice_or_book_waits_for_its_customer_restored_and_is_kept(
        self, store: SchemaStore, monkeypatch: pytest.MonkeyPatch, saved: str
    ) -> None:
        # Restoring an archived synced customer takes its external reference
        # back: its row is deleted and inserted again. A check that waited on
        # its lock saw no customer (rule I1) though it was stored throughout.
        partner, _ = tagging(store)
        partner = partner.connect_integration("xero", syncs_customers=True)
        customer = Customer.from_sync(
            partner,
            external_ref=ExternalRef("xero", "42"),
            company="Globex",
            address=ADDRESS,
            users=[{"first_name": "Ann", "last_name": "Lee", "email": "ann@globex.example"}],
        )
        with store.unit_of_work() as uow:
            partner = uow.partners.save(partner)
            customer = uow.customers.save(customer)
            uow.commit()
        aggregate = (
            new_invoice(partner, customer)
            if saved == "invoice"
            else CustomerPaymentMethods.of(customer).add(
                type="card", display_name="Visa", last4="4242"
            )
        )
        with store.unit_of_work() as uow:
            archived = uow.customers.save(customer.archive())
            uow.commit()

        def restore() -> None:
            with store.unit_of_work() as uow:
                uow.customers.save(archived.restore())
                uow.commit()

        def save() -> None:
            with store.unit_of_work() as uow:
                if saved == "invoice":
                    uow.invoices.save(aggregate)  # type: ignore[arg-type]
                else:
                    uow.payment_methods.save(aggregate)  # type: ignore[arg-type]
                uow.commit()

        outcome, waited = while_committing(store, monkeypatch, restore, save)
        assert waited
        assert outcome == {"first": None, "second": None}
        with store.unit_of_work() as uow:
            assert uow.customers.get(partner.id, customer.id).is_active

    def test_one_added_by_hand_waits_for_a_connection_and_is_refused(
        self, store: SchemaStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        partner, customer = tagging(store)
        added = new_customer(partner, company="Initech")

        def connect() -> None:
            with store.unit_of_work() as uow:
                uow.partners.save(partner.connect_integration("halopsa", syncs_customers=True))
                uow.commit()

        def add() -> None:
            with store.unit_of_work() as uow:
                uow.customers.save(added)
                uow.commit()

        outcome, waited = while_committing(store, monkeypatch, connect, add)
        refused = refused_after_waiting(outcome, waited)
        assert refused.rule == "C6"
        with store.unit_of_work() as uow:
            assert [c.id for c in uow.customers.list(partner.id).items] == [customer.id]

    def test_a_demotion_waits_for_a_resolution_by_the_member(
        self, store: SchemaStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        partner, request, sam = resolving(store)

        def resolve() -> None:
            with store.unit_of_work() as uow:
                uow.access_requests.save(request.reject(partner=partner, by=sam))
                uow.commit()

        def demote() -> None:
            with store.unit_of_work() as uow:
                current = uow.partners.get(partner.id)
                uow.partners.save(current.change_role(sam, "member", by=partner.team[0]))
                uow.commit()

        outcome, waited = while_committing(store, monkeypatch, resolve, demote)
        assert waited
        assert outcome == {"first": None, "second": None}
        with store.unit_of_work() as uow:
            assert not uow.access_requests.get(partner.id, request.id).is_pending

    def test_a_resolution_waits_for_a_demotion_and_is_refused(
        self, store: SchemaStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        partner, request, sam = resolving(store)

        def demote() -> None:
            with store.unit_of_work() as uow:
                uow.partners.save(partner.change_role(sam, "member", by=partner.team[0]))
                uow.commit()

        def resolve() -> None:
            with store.unit_of_work() as uow:
                uow.access_requests.save(request.reject(partner=partner, by=sam))
                uow.commit()

        outcome, waited = while_committing(store, monkeypatch, demote, resolve)
        refused = refused_after_waiting(outcome, waited)
        assert (refused.rule, refused.path) == ("C9", "resolved_by")
        with store.unit_of_work() as uow:
            assert uow.access_requests.get(partner.id, request.id) == request


@pytest.mark.postgres
class TestEncodings:
    def test_text_travels_as_utf8_whatever_the_client_encoding_says(
        self, store: SchemaStore
    ) -> None:
        from psycopg.conninfo import make_conninfo

        dsn = make_conninfo(in_schema(store.server_dsn, store.schema), client_encoding="LATIN1")
        partner = Partner.create(name="東京 IT", country="US")
        with PostgresStore(dsn) as latin, latin.unit_of_work() as uow:
            uow.partners.save(partner)
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.partners.get(partner.id).name == "東京 IT"

    def test_a_database_that_cannot_hold_any_text_is_refused_at_open(
        self, postgres_dsn: str
    ) -> None:
        import psycopg
        from psycopg import sql
        from psycopg.conninfo import make_conninfo

        name = f"altpay_latin1_{uuid.uuid4().hex}"
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'LATIN1'").format(
                    sql.Identifier(name)
                )
            )
        try:
            with pytest.raises(ValidationError) as caught:
                PostgresStore(make_conninfo(postgres_dsn, dbname=name))
            assert (caught.value.paths, caught.value.codes) == (["dsn"], ["database_encoding"])
            assert "LATIN1" in str(caught.value)
        finally:
            with psycopg.connect(postgres_dsn, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))


@pytest.mark.postgres
class TestDriverErrors:
    def test_a_broken_connection_writes_nothing_and_is_not_reused(self, store: SchemaStore) -> None:
        import psycopg

        partner = Partner.create(name="Northwind IT", country="US")
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            uow.outbox.pending()  # begins the write transaction
            connection = uow._conn()
            pid = connection.info.backend_pid
            with psycopg.connect(store.server_dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with pytest.raises(psycopg.OperationalError):
                uow.commit()
        assert connection.closed
        assert connection not in store._idle
        with store.unit_of_work() as uow, pytest.raises(NotFound):
            uow.partners.get(partner.id)

    @pytest.mark.parametrize("commit_first", [True, False])
    def test_a_unit_of_works_connection_the_server_ended_between_transactions_is_replaced(
        self, store: SchemaStore, commit_first: bool
    ) -> None:
        # A long-lived block (a worker running due payments, each in its own
        # commit): its connection, idle between commits or between reads,
        # may be ended meanwhile. No transaction was open on it, so another
        # serves, and nothing saved but not yet written is lost.
        import psycopg

        partner = Partner.create(name="Northwind IT", country="US")
        other = Partner.create(name="Contoso", country="US")
        with store.unit_of_work() as uow:
            if commit_first:
                uow.partners.save(partner)
                uow.commit()
            else:
                with pytest.raises(NotFound):  # a read: the block holds a connection
                    uow.partners.get(partner.id)
                uow.partners.save(partner)
            connection = uow._conn()
            with psycopg.connect(store.server_dsn, autocommit=True) as admin:
                ended = admin.execute(
                    "SELECT pg_terminate_backend(%s, 10000)", (connection.info.backend_pid,)
                ).fetchone()
                assert ended == (True,)
            uow.partners.save(other)
            uow.commit()
            assert uow._conn() is not connection
            assert uow.partners.get(partner.id).version == 1
        assert connection.closed
        with store.unit_of_work() as uow:
            assert [uow.partners.get(p.id).version for p in (partner, other)] == [1, 1]

    def test_idle_connections_the_server_ended_are_not_handed_out(self, store: SchemaStore) -> None:
        # A restart, an administrator or a timeout ends idle sessions: the
        # next units of work get new connections, not errors.
        import psycopg

        units = [store.unit_of_work() for _ in range(3)]
        for uow in units:
            uow.__enter__()
        for uow in units:
            uow.__exit__(None, None, None)
        idle = list(store._idle)
        assert len(idle) == 3
        with psycopg.connect(store.server_dsn, autocommit=True) as admin:
            for connection in idle:
                # Waits (up to 10 s) for the session to end.
                ended = admin.execute(
                    "SELECT pg_terminate_backend(%s, 10000)", (connection.info.backend_pid,)
                ).fetchone()
                assert ended == (True,)
        partner = Partner.create(name="Northwind IT", country="US")
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.partners.get(partner.id).version == 1
        assert all(connection.closed for connection in idle)
        assert not set(map(id, idle)) & set(map(id, store._idle))

    @pytest.mark.skipif(
        "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
    )
    def test_a_forked_child_leaves_the_parents_connections_alone(self, store: SchemaStore) -> None:
        # Closing the store, or ending a unit of work begun before the fork,
        # in the child must not end the parent's sessions.
        earlier, uow = store.unit_of_work(), store.unit_of_work()
        earlier.__enter__()
        uow.__enter__()
        earlier.__exit__(None, None, None)
        (idle,) = store._idle
        busy = uow._connection
        assert busy is not None
        # A transaction open at the fork: the child must not roll it back.
        first = uow.partners.save(Partner.create(name="Before the fork", country="US"))
        assert uow.customers.list(first.id).items == ()  # written, not committed
        context = multiprocessing.get_context("fork")
        for target, args in ((PostgresStore.close, (store,)), (uow.__exit__, (None, None, None))):
            child = context.Process(target=target, args=args)
            child.start()
            child.join(30)
            assert child.exitcode == 0
        for connection in (idle, busy):  # the sessions are still there
            assert connection.execute("SELECT 1").fetchone() == (1,)
        partner = uow.partners.save(Partner.create(name="Parent", country="US"))
        uow.commit()
        uow.__exit__(None, None, None)
        assert store._idle == [idle, busy]
        for _ in range(2):  # on each connection
            with store.unit_of_work() as uow:
                assert uow.partners.get(partner.id).version == 1
                assert uow.partners.get(first.id).version == 1

    def test_a_failure_outside_commit_stops_the_unit_of_work(
        self, store: SchemaStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # As on SQLite: a batch refused at a save rolls back the earlier
        # saves too, and the unit of work refuses to commit the rest alone.
        from altpay_core.adapters import _sql

        monkeypatch.setattr(_sql, "BATCH_SIZE", 3)
        partner = Partner.create(name="Northwind IT", country="US")
        taken = created(partner, "Taken")
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            taken = uow.customers.save(taken)
            uow.commit()
        with store.unit_of_work() as uow:
            uow.customers.save(created(partner, "A"))
            uow.customers.save(created(partner, "B"))
            with pytest.raises(ConcurrencyConflict):
                uow.customers.save(attrs.evolve(taken, version=0))
            with pytest.raises(AltpayError, match="rolled back by an error"):
                uow.commit()
            uow.rollback()
            uow.commit()
        with store.unit_of_work() as uow:
            assert [c.company for c in uow.customers.list(partner.id)] == ["Taken"]

    def test_a_publisher_does_not_hold_writers_off(self, store: SchemaStore) -> None:
        # Its claim is row locks on the messages it lists: writers, events
        # and all, go on meanwhile.
        partner = Partner.create(name="Northwind IT", country="US")
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            uow.customers.save(created(partner, "First"))
            uow.commit()
        with store.unit_of_work() as publisher:
            (first,) = publisher.outbox.pending()

            def write() -> None:
                with store.unit_of_work() as writer:
                    writer.customers.save(created(partner, "Second"))
                    writer.commit()

            def publish() -> list[Any]:
                with store.unit_of_work() as other:
                    return other.outbox.pending()

            in_thread(write)
            (second,) = in_thread(publish)
            assert second.position > first.position
            publisher.outbox.mark_published([first.position])
            publisher.commit()
        with store.unit_of_work() as uow:
            assert uow.outbox.pending() == [second]

    def test_a_unique_violation_found_at_commit_is_a_conflict(self, store: SchemaStore) -> None:
        import psycopg

        partner = Partner.create(name="Northwind IT", country="US")
        customer = new_customer(partner)
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            uow.customers.save(customer)  # checked: the id is free
            with psycopg.connect(in_schema(store.server_dsn, store.schema)) as other:
                other.execute(
                    "INSERT INTO customers (id, version, partner_id, company_key, status, data) "
                    "VALUES (%s, 1, %s, 'x', 'active', '{}')",
                    (str(customer.id), str(partner.id)),
                )
            with pytest.raises(ConcurrencyConflict, match="already stored") as caught:
                uow.commit()
        assert isinstance(caught.value.__cause__, psycopg.errors.UniqueViolation)
        with store.unit_of_work() as uow, pytest.raises(NotFound):
            uow.partners.get(partner.id)

    def test_a_number_taken_at_commit_writes_neither_payment_nor_invoice(
        self, store: SchemaStore
    ) -> None:
        import psycopg

        partner = Partner.create(name="Northwind IT", country="US")
        customer = new_customer(partner)
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            uow.customers.save(customer)
            invoice = uow.invoices.save(new_invoice(partner, customer))
            uow.commit()
        payment, touched = pay_invoices(
            partner,
            customer,
            [invoice],
            payer=customer.users[0],
            method="ach",
            idempotency_key="key-1",
        )
        with store.unit_of_work() as uow:
            uow.payments.save(payment)
            uow.invoices.save(touched[0])
            uow.invoices.save(new_invoice(partner, customer, "1002"))  # checked: free
            with psycopg.connect(in_schema(store.server_dsn, store.schema)) as other:
                other.execute(
                    "INSERT INTO invoices (id, version, partner_id, customer_id, number, "
                    "sort_key, status, data) VALUES ('inv_x', 1, %s, %s, '1002', '', 'open', '{}')",
                    (str(partner.id), str(customer.id)),
                )
            with pytest.raises(ConcurrencyConflict, match="already another invoice") as caught:
                uow.commit()
        assert isinstance(caught.value.__cause__, psycopg.errors.UniqueViolation)
        with store.unit_of_work() as uow:
            assert uow.payments.get_by_idempotency_key(partner.id, "key-1") is None
            assert uow.invoices.get(partner.id, invoice.id) == invoice

    def test_two_invoices_swap_numbers_in_one_unit_of_work(self, store: SchemaStore) -> None:
        partner = Partner.create(name="Northwind IT", country="US")
        customer = new_customer(partner)
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            uow.customers.save(customer)
            one = uow.invoices.save(new_invoice(partner, customer, "1001"))
            two = uow.invoices.save(new_invoice(partner, customer, "1002"))
            uow.commit()
        with store.unit_of_work() as uow:
            uow.invoices.save(attrs.evolve(one, number="swap"))
            uow.invoices.save(attrs.evolve(two, number="1001"))
            uow.invoices.save(attrs.evolve(one, number="1002", version=2))
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.invoices.get_by_number(partner.id, "1001").id == two.id
            assert uow.invoices.get_by_number(partner.id, "1002").id == one.id

    def test_a_wait_longer_than_the_lock_timeout_is_a_conflict(self, store: SchemaStore) -> None:
        # As SqliteStore's "database is locked": psycopg's LockNotAvailable
        # escaped before.
        partner = Partner.create(name="Northwind IT", country="US")
        with store.unit_of_work() as uow:
            partner = uow.partners.save(partner)
            uow.commit()
        from psycopg.conninfo import make_conninfo

        dsn = make_conninfo(
            store.server_dsn, options=f"-csearch_path={store.schema} -clock_timeout=100"
        )

        def tag_gold(uow: PostgresUnitOfWork) -> None:
            uow.partners.save(partner.add_tag(name="Gold", colour="#AAAA00"))
            uow.commit()

        with PostgresStore(dsn) as impatient, store.unit_of_work() as holder:
            holder.partners.save(partner.add_tag(name="VIP", colour="#AA0000"))
            holder.customers.list(partner.id)  # a query writes the update: the row is locked
            with impatient.unit_of_work() as uow, pytest.raises(ConcurrencyConflict) as caught:
                tag_gold(uow)  # type: ignore[arg-type]
            assert "lock_timeout" in str(caught.value)
            holder.commit()
        with store.unit_of_work() as uow:
            assert [tag.name for tag in uow.partners.get(partner.id).tags] == ["VIP"]

    @pytest.mark.parametrize("lock_timeout", [None, 100])
    def test_a_wait_cut_off_by_the_statement_timeout_is_psycopgs_own_error(
        self, store: SchemaStore, lock_timeout: int | None
    ) -> None:
        # PostgreSQL ends it as it ends a user's cancel (QueryCanceled, one
        # SQLSTATE, messages in the server's language): not told apart from
        # a lock wait, it is left as it is, and a lock_timeout shorter than
        # the statement_timeout makes the wait a conflict.
        import psycopg

        partner = Partner.create(name="Northwind IT", country="US")
        with store.unit_of_work() as uow:
            partner = uow.partners.save(partner)
            uow.commit()
        from psycopg.conninfo import make_conninfo

        options = f"-csearch_path={store.schema} -cstatement_timeout=1000"
        if lock_timeout is not None:
            options += f" -clock_timeout={lock_timeout}"
        dsn = make_conninfo(store.server_dsn, options=options)
        expected = psycopg.errors.QueryCanceled if lock_timeout is None else ConcurrencyConflict
        with PostgresStore(dsn) as impatient:
            with store.unit_of_work() as holder:
                holder.partners.save(partner.add_tag(name="VIP", colour="#AA0000"))
                holder.customers.list(partner.id)  # a query writes the update: the row is locked
                with impatient.unit_of_work() as uow:
                    uow.partners.save(partner.add_tag(name="Gold", colour="#AAAA00"))
                    with pytest.raises(expected) as caught:
                        uow.commit()
                if lock_timeout is not None:
                    assert "lock_timeout" in str(caught.value)
                holder.commit()
            with impatient.unit_of_work() as uow:  # rolled back, and usable again
                assert [tag.name for tag in uow.partners.get(partner.id).tags] == ["VIP"]

    def test_lost_races_are_conflicts(self, store: SchemaStore) -> None:
        import psycopg

        uow = store.unit_of_work()
        assert uow._conflict(psycopg.errors.SerializationFailure()) is not None
        assert uow._conflict(psycopg.errors.DeadlockDetected()) is not None
        assert uow._conflict(psycopg.errors.UndefinedTable()) is None
        assert uow._conflict(psycopg.errors.QueryCanceled()) is None


def test_without_psycopg_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ModuleNotFoundError) as caught:
        PostgresStore("postgresql://localhost/unused")
    assert str(caught.value) == (
        "PostgresStore needs psycopg 3: pip install 'altpay-core[postgres]'"
    )


@pytest.mark.parametrize("dsn", [None, 5, b"postgresql://localhost/x", "host=x\x00"])
def test_a_dsn_that_is_no_text_is_named(dsn: object) -> None:
    with pytest.raises(ValidationError) as caught:
        PostgresStore(dsn)  # type: ignore[arg-type]
    assert caught.value.paths == ["dsn"]


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://app:s3cret@[::1/billing",  # libpq quotes the whole URI
        "postgresql://app:s3%ZZcret@db.example/billing",  # ... or the token
        "postgresql://app:s3%41cret@[::1/billing",
        "postgresql://db.example/billing?password=s3%ZZcret",
        "host=db.example password=s3cret dbname",
        "host=db.example password='s3cret",
        "host=db.example password=s3cret nonsense=1",
        " postgresql://app:s3cret@[::1/billing",  # read as keywords: quoted whole
        "postgresql://db.example/billing?pass%77ord=s3cret%zz",  # a key decoded
        "postgresql://a?p:s3cret@[::1/billing",
        "host=db.example password=s3 cret",  # the second half, as an option
        "host=db.example password=s3 cret=1",
    ],
)
def test_a_malformed_dsn_is_named_without_its_password(dsn: str) -> None:
    import traceback

    with pytest.raises(ValidationError) as caught:
        PostgresStore(dsn)
    assert caught.value.paths == ["dsn"]
    assert caught.value.codes == ["invalid_dsn"]
    shown = "".join(traceback.format_exception(caught.value))
    assert "libpq connection string or URI" in shown
    for secret in ("s3cret", "s3%ZZcret", "s3%41cret", "s3Acret", "cret"):
        assert secret not in shown
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


# Letters that no message of libpq's, psycopg's or the store's holds: in a
# password, any of them shown is a piece of it shown.
SECRET_LETTERS = "QXZJKW"
PASSWORDS = st.builds(
    lambda before, after: before + "Q" + after,
    *[st.text(SECRET_LETTERS + "\"' =@:/[]%?&#,\\", max_size=12)] * 2,
)
# A key=value string with the password written as it is, in quotes
# (escaped, or not), after an option with no value, or in a URI whose
# password is not percent-encoded, or is, or is a query parameter.
KEYWORD_FORMS = [
    "host=127.0.0.1 port=1 user=app {empty}password={password} dbname=billing",
    "host=127.0.0.1 port=1 user=app {empty}password='{escaped}' dbname=billing",
    "host=127.0.0.1 port=1 user=app {empty}password='{password}' dbname=billing",
    # Where a piece of it lands in an option whose value libpq quotes.
    "host=127.0.0.1 port=1 user=app sslmode='{escaped}' dbname=billing",
    "host=127.0.0.1 port=1 user=app target_session_attrs='{escaped}' dbname=billing",
    "host=127.0.0.1 port='{escaped}' user=app dbname=billing",
    "host=127.0.0.1 port=1 user=app connect_timeout='{escaped}' dbname=billing",
    "host=127.0.0.1 port=1 user=app keepalives='{escaped}' dbname=billing",
    "host=127.0.0.1 port=1 user=app tcp_user_timeout='{escaped}' dbname=billing",
]
URI_FORMS = [
    "postgresql://app:{password}@127.0.0.1:1/billing",
    "postgresql://app:{encoded}@127.0.0.1:1/billing",
    "postgresql://app@127.0.0.1:1/billing?password={password}",
    "postgresql://app:{password}@[::1/billing",
    "postgresql://app@127.0.0.1:1/billing?keepalives_count={encoded}",
]


@given(
    password=PASSWORDS,
    form=st.sampled_from(KEYWORD_FORMS + URI_FORMS),
    empty=st.sampled_from(
        ["", "connect_timeout= ", "sslmode= ", "host= ", "user= ", "port= ", "options= "]
    ),
)
@example(password='p"Q', form=URI_FORMS[3], empty="")
@example(password='=" Q"', form=KEYWORD_FORMS[3], empty="")
@example(password="Q", form=KEYWORD_FORMS[0], empty="connect_timeout= ")
@example(password="Q", form=KEYWORD_FORMS[0], empty="sslmode= ")
@example(password="Q@X", form=URI_FORMS[0], empty="")
@example(password=",Q/", form=URI_FORMS[3], empty="")
@example(password="Q", form=KEYWORD_FORMS[7], empty="")
@example(password="Q", form=URI_FORMS[4], empty="")
@example(password="?@Q", form=URI_FORMS[0], empty="")
def test_no_error_on_a_dsn_shows_its_password(password: str, form: str, empty: str) -> None:
    # Nothing listens on port 1: a string that libpq reads as written is
    # refused by the network, anything else by the store; neither shows
    # the password, however the string is written.
    import traceback
    from urllib.parse import quote

    import psycopg

    escaped = password.replace("\\", "\\\\").replace("'", "\\'")
    dsn = form.format(password=password, escaped=escaped, encoded=quote(password), empty=empty)
    with pytest.raises((ValidationError, psycopg.OperationalError)) as caught:
        PostgresStore(dsn)
    shown = str(caught.value)
    if isinstance(caught.value, ValidationError):
        assert (caught.value.paths, caught.value.codes) == (["dsn"], ["invalid_dsn"])
        shown = "".join(traceback.format_exception_only(caught.value))
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None
    assert not set(SECRET_LETTERS) & set(shown), shown


# Nothing listens on port 1: libpq reads these options as it opens the
# connection, before it is refused.
LOCAL = "host=127.0.0.1 port=1 connect_timeout=2"


@pytest.mark.parametrize(
    "dsn",
    [
        # An "@" in a URI's query, after its user name and password.
        "postgresql://app:s3cret@127.0.0.1:1/billing?application_name=me@example&connect_timeout=2",
        # A database name or a password that looks like another option
        # (dbname may hold a whole connection string, a password anything).
        f"{LOCAL} dbname=user=x",
        f"{LOCAL} password=user=x",
        # A value with an "=" after a word that names no option.
        f"{LOCAL} application_name=billing=x",
    ],
)
def test_a_dsn_that_libpq_reads_as_written_is_tried(dsn: str) -> None:
    import psycopg

    with pytest.raises(psycopg.OperationalError, match="port 1 failed"):
        PostgresStore(dsn)


@pytest.mark.parametrize(
    ("dsn", "reason"),
    [
        (f"{LOCAL} password=s3cret keepalives=s3cret", "keepalives must be"),
        (f"{LOCAL} keepalives_idle=1.5", "keepalives_idle must be"),
        (f"{LOCAL} tcp_user_timeout=' s3cret'", "tcp_user_timeout must be"),
        (f"{LOCAL} keepalives=99999999999", "keepalives must be"),  # beyond a C int
        ("host=127.0.0.1,127.0.0.1 port=1,2 keepalives_count=s3cret", "keepalives_count"),
        ("postgresql://app:s3cret@127.0.0.1:1/billing?keepalives_interval=s3cret", "keepalives"),
        ("host=db.example port=s3cret", "port must be"),
        ("host=a.example,b.example port=5432,s3cret", "port must be"),
        ("postgresql://app:s3cret@db.example:s3cret/billing", "port must be"),
    ],
)
def test_an_option_that_must_be_a_whole_number_is_an_invalid_dsn(dsn: str, reason: str) -> None:
    # libpq checks these only while connecting, and quoted the value in
    # psycopg's OperationalError (a port was "failed to resolve host").
    with pytest.raises(ValidationError) as caught:
        PostgresStore(dsn)
    assert (caught.value.paths, caught.value.codes) == (["dsn"], ["invalid_dsn"])
    assert reason in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


@pytest.mark.parametrize(
    "dsn",
    [
        f"{LOCAL} keepalives=+1 keepalives_idle=' 30 '",
        "host=127.0.0.1,127.0.0.1 port=1, connect_timeout=2",  # an empty port: the default
        "host=127.0.0.1 port=' 1 ' connect_timeout=2",
        # libpq reads no other keepalive option when keepalives are off.
        f"{LOCAL} keepalives=0 keepalives_idle=abc",
    ],
)
def test_whole_numbers_as_libpq_reads_them_are_accepted(dsn: str) -> None:
    import psycopg

    with pytest.raises(psycopg.OperationalError) as caught:
        PostgresStore(dsn)
    assert "refused" in str(caught.value)  # by the network, not the string


@pytest.mark.parametrize(
    "host", ["db..example", "a" * 64 + ".example", ".example", "db\x80.example", "db\ufffd"]
)
@pytest.mark.parametrize("form", ["postgresql://app:s3cret@{}/billing", "host={} password=s3cret"])
def test_a_host_name_that_is_not_valid_is_an_invalid_dsn(host: str, form: str) -> None:
    # psycopg looks the name up itself, and the resolver's codec raised a
    # bare UnicodeError (a ValueError), before any connection.
    with pytest.raises(ValidationError) as caught:
        PostgresStore(form.format(host))
    assert (caught.value.paths, caught.value.codes) == (["dsn"], ["invalid_dsn"])
    assert "host name is not valid" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


class TestRowsChangedOutsideTheLibrary:
    """As on SQLite: a row whose data disagree with its columns, or with the
    query that found it, is refused (``row_mismatch``); so is an outbox
    message whose payload disagrees with its row, at its position, which
    can then be marked published to set it aside."""

    def test_an_access_request_row_keyed_otherwise_or_unkeyed_is_read(
        self, store: SchemaStore
    ) -> None:
        import psycopg

        partner = Partner.create(name="Northwind IT", country="US")
        request = AccessRequest.open(partner, email="Dee@globex.example")
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            request = uow.access_requests.save(request)
            uow.commit()
        dsn = in_schema(store.server_dsn, store.schema)
        # Keyed otherwise (case-folded by another Python's Unicode, as a
        # company's key may be): read as it is, as a customer's is.
        with psycopg.connect(dsn, autocommit=True) as outsider:
            outsider.execute("UPDATE access_requests SET email_key = 'dee@globex.example\u00df'")
        with store.unit_of_work() as uow:
            assert uow.access_requests.get(partner.id, request.id) == request
        # NULL: written before the column was added, read as it is.
        with psycopg.connect(dsn, autocommit=True) as outsider:
            outsider.execute("UPDATE access_requests SET email_key = NULL")
        with store.unit_of_work() as uow:
            assert uow.access_requests.list(partner.id) == [request]
            assert uow.access_requests.pending_for(partner.id, "dee@globex.example") == request

    @pytest.mark.parametrize(
        ("change", "field", "read"),
        [
            (
                "jsonb_set(data, '{partner_id}', to_jsonb(%(other)s::text))",
                "partner_id",
                lambda uow, p, c: uow.customers.get(p.id, c.id),
            ),
            (
                "jsonb_set(data, '{version}', '7')",
                "version",
                lambda uow, p, c: uow.customers.get(p.id, c.id),
            ),
            (
                "jsonb_set(data, '{users,0,email}', '\"zed@x.example\"')",
                "users",
                lambda uow, p, c: uow.customers.with_user(p.id, c.users[0].email),
            ),
            (
                "jsonb_set(data, '{status}', '\"archived\"')",
                "status",
                lambda uow, p, c: uow.customers.list(p.id, status="active"),
            ),
        ],
    )
    def test_a_customer_row(self, store: SchemaStore, change: str, field: str, read: Any) -> None:
        import psycopg

        partner, other = (Partner.create(name=n, country="US") for n in ("Northwind", "Acme"))
        customer = new_customer(partner)
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            uow.partners.save(other)
            uow.customers.save(customer)
            uow.commit()
        dsn = in_schema(store.server_dsn, store.schema)
        with psycopg.connect(dsn, autocommit=True) as outsider:
            outsider.execute(f"UPDATE customers SET data = {change}", {"other": str(other.id)})
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
            read(uow, partner, customer)
        assert (caught.value.paths, caught.value.codes) == ([field], ["row_mismatch"])

    @staticmethod
    def changed_first_message(
        store: SchemaStore, change: str, values: dict[str, Any]
    ) -> tuple[int, int]:
        """Store two messages and change the first one's payload to
        ``change`` (SQL, given ``values``) from outside; their positions."""
        import psycopg

        partner = Partner.create(name="Northwind", country="US")
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            uow.customers.save(created(partner))
            uow.customers.save(created(partner, "Initech"))
            uow.commit()
        dsn = in_schema(store.server_dsn, store.schema)
        with psycopg.connect(dsn, autocommit=True) as outsider:
            rows = outsider.execute("SELECT position FROM outbox ORDER BY position").fetchall()
            first, second = (position for (position,) in rows)
            outsider.execute(
                f"UPDATE outbox SET payload = {change} WHERE position = %(first)s",
                {**values, "first": first},
            )
        return first, second

    @staticmethod
    def assert_set_aside(
        store: SchemaStore, positions: tuple[int, int], path: str, code: str
    ) -> None:
        """The first message is refused at ``path``; marked published, it
        is set aside and the second one is read."""
        with store.unit_of_work() as uow:
            with pytest.raises(ValidationError) as caught:
                uow.outbox.pending()
            assert (caught.value.paths, caught.value.codes) == ([path], [code])
            uow.outbox.mark_published([positions[0]])
            uow.commit()
        with store.unit_of_work() as uow:
            assert [m.position for m in uow.outbox.pending()] == [positions[1]]

    def test_an_outbox_message(self, store: SchemaStore) -> None:
        change = "jsonb_set(payload, '{topic}', '\"invoice_paid\"')"
        positions = self.changed_first_message(store, change, {})
        self.assert_set_aside(store, positions, f"outbox[{positions[0]}].topic", "row_mismatch")

    # Data that Python's json.loads cannot read (nested too deeply, a number
    # of more digits than int() converts), and an aggregate's JSON kept as a
    # JSON string: refused as SQLite refuses them, never the driver's error.
    UNREADABLE: ClassVar[list[Any]] = [
        pytest.param("jsonb_set({}, %(path)s, %(deep)s::jsonb)", "invalid_json", id="deep"),
        pytest.param("jsonb_set({}, %(path)s, %(long)s::jsonb)", "invalid_json", id="long"),
        pytest.param("to_jsonb({}::text)", "wrong_type", id="json-in-a-string"),
    ]
    VALUES: ClassVar[dict[str, str]] = {"deep": "[" * 3000 + "]" * 3000, "long": "1" + "0" * 5000}

    @pytest.mark.parametrize(("change", "code"), UNREADABLE)
    def test_an_invoice_whose_data_json_loads_cannot_read(
        self, store: SchemaStore, change: str, code: str
    ) -> None:
        import psycopg

        partner = Partner.create(name="Northwind", country="US")
        customer = new_customer(partner)
        invoice = new_invoice(partner, customer)
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            uow.customers.save(customer)
            uow.invoices.save(invoice)
            uow.commit()
        dsn = in_schema(store.server_dsn, store.schema)
        with psycopg.connect(dsn, autocommit=True) as outsider:
            outsider.execute(
                f"UPDATE invoices SET data = {change.format('data')}",
                {**self.VALUES, "path": ["lines", "0", "quantity"]},
            )
        for read in (
            lambda uow: uow.invoices.get(partner.id, invoice.id),
            lambda uow: uow.invoices.list(partner.id),
        ):
            with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
                read(uow)
            assert (caught.value.paths, caught.value.codes) == ([""], [code])
        with store.unit_of_work() as uow:  # its connections still serve
            assert uow.partners.get(partner.id).id == partner.id

    @pytest.mark.parametrize(("change", "code"), UNREADABLE)
    def test_an_outbox_message_whose_payload_json_loads_cannot_read(
        self, store: SchemaStore, change: str, code: str
    ) -> None:
        values = {**self.VALUES, "path": ["note"]}
        positions = self.changed_first_message(store, change.format("payload"), values)
        self.assert_set_aside(store, positions, f"outbox[{positions[0]}]", code)


NOT_A_STORE = st.one_of(st.none(), st.integers(), st.text(), st.binary(), st.builds(object))


@given(store=NOT_A_STORE)
def test_a_unit_of_work_refuses_what_is_not_a_postgres_store(store: object) -> None:
    # An AttributeError from inside the constructor before.
    with pytest.raises(ValidationError) as caught:
        PostgresUnitOfWork(store)  # type: ignore[arg-type]
    assert (caught.value.paths, caught.value.codes) == (["store"], ["wrong_type"])
    assert caught.value.errors[0].message.startswith("'store' must be a PostgresStore (got ")


def test_a_unit_of_work_refuses_another_kind_of_store(tmp_path: Any) -> None:
    other = SqliteStore(tmp_path / "altpay.db")
    with (
        other,
        pytest.raises(
            ValidationError, match="'store' must be a PostgresStore \\(got SqliteStore\\)"
        ),
    ):
        PostgresUnitOfWork(other)  # type: ignore[arg-type]


# -- a process killed for real ---------------------------------------------------------
#
# A client killed with SIGKILL sends no ROLLBACK: its session ends when the
# server reads the closed socket, and the server rolls back whatever it had
# not committed. Each child tells the parent, through a pipe, that it reached
# the point it is to be killed at; the parent then waits for the server to
# end the child's session (named by its application_name) before looking.


def _start(target: Callable[..., None], *args: Any) -> tuple[Any, Any]:
    """A forked child running ``target(*args, report)``, and the parent's
    end of the pipe it reports on."""
    context = multiprocessing.get_context("fork")
    here, there = context.Pipe(duplex=False)
    child = context.Process(target=target, args=(*args, there))
    child.start()
    there.close()
    return child, here


def _told(here: Any, expected: str) -> None:
    assert here.poll(30), f"the child never reported {expected!r}"
    assert here.recv() == expected


def _named(store: SchemaStore, name: str, **options: str) -> str:
    """A connection string to ``store``'s schema, its sessions named ``name``."""
    from psycopg.conninfo import make_conninfo

    settings = "".join(f" -c{key}={value}" for key, value in options.items())
    return make_conninfo(
        store.server_dsn, options=f"-csearch_path={store.schema}{settings}", application_name=name
    )


def _kill_and_wait(store: SchemaStore, child: Any, name: str) -> None:
    """Kill ``child``, then wait until the server has ended its sessions."""
    import psycopg

    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    deadline = time.monotonic() + 30
    with psycopg.connect(store.server_dsn, autocommit=True) as admin:
        while admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
        ).fetchone() != (0,):
            assert time.monotonic() < deadline, "the server kept the killed child's session"
            time.sleep(0.01)


def _counts(store: SchemaStore, ids: list[str]) -> tuple[int, int]:
    """How many of the customers ``ids`` are stored, and how many outbox rows are theirs."""
    import psycopg

    with psycopg.connect(in_schema(store.server_dsn, store.schema)) as connection:
        (customers,) = connection.execute(
            "SELECT count(*) FROM customers WHERE id = ANY(%s)", (ids,)
        ).fetchone() or (None,)
        (events,) = connection.execute(
            "SELECT count(*) FROM outbox WHERE aggregate_id = ANY(%s)", (ids,)
        ).fetchone() or (None,)
    return customers, events


def _commit_many(
    dsn: str, changed: Customer, customers: list[Customer], pause: bool, report: Any
) -> None:
    """In a child: one unit of work that changes ``changed`` and adds
    ``customers`` (several batches of rows), reporting once two batches are
    written and, with ``pause``, stopping just before its COMMIT."""
    from altpay_core.adapters import _sql

    end = PostgresUnitOfWork._end

    def paused(self: PostgresUnitOfWork, connection: Any, commit: bool) -> None:
        if commit and pause:
            report.send("committing")
            time.sleep(60)
        end(self, connection, commit)

    PostgresUnitOfWork._end = paused  # type: ignore[method-assign]  # this child's alone
    with PostgresStore(dsn) as store, store.unit_of_work() as uow:
        uow.customers.save(changed)
        for n, customer in enumerate(customers):
            uow.customers.save(customer)
            if n == 2 * _sql.BATCH_SIZE:
                assert uow._writing  # two batches written, in the open transaction
                report.send("written")
        uow.commit()
    report.send("committed")
    time.sleep(60)


def _commit_then_die(dsn: str, batches: list[list[Customer]], how: str, report: Any) -> None:
    """In a child: commit each batch of customers in a unit of work of its
    own, then die before their events are marked published: at once
    (``exit``), or while listing them and marking half of them, written in
    the open transaction (``publishing``)."""
    with PostgresStore(dsn) as store:
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


def _hold_rows(dsn: str, customer: Customer, new: Customer, report: Any) -> None:
    """In a child: save a change and a new customer, write them in the open
    transaction (holding their rows' locks), and wait to be killed."""
    with PostgresStore(dsn) as store, store.unit_of_work() as uow:
        uow.customers.save(customer)
        uow.customers.save(new)
        uow.customers.list(customer.partner_id)  # writes the saves
        assert uow._writing
        report.send("holding")
        time.sleep(60)


@pytest.mark.postgres
@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
class TestKilledProcesses:
    @pytest.mark.parametrize(
        "delay",
        [None, 0, 0.02, 0.1],
        ids=lambda d: "before COMMIT" if d is None else f"{d} s after two batches",
    )
    def test_a_process_killed_in_the_middle_of_a_large_commit_leaves_all_of_it_or_none(
        self, store: SchemaStore, delay: float | None
    ) -> None:
        from altpay_core.adapters import _sql

        partner = Partner.create(name="Northwind IT", country="US")
        earlier = [created(partner, f"Earlier {n}") for n in range(3)]
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            earlier = [uow.customers.save(c) for c in earlier]
            uow.commit()
        changed = earlier[0].add_user(first_name="Bo", last_name="Ek", email="bo@globex.example")
        count = 2 * _sql.BATCH_SIZE + 500
        customers = [created(partner, f"Company {n}") for n in range(count)]
        name = f"killed-{uuid.uuid4().hex}"
        child, here = _start(_commit_many, _named(store, name), changed, customers, delay is None)
        _told(here, "written")
        if delay is None:
            _told(here, "committing")
        else:
            time.sleep(delay)
        _kill_and_wait(store, child, name)
        found, events = _counts(store, [str(c.id) for c in customers])
        # All of it or none of it, events included.
        assert (found, events) in {(0, 0), (count, count)}
        if delay is None:
            assert found == 0  # killed before its COMMIT
        with store.unit_of_work() as uow:
            now = uow.customers.get(partner.id, changed.id)
            # Every earlier commit as it was, or changed by this one.
            assert now == (attrs.evolve(changed, version=2) if found else earlier[0])
            assert [uow.customers.get(partner.id, c.id) for c in earlier[1:]] == earlier[1:]
        # No lock left behind: another session changes the same row at once.
        impatient = PostgresStore(_named(store, "after", lock_timeout="100"))
        with impatient, impatient.unit_of_work() as uow:
            uow.customers.save(now.archive())
            uow.commit()

    @pytest.mark.parametrize("how", ["exit", "publishing"])
    def test_events_of_a_process_that_dies_before_publishing_them_are_pending_once(
        self, store: SchemaStore, how: str
    ) -> None:
        partner = Partner.create(name="Northwind IT", country="US")
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            uow.commit()
        batches = [[created(partner, f"Company {b}-{n}") for n in range(5)] for b in range(3)]
        name = f"killed-{uuid.uuid4().hex}"
        child, here = _start(_commit_then_die, _named(store, name), batches, how)
        _told(here, "committed" if how == "exit" else "publishing")
        if how == "exit":
            child.join(30)
            assert child.exitcode == 0
        else:
            _kill_and_wait(store, child, name)
        with store.unit_of_work() as uow:
            messages = uow.outbox.pending(1000)
            # Every event, in commit order.
            assert [m.event.aggregate_id for m in messages] == [
                str(c.id) for batch in batches for c in batch
            ]
            assert [m.position for m in messages] == sorted(m.position for m in messages)
            uow.outbox.mark_published(m.position for m in messages)
            uow.commit()
        with PostgresStore(_named(store, "after")) as other, other.unit_of_work() as uow:
            assert uow.outbox.pending(1000) == []  # nothing published twice

    def test_a_process_killed_holding_rows_keeps_no_one_waiting_and_leaves_nothing(
        self, store: SchemaStore
    ) -> None:
        partner = Partner.create(name="Northwind IT", country="US").add_tag(
            name="VIP", colour="#AA0000"
        )
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            customer = uow.customers.save(created(partner))
            uow.commit()
        name = f"killed-{uuid.uuid4().hex}"
        new = created(partner, "Initech")
        child, here = _start(_hold_rows, _named(store, name), customer.archive(), new)
        _told(here, "holding")
        tagged = customer.set_tags(partner, [partner.tags[0]])
        with PostgresStore(_named(store, "after", lock_timeout="100")) as impatient:
            with impatient.unit_of_work() as uow:
                uow.customers.save(tagged)
                with pytest.raises(ConcurrencyConflict):
                    uow.commit()  # the child holds the row
            _kill_and_wait(store, child, name)
            with impatient.unit_of_work() as uow:  # at once
                assert uow.customers.get(partner.id, customer.id) == customer
                with pytest.raises(NotFound):
                    uow.customers.get(partner.id, new.id)
                assert [m.event.aggregate_id for m in uow.outbox.pending()] == [str(customer.id)]
                uow.customers.save(tagged)
                uow.commit()
            with impatient.unit_of_work() as uow:
                assert uow.customers.get(partner.id, customer.id).version == 2
