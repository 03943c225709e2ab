"""Tests of who may view and pay an invoice (rule I1), in one place: access.py."""

from __future__ import annotations

import datetime as dt

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from altpay_core import (
    Customer,
    CustomerDraft,
    Impersonation,
    InvariantViolation,
    Invoice,
    InvoiceAccess,
    NotFound,
    Partner,
    PermissionDenied,
    Role,
    UserId,
    ValidationError,
    access,
    from_dict,
    invoice_access,
    may_pay,
    may_view,
    pay_invoices,
    require_pay,
    require_view,
    to_dict,
    visible_invoices,
)

TODAY = dt.date(2026, 1, 5)


def make_partner() -> Partner:
    partner = Partner.create(name="Northwind IT", country="US")
    partner = partner.add_team_member(name="Ada Admin", email="ada@northwind.example", role="admin")
    return partner.add_team_member(
        name="Rita Reader", email="rita@northwind.example", role=Role.READ_ONLY
    )


def make_customer(partner: Partner, company: str) -> Customer:
    draft = CustomerDraft.start(partner).enter_details(
        company=company,
        address={
            "line1": "1 Main St",
            "city": "Albany",
            "region": "NY",
            "postal_code": "12207",
            "country": "US",
        },
    )
    draft = draft.add_user(first_name="Ann", last_name="Lee", email="ann@example.com")
    return draft.add_user(first_name="Bo", last_name="Li", email="bo@example.com").create()


def issue(partner: Partner, customer: Customer, number: str = "1001") -> Invoice:
    return Invoice.issue(
        partner,
        customer,
        by=partner.team[0],
        number=number,
        lines=[{"description": "Support", "quantity": 1, "unit_amount": "100.00"}],
        due_date=TODAY,
        today=TODAY,
    )


class World:
    def __init__(self) -> None:
        self.partner = make_partner()
        self.globex = make_customer(self.partner, "Globex")
        # The same people are users of a second customer of the same partner.
        self.initech = make_customer(self.partner, "Initech")
        self.invoice = issue(self.partner, self.globex)
        self.other_invoice = issue(self.partner, self.initech, "2001")
        self.ann = self.globex.users[0]
        self.reader = self.partner.team[1]


@pytest.fixture
def world() -> World:
    return World()


def test_users_of_the_customer_may_view_and_pay(world: World) -> None:
    for user in world.globex.users:
        assert invoice_access(world.invoice, world.globex, user) is InvoiceAccess.PAY
        assert invoice_access(world.invoice, world.globex, user.id) is InvoiceAccess.PAY
        assert may_view(world.invoice, world.globex, user)
        assert may_pay(world.invoice, world.globex, user)
        require_view(world.invoice, world.globex, user)
        require_pay(world.invoice, world.globex, user)


def test_users_of_another_customer_may_not(world: World) -> None:
    # Same email, other customer: a different user id, no access.
    stranger = world.initech.users[0]
    assert stranger.email == world.ann.email
    assert invoice_access(world.invoice, world.globex, stranger) is InvoiceAccess.NONE
    assert invoice_access(world.invoice, world.globex, UserId.new()) is InvoiceAccess.NONE
    # Logged in to Initech, looking at Globex's invoice.
    assert invoice_access(world.invoice, world.initech, stranger) is InvoiceAccess.NONE
    with pytest.raises(PermissionDenied) as caught:
        require_view(world.invoice, world.initech, stranger)
    assert caught.value.role == "customer user"
    # By its id: its number is for those who may see it.
    assert f"view invoice {world.invoice.id}" in str(caught.value)
    assert "1001" not in str(caught.value)
    with pytest.raises(PermissionDenied) as caught:
        require_pay(world.invoice, world.initech, stranger)
    assert f"pay invoice {world.invoice.id}" in str(caught.value)
    looking = Impersonation.start(world.partner, world.globex, by=world.reader)
    with pytest.raises(PermissionDenied) as caught:
        require_pay(world.invoice, world.globex, looking)  # it sees the invoice
    assert "pay invoice 1001" in str(caught.value)


def test_nothing_archived(world: World) -> None:
    archived_customer = world.globex.archive()
    assert invoice_access(world.invoice, archived_customer, world.ann) is InvoiceAccess.NONE
    archived_invoice = world.invoice.archive(world.partner)
    assert invoice_access(archived_invoice, world.globex, world.ann) is InvoiceAccess.NONE
    looking = Impersonation.start(world.partner, world.globex, by=world.reader)
    assert invoice_access(archived_invoice, world.globex, looking) is InvoiceAccess.NONE


def test_void_invoices_stay_visible(world: World) -> None:
    # Access says who; whether a void invoice takes a payment is rule I4's.
    void = world.invoice.void(world.partner)
    assert invoice_access(void, world.globex, world.ann) is InvoiceAccess.PAY


def test_nothing_of_another_partner(world: World) -> None:
    other = World()
    # Another partner's invoice, shown to this partner's customer object.
    assert invoice_access(other.invoice, world.globex, world.ann) is InvoiceAccess.NONE
    assert invoice_access(other.invoice, other.globex, world.ann) is InvoiceAccess.NONE
    looking = Impersonation.start(world.partner, world.globex, by=world.reader)
    assert invoice_access(other.invoice, other.globex, looking) is InvoiceAccess.NONE


def test_ids_that_match_under_another_partner_give_nothing(world: World) -> None:
    # An invoice or an impersonation of another partner that names the same
    # customer id (built by hand, or read from elsewhere) is not the customer's.
    other = World()
    forged = attrs.evolve(world.invoice, partner_id=other.partner.id)
    assert invoice_access(forged, world.globex, world.ann) is InvoiceAccess.NONE
    looking = Impersonation(
        partner_id=other.partner.id,
        customer_id=world.globex.id,
        team_member_id=other.reader.id,
    )
    assert invoice_access(world.invoice, world.globex, looking) is InvoiceAccess.NONE


def test_impersonation_sees_what_users_see_and_pays_nothing(world: World) -> None:
    looking = Impersonation.start(world.partner, world.globex, by=world.reader)
    assert invoice_access(world.invoice, world.globex, looking) is InvoiceAccess.VIEW
    assert may_view(world.invoice, world.globex, looking)
    assert not may_pay(world.invoice, world.globex, looking)
    with pytest.raises(PermissionDenied) as caught:
        require_pay(world.invoice, world.globex, looking)
    assert caught.value.role == "read-only impersonation"
    # It sees Globex only, not Initech.
    assert invoice_access(world.other_invoice, world.initech, looking) is InvoiceAccess.NONE
    assert visible_invoices([world.invoice, world.other_invoice], world.globex, looking) == (
        world.invoice,
    )


def test_a_team_member_is_not_a_user_of_the_customer_i1(world: World) -> None:
    # Partner staff see a customer's invoices only through an impersonation,
    # and pay none of them, whatever their role.
    for member in world.partner.team:
        for viewer in (member, member.id):
            assert invoice_access(world.invoice, world.globex, viewer) is InvoiceAccess.NONE
            with pytest.raises(PermissionDenied) as caught:
                require_view(world.invoice, world.globex, viewer)
            assert caught.value.role == "team member"
            with pytest.raises(PermissionDenied) as caught:
                pay_invoices(
                    world.partner, world.globex, [world.invoice], payer=viewer,
                    method="card", idempotency_key="k",
                )  # fmt: skip
            assert caught.value.role == "team member"
            # Named by its id, as for any payer who is not one of its users.
            assert str(world.globex.id) in str(caught.value)
            assert world.globex.company not in str(caught.value)


def test_paying_checks_access(world: World) -> None:
    looking = Impersonation.start(world.partner, world.globex, by=world.reader)
    common = {"method": "card", "idempotency_key": "k"}
    with pytest.raises(PermissionDenied):
        pay_invoices(world.partner, world.globex, [world.invoice], payer=looking, **common)  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied):
        pay_invoices(
            world.partner,
            world.globex,
            [world.invoice.archive(world.partner)],
            payer=world.ann,
            **common,  # type: ignore[arg-type]
        )
    with pytest.raises(PermissionDenied):
        pay_invoices(
            world.partner, world.globex.archive(), [world.invoice], payer=world.ann, **common
        )  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied):
        # A Globex user paying an Initech invoice through Globex.
        pay_invoices(world.partner, world.globex, [world.other_invoice], payer=world.ann, **common)  # type: ignore[arg-type]
    payment, _ = pay_invoices(
        world.partner, world.globex, [world.invoice], payer=world.ann, **common
    )  # type: ignore[arg-type]
    assert payment.user_id == world.ann.id


def test_visible_invoices_for_a_user(world: World) -> None:
    archived = issue(world.partner, world.globex, "1002").archive(world.partner)
    shown = visible_invoices(
        [world.invoice, archived, world.other_invoice], world.globex, world.ann
    )
    assert shown == (world.invoice,)


def test_starting_an_impersonation(world: World) -> None:
    looking = Impersonation.start(world.partner, world.globex, by=world.reader.id)
    assert looking.team_member_id == world.reader.id
    assert looking.customer_id == world.globex.id
    with pytest.raises(NotFound):
        Impersonation.start(world.partner, world.globex, by=World().reader)
    other = World()
    with pytest.raises(InvariantViolation) as caught:
        Impersonation.start(world.partner, other.globex, by=world.reader)
    assert caught.value.rule == "I1"


def _entry_points(w: World) -> list[tuple[str, object]]:
    """Each function of access.py with one argument of the wrong type, and
    the path the error must name."""
    return [
        ("invoice", lambda: invoice_access(None, w.globex, w.ann)),
        ("customer", lambda: invoice_access(w.invoice, None, w.ann)),
        ("viewer", lambda: invoice_access(w.invoice, w.globex, "ann@example.com")),
        ("viewer", lambda: invoice_access(w.invoice, w.globex, None)),
        ("invoice", lambda: may_view(None, w.globex, w.ann)),
        ("customer", lambda: may_pay(w.invoice, None, w.ann)),
        ("invoice", lambda: require_view(None, w.globex, w.ann)),
        ("customer", lambda: require_pay(w.invoice, None, w.ann)),
        ("invoices", lambda: visible_invoices(None, w.globex, w.ann)),
        ("invoices[1]", lambda: visible_invoices([w.invoice, None], w.globex, w.ann)),
        ("customer", lambda: visible_invoices([], None, w.ann)),
        ("viewer", lambda: visible_invoices([], w.globex, 42)),
        ("partner", lambda: Impersonation.start(None, w.globex, by=w.reader)),
        ("customer", lambda: Impersonation.start(w.partner, None, by=w.reader)),
        (
            "customer_id",
            lambda: Impersonation(
                partner_id=w.partner.id, customer_id="x", team_member_id=w.reader.id
            ),
        ),
    ]


@pytest.mark.parametrize("index", range(len(_entry_points(World()))))
def test_every_entry_point_refuses_arguments_of_the_wrong_type(index: int) -> None:
    # invoice_access(None, ...) raised a bare AttributeError; a viewer of the
    # wrong type was silently shown nothing.
    path, call = _entry_points(World())[index]
    with pytest.raises(ValidationError) as caught:
        call()  # type: ignore[operator]
    assert (caught.value.paths, caught.value.codes) == ([path], ["wrong_type"])


def test_access_enum() -> None:
    assert [a.may_view for a in InvoiceAccess] == [False, True, True]
    assert [a.may_pay for a in InvoiceAccess] == [False, False, True]
    assert access.__all__ == sorted(access.__all__)


@given(st.from_type(Impersonation) | st.from_type(InvoiceAccess))
def test_round_trip(value: object) -> None:
    assert from_dict(type(value), to_dict(value)) == value


@pytest.mark.parametrize("wrong", ["customer", "viewer"])
def test_the_invoices_are_read_only_once_the_other_arguments_are_good(
    world: World, wrong: str
) -> None:
    # The caller's generator was used up before another argument was refused.
    invoices = iter([world.invoice])
    arguments = {"customer": world.globex, "viewer": world.globex.users[0], wrong: None}
    with pytest.raises(ValidationError) as caught:
        visible_invoices(invoices, **arguments)  # type: ignore[arg-type]
    assert caught.value.paths == [wrong]
    assert list(invoices) == [world.invoice]


def test_require_view_lets_a_read_only_impersonation_see(world: World) -> None:
    looking = Impersonation.start(world.partner, world.globex, by=world.reader)
    require_view(world.invoice, world.globex, looking)  # sees: no error
    with pytest.raises(PermissionDenied):
        require_pay(world.invoice, world.globex, looking)


def test_an_impersonation_names_what_is_wrong(world: World) -> None:
    with pytest.raises(ValidationError) as caught:
        Impersonation.start(world.partner, world.globex, by=42)  # type: ignore[arg-type]
    assert caught.value.paths == ["by"]
    other = make_customer(make_partner(), "Other")
    with pytest.raises(InvariantViolation) as refused:
        Impersonation.start(world.partner, other, by=world.reader)
    assert (refused.value.rule, refused.value.path) == ("I1", "customer")
    with pytest.raises(ValidationError) as caught:
        Impersonation(
            partner_id=world.partner.id,
            customer_id=world.globex.id,
            team_member_id=world.ann.id,  # type: ignore[arg-type]
        )
    assert caught.value.paths == ["team_member_id"]
