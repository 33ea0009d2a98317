"""The active traces: ``initializationOptions`` and the ``prodture/setActiveTraces`` notification.

``initializationOptions = {traces: [path...], traceFolders: [dir...]}`` sets the starting state;
``prodture/setActiveTraces {traces: [path...], traceFolders?: [dir...]}`` replaces it (see
``protocol/lsp.md``). *Listed* traces are indexed (hover, inlay hints, diagnostics, quick replay);
traces found in *folders* are only counted by their headers for the code lenses. The first listed
trace of a handler is its *primary* trace: inlay hints, the failure diagnostic and the quick
replay on save use it. A trace that cannot be read is reported with ``window/showMessage`` and
left out; the server keeps running.
"""

from __future__ import annotations

import builtins
import datetime as _dt
import glob
import logging
import os
from collections.abc import Iterable
from typing import Any

from lsprotocol import types

from .index import (
    TraceHeaderInfo,
    TraceIndex,
    describe_load_error,
    file_stamp,
    load_index,
    read_header,
)

log = logging.getLogger("prodture.lsp")

SET_ACTIVE_TRACES = "prodture/setActiveTraces"

#: At most this many trace files are listed from trace folders (headers only).
MAX_FOLDER_TRACES = 5_000


def _strings(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str) and v]
    return []


def _field(params: Any, name: str) -> Any:
    """A field of custom params: pygls gives a namedtuple (or a dict, or None)."""
    if params is None:
        return None
    if isinstance(params, dict):
        return params.get(name)
    return getattr(params, name, None)


class ActiveTraces:
    def __init__(self) -> None:
        self.listed: list[str] = []
        self.folders: list[str] = []
        self._indexes: dict[str, TraceIndex] = {}
        self._folder_headers: dict[str, TraceHeaderInfo] = {}
        self.generation = 0  # bumped on every change; caches of derived views key on it

    def set(
        self, traces: Iterable[str], folders: Iterable[str] | None = None, base: str | None = None
    ) -> list[str]:
        """Replace the set; returns one-line errors for traces that could not be loaded."""

        def absolute(p: str) -> str:
            p = os.path.expanduser(p)
            return os.path.abspath(os.path.join(base, p) if base and not os.path.isabs(p) else p)

        errors: list[str] = []
        listed: list[str] = []
        indexes: dict[str, TraceIndex] = {}
        for raw in traces:
            path = absolute(raw)
            if path in indexes:
                continue
            try:
                old = self._indexes.get(path)
                if old is not None and old.stamp == file_stamp(path):
                    indexes[path] = old  # unchanged on disk: keep the index
                else:
                    indexes[path] = load_index(path)
                listed.append(path)
            except Exception as e:  # one bad trace must not take the others (or the server) down
                errors.append(describe_load_error(path, e))
        self.listed, self._indexes = listed, indexes
        if folders is not None:
            self.folders = [absolute(f) for f in folders]
        self._scan_folders()
        self.generation += 1
        return errors

    def _scan_folders(self) -> None:
        headers: dict[str, TraceHeaderInfo] = {}
        for folder in self.folders:
            paths = glob.glob(
                os.path.join(glob.escape(folder), "**", "*.prodtrace"), recursive=True
            )
            for path in sorted(paths)[:MAX_FOLDER_TRACES]:
                path = os.path.abspath(path)
                old = self._folder_headers.get(path)
                info = old if old is not None else read_header(path)
                if info is not None:
                    headers[path] = info
        self._folder_headers = headers

    def active(self) -> list[TraceIndex]:
        """Indexed traces, in the order they were listed."""
        return [self._indexes[p] for p in self.listed]

    def get(self, path: str) -> TraceIndex | None:
        return self._indexes.get(os.path.abspath(path))

    def primaries(self) -> dict[str, TraceIndex]:
        """handler → its first listed trace."""
        out: dict[str, TraceIndex] = {}
        for t in self.active():
            out.setdefault(t.handler, t)
        return out

    def folder_handlers(self) -> builtins.set[str]:  # `set` here is the method below
        return {i.handler for i in self._folder_headers.values()}

    def for_handler(self, handler: str) -> list[TraceHeaderInfo]:
        """Every known trace of ``handler`` (listed and in folders), latest first."""
        found: dict[str, TraceHeaderInfo] = {}
        for t in self.active():
            if t.handler == handler:
                found[t.path] = TraceHeaderInfo(t.path, t.handler, t.started_at)
        for path, info in self._folder_headers.items():
            if info.handler == handler:
                found.setdefault(path, info)
        oldest = _dt.datetime.min.replace(tzinfo=_dt.timezone.utc)

        def key(i: TraceHeaderInfo) -> tuple[_dt.datetime, str]:
            t = i.started_at or oldest
            return (t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc), i.path)

        return sorted(found.values(), key=key, reverse=True)


def register(server: Any) -> None:
    """Serves ``prodture/setActiveTraces`` and reads ``initializationOptions``."""

    @server.feature(types.INITIALIZE)
    def initialize(ls: Any, params: types.InitializeParams) -> None:
        options = (
            params.initialization_options if isinstance(params.initialization_options, dict) else {}
        )
        ls.pending_options = options
        ls.replay_trust.configure(options)  # workspaceTrusted, quickReplay
        timeout = options.get("replayTimeout")
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
            ls.replay_timeout = float(timeout)

    @server.feature(types.INITIALIZED)
    def initialized(ls: Any, params: types.InitializedParams) -> None:
        options = ls.pending_options or {}
        ls.pending_options = None
        apply(ls, _strings(options.get("traces")), _strings(options.get("traceFolders")))

    @server.feature(SET_ACTIVE_TRACES)
    def set_active_traces(ls: Any, params: Any) -> None:
        folders = _field(params, "traceFolders")
        apply(
            ls,
            _strings(_field(params, "traces")),
            _strings(folders) if folders is not None else None,
        )


def apply(ls: Any, traces: list[str], folders: list[str] | None) -> None:
    try:
        base = ls.workspace.root_path
    except RuntimeError:  # not initialized yet: paths must be absolute
        base = None
    errors = ls.traces.set(traces, folders, base=base)
    for message in errors:
        ls.window_show_message(
            types.ShowMessageParams(type=types.MessageType.Error, message=message)
        )
    log.info("active traces: %d listed, %d errors", len(ls.traces.listed), len(errors))
    ls.traces_changed()
