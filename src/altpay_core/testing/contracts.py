"""Contract suites: the behaviour every storage adapter must have.

Each class here is a set of tests that any adapter's test module subclasses,
supplying a factory for a new, empty store. The classes are not collected by
pytest on their own (their names do not start with ``Test``); a subclass
whose name does is::

    from altpay_core.testing import contracts
    from my_service.storage import RedisStore


    class RedisStoreFactory:
        def make_store(self) -> RedisStore:
            return RedisStore(url=..., namespace=uuid.uuid4().hex)


    class TestRedisPartners(RedisStoreFactory, contracts.PartnerRepositoryContract): ...
    class TestRedisCustomers(RedisStoreFactory, contracts.CustomerRepositoryContract): ...
    # ... one line per contract; or, instead of all of them (not as well):
    # class TestRedisStore(RedisStoreFactory, contracts.StoreContract): ...

The suite closes each store it made (``make_store`` must not share one). It
runs threads against a single store, so a store must be safe to share
between threads (its units of work need not be).

The one thing the suite cannot do by itself is break a commit half way
through its writes; :meth:`UnitOfWorkContract.break_next_commit` is the seam
an adapter overrides to do that (the test skips, saying so, until it does).
"""

from __future__ import annotations

import abc
import base64
import datetime as dt
import inspect
import json
import threading
import time
import typing
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

try:
    import pytest
except ImportError as _error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "altpay_core.testing needs pytest: pip install 'altpay-core[testing]'"
    ) from _error

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError as _error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "altpay_core.testing needs Hypothesis: pip install 'altpay-core[testing]'"
    ) from _error

from altpay_core import services
from altpay_core.customer import (
    AccessRequest,
    AccessRequestStatus,
    Customer,
    CustomerDraft,
    CustomerStatus,
    CustomerUser,
)
from altpay_core.errors import (
    AltpayError,
    ConcurrencyConflict,
    InvariantViolation,
    NotFound,
    UniqueKeyTaken,
    ValidationError,
)
from altpay_core.events import CustomerArchived, CustomerCreated, CustomerUpdated, Event
from altpay_core.invoice import Fee, FeeKind, Invoice, InvoiceStatus, LineItem
from altpay_core.money import Currency, Money
from altpay_core.partner import CardFeePolicy, Partner, Role, TeamMember
from altpay_core.payment import (
    CustomerPaymentMethods,
    Payment,
    PaymentMethodStatus,
    PaymentMethodType,
    PaymentStatus,
    ScheduledPayment,
    ScheduledPaymentId,
    ScheduledPaymentStatus,
    charge_back_payment,
    fail_payment,
    pay_invoices,
    refund_payment,
    return_payment,
    run_scheduled_payment,
    schedule_payment,
    skip_scheduled_payment,
)
from altpay_core.ports import (
    _KINDS,
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    OutboxMessage,
    Page,
    Store,
    UnitOfWork,
    customer_sort_key,
    invoice_sort_key,
)
from altpay_core.serialization import from_dict, to_dict
from altpay_core.testing import strategies as aps
from altpay_core.values import (
    AccessRequestId,
    Address,
    CustomerId,
    EmailAddress,
    EntityId,
    ExternalRef,
    InvoiceId,
    PartnerId,
    PaymentId,
    PaymentMethodId,
    TagId,
    UserId,
)

__all__ = [
    "AccessRequestRepositoryContract",
    "ConcurrencyContract",
    "CustomerRepositoryContract",
    "InjectedFailure",
    "InvoiceRepositoryContract",
    "OutboxContract",
    "PartnerRepositoryContract",
    "PaymentMethodRepositoryContract",
    "PaymentRepositoryContract",
    "RoundTripContract",
    "ScheduledPaymentRepositoryContract",
    "StoreContract",
    "UnitOfWorkContract",
]


class InjectedFailure(Exception):
    """The error :meth:`UnitOfWorkContract.break_next_commit` makes a commit raise."""


# -- building blocks -------------------------------------------------------------

_ADDRESS = Address("1 Main St", "Albany", "NY", "12207", "US")
_JOIN_TIMEOUT = 60.0
# How long a publisher's test gives another publisher to list the outbox
# before going on (a store that makes it wait for the first takes it all).
_PUBLISHER_WAIT = 0.5


def _partner(name: str = "Northwind IT", *, syncs: Sequence[str] = ()) -> Partner:
    """A partner with an Admin and two tags, whose integrations ``syncs``
    sync customers: a new customer is synced from one of them, or added by
    hand while there are none (C6)."""
    partner = Partner.create(name=name, country="US")
    partner = partner.add_team_member(
        name="Ada Admin", email=f"ada@{partner.id.value[-8:]}.example", role=Role.ADMIN
    )
    for system in syncs:
        partner = partner.connect_integration(system, syncs_customers=True)
    partner = partner.add_tag(name="VIP", colour="#AA0000")
    return partner.add_tag(name="Late payer", colour="#00AA00")


_SYNCED = ("connectwise", "halopsa", "xero")
"""The systems the customers of the tests are synced from."""


def _customer(
    partner: Partner,
    company: str = "Globex",
    *,
    emails: Sequence[str] = ("ann@globex.example",),
    ref: ExternalRef | None = None,
    tags: Sequence[TagId] = (),
    status: CustomerStatus = CustomerStatus.ACTIVE,
) -> Customer:
    users = tuple(
        CustomerUser.new(first_name="Ann", last_name=f"Lee {index}", email=email)
        for index, email in enumerate(emails)
    )
    return Customer(
        id=CustomerId.new(),
        partner_id=partner.id,
        company=company,
        address=_ADDRESS,
        users=users,
        tags=frozenset(tags),
        external_ref=ref,
        status=status,
    )


def _created(
    partner: Partner, company: str = "Globex", email: str = "ann@globex.example"
) -> Customer:
    """A customer made through the product's two steps: it carries ``customer_created``."""
    draft = CustomerDraft.start(partner).enter_details(company=company, address=_ADDRESS)
    return draft.add_user(first_name="Ann", last_name="Lee", email=email).create()


_Aggregate = (
    Partner
    | Customer
    | AccessRequest
    | Invoice
    | Payment
    | CustomerPaymentMethods
    | ScheduledPayment
)


def _repository(uow: UnitOfWork, aggregate: Any) -> Any:
    """The repository of ``uow`` for the type of ``aggregate``."""
    if isinstance(aggregate, Partner):
        return uow.partners
    if isinstance(aggregate, Customer):
        return uow.customers
    if isinstance(aggregate, AccessRequest):
        return uow.access_requests
    if isinstance(aggregate, Invoice):
        return uow.invoices
    if isinstance(aggregate, Payment):
        return uow.payments
    if isinstance(aggregate, CustomerPaymentMethods):
        return uow.payment_methods
    return uow.scheduled_payments


def _save(uow: UnitOfWork, aggregate: Any) -> Any:
    """Save ``aggregate`` with the repository for its type."""
    return _repository(uow, aggregate).save(aggregate)


def _read_again(uow: UnitOfWork, aggregate: Any) -> Any:
    """What ``uow`` reads of the stored ``aggregate``, by its partner and key."""
    if isinstance(aggregate, Partner):
        return uow.partners.get(aggregate.id)
    if isinstance(aggregate, CustomerPaymentMethods):
        return uow.payment_methods.get(aggregate.partner_id, aggregate.customer_id)
    return _repository(uow, aggregate).get(aggregate.partner_id, aggregate.id)


def _assert_taken(error: ConcurrencyConflict, kind: str, key: str, rule: str, path: str) -> None:
    """A unique key taken: a ``UniqueKeyTaken`` (the ports' ``*_taken``
    helpers make it), a conflict and a broken rule at once."""
    assert isinstance(error, UniqueKeyTaken), type(error)
    assert (error.kind, error.key, error.rule, error.path) == (kind, key, rule, path)


def _assert_already_stored(store: Store, new: Customer | Invoice, kind: str, version: int) -> None:
    """Saving ``new``, whose id a stored aggregate at ``version`` holds (of
    its partner or another's), is a ``ConcurrencyConflict`` (at save or at
    commit) that says the id is already stored: in every store's words, and
    naming neither the stored version nor its partner."""
    with pytest.raises(ConcurrencyConflict) as caught:
        _commit(store, new)
    message = str(caught.value)
    assert (caught.value.kind, caught.value.key) == (kind, str(new.id))
    named = {"customer": "a customer", "invoice": "an invoice"}[kind]
    assert f"{named} with id {str(new.id)!r} is already stored; nothing was written" in message
    assert "version" not in message
    assert str(version) not in message.replace(str(new.id), "")


def _commit(store: Store, *aggregates: _Aggregate) -> list[Any]:
    """Save each aggregate in one unit of work and commit it; the stored values."""
    with store.unit_of_work() as uow:
        saved = [_save(uow, aggregate) for aggregate in aggregates]
        uow.commit()
    return saved


def _refused_change(
    store: Store, stored: Any, changed: Any, *, repository: str, field: str, rule: str
) -> Any:
    """Saving ``changed``, a copy of ``stored`` with a fixed field changed, is
    refused with the rule, at save whether the unit of work read it from the
    store or saved it itself; nothing is written. What is stored after."""
    with store.unit_of_work() as uow:
        with pytest.raises(InvariantViolation) as caught:
            _save(uow, changed)
        uow.commit()
    assert (caught.value.rule, caught.value.path) == (rule, field)
    with store.unit_of_work() as uow:
        again = _save(uow, stored)
        with pytest.raises(InvariantViolation):
            _save(uow, attrs.evolve(changed, version=again.version))
        uow.commit()
        read = getattr(uow, repository).get(stored.partner_id, stored.id)
    assert getattr(read, field) == getattr(stored, field)
    assert read.version == stored.version + 1
    return read


def _refused_history(store: Store, stored: Any, changed: Any, rule: str, path: str) -> None:
    """Saving ``changed``, a copy of ``stored`` (as stored) changed as no
    command changes it, is refused at save with ``rule`` at ``path``,
    whether the unit of work read ``stored`` or saved it itself. Nothing of
    the unit of work is written: not ``changed``, not a new partner saved
    before it in the same block, no event; ``stored`` reads back as it was."""
    with store.unit_of_work() as uow:
        before = uow.outbox.pending(MAX_PAGE_SIZE)
    bystander = _partner("Bystander")

    def save_with_another() -> None:
        with store.unit_of_work() as uow:
            uow.partners.save(bystander)
            _save(uow, changed)
            uow.commit()

    with pytest.raises(InvariantViolation) as caught:
        save_with_another()
    assert (caught.value.rule, caught.value.path) == (rule, path), str(caught.value)
    assert "nothing was written" in str(caught.value)
    with store.unit_of_work() as uow:
        again = _save(uow, stored)
        with pytest.raises(InvariantViolation) as caught:
            _save(uow, attrs.evolve(changed, version=again.version))
        assert (caught.value.rule, caught.value.path) == (rule, path), str(caught.value)
    with store.unit_of_work() as uow:
        assert _read_again(uow, stored) == stored
        with pytest.raises(NotFound):
            uow.partners.get(bystander.id)
        assert uow.outbox.pending(MAX_PAGE_SIZE) == before


_PAYMENT_MOVES = frozenset(
    {
        (PaymentStatus.PROCESSING, PaymentStatus.SUCCEEDED),
        (PaymentStatus.PROCESSING, PaymentStatus.FAILED),
        (PaymentStatus.PROCESSING, PaymentStatus.CHARGED_BACK),
        (PaymentStatus.PROCESSING, PaymentStatus.REFUNDED),
        (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED),
        (PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED),
        (PaymentStatus.SUCCEEDED, PaymentStatus.CHARGED_BACK),
    }
)
"""The moves of a payment's status that the commands make between two
saves, one command or several: :meth:`Payment.succeed` (then
:meth:`Payment.settle` and :func:`refund_payment`), :func:`fail_payment`,
:func:`return_payment` (of a processing or succeeded bank debit, standard or
unauthorised), :func:`charge_back_payment` (of a succeeded card payment)."""

_GIVEN_BACK_FEES = {
    (PaymentStatus.FAILED, True): (FeeKind.RETURN, "15.00"),
    (PaymentStatus.CHARGED_BACK, True): (FeeKind.UNAUTHORIZED_RETURN, "25.00"),
    (PaymentStatus.CHARGED_BACK, False): (FeeKind.DISPUTE, "25.00"),
}
"""The fee a payment records as it is given back, by status and whether it
is a bank debit (I6)."""


def _posed_payment(stored: Payment, status: PaymentStatus) -> Payment | None:
    """``stored`` rewritten with ``status``, valid on its own: the fees and
    times that status asks for, the others kept; ``None`` if no payment of
    its method has that status with its times (a card payment that
    succeeded never fails)."""
    fees = tuple(fee for fee in stored.fees if fee.kind is FeeKind.CARD)
    given_back = _GIVEN_BACK_FEES.get((status, stored.method.is_bank_debit))
    if given_back is not None:
        kind, amount = given_back
        fees = (*fees, Fee.new(kind, Money(amount, stored.currency), covered_by_customer=False))
    succeeded_at, settled_at = stored.succeeded_at, stored.settled_at
    if status is PaymentStatus.PROCESSING:
        succeeded_at = settled_at = None
    elif succeeded_at is None and (
        status in (PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED)
        or (status is PaymentStatus.CHARGED_BACK and not stored.method.is_bank_debit)
    ):
        succeeded_at = stored.created_at
    if status is PaymentStatus.REFUNDED and settled_at is None:
        settled_at = succeeded_at
    try:
        return attrs.evolve(
            stored, status=status, fees=fees, succeeded_at=succeeded_at, settled_at=settled_at
        )
    except InvariantViolation:
        return None


_Id = typing.TypeVar("_Id", bound=EntityId)


def _tied_ids(kind: type[_Id], count: int) -> list[_Id]:
    """``count`` (at most 10) new ids of ``kind``, in ascending order, for
    records that tie on all else. Read from its end, each id's text sorts
    the other way, so that an order broken by anything but the id shows."""
    assert count <= 10
    token = kind.new().value.removeprefix(f"{kind.prefix}_")
    return [kind(f"{kind.prefix}_{n}{token}{count - 1 - n}") for n in range(count)]


def _ids(customers: Page[Customer] | Sequence[Customer]) -> list[CustomerId]:
    return [c.id for c in customers]


def _in_order(customers: Sequence[Customer]) -> list[CustomerId]:
    return [c.id for c in sorted(customers, key=lambda c: (customer_sort_key(c), c.id.value))]


def _run_threads(targets: Sequence[Callable[[], None]]) -> None:
    """Run each target in its own thread; re-raise the first error any raised."""
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as error:  # handed to the main thread
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(_JOIN_TIMEOUT)
    if any(thread.is_alive() for thread in threads):
        raise AssertionError(  # pragma: no cover - a hung adapter
            f"a thread was still running after {_JOIN_TIMEOUT} s (deadlock?)"
        )
    if errors:
        raise errors[0]


class _StoreFactory(abc.ABC):
    """The factory every contract needs, and the fixture that uses it."""

    @abc.abstractmethod
    def make_store(self) -> Store:
        """A new, empty store (each call its own data)."""

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        """A new, empty store, closed after the test."""
        store = self.make_store()
        try:
            yield store
        finally:
            store.close()

    # Helpers: each runs one committed unit of work.

    @staticmethod
    def store_partner(store: Store, partner: Partner) -> Partner:
        with store.unit_of_work() as uow:
            saved = uow.partners.save(partner)
            uow.commit()
        return saved

    @classmethod
    def _store_two_partners(cls, store: Store) -> list[Partner]:
        """Two partners, stored, their ids in ascending order (``_tied_ids``)."""
        return [
            cls.store_partner(store, attrs.evolve(_partner(name), id=partner_id))
            for name, partner_id in zip(
                ("Northwind IT", "Contoso"), _tied_ids(PartnerId, 2), strict=True
            )
        ]

    @staticmethod
    def store_customers(store: Store, *customers: Customer) -> list[Customer]:
        with store.unit_of_work() as uow:
            saved = [uow.customers.save(c) for c in customers]
            uow.commit()
        return saved

    @staticmethod
    def store_aggregates(store: Store, *aggregates: Any) -> list[Any]:
        """Save aggregates of any kind in one unit of work; the stored values."""
        return _commit(store, *aggregates)

    @staticmethod
    def read_customer(store: Store, partner_id: PartnerId, customer_id: CustomerId) -> Customer:
        with store.unit_of_work() as uow:
            return uow.customers.get(partner_id, customer_id)

    @staticmethod
    def pending(store: Store, limit: int = MAX_PAGE_SIZE) -> list[OutboxMessage]:
        with store.unit_of_work() as uow:
            return uow.outbox.pending(limit)

    def partner_with_customer(self, store: Store) -> tuple[Partner, Customer]:
        partner = self.store_partner(store, _partner())
        (customer,) = self.store_customers(store, _customer(partner))
        return partner, customer


# -- partners ----------------------------------------------------------------------


class PartnerRepositoryContract(_StoreFactory):
    """``uow.partners``: get, save, optimistic concurrency."""

    def test_get_unknown_partner_raises_not_found(self, store: Store) -> None:
        with store.unit_of_work() as uow, pytest.raises(NotFound):
            uow.partners.get(PartnerId.new())

    def test_save_new_returns_the_stored_value(self, store: Store) -> None:
        partner = _partner()
        saved = self.store_partner(store, partner)
        assert saved == attrs.evolve(partner, version=1)
        assert saved.version == 1
        assert saved.events == ()

    def test_saved_partner_reads_back_equal(self, store: Store) -> None:
        saved = self.store_partner(store, _partner())
        with store.unit_of_work() as uow:
            got = uow.partners.get(saved.id)
        assert got == saved
        assert to_dict(got) == to_dict(saved)

    def test_update_increments_the_version(self, store: Store) -> None:
        saved = self.store_partner(store, _partner())
        changed = saved.add_tag(name="Net 30", colour="#0000AA")
        again = self.store_partner(store, changed)
        assert again.version == 2
        with store.unit_of_work() as uow:
            assert uow.partners.get(saved.id) == again

    def test_a_stale_partner_conflicts_and_writes_nothing(self, store: Store) -> None:
        saved = self.store_partner(store, _partner())
        winner = self.store_partner(store, saved.add_tag(name="Net 30", colour="#0000AA"))
        with pytest.raises(ConcurrencyConflict):
            _commit(store, saved.add_tag(name="Net 60", colour="#0000BB"))
        with store.unit_of_work() as uow:
            assert uow.partners.get(saved.id) == winner

    def test_new_partner_with_a_taken_id_conflicts(self, store: Store) -> None:
        saved = self.store_partner(store, _partner())
        with pytest.raises(ConcurrencyConflict):
            _commit(store, attrs.evolve(saved, version=0, name="Impostor"))
        with store.unit_of_work() as uow:
            assert uow.partners.get(saved.id).name == saved.name

    def test_a_partner_version_never_stored_conflicts(self, store: Store) -> None:
        partner = attrs.evolve(_partner(), version=3)
        with pytest.raises(ConcurrencyConflict):
            _commit(store, partner)
        with store.unit_of_work() as uow, pytest.raises(NotFound):
            uow.partners.get(partner.id)

    def test_saving_a_partner_twice_in_one_unit_of_work(self, store: Store) -> None:
        with store.unit_of_work() as uow:
            first = uow.partners.save(_partner())
            second = uow.partners.save(first.add_tag(name="Net 30", colour="#0000AA"))
            assert (first.version, second.version) == (1, 2)
            assert uow.partners.get(first.id) == second
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.partners.get(first.id) == second

    def test_a_partner_keeps_its_currency_country_and_an_admin(self, store: Store) -> None:
        """No command changes a partner's currency or country (I2), nor
        leaves a team that has an Admin without one (``team-admin``): a save
        that does is refused, and nothing of its unit of work is written.
        The commands' own changes to the team still save."""
        saved = self.store_partner(store, _partner())
        ada = saved.team[0]
        (saved,) = _commit(
            store, saved.add_team_member(name="Mo", email="mo@northwind.example", role=Role.MEMBER)
        )
        mo = saved.team[-1]
        cad = Currency("CAD")
        at_fault = [
            (
                attrs.evolve(saved, currency=cad, card_fees=CardFeePolicy.default(cad)),
                "I2",
                "currency",
            ),
            (
                attrs.evolve(
                    saved, country="CA", currency=cad, card_fees=CardFeePolicy.default(cad)
                ),
                "I2",
                "currency",
            ),
            (attrs.evolve(saved, country="CA"), "I2", "country"),
            (attrs.evolve(saved, team=(mo,)), "team-admin", "team"),
            (
                attrs.evolve(saved, team=(attrs.evolve(ada, role=Role.SUB_ADMIN), mo)),
                "team-admin",
                "team",
            ),
        ]
        for changed, rule, path in at_fault:
            _refused_history(store, saved, changed, rule, path)
        (saved,) = _commit(
            store,
            saved.add_team_member(
                name="Bea", email="bea@northwind.example", role=Role.ADMIN, by=ada
            ),
        )
        bea = saved.team[-1]
        (saved,) = _commit(store, saved.change_role(ada, Role.MEMBER, by=bea))
        (saved,) = _commit(store, saved.remove_team_member(ada, by=bea))
        (saved,) = _commit(store, saved.change_role(mo, Role.ADMIN, by=bea))
        assert [m.role for m in saved.team] == [Role.ADMIN, Role.ADMIN]
        # A team with no Admin yet may stay without one.
        bare = self.store_partner(store, Partner.create(name="Initech", country="CA"))
        (bare,) = _commit(
            store,
            bare.add_team_member(name="Sue", email="sue@initech.example", role=Role.SUB_ADMIN),
        )
        with store.unit_of_work() as uow:
            assert uow.partners.get(bare.id) == bare
            assert uow.partners.get(saved.id) == saved


# -- customers ---------------------------------------------------------------------


class CustomerRepositoryContract(_StoreFactory):
    """``uow.customers``: every query, C10, tenant isolation and pagination."""

    # get and save

    def test_get_returns_the_saved_customer(self, store: Store) -> None:
        partner, customer = self.partner_with_customer(store)
        got = self.read_customer(store, partner.id, customer.id)
        assert got == customer
        assert got.version == 1
        assert to_dict(got) == to_dict(customer)

    def test_get_unknown_customer_raises_not_found(self, store: Store) -> None:
        partner, _ = self.partner_with_customer(store)
        with store.unit_of_work() as uow, pytest.raises(NotFound):
            uow.customers.get(partner.id, CustomerId.new())

    def test_another_partners_customer_is_not_found_even_by_id(self, store: Store) -> None:
        _, customer = self.partner_with_customer(store)
        other = self.store_partner(store, _partner("Contoso"))
        with store.unit_of_work() as uow, pytest.raises(NotFound):
            uow.customers.get(other.id, customer.id)

    def test_save_returns_the_next_version_without_events(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        customer = _created(partner)
        assert customer.events
        (saved,) = self.store_customers(store, customer)
        assert saved == attrs.evolve(customer, version=1)
        assert saved.events == ()
        changed = saved.add_user(first_name="Bo", last_name="Li", email="bo@globex.example")
        (again,) = self.store_customers(store, changed)
        assert again.version == 2
        assert self.read_customer(store, partner.id, customer.id) == again

    def test_stale_save_conflicts_and_writes_nothing(self, store: Store) -> None:
        partner, customer = self.partner_with_customer(store)
        (winner,) = self.store_customers(
            store, customer.add_user(first_name="Bo", last_name="Li", email="bo@globex.example")
        )
        before = self.pending(store)
        stale = customer.add_user(first_name="Cy", last_name="Ng", email="cy@globex.example")
        with pytest.raises(ConcurrencyConflict):
            _commit(store, stale)
        assert self.read_customer(store, partner.id, customer.id) == winner
        assert self.pending(store) == before

    def test_new_customer_with_a_taken_id_conflicts(self, store: Store) -> None:
        partner, customer = self.partner_with_customer(store)
        with pytest.raises(ConcurrencyConflict):
            _commit(store, attrs.evolve(customer, version=0, company="Impostor"))
        assert self.read_customer(store, partner.id, customer.id) == customer

    @pytest.mark.parametrize(
        ("owner", "version"), [("own", 0), ("other", 0), ("other", 2), ("other", 3)]
    )
    def test_a_customer_saved_with_a_stored_id_names_no_version(
        self, store: Store, owner: str, version: int
    ) -> None:
        """A customer saved as new with the id of a stored one (of its own
        partner or another's), or under another partner at any version (the
        stored one, 2, too), is told only that the id is already stored: not
        the stored customer's version. Nothing is written."""
        partner, customer = self.partner_with_customer(store)
        (customer,) = self.store_customers(
            store, customer.add_user(first_name="Bo", last_name="Li", email="bo@globex.example")
        )
        other = self.store_partner(store, _partner("Contoso")) if owner == "other" else partner
        new = attrs.evolve(_customer(other, "Impostor"), id=customer.id, version=version)
        _assert_already_stored(store, new, "customer", customer.version)
        assert self.read_customer(store, partner.id, customer.id) == customer
        with store.unit_of_work() as uow:
            assert uow.customers.list(other.id).items == ((customer,) if other is partner else ())

    def test_a_version_never_stored_conflicts(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        customer = attrs.evolve(_customer(partner), version=2)
        with pytest.raises(ConcurrencyConflict) as caught:
            _commit(store, customer)
        assert str(caught.value) == (
            f"customer {str(customer.id)!r} is not stored, so version 2 cannot be saved "
            "(save it first at version 0); nothing was written"
        )
        with store.unit_of_work() as uow, pytest.raises(NotFound):
            uow.customers.get(partner.id, customer.id)

    def test_a_customer_cannot_move_to_another_partner(self, store: Store) -> None:
        partner, customer = self.partner_with_customer(store)
        other = self.store_partner(store, _partner("Contoso"))
        for version in (0, customer.version):
            with pytest.raises(ConcurrencyConflict):
                _commit(store, attrs.evolve(customer, partner_id=other.id, version=version))
        assert self.read_customer(store, partner.id, customer.id) == customer
        with store.unit_of_work() as uow:
            assert uow.customers.list(other.id).items == ()

    # external references (C10)

    def test_get_by_external_ref(self, store: Store) -> None:
        partner = self.store_partner(store, _partner(syncs=_SYNCED))
        ref = ExternalRef("connectwise", "4711")
        (synced, _) = self.store_customers(
            store,
            _customer(partner, ref=ref),
            _customer(partner, "Initech", ref=ExternalRef("connectwise", "4712")),
        )
        with store.unit_of_work() as uow:
            assert uow.customers.get_by_external_ref(partner.id, ref) == synced
            with pytest.raises(NotFound):
                uow.customers.get_by_external_ref(partner.id, ExternalRef("xero", "4711"))
            with pytest.raises(NotFound):
                uow.customers.get_by_external_ref(partner.id, ExternalRef("connectwise", "1"))

    def test_get_by_external_ref_is_scoped_to_the_partner(self, store: Store) -> None:
        partner = self.store_partner(store, _partner(syncs=_SYNCED))
        other = self.store_partner(store, _partner("Contoso", syncs=_SYNCED))
        ref = ExternalRef("connectwise", "4711")
        self.store_customers(store, _customer(partner, ref=ref))
        with store.unit_of_work() as uow, pytest.raises(NotFound):
            uow.customers.get_by_external_ref(other.id, ref)

    def test_get_by_external_ref_skips_archived_customers(self, store: Store) -> None:
        partner = self.store_partner(store, _partner(syncs=_SYNCED))
        ref = ExternalRef("connectwise", "4711")
        self.store_customers(store, _customer(partner, ref=ref, status=CustomerStatus.ARCHIVED))
        with store.unit_of_work() as uow, pytest.raises(NotFound):
            uow.customers.get_by_external_ref(partner.id, ref)

    def test_an_external_ref_is_unique_per_partner(self, store: Store) -> None:
        partner = self.store_partner(store, _partner(syncs=_SYNCED))
        ref = ExternalRef("connectwise", "4711")
        (first,) = self.store_customers(store, _customer(partner, ref=ref))
        before = self.pending(store)
        twin = _customer(partner, "Twin", ref=ref)
        with pytest.raises(ConcurrencyConflict) as caught:
            _commit(store, twin)
        _assert_taken(caught.value, "customer", str(ref), "C10", "external_ref")
        with store.unit_of_work() as uow:
            assert _ids(uow.customers.list(partner.id)) == [first.id]
            assert uow.customers.get_by_external_ref(partner.id, ref) == first
        assert self.pending(store) == before

    def test_two_new_customers_with_one_ref_in_one_unit_of_work_conflict(
        self, store: Store
    ) -> None:
        partner = self.store_partner(store, _partner(syncs=_SYNCED))
        ref = ExternalRef("halopsa", "9")
        with pytest.raises(ConcurrencyConflict):
            _commit(store, _customer(partner, "One", ref=ref), _customer(partner, "Two", ref=ref))
        with store.unit_of_work() as uow:
            assert uow.customers.list(partner.id).items == ()

    def test_the_same_ref_is_free_in_another_system_or_partner(self, store: Store) -> None:
        partner = self.store_partner(store, _partner(syncs=_SYNCED))
        other = self.store_partner(store, _partner("Contoso", syncs=_SYNCED))
        ref = ExternalRef("connectwise", "4711")
        saved = self.store_customers(
            store,
            _customer(partner, ref=ref),
            _customer(partner, "Initech", ref=ExternalRef("xero", "4711")),
            _customer(other, ref=ref),
        )
        with store.unit_of_work() as uow:
            assert uow.customers.get_by_external_ref(other.id, ref) == saved[2]
            assert uow.customers.get_by_external_ref(partner.id, ref) == saved[0]

    def test_archiving_frees_the_external_ref(self, store: Store) -> None:
        partner = self.store_partner(store, _partner(syncs=_SYNCED))
        ref = ExternalRef("connectwise", "4711")
        (old,) = self.store_customers(store, _customer(partner, ref=ref))
        (archived,) = self.store_customers(store, old.archive())
        (new,) = self.store_customers(store, _customer(partner, "Globex again", ref=ref))
        with store.unit_of_work() as uow:
            assert uow.customers.get_by_external_ref(partner.id, ref) == new
        # Restoring the archived one would give the ref two live owners.
        with pytest.raises(ConcurrencyConflict):
            _commit(store, archived.restore())
        assert self.read_customer(store, partner.id, old.id) == archived

    @pytest.mark.parametrize(
        ("old", "new"),
        [
            (ExternalRef("connectwise", "4711"), None),
            (ExternalRef("connectwise", "4711"), ExternalRef("connectwise", "4712")),
            (ExternalRef("connectwise", "4711"), ExternalRef("xero", "4711")),
            (None, ExternalRef("connectwise", "4711")),
        ],
    )
    def test_an_external_ref_never_changes(
        self, store: Store, old: ExternalRef | None, new: ExternalRef | None
    ) -> None:
        """C10, kept by the store too: a copy whose reference was changed
        (``attrs.evolve``, which the commands never do) is refused."""
        partner = self.store_partner(store, _partner(syncs=_SYNCED if old else ()))
        (stored,) = self.store_customers(store, _customer(partner, ref=old))
        changed = attrs.evolve(stored, external_ref=new)
        _refused_change(
            store, stored, changed, repository="customers", field="external_ref", rule="C10"
        )
        if old is not None:
            with store.unit_of_work() as uow:
                assert uow.customers.get_by_external_ref(partner.id, old).id == stored.id

    def test_archive_and_replace_in_one_unit_of_work(self, store: Store) -> None:
        partner = self.store_partner(store, _partner(syncs=_SYNCED))
        ref = ExternalRef("connectwise", "4711")
        (old,) = self.store_customers(store, _customer(partner, ref=ref))
        with store.unit_of_work() as uow:
            uow.customers.save(old.archive())
            new = uow.customers.save(_customer(partner, "Globex again", ref=ref))
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.customers.get_by_external_ref(partner.id, ref) == new

    # tags: from the partner's catalog as it stands at commit

    def test_a_tag_deleted_meanwhile_is_refused(self, store: Store) -> None:
        """Deleting a tag removes it from every customer: a customer tagged
        from a catalog read before another unit of work deleted the tag is
        refused at commit, and nothing is written."""
        partner, customer = self.partner_with_customer(store)
        vip = partner.tag("VIP").id
        with store.unit_of_work() as uow:
            catalog = uow.partners.get(partner.id)
            read = uow.customers.get(partner.id, customer.id)
            with store.unit_of_work() as other:  # no customer carries it yet
                services.delete_tag(other, partner.id, "VIP", by=partner.team[0])
            before = self.pending(store)

            def tag() -> None:
                uow.customers.save(read.set_tags(catalog, ["vip"]))
                uow.commit()  # adapters that find it at save never get here

            with pytest.raises(InvariantViolation) as caught:
                tag()
        assert (caught.value.rule, caught.value.path) == ("tags", "tags")
        assert self.read_customer(store, partner.id, customer.id) == customer
        with store.unit_of_work() as uow:
            assert uow.customers.list(partner.id, tag=vip).items == ()
        assert self.pending(store) == before

    def test_a_tag_taken_meanwhile_keeps_its_deletion_out(self, store: Store) -> None:
        """The other way round: a unit of work that takes a tag out of the
        catalog, having found no customer carrying it before another unit
        of work tagged one, is refused at commit (``ConcurrencyConflict``
        naming the partner); deleting the tag again removes it everywhere."""
        partner, customer = self.partner_with_customer(store)
        admin, vip = partner.team[0], partner.tag("VIP").id
        with store.unit_of_work() as uow:
            catalog = uow.partners.get(partner.id)
            assert uow.customers.list(partner.id, tag=vip).items == ()
            with store.unit_of_work() as other:
                tagged = other.customers.save(customer.set_tags(partner, ["VIP"]))
                other.commit()
            before = self.pending(store)

            def delete() -> None:
                uow.partners.save(catalog.delete_tag("VIP", by=admin))
                uow.commit()  # adapters that find it at save never get here

            with pytest.raises(ConcurrencyConflict) as caught:
                delete()
        assert (caught.value.kind, caught.value.key) == ("partner", str(partner.id))
        with store.unit_of_work() as uow:
            assert uow.partners.get(partner.id) == partner
            assert _ids(uow.customers.list(partner.id, tag=vip)) == [customer.id]
        assert self.pending(store) == before
        with store.unit_of_work() as uow:
            services.delete_tag(uow, partner.id, "VIP", by=admin)
        with store.unit_of_work() as uow:
            assert [t.name for t in uow.partners.get(partner.id).tags] == ["Late payer"]
            assert uow.customers.get(partner.id, customer.id).tags == frozenset()
            assert uow.customers.get(partner.id, customer.id).version == tagged.version + 1

    def test_a_tag_taken_out_and_put_back_in_one_unit_of_work_stays(self, store: Store) -> None:
        """A tag that a unit of work takes out of the catalog and puts back
        (the same tag) is in the catalog at commit: the customers carrying
        it keep it, and the commit is not refused for them."""
        partner, customer = self.partner_with_customer(store)
        vip = partner.tag("VIP")
        (tagged,) = self.store_aggregates(store, customer.set_tags(partner, ["VIP"]))
        with store.unit_of_work() as uow:
            catalog = uow.partners.get(partner.id)
            without = uow.partners.save(
                attrs.evolve(catalog, tags=tuple(t for t in catalog.tags if t != vip))
            )
            uow.partners.save(attrs.evolve(without, tags=catalog.tags))
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.customers.get(partner.id, customer.id) == tagged
            assert vip in uow.partners.get(partner.id).tags

    def test_a_tag_not_in_the_catalog_is_refused(self, store: Store) -> None:
        """A customer carries only tags of its partner's catalog, also when
        ``attrs.evolve`` (which the commands never do) gives it others."""
        partner, customer = self.partner_with_customer(store)
        other = self.store_partner(store, _partner("Contoso"))
        unknown = _partner("Initech")  # never stored: it has no catalog
        for changed in (
            attrs.evolve(customer, tags=frozenset({TagId.new()})),
            attrs.evolve(customer, tags=frozenset({partner.tag("VIP").id, TagId.new()})),
            attrs.evolve(customer, tags=frozenset({other.tag("VIP").id})),
            _customer(partner, "Initech", tags=[TagId.new()]),
            _customer(unknown, tags=[unknown.tag("VIP").id]),
        ):
            with pytest.raises(InvariantViolation) as caught:
                self.store_customers(store, changed)
            assert (caught.value.rule, caught.value.path) == ("tags", "tags")
        assert self.read_customer(store, partner.id, customer.id) == customer
        with store.unit_of_work() as uow:
            assert _ids(uow.customers.list(partner.id)) == [customer.id]
            assert uow.customers.list(unknown.id).items == ()

    def test_of_several_faults_with_tags_the_first_in_order_is_named(self, store: Store) -> None:
        """Every adapter names the same fault: the customer with the smallest
        id (and its smallest stray tag), or the smallest tag taken out of a
        catalog that a customer still carries, whatever the order of saves."""
        first, second = (
            self.store_partner(store, _partner()),
            self.store_partner(store, _partner("Contoso")),
        )
        strays = sorted([TagId.new(), TagId.new()])
        customers = sorted(
            (
                _customer(partner, company, tags=strays)
                for partner in (first, second)
                for company in ("Globex", "Initech")
            ),
            key=lambda c: str(c.id),
        )
        for order in (customers, customers[::-1]):
            with pytest.raises(InvariantViolation) as caught:
                self.store_customers(store, *order)
            assert f"customer {customers[0].id} carries tag {strays[0]}," in str(caught.value)
        stored = self.store_customers(store, _customer(first), _customer(first, "Initech"))
        with store.unit_of_work() as uow:
            catalog = uow.partners.get(first.id)
            with store.unit_of_work() as other:
                for customer, tag in zip(stored, ("VIP", "Late payer"), strict=True):
                    other.customers.save(customer.set_tags(first, [tag]))
                other.commit()
            admin = first.team[0]
            emptied = catalog.delete_tag("VIP", by=admin).delete_tag("Late payer", by=admin)

            def delete() -> None:
                uow.partners.save(emptied)
                uow.commit()  # adapters that find it at save never get here

            with pytest.raises(ConcurrencyConflict) as conflict:
                delete()
        smallest = min(first.tag("VIP").id, first.tag("Late payer").id)
        assert f"tag {smallest} is taken out" in str(conflict.value)

    def test_of_several_partners_taking_out_a_carried_tag_the_lowest_id_is_named(
        self, store: Store
    ) -> None:
        """Of several partners that take a tag out of their catalogs while a
        customer of theirs carries it (tagged by another writer after the
        catalogs were read), every adapter names the partner with the
        smallest id, whatever the order of the saves; nothing is written."""
        partners = self._store_two_partners(store)
        with store.unit_of_work() as uow:
            catalogs = [uow.partners.get(partner.id) for partner in partners]
        tagged = self.store_customers(
            store, *(_customer(partner, tags=[partner.tag("VIP").id]) for partner in partners)
        )
        for order in (catalogs, catalogs[::-1]):
            with pytest.raises(ConcurrencyConflict) as caught:
                self.store_aggregates(store, *(c.delete_tag("VIP", by=c.team[0]) for c in order))
            assert (caught.value.kind, caught.value.key) == ("partner", str(partners[0].id))
        with store.unit_of_work() as uow:
            assert [uow.partners.get(p.id) for p in partners] == partners
            assert [uow.customers.get(c.partner_id, c.id) for c in tagged] == tagged

    def test_a_tag_any_customer_carries_keeps_its_deletion_out(self, store: Store) -> None:
        """A tag taken out of the catalog is refused at commit while any one
        of the partner's customers carries it, each of them in turn; once
        none does, it is taken out."""
        partner = self.store_partner(store, _partner())
        vip = partner.tag("VIP").id
        customers = self.store_customers(
            store, *(_customer(partner, company) for company in ("Globex", "Initech", "Umbrella"))
        )
        emptied = partner.delete_tag("VIP", by=partner.team[0])
        for customer in customers:
            (tagged,) = self.store_customers(store, customer.set_tags(partner, ["VIP"]))
            with pytest.raises(ConcurrencyConflict) as caught:
                _commit(store, emptied)
            assert (caught.value.kind, caught.value.key) == ("partner", str(partner.id))
            self.store_customers(store, tagged.remove_tag(vip))
        _commit(store, emptied)
        with store.unit_of_work() as uow:
            assert [t.name for t in uow.partners.get(partner.id).tags] == ["Late payer"]

    def test_the_catalog_at_commit_counts_whatever_the_order_of_saves(self, store: Store) -> None:
        """A tag added to the catalog and given to a customer in one unit of
        work is fine, the customer saved first too; a tag taken out of the
        catalog while the unit of work keeps it on a customer is refused."""
        partner, customer = self.partner_with_customer(store)
        admin = partner.team[0]
        with_gold = partner.add_tag(name="Gold", colour="#D4AF37", by=admin)
        gold = with_gold.tag("Gold").id
        with store.unit_of_work() as uow:
            tagged = uow.customers.save(customer.set_tags(with_gold, ["Gold"]))
            with_gold = uow.partners.save(with_gold)
            uow.commit()
        without_gold = with_gold.delete_tag("Gold", by=admin)

        def keep_gold(order: str) -> None:
            with store.unit_of_work() as uow:
                if order == "partner first":
                    uow.partners.save(without_gold)
                uow.customers.save(
                    tagged.add_user(first_name="Bo", last_name="Li", email="bo@globex.example")
                )
                if order != "partner first":
                    if order == "a read between":
                        # A read that must see the save: a SQL store writes it now.
                        assert len(uow.customers.list(partner.id, tag=gold)) == 1
                    uow.partners.save(without_gold)
                uow.commit()  # adapters that find it at save never get here

        for order in ("partner first", "customer first", "a read between"):
            with pytest.raises(InvariantViolation) as caught:
                keep_gold(order)
            assert (caught.value.rule, caught.value.path) == ("tags", "tags"), order
        with store.unit_of_work() as uow:
            assert uow.partners.get(partner.id) == with_gold
            assert uow.customers.get(partner.id, customer.id) == tagged
            uow.customers.save(tagged.remove_tag(gold))
            uow.partners.save(without_gold)
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.customers.list(partner.id, tag=gold).items == ()
            assert [t.name for t in uow.partners.get(partner.id).tags] == ["VIP", "Late payer"]

    # customers added by hand: only while no integration syncs them, at commit (C6)

    def test_a_customer_added_by_hand_after_syncing_began_is_refused(self, store: Store) -> None:
        """C6: a customer created from a draft begun before the partner
        connected an integration that syncs customers is refused at commit,
        and nothing is written; a synced customer is stored, and a customer
        added by hand earlier may still change."""
        partner, earlier = self.partner_with_customer(store)
        draft = CustomerDraft.start(partner).enter_details(company="Initech", address=_ADDRESS)
        by_hand = draft.add_user(first_name="Bo", last_name="Li", email="bo@initech.example")
        syncing = partner.connect_integration("connectwise", syncs_customers=True)
        (syncing,) = _commit(store, syncing)
        before = self.pending(store)
        with pytest.raises(InvariantViolation) as caught:
            self.store_customers(store, by_hand.create())
        assert (caught.value.rule, caught.value.path) == ("C6", "")
        assert str(by_hand.customer_id) in str(caught.value)
        with store.unit_of_work() as uow:
            assert _ids(uow.customers.list(partner.id)) == [earlier.id]
        assert self.pending(store) == before
        synced = Customer.from_sync(
            syncing,
            external_ref=ExternalRef("connectwise", "4711"),
            company="Initech",
            address=_ADDRESS,
            users=[{"first_name": "Bo", "last_name": "Li", "email": "bo@initech.example"}],
        )
        changed = earlier.add_user(first_name="Bo", last_name="Li", email="bo@globex.example")
        self.store_customers(store, synced, changed)
        with store.unit_of_work() as uow:
            assert sorted(_ids(uow.customers.list(partner.id))) == sorted([earlier.id, synced.id])
            assert len(uow.customers.get(partner.id, earlier.id).users) == 2

    def test_the_partner_at_commit_counts_for_customers_added_by_hand(self, store: Store) -> None:
        """C6, whatever the order of the saves: a partner connecting an
        integration that syncs customers, and a customer added by hand, in
        one unit of work, are refused (naming the customer with the smallest
        id); disconnecting it in the same unit of work lets them in."""
        partner = self.store_partner(store, _partner())
        syncing = partner.connect_integration("halopsa", syncs_customers=True)
        customers = sorted(
            (_created(partner), _created(partner, "Initech", "bo@initech.example")),
            key=lambda c: str(c.id),
        )

        def add(order: str) -> None:
            with store.unit_of_work() as uow:
                if order == "partner first":
                    uow.partners.save(syncing)
                for customer in reversed(customers):
                    uow.customers.save(customer)
                if order != "partner first":
                    if order == "a read between":
                        # A read that must see the saves: a SQL store writes them now.
                        assert len(uow.customers.list(partner.id)) == 2
                    uow.partners.save(syncing)
                uow.commit()  # adapters that find it at save never get here

        for order in ("partner first", "customers first", "a read between"):
            with pytest.raises(InvariantViolation) as caught:
                add(order)
            assert caught.value.rule == "C6", order
            assert str(customers[0].id) in str(caught.value), order
        with store.unit_of_work() as uow:
            assert uow.partners.get(partner.id) == partner
            assert uow.customers.list(partner.id).items == ()
        with store.unit_of_work() as uow:
            stored = uow.partners.save(syncing)
            for customer in customers:
                uow.customers.save(customer)
            uow.partners.save(stored.disconnect_integration("halopsa"))
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.partners.get(partner.id).integrations == ()
            assert len(uow.customers.list(partner.id)) == 2

    def test_a_new_customer_synced_from_no_integration_of_its_partner_is_refused(
        self, store: Store
    ) -> None:
        """C6 at commit: a new customer whose reference names no connected
        integration of its partner that syncs customers (built by hand with
        a made-up reference, which ``Customer.from_sync`` refuses) is
        refused at ``external_ref``, and nothing is written; with several at
        fault, added by hand or synced, the one with the smallest id is
        named, as with customers added by hand."""
        partner = _partner(syncs=["connectwise"]).connect_integration("xero", syncs_invoices=True)
        other = _partner("Contoso")
        self.store_partner(store, partner)
        self.store_partner(store, other)
        before = self.pending(store)
        for owner, system in (
            (partner, "halopsa"),  # not connected
            (partner, "xero"),  # connected, but syncs invoices only
            (other, "connectwise"),  # another partner's integration
        ):
            made_up = _customer(owner, ref=ExternalRef(system, "4711"))
            with pytest.raises(InvariantViolation) as caught:
                self.store_customers(store, made_up)
            assert (caught.value.rule, caught.value.path) == ("C6", "external_ref"), system
            assert str(made_up.id) in str(caught.value), system
        by_hand = _customer(other, "Initech")  # no fault: Contoso syncs nothing
        faults = sorted(
            (_customer(other, "Globex", ref=ExternalRef("xero", "1")), _customer(partner)),
            key=lambda c: str(c.id),
        )
        with pytest.raises(InvariantViolation) as caught:
            self.store_customers(store, by_hand, *reversed(faults))
        assert caught.value.rule == "C6"
        assert str(faults[0].id) in str(caught.value)
        with store.unit_of_work() as uow:
            assert uow.customers.list(partner.id).items == ()
            assert uow.customers.list(other.id).items == ()
        assert self.pending(store) == before
        synced = _customer(partner, ref=ExternalRef("ConnectWise", "4711"))
        self.store_customers(store, synced, by_hand)
        with store.unit_of_work() as uow:
            assert _ids(uow.customers.list(partner.id)) == [synced.id]
            assert _ids(uow.customers.list(other.id)) == [by_hand.id]

    # users

    def test_with_user_compares_emails_case_insensitively(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        first_id, second_id = _tied_ids(CustomerId, 2)  # ordered by company, not by id
        saved = self.store_customers(
            store,
            attrs.evolve(
                _customer(
                    partner, "Globex", emails=["Ann.Lee@globex.example", "bo@globex.example"]
                ),
                id=first_id,
            ),
            attrs.evolve(
                _customer(partner, "Acme", emails=["ann.lee@GLOBEX.example"]), id=second_id
            ),
            _customer(partner, "Initech", emails=["cy@initech.example"]),
        )
        with store.unit_of_work() as uow:
            found = uow.customers.with_user(partner.id, "ANN.LEE@globex.example")
            assert _ids(found) == _in_order(saved[:2])
            assert found == sorted(saved[:2], key=customer_sort_key)
            assert uow.customers.with_user(partner.id, "nobody@globex.example") == []

    def test_with_user_includes_archived_customers(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        (archived,) = self.store_customers(
            store, _customer(partner, status=CustomerStatus.ARCHIVED)
        )
        with store.unit_of_work() as uow:
            assert uow.customers.with_user(partner.id, "ann@globex.example") == [archived]

    def test_with_user_is_scoped_to_the_partner(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        other = self.store_partner(store, _partner("Contoso"))
        (mine, _) = self.store_customers(store, _customer(partner), _customer(other))
        with store.unit_of_work() as uow:
            assert uow.customers.with_user(partner.id, "ann@globex.example") == [mine]
            assert uow.customers.with_user(PartnerId.new(), "ann@globex.example") == []

    def test_with_user_refuses_a_malformed_email(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        with store.unit_of_work() as uow, pytest.raises(ValidationError):
            uow.customers.with_user(partner.id, "not an email")

    def test_with_user_sees_users_removed_and_added(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        (customer,) = self.store_customers(
            store, _customer(partner, emails=["ann@globex.example", "bo@globex.example"])
        )
        changed = customer.remove_user("ann@globex.example").add_user(
            first_name="Cy", last_name="Ng", email="cy@globex.example"
        )
        self.store_customers(store, changed)
        with store.unit_of_work() as uow:
            assert uow.customers.with_user(partner.id, "ann@globex.example") == []
            assert _ids(uow.customers.with_user(partner.id, "cy@globex.example")) == [customer.id]

    def test_accounts_of_spans_partners_and_skips_archived(self, store: Store) -> None:
        first = self.store_partner(store, _partner())
        second = self.store_partner(store, _partner("Contoso"))
        saved = self.store_customers(
            store,
            _customer(first, "Globex", emails=["Ann@globex.example"]),
            _customer(second, "Acme", emails=["ann@GLOBEX.example", "bo@globex.example"]),
            _customer(second, "Initech", emails=["ann@globex.example"]).archive(),
            _customer(second, "Hooli", emails=["bo@globex.example"]),
        )
        with store.unit_of_work() as uow:
            found = uow.customers.accounts_of("ANN@globex.example")
            assert _ids(found) == _in_order(saved[:2])
            assert uow.customers.accounts_of("nobody@globex.example") == []
            with pytest.raises(ValidationError):
                uow.customers.accounts_of("not an email")

    def test_with_user_and_accounts_of_order_equal_companies_by_id(self, store: Store) -> None:
        """Ties by id, before the commit as after it."""
        partner = self.store_partner(store, _partner())
        tied = [
            attrs.evolve(_customer(partner, "Same Co"), id=customer_id)
            for customer_id in _tied_ids(CustomerId, 3)
        ]
        with store.unit_of_work() as uow:
            saved = {c.id: uow.customers.save(c) for c in (tied[2], tied[0], tied[1])}
            in_order = [saved[c.id] for c in tied]
            for _ in range(2):  # in the unit of work, then committed
                assert uow.customers.with_user(partner.id, "ann@globex.example") == in_order
                assert uow.customers.accounts_of("ann@globex.example") == in_order
                uow.commit()

    def test_reads_see_a_stored_customer_saved_again_once(self, store: Store) -> None:
        """Customers the unit of work archives or tags answer every query
        once, in their new state, before the commit as after it: never their
        stored copies as well, and an archived one is not found by the
        reference it gave up (C10)."""
        partner = self.store_partner(store, _partner(syncs=_SYNCED))
        ref = ExternalRef("connectwise", "4711")
        stored = self.store_customers(
            store,
            _customer(partner, ref=ref),
            _customer(partner, "Initech", ref=ExternalRef("connectwise", "4712")),
        )
        with store.unit_of_work() as uow:
            archived = uow.customers.save(uow.customers.get(partner.id, stored[0].id).archive())
            with pytest.raises(NotFound):
                uow.customers.get_by_external_ref(partner.id, ref)
            tagged = uow.customers.save(stored[1].set_tags(partner, ["VIP"]))
            both = sorted([archived, tagged], key=lambda c: (customer_sort_key(c), c.id.value))
            for _ in range(2):  # in the unit of work, then committed
                assert uow.customers.list(partner.id).items == tuple(both)
                assert uow.customers.with_user(partner.id, "ann@globex.example") == both
                assert uow.customers.accounts_of("ann@globex.example") == [tagged]
                with pytest.raises(NotFound):
                    uow.customers.get_by_external_ref(partner.id, ref)
                uow.commit()

    def test_a_new_customer_in_the_unit_of_work_is_not_another_partners(self, store: Store) -> None:
        """Tenant isolation holds for a new customer before anything is
        written: another partner does not get it by its id."""
        partner, _ = self.partner_with_customer(store)
        other = self.store_partner(store, _partner("Contoso"))
        with store.unit_of_work() as uow:
            new = uow.customers.save(_customer(partner, "Initech"))
            with pytest.raises(NotFound):
                uow.customers.get(other.id, new.id)
            assert uow.customers.get(partner.id, new.id) == new

    # listing

    def _catalog(self, store: Store) -> tuple[Partner, list[Customer]]:
        partner = self.store_partner(store, _partner())
        vip, late = (t.id for t in partner.tags)
        customers = [
            _customer(partner, "alpha", tags=[vip]),
            _customer(partner, "Bravo"),
            _customer(partner, "charlie", tags=[vip, late]),
            _customer(partner, "Delta", status=CustomerStatus.ARCHIVED, tags=[vip]),
            _customer(partner, "echo"),
            _customer(partner, "Foxtrot", tags=[late]),
            _customer(partner, "golf", tags=[vip]),
        ]
        return partner, self.store_customers(store, *customers)

    def test_list_orders_by_company_case_insensitively_then_id(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        saved = self.store_customers(
            store,
            *(
                _customer(partner, name)
                for name in [
                    "Zebra",
                    "Ärzte",
                    "acme",
                    "ACME",
                    "Acme",
                    "Straße A",
                    "STRASSE Z",
                    "10 Downing",
                    "Ωmega",
                    "émile",
                    "Émile",
                ]
            ),
        )
        with store.unit_of_work() as uow:
            page = uow.customers.list(partner.id)
        assert _ids(page) == _in_order(saved)
        assert (page.has_next_page, page.has_previous_page) == (False, False)

    def test_list_filters_by_status_tag_and_name_prefix(self, store: Store) -> None:
        partner, saved = self._catalog(store)
        vip, late = (t.id for t in partner.tags)
        by_name = {c.company: c.id for c in saved}
        with store.unit_of_work() as uow:

            def names(**filters: Any) -> list[str]:
                ids = _ids(uow.customers.list(partner.id, **filters))
                return [name for name, id_ in by_name.items() if id_ in ids]

            assert names() == list(by_name)
            assert names(status=CustomerStatus.ARCHIVED) == ["Delta"]
            assert "Delta" not in names(status=CustomerStatus.ACTIVE)
            assert names(tag=vip) == ["alpha", "charlie", "Delta", "golf"]
            assert names(tag=late, status=CustomerStatus.ACTIVE) == ["charlie", "Foxtrot"]
            assert names(tag=TagId.new()) == []
            assert names(name_prefix="") == list(by_name)
            assert names(name_prefix="F") == ["Foxtrot"]
            assert names(name_prefix="CH") == ["charlie"]
            assert names(name_prefix="de", status=CustomerStatus.ACTIVE) == []
            assert names(name_prefix="alphabet") == []

    @pytest.mark.parametrize(
        ("company", "prefix", "next_one"),
        [
            ("\U0010ffff Corp", "\U0010ffff", "\U0010ffff\U0010ffff"),
            # The next code point is a surrogate, which no store holds.
            ("a\ud7ff b", "a\ud7ff", "a\ue000"),
            ("a\ud7ff b", "a\ud7ff", "\U0010ffff\U0010ffff"),
            ("zz", "z", "\U0010ffff\U0010ffff"),
            ("a\U0010fffe b", "a\U0010fffe", "a\U0010ffff"),
        ],
    )
    def test_name_prefixes_at_the_end_of_unicode(
        self, store: Store, company: str, prefix: str, next_one: str
    ) -> None:
        """A prefix whose last character is the last code point, or comes
        just before the surrogates, finds what starts with it and nothing
        after it."""
        partner = self.store_partner(store, _partner())
        saved = self.store_customers(
            store, _customer(partner, company), _customer(partner, next_one)
        )
        with store.unit_of_work() as uow:
            found = uow.customers.list(partner.id, name_prefix=prefix)
        assert _ids(found) == _in_order([c for c in saved if c.company.startswith(prefix)])

    def test_name_prefix_is_literal_and_case_folded(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        saved = self.store_customers(
            store,
            *(
                _customer(partner, name)
                # "A_C" is the first name past every one that starts "a_b".
                for name in [
                    "100% Cotton",
                    "1000 Pines",
                    "a_b Corp",
                    "axb Corp",
                    "A_C",
                    "Straße AG",
                ]
            ),
        )
        by_name = {c.company: c.id for c in saved}
        with store.unit_of_work() as uow:

            def names(prefix: str) -> list[str]:
                ids = _ids(uow.customers.list(partner.id, name_prefix=prefix))
                return [name for name, id_ in by_name.items() if id_ in ids]

            assert names("100%") == ["100% Cotton"]
            assert names("a_b") == ["a_b Corp"]
            assert names("STRASS") == ["Straße AG"]
            assert names("straße ag") == ["Straße AG"]

    def test_list_is_scoped_to_the_partner(self, store: Store) -> None:
        self._catalog(store)
        other = self.store_partner(store, _partner("Contoso"))
        (theirs,) = self.store_customers(store, _customer(other))
        with store.unit_of_work() as uow:
            assert uow.customers.list(other.id).items == (theirs,)
            assert uow.customers.list(PartnerId.new()).items == ()

    def test_another_partners_customers_in_the_unit_of_work_stay_theirs(self, store: Store) -> None:
        """A unit of work that saves customers of several partners (a sync
        job, say) answers each partner's queries with that partner's alone,
        before the commit as after it."""
        partner = self.store_partner(store, _partner(syncs=_SYNCED))
        other = self.store_partner(store, _partner("Contoso", syncs=_SYNCED))
        ref = ExternalRef("xero", "1")
        with store.unit_of_work() as uow:
            theirs = uow.customers.save(_customer(other, ref=ref))
            assert uow.customers.list(partner.id).items == ()
            assert uow.customers.with_user(partner.id, "ann@globex.example") == []
            with pytest.raises(NotFound):
                uow.customers.get_by_external_ref(partner.id, ref)
            with pytest.raises(NotFound):
                uow.customers.get(partner.id, theirs.id)
            mine = uow.customers.save(_customer(partner, "Initech", ref=ref))
            for _ in range(2):  # in the unit of work, then committed
                assert uow.customers.list(partner.id).items == (mine,)
                assert uow.customers.list(other.id).items == (theirs,)
                assert uow.customers.with_user(partner.id, "ann@globex.example") == [mine]
                assert uow.customers.get_by_external_ref(partner.id, ref) == mine
                assert uow.customers.get_by_external_ref(other.id, ref) == theirs
                uow.commit()

    def test_pages_forwards(self, store: Store) -> None:
        partner, saved = self._catalog(store)
        order = _in_order(saved)
        with store.unit_of_work() as uow:
            first = uow.customers.list(partner.id, limit=3)
            assert _ids(first) == order[:3]
            assert (first.has_previous_page, first.has_next_page) == (False, True)
            second = uow.customers.list(partner.id, limit=3, after=first.end_cursor)
            assert _ids(second) == order[3:6]
            assert (second.has_previous_page, second.has_next_page) == (True, True)
            third = uow.customers.list(partner.id, limit=3, after=second.end_cursor)
            assert _ids(third) == order[6:]
            assert (third.has_previous_page, third.has_next_page) == (True, False)
            beyond = uow.customers.list(partner.id, limit=3, after=third.end_cursor)
            assert beyond.items == ()
            assert (beyond.start_cursor, beyond.end_cursor) == (None, None)
            assert (beyond.has_previous_page, beyond.has_next_page) == (True, False)

    def test_pages_backwards_in_ascending_order(self, store: Store) -> None:
        partner, saved = self._catalog(store)
        order = _in_order(saved)
        with store.unit_of_work() as uow:
            last = uow.customers.list(partner.id, limit=3, after=_cursor_before(uow, partner, 4))
            assert _ids(last) == order[4:]
            assert (last.has_previous_page, last.has_next_page) == (True, False)
            middle = uow.customers.list(partner.id, limit=3, before=last.start_cursor)
            assert _ids(middle) == order[1:4]
            assert (middle.has_previous_page, middle.has_next_page) == (True, True)
            first = uow.customers.list(partner.id, limit=3, before=middle.start_cursor)
            assert _ids(first) == order[:1]
            assert (first.has_previous_page, first.has_next_page) == (False, True)
            before_all = uow.customers.list(partner.id, limit=3, before=first.start_cursor)
            assert before_all.items == ()
            assert (before_all.start_cursor, before_all.end_cursor) == (None, None)
            assert (before_all.has_previous_page, before_all.has_next_page) == (False, True)

    def test_pages_through_its_own_saves_and_the_stored_rows_as_one_listing(
        self, store: Store
    ) -> None:
        """A unit of work pages through the customers it saved (new, or
        moved by a change of name) and the stored ones as one listing, both
        ways, from the cursor of a row of either kind."""
        partner, saved = self._catalog(store)
        with store.unit_of_work() as uow:
            moved = uow.customers.save(saved[1].update_details(company="delta two"))
            added = [uow.customers.save(_customer(partner, name)) for name in ("Beta", "echo")]
            order = _in_order([*(c for c in saved if c.id != moved.id), moved, *added])
            cursors = []
            page = uow.customers.list(partner.id, limit=1)
            while page.items:
                cursors.append(page.start_cursor)
                page = uow.customers.list(partner.id, limit=1, after=page.end_cursor)
            assert len(cursors) == len(order)
            for index, cursor in enumerate(cursors):
                ahead = uow.customers.list(partner.id, limit=2, after=cursor)
                assert _ids(ahead) == order[index + 1 : index + 3]
                assert (ahead.has_previous_page, ahead.has_next_page) == (
                    True,
                    index + 3 < len(order),
                )
                back = uow.customers.list(partner.id, limit=2, before=cursor)
                assert _ids(back) == order[max(0, index - 2) : index]
                assert (back.has_previous_page, back.has_next_page) == (index > 2, True)

    def test_pages_of_one_name_go_by_id_both_ways(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        tied = [
            attrs.evolve(_customer(partner, "Same Co"), id=customer_id)
            for customer_id in _tied_ids(CustomerId, 4)
        ]
        self.store_customers(store, *reversed(tied))
        order = _ids(tied)
        with store.unit_of_work() as uow:
            whole = uow.customers.list(partner.id)
            assert _ids(whole) == order
            ahead = uow.customers.list(partner.id, limit=2, after=whole.start_cursor)
            assert _ids(ahead) == order[1:3]
            back = uow.customers.list(partner.id, limit=2, before=whole.end_cursor)
            assert _ids(back) == order[1:3]
            assert (back.has_previous_page, back.has_next_page) == (True, True)

    def test_page_cursors_name_the_first_and_last_items(self, store: Store) -> None:
        partner, saved = self._catalog(store)
        order = _in_order(saved)
        with store.unit_of_work() as uow:
            page = uow.customers.list(partner.id, limit=2, after=_cursor_before(uow, partner, 2))
            assert _ids(page) == order[2:4]
            again = uow.customers.list(partner.id, limit=5, after=page.start_cursor)
            assert _ids(again)[0] == order[3]
            back = uow.customers.list(partner.id, limit=5, before=page.end_cursor)
            assert _ids(back)[-1] == order[2]

    def test_paging_with_filters(self, store: Store) -> None:
        partner, saved = self._catalog(store)
        vip = partner.tags[0].id
        wanted = _in_order([c for c in saved if vip in c.tags and c.is_active])
        with store.unit_of_work() as uow:
            seen: list[CustomerId] = []
            after: str | None = None
            while True:
                page = uow.customers.list(
                    partner.id, tag=vip, status=CustomerStatus.ACTIVE, limit=2, after=after
                )
                seen += _ids(page)
                assert page.has_previous_page is (after is not None)
                if not page.has_next_page:
                    break
                after = page.end_cursor
            assert seen == wanted
            back = uow.customers.list(
                partner.id, tag=vip, status=CustomerStatus.ACTIVE, limit=2, before=page.start_cursor
            )
            assert _ids(back) == wanted[-3:-1]

    def test_paging_is_stable_under_inserts(self, store: Store) -> None:
        partner, saved = self._catalog(store)
        order = _in_order(saved)
        with store.unit_of_work() as uow:
            first = uow.customers.list(partner.id, limit=3)
        # Customers arrive between two page requests: one sorting before the
        # cursor, one after it.
        early, late = self.store_customers(
            store, _customer(partner, "Aardvark"), _customer(partner, "Echo Park")
        )
        with store.unit_of_work() as uow:
            second = uow.customers.list(partner.id, limit=3, after=first.end_cursor)
            expected = [i for i in _in_order([*saved, late]) if i not in order[:3]][:3]
            assert _ids(second) == expected
            assert early.id not in _ids(second)
            back = uow.customers.list(partner.id, limit=3, before=second.start_cursor)
            assert _ids(back) == _in_order([*saved, early])[1:4]

    def test_a_cursor_outlives_its_customer_leaving_the_filter(self, store: Store) -> None:
        partner, saved = self._catalog(store)
        active = _in_order([c for c in saved if c.is_active])
        with store.unit_of_work() as uow:
            first = uow.customers.list(partner.id, status=CustomerStatus.ACTIVE, limit=2)
            last_seen = uow.customers.get(partner.id, _ids(first)[-1])
            uow.customers.save(last_seen.archive())
            uow.commit()
        with store.unit_of_work() as uow:
            rest = uow.customers.list(
                partner.id, status=CustomerStatus.ACTIVE, limit=10, after=first.end_cursor
            )
        assert _ids(rest) == active[2:]
        assert rest.has_previous_page

    def test_no_previous_page_when_nothing_matching_comes_before_the_cursor(
        self, store: Store
    ) -> None:
        """The cursor's customer left the filter, and no customer that is
        in it comes before the cursor: there is no previous page, though a
        cursor was given."""
        after, rest = self._paged_past_a_customer_that_left(store, "after")
        assert _ids(after) == rest
        assert (after.has_previous_page, after.has_next_page) == (False, False)

    def test_no_next_page_when_nothing_matching_comes_after_the_before_cursor(
        self, store: Store
    ) -> None:
        """Paging back from the last customer, which then left the filter:
        nothing in it comes at or after the cursor, so there is no next
        page, though customers come before it."""
        before, rest = self._paged_past_a_customer_that_left(store, "before")
        assert _ids(before) == rest
        assert (before.has_previous_page, before.has_next_page) == (False, False)

    def _paged_past_a_customer_that_left(
        self, store: Store, direction: str
    ) -> tuple[Page[Customer], list[CustomerId]]:
        """The active customers listed ``after`` the first of three or
        ``before`` the last, once that one was archived; and the ids of the
        other two."""
        partner = self.store_partner(store, _partner())
        saved = self.store_customers(
            store, *(_customer(partner, name) for name in ("Alpha", "Bravo", "Charlie"))
        )
        edge = saved[0] if direction == "after" else saved[-1]
        with store.unit_of_work() as uow:
            page = uow.customers.list(partner.id, status=CustomerStatus.ACTIVE, limit=5)
            assert _ids(page) == [c.id for c in saved]
            cursor = page.start_cursor if direction == "after" else page.end_cursor
            uow.customers.save(edge.archive())
            uow.commit()
        after, before = (cursor, None) if direction == "after" else (None, cursor)
        with store.unit_of_work() as uow:
            found = uow.customers.list(
                partner.id, status=CustomerStatus.ACTIVE, limit=5, after=after, before=before
            )
        return found, [c.id for c in saved if c is not edge]

    def test_limit_defaults_to_100(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        saved = self.store_customers(
            store, *(_customer(partner, f"Company {n:03d}") for n in range(DEFAULT_PAGE_SIZE + 1))
        )
        with store.unit_of_work() as uow:
            page = uow.customers.list(partner.id)
            assert _ids(page) == _in_order(saved)[:DEFAULT_PAGE_SIZE]
            assert page.has_next_page
            rest = uow.customers.list(partner.id, after=page.end_cursor)
            assert _ids(rest) == _in_order(saved)[DEFAULT_PAGE_SIZE:]
            assert not rest.has_next_page

    @pytest.mark.parametrize("limit", [0, -1, MAX_PAGE_SIZE + 1, True, "5", 2.5, None])
    def test_list_refuses_a_bad_limit(self, store: Store, limit: Any) -> None:
        partner = self.store_partner(store, _partner())
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
            uow.customers.list(partner.id, limit=limit)
        assert caught.value.paths == ["limit"]

    def test_list_accepts_the_largest_limit(self, store: Store) -> None:
        partner, saved = self.partner_with_customer(store)
        with store.unit_of_work() as uow:
            assert uow.customers.list(partner.id, limit=MAX_PAGE_SIZE).items == (saved,)

    @pytest.mark.parametrize(
        ("after", "before", "path"),
        [
            ("not a cursor", None, "after"),
            (None, "%%%", "before"),
            ("W10", None, "after"),
            ("a", "b", "before"),
            ("WzEsMl0", None, "after"),
        ],
    )
    def test_list_refuses_bad_cursors(
        self, store: Store, after: str | None, before: str | None, path: str
    ) -> None:
        partner = self.store_partner(store, _partner())
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
            uow.customers.list(partner.id, after=after, before=before)
        assert caught.value.paths == [path]

    @pytest.mark.parametrize("path", ["after", "before"])
    def test_list_refuses_an_invoice_listings_cursor(self, store: Store, path: str) -> None:
        partner, customer = self.partner_with_customer(store)
        self.store_aggregates(store, _invoice(partner, customer))
        with store.unit_of_work() as uow:
            page: dict[str, Any] = {path: uow.invoices.list(partner.id).end_cursor}
            with pytest.raises(ValidationError) as caught:
                uow.customers.list(partner.id, **page)
        assert (caught.value.paths, caught.value.codes) == ([path], ["invalid_cursor"])

    @pytest.mark.parametrize(
        "parts",
        [
            ["zzz", "anything"],  # no listing
            ["customers", "zzz", "anything"],  # not a customer id
            ["customers", "zzz", "inv_1"],
            ["customers", "ZZZ", "cus_1"],  # not a case-folded name
            ["invoices", "2026-02-01 1001", "inv_1"],
        ],
    )
    def test_list_refuses_a_hand_made_cursor(self, store: Store, parts: list[str]) -> None:
        partner = self.store_partner(store, _partner())
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
            uow.customers.list(partner.id, after=_hand_made_cursor(parts))
        assert (caught.value.paths, caught.value.codes) == (["after"], ["invalid_cursor"])

    @pytest.mark.parametrize("path", ["after", "before"])
    def test_another_partners_cursor_gives_only_this_partners_rows(
        self, store: Store, path: str
    ) -> None:
        """A cursor names a place in the order, not a partner's rows: one
        from another partner's page (or made by hand in the same form) pages
        through this partner's customers only."""
        mine = self.store_partner(store, _partner())
        theirs = self.store_partner(store, _partner("Contoso MSP"))
        ours = ("Acme", "Globex", "Initech", "Umbrella")
        self.store_customers(store, *(_customer(mine, company) for company in ours))
        self.store_customers(store, *(_customer(theirs, c) for c in ("Bolt", "Hooli", "Zeta")))
        with store.unit_of_work() as uow:
            their_page = uow.customers.list(theirs.id, limit=2)
            cursor = their_page.end_cursor if path == "after" else their_page.start_cursor
            paging: dict[str, Any] = {path: cursor}
            page = uow.customers.list(mine.id, **paging)
        assert {customer.partner_id for customer in page} == {mine.id}
        expected = ["Initech", "Umbrella"] if path == "after" else ["Acme"]
        assert [customer.company for customer in page] == expected


def _hand_made_cursor(parts: list[str]) -> str:
    """A cursor encoded as a page encodes one, out of ``parts``."""
    raw = json.dumps(parts).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_before(uow: UnitOfWork, partner: Partner, index: int) -> str | None:
    """The cursor of the item just before position ``index`` of the full listing."""
    page = uow.customers.list(partner.id, limit=index)
    return page.end_cursor


# -- access requests ---------------------------------------------------------------


# Modest, as the round trips: the examples share the test's store, each with
# a new partner.
_PER_PARTNER = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.differing_executors,
    ],
)


def _recased(email: str, upper: Sequence[bool]) -> str:
    """``email`` with the letters ``upper`` marks in capitals."""
    flags = [*upper, *[False] * len(email)]
    return "".join(c.upper() if flag else c for c, flag in zip(email, flags, strict=False))


class AccessRequestRepositoryContract(_StoreFactory):
    """``uow.access_requests``: get, list, save."""

    def _stored(self, store: Store) -> tuple[Partner, AccessRequest]:
        partner = self.store_partner(store, _partner())
        request = AccessRequest.open(partner, email="Dee@globex.example", first_name="Dee")
        with store.unit_of_work() as uow:
            saved = uow.access_requests.save(request)
            uow.commit()
        return partner, saved

    def test_save_and_get(self, store: Store) -> None:
        partner, saved = self._stored(store)
        assert saved.version == 1
        with store.unit_of_work() as uow:
            got = uow.access_requests.get(partner.id, saved.id)
        assert got == saved
        assert to_dict(got) == to_dict(saved)

    def test_unknown_or_another_partners_request_is_not_found(self, store: Store) -> None:
        partner, saved = self._stored(store)
        other = self.store_partner(store, _partner("Contoso"))
        with store.unit_of_work() as uow:
            with pytest.raises(NotFound):
                uow.access_requests.get(other.id, saved.id)
            with pytest.raises(NotFound):
                uow.access_requests.get(partner.id, AccessRequestId.new())
            assert uow.access_requests.list(other.id) == []

    def test_resolving_updates_and_stale_copies_conflict(self, store: Store) -> None:
        partner, saved = self._stored(store)
        admin = partner.team[0]
        with store.unit_of_work() as uow:
            rejected = uow.access_requests.save(saved.reject(partner=partner, by=admin))
            uow.commit()
        assert rejected.version == 2
        with pytest.raises(ConcurrencyConflict):
            _commit(store, saved.reject(partner=partner, by=admin))
        with pytest.raises(ConcurrencyConflict):
            _commit(store, attrs.evolve(saved, version=0))
        with store.unit_of_work() as uow:
            assert uow.access_requests.get(partner.id, saved.id) == rejected

    def test_list_oldest_first_and_by_status(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        admin = partner.team[0]
        opened = [AccessRequest.open(partner, email=f"person{n}@globex.example") for n in range(4)]
        # Give them distinct times, saved out of order.
        start = opened[0].requested_at
        dated = [
            attrs.evolve(r, requested_at=start.replace(microsecond=0) + dt.timedelta(seconds=n))
            for n, r in enumerate(opened)
        ]
        with store.unit_of_work() as uow:
            for request in (dated[2], dated[0], dated[3], dated[1]):
                uow.access_requests.save(request)
            uow.access_requests.save(
                attrs.evolve(dated[1], version=1).reject(partner=partner, by=admin)
            )
            uow.commit()
        with store.unit_of_work() as uow:
            every = uow.access_requests.list(partner.id)
            pending = uow.access_requests.list(partner.id, status=AccessRequestStatus.PENDING)
            rejected = uow.access_requests.list(partner.id, status=AccessRequestStatus.REJECTED)
        assert [r.id for r in every] == [r.id for r in dated]
        assert [r.id for r in pending] == [dated[0].id, dated[2].id, dated[3].id]
        assert [r.id for r in rejected] == [dated[1].id]
        assert every[1].status is AccessRequestStatus.REJECTED
        assert every[1].version == 2

    def test_list_orders_equal_times_by_id(self, store: Store) -> None:
        """Ties by id, before the commit as after it; another partner's
        request saved in the same unit of work stays out."""
        partner = self.store_partner(store, _partner())
        other = self.store_partner(store, _partner("Contoso"))
        opened = AccessRequest.open(partner, email="dee@globex.example")
        # Each from its own email: one pending request per email and partner.
        tied = [
            attrs.evolve(opened, id=request_id, email=EmailAddress(f"dee{n}@globex.example"))
            for n, request_id in enumerate(_tied_ids(AccessRequestId, 4))
        ]
        with store.unit_of_work() as uow:
            uow.access_requests.save(AccessRequest.open(other, email="dee@globex.example"))
            saved = {
                r.id: uow.access_requests.save(r) for r in (tied[2], tied[0], tied[3], tied[1])
            }
            in_order = [saved[r.id] for r in tied]
            pending = AccessRequestStatus.PENDING
            for _ in range(2):  # in the unit of work, then committed
                assert uow.access_requests.list(partner.id) == in_order
                assert uow.access_requests.list(partner.id, status=pending) == in_order
                uow.commit()

    def test_list_sees_a_stored_request_saved_again_once(self, store: Store) -> None:
        """A request the unit of work resolves is listed once, as resolved,
        before the commit as after it: never its stored copy as well."""
        partner, saved = self._stored(store)
        with store.unit_of_work() as uow:
            read = uow.access_requests.get(partner.id, saved.id)
            rejected = uow.access_requests.save(read.reject(partner=partner, by=partner.team[0]))
            pending = AccessRequestStatus.PENDING
            for _ in range(2):  # in the unit of work, then committed
                assert uow.access_requests.list(partner.id) == [rejected]
                assert uow.access_requests.list(partner.id, status=pending) == []
                uow.commit()

    # the pending request of an email

    @_PER_PARTNER
    @given(
        local=st.from_regex(r"[a-z][a-z0-9]{0,11}", fullmatch=True),
        upper=st.lists(st.booleans(), max_size=30),
    )
    def test_pending_for_finds_the_partners_pending_request_of_an_email(
        self, store: Store, local: str, upper: list[bool]
    ) -> None:
        """``pending_for`` gives the partner's pending request of the email,
        asked in any case (as text or as an address), and ``None`` for an
        email without one, or for another partner: never the request of
        that other partner."""
        email = f"{local}@globex.example"
        asked = _recased(email, upper)
        partner = self.store_partner(store, _partner())
        other = self.store_partner(store, _partner("Contoso"))
        first, elsewhere = _commit(
            store,
            AccessRequest.open(partner, email=email),
            AccessRequest.open(other, email=f"x{email}"),
        )
        with store.unit_of_work() as uow:
            assert uow.access_requests.pending_for(partner.id, asked) == first
            assert uow.access_requests.pending_for(partner.id, EmailAddress(asked)) == first
            assert uow.access_requests.pending_for(partner.id, f"x{email}") is None
            assert uow.access_requests.pending_for(other.id, asked) is None
            assert uow.access_requests.pending_for(other.id, f"x{asked}") == elsewhere

    @pytest.mark.parametrize("resolution", ["approved", "rejected"])
    def test_pending_for_skips_a_resolved_request(self, store: Store, resolution: str) -> None:
        """A resolved request is not pending: ``pending_for`` gives ``None``,
        in the unit of work that resolves it as after its commit, and then
        the new request of the email, once it is saved."""
        partner, saved = self._stored(store)
        admin = partner.team[0]
        customer = self.store_customers(store, _created(partner))[0]
        with store.unit_of_work() as uow:
            assert uow.access_requests.pending_for(partner.id, "DEE@globex.example") == saved
            if resolution == "approved":
                resolved, joined = saved.add_to_customer(
                    customer, partner=partner, by=admin, last_name="Lee"
                )
                uow.customers.save(joined)
            else:
                resolved = saved.reject(partner=partner, by=admin)
            uow.access_requests.save(resolved)
            for _ in range(2):  # in the unit of work, then committed
                assert uow.access_requests.pending_for(partner.id, saved.email) is None
                uow.commit()
            again = AccessRequest.open(partner, email="dee@globex.example")
            again = uow.access_requests.save(again)
            assert uow.access_requests.pending_for(partner.id, saved.email) == again
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.access_requests.pending_for(partner.id, saved.email) == again
            assert uow.access_requests.get(partner.id, saved.id).status.value == resolution

    def test_pending_for_refuses_what_is_not_an_email(self, store: Store) -> None:
        partner, _ = self._stored(store)
        with store.unit_of_work() as uow:
            for email in ("not an email", "", 7):
                with pytest.raises(ValidationError) as caught:
                    uow.access_requests.pending_for(partner.id, email)  # type: ignore[arg-type]
                assert caught.value.paths == ["email"]

    # one pending request per email and partner, kept by the store

    @_PER_PARTNER
    @given(
        local=st.from_regex(r"[a-z][a-z0-9]{0,11}", fullmatch=True),
        upper=st.lists(st.booleans(), max_size=30),
    )
    def test_a_second_pending_request_of_an_email_is_refused_at_save(
        self, store: Store, local: str, upper: list[bool]
    ) -> None:
        """A pending request from an email (in any case) that another
        pending request of the partner holds is refused at save with
        ``ConcurrencyConflict``, whether that one is stored or saved in the
        same unit of work; nothing of it is written."""
        email = f"{local}@globex.example"
        asked = _recased(email, upper)
        partner = self.store_partner(store, _partner())
        (first,) = _commit(store, AccessRequest.open(partner, email=email))
        before = self.pending(store)
        second = AccessRequest.open(partner, email=asked)
        with store.unit_of_work() as uow:
            with pytest.raises(ConcurrencyConflict) as caught:
                uow.access_requests.save(second)
            uow.commit()
        assert (caught.value.kind, caught.value.key) == ("access request", first.email.key)
        assert f"an access request of {second.email} is already pending" in str(caught.value)
        assert self.pending(store) == before
        # Both in one unit of work: the first is stored, and only it.
        other = self.store_partner(store, _partner("Contoso"))
        with store.unit_of_work() as uow:
            kept = uow.access_requests.save(AccessRequest.open(other, email=email))
            with pytest.raises(ConcurrencyConflict):
                uow.access_requests.save(AccessRequest.open(other, email=asked))
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.access_requests.list(partner.id) == [first]
            assert uow.access_requests.list(other.id) == [kept]

    @pytest.mark.parametrize("resolution", ["approved", "rejected"])
    def test_a_resolved_request_lets_the_email_ask_again(
        self, store: Store, resolution: str
    ) -> None:
        """Once the pending request is resolved (approved or rejected), a
        new one from the email is stored: in a later unit of work, or in
        the one that resolves it."""
        for together in (False, True):
            partner, customer = self.partner_with_customer(store)
            admin = partner.team[0]
            (request,) = _commit(
                store,
                AccessRequest.open(
                    partner, email="dee@globex.example", first_name="Dee", last_name="Lee"
                ),
            )
            resolved: list[Any] = (
                list(request.add_to_customer(customer, partner=partner, by=admin))
                if resolution == "approved"
                else [request.reject(partner=partner, by=admin)]
            )
            again = AccessRequest.open(partner, email="DEE@globex.example")
            if together:
                stored = _commit(store, *resolved, again)[-1]
            else:
                _commit(store, *resolved)
                (stored,) = _commit(store, again)
            with store.unit_of_work() as uow:
                pending = uow.access_requests.list(partner.id, status=AccessRequestStatus.PENDING)
                assert pending == [stored]
                assert uow.access_requests.get(partner.id, request.id).status.value == resolution

    def test_another_partner_may_hold_a_pending_request_of_the_email(self, store: Store) -> None:
        one = self.store_partner(store, _partner())
        two = self.store_partner(store, _partner("Contoso"))
        (first,) = _commit(store, AccessRequest.open(one, email="dee@globex.example"))
        (second,) = _commit(store, AccessRequest.open(two, email="Dee@globex.example"))
        with store.unit_of_work() as uow:
            assert uow.access_requests.list(one.id) == [first]
            assert uow.access_requests.list(two.id) == [second]

    def test_two_units_of_work_racing_store_one_request_of_an_email(self, store: Store) -> None:
        """Two units of work, in threads, each save a request from one email
        (none pending when each saves it) and commit: exactly one commits;
        the other's commit raises ``ConcurrencyConflict`` and writes
        nothing."""
        partner = self.store_partner(store, _partner())
        before = self.pending(store)
        barrier = threading.Barrier(2, timeout=_JOIN_TIMEOUT)
        outcome: dict[str, str] = {}
        lost: list[ConcurrencyConflict] = []

        def asker(email: str) -> Callable[[], None]:
            def run() -> None:
                try:
                    with store.unit_of_work() as uow:
                        uow.access_requests.save(AccessRequest.open(partner, email=email))
                        barrier.wait()  # both saved, neither committed
                        uow.commit()
                    outcome[email] = "won"
                except ConcurrencyConflict as error:
                    outcome[email] = "lost"
                    lost.append(error)

            return run

        emails = ["dee@globex.example", "DEE@globex.example"]
        _run_threads([asker(email) for email in emails])
        assert sorted(outcome.values()) == ["lost", "won"]
        assert [(e.kind, e.key) for e in lost] == [("access request", "dee@globex.example")]
        (winner,) = (e for e, o in outcome.items() if o == "won")
        with store.unit_of_work() as uow:
            (stored,) = uow.access_requests.list(partner.id)
        assert str(stored.email) == str(EmailAddress(winner))
        assert self.pending(store) == before

    # who resolves: the partner's team as it stands at commit (C9)

    def _with_sub_admin(self, store: Store) -> tuple[Partner, AccessRequest, TeamMember]:
        partner, request = self._stored(store)
        partner = partner.add_team_member(
            name="Sam Sub", email="sam@northwind.example", role=Role.SUB_ADMIN
        )
        (partner,) = _commit(store, attrs.evolve(partner, version=1))
        return partner, request, partner.team[-1]

    @pytest.mark.parametrize("saves", [1, 2])
    def test_a_resolver_demoted_or_removed_meanwhile_is_refused(
        self, store: Store, saves: int
    ) -> None:
        """C9: a request resolved by a Sub-Admin whom another unit of work
        demoted or removed after this one read the partner is refused at
        commit, and nothing is written, saved once or again in the unit of
        work; resolved by someone still allowed, it is stored."""
        partner, request, sam = self._with_sub_admin(store)
        admin = partner.team[0]
        changes: list[Callable[[Partner], Partner]] = [
            lambda p: p.change_role(sam, Role.MEMBER, by=admin),
            lambda p: p.remove_team_member(sam, by=admin),
        ]
        for change in changes:
            with store.unit_of_work() as uow:
                read = uow.partners.get(partner.id)
                resolved = uow.access_requests.get(partner.id, request.id).reject(
                    partner=read, by=sam
                )
                (changed,) = _commit(store, change(read))
                before = self.pending(store)

                def resolve(resolved: AccessRequest) -> None:
                    for _ in range(saves):
                        resolved = uow.access_requests.save(resolved)
                    uow.commit()  # adapters that find it at save never get here

                with pytest.raises(InvariantViolation) as caught:
                    resolve(resolved)
            assert (caught.value.rule, caught.value.path) == ("C9", "resolved_by")
            assert self.pending(store) == before
            with store.unit_of_work() as uow:
                assert uow.access_requests.get(partner.id, request.id) == request
            # Put Sam back for the next change.
            _commit(store, attrs.evolve(partner, version=changed.version))
        (rejected,) = _commit(store, request.reject(partner=partner, by=admin))
        assert rejected.status is AccessRequestStatus.REJECTED

    def test_a_request_of_a_partner_not_stored_cannot_be_resolved(self, store: Store) -> None:
        """C9: with no partner stored, no team may resolve its requests."""
        ghost = _partner("Ghost IT")
        (request,) = _commit(store, AccessRequest.open(ghost, email="eve@initech.example"))
        with pytest.raises(InvariantViolation) as caught:
            _commit(store, request.reject(partner=ghost, by=ghost.team[0]))
        assert (caught.value.rule, caught.value.path) == ("C9", "resolved_by")
        with store.unit_of_work() as uow:
            assert uow.access_requests.list(ghost.id) == [request]

    def test_the_team_at_commit_counts_whatever_the_order_of_saves(self, store: Store) -> None:
        """C9 in one unit of work: a request resolved by a Sub-Admin whom the
        same unit of work demotes is refused, the partner saved first or
        last; one resolved before the demotion stays resolved."""
        partner, request, sam = self._with_sub_admin(store)
        admin = partner.team[0]
        demoted = partner.change_role(sam, Role.READ_ONLY, by=admin)
        resolved = request.reject(partner=partner, by=sam)
        for order in ((demoted, resolved), (resolved, demoted)):
            with pytest.raises(InvariantViolation) as caught:
                _commit(store, *order)
            assert caught.value.rule == "C9"
        with store.unit_of_work() as uow:
            assert uow.access_requests.get(partner.id, request.id) == request
            assert uow.partners.get(partner.id) == partner
        (rejected,) = _commit(store, resolved)
        _commit(store, demoted)
        with store.unit_of_work() as uow:
            assert uow.access_requests.get(partner.id, request.id) == rejected
            assert uow.partners.get(partner.id).member(sam.id).role is Role.READ_ONLY
        # Resolved, it stays so: saved again (an import, a copy), it is not
        # checked against its resolver's role at the time.
        (again,) = _commit(store, rejected)
        assert again.version == rejected.version + 1

    def test_of_several_requests_resolved_by_someone_not_allowed_the_smallest_id_is_named(
        self, store: Store
    ) -> None:
        """C9: of several requests resolved by a Sub-Admin demoted meanwhile,
        every adapter names the one with the smallest id, whatever the order
        of the saves; nothing is written."""
        partner, _, sam = self._with_sub_admin(store)
        requests = _commit(
            store,
            *(
                attrs.evolve(
                    AccessRequest.open(partner, email=f"{name}@initech.example", first_name=name),
                    id=request_id,
                )
                for name, request_id in zip(
                    ("eve", "fay"), _tied_ids(AccessRequestId, 2), strict=True
                )
            ),
        )
        resolved = [request.reject(partner=partner, by=sam) for request in requests]
        _commit(store, partner.change_role(sam, Role.MEMBER, by=partner.team[0]))
        for order in (resolved, resolved[::-1]):
            with pytest.raises(InvariantViolation) as caught:
                _commit(store, *order)
            assert (caught.value.rule, caught.value.path) == ("C9", "resolved_by")
            assert f"access request {requests[0].id} " in str(caught.value)
        with store.unit_of_work() as uow:
            assert [uow.access_requests.get(partner.id, r.id) for r in requests] == requests

    def test_a_resolved_request_keeps_its_resolution(self, store: Store) -> None:
        """A request is resolved once (``access-request-resolved-once``):
        once stored approved or rejected, a save that changes its status,
        customer, resolver or time of resolution is refused, and nothing of
        its unit of work is written (a rejected request saved pending would
        be approved; one rewritten as resolved by a Member would escape
        C9). Each resolution the commands make saves."""
        partner, request, sam = self._with_sub_admin(store)
        admin = partner.team[0]
        (partner,) = _commit(
            store,
            partner.add_team_member(name="Mo", email="mo@northwind.example", role=Role.MEMBER),
        )
        mo = partner.team[-1]
        (customer,) = self.store_customers(store, _customer(partner))
        eve, fay = _commit(
            store,
            AccessRequest.open(
                partner, email="eve@globex.example", first_name="Eve", last_name="E"
            ),
            AccessRequest.open(
                partner, email="fay@initech.example", first_name="Fay", last_name="F"
            ),
        )
        (rejected,) = _commit(store, request.reject(partner=partner, by=admin))
        approved, customer = _commit(store, *eve.add_to_customer(customer, partner=partner, by=sam))
        draft = fay.start_customer(partner=partner, by=admin)
        made = draft.enter_details(company="Initech", address=_ADDRESS).create()
        made, approved_new = _commit(
            store, made, fay.approve_new_customer(made, partner=partner, by=admin)
        )
        assert approved.status is approved_new.status is AccessRequestStatus.APPROVED
        assert rejected.resolved_at is not None
        pending = AccessRequestStatus.PENDING
        at_fault = [
            (
                rejected,
                attrs.evolve(rejected, status=pending, resolved_by=None, resolved_at=None),
                "status",
            ),
            (
                rejected,
                attrs.evolve(
                    rejected, status=AccessRequestStatus.APPROVED, customer_id=customer.id
                ),
                "status",
            ),
            (rejected, attrs.evolve(rejected, resolved_by=mo.id), "resolved_by"),
            (
                rejected,
                attrs.evolve(rejected, resolved_at=rejected.resolved_at + dt.timedelta(hours=1)),
                "resolved_at",
            ),
            (
                approved,
                attrs.evolve(
                    approved,
                    status=AccessRequestStatus.REJECTED,
                    customer_id=None,
                    resolved_by=mo.id,
                ),
                "status",
            ),
            (approved, attrs.evolve(approved, customer_id=made.id), "customer_id"),
            (approved_new, attrs.evolve(approved_new, resolved_by=sam.id), "resolved_by"),
        ]
        for stored, changed, path in at_fault:
            _refused_history(store, stored, changed, "access-request-resolved-once", path)
        with store.unit_of_work() as uow:
            assert uow.customers.get(partner.id, customer.id) == customer
            assert not uow.customers.get(partner.id, customer.id).has_user(request.email)


# -- unit of work ------------------------------------------------------------------


class UnitOfWorkContract(_StoreFactory):
    """Transactions: nothing without commit, and all or nothing."""

    bulk_saves: typing.ClassVar[int] = 2_001
    """How many saves a bulk test makes in one unit of work: more than a
    store may keep in memory before it writes them (the SQL stores write
    every 2,000). Set it above the batch of an adapter that writes in
    larger ones."""

    def break_next_commit(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make the next commit on ``store`` fail half way through its writes.

        Override it to patch (with ``monkeypatch``) whatever the adapter calls
        between writing the aggregates and writing their events, so that it
        raises :class:`InjectedFailure` once. By default the test that uses it
        is skipped.
        """
        pytest.skip(f"{type(self).__name__} does not override break_next_commit()")

    def test_nothing_is_written_without_commit(self, store: Store) -> None:
        partner = _partner()
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            uow.customers.save(_created(partner))
        with store.unit_of_work() as uow, pytest.raises(NotFound):
            uow.partners.get(partner.id)
        assert self.pending(store) == []

    def test_an_exception_inside_the_block_writes_nothing(self, store: Store) -> None:
        partner = _partner()

        class Boom(Exception):
            pass

        def work() -> None:
            with store.unit_of_work() as uow:
                uow.partners.save(partner)
                uow.customers.save(_created(partner))
                raise Boom

        with pytest.raises(Boom):
            work()
        with store.unit_of_work() as uow, pytest.raises(NotFound):
            uow.partners.get(partner.id)
        assert self.pending(store) == []

    def test_rollback_forgets_what_was_saved(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        with store.unit_of_work() as uow:
            uow.customers.save(_created(partner))
            uow.rollback()
            uow.rollback()
            assert uow.customers.list(partner.id).items == ()
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.customers.list(partner.id).items == ()
        assert self.pending(store) == []

    def test_the_unit_of_work_stays_usable_after_commit(self, store: Store) -> None:
        partner = _partner()
        with store.unit_of_work() as uow:
            saved = uow.partners.save(partner)
            uow.commit()
            customer = uow.customers.save(_customer(saved))
            uow.commit()
            dropped = uow.customers.save(_customer(saved, "Dropped"))
        with store.unit_of_work() as uow:
            assert uow.partners.get(partner.id) == saved
            assert uow.customers.get(partner.id, customer.id) == customer
            with pytest.raises(NotFound):
                uow.customers.get(partner.id, dropped.id)

    def test_a_commit_checks_the_saves_since_the_last_commit_only(self, store: Store) -> None:
        """A unit of work used on after a commit checks the rules between
        aggregates at its next commit for what it saved since: a customer
        added by hand, its invoice and payment and a resolved request,
        committed, stay fine as the partner then syncs its customers and
        demotes the resolver, and the customer is archived."""
        partner = _partner().add_team_member(
            name="Sam Sub", email="sam@northwind.example", role=Role.SUB_ADMIN
        )
        admin, sam = partner.team[0], partner.team[-1]
        partner, request = _commit(
            store, partner, AccessRequest.open(partner, email="dee@globex.example")
        )
        with store.unit_of_work() as uow:
            customer = uow.customers.save(_customer(partner))
            payment, touched = pay_invoices(
                partner,
                customer,
                [_invoice(partner, customer)],
                payer=customer.users[0],
                method="ach",
                idempotency_key="key-1",
                at=_at(2),
            )
            (invoice,) = [uow.invoices.save(i) for i in touched]
            payment = uow.payments.save(payment)
            resolved = uow.access_requests.save(request.reject(partner=partner, by=sam))
            uow.commit()
            changed = uow.partners.save(
                partner.connect_integration("halopsa", syncs_customers=True).change_role(
                    sam, Role.MEMBER, by=admin
                )
            )
            archived = uow.customers.save(customer.archive())
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.partners.get(partner.id) == changed
            assert uow.customers.get(partner.id, customer.id) == archived
            assert uow.invoices.get(partner.id, invoice.id) == invoice
            assert uow.payments.get(partner.id, payment.id) == payment
            assert uow.access_requests.get(partner.id, request.id) == resolved

    def test_reads_inside_the_block_see_its_own_saves(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        with store.unit_of_work() as uow:
            customer = uow.customers.save(_customer(partner, ref=ExternalRef("xero", "1")))
            other = uow.customers.save(_customer(partner, "Initech", emails=["bo@initech.example"]))
            assert uow.customers.get(partner.id, customer.id) == customer
            assert uow.customers.list(partner.id).items == (customer, other)
            assert uow.customers.with_user(partner.id, "ann@globex.example") == [customer]
            assert uow.customers.accounts_of("ann@globex.example") == [customer]
            assert uow.customers.get_by_external_ref(partner.id, ExternalRef("xero", "1")) == (
                customer
            )

    def test_uncommitted_saves_are_invisible_to_other_units_of_work(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        with store.unit_of_work() as writer:
            customer = writer.customers.save(_customer(partner))
            with store.unit_of_work() as reader:
                with pytest.raises(NotFound):
                    reader.customers.get(partner.id, customer.id)
                assert reader.customers.list(partner.id).items == ()
            writer.commit()
        assert self.read_customer(store, partner.id, customer.id) == customer

    def test_saving_twice_in_one_unit_of_work(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        created = _created(partner)
        with store.unit_of_work() as uow:
            first = uow.customers.save(created)
            changed = first.add_user(first_name="Bo", last_name="Li", email="bo@globex.example")
            second = uow.customers.save(changed)
            assert (first.version, second.version) == (1, 2)
            assert uow.customers.get(partner.id, created.id) == second
            uow.commit()
        assert self.read_customer(store, partner.id, created.id) == second
        assert [m.event for m in self.pending(store)] == [*created.events, *changed.events]

    @pytest.mark.parametrize("saved_before", ["not stored", "stored"])
    @pytest.mark.parametrize("saves_between", ["none", "bulk"])
    def test_a_save_as_new_of_an_id_it_saved_already_is_refused_alone(
        self, store: Store, saved_before: str, saves_between: str
    ) -> None:
        """A save as new (version 0) of an id that the unit of work saved
        already (new, or over a stored row) is refused at that save, in the
        words of an id already stored, however many saves came between (a
        store that writes its saves in batches has written that one by
        then); its other saves still commit."""
        partner = self.store_partner(store, _partner())
        first = _customer(partner)
        if saved_before == "stored":
            (first,) = self.store_customers(store, first)
        count = self.bulk_saves if saves_between == "bulk" else 0
        others = [_customer(partner, f"Company {n}") for n in range(count)]
        with store.unit_of_work() as uow:
            saved = uow.customers.save(first)
            stored_others = [uow.customers.save(c) for c in others]
            again = attrs.evolve(saved, version=0, company="Twice")
            with pytest.raises(ConcurrencyConflict) as caught:
                uow.customers.save(again)
            uow.commit()
        assert (caught.value.kind, caught.value.key) == ("customer", str(first.id))
        assert f"with id {str(first.id)!r} is already stored; nothing was written" in str(
            caught.value
        )
        with store.unit_of_work() as uow:
            assert uow.customers.get(partner.id, first.id) == saved
            for customer in stored_others[:: max(1, count // 10)]:
                assert uow.customers.get(partner.id, customer.id) == customer

    def test_a_stale_copy_within_one_unit_of_work_conflicts(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        created = _created(partner)

        def work() -> None:
            with store.unit_of_work() as uow:
                first = uow.customers.save(created)
                uow.customers.save(
                    first.add_user(first_name="Bo", last_name="Li", email="bo@x.example")
                )
                uow.customers.save(first.archive())  # the copy read before the second save
                uow.commit()  # pragma: no cover - for adapters that find it only here

        with pytest.raises(ConcurrencyConflict):
            work()
        with store.unit_of_work() as uow:
            assert uow.customers.list(partner.id).items == ()
        assert self.pending(store) == []

    def test_a_conflict_in_the_second_save_writes_nothing(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        one, two = self.store_customers(store, _customer(partner), _customer(partner, "Acme"))
        (two_now,) = self.store_customers(store, two.archive())
        before = self.pending(store)
        with pytest.raises(ConcurrencyConflict):
            _commit(
                store,
                one.add_user(first_name="Bo", last_name="Li", email="bo@x.example"),
                _created(partner, "New"),
                two.set_card_fee_exception("partner"),
            )
        with store.unit_of_work() as uow:
            assert uow.customers.get(partner.id, one.id) == one
            assert uow.customers.get(partner.id, two.id) == two_now
            assert _ids(uow.customers.list(partner.id)) == _in_order([one, two])
        assert self.pending(store) == before

    def test_a_taken_ref_in_the_second_save_writes_nothing(self, store: Store) -> None:
        partner = self.store_partner(store, _partner(syncs=_SYNCED))
        ref = ExternalRef("connectwise", "4711")
        (one,) = self.store_customers(store, _customer(partner, ref=ref))
        with pytest.raises(ConcurrencyConflict):
            _commit(
                store,
                one.add_user(first_name="Bo", last_name="Li", email="bo@x.example"),
                _customer(partner, "Twin", ref=ref),
            )
        with store.unit_of_work() as uow:
            assert uow.customers.list(partner.id).items == (one,)
        assert self.pending(store) == []

    @pytest.mark.parametrize(
        "fault",
        [
            "stale version",
            "version never stored",
            "id taken",
            "another partner's id",
            "fixed field changed",
            "customer ref taken",
            "invoice number taken",
            "invoice ref taken",
            "idempotency key taken",
        ],
    )
    def test_a_refused_save_leaves_the_unit_of_work_as_it_was(
        self, store: Store, fault: str
    ) -> None:
        """A save refused by its checks (``ConcurrencyConflict`` or
        ``InvariantViolation``) refuses that save alone: reads do not see it,
        and the block's other saves, before and after it, still commit. An
        adapter that finds the fault only at commit refuses the commit, and
        writes nothing."""
        partner = self.store_partner(store, _partner(syncs=("xero",)))
        other = self.store_partner(store, _partner("Contoso"))
        ref = ExternalRef("xero", "1")
        (held,) = self.store_customers(store, _customer(partner, ref=ref))
        invoice, spare = self.store_aggregates(
            store, _invoice(partner, held, "7", ref=ref), _invoice(partner, held, "8")
        )
        payment, _ = PaymentRepositoryContract._pay(partner, held, [invoice], "key-1")
        (payment,) = self.store_aggregates(store, payment)
        refused: Any
        if fault == "stale version":
            stale = held
            (held,) = self.store_customers(
                store, held.add_user(first_name="Bo", last_name="Li", email="bo@globex.example")
            )
            refused = stale.add_user(first_name="Cy", last_name="Ng", email="cy@globex.example")
        elif fault == "version never stored":
            refused = attrs.evolve(held, version=held.version + 2, company="Ahead")
        elif fault == "id taken":
            refused = attrs.evolve(held, version=0, company="Impostor")
        elif fault == "another partner's id":
            refused = attrs.evolve(held, partner_id=other.id, company="Moved")
        elif fault == "fixed field changed":
            refused = attrs.evolve(held, external_ref=ExternalRef("xero", "2"))
        elif fault == "customer ref taken":
            refused = _customer(partner, "Twin", ref=ref)
        elif fault == "invoice number taken":
            refused = _invoice(partner, held, "7")
        elif fault == "invoice ref taken":
            refused = _invoice(partner, held, "9", ref=ref)
        else:
            refused, _ = PaymentRepositoryContract._pay(partner, held, [spare], "key-1")
        before = self.pending(store)
        first = Customer.from_sync(
            partner,
            external_ref=ExternalRef("xero", "3"),
            company="Initech",
            address=_ADDRESS,
            users=[{"first_name": "Bo", "last_name": "Li", "email": "bo@initech.example"}],
        )
        second = _customer(partner, "Acme", ref=ExternalRef("xero", "4"))
        with store.unit_of_work() as uow:
            kept = [uow.customers.save(first)]
            try:
                _save(uow, refused)
                refused_at_save = False
            except (ConcurrencyConflict, InvariantViolation):
                refused_at_save = True
            if refused_at_save:
                kept.append(uow.customers.save(second))
                # What the refused save would have changed reads as stored.
                assert uow.customers.get(partner.id, held.id) == held
                assert uow.customers.get_by_external_ref(partner.id, ref) == held
                assert uow.customers.list(other.id).items == ()
                assert uow.invoices.get_by_number(partner.id, "7") == invoice
                assert uow.invoices.get_by_external_ref(partner.id, ref) == invoice
                assert uow.payments.get_by_idempotency_key(partner.id, "key-1") == payment
                if refused.id != held.id:
                    with pytest.raises(NotFound):
                        _repository(uow, refused).get(partner.id, refused.id)
                uow.commit()
            else:  # found at commit: nothing of the block is written
                with pytest.raises((ConcurrencyConflict, InvariantViolation)):
                    uow.commit()
                kept = []
        with store.unit_of_work() as uow:
            assert uow.customers.get(partner.id, held.id) == held
            assert _ids(uow.customers.list(partner.id)) == _in_order([held, *kept])
            assert uow.invoices.get_by_number(partner.id, "7") == invoice
            assert uow.payments.get_by_idempotency_key(partner.id, "key-1") == payment
        assert [m.event for m in self.pending(store)] == [
            *(m.event for m in before),
            *(first.events if kept else ()),
        ]

    def test_a_failure_half_way_through_a_commit_writes_nothing(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        partner = self.store_partner(store, _partner())
        (one,) = self.store_customers(store, _customer(partner))
        self.break_next_commit(store, monkeypatch)
        with pytest.raises(InjectedFailure):
            _commit(
                store,
                partner.add_tag(name="Net 30", colour="#0000AA"),
                one.add_user(first_name="Bo", last_name="Li", email="bo@x.example"),
                _created(partner, "New"),
            )
        with store.unit_of_work() as uow:
            assert uow.partners.get(partner.id) == partner
            assert uow.customers.list(partner.id).items == (one,)
        assert self.pending(store) == []
        # The store is still usable afterwards.
        (two,) = self.store_customers(store, _created(partner, "New"))
        assert self.read_customer(store, partner.id, two.id) == two

    def test_a_failed_commit_forgets_the_blocks_saves(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Committing again in the same block writes nothing of what failed.
        partner = self.store_partner(store, _partner())
        (one,) = self.store_customers(store, _customer(partner))
        self.break_next_commit(store, monkeypatch)
        with store.unit_of_work() as uow:
            _save(uow, partner.add_tag(name="Net 30", colour="#0000AA"))
            _save(uow, one.add_user(first_name="Bo", last_name="Li", email="bo@x.example"))
            with pytest.raises(InjectedFailure):
                uow.commit()
            uow.commit()
            assert uow.partners.get(partner.id) == partner
        assert self.read_customer(store, partner.id, one.id) == one
        assert self.pending(store) == []

    def test_a_failed_commit_ends_the_claims_of_its_unit_of_work(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # What it listed is listed elsewhere again, even while its error
        # (and with it what the failed commit held) is kept.
        partner = self.store_partner(store, _partner())
        (customer,) = self.store_customers(store, _created(partner))
        every = self.pending(store)
        assert every
        self.break_next_commit(store, monkeypatch)
        with store.unit_of_work() as uow:
            assert uow.outbox.pending() == every
            _save(uow, customer.update_details(company="Renamed"))
            with pytest.raises(InjectedFailure) as caught:
                uow.commit()
            found: list[OutboxMessage] = []
            _run_threads([lambda: found.extend(self.pending(store))])
            assert found == every
            assert caught.value.__traceback__ is not None

    def test_a_conflict_at_commit_forgets_the_blocks_saves(self, store: Store) -> None:
        # As a database's rollback does: read again and retry, in the block.
        partner, customer = self.partner_with_customer(store)
        with store.unit_of_work() as mine:
            mine.customers.save(customer.update_details(company="Mine"))
            with store.unit_of_work() as theirs:
                stored = theirs.customers.save(customer.update_details(company="Theirs"))
                theirs.commit()
            with pytest.raises(ConcurrencyConflict) as info:
                mine.commit()
            assert (info.value.kind, info.value.key) == ("customer", str(customer.id))
            assert mine.customers.get(partner.id, customer.id) == stored
            mine.commit()
            again = mine.customers.save(stored.update_details(company="Mine"))
            mine.commit()
        assert self.read_customer(store, partner.id, customer.id) == again

    def test_a_unit_of_work_is_used_inside_its_block_only(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        uow = store.unit_of_work()
        with pytest.raises(AltpayError, match="with"):
            uow.partners.get(partner.id)
        with uow:
            changed = uow.partners.save(partner.add_tag(name="Net 30", colour="#0000AA"))
        for outside in (
            lambda: uow.partners.get(partner.id),
            lambda: uow.partners.save(changed),
            lambda: uow.customers.save(_created(partner)),
            uow.outbox.pending,
            lambda: uow.outbox.mark_published([1]),
            uow.commit,
        ):
            with pytest.raises(AltpayError, match="with"):
                outside()
        with uow:  # and may be entered again
            assert uow.partners.get(partner.id) == partner
        assert self.pending(store) == []

    def test_outside_its_block_every_method_refuses_before_it_reads_its_arguments(
        self, store: Store
    ) -> None:
        """Whatever the arguments, a call before or after the block says so
        (not that an argument is invalid): ``_in_block()`` comes first in every
        repository method."""
        uow = store.unit_of_work()
        for when in ("before", "after"):
            if when == "after":
                with uow:
                    pass
            for name, port in typing.get_type_hints(UnitOfWork).items():
                if name.startswith("_"):
                    continue
                for method_name, method in inspect.getmembers(port, inspect.isfunction):
                    if method_name.startswith("_"):
                        continue
                    # None for every argument: invalid for each of them.
                    parameters = list(inspect.signature(method).parameters.values())[1:]
                    positional = [None for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
                    keywords = {p.name: None for p in parameters if p.kind is p.KEYWORD_ONLY}
                    called = f"uow.{name}.{method_name}(), {when} the block"
                    with pytest.raises(AltpayError) as caught:
                        getattr(getattr(uow, name), method_name)(*positional, **keywords)
                    assert not isinstance(caught.value, ValidationError), called
                    assert "with` block" in str(caught.value), called

    def test_inside_its_block_every_method_names_the_argument_the_memory_store_names(
        self, store: Store
    ) -> None:
        """With every argument wrong, each repository method names the one
        the memory store names (``partner_id`` first, where it takes one):
        every store reports the same fault."""
        from altpay_core.adapters.memory import MemoryStore  # the reference

        def refusal(uow: UnitOfWork, name: str, method_name: str) -> tuple[Any, ...]:
            method = getattr(getattr(uow, name), method_name)
            # None for every argument: invalid for some of them at least.
            parameters = list(inspect.signature(method).parameters.values())
            positional = [None for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
            keywords = {p.name: None for p in parameters if p.kind is p.KEYWORD_ONLY}
            with pytest.raises(ValidationError) as caught:
                method(*positional, **keywords)
            return type(caught.value), caught.value.paths, caught.value.codes

        with (
            MemoryStore() as reference,
            reference.unit_of_work() as expected,
            store.unit_of_work() as uow,
        ):
            for name, port in typing.get_type_hints(UnitOfWork).items():
                if name.startswith("_"):
                    continue
                for method_name, method in inspect.getmembers(port, inspect.isfunction):
                    if method_name.startswith("_") or len(inspect.signature(method).parameters) < 2:
                        continue
                    assert refusal(uow, name, method_name) == refusal(
                        expected, name, method_name
                    ), f"uow.{name}.{method_name}()"

    def test_entering_a_unit_of_work_inside_its_own_block_is_refused(self, store: Store) -> None:
        """A second ``with`` on the same unit of work would roll back what the
        block saved and end the block: it is refused, and the block goes on."""
        partner = self.store_partner(store, _partner())
        with store.unit_of_work() as uow:
            saved = uow.customers.save(_created(partner))
            with pytest.raises(AltpayError, match="already"), uow:
                pass
            assert uow.customers.get(partner.id, saved.id) == saved
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.customers.get(partner.id, saved.id) == saved

    def test_ids_of_the_wrong_type_are_named(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        with store.unit_of_work() as uow:
            for call, path in (
                (lambda: uow.partners.get(None), "partner_id"),  # type: ignore[arg-type]
                (lambda: uow.customers.get(partner.id, None), "customer_id"),  # type: ignore[arg-type]
                (lambda: uow.invoices.get(partner.id, 7), "invoice_id"),  # type: ignore[arg-type]
                (lambda: uow.payments.get(None, "pay_x"), "partner_id"),  # type: ignore[arg-type]
            ):
                with pytest.raises(ValidationError) as info:
                    call()
                assert info.value.paths == [path]

    def test_text_that_no_database_holds_is_refused(self, store: Store) -> None:
        # A lone surrogate (JSON's "\ud800" escape gives one) is not text,
        # and PostgreSQL's text holds no NUL character.
        partner = self.store_partner(store, _partner())
        with store.unit_of_work() as uow:
            for call, path in (
                (lambda: uow.customers.list(partner.id, name_prefix="G\ud800"), "name_prefix"),
                (lambda: uow.customers.list(partner.id, name_prefix="G\x00"), "name_prefix"),
                (lambda: uow.invoices.get_by_number(partner.id, "\ud800"), "number"),
                (lambda: uow.invoices.get_by_number(partner.id, "1\x00"), "number"),
                (lambda: uow.payments.get_by_idempotency_key(partner.id, "k\udc00"), "key"),
                (lambda: uow.payments.get_by_idempotency_key(partner.id, "k\x00"), "key"),
            ):
                with pytest.raises(ValidationError) as info:
                    call()
                assert (info.value.paths, info.value.codes) == ([path], ["invalid_text"])

    def test_commit_with_nothing_saved(self, store: Store) -> None:
        with store.unit_of_work() as uow:
            uow.commit()
        assert self.pending(store) == []

    def test_each_unit_of_work_is_new(self, store: Store) -> None:
        first, second = store.unit_of_work(), store.unit_of_work()
        assert first is not second
        assert isinstance(first, UnitOfWork)

    def test_closing_a_store_twice_is_harmless(self) -> None:
        store = self.make_store()
        with store:
            pass
        store.close()


# -- outbox ------------------------------------------------------------------------


class OutboxContract(_StoreFactory):
    """The transactional outbox: commit order, publishing exactly once."""

    def test_events_are_stored_with_their_aggregate(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        created = _created(partner)
        changed = created.add_user(first_name="Bo", last_name="Li", email="bo@globex.example")
        self.store_customers(store, changed)
        messages = self.pending(store)
        assert [m.event for m in messages] == list(changed.events)
        assert [type(m.event) for m in messages] == [CustomerCreated, CustomerUpdated]
        assert [m.event.topic for m in messages] == ["customer_created", "customer_updated"]

    def test_pending_lists_in_commit_order(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        first, second = _created(partner, "B"), _created(partner, "A", "bo@a.example")
        self.store_customers(store, first, second)
        self.store_customers(
            store,
            self.read_customer(store, partner.id, first.id).archive(),
        )
        (third,) = self.store_customers(store, _created(partner, "C", "cy@c.example"))
        messages = self.pending(store)
        assert [type(m.event) for m in messages] == [
            CustomerCreated,
            CustomerCreated,
            CustomerArchived,
            CustomerCreated,
        ]
        assert [m.event.aggregate_id for m in messages] == [
            str(first.id),
            str(second.id),
            str(first.id),
            str(third.id),
        ]
        positions = [m.position for m in messages]
        assert positions == sorted(set(positions))

    def test_pending_respects_the_limit(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        self.store_customers(
            store, *(_created(partner, f"C{n}", f"u{n}@c.example") for n in range(5))
        )
        every = self.pending(store)
        assert len(every) == 5
        assert self.pending(store, 2) == every[:2]
        with store.unit_of_work() as uow:
            assert uow.outbox.pending() == every
            for limit in (0, MAX_PAGE_SIZE + 1):
                with pytest.raises(ValidationError):
                    uow.outbox.pending(limit)

    def test_marked_messages_are_never_listed_again(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        self.store_customers(
            store, *(_created(partner, f"C{n}", f"u{n}@c.example") for n in range(3))
        )
        first = self.pending(store)
        with store.unit_of_work() as uow:
            uow.outbox.mark_published([first[0].position, first[1].position])
            assert uow.outbox.pending() == first[2:]
            uow.commit()
        assert self.pending(store) == first[2:]
        self.store_customers(store, _created(partner, "Later", "later@c.example"))
        later = self.pending(store)
        assert later[0] == first[2]
        assert len(later) == 2
        assert later[1].position > first[2].position
        with store.unit_of_work() as uow:
            uow.outbox.mark_published([first[0].position, *(m.position for m in later)])
            uow.outbox.mark_published([later[0].position, 10**12])
            uow.commit()
        assert self.pending(store) == []

    def test_a_rolled_back_mark_leaves_the_message_pending(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        self.store_customers(store, _created(partner))
        messages = self.pending(store)
        with store.unit_of_work() as uow:
            uow.outbox.mark_published([m.position for m in messages])
        assert self.pending(store) == messages

        def publish_and_fail() -> None:
            with store.unit_of_work() as uow:
                uow.outbox.mark_published([m.position for m in messages])
                raise RuntimeError("the broker went away")

        with pytest.raises(RuntimeError):
            publish_and_fail()
        assert self.pending(store) == messages

    def test_committed_events_survive_until_published(self, store: Store) -> None:
        # The process "dies" after the commit and before publishing: a new
        # unit of work still finds every event.
        partner = self.store_partner(store, _partner())
        self.store_customers(store, _created(partner))
        with store.unit_of_work() as uow:
            seen = uow.outbox.pending()
        assert self.pending(store) == seen
        assert len(seen) == 1

    def test_rolled_back_events_are_never_stored(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        with store.unit_of_work() as uow:
            uow.customers.save(_created(partner))
            uow.rollback()
            uow.commit()
        assert self.pending(store) == []

    def test_an_aggregate_without_events_adds_no_message(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        self.store_customers(store, _customer(partner))
        assert self.pending(store) == []

    # publishers at the same time

    def test_a_publisher_never_lists_what_another_is_publishing(self, store: Store) -> None:
        # What a unit of work lists is its own until it ends: another
        # publisher skips it (or waits, as SQLite's one writer does, and
        # then lists what is still pending), never lists it with it.
        partner = self.store_partner(store, _partner())
        self.store_customers(
            store, *(_created(partner, f"C{n}", f"u{n}@c.example") for n in range(4))
        )
        every = self.pending(store)
        theirs: list[OutboxMessage] = []
        errors: list[BaseException] = []
        listed = threading.Event()

        def other_publisher() -> None:
            try:
                with store.unit_of_work() as uow:
                    theirs.extend(uow.outbox.pending())
                    listed.set()
                    uow.outbox.mark_published([m.position for m in theirs])
                    uow.commit()
            except BaseException as error:  # pragma: no cover - handed to the test
                errors.append(error)

        other = threading.Thread(target=other_publisher, daemon=True)
        with store.unit_of_work() as uow:
            mine = uow.outbox.pending()
            other.start()
            # It lists while this one still holds its messages, or, if the
            # store makes it wait for this one to end, after (the wait only
            # spares it the time).
            listed.wait(_PUBLISHER_WAIT)
            uow.outbox.mark_published([m.position for m in mine[:2]])
            uow.commit()
        other.join(_JOIN_TIMEOUT)
        assert not other.is_alive()
        if errors:  # pragma: no cover - a failing adapter
            raise errors[0]
        assert mine == every
        # Nothing this one held, or, having waited, what it left pending.
        assert theirs in ([], every[2:])
        assert self.pending(store) == [m for m in every[2:] if m not in theirs]

    def test_a_claim_ends_with_its_unit_of_work(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        self.store_customers(store, _created(partner), _created(partner, "Acme", "bo@a.example"))
        every = self.pending(store)
        with store.unit_of_work() as uow:
            assert uow.outbox.pending() == every
            assert uow.outbox.pending() == every  # its own, listed again
            uow.rollback()
            # Rolled back: listed again, and by another publisher alike.
            assert self._pending_elsewhere(store) == every
            uow.outbox.pending()
            uow.commit()  # nothing marked: still pending
        assert self.pending(store) == every

    def _pending_elsewhere(self, store: Store) -> list[OutboxMessage]:
        """``pending()`` in a unit of work of another thread."""
        found: list[OutboxMessage] = []
        _run_threads([lambda: found.extend(self.pending(store))])
        return found

    def test_publishers_racing_publish_each_message_once(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        count, publishers = 24, 3
        self.store_customers(
            store, *(_created(partner, f"C{n}", f"u{n}@c.example") for n in range(count))
        )
        barrier = threading.Barrier(publishers, timeout=_JOIN_TIMEOUT)
        sent: list[int] = []

        def publisher() -> None:
            barrier.wait()
            while True:
                with store.unit_of_work() as uow:
                    messages = uow.outbox.pending(3)
                    if not messages:
                        return
                    sent.extend(m.position for m in messages)  # list.extend is atomic
                    uow.outbox.mark_published([m.position for m in messages])
                    uow.commit()

        _run_threads([publisher] * publishers)
        assert sorted(sent) == sorted(set(sent))  # nothing published twice
        assert len(sent) == count  # nothing skipped
        assert self.pending(store) == []


# -- concurrency -------------------------------------------------------------------


class ConcurrencyContract(_StoreFactory):
    """Several threads or units of work, one store: optimistic locking holds for
    every kind of aggregate, and no update is lost."""

    writers = 6
    """How many threads race in :meth:`test_no_update_is_lost`."""

    def test_two_writers_race_and_exactly_one_wins(self, store: Store) -> None:
        partner, customer = self.partner_with_customer(store)
        barrier = threading.Barrier(2, timeout=_JOIN_TIMEOUT)
        outcome: dict[str, str] = {}

        def writer(email: str) -> Callable[[], None]:
            def run() -> None:
                try:
                    with store.unit_of_work() as uow:
                        current = uow.customers.get(partner.id, customer.id)
                        barrier.wait()  # both have read version 1
                        uow.customers.save(
                            current.add_user(first_name="W", last_name="R", email=email)
                        )
                        uow.commit()
                    outcome[email] = "won"
                except ConcurrencyConflict:
                    outcome[email] = "lost"

            return run

        emails = ["one@globex.example", "two@globex.example"]
        _run_threads([writer(e) for e in emails])
        assert sorted(outcome.values()) == ["lost", "won"]
        (winner,) = (e for e, o in outcome.items() if o == "won")
        (loser,) = (e for e, o in outcome.items() if o == "lost")
        stored = self.read_customer(store, partner.id, customer.id)
        assert stored.version == 2
        assert stored.has_user(winner)
        assert not stored.has_user(loser)
        assert len(self.pending(store)) == 1

    @pytest.mark.parametrize("key", ["number", "invoice ref", "customer ref", "idempotency key"])
    def test_a_unique_key_taken_between_save_and_commit_is_refused_at_commit(
        self, store: Store, key: str
    ) -> None:
        """Two units of work each save a new aggregate with one unique key,
        free when each checks it at save; the first commits. The store keeps
        the key at commit too: the second commit is refused, and writes
        nothing. (A check at save alone lets both in.)"""
        partner, customer = self.partner_with_customer(store)
        ref = ExternalRef("connectwise", "4711")
        first: Any
        second: Any
        if key == "number":
            first, second = (_invoice(partner, customer, "7") for _ in range(2))
        elif key == "invoice ref":
            first, second = (_invoice(partner, customer, n, ref=ref) for n in ("7", "8"))
        elif key == "customer ref":
            # Synced from then on: a new customer comes from the sync (C6).
            partner = self.store_partner(
                store, partner.connect_integration("connectwise", syncs_customers=True)
            )
            first, second = (_customer(partner, company, ref=ref) for company in ("A", "B"))
        else:
            one, two = self.store_aggregates(
                store, _invoice(partner, customer, "1"), _invoice(partner, customer, "2")
            )
            (first, _), (second, _) = (
                PaymentRepositoryContract._pay(partner, customer, [invoice], "key-1")
                for invoice in (one, two)
            )
        before = self.pending(store)
        repository = {Invoice: "invoices", Customer: "customers", Payment: "payments"}
        with store.unit_of_work() as winner, store.unit_of_work() as loser:
            getattr(winner, repository[type(first)]).save(first)
            getattr(loser, repository[type(second)]).save(second)
            winner.commit()
            with pytest.raises(ConcurrencyConflict):
                loser.commit()
        with store.unit_of_work() as uow:
            if key == "number":
                assert uow.invoices.get_by_number(partner.id, "7").id == first.id
                with pytest.raises(NotFound):
                    uow.invoices.get(partner.id, second.id)
            elif key == "invoice ref":
                assert uow.invoices.get_by_external_ref(partner.id, ref).id == first.id
                assert _invoice_ids(uow.invoices.list(partner.id)) == [first.id]
            elif key == "customer ref":
                assert uow.customers.get_by_external_ref(partner.id, ref).id == first.id
                with pytest.raises(NotFound):
                    uow.customers.get(partner.id, second.id)
            else:
                found = uow.payments.get_by_idempotency_key(partner.id, "key-1")
                assert found is not None
                assert found.id == first.id
                with pytest.raises(NotFound):
                    uow.payments.get(partner.id, second.id)
        assert len(self.pending(store)) == len(before) + len(first.events)

    @pytest.mark.parametrize("stored", [False, True])
    def test_an_id_taken_by_another_partner_between_save_and_commit_names_no_version(
        self, store: Store, stored: bool
    ) -> None:
        """Two partners' units of work each save a customer with one id: a
        new one, or (when the first partner's is stored, at version 2) the
        second partner's at the version stored. The first commits. The
        second is refused (at save, or at the latest at commit) as a save
        would be: the id is already stored, and the message names no
        version."""
        partner = self.store_partner(store, _partner())
        other = self.store_partner(store, _partner("Contoso"))
        first = _customer(partner)
        if stored:
            (first,) = self.store_customers(store, first)
            (first,) = self.store_customers(
                store, first.add_user(first_name="Bo", last_name="Li", email="bo@globex.example")
            )
        second = attrs.evolve(_customer(other, "Initech"), id=first.id, version=first.version)

        def race() -> None:
            with store.unit_of_work() as winner, store.unit_of_work() as loser:
                winner.customers.save(first)
                loser.customers.save(second)  # an adapter may refuse it here
                winner.commit()
                loser.commit()

        with pytest.raises(ConcurrencyConflict) as caught:
            race()
        message = str(caught.value)
        assert (caught.value.kind, caught.value.key) == ("customer", str(first.id))
        assert f"with id {str(first.id)!r} is already stored; nothing was written" in message
        assert "version" not in message
        with store.unit_of_work() as uow:
            assert uow.customers.list(other.id).items == ()

    def _stored_of(self, store: Store, kind: str) -> tuple[Any, Callable[[Any, str], Any]]:
        """A stored aggregate of ``kind``, and how a writer named ``by``
        changes a copy of it (with the commands, as an application does)."""
        partner, customer = self.partner_with_customer(store)
        if kind == "partner":
            return partner, lambda p, by: p.add_tag(name=f"Net {by}", colour="#0000AA")
        if kind == "customer":
            return customer, lambda c, by: c.update_details(company=by)
        if kind == "access request":
            (request,) = self.store_aggregates(
                store, AccessRequest.open(partner, email="dee@globex.example", first_name="Dee")
            )
            return request, lambda r, by: r.reject(partner=partner, by=partner.team[0])
        (invoice,) = self.store_aggregates(store, _invoice(partner, customer))
        if kind == "invoice":
            return invoice, lambda i, by: i.update(partner, memo=by)
        if kind == "payment":
            payment, touched = PaymentRepositoryContract._pay(partner, customer, [invoice], "key-1")
            (payment, _) = self.store_aggregates(store, payment, *touched)
            return payment, lambda p, by: p.succeed(at=_at(3))
        if kind == "payment methods":
            (book,) = self.store_aggregates(
                store,
                CustomerPaymentMethods.of(customer).add(
                    type="card", display_name="Visa", last4="4242"
                ),
            )
            return book, lambda b, by: b.add(type="ach", display_name=by, last4="1234")
        (scheduled,) = self.store_aggregates(store, _scheduled(partner, invoice, _TODAY))
        return scheduled, lambda s, by: s.cancel()

    @pytest.mark.parametrize("kind", _KINDS)
    def test_a_stale_save_found_only_at_commit_writes_nothing(
        self, store: Store, kind: str
    ) -> None:
        """Two units of work read one aggregate and each save a change to
        it, both in time at save; the first commits. For every kind, the
        second commit is refused, naming the aggregate, and writes nothing
        of its block. (A check at save alone lets the second overwrite the
        first's change.)"""
        stored, change = self._stored_of(store, kind)
        key = str(stored.customer_id if kind == "payment methods" else stored.id)
        bystander = _partner("Contoso")
        before = self.pending(store)
        with store.unit_of_work() as winner, store.unit_of_work() as loser:
            won = change(_read_again(winner, stored), "Winner")
            saved = _save(winner, won)
            loser.partners.save(bystander)
            _save(loser, change(_read_again(loser, stored), "Loser"))
            winner.commit()
            with pytest.raises(ConcurrencyConflict) as caught:
                loser.commit()
        assert (caught.value.kind, caught.value.key) == (kind, key)
        with store.unit_of_work() as uow:
            assert _read_again(uow, stored) == saved
            with pytest.raises(NotFound):
                uow.partners.get(bystander.id)
        assert len(self.pending(store)) == len(before) + len(won.events)

    def test_of_several_stale_saves_the_lowest_id_is_named(self, store: Store) -> None:
        """Another writer commits changes to two customers that a unit of
        work also saved, highest id first: its commit is refused naming the
        customer of the lower id, whatever the order of its saves (the
        order the SQL stores write, and lock, rows in)."""
        partner, first = self.partner_with_customer(store)
        (second,) = self.store_aggregates(store, _customer(partner, "Initech"))
        low, high = sorted((first, second), key=lambda customer: str(customer.id))
        with store.unit_of_work() as mine:
            for customer in (high, low):
                mine.customers.save(customer.update_details(company=f"{customer.company} (mine)"))
            with store.unit_of_work() as theirs:
                for customer in (high, low):
                    theirs.customers.save(customer.update_details(company=f"{customer.company} Co"))
                theirs.commit()
            with pytest.raises(ConcurrencyConflict) as caught:
                mine.commit()
        assert (caught.value.kind, caught.value.key) == ("customer", str(low.id))

    def test_of_several_stale_partners_the_lowest_id_is_named(self, store: Store) -> None:
        """The same for partners: another writer commits changes to two
        partners that a unit of work also saved, highest id first; its
        commit is refused naming the partner of the lower id."""
        low, high = self._store_two_partners(store)
        with store.unit_of_work() as mine:
            for partner in (high, low):
                mine.partners.save(partner.add_tag(name="Net 30", colour="#0000AA"))
            with store.unit_of_work() as theirs:
                for partner in (high, low):
                    theirs.partners.save(partner.add_tag(name="Net 60", colour="#0000BB"))
                theirs.commit()
            with pytest.raises(ConcurrencyConflict) as caught:
                mine.commit()
        assert (caught.value.kind, caught.value.key) == ("partner", str(low.id))

    def test_a_save_that_moves_a_unique_key_loses_no_update(self, store: Store) -> None:
        """A unit of work renumbers an invoice; another changes the same
        invoice and commits first. The renumbering is refused at commit, as
        any stale save is: the other's change is kept, under the old number."""
        partner, customer = self.partner_with_customer(store)
        (invoice,) = self.store_aggregates(store, _invoice(partner, customer))
        with store.unit_of_work() as renumberer:
            read = renumberer.invoices.get(partner.id, invoice.id)
            renumberer.invoices.save(attrs.evolve(read, number="1001-A"))
            with store.unit_of_work() as editor:
                current = editor.invoices.get(partner.id, invoice.id)
                edited = editor.invoices.save(current.update(partner, memo="Edited"))
                editor.commit()
            with pytest.raises(ConcurrencyConflict) as caught:
                renumberer.commit()
        assert (caught.value.kind, caught.value.key) == ("invoice", str(invoice.id))
        with store.unit_of_work() as uow:
            assert uow.invoices.get(partner.id, invoice.id) == edited
            assert uow.invoices.get_by_number(partner.id, "1001") == edited
            with pytest.raises(NotFound):
                uow.invoices.get_by_number(partner.id, "1001-A")

    def test_a_closed_store_gives_no_more_units_of_work(self, store: Store) -> None:
        store.close()
        with pytest.raises(AltpayError):
            store.unit_of_work()
        store.close()  # safe twice

    def test_no_update_is_lost(self, store: Store) -> None:
        partner, customer = self.partner_with_customer(store)
        barrier = threading.Barrier(self.writers, timeout=_JOIN_TIMEOUT)
        conflicts: list[int] = []

        def adder(n: int) -> Callable[[], None]:
            def run() -> None:
                for attempt in range(200):
                    try:
                        with store.unit_of_work() as uow:
                            current = uow.customers.get(partner.id, customer.id)
                            if attempt == 0:
                                barrier.wait()  # all have read version 1
                            uow.customers.save(
                                current.add_user(
                                    first_name="U", last_name=str(n), email=f"u{n}@globex.example"
                                )
                            )
                            uow.commit()
                        return
                    except ConcurrencyConflict:
                        conflicts.append(n)
                        time.sleep(0.001 * (attempt % 5))
                raise AssertionError(  # pragma: no cover - a livelocked adapter
                    f"writer {n} never got its update in"
                )

            return run

        _run_threads([adder(n) for n in range(self.writers)])
        assert len(conflicts) >= self.writers - 1
        stored = self.read_customer(store, partner.id, customer.id)
        assert stored.version == 1 + self.writers
        for n in range(self.writers):
            assert stored.has_user(f"u{n}@globex.example")
        messages = self.pending(store)
        assert len(messages) == self.writers
        assert all(isinstance(m.event, CustomerUpdated) for m in messages)

    def test_racing_to_create_the_same_customer(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        customer = _created(partner)
        self._race_to_create(store, [customer, attrs.evolve(customer, company="Other")])
        with store.unit_of_work() as uow:
            assert _ids(uow.customers.list(partner.id)) == [customer.id]

    def test_racing_to_take_the_same_external_ref(self, store: Store) -> None:
        partner = self.store_partner(store, _partner(syncs=_SYNCED))
        ref = ExternalRef("connectwise", "4711")
        self._race_to_create(
            store, [_customer(partner, ref=ref), _customer(partner, "Other", ref=ref)]
        )
        with store.unit_of_work() as uow:
            assert len(uow.customers.list(partner.id)) == 1

    def test_taggers_racing_a_tag_deletion_are_refused(self, store: Store) -> None:
        """Threads tag customers from a catalog they read before another
        thread deleted the tag, and commit at once: every one is refused,
        and no customer carries the deleted tag."""
        partner = self.store_partner(store, _partner())
        customers = self.store_customers(
            store, *(_customer(partner, f"Customer {n}") for n in range(self.writers))
        )
        have_read = threading.Barrier(self.writers + 1, timeout=_JOIN_TIMEOUT)
        deleted = threading.Event()
        outcomes: list[str] = []

        def tagger(customer: Customer) -> Callable[[], None]:
            def run() -> None:
                with store.unit_of_work() as uow:
                    catalog = uow.partners.get(partner.id)
                    current = uow.customers.get(partner.id, customer.id)
                    have_read.wait()
                    assert deleted.wait(_JOIN_TIMEOUT)
                    try:
                        uow.customers.save(current.set_tags(catalog, ["VIP"]))
                        uow.commit()
                        outcomes.append("stored")
                    except InvariantViolation as error:
                        outcomes.append(error.rule)

            return run

        def deleter() -> None:
            try:
                have_read.wait()
                with store.unit_of_work() as uow:
                    services.delete_tag(uow, partner.id, "VIP", by=partner.team[0])
            finally:
                deleted.set()

        _run_threads([deleter, *(tagger(c) for c in customers)])
        assert outcomes == ["tags"] * self.writers
        with store.unit_of_work() as uow:
            assert [t.name for t in uow.partners.get(partner.id).tags] == ["Late payer"]
            assert uow.customers.list(partner.id, tag=partner.tag("VIP").id).items == ()

    def test_invoicers_racing_an_archive_are_refused(self, store: Store) -> None:
        """Threads issue invoices for a customer they read before another
        thread archived it, and commit at once: every one is refused (C8)."""
        partner, customer = self.partner_with_customer(store)
        have_read = threading.Barrier(self.writers + 1, timeout=_JOIN_TIMEOUT)
        archived = threading.Event()
        outcomes: list[str] = []

        def invoicer(number: str) -> Callable[[], None]:
            def run() -> None:
                with store.unit_of_work() as uow:
                    current = uow.customers.get(partner.id, customer.id)
                    have_read.wait()
                    assert archived.wait(_JOIN_TIMEOUT)
                    try:
                        uow.invoices.save(_issued(partner, current, number))
                        uow.commit()
                        outcomes.append("stored")
                    except InvariantViolation as error:
                        outcomes.append(error.rule)

            return run

        def archiver() -> None:
            try:
                have_read.wait()
                self.store_customers(store, customer.archive())
            finally:
                archived.set()

        _run_threads([archiver, *(invoicer(str(n)) for n in range(self.writers))])
        assert outcomes == ["C8"] * self.writers
        with store.unit_of_work() as uow:
            assert uow.invoices.list(partner.id).items == ()

    def _race_to_create(self, store: Store, customers: Sequence[Customer]) -> None:
        barrier = threading.Barrier(len(customers), timeout=_JOIN_TIMEOUT)
        outcomes: list[str] = []

        def creator(customer: Customer) -> Callable[[], None]:
            def run() -> None:
                try:
                    with store.unit_of_work() as uow:
                        uow.partners.get(customer.partner_id)
                        barrier.wait()
                        uow.customers.save(customer)
                        uow.commit()
                    outcomes.append("won")
                except ConcurrencyConflict:
                    outcomes.append("lost")

            return run

        _run_threads([creator(c) for c in customers])
        assert sorted(outcomes) == ["lost"] * (len(customers) - 1) + ["won"]


# -- invoices ----------------------------------------------------------------------

_TODAY = dt.date(2026, 1, 15)
_DAY = dt.timedelta(days=1)


def _invoice(
    partner: Partner,
    customer: Customer,
    number: str = "1001",
    due: dt.date = _TODAY,
    *,
    amount: str = "100.00",
    paid: str | None = None,
    status: InvoiceStatus = InvoiceStatus.OPEN,
    ref: ExternalRef | None = None,
) -> Invoice:
    """An invoice due on ``due``; ``paid`` applies a payment of that much,
    ``status`` voids or archives it."""
    invoice = Invoice(
        id=InvoiceId.new(),
        partner_id=partner.id,
        customer_id=customer.id,
        number=number,
        currency=partner.currency,
        issue_date=due - 30 * _DAY,
        due_date=due,
        lines=(LineItem("Managed support", 1, Money(amount, partner.currency)),),
        external_ref=ref,
    )
    if paid is not None:
        invoice = invoice._apply_payment(PaymentId.new(), Money(paid, partner.currency))
    if status is InvoiceStatus.VOID:
        invoice = invoice.void(partner)
    elif status is InvoiceStatus.ARCHIVED:
        invoice = invoice.archive(partner)
    return invoice


def _in_cad(aggregate: Any) -> Any:
    """A copy of a USD invoice or payment in CAD, every amount of it (lines,
    fees, applied payments; allocations, a bank debit's method) rewritten so
    that its own checks pass: what no command makes (I2)."""
    cad = Currency("CAD")

    def moved(money: Money) -> Money:
        return Money(money.amount, cad)

    fees = [attrs.evolve(fee, amount=moved(fee.amount)) for fee in aggregate.fees]
    if isinstance(aggregate, Invoice):
        return attrs.evolve(
            aggregate,
            currency=cad,
            lines=[
                attrs.evolve(line, unit_amount=moved(line.unit_amount)) for line in aggregate.lines
            ],
            fees=fees,
            payments=[attrs.evolve(part, amount=moved(part.amount)) for part in aggregate.payments],
        )
    return attrs.evolve(
        aggregate,
        currency=cad,
        method=PaymentMethodType.PAD,
        allocations=[
            attrs.evolve(part, amount=moved(part.amount), card_fee=moved(part.card_fee))
            for part in aggregate.allocations
        ],
        fees=fees,
    )


def _issued(partner: Partner, customer: Customer, number: str = "1001") -> Invoice:
    """An invoice issued by the partner's admin: it carries ``invoice_created``."""
    return Invoice.issue(
        partner,
        customer,
        by=partner.team[0],
        number=number,
        lines=[{"description": "Setup", "quantity": 1, "unit_amount": "250.00"}],
        due_date=_TODAY + 30 * _DAY,
        today=_TODAY,
    )


def _at(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2026, 1, day, hour, tzinfo=dt.UTC)


def _invoice_ids(invoices: Page[Invoice] | Sequence[Invoice]) -> list[InvoiceId]:
    return [i.id for i in invoices]


def _invoices_in_order(invoices: Sequence[Invoice]) -> list[InvoiceId]:
    return [i.id for i in sorted(invoices, key=lambda i: (invoice_sort_key(i), i.id.value))]


class InvoiceRepositoryContract(_StoreFactory):
    """``uow.invoices``: every query, unique numbers and references, versions,
    tenant isolation and pagination."""

    def _stored_invoice(self, store: Store) -> tuple[Partner, Customer, Invoice]:
        partner, customer = self.partner_with_customer(store)
        (invoice,) = self.store_aggregates(store, _invoice(partner, customer))
        return partner, customer, invoice

    def _invoice_catalog(self, store: Store) -> tuple[Partner, list[Customer], dict[str, Invoice]]:
        """Ten invoices of two customers, in every status; a third customer,
        another partner's, has one too (numbered like one of them)."""
        partner = self.store_partner(store, _partner())
        other = self.store_partner(store, _partner("Contoso"))
        globex, initech, theirs = self.store_customers(
            store, _customer(partner), _customer(partner, "Initech"), _customer(other)
        )
        t = _TODAY
        made = {
            "a": _invoice(partner, globex, "1001", t - 10 * _DAY),
            "b": _invoice(partner, globex, "1002", t - 10 * _DAY, paid="30.00"),
            "c": _invoice(partner, initech, "0999", t - 10 * _DAY),
            "d": _invoice(partner, globex, "1003", t - _DAY, paid="100.00"),
            "e": _invoice(partner, initech, "1004", t),
            "f": _invoice(partner, globex, "1005", t - 20 * _DAY, status=InvoiceStatus.VOID),
            "g": _invoice(partner, globex, "1006", t - 30 * _DAY, status=InvoiceStatus.ARCHIVED),
            "h": _invoice(partner, initech, "1007", t + 10 * _DAY),
            "i": _invoice(partner, globex, "10", t + 10 * _DAY),
            "j": _invoice(partner, globex, "2", t + 10 * _DAY),
            "k": _invoice(other, theirs, "1001", t - 10 * _DAY),
        }
        saved = self.store_aggregates(store, *made.values())
        return partner, [globex, initech, theirs], dict(zip(made, saved, strict=True))

    @staticmethod
    def _invoice_names(found: Page[Invoice], catalog: dict[str, Invoice]) -> str:
        by_id = {invoice.id: name for name, invoice in catalog.items()}
        return "".join(by_id[invoice.id] for invoice in found)

    # get and save

    def test_get_returns_the_saved_invoice(self, store: Store) -> None:
        partner, _, invoice = self._stored_invoice(store)
        with store.unit_of_work() as uow:
            got = uow.invoices.get(partner.id, invoice.id)
        assert got == invoice
        assert got.version == 1
        assert to_dict(got) == to_dict(invoice)

    def test_unknown_or_another_partners_invoice_is_not_found(self, store: Store) -> None:
        partner, _, invoice = self._stored_invoice(store)
        other = self.store_partner(store, _partner("Contoso"))
        with store.unit_of_work() as uow:
            with pytest.raises(NotFound):
                uow.invoices.get(partner.id, InvoiceId.new())
            with pytest.raises(NotFound):
                uow.invoices.get(other.id, invoice.id)
            with pytest.raises(NotFound):
                uow.invoices.get_by_number(other.id, invoice.number)
            assert uow.invoices.list(other.id).items == ()

    def test_save_returns_the_next_version_and_stores_the_events(self, store: Store) -> None:
        partner, customer = self.partner_with_customer(store)
        issued = _issued(partner, customer)
        (saved,) = self.store_aggregates(store, issued)
        assert saved == attrs.evolve(issued, version=1)
        assert saved.events == ()
        changed = saved.update(partner, memo="Thank you!")
        (again,) = self.store_aggregates(store, changed)
        assert again.version == 2
        with store.unit_of_work() as uow:
            assert uow.invoices.get(partner.id, issued.id) == again
        assert [m.event for m in self.pending(store)] == [*issued.events, *changed.events]
        assert [m.event.topic for m in self.pending(store)] == [
            "invoice_created",
            "invoice_updated",
        ]

    def test_a_stale_invoice_conflicts_and_writes_nothing(self, store: Store) -> None:
        partner, _, invoice = self._stored_invoice(store)
        (winner,) = self.store_aggregates(store, invoice.update(partner, memo="First"))
        before = self.pending(store)
        with pytest.raises(ConcurrencyConflict):
            self.store_aggregates(store, invoice.update(partner, memo="Second"))
        with pytest.raises(ConcurrencyConflict):
            self.store_aggregates(store, attrs.evolve(invoice, version=0, memo="Impostor"))
        with store.unit_of_work() as uow:
            assert uow.invoices.get(partner.id, invoice.id) == winner
        assert self.pending(store) == before

    # the payment history and the final statuses

    def _paid_then_failed(self, store: Store) -> tuple[Partner, Customer, Invoice]:
        """A 100.00 invoice stored with two parts: 40.00 of a payment that
        failed (released), then 60.00 of one that counts."""
        partner, customer, invoice = self._stored_invoice(store)
        payer = customer.users[0]
        first, (invoice,) = pay_invoices(
            partner,
            customer,
            [invoice],
            payer=payer,
            method="ach",
            idempotency_key="k1",
            amounts={invoice.id: "40.00"},
            at=_at(2),
        )
        first, (invoice,) = fail_payment(first, [invoice], at=_at(3))
        second, (invoice,) = pay_invoices(
            partner,
            customer,
            [invoice],
            payer=payer,
            method="ach",
            idempotency_key="k2",
            amounts={invoice.id: "60.00"},
            at=_at(4),
        )
        *_, invoice = self.store_aggregates(store, first, second, invoice)
        return partner, customer, invoice

    def _refused_and_unwritten(
        self, store: Store, stored: Invoice, changes: Sequence[tuple[Invoice, str, str]]
    ) -> None:
        """Each change of ``stored`` is refused at save with its rule and
        path, whether the unit of work read the invoice or saved it itself;
        nothing is written (the stored invoice and the outbox unchanged)."""
        before = self.pending(store)
        for changed, rule, path in changes:
            with store.unit_of_work() as uow:
                with pytest.raises(InvariantViolation) as caught:
                    uow.invoices.save(changed)
                assert (caught.value.rule, caught.value.path) == (rule, path), changed
                assert str(stored.id) in str(caught.value)
                again = uow.invoices.save(stored)
                with pytest.raises(InvariantViolation) as caught:
                    uow.invoices.save(attrs.evolve(changed, version=again.version))
                assert (caught.value.rule, caught.value.path) == (rule, path), changed
            with store.unit_of_work() as uow:
                with pytest.raises(InvariantViolation):
                    uow.invoices.save(changed)
                uow.commit()
        with store.unit_of_work() as uow:
            got = uow.invoices.get(stored.partner_id, stored.id)
        assert got == stored
        assert to_dict(got) == to_dict(stored)
        assert self.pending(store) == before

    def test_a_save_that_rewrites_the_payment_history_is_refused(self, store: Store) -> None:
        """An ``attrs.evolve`` or a ``from_dict`` of edited data that drops an
        applied part, changes its amount or makes a released part count
        again would bring back a balance already paid (I5) and leave the
        payment unable to fail or be returned: refused (``I5``, or ``I6``,
        at ``payments[i]``; a dropped part at its index in the stored
        invoice), and nothing is written."""
        partner, _, stored = self._paid_then_failed(store)
        released, counting = stored.payments
        assert (released.released, counting.released) == (True, False)
        data = to_dict(stored)
        data["payments"] = []
        fewer = from_dict(Invoice, data)
        self._refused_and_unwritten(
            store,
            stored,
            [
                (attrs.evolve(stored, payments=(released,)), "I5", "payments[1]"),
                (attrs.evolve(stored, payments=(counting,)), "I5", "payments[0]"),
                (fewer, "I5", "payments[0]"),
                (
                    attrs.evolve(
                        stored,
                        payments=(released, attrs.evolve(counting, amount=Money("50.00", "USD"))),
                    ),
                    "I5",
                    "payments[1]",
                ),
                (
                    attrs.evolve(
                        stored,
                        payments=(attrs.evolve(released, released=False), counting),
                        status=InvoiceStatus.PAID,
                    ),
                    "I6",
                    "payments[0]",
                ),
            ],
        )
        # Parts are added and released: the commands' saves still go through.
        (later,) = self.store_aggregates(store, stored.update(partner, memo="Thanks"))
        assert later.payments == stored.payments

    def test_a_void_or_archived_invoice_is_never_saved_back_as_open(self, store: Store) -> None:
        """No command leaves the archive, nor takes a void invoice anywhere
        but to it: a save that does is refused (``I4``, at ``status``), and
        nothing is written."""
        partner, customer = self.partner_with_customer(store)
        void, archived, paid = self.store_aggregates(
            store,
            _invoice(partner, customer, "V", status=InvoiceStatus.VOID),
            _invoice(partner, customer, "A", status=InvoiceStatus.ARCHIVED),
            _invoice(partner, customer, "P", paid="100.00", status=InvoiceStatus.ARCHIVED),
        )
        data = to_dict(archived)
        data["status"] = "open"
        for stored, changes in (
            (void, [attrs.evolve(void, status=InvoiceStatus.OPEN)]),
            (
                archived,
                [
                    attrs.evolve(archived, status=InvoiceStatus.OPEN),
                    attrs.evolve(archived, status=InvoiceStatus.VOID),
                    from_dict(Invoice, data),
                ],
            ),
            (paid, [attrs.evolve(paid, status=InvoiceStatus.PAID)]),
        ):
            self._refused_and_unwritten(
                store, stored, [(changed, "I4", "status") for changed in changes]
            )
        # A void invoice is archived.
        (gone,) = self.store_aggregates(store, void.archive(partner))
        assert gone.status is InvoiceStatus.ARCHIVED

    def test_payments_failed_returned_and_refunded_still_save(self, store: Store) -> None:
        """What the commands do to an invoice's payments saves: parts added,
        and released by a failure, a return or a refund; an archived
        invoice whose payment is returned stays archived."""
        partner, customer, stored = self._paid_then_failed(store)
        payer = customer.users[0]

        def pay(invoice: Invoice, key: str, amount: str, day: int) -> tuple[Payment, Invoice]:
            payment, (invoice,) = pay_invoices(
                partner,
                customer,
                [invoice],
                payer=payer,
                method="ach",
                idempotency_key=key,
                amounts={invoice.id: amount},
                at=_at(day),
            )
            return payment, invoice

        with store.unit_of_work() as uow:
            second = uow.payments.get_by_idempotency_key(partner.id, "k2")
            assert second is not None
            second, (invoice,) = return_payment(second, [stored], at=_at(5))
            uow.payments.save(second)
            invoice = uow.invoices.save(invoice)
            third, invoice = pay(invoice, "k3", "100.00", 6)
            third = uow.payments.save(third.succeed(at=_at(7)).settle(at=_at(8)))
            invoice = uow.invoices.save(invoice)
            uow.commit()
        assert invoice.status is InvoiceStatus.PAID
        third, (invoice,) = refund_payment(third, [invoice], at=_at(9))
        _, invoice = self.store_aggregates(store, third, invoice)
        assert [part.released for part in invoice.payments] == [True, True, True]
        assert invoice.status is InvoiceStatus.OPEN
        (invoice,) = self.store_aggregates(store, invoice.archive(partner))
        (other,) = self.store_aggregates(store, _invoice(partner, customer, "1002"))
        fourth, other = pay(other, "k4", "100.00", 10)
        fourth, other = self.store_aggregates(store, fourth, other)
        (other,) = self.store_aggregates(store, other.archive(partner))
        fourth, (other,) = return_payment(fourth, [other], at=_at(11))
        _, other = self.store_aggregates(store, fourth, other)
        assert other.status is InvoiceStatus.ARCHIVED
        assert other.payments[0].released
        with store.unit_of_work() as uow:
            assert uow.invoices.get(partner.id, other.id) == other
            assert uow.invoices.get(partner.id, invoice.id) == invoice

    def test_a_save_at_fault_twice_is_refused_first_for_its_version_then_its_fixed_fields(
        self, store: Store
    ) -> None:
        # Every store checks a save in one order: the version, then the
        # fields that never change, then the unique keys. A stale copy that
        # also takes a used number is a plain conflict (read again, retry),
        # and an invoice moved to another customer with a used number is
        # refused by I1, not as a taken key.
        partner, customer = self.partner_with_customer(store)
        (other,) = self.store_customers(store, _customer(partner, "Initech"))
        a, b = self.store_aggregates(
            store, _invoice(partner, customer, "A"), _invoice(partner, customer, "B")
        )
        (b2,) = self.store_aggregates(store, b.update(partner, memo="Newer"))
        with pytest.raises(ConcurrencyConflict) as stale:
            self.store_aggregates(store, attrs.evolve(b, number="A"))
        assert not isinstance(stale.value, UniqueKeyTaken)
        with pytest.raises(InvariantViolation) as moved:
            self.store_aggregates(store, attrs.evolve(a, customer_id=other.id, number="B"))
        assert not isinstance(moved.value, ConcurrencyConflict)
        assert moved.value.rule == "I1"
        with store.unit_of_work() as uow:
            assert uow.invoices.get(partner.id, a.id) == a
            assert uow.invoices.get(partner.id, b.id) == b2

    @pytest.mark.parametrize("key", ["number", "external_ref"])
    @pytest.mark.parametrize("holder", ["stored", "saved in the unit of work", "another partner's"])
    def test_a_new_invoice_with_a_stored_id_and_a_taken_key_is_refused_for_its_id(
        self, store: Store, key: str, holder: str
    ) -> None:
        # The same order for a save as new: its id (already stored) before
        # its unique keys. A version-0 copy of a stored invoice that also
        # takes another invoice's number or reference is told that its id is
        # stored, by every store, not that the key is taken.
        partner, customer = self.partner_with_customer(store)
        a, b = self.store_aggregates(
            store,
            _invoice(partner, customer, "A", ref=ExternalRef("xero", "inv-a")),
            _invoice(partner, customer, "B", ref=ExternalRef("xero", "inv-b")),
        )
        taken = {"number": "A", "external_ref": ExternalRef("xero", "inv-a")}
        copy = attrs.evolve(b, version=0, **{key: taken[key]})
        first: list[Invoice] = []
        if holder == "saved in the unit of work":
            first = [_invoice(partner, customer, "C", ref=ExternalRef("xero", "inv-c"))]
            taken = {"number": "C", "external_ref": ExternalRef("xero", "inv-c")}
            copy = attrs.evolve(b, version=0, **{key: taken[key]})
        elif holder == "another partner's":
            other = self.store_partner(store, _partner("Contoso"))
            (theirs,) = self.store_customers(store, _customer(other, "Initech"))
            (held,) = self.store_aggregates(
                store, _invoice(other, theirs, "X", ref=ExternalRef("xero", "inv-x"))
            )
            copy = attrs.evolve(
                b,
                version=0,
                partner_id=other.id,
                customer_id=theirs.id,
                currency=held.currency,
                **{key: getattr(held, key)},
            )
        before = self.pending(store)
        with store.unit_of_work() as uow:
            for invoice in first:
                uow.invoices.save(invoice)
            with pytest.raises(ConcurrencyConflict) as caught:
                uow.invoices.save(copy)
        assert not isinstance(caught.value, UniqueKeyTaken), type(caught.value)
        assert (caught.value.kind, caught.value.key) == ("invoice", str(b.id))
        assert f"with id {str(b.id)!r} is already stored; nothing was written" in str(caught.value)
        with store.unit_of_work() as uow:
            assert uow.invoices.get(partner.id, a.id) == a
            assert uow.invoices.get(partner.id, b.id) == b
        assert self.pending(store) == before

    def test_an_invoice_version_never_stored_conflicts(self, store: Store) -> None:
        partner, customer = self.partner_with_customer(store)
        invoice = attrs.evolve(_invoice(partner, customer), version=2)
        with pytest.raises(ConcurrencyConflict):
            self.store_aggregates(store, invoice)
        with store.unit_of_work() as uow, pytest.raises(NotFound):
            uow.invoices.get(partner.id, invoice.id)

    @pytest.mark.parametrize(
        ("owner", "version"), [("own", 0), ("other", 0), ("other", 2), ("other", 3)]
    )
    def test_an_invoice_saved_with_a_stored_id_names_no_version(
        self, store: Store, owner: str, version: int
    ) -> None:
        """An invoice saved as new with the id of a stored one (of its own
        partner or another's), or under another partner at any version (the
        stored one, 2, too), is told only that the id is already stored: not
        the stored invoice's version. Nothing is written."""
        partner, _, invoice = self._stored_invoice(store)
        (invoice,) = self.store_aggregates(store, invoice)  # at version 2
        if owner == "other":
            other = self.store_partner(store, _partner("Contoso"))
            (theirs,) = self.store_customers(store, _customer(other, "Initech"))
            new = _invoice(other, theirs, "2001")
        else:
            other, new = (
                partner,
                _invoice(
                    partner, self.read_customer(store, partner.id, invoice.customer_id), "2001"
                ),
            )
        new = attrs.evolve(new, id=invoice.id, version=version)
        _assert_already_stored(store, new, "invoice", invoice.version)
        with store.unit_of_work() as uow:
            assert uow.invoices.get(partner.id, invoice.id) == invoice
            assert uow.invoices.list(other.id).items == ((invoice,) if other is partner else ())

    def test_an_invoice_cannot_move_to_another_partner(self, store: Store) -> None:
        partner, _, invoice = self._stored_invoice(store)
        other = self.store_partner(store, _partner("Contoso"))
        for version in (0, invoice.version):
            with pytest.raises(ConcurrencyConflict):
                self.store_aggregates(
                    store, attrs.evolve(invoice, partner_id=other.id, version=version)
                )
        with store.unit_of_work() as uow:
            assert uow.invoices.get(partner.id, invoice.id) == invoice
            assert uow.invoices.list(other.id).items == ()

    # numbers and external references

    def test_get_by_number(self, store: Store) -> None:
        partner, customer = self.partner_with_customer(store)
        one, two = self.store_aggregates(
            store,
            _invoice(partner, customer, "INV-1"),
            _invoice(partner, customer, "INV-2", status=InvoiceStatus.ARCHIVED),
        )
        with store.unit_of_work() as uow:
            assert uow.invoices.get_by_number(partner.id, "INV-1") == one
            assert uow.invoices.get_by_number(partner.id, " INV-1 ") == one
            assert uow.invoices.get_by_number(partner.id, "INV-2") == two
            for missing in ("inv-1", "INV-3", "INV"):
                with pytest.raises(NotFound):
                    uow.invoices.get_by_number(partner.id, missing)

    def test_a_number_is_unique_per_partner(self, store: Store) -> None:
        partner, customer, first = self._stored_invoice(store)
        other = self.store_partner(store, _partner("Contoso"))
        (theirs,) = self.store_customers(store, _customer(other))
        before = self.pending(store)
        # Of every status: an archived invoice keeps its number.
        (archived,) = self.store_aggregates(store, first.archive(partner))
        for twin in (_issued(partner, customer, "1001"), _invoice(partner, customer, " 1001")):
            with pytest.raises(ConcurrencyConflict) as caught:
                self.store_aggregates(store, twin)
            _assert_taken(caught.value, "invoice", "1001", "invoice-number", "number")
        with store.unit_of_work() as uow:
            assert _invoice_ids(uow.invoices.list(partner.id)) == [first.id]
            assert uow.invoices.get_by_number(partner.id, "1001") == archived
        assert len(self.pending(store)) == len(before) + 1
        # Another partner's numbers are its own.
        self.store_aggregates(store, _invoice(other, theirs, "1001"))

    def test_two_new_invoices_with_one_number_in_one_unit_of_work_conflict(
        self, store: Store
    ) -> None:
        partner, customer = self.partner_with_customer(store)
        with pytest.raises(ConcurrencyConflict):
            self.store_aggregates(
                store, _invoice(partner, customer, "7"), _invoice(partner, customer, "7")
            )
        with store.unit_of_work() as uow:
            assert uow.invoices.list(partner.id).items == ()

    def test_a_renumbered_invoice_frees_its_old_number(self, store: Store) -> None:
        partner, customer, invoice = self._stored_invoice(store)
        (renumbered,) = self.store_aggregates(store, attrs.evolve(invoice, number="1001-A"))
        (new,) = self.store_aggregates(store, _invoice(partner, customer, "1001"))
        with store.unit_of_work() as uow:
            assert uow.invoices.get_by_number(partner.id, "1001") == new
            assert uow.invoices.get_by_number(partner.id, "1001-A") == renumbered
        with pytest.raises(ConcurrencyConflict):
            self.store_aggregates(store, attrs.evolve(renumbered, number="1001"))

    def test_a_number_given_up_in_the_unit_of_work_is_free_in_it(self, store: Store) -> None:
        """An invoice renumbered twice in one unit of work frees the number
        it took in between: a new invoice takes that number in the same
        unit of work, and both commit."""
        partner, customer, invoice = self._stored_invoice(store)
        with store.unit_of_work() as uow:
            first = uow.invoices.save(attrs.evolve(invoice, number="X-1"))
            second = uow.invoices.save(attrs.evolve(first, number="X-2"))
            new = uow.invoices.save(_invoice(partner, customer, "X-1"))
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.invoices.get_by_number(partner.id, "X-1") == new
            assert uow.invoices.get_by_number(partner.id, "X-2") == second
            with pytest.raises(NotFound):
                uow.invoices.get_by_number(partner.id, "1001")

    def test_invoice_by_external_ref(self, store: Store) -> None:
        partner, customer = self.partner_with_customer(store)
        other = self.store_partner(store, _partner("Contoso"))
        ref = ExternalRef("connectwise", "4711")
        synced, _ = self.store_aggregates(
            store,
            _invoice(partner, customer, "CW-1", ref=ref, status=InvoiceStatus.VOID),
            _invoice(partner, customer, "CW-2", ref=ExternalRef("connectwise", "4712")),
        )
        with store.unit_of_work() as uow:
            assert uow.invoices.get_by_external_ref(partner.id, ref) == synced
            for missing in (ExternalRef("xero", "4711"), ExternalRef("connectwise", "1")):
                with pytest.raises(NotFound):
                    uow.invoices.get_by_external_ref(partner.id, missing)
            with pytest.raises(NotFound):
                uow.invoices.get_by_external_ref(other.id, ref)

    def test_an_invoice_external_ref_is_unique_per_partner(self, store: Store) -> None:
        partner, customer = self.partner_with_customer(store)
        other = self.store_partner(store, _partner("Contoso"))
        (theirs,) = self.store_customers(store, _customer(other))
        ref = ExternalRef("connectwise", "4711")
        (first,) = self.store_aggregates(store, _invoice(partner, customer, "CW-1", ref=ref))
        with pytest.raises(ConcurrencyConflict) as caught:
            self.store_aggregates(store, _invoice(partner, customer, "CW-2", ref=ref))
        _assert_taken(caught.value, "invoice", str(ref), "invoice-ref", "external_ref")
        with pytest.raises(ConcurrencyConflict):
            self.store_aggregates(
                store,
                _invoice(partner, customer, "X", ref=ExternalRef("xero", "1")),
                _invoice(partner, customer, "Y", ref=ExternalRef("xero", "1")),
            )
        self.store_aggregates(
            store,
            _invoice(other, theirs, "CW-1", ref=ref),
            _invoice(partner, customer, "X-1", ref=ExternalRef("xero", "4711")),
        )
        with store.unit_of_work() as uow:
            assert uow.invoices.get_by_external_ref(partner.id, ref) == first
            assert len(uow.invoices.list(partner.id)) == 2

    def test_an_invoice_keeps_its_customer_and_external_ref(self, store: Store) -> None:
        """I1 and I10, kept by the store too: an invoice moved to another
        customer (whose users would then see it), or given another source
        record, by ``attrs.evolve``, is refused."""
        partner, customer = self.partner_with_customer(store)
        (other,) = self.store_customers(store, _customer(partner, "Initech"))
        ref = ExternalRef("connectwise", "4711")
        (stored,) = self.store_aggregates(store, _invoice(partner, customer, "CW-1", ref=ref))
        moved = attrs.evolve(stored, customer_id=other.id)
        stored = _refused_change(
            store, stored, moved, repository="invoices", field="customer_id", rule="I1"
        )
        for new_ref in (None, ExternalRef("connectwise", "4712")):
            changed = attrs.evolve(stored, external_ref=new_ref)
            stored = _refused_change(
                store, stored, changed, repository="invoices", field="external_ref", rule="I10"
            )
        with store.unit_of_work() as uow:
            assert uow.invoices.list(partner.id, customer_id=other.id).items == ()
            assert uow.invoices.get_by_external_ref(partner.id, ref).id == stored.id

    def test_an_invoice_keeps_its_currency(self, store: Store) -> None:
        """I2, kept by the store too: a partly paid invoice rewritten into
        another currency by ``attrs.evolve`` (its amounts too, so that it
        passes its own checks) is refused, and its payments stay in its
        currency."""
        partner, customer = self.partner_with_customer(store)
        (stored,) = self.store_aggregates(store, _invoice(partner, customer, paid="30.00"))
        stored = _refused_change(
            store, stored, _in_cad(stored), repository="invoices", field="currency", rule="I2"
        )
        with store.unit_of_work() as uow:
            read = uow.invoices.get(partner.id, stored.id)
        assert read.amount_paid == Money("30.00", "USD")

    # the invoice's customer, as it stands at commit (C8, I1)

    def test_a_new_invoice_for_a_customer_archived_meanwhile_is_refused(self, store: Store) -> None:
        """C8: an invoice issued for a customer read before another unit of
        work archived it is refused at commit, and nothing is written."""
        partner, customer = self.partner_with_customer(store)
        with store.unit_of_work() as uow:
            read = uow.customers.get(partner.id, customer.id)
            self.store_customers(store, customer.archive())
            before = self.pending(store)

            def issue() -> None:
                uow.invoices.save(_issued(partner, read))
                uow.commit()  # adapters that find it at save never get here

            with pytest.raises(InvariantViolation) as caught:
                issue()
        assert (caught.value.rule, caught.value.path) == ("C8", "customer_id")
        with store.unit_of_work() as uow:
            assert uow.invoices.list(partner.id).items == ()
        assert self.pending(store) == before

    def test_a_new_invoice_for_no_customer_of_its_partner_is_refused(self, store: Store) -> None:
        """I1: a new invoice names a stored customer of its partner, also
        when ``attrs.evolve`` (which the commands never do) names another."""
        partner, customer = self.partner_with_customer(store)
        other = self.store_partner(store, _partner("Contoso"))
        (theirs,) = self.store_customers(store, _customer(other))
        before = self.pending(store)
        for customer_id in (CustomerId.new(), theirs.id):
            invoice = attrs.evolve(_invoice(partner, customer), customer_id=customer_id)
            with pytest.raises(InvariantViolation) as caught:
                self.store_aggregates(store, invoice)
            assert (caught.value.rule, caught.value.path) == ("I1", "customer_id")
        with store.unit_of_work() as uow:
            assert uow.invoices.list(partner.id).items == ()
            assert uow.invoices.list(other.id).items == ()
        assert self.pending(store) == before

    def test_of_several_invoices_refused_the_smallest_id_is_named(self, store: Store) -> None:
        """Every adapter names the same new invoice: the one with the
        smallest id, whether its customer is archived (C8) or no stored
        customer of its partner (I1), whatever the order of the saves."""
        partner, customer = self.partner_with_customer(store)
        (archived,) = self.store_customers(store, _customer(partner, "Initech"))
        self.store_customers(store, archived.archive())
        invoices = [
            attrs.evolve(
                _invoice(partner, archived, f"{1001 + index}"),
                id=invoice_id,
                customer_id=archived.id if index % 2 == 0 else CustomerId.new(),
            )
            for index, invoice_id in enumerate(_tied_ids(InvoiceId, 4))
        ]
        for saves in (invoices, invoices[::-1]):
            for first, rule in zip(invoices[:2], ("C8", "I1"), strict=True):
                others = [i for i in saves if str(i.id) >= str(first.id)]
                with pytest.raises(InvariantViolation) as caught:
                    self.store_aggregates(store, *others)
                assert (caught.value.rule, caught.value.path) == (rule, "customer_id")
                assert f"invoice {first.id} " in str(caught.value)
        with store.unit_of_work() as uow:
            assert uow.invoices.list(partner.id).items == ()
        assert self.read_customer(store, partner.id, customer.id) == customer

    def test_a_customer_and_its_first_invoice_in_one_unit_of_work(self, store: Store) -> None:
        """What counts is the customer at commit, whatever the order of the
        saves: stored with its first invoice, it is fine; archived in the
        same commit, it gets no new invoice."""
        partner = self.store_partner(store, _partner())
        customer = _created(partner)
        invoice = _issued(partner, customer)
        with pytest.raises(InvariantViolation) as caught:
            self.store_aggregates(store, invoice)
        assert (caught.value.rule, caught.value.path) == ("I1", "customer_id")
        self.store_aggregates(store, invoice, customer)
        later = _created(partner, "Initech", "bo@initech.example")

        def issue_and_archive() -> None:
            with store.unit_of_work() as uow:
                stored = uow.customers.save(later)
                uow.invoices.save(_issued(partner, later, "1002"))
                uow.customers.save(stored.archive())
                uow.commit()  # adapters that find it at save never get here

        with pytest.raises(InvariantViolation) as caught:
            issue_and_archive()
        assert (caught.value.rule, caught.value.path) == ("C8", "customer_id")
        with store.unit_of_work() as uow:
            assert _invoice_ids(uow.invoices.list(partner.id)) == [invoice.id]
            assert _ids(uow.customers.list(partner.id)) == [customer.id]

    def test_an_invoice_committed_before_an_archive_stays(self, store: Store) -> None:
        """C8 keeps new invoices out: one stored before the customer was
        archived stays the customer's, and may still change."""
        partner, customer = self.partner_with_customer(store)
        (invoice,) = self.store_aggregates(store, _issued(partner, customer))
        self.store_customers(store, customer.archive())
        (changed,) = self.store_aggregates(store, invoice.update(partner, memo="Thank you!"))
        with pytest.raises(InvariantViolation) as caught:
            self.store_aggregates(store, _issued(partner, customer, "1002"))
        assert (caught.value.rule, caught.value.path) == ("C8", "customer_id")
        with store.unit_of_work() as uow:
            assert _invoice_ids(uow.invoices.list(partner.id, customer_id=customer.id)) == [
                invoice.id
            ]
            assert uow.invoices.get(partner.id, invoice.id) == changed

    # listing

    def test_list_orders_by_due_date_number_then_id(self, store: Store) -> None:
        partner, _, catalog = self._invoice_catalog(store)
        with store.unit_of_work() as uow:
            page = uow.invoices.list(partner.id)
        assert self._invoice_names(page, catalog) == "gfcabdeihj"
        assert _invoice_ids(page) == _invoices_in_order(
            [i for i in catalog.values() if i.partner_id == partner.id]
        )
        assert (page.has_previous_page, page.has_next_page) == (False, False)

    def test_numbers_compare_by_code_point(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        customers = self.store_customers(store, *(_customer(partner, f"C{n}") for n in range(4)))
        saved = self.store_aggregates(
            store,
            *(
                _invoice(partner, c, number)
                for c, number in zip(customers, ["b", "B", "a", "Ä"], strict=True)
            ),
        )
        with store.unit_of_work() as uow:
            page = uow.invoices.list(partner.id)
        assert [i.number for i in page] == ["B", "a", "b", "Ä"]
        assert _invoice_ids(page) == _invoices_in_order(saved)

    def test_list_filters(self, store: Store) -> None:
        partner, (globex, initech, _), catalog = self._invoice_catalog(store)
        t = _TODAY
        with store.unit_of_work() as uow:

            def names(**filters: Any) -> str:
                return self._invoice_names(uow.invoices.list(partner.id, **filters), catalog)

            assert names(status=InvoiceStatus.OPEN) == "cabeihj"
            assert names(status=InvoiceStatus.PAID) == "d"
            assert names(status=InvoiceStatus.VOID) == "f"
            assert names(status=InvoiceStatus.ARCHIVED) == "g"
            assert names(customer_id=initech.id) == "ceh"
            assert names(customer_id=globex.id, status=InvoiceStatus.OPEN) == "abij"
            assert names(customer_id=CustomerId.new()) == ""
            assert names(due_from=t - 10 * _DAY, due_to=t) == "cabde"
            assert names(due_from=t - 10 * _DAY, due_to=t - 10 * _DAY) == "cab"
            assert names(due_from=t + _DAY) == "ihj"
            assert names(due_to=t - 20 * _DAY) == "gf"
            assert names(due_from=t + 11 * _DAY) == ""
            assert names(due_from=t, due_to=t - _DAY) == ""
            assert names(customer_id=initech.id, due_from=t, status=InvoiceStatus.OPEN) == "eh"

    def test_overdue(self, store: Store) -> None:
        partner, (globex, initech, theirs), catalog = self._invoice_catalog(store)
        t = _TODAY
        with store.unit_of_work() as uow:

            def names(as_of: dt.date, **filters: Any) -> str:
                return self._invoice_names(
                    uow.invoices.overdue(partner.id, as_of, **filters), catalog
                )

            # Due before the day, open (void, archived and paid ones are not).
            assert names(t) == "cab"
            assert names(t + _DAY) == "cabe"
            assert names(t - 10 * _DAY) == ""
            assert names(t + 11 * _DAY) == "cabeihj"
            assert names(t, customer_id=globex.id) == "ab"
            assert names(t, customer_id=initech.id) == "c"
            assert names(t, limit=2) == "ca"
            every = uow.invoices.overdue(partner.id, t + 11 * _DAY)
            assert all(invoice.is_overdue(t + 11 * _DAY) for invoice in every)
            other = uow.invoices.overdue(theirs.partner_id, t)
            assert other.items == (catalog["k"],)

    def test_invoice_pages_forwards(self, store: Store) -> None:
        partner, _, catalog = self._invoice_catalog(store)
        with store.unit_of_work() as uow:
            first = uow.invoices.list(partner.id, limit=3)
            assert self._invoice_names(first, catalog) == "gfc"
            assert (first.has_previous_page, first.has_next_page) == (False, True)
            second = uow.invoices.list(partner.id, limit=3, after=first.end_cursor)
            assert self._invoice_names(second, catalog) == "abd"
            assert (second.has_previous_page, second.has_next_page) == (True, True)
            third = uow.invoices.list(partner.id, limit=4, after=second.end_cursor)
            assert self._invoice_names(third, catalog) == "eihj"
            assert (third.has_previous_page, third.has_next_page) == (True, False)
            beyond = uow.invoices.list(partner.id, limit=3, after=third.end_cursor)
            assert beyond.items == ()
            assert (beyond.start_cursor, beyond.end_cursor) == (None, None)
            assert (beyond.has_previous_page, beyond.has_next_page) == (True, False)

    def test_invoice_pages_backwards_in_ascending_order(self, store: Store) -> None:
        partner, _, catalog = self._invoice_catalog(store)
        with store.unit_of_work() as uow:
            tail = uow.invoices.list(
                partner.id, limit=10, after=uow.invoices.list(partner.id, limit=6).end_cursor
            )
            assert self._invoice_names(tail, catalog) == "eihj"
            middle = uow.invoices.list(partner.id, limit=3, before=tail.start_cursor)
            assert self._invoice_names(middle, catalog) == "abd"
            assert (middle.has_previous_page, middle.has_next_page) == (True, True)
            first = uow.invoices.list(partner.id, limit=5, before=middle.start_cursor)
            assert self._invoice_names(first, catalog) == "gfc"
            assert (first.has_previous_page, first.has_next_page) == (False, True)
            before_all = uow.invoices.list(partner.id, limit=3, before=first.start_cursor)
            assert before_all.items == ()
            assert (before_all.start_cursor, before_all.end_cursor) == (None, None)
            assert (before_all.has_previous_page, before_all.has_next_page) == (False, True)

    def test_paging_with_filters_and_overdue(self, store: Store) -> None:
        partner, (globex, _, _), catalog = self._invoice_catalog(store)
        with store.unit_of_work() as uow:
            seen = ""
            after: str | None = None
            while True:
                page = uow.invoices.list(
                    partner.id,
                    customer_id=globex.id,
                    status=InvoiceStatus.OPEN,
                    limit=1,
                    after=after,
                )
                seen += self._invoice_names(page, catalog)
                assert page.has_previous_page is (after is not None)
                if not page.has_next_page:
                    break
                after = page.end_cursor
            assert seen == "abij"
            first = uow.invoices.overdue(partner.id, _TODAY, limit=2)
            assert self._invoice_names(first, catalog) == "ca"
            assert (first.has_previous_page, first.has_next_page) == (False, True)
            rest = uow.invoices.overdue(partner.id, _TODAY, limit=2, after=first.end_cursor)
            assert self._invoice_names(rest, catalog) == "b"
            assert (rest.has_previous_page, rest.has_next_page) == (True, False)
            back = uow.invoices.overdue(partner.id, _TODAY, limit=5, before=rest.start_cursor)
            assert self._invoice_names(back, catalog) == "ca"
            assert (back.has_previous_page, back.has_next_page) == (False, True)

    def test_paging_is_stable_under_inserts_and_changes(self, store: Store) -> None:
        partner, (globex, _, _), catalog = self._invoice_catalog(store)
        with store.unit_of_work() as uow:
            first = uow.invoices.list(partner.id, status=InvoiceStatus.OPEN, limit=3)
        assert self._invoice_names(first, catalog) == "cab"
        # A new invoice sorts before the cursor, the last one seen is paid.
        early = _invoice(partner, globex, "0001", _TODAY - 40 * _DAY)
        paid = catalog["b"]._apply_payment(PaymentId.new(), Money("70.00", partner.currency))
        self.store_aggregates(store, early, paid)
        with store.unit_of_work() as uow:
            rest = uow.invoices.list(
                partner.id, status=InvoiceStatus.OPEN, limit=10, after=first.end_cursor
            )
            assert self._invoice_names(rest, catalog) == "eihj"
            assert rest.has_previous_page
            back = uow.invoices.list(
                partner.id, status=InvoiceStatus.OPEN, limit=10, before=rest.start_cursor
            )
            assert _invoice_ids(back) == [early.id, catalog["c"].id, catalog["a"].id]

    def test_no_previous_invoice_page_when_nothing_matching_comes_before_the_cursor(
        self, store: Store
    ) -> None:
        """The cursor's invoice left the filter (it was paid), and no open
        invoice comes before the cursor: there is no previous page, though a
        cursor was given."""
        partner, customer = self.partner_with_customer(store)
        first, *rest = self.store_aggregates(
            store,
            *(_invoice(partner, customer, f"100{n}", _TODAY + n * _DAY) for n in range(3)),
        )
        with store.unit_of_work() as uow:
            page = uow.invoices.list(partner.id, status=InvoiceStatus.OPEN, limit=1)
            assert _invoice_ids(page) == [first.id]
        paid = first._apply_payment(PaymentId.new(), first.balance)
        self.store_aggregates(store, paid)
        with store.unit_of_work() as uow:
            after = uow.invoices.list(
                partner.id, status=InvoiceStatus.OPEN, limit=5, after=page.end_cursor
            )
        assert _invoice_ids(after) == [i.id for i in rest]
        assert (after.has_previous_page, after.has_next_page) == (False, False)

    def test_no_next_invoice_page_when_nothing_matching_comes_after_the_before_cursor(
        self, store: Store
    ) -> None:
        """Paging back from the last open invoice, which was then paid:
        no open invoice comes at or after the cursor, so there is no next
        page, though open invoices come before it."""
        partner, customer = self.partner_with_customer(store)
        *rest, last = self.store_aggregates(
            store,
            *(_invoice(partner, customer, f"100{n}", _TODAY + n * _DAY) for n in range(3)),
        )
        with store.unit_of_work() as uow:
            page = uow.invoices.list(partner.id, status=InvoiceStatus.OPEN, limit=5)
            assert _invoice_ids(page)[-1] == last.id
        self.store_aggregates(store, last._apply_payment(PaymentId.new(), last.balance))
        with store.unit_of_work() as uow:
            before = uow.invoices.list(
                partner.id, status=InvoiceStatus.OPEN, limit=5, before=page.end_cursor
            )
        assert _invoice_ids(before) == [i.id for i in rest]
        assert (before.has_previous_page, before.has_next_page) == (False, False)

    @pytest.mark.parametrize(
        ("filters", "path"),
        [
            ({"limit": 0}, "limit"),
            ({"limit": MAX_PAGE_SIZE + 1}, "limit"),
            ({"after": "not a cursor"}, "after"),
            ({"after": "WzEsMl0", "before": None}, "after"),
            ({"due_from": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}, "due_from"),
            ({"due_to": "2026-01-01"}, "due_to"),
            ({"status": "late"}, "status"),
        ],
    )
    def test_list_refuses_bad_arguments(
        self, store: Store, filters: dict[str, Any], path: str
    ) -> None:
        partner = self.store_partner(store, _partner())
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
            uow.invoices.list(partner.id, **filters)
        assert caught.value.paths == [path]

    @pytest.mark.parametrize("listing", ["list", "overdue"])
    @pytest.mark.parametrize("path", ["after", "before"])
    def test_listings_refuse_a_customer_listings_cursor(
        self, store: Store, listing: str, path: str
    ) -> None:
        partner, _ = self.partner_with_customer(store)
        with store.unit_of_work() as uow:
            page: dict[str, Any] = {path: uow.customers.list(partner.id).end_cursor}
            invoices: Any = uow.invoices
            args = () if listing == "list" else (_TODAY,)
            with pytest.raises(ValidationError) as caught:
                getattr(invoices, listing)(partner.id, *args, **page)
        assert (caught.value.paths, caught.value.codes) == ([path], ["invalid_cursor"])

    @pytest.mark.parametrize(
        "parts",
        [
            ["2026-02-01 1001", "inv_1"],  # no listing
            ["invoices", "zzz", "inv_1"],  # not a due date and a number
            ["invoices", "2026-02-01", "inv_1"],
            ["invoices", "2026-02-30 1001", "inv_1"],
            ["invoices", "2026-02-01 1001", "cus_1"],  # not an invoice id
            ["customers", "globex", "cus_1"],
        ],
    )
    def test_listings_refuse_a_hand_made_cursor(self, store: Store, parts: list[str]) -> None:
        partner = self.store_partner(store, _partner())
        cursor = _hand_made_cursor(parts)
        with store.unit_of_work() as uow:
            calls: tuple[Callable[[], object], ...] = (
                lambda: uow.invoices.list(partner.id, before=cursor),
                lambda: uow.invoices.overdue(partner.id, _TODAY, before=cursor),
            )
            for call in calls:
                with pytest.raises(ValidationError) as caught:
                    call()
                assert (caught.value.paths, caught.value.codes) == (["before"], ["invalid_cursor"])

    def test_list_and_overdue_share_their_cursors(self, store: Store) -> None:
        partner, _, catalog = self._invoice_catalog(store)
        with store.unit_of_work() as uow:
            first = uow.invoices.list(partner.id, limit=1)
            assert self._invoice_names(first, catalog) == "g"
            overdue = uow.invoices.overdue(partner.id, _TODAY, after=first.end_cursor)
            assert self._invoice_names(overdue, catalog) == "cab"
            back = uow.invoices.list(partner.id, before=overdue.end_cursor)
            assert self._invoice_names(back, catalog) == "gfca"

    def test_several_bad_arguments_are_named_in_one_order(self, store: Store) -> None:
        # Every store checks a listing's page first, then its scope (the
        # partner, the customer), then its filters: with several wrong, each
        # names the same one.
        with store.unit_of_work() as uow:
            invoices: Any = uow.invoices  # called as a caller's mistakes would
            customers: Any = uow.customers
            partner = PartnerId.new()
            calls: tuple[tuple[Callable[[], object], str], ...] = (
                (lambda: invoices.list("nope", status="late"), "partner_id"),
                (lambda: invoices.list("nope", limit=0), "limit"),
                (lambda: invoices.list(partner, customer_id=1, due_to="x"), "customer_id"),
                (lambda: invoices.overdue("nope", "2026-01-01"), "partner_id"),
                (lambda: invoices.overdue("nope", "x", limit=0), "limit"),
                (lambda: customers.list("nope", limit=0), "limit"),
                (lambda: customers.list("nope", status="gone"), "partner_id"),
                (lambda: customers.list(partner, tag=1, status="gone"), "tag"),
            )
            for call, path in calls:
                with pytest.raises(ValidationError) as caught:
                    call()
                assert caught.value.paths == [path]

    def test_overdue_refuses_a_datetime(self, store: Store) -> None:
        partner = self.store_partner(store, _partner())
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as caught:
            uow.invoices.overdue(partner.id, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        assert caught.value.paths == ["as_of"]

    def test_another_partners_invoices_in_the_unit_of_work_stay_theirs(self, store: Store) -> None:
        """Each partner's queries answer with its own invoices alone, before
        the commit as after it, in a unit of work that saves another
        partner's with the same number and reference."""
        partner, customer = self.partner_with_customer(store)
        other = self.store_partner(store, _partner("Contoso"))
        (someone,) = self.store_customers(store, _customer(other))
        ref = ExternalRef("xero", "1")
        with store.unit_of_work() as uow:
            theirs = uow.invoices.save(_invoice(other, someone, ref=ref, due=_TODAY - _DAY))
            assert uow.invoices.list(partner.id).items == ()
            assert uow.invoices.overdue(partner.id, _TODAY).items == ()
            with pytest.raises(NotFound):
                uow.invoices.get_by_number(partner.id, "1001")
            with pytest.raises(NotFound):
                uow.invoices.get_by_external_ref(partner.id, ref)
            with pytest.raises(NotFound):
                uow.invoices.get(partner.id, theirs.id)
            mine = uow.invoices.save(_invoice(partner, customer, ref=ref, due=_TODAY - _DAY))
            for _ in range(2):  # in the unit of work, then committed
                for party, invoice in ((partner, mine), (other, theirs)):
                    assert uow.invoices.list(party.id).items == (invoice,)
                    assert uow.invoices.overdue(party.id, _TODAY).items == (invoice,)
                    assert uow.invoices.get_by_number(party.id, "1001") == invoice
                    assert uow.invoices.get_by_external_ref(party.id, ref) == invoice
                uow.commit()

    def test_invoice_reads_see_the_blocks_own_saves(self, store: Store) -> None:
        partner, customer = self.partner_with_customer(store)
        ref = ExternalRef("xero", "1")
        with store.unit_of_work() as uow:
            invoice = uow.invoices.save(_invoice(partner, customer, ref=ref, due=_TODAY - _DAY))
            assert uow.invoices.get(partner.id, invoice.id) == invoice
            assert uow.invoices.get_by_number(partner.id, "1001") == invoice
            assert uow.invoices.get_by_external_ref(partner.id, ref) == invoice
            assert uow.invoices.list(partner.id).items == (invoice,)
            assert uow.invoices.overdue(partner.id, _TODAY).items == (invoice,)
            with store.unit_of_work() as reader:
                with pytest.raises(NotFound):
                    reader.invoices.get(partner.id, invoice.id)
                assert reader.invoices.list(partner.id).items == ()

    def test_invoice_reads_see_a_stored_invoice_saved_again_once(self, store: Store) -> None:
        """An invoice the unit of work renumbers answers every query once, in
        its new state, before the commit as after it: never its stored copy
        as well, and not by the number it gave up."""
        partner, customer = self.partner_with_customer(store)
        ref = ExternalRef("xero", "1")
        (invoice,) = self.store_aggregates(
            store, _invoice(partner, customer, ref=ref, due=_TODAY - _DAY)
        )
        with store.unit_of_work() as uow:
            read = uow.invoices.get(partner.id, invoice.id)
            renumbered = uow.invoices.save(attrs.evolve(read, number="1001-A"))
            for _ in range(2):  # in the unit of work, then committed
                with pytest.raises(NotFound):
                    uow.invoices.get_by_number(partner.id, "1001")
                assert uow.invoices.get_by_number(partner.id, "1001-A") == renumbered
                assert uow.invoices.get_by_external_ref(partner.id, ref) == renumbered
                assert uow.invoices.list(partner.id).items == (renumbered,)
                assert uow.invoices.overdue(partner.id, _TODAY).items == (renumbered,)
                uow.commit()

    def test_a_new_invoice_in_the_unit_of_work_is_not_another_partners(self, store: Store) -> None:
        """Tenant isolation holds for a new invoice before anything is
        written: another partner does not get it by its id."""
        partner, customer = self.partner_with_customer(store)
        other = self.store_partner(store, _partner("Contoso"))
        with store.unit_of_work() as uow:
            new = uow.invoices.save(_invoice(partner, customer))
            with pytest.raises(NotFound):
                uow.invoices.get(other.id, new.id)
            assert uow.invoices.get(partner.id, new.id) == new


# -- payments ----------------------------------------------------------------------


class PaymentRepositoryContract(_StoreFactory):
    """``uow.payments``: get, by invoice, by idempotency key (unique per
    partner), versions, and a payment stored with its invoices or not at all."""

    def _open_invoices(
        self, store: Store, partner: Partner | None = None
    ) -> tuple[Partner, Customer, Invoice, Invoice]:
        if partner is None:
            partner = self.store_partner(store, _partner())
        (customer,) = self.store_customers(store, _customer(partner))
        one, two = self.store_aggregates(
            store,
            _invoice(partner, customer, "1001"),
            _invoice(partner, customer, "1002", amount="50.00"),
        )
        return partner, customer, one, two

    @staticmethod
    def _pay(
        partner: Partner,
        customer: Customer,
        invoices: Sequence[Invoice],
        key: str,
        *,
        amounts: dict[InvoiceId, str] | None = None,
        day: int = 2,
    ) -> tuple[Payment, tuple[Invoice, ...]]:
        return pay_invoices(
            partner,
            customer,
            invoices,
            payer=customer.users[0],
            method="ach",
            idempotency_key=key,
            amounts=amounts,
            at=_at(day),
        )

    def _paid(self, store: Store) -> tuple[Partner, Customer, Payment, tuple[Invoice, ...]]:
        partner, customer, one, two = self._open_invoices(store)
        payment, touched = self._pay(
            partner, customer, [one, two], "key-1", amounts={one.id: "40.00", two.id: "50.00"}
        )
        saved = self.store_aggregates(store, payment, *touched)
        return partner, customer, saved[0], tuple(saved[1:])

    # get and save

    def test_a_payment_and_its_invoices_are_stored_together(self, store: Store) -> None:
        partner, customer, one, two = self._open_invoices(store)
        payment, touched = self._pay(partner, customer, [one, two], "key-1")
        with store.unit_of_work() as uow:
            saved = uow.payments.save(payment)
            stored = [uow.invoices.save(i) for i in touched]
            uow.commit()
        assert saved == attrs.evolve(payment, version=1)
        assert saved.events == ()
        with store.unit_of_work() as uow:
            got = uow.payments.get(partner.id, payment.id)
            assert got == saved
            assert to_dict(got) == to_dict(saved)
            assert [uow.invoices.get(partner.id, i.id) for i in touched] == stored
            assert all(i.status is InvoiceStatus.PAID for i in stored)
        assert [m.event.topic for m in self.pending(store)] == ["invoice_paid", "invoice_paid"]

    def test_the_longest_keys_fit_the_store(self, store: Store) -> None:
        """Every indexed text at its longest, in characters of four UTF-8
        bytes each (PostgreSQL refuses an index row over about 2,700 bytes)."""
        wide = "\U0001f600"
        partner = self.store_partner(store, _partner(syncs=[wide * 50]))
        ref = ExternalRef(wide * 50, wide * 255)
        (customer,) = self.store_customers(store, _customer(partner, wide * 200, ref=ref))
        (invoice,) = self.store_aggregates(store, _invoice(partner, customer, wide * 50, ref=ref))
        payment, touched = self._pay(partner, customer, [invoice], wide * 255)
        self.store_aggregates(store, payment, *touched)
        with store.unit_of_work() as uow:
            assert uow.customers.get_by_external_ref(partner.id, ref).id == customer.id
            assert _ids(uow.customers.list(partner.id, name_prefix=wide * 200)) == [customer.id]
            assert uow.invoices.get_by_external_ref(partner.id, ref).id == invoice.id
            assert uow.invoices.get_by_number(partner.id, wide * 50).id == invoice.id
            found = uow.payments.get_by_idempotency_key(partner.id, wide * 255)
            assert found is not None
            assert found.id == payment.id

    def test_a_payment_keeps_its_customer_and_its_key(self, store: Store) -> None:
        """I1 and idempotency, kept by the store too: a payment moved to
        another customer, or under another key, by ``attrs.evolve`` is
        refused, and its key still finds it."""
        partner, _, payment, _ = self._paid(store)
        (other,) = self.store_customers(store, _customer(partner, "Initech"))
        moved = attrs.evolve(payment, customer_id=other.id)
        stored = _refused_change(
            store, payment, moved, repository="payments", field="customer_id", rule="I1"
        )
        rekeyed = attrs.evolve(stored, idempotency_key="key-2")
        stored = _refused_change(
            store,
            stored,
            rekeyed,
            repository="payments",
            field="idempotency_key",
            rule="idempotency",
        )
        with store.unit_of_work() as uow:
            assert uow.payments.get_by_idempotency_key(partner.id, "key-1") == stored
            assert uow.payments.get_by_idempotency_key(partner.id, "key-2") is None

    def test_a_payment_keeps_its_currency(self, store: Store) -> None:
        """I2, kept by the store too: a payment rewritten into another
        currency by ``attrs.evolve`` (its allocations and method too, so that
        it passes its own checks) is refused; it stays in its invoices'."""
        partner, _, payment, invoices = self._paid(store)
        stored = _refused_change(
            store, payment, _in_cad(payment), repository="payments", field="currency", rule="I2"
        )
        with store.unit_of_work() as uow:
            assert uow.payments.get_by_idempotency_key(partner.id, "key-1") == stored
            for invoice in invoices:
                assert uow.invoices.get(partner.id, invoice.id).currency == stored.currency

    def test_payments_by_invoice_follow_the_stored_allocations(self, store: Store) -> None:
        """The commands never move a payment's allocations, and no save does
        (rule ``I5``): each invoice's payments are the ones stored, on every
        store, before and after a save that tries."""
        partner, _, payment, (one, two) = self._paid(store)
        moved = attrs.evolve(payment, allocations=payment.allocations[1:])
        with store.unit_of_work() as uow:
            with pytest.raises(InvariantViolation) as caught:
                uow.payments.save(moved)
            uow.commit()
            assert (caught.value.rule, caught.value.path) == ("I5", "allocations")
            assert uow.payments.for_invoice(partner.id, one.id) == [payment]
            assert uow.payments.for_invoice(partner.id, two.id) == [payment]

    def test_unknown_or_another_partners_payment_is_not_found(self, store: Store) -> None:
        partner, _, payment, touched = self._paid(store)
        other = self.store_partner(store, _partner("Contoso"))
        with store.unit_of_work() as uow:
            with pytest.raises(NotFound):
                uow.payments.get(partner.id, PaymentId.new())
            with pytest.raises(NotFound):
                uow.payments.get(other.id, payment.id)
            assert uow.payments.get_by_idempotency_key(other.id, "key-1") is None
            assert uow.payments.for_invoice(other.id, touched[0].id) == []

    def test_changes_are_versioned_and_their_events_stored(self, store: Store) -> None:
        partner, _, payment, _ = self._paid(store)
        succeeded = payment.succeed(_at(3))
        (saved,) = self.store_aggregates(store, succeeded)
        assert saved.version == 2
        before = self.pending(store)
        assert before[-1].event.topic == "payment_succeeded"
        with pytest.raises(ConcurrencyConflict):
            self.store_aggregates(store, payment.succeed(_at(4)))
        with pytest.raises(ConcurrencyConflict):
            self.store_aggregates(store, attrs.evolve(payment, version=0))
        with pytest.raises(ConcurrencyConflict):
            self.store_aggregates(store, attrs.evolve(_another(payment), version=3))
        with store.unit_of_work() as uow:
            assert uow.payments.get(partner.id, payment.id) == saved
        assert self.pending(store) == before

    def _through_commands(self, store: Store) -> dict[str, Payment]:
        """A payment stored in each state the commands give one, each step
        saved as it is made (so every move is saved once): by bank debit,
        ``processing``, ``succeeded``, ``settled``, ``failed`` (rejected
        while processing), ``returned`` (failed once succeeded),
        ``unauthorized`` (returned as unauthorised while processing),
        ``refunded``; by card, ``declined`` and ``disputed``."""
        partner, customer, one, _ = self._open_invoices(store)
        made: dict[str, Payment] = {}

        def paid(key: str, method: str = "ach") -> tuple[Payment, tuple[Invoice, ...]]:
            payment, touched = pay_invoices(
                partner,
                customer,
                [one],
                payer=customer.users[0],
                method=method,
                idempotency_key=key,
                amounts={one.id: "10.00"},
                at=_at(2),
            )
            (payment,) = self.store_aggregates(store, payment)
            return payment, touched

        def saved(name: str, payment: Payment) -> Payment:
            (made[name],) = self.store_aggregates(store, payment)
            return made[name]

        payment, _ = paid("key-processing")
        made["processing"] = payment
        payment, _ = paid("key-succeeded")
        saved("succeeded", payment.succeed(_at(3)))
        payment, _ = paid("key-settled")
        saved("settled", saved("settled", payment.succeed(_at(3))).settle(_at(4)))
        payment, touched = paid("key-refunded")
        payment = saved("refunded", saved("refunded", payment.succeed(_at(3))).settle(_at(4)))
        saved("refunded", refund_payment(payment, touched, at=_at(5))[0])
        payment, touched = paid("key-failed")
        saved("failed", fail_payment(payment, touched, at=_at(3))[0])
        payment, touched = paid("key-returned")
        payment = saved("returned", payment.succeed(_at(3)))
        saved("returned", return_payment(payment, touched, at=_at(5))[0])
        payment, touched = paid("key-unauthorized")
        saved("unauthorized", return_payment(payment, touched, "unauthorized", at=_at(3))[0])
        payment, touched = paid("key-declined", "card")
        saved("declined", fail_payment(payment, touched, at=_at(3))[0])
        payment, touched = paid("key-disputed", "card")
        payment = saved("disputed", payment.succeed(_at(3)))
        saved("disputed", charge_back_payment(payment, touched, at=_at(5))[0])
        return made

    def test_a_payment_keeps_what_it_was_made_for(self, store: Store) -> None:
        """No command changes a payment's allocations (I5: a refund would
        give back another amount, its failure could not be recorded), the
        request it answers (``idempotency``: a retry refused, another
        request answered with it) nor when it was made: a save that does is
        refused, and nothing of its unit of work is written."""
        partner, _, payment, (one, two) = self._paid(store)
        first, second = payment.allocations
        ten = Money("10.00", payment.currency)
        at_fault = [
            (
                attrs.evolve(payment, allocations=(attrs.evolve(first, amount=ten), second)),
                "I5",
                "allocations[0].amount",
            ),
            (
                attrs.evolve(
                    payment, allocations=(first, attrs.evolve(second, invoice_id=InvoiceId.new()))
                ),
                "I5",
                "allocations[1].invoice_id",
            ),
            (attrs.evolve(payment, allocations=(first,)), "I5", "allocations"),
            (attrs.evolve(payment, allocations=(second, first)), "I5", "allocations[0].invoice_id"),
            (
                attrs.evolve(payment, request_fingerprint="0" * 64),
                "idempotency",
                "request_fingerprint",
            ),
            (attrs.evolve(payment, user_id=UserId.new()), "idempotency", "user_id"),
            (attrs.evolve(payment, method=PaymentMethodType.CARD), "idempotency", "method"),
            (
                attrs.evolve(payment, payment_method_id=PaymentMethodId.new()),
                "idempotency",
                "payment_method_id",
            ),
            (attrs.evolve(payment, created_at=_at(1)), "I6", "created_at"),
        ]
        for changed, rule, path in at_fault:
            _refused_history(store, payment, changed, rule, path)
        (succeeded,) = self.store_aggregates(store, payment.succeed(_at(3)))
        with store.unit_of_work() as uow:
            assert uow.payments.for_invoice(partner.id, one.id) == [succeeded]
            assert uow.payments.for_invoice(partner.id, two.id) == [succeeded]

    def test_a_payment_status_moves_only_as_the_commands_move_it(self, store: Store) -> None:
        """Every pair of statuses, from each state the commands store: a
        payment saved with another status is stored if the commands make
        that move (one or several of them: a payment succeeded, settled
        and refunded before it is saved again), else refused at ``status``
        (I6; I7 for a refund), nothing written. Failed, refunded and
        charged back are final."""
        made = self._through_commands(store)
        moved = refused = 0
        for stored in made.values():
            for status in PaymentStatus:
                posed = _posed_payment(stored, status)
                if status is stored.status or posed is None:
                    continue
                if (stored.status, status) in _PAYMENT_MOVES:
                    with store.unit_of_work() as uow:
                        assert uow.payments.save(posed).status is status
                    moved += 1
                else:
                    rule = "I7" if status is PaymentStatus.REFUNDED else "I6"
                    _refused_history(store, stored, posed, rule, "status")
                    refused += 1
        assert moved >= 10
        assert refused >= 20
        with store.unit_of_work() as uow:
            for stored in made.values():
                assert uow.payments.get(stored.partner_id, stored.id) == stored

    def test_a_payment_keeps_its_fees_and_times(self, store: Store) -> None:
        """A payment's fees are only added, a return or dispute fee as it
        is given back (I6), and once recorded, when it succeeded (I6) and
        when it settled (I7) never change nor are cleared (a payment cleared
        of its settlement would settle, and say so, again); neither is
        recorded once it no longer can be. A save that does otherwise is
        refused, and nothing of its unit of work is written."""
        made = self._through_commands(store)
        failed, settled, returned = made["failed"], made["settled"], made["returned"]
        fee = failed.fees[-1]
        at_fault = [
            (
                failed,
                attrs.evolve(failed, fees=(attrs.evolve(fee, name="Bank fee"),)),
                "I6",
                "fees",
            ),
            (failed, attrs.evolve(failed, succeeded_at=_at(3)), "I6", "succeeded_at"),
            (
                made["succeeded"],
                attrs.evolve(made["succeeded"], succeeded_at=_at(6)),
                "I6",
                "succeeded_at",
            ),
            (settled, attrs.evolve(settled, succeeded_at=_at(2)), "I6", "succeeded_at"),
            (settled, attrs.evolve(settled, settled_at=None), "I7", "settled_at"),
            (settled, attrs.evolve(settled, settled_at=_at(6)), "I7", "settled_at"),
            (
                made["refunded"],
                attrs.evolve(made["refunded"], settled_at=_at(6)),
                "I7",
                "settled_at",
            ),
            (returned, attrs.evolve(returned, settled_at=_at(6)), "I7", "settled_at"),
        ]
        for stored, changed, rule, path in at_fault:
            _refused_history(store, stored, changed, rule, path)
        assert settled.settle(_at(7)) is settled
        assert made["succeeded"].settle(_at(7)).settled_at == _at(7)

    def test_a_payment_cannot_move_to_another_partner(self, store: Store) -> None:
        partner, _, payment, _ = self._paid(store)
        other = self.store_partner(store, _partner("Contoso"))
        for version in (0, payment.version):
            with pytest.raises(ConcurrencyConflict):
                self.store_aggregates(
                    store,
                    attrs.evolve(payment, partner_id=other.id, version=version),
                )
        with store.unit_of_work() as uow:
            assert uow.payments.get(partner.id, payment.id) == payment
            assert uow.payments.get_by_idempotency_key(other.id, "key-1") is None

    # queries

    def test_get_by_idempotency_key(self, store: Store) -> None:
        partner, _, payment, _ = self._paid(store)
        with store.unit_of_work() as uow:
            assert uow.payments.get_by_idempotency_key(partner.id, "key-1") == payment
            assert uow.payments.get_by_idempotency_key(partner.id, " key-1 ") == payment
            for other in ("KEY-1", "key-2", "key"):
                assert uow.payments.get_by_idempotency_key(partner.id, other) is None

    def test_for_invoice_lists_every_status_oldest_first(self, store: Store) -> None:
        partner, customer, one, two = self._open_invoices(store)
        first, (one, two) = self._pay(
            partner, customer, [one, two], "k1", amounts={one.id: "10.00", two.id: "5.00"}, day=5
        )
        # Made earlier (by its time), stored later; one given back.
        second, (one,) = self._pay(partner, customer, [one], "k2", amounts={one.id: "20.00"}, day=3)
        second, (one,) = fail_payment(second, [one], at=_at(6))
        third, (two,) = self._pay(partner, customer, [two], "k3", amounts={two.id: "1.00"}, day=7)
        saved = self.store_aggregates(store, first, second, third, one, two)
        with store.unit_of_work() as uow:
            assert uow.payments.for_invoice(partner.id, one.id) == [saved[1], saved[0]]
            assert uow.payments.for_invoice(partner.id, two.id) == [saved[0], saved[2]]
            assert uow.payments.for_invoice(partner.id, InvoiceId.new()) == []

    def test_for_invoice_orders_equal_times_by_id(self, store: Store) -> None:
        partner, customer, one, _ = self._open_invoices(store)
        made = []
        for n in range(4):
            payment, (one,) = self._pay(partner, customer, [one], f"k{n}", amounts={one.id: "1.00"})
            made.append(payment)
        saved = self.store_aggregates(store, *made, one)[:-1]
        with store.unit_of_work() as uow:
            found = uow.payments.for_invoice(partner.id, one.id)
        assert found == sorted(saved, key=lambda p: p.id.value)

    # idempotency keys

    def test_an_idempotency_key_is_unique_per_partner(self, store: Store) -> None:
        partner, customer, payment, _ = self._paid(store)
        (three,) = self.store_aggregates(store, _invoice(partner, customer, "1003", amount="10.00"))
        before = self.pending(store)
        twin, touched = self._pay(partner, customer, [three], "key-1")
        with pytest.raises(ConcurrencyConflict) as caught:
            self.store_aggregates(store, twin, *touched)
        assert (caught.value.kind, caught.value.key) == ("payment", "key-1")
        with store.unit_of_work() as uow:
            assert uow.payments.get_by_idempotency_key(partner.id, "key-1") == payment
            assert uow.invoices.get(partner.id, three.id) == three
            with pytest.raises(NotFound):
                uow.payments.get(partner.id, twin.id)
        assert self.pending(store) == before
        # Another partner's keys are its own.
        other, theirs, four, _ = self._open_invoices(
            store, self.store_partner(store, _partner("Contoso"))
        )
        (elsewhere,) = self.store_aggregates(store, self._pay(other, theirs, [four], "key-1")[0])
        with store.unit_of_work() as uow:
            assert uow.payments.get_by_idempotency_key(other.id, "key-1") == elsewhere

    def test_two_new_payments_with_one_key_in_one_unit_of_work_conflict(self, store: Store) -> None:
        partner, customer, one, two = self._open_invoices(store)
        first, _ = self._pay(partner, customer, [one], "same")
        second, _ = self._pay(partner, customer, [two], "same")
        with pytest.raises(ConcurrencyConflict):
            self.store_aggregates(store, first, second)
        with store.unit_of_work() as uow:
            assert uow.payments.get_by_idempotency_key(partner.id, "same") is None

    def test_racing_with_one_key_makes_one_payment(self, store: Store) -> None:
        partner, customer, one, two = self._open_invoices(store)
        barrier = threading.Barrier(2, timeout=_JOIN_TIMEOUT)
        outcomes: list[str] = []

        def payer(invoice: Invoice) -> Callable[[], None]:
            def run() -> None:
                try:
                    with store.unit_of_work() as uow:
                        current = uow.invoices.get(partner.id, invoice.id)
                        assert uow.payments.get_by_idempotency_key(partner.id, "race") is None
                        barrier.wait()
                        payment, touched = self._pay(partner, customer, [current], "race")
                        uow.payments.save(payment)
                        for changed in touched:
                            uow.invoices.save(changed)
                        uow.commit()
                    outcomes.append("won")
                except ConcurrencyConflict:
                    outcomes.append("lost")

            return run

        _run_threads([payer(one), payer(two)])
        assert sorted(outcomes) == ["lost", "won"]
        with store.unit_of_work() as uow:
            winner = uow.payments.get_by_idempotency_key(partner.id, "race")
            assert winner is not None
            (paid,) = winner.invoice_ids
            unpaid = two.id if paid == one.id else one.id
            assert uow.invoices.get(partner.id, paid).status is InvoiceStatus.PAID
            assert uow.invoices.get(partner.id, unpaid).version == 1
            assert uow.payments.for_invoice(partner.id, unpaid) == []

    # all or nothing

    def test_a_conflict_on_one_invoice_writes_neither_payment_nor_invoices(
        self, store: Store
    ) -> None:
        partner, customer, one, two = self._open_invoices(store)
        before = self.pending(store)
        with store.unit_of_work() as slow:
            read = [slow.invoices.get(partner.id, i.id) for i in (one, two)]
            # Another writer changes the second invoice in between.
            with store.unit_of_work() as fast:
                changed = fast.invoices.save(two.update(partner, memo="Changed"))
                fast.commit()
            payment, touched = self._pay(partner, customer, read, "key-1")

            def store_them() -> None:
                slow.payments.save(payment)
                for invoice in touched:
                    slow.invoices.save(invoice)
                slow.commit()  # pragma: no cover - for adapters that find it only here

            with pytest.raises(ConcurrencyConflict):
                store_them()
        with store.unit_of_work() as uow:
            with pytest.raises(NotFound):
                uow.payments.get(partner.id, payment.id)
            assert uow.payments.get_by_idempotency_key(partner.id, "key-1") is None
            assert uow.payments.for_invoice(partner.id, one.id) == []
            assert uow.invoices.get(partner.id, one.id) == one
            assert uow.invoices.get(partner.id, two.id) == changed
        assert [m.event.topic for m in self.pending(store)] == [
            *(m.event.topic for m in before),
            "invoice_updated",
        ]

    def test_a_conflict_found_at_commit_writes_nothing(self, store: Store) -> None:
        partner, customer, one, two = self._open_invoices(store)
        payment, touched = self._pay(partner, customer, [one, two], "key-1")
        before = self.pending(store)
        with store.unit_of_work() as slow, store.unit_of_work() as fast:
            slow.payments.save(payment)
            for invoice in touched:
                slow.invoices.save(invoice)
            fast.invoices.save(two.update(partner, memo="Changed"))
            fast.commit()
            with pytest.raises(ConcurrencyConflict):
                slow.commit()
        with store.unit_of_work() as uow:
            with pytest.raises(NotFound):
                uow.payments.get(partner.id, payment.id)
            assert uow.invoices.get(partner.id, one.id) == one
            assert uow.invoices.get(partner.id, two.id).memo == "Changed"
        assert len(self.pending(store)) == len(before) + 1

    def test_another_partners_payments_in_the_unit_of_work_stay_theirs(self, store: Store) -> None:
        """Each partner's queries answer with its own payments alone, before
        the commit as after it, in a unit of work that saves another
        partner's under the same idempotency key."""
        partner, customer, one, _ = self._open_invoices(store)
        other, someone, theirs_one, _ = self._open_invoices(
            store, self.store_partner(store, _partner("Contoso"))
        )
        with store.unit_of_work() as uow:
            payment, _ = self._pay(other, someone, [theirs_one], "key-1")
            theirs = uow.payments.save(payment)
            assert uow.payments.get_by_idempotency_key(partner.id, "key-1") is None
            assert uow.payments.for_invoice(partner.id, theirs_one.id) == []
            with pytest.raises(NotFound):
                uow.payments.get(partner.id, theirs.id)
            payment, _ = self._pay(partner, customer, [one], "key-1")
            mine = uow.payments.save(payment)
            for _ in range(2):  # in the unit of work, then committed
                for party, paid, invoice in ((partner, mine, one), (other, theirs, theirs_one)):
                    assert uow.payments.get_by_idempotency_key(party.id, "key-1") == paid
                    assert uow.payments.for_invoice(party.id, invoice.id) == [paid]
                uow.commit()

    def test_payment_reads_see_the_blocks_own_saves(self, store: Store) -> None:
        partner, customer, one, two = self._open_invoices(store)
        payment, _ = self._pay(partner, customer, [one], "key-1")
        other, _ = self._pay(partner, customer, [two], "key-2")
        with store.unit_of_work() as uow:
            saved = uow.payments.save(payment)
            saved_other = uow.payments.save(other)
            assert uow.payments.get(partner.id, payment.id) == saved
            assert uow.payments.get_by_idempotency_key(partner.id, "key-1") == saved
            assert uow.payments.get_by_idempotency_key(partner.id, "key-2") == saved_other
            assert uow.payments.for_invoice(partner.id, one.id) == [saved]
            assert uow.payments.for_invoice(partner.id, two.id) == [saved_other]
            with store.unit_of_work() as reader:
                assert reader.payments.get_by_idempotency_key(partner.id, "key-1") is None
                assert reader.payments.for_invoice(partner.id, two.id) == []

    def test_payment_reads_see_a_stored_payment_saved_again_once(self, store: Store) -> None:
        """A payment the unit of work changes is listed once for each of its
        invoices, in its new state, before the commit as after it."""
        partner, _, payment, (one, two) = self._paid(store)
        with store.unit_of_work() as uow:
            read = uow.payments.get(partner.id, payment.id)
            succeeded = uow.payments.save(read.succeed(at=_at(3)))
            for _ in range(2):  # in the unit of work, then committed
                assert uow.payments.get(partner.id, payment.id) == succeeded
                assert uow.payments.for_invoice(partner.id, one.id) == [succeeded]
                assert uow.payments.for_invoice(partner.id, two.id) == [succeeded]
                assert uow.payments.get_by_idempotency_key(partner.id, "key-1") == succeeded
                uow.commit()

    # the payment's customer and payer, as they stand at commit (C8, I1)

    def _with_two_users(self, store: Store) -> tuple[Partner, Customer, Invoice]:
        partner = self.store_partner(store, _partner())
        emails = ("ann@globex.example", "bo@globex.example")
        (customer,) = self.store_customers(store, _customer(partner, emails=emails))
        (invoice,) = self.store_aggregates(store, _invoice(partner, customer, "1001"))
        return partner, customer, invoice

    def _assert_nothing_paid(
        self, store: Store, partner: Partner, invoice: Invoice, before: list[OutboxMessage]
    ) -> None:
        with store.unit_of_work() as uow:
            assert uow.payments.for_invoice(partner.id, invoice.id) == []
            assert uow.invoices.get(partner.id, invoice.id) == invoice
        assert self.pending(store) == before

    def test_a_new_payment_for_a_customer_changed_meanwhile_is_refused(self, store: Store) -> None:
        """A payment made from a customer read before another unit of work
        archived it (C8, at ``customer_id``), or took its payer's login away
        (I1, at ``user_id``), is refused at commit; nothing is written."""
        for rule, path in (("C8", "customer_id"), ("I1", "user_id")):
            partner, customer, invoice = self._with_two_users(store)
            payer = customer.users[0]
            with store.unit_of_work() as uow:
                read = uow.customers.get(partner.id, customer.id)
                changed = customer.archive() if rule == "C8" else customer.remove_user(payer.id)
                self.store_customers(store, changed)
                before = self.pending(store)
                payment, touched = self._pay(partner, read, [invoice], "key-1")

                def pay(saves: Sequence[Any] = (payment, *touched)) -> None:
                    for aggregate in saves:
                        _save(uow, aggregate)
                    uow.commit()  # adapters that find it at save never get here

                with pytest.raises(InvariantViolation) as caught:
                    pay()
            assert (caught.value.rule, caught.value.path) == (rule, path)
            assert str(payer.id if rule == "I1" else customer.id) in str(caught.value)
            self._assert_nothing_paid(store, partner, invoice, before)

    def test_a_payment_for_a_customer_archived_and_without_its_payer_is_refused_as_archived(
        self, store: Store
    ) -> None:
        """Its customer archived and its payer's login taken away meanwhile,
        a new payment is refused for the archive first (C8, at
        ``customer_id``), in every adapter."""
        partner, customer, invoice = self._with_two_users(store)
        payer = customer.users[0]
        self.store_customers(store, customer.remove_user(payer.id).archive())
        before = self.pending(store)
        payment, touched = self._pay(partner, customer, [invoice], "key-1")
        with pytest.raises(InvariantViolation) as caught:
            self.store_aggregates(store, payment, *touched)
        assert (caught.value.rule, caught.value.path) == ("C8", "customer_id")
        self._assert_nothing_paid(store, partner, invoice, before)

    def test_a_customer_changed_in_the_payments_unit_of_work_counts(self, store: Store) -> None:
        """What counts is the customer at commit, whatever the order of the
        saves: archived, or without the payer, in the same unit of work as a
        new payment, it refuses it; stored with its first payment, it is
        fine."""
        partner, customer, invoice = self._with_two_users(store)
        payer = customer.users[0]
        payment, touched = self._pay(partner, customer, [invoice], "key-1")
        before = self.pending(store)
        changes = [
            (customer.archive(), "C8", "customer_id"),
            (customer.remove_user(payer.id), "I1", "user_id"),
        ]
        for changed, rule, path in changes:
            for saves in ([payment, *touched, changed], [changed, payment, *touched]):
                with pytest.raises(InvariantViolation) as caught:
                    self.store_aggregates(store, *saves)
                assert (caught.value.rule, caught.value.path) == (rule, path)
                self._assert_nothing_paid(store, partner, invoice, before)
        assert self.read_customer(store, partner.id, customer.id) == customer
        new = _created(partner, "Initech", "bo@initech.example")
        first = _issued(partner, new, "1002")
        paid, settled = self._pay(partner, new, [first], "key-2")
        self.store_aggregates(store, paid, *settled, new)
        with store.unit_of_work() as uow:
            assert uow.payments.get(partner.id, paid.id) == attrs.evolve(paid, version=1)

    def test_a_payment_of_a_customer_not_stored_is_not_checked(self, store: Store) -> None:
        """The store checks a new payment against its customer only if that
        customer is stored, as a customer of the payment's partner: it does
        not look for a payment's invoices either (the domain sees to both)."""
        partner = self.store_partner(store, _partner())
        customer = _customer(partner)
        payment, _ = self._pay(partner, customer, [_invoice(partner, customer)], "key-1")
        (stored,) = self.store_aggregates(store, payment)
        other = self.store_partner(store, _partner("Contoso"))
        (theirs,) = self.store_customers(store, _customer(other, status=CustomerStatus.ARCHIVED))
        moved = attrs.evolve(_another(payment), customer_id=theirs.id)
        (also,) = self.store_aggregates(store, moved)
        with store.unit_of_work() as uow:
            assert uow.payments.get(partner.id, payment.id) == stored
            assert uow.payments.get(partner.id, moved.id) == also

    def test_a_payment_committed_before_an_archive_stays(self, store: Store) -> None:
        """C8 and I1 keep new payments out: one stored before its customer
        was archived, or its payer removed, stays, and may still change."""
        partner, customer, invoice = self._with_two_users(store)
        payer = customer.users[0]
        payment, touched = self._pay(partner, customer, [invoice], "key-1")
        (payment, *_) = self.store_aggregates(store, payment, *touched)
        self.store_customers(store, customer.remove_user(payer.id).archive())
        (succeeded,) = self.store_aggregates(store, payment.succeed(at=_at(3)))
        with store.unit_of_work() as uow:
            assert uow.payments.get(partner.id, payment.id) == succeeded

    def test_of_several_payments_refused_the_smallest_id_is_named(self, store: Store) -> None:
        """Every adapter names the same payment: the one with the smallest
        id, whatever its fault and the order of the saves."""
        partner = self.store_partner(store, _partner())
        emails = ("ann@globex.example", "bo@globex.example")
        archived, removed = self.store_customers(
            store, _customer(partner, emails=emails), _customer(partner, "Initech", emails=emails)
        )
        payments = []
        for index, (customer, payment_id) in enumerate(
            zip([archived, removed] * 2, _tied_ids(PaymentId, 4), strict=True)
        ):
            payment, _ = self._pay(partner, customer, [_invoice(partner, customer)], f"k{index}")
            payments.append(attrs.evolve(payment, id=payment_id))
        changes = [archived.archive(), removed.remove_user(removed.users[0].id)]
        _refused_in_id_order(store, partner, changes, payments, ("C8", "I1"))

    # the payment's saved method, as its customer's book stands at commit

    @staticmethod
    def _two_cards(customer: Customer) -> CustomerPaymentMethods:
        book = CustomerPaymentMethods.of(customer).add(
            type="card", display_name="Visa", last4="4242", at=_at(1)
        )
        return book.add(type="card", display_name="Amex", last4="0005", at=_at(1))

    def _pay_by(
        self, partner: Partner, customer: Customer, book: CustomerPaymentMethods, key: str
    ) -> tuple[Payment, tuple[Invoice, ...]]:
        """Pay an invoice of ``customer`` with the first method of ``book``."""
        return pay_invoices(
            partner,
            customer,
            [_invoice(partner, customer, key)],
            payer=customer.users[0],
            method=book.methods[0],
            methods=book,
            idempotency_key=key,
            at=_at(2),
        )

    def test_a_new_payment_with_a_method_archived_meanwhile_is_refused(self, store: Store) -> None:
        """A payment made with a saved method read before another unit of
        work archived it is refused at commit (``payment-method``, at
        ``payment_method_id``); nothing is written."""
        partner, customer, invoice = self._with_two_users(store)
        (book,) = self.store_aggregates(store, self._two_cards(customer))
        visa = book.methods[0]
        with store.unit_of_work() as uow:
            read = uow.payment_methods.get(partner.id, customer.id)
            self.store_aggregates(store, book.archive(visa.id, at=_at(2)))
            before = self.pending(store)
            payment, touched = pay_invoices(
                partner,
                customer,
                [invoice],
                payer=customer.users[0],
                method=read.methods[0],
                methods=read,
                idempotency_key="key-1",
                at=_at(2),
            )

            def pay(saves: Sequence[Any] = (payment, *touched)) -> None:
                for aggregate in saves:
                    _save(uow, aggregate)
                uow.commit()  # adapters that find it at save never get here

            with pytest.raises(InvariantViolation) as caught:
                pay()
        assert (caught.value.rule, caught.value.path) == ("payment-method", "payment_method_id")
        assert str(visa.id) in str(caught.value)
        assert f"payment {payment.id} was not stored" in str(caught.value)
        self._assert_nothing_paid(store, partner, invoice, before)

    def test_a_method_archived_in_the_payments_unit_of_work_counts(self, store: Store) -> None:
        """What counts is the book at commit, whatever the order of the
        saves: its method archived in the same unit of work as a new payment
        that names it, it refuses it; a book stored with its first payment,
        the method active, is fine."""
        partner, customer, invoice = self._with_two_users(store)
        book = self._two_cards(customer)
        payment, touched = pay_invoices(
            partner,
            customer,
            [invoice],
            payer=customer.users[0],
            method=book.methods[0],
            methods=book,
            idempotency_key="key-1",
            at=_at(2),
        )
        (stored,) = self.store_aggregates(store, book)
        before = self.pending(store)
        archived = stored.archive(book.methods[0].id, at=_at(2))
        for saves in ([payment, *touched, archived], [archived, payment, *touched]):
            with pytest.raises(InvariantViolation) as caught:
                self.store_aggregates(store, *saves)
            assert (caught.value.rule, caught.value.path) == ("payment-method", "payment_method_id")
            self._assert_nothing_paid(store, partner, invoice, before)
        with store.unit_of_work() as uow:
            assert uow.payment_methods.get(partner.id, customer.id) == stored
        new = _created(partner, "Initech", "bo@initech.example")
        first = self._two_cards(new)
        paid, settled = self._pay_by(partner, new, first, "1002")
        self.store_aggregates(store, new, first, paid, *settled)
        with store.unit_of_work() as uow:
            assert uow.payments.get(partner.id, paid.id) == attrs.evolve(paid, version=1)

    def test_a_payment_of_a_customer_without_a_stored_book_is_not_checked(
        self, store: Store
    ) -> None:
        """The store checks a new payment's saved method only against its
        customer's stored book: with none stored, it is let in (the domain
        checked the method against the book the caller gave)."""
        partner, customer, _ = self._with_two_users(store)
        payment, _ = self._pay_by(partner, customer, self._two_cards(customer), "1002")
        (stored,) = self.store_aggregates(store, payment)
        with store.unit_of_work() as uow:
            assert uow.payments.get(partner.id, payment.id) == stored
            assert uow.payment_methods.get(partner.id, customer.id).methods == ()

    def test_a_payment_committed_before_its_method_was_archived_stays(self, store: Store) -> None:
        """The rule keeps new payments out: one stored before its method was
        archived stays, and may still change."""
        partner, customer, _ = self._with_two_users(store)
        (book,) = self.store_aggregates(store, self._two_cards(customer))
        payment, touched = self._pay_by(partner, customer, book, "1002")
        (payment, *_) = self.store_aggregates(store, payment, *touched)
        self.store_aggregates(store, book.archive(book.methods[0].id, at=_at(3)))
        (succeeded,) = self.store_aggregates(store, payment.succeed(at=_at(3)))
        with store.unit_of_work() as uow:
            assert uow.payments.get(partner.id, payment.id) == succeeded

    def test_of_several_payments_refused_for_a_method_the_smallest_id_is_named(
        self, store: Store
    ) -> None:
        """Every adapter names the same payment, the one with the smallest
        id, whether its method was archived or its customer."""
        partner = self.store_partner(store, _partner())
        emails = ("ann@globex.example", "bo@globex.example")
        carded, archived = self.store_customers(
            store, _customer(partner, emails=emails), _customer(partner, "Initech", emails=emails)
        )
        book, other = self.store_aggregates(
            store, self._two_cards(carded), self._two_cards(archived)
        )
        payments = []
        for index, (customer, methods, payment_id) in enumerate(
            zip([carded, archived] * 2, [book, other] * 2, _tied_ids(PaymentId, 4), strict=True)
        ):
            payment, _ = self._pay_by(partner, customer, methods, f"{1001 + index}")
            payments.append(attrs.evolve(payment, id=payment_id))
        changes = [book.archive(book.methods[0].id, at=_at(2)), archived.archive()]
        _refused_in_id_order(store, partner, changes, payments, ("payment-method", "C8"))

    def test_payments_without_a_method_to_check_leave_the_others_checked(
        self, store: Store
    ) -> None:
        """A new payment made without a saved method, or of a customer with
        no stored book, is let in without that check; another payment of
        the same unit of work, with a larger id, made with a method archived
        meanwhile, is still refused."""
        partner = self.store_partner(store, _partner())
        emails = ("ann@globex.example", "bo@globex.example")
        carded, bare = self.store_customers(
            store, _customer(partner, emails=emails), _customer(partner, "Initech", emails=emails)
        )
        (book,) = self.store_aggregates(store, self._two_cards(carded))
        no_method, no_book, archived_method = _tied_ids(PaymentId, 3)
        by_ach, _ = self._pay(partner, carded, [_invoice(partner, carded)], "1001")
        unbooked, _ = self._pay_by(partner, bare, self._two_cards(bare), "1002")
        by_card, _ = self._pay_by(partner, carded, book, "1003")
        refused = attrs.evolve(by_card, id=archived_method)
        archive = book.archive(book.methods[0].id, at=_at(2))
        for unchecked in (
            attrs.evolve(by_ach, id=no_method),
            attrs.evolve(unbooked, id=no_book),
        ):
            with pytest.raises(InvariantViolation) as caught:
                self.store_aggregates(store, archive, unchecked, refused)
            assert (caught.value.rule, caught.value.path) == ("payment-method", "payment_method_id")
            assert f"payment {refused.id} was not stored" in str(caught.value)
        with store.unit_of_work() as uow:
            assert uow.payment_methods.get(partner.id, carded.id) == book
            assert uow.payments.get_by_idempotency_key(partner.id, "1003") is None


def _another(payment: Payment) -> Payment:
    """A payment like ``payment`` under a new id and key (version 0)."""
    return attrs.evolve(payment, id=PaymentId.new(), idempotency_key="another", version=0)


# -- saved payment methods and scheduled payments ------------------------------------


def _refused_in_id_order(
    store: Store,
    partner: Partner,
    changes: list[Any],
    payments: list[Payment],
    rules: tuple[str, str],
) -> None:
    """Saved with ``changes`` (before them or after), the first of
    ``payments`` in id order is refused for ``rules[0]`` if it is
    ``payments[0]``, else for ``rules[1]``; none is stored."""
    for saves in ([*changes, *payments], [*payments[::-1], *changes[::-1]]):
        for first, rule in zip(payments[:2], rules, strict=True):
            others = [p for p in saves if not isinstance(p, Payment) or str(p.id) >= str(first.id)]
            with pytest.raises(InvariantViolation) as caught:
                _commit(store, *others)
            assert caught.value.rule == rule
            assert f"payment {first.id} was not stored" in str(caught.value)
    with store.unit_of_work() as uow:
        assert all(
            uow.payments.get_by_idempotency_key(partner.id, p.idempotency_key) is None
            for p in payments
        )


class PaymentMethodRepositoryContract(_StoreFactory):
    """``uow.payment_methods``: one book per customer, versions, isolation."""

    def test_a_customer_without_methods_gets_an_empty_book(self, store: Store) -> None:
        partner, customer = self.partner_with_customer(store)
        with store.unit_of_work() as uow:
            book = uow.payment_methods.get(partner.id, customer.id)
        assert book == CustomerPaymentMethods.of(customer)
        assert book.version == 0
        assert book.default is None

    def test_payment_methods_save_and_get(self, store: Store) -> None:
        partner, customer = self.partner_with_customer(store)
        with store.unit_of_work() as uow:
            book = uow.payment_methods.get(partner.id, customer.id)
            added = book.add(type="ach", display_name="Chase checking", last4="6789", at=_at(2))
            saved = uow.payment_methods.save(added)
            uow.commit()
        assert saved == attrs.evolve(added, version=1)
        with store.unit_of_work() as uow:
            got = uow.payment_methods.get(partner.id, customer.id)
            assert got == saved
            assert to_dict(got) == to_dict(saved)
            again = uow.payment_methods.save(
                got.add(type="card", display_name="Visa", last4="4242", make_default=True)
            )
            uow.commit()
        assert again.version == 2
        assert [m.event.topic for m in self.pending(store)] == [
            "payment_method_added",
            "default_payment_method_changed",
            "payment_method_added",
            "default_payment_method_changed",
        ]

    def test_stale_and_duplicate_books_conflict(self, store: Store) -> None:
        partner, customer = self.partner_with_customer(store)
        first = CustomerPaymentMethods.of(customer).add(
            type="card", display_name="Visa", last4="4242"
        )
        (saved,) = self.store_aggregates(store, first)
        (winner,) = self.store_aggregates(
            store, saved.add(type="ach", display_name="Chase", last4="1234")
        )
        key = str(customer.id)
        for stale, words in (
            (saved.archive(saved.methods[0].id), f"payment methods {key!r} changed since"),
            (
                CustomerPaymentMethods.of(customer).add(
                    type="ach", display_name="RBC", last4="1111"
                ),
                f"payment methods with id {key!r} is already stored",  # no article: a plural
            ),
        ):
            with pytest.raises(ConcurrencyConflict) as caught:
                self.store_aggregates(store, stale)
            # The same kind, key and words on every adapter.
            assert (caught.value.kind, caught.value.key) == ("payment methods", key)
            assert str(caught.value).startswith(words)
        with store.unit_of_work() as uow:
            assert uow.payment_methods.get(partner.id, customer.id) == winner

    def test_a_saved_method_is_never_edited_removed_or_made_active_again(
        self, store: Store
    ) -> None:
        """A copy of a stored book (``attrs.evolve``) with a method edited,
        dropped or back from the archive is refused at save (rule
        ``payment-method``, at the method), whether the unit of work read the
        book or saved it itself; nothing is written. A stale copy is a plain
        conflict first."""
        partner, customer = self.partner_with_customer(store)
        book = (
            CustomerPaymentMethods.of(customer)
            .add(type="card", display_name="Visa", last4="4242", at=_at(1))
            .add(type="ach", display_name="Chase", last4="6789", at=_at(2))
        )
        (saved,) = self.store_aggregates(store, book.archive(book.methods[0].id, at=_at(3)))
        old, kept = saved.methods
        archived = PaymentMethodStatus.ARCHIVED
        changes = [
            ((attrs.evolve(old, type=PaymentMethodType.ACH), kept), "methods[0]"),
            ((old, attrs.evolve(kept, display_name="Wells")), "methods[1]"),
            ((kept, attrs.evolve(old, last4="0000")), "methods[1]"),
            ((old, attrs.evolve(kept, added_at=_at(4))), "methods[1]"),
            ((attrs.evolve(old, status=PaymentMethodStatus.ACTIVE), kept), "methods[0].status"),
            ((kept,), "methods"),
        ]
        before = self.pending(store)
        for methods, path in changes:
            changed = attrs.evolve(saved, methods=methods)
            with store.unit_of_work() as uow:
                with pytest.raises(InvariantViolation) as caught:
                    uow.payment_methods.save(changed)
                again = uow.payment_methods.save(saved)
                with pytest.raises(InvariantViolation):
                    uow.payment_methods.save(attrs.evolve(changed, version=again.version))
            assert (caught.value.rule, caught.value.path) == ("payment-method", path), methods
            with pytest.raises(ConcurrencyConflict):
                self.store_aggregates(store, attrs.evolve(changed, version=0))
        with store.unit_of_work() as uow:
            assert uow.payment_methods.get(partner.id, customer.id) == saved
            # A method this unit of work added is saved too: not edited later
            # in it either (checked against the book as it saved it).
            more = uow.payment_methods.save(
                saved.add(type="card", display_name="Amex", last4="1005", at=_at(4))
            )
            added = more.methods[2]
            edited = attrs.evolve(more, methods=(old, kept, attrs.evolve(added, last4="0000")))
            with pytest.raises(InvariantViolation) as caught:
                uow.payment_methods.save(edited)
            assert (caught.value.rule, caught.value.path) == ("payment-method", "methods[2]")
        assert self.pending(store) == before
        (later,) = self.store_aggregates(store, saved.archive(kept.id, at=_at(5)))
        assert [m.status for m in later.methods] == [archived, archived]

    def test_another_partners_book_is_never_returned(self, store: Store) -> None:
        partner, customer = self.partner_with_customer(store)
        other = self.store_partner(store, _partner("Contoso"))
        (saved,) = self.store_aggregates(
            store,
            CustomerPaymentMethods.of(customer).add(type="card", display_name="Visa", last4="4242"),
        )
        with store.unit_of_work() as uow:
            theirs = uow.payment_methods.get(other.id, customer.id)
        assert theirs == CustomerPaymentMethods(partner_id=other.id, customer_id=customer.id)
        with pytest.raises(ConcurrencyConflict):
            self.store_aggregates(store, theirs.add(type="card", display_name="Amex", last4="0005"))
        with pytest.raises(ConcurrencyConflict):
            self.store_aggregates(store, attrs.evolve(saved, partner_id=other.id))
        with store.unit_of_work() as uow:
            assert uow.payment_methods.get(partner.id, customer.id) == saved

    def test_a_first_book_names_a_stored_customer_of_its_partner(self, store: Store) -> None:
        """Another partner cannot take a customer's book first (and so keep
        its own partner from ever storing one), nor can a book be stored for
        a customer that is not; a customer stored with its first book is
        fine, whatever the order of the saves."""
        partner, customer = self.partner_with_customer(store)
        other = self.store_partner(store, _partner("Contoso"))
        before = self.pending(store)
        for book in (
            CustomerPaymentMethods(partner_id=other.id, customer_id=customer.id),
            CustomerPaymentMethods(partner_id=partner.id, customer_id=CustomerId.new()),
        ):
            with pytest.raises(InvariantViolation) as caught:
                self.store_aggregates(
                    store, book.add(type="ach", display_name="Chase", last4="6789")
                )
            assert (caught.value.rule, caught.value.path) == ("I1", "customer_id")
            assert str(book.customer_id) in str(caught.value)
        assert self.pending(store) == before
        (saved,) = self.store_aggregates(
            store,
            CustomerPaymentMethods.of(customer).add(type="card", display_name="Visa", last4="4242"),
        )
        later = _created(partner, "Initech", "bo@initech.example")
        first = CustomerPaymentMethods.of(later).add(type="ach", display_name="RBC", last4="1111")
        self.store_aggregates(store, first, later)
        with store.unit_of_work() as uow:
            assert uow.payment_methods.get(partner.id, customer.id) == saved
            assert uow.payment_methods.get(partner.id, later.id).version == 1


def _scheduled(
    partner: Partner,
    invoice: Invoice,
    pay_on: dt.date,
    status: ScheduledPaymentStatus = ScheduledPaymentStatus.SCHEDULED,
) -> ScheduledPayment:
    return ScheduledPayment(
        id=ScheduledPaymentId.new(),
        partner_id=partner.id,
        customer_id=invoice.customer_id,
        invoice_id=invoice.id,
        user_id=UserId.new(),
        payment_method_id=PaymentMethodId.new(),
        pay_on=pay_on,
        status=status,
        payment_id=PaymentId.new() if status is ScheduledPaymentStatus.PROCESSED else None,
    )


class ScheduledPaymentRepositoryContract(_StoreFactory):
    """``uow.scheduled_payments``: get, due, by invoice, versions, isolation."""

    def _scheduling(self, store: Store) -> tuple[Partner, Partner, Invoice, Invoice, Invoice]:
        partner, customer = self.partner_with_customer(store)
        other = self.store_partner(store, _partner("Contoso"))
        (theirs,) = self.store_customers(store, _customer(other))
        one, two, three = self.store_aggregates(
            store,
            _invoice(partner, customer, "1"),
            _invoice(partner, customer, "2"),
            _invoice(other, theirs, "1"),
        )
        return partner, other, one, two, three

    def test_save_get_and_conflicts(self, store: Store) -> None:
        partner, other, one, _, _ = self._scheduling(store)
        scheduled = _scheduled(partner, one, _TODAY)
        (saved,) = self.store_aggregates(store, scheduled)
        assert saved == attrs.evolve(scheduled, version=1)
        (cancelled,) = self.store_aggregates(store, saved.cancel())
        assert cancelled.version == 2
        with pytest.raises(ConcurrencyConflict):
            self.store_aggregates(store, saved.cancel())
        with pytest.raises(ConcurrencyConflict):
            self.store_aggregates(store, attrs.evolve(scheduled, partner_id=other.id))
        with store.unit_of_work() as uow:
            got = uow.scheduled_payments.get(partner.id, scheduled.id)
            assert got == cancelled
            assert to_dict(got) == to_dict(cancelled)
            with pytest.raises(NotFound):
                uow.scheduled_payments.get(other.id, scheduled.id)
            with pytest.raises(NotFound):
                uow.scheduled_payments.get(partner.id, ScheduledPaymentId.new())

    def test_due_and_for_invoice(self, store: Store) -> None:
        partner, other, one, two, three = self._scheduling(store)
        t = _TODAY
        made = {
            "a": _scheduled(partner, one, t),
            "b": _scheduled(partner, two, t - 5 * _DAY),
            "c": _scheduled(partner, one, t + _DAY),
            "d": _scheduled(partner, one, t - _DAY, ScheduledPaymentStatus.CANCELED),
            "e": _scheduled(partner, two, t - _DAY, ScheduledPaymentStatus.PROCESSED),
            "f": _scheduled(partner, two, t - 5 * _DAY),
            "g": _scheduled(other, three, t - 5 * _DAY),
            "h": _scheduled(partner, one, t - 2 * _DAY, ScheduledPaymentStatus.SKIPPED),
        }
        saved = dict(zip(made, self.store_aggregates(store, *made.values()), strict=True))
        by_id = {s.id: name for name, s in saved.items()}

        def names(found: Sequence[ScheduledPayment]) -> str:
            return "".join(by_id[s.id] for s in found)

        b_then_f = "bf" if saved["b"].id.value < saved["f"].id.value else "fb"
        with store.unit_of_work() as uow:
            assert names(uow.scheduled_payments.due(partner.id, t)) == b_then_f + "a"
            assert names(uow.scheduled_payments.due(partner.id, t + _DAY)) == b_then_f + "ac"
            assert names(uow.scheduled_payments.due(partner.id, t - 6 * _DAY)) == ""
            assert names(uow.scheduled_payments.due(other.id, t)) == "g"
            assert names(uow.scheduled_payments.for_invoice(partner.id, one.id)) == "hdac"
            assert names(uow.scheduled_payments.for_invoice(partner.id, two.id)) == b_then_f + "e"
            assert uow.scheduled_payments.for_invoice(other.id, one.id) == []
            with pytest.raises(ValidationError):
                uow.scheduled_payments.due(partner.id, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))

    def test_due_and_for_invoice_order_equal_days_by_id(self, store: Store) -> None:
        """Ties by id, before the commit as after it."""
        partner, _, one, two, _ = self._scheduling(store)
        ids = _tied_ids(ScheduledPaymentId, 4)
        tied = [
            attrs.evolve(_scheduled(partner, invoice, _TODAY - _DAY), id=scheduled_id)
            for invoice, scheduled_id in zip((one, one, two, one), ids, strict=True)
        ]
        with store.unit_of_work() as uow:
            saved = {
                s.id: uow.scheduled_payments.save(s) for s in (tied[2], tied[0], tied[3], tied[1])
            }
            in_order = [saved[s.id] for s in tied]
            of_one = [s for s in in_order if s.invoice_id == one.id]
            for _ in range(2):  # in the unit of work, then committed
                assert uow.scheduled_payments.due(partner.id, _TODAY) == in_order
                assert uow.scheduled_payments.for_invoice(partner.id, one.id) == of_one
                uow.commit()

    def test_reads_see_a_stored_scheduled_payment_saved_again_once(self, store: Store) -> None:
        """A scheduled payment the unit of work cancels is no longer due and
        is listed once for its invoice, as cancelled, before the commit as
        after it: never its stored copy as well."""
        partner, _, one, _, _ = self._scheduling(store)
        kept, stored = self.store_aggregates(
            store, _scheduled(partner, one, _TODAY - _DAY), _scheduled(partner, one, _TODAY)
        )
        with store.unit_of_work() as uow:
            cancelled = uow.scheduled_payments.save(stored.cancel())
            for _ in range(2):  # in the unit of work, then committed
                assert uow.scheduled_payments.due(partner.id, _TODAY) == [kept]
                assert uow.scheduled_payments.for_invoice(partner.id, one.id) == [kept, cancelled]
                uow.commit()

    def test_another_partners_scheduled_payments_in_the_unit_of_work_stay_theirs(
        self, store: Store
    ) -> None:
        """Each partner's queries answer with its own scheduled payments
        alone, before the commit as after it, in a unit of work that saves
        another partner's."""
        partner, other, one, _, three = self._scheduling(store)
        with store.unit_of_work() as uow:
            theirs = uow.scheduled_payments.save(_scheduled(other, three, _TODAY))
            assert uow.scheduled_payments.due(partner.id, _TODAY) == []
            assert uow.scheduled_payments.for_invoice(partner.id, three.id) == []
            with pytest.raises(NotFound):
                uow.scheduled_payments.get(partner.id, theirs.id)
            mine = uow.scheduled_payments.save(_scheduled(partner, one, _TODAY))
            for _ in range(2):  # in the unit of work, then committed
                for party, scheduled in ((partner, mine), (other, theirs)):
                    assert uow.scheduled_payments.due(party.id, _TODAY) == [scheduled]
                    invoice_id = scheduled.invoice_id
                    assert uow.scheduled_payments.for_invoice(party.id, invoice_id) == [scheduled]
                assert uow.scheduled_payments.for_invoice(partner.id, three.id) == []
                uow.commit()

    def test_a_scheduled_payment_changes_only_as_the_commands_change_it(self, store: Store) -> None:
        """Only a stored ``scheduled`` one changes its status (cancelled,
        run, skipped: each saves); once not, its status and payment stay (a
        cancelled or skipped one saved as scheduled would be run, the
        customer charged for what they cancelled). Its customer, invoice,
        payer, method, amount, date and time made never change. A save that
        does otherwise is refused (``scheduled-payment``, at the field), and
        nothing of its unit of work is written."""
        partner, customer = self.partner_with_customer(store)
        invoice, other = self.store_aggregates(
            store, _invoice(partner, customer, "1"), _invoice(partner, customer, "2")
        )
        (book,) = self.store_aggregates(
            store,
            CustomerPaymentMethods.of(customer).add(
                type="ach", display_name="Chase", last4="6789", at=_at(1)
            ),
        )

        def scheduled(amount: str | None = None) -> ScheduledPayment:
            return schedule_payment(
                partner,
                customer,
                invoice,
                payer=customer.users[0],
                methods=book,
                pay_on=_TODAY,
                today=_TODAY,
                amount=amount,
                at=_at(1),
            )

        to_run, to_skip, to_cancel, kept = self.store_aggregates(
            store, scheduled(), scheduled(), scheduled(), scheduled("40.00")
        )
        (cancelled,) = self.store_aggregates(store, to_cancel.cancel())
        done, payment, paid = run_scheduled_payment(
            to_run,
            partner=partner,
            customer=customer,
            invoice=invoice,
            methods=book,
            today=_TODAY,
            at=_at(15),
        )
        done, _, paid = self.store_aggregates(store, done, payment, paid)
        (skipped,) = self.store_aggregates(
            store,
            skip_scheduled_payment(
                to_skip, partner=partner, customer=customer, invoice=paid, today=_TODAY
            ),
        )
        assert (done.status, skipped.status) == (
            ScheduledPaymentStatus.PROCESSED,
            ScheduledPaymentStatus.SKIPPED,
        )
        again = ScheduledPaymentStatus.SCHEDULED
        at_fault = [
            (cancelled, attrs.evolve(cancelled, status=again), "status"),
            (skipped, attrs.evolve(skipped, status=again), "status"),
            (cancelled, attrs.evolve(cancelled, status=ScheduledPaymentStatus.SKIPPED), "status"),
            (done, attrs.evolve(done, status=again, payment_id=None), "status"),
            (done, attrs.evolve(done, payment_id=PaymentId.new()), "payment_id"),
            (kept, attrs.evolve(kept, customer_id=CustomerId.new()), "customer_id"),
            (kept, attrs.evolve(kept, invoice_id=other.id), "invoice_id"),
            (kept, attrs.evolve(kept, user_id=UserId.new()), "user_id"),
            (
                kept,
                attrs.evolve(kept, payment_method_id=PaymentMethodId.new()),
                "payment_method_id",
            ),
            (kept, attrs.evolve(kept, amount=Money("90.00", partner.currency)), "amount"),
            (kept, attrs.evolve(kept, amount=None), "amount"),
            (kept, attrs.evolve(kept, pay_on=_TODAY + _DAY), "pay_on"),
            (kept, attrs.evolve(kept, created_at=_at(2)), "created_at"),
        ]
        for stored, changed, path in at_fault:
            _refused_history(store, stored, changed, "scheduled-payment", path)
        (kept,) = self.store_aggregates(store, kept.cancel())
        (again_cancelled,) = self.store_aggregates(store, cancelled.cancel())
        assert again_cancelled.status is kept.status is ScheduledPaymentStatus.CANCELED
        with store.unit_of_work() as uow:
            assert uow.scheduled_payments.due(partner.id, _TODAY + _DAY) == []


# -- round trips -------------------------------------------------------------------

# Modest: the suite runs on every adapter, some of them over a network. The
# examples share the test's store, which is fine: each brings a new partner.
_ROUND_TRIP = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        # Each adapter's subclass runs the same test with its own store.
        HealthCheck.differing_executors,
    ],
)


def _with_partner(
    make: Callable[[Partner], st.SearchStrategy[Any]],
) -> st.SearchStrategy[tuple[Partner, Any]]:
    return aps.partners().flatmap(lambda p: st.tuples(st.just(p), make(p)))


def _billed(partner: Partner) -> st.SearchStrategy[tuple[Customer, Invoice]]:
    """An active customer of ``partner``, and an invoice of it."""
    return aps.customers(partner, status=CustomerStatus.ACTIVE).flatmap(
        lambda c: st.tuples(st.just(c), aps.invoices(partner, c))
    )


class RoundTripContract(_StoreFactory):
    """Every generated aggregate reads back equal, through every query."""

    @_ROUND_TRIP
    @given(partner=aps.partners())
    def test_partners_round_trip(self, store: Store, partner: Partner) -> None:
        saved = self.store_partner(store, partner)
        expected = attrs.evolve(partner, version=1)
        with store.unit_of_work() as uow:
            got = uow.partners.get(partner.id)
        assert saved == got == expected
        assert to_dict(got) == to_dict(expected)

    @_ROUND_TRIP
    @given(pair=_with_partner(aps.customers))
    def test_customers_round_trip(self, store: Store, pair: tuple[Partner, Customer]) -> None:
        partner, generated = pair
        customer = attrs.evolve(generated, version=0)
        _, saved = _commit(store, partner, customer)
        expected = attrs.evolve(customer, version=1)
        with store.unit_of_work() as uow:
            got = uow.customers.get(partner.id, customer.id)
            assert saved == got == expected
            assert to_dict(got) == to_dict(expected)
            assert got.events == ()
            for user in customer.users:
                assert uow.customers.with_user(partner.id, user.email) == [expected]
                accounts = uow.customers.accounts_of(str(user.email))
                assert (expected in accounts) is customer.is_active
            page = uow.customers.list(partner.id, name_prefix=customer.company)
            assert page.items == (expected,)
            if customer.external_ref is not None and customer.is_active:
                found = uow.customers.get_by_external_ref(partner.id, customer.external_ref)
                assert found == expected

    @_ROUND_TRIP
    @given(pair=_with_partner(aps.access_requests))
    def test_access_requests_round_trip(
        self, store: Store, pair: tuple[Partner, AccessRequest]
    ) -> None:
        partner, generated = pair
        request = attrs.evolve(generated, version=0)
        with store.unit_of_work() as uow:
            uow.partners.save(partner)
            saved = uow.access_requests.save(request)
            uow.commit()
        expected = attrs.evolve(request, version=1)
        with store.unit_of_work() as uow:
            got = uow.access_requests.get(partner.id, request.id)
            assert uow.access_requests.list(partner.id, status=request.status) == [expected]
            pending = expected if expected.is_pending else None
            assert uow.access_requests.pending_for(partner.id, request.email) == pending
        assert saved == got == expected
        assert to_dict(got) == to_dict(expected)

    @_ROUND_TRIP
    @given(pair=_with_partner(_billed))
    def test_invoices_round_trip(
        self, store: Store, pair: tuple[Partner, tuple[Customer, Invoice]]
    ) -> None:
        partner, (customer, generated) = pair
        invoice = attrs.evolve(generated, version=0)
        # With its customer (I1), and so its partner (the customer's tags).
        *_, saved = _commit(store, partner, attrs.evolve(customer, version=0), invoice)
        expected = attrs.evolve(invoice, version=1)
        due = invoice.due_date
        as_of = due + dt.timedelta(days=1)
        with store.unit_of_work() as uow:
            got = uow.invoices.get(partner.id, invoice.id)
            assert saved == got == expected
            assert to_dict(got) == to_dict(expected)
            assert uow.invoices.get_by_number(partner.id, invoice.number) == expected
            if invoice.external_ref is not None:
                found = uow.invoices.get_by_external_ref(partner.id, invoice.external_ref)
                assert found == expected
            page = uow.invoices.list(
                partner.id,
                customer_id=invoice.customer_id,
                status=invoice.status,
                due_from=due,
                due_to=due,
            )
            assert page.items == (expected,)
            overdue = uow.invoices.overdue(partner.id, as_of)
            assert overdue.items == ((expected,) if invoice.is_overdue(as_of) else ())

    @_ROUND_TRIP
    @given(payment=aps.payments())
    def test_payments_round_trip(self, store: Store, payment: Payment) -> None:
        payment = attrs.evolve(payment, version=0)
        (saved,) = _commit(store, payment)
        expected = attrs.evolve(payment, version=1)
        partner_id = payment.partner_id
        with store.unit_of_work() as uow:
            got = uow.payments.get(partner_id, payment.id)
            assert saved == got == expected
            assert to_dict(got) == to_dict(expected)
            key = payment.idempotency_key
            assert uow.payments.get_by_idempotency_key(partner_id, key) == expected
            for invoice_id in payment.invoice_ids:
                assert uow.payments.for_invoice(partner_id, invoice_id) == [expected]

    @_ROUND_TRIP
    @given(methods=aps.customer_payment_methods())
    def test_payment_methods_round_trip(
        self, store: Store, methods: CustomerPaymentMethods
    ) -> None:
        # A fresh key: the examples share the store, and drawn ids may repeat.
        # Stored with its customer, a stored customer of its partner.
        customer = attrs.evolve(
            _customer(_partner()), id=CustomerId.new(), partner_id=methods.partner_id
        )
        methods = attrs.evolve(methods, version=0, customer_id=customer.id)
        _, saved = _commit(store, customer, methods)
        expected = attrs.evolve(methods, version=1)
        with store.unit_of_work() as uow:
            got = uow.payment_methods.get(methods.partner_id, methods.customer_id)
        assert saved == got == expected
        assert to_dict(got) == to_dict(expected)

    @_ROUND_TRIP
    @given(scheduled=aps.scheduled_payments())
    def test_scheduled_payments_round_trip(self, store: Store, scheduled: ScheduledPayment) -> None:
        # Fresh keys: the examples share the store, and drawn ids may repeat.
        scheduled = attrs.evolve(
            scheduled, version=0, id=ScheduledPaymentId.new(), partner_id=PartnerId.new()
        )
        (saved,) = _commit(store, scheduled)
        expected = attrs.evolve(scheduled, version=1)
        partner_id = scheduled.partner_id
        with store.unit_of_work() as uow:
            got = uow.scheduled_payments.get(partner_id, scheduled.id)
            assert saved == got == expected
            assert to_dict(got) == to_dict(expected)
            found = uow.scheduled_payments.for_invoice(partner_id, scheduled.invoice_id)
            assert found == [expected]
            due = uow.scheduled_payments.due(partner_id, scheduled.pay_on)
            assert due == ([expected] if scheduled.is_due(scheduled.pay_on) else [])

    @_ROUND_TRIP
    @given(events=st.lists(aps.events(), min_size=1, max_size=4))
    def test_events_round_trip_through_the_outbox(self, store: Store, events: list[Event]) -> None:
        partner = self.store_partner(store, _partner())
        customer = _customer(partner)
        object.__setattr__(customer, "events", tuple(events))
        self.store_customers(store, customer)
        with store.unit_of_work() as uow:
            messages = uow.outbox.pending(MAX_PAGE_SIZE)
            uow.outbox.mark_published([m.position for m in messages])
            uow.commit()
        assert [m.event for m in messages] == events
        assert [to_dict(m.event) for m in messages] == [to_dict(e) for e in events]


class StoreContract(
    PartnerRepositoryContract,
    CustomerRepositoryContract,
    AccessRequestRepositoryContract,
    InvoiceRepositoryContract,
    PaymentRepositoryContract,
    PaymentMethodRepositoryContract,
    ScheduledPaymentRepositoryContract,
    UnitOfWorkContract,
    OutboxContract,
    ConcurrencyContract,
    RoundTripContract,
):
    """Every contract at once, for an adapter that wants a single test class."""
