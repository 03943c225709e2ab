"""The testing kit: strategies for every public type, registered with Hypothesis."""

from __future__ import annotations

import datetime as dt
import enum
import importlib
import importlib.metadata
import itertools
import re
import subprocess
import sys
import textwrap
import time
import unicodedata
from typing import Any, get_origin

import attrs
import pytest
from hypothesis import HealthCheck, Phase, find, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from altpay_core import (
    AccessRequest,
    Address,
    ArgumentError,
    Currency,
    Customer,
    CustomerArchived,
    CustomerId,
    CustomerPaymentMethods,
    CustomerUser,
    DraftStep,
    EmailAddress,
    EntityId,
    Event,
    FeeKind,
    FieldError,
    Invoice,
    InvoicePaid,
    InvoiceStatus,
    Money,
    OperandError,
    OutboxMessage,
    Page,
    Partner,
    PaymentStatus,
    Role,
    ScheduledPaymentId,
    ValidationError,
    from_dict,
    from_json,
    to_dict,
    to_json,
)
from altpay_core._fields import required_text
from altpay_core.adapters.memory import MemoryStore
from altpay_core.invoice import _number as invoice_number
from altpay_core.ports import Cursor, Listing, PageRequest, customer_cursor, invoice_cursor
from altpay_core.testing import _hypothesis_hook
from altpay_core.testing import strategies as aps
from altpay_core.testing._types import registered_types

TYPES = registered_types()


def _name(cls: type[Any]) -> str:
    return cls.__name__


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter (this one's), as a user's process would."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# -- st.from_type ------------------------------------------------------------------


def test_no_health_check_is_suppressed() -> None:
    assert settings.default.suppress_health_check == ()
    assert HealthCheck.too_slow not in settings.default.suppress_health_check


# A page is asked for with the type of its items (a bare Page is refused).
_RESOLVED_TYPES = [Page[Customer] if t is Page else t for t in TYPES]


@pytest.mark.parametrize("cls", _RESOLVED_TYPES, ids=lambda t: _name(get_origin(t) or t))
def test_from_type_works_for_every_public_type(cls: type[Any]) -> None:
    # The profile's settings (health checks on), with fewer examples: the
    # health checks judge the first draws, and there are many types.
    @settings(max_examples=max(10, settings.default.max_examples // 10))
    @given(st.from_type(cls))
    def check(value: object) -> None:
        assert isinstance(value, get_origin(cls) or cls)

    check()


@pytest.mark.parametrize("cls", [Cursor, PageRequest], ids=_name)
def test_from_type_works_for_the_paging_values_of_the_ports(cls: type[Any]) -> None:
    # Public in altpay_core.ports rather than altpay_core, and registered too.
    @settings(max_examples=20)
    @given(st.from_type(cls))
    def check(value: object) -> None:
        assert type(value) is cls

    check()


def test_the_hypothesis_entry_point_is_declared() -> None:
    [entry] = [
        e
        for e in importlib.metadata.entry_points(group="hypothesis")
        if e.value.startswith("altpay_core.")
    ]
    assert entry.value == "altpay_core.testing._hypothesis_hook:_hypothesis_setup_hook"
    assert entry.dist is not None
    assert entry.dist.name == "altpay-core"
    assert entry.load() is _hypothesis_hook._hypothesis_setup_hook


def test_from_type_works_in_a_new_process_through_the_entry_point() -> None:
    # Nothing imports altpay_core.testing: Hypothesis finds the hook itself,
    # and the strategies are imported only once one is asked for.
    result = run_python(
        """
        import sys
        from hypothesis import given, settings, strategies as st
        from altpay_core import Address, Customer, Money
        assert "altpay_core.testing.strategies" not in sys.modules
        for cls in (Money, Address, Customer):
            @settings(max_examples=5, database=None)
            @given(st.from_type(cls))
            def check(value):
                assert type(value) is cls, type(value)
            check()
        assert "altpay_core.testing.strategies" in sys.modules
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_from_type_works_for_a_services_own_event_classes() -> None:
    # One defined before Hypothesis loads, one after: both are drawn as
    # events() draws them, not built by Hypothesis from any text.
    result = run_python(
        """
        import attrs
        from altpay_core import Event

        @attrs.frozen
        class QuoteSent(Event):
            topic = "quote_sent"

        from hypothesis import given, settings, strategies as st
        from altpay_core.testing import strategies as aps

        @attrs.frozen
        class QuoteAccepted(Event):
            topic = "quote_accepted"

        Record = attrs.make_class("Record", {"event": attrs.field(type=QuoteAccepted)})
        assert aps.for_type(QuoteAccepted) is not NotImplemented
        for strategy, cls in (
            (st.from_type(QuoteSent), QuoteSent),
            (st.from_type(QuoteAccepted), QuoteAccepted),
            (st.builds(Record).map(lambda r: r.event), QuoteAccepted),
        ):
            @settings(max_examples=20, database=None)
            @given(strategy)
            def check(event):
                assert type(event) is cls, type(event)
                assert event.aggregate_id.startswith("cus_"), event
            check()
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_for_type_declines_unknown_types() -> None:
    class Unknown:
        pass

    assert aps.for_type(Unknown) is NotImplemented
    assert _hypothesis_hook._resolve(Unknown) is NotImplemented


@pytest.mark.parametrize("cls", [[1], {}, {"a": 1}, [Customer]], ids=repr)
def test_for_type_declines_what_cannot_be_hashed(cls: Any) -> None:
    assert aps.for_type(cls) is NotImplemented


def test_a_page_without_its_item_type_is_refused() -> None:
    with pytest.raises(InvalidArgument, match=re.escape("Page[Customer]")):
        aps.for_type(Page)

    @given(st.from_type(Page))
    def draw(page: Page[Any]) -> None:
        raise AssertionError(f"drew {page!r}")

    with pytest.raises(InvalidArgument, match="name the item type"):
        draw()


_CACHED = [
    "currencies",
    "email_addresses",
    "eins",
    "external_refs",
    "aware_datetimes",
    "tags",
    "integrations",
    "customer_users",
    "customer_details",
]


@pytest.mark.parametrize("name", _CACHED)
@given(wrong=st.one_of(st.lists(st.integers(), max_size=2), st.dictionaries(st.text(), st.none())))
def test_a_cached_strategy_checks_its_arguments_first(name: str, wrong: object) -> None:
    strategy = getattr(aps, name)
    assert strategy() is strategy()  # valid calls are cached
    with pytest.raises(ArgumentError) as by_keyword:
        strategy(wrong=wrong)
    assert (by_keyword.value.paths, by_keyword.value.codes) == (["wrong"], ["unknown_field"])
    with pytest.raises(ArgumentError) as by_position:
        strategy(wrong)
    assert by_position.value.codes == ["too_many_positional"]
    assert f" {name}() " in str(by_position.value)


@pytest.mark.parametrize("name", ["customer_payment_methods", "scheduled_payments"])
def test_a_composite_strategy_is_named_as_it_is_called(name: str) -> None:
    with pytest.raises(ArgumentError) as caught:
        getattr(aps, name)(1)
    assert str(caught.value).startswith(f"(value): {name}() takes 0 positional arguments")
    assert "<locals>" not in str(caught.value)


def test_register_says_how_to_generate_a_type() -> None:
    class Widget:
        pass

    crate = attrs.make_class("Crate", {"widget": attrs.field(type=Widget)})

    aps.register(Widget, lambda: st.just(Widget()))
    try:
        assert isinstance(find(aps.for_type(Widget), lambda w: True), Widget)
        # Hypothesis knows it too.
        assert isinstance(find(st.from_type(Widget), lambda w: True), Widget)
        assert isinstance(find(st.builds(crate), lambda c: True).widget, Widget)
    finally:
        aps._STRATEGIES.pop(Widget)
    for cls, make in ((Widget(), st.none), (Widget, st.none())):
        with pytest.raises(InvalidArgument):
            aps.register(cls, make)  # type: ignore[arg-type]


# -- the pytest plugin ----------------------------------------------------------------


def test_the_pytest_plugin_entry_point_is_declared(pytestconfig: pytest.Config) -> None:
    [entry] = [
        e
        for e in importlib.metadata.entry_points(group="pytest11")
        if e.value.startswith("altpay_core.")
    ]
    assert (entry.name, entry.value) == ("altpay_core", "altpay_core.testing.plugin")
    assert pytestconfig.pluginmanager.has_plugin("altpay_core")


def test_the_pytest_plugin_imports_nothing_heavy() -> None:
    result = run_python(
        """
        import sys
        import altpay_core.testing.plugin
        print(sorted(m for m in ("hypothesis", "altpay_core.adapters") if m in sys.modules))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- without Hypothesis ------------------------------------------------------------------

_BLOCK_HYPOTHESIS = """
import importlib.abc
import sys

class NoHypothesis(importlib.abc.MetaPathFinder):
    # As if the [testing] extra were not installed.
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "hypothesis":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoHypothesis())
"""


def test_without_hypothesis_the_library_still_imports() -> None:
    result = run_python(
        _BLOCK_HYPOTHESIS
        + """
import altpay_core
import altpay_core.testing
print(altpay_core.Money("1", "USD"))
"""
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "USD 1.00"


def test_without_hypothesis_the_strategies_name_the_extra() -> None:
    result = run_python(
        _BLOCK_HYPOTHESIS
        + """
try:
    import altpay_core.testing.strategies
except ImportError as error:
    print(error)
    print(type(error.__cause__).__name__)
"""
    )
    assert result.returncode == 0, result.stderr
    message, cause = result.stdout.strip().splitlines()
    assert "pip install 'altpay-core[testing]'" in message
    assert cause == "ModuleNotFoundError"


def test_without_hypothesis_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes an import fail, as a missing package does.
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    monkeypatch.delitem(sys.modules, "altpay_core.testing.strategies")
    with pytest.raises(ImportError, match=r"pip install 'altpay-core\[testing\]'") as info:
        importlib.import_module("altpay_core.testing.strategies")
    assert "\n" not in str(info.value)


def test_without_pytest_the_contracts_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pytest", None)
    monkeypatch.delitem(sys.modules, "altpay_core.testing.contracts", raising=False)
    with pytest.raises(ImportError) as info:
        importlib.import_module("altpay_core.testing.contracts")
    assert str(info.value) == (
        "altpay_core.testing needs pytest: pip install 'altpay-core[testing]'"
    )
    assert type(info.value.__cause__) is ModuleNotFoundError


# -- reaching the edges ------------------------------------------------------------------


class _Reached(Exception):
    """Ends the search at the first value wanted."""


def reaches(strategy: st.SearchStrategy[Any], wanted: Any) -> bool:
    """Whether ``strategy`` draws a value ``wanted`` accepts, in up to 5,000
    examples: enough that an edge the strategy reaches is found every time
    (Hypothesis draws many simple, repeated values among the first ones).
    The rarest edge asked for, a customer carrying 4 tags, came on average
    after about 400 draws, and after more than 1,000 in 7 searches of 70.
    The search stops at the first value found, without shrinking it (as
    ``find`` would), so only a search that fails draws them all."""

    @settings(max_examples=5_000, phases=[Phase.generate], database=None)
    @given(strategy)
    def look(value: object) -> None:
        if wanted(value):
            raise _Reached

    try:
        look()
    except _Reached:
        return True
    return False


@pytest.mark.parametrize(
    ("strategy", "wanted"),
    [
        (aps.money(), lambda m: m.currency.minor_units == 0),
        (aps.money(), lambda m: m.currency.minor_units == 3),
        (aps.money(), lambda m: m.is_zero),
        (aps.money(), lambda m: m.is_negative),
        (aps.money(), lambda m: abs(m.minor_units) >= 10**18),
        (aps.money("JPY", min_units=0, max_units=0), lambda m: m == Money.zero("JPY")),
        (aps.addresses(), lambda a: a.country == "CA"),
        (aps.addresses("US"), lambda a: len(a.postal_code) == 10),
        (aps.addresses("CA"), lambda a: a.region == "QC"),
        (aps.addresses(), lambda a: not a.line1.isascii()),
        (aps.email_addresses(), lambda e: not str(e).isascii()),
        (aps.email_addresses(), lambda e: not str(e).partition("@")[0].isascii()),
        (aps.eins(), lambda e: e.digits.startswith("0")),
        (aps.names(), lambda n: " " in n),
        (aps.invoices(), lambda i: len(i.fees) >= 2),
        (aps.email_addresses(), lambda e: not str(e).partition("@")[2].isascii()),
        (aps.addresses(), lambda a: a.line2 is not None),
        (aps.external_refs(), lambda r: r.id.isdigit()),
        (aps.external_refs(), lambda r: not r.id.isdigit()),
        (aps.aware_datetimes(), lambda d: d.year < 2010),
        (aps.aware_datetimes(), lambda d: d.year > 2090),
        (aps.tags(), lambda t: t.colour > "#F00000"),
        *((aps.team_members(), lambda m, r=role: m.role is r) for role in Role),
        (aps.partners(), lambda p: len(p.team) > 1),
        (aps.card_fee_policies(), lambda c: c.rate_percent > 10),
        (aps.entity_ids(CustomerId), lambda i: re.fullmatch("cus_[0-9a-f]{32}", i.value)),
        (aps.entity_ids(CustomerId), lambda i: len(i.value) < 10),
        (aps.customers(), lambda c: c.card_fee_exception is not None),
        (aps.customers(), lambda c: len(c.tags) == 4),
        (aps.names(max_size=1), lambda n: not n.isascii()),
        # Made at drawn times, not the clock's: an example replays.
        (aps.partners(), lambda p: p.created_at.year < 2020),
        (aps.customer_drafts(step="details"), lambda d: len(d.users) == 1),
        (aps.customer_drafts(step="users"), lambda d: len(d.users) == 3),
        (
            aps.currencies(),
            lambda c: c.code not in ("USD", "CAD", "JPY", "BHD", "KWD", "CLF", "EUR"),
        ),
    ],
)
def test_strategies_reach_the_edges(strategy: st.SearchStrategy[Any], wanted: Any) -> None:
    assert reaches(strategy, wanted)


@given(aps.addresses())
def test_generated_addresses_are_built_by_the_real_constructor(address: Address) -> None:
    assert (
        Address.from_mapping(
            {
                "line1": address.line1,
                "line2": address.line2,
                "city": address.city,
                "region": address.region,
                "postal_code": address.postal_code,
                "country": address.country,
            }
        )
        == address
    )


@given(aps.partners().flatmap(lambda p: st.tuples(st.just(p), aps.customers(p))))
def test_a_generated_partner_and_customer_are_stored_together(
    pair: tuple[Partner, Customer],
) -> None:
    # C6: the customers of a partner that syncs them are synced, so that a
    # store takes the pair (a new customer added by hand it would refuse).
    partner, customer = pair
    if partner.syncs_customers:
        assert customer.external_ref is not None
        # The reference names one of its integrations that sync customers,
        # as Customer.from_sync requires.
        syncing = {i.system for i in partner.integrations if i.syncs_customers}
        assert customer.external_ref.system in syncing
    store = MemoryStore()
    with store.unit_of_work() as uow:
        uow.partners.save(attrs.evolve(partner, version=0))
        uow.customers.save(attrs.evolve(customer, version=0))
        uow.commit()


@given(aps.invoices())
def test_a_generated_invoices_events_happen_when_it_was_made(invoice: Invoice) -> None:
    # Drawn, not the clock's: an example replays, and its events stay in order.
    assert all(event.occurred_at == invoice.created_at for event in invoice.events)


@given(aps.email_addresses())
def test_generated_emails_are_normalised(email: EmailAddress) -> None:
    assert EmailAddress(str(email)) == email
    assert str(EmailAddress(str(email))) == str(email)


@given(aps.money(currency="BHD", min_units=-5, max_units=5))
def test_money_bounds(m: Money) -> None:
    assert m.currency.code == "BHD"
    assert -5 <= m.minor_units <= 5


def test_addresses_of_one_country() -> None:
    assert aps.addresses("ca") is aps.addresses("CA")
    with pytest.raises(InvalidArgument, match="'MX'"):
        aps.addresses("MX")


# -- every public type, through the kit ---------------------------------------------------

# Public data types the kit leaves to Hypothesis: a value of the error tree, and
# the generic page (resolved with its parameter, below).
_NOT_THE_KITS = {"FieldError", "Page"}


@pytest.mark.parametrize("cls", [t for t in TYPES if t.__name__ not in _NOT_THE_KITS], ids=_name)
def test_the_kit_has_a_strategy_for_every_public_type(cls: type[Any]) -> None:
    assert aps.for_type(cls) is not NotImplemented


@pytest.mark.parametrize(
    "cls", [t for t in TYPES if t.__name__ != "Page" and not issubclass(t, enum.Enum)], ids=_name
)
def test_every_generated_value_round_trips(cls: type[Any]) -> None:
    @settings(max_examples=max(10, settings.default.max_examples // 10))
    @given(st.from_type(cls))
    def check(value: Any) -> None:
        assert from_dict(cls, to_dict(value)) == value
        assert from_json(cls, to_json(value)) == value

    check()


@pytest.mark.parametrize("cls", [ValidationError, OperandError, ArgumentError], ids=_name)
def test_generated_validation_errors_hold_field_errors(cls: type[ValidationError]) -> None:
    @given(st.from_type(cls))
    def check(error: ValidationError) -> None:
        assert type(error) is cls
        assert error.errors
        assert all(isinstance(e, FieldError) for e in error.errors)
        assert str(error)
        if cls is OperandError:
            # The operand an arithmetic or comparison was given.
            assert [e.path for e in error.errors] in (["other"], ["factor"])

    check()


@settings(max_examples=20)
@given(st.from_type(Page[Customer]))
def test_pages_of_customers_resolve(page: Page[Customer]) -> None:
    assert all(isinstance(c, Customer) for c in page)
    assert list(page.items) == sorted(page.items, key=lambda c: (c.company.casefold(), c.id.value))
    assert page.start_cursor == (customer_cursor(page.items[0]) if page.items else None)
    assert page.end_cursor == (customer_cursor(page.items[-1]) if page.items else None)
    # An empty page is past the last row, or before the first.
    assert page.items or not (page.has_next_page and page.has_previous_page)


@settings(max_examples=20)
@given(st.from_type(Page[Invoice]))
def test_pages_of_invoices_resolve(page: Page[Invoice]) -> None:
    assert all(isinstance(i, Invoice) for i in page)
    assert page.end_cursor == (invoice_cursor(page.items[-1]) if page.items else None)


def test_pages_of_items_that_cannot_be_hashed() -> None:
    # Each shown once, told apart by equality.
    lists = aps.pages(st.lists(st.integers(0, 3), max_size=2))
    _all(lists, lambda p: all(p.items.count(item) == 1 for item in p.items), examples=50)
    assert reaches(lists, lambda p: len(p.items) >= 2)


@given(st.from_type(OutboxMessage))
def test_outbox_messages_have_positions_from_one(message: OutboxMessage) -> None:
    assert message.position >= 1
    assert isinstance(message.event, Event)


# -- arguments ------------------------------------------------------------------------------

_PARTNER = Partner.create(name="Maple MSP", country="CA").add_team_member(
    name="Ada Admin", email="ada@maple.example", role=Role.ADMIN
)
_CUSTOMER = Customer(
    id=CustomerId("cus_1"),
    partner_id=_PARTNER.id,
    company="Globex",
    address=Address("1 Main St", "Albany", "NY", "12207", "US"),
    users=(CustomerUser.new(first_name="Ann", last_name="Lee", email="ann@globex.example"),),
)


def _all(strategy: st.SearchStrategy[Any], check: Any, examples: int = 15) -> None:
    @settings(max_examples=examples, database=None)
    @given(strategy)
    def run(value: Any) -> None:
        assert check(value), value

    run()


@pytest.mark.parametrize("status", list(InvoiceStatus), ids=str)
def test_invoice_status_may_be_given_as_its_value(status: InvoiceStatus) -> None:
    _all(aps.invoices(_PARTNER, _CUSTOMER, status=status.value), lambda i: i.status is status)


@pytest.mark.parametrize("status", list(PaymentStatus), ids=str)
def test_payment_status_may_be_given_as_its_value(status: PaymentStatus) -> None:
    _all(aps.payments(status=status.value), lambda p: p.status is status, examples=10)


def test_other_enum_arguments_may_be_given_as_values() -> None:
    _all(aps.customer_drafts(step="details"), lambda d: d.step is DraftStep.DETAILS)
    _all(aps.customer_drafts(step="users"), lambda d: d.step is DraftStep.USERS)
    _all(aps.customers(_PARTNER, status="archived"), lambda c: not c.is_active)
    _all(aps.team_members("read_only"), lambda m: m.role is Role.READ_ONLY)
    _all(aps.fees(kind="card"), lambda f: f.kind is FeeKind.CARD)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: aps.invoices(status="nope"), "status must be an InvoiceStatus or its value"),
        (lambda: aps.invoices(status=PaymentStatus.SUCCEEDED), "status"),
        (lambda: aps.payments(status="paid"), "status"),
        (lambda: aps.customer_drafts(step=2), "step"),
        (lambda: aps.customers(status="deleted"), "status"),
        (lambda: aps.team_members("owner"), "role must be a Role or its value"),
        (lambda: aps.fees(kind="vat"), "kind"),
        (lambda: aps.invoices(customer=_CUSTOMER), "partner"),
        (lambda: aps.invoices(Partner.create(name="Other", country="US"), _CUSTOMER), "partner"),
        (lambda: aps.invoices("par_1"), "partner"),
        (lambda: aps.invoices(_PARTNER, "cus_1"), "customer"),
        (lambda: aps.invoices(_PARTNER, synced="yes"), "synced"),
        (lambda: aps.customers("par_1"), "partner"),
        (lambda: aps.customers(min_users=0), "min_users"),
        (lambda: aps.customers(min_users=3, max_users=2), "max_users=2 must be at least"),
        (lambda: aps.customers(synced=1), "synced"),
        (lambda: aps.access_requests("par_1"), "partner"),
        (lambda: aps.partners(syncs_customers="yes"), "syncs_customers"),
        (lambda: aps.partners(max_team=0), "max_team"),
        (lambda: aps.partners(max_team=True), "max_team"),  # a bool is no count
        (lambda: aps.partners(max_tags=-1), "max_tags"),
        (lambda: aps.partners(country="MX"), "country"),
        (lambda: aps.partners(currency="EUR"), "currency"),
        (lambda: aps.events(int), "kind"),
        (lambda: aps.events("customer_updated"), "kind"),
        (lambda: aps.entity_ids(int), "cls"),
        (lambda: aps.names(0), "max_size"),
        (lambda: aps.names("40"), "max_size"),
        (lambda: aps.money("XXX"), "currency"),
        (lambda: aps.money("USD", min_units=[1]), "min_units"),
        (lambda: aps.money("USD", min_units=1.5), "min_units"),
        (lambda: aps.money("USD", min_units=5, max_units=1), "max_units"),
        (lambda: aps.money("USD", min_units=5, max_units=4), "max_units=4 must be at least"),
        (lambda: aps.money("USD", min_units=10**40), "min_units"),
        (lambda: aps.money("JPY", max_units=10**30), "max_units"),
        (lambda: aps.money(max_units=-(10**30)), "max_units"),
        (lambda: aps.line_items(min_unit_units=-1), "min_unit_units"),
        # In one currency, USD by default: None is not "any", as for money().
        (lambda: aps.card_fee_policies(None), "currency"),
        # A policy's fixed part is in a partner's currency, as the policy refuses any other.
        (lambda: aps.card_fee_policies("EUR"), "currency must be 'USD' or 'CAD'"),
        (lambda: aps.fees(currency=None), "currency"),
        (lambda: aps.allocations(None), "currency"),
        (lambda: aps.applied_payments(None), "currency"),
        (lambda: aps.line_items(None), "currency"),
        (lambda: aps.line_items(min_unit_units=10**9 + 1), r"min_unit_units.*10\*\*9"),
        (lambda: aps.pages(Customer), "items must be a strategy"),  # the type, not from_type()
        (lambda: aps.pages(aps.customers(), max_size=-1), "max_size"),
    ],
)
def test_bad_arguments_are_named(make: Any, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        _all(make(), lambda v: True, examples=1)


def test_money_given_one_bound_moves_the_other_out_of_its_way() -> None:
    far = 10**21  # beyond the default range, either way
    _all(aps.money("USD", max_units=-far), lambda m: m.minor_units <= -far)
    _all(aps.money("USD", min_units=far), lambda m: m.minor_units >= far)


def test_one_letter_names_are_letters() -> None:
    _all(aps.names(max_size=1), lambda name: len(name) == 1 and name.isalpha())


def test_a_partners_team_is_at_most_max_team() -> None:
    _all(aps.partners(max_team=1), lambda p: len(p.team) == 1)
    _all(aps.partners(max_team=2), lambda p: 1 <= len(p.team) <= 2)


def test_drafts_at_step_1_have_at_most_the_one_user_an_access_request_adds() -> None:
    _all(aps.customer_drafts(step="details"), lambda d: len(d.users) <= 1)


def test_line_items_reach_the_largest_unit_amount() -> None:
    _all(aps.line_items(min_unit_units=10**9), lambda line: line.unit_amount.minor_units == 10**9)


def test_money_reaches_the_most_money_holds() -> None:
    most = 10**32 - 1  # 30 digits of dollars, 2 of cents
    _all(aps.money("USD", min_units=most, max_units=most), lambda m: m.minor_units == most)


def test_invoices_of_a_customer_of_the_partner() -> None:
    _all(aps.invoices(_PARTNER, _CUSTOMER), lambda i: i.customer_id == _CUSTOMER.id)


def test_access_requests_are_resolved_by_an_admin_or_sub_admin() -> None:
    # C9, whoever comes first in the team.
    partner = (
        Partner.create(name="Northwind IT", country="US")
        .add_team_member(name="Mo", email="mo@northwind.example", role=Role.MEMBER)
        .add_team_member(name="Ada", email="ada@northwind.example", role=Role.ADMIN)
        .add_team_member(name="Sam", email="sam@northwind.example", role=Role.SUB_ADMIN)
    )
    roles = {m.id: m.role for m in partner.team}

    def resolver(request: AccessRequest) -> Role | None:
        return None if request.resolved_by is None else roles[request.resolved_by]

    _all(
        aps.access_requests(partner),
        lambda r: r.is_pending or resolver(r) in {Role.ADMIN, Role.SUB_ADMIN},
        examples=50,
    )
    assert reaches(aps.access_requests(partner), lambda r: resolver(r) is Role.SUB_ADMIN)


def test_access_requests_to_a_partner_with_no_one_to_resolve_them_are_pending() -> None:
    bare = Partner.create(name="Solo IT", country="CA")
    reader = bare.add_team_member(name="Rae", email="rae@solo.example", role=Role.READ_ONLY)
    for partner in (bare, reader):
        _all(aps.access_requests(partner), lambda r: r.is_pending, examples=50)


def test_books_of_methods_added_out_of_order_and_at_one_time() -> None:
    # The next default on archive is the latest added (by added_at, ties to
    # the later in the book): books whose order and times disagree test it.
    def times(book: CustomerPaymentMethods) -> list[Any]:
        return [m.added_at for m in book.methods]

    books = aps.customer_payment_methods()
    assert reaches(books, lambda b: any(x > y for x, y in itertools.pairwise(times(b))))
    assert reaches(books, lambda b: any(x == y for x, y in itertools.pairwise(times(b))))
    assert reaches(books, lambda b: times(b) == sorted(times(b)) and len(b.methods) > 2)


def test_events_of_any_kind() -> None:
    assert reaches(aps.events(Event), lambda e: type(e) is not CustomerArchived)
    _all(aps.events(InvoicePaid), lambda e: type(e) is InvoicePaid)


@given(aps.events())
def test_events_name_the_aggregate_of_their_topic(event: Event) -> None:
    prefix = event.aggregate_id.partition("_")[0]
    if event.topic.startswith("invoice_"):
        assert prefix == "inv"
    elif event.topic.startswith("payment_") and "method" not in event.topic:
        assert prefix == "pay"
    else:  # customers, and a customer's book of payment methods
        assert prefix == "cus"


def test_entity_ids_of_every_kind() -> None:
    assert reaches(aps.entity_ids(EntityId), lambda i: isinstance(i, ScheduledPaymentId))
    assert reaches(st.from_type(EntityId), lambda i: isinstance(i, ScheduledPaymentId))


def test_names_of_one_letter() -> None:
    _all(aps.names(1), lambda n: len(n) == 1 and n.isalpha())
    _all(aps.names(2), lambda n: 1 <= len(n) <= 2)


@pytest.mark.parametrize(
    ("strategy", "wanted"),
    [
        (aps.names(), lambda n: len(n) == 1),
        (aps.names(), lambda n: any(unicodedata.category(c).startswith("M") for c in n)),
        (aps.partners(), lambda p: p.country == "CA" and p.currency.code == "USD"),
        (aps.partners(), lambda p: p.country == "US" and p.currency.code == "CAD"),
        (aps.payments(), lambda p: p.currency.code == "CAD"),
        (aps.invoices(), lambda i: i.is_partly_paid),
        (aps.invoices(), lambda i: i.external_ref is not None and i.status is InvoiceStatus.PAID),
        (aps.customers(), lambda c: c.external_ref is not None and not c.is_active),
    ],
)
def test_strategies_reach_the_payments_edges(strategy: st.SearchStrategy[Any], wanted: Any) -> None:
    assert reaches(strategy, wanted)


def test_partners_that_sync_customers_or_not() -> None:
    _all(aps.partners(syncs_customers=True), lambda p: p.syncs_customers)
    _all(aps.partners(syncs_customers=False), lambda p: not p.syncs_customers)


def test_customers_synced_or_not_as_asked() -> None:
    _all(aps.customers(synced=True), lambda c: c.external_ref is not None)
    _all(aps.customers(synced=False), lambda c: c.external_ref is None)


def test_invoices_of_a_team_with_nobody_who_may_edit_them() -> None:
    # Issued by someone who has since left the team.
    reader = Partner.create(name="Solo IT", country="CA").add_team_member(
        name="Rae", email="rae@solo.example", role=Role.READ_ONLY
    )
    customer = attrs.evolve(_CUSTOMER, partner_id=reader.id)
    team = {member.id for member in reader.team}
    _all(aps.invoices(reader, customer, synced=False), lambda i: i.issued_by not in team)


def test_partners_of_one_country_and_currency() -> None:
    _all(aps.partners(country="ca"), lambda p: p.country == "CA")
    _all(aps.partners(country="CA", currency="USD"), lambda p: p.currency.code == "USD")
    _all(aps.partners(currency=Currency("CAD")), lambda p: p.currency.code == "CAD")


# -- reproducible -------------------------------------------------------------------------

_RANDOM_ID = re.compile(r"\b([a-z]+)_[0-9a-f]{32}\b")


@pytest.mark.parametrize(
    "strategy",
    [aps.access_requests(), aps.customer_drafts(), aps.customer_payment_methods(), aps.invoices()],
    ids=["access_requests", "customer_drafts", "customer_payment_methods", "invoices"],
)
def test_times_come_from_the_draw_not_the_clock(strategy: st.SearchStrategy[Any]) -> None:
    # Replaying a seed gives the same values (random ids aside), so a failure
    # that depends on a time shrinks and replays.
    def generate() -> list[str]:
        found: list[str] = []

        @seed(20240101)
        @settings(max_examples=10, database=None, phases=[Phase.generate])
        @given(strategy)
        def collect(value: Any) -> None:
            found.append(_RANDOM_ID.sub(r"\1_*", to_json(value)))

        collect()
        return found

    first = generate()
    time.sleep(0.01)
    assert generate() == first


# -- shrinking -------------------------------------------------------------------------

_SHRINK = settings(database=None, derandomize=True)


@pytest.mark.parametrize("least", [12_345, 5 * 10**8])
def test_a_failing_amount_shrinks_to_the_smallest(least: int) -> None:
    # Not to an edge (10**9, the most drawn) that happens to fail too.
    found = find(
        aps.money("USD", min_units=0, max_units=10**9),
        lambda m: m.minor_units >= least,
        settings=_SHRINK,
    )
    assert found.minor_units == least
    line = find(
        aps.line_items("USD"), lambda item: item.amount.minor_units >= least, settings=_SHRINK
    )
    # The unit amount is the least that fails with the line's quantity: one
    # less would not (where Hypothesis' shrinker leaves the quantity depends
    # on the first failing line it drew, often 1).
    assert line.quantity * line.unit_amount.minor_units >= least
    assert line.quantity * (line.unit_amount.minor_units - 1) < least


def hits(
    strategy: st.SearchStrategy[Any],
    wanted: Any,
    *,
    examples: int = 300,
    at_seed: int = 20240101,
) -> int:
    """How many of ``examples`` values drawn from ``strategy`` (generated
    only, at a fixed seed) ``wanted`` accepts: the share of a case, which a
    user's test of 100 examples should see many times. Hypothesis's draws
    depend on more than the seed, so each bound below leaves room."""
    seen: list[bool] = []

    @seed(at_seed)
    @settings(max_examples=examples, database=None, phases=[Phase.generate])
    @given(strategy)
    def count(value: object) -> None:
        seen.append(bool(wanted(value)))

    count()
    return sum(seen)


def test_open_invoices_are_often_partly_paid() -> None:
    # The state an open invoice is most often in, so a test of 100 examples
    # should see it many times: of 400 examples, 45 or more (53 to 71 over
    # several seeds; 37 when partly paid was left to chance among the open
    # ones).
    found = hits(aps.invoices(), lambda invoice: invoice.is_partly_paid, examples=400)
    assert found >= 45, found


def test_names_often_hold_plain_spaces_hyphens_and_apostrophes() -> None:
    # "Globex Corp", "Mary-Ann O'Neil": of 300 names, 50 or more (80 to 105
    # over several seeds; 10 to 18 when st.text merged the branch away).
    found = hits(aps.names(), lambda name: any(c in name for c in " -'"))
    assert found >= 50, found


def test_payments_by_bank_debit_often_leave_processing() -> None:
    # Returns, unauthorised returns and settled bank debits: of 900 payments
    # over three seeds, 330 or more. One seed's 300 range from 113 to 173
    # over twenty seeds, and fell to 109 in the whole suite, whose literal
    # constants Hypothesis mixes into its draws; 56 to 106 when the status
    # and the method were drawn after the invoices and amounts, and most
    # payments were card payments still processing.
    found = sum(
        hits(
            aps.payments(),
            lambda payment: (
                payment.method.is_bank_debit and payment.status is not PaymentStatus.PROCESSING
            ),
            at_seed=at_seed,
        )
        for at_seed in (20240101, 1, 3)
    )
    assert found >= 330, found


def test_invoices_are_often_paid_or_archived() -> None:
    # Each of paid, void and archived in a fifth of invoices: of 300, paid or
    # archived in 90 or more (111 to 134 over several seeds; 56 to 92 when
    # the status was drawn after the lines, dates and names, and open
    # invoices were most of them).
    found = hits(
        aps.invoices(),
        lambda invoice: invoice.status in (InvoiceStatus.PAID, InvoiceStatus.ARCHIVED),
        at_seed=1,
    )
    assert found >= 90, found


def test_events_often_name_the_fields_that_change() -> None:
    # Of 300 events, 75 or more name a changed field (143 to 160 over several
    # seeds; 49 to 53 when the list was drawn after the ids and the time).
    found = hits(aps.events(), lambda event: bool(event.changes))
    assert found >= 75, found


def test_books_of_payment_methods_are_seldom_empty() -> None:
    # One book in five without a change: of 300, 190 or more hold a method
    # (214 to 242 over several seeds; 142 to 152, half of them empty, when
    # the number of changes was drawn after the ids and the time).
    found = hits(aps.customer_payment_methods(), lambda book: bool(book.methods))
    assert found >= 190, found


def test_drafts_are_often_at_step_2_with_users() -> None:
    # Step 2 in half the drafts, with 1 to 3 users in three of four of them:
    # of 300, 60 or more (112 to 141 over several seeds; 40 to 54 when the
    # step and the users were drawn after the partner and the time).
    found = hits(
        aps.customer_drafts(), lambda draft: draft.step is DraftStep.USERS and bool(draft.users)
    )
    assert found >= 60, found


def test_names_sometimes_reach_their_largest_size() -> None:
    # A column's width is an edge: of 300 names, 12 or more have max_size
    # characters (25 to 45 over several seeds; none when no branch drew it).
    found = hits(aps.names(), lambda name: len(name) == 40)
    assert found >= 12, found


def test_a_failing_customer_user_prints_as_code_to_paste() -> None:
    @settings(database=None, max_examples=20)
    @given(aps.customer_users())
    def fails(user: CustomerUser) -> None:
        raise AssertionError

    with pytest.raises(AssertionError) as info:
        fails()
    shown = "\n".join(getattr(info.value, "__notes__", []))
    assert "user=CustomerUser(" in shown
    assert "new(" not in shown


@given(aps.cursors())
def test_every_cursor_holds_the_key_a_row_could_give(cursor: Cursor) -> None:
    # A company or an invoice number as a row holds it: trimmed, valid text
    # (no control character), unchanged by the field's own check.
    if cursor.listing is Listing.CUSTOMERS:
        assert required_text("company", cursor.key) == cursor.key
        assert cursor.key == cursor.key.casefold()
    else:
        due, number = cursor.key[:10], cursor.key[11:]
        assert cursor.key[10] == " "
        assert dt.date.fromisoformat(due).isoformat() == due
        assert invoice_number("number", number) == number
    assert not any(unicodedata.category(char) == "Cc" for char in cursor.key)
