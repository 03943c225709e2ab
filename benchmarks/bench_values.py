"""Building and round-tripping the small values, against baselines in the same process.

Each figure is the best of several timed rounds (each round runs the work many
times), ours and the baseline's rounds interleaved; the ratio is our time
divided by the baseline's (below 1: faster). Asserts nothing.

1. ``EmailAddress``: addresses seen before, new addresses at a domain seen
   before (a company's users), and new addresses at new domains, each against
   a bare ``email_validator.validate_email(text, check_deliverability=False)``
   of the same texts.
2. ``Money``, ``Address`` and ``EIN``, each against what it is built on or a
   pydantic v2 model of the same fields with the same checks that pydantic
   can express (patterns, literals, decimal places).
3. A record of an ``Address``, a ``Money`` and an ``EmailAddress`` read with
   ``from_dict`` and written back with ``to_dict``, against a pydantic v2
   model of the same fields (``EmailStr``, ``Decimal``) doing
   ``model_validate`` and ``model_dump(mode="json")``.

    python benchmarks/bench_values.py           # about 15 seconds
    python benchmarks/bench_values.py --quick   # fewer rounds
"""

from __future__ import annotations

import argparse
import itertools
import platform
import timeit
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Annotated, Any, Literal

import attrs
import email_validator
import pydantic
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints
from stdnum.us import ein as stdnum_ein

from altpay_core import EIN, Address, EmailAddress, Money, from_dict, to_dict

# -- the pydantic side ------------------------------------------------------------

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, strict=True)]
Region = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$", strict=True)]
PostalCode = Annotated[
    str,
    StringConstraints(
        pattern=r"^([0-9]{5}(-?[0-9]{4})?|[A-Za-z][0-9][A-Za-z] ?[0-9][A-Za-z][0-9])$"
    ),
]


class AddressModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    line1: Text
    city: Text
    region: Region
    postal_code: PostalCode
    country: Literal["US", "CA"]
    line2: str | None = None


class MoneyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    amount: Annotated[Decimal, Field(decimal_places=2, allow_inf_nan=False)]
    currency: Literal["USD", "CAD"]


class RecordModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: AddressModel
    amount: MoneyModel
    email: EmailStr


# -- ours ---------------------------------------------------------------------------


@attrs.frozen
class Record:
    address: Address
    amount: Money
    email: EmailAddress


ADDRESS = {
    "line1": "1 Main St",
    "city": "Albany",
    "region": "NY",
    "postal_code": "12207",
    "country": "US",
    "line2": None,
}
AMOUNT = {"amount": "12.50", "currency": "USD"}


# -- timing ---------------------------------------------------------------------------


def compare(
    ours: Callable[[], object], baseline: Callable[[], object], number: int, rounds: int
) -> tuple[float, float]:
    """Seconds per call, best round of each side; the sides' rounds alternate."""
    best_ours = best_baseline = float("inf")
    for _ in range(rounds):
        best_ours = min(best_ours, timeit.timeit(ours, number=number) / number)
        best_baseline = min(best_baseline, timeit.timeit(baseline, number=number) / number)
    return best_ours, best_baseline


def report(label: str, ours: float, baseline: float, against: str) -> None:
    print(
        f"{label:<46} {ours * 1e6:8.2f} µs   {against:<30} {baseline * 1e6:8.2f} µs"
        f"   ratio {ours / baseline:5.2f}x"
    )


def texts(prefix: str, domains: Callable[[int], str]) -> Iterator[str]:
    return (f"{prefix}.user{n}@{domains(n)}" for n in itertools.count())


def fresh(make: Iterator[str]) -> Callable[[], str]:
    return make.__next__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    n = 2_000 if args.quick else 10_000

    print(
        f"Python {platform.python_version()}, pydantic {pydantic.VERSION}, "
        f"email-validator {email_validator.__version__}; best of {rounds} rounds"
    )
    print()

    # 1. Email addresses. Each side gets its own texts, never seen before
    # where the figure says "new".
    def bare(text: str) -> object:
        return email_validator.validate_email(text, check_deliverability=False)

    seen = "Ann.Lee@Globex.example"
    EmailAddress(seen)
    report(
        "EmailAddress, seen before",
        *compare(lambda: EmailAddress(seen), lambda: bare(seen), n, rounds),
        "validate_email",
    )

    ours_known = fresh(texts("ours", lambda _: "globex.example"))
    base_known = fresh(texts("base", lambda _: "globex.example"))
    report(
        "EmailAddress, new, at a domain seen before",
        *compare(lambda: EmailAddress(ours_known()), lambda: bare(base_known()), n, rounds),
        "validate_email",
    )
    ours_new = fresh(texts("ours", lambda i: f"company{i}.example"))
    base_new = fresh(texts("base", lambda i: f"company{i}.example"))
    report(
        "EmailAddress, new, at a new domain",
        *compare(lambda: EmailAddress(ours_new()), lambda: bare(base_new()), n // 4, rounds),
        "validate_email",
    )
    print()

    # 2. Building values.
    report(
        "Money('12.50', 'USD')",
        *compare(lambda: Money("12.50", "USD"), lambda: MoneyModel(**AMOUNT), n, rounds),
        "pydantic MoneyModel",
    )
    report(
        "Money('12.50', 'USD')",
        *compare(
            lambda: Money("12.50", "USD"),
            lambda: Decimal("12.50").quantize(Decimal("0.01")),
            n,
            rounds,
        ),
        "Decimal(...).quantize(...)",
    )
    report(
        "Address(...), seen before",
        *compare(lambda: Address.from_mapping(ADDRESS), lambda: AddressModel(**ADDRESS), n, rounds),
        "pydantic AddressModel",
    )
    new_zip = (f"{z:05d}" for z in itertools.cycle(range(100_000)))
    report(
        "Address(...), new",
        *compare(
            lambda: Address("1 Main St", "Albany", "NY", next(new_zip), "US"),
            lambda: AddressModel(**{**ADDRESS, "postal_code": next(new_zip)}),
            n,
            rounds,
        ),
        "pydantic AddressModel",
    )
    report(
        "EIN('12-3456789')",
        *compare(lambda: EIN("12-3456789"), lambda: stdnum_ein.validate("12-3456789"), n, rounds),
        "stdnum.us.ein.validate",
    )
    print()

    # 3. A record read and written back.
    def ours_round_trip(data: dict[str, Any]) -> object:
        return to_dict(from_dict(Record, data))

    def pydantic_round_trip(data: dict[str, Any]) -> object:
        return RecordModel.model_validate(data).model_dump(mode="json")

    record = {"address": ADDRESS, "amount": AMOUNT, "email": seen}
    assert ours_round_trip(record) == {**record, "email": "Ann.Lee@globex.example"}
    report(
        "Record from_dict + to_dict, email seen before",
        *compare(lambda: ours_round_trip(record), lambda: pydantic_round_trip(record), n, rounds),
        "pydantic validate + dump",
    )
    ours_emails = fresh(texts("ours", lambda _: "globex.example"))
    base_emails = fresh(texts("base", lambda _: "globex.example"))
    report(
        "Record from_dict + to_dict, new email",
        *compare(
            lambda: ours_round_trip({**record, "email": ours_emails()}),
            lambda: pydantic_round_trip({**record, "email": base_emails()}),
            n // 4,
            rounds,
        ),
        "pydantic validate + dump",
    )


if __name__ == "__main__":
    main()
