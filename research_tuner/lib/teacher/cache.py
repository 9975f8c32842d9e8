"""A content-addressed cache of teacher responses in SQLite: a rerun never pays twice.

Each response is stored the moment it arrives, keyed by endpoint, model, messages and parameters (the
seed included, and with it the generation round), so a run killed halfway resends only what is missing.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from research_tuner.lib.teacher.base import Progress, Teacher, TeacherFailure, TeacherRequest, TeacherResponse, Usage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE IF NOT EXISTS batches (
    input_file_id TEXT PRIMARY KEY,
    batch_id TEXT,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,  -- creating (file uploaded), submitted, then the batch's final status
    created_at TEXT NOT NULL DEFAULT (datetime('now')),
    finished_at TEXT
);
CREATE TABLE IF NOT EXISTS batch_requests (
    input_file_id TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (input_file_id, key)
);
"""


class ResponseCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()

    def get_many(self, keys: Sequence[str]) -> dict[str, TeacherResponse]:
        found: dict[str, TeacherResponse] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, text, finish_reason, prompt_tokens, completion_tokens FROM responses "
                    f"WHERE key IN ({marks})",
                    chunk,
                )
                for key, text, finish, p_tok, c_tok in rows:
                    found[key] = TeacherResponse(text, finish, p_tok, c_tok, cached=True)
        return found

    def put(self, key: str, response: TeacherResponse) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, text, finish_reason, prompt_tokens, completion_tokens) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, response.text, response.finish_reason, response.prompt_tokens, response.completion_tokens),
            )
            self._db.commit()

    # --- Batch API bookkeeping: a batch is recorded before it is polled, so a restart resumes it. ---

    def record_batch_file(self, input_file_id: str, endpoint: str, model: str, keys: Sequence[str]) -> None:
        """The input file is uploaded and the batch is about to be created."""
        with self._lock:
            self._db.execute("INSERT INTO batches (input_file_id, endpoint, model, status) VALUES (?, ?, ?, 'creating')",
                             (input_file_id, endpoint, model))
            self._db.executemany("INSERT OR IGNORE INTO batch_requests (input_file_id, key) VALUES (?, ?)",
                                 [(input_file_id, k) for k in keys])
            self._db.commit()

    def record_batch_submitted(self, input_file_id: str, batch_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE batches SET batch_id = ?, status = 'submitted' WHERE input_file_id = ?",
                             (batch_id, input_file_id))
            self._db.commit()

    def record_batch_finished(self, input_file_id: str, status: str) -> None:
        with self._lock:
            self._db.execute("UPDATE batches SET status = ?, finished_at = datetime('now') WHERE input_file_id = ?",
                             (status, input_file_id))
            self._db.commit()

    def open_batches(self, endpoint: str, model: str) -> list[tuple[str, str | None, str, list[str]]]:
        """(input_file_id, batch_id, status, keys) of batches not finished yet, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT input_file_id, batch_id, status FROM batches WHERE endpoint = ? AND model = ? "
                "AND status IN ('creating', 'submitted') ORDER BY created_at, rowid", (endpoint, model)).fetchall()
            return [(fid, bid, st, [k for (k,) in self._db.execute(
                "SELECT key FROM batch_requests WHERE input_file_id = ?", (fid,))]) for fid, bid, st in rows]

    def close(self) -> None:
        self._db.close()


class CachedTeacher:
    """Any teacher behind the cache: hits are answered locally, misses are sent and stored on arrival."""

    def __init__(self, inner: Teacher, cache: ResponseCache):
        self.inner = inner
        self.cache = cache
        self.endpoint = inner.endpoint
        self.model = inner.model

    def complete(
        self, requests: Sequence[TeacherRequest], usage: Usage, progress: Progress | None = None,
        ahead: Sequence[TeacherRequest] = (),
    ) -> list[TeacherResponse | TeacherFailure]:
        """One result per request. `ahead`: requests a later call may make (a retry's next attempts); when some of
        `requests` must be sent, as many of them as the inner teacher has free rows for (`free_rows`: the local
        teacher's small batches) ride along, and the cache keeps their answers for the call that needs them. A
        call the cache answers whole sends nothing, and a paid endpoint has no free rows."""
        keys = [r.cache_key(self.endpoint, self.model) for r in requests]
        hits = self.cache.get_many(keys)
        results: list[TeacherResponse | TeacherFailure | None] = [hits.get(k) for k in keys]
        for hit in hits.values():
            usage.record(hit)
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            extra, extra_keys = self._ahead(ahead, len(missing), set(keys))
            send_keys = [keys[i] for i in missing] + extra_keys

            def store(j: int, response: TeacherResponse) -> None:
                self.cache.put(send_keys[j], response)

            def report(done: int, _total: int) -> None:
                if progress:
                    progress(len(requests) - len(missing) + min(done, len(missing)), len(requests))

            fresh = self.inner.complete([requests[i] for i in missing] + extra, usage, report, on_response=store)
            for i, response in zip(missing, fresh[:len(missing)], strict=True):
                results[i] = response
        return results  # type: ignore[return-value]

    def _ahead(self, ahead: Sequence[TeacherRequest], sending: int, asked: set[str]
               ) -> tuple[list[TeacherRequest], list[str]]:
        """The first requests of `ahead` not cached nor asked now, as many as free rows beside `sending`."""
        free_rows = getattr(self.inner, "free_rows", None)
        room = free_rows(sending) if free_rows and ahead else 0
        if not room:
            return [], []
        keys = [r.cache_key(self.endpoint, self.model) for r in ahead]
        cached = self.cache.get_many(keys)
        chosen = [i for i, k in enumerate(keys) if k not in cached and k not in asked][:room]
        return [ahead[i] for i in chosen], [keys[i] for i in chosen]

    def close(self) -> None:
        self.inner.close()
        self.cache.close()
