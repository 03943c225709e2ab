"""Quickstart: onboard a customer in the product's two steps.

Run it with ``python examples/quickstart.py``. It shows the "Add customer"
flow (details, then users), the error a bad first step gives (every invalid
field at once), adding a second user, and the events the customer carries.
"""

from __future__ import annotations

from altpay_core import CustomerDraft, Partner, Role, ValidationError


def main() -> None:
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
            address=dict(
                line1="1 Main St", city="Albany", region="ON", postal_code="1220", country="US"
            ),
        )
    except ValidationError as error:
        print("\nA bad first step reports every invalid field at once:")
        for field in error.errors:
            print(f"  {field.path:<22} {field.code:<26} {field.message}")

    draft = draft.enter_details(
        company="Globex",
        legal_name="Globex Corporation",
        ein="12-3456789",
        address=dict(
            line1="1 Main St", city="Albany", region="NY", postal_code="12207", country="US"
        ),
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


if __name__ == "__main__":
    main()
