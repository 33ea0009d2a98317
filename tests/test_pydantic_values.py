"""pydantic v2 models as trace values: recorded from model_dump, rebuilt by the registered class."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from prodture import Effect, Interpreter, MemorySink, Recorder, Replayer, read_trace
from prodture.integrations.pydantic import register_model
from prodture.trace.codec import REDACTED, Redactor, UnknownValue, decode_value, encode_value


@register_model(name="test_pyd.Guest")
class Guest(pydantic.BaseModel):
    name: str
    password: str = ""


@register_model(name="test_pyd.Booking")
class Booking(pydantic.BaseModel):
    room: str
    nights: int
    starts: dt.datetime
    price: Decimal
    guest: Guest
    card: pydantic.SecretStr | None = None


class NotRegistered(pydantic.BaseModel):
    x: int


@dataclasses.dataclass(frozen=True)
class Quote(Effect, name="test_pyd.Quote"):
    booking: Booking


def book(booking: Booking):
    price = yield Quote(booking)
    return booking.model_copy(update={"price": price})


def _booking() -> Booking:
    return Booking(
        room="r1",
        nights=2,
        starts=dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc),
        price=Decimal("10.50"),
        guest=Guest(name="ann", password="hunter2"),
        card=pydantic.SecretStr("4111"),
    )


def test_model_round_trips_through_a_trace_and_replays():
    """A model passed as the input, inside an effect and as the result records and replays."""
    sink = MemorySink()
    performers: dict[type, Callable[[Any], Any]] = {
        Quote: lambda e: e.booking.price * e.booking.nights
    }
    outcome = Interpreter(performers, recorder=Recorder(sink, redact=None)).run(book, _booking())
    assert outcome.ok
    trace = read_trace(sink.traces[0])
    assert isinstance(trace.input, Booking)
    assert trace.input.guest == Guest(name="ann", password="hunter2")
    assert trace.input.starts == _booking().starts and trace.input.price == Decimal("10.50")
    assert isinstance(trace.effects[0].request["booking"], Booking)
    assert trace.outcome.value.price == Decimal("21.00")
    result = Replayer(trace, book).run()
    assert result.reproduced, result.divergence


def test_secret_fields_and_secret_str_are_redacted():
    """Fields named like secrets (nested too) and SecretStr values never reach the trace."""
    data = encode_value(Redactor().scrub(_booking()))
    assert b"hunter2" not in data and b"4111" not in data
    rebuilt = decode_value(data)
    assert isinstance(rebuilt, Booking)  # rebuilt as recorded, the redacted fields kept
    assert rebuilt.card is REDACTED and rebuilt.guest.password is REDACTED
    assert rebuilt.guest.name == "ann" and rebuilt.nights == 2


def test_only_the_registered_class_is_rebuilt():
    """An unregistered model is opaque; a registered name with fields it rejects stays inert."""
    assert "Opaque" in type(decode_value(encode_value(NotRegistered(x=1)))).__name__
    forged = encode_value(UnknownValue("test_pyd.Guest", {"name": ["not", "a", "string"]}))
    value = decode_value(forged)
    assert isinstance(value, UnknownValue) and value.type_name == "test_pyd.Guest"


def test_register_model_refuses_other_classes():
    not_a_model: Any = dict  # what a caller without a type checker may pass
    with pytest.raises(TypeError, match=r"pydantic\.BaseModel"):
        register_model(not_a_model)


def test_json_view_shows_a_model_by_name_and_fields():
    from prodture.trace.render import to_json

    view = to_json(Guest(name="ann", password="x"))
    assert view == {"$type": "test_pyd.Guest", "fields": {"name": "ann", "password": "x"}}
