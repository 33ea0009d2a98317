"""Fuzz the trace reader: mutated and truncated traces must raise TraceFormatError and nothing else.

    .venv/bin/python scripts/fuzz_reader.py [--cases 100000] [--seed 1] [--save-dir DIR]

Seeds are real traces: the checkout example's (if present) and traces recorded here covering every
ext type, redaction, a failure and a truncated tail. Each case applies 1-4 mutations — bit flips,
byte insert/delete, splices of another seed, truncation, length-field inflation — and reads the
result with ``TraceReader``. Prints (stdout)::

    fuzz_cases: N
    fuzz_unexpected_errors: K      (anything raised that is not TraceFormatError; goal 0)
    fuzz_peak_mem_mb: M            (ru_maxrss of this process, MB)

plus, on stderr, the largest allocation of a single read (tracemalloc, sampled every 10th case)
and the first few unexpected errors (also saved to ``--save-dir`` for reproduction).
Not part of the test run (it takes a minute or two).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import enum
import glob
import os
import random
import resource
import sys
import time
import traceback
import tracemalloc
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python-adapter"))

import prodture
from prodture import Effect, Interpreter, MemorySink, Recorder, secret
from prodture.trace import REDACTED, TraceFormatError, TraceReader


@dataclasses.dataclass(frozen=True)
class Lookup(Effect, name="fuzz.Lookup"):
    key: str
    password: str = ""
    pin: str = secret(default="")


@prodture.register(name="fuzz.Item")
@dataclasses.dataclass(frozen=True)
class Item:
    sku: str
    price: Decimal
    tags: tuple


@prodture.register(name="fuzz.Kind")
class Kind(enum.Enum):
    A = "a"
    B = 2


@prodture.register(name="fuzz.Failed")
class Failed(Exception):
    pass


VALUES = [
    None,
    True,
    7,
    -(2**63),
    2**64 - 1,
    1.5,
    "text",
    b"\x00\xff",
    Decimal("0.00"),
    Decimal("-1E+3"),
    dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    dt.date(2026, 1, 2),
    dt.time(3, 4, 5),
    dt.timedelta(days=-1, seconds=5),
    uuid.UUID(int=12345),
    (1, (2, "x")),
    {1, 2},
    frozenset({"a"}),
    Item("sku-1", Decimal("9.99"), ("t",)),
    Kind.A,
    Kind.B,
    {"nested": [{"deep": (Decimal("1"), {"k": [1, 2, 3]})}]},
    REDACTED,
    ValueError("bad", 3),
]


def seed_traces() -> list[bytes]:
    seeds = [
        Path(p).read_bytes()
        for p in sorted(glob.glob(str(ROOT / "examples/checkout/traces/*.prodtrace")))
    ]

    def handler(values):
        out = []
        for i, _v in enumerate(values):
            out.append((yield Lookup(f"k{i}", password="hunter2", pin="1234")))
        if len(values) > 3:
            yield Lookup("missing")
        return out

    def perform(effect):
        if effect.key == "missing":
            raise Failed("no such key", 404)
        return VALUES[int(effect.key[1:]) % len(VALUES)]

    for values in (VALUES, VALUES[:3], [{"password": "x", "card_number": "4111"}]):
        sink = MemorySink()
        Interpreter({Lookup: perform}, recorder=Recorder(sink)).run(handler, values)
        seeds.append(sink.traces[0])
    seeds.append(seeds[-2][: len(seeds[-2]) * 2 // 3])  # a truncated tail
    return seeds


LENGTH_PREFIXES = {
    0xC4: 1,
    0xC5: 2,
    0xC6: 4,
    0xD9: 1,
    0xDA: 2,
    0xDB: 4,
    0xDC: 2,
    0xDD: 4,
    0xDE: 2,
    0xDF: 4,
    0xC7: 1,
    0xC8: 2,
    0xC9: 4,
}


def mutate(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            buf = bytearray(rng.choice(seeds))
        op = rng.random()
        at = rng.randrange(len(buf))
        if op < 0.25:  # bit flip
            buf[at] ^= 1 << rng.randrange(8)
        elif op < 0.35:  # random byte
            buf[at] = rng.randrange(256)
        elif op < 0.45:  # insert
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op < 0.55:  # delete
            del buf[at : at + rng.randint(1, 8)]
        elif op < 0.65:  # splice a piece of another seed
            other = rng.choice(seeds)
            start = rng.randrange(len(other))
            buf[at : at + rng.randint(0, 16)] = other[start : start + rng.randint(1, 64)]
        elif op < 0.80:  # truncation
            del buf[at:]
        else:  # length-field inflation
            spots = [
                i for i in range(len(buf)) if buf[i] in LENGTH_PREFIXES or 0x90 <= buf[i] <= 0x9F
            ]
            if spots:
                i = rng.choice(spots)
                width = LENGTH_PREFIXES.get(buf[i], 0)
                if width:
                    buf[i + 1 : i + 1 + width] = rng.choice(
                        [b"\xff" * width, (1 << (8 * width - 1)).to_bytes(width, "big")]
                    )
                else:
                    buf[i] = 0x9F  # fixarray claims 15 items
    return bytes(buf)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--save-dir", default=None, help="write inputs that raised unexpected errors here"
    )
    args = parser.parse_args()

    rng = random.Random(args.seed)
    seeds = seed_traces()
    for s in seeds[:-1]:
        TraceReader(s).read()  # the seeds themselves are valid
    unexpected = 0
    shown = 0
    outcomes = {"read": 0, "TraceFormatError": 0}
    peak_case = 0
    start = time.perf_counter()
    for case in range(args.cases):
        data = mutate(rng, rng.choice(seeds), seeds)
        sample = case % 10 == 0
        if sample:
            tracemalloc.start()
        try:
            TraceReader(data).read()
            outcomes["read"] += 1
        except TraceFormatError as e:
            outcomes["TraceFormatError"] += 1
            if "\n" in str(e):
                unexpected += 1
                print(f"case {case}: multi-line TraceFormatError: {e!r}", file=sys.stderr)
        except BaseException as e:  # noqa: BLE001 - the point is to catch anything
            if isinstance(e, KeyboardInterrupt):
                raise
            unexpected += 1
            if shown < 5:
                shown += 1
                print(f"case {case}: {type(e).__name__}: {e}", file=sys.stderr)
                traceback.print_exc(limit=-3, file=sys.stderr)
            if args.save_dir:
                os.makedirs(args.save_dir, exist_ok=True)
                Path(args.save_dir, f"case-{case}.prodtrace").write_bytes(data)
        finally:
            if sample:
                peak_case = max(peak_case, tracemalloc.get_traced_memory()[1])
                tracemalloc.stop()
    elapsed = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(f"fuzz_cases: {args.cases}")
    print(f"fuzz_unexpected_errors: {unexpected}")
    print(f"fuzz_peak_mem_mb: {rss_mb:.1f}")
    print(
        f"# {elapsed:.0f}s; outcomes {outcomes}; largest single-read allocation {peak_case / 1e6:.2f} MB "
        f"(tracemalloc, every 10th case); {len(seeds)} seeds",
        file=sys.stderr,
    )
    return 1 if unexpected else 0


if __name__ == "__main__":
    raise SystemExit(main())
