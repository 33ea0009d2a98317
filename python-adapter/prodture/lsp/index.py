"""A compact index of one trace: recorded calls grouped by call site.

The language server keeps one :class:`TraceIndex` per active trace instead of the decoded trace:
per site, the number of calls, failures and time spent, plus short renderings of only the most
recent :data:`RECENT_PER_SITE` calls, and one small integer per effect (its site). A loop that
yields 100,000 effects at one line costs a few hundred kilobytes, not the decoded values.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from array import array

from ..trace import TraceFormatError, read_trace
from ..trace.format import EffectRecord, Trace
from ..trace.format import read_header as read_trace_header
from .render import clip

#: Calls per site rendered for hovers (most recent first); older ones are only counted.
RECENT_PER_SITE = 20
#: Characters kept of a request / result rendering.
TEXT_LIMIT = 160


@dataclasses.dataclass(slots=True, eq=False)
class Call:
    """One recorded call, rendered: what was asked, what came back (or the error), how long."""

    seq: int
    ok: bool
    request: str
    result: str
    duration_ns: int


@dataclasses.dataclass(slots=True, eq=False)
class SiteCalls:
    """Every recorded call at one call site (``file:line`` in ``function``) of one trace."""

    file: str
    line: int
    function: str
    type: str  # the effect's registered name, e.g. "checkout.ChargeCard"
    count: int = 0
    failures: int = 0
    total_ns: int = 0
    first_seq: int = 0
    last_seq: int = 0
    recent: list[Call] = dataclasses.field(default_factory=list)  # most recent first

    @property
    def short_type(self) -> str:
        return self.type.rsplit(".", 1)[-1]


@dataclasses.dataclass(slots=True, eq=False)
class TraceIndex:
    path: str
    stamp: tuple[int, int]  # (mtime_ns, size) of the file when indexed
    handler: str
    trace_id: str
    started_at: _dt.datetime | None
    fingerprint: str
    effect_count: int
    complete: bool
    truncated: bool
    outcome_ok: bool | None  # None: the recording has no outcome (incomplete)
    outcome: str
    failed: Call | None  # the effect whose error ended the handler
    failed_site: SiteCalls | None
    sites: list[SiteCalls]
    site_of_seq: array  # site index + 1 per effect (0: no site recorded)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def site_for(self, seq: int) -> SiteCalls | None:
        if 1 <= seq <= len(self.site_of_seq):
            i = self.site_of_seq[seq - 1]
            return self.sites[i - 1] if i else None
        return None

    def functions(self) -> set[str]:
        return {s.function for s in self.sites}


def file_stamp(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size)


def _render(e: EffectRecord) -> Call:
    return Call(
        e.seq, e.ok, e.describe_request(TEXT_LIMIT), e.describe_result(TEXT_LIMIT), e.duration_ns
    )


def build_index(trace: Trace, path: str, stamp: tuple[int, int] = (0, 0)) -> TraceIndex:
    sites: list[SiteCalls] = []
    by_key: dict[tuple[str, int, str, str], int] = {}
    site_of_seq = array("I", bytes(4 * len(trace.effects)))
    # One pass forward for counts, one backward to render only the most recent calls per site.
    for i, e in enumerate(trace.effects):
        if e.site is None:
            continue
        key = (e.site[0], e.site[1], e.site[2], e.type)
        n = by_key.get(key)
        if n is None:
            n = by_key[key] = len(sites)
            sites.append(SiteCalls(e.site[0], e.site[1], e.site[2], e.type, first_seq=e.seq))
        s = sites[n]
        s.count += 1
        s.total_ns += e.duration_ns
        s.last_seq = e.seq
        if not e.ok:
            s.failures += 1
        site_of_seq[i] = n + 1
    pending = sum(min(s.count, RECENT_PER_SITE) for s in sites)
    for i in range(len(trace.effects) - 1, -1, -1):
        if not pending:
            break
        n = site_of_seq[i]
        if n and len(sites[n - 1].recent) < RECENT_PER_SITE:
            sites[n - 1].recent.append(_render(trace.effects[i]))
            pending -= 1
    failed_record = (
        trace.failed_effect if trace.outcome is not None and not trace.outcome.ok else None
    )
    h = trace.header
    return TraceIndex(
        path=path,
        stamp=stamp,
        handler=h.handler,
        trace_id=h.trace_id,
        started_at=h.started_at,
        fingerprint=h.fingerprint,
        effect_count=len(trace.effects),
        complete=trace.complete,
        truncated=trace.truncated,
        outcome_ok=None if trace.outcome is None else trace.outcome.ok,
        outcome=trace.outcome.describe(TEXT_LIMIT)
        if trace.outcome is not None
        else "no outcome (incomplete recording)",
        failed=_render(failed_record) if failed_record is not None else None,
        failed_site=sites[site_of_seq[failed_record.seq - 1] - 1]
        if failed_record is not None and site_of_seq[failed_record.seq - 1]
        else None,
        sites=sites,
        site_of_seq=site_of_seq,
    )


def load_index(path: str) -> TraceIndex:
    """Read and index a trace file; raises :class:`TraceFormatError` (one line) on any problem."""
    path = os.path.abspath(path)
    try:
        stamp = file_stamp(path)
    except FileNotFoundError:
        raise TraceFormatError(f"{path}: no such trace file; check the path") from None
    except OSError as e:
        raise TraceFormatError(f"{path}: cannot read the trace ({e.strerror})") from None
    return build_index(read_trace(path), path, stamp)


@dataclasses.dataclass(frozen=True, slots=True)
class TraceHeaderInfo:
    """What a code lens needs from a trace it does not index: whose it is and when."""

    path: str
    handler: str
    started_at: _dt.datetime | None


def read_header(path: str) -> TraceHeaderInfo | None:
    """The header of a trace file without decoding the rest; ``None`` if it is not a trace."""
    try:
        header = read_trace_header(path)
    except (TraceFormatError, OSError):  # unreadable, corrupt, not a trace: not one we can list
        return None
    return TraceHeaderInfo(os.path.abspath(path), header.handler, header.started_at)


def describe_load_error(path: str, error: Exception) -> str:
    """One line for ``window/showMessage``: the problem and what to do."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if not text.startswith(path) and not text.startswith(os.path.basename(path)):
        text = f"{path}: {text}"
    return f"prodture: trace not loaded — {clip(text, 300)}; re-record it or remove it from the active traces"
