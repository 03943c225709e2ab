"""Domain events, named after the product's webhook topics.

A command on an aggregate returns a new aggregate carrying the events it
caused in ``aggregate.events`` (oldest first). Events are not part of the
aggregate's equality nor of its data; storing the aggregate takes them, into
the same transaction (the outbox), from where they are published.

Every event is frozen and carries the partner, the aggregate's id, when it
happened and what changed. ``Event.topic`` is the webhook topic string.

>>> from altpay_core.events import EVENT_TYPES
>>> EVENT_TYPES["customer_created"].__name__
'CustomerCreated'
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

import attrs

from .values import PartnerId

__all__ = [
    "EVENT_TYPES",
    "CustomerArchived",
    "CustomerCreated",
    "CustomerUpdated",
    "Event",
    "InvoiceArchived",
    "InvoiceCreated",
    "InvoicePaid",
    "InvoiceUpdated",
    "PaymentChargeback",
    "PaymentFailed",
    "PaymentRefunded",
    "PaymentSucceeded",
    "utc_now",
]


def utc_now() -> dt.datetime:
    """The current time, timezone-aware in UTC, to the microsecond."""
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        from .errors import ValidationError

        raise ValidationError.single(
            "occurred_at",
            "invalid_datetime",
            f"'occurred_at' must be a timezone-aware datetime (got {value!r})",
        )
    return value.astimezone(dt.UTC)


EVENT_TYPES: dict[str, type[Event]] = {}


@attrs.frozen(kw_only=True)
class Event:
    """Something that happened to an aggregate, to be published once stored.

    ``changes`` names the fields that changed (empty where the topic says it
    all, as in ``customer_created``).
    """

    topic: ClassVar[str] = ""

    partner_id: PartnerId
    aggregate_id: str
    occurred_at: dt.datetime = attrs.field(factory=utc_now, converter=_aware)
    changes: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.topic:
            EVENT_TYPES[cls.topic] = cls


@attrs.frozen(kw_only=True)
class CustomerCreated(Event):
    """A customer was created (by the two-step draft, a sync or an access request)."""

    topic: ClassVar[str] = "customer_created"


@attrs.frozen(kw_only=True)
class CustomerUpdated(Event):
    """A customer's details, users, tags or settings changed."""

    topic: ClassVar[str] = "customer_updated"


@attrs.frozen(kw_only=True)
class CustomerArchived(Event):
    """A customer was archived (the product's soft delete)."""

    topic: ClassVar[str] = "customer_archived"


@attrs.frozen(kw_only=True)
class InvoiceCreated(Event):
    """An invoice was issued or synced in."""

    topic: ClassVar[str] = "invoice_created"


@attrs.frozen(kw_only=True)
class InvoiceUpdated(Event):
    """An invoice's amounts, dates, balance or status changed."""

    topic: ClassVar[str] = "invoice_updated"


@attrs.frozen(kw_only=True)
class InvoicePaid(Event):
    """An invoice's balance reached zero."""

    topic: ClassVar[str] = "invoice_paid"


@attrs.frozen(kw_only=True)
class InvoiceArchived(Event):
    """An invoice was archived: hidden from the customer, history kept."""

    topic: ClassVar[str] = "invoice_archived"


@attrs.frozen(kw_only=True)
class PaymentSucceeded(Event):
    """A payment settled."""

    topic: ClassVar[str] = "payment_succeeded"


@attrs.frozen(kw_only=True)
class PaymentFailed(Event):
    """A payment failed or was returned by the bank; balances were given back."""

    topic: ClassVar[str] = "payment_failed"


@attrs.frozen(kw_only=True)
class PaymentRefunded(Event):
    """A settled payment was refunded in full."""

    topic: ClassVar[str] = "payment_refunded"


@attrs.frozen(kw_only=True)
class PaymentChargeback(Event):
    """A card payment was disputed, or an ACH debit returned as unauthorised."""

    topic: ClassVar[str] = "payment_chargeback"
