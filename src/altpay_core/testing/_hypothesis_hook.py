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


def _hypothesis_setup_hook() -> None:
    from hypothesis import strategies as st

    from altpay_core.testing._types import registered_errors, registered_types

    for cls in (*registered_types(), *registered_errors()):
        st.register_type_strategy(cls, _resolve)
