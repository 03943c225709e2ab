"""The pytest plugin of altpay-core, loaded through the ``pytest11`` entry point.

It only defines fixtures, and imports neither Hypothesis nor the adapters
until a fixture is used. (Loading it does import ``altpay_core`` itself, the
package it lives in.)

Fixtures:

``altpay_store``
    A new, empty :class:`~altpay_core.adapters.memory.MemoryStore`, closed
    after the test.
``altpay_uow``
    A unit of work over ``altpay_store``, already entered: save, then
    ``commit()``; whatever is not committed is rolled back after the test.

Each test gets its own store. A ``@given`` test shares its fixtures between
examples: make a store per example there instead.

::

    from altpay_core import Partner


    def test_onboarding(altpay_uow):
        partner = altpay_uow.partners.save(Partner.create(name="Northwind IT", country="US"))
        altpay_uow.commit()
        assert altpay_uow.partners.get(partner.id) == partner
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from altpay_core.adapters.memory import MemoryStore, MemoryUnitOfWork

__all__ = ["altpay_store", "altpay_uow"]


@pytest.fixture
def altpay_store() -> Iterator[MemoryStore]:
    """A new, empty in-memory store, closed after the test."""
    from altpay_core.adapters.memory import MemoryStore

    store = MemoryStore()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def altpay_uow(altpay_store: MemoryStore) -> Iterator[MemoryUnitOfWork]:
    """A unit of work over ``altpay_store``, entered; rolled back after the test."""
    with altpay_store.unit_of_work() as uow:
        yield uow
