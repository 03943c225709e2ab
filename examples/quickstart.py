"""Quickstart: onboard a customer in the product's two steps, and keep it.

Run it with ``python examples/quickstart.py [DATABASE]``. It shows the "Add
customer" flow (details, then users), the error a bad first step gives (every
invalid field at once), adding a second user, and the events the customer
carries; then it stores partner and customer in a SQLite file (the embedded
default, ``quickstart.sqlite3`` unless named), reopens the file and reads the
customer back by a user's email.

To keep the data in PostgreSQL instead, install the extra
(``pip install '.[postgres]'`` in a clone) and open a
``altpay_core.adapters.postgres.PostgresStore(dsn)`` where this opens a
``SqliteStore``: the unit of work and its repositories are the same. The
role needs a schema it may create tables in (PostgreSQL 15 and later give
ordinary roles none in ``public``): ``CREATE SCHEMA altpay AUTHORIZATION
app``, then ``?options=-csearch_path%3Daltpay`` in the dsn.
"""

from __future__ import annotations

import sys

from altpay_core import CustomerDraft, Partner, Role, ValidationError
from altpay_core.adapters.sqlite import SqliteStore


def main(database: str = "quickstart.sqlite3") -> None:
    partner = Partner.create(name="Northwind IT", country="US")
    partner = partner.add_team_member(
        name="Ada Admin", email="ada@northwind.example", role=Role.ADMIN
    )
    print(f"Partner: {partner.name} ({partner.country}, {partner.currency.code})")

    # Step 1 of 2: the customer's details, then "Continue".
    draft = CustomerDraft.start(partner)
    try:
        draft.enter_details(
            company="  ",
            ein="00-1234567",
            address={
                "line1": "1 Main St",
                "city": "Albany",
                "region": "ON",
                "postal_code": "1220",
                "country": "US",
            },
        )
    except ValidationError as error:
        print("\nA bad first step reports every invalid field at once:")
        for field in error.errors:
            print(f"  {field.path:<22} {field.code:<26} {field.message}")

    draft = draft.enter_details(
        company="Globex",
        legal_name="Globex Corporation",
        ein="12-3456789",
        address={
            "line1": "1 Main St",
            "city": "Albany",
            "region": "NY",
            "postal_code": "12207",
            "country": "US",
        },
    )

    # Step 2 of 2: at least one user, then "Create Customer".
    draft = draft.add_user(first_name="Ann", last_name="Lee", email="Ann.Lee@Globex.example")
    customer = draft.create()
    customer = customer.add_user(first_name="Bo", last_name="Li", email="bo@globex.example")

    print(f"\nCustomer {customer.company} ({customer.id})")
    for user in customer.users:
        print(f"  user {user.name} <{user.email}>")
    print("\nPending events (published once stored):")
    for event in customer.events:
        changed = f" {', '.join(event.changes)}" if event.changes else ""
        print(f"  {event.topic}{changed}")

    # Store both in one unit of work: nothing is written unless commit() runs,
    # and the events go to the outbox in the same transaction.
    with SqliteStore(database) as store, store.unit_of_work() as uow:
        uow.partners.save(partner)
        customer = uow.customers.save(customer)
        uow.commit()
    print(f"\nSaved to {database} (customer version {customer.version})")

    # Reopen the file, as another process would, and read the customer back.
    with SqliteStore(database) as store, store.unit_of_work() as uow:
        found = uow.customers.with_user(partner.id, "ann.lee@globex.example")
        print(f"Read back: {[c.company for c in found]} (same data: {found[-1] == customer})")
        published = uow.outbox.pending()
        print(f"Outbox: {[m.event.topic for m in published]}")
        uow.outbox.mark_published([m.position for m in published])
        uow.commit()


if __name__ == "__main__":
    main(*sys.argv[1:2])
