"""Fetch, read-only: production's exact events plus the failing command → an ordinary trace.

The store is opened read-only (``mode=ro`` on SQLite, read-only transactions on PostgreSQL). The
command's handler runs once against the fetched events — ``LoadStream`` answered from the store
as it was (up to the failing sequence, or the position a logged execution saw), ``AppendStream``
answered as if it succeeded and persisted nowhere — and that run is recorded as a trace that
``prodture replay``, the debugger, the viewer and the pytest plugin open like any other.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
from collections.abc import Callable
from typing import Any

from ..effects import Effect
from ..recorder import ALWAYS, Recorder, TraceInfo, _FileStream
from ..replay import ReplayError, import_allowed_modules, load_trace, resolve_handler
from ..runtime import Interpreter, Outcome, handler_name
from ..trace.codec import decode_value
from .aggregate import speculative_performer
from .model import MAIN, EventBook, EventStoreError, LoadStream, StreamNotFound
from .store import EventStore, open_store

__all__ = ["FetchedTrace", "fetch_command", "fetch_from_trace", "fetch_flow", "failure_context"]


@dataclasses.dataclass(frozen=True)
class FetchedTrace:
    path: str
    handler: str
    domain: str
    root: str
    sequence: int
    outcome: Outcome


class _Abort(BaseException):
    """Carries a store error through the handler (a BaseException is never thrown into it)."""

    def __init__(self, error: EventStoreError) -> None:
        super().__init__(str(error))
        self.error = error


class _OneFile:
    """A sink writing exactly one trace to ``path`` (replacing an older fetch there)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def open(self, info: TraceInfo) -> _FileStream:
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        if os.path.exists(self.path):
            os.remove(self.path)
        return _FileStream(self.path, 0o600)


def _run(
    store: EventStore,
    fn: Callable[..., Any],
    input: Any,
    path: str,
    *,
    stream: tuple[str, str] | None,
    up_to: int | None,
    position: int | None,
    edition: str,
    meta: dict[str, Any],
) -> tuple[Outcome, int]:
    seen = {"sequence": 0}

    def history(domain: str, root: str) -> Any:
        limit = up_to if (domain, root) == stream else None
        try:
            book = store.load(domain, root, edition=edition, up_to=limit, position=position)
        except EventStoreError as e:  # the store's problem, not the handler's: abort the fetch
            raise _Abort(e) from None
        if (domain, root) == stream:
            seen["sequence"] = book.head
        return book

    perform, _, _ = speculative_performer(history)

    def any_effect(effect: Effect) -> Any:
        return perform(types.SimpleNamespace(effect=effect))

    sink = _OneFile(path)
    recorder = Recorder(sink, mode=ALWAYS, meta=meta)
    try:
        try:
            outcome = Interpreter({Effect: any_effect}, recorder=recorder).run(fn, input)
        finally:
            # the trace is on disk (written by the recorder's writer thread) before we go on
            recorder.close()
    except _Abort as abort:
        if os.path.exists(path):
            os.remove(path)  # a partial trace would only mislead
        raise abort.error from None
    if recorder.stats.sink_errors or recorder.stats.encode_errors:
        raise ReplayError(f"{path}: could not write the fetched trace; check the folder")
    return outcome, seen["sequence"]


def _check_stream(
    store: EventStore, domain: str, root: str, up_to: int | None, edition: str
) -> int:
    head = store.head(domain, root, edition=edition)
    if head == 0:
        known = [r for d, r, _ in store.streams(domain)][:5]
        hint = (
            f" (streams of {domain!r}: {', '.join(known)})"
            if known
            else f" (no streams in domain {domain!r})"
        )
        raise StreamNotFound(
            f"no stream {domain}/{root} in {store.display_url}{hint}; check the domain and root"
        )
    if up_to is not None and not 0 <= up_to <= head:
        raise StreamNotFound(
            f"{domain}/{root} has {head} events; --up-to {up_to} is beyond its last sequence"
        )
    return head


def _meta(store: EventStore, **fields: Any) -> dict[str, Any]:
    meta = {"fetched_from": store.display_url}
    meta.update({k: v for k, v in fields.items() if v not in (None, "")})
    return meta


def fetch_command(
    url: str,
    handler: Callable[..., Any],
    command: Any,
    *,
    domain: str,
    root: str,
    out: str,
    up_to: int | None = None,
    edition: str = MAIN,
    correlation_id: str = "",
) -> FetchedTrace:
    """Fetch stream ``(domain, root)`` (up to sequence ``up_to``) read-only and record
    ``handler(command)`` against it as the trace ``out``."""
    with open_store(url, read_only=True) as store:
        _check_stream(store, domain, root, up_to, edition)
        meta = _meta(
            store,
            domain=domain,
            root=root,
            up_to=up_to,
            edition=edition,
            correlation_id=correlation_id,
        )
        outcome, sequence = _run(
            store,
            handler,
            command,
            out,
            stream=(domain, root),
            up_to=up_to,
            position=None,
            edition=edition,
            meta=meta,
        )
    return FetchedTrace(out, handler_name(handler), domain, root, sequence, outcome)


def failure_context(trace: Any) -> dict[str, Any]:
    """Domain, root, sequence, correlation id and error of a recorded command execution (empty
    values where the trace does not say). The sequence is the head of the stream it loaded."""
    meta = trace.header.meta or {}
    domain, root = meta.get("domain", ""), meta.get("root", "")
    sequence = None
    for e in trace.effects:
        if e.type == LoadStream.effect_name and e.ok:
            request = e.request
            if not domain or (request.get("domain"), request.get("root")) == (domain, root):
                domain, root = request.get("domain", ""), request.get("root", "")
                if isinstance(e.result, EventBook):
                    try:  # a trace is untrusted: a malformed book leaves the sequence unknown
                        head = e.result.head
                        sequence = head if isinstance(head, int) else None
                    except Exception:
                        sequence = None
                break
    error = ""
    if trace.outcome is not None and not trace.outcome.ok:
        from ..trace.format import describe_error

        error = describe_error(trace.outcome.error)
    return {
        "domain": domain,
        "root": root,
        "sequence": sequence,
        "correlation_id": meta.get("correlation_id", ""),
        "error": error,
    }


def fetch_from_trace(
    url: str,
    trace_path: str,
    *,
    out: str,
    cwd: str | None = None,
    domain: str | None = None,
    root: str | None = None,
    up_to: int | None = None,
    edition: str = MAIN,
) -> FetchedTrace:
    """Fetch the stream a recorded trace names (its failure context) and re-record the trace's
    command against production's events. ``up_to`` defaults to the sequence the trace saw."""
    trace, fn = load_trace(trace_path, cwd=cwd)
    context = failure_context(trace)
    domain = domain or context["domain"]
    root = root or context["root"]
    if not domain or not root:
        raise ReplayError(
            f"{trace_path} names no event stream (no LoadStream effect); pass --domain and --root"
        )
    if up_to is None:
        up_to = context["sequence"]
    return fetch_command(
        url,
        fn,
        trace.input,
        domain=domain,
        root=root,
        out=out,
        up_to=up_to,
        edition=edition,
        correlation_id=context["correlation_id"],
    )


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.rsplit(":", 1)[-1])[:40]


def fetch_flow(
    url: str, correlation_id: str, *, out_dir: str, cwd: str | None = None
) -> list[FetchedTrace]:
    """Every component execution of flow ``correlation_id`` (as the coordinator logged them),
    each re-recorded against the store as that execution saw it: one trace per execution."""
    with open_store(url, read_only=True) as store:
        handlers: dict[str, Callable[..., Any]] = {}
        # The flow's inputs are decoded with the user's modules imported and allowed (never
        # anything a store names): the same rule replay follows.
        modules = import_allowed_modules(cwd)
        executions = store.executions(correlation_id)
        if not executions:
            raise StreamNotFound(
                f"no executions of flow {correlation_id!r} in {store.display_url}; check the "
                "correlation id (only flows run through a Coordinator are logged)"
            )
        fetched = []
        for i, ex in enumerate(executions, start=1):
            fn = handlers.get(ex.handler) or resolve_handler(ex.handler, cwd=cwd)
            handlers[ex.handler] = fn
            path = os.path.join(out_dir, f"{i:02d}-{_safe(ex.handler)}.prodtrace")
            stream = (ex.domain, ex.root) if ex.domain else None
            meta = _meta(
                store,
                domain=ex.domain,
                root=ex.root,
                correlation_id=correlation_id,
                causation_id=ex.causation_id,
                position=ex.position,
                recorded_error=ex.error,
                edition=ex.edition,
            )
            outcome, sequence = _run(
                store,
                fn,
                decode_value(ex.input_payload, allowed_modules=modules),
                path,
                stream=stream,
                up_to=None,
                position=ex.position,
                edition=ex.edition,
                meta=meta,
            )
            fetched.append(FetchedTrace(path, ex.handler, ex.domain, ex.root, sequence, outcome))
    return fetched
