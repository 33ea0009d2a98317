"""The per-trace records besides the effects: what the header, the input and the outcome cost to
encode, with the recorder's own encoder (its default redactor).

    .venv/bin/python benchmarks/bench_trace_records.py [--n 20000] [--rounds 5]

The values are those of ``bench_recorder.py``'s checkout (a str input; an outcome dict holding
two str and a registered frozen dataclass with a Decimal field) and of a typical service (an
input dict of plain values and a dataclass). Each record is encoded ``--n`` times with one
encoder (the recorder reuses one per thread for these records) after a warm-up, timed by the
thread's CPU time (``time.thread_time``: the machine's other load is not counted); the lowest of
the rounds is printed, in µs per record, as ``name: value`` lines:

* ``trace_header_us`` — ``Recorder._header`` (the header record: per-trace id and time).
* ``trace_input_str_us`` / ``trace_input_dict_us`` — ``TraceEncoder.input`` of a str / of a
  dict of plain values with a nested dataclass.
* ``trace_outcome_us`` — ``TraceEncoder.outcome`` of the checkout's result.
* ``trace_fresh_encoder_us`` — a fresh encoder per trace, as the writer makes one: header, input
  and outcome of the checkout (no effects).

``PRODTURE_TREE`` times another checkout's package with this script.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(
    0,
    os.environ.get("PRODTURE_TREE")
    or str(Path(__file__).resolve().parent.parent / "python-adapter"),
)

from bench_recorder import CART  # noqa: E402 -- the checkout's registered Cart, defined once

from prodture import MemorySink, Recorder  # noqa: E402
from prodture.recorder import TraceInfo  # noqa: E402


@dataclasses.dataclass
class Customer:
    customer_id: str
    email: str
    tier: int


OUTCOME = {"order_id": "1842", "charge": "ok", "n": CART}
INPUT_DICT = {
    "order_id": "1842",
    "quantity": 2,
    "express": False,
    "note": None,
    "customer": Customer("c-9", "ada@example.com", 3),
    "tags": ["gift", "eu"],
}


def per_record_us(fn, n: int) -> float:
    for _ in range(min(n, 2000)):
        fn()
    start = time.thread_time()
    for _ in range(n):
        fn()
    return (time.thread_time() - start) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    recorder = Recorder(MemorySink())
    encoder = recorder._encoder()
    info = TraceInfo("benchrec:checkout", uuid.uuid4().hex, _dt.datetime.now(_dt.timezone.utc))

    def header() -> bytes:
        return recorder._header(encoder, info, None)

    def fresh() -> bytes:
        e = recorder._encoder()
        return (
            recorder._header(e, info, None)
            + e.input("1842")
            + e.outcome(True, OUTCOME, "", None, 1000)
        )

    cases = {
        "trace_header_us": header,
        "trace_input_str_us": lambda: encoder.input("1842"),
        "trace_input_dict_us": lambda: encoder.input(INPUT_DICT),
        "trace_outcome_us": lambda: encoder.outcome(True, OUTCOME, "", None, 1000),
        "trace_fresh_encoder_us": fresh,
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            results[name].append(per_record_us(fn, args.n))
    for name, values in results.items():
        print(f"{name}: {min(values):.2f}")
    recorder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
