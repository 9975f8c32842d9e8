"""Find a secret anywhere under a folder: raw bytes of every file, and every row of every SQLite database.

SQLite keeps long rows in overflow pages, which can split a string across a page boundary, so databases
are also read through SQLite itself (the Dagster run and event-log storage under DAGSTER_HOME).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def files_containing(root: Path, secret: str) -> list[str]:
    """Paths (and `path:table` for database rows) under `root` whose contents include `secret`."""
    needle = secret.encode()
    found = []
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        data = path.read_bytes()
        if needle in data:
            found.append(str(path))
        if data.startswith(b"SQLite format 3\x00"):
            found += [f"{path}:{table}" for table in _sqlite_tables_containing(path, secret)]
    return found


def _sqlite_tables_containing(path: Path, secret: str) -> list[str]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        hits = []
        for table in tables:
            for row in con.execute(f'SELECT * FROM "{table}"'):
                if any(secret in (v.decode(errors="replace") if isinstance(v, bytes) else str(v)) for v in row):
                    hits.append(table)
                    break
        return hits
    finally:
        con.close()


def sqlite_row_count(root: Path, table: str) -> int:
    """Rows of `table` over every SQLite database under `root` that has it (to show a scan was not empty)."""
    total = 0
    for path in Path(root).rglob("*.db"):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            if con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone():
                total += con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        finally:
            con.close()
    return total
