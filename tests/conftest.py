"""Shared fixtures: the checkout example's traces, recorded for real once per test session."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prodture.trace import read_trace

ROOT = Path(__file__).resolve().parent.parent
CHECKOUT = ROOT / "examples" / "checkout"


@pytest.fixture(scope="session")
def checkout_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the checkout example (tests may edit its handler)."""
    target = tmp_path_factory.mktemp("example") / "checkout"
    shutil.copytree(CHECKOUT, target, ignore=shutil.ignore_patterns("traces", "var", "__pycache__"))
    return target


@pytest.fixture(scope="session")
def checkout_traces(checkout_dir: Path) -> dict[str, Path]:
    """Traces recorded by running the example service (SQLite + HTTP gateway) for real.

    Keys: ``failing`` (promo FREE100, the $0 charge), ``ok`` (first successful order), ``all``.
    """
    traces = checkout_dir / "traces"
    subprocess.run(
        [sys.executable, "run_orders.py", "--traces", str(traces)],
        cwd=checkout_dir,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    paths = sorted(Path(p) for p in glob.glob(os.path.join(traces, "*.prodtrace")))
    failing = [p for p in paths if not read_trace(p).outcome.ok]
    ok = [p for p in paths if read_trace(p).outcome.ok]
    assert len(failing) == 1 and ok, "the example must record exactly one failing order"
    return {"failing": failing[0], "ok": ok[0], "all": paths}  # type: ignore[dict-item]
