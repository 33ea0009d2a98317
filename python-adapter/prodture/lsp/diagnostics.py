"""``textDocument/publishDiagnostics``: the recorded failure, and quick replay on save.

* The effect whose error ended the handler in its primary trace is an Error at that call's
  current line (code ``recorded-failure``).
* On ``textDocument/didSave`` the primary trace of every handler concerned by the file is
  replayed headlessly against the *saved* code, in a subprocess (``python -m prodture.cli replay
  TRACE --json --cwd PROJECT``), with a time limit. A divergence is a Warning (code
  ``divergence``) at the line where the code now differs, with the recorded-vs-now difference; a
  replay that cannot run is an Information diagnostic on the handler (code ``replay-error``). A
  replay that reproduces clears them. Until the next save, hints at and after the diverging
  effect are withheld (:mod:`.inlay_hints`).
* A replay runs the folder's code (it imports the handler's modules), so it only runs when the
  client says the folder is trusted (:mod:`.trust`). Otherwise a save starts no process and
  leaves an Information diagnostic on the handler (code ``replay-untrusted``) saying why and
  how to trust the folder; it goes when trust is granted.

Also keeps the server's document state current (``didOpen`` / ``didChange`` / ``didClose``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import sys
from typing import Any

from lsprotocol import types
from pygls.uris import to_fs_path

from . import trust
from .render import clip, short_id, when
from .source_map import SiteMap
from .trust import ReplayTrust

log = logging.getLogger("prodture.lsp")

SOURCE = "prodture"
#: Seconds a quick replay may take before it is stopped (``initializationOptions.replayTimeout``).
REPLAY_TIMEOUT = 10.0


@dataclasses.dataclass(slots=True)
class ReplayFinding:
    """What the last quick replay of one trace found (anything but "reproduced")."""

    trace_path: str
    kind: str  # "divergence" | "error" | "untrusted" (not replayed: the folder is not trusted)
    message: str
    effect_seq: int | None = None  # the diverging effect (None: outcome, or no replay)
    file: str | None = None  # local file of the code's call site, when the replay knows it
    line: int | None = None  # 1-based


def _line_range(lines: list[str], line0: int) -> types.Range:
    text = lines[line0].rstrip("\r\n") if 0 <= line0 < len(lines) else ""
    indent = len(text) - len(text.lstrip())
    return types.Range(
        start=types.Position(line=line0, character=indent),
        end=types.Position(line=line0, character=len(text.encode("utf-16-le")) // 2),
    )


def _locate(ls: Any, finding: ReplayFinding, uri: str, views: list[SiteMap]) -> int | None:
    """1-based line of ``finding`` in this document, or None if it is not about this document."""
    path = os.path.abspath(to_fs_path(uri) or "")
    if finding.file is not None:
        return finding.line if os.path.abspath(finding.file) == path else None
    view = next((v for v in views if v.trace.path == finding.trace_path), None)
    if view is None:
        return None
    if finding.effect_seq is not None:
        call = view.call_for(view.trace.site_for(finding.effect_seq))
        if call is not None:
            return call.line
    return view.handler.line if view.handler is not None else None


def compute(ls: Any, uri: str) -> list[types.Diagnostic]:
    doc = ls.workspace.get_text_document(uri)
    lines = doc.lines
    out: list[types.Diagnostic] = []
    views = ls.views(uri)
    for view in ls.primary_views(uri):
        t = view.trace
        finding = ls.divergences.get(t.path)
        if t.outcome_ok is not False or t.failed is None:
            continue
        if (
            finding is not None
            and finding.effect_seq is not None
            and t.failed.seq >= finding.effect_seq
        ):
            continue  # the code diverges before (or at) the recorded failure: it is stale
        call = view.call_for(t.failed_site)
        if call is None:
            continue
        out.append(
            types.Diagnostic(
                range=_line_range(lines, call.line - 1),
                severity=types.DiagnosticSeverity.Error,
                source=SOURCE,
                code="recorded-failure",
                message=(
                    f"Recorded in production: {t.failed.request} failed — {t.failed.result} "
                    f"(effect #{t.failed.seq}, trace {short_id(t.trace_id)}, {when(t.started_at)})"
                ),
            )
        )
    for finding in ls.divergences.values():
        line = _locate(ls, finding, uri, views)
        if line is None:
            continue
        trace = ls.traces.get(finding.trace_path)
        name = (
            f"trace {short_id(trace.trace_id)}" if trace else os.path.basename(finding.trace_path)
        )
        if finding.kind == "untrusted":
            out.append(
                types.Diagnostic(
                    range=_line_range(lines, line - 1),
                    severity=types.DiagnosticSeverity.Information,
                    source=SOURCE,
                    code="replay-untrusted",
                    message=f"Quick replay of {name} is off: {finding.message}",
                )
            )
        elif finding.kind == "divergence":
            out.append(
                types.Diagnostic(
                    range=_line_range(lines, line - 1),
                    severity=types.DiagnosticSeverity.Warning,
                    source=SOURCE,
                    code="divergence",
                    message=f"Replay of {name} diverges: {finding.message}",
                )
            )
        else:
            out.append(
                types.Diagnostic(
                    range=_line_range(lines, line - 1),
                    severity=types.DiagnosticSeverity.Information,
                    source=SOURCE,
                    code="replay-error",
                    message=f"Quick replay of {name} could not run: {finding.message}",
                )
            )
    return out


def publish(ls: Any, uri: str) -> None:
    if ls.analysis(uri) is None:
        return
    doc = ls.workspace.get_text_document(uri)
    ls.text_document_publish_diagnostics(
        types.PublishDiagnosticsParams(uri=uri, version=doc.version, diagnostics=compute(ls, uri))
    )


# ---------------------------------------------------------------------------------------------
# Quick replay


def project_dir(path: str, roots: list[str]) -> str:
    """Where the replay runs: the nearest directory with a pyproject.toml at or above the file
    (it lists ``[tool.prodture] modules``), else the workspace folder holding it."""
    directory = os.path.dirname(os.path.abspath(path))
    containing = [
        os.path.abspath(r)
        for r in roots
        if os.path.abspath(path).startswith(os.path.abspath(r) + os.sep)
    ]
    stop = max(containing, key=len) if containing else None
    d = directory
    while True:
        if os.path.isfile(os.path.join(d, "pyproject.toml")):
            return d
        if d == stop:
            break
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    return stop or directory


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # The replay must import the same prodture as this server, however it was installed.
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    env.pop("PYTHONSTARTUP", None)
    return env


_running_processes: set[asyncio.subprocess.Process] = set()


def _kill(proc: asyncio.subprocess.Process) -> None:
    _running_processes.discard(proc)
    if proc.returncode is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass


def stop_replays() -> None:
    """Kill replays still running (the server is shutting down): none outlives the server."""
    for proc in list(_running_processes):
        _kill(proc)


async def replay(
    trace_path: str, cwd: str, timeout: float, permission: ReplayTrust
) -> ReplayFinding | None:
    """Run the CLI's replay on ``trace_path``; None when it reproduces."""
    refusal = permission.refusal()
    if (
        refusal is not None or not permission.allows_replay
    ):  # the last gate before the folder's code
        return ReplayFinding(trace_path, "untrusted", refusal or "quick replay is off")
    cmd = [sys.executable, "-m", "prodture.cli", "replay", trace_path, "--json", "--cwd", cwd]
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=cwd,
        env=_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _running_processes.add(proc)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (asyncio.TimeoutError, asyncio.CancelledError) as e:
        _kill(proc)
        await proc.wait()
        if isinstance(e, asyncio.CancelledError):
            raise
        return ReplayFinding(
            trace_path,
            "error",
            f"it took longer than {timeout:g} s and was stopped; "
            "look for a loop that never ends, or replay it with 'prodture replay'",
        )
    _running_processes.discard(proc)
    if proc.returncode == 0:
        return None
    if proc.returncode == 1:
        try:
            d = json.loads(out.decode("utf-8", "replace"))["divergence"]
            site = d.get("site") or {}
            return ReplayFinding(
                trace_path,
                "divergence",
                clip(str(d.get("message", "")), 1000),
                effect_seq=d.get("effect") if isinstance(d.get("effect"), int) else None,
                file=site.get("file") if isinstance(site.get("file"), str) else None,
                line=site.get("line") if isinstance(site.get("line"), int) else None,
            )
        except Exception as e:  # a CLI that speaks another dialect: say so, do not crash
            return ReplayFinding(
                trace_path, "error", f"unreadable replay output ({type(e).__name__}: {e})"
            )
    text = err.decode("utf-8", "replace").strip().splitlines()
    message = text[-1] if text else f"the replay exited with status {proc.returncode}"
    return ReplayFinding(trace_path, "error", clip(message.removeprefix("prodture: "), 500))


def register(server: Any) -> None:
    running: dict[str, asyncio.Task[Any]] = {}

    def trust_changed(ls: Any) -> None:
        """The client's trust changed: stop replays it no longer allows, drop stale refusals."""
        if not ls.replay_trust.allows_replay:
            for task in running.values():
                task.cancel()
            stop_replays()
        else:
            for path, finding in list(ls.divergences.items()):
                if finding.kind == "untrusted":
                    del ls.divergences[path]
        for open_uri in ls.open_uris():
            publish(ls, open_uri)
        ls.refresh_views()  # the code lenses say whether Replay and Debug are on

    trust.register(server, trust_changed)

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: Any, params: None) -> None:
        for task in running.values():
            task.cancel()
        stop_replays()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: Any, params: types.DidOpenTextDocumentParams) -> None:
        publish(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: Any, params: types.DidChangeTextDocumentParams) -> None:
        publish(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: Any, params: types.DidCloseTextDocumentParams) -> None:
        ls.forget(params.text_document.uri)
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[])
        )

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))
    async def did_save(ls: Any, params: types.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        if not ls.replay_trust.enabled or ls.analysis(uri) is None:
            return
        roots = ls.roots()
        cwd = project_dir(to_fs_path(uri) or "", roots)
        # The traces of this file, and of any open file of the same project: saving a module the
        # handler calls (say, the pricing code) changes what the handler does too.
        paths: list[str] = [v.trace.path for v in ls.primary_views(uri)]
        for other in ls.open_uris():
            if (
                other != uri
                and ls.analysis(other) is not None
                and project_dir(to_fs_path(other) or "", roots) == cwd
            ):
                paths += [v.trace.path for v in ls.primary_views(other) if v.handler is not None]
        refusal = ls.replay_trust.refusal()
        if refusal is not None:
            # Not trusted: no process, no import of the folder's code — say so on the handler.
            for path in dict.fromkeys(paths):
                ls.divergences[path] = ReplayFinding(path, "untrusted", refusal)
                ls.window_log_message(
                    types.LogMessageParams(
                        type=types.MessageType.Info,
                        message=f"prodture: quick replay of {os.path.basename(path)} not run: "
                        f"{refusal}",
                    )
                )
            for open_uri in ls.open_uris():
                publish(ls, open_uri)
            return
        jobs = []
        for path in dict.fromkeys(paths):
            old = running.pop(path, None)
            if old is not None:
                old.cancel()  # a newer save supersedes it
            task = asyncio.ensure_future(replay(path, cwd, ls.replay_timeout, ls.replay_trust))
            running[path] = task
            jobs.append((path, task))
        for path, task in jobs:
            try:
                finding = await task
            except asyncio.CancelledError:
                continue
            except Exception as e:  # could not even start the process
                finding = ReplayFinding(path, "error", f"{type(e).__name__}: {e}")
            finally:
                if running.get(path) is task:
                    del running[path]
            if path not in ls.traces.listed:
                continue  # the trace was removed meanwhile
            if finding is None:
                ls.divergences.pop(path, None)
                ls.window_log_message(
                    types.LogMessageParams(
                        type=types.MessageType.Info,
                        message=f"prodture: quick replay of {os.path.basename(path)} reproduced",
                    )
                )
            else:
                ls.divergences[path] = finding
        for open_uri in ls.open_uris():
            publish(ls, open_uri)
        ls.refresh_views()
