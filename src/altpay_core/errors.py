"""The exceptions that altpay-core raises.

Everything the library raises on purpose derives from :class:`AltpayError`.
Leaf classes also derive from the nearest builtin (``ValueError``,
``LookupError``), so generic callers keep working.

Every error pickles (a worker process can hand it back to its parent) and keeps
the facts of its message as attributes, so that callers never parse messages.
"""

from __future__ import annotations

import contextlib
import decimal
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from decimal import Decimal
from typing import Any, Final, ParamSpec, Self, TypeVar

import attrs

from ._arguments import checked_arguments, checked_constructor

__all__ = [
    "AltpayError",
    "ArgumentError",
    "ConcurrencyConflict",
    "CurrencyMismatch",
    "FieldError",
    "FieldErrors",
    "InvariantViolation",
    "NotFound",
    "OperandError",
    "PermissionDenied",
    "UniqueKeyTaken",
    "ValidationError",
    "join_path",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")


# Longest slice of input echoed back in a message: enough to recognise it,
# never a wall of text (input may come from anywhere).
SHOWN_CHARS: Final = 40


def cut(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` as a message shows it unquoted: cut short after ``limit``
    (40) characters.

    >>> cut("12.345")
    '12.345'
    """
    return text if len(text) <= limit else f"{text[:limit]}..."


SHOWN_DIGITS: Final = 4
"""The most digits a text the library shows may hold: the last 4 of a card
or account number, as a saved method's display does (``Visa 4242``)."""


def may_hold_number(text: str) -> bool:
    """Whether ``text`` has more digits than :data:`SHOWN_DIGITS`, counting
    every one, whatever separates them and in any script: it may be a card
    or account number, and is not echoed.

    >>> may_hold_number("4242 4242 4242 4242"), may_hold_number("line2")
    (True, False)
    """
    return sum(char.isdigit() for char in text) > SHOWN_DIGITS


PATH_CHARS: Final = 200
"""How much of a field's path ``str(FieldError)`` shows: every path the
library makes (``amounts[inv_...]``, ``users[1].email``) whole, an unknown
key of any length (its own path) cut short."""


_UNSHOWN: ContextVar[bool] = ContextVar("altpay_input_unshown", default=False)


@contextlib.contextmanager
def input_unshown() -> Iterator[None]:
    """Within it, :func:`shown` gives no input back, only its type (and a
    text's length): for the fields of a saved payment method, where a full
    card or account number put in the wrong field must never be echoed.

    Not part of the public API.
    """
    token = _UNSHOWN.set(True)
    try:
        yield
    finally:
        _UNSHOWN.reset(token)


def input_is_unshown() -> bool:
    """Whether :func:`input_unshown` is in force: a message then names no
    input, not even a mapping's key (which may be a number in the wrong
    place)."""
    return _UNSHOWN.get()


def not_shown(value: object) -> str:
    """What :func:`shown` gives within :func:`input_unshown`: a text's
    length, or a value's type, and never the value."""
    if isinstance(value, str):
        return f"{len(value)} characters; the value is not shown"
    return f"{type(value).__name__}; the value is not shown"


# Writes a Decimal as str() does in the default context (exponents with a
# capital E), which is what to_sci_string takes from it: the library's own
# contexts write the same.
_DECIMAL_TEXT: Final = decimal.Context()


def shown(value: object) -> str:
    """Input as a message shows it: its ``repr``, cut short after 40
    characters (text is cut before it is quoted, so the quotes still match);
    within :func:`input_unshown`, its type only.

    Not part of the public API: every message of the library that echoes
    input goes through it (or through :func:`cut`).

    >>> shown("x" * 50)
    "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'..."
    """
    if _UNSHOWN.get():
        return not_shown(value)
    if isinstance(value, str):
        if len(value) > SHOWN_CHARS:
            return f"{value[:SHOWN_CHARS]!r}..."
        return repr(value)
    if isinstance(value, Decimal) and type(value).__repr__ is Decimal.__repr__:
        # Decimal's repr follows the caller's context (capitals=0 writes
        # 1e+3): the message is the same whatever that context.
        return cut(f"Decimal('{_DECIMAL_TEXT.to_sci_string(value)}')")
    try:
        text = repr(value)
    except Exception:  # an int too long to print, a repr that fails
        return type(value).__name__
    return cut(text)


def key_text(key: object) -> str:
    """A mapping's key as a path names it: its text (``str``), or its type's
    name for a key that has none (an int too long to print, a ``__str__``
    that fails).

    Not part of the public API: every path the library builds from a key of
    the caller's goes through it, and so does every look-up of an invoice by
    a key's text. The text is a plain ``str``: a subclass of ``str`` (with
    its own ``__eq__`` and ``__hash__``) could otherwise name one invoice in
    a path and match another in a look-up.

    >>> key_text("email"), key_text(7), key_text(10**5000)
    ('email', '7', 'int')
    """
    if isinstance(key, str):
        # _fields.plain_str, which this module cannot import.
        return str.__str__(key)
    try:
        text = str(key)
    except Exception:
        return type(key).__name__
    # A __str__ may give a subclass of str: kept as plain text too.
    return str.__str__(text)


@checked_arguments
def join_path(prefix: str, path: str) -> str:
    """Join two parts of a field path: ``join_path("users[1]", "email")``.

    >>> join_path("users", "[1]")
    'users[1]'
    >>> join_path("", "email")
    'email'
    """
    if not prefix:
        return path
    if not path:
        return prefix
    if path.startswith("["):
        return prefix + path
    return f"{prefix}.{path}"


@checked_constructor
@attrs.frozen
class FieldError:
    """One invalid field: where it is, a stable code, and a readable message.

    ``path`` locates the field from the top of the input (``users[1].email``);
    it is empty when the whole value is at fault. ``code`` is stable across
    releases, for programs; ``message`` names the field, what was expected and
    what came, for people.
    """

    path: str
    code: str
    message: str

    def __attrs_post_init__(self) -> None:
        # Built on error paths only: the check costs the hot paths nothing, and
        # a field error of other types would neither print nor round-trip.
        wrong = [n for n in ("path", "code", "message") if not isinstance(getattr(self, n), str)]
        if wrong:
            raise ValidationError(
                [
                    FieldError(
                        name,
                        "wrong_type",
                        f"'{name}' must be a string (got {type(getattr(self, name)).__name__})",
                    )
                    for name in wrong
                ]
            )

    @checked_arguments
    def under(self, prefix: str) -> FieldError:
        """The same error, located below ``prefix``."""
        return FieldError(join_path(prefix, self.path), self.code, self.message)

    def __str__(self) -> str:
        # A long path is cut short too: an unknown key is its own path.
        return f"{cut(self.path, PATH_CHARS) or '(value)'}: {self.message} [{self.code}]"


@checked_constructor
class AltpayError(Exception):
    """The root of every error altpay-core raises on purpose."""

    default_message = "altpay-core error"

    message: str
    """What went wrong: ``str(error)``."""

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            _check_text({"message": message})
        self.message = message or self.default_message
        super().__init__(self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.__dict__.copy()))

    def __str__(self) -> str:
        return self.message


def _check_text(values: dict[str, object]) -> None:
    """Refuse, at once, every argument of an error's constructor that is not
    text (``NotFound(7, ...)``, ``AltpayError(123)``): a ``ValidationError``
    (``wrong_type``) at each, as :class:`FieldError` refuses its own, and
    never an error whose ``str()`` or attributes are not text."""
    wrong = [name for name, value in values.items() if not isinstance(value, str)]
    if wrong:
        raise ValidationError(
            [
                FieldError(
                    name,
                    "wrong_type",
                    f"'{name}' must be a string (got {type(values[name]).__name__})",
                )
                for name in wrong
            ]
        )


def _rebuild(cls: type[AltpayError], state: dict[str, Any]) -> AltpayError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message"))
    error.__dict__.update(state)
    return error


@checked_constructor
class ValidationError(AltpayError, ValueError):
    """Input that is malformed or missing: one or more fields are invalid.

    ``errors`` lists every invalid field at once (as a form shows them), each a
    :class:`FieldError` with a path such as ``users[1].email``.

    >>> e = ValidationError([FieldError("city", "blank", "'city' must not be blank")])
    >>> e.errors[0].path
    'city'
    """

    default_message = "invalid input"

    def __init__(self, errors: Iterable[FieldError] | FieldError) -> None:
        self.errors: list[FieldError] = _field_errors(errors)
        if len(self.errors) == 1:
            message = str(self.errors[0])
        else:
            lines = "\n".join(f"  - {e}" for e in self.errors)
            message = f"{len(self.errors)} invalid fields:\n{lines}"
        super().__init__(message)

    @classmethod
    @checked_arguments
    def single(cls, path: str, code: str, message: str) -> Self:
        """An error about one field, of this class:
        ``OperandError.single(...)`` is an ``OperandError`` (a ``TypeError``)
        too."""
        return cls._of([FieldError(path, code, message)])

    @checked_arguments
    def under(self, prefix: str) -> Self:
        """The same errors, located below ``prefix``: an error of the same
        class (an :class:`ArgumentError` stays a ``TypeError``), with the
        same attributes."""
        moved = self._of([e.under(prefix) for e in self.errors])
        kept = {k: v for k, v in self.__dict__.items() if k not in _OWN_STATE}
        moved.__dict__.update(kept)
        return moved

    @classmethod
    def _of(cls, errors: list[FieldError]) -> Self:
        # A subclass may take other arguments (OperandError takes a path and
        # a message): built as a ValidationError of its class, with ``errors``.
        if cls.__init__ is ValidationError.__init__:
            return cls(errors)
        error = cls.__new__(cls)
        ValidationError.__init__(error, errors)
        return error

    @property
    def paths(self) -> list[str]:
        """The path of every invalid field, in order."""
        return [e.path for e in self.errors]

    @property
    def codes(self) -> list[str]:
        """The code of every invalid field, in order."""
        return [e.code for e in self.errors]


# What ``under`` builds anew rather than copies: the errors, their message,
# and the notes added to the error it was called on.
_OWN_STATE: Final = frozenset({"errors", "message", "__notes__"})


@checked_constructor
class OperandError(ValidationError, TypeError):
    """An operator was given an operand it does not take: ``Money + 1``.

    A :class:`ValidationError` at the operand (``other``, ``factor``), and
    also a ``TypeError``, as Python's own operators raise for operands they
    do not support.

    >>> e = OperandError("other", "money adds only to money")
    >>> isinstance(e, TypeError), e.paths, e.codes
    (True, ['other'], ['wrong_type'])
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(FieldError(path, "wrong_type", message))


@checked_constructor
class ArgumentError(ValidationError, TypeError):
    """A call without an argument it needs, or with one it does not take:
    ``draft.add_user(first_name="Ann")``, or a form's extra field passed on
    with ``**form``.

    A :class:`ValidationError` with a field error for each argument at fault
    (``missing``, ``unknown_field``, ``duplicate``, or ``too_many_positional``
    at the empty path), and also a ``TypeError``, as Python raises for a call
    its signature does not take. A call taking a form's fields
    (``draft.enter_details(**form)``) lists the form's other field errors
    too, each at its own path, in the form's order (rule C2).

    >>> e = ArgumentError([FieldError("email", "missing", "'email' is required")])
    >>> isinstance(e, TypeError), e.paths, e.codes
    (True, ['email'], ['missing'])
    """


def _field_errors(errors: object) -> list[FieldError]:
    """The errors a ValidationError is built from: one FieldError, or a list
    of at least one. Anything else is itself a ValidationError (also a
    ``ValueError``) naming the argument, not a TypeError from ``list()``."""
    if isinstance(errors, FieldError):
        return [errors]
    # _fields.NOT_A_LIST, which this module cannot import (_fields imports it).
    if isinstance(errors, Iterable) and not isinstance(
        errors, str | bytes | bytearray | memoryview | Mapping
    ):
        found = list(errors)
        if found and all(isinstance(e, FieldError) for e in found):
            return found
        if not found:
            raise ValidationError.single(
                "errors", "empty", "a ValidationError needs at least one FieldError"
            )
        got = next(type(e).__name__ for e in found if not isinstance(e, FieldError))
    else:
        got = type(errors).__name__
    raise ValidationError.single(
        "errors",
        "wrong_type",
        f"'errors' must be a FieldError or a list of them (got {got})",
    )


@checked_constructor
class FieldErrors:
    """Collects the field errors of a value built from several fields.

    Used by constructors that must report every invalid field at once::

        found = FieldErrors()
        city = found.check("city", clean_city, raw_city)
        found.raise_if_any()
    """

    __slots__ = ("errors",)

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    @checked_arguments
    def add(self, path: str, code: str, message: str) -> None:
        """Record one error: the field's ``path``, a stable ``code`` and a
        message for people."""
        self.errors.append(FieldError(path, code, message))

    @checked_arguments
    def check(
        self, path: str, parse: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs
    ) -> _R | None:
        """Call ``parse(*args, **kwargs)``; keep its ``ValidationError`` under
        ``path`` and return ``None`` instead."""
        try:
            return parse(*args, **kwargs)
        except ValidationError as error:
            self.errors.extend(e.under(path) for e in error.errors)
            return None

    def __bool__(self) -> bool:
        return bool(self.errors)

    def __iter__(self) -> Iterator[FieldError]:
        return iter(self.errors)

    @checked_arguments
    def raise_if_any(self) -> None:
        """Raise one ``ValidationError`` with every error recorded, in the
        order they were found; return if there is none."""
        if self.errors:
            raise ValidationError(self.errors)
        if _FIELDS_ONLY.get():
            raise FieldsChecked([])


_FIELDS_ONLY: ContextVar[bool] = ContextVar("altpay_fields_only", default=False)


class FieldsChecked(Exception):
    """Raised instead of going on past a constructor's field checks, while
    :func:`fields_only` is in force: what those checks found.

    ``from_dict`` uses it to report a value's field errors (a blank company)
    together with the fields it could not read at all (a malformed id): it
    builds the value once more, with the unreadable fields left out, and
    stops before the rules that need every field.
    """

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__(errors)


def fields_only(build: Any) -> list[FieldError]:
    """Run ``build()`` until the first constructor's field checks are done,
    and return what they found (nothing, if they were never reached)."""
    token = _FIELDS_ONLY.set(True)
    try:
        build()
    except FieldsChecked as done:
        return done.errors
    except ValidationError as error:
        return error.errors
    except Exception:
        return []
    finally:
        _FIELDS_ONLY.reset(token)
    return []  # pragma: no cover - a constructor with no field checks


@checked_constructor
class InvariantViolation(AltpayError):
    """A command would break a rule about an aggregate's state.

    ``rule`` is the rule's stable code (for example ``"C5"``); ``path`` names
    the field concerned when there is one (``"users"``).
    """

    default_message = "a rule of the domain would be broken"

    def __init__(self, message: str, *, rule: str, path: str = "") -> None:
        _check_text({"message": message, "rule": rule, "path": path})
        self.rule = rule
        self.path = path
        super().__init__(f"{message} (rule {rule})")


@checked_constructor
class NotFound(AltpayError, LookupError):
    """Nothing of that kind with that key, within the partner asked about.

    Raised within :func:`input_unshown` (a saved payment method's id, which
    may be a card number wrapped in ``pm_...``), it gives the key's length
    only, and ``key`` is empty.

    >>> NotFound("customer", "cus_1").key
    'cus_1'
    >>> with input_unshown():
    ...     error = NotFound("payment method", "pm_4111111111111111")
    >>> str(error), error.key
    ('no payment method with that key (19 characters; the value is not shown)', '')
    """

    default_message = "not found"

    key: str
    """The key looked for, as text (empty when it is not shown)."""

    def __init__(self, kind: str, key: object) -> None:
        _check_text({"kind": kind})
        self.kind = kind
        text = key_text(key)
        if _UNSHOWN.get():
            self.key = ""
            super().__init__(f"no {kind} with that key ({not_shown(text)})")
        else:
            self.key = text
            super().__init__(f"no {kind} {shown(text)}")


@checked_constructor
class ConcurrencyConflict(AltpayError):
    """The aggregate changed since it was read, or a unique key is taken.

    Nothing was written; read it again and retry the command.
    """

    default_message = "the record changed since it was read; nothing was written"

    key: str
    """The unique key taken, as text (empty for a stale version)."""

    def __init__(self, message: str | None = None, *, kind: str = "", key: object = "") -> None:
        _check_text({"kind": kind} if message is None else {"message": message, "kind": kind})
        self.kind = kind
        self.key = key_text(key)
        super().__init__(message)


@checked_constructor
class UniqueKeyTaken(ConcurrencyConflict, InvariantViolation):
    """A save would take a unique key that another aggregate of the partner
    holds: an external reference (rule ``C10`` for customers,
    ``invoice-ref`` for invoices) or an invoice number (``invoice-number``);
    or, from ``services.create_customer``, a customer id that a draft
    already created (``customer-created``, at ``draft``).

    Both a :class:`ConcurrencyConflict` (the store refused the save: nothing
    was written; ``kind`` and ``key`` name the key) and an
    :class:`InvariantViolation` (``rule``, and ``path`` the field). Unlike a
    stale version, the same command fails again when retried: the key must
    change first.
    """

    default_message = "a unique key is taken; nothing was written"

    key: str
    """The unique key taken, as text."""

    def __init__(self, message: str, *, rule: str, path: str, kind: str, key: object) -> None:
        _check_text({"message": message, "rule": rule, "path": path, "kind": kind})
        self.kind = kind
        self.key = key_text(key)
        self.rule = rule
        self.path = path
        AltpayError.__init__(self, f"{message} (rule {rule})")


@checked_constructor
class PermissionDenied(AltpayError):
    """The actor's role does not allow the action."""

    default_message = "permission denied"

    def __init__(self, *, role: str, action: str) -> None:
        _check_text({"role": role, "action": action})
        self.role = role
        self.action = action
        super().__init__(f"role {role!r} may not {action}")


@checked_constructor
class CurrencyMismatch(AltpayError, ValueError):
    """Two amounts in different currencies were combined or compared."""

    default_message = "currencies differ"

    def __init__(self, left: str, right: str, operation: str = "combine") -> None:
        _check_text({"left": left, "right": right, "operation": operation})
        self.left = left
        self.right = right
        self.operation = operation
        super().__init__(f"cannot {operation} {left} with {right}")
