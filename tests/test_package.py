"""The package itself: version, public names, type information."""

from __future__ import annotations

import ast
import datetime
import doctest
import importlib
import importlib.metadata
import importlib.resources
import importlib.util
import inspect
import pkgutil
import re
import tomllib
import typing
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


def test_a_source_tree_that_is_not_installed_has_a_version_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    # Read first, so that what monkeypatch puts back when the test ends is the
    # installed version: deleting an attribute that was never read would
    # read it while the metadata is hidden and put back "0+unknown".
    installed = altpay_core.__version__
    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    monkeypatch.delattr(altpay_core, "__version__")
    assert altpay_core.__version__ == "0+unknown"
    assert hasattr(altpay_core, "__version__")
    monkeypatch.undo()
    assert altpay_core.__version__ == installed
    monkeypatch.delattr(altpay_core, "__version__")
    assert altpay_core.__version__ == importlib.metadata.version("altpay-core")


def test_the_license_ships_with_the_distribution() -> None:
    metadata = importlib.metadata.metadata("altpay-core")
    assert metadata["License-Expression"] == "MIT"
    assert "LICENSE" in (metadata.get_all("License-File") or [])
    if (ROOT / "pyproject.toml").is_file():  # pragma: no branch - a clone
        assert "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")


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


def _public_members() -> list[Any]:
    # Every function, method and property that a module's __all__ makes
    # public, in the package and in its submodules; a contract's tests are
    # named for what they check and are run, not called.
    modules = ["altpay_core"] + [
        found.name for found in pkgutil.walk_packages(altpay_core.__path__, "altpay_core.")
    ]
    members = []
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                members.append(pytest.param(obj, id=f"{module_name}.{name}"))
            if not inspect.isclass(obj) or obj.__module__ != module_name:
                continue
            for attribute, value in vars(obj).items():
                if attribute.startswith(("_", "test_")):
                    continue
                if isinstance(value, (property, classmethod, staticmethod)) or (
                    inspect.isfunction(value)
                ):
                    member = getattr(obj, attribute) if inspect.isfunction(value) else value
                    members.append(pytest.param(member, id=f"{module_name}.{name}.{attribute}"))
    return members


@pytest.mark.parametrize("member", _public_members())
def test_every_public_method_and_property_is_documented(member: Any) -> None:
    # What help() shows: a method that overrides a documented one shows the
    # documentation of the method it overrides.
    assert inspect.getdoc(member)


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


def test_the_examples_in_the_readme_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = ROOT / "README.md"
    if not path.is_file():  # pragma: no cover - tests run from an sdist or elsewhere
        pytest.skip("README.md is not next to the tests")
    monkeypatch.chdir(tmp_path)  # its example stores a file where it runs
    result = doctest.testfile(
        str(path),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.failed == 0
    assert result.attempted > 0


def _modules_with_examples() -> list[str]:
    """Every module of the package whose source has an example (``>>>``)."""
    names = ["altpay_core"]
    names += [info.name for info in pkgutil.walk_packages(altpay_core.__path__, "altpay_core.")]
    found = []
    for name in names:
        spec = importlib.util.find_spec(name)
        assert spec is not None
        assert spec.origin is not None
        if ">>>" in Path(spec.origin).read_text(encoding="utf-8"):
            found.append(name)
    return found


_WITH_EXAMPLES = _modules_with_examples()


def test_the_modules_with_examples_are_found() -> None:
    assert {"altpay_core.money", "altpay_core.adapters.sqlite"} <= set(_WITH_EXAMPLES)


@pytest.mark.parametrize("module", _WITH_EXAMPLES)
def test_the_examples_in_the_docstrings_run(module: str) -> None:
    found = importlib.import_module(module)
    result = doctest.testmod(found, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0


# -- every error code is documented --------------------------------------------------

SRC = ROOT / "src" / "altpay_core"
_ADDRESS = {
    "line1": "1 Main St",
    "city": "Albany",
    "region": "NY",
    "postal_code": "12207",
    "country": "US",
}

# Where a call names a field error's code: FieldErrors.add(path, code, message),
# ValidationError.single(path, code, message), FieldError(path, code, message),
# and code= (the parsers that take the code to raise, such as whole_number).
_CODE_CALLS = frozenset({"add", "single", "FieldError"})


def _texts(node: ast.AST, names: dict[str, set[str]]) -> set[str]:
    """The strings an argument may be: a literal, either branch of ``a if c
    else b``, or a local name given a literal in the function."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _texts(node.body, names) | _texts(node.orelse, names)
    if isinstance(node, ast.Name):
        return names.get(node.id, set())
    return set()


def _literal_names(function: ast.AST) -> dict[str, set[str]]:
    """The local names a function gives a literal string (``code = "x"``,
    ``a, code = b, "x"``)."""
    names: dict[str, set[str]] = {}
    for node in ast.walk(function):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            pairs = (
                zip(target.elts, node.value.elts, strict=False)
                if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                else [(target, node.value)]
            )
            for name, value in pairs:
                if isinstance(name, ast.Name):
                    names.setdefault(name.id, set()).update(_texts(value, {}))
    return names


def _codes_in_source() -> dict[str, str]:
    """Every code the library's source gives a field error, with where."""
    found: dict[str, str] = {}
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            names = _literal_names(function)
            for node in ast.walk(function):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                given = [k.value for k in node.keywords if k.arg == "code"]
                if called in _CODE_CALLS and len(node.args) >= 2:
                    given.append(node.args[1])
                for code in (c for arg in given for c in _texts(arg, names)):
                    found.setdefault(code, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_error_code_in_the_source_is_documented() -> None:
    # docs/errors.md lists the codes every value shares; the aggregates'
    # pages list their own. A code is documented when a page quotes it
    # (`code`, or 'code' in an example's output).
    docs = ROOT / "docs"
    if not SRC.is_dir() or not docs.is_dir():  # pragma: no cover - run from an sdist
        pytest.skip("the source and docs/ are not next to the tests")
    codes = _codes_in_source()
    # The scan finds what it should: codes raised in each way above.
    assert {"blank", "invalid_quantity", "ambiguous", "invalid_indent", "missing"} <= set(codes)
    assert "invalid_position" in codes  # given through a local name
    pages = "\n".join(page.read_text(encoding="utf-8") for page in docs.glob("*.md"))
    quoted = set(re.findall(r"[`'\"]([a-z][a-z0-9_]*)[`'\"]", pages))
    missing = {code: where for code, where in codes.items() if code not in quoted}
    assert not missing, f"codes that no page of docs/ names: {missing}"


def _errors_page() -> str:
    page = ROOT / "docs" / "errors.md"
    if not SRC.is_dir() or not page.is_file():  # pragma: no cover - run from an sdist
        pytest.skip("the source and docs/ are not next to the tests")
    return page.read_text(encoding="utf-8")


def _source_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(SRC.rglob("*.py")))


def test_every_named_rule_is_in_the_errors_pages_list() -> None:
    # C1..C10 and I1..I10 have their pages' tables; a named rule
    # (team-admin, event-topic) was raised with no page naming it.
    page = _errors_page()
    rules = set(re.findall(r'rule="([^"]+)"', _source_text()))
    assert {"team-admin", "C4", "event-topic"} <= rules
    named = {rule for rule in rules if not re.fullmatch(r"[CI][0-9]+", rule)}
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    missing = {
        rule
        for rule in named
        if not any(line.startswith(f"| `{rule}`") or f", `{rule}` |" in line for line in rows)
    }
    assert not missing, f"rules that docs/errors.md does not list: {sorted(missing)}"


def test_the_rule_codes_from_dict_reports_are_ones_it_can_report() -> None:
    # The row listed C1, which from_dict never reports: the draft's step
    # order is a rule of its commands, not of its data.
    from altpay_core import Customer, CustomerDraft, Invoice, Partner, from_dict, to_dict

    (row,) = [line for line in _errors_page().splitlines() if "read by `from_dict`" in line]
    listed = re.findall(r"`([A-Za-z0-9-]+)`", row.split(" | ")[0])
    partner = Partner.create(name="N", country="US")
    partner = partner.add_team_member(name="Ada", email="ada@n.example", role="admin")
    partner = partner.add_team_member(name="Mo", email="mo@n.example", role="member")
    draft = CustomerDraft.start(partner).enter_details(company="A", address=_ADDRESS)
    draft = draft.add_user(first_name="Ann", last_name="Lee", email="ann@a.example")
    draft = draft.add_user(first_name="Bo", last_name="Li", email="bo@a.example")
    customer = draft.create()
    invoice = Invoice.issue(
        partner,
        customer,
        by=partner.team[0],
        number="1",
        lines=[{"description": "Support", "quantity": 1, "unit_amount": "10.00"}],
        due_date=datetime.date(2030, 1, 31),
        today=datetime.date(2030, 1, 1),
    )
    users = to_dict(customer)["users"]
    team = to_dict(partner)["team"]
    twin_user = [users[0], {**users[1], "email": "ANN@a.example"}]
    twin_member = [team[0], {**team[1], "email": "ADA@n.example"}]
    broken: dict[str, tuple[type[Any], dict[str, Any]]] = {
        "C4": (Customer, {**to_dict(customer), "users": twin_user}),
        "C5": (Customer, {**to_dict(customer), "users": []}),
        "I3": (Invoice, {**to_dict(invoice), "due_date": "2029-12-31"}),
        "team-unique-email": (Partner, {**to_dict(partner), "team": twin_member}),
    }
    assert "C1" not in listed
    assert set(listed) <= set(broken), listed
    for rule in listed:
        cls, data = broken[rule]
        with pytest.raises(altpay_core.ValidationError) as caught:
            from_dict(cls, data)
        assert rule in caught.value.codes, (rule, caught.value.codes)
    # A draft's step order (C1) is not checked in its data.
    data = {**to_dict(draft), "details": None}
    assert from_dict(CustomerDraft, data).users == draft.users


def test_the_access_request_user_rule_is_described_where_it_is_raised() -> None:
    # The rule is raised both ways (an email already a user of an active
    # customer; a customer approved that the person is no user of), and the
    # page described only the first, saying "one of the partner's customers".
    where: dict[str, str] = {}
    for source in sorted(SRC.rglob("*.py")):
        for function in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if not isinstance(function, ast.FunctionDef):
                continue
            for call in ast.walk(function):
                given = {
                    k.arg: k.value.value
                    for k in getattr(call, "keywords", [])
                    if isinstance(k.value, ast.Constant)
                }
                if given.get("rule") == "access-request-user":
                    where[given["path"]] = function.name
    assert where == {"email": "open_access_request", "users": "approve_new_customer"}
    (row,) = [
        line for line in _errors_page().splitlines() if line.startswith("| `access-request-user`")
    ]
    for path, function in where.items():
        assert f"{function}` refuses (at `{path}`)" in row, (function, row)
    assert "active customers" in row
    onboarding = (ROOT / "docs" / "onboarding.md").read_text(encoding="utf-8")
    approval = onboarding[onboarding.index("then `approve_new_customer(") :]
    assert "rule `access-request-user`, path `users`" in approval.split("\n- ")[0]


def test_the_argument_codes_the_onboarding_page_gives_are_the_ones_raised() -> None:
    # It said partner=None is wrong_type; with by= it is missing.
    from altpay_core import CustomerDraft, Partner, ValidationError

    page = (ROOT / "docs" / "onboarding.md").read_text(encoding="utf-8")
    (row,) = [line for line in page.splitlines() if line.startswith("| `ValidationError`")]
    claims = [
        (name, value, code)
        for given, code in re.findall(r"(`\w+=\w+`[^:]*): code `(\w+)`", row)
        for name, value in re.findall(r"`(\w+)=(\w+)`", given)
    ]
    assert {(name, value) for name, value, _ in claims} >= {("partner", "None"), ("by", "5")}
    partner = Partner.create(name="N", country="US")
    partner = partner.add_team_member(name="Ada", email="ada@n.example", role="admin")
    draft = CustomerDraft.start(partner).enter_details(company="A", address=_ADDRESS)
    customer = draft.add_user(first_name="Ann", last_name="Lee", email="ann@a.example").create()
    for name, value, code in claims:
        arguments: dict[str, Any] = {"partner": partner, "by": partner.team[0]}
        arguments[name] = ast.literal_eval(value)
        with pytest.raises(ValidationError) as caught:
            customer.archive(**arguments)
        assert (caught.value.paths, caught.value.codes) == ([name], [code]), (name, value)


def test_the_empty_code_names_every_list_that_gives_it() -> None:
    # It named only allocate's and split's arguments.
    (row,) = [line for line in _errors_page().splitlines() if line.startswith("| `empty` |")]
    paths = set(re.findall(r'\(\s*"([a-z_]+)",\s*"empty"', _source_text()))
    assert {"lines", "invoice_ids", "errors"} <= paths
    missing = {path for path in paths if f"`{path}`" not in row}
    assert not missing, f"lists the `empty` row of docs/errors.md does not name: {missing}"


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


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (altpay_core.AltpayError, "message"),
        (altpay_core.NotFound, "key"),
        (altpay_core.ConcurrencyConflict, "key"),
        (altpay_core.UniqueKeyTaken, "key"),
    ],
)
def test_error_attributes_are_declared_in_the_class(cls: type[Any], name: str) -> None:
    # Declared, not only set in __init__: a type checker reads the type from
    # the declaration rather than guessing it from the assignment.
    assert typing.get_type_hints(cls)[name] is str


def test_no_module_leaves_a_public_name_bound_by_an_except_clause() -> None:
    # ``except ImportError as error:`` at module level makes ``error`` look
    # like one of the module's names to a type checker.
    for path in Path(altpay_core.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            for handler in getattr(node, "handlers", ()):
                assert handler.name is None or handler.name.startswith("_"), (path, handler.name)
