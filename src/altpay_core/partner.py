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
>>> p.authorize(p.team[0], Action.MANAGE_BANKING).name
'Ada Admin'
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

import attrs

from . import _fields
from ._arguments import checked_arguments, checked_constructor, checked_form
from ._html import html_table
from .errors import (
    FieldError,
    FieldErrors,
    InvariantViolation,
    NotFound,
    PermissionDenied,
    ValidationError,
    join_path,
    shown,
)
from .events import Event, utc_now
from .money import Currency, Money, Rounding, decimal_from_text, money_at, plain_decimal
from .values import EmailAddress, PartnerId, TagId, TeamMemberId

__all__ = [
    "ROLE_ACTIONS",
    "Action",
    "CardFeeBearer",
    "CardFeePolicy",
    "Integration",
    "Partner",
    "Role",
    "Tag",
    "TeamMember",
]

COUNTRY_CURRENCIES: Final[Mapping[str, str]] = MappingProxyType({"US": "USD", "CA": "CAD"})
_PARTNER_CURRENCIES: Final = tuple(sorted(set(COUNTRY_CURRENCIES.values()), reverse=True))
"""The currencies partners bill in (``("USD", "CAD")``): every invoice's and
payment's (I2)."""


def _refuse_unbilled(found: FieldErrors, path: str, currency: Currency, *, of: str = "") -> None:
    """Note in ``found`` a ``currency`` no partner bills in (I2): that of a
    currency field, or of an amount (``of="in "``)."""
    if currency.code not in _PARTNER_CURRENCIES:
        found.add(path, "unsupported_currency", _unbilled(path, currency, of=of))


def _unbilled(path: str, currency: Currency, *, of: str = "") -> str:
    return (
        f"'{path}' must be {of}{' or '.join(_PARTNER_CURRENCIES)}, a partner's currency "
        f"(got {currency.code}; rule I2)"
    )


# -- shared by the aggregates' constructors -----------------------------------


class _Keep(enum.Enum):
    KEEP = "keep"

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep.KEEP
"""Marks an argument of an update as "leave this field as it is" (the
default of every argument of an update command; ``None`` clears an optional
field instead)."""


class _FieldCheck:
    """Checks the fields of an instance that was just built, in its
    ``__attrs_post_init__``: every invalid field is reported at once.

    Text is stored trimmed and enumerations as their members, whatever form
    the constructor was given; every other field must already have its type.
    So an instance built directly, not through a command, satisfies the same
    rules as one a command built.
    """

    __slots__ = ("found", "obj")

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self.found = FieldErrors()

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self.obj, name, value)

    def text(self, name: str, *, optional: bool = False, max_length: int = 200) -> None:
        value = getattr(self.obj, name)
        parse = _fields.optional_text if optional else _fields.required_text
        try:
            clean = parse(name, value, max_length=max_length)
        except ValidationError as error:
            self.found.errors.extend(error.errors)
            return
        if clean is not value:
            self._set(name, clean)

    def choice(self, name: str, kind: type[enum.Enum], *, optional: bool = False) -> None:
        value = getattr(self.obj, name)
        if isinstance(value, kind) or (optional and value is None):
            return
        try:
            self._set(name, _fields.choice(name, value, kind))
        except ValidationError as error:
            self.found.errors.extend(error.errors)

    def instance(self, name: str, kind: type[Any], label: str, *, optional: bool = False) -> None:
        value = getattr(self.obj, name)
        if isinstance(value, kind) or (optional and value is None):
            return
        self.found.add(name, "wrong_type", _wrong_type(name, label, value, optional=optional))

    def items(
        self, name: str, kind: type[Any], label: str, *, kind_of_list: type[Any] = tuple
    ) -> bool:
        """A tuple (or ``kind_of_list``) whose every item is a ``kind``."""
        value = getattr(self.obj, name)
        if not isinstance(value, kind_of_list):
            self.found.add(
                name, "wrong_type", f"'{name}' must be a list (got {type(value).__name__})"
            )
            return False
        ok = True
        for index, item in enumerate(value):
            if not isinstance(item, kind):
                where = f"{name}[{index}]"
                self.found.add(where, "wrong_type", _wrong_type(where, label, item))
                ok = False
        return ok

    def boolean(self, name: str) -> None:
        self.found.check("", _fields.boolean, name, getattr(self.obj, name))

    def datetime(self, name: str, *, optional: bool = False) -> None:
        value = getattr(self.obj, name)
        if optional and value is None:
            return
        try:
            clean = _fields.aware_datetime(name, value)
        except ValidationError as error:
            self.found.errors.extend(error.errors)
            return
        if clean.tzinfo is not value.tzinfo:
            self._set(name, clean)

    def version(self) -> None:
        _fields.keep_checked(self.found, self.obj, "version", _fields.version_number)

    def done(self) -> None:
        self.found.raise_if_any()


def _kept_text(value: object, max_length: int = 200) -> bool:
    """Whether :meth:`_FieldCheck.text` would accept ``value`` and keep it as
    it is: a plain ``str``, already trimmed, not blank, within ``max_length``.

    For the quick checks that constructors try first: when every field passes
    them, the detailed checks could find nothing and change nothing.
    """
    # Not empty and equal to its own strip(): trimmed, so not blank either.
    return (
        type(value) is str
        and 0 < len(value) <= max_length
        and value.strip() == value
        and _fields.valid_unicode(value)
    )


def _wrong_type(path: str, label: str, value: object, *, optional: bool = False) -> str:
    expected = f"{label} or None" if optional else label
    return f"'{path}' must be {expected} (got {type(value).__name__})"


def _email(path: str, value: object) -> EmailAddress:
    if isinstance(value, EmailAddress):
        return value
    try:
        return EmailAddress(value)  # type: ignore[arg-type]
    except ValidationError as error:
        # EmailAddress names its field 'email'; name the one being filled.
        field = path.rpartition(".")[2]
        raise ValidationError(
            [
                FieldError(
                    join_path(path, e.path),
                    e.code,
                    e.message.replace("'email'", f"'{field}'", 1),
                )
                for e in error.errors
            ]
        ) from None


def _events() -> Any:
    # Pending events: not an init argument, not part of equality nor of the
    # data (to_dict); a command copies them onto the new instance.
    return attrs.field(factory=tuple, init=False, eq=False, repr=False)


# -- roles and permissions ------------------------------------------------------


class Role(_fields.Choices, enum.Enum):
    """What a partner's team member may do (see :data:`ROLE_ACTIONS`).

    The commands that take a role (:meth:`Partner.add_team_member`,
    :meth:`Partner.change_role`) take a member, its value, or its label as
    the product's dashboard writes it, in any case (``"Sub-Admin"``,
    ``"sub admin"``); data read by :func:`~altpay_core.from_dict` holds the
    value.

    >>> Role.SUB_ADMIN.label
    'Sub-Admin'
    """

    ADMIN = "admin"
    """Everything: invoices, refunds, customers, access requests, integrations, team,
    banking."""
    SUB_ADMIN = "sub_admin"
    """Everything but banking details and the Admins: a Sub-Admin neither grants
    the Admin role nor changes or removes an Admin."""
    MEMBER = "member"
    """View and edit invoices only."""
    READ_ONLY = "read_only"
    """View invoices only."""

    @property
    def label(self) -> str:
        """The role as the product's dashboard names it."""
        return _ROLE_LABELS[self]


_ROLE_WORDS: Final = re.compile(r"[A-Za-z]+(?:[ _-][A-Za-z]+)*")


def _role(path: str, value: object) -> Role:
    """A role given to a command: a :class:`Role`, its value, or its label
    ("Read-Only"), in any case, its words joined by one hyphen, space or
    underscore."""
    if isinstance(value, Role):
        return value
    if isinstance(value, str) and _ROLE_WORDS.fullmatch(text := str.strip(value)):
        wanted = re.sub("[ -]", "_", text).lower()
        for role in Role:
            if role.value == wanted:
                return role
    values = ", ".join(repr(role.value) for role in Role)
    labels = ", ".join(repr(role.label) for role in Role)
    raise ValidationError.single(
        path,
        "invalid_choice",
        f"'{path}' must be a Role, one of {values}, or a label: {labels} (got {shown(value)})",
    )


_ROLE_LABELS: Final = {
    Role.ADMIN: "Admin",
    Role.SUB_ADMIN: "Sub-Admin",
    Role.MEMBER: "Member",
    Role.READ_ONLY: "Read-Only",
}


class Action(_fields.Choices, enum.StrEnum):
    """Actions in the partner's dashboard that need a permission."""

    VIEW_INVOICES = "view invoices"
    EDIT_INVOICES = "edit invoices"
    REFUND_PAYMENTS = "refund payments"
    """Send a customer's payment back (I7): money leaves the partner, so
    neither an invoice edit nor banking details."""
    MANAGE_CUSTOMERS = "manage customers"
    APPROVE_ACCESS_REQUESTS = "approve access requests"
    MANAGE_TAGS = "manage tags"
    MANAGE_CARD_FEES = "manage card fees"
    MANAGE_INTEGRATIONS = "manage integrations"
    MANAGE_TEAM = "manage the team"
    MANAGE_ADMINS = "manage Admins"
    """Grant the Admin role, or change or remove an Admin (besides ``MANAGE_TEAM``)."""
    MANAGE_BANKING = "manage banking details"


_ALL_ACTIONS: Final = frozenset(Action)
ROLE_ACTIONS: Final[Mapping[Role, frozenset[Action]]] = MappingProxyType(
    {
        Role.ADMIN: _ALL_ACTIONS,
        # Not the Admins either: else a Sub-Admin could make themselves an Admin
        # and so reach the banking details. Refunds, yes: they send money back
        # but touch no banking details.
        Role.SUB_ADMIN: _ALL_ACTIONS - {Action.MANAGE_BANKING, Action.MANAGE_ADMINS},
        Role.MEMBER: frozenset({Action.VIEW_INVOICES, Action.EDIT_INVOICES}),
        Role.READ_ONLY: frozenset({Action.VIEW_INVOICES}),
    }
)
"""The permissions table: the actions each role may perform (read-only)."""


@checked_constructor
@attrs.frozen
class TeamMember:
    """A partner's staff login: name, email and role.

    >>> m = TeamMember.new(name="Ada", email="ada@northwind.example", role="sub_admin")
    >>> m.role.label, m.may(Action.MANAGE_BANKING)
    ('Sub-Admin', False)
    """

    id: TeamMemberId
    name: str
    email: EmailAddress
    role: Role

    def __attrs_post_init__(self) -> None:
        check = _FieldCheck(self)
        check.instance("id", TeamMemberId, "a TeamMemberId")
        check.text("name")
        check.instance("email", EmailAddress, "an EmailAddress")
        check.choice("role", Role)
        check.done()

    @classmethod
    @checked_form
    def new(cls, *, name: str, email: str | EmailAddress, role: Role | str) -> TeamMember:
        """A new team member; every invalid field is reported at once."""
        found = FieldErrors()
        clean_name = found.check("", _fields.required_text, "name", name)
        clean_email = found.check("", _email, "email", email)
        clean_role = found.check("", _role, "role", role)
        found.raise_if_any()
        return cls(
            TeamMemberId.new(),
            _fields.passed(clean_name),
            _fields.passed(clean_email),
            _fields.passed(clean_role),
        )

    @checked_arguments
    def may(self, action: Action | str) -> bool:
        """Whether this member's role allows ``action``."""
        if type(action) is not Action:
            action = _fields.choice("action", action, Action)
        return action in ROLE_ACTIONS[self.role]


# -- tags -----------------------------------------------------------------------

_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")
_TAG_NAME_MAX: Final = 50
_TAG_DESCRIPTION_MAX: Final = 500


def _colour(path: str, value: object) -> str:
    if not isinstance(value, str) or not _COLOUR.fullmatch(str.strip(value)):
        got = shown(value) if isinstance(value, str) else type(value).__name__
        raise ValidationError.single(
            path,
            "invalid_colour",
            f"'{path}' must be a colour written #RRGGBB, like #1A2B3C (got {got})",
        )
    return str.strip(value).upper()


def _tag_key(name: str) -> str:
    # Unicode's compatibility caseless match (D146: NFKD(casefold(NFKD(
    # casefold(NFD(x)))))), kept composed (NFKC, equal exactly when the NFKD
    # forms are): "Café" typed two ways, "VIP" and "vip", "vip" in full-width
    # name one tag.
    n = unicodedata.normalize
    return n("NFKC", n("NFKD", n("NFD", name).casefold()).casefold())


@checked_constructor
@attrs.frozen
class Tag:
    """A partner-defined label for customers: a name that is unique in the
    catalog (case-insensitively), a colour ``#RRGGBB`` (required) and an
    optional description.

    >>> Tag.new(name="VIP", colour="#ff8800").colour
    '#FF8800'
    """

    id: TagId
    name: str
    colour: str
    description: str | None = None

    def __attrs_post_init__(self) -> None:
        check = _FieldCheck(self)
        check.instance("id", TagId, "a TagId")
        check.text("name", max_length=_TAG_NAME_MAX)
        try:
            clean = _colour("colour", self.colour)
        except ValidationError as error:
            check.found.errors.extend(error.errors)
        else:
            if type(self.colour) is not str or clean != self.colour:
                object.__setattr__(self, "colour", clean)
        check.text("description", optional=True, max_length=_TAG_DESCRIPTION_MAX)
        check.done()

    @classmethod
    @checked_form
    def new(cls, *, name: str, colour: str, description: str | None = None) -> Tag:
        """A new tag with a fresh id; every invalid field is reported at once."""
        return cls(TagId.new(), name, colour, description)

    @property
    def key(self) -> str:
        """The name as compared for uniqueness: case-insensitively."""
        return _tag_key(self.name)


# -- card fees --------------------------------------------------------------------


class CardFeeBearer(_fields.Choices, enum.Enum):
    """Who pays the card fee of a card payment."""

    CUSTOMER = "customer"
    """Passed to the customer as a separate fee line (the default)."""
    PARTNER = "partner"
    """Absorbed by the partner."""


DEFAULT_CARD_FEE_PERCENT: Final = Decimal("2.9")
DEFAULT_CARD_FEE_FIXED: Final = Decimal("0.30")
MAX_CARD_FEE_PERCENT: Final = Decimal(20)


# A rate is written out in plain form ("0.0000001", not "1E-7"): this bounds
# its length, as it bounds an allocation ratio's.
_RATE_MAX_PLACES: Final = 1000


def _rate(path: str, value: object) -> Decimal:
    """A percentage from 0 to 20, as a Decimal, a decimal string or an int
    (never a float, as for an amount), with at most 1000 decimal places.

    Text is read as strictly as an amount (ASCII decimal text only), and the
    rate is kept in plain form (``money.plain_decimal``: ``"1E+1"`` is 10,
    ``"-0"`` is 0, ``"2.90"`` stays 2.90), which ``to_dict`` writes as it is.
    """
    if isinstance(value, float):
        raise ValidationError.single(
            path,
            "float_refused",
            f"'{path}' must be a Decimal, a string like '2.9' or an int, never a float "
            f"(got {shown(value)}); floats cannot hold a rate exactly",
        )
    rate: Decimal | None = None
    if isinstance(value, Decimal):
        # A plain Decimal before it is compared or kept: a subclass brings
        # its own __eq__ and arithmetic.
        rate = value if type(value) is Decimal else Decimal(value)
        rate = rate if rate.is_finite() else None
    elif isinstance(value, str):
        rate = decimal_from_text(_fields.plain_str(value))
    elif isinstance(value, int) and not isinstance(value, bool):
        rate = Decimal(value)
    places = ""
    if rate is not None and Decimal(0) <= rate <= MAX_CARD_FEE_PERCENT:
        rate = plain_decimal(rate)
        exponent = rate.as_tuple().exponent
        if isinstance(exponent, int) and -exponent <= _RATE_MAX_PLACES:
            return rate
        places = f" with at most {_RATE_MAX_PLACES} decimal places"
    got = shown(value) if isinstance(value, str | Decimal | int) else type(value).__name__
    raise ValidationError.single(
        path,
        "invalid_rate",
        f"'{path}' must be a percentage from 0 to {MAX_CARD_FEE_PERCENT}{places}, "
        f"as a Decimal or a string like '2.9' (got {got})",
    )


def _fixed_fee(path: str, value: object, currency: Currency | None) -> Money:
    """An amount of money of at least zero (in ``currency`` when given)."""
    if isinstance(value, Money):
        money = value
    elif currency is None:
        raise ValidationError.single(
            path, "wrong_type", f"'{path}' must be Money (got {type(value).__name__})"
        )
    else:
        money = money_at(path, value, currency)  # type: ignore[arg-type]
    if currency is not None and money.currency is not currency:
        raise ValidationError.single(
            path,
            "currency_mismatch",
            f"'{path}' must be in {currency.code} (got {money.currency.code})",
        )
    if money.is_negative:
        raise ValidationError.single(
            path, "negative_amount", f"'{path}' must be zero or more (got {money})"
        )
    return money


@checked_constructor
@attrs.frozen
class CardFeePolicy:
    """How a partner's card fees are charged: who bears them, and the rate.

    The fee of a card payment is ``rate_percent`` of the amount, rounded
    half-even to the minor unit, plus ``fixed``. Bank debits carry none. By
    default (:meth:`default`) it is 2.9% + 0.30, passed to the customer.

    >>> CardFeePolicy.default("USD").fee_for(Money("100.00", "USD"))
    Money('3.20', 'USD')
    """

    bearer: CardFeeBearer
    rate_percent: Decimal
    fixed: Money

    def __attrs_post_init__(self) -> None:
        check = _FieldCheck(self)
        check.choice("bearer", CardFeeBearer)
        rate = check.found.check("", _rate, "rate_percent", self.rate_percent)
        if rate is not None and rate is not self.rate_percent:
            # Kept as the Decimal it was read as ("2.9" or 3 becomes Decimal),
            # as to_dict writes it and from_dict reads it back.
            object.__setattr__(self, "rate_percent", rate)
        fixed = check.found.check("", _fixed_fee, "fixed", self.fixed, None)
        if fixed is not None:
            # As default() and a partner: a policy no partner could take (I2).
            _refuse_unbilled(check.found, "fixed", fixed.currency, of="in ")
        check.done()

    @classmethod
    @checked_arguments
    def default(cls, currency: str | Currency) -> CardFeePolicy:
        """2.9% + 0.30 (in ``currency``), passed to the customer.

        ``currency`` is USD or CAD, a partner's currency, as for
        :meth:`Partner.create`: a policy in any other could go on no partner,
        so it is refused here (``unsupported_currency`` at ``currency``).
        """
        return cls(
            CardFeeBearer.CUSTOMER,
            DEFAULT_CARD_FEE_PERCENT,
            Money(DEFAULT_CARD_FEE_FIXED, _partner_currency("currency", currency)),
        )

    @property
    def passed_to_customer(self) -> bool:
        """Whether card fees are added to what the customer pays."""
        return self.bearer is CardFeeBearer.CUSTOMER

    @checked_arguments
    def fee_for(self, amount: Money) -> Money:
        """The card fee on a card payment of ``amount`` (in the policy's
        currency), whoever bears it; nothing on a zero amount.

        Refuses an amount in another currency (``currency_mismatch``, zero,
        negative or not), then a negative one (``negative_amount``), each a
        :class:`~altpay_core.errors.ValidationError` at ``amount``, as
        :func:`~altpay_core.payment.card_fee_for` does.
        """
        if not isinstance(amount, Money):
            raise ValidationError.single(
                "amount", "wrong_type", f"'amount' must be Money (got {type(amount).__name__})"
            )
        currency = self.fixed.currency
        if amount.currency is not currency:
            raise ValidationError.single(
                "amount",
                "currency_mismatch",
                f"'amount' must be in {currency.code}, the card-fee policy's currency "
                f"(got {amount.currency.code}; rule I2)",
            )
        if amount.is_negative:
            raise ValidationError.single(
                "amount", "negative_amount", f"'amount' must be zero or more (got {amount})"
            )
        if amount.is_zero:
            return Money.zero(amount.currency)
        return amount.percent(self.rate_percent, rounding=Rounding.HALF_EVEN) + self.fixed


# -- integrations -------------------------------------------------------------------


def _system(path: str, value: object) -> str:
    # As ExternalRef's system: lower-cased, then at most 50 characters.
    return _fields.system_name(path, value)


@checked_constructor
@attrs.frozen
class Integration:
    """A PSA or accounting system the partner has connected.

    ``system`` is the lower-case name used in external references
    (``connectwise``, ``quickbooks_online``, ...); it is stored trimmed and
    lower-cased, as :class:`~altpay_core.values.ExternalRef` stores it.
    ``syncs_customers`` and ``syncs_invoices`` say what it brings in.
    """

    system: str
    syncs_customers: bool = False
    syncs_invoices: bool = False

    def __attrs_post_init__(self) -> None:
        check = _FieldCheck(self)
        try:
            clean = _system("system", self.system)
        except ValidationError as error:
            check.found.errors.extend(error.errors)
        else:
            if clean is not self.system:
                object.__setattr__(self, "system", clean)
        check.boolean("syncs_customers")
        check.boolean("syncs_invoices")
        check.done()


# -- the partner ------------------------------------------------------------------


def _country(path: str, value: object) -> str:
    # Upper-case ASCII only, as values._clean_code does: str.upper() maps some
    # other letters onto ASCII ones (U+017F, the long s, becomes S).
    if not isinstance(value, str):
        raise ValidationError.single(
            path,
            "wrong_type",
            f"'{path}' must be a string (got {'None' if value is None else type(value).__name__})",
        )
    text = str.strip(value)  # a plain str, whatever a subclass's strip gives
    if text.isascii() and text.upper() in COUNTRY_CURRENCIES:
        return text.upper()
    raise ValidationError.single(
        path, "unknown_country", f"'{path}' must be 'US' or 'CA' (got {shown(value)})"
    )


def _partner_currency(path: str, value: object) -> Currency:
    if isinstance(value, Currency):
        currency = value
    elif not isinstance(value, str):
        # Checked here, not by Currency(), so that the message names the two
        # currencies a partner bills in.
        raise ValidationError.single(
            path,
            "wrong_type",
            f"'{path}' must be a currency code, USD or CAD (got {type(value).__name__})",
        )
    else:
        try:
            currency = Currency(value)
        except ValidationError as error:
            raise error.under(path) from None
    if currency.code not in _PARTNER_CURRENCIES:
        raise ValidationError.single(path, "unsupported_currency", _unbilled(path, currency))
    return currency


def _default_card_fees(partner: Partner) -> CardFeePolicy:
    try:
        return CardFeePolicy.default(partner.currency)
    except ValidationError:
        # A bad currency is reported by the partner's own check, with its path.
        return CardFeePolicy.default("USD")


@checked_constructor
@attrs.frozen(repr=False)
class Partner:
    """A firm that bills its customers on the platform.

    Build one with :meth:`create`; change it only through its commands, each
    of which returns a new partner. A command that a team member performs
    accepts ``by=``: when given, the member's role is checked with
    :meth:`authorize` (the one permission check of the library) and
    :class:`~altpay_core.errors.PermissionDenied` names the role and the
    action. Without ``by`` the command runs as the system (a sync, a
    migration, or a service that has already checked).
    """

    id: PartnerId
    name: str
    country: str
    currency: Currency
    team: tuple[TeamMember, ...] = attrs.field(default=(), converter=_fields.list_as_tuple)
    tags: tuple[Tag, ...] = attrs.field(default=(), converter=_fields.list_as_tuple)
    card_fees: CardFeePolicy = attrs.field(
        default=attrs.Factory(_default_card_fees, takes_self=True)
    )
    integrations: tuple[Integration, ...] = attrs.field(default=(), converter=_fields.list_as_tuple)
    created_at: dt.datetime = attrs.field(factory=utc_now)
    version: int = 0
    events: tuple[Event, ...] = _events()

    def __attrs_post_init__(self) -> None:
        check = _FieldCheck(self)
        check.instance("id", PartnerId, "a PartnerId")
        check.text("name")
        country = check.found.check("", _country, "country", self.country)
        if country is not None and country is not self.country:
            object.__setattr__(self, "country", country)
        currency = check.found.check("", _partner_currency, "currency", self.currency)
        if currency is not None and currency is not self.currency:
            object.__setattr__(self, "currency", currency)
        team_ok = check.items("team", TeamMember, "a TeamMember")
        tags_ok = check.items("tags", Tag, "a Tag")
        integrations_ok = check.items("integrations", Integration, "an Integration")
        check.instance("card_fees", CardFeePolicy, "a CardFeePolicy")
        if (
            currency is not None
            and isinstance(self.card_fees, CardFeePolicy)
            and self.card_fees.fixed.currency is not currency
        ):
            check.found.add(
                "card_fees.fixed",
                "currency_mismatch",
                f"'card_fees.fixed' must be in {currency.code}, the partner's currency "
                f"(got {self.card_fees.fixed.currency.code})",
            )
        check.datetime("created_at")
        check.version()
        # The rules the commands name too (add_team_member, add_tag,
        # connect_integration), so that one rule has one code; each among
        # the field errors when fields are also at fault.
        broken = self._broken_rules(team_ok, tags_ok, integrations_ok)
        for rule in broken:
            _fields.note_rule(check.found, rule)
        _fields.raise_rule_alone(check.found, broken[0] if broken else None)

    def _broken_rules(
        self, team_ok: bool, tags_ok: bool, integrations_ok: bool
    ) -> list[InvariantViolation]:
        """The first break of each uniqueness rule, among the lists whose
        every item has its class (the others are reported as such)."""
        found: list[InvariantViolation | None] = []
        if team_ok:
            found.append(
                _duplicate(
                    (m.email.key for m in self.team),
                    "team",
                    "email",
                    what="team members' emails",
                    rule="team-unique-email",
                )
            )
            found.append(
                _duplicate(
                    (m.id for m in self.team),
                    "team",
                    "id",
                    what="team members' ids",
                    rule="team-unique-id",
                )
            )
        if tags_ok:
            found.append(
                _duplicate(
                    (t.key for t in self.tags),
                    "tags",
                    "name",
                    what="tag names",
                    rule="tag-unique-name",
                )
            )
            found.append(
                _duplicate(
                    (t.id for t in self.tags), "tags", "id", what="tag ids", rule="tag-unique-id"
                )
            )
        if integrations_ok:
            found.append(
                _duplicate(
                    (i.system for i in self.integrations),
                    "integrations",
                    "system",
                    what="connected systems",
                    rule="integration-unique",
                )
            )
        return [rule for rule in found if rule is not None]

    # -- building ---------------------------------------------------------

    @classmethod
    @checked_form
    def create(
        cls,
        *,
        name: str,
        country: str,
        currency: str | Currency | None = None,
        default_currency: str | Currency | None = None,
    ) -> Partner:
        """A new partner in the US or Canada; its (default) currency follows
        the country (USD, CAD) unless given as ``currency`` or, by the
        glossary's name, ``default_currency`` (USD or CAD only; one of the
        two). The card-fee policy starts at the default: 2.9% + 0.30,
        passed to the customer.

        Every invalid field is reported at once.

        >>> Partner.create(name="Maple MSP", country="ca").currency.code
        'CAD'
        >>> Partner.create(name="Maple MSP", country="CA", default_currency="USD").default_currency
        Currency('USD')
        """
        found = FieldErrors()
        clean_name = found.check("", _fields.required_text, "name", name)
        clean_country = found.check("", _country, "country", country) or ""
        path = "currency"
        if default_currency is not None:
            path = "default_currency"
            if currency is not None:
                found.add(
                    "default_currency",
                    "ambiguous",
                    "give the currency once, as 'currency' or as 'default_currency'",
                )
            currency = default_currency
        if currency is None:
            # With an unknown country, that error is reported; USD stands in.
            currency = COUNTRY_CURRENCIES.get(clean_country, "USD")
        clean_currency = found.check("", _partner_currency, path, currency)
        found.raise_if_any()
        return cls(
            PartnerId.new(),
            _fields.passed(clean_name),
            clean_country,
            _fields.passed(clean_currency),
        )

    @property
    def default_currency(self) -> Currency:
        """:attr:`currency`, by the glossary's name: the currency the partner
        bills in, that of every invoice and payment."""
        return self.currency

    # -- permissions ------------------------------------------------------

    @checked_arguments
    def member(self, member: TeamMemberId | TeamMember) -> TeamMember:
        """The team member with that id (``NotFound`` if not on this team;
        ``ValidationError`` for anything but a member or a member's id)."""
        return self._member(member, "member")

    def _member(self, member: object, path: str) -> TeamMember:
        if isinstance(member, TeamMember):
            wanted = member.id
        elif isinstance(member, TeamMemberId | str):
            # An id, or its text (as the repositories take ids).
            wanted = _fields.entity_id(path, member, TeamMemberId)
        else:
            raise ValidationError.single(
                path,
                "wrong_type",
                f"'{path}' must be a TeamMember or a TeamMemberId (got {type(member).__name__})",
            )
        for candidate in self.team:
            if candidate.id == wanted:
                return candidate
        raise NotFound("team member", wanted)

    @checked_arguments
    def authorize(self, by: TeamMemberId | TeamMember, action: Action | str) -> TeamMember:
        """The one permission check: the member, if their role allows ``action``.

        Raises :class:`~altpay_core.errors.PermissionDenied` (naming the role
        and the action), :class:`~altpay_core.errors.NotFound` (not on this
        partner's team) or :class:`~altpay_core.errors.ValidationError` (``by``
        is neither a team member nor a member's id, ``action`` no action).
        The table is :data:`ROLE_ACTIONS`.
        """
        wanted = _fields.choice("action", action, Action)
        found = self._member(by, "by")
        if not found.may(wanted):
            raise PermissionDenied(role=found.role.value, action=wanted.value)
        return found

    def _check(self, by: TeamMemberId | TeamMember | None, action: Action) -> None:
        # ``by=None``: the command runs as the system, and nothing is checked.
        if by is not None:
            self.authorize(by, action)

    # -- team -------------------------------------------------------------

    @checked_arguments
    def add_team_member(
        self,
        *,
        name: str,
        email: str | EmailAddress,
        role: Role | str,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Partner:
        """Give a person a login to the partner's dashboard (one per email).
        Only an Admin adds an Admin."""
        self._check(by, Action.MANAGE_TEAM)
        member = TeamMember.new(name=name, email=email, role=role)
        if member.role is Role.ADMIN:
            self._check(by, Action.MANAGE_ADMINS)
        if any(m.email.key == member.email.key for m in self.team):
            raise InvariantViolation(
                f"{member.email} is already on the team", rule="team-unique-email", path="email"
            )
        return attrs.evolve(self, team=(*self.team, member))

    @checked_arguments
    def change_role(
        self,
        member: TeamMemberId | TeamMember,
        role: Role | str,
        *,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Partner:
        """Give a team member another role; the last Admin keeps theirs.
        Only an Admin grants the Admin role or changes an Admin's."""
        self._check(by, Action.MANAGE_TEAM)
        target = self._member(member, "member")
        new_role = _role("role", role)
        if Role.ADMIN in {new_role, target.role}:
            self._check(by, Action.MANAGE_ADMINS)
        team = tuple(attrs.evolve(m, role=new_role) if m is target else m for m in self.team)
        self._keep_an_admin(team)
        return attrs.evolve(self, team=team)

    @checked_arguments
    def remove_team_member(
        self, member: TeamMemberId | TeamMember, *, by: TeamMemberId | TeamMember | None = None
    ) -> Partner:
        """Take a person's dashboard login away; the last Admin stays. Only
        an Admin removes an Admin."""
        self._check(by, Action.MANAGE_TEAM)
        target = self._member(member, "member")
        if target.role is Role.ADMIN:
            self._check(by, Action.MANAGE_ADMINS)
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

    @functools.cached_property
    def _tag_index(self) -> tuple[dict[TagId, Tag], dict[str, Tag], dict[str, Tag]]:
        # The catalog by id, by name's key and by id's text: one look-up a
        # tag, so that naming n tags (Customer.set_tags) costs n look-ups,
        # not n scans of the catalog.
        by_id: dict[TagId, Tag] = {}
        by_key: dict[str, Tag] = {}
        by_text: dict[str, Tag] = {}
        for candidate in self.tags:
            by_id.setdefault(candidate.id, candidate)
            by_key.setdefault(candidate.key, candidate)
            by_text.setdefault(str(candidate.id), candidate)
        return by_id, by_key, by_text

    @checked_arguments
    def tag(self, tag: TagId | Tag | str) -> Tag:
        """The tag with that id, or that name (compared case-insensitively).

        Text is a name, or else a tag id's text (``"tag_..."``, as an id
        comes back from JSON or a form): a name is looked for first, so a
        tag whose name looks like an id is still found by it. ``NotFound``
        if the catalog has no such tag; ``ValidationError`` for anything but
        a tag, a tag id or text."""
        if isinstance(tag, Tag):
            tag = tag.id
        by_id, by_key, by_text = self._tag_index
        if isinstance(tag, TagId):
            if tag in by_id:
                return by_id[tag]
        elif isinstance(tag, str):
            # A name first, so that a tag whose name looks like an id is
            # still found by it.
            text = str.strip(tag)
            found = by_key.get(_tag_key(text)) or by_text.get(text)
            if found is not None:
                return found
        else:
            raise ValidationError.single(
                "tag",
                "wrong_type",
                f"'tag' must be a Tag, a TagId or a tag's name (got {type(tag).__name__})",
            )
        raise NotFound("tag", tag)

    @checked_arguments
    def add_tag(
        self,
        *,
        name: str,
        colour: str,
        description: str | None = None,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Partner:
        """Add a tag to the catalog; names are unique, case-insensitively, and
        a colour ``#RRGGBB`` is required."""
        self._check(by, Action.MANAGE_TAGS)
        tag = Tag.new(name=name, colour=colour, description=description)
        self._refuse_duplicate_tag(tag, self.tags)
        return attrs.evolve(self, tags=(*self.tags, tag))

    @checked_arguments
    def update_tag(
        self,
        tag: TagId | Tag | str,
        *,
        name: object = KEEP,
        colour: object = KEEP,
        description: object = KEEP,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Partner:
        """Rename, recolour or describe a tag. Omitted arguments keep their
        value; ``description=None`` clears the description. Every invalid
        field is reported at once."""
        self._check(by, Action.MANAGE_TAGS)
        old = self.tag(tag)
        new = Tag(
            old.id,
            old.name if name is KEEP else name,  # type: ignore[arg-type]
            old.colour if colour is KEEP else colour,  # type: ignore[arg-type]
            old.description if description is KEEP else description,  # type: ignore[arg-type]
        )
        if new == old:
            return self
        others = tuple(t for t in self.tags if t is not old)
        self._refuse_duplicate_tag(new, others)
        return attrs.evolve(self, tags=tuple(new if t is old else t for t in self.tags))

    @checked_arguments
    def delete_tag(
        self, tag: TagId | Tag | str, *, by: TeamMemberId | TeamMember | None = None
    ) -> Partner:
        """Take a tag out of the catalog.

        The customers that carry it must lose it too: call
        :meth:`Customer.remove_tag <altpay_core.customer.Customer.remove_tag>`
        on each, in the same unit of work, as ``altpay_core.services.delete_tag``
        does (see the persistence docs).
        """
        self._check(by, Action.MANAGE_TAGS)
        old = self.tag(tag)
        return attrs.evolve(self, tags=tuple(t for t in self.tags if t is not old))

    @staticmethod
    def _refuse_duplicate_tag(tag: Tag, others: Iterable[Tag]) -> None:
        """Rule ``tag-unique-name``: ``tag``'s name is none of ``others``'s in
        any case. The error names the tag that holds the name, whose name
        (``VIP``) may differ from the one given (``vip``)."""
        existing = next((t for t in others if t.key == tag.key), None)
        if existing is not None:
            raise InvariantViolation(
                f"{shown(tag.name)} clashes with the existing tag {shown(existing.name)} "
                "(names are compared case-insensitively)",
                rule="tag-unique-name",
                path="name",
            )

    # -- card fees and integrations ------------------------------------------

    @checked_arguments
    def set_card_fees(
        self,
        *,
        bearer: CardFeeBearer | str | None = None,
        rate_percent: Decimal | str | int | None = None,
        fixed: Money | Decimal | str | int | None = None,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Partner:
        """Change who bears card fees (``"partner"`` absorbs them), the rate
        (a percentage from 0 to 20) or the fixed part (in the partner's
        currency). ``None`` keeps a field; every invalid field is reported at
        once."""
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
            old.fixed
            if fixed is None
            else found.check("", _fixed_fee, "fixed", fixed, self.currency)
        )
        found.raise_if_any()
        policy = CardFeePolicy(
            _fields.passed(new_bearer), _fields.passed(new_rate), _fields.passed(new_fixed)
        )
        if policy == old:
            return self
        return attrs.evolve(self, card_fees=policy)

    @checked_arguments
    def connect_integration(
        self,
        system: str,
        *,
        syncs_customers: bool = False,
        syncs_invoices: bool = False,
        by: TeamMemberId | TeamMember | None = None,
    ) -> Partner:
        """Connect a PSA or accounting system (once per system). With
        ``syncs_customers=True`` its customers come in through the sync and
        none are added by hand (rule C6)."""
        self._check(by, Action.MANAGE_INTEGRATIONS)
        integration = Integration(system, syncs_customers, syncs_invoices)
        if any(i.system == integration.system for i in self.integrations):
            raise InvariantViolation(
                f"{integration.system} is already connected",
                rule="integration-unique",
                path="system",
            )
        return attrs.evolve(self, integrations=(*self.integrations, integration))

    @checked_arguments
    def disconnect_integration(
        self, system: str, *, by: TeamMemberId | TeamMember | None = None
    ) -> Partner:
        """Disconnect a system; the records it synced keep their references."""
        self._check(by, Action.MANAGE_INTEGRATIONS)
        found = self.integration(system)
        return attrs.evolve(
            self, integrations=tuple(i for i in self.integrations if i is not found)
        )

    @property
    def syncs_customers(self) -> bool:
        """Whether a connected integration syncs customers (rule C6)."""
        return any(i.syncs_customers for i in self.integrations)

    @property
    def syncs_invoices(self) -> bool:
        """Whether a connected integration syncs invoices."""
        return any(i.syncs_invoices for i in self.integrations)

    @checked_arguments
    def integration(self, system: str) -> Integration:
        """The connected integration named ``system`` (any case).

        ``NotFound`` if it is not connected; ``ValidationError`` if ``system``
        is not a string."""
        if not isinstance(system, str):
            raise ValidationError.single(
                "system",
                "wrong_type",
                f"'system' must be a string (got {type(system).__name__})",
            )
        wanted = str.strip(system).lower()
        for candidate in self.integrations:
            if candidate.system == wanted:
                return candidate
        raise NotFound("integration", system)

    # -- notebooks ----------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"Partner(id={str(self.id)!r}, name={self.name!r}, country={self.country!r}, "
            f"currency={self.currency.code!r}, team={len(self.team)}, tags={len(self.tags)}, "
            f"integrations={[i.system for i in self.integrations]!r})"
        )

    def _repr_html_(self) -> str:
        fees = self.card_fees
        rows = [
            ("id", str(self.id)),
            ("name", self.name),
            ("country", self.country),
            ("currency", self.currency.code),
            (
                "team",
                ", ".join(f"{m.name} <{m.email}> ({m.role.label})" for m in self.team) or "-",
            ),
            ("tags", ", ".join(f"{t.name} ({t.colour})" for t in self.tags) or "-"),
            (
                "card fees",
                f"{fees.rate_percent}% + {fees.fixed}, "
                f"{'passed to the customer' if fees.passed_to_customer else 'absorbed'}",
            ),
            (
                "integrations",
                ", ".join(_describe_integration(i) for i in self.integrations) or "-",
            ),
            ("version", str(self.version)),
        ]
        return html_table(f"Partner {self.name}", rows)


def _describe_integration(integration: Integration) -> str:
    syncs = [
        what
        for what, on in (
            ("customers", integration.syncs_customers),
            ("invoices", integration.syncs_invoices),
        )
        if on
    ]
    return f"{integration.system} (syncs {' and '.join(syncs) or 'nothing'})"


def _duplicate(
    keys: Iterable[object], path: str, field: str, *, what: str, rule: str
) -> InvariantViolation | None:
    """What ``rule`` says of the first key that an earlier one repeats, or
    None when the keys are unique."""
    seen: set[object] = set()
    for index, key in enumerate(keys):
        if key in seen:
            return InvariantViolation(
                f"{what} must be unique",
                rule=rule,
                path=f"{path}[{index}].{field}",
            )
        seen.add(key)
    return None


def _authorize_by(
    partner: Partner | None,
    by: TeamMemberId | TeamMember | None,
    *,
    owner: PartnerId,
    action: Action,
    missing: NotFound,
) -> None:
    """With ``by``, the team member of ``partner`` (``owner``, whose the
    aggregate is) who asks: their role must allow ``action``. Without it the
    command runs as the system, and only a ``partner`` given is checked to
    be ``owner`` (else ``missing``: another partner's aggregate is not found)."""
    if partner is None:
        if by is None:
            return
        raise ValidationError.single(
            "partner",
            "missing",
            "'partner' is required with 'by': the partner whose team member 'by' is",
        )
    checked = _fields.argument("partner", partner, Partner, "a Partner")
    if checked.id != owner:
        raise missing
    if by is not None:
        checked.authorize(by, action)
