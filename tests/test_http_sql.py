"""Ready-made effects: prodture.http against a real HTTP server on 127.0.0.1 (httpx, sync and
async), prodture.sql against a real SQLite file and a real PostgreSQL (psycopg 3)."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import prodture
from prodture import Interpreter, MemorySink, Recorder, Replayer, http, read_trace, sql
from prodture.trace.codec import REDACTED


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 -- http.server's name
        if self.path.startswith("/missing"):
            self._send(404, {"error": "no such thing"})
        elif self.path.startswith("/broken"):
            self._send(503, {"error": "down"})
        else:
            self._send(
                200,
                {"auth": self.headers.get("Authorization"), "cookie": self.headers.get("Cookie")},
                cookie="session=s3cr3t-session",
            )

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._send(201, {"got": body})

    def _send(self, status, payload, cookie=None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if cookie:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def fetch(base):
    reply = yield http.get(
        f"{base}/me", headers={"Authorization": "Bearer tok-XYZ", "Cookie": "c=cookie-ABC"}
    )
    created = yield http.post(f"{base}/things", json={"name": "lamp"})
    try:
        yield http.get(f"{base}/missing/1")
    except http.ClientError as e:
        missing = e.status_code
    return {"me": reply.json(), "created": created.json(), "missing": missing}


def test_http_sync_records_without_secret_headers_and_replays(server):
    sink = MemorySink()
    outcome = Interpreter(http.performers(), recorder=Recorder(sink)).run(fetch, server)
    assert outcome.ok, outcome
    assert outcome.value == {
        "me": {"auth": "Bearer tok-XYZ", "cookie": "c=cookie-ABC"},  # the server got them
        "created": {"got": {"name": "lamp"}},
        "missing": 404,
    }
    data = sink.traces[0]
    # (the test server echoes the request's secrets in its body; headers are what is redacted)
    trace = read_trace(data)
    first = trace.effects[0]
    assert first.request["secret_headers"] is REDACTED
    assert first.result.secret_headers is REDACTED and "set-cookie" not in {
        k.lower() for k in first.result.headers
    }
    assert b"s3cr3t-session" not in data  # Set-Cookie never reaches the file
    assert isinstance(trace.effects[2].error, http.ClientError)
    assert trace.effects[2].error.status_code == 404
    result = Replayer(trace, fetch).run()
    assert result.reproduced and result.outcome.value == outcome.value


def test_redaction_holds_even_with_no_recorder_patterns(server):
    """Secret headers are in a prodture.secret field: redacted whatever the patterns are."""

    def only_auth(base):
        token = "-".join(["tok", "XYZ"])  # not a literal: the traceback quotes this line
        yield http.get(f"{base}/missing", headers={"Authorization": token})

    sink = MemorySink()
    Interpreter(http.performers(), recorder=Recorder(sink, redact=[])).run(only_auth, server)
    assert b"tok-XYZ" not in sink.traces[0]
    trace = read_trace(sink.traces[0])
    assert isinstance(trace.outcome.error, http.ClientError)


def test_http_async_with_gather_and_server_errors(server):
    async def both(base):
        a, b = await prodture.gather(http.get(f"{base}/a"), http.get(f"{base}/b"))
        try:
            await http.get(f"{base}/broken")
        except http.ServerError as e:
            return [a.status_code, b.status_code, e.status_code]

    sink = MemorySink()

    async def main():
        return await Interpreter(http.async_performers(), recorder=Recorder(sink)).run_async(
            both, server
        )

    outcome = asyncio.run(main())
    assert outcome.ok and outcome.value == [200, 200, 503]
    assert Replayer(read_trace(sink.traces[0]), both).run().reproduced


def test_transport_error_is_registered_and_replays():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there

    def refused(_):
        yield http.get(f"http://127.0.0.1:{port}/", timeout=5)

    sink = MemorySink()
    outcome = Interpreter(http.performers(), recorder=Recorder(sink)).run(refused, None)
    assert isinstance(outcome.error, http.TransportError) and outcome.error.kind == "ConnectError"
    result = Replayer(read_trace(sink.traces[0]), refused).run()
    assert result.reproduced and isinstance(result.outcome.error, http.TransportError)


# -- SQL --------------------------------------------------------------------------------------


def book(request):
    taken = yield sql.query("SELECT id, guest FROM bookings WHERE room = ?", (request["room"],))
    if taken:
        raise ValueError(f"room {request['room']} taken by {taken[0]['guest']}")
    done = yield sql.execute(
        "INSERT INTO bookings (room, guest) VALUES (?, ?)", (request["room"], request["guest"])
    )
    if request["guest"] == "crash":
        raise RuntimeError("after the insert")
    return done.lastrowid


def test_sqlite_rows_as_dicts_transactions_and_replay(tmp_path):
    path = tmp_path / "db.sqlite"
    setup = sqlite3.connect(path)
    setup.execute("CREATE TABLE bookings (id INTEGER PRIMARY KEY, room TEXT, guest TEXT)")
    setup.commit()
    setup.close()
    sink = MemorySink()
    interp = Interpreter(sql.performers(), recorder=Recorder(sink))

    def run(request):
        conn = sqlite3.connect(path)
        try:
            return sql.run_in_transaction(interp, book, request, conn)
        finally:
            conn.close()

    assert run({"room": "r1", "guest": "ann"}).value == 1
    crashed = run({"room": "r2", "guest": "crash"})
    assert not crashed.ok
    taken = run({"room": "r1", "guest": "bob"})
    assert "taken by ann" in str(taken.error)
    rows = sqlite3.connect(path).execute("SELECT room, guest FROM bookings").fetchall()
    assert rows == [("r1", "ann")]  # the crashed booking was rolled back
    trace = read_trace(sink.traces[2])
    assert trace.effects[0].result == [{"id": 1, "guest": "ann"}]
    assert Replayer(trace, book).run().reproduced  # no database needed


def test_without_a_connection_the_performer_says_where_it_comes_from():
    outcome = Interpreter(sql.performers()).run(book, {"room": "r", "guest": "g"})
    assert isinstance(outcome.error, LookupError) and "resources_scope" in str(outcome.error)


def test_psycopg_sync_and_async(postgres_url):
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bookings (id SERIAL PRIMARY KEY, room TEXT, guest TEXT)")

    def pg_book(request):
        taken = yield sql.query("SELECT guest FROM bookings WHERE room = %s", (request["room"],))
        yield sql.execute(
            "INSERT INTO bookings (room, guest) VALUES (%s, %s)",
            (request["room"], request["guest"]),
        )
        if request["guest"] == "crash":
            raise RuntimeError("after the insert")
        return [row["guest"] for row in taken]

    sink = MemorySink()
    interp = Interpreter(sql.performers(), recorder=Recorder(sink))
    with psycopg.connect(postgres_url) as conn:
        assert sql.run_in_transaction(interp, pg_book, {"room": "a", "guest": "x"}, conn).ok
        assert not sql.run_in_transaction(interp, pg_book, {"room": "a", "guest": "crash"}, conn).ok

    async def main():
        async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
            return await sql.run_in_transaction_async(
                interp, pg_book, {"room": "a", "guest": "y"}, conn
            )

    outcome = asyncio.run(main())
    assert outcome.ok and outcome.value == ["x"]  # "crash" was rolled back
    with psycopg.connect(postgres_url) as conn:
        guests = [r[0] for r in conn.execute("SELECT guest FROM bookings ORDER BY id")]
    assert guests == ["x", "y"]
    assert Replayer(read_trace(sink.traces[-1]), pg_book).run().reproduced
