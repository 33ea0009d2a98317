"""A directory of ``.prodtrace`` files as a trace store (what ``DirectorySink`` writes).

Nothing is indexed: ``list`` reads the traces it needs to (the start time in each file name
``<UTC time>-<handler>-<id12>.prodtrace`` lets ``since`` and the newest-first order skip the
rest), ``fetch`` finds a file by the id in its name and falls back to reading headers for files
named otherwise. For many thousands of traces, import them into a PostgreSQL store.
"""

from __future__ import annotations

import builtins  # the stores' list() method shadows the type inside the class
import dataclasses
import datetime as _dt
import os
import re

from ..recorder import DirectorySink, TraceInfo
from ..trace.codec import TraceFormatError
from . import AmbiguousId, Query, StoreError, TraceNotFound, TraceSummary, summarize

__all__ = ["DirectoryStore", "check_id_prefix"]

_NAME = re.compile(r"^(\d{8}T\d{6}\.\d{6}Z)-.*-([0-9A-Za-z]{1,12})\.prodtrace$")
_ID_PREFIX = re.compile(r"^[0-9a-fA-F-]{1,64}$")


def check_id_prefix(text: str) -> str:
    prefix = text.strip().lower()
    if not _ID_PREFIX.match(prefix):
        raise StoreError(f"{text!r} is not a trace id: ids are hexadecimal (e.g. 3f2a9c01…)")
    return prefix


def _stamp(name: str) -> tuple[_dt.datetime | None, str]:
    found = _NAME.match(name)
    if not found:
        return None, ""
    when = _dt.datetime.strptime(found.group(1), "%Y%m%dT%H%M%S.%fZ")
    return when.replace(tzinfo=_dt.timezone.utc), found.group(2).lower()


class DirectoryStore:
    def __init__(self, directory: str) -> None:
        self.location = self.directory = os.path.abspath(directory)

    def _files(self) -> list[tuple[_dt.datetime | None, str, str]]:
        """(start time from the name, id part of the name, path), newest first."""
        found = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.name.endswith(".prodtrace") and entry.is_file():
                    when, short = _stamp(entry.name)
                    found.append((when, short, entry.path))
        epoch = _dt.datetime.min.replace(tzinfo=_dt.timezone.utc)
        found.sort(key=lambda f: (f[0] or epoch, f[2]), reverse=True)
        return found

    def _summary(self, path: str) -> TraceSummary | None:
        try:
            with open(path, "rb") as f:
                data = f.read()
            return _with_location(summarize(data), path)
        except (OSError, TraceFormatError):
            return None  # not a readable trace: a directory store lists what it can read

    def list(self, query: Query) -> list[TraceSummary]:
        out: list[TraceSummary] = []
        for when, _short, path in self._files():
            if query.since and when is not None and when < query.since:
                break  # names sort by start time: everything after is older
            summary = self._summary(path)
            if summary is not None and query.matches(summary):
                out.append(summary)
                if len(out) >= query.limit:
                    break
        return out

    def fetch(self, id_or_prefix: str) -> tuple[TraceSummary, bytes]:
        prefix = check_id_prefix(id_or_prefix)
        files = self._files()
        by_name = [p for _w, short, p in files if short and _compatible(short, prefix)]
        named = {p for _w, short, p in files if short}
        # Files named otherwise (copied, renamed) are found by reading their headers.
        candidates = by_name + [p for _w, _s, p in files if p not in named]
        matches: list[tuple[TraceSummary, bytes]] = []
        for path in candidates:
            try:
                with open(path, "rb") as f:
                    data = f.read()
                summary = _with_location(summarize(data), path)
            except (OSError, TraceFormatError):
                continue
            if summary.trace_id.lower().startswith(prefix):
                matches.append((summary, data))
        return _one(prefix, matches, self.location)

    def put_many(self, traces: builtins.list[tuple[TraceSummary, bytes]]) -> int:
        existing = {short for _w, short, _p in self._files()}
        sink = DirectorySink(self.directory)
        written = 0
        for summary, data in traces:
            if summary.trace_id[:12].lower() in existing and self._has(summary.trace_id):
                continue
            started = summary.started_at or _dt.datetime.now(_dt.timezone.utc)
            stream = sink.open(TraceInfo(summary.handler, summary.trace_id, started))
            try:
                stream.write(data)
            finally:
                stream.close()
            written += 1
        return written

    def _has(self, trace_id: str) -> bool:
        try:
            self.fetch(trace_id)
            return True
        except TraceNotFound:
            return False

    def prune(self, older_than: _dt.timedelta) -> int:
        """Delete traces that started more than ``older_than`` ago (by the time in the file
        name, or the file's modification time for files named otherwise)."""
        cutoff = _dt.datetime.now(_dt.timezone.utc) - older_than
        removed = 0
        for when, _short, path in self._files():
            if when is None:
                try:
                    when = _dt.datetime.fromtimestamp(os.stat(path).st_mtime, _dt.timezone.utc)
                except OSError:
                    continue
            if when < cutoff:
                try:
                    os.unlink(path)
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed

    def close(self) -> None:
        pass


def _compatible(short: str, prefix: str) -> bool:
    return short.startswith(prefix) if len(prefix) <= len(short) else prefix.startswith(short)


def _with_location(summary: TraceSummary, path: str) -> TraceSummary:
    return dataclasses.replace(summary, location=path)


def _one(
    prefix: str, matches: list[tuple[TraceSummary, bytes]], location: str
) -> tuple[TraceSummary, bytes]:
    if not matches:
        raise TraceNotFound(f"no trace with id {prefix!r} in {location}")
    ids = {s.trace_id for s, _ in matches}
    exact = [m for m in matches if m[0].trace_id.lower() == prefix]
    if exact:
        return exact[0]
    if len(ids) > 1:
        raise AmbiguousId(prefix, [s for s, _ in matches])
    return matches[0]
