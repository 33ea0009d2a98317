"""Golden vectors of the trace format (protocol/trace-format.md): ``*.prodtrace`` + ``*.json``.

    python protocol/vectors/generate.py          # (re)write the vectors beside this file
    python protocol/vectors/generate.py --check  # exit 1 if any file would change

Each vector is written by the real encoder (``prodture.trace.TraceEncoder``) with every
non-deterministic input fixed (trace id, start time, Python/prodture versions, timings, call
sites), so the bytes are reproducible. Beside it, ``<name>.json`` holds the decoded content in the
language-neutral JSON rendering of trace-format.md §8::

    {"vector": name, "description": ..., "records": [<record>, ...], "tail": <base64>|null,
     "expect": {<what a reader reports>}}

Rendering (``render``) and its inverse (``unrender``) are defined here so the tests can check both
directions: decoding the bytes gives the JSON, and packing the JSON gives the same bytes.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import json
import math
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "python-adapter"))

import msgpack

import prodture
from prodture.effects import Effect, secret
from prodture.trace import REDACTED, Opaque, TraceReader
from prodture.trace.codec import Redactor
from prodture.trace.format import TraceEncoder

# -- the JSON rendering ------------------------------------------------------------------------

EXT_TAGS = {1: "$datetime", 2: "$date", 3: "$decimal", 13: "$time"}
SAFE_INT = 2**53


def render(value: Any) -> Any:
    """A msgpack value decoded *without* interpretation (``raw_unpack``) -> JSON."""
    if value is None or isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if -SAFE_INT < value < SAFE_INT else {"$int": str(value)}
    if isinstance(value, float):
        return {"$float": repr(value) if math.isfinite(value) else str(value)}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return [render(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: render(v) for k, v in value.items()}
        return {"$map": [[render(k), render(v)] for k, v in value.items()]}
    if isinstance(value, msgpack.ExtType):
        code, data = value.code, value.data
        if code in EXT_TAGS:
            return {EXT_TAGS[code]: data.decode()}
        if code == 4:
            return {"$uuid": str(uuid.UUID(bytes=data))}
        if code == 10:
            return {"$redacted": True}
        inner = raw_unpack(data)
        tag = {
            5: "$object",
            6: "$error",
            7: "$tuple",
            8: "$set",
            9: "$frozenset",
            11: "$opaque",
            12: "$timedelta",
        }.get(code)
        if tag is None:
            return {"$ext": [code, base64.b64encode(data).decode()]}
        return {tag: render(inner)}
    raise TypeError(f"cannot render {type(value).__name__}")


def unrender(value: Any) -> Any:
    """Inverse of :func:`render`: JSON -> values that ``msgpack.packb`` packs to the same bytes."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, list):
        return [unrender(v) for v in value]
    if len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == "$int":
            return int(inner)
        if tag == "$float":
            return float(inner)
        if tag == "$bytes":
            return base64.b64decode(inner)
        if tag == "$map":
            return {unrender(k): unrender(v) for k, v in inner}
        codes = {v: k for k, v in EXT_TAGS.items()}
        if tag in codes:
            return msgpack.ExtType(codes[tag], inner.encode())
        if tag == "$uuid":
            return msgpack.ExtType(4, uuid.UUID(inner).bytes)
        if tag == "$redacted":
            return msgpack.ExtType(10, b"")
        if tag == "$ext":
            return msgpack.ExtType(inner[0], base64.b64decode(inner[1]))
        nested = {
            "$object": 5,
            "$error": 6,
            "$tuple": 7,
            "$set": 8,
            "$frozenset": 9,
            "$opaque": 11,
            "$timedelta": 12,
        }
        if tag in nested:
            return msgpack.ExtType(nested[tag], pack(unrender(inner)))
    return {k: unrender(v) for k, v in value.items()}


def raw_unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=msgpack.ExtType)


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def raw_records(data: bytes) -> tuple[list[Any], bytes]:
    """The complete records of ``data`` (uninterpreted) and the bytes of a truncated tail."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, ext_hook=msgpack.ExtType)
    unpacker.feed(data)
    records, end = [], 0
    while True:
        try:
            records.append(unpacker.unpack())
        except msgpack.OutOfData:
            break
        end = unpacker.tell()
    return records, data[end:]


def to_json(name: str, description: str, data: bytes) -> dict[str, Any]:
    records, tail = raw_records(data)
    trace = TraceReader(data, name=name).read()
    return {
        "vector": name,
        "description": description,
        "records": [render(r) for r in records],
        "tail": base64.b64encode(tail).decode() if tail else None,
        "expect": {
            "handler": trace.header.handler,
            "trace_id": trace.header.trace_id,
            "complete": trace.complete,
            "truncated": trace.truncated,
            "effects": [[e.seq, e.type, e.ok] for e in trace.effects],
            "outcome": None
            if trace.outcome is None
            else {"ok": trace.outcome.ok, "failed_effect": trace.outcome.failed_effect},
        },
    }


def from_json(doc: dict[str, Any]) -> bytes:
    data = b"".join(pack(unrender(r)) for r in doc["records"])
    return data + (base64.b64decode(doc["tail"]) if doc["tail"] else b"")


# -- the content of the vectors ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LoadCart(Effect, name="vectors.LoadCart"):
    cart_id: str


@dataclasses.dataclass(frozen=True)
class ChargeCard(Effect, name="vectors.ChargeCard"):
    card_token: str
    amount: Decimal


@dataclasses.dataclass(frozen=True)
class Login(Effect, name="vectors.Login"):
    user: str
    password: str
    otp: str = secret(default="")


@dataclasses.dataclass(frozen=True)
class Probe(Effect, name="vectors.Probe"):
    kind: str


@prodture.register(name="vectors.Cart")
@dataclasses.dataclass(frozen=True)
class Cart:
    cart_id: str
    lines: tuple


@prodture.register(name="vectors.Charge")
@dataclasses.dataclass(frozen=True)
class Charge:
    charge_id: str
    amount: Decimal


@prodture.register(name="vectors.Status")
class Status(enum.Enum):
    PAID = "paid"
    FREE = 0


@prodture.register(name="vectors.PaymentDeclined")
class PaymentDeclined(Exception):
    def __init__(self, message: str, code: str = "declined") -> None:
        super().__init__(message)
        self.code = code


HANDLER = "shop.service:place_order"
SITE = ("shop/service.py", 14, "place_order")
STARTED = dt.datetime(2026, 11, 24, 9, 39, 54, 965269, tzinfo=dt.timezone.utc)


def encoder(redact: bool = True) -> tuple[TraceEncoder, bytes]:
    enc = TraceEncoder(Redactor() if redact else None)
    head = enc.header(
        HANDLER,
        trace_id="0123456789abcdef0123456789abcdef",
        started_at=STARTED,
        fingerprint="255886ef8823e86c",
        meta={"service": "shop"},
        python="3.11.7",
        prodture="0.1.0",
    )
    return enc, head


def simple_success() -> bytes:
    enc, head = encoder()
    cart = Cart("cart-1001", (("BOOK-42", Decimal("24.50"), 2),))
    return b"".join(
        [
            head,
            enc.input({"cart_id": "cart-1001", "promo": None}),
            enc.effect(1, LoadCart("cart-1001"), True, cart, 1200, 35000, SITE),
            enc.effect(
                2,
                ChargeCard("tok_visa_4242", Decimal("49.00")),
                True,
                Charge("ch_1", Decimal("49.00")),
                40000,
                210000,
                (SITE[0], 18, SITE[2]),
            ),
            enc.outcome(True, {"order_id": "order-1", "total": "49.00"}, "", None, 300000),
        ]
    )


TRACEBACK = (
    'Traceback (most recent call last):\n  File "shop/service.py", line 18, in place_order\n'
    '    charge = yield ChargeCard(card_token=request["card_token"], amount=total)\n'
    "shop.PaymentDeclined: amount must be greater than zero\n"
)


def failure() -> bytes:
    enc, head = encoder()
    error = PaymentDeclined("amount must be greater than zero", "invalid_amount")
    return b"".join(
        [
            head,
            enc.input({"cart_id": "cart-1003", "promo": "FREE100"}),
            enc.effect(1, LoadCart("cart-1003"), True, Cart("cart-1003", ()), 1000, 20000, SITE),
            enc.effect(
                2,
                ChargeCard("tok_visa_1881", Decimal("0.00")),
                False,
                error,
                30000,
                150000,
                (SITE[0], 18, SITE[2]),
            ),
            enc.outcome(False, error, TRACEBACK, 2, 200000),
        ]
    )


ALL_VALUES = [
    ("nil", None),
    ("bool", True),
    ("int", -42),
    ("uint64", 2**64 - 1),
    ("float", 0.1),
    ("str", "héllo"),
    ("bin", b"\x00\x01\xff"),
    ("array", [1, "two"]),
    ("map", {"a": 1, 2: "b"}),
    (
        "datetime",
        dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    ),
    ("naive_datetime", dt.datetime(2026, 1, 2, 3, 4, 5)),
    ("date", dt.date(2026, 2, 28)),
    ("decimal", Decimal("0.00")),
    ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678")),
    ("object", Charge("ch_2", Decimal("1.50"))),
    ("enum", Status.FREE),
    ("error", PaymentDeclined("card declined", "card_declined")),
    ("tuple", (1, (2, "x"))),
    ("set", {3, 1, "b"}),
    ("frozenset", frozenset({b"k"})),
    ("redacted", REDACTED),
    ("opaque", Opaque("socket.socket", "<socket fd=3>")),
    ("timedelta", dt.timedelta(days=-1, seconds=30, microseconds=5)),
    ("time", dt.time(23, 59, 58, 1000)),
]


def all_ext_types() -> bytes:
    enc, head = encoder(redact=False)
    parts = [head, enc.input([name for name, _ in ALL_VALUES])]
    for seq, (name, value) in enumerate(ALL_VALUES, start=1):
        parts.append(enc.effect(seq, Probe(name), True, value, 1000 * seq, 10, SITE))
    parts.append(enc.outcome(True, len(ALL_VALUES), "", None, 99999))
    return b"".join(parts)


SECRETS = ("hunter2", "482913", "sk_live_abc123", "4111111111111111")


def redacted() -> bytes:
    enc, head = encoder()
    return b"".join(
        [
            head,
            enc.input(
                {
                    "user": "ada",
                    "api_key": SECRETS[2],
                    "card": {"card_number": SECRETS[3], "exp": "12/29"},
                }
            ),
            enc.effect(
                1,
                Login("ada", SECRETS[0], otp=SECRETS[1]),
                True,
                {"session": "s1", "token": SECRETS[2]},
                500,
                9000,
                SITE,
            ),
            enc.outcome(True, {"user": "ada", "password": SECRETS[0]}, "", None, 10000),
        ]
    )


def truncated_prefix() -> bytes:
    data = simple_success()
    records, _ = raw_records(data)
    # Keep the header, the input, the first effect and 5 bytes of the next record.
    end = sum(len(pack(r)) for r in records[:5])
    return data[: end + 5]


VECTORS = {
    "simple-success": (
        simple_success,
        "Two effects (a registered dataclass result, a Decimal request), Success.",
    ),
    "failure": (
        failure,
        "An effect fails with a registered exception carrying an attribute; Failure names effect #2.",
    ),
    "all-ext-types": (
        all_ext_types,
        "One effect per value type: every msgpack type and every ext type (no redaction).",
    ),
    "redacted": (
        redacted,
        "Secret-named and secret() fields redacted in input, request, result and outcome.",
    ),
    "truncated-prefix": (
        truncated_prefix,
        "simple-success cut 5 bytes into its second effect record: complete=false.",
    ),
}


def main() -> int:
    check = "--check" in sys.argv[1:]
    changed = []
    for name, (build, description) in VECTORS.items():
        data = build()
        doc = to_json(name, description, data)
        text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
        for path, content in (
            (HERE / f"{name}.prodtrace", data),
            (HERE / f"{name}.json", text.encode()),
        ):
            if not path.exists() or path.read_bytes() != content:
                changed.append(path.name)
                if not check:
                    path.write_bytes(content)
    if check:
        print("vectors up to date" if not changed else f"vectors out of date: {', '.join(changed)}")
        return 1 if changed else 0
    print(f"wrote {', '.join(changed) or 'nothing (all up to date)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
