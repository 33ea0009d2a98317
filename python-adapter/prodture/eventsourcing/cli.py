"""``prodture events ...``: fetch from an event store (read-only), speculate, list streams and
editions. Wired into :mod:`prodture.cli`; errors are one line, passwords never printed.

    prodture events fetch --store URL --trace FAILED.prodtrace [--up-to N] [--out FILE]
    prodture events fetch --store URL --domain D --root R --handler M:F --command JSON [--up-to N]
    prodture events fetch --store URL --correlation-id ID [--out DIR]
    prodture events speculate --store URL --handler M:F --command JSON --domain D --root R
    prodture events speculate --store URL --flow MODULE:FACTORY --command JSON
    prodture events streams --store URL [--domain D]
    prodture events editions --store URL
    prodture events delete-edition --store URL NAME [--domain D]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any

from ..effects import registry
from ..replay import (
    ReplayError,
    _import,
    import_allowed_modules,
    project_config,
    resolve_handler,
)
from ..store_url import StoreConfigError, resolve_store
from ..trace.render import to_json
from .model import MAIN, EventStoreError

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    events = sub.add_parser(
        "events", help="event store: fetch a failing command read-only, speculate, list streams"
    )
    group = events.add_subparsers(dest="events_command", metavar="SUBCOMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--store",
            metavar="URL",
            help="postgresql://... or sqlite:///path (default: PRODTURE_STORE, then [tool.prodture] store)",
        )
        p.add_argument("--cwd", help="project directory (default: the current directory)")

    fetch = group.add_parser(
        "fetch", help="fetch a stream read-only and record the failing command against it"
    )
    common(fetch)
    fetch.add_argument("--trace", help="a recorded trace of the failing command")
    fetch.add_argument(
        "--correlation-id", help="fetch every component execution of this flow (one trace each)"
    )
    fetch.add_argument("--domain")
    fetch.add_argument("--root")
    fetch.add_argument("--up-to", type=int, metavar="SEQUENCE", help="fetch events 1..SEQUENCE")
    fetch.add_argument("--handler", metavar="MODULE:FUNCTION", help="the command's handler")
    fetch.add_argument(
        "--command",
        dest="command_json",
        metavar="JSON",
        help='the command: {"type": "registered.Name", "field": value, ...}',
    )
    fetch.add_argument("--edition", default=MAIN, help="read through this edition")
    fetch.add_argument(
        "--out", help="trace file (a folder with --correlation-id); default: fetched/..."
    )
    fetch.add_argument("--json", action="store_true", help="machine-readable output")

    spec = group.add_parser(
        "speculate", help="run a command (or a whole flow) against the store, persisting nothing"
    )
    common(spec)
    spec.add_argument("--handler", metavar="MODULE:FUNCTION")
    spec.add_argument("--flow", metavar="MODULE:FACTORY", help="a function store -> Coordinator")
    spec.add_argument("--command", dest="command_json", metavar="JSON", required=True)
    spec.add_argument("--domain")
    spec.add_argument("--root")
    spec.add_argument("--edition", default=MAIN)
    spec.add_argument("--json", action="store_true")

    books = group.add_parser(
        "books", help="the event books of a trace: streams loaded and appended, by sequence"
    )
    books.add_argument("trace", help="path to a .prodtrace file")
    books.add_argument("--json", action="store_true")
    books.add_argument("--cwd", help="project directory (default: the current directory)")

    streams = group.add_parser("streams", help="list the streams of the main timeline")
    common(streams)
    streams.add_argument("--domain")

    editions = group.add_parser("editions", help="list editions")
    common(editions)

    delete = group.add_parser("delete-edition", help="delete an edition's own events")
    common(delete)
    delete.add_argument("name")
    delete.add_argument("--domain")


def run(args: argparse.Namespace, out: Any, fail: Any) -> int:
    cwd = os.path.abspath(args.cwd) if getattr(args, "cwd", None) else os.getcwd()
    if args.events_command is None:
        return fail(
            "missing subcommand: use 'events fetch', 'speculate', 'streams', 'editions' or 'delete-edition'"
        )
    try:
        if args.events_command == "books":  # reads a trace, not a store
            return _books(args, cwd, out)
        url = resolve_store(args.store, cwd)
        return _COMMANDS[args.events_command](args, url, cwd, out)
    except (EventStoreError, StoreConfigError, ReplayError) as e:
        return fail(str(e))


def _command(text: str | None, cwd: str) -> Any:
    if not text:
        raise ReplayError('pass the command as --command \'{"type": "registered.Name", ...}\'')
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReplayError(f"--command is not JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ReplayError('--command needs a "type": the registered name of the command class')
    import_allowed_modules(cwd)  # registers the command classes
    name = data.pop("type")
    cls = registry.lookup(name)
    if cls is None or not dataclasses.is_dataclass(cls):
        raise ReplayError(
            f"command type {name!r} is not a registered dataclass here; add its module to "
            f'[tool.prodture] modules and decorate it with @prodture.register(name="{name}")'
        )
    try:
        return cls(**data)
    except TypeError as e:
        raise ReplayError(f"--command does not fit {name}: {e}") from None


def _fetch(args: argparse.Namespace, url: str, cwd: str, out: Any) -> int:
    from .fetch import fetch_command, fetch_flow, fetch_from_trace

    if args.correlation_id:
        folder = args.out or os.path.join(cwd, "fetched", args.correlation_id)
        results = fetch_flow(url, args.correlation_id, out_dir=folder, cwd=cwd)
    elif args.trace:
        if not os.path.isfile(args.trace):
            raise ReplayError(f"{args.trace}: no such trace file; check the path")
        stem = os.path.splitext(os.path.basename(args.trace))[0]
        path = args.out or os.path.join(cwd, "fetched", f"{stem}-fetched.prodtrace")
        results = [
            fetch_from_trace(
                url,
                args.trace,
                out=path,
                cwd=cwd,
                domain=args.domain,
                root=args.root,
                up_to=args.up_to,
                edition=args.edition,
            )
        ]
    else:
        if not (args.handler and args.domain and args.root):
            raise ReplayError(
                "say what to fetch: --trace FILE, --correlation-id ID, or --domain, --root, "
                "--handler and --command"
            )
        fn = resolve_handler(args.handler, explicit=True, cwd=cwd)
        command = _command(args.command_json, cwd)
        path = args.out or os.path.join(cwd, "fetched", f"{args.domain}-{args.root}.prodtrace")
        results = [
            fetch_command(
                url,
                fn,
                command,
                domain=args.domain,
                root=args.root,
                out=path,
                up_to=args.up_to,
                edition=args.edition,
            )
        ]
    if args.json:
        out(
            json.dumps(
                [
                    {
                        "path": r.path,
                        "handler": r.handler,
                        "domain": r.domain,
                        "root": r.root,
                        "sequence": r.sequence,
                        "ok": r.outcome.ok,
                    }
                    for r in results
                ],
                indent=2,
            )
        )
        return 0
    for r in results:
        stream = f"{r.domain}/{r.root} events 1..{r.sequence}" if r.domain else "(no stream)"
        outcome = (
            "Success"
            if r.outcome.ok
            else f"Failure: {type(r.outcome.error).__name__}: {r.outcome.error}"
        )
        out(
            f"fetched {os.path.relpath(r.path, cwd)}  {r.handler.rsplit(':', 1)[-1]}  {stream}  → {outcome}"
        )
    return 0


def _speculate(args: argparse.Namespace, url: str, cwd: str, out: Any) -> int:
    from .aggregate import speculate
    from .components import speculate_flow
    from .store import open_store

    command = _command(args.command_json, cwd)
    with open_store(url, read_only=True) as store:

        def history(domain: str, root: str) -> Any:
            return store.load(domain, root, edition=args.edition)

        if args.flow:
            module, _, attr = args.flow.partition(":")
            config = project_config(cwd)
            if not any(module == m or module.startswith(m + ".") for m in config.modules):
                raise ReplayError(
                    f"--flow {args.flow}: module {module!r} is not in [tool.prodture] modules; add it there"
                )
            _import(module, config, cwd)
            factory = getattr(sys.modules[module], attr, None)
            if not callable(factory):
                raise ReplayError(f"--flow {args.flow}: no function {attr!r} in {module}")
            flow = speculate_flow(factory(store), command, history)
            rows = [
                {
                    "component": x.kind,
                    "handler": x.handler,
                    "ok": x.outcome.ok,
                    "error": None
                    if x.outcome.ok
                    else f"{type(x.outcome.error).__name__}: {x.outcome.error}",
                    "would_append": [
                        {"domain": d, "root": r, "sequence": s, "event": to_json(e)}
                        for d, r, s, e in x.appended
                    ],
                    "commands": [to_json(c) for c in x.commands],
                }
                for x in flow.executions
            ]
            if args.json:
                out(json.dumps(rows, indent=2, ensure_ascii=False))
                return 0
            for x in flow.executions:
                state = (
                    "ok"
                    if x.outcome.ok
                    else f"REJECTED {type(x.outcome.error).__name__}: {x.outcome.error}"
                )
                out(f"{x.kind:<16}{x.handler.rsplit(':', 1)[-1]}  {state}")
                for d, r, s, e in x.appended:
                    out(f"    would append {d}/{r} #{s} {e!r}")
                for c in x.commands:
                    out(f"    would send {c!r}")
            out("nothing was persisted")
            return 0
        if not args.handler:
            raise ReplayError("pass --handler MODULE:FUNCTION (or --flow MODULE:FACTORY)")
        fn = resolve_handler(args.handler, explicit=True, cwd=cwd)
        result = speculate(fn, command, history)
    outcome = result.outcome
    if args.json:
        out(
            json.dumps(
                {
                    "ok": outcome.ok,
                    "value": to_json(outcome.value) if outcome.ok else None,
                    "error": None
                    if outcome.ok
                    else f"{type(outcome.error).__name__}: {outcome.error}",
                    "would_append": [
                        {"domain": d, "root": r, "events": [to_json(e) for e in evs]}
                        for (d, r), evs in result.appended.items()
                    ],
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return 0
    if outcome.ok:
        out(f"Success: {outcome.value!r}")
    else:
        out(f"Failure: {type(outcome.error).__name__}: {outcome.error}")
    for (d, r), evs in result.appended.items():
        for e in evs:
            out(f"    would append {d}/{r} {e!r}")
    out("nothing was persisted")
    return 0


def event_books(trace: Any) -> list[dict[str, Any]]:
    """The event books of a trace, effect by effect: each ``LoadStream`` result (what the
    handler saw) and each ``AppendStream`` request (what it wrote, with the sequences it got)."""
    books = []
    for e in trace.effects:
        try:
            book = _book_of(e)
        except Exception:  # a trace is untrusted: a malformed book is reported, not fatal
            book = {"effect": e.seq, "kind": "malformed", "domain": "", "root": "", "pages": []}
        if book is not None:
            books.append(book)
    return books


def _event_type(value: Any) -> str:
    from ..trace.codec import type_name

    recorded = getattr(value, "type_name", None)  # an event whose class is not imported here
    return recorded if isinstance(recorded, str) else type_name(type(value))


def _page(
    sequence: Any, value: Any, correlation_id: Any = "", causation_id: Any = ""
) -> dict[str, Any]:
    if not isinstance(sequence, int) or isinstance(sequence, bool):
        raise TypeError("a sequence is not an integer")
    return {
        "sequence": sequence,
        "type": _event_type(value),
        "event": to_json(value),
        "correlation_id": str(correlation_id),
        "causation_id": str(causation_id),
    }


def _book_of(e: Any) -> dict[str, Any] | None:
    from .model import AppendStream, EventBook, LoadStream

    request = e.request
    if e.type == LoadStream.effect_name and isinstance(e.result, EventBook):
        b = e.result
        columns = (b.sequences, b.values, b.correlation_ids, b.causation_ids)
        if not all(isinstance(c, (list, tuple)) for c in columns):
            raise TypeError("an event book column is not a sequence")
        pages = [_page(*row) for row in zip(*columns, strict=False)]
        kind = "loaded"
    elif e.type == AppendStream.effect_name:
        expected = request.get("expected")
        events = request.get("events") or ()
        if not isinstance(events, (list, tuple)):
            raise TypeError("events is not a sequence")
        base = expected if isinstance(expected, int) else 0
        pages = [_page(base + i, value) for i, value in enumerate(events, start=1)]
        kind = "appended" if e.ok else "refused"
    else:
        return None
    return {
        "effect": e.seq,
        "kind": kind,
        "domain": str(request.get("domain", "")),
        "root": str(request.get("root", "")),
        "pages": pages,
    }


def _books(args: argparse.Namespace, cwd: str, out: Any) -> int:
    from ..replay import load_trace

    if not os.path.isfile(args.trace):
        raise ReplayError(f"{args.trace}: no such trace file; check the path")
    try:
        trace, _ = load_trace(args.trace, cwd=cwd)  # the app's modules first: events decode
    except ReplayError:
        from ..trace.format import read_trace

        trace = read_trace(args.trace)  # still readable without the code: events stay inert
    books = event_books(trace)
    if args.json:
        out(json.dumps(books, indent=2, ensure_ascii=False))
        return 0
    if not books:
        out("no event books in this trace (no LoadStream / AppendStream effects)")
    for b in books:
        out(f"#{b['effect']} {b['kind']} {b['domain']}/{b['root']}: {len(b['pages'])} events")
        for page in b["pages"]:
            out(f"    [{page['sequence']}] {page['type']}")
    return 0


def _streams(args: argparse.Namespace, url: str, cwd: str, out: Any) -> int:
    from .store import open_store

    with open_store(url, read_only=True) as store:
        for domain, root, head in store.streams(args.domain):
            out(f"{domain}/{root}  {head} events")
    return 0


def _editions(args: argparse.Namespace, url: str, cwd: str, out: Any) -> int:
    from .store import open_store

    with open_store(url, read_only=True) as store:
        for name in store.editions():
            count = len(store.edition_events(name))
            out(f"{name}  {count} events")
    return 0


def _delete_edition(args: argparse.Namespace, url: str, cwd: str, out: Any) -> int:
    from .store import open_store

    if not args.name:
        raise ReplayError("name the edition to delete (the main timeline cannot be deleted)")
    with open_store(url) as store:
        n = store.delete_edition_events(args.name, args.domain)
    out(f"deleted {n} events of edition {args.name}")
    return 0


_COMMANDS = {
    "fetch": _fetch,
    "speculate": _speculate,
    "streams": _streams,
    "editions": _editions,
    "delete-edition": _delete_edition,
}
