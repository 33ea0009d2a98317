"""The event store contract, run against both real backends (SQLite file, PostgreSQL cluster)."""

from __future__ import annotations

import dataclasses
import datetime
import sqlite3
import sys
import threading
from pathlib import Path

import pytest

import prodture
from prodture.eventsourcing import (
    MAIN,
    AppendStream,
    ConcurrencyConflict,
    EventStoreError,
    LoadStream,
    StoreUnavailable,
    UnregisteredEventType,
    open_store,
)
from prodture.recorder import MemorySink, Recorder
from prodture.replay import Replayer
from prodture.trace import read_trace
from prodture.trace.codec import ExtCode, UnknownValue, _plain_pack, encode_value


@prodture.register(name="estest.Deposited")
@dataclasses.dataclass(frozen=True)
class Deposited:
    amount: int
    by: str = ""


@prodture.register(name="estest.Withdrawn")
@dataclasses.dataclass(frozen=True)
class Withdrawn:
    amount: int


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    return request.getfixturevalue("postgres_url")


def _raw_insert(url: str, domain: str, root: str, seq: int, type_name: str, payload: bytes) -> None:
    """Write a row behind the store's back (a hostile or foreign writer)."""
    store = open_store(url)

    def work(execute):
        execute(
            store._q(
                "INSERT INTO prodture_events (edition, domain, root, sequence, type, payload, recorded_at) "
                "VALUES ('', ?, ?, ?, ?, ?, ?)"
            ),
            (
                domain,
                root,
                seq,
                type_name,
                payload,
                store._time(__import__("datetime").datetime.now()),
            ),
        )

    store._write(work)
    store.close()


def test_append_and_load_keep_sequence_type_time_and_ids(store_url: str) -> None:
    with open_store(store_url) as store:
        assert store.load("bank", "a-1").pages == ()
        head = store.append(
            "bank",
            "a-1",
            0,
            [Deposited(100, "me"), Withdrawn(30)],
            correlation_id="c-1",
            causation_id="cmd-1",
        )
        assert head == 2
        store.append("bank", "a-2", 0, [Deposited(5)])
        book = store.load("bank", "a-1")
    assert book.head == 2 and book.events == [Deposited(100, "me"), Withdrawn(30)]
    assert [p.sequence for p in book.pages] == [1, 2]
    assert [p.type for p in book.pages] == ["estest.Deposited", "estest.Withdrawn"]
    assert all(p.correlation_id == "c-1" and p.causation_id == "cmd-1" for p in book.pages)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert all(abs((p.recorded_at - now).total_seconds()) < 120 for p in book.pages)
    with open_store(store_url, read_only=True) as ro:
        assert ro.load("bank", "a-1", up_to=1).events == [Deposited(100, "me")]
        assert ro.streams("bank") == [("bank", "a-1", 2), ("bank", "a-2", 1)]
        assert [p.event for _, _, p in ro.correlated("c-1")] == book.events


def test_a_stale_or_future_expected_sequence_is_a_conflict(store_url: str) -> None:
    with open_store(store_url) as store:
        store.append("bank", "a", 0, [Deposited(1), Deposited(2)])
        with pytest.raises(
            ConcurrencyConflict, match=r"bank/a is at sequence 2, the command expected 1.*retry"
        ):
            store.append("bank", "a", 1, [Deposited(3)])
        with pytest.raises(ConcurrencyConflict, match="expected 5"):
            store.append("bank", "a", 5, [Deposited(3)])
        assert store.load("bank", "a").events == [Deposited(1), Deposited(2)]


def test_eight_writers_racing_on_one_stream_one_wins_each_race(store_url: str) -> None:
    """Each round, 8 writers (8 connections) append at the same expected sequence: exactly one
    succeeds, the seven others get ConcurrencyConflict; nothing is lost or duplicated."""
    writers, rounds = 8, 6
    stores = [open_store(store_url) for _ in range(writers)]
    barrier = threading.Barrier(writers)
    results: list[list[str]] = [[] for _ in range(rounds)]
    lock = threading.Lock()

    def writer(i: int) -> None:
        for r in range(rounds):
            head = stores[i].load("table", "t-1").head
            barrier.wait(timeout=60)
            try:
                stores[i].append("table", "t-1", head, [Deposited(r, f"w{i}")])
                outcome = f"won:{i}"
            except ConcurrencyConflict:
                outcome = "conflict"
            with lock:
                results[r].append(outcome)
            barrier.wait(timeout=60)  # everyone sees the new head before the next race

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    book = stores[0].load("table", "t-1")
    for s in stores:
        s.close()
    for r in range(rounds):
        assert sorted(x.split(":")[0] for x in results[r]) == ["conflict"] * 7 + ["won"]
    winners = [next(x for x in results[r] if x.startswith("won")) for r in range(rounds)]
    assert [p.sequence for p in book.pages] == list(range(1, rounds + 1))
    assert [(e.amount, e.by) for e in book.events] == [
        (r, "w" + winners[r].split(":")[1]) for r in range(rounds)
    ]


def test_editions_branch_history_without_touching_main_or_each_other(store_url: str) -> None:
    with open_store(store_url) as store:
        store.append("player", "p", 0, [Deposited(1), Deposited(2), Deposited(3)])
        store.create_edition("debug-1", {"player": 2})
        dbg = store.edition("debug-1")
        assert dbg.load("player", "p").events == [Deposited(1), Deposited(2)]
        assert dbg.append("player", "p", 2, [Withdrawn(9)]) == 3
        with pytest.raises(ConcurrencyConflict):
            dbg.append("player", "p", 2, [Withdrawn(9)])
        other = store.edition("debug-2")  # no divergence point: all of main, then its own
        assert other.append("player", "p", 3, [Withdrawn(7)]) == 4
        store.append("player", "p", 3, [Deposited(4)])  # main moves on
        assert store.load("player", "p").events == [
            Deposited(1),
            Deposited(2),
            Deposited(3),
            Deposited(4),
        ]
        assert dbg.load("player", "p").events == [Deposited(1), Deposited(2), Withdrawn(9)]
        assert other.load("player", "p").events == [
            Deposited(1),
            Deposited(2),
            Deposited(3),
            Withdrawn(7),
        ]
        assert [(d, r, p.sequence, p.event) for d, r, p in dbg.events()] == [
            ("player", "p", 3, Withdrawn(9))
        ]
        assert store.editions() == ["debug-1", "debug-2"]
        assert dbg.delete_events() == 1
        assert dbg.events() == [] and store.editions() == ["debug-2"]
        assert len(store.load("player", "p")) == 4 and len(other.load("player", "p")) == 4
        with pytest.raises(ValueError, match="main timeline"):
            store.delete_edition_events(MAIN)


def test_an_unregistered_event_type_is_one_line_naming_it_and_the_fix(store_url: str) -> None:
    open_store(store_url).close()
    _raw_insert(store_url, "player", "p", 1, "other.service.Renamed", encode_value({"x": 1}))
    with open_store(store_url, read_only=True) as ro, pytest.raises(UnregisteredEventType) as e:
        ro.load("player", "p")
    message = str(e.value)
    assert "\n" not in message
    assert "'other.service.Renamed'" in message and "player/p #1" in message
    assert '@prodture.register(name="other.service.Renamed")' in message


def test_a_hostile_store_gets_nothing_imported_or_called(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Type names and nested values naming arbitrary importable things stay inert."""
    calls: list[str] = []
    monkeypatch.setattr("os.system", lambda *a: calls.append("system"))
    open_store(store_url).close()
    for module in ("antigravity", "this"):
        sys.modules.pop(module, None)
    _raw_insert(store_url, "h", "1", 1, "antigravity.fly", encode_value({}))
    nested = _plain_pack(
        __import__("msgpack").ExtType(
            ExtCode.OBJECT, _plain_pack(["os.system", {"command": "echo pwned"}])
        )
    )
    payload = b"\x82" + _plain_pack("amount") + nested + _plain_pack("by") + _plain_pack("x")
    _raw_insert(store_url, "h", "2", 1, "estest.Deposited", payload)
    _raw_insert(store_url, "h", "3", 1, "estest.Deposited", _plain_pack(["not", "a", "record"]))
    with open_store(store_url, read_only=True) as ro:
        with pytest.raises(UnregisteredEventType):
            ro.load("h", "1")
        event = ro.load("h", "2").events[0]
        assert isinstance(event.amount, UnknownValue) and event.amount.type_name == "os.system"
        with pytest.raises(EventStoreError, match="corrupt payload"):
            ro.load("h", "3")
    assert "antigravity" not in sys.modules and "this" not in sys.modules and calls == []


@prodture.register(name="estest.Tagged")
@dataclasses.dataclass(frozen=True, slots=True)
class Tagged:  # a slots class: no instance dict to hand the fields to
    tag: str
    at: datetime.datetime


@dataclasses.dataclass(frozen=True)
class _Base:
    amount: int


@prodture.register(name="estest.Moved")
@dataclasses.dataclass(frozen=True)
class Moved(_Base):  # fields declared on a base class
    to: str


def _mixed(n: int) -> list:
    when = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.timezone.utc)
    kinds = [
        lambda i: Deposited(i, by=f"teller-{i % 3}"),
        lambda i: Withdrawn(i % 7),
        lambda i: Tagged(f"t{i}", when + datetime.timedelta(seconds=i)),
        lambda i: Moved(i, to="savings"),
    ]
    return [kinds[i % len(kinds)](i) for i in range(n)]


def test_a_long_stream_loads_exactly_as_event_by_event_decoding(store_url: str) -> None:
    """More events than one decoding chunk, of four kinds (a slots class, inherited fields, a
    nested datetime): the bulk path gives what decoding each stored row alone gives."""
    from prodture.eventsourcing.store import _DECODE_CHUNK, decode_event

    events = _mixed(2 * _DECODE_CHUNK + 5)
    with open_store(store_url) as store:
        store.append("bulk", "b", 0, events)
        raw = store._execute(
            store._q("SELECT type, payload FROM prodture_events WHERE root = ? ORDER BY sequence"),
            ("b",),
        )
    with open_store(store_url, read_only=True) as ro:
        book = ro.load("bulk", "b")
        part = ro.load("bulk", "b", up_to=_DECODE_CHUNK + 1)
    one_by_one = [decode_event(t, bytes(p)) for t, p in raw]
    assert book.events == one_by_one == events
    assert [type(e) for e in book.events] == [type(e) for e in events]
    assert book.sequences == tuple(range(1, len(events) + 1)) and book.head == len(events)
    assert set(book.page_editions) == {MAIN} and len(book.recorded_at) == len(events)
    assert part.events == events[: _DECODE_CHUNK + 1]
    # an event written before its class gained a field: the field's default, as one by one
    _raw_insert(store_url, "bulk", "old", 1, "estest.Deposited", encode_value({"amount": 5}))
    with open_store(store_url, read_only=True) as ro:
        assert ro.load("bulk", "old").events == [Deposited(5, by="")]


@prodture.handler(name="estest:balance")
def balance(_command: str):
    book = yield LoadStream("bulk", "f")
    return sum(e.amount for e in book)


def test_a_fetched_trace_of_a_long_stream_reads_back_and_replays(tmp_path: Path) -> None:
    """40,000 events: sequences past 32,768 (whose encoding a chunked read once mistook for a
    header); the fetched trace reads, lists its book and replays."""
    from prodture.eventsourcing.fetch import fetch_command

    url = f"sqlite:///{tmp_path / 'events.db'}"
    events = [Withdrawn(i % 100) for i in range(40_000)]
    with open_store(url) as store:
        store.append("bulk", "f", 0, events)
    out = tmp_path / "f.prodtrace"
    fetched = fetch_command(url, balance, "check", domain="bulk", root="f", out=str(out))
    trace = read_trace(out)
    book = trace.effects[0].result
    assert book.events == events and book.sequences == tuple(range(1, 40_001))
    assert fetched.outcome.value == trace.outcome.value == sum(e.amount for e in events)
    assert Replayer(trace, balance).run().reproduced


@pytest.mark.parametrize(
    "bad",
    [
        encode_value({"amount": 1}) + encode_value({"amount": 2}),  # two values in one payload
        encode_value({"amount": 1, "by": "x"})[:-1],  # half a value
        b"",
    ],
    ids=["two-values", "truncated", "empty"],
)
def test_a_corrupt_payload_deep_in_a_long_stream_is_named_by_its_sequence(
    store_url: str, bad: bytes
) -> None:
    from prodture.eventsourcing.store import _DECODE_CHUNK

    n = _DECODE_CHUNK + 10
    with open_store(store_url) as store:
        store.append("bulk", "c", 0, [Withdrawn(i) for i in range(n)])
    _raw_insert(store_url, "bulk", "c", n + 1, "estest.Withdrawn", bad)
    _raw_insert(store_url, "bulk", "c", n + 2, "estest.Withdrawn", encode_value({"amount": 3}))
    with open_store(store_url, read_only=True) as ro:
        with pytest.raises(EventStoreError, match="corrupt payload") as e:
            ro.load("bulk", "c")
        assert f"bulk/c #{n + 1}" in str(e.value) and "\n" not in str(e.value)
        assert ro.load("bulk", "c", up_to=n).events == [Withdrawn(i) for i in range(n)]


def test_loading_leaves_the_garbage_collector_as_it_found_it(store_url: str) -> None:
    import gc

    from prodture.eventsourcing.store import _GC_PAUSE_ROWS

    long = [Withdrawn(i) for i in range(_GC_PAUSE_ROWS)]
    with open_store(store_url) as store:
        store.append("bulk", "g", 0, long)
        assert gc.isenabled()
        assert store.load("bulk", "g").events == long
        assert gc.isenabled()
        gc.disable()  # the application's choice: kept
        try:
            store.load("bulk", "g")
            assert not gc.isenabled()
        finally:
            gc.enable()
        _raw_insert(store_url, "bulk", "g", len(long) + 1, "estest.Unknown", encode_value({}))
        with pytest.raises(UnregisteredEventType):
            store.load("bulk", "g")
        assert gc.isenabled()


def test_overlapping_gc_pauses_end_with_the_first_one() -> None:
    """Several threads loading long streams at once never keep the collector off longer than
    the load that turned it off."""
    import gc

    from prodture.gcpause import cyclic_gc_paused

    first, second = cyclic_gc_paused(), cyclic_gc_paused()
    first.__enter__()
    second.__enter__()
    assert not gc.isenabled()
    first.__exit__(None, None, None)
    assert gc.isenabled()  # although the second is still running
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_read_only_store_cannot_write_even_with_raw_sql(store_url: str) -> None:
    with open_store(store_url) as store:
        store.append("bank", "a", 0, [Deposited(1)])
    with open_store(store_url, read_only=True) as ro:
        with pytest.raises(EventStoreError, match="read-only"):
            ro.append("bank", "a", 1, [Deposited(2)])
        with pytest.raises(EventStoreError, match="read-only"):
            ro.create_edition("x", {"bank": 1})
        # Around the store's own checks: the connection itself refuses.
        with pytest.raises(Exception, match="(?i)read-?only"):
            conn = ro._conn  # type: ignore[attr-defined]  # the concrete store's connection, past its checks
            conn.execute("DELETE FROM prodture_events")
            conn.commit() if hasattr(conn, "commit") else None
    with open_store(store_url) as store:
        assert store.load("bank", "a").events == [Deposited(1)]


def test_store_effects_record_and_replay_without_persisting(store_url: str) -> None:
    @prodture.handler(name="estest:deposit")
    def deposit(amount: int):
        book = yield LoadStream("bank", "a")
        yield AppendStream("bank", "a", book.head, (Deposited(amount),))
        return book.head + 1

    sink = MemorySink()
    with open_store(store_url) as store:
        interpreter = prodture.Interpreter(store.performers(), recorder=Recorder(sink))
        assert interpreter.run(deposit, 10).value == 1
        assert interpreter.run(deposit, 20).value == 2
        trace = read_trace(sink.traces[-1])
        assert [e.type for e in trace.effects] == ["prodture.LoadStream", "prodture.AppendStream"]
        assert trace.effects[0].result.events == [Deposited(10)]
        assert Replayer(trace, deposit).run().reproduced
        assert store.load("bank", "a").events == [Deposited(10), Deposited(20)]


def test_an_unreachable_store_is_one_line_with_the_password_masked(postgres_cluster) -> None:
    bad_password = postgres_cluster.url().replace(postgres_cluster.password, "wrong-pass-123")
    with pytest.raises(StoreUnavailable) as e:
        open_store(bad_password)
    assert (
        "wrong-pass-123" not in str(e.value)
        and ":***@" in str(e.value)
        and "\n" not in str(e.value)
    )
    closed = f"postgresql://prodture:{postgres_cluster.password}@127.0.0.1:1/postgres"
    with pytest.raises(StoreUnavailable) as e:
        open_store(closed)
    assert postgres_cluster.password not in str(e.value) and "127.0.0.1:1" in str(e.value)


def test_a_sqlite_path_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="no such event store file"):
        open_store(str(tmp_path / "missing.db"), read_only=True)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE x (y)").connection.close()
    with pytest.raises(StoreUnavailable, match="not an event store"):
        open_store(str(other), read_only=True)
    (tmp_path / "garbage.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(StoreUnavailable, match="not a usable event store"):
        open_store(str(tmp_path / "garbage.db"))


def test_a_store_written_by_a_newer_schema_is_refused(store_url: str) -> None:
    with open_store(store_url) as store:
        store._write(lambda execute: execute("UPDATE prodture_schema SET version = 99"))
    for read_only in (False, True):
        with pytest.raises(StoreUnavailable, match="schema version 99 is newer.*upgrade prodture"):
            open_store(store_url, read_only=read_only)


def test_hostile_event_books_in_a_trace_never_crash_show_or_books(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trace is untrusted: event books with columns of the wrong kinds, or naming unknown
    types, are shown as far as they make sense; nothing raises past the CLI's one-line contract."""
    from prodture.cli import main
    from prodture.eventsourcing import EventBook
    from prodture.trace.format import TraceEncoder

    enc = TraceEncoder()
    garbage = EventBook.from_columns(
        "player",
        "p",
        "",
        ("x",),  # type: ignore[arg-type]  # columns of the wrong kinds, as a hostile trace holds
        (1, 2),
        (None,),
        (3,),  # type: ignore[arg-type]  # (wrong kind on purpose)
        (None,),  # type: ignore[arg-type]  # (wrong kind on purpose)
        ("",),
    )
    not_columns = object.__new__(EventBook)  # as a hostile trace decodes: any field values
    for name, value in zip(
        [
            "domain",
            "root",
            "edition",
            "sequences",
            "values",
            "recorded_at",
            "correlation_ids",
            "causation_ids",
            "page_editions",
        ],
        ["player", "q", "", 7, 8, 9, 10, 11, 12],
        strict=True,
    ):
        object.__setattr__(not_columns, name, value)
    data = enc.header("estest:nothing") + enc.input(None)
    data += enc.effect(1, LoadStream("player", "p"), True, garbage, 0, 1, None)
    data += enc.effect(2, LoadStream("player", "q"), True, not_columns, 0, 1, None)
    data += enc.effect(3, AppendStream("player", "p", "two", "not-a-tuple"), True, 3, 0, 1, None)  # type: ignore[arg-type]
    data += enc.outcome(False, ValueError("boom"), "", 3, 10)
    path = tmp_path / "hostile.prodtrace"
    path.write_bytes(data)
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "failure  domain player, root p, sequence ?" in out
    assert main(["events", "books", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "#1 malformed /: 0 events",
        "#2 malformed /: 0 events",
        "#3 malformed /: 0 events",
    ]
