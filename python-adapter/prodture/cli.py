"""The ``prodture`` command line.

``prodture show TRACE`` prints a trace; ``prodture replay TRACE`` replays it against the current
code. Both take ``--json``. Exit codes (a contract other tools rely on): ``show`` 0; ``replay`` 0
when the code reproduces the trace exactly, 1 on a divergence, 2 on any error. Every error is one
line on stderr starting ``prodture: `` — never a Python traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pprint
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .replay import (
    EXPECT_FIXED_SUFFIX,
    SPECULATIVE,
    STRICT,
    Replayer,
    ReplayError,
    ReplayResult,
    check_fixed,
    load_stubs,
)
from .runtime import Success
from .store_url import StoreConfigError, mask_password, resolve_store
from .stores import AmbiguousId, Query, StoreError, TraceSummary, parse_age, parse_since
from .text import clip, short_repr
from .trace.codec import RecordedError, TraceFormatError
from .trace.format import Trace, read_header, read_trace
from .trace.render import effect_to_json, outcome_to_json, to_json, trace_to_json

__all__ = ["main"]

EXIT_OK, EXIT_DIVERGED, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, as the contract says
        self.exit(EXIT_ERROR, f"prodture: {message} (see 'prodture --help')\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="prodture", description="Show and replay prodture traces.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    show = sub.add_parser("show", help="print a trace: header, input, effects, outcome")
    show.add_argument("trace", help="path to a .prodtrace file")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.add_argument(
        "--full", action="store_true", help="whole values: every request, result and error"
    )
    show.add_argument(
        "--effect", type=int, metavar="N", help="only effect #N, with its whole values"
    )
    replay = sub.add_parser(
        "replay",
        help="replay a trace against the current code (exit 0 reproduced, 1 diverged, 2 error)",
    )
    replay.add_argument("trace", help="path to a .prodtrace file")
    replay.add_argument("--json", action="store_true", help="machine-readable output")
    replay.add_argument(
        "--handler",
        metavar="MODULE:FUNCTION",
        help="replay this handler instead of the one the trace names",
    )
    replay.add_argument(
        "--mode",
        choices=[STRICT, SPECULATIVE],
        default=STRICT,
        help="stop at the first divergence (strict) or keep going (speculative)",
    )
    replay.add_argument(
        "--stubs",
        metavar="MODULE:NAME",
        help="speculative mode: answers for effects the trace cannot answer: a dict "
        "{EffectType or name: function(effect) -> result}, or a function returning one",
    )
    replay.add_argument(
        "--expect-fixed",
        action="store_true",
        help="the trace recorded a bug: exit 0 when the recorded failure no longer happens "
        f"(implied for files named *{EXPECT_FIXED_SUFFIX}); speculative",
    )
    replay.add_argument(
        "--cwd",
        help="project directory (where pyproject.toml lists [tool.prodture] modules); default: the current directory",
    )
    split = sub.add_parser(
        "split",
        help="split a segment file (many traces, DirectorySink(segment_bytes=...)) into "
        ".prodtrace files, one per trace",
    )
    split.add_argument("segment", help="path to a .prodtraces segment file")
    split.add_argument(
        "--out",
        metavar="DIR",
        help="where the .prodtrace files go (default: a directory named after the segment)",
    )
    _store_commands(sub)
    _add_events_parser(sub)
    return parser


def _add_events_parser(sub: Any) -> None:
    """``prodture events ...`` (event stores: fetch, speculate, streams, editions)."""
    from .eventsourcing.cli import add_parser

    add_parser(sub)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().error("missing command: use show, replay, split, list, fetch, import or prune")
    try:
        if args.command == "show":
            return _show(args)
        if args.command == "split":
            return _split(args)
        if args.command in _STORE_COMMANDS:
            return _STORE_COMMANDS[args.command](args)
        if args.command == "events":
            return _events(args)
        return _replay(args)
    except (ReplayError, TraceFormatError) as e:
        return _fail(str(e))
    except AmbiguousId as e:
        _fail(f"{e}:")
        for c in e.candidates:
            print(f"  {_summary_line(c)}", file=sys.stderr)
        return EXIT_ERROR
    except (StoreError, StoreConfigError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return _fail("interrupted")
    except Exception as e:  # the contract: one line, never a traceback
        return _fail(f"internal error: {type(e).__name__}: {e} (please report it)")


def _split(args: argparse.Namespace) -> int:
    """Write each trace of a segment file as ``<trace id>.prodtrace`` (never over a file that
    exists: a trace split twice is not written twice)."""
    from .recorder import segment_traces

    source = Path(args.segment)
    try:
        traces = segment_traces(source)
    except OSError as e:
        return _fail(f"cannot read {source}: {e.strerror or e}")
    except ValueError as e:
        return _fail(f"{e}; only segment files (.prodtraces) can be split")
    out = Path(args.out) if args.out else source.with_suffix("")
    out.mkdir(parents=True, exist_ok=True)
    written = kept = unreadable = 0
    for number, data in enumerate(traces, 1):
        try:
            name = f"{read_header(data).trace_id}.prodtrace"
        except TraceFormatError:  # a killed writer's last trace, cut short in its header
            unreadable += 1
            name = f"{source.stem}-{number}.partial.prodtrace"
        try:
            fd = os.open(out / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            kept += 1
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        written += 1
    print(
        f"{written} traces written to {out}"
        + (f" ({kept} already there)" if kept else "")
        + (f" ({unreadable} cut short: *.partial.prodtrace)" if unreadable else "")
    )
    return EXIT_OK


def _fail(message: str) -> int:
    first = message.splitlines()[0] if message else "unknown error"
    print(f"prodture: {first}", file=sys.stderr)
    return EXIT_ERROR


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


@contextlib.contextmanager
def _reader_may_stop() -> Iterator[None]:
    """Output to a reader that may stop reading (``prodture show T | head -2``): a closed pipe
    is a normal end for a command-line tool, so the rest of the output is dropped quietly."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        # Point stdout at /dev/null so that the interpreter's own flush at exit does not fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


# ---------------------------------------------------------------------------------------------
# show


def _show(args: argparse.Namespace) -> int:
    from .eventsourcing import fetch  # registers the event book types a trace may hold

    trace = read_trace(args.trace)
    with _reader_may_stop():
        if args.effect is not None:
            matching = [e for e in trace.effects if e.seq == args.effect]
            if not matching:
                return _fail(
                    f"{args.trace} has no effect #{args.effect}: it has #1 to #{len(trace.effects)}"
                    if trace.effects
                    else f"{args.trace} has no effects"
                )
            if args.json:
                _out(json.dumps(effect_to_json(matching[0]), indent=2, ensure_ascii=False))
            else:
                _print_effect_full(matching[0], trace)
            return EXIT_OK
        context = fetch.failure_context(trace)
        if args.json:
            data = trace_to_json(trace)
            if context["domain"] or context["correlation_id"]:
                data["failure_context"] = context
            _out(json.dumps(data, indent=2, ensure_ascii=False))
            return EXIT_OK
        _print_trace(trace, full=args.full)
        if trace.outcome is not None and not trace.outcome.ok and context["domain"]:
            seq = "?" if context["sequence"] is None else context["sequence"]
            _out(
                f"failure  domain {context['domain']}, root {context['root']}, sequence {seq}, "
                f"correlation id {context['correlation_id'] or '-'}: {context['error']}"
            )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# events


def _events(args: argparse.Namespace) -> int:
    from .eventsourcing.cli import run

    return run(args, _out, _fail)


def _whole(value: Any) -> str:
    return pprint.pformat(value, width=96, sort_dicts=False)


def _indented(text: str, prefix: str = "         ") -> str:
    return text.replace("\n", "\n" + prefix)


def _print_effect_full(e: Any, trace: Trace) -> None:
    failed = trace.outcome.failed_effect if trace.outcome else None
    escaped = " (its error escaped the handler)" if e.seq == failed else ""
    _out(f"effect   #{e.seq} {e.type}{escaped}")
    if e.site:
        _out(f"at       {e.site[0]}:{e.site[1]} in {e.site[2]}")
        line = _source_line(e.site[0], e.site[1])
        if line:
            _out(f"         {line}")
    for name, value in zip(e.fields, e.values, strict=False):
        _out(f"  {name} = {_indented(_whole(value), '    ')}")
    if e.ok:
        _out(f"result   {_indented(_whole(e.result))}")
    else:
        _out(f"error    {_indented(_whole(e.error))}")
        attrs = (
            {}
            if isinstance(e.error, RecordedError)  # its attributes are prodture's, not the app's
            else {k: v for k, v in vars(e.error).items() if not k.startswith("_")}
        )
        for name, value in attrs.items():
            _out(f"  .{name} = {_indented(_whole(value), '    ')}")
    _out(f"took     {e.duration_ns / 1e6:.3f} ms")


def _source_line(filename: str, lineno: int) -> str:
    import linecache

    return linecache.getline(filename, lineno).strip()


def _raising_line(traceback_text: str) -> str | None:
    """``file:line in function: code`` of the innermost frame of a recorded traceback."""
    import re

    frames = re.findall(r'^  File "(.+)", line (\d+), in (.+)$', traceback_text, re.M)
    if not frames:
        return None
    filename, lineno, function = frames[-1]
    return _site_line((filename, int(lineno), function))


def _site_line(site: tuple[str, int, str]) -> str:
    code = _source_line(site[0], site[1])
    where = f"{site[0]}:{site[1]} in {site[2]}"
    return f"{where}: {code}" if code else where


def _print_trace(trace: Trace, *, full: bool = False) -> None:
    h = trace.header
    when = h.started_at.strftime("%Y-%m-%d %H:%M:%S UTC") if h.started_at else "unknown time"
    _out(f"trace    {trace.source}")
    _out(f"handler  {h.handler}   (id {h.trace_id[:12]}, {when}, Python {h.python or '?'})")
    _out(f"input    {_indented(_whole(trace.input)) if full else short_repr(trace.input, 200)}")
    failed = trace.outcome.failed_effect if trace.outcome else None
    _out(f"effects  {len(trace.effects)}")
    if full:
        for e in trace.effects:
            _out()
            _print_effect_full(e, trace)
        _out()
    width = max((len(e.describe_request(70)) for e in trace.effects), default=0)
    for e in [] if full else trace.effects:
        arrow = "→" if e.ok else "✗"
        marker = "!" if e.seq == failed else " "
        where = f"{os.path.basename(e.site[0])}:{e.site[1]}" if e.site else ""
        _out(
            f" {marker}#{e.seq:<3} {e.describe_request(70):<{width}}  {arrow} {e.describe_result(70)}"
            f"   {e.duration_ns / 1e6:.1f} ms  {where}"
        )
    if trace.outcome is None:
        last = len(trace.effects)
        _out(f"outcome  none: the trace is incomplete (the recording stopped after effect #{last})")
    elif trace.outcome.ok:
        _out(f"outcome  {trace.outcome.describe(10**9 if full else 200)}")
    else:
        at = f" at effect #{failed}" if failed else ""
        limit = 10**9 if full else 200
        _out(f"outcome  Failure{at}: {trace.outcome.describe(limit).split(': ', 1)[1]}")
        if failed:
            site = next((e.site for e in trace.effects if e.seq == failed), None)
            raised = _site_line(site) if site else None
        else:  # the handler's own exception: the innermost frame of its traceback
            raised = _raising_line(trace.outcome.traceback)
        if raised:
            _out(f"raised   {raised}")


# ---------------------------------------------------------------------------------------------
# replay


def _replay(args: argparse.Namespace) -> int:
    cwd = os.path.abspath(args.cwd) if args.cwd else os.getcwd()
    if not os.path.isfile(args.trace):
        raise ReplayError(f"{args.trace}: no such trace file; check the path")
    expect_fixed = args.expect_fixed or args.trace.endswith(EXPECT_FIXED_SUFFIX)
    mode = SPECULATIVE if expect_fixed else args.mode
    stubs = load_stubs(args.stubs, cwd) if args.stubs else None
    replayer = Replayer.from_file(args.trace, handler=args.handler, cwd=cwd, mode=mode, stubs=stubs)
    result = replayer.run()
    if expect_fixed:
        return _expect_fixed(result, args.json)
    reproduced = _reproduced(result)
    with _reader_may_stop():
        if args.json:
            _out(json.dumps(_replay_json(result, reproduced), indent=2, ensure_ascii=False))
        else:
            _print_replay(result, reproduced)
    return EXIT_OK if reproduced else EXIT_DIVERGED


def _expect_fixed(result: ReplayResult, as_json: bool) -> int:
    check = check_fixed(result)
    if as_json:
        doc = _replay_json(result, _reproduced(result))
        doc["expect_fixed"] = {"fixed": check.fixed, "message": check.message}
        _out(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        _out(("FIXED" if check.fixed else "NOT FIXED") + f": {result.handler}: {check.message}")
        if result.divergence is not None:
            _out(f"  first change: {result.divergence.message}")
        for seq, effect, value in result.speculative_effects:
            _out(f"  would perform #{seq} {effect!r} → {value!r}")
    return EXIT_OK if check.fixed else EXIT_DIVERGED


def _reproduced(result: ReplayResult) -> bool:
    d = result.divergence
    # An incomplete recording that the code follows to its last effect is reproduced, as far as
    # anything can tell; the output says it is incomplete.
    return d is None or (d.kind == "end-of-trace")


def _print_replay(result: ReplayResult, reproduced: bool) -> None:
    trace = result.trace
    n = len(trace.effects)
    if reproduced:
        if result.divergence is not None:
            _out(
                f"reproduced the recorded prefix: {result.handler}, all {_n_effects(n, 'recorded ')} match "
                f"(the trace is incomplete, so the outcome cannot be compared)"
            )
        else:
            outcome = _describe(result.outcome)
            _out(f"reproduced: {result.handler}, {_n_effects(n)}, {outcome} (as recorded)")
        return
    d = result.divergence
    assert d is not None  # not reproduced: there is a divergence
    _out(f"DIVERGED: {d.message}")
    if result.outcome is not None and d.kind != "outcome" and result.mode != SPECULATIVE:
        _out(f"  the code now ends with {_describe(result.outcome)}")
    for diff in d.differences:
        _out(f"  {diff.field}: recorded {diff.recorded!r}")
        _out(f"  {' ' * len(diff.field)}  now      {diff.now!r}")
    if d.site:
        _out(f"  at {d.site[0]}:{d.site[1]} in {d.site[2]}")
    _out(f"  replayed {result.effects_replayed} of {_n_effects(n, 'recorded ')} before diverging")
    if result.mode == SPECULATIVE:
        for seq, effect, value in result.speculative_effects:
            _out(f"  would perform #{seq} {effect!r} → {value!r}")
        if result.outcome is not None:
            _out(f"  the code would now end with {_describe(result.outcome)}")


def _n_effects(n: int, adjective: str = "") -> str:
    return f"{n} {adjective}effect" + ("" if n == 1 else "s")


def _describe(outcome: Any) -> str:
    if outcome is None:
        return "no outcome"
    if isinstance(outcome, Success):
        return f"Success: {short_repr(outcome.value, 160)}"
    return f"Failure: {type(outcome.error).__name__}: {outcome.error}"


def _replay_json(result: ReplayResult, reproduced: bool) -> dict[str, Any]:
    d = result.divergence
    now: Any = None
    if result.outcome is not None:
        now = (
            {"ok": True, "value": to_json(result.outcome.value)}
            if result.outcome.ok
            else {
                "ok": False,
                "error": to_json(result.outcome.error),
                "traceback": result.outcome.traceback,
            }
        )
    return {
        "reproduced": reproduced,
        "handler": result.handler,
        "mode": result.mode,
        "complete": result.trace.complete,
        "effects_recorded": len(result.trace.effects),
        "effects_replayed": result.effects_replayed,
        "divergence": None
        if d is None
        else {
            "kind": d.kind,
            "effect": d.effect_seq,
            "message": d.message,
            "differences": [
                {"field": x.field, "recorded": to_json(x.recorded), "now": to_json(x.now)}
                for x in d.differences
            ],
            "site": {"file": d.site[0], "line": d.site[1], "function": d.site[2]}
            if d.site
            else None,
        },
        "outcome": now,
        "recorded_outcome": outcome_to_json(result.trace.outcome),
        "speculative_effects": [
            {"seq": seq, "effect": to_json(effect), "result": to_json(value)}
            for seq, effect, value in result.speculative_effects
        ],
    }


# ---------------------------------------------------------------------------------------------
# store commands: list, fetch, import, prune (see protocol/trace-store.md)


def _store_commands(sub: Any) -> None:
    def with_store(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--store",
            metavar="URL_OR_DIR",
            help="postgresql://… or a directory of traces (default: PRODTURE_STORE, then "
            "[tool.prodture] store in pyproject.toml)",
        )
        return p

    ls = with_store(sub.add_parser("list", help="list stored traces, newest first"))
    ls.add_argument("--failed", action="store_true", help="failed executions only")
    ls.add_argument("--handler", help="handler name contains this")
    ls.add_argument("--since", help="an age (30m, 12h, 7d) or a time (2026-11-30T10:42, UTC)")
    ls.add_argument("--error", help="error type or message contains this (any case)")
    ls.add_argument("--otel-trace-id", help="the OpenTelemetry trace id a dashboard shows")
    ls.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    fetch = with_store(sub.add_parser("fetch", help="write a stored trace to a .prodtrace file"))
    fetch.add_argument("id", help="trace id or a unique prefix of one")
    fetch.add_argument(
        "-o", "--output", help="file or directory to write (default: ./<trace id>.prodtrace)"
    )
    imp = with_store(
        sub.add_parser(
            "import",
            help="put a directory of .prodtrace files (or an OTLP export) into the store",
        )
    )
    imp.add_argument(
        "source",
        help="a directory of .prodtrace files, or an OTLP file (JSON Lines of TracesData, an "
        "ExportTraceServiceRequest JSON document, or OTLP protobuf) exported with payloads",
    )
    prune = with_store(sub.add_parser("prune", help="delete stored traces older than an age"))
    prune.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 7d, 12h, 2w")


def _open(args: argparse.Namespace, *, create: bool = False) -> Any:
    from .stores import open_store

    return open_store(resolve_store(args.store), create=create)


def _list(args: argparse.Namespace) -> int:
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as e:
        return _fail(str(e))
    query = Query(
        failed_only=args.failed,
        handler=args.handler,
        since=since,
        error=args.error,
        otel_trace_id=args.otel_trace_id,
        limit=args.limit,
    )
    store = _open(args)
    try:
        found = store.list(query)
    finally:
        store.close()
    if args.json:
        _out(json.dumps([s.to_json() for s in found], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not found:
        _out(f"no traces match in {mask_password(store.location)}")
        return EXIT_OK
    _out(f"{'ID':<12}  {'STARTED (UTC)':<19}  {'HANDLER':<28}  {'MS':>8}  {'HOST':<12}  OUTCOME")
    for s in found:
        _out(_summary_line(s))
    return EXIT_OK


def _summary_line(s: TraceSummary) -> str:
    when = s.started_at.strftime("%Y-%m-%d %H:%M:%S") if s.started_at else "?"
    handler = clip(s.handler.rsplit(":", 1)[-1] if len(s.handler) > 28 else s.handler, 28)
    ms = f"{s.duration_ms:.1f}" if s.duration_ms is not None else "-"
    if s.ok is None:
        outcome = "incomplete"
    elif s.ok:
        outcome = "ok"
    else:
        at = f" at #{s.failed_effect}" if s.failed_effect else ""
        error = s.error_type.rsplit(".", 1)[-1]
        outcome = clip(f"FAILED{at}: {error}: {s.error_message}", 80)
    return f"{s.trace_id[:12]:<12}  {when:<19}  {handler:<28}  {ms:>8}  {clip(s.host, 12):<12}  {outcome}"


def _fetch(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        summary, data = store.fetch(args.id)
    finally:
        store.close()
    target = args.output or "."
    if os.path.isdir(target):
        target = os.path.join(target, f"{summary.trace_id}.prodtrace")
    with open(target, "wb") as f:
        f.write(data)
    _out(target)
    return EXIT_OK


def _import(args: argparse.Namespace) -> int:
    from .stores import directory_traces, import_traces

    if os.path.isfile(args.source):
        return _import_otlp(args)
    traces = directory_traces(args.source)
    store = _open(args, create=True)
    try:
        result = import_traces(traces, store)
    finally:
        store.close()
    _out(
        f"imported {result.imported} traces into {mask_password(store.location)}"
        f" ({result.already_stored} already there, {result.unreadable} unreadable)"
    )
    if result.first_problem:
        _out(f"  first unreadable: {result.first_problem}")
    return EXIT_OK


def _import_otlp(args: argparse.Namespace) -> int:
    from .otel.otlp_import import OtlpError, read_otlp_file, rebuild_traces
    from .stores import import_traces

    try:  # everything is read and rebuilt before the store is touched
        rebuilt = rebuild_traces(read_otlp_file(args.source), name=args.source)
    except OtlpError as e:
        return _fail(str(e))
    store = _open(args, create=True)
    try:
        result = import_traces(rebuilt.traces, store)
    finally:
        store.close()
    _out(
        f"rebuilt {len(rebuilt.traces)} traces from {rebuilt.spans_read} spans "
        f"({rebuilt.spans_skipped} spans without prodture data skipped); imported "
        f"{result.imported} into {mask_password(store.location)} ({result.already_stored} already there)"
    )
    return EXIT_OK


def _prune(args: argparse.Namespace) -> int:
    try:
        age = parse_age(args.older_than)
    except ValueError as e:
        return _fail(f"--older-than: {e}")
    store = _open(args)
    try:
        removed = store.prune(age)
    finally:
        store.close()
    _out(
        f"pruned {removed} traces older than {args.older_than} from {mask_password(store.location)}"
    )
    return EXIT_OK


_STORE_COMMANDS = {"list": _list, "fetch": _fetch, "import": _import, "prune": _prune}


if __name__ == "__main__":
    raise SystemExit(main())
