"""Benchmark of the FastAPI integration on the booking example (examples/booking).

    python benchmarks/bench_fastapi.py [--requests N]

Serves ``booking.app:app`` twice with uvicorn on 127.0.0.1 — recording ALWAYS into a
DirectorySink, and the same app with no recorder (``BOOKING_RECORD=off``) — plus the payment
service, each app with its own SQLite file. Sends ``POST /rooms/r1/bookings`` (5 effects: an SQL
query, GetEnv, two HTTP requests gathered, NewUUID, an SQL insert) sequentially with httpx,
interleaving the two variants (A B B A ...) so that machine noise hits both alike. Prints:

- ``fastapi_record_overhead_ratio``  median latency recording ALWAYS ÷ median with no recorder
                                     (goal ≤ 1.05)
- ``fastapi_record_overhead_us``     the difference of the medians, per request
- ``fastapi_record_cpu_us``          the difference of the app servers' CPU time per request
                                     (/proc), which machine load does not inflate
- ``fastapi_port_added_lines``       lines of ``booking/app.py`` (the port) that are not in
                                     ``booking/plain.py`` (the service without prodture), blank
                                     lines and comments not counted; ``fastapi_port_removed_lines``
                                     the plain version's lines the port no longer has
"""

from __future__ import annotations

import argparse
import difflib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_example_booking import EXAMPLE, uvicorn  # noqa: E402 -- shares the server helper


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def port_size() -> tuple[int, int, int, int]:
    def code(path: Path) -> list[str]:
        lines = [line.strip() for line in path.read_text().splitlines()]
        return [line for line in lines if line and not line.startswith("#")]

    plain, port = code(EXAMPLE / "booking" / "plain.py"), code(EXAMPLE / "booking" / "app.py")
    diff = list(difflib.ndiff(plain, port))
    added = sum(1 for d in diff if d.startswith("+ "))
    removed = sum(1 for d in diff if d.startswith("- "))
    return added, removed, len(plain), len(port)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000, help="per variant (default 2000)")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument(
        "--dir",
        default=None,
        help="where the traces and databases go (default: the system temp dir; /dev/shm "
        "separates the recorder's own cost from the disk's file creation)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-fastapi-", dir=args.dir))
    try:
        app_dir = work / "booking"
        shutil.copytree(EXAMPLE, app_dir, ignore=shutil.ignore_patterns("traces", "__pycache__"))
        body = {"guest": "ann@example.com", "starts": "2031-07-01T15:00:00+00:00", "nights": 2}
        with uvicorn("booking.payments:app", app_dir, {}) as (payments, _, _):

            def env(variant: str) -> dict[str, str]:
                return {
                    "BOOKING_DB": str(work / f"{variant}.sqlite"),
                    "BOOKING_TRACES": str(work / f"traces-{variant}"),
                    "BOOKING_PAYMENTS": payments,
                    "BOOKING_RECORD": variant,
                }

            with (
                uvicorn("booking.app:app", app_dir, env("always")) as (url_rec, _, proc_rec),
                uvicorn("booking.app:app", app_dir, env("off")) as (url_off, _, proc_off),
                httpx.Client(base_url=url_rec) as rec,
                httpx.Client(base_url=url_off) as off,
            ):
                clients = {"always": rec, "off": off}
                samples: dict[str, list[float]] = {"always": [], "off": []}

                def send(variant: str, keep: bool) -> None:
                    start = time.perf_counter()
                    response = clients[variant].post("/rooms/r1/bookings", json=body)
                    elapsed = time.perf_counter() - start
                    if response.status_code != 201:
                        raise SystemExit(f"{variant}: {response.status_code} {response.text}")
                    if keep:
                        samples[variant].append(elapsed)

                cpu: dict[str, float] = {}
                for i in range(args.warmup + args.requests):
                    if i == args.warmup:
                        cpu = {"always": cpu_s(proc_rec.pid), "off": cpu_s(proc_off.pid)}
                    order = ("always", "off") if i % 2 == 0 else ("off", "always")
                    for variant in order:
                        send(variant, keep=i >= args.warmup)
                cpu = {
                    "always": cpu_s(proc_rec.pid) - cpu["always"],
                    "off": cpu_s(proc_off.pid) - cpu["off"],
                }
        traces = len(list((work / "traces-always").glob("*.prodtrace")))
        assert traces == args.warmup + args.requests, traces
        assert not (work / "traces-off").exists()
        rec_median = statistics.median(samples["always"])
        off_median = statistics.median(samples["off"])
        print(
            f"# Python {sys.version.split()[0]}, {args.requests} sequential requests per variant, "
            f"interleaved; traces and databases in {work.parent}"
        )
        print(
            f"fastapi_record_overhead_ratio: {rec_median / off_median:.3f} "
            f"(median {rec_median * 1e3:.3f} ms recording ALWAYS / {off_median * 1e3:.3f} ms no "
            f"recorder; p95 {statistics.quantiles(samples['always'], n=20)[-1] * 1e3:.3f} / "
            f"{statistics.quantiles(samples['off'], n=20)[-1] * 1e3:.3f} ms; goal <= 1.05)"
        )
        print(f"fastapi_record_overhead_us: {(rec_median - off_median) * 1e6:.0f}")
        per_request = {k: v / args.requests * 1e6 for k, v in cpu.items()}
        print(
            f"fastapi_record_cpu_us: {per_request['always'] - per_request['off']:.0f} "
            f"(the app server's CPU time per request: {per_request['always']:.0f} us recording "
            f"ALWAYS, {per_request['off']:.0f} us no recorder)"
        )
        added, removed, plain, port = port_size()
        print(
            f"fastapi_port_added_lines: {added} (booking/app.py {port} code lines vs "
            f"booking/plain.py {plain}; blank lines and comments not counted)"
        )
        print(f"fastapi_port_removed_lines: {removed}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
