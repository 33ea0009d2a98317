"""The end of the replay: telling a return of the handler's root frame that ends it from one that
only suspends it, and what the end-of-replay stop reports.

A generator or coroutine handler "returns" at every ``yield`` / ``await`` too; only the bytecode
the frame stops on tells the two apart. What the end reports — outcome, exception, divergence —
comes from the first complete run once there was one: replay is deterministic, and a re-run may
not have seen the exception (a fast-forward ignores exception events, a bare ``raise`` fires
none), so answering from the re-run would show a placeholder instead of the handler's error.
"""

from __future__ import annotations

import dataclasses
import dis
from typing import Any

from ..replay import TracePerformer
from ..runtime import Failure, Outcome, Success

__all__ = ["EndOfReplay", "suspends", "end_of_replay"]

_RETURN_OPS = {dis.opmap[name] for name in ("RETURN_VALUE", "RETURN_CONST") if name in dis.opmap}
_YIELD_VALUE = dis.opmap["YIELD_VALUE"]
_RESUME = dis.opmap.get("RESUME", -1)
# 3.10 suspends `await` / `yield from` with f_lasti on the instruction before YIELD_FROM
_YIELD_FROM = dis.opmap.get("YIELD_FROM", -1)


def suspends(frame: Any) -> bool:
    """Whether the return event of ``frame`` is a ``yield`` / ``await`` suspending it (not its end)."""
    offset = frame.f_lasti
    co_code = frame.f_code.co_code
    op = co_code[offset]
    return bool(
        op == _YIELD_VALUE
        or (op == _RESUME and co_code[offset + 1] & 3)
        or (offset + 2 < len(co_code) and co_code[offset + 2] == _YIELD_FROM)
    )


@dataclasses.dataclass(frozen=True)
class EndOfReplay:
    failed: bool
    exception: BaseException | None
    divergence: Any
    outcome: Outcome | None


def end_of_replay(
    frame: Any,
    value: Any,
    *,
    finished: Outcome | None,
    final_divergence: Any,
    last_exception: BaseException | None,
    performer: TracePerformer,
) -> EndOfReplay:
    """What the end of the replay at the root return of ``frame`` (returning ``value``) reports.

    ``finished`` / ``final_divergence``: the outcome and end divergence of the first complete run,
    if there was one; else this run's ``last_exception`` and the replayer's verdict."""
    if finished is not None:
        exc = None if finished.ok else finished.error
        return EndOfReplay(not finished.ok, exc, final_divergence, finished)
    failed = frame.f_code.co_code[frame.f_lasti] not in _RETURN_OPS  # left by an exception
    exc = last_exception if failed else None
    divergence = end_divergence(performer, failed, value, exc)
    outcome = Success(value) if not failed else Failure(exc) if exc is not None else None
    return EndOfReplay(failed, exc, divergence, outcome)


def end_divergence(performer: TracePerformer, failed: bool, value: Any, exc: Any) -> Any:
    """The divergence the replayer finds at the end (missing effects, other outcome), or None.
    A divergence already announced during the run (speculative mode) is not repeated."""
    if performer.divergence is not None:
        return None
    if failed and not isinstance(exc, Exception):
        return None  # not an outcome (a BaseException leaves run_sync as is)
    outcome = Failure(exc) if failed else Success(value)
    divergence = performer.finish(outcome)
    performer.divergence = None  # the engine's run asks again with the real outcome: same answer
    if divergence is None or divergence.kind not in ("missing", "outcome"):
        return None
    return divergence
