"""Flask (WSGI) integration: a view's body is a prodture handler.

::

    pt = Prodture(performers={...}, recorder=Recorder(sink, mode=ON_FAILURE))

    @app.post("/bookings/<room>")
    @pt.route
    def book(room, body, query):
        price = yield QuoteRoom(room, body["nights"])   # effects, as in any generator handler
        ...

* The recorded input is a dict of the view's parameters: its URL variables, ``body`` (the request's
  JSON, ``request.get_json(silent=True)``) and ``query`` (``request.args`` as a dict of first
  values) when the view has parameters of those names. The view reads nothing else of
  ``flask.request``: replay has no request.
* werkzeug ``HTTPException`` below 500 (``abort(404)``) and the ``expected`` exception types are
  answers, not failures: recorded as a :class:`~prodture.web.Rejected` value (ON_FAILURE keeps
  no trace of a 404) and re-raised for Flask's error handlers.
* Any other failure becomes a 500 whose JSON body and ``X-Prodture-Trace-Id`` header carry the
  trace id (every recorded response carries the header), logged on the ``prodture.flask``
  logger with that id and the handler's own traceback (no runtime frames).
* ``resources``: a context manager factory ``resources(request)`` yielding a mapping that
  performers read with :func:`prodture.scope.resources`, exited with the handler's error on a
  failure or an expected error.

Views are generator functions that ``yield`` their effects (Flask runs views synchronously);
for ``async def`` views use an ASGI framework and :mod:`prodture.fastapi`.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

from flask import after_this_request, jsonify, request
from werkzeug.exceptions import HTTPException

from .runtime import Failure, user_traceback
from .scope import resources_scope
from .web import (
    TRACE_ID_HEADER,
    Rejected,
    WebIntegration,
    log_failure,
    rolled_back,
    route_handler,
    server_error_body,
)

__all__ = ["Prodture", "Rejected", "TRACE_ID_HEADER"]

log = logging.getLogger("prodture.flask")

#: view parameters filled from the request rather than from the URL
_FROM_REQUEST: dict[str, Callable[[], Any]] = {
    "body": lambda: request.get_json(silent=True),
    "query": lambda: request.args.to_dict(),
}


class Prodture(WebIntegration):
    """Runs Flask views as prodture handlers (see the module docstring)."""

    http_exceptions = (HTTPException,)

    def http_answer(self, error: Any) -> tuple[int | None, Any]:
        return error.code, error.description

    def route(self, fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
        """Decorator (under ``@app.route/get/post...``): ``fn`` becomes a registered prodture
        handler named ``module:qualname`` (or ``name``) and the view Flask calls."""
        if fn is None:
            return lambda f: self.route(f, name=name)
        if not inspect.isgeneratorfunction(fn):
            raise TypeError(
                f"@pt.route needs a generator function that yields its effects; "
                f"{fn.__qualname__} is not one (an async view: serve it with prodture.fastapi; "
                "a view with no effect: leave it undecorated)"
            )
        key = name or f"{fn.__module__}:{fn.__qualname__}"
        run = route_handler(fn, key, self._as_rejected, {})
        from_request = [p for p in inspect.signature(fn).parameters if p in _FROM_REQUEST]

        @functools.wraps(fn)
        def view(**url_values: Any) -> Any:
            input = {**url_values, **{p: _FROM_REQUEST[p]() for p in from_request}}
            outcome = self._run(run, input)
            trace_id = outcome.trace_id
            if trace_id:
                header = self.trace_header

                @after_this_request
                def add_trace_id(response: Any) -> Any:  # also on the error handlers' responses
                    response.headers[header] = trace_id
                    return response

            if isinstance(outcome, Failure):
                log_failure(log, request.method, request.path, key, outcome)
                response = jsonify(server_error_body(trace_id))
                response.status_code = 500
                return response
            value = outcome.value
            if isinstance(value, Rejected) and value.error is not None:
                raise value.error.with_traceback(user_traceback(value.error))
            return value

        view.__prodture_route__ = run  # type: ignore[attr-defined]
        return view

    def _run(self, fn: Callable[..., Any], input: dict[str, Any]) -> Any:
        if self.resources is None:
            return self.interpreter.run(fn, input)
        manager = self.resources(request)
        values = manager.__enter__()
        try:
            with resources_scope(values):
                outcome = self.interpreter.run(fn, input)
        except BaseException as error:
            manager.__exit__(type(error), error, error.__traceback__)
            raise
        undone = rolled_back(outcome)
        if undone is not None:
            manager.__exit__(type(undone), undone, user_traceback(undone))
        else:
            manager.__exit__(None, None, None)
        return outcome
