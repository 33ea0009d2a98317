"""Per-execution resources for performers (a database connection, a transaction).

Performers are bound when the :class:`~prodture.runtime.Interpreter` is built, but a connection
or a transaction belongs to one request. The integration that runs the request (or your own
code) opens them around the run with :func:`resources_scope`; a performer reads them with
:func:`resources`::

    def perform_query(effect):
        return prodture.scope.resources()["db"].execute(effect.sql, effect.params).fetchall()

Replay never opens them: performers do not run there.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["resources", "resources_scope"]

_current: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "prodture_resources", default=None
)


def resources() -> Mapping[str, Any]:
    """The resources of the execution running in this thread or task."""
    found = _current.get()
    if found is None:
        raise LookupError(
            "no per-request resources here: performers that need a connection must run inside "
            "prodture.scope.resources_scope(...) (prodture.fastapi.Prodture(resources=...) does it)"
        )
    return found


@contextlib.contextmanager
def resources_scope(values: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    token = _current.set(values)
    try:
        yield values
    finally:
        _current.reset(token)
