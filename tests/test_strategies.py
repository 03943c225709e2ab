"""The testing kit: strategies for every public type, registered with Hypothesis."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from altpay_core import Address, EmailAddress, Money
from altpay_core.testing import _hypothesis_hook
from altpay_core.testing import strategies as aps
from altpay_core.testing._types import registered_types

TYPES = registered_types()


def _name(cls: type[Any]) -> str:
    return cls.__name__


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter (this one's), as a user's process would."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# -- st.from_type ------------------------------------------------------------------


def test_no_health_check_is_suppressed() -> None:
    assert settings.default.suppress_health_check == ()
    assert HealthCheck.too_slow not in settings.default.suppress_health_check


@pytest.mark.parametrize("cls", TYPES, ids=_name)
def test_from_type_works_for_every_public_type(cls: type[Any]) -> None:
    # The profile's settings (health checks on), with fewer examples: the
    # health checks judge the first draws, and there are many types.
    @settings(max_examples=max(10, settings.default.max_examples // 10))
    @given(st.from_type(cls))
    def check(value: object) -> None:
        assert isinstance(value, cls)

    check()


def test_the_hypothesis_entry_point_is_declared() -> None:
    [entry] = [
        e
        for e in importlib.metadata.entry_points(group="hypothesis")
        if e.value.startswith("altpay_core.")
    ]
    assert entry.value == "altpay_core.testing._hypothesis_hook:_hypothesis_setup_hook"
    assert entry.dist is not None
    assert entry.dist.name == "altpay-core"
    assert entry.load() is _hypothesis_hook._hypothesis_setup_hook


def test_from_type_works_in_a_new_process_through_the_entry_point() -> None:
    # Nothing imports altpay_core.testing: Hypothesis finds the hook itself,
    # and the strategies are imported only once one is asked for.
    result = run_python(
        """
        import sys
        from hypothesis import given, settings, strategies as st
        from altpay_core import Address, Customer, Money
        assert "altpay_core.testing.strategies" not in sys.modules
        for cls in (Money, Address, Customer):
            @settings(max_examples=5, database=None)
            @given(st.from_type(cls))
            def check(value):
                assert type(value) is cls, type(value)
            check()
        assert "altpay_core.testing.strategies" in sys.modules
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_for_type_declines_unknown_types() -> None:
    class Unknown:
        pass

    assert aps.for_type(Unknown) is NotImplemented
    assert _hypothesis_hook._resolve(Unknown) is NotImplemented


def test_register_says_how_to_generate_a_type() -> None:
    class Widget:
        pass

    aps.register(Widget, lambda: st.just(Widget()))
    try:
        assert isinstance(find(aps.for_type(Widget), lambda w: True), Widget)
    finally:
        aps._STRATEGIES.pop(Widget)


# -- the pytest plugin ----------------------------------------------------------------


def test_the_pytest_plugin_entry_point_is_declared(pytestconfig: pytest.Config) -> None:
    [entry] = [
        e
        for e in importlib.metadata.entry_points(group="pytest11")
        if e.value.startswith("altpay_core.")
    ]
    assert (entry.name, entry.value) == ("altpay_core", "altpay_core.testing.plugin")
    assert pytestconfig.pluginmanager.has_plugin("altpay_core")


def test_the_pytest_plugin_imports_nothing_heavy() -> None:
    result = run_python(
        """
        import sys
        import altpay_core.testing.plugin
        print(sorted(m for m in ("hypothesis", "altpay_core.adapters") if m in sys.modules))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- without Hypothesis ------------------------------------------------------------------

_BLOCK_HYPOTHESIS = """
import importlib.abc
import sys

class NoHypothesis(importlib.abc.MetaPathFinder):
    # As if the [testing] extra were not installed.
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "hypothesis":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoHypothesis())
"""


def test_without_hypothesis_the_library_still_imports() -> None:
    result = run_python(
        _BLOCK_HYPOTHESIS
        + """
import altpay_core
import altpay_core.testing
print(altpay_core.Money("1", "USD"))
"""
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "USD 1.00"


def test_without_hypothesis_the_strategies_name_the_extra() -> None:
    result = run_python(
        _BLOCK_HYPOTHESIS
        + """
try:
    import altpay_core.testing.strategies
except ImportError as error:
    print(error)
    print(type(error.__cause__).__name__)
"""
    )
    assert result.returncode == 0, result.stderr
    message, cause = result.stdout.strip().splitlines()
    assert "pip install 'altpay-core[testing]'" in message
    assert cause == "ModuleNotFoundError"


def test_without_hypothesis_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes an import fail, as a missing package does.
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    monkeypatch.delitem(sys.modules, "altpay_core.testing.strategies")
    with pytest.raises(ImportError, match=r"pip install 'altpay-core\[testing\]'") as info:
        importlib.import_module("altpay_core.testing.strategies")
    assert "\n" not in str(info.value)


# -- reaching the edges ------------------------------------------------------------------


class _Reached(Exception):
    """Ends the search at the first value wanted."""


def reaches(strategy: st.SearchStrategy[Any], wanted: Any) -> bool:
    """Whether ``strategy`` draws a value ``wanted`` accepts, in up to 1,000
    examples: enough that an edge the strategy reaches is found every time
    (Hypothesis draws many simple, repeated values among the first ones).
    The search stops at the first value found, without shrinking it (as
    ``find`` would)."""

    @settings(max_examples=1_000, phases=[Phase.generate], database=None)
    @given(strategy)
    def look(value: object) -> None:
        if wanted(value):
            raise _Reached

    try:
        look()
    except _Reached:
        return True
    return False


@pytest.mark.parametrize(
    ("strategy", "wanted"),
    [
        (aps.money(), lambda m: m.currency.minor_units == 0),
        (aps.money(), lambda m: m.currency.minor_units == 3),
        (aps.money(), lambda m: m.is_zero),
        (aps.money(), lambda m: m.is_negative),
        (aps.money(), lambda m: abs(m.minor_units) >= 10**18),
        (aps.money("JPY", min_units=0, max_units=0), lambda m: m == Money.zero("JPY")),
        (aps.addresses(), lambda a: a.country == "CA"),
        (aps.addresses("US"), lambda a: len(a.postal_code) == 10),
        (aps.addresses("CA"), lambda a: a.region == "QC"),
        (aps.addresses(), lambda a: not a.line1.isascii()),
        (aps.email_addresses(), lambda e: not str(e).isascii()),
        (aps.email_addresses(), lambda e: not str(e).partition("@")[0].isascii()),
        (aps.eins(), lambda e: e.digits.startswith("0")),
        (aps.names(), lambda n: " " in n),
        (
            aps.currencies(),
            lambda c: c.code not in ("USD", "CAD", "JPY", "BHD", "KWD", "CLF", "EUR"),
        ),
    ],
)
def test_strategies_reach_the_edges(strategy: st.SearchStrategy[Any], wanted: Any) -> None:
    assert reaches(strategy, wanted)


@given(aps.addresses())
def test_generated_addresses_are_built_by_the_real_constructor(address: Address) -> None:
    assert (
        Address.from_mapping(
            {
                "line1": address.line1,
                "line2": address.line2,
                "city": address.city,
                "region": address.region,
                "postal_code": address.postal_code,
                "country": address.country,
            }
        )
        == address
    )


@given(aps.email_addresses())
def test_generated_emails_are_normalised(email: EmailAddress) -> None:
    assert EmailAddress(str(email)) == email
    assert str(EmailAddress(str(email))) == str(email)


@given(aps.money(currency="BHD", min_units=-5, max_units=5))
def test_money_bounds(m: Money) -> None:
    assert m.currency.code == "BHD"
    assert -5 <= m.minor_units <= 5


def test_addresses_of_one_country() -> None:
    assert aps.addresses("ca") is aps.addresses("CA")
    with pytest.raises(InvalidArgument, match="'MX'"):
        aps.addresses("MX")
