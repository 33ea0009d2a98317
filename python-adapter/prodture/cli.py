"""The ``prodture`` command line.

``prodture show TRACE`` prints a trace; ``prodture replay TRACE`` replays it against the current
code. Both take ``--json``. Exit codes (a contract other tools rely on): ``show`` 0; ``replay`` 0
when the code reproduces the trace exactly, 1 on a divergence, 2 on any error. Every error is one
line on stderr starting ``prodture: `` — never a Python traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .replay import SPECULATIVE, STRICT, Divergence, Replayer, ReplayError, ReplayResult
from .runtime import Success
from .trace.codec import TraceFormatError
from .trace.format import Trace, read_trace
from .trace.render import outcome_to_json, to_json, trace_to_json

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
        "--cwd",
        help="project directory (where pyproject.toml lists [tool.prodture] modules); default: the current directory",
    )
    _add_events_parser(sub)
    return parser


def _add_events_parser(sub: Any) -> None:
    """``prodture events ...`` (event stores: fetch, speculate, streams, editions)."""
    from .eventsourcing.cli import add_parser

    add_parser(sub)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().error("missing command: use 'show' or 'replay'")
    try:
        if args.command == "show":
            return _show(args)
        if args.command == "events":
            return _events(args)
        return _replay(args)
    except (ReplayError, TraceFormatError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return _fail("interrupted")
    except Exception as e:  # the contract: one line, never a traceback
        return _fail(f"internal error: {type(e).__name__}: {e} (please report it)")


def _fail(message: str) -> int:
    first = message.splitlines()[0] if message else "unknown error"
    print(f"prodture: {first}", file=sys.stderr)
    return EXIT_ERROR


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


# ---------------------------------------------------------------------------------------------
# show


def _show(args: argparse.Namespace) -> int:
    from .eventsourcing import fetch  # registers the event book types a trace may hold

    trace = read_trace(args.trace)
    context = fetch.failure_context(trace)
    if args.json:
        data = trace_to_json(trace)
        if context["domain"] or context["correlation_id"]:
            data["failure_context"] = context
        _out(json.dumps(data, indent=2, ensure_ascii=False))
        return EXIT_OK
    _print_trace(trace)
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


def _print_trace(trace: Trace) -> None:
    h = trace.header
    when = h.started_at.strftime("%Y-%m-%d %H:%M:%S UTC") if h.started_at else "unknown time"
    _out(f"trace    {trace.source}")
    _out(f"handler  {h.handler}   (id {h.trace_id[:12]}, {when}, Python {h.python or '?'})")
    _out(f"input    {_clip(repr(trace.input), 200)}")
    failed = trace.outcome.failed_effect if trace.outcome else None
    _out(f"effects  {len(trace.effects)}")
    width = max((len(e.describe_request(70)) for e in trace.effects), default=0)
    for e in trace.effects:
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
        _out(f"outcome  {trace.outcome.describe(200)}")
    else:
        at = f" at effect #{failed}" if failed else ""
        _out(f"outcome  Failure{at}: {trace.outcome.describe(200).split(': ', 1)[1]}")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------
# replay


def _replay(args: argparse.Namespace) -> int:
    cwd = os.path.abspath(args.cwd) if args.cwd else os.getcwd()
    if not os.path.isfile(args.trace):
        raise ReplayError(f"{args.trace}: no such trace file; check the path")
    replayer = Replayer.from_file(args.trace, handler=args.handler, cwd=cwd, mode=args.mode)
    result = replayer.run()
    reproduced = _reproduced(result)
    if args.json:
        _out(json.dumps(_replay_json(result, reproduced), indent=2, ensure_ascii=False))
    else:
        _print_replay(result, reproduced)
    return EXIT_OK if reproduced else EXIT_DIVERGED


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
                f"reproduced the recorded prefix: {result.handler}, all {n} recorded effects match "
                f"(the trace is incomplete, so the outcome cannot be compared)"
            )
        else:
            outcome = _describe(result.outcome)
            _out(f"reproduced: {result.handler}, {n} effects, {outcome} (as recorded)")
        return
    d: Divergence = result.divergence  # type: ignore[assignment]
    _out(f"DIVERGED: {d.message}")
    for diff in d.differences:
        _out(f"  {diff.field}: recorded {diff.recorded!r}")
        _out(f"  {' ' * len(diff.field)}  now      {diff.now!r}")
    if d.site:
        _out(f"  at {d.site[0]}:{d.site[1]} in {d.site[2]}")
    _out(f"  replayed {result.effects_replayed} of {n} recorded effects before diverging")
    if result.mode == SPECULATIVE:
        for seq, effect, value in result.speculative_effects:
            _out(f"  would perform #{seq} {effect!r} → {value!r}")
        if result.outcome is not None:
            _out(f"  the code would now end with {_describe(result.outcome)}")


def _describe(outcome: Any) -> str:
    if outcome is None:
        return "no outcome"
    if isinstance(outcome, Success):
        return f"Success: {_clip(repr(outcome.value), 160)}"
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


if __name__ == "__main__":
    raise SystemExit(main())
