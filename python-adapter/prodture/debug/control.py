"""The control channel between the debug adapter and the runner: every message, both ways.

The adapter (``prodture.adapter``) and the debuggee (``prodture.debug.runner``) talk over an
inherited socket, one JSON object per line. This module is that protocol's only definition: both
sides build and read messages with the classes below, never with dict literals. It imports only
the standard library, so the adapter can import it without importing engine code (the debuggee
may run another Python, with another prodture: ``Hello.protocol`` catches a mismatch).

Wire form: ``{"kind": <KIND>, <field>: <value>, ...}``; a command that wants an answer carries
``"id"`` and gets a :class:`Reply` with the same id. ``protocol/dap.md`` ("Control channel")
documents it for readers of the wire.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any, ClassVar

#: bumped on any incompatible change; the runner sends it in :class:`Hello`
PROTOCOL_VERSION = 1


class ProtocolError(ValueError):
    """A line that is not a control message of this protocol version."""


class Motion(str, enum.Enum):
    """How the replay moves on from a stop (the adapter's stepping requests, engine-neutral)."""

    NEXT = "next"
    STEP_IN = "stepIn"
    STEP_OUT = "stepOut"
    CONTINUE = "continue"
    STEP_BACK = "stepBack"
    REVERSE_CONTINUE = "reverseContinue"
    JUMP_TO_EFFECT = "jumpToEffect"


class StopReason(str, enum.Enum):
    """Why the replay stopped, in the words of a DAP ``stopped`` event's ``reason``."""

    ENTRY = "entry"
    STEP = "step"
    BREAKPOINT = "breakpoint"
    PAUSE = "pause"
    GOTO = "goto"
    EXCEPTION = "exception"


_KINDS: dict[str, type[Message]] = {}


@dataclasses.dataclass(frozen=True)
class Message:
    """Base of every control message; ``KIND`` names it on the wire."""

    KIND: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.KIND:
            assert cls.KIND not in _KINDS, f"duplicate control message kind {cls.KIND!r}"
            _KINDS[cls.KIND] = cls

    def to_wire(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.KIND}
        for field in dataclasses.fields(self):
            data[field.name] = _plain(getattr(self, field.name))
        return data


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class Command(Message):
    """A message from the adapter to the runner. ``id`` is set when the adapter wants a
    :class:`Reply`."""

    id: int | None = dataclasses.field(default=None, kw_only=True)


# -- adapter → runner ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BreakpointSpec:
    line: int
    condition: str | None = None
    hit_condition: str | None = None
    log_message: str | None = None


@dataclasses.dataclass(frozen=True)
class SetBreakpoints(Command):
    """Replace the breakpoints of one source file."""

    KIND: ClassVar[str] = "setBreakpoints"
    path: str = ""
    breakpoints: tuple[BreakpointSpec, ...] = ()

    @classmethod
    def _from_wire(cls, data: dict[str, Any]) -> SetBreakpoints:
        return cls(
            path=str(data["path"]),
            breakpoints=tuple(
                BreakpointSpec(
                    line=int(b["line"]),
                    condition=b.get("condition") or None,
                    hit_condition=b.get("hit_condition") or None,
                    log_message=b.get("log_message") or None,
                )
                for b in data.get("breakpoints") or ()
            ),
            id=data.get("id"),
        )


@dataclasses.dataclass(frozen=True)
class SetExceptionStops(Command):
    """Which effect and exception events stop the replay (the client's exception filters)."""

    KIND: ClassVar[str] = "setExceptionStops"
    effect_failed: bool = True
    every_effect: bool = False
    raised: bool = False
    uncaught: bool = True


@dataclasses.dataclass(frozen=True)
class Start(Command):
    """Configuration is done: the replay may run."""

    KIND: ClassVar[str] = "start"


@dataclasses.dataclass(frozen=True)
class Move(Command):
    """Leave the current stop: step, continue, go back, or jump to an effect (``effect``)."""

    KIND: ClassVar[str] = "move"
    motion: Motion = Motion.CONTINUE
    effect: int | None = None

    @classmethod
    def _from_wire(cls, data: dict[str, Any]) -> Move:
        try:
            motion = Motion(data["motion"])
        except ValueError:
            raise ProtocolError(f"unknown motion {data['motion']!r}") from None
        effect = data.get("effect")
        return cls(motion=motion, effect=None if effect is None else int(effect), id=data.get("id"))


@dataclasses.dataclass(frozen=True)
class Pause(Command):
    """Stop at the next line of the handler."""

    KIND: ClassVar[str] = "pause"


@dataclasses.dataclass(frozen=True)
class ListEffects(Command):
    """Ask for the recording's effects and outcome (:class:`Reply` ``body``)."""

    KIND: ClassVar[str] = "listEffects"


@dataclasses.dataclass(frozen=True)
class Terminate(Command):
    """End the debuggee now."""

    KIND: ClassVar[str] = "terminate"


# -- runner → adapter ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Hello(Message):
    """The runner is up and its debugpy listens on ``host:port``."""

    KIND: ClassVar[str] = "hello"
    protocol: int
    host: str
    port: int
    pid: int
    runtime_dir: str
    python: str
    effect_count: int


@dataclasses.dataclass(frozen=True)
class Handover(Message):
    """This runner exits now and its checkpoint ``pid`` (a fork of it, parked at the step the
    client goes back to) goes on as the debuggee, on the same control and DAP sockets."""

    KIND: ClassVar[str] = "handover"
    pid: int


@dataclasses.dataclass(frozen=True)
class Failed(Message):
    """The debuggee cannot go on (bad trace, handler that no longer imports…): one line for the
    user, naming the fix."""

    KIND: ClassVar[str] = "failed"
    message: str


@dataclasses.dataclass(frozen=True)
class Position:
    """Where a stop is in the replay. ``effect`` = effects performed so far; ``next_effect`` = seq
    of the next recorded effect, None when all are performed."""

    step: int
    effect: int
    effect_count: int
    path: str | None
    line: int | None
    next_effect: int | None


@dataclasses.dataclass(frozen=True)
class Stopped(Message):
    """The replay thread stopped (pydevd presents it too; the adapter pairs the two).

    ``description`` is the full sentence for the user (``effect #3 ChargeCard failed (recorded
    error): PaymentDeclined: …``, ``End of replay (recorded …)``); ``exception_id`` the type of the
    exception at an exception stop (``PaymentDeclined``, or ``Divergence``); ``exception_message``
    its message alone; ``replay`` the rows of the Replay scope."""

    KIND: ClassVar[str] = "stopped"
    reason: StopReason
    position: Position
    description: str | None = None
    exception_id: str | None = None
    exception_message: str | None = None
    end: bool = False
    replay: tuple[tuple[str, str], ...] = ()

    @classmethod
    def _from_wire(cls, data: dict[str, Any]) -> Stopped:
        return cls(
            reason=StopReason(data["reason"]),
            position=Position(**data["position"]),
            description=data.get("description"),
            exception_id=data.get("exception_id"),
            exception_message=data.get("exception_message"),
            end=bool(data.get("end")),
            replay=tuple((str(k), str(v)) for k, v in data.get("replay") or ()),
        )


class OutputCategory(str, enum.Enum):
    CONSOLE = "console"  # log points, notices
    IMPORTANT = "important"  # warnings the user must see


@dataclasses.dataclass(frozen=True)
class Output(Message):
    """Text for the client's debug console (log points, prodture's notices)."""

    KIND: ClassVar[str] = "output"
    category: OutputCategory
    output: str

    @classmethod
    def _from_wire(cls, data: dict[str, Any]) -> Output:
        return cls(category=OutputCategory(data["category"]), output=str(data["output"]))


@dataclasses.dataclass(frozen=True)
class Exited(Message):
    """The replay is over (``exit_code`` 0: reproduced or ended; 1: diverged)."""

    KIND: ClassVar[str] = "exited"
    exit_code: int
    summary: str | None = None


@dataclasses.dataclass(frozen=True)
class Reply(Message):
    """The answer to the :class:`Command` whose ``id`` it carries."""

    KIND: ClassVar[str] = "reply"
    id: int
    ok: bool = True
    message: str | None = None
    body: Any = None


# -- the wire -----------------------------------------------------------------------------------


def encode(message: Message) -> bytes:
    """One line of the control channel."""
    return (json.dumps(message.to_wire(), separators=(",", ":"), default=str) + "\n").encode()


def decode(line: bytes | str) -> Message:
    """The message on one line of the control channel; :class:`ProtocolError` when it is not one."""
    try:
        data = json.loads(line)
    except ValueError as e:
        raise ProtocolError(f"not JSON: {e}") from None
    if not isinstance(data, dict):
        raise ProtocolError("not a JSON object")
    cls = _KINDS.get(data.get("kind"))  # type: ignore[arg-type]
    if cls is None:
        raise ProtocolError(f"unknown message kind {data.get('kind')!r}")
    try:
        reader = getattr(cls, "_from_wire", None)
        if reader is not None:
            return reader(data)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
    except (KeyError, TypeError, ValueError) as e:
        raise ProtocolError(f"bad {cls.KIND} message: {type(e).__name__}: {e}") from None
