"""The Flask (WSGI) integration: a view's body is a prodture handler, served by Flask's test
client."""

from __future__ import annotations

import contextlib
import dataclasses
import logging

import pytest

flask = pytest.importorskip("flask")  # the `flask` extra; in the `test` extra too

from werkzeug.exceptions import abort  # noqa: E402 -- flask (and so werkzeug) is optional

import prodture  # noqa: E402
from prodture import ALWAYS, ON_FAILURE, Effect, MemorySink, Recorder, Replayer, read_trace  # noqa: E402
from prodture.flask import TRACE_ID_HEADER, Prodture  # noqa: E402
from prodture.scope import resources  # noqa: E402
from prodture.web import Rejected  # noqa: E402


@dataclasses.dataclass(frozen=True)
class RoomPrice(Effect, name="test_flask.RoomPrice"):
    room: str


@dataclasses.dataclass(frozen=True)
class Save(Effect, name="test_flask.Save"):
    room: str
    total: int


@prodture.register(name="test_flask.SoldOut")
class SoldOut(Exception):
    pass


PRICES = {"r1": 100, "r2": 0}


def save(effect: Save) -> int:
    db = resources()["db"]
    db.append((effect.room, effect.total))
    return len(db)


def make_app(mode=ALWAYS):
    sink = MemorySink()
    committed: list = []
    exits: list = []

    @contextlib.contextmanager
    def transaction(request):
        pending: list = []
        try:
            yield {"db": pending, "path": request.path}
        except BaseException as error:
            exits.append(type(error).__name__)  # rolled back: pending is dropped
            raise
        committed.extend(pending)

    pt = Prodture(
        {RoomPrice: lambda e: PRICES[e.room], Save: save},
        recorder=Recorder(sink, mode=mode),
        expected=(SoldOut,),
        resources=transaction,
    )
    app = flask.Flask(__name__)

    @app.errorhandler(SoldOut)
    def sold_out(error):
        return {"detail": f"sold out: {error}"}, 409

    @app.errorhandler(404)
    def not_found(error):
        return {"detail": error.description}, 404

    @app.post("/rooms/<room>/bookings")
    @pt.route(name="test_flask:book")
    def book(room, body, query):
        if room == "gone":
            abort(404, "no such room")
        if room == "full":
            yield Save(room, 1)  # written, then the answer is "sold out": rolled back
            raise SoldOut(room)
        price = yield RoomPrice(room)
        per_night = 100 // price  # ZeroDivisionError for a free room: the bug
        total = per_night * body["nights"] * price - int(query.get("discount", 0))
        booking_id = yield Save(room, total)
        return {"id": booking_id, "guest": body["guest"], "total": total}

    return app, sink, committed, exits


def test_success_records_url_values_body_and_query_and_replays():
    app, sink, committed, exits = make_app()
    r = app.test_client().post("/rooms/r1/bookings?discount=5", json={"guest": "ann", "nights": 2})
    assert r.status_code == 200 and r.get_json() == {"id": 1, "guest": "ann", "total": 195}
    assert committed == [("r1", 195)] and exits == []
    trace = read_trace(sink.traces[0])
    assert r.headers[TRACE_ID_HEADER] == trace.header.trace_id
    assert trace.handler == "test_flask:book"
    assert trace.input == {
        "room": "r1",
        "body": {"guest": "ann", "nights": 2},
        "query": {"discount": "5"},
    }
    replayed = Replayer(trace, prodture.runtime.handlers["test_flask:book"]).run()
    assert replayed.reproduced and replayed.outcome.value["total"] == 195


def test_unexpected_failure_is_a_500_with_the_trace_id_logged_and_rolled_back(caplog):
    app, sink, committed, exits = make_app()
    with caplog.at_level(logging.ERROR, logger="prodture.flask"):
        r = app.test_client().post("/rooms/r2/bookings", json={"guest": "bob", "nights": 1})
    assert r.status_code == 500
    trace = read_trace(sink.traces[0])
    assert r.headers[TRACE_ID_HEADER] == trace.header.trace_id == r.get_json()["trace_id"]
    assert not trace.outcome.ok and isinstance(trace.outcome.error, ZeroDivisionError)
    assert committed == [] and exits == ["ZeroDivisionError"]
    [record] = [r for r in caplog.records if r.name == "prodture.flask"]
    assert record.trace_id == trace.header.trace_id and trace.header.trace_id in record.getMessage()
    assert "POST /rooms/r2/bookings failed in test_flask:book" in record.getMessage()
    # the logged traceback is the handler's own: no runtime frames
    assert "per_night = 100 // price" in caplog.text and "runtime.py" not in caplog.text
    replayed = Replayer(trace, prodture.runtime.handlers["test_flask:book"]).run()
    assert replayed.reproduced and isinstance(replayed.outcome.error, ZeroDivisionError)


def test_expected_errors_reach_flasks_error_handlers_and_are_not_failures():
    """abort(404) and a configured expected error are answered by Flask's error handlers; in
    ON_FAILURE mode they leave no trace; their writes roll back."""
    app, sink, committed, exits = make_app(mode=ON_FAILURE)
    client = app.test_client()
    gone = client.post("/rooms/gone/bookings", json={"guest": "d", "nights": 1})
    full = client.post("/rooms/full/bookings", json={"guest": "d", "nights": 1})
    assert gone.status_code == 404 and gone.get_json() == {"detail": "no such room"}
    assert full.status_code == 409 and full.get_json() == {"detail": "sold out: full"}
    assert TRACE_ID_HEADER not in gone.headers  # nothing recorded, no id to give
    assert sink.traces == [] and committed == [] and exits == ["NotFound", "SoldOut"]


def test_expected_error_is_recorded_as_a_rejection_with_the_trace_id_header_and_replays():
    app, sink, _, _ = make_app()
    gone = app.test_client().post("/rooms/gone/bookings", json={"guest": "d", "nights": 1})
    assert gone.status_code == 404 and gone.get_json() == {"detail": "no such room"}
    trace = read_trace(sink.traces[0])
    assert gone.headers[TRACE_ID_HEADER] == trace.header.trace_id  # on the error handler's answer
    assert trace.outcome.ok and trace.outcome.value == Rejected("NotFound", 404, "no such room")
    assert Replayer(trace, prodture.runtime.handlers["test_flask:book"]).run().reproduced


def test_a_view_that_is_not_a_generator_is_refused_with_the_fix():
    pt = Prodture()
    with pytest.raises(TypeError, match="needs a generator function.*prodture.fastapi"):

        @pt.route
        async def view():
            return 1

    with pytest.raises(TypeError, match="a view with no effect: leave it undecorated"):

        @pt.route
        def plain():
            return 1
