"""prodture: record what a production handler did as a trace of effects; replay and debug it.

The production surface (this module) needs only ``msgpack``. The debugger, language server and
OpenTelemetry bridge live in submodules with extra dependencies and are never imported here.
"""

__version__ = "0.1.0"

from .effects import (
    Command,
    Effect,
    GetEnv,
    MonotonicNow,
    NewUUID,
    Now,
    RandomFloat,
    RandomInt,
    Sleep,
    register,
    registry,
    secret,
)
from .recorder import ALWAYS, ON_FAILURE, DirectorySink, MemorySink, Recorder, Sampled
from .replay import Divergence, Replayer, ReplayError, ReplayResult
from .runtime import EffectCall, Failure, Interpreter, Outcome, Success, handler, pipeline
from .trace import Redactor, Trace, TraceFormatError, TraceReader, read_trace

__all__ = [
    "__version__",
    "Command", "Effect", "GetEnv", "MonotonicNow", "NewUUID", "Now", "RandomFloat", "RandomInt",
    "Sleep", "register", "registry", "secret",
    "ALWAYS", "ON_FAILURE", "DirectorySink", "MemorySink", "Recorder", "Sampled",
    "Divergence", "Replayer", "ReplayError", "ReplayResult",
    "EffectCall", "Failure", "Interpreter", "Outcome", "Success", "handler", "pipeline",
    "Redactor", "Trace", "TraceFormatError", "TraceReader", "read_trace",
]
