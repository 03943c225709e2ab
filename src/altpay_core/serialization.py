"""Turning every public type into plain data and back.

One converter, configured here for the whole library (never cattrs' global
one): :func:`to_dict` gives JSON-ready data (amounts as decimal strings, dates
as ISO 8601, ids and emails as strings) and :func:`from_dict` rebuilds the
value through its real constructor, so every rule is checked again.

>>> from altpay_core import Money
>>> to_dict(Money("12.50", "USD"))
{'amount': '12.50', 'currency': 'USD'}
>>> from_dict(Money, {"amount": "12.50", "currency": "USD"})
Money('12.50', 'USD')

Anything wrong with the input is reported as one
:class:`~altpay_core.errors.ValidationError` whose errors locate every bad
field (``users[1].email``); nothing else escapes.
"""

from __future__ import annotations

import collections
import datetime as dt
import enum
import functools
import json
import math
import re
import types
from collections.abc import (
    Callable,
    Iterable,
    Mapping,
    MutableMapping,
    MutableSequence,
    MutableSet,
    Sequence,
)
from collections.abc import Set as AbstractSet
from decimal import Decimal
from typing import (
    Annotated,
    Any,
    Final,
    Literal,
    NewType,
    NoReturn,
    TypeVar,
    Union,
    cast,
    get_args,
    get_origin,
    overload,
)

import attrs
import cattrs
from cattrs.errors import (
    BaseValidationError,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
    StructureHandlerNotFoundError,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from . import _fields
from ._arguments import checked_arguments, unchecked_init
from .customer import Customer, CustomerStatus, CustomerUser
from .errors import (
    AltpayError,
    FieldError,
    InvariantViolation,
    ValidationError,
    fields_only,
    input_is_unshown,
    input_unshown,
    join_path,
    key_text,
    not_shown,
    shown,
)
from .events import EVENT_TYPES, Event
from .invoice import AppliedPayment, Fee, FeeKind, Invoice, InvoiceStatus, LineItem
from .money import _CONTEXT, Currency, Money, decimal_from_text, plain_decimal
from .partner import CardFeeBearer
from .payment import (
    CustomerPaymentMethods,
    PaymentMethod,
    PaymentMethodType,
    known_method_type,
)
from .ports import OutboxMessage, Page
from .values import (
    EIN,
    Address,
    CustomerId,
    EmailAddress,
    EntityId,
    ExternalRef,
    InvoiceId,
    PartnerId,
    PaymentId,
    TagId,
    TeamMemberId,
    UserId,
)

__all__ = ["from_dict", "from_json", "make_converter", "to_dict", "to_json"]

T = TypeVar("T")


def _type_name(cls: object) -> str:
    if get_origin(cls) in (Union, types.UnionType):
        return " | ".join(_type_name(member) for member in get_args(cls))
    return getattr(cls, "__name__", None) or str(cls)


def _strict(kind: type[Any], label: str) -> Callable[[object, Any], Any]:
    # cattrs' default hooks coerce (str(5), int("5"), bool("no")); data from
    # outside must already have the right type.
    def structure(value: object, target: Any) -> Any:
        if target is not kind:
            # Registered by class, so subclasses come here too: an enum with
            # str or int values (StrEnum, IntEnum) is read by its value.
            return _enum_member(value, target)
        if type(value) is kind:
            return value
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            # Kept as the plain type (a bool has no subclass): a subclass's
            # own __eq__ or __hash__ could pass it for another value.
            return _PLAIN[kind](value)
        raise ValidationError.single(
            "", "wrong_type", f"must be {label} (got {type(value).__name__})"
        )

    return structure


# Each plain type's own conversion, which a subclass cannot change.
_PLAIN: Final[dict[type, Callable[[Any], Any]]] = {
    str: str.__str__,
    int: int.__int__,
    float: float.__float__,
}


def _from_str(cls: Callable[[str], T], label: str) -> Callable[[object, object], T]:
    def structure(value: object, _: object) -> T:
        if not isinstance(value, str):
            raise ValidationError.single(
                "", "wrong_type", f"must be {label} as a string (got {type(value).__name__})"
            )
        return cls(_fields.plain_str(value))

    return structure


def _money(value: object, _: object) -> Money:
    data = _mapping(value, "money")
    found: list[FieldError] = [
        FieldError(key_text(key), "unknown_field", f"{_key(key)} is not a field of money")
        for key in data
        if key not in ("amount", "currency")
    ]
    for key in ("amount", "currency"):
        if key not in data:
            found.append(FieldError(key, "missing", f"'{key}' is required"))
    # Money also takes a Decimal amount and a Currency, which to_dict never
    # writes: data from outside has the amount and the code as text (or the
    # amount as a whole number), as every other value is read.
    objects = [
        FieldError(key, "wrong_type", f"'{key}' must be {label} (got {type(data[key]).__name__})")
        for key, kind, label in _MONEY_OBJECTS
        if isinstance(data.get(key), kind)
    ]
    if not found and not objects:
        return Money(data["amount"], data["currency"])
    if "amount" in data and "currency" in data:
        # Report what is wrong with the amount and the currency as well.
        try:
            Money(data["amount"], data["currency"])
        except ValidationError as error:
            refused = {e.path for e in objects}
            objects.extend(e for e in error.errors if e.path not in refused)
    # The amount's errors first, then the currency's, as Money reports them.
    found.extend(sorted(objects, key=lambda e: e.path != "amount"))
    raise ValidationError(found)


_MONEY_OBJECTS: Final = (
    ("amount", Decimal, "a decimal number as a string or a whole number"),
    ("currency", Currency, "an ISO 4217 code as a string such as 'USD'"),
)


def _key(key: object) -> str:
    # A key as a message names it: as its path does, cut short.
    return shown(key_text(key))


def _unknown_field(key: object, name: str) -> FieldError:
    if input_is_unshown():
        # The key may itself be a card number put in the wrong place: the
        # error names the object it was found in, not the key.
        return FieldError(
            "", "unknown_field", f"'value' has a key ({_key(key)}) that is not a field of {name}"
        )
    return FieldError(key_text(key), "unknown_field", f"{_key(key)} is not a field of {name}")


def _mapping(value: object, label: str) -> Mapping[str, Any]:
    """``value``, a mapping, its keys plain (see :func:`_fields.plain_keys`):
    a key is looked up, compared and tested against the fields as itself."""
    # A plain dict is by far the usual input: skip the slower ABC check.
    if type(value) is not dict and not isinstance(value, Mapping):
        raise ValidationError.single(
            "", "wrong_type", f"must be {label} (got {type(value).__name__})"
        )
    return _fields.plain_keys(value)


def _address(value: object, _: object) -> Address:
    return Address.from_mapping(_mapping(value, "an address"))


def _from_isoformat(text: str) -> dt.datetime:
    """``datetime.fromisoformat``, strictly: CPython's stops reading at a NUL
    character, and would read ``"...+00:00\\x00"`` as a time.

    ``text`` is a plain ``str`` (the callers see to it): a subclass's own
    ``__contains__`` could hide the NUL."""
    if "\x00" in text:
        raise ValueError("a date and time holds no NUL character")
    return dt.datetime.fromisoformat(text)


def _datetime(value: object, _: object) -> dt.datetime:
    if isinstance(value, str):
        try:
            parsed = _from_isoformat(_fields.plain_str(value))
            # What to_dict writes is already in UTC: keep it as it is.
            if parsed.tzinfo is not None:
                return parsed if parsed.tzinfo is dt.UTC else parsed.astimezone(dt.UTC)
        except (ValueError, OverflowError):  # OverflowError: no such time in UTC
            pass
    raise ValidationError.single(
        "",
        "invalid_datetime",
        f"must be an ISO 8601 date and time with a UTC offset (got {shown(value)})",
    )


def _date(value: object, _: object) -> dt.date:
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(_fields.plain_str(value))
        except ValueError:
            pass
    raise ValidationError.single(
        "", "invalid_date", f"must be an ISO 8601 date like 2026-01-31 (got {shown(value)})"
    )


def _decimal(value: object, _: object) -> Decimal:
    # As strict as an amount (money.decimal_from_text): ASCII decimal text,
    # plain or with an exponent (earlier versions wrote a rate as str() of
    # the Decimal given: "1E+1", "1E-7"), or a whole number.
    parsed: Decimal | None = None
    if isinstance(value, str):
        parsed = decimal_from_text(_fields.plain_str(value))
    elif isinstance(value, int) and not isinstance(value, bool):
        parsed = Decimal(_fields.plain_int(value))
    elif isinstance(value, float):  # as the constructors refuse one
        raise ValidationError.single(
            "",
            "float_refused",
            f"must be a decimal number as a string, never a float (got {shown(value)}); "
            "floats cannot hold it exactly",
        )
    if parsed is None:
        raise ValidationError.single(
            "", "invalid_decimal", f"must be a decimal number as a string (got {shown(value)})"
        )
    return parsed


# Decimals written in plain form ("10", "0.0000001") when it is at most this
# many digits long; a Decimal of the caller's own beyond it keeps str()'s form.
_PLAIN_DIGITS: Final = 1100


def _decimal_data(number: Decimal) -> str:
    """A ``Decimal`` as to_dict writes it: plain text (no exponent, no
    negative zero) with its decimal places, ``"2.90"``, as an amount is;
    beyond ``_PLAIN_DIGITS`` digits, with an exponent, but a zero never
    with one: a zero with no decimal places or more than ``_PLAIN_DIGITS``
    of them (``0E+2000``, ``0E-20000000``) is one digit, ``"0"``. NaN and
    the infinities, which no reader takes, are not written."""
    if not number.is_finite():
        raise TypeError(f"{number} is not a decimal number")
    # A zero's adjusted() is its exponent: its places are bounded here too.
    if -_PLAIN_DIGITS <= number.adjusted() <= _PLAIN_DIGITS:
        return format(plain_decimal(number), "f")
    return "0" if not number else _CONTEXT.to_sci_string(number)


def _datetime_data(moment: dt.datetime) -> str:
    """A datetime as to_dict writes it: ISO 8601 with its UTC offset. A
    naive one, which no reader takes (``invalid_datetime``), is not
    written."""
    # datetime's own methods, not the value's: a subclass's utcoffset() could
    # call a naive time aware, and its isoformat() write any text.
    text = dt.datetime.isoformat(moment)
    if dt.datetime.utcoffset(moment) is None:
        raise TypeError(f"{text} is a naive datetime: only a timezone-aware one is written")
    return text


def _date_data(day: dt.date) -> str:
    """A date as to_dict writes it: ISO 8601, ``"2026-01-31"``. A datetime
    (a date too, to Python) where a date is written, which no reader takes
    as a date (``invalid_date``), is not written."""
    if isinstance(day, dt.datetime):
        raise TypeError(f"{day.isoformat()} is a datetime where a date is written")
    return day.isoformat()


def _enum_member(value: object, cls: type[enum.Enum]) -> enum.Enum:
    if isinstance(value, cls):
        return value
    # Looked up as the plain type: a subclass's own __eq__ could match any
    # member, and one without __hash__ would raise a TypeError.
    if isinstance(value, str):
        value = _fields.plain_str(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        value = _fields.plain_int(value)
    try:
        member = cls(value)
    except ValueError:
        raise _no_member(value, cls) from None
    # Of the member's own type, as the plain types are read: true is no 1,
    # and 1.0 no 1 (Python finds the member by equality alone).
    kinds = {type(value), type(member.value)}
    if len(kinds) > 1 and kinds <= _SCALARS:
        raise _no_member(value, cls)
    return member


_SCALARS: Final = frozenset({bool, int, float, str})


def _is_literal(cls: object) -> bool:
    return get_origin(cls) is _LITERAL


_LITERAL: Final[object] = Literal


def _literal(cls: Any) -> Callable[[object, object], Any]:
    # cattrs' own hook finds a value by equality alone (true is 1 to it) and
    # says nothing of the values allowed. Each value is read as an
    # enumeration's is: only as a value of its own type (an enumeration's
    # member, as its value).
    choices = [
        (choice, choice.value if isinstance(choice, enum.Enum) else choice)
        for choice in get_args(cls)
    ]
    shown_choices = ", ".join(repr(value) for _, value in choices)

    def structure(value: object, _: object) -> Any:
        if isinstance(value, str):
            value = _fields.plain_str(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            value = _fields.plain_int(value)
        for choice, written in choices:
            if type(written) is type(value) and written == value:
                return choice
        raise ValidationError.single(
            "", "invalid_choice", f"must be one of {shown_choices} (got {shown(value)})"
        )

    return structure


def _no_member(value: object, cls: type[enum.Enum]) -> ValidationError:
    choices = ", ".join(repr(m.value) for m in cls)
    return ValidationError.single(
        "", "invalid_choice", f"must be one of {choices} (got {shown(value)})"
    )


def _method_type(value: object, cls: type[PaymentMethodType]) -> PaymentMethodType:
    """A kind of method. Valid data, read at every read of a payment, is
    read quickly; only other data is read within :func:`_unshown`, so that
    what came is never shown."""
    kind = known_method_type(value)
    if kind is None:
        kind = _unshown(_enum_member)(value, cls)
    return kind


# The collections read from a JSON array, each with the types it reads (a
# list, a tuple built in Python, and a set for a set) and what it is built
# as (an abstract one as cattrs builds it): the domain's tuple[X, ...] and
# frozenset[X], and the lists, sets and sequences a caller may ask for.
_ARRAY: Final = (list, tuple)
_ARRAY_OR_SET: Final = (list, tuple, set, frozenset)
_COLLECTIONS: Final[dict[object, tuple[Callable[[Any], Any], tuple[type, ...]]]] = {
    tuple: (tuple, _ARRAY),
    list: (list, _ARRAY),
    Sequence: (tuple, _ARRAY),
    MutableSequence: (list, _ARRAY),
    collections.deque: (collections.deque, _ARRAY),
    frozenset: (frozenset, _ARRAY_OR_SET),
    set: (set, _ARRAY_OR_SET),
    AbstractSet: (frozenset, _ARRAY_OR_SET),
    MutableSet: (set, _ARRAY_OR_SET),
}


def _is_collection(cls: object) -> bool:
    """``tuple[X, ...]``, ``list[X]``, ``frozenset[X]``, ``set[X]``,
    ``Sequence[X]`` and the like, or one of them bare (``list``: of anything)."""
    if cls in _COLLECTIONS:
        return True
    args = get_args(cls)
    origin = get_origin(cls)
    if origin is tuple:
        return len(args) == 2 and args[1] is Ellipsis
    return origin in _COLLECTIONS and len(args) == 1


def _collection(
    conv: cattrs.Converter, cls: Any, detailed: bool
) -> Callable[[object, object], Any]:
    # cattrs' own hooks take any iterable, so a string would become a tuple of
    # its characters and a dict the tuple of its keys: only a JSON array is a
    # collection here.
    item_type = get_args(cls)[0] if get_args(cls) else Any
    item = conv.get_structure_hook(item_type)
    build, accepted = _COLLECTIONS[get_origin(cls) or cls]

    def structure(value: object, _: object) -> Any:
        if not isinstance(value, accepted):
            raise ValidationError.single(
                "", "wrong_type", f"must be a list (got {type(value).__name__})"
            )
        elements = cast("Iterable[Any]", value)
        if isinstance(value, set | frozenset):
            # Errors name items by index: a set's, in an order that is the
            # same in every process (its own follows its items' hashes).
            elements = _fields.in_stable_order(elements)
        if not detailed:
            return build([item(v, item_type) for v in elements])
        return build(_items(cls, ((v, item, item_type) for v in elements)))

    return structure


def _items(
    cls: Any, reads: Iterable[tuple[object, Callable[[object, Any], Any], Any]]
) -> list[Any]:
    """Each value read by its hook as its type, in order; as cattrs does, an
    error notes the index where it happened, and all of them are reported."""
    found: list[Exception] = []
    items: list[Any] = []
    for index, (value, hook, kind) in enumerate(reads):
        try:
            items.append(hook(value, kind))
        except Exception as error:
            found.append(_noted(error, cls, index, kind))
    if found:
        raise IterableValidationError(f"While structuring {cls!r}", found, cls)
    return items


def _noted(error: Exception, cls: Any, where: Any, kind: Any) -> Exception:
    """``error`` with a note, as cattrs adds, of where in ``cls`` it happened:
    an item's index, or a mapping's key (of any type, as cattrs notes it)."""
    error.__notes__ = [
        *getattr(error, "__notes__", []),
        IterableValidationNote(f"Structuring {cls} @ {where!r}", where, kind),
    ]
    return error


def _is_fixed_tuple(cls: object) -> bool:
    """``tuple[X, Y]``: a tuple with a type for each of its items."""
    return get_origin(cls) is tuple and Ellipsis not in get_args(cls)


def _fixed_tuple(
    conv: cattrs.Converter, cls: Any, detailed: bool
) -> Callable[[object, object], Any]:
    # cattrs' own hook reads any iterable, up to the shorter of it and the
    # types: a string would be read as a tuple of its characters, and items
    # beyond the types dropped. Only a JSON array of exactly one item per
    # type is such a tuple here.
    kinds = get_args(cls)
    hooks = [conv.get_structure_hook(kind) for kind in kinds]
    wanted = f"a list of {len(kinds)} item{'' if len(kinds) == 1 else 's'}"

    def structure(value: object, _: object) -> Any:
        if not isinstance(value, list | tuple):
            raise ValidationError.single(
                "", "wrong_type", f"must be {wanted} (got {type(value).__name__})"
            )
        if len(value) != len(kinds):
            raise ValidationError.single("", "wrong_type", f"must be {wanted} (got {len(value)})")
        if not detailed:
            return tuple([hook(v, kind) for v, hook, kind in zip(value, hooks, kinds, strict=True)])
        return tuple(_items(cls, zip(value, hooks, kinds, strict=True)))

    return structure


# The mappings read from a JSON object, each to what it is built as.
_MAPPINGS: Final[dict[object, type[dict[Any, Any]]]] = {
    dict: dict,
    Mapping: dict,
    MutableMapping: dict,
    collections.OrderedDict: collections.OrderedDict,
}


def _is_mapping(cls: object) -> bool:
    """``dict[K, V]``, ``Mapping[K, V]`` and the like, or one of them bare
    (``dict``: keys and values of any type)."""
    return cls in _MAPPINGS or (get_origin(cls) in _MAPPINGS and len(get_args(cls)) == 2)


def _keyed(conv: cattrs.Converter, cls: Any, detailed: bool) -> Callable[[object, object], Any]:
    # cattrs' own hooks read anything with .items() (a bare dict's, a list of
    # pairs too) and keep the last of two keys that read as one (text told
    # apart by a subclass's hash, or "usd" and "USD" as currencies): only an
    # object is read here, and a key that reads as one before it is
    # duplicate_key.
    key_type, value_type = get_args(cls) or (Any, Any)
    read_key = conv.get_structure_hook(key_type)
    read_value = conv.get_structure_hook(value_type)
    build = _MAPPINGS[get_origin(cls) or cls]

    def structure(value: object, _: object) -> Any:
        data = _mapping(value, "an object")
        result = build()
        given_as: dict[object, object] = {}  # each key read, as it was given
        found: list[Exception] = []
        for given, item in data.items():
            # Every key and every value is read, and each error noted at its key.
            try:
                key = read_key(given, key_type)
                if key in given_as:
                    raise _same_key(given_as[key])
                given_as[key] = given
            except Exception as error:
                if not detailed:
                    raise
                found.append(_noted(error, cls, given, key_type))
                key = _NO_KEY
            try:
                result[key] = read_value(item, value_type)
            except Exception as error:
                if not detailed:
                    raise
                found.append(_noted(error, cls, given, value_type))
        if found:
            raise IterableValidationError(f"While structuring {cls!r}", found, cls)
        return result

    return structure


_NO_KEY: Final = object()  # where a key that could not be read puts its value


def _same_key(first: object) -> ValidationError:
    return ValidationError.single(
        "", "duplicate_key", f"is the same key as {_key(first)}, given before it"
    )


def _is_optional(cls: object) -> bool:
    """``X | None`` (or ``Optional[X]``) for one type ``X``."""
    args = get_args(cls)
    return get_origin(cls) in (Union, types.UnionType) and len(args) == 2 and type(None) in args


def _allows_none(cls: object) -> bool:
    """A union with ``None`` in it: a field written as ``null`` when it has no value."""
    return get_origin(cls) in (Union, types.UnionType) and type(None) in get_args(cls)


def _optional(conv: cattrs.Converter, cls: Any) -> Callable[[object, object], Any]:
    # cattrs looks the hook of X up again on every call; look it up once.
    kind = next(arg for arg in get_args(cls) if arg is not type(None))
    hook = conv.get_structure_hook(kind)

    def structure(value: object, _: object) -> Any:
        return None if value is None else hook(value, kind)

    return structure


def _is_attrs(cls: object) -> bool:
    # A class, or a generic one with its parameters (``Page[Customer]``).
    return (isinstance(cls, type) or get_origin(cls) is not None) and attrs.has(cast(type, cls))


@checked_arguments
def make_converter(*, detailed_validation: bool = False) -> cattrs.Converter:
    """Build the library's converter.

    ``detailed_validation`` makes it record where each error happened; the
    module keeps one of each and uses the detailed one only to explain input
    that the fast one refused.
    """
    conv = cattrs.Converter(
        forbid_extra_keys=True,
        detailed_validation=detailed_validation,
        unstruct_collection_overrides={
            tuple: list,
            frozenset: sorted,
            set: sorted,
        },
    )
    # cattrs asks the hooks registered last first: the generic attrs hooks go
    # first so that the specific ones below (ids, money, ...) win over them.
    # Aggregates keep their pending events in fields that are not part of
    # their data (init=False); cattrs leaves those out both ways.
    conv.register_structure_hook_factory(
        _is_attrs, lambda cls: _attrs_structure(conv, cls, detailed_validation)
    )
    conv.register_unstructure_hook_factory(
        _is_attrs, lambda cls: make_dict_unstructure_fn(cls, conv, **_renames(cls))
    )
    # By class, not by predicate: cattrs looks classes up before predicates,
    # and has its own coercing hooks for str and int (bool goes to int's).
    for kind, label in (
        (str, "a string"),
        (int, "a whole number"),
        (bool, "true or false"),
        (float, "a floating-point number"),
    ):
        conv.register_structure_hook(kind, _strict(kind, label))
    conv.register_structure_hook_factory(
        _is_collection, lambda cls: _collection(conv, cls, detailed_validation)
    )
    conv.register_structure_hook_factory(
        _is_fixed_tuple, lambda cls: _fixed_tuple(conv, cls, detailed_validation)
    )
    conv.register_structure_hook_factory(
        _is_mapping, lambda cls: _keyed(conv, cls, detailed_validation)
    )
    conv.register_structure_hook_factory(_is_optional, lambda cls: _optional(conv, cls))
    conv.register_structure_hook_factory(_is_literal, _literal)
    conv.register_structure_hook(Decimal, _decimal)
    conv.register_unstructure_hook(Decimal, _decimal_data)
    conv.register_structure_hook(dt.datetime, _datetime)
    # By class: cattrs finds a datetime's own hook (singledispatch, by the
    # value's class) before the date hook; only a datetime in a field typed
    # as a date reaches the date hook, which refuses it.
    conv.register_unstructure_hook(dt.datetime, _datetime_data)
    conv.register_structure_hook(dt.date, _date)
    conv.register_unstructure_hook(dt.date, _date_data)
    conv.register_structure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, enum.Enum), _enum_member
    )
    conv.register_unstructure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, enum.Enum), lambda e: e.value
    )
    # A StrEnum is a str too, and a str is written as it is: its value, a
    # plain str, is what JSON-ready data holds (the hook by class comes first
    # in StrEnum's order of classes, before str).
    conv.register_unstructure_hook(enum.StrEnum, lambda e: e.value)

    conv.register_structure_hook(Currency, _from_str(Currency, "a currency code"))
    conv.register_unstructure_hook(Currency, lambda c: c.code)
    conv.register_structure_hook(Money, _money)
    conv.register_unstructure_hook(
        Money, lambda m: {"amount": str(m.amount), "currency": m.currency.code}
    )
    conv.register_structure_hook(EmailAddress, _from_str(EmailAddress, "an email address"))
    conv.register_unstructure_hook(EmailAddress, str)
    conv.register_structure_hook(EIN, _from_str(EIN, "an EIN"))
    conv.register_unstructure_hook(EIN, str)
    conv.register_structure_hook(Address, _address)
    conv.register_structure_hook_factory(
        lambda t: isinstance(t, type) and issubclass(t, EntityId),
        # EntityId itself reads any kind by its prefix; each kind, only its own.
        lambda cls: _from_str(cls.parse if cls is EntityId else cls, "an id"),
    )
    conv.register_unstructure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, EntityId), str
    )

    # Invoices are read and written by the thousand (a payment stores the
    # invoices it pays): written out by hand, and read quickly when the data
    # is exactly as written, through the same constructors; customers (read
    # back by every look-up, synced again and again) are read quickly too.
    # See _read_quickly.
    if not detailed_validation:
        # The detailed converter only explains what the fast one refused.
        conv.register_structure_hook(
            Invoice,
            _read_quickly(_quick_invoice, _attrs_structure(conv, Invoice, detailed_validation)),
        )
        conv.register_structure_hook(
            Customer,
            _read_quickly(_quick_customer, _attrs_structure(conv, Customer, detailed_validation)),
        )
    conv.register_unstructure_hook(Invoice, _invoice_data)
    # A saved method's fields may hold a full card or account number given
    # in the wrong one: their errors never echo what came.
    for methods in _UNSHOWN_TYPES:
        conv.register_structure_hook(
            methods, _unshown(_attrs_structure(conv, methods, detailed_validation))
        )
    # So may a payment's method, where a kind of method is expected.
    conv.register_structure_hook(PaymentMethodType, _method_type)

    # Events carry their webhook topic, so that an outbox can read any of
    # them back as the right class: from_dict(Event, data) dispatches on it.
    conv.register_unstructure_hook_factory(_is_event, lambda cls: _event_unstructure(conv, cls))
    conv.register_structure_hook_factory(
        _is_event, lambda cls: _event_structure(conv, cls, detailed_validation)
    )
    # Errors are not data: a value that holds one (a DueRun's refusals) is
    # not written, and none is read; a DueRun with none reads back.
    conv.register_unstructure_hook_func(_is_error, _error_data)
    conv.register_structure_hook_func(_is_error, _error)
    return conv


def _is_error(cls: object) -> bool:
    return isinstance(cls, type) and issubclass(cls, BaseException)


def _error_data(error: BaseException) -> NoReturn:
    raise TypeError(f"an error ({type(error).__name__}) is not data")


def _error(value: object, cls: type[BaseException]) -> NoReturn:
    raise ValidationError.single(
        "", "unsupported_type", f"cannot read {cls.__name__}: an error is not data"
    )


def _is_event(cls: object) -> bool:
    return isinstance(cls, type) and issubclass(cls, Event)


def _event_unstructure(conv: cattrs.Converter, cls: type[Event]) -> Callable[[Event], Any]:
    fields = make_dict_unstructure_fn(cls, conv)

    def unstructure(event: Event) -> Any:
        if type(event) is not cls and isinstance(event, cls):
            # Where a base class is declared (an OutboxMessage's ``event:
            # Event``, a ``list[Event]``, a ``Page[Event]``'s items), an event
            # of a subclass (a service's own) is written as its class: its
            # topic and every field of its own, which reading it back needs.
            return conv.unstructure(event, unstructure_as=type(event))
        return {"topic": event.topic, **fields(event)}

    return unstructure


def _event_structure(
    conv: cattrs.Converter, cls: type[Event], detailed: bool
) -> Callable[[object, object], Event]:
    # Looked up at each read, not once: an event class defined after the
    # first read (a service's own topic) is read back too.
    structures: dict[type[Event], Callable[[object, object], Any]] = {}

    def structure(value: object, _: object) -> Event:
        data = dict(_mapping(value, "an event"))
        if "topic" not in data:
            raise ValidationError.single("topic", "missing", "'topic' is required")
        topic = data.pop("topic")
        kind = EVENT_TYPES.get(_fields.plain_str(topic)) if isinstance(topic, str) else None
        if kind is None or not issubclass(kind, cls):
            kinds = sorted(name for name, kind in EVENT_TYPES.items() if issubclass(kind, cls))
            raise ValidationError.single(
                "topic",
                "invalid_choice",
                f"'topic' must be one of {', '.join(kinds)} (got {shown(topic)})",
            )
        read = structures.get(kind)
        if read is None:
            read = structures[kind] = _attrs_structure(conv, kind, detailed)
        event: Event = read(data, kind)
        return event

    return structure


_UNSHOWN_TYPES: Final = (PaymentMethod, CustomerPaymentMethods)
"""The types whose data is read within :func:`~altpay_core.errors.input_unshown`."""


def _unshown(read: Callable[[object, Any], Any]) -> Callable[[object, object], Any]:
    """``read``, its errors giving no input back (:func:`~altpay_core.errors.input_unshown`)."""

    def structure(value: object, cls: object) -> Any:
        with input_unshown():
            return read(value, cls)

    return structure


def _attrs_structure(
    conv: cattrs.Converter, cls: type[Any], detailed: bool
) -> Callable[[object, object], Any]:
    # cattrs reports a key left out only for a field without a default; it
    # would give the others theirs (the time of the read for a created_at,
    # 0 for a version). Only an optional field, written as null, may be left
    # out: a key left out for any other is missing. The fast converter just
    # refuses the data; the detailed one reads such a key as _LEFT_OUT, which
    # the field's hook refuses as cattrs refuses a key left out, in its place
    # among the fields, and the value is never built with the default.
    defaulted = [
        a
        for a in attrs.fields(attrs.resolve_types(get_origin(cls) or cls))
        if a.init and a.default is not attrs.NOTHING and not _allows_none(a.type)
    ]
    needed = frozenset(a.alias for a in defaulted)
    overrides = _renames(cls)
    if detailed:
        for a in defaulted:
            overrides[a.name] = override(rename=a.alias, struct_hook=_read_unless_left_out(conv))
    inner = make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=False, **overrides)
    allowed = frozenset(a.alias for a in attrs.fields(cls) if a.init)
    name = _type_name(get_origin(cls) or cls)
    label = f"{name} as an object"
    read: Callable[[Any, Any], Any] = inner
    if detailed and get_origin(cls) is None:
        read = _with_field_checks(conv, cls, inner)

    def structure(value: object, _: object) -> Any:
        data = _mapping(value, label)
        if allowed.issuperset(data) and needed.issubset(data):
            return read(data, cls)
        # Report unknown keys together with whatever else is wrong.
        found = [_unknown_field(key, name) for key in data if key not in allowed]
        if not detailed:
            raise ValidationError(
                [
                    *found,
                    *(
                        FieldError(a.alias, "missing", f"'{a.alias}' is required")
                        for a in defaulted
                        if a.alias not in data
                    ),
                ]
            )
        kept = {key: v for key, v in data.items() if key in allowed}
        kept.update((key, _LEFT_OUT) for key in needed if key not in data)
        try:
            value = read(kept, cls)
        except Exception as error:
            if not found or isinstance(error, _EXHAUSTED):
                raise
            raise ClassValidationError(
                f"While structuring {name}", [ValidationError(found), error], cls
            ) from None
        if found:
            raise ValidationError(found)
        return value  # pragma: no cover - a key left out is always refused

    return structure


def _read_unless_left_out(conv: cattrs.Converter) -> Callable[[object, Any], Any]:
    def structure(value: object, kind: Any) -> Any:
        if value is _LEFT_OUT:
            raise KeyError  # as cattrs reads a key left out: missing
        return conv.get_structure_hook(kind)(value, kind)

    return structure


class _Unread(enum.Enum):
    UNREAD = "unread"
    LEFT_OUT = "left out"


_LEFT_OUT: Final = _Unread.LEFT_OUT


def _with_field_checks(
    conv: cattrs.Converter, cls: type[Any], inner: Callable[[Any, Any], Any]
) -> Callable[[Any, Any], Any]:
    """``inner``, reporting every invalid field even when some are unreadable.

    cattrs calls the constructor, whose checks find the fields that are read
    but invalid (a blank company), only once every field could be read. When
    some could not (a malformed id), the value is built again without them,
    up to the end of its constructor's field checks (never its rules, which
    need every field), and what those checks find joins the report.
    """
    fields = [a for a in attrs.fields(attrs.resolve_types(cls)) if a.init]
    name = _type_name(cls)

    def structure(data: Mapping[str, Any], target: Any) -> Any:
        try:
            return inner(data, target)
        except _EXHAUSTED:
            raise
        except Exception as error:
            more = _field_check_errors(conv, cls, fields, data)
            if not more:
                raise
            raise ClassValidationError(
                f"While structuring {name}", [error, ValidationError(more)], cls
            ) from None

    return structure


def _field_check_errors(
    conv: cattrs.Converter, cls: type[Any], fields: list[Any], data: Mapping[str, Any]
) -> list[FieldError]:
    arguments: dict[str, Any] = {}
    unread: set[str] = set()
    for field in fields:
        if data.get(field.alias, _LEFT_OUT) is _LEFT_OUT:
            if field.default is attrs.NOTHING or field.alias in data:
                arguments[field.alias] = _Unread.UNREAD
                unread.update((field.name, field.alias))
            continue
        try:
            arguments[field.alias] = conv.structure(data[field.alias], field.type)
        except _EXHAUSTED:
            raise
        except Exception:
            arguments[field.alias] = _Unread.UNREAD
            unread.update((field.name, field.alias))
    if not unread:
        return []  # every field was read: the constructor's report is whole
    found = fields_only(lambda: cls(**arguments))
    return [e for e in found if _FIELD_PART.split(e.path, maxsplit=1)[0] not in unread]


_FIELD_PART: Final = re.compile(r"[.\[]")  # users[1].email is a path in users


def _renames(cls: type[Any]) -> dict[str, Any]:
    # A field kept privately as ``_x`` is written as ``x``.
    return {
        a.name: override(rename=a.alias) for a in attrs.fields(cls) if a.init and a.alias != a.name
    }


@checked_arguments
def to_dict(value: object) -> Any:
    """``value`` as JSON-ready plain data (dicts with text keys, lists,
    strings, numbers).

    A value that cannot be written (a list that holds itself, an integer
    too long for Python to write as text), or that has no such form (an
    object of no type of the library's, bytes, NaN or an infinity, a naive
    datetime, a datetime where a date is written, a key that is not text,
    text holding a lone surrogate, which no UTF-8 document holds, inside a
    list, a dict or a page too), is a ``not_serializable`` error at
    ``value``. A key the library writes as text (an id, a date, a
    ``Decimal``) is written as that text, and an attrs class or a dataclass
    of your own field by field, as cattrs writes them. Text and numbers of
    a subclass of ``str``, ``int`` or ``float`` are written as the plain
    type (two keys whose text is the same, told apart by a subclass's hash,
    are ``not_serializable``)."""
    kind = type(value)
    try:
        data = _FAST.unstructure(value, unstructure_as=kind)
    except Exception as error:  # RecursionError: a list that holds itself
        message = f"cannot serialize {kind.__name__}: {error}"
    else:
        # cattrs passes a value it has no hook for through as it is. The
        # library's own types (attrs classes, enumerations) are written by
        # their hooks, to plain data: only anything else is looked through,
        # and so is a page, whose items may be anything.
        own = _OWN_TYPES.get(kind)
        if own is None:
            own = _OWN_TYPES[kind] = _is_own(kind)
        if own:
            return data
        try:
            return _plain_data(data)
        except _NoJsonForm:
            message = f"cannot serialize {kind.__name__}: it holds a value with no JSON form"
    raise ValidationError.single("value", "not_serializable", message)


_OWN_TYPES: Final[dict[type, bool]] = {}


def _is_own(kind: type) -> bool:
    """Whether every value of ``kind`` is written as plain data by the
    library's hooks: an attrs class or an enumeration of the library's, each
    field of a known type (a page's items are of any type, a foreign
    enumeration's values too, and an outbox message's event may be of a
    service's own class, with fields of any type)."""
    return (
        (attrs.has(kind) or issubclass(kind, enum.Enum))
        and kind.__module__.partition(".")[0] == __name__.partition(".")[0]
        and not issubclass(kind, Page | OutboxMessage)
    )


# What JSON holds: objects (with text keys), arrays, strings, numbers (never
# NaN nor an infinity), true, false and null; and text that UTF-8 can encode,
# without a lone surrogate (which the library's own values never hold).
_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _is_text(data: object) -> bool:
    """Whether ``data`` is text that a JSON document in UTF-8 can hold."""
    # str.isascii, not the value's own: a subclass's could pass any text.
    return isinstance(data, str) and (str.isascii(data) or _LONE_SURROGATE.search(data) is None)


# An int of at most this many bits has fewer digits than the fewest Python
# is ever set to write (640, sys.int_info.str_digits_check_threshold).
_SHORT_INT_BITS: Final = 2000


class _NoJsonForm(Exception):
    """The data holds a value that JSON cannot hold."""


def _plain_data(data: object) -> Any:
    """``data`` as JSON-ready plain data: itself when it is already (the
    usual case: nothing is copied), else a copy in which text, whole numbers
    and floats of a subclass's (whose own methods a caller, or an encoder,
    would use) are the plain type; :class:`_NoJsonForm` for data that has no
    JSON form."""
    try:
        kind = type(data)
        if kind is str:
            if _is_text(data):
                return data
        elif data is None or kind is bool:
            return data
        elif kind is int:
            if cast(int, data).bit_length() <= _SHORT_INT_BITS or _writable(cast(int, data)):
                return data
        elif kind is float:
            if math.isfinite(cast(float, data)):
                return data
        elif kind is list:
            return _plain_list(cast("list[Any]", data))
        elif kind is dict:
            return _plain_dict(cast("dict[Any, Any]", data))
        elif isinstance(data, str):
            return _plain_data(str.__str__(data))
        elif isinstance(data, int):  # not a bool: bool has no subclass
            return _plain_data(int.__int__(data))
        elif isinstance(data, float):
            return _plain_data(float.__float__(data))
    except RecursionError:  # nested too deeply to write
        pass
    raise _NoJsonForm


def _plain_list(data: list[Any]) -> list[Any]:
    for index, item in enumerate(data):
        plain = _plain_data(item)
        if plain is not item:
            # Copied from the first item that is not plain data.
            return [*data[:index], plain, *[_plain_data(rest) for rest in data[index + 1 :]]]
    return data


def _plain_dict(data: dict[Any, Any]) -> dict[str, Any]:
    copied: dict[str, Any] | None = None
    for index, (key, item) in enumerate(data.items()):
        if not _is_text(key):
            raise _NoJsonForm
        plain_key, plain = _fields.plain_str(key), _plain_data(item)
        if copied is None and (plain_key is key and plain is item):
            continue
        if copied is None:
            copied = dict(list(data.items())[:index])
        if plain_key in copied:
            # Two keys of the same text (a subclass's hash told them apart):
            # no JSON object holds both.
            raise _NoJsonForm
        copied[plain_key] = plain
    return data if copied is None else copied


def _writable(number: int) -> bool:
    """Whether Python writes ``number`` as text (its limit on the digits of
    an int, ``sys.set_int_max_str_digits``, allows it)."""
    try:
        str(number)
    except ValueError:
        return False
    return True


@overload
def from_dict(cls: type[T], data: object) -> T: ...
# A union, Annotated[...], a NewType: read as well, but no type[T] to a type
# checker (until TypeForm), which then takes the result as Any.
@overload
def from_dict(cls: object, data: object) -> Any: ...


@checked_arguments
def from_dict(cls: Any, data: object) -> Any:
    """Rebuild a ``cls`` from the plain data :func:`to_dict` gave.

    Every rule of ``cls`` is checked again; anything wrong is reported at once
    in one :class:`~altpay_core.errors.ValidationError`. A ``cls`` that is no
    type (``None``, a type's name) is ``wrong_type`` at ``cls``. Keys and
    values of a subclass of ``str`` or ``int`` are read as the plain type: a
    key names a field by its text alone, and two keys of one text (told
    apart by a subclass's hash) are ``duplicate_key``.
    """
    return _read(cls, data, _FAST)


# Errors about the process, not the data: the stack or the memory ran out
# (a caller already deep in its stack, a hook's runaway recursion). They
# propagate as they are: reported as a field error, a valid document read
# near the recursion limit would be called invalid.
_EXHAUSTED: Final = (RecursionError, MemoryError)


def _read(cls: type[T], data: object, converter: cattrs.Converter) -> T:
    # from_dict without the argument check, for from_stored (with its own
    # converter).
    _check_type(cls)
    try:
        return converter.structure(data, cls)
    except _EXHAUSTED:
        raise
    except Exception:
        pass
    try:
        result: T = _DETAILED.structure(data, cls)
    except _EXHAUSTED:
        raise
    except Exception as error:
        errors = _field_errors(error, "", cls)
        raise ValidationError(errors) from None
    return result  # pragma: no cover - the fast converter failed where this did not


def _check_type(cls: object) -> None:
    """Refuse a ``cls`` that is no type to read: ``None`` (which cattrs reads
    as "any", giving the data back unread), a type's name, any other value.
    A class, a generic alias (``list[UserId]``, ``Money | None``), a
    ``NewType`` and ``Any`` are types."""
    if not (isinstance(cls, type | NewType) or cls is Any or get_origin(cls) is not None):
        raise ValidationError.single(
            "cls",
            "wrong_type",
            f"'cls' must be the type to read, such as Customer (got {shown(cls)})",
        )


_MAX_INDENT: Final = 100


@checked_arguments
def to_json(value: object, *, indent: int | None = None) -> str:
    """``value`` as a JSON document (UTF-8 text, keys in field order).

    ``indent``, if given, is a whole number of spaces from 0 to 100. A value
    that has no JSON form (an object of no type of the library's, bytes, NaN
    or an infinity, a naive datetime, a datetime where a date is written,
    text holding a lone surrogate, which UTF-8 cannot encode) is a
    ``not_serializable`` error at ``value``: the text given back always
    encodes as UTF-8.
    """
    if indent is not None:
        # The plain int checked, not the caller's: json.dumps multiplies it.
        indent = _fields.whole_number("indent", indent, 0, _MAX_INDENT, code="invalid_indent")
    data = to_dict(value)
    try:
        # allow_nan=False: NaN and infinities are not JSON (to_dict refuses them already).
        return json.dumps(data, ensure_ascii=False, indent=indent, allow_nan=False)
    except (TypeError, ValueError) as error:  # pragma: no cover - to_dict gives JSON-ready data
        raise ValidationError.single(
            "value", "not_serializable", f"cannot write {type(value).__name__} as JSON: {error}"
        ) from None


@overload
def from_json(cls: type[T], text: str | bytes) -> T: ...
@overload
def from_json(cls: object, text: str | bytes) -> Any: ...


@checked_arguments
def from_json(cls: Any, text: str | bytes) -> Any:
    """Rebuild a ``cls`` from the JSON text :func:`to_json` gave.

    ``text`` is a ``str`` or UTF-8 ``bytes`` (or a ``bytearray``, as
    ``json.loads`` takes; a UTF-8 byte order mark before a document given as
    bytes is skipped, and a ``str`` that starts with one, U+FEFF, is
    ``invalid_json``, as ``json.loads`` refuses it); anything else is
    ``wrong_type`` at ``text``, as a ``cls`` that is no type is at ``cls``,
    both reported at once when both are wrong. Bytes in another encoding (UTF-16,
    UTF-32) are ``invalid_json``, as are ``NaN``, ``Infinity`` and
    ``-Infinity`` (not JSON, though ``json.loads`` reads them), and an
    object with a key given twice is ``duplicate_key`` at that key, rather
    than read as its last value.
    """
    found: list[FieldError] = []
    try:
        _check_type(cls)
    except ValidationError as error:
        found.extend(error.errors)
    if not isinstance(text, str | bytes | bytearray):
        found.append(
            FieldError(
                "text",
                "wrong_type",
                f"'text' must be JSON text, a str or bytes (got {shown(text)})",
            )
        )
    if found:
        raise ValidationError(found)
    if isinstance(text, str):
        text = _fields.plain_str(text)
    else:
        try:
            # json.loads would guess UTF-16 or UTF-32 from the bytes.
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ValidationError.single(
                "", "invalid_json", f"expected a JSON document in UTF-8 ({error})"
            ) from None
    try:
        data = parse_json(text, decoder=_UNIQUE_KEYS)
    except _KeyTwice:
        # Rare: read again, each such object marked, to say where they are.
        marked = parse_json(
            text,
            decoder=json.JSONDecoder(object_pairs_hook=_marked_object, parse_constant=_no_constant),
        )
        raise ValidationError(_duplicate_keys(marked, "", cls)) from None
    return from_dict(cls, data)


class _KeyTwice(Exception):
    """An object of the JSON document gives a key more than once."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json's object_pairs_hook: the object as json.loads builds it, unless
    # it gives a key twice, which json.loads would read as its last value.
    data = dict(pairs)
    if len(data) != len(pairs):
        raise _KeyTwice
    return data


def _no_constant(name: str) -> NoReturn:
    # json's parse_constant: json.loads would read NaN, Infinity and
    # -Infinity, which are not JSON, as floats that nothing writes back.
    raise ValueError(f"{name} is not JSON: a number is finite")


_UNIQUE_KEYS: Final = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_no_constant)
_FINITE: Final = json.JSONDecoder(parse_constant=_no_constant)


class _Duplicated(dict[str, Any]):
    """An object of a JSON document that gives a key more than once."""

    keys_twice: list[str]


def _marked_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # The object, marked if it gives a key twice.
    data = dict(pairs)
    if len(data) == len(pairs):
        return data
    marked = _Duplicated(data)
    seen: set[str] = set()
    marked.keys_twice = [key for key, _ in pairs if key in seen or seen.add(key)]  # type: ignore[func-returns-value]
    return marked


def _duplicate_keys(
    data: object, path: str, kind: object, *, unshown: bool = False
) -> list[FieldError]:
    """A ``duplicate_key`` error for each key given twice in ``data``, read
    as ``kind``, at its path.

    Within the data of a saved payment method (or a book of them), read
    within :func:`~altpay_core.errors.input_unshown`, a key given twice may
    be a card number put in the wrong place: as for an unknown key there,
    the error is at the object and does not show the key, and a key that is
    not one of the object's fields is left out of the paths below it. Data
    whose type cannot be told (see :func:`_part_type`) is treated so too:
    when in doubt, a key is not shown.
    """
    unshown = unshown or _reads_unshown(kind)
    found: list[FieldError] = []
    if isinstance(data, _Duplicated):
        for key in dict.fromkeys(data.keys_twice):
            if unshown:
                found.append(
                    FieldError(
                        path,
                        "duplicate_key",
                        f"'{path or 'value'}' holds a key ({not_shown(key_text(key))}) "
                        "given more than once",
                    )
                )
            else:
                where = join_path(path, key_text(key))
                found.append(
                    FieldError(where, "duplicate_key", f"'{where}' is given more than once")
                )
    if isinstance(data, dict):
        for key, value in data.items():
            part = _part_type(kind, key)
            where = path if unshown and _may_be_any(part) else join_path(path, key_text(key))
            found.extend(_duplicate_keys(value, where, part, unshown=unshown))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            found.extend(
                _duplicate_keys(
                    item, join_path(path, f"[{index}]"), _part_type(kind, index), unshown=unshown
                )
            )
    return found


class _Untold:
    """The type of data whose type the walk of :func:`_part_type` cannot
    tell (a class whose annotations cannot be resolved, a type variable no
    argument gives): read as a saved method's data is, its keys not shown."""


def _reads_unshown(kind: object) -> bool:
    # Whether the converter reads data as ``kind`` within input_unshown (see
    # _unshown), or may: as any member of a union, which may be the one
    # read, or as a type that cannot be told.
    kind = _unwrapped(kind)
    if _is_union(kind):
        return any(_reads_unshown(member) for member in get_args(kind))
    return kind is _Untold or kind in _UNSHOWN_TYPES


def _may_be_any(kind: object) -> bool:
    # Whether data read as ``kind`` may be any data (a key that is not a
    # field, in some member of a union at least).
    kind = _unwrapped(kind)
    if _is_union(kind):
        return any(_may_be_any(member) for member in get_args(kind))
    return kind is Any or kind is _Untold


def _part_type(kind: object, key: str | int) -> object:
    """The type that data read as ``kind`` holds at ``key``: a field's, an
    item's or a value's; ``Any`` for a key that is not a field; for a
    union, the union of its members' (any of which may be the one read);
    :class:`_Untold` for what cannot be told."""
    kind = _unwrapped(kind)
    if _is_union(kind):
        parts: list[object] = []
        for member in get_args(kind):
            part = _part_type(member, key)
            if member is not type(None) and part not in parts:
                parts.append(part)
        return parts[0] if len(parts) == 1 else Union[tuple(parts)]  # noqa: UP007 - built at run time
    origin = get_origin(kind) or kind
    if isinstance(origin, type) and attrs.has(origin):
        try:
            fields = attrs.fields(attrs.resolve_types(origin))
            part = next((a.type for a in fields if a.init and a.alias == key), Any)
            return _with_arguments(part, _type_arguments(kind, origin))
        except Exception:
            return _Untold
    args = get_args(kind)
    if origin is tuple and Ellipsis not in args:
        # A fixed tuple: each index has its own type.
        return args[key] if isinstance(key, int) and key < len(args) else Any
    args = tuple(arg for arg in args if arg is not Ellipsis)
    return args[-1] if args else Any


def _unwrapped(kind: object) -> object:
    """``kind`` without ``Annotated[...]``'s metadata, and a ``NewType`` as
    the type it names."""
    while True:
        if get_origin(kind) is Annotated:
            kind = get_args(kind)[0]
        elif isinstance(kind, NewType):
            kind = kind.__supertype__
        else:
            return kind


def _is_union(kind: object) -> bool:
    return get_origin(kind) in (Union, types.UnionType)


def _type_arguments(kind: object, origin: type) -> dict[object, object]:
    """What each type variable of ``origin``'s fields stands for in
    ``kind``: its own arguments (``Any`` for a bare generic class, as the
    converter reads it), and those its generic bases are given
    (``class MethodPage(Page[PaymentMethod])``)."""
    parameters = getattr(origin, "__parameters__", ())
    arguments = get_args(kind) or (Any,) * len(parameters)
    if len(arguments) != len(parameters):
        raise TypeError("a variadic generic class")  # told as _Untold
    found: dict[object, object] = dict(zip(parameters, arguments, strict=True))
    for cls in origin.__mro__:
        for base in getattr(cls, "__orig_bases__", ()):
            base_origin = get_origin(base)
            base_parameters = getattr(base_origin, "__parameters__", ())
            for parameter, argument in zip(base_parameters, get_args(base), strict=False):
                found.setdefault(parameter, _with_arguments(argument, found))
    return found


def _with_arguments(kind: object, arguments: dict[object, object]) -> object:
    """``kind``, each type variable replaced by what it stands for
    (:class:`_Untold` for one that nothing gives)."""
    if isinstance(kind, TypeVar):
        return arguments.get(kind, _Untold)
    parameters = getattr(kind, "__parameters__", ())
    if not parameters:
        return kind
    return cast(Any, kind)[tuple(arguments.get(p, _Untold) for p in parameters)]


def parse_json(text: str | bytes, *, decoder: json.JSONDecoder | None = None) -> Any:
    """The data of a JSON document; ``ValidationError`` (``invalid_json``)
    for text that is not one (``NaN``, ``Infinity`` and ``-Infinity``, which
    ``json.loads`` would read as floats, among them; a ``decoder`` given
    refuses them too).

    Not part of the public API: :func:`from_json`'s, and the SQL stores'
    for the rows they read back (which the library wrote: a key given twice
    is not looked for there).
    """
    try:
        if isinstance(text, str):
            # The decoder uses the text's own len() to find what follows
            # the document: a subclass's could hide it.
            text = _fields.plain_str(text)
        else:
            # In UTF-8, -16 or -32, found as json.loads finds it.
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        return (decoder or _FINITE).decode(text)
    except (ValueError, TypeError) as error:
        raise ValidationError.single(
            "", "invalid_json", f"expected a JSON document ({error})"
        ) from None
    except RecursionError:
        raise ValidationError.single(
            "", "invalid_json", "expected a JSON document (nested too deeply to read)"
        ) from None


# -- reading back what was stored ----------------------------------------------------


def from_stored(cls: type[T], data: object) -> T:
    """Rebuild a ``cls`` from data that :func:`to_dict` gave and a store kept:
    for the adapters, which read back the rows they wrote.

    Not part of the public API: what :func:`from_dict` gives for the same
    data, its quick paths included. A :class:`Customer` or an
    :class:`Invoice` whose data has exactly the shape that ``to_dict``
    writes is built without the converter's field-by-field machinery: its
    values through their own constructors (ids and email addresses; a
    customer's address remembered once built, as email addresses are), then
    the aggregate and its parts through theirs, which check every field and
    rule again, quickly when all is as stored. Anything else, and anything
    any of those constructors refuses (a row changed or damaged outside the
    library), is read by the converter, which reports it (see
    ``_read_quickly``).
    """
    return _read(cls, data, _STORED)


def _keys(cls: type[Any]) -> frozenset[str]:
    return frozenset(a.alias for a in attrs.fields(cls) if a.init)


_CUSTOMER_KEYS: Final = _keys(Customer)
_USER_KEYS: Final = _keys(CustomerUser)
_ADDRESS_KEYS: Final = _keys(Address)
_REF_KEYS: Final = _keys(ExternalRef)
_STATUSES: Final = {status.value: status for status in CustomerStatus}
_BEARERS: Final[dict[str | None, CardFeeBearer | None]] = {
    None: None,
    **{bearer.value: bearer for bearer in CardFeeBearer},
}
# What the quick path catches to hand the data to from_dict: the values' and
# aggregates' refusals, a value that is not of a kind the dicts above hold or
# that a cache cannot hash, and a time fromisoformat cannot read.
_REFUSED: Final = (AltpayError, LookupError, TypeError, ValueError)


# The quick reads build their values as ``cls(...)`` would, every check
# included, without the argument check of a call by hand (checked_constructor):
# their calls always bind, and the check's frame cost 10% of a read.
_new: Final = object.__new__
_init_id: Final = unchecked_init(EntityId)
_init_email: Final = unchecked_init(EmailAddress)
_init_user: Final = unchecked_init(CustomerUser)
_init_customer: Final = unchecked_init(Customer)
_init_money: Final = unchecked_init(Money)
_init_line: Final = unchecked_init(LineItem)
_init_fee: Final = unchecked_init(Fee)
_init_applied: Final = unchecked_init(AppliedPayment)
_init_invoice: Final = unchecked_init(Invoice)


# typed: a value equal to a field's text (a Currency equals its code) is not
# the address kept for that text; Address refuses it, as the generic hook does.
# Only plain str (and None) come here (see _plain_address): the cache compares
# its keys with their own __eq__, by which a subclass could match another's.
@functools.lru_cache(maxsize=16_384, typed=True)
def _stored_address(  # noqa: PLR0917 - the six fields are the cache's key
    line1: str, line2: str | None, city: str, region: str, postal_code: str, country: str
) -> Address:
    # Many customers share an address, and every read brings it back: keep
    # the (immutable) value rather than build it again.
    return Address(line1, city, region, postal_code, country, line2)


def _quick_customer(data: object, given: bool = True) -> Customer | None:
    """The customer, or None when the data is not exactly as stored.

    Reading is strict: the ids, email addresses and EIN must be text, as
    to_dict writes them. Their constructors also take their own values (a
    ``CustomerId``, an ``EIN``), which the converter refuses (``wrong_type``),
    so anything but text goes to it, as in _quick_invoice. The other values
    go to constructors that take only what the converter takes.

    Data ``given`` by a caller may hold keys and text of a subclass of
    ``str``, whose own ``__eq__`` and ``__hash__`` would pass the tests of
    its keys and match another address in the cache: any goes to the
    converter, which reads them as plain text (see _has_keys). A stored row
    (``given`` false) is built by the library's JSON decoder, whose keys
    and text are always plain ``str``: it is not looked through again.
    """
    if type(data) is not dict:
        return None
    try:
        if given:
            if not _has_keys(data, _CUSTOMER_KEYS):
                return None
        elif data.keys() != _CUSTOMER_KEYS:
            return None
        address, user_data, tags = data["address"], data["users"], data["tags"]
        ein, billing_email, ref = data["ein"], data["billing_email"], data["external_ref"]
        created_at, customer_id, partner_id = data["created_at"], data["id"], data["partner_id"]
        status, bearer = data["status"], data["card_fee_exception"]
        if (
            type(customer_id) is not str
            or type(partner_id) is not str
            or type(address) is not dict
            or type(user_data) is not list
            or type(tags) is not list
            or (ref is not None and type(ref) is not dict)
            or type(created_at) is not str
            or (ein is not None and type(ein) is not str)
            or (billing_email is not None and type(billing_email) is not str)
        ):
            return None
        if given:
            if (
                not _has_keys(address, _ADDRESS_KEYS)
                or (ref is not None and not _has_keys(ref, _REF_KEYS))
                or type(status) is not str
                or (bearer is not None and type(bearer) is not str)
                or not _plain_address(address)
            ):
                return None
        elif address.keys() != _ADDRESS_KEYS or (ref is not None and ref.keys() != _REF_KEYS):
            return None
        users = []
        for user in user_data:
            if type(user) is not dict:
                return None
            if given:
                if not _has_keys(user, _USER_KEYS):
                    return None
            elif user.keys() != _USER_KEYS:
                return None
            user_id, email = user["id"], user["email"]
            if type(user_id) is not str or type(email) is not str:
                return None
            email_address = _new(EmailAddress)
            _init_email(email_address, email)
            built = _new(CustomerUser)
            first, last = user["first_name"], user["last_name"]
            _init_user(
                built, _quick_id(UserId, user_id), first, last, email_address, user["notifications"]
            )
            users.append(built)
        customer = _new(Customer)
        _init_customer(
            customer,
            id=_quick_id(CustomerId, customer_id),
            partner_id=_quick_id(PartnerId, partner_id),
            company=data["company"],
            address=_stored_address(
                address["line1"],
                address["line2"],
                address["city"],
                address["region"],
                address["postal_code"],
                address["country"],
            ),
            users=tuple(users),
            legal_name=data["legal_name"],
            ein=None if ein is None else EIN(ein),
            billing_email=None if billing_email is None else EmailAddress(billing_email),
            tags=frozenset([_quick_id(TagId, tag) for tag in tags]),
            status=_STATUSES[status],
            external_ref=None if ref is None else ExternalRef(ref["system"], ref["id"]),
            card_fee_exception=_BEARERS[bearer],
            created_at=_from_isoformat(created_at),
            version=data["version"],
        )
    except (_NotAsWritten, *_REFUSED):
        return None
    return customer


def _has_keys(data: dict[Any, Any], keys: frozenset[str]) -> bool:
    """Whether given ``data`` has exactly ``keys``, each of which the caller
    then looks up (a KeyError if one is missing).

    Every key must be a plain ``str``: a subclass's own ``__eq__`` and
    ``__hash__`` could make it pass for a field it does not name, in a test
    of the set of keys and in a look-up alike. Then as many keys as ``keys``,
    each found, are exactly ``keys``: the set of keys is not tested, which
    costs more than this."""
    if len(data) != len(keys):
        return False
    for key in data:  # noqa: SIM110 - twice as fast as all() over a generator
        if type(key) is not str:
            return False
    return True


def _plain_address(data: dict[str, Any]) -> bool:
    """Whether every field of an address's data is a plain ``str`` (or
    ``line2`` is ``None``): the cache of addresses compares its keys with
    their own ``__eq__``, by which two addresses could be one."""
    line2 = data["line2"]
    return (
        type(data["line1"]) is str
        and (line2 is None or type(line2) is str)
        and type(data["city"]) is str
        and type(data["region"]) is str
        and type(data["postal_code"]) is str
        and type(data["country"]) is str
    )


def stored_json(value: object) -> str:
    """``to_dict(value)`` as compact JSON text (``ensure_ascii=False``,
    separators ``,`` and ``:``): what :func:`from_stored` reads back.

    Not part of the public API: for the SQL stores, which write one for every
    aggregate saved and one for every event in the outbox. Customers and
    events are written straight to text, without the dict that encoding it
    would take (about three times the work); the tests hold the text to what
    ``to_dict`` and the JSON encoder give.
    """
    if type(value) is Customer:
        return _customer_json(value)
    if isinstance(value, Event) and _has_only_event_fields(type(value)):
        return _event_json(value)
    return _encode(to_dict(value))


_EVENT_FIELDS: Final = len(attrs.fields(Event))
_ONLY_EVENT_FIELDS: Final[dict[type[Event], bool]] = {}


def _has_only_event_fields(kind: type[Event]) -> bool:
    # Every event class of the library: Event's fields and no others. An
    # event class of a service's own, with fields of its own, is encoded.
    known = _ONLY_EVENT_FIELDS.get(kind)
    if known is None:
        fields = attrs.fields(kind)
        known = _ONLY_EVENT_FIELDS[kind] = len(fields) == _EVENT_FIELDS and all(
            a.inherited for a in fields
        )
    return known


def _event_json(event: Event) -> str:
    changes = ",".join([_quote(name) for name in event.changes])
    return (
        f'{{"topic":{_quote(event.topic)},"partner_id":{_quote(event.partner_id.value)},'
        f'"aggregate_id":{_quote(event.aggregate_id)},'
        f'"occurred_at":{_quote(event.occurred_at.isoformat())},"changes":[{changes}]}}'
    )


def _customer_json(customer: Customer) -> str:
    address, ein, billing = customer.address, customer.ein, customer.billing_email
    ref, bearer = customer.external_ref, customer.card_fee_exception
    users = ",".join(
        [
            f'{{"id":{_quote(user.id.value)},"first_name":{_quote(user.first_name)},'
            f'"last_name":{_quote(user.last_name)},"email":{_quote(user.email.value)},'
            f'"notifications":{_JSON_BOOLS[user.notifications]}}}'
            for user in customer.users
        ]
    )
    tags = ",".join([_quote(tag.value) for tag in sorted(customer.tags)])
    ref_json = "null" if ref is None else f'{{"system":{_quote(ref.system)},"id":{_quote(ref.id)}}}'
    return (
        f'{{"id":{_quote(customer.id.value)},"partner_id":{_quote(customer.partner_id.value)},'
        f'"company":{_quote(customer.company)},'
        f'"address":{{"line1":{_quote(address.line1)},"city":{_quote(address.city)},'
        f'"region":{_quote(address.region)},"postal_code":{_quote(address.postal_code)},'
        f'"country":{_quote(address.country)},"line2":{_quote_or_null(address.line2)}}},'
        f'"users":[{users}],"legal_name":{_quote_or_null(customer.legal_name)},'
        f'"ein":{"null" if ein is None else _quote(str(ein))},'
        f'"billing_email":{"null" if billing is None else _quote(billing.value)},'
        f'"tags":[{tags}],"status":{_quote(customer.status.value)},'
        f'"external_ref":{ref_json},'
        f'"card_fee_exception":{"null" if bearer is None else _quote(bearer.value)},'
        f'"created_at":{_quote(customer.created_at.isoformat())},"version":{customer.version!r}}}'
    )


# A JSON string literal, as json.dumps(..., ensure_ascii=False) writes one.
_quote: Final = json.encoder.encode_basestring
_JSON_BOOLS: Final = {True: "true", False: "false"}
# Compact, and without the check for cycles that plain data cannot have.
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def _encoder() -> Callable[[Any], str]:
    # JSONEncoder.encode builds CPython's C encoder anew for every call, which
    # costs as much as encoding a small event: build it once, with the same
    # settings (no cycle check, ``ensure_ascii=False``, compact, NaN allowed as
    # the default), where the interpreter has one that takes them.
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - interpreters without the C encoder
        return _ENCODER.encode
    probe = {"a": [1, None, True, "é\n"], "b": {}}
    try:
        encode = make(None, _ENCODER.default, _quote, None, ":", ",", False, False, True)
        same = "".join(encode(probe, 0)) == _ENCODER.encode(probe)
    except TypeError:  # pragma: no cover - a C encoder that takes other arguments
        same = False
    if not same:  # pragma: no cover
        return _ENCODER.encode

    def encoded(value: Any) -> str:
        return "".join(encode(value, 0))

    return encoded


_encode: Final = _encoder()


def _quote_or_null(text: str | None) -> str:
    return "null" if text is None else _quote(text)


_NAMED = re.compile(r"'[^']*'")


def _named(message: str, path: str) -> str:
    """A value's message at the field it fills: a value names itself by its
    kind ('email'), the field it was read for by its own name
    ('billing_email')."""
    if not path:
        return message
    # An attribute by its name; an item of a list or a mapping (whose key
    # may hold anything, dots too) by its whole path.
    field = path if path.endswith("]") else path.rpartition(".")[2]
    if _NAMED.match(message):
        return _NAMED.sub(lambda _: f"'{field}'", message, count=1)
    return f"'{path}' {message}"


def _field_errors(error: BaseException, path: str, cls: object) -> list[FieldError]:
    if isinstance(error, _EXHAUSTED):
        # Gathered by cattrs among the data's errors: raised, not reported.
        raise error
    if isinstance(error, ValidationError):
        return [
            FieldError(
                join_path(path, e.path),
                e.code,
                _named(e.message, path) if not e.path else e.message,
            )
            for e in error.errors
        ]
    if isinstance(error, InvariantViolation):
        return [FieldError(join_path(path, error.path), error.rule, error.message)]
    if isinstance(error, BaseValidationError):
        found: list[FieldError] = []
        with_notes, without = error.group_exceptions()  # type: ignore[attr-defined]
        for sub, note in with_notes:
            if isinstance(note, IterableValidationNote):
                where = join_path(path, f"[{note.index}]")
            else:
                where = join_path(path, note.name)
            if isinstance(sub, KeyError) and not isinstance(note, IterableValidationNote):
                found.append(FieldError(where, "missing", f"'{where}' is required"))
            else:
                found.extend(_field_errors(sub, where, note.type))
        for sub in without:
            found.extend(_field_errors(sub, path, error.cl))
        return found
    if isinstance(error, ForbiddenExtraKeysError):
        # From cattrs' own hook for a class of another kind than attrs (a
        # dataclass, a TypedDict): each key that is none of its fields.
        unknown = [
            _unknown_field(key, _type_name(error.cl))
            for key in sorted(error.extra_fields, key=key_text)
        ]
        return [FieldError(join_path(path, e.path), e.code, e.message) for e in unknown]
    if isinstance(error, StructureHandlerNotFoundError):
        # The type itself cannot be read, whatever the data: a generic class
        # without its parameters (Page rather than Page[Customer]).
        return [FieldError(path, "unsupported_type", f"cannot read {_type_name(cls)}: {error}")]
    if isinstance(error, TypeError) and str(error).startswith("Could not disambiguate"):
        # Nor a union of classes whose data look alike (Viewer): read the
        # member's own type.
        return [
            FieldError(
                path,
                "unsupported_type",
                f"cannot read {_type_name(cls)}, a union of types whose data look alike: "
                "read the member's own type",
            )
        ]
    origin = get_origin(cls) or cls
    if _is_attrs(origin):
        # Read as an object field by field: refused by a class of the
        # caller's own, its validators or __attrs_post_init__, in its words.
        return [
            FieldError(
                path,
                "invalid_value",
                f"'{path or 'value'}' is not a valid {_type_name(origin)} "
                f"({type(error).__name__}: {error})",
            )
        ]
    # A type of another library's, read by cattrs' own hook.
    return [FieldError(path, "wrong_type", f"'{path or 'value'}' must be {_type_name(origin)}")]


# -- invoices, read and written by the thousand --------------------------------------
#
# The generic hooks read an invoice field by field through cattrs, which is
# most of what reading one costs. The hooks below do the same work directly
# for data that has exactly the shape _invoice_data writes (every key, plain
# dicts, lists and strings): each value through its own constructor, then the
# lines, fees and payments, then the invoice through theirs, which check
# every field and rule again (quickly, as all is as written). Anything else,
# and anything a constructor refuses, goes to the generic hook, which reads
# it or reports what is wrong exactly as before.


class _NotAsWritten(Exception):
    """The data is not in the shape to_dict writes: the generic hook reads it."""


def _read_quickly(
    quick: Callable[[object], T | None], generic: Callable[[object, Any], Any]
) -> Callable[[object, Any], T]:
    """A structure hook: ``quick``'s value for data exactly as written, else
    what the ``generic`` hook reads (or reports)."""

    def structure(value: object, cls: Any) -> T:
        found = quick(value)
        return cast("T", generic(value, cls)) if found is None else found

    return structure


def _quick_invoice(data: object, given: bool = True) -> Invoice | None:
    """The invoice, or None when the data is not exactly as written or is refused.

    Data written before invoices had ``paid_in_source`` lacks the key, and is
    read quickly too, as ``None`` (the generic hook's default).

    As for a customer (see _quick_customer), data ``given`` by a caller whose
    keys or chosen text are not plain ``str`` goes to the generic hook; a
    stored row is not looked through for them."""
    if type(data) is not dict:
        return None
    if given:
        # As _has_keys tests them, written out: plain keys, as many as the
        # fields (paid_in_source may be left out), each looked up below.
        if len(data) not in _INVOICE_FIELD_COUNTS:
            return None
        for key in data:
            if type(key) is not str:
                return None
    elif data.keys() not in (_INVOICE_KEYS, _INVOICE_KEYS_BEFORE_SOURCE):
        return None
    code = data["currency"]
    if type(code) is not str:
        # A Currency equals its code, and would be found in _CURRENCIES: the
        # generic hook refuses anything but text.
        return None
    status = data["status"]
    if given and type(status) is not str:
        return None
    try:
        currency = _CURRENCIES[code]
        ref, by, created = data["external_ref"], data["issued_by"], data["created_at"]
        source = data["paid_in_source"] if len(data) == len(_INVOICE_KEYS) else None
        if type(created) is not str:
            raise _NotAsWritten
        created_at = _from_isoformat(created)
        if created_at.tzinfo is not dt.UTC:
            raise _NotAsWritten  # the generic hook converts other offsets to UTC
        invoice = _new(Invoice)
        _init_invoice(
            invoice,
            id=_quick_id(InvoiceId, data["id"]),
            partner_id=_quick_id(PartnerId, data["partner_id"]),
            customer_id=_quick_id(CustomerId, data["customer_id"]),
            number=data["number"],
            currency=currency,
            issue_date=dt.date.fromisoformat(data["issue_date"]),
            due_date=dt.date.fromisoformat(data["due_date"]),
            lines=tuple(
                [_quick_line(line, currency, given) for line in _quick_list(data["lines"])]
            ),
            fees=tuple([_quick_fee(fee, currency, given) for fee in _quick_list(data["fees"])]),
            memo=data["memo"],
            status=_INVOICE_STATUSES[status],
            payments=tuple(
                [_quick_applied(part, currency, given) for part in _quick_list(data["payments"])]
            ),
            paid_in_source=None if source is None else _quick_money(source, currency, given),
            external_ref=None if ref is None else _quick_ref(ref, given),
            issued_by=None if by is None else _quick_id(TeamMemberId, by),
            created_at=created_at,
            version=data["version"],
        )
    except (_NotAsWritten, *_REFUSED):
        return None
    return invoice


_I = TypeVar("_I", bound=EntityId)


def _quick_id(kind: type[_I], value: object) -> _I:
    if type(value) is not str:
        raise _NotAsWritten  # the generic hook refuses an id that is not text
    entity_id = _new(kind)
    _init_id(entity_id, value)
    return entity_id


def _quick_list(value: object) -> list[Any]:
    if type(value) is not list:
        raise _NotAsWritten
    return value


def _quick_fields(value: object, keys: frozenset[str], given: bool) -> dict[str, Any]:
    """``value``, a dict of exactly ``keys``, each of which the caller looks up."""
    if type(value) is not dict:
        raise _NotAsWritten
    if given:
        if not _has_keys(value, keys):
            raise _NotAsWritten
    elif value.keys() != keys:
        raise _NotAsWritten
    return value


def _quick_money(value: object, currency: Currency, given: bool) -> Money:
    data = _quick_fields(value, _MONEY_KEYS, given)
    code, amount = data["currency"], data["amount"]
    # Another currency (I2), a code written differently, or a Currency or a
    # Decimal, which Money takes and the generic hook refuses.
    if type(code) is not str or code != currency.code or not _quick_amount(amount):
        raise _NotAsWritten
    money = _new(Money)
    _init_money(money, amount, currency)
    return money


def _quick_amount(amount: object) -> bool:
    # What to_dict writes, text, or a whole number (as the generic hook reads).
    return type(amount) is str or type(amount) is int


def _quick_line(value: object, currency: Currency, given: bool) -> LineItem:
    # The most frequent part of an invoice: _quick_fields and _quick_money,
    # written out. As many keys as a line has, each read below (a KeyError
    # if one is missing): exactly the keys written. Given data's keys are
    # plain str too (see _has_keys): taken out to be tested (a ValueError
    # if there are not as many), for less than _has_keys takes.
    if type(value) is not dict:
        raise _NotAsWritten
    if given:
        first, second, third = value
        if not str is type(first) is type(second) is type(third):
            raise _NotAsWritten
    elif len(value) != _LINE_FIELDS:
        raise _NotAsWritten
    unit = value["unit_amount"]
    if type(unit) is not dict:
        raise _NotAsWritten
    if given:
        first, second = unit
        if not str is type(first) is type(second):
            raise _NotAsWritten
    elif len(unit) != 2:
        raise _NotAsWritten
    code, number = unit["currency"], unit["amount"]
    if (
        type(code) is not str
        or code != currency.code
        or (type(number) is not str and type(number) is not int)
    ):
        raise _NotAsWritten
    amount = _new(Money)
    _init_money(amount, number, currency)
    line = _new(LineItem)
    _init_line(line, value["description"], value["quantity"], amount)
    return line


def _quick_fee(value: object, currency: Currency, given: bool) -> Fee:
    data = _quick_fields(value, _FEE_KEYS, given)
    amount = _quick_money(data["amount"], currency, given)
    kind = data["kind"]
    if given and type(kind) is not str:
        raise _NotAsWritten
    fee = _new(Fee)
    _init_fee(fee, _FEE_KINDS[kind], data["name"], amount, data["covered_by_customer"])
    return fee


def _quick_applied(value: object, currency: Currency, given: bool) -> AppliedPayment:
    data = _quick_fields(value, _APPLIED_KEYS, given)
    amount = _quick_money(data["amount"], currency, given)
    applied = _new(AppliedPayment)
    _init_applied(applied, _quick_id(PaymentId, data["payment_id"]), amount, data["released"])
    return applied


def _quick_ref(value: object, given: bool) -> ExternalRef:
    data = _quick_fields(value, _REF_KEYS, given)
    system, ref_id = data["system"], data["id"]
    if type(system) is not str or type(ref_id) is not str:
        raise _NotAsWritten
    return ExternalRef(system, ref_id)


_INVOICE_KEYS: Final = _keys(Invoice)
_INVOICE_KEYS_BEFORE_SOURCE: Final = _INVOICE_KEYS - {"paid_in_source"}
_INVOICE_FIELD_COUNTS: Final = (len(_INVOICE_KEYS), len(_INVOICE_KEYS_BEFORE_SOURCE))
_LINE_FIELDS: Final = len(_keys(LineItem))
_FEE_KEYS: Final = _keys(Fee)
_APPLIED_KEYS: Final = _keys(AppliedPayment)
_MONEY_KEYS: Final = frozenset({"amount", "currency"})
_CURRENCIES: Final = {currency.code: currency for currency in Currency.all()}
_INVOICE_STATUSES: Final = {status.value: status for status in InvoiceStatus}
_FEE_KINDS: Final = {kind.value: kind for kind in FeeKind}


def _invoice_data(invoice: Invoice) -> dict[str, Any]:
    """What to_dict writes for an invoice: what the generic hooks would write,
    key for key, written out (the tests compare the two)."""
    ref, by, source = invoice.external_ref, invoice.issued_by, invoice.paid_in_source
    return {
        "id": invoice.id.value,
        "partner_id": invoice.partner_id.value,
        "customer_id": invoice.customer_id.value,
        "number": invoice.number,
        "currency": invoice.currency.code,
        "issue_date": invoice.issue_date.isoformat(),
        "due_date": invoice.due_date.isoformat(),
        "lines": [
            {
                "description": line.description,
                "quantity": line.quantity,
                "unit_amount": _money_data(line.unit_amount),
            }
            for line in invoice.lines
        ],
        "fees": [
            {
                "kind": fee.kind.value,
                "name": fee.name,
                "amount": _money_data(fee.amount),
                "covered_by_customer": fee.covered_by_customer,
            }
            for fee in invoice.fees
        ],
        "memo": invoice.memo,
        "status": invoice.status.value,
        "payments": [
            {
                "payment_id": part.payment_id.value,
                "amount": _money_data(part.amount),
                "released": part.released,
            }
            for part in invoice.payments
        ],
        "paid_in_source": None if source is None else _money_data(source),
        "external_ref": None if ref is None else {"system": ref.system, "id": ref.id},
        "issued_by": None if by is None else by.value,
        "created_at": invoice.created_at.isoformat(),
        "version": invoice.version,
    }


def _money_data(money: Money) -> dict[str, str]:
    return {"amount": str(money.amount), "currency": money.currency.code}


# The module's converters, built once every hook above is defined.
_FAST = make_converter()
_DETAILED = make_converter(detailed_validation=True)
# from_stored's: the stores' rows, which the library's JSON decoder built
# (keys and text always plain str), read quickly without looking through
# their keys and text for a subclass's (see _quick_customer).
_STORED = make_converter()
_STORED.register_structure_hook(
    Invoice,
    _read_quickly(
        functools.partial(_quick_invoice, given=False), _attrs_structure(_STORED, Invoice, False)
    ),
)
_STORED.register_structure_hook(
    Customer,
    _read_quickly(
        functools.partial(_quick_customer, given=False), _attrs_structure(_STORED, Customer, False)
    ),
)
