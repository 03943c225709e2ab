"""Tests of the two-step "Add customer" flow: CustomerDraft (rules C1-C4, C6)."""

from __future__ import annotations

import contextlib
import doctest
import html
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from altpay_core import (
    EIN,
    Address,
    AltpayError,
    Customer,
    CustomerCreated,
    CustomerDetails,
    CustomerDraft,
    CustomerId,
    CustomerUser,
    DraftStep,
    EmailAddress,
    InvariantViolation,
    NotFound,
    Partner,
    PartnerId,
    PermissionDenied,
    Role,
    ValidationError,
    from_dict,
    from_json,
    to_dict,
    to_json,
)
from altpay_core.testing import strategies as aps

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    st.binary(max_size=5),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)

ALBANY: dict[str, Any] = {
    "line1": "1 Main St",
    "city": "Albany",
    "region": "NY",
    "postal_code": "12207",
    "country": "US",
}


def partner() -> Partner:
    return (
        Partner.create(name="Northwind IT", country="US")
        .add_team_member(name="Ada", email="ada@northwind.example", role=Role.ADMIN)
        .add_team_member(name="Mo", email="mo@northwind.example", role=Role.MEMBER)
    )


def at_step_2(**details: Any) -> CustomerDraft:
    fields: dict[str, Any] = {"company": "Globex", "address": ALBANY, **details}
    return CustomerDraft.start(partner()).enter_details(**fields)


def with_users(*emails: str) -> CustomerDraft:
    draft = at_step_2()
    for email in emails:
        draft = draft.add_user(first_name="Ann", last_name="Lee", email=email)
    return draft


def test_the_happy_path() -> None:
    p = partner()
    draft = CustomerDraft.start(p)
    assert draft.step is DraftStep.DETAILS
    assert draft.step.number == 1
    assert draft.partner_id == p.id
    draft = draft.enter_details(
        company="Globex",
        legal_name="Globex Corporation",
        ein="123456789",
        address=ALBANY,
        billing_email="ap@globex.example",
    )
    assert draft.step is DraftStep.USERS
    assert draft.step.number == 2
    draft = draft.add_user(first_name="Ann", last_name="Lee", email="Ann.Lee@Globex.example")
    customer = draft.create()
    assert isinstance(customer, Customer)
    assert customer.id == draft.customer_id
    assert customer.partner_id == p.id
    assert customer.company == "Globex"
    assert customer.legal_name == "Globex Corporation"
    assert customer.ein == EIN("12-3456789")
    assert customer.address == Address("1 Main St", "Albany", "NY", "12207", "US")
    assert customer.billing_email == EmailAddress("ap@globex.example")
    assert [str(u.email) for u in customer.users] == ["Ann.Lee@globex.example"]
    assert customer.is_active
    assert not customer.is_synced
    assert customer.source == "manual"
    (event,) = customer.events
    assert isinstance(event, CustomerCreated)
    assert event.topic == "customer_created"
    assert event.partner_id == p.id
    assert event.aggregate_id == str(customer.id)
    assert event.occurred_at == customer.created_at


# -- C1: details first, then users, then create ----------------------------------


class TestRuleC1Order:
    def test_rule_c1_add_user_before_details_is_refused(self) -> None:
        draft = CustomerDraft.start(partner())
        with pytest.raises(InvariantViolation) as caught:
            draft.add_user(first_name="Ann", last_name="Lee", email="ann@globex.example")
        assert caught.value.rule == "C1"
        assert "step 1" in str(caught.value)
        assert draft.users == ()

    def test_rule_c1_create_before_details_is_refused(self) -> None:
        with pytest.raises(InvariantViolation) as caught:
            CustomerDraft.start(partner()).create()
        assert caught.value.rule == "C1"
        assert "details" in str(caught.value)

    def test_rule_c1_create_without_a_user_is_refused(self) -> None:
        draft = at_step_2()
        with pytest.raises(InvariantViolation) as caught:
            draft.create()
        assert caught.value.rule == "C1"
        assert caught.value.path == "users"
        assert "at least 1 user" in str(caught.value)

    def test_removing_the_only_user_of_a_draft_leaves_it_uncreatable(self) -> None:
        draft = with_users("ann@globex.example").remove_user("ann@globex.example")
        assert draft.users == ()
        with pytest.raises(InvariantViolation):
            draft.create()

    def test_a_team_member_must_be_allowed_to_manage_customers(self) -> None:
        p = partner()
        with pytest.raises(PermissionDenied) as caught:
            CustomerDraft.start(p, by=p.team[1])
        assert caught.value.action == "manage customers"
        assert CustomerDraft.start(p, by=p.team[0]).partner_id == p.id

    def test_creating_twice_gives_the_same_customer_id(self) -> None:
        draft = with_users("ann@globex.example")
        assert draft.create().id == draft.create().id

    @given(bad=anything)
    def test_start_names_a_partner_of_the_wrong_type(self, bad: object) -> None:
        with pytest.raises(ValidationError) as caught:
            CustomerDraft.start(bad)  # type: ignore[arg-type]
        assert caught.value.paths == ["partner"]
        assert caught.value.codes == ["wrong_type"]

    @given(
        bad=anything.filter(
            lambda value: (
                value is not None and not (isinstance(value, str) and value.startswith("tm_"))
            )
        )
    )
    def test_start_names_a_member_of_the_wrong_type(self, bad: object) -> None:
        # by=None is "no actor" (a service that has checked); anything else
        # that is no member nor id is a ValidationError, not a NotFound.
        p = partner()
        with pytest.raises(ValidationError) as caught:
            CustomerDraft.start(p, by=bad)  # type: ignore[arg-type]
        assert caught.value.paths == ["by"]
        # Text that is no member's id is an invalid id.
        assert caught.value.codes in (["wrong_type"], ["invalid_id"])
        assert CustomerDraft.start(p, by=None).partner_id == p.id


# -- C2: every invalid field at once ----------------------------------------------


class TestRuleC2EveryFieldAtOnce:
    def test_rule_c2_every_invalid_field_is_reported(self) -> None:
        draft = CustomerDraft.start(partner())
        with pytest.raises(ValidationError) as caught:
            draft.enter_details(
                company="   ",
                legal_name=5,
                ein="00-1234567",
                address={
                    "line1": "",
                    "city": " ",
                    "region": "ZZ",
                    "postal_code": "1234",
                    "country": "US",
                },
                billing_email="not an email",
            )
        assert caught.value.paths == [
            "company",
            "legal_name",
            "ein",
            "address.line1",
            "address.city",
            "address.region",
            "address.postal_code",
            "billing_email",
        ]
        for error in caught.value.errors:
            field = error.path.rpartition(".")[2]
            assert field in error.message
        assert draft.details is None

    @pytest.mark.parametrize("field", ["line1", "city", "region", "postal_code", "country"])
    def test_each_missing_address_field_has_its_path(self, field: str) -> None:
        address = {k: v for k, v in ALBANY.items() if k != field}
        with pytest.raises(ValidationError) as caught:
            CustomerDraft.start(partner()).enter_details(company="Globex", address=address)
        assert caught.value.paths == [f"address.{field}"]
        assert caught.value.codes == ["missing"]

    @pytest.mark.parametrize(
        ("field", "value", "code"),
        [
            ("postal_code", "ABCDE", "invalid_postal_code"),
            ("region", "ON", "region_country_mismatch"),
            ("country", "MX", "unknown_country"),
            ("city", 7, "wrong_type"),
            ("zip", "12207", "unknown_field"),
        ],
    )
    def test_each_bad_address_field_has_its_path(
        self, field: str, value: object, code: str
    ) -> None:
        with pytest.raises(ValidationError) as caught:
            CustomerDraft.start(partner()).enter_details(
                company="Globex", address={**ALBANY, field: value}
            )
        assert f"address.{field}" in caught.value.paths
        assert code in caught.value.codes

    def test_canadian_postal_code_must_match_the_province(self) -> None:
        address = {**ALBANY, "region": "ON", "postal_code": "T2P 1J9", "country": "CA"}
        with pytest.raises(ValidationError) as caught:
            CustomerDraft.start(partner()).enter_details(company="Globex", address=address)
        assert caught.value.paths == ["address.postal_code"]
        assert caught.value.codes == ["postal_code_region_mismatch"]

    def test_a_postal_code_of_another_province_is_reported_with_the_other_errors(self) -> None:
        address = {**ALBANY, "city": "", "region": "ON", "postal_code": "V5K 0A1", "country": "CA"}
        with pytest.raises(ValidationError) as caught:
            CustomerDraft.start(partner()).enter_details(company="", address=address)
        assert sorted(zip(caught.value.paths, caught.value.codes, strict=True)) == [
            ("address.city", "blank"),
            ("address.postal_code", "postal_code_region_mismatch"),
            ("company", "blank"),
        ]

    @pytest.mark.parametrize("address", [["1 Main St"], "1 Main St, Albany", None, 5])
    def test_an_address_that_is_no_mapping_is_refused(self, address: object) -> None:
        with pytest.raises(ValidationError) as caught:
            CustomerDraft.start(partner()).enter_details(company="", address=address)
        assert caught.value.paths == ["company", "address"]
        assert caught.value.codes == ["blank", "wrong_type"]

    def test_an_address_value_is_accepted(self) -> None:
        address = Address("1 Front St W", "Toronto", "ON", "m5j2n8", "CA")
        draft = CustomerDraft.start(partner()).enter_details(company="Maple", address=address)
        assert draft.details is not None
        assert draft.details.address.postal_code == "M5J 2N8"

    def test_blank_optional_fields_become_none(self) -> None:
        draft = at_step_2(legal_name=" ", ein="", billing_email="  ")
        assert draft.details == CustomerDetails(company="Globex", address=Address(**ALBANY))

    @given(
        company=anything,
        address=anything,
        legal_name=anything,
        ein=anything,
        billing_email=anything,
    )
    def test_bad_input_raises_only_validation_errors(
        self,
        company: object,
        address: object,
        legal_name: object,
        ein: object,
        billing_email: object,
    ) -> None:
        with contextlib.suppress(ValidationError):
            CustomerDraft.start(partner()).enter_details(
                company=company,
                address=address,
                legal_name=legal_name,
                ein=ein,
                billing_email=billing_email,
            )


# -- C3: going back keeps the users -------------------------------------------------


def test_rule_c3_going_back_to_step_1_keeps_the_users() -> None:
    draft = with_users("ann@globex.example", "bo@globex.example")
    back = draft.enter_details(
        company="Globex Inc", address={**ALBANY, "postal_code": "12207-3301"}
    )
    assert back.users == draft.users
    assert back.details is not None
    assert back.details.company == "Globex Inc"
    assert back.customer_id == draft.customer_id
    customer = back.create()
    assert customer.users == draft.users
    assert customer.address.postal_code == "12207-3301"


def test_rule_c3_a_refused_step_1_keeps_the_draft() -> None:
    draft = with_users("ann@globex.example")
    with pytest.raises(ValidationError):
        draft.enter_details(company="", address=ALBANY)
    assert draft.details is not None
    assert draft.details.company == "Globex"
    assert len(draft.users) == 1


# -- C4: emails normalised and unique ------------------------------------------------------


class TestRuleC4Emails:
    def test_emails_are_normalised(self) -> None:
        draft = with_users("  Ann.Lee@GLOBEX.Example ")
        assert str(draft.users[0].email) == "Ann.Lee@globex.example"

    @pytest.mark.parametrize(
        "again", ["ann@globex.example", "ANN@GLOBEX.EXAMPLE", " Ann@Globex.example "]
    )
    def test_rule_c4_a_duplicate_email_in_any_case_is_refused(self, again: str) -> None:
        draft = with_users("Ann@globex.example")
        with pytest.raises(InvariantViolation) as caught:
            draft.add_user(first_name="Other", last_name="Person", email=again)
        assert caught.value.rule == "C4"
        assert caught.value.path == "email"
        assert len(draft.users) == 1

    def test_rule_c4_a_draft_built_directly_with_duplicates_is_refused(self) -> None:
        ann = CustomerUser.new(first_name="Ann", last_name="Lee", email="ann@globex.example")
        twin = CustomerUser.new(first_name="Ann", last_name="Two", email="ANN@globex.example")
        with pytest.raises(InvariantViolation) as caught:
            CustomerDraft(partner_id=PartnerId.new(), users=(ann, twin))
        assert caught.value.rule == "C4"
        assert caught.value.path == "users[1].email"

    def test_remove_user_by_id_or_email_in_any_case(self) -> None:
        draft = with_users("ann@globex.example", "bo@globex.example")
        ann, bo = draft.users
        assert draft.remove_user("ANN@Globex.example").users == (bo,)
        assert draft.remove_user(bo.id).users == (ann,)
        assert draft.remove_user(str(bo.id)).users == (ann,)
        assert draft.remove_user(bo).users == (ann,)
        assert draft.remove_user(EmailAddress("bo@globex.example")).users == (ann,)

    def test_an_email_that_looks_like_a_user_id_is_still_an_email(self) -> None:
        draft = with_users("usr_bob@globex.example")
        assert draft.remove_user("usr_bob@globex.example").users == ()

    def test_removing_someone_not_there_is_not_found(self) -> None:
        draft = with_users("ann@globex.example")
        with pytest.raises(NotFound):
            draft.remove_user("bo@globex.example")
        with pytest.raises(NotFound):
            draft.remove_user("usr_123")
        with pytest.raises(ValidationError) as caught:
            draft.remove_user(42)  # type: ignore[arg-type]
        assert caught.value.paths == ["user"]
        with pytest.raises(ValidationError):
            draft.remove_user("not-an-id")

    def test_every_invalid_user_field_at_once(self) -> None:
        with pytest.raises(ValidationError) as caught:
            at_step_2().add_user(
                first_name=" ",
                last_name=None,  # type: ignore[arg-type]
                email=5,  # type: ignore[arg-type]
                notifications="yes",  # type: ignore[arg-type]
            )
        assert caught.value.paths == ["first_name", "last_name", "email", "notifications"]

    @given(first=anything, last=anything, email=anything, notifications=anything)
    def test_bad_user_input_raises_only_altpay_errors(
        self, first: object, last: object, email: object, notifications: object
    ) -> None:
        draft = with_users("ann@globex.example")
        for command in (
            lambda: draft.add_user(
                first_name=first,  # type: ignore[arg-type]
                last_name=last,  # type: ignore[arg-type]
                email=email,  # type: ignore[arg-type]
                notifications=notifications,  # type: ignore[arg-type]
            ),
            lambda: draft.remove_user(email),  # type: ignore[arg-type]
        ):
            with contextlib.suppress(AltpayError):
                command()


# -- C6: partners that sync customers add none by hand ----------------------------------------


def test_rule_c6_a_partner_syncing_customers_cannot_start_a_draft() -> None:
    p = partner().connect_integration("connectwise", syncs_customers=True)
    with pytest.raises(InvariantViolation) as caught:
        CustomerDraft.start(p)
    assert caught.value.rule == "C6"


def test_an_integration_syncing_only_invoices_does_not_stop_drafts() -> None:
    p = partner().connect_integration("quickbooks_online", syncs_invoices=True)
    assert CustomerDraft.start(p).partner_id == p.id


# -- direct construction, data and notebooks -----------------------------------------------


class TestDirectConstruction:
    def test_every_invalid_field_at_once(self) -> None:
        with pytest.raises(ValidationError) as caught:
            CustomerDraft(
                partner_id="par_1",  # type: ignore[arg-type]
                customer_id="cus_1",  # type: ignore[arg-type]
                details={"company": "Globex"},  # type: ignore[arg-type]
                users=["ann@globex.example"],  # type: ignore[list-item]
                started_at="today",  # type: ignore[arg-type]
            )
        assert caught.value.paths == [
            "partner_id",
            "customer_id",
            "details",
            "users[0]",
            "started_at",
        ]

    def test_details_are_checked_and_normalised(self) -> None:
        details = CustomerDetails(company=" Globex ", address=Address(**ALBANY), legal_name="")
        assert (details.company, details.legal_name) == ("Globex", None)
        with pytest.raises(ValidationError) as caught:
            CustomerDetails(company="", address=ALBANY, ein="12-3456789")  # type: ignore[arg-type]
        assert caught.value.paths == ["company", "ein", "address"]

    def test_a_user_is_checked(self) -> None:
        with pytest.raises(ValidationError) as caught:
            CustomerUser("usr_1", "", "Lee", "ann@x.example", "yes")  # type: ignore[arg-type]
        assert caught.value.paths == ["id", "first_name", "email", "notifications"]


def test_commands_leave_the_draft_untouched() -> None:
    draft = with_users("ann@globex.example")
    before = to_dict(draft)
    draft.add_user(first_name="Bo", last_name="Li", email="bo@globex.example")
    draft.remove_user("ann@globex.example")
    draft.enter_details(company="Other", address=ALBANY)
    draft.create()
    assert to_dict(draft) == before
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        draft.users = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    "draft",
    [
        CustomerDraft.start(partner()),
        at_step_2(legal_name="Globex Corp", ein="12-3456789", billing_email="ap@globex.example"),
        with_users("ann@globex.example", "bo@globex.example"),
        attrs.evolve(
            CustomerDraft.start(partner()),
            users=(CustomerUser.new(first_name="A", last_name="B", email="a@b.example"),),
        ),
    ],
    ids=["step-1", "step-2-no-users", "step-2-users", "step-1-with-a-user"],
)
def test_round_trip_at_each_step(draft: CustomerDraft) -> None:
    assert from_dict(CustomerDraft, to_dict(draft)) == draft
    assert from_json(CustomerDraft, to_json(draft)) == draft
    assert from_dict(CustomerDraft, to_dict(draft)).step is draft.step


@given(st.data())
def test_round_trips(data: st.DataObject) -> None:
    for cls in (CustomerDraft, CustomerDetails, CustomerUser, DraftStep):
        value = data.draw(st.from_type(cls))
        assert from_dict(cls, to_dict(value)) == value


@given(aps.customer_drafts(step=DraftStep.USERS))
def test_drafts_at_step_2_create_when_they_have_users(draft: CustomerDraft) -> None:
    if draft.users:
        assert draft.create().users == draft.users
    else:
        with pytest.raises(InvariantViolation):
            draft.create()


def test_from_dict_reports_a_bad_draft_with_paths() -> None:
    data = to_dict(with_users("ann@globex.example", "bo@globex.example"))
    data["users"][1]["email"] = "ANN@globex.example"
    with pytest.raises(ValidationError) as caught:
        from_dict(CustomerDraft, data)
    assert caught.value.paths == ["users[1].email"]
    data["users"][1]["email"] = "bo@globex.example"
    data["details"]["address"]["postal_code"] = "nope"
    with pytest.raises(ValidationError) as caught:
        from_dict(CustomerDraft, data)
    assert caught.value.paths == ["details.address.postal_code"]


def test_repr_is_short_and_readable() -> None:
    draft = with_users("ann@globex.example")
    text = repr(draft)
    assert text == (
        f"CustomerDraft(customer_id={str(draft.customer_id)!r}, step='users', "
        "company='Globex', users=['ann@globex.example'])"
    )
    assert "step='details'" in repr(CustomerDraft.start(partner()))


def test_repr_html_is_escaped() -> None:
    draft = at_step_2(company="<script>alert(1)</script>").add_user(
        first_name="<i>Ann</i>", last_name="Lee", email="ann@globex.example"
    )
    page = draft._repr_html_()
    assert "<script>" not in page
    assert "<i>" not in page
    assert html.escape("<script>alert(1)</script>") in page
    assert "2 of 2" in page
    assert "1 of 2" in CustomerDraft.start(partner())._repr_html_()
    assert "&lt;i&gt;Ann&lt;/i&gt; Lee &lt;ann@globex.example&gt;" in page
    # A draft without users yet shows a dash in their place.
    assert "users</th><td style='text-align:left'>-</td>" in at_step_2()._repr_html_()


def test_the_customer_id_is_a_customer_id() -> None:
    assert isinstance(CustomerDraft.start(partner()).customer_id, CustomerId)


def test_the_onboarding_page_runs() -> None:
    page = Path(__file__).resolve().parents[1] / "docs" / "onboarding.md"
    result = doctest.testfile(
        str(page),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted > 0
    assert result.failed == 0
