"""Diagnostics that name the real cause: an unregistered handler at record time and at replay."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

import prodture
from prodture import Interpreter, MemorySink, Recorder
from prodture.replay import ReplayError, resolve_handler


def not_decorated(x):
    yield prodture.Now()
    return x


def test_recording_an_unregistered_handler_warns_once(caplog):
    interp = Interpreter(recorder=Recorder(MemorySink()))
    with caplog.at_level(logging.WARNING, logger="prodture"):
        interp.run(not_decorated, 1)
        interp.run(not_decorated, 2)
    warnings = [r for r in caplog.records if "not a registered handler" in r.getMessage()]
    assert len(warnings) == 1
    assert "test_diagnostics:not_decorated" in warnings[0].getMessage()
    assert "@prodture.handler" in warnings[0].getMessage()


def test_replay_tells_an_undecorated_function_from_an_unlisted_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "diag_app.py").write_text("def book(x):\n    return x\n")
    monkeypatch.delenv("PRODTURE_MODULES", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("diag_app", None)
    # not listed anywhere: the hint is to list the module
    with pytest.raises(ReplayError, match=r"list its module in \[tool.prodture\] modules"):
        resolve_handler("diag_app:book", cwd=str(tmp_path))
    # listed: the module is imported, the function exists but is not decorated
    (tmp_path / "pyproject.toml").write_text('[tool.prodture]\nmodules = ["diag_app"]\n')
    with pytest.raises(ReplayError) as info:
        resolve_handler("diag_app:book", cwd=str(tmp_path))
    assert "(listed, imported) defines book but it is not a registered handler" in str(info.value)
    assert "@prodture.handler" in str(info.value) and "list its module" not in str(info.value)
    with pytest.raises(ReplayError, match="has no 'gone'; it was renamed or moved"):
        resolve_handler("diag_app:gone", cwd=str(tmp_path))


def test_user_traceback_reraises_a_handler_error_without_runtime_frames():
    import traceback

    from prodture.runtime import user_traceback

    def broken(x):
        yield prodture.Now()
        return {}["missing"]

    outcome = Interpreter().run(broken, None)
    assert not outcome.ok
    try:
        raise outcome.error.with_traceback(user_traceback(outcome.error))
    except KeyError as error:
        frames = traceback.extract_tb(error.__traceback__)
    assert frames and all(f.filename == __file__ for f in frames)  # no prodture frame
    assert [f.name for f in frames][-1] == "broken"
