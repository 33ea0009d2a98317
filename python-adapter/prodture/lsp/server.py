"""Builds the prodture ``LanguageServer`` (pygls 2) and runs it on stdio.

The server's state: the active traces (:mod:`.active_traces`), the last good analysis of each open
Python document, the latest quick-replay divergence per trace (:mod:`.diagnostics`) and whether
the client trusts the folder enough to replay its code (:mod:`.trust`). Every
feature reads *views*: each relevant active trace mapped onto the document's current text
(:mod:`.source_map`), cached per document version and trace-set generation.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from .. import __version__
from . import active_traces, code_lens, diagnostics, hover, inlay_hints, trace_summary
from .active_traces import ActiveTraces
from .source_map import DocumentAnalysis, SiteMap, analyze, map_trace
from .trust import ReplayTrust

log = logging.getLogger("prodture.lsp")


class ProdtureLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("prodture", __version__)
        self.traces = ActiveTraces()
        self.pending_options: dict[str, Any] | None = None
        self._analyses: dict[str, tuple[int | None, DocumentAnalysis]] = {}
        self._views: dict[str, tuple[tuple[Any, ...], list[SiteMap]]] = {}
        self.divergences: dict[str, diagnostics.ReplayFinding] = {}
        self.replay_trust = ReplayTrust()
        self.replay_timeout = diagnostics.REPLAY_TIMEOUT

    # -- documents ----------------------------------------------------------------------------

    def roots(self) -> list[str]:
        try:
            ws = self.workspace
        except RuntimeError:
            return []
        roots = [to_fs_path(f.uri) for f in ws.folders.values()] if ws.folders else []
        if ws.root_path:
            roots.append(ws.root_path)
        return [r for r in roots if r]

    def analysis(self, uri: str) -> DocumentAnalysis | None:
        """The document's analysis; while it does not parse, the last one that did."""
        path = to_fs_path(uri)
        if not path or not path.endswith((".py", ".pyi")):
            return None
        doc = self.workspace.get_text_document(uri)
        cached = self._analyses.get(uri)
        if cached is not None and cached[0] == doc.version and doc.version is not None:
            return cached[1]
        try:
            text = doc.source  # a document the client has not opened is read from disk
        except (OSError, UnicodeDecodeError):
            return None
        try:
            result = analyze(path, text, self.roots())
        except (SyntaxError, ValueError):  # mid-edit: keep what we had
            return cached[1] if cached is not None else None
        self._analyses[uri] = (doc.version, result)
        return result

    def forget(self, uri: str) -> None:
        self._analyses.pop(uri, None)
        self._views.pop(uri, None)

    def views(self, uri: str) -> list[SiteMap]:
        """Every active trace that concerns this document, mapped onto its current text."""
        a = self.analysis(uri)
        if a is None:
            return []
        cached = self._views.get(uri)
        # Keyed on the analysis object itself (not its id, which a new one may reuse).
        if cached is not None and cached[0][0] is a and cached[0][1] == self.traces.generation:
            return cached[1]
        maps = [m for m in (map_trace(t, a) for t in self.traces.active()) if m.relevant]
        self._views[uri] = ((a, self.traces.generation), maps)
        return maps

    def primary_views(self, uri: str) -> list[SiteMap]:
        """Views of the primary trace of each handler (the first listed trace of that handler)."""
        primaries = {id(t) for t in self.traces.primaries().values()}
        return [m for m in self.views(uri) if id(m.trace) in primaries]

    def open_uris(self) -> list[str]:
        try:
            return list(self.workspace.text_documents.keys())
        except RuntimeError:
            return []

    # -- changes ------------------------------------------------------------------------------

    def traces_changed(self) -> None:
        listed = set(self.traces.listed)
        for path in list(self.divergences):
            if path not in listed:
                del self.divergences[path]
        self._views.clear()
        for uri in self.open_uris():
            diagnostics.publish(self, uri)
        self.refresh_views()

    def refresh_views(self) -> None:
        """Ask the client to pull inlay hints and code lenses again, if it can."""
        ws = self.client_capabilities.workspace if self.client_capabilities else None
        try:
            if ws and ws.inlay_hint and ws.inlay_hint.refresh_support:
                self.workspace_inlay_hint_refresh(None)
            if ws and ws.code_lens and ws.code_lens.refresh_support:
                self.workspace_code_lens_refresh(None)
        except Exception:  # a client that fails a refresh must not break the server
            log.exception("refresh request failed")


def build() -> ProdtureLanguageServer:
    server = ProdtureLanguageServer()
    active_traces.register(server)
    diagnostics.register(server)
    hover.register(server)
    inlay_hints.register(server)
    code_lens.register(server)
    trace_summary.register(server)
    return server


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m prodture.lsp", description="prodture language server (LSP on stdio)"
    )
    parser.add_argument(
        "--log-file", help="write the server's log here (stdout carries the protocol)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    # vscode-languageclient appends --stdio for its stdio transport; stdio is our only transport.
    parser.add_argument(
        "--stdio",
        action="store_true",
        help="speak LSP on stdin/stdout (the default and only transport)",
    )
    args = parser.parse_args(argv)
    target: dict[str, Any] = (
        {"filename": args.log_file} if args.log_file else {"stream": sys.stderr}
    )
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        **target,
    )
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        build().start_io()
    finally:
        diagnostics.stop_replays()  # the client went away without a shutdown
