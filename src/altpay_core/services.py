"""Application services: commands that span aggregates, in one transaction.

An aggregate keeps its own rules; a rule that spans several (deleting a tag
takes it off every customer) is kept here, where one unit of work stores
every change at once. Each service works inside a unit of work that the
caller has entered, and commits it::

    from altpay_core import services
    from altpay_core.adapters.memory import MemoryStore

    store = MemoryStore()
    with store.unit_of_work() as uow:
        services.delete_tag(uow, partner_id, "VIP", by=admin)

If the service raises, nothing it did is written (the caller's ``with``
block rolls back). Anything the caller saved earlier in the same block is
committed with it. A :class:`~altpay_core.errors.ConcurrencyConflict` means
another writer got there first: run the service again in a new unit of work.
"""

from __future__ import annotations

from altpay_core.customer import AccessRequest, Customer, CustomerDraft
from altpay_core.errors import InvariantViolation
from altpay_core.partner import Action, Partner, TeamMember
from altpay_core.ports import MAX_PAGE_SIZE, UnitOfWork
from altpay_core.values import AccessRequestId, CustomerId, PartnerId, TagId, TeamMemberId

__all__ = [
    "add_access_request_to_customer",
    "create_customer",
    "delete_tag",
    "reject_access_request",
]


def delete_tag(
    uow: UnitOfWork,
    partner_id: PartnerId,
    tag: TagId | str,
    *,
    by: TeamMemberId | TeamMember | None = None,
) -> Partner:
    """Delete a tag from the partner's catalog and from every customer carrying it.

    ``tag`` is the tag's id or name (case-insensitive). Customers of every
    status lose it, archived ones included, on every page of the listing.
    One commit stores the partner and every changed customer, with their
    ``customer_updated`` events; returns the stored partner.

    ``NotFound`` if the partner or the tag does not exist, ``PermissionDenied``
    if ``by`` may not manage tags.
    """
    partner = uow.partners.get(partner_id)
    updated = partner.delete_tag(tag, by=by)  # checks ``by`` before anything else
    doomed = partner.tag(tag).id
    stored = uow.partners.save(updated)
    after: str | None = None
    while True:
        page = uow.customers.list(partner_id, tag=doomed, limit=MAX_PAGE_SIZE, after=after)
        for customer in page:
            uow.customers.save(customer.remove_tag(doomed))
        if not page.has_next_page:
            break
        # Keyset paging: the cursor still places the next page correctly
        # though the customers just saved no longer carry the tag.
        after = page.end_cursor
    uow.commit()
    return stored


def create_customer(
    uow: UnitOfWork,
    draft: CustomerDraft,
    *,
    by: TeamMemberId | TeamMember | None = None,
) -> Customer:
    """ "Create Customer": create the draft's customer, store it and commit.

    Checks the partner as it is now: refused (C6) if one of its integrations
    has started syncing customers since the draft began. Creating twice from
    the same draft gives the same customer id, so the second attempt raises
    :class:`~altpay_core.errors.ConcurrencyConflict` and stores nothing.
    Returns the stored customer (version 1).
    """
    partner = uow.partners.get(draft.partner_id)
    if by is not None:
        partner.authorize(by, Action.MANAGE_CUSTOMERS)
    if partner.syncs_customers:
        raise InvariantViolation(
            "this partner's customers are synced from an integration; they are not added by hand",
            rule="C6",
        )
    customer = uow.customers.save(draft.create())
    uow.commit()
    return customer


def add_access_request_to_customer(
    uow: UnitOfWork,
    partner_id: PartnerId,
    request_id: AccessRequestId,
    customer_id: CustomerId,
    *,
    by: TeamMemberId | TeamMember,
    first_name: str | None = None,
    last_name: str | None = None,
) -> tuple[AccessRequest, Customer]:
    """Approve an access request by adding the person to an existing customer.

    The request and the customer (with its new user) are stored in one
    commit; returns both as stored. The rules are the aggregates' own: only
    an Admin or Sub-Admin resolves a request (C9), once, and the email must
    not already be a user of that customer (C4).
    """
    partner = uow.partners.get(partner_id)
    request = uow.access_requests.get(partner_id, request_id)
    customer = uow.customers.get(partner_id, customer_id)
    approved, joined = request.add_to_customer(
        customer, partner=partner, by=by, first_name=first_name, last_name=last_name
    )
    stored_request = uow.access_requests.save(approved)
    stored_customer = uow.customers.save(joined)
    uow.commit()
    return stored_request, stored_customer


def reject_access_request(
    uow: UnitOfWork,
    partner_id: PartnerId,
    request_id: AccessRequestId,
    *,
    by: TeamMemberId | TeamMember,
) -> AccessRequest:
    """Refuse an access request (Admin or Sub-Admin only, C9); stored and committed."""
    partner = uow.partners.get(partner_id)
    request = uow.access_requests.get(partner_id, request_id)
    stored = uow.access_requests.save(request.reject(partner=partner, by=by))
    uow.commit()
    return stored
