"""Application services: rules that span aggregates, in one commit."""

from __future__ import annotations

import datetime as dt
import inspect
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from altpay_core import (
    AccessRequest,
    AccessRequestStatus,
    AltpayError,
    ConcurrencyConflict,
    Customer,
    CustomerDraft,
    CustomerPaymentMethods,
    CustomerStatus,
    CustomerUpdated,
    CustomerUser,
    Fee,
    FeeKind,
    Impersonation,
    InvariantViolation,
    Invoice,
    InvoiceId,
    InvoiceStatus,
    Money,
    NotFound,
    Partner,
    Payment,
    PaymentId,
    PaymentStatus,
    PermissionDenied,
    Role,
    ScheduledPayment,
    ScheduledPaymentStatus,
    TagId,
    TeamMember,
    UniqueKeyTaken,
    UserId,
    ValidationError,
    from_dict,
    services,
    to_dict,
)
from altpay_core.adapters.memory import MemoryStore, MemoryUnitOfWork
from altpay_core.adapters.sqlite import SqliteStore
from altpay_core.ports import MAX_PAGE_SIZE, UnitOfWork
from altpay_core.services import (
    add_access_request_to_customer,
    create_customer,
    create_customer_from_access_request,
    delete_tag,
    open_access_request,
    reject_access_request,
)
from altpay_core.values import Address, CustomerId, EntityId, PartnerId

ALBANY = Address("1 Main St", "Albany", "NY", "12207", "US")

Store = MemoryStore | SqliteStore


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def stored_partner(store: Store) -> Partner:
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

    def test_a_member_is_refused_before_the_tag_is_looked_up(self, store: MemoryStore) -> None:
        # A NotFound would tell a member without the right whether a tag exists.
        partner = stored_partner(store)
        with store.unit_of_work() as uow, pytest.raises(PermissionDenied):
            delete_tag(uow, partner.id, "no such tag", by=partner.team[1])

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

    @pytest.mark.parametrize("kind", ["memory", "sqlite"])
    def test_a_draft_sent_again_is_refused_for_good_naming_its_customer(
        self, tmp_path: Path, kind: str
    ) -> None:
        """A resubmitted form: the second attempt finds the draft's customer
        stored and says so as a UniqueKeyTaken, a conflict that retrying
        cannot resolve; nothing is written."""
        store: Store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "a.db")
        partner = stored_partner(store)
        draft = CustomerDraft.start(partner).enter_details(company="Globex", address=ALBANY)
        draft = draft.add_user(first_name="A", last_name="B", email="ab@globex.example")
        with store.unit_of_work() as uow:
            customer = create_customer(uow, draft, by=partner.team[0])
        for _ in range(2):  # and so again: retrying cannot help
            with store.unit_of_work() as uow:
                with pytest.raises(UniqueKeyTaken) as caught:
                    create_customer(uow, draft, by=partner.team[0])
                uow.commit()
            error = caught.value
            assert isinstance(error, ConcurrencyConflict)
            assert isinstance(error, InvariantViolation)
            assert (error.rule, error.path) == ("customer-created", "draft")
            assert (error.kind, error.key) == ("customer", str(customer.id))
            assert f"customer {customer.id} " in str(error)
            assert "nothing was written" in str(error)
        with store.unit_of_work() as uow:
            assert uow.customers.get(partner.id, customer.id) == customer
            assert [m.event.topic for m in uow.outbox.pending()] == ["customer_created"]

    @pytest.mark.parametrize("kind", ["memory", "sqlite"])
    def test_of_two_creating_at_once_one_stores_and_the_other_is_told_on_retry(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
    ) -> None:
        """Neither finds the customer stored; the other commits between this
        one's save and its commit: a plain ConcurrencyConflict, to retry, and
        the retry gets the UniqueKeyTaken."""
        store: Store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "a.db")
        partner = stored_partner(store)
        draft = CustomerDraft.start(partner).enter_details(company="Globex", address=ALBANY)
        draft = draft.add_user(first_name="A", last_name="B", email="ab@globex.example")
        won: list[Customer] = []
        with store.unit_of_work() as uow:
            save = uow.customers.save

            def save_then_lose(customer: Customer) -> Customer:
                saved = save(customer)
                if not won:
                    with store.unit_of_work() as other:
                        won.append(create_customer(other, draft))
                return saved

            monkeypatch.setattr(uow.customers, "save", save_then_lose)
            with pytest.raises(ConcurrencyConflict) as caught:
                create_customer(uow, draft)
            assert not isinstance(caught.value, UniqueKeyTaken)
        with store.unit_of_work() as uow, pytest.raises(UniqueKeyTaken):
            create_customer(uow, draft)
        with store.unit_of_work() as uow:
            assert uow.customers.get(partner.id, draft.customer_id) == won[0]

    def test_a_customer_of_another_partner_is_not_looked_up(self, store: MemoryStore) -> None:
        """The look-up is the draft's partner's: a customer of another
        partner under the same id is not this draft's (the store refuses the
        id, saying no more than that it is stored)."""
        partner = stored_partner(store)
        draft = CustomerDraft.start(partner).enter_details(company="Globex", address=ALBANY)
        draft = draft.add_user(first_name="A", last_name="B", email="ab@globex.example")
        other = Partner.create(name="Contoso", country="US")
        theirs = attrs.evolve(a_customer(other, "Initech", frozenset()), id=draft.customer_id)
        with store.unit_of_work() as uow:
            uow.partners.save(other)
            uow.customers.save(theirs)
            uow.commit()
        with store.unit_of_work() as uow, pytest.raises(ConcurrencyConflict) as caught:
            create_customer(uow, draft)
        assert not isinstance(caught.value, UniqueKeyTaken)
        assert "already stored" in str(caught.value)

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
            # The partner as it is now, before the draft is used (at step 1).
            with pytest.raises(InvariantViolation) as caught:
                create_customer(uow, CustomerDraft.start(partner))
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

    @given(
        emails=st.lists(
            st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True),
            min_size=1,
            max_size=8,
            unique=True,
        ),
        data=st.data(),
    )
    def test_asking_again_looks_up_one_email_not_every_pending_request(
        self, emails: list[str], data: st.DataObject
    ) -> None:
        # Anyone with the billing link may ask: the answer must not read
        # every pending request of the partner (a flood of them would make
        # each call slower), only the asker's.
        with MemoryStore() as store:
            partner = stored_partner(store)
            with store.unit_of_work() as uow:
                requests = {
                    e: uow.access_requests.save(
                        AccessRequest.open(partner, email=f"{e}@initech.example")
                    )
                    for e in emails
                }
                uow.commit()
            asker = data.draw(st.sampled_from(emails))
            with store.unit_of_work() as uow:
                listed = []
                listing = uow.access_requests.list

                def list_and_count(*args: Any, **kwargs: Any) -> list[AccessRequest]:
                    found = listing(*args, **kwargs)
                    listed.extend(found)
                    return found

                uow.access_requests.list = list_and_count  # type: ignore[method-assign]
                email = f"{asker.upper()}@initech.example"
                assert open_access_request(uow, partner.id, email=email) == requests[asker]
                assert listed == []

    def test_opening_stores_one_request_per_person_not_yet_a_user(self, store: MemoryStore) -> None:
        partner, request, customer = self._setup(store)
        with store.unit_of_work() as uow:
            opened = open_access_request(uow, partner.id, email=" eve@initech.example ")
            # The same person again, while it is pending: the same request.
            assert open_access_request(uow, partner.id, email="EVE@initech.example") == opened
            assert open_access_request(uow, partner.id, email="dee@globex.example") == request
        assert (opened.email.key, opened.version, opened.is_pending) == (
            "eve@initech.example",
            1,
            True,
        )
        user = customer.users[0].email
        with store.unit_of_work() as uow:
            with pytest.raises(InvariantViolation) as caught:
                open_access_request(uow, partner.id, email=str(user).upper())
            assert (caught.value.rule, caught.value.path) == ("access-request-user", "email")
            with pytest.raises(ValidationError) as invalid:
                open_access_request(uow, partner.id, email="nobody", first_name=" ")
            assert invalid.value.paths == ["email"]
            with pytest.raises(NotFound):
                open_access_request(uow, PartnerId.new(), email="eve@initech.example")
            pending = uow.access_requests.list(partner.id)
        assert sorted(r.email.key for r in pending) == ["dee@globex.example", "eve@initech.example"]
        # Once the first is resolved, asking again opens a new one; a user of
        # an archived customer, who sees nothing, may ask too.
        with store.unit_of_work() as uow:
            reject_access_request(uow, partner.id, opened.id, by=partner.team[0])
            again = open_access_request(uow, partner.id, email="eve@initech.example")
            uow.customers.save(customer.archive())
            uow.commit()
            archived_user = open_access_request(uow, partner.id, email=str(user))
        assert again.id != opened.id
        assert archived_user.email == user

    @pytest.mark.parametrize("kind", ["memory", "sqlite"])
    def test_of_two_asking_at_once_one_is_stored_and_the_other_gets_it_when_retrying(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
    ) -> None:
        """Two asking at the same moment, in two units of work: each finds
        no pending request of the email; the other commits between this
        one's save and its commit. This commit is refused with
        ConcurrencyConflict, nothing written; asked again, it gets the
        stored request back."""
        store: Store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "a.db")
        partner = stored_partner(store)
        won: list[AccessRequest] = []
        with store.unit_of_work() as uow:
            save = uow.access_requests.save

            def save_then_lose(request: AccessRequest) -> AccessRequest:
                saved = save(request)
                if not won:
                    with store.unit_of_work() as other:
                        first = open_access_request(other, partner.id, email="dee@globex.example")
                        won.append(first)
                return saved

            monkeypatch.setattr(uow.access_requests, "save", save_then_lose)
            with pytest.raises(ConcurrencyConflict) as caught:
                open_access_request(uow, partner.id, email="DEE@globex.example", first_name="Dee")
            assert (caught.value.kind, caught.value.key) == ("access request", "dee@globex.example")
            assert uow.access_requests.list(partner.id) == won
            assert open_access_request(uow, partner.id, email="DEE@globex.example") == won[0]
        store.close()

    def test_a_user_of_any_active_customer_may_not_ask(self, store: MemoryStore) -> None:
        # Not only the first customer listed: here an archived one comes first.
        partner = stored_partner(store)
        archived = a_customer_with_users(partner, "Aaa", "dee@globex.example").archive()
        active = a_customer_with_users(partner, "Zzz", "dee@globex.example")
        with store.unit_of_work() as uow:
            uow.customers.save(archived)
            uow.customers.save(active)
            uow.commit()
        with store.unit_of_work() as uow:
            listed = uow.customers.with_user(partner.id, "dee@globex.example")
            assert [c.is_active for c in listed] == [False, True]
            with pytest.raises(InvariantViolation) as caught:
                open_access_request(uow, partner.id, email="dee@globex.example")
            assert caught.value.rule == "access-request-user"
            assert uow.access_requests.list(partner.id) == []

    def test_asking_again_commits_what_the_caller_saved_before(self, store: MemoryStore) -> None:
        # As every service does when it succeeds, also when it finds the
        # request it would store stored already.
        partner, request, customer = self._setup(store)
        with store.unit_of_work() as uow:
            uow.customers.save(customer.update_details(legal_name="Globex LLC"))
            assert open_access_request(uow, partner.id, email="dee@globex.example") == request
        with store.unit_of_work() as uow:
            assert uow.customers.get(partner.id, customer.id).legal_name == "Globex LLC"

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

    def test_a_new_customer_and_the_approval_are_stored_together(self, store: MemoryStore) -> None:
        partner, request, _ = self._setup(store)
        admin = partner.team[0]
        draft = request.start_customer(partner=partner, by=admin, last_name="Lee")
        draft = draft.enter_details(company="Initech", address=ALBANY)
        with store.unit_of_work() as uow:
            approved, created = create_customer_from_access_request(
                uow, partner.id, request.id, draft, by=admin
            )
        assert (approved.status, approved.customer_id) == (AccessRequestStatus.APPROVED, created.id)
        assert (approved.version, created.version) == (2, 1)
        with store.unit_of_work() as uow:
            assert uow.access_requests.get(partner.id, request.id) == approved
            assert uow.customers.with_user(partner.id, "dee@globex.example") == [created]
            topics = [m.event.topic for m in uow.outbox.pending()]
        assert topics[-1] == "customer_created"

    def test_a_draft_whose_customer_is_stored_approves_no_other_request(
        self, store: MemoryStore
    ) -> None:
        """The draft that created a customer for one request, used again for
        another: a UniqueKeyTaken naming the customer, for good (not a plain
        conflict that a retry would repeat), and the other request stays
        pending."""
        partner, request, _ = self._setup(store)
        admin = partner.team[0]
        other = AccessRequest.open(partner, email="eve@globex.example", first_name="Eve")
        with store.unit_of_work() as uow:
            other = uow.access_requests.save(other)
            uow.commit()
        draft = request.start_customer(partner=partner, by=admin, last_name="Lee")
        draft = draft.enter_details(company="Initech", address=ALBANY)
        draft = draft.add_user(first_name="Eve", last_name="Ho", email="eve@globex.example")
        with store.unit_of_work() as uow:
            _, created = create_customer_from_access_request(
                uow, partner.id, request.id, draft, by=admin
            )
        for _ in range(2):
            with store.unit_of_work() as uow, pytest.raises(UniqueKeyTaken) as caught:
                create_customer_from_access_request(uow, partner.id, other.id, draft, by=admin)
            assert (caught.value.rule, caught.value.path) == ("customer-created", "draft")
            assert caught.value.key == str(created.id)
        with store.unit_of_work() as uow:
            assert uow.access_requests.get(partner.id, other.id) == other

    def test_a_refused_new_customer_leaves_the_request_pending(self, store: MemoryStore) -> None:
        partner, request, customer = self._setup(store)
        admin = partner.team[0]
        opened = request.start_customer(partner=partner, by=admin, last_name="Lee")
        dropped = (
            opened.remove_user("dee@globex.example")
            .enter_details(company="Other Co", address=ALBANY)
            .add_user(first_name="N", last_name="O", email="nobody@other.example")
        )
        refusals: list[tuple[CustomerDraft, TeamMember, type[Exception]]] = [
            (opened, admin, InvariantViolation),  # no details yet (C1)
            (dropped, admin, InvariantViolation),  # the person dropped
            # Who may resolve comes first: a Member is refused whatever the draft.
            (opened, partner.team[1], PermissionDenied),
        ]
        for draft, by, error in refusals:
            with store.unit_of_work() as uow, pytest.raises(error):
                create_customer_from_access_request(uow, partner.id, request.id, draft, by=by)
        with store.unit_of_work() as uow:
            uow.partners.save(partner.connect_integration("halopsa", syncs_customers=True))
            uow.commit()
        # The partner as it is now, before the draft (still at step 1) is used.
        with store.unit_of_work() as uow, pytest.raises(InvariantViolation) as caught:
            create_customer_from_access_request(uow, partner.id, request.id, opened, by=admin)
        assert caught.value.rule == "C6"
        with store.unit_of_work() as uow:
            assert uow.access_requests.get(partner.id, request.id) == request
            assert [c.id for c in uow.customers.list(partner.id).items] == [customer.id]

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


# -- payments ----------------------------------------------------------------------

TODAY = dt.date(2026, 1, 5)
ONE_DAY = dt.timedelta(days=1)
AT_NOON = dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC)


def at(day: int) -> dt.datetime:
    return dt.datetime(2026, 1, day, 12, tzinfo=dt.UTC)


@attrs.frozen
class Billing:
    """A stored partner, a customer with two users, another customer, and two
    open invoices of the first (100.00 and 50.00)."""

    partner: Partner
    customer: Customer
    other: Customer
    one: Invoice
    two: Invoice

    @property
    def ann(self) -> CustomerUser:
        return self.customer.users[0]


def a_customer_with_users(partner: Partner, company: str, *emails: str) -> Customer:
    draft = CustomerDraft.start(partner).enter_details(company=company, address=ALBANY)
    for email in emails:
        draft = draft.add_user(first_name="A", last_name="B", email=email)
    return draft.create()


@pytest.fixture
def billing(store: MemoryStore) -> Billing:
    return a_billing(store)


def a_billing(store: Store) -> Billing:
    partner = stored_partner(store)
    customer = a_customer_with_users(partner, "Globex", "ann@globex.example", "bo@globex.example")
    other = a_customer_with_users(partner, "Initech", "cy@initech.example")
    mo = partner.team[1]

    def issue(number: str, amount: str) -> Invoice:
        invoice = Invoice.issue(
            partner,
            customer,
            by=mo,
            number=number,
            lines=[{"description": "Support", "quantity": 1, "unit_amount": amount}],
            due_date=TODAY + dt.timedelta(days=30),
            today=TODAY,
        )
        # Issued on TODAY, before the payments of the tests (at(6) on).
        return attrs.evolve(invoice, created_at=at(5) - dt.timedelta(hours=3))

    with store.unit_of_work() as uow:
        customer = uow.customers.save(customer)
        other = uow.customers.save(other)
        one = uow.invoices.save(issue("1001", "100.00"))
        two = uow.invoices.save(issue("1002", "50.00"))
        uow.commit()
        uow.outbox.mark_published([m.position for m in uow.outbox.pending()])
        uow.commit()
    return Billing(partner, customer, other, one, two)


def topics(store: MemoryStore) -> list[str]:
    with store.unit_of_work() as uow:
        return [m.event.topic for m in uow.outbox.pending(MAX_PAGE_SIZE)]


def pay(
    store: Store,
    b: Billing,
    invoices: list[Invoice],
    key: str = "req-1",
    **options: Any,
) -> tuple[Payment, tuple[Invoice, ...]]:
    options.setdefault("payer", b.ann)
    options.setdefault("method", "ach")
    with store.unit_of_work() as uow:
        return services.pay_invoices(
            uow,
            b.partner.id,
            b.customer.id,
            [i.id for i in invoices],
            idempotency_key=key,
            at=at(6),
            **options,
        )


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_the_outbox_position_tells_apart_events_alike_in_every_other_field(
    tmp_path: Path, kind: str
) -> None:
    """Two payments of one invoice at the same time make two events with
    the same aggregate_id, occurred_at and topic: only the message's
    position tells them apart, as the docs tell receivers, and one
    aggregate's positions grow in the order of its changes."""
    store: Store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "a.db")
    b = a_billing(store)
    pay(store, b, [b.one], "req-1", amounts={b.one.id: "10.00"})
    pay(store, b, [b.one], "req-2", amounts={b.one.id: "20.00"})
    with store.unit_of_work() as uow:
        messages = uow.outbox.pending(MAX_PAGE_SIZE)
        stored = uow.invoices.get(b.partner.id, b.one.id)
    positions = [m.position for m in messages]
    assert len(set(positions)) == len(positions)
    assert positions == sorted(positions)
    alike = [m for m in messages if m.event.aggregate_id == str(b.one.id)]
    assert len(alike) == 2
    assert len({(m.event.aggregate_id, m.event.occurred_at, m.event.topic) for m in alike}) == 1
    assert alike[0].position < alike[1].position
    assert [p.amount for p in stored.payments] == [Money("10.00", "USD"), Money("20.00", "USD")]


def charge_first(uow: UnitOfWork, b: Billing, **more: Any) -> tuple[Payment, tuple[Invoice, ...]]:
    """Ann charges the first invoice now, with the method on file (or the
    one ``more`` names), under one key: a retry is the same request."""
    return services.charge_now(
        uow, b.partner.id, b.customer.id, [b.one.id], payer=b.ann,
        idempotency_key="now-1", at=at(6), **more,
    )  # fmt: skip


def pay_both_by_ach(uow: UnitOfWork, b: Billing) -> None:
    """Ann pays both invoices in full, in the unit of work given."""
    services.pay_invoices(
        uow,
        b.partner.id,
        b.customer.id,
        [b.one.id, b.two.id],
        payer=b.ann,
        method="ach",
        idempotency_key="req-1",
    )


def another_writer_before_the_invoices_are_read(
    store: Store,
    uow: UnitOfWork,
    monkeypatch: pytest.MonkeyPatch,
    write: Callable[[UnitOfWork], object],
) -> None:
    """Have another writer ``write`` in a unit of work of its own, committed,
    just before ``uow`` reads an invoice (after its service read the payment)."""
    get = uow.invoices.get

    def another_writer_first(partner_id: PartnerId, invoice_id: InvoiceId) -> Invoice:
        with store.unit_of_work() as other:
            write(other)
        return get(partner_id, invoice_id)

    monkeypatch.setattr(uow.invoices, "get", another_writer_first)


def assert_unchanged(store: MemoryStore, b: Billing, *, key: str = "req-1") -> None:
    with store.unit_of_work() as uow:
        assert uow.invoices.get(b.partner.id, b.one.id) == b.one
        assert uow.invoices.get(b.partner.id, b.two.id) == b.two
        assert uow.payments.get_by_idempotency_key(b.partner.id, key) is None
        assert uow.payments.for_invoice(b.partner.id, b.one.id) == []
    assert topics(store) == []


class TestPayInvoices:
    def test_the_payment_and_its_invoices_are_stored_in_one_commit(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        b = billing
        payment, (one, two) = pay(
            store, b, [b.one, b.two], amounts={b.one.id: "40.00", b.two.id: "50.00"}
        )
        assert (payment.version, payment.status) == (1, PaymentStatus.PROCESSING)
        assert payment.amount == Money("90.00", "USD")
        assert (one.version, one.balance, one.is_partly_paid) == (2, Money("60.00", "USD"), True)
        assert (two.version, two.status) == (2, InvoiceStatus.PAID)
        with store.unit_of_work() as uow:
            assert uow.payments.get(b.partner.id, payment.id) == payment
            assert uow.payments.get_by_idempotency_key(b.partner.id, "req-1") == payment
            assert uow.invoices.get(b.partner.id, one.id) == one
            assert uow.invoices.get(b.partner.id, two.id) == two
            assert uow.payments.for_invoice(b.partner.id, two.id) == [payment]
        assert topics(store) == ["invoice_updated", "invoice_paid"]

    def test_the_same_request_again_returns_the_first_payment(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        b = billing
        first, touched = pay(store, billing, [b.one, b.two])
        # The invoices are paid now; the replay neither pays again nor fails.
        again, nothing = pay(store, billing, [b.two, b.one])
        assert again == first
        assert nothing == ()
        with store.unit_of_work() as uow:
            assert [uow.invoices.get(b.partner.id, i.id) for i in touched] == list(touched)
            assert uow.payments.for_invoice(b.partner.id, b.one.id) == [first]
        assert topics(store) == ["invoice_paid", "invoice_paid"]

    def test_the_same_request_again_commits_what_the_caller_saved_before(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        b = billing
        first, _ = pay(store, b, [b.one])
        with store.unit_of_work() as uow:
            uow.customers.save(b.other.archive())
            again = services.pay_invoices(
                uow, b.partner.id, b.customer.id, [b.one.id], payer=b.ann, method="ach",
                idempotency_key="req-1", at=at(6),
            )  # fmt: skip
        assert again == (first, ())
        with store.unit_of_work() as uow:
            assert uow.customers.get(b.partner.id, b.other.id).status is CustomerStatus.ARCHIVED

    @pytest.mark.parametrize(
        "change",
        [
            {"amounts": "half"},
            {"method": "card"},
            {"payer": "bo"},
            {"invoices": "one"},
        ],
    )
    def test_the_same_key_with_another_request_is_refused(
        self, store: MemoryStore, billing: Billing, change: dict[str, str]
    ) -> None:
        b = billing
        first, _ = pay(store, b, [b.one, b.two])
        options: dict[str, Any] = {}
        invoices = [b.one, b.two]
        if "amounts" in change:
            options["amounts"] = {b.one.id: "50.00", b.two.id: "25.00"}
        if "method" in change:
            options["method"] = "card"
        if "payer" in change:
            options["payer"] = b.customer.users[1]
        if "invoices" in change:
            invoices = [b.one]
        before = topics(store)
        with pytest.raises(InvariantViolation) as caught:
            pay(store, b, invoices, **options)
        assert caught.value.rule == "idempotency"
        with store.unit_of_work() as uow:
            assert uow.payments.for_invoice(b.partner.id, b.one.id) == [first]
        assert topics(store) == before

    def test_an_invoice_holding_a_card_fee_line_is_refused_but_a_retry_returns_its_payment(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        b = billing
        first, _ = pay(store, b, [b.one], amounts={b.one.id: "10.00"})
        # Invoice 1001 as stored before its commands refused a card fee line.
        line = Fee.new(FeeKind.CARD, Money("3.20", "USD"), covered_by_customer=True)
        with store.unit_of_work() as uow:
            stored = uow.invoices.get(b.partner.id, b.one.id)
            uow.invoices.save(from_dict(Invoice, {**to_dict(stored), "fees": [to_dict(line)]}))
            uow.commit()
        before = topics(store)
        # The same request again returns the payment it made.
        again, nothing = pay(store, b, [b.one], amounts={b.one.id: "10.00"})
        assert again == first
        assert nothing == ()
        # A new payment is refused, by any method (I8), and nothing is written.
        for method in ("ach", "card"):
            with pytest.raises(InvariantViolation) as caught:
                pay(store, b, [b.two, b.one], key=f"req-{method}", method=method)
            assert (caught.value.rule, caught.value.path) == ("I8", "invoice_ids[1]")
            assert "remove the card fee line first" in str(caught.value)
        with store.unit_of_work() as uow:
            assert uow.payments.for_invoice(b.partner.id, b.one.id) == [first]
            assert uow.invoices.get(b.partner.id, b.two.id) == b.two
            assert uow.payments.get_by_idempotency_key(b.partner.id, "req-card") is None
        assert topics(store) == before

    def test_a_refusal_on_one_invoice_writes_nothing(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        b = billing
        with pytest.raises(InvariantViolation) as caught:
            pay(store, b, [b.one, b.two], amounts={b.one.id: "40.00", b.two.id: "50.01"})
        assert caught.value.rule == "I5"
        assert_unchanged(store, b)

    def test_a_conflict_on_one_invoice_writes_nothing(
        self, store: MemoryStore, billing: Billing, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        b = billing
        with store.unit_of_work() as uow:
            commit = uow.commit

            def another_writer_first() -> None:
                # The partner edits the second invoice after the service read it.
                with store.unit_of_work() as other:
                    other.invoices.save(b.two.update(b.partner, memo="Changed"))
                    other.commit()
                commit()

            monkeypatch.setattr(uow, "commit", another_writer_first)
            with pytest.raises(ConcurrencyConflict):
                pay_both_by_ach(uow, b)
        with store.unit_of_work() as uow:
            assert uow.invoices.get(b.partner.id, b.one.id) == b.one
            assert uow.invoices.get(b.partner.id, b.two.id).memo == "Changed"
            assert uow.payments.get_by_idempotency_key(b.partner.id, "req-1") is None
        assert topics(store) == ["invoice_updated"]

    @pytest.mark.parametrize("kind", ["memory", "sqlite"])
    def test_a_caller_who_catches_a_conflict_cannot_commit_half_a_payment(
        self, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Another writer edits the second invoice just after the service read
        # it: its save is refused after the payment's. Committing what is
        # left must not store the payment without that invoice.
        store: Store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "a.db")
        b = a_billing(store)
        with store.unit_of_work() as uow:
            uow.customers.save(b.other.set_notifications(b.other.users[0].email, enabled=False))
            read = uow.invoices.get

            def read_then_another_writer(partner_id: Any, invoice_id: InvoiceId) -> Invoice:
                got = read(partner_id, invoice_id)
                if invoice_id == b.two.id:
                    with store.unit_of_work() as other:
                        other.invoices.save(b.two.update(b.partner, memo="Changed"))
                        other.commit()
                return got

            monkeypatch.setattr(uow.invoices, "get", read_then_another_writer)
            with pytest.raises(ConcurrencyConflict):
                pay_both_by_ach(uow, b)
            uow.commit()  # the unit of work was rolled back: nothing is left
        with store.unit_of_work() as uow:
            assert uow.invoices.get(b.partner.id, b.one.id) == b.one
            assert uow.invoices.get(b.partner.id, b.two.id).memo == "Changed"
            assert uow.payments.get_by_idempotency_key(b.partner.id, "req-1") is None
            assert uow.payments.for_invoice(b.partner.id, b.one.id) == []
            # What the caller saved before the service is gone with it.
            assert uow.customers.get(b.partner.id, b.other.id) == b.other
        store.close()

    @pytest.mark.parametrize("kind", ["memory", "sqlite"])
    @pytest.mark.parametrize(
        "refused", [("archive", "C8", "customer_id"), ("remove the payer", "I1", "user_id")]
    )
    def test_a_customer_changed_by_another_writer_before_the_commit_pays_nothing(
        self,
        kind: str,
        refused: tuple[str, str, str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # Another writer archives the customer, or takes Ann's login away,
        # just after the service read the customer: at commit, the store
        # refuses Ann's payment, and nothing of it is written.
        store: Store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "a.db")
        b = a_billing(store)
        change, rule, path = refused
        changed = b.customer.archive() if change == "archive" else b.customer.remove_user(b.ann)
        with store.unit_of_work() as uow:
            read = uow.customers.get

            def read_then_another_writer(partner_id: Any, customer_id: CustomerId) -> Customer:
                got = read(partner_id, customer_id)
                with store.unit_of_work() as other:
                    other.customers.save(changed)
                    other.commit()
                return got

            monkeypatch.setattr(uow.customers, "get", read_then_another_writer)
            with pytest.raises(InvariantViolation) as caught:
                pay_both_by_ach(uow, b)
        assert (caught.value.rule, caught.value.path) == (rule, path)
        with store.unit_of_work() as uow:
            assert uow.customers.get(b.partner.id, b.customer.id).version == 2
            assert uow.invoices.get(b.partner.id, b.one.id) == b.one
            assert uow.invoices.get(b.partner.id, b.two.id) == b.two
            assert uow.payments.get_by_idempotency_key(b.partner.id, "req-1") is None
            assert uow.payments.for_invoice(b.partner.id, b.one.id) == []
            assert "invoice_paid" not in [m.event.topic for m in uow.outbox.pending()]
        store.close()

    def test_a_request_that_lost_a_race_for_its_key_replays_the_winner(
        self, store: MemoryStore, billing: Billing, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        b = billing
        won: list[Payment] = []
        with store.unit_of_work() as uow:
            commit = uow.commit

            def the_same_request_first() -> None:
                # A retry of the same request, by the client, commits first.
                won.append(pay(store, b, [b.one])[0])
                commit()

            monkeypatch.setattr(uow, "commit", the_same_request_first)
            with pytest.raises(ConcurrencyConflict):
                services.pay_invoices(
                    uow,
                    b.partner.id,
                    b.customer.id,
                    [b.one.id],
                    payer=b.ann,
                    method="ach",
                    idempotency_key="req-1",
                    at=at(6),
                )
        again, nothing = pay(store, b, [b.one])
        assert (again, nothing) == (won[0], ())
        with store.unit_of_work() as uow:
            assert uow.payments.for_invoice(b.partner.id, b.one.id) == won

    @pytest.mark.parametrize("option", ["method", "payer"])
    def test_a_full_number_given_as_the_method_or_payer_is_never_echoed(
        self, store: MemoryStore, billing: Billing, option: str
    ) -> None:
        number = "4111111111111111"
        with pytest.raises(ValidationError) as caught:
            pay(store, billing, [billing.one], **{option: number})
        assert caught.value.paths == [option]
        assert caught.value.codes == ["invalid_choice" if option == "method" else "invalid_id"]
        assert number not in str(caught.value)
        assert "16 characters; the value is not shown" in str(caught.value)
        assert_unchanged(store, billing)

    def test_only_the_invoices_customers_users_may_pay(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        b = billing
        looking = Impersonation.start(b.partner, b.customer, by=b.partner.team[1])
        for payer in (looking, b.other.users[0], UserId.new()):
            with pytest.raises(PermissionDenied):
                pay(store, b, [b.one], payer=payer)
        # Another customer's invoice, through that customer's login.
        with store.unit_of_work() as uow, pytest.raises(PermissionDenied):
            services.pay_invoices(
                uow,
                b.partner.id,
                b.other.id,
                [b.one.id],
                payer=b.other.users[0],
                method="ach",
                idempotency_key="req-1",
            )
        assert_unchanged(store, b)

    @pytest.mark.parametrize(
        ("twice", "amounts", "code"),
        [
            (True, None, "duplicate"),
            (True, {}, "duplicate"),
            # Refused for access, by id too, before its amount is looked at.
            (False, {}, None),
            (False, "ONE: -1", None),
            (False, "ONE: 1.00", None),
        ],
    )
    def test_another_customers_invoice_number_is_never_shown(
        self, store: MemoryStore, billing: Billing, twice: bool, amounts: Any, code: Any
    ) -> None:
        b = billing
        if isinstance(amounts, str):
            amounts = {b.one.id: amounts.removeprefix("ONE: ")}
        # Initech's user names Globex's invoice by its id, and gets it wrong.
        with store.unit_of_work() as uow, pytest.raises(AltpayError) as caught:
            services.pay_invoices(
                uow,
                b.partner.id,
                b.other.id,
                [b.one.id, b.one.id] if twice else [b.one.id],
                payer=b.other.users[0],
                method="ach",
                idempotency_key="req-1",
                amounts=amounts,
            )
        if code is None:
            assert isinstance(caught.value, PermissionDenied)
        else:
            assert isinstance(caught.value, ValidationError)
            assert code in caught.value.codes
        shown = str(caught.value)
        assert str(b.one.id) in shown
        assert b.one.number not in shown.replace(str(b.one.id), "")
        assert_unchanged(store, b)

    def test_another_partners_invoices_are_not_found(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        b = billing
        with store.unit_of_work() as uow:
            elsewhere = uow.partners.save(Partner.create(name="Contoso", country="US"))
            uow.commit()
        with store.unit_of_work() as uow:
            with pytest.raises(NotFound):
                services.pay_invoices(
                    uow,
                    elsewhere.id,
                    b.customer.id,
                    [b.one.id],
                    payer=b.ann,
                    method="ach",
                    idempotency_key="req-1",
                )
            with pytest.raises(NotFound):
                services.pay_invoices(
                    uow,
                    b.partner.id,
                    b.customer.id,
                    [b.one.id, InvoiceId.new()],
                    payer=b.ann,
                    method="ach",
                    idempotency_key="req-1",
                )
        assert_unchanged(store, b)

    @pytest.mark.parametrize(
        ("invoice_ids", "key", "path"),
        [
            ("inv_1", "req-1", "invoice_ids"),
            (None, "req-1", "invoice_ids"),
            ([], "req-1", "invoice_ids"),  # "invoices" before: not the argument's name
            ("inv_1", 42, "invoice_ids"),
            ("ONE", 42, "idempotency_key"),
            ("ONE", "  ", "idempotency_key"),
            ("ONE", "a\x00b", "idempotency_key"),  # no store can hold it: none is looked up
            ("ONE", "\ud800", "idempotency_key"),
            (["nope", 5], "req-1", ["invoice_ids[0]", "invoice_ids[1]"]),  # every one
        ],
    )
    def test_bad_arguments(
        self, store: MemoryStore, billing: Billing, invoice_ids: Any, key: Any, path: Any
    ) -> None:
        b = billing
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
            services.pay_invoices(
                uow,
                b.partner.id,
                b.customer.id,
                [b.one.id] if invoice_ids == "ONE" else invoice_ids,
                payer=b.ann,
                method="ach",
                idempotency_key=key,
            )
        assert caught.value.paths == (path if isinstance(path, list) else [path])
        assert_unchanged(store, b)

    @pytest.mark.parametrize("junk", [bytearray(), memoryview(b""), bytearray(b"ab")])
    def test_binary_data_is_no_list_of_ids(
        self, store: MemoryStore, billing: Billing, junk: object
    ) -> None:
        # Iterable, as ints: an empty one was taken as a list of no ids.
        b = billing
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
            services.pay_invoices(
                uow,
                b.partner.id,
                b.customer.id,
                junk,  # type: ignore[arg-type]
                payer=b.ann,
                method="ach",
                idempotency_key="req-1",
            )
        assert (caught.value.paths, caught.value.codes) == (["invoice_ids"], ["wrong_type"])
        assert_unchanged(store, b)


class TestLaterInThePaymentsLife:
    def test_succeed_settle_and_refund(self, store: MemoryStore, billing: Billing) -> None:
        b = billing
        payment, _ = pay(store, b, [b.one, b.two], method="card")
        with store.unit_of_work() as uow:
            with pytest.raises(InvariantViolation) as caught:
                services.refund_payment(uow, b.partner.id, payment.id)
            assert caught.value.rule == "I7"
            succeeded = services.succeed_payment(uow, b.partner.id, payment.id, at=at(7))
            settled = services.settle_payment(uow, b.partner.id, payment.id, at=at(8))
            again = services.settle_payment(uow, b.partner.id, payment.id, at=at(9))
            refunded, (one, two) = services.refund_payment(
                uow, b.partner.id, payment.id, amount=payment.total, at=at(10)
            )
        assert (succeeded.version, settled.version, again.version) == (2, 3, 3)
        assert again.settled_at == at(8)
        assert (refunded.status, refunded.version) == (PaymentStatus.REFUNDED, 4)
        assert (one.status, one.balance) == (InvoiceStatus.OPEN, Money("100.00", "USD"))
        assert (two.status, two.version) == (InvoiceStatus.OPEN, 3)
        with store.unit_of_work() as uow:
            assert uow.payments.get(b.partner.id, payment.id) == refunded
            assert uow.invoices.get(b.partner.id, one.id) == one
        assert topics(store) == [
            "invoice_paid",
            "invoice_paid",
            "payment_succeeded",
            "payment_settled",
            "payment_refunded",
            "invoice_updated",
            "invoice_updated",
        ]

    def test_a_settlement_reported_again_after_a_return_changes_nothing(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        # A processor sends its settlement callback again after the bank's
        # return: a repeat, acknowledged without a write, not an I7 refusal.
        b = billing
        payment, _ = pay(store, b, [b.one], method="ach")
        with store.unit_of_work() as uow:
            services.succeed_payment(uow, b.partner.id, payment.id, at=at(7))
            services.settle_payment(uow, b.partner.id, payment.id, at=at(8))
            returned, _ = services.return_payment(uow, b.partner.id, payment.id, at=at(9))
        before = topics(store)
        with store.unit_of_work() as uow:
            again = services.settle_payment(uow, b.partner.id, payment.id, at=at(10))
        assert again == returned
        assert (again.status, again.version, again.settled_at) == (
            PaymentStatus.FAILED,
            returned.version,
            at(8),
        )
        assert topics(store) == before

    def test_a_refund_takes_its_amount_as_text(self, store: MemoryStore, billing: Billing) -> None:
        b = billing
        payment, _ = pay(store, b, [b.one], method="ach")
        with store.unit_of_work() as uow:
            services.succeed_payment(uow, b.partner.id, payment.id, at=at(7))
            services.settle_payment(uow, b.partner.id, payment.id, at=at(8))
            with pytest.raises(ValidationError) as caught:
                services.refund_payment(uow, b.partner.id, payment.id, amount=100.0, at=at(9))  # type: ignore[arg-type]
            assert caught.value.paths == ["amount"]
            refunded, _ = services.refund_payment(
                uow, b.partner.id, payment.id, amount="100.00", at=at(9)
            )
        assert refunded.status is PaymentStatus.REFUNDED

    def test_fail(self, store: MemoryStore, billing: Billing) -> None:
        b = billing
        payment, _ = pay(store, b, [b.one], amounts={b.one.id: "30.00"})
        with store.unit_of_work() as uow:
            failed, (one,) = services.fail_payment(uow, b.partner.id, payment.id, at=at(7))
        assert failed.status is PaymentStatus.FAILED
        assert failed.return_fee is not None
        assert failed.return_fee.amount == Money("15.00", "USD")
        assert (one.balance, one.is_partly_paid) == (Money("100.00", "USD"), False)
        with store.unit_of_work() as uow:
            assert uow.payments.get(b.partner.id, payment.id) == failed
            assert uow.invoices.get(b.partner.id, b.one.id) == one

    def test_returns_and_chargebacks(self, store: MemoryStore, billing: Billing) -> None:
        b = billing
        debit, _ = pay(store, b, [b.one], key="debit")
        card, _ = pay(store, b, [b.two], key="card", method="card")
        with store.unit_of_work() as uow:
            services.succeed_payment(uow, b.partner.id, card.id)
            with pytest.raises(InvariantViolation):
                services.charge_back_payment(uow, b.partner.id, debit.id)
            returned, (one,) = services.return_payment(
                uow, b.partner.id, debit.id, "unauthorized", at=at(8)
            )
            disputed, (two,) = services.charge_back_payment(uow, b.partner.id, card.id)
        assert returned.status is disputed.status is PaymentStatus.CHARGED_BACK
        assert one.status is two.status is InvoiceStatus.OPEN
        with store.unit_of_work() as uow:
            assert uow.invoices.get(b.partner.id, b.one.id) == one
            assert uow.invoices.get(b.partner.id, b.two.id) == two
            assert uow.payments.get(b.partner.id, card.id) == disputed

    def test_a_conflict_on_an_invoice_writes_nothing(
        self, store: MemoryStore, billing: Billing, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        b = billing
        payment, (one, two) = pay(store, b, [b.one, b.two])
        with store.unit_of_work() as uow:
            commit = uow.commit

            def another_writer_first() -> None:
                with store.unit_of_work() as other:
                    other.invoices.save(two.update(b.partner, memo="Changed"))
                    other.commit()
                commit()

            monkeypatch.setattr(uow, "commit", another_writer_first)
            with pytest.raises(ConcurrencyConflict):
                services.return_payment(uow, b.partner.id, payment.id)
        with store.unit_of_work() as uow:
            assert uow.payments.get(b.partner.id, payment.id) == payment
            assert uow.invoices.get(b.partner.id, one.id) == one

    @pytest.mark.parametrize(
        "service",
        [
            services.fail_payment,
            services.return_payment,
            services.charge_back_payment,
            services.refund_payment,
        ],
    )
    def test_a_payment_given_back_between_its_reads_is_a_conflict(
        self,
        store: MemoryStore,
        billing: Billing,
        monkeypatch: pytest.MonkeyPatch,
        service: Callable[..., Any],
    ) -> None:
        # Another unit of work fails the payment after this one read it and
        # before it reads the invoice: the payment as read is out of date.
        b = billing
        payment, (one,) = pay(store, b, [b.one], method="card")
        with store.unit_of_work() as uow:
            services.succeed_payment(uow, b.partner.id, payment.id, at=at(7))
            payment = services.settle_payment(uow, b.partner.id, payment.id, at=at(8))
        with store.unit_of_work() as uow:
            another_writer_before_the_invoices_are_read(
                store,
                uow,
                monkeypatch,
                lambda other: services.charge_back_payment(
                    other, b.partner.id, payment.id, at=at(9)
                ),
            )
            with pytest.raises(ConcurrencyConflict) as caught:
                service(uow, b.partner.id, payment.id, at=at(10))
            monkeypatch.undo()
            assert (caught.value.kind, caught.value.key) == ("payment", str(payment.id))
            assert "nothing was written" in str(caught.value)
            # Read again, the payment is refused for what it now is (I6, I7).
            with pytest.raises(InvariantViolation):
                service(uow, b.partner.id, payment.id, at=at(10))
        with store.unit_of_work() as uow:
            assert uow.payments.get(b.partner.id, payment.id).status is PaymentStatus.CHARGED_BACK
            assert uow.invoices.get(b.partner.id, one.id).balance == Money("100.00", "USD")

    def test_unknown_payments_are_not_found(self, store: MemoryStore, billing: Billing) -> None:
        with store.unit_of_work() as uow:
            for service in (
                services.succeed_payment,
                services.settle_payment,
                services.fail_payment,
                services.return_payment,
                services.charge_back_payment,
                services.refund_payment,
            ):
                with pytest.raises(NotFound):
                    service(uow, billing.partner.id, PaymentId.new())


class TestWhoRefunds:
    """A refund in the dashboard names its team member: Admins and
    Sub-Admins may; anyone else is refused and nothing is written."""

    def _settled(self, store: Store, role: Role) -> tuple[Billing, Payment, TeamMember]:
        b = a_billing(store)
        with store.unit_of_work() as uow:
            partner = uow.partners.get(b.partner.id).add_team_member(
                name="Sam", email="sam@northwind.example", role=role
            )
            partner = uow.partners.save(partner)
            uow.commit()
        payment, _ = pay(store, b, [b.one, b.two], method="card")
        with store.unit_of_work() as uow:
            services.succeed_payment(uow, b.partner.id, payment.id, at=at(7))
            settled = services.settle_payment(uow, b.partner.id, payment.id, at=at(8))
        return attrs.evolve(b, partner=partner), settled, partner.team[-1]

    @staticmethod
    def _stored(store: Store, b: Billing, payment: Payment) -> tuple[object, ...]:
        with store.unit_of_work() as uow:
            return (
                uow.payments.get(b.partner.id, payment.id),
                uow.invoices.get(b.partner.id, b.one.id),
                uow.invoices.get(b.partner.id, b.two.id),
                [m.event.topic for m in uow.outbox.pending(MAX_PAGE_SIZE)],
            )

    @pytest.mark.parametrize("kind", ["memory", "sqlite"])
    @pytest.mark.parametrize("role", list(Role))
    def test_each_role(self, kind: str, role: Role, tmp_path: Path) -> None:
        store: Store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "a.db")
        b, settled, sam = self._settled(store, role)
        before = self._stored(store, b, settled)
        with store.unit_of_work() as uow:
            if role in (Role.ADMIN, Role.SUB_ADMIN):
                refunded, _ = services.refund_payment(
                    uow, b.partner.id, settled.id, at=at(9), by=sam.id
                )
                assert refunded.status is PaymentStatus.REFUNDED
            else:
                with pytest.raises(PermissionDenied) as caught:
                    services.refund_payment(uow, b.partner.id, settled.id, at=at(9), by=sam)
                assert caught.value.action == "refund payments"
        after = self._stored(store, b, settled)
        if role in (Role.ADMIN, Role.SUB_ADMIN):
            assert after[0] == refunded
            assert after[3][-3:] == ["payment_refunded", "invoice_updated", "invoice_updated"]
        else:
            assert after == before
        store.close()

    @pytest.mark.parametrize("kind", ["memory", "sqlite"])
    def test_a_member_of_another_partners_team_writes_nothing(
        self, kind: str, tmp_path: Path
    ) -> None:
        store: Store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "a.db")
        b, settled, _ = self._settled(store, Role.ADMIN)
        before = self._stored(store, b, settled)
        stranger = TeamMember.new(name="X", email="x@else.example", role=Role.ADMIN)
        with store.unit_of_work() as uow, pytest.raises(NotFound):
            services.refund_payment(uow, b.partner.id, settled.id, by=stranger)
        assert self._stored(store, b, settled) == before
        store.close()


class TestMethodsOnFile:
    def _with_a_method(self, store: Store, b: Billing) -> CustomerPaymentMethods:
        with store.unit_of_work() as uow:
            book = uow.payment_methods.get(b.partner.id, b.customer.id)
            saved = uow.payment_methods.save(
                book.add(type="ach", display_name="Chase checking", last4="6789")
            )
            uow.commit()
        return saved

    def _due_today(
        self, store: Store, b: Billing, invoice: Invoice, **options: Any
    ) -> ScheduledPayment:
        """A method on file, and Ann's payment of ``invoice`` scheduled for
        today (or as ``options`` say)."""
        self._with_a_method(store, b)
        options.setdefault("pay_on", TODAY)
        with store.unit_of_work() as uow:
            return services.schedule_payment(
                uow, b.partner.id, b.customer.id, invoice.id, payer=b.ann, today=TODAY, **options
            )

    def test_an_invoice_not_open_is_named_by_the_service_argument_i4(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        # Scheduling, or paying a batch, with an invoice voided meanwhile:
        # the error names the id the caller gave, nothing is written.
        b = billing
        self._with_a_method(store, b)
        with store.unit_of_work() as uow:
            uow.invoices.save(b.two.void(b.partner))
            uow.commit()
        with store.unit_of_work() as uow:
            with pytest.raises(InvariantViolation) as caught:
                services.schedule_payment(
                    uow,
                    b.partner.id,
                    b.customer.id,
                    b.two.id,
                    payer=b.ann,
                    pay_on=TODAY,
                    today=TODAY,
                )
            assert (caught.value.rule, caught.value.path) == ("I4", "invoice_id")
            with pytest.raises(InvariantViolation) as caught:
                services.pay_invoices(
                    uow,
                    b.partner.id,
                    b.customer.id,
                    [b.one.id, b.two.id],
                    payer=b.ann,
                    method="ach",
                    idempotency_key="req-1",
                    amounts={b.one.id: "10.00", b.two.id: "10.00"},
                )
            assert (caught.value.rule, caught.value.path) == ("I4", "invoice_ids[1]")
            assert uow.payments.get_by_idempotency_key(b.partner.id, "req-1") is None
            assert uow.invoices.get(b.partner.id, b.one.id) == b.one
            assert uow.scheduled_payments.for_invoice(b.partner.id, b.two.id) == []

    @staticmethod
    def _archive_before_the_commit(
        store: Store, uow: UnitOfWork, book: CustomerPaymentMethods, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Have another writer archive ``book``'s first method just before
        ``uow`` first commits, after the service read the book."""
        commit = uow.commit

        def another_writer_first() -> None:
            monkeypatch.setattr(uow, "commit", commit)
            with store.unit_of_work() as other:
                other.payment_methods.save(book.archive(book.methods[0].id, at=at(6)))
                other.commit()
            commit()

        monkeypatch.setattr(uow, "commit", another_writer_first)

    def _card_then_bank(self, store: Store, b: Billing) -> CustomerPaymentMethods:
        """A card on file, then Chase, the default."""
        with store.unit_of_work() as uow:
            book = uow.payment_methods.get(b.partner.id, b.customer.id)
            book = book.add(type="card", display_name="Visa", last4="4242", at=at(5))
            book = book.add(
                type="ach", display_name="Chase", last4="6789", make_default=True, at=at(5)
            )
            saved = uow.payment_methods.save(book)
            uow.commit()
        return saved

    @pytest.mark.parametrize("kind", ["memory", "sqlite"])
    def test_a_payment_with_a_method_archived_by_another_writer_pays_nothing(
        self, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Another writer archives the Visa card just after the service read
        # the book: at commit, the store refuses Ann's payment by that card.
        store: Store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "a.db")
        b = a_billing(store)
        book = self._card_then_bank(store, b)
        visa = book.methods[0]
        with store.unit_of_work() as uow:
            self._archive_before_the_commit(store, uow, book, monkeypatch)
            with pytest.raises(InvariantViolation) as caught:
                services.pay_invoices(
                    uow,
                    b.partner.id,
                    b.customer.id,
                    [b.one.id],
                    payer=b.ann,
                    method=visa,
                    idempotency_key="req-1",
                    at=at(6),
                )
        assert (caught.value.rule, caught.value.path) == ("payment-method", "payment_method_id")
        assert str(visa.id) in str(caught.value)
        with store.unit_of_work() as uow:
            now = uow.payment_methods.get(b.partner.id, b.customer.id)
            assert not now.method(visa.id).is_active
            assert uow.invoices.get(b.partner.id, b.one.id) == b.one
            assert uow.payments.get_by_idempotency_key(b.partner.id, "req-1") is None
            assert uow.payments.for_invoice(b.partner.id, b.one.id) == []
        store.close()

    @pytest.mark.parametrize("kind", ["memory", "sqlite"])
    def test_a_run_whose_method_another_writer_archived_waits_for_the_next(
        self, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Ann's payment was scheduled by card; the card is archived just
        # after the nightly run read the book. The run is refused (not
        # charged to the archived card), stays scheduled, and the next run
        # pays by the default, Chase.
        store: Store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "a.db")
        b = a_billing(store)
        book = self._card_then_bank(store, b)
        visa, chase = book.methods
        with store.unit_of_work() as uow:
            scheduled = services.schedule_payment(
                uow,
                b.partner.id,
                b.customer.id,
                b.one.id,
                payer=b.ann,
                pay_on=TODAY,
                today=TODAY,
                method_id=visa.id,
                at=at(5),
            )
        with store.unit_of_work() as uow:
            self._archive_before_the_commit(store, uow, book, monkeypatch)
            run = services.run_due_payments(uow, b.partner.id, today=TODAY, at=at(6))
        assert (run.processed, run.skipped) == ((), ())
        ((waiting, error),) = run.refused
        assert waiting == scheduled
        assert isinstance(error, InvariantViolation)
        assert (error.rule, error.path) == ("payment-method", "payment_method_id")
        with store.unit_of_work() as uow:
            assert uow.scheduled_payments.get(b.partner.id, scheduled.id) == scheduled
            assert uow.payments.for_invoice(b.partner.id, b.one.id) == []
            assert uow.invoices.get(b.partner.id, b.one.id) == b.one
        with store.unit_of_work() as uow:
            run = services.run_due_payments(uow, b.partner.id, today=TODAY, at=at(7))
        (done,) = run.processed
        assert done.status is ScheduledPaymentStatus.PROCESSED
        with store.unit_of_work() as uow:
            (payment,) = uow.payments.for_invoice(b.partner.id, b.one.id)
        assert payment.payment_method_id == chase.id
        store.close()

    def test_errors_name_the_services_own_arguments(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        # The invoices are read by invoice_ids, in that order; the saved
        # method is the default of the stored methods, or method_id.
        b = billing
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
            services.pay_invoices(
                uow,
                b.partner.id,
                b.customer.id,
                [b.one.id, b.one.id],
                payer=b.ann,
                method="ach",
                idempotency_key="k",
            )
        assert caught.value.paths == ["invoice_ids[1]"]
        assert "'invoice_ids[1]'" in str(caught.value)
        with store.unit_of_work() as uow:
            book = uow.payment_methods.get(b.partner.id, b.customer.id)
            uow.payment_methods.save(book.add(type="pad", display_name="RBC", last4="1234"))
            uow.commit()
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
            services.charge_now(
                uow,
                b.partner.id,
                b.customer.id,
                [b.two.id, b.two.id],
                payer=b.ann,
                idempotency_key="k",
            )
        assert caught.value.paths == ["invoice_ids[1]"]
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
            services.charge_now(
                uow, b.partner.id, b.customer.id, [b.one.id], payer=b.ann, idempotency_key="k"
            )
        assert (caught.value.paths, caught.value.codes) == (["methods"], ["method_unavailable"])
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
            services.schedule_payment(
                uow, b.partner.id, b.customer.id, b.one.id, payer=b.ann, pay_on=TODAY, today=TODAY
            )
        assert (caught.value.paths, caught.value.codes) == (["methods"], ["method_unavailable"])
        with store.unit_of_work() as uow:
            assert uow.payments.get_by_idempotency_key(b.partner.id, "k") is None

    def test_an_invoice_in_another_currency_is_named_by_its_id(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        b = billing
        self._with_a_method(store, b)
        # A stored invoice keeps its currency (I2): a new one, in CAD.
        data = to_dict(b.two)
        data.update(id=InvoiceId.new().value, number="CAD-1", version=0, currency="CAD")
        for line in data["lines"]:
            line["unit_amount"]["currency"] = "CAD"
        with store.unit_of_work() as uow:
            cad = uow.invoices.save(from_dict(Invoice, data))
            uow.commit()
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
            services.pay_invoices(
                uow,
                b.partner.id,
                b.customer.id,
                [b.one.id, cad.id],
                payer=b.ann,
                method="ach",
                idempotency_key="k",
            )
        assert (caught.value.paths, caught.value.codes) == (
            ["invoice_ids[1]"],
            ["currency_mismatch"],
        )
        assert "'invoice_ids[1]' must be in USD" in str(caught.value)
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
            services.schedule_payment(
                uow, b.partner.id, b.customer.id, cad.id, payer=b.ann, pay_on=TODAY, today=TODAY
            )
        assert (caught.value.paths, caught.value.codes) == (["invoice_id"], ["currency_mismatch"])

    def test_refusals_are_at_the_argument_that_chose_the_method(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        # ``method_id`` when one is given, else ``methods`` (the stored ones).
        b = billing

        def refused(method_id: object) -> list[tuple[str, str]]:
            chosen = {} if method_id is None else {"method_id": method_id}
            found = []
            for call in (
                lambda uow: services.charge_now(
                    uow,
                    b.partner.id,
                    b.customer.id,
                    [b.one.id],
                    payer=b.ann,
                    idempotency_key="now-1",
                    **chosen,
                ),
                lambda uow: services.schedule_payment(
                    uow,
                    b.partner.id,
                    b.customer.id,
                    b.one.id,
                    payer=b.ann,
                    pay_on=TODAY,
                    today=TODAY,
                    **chosen,
                ),
            ):
                with store.unit_of_work() as uow, pytest.raises(InvariantViolation) as caught:
                    call(uow)
                found.append((caught.value.rule, caught.value.path))
            return found

        assert refused(None) == [("method-on-file", "methods")] * 2
        scheduled = self._due_today(store, b, b.one)
        with store.unit_of_work() as uow:
            book = uow.payment_methods.get(b.partner.id, b.customer.id)
            uow.payment_methods.save(book.archive(book.methods[0].id))
            uow.commit()
        assert refused(book.methods[0].id) == [("payment-method", "method_id")] * 2
        with store.unit_of_work() as uow, pytest.raises(InvariantViolation) as caught:
            services.run_scheduled_payment(uow, b.partner.id, scheduled.id, today=TODAY)
        assert (caught.value.rule, caught.value.path) == ("method-on-file", "methods")

    def test_charge_now_needs_a_method_on_file(self, store: MemoryStore, billing: Billing) -> None:
        b = billing

        with store.unit_of_work() as uow, pytest.raises(InvariantViolation) as caught:
            charge_first(uow, b)
        assert caught.value.rule == "method-on-file"
        assert_unchanged(store, b, key="now-1")
        methods = self._with_a_method(store, b)
        with store.unit_of_work() as uow:
            payment, (one,) = charge_first(uow, b)
        assert payment.payment_method_id == methods.default_id
        assert one.status is InvoiceStatus.PAID
        with store.unit_of_work() as uow:
            assert charge_first(uow, b) == (payment, ())
            assert uow.invoices.get(b.partner.id, one.id) == one

    def test_a_retry_commits_what_the_caller_saved_before(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        b = billing
        self._with_a_method(store, b)

        with store.unit_of_work() as uow:
            first, _ = charge_first(uow, b)
        with store.unit_of_work() as uow:
            uow.customers.save(b.other.archive())
            assert charge_first(uow, b) == (first, ())
        with store.unit_of_work() as uow:
            assert uow.customers.get(b.partner.id, b.other.id).status is CustomerStatus.ARCHIVED

    @pytest.mark.parametrize("then", ["replaced", "archived"])
    def test_a_retry_returns_the_first_payment_though_its_method_is_archived(
        self, store: MemoryStore, billing: Billing, then: str
    ) -> None:
        # The client retries after the customer replaced the card it used, or
        # archived it with nothing left on file: the same request, the same key.
        b = billing
        methods = self._with_a_method(store, b)
        assert methods.default is not None
        used = methods.default

        with store.unit_of_work() as uow:
            first, _ = charge_first(uow, b)
            first_by_method, _ = pay(store, b, [b.two], key="req-2", method=used)
            book = uow.payment_methods.get(b.partner.id, b.customer.id)
            if then == "replaced":
                book = book.replace(used.id, type="ach", display_name="New checking", last4="1111")
            else:
                book = book.archive(used.id)
            uow.payment_methods.save(book)
            uow.commit()
        with store.unit_of_work() as uow:
            assert charge_first(uow, b) == (first, ())
            assert charge_first(uow, b, method_id=used.id) == (first, ())
        assert pay(store, b, [b.two], key="req-2", method=used) == (first_by_method, ())
        # Another request under the key is still refused.
        with store.unit_of_work() as uow, pytest.raises(InvariantViolation) as caught:
            services.charge_now(
                uow, b.partner.id, b.customer.id, [b.one.id], payer=b.customer.users[1],
                idempotency_key="now-1", at=at(6),
            )  # fmt: skip
        assert caught.value.rule == "idempotency"
        # A new payment with the archived method is refused, as before.
        with pytest.raises(InvariantViolation) as caught:
            pay(store, b, [b.two], key="req-3", method=used)
        assert caught.value.rule == "payment-method"

    def test_a_retry_naming_no_method_stands_for_the_method_first_charged(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        b = billing
        self._with_a_method(store, b)
        with store.unit_of_work() as uow:
            book = uow.payment_methods.get(b.partner.id, b.customer.id)
            book = uow.payment_methods.save(
                book.add(type="card", display_name="Visa", last4="4242")
            )
            uow.commit()
        card = book.methods[-1]
        assert book.default_id != card.id

        def charge(**method: Any) -> tuple[Payment, tuple[Invoice, ...]]:
            with store.unit_of_work() as uow:
                return charge_first(uow, b, **method)

        first, _ = charge(method_id=card.id)
        assert first.payment_method_id == card.id
        assert charge() == (first, ())
        assert charge(method_id=card.id) == (first, ())
        with pytest.raises(InvariantViolation) as caught:
            charge(method_id=book.default_id)  # another method, named: another request
        assert caught.value.rule == "idempotency"

    def test_a_saved_method_must_be_the_customers_i1(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        # Another customer's saved card paid Globex's invoice.
        b = billing
        with store.unit_of_work() as uow:
            book = uow.payment_methods.get(b.partner.id, b.other.id)
            theirs = uow.payment_methods.save(
                book.add(type="card", display_name="Visa", last4="4242")
            )
            uow.commit()
            uow.outbox.mark_published([m.position for m in uow.outbox.pending()])
            uow.commit()
        assert theirs.default is not None
        with pytest.raises(InvariantViolation) as caught:
            pay(store, b, [b.one], method=theirs.default)
        assert (caught.value.rule, caught.value.path) == ("I1", "method")
        assert_unchanged(store, b)
        ours = self._with_a_method(store, b)
        assert ours.default is not None
        payment, (one,) = pay(store, b, [b.one], method=ours.default)
        assert payment.payment_method_id == ours.default.id
        assert one.status is InvoiceStatus.PAID

    def test_a_method_is_named_by_its_id_or_its_text(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        # As the partner, customer and invoice are: a form posts the id as text.
        b = billing
        methods = self._with_a_method(store, b)
        methods = methods.add(type="card", display_name="Visa", last4="4242")
        card = methods.methods[-1]
        with store.unit_of_work() as uow:
            uow.payment_methods.save(methods)
            uow.commit()
        assert methods.method(str(card.id)) is card
        assert methods.set_default(str(card.id)).default_id == card.id
        for junk in (5, None, "pm_!"):
            with pytest.raises(ValidationError) as caught:
                methods.method(junk)  # type: ignore[arg-type]
            assert caught.value.paths == ["method_id"]
        with store.unit_of_work() as uow:
            scheduled = services.schedule_payment(
                uow,
                str(b.partner.id),
                str(b.customer.id),
                str(b.one.id),
                payer=b.ann,
                pay_on=TODAY,
                today=TODAY,
                method_id=str(card.id),
            )

            def charge(key: str, method_id: str) -> Payment:
                payment, _ = services.charge_now(
                    uow,
                    b.partner.id,
                    b.customer.id,
                    [str(b.two.id)],
                    payer=b.ann,
                    idempotency_key=key,
                    method_id=method_id,
                    at=at(6),
                )
                return payment

            payment = charge("now-1", str(card.id))
            again = charge("now-1", str(card.id))
            with pytest.raises(ValidationError) as caught:
                charge("now-2", "card")
            assert caught.value.paths == ["method_id"]
        assert scheduled.payment_method_id == payment.payment_method_id == card.id
        assert again == payment  # the same request: the first payment
        assert payment.allocation(str(b.two.id)).invoice_id == b.two.id
        with pytest.raises(ValidationError) as caught:
            payment.allocation("two")
        assert caught.value.paths == ["invoice_id"]
        with store.unit_of_work() as uow:
            two = uow.invoices.get(b.partner.id, b.two.id)
        assert two.applied(str(payment.id)).payment_id == payment.id
        assert two._release_payment(str(payment.id)).balance == two.total
        with pytest.raises(ValidationError) as caught:
            two.applied(7)  # type: ignore[arg-type]
        assert caught.value.paths == ["payment_id"]

    def test_schedule_run_and_cancel(self, store: MemoryStore, billing: Billing) -> None:
        b = billing

        def schedule(uow: MemoryUnitOfWork, invoice: Invoice) -> ScheduledPayment:
            return services.schedule_payment(
                uow,
                b.partner.id,
                b.customer.id,
                invoice.id,
                payer=b.ann,
                pay_on=TODAY + dt.timedelta(days=3),
                today=TODAY,
            )

        with store.unit_of_work() as uow, pytest.raises(InvariantViolation) as caught:
            schedule(uow, b.one)
        assert caught.value.rule == "method-on-file"
        self._with_a_method(store, b)
        with store.unit_of_work() as uow:
            first = schedule(uow, b.one)
            second = schedule(uow, b.two)
        assert first.version == second.version == 1
        day = first.pay_on
        with store.unit_of_work() as uow:
            due = uow.scheduled_payments.due(b.partner.id, day)
            assert due == sorted([first, second], key=lambda s: s.id.value)
            cancelled = services.cancel_scheduled_payment(uow, b.partner.id, second.id)
            assert services.cancel_scheduled_payment(uow, b.partner.id, second.id) == cancelled
            with pytest.raises(InvariantViolation):
                services.run_scheduled_payment(uow, b.partner.id, first.id, today=TODAY)
            done, payment, one = services.run_scheduled_payment(
                uow, b.partner.id, first.id, today=day, at=at(8)
            )
            assert (done.status, done.payment_id) == (ScheduledPaymentStatus.PROCESSED, payment.id)
            assert one.status is InvoiceStatus.PAID
            with pytest.raises(InvariantViolation):
                services.run_scheduled_payment(uow, b.partner.id, first.id, today=day)
        assert cancelled.status is ScheduledPaymentStatus.CANCELED
        with store.unit_of_work() as uow:
            assert uow.scheduled_payments.due(b.partner.id, day) == []
            assert uow.scheduled_payments.get(b.partner.id, first.id) == done
            assert uow.payments.for_invoice(b.partner.id, b.one.id) == [payment]
            assert uow.invoices.get(b.partner.id, b.one.id) == one

    def test_no_request_can_take_a_runs_key(self, store: MemoryStore, billing: Billing) -> None:
        # The payer knows the scheduled payment's id: a request under its
        # run's key would have kept it from ever running.
        b = billing
        self._with_a_method(store, b)
        with store.unit_of_work() as uow:
            scheduled = services.schedule_payment(
                uow, b.partner.id, b.customer.id, b.one.id, payer=b.ann, pay_on=TODAY, today=TODAY
            )
        with pytest.raises(ValidationError) as caught:
            pay(store, b, [b.two], key=f"scheduled:{scheduled.id}")
        assert caught.value.codes == ["reserved_key"]
        with store.unit_of_work() as uow:
            run = services.run_due_payments(uow, b.partner.id, today=TODAY)
        assert [s.id for s in run.processed] == [scheduled.id]

    @pytest.mark.parametrize("kind", ["memory", "sqlite"])
    def test_the_nightly_run_skips_what_can_no_longer_run(self, kind: str, tmp_path: Path) -> None:
        # A scheduled payment whose invoice was paid by hand since stayed
        # due, and was refused, every night.
        store: Any = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "a.db")
        b = a_billing(store)
        book = self._with_a_method(store, b)
        day = TODAY + dt.timedelta(days=3)
        with store.unit_of_work() as uow:
            first, second, later = (
                services.schedule_payment(
                    uow,
                    b.partner.id,
                    b.customer.id,
                    invoice.id,
                    payer=b.ann,
                    pay_on=pay_on,
                    today=TODAY,
                )
                for invoice, pay_on in ((b.one, day), (b.two, day), (b.one, day + ONE_DAY))
            )
        _, (two,) = pay(store, b, [b.two])
        assert two.status is InvoiceStatus.PAID
        with store.unit_of_work() as uow:
            uow.payment_methods.save(book.archive(book.methods[0].id))
            uow.commit()
        with store.unit_of_work() as uow:
            run = services.run_due_payments(uow, b.partner.id, today=day, at=at(8))
        assert run.processed == ()
        assert run.skipped == (
            attrs.evolve(second, status=ScheduledPaymentStatus.SKIPPED, version=2),
        )
        # No method on file: it waits for one, still due.
        ((waiting, error),) = run.refused
        assert waiting == first
        assert isinstance(error, InvariantViolation)
        assert error.rule == "method-on-file"
        self._with_a_method(store, b)
        with store.unit_of_work() as uow:
            assert uow.scheduled_payments.due(b.partner.id, day) == [first]
            run = services.run_due_payments(uow, b.partner.id, today=day, at=at(9))
        ((done,),) = (run.processed,)
        assert (done.id, done.status, run.skipped, run.refused) == (
            first.id,
            ScheduledPaymentStatus.PROCESSED,
            (),
            (),
        )
        with store.unit_of_work() as uow:
            assert (
                uow.payments.get(b.partner.id, done.payment_id).status is PaymentStatus.PROCESSING
            )  # type: ignore[arg-type]
            assert services.run_due_payments(uow, b.partner.id, today=day) == services.DueRun()
            # The invoice the later one pays is paid by the first.
            run = services.run_due_payments(uow, b.partner.id, today=day + ONE_DAY)
            assert [(s.id, s.status) for s in run.skipped] == [
                (later.id, ScheduledPaymentStatus.SKIPPED)
            ]
            assert uow.scheduled_payments.due(b.partner.id, day + ONE_DAY) == []
            with pytest.raises(NotFound):
                services.run_due_payments(uow, PartnerId.new(), today=day)
            for wrong in ({"today": AT_NOON}, {"today": day, "at": day}):
                with pytest.raises(ValidationError) as caught:
                    services.run_due_payments(uow, b.partner.id, **wrong)  # type: ignore[arg-type]
                assert caught.value.codes in (["invalid_date"], ["invalid_datetime"])

    def test_an_invoice_holding_a_card_fee_line_is_not_scheduled_and_the_nightly_run_skips_it(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        # It was scheduled, then refused every night and never skipped (I8).
        b = billing
        scheduled = self._due_today(store, b, b.one)
        # Invoice 1001 as stored before its commands refused a card fee line.
        line = Fee.new(FeeKind.CARD, Money("3.20", "USD"), covered_by_customer=True)
        with store.unit_of_work() as uow:
            stored = uow.invoices.get(b.partner.id, b.one.id)
            uow.invoices.save(from_dict(Invoice, {**to_dict(stored), "fees": [to_dict(line)]}))
            uow.commit()
        with store.unit_of_work() as uow, pytest.raises(InvariantViolation) as caught:
            services.schedule_payment(
                uow, b.partner.id, b.customer.id, b.one.id, payer=b.ann, pay_on=TODAY, today=TODAY
            )
        assert (caught.value.rule, caught.value.path) == ("I8", "invoice_id")
        assert "remove the card fee line first" in str(caught.value)
        with store.unit_of_work() as uow:
            run = services.run_due_payments(uow, b.partner.id, today=TODAY)
        assert (run.processed, run.refused) == ((), ())
        assert [(s.id, s.status) for s in run.skipped] == [
            (scheduled.id, ScheduledPaymentStatus.SKIPPED)
        ]
        with store.unit_of_work() as uow:
            assert uow.scheduled_payments.due(b.partner.id, TODAY) == []
            assert uow.payments.for_invoice(b.partner.id, b.one.id) == []

    def test_a_run_that_finds_one_skipped_by_another_run_does_not_report_it_skipped(
        self, store: MemoryStore, billing: Billing, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Two nightly runs at once: both listed it due; the other skipped it
        # first. This run did not skip it, and says so: refused, as a
        # payment another run processed first is.
        b = billing
        scheduled = self._due_today(store, b, b.two)
        pay(store, b, [b.two])
        with store.unit_of_work() as uow:
            first = services.run_due_payments(uow, b.partner.id, today=TODAY)
        assert [s.id for s in first.skipped] == [scheduled.id]
        with store.unit_of_work() as uow:
            repository = type(uow.scheduled_payments)
            monkeypatch.setattr(repository, "due", lambda *args, **kwargs: [scheduled])
            second = services.run_due_payments(uow, b.partner.id, today=TODAY)
        assert (second.processed, second.skipped) == ((), ())
        ((listed, error),) = second.refused
        assert listed == scheduled
        assert isinstance(error, InvariantViolation)

    def test_a_conflict_on_one_payment_is_its_refusal_and_the_run_goes_on(
        self, store: MemoryStore, billing: Billing, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Another writer changed the first one after it was listed due: the
        # next is run all the same.
        b = billing
        first = self._due_today(store, b, b.one)
        second = self._due_today(store, b, b.two)
        if second.id.value < first.id.value:
            first, second = second, first  # due lists them by id
        run = services.run_scheduled_payment
        conflict = ConcurrencyConflict("another writer first")

        def another_writer_first(
            uow: UnitOfWork, partner_id: PartnerId, scheduled_id: Any, **kw: Any
        ) -> Any:
            if scheduled_id == first.id:
                raise conflict
            return run(uow, partner_id, scheduled_id, **kw)

        monkeypatch.setattr(services, "run_scheduled_payment", another_writer_first)
        with store.unit_of_work() as uow:
            done = services.run_due_payments(uow, b.partner.id, today=TODAY)
        assert [s.id for s in done.processed] == [second.id]
        assert (done.skipped, done.refused) == ((), ((first, conflict),))

    def test_the_nightly_run_stops_at_an_error_that_is_no_refusal(
        self, store: MemoryStore, billing: Billing, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Every AltpayError was taken for one payment's refusal: a store that
        # could not write (a forked SQLite worker, say) was reported payment
        # by payment, and the run returned as if all were well.
        b = billing
        self._due_today(store, b, b.one)

        def cannot_write(*args: Any, **kwargs: Any) -> Any:
            raise AltpayError("this process cannot write the store")

        monkeypatch.setattr(services, "run_scheduled_payment", cannot_write)
        with store.unit_of_work() as uow, pytest.raises(AltpayError, match="cannot write"):
            services.run_due_payments(uow, b.partner.id, today=TODAY)

    def test_a_bad_day_is_named_by_the_services_own_argument(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
            services.run_due_payments(uow, billing.partner.id, today="2026-01-05")  # type: ignore[arg-type]
        assert (caught.value.paths, caught.value.codes) == (["today"], ["invalid_date"])

    def test_each_refusal_of_a_run_holds_an_altpay_error(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        scheduled = self._due_today(store, billing, billing.one)
        with pytest.raises(ValidationError) as caught:
            services.DueRun(refused=[(scheduled, ValueError("not the library's"))])  # type: ignore[list-item]
        assert (caught.value.paths, caught.value.codes) == (["refused[0][1]"], ["wrong_type"])

    def test_skipping_one_that_can_still_run_is_refused(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        b = billing
        scheduled = self._due_today(store, b, b.one)
        with store.unit_of_work() as uow:
            with pytest.raises(InvariantViolation) as caught:
                services.skip_scheduled_payment(uow, b.partner.id, scheduled.id, today=TODAY)
            assert (caught.value.rule, caught.value.path) == ("scheduled-payment", "status")
            assert uow.scheduled_payments.get(b.partner.id, scheduled.id) == scheduled
        pay(store, b, [b.one])
        with store.unit_of_work() as uow:
            skipped = services.skip_scheduled_payment(uow, b.partner.id, scheduled.id, today=TODAY)
            again = services.skip_scheduled_payment(
                uow, b.partner.id, str(scheduled.id), today=TODAY
            )
        assert (
            again
            == skipped
            == attrs.evolve(scheduled, status=ScheduledPaymentStatus.SKIPPED, version=2)
        )


# -- arguments of the wrong type -----------------------------------------------------


def _placeholders(service: Any) -> tuple[list[object], dict[str, object]]:
    """None for every required argument after ``uow``: each service checks its
    unit of work first, so what they hold does not matter."""
    args: list[object] = []
    kwargs: dict[str, object] = {}
    for param in list(inspect.signature(service).parameters.values())[1:]:
        if param.default is not param.empty:
            continue
        if param.kind is param.KEYWORD_ONLY:
            kwargs[param.name] = None
        else:
            args.append(None)
    return args, kwargs


@pytest.mark.parametrize("uow", [None, "uow", MemoryStore()], ids=["None", "str", "store"])
@pytest.mark.parametrize("name", [n for n in services.__all__ if n != "DueRun"])
def test_every_service_names_a_unit_of_work_of_the_wrong_type(name: str, uow: object) -> None:
    # The store itself rather than its unit of work, say: an AttributeError
    # at the service's first repository before.
    service = getattr(services, name)
    args, kwargs = _placeholders(service)
    with pytest.raises(ValidationError) as caught:
        service(uow, *args, **kwargs)
    assert (caught.value.paths, caught.value.codes) == (["uow"], ["wrong_type"])


@pytest.mark.parametrize("kind", ["None", "text", "customer"])
def test_create_customer_names_a_draft_of_the_wrong_type(store: MemoryStore, kind: str) -> None:
    # A customer has the draft's partner_id but no create(): an AttributeError
    # after the partner was read, before.
    partner = stored_partner(store)
    draft = {"None": None, "text": "draft", "customer": a_customer(partner, "G", frozenset())}
    with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
        create_customer(uow, draft[kind])  # type: ignore[arg-type]
    assert (caught.value.paths, caught.value.codes) == (["draft"], ["wrong_type"])


@pytest.mark.parametrize("kind", ["None", "text", "customer"])
def test_create_customer_from_access_request_names_a_draft_of_the_wrong_type(
    store: MemoryStore, kind: str
) -> None:
    partner = stored_partner(store)
    request = AccessRequest.open(partner, email="dee@globex.example", first_name="Dee")
    with store.unit_of_work() as uow:
        request = uow.access_requests.save(request)
        uow.commit()
    draft = {"None": None, "text": "draft", "customer": a_customer(partner, "G", frozenset())}
    with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
        create_customer_from_access_request(
            uow,
            partner.id,
            request.id,
            draft[kind],
            by=partner.team[0],  # type: ignore[arg-type]
        )
    assert (caught.value.paths, caught.value.codes) == (["draft"], ["wrong_type"])
    with store.unit_of_work() as uow:
        assert uow.access_requests.get(partner.id, request.id) == request


class TestTimesOfAPayment:
    def test_the_invoices_events_carry_the_times_passed(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        b = billing
        payment, _ = pay(store, b, [b.one, b.two])  # at=at(6)
        with store.unit_of_work() as uow:
            services.return_payment(uow, b.partner.id, payment.id, at=at(9))
        with store.unit_of_work() as uow:
            stored = [(m.event.topic, m.event.occurred_at) for m in uow.outbox.pending(20)]
        assert stored == [
            ("invoice_paid", at(6)),
            ("invoice_paid", at(6)),
            ("payment_failed", at(9)),
            ("invoice_updated", at(9)),
            ("invoice_updated", at(9)),
        ]

    def test_a_refund_before_the_payment_settled_is_refused_i7(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        b = billing
        payment, _ = pay(store, b, [b.one], method="card")
        with store.unit_of_work() as uow:
            services.succeed_payment(uow, b.partner.id, payment.id, at=at(7))
            settled = services.settle_payment(uow, b.partner.id, payment.id, at=at(9))
        with store.unit_of_work() as uow, pytest.raises(InvariantViolation) as caught:
            services.refund_payment(uow, b.partner.id, payment.id, at=at(8))
        assert (caught.value.rule, caught.value.path) == ("I7", "at")
        with store.unit_of_work() as uow:
            assert uow.payments.get(b.partner.id, payment.id) == settled


class TestServicesPassOnWhatTheyAreGiven:
    """Each argument a service takes reaches the command it calls, and each
    refusal is the one its docs name."""

    def test_an_access_request_keeps_the_names_given(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        b = billing
        with store.unit_of_work() as uow:
            request = services.open_access_request(
                uow, b.partner.id, email="dee@globex.example", first_name="Dee", last_name="Lee"
            )
        with store.unit_of_work() as uow:
            stored = uow.access_requests.get(b.partner.id, request.id)
        assert (stored.first_name, stored.last_name) == ("Dee", "Lee")
        with store.unit_of_work() as uow:
            _, joined = services.add_access_request_to_customer(
                uow, b.partner.id, request.id, b.customer.id, by=b.partner.team[0],
                first_name="Deirdre", last_name="Li",
            )  # fmt: skip
        (dee,) = (u for u in joined.users if str(u.email) == "dee@globex.example")
        assert (dee.first_name, dee.last_name) == ("Deirdre", "Li")

    @pytest.mark.parametrize("service", ["pay_invoices", "charge_now"])
    def test_no_invoice_ids_is_refused_before_anything_else(
        self, store: MemoryStore, billing: Billing, service: str
    ) -> None:
        # Named at invoice_ids before the payer, the method or the methods
        # on file (none here) are looked at.
        b = billing
        options: dict[str, Any] = {"payer": "nobody", "idempotency_key": "req-1"}
        if service == "pay_invoices":
            options["method"] = "ach"
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
            getattr(services, service)(uow, b.partner.id, b.customer.id, [], **options)
        assert [(e.path, e.code) for e in caught.value.errors] == [("invoice_ids", "empty")]

    def test_charge_now_pays_the_amounts_given(self, store: MemoryStore, billing: Billing) -> None:
        b = billing
        TestMethodsOnFile()._with_a_method(store, b)
        with store.unit_of_work() as uow:
            payment, (one,) = charge_first(uow, b, amounts={b.one.id: "40.00"})
        assert payment.amount == Money("40.00", "USD")
        assert one.balance == Money("60.00", "USD")

    def test_the_times_given_are_the_payments(self, store: MemoryStore, billing: Billing) -> None:
        b = billing
        first, _ = pay(store, b, [b.one], "req-1", amounts={b.one.id: "40.00"})
        second, _ = pay(store, b, [b.one], "req-2", amounts={b.one.id: "30.00"}, method="card")
        with store.unit_of_work() as uow:
            services.fail_payment(uow, b.partner.id, first.id, at=at(9))
            succeeded = services.succeed_payment(uow, b.partner.id, second.id, at=at(7))
            services.settle_payment(uow, b.partner.id, second.id, at=at(8))
            services.charge_back_payment(uow, b.partner.id, second.id, at=at(10))
            times = {(m.event.topic, m.event.occurred_at) for m in uow.outbox.pending(20)}
        assert succeeded.succeeded_at == at(7)
        assert {("payment_failed", at(9)), ("payment_chargeback", at(10))} <= times

    def test_a_payment_given_back_is_a_conflict_though_the_invoice_holds_another(
        self, store: MemoryStore, billing: Billing, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Another writer fails the first payment meanwhile: the invoice still
        # holds the second's part, but no longer this one's.
        b = billing
        first, _ = pay(store, b, [b.one], "req-1", amounts={b.one.id: "40.00"})
        second, _ = pay(store, b, [b.one], "req-2", amounts={b.one.id: "30.00"})
        with store.unit_of_work() as uow:
            another_writer_before_the_invoices_are_read(
                store,
                uow,
                monkeypatch,
                lambda other: services.fail_payment(other, b.partner.id, first.id, at=at(9)),
            )
            with pytest.raises(ConcurrencyConflict) as caught:
                services.fail_payment(uow, b.partner.id, first.id, at=at(10))
            monkeypatch.undo()
            assert (caught.value.kind, caught.value.key) == ("payment", str(first.id))
        with store.unit_of_work() as uow:
            assert uow.payments.get(b.partner.id, first.id).status is PaymentStatus.FAILED
            assert uow.payments.get(b.partner.id, second.id).status is PaymentStatus.PROCESSING
            assert uow.invoices.get(b.partner.id, b.one.id).balance == Money("70.00", "USD")

    @pytest.mark.parametrize("kind", ["memory", "sqlite"])
    def test_an_interrupted_payment_is_rolled_back(
        self, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A KeyboardInterrupt at the commit rolls the unit of work back too,
        # so a caller who catches it cannot commit half a payment.
        store: Store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "a.db")
        b = a_billing(store)
        with store.unit_of_work() as uow:

            def interrupted() -> None:
                raise KeyboardInterrupt

            monkeypatch.setattr(uow, "commit", interrupted)
            with pytest.raises(KeyboardInterrupt):
                pay_both_by_ach(uow, b)
            monkeypatch.undo()
            uow.commit()  # rolled back: nothing is left to commit
        with store.unit_of_work() as uow:
            assert uow.invoices.get(b.partner.id, b.one.id) == b.one
            assert uow.payments.get_by_idempotency_key(b.partner.id, "req-1") is None
        store.close()

    def test_a_scheduled_payment_keeps_its_amount_and_runs_at_the_time_given(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        b = billing
        scheduled = TestMethodsOnFile()._due_today(store, b, b.one, amount="40.00")
        assert scheduled.amount == Money("40.00", "USD")
        with store.unit_of_work() as uow:
            run = services.run_due_payments(uow, b.partner.id, today=TODAY, at=at(8))
            (done,) = run.processed
            assert done.payment_id is not None
            payment = uow.payments.get(b.partner.id, done.payment_id)
        assert (payment.amount, payment.created_at) == (Money("40.00", "USD"), at(8))

    def test_one_not_yet_due_is_not_skipped(self, store: MemoryStore, billing: Billing) -> None:
        # Its invoice was paid by hand: it can no longer run, but its date
        # has not come, so it is not skipped yet.
        b = billing
        later = TODAY + dt.timedelta(days=3)
        scheduled = TestMethodsOnFile()._due_today(store, b, b.one, pay_on=later)
        pay(store, b, [b.one])
        with store.unit_of_work() as uow:
            with pytest.raises(InvariantViolation) as caught:
                services.skip_scheduled_payment(uow, b.partner.id, scheduled.id, today=TODAY)
            assert caught.value.rule == "scheduled-payment"
            assert uow.scheduled_payments.get(b.partner.id, scheduled.id) == scheduled

    @pytest.mark.parametrize("change", ["remove_user", "archive"])
    def test_the_nightly_run_skips_one_whose_payer_may_no_longer_pay(
        self, store: MemoryStore, billing: Billing, change: str
    ) -> None:
        # Refused with PermissionDenied: a refusal of that one payment, which
        # is marked skipped, not an error that stops the whole run.
        b = billing
        scheduled = TestMethodsOnFile()._due_today(store, b, b.one)
        with store.unit_of_work() as uow:
            customer = uow.customers.get(b.partner.id, b.customer.id)
            changed = customer.archive() if change == "archive" else customer.remove_user(b.ann)
            uow.customers.save(changed)
            uow.commit()
        with store.unit_of_work() as uow, pytest.raises(PermissionDenied):
            services.run_scheduled_payment(uow, b.partner.id, scheduled.id, today=TODAY)
        with store.unit_of_work() as uow:
            run = services.run_due_payments(uow, b.partner.id, today=TODAY, at=at(8))
        assert (run.processed, run.refused) == ((), ())
        assert [(s.id, s.status) for s in run.skipped] == [
            (scheduled.id, ScheduledPaymentStatus.SKIPPED)
        ]

    def test_a_due_run_holds_pairs_of_refusals_and_scheduled_payments_only(
        self, store: MemoryStore, billing: Billing
    ) -> None:
        scheduled = TestMethodsOnFile()._due_today(store, billing, billing.one)
        error = InvariantViolation("no method on file", rule="method-on-file")
        assert services.DueRun(refused=[(scheduled, error)]).refused == ((scheduled, error),)
        for field, wrong in (
            ("refused", (scheduled, error, error)),
            ("refused", (scheduled,)),
            ("skipped", "sch_1"),
        ):
            with pytest.raises(ValidationError) as caught:
                services.DueRun(**{field: [wrong]})
            assert [(e.path, e.code) for e in caught.value.errors] == [
                (f"{field}[0]", "wrong_type")
            ]


# -- ids given as text ---------------------------------------------------------------


def _id_arguments() -> list[tuple[str, str, type[EntityId]]]:
    """Every ``*_id`` argument of every service, with its kind of id."""
    found = []
    for name in services.__all__:
        service = getattr(services, name)
        if not inspect.isfunction(service):
            continue
        hints = typing.get_type_hints(service)
        for param in inspect.signature(service).parameters:
            kinds = [k for k in _kinds(hints[param]) if _is_id_kind(k)]
            if param.endswith("_id") and kinds:
                found.append((name, param, kinds[0]))
    return found


def _kinds(hint: object) -> tuple[object, ...]:
    return typing.get_args(hint) or (hint,)


def _is_id_kind(kind: object) -> bool:
    return isinstance(kind, type) and issubclass(kind, EntityId)


def _an_id_of(kind: type[EntityId]) -> str:
    return f"{kind.prefix}_1"


NOT_AN_ID = st.text(max_size=12).filter(lambda t: not t.startswith(("par_", "cus_", "inv_")))


@pytest.mark.parametrize(("name", "param", "kind"), _id_arguments())
@given(bad=st.one_of(NOT_AN_ID, st.integers(), st.none()))
def test_every_service_names_an_id_argument_in_its_message(
    name: str, param: str, kind: type[EntityId], bad: object
) -> None:
    # The message quoted the kind of id ('partner id') rather than the
    # argument its path named.
    assume(not (isinstance(bad, str) and re.fullmatch(rf"{kind.prefix}_[A-Za-z0-9]+", bad)))
    service = getattr(services, name)
    hints = typing.get_type_hints(service)
    assume(bad is not None or type(None) not in _kinds(hints[param]))
    store = MemoryStore()
    b = a_billing(store)
    with store.unit_of_work() as uow:
        request = uow.access_requests.save(
            AccessRequest.open(b.partner, email="dee@globex.example", first_name="Dee")
        )
        uow.commit()
    # What the services check or read before an id, given as it should be.
    given_well: dict[str, object] = {
        "partner_id": b.partner.id,
        "customer_id": b.customer.id,
        "invoice_id": b.one.id,
        "invoice_ids": [b.one.id],
        "payer": b.ann,
        "request_id": request.id,
        "by": b.partner.team[0],
        "today": TODAY,
        "draft": CustomerDraft.start(b.partner),
    }
    args: list[object] = []
    kwargs: dict[str, object] = {}
    for p in list(inspect.signature(service).parameters.values())[1:]:
        if p.name == param:
            value: object = bad
        elif p.name in given_well:
            value = given_well[p.name]
        elif p.name.endswith("_id") and any(_is_id_kind(k) for k in _kinds(hints[p.name])):
            value = _an_id_of(next(k for k in _kinds(hints[p.name]) if _is_id_kind(k)))
        elif p.default is not p.empty:
            continue
        else:
            value = None
        if p.kind is p.KEYWORD_ONLY:
            kwargs[p.name] = value
        else:
            args.append(value)
    with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
        service(uow, *args, **kwargs)
    error = caught.value.errors[0]
    assert (error.path, error.code) == (param, "invalid_id")
    assert error.message.startswith(f"'{param}' must look like {kind.prefix}_<letters and digits>")
    assert f" {kind.label}) (got " in error.message


@given(bad=NOT_AN_ID, position=st.integers(0, 2))
def test_pay_invoices_names_the_invoice_id_that_is_not_one(bad: str, position: int) -> None:
    store = MemoryStore()
    b = a_billing(store)
    ids: list[object] = [b.one.id, str(b.two.id), b.one.id]
    ids[position] = bad
    with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
        services.pay_invoices(
            uow, b.partner.id, b.customer.id, ids, payer=b.ann, method="ach", idempotency_key="k"
        )
    path = f"invoice_ids[{position}]"
    assert (caught.value.paths, caught.value.codes) == ([path], ["invalid_id"])
    assert caught.value.errors[0].message.startswith(f"'{path}' must look like inv_")


def test_the_docs_give_every_services_return_value() -> None:
    """The services table of docs/persistence.md names every service, each
    with what it returns."""
    page = Path(__file__).resolve().parent.parent / "docs" / "persistence.md"
    if not page.is_file():  # pragma: no cover - tests run from an sdist or elsewhere
        pytest.skip("docs/persistence.md is not next to the tests")
    lines = page.read_text(encoding="utf-8").splitlines()
    start = lines.index("| service | does | returns |")
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    named: set[str] = set()
    for cells in rows:
        assert len(cells) == 3, cells
        assert all(cells), cells
        named.update(re.findall(r"`([a-z_]+)[`(]", cells[0]))
    functions = {name for name in services.__all__ if inspect.isfunction(getattr(services, name))}
    assert named == functions
