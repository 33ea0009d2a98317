"""pytest plugin: recorded traces become regression tests.

``pytest --prodture-replay traces/`` collects every ``*.prodtrace`` file under the given paths as a
test that replays it against the current code (strict mode) and fails with the precise divergence
when the code no longer does what production did. A trace named ``*.expect-fixed.prodtrace``
recorded a bug: its test passes when the recorded failure no longer happens (and reports what the
code now does). Each trace is replayed in its own project: the nearest ``pyproject.toml`` with
``[tool.prodture]`` at or above the trace (then pytest's rootdir). ``prodture_replay = true`` in the pytest ini
options turns collection on permanently. Handlers are resolved as ``prodture replay`` does: only
registered handlers of the modules listed in ``[tool.prodture] modules``.

Loaded through the ``pytest11`` entry point, so it must stay cheap when unused: nothing heavier
than the standard library is imported until a trace is collected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("prodture")
    group.addoption(
        "--prodture-replay",
        action="store_true",
        default=False,
        help="collect *.prodtrace files as tests that replay them against the current code",
    )
    group.addoption(
        "--prodture-stubs",
        metavar="MODULE:NAME",
        default=None,
        help="stubs for speculative replays of *.expect-fixed traces (as prodture replay --stubs)",
    )
    parser.addini(
        "prodture_stubs",
        default="",
        help="stubs for speculative replays of *.expect-fixed traces (module:name)",
    )
    parser.addini(
        "prodture_replay",
        type="bool",
        default=False,
        help="always collect *.prodtrace files as replay tests",
    )


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("--prodture-replay") or config.getini("prodture_replay"))


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.suffix == ".prodtrace" and _enabled(parent.config):
        return TraceFile.from_parent(parent, path=file_path)
    return None


def _project_of(path: Path, config: pytest.Config) -> str:
    """The trace's project: the nearest ``pyproject.toml`` with ``[tool.prodture]`` at or above
    the trace, else at or above pytest's rootdir; ``PRODTURE_MODULES`` alone also does."""
    import os

    from .replay import ReplayError, find_project

    for start in (path.parent, config.rootpath):
        found = find_project(str(start))
        if found is not None:
            return found
    if os.environ.get("PRODTURE_MODULES"):
        return str(config.rootpath)
    raise TraceDiverged(
        f"cannot replay: no pyproject.toml with a [tool.prodture] table at or above "
        f"{path.parent} (the trace's folder) or {config.rootpath} (pytest's rootdir), and "
        "PRODTURE_MODULES is not set; add [tool.prodture] modules = [...] to the project's "
        "pyproject.toml"
    ) from ReplayError


class TraceFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        yield TraceReplayItem.from_parent(self, name="replay")


class TraceDiverged(AssertionError):
    pass


class TraceReplayItem(pytest.Item):
    """Replays one trace; passes when the current code reproduces it exactly."""

    def runtest(self) -> None:
        from .replay import (
            EXPECT_FIXED_SUFFIX,
            SPECULATIVE,
            STRICT,
            Replayer,
            ReplayError,
            check_fixed,
            load_stubs,
        )

        project = _project_of(self.path, self.config)
        expect_fixed = self.path.name.endswith(EXPECT_FIXED_SUFFIX)
        try:
            spec = self.config.getoption("--prodture-stubs") or self.config.getini("prodture_stubs")
            stubs = load_stubs(spec, project) if expect_fixed and spec else None
            replayer = Replayer.from_file(
                self.path, cwd=project, mode=SPECULATIVE if expect_fixed else STRICT, stubs=stubs
            )
        except ReplayError as e:
            raise TraceDiverged(f"cannot replay (project {project}): {e}") from None
        result = replayer.run()
        if expect_fixed:
            check = check_fixed(result)
            if not check.fixed:
                raise TraceDiverged(f"expected fixed, {check.message}")
            # passes; what the code now does is in the report (pytest -rP shows it)
            self.add_report_section("call", "prodture", check.message)
            return
        if result.divergence is not None and result.divergence.kind != "end-of-trace":
            raise TraceDiverged(result.divergence.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, TraceDiverged):
            return f"{self.path.name}: {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"replay {self.path.name}"
