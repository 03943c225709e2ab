"""Tests of the domain events: topics, fields, checks and serialisation."""

from __future__ import annotations

import datetime as dt
import doctest
import pickle
from typing import ClassVar

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from altpay_core import (
    CustomerArchived,
    CustomerCreated,
    CustomerDraft,
    CustomerUpdated,
    Event,
    InvariantViolation,
    Partner,
    PartnerId,
    ValidationError,
    from_dict,
    from_json,
    to_dict,
    to_json,
)
from altpay_core import events as events_module
from altpay_core.events import EVENT_TYPES

TOPICS = {
    "customer_created",
    "customer_updated",
    "customer_archived",
    "invoice_created",
    "invoice_updated",
    "invoice_paid",
    "invoice_archived",
    "payment_succeeded",
    "payment_failed",
    "payment_refunded",
    "payment_chargeback",
}


def test_module_examples() -> None:
    assert doctest.testmod(events_module).failed == 0


def test_every_topic_of_the_design_has_an_event() -> None:
    assert set(EVENT_TYPES) >= TOPICS
    for topic, kind in EVENT_TYPES.items():
        assert kind.topic == topic
        assert issubclass(kind, Event)
        assert kind.__doc__


def test_the_library_adds_only_its_documented_topics() -> None:
    # Beyond the webhook topics: the settling of a payment and the saved
    # methods' changes, for the outbox (docs/invoices-and-payments.md).
    own = {t for t, kind in EVENT_TYPES.items() if kind.__module__ == events_module.__name__}
    assert own == TOPICS | {
        "payment_settled",
        "payment_method_added",
        "payment_method_deleted",
        "default_payment_method_changed",
    }


def test_the_topics_table_is_read_only() -> None:
    # from_dict reads events by it: no one may swap a topic's class.
    with pytest.raises(TypeError):
        EVENT_TYPES["customer_archived"] = Event  # type: ignore[index]
    with pytest.raises(TypeError):
        del EVENT_TYPES["customer_archived"]  # type: ignore[attr-defined]


def test_a_subclass_without_a_topic_of_its_own_does_not_take_its_parents() -> None:
    @attrs.frozen(kw_only=True)
    class AuditedCustomerCreated(CustomerCreated):
        """A service's own kind of customer_created."""

    audited = AuditedCustomerCreated(partner_id=PartnerId("par_1"), aggregate_id="cus_1")
    assert audited.topic == "customer_created"
    assert EVENT_TYPES["customer_created"] is CustomerCreated
    created = CustomerCreated(partner_id=PartnerId("par_1"), aggregate_id="cus_1")
    back = from_dict(Event, to_dict(created))
    assert type(back) is CustomerCreated
    assert back == created


def test_a_topic_another_event_has_is_refused() -> None:
    with pytest.raises(InvariantViolation) as caught:

        @attrs.frozen(kw_only=True)
        class Renamed(Event):
            topic: ClassVar[str] = "customer_updated"

    assert caught.value.rule == "event-topic"
    assert "CustomerUpdated" in str(caught.value)
    assert EVENT_TYPES["customer_updated"] is CustomerUpdated


@pytest.mark.parametrize("kind", sorted(EVENT_TYPES.values(), key=lambda k: k.topic))
def test_every_event_carries_partner_aggregate_time_and_changes(kind: type[Event]) -> None:
    before = dt.datetime.now(dt.UTC)
    event = kind(partner_id=PartnerId("par_1"), aggregate_id="cus_1", changes=["a", "b"])
    assert before <= event.occurred_at <= dt.datetime.now(dt.UTC)
    assert event.occurred_at.tzinfo is dt.UTC
    assert event.partner_id == PartnerId("par_1")
    assert event.aggregate_id == "cus_1"
    assert event.changes == ("a", "b")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.aggregate_id = "cus_2"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(event)) == event


def test_times_are_stored_in_utc() -> None:
    eastern = dt.datetime(2026, 1, 1, 9, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    event = CustomerUpdated(
        partner_id=PartnerId("par_1"), aggregate_id="cus_1", occurred_at=eastern
    )
    assert event.occurred_at == eastern
    assert event.occurred_at.tzinfo is dt.UTC
    assert event.occurred_at.hour == 14


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        CustomerUpdated(
            partner_id=PartnerId("par_1"),
            aggregate_id="cus_1",
            occurred_at=dt.datetime(2026, 1, 1),  # naive on purpose
        )
    assert caught.value.paths == ["occurred_at"]


def test_every_invalid_field_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        CustomerUpdated(
            partner_id="par_1",  # type: ignore[arg-type]
            aggregate_id=" ",
            changes=["ok", "", 5],  # type: ignore[list-item]
        )
    assert caught.value.paths == ["partner_id", "aggregate_id", "changes[1]", "changes[2]"]
    with pytest.raises(ValidationError) as caught:
        CustomerUpdated(partner_id=PartnerId("par_1"), aggregate_id="cus_1", changes="company")  # type: ignore[arg-type]
    assert caught.value.paths == ["changes"]


@given(
    bad=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF) | st.just("\x00"),
    where=st.sampled_from(["aggregate_id", "changes"]),
)
def test_text_no_store_holds_is_refused(bad: str, where: str) -> None:
    # Events go to the outbox: PostgreSQL's text holds no NUL, UTF-8 no lone surrogate.
    fields: dict[str, object] = {"aggregate_id": "cus_1", "changes": ["company"]}
    fields[where] = f"cus_{bad}" if where == "aggregate_id" else ["company", f"x{bad}"]
    with pytest.raises(ValidationError) as caught:
        CustomerUpdated(partner_id=PartnerId("par_1"), **fields)  # type: ignore[arg-type]
    path = "aggregate_id" if where == "aggregate_id" else "changes[1]"
    assert (caught.value.paths, caught.value.codes) == ([path], ["invalid_text"])


def test_the_base_class_is_not_an_event_of_its_own() -> None:
    with pytest.raises(ValidationError) as caught:
        Event(partner_id=PartnerId("par_1"), aggregate_id="cus_1")
    assert caught.value.paths == ["topic"]
    # It names the classes to build instead by their topics, in a stable order.
    assert f"build one of {', '.join(sorted(EVENT_TYPES))}" in str(caught.value)


def test_commands_record_who_what_and_when() -> None:
    partner = Partner.create(name="Northwind IT", country="US")
    before = dt.datetime.now(dt.UTC)
    customer = (
        CustomerDraft.start(partner)
        .enter_details(
            company="Globex",
            address={
                "line1": "1 Main St",
                "city": "Albany",
                "region": "NY",
                "postal_code": "12207",
                "country": "US",
            },
        )
        .add_user(first_name="Ann", last_name="Lee", email="ann@globex.example")
        .create()
        .update_details(company="Globex Inc", legal_name="Globex Incorporated")
        .archive()
    )
    created, updated, archived = customer.events
    assert isinstance(created, CustomerCreated)
    assert isinstance(updated, CustomerUpdated)
    assert isinstance(archived, CustomerArchived)
    for event in customer.events:
        assert event.partner_id == partner.id
        assert event.aggregate_id == str(customer.id)
        assert before <= event.occurred_at <= dt.datetime.now(dt.UTC)
    assert created.changes == ()
    assert updated.changes == ("company", "legal_name")
    assert archived.changes == ("status",)


@given(st.from_type(Event))
def test_round_trip_through_the_base_class(event: Event) -> None:
    data = to_dict(event)
    assert data["topic"] == event.topic
    again = from_dict(Event, data)
    assert type(again) is type(event)
    assert again == event
    assert from_json(Event, to_json(event)) == event
    assert from_dict(type(event), data) == event


def test_from_dict_refuses_unknown_topics_and_bad_fields() -> None:
    data = to_dict(CustomerUpdated(partner_id=PartnerId("par_1"), aggregate_id="cus_1"))
    with pytest.raises(ValidationError) as caught:
        from_dict(Event, {**data, "topic": "customer_deleted"})
    assert caught.value.paths == ["topic"]
    with pytest.raises(ValidationError) as caught:
        from_dict(Event, {**data, "occurred_at": "yesterday", "partner_id": "cus_1"})
    assert set(caught.value.paths) == {"occurred_at", "partner_id"}
    with pytest.raises(ValidationError):
        from_dict(CustomerArchived, data)


def test_a_subclass_without_a_topic_is_not_registered_nor_built() -> None:
    @attrs.frozen(kw_only=True)
    class Draftish(Event):
        """An event class with no topic of its own."""

    assert Draftish not in EVENT_TYPES.values()
    with pytest.raises(ValidationError):
        Draftish(partner_id=PartnerId("par_1"), aggregate_id="cus_1")


def test_the_payment_method_topics_are_the_products() -> None:
    # PRODUCT.md's webhook topics, each one class.
    for topic in (
        "payment_method_added",
        "payment_method_deleted",
        "default_payment_method_changed",
    ):
        assert EVENT_TYPES[topic].topic == topic


def test_an_aggregate_id_that_is_not_text_is_the_wrong_type() -> None:
    with pytest.raises(ValidationError) as caught:
        CustomerCreated(partner_id=PartnerId("par_1"), aggregate_id=5)  # type: ignore[arg-type]
    assert (caught.value.paths, caught.value.codes) == (["aggregate_id"], ["wrong_type"])
    with pytest.raises(ValidationError) as caught:
        CustomerCreated(partner_id=PartnerId("par_1"), aggregate_id="  ")
    assert caught.value.codes == ["blank"]


def test_a_topic_is_registered_only_as_text_and_once() -> None:
    before = dict(EVENT_TYPES)

    class NoTopic(Event):  # abstract: registers nothing
        topic = ""

    with pytest.raises(InvariantViolation) as caught:
        type("NumberTopic", (Event,), {"topic": 5})
    assert (caught.value.rule, caught.value.path) == ("event-topic", "topic")
    # A class of the same name in another module takes no topic of another's.
    with pytest.raises(InvariantViolation):
        type(
            "CustomerCreated",
            (Event,),
            {
                "__module__": "elsewhere",
                "__qualname__": "CustomerCreated",
                "topic": "customer_created",
            },
        )
    assert dict(EVENT_TYPES) == before
    assert EVENT_TYPES["customer_created"] is CustomerCreated
