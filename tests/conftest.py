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


@pytest.fixture(scope="session")
def postgres_cluster():
    """One throwaway PostgreSQL cluster for the session (see tests/pg_cluster.py).

    SKIPPED, with the reason, where no server is installed; ``make test`` installs one.
    """
    from pg_cluster import find_bin_dir, running_cluster

    if find_bin_dir() is None:
        pytest.skip("PostgreSQL server not installed (make test installs Debian's postgresql)")
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def postgres_url(postgres_cluster, request: pytest.FixtureRequest) -> str:
    """The URL of a new, empty database for one test."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    name = f"{name}_{os.getpid()}_{id(request) % 100000}"
    return postgres_cluster.create_database(name)
