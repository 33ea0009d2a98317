"""Record a trace with many effects (default 100,000) for the trace viewer's speed check.

    python tests/e2e-vscode/make_big_trace.py OUT_DIR [N]

Prints the path of the trace it wrote.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import sys

import prodture


@dataclasses.dataclass(frozen=True)
class Tick(prodture.Effect, name="bigtrace.Tick"):
    n: int


@prodture.handler
def count_ticks(request: dict):
    total = 0
    for i in range(request["n"]):
        total += yield Tick(i)
    return total


def main() -> int:
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    os.makedirs(out, exist_ok=True)
    for old in glob.glob(os.path.join(out, "*.prodtrace")):
        os.remove(old)
    recorder = prodture.Recorder(prodture.DirectorySink(out))
    outcome = prodture.Interpreter({Tick: lambda e: e.n}, recorder=recorder).run(
        count_ticks, {"n": n}
    )
    recorder.close()  # the trace is written by the recorder's writer thread
    if not outcome.ok:
        print(f"make_big_trace: the handler failed: {outcome.error}", file=sys.stderr)
        return 1
    print(sorted(glob.glob(os.path.join(out, "*.prodtrace")))[-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
