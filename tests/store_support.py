"""Traces with chosen ids and times, for the store tests (built with the real encoder)."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import subprocess
from typing import Any

import prodture
from prodture.stores import summarize
from prodture.trace.format import TraceEncoder


@dataclasses.dataclass(frozen=True)
class Fetch(prodture.Effect, name="tests.store.Fetch"):
    key: str


class PaymentDeclined(Exception):
    pass


def make_trace(
    trace_id: str,
    *,
    ok: bool = True,
    started: _dt.datetime | None = None,
    handler: str = "tests.store:checkout",
    message: str = "card declined",
    meta: dict[str, Any] | None = None,
) -> bytes:
    enc = TraceEncoder()
    started = started or _dt.datetime.now(_dt.timezone.utc)
    data = enc.header(handler, trace_id=trace_id, started_at=started, meta=meta or {})
    data += enc.input({"order": 42})
    data += enc.effect(1, Fetch("cart"), True, {"total": 15}, 0, 1_000, None)
    if ok:
        return data + enc.outcome(True, "paid", "", None, 4_000_000)
    error = PaymentDeclined(message)
    data += enc.effect(2, Fetch("pay"), False, error, 2_000, 1_000, None)
    return data + enc.outcome(False, error, "Traceback ...", 2, 4_000_000)


def pg_ctl(cluster: Any, *args: str) -> None:
    """Run pg_ctl on ``cluster`` (as the server's user when root), e.g. to stop it mid-test."""
    from pg_cluster import _as_server_user

    subprocess.run(
        _as_server_user([str(cluster.bin_dir / "pg_ctl"), "-D", str(cluster.data_dir), *args]),
        check=True,
        capture_output=True,
        timeout=180,
        env={**os.environ},
    )


def stop_server(cluster: Any) -> None:
    pg_ctl(cluster, "-m", "fast", "-w", "stop")


def start_server(cluster: Any) -> None:
    root = cluster.data_dir.parent
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={cluster.port} "
        f"-c unix_socket_directories={root} -c fsync=off"
    )
    pg_ctl(cluster, "-l", str(root / "server.log"), "-o", options, "-w", "-t", "120", "start")


NOW = _dt.datetime.now(_dt.timezone.utc)
IDS = {
    "old_ok": "aa" + "0" * 30,
    "old_fail": "ab" + "1" * 30,
    "new_fail": "abc" + "2" * 29,
    "new_ok": "abd" + "3" * 29,
    "other": "f0" + "4" * 30,
}


def fill(store) -> None:
    traces = [
        make_trace(IDS["old_ok"], started=NOW - _dt.timedelta(days=10)),
        make_trace(IDS["old_fail"], ok=False, started=NOW - _dt.timedelta(days=9)),
        make_trace(
            IDS["new_fail"],
            ok=False,
            started=NOW - _dt.timedelta(minutes=5),
            message="insufficient funds",
            meta={"otel.trace_id": "0AF7651916CD43DD8448EB211C80319C", "service": "shop"},
        ),
        make_trace(IDS["new_ok"], started=NOW - _dt.timedelta(minutes=4)),
        make_trace(
            IDS["other"], started=NOW - _dt.timedelta(minutes=3), handler="tests.store:refund"
        ),
    ]
    assert store.put_many([(summarize(d), d) for d in traces]) == 5
    assert store.put_many([(summarize(traces[0]), traces[0])]) == 0  # already there
