"""Hypothesis strategies for every public type of altpay-core.

Every strategy builds its values through the real constructors, so it can
never drift from the rules; none filters heavily, so none trips a health
check. They reach the edges: unicode names, internationalised email
addresses, currencies with 0 and 3 minor units, ZIP+4 and Canadian postal
codes, zero and huge amounts.

>>> from hypothesis import given
>>> from altpay_core.testing import strategies as aps
>>> @given(aps.money(currency="USD"))
... def test_money_is_exact(m): ...

Once the package is installed, ``st.from_type(T)`` gives the same strategy
for every public ``T``.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import string
import typing
from collections.abc import Callable
from types import NotImplementedType
from typing import Any, TypeVar

import attrs

try:
    from hypothesis import strategies as st
    from hypothesis.errors import InvalidArgument
except ImportError as _error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "altpay_core.testing needs Hypothesis: pip install 'altpay-core[testing]'"
    ) from _error

import stdnum.us.ein

from altpay_core._arguments import checked_arguments
from altpay_core._fields import plain_int
from altpay_core.access import Impersonation, InvoiceAccess
from altpay_core.customer import (
    AccessRequest,
    AccessRequestStatus,
    Customer,
    CustomerDetails,
    CustomerDraft,
    CustomerStatus,
    CustomerUser,
    DraftStep,
)
from altpay_core.errors import ArgumentError, FieldError, OperandError, ValidationError
from altpay_core.events import EVENT_TYPES, Event
from altpay_core.invoice import (
    MAX_QUANTITY,
    AppliedPayment,
    Fee,
    FeeKind,
    Invoice,
    InvoiceStatus,
    LineItem,
)
from altpay_core.money import Currency, Money, Rounding
from altpay_core.partner import (
    Action,
    CardFeeBearer,
    CardFeePolicy,
    Integration,
    Partner,
    Role,
    Tag,
    TeamMember,
)
from altpay_core.payment import (
    Allocation,
    CustomerPaymentMethods,
    Payment,
    PaymentMethod,
    PaymentMethodStatus,
    PaymentMethodType,
    PaymentStatus,
    ReturnKind,
    ScheduledPayment,
    ScheduledPaymentId,
    ScheduledPaymentStatus,
    charge_back_payment,
    fail_payment,
    pay_invoices,
    refund_payment,
    return_payment,
)
from altpay_core.ports import (
    MAX_PAGE_SIZE,
    Cursor,
    Listing,
    OutboxMessage,
    Page,
    PageRequest,
    customer_cursor,
    customer_sort_key,
    invoice_cursor,
    invoice_sort_key,
)
from altpay_core.values import (
    CA_POSTAL_FIRST_LETTERS,
    EIN,
    US_REGIONS,
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
    TeamMemberId,
    UserId,
)

__all__ = [
    "access_requests",
    "addresses",
    "allocations",
    "applied_payments",
    "aware_datetimes",
    "card_fee_policies",
    "currencies",
    "cursors",
    "customer_details",
    "customer_drafts",
    "customer_payment_methods",
    "customer_users",
    "customers",
    "eins",
    "email_addresses",
    "entity_ids",
    "events",
    "external_refs",
    "fees",
    "for_type",
    "impersonations",
    "integrations",
    "invoices",
    "line_items",
    "money",
    "names",
    "outbox_messages",
    "page_requests",
    "pages",
    "partners",
    "payment_methods",
    "payments",
    "register",
    "roles",
    "scheduled_payments",
    "tags",
    "team_members",
]

_T = TypeVar("_T")
_A = TypeVar("_A")
_I = TypeVar("_I", bound=EntityId)
_V = TypeVar("_V", bound=Event)

_STRATEGIES: dict[type[Any], Callable[[], st.SearchStrategy[Any]]] = {}


@checked_arguments
def register(cls: type[_T], make: Callable[[], st.SearchStrategy[_T]]) -> None:
    """Say how to generate a class of yours: ``make()`` returns its strategy.

    :func:`for_type` then knows ``cls``, and so does Hypothesis:
    ``st.from_type(cls)``, and ``st.builds`` of a class with a field of it.
    """
    if not isinstance(cls, type):
        raise InvalidArgument(f"cls must be a class (got {cls!r})")
    if not callable(make):
        raise InvalidArgument(f"make must be a function that returns a strategy (got {make!r})")
    st.register_type_strategy(cls, for_type)  # first: it may refuse the class
    _register(cls, make)


def _register(cls: type[Any], make: Callable[[], st.SearchStrategy[Any]]) -> None:
    # The kit's own types: Hypothesis knows them through the entry point.
    _STRATEGIES[cls] = make


@checked_arguments
def for_type(cls: type[_T]) -> st.SearchStrategy[_T] | NotImplementedType:
    """The strategy for ``cls``, or ``NotImplemented`` for a type not known
    here (anything that is no type, unhashable or not, included).

    A page names the type of its items: ``for_type(Page[Customer])``; a bare
    ``Page`` is an ``InvalidArgument``. Every event class :func:`events`
    draws is known, a service's own too.
    """
    try:
        hash(cls)
    except TypeError:
        return NotImplemented  # type: ignore[no-any-return]  # as for an unknown type
    if cls is Page:
        raise InvalidArgument(
            "a page names the type of its items: name the item type, such as Page[Customer]"
        )
    if typing.get_origin(cls) is Page:
        (item,) = typing.get_args(cls)
        listing = _listings.get(item, lambda: pages(st.from_type(item)))()
        return typing.cast("st.SearchStrategy[_T]", listing)
    make = _STRATEGIES.get(cls)
    if make is not None:
        return make()
    if cls in EVENT_TYPES.values():
        # Every event class events() draws, a service's own too.
        return typing.cast("st.SearchStrategy[_T]", events(typing.cast("type[Event]", cls)))
    return NotImplemented  # type: ignore[no-any-return]  # typeshed: NotImplementedType(Any)


# -- arguments -------------------------------------------------------------------
# Arguments are checked when a strategy is made, and a bad one is an
# InvalidArgument naming it, as Hypothesis' own strategies do.


def _whole(value: object, name: str, *, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name} must be a whole number (got {value!r})")
    # A plain int before it is compared, or is a cached strategy's key: a
    # subclass's own comparisons and __eq__ could pass any bound, or match
    # a strategy made for another number.
    number = plain_int(value)
    if low is not None and number < low:
        raise InvalidArgument(f"{name} must be at least {low} (got {number!r})")
    return number


def _flag(value: object, name: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise InvalidArgument(f"{name} must be True, False or None (got {value!r})")
    return value


_E = TypeVar("_E", bound=enum.Enum)


def _member(cls: type[_E], value: object, name: str) -> _E | None:
    """``value`` as a member of ``cls``: a member, its value (``"paid"``), or None."""
    if value is None or isinstance(value, cls):
        return value
    try:
        # The library's enumerations look a value up by its plain text
        # (_fields.Choices), never by a subclass's own __eq__ and __hash__.
        return cls(value)
    except (ValueError, TypeError):
        choices = ", ".join(repr(m.value) for m in cls)
        article = "an" if cls.__name__[0] in "AEIOU" else "a"
        raise InvalidArgument(
            f"{name} must be {article} {cls.__name__} or its value ({choices}), "
            f"or None (got {value!r})"
        ) from None


def _instance(cls: type[_T], value: object, name: str) -> _T | None:
    if value is not None and not isinstance(value, cls):
        raise InvalidArgument(
            f"{name} must be a {cls.__name__} or None (got {type(value).__name__})"
        )
    return value


def _currency(value: object, name: str = "currency") -> Currency:
    if not isinstance(value, str | Currency):
        raise InvalidArgument(f"{name} must be a currency code (got {value!r})")
    try:
        return Currency(value)
    except ValidationError:
        raise InvalidArgument(
            f"{name} must be an ISO 4217 currency code such as 'USD' (got {value!r})"
        ) from None


def _keep_events(new: _A, old: Any, at: dt.datetime | None = None) -> _A:
    """``new`` (an ``attrs.evolve`` of ``old``) with ``old``'s pending events,
    which ``evolve`` does not carry over; dated ``at`` if given (a drawn
    time, not the clock's, so that an example replays)."""
    events = old.events
    if at is not None:
        events = tuple(attrs.evolve(event, occurred_at=at) for event in events)
    object.__setattr__(new, "events", events)
    return new


# -- money ------------------------------------------------------------------

_EDGE_CURRENCIES = ("USD", "CAD", "JPY", "BHD", "KWD", "CLF", "EUR")

# The value strategies below are cached: each call with the same arguments
# returns the same (immutable) strategy, which Hypothesis then validates once
# rather than on every draw of every composite that uses it. The argument
# check comes first: a call with arguments it does not take (hashable or
# not) is an ArgumentError, never the cache's TypeError.


@checked_arguments
@functools.cache
def currencies() -> st.SearchStrategy[Currency]:
    """Any ISO 4217 currency, the common and the odd (JPY 0, BHD 3, CLF 4) first."""
    return st.one_of(
        st.sampled_from(_EDGE_CURRENCIES).map(Currency),
        st.sampled_from(Currency.all()),
    )


_HUGE_UNITS = 10**20


@checked_arguments
def money(
    currency: str | Currency | None = None,
    *,
    min_units: int | None = None,
    max_units: int | None = None,
) -> st.SearchStrategy[Money]:
    """Amounts of money, in ``currency`` (any when None), as minor units in a range.

    By default they reach zero, negative and huge amounts (up to 10**20 minor
    units either way). ``money("JPY", min_units=0, max_units=0)`` is zero yen.
    """
    code = None if currency is None else _currency(currency).code
    low = None if min_units is None else _whole(min_units, "min_units")
    high = None if max_units is None else _whole(max_units, "max_units")
    if low is not None and high is not None and high < low:
        raise InvalidArgument(f"max_units={high} must be at least min_units={low}")
    # Money holds at most 30 digits before the point: in minor units, as many
    # more as the currency has decimals (any currency: JPY has none).
    digits = 30 + (0 if code is None else Currency(code).minor_units)
    for name, bound in (("min_units", low), ("max_units", high)):
        if bound is not None and abs(bound) >= 10**digits:
            where = "any currency" if code is None else code
            raise InvalidArgument(
                f"{name} must be below 10**{digits} either way, the most Money holds "
                f"in minor units of {where} (got {bound})"
            )
    # A bound given alone moves the other default out of its way.
    if low is None:
        low = min(-_HUGE_UNITS, high if high is not None else 0)
    if high is None:
        high = max(_HUGE_UNITS, low)
    return _money(code, low, high)


@functools.cache
def _money(code: str | None, low: int, high: int) -> st.SearchStrategy[Money]:
    edges = [u for u in (0, 1, -1, 99, 100, low, high) if low <= u <= high]
    # The range first: Hypothesis shrinks a one_of towards its first branch,
    # so a failing amount shrinks towards the smallest, not to an edge.
    units = st.one_of(st.integers(low, high), st.sampled_from(edges))
    which = currencies() if code is None else st.just(Currency(code))
    return st.builds(Money.from_minor_units, units, which)


# -- text -------------------------------------------------------------------

_LETTERS = st.characters(categories=["Lu", "Ll", "Lo"], exclude_characters="\x00")


@checked_arguments
def names(max_size: int = 40) -> st.SearchStrategy[str]:
    """Non-blank names of 1 to ``max_size`` characters (now and then exactly
    ``max_size``): a unicode letter at each end, and letters, combining marks
    (``"José"`` decomposed, Devanagari vowel signs), digits, spaces and
    punctuation inside."""
    return _names(_whole(max_size, "max_size", low=1))


@functools.cache
def _names(max_size: int) -> st.SearchStrategy[str]:
    if max_size == 1:
        return _LETTERS
    inner = st.characters(categories=["L", "M", "N", "Zs", "Pd", "Po"])
    middle = st.text(alphabet=inner, max_size=max_size - 2)
    # The longest name now and then, an edge as money()'s bounds are: drawn
    # up to max_size, a name almost never reaches it.
    longest = st.text(alphabet=inner, min_size=max_size - 2, max_size=max_size - 2)

    @st.composite
    def name(draw: st.DrawFn) -> str:
        first = draw(_LETTERS)
        # One letter now and then (people go by "J"); it is also where a
        # failing name shrinks to. The longest as often.
        size = draw(st.integers(0, 9))
        if size == 0:
            return first
        inside = draw(longest if size == 1 else middle)
        # A plain space, hyphen or apostrophe in most names ("Globex Corp",
        # "Mary-Ann O'Neil"): among every Unicode letter, digit and space
        # they would almost never be drawn (an alphabet's branch of its own
        # is merged away by st.text).
        if inside and draw(st.booleans()):
            at = draw(st.integers(0, len(inside) - 1))
            inside = inside[:at] + draw(st.sampled_from(" -'.")) + inside[at + 1 :]
        return first + inside + draw(_LETTERS)

    return name()


# -- values -----------------------------------------------------------------

_LOCAL_ATOM = st.text(
    alphabet=string.ascii_letters + string.digits + "+_-" + "éüñøç用户",
    min_size=1,
    max_size=12,
)
_DOMAIN_LABEL = st.one_of(
    st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=12),
    st.sampled_from(["bücher", "例子", "exämple", "münchen"]),
)
_TLDS = st.sampled_from(["com", "example", "org", "ca", "io", "net"])


@checked_arguments
@functools.cache
def email_addresses() -> st.SearchStrategy[EmailAddress]:
    """Valid email addresses, internationalised ones included."""
    local = st.lists(_LOCAL_ATOM, min_size=1, max_size=3).map(".".join)
    domain = st.builds(
        lambda labels, tld: ".".join([*labels, tld]),
        st.lists(_DOMAIN_LABEL, min_size=1, max_size=2),
        _TLDS,
    )
    return st.builds(lambda lp, d: EmailAddress(f"{lp}@{d}"), local, domain)


_CA_LETTERS = st.sampled_from("ABCEGHJKLMNPRSTVWXYZ")
_DIGITS = st.sampled_from(string.digits)
_US_REGIONS = st.sampled_from(US_REGIONS)
_CA_REGIONS = st.sampled_from(sorted(CA_POSTAL_FIRST_LETTERS))
_ZIP5 = st.integers(0, 99_999)
_PLUS4 = st.none() | st.integers(0, 9_999)
_LINE2 = st.none() | names()
_FIRST_LETTERS = {
    region: st.sampled_from(letters) for region, letters in CA_POSTAL_FIRST_LETTERS.items()
}


@st.composite
def _us_address(draw: st.DrawFn) -> Address:
    zip5 = draw(_ZIP5)
    plus4 = draw(_PLUS4)
    postal = f"{zip5:05d}" if plus4 is None else f"{zip5:05d}-{plus4:04d}"
    return Address(
        line1=draw(names()),
        line2=draw(_LINE2),
        city=draw(names()),
        region=draw(_US_REGIONS),
        postal_code=postal,
        country="US",
    )


@st.composite
def _ca_address(draw: st.DrawFn) -> Address:
    region = draw(_CA_REGIONS)
    first = draw(_FIRST_LETTERS[region])
    letters, digits = _CA_LETTERS, _DIGITS
    postal = f"{first}{draw(digits)}{draw(letters)} {draw(digits)}{draw(letters)}{draw(digits)}"
    return Address(
        line1=draw(names()),
        line2=draw(_LINE2),
        city=draw(names()),
        region=region,
        postal_code=postal,
        country="CA",
    )


_ADDRESSES = {"US": _us_address(), "CA": _ca_address()}
_ANY_ADDRESS = st.one_of(_ADDRESSES["US"], _ADDRESSES["CA"])


@checked_arguments
def addresses(country: str | None = None) -> st.SearchStrategy[Address]:
    """US and Canadian addresses (ZIP, ZIP+4, postal codes matching the province),
    or of one ``country``, ``"US"`` or ``"CA"``."""
    if country is None:
        return _ANY_ADDRESS
    # str.upper, on the plain text: a subclass's own upper() (or __eq__)
    # could name another country than its text.
    found = _ADDRESSES.get(str.upper(country)) if isinstance(country, str) else None
    if found is None:
        raise InvalidArgument(f"country must be 'US', 'CA' or None (got {country!r})")
    return found


_EIN_PREFIXES = tuple(f"{p:02d}" for p in range(100) if stdnum.us.ein.is_valid(f"{p:02d}0000001"))


@checked_arguments
@functools.cache
def eins() -> st.SearchStrategy[EIN]:
    """EINs with prefixes the IRS assigns, written with or without the dash."""
    return st.builds(
        lambda prefix, serial, dash: EIN(f"{prefix}{'-' if dash else ''}{serial:07d}"),
        st.sampled_from(_EIN_PREFIXES),
        st.integers(0, 9_999_999),
        st.booleans(),
    )


_SYSTEMS = (
    "connectwise",
    "halopsa",
    "autotask",
    "quickbooks_online",
    "quickbooks_desktop",
    "xero",
    "sage_intacct",
    "netsuite",
    "zoho_books",
    "freshbooks",
    "business_central",
)


_external_ids = st.one_of(
    st.integers(1, 10**12).map(str),
    st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=36),
)


@checked_arguments
@functools.cache
def external_refs() -> st.SearchStrategy[ExternalRef]:
    """References to records in a PSA or accounting system."""
    return st.builds(ExternalRef, system=st.sampled_from(_SYSTEMS), id=_external_ids)


_ID_TYPES = (
    PartnerId,
    TeamMemberId,
    CustomerId,
    UserId,
    AccessRequestId,
    TagId,
    InvoiceId,
    PaymentId,
    PaymentMethodId,
    ScheduledPaymentId,
)


@checked_arguments
def entity_ids(cls: type[_I]) -> st.SearchStrategy[_I]:
    """Ids of kind ``cls`` (``entity_ids(CustomerId)``): ones shaped as
    ``cls.new()`` makes them and short hand-written ones. ``EntityId``
    itself gives ids of every kind."""
    if not (isinstance(cls, type) and issubclass(cls, EntityId)):
        raise InvalidArgument(f"cls must be an id type such as CustomerId (got {cls!r})")
    if cls is EntityId:
        every: st.SearchStrategy[Any] = st.sampled_from(_ID_TYPES).flatmap(_entity_ids)
        return every
    return _entity_ids(cls)


_ID_STRATEGIES: dict[type[EntityId], st.SearchStrategy[Any]] = {}


def _entity_ids(cls: type[_I]) -> st.SearchStrategy[_I]:
    found = _ID_STRATEGIES.get(cls)
    if found is None:
        tail = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=32)
        # The uuid is drawn (not uuid4()), so that an example replays and shrinks.
        found = _ID_STRATEGIES[cls] = st.one_of(
            st.uuids(version=4).map(lambda u: cls(f"{cls.prefix}_{u.hex}")),
            tail.map(lambda t: cls(f"{cls.prefix}_{t}")),
        )
    return found


_register(Currency, currencies)
_register(EntityId, lambda: entity_ids(EntityId))
_register(Money, money)
_register(EmailAddress, email_addresses)
_register(Address, addresses)
_register(EIN, eins)
_register(ExternalRef, external_refs)
for _id in _ID_TYPES:
    _register(_id, lambda _id=_id: entity_ids(_id))  # type: ignore[misc]


# -- partners ------------------------------------------------------------------


@checked_arguments
@functools.cache
def aware_datetimes() -> st.SearchStrategy[dt.datetime]:
    """Timezone-aware datetimes in UTC, from 2000 to 2100."""
    return st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1)).map(
        lambda d: d.replace(tzinfo=dt.UTC)
    )


@checked_arguments
def team_members(role: Role | str | None = None) -> st.SearchStrategy[TeamMember]:
    """Team members of any role (or of ``role``, a ``Role`` or its value)."""
    return _team_members(_member(Role, role, "role"))


@functools.cache
def _team_members(wanted: Role | None) -> st.SearchStrategy[TeamMember]:
    return st.builds(
        TeamMember.new,
        name=names(),
        email=email_addresses(),
        role=st.sampled_from(Role) if wanted is None else st.just(wanted),
    )


@checked_arguments
@functools.cache
def tags() -> st.SearchStrategy[Tag]:
    """Catalog tags: unicode names, #RRGGBB colours, optional descriptions."""
    return st.builds(
        Tag.new,
        name=names(max_size=30),
        colour=st.integers(0, 0xFFFFFF).map(lambda n: f"#{n:06X}"),
        description=st.none() | names(max_size=60),
    )


@checked_arguments
def card_fee_policies(currency: str | Currency = "USD") -> st.SearchStrategy[CardFeePolicy]:
    """Card-fee policies: either bearer, rates from 0 to 20%, fixed fees in
    ``currency``, a partner's (USD or CAD), as a policy's must be."""
    code = _currency(currency).code
    if code not in _PARTNER_CURRENCIES:
        raise InvalidArgument(f"currency must be 'USD' or 'CAD' (got {currency!r})")
    return _card_fee_policies(code)


@functools.cache
def _card_fee_policies(currency: str) -> st.SearchStrategy[CardFeePolicy]:
    return st.builds(
        CardFeePolicy,
        st.sampled_from(CardFeeBearer),
        st.decimals(min_value=0, max_value=20, places=2),
        money(currency, min_units=0, max_units=500),
    )


@checked_arguments
@functools.cache
def integrations() -> st.SearchStrategy[Integration]:
    """A connected PSA or accounting system."""
    return st.builds(
        Integration,
        system=st.sampled_from(_SYSTEMS),
        syncs_customers=st.booleans(),
        syncs_invoices=st.booleans(),
    )


_INTEGRATIONS = st.lists(integrations(), max_size=2, unique_by=lambda i: i.system)


def _connect(partner: Partner, integrations: list[Integration]) -> Partner:
    for integration in integrations:
        partner = partner.connect_integration(
            integration.system,
            syncs_customers=integration.syncs_customers,
            syncs_invoices=integration.syncs_invoices,
        )
    return partner


@functools.cache
def _lists(elements: st.SearchStrategy[_T], max_size: int) -> st.SearchStrategy[list[_T]]:
    """``st.lists(elements, max_size=max_size)``, made once."""
    return st.lists(elements, max_size=max_size)


_COUNTRIES = ("US", "CA")
_PARTNER_CURRENCIES = ("USD", "CAD")


def _partner_place(
    country: str | None, currency: str | Currency | None
) -> tuple[str | None, str | None]:
    if country is not None:
        # Read as plain text, for the same reason as in addresses().
        if not isinstance(country, str) or str.upper(country) not in _COUNTRIES:
            raise InvalidArgument(f"country must be 'US', 'CA' or None (got {country!r})")
        country = str.upper(country)
    code = None if currency is None else _currency(currency).code
    if code is not None and code not in _PARTNER_CURRENCIES:
        raise InvalidArgument(f"currency must be 'USD', 'CAD' or None (got {currency!r})")
    return country, code


def _draw_partner(draw: st.DrawFn, name: str, country: str | None, currency: str | None) -> Partner:
    """A new partner; its currency follows its country, or is the other one
    (a Canadian firm billing in USD) now and then."""
    if country is None:
        country = draw(st.sampled_from(_COUNTRIES))
    if currency is None:
        currency = draw(st.none() | st.sampled_from(_PARTNER_CURRENCIES))
    return Partner.create(name=name, country=country, currency=currency)


@checked_arguments
def partners(
    *,
    country: str | None = None,
    currency: str | Currency | None = None,
    syncs_customers: bool | None = None,
    max_team: int = 4,
    max_tags: int = 4,
) -> st.SearchStrategy[Partner]:
    """Partners in the US or Canada (or ``country``), billing in USD or CAD
    (or ``currency``; most often their country's), with a team (an Admin
    first, up to ``max_team`` members), up to ``max_tags`` tags and
    integrations. ``syncs_customers=False`` gives one that adds customers by
    hand; ``True``, one whose integration syncs them."""
    where, code = _partner_place(country, currency)
    return _partners(
        country=where,
        currency=code,
        syncs_customers=_flag(syncs_customers, "syncs_customers"),
        max_team=_whole(max_team, "max_team", low=1),
        max_tags=_whole(max_tags, "max_tags", low=0),
    )


# Cached (as composites are not): a composite drawing another by the same
# arguments then draws the one strategy, validated once.
@functools.cache
@st.composite
def _partners(
    draw: st.DrawFn,
    *,
    country: str | None,
    currency: str | None,
    syncs_customers: bool | None,
    max_team: int,
    max_tags: int,
) -> Partner:
    partner = _draw_partner(draw, draw(names()), country, currency)
    admin = draw(team_members(Role.ADMIN))
    partner = partner.add_team_member(name=admin.name, email=admin.email, role=admin.role)
    for member in draw(_lists(team_members(), max_team - 1)):
        if all(m.email.key != member.email.key for m in partner.team):
            partner = partner.add_team_member(
                name=member.name, email=member.email, role=member.role
            )
    for tag in draw(_lists(tags(), max_tags)):
        if all(t.key != tag.key for t in partner.tags):
            partner = partner.add_tag(name=tag.name, colour=tag.colour, description=tag.description)
    partner = _connect(partner, draw(_INTEGRATIONS))
    if syncs_customers is True and not partner.syncs_customers:
        system = draw(
            st.sampled_from(
                [s for s in _SYSTEMS if s not in {i.system for i in partner.integrations}]
            )
        )
        partner = partner.connect_integration(system, syncs_customers=True)
    if syncs_customers is False and partner.syncs_customers:
        for integration in partner.integrations:
            if integration.syncs_customers:
                partner = partner.disconnect_integration(integration.system)
    policy = draw(_card_fee_policies(partner.currency.code))
    partner = partner.set_card_fees(
        bearer=policy.bearer, rate_percent=policy.rate_percent, fixed=policy.fixed
    )
    return attrs.evolve(partner, created_at=draw(aware_datetimes()))


# -- customers ---------------------------------------------------------------------


@checked_arguments
@functools.cache
def customer_users() -> st.SearchStrategy[CustomerUser]:
    """People who log in to a customer: unicode names, international emails."""
    # The class itself, not CustomerUser.new: a failing example then prints
    # as CustomerUser(id=UserId(...), ...), code one can paste.
    return st.builds(
        CustomerUser,
        id=entity_ids(UserId),
        first_name=names(max_size=30),
        last_name=names(max_size=30),
        email=email_addresses(),
        notifications=st.booleans(),
    )


@functools.cache
def _unique_users(min_size: int, max_size: int) -> st.SearchStrategy[list[CustomerUser]]:
    # A customer's users have different emails and ids (C4).
    return st.lists(
        customer_users(),
        min_size=min_size,
        max_size=max_size,
        unique_by=(lambda u: u.email.key, lambda u: u.id),
    )


@checked_arguments
@functools.cache
def customer_details() -> st.SearchStrategy[CustomerDetails]:
    """Step 1 of "Add customer", valid: company, address, optional ids."""
    return st.builds(
        CustomerDetails,
        company=names(),
        address=addresses(),
        legal_name=st.none() | names(),
        ein=st.none() | eins(),
        billing_email=st.none() | email_addresses(),
    )


@checked_arguments
def customer_drafts(*, step: DraftStep | str | None = None) -> st.SearchStrategy[CustomerDraft]:
    """Drafts at either step (or at ``step``, a ``DraftStep`` or its value):
    at step 1 with no user or with the one an access request added, at step 2
    with 0 to 3 users."""
    return _customer_drafts(_member(DraftStep, step, "step"))


@st.composite
def _customer_drafts(draw: st.DrawFn, step: DraftStep | None) -> CustomerDraft:
    # The step and the number of users first: a choice drawn after the
    # partner and the time falls on its first option far more often than
    # its share.
    at = step if step is not None else draw(st.sampled_from(DraftStep))
    count = draw(st.integers(0, 1 if at is DraftStep.DETAILS else 3))
    partner = draw(partners(syncs_customers=False, max_team=1, max_tags=0))
    draft = CustomerDraft.start(partner)
    # Started at a drawn time, not the clock's, so that an example replays.
    draft = attrs.evolve(draft, started_at=draw(aware_datetimes()))
    if at is DraftStep.DETAILS:
        # As AccessRequest.start_customer opens it: the person already added.
        return attrs.evolve(draft, users=draw(_unique_users(count, count)))
    details = draw(customer_details())
    draft = attrs.evolve(draft, details=details)
    for user in draw(_unique_users(count, count)):
        draft = draft.add_user(
            first_name=user.first_name,
            last_name=user.last_name,
            email=user.email,
            notifications=user.notifications,
        )
    return draft


@checked_arguments
def customers(
    partner: Partner | None = None,
    *,
    min_users: int = 1,
    max_users: int = 4,
    synced: bool | None = None,
    status: CustomerStatus | str | None = None,
) -> st.SearchStrategy[Customer]:
    """Customers of ``partner`` (or of a new one) with ``min_users`` (at least
    1: a customer always has a user) to ``max_users`` users, any status (or
    ``status``, a ``CustomerStatus`` or its value), manual or synced as
    ``synced`` says (by default, synced if and only if an integration of the
    partner syncs customers: the stores take a new customer added by hand
    only then, and a new synced one only from such an integration, C6), with
    tags from the partner's catalog.

    A synced customer's reference names one of the partner's integrations
    that sync customers; for a partner with none, another system, as a
    customer synced before its integration was disconnected keeps it (C10:
    a reference never changes)."""
    low = _whole(min_users, "min_users", low=1)
    high = _whole(max_users, "max_users")
    if high < low:
        raise InvalidArgument(f"max_users={high} must be at least min_users={low}")
    return _customers(
        _instance(Partner, partner, "partner"),
        min_users=low,
        max_users=high,
        synced=_flag(synced, "synced"),
        status=_member(CustomerStatus, status, "status"),
    )


_CARD_FEE_EXCEPTIONS = st.none() | st.sampled_from(CardFeeBearer)


def _draw_bare_partner(draw: st.DrawFn) -> Partner:
    """A new partner with only what a customer keeps of it: its id, 0 to 4
    tags (their ids) and integrations. Fewer draws than :func:`partners`,
    so that a failing customer shrinks in seconds."""
    partner = _draw_partner(draw, "Northwind IT", None, None)
    for number in range(1, draw(st.integers(0, 4)) + 1):
        partner = partner.add_tag(name=f"Tag {number}", colour="#336699")
    return _connect(partner, draw(_INTEGRATIONS))


def _draw_customer(
    draw: st.DrawFn,
    partner: Partner | None,
    *,
    min_users: int,
    max_users: int,
    synced: bool | None,
    status: CustomerStatus | None,
) -> Customer:
    """A customer, drawn with the caller's ``draw`` (no new strategy to
    validate on every draw of a composite that needs one)."""
    if partner is None:
        partner = _draw_bare_partner(draw)
    details = draw(customer_details())
    users = tuple(draw(_unique_users(min_users, max_users)))
    if synced is None:
        synced = partner.syncs_customers
    syncing = sorted(i.system for i in partner.integrations if i.syncs_customers)
    ref = (
        None
        if not synced
        else ExternalRef(draw(st.sampled_from(syncing)), draw(_external_ids))
        if syncing
        else draw(external_refs())
    )
    tag_ids = frozenset(t.id for t in partner.tags if draw(st.booleans()))
    return Customer(
        id=CustomerId.new(),
        partner_id=partner.id,
        company=details.company,
        address=details.address,
        users=users,
        legal_name=details.legal_name,
        ein=details.ein,
        billing_email=details.billing_email,
        tags=tag_ids,
        status=draw(st.sampled_from(CustomerStatus)) if status is None else status,
        external_ref=ref,
        card_fee_exception=draw(_CARD_FEE_EXCEPTIONS),
        created_at=draw(aware_datetimes()),
        version=draw(st.integers(0, 5)),
    )


_customers = st.composite(_draw_customer)


@checked_arguments
def access_requests(partner: Partner | None = None) -> st.SearchStrategy[AccessRequest]:
    """Access requests to ``partner`` (or to a new one), pending or resolved
    by one of the partner's Admins and Sub-Admins (C9); to a partner with
    neither (one with no team yet), pending."""
    return _access_requests(_instance(Partner, partner, "partner"))


@st.composite
def _access_requests(draw: st.DrawFn, partner: Partner | None) -> AccessRequest:
    if partner is None:
        partner = draw(partners())
    request = AccessRequest.open(
        partner,
        email=draw(email_addresses()),
        first_name=draw(st.none() | names(max_size=30)),
        last_name=draw(st.none() | names(max_size=30)),
    )
    # Made at a drawn time, not the clock's, so that an example replays.
    requested_at = draw(aware_datetimes())
    request = _keep_events(attrs.evolve(request, requested_at=requested_at), request)
    resolvers = [m.id for m in partner.team if m.may(Action.APPROVE_ACCESS_REQUESTS)]
    if not resolvers:
        return request
    status = draw(st.sampled_from(AccessRequestStatus))
    if status is AccessRequestStatus.PENDING:
        return request
    return attrs.evolve(
        request,
        status=status,
        resolved_by=draw(st.sampled_from(resolvers)),
        resolved_at=_later(draw, requested_at),
        customer_id=CustomerId.new() if status is AccessRequestStatus.APPROVED else None,
    )


# What each kind of event names: the aggregate's id, and the fields that change.
_CUSTOMER_CHANGES = ("company", "address", "users", "tags", "status", "billing_email")
_INVOICE_CHANGES = (
    "status",
    "total",
    "amount_paid",
    "balance",
    "due_date",
    "lines",
    "fees",
    "memo",
    "paid_in_source",
)
_PAYMENT_CHANGES = ("status", "settled_at", "fees")
_METHOD_CHANGES = ("methods", "default_id")


def _event_subject(kind: type[Event]) -> tuple[str, tuple[str, ...]]:
    """The id prefix of the aggregate an event of ``kind`` names, and the
    fields it may list as changed."""
    topic = kind.topic
    if topic.startswith("invoice_"):
        return InvoiceId.prefix, _INVOICE_CHANGES
    if "payment_method" in topic:
        # A customer's book of payment methods is named by the customer.
        return CustomerId.prefix, _METHOD_CHANGES
    if topic.startswith("payment_"):
        return PaymentId.prefix, _PAYMENT_CHANGES
    return CustomerId.prefix, _CUSTOMER_CHANGES


def _events_of(kind: type[Event]) -> st.SearchStrategy[Event]:
    prefix, changes = _event_subject(kind)
    # The changes first, and their number before them: a list drawn after
    # the ids and the time is empty far more often than its share.
    return st.builds(
        kind,
        changes=st.integers(0, min(3, len(changes)))
        .flatmap(lambda n: st.lists(st.sampled_from(changes), unique=True, min_size=n, max_size=n))
        .map(tuple),
        partner_id=entity_ids(PartnerId),
        aggregate_id=st.uuids(version=4).map(lambda u: f"{prefix}_{u.hex}"),
        occurred_at=aware_datetimes(),
    )


@typing.overload
def events() -> st.SearchStrategy[Event]: ...
@typing.overload
def events(kind: type[_V]) -> st.SearchStrategy[_V]: ...
@typing.overload
def events(kind: None) -> st.SearchStrategy[Event]: ...


@checked_arguments
def events(kind: type[Event] | None = None) -> st.SearchStrategy[Any]:
    """Domain events of every topic (or of ``kind``, one event class; ``Event``
    itself is every topic), each naming an aggregate of its kind (``inv_...``
    for ``invoice_paid``)."""
    if not (kind is None or (isinstance(kind, type) and issubclass(kind, Event))):
        raise InvalidArgument(f"kind must be an event class such as InvoicePaid (got {kind!r})")
    if kind is None or kind is Event:
        # Read when drawn: a service's own event classes register later.
        return st.deferred(
            lambda: st.sampled_from(sorted(EVENT_TYPES.values(), key=lambda k: k.topic))
        ).flatmap(_events_of)
    return _events_of(kind)


@checked_arguments
def roles() -> st.SearchStrategy[Role]:
    """Team members' roles: any member of ``Role``."""
    return st.sampled_from(Role)


_register(Role, roles)


def _field_errors() -> st.SearchStrategy[FieldError]:
    return st.builds(
        FieldError,
        path=st.sampled_from(["", "company", "users[1].email", "address.postal_code"]),
        code=st.sampled_from(["blank", "missing", "invalid_email", "wrong_type", "C5"]),
        message=names(),
    )


# A ValidationError holds at least one field error, which Hypothesis' own
# guess at its arguments does not know.
_register(
    ValidationError, lambda: st.lists(_field_errors(), min_size=1, max_size=3).map(ValidationError)
)
_register(
    OperandError,
    lambda: st.builds(OperandError, path=st.sampled_from(["other", "factor"]), message=names()),
)
_register(
    ArgumentError, lambda: st.lists(_field_errors(), min_size=1, max_size=3).map(ArgumentError)
)
_register(Action, lambda: st.sampled_from(Action))
_register(CardFeeBearer, lambda: st.sampled_from(CardFeeBearer))
_register(CustomerStatus, lambda: st.sampled_from(CustomerStatus))
_register(DraftStep, lambda: st.sampled_from(DraftStep))
_register(AccessRequestStatus, lambda: st.sampled_from(AccessRequestStatus))
_register(Rounding, lambda: st.sampled_from(Rounding))
_register(TeamMember, team_members)
_register(Tag, tags)
_register(CardFeePolicy, card_fee_policies)
_register(Integration, integrations)
_register(Partner, partners)
_register(CustomerUser, customer_users)
_register(CustomerDetails, customer_details)
_register(CustomerDraft, customer_drafts)
_register(Customer, customers)
_register(AccessRequest, access_requests)
_register(Event, events)


# -- invoices and payments ------------------------------------------------------------


_MAX_UNIT_UNITS = 10**9


@checked_arguments
def line_items(
    currency: str | Currency = "USD", *, min_unit_units: int = 0
) -> st.SearchStrategy[LineItem]:
    """Line items in ``currency``: unicode descriptions, quantities from 1 to
    the maximum, unit amounts from zero (or ``min_unit_units``, at most
    10**9) to 10**9 minor units."""
    low = _whole(min_unit_units, "min_unit_units", low=0)
    if low > _MAX_UNIT_UNITS:
        raise InvalidArgument(
            f"min_unit_units must be at most 10**9, the largest unit amount drawn (got {low})"
        )
    return _line_items(_currency(currency).code, low)


@functools.cache
def _line_items(currency: str, low: int) -> st.SearchStrategy[LineItem]:
    return st.builds(
        LineItem,
        description=names(max_size=60),
        quantity=st.one_of(st.integers(1, 100), st.sampled_from([1, 2, MAX_QUANTITY])),
        unit_amount=money(currency, min_units=low, max_units=_MAX_UNIT_UNITS),
    )


@checked_arguments
def fees(
    currency: str | Currency = "USD", kind: FeeKind | str | None = None
) -> st.SearchStrategy[Fee]:
    """Fee lines of every kind (or ``kind``, a ``FeeKind`` or its value),
    covered by either side. An invoice takes every kind but ``card``, a
    payment's own (I8): :func:`invoices` draws its fees without it."""
    wanted = _member(FeeKind, kind, "kind")
    return _fees(_currency(currency).code, tuple(FeeKind) if wanted is None else (wanted,))


# An invoice's fee lines: every kind but the card fee, which is worked out on
# the payment (I8).
_INVOICE_FEE_KINDS = tuple(kind for kind in FeeKind if kind is not FeeKind.CARD)


@functools.cache
def _fees(currency: str, kinds: tuple[FeeKind, ...]) -> st.SearchStrategy[Fee]:
    return st.builds(
        Fee.new,
        st.sampled_from(kinds),
        money(currency, min_units=1, max_units=10**7),
        name=st.none() | names(max_size=40),
        covered_by_customer=st.booleans(),
    )


@checked_arguments
def applied_payments(currency: str | Currency = "USD") -> st.SearchStrategy[AppliedPayment]:
    """A payment's part of an invoice, counted or given back."""
    code = _currency(currency).code
    return st.builds(
        AppliedPayment,
        entity_ids(PaymentId),
        money(code, min_units=1, max_units=10**9),
        st.booleans(),
    )


@checked_arguments
def allocations(currency: str | Currency = "USD") -> st.SearchStrategy[Allocation]:
    """A payment's allocation to one invoice, with a card-fee share."""
    code = _currency(currency).code
    return st.builds(
        Allocation,
        entity_ids(InvoiceId),
        money(code, min_units=1, max_units=10**9),
        money(code, min_units=0, max_units=10**6),
    )


def _an_id(draw: st.DrawFn, cls: type[_I]) -> _I:
    return draw(entity_ids(cls))


def _invoice_editor(partner: Partner) -> tuple[Partner, TeamMember]:
    for member in partner.team:
        if member.may(Action.EDIT_INVOICES):
            return partner, member
    partner = partner.add_team_member(
        name="Invoice Editor", email="invoices@northwind.example", role=Role.MEMBER
    )
    return partner, partner.team[-1]


def _units(draw: st.DrawFn, low: int, high: int) -> int:
    # The range first, so that a failing amount shrinks towards ``low``.
    return draw(st.one_of(st.integers(low, high), st.sampled_from([low, high])))


def _paid_in_source(draw: st.DrawFn, invoice: Invoice, *, full: bool) -> Invoice:
    """A synced invoice, sometimes with a part of its total (or, ``full``,
    perhaps all of it) paid or credited in its source, through the sync."""
    total = invoice.total.minor_units
    high = total if full else total - 1
    if not invoice.is_synced or high < 1 or not draw(st.booleans()):
        return invoice
    units = _units(draw, 1, high)
    return invoice.apply_sync(paid_in_source=Money.from_minor_units(units, invoice.currency))


def _take_payments(
    draw: st.DrawFn, invoice: Invoice, *, full: bool, partly: bool | None = None
) -> Invoice:
    """Payments applied through the invoice's own command (on a synced one,
    after a part paid in its source, sometimes): some given back, then either
    all of the balance (``full``) or, if ``partly`` (drawn when None), a part."""
    invoice = _paid_in_source(draw, invoice, full=full)
    currency = invoice.currency
    if not invoice.balance:
        return invoice  # all of it paid in the source
    if draw(st.booleans()):
        given_back = PaymentId.new()
        units = _units(draw, 1, invoice.balance.minor_units)
        invoice = invoice._apply_payment(given_back, Money.from_minor_units(units, currency))
        invoice = invoice._release_payment(given_back)
    balance = invoice.balance.minor_units
    if full:
        for part in Money.from_minor_units(balance, currency).split(draw(st.integers(1, 3))):
            if part.is_positive:
                invoice = invoice._apply_payment(PaymentId.new(), part)
    elif balance > 1 and (draw(st.booleans()) if partly is None else partly):
        units = _units(draw, 1, balance - 1)
        invoice = invoice._apply_payment(PaymentId.new(), Money.from_minor_units(units, currency))
    return invoice


@checked_arguments
def invoices(
    partner: Partner | None = None,
    customer: Customer | None = None,
    *,
    synced: bool | None = None,
    status: InvoiceStatus | str | None = None,
) -> st.SearchStrategy[Invoice]:
    """Invoices of ``customer`` (of ``partner``; new ones by default), issued
    by a team member or synced in (or as ``synced`` says), with 1 to 4 lines
    and up to 2 fees (of every kind but ``card``, I8), in every status (or
    ``status``, an ``InvoiceStatus`` or its value): open and untouched or
    partly paid, paid in one to three parts, void, archived; some with a
    payment given back; synced ones sometimes partly or wholly paid in their
    source (``paid_in_source``). A ``customer`` comes with its ``partner``.

    An invoice is one the customer could have now, or had before: one of an
    archived customer was issued while it was active (C8 refuses new ones;
    a store refuses it as new, so store such an invoice with its customer
    active); a synced one names an integration of the partner that syncs
    invoices, or, for a partner with none, a system since disconnected; one
    issued by hand names a member of the team who may edit invoices, or,
    for a team with none, someone who has since left it."""
    _instance(Partner, partner, "partner")
    _instance(Customer, customer, "customer")
    if customer is not None and (partner is None or customer.partner_id != partner.id):
        raise InvalidArgument(
            f"customer {customer.id} needs its partner: pass partner= the Partner "
            f"with id {customer.partner_id}"
        )
    return _invoices(
        partner, customer, _flag(synced, "synced"), _member(InvoiceStatus, status, "status")
    )


_INVOICE_NUMBERS = st.one_of(st.integers(1, 10**9).map(str), names(max_size=20))
_MEMOS = st.none() | names(max_size=80)
_INVOICE_DAYS = st.dates(dt.date(2000, 1, 1), dt.date(2099, 1, 1))


def _bare_customer(partner: Partner) -> Customer:
    """A customer of ``partner``, of whom an invoice keeps only the id."""
    return Customer(
        id=CustomerId.new(),
        partner_id=partner.id,
        company="Globex",
        address=Address("1 Main St", "Albany", "NY", "12207", "US"),
        users=(CustomerUser.new(first_name="Ann", last_name="Lee", email="ann@globex.example"),),
    )


# Each status, and open and partly paid as often as each: drawn as a 50/50
# choice among open invoices, it came up in only one invoice in 10 or 20.
_ANY_STATUS = st.sampled_from(
    [
        (InvoiceStatus.OPEN, False),
        (InvoiceStatus.OPEN, True),
        (InvoiceStatus.PAID, None),
        (InvoiceStatus.VOID, None),
        (InvoiceStatus.ARCHIVED, None),
    ]
)


def _draw_invoice(
    draw: st.DrawFn,
    partner: Partner | None,
    customer: Customer | None,
    synced: bool | None,
    status: InvoiceStatus | None,
) -> Invoice:
    """An invoice, drawn with the caller's ``draw`` (no new strategy to
    validate on every draw of a composite that needs one)."""
    # The status first: a choice drawn after the lines, dates and names falls
    # on its first option far more often than its share.
    partly = None  # with status="open", drawn: partly paid as often as not
    if status is None:
        wanted, partly = draw(_ANY_STATUS)
    else:
        wanted = status
    if wanted is InvoiceStatus.ARCHIVED:
        before = draw(st.sampled_from([InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.VOID]))
    else:
        before = wanted
    if partner is None:
        # Of its partner, an invoice keeps the id, the currency, and the
        # integration it is synced from (connected below if need be).
        partner = _draw_partner(draw, "Northwind IT", None, None)
    partner, member = _invoice_editor(partner)
    if customer is None:
        customer = _bare_customer(partner)
    if not customer.is_active:
        customer = customer.restore()
    code = partner.currency.code
    lines = [draw(_line_items(code, 1))]
    lines += draw(_lists(_line_items(code, 0), 3))
    fee_lines = draw(_lists(_fees(code, _INVOICE_FEE_KINDS), 2))
    number = draw(_INVOICE_NUMBERS)
    memo = draw(_MEMOS)
    today = draw(_INVOICE_DAYS)
    if synced is None:
        synced = draw(st.booleans())
    if synced:
        systems = [i.system for i in partner.integrations if i.syncs_invoices]
        if not systems:
            free = [s for s in _SYSTEMS if s not in {i.system for i in partner.integrations}]
            system = draw(st.sampled_from(free))
            partner = partner.connect_integration(system, syncs_invoices=True)
            systems = [system]
        ref = ExternalRef(draw(st.sampled_from(systems)), str(draw(st.integers(1, 10**9))))
        # Synced invoices keep the source's dates, even a due date in the past.
        invoice = Invoice.from_sync(
            partner,
            customer,
            external_ref=ref,
            number=number,
            lines=lines,
            fees=fee_lines,
            issue_date=today,
            due_date=today + dt.timedelta(days=draw(st.integers(-30, 90))),
            memo=memo,
        )
    else:
        invoice = Invoice.issue(
            partner,
            customer,
            by=member,
            number=number,
            lines=lines,
            fees=fee_lines,
            due_date=today + dt.timedelta(days=draw(st.integers(0, 120))),
            today=today,
            memo=memo,
        )
    if before is InvoiceStatus.PAID:
        invoice = _take_payments(draw, invoice, full=True)
    elif before is InvoiceStatus.OPEN and wanted is InvoiceStatus.OPEN:
        invoice = _take_payments(draw, invoice, full=False, partly=partly)
    elif before is InvoiceStatus.VOID:
        invoice = invoice.void(partner)
    if wanted is InvoiceStatus.ARCHIVED:
        invoice = invoice.archive(partner)
    # Made on its day at a drawn time, not the clock's, so that an example replays.
    made = dt.datetime.combine(today, draw(st.times()), tzinfo=dt.UTC)
    invoice = _keep_events(attrs.evolve(invoice, created_at=made), invoice, made)
    version = draw(st.integers(0, 5))
    # A stored invoice (version > 0) carries no pending events.
    return attrs.evolve(invoice, version=version) if version else invoice


_invoices = st.composite(_draw_invoice)


def _later(draw: st.DrawFn, when: dt.datetime) -> dt.datetime:
    return when + dt.timedelta(minutes=draw(st.integers(1, 60 * 24 * 60)))


@checked_arguments
def payments(*, status: PaymentStatus | str | None = None) -> st.SearchStrategy[Payment]:
    """Payments of 1 to 3 open invoices of one customer, by any method of
    the partner's currency (USD or CAD), partial or in full, in every status
    (or ``status``, a ``PaymentStatus`` or its value): processing, succeeded
    (settled or not), failed, returned, charged back, refunded. Built through
    :func:`pay_invoices` and the functions that follow it."""
    return _payments(_member(PaymentStatus, status, "status"))


_IDEMPOTENCY_KEYS = st.text(
    alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=40
)


@st.composite
def _payments(draw: st.DrawFn, status: PaymentStatus | None) -> Payment:
    # The status and the method first: a choice drawn after the ids, amounts
    # and times falls on its first option far more often than its share.
    wanted = draw(st.sampled_from(PaymentStatus)) if status is None else status
    # The partner's details do not matter to a payment: only its currency and
    # card-fee policy do, so it is built small (and fast).
    partner = _draw_partner(draw, "Northwind IT", None, None)
    methods = [m for m in PaymentMethodType if m.available_in(partner.currency)]
    method = draw(st.sampled_from(methods))
    partner = partner.add_team_member(
        name="Ada Admin", email="ada@northwind.example", role=Role.ADMIN
    )
    policy = draw(_card_fee_policies(partner.currency.code))
    partner = partner.set_card_fees(
        bearer=policy.bearer, rate_percent=policy.rate_percent, fixed=policy.fixed
    )
    # Of its customer, a payment keeps the id, the payer and whether the
    # customer is an exception to the partner's card-fee policy.
    customer = attrs.evolve(_bare_customer(partner), card_fee_exception=draw(_CARD_FEE_EXCEPTIONS))
    chosen = [
        _draw_invoice(draw, partner, customer, False, InvoiceStatus.OPEN)
        for _ in range(draw(st.integers(1, 3)))
    ]
    amounts = {
        invoice.id: Money.from_minor_units(
            _units(draw, 1, invoice.balance.minor_units), invoice.currency
        )
        for invoice in chosen
    }
    when = draw(aware_datetimes())
    payment, touched = pay_invoices(
        partner,
        customer,
        chosen,
        payer=customer.users[0],
        method=method,
        idempotency_key=draw(_IDEMPOTENCY_KEYS),
        amounts=amounts,
        at=when,
    )
    if wanted is PaymentStatus.FAILED and (not method.is_bank_debit or draw(st.booleans())):
        payment, touched = fail_payment(payment, touched, at=_later(draw, when))
    elif wanted is PaymentStatus.CHARGED_BACK and method.is_bank_debit and draw(st.booleans()):
        payment, touched = return_payment(
            payment, touched, ReturnKind.UNAUTHORIZED, at=_later(draw, when)
        )
    elif wanted is not PaymentStatus.PROCESSING:
        when = _later(draw, when)
        payment = payment.succeed(when)
        if wanted is PaymentStatus.REFUNDED or draw(st.booleans()):
            when = _later(draw, when)
            payment = payment.settle(when)
        if wanted is PaymentStatus.REFUNDED:
            payment, touched = refund_payment(payment, touched, at=_later(draw, when))
        elif wanted is PaymentStatus.FAILED:
            payment, touched = return_payment(
                payment, touched, ReturnKind.STANDARD, at=_later(draw, when)
            )
        elif wanted is PaymentStatus.CHARGED_BACK and method.is_bank_debit:
            payment, touched = return_payment(
                payment, touched, ReturnKind.UNAUTHORIZED, at=_later(draw, when)
            )
        elif wanted is PaymentStatus.CHARGED_BACK:
            payment, touched = charge_back_payment(payment, touched, at=_later(draw, when))
    version = draw(st.integers(0, 5))
    return attrs.evolve(payment, version=version) if version else payment


_METHOD_NAMES = (
    "Visa",
    "Mastercard",
    "American Express",
    "Discover",
    "Interac",
    "Chase checking",
    "RBC chequing",
    "Operating account",
)


def _display_names() -> st.SearchStrategy[str]:
    middle = st.text(alphabet=st.characters(categories=["L", "Zs"]), max_size=20)
    return st.one_of(
        st.sampled_from(_METHOD_NAMES),
        st.builds(lambda a, m, b: a + m + b, _LETTERS, middle, _LETTERS),
    )


@checked_arguments
def payment_methods() -> st.SearchStrategy[PaymentMethod]:
    """Saved cards and bank accounts: a display name and the last 4 digits."""
    return st.builds(
        PaymentMethod,
        id=entity_ids(PaymentMethodId),
        type=st.sampled_from(PaymentMethodType),
        display_name=_display_names(),
        last4=st.text(alphabet=string.digits, min_size=4, max_size=4),
        status=st.sampled_from(PaymentMethodStatus),
        added_at=aware_datetimes(),
    )


@checked_arguments
@st.composite
def customer_payment_methods(draw: st.DrawFn) -> CustomerPaymentMethods:
    """A customer's saved methods, built by adding, archiving, replacing and
    choosing the default through the real commands."""
    # The number of changes first: drawn after the ids and the time, it is 0
    # far more often than its share.
    steps = draw(st.integers(0, 4))
    book = CustomerPaymentMethods(
        partner_id=_an_id(draw, PartnerId), customer_id=_an_id(draw, CustomerId)
    )
    # Each change at a drawn time, not the clock's, so that an example
    # replays: mostly later than the last, sometimes at the same time or
    # earlier (a processor's report arriving late), so that the methods'
    # order in the book and their times added do not always agree.
    when = draw(aware_datetimes())
    for _ in range(steps):
        step = draw(st.sampled_from(["later", "later", "later", "same", "earlier"]))
        if step == "later":
            when = _later(draw, when)
        elif step == "earlier":
            when = when - dt.timedelta(minutes=draw(st.integers(1, 60 * 24 * 60)))
        action = draw(st.sampled_from(["add", "add", "archive", "replace", "default"]))
        active = book.active
        if action == "add" or not active:
            book = book.add(
                type=draw(st.sampled_from(PaymentMethodType)),
                display_name=draw(_display_names()),
                last4=draw(st.text(alphabet=string.digits, min_size=4, max_size=4)),
                make_default=draw(st.booleans()),
                at=when,
            )
            continue
        target = draw(st.sampled_from(active)).id
        if action == "archive":
            book = book.archive(target, at=when)
        elif action == "replace":
            book = book.replace(
                target,
                type=draw(st.sampled_from(PaymentMethodType)),
                display_name=draw(_display_names()),
                last4=draw(st.text(alphabet=string.digits, min_size=4, max_size=4)),
                at=when,
            )
        else:
            book = book.set_default(target, at=when)
    version = draw(st.integers(0, 5))
    return attrs.evolve(book, version=version) if version else book


@checked_arguments
@st.composite
def scheduled_payments(draw: st.DrawFn) -> ScheduledPayment:
    """Scheduled payments of an invoice, for its balance or an amount, in
    every status."""
    status = draw(st.sampled_from(ScheduledPaymentStatus))
    return ScheduledPayment(
        id=_an_id(draw, ScheduledPaymentId),
        partner_id=_an_id(draw, PartnerId),
        customer_id=_an_id(draw, CustomerId),
        invoice_id=_an_id(draw, InvoiceId),
        user_id=_an_id(draw, UserId),
        payment_method_id=_an_id(draw, PaymentMethodId),
        pay_on=draw(st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31))),
        amount=draw(
            st.none()
            | st.sampled_from(["USD", "CAD"]).flatmap(
                lambda c: money(c, min_units=1, max_units=10**9)
            )
        ),
        status=status,
        payment_id=(
            _an_id(draw, PaymentId) if status is ScheduledPaymentStatus.PROCESSED else None
        ),
        created_at=draw(aware_datetimes()),
        version=draw(st.integers(0, 5)),
    )


@checked_arguments
def impersonations() -> st.SearchStrategy[Impersonation]:
    """A team member's read-only look at a customer's invoices."""
    return st.builds(
        Impersonation,
        partner_id=entity_ids(PartnerId),
        customer_id=entity_ids(CustomerId),
        team_member_id=entity_ids(TeamMemberId),
    )


for _enum in (
    InvoiceStatus,
    FeeKind,
    PaymentStatus,
    PaymentMethodType,
    PaymentMethodStatus,
    ReturnKind,
    ScheduledPaymentStatus,
    InvoiceAccess,
):
    _register(_enum, lambda _enum=_enum: st.sampled_from(_enum))  # type: ignore[misc]
_register(LineItem, line_items)
_register(Fee, fees)
_register(AppliedPayment, applied_payments)
_register(Allocation, allocations)
_register(Invoice, invoices)
_register(Payment, payments)
_register(PaymentMethod, payment_methods)
_register(CustomerPaymentMethods, customer_payment_methods)
_register(ScheduledPayment, scheduled_payments)
_register(Impersonation, impersonations)


# -- ports ------------------------------------------------------------------------------


@checked_arguments
def outbox_messages() -> st.SearchStrategy[OutboxMessage]:
    """Events as the outbox lists them, at positions from 1 up."""
    return st.builds(OutboxMessage, position=st.integers(1, 2**63 - 1), event=events())


def _page_order(item: object) -> tuple[str, str] | None:
    if isinstance(item, Customer):
        return customer_sort_key(item), item.id.value
    if isinstance(item, Invoice):
        return invoice_sort_key(item), item.id.value
    return None


def _cursor(item: object, position: int) -> str:
    if isinstance(item, Customer):
        return customer_cursor(item)
    if isinstance(item, Invoice):
        return invoice_cursor(item)
    return Cursor(Listing.CUSTOMERS, str(position), f"{CustomerId.prefix}_{position}").encode()


@checked_arguments
def cursors() -> st.SearchStrategy[Cursor]:
    """Cursors of both listings, each the key and id a row could give: a
    case-folded company name (of a name :func:`customers` could give) and a
    customer id, or a due date, a space and an invoice number (as
    :func:`invoices` gives one), and an invoice id."""
    # The keys the stores' key functions (customer_sort_key,
    # invoice_sort_key) give for the names and numbers the kit draws.
    company = names().map(str.casefold)
    numbered = st.tuples(st.dates(), _INVOICE_NUMBERS)
    return st.one_of(
        st.builds(
            Cursor,
            st.just(Listing.CUSTOMERS),
            company,
            entity_ids(CustomerId).map(str),
        ),
        st.builds(
            Cursor,
            st.just(Listing.INVOICES),
            numbered.map(lambda pair: f"{pair[0].isoformat()} {pair[1]}"),
            entity_ids(InvoiceId).map(str),
        ),
    )


@checked_arguments
def page_requests() -> st.SearchStrategy[PageRequest]:
    """Page requests of every limit (1 to ``MAX_PAGE_SIZE``), with no cursor,
    a cursor to page after or one to page before."""
    limits = st.integers(1, MAX_PAGE_SIZE)
    return st.one_of(
        st.builds(PageRequest, limits),
        st.builds(PageRequest, limits, after=cursors()),
        st.builds(PageRequest, limits, before=cursors()),
    )


@checked_arguments
def pages(items: st.SearchStrategy[_T], *, max_size: int = 5) -> st.SearchStrategy[Page[_T]]:
    """Pages of up to ``max_size`` of ``items``, as a listing gives them:
    each item once (one of each id, or, for items without one, of each
    value, hashable or not), customers and invoices in their listing's
    order, the cursors those of the first and last item, and an empty page
    never both after and before others. ``st.from_type(Page[Customer])``
    gives pages of one partner's customers (each with at most 2 users), as
    a listing does, and ``st.from_type(Page[Invoice])`` pages of up to 3
    invoices of one customer; ``st.from_type(Page[X])`` for any other ``X``
    gives ``pages(st.from_type(X))``."""
    if not isinstance(items, st.SearchStrategy):
        raise InvalidArgument(f"items must be a strategy (got {items!r})")
    return _pages(items, _whole(max_size, "max_size", low=0))


@st.composite
def _pages(draw: st.DrawFn, items: st.SearchStrategy[_T], max_size: int) -> Page[_T]:
    found = _once(draw(st.lists(items, max_size=max_size)))
    keys = [key for key in map(_page_order, found) if key is not None]
    if found and len(keys) == len(found):
        found = [item for _, item in sorted(zip(keys, found, strict=True), key=lambda p: p[0])]
    has_next, has_previous = draw(st.booleans()), draw(st.booleans())
    if not found and has_next:
        # An empty page is past the last row, or before the first.
        has_previous = False
    return Page(
        items=tuple(found),
        start_cursor=_cursor(found[0], 0) if found else None,
        end_cursor=_cursor(found[-1], len(found) - 1) if found else None,
        has_next_page=has_next,
        has_previous_page=has_previous,
    )


@st.composite
def _customer_listing(draw: st.DrawFn) -> Page[Customer]:
    # A listing is one partner's.
    partner = draw(partners(max_team=1, max_tags=2))
    return draw(pages(customers(partner, max_users=2)))


@st.composite
def _invoice_listing(draw: st.DrawFn) -> Page[Invoice]:
    # A listing is one partner's; these invoices are one customer's.
    partner = draw(partners(max_team=1, max_tags=0))
    customer = _draw_customer(draw, partner, min_users=1, max_users=1, synced=None, status=None)
    return draw(pages(invoices(partner, customer), max_size=3))


_listings: dict[type[Any], Callable[[], st.SearchStrategy[Page[Any]]]] = {
    Customer: _customer_listing,
    Invoice: _invoice_listing,
}


def _identity(item: object) -> object:
    """What a listing shows once: an aggregate's id, or the item itself."""
    found = getattr(item, "id", None)
    return item if found is None else found


def _once(items: list[_T]) -> list[_T]:
    """``items`` without those a listing would not show again: told apart by
    equality, not by hash, so that an item may be a list."""
    shown: list[object] = []
    kept: list[_T] = []
    for item in items:
        key = _identity(item)
        if key not in shown:
            shown.append(key)
            kept.append(item)
    return kept


_register(OutboxMessage, outbox_messages)
_register(Cursor, cursors)
_register(PageRequest, page_requests)
