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

import contextlib
import datetime as dt
import enum
from collections.abc import Iterable, Mapping, Set
from typing import Any, Final, Protocol, TypeVar

import attrs

from . import _fields
from ._arguments import checked_arguments, checked_constructor, checked_form
from ._html import html_table
from .errors import FieldErrors, InvariantViolation, NotFound, ValidationError, key_text, shown
from .events import CustomerArchived, CustomerCreated, CustomerUpdated, Event, utc_now
from .partner import (
    KEEP,
    Action,
    CardFeeBearer,
    Partner,
    Tag,
    TeamMember,
    _authorize_by,
    _email,
    _events,
    _FieldCheck,
    _kept_text,
)
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

_NAME_MAX: Final = 100
# How many users a one-line repr lists before it says "+n more".
_REPR_USERS: Final = 3


def _optional_email(path: str, value: object) -> EmailAddress | None:
    if value is None or (isinstance(value, str) and not str.strip(value)):
        return None
    return _email(path, value)


def _ein(path: str, value: object) -> EIN | None:
    if value is None or (isinstance(value, str) and not str.strip(value)):
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


def _as_frozenset(
    value: list[Any] | tuple[Any, ...] | set[Any] | frozenset[Any],
) -> frozenset[Any]:
    # Lists, tuples and sets of TagIds become a frozenset; anything else (a
    # string, above all) is left for the checks to report.
    if isinstance(value, list | tuple | set | frozenset):
        if all(isinstance(item, TagId) for item in value):
            with contextlib.suppress(TypeError):
                return frozenset(value)
        # An item that is not a TagId (or is unhashable): kept as a tuple, so
        # that the checks report each such item at its index. A list's own
        # order gives the caller's indices; a set's items are put in an order
        # that is the same in every process, not in their hash order.
        if isinstance(value, set | frozenset):
            return tuple(_fields.in_stable_order(value))  # type: ignore[return-value]
        return tuple(value)  # type: ignore[return-value]
    return value


def _partner(value: object) -> Partner:
    return _fields.argument("partner", value, Partner, "a Partner")


def _same(old: object, new: object) -> bool:
    """Whether a field keeps its value: for an email, its text too (equality
    compares the case-folded address, but ``Ann@`` stored as ``ann@`` is a
    change the partner asked for)."""
    if isinstance(old, EmailAddress) and isinstance(new, EmailAddress):
        return old.value == new.value
    return bool(old == new)


class _HasEvents(Protocol):
    @property
    def events(self) -> tuple[Event, ...]: ...


_A = TypeVar("_A")


def _with_event(new: _A, old: _HasEvents, event: Event) -> _A:
    # The new instance starts with no events (init=False); it carries the old
    # value's pending events plus this one, until a repository stores it.
    object.__setattr__(new, "events", (*old.events, event))
    return new


def _emails(users: Iterable[CustomerUser]) -> list[str]:
    users = list(users)
    shown = [str(u.email) for u in users[:_REPR_USERS]]
    if len(users) > _REPR_USERS:
        shown.append(f"+{len(users) - _REPR_USERS} more")
    return shown


# -- users ------------------------------------------------------------------


@checked_constructor
@attrs.frozen
class CustomerUser:
    """A person who can log in and view and pay every invoice of a customer.

    One email may be a user of several customers, of one partner or of
    several; within one customer, emails are unique (C4).
    """

    id: UserId
    first_name: str
    last_name: str
    email: EmailAddress
    notifications: bool = True
    """Whether the user gets email notifications (invoices, receipts)."""

    def __attrs_post_init__(self) -> None:
        if not self._fields_kept():
            self._check_each_field()

    def _fields_kept(self) -> bool:
        """The quick check: whether every field already has exactly its type
        and its text is trimmed, so that :meth:`_check_each_field` could find
        nothing to report and nothing to change. Users read from a sync or
        built by a command pass it; anything else gets the detailed checks."""
        return (
            type(self.id) is UserId
            and _kept_text(self.first_name, _NAME_MAX)
            and _kept_text(self.last_name, _NAME_MAX)
            and type(self.email) is EmailAddress
            and type(self.notifications) is bool
        )

    def _check_each_field(self) -> None:
        """Check every field, report each invalid one, trim the text."""
        check = _FieldCheck(self)
        check.instance("id", UserId, "a UserId")
        check.text("first_name", max_length=_NAME_MAX)
        check.text("last_name", max_length=_NAME_MAX)
        check.instance("email", EmailAddress, "an EmailAddress")
        check.boolean("notifications")
        check.done()

    @classmethod
    @checked_form
    def new(
        cls,
        *,
        first_name: str,
        last_name: str,
        email: str | EmailAddress,
        notifications: bool = True,
    ) -> CustomerUser:
        """A new user with a fresh id; every invalid field is reported at once.

        >>> CustomerUser.new(first_name="Ann", last_name="Lee",
        ...                  email="Ann.Lee@Globex.EXAMPLE").email
        EmailAddress('Ann.Lee@globex.example')
        """
        clean = _user_fields(
            {
                "first_name": first_name,
                "last_name": last_name,
                "email": email,
                "notifications": notifications,
            }
        )
        return cls(UserId.new(), **clean)

    @property
    def name(self) -> str:
        """First and last name."""
        return f"{self.first_name} {self.last_name}"


_USER_FIELDS: Final = ("first_name", "last_name", "email", "notifications")


def _refuse_if_synced(partner: Partner) -> None:
    """C6: a partner whose integration syncs customers adds none by hand."""
    if partner.syncs_customers:
        raise InvariantViolation(
            "this partner's customers are synced from an integration; they are not added by hand",
            rule="C6",
        )


def _user_from(path: str, value: object) -> CustomerUser:
    """A user given as itself or as a mapping of its fields (a sync's record)."""
    if isinstance(value, CustomerUser):
        return value
    if not isinstance(value, Mapping):
        raise ValidationError.single(
            path,
            "wrong_type",
            f"'{path}' must be a CustomerUser or a mapping of its fields "
            f"(got {type(value).__name__})",
        )
    found = FieldErrors()
    # Read by the keys' plain text: a str subclass's own __hash__ and __eq__
    # could make a key that names no field read as one.
    given, keys = _fields.text_keyed(found, path, value)
    for key in keys:
        if not isinstance(key, str) or key not in _USER_FIELDS:
            found.add(
                f"{path}.{key_text(key)}",
                "unknown_field",
                f"{shown(key)} is not a field of a user "
                f"(expected one of {', '.join(_USER_FIELDS)})",
            )
    for key in _USER_FIELDS[:3]:
        if key not in given:
            found.add(f"{path}.{key}", "missing", f"'{path}.{key}' is required")
    # Each field given is checked, whatever else is missing or unknown.
    clean = found.check(path, _user_fields, given)
    found.raise_if_any()
    return CustomerUser(UserId.new(), **_fields.passed(clean))


def _user_fields(given: Mapping[Any, object]) -> dict[str, Any]:
    """The user fields that ``given`` holds, each checked (every invalid one
    reported at once) and cleaned: what :meth:`CustomerUser.new` takes."""
    found = FieldErrors()
    clean: dict[str, Any] = {}
    for key in ("first_name", "last_name"):
        if key in given:
            clean[key] = found.check(
                "", _fields.required_text, key, given[key], max_length=_NAME_MAX
            )
    if "email" in given:
        clean["email"] = found.check("", _email, "email", given["email"])
    notifications = given.get("notifications", True)
    found.check("", _fields.boolean, "notifications", notifications)
    clean["notifications"] = notifications
    found.raise_if_any()
    return clean


def _users_from(path: str, value: object) -> tuple[CustomerUser, ...]:
    if not isinstance(value, list | tuple):
        raise ValidationError.single(
            path, "wrong_type", f"'{path}' must be a list of users (got {type(value).__name__})"
        )
    found = FieldErrors()
    users = [found.check("", _user_from, f"{path}[{i}]", item) for i, item in enumerate(value)]
    found.raise_if_any()
    return tuple(_fields.passed(user) for user in users)


def _check_users(users: tuple[CustomerUser, ...]) -> None:
    """Rule C4: one user per email (case-insensitively); and rule
    ``customer-unique-user-id``: one user per id."""
    duplicate = _duplicate_user(users)
    if duplicate is not None:
        raise duplicate


def _duplicate_user(users: tuple[CustomerUser, ...]) -> InvariantViolation | None:
    """What rule C4 (the email, case-insensitively) or
    ``customer-unique-user-id`` says of the first user whose email or id an
    earlier user has, or None when there is none."""
    # The usual case in two set builds; distinct id texts are distinct ids.
    # Only a duplicate needs the loop below, which finds and names it.
    count = len(users)
    if len({u.email.key for u in users}) == count == len({u.id.value for u in users}):
        return None
    emails: set[str] = set()
    ids: set[UserId] = set()
    for index, user in enumerate(users):
        if user.email.key in emails:
            return InvariantViolation(
                f"{user.email} is already a user of this customer (emails are compared "
                "case-insensitively)",
                rule="C4",
                path=f"users[{index}].email",
            )
        if user.id in ids:
            return InvariantViolation(
                f"user id {user.id} appears twice",
                rule="customer-unique-user-id",
                path=f"users[{index}].id",
            )
        emails.add(user.email.key)
        ids.add(user.id)
    raise AssertionError("unreachable: a duplicate email or id was counted")  # pragma: no cover


def _user_ref(ref: object, path: str) -> UserId | EmailAddress:
    """The id or email that ``ref`` names a user by; errors at ``path``, the
    name of the argument it came in."""
    if isinstance(ref, UserId | EmailAddress):
        return ref
    if isinstance(ref, CustomerUser):
        return ref.id
    if isinstance(ref, str):
        # A user id never holds an "@"; an email always does.
        if "@" in ref:
            return _email(path, ref)
        try:
            return _fields.entity_id(path, str.strip(ref), UserId)
        except ValidationError:
            raise ValidationError.single(
                path,
                "invalid_user",
                f"'{path}' must be a user's id (usr_...) or email address (got {shown(ref)})",
            ) from None
    raise ValidationError.single(
        path,
        "wrong_type",
        f"'{path}' must be a user, a user id or an email address (got {type(ref).__name__})",
    )


def _find_user(
    users: tuple[CustomerUser, ...],
    ref: UserId | EmailAddress | CustomerUser | str,
    path: str = "user",
) -> CustomerUser:
    wanted = _user_ref(ref, path)
    for user in users:
        if (user.id if isinstance(wanted, UserId) else user.email) == wanted:
            return user
    raise NotFound("customer user", wanted)


def _one_user(
    user: UserId | EmailAddress | CustomerUser | str | None,
    email: EmailAddress | str | None,
    user_id: UserId | str | None,
) -> UserId | EmailAddress | CustomerUser | str:
    """The one user named by ``remove_user``'s arguments, each keyword's
    value checked at its own path."""
    given = [
        name
        for name, value in (("user", user), ("email", email), ("user_id", user_id))
        if value is not None
    ]
    if len(given) != 1:
        raise ValidationError.single(
            "user",
            "ambiguous" if given else "missing",
            "name the user once: as a user, an id or an email, or by email= or user_id= "
            f"(got {', '.join(given) or 'none'})",
        )
    if email is not None:
        return _email("email", email)
    if user_id is not None:
        if not isinstance(user_id, UserId | str):
            raise ValidationError.single(
                "user_id",
                "wrong_type",
                f"'user_id' must be a user id (got {type(user_id).__name__})",
            )
        text = str.strip(user_id) if isinstance(user_id, str) else user_id
        return _fields.entity_id("user_id", text, UserId)
    assert user is not None
    return user


def _refuse_taken_email(users: Iterable[CustomerUser], email: EmailAddress) -> None:
    if any(u.email.key == email.key for u in users):
        raise InvariantViolation(
            f"{email} is already a user of this customer (emails are compared case-insensitively)",
            rule="C4",
            path="email",
        )


# -- details ------------------------------------------------------------------


@checked_constructor
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

    def __attrs_post_init__(self) -> None:
        check = _FieldCheck(self)
        check.text("company")
        check.text("legal_name", optional=True)
        check.instance("ein", EIN, "an EIN", optional=True)
        check.instance("address", Address, "an Address")
        check.instance("billing_email", EmailAddress, "an EmailAddress", optional=True)
        check.done()

    @classmethod
    @checked_form
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
        (``address.postal_code``). Blank optional fields become ``None``.
        """
        found = FieldErrors()
        clean_company = found.check("", _fields.required_text, "company", company)
        clean_legal = found.check("", _fields.optional_text, "legal_name", legal_name)
        clean_ein = found.check("", _ein, "ein", ein)
        clean_address = found.check("", _address, "address", address)
        clean_billing = found.check("", _optional_email, "billing_email", billing_email)
        found.raise_if_any()
        return cls(
            company=_fields.passed(clean_company),
            address=_fields.passed(clean_address),
            legal_name=clean_legal,
            ein=clean_ein,
            billing_email=clean_billing,
        )


_DETAIL_FIELDS: Final = ("company", "address", "legal_name", "ein", "billing_email")


# -- the draft ------------------------------------------------------------------


class DraftStep(_fields.Choices, enum.Enum):
    """Where a :class:`CustomerDraft` stands."""

    DETAILS = "details"
    """Step 1: the customer's details are still to be entered."""
    USERS = "users"
    """Step 2: details entered; add at least one user, then create."""

    @property
    def number(self) -> int:
        """1 or 2, as the form counts its steps."""
        return 1 if self is DraftStep.DETAILS else 2


@checked_constructor
@attrs.frozen(kw_only=True, repr=False)
class CustomerDraft:
    """The "Add customer" flow as an immutable, serialisable value.

    A service keeps it between the two form posts (``to_dict`` / ``from_dict``).
    The customer's id is fixed when the draft starts, so creating twice from
    the same draft gives the same customer id (a repository refuses the
    second).

    The steps, in order (C1): :meth:`enter_details` ("Continue"),
    :meth:`add_user` (at least one), :meth:`create` ("Create Customer").
    Calling :meth:`enter_details` again goes back to step 1 and keeps the
    users (C3). A draft started from an access request
    (:meth:`AccessRequest.start_customer`) is at step 1 with its person
    already added; the request is approved with the customer it creates
    (:meth:`AccessRequest.approve_new_customer`).

    >>> from altpay_core import Partner
    >>> draft = CustomerDraft.start(Partner.create(name="Northwind IT", country="US"))
    >>> draft.step
    <DraftStep.DETAILS: 'details'>
    """

    partner_id: PartnerId
    customer_id: CustomerId = attrs.field(factory=CustomerId.new)
    details: CustomerDetails | None = None
    users: tuple[CustomerUser, ...] = attrs.field(default=(), converter=_fields.list_as_tuple)
    started_at: dt.datetime = attrs.field(factory=utc_now)

    def __attrs_post_init__(self) -> None:
        check = _FieldCheck(self)
        check.instance("partner_id", PartnerId, "a PartnerId")
        check.instance("customer_id", CustomerId, "a CustomerId")
        check.instance("details", CustomerDetails, "CustomerDetails", optional=True)
        users_ok = check.items("users", CustomerUser, "a CustomerUser")
        duplicate = _duplicate_user(self.users) if users_ok else None
        _fields.note_rule(check.found, duplicate)
        check.datetime("started_at")
        _fields.raise_rule_alone(check.found, duplicate)

    @classmethod
    @checked_arguments
    def start(
        cls, partner: Partner, *, by: TeamMemberId | TeamMember | None = None
    ) -> CustomerDraft:
        """Open "Add customer" for ``partner`` (step 1 of 2).

        Refused (rule C6) when one of the partner's integrations syncs
        customers: those come in through the sync instead. With ``by``, the
        team member must be allowed to manage customers.
        """
        _partner(partner)
        if by is not None:
            partner.authorize(by, Action.MANAGE_CUSTOMERS)
        _refuse_if_synced(partner)
        return cls(partner_id=partner.id)

    @property
    def step(self) -> DraftStep:
        """The step the draft is at."""
        return DraftStep.DETAILS if self.details is None else DraftStep.USERS

    @checked_form
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
        :class:`~altpay_core.errors.ValidationError` (C2), each with its path
        (``company``, ``ein``, ``address.postal_code``, ...); the draft is
        left as it was. A required field left out (``**form`` without
        ``company``) is one of them, code ``missing``, in an
        :class:`~altpay_core.errors.ArgumentError`. Calling it again goes
        back to change the details and keeps the users added (C3).
        """
        details = CustomerDetails.parse(
            company=company,
            address=address,
            legal_name=legal_name,
            ein=ein,
            billing_email=billing_email,
        )
        return attrs.evolve(self, details=details)

    @checked_form
    def add_user(
        self,
        *,
        first_name: str,
        last_name: str,
        email: str | EmailAddress,
        notifications: bool = True,
    ) -> CustomerDraft:
        """Step 2: add a person who will log in and pay.

        Refused before the details are entered (C1) and for an email that is
        already a user of the draft, compared case-insensitively (C4). Every
        invalid field is reported at once, a required one left out among
        them (``missing``, in an :class:`~altpay_core.errors.ArgumentError`).
        """
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

    @checked_arguments
    def remove_user(
        self,
        user: UserId | EmailAddress | CustomerUser | str | None = None,
        *,
        email: EmailAddress | str | None = None,
        user_id: UserId | str | None = None,
    ) -> CustomerDraft:
        """Take a user off the draft again (by id or email, as for
        :meth:`Customer.remove_user`)."""
        found = _find_user(self.users, _one_user(user, email, user_id))
        return attrs.evolve(self, users=tuple(u for u in self.users if u is not found))

    @checked_arguments
    def create(self) -> Customer:
        """ "Create Customer": the new customer, carrying ``customer_created``.

        Refused (C1) before the details are entered or without a user.
        """
        if self.details is None:
            raise InvariantViolation(
                "enter the customer's details first (step 1 of 2), then add users and create",
                rule="C1",
            )
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

    def __repr__(self) -> str:
        company = self.details.company if self.details is not None else None
        return (
            f"CustomerDraft(customer_id={str(self.customer_id)!r}, "
            f"step={self.step.value!r}, company={company!r}, users={_emails(self.users)!r})"
        )

    def _repr_html_(self) -> str:
        d = self.details
        rows = [
            ("step", f"{self.step.number} of 2 ({self.step.value})"),
            ("customer id", str(self.customer_id)),
            ("company", d.company if d else "-"),
            ("legal name", (d.legal_name if d else None) or "-"),
            ("address", ", ".join(d.address.lines()) if d else "-"),
            ("users", ", ".join(f"{u.name} <{u.email}>" for u in self.users) or "-"),
        ]
        return html_table("Customer draft", rows)


# -- the customer ------------------------------------------------------------------


class CustomerStatus(_fields.Choices, enum.Enum):
    """Whether a customer is in use or archived (the product's soft delete)."""

    ACTIVE = "active"
    ARCHIVED = "archived"


_C5_MESSAGE: Final = "a customer needs at least one user"


def _users_rule(users: tuple[CustomerUser, ...]) -> InvariantViolation | None:
    """What a customer's users break: C5 (none at all), C4 (an email twice)
    or ``customer-unique-user-id`` (an id twice)."""
    if not users:
        return InvariantViolation(_C5_MESSAGE, rule="C5", path="users")
    return _duplicate_user(users)


_SYNCED_FIELDS: Final = ("company", "address")
"""The fields of a synced customer that only its integration changes (C6)."""


@checked_constructor
@attrs.frozen(kw_only=True, repr=False)
class Customer:
    """A company billed by one partner, with the people who pay its invoices.

    Build one with :class:`CustomerDraft` (by hand) or :meth:`from_sync` (from
    an integration); change it only through its commands. Each command
    returns a new customer carrying a ``customer_updated`` (or
    ``customer_archived``) event in :attr:`events`, and leaves this one
    untouched; a command that changes nothing returns this very customer.
    The event is dated now, or, when that is earlier, at ``created_at`` or
    at the latest pending event's time: events stay oldest first.

    Every customer that exists, however it was built, has at least one user
    (C5), unique emails among its users (C4) and valid fields.
    """

    id: CustomerId
    partner_id: PartnerId
    company: str
    address: Address
    users: tuple[CustomerUser, ...] = attrs.field(converter=_fields.list_as_tuple)
    legal_name: str | None = None
    ein: EIN | None = None
    billing_email: EmailAddress | None = None
    tags: frozenset[TagId] = attrs.field(default=frozenset(), converter=_as_frozenset)
    status: CustomerStatus = CustomerStatus.ACTIVE
    external_ref: ExternalRef | None = None
    card_fee_exception: CardFeeBearer | None = None
    created_at: dt.datetime = attrs.field(factory=utc_now)
    version: int = 0
    events: tuple[Event, ...] = _events()

    def __attrs_post_init__(self) -> None:
        if not self._fields_kept():
            self._check_each_field()
        _check_users(self.users)

    def _fields_kept(self) -> bool:
        """The quick check: whether every field already has exactly its type
        and form (text trimmed, enumerations as members, the time in UTC), so
        that :meth:`_check_each_field` could find nothing to report and
        nothing to change. Customers read from a sync or built by a command
        pass it; anything else gets the detailed checks."""
        users, tags, created = self.users, self.tags, self.created_at
        legal, ein, billing = self.legal_name, self.ein, self.billing_email
        ref, fee, version = self.external_ref, self.card_fee_exception, self.version
        return (
            type(self.id) is CustomerId
            and type(self.partner_id) is PartnerId
            and _kept_text(self.company)
            and type(self.address) is Address
            and type(users) is tuple
            and len(users) > 0
            and all(type(u) is CustomerUser for u in users)
            and (legal is None or _kept_text(legal))
            and (ein is None or type(ein) is EIN)
            and (billing is None or type(billing) is EmailAddress)
            and type(tags) is frozenset
            and all(type(t) is TagId for t in tags)
            and type(self.status) is CustomerStatus
            and (ref is None or type(ref) is ExternalRef)
            and (fee is None or type(fee) is CardFeeBearer)
            and type(created) is dt.datetime
            and created.tzinfo is dt.UTC
            and type(version) is int
            and version >= 0
        )

    def _check_each_field(self) -> None:
        """Check every field, report each invalid one, trim the text and
        turn enumeration values into members; C5 (at least one user)."""
        check = _FieldCheck(self)
        check.instance("id", CustomerId, "a CustomerId")
        check.instance("partner_id", PartnerId, "a PartnerId")
        check.text("company")
        check.instance("address", Address, "an Address")
        users_ok = check.items("users", CustomerUser, "a CustomerUser")
        broken = _users_rule(self.users) if users_ok else None
        _fields.note_rule(check.found, broken)
        check.text("legal_name", optional=True)
        check.instance("ein", EIN, "an EIN", optional=True)
        check.instance("billing_email", EmailAddress, "an EmailAddress", optional=True)
        if isinstance(self.tags, tuple):
            # Only a collection with an item that is not a TagId is left a
            # tuple (see _as_frozenset): each such item is named.
            check.items("tags", TagId, "a TagId")
        else:
            check.items("tags", TagId, "a TagId", kind_of_list=frozenset)
        check.choice("status", CustomerStatus)
        check.instance("external_ref", ExternalRef, "an ExternalRef", optional=True)
        check.choice("card_fee_exception", CardFeeBearer, optional=True)
        check.datetime("created_at")
        check.version()
        # Raises unless the users are a tuple of CustomerUser that breaks neither rule.
        _fields.raise_rule_alone(check.found, broken)

    # -- building from an integration ---------------------------------------

    @classmethod
    @checked_form
    def from_sync(
        cls,
        partner: Partner,
        *,
        external_ref: ExternalRef,
        company: object,
        address: object,
        users: Iterable[CustomerUser | Mapping[str, object]],
        legal_name: object = None,
        ein: object = None,
        billing_email: object = None,
    ) -> Customer:
        """A customer synced in from one of the partner's integrations,
        carrying ``customer_created``.

        The integration named by ``external_ref.system`` must be connected
        and sync customers (C6). ``users`` are :class:`CustomerUser` values or
        mappings of their fields (``first_name``, ``last_name``, ``email``,
        optionally ``notifications``), as a sync gives them; at least one is
        needed (C5). Every invalid field is reported at once
        (``users[1].email``, ``address.postal_code``).

        Its company, address and external reference are controlled by the
        integration (C6, C10): the partner cannot edit them, only
        :meth:`apply_sync` can change the first two, and the reference never
        changes. That no other customer of the partner that is not archived
        has the same reference (C10) is checked when it is stored.
        """
        _partner(partner)
        found = FieldErrors()
        if not isinstance(external_ref, ExternalRef):  # reported with the other fields
            found.add(
                "external_ref",
                "wrong_type",
                f"'external_ref' must be an ExternalRef (got {type(external_ref).__name__})",
            )
        elif not (integration := partner.integration(external_ref.system)).syncs_customers:
            raise InvariantViolation(
                f"{integration.system} does not sync customers for this partner",
                rule="C6",
                path="external_ref",
            )
        details = found.check(
            "",
            CustomerDetails.parse,
            company=company,
            address=address,
            legal_name=legal_name,
            ein=ein,
            billing_email=billing_email,
        )
        clean_users = found.check(
            "",
            _users_from,
            "users",
            list(users)
            if isinstance(users, Iterable) and not isinstance(users, str | Mapping)
            else users,
        )
        if found.errors and clean_users is not None:
            # Rules C4 and C5 among the field errors, as the constructor
            # reports them: none hides another.
            _fields.note_rule(found, _users_rule(clean_users))
        found.raise_if_any()
        details = _fields.passed(details)
        customer = cls(
            id=CustomerId.new(),
            partner_id=partner.id,
            company=details.company,
            address=details.address,
            users=_fields.passed(clean_users),
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

    @property
    def source(self) -> str:
        """``"manual"``, or the external reference (``"connectwise:4711"``)."""
        return "manual" if self.external_ref is None else str(self.external_ref)

    @checked_arguments
    def user(self, ref: UserId | EmailAddress | CustomerUser | str) -> CustomerUser:
        """The user with that id or email, or the user itself (``NotFound``
        otherwise); a malformed ``ref`` is a ``ValidationError`` at ``ref``."""
        return _find_user(self.users, ref, "ref")

    @checked_arguments
    def has_user(
        self,
        user: UserId | EmailAddress | CustomerUser | str | None = None,
        *,
        email: EmailAddress | str | None = None,
        user_id: UserId | str | None = None,
    ) -> bool:
        """Whether this customer has that user: named as for
        :meth:`remove_user`, by one argument (a :class:`CustomerUser`, its id
        or its email, in any case) or by ``email=`` or ``user_id=``.

        An id that is none of its users' (another customer's user, say) is
        ``False``; a malformed argument is a ``ValidationError`` naming it.
        """
        try:
            _find_user(self.users, _one_user(user, email, user_id))
        except NotFound:
            return False
        return True

    @checked_arguments
    def has_access(
        self,
        user: UserId | EmailAddress | CustomerUser | str | None = None,
        *,
        email: EmailAddress | str | None = None,
        user_id: UserId | str | None = None,
    ) -> bool:
        """Whether that user may log in and see this customer's invoices: one
        of its users (named as for :meth:`has_user`), and the customer not
        archived (C8)."""
        known = self.has_user(user, email=email, user_id=user_id)
        return self.is_active and known

    @checked_arguments
    def card_fee_bearer(self, partner: Partner) -> CardFeeBearer:
        """Who bears card fees for this customer: its exception, else the
        partner's policy. ``NotFound`` for a partner that is not this
        customer's, as the other commands given a partner."""
        _partner(partner)
        if partner.id != self.partner_id:
            raise NotFound("customer", self.id)
        if self.card_fee_exception is not None:
            return self.card_fee_exception
        return partner.card_fees.bearer

    # -- commands ----------------------------------------------------------------

    def _changed(self, changes: tuple[str, ...], **fields: Any) -> Customer:
        new = attrs.evolve(self, **fields)
        return _with_event(
            new,
            self,
            CustomerUpdated(
                partner_id=self.partner_id,
                aggregate_id=str(self.id),
                occurred_at=self._event_time(),
                changes=changes,
            ),
        )

    def _event_time(self) -> dt.datetime:
        # Events stay oldest first: the clock's time, when it is before the
        # customer was created (a customer read back from a server whose
        # clock runs ahead) or before its pending events, counts as the
        # latest of those.
        return max(utc_now(), self.created_at, *(event.occurred_at for event in self.events))

    def _authorize(self, partner: Partner | None, by: TeamMemberId | TeamMember | None) -> None:
        """With ``by``, the team member of ``partner`` (this customer's) who
        asks: their role must allow managing customers. Without it the
        command runs as the system, and only a ``partner`` given is checked
        to be this customer's."""
        _authorize_by(
            partner,
            by,
            owner=self.partner_id,
            action=Action.MANAGE_CUSTOMERS,
            missing=NotFound("customer", self.id),
        )

    def _refuse_if_archived(self) -> None:
        if not self.is_active:
            raise InvariantViolation(
                "an archived customer cannot be changed; restore it first", rule="C8"
            )

    def _refuse_new_external_ref(self, external_ref: object) -> FieldErrors:
        """C10: a new reference is refused at once; one of the wrong type is
        a field error, reported with the other fields' (returned)."""
        found = FieldErrors()
        if not (
            external_ref is KEEP or external_ref is None or isinstance(external_ref, ExternalRef)
        ):
            found.add(
                "external_ref",
                "wrong_type",
                "'external_ref' must be an ExternalRef or None "
                f"(got {type(external_ref).__name__})",
            )
        elif external_ref is not KEEP and external_ref != self.external_ref:
            raise InvariantViolation(
                "a customer's external reference never changes", rule="C10", path="external_ref"
            )
        return found

    @checked_arguments
    def update_details(
        self,
        *,
        company: object = KEEP,
        address: object = KEEP,
        legal_name: object = KEEP,
        ein: object = KEEP,
        billing_email: object = KEEP,
        external_ref: object = KEEP,
        partner: Partner | None = None,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Customer:
        """Change the company's details (C7); every invalid field is reported
        at once. Omitted arguments keep their value; ``None`` clears an
        optional one. Refused on an archived customer (C8).

        A synced customer's company and address belong to its integration
        (C6): giving them a new value here is refused (the same value is
        accepted, as a form posts every field); :meth:`apply_sync` changes
        them. ``external_ref`` is accepted only to be refused when it differs:
        an external reference never changes (C10).

        ``by`` (with its ``partner``), as on every command a team member
        gives: only a role that may manage customers (Admin, Sub-Admin)
        changes one.
        """
        self._authorize(partner, by)
        self._refuse_if_archived()
        found = self._refuse_new_external_ref(external_ref)
        return self._apply_details(
            {
                "company": company,
                "address": address,
                "legal_name": legal_name,
                "ein": ein,
                "billing_email": billing_email,
            },
            synced_fields_locked=self.is_synced,
            found=found,
        )

    def _apply_details(
        self, wanted: dict[str, object], *, synced_fields_locked: bool, found: FieldErrors
    ) -> Customer:
        merged = {
            name: getattr(self, name) if value is KEEP else value for name, value in wanted.items()
        }
        details = found.check("", CustomerDetails.parse, **merged)
        found.raise_if_any()
        fields = {name: getattr(details, name) for name in _DETAIL_FIELDS}
        changes = tuple(
            name for name in _DETAIL_FIELDS if not _same(getattr(self, name), fields[name])
        )
        if synced_fields_locked:
            for name in _SYNCED_FIELDS:
                if name in changes:
                    raise InvariantViolation(
                        f"'{name}' of a synced customer comes from its integration "
                        f"({self.source}); change it there",
                        rule="C6",
                        path=name,
                    )
        if not changes:
            return self
        return self._changed(changes, **fields)

    @checked_arguments
    def apply_sync(
        self,
        *,
        company: object = KEEP,
        address: object = KEEP,
        legal_name: object = KEEP,
        ein: object = KEEP,
        billing_email: object = KEEP,
        external_ref: object = KEEP,
    ) -> Customer:
        """What the integration says changed: the one path that may change a
        synced customer's company and address (C6), archived or not.
        Its external reference never changes (C10): ``external_ref``, when
        given, must be the customer's own.
        """
        if not self.is_synced:
            raise InvariantViolation(
                "only a synced customer is changed by a sync", rule="C6", path="external_ref"
            )
        found = self._refuse_new_external_ref(external_ref)
        return self._apply_details(
            {
                "company": company,
                "address": address,
                "legal_name": legal_name,
                "ein": ein,
                "billing_email": billing_email,
            },
            synced_fields_locked=False,
            found=found,
        )

    @checked_form
    def add_user(
        self,
        *,
        first_name: str,
        last_name: str,
        email: str | EmailAddress,
        notifications: bool = True,
        partner: Partner | None = None,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Customer:
        """Give one more person a login to this customer; emails are unique,
        compared case-insensitively (C4)."""
        self._authorize(partner, by)
        self._refuse_if_archived()
        user = CustomerUser.new(
            first_name=first_name, last_name=last_name, email=email, notifications=notifications
        )
        _refuse_taken_email(self.users, user.email)
        return self._changed(("users",), users=(*self.users, user))

    @checked_arguments
    def remove_user(
        self,
        user: UserId | EmailAddress | CustomerUser | str | None = None,
        *,
        email: EmailAddress | str | None = None,
        user_id: UserId | str | None = None,
        partner: Partner | None = None,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Customer:
        """Take a user's login away, by id or email; never the last one (C5).

        The user is given as one argument, a :class:`CustomerUser`, its id or
        its email (in any case), or by keyword: ``remove_user(email=...)``,
        ``remove_user(user_id=...)``.
        """
        self._authorize(partner, by)
        self._refuse_if_archived()
        found = _find_user(self.users, _one_user(user, email, user_id))
        if len(self.users) == 1:
            raise InvariantViolation(
                f"a customer needs at least one user; add another before removing {found.email}",
                rule="C5",
                path="users",
            )
        return self._changed(("users",), users=tuple(u for u in self.users if u is not found))

    @checked_form
    def update_user(
        self,
        user: UserId | EmailAddress | CustomerUser | str,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        email: str | EmailAddress | None = None,
        partner: Partner | None = None,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Customer:
        """Change a user's name or email (C7), given by id or email; a field
        left ``None`` stays as it is.

        The user keeps their id and notification setting. Every invalid
        field is reported at once, a malformed ``user`` among them; only
        then is the user looked up (``NotFound``). The new email is
        normalised and must not be another user's (C4: correcting the case
        of one's own is fine). Changing nothing returns the customer as it
        is, with no event.
        """
        self._authorize(partner, by)
        self._refuse_if_archived()
        errors = FieldErrors()
        errors.check("", _user_ref, user, "user")
        wanted: dict[str, Any] = {}
        for field, given in (("first_name", first_name), ("last_name", last_name)):
            if given is not None:
                wanted[field] = errors.check(
                    "", _fields.required_text, field, given, max_length=_NAME_MAX
                )
        if email is not None:
            wanted["email"] = errors.check("", _email, "email", email)
        errors.raise_if_any()
        found = _find_user(self.users, user)  # well formed: checked above
        new_email = wanted.get("email")
        if new_email is not None and new_email.key != found.email.key:
            _refuse_taken_email(self.users, new_email)
        # As text: an email differing only in case is a change.
        if all(str(value) == str(getattr(found, name)) for name, value in wanted.items()):
            return self
        updated = attrs.evolve(found, **wanted)
        return self._changed(
            ("users",), users=tuple(updated if u is found else u for u in self.users)
        )

    @checked_form
    def set_notifications(
        self,
        user: UserId | EmailAddress | CustomerUser | str,
        enabled: bool,
        *,
        partner: Partner | None = None,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Customer:
        """Switch a user's email notifications on or off.

        A malformed ``user`` and an ``enabled`` that is no boolean are
        reported at once; only then is the user looked up (``NotFound``).
        """
        self._authorize(partner, by)
        errors = FieldErrors()
        errors.check("", _user_ref, user, "user")
        errors.check("", _fields.boolean, "enabled", enabled)
        errors.raise_if_any()
        self._refuse_if_archived()
        found = _find_user(self.users, user)  # well formed: checked above
        if found.notifications is enabled:
            return self
        users = tuple(
            attrs.evolve(u, notifications=enabled) if u is found else u for u in self.users
        )
        return self._changed(("users",), users=users)

    @checked_arguments
    def set_tags(
        self,
        partner: Partner,
        tags: Iterable[TagId | Tag | str],
        *,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Customer:
        """Carry exactly these tags, each from the partner's catalog (by id,
        name or the tag itself); ``NotFound`` names the first tag not in it,
        ``ValidationError`` every item that is none of these (``tags[1]``).
        The items of a set are taken in an order that is the same in every
        process, so that these errors are too.
        With ``by``, the team member must be allowed to manage customers."""
        self._authorize(_partner(partner), by)
        if isinstance(tags, str | Tag) or not isinstance(tags, Iterable):
            raise ValidationError.single(
                "tags",
                "wrong_type",
                f"'tags' must be a list of tags, tag ids or names (got {type(tags).__name__})",
            )
        # A set's items in an order that is the same in every process: the
        # errors and the first tag not found do not depend on hash order.
        given = _fields.in_stable_order(tags) if isinstance(tags, Set) else list(tags)
        found = FieldErrors()
        for index, item in enumerate(given):
            if not isinstance(item, TagId | Tag | str):
                found.add(
                    f"tags[{index}]",
                    "wrong_type",
                    f"'tags[{index}]' must be a Tag, a TagId or a tag's name "
                    f"(got {type(item).__name__})",
                )
        found.raise_if_any()
        self._refuse_if_archived()
        wanted = frozenset(partner.tag(t).id for t in given)
        if wanted == self.tags:
            return self
        return self._changed(("tags",), tags=wanted)

    @checked_arguments
    def remove_tag(self, tag: TagId | Tag) -> Customer:
        """Drop a tag, as when the partner deletes it from its catalog
        (:meth:`Partner.delete_tag <altpay_core.partner.Partner.delete_tag>`).

        Allowed on archived customers too: a deleted tag leaves every customer.
        """
        tag_id = tag.id if isinstance(tag, Tag) else tag
        if not isinstance(tag_id, TagId):
            raise ValidationError.single(
                "tag", "wrong_type", f"'tag' must be a TagId or a Tag (got {type(tag).__name__})"
            )
        if tag_id not in self.tags:
            return self
        return self._changed(("tags",), tags=self.tags - {tag_id})

    @checked_arguments
    def set_card_fee_exception(
        self,
        bearer: CardFeeBearer | str | None,
        *,
        partner: Partner | None = None,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Customer:
        """Override the partner's card-fee policy for this customer (who bears
        card fees); ``None`` follows the policy again."""
        self._authorize(partner, by)
        value = None if bearer is None else _fields.choice("bearer", bearer, CardFeeBearer)
        self._refuse_if_archived()
        if value == self.card_fee_exception:
            return self
        return self._changed(("card_fee_exception",), card_fee_exception=value)

    @checked_arguments
    def archive(
        self,
        *,
        partner: Partner | None = None,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Customer:
        """Archive (soft delete), carrying ``customer_archived``: no new
        invoices, its users see nothing, the history stays (C8). Archiving an
        archived customer changes nothing."""
        self._authorize(partner, by)
        if not self.is_active:
            return self
        new = attrs.evolve(self, status=CustomerStatus.ARCHIVED)
        return _with_event(
            new,
            self,
            CustomerArchived(
                partner_id=self.partner_id,
                aggregate_id=str(self.id),
                occurred_at=self._event_time(),
                changes=("status",),
            ),
        )

    @checked_arguments
    def restore(
        self,
        *,
        partner: Partner | None = None,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Customer:
        """Bring an archived customer back (``customer_updated``)."""
        self._authorize(partner, by)
        if self.is_active:
            return self
        return self._changed(("status",), status=CustomerStatus.ACTIVE)

    # -- notebooks ----------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"Customer(id={str(self.id)!r}, company={self.company!r}, "
            f"status={self.status.value!r}, source={self.source!r}, "
            f"users={_emails(self.users)!r})"
        )

    def _repr_html_(self) -> str:
        rows = [
            ("id", str(self.id)),
            ("company", self.company),
            ("legal name", self.legal_name or "-"),
            ("EIN", str(self.ein) if self.ein else "-"),
            ("address", ", ".join(self.address.lines())),
            ("billing email", str(self.billing_email) if self.billing_email else "-"),
            ("status", self.status.value),
            ("source", self.source),
            ("users", ", ".join(f"{u.name} <{u.email}>" for u in self.users)),
            ("tags", str(len(self.tags))),
            (
                "card fees",
                "partner's policy"
                if self.card_fee_exception is None
                else f"borne by the {self.card_fee_exception.value} (exception)",
            ),
            ("version", str(self.version)),
        ]
        return html_table(f"Customer {self.company}", rows)


# -- access requests ------------------------------------------------------------


_RESOLUTION_FIELDS: Final = frozenset({"status", "customer_id", "resolved_by", "resolved_at"})
"""The fields of an access request that its resolution rule reads (it also
compares ``resolved_at`` with ``requested_at``, when that one is valid)."""


class AccessRequestStatus(_fields.Choices, enum.Enum):
    """Where an access request stands."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


@checked_constructor
@attrs.frozen(kw_only=True, repr=False)
class AccessRequest:
    """Someone used a partner's billing link but is no user of its customers.

    An Admin or Sub-Admin resolves it, once (C9): :meth:`add_to_customer`,
    :meth:`approve_new_customer` (a new customer made from the draft that
    :meth:`start_customer` opens, with the person already added as a user)
    or :meth:`reject`. Whether the email is already a user of one of the
    partner's customers is a question for the repository
    (``customers.with_user(email)``), asked before opening one:
    ``services.open_access_request`` asks it, and stores the request.
    Resolved, it records ``resolved_at``: now, or ``requested_at`` when that
    is later, so that it is never resolved before it was made (a
    ``resolved_at`` earlier than ``requested_at``, given directly or read
    from data, is refused: rule ``access-request-resolution``, path
    ``resolved_at``).
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
        check = _FieldCheck(self)
        check.instance("id", AccessRequestId, "an AccessRequestId")
        check.instance("partner_id", PartnerId, "a PartnerId")
        check.instance("email", EmailAddress, "an EmailAddress")
        check.text("first_name", optional=True, max_length=_NAME_MAX)
        check.text("last_name", optional=True, max_length=_NAME_MAX)
        check.choice("status", AccessRequestStatus)
        check.instance("customer_id", CustomerId, "a CustomerId", optional=True)
        check.instance("resolved_by", TeamMemberId, "a TeamMemberId", optional=True)
        check.datetime("requested_at")
        check.datetime("resolved_at", optional=True)
        check.version()
        # Among the field errors when fields are also at fault; checked once
        # the fields it reads have passed.
        at_fault = {error.path for error in check.found.errors}
        broken = (
            self._resolution_rule(dated="requested_at" not in at_fault)
            if at_fault.isdisjoint(_RESOLUTION_FIELDS)
            else None
        )
        _fields.note_rule(check.found, broken)
        _fields.raise_rule_alone(check.found, broken)

    def _resolution_rule(self, *, dated: bool) -> InvariantViolation | None:
        """What the resolution rule says of this request, or None when it
        keeps it: resolved, it records who resolved it and when, no earlier
        than it was made (and, once approved, the customer); pending, none
        of them. ``dated``: ``requested_at`` is valid, to compare with."""
        pending = self.status is AccessRequestStatus.PENDING
        if pending != (self.resolved_at is None) or pending != (self.resolved_by is None):
            return InvariantViolation(
                "a resolved access request records who resolved it and when; "
                "a pending one has neither",
                rule="access-request-resolution",
                path="resolved_by",
            )
        if (self.status is AccessRequestStatus.APPROVED) != (self.customer_id is not None):
            return InvariantViolation(
                "an approved access request names the customer it was added to, and only then",
                rule="access-request-resolution",
                path="customer_id",
            )
        if dated and self.resolved_at is not None and self.resolved_at < self.requested_at:
            return InvariantViolation(
                "an access request is never resolved before it was made: "
                "'resolved_at' must be no earlier than 'requested_at' "
                f"({self.requested_at.isoformat()}) (got {self.resolved_at.isoformat()})",
                rule="access-request-resolution",
                path="resolved_at",
            )
        return None

    @classmethod
    @checked_form
    def open(
        cls,
        partner: Partner,
        *,
        email: str | EmailAddress,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> AccessRequest:
        """Record that ``email`` asked for access through the billing link.
        Every invalid field is reported at once."""
        found = FieldErrors()
        found.check("", _partner, partner)
        clean_email = found.check("", _email, "email", email)
        first = found.check(
            "", _fields.optional_text, "first_name", first_name, max_length=_NAME_MAX
        )
        last = found.check("", _fields.optional_text, "last_name", last_name, max_length=_NAME_MAX)
        found.raise_if_any()
        return cls(
            id=AccessRequestId.new(),
            partner_id=partner.id,
            email=_fields.passed(clean_email),
            first_name=first,
            last_name=last,
        )

    @property
    def is_pending(self) -> bool:
        """Not resolved yet."""
        return self.status is AccessRequestStatus.PENDING

    def _resolver(self, partner: Partner, by: TeamMemberId | TeamMember) -> TeamMember:
        # ``by`` is required here (None is no actor): authorize refuses it.
        _partner(partner)
        if partner.id != self.partner_id:
            raise NotFound("access request", self.id)
        # C9: only the roles allowed to approve access requests (Admin and
        # Sub-Admin) resolve one, either way.
        member = partner.authorize(by, Action.APPROVE_ACCESS_REQUESTS)
        if not self.is_pending:
            raise InvariantViolation(
                f"this access request is already {self.status.value}",
                rule="access-request-resolved-once",
                path="status",
            )
        return member

    def _names(self, first_name: str | None, last_name: str | None) -> tuple[str, str]:
        found = FieldErrors()
        names: list[str | None] = []
        for field, given, kept in (
            ("first_name", first_name, self.first_name),
            ("last_name", last_name, self.last_name),
        ):
            value = kept if given is None else given
            if value is None:
                found.add(
                    field,
                    "missing",
                    f"'{field}' is required to add {self.email} as a user "
                    "(the request came without it)",
                )
            else:
                names.append(
                    found.check("", _fields.required_text, field, value, max_length=_NAME_MAX)
                )
        found.raise_if_any()
        return _fields.passed(names[0]), _fields.passed(names[1])

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
            # Never before the request was made (its time may come from a
            # server whose clock runs ahead of this one).
            resolved_at=max(utc_now(), self.requested_at),
        )

    @checked_arguments
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

        Returns the resolved request and the customer with its new user (and
        a ``customer_updated`` event); store both in one unit of work. Names
        default to the ones given with the request. Refused unless ``by`` is
        an Admin or Sub-Admin of ``partner`` (C9), for a request already
        resolved, and as :meth:`Customer.add_user` refuses (an archived
        customer, an email already a user).
        """
        _fields.argument("customer", customer, Customer, "a Customer")
        member = self._resolver(partner, by)
        if customer.partner_id != self.partner_id:
            raise NotFound("customer", customer.id)
        # Already a user (C4), or the customer archived: refused whatever the
        # names, which would otherwise be asked for first.
        customer._refuse_if_archived()
        _refuse_taken_email(customer.users, self.email)
        first, last = self._names(first_name, last_name)
        updated = customer.add_user(first_name=first, last_name=last, email=self.email)
        return self._resolved(member, AccessRequestStatus.APPROVED, customer.id), updated

    @checked_arguments
    def start_customer(
        self,
        *,
        partner: Partner,
        by: TeamMemberId | TeamMember,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> CustomerDraft:
        """Begin approving by creating a new customer: a draft at step 1 with
        the person already added as its user. Names default to the ones
        given with the request.

        The request stays pending until the customer is created: then
        :meth:`approve_new_customer` approves it, naming the customer, and
        the two are stored together
        (:func:`altpay_core.services.create_customer_from_access_request`
        does all of it). An abandoned draft leaves the request to be
        resolved another way.

        Refused as :meth:`add_to_customer` is, and (C6) for a partner whose
        customers are synced."""
        self._resolver(partner, by)
        first, last = self._names(first_name, last_name)
        draft = CustomerDraft.start(partner)
        user = CustomerUser.new(first_name=first, last_name=last, email=self.email)
        return attrs.evolve(draft, users=(user,))

    @checked_arguments
    def approve_new_customer(
        self, customer: Customer, *, partner: Partner, by: TeamMemberId | TeamMember
    ) -> AccessRequest:
        """Approve: ``customer``, created for the person (from the draft of
        :meth:`start_customer`, say), has them as a user. Returns the
        approved request, which names the customer; store both together.

        Refused as :meth:`add_to_customer` is (an archived customer too,
        C8), and (rule ``access-request-user``) unless the person's email is
        a user of the customer: a draft that dropped them made a customer
        they cannot reach.
        """
        _fields.argument("customer", customer, Customer, "a Customer")
        member = self._resolver(partner, by)
        if customer.partner_id != self.partner_id:
            raise NotFound("customer", customer.id)
        customer._refuse_if_archived()
        if not customer.has_user(self.email):
            raise InvariantViolation(
                f"{self.email} asked for access, but is not a user of customer "
                f"{customer.id}: add them as a user, then approve",
                rule="access-request-user",
                path="users",
            )
        return self._resolved(member, AccessRequestStatus.APPROVED, customer.id)

    @checked_arguments
    def reject(self, *, partner: Partner, by: TeamMemberId | TeamMember) -> AccessRequest:
        """Refuse access (an Admin or Sub-Admin only, C9)."""
        member = self._resolver(partner, by)
        return self._resolved(member, AccessRequestStatus.REJECTED, None)

    # -- notebooks ----------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"AccessRequest(id={str(self.id)!r}, email={str(self.email)!r}, "
            f"status={self.status.value!r})"
        )

    def _repr_html_(self) -> str:
        name = " ".join(n for n in (self.first_name, self.last_name) if n) or "-"
        rows = [
            ("id", str(self.id)),
            ("email", str(self.email)),
            ("name", name),
            ("status", self.status.value),
            ("customer", str(self.customer_id) if self.customer_id else "-"),
            ("requested at", self.requested_at.isoformat()),
        ]
        return html_table("Access request", rows)
