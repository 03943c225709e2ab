"""A differential test of the stores: MemoryStore (the reference) against SqliteStore.

One random sequence of operations runs against both stores, with the same
aggregate values: two units of work open at once on each store (opened,
saved to, read from, committed, rolled back and closed in interleaved
order), fed by the domain's commands (partners and their tags, team and
integrations, customers from the draft or the sync, tags, archive and
restore, users, access requests and their resolution, invoices, payments,
payment methods books), so that version conflicts, taken unique keys
(external references, invoice numbers, idempotency keys) and the rules
between aggregates checked at commit (tags, C6, C8, C9, I1) all come up.
Each step must have the same outcome on both stores (the same value, or
the same error: class, and ``rule``/``path`` or field paths and codes), and
what both stores hold must read back the same through every query.

Differences the persistence docs allow are normalised where they occur (see
:meth:`StoresMachine.save` and :meth:`StoresMachine.read`): a conflict may
be found at ``save`` or at ``commit``, as each adapter detects it (among
them, a second save of an aggregate whose unique key another unit of work
took meanwhile: memory checks the key again at once, SQLite at commit).
SQLite lets one
writer in at a time: the preconditions keep a unit of work from writing (a
commit, an early write before a read, ``outbox.pending()``) while the other
one holds the write lock, which in one thread would only wait for the
timeout.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from altpay_core import (
    AccessRequest,
    AccessRequestStatus,
    AltpayError,
    ConcurrencyConflict,
    Customer,
    CustomerDraft,
    CustomerPaymentMethods,
    CustomerStatus,
    ExternalRef,
    InvariantViolation,
    Invoice,
    InvoiceStatus,
    NotFound,
    Partner,
    Payment,
    Role,
    ValidationError,
    pay_invoices,
    values,
)
from altpay_core.adapters.memory import MemoryStore
from altpay_core.adapters.sqlite import SqliteStore, SqliteUnitOfWork
from altpay_core.ports import Page, UnitOfWork

TODAY = dt.date(2026, 1, 5)
AT = dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC)
SLOTS = ("A", "B")
COMPANIES = ("Globex", "globex", "Initech", "Umbrella")
EMAILS = ("ann@globex.example", "Bo@globex.example", "cy@initech.example")
TAG_NAMES = ("VIP", "Gold", "Net 30")
NUMBERS = ("1001", "1002", "1003", "10")
REFS = ("4711", "4712")
KEYS = ("key-1", "key-2", "key-3")
PREFIXES = ("", "g", "GLO", "in", "x")
# Who asks for access, and who joins a team as a Sub-Admin.
ASKERS = ("dee@wayne.example", EMAILS[1])
STAFF = ("sue@northwind.example", "tim@northwind.example")
SYSTEMS = ("connectwise", "autotask")  # integrations that sync customers
# The refusals at commit of a new invoice whose customer is not stored (I1)
# or archived (C8).
MANY = 5  # partners, customers, invoices: few, so that the units of work collide
# The repository of each kind of aggregate, and its kind as errors name it.
REPOSITORY = {
    Partner: "partners",
    Customer: "customers",
    Invoice: "invoices",
    Payment: "payments",
    AccessRequest: "access_requests",
    CustomerPaymentMethods: "payment_methods",
}


def _key(value: Any) -> Any:
    """The key the machine keeps ``value`` under: its id (a payment methods
    book's is its customer's, told apart from the customer's own)."""
    if isinstance(value, CustomerPaymentMethods):
        return ("methods", value.customer_id)
    return value.id


def _get_args(value: Any) -> tuple[Any, ...]:
    """The arguments of its repository's ``get`` that find ``value``."""
    if isinstance(value, Partner):
        return (value.id,)
    if isinstance(value, CustomerPaymentMethods):
        return (value.partner_id, value.customer_id)
    return (value.partner_id, value.id)


def _address() -> dict[str, str]:
    return {
        "line1": "1 Main St",
        "city": "Albany",
        "region": "NY",
        "postal_code": "12207",
        "country": "US",
    }


def _synced(
    partner: Partner, system: str, ref: str, company: str, users: list[dict[str, str]]
) -> Customer:
    """A customer synced in from the partner's integration ``system``."""
    return Customer.from_sync(
        partner,
        external_ref=ExternalRef(system=system, id=ref),
        company=company,
        address=_address(),
        users=users,
    )


def _describe(error: AltpayError) -> tuple[Any, ...]:
    """What must be the same on both stores when a call is refused."""
    if isinstance(error, ConcurrencyConflict):
        cause = error.__cause__
        if isinstance(cause, sqlite3.OperationalError) and "locked" in str(cause):
            # Not a disagreement: the machine let a unit of work write while
            # the other one held SQLite's write lock.
            raise AssertionError(f"the machine waited on SQLite's write lock: {error}")
        return ("ConcurrencyConflict",)
    if isinstance(error, InvariantViolation):
        return ("InvariantViolation", error.rule, error.path)
    if isinstance(error, ValidationError):
        return ("ValidationError", tuple((e.path, e.code) for e in error.errors))
    if isinstance(error, NotFound):
        return ("NotFound", error.kind)
    return (type(error).__name__,)


def _outcome(
    call: Callable[..., Any], args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
) -> tuple[Any, ...]:
    try:
        return ("ok", call(*args, **(kwargs or {})))
    except AltpayError as error:
        return ("error", *_describe(error))


def _method(uow: UnitOfWork, what: str) -> Callable[..., Any]:
    """``uow``'s method named ``what`` (``"customers.list"``)."""
    found: Any = uow
    for part in what.split("."):
        found = getattr(found, part)
    return found  # type: ignore[no-any-return]


def _is_conflict(outcome: tuple[Any, ...]) -> bool:
    return outcome[:2] == ("error", "ConcurrencyConflict")


class Slot:
    """One unit of work on each store, opened, used and ended together."""

    def __init__(self, memory: MemoryStore, sqlite: SqliteStore) -> None:
        self.memory: UnitOfWork = memory.unit_of_work()
        self.sqlite: SqliteUnitOfWork = sqlite.unit_of_work()
        self.open = False

    @property
    def writing(self) -> bool:
        """Whether the SQLite unit of work holds the write lock (it has
        begun its write transaction: an early write, or ``outbox.pending()``)."""
        return self.open and self.sqlite._writing

    @property
    def unwritten(self) -> bool:
        """Whether the SQLite unit of work keeps saves it has not written
        yet, which its next listing query writes first."""
        return self.open and self.sqlite._unflushed


class StoresMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Ids from a seeded generator, not the system's: listings break ties
        # by id, and a failing sequence must replay the same.
        ids = random.Random(0)
        self.ids = mock.patch.object(
            values, "uuid", SimpleNamespace(uuid4=lambda: uuid.UUID(int=ids.getrandbits(128)))
        )
        self.ids.start()
        self.directory = tempfile.mkdtemp(prefix="altpay-differential-")
        self.memory = MemoryStore()
        # A short timeout: a unit of work that waits on the other one's
        # write lock shows at once (see _describe).
        self.sqlite = SqliteStore(Path(self.directory) / "altpay.db", timeout=0.05)
        self.slots = {name: Slot(self.memory, self.sqlite) for name in SLOTS}
        # Every value of every aggregate seen (saved or read), oldest first.
        self.pool: dict[type[Any], dict[Any, list[Any]]] = {kind: {} for kind in REPOSITORY}
        self.drafts: list[CustomerDraft] = []
        self.view: dict[str, dict[Any, Any]] = {name: {} for name in SLOTS}
        # The aggregates each unit of work has saved since it began or committed.
        self.saved: dict[str, set[Any]] = {name: set() for name in SLOTS}
        self.committed: dict[Any, Any] = {}  # the latest value committed, by id
        self.changed = True  # the stores' committed data changed since the last check

    def teardown(self) -> None:
        try:
            for slot in self.slots.values():
                if slot.open:
                    slot.open = False
                    slot.memory.__exit__(None, None, None)
                    slot.sqlite.__exit__(None, None, None)
        finally:
            self.memory.close()
            self.sqlite.close()
            shutil.rmtree(self.directory, ignore_errors=True)
            self.ids.stop()

    # -- helpers --------------------------------------------------------------------

    def other(self, name: str) -> Slot:
        return self.slots[SLOTS[1 - SLOTS.index(name)]]

    def may_write(self, name: str) -> bool:
        """Whether ``name`` may begin writing: the other unit of work does
        not hold SQLite's write lock."""
        return not self.other(name).writing

    def may_read(self, name: str) -> bool:
        """Whether a listing query may run in ``name`` (it writes the
        block's saves first, if there are any)."""
        return self.may_write(name) or not self.slots[name].unwritten

    def open_slot(self, data: st.DataObject) -> str:
        names = [name for name in SLOTS if self.slots[name].open]
        return data.draw(st.sampled_from(names), label="unit of work")  # type: ignore[no-any-return]

    def slot_to_save(self, data: st.DataObject) -> str:
        """A unit of work to save in (opened first if need be)."""
        name: str = data.draw(st.sampled_from(SLOTS), label="unit of work")
        if not self.slots[name].open:
            self.open_uow(name)
        return name

    def remember(self, value: Any, name: str | None = None) -> None:
        """Keep ``value`` to act on later; ``name``: a unit of work saved or
        read it (its view of the aggregate until it ends)."""
        versions = self.pool[type(value)].setdefault(_key(value), [])
        if not versions or versions[-1] != value:
            versions.append(value)
        if name is not None:
            self.view[name][_key(value)] = value

    def ended(self, name: str, committed: bool) -> None:
        """The unit of work ``name`` committed (what it saw is now what the
        stores hold), or forgot what it saved."""
        if committed:
            self.committed.update(self.view[name])
        self.view[name].clear()
        self.saved[name].clear()

    def archived_since(self, customer: Customer) -> bool:
        """An active value of a customer committed archived since."""
        committed = self.committed.get(customer.id)
        return customer.is_active and committed is not None and not committed.is_active

    def pick(
        self,
        data: st.DataObject,
        name: str,
        kind: type[Any],
        where: Callable[[Any], bool] = bool,
    ) -> Any:
        """A value of ``kind`` satisfying ``where``: mostly the one unit of
        work ``name`` would act on (what it saved or read, else what is
        committed), sometimes another one seen (stale, or never stored)."""
        choices = [[v for v in versions if where(v)] for versions in self.pool[kind].values()]
        choices = [c for c in choices if c]
        if not choices:
            return None
        versions = data.draw(st.sampled_from(choices), label=kind.__name__)
        key = _key(versions[0])
        current = self.view[name].get(key, self.committed.get(key))
        if current is not None and where(current) and data.draw(st.integers(0, 3), label="stale?"):
            return current
        return data.draw(st.sampled_from(versions), label=f"{kind.__name__} version")

    def both(self, name: str | None, what: str, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """Call ``what`` (``"customers.list"``) with these arguments on the
        memory and the SQLite unit of work of slot ``name`` (``None``: the
        units of work that read what is committed); both outcomes."""
        slot = self.slots[name] if name is not None else None
        assert slot is None or slot.open
        memory = _outcome(_method(slot.memory if slot else self.fresh_memory, what), args, kwargs)
        sqlite = _outcome(_method(slot.sqlite if slot else self.fresh_sqlite, what), args, kwargs)
        return memory, sqlite

    def agree(self, what: str, memory: tuple[Any, ...], sqlite: tuple[Any, ...]) -> None:
        assert memory == sqlite, f"{what}: memory {memory!r}, sqlite {sqlite!r}"

    # -- the units of work ----------------------------------------------------------------

    @initialize()
    def setup(self) -> None:
        """Two partners, one adding customers by hand and one syncing them,
        with a customer each; the first has a Sub-Admin and a pending access
        request."""
        manual = Partner.create(name="Northwind IT", country="US")
        manual = manual.add_team_member(name="Ada", email="ada@northwind.example", role=Role.ADMIN)
        manual = manual.add_team_member(name="Sue", email=STAFF[0], role=Role.SUB_ADMIN)
        manual = manual.add_tag(name="VIP", colour="#D4AF37").add_tag(name="Gold", colour="#AA8800")
        synced = Partner.create(name="Contoso MSP", country="US")
        synced = synced.add_team_member(name="Sam", email="sam@contoso.example", role=Role.ADMIN)
        synced = synced.connect_integration(
            "connectwise", syncs_customers=True, syncs_invoices=True
        ).add_tag(name="VIP", colour="#D4AF37")
        draft = CustomerDraft.start(manual).enter_details(company="Globex", address=_address())
        draft = draft.add_user(first_name="Ann", last_name="Lee", email=EMAILS[0])
        self.drafts.append(draft)
        stored = Customer.from_sync(
            synced,
            external_ref=ExternalRef(system="connectwise", id=REFS[0]),
            company="Initech",
            address=_address(),
            users=[{"first_name": "Cy", "last_name": "Ng", "email": EMAILS[2]}],
        )
        request = AccessRequest.open(manual, email=ASKERS[0], first_name="Dee", last_name="Ray")
        self.open_uow("A")
        for value in (manual, synced, draft.create(), stored, request):
            self.remember(value)
            self.save("A", value)
        self.commit("A")
        self.close_uow("A")

    def open_uow(self, name: str) -> None:
        slot = self.slots[name]
        slot.memory.__enter__()
        slot.sqlite.__enter__()
        slot.open = True

    @precondition(lambda self: any(s.open for s in self.slots.values()))
    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        self.close_uow(self.open_slot(data))

    def close_uow(self, name: str) -> None:
        slot = self.slots[name]
        slot.open = False
        slot.memory.__exit__(None, None, None)
        slot.sqlite.__exit__(None, None, None)
        self.ended(name, committed=False)

    @precondition(lambda self: any(s.open for s in self.slots.values()))
    @rule(data=st.data())
    def roll_back(self, data: st.DataObject) -> None:
        name = self.open_slot(data)
        self.agree("rollback", *self.both(name, "rollback"))
        self.ended(name, committed=False)

    @precondition(lambda self: any(s.open and self.may_write(n) for n, s in self.slots.items()))
    @rule(data=st.data(), close=st.booleans())
    def commit_one(self, data: st.DataObject, close: bool) -> None:
        """Commit one unit of work, and perhaps end its block."""
        names = [n for n in SLOTS if self.slots[n].open and self.may_write(n)]
        name = data.draw(st.sampled_from(names), label="commit")
        self.commit(name)
        if close:
            self.close_uow(name)

    def commit(self, name: str) -> None:
        self.changed = True
        memory, sqlite = self.both(name, "commit")
        self.agree("commit", memory, sqlite)
        self.ended(name, committed=memory[0] == "ok")

    # -- saving -----------------------------------------------------------------------

    def save(self, name: str, value: Any) -> bool:
        """Save ``value`` in both units of work of ``name``; whether it was stored."""
        slot = self.slots[name]
        repository = REPOSITORY[type(value)]
        memory, sqlite = self.both(name, f"{repository}.save", value)
        if (
            value.version == 0
            and _is_conflict(memory)
            and sqlite[0] == "ok"
            and self.id_stored(name, value)
        ):
            # Documented: SQLite does not look a new aggregate's id up at
            # save; the primary key refuses a taken one when its row is
            # written, rolling the whole unit of work back. Memory refuses
            # that save alone. (A first payment methods book of a customer
            # whose book is stored, by its partner or another, likewise: its
            # key is the customer's id.) Compare "save, then commit": a conflict, and
            # nothing of the block written (so memory's block is rolled back).
            slot.memory.rollback()
            if self.may_write(name):
                self.changed = True
                self.agree(
                    "commit after saving a taken id",
                    ("error", "ConcurrencyConflict"),
                    _outcome(slot.sqlite.commit),
                )
            else:
                slot.sqlite.rollback()
            self.ended(name, committed=False)
            return False
        if _key(value) in self.saved[name] and _is_conflict(memory) and sqlite[0] == "ok":
            # Allowed (a conflict comes from save or from commit, as the
            # adapter finds it): saved again in a unit of work after another
            # one committed an aggregate holding its unique key (an invoice
            # number, an external reference, an idempotency key), memory
            # checks the key against the latest commit again and refuses the
            # save, while SQLite keeps its first check (its own claim on the
            # key) and refuses at commit. Compare "save, then commit".
            if self.may_write(name):
                self.changed = True
                memory, sqlite = _outcome(slot.memory.commit), _outcome(slot.sqlite.commit)
                self.agree("commit after saving again a key taken meanwhile", memory, sqlite)
                assert _is_conflict(memory), memory
            else:
                self.both(name, "rollback")
            self.ended(name, committed=False)
            return False
        self.agree(f"save {value!r}", memory, sqlite)
        if memory[0] != "ok":
            return False
        self.saved[name].add(_key(value))
        assert memory[1].events == ()
        assert sqlite[1].events == ()
        self.remember(memory[1], name)
        return True

    def commit_now(self, data: st.DataObject, name: str) -> None:
        """Perhaps commit ``name`` at once (if it may write), so that what the
        step saved meets the rules between aggregates more often than a
        later ``commit_one`` would let it (a unit of work is as often
        closed or rolled back)."""
        if self.may_write(name) and data.draw(st.booleans(), label="commit now?"):
            self.commit(name)

    def id_stored(self, name: str, value: Any) -> bool:
        """Whether ``value``'s id is committed, or saved in ``name``'s block."""
        repository = REPOSITORY[type(value)]
        uow = self.slots[name].memory
        get = getattr(uow, repository).get
        if isinstance(value, CustomerPaymentMethods):
            # A customer's book, whichever partner's (its key is the
            # customer's id); ``get`` gives an empty book for none.
            return any(get(pid, value.customer_id).version for pid in self.pool[Partner])
        with contextlib.suppress(NotFound):
            get(*_get_args(value))
            return True
        return False

    @precondition(lambda self: len(self.pool[Partner]) < 4)
    @rule(
        data=st.data(),
        tags=st.lists(st.sampled_from(TAG_NAMES), max_size=2, unique=True),
        save=st.booleans(),
    )
    def new_partner(self, data: st.DataObject, tags: list[str], save: bool) -> None:
        """A new partner: saved now, or kept to save later (or never)."""
        partner = Partner.create(name="Fabrikam", country="US")
        partner = partner.add_team_member(name="Al", email="al@fabrikam.example", role=Role.ADMIN)
        for tag in tags:
            partner = partner.add_tag(name=tag, colour="#112233")
        self.remember(partner)
        if save:
            self.save(self.slot_to_save(data), partner)

    @rule(
        data=st.data(),
        command=st.sampled_from(["add tag", "delete tag", "delete tag", "add member", "none"]),
    )
    def change_partner(self, data: st.DataObject, command: str) -> None:
        name = self.slot_to_save(data)
        partner: Partner = self.pick(data, name, Partner)
        try:
            if command == "add tag":
                tag = data.draw(st.sampled_from(TAG_NAMES), label="tag")
                partner = partner.add_tag(name=tag, colour="#445566")
            elif command == "delete tag" and partner.tags:
                partner = partner.delete_tag(data.draw(st.sampled_from(partner.tags), label="tag"))
            elif command == "add member":
                email = data.draw(st.sampled_from(EMAILS), label="email")
                partner = partner.add_team_member(name="Mo", email=email, role=Role.MEMBER)
        except AltpayError:
            return  # the domain refuses it: nothing to store
        self.save(name, partner)

    @precondition(lambda self: len(self.pool[Customer]) < MANY)
    @rule(
        data=st.data(),
        company=st.sampled_from(COMPANIES),
        emails=st.lists(st.sampled_from(EMAILS), min_size=1, max_size=2, unique=True),
        ref=st.sampled_from(REFS),
    )
    def new_customer(self, data: st.DataObject, company: str, emails: list[str], ref: str) -> None:
        """A customer through the draft (or the sync, for a partner that
        syncs customers), with some of the tags the partner's value knows."""
        name = self.slot_to_save(data)
        partner: Partner = self.pick(data, name, Partner)
        users = [{"first_name": "Ann", "last_name": "Lee", "email": e} for e in emails]
        if partner.syncs_customers:
            system = next(i.system for i in partner.integrations if i.syncs_customers)
            customer = _synced(partner, system, ref, company, users)
        else:
            draft = CustomerDraft.start(partner).enter_details(company=company, address=_address())
            for user in users:
                draft = draft.add_user(**user)
            self.drafts.append(draft)
            customer = draft.create()
        if partner.tags:
            tags = data.draw(st.lists(st.sampled_from(partner.tags), max_size=2), label="tags")
            customer = customer.set_tags(partner, tags)
        self.remember(customer)
        self.save(name, customer)

    @precondition(lambda self: self.drafts)
    @rule(data=st.data())
    def create_again(self, data: st.DataObject) -> None:
        """ "Create Customer" pressed twice: a new customer with the draft's id."""
        name = self.slot_to_save(data)
        draft = data.draw(st.sampled_from(self.drafts), label="draft")
        self.save(name, draft.create())

    @precondition(lambda self: self.pool[Customer])
    @rule(
        data=st.data(),
        command=st.sampled_from(["set tags", "archive", "archive", "restore", "add user", "none"]),
    )
    def change_customer(self, data: st.DataObject, command: str) -> None:
        name = self.slot_to_save(data)
        customer: Customer = self.pick(data, name, Customer)
        try:
            if command == "set tags":
                # Tags from some value of its partner: perhaps one whose
                # catalog the store no longer (or not yet) has.
                partner: Partner = self.pick(
                    data, name, Partner, lambda p: p.id == customer.partner_id and bool(p.tags)
                )
                if partner is None:
                    return
                tags = data.draw(st.lists(st.sampled_from(partner.tags or ("-",))), label="tags")
                customer = customer.set_tags(partner, [t for t in tags if t != "-"])
            elif command == "archive":
                customer = customer.archive()
            elif command == "restore":
                customer = customer.restore()
            elif command == "add user":
                email = data.draw(st.sampled_from(EMAILS), label="email")
                customer = customer.add_user(first_name="Bo", last_name="Li", email=email)
        except AltpayError:
            return
        self.save(name, customer)

    @precondition(lambda self: len(self.pool[Invoice]) < 2 * MANY)
    @precondition(lambda self: self.pool[Customer])
    @rule(
        data=st.data(),
        number=st.sampled_from(NUMBERS),
        days=st.sampled_from([0, 10, 40]),
        ref=st.sampled_from(REFS),
        synced=st.booleans(),
    )
    def new_invoice(
        self, data: st.DataObject, number: str, days: int, ref: str, synced: bool
    ) -> None:
        """Issue an invoice (or sync one in) to a customer value, which the
        store may not hold, or may hold archived, by the commit."""
        name = self.slot_to_save(data)
        # An active value of the customer, perhaps archived in the store since
        # (sometimes on purpose: C8 at commit).
        customer: Customer | None = None
        if data.draw(st.booleans(), label="archived meanwhile?"):
            customer = self.pick(data, name, Customer, self.archived_since)
        if customer is None:
            customer = self.pick(data, name, Customer, lambda c: c.is_active)
        if customer is None:
            return
        partner: Partner = self.pick(data, name, Partner, lambda p: p.id == customer.partner_id)
        if partner is None:
            return
        try:
            if synced and partner.syncs_invoices:
                invoice = Invoice.from_sync(
                    partner,
                    customer,
                    external_ref=ExternalRef(system="connectwise", id=ref),
                    number=f"S{number}",  # a number of its own: the reference collides
                    lines=[{"description": "Support", "quantity": 1, "unit_amount": "90.00"}],
                    issue_date=TODAY - dt.timedelta(days=30),
                    due_date=TODAY - dt.timedelta(days=days),
                )
            else:
                invoice = Invoice.issue(
                    partner,
                    customer,
                    by=partner.team[0],
                    number=number,
                    lines=[{"description": "Support", "quantity": 2, "unit_amount": "150.00"}],
                    due_date=TODAY + dt.timedelta(days=days),
                    today=TODAY,
                )
        except AltpayError:
            return
        self.remember(invoice)
        self.save(name, invoice)

    @precondition(lambda self: self.pool[Invoice])
    @rule(data=st.data(), command=st.sampled_from(["void", "archive", "memo"]))
    def change_invoice(self, data: st.DataObject, command: str) -> None:
        name = self.slot_to_save(data)
        invoice: Invoice = self.pick(data, name, Invoice)
        partner: Partner = self.pick(data, name, Partner, lambda p: p.id == invoice.partner_id)
        try:
            if command == "void":
                invoice = invoice.void(partner)
            elif command == "archive":
                invoice = invoice.archive(partner)
            else:
                invoice = invoice.update(partner, memo=f"memo {invoice.version}")
        except AltpayError:
            return
        self.save(name, invoice)

    @precondition(lambda self: self.pool[Invoice])
    @rule(data=st.data(), key=st.sampled_from(KEYS), method=st.sampled_from(["card", "ach"]))
    def pay(self, data: st.DataObject, key: str, method: str) -> None:
        """Pay one or two invoices of a customer: the payment, then each
        invoice it touched, saved in one unit of work."""
        name = self.slot_to_save(data)
        first: Invoice = self.pick(data, name, Invoice)
        customer: Customer = self.pick(
            data, name, Customer, lambda c: c.id == first.customer_id and c.is_active
        )
        partner: Partner = self.pick(data, name, Partner, lambda p: p.id == first.partner_id)
        if customer is None or partner is None:
            return
        invoices = [first]
        second: Invoice | None = self.pick(
            data, name, Invoice, lambda i: i.customer_id == first.customer_id and i.id != first.id
        )
        if second is not None and data.draw(st.booleans(), label="two invoices"):
            invoices.append(second)
        try:
            payment, touched = pay_invoices(
                partner,
                customer,
                invoices,
                payer=customer.users[0],
                method=method,
                idempotency_key=key,
                at=AT,
            )
        except AltpayError:
            return
        self.remember(payment)
        for value in (payment, *touched):
            if not self.save(name, value):
                break  # as the payment services do, the caller stops there

    @rule(data=st.data(), kind=st.sampled_from(list(REPOSITORY)))
    def save_again(self, data: st.DataObject, kind: type[Any]) -> None:
        """Save a value seen earlier as it is: stale, or new and stored already."""
        name = self.slot_to_save(data)
        value = self.pick(data, name, kind)
        if value is not None:
            self.save(name, value)

    @precondition(lambda self: any(s.open and self.may_read(n) for n, s in self.slots.items()))
    @rule(data=st.data())
    def delete_tag_everywhere(self, data: st.DataObject) -> None:
        """Delete a tag as ``services.delete_tag`` does, without its commit:
        the partner as read, and every customer the listing finds carrying
        the tag, in one unit of work (the commit is another step)."""
        names = [n for n in SLOTS if self.slots[n].open and self.may_read(n)]
        name = data.draw(st.sampled_from(names), label="unit of work")
        pid = self.pick(data, name, Partner).id
        found = self.read(name, "partners.get", pid)
        if found[0] != "ok" or not found[1].tags:
            return
        partner: Partner = found[1]
        tag = data.draw(st.sampled_from(partner.tags), label="tag")
        carriers = self.read(name, "customers.list", pid, tag=tag.id, limit=1000)
        if carriers[0] != "ok" or not self.save(name, partner.delete_tag(tag)):
            return
        for customer in carriers[1]:
            if not self.save(name, customer.remove_tag(tag)):
                return

    # -- integrations, the team, access requests, payment methods ------------------------

    @rule(data=st.data(), system=st.sampled_from(SYSTEMS))
    def integrate(self, data: st.DataObject, system: str) -> None:
        """Connect an integration that syncs customers, or disconnect one: a
        draft begun before (or a by-hand customer saved in the same unit of
        work) meets C6 at commit."""
        name = self.slot_to_save(data)
        partner: Partner = self.pick(data, name, Partner)
        try:
            if any(i.system == system for i in partner.integrations):
                partner = partner.disconnect_integration(system)
            else:
                partner = partner.connect_integration(system, syncs_customers=True)
        except AltpayError:
            return
        if self.save(name, partner):
            self.commit_now(data, name)

    @rule(
        data=st.data(),
        command=st.sampled_from(["add sub-admin", "demote", "demote", "promote", "remove"]),
    )
    def change_team(self, data: st.DataObject, command: str) -> None:
        """Add a Sub-Admin, or demote, promote or remove a member (never the
        first Admin, who issues invoices): a request resolved by a member
        read before meets C9 at commit."""
        name = self.slot_to_save(data)
        partner: Partner = self.pick(data, name, Partner)
        try:
            if command == "add sub-admin":
                email = data.draw(st.sampled_from(STAFF), label="email")
                partner = partner.add_team_member(name="Sue", email=email, role=Role.SUB_ADMIN)
            elif len(partner.team) > 1:
                member = data.draw(st.sampled_from(partner.team[1:]), label="member")
                if command == "demote":
                    partner = partner.change_role(member, Role.MEMBER)
                elif command == "promote":
                    partner = partner.change_role(member, Role.SUB_ADMIN)
                else:
                    partner = partner.remove_team_member(member)
        except AltpayError:
            return
        if self.save(name, partner):
            self.commit_now(data, name)

    @precondition(lambda self: len(self.pool[Customer]) < MANY + 2)
    @rule(
        data=st.data(),
        by_hand=st.booleans(),
        company=st.sampled_from(COMPANIES),
        ref=st.sampled_from(REFS),
    )
    def add_customer(self, data: st.DataObject, by_hand: bool, company: str, ref: str) -> None:
        """A customer added by hand, from a value of a partner that does not
        sync customers (a stale one, perhaps: C6 at commit), or synced in."""
        name = self.slot_to_save(data)
        partner: Partner = self.pick(data, name, Partner, lambda p: p.syncs_customers != by_hand)
        if partner is None:
            return
        users = [{"first_name": "Ann", "last_name": "Lee", "email": EMAILS[0]}]
        try:
            if by_hand:
                draft = CustomerDraft.start(partner).enter_details(
                    company=company, address=_address()
                )
                customer = draft.add_user(**users[0]).create()
            else:
                systems = [i.system for i in partner.integrations if i.syncs_customers]
                if not systems:
                    return
                system = data.draw(st.sampled_from(systems), label="system")
                customer = _synced(partner, system, ref, company, users)
        except AltpayError:
            return
        self.remember(customer)
        if self.save(name, customer):
            self.commit_now(data, name)

    @precondition(lambda self: len(self.pool[AccessRequest]) < 2 * MANY)
    @rule(data=st.data(), email=st.sampled_from(ASKERS))
    def ask_for_access(self, data: st.DataObject, email: str) -> None:
        """Open an access request (to a partner perhaps not stored)."""
        name = self.slot_to_save(data)
        partner: Partner = self.pick(data, name, Partner)
        request = AccessRequest.open(partner, email=email, first_name="Dee", last_name="Ray")
        self.remember(request)
        self.save(name, request)

    @precondition(lambda self: self.pool[AccessRequest])
    @rule(data=st.data(), approve=st.booleans())
    def resolve_request(self, data: st.DataObject, approve: bool) -> None:
        """Resolve a pending request, rejected or added to a customer, by an
        Admin or Sub-Admin of a partner value read earlier: demoted or
        removed since, perhaps, by the other unit of work or this one (C9
        at commit)."""
        name = self.slot_to_save(data)
        request: AccessRequest = self.pick(data, name, AccessRequest, lambda r: r.is_pending)
        if request is None:
            return
        # Mostly by a Sub-Admin: of a stale value, if they are one no more.
        roles = (Role.SUB_ADMIN,) if data.draw(st.integers(0, 2), label="sub-admin?") else ()
        roles = roles or (Role.ADMIN, Role.SUB_ADMIN)
        partner: Partner = self.pick(
            data,
            name,
            Partner,
            lambda p: p.id == request.partner_id and any(m.role in roles for m in p.team),
        )
        if partner is None:
            return
        resolvers = [m for m in partner.team if m.role in roles]
        member = data.draw(st.sampled_from(resolvers), label="resolver")
        customer: Customer | None = None
        try:
            if approve:
                customer = self.pick(
                    data, name, Customer, lambda c: c.partner_id == request.partner_id
                )
                if customer is None:
                    return
                request, customer = request.add_to_customer(customer, partner=partner, by=member)
            else:
                request = request.reject(partner=partner, by=member)
        except AltpayError:
            return
        if self.save(name, request) and (customer is None or self.save(name, customer)):
            self.commit_now(data, name)

    @precondition(lambda self: self.pool[Customer])
    @rule(
        data=st.data(),
        whose=st.sampled_from(["own", "own", "other partner's"]),
        add=st.booleans(),
    )
    def save_methods(self, data: st.DataObject, whose: str, add: bool) -> None:
        """A customer's payment methods: its first book (for a customer value
        perhaps not stored, or by another partner: I1 at commit), or a
        method added to a book read or saved earlier."""
        name = self.slot_to_save(data)
        customer: Customer = self.pick(data, name, Customer)
        book: CustomerPaymentMethods | None = None
        if whose == "own" and data.draw(st.booleans(), label="a book seen?"):
            book = self.pick(
                data, name, CustomerPaymentMethods, lambda b: b.customer_id == customer.id
            )
        if book is None and whose == "own":
            book = CustomerPaymentMethods.of(customer)
        elif book is None:
            others = [pid for pid in self.pool[Partner] if pid != customer.partner_id]
            if not others:
                return
            pid = data.draw(st.sampled_from(others), label="partner")
            book = CustomerPaymentMethods(partner_id=pid, customer_id=customer.id)
        if add or not book.methods:
            book = book.add(type="ach", display_name="Checking", last4="1234", at=AT)
        self.remember(book)
        self.save(name, book)

    # -- reading inside a unit of work ----------------------------------------------------

    def read(self, name: str, what: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Query ``what`` in both units of work of ``name``; the outcome."""
        slot = self.slots[name]
        unwritten = slot.unwritten
        memory, sqlite = self.both(name, what, *args, **kwargs)
        if unwritten and memory[0] == "ok" and _is_conflict(sqlite):
            # Documented: SQLite writes the block's saves before a query that
            # must see them, and a conflict found then rolls the whole unit of
            # work back; memory finds the same conflict at commit. Compare
            # "read, then commit".
            slot.sqlite.rollback()
            self.changed = True
            self.agree(f"{what}, then commit", _outcome(slot.memory.commit), sqlite)
            self.ended(name, committed=False)
            return sqlite
        self.agree(what, memory, sqlite)
        if memory[0] == "ok":
            found = memory[1]
            values = found.items if isinstance(found, Page) else found
            for value in values if isinstance(values, list | tuple) else [values]:
                if type(value) in REPOSITORY:
                    self.remember(value, name)
        return memory

    @precondition(lambda self: any(s.open and self.may_read(n) for n, s in self.slots.items()))
    @rule(
        data=st.data(),
        query=st.sampled_from(
            [
                "get",
                "customers",
                "tagged",
                "with_user",
                "invoices",
                "overdue",
                "by key",
                "paid",
                "requests",
            ]
        ),
    )
    def read_in_block(self, data: st.DataObject, query: str) -> None:
        """A query inside a unit of work, which sees the block's own saves."""
        names = [n for n in SLOTS if self.slots[n].open and self.may_read(n)]
        name = data.draw(st.sampled_from(names), label="unit of work")
        partner: Partner = self.pick(data, name, Partner)
        pid = partner.id
        if query == "get":
            kind = data.draw(st.sampled_from([k for k in REPOSITORY if self.pool[k]]), label="kind")
            value = self.pick(data, name, kind)
            self.read(name, f"{REPOSITORY[kind]}.get", *_get_args(value))
        elif query == "customers":
            self.read(name, "customers.list", pid, limit=2)
        elif query == "tagged":
            for tag in partner.tags:
                self.read(name, "customers.list", pid, tag=tag.id)
        elif query == "with_user":
            email = data.draw(st.sampled_from(EMAILS), label="email")
            self.read(name, "customers.with_user", pid, email)
        elif query == "invoices":
            self.read(name, "invoices.list", pid, limit=2)
        elif query == "overdue":
            day = TODAY + dt.timedelta(days=data.draw(st.sampled_from([0, 11, 60]), label="as of"))
            self.read(name, "invoices.overdue", pid, day)
        elif query == "by key":
            key = data.draw(st.sampled_from(KEYS), label="key")
            self.read(name, "payments.get_by_idempotency_key", pid, key)
        elif query == "requests":
            self.read(name, "access_requests.list", pid)
        elif self.pool[Invoice]:
            invoice: Invoice = self.pick(data, name, Invoice)
            self.read(name, "payments.for_invoice", invoice.partner_id, invoice.id)

    @precondition(lambda self: any(s.open and self.may_write(n) for n, s in self.slots.items()))
    @rule(data=st.data(), limit=st.sampled_from([1, 3, 100]), mark=st.integers(0, 2))
    def publish(self, data: st.DataObject, limit: int, mark: int) -> None:
        """List the outbox (on SQLite this takes the write lock until the unit
        of work ends) and mark some of it published."""
        names = [n for n in SLOTS if self.slots[n].open and self.may_write(n)]
        name = data.draw(st.sampled_from(names), label="publisher")
        listed = self.read(name, "outbox.pending", limit)
        if mark and listed[0] == "ok":
            positions = [m.position for m in listed[1][:mark]]
            self.agree(
                "mark_published",
                *self.both(name, "outbox.mark_published", positions),
            )

    # -- what both stores hold --------------------------------------------------------

    @invariant()
    def stores_agree(self) -> None:
        """Everything committed reads back the same from both stores.

        Only a commit changes it: it is read again after each commit.
        """
        if not self.changed:
            return
        self.changed = False
        with self.memory.unit_of_work() as memory, self.sqlite.unit_of_work() as sqlite:
            self.fresh_memory, self.fresh_sqlite = memory, sqlite
            self.compare_committed()
            # On SQLite, pending() takes the write lock: only while the other
            # units of work hold none (nor, then, any claim in memory).
            if not any(slot.writing for slot in self.slots.values()):
                self.same("outbox.pending", 1000)

    def same(self, what: str, *args: Any, **kwargs: Any) -> Any:
        """What is committed, read by ``what`` on both stores: the same.
        The value read (or the error's description, a tuple)."""
        memory, sqlite = self.both(None, what, *args, **kwargs)
        self.agree(what, memory, sqlite)
        return memory[1] if memory[0] == "ok" else memory[1:]

    def compare_committed(self) -> None:
        same = self.same
        for pid, partners in self.pool[Partner].items():
            same("partners.get", pid)
            self.same_pages("customers.list", pid)
            for status in CustomerStatus:
                same("customers.list", pid, status=status)
            for prefix in PREFIXES:
                same("customers.list", pid, name_prefix=prefix)
            for tag in {t.id for p in partners for t in p.tags}:
                self.same_pages("customers.list", pid, tag=tag)
            for email in EMAILS:
                same("customers.with_user", pid, email)
            self.same_pages("invoices.list", pid)
            for status in InvoiceStatus:
                same("invoices.list", pid, status=status)
            for cid in self.pool[Customer]:
                same(
                    "invoices.list",
                    pid,
                    customer_id=cid,
                    due_from=TODAY,
                    due_to=TODAY + dt.timedelta(days=10),
                )
            for days in (0, 11, 60):
                self.same_pages("invoices.overdue", pid, TODAY + dt.timedelta(days=days))
            for key in KEYS:
                same("payments.get_by_idempotency_key", pid, key)
            for number in NUMBERS:
                same("invoices.get_by_number", pid, number)
            if self.pool[AccessRequest]:
                same("access_requests.list", pid)
                same("access_requests.list", pid, status=AccessRequestStatus.PENDING)
        for email in EMAILS:
            same("customers.accounts_of", email)
        for kind in (Customer, Invoice, Payment, AccessRequest):
            for versions in self.pool[kind].values():
                found = same(f"{REPOSITORY[kind]}.get", *_get_args(versions[-1]))
                if not isinstance(found, tuple):  # not an error
                    self.committed[found.id] = found
        for versions in self.pool[CustomerPaymentMethods].values():
            # Every partner a book of this customer named: the stored book,
            # or (another partner's customer, or none yet) an empty one.
            for pid in {v.partner_id for v in versions}:
                found = same("payment_methods.get", pid, versions[0].customer_id)
                if not isinstance(found, tuple) and found.version:
                    self.committed[_key(found)] = found
        for versions in self.pool[Invoice].values():
            same("payments.for_invoice", versions[-1].partner_id, versions[-1].id)

    def same_pages(self, what: str, *args: Any, **kwargs: Any) -> None:
        """Page through a listing two at a time, forwards, then backwards
        from the end, on both stores."""
        page = self.same(what, *args, limit=2, **kwargs)
        while page.has_next_page:
            page = self.same(what, *args, limit=2, after=page.end_cursor, **kwargs)
        while page.has_previous_page:
            page = self.same(what, *args, limit=2, before=page.start_cursor, **kwargs)


StoresMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=50, deadline=None)
TestStoresDifferential = StoresMachine.TestCase
