"""The trace file: value codec and record format (see protocol/trace-format.md)."""

from .codec import (
    REDACTED,
    Opaque,
    RecordedError,
    Redacted,
    Redactor,
    TraceFormatError,
    UnknownValue,
    decode_value,
    encode_value,
)
from .format import (
    FORMAT_VERSION,
    EffectRecord,
    OutcomeRecord,
    Trace,
    TraceEncoder,
    TraceHeader,
    TraceReader,
    code_fingerprint,
    read_header,
    read_trace,
)

__all__ = [
    "REDACTED",
    "Opaque",
    "RecordedError",
    "Redacted",
    "Redactor",
    "TraceFormatError",
    "UnknownValue",
    "decode_value",
    "encode_value",
    "FORMAT_VERSION",
    "EffectRecord",
    "OutcomeRecord",
    "Trace",
    "TraceEncoder",
    "TraceHeader",
    "TraceReader",
    "code_fingerprint",
    "read_header",
    "read_trace",
]
