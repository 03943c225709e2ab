"""Calls their signature does not take, reported as an ``ArgumentError``.

A form posted as keywords (``draft.add_user(**form)``) may lack a field or
carry one more; Python would raise a bare ``TypeError``. The public
functions, methods and constructors of the library go through
:func:`checked_arguments`, which reports every argument at fault at once, by
name, as a :class:`~altpay_core.errors.ValidationError` that is also a
``TypeError``.

A function that takes a form's fields (:func:`checked_form`) reports the
form's other field errors with them: a required field left out does not
hide a blank one (rule C2).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, cast

if TYPE_CHECKING:
    from .errors import FieldError

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C", bound=type[Any])

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_BY_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
# Where a path's first name ends: ``address`` of ``address.city``, ``users``
# of ``users[1].email``.
_HEAD_END: Final = re.compile(r"[.\[]")


class _MissingArgument:
    """Stands for a required argument that a call left out, while the body of
    a :func:`checked_form` function runs only to report its other fields."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing argument>"


MISSING_ARGUMENT: Final = _MissingArgument()


def checked_arguments(function: Callable[P, R]) -> Callable[P, R]:
    """``function``, raising :class:`~altpay_core.errors.ArgumentError`
    instead of the ``TypeError`` of a call that its signature does not take.

    A call that binds costs one more frame (about 0.15 µs); the signature is
    read only when a call fails to bind. A ``TypeError`` raised inside
    ``function`` goes on as it was.
    """
    return _checked(function, form=False)


def checked_form(function: Callable[P, R]) -> Callable[P, R]:
    """:func:`checked_arguments` for a function that takes a form's fields
    and reports every invalid one at once: its ``ArgumentError`` carries the
    other fields' errors too.

    A call that leaves out a required field (``draft.enter_details(**form)``
    without ``company``) or passes one the function does not take runs the
    function once more, the unknown keywords dropped and each field left out
    standing for :data:`MISSING_ARGUMENT`, only to collect its
    ``ValidationError``. The ``ArgumentError`` lists the unknown keywords,
    then the function's field errors in its own order (a form's), each
    field left out as ``missing`` at its own place (or last, if the function
    did not reach it). Whatever else that run raises, and its result, are
    dropped: the error is then the arguments' alone, as for
    :func:`checked_arguments`. Too many positional arguments or one given
    twice never run it. The function must change nothing outside its result
    (the domain's calls change nothing; the services, which write to a store,
    never use it).
    """
    return _checked(function, form=True)


def _checked(function: Callable[P, R], *, form: bool) -> Callable[P, R]:
    method = "." in function.__qualname__.rpartition("<locals>.")[2]

    @functools.wraps(function)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except TypeError as error:
            # A call that does not bind fails before entering ``function``:
            # its traceback ends in this frame.
            if error.__traceback__ is None or error.__traceback__.tb_next is not None:
                raise
            from .errors import ArgumentError  # errors.py checks its own calls

            name = _called(function, args)
            signature = inspect.signature(function)
            found = _argument_errors(signature, name, args, kwargs, method=method)
            if form and found:
                found = _with_field_errors(function, signature, args, kwargs, found)
            raise ArgumentError(found or _unbound(name, error)) from None

    call.__checked_arguments__ = True  # type: ignore[attr-defined]
    return call


def _called(function: Callable[..., Any], args: tuple[Any, ...]) -> str:
    """What the caller called: the class, for a constructor (an inherited
    one included: ``PartnerId()``, not ``EntityId.__init__()``), and a
    function by the name it is called by, not by where it was defined (a
    strategy Hypothesis builds from ``@st.composite`` is defined inside
    Hypothesis: ``customer_payment_methods()``, not
    ``accept.<locals>.customer_payment_methods()``)."""
    if function.__name__ == "__init__" and args:
        return f"{_outside(type(args[0]).__qualname__)}()"
    if function.__name__ == "__new__" and args and isinstance(args[0], type):
        return f"{_outside(args[0].__qualname__)}()"
    return f"{_outside(function.__qualname__)}()"


def _outside(qualname: str) -> str:
    """``qualname`` without the function it was defined in, if any."""
    return qualname.rpartition("<locals>.")[2]


def checked_constructor(cls: C) -> C:
    """``cls``, its constructor wrapped by :func:`checked_arguments`: the
    ``__new__`` it defines, or else its ``__init__`` (unless inherited from
    a class already checked)."""
    return _checked_constructor(cls, form=False)


def checked_form_constructor(cls: C) -> C:
    """:func:`checked_constructor` for a value built from a form's fields,
    which reports every invalid one at once: its constructor, an
    ``__init__``, is wrapped by :func:`checked_form`."""
    return _checked_constructor(cls, form=True)


def _checked_constructor(cls: C, *, form: bool) -> C:
    method = "__new__" if "__new__" in vars(cls) else "__init__"
    constructor = getattr(cls, method)
    if getattr(constructor, "__checked_arguments__", False):
        return cls
    wrapped = _checked(constructor, form=form and method == "__init__")
    setattr(cls, method, staticmethod(wrapped) if method == "__new__" else wrapped)
    return cls


def _argument_errors(
    signature: inspect.Signature,
    name: str,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    *,
    method: bool,
) -> list[FieldError]:
    from .errors import FieldError, shown

    parameters = signature.parameters
    kinds = {p.kind for p in parameters.values()}
    positional = [p.name for p in parameters.values() if p.kind in _POSITIONAL]
    # A method's receiver (self, cls) is passed by Python, not by its caller;
    # a function's first argument named cls (from_dict) is the caller's.
    receiver = int(method and positional[:1] in (["self"], ["cls"]))
    found: list[FieldError] = []
    if len(args) > len(positional) and inspect.Parameter.VAR_POSITIONAL not in kinds:
        takes, got = len(positional) - receiver, len(args) - receiver
        found.append(
            FieldError(
                "",
                "too_many_positional",
                f"{name} takes {takes} positional argument{'' if takes == 1 else 's'}"
                f" (got {got}); give the others by keyword",
            )
        )
    given = set(positional[: len(args)])
    for key in kwargs:
        parameter = parameters.get(key)
        if parameter is not None and parameter.kind in _BY_KEYWORD:
            if key in given:
                found.append(FieldError(key, "duplicate", f"{shown(key)} is given twice to {name}"))
            given.add(key)
        elif inspect.Parameter.VAR_KEYWORD not in kinds:
            found.append(_unknown_argument(key, name))
    found.extend(
        FieldError(p.name, "missing", f"'{p.name}' is required by {name}")
        for p in parameters.values()
        if p.default is p.empty and p.kind not in _VARIADIC and p.name not in given
    )
    return found


def _with_field_errors(
    function: Callable[..., Any],
    signature: inspect.Signature,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    found: list[FieldError],
) -> list[FieldError]:
    """``found`` (the arguments at fault) with the field errors that
    ``function`` reports when run without the unknown keywords and with
    :data:`MISSING_ARGUMENT` for each argument left out (see
    :func:`checked_form`)."""
    from .errors import ValidationError

    if any(error.code not in ("missing", "unknown_field") for error in found):
        return found
    parameters = signature.parameters
    missing = {error.path: error for error in found if error.code == "missing"}
    if any(parameters[name].kind not in _BY_KEYWORD for name in missing):
        return found
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    given = {
        key: value
        for key, value in kwargs.items()
        if takes_any or (key in parameters and parameters[key].kind in _BY_KEYWORD)
    }
    given.update(dict.fromkeys(missing, MISSING_ARGUMENT))
    try:
        function(*args, **given)
    except ValidationError as invalid:
        reported = invalid.errors
    except Exception:
        return found
    else:
        return found
    merged = [error for error in found if error.code != "missing"]
    placed: set[str] = set()
    for field_error in reported:
        head = _HEAD_END.split(field_error.path, maxsplit=1)[0]
        if head not in missing:
            merged.append(field_error)
        elif head not in placed:
            # What the function said of the stand-in is the argument's
            # ``missing``, at the field's place in the function's order.
            merged.append(missing[head])
            placed.add(head)
    merged.extend(error for name, error in missing.items() if name not in placed)
    return merged


def _unknown_argument(key: str, name: str) -> FieldError:
    from .errors import FieldError, may_hold_number, not_shown, shown

    if may_hold_number(key):
        # A form's field named by a card or account number (``**form``):
        # named neither in the path nor in the message.
        return FieldError(
            "",
            "unknown_field",
            f"{name} takes no argument so named ({not_shown(key)}: it may be a card "
            "or account number)",
        )
    return FieldError(key, "unknown_field", f"{shown(key)} is not an argument of {name}")


def _unbound(name: str, error: TypeError) -> FieldError:
    # Anything the analysis above does not name (none known): Python's words.
    from .errors import FieldError, cut

    return FieldError("", "wrong_arguments", f"{name} was called wrongly: {cut(str(error), 200)}")


def unchecked_init(cls: type[Any]) -> Callable[..., None]:
    """The ``__init__`` of ``cls`` without the argument check.

    For the library's hot paths, whose calls always bind: a value built with
    ``object.__new__(cls)`` and then this costs what it did before the check
    (one frame less than ``cls(...)``), and runs every check of the value.
    """
    init = cls.__init__
    return cast("Callable[..., None]", getattr(init, "__wrapped__", init))
