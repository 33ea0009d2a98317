"""The seed-003 workflow on the poker example, against both real stores: failure context, read-only
fetch, replay of the fetched trace, speculation of aggregate / saga / process manager / flow."""

from __future__ import annotations

import glob
import importlib
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from prodture.cli import main as cli_main
from prodture.eventsourcing import (
    EventBook,
    EventPage,
    open_store,
    speculate,
    speculate_flow,
    speculate_process_manager,
    speculate_saga,
)
from prodture.eventsourcing import fetch as fetch_module
from prodture.recorder import DirectorySink
from prodture.replay import Replayer
from prodture.trace import read_trace

POKER = Path(__file__).resolve().parent.parent / "examples" / "poker"
PROG = [sys.executable, "-m", "prodture.cli"]


@pytest.fixture(params=["sqlite", "postgresql"])
def played(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A private copy of the poker example, its commands played through the coordinator on a
    real store (SQLite file or PostgreSQL database): (copy, store URL, traces folder)."""
    copy = tmp_path / "poker"
    shutil.copytree(
        POKER, copy, ignore=shutil.ignore_patterns("traces", "var", "fetched", "__pycache__")
    )
    for name in [m for m in sys.modules if m in ("poker", "run_table") or m.startswith("poker.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(copy))
    monkeypatch.chdir(copy)
    if request.param == "sqlite":
        url = f"sqlite:///{copy / 'var' / 'events.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    run_table = importlib.import_module("run_table")
    with open_store(url) as store:
        run_table.play(store, str(copy / "traces"))
    return copy, url, copy / "traces"


def _traces(folder: Path) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(str(folder / "*.prodtrace")))


def _rejected_bet(folder: Path) -> Path:
    return next(
        p
        for p in _traces(folder)
        if repr(read_trace(p).input).startswith(
            "PlaceBet(player_id='p-8', hand_id='h-1', amount=5000"
        )
    )


def _snapshot(url: str) -> tuple:
    with open_store(url, read_only=True) as store:
        return (
            store.position(),
            store._execute("SELECT count(*) FROM prodture_executions")[0][0],
            store.streams(),
            store.editions(),
        )


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli_main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _fetch(url: str, args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``prodture events fetch --store URL ARGS...``: (exit code, out, err)."""
    return _cli(["events", "fetch", "--store", url, *args], capsys)


def _fetch_hand_6(copy: Path, url: str, capsys: pytest.CaptureFixture[str]) -> list[Path]:
    """Every execution of the hand-6 flow, fetched by its correlation id into ``copy/hand``."""
    code, _, err = _fetch(url, ["--correlation-id", "hand-6", "--out", str(copy / "hand")], capsys)
    assert code == 0, err
    return _traces(copy / "hand")


def test_a_rejected_command_carries_its_failure_context(played, capsys, caplog) -> None:
    copy, url, traces = played
    trace = read_trace(_rejected_bet(traces))
    assert trace.header.meta["correlation_id"] == "bet-8"
    assert (trace.header.meta["domain"], trace.header.meta["root"]) == ("player", "p-8")
    code, out, _ = _cli(["show", str(_rejected_bet(traces))], capsys)
    assert code == 0
    assert out.splitlines()[-1] == (
        "failure  domain player, root p-8, sequence 3, correlation id bet-8: "
        "InsufficientChips: bet of 5000 with 400 chips"
    )
    code, out, _ = _cli(["show", "--json", str(_rejected_bet(traces))], capsys)
    assert __import__("json").loads(out)["failure_context"] == {
        "domain": "player",
        "root": "p-8",
        "sequence": 3,
        "correlation_id": "bet-8",
        "error": "InsufficientChips: bet of 5000 with 400 chips",
    }
    # The log record of a rejection carries the same context, as fields.
    flow = importlib.import_module("poker.flow")
    player = importlib.import_module("poker.player")
    with open_store(url) as store, caplog.at_level(logging.ERROR, "prodture.eventsourcing"):
        result = flow.coordinator(store).execute(
            player.PlaceBet("p-8", "h-1", 9999), correlation_id="again", raise_on_reject=False
        )
    assert not result.executions[0].outcome.ok
    record = caplog.records[-1]
    assert (record.prodture_domain, record.prodture_root, record.prodture_sequence) == (
        "player",
        "p-8",
        3,
    )
    assert (
        record.prodture_correlation_id == "again" and "InsufficientChips" in record.prodture_error
    )


def test_fetch_from_a_recorded_trace_then_replay_debug_fix_recheck(played, capsys) -> None:
    copy, url, traces = played
    before = _snapshot(url)
    out_path = copy / "fetched" / "bet.prodtrace"
    code, out, err = _fetch(
        url,
        [
            "--trace",
            str(_rejected_bet(traces)),
            "--out",
            str(out_path),
        ],
        capsys,
    )
    assert (code, err) == (0, "")
    assert "player/p-8 events 1..3" in out and "InsufficientChips" in out
    assert "s3cret" not in out
    fetched = read_trace(out_path)
    assert fetched.header.meta["fetched_from"].startswith(("sqlite:", "postgresql://prodture:***@"))
    assert [p.sequence for p in fetched.effects[0].result.pages] == [1, 2, 3]
    assert not fetched.outcome.ok
    code, out, _ = _cli(["replay", str(out_path)], capsys)
    assert code == 0 and out.startswith("reproduced:")
    assert _snapshot(url) == before


def test_fetch_by_stream_and_command_up_to_a_sequence(played, capsys) -> None:
    copy, url, _ = played
    out_path = copy / "fetched" / "p7.prodtrace"
    command = '{"type": "poker.PlaceBet", "player_id": "p-7", "hand_id": "h-2", "amount": 50}'
    code, out, err = _fetch(
        url,
        [
            "--domain",
            "player",
            "--root",
            "p-7",
            "--up-to",
            "2",
            "--handler",
            "poker.player:handle_player_command",
            "--command",
            command,
            "--out",
            str(out_path),
        ],
        capsys,
    )
    assert code == 0, err
    trace = read_trace(out_path)
    assert trace.outcome.value == {"chips": 400, "version": 3}
    assert [type(p.event).__name__ for p in trace.effects[0].result.pages] == [
        "ChipsDeposited",
        "FundsReserved",
    ]


def test_fetch_by_correlation_id_gives_every_execution_of_the_flow(played, capsys) -> None:
    copy, url, _ = played
    paths = _fetch_hand_6(copy, url, capsys)
    handlers = [read_trace(p).handler.rsplit(":", 1)[-1] for p in paths]
    assert handlers == [
        "handle_table_command",
        "HandFlow.handle",
        "handle_player_command",
        "handle_player_command",
        "HandFlow.handle",
        "HandFlow.handle",
        "handle_table_command",
    ]
    for path in paths:
        assert Replayer.from_file(path, cwd=str(copy)).run().reproduced, path
    # The blind of p-7, fetched: chips 400 → 400 (the bug), exactly as production had it.
    assert read_trace(paths[2]).outcome.value == {"chips": 400, "version": 3}


def test_a_fetch_cannot_write(played, capsys, monkeypatch) -> None:
    """The connection fetch uses refuses writes at the database level, and nothing changed."""
    copy, url, traces = played
    opened = []
    real_open = fetch_module.open_store

    def spy(u, **kw):
        store = real_open(u, **kw)
        opened.append((store, kw))
        return store

    monkeypatch.setattr(fetch_module, "open_store", spy)
    before = _snapshot(url)
    for args in (
        ["--trace", str(_rejected_bet(traces)), "--out", str(copy / "f.prodtrace")],
        ["--correlation-id", "hand-6", "--out", str(copy / "flow")],
    ):
        code, _, err = _fetch(url, args, capsys)
        assert code == 0, err
    assert [kw for _, kw in opened] == [{"read_only": True}] * 2
    store = real_open(url, read_only=True)
    conn = store._conn  # type: ignore[attr-defined]  # the concrete store's connection, past its checks
    with pytest.raises(Exception, match="(?i)read-?only"):
        conn.execute(
            "INSERT INTO prodture_editions (name, domain, divergence) VALUES ('x', 'y', 1)"
        )
        conn.commit()
    store.close()
    assert _snapshot(url) == before


def test_bad_input_is_one_line_and_never_shows_the_password(played, capsys, monkeypatch) -> None:
    copy, url, traces = played
    handler = [
        "--handler",
        "poker.player:handle_player_command",
        "--command",
        '{"type": "poker.PlaceBet", "player_id": "p-0", "hand_id": "h", "amount": 1}',
    ]
    code, _, err = _fetch(url, ["--domain", "player", "--root", "p-0", *handler], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "no stream player/p-0" in err and "p-7, p-8, p-9" in err
    code, _, err = _fetch(
        url,
        [
            "--domain",
            "player",
            "--root",
            "p-7",
            "--up-to",
            "9",
            *handler,
        ],
        capsys,
    )
    assert code == 2 and "has 3 events; --up-to 9" in err
    code, _, err = _fetch(
        url,
        [
            "--domain",
            "player",
            "--root",
            "p-7",
            "--handler",
            "poker.player:handle_player_command",
            "--command",
            '{"type": "poker.Nope"}',
        ],
        capsys,
    )
    assert code == 2 and "'poker.Nope' is not a registered dataclass" in err
    monkeypatch.delenv("PRODTURE_STORE", raising=False)
    code, _, err = _cli(["events", "streams", "--cwd", str(copy)], capsys)
    assert code == 2 and "pass --store URL, set PRODTURE_STORE" in err
    monkeypatch.setenv("PRODTURE_STORE", url)
    code, out, _ = _cli(["events", "streams"], capsys)
    assert code == 0 and "player/p-7  3 events" in out
    if url.startswith("postgresql"):
        password = url.split(":")[2].split("@")[0]
        wrong = url.replace(password, "wrong-" + password)
        code, out, err = _cli(["events", "streams", "--store", wrong], capsys)
        assert code == 2 and err.count("\n") == 1 and password not in err + out and ":***@" in err
    else:
        code, _, err = _cli(["events", "streams", "--store", str(copy / "nothing.db")], capsys)
        assert code == 2 and "no such event store file" in err


def test_an_unregistered_event_type_in_a_fetched_stream_names_the_fix(played, capsys) -> None:
    copy, url, traces = played
    with open_store(url) as store:
        store._write(
            lambda execute: execute(
                store._q(
                    "UPDATE prodture_events SET type = 'poker.Renamed' WHERE domain = 'player' AND root = 'p-8' AND sequence = 2"
                )
            )
        )
    code, _, err = _fetch(
        url,
        [
            "--trace",
            str(_rejected_bet(traces)),
            "--out",
            str(copy / "f.prodtrace"),
        ],
        capsys,
    )
    assert code == 2 and err.count("\n") == 1
    assert "event type 'poker.Renamed' (player/p-8 #2) is not registered" in err
    assert '@prodture.register(name="poker.Renamed")' in err


def test_speculation_of_aggregate_saga_process_manager_and_flow_persists_nothing(
    played, capsys
) -> None:
    copy, url, _ = played
    player = importlib.import_module("poker.player")
    table = importlib.import_module("poker.table")
    flow = importlib.import_module("poker.flow")
    before = _snapshot(url)
    with open_store(url, read_only=True) as store:

        def history(domain, root):
            return store.load(domain, root)

        # Aggregate: the bug, reproduced from production's events.
        bet = speculate(player.handle_player_command, player.PlaceBet("p-7", "h-2", 100), history)
        assert bet.outcome.value == {"chips": 400, "version": 4}
        assert bet.appended == {("player", "p-7"): (player.BetPlaced("h-2", 100),)}
        # Saga: source events + destination state → the commands it would send.
        p9 = store.load("player", "p-9")
        saga = speculate_saga(flow.SeatingSaga, p9, {("table", "t-1"): store.load("table", "t-1")})
        assert saga.commands == (table.SeatPlayer("t-1", "p-9", 800),)
        # Process manager: its own events + a domain event → commands and its new events.
        pm_events = store.load("pm-hand-flow", "hand-6")
        started = EventBook(
            "table", "t-1", (EventPage(9, table.HandStarted("h-2", ("p-7", "p-8"))),)
        )
        pm = speculate_process_manager(
            flow.HandFlow, EventBook("pm-hand-flow", "new", ()), started, correlation_id="new"
        )
        assert pm.commands == (player.PlaceBet("p-7", "h-2", 10), player.PlaceBet("p-8", "h-2", 20))
        assert pm.own_events == (flow.HandOpened("t-1", "h-2", ("p-7", "p-8")),)
        assert len(pm_events) == 3
        # The cross-domain flow: reserve → saga → the table refuses; nothing gives the chips back.
        result = speculate_flow(
            flow.coordinator(store), player.ReserveFunds("p-8", "t-1", 600), history
        )
        assert [(x.handler.rsplit(":", 1)[-1], x.outcome.ok) for x in result.executions] == [
            ("handle_player_command", True),
            ("SeatingSaga.handle", True),
            ("handle_table_command", False),
        ]
        assert "buy-in 600 is over the table's 500" in str(result.rejected[0].outcome.error)
        assert result.appended == [("player", "p-8", 4, player.FundsReserved("t-1", 600))]
    code, out, err = _cli(
        [
            "events",
            "speculate",
            "--store",
            url,
            "--flow",
            "poker.flow:coordinator",
            "--command",
            '{"type": "poker.ReserveFunds", "player_id": "p-8", "table_id": "t-1", "amount": 600}',
        ],
        capsys,
    )
    assert code == 0, err
    assert "REJECTED TableRefused: buy-in 600" in out and out.rstrip().endswith(
        "nothing was persisted"
    )
    assert _snapshot(url) == before


def test_the_coordinator_stamps_correlation_and_causation_and_records_each_execution(
    played,
) -> None:
    copy, url, traces = played
    with open_store(url, read_only=True) as store:
        flow_events = store.correlated("hand-6")
        executions = store.executions("hand-6")
    assert [(d, r, p.sequence, type(p.event).__name__) for d, r, p in flow_events] == [
        ("table", "t-1", 3, "HandStarted"),
        ("pm-hand-flow", "hand-6", 1, "HandOpened"),
        ("player", "p-7", 3, "BetPlaced"),
        ("player", "p-8", 3, "BetPlaced"),
        ("pm-hand-flow", "hand-6", 2, "BlindPosted"),
        ("pm-hand-flow", "hand-6", 3, "BlindPosted"),
        ("table", "t-1", 4, "CardsDealt"),
    ]
    # A command caused by an event names it; the event names the command execution that wrote it.
    assert [e.causation_id for e in executions][:3] == ["", "table/t-1#3", "table/t-1#3"]
    assert len({p.causation_id for _, _, p in flow_events}) == 7
    assert len(_traces(traces)) == 20
    assert all(read_trace(p).header.meta["correlation_id"] for p in _traces(traces))


def test_one_recorder_writes_every_execution_of_a_flow_each_with_its_own_ids(
    played, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One trace per component execution, each header naming its execution, all written by one
    recorder (one writer thread for the whole flow, not one per execution) before execute
    returns."""
    copy, url, _ = played
    flow = importlib.import_module("poker.flow")
    table = importlib.import_module("poker.table")
    writers: list[threading.Thread] = []
    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if thread.name == "prodture-trace-writer":
            writers.append(thread)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    with open_store(url) as store:
        service = flow.coordinator(store, sink=DirectorySink(str(copy / "one")))
        result = service.execute(table.StartHand("t-1", "h-2"), correlation_id="one")
        traces = [read_trace(p) for p in _traces(copy / "one")]  # on disk when execute returns
        service.close()
    assert len(result.executions) >= 4 and len(traces) == len(result.executions)
    assert len(writers) == 1 and not writers[0].is_alive()
    metas = [t.header.meta for t in traces]
    assert {m["correlation_id"] for m in metas} == {"one"}
    assert len({m["command_id"] for m in metas}) == len(traces)
    assert sorted(m["component"] for m in metas) == sorted(x.kind for x in result.executions)
    assert sorted((t.handler, repr(t.input)) for t in traces) == sorted(
        (x.handler, repr(x.input)) for x in result.executions
    )


def test_a_flow_in_an_edition_never_touches_main_and_fetches_in_it(played) -> None:
    copy, url, traces = played
    player = importlib.import_module("poker.player")
    flow = importlib.import_module("poker.flow")
    before = _snapshot(url)
    with open_store(url) as store:
        store.create_edition("debug-42", {"player": 2})
        service = flow.coordinator(store, edition="debug-42", sink=DirectorySink(str(copy / "dbg")))
        result = service.execute(player.PlaceBet("p-7", "h-9", 100), correlation_id="dbg")
        assert result.appended == [("player", "p-7", 3, player.BetPlaced("h-9", 100))]
        assert store.edition("debug-42").load("player", "p-7").head == 3
        assert [type(p.event).__name__ for _, _, p in store.edition_events("debug-42")] == [
            "BetPlaced"
        ]
        assert store.load("player", "p-7").head == 3
    # Fetching the flow replays it as it ran: in the edition, on the edition's view of history.
    fetched = fetch_module.fetch_flow(url, "dbg", out_dir=str(copy / "dbg-fetched"), cwd=str(copy))
    book = read_trace(fetched[0].path).effects[0].result
    assert (book.edition, book.head, fetched[0].outcome.value) == (
        "debug-42",
        2,
        {"chips": 400, "version": 3},
    )
    assert read_trace(fetched[0].path).header.meta["edition"] == "debug-42"
    with open_store(url) as store:
        assert store.delete_edition_events("debug-42") == 1
    after = _snapshot(url)
    assert after[2] == before[2] and after[3] == before[3]
    assert read_trace(_traces(copy / "dbg")[0]).header.meta["edition"] == "debug-42"


def test_the_run_script_records_against_the_sqlite_store(tmp_path: Path) -> None:
    copy = tmp_path / "poker"
    shutil.copytree(
        POKER, copy, ignore=shutil.ignore_patterns("traces", "var", "fetched", "__pycache__")
    )
    done = subprocess.run(
        [sys.executable, "run_table.py"], cwd=copy, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "REJECTED domain=player root=p-8 sequence=3 correlation_id=bet-8" in done.stdout
    assert os.path.isfile(copy / "var" / "events.db") and len(_traces(copy / "traces")) == 20


def test_a_projector_builds_a_read_model_from_delivered_events(played) -> None:
    """A projector is an effect handler too: its read-model writes are effects, recorded."""
    import dataclasses as dc

    from prodture.effects import Effect
    from prodture.eventsourcing import Delivery, Projector, reacts

    copy, url, _ = played
    player = importlib.import_module("poker.player")
    flow = importlib.import_module("poker.flow")

    @dc.dataclass(frozen=True)
    class PutRow(Effect, name="test.PutRow"):
        key: str
        value: int

    class BetsProjector(Projector):
        source = "player"

        @reacts(player.BetPlaced)
        def on_bet(self, delivery: Delivery):
            yield PutRow(f"{delivery.event.hand_id}/{delivery.root}", delivery.event.amount)

    rows: dict[str, int] = {}
    sink = DirectorySink(str(copy / "projected"))
    with open_store(url) as store:
        service = flow.coordinator(
            store, sink=sink, performers={PutRow: lambda e: rows.__setitem__(e.key, e.value)}
        )
        service.subscribe(BetsProjector)
        result = service.execute(player.PlaceBet("p-7", "h-3", 25), correlation_id="proj")
    assert rows == {"h-3/p-7": 25}
    assert [x.kind for x in result.executions] == ["aggregate", "process-manager", "projector"]
    traces = [read_trace(p) for p in _traces(copy / "projected")]
    projected = next(t for t in traces if t.header.meta["component"] == "projector")
    assert [e.type for e in projected.effects] == ["test.PutRow"]
    assert projected.input.event == player.BetPlaced("h-3", 25)


def test_event_books_of_a_trace_list_loaded_and_appended_pages(played, capsys) -> None:
    copy, url, _ = played
    blind = _fetch_hand_6(copy, url, capsys)[3]  # p-8's blind
    code, out, _ = _cli(["events", "books", str(blind), "--cwd", str(copy)], capsys)
    assert code == 0
    assert out.splitlines() == [
        "#1 loaded player/p-8: 2 events",
        "    [1] poker.ChipsDeposited",
        "    [2] poker.FundsReserved",
        "#2 appended player/p-8: 1 events",
        "    [3] poker.BetPlaced",
    ]
    code, out, _ = _cli(["events", "books", str(blind), "--json", "--cwd", str(copy)], capsys)
    books = __import__("json").loads(out)
    assert (
        books[0]["pages"][1]["correlation_id"] == "sit-5" and books[0]["pages"][1]["causation_id"]
    )
    assert books[1]["pages"][0]["event"]["fields"] == {"hand_id": "h-1", "amount": 20}


def test_editions_are_listed_and_deleted_from_the_command_line(played, capsys) -> None:
    copy, url, _ = played
    player = importlib.import_module("poker.player")
    flow = importlib.import_module("poker.flow")
    with open_store(url) as store:
        store.create_edition("debug-7", {"player": 2})
        flow.coordinator(store, edition="debug-7").execute(
            player.PlaceBet("p-7", "h-9", 5), correlation_id="d"
        )
    code, out, _ = _cli(["events", "editions", "--store", url], capsys)
    assert (code, out) == (0, "debug-7  1 events\n")
    code, out, _ = _cli(["events", "delete-edition", "--store", url, "debug-7"], capsys)
    assert (code, out) == (0, "deleted 1 events of edition debug-7\n")
    code, out, _ = _cli(["events", "editions", "--store", url], capsys)
    assert (code, out) == (0, "")
    code, _, err = _cli(["events", "delete-edition", "--store", url, ""], capsys)
    assert code == 2 and "main timeline cannot be deleted" in err
    with open_store(url, read_only=True) as store:
        assert store.head("player", "p-7") == 3
