"""The in-memory adapter: the contract suite, and what is particular to it."""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from altpay_core import (
    AccessRequest,
    AltpayError,
    ConcurrencyConflict,
    Customer,
    CustomerDraft,
    CustomerId,
    CustomerPaymentMethods,
    ExternalRef,
    InvariantViolation,
    Invoice,
    InvoiceId,
    LineItem,
    Money,
    NotFound,
    Partner,
    ScheduledPayment,
    ScheduledPaymentId,
    Store,
    ValidationError,
    pay_invoices,
)
from altpay_core.adapters import memory
from altpay_core.adapters.memory import MemoryStore, MemoryUnitOfWork, _AccessRequests, _Undo
from altpay_core.adapters.sqlite import SqliteStore
from altpay_core.ports import (
    AccessRequestRepository,
    Cursor,
    Page,
    invoice_cursor,
    invoice_sort_key,
)
from altpay_core.testing import contracts
from altpay_core.values import Address


class MemoryFactory:
    def make_store(self) -> MemoryStore:
        return MemoryStore()


class TestMemoryPartners(MemoryFactory, contracts.PartnerRepositoryContract):
    pass


class TestMemoryCustomers(MemoryFactory, contracts.CustomerRepositoryContract):
    pass


class TestMemoryAccessRequests(MemoryFactory, contracts.AccessRequestRepositoryContract):
    pass


class TestThePortsOwnPendingFor(MemoryFactory, contracts.AccessRequestRepositoryContract):
    """An adapter that keeps the port's ``pending_for`` (which lists the
    partner's pending requests, then picks one) passes the contract too."""

    @pytest.fixture(autouse=True)
    def _default_pending_for(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(_AccessRequests, "pending_for", AccessRequestRepository.pending_for)


class TestMemoryInvoices(MemoryFactory, contracts.InvoiceRepositoryContract):
    pass


class TestMemoryPayments(MemoryFactory, contracts.PaymentRepositoryContract):
    pass


class TestMemoryPaymentMethods(MemoryFactory, contracts.PaymentMethodRepositoryContract):
    pass


class TestMemoryScheduledPayments(MemoryFactory, contracts.ScheduledPaymentRepositoryContract):
    pass


class TestMemoryUnitOfWork(MemoryFactory, contracts.UnitOfWorkContract):
    def break_next_commit(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        # Between writing the aggregates and writing their events.
        write_outbox = MemoryStore._write_outbox

        def fail_once(self: MemoryStore, *args: object, **kwargs: object) -> None:
            monkeypatch.setattr(MemoryStore, "_write_outbox", write_outbox)
            raise contracts.InjectedFailure

        monkeypatch.setattr(MemoryStore, "_write_outbox", fail_once)


class TestMemoryOutbox(MemoryFactory, contracts.OutboxContract):
    pass


class TestMemoryConcurrency(MemoryFactory, contracts.ConcurrencyContract):
    pass


class TestMemoryRoundTrips(MemoryFactory, contracts.RoundTripContract):
    pass


# -- what is particular to the memory adapter -----------------------------------

PARTNER = Partner.create(name="Northwind IT", country="US")
SYNCED = Partner.create(name="Contoso", country="US").connect_integration(
    "xero", syncs_customers=True
)
"""A partner whose customers come from its Xero (C6)."""
ALBANY = Address("1 Main St", "Albany", "NY", "12207", "US")


def a_customer(company: str = "Globex", ref: ExternalRef | None = None) -> Customer:
    """A customer of PARTNER added by hand, or one of SYNCED synced as ``ref``."""
    user = {"first_name": "A", "last_name": "B", "email": "ab@globex.example"}
    if ref is not None:
        return Customer.from_sync(
            SYNCED, external_ref=ref, company=company, address=ALBANY, users=[user]
        )
    draft = CustomerDraft.start(PARTNER).enter_details(company=company, address=ALBANY)
    return draft.add_user(**user).create()


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    with MemoryStore() as store:
        with store.unit_of_work() as uow:
            uow.partners.save(PARTNER)
            uow.partners.save(SYNCED)
            uow.commit()
        yield store


@given(kind=st.sampled_from(["partner", "customer"]), saves=st.integers(0, 3), data=st.data())
def test_save_itself_checks_the_version_it_read(kind: str, saves: int, data: st.DataObject) -> None:
    # Optimistic concurrency: save refuses any version but the stored one,
    # at once, not only when the commit checks again: a version ahead of the
    # store (never read from it) as well as a stale one.
    with MemoryStore() as store, store.unit_of_work() as uow:
        repo: Any = uow.partners if kind == "partner" else uow.customers
        value: Any = Partner.create(name="Initech", country="US") if kind == "partner" else None
        if kind == "customer":
            uow.partners.save(PARTNER)
            uow.commit()
            value = a_customer()
        for _ in range(saves):
            value = repo.save(value)
            uow.commit()
        assert value.version == saves
        version = data.draw(st.integers(0, saves + 3).filter(lambda v: v != saves), label="v")
        with pytest.raises(ConcurrencyConflict):
            repo.save(attrs.evolve(value, version=version))
        assert repo.save(value).version == saves + 1


@pytest.mark.parametrize("holder", ["staged", "committed"])
def test_save_itself_refuses_another_partners_id(store: MemoryStore, holder: str) -> None:
    # As the SQL stores do at save: an id stays its partner's.
    other = Partner.create(name="Initech", country="US")
    with store.unit_of_work() as uow:
        uow.partners.save(other)
        customer = uow.customers.save(a_customer())
        if holder == "committed":
            uow.commit()
        with pytest.raises(ConcurrencyConflict, match="is already stored; nothing was written"):
            uow.customers.save(attrs.evolve(customer, partner_id=other.id))
        assert uow.customers.get(PARTNER.id, customer.id) == customer


@pytest.mark.parametrize("holder", ["staged", "committed"])
def test_save_itself_refuses_a_taken_external_ref_c10(store: MemoryStore, holder: str) -> None:
    ref = ExternalRef("xero", "7")
    with store.unit_of_work() as uow:
        first = uow.customers.save(a_customer("First", ref))
        if holder == "committed":
            uow.commit()
        with pytest.raises(ConcurrencyConflict) as caught:
            uow.customers.save(a_customer("Twin", ref))
        assert (caught.value.kind, caught.value.key) == ("customer", str(ref))
        assert uow.customers.get_by_external_ref(SYNCED.id, ref) == first
        assert uow.customers.save(first.archive()).external_ref == ref  # archiving frees it
        assert uow.customers.save(a_customer("Twin", ref)).external_ref == ref


def test_a_conflict_found_only_at_commit_writes_nothing(store: MemoryStore) -> None:
    with store.unit_of_work() as uow:
        one, two = uow.customers.save(a_customer()), uow.customers.save(a_customer("Acme"))
        uow.commit()
    with store.unit_of_work() as slow, store.unit_of_work() as fast:
        slow.customers.save(one.archive())
        slow.customers.save(two.archive())
        slow.access_requests.save(AccessRequest.open(PARTNER, email="dee@globex.example"))
        fast.customers.save(two.set_card_fee_exception("partner"))
        fast.commit()
        with pytest.raises(ConcurrencyConflict) as caught:
            slow.commit()
        assert caught.value.kind == "customer"
        assert caught.value.key == str(two.id)
    with store.unit_of_work() as uow:
        assert uow.customers.get(PARTNER.id, one.id) == one
        assert uow.customers.get(PARTNER.id, two.id).version == 2
        assert uow.access_requests.list(PARTNER.id) == []
        assert [m.event.topic for m in uow.outbox.pending()] == [
            "customer_created",
            "customer_created",
            "customer_updated",
        ]


def test_a_ref_taken_by_a_commit_in_between_is_found_at_commit(store: MemoryStore) -> None:
    ref = ExternalRef("xero", "7")
    with store.unit_of_work() as slow, store.unit_of_work() as fast:
        slow.customers.save(a_customer("Slow", ref))
        fast.customers.save(a_customer("Fast", ref))
        fast.commit()
        with pytest.raises(ConcurrencyConflict):
            slow.commit()
    with store.unit_of_work() as uow:
        assert uow.customers.get_by_external_ref(SYNCED.id, ref).company == "Fast"


def test_a_partner_changed_in_between_is_found_at_commit(store: MemoryStore) -> None:
    with store.unit_of_work() as slow, store.unit_of_work() as fast:
        slow.partners.save(attrs.evolve(PARTNER, version=1, name="Slow"))
        fast.partners.save(attrs.evolve(PARTNER, version=1, name="Fast"))
        fast.commit()
        with pytest.raises(ConcurrencyConflict) as caught:
            slow.commit()
        assert "changed since it was read (read at version 1, stored at 2)" in str(caught.value)


def test_lookups_see_staged_customers_first(store: MemoryStore) -> None:
    ref = ExternalRef("xero", "7")
    with store.unit_of_work() as uow:
        synced = uow.customers.save(a_customer("Synced", ref))
        uow.commit()
        uow.customers.save(a_customer("Other"))
        uow.customers.save(synced.archive())
        with pytest.raises(NotFound):
            uow.customers.get_by_external_ref(SYNCED.id, ref)
        request = uow.access_requests.save(AccessRequest.open(PARTNER, email="d@globex.example"))
        assert uow.access_requests.get(PARTNER.id, request.id) == request


def test_ids_may_be_given_as_text(store: MemoryStore) -> None:
    with store.unit_of_work() as uow:
        customer = uow.customers.save(a_customer())
        partner_id: Any = str(PARTNER.id)
        customer_id: Any = str(customer.id)
        assert uow.partners.get(partner_id) == attrs.evolve(PARTNER, version=1)
        assert uow.customers.get(partner_id, customer_id) == customer
        with pytest.raises(ValidationError) as caught:
            uow.customers.get(partner_id, "nonsense")  # type: ignore[arg-type]
        assert caught.value.paths == ["customer_id"]


@pytest.mark.parametrize(
    ("call", "path"),
    [
        (lambda uow: uow.partners.save("partner"), "partner"),
        (lambda uow: uow.customers.save(PARTNER), "customer"),
        (lambda uow: uow.access_requests.save(None), "request"),
        (lambda uow: uow.customers.get_by_external_ref(PARTNER.id, "xero:1"), "ref"),
        (lambda uow: uow.customers.list(PARTNER.id, name_prefix=3), "name_prefix"),
        (lambda uow: uow.customers.list(PARTNER.id, status="gone"), "status"),
        (lambda uow: uow.customers.list(PARTNER.id, tag="vip"), "tag"),
        (lambda uow: uow.access_requests.list(PARTNER.id, status="maybe"), "status"),
        (lambda uow: uow.outbox.mark_published([1, "2"]), "positions[1]"),
        (lambda uow: uow.outbox.mark_published([True]), "positions[0]"),
        (lambda uow: uow.customers.with_user(PARTNER.id, 42), "email"),
        (lambda uow: uow.invoices.save(PARTNER), "invoice"),
        (lambda uow: uow.invoices.get(PARTNER.id, "cus_1"), "invoice_id"),
        (lambda uow: uow.invoices.get_by_number(PARTNER.id, 1001), "number"),
        (lambda uow: uow.invoices.get_by_external_ref(PARTNER.id, "xero:1"), "ref"),
        (lambda uow: uow.invoices.list(PARTNER.id, customer_id="inv_1"), "customer_id"),
        (lambda uow: uow.invoices.overdue(PARTNER.id, "2026-01-01"), "as_of"),
        (lambda uow: uow.payments.save(PARTNER), "payment"),
        (lambda uow: uow.payments.get(PARTNER.id, "inv_1"), "payment_id"),
        (lambda uow: uow.payments.get_by_idempotency_key(PARTNER.id, 7), "key"),
        (lambda uow: uow.payments.for_invoice(PARTNER.id, "pay_1"), "invoice_id"),
        (lambda uow: uow.payment_methods.save(PARTNER), "methods"),
        (lambda uow: uow.payment_methods.get(PARTNER.id, "x"), "customer_id"),
        (lambda uow: uow.scheduled_payments.save(PARTNER), "scheduled"),
        (lambda uow: uow.scheduled_payments.get(PARTNER.id, "pay_1"), "scheduled_id"),
    ],
)
def test_bad_arguments_raise_validation_errors(
    store: MemoryStore, call: Callable[[MemoryUnitOfWork], object], path: str
) -> None:
    with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
        call(uow)
    assert caught.value.paths == [path]


@given(data=st.binary(max_size=4), wrap=st.sampled_from([bytes, bytearray, memoryview]))
def test_binary_data_is_no_list_of_positions(data: bytes, wrap: type) -> None:
    # A bytearray or a memoryview was read as positions, one a byte:
    # bytearray(b"\x01") marked the first message published.
    with MemoryStore() as store:
        with store.unit_of_work() as uow:
            uow.partners.save(PARTNER)
            uow.commit()
        with store.unit_of_work() as uow:
            pending = uow.outbox.pending()
            with pytest.raises(ValidationError) as caught:
                uow.outbox.mark_published(wrap(data))
            assert (caught.value.paths, caught.value.codes) == (["positions"], ["wrong_type"])
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.outbox.pending() == pending


def test_filters_accept_their_values_as_text(store: MemoryStore) -> None:
    with store.unit_of_work() as uow:
        customer = uow.customers.save(a_customer())
        status: Any = "active"
        assert uow.customers.list(PARTNER.id, status=status).items == (customer,)


def test_a_closed_store_gives_no_more_units_of_work() -> None:
    store = MemoryStore()
    uow = store.unit_of_work()
    assert not store.closed
    store.close()
    assert store.closed
    with pytest.raises(AltpayError, match="closed"):
        store.unit_of_work()
    with pytest.raises(AltpayError, match="closed"), uow:
        pass


def test_a_unit_of_work_left_open_on_a_closed_store_refuses_everything() -> None:
    # The data is gone: a read would answer "no such partner", as if it had
    # never been stored. It says the store is closed instead.
    store = MemoryStore()
    with store.unit_of_work() as uow:
        uow.partners.save(PARTNER)
        uow.commit()
        store.close()
        for work in (
            lambda: uow.partners.get(PARTNER.id),
            lambda: uow.customers.list(PARTNER.id),
            lambda: uow.customers.save(a_customer()),
            uow.outbox.pending,
            uow.commit,
        ):
            with pytest.raises(AltpayError, match="closed"):
                work()
        uow.rollback()


def test_results_are_the_callers_own(store: MemoryStore) -> None:
    with store.unit_of_work() as uow:
        customer = uow.customers.save(a_customer())
        uow.commit()
        found = uow.customers.with_user(PARTNER.id, "ab@globex.example")
        found.clear()
        accounts = uow.customers.accounts_of("ab@globex.example")
        accounts.append(customer)
        pending = uow.outbox.pending()
        pending.clear()
        assert uow.customers.with_user(PARTNER.id, "ab@globex.example") == [customer]
        assert uow.customers.accounts_of("ab@globex.example") == [customer]
        assert len(uow.outbox.pending()) == 1


def test_undo_puts_every_kind_of_write_back() -> None:
    table: dict[str, int] = {"kept": 1, "changed": 2, "dropped": 3}
    members = {1, 2}
    in_order = [(("a", "1"), 1), (("c", "3"), 3)]
    undo = _Undo()
    undo.put(table, "changed", 20)
    undo.put(table, "added", 4)
    undo.pop(table, "dropped")
    undo.pop(table, "never there")
    undo.add_to(members, 3)
    undo.add_to(members, 1)
    undo.discard_from(members, 2)
    undo.discard_from(members, 9)
    undo.pop_if(table, "kept", 2)  # no longer that value: kept
    undo.insort(in_order, (("b", "2"), 2))
    undo.remove_sorted(in_order, ("a", "1"))
    rewritten = [1, 2]
    undo.rewrite(rewritten, [3])
    assert rewritten == [3]
    assert table == {"kept": 1, "changed": 20, "added": 4}
    assert members == {1, 3}
    assert in_order == [(("b", "2"), 2), (("c", "3"), 3)]
    undo.run()
    assert table == {"kept": 1, "changed": 2, "dropped": 3}
    assert members == {1, 2}
    assert in_order == [(("a", "1"), 1), (("c", "3"), 3)]
    assert rewritten == [1, 2]


def test_a_failed_commit_gives_marked_messages_back_in_position_order(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with store.unit_of_work() as uow:
        for n in range(3):
            uow.customers.save(a_customer(f"Globex {n}"))
        uow.commit()
    with store.unit_of_work() as uow:
        positions = [message.position for message in uow.outbox.pending(10)]
    write_published = MemoryStore._write_published

    def fail_after(self: MemoryStore, undo: _Undo, marked: Any) -> None:
        write_published(self, undo, marked)
        raise contracts.InjectedFailure

    monkeypatch.setattr(MemoryStore, "_write_published", fail_after)
    with store.unit_of_work() as uow:
        uow.outbox.mark_published(positions[:1])
        with pytest.raises(contracts.InjectedFailure):
            uow.commit()
    monkeypatch.undo()
    with store.unit_of_work() as uow:
        assert [message.position for message in uow.outbox.pending(10)] == positions
        assert [message.position for message in uow.outbox.pending(2)] == positions[:2]


def test_the_default_commit_breaker_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    suite = contracts.UnitOfWorkContract.break_next_commit
    with pytest.raises(pytest.skip.Exception, match="does not override"):
        suite(TestMemoryPartners(), MemoryStore(), monkeypatch)  # type: ignore[arg-type]


def test_errors_in_contract_threads_reach_the_test() -> None:
    def fail() -> None:
        raise LookupError("in a thread")

    with pytest.raises(LookupError, match="in a thread"):
        contracts._run_threads([fail, lambda: None])


# -- invoices, payments, methods and scheduled payments ---------------------------


def an_invoice(
    number: str, ref: ExternalRef | None = None, customer_id: CustomerId | None = None
) -> Invoice:
    return Invoice(
        id=InvoiceId.new(),
        partner_id=PARTNER.id,
        customer_id=CustomerId.new() if customer_id is None else customer_id,
        number=number,
        currency=PARTNER.currency,
        issue_date=dt.date(2026, 1, 1),
        due_date=dt.date(2026, 2, 1),
        lines=(LineItem("Support", 1, Money("10.00", "USD")),),
        external_ref=ref,
    )


def test_numbers_swapped_in_one_commit(store: MemoryStore) -> None:
    with store.unit_of_work() as uow:
        billed = uow.customers.save(a_customer()).id
        one = uow.invoices.save(an_invoice("1", customer_id=billed))
        two = uow.invoices.save(an_invoice("2", customer_id=billed))
        uow.commit()
        # Through a spare number: each save keeps the numbers unique.
        spare = uow.invoices.save(attrs.evolve(one, number="spare"))
        uow.invoices.save(attrs.evolve(two, number="1"))
        uow.invoices.save(attrs.evolve(spare, number="2"))
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.invoices.get_by_number(PARTNER.id, "1").id == two.id
        assert uow.invoices.get_by_number(PARTNER.id, "2").id == one.id


def test_invoice_lookups_see_staged_invoices_first(store: MemoryStore) -> None:
    ref, new_ref = ExternalRef("xero", "1"), ExternalRef("xero", "2")
    with store.unit_of_work() as uow:
        billed = uow.customers.save(a_customer()).id
        synced = uow.invoices.save(an_invoice("1", ref, billed))
        uow.commit()
        uow.invoices.save(an_invoice("3", customer_id=billed))
        resynced = uow.invoices.save(synced.apply_sync(number="1-A"))
        staged = uow.invoices.save(an_invoice("4", new_ref, billed))
        with pytest.raises(NotFound):
            uow.invoices.get_by_number(PARTNER.id, "1")
        assert uow.invoices.get_by_number(PARTNER.id, "1-A").id == synced.id
        assert uow.invoices.get_by_external_ref(PARTNER.id, ref) == resynced
        assert uow.invoices.get_by_external_ref(PARTNER.id, new_ref) == staged
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.invoices.get_by_external_ref(PARTNER.id, ref).number == "1-A"
        assert uow.invoices.get_by_external_ref(PARTNER.id, new_ref).number == "4"


def test_payment_and_method_lookups_see_staged_values_first(store: MemoryStore) -> None:
    customer = a_customer()
    user = customer.users[0]
    invoices = [attrs.evolve(an_invoice(n), customer_id=customer.id) for n in ("1", "2")]
    with store.unit_of_work() as uow:
        first, _ = pay_invoices(
            PARTNER, customer, invoices[:1], payer=user, method="ach", idempotency_key="a"
        )
        second, _ = pay_invoices(
            PARTNER, customer, invoices[1:], payer=user, method="ach", idempotency_key="b"
        )
        stored = uow.payments.save(first)
        uow.commit()
        uow.payments.save(second)
        assert uow.payments.get_by_idempotency_key(PARTNER.id, "a") == stored
        assert uow.payments.get(PARTNER.id, first.id) == stored
        book = uow.payment_methods.save(
            CustomerPaymentMethods.of(customer).add(type="ach", display_name="Chase", last4="1234")
        )
        assert uow.payment_methods.get(PARTNER.id, customer.id) == book
        scheduled = uow.scheduled_payments.save(
            ScheduledPayment(
                id=ScheduledPaymentId.new(),
                partner_id=PARTNER.id,
                customer_id=customer.id,
                invoice_id=invoices[0].id,
                user_id=user.id,
                payment_method_id=book.methods[0].id,
                pay_on=dt.date(2026, 1, 20),
            )
        )
        assert uow.scheduled_payments.get(PARTNER.id, scheduled.id) == scheduled


# -- the work a unit of work does, whatever it has staged ------------------------

STAGED = 100


def _count_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count the calls of the memory adapter's key function ``name``."""
    calls = [0]
    real = getattr(memory, name)

    def counted(value: Any) -> Any:
        calls[0] += 1
        return real(value)

    monkeypatch.setattr(memory, name, counted)
    return calls


def _aggregates(kind: str, n: int) -> tuple[str, list[Any]]:
    """``n`` new aggregates of ``kind``, each with a unique key of its own,
    and the name of the adapter's function that takes that key."""
    if kind == "customer":
        return "_ref_key", [a_customer(f"C{k}", ExternalRef("xero", str(k))) for k in range(n)]
    if kind == "access request":
        requests = [AccessRequest.open(PARTNER, email=f"r{k}@ask.example") for k in range(n)]
        return "_pending_key", requests
    if kind == "invoice":
        return "_number_key", [an_invoice(str(k)) for k in range(n)]
    customer = a_customer()
    payments = [
        pay_invoices(
            PARTNER,
            customer,
            [attrs.evolve(an_invoice(str(k)), customer_id=customer.id)],
            payer=customer.users[0],
            method="ach",
            idempotency_key=str(k),
        )[0]
        for k in range(n)
    ]
    return "_idempotency_key", payments


def _repository(uow: MemoryUnitOfWork, kind: str) -> Any:
    return {
        "customer": uow.customers,
        "access request": uow.access_requests,
        "invoice": uow.invoices,
        "payment": uow.payments,
    }[kind]


KINDS = ["customer", "access request", "invoice", "payment"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_bulk_save_checks_each_key_without_going_over_the_staged_ones(
    store: MemoryStore, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The unique-key check of a save is a look-up in the unit of work's own
    # index of its staged keys: saving n aggregates in one unit of work takes
    # a few keys per save, not one per aggregate already staged.
    name, aggregates = _aggregates(kind, STAGED)
    calls = _count_calls(monkeypatch, name)
    with store.unit_of_work() as uow:
        repository = _repository(uow, kind)
        for aggregate in aggregates:
            repository.save(aggregate)
    assert calls[0] <= 4 * STAGED


def _lookups(uow: MemoryUnitOfWork, kind: str, key: str) -> list[tuple[str, Any]]:
    """Each look-up by a unique key of ``kind`` (``key``: the key given to
    ``_aggregates``), with the name of the adapter's function that takes
    that key: what it finds, or ``None``."""

    def found(lookup: Callable[[], Any]) -> Any:
        try:
            return lookup()
        except NotFound:
            return None

    ref = ExternalRef("xero", key)
    if kind == "customer":
        return [("_ref_key", found(lambda: uow.customers.get_by_external_ref(SYNCED.id, ref)))]
    if kind == "access request":
        request = uow.access_requests.pending_for(PARTNER.id, f"r{key}@ask.example")
        return [("_pending_key", request)]
    if kind == "invoice":
        return [
            ("_number_key", found(lambda: uow.invoices.get_by_number(PARTNER.id, key))),
            ("_invoice_ref_key", found(lambda: uow.invoices.get_by_external_ref(PARTNER.id, ref))),
        ]
    return [("_idempotency_key", uow.payments.get_by_idempotency_key(PARTNER.id, key))]


@pytest.mark.parametrize("kind", KINDS)
def test_a_lookup_by_unique_key_goes_over_none_of_the_staged_aggregates(
    store: MemoryStore, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the persistence docs say of pending_for: one look-up, however many
    # aggregates the unit of work has staged (the keys staged are indexed).
    _, aggregates = _aggregates(kind, STAGED)
    names = ["_ref_key", "_pending_key", "_number_key", "_invoice_ref_key", "_idempotency_key"]
    with store.unit_of_work() as uow:
        repository = _repository(uow, kind)
        staged = [repository.save(aggregate) for aggregate in aggregates]
        calls = {name: _count_calls(monkeypatch, name) for name in names}
        for key, expected in (("none", None), ("0", staged[0])):
            for name, result in _lookups(uow, kind, key):
                wanted = None if name == "_invoice_ref_key" else expected
                assert (name, result) == (name, wanted)
    assert {name: count[0] for name, count in calls.items()} == dict.fromkeys(names, 0)


class _CountedReads(dict[Any, Any]):
    """A store's table that counts the rows read out of it by key."""

    reads = 0

    def __getitem__(self, key: Any) -> Any:
        self.reads += 1
        return super().__getitem__(key)


def a_scheduled_payment(invoice_id: InvoiceId, pay_on: dt.date) -> ScheduledPayment:
    customer = a_customer()
    book = CustomerPaymentMethods.of(customer).add(type="ach", display_name="Chase", last4="1234")
    return ScheduledPayment(
        id=ScheduledPaymentId.new(),
        partner_id=PARTNER.id,
        customer_id=customer.id,
        invoice_id=invoice_id,
        user_id=customer.users[0].id,
        payment_method_id=book.methods[0].id,
        pay_on=pay_on,
    )


def test_due_and_for_invoice_read_no_scheduled_payment_that_cannot_match(
    store: MemoryStore,
) -> None:
    # The store indexes the scheduled payments still to run by partner, and
    # all of them by invoice: the nightly due() reads none of the partner's
    # history, for_invoice() only the invoice's own.
    day = dt.date(2026, 1, 20)
    invoice_id = InvoiceId.new()
    with store.unit_of_work() as uow:
        for _ in range(STAGED):
            done = uow.scheduled_payments.save(a_scheduled_payment(InvoiceId.new(), day))
            uow.scheduled_payments.save(done.cancel())
        to_run = uow.scheduled_payments.save(a_scheduled_payment(invoice_id, day))
        moved = uow.scheduled_payments.save(a_scheduled_payment(invoice_id, day))
        elsewhere = uow.scheduled_payments.save(a_scheduled_payment(InvoiceId.new(), day))
        uow.commit()
        # No save moves one to the invoice (no command does); one of the
        # invoice's is cancelled, once committed.
        with pytest.raises(InvariantViolation):
            uow.scheduled_payments.save(attrs.evolve(elsewhere, invoice_id=invoice_id))
        uow.scheduled_payments.save(elsewhere.cancel())
        moved = uow.scheduled_payments.save(moved.cancel())
        uow.commit()
        store._scheduled = table = _CountedReads(store._scheduled)
        assert uow.scheduled_payments.due(PARTNER.id, day) == [to_run]
        assert table.reads == 1
        assert uow.scheduled_payments.for_invoice(PARTNER.id, invoice_id) == sorted(
            [to_run, moved], key=lambda s: s.id.value
        )
        assert table.reads == 3


def test_a_page_reads_only_the_rows_it_needs(store: MemoryStore) -> None:
    # Each partner's committed customers and invoices are kept in order: a
    # page reads from its cursor on, not every row of the partner.
    with store.unit_of_work() as uow:
        billed = uow.customers.save(a_customer()).id
        for n in range(STAGED):
            uow.customers.save(a_customer(f"Company {n:03d}"))
            uow.invoices.save(an_invoice(f"{n:03d}", customer_id=billed))
        uow.commit()
        store._customers = customers = _CountedReads(store._customers)
        store._invoices = invoices = _CountedReads(store._invoices)
        first = uow.invoices.list(PARTNER.id, limit=10)
        deep = uow.invoices.list(PARTNER.id, limit=10, after=first.end_cursor)
        back = uow.invoices.list(PARTNER.id, limit=10, before=deep.start_cursor)
        assert back == first
        assert invoices.reads <= 3 * 12
        page = uow.customers.list(PARTNER.id, limit=10)
        uow.customers.list(PARTNER.id, limit=10, after=page.end_cursor)
        assert customers.reads <= 2 * 12


def _expected_page(
    rows: list[Invoice], limit: int, after: str | None, before: str | None
) -> Page[Invoice]:
    """The page of ``rows`` (every matching one), by sorting them all."""
    rows = sorted(rows, key=lambda i: (invoice_sort_key(i), i.id.value))
    keys = [(invoice_sort_key(i), i.id.value) for i in rows]
    if after is not None:
        cursor = Cursor.decode(after, listing="invoices")
        start = bisect.bisect_right(keys, (cursor.key, cursor.id))
        end = min(start + limit, len(rows))
    elif before is not None:
        cursor = Cursor.decode(before, "before", listing="invoices")
        end = bisect.bisect_left(keys, (cursor.key, cursor.id))
        start = max(0, end - limit)
    else:
        start, end = 0, min(limit, len(rows))
    items = tuple(rows[start:end])
    return Page(
        items=items,
        start_cursor=invoice_cursor(items[0]) if items else None,
        end_cursor=invoice_cursor(items[-1]) if items else None,
        has_next_page=end < len(rows),
        has_previous_page=start > 0,
    )


PAGED_INVOICE = st.tuples(st.sampled_from(["1", "2", "10"]), st.integers(0, 2), st.integers(0, 1))


@given(
    stored=st.lists(PAGED_INVOICE, max_size=8),
    changed=st.lists(st.tuples(st.integers(0, 7), PAGED_INVOICE), max_size=4),
    added=st.lists(PAGED_INVOICE, max_size=3),
    limit=st.integers(1, 4),
    where=st.sampled_from(["first", "after", "before"]),
    at=st.integers(0, 15),
    customer=st.sampled_from([None, 0, 1]),
)
def test_a_page_is_the_slice_of_every_matching_row_in_order(
    *,
    stored: list[tuple[str, int, int]],
    changed: list[tuple[int, tuple[str, int, int]]],
    added: list[tuple[str, int, int]],
    limit: int,
    where: str,
    at: int,
    customer: int | None,
) -> None:
    # Committed invoices, some saved again in the unit of work with another
    # number, due date or customer, and new ones staged: the page is what
    # sorting every matching invoice the unit of work sees gives.
    with MemoryStore() as store, store.unit_of_work() as uow:
        uow.partners.save(PARTNER)
        customers = [uow.customers.save(a_customer(name)).id for name in ("A", "B")]

        def invoice(spec: tuple[str, int, int], old: Invoice | None = None) -> Invoice:
            number, day, owner = spec
            new = an_invoice(number, customer_id=customers[owner]) if old is None else old
            return attrs.evolve(new, due_date=dt.date(2026, 2, 1 + day))

        seen = {}
        for k, spec in enumerate(stored):
            saved = uow.invoices.save(invoice((f"{spec[0]}-{k}", *spec[1:])))
            seen[saved.id] = saved
        uow.commit()
        cursors = [invoice_cursor(i) for i in seen.values()]
        for k, (which, spec) in enumerate(changed):
            if seen:
                old = list(seen.values())[which % len(seen)]
                new = invoice((f"{spec[0]}-c{k}", *spec[1:]), old)
                saved = uow.invoices.save(attrs.evolve(new, customer_id=old.customer_id))
                seen[saved.id] = saved
        for k, spec in enumerate(added):
            saved = uow.invoices.save(invoice((f"{spec[0]}-a{k}", *spec[1:])))
            seen[saved.id] = saved
        cursors += [invoice_cursor(i) for i in seen.values()]
        wanted = None if customer is None else customers[customer]
        matching = [i for i in seen.values() if wanted is None or i.customer_id == wanted]
        cursor = cursors[at % len(cursors)] if cursors and where != "first" else None
        after, before = (cursor, None) if where == "after" else (None, cursor)
        expected = _expected_page(matching, limit, after, before)
        found = uow.invoices.list(
            PARTNER.id, customer_id=wanted, limit=limit, after=after, before=before
        )
        assert found == expected


INVOICE_NUMBERS = ["1", "2", "3"]
INVOICE_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("save"), st.integers(0, 3), st.sampled_from(INVOICE_NUMBERS)),
        st.tuples(st.sampled_from(["commit", "rollback"]), st.just(0), st.just("")),
    ),
    max_size=25,
)


@given(steps=INVOICE_STEPS)
def test_a_number_is_refused_exactly_when_another_invoice_seen_holds_it(
    steps: list[tuple[str, int, str]],
) -> None:
    # Invoices numbered and renumbered, staged, committed and rolled back in
    # one unit of work: a save is refused, and a look-up by number finds,
    # as the invoices the unit of work sees (its own saves laid over the
    # committed ones) say; a number let go of by a staged invoice, even one
    # whose committed copy holds it, is free.
    with MemoryStore() as store, store.unit_of_work() as uow:
        uow.partners.save(PARTNER)
        billed = uow.customers.save(a_customer()).id
        uow.commit()
        ids = [InvoiceId.new() for _ in range(4)]
        committed: dict[InvoiceId, Invoice] = {}
        seen: dict[InvoiceId, Invoice] = {}
        for action, which, number in steps:
            if action == "commit":
                uow.commit()
                committed = dict(seen)
            elif action == "rollback":
                uow.rollback()
                seen = dict(committed)
            else:
                ident, old = ids[which], seen.get(ids[which])
                new = an_invoice(number, customer_id=billed) if old is None else old
                invoice = attrs.evolve(new, id=ident, number=number)
                if any(i != ident and v.number == number for i, v in seen.items()):
                    with pytest.raises(ConcurrencyConflict) as caught:
                        uow.invoices.save(invoice)
                    assert (caught.value.kind, caught.value.key) == ("invoice", number)
                else:
                    seen[ident] = uow.invoices.save(invoice)
            for wanted in INVOICE_NUMBERS:
                holders = [v for v in seen.values() if v.number == wanted]
                if holders:
                    assert uow.invoices.get_by_number(PARTNER.id, wanted) == holders[0]
                else:
                    with pytest.raises(NotFound):
                        uow.invoices.get_by_number(PARTNER.id, wanted)


NOT_A_STORE = st.one_of(st.none(), st.integers(), st.text(), st.binary(), st.builds(object))


@given(store=NOT_A_STORE)
def test_a_unit_of_work_refuses_what_is_not_a_memory_store(store: object) -> None:
    # Accepted silently before, to fail at its first use.
    with pytest.raises(ValidationError) as caught:
        MemoryUnitOfWork(store)  # type: ignore[arg-type]
    assert (caught.value.paths, caught.value.codes) == (["store"], ["wrong_type"])
    assert caught.value.errors[0].message.startswith("'store' must be a MemoryStore (got ")


def test_a_unit_of_work_refuses_another_kind_of_store(tmp_path: Any) -> None:
    other = SqliteStore(tmp_path / "altpay.db")
    expected = "'store' must be a MemoryStore \\(got SqliteStore\\)"
    with other, pytest.raises(ValidationError, match=expected):
        MemoryUnitOfWork(other)  # type: ignore[arg-type]


# -- an interruption between a write and its undo ----------------------------------


class _Once:
    """Raises ``KeyboardInterrupt`` once, right after its first write, as a
    signal may: the undo's own writes then go through."""

    armed = True

    def interrupt(self) -> None:
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt


class _Dict(_Once, dict):  # type: ignore[type-arg]
    def __delitem__(self, key: object) -> None:
        super().__delitem__(key)
        self.interrupt()

    def pop(self, key: object, *default: object) -> object:
        value = super().pop(key, *default)
        self.interrupt()
        return value


class _Set(_Once, set):  # type: ignore[type-arg]
    def add(self, member: object) -> None:
        super().add(member)
        self.interrupt()

    def discard(self, member: object) -> None:
        super().discard(member)
        self.interrupt()


class _List(_Once, list):  # type: ignore[type-arg]
    def insert(self, at: Any, entry: Any) -> None:
        super().insert(at, entry)
        self.interrupt()

    def __delitem__(self, at: Any) -> None:
        super().__delitem__(at)
        self.interrupt()

    def pop(self, at: Any = -1) -> Any:
        entry = super().pop(at)
        self.interrupt()
        return entry

    def __setitem__(self, at: Any, value: Any) -> None:
        super().__setitem__(at, value)
        self.interrupt()


_ENTRIES = [(("a", "1"), 1), (("b", "2"), 2), (("c", "3"), 3)]


@pytest.mark.parametrize(
    ("table", "write"),
    [
        (_Dict(a=1, b=2), lambda undo, t: undo.pop(t, "a")),
        (_Set({1}), lambda undo, t: undo.add_to(t, 2)),
        (_Set({1, 2}), lambda undo, t: undo.discard_from(t, 2)),
        (_List([_ENTRIES[0], _ENTRIES[2]]), lambda undo, t: undo.insort(t, _ENTRIES[1])),
        (_List(_ENTRIES), lambda undo, t: undo.remove_sorted(t, ("b", "2"))),
        (_List([1, 2]), lambda undo, t: undo.rewrite(t, [3])),
    ],
    ids=["pop", "add_to", "discard_from", "insort", "remove_sorted", "rewrite"],
)
def test_a_write_interrupted_once_done_is_undone_too(table: Any, write: Any) -> None:
    # A commit's writes each record their inverse first: one interrupted
    # right after it is done is rolled back with the rest.
    before = type(table).__mro__[2](table)
    undo = _Undo()
    with pytest.raises(KeyboardInterrupt):
        write(undo, table)
    undo.run()
    assert table == before


class _Early(list):  # type: ignore[type-arg]
    """Interrupted before each write: the inverse is recorded, the write not made."""

    def insert(self, at: Any, entry: Any) -> None:
        raise KeyboardInterrupt

    def __delitem__(self, at: Any) -> None:
        raise KeyboardInterrupt


_FIRST_AND_LAST = [_ENTRIES[0], _ENTRIES[2]]


@pytest.mark.parametrize(
    "write",
    [
        lambda undo, t: undo.insort(t, _ENTRIES[1]),  # between the two
        lambda undo, t: undo.insort(t, (("d", "4"), 4)),  # after the last
        lambda undo, t: undo.remove_sorted(t, ("c", "3")),
        lambda undo, t: undo.remove_sorted(t, ("a", "1")),
    ],
    ids=["insort", "insort-last", "remove_sorted-last", "remove_sorted-first"],
)
def test_a_write_interrupted_before_it_is_done_is_undone_as_nothing(write: Any) -> None:
    # Its inverse, recorded first, finds nothing to undo: it takes out or
    # puts back no other entry.
    entries = _Early(_FIRST_AND_LAST)
    undo = _Undo()
    with pytest.raises(KeyboardInterrupt):
        write(undo, entries)
    undo.run()
    assert list(entries) == _FIRST_AND_LAST


def test_undo_puts_back_the_last_entry_taken_out() -> None:
    entries = list(_ENTRIES)
    undo = _Undo()
    undo.remove_sorted(entries, ("c", "3"))
    undo.remove_sorted(entries, ("b", "2"))
    assert entries == [_ENTRIES[0]]
    undo.run()
    assert entries == _ENTRIES


@pytest.mark.parametrize("count", [3, memory._FEW_MOVES + 6])
def test_a_commit_that_moves_customers_lists_each_once_in_its_new_place(
    store: MemoryStore, count: int
) -> None:
    # A few moves are made one by one, many by sorting the partner's rows
    # again: each way, every customer is listed once, in its new place.
    with store.unit_of_work() as uow:
        saved = [uow.customers.save(a_customer(f"Company {n:03d}")) for n in range(count)]
        uow.commit()
    with store.unit_of_work() as uow:
        renamed = [
            uow.customers.save(customer.update_details(company=f"Renamed {count - n:03d}"))
            for n, customer in enumerate(saved)
        ]
        added = uow.customers.save(a_customer("Added"))
        uow.commit()
    with store.unit_of_work() as uow:
        page = uow.customers.list(PARTNER.id, limit=count + 1)
    assert [c.id for c in page.items] == [added.id, *(c.id for c in reversed(renamed))]
    assert not page.has_next_page
