"""Which public types the testing kit has strategies for (no Hypothesis here)."""

from __future__ import annotations

import enum
from typing import Any

import attrs


def registered_types() -> list[type[Any]]:
    """Every public class of ``altpay_core`` that is data: values, aggregates,
    events and enumerations (not errors, ports or functions), and the
    cursors and page requests of ``altpay_core.ports``."""
    import altpay_core
    from altpay_core.ports import Cursor, PageRequest

    found: list[type[Any]] = []
    for name in altpay_core.__all__:
        obj = getattr(altpay_core, name)
        if isinstance(obj, type) and (attrs.has(obj) or issubclass(obj, enum.Enum)):
            found.append(obj)
    # The paging values of altpay_core.ports, public there.
    return [*found, Cursor, PageRequest]


def registered_errors() -> list[type[Any]]:
    """The errors the kit has strategies for: those built from field errors,
    which Hypothesis cannot guess (the others it builds from text)."""
    from altpay_core.errors import ArgumentError, OperandError, ValidationError

    return [ValidationError, OperandError, ArgumentError]
