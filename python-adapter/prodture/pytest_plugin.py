"""pytest plugin: recorded traces become regression tests.

``pytest --prodture-replay traces/`` collects every ``*.prodtrace`` file under the given paths as a
test that replays it against the current code (strict mode) and fails with the precise divergence
when the code no longer does what production did. ``prodture_replay = true`` in the pytest ini
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


class TraceFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        yield TraceReplayItem.from_parent(self, name="replay")


class TraceDiverged(AssertionError):
    pass


class TraceReplayItem(pytest.Item):
    """Replays one trace; passes when the current code reproduces it exactly."""

    def runtest(self) -> None:
        from .replay import Replayer, ReplayError

        try:
            replayer = Replayer.from_file(self.path, cwd=str(self.config.rootpath))
        except ReplayError as e:
            raise TraceDiverged(f"cannot replay: {e}") from None
        result = replayer.run()
        if result.divergence is not None and result.divergence.kind != "end-of-trace":
            raise TraceDiverged(result.divergence.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, TraceDiverged):
            return f"{self.path.name}: {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"replay {self.path.name}"
