"""The recorder without the GIL (the free-threaded build, PEP 703): the two steps the GIL makes
atomic, a trace's ``records`` shared by the handler and the writer and the count of executions
started, are taken under locks there. The locked path is forced here (the module's choice
patched) and run through the concurrent tests: every record written once, in order, whole; every
start counted once. On a GIL build that shows the locked path does what the plain one does; on a
free-threaded build (python3.13t) these and the other recorder tests run it for real. The GIL
build keeps the plain types (nothing added to the handler's path)."""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest

import test_recorder_writer as writer_tests
from prodture import recorder as recorder_module
from prodture.recorder import _LockedCount, _LockedRecords


@pytest.fixture
def locked(monkeypatch) -> list[_LockedRecords]:
    """The free-threaded build's types for records and starts; the records made, to check the
    locked path was the one taken."""
    made: list[_LockedRecords] = []

    def records() -> _LockedRecords:
        made.append(_LockedRecords())
        return made[-1]

    monkeypatch.setattr(recorder_module, "_Records", records)
    monkeypatch.setattr(recorder_module, "_Count", _LockedCount)
    return made


def test_the_gil_build_keeps_the_plain_types_and_the_free_threaded_one_locks():
    """The choice follows ``sys._is_gil_enabled()``: the plain ``bytearray`` and
    ``itertools.count`` with the GIL (the handler's path unchanged), the locked ones without."""
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    assert recorder_module._FREE_THREADED is (not gil)
    if gil:
        assert recorder_module._Records is bytearray
        assert recorder_module._Count.__name__ == "count"
    else:
        assert recorder_module._Records is _LockedRecords
        assert recorder_module._Count is _LockedCount


class Watched:
    """A lock that notes the records' contents when taken and when released."""

    def __init__(self, records: bytearray) -> None:
        self.records = records
        self.seen: list[tuple[bytes, bytes]] = []

    def __enter__(self) -> None:
        self.entered = bytes(bytearray(self.records))  # (a plain copy: not through the lock)

    def __exit__(self, *exc: Any) -> None:
        self.seen.append((self.entered, bytes(bytearray(self.records))))


def test_each_step_on_locked_records_changes_them_only_while_the_lock_is_held():
    """The handler's append, the writer's copy and removal of a prefix, and a clear each happen
    inside one hold of the records' lock (the contents change between taking and releasing it,
    never outside), and do what the plain bytearray does."""
    records = _LockedRecords()
    watched = records.lock = Watched(records)  # type: ignore[assignment]
    records += b"abc"  # the handler's appends
    records += b"de"
    data = bytes(records)  # the writer's copy...
    assert len(records) == 5 and records
    del records[: len(data) - 2]  # ...and removal of what it copied (here, less)
    records.clear()  # a trace given up on
    assert data == b"abcde" and not records and type(records) is _LockedRecords
    assert watched.seen == [
        (b"", b"abc"),
        (b"abc", b"abcde"),
        (b"abcde", b"abcde"),  # bytes()
        (b"abcde", b"abcde"),  # len()
        (b"abcde", b"abcde"),  # truth (len)
        (b"abcde", b"de"),  # del [:3]
        (b"de", b""),  # clear()
        (b"", b""),  # truth (len)
    ]


def test_a_locked_count_gives_every_thread_distinct_numbers():
    """``next()`` of the starts count from many threads at once: every number once."""
    count = _LockedCount()
    taken: list[list[int]] = [[] for _ in range(8)]

    def take(mine: list[int]) -> None:
        for _ in range(5_000):
            mine.append(next(count))

    threads = [threading.Thread(target=take, args=(mine,)) for mine in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    numbers = sorted(n for mine in taken for n in mine)
    assert numbers == list(range(8 * 5_000))


@pytest.mark.parametrize("sink_kind", ["directory", "writes"])
def test_streaming_through_locked_records_writes_every_record_once_in_order(
    locked, tmp_path, sink_kind
):
    """The streaming test (the handler appends while the writer copies and removes, the GIL
    handed over every 10 µs) on the locked path: the trace reads back complete, every record
    once, in order, each write whole records."""
    writer_tests.test_a_running_execution_streamed_while_it_appends_is_written_whole_in_order_once(
        tmp_path, sink_kind
    )
    assert locked  # the traces' records were the locked ones


@pytest.mark.parametrize("first_records", ["encoded-at-once", "kept-then-past-flush-interval"])
def test_a_long_execution_streamed_through_locked_records_is_on_disk_while_it_runs(
    locked, tmp_path, first_records
):
    """A long execution streamed to its file while it runs, on the locked path."""
    writer_tests.test_a_long_execution_is_streamed_to_its_file_while_it_runs(
        tmp_path, first_records
    )
    assert locked


@pytest.mark.parametrize("mode", ["always", "on-failure"])
def test_traces_started_is_exact_with_the_locked_count(locked, mode):
    """Threads starting executions while others read ``stats``: every read between those
    finished and those started, never backwards, every start counted (the locked count)."""
    writer_tests.test_traces_started_is_exact_while_threads_start_and_read_it(mode)
