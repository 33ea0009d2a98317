"""Traces with chosen ids and times, for the store tests (built with the real encoder)."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import subprocess
from typing import Any

import prodture
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
