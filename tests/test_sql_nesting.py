"""Units of work of one SQL store nested in one thread, on SQLite and on
PostgreSQL (the PostgreSQL cases skip without a server, as in
``test_postgres_adapter.py``, except in CI).

A unit of work that holds its write transaction open (it wrote early, or
listed the outbox) keeps every other writer waiting until it ends. Another
unit of work of the same store in the same thread can never see it end: it
is refused at once, rather than wait forever (PostgreSQL) or until the
timeout (SQLite). The memory store has no such wait, and is not concerned.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from altpay_core.adapters._sql import SqlStore, SqlUnitOfWork
from altpay_core.adapters.sqlite import SqliteStore
from altpay_core.customer import Customer, CustomerDraft
from altpay_core.errors import AltpayError, ConcurrencyConflict
from altpay_core.partner import Partner
from altpay_core.values import Address

WATCHDOG = 10.0
"""Seconds a nested unit of work may take before the test calls it a hang."""
REFUSED = "another unit of work of this .* in this thread"
ADDRESS = Address("1 Main St", "Albany", "NY", "12207", "US")


@contextlib.contextmanager
def postgres_store(dsn: str) -> Iterator[SqlStore[Any]]:
    """A store in a new schema of its own, dropped after; its connections
    keep the server's default ``lock_timeout``, 0: a lock wait never ends."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    from altpay_core.adapters.postgres import PostgresStore

    schema = f"altpay_test_{uuid.uuid4().hex}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        with PostgresStore(make_conninfo(dsn, options=f"-csearch_path={schema}")) as store:
            yield store
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore[Any]]:
    if request.param == "sqlite":
        # A writer waits up to ten minutes: far longer than a test may.
        with SqliteStore(tmp_path / "altpay.db", timeout=600) as sqlite_store:
            yield sqlite_store
    else:
        with postgres_store(request.getfixturevalue("postgres_dsn")) as pg_store:
            yield pg_store


@contextlib.contextmanager
def watchdog(outer: SqlUnitOfWork[Any]) -> Iterator[None]:
    """Fail, rather than hang, if the block waits for ``outer``: after
    :data:`WATCHDOG` seconds, roll ``outer``'s transaction back from
    another thread, which ends the wait."""
    fired: list[bool] = []

    def release() -> None:
        fired.append(True)
        connection = outer._connection
        if connection is not None:
            connection.execute("ROLLBACK")

    timer = threading.Timer(WATCHDOG, release)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()
        # Also over what the block raised once the wait ended.
        assert not fired, f"hung: waited over {WATCHDOG:g} s for a unit of work of this thread"


def stored(store: SqlStore[Any]) -> tuple[Partner, Customer]:
    partner = Partner.create(name="Northwind IT", country="US")
    draft = CustomerDraft.start(partner).enter_details(company="Globex", address=ADDRESS)
    customer = draft.add_user(first_name="Ann", last_name="Lee", email="ann@globex.example")
    with store.unit_of_work() as uow:
        partner = uow.partners.save(partner)
        stored_customer = uow.customers.save(customer.create())
        uow.commit()
    return partner, stored_customer


def rename(uow: Any, partner: Partner, customer: Customer, company: str) -> None:
    """Read the customer and save it under a new company name."""
    current = uow.customers.get(partner.id, customer.id)
    uow.customers.save(current.update_details(company=company))


def company(store: SqlStore[Any], partner: Partner, customer: Customer) -> tuple[str, int]:
    with store.unit_of_work() as uow:
        found = uow.customers.get(partner.id, customer.id)
    return found.company, found.version


def hold(uow: Any, partner: Partner, how: str) -> None:
    """Have ``uow`` begin its write transaction (its saves written early),
    by a read after a save or by listing the outbox."""
    if how == "read":
        uow.customers.list(partner.id)
    else:
        uow.outbox.pending()


INNER: dict[str, Callable[[Any, Partner, Customer], object]] = {
    "commit": lambda uow, p, c: (rename(uow, p, c, "Inner"), uow.commit()),
    "read after a save": lambda uow, p, c: (rename(uow, p, c, "Inner"), uow.customers.list(p.id)),
    "outbox": lambda uow, p, c: uow.outbox.pending(),
}


@pytest.mark.parametrize("held_by", ["read", "outbox"])
@pytest.mark.parametrize("refused_at", list(INNER))
def test_a_nested_writer_is_refused_at_once_and_writes_nothing(
    store: SqlStore[Any], held_by: str, refused_at: str
) -> None:
    # Before: SQLite waited out its timeout, then blamed "another writer";
    # PostgreSQL waited for the row lock forever.
    partner, customer = stored(store)
    with store.unit_of_work() as outer:
        rename(outer, partner, customer, "Outer")
        hold(outer, partner, held_by)
        with store.unit_of_work() as inner, watchdog(outer):
            with pytest.raises(AltpayError, match=REFUSED) as caught:
                INNER[refused_at](inner, partner, customer)
            assert not isinstance(caught.value, ConcurrencyConflict)  # no use retrying
            assert "commit or end that one first" in str(caught.value)
            if refused_at == "read after a save":
                # As any failure outside a commit: rolled back, and it says so.
                with pytest.raises(AltpayError, match="rolled back by an error"):
                    inner.commit()
                inner.rollback()
            inner.commit()  # its saves were forgotten: nothing to write
        outer.commit()
    assert company(store, partner, customer) == ("Outer", 2)


def test_two_threads_still_wait_for_each_other_and_one_wins(store: SqlStore[Any]) -> None:
    partner, customer = stored(store)
    committing = threading.Event()
    outcome: list[BaseException | None] = []

    def other() -> None:
        try:
            with store.unit_of_work() as uow:
                rename(uow, partner, customer, "Other")
                committing.set()
                uow.commit()
            outcome.append(None)
        except BaseException as error:  # handed to the test
            outcome.append(error)

    with store.unit_of_work() as outer:
        rename(outer, partner, customer, "Outer")
        hold(outer, partner, "read")
        thread = threading.Thread(target=other)
        thread.start()
        assert committing.wait(WATCHDOG)
        time.sleep(0.3)
        assert thread.is_alive()  # waiting for the outer unit of work
        outer.commit()
    thread.join(WATCHDOG)
    assert not thread.is_alive()
    (error,) = outcome
    assert isinstance(error, ConcurrencyConflict)  # it waited, then lost the race
    assert company(store, partner, customer) == ("Outer", 2)


@pytest.mark.parametrize("end", ["commit", "rollback", "error"])
def test_once_the_outer_ends_its_transaction_a_nested_writer_may_write(
    store: SqlStore[Any], end: str
) -> None:
    # As in the race of the docs: the first commits before the second writes.
    partner, customer = stored(store)
    twice = Partner.create(name="Stored twice", country="US")
    with store.unit_of_work() as uow:
        uow.partners.save(twice)
        uow.commit()
    with store.unit_of_work() as outer:
        rename(outer, partner, customer, "Outer")
        hold(outer, partner, "read")
        if end == "commit":
            outer.commit()
        elif end == "rollback":
            outer.rollback()
        else:
            # A new partner whose id is stored: refused as it is written,
            # and the whole unit of work rolled back.
            outer.partners.save(twice)
            with pytest.raises(ConcurrencyConflict):
                outer.customers.list(partner.id)
        with store.unit_of_work() as inner, watchdog(outer):
            rename(inner, partner, customer, "Inner")
            inner.commit()
    assert company(store, partner, customer)[0] == "Inner"


def _write(store: SqlStore[Any], partner: Partner) -> None:
    with store.unit_of_work() as uow:
        uow.partners.save(partner)
        uow.commit()


@pytest.mark.postgres
def test_a_forked_child_does_not_take_its_parents_writer_for_its_own(postgres_dsn: str) -> None:
    # The forking thread goes on in the child: the parent's unit of work,
    # open in it at the fork, is no writer of the child's. (On SQLite such a
    # child cannot write the file at all, and is told so.)
    with postgres_store(postgres_dsn) as store:
        partner, customer = stored(store)
        other = Partner.create(name="Written by the child", country="US")
        with store.unit_of_work() as outer:
            rename(outer, partner, customer, "Outer")
            hold(outer, partner, "read")
            child = multiprocessing.get_context("fork").Process(target=_write, args=(store, other))
            child.start()
            child.join(WATCHDOG)
            assert child.exitcode == 0
            outer.commit()
        with store.unit_of_work() as uow:
            assert uow.partners.get(other.id).version == 1
        assert company(store, partner, customer) == ("Outer", 2)
