"""A throwaway PostgreSQL cluster for the tests that need a real server.

The event store and the trace store are tested against a real PostgreSQL: this module starts one
cluster per test session in a temporary folder, on a free port, and stops it at the end. The
server refuses to run as root, so as root the cluster is owned and run by the ``postgres`` user
(``runuser``); as any other user it runs as that user.

Where no server binaries are found the fixture SKIPS with the reason (never silently): ``make
test`` installs Debian's ``postgresql`` package first, so on the project's machines these tests
always run. ``PRODTURE_PG_BIN`` points at another ``bin`` folder (``initdb``, ``pg_ctl``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: The role and password the tests connect with (a password, so masking it can be tested).
USER = "prodture"
PASSWORD = "s3cret-pg-password"


@dataclass(frozen=True)
class PostgresCluster:
    host: str
    port: int
    user: str
    password: str
    bin_dir: Path
    data_dir: Path

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL for ``database`` (with the password)."""
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create a fresh database and return its URL."""
        self.psql("postgres", f'CREATE DATABASE "{name}" OWNER {self.user}')
        return self.url(name)

    def psql(self, database: str, sql: str) -> str:
        """Run ``sql`` as the superuser; returns psql's output."""
        done = subprocess.run(
            [str(self.bin_dir / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]
            + ["-h", self.host, "-p", str(self.port), "-U", "postgres", "-d", database]
            + ["-c", sql],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PGPASSWORD": ""},
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout


def find_bin_dir() -> Path | None:
    """The newest PostgreSQL server ``bin`` folder on this machine, or None."""
    configured = os.environ.get("PRODTURE_PG_BIN")
    candidates = [configured] if configured else []
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True
    )
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if (
            candidate
            and (Path(candidate) / "initdb").exists()
            and (Path(candidate) / "pg_ctl").exists()
        ):
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@contextlib.contextmanager
def running_cluster() -> Iterator[PostgresCluster]:
    """Start a throwaway cluster; stop it and delete its folder on exit."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError(
            "no PostgreSQL server binaries (initdb, pg_ctl) found under /usr/lib/postgresql/*/bin "
            "or on PATH: install Debian's postgresql package (make test does) or set PRODTURE_PG_BIN"
        )
    root = Path(tempfile.mkdtemp(prefix="prodture-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        os.chmod(root, 0o755)
        shutil.chown(root, "postgres", "postgres")
    port = _free_port()
    log = root / "server.log"
    subprocess.run(
        _as_server_user(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
            + ["--encoding=UTF8", "--no-sync"]
        ),
        check=True,
        capture_output=True,
        timeout=300,
    )
    # Local superuser by trust (for set-up); the test role by password over TCP.
    (data / "pg_hba.conf").write_text(
        "local all postgres trust\n"
        "host all postgres 127.0.0.1/32 trust\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
    )
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} -c fsync=off"
    try:
        subprocess.run(
            _as_server_user(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options]
                + ["-w", "-t", "120", "start"]
            ),
            check=True,
            capture_output=True,
            timeout=180,
        )
        cluster = PostgresCluster("127.0.0.1", port, USER, PASSWORD, bin_dir, data)
        deadline = time.monotonic() + 60
        while True:
            try:
                cluster.psql("postgres", "SELECT 1")
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        cluster.psql("postgres", f"CREATE ROLE {USER} LOGIN CREATEDB PASSWORD '{PASSWORD}'")
        yield cluster
    finally:
        subprocess.run(
            _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(root, ignore_errors=True)
