"""Shared fixtures: the checkout example's traces, recorded for real once per test session, and the
projects the language-server tests open."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    return {"failing": failing[0], "ok": ok[0], "all": paths}  # type: ignore[dict-item]  # "all" is a list


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


# The language-server tests' projects (tests/test_lsp_*.py)


@pytest.fixture
def project(checkout_dir: Path, checkout_traces: dict[str, Any], tmp_path: Path) -> Path:
    """A private copy of the checkout example (with its recorded traces) a test may edit."""
    target = tmp_path / "checkout"
    shutil.copytree(checkout_dir, target, ignore=shutil.ignore_patterns("var", "__pycache__"))
    return target


LOOP_HANDLER = """\
import dataclasses
import prodture


@dataclasses.dataclass(frozen=True)
class LookupItem(prodture.Effect, name="lspbatch.LookupItem"):
    key: str


@prodture.handler
def crunch(n):
    total = 0
    for i in range(n):
        item = yield LookupItem(key=f"item-{i}")
        total += item
    return total
"""


@pytest.fixture
def loop_project(tmp_path: Path) -> tuple[Path, Path]:
    """A handler that yields the same effect 30 times in a loop, recorded for real."""
    import importlib

    import prodture

    root = tmp_path / "batch"
    (root / "lspbatch").mkdir(parents=True)
    (root / "lspbatch" / "__init__.py").write_text("")
    source = root / "lspbatch" / "jobs.py"
    source.write_text(LOOP_HANDLER)
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module("lspbatch.jobs")
        recorder = prodture.Recorder(prodture.DirectorySink(root / "traces"))
        prodture.Interpreter(
            {module.LookupItem: lambda e: int(e.key.split("-")[1])}, recorder=recorder
        ).run(module.crunch, 30)
        recorder.close()  # the trace is written by the recorder's writer thread
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.startswith("lspbatch")]:
            del sys.modules[name]
    [trace] = (root / "traces").glob("*.prodtrace")
    return source, trace
