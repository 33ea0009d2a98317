"""A recording session encodes a successful effect past the kept ones by one call into its
compiled record encoder, looked up by (effect class, result class, site) in the encoder's common
records. Whatever that look-up has not met (a new effect type, site or result type mid-trace,
after the fast path is warm), whatever the compiled encoder does not expect (a field whose type
changes between effects) and whatever it refuses (an int beyond 64 bits) goes the encoder's
general way: the trace is byte for byte the one the msgpack path writes, reads back with every
value, and a secret that turns up in a result never reaches the bytes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

import prodture
from prodture import Effect, MemorySink, Recorder
from prodture.recorder import MAX_KEPT
from prodture.runtime import EffectCall
from prodture.trace import Opaque, TraceReader, codec, fastpack, read_trace
from prodture.trace import format as format_module
from prodture.trace.codec import Redactor

pytest.importorskip("msgspec", reason="the prodture[fast] extra (msgspec) is not installed")

SITE = ("/srv/app/common_test.py", 10, "handle")
OTHER_SITE = ("/srv/app/common_test.py", 20, "handle")


@dataclasses.dataclass(frozen=True)
class Pay(Effect, name="test_common.Pay"):
    card_token: str
    amount: Any


@dataclasses.dataclass(frozen=True)
class Reserve(Effect, name="test_common.Reserve"):
    sku: str
    qty: int


@prodture.register(name="test_common.Paid")
@dataclasses.dataclass(frozen=True)
class Paid:
    charge_id: Any
    amount: Any


class Currency(str, enum.Enum):
    EUR = "EUR"


WARM = (Pay("tok_1", Decimal("58.99")), Paid("ch_1", Decimal("58.99")), SITE)

#: After MAX_KEPT + 5 warm effects (the common record met and remembered), each of these in turn
#: then the warm one again: (name, effect, result, site, the result as read back).
MID_TRACE: list[tuple[str, Effect, Any, Any, Any]] = [
    ("new effect type", Reserve("sku-1", 2), True, SITE, True),
    ("new site", WARM[0], WARM[1], OTHER_SITE, WARM[1]),
    ("no site", WARM[0], WARM[1], None, WARM[1]),
    ("new result type", WARM[0], Decimal("1.50"), SITE, Decimal("1.50")),
    ("result field str, not Decimal", WARM[0], Paid("ch_2", "12.00"), SITE, Paid("ch_2", "12.00")),
    ("result field float", WARM[0], Paid("ch_3", 1.5), SITE, Paid("ch_3", 1.5)),
    ("result field datetime", WARM[0], Paid("ch_4", dt.date(2026, 1, 2)), SITE, None),
    ("result field a str enum", WARM[0], Paid(Currency.EUR, Decimal(1)), SITE, None),
    ("request field float", Pay("tok_2", 2.5), WARM[1], SITE, WARM[1]),
    ("request field None", Pay("tok_3", None), WARM[1], SITE, WARM[1]),
    ("refused: int beyond 64 bits", WARM[0], Paid("ch_5", 2**70), SITE, None),
    ("secret in a result field", WARM[0], Paid("ch_6", {"password": "hunter2"}), SITE, None),
]


@pytest.fixture(autouse=True)
def _fresh_compiled() -> Iterator[None]:
    """Record encoders compiled here are compiled from the first values seen in each test."""
    _forget()
    yield
    _forget()


def _forget() -> None:
    format_module._UNREDACTED.types.clear()
    format_module._UNREDACTED.results.clear()
    codec._PLAIN_OBJECT.clear()


def _trace(effects: list[tuple[Effect, Any, Any]]) -> bytes:
    """One trace of these successful effects, each ``(effect, result, site)``."""
    sink = MemorySink()
    recorder = Recorder(sink, redact=Redactor())  # its own: compiled from this test's values
    session = recorder.begin("tests:common", {"order": 1})
    for seq, (effect, result, site) in enumerate(effects, 1):
        session.effect(EffectCall(seq, effect, site), True, result, 1000 + session.t0, 5)
    session.finish(prodture.Success("done"))
    recorder.close()
    (data,) = sink.traces
    return data


def _effect_records(data: bytes) -> bytes:
    """A trace's bytes from after its header to before its outcome (the header's trace id and
    start time, and the outcome's duration, differ between recordings)."""
    ends = [end for _, end in TraceReader(data).raw_records()]
    return data[ends[0] : ends[-2]]


def _both_paths(effects: list[tuple[Effect, Any, Any]], monkeypatch: pytest.MonkeyPatch) -> tuple:
    monkeypatch.setattr(fastpack, "enabled", True)
    fast = _trace(effects)
    monkeypatch.setattr(fastpack, "enabled", False)
    pure = _trace(effects)
    monkeypatch.setattr(fastpack, "enabled", True)
    return fast, pure


@pytest.mark.parametrize("name", [case[0] for case in MID_TRACE])
def test_an_effect_the_warm_fast_path_has_not_met_is_written_as_the_msgpack_path_writes_it(
    name, monkeypatch
):
    _, effect, result, site, read_back = next(case for case in MID_TRACE if case[0] == name)
    effects = [WARM] * (MAX_KEPT + 5) + [(effect, result, site), WARM, (effect, result, site), WARM]
    fast, pure = _both_paths(effects, monkeypatch)
    assert _effect_records(fast) == _effect_records(pure)
    assert b"hunter2" not in fast
    trace = read_trace(fast)
    assert len(trace.effects) == len(effects)
    for record in (trace.effects[MAX_KEPT + 5], trace.effects[MAX_KEPT + 7]):
        assert record.site == (tuple(site) if site is not None else None)
        assert record.type == type(effect).effect_name
        if read_back is not None:
            assert record.result == read_back
    assert trace.effects[-1].result == WARM[1] and trace.effects[-1].site == SITE


def test_the_fast_path_is_taken_once_warm_and_the_refused_record_is_marked(monkeypatch):
    """The equality above is not vacuous: past the kept effects the accelerator packs the warm
    record (one look-up of the triple, remembered by the encoder); the refused one is marked
    opaque by the msgpack path, the next warm one goes the fast way again."""
    packed: list[Any] = []
    real = fastpack.encode

    def counting(record: Any) -> bytes:
        packed.append(record)
        return real(record)  # type: ignore[misc]

    monkeypatch.setattr(fastpack, "encode", counting)
    _forget()  # compiled encoders hold the encode they were made with
    sink = MemorySink()
    recorder = Recorder(sink, redact=Redactor())  # its own: compiled from this test's values
    session = recorder.begin("tests:common", None)
    seq = 0
    for _ in range(MAX_KEPT + 3):
        seq += 1
        session.effect(EffectCall(seq, WARM[0], SITE), True, WARM[1], 1000 + session.t0, 5)
    assert session.common is not None
    assert (Pay, Paid, SITE) in session.common
    before = sum(type(r) is tuple and r[0] == 4 for r in packed)
    seq += 1
    session.effect(EffectCall(seq, WARM[0], SITE), True, Paid("ch", 2**70), 1000 + session.t0, 5)
    seq += 1
    session.effect(EffectCall(seq, WARM[0], SITE), True, WARM[1], 1000 + session.t0, 5)
    assert sum(type(r) is tuple and r[0] == 4 for r in packed) == before + 1  # the warm one
    session.finish(prodture.Success("done"))
    recorder.close()
    trace = read_trace(sink.traces[0])
    assert isinstance(trace.effects[-2].result.amount, Opaque)
    assert trace.effects[-1].result == WARM[1]
    assert recorder.stats.encode_errors == 0


@prodture.register(name="test_common.Receipt")
@dataclasses.dataclass
class Receipt:
    """A result that may change after it is returned (not frozen): never kept, encoded at once."""

    charge_id: str
    amount: Decimal


def test_an_effect_kept_between_two_of_the_same_common_record_stays_in_its_place(monkeypatch):
    """Within the first MAX_KEPT effects, a kept one (encoded later) between effects encoded at
    once: the next effect of the common record met just before it (same effect class, result
    class and site objects, the runtime's case) is encoded only after the kept one, so the
    trace's records stay in order, byte for byte the msgpack path's."""
    receipt = Receipt("ch_1", Decimal("58.99"))
    at_once = (WARM[0], receipt, SITE)
    kept = WARM  # a frozen result: kept, encoded when the next effect is not
    order: list[tuple[Effect, Any, Any]] = [at_once, at_once, kept, at_once, at_once, kept, kept]
    order.append(at_once)
    effects: list[tuple[Effect, Any, Any]] = order + [at_once] * (MAX_KEPT + 2 - len(order))
    fast, pure = _both_paths(effects, monkeypatch)
    assert _effect_records(fast) == _effect_records(pure)
    trace = read_trace(fast)
    assert [e.seq for e in trace.effects] == list(range(1, len(effects) + 1))
    results = [type(e.result) for e in trace.effects[:8]]
    assert results == [Receipt, Receipt, Paid, Receipt, Receipt, Paid, Paid, Receipt]
