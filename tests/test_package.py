"""The package itself: version, public names, type information."""

from __future__ import annotations

import doctest
import importlib
import importlib.metadata
import importlib.resources
import inspect
import tomllib
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import altpay_core
from altpay_core.testing._types import registered_types

PUBLIC = altpay_core.__all__
ROOT = Path(__file__).resolve().parent.parent


def test_version_comes_from_the_package_metadata() -> None:
    assert altpay_core.__version__ == importlib.metadata.version("altpay-core")


def test_all_is_sorted_and_unique() -> None:
    assert sorted(PUBLIC) == PUBLIC
    assert len(set(PUBLIC)) == len(PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_is_importable_and_documented(name: str) -> None:
    module = importlib.import_module("altpay_core")
    obj = getattr(module, name)
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        # A constant or a type alias: its docstring is in the source, and
        # the docs name it.
        assert any(name in page.read_text() for page in (ROOT / "docs").glob("*.md")), name
        return
    assert inspect.getdoc(obj), f"{name} has no docstring"
    # Its own docstring, not one inherited from a base class.
    assert obj.__doc__, f"{name} has no docstring of its own"


def test_nothing_public_is_left_out_of_all() -> None:
    exported = {
        name
        for name, obj in vars(altpay_core).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", "").startswith("altpay_core")
    }
    assert exported <= set(PUBLIC)


@pytest.mark.parametrize("module", ["errors", "money", "values", "serialization"])
def test_the_foundation_modules_have_sorted_all(module: str) -> None:
    found = importlib.import_module(f"altpay_core.{module}")
    assert found.__all__ == sorted(found.__all__)
    for name in found.__all__:
        assert getattr(found, name) is not None


def test_py_typed_ships() -> None:
    assert importlib.resources.files("altpay_core").joinpath("py.typed").is_file()


def test_the_wheel_takes_the_whole_package_directory() -> None:
    # py.typed is in the package directory, and the wheel takes that whole
    # directory (no include or exclude lists that could leave it out).
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.is_file():  # pragma: no cover - tests run from an sdist or elsewhere
        pytest.skip("pyproject.toml is not next to the tests")
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    wheel = config["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["packages"] == ["src/altpay_core"]
    assert "exclude" not in wheel
    assert "only-include" not in wheel


PAGES = [
    "getting-started.md",
    "money.md",
    "errors.md",
    "serialization.md",
    "testing-kit.md",
    "values.md",
    "partners.md",
    "onboarding.md",
    "invoices-and-payments.md",
    "persistence.md",
]


@pytest.mark.parametrize("page", PAGES)
def test_the_examples_in_the_docs_run(page: str) -> None:
    path = ROOT / "docs" / page
    if not path.is_file():  # pragma: no cover - tests run from an sdist or elsewhere
        pytest.skip(f"docs/{page} is not next to the tests")
    result = doctest.testfile(
        str(path),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.failed == 0
    assert result.attempted > 0


@pytest.mark.parametrize("module", ["errors", "money", "values", "serialization"])
def test_the_examples_in_the_docstrings_run(module: str) -> None:
    found = importlib.import_module(f"altpay_core.{module}")
    result = doctest.testmod(found, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0


# -- pinned: values and aggregates are immutable ----------------------------------------


_FROZEN = [
    cls for cls in registered_types() if attrs.has(cls) and not getattr(cls, "__parameters__", ())
]


@pytest.mark.parametrize("cls", _FROZEN, ids=lambda cls: cls.__name__)
@settings(max_examples=max(5, settings.default.max_examples // 5))
@given(data=st.data())
def test_every_value_and_aggregate_is_immutable(cls: type[Any], data: st.DataObject) -> None:
    """attrs.frozen: a command returns a new instance, and nothing changes one
    in place, so an instance checked once (C4, C5, I5, ...) stays valid."""
    value = data.draw(st.from_type(cls))
    name = data.draw(st.sampled_from([f.name for f in attrs.fields(type(value))]), label="field")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(value, name, getattr(value, name))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        delattr(value, name)
