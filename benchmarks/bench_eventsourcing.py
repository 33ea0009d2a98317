"""Benchmarks of event sourcing: fold, speculation, read-only fetch, concurrent appends.

    python benchmarks/bench_eventsourcing.py [--repeat N] [--no-postgres] [--no-pypi]

One line per figure, ``name: value`` (median of repeated runs; details and the goal follow in
parentheses):

- ``es_fold_vs_bare``          folding 100,000 events through ``@applies`` (``Aggregate.rehydrate``)
                               ÷ a bare loop calling the same reducers through a dict; goal ≤ 1.5
- ``es_speculate_10k_ms``      ``speculate()`` of one command on a 10,000-event aggregate (the
                               events already fetched); goal ≤ 50 ms
- ``es_fetch_100k_sqlite_s``   ``fetch_command``: read-only open, load 100,000 events of one stream,
                               decode, run the command, write the trace file; goal ≤ 1.5 s
- ``es_fetch_100k_pg_s``       the same on PostgreSQL (a throwaway cluster, tests/pg_cluster.py)
- ``es_append_pg_events_per_s`` 8 writers (8 connections, 8 threads), each appending one event per
                               transaction to its own stream, for a fixed count
- ``es_append_pg_one_stream_events_per_s`` the same 8 writers racing on ONE stream (each conflict
                               reloads and retries): committed events per second
- ``pypi_eventsourcing_fold_vs_prodture`` and ``pypi_eventsourcing_fetch_vs_prodture`` (when the
                               ``eventsourcing`` package is installed): its reconstruction of the
                               same 100,000 events from the same kind of store ÷ prodture's
                               (``store.load`` + ``rehydrate``), measured side by side in one run
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import prodture  # noqa: E402
from prodture.eventsourcing import (  # noqa: E402
    Aggregate,
    AppendStream,
    ConcurrencyConflict,
    EventBook,
    EventPage,
    LoadStream,
    applies,
    handles,
    open_store,
    speculate,
)
from prodture.eventsourcing.fetch import fetch_command  # noqa: E402


@prodture.register(name="bench.Deposited")
@dataclasses.dataclass(frozen=True)
class Deposited:
    amount: int


@prodture.register(name="bench.Withdrawn")
@dataclasses.dataclass(frozen=True)
class Withdrawn:
    amount: int


@prodture.register(name="bench.Withdraw")
@dataclasses.dataclass(frozen=True)
class Withdraw:
    account: str
    amount: int


class Account(Aggregate):
    def __init__(self) -> None:
        super().__init__()
        self.balance = 0

    @handles(Withdraw)
    def withdraw(self, command: Withdraw) -> list:
        if command.amount > self.balance:
            raise ValueError("insufficient funds")
        return [Withdrawn(command.amount)]

    @applies(Deposited)
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount

    @applies(Withdrawn)
    def _withdrawn(self, event: Withdrawn) -> None:
        self.balance -= event.amount


@prodture.handler(name="bench:handle_account")
def handle_account(command: Withdraw):
    book = yield LoadStream("account", command.account)
    account = Account.rehydrate(book)
    events = account.execute(command)
    yield AppendStream("account", command.account, book.head, tuple(events))
    return account.balance


def _events(n: int) -> list[Any]:
    return [Deposited(3) if i % 3 else Withdrawn(1) for i in range(n)]


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def _line(name: str, value: float, detail: str) -> None:
    print(f"{name}: {value:.3g} ({detail})", flush=True)


def bench_fold(repeat: int) -> None:
    events = _events(100_000)
    reducers = {Deposited: Account._deposited, Withdrawn: Account._withdrawn}
    folds, bares = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        a = Account.rehydrate(events)
        folds.append(time.perf_counter() - t)
        t = time.perf_counter()
        b = Account()
        for event in events:
            reducers[type(event)](b, event)
            b.version += 1
        bares.append(time.perf_counter() - t)
        assert a.balance == b.balance and a.version == b.version == len(events)
    ratio = _median(folds) / _median(bares)
    _line(
        "es_fold_vs_bare",
        ratio,
        f"fold {_median(folds) * 1e3:.1f} ms / bare loop {_median(bares) * 1e3:.1f} ms, 100,000 events, "
        f"median of {repeat}; goal ≤ 1.5",
    )


def bench_speculate(repeat: int) -> None:
    book = EventBook(
        "account", "a", tuple(EventPage(i, e) for i, e in enumerate(_events(10_000), 1))
    )
    samples = []
    for _ in range(repeat * 5):
        t = time.perf_counter()
        result = speculate(handle_account, Withdraw("a", 5), {("account", "a"): book})
        samples.append(time.perf_counter() - t)
        assert result.outcome.ok and result.would_append == (Withdrawn(5),)
    _line(
        "es_speculate_10k_ms",
        _median(samples) * 1e3,
        f"p95 {sorted(samples)[int(len(samples) * 0.95)] * 1e3:.1f} ms, {len(samples)} runs; goal ≤ 50",
    )


def _seed(url: str, n: int) -> None:
    events = _events(n)
    with open_store(url) as store:
        head = 0
        for start in range(0, n, 5000):
            head = store.append("account", "a", head, events[start : start + 5000])


def bench_fetch(url: str, name: str, repeat: int, where: str) -> None:
    _seed(url, 100_000)
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            out = os.path.join(tmp, f"f{i}.prodtrace")
            t = time.perf_counter()
            fetched = fetch_command(
                url, handle_account, Withdraw("a", 5), domain="account", root="a", out=out
            )
            samples.append(time.perf_counter() - t)
            assert fetched.sequence == 100_000 and fetched.outcome.ok
        size = os.path.getsize(out)
        # Not timed: the trace measured is one every reader opens (its whole book, decoded).
        assert len(prodture.read_trace(out).effects[0].result) == 100_000
    _line(
        name,
        _median(samples),
        f"100,000 events → a {size / 1e6:.1f} MB trace, {where}, median of {repeat}; goal ≤ 1.5 s",
    )


def bench_append(url: str, per_writer: int) -> None:
    writers = 8
    stores = [open_store(url) for _ in range(writers)]
    barrier = threading.Barrier(writers + 1)

    def own_stream(i: int) -> None:
        barrier.wait()
        for k in range(per_writer):
            stores[i].append("load", f"w{i}", k, [Deposited(k)])

    threads = [threading.Thread(target=own_stream, args=(i,)) for i in range(writers)]
    for th in threads:
        th.start()
    barrier.wait()
    t = time.perf_counter()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    _line(
        "es_append_pg_events_per_s",
        writers * per_writer / elapsed,
        f"8 writers × {per_writer} one-event transactions, each on its own stream",
    )
    conflicts = [0] * writers
    committed = [0] * writers
    stop = threading.Event()

    def one_stream(i: int) -> None:
        barrier.wait()
        while not stop.is_set():
            head = stores[i].load("race", "r").head
            try:
                stores[i].append("race", "r", head, [Deposited(i)])
                committed[i] += 1
            except ConcurrencyConflict:
                conflicts[i] += 1

    threads = [threading.Thread(target=one_stream, args=(i,)) for i in range(writers)]
    for th in threads:
        th.start()
    barrier.wait()
    t = time.perf_counter()
    time.sleep(3.0)
    stop.set()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    book = stores[0].load("race", "r")
    assert [p.sequence for p in book.pages] == list(range(1, sum(committed) + 1))
    _line(
        "es_append_pg_one_stream_events_per_s",
        sum(committed) / elapsed,
        f"8 writers racing on one stream for 3 s: {sum(committed)} committed, {sum(conflicts)} conflicts, none lost",
    )
    for s in stores:
        s.close()


def bench_pypi(sqlite_url: str, repeat: int) -> None:
    try:
        from eventsourcing.application import Application
        from eventsourcing.domain import Aggregate as EsAggregate
        from eventsourcing.domain import event
    except ImportError:
        print("# SKIPPED pypi_eventsourcing_*: pip install eventsourcing to compare", flush=True)
        return

    class EsAccount(EsAggregate):
        @event("Opened")
        def __init__(self) -> None:
            self.balance = 0

        @event("Deposited")
        def deposit(self, amount: int) -> None:
            self.balance += amount

        @event("Withdrawn")
        def withdraw(self, amount: int) -> None:
            self.balance -= amount

    n = 100_000
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": os.path.join(tmp, "es.db"),
        }
        app = Application(env=env)
        account = EsAccount()
        for i in range(n - 1):
            if i % 3:
                account.deposit(3)
            else:
                account.withdraw(1)
            if len(account.pending_events) >= 5000:
                app.save(account)
        app.save(account)
        es_fetch, es_fold, pt_fetch, pt_fold = [], [], [], []
        stored = list(app.events.get(account.id))
        events = _events(n)
        with open_store(sqlite_url, read_only=True) as store:
            for _ in range(repeat):
                t = time.perf_counter()
                again = app.repository.get(account.id)
                es_fetch.append(time.perf_counter() - t)
                t = time.perf_counter()
                folded = None
                for e in stored:
                    folded = e.mutate(folded)
                es_fold.append(time.perf_counter() - t)
                t = time.perf_counter()
                mine = Account.rehydrate(store.load("account", "a"))
                pt_fetch.append(time.perf_counter() - t)
                t = time.perf_counter()
                Account.rehydrate(events)
                pt_fold.append(time.perf_counter() - t)
        assert again.version == n and folded.balance == again.balance
        assert mine.version == n
    _line(
        "pypi_eventsourcing_fold_vs_prodture",
        _median(es_fold) / _median(pt_fold),
        f"eventsourcing {_median(es_fold) * 1e3:.0f} ms / prodture {_median(pt_fold) * 1e3:.0f} ms, "
        "100,000 decoded events folded, side by side",
    )
    _line(
        "pypi_eventsourcing_fetch_vs_prodture",
        _median(es_fetch) / _median(pt_fetch),
        f"eventsourcing repository.get {_median(es_fetch) * 1e3:.0f} ms / prodture load+rehydrate "
        f"{_median(pt_fetch) * 1e3:.0f} ms, 100,000 events from SQLite, side by side",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-pypi", action="store_true")
    args = parser.parse_args()
    print(f"# Python {sys.version.split()[0]} ({sys.executable})", flush=True)
    bench_fold(args.repeat)
    bench_speculate(args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite:///{tmp}/events.db"
        bench_fetch(sqlite_url, "es_fetch_100k_sqlite_s", args.repeat, "SQLite file")
        if not args.no_pypi:
            bench_pypi(sqlite_url, args.repeat)
    if args.no_postgres:
        return 0
    from pg_cluster import find_bin_dir, running_cluster

    if find_bin_dir() is None:
        print("# SKIPPED es_*_pg_*: PostgreSQL server not installed (make postgres-server)")
        return 0
    with running_cluster() as cluster:
        url = cluster.create_database(f"bench_{uuid.uuid4().hex[:8]}")
        bench_fetch(url, "es_fetch_100k_pg_s", args.repeat, "PostgreSQL on localhost")
        bench_append(cluster.create_database(f"bench_{uuid.uuid4().hex[:8]}"), 250)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
