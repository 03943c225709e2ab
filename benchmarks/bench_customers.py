"""Reading a customer with 3 users from plain data, against pydantic v2, in one process.

``from_dict(Customer, data)`` builds the customer as a sync or a form post
gives it, through the library's constructors (every rule checked), against
``CustomerModel.model_validate(data)``: a pydantic v2 model of the same fields
with ``EmailStr`` for the emails and the checks pydantic can express on each
field (patterns, literals, strict types). Two scenarios:

a. New customers: every iteration reads a customer never seen before, whose
   three users have new addresses at the company's own, new domain (no cache
   helps with the first address). Target: at most 1.05x pydantic's time.
b. The same customers synced again: the same data every iteration (addresses
   seen before). Target: at most 0.25x pydantic's time.

Each figure is the best of several rounds, ours and pydantic's interleaved.
Prints the figures, the ratios (our time / pydantic's) and PASS or MISS
against each target; asserts nothing.

    python benchmarks/bench_customers.py            # about 15 seconds
    python benchmarks/bench_customers.py --quick    # fewer rounds
    python benchmarks/bench_customers.py --profile  # where from_dict spends its time
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import platform
import pstats
import timeit
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

import email_validator
import pydantic
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
)

from altpay_core import Customer, from_dict

TARGETS = {"new": 1.05, "seen": 0.25}

# -- the pydantic model of the same fields -------------------------------------------


def _id(prefix: str) -> Any:
    return Annotated[str, StringConstraints(pattern=rf"^{prefix}_[0-9A-Za-z]{{1,64}}$")]


Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, strict=True)
]
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, strict=True)
]


class AddressModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    line1: Text
    city: Text
    region: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")]
    postal_code: Annotated[
        str,
        StringConstraints(
            pattern=r"^([0-9]{5}(-?[0-9]{4})?|[A-Za-z][0-9][A-Za-z] ?[0-9][A-Za-z][0-9])$"
        ),
    ]
    country: Literal["US", "CA"]
    line2: str | None = None


class ExternalRefModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    system: Text
    id: Text


class UserModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: _id("usr")
    first_name: Name
    last_name: Name
    email: EmailStr
    notifications: StrictBool = True


class CustomerModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: _id("cus")
    partner_id: _id("par")
    company: Text
    address: AddressModel
    users: Annotated[tuple[UserModel, ...], Field(min_length=1)]
    legal_name: Text | None = None
    ein: Annotated[str, StringConstraints(pattern=r"^[0-9]{2}-?[0-9]{7}$")] | None = None
    billing_email: EmailStr | None = None
    tags: frozenset[_id("tag")] = frozenset()
    status: Literal["active", "archived"] = "active"
    external_ref: ExternalRefModel | None = None
    card_fee_exception: Literal["customer", "partner"] | None = None
    created_at: AwareDatetime
    version: Annotated[StrictInt, Field(ge=0)] = 0


# -- the data --------------------------------------------------------------------------


def customer_data(n: int | str) -> dict[str, Any]:
    """A customer as a sync gives it: 3 users at the company's own domain."""
    return {
        "id": f"cus_{n}",
        "partner_id": "par_northwind",
        "company": f"Company {n}",
        "address": {
            "line1": "1 Main St",
            "city": "Albany",
            "region": "NY",
            "postal_code": "12207",
            "country": "US",
            "line2": "Suite 4",
        },
        "users": [
            {
                "id": f"usr_{n}x{u}",
                "first_name": first,
                "last_name": last,
                "email": f"{first}.{last}@company{n}.example",
                "notifications": True,
            }
            for u, (first, last) in enumerate([("Ann", "Lee"), ("Bo", "Li"), ("Cy", "Ng")])
        ],
        "legal_name": f"Company {n} Inc.",
        "ein": "12-3456789",
        "billing_email": None,
        "tags": ["tag_vip"],
        "status": "active",
        "external_ref": {"system": "connectwise", "id": str(n)},
        "card_fee_exception": None,
        "created_at": "2026-01-31T09:30:00+00:00",
        "version": 3,
    }


def fresh(start: int, count: int) -> Callable[[], dict[str, Any]]:
    """``count`` customers never seen before, built ahead so that making them
    is not timed."""
    data: Iterator[dict[str, Any]] = iter([customer_data(start + i) for i in range(count)])
    return data.__next__


# -- timing ------------------------------------------------------------------------------


def compare(
    ours: Callable[[], object], baseline: Callable[[], object], number: int, rounds: int
) -> tuple[float, float]:
    """Seconds per call, best round of each side; the sides' rounds alternate."""
    best_ours = best_baseline = float("inf")
    for _ in range(rounds):
        best_ours = min(best_ours, timeit.timeit(ours, number=number) / number)
        best_baseline = min(best_baseline, timeit.timeit(baseline, number=number) / number)
    return best_ours, best_baseline


def report(label: str, scenario: str, ours: float, baseline: float) -> None:
    ratio = ours / baseline
    target = TARGETS[scenario]
    verdict = "PASS" if ratio <= target else "MISS"
    print(
        f"{label:<44} {ours * 1e6:7.1f} µs   pydantic {baseline * 1e6:7.1f} µs   "
        f"ratio {ratio:5.2f}x   target <= {target:.2f}x   {verdict}"
    )


def profile(number: int) -> None:
    data = customer_data("profiled")
    from_dict(Customer, data)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(number):
        from_dict(Customer, data)
    profiler.disable()
    print(f"\nfrom_dict(Customer, ...) x {number}, the same data (addresses seen before):\n")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--profile", action="store_true", help="profile from_dict as well")
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    number = 1_000 if args.quick else 4_000

    # Both sides read the same data, and agree on it.
    sample = customer_data(0)
    customer = from_dict(Customer, sample)
    model = CustomerModel.model_validate(sample)
    assert [str(u.email) for u in customer.users] == [u.email for u in model.users]
    assert customer.created_at == model.created_at == dt.datetime(2026, 1, 31, 9, 30, tzinfo=dt.UTC)

    print(
        f"Python {platform.python_version()}, pydantic {pydantic.VERSION}, "
        f"email-validator {email_validator.__version__}; "
        f"best of {rounds} rounds of {number:,} customers with 3 users"
    )
    # Far apart, so that neither side ever reads a customer the other has read.
    ours_new, pydantic_new = fresh(0, number * rounds), fresh(1_000_000, number * rounds)
    report(
        "a. new customers (new addresses, new domain)",
        "new",
        *compare(
            lambda: from_dict(Customer, ours_new()),
            lambda: CustomerModel.model_validate(pydantic_new()),
            number,
            rounds,
        ),
    )
    seen = customer_data("seen")
    report(
        "b. the same customers synced again",
        "seen",
        *compare(
            lambda: from_dict(Customer, seen),
            lambda: CustomerModel.model_validate(seen),
            number,
            rounds,
        ),
    )
    if args.profile:
        profile(number * 5)


if __name__ == "__main__":
    main()
