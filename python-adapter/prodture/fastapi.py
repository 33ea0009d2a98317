"""FastAPI/Starlette integration: a route's body is a prodture handler.

::

    pt = Prodture(performers={...}, recorder=Recorder(sink, mode=ON_FAILURE))

    @app.post("/bookings/{room}")
    @pt.route
    async def book(room: str, body: BookingIn, nights: int = 1):
        price = await QuoteRoom(room, nights)      # effects, as in any async handler
        ...

* The route function's parameters as FastAPI resolved them (path, query, the pydantic body,
  ``Depends`` values) are the recorded input, a dict; ``Request``/``Response`` parameters are not.
  Register pydantic models with :func:`prodture.integrations.pydantic.register_model`.
* ``HTTPException`` (any status below 500) and the ``expected`` exception types are answers, not
  failures: they are recorded as a :class:`Rejected` value (ON_FAILURE keeps no trace of a 404)
  and re-raised for FastAPI's exception handlers.
* Any other failure becomes a 500 whose JSON body and ``X-Prodture-Trace-Id`` header carry the
  trace id (every recorded response carries the header), logged on the ``prodture.fastapi``
  logger with that id and the handler's own traceback (no runtime frames).
* ``resources``: an async context manager factory ``resources(request)`` yielding a mapping
  (a connection, a transaction) that performers read with :func:`prodture.scope.resources`; it is
  exited with the handler's error on a failure or an expected error, so ``with conn:`` inside it
  rolls back.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .effects import register
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

__all__ = ["Prodture", "Rejected", "TRACE_ID_HEADER", "user_traceback"]

log = logging.getLogger("prodture.fastapi")

_REQUEST_TYPES = (Request, Response)


class Prodture(WebIntegration):
    """Runs FastAPI routes as prodture handlers (see the module docstring)."""

    http_exceptions = (StarletteHTTPException,)

    def http_answer(self, error: Any) -> tuple[int | None, Any]:
        return error.status_code, error.detail

    def route(self, fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
        """Decorator (under ``@app.get/post/...``): ``fn`` becomes a registered prodture handler
        named ``module:qualname`` (or ``name``) and the endpoint FastAPI calls."""
        if fn is None:
            return lambda f: self.route(f, name=name)
        return self._route(fn, name)

    def _route(self, fn: Callable[..., Any], name: str | None) -> Callable[..., Any]:
        # Resolved annotations: FastAPI reads the endpoint's signature, and the endpoint lives
        # here, where the names of a `from __future__ import annotations` module mean nothing.
        signature = inspect.signature(fn, eval_str=True)
        recorded = [
            p.name
            for p in signature.parameters.values()
            if not (isinstance(p.annotation, type) and issubclass(p.annotation, _REQUEST_TYPES))
        ]
        # Request/Response parameters are live objects, not input: replay passes None for them.
        not_recorded = {p: None for p in signature.parameters if p not in recorded}
        key = name or f"{fn.__module__}:{fn.__qualname__}"
        run = route_handler(fn, key, self._as_rejected, not_recorded)

        # FastAPI passes a Request (a Response) to one parameter only: the route's own if it
        # has one, else one added here.
        params = list(signature.parameters.values())

        def own(kind: type) -> str | None:
            return next(
                (
                    p.name
                    for p in params
                    if isinstance(p.annotation, type) and issubclass(p.annotation, kind)
                ),
                None,
            )

        request_param = own(Request) or "prodture_request"
        response_param = own(Response) or "prodture_response"
        added = {request_param, response_param} - set(signature.parameters)
        extra = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind)
            for name, kind in ((request_param, Request), (response_param, Response))
            if name in added
        ]
        keyword_only = [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
        others = [p for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        endpoint_signature = signature.replace(parameters=[*others, *keyword_only, *extra])

        @functools.wraps(fn)
        async def endpoint(**kwargs: Any) -> Any:
            request: Request = kwargs[request_param]
            response: Response = kwargs[response_param]
            for name in added:
                del kwargs[name]
            input = {k: kwargs[k] for k in recorded}
            live = {k: v for k, v in kwargs.items() if k not in input}
            bound: Callable[..., Any] = run
            if live:
                with_live = functools.partial(run, live=live)
                # recorded under the route's name: handler_name() reads this attribute
                with_live.__prodture_handler__ = key  # type: ignore[attr-defined]  # our own attribute on the partial
                bound = with_live
            outcome = await self._run(bound, input, request)
            if outcome.trace_id:
                response.headers[self.trace_header] = outcome.trace_id
            if isinstance(outcome, Failure):
                return self._failed(outcome, key, request)
            value = outcome.value
            if isinstance(value, Rejected):
                error = value.error
                if error is not None:
                    if isinstance(error, StarletteHTTPException) and outcome.trace_id:
                        error.headers = {
                            **(error.headers or {}),
                            self.trace_header: outcome.trace_id,
                        }
                    raise error.with_traceback(user_traceback(error))
            return value

        endpoint.__signature__ = endpoint_signature  # type: ignore[attr-defined]
        del endpoint.__wrapped__  # FastAPI must see the signature above, not fn's
        endpoint.__prodture_route__ = run  # type: ignore[attr-defined]
        return endpoint

    async def _run(self, fn: Callable[..., Any], input: Any, request: Request) -> Any:
        if self.resources is None:
            return await self.interpreter.run_async(fn, input)
        manager = self.resources(request)
        values = await manager.__aenter__()
        try:
            with resources_scope(values):
                outcome = await self.interpreter.run_async(fn, input)
        except BaseException as error:  # cancelled: the transaction must not commit
            await manager.__aexit__(type(error), error, error.__traceback__)
            raise
        undone = rolled_back(outcome)
        if undone is not None:
            await manager.__aexit__(type(undone), undone, user_traceback(undone))
        else:
            await manager.__aexit__(None, None, None)
        return outcome

    def _failed(self, outcome: Failure, key: str, request: Request) -> Response:
        log_failure(log, request.method, request.url.path, key, outcome)
        trace_id = outcome.trace_id
        headers = {self.trace_header: trace_id} if trace_id else None
        return JSONResponse(server_error_body(trace_id), status_code=500, headers=headers)


register(HTTPException, name="fastapi.HTTPException")
if StarletteHTTPException is not HTTPException:
    register(StarletteHTTPException, name="starlette.HTTPException")
