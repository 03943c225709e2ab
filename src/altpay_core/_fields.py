"""Small parsers shared by the aggregates' constructors.

Each takes a raw value and returns it cleaned, or raises a
:class:`~altpay_core.errors.ValidationError` located at the field's path, so
that a constructor can collect every invalid field with
:class:`~altpay_core.errors.FieldErrors`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar, Final, NoReturn, Protocol, TypeVar, cast

from .errors import (
    FieldError,
    FieldErrors,
    InvariantViolation,
    ValidationError,
    input_is_unshown,
    join_path,
    key_text,
    not_shown,
    shown,
)

E = TypeVar("E")


class _IdKind(Protocol):
    """What :func:`entity_id` needs of a kind of id (an ``EntityId`` subclass)."""

    prefix: ClassVar[str]
    label: ClassVar[str]
    shows_input: ClassVar[bool]


def id_text(kind: _IdKind | type[_IdKind], text: str) -> str:
    """A malformed id's text as a message shows it: not at all for a kind
    whose ids may hold a card number given in the wrong place."""
    return shown(text) if kind.shows_input else not_shown(text)


IdT = TypeVar("IdT", bound=_IdKind)


def passed(value: E | None) -> E:
    """A result of :meth:`~altpay_core.errors.FieldErrors.check`, read once
    ``raise_if_any()`` has passed: then it is what the parse returned, never
    the ``None`` that stands in for a failed check."""
    return cast("E", value)


_NOT_STORABLE = re.compile("[\x00\ud800-\udfff]")

NOT_TEXT: Final = (
    "'{}' must be text that a database can hold: no NUL character and no lone surrogate"
)
"""The message of an ``invalid_text`` error, for the field's name."""


def plain_str(value: str) -> str:
    """``value`` as a plain ``str``: a subclass of ``str`` (with its own
    ``__eq__``, ``__hash__`` or ``strip``) is never kept in an id, a field or
    a key, where it could pass for another value or break a set."""
    return value if type(value) is str else str.__str__(value)


def plain_int(value: int) -> int:
    """``value`` as a plain ``int``, for the same reason as :func:`plain_str`
    (a version that equals every number would pass any version check)."""
    return value if type(value) is int else int.__int__(value)


def text_keyed(
    found: FieldErrors, path: str, value: Mapping[Any, object]
) -> tuple[Mapping[Any, object], tuple[object, ...]]:
    """A mapping of fields read by the plain text of its keys, and its keys
    in order (each text key as a plain ``str``, any other as it is, for the
    caller to report as no field).

    A key given as a subclass of ``str`` is looked up by its text, never by
    its own ``__hash__`` and ``__eq__``, which could make a key that names
    no field read as one that does. A text given twice (once plain, once as
    a subclass) is noted in ``found`` as ``duplicate`` at ``path.key``.
    """
    keys = tuple(value)
    if all(type(key) is str for key in keys):
        return value, keys
    plain: dict[str, object] = {}
    order: list[object] = []
    for key, item in value.items():
        if not isinstance(key, str):
            order.append(key)  # no field's name: kept apart, whatever its hash
            continue
        name = plain_str(key)
        if name in plain:
            where = join_path(path, name)
            found.add(where, "duplicate", f"'{where}' is given twice")
        else:
            order.append(name)
        plain[name] = item
    return plain, tuple(order)


def plain_keys(value: Mapping[Any, Any]) -> Mapping[Any, Any]:
    """``value`` itself when every key is a plain ``str`` (the usual case:
    nothing is copied), else a dict of its items with each key of a subclass
    of ``str`` or ``int`` as the plain type: a key's own ``__eq__`` and
    ``__hash__`` could make it pass for a field it does not name.

    Two keys of one text (told apart by a subclass's hash) are a
    ``duplicate_key`` error at that key; within
    :func:`~altpay_core.errors.input_unshown`, at the mapping, the key not
    shown (it may be a card number put in the wrong place)."""
    for key in value:
        if type(key) is not str:
            break
    else:
        return value
    data: dict[Any, Any] = {}
    for key, item in value.items():
        plain = key
        if isinstance(key, str):
            plain = plain_str(key)
        elif isinstance(key, int) and not isinstance(key, bool):
            plain = plain_int(key)
        if plain in data:
            raise _key_twice(key_text(plain))
        data[plain] = item
    return data


def _key_twice(key: str) -> ValidationError:
    if input_is_unshown():
        return ValidationError.single(
            "", "duplicate_key", f"'value' holds a key ({not_shown(key)}) given more than once"
        )
    return ValidationError.single(key, "duplicate_key", f"'{key}' is given more than once")


def valid_unicode(text: str) -> bool:
    """Whether ``text`` is Unicode text that every store can hold: no NUL
    character (PostgreSQL's text holds none) and no lone surrogate (which
    JSON's ``\\ud800`` escapes can produce; UTF-8 has none)."""
    if text.isascii():
        return "\x00" not in text
    return _NOT_STORABLE.search(text) is None


def query_text(path: str, value: object) -> str:
    """Text given to a query (a name prefix, an invoice number, a key): a
    string that a database can hold (see :func:`valid_unicode`), checked
    and returned as a plain ``str``."""
    if not isinstance(value, str):
        raise ValidationError.single(
            path, "wrong_type", f"'{path}' must be a string (got {type(value).__name__})"
        )
    # Made plain first: a subclass's own isascii() or __contains__ could
    # pass a NUL, which a database then refuses with an error of its own.
    text = plain_str(value)
    if not valid_unicode(text):
        raise ValidationError.single(path, "invalid_text", NOT_TEXT.format(path))
    return text


def required_text(path: str, value: object, *, max_length: int = 200) -> str:
    """A non-blank string, trimmed."""
    return _at_most(path, _nonblank_text(path, value), max_length)


def _nonblank_text(path: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError.single(
            path, "wrong_type", f"'{path}' must be a string (got {type(value).__name__})"
        )
    # str.strip, not the value's own: a subclass's strip may return itself
    # (markupsafe.Markup does), and what is kept is a plain str.
    text = str.strip(value)
    if not text:
        raise ValidationError.single(path, "blank", f"'{path}' must not be blank")
    if not valid_unicode(text):
        raise ValidationError.single(path, "invalid_text", NOT_TEXT.format(path))
    return text


def _at_most(path: str, text: str, max_length: int) -> str:
    if len(text) > max_length:
        raise ValidationError.single(
            path,
            "too_long",
            f"'{path}' must be at most {max_length} characters (got {len(text)})",
        )
    return text


SYSTEM_MAX_LENGTH: Final = 50
"""The most characters of an integration's name, lower-cased: every store
keeps it in a unique index."""


def system_name(path: str, value: object) -> str:
    """The name of an integration (``ExternalRef.system``,
    ``Integration.system``): trimmed and lower-cased, then of at most 50
    characters.

    The length is that of the lower-cased name, which is what is stored and
    read back: lower-casing can lengthen text (``"İ".lower()`` is two
    characters), and a name checked before it was stored longer than it may
    be read.
    """
    name = _nonblank_text(path, value).lower()
    if len(name) > SYSTEM_MAX_LENGTH:
        raise ValidationError.single(
            path,
            "too_long",
            f"'{path}' must be at most {SYSTEM_MAX_LENGTH} characters once lower-cased "
            f"(got {len(name)})",
        )
    return name


def optional_text(path: str, value: object, *, max_length: int = 200) -> str | None:
    """A trimmed string, or ``None`` for ``None`` or a blank string."""
    if value is None or (isinstance(value, str) and not str.strip(value)):
        return None
    return required_text(path, value, max_length=max_length)


def aware_datetime(path: str, value: object) -> dt.datetime:
    """A timezone-aware datetime, in UTC."""
    # Aware as Python defines it: a tzinfo that gives no offset leaves the
    # time naive (astimezone would read it as the machine's local time).
    if not isinstance(value, dt.datetime):
        raise _not_aware(path, value)
    try:
        # datetime's own methods, not the value's: a subclass's utcoffset()
        # could call a naive time aware, and its date() or timetz() give
        # another time than the one checked.
        if dt.datetime.utcoffset(value) is None:
            raise _not_aware(path, value)
        if type(value) is not dt.datetime:
            # A subclass of datetime is kept as a plain one: its own
            # comparisons (which the order of times, I7's above all, uses)
            # are not the calendar's.
            value = dt.datetime.combine(dt.datetime.date(value), dt.datetime.timetz(value))
        return dt.datetime.astimezone(value, dt.UTC)
    except ValidationError:
        raise
    except OverflowError:
        # Within a day of datetime.min or .max, with an offset: no such time in UTC.
        raise ValidationError.single(
            path,
            "invalid_datetime",
            f"'{path}' must be a time that exists in UTC, between years 1 and 9999 "
            f"(got {shown(value)})",
        ) from None
    except (ValueError, TypeError):
        # A tzinfo of the caller's own whose utcoffset() gives a day or more,
        # or no timedelta at all: Python refuses it, in utcoffset() or astimezone().
        raise ValidationError.single(
            path,
            "invalid_datetime",
            f"'{path}' must be a timezone-aware datetime whose offset from UTC is a "
            f"timedelta of less than a day (got {shown(value)})",
        ) from None


def _not_aware(path: str, value: object) -> ValidationError:
    return ValidationError.single(
        path,
        "invalid_datetime",
        f"'{path}' must be a timezone-aware datetime (got {shown(value)})",
    )


def plain_date(path: str, value: object) -> dt.date:
    """A calendar date (not a datetime)."""
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise ValidationError.single(
            path, "invalid_date", f"'{path}' must be a date (got {shown(value)})"
        )
    if type(value) is not dt.date:
        # A subclass of date is kept as a plain date: its own comparisons
        # and arithmetic (which the due-date rules use) are not the calendar's.
        return dt.date(value.year, value.month, value.day)
    return value


def boolean(path: str, value: object) -> bool:
    """True or False, and nothing else (not 0, 1 or "yes")."""
    if not isinstance(value, bool):
        raise ValidationError.single(
            path, "wrong_type", f"'{path}' must be true or false (got {type(value).__name__})"
        )
    return value


def version_number(path: str, value: object) -> int:
    """A stored version: a whole number, 0 for never stored."""
    # Made a plain int before it is compared: a subclass's own comparisons
    # could pass any check.
    number = _int_or_none(value)
    if number is None or number < 0:
        got = shown(value if number is None else number)
        raise ValidationError.single(
            path, "invalid_version", f"'{path}' must be a whole number >= 0 (got {got})"
        )
    return number


def whole_number(path: str, value: object, low: int, high: int, *, code: str) -> int:
    """An ``int`` (not a ``bool``) from ``low`` to ``high``; anything else is
    a ``code`` error whose message shows the start of it (an int or a bool,
    ``True``) or its type."""
    number = _int_or_none(value)
    if number is None or not low <= number <= high:
        if number is not None:
            got = shown(number)
        else:
            got = shown(value) if isinstance(value, bool) else type(value).__name__
        raise ValidationError.single(
            path, code, f"'{path}' must be a whole number from {low:,} to {high:,} (got {got})"
        )
    return number


def _int_or_none(value: object) -> int | None:
    """``value`` as a plain int when it is an int and not a bool, else None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return plain_int(value)


def keep_checked(
    found: FieldErrors,
    obj: object,
    name: str,
    parse: Callable[..., object],
    *args: Any,
    **kwargs: Any,
) -> None:
    """Check the field ``name`` of an instance just built with
    ``parse(name, value, *args, **kwargs)``, noting its error in ``found``; keep what
    the parse returns when it is another object (a plain ``int`` or ``date``
    for a subclass's, the same instant in UTC for a time at another offset),
    so that no check passes on one value and the instance keeps another,
    and every store writes and reads back the same text."""
    value = getattr(obj, name)
    clean = found.check("", parse, name, value, *args, **kwargs)
    if clean is not None and clean is not value:
        object.__setattr__(obj, name, clean)


def class_label(kind: type[Any]) -> str:
    """A class's name with its article, for messages: "a Partner", "an Invoice"."""
    name = kind.__name__
    return f"{'an' if name[:1] in 'AEIOU' else 'a'} {name}"


def argument(path: str, value: object, kind: type[E], label: str) -> E:
    """An argument that must already be a ``kind`` (a partner, a customer, an
    invoice): anything else, ``None`` above all, is a ``wrong_type`` error
    naming the argument, rather than an ``AttributeError`` further in."""
    if not isinstance(value, kind):
        raise ValidationError.single(
            path, "wrong_type", f"'{path}' must be {label} (got {type(value).__name__})"
        )
    return value


def entity_id(path: str, value: object, kind: type[IdT]) -> IdT:
    """An id of ``kind``, given as itself or its text; a bad one is an
    ``invalid_id`` error at ``path`` whose message names ``path`` (the id's
    own message names its kind: ``'team member id' must look like ...``)."""
    if type(value) is kind:
        return value
    try:
        return kind(value)  # type: ignore[call-arg]
    except ValidationError:
        got = id_text(kind, value) if isinstance(value, str) else type(value).__name__
        article = "an" if kind.label[:1] in "aeio" else "a"  # "a user id"
        raise ValidationError.single(
            path,
            "invalid_id",
            f"'{path}' must look like {kind.prefix}_<letters and digits>"
            f" ({article} {kind.label}) (got {got})",
        ) from None


class _ChoicesType(enum.EnumType):
    """The metaclass of the library's enumerations: a value given as a
    subclass of ``str`` or ``int`` is looked up as its plain value, so that
    its own ``__eq__`` and ``__hash__`` cannot pick a member that its text
    does not name (``Role(text)`` is the role the text says, or none), and
    one without ``__hash__`` raises no ``TypeError``."""

    def __call__(cls, value: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(value, cls):  # a member of a StrEnum is a str too
            if isinstance(value, str):
                value = plain_str(value)
            elif isinstance(value, int) and not isinstance(value, bool):
                value = plain_int(value)
        return super().__call__(value, *args, **kwargs)


class Choices(enum.Enum, metaclass=_ChoicesType):
    """The library's enumerations derive from this: looking up a value that
    is no member's (``Role("owner")``) raises a
    :class:`~altpay_core.errors.ValidationError`, still a ``ValueError``,
    that lists the members' values, rather than Python's bare ``ValueError``;
    a value given as a subclass of ``str`` or ``int`` is looked up as its
    plain value (see :class:`_ChoicesType`).
    """

    @classmethod
    def _missing_(cls, value: object) -> NoReturn:
        options = ", ".join(repr(m.value) for m in cast("Iterable[Any]", cls))
        raise ValidationError.single(
            "",
            "invalid_choice",
            f"a {cls.__name__} must be one of {options} (got {shown(value)})",
        )


def choice(path: str, value: object, kind: type[E]) -> E:
    """A member of the enumeration ``kind``, given as itself or its value."""
    if isinstance(value, str) and not isinstance(value, kind):
        # Looked up as a plain str: a subclass's own __eq__ could match any
        # member, and one without __hash__ would raise a TypeError.
        value = plain_str(value)
    try:
        return kind(value)  # type: ignore[call-arg]
    except ValueError:
        options = ", ".join(repr(m.value) for m in kind)  # type: ignore[attr-defined]
        raise ValidationError.single(
            path, "invalid_choice", f"'{path}' must be one of {options} (got {shown(value)})"
        ) from None


def as_tuple(path: str, value: object) -> tuple[Any, ...]:
    """A list or tuple, as a tuple."""
    if not isinstance(value, list | tuple):
        raise ValidationError.single(
            path, "wrong_type", f"'{path}' must be a list (got {type(value).__name__})"
        )
    return tuple(value)


TEXT_OR_BYTES: Final = (str, bytes, bytearray, memoryview)
"""Text and binary data: iterable (binary data as ints), but never a list of
the library's values."""

NOT_A_LIST: Final = (*TEXT_OR_BYTES, Mapping)
"""Iterables that are no list of items: text, binary data, mappings."""


def listed(path: str, value: object, label: str = "a list") -> tuple[Any, ...]:
    """Any iterable of items (a list, a tuple, a generator...), as a tuple.
    Text, binary data and mappings are iterable, but of characters, bytes
    and keys: each is ``wrong_type``, as anything not iterable is."""
    if isinstance(value, NOT_A_LIST) or not isinstance(value, Iterable):
        raise ValidationError.single(
            path, "wrong_type", f"'{path}' must be {label} (got {type(value).__name__})"
        )
    return tuple(value)


def list_as_tuple(value: list[Any] | tuple[Any, ...]) -> tuple[Any, ...]:
    """A converter: a list (or tuple) as a tuple; anything else as it is,
    for the checks that follow to report.

    Typed with what it takes, so that a type checker reads a field's
    parameter as a list or a tuple (a type checker cannot bind a generic
    converter's item type to the field's)."""
    return tuple(value) if isinstance(value, list | tuple) else value


def in_stable_order(items: Iterable[Any]) -> list[Any]:
    """The items of a set, which have no index of their own, in an order
    that does not change from one process to the next (a set's own order
    follows the hashes of its items, and a string's hash changes with
    ``PYTHONHASHSEED``): so that the errors about them, and the indices
    those errors name, are the same in every process."""

    def key(item: Any) -> tuple[str, str, str]:
        try:
            text = repr(item)
        except Exception:
            text = ""
        kind = type(item)
        return kind.__module__, kind.__qualname__, text

    return sorted(items, key=key)


def note_rule(found: FieldErrors, broken: InvariantViolation | None) -> None:
    """A rule of the aggregate that its fields break, among the field errors
    found, its code the rule's: when fields are also at fault, none hides
    another."""
    if broken is not None:
        found.add(broken.path, broken.rule, broken.message)


def raise_rule_alone(found: FieldErrors, broken: InvariantViolation | None) -> None:
    """The broken rule as itself, an ``InvariantViolation``, when it is all
    that is wrong; else every error found, the rules' among them."""
    if broken is not None and len(found.errors) == 1:
        raise broken
    found.raise_if_any()


def _renamed_path(path: str, name: str, to: str) -> str:
    if path == name or path.startswith((f"{name}[", f"{name}.")):
        return to + path[len(name) :]
    return path


@contextlib.contextmanager
def argument_renamed(name: str, to: str) -> Iterator[None]:
    """Errors raised inside at ``name`` (or below it: ``name[1]``), reported
    at ``to``: the caller's own argument, for what it passed on as ``name``
    (``invoices[1]`` read by ``invoice_ids[1]``)."""
    try:
        yield
    except ValidationError as error:
        if not any(_renamed_path(e.path, name, to) != e.path for e in error.errors):
            raise
        errors = []
        for e in error.errors:
            path = _renamed_path(e.path, name, to)
            errors.append(FieldError(path, e.code, e.message.replace(f"'{e.path}'", f"'{path}'")))
        raise ValidationError(errors) from None
    except InvariantViolation as error:
        error.path = _renamed_path(error.path, name, to)
        raise
