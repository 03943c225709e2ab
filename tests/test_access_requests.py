"""Tests of access requests: opening one, and resolving it (rule C9)."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from altpay_core import (
    AccessRequest,
    AccessRequestId,
    AccessRequestStatus,
    Customer,
    CustomerDraft,
    CustomerId,
    DraftStep,
    InvariantViolation,
    NotFound,
    Partner,
    PermissionDenied,
    Role,
    TeamMember,
    TeamMemberId,
    ValidationError,
    from_dict,
    from_json,
    to_dict,
    to_json,
)

ALBANY: dict[str, Any] = {
    "line1": "1 Main St",
    "city": "Albany",
    "region": "NY",
    "postal_code": "12207",
    "country": "US",
}


def partner() -> Partner:
    p = Partner.create(name="Northwind IT", country="US")
    for name, role in (
        ("Ada", Role.ADMIN),
        ("Sam", Role.SUB_ADMIN),
        ("Mo", Role.MEMBER),
        ("Rita", Role.READ_ONLY),
    ):
        p = p.add_team_member(name=name, email=f"{name.lower()}@northwind.example", role=role)
    return p


def member(p: Partner, role: Role) -> TeamMember:
    return next(m for m in p.team if m.role is role)


def customer(p: Partner) -> Customer:
    return attrs.evolve(
        CustomerDraft.start(p)
        .enter_details(company="Globex", address=ALBANY)
        .add_user(first_name="Ann", last_name="Lee", email="ann@globex.example")
        .create()
    )


def request(p: Partner, **names: str | None) -> AccessRequest:
    fields: dict[str, Any] = {"first_name": "Cy", "last_name": "Ng", **names}
    return AccessRequest.open(p, email="Cy.Ng@Globex.EXAMPLE", **fields)


def new_customer(r: AccessRequest, p: Partner, by: TeamMember) -> AccessRequest:
    """Approve ``r`` with a new customer made from the draft it opens."""
    draft = r.start_customer(partner=p, by=by)
    created = draft.enter_details(company="Initech", address=ALBANY).create()
    return r.approve_new_customer(created, partner=p, by=by)


RESOLUTIONS = {
    "add-to-customer": lambda r, p, by: r.add_to_customer(customer(p), partner=p, by=by),
    "new-customer": new_customer,
    "reject": lambda r, p, by: r.reject(partner=p, by=by),
}


class TestOpen:
    def test_open(self) -> None:
        p = partner()
        req = request(p)
        assert req.partner_id == p.id
        assert str(req.email) == "Cy.Ng@globex.example"
        assert (req.first_name, req.last_name) == ("Cy", "Ng")
        assert req.status is AccessRequestStatus.PENDING
        assert req.is_pending
        assert req.customer_id is req.resolved_by is req.resolved_at is None
        assert req.requested_at.tzinfo is dt.UTC

    def test_names_are_optional(self) -> None:
        req = AccessRequest.open(partner(), email="cy@globex.example", first_name=" ")
        assert req.first_name is None
        assert req.last_name is None

    def test_every_invalid_field_at_once(self) -> None:
        with pytest.raises(ValidationError) as caught:
            AccessRequest.open(partner(), email="nope", first_name=5, last_name="x" * 101)  # type: ignore[arg-type]
        assert caught.value.paths == ["email", "first_name", "last_name"]


# -- C9: only an Admin or a Sub-Admin resolves one ------------------------------------


@pytest.mark.parametrize("resolution", list(RESOLUTIONS))
@pytest.mark.parametrize("role", list(Role))
def test_rule_c9_only_admin_or_sub_admin_resolve(resolution: str, role: Role) -> None:
    p = partner()
    req = request(p)
    who = member(p, role)
    resolve = RESOLUTIONS[resolution]
    if role in (Role.ADMIN, Role.SUB_ADMIN):
        result = resolve(req, p, who)
        resolved = result[0] if isinstance(result, tuple) else result
        assert not resolved.is_pending
        assert resolved.resolved_by == who.id
    else:
        with pytest.raises(PermissionDenied) as caught:
            resolve(req, p, who)
        assert caught.value.role == role.value
        assert caught.value.action == "approve access requests"
        assert req.is_pending


@pytest.mark.parametrize("resolution", list(RESOLUTIONS))
def test_someone_off_the_team_cannot_resolve(resolution: str) -> None:
    p = partner()
    stranger = TeamMember.new(name="X", email="x@else.example", role=Role.ADMIN)
    with pytest.raises(NotFound):
        RESOLUTIONS[resolution](request(p), p, stranger)
    with pytest.raises(NotFound):
        RESOLUTIONS[resolution](request(p), p, TeamMemberId.new())


@pytest.mark.parametrize("first", list(RESOLUTIONS))
@pytest.mark.parametrize("second", list(RESOLUTIONS))
def test_resolving_twice_is_refused(first: str, second: str) -> None:
    p = partner()
    admin = member(p, Role.ADMIN)
    result = RESOLUTIONS[first](request(p), p, admin)
    resolved = result[0] if isinstance(result, tuple) else result
    with pytest.raises(InvariantViolation) as caught:
        RESOLUTIONS[second](resolved, p, admin)
    assert caught.value.rule == "access-request-resolved-once"
    assert resolved.status.value in str(caught.value)


@pytest.mark.parametrize("resolution", list(RESOLUTIONS))
def test_another_partners_request_is_not_found(resolution: str) -> None:
    p, other = partner(), partner()
    with pytest.raises(NotFound):
        RESOLUTIONS[resolution](request(p), other, member(other, Role.ADMIN))


# -- arguments of the wrong type ---------------------------------------------------------

# Anything that is not what the argument names: never a bare AttributeError
# nor a NotFound ("no team member 'None'"), but a ValidationError naming it.
not_a_partner_nor_a_member = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=20),
    st.just("tm_1"),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.builds(object),
)


@given(bad=not_a_partner_nor_a_member)
def test_open_names_a_partner_of_the_wrong_type(bad: object) -> None:
    with pytest.raises(ValidationError) as caught:
        AccessRequest.open(bad, email="cy@globex.example")  # type: ignore[arg-type]
    assert caught.value.paths == ["partner"]
    assert caught.value.codes == ["wrong_type"]
    # Reported with the other invalid fields, at once.
    with pytest.raises(ValidationError) as caught:
        AccessRequest.open(bad, email="nope")  # type: ignore[arg-type]
    assert caught.value.paths == ["partner", "email"]


@pytest.mark.parametrize("resolution", list(RESOLUTIONS))
@given(bad=not_a_partner_nor_a_member)
def test_resolving_names_a_partner_of_the_wrong_type(resolution: str, bad: object) -> None:
    p = partner()
    req = request(p)
    with pytest.raises(ValidationError) as caught:
        RESOLUTIONS[resolution](req, bad, member(p, Role.ADMIN))
    assert caught.value.paths == ["partner"]
    assert caught.value.codes == ["wrong_type"]
    assert req.is_pending


@pytest.mark.parametrize("resolution", list(RESOLUTIONS))
@given(
    bad=not_a_partner_nor_a_member.filter(
        lambda v: not (isinstance(v, str) and v.startswith("tm_"))
    )
)
def test_rule_c9_by_is_required_and_must_be_a_member(resolution: str, bad: object) -> None:
    # None is no actor here (unlike the partner's own commands): refused too.
    p = partner()
    req = request(p)
    with pytest.raises(ValidationError) as caught:
        RESOLUTIONS[resolution](req, p, bad)
    assert caught.value.paths == ["by"]
    # Text that is no member's id is an invalid id.
    assert caught.value.codes in (["wrong_type"], ["invalid_id"])
    assert req.is_pending


@given(bad=not_a_partner_nor_a_member)
def test_add_to_customer_names_a_customer_of_the_wrong_type(bad: object) -> None:
    p = partner()
    req = request(p)
    with pytest.raises(ValidationError) as caught:
        req.add_to_customer(bad, partner=p, by=member(p, Role.ADMIN))  # type: ignore[arg-type]
    assert caught.value.paths == ["customer"]
    assert caught.value.codes == ["wrong_type"]


# -- the three resolutions ------------------------------------------------------------


class TestAddToCustomer:
    def test_the_person_becomes_a_user(self) -> None:
        p = partner()
        req = request(p)
        existing = customer(p)
        resolved, updated = req.add_to_customer(existing, partner=p, by=member(p, Role.SUB_ADMIN))
        assert resolved.status is AccessRequestStatus.APPROVED
        assert resolved.customer_id == existing.id
        assert resolved.resolved_by == member(p, Role.SUB_ADMIN).id
        assert resolved.resolved_at is not None
        user = updated.user("cy.ng@globex.example")
        assert (user.first_name, user.last_name) == ("Cy", "Ng")
        assert updated.events[-1].topic == "customer_updated"
        assert req.is_pending
        assert existing.users == (existing.users[0],)

    def test_names_may_be_given_when_resolving(self) -> None:
        p = partner()
        req = request(p, first_name=None, last_name=None)
        with pytest.raises(ValidationError) as caught:
            req.add_to_customer(customer(p), partner=p, by=member(p, Role.ADMIN))
        assert caught.value.paths == ["first_name", "last_name"]
        assert caught.value.codes == ["missing", "missing"]
        _, updated = req.add_to_customer(
            customer(p), partner=p, by=member(p, Role.ADMIN), first_name="Cy", last_name="Ng"
        )
        assert updated.user("cy.ng@globex.example").name == "Cy Ng"
        with pytest.raises(ValidationError) as caught:
            req.add_to_customer(
                customer(p), partner=p, by=member(p, Role.ADMIN), first_name=" ", last_name="Ng"
            )
        assert caught.value.paths == ["first_name"]

    def test_an_existing_user_is_refused(self) -> None:
        p = partner()
        req = AccessRequest.open(p, email="ANN@globex.example", first_name="A", last_name="L")
        with pytest.raises(InvariantViolation) as caught:
            req.add_to_customer(customer(p), partner=p, by=member(p, Role.ADMIN))
        assert caught.value.rule == "C4"
        # Whatever the names: they would not make it possible.
        nameless = AccessRequest.open(p, email="ANN@globex.example")
        with pytest.raises(InvariantViolation) as caught:
            nameless.add_to_customer(customer(p), partner=p, by=member(p, Role.ADMIN))
        assert caught.value.rule == "C4"

    def test_an_archived_customer_is_refused(self) -> None:
        p = partner()
        for req in (request(p), request(p, first_name=None, last_name=None)):
            with pytest.raises(InvariantViolation) as caught:
                req.add_to_customer(customer(p).archive(), partner=p, by=member(p, Role.ADMIN))
            assert caught.value.rule == "C8"

    def test_another_partners_customer_is_not_found(self) -> None:
        p = partner()
        with pytest.raises(NotFound):
            request(p).add_to_customer(customer(partner()), partner=p, by=member(p, Role.ADMIN))


class TestStartCustomer:
    def test_a_draft_with_the_person_already_added(self) -> None:
        p = partner()
        admin = member(p, Role.ADMIN)
        req = request(p)
        draft = req.start_customer(partner=p, by=admin)
        assert draft.step is DraftStep.DETAILS
        assert [str(u.email) for u in draft.users] == ["Cy.Ng@globex.example"]
        assert [(u.first_name, u.last_name) for u in draft.users] == [("Cy", "Ng")]
        created = draft.enter_details(company="Globex", address=ALBANY).create()
        assert created.has_user("cy.ng@globex.example")
        # Approved only with the customer it names.
        assert req.is_pending
        approved = req.approve_new_customer(created, partner=p, by=admin)
        assert approved.status is AccessRequestStatus.APPROVED
        assert (approved.customer_id, approved.resolved_by) == (created.id, admin.id)

    def test_the_new_customer_must_have_the_person_as_a_user(self) -> None:
        p = partner()
        admin = member(p, Role.ADMIN)
        req = request(p)
        draft = req.start_customer(partner=p, by=admin).remove_user("cy.ng@globex.example")
        created = (
            draft.enter_details(company="Other Co", address=ALBANY)
            .add_user(first_name="N", last_name="O", email="nobody@other.example")
            .create()
        )
        with pytest.raises(InvariantViolation) as caught:
            req.approve_new_customer(created, partner=p, by=admin)
        assert (caught.value.rule, caught.value.path) == ("access-request-user", "users")

    def test_the_new_customer_must_be_an_active_one_of_the_partners(self) -> None:
        p = partner()
        admin = member(p, Role.ADMIN)
        req = request(p)
        with pytest.raises(NotFound):
            req.approve_new_customer(customer(partner()), partner=p, by=admin)
        theirs = customer(p).add_user(first_name="Cy", last_name="Ng", email="cy.ng@globex.example")
        with pytest.raises(InvariantViolation) as caught:
            req.approve_new_customer(theirs.archive(), partner=p, by=admin)
        assert caught.value.rule == "C8"
        with pytest.raises(ValidationError):
            req.approve_new_customer("cus_1", partner=p, by=admin)  # type: ignore[arg-type]

    def test_refused_for_a_partner_that_syncs_customers(self) -> None:
        p = partner().connect_integration("halopsa", syncs_customers=True)
        with pytest.raises(InvariantViolation) as caught:
            request(p).start_customer(partner=p, by=member(p, Role.ADMIN))
        assert caught.value.rule == "C6"


def test_reject() -> None:
    p = partner()
    rejected = request(p).reject(partner=p, by=member(p, Role.ADMIN))
    assert rejected.status is AccessRequestStatus.REJECTED
    assert rejected.customer_id is None
    assert rejected.resolved_by == member(p, Role.ADMIN).id


# -- direct construction, data, notebooks -------------------------------------------------


class TestDirectConstruction:
    def test_resolution_fields_must_agree_with_the_status(self) -> None:
        req = request(partner())
        now = dt.datetime.now(dt.UTC)
        for bad in (
            {"status": AccessRequestStatus.APPROVED, "resolved_at": now},
            {"status": AccessRequestStatus.REJECTED, "resolved_by": TeamMemberId.new()},
            {"resolved_at": now, "resolved_by": TeamMemberId.new()},
            {
                "status": AccessRequestStatus.APPROVED,
                "resolved_at": now,
                "resolved_by": TeamMemberId.new(),
            },
            {
                "status": AccessRequestStatus.REJECTED,
                "resolved_at": now,
                "resolved_by": TeamMemberId.new(),
                "customer_id": CustomerId.new(),
            },
        ):
            with pytest.raises(InvariantViolation):
                attrs.evolve(req, **bad)

    def test_every_invalid_field_at_once(self) -> None:
        with pytest.raises(ValidationError) as caught:
            AccessRequest(
                id="acc_1",  # type: ignore[arg-type]
                partner_id=partner().id,
                email="cy@globex.example",  # type: ignore[arg-type]
                first_name=5,  # type: ignore[arg-type]
                status="open",  # type: ignore[arg-type]
                requested_at=dt.datetime(2026, 1, 1),  # naive on purpose
                version=-1,
            )
        assert caught.value.paths == [
            "id",
            "email",
            "first_name",
            "status",
            "requested_at",
            "version",
        ]

    def test_plain_forms_are_normalised(self) -> None:
        req = attrs.evolve(request(partner()), status="pending", first_name=" Cy ")
        assert req.status is AccessRequestStatus.PENDING
        assert req.first_name == "Cy"


def test_round_trips_in_every_state() -> None:
    p = partner()
    admin = member(p, Role.ADMIN)
    states = [
        request(p),
        request(p, first_name=None, last_name=None),
        request(p).reject(partner=p, by=admin),
        new_customer(request(p), p, admin),
        request(p).add_to_customer(customer(p), partner=p, by=admin)[0],
    ]
    for req in states:
        assert from_dict(AccessRequest, to_dict(req)) == req
        assert from_json(AccessRequest, to_json(req)) == req


@given(st.from_type(AccessRequest))
def test_round_trips_of_generated_requests(req: AccessRequest) -> None:
    assert from_dict(AccessRequest, to_dict(req)) == req


def test_repr_and_html() -> None:
    req = AccessRequest.open(partner(), email="cy@globex.example", first_name="<script>")
    assert repr(req) == (
        f"AccessRequest(id={str(req.id)!r}, email='cy@globex.example', status='pending')"
    )
    page = req._repr_html_()
    assert "<script>" not in page
    assert html.escape("<script>") in page
    assert isinstance(req.id, AccessRequestId)


@pytest.mark.parametrize("resolved", ["at", "by"])
def test_a_resolution_records_both_when_and_by_whom(resolved: str) -> None:
    # Resolved: both; pending: neither. One without the other is refused.
    import datetime as dt

    from altpay_core import EmailAddress, InvariantViolation, PartnerId

    when = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    one_half = {"resolved_at": when} if resolved == "at" else {"resolved_by": TeamMemberId.new()}
    for status in ("rejected", "pending"):
        with pytest.raises(InvariantViolation) as caught:
            AccessRequest(
                id=AccessRequestId.new(),
                partner_id=PartnerId.new(),
                email=EmailAddress("eve@initech.example"),
                status=status,
                **one_half,
            )
        assert caught.value.rule == "access-request-resolution"


# What the data says of the resolution against the rule, and where the rule
# is then broken.
_UNRESOLVED_BREAKS = {
    "approved": ({"status": "approved"}, "resolved_by"),
    "rejected": ({"status": "rejected"}, "resolved_by"),
    "resolved_at": ({"resolved_at": "2026-01-05T00:00:00Z"}, "resolved_by"),
    "customer_id": ({"customer_id": str(CustomerId.new())}, "customer_id"),
}
_BAD_FIELDS: dict[str, Any] = {
    "first_name": 5,
    "last_name": "x" * 101,
    "email": "nope",
    "requested_at": "soon",  # unreadable: the rule is still checked
    "version": -1,
}


@given(
    fields=st.sets(st.sampled_from(sorted(_BAD_FIELDS)), min_size=1),
    rule=st.sampled_from(sorted(_UNRESOLVED_BREAKS)),
)
def test_from_dict_reports_the_resolution_rule_with_the_invalid_fields(
    fields: set[str], rule: str
) -> None:
    # None hides another: the rule at its path, its code the rule's.
    data = to_dict(request(partner()))
    change, path = _UNRESOLVED_BREAKS[rule]
    data.update(change)
    data.update({name: _BAD_FIELDS[name] for name in fields})
    with pytest.raises(ValidationError) as caught:
        from_dict(AccessRequest, data)
    assert set(caught.value.paths) == fields | {path}
    assert [e.code for e in caught.value.errors if e.path == path] == ["access-request-resolution"]


@pytest.mark.parametrize("rule", sorted(_UNRESOLVED_BREAKS))
def test_the_resolution_rule_broken_alone_is_itself(rule: str) -> None:
    data = to_dict(request(partner()))
    change, path = _UNRESOLVED_BREAKS[rule]
    data.update(change)
    with pytest.raises(ValidationError) as caught:
        from_dict(AccessRequest, data)
    assert [(e.path, e.code) for e in caught.value.errors] == [(path, "access-request-resolution")]


def test_a_status_that_is_none_leaves_the_rule_unchecked() -> None:
    data = to_dict(request(partner()))
    data["status"] = "maybe"
    with pytest.raises(ValidationError) as caught:
        from_dict(AccessRequest, data)
    assert caught.value.codes == ["invalid_choice"]


# -- never resolved before it was made --------------------------------------------

_MADE = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
)
_EARLIER = st.timedeltas(min_value=dt.timedelta(microseconds=1), max_value=dt.timedelta(days=400))
_EARLY_STATUSES = st.sampled_from([AccessRequestStatus.APPROVED, AccessRequestStatus.REJECTED])


def _resolved_early(
    requested: dt.datetime, earlier: dt.timedelta, status: AccessRequestStatus
) -> dict[str, Any]:
    """The fields of a request resolved ``earlier`` before it was made."""
    return {
        "requested_at": requested,
        "status": status,
        "resolved_by": TeamMemberId.new(),
        "resolved_at": requested - earlier,
        "customer_id": CustomerId.new() if status is AccessRequestStatus.APPROVED else None,
    }


@given(requested=_MADE, earlier=_EARLIER, status=_EARLY_STATUSES)
def test_a_request_resolved_before_it_was_made_is_refused(
    requested: dt.datetime, earlier: dt.timedelta, status: AccessRequestStatus
) -> None:
    req = request(partner())
    with pytest.raises(InvariantViolation) as caught:
        attrs.evolve(req, **_resolved_early(requested, earlier, status))
    assert (caught.value.rule, caught.value.path) == ("access-request-resolution", "resolved_at")
    # At the very time it was made, or later, it stands.
    at_once = attrs.evolve(req, **_resolved_early(requested, dt.timedelta(0), status))
    assert at_once.resolved_at == at_once.requested_at


@given(requested=_MADE, earlier=_EARLIER, status=_EARLY_STATUSES)
def test_from_dict_refuses_a_request_resolved_before_it_was_made(
    requested: dt.datetime, earlier: dt.timedelta, status: AccessRequestStatus
) -> None:
    at_once = _resolved_early(requested, dt.timedelta(0), status)
    data = to_dict(attrs.evolve(request(partner()), **at_once))
    data["resolved_at"] = (requested - earlier).isoformat()
    with pytest.raises(ValidationError) as caught:
        from_dict(AccessRequest, data)
    assert [(e.path, e.code) for e in caught.value.errors] == [
        ("resolved_at", "access-request-resolution")
    ]
    # Among the invalid fields, none hides another.
    data.update(first_name=5, version=-1)
    with pytest.raises(ValidationError) as caught:
        from_dict(AccessRequest, data)
    assert [(e.path, e.code) for e in caught.value.errors if e.path == "resolved_at"] == [
        ("resolved_at", "access-request-resolution")
    ]
    assert set(caught.value.paths) == {"first_name", "version", "resolved_at"}


def test_an_unreadable_request_time_leaves_the_order_of_times_unchecked() -> None:
    p = partner()
    data = to_dict(request(p).reject(partner=p, by=member(p, Role.ADMIN)))
    data["requested_at"] = "soon"
    with pytest.raises(ValidationError) as caught:
        from_dict(AccessRequest, data)
    assert caught.value.paths == ["requested_at"]


def test_an_unreadable_request_time_built_directly_is_named_alone() -> None:
    p = partner()
    resolved = request(p).reject(partner=p, by=member(p, Role.ADMIN))
    with pytest.raises(ValidationError) as caught:
        attrs.evolve(resolved, requested_at="soon")
    assert caught.value.paths == ["requested_at"]


def test_a_request_made_on_a_clock_ahead_is_resolved_no_earlier() -> None:
    p = partner()
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    req = attrs.evolve(request(p), requested_at=ahead)
    for resolution in RESOLUTIONS.values():
        result = resolution(req, p, member(p, Role.ADMIN))
        resolved = result[0] if isinstance(result, tuple) else result
        assert resolved.resolved_at == ahead


@pytest.mark.parametrize(
    ("refusal", "error"),
    [
        ("a member", PermissionDenied),
        ("off the team", NotFound),
        ("another partner", NotFound),
        ("resolved", InvariantViolation),
    ],
)
def test_starting_a_customer_is_refused_as_resolving_is(refusal: str, error: type) -> None:
    # The draft is the first step of an approval: refused before any is made.
    p = partner()
    req, by = request(p), member(p, Role.ADMIN)
    if refusal == "a member":
        by = member(p, Role.MEMBER)
    elif refusal == "off the team":
        by = TeamMember.new(name="X", email="x@else.example", role=Role.ADMIN)
    elif refusal == "another partner":
        p = partner()  # another partner, with its own team
        by = member(p, Role.ADMIN)
    else:
        req = req.reject(partner=p, by=by)
    with pytest.raises(error):
        req.start_customer(partner=p, by=by)
