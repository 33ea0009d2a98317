"""Replay: run a handler again, answering every effect from a trace; report the first divergence.

Nothing real is performed. A handler runs only if it is registered (``@prodture.handler``); the
modules that register handlers are imported only when the *user* lists them (``modules=``, the
``PRODTURE_MODULES`` environment variable, or ``[tool.prodture] modules`` in ``pyproject.toml``),
never because a trace names them.

Strict mode stops at the first divergence. Speculative mode keeps going after it: new effects are
answered by stubs the user supplies, and the result says what the code *would* now do.
"""

from __future__ import annotations

import dataclasses
import importlib
import operator
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .effects import Effect
from .runtime import EffectCall, Outcome, Success, handler_name, handlers, run_sync
from .trace.codec import (
    REDACTED,
    RecordedError,
    TraceFormatError,
    UnknownValue,
    allow_modules,
    opaque_paths,
    type_name,
)
from .trace.format import EffectRecord, OutcomeRecord, Trace, TraceReader, describe_error

__all__ = [
    "Replayer",
    "ReplayResult",
    "ReplayError",
    "Divergence",
    "FieldDifference",
    "ReplayDiverged",
    "TracePerformer",
    "configured_modules",
    "resolve_handler",
    "load_trace",
    "STRICT",
    "SPECULATIVE",
]

STRICT = "strict"
SPECULATIVE = "speculative"


class ReplayError(Exception):
    """The replay could not start (bad trace, unknown handler, import failure). One line."""


@dataclasses.dataclass(frozen=True)
class FieldDifference:
    field: str
    recorded: Any
    now: Any

    def describe(self) -> str:
        return f"{self.field}: recorded {_r(self.recorded)}, now {_r(self.now)}"


@dataclasses.dataclass(frozen=True)
class Divergence:
    """Where and how the code now differs from what production did.

    ``kind``: ``type`` (another effect), ``request`` (same effect, other fields), ``extra``
    (an effect beyond the recording), ``missing`` (the code stops before the recorded effects
    end), ``outcome`` (same effects, other result), ``end-of-trace`` (an incomplete recording
    ends here).
    """

    kind: str
    effect_seq: int | None
    message: str
    recorded: EffectRecord | None = None
    now: Effect | None = None
    differences: tuple[FieldDifference, ...] = ()
    site: tuple[str, int, str] | None = None

    def __str__(self) -> str:
        return self.message


class ReplayDiverged(BaseException):
    """Raised through the handler to stop a strict replay: a ``BaseException`` so that a
    handler's ``except Exception`` cannot swallow it."""

    def __init__(self, divergence: Divergence) -> None:
        super().__init__(divergence.message)
        self.divergence = divergence


@dataclasses.dataclass
class ReplayResult:
    trace: Trace
    handler: str
    outcome: Outcome | None
    divergence: Divergence | None
    effects_replayed: int
    speculative_effects: list[tuple[int, Effect, Any]] = dataclasses.field(default_factory=list)
    mode: str = STRICT

    @property
    def reproduced(self) -> bool:
        """The code did exactly what production did: same effects, same outcome."""
        return self.divergence is None and self.outcome is not None


def _r(value: Any, limit: int = 120) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_effect(effect: Effect) -> str:
    if dataclasses.is_dataclass(effect):
        inner = ", ".join(
            f"{f.name}={_r(getattr(effect, f.name), 60)}" for f in dataclasses.fields(effect)
        )
    else:
        inner = ""
    return f"{type(effect).__name__}({inner})"


def _same(recorded: Any, now: Any, depth: int = 0) -> bool:
    """Equality as replay sees it: redacted matches anything; unregistered types by name+fields."""
    if recorded is REDACTED:
        return True
    if depth > 32:
        return recorded == now
    t = type(recorded)
    if t is UnknownValue:
        if dataclasses.is_dataclass(now) and not isinstance(now, type):
            if type_name(type(now)) != recorded.type_name or not isinstance(recorded.fields, dict):
                return False
            return all(
                f.name in recorded.fields
                and _same(recorded.fields[f.name], getattr(now, f.name), depth + 1)
                for f in dataclasses.fields(now)
            )
        return getattr(now, "value", now) == recorded.fields
    if t is list or t is tuple:
        return (
            isinstance(now, (list, tuple))
            and len(now) == len(recorded)
            and all(_same(a, b, depth + 1) for a, b in zip(recorded, now, strict=False))
        )
    if t is dict:
        return (
            isinstance(now, dict)
            and recorded.keys() == now.keys()
            and all(_same(v, now[k], depth + 1) for k, v in recorded.items())
        )
    if dataclasses.is_dataclass(recorded) and type(now) is t:
        return all(
            _same(getattr(recorded, f.name), getattr(now, f.name), depth + 1)
            for f in dataclasses.fields(t)
        )
    try:
        return bool(recorded == now)
    except Exception:
        return False


def _values_match(recorded: list[Any], now: list[Any]) -> bool:
    """The request fields are the same as replay sees it (a redacted field matches anything)."""
    if len(recorded) != len(now):
        return False
    for r, n in zip(recorded, now, strict=False):
        if r is REDACTED:
            continue
        try:
            if r == n:
                continue
        except Exception:
            pass
        if not _same(r, n):
            return False
    return True


def _errors_match(recorded: BaseException | None, now: BaseException) -> bool:
    if recorded is None:
        return False
    recorded_name = (
        recorded.type_name if isinstance(recorded, RecordedError) else type_name(type(recorded))
    )
    return recorded_name == type_name(type(now)) and describe_error(recorded) == describe_error(now)


class TracePerformer:
    """``perform(call)`` for replay: checks each effect against the recording and answers it.

    ``observer(call, record)`` is told about every effect before it is answered (the debugger's
    effect stops use it); ``record`` is ``None`` for speculative effects.
    """

    def __init__(
        self,
        trace: Trace,
        *,
        mode: str = STRICT,
        stubs: Mapping[type | str, Callable[[Any], Any]] | None = None,
        observer: Callable[[EffectCall, EffectRecord | None], None] | None = None,
    ) -> None:
        if mode not in (STRICT, SPECULATIVE):
            raise ReplayError(f"unknown replay mode {mode!r}: use 'strict' or 'speculative'")
        self.trace = trace
        self.effects = trace.effects
        self.mode = mode
        self.stubs = dict(stubs or {})
        self.observer = observer
        self.divergence: Divergence | None = None
        self.speculative_effects: list[tuple[int, Effect, Any]] = []
        self.consumed = 0
        self._getters: dict[type, Callable[[Any], list[Any]]] = {}

    def reset(self) -> None:
        self.divergence = None
        self.speculative_effects = []
        self.consumed = 0

    def _values(self, effect: Effect) -> list[Any]:
        getter = self._getters.get(type(effect))
        if getter is None:
            names = (
                [f.name for f in dataclasses.fields(effect)]
                if dataclasses.is_dataclass(effect)
                else []
            )
            if not names:
                getter = lambda e: []  # noqa: E731
            elif len(names) == 1:
                one = operator.attrgetter(names[0])
                getter = lambda e: [one(e)]  # noqa: E731
            else:
                many = operator.attrgetter(*names)
                getter = lambda e: list(many(e))  # noqa: E731
            self._getters[type(effect)] = getter
        return getter(effect)

    def __call__(self, call: EffectCall) -> Any:
        effect = call.effect
        if self.divergence is not None:
            return self._speculate(call)
        index = call.seq - 1
        if index >= len(self.effects):
            if not self.trace.complete and self.trace.outcome is None:
                return self._diverge(
                    call,
                    Divergence(
                        "end-of-trace",
                        call.seq,
                        f"effect #{call.seq}: the recording is incomplete and ends after effect "
                        f"#{len(self.effects)}; code now yields {describe_effect(effect)}",
                        now=effect,
                        site=call.site,
                    ),
                )
            return self._diverge(
                call,
                Divergence(
                    "extra",
                    call.seq,
                    f"effect #{call.seq}: code now yields {describe_effect(effect)}, but the recording "
                    f"has only {len(self.effects)} effects",
                    now=effect,
                    site=call.site,
                ),
            )
        record = self.effects[index]
        name = getattr(type(effect), "effect_name", None) or type_name(type(effect))
        if name != record.type:
            return self._diverge(
                call,
                Divergence(
                    "type",
                    call.seq,
                    f"effect #{call.seq}: recorded {record.describe_request(200)}, code now yields "
                    f"{describe_effect(effect)}",
                    recorded=record,
                    now=effect,
                    site=call.site,
                ),
            )
        values = self._values(effect)
        if values != record.values and not _values_match(record.values, values):
            differences = self._differences(record, effect, values)
            if differences:
                detail = "; ".join(d.describe() for d in differences)
                return self._diverge(
                    call,
                    Divergence(
                        "request",
                        call.seq,
                        f"effect #{call.seq} {record.short_type}: request differs — {detail}",
                        recorded=record,
                        now=effect,
                        differences=tuple(differences),
                        site=call.site,
                    ),
                )
        self.consumed = call.seq
        if self.observer is not None:
            self.observer(call, record)
        if record.ok:
            return record.result
        raise record.error.with_traceback(None)  # type: ignore[union-attr]

    def _differences(
        self, record: EffectRecord, effect: Effect, values: list[Any]
    ) -> list[FieldDifference]:
        now = (
            dict(zip([f.name for f in dataclasses.fields(effect)], values, strict=False))
            if dataclasses.is_dataclass(effect)
            else {}
        )
        recorded = record.request
        out = []
        for field in list(recorded) + [k for k in now if k not in recorded]:
            if field not in now:
                out.append(FieldDifference(field, recorded[field], "<field removed>"))
            elif field not in recorded:
                out.append(FieldDifference(field, "<field absent>", now[field]))
            elif not _same(recorded[field], now[field]):
                out.append(FieldDifference(field, recorded[field], now[field]))
        return out

    def _diverge(self, call: EffectCall, divergence: Divergence) -> Any:
        self.divergence = divergence
        if self.mode == STRICT:
            raise ReplayDiverged(divergence)
        return self._speculate(call)

    def _speculate(self, call: EffectCall) -> Any:
        effect = call.effect
        stub = self.stubs.get(type(effect)) or self.stubs.get(
            getattr(type(effect), "effect_name", "")
        )
        if stub is None:
            index = call.seq - 1
            if index < len(self.effects):
                record = self.effects[index]
                if (
                    record.type == getattr(type(effect), "effect_name", None)
                    and self._values(effect) == record.values
                ):
                    self.speculative_effects.append(
                        (call.seq, effect, record.result if record.ok else record.error)
                    )
                    if self.observer is not None:
                        self.observer(call, record)
                    if record.ok:
                        return record.result
                    raise record.error.with_traceback(None)  # type: ignore[union-attr]
            raise ReplayDiverged(
                Divergence(
                    "no-stub",
                    call.seq,
                    f"effect #{call.seq}: speculative replay has no stub for {describe_effect(effect)}; "
                    f"pass stubs={{{type(effect).__name__}: ...}}",
                    now=effect,
                    site=call.site,
                )
            )
        if self.observer is not None:
            self.observer(call, None)
        try:
            value = stub(effect)
        except Exception as error:
            self.speculative_effects.append((call.seq, effect, error))
            raise
        self.speculative_effects.append((call.seq, effect, value))
        return value

    def finish(self, outcome: Outcome) -> Divergence | None:
        """After the handler ends: missing effects or a different outcome are divergences."""
        if self.divergence is not None:
            return self.divergence
        recorded_count = len(self.effects)
        if self.consumed < recorded_count:
            nxt = self.effects[self.consumed]
            self.divergence = Divergence(
                "missing",
                self.consumed + 1,
                f"effect #{self.consumed + 1}: recorded {nxt.describe_request(200)}, but the code now "
                f"finishes after {self.consumed} effects ({_describe_outcome(outcome)})"
                + ("" if outcome.ok else self._opaque_note()),
                recorded=nxt,
            )
            return self.divergence
        recorded = self.trace.outcome
        if recorded is None:
            return None  # incomplete recording: nothing to compare the outcome with
        if not _outcomes_match(recorded, outcome):
            self.divergence = Divergence(
                "outcome",
                None,
                f"outcome: recorded {recorded.describe(200)}, now {_describe_outcome(outcome)}"
                + self._opaque_note(),
            )
        return self.divergence

    def _opaque_note(self) -> str:
        """Which values the handler was given as opaque placeholders (only their repr was
        recorded), the likely reason a replay fails where the recording did not."""
        trace = self.trace
        paths = opaque_paths(trace.input, "input")
        for record in self.effects[: self.consumed]:
            if record.ok:
                paths += opaque_paths(
                    record.result, f"effect #{record.seq} {record.short_type} result"
                )
        if not paths:
            return ""
        return (
            f"; the handler was given values recorded as opaque reprs, not data: {', '.join(paths[:5])}"
            + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        )


def _describe_outcome(outcome: Outcome) -> str:
    if isinstance(outcome, Success):
        return f"Success: {_r(outcome.value)}"
    return f"Failure: {describe_error(outcome.error)}"


def _outcomes_match(recorded: OutcomeRecord, outcome: Outcome) -> bool:
    if recorded.ok != outcome.ok:
        return False
    if isinstance(outcome, Success):
        return _same(recorded.value, outcome.value)
    return _errors_match(recorded.error, outcome.error)


# ---------------------------------------------------------------------------------------------
# Which code may run


def configured_modules(cwd: str | None = None) -> list[str]:
    """Modules the user allows replay to import: ``PRODTURE_MODULES`` (comma-separated) and
    ``[tool.prodture] modules`` of the nearest ``pyproject.toml`` at or above ``cwd``."""
    modules = [m.strip() for m in os.environ.get("PRODTURE_MODULES", "").split(",") if m.strip()]
    directory = os.path.abspath(cwd or os.getcwd())
    while True:
        candidate = os.path.join(directory, "pyproject.toml")
        if os.path.isfile(candidate):
            modules += _pyproject_modules(candidate)
            break
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return modules


def _pyproject_modules(path: str) -> list[str]:
    try:
        import tomllib  # type: ignore[import-not-found]
    except ModuleNotFoundError:  # Python 3.10
        return _pyproject_modules_fallback(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ReplayError(f"{path}: cannot read [tool.prodture] ({e}); fix the file") from None
    modules = data.get("tool", {}).get("prodture", {}).get("modules", [])
    return [m for m in modules if isinstance(m, str)]


def _pyproject_modules_fallback(path: str) -> list[str]:
    import re

    text = open(path, encoding="utf-8").read()
    section = re.search(r"^\[tool\.prodture\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if not section:
        return []
    found = re.search(r"^modules\s*=\s*\[(.*?)\]", section.group(1), re.M | re.S)
    return re.findall(r"[\"']([^\"']+)[\"']", found.group(1)) if found else []


def _import(module: str) -> None:
    try:
        importlib.import_module(module)
    except SyntaxError as e:
        raise ReplayError(
            f"handler module {module!r} no longer imports: SyntaxError at {e.filename}:{e.lineno}: {e.msg}; fix the code"
        ) from None
    except Exception as e:
        raise ReplayError(
            f"handler module {module!r} no longer imports: {type(e).__name__}: {e}; fix the module or its dependencies"
        ) from None


def resolve_handler(
    name: str,
    *,
    explicit: bool = False,
    modules: Iterable[str] = (),
    cwd: str | None = None,
) -> Callable[..., Any]:
    """The registered handler called ``name`` (``module:qualname``).

    With ``explicit`` (the user typed the name) its module is imported; otherwise only the
    user's allowed modules are, and a trace naming anything else is refused.
    """
    if ":" not in name:
        raise ReplayError(f"handler {name!r} is not of the form module:function")
    module, _, qualname = name.partition(":")
    allowed = list(modules) + configured_modules(cwd)
    if cwd is not None and cwd not in sys.path:
        sys.path.insert(0, cwd)
    for m in allowed:
        _import(m)
    # Imported even when a handler of that name is registered: the module may have been
    # removed from sys.modules to pick up edited code, and importing re-registers it.
    if explicit or any(module == m or module.startswith(m + ".") for m in allowed):
        _import(module)
        allowed.append(module)
    allow_modules(allowed)
    found = handlers.get(name)
    if found is None and explicit:
        obj: Any = sys.modules.get(module)
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
        if callable(obj) and handler_name(obj) in handlers and handlers[handler_name(obj)] is obj:
            found = obj
        elif callable(obj):
            raise ReplayError(
                f"{name} is not a registered handler; decorate it with @prodture.handler"
            )
    if found is None:
        if explicit:
            raise ReplayError(f"handler {name} not found: module {module!r} has no {qualname!r}")
        raise ReplayError(
            f"the trace names handler {name}, which is not a registered handler here; list its module "
            f"in [tool.prodture] modules (pyproject.toml) or PRODTURE_MODULES, or pass --handler module:function"
        )
    return found


def load_trace(
    path: str | os.PathLike[str],
    *,
    modules: Iterable[str] = (),
    cwd: str | None = None,
    handler: str | None = None,
) -> tuple[Trace, Callable[..., Any]]:
    """Read a trace and resolve its handler, importing allowed modules *before* decoding values
    so the application's own types decode as themselves."""
    try:
        first = next(iter(TraceReader(path).raw_records()), None)
    except TraceFormatError as e:
        raise ReplayError(str(e)) from None
    header_handler = None
    if first is not None:
        record = first[0]
        if isinstance(record, list) and len(record) > 1 and isinstance(record[1], dict):
            header_handler = record[1].get("handler")
    try:
        if handler is not None:
            fn = resolve_handler(handler, explicit=True, modules=modules, cwd=cwd)
        else:
            if not isinstance(header_handler, str):
                TraceReader(path).read()  # raises the precise format error
                raise ReplayError(
                    f"{path}: the trace names no handler; pass --handler module:function"
                )
            fn = resolve_handler(header_handler, modules=modules, cwd=cwd)
        trace = TraceReader(path).read()
    except TraceFormatError as e:
        raise ReplayError(str(e)) from None
    return trace, fn


class Replayer:
    """Replays one trace against the current code.

    ``Replayer(trace, handler_fn).run()`` → :class:`ReplayResult`. Build from a file with
    :meth:`from_file`, which resolves the handler safely (see :func:`load_trace`).
    """

    def __init__(
        self,
        trace: Trace,
        handler: Callable[..., Any],
        *,
        mode: str = STRICT,
        stubs: Mapping[type | str, Callable[[Any], Any]] | None = None,
    ) -> None:
        self.trace = trace
        self.handler = handler
        self.mode = mode
        self.stubs = stubs

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        handler: str | None = None,
        modules: Iterable[str] = (),
        cwd: str | None = None,
        mode: str = STRICT,
        stubs: Mapping[type | str, Callable[[Any], Any]] | None = None,
    ) -> Replayer:
        trace, fn = load_trace(path, modules=modules, cwd=cwd, handler=handler)
        return cls(trace, fn, mode=mode, stubs=stubs)

    def performer(
        self, observer: Callable[[EffectCall, EffectRecord | None], None] | None = None
    ) -> TracePerformer:
        return TracePerformer(self.trace, mode=self.mode, stubs=self.stubs, observer=observer)

    def run(self) -> ReplayResult:
        performer = self.performer()
        try:
            outcome: Outcome | None = run_sync(self.handler, self.trace.input, performer)
        except ReplayDiverged as stop:
            return ReplayResult(
                self.trace,
                handler_name(self.handler),
                None,
                stop.divergence,
                performer.consumed,
                performer.speculative_effects,
                self.mode,
            )
        divergence = performer.finish(outcome)
        return ReplayResult(
            self.trace,
            handler_name(self.handler),
            outcome,
            divergence,
            performer.consumed,
            performer.speculative_effects,
            self.mode,
        )
