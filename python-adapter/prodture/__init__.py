"""prodture: record what a production handler did as a trace of effects; replay and debug it.

The production surface (this module) needs only ``msgpack``. The debugger, language server and
OpenTelemetry bridge live in submodules with extra dependencies and are never imported here.

Names are imported on first use (PEP 562): ``python -m prodture.adapter`` and the language server
start without loading the runtime they do not need, which keeps a debug session's launch short.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "effects": [
        "All",
        "Command",
        "Effect",
        "GetEnv",
        "MonotonicNow",
        "NewUUID",
        "Now",
        "RandomFloat",
        "RandomInt",
        "Sleep",
        "gather",
        "register",
        "registry",
        "secret",
    ],
    "recorder": ["ALWAYS", "ON_FAILURE", "DirectorySink", "MemorySink", "Recorder", "Sampled"],
    "replay": ["Divergence", "Replayer", "ReplayError", "ReplayResult"],
    "runtime": [
        "EffectCall",
        "Failure",
        "Interpreter",
        "Outcome",
        "Success",
        "handler",
        "pipeline",
    ],
    "trace": ["Redactor", "Trace", "TraceFormatError", "TraceReader", "read_trace"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["__version__", *_MODULE_OF]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'prodture' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))


if TYPE_CHECKING:  # for type checkers and IDEs: the names as if imported eagerly
    from .effects import (
        All,
        Command,
        Effect,
        GetEnv,
        MonotonicNow,
        NewUUID,
        Now,
        RandomFloat,
        RandomInt,
        Sleep,
        gather,
        register,
        registry,
        secret,
    )
    from .recorder import ALWAYS, ON_FAILURE, DirectorySink, MemorySink, Recorder, Sampled
    from .replay import Divergence, Replayer, ReplayError, ReplayResult
    from .runtime import EffectCall, Failure, Interpreter, Outcome, Success, handler, pipeline
    from .trace import Redactor, Trace, TraceFormatError, TraceReader, read_trace  # noqa: F401 - the lazy public names, for type checkers
