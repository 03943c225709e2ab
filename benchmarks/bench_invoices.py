"""Invoices: reading and writing their data against pydantic v2, and paying
them through the SQLite adapter against raw sqlite3, in one process.

a. Data: ``from_dict(Invoice, data)`` builds a 10-line invoice (with a fee
   line and a payment applied) through the library's constructors, every
   rule checked, against ``InvoiceModel.model_validate(data)``, a pydantic
   v2 model of the same fields with the checks pydantic can express on each
   field (patterns, literals, lengths, strict types, decimal places); and
   ``to_dict(invoice)`` against ``model.model_dump(mode="json")``. Targets:
   at most 1.0x pydantic's time for each.
b. Payments: 100,000 payments across 10,000 invoices (10 each, round robin),
   each made with ``pay_invoices`` and saved with the invoice it pays
   (``uow.payments.save``, ``uow.invoices.save``), 1,000 payments a unit of
   work, to a SQLite file; against raw sqlite3 writing the same rows (the
   invoice's update under its version, the payment, its allocation and the
   events, the same JSON) with ``executemany``, 1,000 payments a
   transaction, into a file with the same schema and settings. Also timed:
   the same payments made as a service makes them, reading the invoice
   (``uow.invoices.get``) and the idempotency key
   (``uow.payments.get_by_idempotency_key``) first. No target: the ratio
   says what the domain and the adapter cost over the database's own work.

Prints the figures, the ratios and, for (a), PASS or MISS against each
target; asserts nothing.

    python benchmarks/bench_invoices.py            # 100,000 payments
    python benchmarks/bench_invoices.py --quick    # 10,000 payments, fewer rounds
    python benchmarks/bench_invoices.py --profile  # and where from_dict spends its time
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import platform
import pstats
import sqlite3
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
)

from altpay_core import Invoice, from_dict, to_dict
from altpay_core.adapters._sql import INVOICES, _allocations, _outbox_row, _stored, dump
from altpay_core.adapters.sqlite import SqliteStore
from altpay_core.customer import Customer, CustomerUser
from altpay_core.invoice import LineItem
from altpay_core.money import Money
from altpay_core.partner import Partner
from altpay_core.payment import pay_invoices
from altpay_core.values import Address, CustomerId, EmailAddress, InvoiceId

TARGET = 1.0
PAYMENTS_PER_UNIT = 1_000
ADDRESS = Address("1 Main St", "Albany", "NY", "12207", "US")

# -- a. the pydantic model of the same fields -----------------------------------------


def _id(prefix: str) -> Any:
    return Annotated[str, StringConstraints(pattern=rf"^{prefix}_[0-9A-Za-z]{{1,64}}$")]


def _text(length: int) -> Any:
    return Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=length, strict=True)
    ]


class MoneyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    amount: Annotated[Decimal, Field(decimal_places=2, allow_inf_nan=False)]
    currency: Literal["USD", "CAD"]


class LineItemModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: _text(500)
    quantity: Annotated[StrictInt, Field(ge=1, le=1_000_000)]
    unit_amount: MoneyModel


class FeeModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal[
        "card", "late_payment", "product", "interest", "return", "unauthorized_return", "dispute"
    ]
    name: _text(100)
    amount: MoneyModel
    covered_by_customer: StrictBool = True


class AppliedPaymentModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    payment_id: _id("pay")
    amount: MoneyModel
    released: StrictBool = False


class ExternalRefModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    system: _text(200)
    id: _text(200)


class InvoiceModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: _id("inv")
    partner_id: _id("par")
    customer_id: _id("cus")
    number: _text(50)
    currency: Literal["USD", "CAD"]
    issue_date: dt.date
    due_date: dt.date
    lines: Annotated[tuple[LineItemModel, ...], Field(min_length=1)]
    fees: tuple[FeeModel, ...] = ()
    memo: Annotated[str, StringConstraints(max_length=2000)] | None = None
    status: Literal["open", "paid", "void", "archived"] = "open"
    payments: tuple[AppliedPaymentModel, ...] = ()
    paid_in_source: MoneyModel | None = None
    external_ref: ExternalRefModel | None = None
    issued_by: _id("tm") | None = None
    created_at: AwareDatetime
    version: Annotated[StrictInt, Field(ge=0)] = 0


def invoice_data(n: int) -> dict[str, Any]:
    """A 10-line invoice with a late fee and a payment applied, as to_dict writes it."""
    return {
        "id": f"inv_{n}",
        "partner_id": "par_northwind",
        "customer_id": f"cus_{n % 97}",
        "number": f"INV-{n:06d}",
        "currency": "USD",
        "issue_date": "2026-01-02",
        "due_date": "2026-02-01",
        "lines": [
            {
                "description": f"Managed service {line} ({n})",
                "quantity": line + 1,
                "unit_amount": {"amount": f"{line + 1}{n % 10}.{n % 100:02d}", "currency": "USD"},
            }
            for line in range(10)
        ],
        "fees": [
            {
                "kind": "late_payment",
                "name": "Late payment fee",
                "amount": {"amount": "25.00", "currency": "USD"},
                "covered_by_customer": True,
            }
        ],
        "memo": "Thank you for your business",
        "status": "open",
        "payments": [
            {
                "payment_id": f"pay_{n}",
                "amount": {"amount": "100.00", "currency": "USD"},
                "released": False,
            }
        ],
        "paid_in_source": None,
        "external_ref": None,
        "issued_by": "tm_ada",
        "created_at": "2026-01-02T09:30:00+00:00",
        "version": 3,
    }


def compare(
    ours: Callable[[], object], baseline: Callable[[], object], number: int, rounds: int
) -> tuple[float, float]:
    """Seconds per call, best round of each side; the sides' rounds alternate."""
    best_ours = best_baseline = float("inf")
    for _ in range(rounds):
        best_ours = min(best_ours, timeit.timeit(ours, number=number) / number)
        best_baseline = min(best_baseline, timeit.timeit(baseline, number=number) / number)
    return best_ours, best_baseline


def report(label: str, ours: float, baseline: float) -> None:
    ratio = ours / baseline
    verdict = "PASS" if ratio <= TARGET else "MISS"
    print(
        f"  {label:<30} {ours * 1e6:7.1f} µs   pydantic {baseline * 1e6:7.1f} µs   "
        f"ratio {ratio:5.2f}x   target <= {TARGET:.2f}x   {verdict}"
    )


def cycle(items: list[Any]) -> Callable[[], Any]:
    """The items in turn, forever (built ahead, so that making them is not timed)."""

    def forever() -> Iterator[Any]:
        while True:
            yield from items

    return forever().__next__


def bench_data(quick: bool, profile: bool) -> None:
    rounds = 3 if quick else 7
    number = 1_000 if quick else 4_000
    pool = [invoice_data(n) for n in range(1_000)]
    # Both sides read the same data, agree on it, and write it back the same.
    invoice = from_dict(Invoice, pool[0])
    model = InvoiceModel.model_validate(pool[0])
    assert to_dict(invoice) == pool[0]
    dumped = model.model_dump(mode="json")
    assert {k: v for k, v in dumped.items() if k != "created_at"} == {
        k: v for k, v in pool[0].items() if k != "created_at"
    }
    print(
        f"a. a 10-line invoice as data: Python {platform.python_version()}, "
        f"pydantic {pydantic.VERSION}; best of {rounds} rounds of {number:,}"
    )
    ours_read, their_read = cycle(pool), cycle(pool)
    report(
        "from_dict / model_validate",
        *compare(
            lambda: from_dict(Invoice, ours_read()),
            lambda: InvoiceModel.model_validate(their_read()),
            number,
            rounds,
        ),
    )
    invoices = [from_dict(Invoice, data) for data in pool]
    models = [InvoiceModel.model_validate(data) for data in pool]
    ours_write, their_write = cycle(invoices), cycle(models)
    report(
        "to_dict / model_dump",
        *compare(
            lambda: to_dict(ours_write()),
            lambda: their_write().model_dump(mode="json"),
            number,
            rounds,
        ),
    )
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for data in pool * 5:
            from_dict(Invoice, data)
        profiler.disable()
        print(f"\nfrom_dict(Invoice, ...) x {len(pool) * 5:,}:\n")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


# -- b. payments through the SQLite adapter ---------------------------------------------


def billed(invoices: int) -> tuple[Partner, Customer, list[Invoice]]:
    """A partner, a customer with one user, and ``invoices`` open invoices of
    10 x 100.00 each, so that ten payments of 100.00 pay each in full."""
    partner = Partner.create(name="Northwind IT", country="US")
    user = CustomerUser.new(first_name="Ann", last_name="Lee", email="ann@globex.example")
    customer = Customer(
        id=CustomerId.new(), partner_id=partner.id, company="Globex", address=ADDRESS, users=(user,)
    )
    unit = Money("100.00", "USD")
    lines = tuple(LineItem(f"Managed service {n}", 1, unit) for n in range(10))
    found = [
        Invoice(
            id=InvoiceId.new(),
            partner_id=partner.id,
            customer_id=customer.id,
            number=f"INV-{n:06d}",
            currency=partner.currency,
            issue_date=dt.date(2026, 1, 2),
            due_date=dt.date(2026, 2, 1),
            lines=lines,
        )
        for n in range(invoices)
    ]
    assert isinstance(user.email, EmailAddress)
    return partner, customer, found


def stored(path: Path, partner: Partner, customer: Customer, invoices: list[Invoice]) -> None:
    with SqliteStore(path) as store, store.unit_of_work() as uow:
        uow.partners.save(partner)
        uow.customers.save(customer)
        for invoice in invoices:
            uow.invoices.save(invoice)
        uow.commit()


def timed(work: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def schedule(invoices: list[Invoice], payments: int) -> list[tuple[int, str]]:
    """Which invoice each payment pays (round robin), and its idempotency key."""
    return [(n % len(invoices), f"key-{n:07d}") for n in range(payments)]


def pay_and_save(
    path: Path,
    partner: Partner,
    customer: Customer,
    invoices: list[Invoice],
    plan: list[tuple[int, str]],
    *,
    read_first: bool,
) -> float:
    """Seconds to make and save every payment with the adapter."""
    user = customer.users[0]
    amount = Money("100.00", "USD")
    with SqliteStore(path) as store:
        # The invoices as stored (version 1): what the application holds.
        current = {invoice.id: _stored(invoice, 1) for invoice in invoices}

        def work() -> None:
            for start in range(0, len(plan), PAYMENTS_PER_UNIT):
                with store.unit_of_work() as uow:
                    for index, key in plan[start : start + PAYMENTS_PER_UNIT]:
                        invoice_id = invoices[index].id
                        if read_first:
                            invoice = uow.invoices.get(partner.id, invoice_id)
                            existing = uow.payments.get_by_idempotency_key(partner.id, key)
                        else:
                            invoice, existing = current[invoice_id], None
                        payment, touched = pay_invoices(
                            partner,
                            customer,
                            [invoice],
                            payer=user,
                            method="ach",
                            idempotency_key=key,
                            amounts={invoice_id: amount},
                            existing=existing,
                        )
                        uow.payments.save(payment)
                        current[invoice_id] = uow.invoices.save(touched[0])
                    uow.commit()

        seconds = timed(work)
        with store.unit_of_work() as uow:
            last = uow.invoices.get(partner.id, invoices[-1].id)
        paid = len(plan) // len(invoices)
        if last.amount_paid != Money(100 * paid, "USD") or last.version != 1 + paid:
            raise SystemExit(f"the adapter left {last.number} wrong: {last.amount_paid}")
        return seconds


RAW = {
    "update": "UPDATE invoices SET version = ?, partner_id = ?, customer_id = ?, number = ?, "
    "sort_key = ?, status = ?, ext_system = ?, ext_id = ?, currency = ?, data = ? "
    "WHERE id = ? AND version = ?",
    "payments": "INSERT INTO payments (id, version, partner_id, customer_id, idempotency_key, "
    "status, currency, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "allocations": "INSERT INTO payment_allocations (payment_id, invoice_id, partner_id, "
    "created_at) VALUES (?, ?, ?, ?)",
    "outbox": "INSERT INTO outbox (topic, partner_id, aggregate_id, occurred_at, payload) "
    "VALUES (?, ?, ?, ?, ?)",
}


def raw_batches(
    partner: Partner, customer: Customer, invoices: list[Invoice], plan: list[tuple[int, str]]
) -> list[dict[str, list[tuple[Any, ...]]]]:
    """The rows the adapter writes for the same payments, a batch per unit of
    work: the same columns and the same JSON of the stored values."""
    user = customer.users[0]
    amount = Money("100.00", "USD")
    current = {invoice.id: invoice for invoice in invoices}
    batches = []
    for start in range(0, len(plan), PAYMENTS_PER_UNIT):
        rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in RAW}
        for index, key in plan[start : start + PAYMENTS_PER_UNIT]:
            invoice = current[invoices[index].id]
            payment, (paid,) = pay_invoices(
                partner,
                customer,
                [invoice],
                payer=user,
                method="ach",
                idempotency_key=key,
                amounts={invoice.id: amount},
            )
            events = (*payment.events, *paid.events)
            version = invoice.version + 1
            paid = _stored(paid, version)
            current[invoice.id] = paid
            rows["update"].append(
                (version, *INVOICES.values(paid), dump(paid), str(paid.id), invoice.version)
            )
            stored_payment = _stored(payment, 1)
            rows["payments"].append(
                (
                    str(payment.id),
                    1,
                    str(payment.partner_id),
                    str(payment.customer_id),
                    payment.idempotency_key,
                    payment.status.value,
                    payment.currency.code,
                    dump(stored_payment),
                )
            )
            rows["allocations"].extend(_allocations(payment))
            rows["outbox"].extend(_outbox_row(event) for event in events)
        batches.append(rows)
    return batches


def raw_writes(path: Path, batches: list[dict[str, list[tuple[Any, ...]]]]) -> float:
    """Seconds to write the same rows with raw sqlite3, a transaction per batch,
    with the adapter's settings (WAL, synchronous FULL)."""
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA synchronous = FULL")

    def work() -> None:
        for rows in batches:
            raw.execute("BEGIN IMMEDIATE")
            for table, sql in RAW.items():
                cursor = raw.executemany(sql, rows[table])
                if table == "update" and cursor.rowcount != len(rows[table]):
                    raise SystemExit("raw sqlite3 missed an invoice")
            raw.execute("COMMIT")

    try:
        return timed(work)
    finally:
        raw.close()


def bench_payments(quick: bool) -> None:
    count = 10_000 if quick else 100_000
    invoices_count = count // 10
    repeat = 2
    print(
        f"\nb. {count:,} payments across {invoices_count:,} invoices, "
        f"{PAYMENTS_PER_UNIT:,} a unit of work: sqlite {sqlite3.sqlite_version}, best of {repeat}"
    )
    partner, customer, invoices = billed(invoices_count)
    plan = schedule(invoices, count)
    stored_invoices = [_stored(invoice, 1) for invoice in invoices]
    batches = raw_batches(partner, customer, stored_invoices, plan)
    results: dict[str, list[float]] = {"adapter": [], "service": [], "raw": []}
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        for run in range(repeat):
            for side, times in results.items():
                path = folder / f"{side}-{run}.db"
                stored(path, partner, customer, invoices)
                if side == "raw":
                    times.append(raw_writes(path, batches))
                else:
                    times.append(
                        pay_and_save(
                            path,
                            partner,
                            customer,
                            invoices,
                            plan,
                            read_first=side == "service",
                        )
                    )
    adapter, service, raw = (min(times) for times in results.values())
    for label, seconds, what in (
        ("adapter", adapter, "pay_invoices, then save the payment and the invoice"),
        ("", service, "reading the invoice and the key first, as a service does"),
        ("raw", raw, "the same rows: update, 3 inserts, executemany"),
    ):
        print(f"  {label:8} {seconds:7.2f} s  {count / seconds:>9,.0f} payments/s  ({what})")
    print(f"  ratio    {raw / adapter:7.2f}x  (raw time / adapter time; no target)")
    print(f"           {raw / service:7.2f}x  reading first")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 payments, fewer rounds")
    parser.add_argument("--profile", action="store_true", help="profile from_dict as well")
    parser.add_argument("--only", choices=["data", "payments"], help="run one part only")
    args = parser.parse_args()
    if args.only != "payments":
        bench_data(args.quick, args.profile)
    if args.only != "data":
        bench_payments(args.quick)


if __name__ == "__main__":
    main()
