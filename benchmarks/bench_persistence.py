"""The SQLite adapter against raw sqlite3, in one process.

1. Save: 100,000 customers with 3 users each (and the ``customer_created``
   event each carries) in ONE unit of work to a SQLite file, against raw
   sqlite3 ``executemany`` of the same rows (the same JSON payloads, the same
   schema and indexes, built by the adapter's own migrations) into another
   file. Target: the adapter saves at least 0.5x as many customers a second.
2. Look-up: customers by a user's email, through
   ``uow.customers.with_user``, against the same indexed query run raw.
   Target: at least 0.5x as many look-ups a second.
3. Memory: what the adapter's save holds at its peak (Python allocations,
   by tracemalloc, in a separate untimed save) and how much the process's
   peak resident memory grew during it. Target: under 500 MB.

Building the customers is not timed. Prints figures and ratios; asserts
nothing.

    python benchmarks/bench_persistence.py            # 100,000 customers
    python benchmarks/bench_persistence.py --quick    # 10,000
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from altpay_core.adapters._sql import dump, timestamp
from altpay_core.adapters.sqlite import SqliteStore
from altpay_core.customer import Customer, CustomerUser
from altpay_core.events import CustomerCreated
from altpay_core.partner import Partner
from altpay_core.values import Address, CustomerId, EmailAddress, UserId

TARGET_RATIO = 0.5
MEMORY_LIMIT_MB = 500
ADDRESS = Address("1 Main St", "Albany", "NY", "12207", "US")


def email(text: str) -> EmailAddress:
    """An address built without email-validator, for plain lower-case ASCII
    text that it would leave as it is (checked on a sample in ``build``)."""
    address = object.__new__(EmailAddress)
    object.__setattr__(address, "value", text)
    object.__setattr__(address, "key", text)
    return address


def build(partner: Partner, count: int) -> list[Customer]:
    """``count`` customers with 3 users each, each carrying ``customer_created``."""
    for n in (0, count // 2, count - 1):
        text = f"user{n}.0@company{n}.example"
        assert email(text) == EmailAddress(text), "the cheap address differs from the real one"
    customers = []
    for n in range(count):
        users = tuple(
            CustomerUser(
                UserId.new(), "Ann", f"Lee {u}", email(f"user{n}.{u}@company{n}.example"), True
            )
            for u in range(3)
        )
        customer = Customer(
            id=CustomerId.new(),
            partner_id=partner.id,
            company=f"Company {n:06d}",
            address=ADDRESS,
            users=users,
        )
        event = CustomerCreated(
            partner_id=partner.id, aggregate_id=str(customer.id), occurred_at=customer.created_at
        )
        object.__setattr__(customer, "events", (event,))
        customers.append(customer)
    return customers


def raw_rows(customers: list[Customer]) -> dict[str, list[tuple[Any, ...]]]:
    """The rows the adapter writes, as raw sqlite3 would write them: the
    same columns and the same JSON (of the stored value, at version 1)."""
    customer_rows: list[tuple[Any, ...]] = []
    user_rows: list[tuple[Any, ...]] = []
    outbox_rows: list[tuple[Any, ...]] = []
    for c in customers:
        cid, pid = str(c.id), str(c.partner_id)
        data = dump(attrs.evolve(c, version=1))
        customer_rows.append((cid, 1, pid, c.company.casefold(), "active", None, None, data))
        user_rows.extend((cid, u.email.key, pid) for u in c.users)
        (event,) = c.events
        outbox_rows.append(
            (
                event.topic,
                pid,
                cid,
                timestamp(event.occurred_at),
                dump(event),
            )
        )
    return {"customers": customer_rows, "users": user_rows, "outbox": outbox_rows}


def timed(work: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def verdict(ratio: float) -> str:
    return "meets" if ratio >= TARGET_RATIO else "MISSES"


RAW_INSERTS = {
    "customers": "INSERT INTO customers (id, version, partner_id, company_key, status, "
    "ext_system, ext_id, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "users": "INSERT INTO customer_users (customer_id, email_key, partner_id) VALUES (?, ?, ?)",
    "outbox": "INSERT INTO outbox (topic, partner_id, aggregate_id, occurred_at, payload) "
    "VALUES (?, ?, ?, ?, ?)",
}
LOOKUP = (
    "SELECT c.data FROM customer_users u JOIN customers c ON c.id = u.customer_id "
    "WHERE u.email_key = ? AND u.partner_id = ? ORDER BY c.company_key, c.id"
)


def adapter_save(path: Path, partner: Partner, customers: list[Customer]) -> tuple[float, float]:
    """Seconds to save every customer in one unit of work, and how much the
    process's peak resident memory grew meanwhile (MB)."""
    with SqliteStore(path) as store:
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            uow.commit()

        def save_all() -> None:
            with store.unit_of_work() as uow:
                save = uow.customers.save
                for customer in customers:
                    save(customer)
                uow.commit()

        before = peak_rss_mb()
        seconds = timed(save_all)
        return seconds, peak_rss_mb() - before


def raw_save(path: Path, rows: dict[str, list[tuple[Any, ...]]]) -> float:
    """Seconds to insert the same rows with raw sqlite3, in one transaction."""
    SqliteStore(path).close()  # the same schema, indexes and settings
    raw = sqlite3.connect(path, isolation_level=None)

    def insert() -> None:
        raw.execute("BEGIN IMMEDIATE")
        for table, sql in RAW_INSERTS.items():
            raw.executemany(sql, rows[table])
        raw.execute("COMMIT")

    try:
        return timed(insert)
    finally:
        raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 customers, not 100,000")
    parser.add_argument("--lookups", type=int, default=10_000, help="emails to look up")
    parser.add_argument(
        "--repeat", type=int, default=0, help="runs of each side, best kept (default 3; 2 full)"
    )
    args = parser.parse_args()
    count = 10_000 if args.quick else 100_000
    repeat = args.repeat or (3 if args.quick else 2)

    print(f"altpay-core persistence benchmark: {count:,} customers with 3 users each")
    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, best of {repeat}")
    partner = Partner.create(name="Northwind IT", country="US")
    customers = build(partner, count)
    rows = raw_rows(customers)

    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        adapter_times, raw_times, growths = [], [], []
        for run in range(repeat):
            seconds, growth = adapter_save(folder / f"adapter-{run}.db", partner, customers)
            adapter_times.append(seconds)
            growths.append(growth)
            raw_times.append(raw_save(folder / f"raw-{run}.db", rows))
        adapter_seconds, raw_seconds = min(adapter_times), min(raw_times)
        save_ratio = raw_seconds / adapter_seconds
        # The first save grows the process the most; later ones reuse memory.
        rss_growth = max(growths)
        # One more save, untimed, to see the peak of Python's own allocations.
        tracemalloc.start()
        adapter_save(folder / "traced.db", partner, customers)
        traced_peak = tracemalloc.get_traced_memory()[1] / (1024 * 1024)
        tracemalloc.stop()
        memory_ok = "meets" if max(rss_growth, traced_peak) < MEMORY_LIMIT_MB else "MISSES"
        print()
        print("save, one unit of work:")
        print(f"  adapter  {adapter_seconds:8.2f} s  {count / adapter_seconds:>10,.0f} customers/s")
        print(f"  raw      {raw_seconds:8.2f} s  {count / raw_seconds:>10,.0f} customers/s")
        print(f"  ratio    {save_ratio:8.2f}x  (target >= {TARGET_RATIO}x: {verdict(save_ratio)})")
        print(
            f"  memory   {traced_peak:.0f} MB allocated at the peak of the save (tracemalloc), "
            f"peak RSS grew {rss_growth:.0f} MB (target < {MEMORY_LIMIT_MB} MB: {memory_ok})"
        )
        print(f"           the process, with every customer built up front: {peak_rss_mb():.0f} MB")

        # -- look-up by email, in the databases just written ------------------
        rng = random.Random(7)
        picked = [rng.choice(customers) for _ in range(args.lookups)]
        emails = [rng.choice(c.users).email for c in picked]
        keys = [e.key for e in emails]
        partner_key = str(partner.id)
        store = SqliteStore(folder / "adapter-0.db")
        raw = sqlite3.connect(folder / "raw-0.db", isolation_level=None)
        with store.unit_of_work() as uow:
            found = uow.customers.with_user(partner.id, emails[0])
        if found != [attrs.evolve(picked[0], version=1)]:
            raise SystemExit("the adapter found the wrong customer")

        def adapter_lookups() -> None:
            with store.unit_of_work() as uow:
                with_user = uow.customers.with_user
                for address in emails:
                    with_user(partner.id, address)

        def raw_lookups() -> None:
            execute = raw.execute
            for key in keys:
                execute(LOOKUP, (key, partner_key)).fetchall()

        def raw_lookups_parsed() -> None:
            execute, loads = raw.execute, json.loads
            for key in keys:
                [loads(data) for (data,) in execute(LOOKUP, (key, partner_key))]

        def adapter_rows() -> None:
            # The adapter's query path alone, without building Customers.
            with store.unit_of_work() as uow:
                read, sql = uow._read, uow._sql.customers_with_user
                for key in keys:
                    read(sql, (key, partner_key))

        # The first run meets each address for the first time: rebuilding a
        # customer validates its users' emails (email-validator, then cached).
        # Interleaved, so that a busy moment of the machine hits every side.
        runs: dict[Callable[[], None], list[float]] = {
            adapter_lookups: [],
            adapter_rows: [],
            raw_lookups: [],
            raw_lookups_parsed: [],
        }
        for _ in range(repeat):
            for work, times in runs.items():
                times.append(timed(work))
        cold_lookup = runs[adapter_lookups][0]
        adapter_lookup, rows_lookup, raw_lookup, parsed_lookup = (min(t) for t in runs.values())
        raw.close()
        store.close()
        lookup_ratio = raw_lookup / adapter_lookup
        n = args.lookups
        print()
        print(f"look-up by user email ({n:,} look-ups, one customer each):")
        show = [
            ("adapter", adapter_lookup, "Customer values"),
            ("", cold_lookup, "first run: emails not cached yet"),
            ("", rows_lookup, "its query path alone: JSON rows"),
            ("raw", raw_lookup, "rows of JSON text"),
            ("raw+json", parsed_lookup, "rows parsed into dicts"),
        ]
        for label, seconds, what in show:
            print(f"  {label:8} {n / seconds:>10,.0f} look-ups/s  ({what})")
        print(
            f"  ratio    {lookup_ratio:8.2f}x  (target >= {TARGET_RATIO}x: {verdict(lookup_ratio)})"
        )
        print(f"           {raw_lookup / rows_lookup:8.2f}x  for the query path alone")


if __name__ == "__main__":
    main()
