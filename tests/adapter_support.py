"""Helpers shared by the adapter tests: sessions on the checkout example and a small walk demo."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from dap_client import DapClient

CHECKOUT = Path(__file__).resolve().parent.parent / "examples" / "checkout"
SERVICE = "checkout/service.py"


def line_in(text: str, needle: str) -> int:
    """The 1-based line of the one line of ``text`` containing ``needle``."""
    found = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(found) == 1, f"{len(found)} lines contain {needle!r}"
    return found[0]


def line_of(path: Path, needle: str) -> int:
    """The line of ``path`` containing ``needle``: found in the source text, so editing the
    example moves the tests with it."""
    return line_in(path.read_text(), needle)


#: lines of examples/checkout/checkout/service.py
LOAD_LINE = line_of(CHECKOUT / SERVICE, "yield LoadCart(")
SUBTOTAL_LINE = line_of(CHECKOUT / SERVICE, "cart.subtotal()")
PROMO_LINE = line_of(CHECKOUT / SERVICE, "yield ApplyPromo(")
TRY_LINE = line_of(CHECKOUT / SERVICE, "    try:")
CHARGE_LINE = line_of(CHECKOUT / SERVICE, "yield ChargeCard(")
EXCEPT_LINE = line_of(CHECKOUT / SERVICE, "except PaymentDeclined")
DECLINED_SAVE_LINE = line_of(CHECKOUT / SERVICE, 'status="declined"')
RAISE_LINE = line_of(CHECKOUT / SERVICE, "        raise")
#: Cart.subtotal's body in examples/checkout/checkout/model.py
CART_SUBTOTAL_LINE = line_of(CHECKOUT / "checkout" / "model.py", "return sum((line.unit_price")


def start_session(
    trace: Path | str,
    cwd: Path | str,
    *,
    python: str | None = None,
    breakpoints: dict[str, list[int]] | None = None,
    filters: list[str] | None = None,
    **launch: Any,
) -> DapClient:
    """initialize → launch → breakpoints / exception filters → configurationDone."""
    client = DapClient.start(python=python)
    try:
        client.initialize()
        client.launch(trace=str(trace), cwd=str(cwd), **launch)
        for path, lines in (breakpoints or {}).items():
            client.set_breakpoints(path, lines)
        client.request(
            "setExceptionBreakpoints", {"filters": filters if filters is not None else []}
        )
        client.configuration_done()
    except BaseException:
        client.close()
        raise
    return client


WALK_SOURCE = '''
"""A handler with loops, nested calls and effects: material for random walks."""
import dataclasses

import prodture


@dataclasses.dataclass(frozen=True)
class Fetch(prodture.Effect, name="walk.Fetch"):
    n: int


def square(x):
    y = x * x
    return y


def accumulate(values):
    total = 0
    for v in values:
        total += square(v)
    return total


@prodture.handler
def walk(request):
    items = []
    for i in range(request["n"]):
        got = yield Fetch(i)
        items.append(got)
        if i % 2:
            items[-1] = accumulate([got, i])
    result = accumulate(items)
    return result
'''

RECORD_WALK = """
import sys
sys.path.insert(0, ".")
import prodture
from walkdemo import Fetch, walk

recorder = prodture.Recorder(prodture.DirectorySink("traces"))
interpreter = prodture.Interpreter({Fetch: lambda e: e.n * 3 + 1}, recorder=recorder)
print(interpreter.run(walk, {"n": int(sys.argv[1])}))
"""


def make_walk_demo(root: Path, n: int = 6, python: str | None = None) -> tuple[Path, Path]:
    """A project directory with the walk handler and one recorded trace: (directory, trace)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "walkdemo.py").write_text(textwrap.dedent(WALK_SOURCE))
    (root / "pyproject.toml").write_text('[tool.prodture]\nmodules = ["walkdemo"]\n')
    (root / "record.py").write_text(textwrap.dedent(RECORD_WALK))
    subprocess.run(
        [python or sys.executable, "record.py", str(n)],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=60,
    )
    trace = next((root / "traces").glob("*.prodtrace"))
    return root, trace


def copy_checkout(checkout_dir: Path, target: Path) -> Path:
    shutil.copytree(
        checkout_dir, target, ignore=shutil.ignore_patterns("traces", "var", "__pycache__")
    )
    return target
