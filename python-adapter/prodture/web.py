"""What the web framework integrations (:mod:`prodture.fastapi`, :mod:`prodture.flask`) share.

A route's body becomes a registered handler whose input is the dict of its recorded parameters;
an expected error (an HTTP exception below 500, the ``expected`` types) is an answer, recorded as
a :class:`Rejected` value and re-raised for the framework's error handlers; any other failure is
logged with the trace id and the handler's own traceback. No framework is imported here.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

from .effects import register, registry
from .runtime import Failure, Interpreter, Observer, Outcome, handler, user_traceback

__all__ = [
    "TRACE_ID_HEADER",
    "WebIntegration",
    "Rejected",
    "rejected",
    "route_handler",
    "rolled_back",
    "log_failure",
    "server_error_body",
]

TRACE_ID_HEADER = "X-Prodture-Trace-Id"


@register(name="prodture.web.Rejected")
@dataclasses.dataclass(frozen=True)
class Rejected:
    """What a handler answered with an expected error: recorded as a success value.

    The live exception rides along outside the dataclass fields (never recorded)."""

    error_type: str
    status_code: int | None
    detail: Any

    @property
    def error(self) -> BaseException | None:
        """The live exception (None for a Rejected decoded from a trace)."""
        return self.__dict__.get("_error")


# its name while only the FastAPI integration had it
registry.add_alias("prodture.fastapi.Rejected", Rejected)


class WebIntegration:
    """The part of each framework's ``Prodture`` that does not depend on the framework: the
    interpreter that runs the routes, which errors are answers, and the per-request settings.

    A framework's subclass names its HTTP exception types (``http_exceptions``) and how to read
    one's status and detail (``http_answer``); such an exception below 500 is an answer (a
    :class:`Rejected` value), as is any of the ``expected`` types."""

    #: the framework's HTTP exception types
    http_exceptions: tuple[type[BaseException], ...] = ()

    def __init__(
        self,
        performers: Mapping[type, Callable[[Any], Any]] | None = None,
        *,
        recorder: Observer | None = None,
        expected: tuple[type[BaseException], ...] = (),
        resources: Callable[[Any], Any] | None = None,
        trace_header: str = TRACE_ID_HEADER,
    ) -> None:
        self.interpreter = Interpreter(performers, recorder=recorder)
        self.expected: tuple[type[BaseException], ...] = (*self.http_exceptions, *expected)
        self.resources = resources
        self.trace_header = trace_header

    def http_answer(self, error: Any) -> tuple[int | None, Any]:
        """(status, detail) of one of the framework's HTTP exceptions."""
        raise NotImplementedError

    def is_expected(self, error: BaseException) -> bool:
        if isinstance(error, self.http_exceptions):
            status = self.http_answer(error)[0]
            return status is None or status < 500
        return isinstance(error, self.expected)

    def _as_rejected(self, error: BaseException) -> Rejected | None:
        if not self.is_expected(error):
            return None
        if isinstance(error, self.http_exceptions):
            return rejected(error, *self.http_answer(error))
        return rejected(error)


def rejected(error: BaseException, status_code: int | None = None, detail: Any = None) -> Rejected:
    """The Rejected value of ``error``: an HTTP exception's status and detail, else the error's
    type and message."""
    if status_code is not None:
        value = Rejected(type(error).__name__, status_code, detail)
    else:
        value = Rejected(f"{type(error).__module__}.{type(error).__qualname__}", None, str(error))
    object.__setattr__(value, "_error", error)
    return value


def route_handler(
    fn: Callable[..., Any],
    key: str,
    as_rejected: Callable[[BaseException], Rejected | None],
    not_recorded: dict[str, Any],
) -> Callable[..., Any]:
    """Register ``fn`` (a generator, async or plain function) as the handler ``key``:
    ``run(input, live=None)`` calls ``fn(**input, **live)`` and turns an error ``as_rejected``
    accepts into its Rejected value. Replay calls it with the recorded input alone, the
    ``not_recorded`` parameters (live request objects) then being None."""
    if inspect.isgeneratorfunction(fn):

        def run(input: dict[str, Any], live: dict[str, Any] | None = None) -> Any:
            try:
                return (yield from fn(**input, **(live if live is not None else not_recorded)))
            except Exception as error:
                answer = as_rejected(error)
                if answer is not None:
                    return answer
                raise

    else:

        async def run(input: dict[str, Any], live: dict[str, Any] | None = None) -> Any:  # type: ignore[misc]
            try:
                result = fn(**input, **(live if live is not None else not_recorded))
                if inspect.isawaitable(result):
                    result = await result
                return result
            except Exception as error:
                answer = as_rejected(error)
                if answer is not None:
                    return answer
                raise

    run.__qualname__ = fn.__qualname__
    run.__module__ = fn.__module__
    # The recorder's code fingerprint and the debugger's source map follow fn's own file.
    run.__wrapped__ = fn  # type: ignore[attr-defined]  # the trace's code fingerprint is fn's file
    handler(name=key)(run)
    return run


def rolled_back(outcome: Outcome) -> BaseException | None:
    """The error per-request resources are exited with: the failure's, or the expected
    error's (an answer, but its transaction still rolls back, as without prodture)."""
    if isinstance(outcome, Failure):
        return outcome.error
    return outcome.value.error if isinstance(outcome.value, Rejected) else None


def log_failure(log: logging.Logger, method: str, path: str, key: str, outcome: Failure) -> None:
    """Log a failed request with its trace id (also as ``record.trace_id``) and the handler's
    own traceback, without prodture's frames."""
    error = outcome.error
    trace_id = outcome.trace_id
    log.error(
        "%s %s failed in %s (trace %s): %s: %s",
        method,
        path,
        key,
        trace_id or "not recorded",
        type(error).__name__,
        error,
        exc_info=(type(error), error, user_traceback(error)),
        extra={"trace_id": trace_id or "-"},
    )


def server_error_body(trace_id: str | None) -> dict[str, Any]:
    return {"detail": "Internal Server Error", "trace_id": trace_id}
