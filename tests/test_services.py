"""Application services: rules that span aggregates, in one commit."""

from __future__ import annotations

import attrs
import pytest

from altpay_core import (
    AccessRequest,
    AccessRequestStatus,
    ConcurrencyConflict,
    Customer,
    CustomerDraft,
    CustomerStatus,
    CustomerUpdated,
    InvariantViolation,
    NotFound,
    Partner,
    PermissionDenied,
    Role,
    TagId,
)
from altpay_core.adapters.memory import MemoryStore
from altpay_core.ports import MAX_PAGE_SIZE
from altpay_core.services import (
    add_access_request_to_customer,
    create_customer,
    delete_tag,
    reject_access_request,
)
from altpay_core.values import Address, CustomerId

ALBANY = Address("1 Main St", "Albany", "NY", "12207", "US")


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def stored_partner(store: MemoryStore) -> Partner:
    partner = Partner.create(name="Northwind IT", country="US")
    partner = partner.add_team_member(name="Ada", email="ada@northwind.example", role=Role.ADMIN)
    partner = partner.add_team_member(name="Mo", email="mo@northwind.example", role=Role.MEMBER)
    partner = partner.add_tag(name="VIP", colour="#AA0000").add_tag(name="Net 30", colour="#00AA00")
    with store.unit_of_work() as uow:
        saved = uow.partners.save(partner)
        uow.commit()
    return saved


def a_customer(partner: Partner, company: str, tags: frozenset[TagId]) -> Customer:
    draft = CustomerDraft.start(partner).enter_details(company=company, address=ALBANY)
    customer = draft.add_user(first_name="A", last_name="B", email="ab@globex.example").create()
    return attrs.evolve(customer, tags=tags)


class TestDeleteTag:
    def test_the_tag_leaves_the_catalog_and_every_customer(self, store: MemoryStore) -> None:
        partner = stored_partner(store)
        vip, net30 = (t.id for t in partner.tags)
        # More customers than fit on one page, of either status.
        customers = [
            a_customer(partner, f"Company {n:04d}", frozenset({vip, net30} if n % 2 else {vip}))
            for n in range(MAX_PAGE_SIZE + 5)
        ]
        customers[3] = customers[3].archive()
        untagged = a_customer(partner, "Untagged", frozenset({net30}))
        with store.unit_of_work() as uow:
            for customer in [*customers, untagged]:
                uow.customers.save(customer)
            uow.commit()
            published = [m.position for m in uow.outbox.pending(MAX_PAGE_SIZE)]
            while published:
                uow.outbox.mark_published(published)
                uow.commit()
                published = [m.position for m in uow.outbox.pending(MAX_PAGE_SIZE)]

        with store.unit_of_work() as uow:
            stored = delete_tag(uow, partner.id, "vip", by=partner.team[0])

        assert [t.name for t in stored.tags] == ["Net 30"]
        assert stored.version == 2
        with store.unit_of_work() as uow:
            assert uow.partners.get(partner.id) == stored
            assert uow.customers.list(partner.id, tag=vip).items == ()
            assert uow.customers.get(partner.id, customers[1].id).tags == frozenset({net30})
            archived = uow.customers.get(partner.id, customers[3].id)
            assert (archived.status, archived.tags) == (CustomerStatus.ARCHIVED, frozenset({net30}))
            assert uow.customers.get(partner.id, untagged.id).version == 1
            events = []
            while batch := uow.outbox.pending(MAX_PAGE_SIZE):
                events += [m.event for m in batch]
                uow.outbox.mark_published([m.position for m in batch])
        assert sorted(e.aggregate_id for e in events) == sorted(str(c.id) for c in customers)
        assert all(isinstance(e, CustomerUpdated) and e.changes == ("tags",) for e in events)

    def test_nothing_changes_when_refused(self, store: MemoryStore) -> None:
        partner = stored_partner(store)
        vip = partner.tags[0].id
        with store.unit_of_work() as uow:
            uow.customers.save(a_customer(partner, "Globex", frozenset({vip})))
            uow.commit()
        with store.unit_of_work() as uow:
            with pytest.raises(PermissionDenied):
                delete_tag(uow, partner.id, vip, by=partner.team[1])
            with pytest.raises(NotFound):
                delete_tag(uow, partner.id, "no such tag")
            with pytest.raises(NotFound):
                delete_tag(uow, Partner.create(name="X", country="US").id, vip)
        with store.unit_of_work() as uow:
            assert uow.partners.get(partner.id) == partner
            assert [c.tags for c in uow.customers.list(partner.id)] == [frozenset({vip})]

    def test_a_concurrent_change_to_a_customer_writes_nothing(
        self, store: MemoryStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        partner = stored_partner(store)
        vip = partner.tags[0].id
        with store.unit_of_work() as uow:
            customer = uow.customers.save(a_customer(partner, "Globex", frozenset({vip})))
            uow.commit()

        with store.unit_of_work() as uow:
            commit = uow.commit

            def another_writer_first() -> None:
                # Someone changes the customer after the service read it.
                with store.unit_of_work() as other:
                    other.customers.save(customer.set_card_fee_exception("partner"))
                    other.commit()
                commit()

            monkeypatch.setattr(uow, "commit", another_writer_first)
            with pytest.raises(ConcurrencyConflict):
                delete_tag(uow, partner.id, vip)
        with store.unit_of_work() as uow:
            assert uow.partners.get(partner.id) == partner
            stored = uow.customers.get(partner.id, customer.id)
            assert (stored.version, stored.tags) == (2, frozenset({vip}))


class TestCreateCustomer:
    def test_stores_the_customer_and_its_event(self, store: MemoryStore) -> None:
        partner = stored_partner(store)
        draft = CustomerDraft.start(partner).enter_details(company="Globex", address=ALBANY)
        draft = draft.add_user(first_name="A", last_name="B", email="ab@globex.example")
        with store.unit_of_work() as uow:
            customer = create_customer(uow, draft, by=partner.team[0])
        assert customer.version == 1
        assert customer.id == draft.customer_id
        with store.unit_of_work() as uow:
            assert uow.customers.get(partner.id, customer.id) == customer
            assert [m.event.topic for m in uow.outbox.pending()] == ["customer_created"]
        with store.unit_of_work() as uow, pytest.raises(ConcurrencyConflict):
            create_customer(uow, draft)

    def test_refused_once_the_partner_syncs_customers(self, store: MemoryStore) -> None:
        partner = stored_partner(store)
        draft = CustomerDraft.start(partner).enter_details(company="Globex", address=ALBANY)
        draft = draft.add_user(first_name="A", last_name="B", email="ab@globex.example")
        with store.unit_of_work() as uow:
            uow.partners.save(partner.connect_integration("connectwise", syncs_customers=True))
            uow.commit()
        with store.unit_of_work() as uow:
            with pytest.raises(InvariantViolation) as caught:
                create_customer(uow, draft)
            assert caught.value.rule == "C6"
            with pytest.raises(PermissionDenied):
                create_customer(uow, draft, by=partner.team[1])
            assert uow.customers.list(partner.id).items == ()


class TestAccessRequests:
    def _setup(self, store: MemoryStore) -> tuple[Partner, AccessRequest, Customer]:
        partner = stored_partner(store)
        request = AccessRequest.open(partner, email="dee@globex.example", first_name="Dee")
        customer = a_customer(partner, "Globex", frozenset())
        with store.unit_of_work() as uow:
            request = uow.access_requests.save(request)
            customer = uow.customers.save(customer)
            uow.commit()
        return partner, request, customer

    def test_adding_to_a_customer_stores_both(self, store: MemoryStore) -> None:
        partner, request, customer = self._setup(store)
        with store.unit_of_work() as uow:
            approved, joined = add_access_request_to_customer(
                uow, partner.id, request.id, customer.id, by=partner.team[0], last_name="Lee"
            )
        assert approved.status is AccessRequestStatus.APPROVED
        assert joined.has_user("dee@globex.example")
        with store.unit_of_work() as uow:
            assert uow.access_requests.get(partner.id, request.id) == approved
            assert uow.customers.with_user(partner.id, "DEE@globex.example") == [joined]

    def test_a_member_may_not_resolve_and_nothing_is_written(self, store: MemoryStore) -> None:
        partner, request, customer = self._setup(store)
        with store.unit_of_work() as uow:
            with pytest.raises(PermissionDenied):
                add_access_request_to_customer(
                    uow, partner.id, request.id, customer.id, by=partner.team[1], last_name="Lee"
                )
            with pytest.raises(NotFound):
                add_access_request_to_customer(
                    uow, partner.id, request.id, CustomerId.new(), by=partner.team[0]
                )
            with pytest.raises(PermissionDenied):
                reject_access_request(uow, partner.id, request.id, by=partner.team[1])
        with store.unit_of_work() as uow:
            assert uow.access_requests.get(partner.id, request.id) == request
            assert uow.customers.get(partner.id, customer.id) == customer

    def test_rejecting(self, store: MemoryStore) -> None:
        partner, request, _ = self._setup(store)
        with store.unit_of_work() as uow:
            rejected = reject_access_request(uow, partner.id, request.id, by=partner.team[0])
        assert rejected.status is AccessRequestStatus.REJECTED
        assert rejected.version == 2
        with store.unit_of_work() as uow:
            assert uow.access_requests.get(partner.id, request.id) == rejected
            with pytest.raises(InvariantViolation):
                reject_access_request(uow, partner.id, request.id, by=partner.team[0])
