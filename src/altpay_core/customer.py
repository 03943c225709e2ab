"""Customers, their users, the two-step "Add customer" flow and access requests.

A partner adds a customer in two steps, as the product's form does
(rule C1)::

    draft = CustomerDraft.start(partner)                 # step 1 of 2
    draft = draft.enter_details(company="Globex", address={...})   # "Continue"
    draft = draft.add_user(first_name="Ann", last_name="Lee",
                           email="ann@globex.example")   # step 2
    customer = draft.create()                            # "Create Customer"

Every :class:`Customer` that exists has at least one user (C5), and its users'
emails are unique compared case-insensitively (C4). Commands return a new
customer carrying the event they caused; the old value is untouched.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from typing import Any, Final, Protocol, TypeVar

import attrs

from . import _fields
from ._html import html_table
from .errors import FieldErrors, InvariantViolation, NotFound, ValidationError
from .events import CustomerArchived, CustomerCreated, CustomerUpdated, Event, utc_now
from .partner import Action, CardFeeBearer, Partner, TeamMember
from .values import (
    EIN,
    AccessRequestId,
    Address,
    CustomerId,
    EmailAddress,
    ExternalRef,
    PartnerId,
    TagId,
    TeamMemberId,
    UserId,
)

__all__ = [
    "AccessRequest",
    "AccessRequestStatus",
    "Customer",
    "CustomerDetails",
    "CustomerDraft",
    "CustomerStatus",
    "CustomerUser",
    "DraftStep",
]


class _Keep(enum.Enum):
    KEEP = "keep"


KEEP: Final = _Keep.KEEP
"""Marks an argument of an update as "leave this field as it is"."""


def _email(path: str, value: object) -> EmailAddress:
    if isinstance(value, EmailAddress):
        return value
    try:
        return EmailAddress(value)  # type: ignore[arg-type]
    except ValidationError as error:
        raise error.under(path) from None


def _optional_email(path: str, value: object) -> EmailAddress | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _email(path, value)


def _ein(path: str, value: object) -> EIN | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, EIN):
        return value
    try:
        return EIN(value)  # type: ignore[arg-type]
    except ValidationError as error:
        raise error.under(path) from None


def _address(path: str, value: object) -> Address:
    if isinstance(value, Address):
        return value
    if isinstance(value, Mapping):
        try:
            return Address.from_mapping(value)
        except ValidationError as error:
            raise error.under(path) from None
    raise ValidationError.single(
        path,
        "wrong_type",
        f"'{path}' must be an Address or a mapping of its fields (got {type(value).__name__})",
    )


class _HasEvents(Protocol):
    @property
    def events(self) -> tuple[Event, ...]: ...


_A = TypeVar("_A")


def _user_tuple(users: Iterable[CustomerUser]) -> tuple[CustomerUser, ...]:
    return tuple(users)


def _tag_set(tags: Iterable[TagId]) -> frozenset[TagId]:
    return frozenset(tags)


def _events() -> Any:
    return attrs.field(factory=tuple, init=False, eq=False, repr=False)


def _with_event(new: _A, old: _HasEvents, event: Event) -> _A:
    # The new instance starts with no events (init=False); it carries the old
    # value's pending events plus this one, until a repository stores it.
    object.__setattr__(new, "events", (*old.events, event))
    return new


# -- users ------------------------------------------------------------------


@attrs.frozen
class CustomerUser:
    """A person who can log in and view and pay every invoice of a customer."""

    id: UserId
    first_name: str
    last_name: str
    email: EmailAddress
    notifications: bool = True

    @classmethod
    def new(
        cls,
        *,
        first_name: str,
        last_name: str,
        email: str | EmailAddress,
        notifications: bool = True,
    ) -> CustomerUser:
        """A new user with a fresh id; every invalid field is reported at once."""
        found = FieldErrors()
        first = found.check("", _fields.required_text, "first_name", first_name, max_length=100)
        last = found.check("", _fields.required_text, "last_name", last_name, max_length=100)
        clean_email = found.check("", _email, "email", email)
        if not isinstance(notifications, bool):
            found.add("notifications", "wrong_type", "'notifications' must be true or false")
        found.raise_if_any()
        return cls(UserId.new(), first, last, clean_email, notifications)

    @property
    def name(self) -> str:
        """First and last name."""
        return f"{self.first_name} {self.last_name}"


def _check_users(users: tuple[CustomerUser, ...]) -> None:
    """Rule C4: one user per email (case-insensitively); ids unique too."""
    emails: set[str] = set()
    ids: set[UserId] = set()
    for index, user in enumerate(users):
        if not isinstance(user, CustomerUser):
            raise ValidationError.single(
                f"users[{index}]", "wrong_type", f"'users[{index}]' must be a CustomerUser"
            )
        if user.email.key in emails:
            raise InvariantViolation(
                f"{user.email} is already a user of this customer",
                rule="C4",
                path=f"users[{index}].email",
            )
        if user.id in ids:
            raise InvariantViolation(
                f"user id {user.id} appears twice", rule="C4", path=f"users[{index}].id"
            )
        emails.add(user.email.key)
        ids.add(user.id)


def _find_user(users: tuple[CustomerUser, ...], ref: UserId | EmailAddress | str) -> CustomerUser:
    if isinstance(ref, str):
        ref = UserId(ref) if ref.startswith(UserId.prefix + "_") else _email("user", ref)
    if isinstance(ref, UserId):
        found = next((u for u in users if u.id == ref), None)
    else:
        found = next((u for u in users if u.email == ref), None)
    if found is None:
        raise NotFound("customer user", ref)
    return found


# -- details ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CustomerDetails:
    """Step 1 of "Add customer": the company, its address and optional ids.

    :meth:`parse` reports every invalid field at once, as a form does (C2).
    """

    company: str
    address: Address
    legal_name: str | None = None
    ein: EIN | None = None
    billing_email: EmailAddress | None = None

    @classmethod
    def parse(
        cls,
        *,
        company: object,
        address: object,
        legal_name: object = None,
        ein: object = None,
        billing_email: object = None,
    ) -> CustomerDetails:
        """Validate raw details (a form post): every invalid field at once.

        ``address`` is an :class:`~altpay_core.values.Address` or a mapping of
        its fields; each invalid address field is reported with its own path
        (``address.postal_code``).
        """
        found = FieldErrors()
        clean_company = found.check("", _fields.required_text, "company", company)
        clean_legal = found.check("", _fields.optional_text, "legal_name", legal_name)
        clean_ein = found.check("", _ein, "ein", ein)
        clean_address = found.check("", _address, "address", address)
        clean_billing = found.check("", _optional_email, "billing_email", billing_email)
        found.raise_if_any()
        return cls(
            company=clean_company,
            address=clean_address,
            legal_name=clean_legal,
            ein=clean_ein,
            billing_email=clean_billing,
        )


# -- the draft ------------------------------------------------------------------


class DraftStep(enum.Enum):
    """Where a :class:`CustomerDraft` stands."""

    DETAILS = "details"
    """Step 1: the customer's details are still to be entered."""
    USERS = "users"
    """Step 2: details entered; add at least one user, then create."""


@attrs.frozen(kw_only=True)
class CustomerDraft:
    """The "Add customer" flow as an immutable, serialisable value.

    A service keeps it between the two form posts (``to_dict`` / ``from_dict``).
    The customer's id is fixed when the draft starts, so creating twice from
    the same draft gives the same customer id (a repository refuses the
    second).

    >>> from altpay_core import Partner
    >>> draft = CustomerDraft.start(Partner.create(name="Northwind IT", country="US"))
    >>> draft.step
    <DraftStep.DETAILS: 'details'>
    """

    partner_id: PartnerId
    customer_id: CustomerId = attrs.field(factory=CustomerId.new)
    details: CustomerDetails | None = None
    users: tuple[CustomerUser, ...] = attrs.field(default=(), converter=_user_tuple)
    started_at: dt.datetime = attrs.field(factory=utc_now)

    def __attrs_post_init__(self) -> None:
        _check_users(self.users)
        _fields.aware_datetime("started_at", self.started_at)

    @classmethod
    def start(
        cls, partner: Partner, *, by: TeamMemberId | TeamMember | None = None
    ) -> CustomerDraft:
        """Open "Add customer" for ``partner`` (step 1 of 2).

        Refused (rule C6) when one of the partner's integrations syncs
        customers: those come in through the sync instead. With ``by``, the
        team member must be allowed to manage customers.
        """
        if by is not None:
            partner.authorize(by, Action.MANAGE_CUSTOMERS)
        if partner.syncs_customers:
            raise InvariantViolation(
                "this partner's customers are synced from an integration; "
                "they are not added by hand",
                rule="C6",
            )
        return cls(partner_id=partner.id)

    @property
    def step(self) -> DraftStep:
        """The step the draft is at."""
        return DraftStep.DETAILS if self.details is None else DraftStep.USERS

    def enter_details(
        self,
        *,
        company: object,
        address: object,
        legal_name: object = None,
        ein: object = None,
        billing_email: object = None,
    ) -> CustomerDraft:
        """Step 1, "Continue": validate every field and move to step 2.

        Every invalid field is reported at once in one
        :class:`~altpay_core.errors.ValidationError` (C2). Calling it again
        goes back to change the details and keeps the users added (C3).
        """
        details = CustomerDetails.parse(
            company=company,
            address=address,
            legal_name=legal_name,
            ein=ein,
            billing_email=billing_email,
        )
        return attrs.evolve(self, details=details)

    def add_user(
        self,
        *,
        first_name: str,
        last_name: str,
        email: str | EmailAddress,
        notifications: bool = True,
    ) -> CustomerDraft:
        """Step 2: add a person who will log in and pay (C1: details first)."""
        if self.details is None:
            raise InvariantViolation(
                "enter the customer's details first (step 1 of 2), then add users",
                rule="C1",
            )
        user = CustomerUser.new(
            first_name=first_name, last_name=last_name, email=email, notifications=notifications
        )
        _refuse_taken_email(self.users, user.email)
        return attrs.evolve(self, users=(*self.users, user))

    def remove_user(self, user: UserId | EmailAddress | str) -> CustomerDraft:
        """Step 2: take a user off the draft again (by id or email)."""
        found = _find_user(self.users, user)
        return attrs.evolve(self, users=tuple(u for u in self.users if u is not found))

    def create(self) -> Customer:
        """ "Create Customer": the new customer, carrying ``customer_created``.

        Refused (C1) before the details are entered or without a user.
        """
        if self.details is None:
            raise InvariantViolation("enter the customer's details first (step 1 of 2)", rule="C1")
        if not self.users:
            raise InvariantViolation(
                "add at least 1 user, then create the customer (step 2 of 2)",
                rule="C1",
                path="users",
            )
        d = self.details
        customer = Customer(
            id=self.customer_id,
            partner_id=self.partner_id,
            company=d.company,
            address=d.address,
            users=self.users,
            legal_name=d.legal_name,
            ein=d.ein,
            billing_email=d.billing_email,
        )
        return _with_event(
            customer,
            customer,
            CustomerCreated(
                partner_id=self.partner_id,
                aggregate_id=str(customer.id),
                occurred_at=customer.created_at,
            ),
        )

    def _repr_html_(self) -> str:
        d = self.details
        rows = [
            ("step", f"{self.step.value} ({'1' if d is None else '2'} of 2)"),
            ("company", d.company if d else "-"),
            ("address", ", ".join(d.address.lines()) if d else "-"),
            ("users", ", ".join(f"{u.name} <{u.email}>" for u in self.users) or "-"),
        ]
        return html_table("Customer draft", rows)


def _refuse_taken_email(users: Iterable[CustomerUser], email: EmailAddress) -> None:
    if any(u.email.key == email.key for u in users):
        raise InvariantViolation(
            f"{email} is already a user of this customer", rule="C4", path="email"
        )


# -- the customer ------------------------------------------------------------------


class CustomerStatus(enum.Enum):
    """Whether a customer is in use or archived (the product's soft delete)."""

    ACTIVE = "active"
    ARCHIVED = "archived"


_SYNCED_FIELDS: Final = ("company", "address")


@attrs.frozen(kw_only=True)
class Customer:
    """A company billed by one partner, with the people who pay its invoices.

    Build one with :class:`CustomerDraft` (by hand) or :meth:`from_sync` (from
    an integration); change it only through its commands.
    """

    id: CustomerId
    partner_id: PartnerId
    company: str
    address: Address
    users: tuple[CustomerUser, ...] = attrs.field(converter=_user_tuple)
    legal_name: str | None = None
    ein: EIN | None = None
    billing_email: EmailAddress | None = None
    tags: frozenset[TagId] = attrs.field(default=frozenset(), converter=_tag_set)
    status: CustomerStatus = CustomerStatus.ACTIVE
    external_ref: ExternalRef | None = None
    card_fee_exception: CardFeeBearer | None = None
    created_at: dt.datetime = attrs.field(factory=utc_now)
    version: int = 0
    events: tuple[Event, ...] = _events()

    def __attrs_post_init__(self) -> None:
        if not self.users:
            raise InvariantViolation("a customer needs at least one user", rule="C5", path="users")
        _check_users(self.users)
        found = FieldErrors()
        found.check("", _fields.required_text, "company", self.company)
        found.check("", _fields.optional_text, "legal_name", self.legal_name)
        found.check("", _fields.choice, "status", self.status, CustomerStatus)
        found.check("", _fields.aware_datetime, "created_at", self.created_at)
        found.check("", _fields.version_number, "version", self.version)
        found.raise_if_any()

    # -- building from an integration ---------------------------------------

    @classmethod
    def from_sync(
        cls,
        partner: Partner,
        *,
        external_ref: ExternalRef,
        company: object,
        address: object,
        users: Iterable[CustomerUser],
        legal_name: object = None,
        ein: object = None,
        billing_email: object = None,
    ) -> Customer:
        """A customer synced in from one of the partner's integrations.

        Its company, address and external reference are controlled by the
        integration (C6, C10): the partner cannot edit them, only
        :meth:`apply_sync` can.
        """
        integration = partner.integration(external_ref.system)
        if not integration.syncs_customers:
            raise InvariantViolation(
                f"{integration.system} does not sync customers for this partner",
                rule="C6",
                path="external_ref",
            )
        details = CustomerDetails.parse(
            company=company,
            address=address,
            legal_name=legal_name,
            ein=ein,
            billing_email=billing_email,
        )
        customer = cls(
            id=CustomerId.new(),
            partner_id=partner.id,
            company=details.company,
            address=details.address,
            users=tuple(users),
            legal_name=details.legal_name,
            ein=details.ein,
            billing_email=details.billing_email,
            external_ref=external_ref,
        )
        return _with_event(
            customer,
            customer,
            CustomerCreated(
                partner_id=partner.id,
                aggregate_id=str(customer.id),
                occurred_at=customer.created_at,
            ),
        )

    # -- reading -----------------------------------------------------------------

    @property
    def is_active(self) -> bool:
        """Not archived: gets invoices, and its users see them (C8)."""
        return self.status is CustomerStatus.ACTIVE

    @property
    def is_synced(self) -> bool:
        """Came from an integration (has an external reference)."""
        return self.external_ref is not None

    def user(self, ref: UserId | EmailAddress | str) -> CustomerUser:
        """The user with that id or email (``NotFound`` otherwise)."""
        return _find_user(self.users, ref)

    def has_user(self, email: EmailAddress | str) -> bool:
        """Whether ``email`` is one of this customer's users."""
        key = _email("email", email).key
        return any(u.email.key == key for u in self.users)

    def card_fee_bearer(self, partner: Partner) -> CardFeeBearer:
        """Who bears card fees for this customer: its exception, else the policy."""
        if self.card_fee_exception is not None:
            return self.card_fee_exception
        return partner.card_fees.bearer

    # -- commands ----------------------------------------------------------------

    def _changed(self, changes: tuple[str, ...], **fields: Any) -> Customer:
        new = attrs.evolve(self, **fields)
        return _with_event(
            new,
            self,
            CustomerUpdated(partner_id=self.partner_id, aggregate_id=str(self.id), changes=changes),
        )

    def _refuse_if_archived(self) -> None:
        if not self.is_active:
            raise InvariantViolation(
                "an archived customer cannot be changed; restore it first", rule="C8"
            )

    def update_details(
        self,
        *,
        company: object = KEEP,
        address: object = KEEP,
        legal_name: object = KEEP,
        ein: object = KEEP,
        billing_email: object = KEEP,
    ) -> Customer:
        """Change the company's details (C7); every invalid field is reported
        at once. Omitted arguments keep their value; ``None`` clears an
        optional one.

        A synced customer's company and address belong to its integration
        (C6): change them with :meth:`apply_sync`.
        """
        self._refuse_if_archived()
        wanted = {
            "company": company,
            "address": address,
            "legal_name": legal_name,
            "ein": ein,
            "billing_email": billing_email,
        }
        if self.is_synced:
            for name in _SYNCED_FIELDS:
                if wanted[name] is not KEEP:
                    raise InvariantViolation(
                        f"'{name}' of a synced customer comes from its integration",
                        rule="C6",
                        path=name,
                    )
        return self._apply_details(wanted)

    def _apply_details(self, wanted: dict[str, object]) -> Customer:
        merged = {
            name: getattr(self, name) if value is KEEP else value for name, value in wanted.items()
        }
        details = CustomerDetails.parse(**merged)
        fields = {name: getattr(details, name) for name in wanted}
        changes = tuple(name for name, value in fields.items() if value != getattr(self, name))
        if not changes:
            return self
        return self._changed(changes, **fields)

    def apply_sync(
        self,
        *,
        company: object = KEEP,
        address: object = KEEP,
        legal_name: object = KEEP,
        ein: object = KEEP,
        billing_email: object = KEEP,
    ) -> Customer:
        """What the integration says changed: the one path that may change a
        synced customer's company and address (C6). Its external reference
        never changes (C10).
        """
        if not self.is_synced:
            raise InvariantViolation("only a synced customer is changed by a sync", rule="C6")
        return self._apply_details(
            {
                "company": company,
                "address": address,
                "legal_name": legal_name,
                "ein": ein,
                "billing_email": billing_email,
            }
        )

    def add_user(
        self,
        *,
        first_name: str,
        last_name: str,
        email: str | EmailAddress,
        notifications: bool = True,
    ) -> Customer:
        """Give one more person a login to this customer (emails unique, C4)."""
        self._refuse_if_archived()
        user = CustomerUser.new(
            first_name=first_name, last_name=last_name, email=email, notifications=notifications
        )
        _refuse_taken_email(self.users, user.email)
        return self._changed(("users",), users=(*self.users, user))

    def remove_user(self, user: UserId | EmailAddress | str) -> Customer:
        """Take a user's login away, by id or email; never the last one (C5)."""
        self._refuse_if_archived()
        found = _find_user(self.users, user)
        if len(self.users) == 1:
            raise InvariantViolation(
                f"a customer needs at least one user; add another before removing {found.email}",
                rule="C5",
                path="users",
            )
        return self._changed(("users",), users=tuple(u for u in self.users if u is not found))

    def set_notifications(self, user: UserId | EmailAddress | str, enabled: bool) -> Customer:
        """Switch a user's email notifications on or off."""
        self._refuse_if_archived()
        found = _find_user(self.users, user)
        if not isinstance(enabled, bool):
            raise ValidationError.single("enabled", "wrong_type", "'enabled' must be true or false")
        if found.notifications is enabled:
            return self
        users = tuple(
            attrs.evolve(u, notifications=enabled) if u is found else u for u in self.users
        )
        return self._changed(("users",), users=users)

    def set_tags(self, partner: Partner, tags: Iterable[TagId | str]) -> Customer:
        """Carry exactly these tags, each from the partner's catalog (by id or name)."""
        self._refuse_if_archived()
        if partner.id != self.partner_id:
            raise NotFound("partner", partner.id)
        wanted = frozenset(partner.tag(t).id for t in tags)
        if wanted == self.tags:
            return self
        return self._changed(("tags",), tags=wanted)

    def remove_tag(self, tag: TagId) -> Customer:
        """Drop a tag (as when the partner deletes it from its catalog).

        Allowed on archived customers too: a deleted tag leaves every customer.
        """
        if tag not in self.tags:
            return self
        return self._changed(("tags",), tags=self.tags - {tag})

    def set_card_fee_exception(self, bearer: CardFeeBearer | str | None) -> Customer:
        """Override the partner's card-fee policy for this customer; ``None``
        follows the policy again."""
        self._refuse_if_archived()
        value = None if bearer is None else _fields.choice("bearer", bearer, CardFeeBearer)
        if value == self.card_fee_exception:
            return self
        return self._changed(("card_fee_exception",), card_fee_exception=value)

    def archive(self) -> Customer:
        """Archive (soft delete): no new invoices, its users see nothing, the
        history stays (C8)."""
        if not self.is_active:
            return self
        new = attrs.evolve(self, status=CustomerStatus.ARCHIVED)
        return _with_event(
            new,
            self,
            CustomerArchived(
                partner_id=self.partner_id, aggregate_id=str(self.id), changes=("status",)
            ),
        )

    def restore(self) -> Customer:
        """Bring an archived customer back."""
        if self.is_active:
            return self
        return self._changed(("status",), status=CustomerStatus.ACTIVE)

    def _repr_html_(self) -> str:
        rows = [
            ("id", str(self.id)),
            ("company", self.company),
            ("legal name", self.legal_name or "-"),
            ("EIN", str(self.ein) if self.ein else "-"),
            ("address", ", ".join(self.address.lines())),
            ("status", self.status.value),
            ("source", str(self.external_ref) if self.external_ref else "manual"),
            ("users", ", ".join(f"{u.name} <{u.email}>" for u in self.users)),
            ("version", str(self.version)),
        ]
        return html_table(f"Customer {self.company}", rows)


# -- access requests ------------------------------------------------------------


class AccessRequestStatus(enum.Enum):
    """Where an access request stands."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


@attrs.frozen(kw_only=True)
class AccessRequest:
    """Someone used a partner's billing link but is no user of its customers.

    An Admin or Sub-Admin resolves it (C9): :meth:`add_to_customer`,
    :meth:`start_customer` (a draft with the person already added as a user)
    or :meth:`reject`. Whether the email is already a user of one of the
    partner's customers is a question for the repository
    (``customers.with_user(email)``), asked before opening one.
    """

    id: AccessRequestId
    partner_id: PartnerId
    email: EmailAddress
    first_name: str | None = None
    last_name: str | None = None
    status: AccessRequestStatus = AccessRequestStatus.PENDING
    customer_id: CustomerId | None = None
    resolved_by: TeamMemberId | None = None
    requested_at: dt.datetime = attrs.field(factory=utc_now)
    resolved_at: dt.datetime | None = None
    version: int = 0
    events: tuple[Event, ...] = _events()

    def __attrs_post_init__(self) -> None:
        pending = self.status is AccessRequestStatus.PENDING
        if pending != (self.resolved_at is None) or pending != (self.resolved_by is None):
            raise InvariantViolation(
                "a resolved access request records who resolved it and when; "
                "a pending one has neither",
                rule="C9",
                path="status",
            )
        if (self.status is AccessRequestStatus.APPROVED) != (self.customer_id is not None):
            raise InvariantViolation(
                "an approved access request names the customer it was added to, and only then",
                rule="C9",
                path="customer_id",
            )
        _fields.version_number("version", self.version)

    @classmethod
    def open(
        cls,
        partner: Partner,
        *,
        email: str | EmailAddress,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> AccessRequest:
        """Record that ``email`` asked for access through the billing link."""
        found = FieldErrors()
        clean_email = found.check("", _email, "email", email)
        first = found.check("", _fields.optional_text, "first_name", first_name)
        last = found.check("", _fields.optional_text, "last_name", last_name)
        found.raise_if_any()
        return cls(
            id=AccessRequestId.new(),
            partner_id=partner.id,
            email=clean_email,
            first_name=first,
            last_name=last,
        )

    def _resolver(self, partner: Partner, by: TeamMemberId | TeamMember) -> TeamMember:
        if partner.id != self.partner_id:
            raise NotFound("access request", self.id)
        member = partner.authorize(by, Action.APPROVE_ACCESS_REQUESTS)
        if self.status is not AccessRequestStatus.PENDING:
            raise InvariantViolation(
                f"this access request is already {self.status.value}", rule="C9"
            )
        return member

    def _names(self, first_name: str | None, last_name: str | None) -> tuple[str, str]:
        found = FieldErrors()
        first = found.check("", _fields.required_text, "first_name", first_name or self.first_name)
        last = found.check("", _fields.required_text, "last_name", last_name or self.last_name)
        found.raise_if_any()
        return first, last

    def _resolved(
        self,
        member: TeamMember,
        status: AccessRequestStatus,
        customer_id: CustomerId | None,
    ) -> AccessRequest:
        return attrs.evolve(
            self,
            status=status,
            customer_id=customer_id,
            resolved_by=member.id,
            resolved_at=utc_now(),
        )

    def add_to_customer(
        self,
        customer: Customer,
        *,
        partner: Partner,
        by: TeamMemberId | TeamMember,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> tuple[AccessRequest, Customer]:
        """Approve: the person becomes a user of an existing ``customer``.

        Names default to the ones given with the request.
        """
        member = self._resolver(partner, by)
        if customer.partner_id != self.partner_id:
            raise NotFound("customer", customer.id)
        first, last = self._names(first_name, last_name)
        updated = customer.add_user(first_name=first, last_name=last, email=self.email)
        return self._resolved(member, AccessRequestStatus.APPROVED, customer.id), updated

    def start_customer(
        self,
        *,
        partner: Partner,
        by: TeamMemberId | TeamMember,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> tuple[AccessRequest, CustomerDraft]:
        """Approve by creating a new customer: a draft at step 1 with the
        person already added as its user. The request names the draft's
        customer id; the customer exists once the draft is created."""
        member = self._resolver(partner, by)
        first, last = self._names(first_name, last_name)
        draft = CustomerDraft.start(partner)
        user = CustomerUser.new(first_name=first, last_name=last, email=self.email)
        draft = attrs.evolve(draft, users=(user,))
        return self._resolved(member, AccessRequestStatus.APPROVED, draft.customer_id), draft

    def reject(self, *, partner: Partner, by: TeamMemberId | TeamMember) -> AccessRequest:
        """Refuse access."""
        member = self._resolver(partner, by)
        return self._resolved(member, AccessRequestStatus.REJECTED, None)
