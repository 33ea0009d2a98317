"""Run a few orders through the checkout service with recording on.

Starts the payment gateway (an HTTP service on 127.0.0.1) and an SQLite database, places four
orders — the one with promo FREE100 fails: the gateway rejects a $0.00 charge — and leaves one
trace per order in ``traces/``. Then stops the gateway and deletes the database, to show that
replay needs neither.

    python run_orders.py [--traces DIR] [--keep-db]
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from checkout.gateway import GatewayClient
from checkout.service import place_order
from checkout.store import Store

import prodture

ORDERS = [
    {"cart_id": "cart-1001", "promo": None, "card_token": "tok_visa_4242"},
    {"cart_id": "cart-1002", "promo": "WELCOME10", "card_token": "tok_mastercard_4444"},
    {"cart_id": "cart-1003", "promo": "FREE100", "card_token": "tok_visa_1881"},
    {"cart_id": "cart-1001", "promo": "HALF", "card_token": "tok_amex_0005"},
]


def start_gateway() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "checkout.gateway"],
        cwd=HERE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    match = re.search(r"http://\S+", line)
    if not match:
        proc.kill()
        raise SystemExit(f"run_orders: the payment gateway did not start (said {line!r})")
    return proc, match.group(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", default=os.path.join(HERE, "traces"))
    parser.add_argument(
        "--keep-db", action="store_true", help="keep the SQLite database afterwards"
    )
    args = parser.parse_args()

    os.makedirs(args.traces, exist_ok=True)
    for old in glob.glob(os.path.join(args.traces, "*.prodtrace")):
        os.remove(old)
    db_dir = os.path.join(HERE, "var")
    os.makedirs(db_dir, exist_ok=True)
    db_path = os.path.join(db_dir, "shop.db")
    if os.path.exists(db_path):
        os.remove(db_path)
    store = Store(db_path)
    store.seed()

    gateway, url = start_gateway()
    try:
        recorder = prodture.Recorder(prodture.DirectorySink(args.traces))
        interpreter = prodture.Interpreter(
            {**store.performers(), **GatewayClient(url).performers()}, recorder=recorder
        )
        for order in ORDERS:
            outcome = interpreter.run(place_order, order)
            label = f"{order['cart_id']} promo={order['promo']}"
            if outcome.ok:
                print(f"  ok      {label}: {outcome.value}")
            else:
                print(f"  FAILED  {label}: {type(outcome.error).__name__}: {outcome.error}")
        recorder.close()  # write every pending trace (the writer thread does the file I/O)
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)
    if not args.keep_db:
        os.remove(db_path)
    print(
        f"recorded {recorder.stats.traces_written} traces in {os.path.relpath(args.traces)}; "
        f"gateway stopped{', database deleted' if not args.keep_db else ''}"
    )
    for path in sorted(glob.glob(os.path.join(args.traces, "*.prodtrace"))):
        print("  " + os.path.relpath(path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
