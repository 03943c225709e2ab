"""Registers altpay-core's strategies with Hypothesis when Hypothesis loads.

Hypothesis calls :func:`_hypothesis_setup_hook` through the ``hypothesis``
entry point. The strategies module imports Hypothesis, so it is imported
lazily, inside each resolver, when a strategy is first asked for.
"""

from __future__ import annotations

from typing import Any


def _resolve(cls: type[Any]) -> Any:
    from altpay_core.testing import strategies

    return strategies.for_type(cls)


def _register(cls: type[Any]) -> None:
    from hypothesis import strategies as st

    st.register_type_strategy(cls, _resolve)


def _hypothesis_setup_hook() -> None:
    from altpay_core.events import _EVENT_TYPE_LISTENERS, EVENT_TYPES
    from altpay_core.testing._types import registered_errors, registered_types

    for cls in (*registered_types(), *registered_errors()):
        _register(cls)
    # Every event class, a service's own too: those defined so far, and the
    # others as they are.
    for cls in EVENT_TYPES.values():
        _register(cls)
    if _register not in _EVENT_TYPE_LISTENERS:
        _EVENT_TYPE_LISTENERS.append(_register)
