"""Customers read back from a SQL store: through the quick path when the row
is as the library wrote it; refused, as ``from_dict`` refuses it, when it was
changed or damaged outside the library, never read into a broken customer."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from altpay_core import (
    EIN,
    Address,
    Customer,
    CustomerId,
    CustomerUser,
    Partner,
    ValidationError,
    from_dict,
    serialization,
    to_dict,
)
from altpay_core.adapters import _sql
from altpay_core.adapters.sqlite import SqliteStore

ALBANY = Address("1 Main St", "Albany", "NY", "12207", "US")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "altpay.db"


@pytest.fixture
def store(path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(path) as store:
        yield store


@pytest.fixture
def partner() -> Partner:
    return Partner.create(name="Northwind IT", country="US")


@pytest.fixture
def customer(store: SqliteStore, partner: Partner) -> Customer:
    users = tuple(
        CustomerUser.new(first_name="Ann", last_name=name, email=f"{name}@globex.example")
        for name in ("lee", "li")
    )
    new = Customer(
        id=CustomerId.new(),
        partner_id=partner.id,
        company="Globex",
        address=ALBANY,
        users=users,
        ein=EIN("12-3456789"),
    )
    with store.unit_of_work() as uow:
        uow.partners.save(partner)
        saved = uow.customers.save(new)
        uow.commit()
    return saved


def rewrite(path: Path, change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """Change the stored customer's data behind the library's back."""
    with sqlite3.connect(path) as outsider:
        (text,) = outsider.execute("SELECT data FROM customers").fetchone()
        data: dict[str, Any] = json.loads(text)
        change(data)
        outsider.execute("UPDATE customers SET data = ?", (json.dumps(data),))
    return data


def read(store: SqliteStore, customer: Customer) -> Customer:
    with store.unit_of_work() as uow:
        return uow.customers.get(customer.partner_id, customer.id)


def test_a_stored_customer_is_read_without_the_converter(
    store: SqliteStore, customer: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(cls: object, data: object) -> None:
        raise AssertionError("from_dict was asked")

    monkeypatch.setattr(serialization, "from_dict", refuse)
    back = read(store, customer)
    assert back == customer
    assert back.users == customer.users
    assert back.address == customer.address
    assert back.events == ()
    with store.unit_of_work() as uow:
        assert uow.customers.with_user(customer.partner_id, "LEE@globex.example") == [customer]


@pytest.mark.parametrize(
    ("change", "paths"),
    [
        (lambda d: d["users"][1].update(email="li at globex"), ["users[1].email"]),
        (lambda d: d["users"][1].update(email=d["users"][0]["email"]), ["users[1].email"]),
        (lambda d: d["users"].clear(), ["users"]),
        (lambda d: d["users"][0].update(first_name=""), ["users[0].first_name"]),
        (lambda d: d["users"][0].update(id="lee"), ["users[0].id"]),
        (lambda d: d["address"].update(region="ON"), ["address.region"]),
        (lambda d: d.update(ein="12-345678"), ["ein"]),
        (lambda d: d.update(status="gone"), ["status"]),
        (lambda d: d.update(version="1"), ["version"]),
        (lambda d: d.update(created_at="2026-01-31 09:30"), ["created_at"]),
        (lambda d: d.pop("company"), ["company"]),
        (lambda d: d.update(nickname="G"), ["nickname"]),
    ],
)
def test_a_damaged_row_is_refused_with_the_paths_from_dict_gives(
    store: SqliteStore, path: Path, customer: Customer, change: Any, paths: list[str]
) -> None:
    data = rewrite(path, change)
    with pytest.raises(ValidationError) as caught:
        read(store, customer)
    assert caught.value.paths == paths
    with pytest.raises(ValidationError) as expected:
        from_dict(Customer, data)
    assert caught.value.errors == expected.value.errors


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(created_at="2026-01-31T04:30:00-05:00"),
        lambda d: d.update(company=" Globex "),
        lambda d: d.update(ein="123456789"),
        lambda d: d["address"].update(region="ny"),
        lambda d: d["users"][0].pop("notifications"),
    ],
)
def test_a_row_in_another_valid_form_is_read_as_from_dict_reads_it(
    store: SqliteStore, path: Path, customer: Customer, change: Any
) -> None:
    data = rewrite(path, change)
    back = read(store, customer)
    assert back == from_dict(Customer, data)
    assert to_dict(back) == to_dict(from_dict(Customer, data))


def test_load_reads_json_text_and_parsed_json(customer: Customer) -> None:
    text = _sql.dump(customer)
    assert _sql.load(Customer, text) == customer
    assert _sql.load(Customer, text.encode()) == customer
    assert _sql.load(Customer, json.loads(text)) == customer
