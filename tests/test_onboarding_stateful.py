"""A stateful test of onboarding: random commands, valid and invalid, on a
draft and then on the customer it creates.

A small model predicts, for every command, whether it succeeds and, if not,
which rule refuses it. After every step the invariants C1-C5 are checked, and
every refused command is checked to have changed nothing: the old value is
as it was and no event was added.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from altpay_core import (
    AltpayError,
    Customer,
    CustomerDraft,
    CustomerStatus,
    DraftStep,
    EmailAddress,
    ExternalRef,
    InvariantViolation,
    NotFound,
    Partner,
    Role,
    ValidationError,
    from_dict,
    to_dict,
)

DOMAIN = "globex.example"
LOCALS = ("ann", "bo", "cy", "dee")

# Emails as people type them: a few people, each in several cases, so that
# duplicates in another case come up often; and some that are no email.
valid_emails = st.builds(
    lambda local, upper_local, upper_domain: (
        (local.upper() if upper_local else local.title())
        + "@"
        + (DOMAIN.upper() if upper_domain else DOMAIN)
    ),
    st.sampled_from(LOCALS),
    st.booleans(),
    st.booleans(),
)
invalid_emails: st.SearchStrategy[object] = st.sampled_from(
    ["not-an-email", "", "ann@globex", "ann@@globex.example", 5, None]
)
emails = st.one_of(valid_emails, valid_emails, invalid_emails)
first_names = st.sampled_from(["Ann", "Bo", "Émile", " ", ""])

companies = st.sampled_from(["Globex", "Initech", " Globex ", "", "   "])
postal_codes = st.sampled_from(["12207", "12207-3301", "1234", "ABCDE"])
eins = st.sampled_from([None, "12-3456789", "123456789", "00-1234567", "12-345"])
TAGS = ("vip", "gold", "platinum")  # platinum is not in the catalog


def key(email: object) -> str | None:
    """The model's own idea of an email's key (None: not an email)."""
    if not isinstance(email, str) or email.count("@") != 1:
        return None
    local, domain = email.strip().split("@")
    if not local or domain.lower() != DOMAIN:
        return None
    return f"{local.lower()}@{DOMAIN}"


def details(company: str, postal_code: str, ein: str | None) -> dict[str, Any]:
    return {
        "company": company,
        "ein": ein,
        "address": {
            "line1": "1 Main St",
            "city": "Albany",
            "region": "NY",
            "postal_code": postal_code,
            "country": "US",
        },
    }


def detail_errors(company: str, postal_code: str, ein: str | None) -> list[str]:
    """The paths step 1 reports, in order (C2: every one at once)."""
    found = []
    if not company.strip():
        found.append("company")
    if ein is not None and ein not in ("12-3456789", "123456789"):
        found.append("ein")
    if postal_code not in ("12207", "12207-3301"):
        found.append("address.postal_code")
    return found


class OnboardingMachine(RuleBasedStateMachine):
    """Drives CustomerDraft, then Customer; the model says what must happen."""

    def __init__(self) -> None:
        super().__init__()
        self.partner = (
            Partner.create(name="Northwind IT", country="US")
            .add_team_member(name="Ada", email="ada@northwind.example", role=Role.ADMIN)
            .add_tag(name="VIP", colour="#FF0000")
            .add_tag(name="Gold", colour="#FFD700")
        )
        self.draft: CustomerDraft | None = None
        self.customer: Customer | None = None
        # The model.
        self.synced = False
        self.details_entered = False
        self.company = ""
        self.users: list[str] = []  # keys, in order
        self.archived = False
        self.tags: frozenset[str] = frozenset()
        # The customer's events, oldest first: each topic, and the fields it
        # says changed.
        self.topics: list[tuple[str, tuple[str, ...]]] = []

    # -- helpers ---------------------------------------------------------------

    def refused(
        self, value: Any, command: Any, error: type[AltpayError], rule: str | None = None
    ) -> Any:
        """Run a command that must be refused; check it changed nothing."""
        data = to_dict(value)
        events = getattr(value, "events", ())
        with pytest.raises(error) as caught:
            command()
        if rule is not None:
            assert caught.value.rule == rule  # type: ignore[attr-defined]
        assert to_dict(value) == data
        assert from_dict(type(value), data) == value
        assert getattr(value, "events", ()) == events
        return caught.value

    def updated(
        self,
        new: Customer,
        *,
        changed: bool,
        changes: tuple[str, ...],
        topic: str = "customer_updated",
    ) -> None:
        """Take a customer a command returned; check its events."""
        assert self.customer is not None
        if changed:
            assert new is not self.customer
            self.topics.append((topic, changes))
        else:
            assert new is self.customer
        self.customer = new

    # -- start ---------------------------------------------------------------------

    @initialize(synced=st.booleans())
    def start(self, synced: bool) -> None:
        self.synced = synced
        if not synced:
            self.draft = CustomerDraft.start(self.partner)
            return
        # C6: a partner whose integration syncs customers adds none by hand.
        self.partner = self.partner.connect_integration("connectwise", syncs_customers=True)
        with pytest.raises(InvariantViolation) as caught:
            CustomerDraft.start(self.partner)
        assert caught.value.rule == "C6"
        self.customer = Customer.from_sync(
            self.partner,
            external_ref=ExternalRef("connectwise", "4711"),
            company="Initech",
            address=details("x", "12207", None)["address"],
            users=[{"first_name": "Ann", "last_name": "Lee", "email": "ann@globex.example"}],
        )
        self.company = "Initech"
        self.users = ["ann@globex.example"]
        self.topics = [("customer_created", ())]

    # -- step 1 and 2: the draft -------------------------------------------------------

    @precondition(lambda self: self.draft is not None and self.customer is None)
    @rule(company=companies, postal_code=postal_codes, ein=eins)
    def enter_details(self, company: str, postal_code: str, ein: str | None) -> None:
        assert self.draft is not None
        errors = detail_errors(company, postal_code, ein)
        if errors:
            error = self.refused(
                self.draft,
                lambda: self.draft.enter_details(**details(company, postal_code, ein)),  # type: ignore[union-attr]
                ValidationError,
            )
            assert error.paths == errors
            return
        before = self.draft.users
        self.draft = self.draft.enter_details(**details(company, postal_code, ein))
        # C3: going back to step 1 keeps the users.
        assert self.draft.users == before
        self.details_entered = True
        self.company = company.strip()

    @precondition(lambda self: self.draft is not None and self.customer is None)
    @rule(first_name=first_names, email=emails)
    def draft_add_user(self, first_name: str, email: object) -> None:
        draft = self.draft
        assert draft is not None

        def command() -> CustomerDraft:
            return draft.add_user(first_name=first_name, last_name="Lee", email=email)  # type: ignore[arg-type]

        k = key(email)
        if not self.details_entered:
            self.refused(draft, command, InvariantViolation, "C1")
        elif k is None or not first_name.strip():
            self.refused(draft, command, ValidationError)
        elif k in self.users:
            self.refused(draft, command, InvariantViolation, "C4")
        else:
            self.draft = command()
            self.users.append(k)

    @precondition(lambda self: self.draft is not None and self.customer is None)
    @rule(email=emails)
    def draft_remove_user(self, email: object) -> None:
        draft = self.draft
        assert draft is not None
        k = key(email)
        if k is None:
            self.refused(draft, lambda: draft.remove_user(email), ValidationError)  # type: ignore[arg-type]
        elif k not in self.users:
            self.refused(draft, lambda: draft.remove_user(email), NotFound)  # type: ignore[arg-type]
        else:
            self.draft = draft.remove_user(email)  # type: ignore[arg-type]
            self.users.remove(k)

    @precondition(lambda self: self.draft is not None and self.customer is None)
    @rule()
    def create(self) -> None:
        draft = self.draft
        assert draft is not None
        if not self.details_entered or not self.users:
            self.refused(draft, draft.create, InvariantViolation, "C1")
            return
        self.customer = draft.create()
        assert self.customer.id == draft.customer_id
        assert self.customer.users == draft.users
        self.topics = [("customer_created", ())]

    # -- the customer ----------------------------------------------------------------

    @precondition(lambda self: self.customer is not None)
    @rule(first_name=first_names, email=emails)
    def add_user(self, first_name: str, email: object) -> None:
        customer = self.customer
        assert customer is not None

        def command() -> Customer:
            return customer.add_user(first_name=first_name, last_name="Lee", email=email)  # type: ignore[arg-type]

        k = key(email)
        if self.archived:
            self.refused(customer, command, InvariantViolation, "C8")
        elif k is None or not first_name.strip():
            self.refused(customer, command, ValidationError)
        elif k in self.users:
            self.refused(customer, command, InvariantViolation, "C4")
        else:
            self.updated(command(), changed=True, changes=("users",))
            self.users.append(k)

    @precondition(lambda self: self.customer is not None)
    @rule(email=emails)
    def remove_user(self, email: object) -> None:
        customer = self.customer
        assert customer is not None

        def command() -> Customer:
            return customer.remove_user(email)  # type: ignore[arg-type]

        k = key(email)
        if self.archived:
            self.refused(customer, command, InvariantViolation, "C8")
        elif k is None:
            self.refused(customer, command, ValidationError)
        elif k not in self.users:
            self.refused(customer, command, NotFound)
        elif len(self.users) == 1:
            self.refused(customer, command, InvariantViolation, "C5")
        else:
            self.updated(command(), changed=True, changes=("users",))
            self.users.remove(k)

    @precondition(lambda self: self.customer is not None and bool(self.users))
    @rule(data=st.data(), enabled=st.booleans())
    def set_notifications(self, data: st.DataObject, enabled: bool) -> None:
        customer = self.customer
        assert customer is not None
        k = data.draw(st.sampled_from(self.users))

        def command() -> Customer:
            return customer.set_notifications(k.upper(), enabled)

        if self.archived:
            self.refused(customer, command, InvariantViolation, "C8")
            return
        changed = customer.user(k).notifications is not enabled
        self.updated(command(), changed=changed, changes=("users",))
        assert self.customer is not None
        assert self.customer.user(k).notifications is enabled

    @precondition(lambda self: self.customer is not None)
    @rule(company=companies, legal_name=st.sampled_from([None, "Globex Corp", 7]))
    def update_details(self, company: str, legal_name: object) -> None:
        customer = self.customer
        assert customer is not None

        def command() -> Customer:
            return customer.update_details(company=company, legal_name=legal_name)

        if self.archived:
            self.refused(customer, command, InvariantViolation, "C8")
        elif not company.strip() or isinstance(legal_name, int):
            error = self.refused(customer, command, ValidationError)
            assert set(error.paths) <= {"company", "legal_name"}
        elif self.synced and company.strip() != self.company:
            self.refused(customer, command, InvariantViolation, "C6")
        else:
            changes = tuple(
                name
                for name, differs in (
                    ("company", company.strip() != self.company),
                    ("legal_name", legal_name != customer.legal_name),
                )
                if differs
            )
            self.updated(command(), changed=bool(changes), changes=changes)
            self.company = company.strip()

    @precondition(lambda self: self.customer is not None)
    @rule(external_id=st.sampled_from(["4711", "4712"]))
    def change_external_ref(self, external_id: str) -> None:
        customer = self.customer
        assert customer is not None
        ref = ExternalRef("connectwise", external_id)

        def command() -> Customer:
            return customer.update_details(external_ref=ref)

        if self.archived:
            self.refused(customer, command, InvariantViolation, "C8")
        elif customer.external_ref != ref:
            self.refused(customer, command, InvariantViolation, "C10")
        else:
            self.updated(command(), changed=False, changes=())

    @precondition(lambda self: self.customer is not None and self.synced)
    @rule(company=st.sampled_from(["Initech", "Initrode"]))
    def apply_sync(self, company: str) -> None:
        assert self.customer is not None
        changed = company != self.company
        self.updated(
            self.customer.apply_sync(company=company), changed=changed, changes=("company",)
        )
        self.company = company

    @precondition(lambda self: self.customer is not None)
    @rule(names=st.lists(st.sampled_from(TAGS), max_size=3))
    def set_tags(self, names: list[str]) -> None:
        customer = self.customer
        assert customer is not None

        def command() -> Customer:
            return customer.set_tags(self.partner, names)

        if self.archived:
            self.refused(customer, command, InvariantViolation, "C8")
        elif "platinum" in names:
            self.refused(customer, command, NotFound)
        else:
            wanted = frozenset(names)
            self.updated(command(), changed=wanted != self.tags, changes=("tags",))
            self.tags = wanted

    @precondition(lambda self: self.customer is not None)
    @rule()
    def archive(self) -> None:
        assert self.customer is not None
        self.updated(
            self.customer.archive(),
            changed=not self.archived,
            changes=("status",),
            topic="customer_archived",
        )
        self.archived = True

    @precondition(lambda self: self.customer is not None)
    @rule()
    def restore(self) -> None:
        assert self.customer is not None
        self.updated(self.customer.restore(), changed=self.archived, changes=("status",))
        self.archived = False

    # -- invariants, after every step --------------------------------------------------

    @invariant()
    def the_draft_matches_the_model(self) -> None:
        if self.draft is None or self.customer is not None:
            return
        # C1: the step follows the details; C3 and C4: users kept, unique.
        expected_step = DraftStep.USERS if self.details_entered else DraftStep.DETAILS
        assert self.draft.step is expected_step
        assert [u.email.key for u in self.draft.users] == self.users
        assert from_dict(CustomerDraft, to_dict(self.draft)) == self.draft

    @invariant()
    def the_customer_matches_the_model(self) -> None:
        customer = self.customer
        if customer is None:
            return
        # C5: at least one user, always.
        assert len(customer.users) >= 1
        # C4: emails normalised and unique, compared case-insensitively.
        keys = [u.email.key for u in customer.users]
        assert len(set(keys)) == len(keys)
        assert keys == self.users
        for user in customer.users:
            assert str(EmailAddress(str(user.email))) == str(user.email)
            assert str(user.email).endswith("@" + DOMAIN)
        assert customer.company == self.company
        assert customer.is_synced is self.synced
        expected = CustomerStatus.ARCHIVED if self.archived else CustomerStatus.ACTIVE
        assert customer.status is expected
        assert {self.partner.tag(t).name.lower() for t in customer.tags} == self.tags
        # Every change left exactly one event, oldest first, naming the customer.
        assert [(e.topic, e.changes) for e in customer.events] == self.topics
        for event in customer.events:
            assert event.partner_id == self.partner.id
            assert event.aggregate_id == str(customer.id)
        assert customer.events[0].occurred_at == customer.created_at
        assert from_dict(Customer, to_dict(customer)) == customer


OnboardingMachine.TestCase.settings = settings(
    # The active profile (dev or ci) sets max_examples; the runs stay short.
    stateful_step_count=25,
    deadline=None,
)
TestOnboarding = OnboardingMachine.TestCase
