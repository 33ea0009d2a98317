"""Play a few commands against the Player aggregate with recording on; traces go to traces/.

The last command is the bug report: "the bet was accepted but the chips didn't decrease".

    python run_table.py [--traces DIR]
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from poker.player import DepositChips, PlaceBet, handle_player_command

import prodture
from prodture.eventsourcing import InMemoryEventStore

COMMANDS = [
    DepositChips("p-7", 1000),
    PlaceBet("p-7", "hand-1", 100),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", default=os.path.join(HERE, "traces"))
    args = parser.parse_args()
    os.makedirs(args.traces, exist_ok=True)
    for old in glob.glob(os.path.join(args.traces, "*.prodtrace")):
        os.remove(old)
    store = InMemoryEventStore()
    recorder = prodture.Recorder(prodture.DirectorySink(args.traces))
    interpreter = prodture.Interpreter(store.performers(), recorder=recorder)
    for command in COMMANDS:
        outcome = interpreter.run(handle_player_command, command)
        print(
            f"  {type(command).__name__}({command.amount}) -> {outcome.value if outcome.ok else outcome.error}"
        )
    recorder.close()  # write every pending trace (the writer thread does the file I/O)
    for path in sorted(glob.glob(os.path.join(args.traces, "*.prodtrace"))):
        print("  " + os.path.relpath(path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
