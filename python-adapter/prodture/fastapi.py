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

import dataclasses
import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .effects import register
from .runtime import Failure, Interpreter, Observer, handler, user_traceback
from .scope import resources_scope

__all__ = ["Prodture", "Rejected", "TRACE_ID_HEADER", "user_traceback"]

TRACE_ID_HEADER = "X-Prodture-Trace-Id"

log = logging.getLogger("prodture.fastapi")


@register(name="prodture.fastapi.Rejected")
@dataclasses.dataclass(frozen=True)
class Rejected:
    """What a handler answered with an expected error: recorded as a success value.

    The live exception rides along outside the dataclass fields (never recorded)."""

    error_type: str
    status_code: int | None
    detail: Any


_REQUEST_TYPES = (Request, Response)


class Prodture:
    """Runs FastAPI routes as prodture handlers (see the module docstring)."""

    def __init__(
        self,
        performers: Mapping[type, Callable[[Any], Any]] | None = None,
        *,
        recorder: Observer | None = None,
        expected: tuple[type[BaseException], ...] = (),
        resources: Callable[[Request], Any] | None = None,
        trace_header: str = TRACE_ID_HEADER,
    ) -> None:
        self.interpreter = Interpreter(performers, recorder=recorder)
        self.expected: tuple[type[BaseException], ...] = (StarletteHTTPException, *expected)
        self.resources = resources
        self.trace_header = trace_header

    def is_expected(self, error: BaseException) -> bool:
        if isinstance(error, StarletteHTTPException):
            return error.status_code < 500
        return isinstance(error, self.expected)

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
        is_expected = self.is_expected
        key = name or f"{fn.__module__}:{fn.__qualname__}"

        if inspect.isgeneratorfunction(fn):

            def run(input: dict[str, Any], live: dict[str, Any] | None = None) -> Any:
                try:
                    return (yield from fn(**input, **(live if live is not None else not_recorded)))
                except Exception as error:
                    if is_expected(error):
                        return _rejected(error)
                    raise

        else:

            async def run(input: dict[str, Any], live: dict[str, Any] | None = None) -> Any:  # type: ignore[misc]
                try:
                    result = fn(**input, **(live if live is not None else not_recorded))
                    if inspect.isawaitable(result):
                        result = await result
                    return result
                except Exception as error:
                    if is_expected(error):
                        return _rejected(error)
                    raise

        run.__qualname__ = fn.__qualname__
        run.__module__ = fn.__module__
        # Replay calls the registered handler with the recorded input alone; the recorder's
        # code fingerprint and the debugger's source map follow fn's own file.
        run.__wrapped__ = fn  # type: ignore[attr-defined]  # the trace's code fingerprint is fn's file
        handler(name=key)(run)

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
                error = value.__dict__.get("_error")
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
        # An expected error is an answer, not a failure, but its transaction still rolls back,
        # as it would had the route raised it without prodture.
        rolled_back = (
            outcome.error
            if isinstance(outcome, Failure)
            else outcome.value.__dict__.get("_error")
            if isinstance(outcome.value, Rejected)
            else None
        )
        if rolled_back is not None:
            await manager.__aexit__(type(rolled_back), rolled_back, user_traceback(rolled_back))
        else:
            await manager.__aexit__(None, None, None)
        return outcome

    def _failed(self, outcome: Failure, key: str, request: Request) -> Response:
        error = outcome.error
        trace_id = outcome.trace_id
        log.error(
            "%s %s failed in %s (trace %s): %s: %s",
            request.method,
            request.url.path,
            key,
            trace_id or "not recorded",
            type(error).__name__,
            error,
            exc_info=(type(error), error, user_traceback(error)),
            extra={"trace_id": trace_id or "-"},
        )
        headers = {self.trace_header: trace_id} if trace_id else None
        return JSONResponse(
            {"detail": "Internal Server Error", "trace_id": trace_id},
            status_code=500,
            headers=headers,
        )


def _rejected(error: BaseException) -> Rejected:
    if isinstance(error, StarletteHTTPException):
        value = Rejected(type(error).__name__, error.status_code, error.detail)
    else:
        value = Rejected(f"{type(error).__module__}.{type(error).__qualname__}", None, str(error))
    object.__setattr__(value, "_error", error)
    return value


register(HTTPException, name="fastapi.HTTPException")
if StarletteHTTPException is not HTTPException:
    register(StarletteHTTPException, name="starlette.HTTPException")
