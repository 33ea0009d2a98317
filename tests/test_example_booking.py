"""The FastAPI booking example end to end: uvicorn on 127.0.0.1, real httpx requests, a real
SQLite file and the payment service as a second uvicorn server; the failing request's trace
replayed by the CLI without either, and debugged through the DAP adapter."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adapter_support import start_session
from prodture.fastapi import TRACE_ID_HEADER
from prodture.trace import read_trace

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "booking"
APP = "booking/app.py"
_SOURCE = (EXAMPLE / APP).read_text().splitlines()
NOW_LINE = next(i for i, line in enumerate(_SOURCE, 1) if "now = await prodture.Now()" in line)
UPCOMING_LINE = NOW_LINE + 1  # the line that fails on the legacy row


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def uvicorn(
    app: str, cwd: Path, env: dict[str, str]
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """Serve ``app`` on a free port; yields its URL, its log file and its process. Waits (bounded) for the
    port to accept connections; the server is stopped on exit."""
    port = free_port()
    log = cwd / f"{app.replace(':', '_')}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{app} did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", log, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run the example once: four requests, then both servers stopped and the database deleted."""
    copy = tmp_path_factory.mktemp("booking") / "booking"
    shutil.copytree(
        EXAMPLE, copy, ignore=shutil.ignore_patterns("traces", "__pycache__", "*.sqlite")
    )
    responses = {}
    with uvicorn("booking.payments:app", copy, {}) as (payments, _, _):
        env = {
            "BOOKING_DB": str(copy / "booking.sqlite"),
            "BOOKING_TRACES": str(copy / "traces"),
            "BOOKING_PAYMENTS": payments,
        }
        with (
            uvicorn("booking.app:app", copy, env) as (url, log, _),
            httpx.Client(base_url=url) as c,
        ):
            body = {"guest": "ann@example.com", "starts": "2031-07-01T15:00:00+00:00", "nights": 2}
            responses["booked"] = c.post("/rooms/r1/bookings?promo=HALF", json=body)
            responses["legacy"] = c.get("/rooms/r2")
            responses["missing"] = c.post("/rooms/zz/bookings", json=body)
            responses["invalid"] = c.post("/rooms/r1/bookings", json={"guest": "x", "nights": 0})
            responses["status"] = c.get("/rooms/r1")
        log_text = log.read_text()
    (copy / "booking.sqlite").unlink()
    traces = {read_trace(p).header.trace_id: p for p in (copy / "traces").glob("*.prodtrace")}
    return {"dir": copy, "responses": responses, "log": log_text, "traces": traces}


def test_requests_are_served_and_recorded(served):
    r = served["responses"]
    assert r["booked"].status_code == 201 and r["booked"].json()["amount_cents"] == 12000
    assert r["booked"].json()["charge_id"].startswith("ch_")
    assert r["status"].json() == {"room": "r1", "upcoming": 1}  # the booking was committed
    assert r["missing"].status_code == 404 and r["missing"].json() == {"detail": "no room zz"}
    assert r["invalid"].status_code == 422  # FastAPI's validation, outside the handler
    recorded = {k for k in r if TRACE_ID_HEADER.lower() in r[k].headers}
    assert recorded == {"booked", "legacy", "missing", "status"}
    assert len(served["traces"]) == 4
    booked = read_trace(served["traces"][r["booked"].headers[TRACE_ID_HEADER]])
    assert [e.short_type for e in booked.effects] == [
        "Query",
        "GetEnv",
        "All",
        "NewUUID",
        "Execute",
    ]
    assert b"sk_test_booking" not in Path(booked.source).read_bytes()  # Authorization redacted


def test_the_failing_request_is_a_500_carrying_its_trace_id(served):
    legacy = served["responses"]["legacy"]
    trace_id = legacy.headers[TRACE_ID_HEADER]
    assert legacy.status_code == 500 and legacy.json()["trace_id"] == trace_id
    assert f"(trace {trace_id}): TypeError: can't compare offset-naive" in served["log"]
    trace = read_trace(served["traces"][trace_id])
    assert trace.input == {"room": "r2"} and not trace.outcome.ok


def test_every_trace_replays_without_database_or_payment_service(served):
    for path in served["traces"].values():
        done = subprocess.run(
            [sys.executable, "-m", "prodture.cli", "replay", str(path)],
            cwd=served["dir"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith("reproduced: booking.app:")
    assert not (served["dir"] / "booking.sqlite").exists()  # replay touched no database


def test_the_failing_trace_debugs_through_the_adapter(served):
    """A breakpoint on the failing line stops in the route's own frame with the recorded rows;
    step back reaches the line that asked for the time."""
    trace_id = served["responses"]["legacy"].headers[TRACE_ID_HEADER]
    source = served["dir"] / APP
    client = start_session(
        served["traces"][trace_id], served["dir"], breakpoints={str(source): [UPCOMING_LINE]}
    )
    try:
        client.stopped()
        frames = client.frames()
        assert frames[0]["line"] == UPCOMING_LINE and frames[0]["name"] == "room_status"
        assert frames[0]["source"]["path"] == str(source)
        assert all("prodture" not in (f.get("source") or {}).get("path", "") for f in frames)
        assert "2031-06-01T14:00:00" in client.evaluate("rows")
        assert client.evaluate("now.tzinfo is not None") == "True"
        client.stopped("stepBack")
        assert client.frames()[0]["line"] == NOW_LINE
    finally:
        client.close()
