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
import functools
import string
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

try:
    from hypothesis import strategies as st
    from hypothesis.errors import InvalidArgument
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "altpay_core.testing needs Hypothesis: pip install 'altpay-core[testing]'"
    ) from error

import stdnum.us.ein

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
    "partners",
    "payment_methods",
    "payments",
    "register",
    "roles",
    "scheduled_payments",
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

# The value strategies below are cached: each call with the same arguments
# returns the same (immutable) strategy, which Hypothesis then validates once
# rather than on every draw of every composite that uses it.


@functools.cache
def currencies() -> st.SearchStrategy[Currency]:
    """Any ISO 4217 currency, the common and the odd (JPY 0, BHD 3, CLF 4) first."""
    return st.one_of(
        st.sampled_from(_EDGE_CURRENCIES).map(Currency),
        st.sampled_from(Currency.all()),
    )


@functools.cache
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


@functools.cache
def names(max_size: int = 40) -> st.SearchStrategy[str]:
    """Non-blank names: unicode letters, digits, spaces and punctuation inside."""
    # Plain spaces, hyphens and apostrophes get a branch of their own: among
    # every Unicode letter, digit and space they would almost never be drawn,
    # and names such as "Mary-Ann O'Neil" or "Globex Corp" are the usual ones.
    middle = st.text(
        alphabet=st.one_of(
            st.characters(categories=["L", "N", "Zs", "Pd", "Po"]), st.sampled_from(" -'.")
        ),
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


def addresses(country: str | None = None) -> st.SearchStrategy[Address]:
    """US and Canadian addresses (ZIP, ZIP+4, postal codes matching the province),
    or of one ``country``, ``"US"`` or ``"CA"``."""
    if country is None:
        return _ANY_ADDRESS
    found = _ADDRESSES.get(country.upper()) if isinstance(country, str) else None
    if found is None:
        raise InvalidArgument(f"country must be 'US', 'CA' or None (got {country!r})")
    return found


_EIN_PREFIXES = tuple(f"{p:02d}" for p in range(100) if stdnum.us.ein.is_valid(f"{p:02d}0000001"))


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


@functools.cache
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
    """Drafts at either step (or at ``step``): at step 1 with no user or with
    the one an access request added, at step 2 with 0 to 3 users."""
    partner = draw(partners(syncs_customers=False, max_team=1, max_tags=0))
    draft = CustomerDraft.start(partner)
    at = step if step is not None else draw(st.sampled_from(DraftStep))
    if at is DraftStep.DETAILS:
        # As AccessRequest.start_customer leaves it: the person already added.
        return attrs.evolve(draft, users=draw(_unique_users(0, 1)))
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
    synced: bool | None = None,
    status: CustomerStatus | None = None,
) -> Customer:
    """Customers of ``partner`` (or of a new one) with 1..n users, any status
    (or ``status``), manual or synced (or as ``synced`` says), with tags from
    the partner's catalog."""
    if partner is None:
        partner = draw(partners())
    details = draw(customer_details())
    users = tuple(draw(_unique_users(max(1, min_users), max_users)))
    if synced is None:
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
        status=draw(st.sampled_from(CustomerStatus)) if status is None else status,
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


# -- invoices and payments ------------------------------------------------------------


def line_items(
    currency: str | Currency = "USD", *, min_unit_units: int = 0
) -> st.SearchStrategy[LineItem]:
    """Line items in ``currency``: unicode descriptions, quantities from 1 to
    the maximum, unit amounts from zero (or ``min_unit_units``) up."""
    return st.builds(
        LineItem,
        description=names(max_size=60),
        quantity=st.one_of(st.sampled_from([1, 2, MAX_QUANTITY]), st.integers(1, 100)),
        unit_amount=money(currency, min_units=min_unit_units, max_units=10**9),
    )


def fees(currency: str | Currency = "USD", kind: FeeKind | None = None) -> st.SearchStrategy[Fee]:
    """Fee lines of every kind (or ``kind``), covered by either side."""
    return st.builds(
        Fee.new,
        st.sampled_from(FeeKind) if kind is None else st.just(kind),
        money(currency, min_units=1, max_units=10**7),
        name=st.none() | names(max_size=40),
        covered_by_customer=st.booleans(),
    )


def applied_payments(currency: str | Currency = "USD") -> st.SearchStrategy[AppliedPayment]:
    """A payment's part of an invoice, counted or given back."""
    return st.builds(
        AppliedPayment,
        entity_ids(PaymentId),
        money(currency, min_units=1, max_units=10**9),
        st.booleans(),
    )


def allocations(currency: str | Currency = "USD") -> st.SearchStrategy[Allocation]:
    """A payment's allocation to one invoice, with a card-fee share."""
    return st.builds(
        Allocation,
        entity_ids(InvoiceId),
        money(currency, min_units=1, max_units=10**9),
        money(currency, min_units=0, max_units=10**6),
    )


_I = TypeVar("_I", bound=EntityId)


def _an_id(draw: st.DrawFn, cls: type[_I]) -> _I:
    value = draw(entity_ids(cls))
    if not isinstance(value, cls):  # pragma: no cover - entity_ids builds a cls
        raise TypeError(f"expected a {cls.__name__}")
    return value


def _invoice_editor(partner: Partner) -> tuple[Partner, TeamMember]:
    for member in partner.team:
        if member.may(Action.EDIT_INVOICES):
            return partner, member
    partner = partner.add_team_member(
        name="Invoice Editor", email="invoices@northwind.example", role=Role.MEMBER
    )
    return partner, partner.team[-1]


def _units(draw: st.DrawFn, low: int, high: int) -> int:
    return draw(st.one_of(st.sampled_from([low, high]), st.integers(low, high)))


def _take_payments(draw: st.DrawFn, invoice: Invoice, *, full: bool) -> Invoice:
    """Payments applied through the invoice's own command: some given back,
    then either some part of the balance or all of it."""
    currency = invoice.currency
    if draw(st.booleans()):
        given_back = PaymentId.new()
        units = _units(draw, 1, invoice.balance.minor_units)
        invoice = invoice.apply_payment(given_back, Money.from_minor_units(units, currency))
        invoice = invoice.release_payment(given_back)
    balance = invoice.balance.minor_units
    if full:
        for part in Money.from_minor_units(balance, currency).split(draw(st.integers(1, 3))):
            if part.is_positive:
                invoice = invoice.apply_payment(PaymentId.new(), part)
    elif balance > 1 and draw(st.booleans()):
        units = _units(draw, 1, balance - 1)
        invoice = invoice.apply_payment(PaymentId.new(), Money.from_minor_units(units, currency))
    return invoice


@st.composite
def invoices(
    draw: st.DrawFn,
    partner: Partner | None = None,
    customer: Customer | None = None,
    *,
    synced: bool | None = None,
    status: InvoiceStatus | None = None,
) -> Invoice:
    """Invoices of ``customer`` (of ``partner``; new ones by default), issued
    by a team member or synced in, with 1 to 4 lines and up to 2 fees, in
    every status (or ``status``): open and untouched or partly paid, paid in
    one to three parts, void, archived; some with a payment given back."""
    if partner is None:
        partner = draw(partners(max_team=2, max_tags=1))
    partner, member = _invoice_editor(partner)
    if customer is None:
        customer = draw(customers(partner, max_users=2))
    if not customer.is_active:
        customer = customer.restore()
    currency = partner.currency
    lines = [draw(line_items(currency, min_unit_units=1))]
    lines += draw(st.lists(line_items(currency), max_size=3))
    fee_lines = draw(st.lists(fees(currency), max_size=2))
    number = draw(st.one_of(st.integers(1, 10**9).map(str), names(max_size=20)))
    memo = draw(st.none() | names(max_size=80))
    today = draw(st.dates(dt.date(2000, 1, 1), dt.date(2099, 1, 1)))
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
    wanted = draw(st.sampled_from(InvoiceStatus)) if status is None else status
    if wanted is InvoiceStatus.ARCHIVED:
        before = draw(st.sampled_from([InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.VOID]))
    else:
        before = wanted
    if before is InvoiceStatus.PAID:
        invoice = _take_payments(draw, invoice, full=True)
    elif before is InvoiceStatus.OPEN and wanted is InvoiceStatus.OPEN:
        invoice = _take_payments(draw, invoice, full=False)
    elif before is InvoiceStatus.VOID:
        invoice = invoice.void(partner)
    if wanted is InvoiceStatus.ARCHIVED:
        invoice = invoice.archive(partner)
    version = draw(st.integers(0, 5))
    # A stored invoice (version > 0) carries no pending events.
    return attrs.evolve(invoice, version=version) if version else invoice


def _later(draw: st.DrawFn, when: dt.datetime) -> dt.datetime:
    return when + dt.timedelta(minutes=draw(st.integers(1, 60 * 24 * 60)))


@st.composite
def payments(draw: st.DrawFn, *, status: PaymentStatus | None = None) -> Payment:
    """Payments of 1 to 3 open invoices of one customer, by any method of
    the partner's currency, partial or in full, in every status (or
    ``status``): processing, succeeded (settled or not), failed, returned,
    charged back, refunded. Built through :func:`pay_invoices` and the
    functions that follow it."""
    # The partner's details do not matter to a payment: only its currency and
    # card-fee policy do, so it is built small (and fast).
    partner = Partner.create(name="Northwind IT", country=draw(st.sampled_from(["US", "CA"])))
    partner = partner.add_team_member(
        name="Ada Admin", email="ada@northwind.example", role=Role.ADMIN
    )
    policy = draw(card_fee_policies(partner.currency))
    partner = partner.set_card_fees(
        bearer=policy.bearer, rate_percent=policy.rate_percent, fixed=policy.fixed
    )
    customer = draw(customers(partner, max_users=1))
    if not customer.is_active:
        customer = customer.restore()
    chosen = [
        draw(invoices(partner, customer, synced=False, status=InvoiceStatus.OPEN))
        for _ in range(draw(st.integers(1, 3)))
    ]
    methods = [m for m in PaymentMethodType if m.available_in(partner.currency)]
    method = draw(st.sampled_from(methods))
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
        idempotency_key=draw(
            st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=40)
        ),
        amounts=amounts,
        at=when,
    )
    wanted = draw(st.sampled_from(PaymentStatus)) if status is None else status
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


@st.composite
def customer_payment_methods(draw: st.DrawFn) -> CustomerPaymentMethods:
    """A customer's saved methods, built by adding, archiving, replacing and
    choosing the default through the real commands."""
    book = CustomerPaymentMethods(
        partner_id=_an_id(draw, PartnerId), customer_id=_an_id(draw, CustomerId)
    )
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["add", "add", "archive", "replace", "default"]))
        active = book.active
        if action == "add" or not active:
            book = book.add(
                type=draw(st.sampled_from(PaymentMethodType)),
                display_name=draw(_display_names()),
                last4=draw(st.text(alphabet=string.digits, min_size=4, max_size=4)),
                make_default=draw(st.booleans()),
            )
            continue
        target = draw(st.sampled_from(active)).id
        if action == "archive":
            book = book.archive(target)
        elif action == "replace":
            book = book.replace(
                target,
                type=draw(st.sampled_from(PaymentMethodType)),
                display_name=draw(_display_names()),
                last4=draw(st.text(alphabet=string.digits, min_size=4, max_size=4)),
            )
        else:
            book = book.set_default(target)
    version = draw(st.integers(0, 5))
    return attrs.evolve(book, version=version) if version else book


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
    register(_enum, lambda _enum=_enum: st.sampled_from(_enum))  # type: ignore[misc]
register(ScheduledPaymentId, lambda: entity_ids(ScheduledPaymentId))
register(LineItem, line_items)
register(Fee, fees)
register(AppliedPayment, applied_payments)
register(Allocation, allocations)
register(Invoice, invoices)
register(Payment, payments)
register(PaymentMethod, payment_methods)
register(CustomerPaymentMethods, customer_payment_methods)
register(ScheduledPayment, scheduled_payments)
register(Impersonation, impersonations)
