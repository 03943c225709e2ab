"""Partners: the firms that use the platform to get paid.

A :class:`Partner` holds its team (each :class:`TeamMember` with a
:class:`Role`), its tag catalog, its card-fee policy and the integrations it
has connected. It is immutable: every command returns a new partner.

>>> p = Partner.create(name="Northwind IT", country="US")
>>> p.currency.code
'USD'
>>> p = p.add_team_member(name="Ada Admin", email="ada@northwind.example", role=Role.ADMIN)
>>> p.team[0].role
<Role.ADMIN: 'admin'>
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Final

import attrs

from . import _fields
from ._html import html_table
from .errors import FieldErrors, InvariantViolation, NotFound, PermissionDenied, ValidationError
from .events import Event, utc_now
from .money import Currency, Money, Rounding
from .values import EmailAddress, PartnerId, TagId, TeamMemberId

__all__ = [
    "Action",
    "CardFeeBearer",
    "CardFeePolicy",
    "Integration",
    "Partner",
    "Role",
    "Tag",
    "TeamMember",
]

COUNTRY_CURRENCIES: Final = {"US": "USD", "CA": "CAD"}


class Role(enum.Enum):
    """What a partner's team member may do."""

    ADMIN = "admin"
    SUB_ADMIN = "sub_admin"
    MEMBER = "member"
    READ_ONLY = "read_only"


class Action(enum.StrEnum):
    """Actions in the partner's dashboard that need a permission."""

    VIEW_INVOICES = "view invoices"
    EDIT_INVOICES = "edit invoices"
    MANAGE_CUSTOMERS = "manage customers"
    APPROVE_ACCESS_REQUESTS = "approve access requests"
    MANAGE_TAGS = "manage tags"
    MANAGE_CARD_FEES = "manage card fees"
    MANAGE_INTEGRATIONS = "manage integrations"
    MANAGE_TEAM = "manage the team"
    MANAGE_BANKING = "manage banking details"


_ALL_ACTIONS: Final = frozenset(Action)
ROLE_ACTIONS: Final[Mapping[Role, frozenset[Action]]] = {
    Role.ADMIN: _ALL_ACTIONS,
    Role.SUB_ADMIN: _ALL_ACTIONS - {Action.MANAGE_BANKING},
    Role.MEMBER: frozenset({Action.VIEW_INVOICES, Action.EDIT_INVOICES}),
    Role.READ_ONLY: frozenset({Action.VIEW_INVOICES}),
}


def _email(path: str, value: object) -> EmailAddress:
    if isinstance(value, EmailAddress):
        return value
    try:
        return EmailAddress(value)  # type: ignore[arg-type]
    except ValidationError as error:
        raise error.under(path) from None


@attrs.frozen
class TeamMember:
    """A partner's staff login."""

    id: TeamMemberId
    name: str
    email: EmailAddress
    role: Role

    @classmethod
    def new(cls, *, name: str, email: str | EmailAddress, role: Role | str) -> TeamMember:
        """A new team member; every invalid field is reported at once."""
        found = FieldErrors()
        clean_name = found.check("", _fields.required_text, "name", name)
        clean_email = found.check("", _email, "email", email)
        clean_role = found.check("", _fields.choice, "role", role, Role)
        found.raise_if_any()
        return cls(TeamMemberId.new(), clean_name, clean_email, clean_role)

    def may(self, action: Action) -> bool:
        """Whether this member's role allows ``action``."""
        return action in ROLE_ACTIONS[self.role]


_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")


def _colour(path: str, value: object) -> str:
    if not isinstance(value, str) or not _COLOUR.fullmatch(value.strip()):
        raise ValidationError.single(
            path,
            "invalid_colour",
            f"'{path}' must be a colour written #RRGGBB, like #1A2B3C (got {value!r})",
        )
    return value.strip().upper()


@attrs.frozen
class Tag:
    """A partner-defined label for customers: unique name, colour, description."""

    id: TagId
    name: str
    colour: str
    description: str | None = None

    def __attrs_post_init__(self) -> None:
        found = FieldErrors()
        found.check("", _fields.required_text, "name", self.name, max_length=50)
        found.check("", _colour, "colour", self.colour)
        found.check("", _fields.optional_text, "description", self.description, max_length=500)
        found.raise_if_any()

    @classmethod
    def new(cls, *, name: str, colour: str, description: str | None = None) -> Tag:
        """A new tag; every invalid field is reported at once."""
        found = FieldErrors()
        clean_name = found.check("", _fields.required_text, "name", name, max_length=50)
        clean_colour = found.check("", _colour, "colour", colour)
        clean_description = found.check(
            "", _fields.optional_text, "description", description, max_length=500
        )
        found.raise_if_any()
        return cls(TagId.new(), clean_name, clean_colour, clean_description)

    @property
    def key(self) -> str:
        """The name as compared for uniqueness: case-insensitively."""
        return self.name.casefold()


class CardFeeBearer(enum.Enum):
    """Who pays the card fee of a card payment."""

    CUSTOMER = "customer"
    """Passed to the customer as a separate fee line (the default)."""
    PARTNER = "partner"
    """Absorbed by the partner."""


DEFAULT_CARD_FEE_PERCENT: Final = Decimal("2.9")
DEFAULT_CARD_FEE_FIXED: Final = Decimal("0.30")


@attrs.frozen
class CardFeePolicy:
    """How a partner's card fees are charged: who bears them, and the rate.

    The fee of a card payment is ``rate_percent`` of the amount, rounded
    half-even to the minor unit, plus ``fixed``. Bank debits carry none.

    >>> CardFeePolicy.default("USD").fee_for(Money("100.00", "USD"))
    Money('3.20', 'USD')
    """

    bearer: CardFeeBearer
    rate_percent: Decimal
    fixed: Money

    def __attrs_post_init__(self) -> None:
        found = FieldErrors()
        found.check("", _fields.choice, "bearer", self.bearer, CardFeeBearer)
        if not isinstance(self.rate_percent, Decimal) or not (
            Decimal(0) <= self.rate_percent <= Decimal(20)
        ):
            found.add(
                "rate_percent",
                "invalid_rate",
                f"'rate_percent' must be a Decimal from 0 to 20 (got {self.rate_percent!r})",
            )
        if not isinstance(self.fixed, Money) or self.fixed.is_negative:
            found.add(
                "fixed",
                "invalid_fixed_fee",
                f"'fixed' must be an amount of money of at least zero (got {self.fixed!r})",
            )
        found.raise_if_any()

    @classmethod
    def default(cls, currency: str | Currency) -> CardFeePolicy:
        """2.9% + 0.30, passed to the customer."""
        return cls(
            CardFeeBearer.CUSTOMER,
            DEFAULT_CARD_FEE_PERCENT,
            Money(DEFAULT_CARD_FEE_FIXED, currency),
        )

    def fee_for(self, amount: Money) -> Money:
        """The card fee on ``amount`` (in the same currency), whoever bears it."""
        if amount.is_zero:
            return Money.zero(amount.currency)
        return amount.percent(self.rate_percent, rounding=Rounding.HALF_EVEN) + self.fixed


@attrs.frozen
class Integration:
    """A PSA or accounting system the partner has connected.

    ``system`` is the lower-case name used in external references
    (``connectwise``, ``quickbooks_online``, ...).
    """

    system: str
    syncs_customers: bool = False
    syncs_invoices: bool = False

    def __attrs_post_init__(self) -> None:
        system = _fields.required_text("system", self.system, max_length=50)
        if system != self.system or system != system.lower():
            raise ValidationError.single(
                "system",
                "invalid_system",
                f"'system' must be a lower-case name like 'connectwise' (got {self.system!r})",
            )


def _country(path: str, value: object) -> str:
    if isinstance(value, str) and value.strip().upper() in COUNTRY_CURRENCIES:
        return value.strip().upper()
    raise ValidationError.single(
        path, "unknown_country", f"'{path}' must be 'US' or 'CA' (got {value!r})"
    )


def _partner_currency(path: str, value: object) -> Currency:
    currency = value if isinstance(value, Currency) else None
    if currency is None:
        try:
            currency = Currency(value)  # type: ignore[arg-type]
        except ValidationError as error:
            raise error.under(path) from None
    if currency.code not in ("USD", "CAD"):
        raise ValidationError.single(
            path, "unsupported_currency", f"'{path}' must be USD or CAD (got {currency.code!r})"
        )
    return currency


def _events() -> Any:
    return attrs.field(factory=tuple, init=False, eq=False, repr=False)


@attrs.frozen
class Partner:
    """A firm that bills its customers on the platform.

    Build one with :meth:`create`; change it only through its commands. A
    command that a team member performs accepts ``by=``: when given, the
    member's role is checked with :meth:`authorize` (the one permission check
    of the library) and :class:`~altpay_core.errors.PermissionDenied` names
    the role and the action.
    """

    id: PartnerId
    name: str
    country: str
    currency: Currency
    team: tuple[TeamMember, ...] = ()
    tags: tuple[Tag, ...] = ()
    card_fees: CardFeePolicy = attrs.field()
    integrations: tuple[Integration, ...] = ()
    created_at: dt.datetime = attrs.field(factory=utc_now)
    version: int = 0
    events: tuple[Event, ...] = _events()

    @card_fees.default
    def _default_card_fees(self) -> CardFeePolicy:
        return CardFeePolicy.default(self.currency)

    def __attrs_post_init__(self) -> None:
        found = FieldErrors()
        found.check("", _fields.required_text, "name", self.name)
        country = found.check("", _country, "country", self.country)
        if country is not None and country != self.country:
            found.add("country", "unknown_country", "'country' must be 'US' or 'CA'")
        found.check("", _partner_currency, "currency", self.currency)
        if self.card_fees.fixed.currency is not self.currency:
            found.add(
                "card_fees.fixed",
                "currency_mismatch",
                f"'card_fees.fixed' must be in {self.currency.code}",
            )
        found.raise_if_any()
        _unique((m.email.key for m in self.team), "team", "email", "team members' emails")
        _unique((m.id for m in self.team), "team", "id", "team members' ids")
        _unique((t.key for t in self.tags), "tags", "name", "tag names")
        _unique((t.id for t in self.tags), "tags", "id", "tag ids")
        _unique((i.system for i in self.integrations), "integrations", "system", "systems")
        _fields.version_number("version", self.version)

    # -- building ---------------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        name: str,
        country: str,
        currency: str | Currency | None = None,
    ) -> Partner:
        """A new partner in the US or Canada; its currency follows the country
        (USD, CAD) unless given.

        Every invalid field is reported at once.
        """
        found = FieldErrors()
        clean_name = found.check("", _fields.required_text, "name", name)
        clean_country = found.check("", _country, "country", country)
        if currency is None:
            # With an unknown country, that error is reported; USD stands in.
            currency = COUNTRY_CURRENCIES.get(clean_country, "USD")
        clean_currency = found.check("", _partner_currency, "currency", currency)
        found.raise_if_any()
        return cls(PartnerId.new(), clean_name, clean_country, clean_currency)

    # -- permissions ------------------------------------------------------

    def member(self, member: TeamMemberId | TeamMember) -> TeamMember:
        """The team member with that id (``NotFound`` if not on this team)."""
        wanted = member.id if isinstance(member, TeamMember) else member
        for candidate in self.team:
            if candidate.id == wanted:
                return candidate
        raise NotFound("team member", wanted)

    def authorize(self, by: TeamMemberId | TeamMember, action: Action) -> TeamMember:
        """The one permission check: the member, if their role allows ``action``.

        Raises :class:`~altpay_core.errors.PermissionDenied` (naming the role
        and the action) or :class:`~altpay_core.errors.NotFound` (not on this
        partner's team).
        """
        found = self.member(by)
        if not found.may(action):
            raise PermissionDenied(role=found.role.value, action=action.value)
        return found

    def _check(self, by: TeamMemberId | TeamMember | None, action: Action) -> None:
        if by is not None:
            self.authorize(by, action)

    # -- team -------------------------------------------------------------

    def add_team_member(
        self,
        *,
        name: str,
        email: str | EmailAddress,
        role: Role | str,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Partner:
        """Give a person a login to the partner's dashboard."""
        self._check(by, Action.MANAGE_TEAM)
        member = TeamMember.new(name=name, email=email, role=role)
        if any(m.email.key == member.email.key for m in self.team):
            raise InvariantViolation(
                f"{member.email} is already on the team", rule="team-unique-email", path="email"
            )
        return attrs.evolve(self, team=(*self.team, member))

    def change_role(
        self,
        member: TeamMemberId | TeamMember,
        role: Role | str,
        *,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Partner:
        """Give a team member another role; the last Admin keeps theirs."""
        self._check(by, Action.MANAGE_TEAM)
        target = self.member(member)
        new_role = _fields.choice("role", role, Role)
        team = tuple(attrs.evolve(m, role=new_role) if m is target else m for m in self.team)
        self._keep_an_admin(team)
        return attrs.evolve(self, team=team)

    def remove_team_member(
        self,
        member: TeamMemberId | TeamMember,
        *,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Partner:
        """Take a person's dashboard login away; the last Admin stays."""
        self._check(by, Action.MANAGE_TEAM)
        target = self.member(member)
        team = tuple(m for m in self.team if m is not target)
        self._keep_an_admin(team)
        return attrs.evolve(self, team=team)

    def _keep_an_admin(self, team: tuple[TeamMember, ...]) -> None:
        had = any(m.role is Role.ADMIN for m in self.team)
        if had and not any(m.role is Role.ADMIN for m in team):
            raise InvariantViolation(
                "a partner's team keeps at least one Admin", rule="team-admin", path="team"
            )

    # -- tags ---------------------------------------------------------------

    def tag(self, tag: TagId | str) -> Tag:
        """The tag with that id, or that name (compared case-insensitively)."""
        for candidate in self.tags:
            if candidate.id == tag or (
                isinstance(tag, str) and candidate.key == tag.strip().casefold()
            ):
                return candidate
        raise NotFound("tag", tag)

    def add_tag(
        self,
        *,
        name: str,
        colour: str,
        description: str | None = None,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Partner:
        """Add a tag to the catalog; names are unique, case-insensitively."""
        self._check(by, Action.MANAGE_TAGS)
        tag = Tag.new(name=name, colour=colour, description=description)
        self._refuse_duplicate_tag(tag, self.tags)
        return attrs.evolve(self, tags=(*self.tags, tag))

    def update_tag(
        self,
        tag: TagId | str,
        *,
        name: str | None = None,
        colour: str | None = None,
        description: str | None = None,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Partner:
        """Rename, recolour or describe a tag (``None`` keeps a field as it is)."""
        self._check(by, Action.MANAGE_TAGS)
        old = self.tag(tag)
        new = Tag(
            old.id,
            old.name if name is None else name.strip() if isinstance(name, str) else name,
            old.colour if colour is None else _colour("colour", colour),
            old.description
            if description is None
            else _fields.optional_text("description", description, max_length=500),
        )
        others = tuple(t for t in self.tags if t is not old)
        self._refuse_duplicate_tag(new, others)
        return attrs.evolve(self, tags=tuple(new if t is old else t for t in self.tags))

    def delete_tag(
        self, tag: TagId | str, *, by: TeamMemberId | TeamMember | None = None
    ) -> Partner:
        """Take a tag out of the catalog.

        The customers that carry it lose it too: :meth:`Customer.remove_tag
        <altpay_core.customer.Customer.remove_tag>` for each, which
        :func:`altpay_core.services.delete_tag` does in one unit of work.
        """
        self._check(by, Action.MANAGE_TAGS)
        old = self.tag(tag)
        return attrs.evolve(self, tags=tuple(t for t in self.tags if t is not old))

    @staticmethod
    def _refuse_duplicate_tag(tag: Tag, others: Iterable[Tag]) -> None:
        if any(t.key == tag.key for t in others):
            raise InvariantViolation(
                f"there is already a tag named {tag.name!r}", rule="tag-unique-name", path="name"
            )

    # -- card fees and integrations ------------------------------------------

    def set_card_fees(
        self,
        *,
        bearer: CardFeeBearer | str | None = None,
        rate_percent: Decimal | str | None = None,
        fixed: Money | str | None = None,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Partner:
        """Change who bears card fees, or the rate (``None`` keeps a field)."""
        self._check(by, Action.MANAGE_CARD_FEES)
        found = FieldErrors()
        old = self.card_fees
        new_bearer = (
            old.bearer
            if bearer is None
            else found.check("", _fields.choice, "bearer", bearer, CardFeeBearer)
        )
        new_rate = (
            old.rate_percent
            if rate_percent is None
            else found.check("", _rate, "rate_percent", rate_percent)
        )
        new_fixed = (
            old.fixed if fixed is None else found.check("fixed", _fixed_fee, fixed, self.currency)
        )
        found.raise_if_any()
        policy = found.check("card_fees", CardFeePolicy, new_bearer, new_rate, new_fixed)
        found.raise_if_any()
        return attrs.evolve(self, card_fees=policy)

    def connect_integration(
        self,
        system: str,
        *,
        syncs_customers: bool = False,
        syncs_invoices: bool = False,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Partner:
        """Connect a PSA or accounting system (once per system)."""
        self._check(by, Action.MANAGE_INTEGRATIONS)
        clean = _fields.required_text("system", system, max_length=50).lower()
        integration = Integration(clean, bool(syncs_customers), bool(syncs_invoices))
        if any(i.system == clean for i in self.integrations):
            raise InvariantViolation(
                f"{clean} is already connected", rule="integration-unique", path="system"
            )
        return attrs.evolve(self, integrations=(*self.integrations, integration))

    def disconnect_integration(
        self, system: str, *, by: TeamMemberId | TeamMember | None = None
    ) -> Partner:
        """Disconnect a system; the records it synced keep their references."""
        self._check(by, Action.MANAGE_INTEGRATIONS)
        clean = system.strip().lower() if isinstance(system, str) else system
        if not any(i.system == clean for i in self.integrations):
            raise NotFound("integration", system)
        return attrs.evolve(
            self, integrations=tuple(i for i in self.integrations if i.system != clean)
        )

    @property
    def syncs_customers(self) -> bool:
        """Whether a connected integration syncs customers (rule C6)."""
        return any(i.syncs_customers for i in self.integrations)

    @property
    def syncs_invoices(self) -> bool:
        """Whether a connected integration syncs invoices."""
        return any(i.syncs_invoices for i in self.integrations)

    def integration(self, system: str) -> Integration:
        """The connected integration named ``system``."""
        for candidate in self.integrations:
            if candidate.system == system:
                return candidate
        raise NotFound("integration", system)

    # -- notebooks ----------------------------------------------------------

    def _repr_html_(self) -> str:
        rows = [
            ("id", str(self.id)),
            ("name", self.name),
            ("country", self.country),
            ("currency", self.currency.code),
            ("team", ", ".join(f"{m.name} ({m.role.value})" for m in self.team) or "-"),
            ("tags", ", ".join(t.name for t in self.tags) or "-"),
            (
                "card fees",
                f"{self.card_fees.rate_percent}% + {self.card_fees.fixed}, "
                f"borne by the {self.card_fees.bearer.value}",
            ),
            ("integrations", ", ".join(i.system for i in self.integrations) or "-"),
        ]
        return html_table("Partner", rows)


def _rate(path: str, value: object) -> Decimal:
    if isinstance(value, Decimal | str) and not isinstance(value, bool):
        try:
            rate = Decimal(value)
        except ArithmeticError:
            rate = None
        if rate is not None and rate.is_finite() and Decimal(0) <= rate <= Decimal(20):
            return rate
    raise ValidationError.single(
        path, "invalid_rate", f"'{path}' must be a percentage from 0 to 20 (got {value!r})"
    )


def _fixed_fee(value: object, currency: Currency) -> Money:
    if isinstance(value, Money):
        if value.currency is not currency:
            raise ValidationError.single(
                "", "currency_mismatch", f"'fixed' must be in {currency.code}"
            )
        return value
    return Money(value, currency)  # type: ignore[arg-type]


def _unique(keys: Iterable[object], path: str, field: str, what: str) -> None:
    seen: set[object] = set()
    for index, key in enumerate(keys):
        if key in seen:
            raise InvariantViolation(
                f"{what} must be unique",
                rule=f"{path}-unique-{field}",
                path=f"{path}[{index}].{field}",
            )
        seen.add(key)
