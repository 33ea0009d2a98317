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
import datetime
import functools
import importlib
import operator
import os
import random
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from .effects import All, Effect, MonotonicNow, NewUUID, Now, RandomFloat, RandomInt, Sleep
from .runtime import EffectCall, Outcome, Success, handler_name, handlers, run_sync
from .text import short_repr
from .trace.codec import (
    REDACTED,
    RecordedError,
    TraceFormatError,
    UnknownValue,
    opaque_paths,
    type_name,
)
from .trace.format import (
    EffectRecord,
    OutcomeRecord,
    Trace,
    TraceReader,
    describe_error,
    read_header,
)

__all__ = [
    "Replayer",
    "ReplayResult",
    "ReplayError",
    "Divergence",
    "FieldDifference",
    "ReplayDiverged",
    "TracePerformer",
    "configured_modules",
    "project_config",
    "ProjectConfig",
    "resolve_handler",
    "load_trace",
    "STRICT",
    "SPECULATIVE",
    "FixCheck",
    "check_fixed",
    "find_project",
    "load_stubs",
    "EXPECT_FIXED_SUFFIX",
    "describe_outcome",
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
        return f"{self.field}: recorded {short_repr(self.recorded, 120)}, now {short_repr(self.now, 120)}"


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


def describe_effect(effect: Effect) -> str:
    if dataclasses.is_dataclass(effect):
        inner = ", ".join(
            f"{f.name}={short_repr(getattr(effect, f.name), 60)}"
            for f in dataclasses.fields(effect)
        )
    else:
        inner = ""
    return f"{type(effect).__name__}({inner})"


def _same(recorded: Any, now: Any, depth: int = 0) -> bool:
    """Equality as replay sees it: redacted matches anything; unregistered types by name+fields."""
    if recorded is REDACTED:
        return True
    if depth > 32:
        return bool(recorded == now)
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
        return bool(getattr(now, "value", now) == recorded.fields)
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


def _default_now(effect: Any, seq: int, started: Any) -> Any:
    base = started or datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    return base + datetime.timedelta(milliseconds=seq)


#: Deterministic answers for the built-in non-deterministic effects in speculative replay, when
#: the recording has none that fits (``fn(effect, seq, trace_started_at)``): the same replay
#: always sees the same values. Stubs passed by the user win.
DEFAULT_SPECULATIVE_STUBS: dict[type, Callable[[Any, int, Any], Any]] = {
    Now: _default_now,
    MonotonicNow: lambda e, seq, started: float(seq),
    NewUUID: lambda e, seq, started: uuid.UUID(int=seq, version=4),
    RandomFloat: lambda e, seq, started: random.Random(seq).random(),
    RandomInt: lambda e, seq, started: random.Random(seq).randint(e.low, e.high),
    Sleep: lambda e, seq, started: None,
}


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
            names: list[str] = (
                [f.name for f in dataclasses.fields(effect)]
                if dataclasses.is_dataclass(effect)
                else []
            )
            if not names:
                # E731: one small getter per effect type, chosen once and cached
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
                    f"has only {len(self.effects)} effect"
                    + ("" if len(self.effects) == 1 else "s"),
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
        assert record.error is not None  # the reader guarantees it for a failed effect
        raise record.error.with_traceback(None)

    def _differences(
        self, record: EffectRecord, effect: Effect, values: list[Any]
    ) -> list[FieldDifference]:
        now: dict[str, Any] = (
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
            stub = self._recorded_or_default(call)
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
                    assert record.error is not None
                    raise record.error.with_traceback(None)
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

    def _recorded_or_default(self, call: EffectCall) -> Callable[[Any], Any] | None:
        """A built-in effect the recording cannot answer (Now, NewUUID, Random*...) gets a
        deterministic default stub; ``None`` otherwise (the recorded answer, if it matches, is
        used by the caller)."""
        effect = call.effect
        index = call.seq - 1
        if index < len(self.effects):
            record = self.effects[index]
            if (
                record.type == getattr(type(effect), "effect_name", None)
                and self._values(effect) == record.values
            ):
                return None  # the recorded answer still fits
        started = self.trace.header.started_at
        if type(effect) is All:
            # gathered effects: each answered by its own stub (the user's, else a default)
            answers = [self._stub_for(child, call.seq, started) for child in effect.effects]
            if any(a is None for a in answers):
                return None
            return lambda e: [a(child) for a, child in zip(answers, e.effects, strict=True)]  # type: ignore[misc]
        return self._stub_for(effect, call.seq, started, user=False)

    def _stub_for(
        self, effect: Effect, seq: int, started: Any, *, user: bool = True
    ) -> Callable[[Any], Any] | None:
        if user:
            stub = self.stubs.get(type(effect)) or self.stubs.get(
                getattr(type(effect), "effect_name", "")
            )
            if stub is not None:
                return stub
        default = DEFAULT_SPECULATIVE_STUBS.get(type(effect))
        if default is None:
            return None
        return lambda e: default(e, seq, started)

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
                f"finishes after {self.consumed} effect"
                + ("" if self.consumed == 1 else "s")
                + f" ({describe_outcome(outcome)})"
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
                f"outcome: recorded {recorded.describe(200)}, now {describe_outcome(outcome)}"
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


def describe_outcome(outcome: Outcome) -> str:
    """``Success: <short repr>`` or ``Failure: Name: message``: what a run ended with."""
    if isinstance(outcome, Success):
        return f"Success: {short_repr(outcome.value, 120)}"
    return f"Failure: {describe_error(outcome.error)}"


def _outcomes_match(recorded: OutcomeRecord, outcome: Outcome) -> bool:
    if recorded.ok != outcome.ok:
        return False
    if isinstance(outcome, Success):
        return _same(recorded.value, outcome.value)
    return _errors_match(recorded.error, outcome.error)


# ---------------------------------------------------------------------------------------------
# Which code may run


def load_stubs(spec: str, cwd: str) -> dict[Any, Any]:
    """``--stubs module:name``: the dict of stubs (or a function returning it) the user named;
    that module is imported because the user named it, never because a trace does."""
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ReplayError(f"--stubs {spec!r} is not of the form module:name")
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: Any = importlib.import_module(module)
    except Exception as e:
        raise ReplayError(f"--stubs: cannot import {module!r}: {type(e).__name__}: {e}") from None
    for part in name.split("."):
        obj = getattr(obj, part, None)
    if obj is None:
        raise ReplayError(f"--stubs: module {module!r} has no {name!r}")
    if callable(obj) and not isinstance(obj, dict):
        obj = obj()
    if not isinstance(obj, dict):
        raise ReplayError(
            f"--stubs {spec}: expected a dict {{EffectType or name: function}}, got {type(obj).__name__}"
        )
    return obj


def find_project(start: str) -> str | None:
    """The directory of the nearest ``pyproject.toml`` at or above ``start`` that has a
    ``[tool.prodture]`` table (``None`` when there is none)."""
    for pyproject in _pyprojects_above(os.path.abspath(start)):
        try:
            with open(pyproject, encoding="utf-8") as f:
                if "[tool.prodture]" in f.read():
                    return os.path.dirname(pyproject)
        except OSError:
            pass
    return None


@dataclasses.dataclass(frozen=True)
class ProjectConfig:
    """What the user allows replay to import, and where that was said."""

    modules: tuple[str, ...]
    #: the ``pyproject.toml`` whose ``[tool.prodture] modules`` were read (None: none found)
    pyproject: str | None
    #: ``[tool.prodture] store`` as written (any TOML value; ``store_url`` checks it), or None
    store: object = None


def project_config(cwd: str | None = None) -> ProjectConfig:
    """``PRODTURE_MODULES`` (comma-separated) and ``[tool.prodture] modules`` of the nearest
    ``pyproject.toml`` at or above ``cwd`` (default: the current directory).

    Each ``pyproject.toml`` is parsed once per process (again only if the file changes), so
    replaying many traces (``pytest --prodture-replay``) does not re-read it for each.
    """
    modules = [m.strip() for m in os.environ.get("PRODTURE_MODULES", "").split(",") if m.strip()]
    pyproject = _nearest_pyproject(os.path.abspath(cwd or os.getcwd()))
    store: object = None
    if pyproject is not None:
        stat = os.stat(pyproject)
        table = _tool_prodture(pyproject, stat.st_mtime_ns, stat.st_size)
        modules += table["modules"]
        store = table["store"]
    return ProjectConfig(tuple(modules), pyproject, store)


def configured_modules(cwd: str | None = None) -> list[str]:
    """The modules the user allows replay to import (see :func:`project_config`)."""
    return list(project_config(cwd).modules)


def _nearest_pyproject(directory: str) -> str | None:
    return next(_pyprojects_above(directory), None)


def _pyprojects_above(directory: str) -> Iterator[str]:
    """Each ``pyproject.toml`` at or above ``directory`` (absolute), nearest first."""
    while True:
        candidate = os.path.join(directory, "pyproject.toml")
        if os.path.isfile(candidate):
            yield candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return
        directory = parent


@functools.lru_cache(maxsize=64)
def _tool_prodture(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """``modules`` (a tuple of names) and ``store`` (as written, or None) of ``[tool.prodture]``
    in one ``pyproject.toml``; cached by (path, mtime, size)."""
    try:
        import tomllib  # type: ignore[import-not-found]  # mypy checks as Python 3.10: no tomllib
    except ModuleNotFoundError:  # Python 3.10
        return _tool_prodture_fallback(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ReplayError(f"{path}: cannot read [tool.prodture] ({e}); fix the file") from None
    table = data.get("tool", {}).get("prodture", {})
    modules = table.get("modules", [])
    return {
        "modules": tuple(m for m in modules if isinstance(m, str)),
        "store": table.get("store"),
    }


def _tool_prodture_fallback(path: str) -> dict[str, Any]:
    """The two keys prodture reads, found by pattern (Python 3.10 has no TOML parser)."""
    import re

    text = open(path, encoding="utf-8").read()
    section = re.search(r"^\[tool\.prodture\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if not section:
        return {"modules": (), "store": None}
    found = re.search(r"^modules\s*=\s*\[(.*?)\]", section.group(1), re.M | re.S)
    store = re.search(r"^store\s*=\s*[\"']([^\"']*)[\"']", section.group(1), re.M)
    return {
        "modules": tuple(re.findall(r"[\"']([^\"']+)[\"']", found.group(1))) if found else (),
        "store": store.group(1) if store else None,
    }


def _import(module: str, config: ProjectConfig, cwd: str | None) -> None:
    try:
        importlib.import_module(module)
    except SyntaxError as e:
        raise ReplayError(
            f"handler module {module!r} no longer imports: SyntaxError at {e.filename}:{e.lineno}: {e.msg}; fix the code"
        ) from None
    except ModuleNotFoundError as e:
        if e.name is None or not (module == e.name or module.startswith(e.name + ".")):
            raise ReplayError(
                f"handler module {module!r} no longer imports: {type(e).__name__}: {e}; fix the module or its dependencies"
            ) from None
        # The module itself is not on sys.path: replay runs from the wrong folder.
        raise ReplayError(_not_on_path(module, config, cwd)) from None
    except Exception as e:
        raise ReplayError(
            f"handler module {module!r} no longer imports: {type(e).__name__}: {e}; fix the module or its dependencies"
        ) from None


def import_allowed_modules(cwd: str | None = None) -> list[str]:
    """Import the modules the user allows (see :func:`project_config`), with ``cwd`` on
    ``sys.path``, and return them: their registered types exist and values may decode as
    their types (``decode_value(..., allowed_modules=)``) from then on."""
    config = project_config(cwd)
    return _import_allowed(list(config.modules), config, cwd)


def _import_allowed(modules: list[str], config: ProjectConfig, cwd: str | None) -> list[str]:
    if cwd is not None and cwd not in sys.path:
        sys.path.insert(0, cwd)
    for m in modules:
        _import(m, config, cwd)
    return modules


def _not_on_path(module: str, config: ProjectConfig, cwd: str | None) -> str:
    """What to do when a handler module is not importable from here: name the folder."""
    problem = f"handler module {module!r} cannot be imported: its folder is not on sys.path"
    project = os.path.dirname(config.pyproject) if config.pyproject else None
    if project is not None:
        return (
            f"{problem}; its project is {project} (whose pyproject.toml lists [tool.prodture] "
            f"modules): pass cwd={project!r} (Replayer.from_file, load_trace; --cwd for the CLI)"
        )
    searched = cwd or os.getcwd()
    return (
        f"{problem}, and no pyproject.toml at or above {searched} lists it: pass cwd= the project "
        "folder that holds it (--cwd for the CLI), or put that folder on PYTHONPATH and list the "
        "module in PRODTURE_MODULES"
    )


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
    return _resolve_handler(name, explicit=explicit, modules=modules, cwd=cwd)[0]


def _resolve_handler(
    name: str, *, explicit: bool, modules: Iterable[str], cwd: str | None
) -> tuple[Callable[..., Any], list[str]]:
    """The handler and the modules whose types its trace may decode as themselves."""
    if ":" not in name:
        raise ReplayError(f"handler {name!r} is not of the form module:function")
    module, _, qualname = name.partition(":")
    config = project_config(cwd)
    allowed = _import_allowed(list(modules) + list(config.modules), config, cwd)
    # Imported even when a handler of that name is registered: the module may have been
    # removed from sys.modules to pick up edited code, and importing re-registers it.
    if explicit or any(module == m or module.startswith(m + ".") for m in allowed):
        _import(module, config, cwd)
        allowed.append(module)
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
        if module in allowed:  # the module was imported: the function is not registered
            obj = sys.modules.get(module)
            for part in qualname.split("."):
                obj = getattr(obj, part, None)
            what = (
                f"module {module!r} (listed, imported) defines {qualname} but it is not a registered handler; "
                "decorate it with @prodture.handler"
                if callable(obj)
                else f"module {module!r} (listed, imported) has no {qualname!r}; it was renamed or "
                "moved: pass --handler module:function"
            )
            raise ReplayError(f"the trace names handler {name}: {what}")
        raise ReplayError(
            f"the trace names handler {name}, which is not a registered handler here; list its module "
            f"in [tool.prodture] modules (pyproject.toml) or PRODTURE_MODULES, or pass --handler module:function"
        )
    return found, allowed


def load_trace(
    path: str | os.PathLike[str],
    *,
    modules: Iterable[str] = (),
    cwd: str | None = None,
    handler: str | None = None,
) -> tuple[Trace, Callable[..., Any]]:
    """Read a trace and resolve its handler, importing allowed modules *before* decoding values
    so the application's own types decode as themselves (the header alone is read first)."""
    try:
        name = handler if handler is not None else read_header(path).handler
        fn, allowed = _resolve_handler(name, explicit=handler is not None, modules=modules, cwd=cwd)
        trace = TraceReader(path, allowed_modules=allowed).read()
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
            outcome: Outcome = run_sync(self.handler, self.trace.input, performer)
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


# ---------------------------------------------------------------------------------------------
# "Expect fixed": a trace that recorded a bug, kept to prove the fix

#: A trace file named ``*.expect-fixed.prodtrace`` recorded a bug: replaying it passes when the
#: recorded failure no longer happens (``prodture replay`` and the pytest plugin).
EXPECT_FIXED_SUFFIX = ".expect-fixed.prodtrace"


@dataclasses.dataclass(frozen=True)
class FixCheck:
    """``fixed``: True (the recorded failure no longer happens), False (it still does), or None
    (cannot tell: the replay stopped before an outcome). ``message`` says what the code now does."""

    fixed: bool | None
    message: str


def check_fixed(result: ReplayResult) -> FixCheck:
    """Judge a speculative replay of a bug's trace."""
    recorded = result.trace.outcome
    if recorded is None or recorded.ok:
        what = "no outcome (incomplete)" if recorded is None else "a success"
        return FixCheck(None, f"the trace recorded {what}, not a failure: nothing to expect fixed")
    was = describe_error(recorded.error)
    outcome = result.outcome
    if outcome is None:
        why = result.divergence.message if result.divergence else "no outcome"
        return FixCheck(None, f"cannot tell whether it is fixed: {why}")
    if not outcome.ok and _errors_match(recorded.error, outcome.error):
        return FixCheck(False, f"not fixed: the code still fails with {was}")
    return FixCheck(
        True, f"fixed: the recorded {was} no longer happens; now {describe_outcome(outcome)}"
    )
