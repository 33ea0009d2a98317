"""The throwaway PostgreSQL cluster the store tests run against starts, accepts the test role's
password over TCP, refuses a wrong one, and gives each test its own database."""

from __future__ import annotations

import pytest

psycopg = pytest.importorskip(
    "psycopg", reason="psycopg 3 is in the test extra (prodture[postgres])"
)


def test_a_fresh_database_accepts_the_test_role(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute(
            "SELECT current_user, count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone() == ("prodture", 0)


def test_a_wrong_password_is_refused(postgres_cluster) -> None:
    url = postgres_cluster.url().replace(postgres_cluster.password, "wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(url, connect_timeout=30)
