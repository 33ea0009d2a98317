"""Interpreter driver benchmark: what one driver for sync and async handlers costs per effect.

    .venv/bin/python benchmarks/bench_driver.py [--rounds 15]

``prodture.runtime._drive`` is one coroutine for ``Interpreter.run`` and ``run_async``: a
synchronous run completes it with one ``send``. This compares it with a synchronous-only copy of
the same source (the two ``await`` lines removed, a plain function), on a generator handler of
2,000 effects answered from memory, unrecorded and with a session that does nothing. Prints
``name: value`` lines (the minimum over rounds):

* ``driver_shared_ns_per_effect`` / ``driver_sync_only_ns_per_effect`` — unrecorded.
* ``driver_shared_extra_ns_per_effect`` — shared minus sync-only, unrecorded; and
  ``driver_shared_extra_ns_per_effect_recorded`` the same with a session. The issue's bound for
  keeping one driver: 100 ns.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python-adapter"))

from prodture import runtime  # noqa: E402
from prodture.effects import Effect  # noqa: E402

EFFECTS = 2000


@dataclasses.dataclass(frozen=True)
class Step(Effect, name="benchdriver.Step"):
    n: int


def handler(x: Any) -> Any:
    for i in range(EFFECTS):
        yield Step(i)
    return x


class NullSession:
    def effect(self, *args: Any) -> None:
        pass

    def finish(self, outcome: Any) -> None:
        pass


def sync_only_driver() -> Any:
    """``runtime._drive`` as a plain function: its source without the awaits."""
    source = inspect.getsource(runtime._drive).replace("async def _drive", "def _drive_sync")
    for awaiting in (
        "                    if awaiting and inspect.isawaitable(send_value):\n"
        "                        send_value = await send_value\n",
        "                        if awaiting and inspect.isawaitable(send_value):\n"
        "                            send_value = await send_value\n",
    ):
        if awaiting not in source:
            raise SystemExit("runtime._drive changed: update sync_only_driver()")
        source = source.replace(awaiting, "")
    namespace = dict(vars(runtime))
    exec(source, namespace)  # noqa: S102 -- prodture's own source, minus two lines
    return namespace["_drive_sync"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    sync = sync_only_driver()

    def perform(call: Any) -> int:
        return 1

    def per_effect(runs: list[Any]) -> list[float]:
        """The minimum per-effect time of each of ``runs``, timed in turn in every round (side
        by side: a slow moment of the machine hits both)."""
        best = [float("inf")] * len(runs)
        for _ in range(args.rounds):
            for i, run in enumerate(runs):
                best[i] = min(best[i], timeit.timeit(run, number=10) / 10 / EFFECTS * 1e9)
        return best

    results = {}
    for label, session in (("", None), ("_recorded", NullSession())):
        shared, alone = per_effect(
            [
                lambda s=session: runtime._complete(
                    runtime._drive(handler, 1, perform, runtime._Run(), s, False)
                ),
                lambda s=session: sync(handler, 1, perform, runtime._Run(), s, False),
            ]
        )
        results[label] = (shared, alone)
    shared, alone = results[""]
    print(f"driver_shared_ns_per_effect: {shared:.0f}")
    print(f"driver_sync_only_ns_per_effect: {alone:.0f}")
    print(f"driver_shared_extra_ns_per_effect: {shared - alone:.0f}")
    shared, alone = results["_recorded"]
    print(f"driver_shared_extra_ns_per_effect_recorded: {shared - alone:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
