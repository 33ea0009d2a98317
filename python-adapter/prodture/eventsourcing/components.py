"""Sagas, process managers and projectors as effect handlers, and the coordinator that runs a flow.

Each component execution is one handler run, so each is one ordinary trace that replays and steps
back in the debugger:

* an **aggregate** handler receives a command, loads its stream, appends new events;
* a **saga** receives a :class:`Delivery` (one event of one domain) and returns the commands it
  sends to another domain (it may load the destination's state first);
* a **process manager** keeps its own stream keyed by the flow's correlation id: it receives a
  delivery, folds its own events, may append new ones, and returns commands;
* a **projector** receives a delivery and updates a read model through its own effects.

:class:`Coordinator` routes a command to its aggregate handler, delivers the appended events to
the subscribed components, routes the commands they return, and so on until the flow is quiet;
correlation and causation ids are stamped on every stored event, and one trace is recorded per
execution. :func:`speculate_flow` runs the same flow against given histories and persists nothing.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from ..effects import register
from ..runtime import Failure, Interpreter, Outcome, handler, handler_name, run_sync
from .aggregate import Aggregate, as_book, speculative_performer
from .model import MAIN, AppendStream, Delivery, EventBook, EventPage, LoadStream

__all__ = [
    "reacts",
    "Saga",
    "ProcessManager",
    "Projector",
    "Coordinator",
    "CommandRejected",
    "Execution",
    "FlowResult",
    "speculate_saga",
    "speculate_process_manager",
    "speculate_flow",
]

log = logging.getLogger("prodture.eventsourcing")

AGGREGATE, SAGA, PROCESS_MANAGER, PROJECTOR = "aggregate", "saga", "process-manager", "projector"


def reacts(event_type: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a saga / process manager / projector method as its reaction to ``event_type``.

    The method receives the :class:`Delivery`; it may be a generator that yields effects (to
    load another stream) and returns its commands, or a plain method returning them."""

    def mark(method: Callable[..., Any]) -> Callable[..., Any]:
        method.__prodture_reacts__ = event_type  # type: ignore[attr-defined]
        return method

    return mark


def _reactions(cls: type) -> dict[type, Callable[..., Any]]:
    found: dict[type, Callable[..., Any]] = {}
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            if hasattr(value, "__prodture_reacts__"):
                found[value.__prodture_reacts__] = value
    return found


def _react(component: Any, reactions: dict[type, Callable[..., Any]], delivery: Delivery) -> Any:
    method = reactions.get(type(delivery.event))
    if method is None:
        return []
    result = method(component, delivery)
    if inspect.isgenerator(result):
        result = yield from result
    return list(result or ())


class Saga:
    """Events of one domain → commands to another. Subclass, set ``source`` (the domain it
    listens to) and write ``@reacts(Event)`` methods returning commands.

    ``MySaga.handle`` is the registered handler (``module:MySaga.handle``) the coordinator runs
    and traces name."""

    kind: ClassVar[str] = SAGA
    source: ClassVar[str] = ""
    handle: ClassVar[Callable[[Delivery], Any]]
    _reactions_of: ClassVar[dict[type, Callable[..., Any]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._reactions_of = _reactions(cls)
        component = cls

        def handle(delivery: Delivery) -> Any:
            return (yield from _react(component(), component._reactions_of, delivery))

        handle.__qualname__ = f"{cls.__qualname__}.handle"
        handle.__module__ = cls.__module__
        cls.handle = staticmethod(
            handler(handle, name=f"{cls.__module__}:{cls.__qualname__}.handle")
        )

    @classmethod
    def event_types(cls) -> tuple[type, ...]:
        return tuple(cls._reactions_of)


class Projector(Saga):
    """Events → a read model. Like a saga, but what its reactions return is ignored: it changes
    the read model through its own effects."""

    kind: ClassVar[str] = PROJECTOR


class ProcessManager(Aggregate):
    """A stateful coordinator of one flow: its own stream in ``domain``, keyed by the flow's
    correlation id. ``@applies`` reducers fold its own events; ``@reacts`` methods receive
    domain events, may call :meth:`record` to add events to its stream, and return commands."""

    kind: ClassVar[str] = PROCESS_MANAGER
    domain: ClassVar[str] = ""
    source: ClassVar[str] = ""
    handle: ClassVar[Callable[[Delivery], Any]]
    _reactions_of: ClassVar[dict[type, Callable[..., Any]]]
    #: events :meth:`record` added during one delivery (appended to the stream after it)
    _recorded: list[Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._reactions_of = _reactions(cls)
        component = cls

        def handle(delivery: Delivery) -> Any:
            domain = component.domain
            book = yield LoadStream(domain, delivery.correlation_id)
            manager = component.rehydrate(book)
            manager._recorded = []
            commands = yield from _react(manager, component._reactions_of, delivery)
            if manager._recorded:
                yield AppendStream(
                    domain, delivery.correlation_id, book.head, tuple(manager._recorded)
                )
            return commands

        handle.__qualname__ = f"{cls.__qualname__}.handle"
        handle.__module__ = cls.__module__
        cls.handle = staticmethod(
            handler(handle, name=f"{cls.__module__}:{cls.__qualname__}.handle")
        )

    def record(self, event: Any) -> None:
        """Add ``event`` to this process manager's stream (applied at once)."""
        self.apply(event)
        self._recorded.append(event)

    @classmethod
    def event_types(cls) -> tuple[type, ...]:
        return tuple(cls._reactions_of)


@register(name="prodture.es.CommandRejected")
class CommandRejected(Exception):
    """A command the aggregate refused, with what is needed to fetch and replay it."""

    def __init__(
        self, domain: str, root: str, sequence: int, correlation_id: str, error: str
    ) -> None:
        super().__init__(
            f"{domain}/{root} at sequence {sequence} rejected the command "
            f"(correlation id {correlation_id}): {error}"
        )
        self.domain, self.root, self.sequence = domain, root, sequence
        self.correlation_id, self.error = correlation_id, error


@dataclasses.dataclass
class Execution:
    """One component execution of a flow."""

    kind: str
    handler: str
    input: Any
    outcome: Outcome
    domain: str = ""
    root: str = ""
    sequence: int = 0  # the head of (domain, root) it loaded (the failure context's sequence)
    appended: list[tuple[str, str, int, Any]] = dataclasses.field(default_factory=list)
    commands: list[Any] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class FlowResult:
    """Every execution of one flow, in order; ``rejected`` are the failed ones."""

    correlation_id: str
    executions: list[Execution]

    @property
    def rejected(self) -> list[Execution]:
        return [e for e in self.executions if not e.outcome.ok]

    @property
    def appended(self) -> list[tuple[str, str, int, Any]]:
        return [a for e in self.executions for a in e.appended]

    @property
    def commands(self) -> list[Any]:
        return [c for e in self.executions for c in e.commands]


@dataclasses.dataclass(frozen=True)
class _Route:
    handler: Callable[..., Any]
    domain: str
    root: Callable[[Any], str]


@dataclasses.dataclass(frozen=True)
class _Subscription:
    kind: str
    handler: Callable[..., Any]
    source: str
    events: tuple[type, ...]


class Coordinator:
    """Routes commands, delivers events, runs one recorded handler per component execution.

    ``store`` is an :class:`~prodture.eventsourcing.EventStore` (or anything with its
    ``load``/``append``/``position``/``log_execution``); ``edition`` runs the whole flow in an
    edition; ``sink``/``mode`` record a trace of every execution (``Recorder`` arguments).
    """

    def __init__(
        self,
        store: Any,
        *,
        edition: str = MAIN,
        performers: dict[type, Callable[[Any], Any]] | None = None,
        sink: Any = None,
        mode: Any = None,
        max_steps: int = 1000,
    ) -> None:
        self.store, self.edition = store, edition
        self.performers = dict(performers or {})
        self.sink, self.mode = sink, mode
        self.max_steps = max_steps
        self.routes: dict[type, _Route] = {}
        self.subscriptions: list[_Subscription] = []
        self._recorder_made: Any = None

    def _recorder(self) -> Any:
        """The one recorder of every execution this coordinator runs (None without a sink)."""
        if self.sink is None:
            return None
        if self._recorder_made is None:
            from ..recorder import ALWAYS, Recorder

            self._recorder_made = Recorder(self.sink, mode=self.mode or ALWAYS)
        return self._recorder_made

    def close(self) -> None:
        """Write every pending trace and stop the recorder's writer thread (a later
        :meth:`execute` starts it again)."""
        if self._recorder_made is not None:
            self._recorder_made.close()

    # -- wiring --------------------------------------------------------------------------------

    def route(
        self,
        command_type: type,
        handler: Callable[..., Any],
        *,
        domain: str,
        root: Callable[[Any], str],
    ) -> Coordinator:
        """Send commands of ``command_type`` to aggregate ``handler`` of stream (domain, root(cmd))."""
        self.routes[command_type] = _Route(handler, domain, root)
        return self

    def subscribe(
        self, component: Any, *, source: str | None = None, events: Iterable[type] | None = None
    ) -> Coordinator:
        """Deliver events of domain ``source`` (a Saga/ProcessManager/Projector class knows its
        own) to ``component``."""
        kind = getattr(component, "kind", SAGA)
        fn = getattr(component, "handle", component)
        types = tuple(events) if events is not None else tuple(component.event_types())
        self.subscriptions.append(
            _Subscription(kind, fn, source if source is not None else component.source, types)
        )
        return self

    # -- running -------------------------------------------------------------------------------

    def execute(
        self, command: Any, *, correlation_id: str | None = None, raise_on_reject: bool = True
    ) -> FlowResult:
        """Run ``command`` and everything it causes. Raises :class:`CommandRejected` when the
        first command is refused (unless ``raise_on_reject=False``); later rejections are in
        the result. Every trace of the flow is written by the time this returns or raises."""
        try:
            return self._flow(command, correlation_id or uuid.uuid4().hex, raise_on_reject)
        finally:
            if self._recorder_made is not None:
                self._recorder_made.flush()

    def _flow(self, command: Any, correlation_id: str, raise_on_reject: bool) -> FlowResult:
        result = FlowResult(correlation_id, [])
        work: deque[tuple[str, Any, Any, str]] = deque([(AGGREGATE, None, command, "")])
        steps = 0
        while work:
            steps += 1
            if steps > self.max_steps:
                raise RuntimeError(
                    f"flow {correlation_id} ran more than {self.max_steps} executions; a saga or "
                    "process manager is probably looping (raise Coordinator(max_steps=...) if not)"
                )
            kind, fn, item, causation = work.popleft()
            if kind == AGGREGATE:
                execution = self._run_command(item, correlation_id, causation)
            else:
                execution = self._run(kind, fn, item, correlation_id, item.causation_id, "", "")
            result.executions.append(execution)
            if not execution.outcome.ok:
                if kind == AGGREGATE and len(result.executions) == 1 and raise_on_reject:
                    error = execution.outcome.error
                    raise CommandRejected(
                        execution.domain,
                        execution.root,
                        execution.sequence,
                        correlation_id,
                        f"{type(error).__name__}: {error}",
                    ) from error
                continue
            if kind in (SAGA, PROCESS_MANAGER) and execution.outcome.value:
                event_id = f"{item.domain}/{item.root}#{item.sequence}"
                for cmd in execution.outcome.value:
                    execution.commands.append(cmd)
                    work.append((AGGREGATE, None, cmd, event_id))
            for domain, root, sequence, event in execution.appended:
                for sub in self.subscriptions:
                    if sub.source == domain and type(event) in sub.events:
                        delivery = Delivery(
                            domain,
                            root,
                            sequence,
                            event,
                            correlation_id,
                            f"{domain}/{root}#{sequence}",
                        )
                        work.append((sub.kind, sub.handler, delivery, ""))
        return result

    def _run_command(self, command: Any, correlation_id: str, causation: str) -> Execution:
        route = self.routes.get(type(command))
        if route is None:
            raise LookupError(
                f"no aggregate handles {type(command).__name__}; add coordinator.route({type(command).__name__}, handler, domain=..., root=...)"
            )
        root = route.root(command)
        return self._run(
            AGGREGATE, route.handler, command, correlation_id, causation, route.domain, root
        )

    def _run(
        self,
        kind: str,
        fn: Callable[..., Any],
        item: Any,
        correlation_id: str,
        causation: str,
        domain: str,
        root: str,
    ) -> Execution:
        name = handler_name(fn)
        execution = Execution(kind, name, item, None, domain, root)  # type: ignore[arg-type]
        command_id = uuid.uuid4().hex
        store = self.store
        position = store.position()

        def load(effect: LoadStream) -> EventBook:
            book = store.load(effect.domain, effect.root, edition=self.edition)
            if (effect.domain, effect.root) == (domain, root):
                execution.sequence = book.head
            return book

        def append(effect: AppendStream) -> int:
            head = store.append(
                effect.domain,
                effect.root,
                effect.expected,
                effect.events,
                edition=self.edition,
                correlation_id=correlation_id,
                causation_id=command_id,
            )
            for i, event in enumerate(effect.events, start=1):
                execution.appended.append((effect.domain, effect.root, effect.expected + i, event))
            return head

        performers: dict[type, Callable[[Any], Any]] = {
            **self.performers,
            LoadStream: load,
            AppendStream: append,
        }
        meta: dict[str, Any] = {
            "component": kind,
            "correlation_id": correlation_id,
            "causation_id": causation,
            "command_id": command_id,
        }
        if domain:
            meta.update(domain=domain, root=root)
        if self.edition:
            meta["edition"] = self.edition
        # One trace per execution, each header saying which execution it was (the run's meta).
        outcome = Interpreter(performers, recorder=self._recorder()).run(fn, item, meta=meta)
        execution.outcome = outcome
        error = ""
        speculative = getattr(store, "speculative", False)
        if isinstance(outcome, Failure):
            error = f"{type(outcome.error).__name__}: {outcome.error}"
        if error and not speculative:
            log.error(
                "command rejected: %s/%s at sequence %d, correlation id %s: %s",
                domain or "-",
                root or "-",
                execution.sequence,
                correlation_id,
                error,
                extra={
                    "prodture_domain": domain,
                    "prodture_root": root,
                    "prodture_sequence": execution.sequence,
                    "prodture_correlation_id": correlation_id,
                    "prodture_error": error,
                    "prodture_handler": name,
                },
            )
        if hasattr(store, "log_execution") and not speculative:
            try:
                store.log_execution(
                    correlation_id=correlation_id,
                    causation_id=causation,
                    handler=name,
                    input=item,
                    position=position,
                    domain=domain,
                    root=root,
                    ok=outcome.ok,
                    error=error,
                    edition=self.edition,
                )
            except Exception:  # the flow's outcome never depends on its bookkeeping
                log.exception("prodture: could not log execution of %s", name)
        return execution


# ---------------------------------------------------------------------------------------------
# Speculation: what a component or a flow would do, against given histories, persisting nothing.


class SpeculativeStore:
    """An in-memory overlay over given histories: reads see the history plus what this
    speculation appended; nothing reaches the history's source."""

    speculative = True

    def __init__(self, history: Any = None) -> None:
        self.history = history
        self.added: dict[tuple[str, str], list[Any]] = {}
        self._position = 0

    def _base(self, domain: str, root: str) -> EventBook:
        h = self.history
        if h is None:
            found: Any = ()
        elif callable(h):
            found = h(domain, root)
        elif hasattr(h, "load"):
            found = h.load(domain, root)
        else:
            found = h.get((domain, root), ())
        return as_book(domain, root, found)

    def load(self, domain: str, root: str, *, edition: str = MAIN) -> EventBook:
        book = self._base(domain, root)
        own = self.added.get((domain, root), [])
        if not own:
            return book
        pages = book.pages + tuple(
            EventPage(book.head + i, e, edition=edition or "speculation")
            for i, e in enumerate(own, 1)
        )
        return EventBook(domain, root, pages, edition)

    def append(
        self, domain: str, root: str, expected: int, events: Iterable[Any], **kw: Any
    ) -> int:
        from .model import ConcurrencyConflict

        head = self.load(domain, root).head
        if head != expected:
            raise ConcurrencyConflict(
                f"{domain}/{root} is at sequence {head}, the command expected {expected}"
            )
        events = list(events)
        self.added.setdefault((domain, root), []).extend(events)
        self._position += len(events)
        return expected + len(events)

    def position(self) -> int:
        return self._position


def speculate_flow(
    coordinator: Coordinator,
    command: Any,
    history: Any = None,
    *,
    correlation_id: str | None = None,
) -> FlowResult:
    """Run ``command``'s whole flow (aggregate → saga → aggregate …) through ``coordinator``'s
    routes and subscriptions against ``history`` (a dict ``{(domain, root): events}``, a
    function, or a read-only store), persisting nothing; nothing is recorded either."""
    shadow = Coordinator(
        SpeculativeStore(history),
        performers=coordinator.performers,
        max_steps=coordinator.max_steps,
    )
    shadow.routes, shadow.subscriptions = coordinator.routes, coordinator.subscriptions
    return shadow.execute(
        command, correlation_id=correlation_id or "speculation", raise_on_reject=False
    )


def _deliveries(events: Any, domain: str, root: str, correlation_id: str) -> list[Delivery]:
    if isinstance(events, EventBook):
        domain, root, events = events.domain, events.root, events.pages
    out = []
    for i, item in enumerate(events, start=1):
        if isinstance(item, Delivery):
            out.append(item)
        elif isinstance(item, EventPage):
            out.append(
                Delivery(
                    domain,
                    root,
                    item.sequence,
                    item.event,
                    correlation_id,
                    f"{domain}/{root}#{item.sequence}",
                )
            )
        else:
            out.append(Delivery(domain, root, i, item, correlation_id, f"{domain}/{root}#{i}"))
    return out


@dataclasses.dataclass(frozen=True)
class ComponentSpeculation:
    """What a saga or process manager would emit: per delivered event, its outcome; all the
    commands; and (for a process manager) the events it would add to its own stream."""

    outcomes: tuple[Outcome, ...]
    commands: tuple[Any, ...]
    own_events: tuple[Any, ...]


def speculate_saga(
    saga: Any,
    events: Any,
    destination: Any = None,
    *,
    domain: str = "",
    root: str = "",
    correlation_id: str = "speculation",
) -> ComponentSpeculation:
    """The commands ``saga`` would emit for source ``events`` (an EventBook, pages, events or
    deliveries), given ``destination`` state (``{(domain, root): events}`` or a function)."""
    fn = getattr(saga, "handle", saga)
    outcomes: list[Outcome] = []
    commands: list[Any] = []
    for delivery in _deliveries(
        events, domain or getattr(saga, "source", ""), root, correlation_id
    ):
        perform, _, _ = speculative_performer(destination if destination is not None else {})
        outcome = run_sync(fn, delivery, perform)
        outcomes.append(outcome)
        if outcome.ok:
            commands.extend(outcome.value or ())
    return ComponentSpeculation(tuple(outcomes), tuple(commands), ())


def speculate_process_manager(
    manager: type[ProcessManager],
    pm_events: Any,
    domain_events: Any,
    *,
    correlation_id: str,
    source: str = "",
    root: str = "",
    other: Any = None,
) -> ComponentSpeculation:
    """The commands process manager ``manager`` would emit for ``domain_events`` given its own
    events ``pm_events`` (of stream (manager.domain, correlation_id)); persisting nothing."""
    store = SpeculativeStore(
        lambda d, r: (
            pm_events if (d, r) == (manager.domain, correlation_id) else _other(other, d, r)
        )
    )
    outcomes: list[Outcome] = []
    commands: list[Any] = []
    for delivery in _deliveries(domain_events, source or manager.source, root, correlation_id):
        delivery = dataclasses.replace(delivery, correlation_id=correlation_id)
        perform, _, per_stream = speculative_performer(lambda d, r: store.load(d, r))
        outcome = run_sync(manager.handle, delivery, perform)
        for (d, r), added in per_stream.items():
            store.append(d, r, store.load(d, r).head, added)
        outcomes.append(outcome)
        if outcome.ok:
            commands.extend(outcome.value or ())
    own = tuple(store.added.get((manager.domain, correlation_id), ()))
    return ComponentSpeculation(tuple(outcomes), tuple(commands), own)


def _other(other: Any, domain: str, root: str) -> Any:
    if other is None:
        return ()
    return other(domain, root) if callable(other) else other.get((domain, root), ())
