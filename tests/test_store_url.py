"""A store's location comes from the command line, PRODTURE_STORE or [tool.prodture] store, in
that order, and a password never appears in what is shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from prodture.store_url import StoreConfigError, mask_password, resolve_store


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://app:hunter2@db.internal:5432/traces",
            "postgresql://app:***@db.internal:5432/traces",
        ),
        ("postgresql://app@db/traces", "postgresql://app@db/traces"),
        ("host=db user=app password=hunter2 dbname=t", "host=db user=app password=*** dbname=t"),
        (
            "postgresql://db/t?password=hunter2&sslmode=require",
            "postgresql://db/t?password=***&sslmode=require",
        ),
        ("sqlite:///var/events.db", "sqlite:///var/events.db"),
    ],
)
def test_a_password_is_never_shown(url: str, shown: str) -> None:
    assert mask_password(url) == shown
    assert "hunter2" not in mask_password(url)


def test_the_command_line_wins_then_the_environment_then_pyproject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.prodture]\nstore = "var/traces"\n')
    inner = tmp_path / "src" / "pkg"
    inner.mkdir(parents=True)
    monkeypatch.delenv("PRODTURE_STORE", raising=False)
    assert resolve_store(None, str(inner)) == str(tmp_path / "var" / "traces")
    monkeypatch.setenv("PRODTURE_STORE", "postgresql://a:b@h/db")
    assert resolve_store(None, str(inner)) == "postgresql://a:b@h/db"
    assert resolve_store("sqlite:///events.db", str(inner)) == f"sqlite:///{inner}/events.db"


def test_no_store_anywhere_names_the_three_ways_to_set_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PRODTURE_STORE", raising=False)
    (tmp_path / "pyproject.toml").write_text("[tool.prodture]\nmodules = []\n")
    with pytest.raises(StoreConfigError, match=r"--store URL.*PRODTURE_STORE.*\[tool.prodture\]"):
        resolve_store(None, str(tmp_path))
