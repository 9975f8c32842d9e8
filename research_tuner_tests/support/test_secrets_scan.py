"""The secret scan finds a key in plain files and inside SQLite rows, even where SQLite splits it across pages."""

import sqlite3

from research_tuner_tests.support.secrets_scan import files_containing

SECRET = "sk-plant-0123456789abcdef0123456789abcdef"


def test_finds_a_key_in_files_and_in_sqlite_overflow_pages(tmp_path):
    (tmp_path / "clean.log").write_text("nothing here")
    assert files_containing(tmp_path, SECRET) == []
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "step.err").write_text(f"auth failed for key {SECRET}\n")
    db = tmp_path / "runs.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE event_logs (id INTEGER PRIMARY KEY, event TEXT)")
    # a row far larger than a page: SQLite stores it in a chain of overflow pages
    for offset in range(0, 4096, 7):
        con.execute("INSERT INTO event_logs (event) VALUES (?)", ("x" * (4000 + offset) + SECRET + "y" * 9000,))
    con.commit()
    con.close()
    found = files_containing(tmp_path, SECRET)
    assert str(tmp_path / "logs" / "step.err") in found
    assert f"{db}:event_logs" in found
