"""The memory store's bulk save, at two sizes and against the SQLite adapter.

Saves n one-line invoices of one customer in ONE unit of work (``uow.invoices
.save`` for each, then one ``commit()``), at n = 1,000 and n = 10,000, on a
``MemoryStore`` and on a ``SqliteStore`` file, and prints the cost per save.
The ratios to read:

- growth: the memory store's cost per save at 10,000 against its cost at
  1,000. About 1x when a save costs the same however much the unit of work
  has staged; about 10x if each save went over what is staged.
- against SQLite: the memory store's cost per save against the SQLite
  adapter's at the same n (the SQLite adapter does more work per save: JSON,
  rows, a file).

Building the invoices is not timed. Each side runs several times,
interleaved, and the best run counts. Prints figures and ratios; asserts
nothing.

    python benchmarks/bench_memory_store.py            # best of 3 runs
    python benchmarks/bench_memory_store.py --quick    # 1 run
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from altpay_core import Customer, CustomerDraft, Invoice, Partner, Role
from altpay_core.adapters.memory import MemoryStore
from altpay_core.adapters.sqlite import SqliteStore
from altpay_core.ports import Store

SIZES = (1_000, 10_000)
TODAY = dt.date(2026, 1, 5)
ADDRESS = {
    "line1": "1 Main St",
    "city": "Albany",
    "region": "NY",
    "postal_code": "12207",
    "country": "US",
}


def setup() -> tuple[Partner, Customer]:
    partner = Partner.create(name="Northwind IT", country="US").add_team_member(
        name="Mia", email="mia@northwind.example", role=Role.MEMBER
    )
    draft = CustomerDraft.start(partner).enter_details(company="Globex", address=ADDRESS)
    customer = draft.add_user(first_name="Ann", last_name="Lee", email="ann@globex.example")
    return partner, customer.create()


def build(partner: Partner, customer: Customer, count: int) -> list[Invoice]:
    """``count`` one-line invoices of ``customer``, numbered 0 to count - 1."""
    line = {"description": "Support", "quantity": 1, "unit_amount": "10.00"}
    return [
        Invoice.issue(
            partner,
            customer,
            by=partner.team[0],
            number=str(n),
            lines=[line],
            due_date=TODAY + dt.timedelta(days=30),
            today=TODAY,
        )
        for n in range(count)
    ]


def bulk_save(
    make: Callable[[], Store], partner: Partner, customer: Customer, invoices: list[Invoice]
) -> float:
    """Seconds to save ``invoices`` in one unit of work and commit, on a new store."""
    with make() as store, store.unit_of_work() as uow:
        uow.partners.save(partner)
        uow.customers.save(customer)
        uow.commit()
        start = time.perf_counter()
        for invoice in invoices:
            uow.invoices.save(invoice)
        uow.commit()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run instead of three")
    runs = 1 if parser.parse_args().quick else 3
    partner, customer = setup()
    folder = Path(tempfile.mkdtemp())
    stores: dict[str, Callable[[], Store]] = {
        "MemoryStore": MemoryStore,
        "SqliteStore": lambda: SqliteStore(folder / f"{time.monotonic_ns()}.db"),
    }
    per_save: dict[tuple[str, int], float] = {}
    for size in SIZES:
        invoices = build(partner, customer, size)
        for _ in range(runs):
            for name, make in stores.items():
                seconds = bulk_save(make, partner, customer, invoices) / size
                per_save[name, size] = min(per_save.get((name, size), seconds), seconds)
    small, large = SIZES
    print(f"Bulk save of n invoices in one unit of work, cost per save (best of {runs}):")
    for size in SIZES:
        memory, sqlite = per_save["MemoryStore", size], per_save["SqliteStore", size]
        print(
            f"  n={size:>6,}: MemoryStore {memory * 1e6:7.1f} µs, SqliteStore "
            f"{sqlite * 1e6:7.1f} µs; memory against SQLite {memory / sqlite:.2f}x"
        )
    for name in stores:
        growth = per_save[name, large] / per_save[name, small]
        print(f"  {name} growth per save, n={large:,} against n={small:,}: {growth:.2f}x")


if __name__ == "__main__":
    main()
