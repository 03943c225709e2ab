"""The pytest plugin: its fixtures, seen from a user's test suite."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from altpay_core import Partner, UnitOfWork
from altpay_core.adapters.memory import MemoryStore, MemoryUnitOfWork
from altpay_core.testing import contracts, plugin

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


def test_the_fixtures_are_closed_after_their_test(pytester: pytest.Pytester) -> None:
    # A later test holds on to what an earlier one was given: the store is
    # closed, and the unit of work over it is over.
    pytester.makepyfile(
        """
        import pytest

        from altpay_core import AltpayError, Partner

        KEPT = []


        def test_given(altpay_uow, altpay_store):
            KEPT.extend((altpay_uow, altpay_store))
            altpay_uow.partners.save(Partner.create(name="Northwind IT", country="US"))


        def test_closed_after_it():
            uow, store = KEPT
            assert store.closed
            with pytest.raises(AltpayError):
                uow.commit()
            with pytest.raises(AltpayError):
                store.unit_of_work()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_the_documented_example_runs_as_written(pytester: pytest.Pytester) -> None:
    # The example of docs/testing-kit.md and of the plugin's docstring, as a
    # user's test module.
    page = (Path(__file__).resolve().parents[1] / "docs" / "testing-kit.md").read_text()
    example = page.split("```python\nfrom altpay_core import Partner\n", 1)[1].split("```")[0]
    assert "def test_onboarding(altpay_uow):" in example
    assert textwrap.indent(example, "    ").strip() in (plugin.__doc__ or "")
    pytester.makepyfile("from altpay_core import Partner\n" + example)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


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


def test_contract_classes_are_not_collected_on_their_own(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_imports_contracts="""
        from altpay_core.testing import contracts
        from altpay_core.testing.contracts import *  # noqa: F403
        from altpay_core.testing.contracts import PartnerRepositoryContract, StoreContract
        """,
        test_an_adapter="""
        from altpay_core.adapters.memory import MemoryStore
        from altpay_core.testing import contracts


        class TestMine(contracts.PartnerRepositoryContract):
            def make_store(self):
                return MemoryStore()
        """,
    )
    # Its own rootdir: a setup.py in a folder above would otherwise be the
    # root, and the ids would start with the path from there.
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--collect-only", "-q", f"--rootdir={pytester.path}"
    )
    collected = [line for line in result.outlines if "::" in line]
    expected = sorted(_tests_of(contracts.PartnerRepositoryContract))
    assert sorted(line.rpartition("::")[2] for line in collected) == expected
    assert all(line.startswith("test_an_adapter.py::TestMine::") for line in collected)


def test_the_store_contract_runs_every_test_of_every_contract() -> None:
    # StoreContract inherits from every contract: a name two of them share
    # would hide one of the two tests (or helpers) from it.
    seen: dict[str, str] = {}
    for contract in contracts.StoreContract.__bases__:
        for name in vars(contract):
            if name.startswith("__") or name == "_abc_impl":
                continue
            assert name not in seen, f"{name} is in {seen.get(name)} and {contract.__name__}"
            seen[name] = contract.__name__
    every = set().union(*(_tests_of(base) for base in contracts.StoreContract.__bases__))
    assert set(_tests_of(contracts.StoreContract)) == every


def test_a_users_adapter_that_breaks_a_contract_fails_it(pytester: pytest.Pytester) -> None:
    # The contracts can fail: an outbox that ignores its limit fails the test
    # of the limit, and only that one.
    pytester.makepyfile(
        """
        from altpay_core.adapters.memory import MemoryStore
        from altpay_core.testing import contracts


        class NoLimitStore(MemoryStore):
            def _pending(self, limit, skip):
                return super()._pending(10**9, skip)


        class TestNoLimit(contracts.OutboxContract):
            def make_store(self):
                return NoLimitStore()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(failed=1, passed=len(_tests_of(contracts.OutboxContract)) - 1)
    result.stdout.fnmatch_lines(["FAILED *::TestNoLimit::test_pending_respects_the_limit*"])


def _tests_of(cls: type) -> list[str]:
    return [name for name in dir(cls) if name.startswith("test_")]
