"""Invoices and payments: issue, pay in part, pay a batch, take an ACH return.

Run it with ``python examples/invoices.py``. Everything stays in memory: the
values a unit of work would store are simply kept in a dictionary here.
"""

from __future__ import annotations

import datetime as dt

from altpay_core import (
    CustomerDraft,
    Invoice,
    Money,
    Partner,
    ReturnKind,
    Role,
    pay_invoices,
    return_payment,
)

TODAY = dt.date(2026, 1, 5)


def show(title: str, invoices: dict[str, Invoice]) -> None:
    print(f"\n{title}")
    for invoice in invoices.values():
        status = invoice.status.value + (" (partly paid)" if invoice.is_partly_paid else "")
        print(
            f"  invoice {invoice.number}: total {invoice.total}, paid {invoice.amount_paid}, "
            f"balance {invoice.balance}, {status}"
        )


def main() -> None:
    partner = Partner.create(name="Northwind IT", country="US")
    partner = partner.add_team_member(
        name="Mo Member", email="mo@northwind.example", role=Role.MEMBER
    )
    member = partner.team[0]
    draft = CustomerDraft.start(partner).enter_details(
        company="Globex",
        address={
            "line1": "1 Main St",
            "city": "Albany",
            "region": "NY",
            "postal_code": "12207",
            "country": "US",
        },
    )
    draft = draft.add_user(first_name="Ann", last_name="Lee", email="ann@globex.example")
    customer = draft.create()
    ann = customer.users[0]

    # Issue three invoices: line items, a fee line, a due date not in the past.
    invoices: dict[str, Invoice] = {}
    for number, amount in (("1001", "300.00"), ("1002", "120.00"), ("1003", "80.00")):
        invoices[number] = Invoice.issue(
            partner,
            customer,
            by=member,
            number=number,
            lines=[{"description": "Managed support", "quantity": 1, "unit_amount": amount}],
            fees=[{"kind": "product", "amount": "5.00", "name": "Backup add-on"}],
            due_date=TODAY + dt.timedelta(days=30),
            today=TODAY,
            memo="Thank you for your business",
        )
    show("Issued:", invoices)

    # A partial payment by card: the card fee is a separate line on the payment.
    first = invoices["1001"]
    card, (first,) = pay_invoices(
        partner,
        customer,
        [first],
        payer=ann,
        method="card",
        idempotency_key="ann-2026-01-05-1",
        amounts={first.id: Money("100.00", "USD")},
    )
    invoices["1001"] = first
    print(
        f"\nCard payment of {card.amount}; card fee {card.customer_card_fee}; charged {card.total}"
    )
    show("After a partial payment of invoice 1001:", invoices)

    # One ACH payment for two invoices in full (a batch).
    batch, touched = pay_invoices(
        partner,
        customer,
        [invoices["1002"], invoices["1003"]],
        payer=ann,
        method="ach",
        idempotency_key="ann-2026-01-05-2",
    )
    invoices.update({invoice.number: invoice for invoice in touched})
    print(f"\nACH batch payment of {batch.amount} for {len(batch.allocations)} invoices")
    show("After the batch payment:", invoices)

    # The bank returns the ACH debit: the balances come back, the fee is recorded.
    batch, touched = return_payment(batch, touched, ReturnKind.STANDARD)
    invoices.update({invoice.number: invoice for invoice in touched})
    fee = batch.return_fee
    print(f"\nACH return: payment {batch.status.value}, return fee {fee.amount if fee else '-'}")
    show("After the ACH return:", invoices)

    print("\nEvents waiting to be stored with each invoice:")
    for invoice in invoices.values():
        print(f"  {invoice.number}: {', '.join(e.topic for e in invoice.events)}")


if __name__ == "__main__":
    main()
