"""Calls the signature does not take: a missing argument, an unknown keyword
(a form's extra field passed on with ``**form``), too many positional
arguments. Every public function, method and constructor reports them as an
``ArgumentError``, a ValidationError naming each argument that is also a
TypeError, never as Python's bare TypeError."""

from __future__ import annotations

import enum
import inspect
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import altpay_core
from altpay_core import (
    AccessRequest,
    Address,
    ArgumentError,
    Currency,
    Customer,
    CustomerDetails,
    CustomerDraft,
    CustomerId,
    CustomerPaymentMethods,
    CustomerUser,
    FieldError,
    Invoice,
    Money,
    Partner,
    PartnerId,
    Role,
    TeamMember,
    ValidationError,
    errors,
    events,
    from_dict,
    ports,
    services,
)
from altpay_core import _arguments as arguments_module
from altpay_core._arguments import checked_arguments
from altpay_core.adapters import _sql, memory, postgres, sqlite
from altpay_core.partner import Tag
from altpay_core.testing import strategies

ADDRESS = {
    "line1": "1 Main St",
    "city": "Albany",
    "region": "NY",
    "postal_code": "12207",
    "country": "US",
}
PORTS = (
    ports.Store,
    ports.UnitOfWork,
    ports.Outbox,
    ports.PartnerRepository,
    ports.CustomerRepository,
    ports.AccessRequestRepository,
    ports.InvoiceRepository,
    ports.PaymentRepository,
    ports.PaymentMethodRepository,
    ports.ScheduledPaymentRepository,
)
UNKNOWN = "__not_an_argument__"
# Stands in for the receiver of a method: a call that does not bind never
# reaches the method's body.
RECEIVER = object()


def _public_callables() -> Iterator[tuple[str, Callable[..., Any], bool]]:
    """(name, callable, whether it takes a receiver first) for every public
    function, constructor and method of the library, its services and its
    stores."""
    modules = (altpay_core, services, ports, events, errors, memory, sqlite, postgres, strategies)
    names = [(module, n) for module in modules for n in module.__all__]
    # The adapters' stores, units of work, repositories and outboxes.
    names += [
        (module, name)
        for module in (memory, _sql, sqlite, postgres)
        for name, obj in vars(module).items()
        if isinstance(obj, type) and obj.__module__ == module.__name__ and issubclass(obj, PORTS)
    ]
    seen: set[int] = set()
    for module, name in names:
        obj = getattr(module, name)
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if not isinstance(obj, type):
            if callable(obj):
                yield name, obj, False
            continue
        # Enumerations are looked up (see test_enumerations_name_what_is_not_a_member);
        # an abstract class is not built, its adapters are, and their methods
        # are checked where they are written.
        if not (issubclass(obj, enum.Enum) or inspect.isabstract(obj)):
            yield name, obj, False
        for attr, raw in vars(obj).items():
            if attr.startswith("_") or getattr(raw, "__isabstractmethod__", False):
                continue
            if isinstance(raw, classmethod | staticmethod):
                yield f"{name}.{attr}", getattr(obj, attr), False
            elif inspect.isfunction(raw):
                yield f"{name}.{attr}", raw, True


PUBLIC = [pytest.param(c, r, id=n) for n, c, r in _public_callables()]


def _required(function: Callable[..., Any], receiver: bool) -> list[str]:
    parameters = list(inspect.signature(function).parameters.values())[1 if receiver else 0 :]
    return [
        p.name
        for p in parameters
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _takes_any_keyword(function: Callable[..., Any]) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(function).parameters.values())


@pytest.mark.parametrize(("function", "receiver"), PUBLIC)
def test_every_public_call_names_its_missing_and_unknown_arguments(
    function: Callable[..., Any], receiver: bool
) -> None:
    expected = _required(function, receiver)
    kwargs = {} if _takes_any_keyword(function) else {UNKNOWN: 1}
    if not expected and not kwargs:
        pytest.skip("takes any call")
    with pytest.raises(ArgumentError) as info:
        function(*([RECEIVER] if receiver else []), **kwargs)
    assert sorted(info.value.paths) == sorted(expected + list(kwargs))
    assert sorted(info.value.codes) == sorted(
        ["missing"] * len(expected) + ["unknown_field"] * len(kwargs)
    )


def test_a_form_without_a_field_gets_a_field_error() -> None:
    draft = CustomerDraft.start(Partner.create(name="Northwind IT", country="US"))
    with pytest.raises(ValidationError) as info:
        draft.enter_details(address=ADDRESS)  # type: ignore[call-arg]
    assert (info.value.paths, info.value.codes) == (["company"], ["missing"])
    assert str(info.value) == (
        "company: 'company' is required by CustomerDraft.enter_details() [missing]"
    )
    draft = draft.enter_details(company="Globex", address=ADDRESS)
    with pytest.raises(ArgumentError) as info:
        draft.add_user(first_name="Ann")  # type: ignore[call-arg]
    assert (info.value.paths, info.value.codes) == (["last_name", "email"], ["missing"] * 2)


# A form's fields in the order it shows them: (name, required, a valid value,
# an invalid one, the path of the invalid one's error).
_Field = tuple[str, bool, object, object, str]
DETAILS_FORM: list[_Field] = [
    ("company", True, "Globex", "  ", "company"),
    ("legal_name", False, "Globex Corp", 5, "legal_name"),
    ("ein", False, "12-3456789", "00-1234567", "ein"),
    ("address", True, ADDRESS, {**ADDRESS, "city": " "}, "address.city"),
    ("billing_email", False, "ap@globex.example", "not an email", "billing_email"),
]
USER_FORM: list[_Field] = [
    ("first_name", True, "Bo", " ", "first_name"),
    ("last_name", True, "Li", None, "last_name"),
    ("email", True, "bo@globex.example", "nope", "email"),
    ("notifications", False, True, "yes", "notifications"),
]


def _draw_form(
    data: st.DataObject, fields: list[_Field]
) -> tuple[dict[str, object], list[str], list[str], bool]:
    """A form posted as keywords: each field left out, valid or invalid, and
    maybe a field the call does not take; with the paths and codes the
    error must list, in order, and whether an argument is at fault."""
    form: dict[str, object] = {}
    paths: list[str] = []
    codes: list[str] = []
    extra = data.draw(st.booleans(), label="csrf_token")
    if extra:
        form["csrf_token"] = "x"
        paths.append("csrf_token")
        codes.append("unknown_field")
    left_out = False
    for name, required, valid, invalid, path in fields:
        choice = data.draw(st.sampled_from(["left out", "valid", "invalid"]), label=name)
        if choice == "left out":
            if required:
                paths.append(name)
                codes.append("missing")
                left_out = True
        elif choice == "valid":
            form[name] = valid
        else:
            form[name] = invalid
            paths.append(path)
            codes.append("")  # whichever code the field has; not "missing"
    return form, paths, codes, extra or left_out


def _assert_reported(
    call: Callable[..., object],
    form: dict[str, object],
    paths: list[str],
    codes: list[str],
    argument_at_fault: bool,
) -> None:
    if not paths:
        call(**form)
        return
    with pytest.raises(ValidationError) as info:
        call(**form)
    assert isinstance(info.value, ArgumentError) is argument_at_fault
    assert info.value.paths == paths
    assert [code if code in ("missing", "unknown_field") else "" for code in info.value.codes] == (
        codes
    )


def _customer(partner: Partner | None = None) -> Customer:
    return (
        CustomerDraft.start(partner or Partner.create(name="Northwind IT", country="US"))
        .enter_details(company="Globex", address=ADDRESS)
        .add_user(first_name="Ann", last_name="Lee", email="ann@globex.example")
        .create()
    )


@given(st.data())
def test_a_form_left_short_reports_every_field_at_once(data: st.DataObject) -> None:
    # Rule C2: a required field left out (``**form`` without it) is listed
    # as missing with every invalid field of the form, in the form's order.
    draft = CustomerDraft.start(Partner.create(name="Northwind IT", country="US"))
    _assert_reported(draft.enter_details, *_draw_form(data, DETAILS_FORM))
    _assert_reported(CustomerDetails.parse, *_draw_form(data, DETAILS_FORM))
    draft = draft.enter_details(company="Globex", address=ADDRESS)
    _assert_reported(draft.add_user, *_draw_form(data, USER_FORM))
    _assert_reported(_customer().add_user, *_draw_form(data, USER_FORM))
    _assert_reported(CustomerUser.new, *_draw_form(data, USER_FORM))


def test_a_form_left_short_names_the_call_for_each_field_left_out() -> None:
    draft = CustomerDraft.start(Partner.create(name="Northwind IT", country="US"))
    with pytest.raises(ArgumentError) as info:
        draft.enter_details(address={**ADDRESS, "line1": "", "city": ""})  # type: ignore[call-arg]
    assert (info.value.paths, info.value.codes) == (
        ["company", "address.line1", "address.city"],
        ["missing", "blank", "blank"],
    )
    assert info.value.errors[0].message == (
        "'company' is required by CustomerDraft.enter_details()"
    )
    draft = draft.enter_details(company="Globex", address=ADDRESS)
    with pytest.raises(ArgumentError) as info:
        draft.add_user(first_name="", email="nope")  # type: ignore[call-arg]
    assert (info.value.paths, info.value.codes) == (
        ["first_name", "last_name", "email"],
        ["blank", "missing", "invalid_email"],
    )
    assert info.value.errors[1].message == "'last_name' is required by CustomerDraft.add_user()"


def _payment_methods() -> CustomerPaymentMethods:
    return CustomerPaymentMethods(partner_id=PartnerId.new(), customer_id=CustomerId.new())


def _replace(**form: object) -> object:
    book = _payment_methods().add(type="card", display_name="Visa", last4="1111")
    return book.replace(book.methods[0].id, **form)  # type: ignore[arg-type]


def test_a_service_called_with_a_field_it_does_not_take_stores_nothing() -> None:
    # A service writes: it is never run again to collect a form's other
    # errors, as the domain's form-shaped calls are.
    store = memory.MemoryStore()
    partner = Partner.create(name="Northwind IT", country="US")
    with store.unit_of_work() as uow:
        uow.partners.save(partner)
        uow.commit()
    with pytest.raises(ArgumentError) as info, store.unit_of_work() as uow:
        services.open_access_request(  # type: ignore[call-arg]
            uow, partner.id, email="ann@globex.example", csrf_token="x"
        )
    assert info.value.paths == ["csrf_token"]
    with pytest.raises(ArgumentError) as info, store.unit_of_work() as uow:
        services.open_access_request(uow, partner.id, first_name=5)  # type: ignore[call-arg]
    assert info.value.paths == ["email"]
    with store.unit_of_work() as uow:
        assert uow.access_requests.pending_for(partner.id, "ann@globex.example") is None


def _issue(**form: object) -> object:
    partner = Partner.create(name="Northwind IT", country="US").add_team_member(
        name="Mo", email="mo@northwind.example", role=Role.MEMBER
    )
    return Invoice.issue(partner, _customer(partner), by=partner.team[-1], **form)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "form", "paths"),
    [
        (Address, {"line1": "", "city": "Albany"}, ["line1", "region", "postal_code", "country"]),
        (Partner.create, {"country": "MX"}, ["name", "country"]),
        (TeamMember.new, {"name": "", "role": "owner"}, ["name", "email", "role"]),
        (Tag.new, {"name": " "}, ["name", "colour"]),
        (lambda **form: _customer().update_user(**form), {"email": "nope"}, ["user", "email"]),
        (
            lambda **form: _customer().set_notifications(**form),
            {"user": "usr_?"},
            ["user", "enabled"],
        ),
        (
            AccessRequest.open,
            {"email": "nope", "first_name": 5},
            ["partner", "email", "first_name"],
        ),
        (
            lambda **form: Customer.from_sync(
                Partner.create(name="Northwind IT", country="US").connect_integration(
                    "connectwise", syncs_customers=True
                ),
                **form,
            ),
            {"company": " ", "users": [{"first_name": "Ann", "last_name": "Lee", "email": "a@b"}]},
            ["external_ref", "company", "address", "users[0].email"],
        ),
        (
            _issue,
            {"number": "", "lines": []},
            ["today", "number", "lines", "due_date"],
        ),
        (
            lambda **form: _payment_methods().add(**form),
            {"type": "cheque", "last4": "42"},
            ["type", "display_name", "last4"],
        ),
        (
            _replace,
            {"display_name": " ", "last4": "4242"},
            ["type", "display_name"],
        ),
    ],
    ids=[
        "Address",
        "Partner.create",
        "TeamMember.new",
        "Tag.new",
        "Customer.update_user",
        "Customer.set_notifications",
        "AccessRequest.open",
        "Customer.from_sync",
        "Invoice.issue",
        "CustomerPaymentMethods.add",
        "CustomerPaymentMethods.replace",
    ],
)
def test_every_form_shaped_call_reports_the_other_fields_with_those_left_out(
    call: Callable[..., object], form: dict[str, object], paths: list[str]
) -> None:
    with pytest.raises(ArgumentError) as info:
        call(**form)
    assert info.value.paths == paths


def test_a_form_with_an_extra_field_gets_a_field_error() -> None:
    form = {"company": "Globex", "address": ADDRESS, "csrf_token": "x"}
    draft = CustomerDraft.start(Partner.create(name="Northwind IT", country="US"))
    with pytest.raises(ArgumentError) as info:
        draft.enter_details(**form)
    assert (info.value.paths, info.value.codes) == (["csrf_token"], ["unknown_field"])
    assert isinstance(info.value, TypeError)


def test_a_constructor_names_its_missing_fields() -> None:
    with pytest.raises(ArgumentError) as info:
        Address(line1="1 Main St", city="Albany")  # type: ignore[call-arg]
    assert info.value.paths == ["region", "postal_code", "country"]
    with pytest.raises(ArgumentError) as info:
        Money("12.50")  # type: ignore[call-arg]
    assert (info.value.paths, info.value.codes) == (["currency"], ["missing"])


def test_too_many_positional_arguments_are_counted_without_the_receiver() -> None:
    draft = CustomerDraft.start(Partner.create(name="Northwind IT", country="US"))
    with pytest.raises(ArgumentError) as info:
        draft.enter_details("Globex", ADDRESS)  # type: ignore[misc]
    assert (info.value.paths, info.value.codes) == (
        ["", "company", "address"],
        ["too_many_positional", "missing", "missing"],
    )
    assert "takes 0 positional arguments (got 2)" in info.value.errors[0].message


def test_an_inherited_constructor_already_checked_is_not_wrapped_again() -> None:
    # Each kind of id inherits EntityId's checked constructor: one check, as
    # deep as the base's, and errors that name the kind called.
    kinds = [getattr(altpay_core, name) for name in altpay_core.__all__ if name.endswith("Id")]
    kinds = [kind for kind in kinds if kind is not altpay_core.EntityId]
    assert len(kinds) >= 10
    for kind in kinds:
        assert kind.__init__ is altpay_core.EntityId.__init__, kind
        with pytest.raises(ArgumentError) as info:
            kind()
        assert f"{kind.__name__}()" in str(info.value)


# Aggregates and events hold several values of one kind (ids, times,
# amounts): they are built by keyword only, so that two cannot trade places
# unseen. Values of one or a few fields of their own kinds take positions.
_BY_KEYWORD_ONLY = sorted(
    [
        *(
            getattr(altpay_core, name)
            for name in (
                "AccessRequest",
                "Customer",
                "CustomerDetails",
                "CustomerDraft",
                "CustomerPaymentMethods",
                "Impersonation",
                "Invoice",
                "Payment",
                "PaymentMethod",
                "ScheduledPayment",
            )
        ),
        *(kind for kind in events.EVENT_TYPES.values() if kind.__module__ == events.__name__),
    ],
    key=lambda kind: kind.__name__,
)


@pytest.mark.parametrize("kind", _BY_KEYWORD_ONLY, ids=lambda kind: kind.__name__)
def test_aggregates_and_events_are_built_by_keyword_only(kind: type) -> None:
    with pytest.raises(ArgumentError) as info:
        kind("par_1")
    assert info.value.codes[0] == "too_many_positional"
    assert f"{kind.__name__}() takes 0 positional arguments (got 1)" in str(info.value)


@pytest.mark.parametrize(
    "kind",
    [
        getattr(altpay_core, name)
        for name in (
            "AccessRequest",
            "Customer",
            "CustomerPaymentMethods",
            "Invoice",
            "Partner",
            "Payment",
            "ScheduledPayment",
        )
    ],
    ids=lambda kind: kind.__name__,
)
def test_an_aggregate_s_pending_events_are_no_argument(kind: type) -> None:
    # Only a command puts events on an aggregate: a value built directly,
    # as a repository rebuilds what it read, has none to publish.
    with pytest.raises(ArgumentError) as info:
        kind(events=())
    assert (info.value.paths[0], info.value.codes[0]) == ("events", "unknown_field")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        # A function's first argument named cls is the caller's, not a receiver.
        (lambda: from_dict(Address, {}, 3), "from_dict() takes 2 positional arguments (got 3)"),
        (lambda: Money.zero("USD", 1), "Money.zero() takes 1 positional argument (got 2)"),
        (lambda: Money("1", "USD", "up"), "Money() takes 2 positional arguments (got 3)"),
    ],
)
def test_positional_arguments_are_counted_as_the_caller_gives_them(
    call: Callable[[], object], message: str
) -> None:
    with pytest.raises(ArgumentError) as info:
        call()
    assert info.value.errors[0].message.startswith(message)


def test_a_constructor_is_named_by_the_class_called() -> None:
    # Not by the class that wrote it (EntityId.__init__, Currency.__new__).
    for call, name in [(PartnerId, "PartnerId()"), (Currency, "Currency()")]:
        with pytest.raises(ArgumentError) as info:
            call()
        assert info.value.errors[0].message.endswith(f"is required by {name}")


def test_an_unknown_key_is_shown_escaped_and_cut() -> None:
    key = "x\n  - amount: forged [missing]" + "y" * 100
    with pytest.raises(ArgumentError) as info:
        Money("1", "USD", **{key: 1})
    assert info.value.paths == [key]
    assert "\n" not in info.value.errors[0].message
    assert info.value.errors[0].message.startswith("'x\\n  - amount")
    assert "y'... is not an argument of Money()" in info.value.errors[0].message


@pytest.mark.parametrize(
    ("function", "receiver"),
    [p for p in PUBLIC if not _takes_any_keyword(p.values[0])],  # the others take any name
)
@pytest.mark.parametrize("number", ["4242424242424242", "4242-4242-4242-4242", "acct_021000021"])
def test_no_call_echoes_an_argument_named_by_a_card_or_account_number(
    function: Callable[..., Any], receiver: bool, number: str
) -> None:
    # A form posted as keywords whose field is named by a number (docs/errors.md).
    with pytest.raises(ArgumentError) as info:
        function(*([RECEIVER] if receiver else []), **{number: 1})
    unknown = [error for error in info.value.errors if error.code == "unknown_field"]
    assert [error.path for error in unknown] == [""]
    assert f"({len(number)} characters; the value is not shown" in unknown[0].message
    assert "4242" not in str(info.value) + repr(info.value.errors)
    assert "021000021" not in str(info.value)


def test_an_argument_named_with_four_digits_or_fewer_is_named() -> None:
    with pytest.raises(ArgumentError) as info:
        Money("1", "USD", line1234=1)
    assert info.value.paths == ["line1234"]


def test_an_argument_given_twice_is_named() -> None:
    with pytest.raises(ArgumentError) as info:
        Money("12.50", "USD", currency="USD")  # type: ignore[misc]
    assert (info.value.paths, info.value.codes) == (["currency"], ["duplicate"])


def test_a_type_error_inside_the_function_goes_on_as_it_was() -> None:
    @checked_arguments
    def broken(value: object) -> object:
        return len(value)  # type: ignore[arg-type]

    with pytest.raises(TypeError) as info:
        broken(3)
    assert not isinstance(info.value, ArgumentError)


def test_a_call_the_analysis_cannot_name_still_gets_an_argument_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(arguments_module, "_argument_errors", lambda *args, **kwargs: [])
    with pytest.raises(ArgumentError) as info:
        Money()  # type: ignore[call-arg]
    assert (info.value.paths, info.value.codes) == ([""], ["wrong_arguments"])
    assert "Money() was called wrongly" in info.value.errors[0].message


def _errors(call: Callable[[], object]) -> list[tuple[str, str]]:
    with pytest.raises(ArgumentError) as info:
        call()
    return list(zip(info.value.paths, info.value.codes, strict=True))


def test_variadic_arguments_are_never_too_many_nor_unknown() -> None:
    @checked_arguments
    def listed(*values: object, unit: str) -> object:
        return values, unit

    @checked_arguments
    def keyed(unit: str, **more: object) -> object:
        return unit, more

    assert _errors(lambda: listed(1, 2, 3)) == [("unit", "missing")]  # type: ignore[call-arg]
    assert _errors(lambda: keyed(colour="red")) == [("unit", "missing")]  # type: ignore[call-arg]


def test_the_receiver_is_not_counted_for_a_static_method_nor_a_nested_function() -> None:
    class Holder:
        @staticmethod
        @checked_arguments
        def static(value: object) -> object:
            return value

    @checked_arguments
    def nested(cls: object, value: object) -> object:  # a first argument named cls
        return cls, value

    with pytest.raises(ArgumentError) as info:
        Holder.static(1, 2)  # type: ignore[call-arg]
    assert "static() takes 1 positional argument (got 2)" in str(info.value)
    with pytest.raises(ArgumentError) as info:
        nested(1, 2, 3)  # type: ignore[call-arg]
    assert "nested() takes 2 positional arguments (got 3)" in str(info.value)


def test_an_argument_error_pickles_with_its_errors() -> None:
    error = ArgumentError([FieldError("email", "missing", "'email' is required")])
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), again.errors, str(again)) == (ArgumentError, error.errors, str(error))


def test_the_wrapped_signature_is_the_real_one() -> None:
    # Help, IDEs and notebooks see the parameters, not (*args, **kwargs).
    assert list(inspect.signature(CustomerDraft.add_user).parameters) == [
        "self",
        "first_name",
        "last_name",
        "email",
        "notifications",
    ]
    assert list(inspect.signature(Address).parameters)[:2] == ["line1", "city"]


ENUMERATIONS = [
    getattr(altpay_core, n)
    for n in altpay_core.__all__
    if isinstance(getattr(altpay_core, n), type) and issubclass(getattr(altpay_core, n), enum.Enum)
]


@pytest.mark.parametrize("kind", ENUMERATIONS, ids=lambda kind: kind.__name__)
@pytest.mark.parametrize("value", ["not a member", None, 3, [], b"x"])
def test_enumerations_name_what_is_not_a_member(kind: type[enum.Enum], value: object) -> None:
    # Python's bare ValueError before; still a ValueError.
    with pytest.raises(ValidationError) as info:
        kind(value)
    assert (info.value.paths, info.value.codes) == ([""], ["invalid_choice"])
    assert isinstance(info.value, ValueError)
    assert all(repr(member.value) in str(info.value) for member in kind)
    member = next(iter(kind))
    assert kind(member.value) is member
