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
import string
from collections.abc import Callable
from typing import Any

import attrs

try:
    from hypothesis import strategies as st
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "altpay_core.testing needs Hypothesis: pip install 'altpay-core[testing]'"
    ) from error

import stdnum.us.ein

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
from altpay_core.events import EVENT_TYPES, Event
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
    "aware_datetimes",
    "card_fee_policies",
    "currencies",
    "customer_details",
    "customer_drafts",
    "customer_users",
    "customers",
    "eins",
    "email_addresses",
    "entity_ids",
    "events",
    "external_refs",
    "for_type",
    "integrations",
    "money",
    "names",
    "partners",
    "register",
    "roles",
    "tags",
    "team_members",
]

_STRATEGIES: dict[type[Any], Callable[[], st.SearchStrategy[Any]]] = {}


def register(cls: type[Any], make: Callable[[], st.SearchStrategy[Any]]) -> None:
    """Say how to generate ``cls``: ``make()`` returns its strategy."""
    _STRATEGIES[cls] = make


def for_type(cls: type[Any]) -> Any:
    """The strategy for ``cls``, or ``NotImplemented`` for a type not known here."""
    make = _STRATEGIES.get(cls)
    if make is None:
        return NotImplemented
    return make()


# -- money ------------------------------------------------------------------

_EDGE_CURRENCIES = ("USD", "CAD", "JPY", "BHD", "KWD", "CLF", "EUR")


def currencies() -> st.SearchStrategy[Currency]:
    """Any ISO 4217 currency, the common and the odd (JPY 0, BHD 3, CLF 4) first."""
    return st.one_of(
        st.sampled_from(_EDGE_CURRENCIES).map(Currency),
        st.sampled_from(Currency.all()),
    )


def money(
    currency: str | Currency | None = None,
    *,
    min_units: int | None = None,
    max_units: int | None = None,
) -> st.SearchStrategy[Money]:
    """Amounts of money, in ``currency`` (any when None), as minor units in a range.

    By default they reach zero, negative and huge amounts (up to 10**20 minor
    units either way).
    """
    low = -(10**20) if min_units is None else min_units
    high = 10**20 if max_units is None else max_units
    edges = [u for u in (0, 1, -1, 99, 100, low, high) if low <= u <= high]
    units = (
        st.one_of(st.sampled_from(edges), st.integers(low, high))
        if edges
        else (st.integers(low, high))
    )
    which = currencies() if currency is None else st.just(Currency(str(currency)))
    return st.builds(Money.from_minor_units, units, which)


# -- text -------------------------------------------------------------------

_LETTERS = st.characters(categories=["Lu", "Ll", "Lo"], exclude_characters="\x00")


def names(max_size: int = 40) -> st.SearchStrategy[str]:
    """Non-blank names: unicode letters, digits, spaces and punctuation inside."""
    middle = st.text(
        alphabet=st.characters(categories=["L", "N", "Zs", "Pd", "Po"]),
        max_size=max_size - 2,
    )
    return st.builds(lambda a, m, b: a + m + b, _LETTERS, middle, _LETTERS)


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


def email_addresses() -> st.SearchStrategy[EmailAddress]:
    """Valid email addresses, internationalised ones included."""
    local = st.lists(_LOCAL_ATOM, min_size=1, max_size=3).map(".".join)
    domain = st.builds(
        lambda labels, tld: ".".join([*labels, tld]),
        st.lists(_DOMAIN_LABEL, min_size=1, max_size=2),
        _TLDS,
    )
    return st.builds(lambda lp, d: EmailAddress(f"{lp}@{d}"), local, domain)


_CA_LETTERS = "ABCEGHJKLMNPRSTVWXYZ"


@st.composite
def _us_address(draw: st.DrawFn) -> Address:
    zip5 = draw(st.integers(0, 99_999))
    plus4 = draw(st.none() | st.integers(0, 9_999))
    postal = f"{zip5:05d}" if plus4 is None else f"{zip5:05d}-{plus4:04d}"
    return Address(
        line1=draw(names()),
        line2=draw(st.none() | names()),
        city=draw(names()),
        region=draw(st.sampled_from(US_REGIONS)),
        postal_code=postal,
        country="US",
    )


@st.composite
def _ca_address(draw: st.DrawFn) -> Address:
    region = draw(st.sampled_from(sorted(CA_POSTAL_FIRST_LETTERS)))
    letters = st.sampled_from(_CA_LETTERS)
    digits = st.sampled_from(string.digits)
    first = draw(st.sampled_from(CA_POSTAL_FIRST_LETTERS[region]))
    postal = f"{first}{draw(digits)}{draw(letters)} {draw(digits)}{draw(letters)}{draw(digits)}"
    return Address(
        line1=draw(names()),
        line2=draw(st.none() | names()),
        city=draw(names()),
        region=region,
        postal_code=postal,
        country="CA",
    )


def addresses(country: str | None = None) -> st.SearchStrategy[Address]:
    """US and Canadian addresses (ZIP, ZIP+4, postal codes matching the province)."""
    if country == "US":
        return _us_address()
    if country == "CA":
        return _ca_address()
    return st.one_of(_us_address(), _ca_address())


_EIN_PREFIXES = tuple(f"{p:02d}" for p in range(100) if stdnum.us.ein.is_valid(f"{p:02d}0000001"))


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


def external_refs() -> st.SearchStrategy[ExternalRef]:
    """References to records in a PSA or accounting system."""
    ids = st.one_of(
        st.integers(1, 10**12).map(str),
        st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=36),
    )
    return st.builds(ExternalRef, system=st.sampled_from(_SYSTEMS), id=ids)


def entity_ids(cls: type[EntityId]) -> st.SearchStrategy[EntityId]:
    """Ids of kind ``cls``: fresh ones and short hand-written ones."""
    tail = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=32)
    return st.one_of(
        st.builds(cls.new),
        tail.map(lambda t: cls(f"{cls.prefix}_{t}")),
    )


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
)

register(Currency, currencies)
register(EntityId, lambda: st.sampled_from(_ID_TYPES).flatmap(entity_ids))
register(Money, money)
register(EmailAddress, email_addresses)
register(Address, addresses)
register(EIN, eins)
register(ExternalRef, external_refs)
for _id in _ID_TYPES:
    register(_id, lambda _id=_id: entity_ids(_id))  # type: ignore[misc]


# -- partners ------------------------------------------------------------------


def aware_datetimes() -> st.SearchStrategy[dt.datetime]:
    """Timezone-aware datetimes in UTC, from 2000 to 2100."""
    return st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1)).map(
        lambda d: d.replace(tzinfo=dt.UTC)
    )


def team_members(role: Role | None = None) -> st.SearchStrategy[TeamMember]:
    """Team members of any role (or of ``role``)."""
    return st.builds(
        TeamMember.new,
        name=names(),
        email=email_addresses(),
        role=st.sampled_from(Role) if role is None else st.just(role),
    )


def tags() -> st.SearchStrategy[Tag]:
    """Catalog tags: unicode names, #RRGGBB colours, optional descriptions."""
    return st.builds(
        Tag.new,
        name=names(max_size=30),
        colour=st.integers(0, 0xFFFFFF).map(lambda n: f"#{n:06X}"),
        description=st.none() | names(max_size=60),
    )


def card_fee_policies(currency: str | Currency = "USD") -> st.SearchStrategy[CardFeePolicy]:
    """Card-fee policies: either bearer, rates from 0 to 20%, fixed fees in ``currency``."""
    return st.builds(
        CardFeePolicy,
        st.sampled_from(CardFeeBearer),
        st.decimals(min_value=0, max_value=20, places=2),
        money(currency, min_units=0, max_units=500),
    )


def integrations() -> st.SearchStrategy[Integration]:
    """A connected PSA or accounting system."""
    return st.builds(
        Integration,
        system=st.sampled_from(_SYSTEMS),
        syncs_customers=st.booleans(),
        syncs_invoices=st.booleans(),
    )


@st.composite
def partners(
    draw: st.DrawFn,
    *,
    syncs_customers: bool | None = None,
    max_team: int = 4,
    max_tags: int = 4,
) -> Partner:
    """Partners in the US or Canada with a team (an Admin first), tags and
    integrations. ``syncs_customers=False`` gives one that adds customers by
    hand; ``True``, one whose integration syncs them."""
    partner = Partner.create(name=draw(names()), country=draw(st.sampled_from(["US", "CA"])))
    admin = draw(team_members(Role.ADMIN))
    partner = partner.add_team_member(name=admin.name, email=admin.email, role=admin.role)
    for member in draw(st.lists(team_members(), max_size=max_team - 1)):
        if all(m.email.key != member.email.key for m in partner.team):
            partner = partner.add_team_member(
                name=member.name, email=member.email, role=member.role
            )
    for tag in draw(st.lists(tags(), max_size=max_tags)):
        if all(t.key != tag.key for t in partner.tags):
            partner = partner.add_tag(name=tag.name, colour=tag.colour, description=tag.description)
    wanted = draw(st.lists(integrations(), max_size=2, unique_by=lambda i: i.system))
    for integration in wanted:
        partner = partner.connect_integration(
            integration.system,
            syncs_customers=integration.syncs_customers,
            syncs_invoices=integration.syncs_invoices,
        )
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
    policy = draw(card_fee_policies(partner.currency))
    partner = partner.set_card_fees(
        bearer=policy.bearer, rate_percent=policy.rate_percent, fixed=policy.fixed
    )
    return attrs.evolve(partner, created_at=draw(aware_datetimes()))


# -- customers ---------------------------------------------------------------------


def customer_users() -> st.SearchStrategy[CustomerUser]:
    """People who log in to a customer: unicode names, international emails."""
    return st.builds(
        CustomerUser.new,
        first_name=names(max_size=30),
        last_name=names(max_size=30),
        email=email_addresses(),
        notifications=st.booleans(),
    )


def _unique_users(min_size: int, max_size: int) -> st.SearchStrategy[list[CustomerUser]]:
    return st.lists(
        customer_users(), min_size=min_size, max_size=max_size, unique_by=lambda u: u.email.key
    )


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


@st.composite
def customer_drafts(draw: st.DrawFn, *, step: DraftStep | None = None) -> CustomerDraft:
    """Drafts at either step (or at ``step``), with 0 to 3 users."""
    partner = draw(partners(syncs_customers=False, max_team=1, max_tags=0))
    draft = CustomerDraft.start(partner)
    at = step if step is not None else draw(st.sampled_from(DraftStep))
    if at is DraftStep.DETAILS:
        return draft
    details = draw(customer_details())
    draft = attrs.evolve(draft, details=details)
    for user in draw(_unique_users(0, 3)):
        draft = draft.add_user(
            first_name=user.first_name,
            last_name=user.last_name,
            email=user.email,
            notifications=user.notifications,
        )
    return draft


@st.composite
def customers(
    draw: st.DrawFn,
    partner: Partner | None = None,
    *,
    min_users: int = 1,
    max_users: int = 4,
) -> Customer:
    """Customers of ``partner`` (or of a new one) with 1..n users, any status,
    manual or synced, with tags from the partner's catalog."""
    if partner is None:
        partner = draw(partners())
    details = draw(customer_details())
    users = tuple(draw(_unique_users(max(1, min_users), max_users)))
    synced = draw(st.booleans())
    ref = draw(external_refs()) if synced else None
    tag_ids = (
        draw(st.frozensets(st.sampled_from([t.id for t in partner.tags])))
        if (partner.tags)
        else frozenset()
    )
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
        status=draw(st.sampled_from(CustomerStatus)),
        external_ref=ref,
        card_fee_exception=draw(st.none() | st.sampled_from(CardFeeBearer)),
        created_at=draw(aware_datetimes()),
        version=draw(st.integers(0, 5)),
    )


@st.composite
def access_requests(draw: st.DrawFn, partner: Partner | None = None) -> AccessRequest:
    """Access requests, pending or resolved by one of the partner's admins."""
    if partner is None:
        partner = draw(partners())
    request = AccessRequest.open(
        partner,
        email=draw(email_addresses()),
        first_name=draw(st.none() | names(max_size=30)),
        last_name=draw(st.none() | names(max_size=30)),
    )
    status = draw(st.sampled_from(AccessRequestStatus))
    if status is AccessRequestStatus.PENDING:
        return request
    return attrs.evolve(
        request,
        status=status,
        resolved_by=partner.team[0].id,
        resolved_at=draw(aware_datetimes()),
        customer_id=CustomerId.new() if status is AccessRequestStatus.APPROVED else None,
    )


def events(kind: type[Event] | None = None) -> st.SearchStrategy[Event]:
    """Domain events of every topic (or of ``kind``)."""
    kinds = sorted(EVENT_TYPES.values(), key=lambda k: k.topic) if kind is None else [kind]
    return st.sampled_from(kinds).flatmap(
        lambda k: st.builds(
            k,
            partner_id=entity_ids(PartnerId),
            aggregate_id=st.uuids().map(lambda u: f"cus_{u.hex}"),
            occurred_at=aware_datetimes(),
            changes=st.lists(
                st.sampled_from(["company", "address", "users", "tags", "status"]),
                unique=True,
                max_size=3,
            ).map(tuple),
        )
    )


def roles() -> st.SearchStrategy[Role]:
    return st.sampled_from(Role)


register(Role, roles)
register(Action, lambda: st.sampled_from(Action))
register(CardFeeBearer, lambda: st.sampled_from(CardFeeBearer))
register(CustomerStatus, lambda: st.sampled_from(CustomerStatus))
register(DraftStep, lambda: st.sampled_from(DraftStep))
register(AccessRequestStatus, lambda: st.sampled_from(AccessRequestStatus))
register(Rounding, lambda: st.sampled_from(Rounding))
register(TeamMember, team_members)
register(Tag, tags)
register(CardFeePolicy, card_fee_policies)
register(Integration, integrations)
register(Partner, partners)
register(CustomerUser, customer_users)
register(CustomerDetails, customer_details)
register(CustomerDraft, customer_drafts)
register(Customer, customers)
register(AccessRequest, access_requests)
register(Event, events)
for _event in EVENT_TYPES.values():
    register(_event, lambda _event=_event: events(_event))  # type: ignore[misc]
