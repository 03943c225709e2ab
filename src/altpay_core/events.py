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
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import ClassVar

import attrs

from . import _fields
from ._arguments import checked_arguments, checked_constructor
from .errors import FieldErrors, InvariantViolation, shown
from .values import PartnerId

__all__ = [
    "EVENT_TYPES",
    "CustomerArchived",
    "CustomerCreated",
    "CustomerUpdated",
    "DefaultPaymentMethodChanged",
    "Event",
    "InvoiceArchived",
    "InvoiceCreated",
    "InvoicePaid",
    "InvoiceUpdated",
    "PaymentChargeback",
    "PaymentFailed",
    "PaymentMethodAdded",
    "PaymentMethodDeleted",
    "PaymentRefunded",
    "PaymentSettled",
    "PaymentSucceeded",
    "utc_now",
]


@checked_arguments
def utc_now() -> dt.datetime:
    """The current time, timezone-aware in UTC, to the microsecond."""
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    return _fields.aware_datetime("occurred_at", value)


_EVENT_TYPES: dict[str, type[Event]] = {}
EVENT_TYPES: Mapping[str, type[Event]] = MappingProxyType(_EVENT_TYPES)
"""Every event class, by its webhook topic (read-only: a class with a
``topic`` of its own enters it by subclassing :class:`Event`; a subclass
that declares no topic inherits its parent's without taking its place, and
one that declares a topic another class has is refused, rule
``event-topic``)."""

# Called with each class as it enters EVENT_TYPES: the testing kit registers
# a service's own event classes with Hypothesis, so that st.from_type draws them.
_EVENT_TYPE_LISTENERS: list[Callable[[type[Event]], object]] = []


@checked_constructor
@attrs.frozen(kw_only=True)
class Event:
    """Something that happened to an aggregate, to be published once stored.

    Every event names the partner (``partner_id``), the aggregate it happened
    to (``aggregate_id``, the aggregate's id as text, such as ``cus_...``),
    when it happened (``occurred_at``, in UTC) and what changed
    (``changes``: the names of the fields that changed, such as
    ``("company", "address")``; empty where the topic says it all, as in
    ``customer_created``). ``topic`` is the webhook topic.

    Only the concrete classes (one per topic) are built; ``Event`` itself is
    the type to read any of them back with (``from_dict(Event, data)``).

    >>> from altpay_core.values import PartnerId
    >>> e = CustomerUpdated(partner_id=PartnerId("par_1"), aggregate_id="cus_1",
    ...                     changes=["company"])
    >>> e.topic, e.changes
    ('customer_updated', ('company',))
    """

    topic: ClassVar[str] = ""

    partner_id: PartnerId
    aggregate_id: str
    occurred_at: dt.datetime = attrs.field(factory=utc_now, converter=_aware)
    changes: tuple[str, ...] = attrs.field(default=(), converter=_fields.list_as_tuple)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        topic = cls.__dict__.get("topic")  # its own, not one it inherits
        if not topic:
            return
        if not isinstance(topic, str):
            raise InvariantViolation(
                f"a topic is a webhook topic's name, text (got {type(topic).__name__})",
                rule="event-topic",
                path="topic",
            )
        known = _EVENT_TYPES.get(topic)
        if known is not None and (known.__module__, known.__qualname__) != (
            cls.__module__,
            cls.__qualname__,
        ):  # the same class again is attrs rebuilding it, or a module reloaded
            raise InvariantViolation(
                f"the topic {topic!r} is {known.__qualname__}'s already: a subclass of "
                "Event takes a topic of its own",
                rule="event-topic",
                path="topic",
            )
        _EVENT_TYPES[topic] = cls
        for listener in _EVENT_TYPE_LISTENERS:
            listener(cls)

    def __attrs_post_init__(self) -> None:
        found = FieldErrors()
        self._keep_plain_text()
        if not self.topic:
            found.add(
                "topic",
                "abstract_event",
                f"'{type(self).__name__}' has no webhook topic; build one of "
                f"{', '.join(sorted(EVENT_TYPES))}",
            )
        if not isinstance(self.partner_id, PartnerId):
            found.add(
                "partner_id",
                "wrong_type",
                f"'partner_id' must be a PartnerId (got {type(self.partner_id).__name__})",
            )
        if not isinstance(self.aggregate_id, str):
            found.add(
                "aggregate_id",
                "wrong_type",
                f"'aggregate_id' must be the aggregate's id as text "
                f"(got {type(self.aggregate_id).__name__})",
            )
        elif not self.aggregate_id.strip():
            found.add(
                "aggregate_id",
                "blank",
                f"'aggregate_id' must be the aggregate's id as text "
                f"(got {shown(self.aggregate_id)})",
            )
        elif not _fields.valid_unicode(self.aggregate_id):
            found.add("aggregate_id", "invalid_text", _fields.NOT_TEXT.format("aggregate_id"))
        if not isinstance(self.changes, tuple):
            found.add(
                "changes",
                "wrong_type",
                f"'changes' must be a list of field names (got {type(self.changes).__name__})",
            )
        else:
            for index, name in enumerate(self.changes):
                if not isinstance(name, str) or not name:
                    found.add(
                        f"changes[{index}]",
                        "wrong_type",
                        f"'changes[{index}]' must be a field name (got {shown(name)})",
                    )
                elif not _fields.valid_unicode(name):
                    path = f"changes[{index}]"
                    found.add(path, "invalid_text", _fields.NOT_TEXT.format(path))
        found.raise_if_any()

    def _keep_plain_text(self) -> None:
        """The aggregate's id and the changed fields' names as plain ``str``:
        a subclass of ``str`` (with its own ``__eq__``, ``__hash__`` or
        ``strip``) is never kept, to be checked as one value and read as
        another."""
        aggregate_id, changes = self.aggregate_id, self.changes
        if isinstance(aggregate_id, str) and type(aggregate_id) is not str:
            object.__setattr__(self, "aggregate_id", _fields.plain_str(aggregate_id))
        if isinstance(changes, tuple) and any(
            isinstance(name, str) and type(name) is not str for name in changes
        ):
            plain = tuple(_fields.plain_str(n) if isinstance(n, str) else n for n in changes)
            object.__setattr__(self, "changes", plain)


@checked_constructor
@attrs.frozen(kw_only=True)
class CustomerCreated(Event):
    """A customer was created (by the two-step draft, a sync or an access request)."""

    topic: ClassVar[str] = "customer_created"


@checked_constructor
@attrs.frozen(kw_only=True)
class CustomerUpdated(Event):
    """A customer's details, users, tags or settings changed."""

    topic: ClassVar[str] = "customer_updated"


@checked_constructor
@attrs.frozen(kw_only=True)
class CustomerArchived(Event):
    """A customer was archived (the product's soft delete)."""

    topic: ClassVar[str] = "customer_archived"


@checked_constructor
@attrs.frozen(kw_only=True)
class InvoiceCreated(Event):
    """An invoice was issued or synced in."""

    topic: ClassVar[str] = "invoice_created"


@checked_constructor
@attrs.frozen(kw_only=True)
class InvoiceUpdated(Event):
    """An invoice's amounts, dates, balance or status changed."""

    topic: ClassVar[str] = "invoice_updated"


@checked_constructor
@attrs.frozen(kw_only=True)
class InvoicePaid(Event):
    """An invoice's balance reached zero."""

    topic: ClassVar[str] = "invoice_paid"


@checked_constructor
@attrs.frozen(kw_only=True)
class InvoiceArchived(Event):
    """An invoice was archived: hidden from the customer, history kept."""

    topic: ClassVar[str] = "invoice_archived"


@checked_constructor
@attrs.frozen(kw_only=True)
class PaymentSucceeded(Event):
    """A payment cleared: it succeeded (settling it later is ``payment_settled``)."""

    topic: ClassVar[str] = "payment_succeeded"


@checked_constructor
@attrs.frozen(kw_only=True)
class PaymentFailed(Event):
    """A payment failed or was returned by the bank; balances were given back."""

    topic: ClassVar[str] = "payment_failed"


@checked_constructor
@attrs.frozen(kw_only=True)
class PaymentRefunded(Event):
    """A settled payment was refunded in full."""

    topic: ClassVar[str] = "payment_refunded"


@checked_constructor
@attrs.frozen(kw_only=True)
class PaymentChargeback(Event):
    """A card payment was disputed, or an ACH debit returned as unauthorised."""

    topic: ClassVar[str] = "payment_chargeback"


# -- invoices and payments: more topics ----------------------------------------


@checked_constructor
@attrs.frozen(kw_only=True)
class PaymentSettled(Event):
    """A succeeded payment's funds settled, so it may now be refunded (I7).

    Kept for the outbox and the audit trail; it is not one of the
    product's webhook topics (payouts, and their topics, are not modelled
    here).
    """

    topic: ClassVar[str] = "payment_settled"


@checked_constructor
@attrs.frozen(kw_only=True)
class PaymentMethodAdded(Event):
    """A customer saved a card or bank account (the aggregate is the
    customer's payment methods: its id is the customer's)."""

    topic: ClassVar[str] = "payment_method_added"


@checked_constructor
@attrs.frozen(kw_only=True)
class PaymentMethodDeleted(Event):
    """A customer's saved payment method was archived (the product's delete)."""

    topic: ClassVar[str] = "payment_method_deleted"


@checked_constructor
@attrs.frozen(kw_only=True)
class DefaultPaymentMethodChanged(Event):
    """A customer's default payment method changed (or there is none left)."""

    topic: ClassVar[str] = "default_payment_method_changed"
