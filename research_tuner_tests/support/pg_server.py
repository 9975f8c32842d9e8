"""A throwaway PostgreSQL server (Debian's postgresql) in a temporary folder, listening on loopback only.

PostgreSQL refuses to run as root, and tests run as root in CI: the server then runs as the `postgres`
system user (runuser), in a folder that user owns. A password-protected role and database are created
for the test, so the client side goes through the same password authentication a real deployment does.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def postgres_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin (Debian's layout; initdb is not on PATH there)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise RuntimeError("PostgreSQL is not installed: run scripts/setup.sh (apt-get install postgresql)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """`with PostgresServer() as pg:` -> pg.env (DAGSTER_PG_* variables) and pg.connect()."""

    user = "dagster"
    db = "dagster"

    def __init__(self) -> None:
        self.bin = postgres_bin_dir()
        self.port = free_port()
        self.password = "pw-" + os.urandom(8).hex()
        self.as_root = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="rt-pg-"))
        self.data = self.root / "data"

    def _run(self, *args: str, input: str | None = None) -> str:
        cmd = ["runuser", "-u", "postgres", "--", *args] if self.as_root else list(args)
        done = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr or done.stdout}")
        return done.stdout

    def __enter__(self) -> PostgresServer:
        if self.as_root:
            owner = pwd.getpwnam("postgres")
            os.chmod(self.root, 0o700)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                  "-t", "60", "-o", f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off", "start")
        sql = (f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}';\n"
               f"CREATE DATABASE {self.db} OWNER {self.user};\n")
        self._run(str(self.bin / "psql"), "-h", str(self.root), "-p", str(self.port), "-U", "postgres",
                  "-v", "ON_ERROR_STOP=1", "-q", "-d", "postgres", input=sql)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def env(self) -> dict[str, str]:
        return {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_USER": self.user,
                "DAGSTER_PG_PASSWORD": self.password, "DAGSTER_PG_DB": self.db}

    def connect(self):
        import psycopg2

        deadline = time.monotonic() + 30
        while True:
            try:
                return psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user,
                                        password=self.password, dbname=self.db)
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
