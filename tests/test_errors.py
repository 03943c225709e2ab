"""The error tree: classes, field errors and their paths, pickling."""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import pickle
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from altpay_core import (
    Address,
    AltpayError,
    ArgumentError,
    CardFeeBearer,
    CardFeePolicy,
    ConcurrencyConflict,
    Currency,
    CurrencyMismatch,
    CustomerUser,
    Event,
    ExternalRef,
    FieldError,
    InvariantViolation,
    LineItem,
    Money,
    NotFound,
    OperandError,
    Partner,
    PermissionDenied,
    UniqueKeyTaken,
    ValidationError,
    from_dict,
)
from altpay_core import errors as errors_module
from altpay_core.errors import FieldErrors, join_path

ONE = FieldError("users[1].email", "invalid_email", "'email' must be a valid email address")
TWO = FieldError("address.city", "blank", "'city' must not be blank")

# One instance of every error class, built as the library builds them.
EVERY_ERROR = [
    pytest.param(AltpayError(), id="AltpayError-default"),
    pytest.param(AltpayError("something broke"), id="AltpayError"),
    pytest.param(ValidationError([ONE]), id="ValidationError-one"),
    pytest.param(ValidationError([ONE, TWO]), id="ValidationError-two"),
    pytest.param(
        InvariantViolation("a customer needs at least one user", rule="C5", path="users"),
        id="InvariantViolation",
    ),
    pytest.param(NotFound("customer", "cus_1"), id="NotFound"),
    pytest.param(ConcurrencyConflict(), id="ConcurrencyConflict-default"),
    pytest.param(
        ConcurrencyConflict("taken", kind="customer", key="cus_1"), id="ConcurrencyConflict"
    ),
    pytest.param(
        UniqueKeyTaken(
            "number 7 taken", rule="invoice-number", path="number", kind="invoice", key=7
        ),
        id="UniqueKeyTaken",
    ),
    pytest.param(PermissionDenied(role="member", action="approve"), id="PermissionDenied"),
    pytest.param(CurrencyMismatch("USD", "CAD", "add"), id="CurrencyMismatch"),
    pytest.param(OperandError("other", "only money can be added to money"), id="OperandError"),
    pytest.param(
        ArgumentError([FieldError("email", "missing", "'email' is required")]), id="ArgumentError"
    ),
]


# -- the tree -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (ValidationError, ValueError),
        (NotFound, LookupError),
        (CurrencyMismatch, ValueError),
        (OperandError, ValueError),
        (OperandError, TypeError),
        (ArgumentError, ValueError),
        (ArgumentError, TypeError),
    ],
)
def test_leaf_classes_also_derive_from_the_nearest_builtin(
    cls: type[AltpayError], builtin: type[Exception]
) -> None:
    assert issubclass(cls, builtin)
    assert issubclass(cls, AltpayError)


@pytest.mark.parametrize(
    "cls",
    [
        ValidationError,
        InvariantViolation,
        NotFound,
        ConcurrencyConflict,
        UniqueKeyTaken,
        PermissionDenied,
        CurrencyMismatch,
        OperandError,
        ArgumentError,
    ],
)
def test_one_root(cls: type[AltpayError]) -> None:
    assert issubclass(cls, AltpayError)
    assert issubclass(AltpayError, Exception)
    assert cls.__doc__


def test_a_unique_key_taken_is_a_conflict_and_a_rule() -> None:
    # A taken invoice number or external reference breaks a rule (the
    # pinned "which error": InvariantViolation) that the store found as it
    # wrote (ConcurrencyConflict): callers of either kind catch it.
    error = UniqueKeyTaken(
        "external reference connectwise:4711 is taken",
        rule="C10",
        path="external_ref",
        kind="customer",
        key="connectwise:4711",
    )
    assert isinstance(error, ConcurrencyConflict)
    assert isinstance(error, InvariantViolation)
    assert (error.rule, error.path, error.kind, error.key) == (
        "C10",
        "external_ref",
        "customer",
        "connectwise:4711",
    )
    assert str(error) == "external reference connectwise:4711 is taken (rule C10)"


def test_generic_callers_keep_working() -> None:
    with pytest.raises(ValueError, match="'city' must not be blank"):
        raise ValidationError([TWO])
    with pytest.raises(LookupError):
        raise NotFound("invoice", "inv_1")
    with pytest.raises(AltpayError):
        raise CurrencyMismatch("USD", "CAD")


# -- pickling -----------------------------------------------------------------


@pytest.mark.parametrize("error", EVERY_ERROR)
def test_every_error_pickles_with_its_attributes_and_message(error: AltpayError) -> None:
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(error, protocol=protocol))
        assert type(back) is type(error)
        assert str(back) == str(error)
        assert back.args == error.args
        assert vars(back) == vars(error)


@pytest.mark.parametrize("error", EVERY_ERROR)
def test_every_error_copies(error: AltpayError) -> None:
    for clone in (copy.copy(error), copy.deepcopy(error)):
        assert type(clone) is type(error)
        assert str(clone) == str(error)
        assert vars(clone) == vars(error)


paths = st.lists(
    st.one_of(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), st.integers(0, 9).map("[{}]".format)),
    max_size=4,
).map(lambda parts: "".join(p if p.startswith("[") else f".{p}" for p in parts).lstrip("."))
field_errors = st.builds(
    FieldError, paths, st.from_regex(r"[a-z_]{1,12}", fullmatch=True), st.text()
)


@given(st.lists(field_errors, min_size=1, max_size=5))
def test_any_validation_error_pickles(errors: list[FieldError]) -> None:
    error = ValidationError(errors)
    back = pickle.loads(pickle.dumps(error))
    assert back.errors == errors
    assert str(back) == str(error)


# -- FieldError and paths -------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "path", "joined"),
    [
        ("", "email", "email"),
        ("users", "", "users"),
        ("users", "[1]", "users[1]"),
        ("users[1]", "email", "users[1].email"),
        ("customer", "users[1].email", "customer.users[1].email"),
        ("", "", ""),
    ],
)
def test_join_path(prefix: str, path: str, joined: str) -> None:
    assert join_path(prefix, path) == joined


def test_field_error_is_a_frozen_value() -> None:
    assert FieldError("city", "blank", "m") == FieldError("city", "blank", "m")
    assert hash(FieldError("city", "blank", "m")) == hash(FieldError("city", "blank", "m"))
    with pytest.raises(AttributeError):
        ONE.path = "x"  # type: ignore[misc]


def test_field_error_str_names_the_path_message_and_code() -> None:
    assert str(TWO) == "address.city: 'city' must not be blank [blank]"
    assert str(FieldError("", "invalid_json", "expected JSON")) == (
        "(value): expected JSON [invalid_json]"
    )


def test_field_error_under_a_prefix() -> None:
    assert FieldError("email", "c", "m").under("users[1]").path == "users[1].email"
    assert FieldError("", "c", "m").under("ein").path == "ein"
    assert FieldError("[0]", "c", "m").under("tags").path == "tags[0]"


# -- ValidationError ------------------------------------------------------------


def test_validation_error_with_one_field() -> None:
    error = ValidationError([ONE])
    assert error.errors == [ONE]
    assert str(error) == ("users[1].email: 'email' must be a valid email address [invalid_email]")
    assert error.message == str(error)


def test_validation_error_lists_every_field_readably() -> None:
    error = ValidationError([ONE, TWO])
    assert str(error) == (
        "2 invalid fields:\n"
        "  - users[1].email: 'email' must be a valid email address [invalid_email]\n"
        "  - address.city: 'city' must not be blank [blank]"
    )


def test_validation_error_accepts_one_field_error_or_any_iterable() -> None:
    assert ValidationError(ONE).errors == [ONE]
    assert ValidationError(e for e in (ONE, TWO)).errors == [ONE, TWO]
    assert ValidationError((ONE,)).errors == [ONE]


def test_validation_error_needs_a_field_error() -> None:
    with pytest.raises(ValueError, match="at least one FieldError"):
        ValidationError([])


def test_single_paths_and_codes() -> None:
    error = ValidationError.single("postal_code", "invalid_postal_code", "bad")
    assert error.errors == [FieldError("postal_code", "invalid_postal_code", "bad")]
    both = ValidationError([ONE, TWO])
    assert both.paths == ["users[1].email", "address.city"]
    assert both.codes == ["invalid_email", "blank"]


def test_under_puts_every_error_below_a_prefix() -> None:
    error = ValidationError([FieldError("", "invalid_email", "m"), TWO]).under("customer")
    assert isinstance(error, ValidationError)
    assert error.paths == ["customer", "customer.address.city"]
    assert error.codes == ["invalid_email", "blank"]


_FIELD_ERROR_CLASSES = [ValidationError, ArgumentError, OperandError]


@pytest.mark.parametrize("cls", _FIELD_ERROR_CLASSES)
def test_single_builds_an_error_of_the_class_it_is_called_on(cls: type[ValidationError]) -> None:
    error = cls.single("other", "wrong_type", "money adds only to money")
    assert type(error) is cls
    assert error.errors == [FieldError("other", "wrong_type", "money adds only to money")]
    assert isinstance(error, TypeError) is (cls is not ValidationError)


@pytest.mark.parametrize("cls", _FIELD_ERROR_CLASSES)
@given(prefix=st.sampled_from(["users[1]", "address", "amounts[inv_1]", ""]), path=st.text())
def test_under_keeps_the_class_and_its_attributes(
    cls: type[ValidationError], prefix: str, path: str
) -> None:
    error = cls.single(path, "wrong_type", "m")
    error.add_note("a note of the error under is called on")
    moved = error.under(prefix)
    assert type(moved) is cls
    assert isinstance(moved, TypeError) is (cls is not ValidationError)
    assert moved.paths == [join_path(prefix, path)]
    assert moved.codes == ["wrong_type"]
    assert str(moved) == str(ValidationError([e.under(prefix) for e in error.errors]))
    assert not hasattr(moved, "__notes__")
    assert pickle.loads(pickle.dumps(moved)).paths == moved.paths


# -- FieldErrors ------------------------------------------------------------------


def _positive(value: int) -> int:
    if value <= 0:
        raise ValidationError.single("", "not_positive", "must be positive")
    return value


def test_field_errors_collects_everything_then_raises_once() -> None:
    found = FieldErrors()
    assert not found
    assert found.check("count", _positive, 3) == 3
    assert found.check("limit", _positive, value=-1) is None
    found.add("name", "blank", "'name' must not be blank")
    assert found
    assert [(e.path, e.code) for e in found] == [("limit", "not_positive"), ("name", "blank")]
    with pytest.raises(ValidationError) as info:
        found.raise_if_any()
    assert info.value.paths == ["limit", "name"]


def test_field_errors_without_errors_does_not_raise() -> None:
    found = FieldErrors()
    found.check("count", _positive, 1)
    found.raise_if_any()
    assert list(found) == []


def test_field_errors_lets_other_errors_through() -> None:
    def broken(_: object) -> None:
        raise InvariantViolation("no", rule="C1")

    with pytest.raises(InvariantViolation):
        FieldErrors().check("x", broken, 1)


# -- the other errors -------------------------------------------------------------------


def test_altpay_error_default_message() -> None:
    assert str(AltpayError()) == "altpay-core error"
    assert str(AltpayError("boom")) == "boom"
    assert AltpayError("boom").message == "boom"


def test_invariant_violation_names_the_rule() -> None:
    error = InvariantViolation("a customer needs at least one user", rule="C5", path="users")
    assert str(error) == "a customer needs at least one user (rule C5)"
    assert (error.rule, error.path) == ("C5", "users")
    assert InvariantViolation("x", rule="C1").path == ""


def test_not_found_keeps_kind_and_key() -> None:
    error = NotFound("customer", 42)
    assert str(error) == "no customer '42'"
    assert (error.kind, error.key) == ("customer", "42")


def test_concurrency_conflict() -> None:
    error = ConcurrencyConflict(kind="customer", key="cus_1")
    assert str(error) == ConcurrencyConflict.default_message
    assert (error.kind, error.key) == ("customer", "cus_1")
    assert str(ConcurrencyConflict("external id taken")) == "external id taken"


def test_permission_denied() -> None:
    error = PermissionDenied(role="read_only", action="pay invoices")
    assert str(error) == "role 'read_only' may not pay invoices"
    assert (error.role, error.action) == ("read_only", "pay invoices")


def test_currency_mismatch() -> None:
    error = CurrencyMismatch("USD", "CAD", "compare")
    assert str(error) == "cannot compare USD with CAD"
    assert (error.left, error.right, error.operation) == ("USD", "CAD", "compare")
    assert CurrencyMismatch("USD", "JPY").operation == "combine"


def test_all_is_sorted_and_complete() -> None:
    assert errors_module.__all__ == sorted(errors_module.__all__)
    assert all(getattr(errors_module, name).__doc__ for name in errors_module.__all__)


# -- input echoed back: never a wall of text ----------------------------------------------

LONG = "x" * 100_000
_PARTNER = Partner.create(name="Northwind", country="US").add_team_member(
    name="Ada", email="ada@n.example", role="admin"
)


def _raise(error: Exception) -> None:
    raise error


@pytest.mark.parametrize(
    "build",
    [
        lambda: Money(LONG, "USD"),
        lambda: Money("0." + "1" * 100_000, "USD"),  # too_precise
        lambda: Money(Decimal("0." + "1" * 100_000), "USD"),
        lambda: Money("1", LONG),
        lambda: Currency(LONG),
        lambda: Money("1.005", "USD", rounding=LONG),
        lambda: Money("1.00", "USD").percent("1", rounding=LONG),
        lambda: Money("1.00", "USD").multiply(Decimal("0." + "1" * 100_000)),
        lambda: Money("1", "USD").allocate([1, "-" + "1" * 100_000]),
        lambda: Money("1", "USD").allocate([1, -(10**5000)]),  # a ValueError escaped
        lambda: Money("1", "USD").split(10**5000),  # a ValueError escaped
        lambda: from_dict(Money, {LONG: 1, "amount": "1", "currency": "USD"}),
        lambda: from_dict(ExternalRef, {LONG: 1, "system": "cw", "id": "1"}),
        lambda: from_dict(Address, {LONG: 1}),
        lambda: from_dict(dt.datetime, LONG),
        lambda: from_dict(dt.date, LONG),
        lambda: from_dict(Decimal, LONG),
        lambda: from_dict(CardFeeBearer, LONG),
        lambda: from_dict(Event, {"topic": LONG}),
        lambda: from_dict(
            CardFeePolicy,
            {"bearer": LONG, "rate_percent": LONG, "fixed": {"amount": LONG, "currency": LONG}},
        ),
        lambda: CardFeePolicy(CardFeeBearer.CUSTOMER, LONG, Money("0.30", "USD")),  # type: ignore[arg-type]
        lambda: _raise(NotFound("integration", LONG)),
        lambda: Partner.create(name="Northwind", country=LONG),
        lambda: _PARTNER.add_team_member(name="Bo", email="bo@n.example", role=LONG),
        lambda: _PARTNER.add_tag(name="VIP", colour=LONG),
        lambda: CustomerUser.new(first_name="A", last_name="B", email=LONG),
        lambda: _PARTNER.connect_integration("cw", syncs_customers=True).connect_integration(LONG),
        lambda: from_dict(CustomerUser, {LONG: 1}),
        lambda: from_dict(LineItem, {LONG: 1}),
        lambda: from_dict(
            Event, {"topic": "customer_created", "aggregate_id": 5, "changes": [LONG]}
        ),
    ],
)
def test_messages_show_at_most_a_slice_of_the_input(build: Any) -> None:
    # Each echoed the whole input before (100,000 characters).
    with pytest.raises(AltpayError) as caught:
        build()
    assert len(str(caught.value)) < 1000
    if isinstance(caught.value, ValidationError):
        assert all(len(e.message) < 400 for e in caught.value.errors)


@given(st.text(max_size=200) | st.integers() | st.decimals() | st.binary(max_size=200))
@example("y" * 40)
@example("y" * 41)
@example(10**39)
@example(10**40)
def test_shown_input_is_cut_short_but_recognisable(value: object) -> None:
    # At most 40 characters of the input; text is cut before it is quoted.
    if isinstance(value, str):
        expected = repr(value) if len(value) <= 40 else f"{value[:40]!r}..."
    else:
        whole = repr(value)
        expected = whole if len(whole) <= 40 else f"{whole[:40]}..."
    assert errors_module.shown(value) == expected


def test_cut_keeps_up_to_its_limit_whole() -> None:
    assert errors_module.cut("x" * 40) == "x" * 40
    assert errors_module.cut("x" * 41) == "x" * 40 + "..."
    assert errors_module.cut("abc", limit=3) == "abc"
    assert errors_module.cut("abcd", limit=3) == "abc..."


def test_errors_must_all_be_field_errors() -> None:
    with pytest.raises(ValidationError) as caught:
        ValidationError([FieldError("a", "b", "c"), "oops"])  # type: ignore[list-item]
    assert caught.value.codes == ["wrong_type"]


@pytest.mark.parametrize("errors", ["oops", b"oops", bytearray(b"oops"), memoryview(b"oops")])
def test_text_and_binary_data_are_no_list_of_errors(errors: object) -> None:
    # Named as they are, not by the characters or bytes inside them.
    with pytest.raises(ValidationError) as caught:
        ValidationError(errors)  # type: ignore[arg-type]
    assert (caught.value.paths, caught.value.codes) == (["errors"], ["wrong_type"])
    assert f"(got {type(errors).__name__})" in caught.value.errors[0].message


def test_a_long_path_is_cut_short_in_the_message_but_kept_whole() -> None:
    error = FieldError(LONG, "unknown_field", "not a field")
    assert error.path == LONG
    assert len(str(error)) < 250
    # A path the library makes is shown whole.
    made = "amounts[inv_e2ea496cb97a498480187cc83f99aa01].amount"
    assert str(FieldError(made, "too_precise", "too precise")).startswith(made + ":")


# -- input that cannot be printed ---------------------------------------------------

# Python refuses to turn an int of more than 4,300 digits into text, so a
# message or a path built from one raised ValueError instead of the error.
HUGE = 10**5000
_ADDRESS = {
    "line1": "1 Main St",
    "city": "Albany",
    "region": "NY",
    "postal_code": "12207",
    "country": "US",
}


def _unprintable_cases() -> dict[str, Any]:
    from altpay_core import Customer, CustomerDraft, Invoice, pay_invoices

    today = dt.date(2026, 1, 5)
    partner = Partner.create(name="N", country="US")
    partner = partner.add_team_member(name="A", email="a@n.example", role="admin")
    admin = partner.team[0]
    customer = (
        CustomerDraft.start(partner)
        .enter_details(company="Globex", address=_ADDRESS)
        .add_user(first_name="Ann", last_name="Lee", email="ann@globex.example")
        .create()
    )

    def issue(line: dict[object, object]) -> object:
        return Invoice.issue(
            partner,
            customer,
            by=admin,
            number="1",
            lines=[line],
            due_date=dt.date(2026, 2, 1),
            today=today,
        )

    line = {"description": "Support", "quantity": 1, "unit_amount": "100.00"}
    invoice: Any = issue(line)
    synced = partner.connect_integration("connectwise", syncs_customers=True)
    user = {"first_name": "Ann", "last_name": "Lee", "email": "ann@globex.example"}
    return {
        "a line's quantity": lambda: issue({**line, "quantity": HUGE}),
        "a line's key": lambda: issue({**line, HUGE: 1}),
        "a key of amounts": lambda: pay_invoices(
            partner,
            customer,
            [invoice],
            payer=customer.users[0],
            method="ach",
            idempotency_key="k",
            amounts={HUGE: "1.00"},
        ),
        "a synced user's key": lambda: Customer.from_sync(
            synced,
            external_ref=ExternalRef(system="connectwise", id="1"),
            company="Globex",
            address=_ADDRESS,
            users=[{**user, HUGE: 1}],
        ),
        "an address's key": lambda: CustomerDraft.start(partner).enter_details(
            company="Globex", address={**_ADDRESS, HUGE: 1}
        ),
        "a key of money's data": lambda: from_dict(
            Money, {"amount": "1.00", "currency": "USD", HUGE: 1}
        ),
        "a key of an aggregate's data": lambda: from_dict(Partner, {HUGE: 1}),
    }


@pytest.mark.parametrize("case", list(_unprintable_cases()))
def test_input_too_long_to_print_is_named_in_a_validation_error(case: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _unprintable_cases()[case]()
    # The error prints, and names the key by its type where its text is none.
    assert str(caught.value)
    assert all(len(path) < 100 for path in caught.value.paths)


def test_a_key_is_named_by_its_text_or_else_its_type() -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    assert errors_module.key_text("email") == "email"
    assert errors_module.key_text(3) == "3"
    assert errors_module.key_text(HUGE) == "int"
    assert errors_module.key_text(Unprintable()) == "Unprintable"

    class Named(str):
        def __str__(self) -> str:
            return Named("shown")

    # Plain text, whatever the key's class or what its __str__ gives.
    assert type(errors_module.key_text(Named("email"))) is str
    assert type(errors_module.key_text(type("Key", (), {"__str__": Named.__str__})())) is str


def test_shown_input_is_the_same_in_any_decimal_context_and_with_a_failing_repr() -> None:
    class FailingRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    with decimal.localcontext(decimal.Context(capitals=0)):
        assert errors_module.shown(Decimal("1E+3")) == "Decimal('1E+3')"
    assert errors_module.shown(FailingRepr()) == "FailingRepr"

    class Amount(Decimal):
        def __repr__(self) -> str:
            return f"Amount({str(self)!r})"

    # A subclass of Decimal with a repr of its own is shown by it, as any
    # other value; one that keeps Decimal's is shown as a Decimal.
    assert errors_module.shown(Amount("1E+3")) == "Amount('1E+3')"
    assert errors_module.shown(type("Plain", (Decimal,), {})("1E+3")) == "Decimal('1E+3')"


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


@pytest.mark.parametrize("key", [HUGE, _Unprintable()], ids=["huge-int", "unprintable"])
def test_a_key_with_no_text_is_named_by_its_type(key: object) -> None:
    name = type(key).__name__
    found = NotFound("customer", key)
    assert (found.key, str(found)) == (name, f"no customer {name!r}")
    assert ConcurrencyConflict(kind="customer", key=key).key == name
    taken = UniqueKeyTaken("taken", rule="C10", path="external_ref", kind="customer", key=key)
    assert taken.key == name


_NOT_TEXT = st.one_of(st.integers(), st.binary(), st.lists(st.text(), max_size=2), st.floats())


@pytest.mark.parametrize(
    ("build", "texts"),
    [
        pytest.param(lambda v: AltpayError(v["message"]), ["message"], id="AltpayError"),
        pytest.param(
            lambda v: InvariantViolation(v["message"], rule=v["rule"], path=v["path"]),
            ["message", "rule", "path"],
            id="InvariantViolation",
        ),
        pytest.param(lambda v: NotFound(v["kind"], "cus_1"), ["kind"], id="NotFound"),
        pytest.param(
            lambda v: ConcurrencyConflict(v["message"], kind=v["kind"]),
            ["message", "kind"],
            id="ConcurrencyConflict",
        ),
        pytest.param(
            lambda v: UniqueKeyTaken(
                v["message"], rule=v["rule"], path=v["path"], kind=v["kind"], key="k"
            ),
            ["message", "rule", "path", "kind"],
            id="UniqueKeyTaken",
        ),
        pytest.param(
            lambda v: PermissionDenied(role=v["role"], action=v["action"]),
            ["role", "action"],
            id="PermissionDenied",
        ),
        pytest.param(
            lambda v: CurrencyMismatch(v["left"], v["right"], v["operation"]),
            ["left", "right", "operation"],
            id="CurrencyMismatch",
        ),
    ],
)
@given(data=st.data())
def test_an_error_refuses_what_is_not_text_where_it_keeps_text(
    build: Any, texts: list[str], data: st.DataObject
) -> None:
    wrong = data.draw(st.lists(st.sampled_from(texts), min_size=1, unique=True))
    values = {name: data.draw(_NOT_TEXT) if name in wrong else "x" for name in texts}
    with pytest.raises(ValidationError) as caught:
        build(values)
    assert type(caught.value) is ValidationError
    assert caught.value.paths == [name for name in texts if name in wrong]
    assert set(caught.value.codes) == {"wrong_type"}
    # With text everywhere, the error is built and prints.
    assert str(build(dict.fromkeys(texts, "x")))
