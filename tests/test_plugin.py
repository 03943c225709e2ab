"""The pytest plugin: its fixtures, seen from a user's test suite."""

from __future__ import annotations

import subprocess
import sys

import pytest

from altpay_core import Partner, UnitOfWork
from altpay_core.adapters.memory import MemoryStore, MemoryUnitOfWork

pytest_plugins = ["pytester"]


def test_the_fixtures_work_here_too(
    altpay_store: MemoryStore, altpay_uow: MemoryUnitOfWork
) -> None:
    assert isinstance(altpay_uow, UnitOfWork)
    partner = altpay_uow.partners.save(Partner.create(name="Northwind IT", country="US"))
    altpay_uow.commit()
    with altpay_store.unit_of_work() as other:
        assert other.partners.get(partner.id) == partner


def test_a_users_suite_gets_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        from altpay_core import NotFound, Partner, Store, UnitOfWork

        PARTNER = Partner.create(name="Northwind IT", country="US")


        def test_store_is_new_and_empty(altpay_store):
            assert isinstance(altpay_store, Store)
            with altpay_store.unit_of_work() as uow:
                with pytest.raises(NotFound):
                    uow.partners.get(PARTNER.id)
                uow.partners.save(PARTNER)
                uow.commit()


        def test_each_test_has_its_own_store(altpay_store):
            with altpay_store.unit_of_work() as uow:
                with pytest.raises(NotFound):
                    uow.partners.get(PARTNER.id)


        def test_uow_is_entered_and_over_the_store(altpay_uow, altpay_store):
            assert isinstance(altpay_uow, UnitOfWork)
            saved = altpay_uow.partners.save(PARTNER)
            altpay_uow.commit()
            with altpay_store.unit_of_work() as other:
                assert other.partners.get(PARTNER.id) == saved


        def test_uncommitted_work_needs_no_cleanup(altpay_uow):
            altpay_uow.partners.save(PARTNER)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_the_plugin_is_registered_by_its_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--fixtures", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*altpay_store*", "*altpay_uow*"])


def test_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, altpay_core.testing.plugin\n"
        "heavy = [m for m in ('hypothesis', 'altpay_core.adapters.memory') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
